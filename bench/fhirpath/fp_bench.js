// fp_bench.js -- the same work as fp_bench.c, done by npm fhirpath (the HL7
// reference implementation) in one node process, for a side-by-side figure.
//
//   node fp_bench.js LIST DIR
//
// LIST is the output of `fp_bench --list DIR`: one JSON [type, expression] per line,
// the R4 search-parameter expressions that apply to the types found in DIR. Each is
// compiled once with the R4 model, then evaluated on every resource of its type,
// ROUNDS times (FP_BENCH_ROUNDS, default 5). SIMPLE (FP_BENCH_SIMPLE, default
// 100000) parse+evaluate runs of 'Patient.name.given' follow.
'use strict';
const fs = require('fs');
const path = require('path');
const fhirpath = require('fhirpath');
const r4 = require('fhirpath/fhir-context/r4');

const [listFile, dir] = process.argv.slice(2);
if (!listFile || !dir) {
  console.error('usage: node fp_bench.js LIST DIR');
  process.exit(2);
}
const rounds = Number(process.env.FP_BENCH_ROUNDS || 5);
const simple = Number(process.env.FP_BENCH_SIMPLE || 100000);

const byType = new Map();
for (const line of fs.readFileSync(listFile, 'utf8').split('\n')) {
  if (!line) continue;
  const [type, expr] = JSON.parse(line);
  if (!byType.has(type)) byType.set(type, []);
  byType.get(type).push(fhirpath.compile(expr, r4));
}
const resources = [];
for (const f of fs.readdirSync(dir)) {
  if (!f.endsWith('.ndjson')) continue;
  for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
    if (line) resources.push(JSON.parse(line));
  }
}
let evals = 0, errors = 0, items = 0;
const t0 = process.hrtime.bigint();
for (let r = 0; r < rounds; r++) {
  for (const res of resources) {
    const fns = byType.get(res.resourceType) || [];
    for (const fn of fns) {
      try {
        items += fn(res, {resource: res}).length;
      } catch (e) {
        errors++;
      }
      evals++;
    }
  }
}
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(`search-parameter expressions: ${resources.length} resources, ${byType.size} types`);
console.log(`  ${evals} evaluations in ${secs.toFixed(3)} s: ${(evals / secs).toFixed(0)} evaluations/s ` +
            `(${(secs * 1e6 / evals).toFixed(2)} us each), ${items} items, ${errors} errors`);
const pat = resources.find((r) => r.resourceType === 'Patient');
if (pat && simple > 0) {
  let got = 0;
  const s0 = process.hrtime.bigint();
  for (let i = 0; i < simple; i++) got += fhirpath.evaluate(pat, 'Patient.name.given', null, r4).length;
  const s = Number(process.hrtime.bigint() - s0) / 1e9;
  console.log(`simple path 'Patient.name.given': ${simple} parse+evaluate in ${s.toFixed(3)} s: ` +
              `${(simple / s).toFixed(0)} per second (${got} items)`);
}
