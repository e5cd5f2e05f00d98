/*
 * keys.c -- the byte forms of the search index: parameter hashes, normalised
 * values, SearchParam / ResourceParam / rn keys (docs/STORAGE.md section 4).
 *
 * Strings are folded for search without a Unicode library at run time: a table
 * generated from Python's Unicode database (tools/gen_fold.py -> fold_gen.c)
 * maps every Latin, Greek and Cyrillic letter to its decomposition without marks,
 * case-folded (Ö -> o, ß -> ss, Σ -> σ, æ -> ae); combining marks (U+0300..U+036F,
 * text already in NFD) are dropped and ASCII is lower-cased. That covers the names
 * and addresses of every European language; other scripts are kept as they are,
 * so a search still finds them by their exact spelling.
 */
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "index/fold.h"
#include "fhirpath/datetime.h"
#include "fhir/model.h"
#include "index/index.h"

/* SHA-256 through OpenSSL costs about a microsecond (the digest is fetched each time)
 * and an Observation's ~35 parameters are hashed on every write, so the hashes of
 * every (type, parameter) of the model are computed once, into a table built at first
 * use and only read after; it is found by a cheap hash of the two names, and a name
 * outside the model is hashed on the spot. */
#define SP_TAB 8192 /* slots, a power of two over twice the model's pairs */
typedef struct sp_slot {
    const char *type, *code; /* the model's strings; NULL: empty */
    uint32_t h;
} sp_slot;
static sp_slot sp_tab[SP_TAB];
static pthread_once_t sp_tab_once = PTHREAD_ONCE_INIT;

static uint32_t sp_hash_compute(const char *type, const char *code);

static uint32_t name_hash(const char *type, const char *code)
{
    uint32_t h = 2166136261u; /* FNV-1a over type \0 code */
    for (const unsigned char *p = (const unsigned char *)type; *p; p++)
        h = (h ^ *p) * 16777619u;
    h *= 16777619u;
    for (const unsigned char *p = (const unsigned char *)code; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static void sp_tab_build(void)
{
    const fhir_type *const *types;
    size_t nt = fhir_resource_types(&types);
    for (size_t i = 0; i < nt; i++) {
        const fhir_search_param *const *sps;
        size_t ns = fhir_search_params(types[i]->name, &sps);
        for (size_t k = 0; k < ns; k++) {
            const char *t = types[i]->name, *c = sps[k]->code;
            for (uint32_t j = name_hash(t, c) & (SP_TAB - 1), probes = 0; probes < SP_TAB / 2;
                 j = (j + 1) & (SP_TAB - 1), probes++) {
                if (!sp_tab[j].type) {
                    sp_tab[j] = (sp_slot){t, c, sp_hash_compute(t, c)};
                    break;
                }
                if (!strcmp(sp_tab[j].type, t) && !strcmp(sp_tab[j].code, c))
                    break;
            }
        }
    }
}

uint32_t idx_sp_hash(const char *type, const char *code)
{
    pthread_once(&sp_tab_once, sp_tab_build);
    for (uint32_t j = name_hash(type, code) & (SP_TAB - 1);; j = (j + 1) & (SP_TAB - 1)) {
        const sp_slot *e = &sp_tab[j];
        if (!e->type)
            return sp_hash_compute(type, code); /* not a pair of the model */
        if (!strcmp(e->code, code) && !strcmp(e->type, type))
            return e->h;
    }
}

static uint32_t sp_hash_compute(const char *type, const char *code)
{
    char name[160];
    int n = snprintf(name, sizeof name, "%s.%s", type, code);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)name, n > 0 && (size_t)n < sizeof name ? (size_t)n : 0, md);
    return (uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 | (uint32_t)md[2] << 8 | md[3];
}

/* ---- strings ------------------------------------------------------------------------ */

/* Decode one UTF-8 sequence at s (n bytes left): its code point and length; invalid
 * bytes decode as themselves (length 1) so nothing is lost. */
static size_t utf8_next(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || len > n) {
        *cp = 0xFFFFFFFFu; /* not a character: copied as a byte */
        return 1;
    }
    unsigned v = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFFFFFFu;
            return 1;
        }
        v = v << 6 | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

static void put_utf8(buf *b, unsigned cp)
{
    char t[4];
    if (cp < 0x80) {
        buf_putc(b, (char)cp);
        return;
    }
    size_t n;
    if (cp < 0x800) {
        t[0] = (char)(0xC0 | cp >> 6);
        t[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | cp >> 12);
        t[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        t[0] = (char)(0xF0 | cp >> 18);
        t[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        t[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_put(b, t, n);
}

/* The folded form of one code point, appended to b: ASCII lower-cased, combining
 * marks dropped, Latin/Greek/Cyrillic letters from the generated table. */
static void fold(buf *b, unsigned cp)
{
    if (cp < 0x80) {
        buf_putc(b, (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
        return;
    }
    if (cp >= 0x300 && cp <= 0x36F)
        return; /* a combining mark: the letter before it keeps its base */
    unsigned lo = 0, hi = idx_fold_nrows;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (idx_fold_rows[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < idx_fold_nrows && idx_fold_rows[lo].cp == cp) {
        buf_puts(b, idx_fold_rows[lo].to);
        return;
    }
    put_utf8(b, cp);
}

static int is_space(unsigned cp)
{
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == 0xA0 || cp == 0x3000 ||
           (cp >= 0x2000 && cp <= 0x200A);
}

void idx_norm_string(const char *s, size_t n, buf *b)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t start = b->len, i = 0;
    int pending_space = 0;
    while (i < n) {
        unsigned cp;
        size_t k = utf8_next(p + i, n - i, &cp);
        if (cp == 0xFFFFFFFFu) {
            buf_putc(b, (char)p[i]);
            i += 1;
            continue;
        }
        i += k;
        if (is_space(cp)) {
            pending_space = b->len > start;
            continue;
        }
        if (pending_space) {
            buf_putc(b, ' ');
            pending_space = 0;
        }
        size_t before = b->len;
        fold(b, cp);
        if (b->len - start > IDX_MAX_VALUE) {
            b->len = before; /* cut on a character boundary */
            break;
        }
    }
}

void idx_put_str(buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && (unsigned char)s[j] > 1)
            j++;
        buf_put(b, s + i, j - i); /* a run without bytes to escape, at once */
        if (j < n) {
            buf_putc(b, 1);
            buf_putc(b, (char)((unsigned char)s[j] + 1));
            j++;
        }
        i = j;
    }
    buf_putc(b, 0);
}

void idx_put_u64(uint8_t p[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

uint64_t idx_get_u64(const uint8_t p[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_u64(buf *b, uint64_t v)
{
    uint8_t t[8];
    idx_put_u64(t, v);
    buf_put(b, t, 8);
}

void idx_double_key(uint8_t p[8], double d)
{
    uint64_t u;
    if (d == 0)
        d = 0; /* -0 and +0 are one value */
    memcpy(&u, &d, 8);
    idx_put_u64(p, (u >> 63) ? ~u : u | (1ull << 63));
}

void idx_put_double(buf *b, double d)
{
    uint8_t t[8];
    idx_double_key(t, d);
    buf_put(b, t, 8);
}

void idx_put_instant(buf *b, int64_t us)
{
    put_u64(b, (uint64_t)us ^ (1ull << 63));
}

/* ---- keys --------------------------------------------------------------------------- */

static size_t put_be32(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 24);
    o[1] = (uint8_t)(v >> 16);
    o[2] = (uint8_t)(v >> 8);
    o[3] = (uint8_t)v;
    return 4;
}

size_t idx_sp_prefix(uint8_t *out, uint32_t tenant, uint32_t sp, uint8_t kind, const void *val,
                     size_t len)
{
    size_t o = put_be32(out, tenant);
    o += put_be32(out + o, sp);
    out[o++] = kind;
    if (len)
        memcpy(out + o, val, len);
    return o + len;
}

size_t idx_sp_key(uint8_t *out, uint32_t tenant, const idx_entry *e, const uint8_t rn[IDX_RN_LEN])
{
    size_t o = idx_sp_prefix(out, tenant, e->sp, e->kind, e->val, e->len);
    memcpy(out + o, rn, IDX_RN_LEN);
    return o + IDX_RN_LEN;
}

size_t idx_rp_key(uint8_t *out, uint32_t tenant, const char *type, const char *id)
{
    size_t o = put_be32(out, tenant);
    size_t tl = strlen(type) + 1, il = strlen(id) + 1;
    memcpy(out + o, type, tl);
    memcpy(out + o + tl, id, il);
    return o + tl + il;
}

size_t idx_custom_key(uint8_t *out, uint32_t tenant, uint32_t tag, const char *id)
{
    size_t o = put_be32(out, tenant);
    out[o++] = IDX_CUSTOM_RP;
    o += put_be32(out + o, tag);
    size_t il = strlen(id) + 1;
    memcpy(out + o, id, il);
    return o + il;
}

size_t idx_params_key(uint8_t *out, uint32_t tenant)
{
    size_t o = put_be32(out, tenant);
    memcpy(out + o, "pparams", 7);
    return o + 7;
}

size_t idx_reindex_key(uint8_t *out, uint32_t tenant, uint32_t tag)
{
    size_t o = put_be32(out, tenant);
    out[o++] = 'x';
    return o + put_be32(out + o, tag);
}

size_t idx_rn_prefix(uint8_t *out, uint32_t tenant, const char *type)
{
    size_t o = put_be32(out, tenant);
    out[o++] = 'r';
    size_t tl = strlen(type) + 1;
    memcpy(out + o, type, tl);
    return o + tl;
}

size_t idx_rn_key(uint8_t *out, uint32_t tenant, const char *type, const uint8_t rn[IDX_RN_LEN])
{
    size_t o = idx_rn_prefix(out, tenant, type);
    memcpy(out + o, rn, IDX_RN_LEN);
    return o + IDX_RN_LEN;
}

size_t idx_gone_key(uint8_t *out, uint32_t tenant, const char *type, const uint8_t rn[IDX_RN_LEN])
{
    size_t n = idx_rn_key(out, tenant, type, rn);
    out[4] = 'g';
    return n;
}

void idx_rp_encode(buf *b, const uint8_t rn[IDX_RN_LEN], const idx_set *s)
{
    buf_put(b, rn, IDX_RN_LEN);
    for (size_t i = 0; i < s->n; i++) {
        const idx_entry *e = &s->e[i];
        uint8_t h[7];
        put_be32(h, e->sp);
        h[4] = e->kind;
        h[5] = (uint8_t)(e->len >> 8);
        h[6] = (uint8_t)e->len;
        buf_put(b, h, sizeof h);
        buf_put(b, e->val, e->len);
    }
}

int idx_rp_decode(arena *a, const void *val, size_t len, uint8_t rn[IDX_RN_LEN], idx_set *s)
{
    const uint8_t *p = val, *end = p + len;
    if (len < IDX_RN_LEN)
        return ERR_INVALID;
    memcpy(rn, p, IDX_RN_LEN);
    p += IDX_RN_LEN;
    size_t n = 0;
    for (const uint8_t *q = p; q < end;) {
        if (end - q < 7)
            return ERR_INVALID;
        size_t l = (size_t)q[5] << 8 | q[6];
        if ((size_t)(end - q - 7) < l)
            return ERR_INVALID;
        q += 7 + l;
        n++;
    }
    s->n = 0;
    s->cap = n;
    s->e = n ? arena_alloc(a, sizeof *s->e * n) : NULL;
    if (n && !s->e)
        return ERR_NOMEM;
    while (p < end) {
        idx_entry *e = &s->e[s->n++];
        e->sp = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        e->kind = p[4];
        e->len = (uint16_t)((size_t)p[5] << 8 | p[6]);
        e->val = p + 7;
        p += 7 + e->len;
    }
    return 0;
}

int idx_entry_cmp(const idx_entry *x, const idx_entry *y)
{
    if (x->sp != y->sp)
        return x->sp < y->sp ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->val, y->val, n) : 0;
    if (c)
        return c;
    return x->len == y->len ? 0 : x->len < y->len ? -1 : 1;
}

void idx_date_range(const fp_dt *d, int64_t *lo, int64_t *hi)
{
    int64_t l, h;
    fp_dt_range_ms(*d, 0, &l, &h);
    *lo = l * 1000;
    *hi = h * 1000 + 999;
    if (d->prec == FP_DT_MS && d->ms_digits == 1)
        *hi = *lo + 99999; /* tenths of a second */
    else if (d->prec == FP_DT_MS && d->ms_digits == 2)
        *hi = *lo + 9999; /* hundredths */
}
