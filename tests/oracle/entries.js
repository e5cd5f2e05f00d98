/*
 * entries.js -- what one search parameter says about one resource, for the test oracle:
 * the parameter's FHIRPath expression is evaluated by npm fhirpath (not by hortus's own
 * engine: an independent second opinion is the point of the differential test) and each
 * value becomes the entries of docs/SEARCH.md section 1, as plain JavaScript values
 * instead of index bytes:
 *
 *   S  folded string          X  string as written        Y  folded display / text
 *   T  {code, system}         O  {system, code, value}    (an Identifier's type codings)
 *   R  {id, type} | {url}     I  {value, system}
 *   D  {lo, hi} (BigInt µs)   N  number (Decimal)         Q  {system, code, v}
 *   V  number (Decimal)       C  {code, v} (UCUM unit)    U  uri
 *
 * Why it is shaped this way: matching (query.js) and sorting are defined over these
 * kinds exactly as the contract defines them, so a mismatch with the engine points at one
 * row of the contract. A parameter with no entries at all is what `:missing=true` finds.
 *
 * resolve() is given the meaning the FHIR search specification gives it for indexing: a
 * reference "[base/]Type/id[/_history/n]" to a known resource type resolves to a resource
 * of that type (so `subject.where(resolve() is Patient)` works on one resource), "#id" to
 * a contained resource; nothing is fetched.
 */
'use strict';

const path = require('path');
const fhirpath = require('fhirpath');
const r4 = require('fhirpath/fhir-context/r4');
const { ResourceNode } = require(path.join(path.dirname(require.resolve('fhirpath')), 'types.js'));
const Decimal = require('decimal.js');
const { fold } = require('./fold');

const MAX_VALUE = 400;
const INSTANT_MIN = -(2n ** 63n);
const INSTANT_MAX = 2n ** 63n - 1n;

const STRINGISH = new Set(['string', 'code', 'id', 'uri', 'url', 'canonical', 'markdown', 'oid',
  'uuid', 'base64Binary', 'xhtml', 'String']);
const BOOLS = new Set(['boolean', 'Boolean']);
const INTS = new Set(['integer', 'positiveInt', 'unsignedInt', 'integer64', 'Integer', 'Long']);
const DECS = new Set(['decimal', 'Decimal']);
const DATES = new Set(['date', 'dateTime', 'instant', 'Date', 'DateTime']);
const QUANTITIES = new Set(['Quantity', 'Age', 'Distance', 'Duration', 'Count', 'SimpleQuantity',
  'MoneyQuantity']);

let resourceTypes = new Set();

/* A Period as one interval: [start.lo, end.hi], an open end the smallest or largest instant. */
function addPeriod(e, obj) {
  if (typeof obj.start !== 'string' && typeof obj.end !== 'string') return;
  const s = typeof obj.start === 'string' ? dateInterval(obj.start) : null;
  const en = typeof obj.end === 'string' ? dateInterval(obj.end) : null;
  e.D.push({ lo: s ? s.lo : INSTANT_MIN, hi: en ? en.hi : INSTANT_MAX });
}

function setResourceTypes(list) { resourceTypes = new Set(list); }

/* ---- dates ------------------------------------------------------------------------------ */

const DATE_RE = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?$/;

function daysIn(y, m) {
  return [31, (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28, 31, 30, 31, 30, 31, 31,
    30, 31, 30, 31][m - 1];
}

function utcMs(y, mo, d, h, mi, s, ms) {
  const t = new Date(0);
  t.setUTCFullYear(y, mo - 1, d);
  t.setUTCHours(h, mi, s, ms);
  return BigInt(t.getTime());
}

/*
 * The interval [lo, hi] in microseconds (UTC; no zone: UTC) of a FHIR date, dateTime or
 * instant, or of a search value `YYYY[-MM[-DD[Thh:mm[:ss[.s+]][zone]]]]`, from its
 * precision: hi is the last microsecond before the next unit of the last field given
 * (a fraction of n digits: the next 10^-n s). null when it does not parse.
 */
function dateInterval(s) {
  const m = DATE_RE.exec(s);
  if (!m) return null;
  const y = +m[1];
  if (y < 1) return null;
  const mo = m[2] !== undefined ? +m[2] : null;
  const d = m[3] !== undefined ? +m[3] : null;
  if (mo !== null && (mo < 1 || mo > 12)) return null;
  if (d !== null && (d < 1 || d > daysIn(y, mo))) return null;
  if (m[4] !== undefined && d === null) return null; // a time needs a full date
  const h = m[4] !== undefined ? +m[4] : null;
  const mi = m[5] !== undefined ? +m[5] : null;
  const sec = m[6] !== undefined ? +m[6] : null;
  const frac = m[7];
  if (h !== null && h > 23) return null;
  if (mi !== null && mi > 59) return null;
  if (sec !== null && sec > 59) return null;
  if (frac !== undefined && frac.length > 9) return null;
  let tz = 0;
  if (m[8] && m[8] !== 'Z') {
    const th = +m[8].slice(1, 3), tm = +m[8].slice(4, 6);
    if (tm > 59 || th * 60 + tm > 14 * 60) return null;
    tz = (m[8][0] === '-' ? -1 : 1) * (th * 60 + tm);
  }
  let lo, next;
  if (mo === null) {
    lo = utcMs(y, 1, 1, 0, 0, 0, 0);
    next = utcMs(y + 1, 1, 1, 0, 0, 0, 0);
  } else if (d === null) {
    lo = utcMs(y, mo, 1, 0, 0, 0, 0);
    next = mo === 12 ? utcMs(y + 1, 1, 1, 0, 0, 0, 0) : utcMs(y, mo + 1, 1, 0, 0, 0, 0);
  } else if (h === null) {
    lo = utcMs(y, mo, d, 0, 0, 0, 0);
    next = lo + 86400000n;
  } else if (sec === null) {
    lo = utcMs(y, mo, d, h, mi, 0, 0);
    next = lo + 60000n;
  } else {
    lo = utcMs(y, mo, d, h, mi, sec, 0);
    next = lo + 1000n;
  }
  lo *= 1000n;
  next *= 1000n;
  if (frac !== undefined) {
    const digits = Math.min(frac.length, 6);
    const unit = 10n ** BigInt(6 - digits);
    lo += BigInt(frac.slice(0, digits)) * unit;
    next = lo + unit;
  }
  const off = BigInt(tz) * 60000000n;
  return { lo: lo - off, hi: next - 1n - off };
}

/* ---- FHIRPath --------------------------------------------------------------------------- */

function refStub(ctx, ref, root) {
  if (typeof ref !== 'string') return null;
  if (ref.startsWith('#')) {
    const c = (root.contained || []).find((r) => r && r.id === ref.slice(1));
    return c ? ResourceNode.makeResNode(ctx, c, null, c.resourceType, null, c.resourceType) : null;
  }
  const h = ref.indexOf('/_history/');
  const parts = (h >= 0 ? ref.slice(0, h) : ref).split('/');
  if (parts.length < 2) return null;
  const type = parts[parts.length - 2], id = parts[parts.length - 1];
  if (!resourceTypes.has(type) || !id) return null;
  return ResourceNode.makeResNode(ctx, { resourceType: type, id }, null, type, null, type);
}

/*
 * R4's definitions use the type cast on collections ("(Observation.component.value as
 * Quantity)": every component's Quantity). FHIRPath makes `as` an error on more than one
 * item and npm fhirpath raises it, which would drop every multi-component value; what the
 * definitions mean is a filter, and R5 rewrote them as ofType(): so does the oracle.
 */
function rewriteAs(expression) {
  return expression
    .replace(/\(([A-Za-z][\w.]*) as ([A-Za-z]+)\)/g, '($1.ofType($2))')
    .replace(/\.as\(([A-Za-z]+)\)/g, '.ofType($1)');
}

/* Typed values of FHIRPath result nodes: [{type, value}]. */
function typedValues(nodes) {
  const types = fhirpath.types(nodes);
  const out = [];
  nodes.forEach((n, i) => {
    const v = fhirpath.resolveInternalTypes([n])[0];
    if (v === null || v === undefined) return; // metadata only (_birthDate without a value)
    const t = types[i] || '';
    out.push({ type: t.slice(t.indexOf('.') + 1), value: v });
  });
  return out;
}

/* The compiled expression as (input, resource) -> result nodes; input is a resource (a
 * private copy: fhirpath adds hidden type data to what it is given) or a node of an
 * earlier result, which keeps its type (a composite's components are evaluated on each
 * value of the composite's own expression); %resource is the resource. */
function makeNodeEvaluator(expression) {
  expression = rewriteAs(expression);
  let root = null;
  const userInvocationTable = {
    resolve: {
      fn: function (inputs) {
        const out = [];
        for (const i of inputs) {
          const d = fhirpath.util.valData(i);
          const n = refStub(this, typeof d === 'string' ? d : d && d.reference, root);
          if (n) out.push(n);
        }
        return out;
      },
      arity: { 0: [] },
    },
  };
  const compiled = fhirpath.compile(expression, r4, { resolveInternalTypes: false, userInvocationTable });
  return (input, resource) => {
    root = resource;
    return compiled(input, { resource });
  };
}

function makeEvaluator(expression) {
  const nodesOf = makeNodeEvaluator(expression);
  return (resource) => {
    const copy = JSON.parse(JSON.stringify(resource));
    return typedValues(nodesOf(copy, copy));
  };
}

/*
 * A composite parameter: resource -> one entry per value of its expression, the typed
 * values of each component's expression on that value: [[values of component 1], ...].
 * components: [{expression}].
 */
function makeCompositeEvaluator(expression, components) {
  const focusOf = makeNodeEvaluator(expression);
  const comps = components.map((c) => makeNodeEvaluator(c.expression));
  return (resource) => {
    const copy = JSON.parse(JSON.stringify(resource));
    return focusOf(copy, copy).map((node) => comps.map((ev) => typedValues(ev(node, copy))));
  };
}

/* ---- values to entries ------------------------------------------------------------------ */

function empty() {
  return { S: [], X: [], Y: [], T: [], O: [], R: [], I: [], D: [], N: [], Q: [], V: [], C: [], U: [], K: [], G: [] };
}

/* Strings inside a composite's parts are cut at PART_STR bytes (docs/SEARCH.md 1a), on
 * both sides: as latin1 strings of their UTF-8 bytes, so a cut inside a character
 * compares as the index's bytes do. */
const PART_STR = 64;
function cutPart(s) {
  return Buffer.from(s, 'utf8').subarray(0, PART_STR).toString('latin1');
}

/* The parts of one component: the entries a composite keeps (T S R U D N and the
 * quantity's Q V C), strings cut. */
function partsOf(e) {
  const p = empty();
  p.T = e.T.map((t) => ({ code: cutPart(t.code), system: cutPart(t.system) }));
  p.S = e.S.map(cutPart);
  p.R = e.R.map((r) => (r.url !== undefined ? { url: cutPart(r.url) } : { id: cutPart(r.id), type: cutPart(r.type) }));
  p.U = e.U.map(cutPart);
  p.D = e.D;
  p.N = e.N;
  p.Q = e.Q.map((q) => ({ system: cutPart(q.system), code: cutPart(q.code), v: q.v }));
  p.V = e.V;
  p.C = e.C;
  return p;
}

function cutBytes(s, n) {
  const b = Buffer.from(s, 'utf8');
  return b.length <= n ? s : b.subarray(0, n).toString('utf8');
}

function addString(e, s) {
  if (typeof s !== 'string' || !s) return;
  const f = fold(s);
  if (f) e.S.push(f);
  e.X.push(cutBytes(s, MAX_VALUE));
}

function addText(e, s) {
  if (typeof s !== 'string' || !s) return;
  const f = fold(s);
  if (f) e.Y.push(f);
}

function addToken(e, code, system) {
  if (typeof code !== 'string' || !code) return;
  e.T.push({ code, system: typeof system === 'string' ? system : '' });
}

function addCoding(e, c) {
  if (!c || typeof c !== 'object') return;
  addToken(e, c.code, c.system);
  addText(e, c.display);
}

const LOCAL_ID = /^[A-Za-z0-9.-]{1,64}$/;

const MAX_VERSION = 40;

function addRefTarget(e, s, base) {
  if (typeof s !== 'string' || !s) return;
  if (s[0] === '#') { // a contained resource: present, but no other resource's
    e.R.push({ url: cutBytes(s, MAX_VALUE) });
    return;
  }
  if (base && s.startsWith(base + '/') && s.length > base.length + 1) s = s.slice(base.length + 1);
  const m = /^([^/]+)\/([^/]+)(\/_history\/.+)?$/.exec(s);
  if (m && resourceTypes.has(m[1]) && LOCAL_ID.test(m[2])) {
    e.R.push({ id: m[2], type: m[1] });
    return;
  }
  // canonical|version: the url for any version, and the url with this version
  const bar = s.indexOf('|');
  const url = cutBytes(bar >= 0 ? s.slice(0, bar) : s, MAX_VALUE);
  e.R.push({ url });
  if (bar >= 0) e.R.push({ url, version: cutBytes(s.slice(bar), MAX_VERSION) });
}

function addQuantity(e, q, ucum) {
  const { value } = q;
  if (typeof value !== 'number') return;
  const v = new Decimal(String(value));
  const sys = typeof q.system === 'string' ? q.system : null;
  const code = typeof q.code === 'string' ? q.code : null;
  const unit = typeof q.unit === 'string' ? q.unit : null;
  // value|system|code; and value||unit, which matches the code or the human unit
  if (sys !== null && code !== null) e.Q.push({ system: sys, code, v });
  if (code !== null) e.Q.push({ system: '', code, v });
  if (unit !== null && unit !== code) e.Q.push({ system: '', code: unit, v });
  e.V.push(v);
  if (code !== null && sys === 'http://unitsofmeasure.org' && ucum.valid(code))
    e.C.push({ code, v });
}

/*
 * The entries of parameter `sp` ({type, evaluate}) for `resource`. base: this server's
 * FHIR base (absolute references to it are local). ucum: {valid(code)}.
 */
function entriesOf(sp, resource, base, ucum) {
  const e = empty();
  let vals;
  try {
    vals = sp.evaluate(resource);
  } catch (err) {
    return e; // a run-time error of the expression on this content: nothing
  }
  if (sp.type === 'composite') {
    // per value of the expression: each component's parts; a component without any
    // gives no entry
    for (const tuple of vals) {
      const parts = tuple.map((cv, k) => partsOf(valuesToEntries(sp.components[k].type, cv, base, ucum, true)));
      if (parts.every(hasEntries)) e.K.push(parts);
    }
    return e;
  }
  return valuesToEntries(sp.type, vals, base, ucum, false);
}

/* The entries of typed values of a parameter of type spType; inPart: of a composite's
 * component (no Money: composites have no money component). */
function valuesToEntries(spType, vals, base, ucum, inPart) {
  const e = empty();
  for (const { type, value } of vals) {
    const obj = value && typeof value === 'object' ? value : null;
    switch (spType) {
      case 'string':
        if (STRINGISH.has(type)) addString(e, value);
        else if (type === 'HumanName' && obj)
          for (const k of ['family', 'given', 'prefix', 'suffix', 'text']) [].concat(obj[k] || []).forEach((s) => addString(e, s));
        else if (type === 'Address' && obj)
          for (const k of ['line', 'city', 'district', 'state', 'postalCode', 'country', 'text']) [].concat(obj[k] || []).forEach((s) => addString(e, s));
        break;
      case 'token':
        if (STRINGISH.has(type)) addToken(e, value, '');
        else if (BOOLS.has(type)) addToken(e, value ? 'true' : 'false', '');
        else if (INTS.has(type)) addToken(e, String(value), '');
        else if (type === 'Coding') addCoding(e, obj);
        else if (type === 'CodeableConcept' && obj) {
          (obj.coding || []).forEach((c) => addCoding(e, c));
          addText(e, obj.text);
        } else if (type === 'Identifier' && obj) {
          addToken(e, obj.value, obj.system);
          if (obj.type) addText(e, obj.type.text);
          // :of-type: every coding of the identifier's type, with its value
          if (typeof obj.value === 'string' && obj.type)
            for (const c of obj.type.coding || [])
              if (c && typeof c.code === 'string')
                e.O.push({ system: typeof c.system === 'string' ? c.system : '', code: c.code, value: obj.value });
        } else if (type === 'ContactPoint' && obj) addToken(e, obj.value, obj.system);
        break;
      case 'reference':
        if (STRINGISH.has(type)) addRefTarget(e, value, base);
        else if (type === 'Reference' && obj) {
          addRefTarget(e, obj.reference, base);
          const id = obj.identifier;
          if (id && typeof id === 'object' && typeof id.value === 'string')
            e.I.push({ value: id.value, system: typeof id.system === 'string' ? id.system : '' });
        }
        break;
      case 'date':
        if (DATES.has(type) || STRINGISH.has(type)) {
          const iv = dateInterval(String(value));
          if (iv) e.D.push(iv);
        } else if (type === 'Period' && obj) {
          addPeriod(e, obj);
        } else if (type === 'Timing' && obj) {
          for (const ev of obj.event || []) {
            const iv = typeof ev === 'string' ? dateInterval(ev) : null;
            if (iv) e.D.push(iv);
          }
          const bp = obj.repeat && obj.repeat.boundsPeriod;
          if (bp && typeof bp === 'object') addPeriod(e, bp);
        }
        break;
      case 'number':
        if (INTS.has(type) || DECS.has(type)) e.N.push(new Decimal(String(value)));
        break;
      case 'quantity':
        if (QUANTITIES.has(type) && obj) addQuantity(e, obj, ucum);
        else if (type === 'Money' && obj && typeof obj.value === 'number' && !inPart) {
          const v = new Decimal(String(obj.value));
          e.Q.push({ system: 'urn:iso:std:iso:4217', code: typeof obj.currency === 'string' ? obj.currency : '', v });
          e.V.push(v);
        }
        break;
      case 'uri':
        if (STRINGISH.has(type) && value) e.U.push(cutBytes(value, MAX_VALUE));
        break;
      case 'special': // near: Location.position, a point on the globe
        if (obj && typeof obj.latitude === 'number' && typeof obj.longitude === 'number' &&
            obj.latitude >= -90 && obj.latitude <= 90 && obj.longitude >= -180 && obj.longitude <= 180)
          e.G.push([obj.latitude, obj.longitude]);
        break;
      default:
        break;
    }
  }
  return e;
}

function hasEntries(e) {
  return Object.values(e).some((l) => l.length > 0);
}

module.exports = {
  makeEvaluator, makeCompositeEvaluator, rewriteAs, entriesOf, cutPart, cutBytes, MAX_VALUE, MAX_VERSION, hasEntries, dateInterval, setResourceTypes, INSTANT_MIN, INSTANT_MAX,
};
