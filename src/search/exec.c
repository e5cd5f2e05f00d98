/*
 * exec.c -- running a parsed query over the search index (srch_run).
 *
 * A clause's value is one or a few range scans of SearchParam keys
 * `tenant | sp | kind | value | rn`, each key tested by a predicate on its value
 * bytes where a prefix alone cannot decide (dates, numbers, :contains, system|).
 * The rn of matching keys form a set; a clause is the union of its values' sets,
 * the query the intersection of its clauses (smallest first), :not and
 * :missing=true the complement within all resources of the type. Sets are sorted
 * arrays of rn (10 bytes each), so union is sort + dedupe and intersection a merge.
 * The result is in rn order (creation order) unless _sort asks otherwise.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "fhir/outcome.h"
#include "fhirpath/spcache.h"
#include "json/json.h"
#include "search/search.h"

typedef uint8_t rn_t[IDX_RN_LEN];

typedef struct rnset {
    rn_t *r;
    size_t n, cap;
} rnset;

/* The entries a resource had at the first page's snapshot, when it changed since. */
typedef struct over {
    rn_t rn;
    idx_set es;
} over;

/* A small set of rn (open addressing; cap a power of two): what a walk has seen, or
 * the candidates a scan keeps. */
typedef struct rnseen {
    rn_t *slot;
    uint8_t *used;
    size_t cap;
} rnseen;

static size_t rn_hash(const uint8_t *rn)
{
    uint64_t t;
    uint16_t n;
    memcpy(&t, rn, 8);
    memcpy(&n, rn + 8, 2);
    uint64_t k = t ^ ((uint64_t)n << 32); /* then the splitmix64 finaliser: every bit of */
    k ^= k >> 33;                          /* the rn reaches the low bits a table uses */
    k *= 0xff51afd7ed558ccdu;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53u;
    return (size_t)(k ^ (k >> 33));
}

static int seen_add(rnseen *h, const uint8_t *rn) /* 1: new, 0: seen before */
{
    for (size_t j = rn_hash(rn) & (h->cap - 1);; j = (j + 1) & (h->cap - 1)) {
        if (!h->used[j]) {
            h->used[j] = 1;
            memcpy(h->slot[j], rn, IDX_RN_LEN);
            return 1;
        }
        if (!memcmp(h->slot[j], rn, IDX_RN_LEN))
            return 0;
    }
}

static int seen_has(const rnseen *h, const uint8_t *rn)
{
    for (size_t j = rn_hash(rn) & (h->cap - 1); h->used[j]; j = (j + 1) & (h->cap - 1))
        if (!memcmp(h->slot[j], rn, IDX_RN_LEN))
            return 1;
    return 0;
}

typedef struct xctx {
    store_reader *rd;
    arena *a;
    uint32_t tenant;
    const srch_query *q;
    uint64_t scanned;
    size_t cap; /* a clause scan gives up past this many matches (0: no cap) */
    srch_error *e;
    over *ov; /* a later page after writes: sorted by rn */
    size_t nov;
    const rnseen *within; /* non-NULL: scans keep only these candidates */
} xctx;

#define CAPPED 1 /* a clause had more matches than xctx.cap: check it on candidates */

static int fail(srch_error *e, int rc, int code, const char *msg)
{
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    e->status = rc == ERR_LIMIT ? 400 : 500;
    e->oo_code = code;
    return rc;
}

/* One more index entry read: ERR_LIMIT past SRCH_MAX_SCAN. */
static int count_read(xctx *x)
{
    if (++x->scanned <= SRCH_MAX_SCAN)
        return 0;
    return fail(x->e, ERR_LIMIT, OO_TOO_COSTLY,
                "the query reads more than SRCH_MAX_SCAN index entries: narrow it");
}

static int push(xctx *x, rnset *s, const uint8_t *rn)
{
    if (x->within && !seen_has(x->within, rn))
        return 0; /* not a candidate: the scan only decides the candidates */
    if (s->n == s->cap) {
        if (s->cap >= SRCH_MAX_MATCHES)
            return fail(x->e, ERR_LIMIT, OO_TOO_COSTLY,
                        "the query matches more than SRCH_MAX_MATCHES resources in one of its "
                        "parameters: narrow it");
        size_t cap = s->cap ? s->cap * 2 : 256;
        rn_t *r = arena_realloc(x->a, s->r, sizeof *r * s->cap, sizeof *r * cap);
        if (!r)
            return ERR_NOMEM;
        s->r = r;
        s->cap = cap;
    }
    memcpy(s->r[s->n++], rn, IDX_RN_LEN);
    return 0;
}

static int rn_cmp(const void *a, const void *b)
{
    return memcmp(a, b, IDX_RN_LEN);
}

static void sort_unique(rnset *s)
{
    if (s->n < 2)
        return;
    size_t k = 1;
    while (k < s->n && memcmp(s->r[k - 1], s->r[k], IDX_RN_LEN) < 0)
        k++;
    if (k == s->n)
        return; /* one scan of one value: already in rn order, without repeats */
    qsort(s->r, s->n, IDX_RN_LEN, rn_cmp);
    size_t w = 1;
    for (size_t i = 1; i < s->n; i++)
        if (memcmp(s->r[i], s->r[w - 1], IDX_RN_LEN))
            memcpy(s->r[w++], s->r[i], IDX_RN_LEN);
    s->n = w;
}

/* a := a AND b (both sorted) */
static void intersect(rnset *a, const rnset *b)
{
    size_t i = 0, j = 0, w = 0;
    while (i < a->n && j < b->n) {
        int c = memcmp(a->r[i], b->r[j], IDX_RN_LEN);
        if (c == 0) {
            memcpy(a->r[w++], a->r[i], IDX_RN_LEN);
            i++, j++;
        } else if (c < 0) {
            i++;
        } else {
            j++;
        }
    }
    a->n = w;
}

/* a := a AND NOT b (both sorted) */
static void subtract(rnset *a, const rnset *b)
{
    size_t i = 0, j = 0, w = 0;
    while (i < a->n) {
        int c = j < b->n ? memcmp(a->r[i], b->r[j], IDX_RN_LEN) : -1;
        if (c < 0)
            memcpy(a->r[w++], a->r[i++], IDX_RN_LEN);
        else if (c == 0)
            i++, j++;
        else
            j++;
    }
    a->n = w;
}

/* ---- scanning ------------------------------------------------------------------------ */

/* The predicate of a scan: 1 match, 0 skip, -1 stop (the keys are past the range).
 * val/len: the entry's value bytes behind the scan's prefix, rn excluded. */
typedef int (*pred_fn)(const srch_value *v, const uint8_t *val, size_t len);

/* Scan keys starting with prefix (plen bytes) from `from` (NULL: the prefix), adding
 * the rn of every key the predicate (NULL: all) accepts. */
static int scan(xctx *x, const uint8_t *prefix, size_t plen, const uint8_t *from, size_t flen,
                pred_fn pred, const srch_value *v, rnset *out)
{
    store_iter *it;
    int rc = store_scan(x->rd, STORE_DB_SEARCH_PARAM, from ? from : prefix, from ? flen : plen,
                        prefix, plen, &it);
    if (rc)
        return rc;
    const void *k, *val;
    size_t kn, vn;
    while ((rc = store_scan_next(it, &k, &kn, &val, &vn)) == 0) {
        if ((rc = count_read(x))) {
            store_iter_close(it);
            return rc;
        }
        if (kn < plen + IDX_RN_LEN)
            continue;
        const uint8_t *kb = k;
        int p = pred ? pred(v, kb + plen, kn - plen - IDX_RN_LEN) : 1;
        if (p < 0)
            break;
        if (p && (rc = push(x, out, kb + kn - IDX_RN_LEN))) {
            store_iter_close(it);
            return rc;
        }
        if (x->cap && out->n > x->cap) {
            store_iter_close(it);
            return CAPPED;
        }
    }
    store_iter_close(it);
    return rc == ERR_NOTFOUND || rc == 0 ? 0 : rc;
}

static size_t head(uint8_t *o, uint32_t tenant, uint32_t sph, uint8_t kind)
{
    return idx_sp_prefix(o, tenant, sph, kind, NULL, 0);
}

/* The keys of value v of clause c begin tenant | sp | kind | v->key: that prefix into p
 * (STORE_EXTRA_KEY_MAX + 16 bytes), its length; 0 when it leaves fewer than `room` bytes
 * of a key (no key of it can have been written). */
static size_t value_prefix(const xctx *x, const srch_clause *c, const srch_value *v,
                           uint8_t *p, size_t room)
{
    size_t hn = head(p, x->tenant, v->sph ? v->sph : c->sph, v->kind);
    if (hn + v->key_len + room > STORE_EXTRA_KEY_MAX)
        return 0;
    if (v->key_len)
        memcpy(p + hn, v->key, v->key_len);
    return hn + v->key_len;
}

static double get_double(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | p[i];
    u = (u >> 63) ? u ^ (1ull << 63) : ~u;
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static int64_t get_instant(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | p[i];
    return (int64_t)(u ^ (1ull << 63));
}

/* Whole value: the rest of the key is exactly the rn. */
static int pred_whole(const srch_value *v, const uint8_t *val, size_t len)
{
    (void)v;
    (void)val;
    return len == 0;
}

/* token system|: the value is code\0 system\0 with system == v->system */
static int pred_system(const srch_value *v, const uint8_t *val, size_t len)
{
    const uint8_t *z = memchr(val, 0, len);
    if (!z)
        return 0;
    size_t rest = len - (size_t)(z + 1 - val), sl = strlen(v->system);
    return rest == sl + 1 && !memcmp(z + 1, v->system, sl);
}

static int pred_contains(const srch_value *v, const uint8_t *val, size_t len)
{
    if (!v->needle_len)
        return 1;
    if (len < v->needle_len)
        return 0;
    return memmem(val, len, v->needle, v->needle_len) != NULL;
}

/* dates: val = lo(8) hi(8) for D, hi(8) lo(8) for H */
static int date_match(const srch_value *v, int64_t lo, int64_t hi)
{
    int eq = lo >= v->lo && hi <= v->hi;
    switch (v->prefix) {
    case SP_EQ: return eq;
    case SP_NE: return !eq;
    case SP_GT: return hi > v->hi;
    case SP_LT: return lo < v->lo;
    case SP_GE: return hi > v->hi || eq;
    case SP_LE: return lo < v->lo || eq;
    case SP_SA: return lo > v->hi;
    case SP_EB: return hi < v->lo;
    case SP_AP: /* the query was widened when parsed (10% of its distance from now) */
        return lo <= v->hi && hi >= v->lo;
    }
    return 0;
}

static int pred_date_lo(const srch_value *v, const uint8_t *val, size_t len)
{
    if (len != 16)
        return 0;
    int64_t lo = get_instant(val), hi = get_instant(val + 8);
    /* keys come in lo order: past the query for eq/le/lt/eb, nothing later matches */
    if ((v->prefix == SP_EQ || v->prefix == SP_LE) && lo > v->hi)
        return -1;
    if (v->prefix == SP_LT && lo >= v->lo)
        return -1;
    return date_match(v, lo, hi);
}

static int pred_date_hi(const srch_value *v, const uint8_t *val, size_t len)
{
    if (len != 16)
        return 0;
    int64_t hi = get_instant(val), lo = get_instant(val + 8);
    if (v->prefix == SP_EB && hi >= v->lo)
        return -1;
    return date_match(v, lo, hi);
}

static int num_match(const srch_value *v, double d)
{
    switch (v->prefix) {
    case SP_EQ: return d >= v->dlo && d < v->dhi;
    case SP_NE: return !(d >= v->dlo && d < v->dhi);
    case SP_GT:
    case SP_SA: return d > v->d;
    case SP_LT:
    case SP_EB: return d < v->d;
    case SP_GE: return d >= v->d;
    case SP_LE: return d <= v->d;
    case SP_AP: /* within 10% of the value: the bounds were computed when parsed */
        return d >= v->dlo && d <= v->dhi;
    }
    return 0;
}

static int pred_number(const srch_value *v, const uint8_t *val, size_t len)
{
    if (len != 8)
        return 0;
    double d = get_double(val);
    int m = num_match(v, d);
    /* ascending order: past the range nothing later matches */
    if (!m && (v->prefix == SP_EQ ? d >= v->dhi
               : v->prefix == SP_LT || v->prefix == SP_EB ? d >= v->d
               : v->prefix == SP_LE ? d > v->d
                                    : 0))
        return -1;
    return m;
}

static int pred_composite(const srch_value *v, const uint8_t *val, size_t len);
static int pred_composite_tail(const srch_value *v, const uint8_t *val, size_t len);

/* near: the latitude band a distance spans, in degrees */
static double geo_band(const srch_value *v)
{
    return v->gdist / SRCH_EARTH_RADIUS_M * (180.0 / M_PI);
}

static int geo_match(const srch_value *v, const uint8_t *val, size_t len)
{
    return len == 16 &&
           srch_distance_m(v->glat, v->glon, get_double(val), get_double(val + 8)) <= v->gdist;
}

/* near: G keys in latitude order from the band's south edge; past its north edge nothing
 * later matches */
static int pred_geo(const srch_value *v, const uint8_t *val, size_t len)
{
    if (len == 16 && get_double(val) > v->glat + geo_band(v))
        return -1;
    return geo_match(v, val, len);
}

/* The set of one value of a clause. */
static int value_set(xctx *x, const srch_clause *c, const srch_value *v, rnset *out)
{
    uint8_t p[STORE_EXTRA_KEY_MAX + 16];
    size_t hn = head(p, x->tenant, v->sph ? v->sph : c->sph, v->kind);
    if (hn + v->key_len + 16 > sizeof p)
        return fail(x->e, ERR_LIMIT, OO_TOO_COSTLY, "a search value is too long");
    if (v->key_len)
        memcpy(p + hn, v->key, v->key_len);
    size_t pn = hn + v->key_len;
    if (v->kind == IDX_GEO) {
        uint8_t from[sizeof p];
        double south = v->glat - geo_band(v);
        memcpy(from, p, pn);
        idx_double_key(from + pn, south < -90 ? -90 : south);
        return scan(x, p, pn, from, pn + 8, pred_geo, v, out);
    }
    if (v->kind == IDX_DATE) {
        uint8_t from[sizeof p];
        buf b = BUF_INIT;
        switch (v->prefix) {
        case SP_GT: /* hi > qhi: the H keys from qhi on */
        case SP_EB: /* hi < qlo: the H keys from the start */
        case SP_GE: {
            size_t h2 = head(from, x->tenant, c->sph, IDX_DATE_HI);
            if (v->prefix == SP_EB) {
                int rc = scan(x, from, h2, NULL, 0, pred_date_hi, v, out);
                buf_free(&b);
                return rc;
            }
            idx_put_instant(&b, v->hi == INT64_MAX ? v->hi : v->hi + 1);
            uint8_t f2[sizeof p];
            memcpy(f2, from, h2);
            memcpy(f2 + h2, b.data, 8);
            buf_free(&b);
            int rc = scan(x, from, h2, f2, h2 + 8, pred_date_hi, v, out);
            if (rc || v->prefix != SP_GE)
                return rc;
            /* ge also takes what lies within the query: lo from qlo */
            srch_value eq = *v;
            eq.prefix = SP_EQ;
            buf_init(&b);
            idx_put_instant(&b, v->lo);
            memcpy(from, p, hn);
            memcpy(from + hn, b.data, 8);
            buf_free(&b);
            return scan(x, p, hn, from, hn + 8, pred_date_lo, &eq, out);
        }
        case SP_EQ:
        case SP_SA: {
            idx_put_instant(&b, v->prefix == SP_SA ? (v->hi == INT64_MAX ? v->hi : v->hi + 1)
                                                    : v->lo);
            memcpy(from, p, hn);
            memcpy(from + hn, b.data, 8);
            buf_free(&b);
            return scan(x, p, hn, from, hn + 8, pred_date_lo, v, out);
        }
        default: /* lt, le, ne, ap: from the start, in lo order */
            buf_free(&b);
            return scan(x, p, hn, NULL, 0, pred_date_lo, v, out);
        }
    }
    if (v->kind == IDX_NUMBER || v->kind == IDX_QTY || v->kind == IDX_QTY_UCUM ||
        v->kind == IDX_QTY_VALUE) {
        uint8_t from[sizeof p];
        memcpy(from, p, pn);
        size_t fn = pn;
        if (v->prefix == SP_EQ || v->prefix == SP_GE || v->prefix == SP_GT ||
            v->prefix == SP_SA) {
            idx_double_key(from + pn, v->prefix == SP_EQ ? v->dlo : v->d);
            fn += 8;
        }
        return scan(x, p, pn, from, fn, pred_number, v, out);
    }
    if (v->kind == IDX_COMPOSITE) /* the first part's prefix, every part checked */
        return scan(x, p, pn, NULL, 0, pred_composite_tail, v, out);
    if (v->system) /* token system|: every value of the parameter, system checked */
        return scan(x, p, hn, NULL, 0, pred_system, v, out);
    if (v->needle)
        return scan(x, p, hn, NULL, 0, pred_contains, v, out);
    if (v->above) {
        /* uri:above: the entries that are prefixes of the query uri, at '/' boundaries */
        const uint8_t *u = v->key;
        size_t un = v->key_len - 1; /* without the terminator (escaping aside) */
        for (size_t i = 1; i <= un; i++) {
            if (i < un && u[i] != '/')
                continue;
            memcpy(p + hn, u, i);
            p[hn + i] = 0;
            int rc = scan(x, p, hn + i + 1, NULL, 0, pred_whole, v, out);
            if (rc)
                return rc;
        }
        return 0;
    }
    return scan(x, p, pn, NULL, 0, v->whole ? pred_whole : NULL, v, out);
}

/* Every resource of the type: the Aux rn -> id keys, in rn order. */
static int all_of_type(xctx *x, rnset *out)
{
    uint8_t p[4 + 1 + 66];
    size_t pn = idx_rn_prefix(p, x->tenant, x->q->type);
    store_iter *it;
    int rc = store_scan(x->rd, STORE_DB_AUX, p, pn, p, pn, &it);
    if (rc)
        return rc;
    const void *k, *v;
    size_t kn, vn;
    while ((rc = store_scan_next(it, &k, &kn, &v, &vn)) == 0) {
        if ((rc = count_read(x))) {
            store_iter_close(it);
            return rc;
        }
        if (kn == pn + IDX_RN_LEN && (rc = push(x, out, (const uint8_t *)k + pn))) {
            store_iter_close(it);
            return rc;
        }
    }
    store_iter_close(it);
    return rc == ERR_NOTFOUND ? 0 : rc;
}

static int clause_set(xctx *x, const srch_clause *c, rnset *out)
{
    int rc;
    memset(out, 0, sizeof *out);
    if (c->mod == SM_MISSING) {
        uint8_t p[9];
        size_t pn = idx_sp_prefix(p, x->tenant, c->sph, 0, NULL, 0) - 1; /* no kind */
        rnset has = {0};
        if ((rc = scan(x, p, pn, NULL, 0, NULL, NULL, &has)))
            return rc;
        sort_unique(&has);
        if (!c->missing) {
            *out = has;
            return 0;
        }
        if ((rc = all_of_type(x, out)))
            return rc;
        subtract(out, &has);
        return 0;
    }
    rnset u = {0};
    for (size_t i = 0; i < c->nv; i++)
        if ((rc = value_set(x, c, &c->v[i], &u)))
            return rc;
    sort_unique(&u);
    if (c->mod != SM_NOT) {
        *out = u;
        return 0;
    }
    if ((rc = all_of_type(x, out)))
        return rc;
    subtract(out, &u);
    return 0;
}

/* The entries of resource rn's current version (its ResourceParam value): 0, or -1 when it
 * has none (cannot happen within one snapshot). */
static int candidate_entries(xctx *x, const uint8_t *rn, idx_set *es)
{
    for (size_t lo = 0, hi = x->nov; lo < hi;) { /* changed since page_t: as it was then */
        size_t mid = (lo + hi) / 2;
        int c = memcmp(x->ov[mid].rn, rn, IDX_RN_LEN);
        if (c == 0) {
            *es = x->ov[mid].es;
            return 0;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    const char *id = srch_rn_id(x->rd, x->a, x->tenant, x->q->type, rn);
    if (!id)
        return -1;
    uint8_t rn2[IDX_RN_LEN];
    if (idx_entries(x->q->spc, x->rd, x->a, x->tenant, x->q->type, id, rn2, es))
        return -1;
    return 0;
}

/* ---- sorting --------------------------------------------------------------------------- */

typedef struct sort_row {
    rn_t rn;
    const uint8_t *key[SRCH_MAX_SORT_KEYS];
    uint16_t klen[SRCH_MAX_SORT_KEYS];
} sort_row;

static int row_cmp(const void *pa, const void *pb, void *ctx)
{
    const srch_query *sort_q = ctx;
    const sort_row *a = pa, *b = pb;
    for (size_t i = 0; i < sort_q->nsort; i++) {
        int desc = sort_q->sort[i].desc;
        if (!a->key[i] || !b->key[i]) { /* resources without the value come last */
            if (a->key[i] != b->key[i])
                return a->key[i] ? -1 : 1;
            continue;
        }
        size_t n = a->klen[i] < b->klen[i] ? a->klen[i] : b->klen[i];
        int c = memcmp(a->key[i], b->key[i], n);
        if (!c)
            c = a->klen[i] == b->klen[i] ? 0 : a->klen[i] < b->klen[i] ? -1 : 1;
        if (c)
            return desc ? -c : c;
    }
    return memcmp(a->rn, b->rn, IDX_RN_LEN); /* ties: creation order, stable */
}

/* The entry kind a parameter sorts by. */
static uint8_t sort_kind(fhir_sp_type t, int desc)
{
    switch (t) {
    case FHIR_SP_STRING: return IDX_STRING;
    case FHIR_SP_TOKEN: return IDX_TOKEN;
    case FHIR_SP_REFERENCE: return IDX_REF;
    case FHIR_SP_DATE: return desc ? IDX_DATE_HI : IDX_DATE;
    case FHIR_SP_NUMBER: return IDX_NUMBER;
    case FHIR_SP_QUANTITY: return IDX_QTY_VALUE;
    case FHIR_SP_URI: return IDX_URI;
    default: return 0;
    }
}

static int sort_set(xctx *x, rnset *s)
{
    if (s->n > SRCH_MAX_SORT)
        return fail(x->e, ERR_LIMIT, OO_TOO_COSTLY,
                    "_sort over more than SRCH_MAX_SORT matches: narrow the query");
    sort_row *rows = arena_alloc(x->a, sizeof *rows * (s->n ? s->n : 1));
    if (!rows)
        return ERR_NOMEM;
    for (size_t i = 0; i < s->n; i++) {
        sort_row *r = &rows[i];
        memset(r, 0, sizeof *r);
        memcpy(r->rn, s->r[i], IDX_RN_LEN);
        idx_set es;
        if (candidate_entries(x, r->rn, &es))
            continue;
        for (size_t si = 0; si < x->q->nsort; si++) {
            const srch_sort *so = &x->q->sort[si];
            uint8_t kind = sort_kind(so->sp->type, so->desc);
            for (size_t j = 0; j < es.n; j++) {
                const idx_entry *e = &es.e[j];
                if (e->sp != so->sph || e->kind != kind)
                    continue;
                /* ascending: the smallest value; descending: the largest */
                if (!r->key[si]) {
                    r->key[si] = e->val;
                    r->klen[si] = e->len;
                } else {
                    size_t n = e->len < r->klen[si] ? e->len : r->klen[si];
                    int c = memcmp(e->val, r->key[si], n);
                    if (!c)
                        c = e->len < r->klen[si] ? -1 : e->len > r->klen[si];
                    if (so->desc ? c > 0 : c < 0) {
                        r->key[si] = e->val;
                        r->klen[si] = e->len;
                    }
                }
            }
        }
    }
    qsort_r(rows, s->n, sizeof *rows, row_cmp, (void *)x->q);
    for (size_t i = 0; i < s->n; i++)
        memcpy(s->r[i], rows[i].rn, IDX_RN_LEN);
    return 0;
}

/* ---- clauses as filters of few candidates --------------------------------------------- */

/* A clause whose values each fix a whole key (or a key prefix with no predicate): its scan
 * reads only matches, so it is cheap to materialise. The others (ranges, :contains,
 * system|, :not, :missing) are better checked on a few candidates. */
static int clause_cheap(const srch_clause *c)
{
    if (c->mod == SM_NOT || c->mod == SM_MISSING)
        return 0;
    for (size_t i = 0; i < c->nv; i++) {
        const srch_value *v = &c->v[i];
        if (v->kind == IDX_DATE || v->kind == IDX_NUMBER || v->kind == IDX_QTY ||
            v->kind == IDX_QTY_UCUM || v->kind == IDX_QTY_VALUE || v->kind == IDX_COMPOSITE ||
            v->kind == IDX_GEO || v->system || v->needle || v->above)
            return 0;
    }
    return 1;
}

/* Does entry e (of the candidate's current version) satisfy value v? */
static int entry_matches(const srch_value *v, const idx_entry *e)
{
    if (e->kind != v->kind)
        return 0;
    if (v->kind == IDX_COMPOSITE)
        return pred_composite(v, e->val, e->len) == 1;
    if (v->kind == IDX_GEO)
        return geo_match(v, e->val, e->len);
    if (v->kind == IDX_DATE)
        return e->len == 16 && date_match(v, get_instant(e->val), get_instant(e->val + 8));
    if (v->kind == IDX_NUMBER || v->kind == IDX_QTY || v->kind == IDX_QTY_UCUM ||
        v->kind == IDX_QTY_VALUE)
        return e->len == v->key_len + 8 && (!v->key_len || !memcmp(e->val, v->key, v->key_len)) &&
               num_match(v, get_double(e->val + v->key_len));
    if (v->system)
        return pred_system(v, e->val, e->len);
    if (v->needle)
        return pred_contains(v, e->val, e->len);
    if (v->above) {
        size_t un = v->key_len - 1;
        for (size_t i = 1; i <= un; i++)
            if ((i == un || v->key[i] == '/') && e->len == i + 1 && !memcmp(e->val, v->key, i) &&
                e->val[i] == 0)
                return 1;
        return 0;
    }
    if (v->whole)
        return e->len == v->key_len && !memcmp(e->val, v->key, v->key_len);
    return e->len >= v->key_len && !memcmp(e->val, v->key, v->key_len);
}

/* One string of a part at p[0..n) (through its terminator): *sl its length. */
static const uint8_t *part_str(const uint8_t *p, size_t n, size_t *sl, size_t *used)
{
    if (!(*used = idx_str_len(p, n)))
        return NULL;
    *sl = *used - 1;
    return p;
}

/* A quantity sub-value (Q, C or V) against a quantity part (its bytes after the kind). */
static int qty_part_matches(const srch_value *v, const uint8_t *p, size_t n)
{
    const uint8_t *f[3];
    size_t fl[3], o = 0, used;
    for (int i = 0; i < 3; i++, o += used)
        if (!(f[i] = part_str(p + o, n - o, &fl[i], &used)))
            return 0;
    if (o + 9 > n)
        return 0;
    double d = get_double(p + o);
    int canon = p[o + 8];
    o += 9;
    if (v->kind == IDX_QTY_VALUE)
        return num_match(v, d);
    if (v->kind == IDX_QTY) { /* key: system\0 code\0; an empty system: the code or the unit */
        const uint8_t *qs = v->key, *qc;
        size_t qsl, qcl, u1, u2;
        if (!part_str(qs, v->key_len, &qsl, &u1) ||
            !(qc = part_str(qs + u1, v->key_len - u1, &qcl, &u2)))
            return 0;
        qc = qs + u1;
        int unit_ok;
        if (qsl)
            unit_ok = fl[0] == qsl && !memcmp(f[0], qs, qsl) && fl[1] == qcl &&
                      !memcmp(f[1], qc, qcl);
        else
            unit_ok = (fl[1] == qcl && !memcmp(f[1], qc, qcl)) ||
                      (fl[2] == qcl && !memcmp(f[2], qc, qcl));
        return unit_ok && num_match(v, d);
    }
    if (v->kind == IDX_QTY_UCUM) { /* key: canonical unit\0 */
        size_t cl;
        if (!canon || !part_str(p + o, n - o, &cl, &used) || o + used + 8 > n)
            return 0;
        return used == v->key_len && !memcmp(p + o, v->key, used) &&
               num_match(v, get_double(p + o + used));
    }
    return 0;
}

/* A composite entry (one part per component) against value v: every part matches its
 * sub-value. */
static int pred_composite(const srch_value *v, const uint8_t *val, size_t len)
{
    size_t o = 0;
    for (size_t k = 0; k < v->nsub; k++) {
        size_t pl = idx_part_len(val + o, len - o);
        if (!pl)
            return 0;
        const srch_value *s = &v->sub[k];
        const uint8_t *p = val + o + 1;
        size_t n = pl - 1;
        int m;
        if (val[o] == IDX_QTY_PART)
            m = (s->kind == IDX_QTY || s->kind == IDX_QTY_UCUM || s->kind == IDX_QTY_VALUE) &&
                qty_part_matches(s, p, n);
        else
            m = val[o] == s->kind && entry_matches(s, &(idx_entry){.kind = val[o],
                                                                  .len = (uint16_t)n,
                                                                  .val = p});
        if (!m)
            return 0;
        o += pl;
    }
    return o == len;
}

/* As pred_composite for what a scan passes: the value behind the scan's prefix, v->key. */
static int pred_composite_tail(const srch_value *v, const uint8_t *val, size_t len)
{
    uint8_t whole[STORE_EXTRA_KEY_MAX];
    if (v->key_len + len > sizeof whole)
        return 0;
    memcpy(whole, v->key, v->key_len);
    memcpy(whole + v->key_len, val, len);
    return pred_composite(v, whole, v->key_len + len);
}

static int clause_accepts(const srch_clause *c, const idx_set *es)
{
    if (c->mod == SM_MISSING) {
        int has = 0;
        for (size_t j = 0; j < es->n && !has; j++)
            has = es->e[j].sp == c->sph;
        return c->missing ? !has : has;
    }
    int hit = 0;
    for (size_t i = 0; i < c->nv && !hit; i++) {
        const srch_value *v = &c->v[i];
        uint32_t sph = v->sph ? v->sph : c->sph;
        for (size_t j = 0; j < es->n && !hit; j++)
            hit = es->e[j].sp == sph && entry_matches(v, &es->e[j]);
    }
    return c->mod == SM_NOT ? !hit : hit;
}

int srch_matches_doc(const srch_query *q, arena *a, const json_val *doc)
{
    for (size_t i = 0; i < q->nc; i++)
        if (q->c[i].link != SL_NONE)
            return ERR_UNSUPPORTED;
    idx_set es;
    int rc = idx_extract(q->spc, a, q->type, doc, q->base_url, &es);
    if (rc)
        return rc;
    for (size_t i = 0; i < q->nc; i++)
        if (!clause_accepts(&q->c[i], &es))
            return 0;
    return 1;
}

/* Can clause c be checked by probing its keys? Every value a whole key (a reference, a
 * system|code): a candidate matches when tenant|sp|kind|value|rn exists. */
static int clause_probes(const srch_clause *c)
{
    if (c->mod == SM_NOT || c->mod == SM_MISSING || !clause_cheap(c))
        return 0;
    for (size_t i = 0; i < c->nv; i++)
        if (!c->v[i].whole)
            return 0;
    return 1;
}

/* Does resource rn have one of c's keys? A point lookup per value: 1, 0, or an error
 * (the scan budget). */
static int has_key(xctx *x, const srch_clause *c, const uint8_t *rn)
{
    for (size_t j = 0; j < c->nv; j++) {
        const srch_value *v = &c->v[j];
        uint8_t k[STORE_EXTRA_KEY_MAX + 16];
        size_t kn = value_prefix(x, c, v, k, IDX_RN_LEN);
        if (!kn)
            continue; /* no such key can have been written */
        memcpy(k + kn, rn, IDX_RN_LEN);
        const void *val;
        size_t vn;
        int rc = count_read(x);
        if (rc)
            return rc;
        if (store_get(x->rd, STORE_DB_SEARCH_PARAM, k, kn + IDX_RN_LEN, &val, &vn) == 0)
            return 1;
    }
    return 0;
}

/* Keep the candidates of s that have one of c's keys: a point lookup each, where
 * scanning the clause would read many more keys than there are candidates; with want >
 * 0, only the first `want` of them. */
static int probe_upto(xctx *x, rnset *s, const srch_clause *c, size_t want)
{
    size_t w = 0;
    for (size_t i = 0; i < s->n && (!want || w < want); i++) {
        int hit = has_key(x, c, s->r[i]);
        if (hit < 0)
            return hit;
        if (hit)
            memcpy(s->r[w++], s->r[i], IDX_RN_LEN);
    }
    s->n = w;
    return 0;
}

/* Keep the candidates of s that every clause in `todo` accepts, reading each candidate's
 * entries from its ResourceParam value (one Aux and one ResourceParam lookup each). */
static int probe(xctx *x, rnset *s, const srch_clause *c)
{
    return probe_upto(x, s, c, 0);
}

/* Keep the candidates of s that every clause in `todo` accepts, reading each candidate's
 * entries from its ResourceParam value (one Aux and one ResourceParam lookup each); with
 * want > 0, only the first `want` of them (the last step of a plan whose caller asks
 * only whether something matches). */
static int filter_upto(xctx *x, rnset *s, const srch_clause *const *todo, size_t ntodo,
                       size_t want)
{
    size_t w = 0;
    for (size_t i = 0; i < s->n && (!want || w < want); i++) {
        idx_set es;
        if (candidate_entries(x, s->r[i], &es))
            continue;
        int ok = 1;
        for (size_t c = 0; c < ntodo && ok; c++)
            ok = clause_accepts(todo[c], &es);
        if (ok)
            memcpy(s->r[w++], s->r[i], IDX_RN_LEN);
    }
    s->n = w;
    return 0;
}

static int filter(xctx *x, rnset *s, const srch_clause *const *todo, size_t ntodo)
{
    return filter_upto(x, s, todo, ntodo, 0);
}

/* ---- within one patient ------------------------------------------------------------------ */

/* The patient a clause names, when it restricts to one: every value a whole reference
 * to the same Patient/id through a parameter of the type's Patient compartment (subject=
 * Patient/1, patient=1, or a compartment search). *pid: "id\0" escaped, in the key. */
/* 1 when parameter sp of type is a compartment parameter kept to Patient targets
 * (Observation's `patient` is `Observation.subject.where(resolve() is Patient)`): its
 * references to a Patient are the compartment parameter's, so the resources it finds
 * for a patient all have their entries within that patient. */
static int narrows_compartment(const char *type, const fhir_search_param *sp,
                               const char *const *codes, size_t nc)
{
    if (!sp || sp->type != FHIR_SP_REFERENCE || !sp->expression)
        return 0;
    char pat[160];
    for (size_t k = 0; k < nc; k++) {
        snprintf(pat, sizeof pat, "%s.%s.where(resolve() is Patient)", type, codes[k]);
        const char *m = strstr(sp->expression, pat);
        /* the whole of a union's term: not a prefix of a longer type name before it */
        if (m && (m == sp->expression || m[-1] == ' ' || m[-1] == '('))
            return 1;
    }
    return 0;
}

/* The length of the "id\0" of the patient value v of clause c names, when v is a whole
 * reference to a Patient through one of the compartment parameters codes[0..nc); else 0. */
static size_t value_patient(const srch_query *q, const srch_clause *c, const srch_value *v,
                            const char *const *codes, size_t nc)
{
    static const uint8_t tail[] = "Patient";
    const uint8_t *z = v->kind == IDX_REF && v->whole ? memchr(v->key, 0, v->key_len) : NULL;
    if (!z || (size_t)(v->key + v->key_len - (z + 1)) != sizeof tail ||
        memcmp(z + 1, tail, sizeof tail))
        return 0;
    uint32_t sph = v->sph ? v->sph : c->sph;
    for (size_t k = 0; k < nc; k++)
        if (sph == idx_sp_hash(q->type, codes[k]))
            return (size_t)(z + 1 - v->key);
    return !v->sph && narrows_compartment(q->type, c->sp, codes, nc) ? (size_t)(z + 1 - v->key)
                                                                     : 0;
}

static int scope_patient(const srch_query *q, const srch_clause *c, const uint8_t **pid,
                         size_t *pn)
{
    const char *const *codes;
    size_t nc = fhir_patient_compartment(q->type, &codes);
    if (!nc || c->mod == SM_NOT || c->mod == SM_MISSING || !c->nv)
        return 0;
    for (size_t i = 0; i < c->nv; i++) {
        size_t n = value_patient(q, c, &c->v[i], codes, nc);
        if (!n || (i && (n != *pn || memcmp(*pid, c->v[i].key, n))))
            return 0;
        *pid = c->v[i].key;
        *pn = n;
    }
    return 1;
}

/* Can clause c be answered from the entries within a patient (tokens, dates; not _id,
 * whose entries are not repeated there)? */
static int scopable(const srch_query *q, const srch_clause *c)
{
    /* custom parameters have no entries within the patient (reindexed alone) */
    if (c->mod != SM_NONE || !c->nv || c->sph == idx_sp_hash(q->type, "_id") ||
        fp_sp_custom_of(q->spc, c->sp))
        return 0;
    for (size_t i = 0; i < c->nv; i++) {
        const srch_value *v = &c->v[i];
        if ((v->kind != IDX_TOKEN && v->kind != IDX_DATE) || v->needle || v->above || v->sph)
            return 0;
    }
    return 1;
}

/* The set of one value of a token or date clause within patient pid. */
static int scoped_value_set(xctx *x, const srch_clause *c, const srch_value *v,
                            const uint8_t *pid, size_t pn, rnset *out)
{
    uint8_t p[STORE_EXTRA_KEY_MAX + 16];
    int date = v->kind == IDX_DATE;
    size_t hn = head(p, x->tenant, c->sph, date ? IDX_PAT_DATE : IDX_PAT_TOKEN);
    if (hn + pn + v->key_len > STORE_EXTRA_KEY_MAX)
        return fail(x->e, ERR_LIMIT, OO_TOO_COSTLY, "a search value is too long");
    memcpy(p + hn, pid, pn);
    size_t n = hn + pn;
    if (date) /* D order within the patient: pred_date_lo stops past the range */
        return scan(x, p, n, NULL, 0, pred_date_lo, v, out);
    if (v->system)
        return scan(x, p, n, NULL, 0, pred_system, v, out);
    memcpy(p + n, v->key, v->key_len);
    return scan(x, p, n + v->key_len, NULL, 0, v->whole ? pred_whole : NULL, v, out);
}

/*
 * Observation?subject=Patient/1&code=X&date=ge2020 (docs/SEARCH.md 4a): with a clause
 * that names one patient, the token and date clauses are read from their entries within
 * that patient (the j and k keys), so a patient with 9,000 Observations among a million
 * costs the matches of that patient, not a scan of every Observation with code X; the
 * patient's clause itself is then a lookup per candidate, and the other clauses are
 * checked on the candidates. Returns 1 when the query is not of that shape, or when
 * some resource of the patient has entries that did not fit (its z key).
 */
static int plan_one_patient(xctx *x, const srch_query *q, size_t si, const srch_clause *own,
                            const uint8_t *pid, size_t pn, rnset *res);
static uint64_t clause_estimate(xctx *x, const srch_clause *c);

#define SCOPE_MAX_PLAN_PATIENTS 1024 /* patients a clause may name for the plan within each */
/* reading one candidate's entries costs about as much as this many keys of a scan (one
 * Aux and one ResourceParam lookup, and the record decoded, against a cursor step) */
#define SCOPE_CHECK_COST 16

/* The patients clause c names, when every value is a whole reference to a Patient
 * through a parameter of the type's Patient compartment (a chain's references, or
 * subject=Patient/1,Patient/2): their "id\0" prefixes; 0 when not of that shape. */
static size_t scope_patients(const srch_query *q, const srch_clause *c, const uint8_t **pid,
                             size_t *pn, size_t max)
{
    const char *const *codes;
    size_t nc = fhir_patient_compartment(q->type, &codes);
    if (!nc || c->mod == SM_NOT || c->mod == SM_MISSING || !c->nv || c->nv > max)
        return 0;
    for (size_t i = 0; i < c->nv; i++) {
        if (!(pn[i] = value_patient(q, c, &c->v[i], codes, nc)))
            return 0;
        pid[i] = c->v[i].key;
    }
    return c->nv;
}

/* One patient value of a clause: its "id\0" and its place among the clause's values. */
typedef struct patient_ref {
    const uint8_t *id;
    size_t n, at;
} patient_ref;

static int patient_id_cmp(const patient_ref *a, const patient_ref *b)
{
    if (a->n != b->n)
        return a->n < b->n ? -1 : 1;
    return memcmp(a->id, b->id, a->n);
}

/* Patients by id; a patient's values by their place in the clause (its own clause keeps
 * the order they were given in). */
static int patient_ref_cmp(const void *pa, const void *pb)
{
    const patient_ref *a = pa, *b = pb;
    int c = patient_id_cmp(a, b);
    return c ? c : (a->at > b->at) - (a->at < b->at);
}

static int plan_scoped(xctx *x, const srch_query *q, rnset *res)
{
    const uint8_t *pid1 = NULL;
    size_t pn1 = 0, si = q->nc, nscoped = 0;
    for (size_t i = 0; i < q->nc && si == q->nc; i++)
        if (scope_patient(q, &q->c[i], &pid1, &pn1))
            si = i;
    if (si == q->nc) { /* several patients: the plan within each, then their union */
        const uint8_t **pids = arena_alloc(x->a, sizeof *pids * SCOPE_MAX_PLAN_PATIENTS);
        size_t *pns = arena_alloc(x->a, sizeof *pns * SCOPE_MAX_PLAN_PATIENTS);
        if (!pids || !pns)
            return ERR_NOMEM;
        size_t np = 0;
        for (size_t i = 0; i < q->nc && !np; i++)
            if ((np = scope_patients(q, &q->c[i], pids, pns, SCOPE_MAX_PLAN_PATIENTS)))
                si = i;
        if (!np)
            return 1;
        for (size_t i = 0; i < q->nc; i++)
            nscoped += i != si && scopable(q, &q->c[i]);
        if (!nscoped)
            return 1;
        rnset all = {0};
        const srch_clause *c = &q->c[si];
        srch_value *mine = arena_alloc(x->a, sizeof *mine * c->nv);
        patient_ref *order = arena_alloc(x->a, sizeof *order * np);
        if (!mine || !order)
            return ERR_NOMEM;
        /* the values in patient order: each patient's values are then one run (a chain
         * names hundreds of patients; comparing every pair cost more than their plans) */
        for (size_t k = 0; k < np; k++)
            order[k] = (patient_ref){.id = pids[k], .n = pns[k], .at = k};
        qsort(order, np, sizeof *order, patient_ref_cmp);
        for (size_t k = 0, end; k < np; k = end) {
            /* the patient's own clause, checked on its candidates: its values only */
            srch_clause own = *c;
            own.v = mine;
            own.nv = 0;
            for (end = k; end < np && !patient_id_cmp(&order[end], &order[k]); end++)
                mine[own.nv++] = c->v[order[end].at];
            rnset one;
            int rc = plan_one_patient(x, q, si, &own, order[k].id, order[k].n, &one);
            if (rc)
                return rc; /* 1: a patient with a z key: the general plan for all */
            for (size_t j = 0; j < one.n; j++)
                if ((rc = push(x, &all, one.r[j])))
                    return rc;
        }
        sort_unique(&all);
        *res = all;
        return 0;
    }
    for (size_t i = 0; i < q->nc; i++)
        nscoped += i != si && scopable(q, &q->c[i]);
    if (!nscoped)
        return 1;
    return plan_one_patient(x, q, si, &q->c[si], pid1, pn1, res);
}

/* The plan within patient pid (named by clause si). 1: a resource of the patient has
 * entries that did not fit (its z key): the general plan. */
static int plan_one_patient(xctx *x, const srch_query *q, size_t si, const srch_clause *own,
                            const uint8_t *pid, size_t pn, rnset *res)
{
    uint8_t zk[STORE_EXTRA_KEY_MAX + 16];
    size_t zn = head(zk, x->tenant, idx_sp_hash(q->type, "_id"), IDX_PAT_OVER);
    if (zn + pn > STORE_EXTRA_KEY_MAX)
        return 1;
    memcpy(zk + zn, pid, pn);
    zn += pn;
    store_iter *it;
    int rc = store_scan(x->rd, STORE_DB_SEARCH_PARAM, zk, zn, zk, zn, &it);
    if (rc)
        return rc;
    const void *k, *v;
    size_t kn, vn;
    int over = store_scan_next(it, &k, &kn, &v, &vn) == 0;
    store_iter_close(it);
    if (over)
        return 1;
    rnset acc = {0};
    int first = 1;
    const srch_clause **rest = arena_alloc(x->a, sizeof *rest * (q->nc + 1));
    if (!rest)
        return ERR_NOMEM;
    size_t nrest = 0, nchecked = 0;
    /* how many resources of the type the patient has through the own clause's
     * parameter (its reference values are counted): a bound of every scan below */
    uint64_t own_n = UINT64_MAX;
    /* tokens first (a code is selective), then dates; after the first clause a scan
     * keeps only the candidates so far, so a date range over the patient's 9,000 keys
     * builds no set of 9,000 */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < q->nc; i++) {
            const srch_clause *c = &q->c[i];
            if (i == si || !scopable(q, c)) {
                if (i != si && pass == 0)
                    rest[nrest++] = c;
                continue;
            }
            if ((c->v[0].kind == IDX_DATE) != (pass == 1))
                continue;
            if (!first && pass == 1 && acc.n <= SRCH_FILTER_MAX) {
                /* a date range of a patient with thousands of resources, after the
                 * tokens left a few candidates: checking each candidate's entries
                 * costs less than reading every key of the range */
                if (own_n == UINT64_MAX)
                    own_n = clause_estimate(x, own);
                if (own_n != UINT64_MAX && (uint64_t)acc.n * SCOPE_CHECK_COST < own_n) {
                    rest[nrest++] = c;
                    nchecked++;
                    continue;
                }
            }
            rnset u = {0};
            rnseen cand = {.cap = 16};
            if (!first) { /* the candidates so far, for the scan to keep */
                while (cand.cap < acc.n * 2)
                    cand.cap *= 2;
                cand.slot = arena_alloc(x->a, sizeof *cand.slot * cand.cap);
                cand.used = arena_zalloc(x->a, cand.cap);
                if (!cand.slot || !cand.used)
                    return ERR_NOMEM;
                for (size_t j = 0; j < acc.n; j++)
                    seen_add(&cand, acc.r[j]);
            }
            x->within = first ? NULL : &cand;
            for (size_t j = 0; j < c->nv && !rc; j++)
                rc = scoped_value_set(x, c, &c->v[j], pid, pn, &u);
            x->within = NULL;
            if (rc)
                return rc;
            sort_unique(&u);
            if (first)
                acc = u;
            else
                intersect(&acc, &u);
            first = 0;
        }
    /* the patient's own clause: a lookup per candidate (j/k keys say "in the
     * compartment"), or one more clause of the candidates' entries when those are read */
    /* a caller that asks only whether one resource matches (a _has probe) stops the
     * plan's last step at the first match -- not on a later page after writes, whose
     * result is restricted afterwards to what existed at its page_t */
    size_t want = q->any && !(q->page_t && q->page_t < store_reader_t(x->rd)) ? 1 : 0;
    if (nchecked)
        rest[nrest++] = own;
    else if ((rc = probe_upto(x, &acc, own, nrest ? 0 : want)))
        return rc;
    if (nrest && acc.n <= SRCH_FILTER_MAX) {
        size_t w = 0, np = 0;
        for (size_t i = 0; i < nrest; i++)
            np += clause_probes(rest[i]) && !nchecked;
        for (size_t i = 0, k = 0; i < nrest && !rc; i++) {
            if (clause_probes(rest[i]) && !nchecked) /* entries read anyway: no probe */
                rc = probe_upto(x, &acc, rest[i], ++k == np && np == nrest ? want : 0);
            else
                rest[w++] = rest[i];
        }
        if (!rc && w)
            rc = filter_upto(x, &acc, rest, w, want);
    } else {
        for (size_t i = 0; i < nrest && !rc; i++) {
            rnset s2;
            if (!(rc = clause_set(x, rest[i], &s2)))
                intersect(&acc, &s2);
        }
    }
    if (rc)
        return rc;
    *res = acc;
    return 0;
}

/* ---- one sort key: the index in value order ---------------------------------------------- */

/* Turn s->r[from..n) around. */
static void reverse_rn(rnset *s, size_t from)
{
    for (size_t i = from, j = s->n; j > i + 1; i++, j--) {
        rn_t t;
        memcpy(t, s->r[i], IDX_RN_LEN);
        memcpy(s->r[i], s->r[j - 1], IDX_RN_LEN);
        memcpy(s->r[j - 1], t, IDX_RN_LEN);
    }
}

static long find_rn(const rnset *s, const uint8_t *rn)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp(s->r[mid], rn, IDX_RN_LEN);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* The first `want` matches of s (sorted by rn) in the order of one sort key, into out:
 * the key's entries are read in value order (ascending forward, descending backward),
 * each match taken at its first entry (its smallest value ascending, its largest
 * descending), values that tie in creation order, and matches without a value last.
 * Reads only as far as the page needs. */
static int sort_by_index(xctx *x, const rnset *s, size_t want, rnset *out)
{
    const srch_sort *so = &x->q->sort[0];
    uint8_t kind = sort_kind(so->sp->type, so->desc);
    uint8_t p[9];
    size_t pn = head(p, x->tenant, so->sph, kind);
    uint8_t *seen = arena_zalloc(x->a, s->n ? s->n : 1);
    if (!seen)
        return ERR_NOMEM;
    memset(out, 0, sizeof *out);
    store_iter *it;
    int rc = so->desc ? store_scan_rev(x->rd, STORE_DB_SEARCH_PARAM, p, pn, &it)
                      : store_scan(x->rd, STORE_DB_SEARCH_PARAM, p, pn, p, pn, &it);
    if (rc)
        return rc;
    /* descending: the keys of one value come in falling rn order; each group of them is
     * turned around once complete, so that ties keep creation order, and the scan stops
     * only between two values */
    size_t gstart = 0;
    const uint8_t *gval = NULL;
    size_t glen = 0;
    int stopped = 0;
    const void *k, *v;
    size_t kn, vn;
    while ((so->desc || out->n < want) && (rc = store_scan_next(it, &k, &kn, &v, &vn)) == 0) {
        if ((rc = count_read(x))) {
            store_iter_close(it);
            return rc;
        }
        if (kn < pn + IDX_RN_LEN)
            continue;
        const uint8_t *kb = k;
        const uint8_t *rn = kb + kn - IDX_RN_LEN;
        size_t vl = kn - pn - IDX_RN_LEN;
        if (so->desc && (!gval || vl != glen || memcmp(gval, kb + pn, vl))) {
            reverse_rn(out, gstart);
            if (out->n >= want) {
                stopped = 1;
                break;
            }
            gstart = out->n;
            gval = kb + pn;
            glen = vl;
        }
        long at = find_rn(s, rn);
        if (at < 0 || seen[at])
            continue;
        seen[at] = 1;
        if ((rc = push(x, out, rn))) {
            store_iter_close(it);
            return rc;
        }
    }
    store_iter_close(it);
    if (rc && rc != ERR_NOTFOUND)
        return rc;
    if (so->desc && !stopped)
        reverse_rn(out, gstart); /* the last group */
    if (out->n > want)
        out->n = want;
    /* matches without a value of the key, in creation order */
    for (size_t i = 0; i < s->n && out->n < want; i++)
        if (!seen[i] && (rc = push(x, out, s->r[i])))
            return rc;
    return 0;
}

/* ---- the query ------------------------------------------------------------------------- */

const char *srch_rn_id(store_reader *rd, arena *a, uint32_t tenant, const char *type,
                       const uint8_t rn[IDX_RN_LEN])
{
    uint8_t k[4 + 1 + 66 + IDX_RN_LEN];
    size_t kn = idx_rn_key(k, tenant, type, rn);
    const void *v;
    size_t vn;
    if (store_get(rd, STORE_DB_AUX, k, kn, &v, &vn)) {
        kn = idx_gone_key(k, tenant, type, rn);
        if (store_get(rd, STORE_DB_AUX, k, kn, &v, &vn))
            return NULL;
    }
    return arena_strndup(a, v, vn);
}

int srch_read_as_of(store_reader *rd, uint32_t tenant, const char *type, const char *id,
                    uint64_t t, store_version *v)
{
    store_hist_opts o = {.scope = STORE_SCOPE_INSTANCE, .tenant = tenant, .type = type,
                         .id = id, .as_of_t = t};
    store_iter *it;
    int rc = store_history(rd, &o, &it);
    if (rc)
        return rc;
    rc = store_iter_next(it, v); /* newest first: the version current at t */
    store_iter_close(it);
    if (rc == 0 && v->op == STORE_OP_DELETE)
        rc = ERR_NOTFOUND;
    return rc;
}

static uint64_t rn_t_of(const uint8_t *rn)
{
    uint64_t t = 0;
    for (int i = 0; i < 8; i++)
        t = t << 8 | rn[i];
    return t;
}

/* ---- a later page: the result set as of page_t ------------------------------------- */

static int id_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int over_cmp(const void *a, const void *b)
{
    return memcmp(((const over *)a)->rn, ((const over *)b)->rn, IDX_RN_LEN);
}

/* The number the resource had at page_t when its lineage then was deleted since: the
 * 'g' key of the lineage's creating commit whose id is this one. */
static int gone_rn(xctx *x, const char *id, const store_version *at, uint8_t rn[IDX_RN_LEN])
{
    uint64_t t_created = 0;
    store_hist_opts o = {.scope = STORE_SCOPE_INSTANCE, .tenant = x->tenant, .type = x->q->type,
                         .id = id, .as_of_t = at->t};
    store_iter *it;
    if (store_history(x->rd, &o, &it))
        return -1;
    store_version v;
    while (store_iter_next(it, &v) == 0) { /* back to the version that created it */
        t_created = v.t;
        if (v.created)
            break;
    }
    store_iter_close(it);
    uint8_t p[4 + 1 + 66 + IDX_RN_LEN];
    memset(rn, 0, IDX_RN_LEN);
    for (int i = 0; i < 8; i++)
        rn[i] = (uint8_t)(t_created >> (56 - 8 * i));
    size_t pn = idx_gone_key(p, x->tenant, x->q->type, rn) - 2; /* tenant|'g'|type\0|t */
    store_iter *gi;
    if (store_scan(x->rd, STORE_DB_AUX, p, pn, p, pn, &gi))
        return -1;
    const void *k, *val;
    size_t kn, vn;
    int found = -1;
    while (found && store_scan_next(gi, &k, &kn, &val, &vn) == 0)
        if (kn == pn + 2 && vn == strlen(id) && !memcmp(val, id, vn)) {
            memcpy(rn, (const uint8_t *)k + pn - 8, IDX_RN_LEN);
            found = 0;
        }
    store_iter_close(gi);
    return found;
}

/*
 * res holds the current matches among the resources that existed at page_t. Make it
 * the matches at page_t: every resource of the type changed since (TypeAsOf, newest
 * first, down to page_t) leaves the set and comes back if its version at page_t
 * matches every clause, with that version's entries kept for sorting (x->ov). The
 * rest did not change, so their current entries are those of page_t.
 */
static int repair_snapshot(xctx *x, rnset *res)
{
    const srch_query *q = x->q;
    store_hist_opts o = {.scope = STORE_SCOPE_TYPE, .tenant = x->tenant, .type = q->type};
    store_iter *it;
    int rc = store_history(x->rd, &o, &it);
    if (rc)
        return rc;
    const char **ids = NULL;
    size_t nids = 0, cap = 0;
    store_version v;
    while ((rc = store_iter_next(it, &v)) == 0 && v.t > q->page_t) {
        if (nids == SRCH_PAGE_CHANGES_MAX) {
            store_iter_close(it);
            snprintf(x->e->msg, sizeof x->e->msg,
                     "this paging link has expired: more than %u changes to %s since its "
                     "first page (SRCH_PAGE_CHANGES_MAX); run the search again",
                     SRCH_PAGE_CHANGES_MAX, q->type);
            x->e->status = 410;
            x->e->oo_code = OO_PROCESSING;
            return ERR_GONE;
        }
        if (nids == cap) {
            size_t nc = cap ? cap * 2 : 64;
            const char **n2 = arena_realloc(x->a, ids, sizeof *ids * cap, sizeof *ids * nc);
            if (!n2) {
                store_iter_close(it);
                return ERR_NOMEM;
            }
            ids = n2;
            cap = nc;
        }
        if (!(ids[nids++] = arena_strndup(x->a, v.id, strlen(v.id)))) {
            store_iter_close(it);
            return ERR_NOMEM;
        }
    }
    store_iter_close(it);
    if (rc && rc != ERR_NOTFOUND)
        return rc;
    if (!nids)
        return 0;
    qsort(ids, nids, sizeof *ids, id_cmp);
    rnset gone = {0}, back = {0};
    x->ov = arena_alloc(x->a, sizeof *x->ov * nids);
    if (!x->ov)
        return ERR_NOMEM;
    for (size_t i = 0; i < nids; i++) {
        if (i && !strcmp(ids[i], ids[i - 1]))
            continue;
        uint8_t k[4 + 65 + 65], rn[IDX_RN_LEN], cur_rn[IDX_RN_LEN];
        size_t kn = idx_rp_key(k, x->tenant, q->type, ids[i]);
        const void *val;
        size_t vlen;
        idx_set cur;
        int live = store_get(x->rd, STORE_DB_RESOURCE_PARAM, k, kn, &val, &vlen) == 0 &&
                   idx_rp_decode(x->a, val, vlen, cur_rn, &cur) == 0; /* its rn only */
        if (live && (rc = push(x, &gone, cur_rn)))
            return rc;
        store_version at;
        if (srch_read_as_of(x->rd, x->tenant, q->type, ids[i], q->page_t, &at))
            continue; /* it did not exist at page_t */
        if (live && rn_t_of(cur_rn) <= q->page_t)
            memcpy(rn, cur_rn, IDX_RN_LEN); /* the same lineage: its number */
        else if (gone_rn(x, ids[i], &at, rn))
            continue; /* deleted since, by a build that did not keep its number */
        json_val *doc;
        idx_set es;
        if (json_parse(x->a, at.bytes, at.len, 0, &doc, NULL) ||
            (rc = idx_extract(q->spc, x->a, q->type, doc, q->base_url, &es)))
            return rc ? rc : ERR_IO;
        int ok = 1;
        for (size_t c = 0; c < q->nc && ok; c++)
            ok = clause_accepts(&q->c[c], &es);
        if (!ok)
            continue;
        if ((rc = push(x, &back, rn)))
            return rc;
        memcpy(x->ov[x->nov].rn, rn, IDX_RN_LEN);
        x->ov[x->nov++].es = es;
    }
    qsort(x->ov, x->nov, sizeof *x->ov, over_cmp);
    sort_unique(&gone);
    subtract(res, &gone);
    for (size_t i = 0; i < back.n; i++)
        if ((rc = push(x, res, back.r[i])))
            return rc;
    sort_unique(res);
    return 0;
}


/* One clause of one whole value (a reference, system|code), unsorted: its keys are the
 * matches in rn order, so the page is the keys from the offset on, and the total a count
 * of keys, with no set built. Returns 1 when q is not of that shape. */
static int run_single(xctx *x, const srch_query *q, srch_result *out)
{
    const srch_clause *c = &q->c[0];
    if (q->nc != 1 || q->nsort || c->nv != 1 || !clause_cheap(c) || !c->v[0].whole ||
        (q->page_t && q->page_t < store_reader_t(x->rd)))
        return 1;
    uint8_t p[STORE_EXTRA_KEY_MAX + 16];
    size_t pn = value_prefix(x, c, &c->v[0], p, 0);
    if (!pn)
        return 1;
    store_iter *it;
    int rc = store_scan(x->rd, STORE_DB_SEARCH_PARAM, p, pn, p, pn, &it);
    if (rc)
        return rc;
    size_t want = q->summary_count ? 0 : (size_t)q->page_offset + q->count;
    rnset page = {0};
    uint64_t total = 0;
    /* the value's count, when the store keeps it: then only the page is read */
    uint64_t counted = 0;
    int have_count = q->total != 0 && store_key_count(x->rd, STORE_DB_SEARCH_PARAM, p, pn,
                                                      &counted) == 0;
    const void *k, *val;
    size_t kn, vn;
    while ((rc = store_scan_next(it, &k, &kn, &val, &vn)) == 0) {
        if ((rc = count_read(x))) {
            store_iter_close(it);
            return rc;
        }
        if (kn != pn + IDX_RN_LEN)
            continue;
        const uint8_t *rn = (const uint8_t *)k + pn;
        if (q->page_t && rn_t_of(rn) > q->page_t)
            continue;
        if (total++ >= q->page_offset && page.n < q->count && !q->summary_count &&
            (rc = push(x, &page, rn))) {
            store_iter_close(it);
            return rc;
        }
        if ((q->total == 0 || have_count) && total >= want)
            break; /* no total asked for, or counted: the page is all there is to read */
    }
    store_iter_close(it);
    if (rc && rc != ERR_NOTFOUND)
        return rc;
    if (have_count)
        total = counted;
    out->total = total;
    out->has_total = q->total != 0 || rc == ERR_NOTFOUND;
    out->rn = page.r;
    out->n = page.n;
    out->more = total > q->page_offset + page.n || (rc == 0 && q->total == 0);
    return 0;
}

/*
 * One whole-value clause sorted by one key (Observation?status=final&_sort=date): walk
 * the sort key's index in order and keep the resources that have the clause's key (a
 * lookup each) until the page is full, instead of building the clause's set (a million
 * matches) first. The total is a count of the clause's keys. Returns 1 (not handled:
 * the caller runs the general plan) when the query is not of that shape, when the walk
 * reads more than 64 keys per row wanted (the clause is selective: its set is small),
 * or when the index ends before the page is full (the matches without a sort value
 * come last, and only the set knows them).
 */
static int run_sort_probe(xctx *x, const srch_query *q, srch_result *out)
{
    const srch_clause *c = &q->c[0];
    if (q->nc != 1 || q->nsort != 1 || q->summary_count || !q->count || c->nv != 1 ||
        !clause_probes(c) || (q->page_t && q->page_t < store_reader_t(x->rd)))
        return 1;
    size_t want = (size_t)q->page_offset + q->count + 1; /* + 1: is there a next page? */
    size_t budget = want * 64 < 4096 ? 4096 : want * 64;
    const srch_sort *so = &q->sort[0];
    uint8_t kind = sort_kind(so->sp->type, so->desc);
    uint8_t p[9];
    size_t pn = head(p, x->tenant, so->sph, kind);
    rnseen seen = {.cap = 1};
    while (seen.cap < budget * 2)
        seen.cap *= 2;
    seen.slot = arena_alloc(x->a, sizeof *seen.slot * seen.cap);
    seen.used = arena_zalloc(x->a, seen.cap);
    if (!seen.slot || !seen.used)
        return ERR_NOMEM;
    rnset page = {0};
    store_iter *it;
    int rc = so->desc ? store_scan_rev(x->rd, STORE_DB_SEARCH_PARAM, p, pn, &it)
                      : store_scan(x->rd, STORE_DB_SEARCH_PARAM, p, pn, p, pn, &it);
    if (rc)
        return rc;
    size_t gstart = 0, glen = 0, walked = 0;
    const uint8_t *gval = NULL;
    int full = 0;
    const void *k, *v;
    size_t kn, vn;
    while ((rc = store_scan_next(it, &k, &kn, &v, &vn)) == 0) {
        if ((rc = count_read(x)))
            break;
        if (kn < pn + IDX_RN_LEN)
            continue;
        if (++walked > budget)
            break;
        const uint8_t *kb = k, *rn = kb + kn - IDX_RN_LEN;
        size_t vl = kn - pn - IDX_RN_LEN;
        if (!gval || vl != glen || memcmp(gval, kb + pn, vl)) { /* a new value */
            if (so->desc)
                reverse_rn(&page, gstart); /* ties in creation order */
            if (page.n >= want) {
                full = 1;
                break;
            }
            gstart = page.n;
            gval = kb + pn;
            glen = vl;
        }
        if ((q->page_t && rn_t_of(rn) > q->page_t) || !seen_add(&seen, rn))
            continue;
        int hit = has_key(x, c, rn);
        if (hit < 0) {
            rc = hit;
            break;
        }
        if (!hit)
            continue;
        if ((rc = push(x, &page, rn)))
            break;
    }
    store_iter_close(it);
    if (rc && rc != ERR_NOTFOUND)
        return rc;
    if (!full)
        return 1; /* the budget ran out, or the index ended: the general plan */
    /* the total: the clause's keys, counted */
    uint64_t total = 0;
    if (q->total) {
        uint8_t cp[STORE_EXTRA_KEY_MAX + 16];
        size_t cpn = value_prefix(x, c, &c->v[0], cp, 0);
        store_iter *ci = NULL;
        if (!cpn)
            return 1; /* no key of it fits: the general plan says so */
        /* kept by the store (docs/STORAGE.md 4.7): no scan */
        if (store_key_count(x->rd, STORE_DB_SEARCH_PARAM, cp, cpn, &total) == 0)
            rc = ERR_NOTFOUND;
        else if ((rc = store_scan(x->rd, STORE_DB_SEARCH_PARAM, cp, cpn, cp, cpn, &ci)))
            return rc;
        while (ci && (rc = store_scan_next(ci, &k, &kn, &v, &vn)) == 0) {
            if ((rc = count_read(x)))
                break;
            if (kn == cpn + IDX_RN_LEN &&
                !(q->page_t && rn_t_of((const uint8_t *)k + cpn) > q->page_t))
                total++;
        }
        if (ci)
            store_iter_close(ci);
        if (rc && rc != ERR_NOTFOUND)
            return rc;
    }
    size_t from = q->page_offset < page.n ? (size_t)q->page_offset : page.n;
    size_t n = page.n - from < q->count ? page.n - from : q->count;
    out->rn = page.r + from;
    out->n = n;
    out->total = total;
    out->has_total = q->total != 0;
    out->more = page.n > from + n;
    return 0;
}

#define EXPAND_MAX_SYSTEMS 8 /* a code's systems a token clause is spelled out into */

/* A token value without a system (status=final, code=8867-4) is a prefix of the keys of
 * every system the code has. Find those systems by skipping over each one's keys (a seek
 * per system); with few, the value becomes the OR of whole values, which the fast plans
 * (one value's count, probes) take. 0 and *out (v itself when there are too many, or
 * an error-free nothing), or an error. */
static int expand_code(xctx *x, const srch_clause *c, const srch_value *v, srch_value **out,
                       size_t *nout)
{
    *out = (srch_value *)v;
    *nout = 1;
    uint8_t p[STORE_EXTRA_KEY_MAX + 16], from[STORE_EXTRA_KEY_MAX + 32];
    size_t pn = value_prefix(x, c, v, p, IDX_RN_LEN + 2), fn = pn;
    if (!pn)
        return 0;
    size_t hn = pn - v->key_len;
    memcpy(from, p, pn);
    srch_value *vs = arena_alloc(x->a, sizeof *vs * EXPAND_MAX_SYSTEMS);
    if (!vs)
        return ERR_NOMEM;
    size_t n = 0;
    for (;;) {
        store_iter *it;
        int rc = store_scan(x->rd, STORE_DB_SEARCH_PARAM, from, fn, p, pn, &it);
        if (rc)
            return rc;
        const void *k, *val;
        size_t kn, vn;
        rc = store_scan_next(it, &k, &kn, &val, &vn);
        uint8_t key[STORE_EXTRA_KEY_MAX];
        if (rc == 0 && kn <= sizeof key)
            memcpy(key, k, kn);
        store_iter_close(it);
        if (rc == ERR_NOTFOUND)
            break;
        if (rc)
            return rc;
        if (kn < pn + 1 + IDX_RN_LEN || kn > sizeof key || n == EXPAND_MAX_SYSTEMS)
            return 0; /* not a code\0 system\0 rn key, or too many systems: as it was */
        size_t wl = kn - IDX_RN_LEN - hn; /* code\0 system\0 */
        uint8_t *w = arena_alloc(x->a, wl);
        if (!w)
            return ERR_NOMEM;
        memcpy(w, key + hn, wl);
        vs[n] = *v;
        vs[n].key = w;
        vs[n].key_len = wl;
        vs[n].whole = 1;
        n++;
        /* past every key of this system: its whole value, then bytes above any rn */
        memcpy(from, key, kn - IDX_RN_LEN);
        fn = kn - IDX_RN_LEN;
        memset(from + fn, 0xff, IDX_RN_LEN); /* no rn is all 0xff (its t is far lower) */
        fn += IDX_RN_LEN;
    }
    if (n) {
        *out = vs;
        *nout = n;
    }
    return 0;
}

/* A copy of q whose clauses may be changed (arena); NULL: no memory. */
static srch_query *query_copy(xctx *x, const srch_query *q)
{
    srch_query *qq = arena_alloc(x->a, sizeof *qq);
    srch_clause *cs = qq ? arena_alloc(x->a, sizeof *cs * (q->nc ? q->nc : 1)) : NULL;
    if (!cs)
        return NULL;
    *qq = *q;
    memcpy(cs, q->c, sizeof *cs * q->nc);
    qq->c = cs;
    return qq;
}

/* s made a query run inside outer (behind a link, or a probe): no paging and no sort, as
 * of outer's page_t with outer's index; at most count rows, or only the number of its
 * matches. */
static void as_inner(srch_query *s, const srch_query *outer, unsigned count, int only_count)
{
    s->page_t = outer->page_t;
    s->page_offset = 0;
    s->count = count;
    s->nsort = 0;
    s->summary_count = only_count;
    s->total = 2;
    s->spc = outer->spc;
    s->base_url = outer->base_url;
}

/* Run the query behind clause c of q (a link or an exception) inside q: all its matches,
 * up to SRCH_MAX_LINK_MATCHES + 1, into *r. */
static int run_sub(xctx *x, const srch_query *q, const srch_clause *c, srch_query *s,
                   srch_result *r)
{
    *s = *c->sub;
    as_inner(s, q, SRCH_MAX_LINK_MATCHES + 1, 0);
    return srch_run(s, x->rd, x->a, x->tenant, r, x->e);
}

/* b := the value bytes of an entry naming type/id: a local reference (R id\0Type\0),
 * or with type "" the resource's own _id (T id\0\0). 0 or ERR_NOMEM. */
static int id_value(buf *b, const char *id, const char *type)
{
    buf_reset(b);
    idx_put_str(b, id, strlen(id));
    idx_put_str(b, type, strlen(type));
    return b->err ? ERR_NOMEM : 0;
}

/* q with every system-less token value of a single-valued clause spelled out per system
 * (expand_code): a copy in the arena, or q itself. */
static int expand_codes(xctx *x, const srch_query *q, const srch_query **out)
{
    *out = q;
    srch_query *qq = NULL;
    if (q->page_t && q->page_t < store_reader_t(x->rd))
        return 0; /* a later page after writes checks old versions: the systems of now
                     are not those of then */
    for (size_t i = 0; i < q->nc; i++) {
        const srch_clause *c = &q->c[i];
        const srch_value *v = c->nv == 1 ? &c->v[0] : NULL;
        if (!v || (c->mod != SM_NONE && c->mod != SM_NOT) || v->kind != IDX_TOKEN ||
            v->whole || v->system || v->needle || !v->key_len)
            continue;
        srch_value *vs;
        size_t n;
        int rc = expand_code(x, c, v, &vs, &n);
        if (rc)
            return rc;
        if (vs == v)
            continue;
        if (!qq && !(qq = query_copy(x, q)))
            return ERR_NOMEM;
        qq->c[i].v = vs;
        qq->c[i].nv = n;
    }
    if (qq)
        *out = qq;
    return 0;
}

/* ---- chains and reverse chains (docs/SEARCH.md 4b) --------------------------------------- */

static int key_cmp_len(const void *a, const void *b)
{
    const srch_value *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Append value key p[0..n) of kind to *vs (arena). */
static int push_value(xctx *x, srch_value **vs, size_t *nv, size_t *cap, uint8_t kind,
                      const void *p, size_t n)
{
    if (*nv == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        srch_value *g = arena_realloc(x->a, *vs, sizeof *g * *cap, sizeof *g * nc);
        if (!g)
            return ERR_NOMEM;
        *vs = g;
        *cap = nc;
    }
    uint8_t *k = arena_alloc(x->a, n ? n : 1);
    if (!k)
        return ERR_NOMEM;
    memcpy(k, p, n);
    (*vs)[(*nv)++] = (srch_value){.kind = kind, .key = k, .key_len = n, .whole = 1};
    return 0;
}

/* The entries of resource type/id as the query sees it: as of page_t on a later page
 * after writes, else its ResourceParam list. 1: it has none (not there then). */
static int link_entries(xctx *x, const srch_query *q, const char *type, const char *id,
                        idx_set *es)
{
    if (q->page_t && q->page_t < store_reader_t(x->rd)) {
        store_version at;
        json_val *doc;
        if (srch_read_as_of(x->rd, x->tenant, type, id, q->page_t, &at))
            return 1;
        if (!q->spc)
            return fail(x->e, ERR_INTERNAL, OO_EXCEPTION, "a later page without the index");
        if (json_parse(x->a, at.bytes, at.len, 0, &doc, NULL))
            return ERR_IO;
        return idx_extract(q->spc, x->a, type, doc, q->base_url, es);
    }
    uint8_t rn[IDX_RN_LEN];
    int rc = idx_entries(q->spc, x->rd, x->a, x->tenant, type, id, rn, es);
    return rc == ERR_NOTFOUND ? 1 : rc;
}

/* The values a link clause stands for: the sub-query runs (as of the same page_t), and
 * each match becomes a reference to it (chain: R id\0Type\0) or each reference of a
 * match through has_sph to this type becomes an id (_has: T id\0\0 of _id). */
static int link_values(xctx *x, const srch_query *q, const srch_clause *c, srch_value **vs,
                       size_t *nv)
{
    srch_query s;
    srch_result r;
    int rc = run_sub(x, q, c, &s, &r);
    if (rc)
        return rc;
    if (r.total > SRCH_MAX_LINK_MATCHES || r.n > SRCH_MAX_LINK_MATCHES) {
        snprintf(x->e->msg, sizeof x->e->msg,
                 "a chained or _has parameter of %s matches more than %u %s resources "
                 "(SRCH_MAX_LINK_MATCHES): narrow it",
                 q->type, SRCH_MAX_LINK_MATCHES, s.type);
        x->e->status = 400;
        x->e->oo_code = OO_TOO_COSTLY;
        return ERR_LIMIT;
    }
    size_t cap = 0;
    *vs = NULL;
    *nv = 0;
    buf b = BUF_INIT;
    size_t tl = strlen(q->type);
    for (size_t i = 0; i < r.n && !rc; i++) {
        const char *id = srch_rn_id(x->rd, x->a, x->tenant, s.type, r.rn[i]);
        if (!id)
            continue;
        if (c->link == SL_CHAIN) {
            if (!(rc = id_value(&b, id, s.type)))
                rc = push_value(x, vs, nv, &cap, IDX_REF, b.data, b.len);
            continue;
        }
        idx_set es;
        int lr = link_entries(x, q, s.type, id, &es);
        if (lr == 1)
            continue;
        if ((rc = lr))
            break;
        for (size_t j = 0; j < es.n && !rc; j++) {
            const idx_entry *e = &es.e[j];
            if (e->sp != c->has_sph || e->kind != IDX_REF)
                continue;
            size_t idn = idx_str_len(e->val, e->len);
            /* a reference to this type: id\0 then the type's escaped name */
            if (!idn || e->len - idn != tl + 1 || memcmp(e->val + idn, q->type, tl))
                continue;
            buf_reset(&b);
            buf_put(&b, e->val, idn);
            idx_put_str(&b, "", 0);
            rc = b.err ? ERR_NOMEM : push_value(x, vs, nv, &cap, IDX_TOKEN, b.data, b.len);
        }
    }
    buf_free(&b);
    if (rc)
        return rc;
    if (*nv > 1) { /* one value per resource */
        qsort(*vs, *nv, sizeof **vs, key_cmp_len);
        size_t w = 1;
        for (size_t i = 1; i < *nv; i++)
            if (key_cmp_len(&(*vs)[i], &(*vs)[w - 1]))
                (*vs)[w++] = (*vs)[i];
        *nv = w;
    }
    return 0;
}

/* A _has beside selective plain clauses (Patient?family=x&_has:Observation:patient:
 * code=y): the candidates of the plain clauses, each kept when the query behind the link
 * with a reference to it has a match (a probe: within one patient that is a scan of its
 * own entries), instead of every match behind the link and their references. 1: not of
 * that shape (no plain clause, or more than SRCH_FILTER_MAX candidates). */
static int has_probe(xctx *x, const srch_query *q, const srch_clause *c, srch_value **vs,
                     size_t *nv)
{
    size_t np = 0;
    for (size_t i = 0; i < q->nc; i++)
        np += q->c[i].link == SL_NONE;
    if (!np || !c->has_sp)
        return 1;
    srch_query p = *q;
    srch_clause *pc = arena_alloc(x->a, sizeof *pc * np);
    if (!pc)
        return ERR_NOMEM;
    p.c = pc;
    p.nc = 0;
    for (size_t i = 0; i < q->nc; i++)
        if (q->c[i].link == SL_NONE)
            pc[p.nc++] = q->c[i];
    as_inner(&p, q, SRCH_FILTER_MAX + 1, 0);
    srch_result r;
    int rc = srch_run(&p, x->rd, x->a, x->tenant, &r, x->e);
    if (rc)
        return rc;
    if (r.total > SRCH_FILTER_MAX || r.n != r.total)
        return 1;
    const srch_query *sub = c->sub;
    srch_query s = *sub;
    srch_clause *sc = arena_alloc(x->a, sizeof *sc * (sub->nc + 1));
    srch_value *ref = arena_zalloc(x->a, sizeof *ref);
    if (!sc || !ref)
        return ERR_NOMEM;
    memcpy(sc, sub->c, sizeof *sc * sub->nc);
    sc[sub->nc] = (srch_clause){.sp = c->has_sp, .sph = c->has_sph, .v = ref, .nv = 1};
    s.c = sc;
    s.nc = sub->nc + 1;
    as_inner(&s, q, 0, 1);
    s.any = 1; /* whether the resource has one, not how many */
    size_t cap = 0;
    *vs = NULL;
    *nv = 0;
    buf b = BUF_INIT;
    for (size_t i = 0; i < r.n && !rc; i++) {
        const char *id = srch_rn_id(x->rd, x->a, x->tenant, q->type, r.rn[i]);
        if (!id)
            continue;
        if ((rc = id_value(&b, id, q->type)))
            break;
        *ref = (srch_value){.kind = IDX_REF, .key = (const uint8_t *)b.data, .key_len = b.len,
                            .whole = 1};
        srch_result pr;
        if ((rc = srch_run(&s, x->rd, x->a, x->tenant, &pr, x->e)))
            break;
        if (pr.total && !(rc = id_value(&b, id, "")))
            rc = push_value(x, vs, nv, &cap, IDX_TOKEN, b.data, b.len);
    }
    buf_free(&b);
    return rc;
}

/* ---- _include and _revinclude (docs/SEARCH.md 4c) ------------------------------------------ */

typedef struct incset {
    srch_ref *r;
    uint64_t *rh;    /* the hash of each r[i] */
    size_t n, cap;
    uint32_t *slot;  /* open addressing over type/id, for "once": index + 1, 0 free */
    size_t hcap;
    const char *rtype; /* the reference parameters of this type (`*`), by hash */
    uint32_t rsp[128];
    size_t nrsp;
} incset;

static uint64_t ref_hash(const char *type, const char *id)
{
    uint64_t h = 1469598103934665603u;
    for (const char *p = type; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211u;
    h = (h ^ '/') * 1099511628211u;
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211u;
    return h;
}

/* The slot of type/id (hash k): where it is, or the free slot where it would go. */
static size_t inc_slot(const incset *s, uint64_t k, const char *type, const char *id)
{
    size_t j = k & (s->hcap - 1);
    for (; s->slot[j]; j = (j + 1) & (s->hcap - 1)) {
        size_t i = s->slot[j] - 1;
        if (s->rh[i] == k && !strcmp(s->r[i].id, id) && !strcmp(s->r[i].type, type))
            break;
    }
    return j;
}

static int inc_has(const incset *s, const char *type, const char *id)
{
    return s->hcap && s->slot[inc_slot(s, ref_hash(type, id), type, id)];
}

/* Add type/id once: 1 added, 0 there already, <0 an error. */
static int inc_add(xctx *x, incset *s, const char *type, const char *id)
{
    if (s->n * 2 >= s->hcap) {
        size_t nc = s->hcap ? s->hcap * 2 : 256;
        uint32_t *h = arena_zalloc(x->a, sizeof *h * nc);
        if (!h)
            return ERR_NOMEM;
        for (size_t i = 0; i < s->n; i++) {
            size_t j = s->rh[i] & (nc - 1);
            while (h[j])
                j = (j + 1) & (nc - 1);
            h[j] = (uint32_t)(i + 1);
        }
        s->slot = h;
        s->hcap = nc;
    }
    uint64_t k = ref_hash(type, id);
    size_t j = inc_slot(s, k, type, id);
    if (s->slot[j])
        return 0;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        srch_ref *g = arena_realloc(x->a, s->r, sizeof *g * s->cap, sizeof *g * nc);
        uint64_t *gh = arena_realloc(x->a, s->rh, sizeof *gh * s->cap, sizeof *gh * nc);
        if (!g || !gh)
            return ERR_NOMEM;
        s->r = g;
        s->rh = gh;
        s->cap = nc;
    }
    s->rh[s->n] = k;
    s->slot[j] = (uint32_t)(s->n + 1);
    s->r[s->n++] = (srch_ref){type, id};
    return 1;
}

/* Is sph the hash of a reference parameter of type (for `*`)? The hashes of the last
 * type asked are kept in s. */
static int is_ref_param(const fp_sp_cache *spc, incset *s, const char *type, uint32_t sph)
{
    if (!s->rtype || strcmp(s->rtype, type)) {
        const fhir_search_param *const *sps;
        size_t n = fp_sp_params(spc, type, &sps);
        s->nrsp = 0;
        for (size_t i = 0; i < n; i++)
            if (sps[i]->type == FHIR_SP_REFERENCE) {
                if (s->nrsp == sizeof s->rsp / sizeof s->rsp[0]) { /* R4's most: 13 */
                    s->rtype = NULL;
                    for (size_t k = 0; k < n; k++)
                        if (sps[k]->type == FHIR_SP_REFERENCE &&
                            idx_param_hash(spc, type, sps[k]) == sph)
                            return 1;
                    return 0;
                }
                s->rsp[s->nrsp++] = idx_param_hash(spc, type, sps[i]);
            }
        s->rtype = type;
    }
    for (size_t i = 0; i < s->nrsp; i++)
        if (s->rsp[i] == sph)
            return 1;
    return 0;
}

/* 1 when the query's caller lets an include add type/id (the token's rights), 0 when
 * not, <0 an error. Checked before the resource is added, so one the caller may not
 * see neither counts towards the limit nor leads :iterate anywhere. */
static int inc_visible(xctx *x, const char *type, const char *id)
{
    return x->q->visible ? x->q->visible(x->q->visible_ctx, x->rd, type, id) : 1;
}

/* One include from resource r: the targets of its references (forward), or the
 * resources of inc->src that refer to it (reverse), added to s. */
static int include_from(xctx *x, const srch_include *inc, const srch_ref *r, incset *s,
                        size_t limit)
{
    int rc;
    if (!inc->rev) {
        idx_set es;
        uint8_t rn[IDX_RN_LEN];
        rc = idx_entries(x->q->spc, x->rd, x->a, x->tenant, r->type, r->id, rn, &es);
        if (rc)
            return rc == ERR_NOTFOUND ? 0 : rc;
        for (size_t i = 0; i < es.n; i++) {
            const idx_entry *e = &es.e[i];
            if (e->kind != IDX_REF ||
                (inc->sp ? e->sp != inc->sph : !is_ref_param(x->q->spc, s, r->type, e->sp)))
                continue;
            size_t idn = idx_str_len(e->val, e->len);
            if (!idn || idn >= e->len || e->val[0] == '#' || e->val[idn] == 0)
                continue; /* not a local reference */
            char *tid = arena_alloc(x->a, idn), *tt = arena_alloc(x->a, e->len - idn);
            if (!tid || !tt)
                return ERR_NOMEM;
            /* ids and type names need no escapes: their bytes are the string */
            memcpy(tid, e->val, idn);
            memcpy(tt, e->val + idn, e->len - idn);
            if (memchr(tid, 1, idn - 1) || memchr(tt, 1, e->len - idn - 1))
                continue;
            if ((inc->target && strcmp(tt, inc->target)) || inc_has(s, tt, tid))
                continue; /* another type, or added already (no read) */
            store_version v;
            if (store_read(x->rd, x->tenant, tt, tid, &v))
                continue; /* a reference to nothing (or to a deleted resource) */
            if ((rc = inc_visible(x, v.type, v.id)) <= 0) {
                if (rc < 0)
                    return rc;
                continue;
            }
            if ((rc = inc_add(x, s, v.type, v.id)) < 0)
                return rc;
            if (s->n > limit)
                return fail(x->e, ERR_LIMIT, OO_TOO_COSTLY,
                            "the includes add more than SRCH_MAX_INCLUDED resources to the "
                            "page: use a smaller _count");
        }
        return 0;
    }
    if (inc->target && strcmp(inc->target, r->type))
        return 0;
    int refers = inc->sp->ntargets == 0;
    for (uint8_t i = 0; i < inc->sp->ntargets && !refers; i++)
        refers = !strcmp(inc->sp->targets[i], r->type);
    if (!refers)
        return 0;
    uint8_t p[STORE_EXTRA_KEY_MAX + 16];
    size_t pn = head(p, x->tenant, inc->sph, IDX_REF);
    buf b = BUF_INIT;
    if ((rc = id_value(&b, r->id, r->type)) || pn + b.len > STORE_EXTRA_KEY_MAX) {
        buf_free(&b);
        return rc;
    }
    memcpy(p + pn, b.data, b.len);
    pn += b.len;
    buf_free(&b);
    rnset hits = {0};
    if ((rc = scan(x, p, pn, NULL, 0, pred_whole, NULL, &hits)))
        return rc;
    for (size_t i = 0; i < hits.n; i++) {
        const char *id = srch_rn_id(x->rd, x->a, x->tenant, inc->src, hits.r[i]);
        store_version v;
        if (!id || store_read(x->rd, x->tenant, inc->src, id, &v) ||
            inc_has(s, v.type, v.id))
            continue;
        if ((rc = inc_visible(x, v.type, v.id)) <= 0) {
            if (rc < 0)
                return rc;
            continue;
        }
        if ((rc = inc_add(x, s, v.type, v.id)) < 0)
            return rc;
        if (s->n > limit)
            return fail(x->e, ERR_LIMIT, OO_TOO_COSTLY,
                        "the includes add more than SRCH_MAX_INCLUDED resources to the page: "
                        "use a smaller _count");
    }
    return 0;
}

int srch_includes(const srch_query *q, store_reader *rd, arena *a, uint32_t tenant,
                  const srch_ref *page, size_t n, srch_ref **out, size_t *nout, srch_error *e)
{
    *out = NULL;
    *nout = 0;
    if (!q->ninc || !n)
        return 0;
    xctx x = {.rd = rd, .a = a, .tenant = tenant, .q = q, .e = e};
    incset s = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc >= 0; i++)
        rc = inc_add(&x, &s, page[i].type, page[i].id);
    if (rc < 0)
        return rc;
    size_t limit = n + SRCH_MAX_INCLUDED;
    /* the matches first (every include), then each round's new resources (:iterate) */
    size_t from = 0, to = s.n;
    for (int round = 0; from < to; round++) {
        for (size_t i = from; i < to; i++)
            for (size_t k = 0; k < q->ninc; k++) {
                const srch_include *inc = &q->inc[k];
                if ((round && !inc->iterate) ||
                    (!inc->rev && inc->src && strcmp(inc->src, s.r[i].type)))
                    continue;
                srch_ref r = s.r[i];
                if ((rc = include_from(&x, inc, &r, &s, limit)))
                    return rc;
            }
        from = to;
        to = s.n;
    }
    *out = s.r + n;
    *nout = s.n - n;
    return 0;
}

/* ---- referrers ----------------------------------------------------------------------- */

int srch_referrers(store_reader *rd, arena *a, const fp_sp_cache *spc, uint32_t tenant,
                   const char *type, const char *id, size_t max, srch_skip_fn skip,
                   void *skip_ctx, srch_referrer *out, size_t *n)
{
    *n = 0;
    buf b = BUF_INIT;
    int rc = id_value(&b, id, type);
    const fhir_type *const *types;
    size_t nt = fhir_resource_types(&types);
    for (size_t t = 0; t < nt && !rc && *n < max; t++) {
        const char *src = types[t]->name;
        const fhir_search_param *const *sps;
        size_t ns = fp_sp_params(spc, src, &sps);
        for (size_t k = 0; k < ns && !rc && *n < max; k++) {
            const fhir_search_param *sp = sps[k];
            int refers = sp->type == FHIR_SP_REFERENCE && sp->ntargets == 0;
            for (uint8_t j = 0; sp->type == FHIR_SP_REFERENCE && j < sp->ntargets && !refers;
                 j++)
                refers = !strcmp(sp->targets[j], type);
            if (!refers)
                continue;
            uint8_t p[STORE_EXTRA_KEY_MAX + 16];
            size_t pn = head(p, tenant, idx_param_hash(spc, src, sp), IDX_REF);
            if (pn + b.len + IDX_RN_LEN > STORE_EXTRA_KEY_MAX)
                continue; /* no key of it can have been written */
            memcpy(p + pn, b.data, b.len);
            pn += b.len;
            store_iter *it;
            if ((rc = store_scan(rd, STORE_DB_SEARCH_PARAM, p, pn, p, pn, &it)))
                break;
            const void *kv, *val;
            size_t kn, vn;
            while (*n < max && (rc = store_scan_next(it, &kv, &kn, &val, &vn)) == 0) {
                if (kn != pn + IDX_RN_LEN)
                    continue;
                const char *rid = srch_rn_id(rd, a, tenant, src, (const uint8_t *)kv + pn);
                if (!rid)
                    continue; /* no id for the number: `hortus check` reports it */
                if ((!strcmp(src, type) && !strcmp(rid, id)) || (skip && skip(skip_ctx, src, rid)))
                    continue; /* itself, or a resource the caller knows about */
                int dup = 0;
                for (size_t i = 0; i < *n && !dup; i++)
                    dup = out[i].type == src && !strcmp(out[i].id, rid);
                if (!dup)
                    out[(*n)++] = (srch_referrer){src, rid, sp->code};
            }
            store_iter_close(it);
            if (rc == ERR_NOTFOUND)
                rc = 0;
        }
    }
    if (b.err && !rc)
        rc = ERR_NOMEM;
    buf_free(&b);
    return rc;
}

int srch_in_compartment(store_reader *rd, arena *a, uint32_t tenant, const char *comp,
                        const char *const *cids, size_t ncids, const char *type,
                        const char *id)
{
    const char *const *codes;
    size_t nc = fhir_compartment(comp, type, &codes);
    if (!nc || !ncids)
        return 0;
    uint8_t k[4 + 65 + 65], rn[IDX_RN_LEN];
    size_t kn = idx_rp_key(k, tenant, type, id), clen = strlen(comp);
    const void *val;
    size_t vlen;
    int rc = store_get(rd, STORE_DB_RESOURCE_PARAM, k, kn, &val, &vlen);
    if (rc)
        return rc == ERR_NOTFOUND ? 0 : rc;
    idx_set es;
    if (idx_rp_decode(a, val, vlen, rn, &es))
        return ERR_IO;
    for (size_t i = 0; i < es.n; i++) {
        const idx_entry *e = &es.e[i];
        /* "id\0Comp\0" (ids and type names need no escapes) */
        size_t idn = e->kind == IDX_REF ? idx_str_len(e->val, e->len) : 0;
        if (!idn || e->len != idn + clen + 1 || memcmp(e->val + idn, comp, clen + 1))
            continue;
        int param = 0;
        for (size_t j = 0; j < nc && !param; j++)
            param = e->sp == idx_sp_hash(type, codes[j]);
        for (size_t j = 0; param && j < ncids; j++)
            if (strlen(cids[j]) + 1 == idn && !memcmp(e->val, cids[j], idn))
                return 1;
    }
    return 0;
}

/* q with each link clause replaced by the plain clause of its values (a copy in the
 * arena, or q itself). *none: a link has no values, so nothing matches. */
static int resolve_links(xctx *x, const srch_query *q, const srch_query **out, int *none)
{
    *out = q;
    *none = 0;
    srch_query *qq = NULL;
    for (size_t i = 0; i < q->nc; i++) {
        const srch_clause *c = &q->c[i];
        if (c->link == SL_NONE)
            continue;
        if (!qq && !(qq = query_copy(x, q)))
            return ERR_NOMEM;
        srch_value *vs;
        size_t nv;
        int rc = c->link == SL_HAS ? has_probe(x, q, c, &vs, &nv) : 1;
        if (rc == 1)
            rc = link_values(x, q, c, &vs, &nv);
        if (rc)
            return rc;
        if (!nv) {
            *none = 1;
            return 0;
        }
        qq->c[i].v = vs;
        qq->c[i].nv = nv;
        qq->c[i].link = SL_NONE;
        qq->c[i].sub = NULL;
    }
    if (qq)
        *out = qq;
    return 0;
}

/* The resources q's exceptions (SL_EXCEPT) leave out, sorted, into *ex, and q without
 * those clauses in *out (a copy in the arena, or q itself when it has none). */
static int take_excepts(xctx *x, const srch_query *q, const srch_query **out, rnset *ex)
{
    *out = q;
    memset(ex, 0, sizeof *ex);
    size_t n = 0;
    for (size_t i = 0; i < q->nc; i++)
        n += q->c[i].link == SL_EXCEPT;
    if (!n)
        return 0;
    srch_query *qq = query_copy(x, q);
    if (!qq)
        return ERR_NOMEM;
    qq->nc = 0;
    for (size_t i = 0; i < q->nc; i++) {
        const srch_clause *c = &q->c[i];
        if (c->link != SL_EXCEPT) {
            qq->c[qq->nc++] = *c;
            continue;
        }
        srch_query s;
        srch_result r;
        int rc = run_sub(x, q, c, &s, &r);
        if (rc)
            return rc;
        if (r.n < r.total)
            return fail(x->e, ERR_LIMIT, OO_TOO_COSTLY,
                        "more resources than SRCH_MAX_LINK_MATCHES are withheld from this "
                        "query: narrow it");
        for (size_t j = 0; j < r.n; j++)
            if ((rc = push(x, ex, r.rn[j])))
                return rc;
    }
    sort_unique(ex);
    *out = qq;
    return 0;
}

/* An upper bound of a cheap clause's matches from the counts the store keeps: the sum
 * of its values' counts; UINT64_MAX when some value is not counted. */
static uint64_t clause_estimate(xctx *x, const srch_clause *c)
{
    if (c->mod == SM_NOT || c->mod == SM_MISSING || !c->nv)
        return UINT64_MAX;
    uint64_t sum = 0;
    for (size_t i = 0; i < c->nv; i++) {
        const srch_value *v = &c->v[i];
        uint8_t p[STORE_EXTRA_KEY_MAX + 16];
        size_t pn = v->whole ? value_prefix(x, c, v, p, 0) : 0;
        uint64_t n;
        if (!pn || store_key_count(x->rd, STORE_DB_SEARCH_PARAM, p, pn, &n))
            return UINT64_MAX;
        sum += n;
    }
    return sum;
}

int srch_run(const srch_query *q0, store_reader *rd, arena *a, uint32_t tenant,
             srch_result *out, srch_error *e)
{
    memset(out, 0, sizeof *out);
    xctx x = {.rd = rd, .a = a, .tenant = tenant, .q = q0, .e = e};
    const srch_query *q, *ql, *qe;
    int none;
    rnset ex;
    int erc = take_excepts(&x, q0, &qe, &ex);
    if (erc)
        return erc;
    erc = resolve_links(&x, qe, &ql, &none);
    if (erc)
        return erc;
    if (none) {
        out->has_total = 1;
        return 0;
    }
    if ((erc = expand_codes(&x, ql, &q)))
        return erc;
    x.q = q;
    rnset res = {0};
    int rc = 1;
    /* the fast plans page as they go: with resources to leave out, the whole set first */
    if (!ex.n && (rc = run_single(&x, q, out)) <= 0)
        return rc;
    if (!ex.n && (rc = run_sort_probe(&x, q, out)) <= 0)
        return rc;
    x.scanned = 0; /* the general plan has the whole budget */
    if (q->nc == 0) {
        rc = all_of_type(&x, &res);
    } else if ((rc = plan_scoped(&x, q, &res)) <= 0) {
        /* within one patient: done, or failed */
    } else {
        /* The cheap clauses first (their scans read only matches), smallest first; then
         * the others: checked on each candidate when few remain, else scanned too. */
        rnset *sets = arena_zalloc(a, sizeof *sets * q->nc);
        const srch_clause **rest = arena_alloc(a, sizeof *rest * q->nc);
        if (!sets || !rest)
            return ERR_NOMEM;
        size_t ncheap = 0, nrest = 0;
        rc = 0;
        /* references first: they are the selective ones as a rule (one patient, one
         * encounter); each later cheap clause may read at most 8 times the candidates
         * there are so far, else it is checked on them like the costly ones */
        const srch_clause **cheap = arena_alloc(a, sizeof *cheap * q->nc);
        if (!cheap)
            return ERR_NOMEM;
        size_t nq = 0;
        for (int pass = 0; pass < 2; pass++)
            for (size_t i = 0; i < q->nc; i++)
                if (clause_cheap(&q->c[i]) &&
                    (q->c[i].sp->type == FHIR_SP_REFERENCE) == (pass == 0))
                    cheap[nq++] = &q->c[i];
        for (size_t i = 0; i < q->nc; i++)
            if (!clause_cheap(&q->c[i]))
                rest[nrest++] = &q->c[i];
        /* where the store counts the clauses' values (SearchCount), smallest first, and a
         * clause over the cap goes to the candidates without a scan up to the cap */
        uint64_t *est = arena_alloc(a, sizeof *est * (nq ? nq : 1));
        if (!est)
            return ERR_NOMEM;
        for (size_t i = 0; i < nq; i++)
            est[i] = clause_estimate(&x, cheap[i]);
        /* an uncounted clause (a string prefix, a reference without its type) is put
         * where a clause of 65,536 matches would be: after the small counted ones,
         * before the large */
#define EST_KEY(e) ((e) == UINT64_MAX ? 65536u : (e))
        for (size_t i = 1; i < nq; i++) /* insertion sort: stable, a few clauses */
            for (size_t j = i; j > 0 && EST_KEY(est[j]) < EST_KEY(est[j - 1]); j--) {
                uint64_t te = est[j];
                const srch_clause *tc = cheap[j];
                est[j] = est[j - 1];
                cheap[j] = cheap[j - 1];
                est[j - 1] = te;
                cheap[j - 1] = tc;
            }
        for (size_t i = 0; i < nq && !rc; i++) {
            x.cap = ncheap ? (res.n * 8 > 1024 ? res.n * 8 : 1024) : 0;
            rc = x.cap && est[i] != UINT64_MAX && est[i] > x.cap
                     ? CAPPED
                     : clause_set(&x, cheap[i], &sets[ncheap]);
            x.cap = 0;
            if (rc == CAPPED) {
                rc = 0;
                rest[nrest++] = cheap[i];
                continue;
            }
            if (rc)
                break;
            if (!ncheap)
                res = sets[0];
            else
                intersect(&res, &sets[ncheap]);
            ncheap++;
        }
        if (!rc && nrest && ncheap && res.n <= SRCH_FILTER_MAX) {
            /* first the clauses a point lookup per candidate decides, then the others
             * on what is left, from each candidate's entries */
            size_t w = 0;
            for (size_t i = 0; i < nrest && !rc; i++) {
                if (clause_probes(rest[i]))
                    rc = probe(&x, &res, rest[i]);
                else
                    rest[w++] = rest[i];
            }
            nrest = w;
            if (!rc && nrest)
                rc = filter(&x, &res, rest, nrest);
        } else if (!rc && nrest) {
            for (size_t i = 0; i < nrest && !rc; i++) {
                rnset s2;
                rc = clause_set(&x, rest[i], &s2);
                if (rc)
                    break;
                if (!ncheap && i == 0)
                    res = s2;
                else
                    intersect(&res, &s2);
            }
        }
    }
    if (rc)
        return rc;
    subtract(&res, &ex);
    if (q->page_t) { /* later pages: the resources of the first page's snapshot */
        size_t w = 0;
        for (size_t i = 0; i < res.n; i++)
            if (rn_t_of(res.r[i]) <= q->page_t)
                memcpy(res.r[w++], res.r[i], IDX_RN_LEN);
        res.n = w;
        if (q->page_t < store_reader_t(rd)) { /* written since: as it was at page_t */
            if (!q->spc)
                return fail(e, ERR_INTERNAL, OO_EXCEPTION, "a later page without the index");
            if ((rc = repair_snapshot(&x, &res)))
                return rc;
            out->as_of = q->page_t;
        }
    }
    if (q->nsort == 1 && !q->summary_count && q->count && !x.nov) {
        /* the page through the index in the key's order: no lookup per match */
        rnset sorted;
        size_t want = (size_t)q->page_offset + q->count;
        if ((rc = sort_by_index(&x, &res, want < res.n ? want : res.n, &sorted)))
            return rc;
        out->total = res.n;
        out->has_total = 1;
        size_t from = q->page_offset < sorted.n ? (size_t)q->page_offset : sorted.n;
        size_t n = sorted.n - from < q->count ? sorted.n - from : q->count;
        out->rn = sorted.r + from;
        out->n = n;
        out->more = from + n < res.n;
        return 0;
    }
    if ((q->nsort > 1 || (q->nsort == 1 && x.nov)) && !q->summary_count && q->count &&
        (rc = sort_set(&x, &res)))
        return rc;
    out->total = res.n;
    out->has_total = 1;
    if (q->summary_count || q->count == 0)
        return 0;
    size_t from = q->page_offset < res.n ? (size_t)q->page_offset : res.n;
    size_t n = res.n - from < q->count ? res.n - from : q->count;
    out->rn = res.r + from;
    out->n = n;
    out->more = from + n < res.n;
    return 0;
}
