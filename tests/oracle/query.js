/*
 * query.js -- a FHIR search as docs/SEARCH.md sections 2-4 define it, for the test
 * oracle: parse `name[:modifier]=value` pairs into clauses (errors where the contract
 * says 400), decide whether one resource's entries (entries.js) match a clause, and
 * order the matches (_sort, or creation order).
 *
 * Why it is shaped this way: matching is a predicate over one resource at a time, never
 * an index scan -- the oracle scans every resource of the type, which is slow and
 * obviously right, the opposite trade of the engine. A clause is
 *   {sp, mod, missing, values: [value...]}     (values: an OR; clauses: an AND)
 * and a value is an object with a match(entries) function, so part 2 of the oracle can
 * add clause kinds (a chain: a reference clause whose value is a query on the target
 * type; _has: the reverse) without touching the ones here.
 *
 * Numbers and quantities compare exactly (decimal.js): the contract's ranges are
 * decimal ranges ("1.0 is [0.95, 1.05)"), so a float rounding at a range's edge in the
 * engine shows up as a mismatch. UCUM units are converted with @lhncbc/ucum-lhc (the
 * library npm fhirpath uses), not with hortus's tables.
 */
'use strict';

const Decimal = require('decimal.js');
const { fold } = require('./fold');
const { dateInterval, cutPart, cutBytes, MAX_VALUE, MAX_VERSION } = require('./entries');
const ucumLib = require('@lhncbc/ucum-lhc');

const UCUM = 'http://unitsofmeasure.org';
Decimal.set({ precision: 60 });
const ucumUtils = ucumLib.UcumLhcUtils.getInstance();
const PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'];
const MODIFIERS = {
  string: ['missing', 'exact', 'contains'],
  token: ['missing', 'not', 'text', 'of-type'],
  reference: ['missing', 'identifier'], // and :[Type]
  uri: ['missing', 'below', 'above'],
  date: ['missing'],
  number: ['missing'],
  quantity: ['missing'],
  composite: ['missing'],
  special: ['missing'], // near
};

/* The great-circle distance in metres between two points in degrees (haversine, the
 * mean radius): what `near` compares with its distance. */
function distanceM(a, b) {
  const r = Math.PI / 180;
  const h = Math.sin(((b[0] - a[0]) * r) / 2) ** 2 +
    Math.cos(a[0] * r) * Math.cos(b[0] * r) * Math.sin(((b[1] - a[1]) * r) / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.sqrt(Math.min(1, h)));
}
const NEAR_UNITS = { m: 1, km: 1000, '[mi_i]': 1609.344, '[nmi_i]': 1852 };
const MAX_OR = 1000;
const MAX_CLAUSES = 100;
const MAX_SORT_KEYS = 8;
const DAY_US = 86400000000n;

class QueryError extends Error {}

/* ---- UCUM ------------------------------------------------------------------------------- */

const ucumCache = new Map();
function ucumInfo(code) {
  if (ucumCache.has(code)) return ucumCache.get(code);
  let info = null;
  const r = ucumUtils.convertToBaseUnits(code, 1);
  if (r.status === 'succeeded' && ucumUtils.validateUnitString(code).status === 'valid')
    info = { special: !!r.fromUnitIsSpecial, factor: r.magnitude };
  ucumCache.set(code, info);
  return info;
}
const ucum = { valid: (code) => ucumInfo(code) !== null };

const commCache = new Map();
function commensurable(a, b) {
  const k = a + '\u0000' + b;
  if (!commCache.has(k)) commCache.set(k, ucumUtils.convertUnitTo(a, 1, b).status === 'succeeded');
  return commCache.get(k);
}

/*
 * The factor from unit a to unit b (both linear) as an exact fraction [p, q]: ucum-lhc
 * gives float magnitudes (1/60 as 0.016666666666666666), which would put 81 /min just
 * below 1.35 /s; factors between UCUM units are ratios of small integers, so the float
 * ratio is turned back into one by continued fractions.
 */
const ratioCache = new Map();
function ratio(a, b) {
  const k = a + '\u0000' + b;
  if (ratioCache.has(k)) return ratioCache.get(k);
  if (ucumInfo(a).special || ucumInfo(b).special) return null;
  const x = ucumInfo(a).factor / ucumInfo(b).factor;
  let [h0, h1, k0, k1] = [0n, 1n, 1n, 0n];
  let y = x;
  let best = null;
  for (let i = 0; i < 40; i++) {
    const aI = Math.floor(y);
    const A = BigInt(aI);
    [h0, h1] = [h1, A * h1 + h0];
    [k0, k1] = [k1, A * k1 + k0];
    best = [new Decimal(h1.toString()), new Decimal(k1.toString())];
    if (Math.abs(Number(h1) / Number(k1) - x) <= 1e-12 * Math.abs(x)) break;
    const frac = y - aI;
    if (frac < 1e-15) break;
    y = 1 / frac;
  }
  ratioCache.set(k, best);
  return best;
}

/* numMatch for a value v * p / q, without dividing. */
function numMatchScaled(prefix, r, v, p, q) {
  const d = v.times(p);
  const s = (x) => x.times(q);
  switch (prefix) {
    case 'eq': return d.gte(s(r.lo)) && d.lt(s(r.hi));
    case 'ne': return !(d.gte(s(r.lo)) && d.lt(s(r.hi)));
    case 'gt': case 'sa': return d.gt(s(r.v));
    case 'lt': case 'eb': return d.lt(s(r.v));
    case 'ge': return d.gte(s(r.v));
    case 'le': return d.lte(s(r.v));
    case 'ap': return d.minus(s(r.v)).abs().times(10).lte(s(r.v).abs());
    default: return false;
  }
}

function toBase(code, v) {
  return new Decimal(String(ucumUtils.convertToBaseUnits(code, v.toNumber()).magnitude));
}

/* ---- escapes and splitting ------------------------------------------------------------- */

/* The value as characters with an escaped flag: \, \| \$ \\ escape; other \ are kept. */
function lex(s) {
  const out = [];
  const cps = Array.from(s);
  for (let i = 0; i < cps.length; i++) {
    if (cps[i] === '\\' && i + 1 < cps.length && ',|$\\'.includes(cps[i + 1])) {
      out.push({ c: cps[i + 1], esc: true });
      i++;
    } else out.push({ c: cps[i], esc: false });
  }
  return out;
}

function splitLexed(chars, sep) {
  const parts = [[]];
  for (const ch of chars) {
    if (!ch.esc && ch.c === sep) parts.push([]);
    else parts[parts.length - 1].push(ch);
  }
  return parts;
}

const text = (chars) => chars.map((ch) => ch.c).join('');

/* ---- numbers ---------------------------------------------------------------------------- */

/* "[+-]digits[.digits][e[+-]digits]" -> {v, lo, hi} (the precision range, exact). */
function numberRange(s) {
  const m = /^([+-]?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!m) return null;
  const exp = m[4] !== undefined ? parseInt(m[4], 10) : 0;
  if (Math.abs(exp) > 300) return null;
  const scale = m[3] !== undefined ? m[3].length : 0;
  const v = new Decimal(`${m[1]}${m[2]}${m[3] !== undefined ? '.' + m[3] : ''}e${exp}`);
  const half = new Decimal(5).times(new Decimal(10).pow(exp - scale - 1));
  return { v, lo: v.minus(half), hi: v.plus(half) };
}

function takePrefix(s) {
  const p = s.slice(0, 2);
  return PREFIXES.includes(p) ? [p, s.slice(2)] : ['eq', s];
}

function numMatch(prefix, r, d) {
  switch (prefix) {
    case 'eq': return d.gte(r.lo) && d.lt(r.hi);
    case 'ne': return !(d.gte(r.lo) && d.lt(r.hi));
    case 'gt': case 'sa': return d.gt(r.v);
    case 'lt': case 'eb': return d.lt(r.v);
    case 'ge': return d.gte(r.v);
    case 'le': return d.lte(r.v);
    case 'ap': return d.minus(r.v).abs().lte(r.v.abs().div(10));
    default: return false;
  }
}

/* ---- dates ------------------------------------------------------------------------------ */

function dateMatch(prefix, q, e) {
  const eq = q.lo <= e.lo && e.hi <= q.hi;
  switch (prefix) {
    case 'eq': return eq;
    case 'ne': return !eq;
    case 'gt': return e.hi > q.hi;
    case 'lt': return e.lo < q.lo;
    case 'ge': return e.hi > q.hi || eq;
    case 'le': return e.lo < q.lo || eq;
    case 'sa': return e.lo > q.hi;
    case 'eb': return e.hi < q.lo;
    case 'ap': {
      // widened by 10% of the distance between now and the value, at least a day
      const dist = q.now > q.hi ? q.now - q.hi : q.lo > q.now ? q.lo - q.now : 0n;
      let w = dist / 10n;
      if (w < DAY_US) w = DAY_US;
      return e.lo <= q.hi + w && e.hi >= q.lo - w;
    }
    default: return false;
  }
}

/* ---- one value of a clause -------------------------------------------------------------- */

function parseValue(sp, mod, typeMod, chars, ctx) {
  const s = text(chars);
  const name = sp.code;
  const cut = ctx.cut || ((x) => x); // strings of a composite's parts are cut
  switch (sp.type) {
    case 'composite': {
      // a$b[$c]: each part a value of its component, no modifiers; one value of the
      // expression must match them all
      const parts = splitLexed(chars, '$');
      if (parts.length !== sp.components.length) throw new QueryError(`${name}: not a composite value`);
      const subs = parts.map((pc, k) => {
        if (!pc.length) throw new QueryError(`${name}: an empty value`);
        return parseValue(sp.components[k], null, null, pc, { ...ctx, cut: cutPart });
      });
      return { match: (e) => e.K.some((tuple) => subs.every((sub, k) => sub.match(tuple[k]))) };
    }
    case 'string': {
      if (mod === 'exact') return { match: (e) => e.X.includes(s) };
      const f = cut(fold(s));
      if (mod === 'contains') return { match: (e) => e.S.some((x) => x.includes(f)) };
      return { match: (e) => e.S.some((x) => x.startsWith(f)) };
    }
    case 'token': {
      if (mod === 'text') {
        const f = fold(s);
        return { match: (e) => e.Y.some((y) => y.startsWith(f)) };
      }
      const parts = splitLexed(chars, '|').map(text);
      if (mod === 'of-type') {
        if (parts.length !== 3 || !parts[1] || !parts[2]) throw new QueryError(`${name}:of-type: bad value`);
        const [ts, tc, value] = parts;
        return { match: (e) => e.O.some((o) => o.system === ts && o.code === tc && o.value === value) };
      }
      if (parts.length > 2) throw new QueryError(`${name}: not a token`);
      if (parts.length === 1) {
        if (!parts[0]) throw new QueryError(`${name}: an empty token`);
        const c0 = cut(parts[0]);
        return { match: (e) => e.T.some((t) => t.code === c0) };
      }
      const [system, code] = parts.map(cut);
      if (!code) {
        if (!system) throw new QueryError(`${name}: '|' alone`);
        return { match: (e) => e.T.some((t) => t.system === system) };
      }
      return { match: (e) => e.T.some((t) => t.code === code && t.system === system) };
    }
    case 'reference': {
      if (mod === 'identifier') {
        const parts = splitLexed(chars, '|').map(text);
        if (parts.length > 2 || !parts[parts.length - 1]) throw new QueryError(`${name}:identifier: bad value`);
        const value = parts[parts.length - 1];
        if (parts.length === 1) return { match: (e) => e.I.some((i) => i.value === value) };
        return { match: (e) => e.I.some((i) => i.value === value && i.system === parts[0]) };
      }
      let r = s;
      if (ctx.base && r.startsWith(ctx.base + '/')) r = r.slice(ctx.base.length + 1);
      if (!r) throw new QueryError(`${name}: an empty reference`);
      const slash = r.indexOf('/');
      if (slash > 0 && ctx.resourceTypes.has(r.slice(0, slash)) && !r.slice(slash + 1).includes('/')) {
        const type = r.slice(0, slash), id = r.slice(slash + 1);
        if (typeMod && typeMod !== type) throw new QueryError(`${name}:${typeMod}: another type`);
        const ct = cut(type), ci = cut(id);
        return { match: (e) => e.R.some((x) => x.type === ct && x.id === ci) };
      }
      if (r.includes('://') || r.startsWith('urn:') || r[0] === '#') {
        // a URL; a canonical url|version: that version only; a contained resource
        const bar = r[0] === '#' ? -1 : r.indexOf('|');
        if (bar === r.length - 1) throw new QueryError(`${name}: '|' without a version`);
        const cr = cut(cutBytes(bar >= 0 ? r.slice(0, bar) : r, MAX_VALUE));
        if (bar >= 0) {
          const ver = cutBytes(r.slice(bar), MAX_VERSION);
          return { match: (e) => e.R.some((x) => x.url === cr && x.version === ver) };
        }
        return { match: (e) => e.R.some((x) => x.url === cr && x.version === undefined) };
      }
      if (!r.includes('/')) {
        const type = typeMod || (sp.targets.length === 1 ? sp.targets[0] : null);
        const ci = cut(r);
        if (type) {
          const ct = cut(type);
          return { match: (e) => e.R.some((x) => x.type === ct && x.id === ci) };
        }
        return { match: (e) => e.R.some((x) => x.type !== undefined && x.id === ci) };
      }
      throw new QueryError(`${name}: not a reference`);
    }
    case 'date': {
      const [prefix, rest] = takePrefix(s);
      const q = rest ? dateInterval(rest.replace(/ /g, '+')) : null;
      if (!q) throw new QueryError(`${name}: not a date`);
      q.now = ctx.now;
      return { match: (e) => e.D.some((d) => dateMatch(prefix, q, d)) };
    }
    case 'special': { // near=lat|lon[|distance[|unit]]
      const parts = splitLexed(chars, '|').map(text);
      const num = (x) => (/^-?[0-9]+(\.[0-9]+)?$/.test(x) ? Number(x) : NaN);
      const lat = num(parts[0]), lon = num(parts[1] || '');
      if (parts.length < 2 || parts.length > 4 || !(lat >= -90 && lat <= 90) || !(lon >= -180 && lon <= 180))
        throw new QueryError(`${name}: not a position`);
      let d = 1000;
      if (parts.length >= 3 && parts[2] !== '') {
        const unit = parts.length === 4 && parts[3] !== '' ? parts[3] : 'km';
        const dv = num(parts[2]);
        if (!(dv >= 0) || !(unit in NEAR_UNITS)) throw new QueryError(`${name}: not a distance`);
        d = dv * NEAR_UNITS[unit];
      } else if (parts.length === 4 && parts[3] !== '') {
        throw new QueryError(`${name}: a unit without a distance`);
      }
      return { match: (e) => e.G.some((g) => distanceM([lat, lon], g) <= d) };
    }
    case 'number': {
      const [prefix, rest] = takePrefix(s);
      const r = numberRange(rest);
      if (!r) throw new QueryError(`${name}: not a number`);
      return { match: (e) => e.N.some((d) => numMatch(prefix, r, d)) };
    }
    case 'quantity': {
      const parts = splitLexed(chars, '|').map(text);
      if (parts.length === 2 || parts.length > 3) throw new QueryError(`${name}: not a quantity`);
      const [prefix, rest] = takePrefix(parts[0]);
      const r = numberRange(rest);
      if (!r) throw new QueryError(`${name}: not a number`);
      if (parts.length === 1) return { match: (e) => e.V.some((d) => numMatch(prefix, r, d)) };
      const [, system, code] = parts;
      if (system === UCUM && code) {
        const qi = ucumInfo(code);
        if (!qi) throw new QueryError(`${name}: not a UCUM unit`);
        return {
          match: (e) => e.C.some((c) => {
            if (!commensurable(c.code, code)) return false;
            const di = ucumInfo(c.code);
            if (!qi.special && !di.special) {
              if (c.code === code) return numMatch(prefix, r, c.v);
              const [p, q] = ratio(c.code, code);
              return numMatchScaled(prefix, r, c.v, p, q);
            }
            // an affine unit (Cel, [degF]): compare in the base unit, every bound converted;
            // ap is 10% of the value as stated (33 Cel: 29.7 .. 36.3 Cel), not of its
            // base value (306 K would allow +-30 K)
            if (prefix === 'ap') {
              const w = r.v.abs().div(10);
              const a = toBase(code, r.v.minus(w)), b = toBase(code, r.v.plus(w));
              const d = toBase(c.code, c.v);
              return d.gte(Decimal.min(a, b)) && d.lte(Decimal.max(a, b));
            }
            const rb = { v: toBase(code, r.v), lo: toBase(code, r.lo), hi: toBase(code, r.hi) };
            return numMatch(prefix, rb, toBase(c.code, c.v));
          }),
        };
      }
      if (!code) throw new QueryError(`${name}: a system but no code`);
      const cs = cut(system), cc = cut(code);
      return { match: (e) => e.Q.some((x) => x.system === cs && x.code === cc && numMatch(prefix, r, x.v)) };
    }
    case 'uri': {
      if (mod === 'below') return { match: (e) => e.U.some((u) => u.startsWith(s)) };
      if (mod === 'above')
        return { match: (e) => e.U.some((u) => u.length > 0 && s.startsWith(u) && (u.length === s.length || s[u.length] === '/')) };
      const cu = cut(s);
      return { match: (e) => e.U.includes(cu) };
    }
    default:
      throw new QueryError(`${name}: a ${sp.type} parameter is not supported`);
  }
}

/* ---- the query -------------------------------------------------------------------------- */

const RESULT_PARAMS = new Set(['_count', '_total', '_summary', '_elements', '_format', '_pretty']);
const MAX_LINK_DEPTH = 6;

/* The parameter a chain's rest starts with (up to ':' or '.'). */
function firstName(rest) {
  if (rest.startsWith('_has:')) return '_has';
  return /^[^:.]*/.exec(rest)[0];
}

/* The one clause of `rest`=value on `type`, behind a link (a chain or _has). */
function linkSub(type, rest, value, ctx, depth) {
  if (depth + 1 > MAX_LINK_DEPTH) throw new QueryError('too many links');
  const sub = parseQuery(type, [[rest, value]], ctx.allParams[type] || {}, ctx, depth + 1);
  if (sub.clauses.length !== 1) throw new QueryError(`${rest}: not a search parameter`);
  return sub.clauses[0];
}

/* subject:Patient.name=x: {link: 'chain', sp, target, sub}; the target is the type
 * named, or the only target type that has the next parameter. */
function parseChain(name, dot, value, params, ctx, depth) {
  const head = name.slice(0, dot), rest = name.slice(dot + 1);
  const colon = head.indexOf(':');
  const code = colon >= 0 ? head.slice(0, colon) : head;
  const sp = params[code];
  if (!sp) throw new QueryError(`unknown parameter ${code}`);
  if (sp.type !== 'reference') throw new QueryError(`${code}: only references chain`);
  if (!rest) throw new QueryError(`${name}: nothing after the '.'`);
  let target;
  if (colon >= 0) {
    target = head.slice(colon + 1);
    if (!ctx.resourceTypes.has(target) || (sp.targets.length && !sp.targets.includes(target)))
      throw new QueryError(`${name}: not a target type`);
  } else {
    const nn = firstName(rest);
    const found = sp.targets.filter((t) => ctx.allParams[t] && (nn === '_has' || ctx.allParams[t][nn]));
    if (found.length !== 1) throw new QueryError(`${name}: ${found.length ? 'ambiguous' : 'no target has ' + nn}`);
    target = found[0];
  }
  return { link: 'chain', sp, target, sub: linkSub(target, rest, value, ctx, depth) };
}

/* _has:Observation:patient:code=x: {link: 'has', type, ref, sub}. */
function parseHas(type, name, value, ctx, depth) {
  const m = /^_has:([^:]+):([^:]+):(.+)$/.exec(name);
  if (!m) throw new QueryError(`${name}: not _has:type:param:param`);
  const [, other, refCode, rest] = m;
  if (!ctx.resourceTypes.has(other)) throw new QueryError(`${name}: ${other} is not a type`);
  const ref = (ctx.allParams[other] || {})[refCode];
  if (!ref || ref.type !== 'reference') throw new QueryError(`${name}: ${refCode} is not a reference`);
  if (ref.targets.length && !ref.targets.includes(type)) throw new QueryError(`${name}: does not refer to ${type}`);
  return { link: 'has', type: other, ref, sub: linkSub(other, rest, value, ctx, depth) };
}

const MAX_INCLUDES = 16;

/* _include=Type:param[:target] | * ; _revinclude=Type:param[:target]:
 * {rev, iterate, src, sp (null: every reference parameter), target}. */
function parseInclude(type, rev, iterate, value, ctx) {
  if (value === '*') {
    if (rev) throw new QueryError('_revinclude=*');
    return { rev, iterate, src: type, sp: null, target: null };
  }
  const parts = value.split(':');
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1] || parts[2] === '')
    throw new QueryError(`include ${value}: bad form`);
  const [src, code, target] = parts;
  if (!ctx.resourceTypes.has(src)) throw new QueryError(`include ${value}: not a type`);
  let sp = null;
  if (code !== '*') {
    sp = (ctx.allParams[src] || {})[code];
    if (!sp || sp.type !== 'reference') throw new QueryError(`include ${value}: not a reference`);
  } else if (rev) throw new QueryError('_revinclude with *');
  if (target !== undefined && (!ctx.resourceTypes.has(target) || (sp && sp.targets.length && !sp.targets.includes(target))))
    throw new QueryError(`include ${value}: bad target`);
  if (!iterate && !rev && src !== type) throw new QueryError(`include ${value}: not from ${type}`);
  if (!iterate && rev && ((sp.targets.length && !sp.targets.includes(type)) || (target !== undefined && target !== type)))
    throw new QueryError(`revinclude ${value}: does not refer to ${type}`);
  return { rev, iterate, src, sp, target: target === undefined ? null : target };
}

/*
 * Parse the (name, value) pairs of a search on `type`. params: code -> sp for the type
 * ({code, type, targets}); ctx.allParams the same for every type (chains, _has). Returns
 * {clauses, sort}; throws QueryError for a 400. depth > 0: the parameter behind a link,
 * where result parameters are an error.
 */
function parseQuery(type, pairs, params, ctx, depth = 0) {
  const clauses = [];
  const includes = [];
  let sort = [];
  for (const [name, value] of pairs) {
    if (depth && (RESULT_PARAMS.has(name) || name === '_sort')) throw new QueryError(`${name} behind a link`);
    if (RESULT_PARAMS.has(name)) continue;
    if (depth && /^_(rev)?include(:|$)/.test(name)) throw new QueryError(`${name} behind a link`);
    const im = /^_(rev)?include(?::(iterate|recurse))?$/.exec(name);
    if (/^_(rev)?include(:|$)/.test(name)) {
      if (!im) throw new QueryError(`${name}: bad modifier`);
      includes.push(parseInclude(type, !!im[1], !!im[2], value, ctx));
      continue;
    }
    if (name === '_has' || name.startsWith('_has:')) {
      if (clauses.length >= MAX_CLAUSES) throw new QueryError('too many parameters');
      clauses.push(parseHas(type, name, value, ctx, depth));
      continue;
    }
    const dot = name.indexOf('.');
    if (dot >= 0) {
      if (clauses.length >= MAX_CLAUSES) throw new QueryError('too many parameters');
      clauses.push(parseChain(name, dot, value, params, ctx, depth));
      continue;
    }
    if (name === '_sort') {
      const keys = splitLexed(lex(value), ',').map(text);
      if (keys.length > MAX_SORT_KEYS) throw new QueryError('_sort: too many keys');
      sort = keys.map((k) => {
        const desc = k.startsWith('-');
        const code = desc ? k.slice(1) : k;
        const sp = params[code];
        if (!sp) throw new QueryError(`_sort: ${code} is not a parameter of ${type}`);
        if (sp.type === 'composite' || sp.type === 'special') throw new QueryError(`_sort: ${code} cannot sort`);
        return { sp, desc };
      });
      continue;
    }
    const colon = name.indexOf(':');
    const code = colon >= 0 ? name.slice(0, colon) : name;
    const modName = colon >= 0 ? name.slice(colon + 1) : null;
    const sp = params[code];
    if (!sp) throw new QueryError(`unknown parameter ${code}`);
    if (!MODIFIERS[sp.type]) throw new QueryError(`${code}: unsupported type ${sp.type}`);
    if (clauses.length >= MAX_CLAUSES) throw new QueryError('too many parameters');
    let mod = null, typeMod = null;
    if (modName !== null) {
      if (MODIFIERS[sp.type].includes(modName)) mod = modName;
      else if (sp.type === 'reference' && ctx.resourceTypes.has(modName)) typeMod = modName;
      else throw new QueryError(`:${modName} does not apply to ${code}`);
    }
    if (mod === 'missing') {
      if (value !== 'true' && value !== 'false') throw new QueryError(`${code}:missing takes true or false`);
      clauses.push({ sp, mod, missing: value === 'true', values: [] });
      continue;
    }
    const parts = splitLexed(lex(value), ',');
    if (parts.length > MAX_OR) throw new QueryError(`${code}: too many values`);
    const values = parts.map((chars) => {
      if (!chars.length) throw new QueryError(`${code}: an empty value`);
      return parseValue(sp, mod, typeMod, chars, ctx);
    });
    clauses.push({ sp, mod, missing: null, values });
  }
  if (includes.length > MAX_INCLUDES) throw new QueryError('too many includes');
  return { clauses, sort, includes };
}

/* Whether one resource matches one clause; entriesOf(sp) gives its entries. */
function clauseMatches(clause, entriesOf, hasEntries) {
  const e = entriesOf(clause.sp);
  if (clause.mod === 'missing') return hasEntries(e) !== clause.missing;
  const any = clause.values.some((v) => v.match(e));
  return clause.mod === 'not' ? !any : any;
}

/* ---- sorting ---------------------------------------------------------------------------- */

function bytesCmp(a, b) {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function tupleCmp(a, b) {
  for (let i = 0; i < a.length; i++) {
    const c = bytesCmp(a[i], b[i]);
    if (c) return c;
  }
  return 0;
}

const bigCmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/* The sort values of one parameter type: [candidates, compare] (docs: the index's order). */
function sortCandidates(sp, e, desc) {
  switch (sp.type) {
    case 'string': return [e.S, bytesCmp];
    case 'uri': return [e.U, bytesCmp];
    case 'token': return [e.T.map((t) => [t.code, t.system]), tupleCmp];
    case 'reference':
      return [e.R.map((r) => (r.url !== undefined ? [r.url, r.version !== undefined ? r.version : ''] : [r.id, r.type])), tupleCmp];
    case 'date':
      return desc ? [e.D.map((d) => [d.hi, d.lo]), (a, b) => bigCmp(a[0], b[0]) || bigCmp(a[1], b[1])]
        : [e.D.map((d) => [d.lo, d.hi]), (a, b) => bigCmp(a[0], b[0]) || bigCmp(a[1], b[1])];
    case 'number': return [e.N, (a, b) => a.cmp(b)];
    case 'quantity': return [e.V, (a, b) => a.cmp(b)];
    default: return [[], () => 0];
  }
}

/* The key of one match for one sort key: the smallest value ascending, the largest
 * descending; null when it has none. */
function sortKey(sk, e) {
  const [cands, cmp] = sortCandidates(sk.sp, e, sk.desc);
  let best = null;
  for (const c of cands) if (best === null || (sk.desc ? cmp(c, best) > 0 : cmp(c, best) < 0)) best = c;
  return best === null ? null : { v: best, cmp };
}

/* Order rows [{rn, keys: [sortKey...]}]: by each key (missing last), ties by rn. */
function orderRows(rows, sort) {
  rows.sort((a, b) => {
    for (let i = 0; i < sort.length; i++) {
      const x = a.keys[i], y = b.keys[i];
      if (!x || !y) {
        if (x !== y) return x ? -1 : 1;
        continue;
      }
      const c = x.cmp(x.v, y.v);
      if (c) return sort[i].desc ? -c : c;
    }
    return a.rn - b.rn;
  });
  return rows;
}

module.exports = {
  parseQuery, clauseMatches, sortKey, orderRows, QueryError, ucum, numberRange, ratio, commensurable,
};
