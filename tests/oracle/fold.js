/*
 * fold.js -- the search folding of docs/SEARCH.md section 1, written again in
 * JavaScript for the test oracle (tests/oracle/oracle.js).
 *
 * Why it is shaped this way: the oracle must not share code with the engine, so the
 * folding table is not read from src/index/fold_gen.c but rebuilt here from the rule
 * that tools/gen_fold.py states, with the JavaScript Unicode functions:
 *
 *   for every assigned code point of Latin (U+00C0-024F, U+1E00-1EFF), Greek
 *   (U+0370-03FF) and Cyrillic (U+0400-04FF): its canonical decomposition (NFD)
 *   without combining marks, case-folded, with the letters that have no
 *   decomposition spelled out (ae, oe, o, d, l, th, h, i, t, l, k, n, f, ss);
 *   a second pass decomposes and spells out what case folding produced.
 *
 * JavaScript has toLowerCase but no full case folding; CASEFOLD lists the code
 * points of those ranges where the two differ (Python's str.casefold is the
 * reference; tests/http/test_search_oracle.py checks the whole table against
 * tools/gen_fold.py so a difference shows up as a failing test, not a silent drift).
 *
 * A string is then folded code point by code point (the docs' "runs of white space
 * become one space"): ASCII is lower-cased, combining marks U+0300-036F are dropped,
 * a code point of the table becomes its folding, everything else is kept as written;
 * white space (space, tab, CR, LF, U+00A0, U+2000-200A, U+3000) collapses to one space
 * and is dropped at both ends; the result is cut to IDX_MAX_VALUE (400) UTF-8 bytes on
 * a character boundary.
 */
'use strict';

const RANGES = [[0x00c0, 0x024f], [0x0370, 0x03ff], [0x0400, 0x04ff], [0x1e00, 0x1eff]];
const PLAIN = {
  'æ': 'ae', 'œ': 'oe', 'ø': 'o', 'đ': 'd', 'ð': 'd', 'ł': 'l', 'þ': 'th',
  'ħ': 'h', 'ı': 'i', 'ŧ': 't', 'ŀ': 'l', 'ĸ': 'k', 'ŋ': 'n', 'ƒ': 'f', 'ß': 'ss',
};
// Full case folding where it differs from toLowerCase (CaseFolding.txt, status C/F).
const CASEFOLD = {
  'ß': 'ss', 'ẞ': 'ss', 'ſ': 's', 'ς': 'σ', 'ϐ': 'β', 'ϑ': 'θ', 'ϕ': 'φ', 'ϖ': 'π',
  'ϰ': 'κ', 'ϱ': 'ρ', 'ϵ': 'ε', 'ŉ': 'ʼn', 'ẚ': 'aʾ', 'ẛ': 'ṡ', 'ᲀ': 'в',
  'İ': 'i̇', 'ǰ': 'ǰ', 'ΐ': 'ΐ', 'ΰ': 'ΰ', 'և': 'եւ',
  'ẖ': 'ẖ', 'ẗ': 'ẗ', 'ẘ': 'ẘ', 'ẙ': 'ẙ',
};
const MAX_VALUE = 400;

function casefold(s) {
  let out = '';
  for (const c of s) out += CASEFOLD[c] !== undefined ? CASEFOLD[c] : c.toLowerCase();
  return out;
}

function stripMarks(s) {
  return s.normalize('NFD').replace(/\p{Mn}/gu, '');
}

function spell(s) {
  let out = '';
  for (const c of s) out += PLAIN[c] !== undefined ? PLAIN[c] : c;
  return out;
}

/* The folding of one character by the gen_fold.py rule. */
function foldChar(ch) {
  const once = spell(casefold(stripMarks(ch)));
  return spell(stripMarks(once));
}

const TABLE = new Map();
for (const [lo, hi] of RANGES) {
  for (let cp = lo; cp <= hi; cp++) {
    const ch = String.fromCodePoint(cp);
    if (/\p{Cn}/u.test(ch)) continue; // unassigned
    const f = foldChar(ch);
    if (f !== ch && f) TABLE.set(cp, f);
  }
}

function isSpace(cp) {
  return cp === 0x20 || cp === 0x09 || cp === 0x0a || cp === 0x0d || cp === 0xa0 ||
    cp === 0x3000 || (cp >= 0x2000 && cp <= 0x200a);
}

/* The folded form of a whole string (kinds S and Y, and every string query). */
function fold(s) {
  let out = '';
  let bytes = 0;
  let pendingSpace = false;
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    if (isSpace(cp)) {
      pendingSpace = out.length > 0;
      continue;
    }
    let f;
    if (cp < 0x80) f = cp >= 0x41 && cp <= 0x5a ? String.fromCharCode(cp + 32) : ch;
    else if (cp >= 0x300 && cp <= 0x36f) f = '';
    else f = TABLE.has(cp) ? TABLE.get(cp) : ch;
    const add = (pendingSpace ? ' ' : '') + f;
    const n = Buffer.byteLength(add, 'utf8');
    if (f === '' && !pendingSpace) continue;
    if (bytes + n > MAX_VALUE) {
      // the engine writes the pending space, then drops the character that overflows
      if (pendingSpace) out += ' ';
      break;
    }
    out += add;
    bytes += n;
    pendingSpace = false;
  }
  return out;
}

module.exports = { fold, foldChar, TABLE, RANGES };
