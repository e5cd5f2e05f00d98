/*
 * composite.c -- the shared byte forms of composite parameters (docs/SEARCH.md 1a):
 * which definition and type each component has, and the "part" form of one
 * component value inside an IDX_COMPOSITE entry.
 *
 * A composite entry is the concatenation of one part per component, each a kind
 * byte and a self-delimiting value, so the engine can read the parts back from the
 * key alone. Strings inside parts are cut at IDX_PART_STR bytes so that three
 * components always fit in one key; the query's values are cut by the same function
 * (idx_part_recode), so both sides compare the same bytes.
 */
#include <string.h>

#include "index/index.h"

#define R4_RELATIONSHIP "http://hl7.org/fhir/SearchParameter/DocumentReference-relationship"

const fhir_search_param *idx_component(const fhir_search_param *sp, unsigned k)
{
    if (!sp || sp->type != FHIR_SP_COMPOSITE || k >= sp->ncomponents)
        return NULL;
    /* R4's DocumentReference-relationship names its components' definitions the
     * wrong way round (the expression `code` under the reference `relatesto`, and
     * `target` under the token `relation`); R5 fixed it. The expressions are right:
     * the types follow them. */
    if (sp->ncomponents == 2 && !strcmp(sp->url, R4_RELATIONSHIP))
        k = 1 - k;
    return fhir_search_param_by_url(sp->component_urls[k]);
}

int idx_part_kind(uint8_t kind)
{
    switch (kind) {
    case IDX_TOKEN:
    case IDX_STRING:
    case IDX_REF:
    case IDX_URI:
    case IDX_DATE:
    case IDX_NUMBER:
    case IDX_QTY_PART: return 1;
    default: return 0;
    }
}

/* Copy one escaped string (through its 0x00) from p[0..n), unescaped bytes cut at
 * IDX_PART_STR; *used: bytes read. An unterminated tail (a query prefix) is copied
 * without a terminator. -1 on a malformed escape. */
static int recode_str(const uint8_t *p, size_t n, buf *out, size_t *used)
{
    size_t raw = 0, i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c == 0) {
            buf_putc(out, 0);
            *used = i + 1;
            return 0;
        }
        size_t w = 1;
        if (c == 1) {
            if (i + 1 >= n)
                return -1;
            w = 2;
        }
        if (raw < IDX_PART_STR)
            buf_put(out, p + i, w);
        raw++;
        i += w;
    }
    *used = n;
    return 0;
}

int idx_part_recode(uint8_t kind, const uint8_t *val, size_t len, buf *out)
{
    size_t nstr = 0, fixed = 0;
    switch (kind) {
    case IDX_TOKEN:
    case IDX_REF: nstr = 2; break;
    case IDX_STRING:
    case IDX_URI: nstr = 1; break;
    case IDX_DATE:
    case IDX_NUMBER: fixed = len; break;
    case IDX_QTY_PART: /* system code unit double has-canonical [unit double] */
        break;
    default: return -1;
    }
    buf_putc(out, (char)kind);
    size_t o = 0, used;
    if (kind == IDX_QTY_PART) {
        for (int i = 0; i < 3; i++, o += used)
            if (o >= len || recode_str(val + o, len - o, out, &used))
                return -1;
        if (o + 9 > len)
            return -1;
        buf_put(out, val + o, 9);
        int canon = val[o + 8];
        o += 9;
        if (canon) {
            if (o >= len || recode_str(val + o, len - o, out, &used) || o + used + 8 > len)
                return -1;
            o += used;
            buf_put(out, val + o, 8);
            o += 8;
        }
        return o == len ? 0 : -1;
    }
    for (size_t i = 0; i < nstr && o < len; i++, o += used)
        if (recode_str(val + o, len - o, out, &used))
            return -1;
    if (fixed)
        buf_put(out, val, fixed);
    return 0;
}

size_t idx_str_len(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += p[i] == 1 ? 2 : 1)
        if (p[i] == 0)
            return i + 1;
    return 0;
}

size_t idx_part_len(const uint8_t *p, size_t n)
{
    if (!n)
        return 0;
    size_t nstr = 0, o = 1, l;
    switch (p[0]) {
    case IDX_TOKEN:
    case IDX_REF: nstr = 2; break;
    case IDX_STRING:
    case IDX_URI: nstr = 1; break;
    case IDX_DATE: return n >= 17 ? 17 : 0;
    case IDX_NUMBER: return n >= 9 ? 9 : 0;
    case IDX_QTY_PART: nstr = 3; break;
    default: return 0;
    }
    for (size_t s = 0; s < nstr; s++, o += l)
        if (o >= n || !(l = idx_str_len(p + o, n - o)))
            return 0;
    if (p[0] != IDX_QTY_PART)
        return o;
    if (o + 9 > n)
        return 0;
    int canon = p[o + 8];
    o += 9;
    if (!canon)
        return o;
    if (o >= n || !(l = idx_str_len(p + o, n - o)))
        return 0;
    o += l;
    return o + 8 <= n ? o + 8 : 0;
}
