/*
 * json.c -- strict RFC 8259 parser, tree lookup and tree editing (writer: json_write.c).
 *
 * Shape of the parser, chosen for speed on the hottest path of the server:
 *
 *   - Recursive descent, depth capped at JSON_MAX_DEPTH, so the C stack is bounded.
 *   - No allocation per node. While a container is open its children are collected
 *     on a scratch stack (first in an inline array inside the parser, then on the
 *     heap if a document is unusually wide); when the container closes they are
 *     copied into the arena as one contiguous array, so json_val.u.items and
 *     json_val.u.members are plain C arrays.
 *   - One arena block for all decoded strings. A string's decoded bytes plus its
 *     NUL never exceed its raw bytes plus its two quotes, so a block of len + 1
 *     bytes holds every string of the document; strings are written into it as
 *     they are scanned (one pass: scan, validate, unescape and copy together).
 *
 *       input:  { " i d " : " a \ n " }          string block: i d \0 a \n \0 . . .
 *                  ^^^^^^     ^^^^^^^^                          ^key    ^value
 *
 *   - Plain string runs are scanned eight bytes at a time (SWAR): a word with no
 *     byte < 0x20, '"', '\\' or >= 0x80 is copied as a whole. Because the
 *     destination never runs ahead of the source (see above), an 8-byte store
 *     into the string block is always in bounds when the 8-byte load was.
 *   - Numbers are validated and kept as raw text pointing into the input.
 *
 * Duplicate keys are rejected (always; RFC 8259 only says SHOULD). Objects with
 * up to DUP_LINEAR members are checked by a linear scan; wider objects switch to
 * a small open-addressing hash table so a hostile object with 10^5 keys stays
 * linear time.
 */
#include "json/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

#define INLINE_VALS 128
#define INLINE_MEMBERS 64
#define DUP_LINEAR 32

typedef struct parser {
    const unsigned char *start; /* text[0], for offsets */
    const unsigned char *p;     /* cursor */
    const unsigned char *end;
    arena *a;
    unsigned flags;
    unsigned char *sdst; /* next free byte of the string block */
    json_error *err;
    json_val *vs; /* scratch stack of array items */
    size_t vtop, vcap;
    json_member *ms; /* scratch stack of object members */
    size_t mtop, mcap;
    json_val vinline[INLINE_VALS];
    json_member minline[INLINE_MEMBERS];
} parser;

/* ---- errors -------------------------------------------------------------------- */

static int fail(parser *P, const unsigned char *at, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(parser *P, const unsigned char *at, int code, const char *fmt, ...)
{
    json_error *e = P->err;
    if (!e)
        return code;
    size_t off = (size_t)(at - P->start);
    int line = 1, col = 1;
    const unsigned char *q = P->start;
    /* A leading BOM is invisible in editors: do not count it as a column. */
    if (P->end - q >= 3 && q[0] == 0xEF && q[1] == 0xBB && q[2] == 0xBF && at >= q + 3)
        q += 3;
    for (; q < at; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else if ((*q & 0xC0) != 0x80) {
            col++; /* columns count characters, not UTF-8 continuation bytes */
        }
    }
    e->off = off;
    e->line = line;
    e->col = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

/* A short printable description of the byte at p, for messages. */
static void describe(const parser *P, const unsigned char *p, char *out, size_t n)
{
    if (p >= P->end)
        snprintf(out, n, "end of input");
    else if (*p >= 0x20 && *p < 0x7F)
        snprintf(out, n, "'%c'", *p);
    else
        snprintf(out, n, "byte 0x%02X", *p);
}

static int unexpected(parser *P, const char *expected)
{
    if (P->p >= P->end)
        return fail(P, P->p, ERR_INVALID, "unexpected end of input (expected %s)", expected);
    char what[32];
    describe(P, P->p, what, sizeof what);
    return fail(P, P->p, ERR_INVALID, "unexpected %s (expected %s)", what, expected);
}

/* ---- scratch stacks ------------------------------------------------------------ */

static int grow(void **stack, size_t *cap, size_t elem, const void *inline_buf)
{
    size_t ncap = *cap * 2;
    void *n;
    if (*stack == inline_buf) {
        n = malloc(ncap * elem);
        if (n)
            memcpy(n, *stack, *cap * elem);
    } else {
        n = realloc(*stack, ncap * elem);
    }
    if (!n)
        return ERR_NOMEM;
    *stack = n;
    *cap = ncap;
    return 0;
}

static inline int push_val(parser *P, const json_val *v)
{
    if (P->vtop == P->vcap && grow((void **)&P->vs, &P->vcap, sizeof *P->vs, P->vinline))
        return ERR_NOMEM;
    P->vs[P->vtop++] = *v;
    return 0;
}

static inline int push_member(parser *P, const char *key, uint32_t klen, const json_val *v)
{
    if (P->mtop == P->mcap && grow((void **)&P->ms, &P->mcap, sizeof *P->ms, P->minline))
        return ERR_NOMEM;
    json_member *m = &P->ms[P->mtop++];
    m->key = key;
    m->key_len = klen;
    m->val = *v;
    return 0;
}

/* ---- lexical helpers ----------------------------------------------------------- */

static inline const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
    /* every byte above ' ' ends the run at once, which is the common case */
    while (p < end && *p <= ' ' && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* Length of the valid UTF-8 sequence starting at p (a byte >= 0x80), or 0 when it
 * is invalid: stray continuation, overlong form, UTF-16 surrogate, > U+10FFFF or
 * truncated. Ranges from RFC 3629 section 4. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t avail = (size_t)(end - p);
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0) {
        if (avail < 2 || p[1] < 0x80 || p[1] > 0xBF)
            return 0;
        return 2;
    }
    if (c < 0xF0) {
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
        if (avail < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80)
            return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
        if (avail < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static unsigned char *put_utf8(unsigned char *d, unsigned cp)
{
    if (cp < 0x80) {
        *d++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *d++ = (unsigned char)(0xC0 | cp >> 6);
        *d++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *d++ = (unsigned char)(0xE0 | cp >> 12);
        *d++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        *d++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *d++ = (unsigned char)(0xF0 | cp >> 18);
        *d++ = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        *d++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        *d++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    return d;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Non-zero when the word holds a byte < 0x20, '"', '\\' or >= 0x80. The lowest
 * flagged byte is always a true hit (borrows only run upward from a true hit). */
static inline uint64_t special_mask(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
    uint64_t t = ((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q) | ((b - ONES) & ~b);
    return (t | w) & HIGHS;
}

static inline size_t first_flagged(uint64_t m, const unsigned char *s)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    (void)s;
    return (size_t)__builtin_ctzll(m) >> 3;
#else
    (void)m;
    size_t k = 0;
    while (s[k] >= 0x20 && s[k] < 0x80 && s[k] != '"' && s[k] != '\\')
        k++;
    return k;
#endif
}

/* Parse the string whose opening quote is at P->p; decoded bytes go to the string
 * block. On success out and outlen are set and P->p is past the closing quote. */
static int parse_string(parser *P, const char **out, uint32_t *outlen)
{
    const unsigned char *s = P->p + 1, *end = P->end;
    unsigned char *d = P->sdst, *d0 = d;
    for (;;) {
        /* Plain run: eight bytes at a time, then byte by byte. */
        while (end - s >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            memcpy(d, &w, 8);
            uint64_t m = special_mask(w);
            if (m) {
                size_t k = first_flagged(m, s);
                s += k;
                d += k;
                goto special;
            }
            s += 8;
            d += 8;
        }
        while (s < end && *s >= 0x20 && *s < 0x80 && *s != '"' && *s != '\\')
            *d++ = *s++;
        if (s >= end)
            return fail(P, end, ERR_INVALID, "unexpected end of input in string");
    special:
        if (*s == '"') {
            *d = 0;
            *out = (const char *)d0;
            *outlen = (uint32_t)(d - d0);
            P->sdst = d + 1;
            P->p = s + 1;
            return 0;
        }
        if (*s == '\\') {
            const unsigned char *esc = s;
            if (end - s < 2)
                return fail(P, end, ERR_INVALID, "unexpected end of input in string");
            switch (s[1]) {
            case '"':
                *d++ = '"';
                break;
            case '\\':
                *d++ = '\\';
                break;
            case '/':
                *d++ = '/';
                break;
            case 'b':
                *d++ = '\b';
                break;
            case 'f':
                *d++ = '\f';
                break;
            case 'n':
                *d++ = '\n';
                break;
            case 'r':
                *d++ = '\r';
                break;
            case 't':
                *d++ = '\t';
                break;
            case 'u': {
                unsigned cp, lo;
                if (end - s < 6 || hex4(s + 2, &cp))
                    return fail(P, esc, ERR_INVALID, "invalid \\u escape (need four hex digits)");
                s += 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return fail(P, esc, ERR_INVALID, "lone low surrogate \\u%04X in string", cp);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return fail(P, esc, ERR_INVALID,
                                    "high surrogate \\u%04X not followed by a low surrogate", cp);
                    s += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                d = put_utf8(d, cp);
                continue;
            }
            default: {
                char what[32];
                describe(P, s + 1, what, sizeof what);
                return fail(P, esc, ERR_INVALID, "invalid escape \\ followed by %s", what);
            }
            }
            s += 2;
            continue;
        }
        if (*s < 0x20)
            return fail(P, s, ERR_INVALID, "control character U+%04X must be escaped in a string",
                        *s);
        size_t n = utf8_len(s, end);
        if (!n)
            return fail(P, s, ERR_INVALID, "invalid UTF-8 at byte %zu", (size_t)(s - P->start));
        memcpy(d, s, n);
        d += n;
        s += n;
    }
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int parse_number(parser *P, json_val *out)
{
    const unsigned char *s = P->p, *p = s, *end = P->end;
    if (*p == '-')
        p++;
    if (p >= end)
        return fail(P, p, ERR_INVALID, "unexpected end of input in number");
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9')
            return fail(P, s, ERR_INVALID, "leading zeros are not allowed in numbers");
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return fail(P, p, ERR_INVALID, "expected a digit in number");
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return fail(P, p, ERR_INVALID, "expected a digit after the decimal point");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return fail(P, p, ERR_INVALID, "expected a digit in the exponent");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    out->type = JSON_NUMBER;
    out->n = (uint32_t)(p - s);
    out->u.s = (const char *)s;
    P->p = p;
    return 0;
}

static int parse_literal(parser *P, json_val *out, const char *word, size_t n, json_type t)
{
    if ((size_t)(P->end - P->p) < n || memcmp(P->p, word, n) != 0) {
        char what[32];
        describe(P, P->p, what, sizeof what);
        return fail(P, P->p, ERR_INVALID, "unexpected %s (expected a value)", what);
    }
    out->type = t;
    out->n = 0;
    out->u.s = NULL;
    P->p += n;
    return 0;
}

/* ---- containers ---------------------------------------------------------------- */

static int parse_value(parser *P, json_val *out, int depth);

static int parse_array(parser *P, json_val *out, int depth)
{
    const unsigned char *open = P->p;
    size_t base = P->vtop, nulls = 0;
    int rc;
    P->p = skip_ws(P->p + 1, P->end);
    if (P->p < P->end && *P->p == ']') {
        if (P->flags & JSON_FHIR)
            return fail(P, open, ERR_INVALID, "empty array is not allowed in FHIR JSON");
        P->p++;
        out->type = JSON_ARRAY;
        out->n = 0;
        out->u.items = NULL;
        return 0;
    }
    for (;;) {
        json_val v;
        if ((rc = parse_value(P, &v, depth)))
            return rc;
        nulls += v.type == JSON_NULL;
        if (push_val(P, &v))
            return fail(P, P->p, ERR_NOMEM, "out of memory");
        P->p = skip_ws(P->p, P->end);
        if (P->p < P->end && *P->p == ',') {
            P->p++;
            continue;
        }
        if (P->p < P->end && *P->p == ']') {
            P->p++;
            break;
        }
        return unexpected(P, "',' or ']' in array");
    }
    size_t n = P->vtop - base;
    if ((P->flags & JSON_FHIR) && nulls == n)
        return fail(P, open, ERR_INVALID, "an array may not contain only nulls in FHIR JSON");
    if (n > UINT32_MAX)
        return fail(P, open, ERR_TOOBIG, "array too long");
    json_val *items = arena_alloc(P->a, n * sizeof *items);
    if (!items)
        return fail(P, open, ERR_NOMEM, "out of memory");
    memcpy(items, P->vs + base, n * sizeof *items);
    P->vtop = base;
    out->type = JSON_ARRAY;
    out->n = (uint32_t)n;
    out->u.items = items;
    return 0;
}

static uint64_t key_hash(const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 0x100000001b3ull;
    return h;
}

/* Hash set of member indices (relative to the object's base, plus one; 0 = empty)
 * for wide objects. */
typedef struct keyset {
    uint32_t *slot;
    size_t cap; /* power of two */
} keyset;

/* Insert member i; returns 1 if an equal key is present (no insert), 0 when added,
 * ERR_NOMEM on failure. */
static int keyset_add(keyset *ks, const json_member *m, size_t i)
{
    if (i * 2 >= ks->cap) {
        size_t ncap = ks->cap ? ks->cap * 2 : 64;
        while (i * 2 >= ncap)
            ncap *= 2;
        uint32_t *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return ERR_NOMEM;
        for (size_t j = 0; j < ks->cap; j++) {
            uint32_t v = ks->slot[j];
            if (!v)
                continue;
            size_t h = (size_t)key_hash(m[v - 1].key, m[v - 1].key_len) & (ncap - 1);
            while (ns[h])
                h = (h + 1) & (ncap - 1);
            ns[h] = v;
        }
        free(ks->slot);
        ks->slot = ns;
        ks->cap = ncap;
    }
    size_t h = (size_t)key_hash(m[i].key, m[i].key_len) & (ks->cap - 1);
    while (ks->slot[h]) {
        const json_member *o = &m[ks->slot[h] - 1];
        if (o->key_len == m[i].key_len && memcmp(o->key, m[i].key, o->key_len) == 0)
            return 1;
        h = (h + 1) & (ks->cap - 1);
    }
    ks->slot[h] = (uint32_t)(i + 1);
    return 0;
}

static int parse_object(parser *P, json_val *out, int depth)
{
    const unsigned char *open = P->p;
    size_t base = P->mtop;
    keyset ks = {0};
    int rc;
    P->p = skip_ws(P->p + 1, P->end);
    if (P->p < P->end && *P->p == '}') {
        if (P->flags & JSON_FHIR)
            return fail(P, open, ERR_INVALID, "empty object is not allowed in FHIR JSON");
        P->p++;
        out->type = JSON_OBJECT;
        out->n = 0;
        out->u.members = NULL;
        return 0;
    }
    for (;;) {
        if (P->p >= P->end || *P->p != '"') {
            rc = unexpected(P, "'\"' starting an object key");
            goto fail;
        }
        const unsigned char *key_at = P->p;
        const char *key;
        uint32_t klen;
        if ((rc = parse_string(P, &key, &klen)))
            goto fail;
        P->p = skip_ws(P->p, P->end);
        if (P->p >= P->end || *P->p != ':') {
            rc = unexpected(P, "':' after object key");
            goto fail;
        }
        P->p = skip_ws(P->p + 1, P->end);
        json_val v;
        const unsigned char *val_at = P->p;
        if ((rc = parse_value(P, &v, depth)))
            goto fail;
        if (v.type == JSON_NULL && (P->flags & JSON_FHIR)) {
            rc = fail(P, val_at, ERR_INVALID,
                      "null is not allowed as a value in FHIR JSON (key '%.60s')", key);
            goto fail;
        }
        if (push_member(P, key, klen, &v)) {
            rc = fail(P, P->p, ERR_NOMEM, "out of memory");
            goto fail;
        }
        /* duplicate check of the member just pushed */
        size_t cnt = P->mtop - base - 1;
        const json_member *m = P->ms + base;
        int dup = 0;
        if (cnt < DUP_LINEAR) {
            for (size_t i = 0; i < cnt; i++)
                if (m[i].key_len == klen && memcmp(m[i].key, key, klen) == 0) {
                    dup = 1;
                    break;
                }
        } else {
            if (!ks.cap) { /* switch to hashing: enter the earlier members */
                for (size_t i = 0; i < cnt; i++)
                    if (keyset_add(&ks, m, i) < 0) {
                        rc = fail(P, P->p, ERR_NOMEM, "out of memory");
                        goto fail;
                    }
            }
            int r = keyset_add(&ks, m, cnt);
            if (r < 0) {
                rc = fail(P, P->p, ERR_NOMEM, "out of memory");
                goto fail;
            }
            dup = r;
        }
        if (dup) {
            rc = fail(P, key_at, ERR_INVALID, "duplicate key '%.60s'", key);
            goto fail;
        }
        P->p = skip_ws(P->p, P->end);
        if (P->p < P->end && *P->p == ',') {
            P->p = skip_ws(P->p + 1, P->end);
            continue;
        }
        if (P->p < P->end && *P->p == '}') {
            P->p++;
            break;
        }
        rc = unexpected(P, "',' or '}' in object");
        goto fail;
    }
    free(ks.slot);
    size_t n = P->mtop - base;
    if (n > UINT32_MAX)
        return fail(P, open, ERR_TOOBIG, "object too large");
    json_member *mem = arena_alloc(P->a, n * sizeof *mem);
    if (!mem)
        return fail(P, open, ERR_NOMEM, "out of memory");
    memcpy(mem, P->ms + base, n * sizeof *mem);
    P->mtop = base;
    out->type = JSON_OBJECT;
    out->n = (uint32_t)n;
    out->u.members = mem;
    return 0;
fail:
    free(ks.slot);
    return rc;
}

static int parse_value(parser *P, json_val *out, int depth)
{
    P->p = skip_ws(P->p, P->end);
    if (P->p >= P->end)
        return fail(P, P->p, ERR_INVALID, "unexpected end of input (expected a value)");
    out->off = (uint32_t)(P->p - P->start);
    switch (*P->p) {
    case '"': {
        const char *s;
        uint32_t n;
        int rc = parse_string(P, &s, &n);
        if (rc)
            return rc;
        out->type = JSON_STRING;
        out->n = n;
        out->u.s = s;
        return 0;
    }
    case '{':
    case '[':
        if (depth >= JSON_MAX_DEPTH)
            return fail(P, P->p, ERR_TOOBIG, "nesting deeper than %d levels", JSON_MAX_DEPTH);
        return *P->p == '{' ? parse_object(P, out, depth + 1) : parse_array(P, out, depth + 1);
    case 't':
        return parse_literal(P, out, "true", 4, JSON_TRUE);
    case 'f':
        return parse_literal(P, out, "false", 5, JSON_FALSE);
    case 'n':
        return parse_literal(P, out, "null", 4, JSON_NULL);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return parse_number(P, out);
    default: {
        char what[32];
        describe(P, P->p, what, sizeof what);
        if (*P->p >= 0x80 && !utf8_len(P->p, P->end))
            return fail(P, P->p, ERR_INVALID, "invalid UTF-8 at byte %zu",
                        (size_t)(P->p - P->start));
        return fail(P, P->p, ERR_INVALID, "unexpected %s (expected a value)", what);
    }
    }
}

int json_parse(arena *a, const char *text, size_t len, unsigned flags, json_val **out,
               json_error *err)
{
    parser P;
    int rc;
    P.start = P.p = (const unsigned char *)text;
    P.end = P.start + len;
    P.a = a;
    P.flags = flags;
    P.err = err;
    P.vs = P.vinline;
    P.vtop = 0;
    P.vcap = INLINE_VALS;
    P.ms = P.minline;
    P.mtop = 0;
    P.mcap = INLINE_MEMBERS;
    *out = NULL;
    if (err) {
        err->off = 0;
        err->line = err->col = 0;
        err->msg[0] = 0;
    }
    if (len > UINT32_MAX - 1)
        return fail(&P, P.start, ERR_TOOBIG, "document larger than 4 GiB");
    if (len >= 3 && P.p[0] == 0xEF && P.p[1] == 0xBB && P.p[2] == 0xBF)
        P.p += 3;
    if (skip_ws(P.p, P.end) == P.end)
        return fail(&P, P.end, ERR_INVALID, "unexpected end of input (empty document)");
    P.sdst = arena_alloc(a, len + 1);
    json_val *root = arena_alloc(a, sizeof *root);
    if (!P.sdst || !root)
        return fail(&P, P.start, ERR_NOMEM, "out of memory");
    rc = parse_value(&P, root, 0);
    if (!rc && root->type == JSON_NULL && (flags & JSON_FHIR))
        rc = fail(&P, P.start + root->off, ERR_INVALID,
                  "null is not allowed as a top-level value in FHIR JSON");
    if (!rc) {
        P.p = skip_ws(P.p, P.end);
        if (P.p < P.end) {
            char what[32];
            describe(&P, P.p, what, sizeof what);
            rc = fail(&P, P.p, ERR_INVALID, "unexpected %s after the top-level value", what);
        }
    }
    if (P.vs != P.vinline)
        free(P.vs);
    if (P.ms != P.minline)
        free(P.ms);
    if (!rc)
        *out = root;
    return rc;
}

/* ---- lookup and comparison ----------------------------------------------------- */

json_val *json_getn(const json_val *obj, const char *key, size_t key_len)
{
    if (!obj || obj->type != JSON_OBJECT)
        return NULL;
    for (uint32_t i = 0; i < obj->n; i++) {
        json_member *m = &obj->u.members[i];
        if (m->key_len == key_len && memcmp(m->key, key, key_len) == 0)
            return &m->val;
    }
    return NULL;
}

json_val *json_get(const json_val *obj, const char *key)
{
    return json_getn(obj, key, strlen(key));
}

const char *json_get_str(const json_val *obj, const char *key)
{
    const json_val *v = json_get(obj, key);
    return v && v->type == JSON_STRING ? v->u.s : NULL;
}

int json_equal(const json_val *x, const json_val *y)
{
    if (x == y)
        return 1;
    if (!x || !y || x->type != y->type || x->n != y->n)
        return 0;
    switch (x->type) {
    case JSON_NULL:
    case JSON_FALSE:
    case JSON_TRUE:
        return 1;
    case JSON_NUMBER:
    case JSON_STRING:
        return x->n == 0 || memcmp(x->u.s, y->u.s, x->n) == 0;
    case JSON_ARRAY:
        for (uint32_t i = 0; i < x->n; i++)
            if (!json_equal(&x->u.items[i], &y->u.items[i]))
                return 0;
        return 1;
    case JSON_OBJECT:
        for (uint32_t i = 0; i < x->n; i++) {
            const json_member *a = &x->u.members[i], *b = &y->u.members[i];
            if (a->key_len != b->key_len || memcmp(a->key, b->key, a->key_len) != 0 ||
                !json_equal(&a->val, &b->val))
                return 0;
        }
        return 1;
    }
    return 0;
}

/* ---- building and editing ------------------------------------------------------ */

static json_val *new_node(arena *a, json_type t)
{
    json_val *v = arena_alloc(a, sizeof *v);
    if (!v)
        return NULL;
    memset(v, 0, sizeof *v);
    v->type = t;
    return v;
}

json_val *json_new_string(arena *a, const char *s, size_t n)
{
    if (n > UINT32_MAX)
        return NULL;
    char *c = arena_strndup(a, s, n);
    json_val *v = c ? new_node(a, JSON_STRING) : NULL;
    if (!v)
        return NULL;
    v->n = (uint32_t)n;
    v->u.s = c;
    return v;
}

json_val *json_new_number(arena *a, const char *text, size_t n)
{
    if (n > UINT32_MAX)
        return NULL;
    char *c = arena_strndup(a, text, n);
    json_val *v = c ? new_node(a, JSON_NUMBER) : NULL;
    if (!v)
        return NULL;
    v->n = (uint32_t)n;
    v->u.s = c;
    return v;
}

json_val *json_new_object(arena *a)
{
    return new_node(a, JSON_OBJECT);
}

json_val *json_new_array(arena *a)
{
    return new_node(a, JSON_ARRAY);
}

int json_obj_set(arena *a, json_val *obj, const char *key, const json_val *val)
{
    if (!obj || obj->type != JSON_OBJECT)
        return ERR_INVALID;
    size_t klen = strlen(key);
    json_val *old = json_getn(obj, key, klen);
    if (old) {
        *old = *val;
        return 0;
    }
    if (obj->n == UINT32_MAX || klen > UINT32_MAX)
        return ERR_TOOBIG;
    char *k = arena_strndup(a, key, klen);
    json_val copy = *val; /* val may live inside obj's own array, which may move */
    if (!k)
        return ERR_NOMEM;
    json_member *m = arena_realloc(a, obj->u.members, obj->n * sizeof *m, (obj->n + 1) * sizeof *m);
    if (!m)
        return ERR_NOMEM;
    m[obj->n].key = k;
    m[obj->n].key_len = (uint32_t)klen;
    m[obj->n].val = copy;
    obj->u.members = m;
    obj->n++;
    return 0;
}

void json_obj_del(json_val *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT)
        return;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < obj->n; i++) {
        json_member *m = &obj->u.members[i];
        if (m->key_len == klen && memcmp(m->key, key, klen) == 0) {
            memmove(m, m + 1, (obj->n - i - 1) * sizeof *m);
            obj->n--;
            return;
        }
    }
}

int json_arr_push(arena *a, json_val *arr, const json_val *val)
{
    if (!arr || arr->type != JSON_ARRAY)
        return ERR_INVALID;
    if (arr->n == UINT32_MAX)
        return ERR_TOOBIG;
    json_val copy = *val;
    json_val *items =
        arena_realloc(a, arr->u.items, arr->n * sizeof *items, (arr->n + 1) * sizeof *items);
    if (!items)
        return ERR_NOMEM;
    items[arr->n] = copy;
    arr->u.items = items;
    arr->n++;
    return 0;
}
