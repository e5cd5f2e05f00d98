/*
 * overlay.c -- immutable sorted runs of recent SearchParam records (overlay.h).
 *
 * A record, as a commit's builder wrote it into its chunk: t (u64) | seq (u32) |
 * klen (u16) | vlen (u16) | del (u8) | key | value, native byte order (it never leaves
 * the process). A run keeps pointers to its records sorted by (key, t, seq) and a
 * reference to every chunk they are in; merged or filtered runs share the chunks.
 */
#include "store/overlay.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/err.h"

#define REC_HDR 17
#define BIG_ALLOC (64u << 10) /* run buffers from here up are mapped, not malloc()ed */

/* The bytes of one commit's records. Runs point into chunks instead of holding copies,
 * so merging two runs merges their pointer arrays and never moves a record's bytes. */
typedef struct ovl_chunk {
    atomic_int ref;
    uint64_t min_t, max_t; /* the t of its records (one batch: never across a fold) */
    size_t len; /* bytes of data (allocated and used) */
    uint8_t *data;
} ovl_chunk;

struct ovl_run {
    atomic_int ref;
    size_t n;
    const uint8_t **rec; /* records in (key, t, seq) order */
    size_t rec_cap;      /* allocated bytes (big_free needs them) */
    ovl_chunk **chunks;  /* what rec points into */
    size_t nchunks;
    size_t data_len;     /* bytes of the records */
    uint64_t max_t, min_t;
};

struct ovl_view {
    atomic_int ref;
    uint64_t floor;
    size_t nruns;
    ovl_run *runs[OVL_MAX_RUNS];
    size_t bytes, records;
};

typedef struct rec_hdr {
    uint64_t t;
    uint32_t seq;
    uint16_t klen, vlen;
    uint8_t del;
} rec_hdr;

static void hdr_read(const uint8_t *p, rec_hdr *h)
{
    memcpy(&h->t, p, 8);
    memcpy(&h->seq, p + 8, 4);
    memcpy(&h->klen, p + 12, 2);
    memcpy(&h->vlen, p + 14, 2);
    h->del = p[16];
}

static void rec_at(const uint8_t *p, ovl_rec *r)
{
    rec_hdr h;
    hdr_read(p, &h);
    r->key = p + REC_HDR;
    r->klen = h.klen;
    r->val = r->key + h.klen;
    r->vlen = h.vlen;
    r->t = h.t;
    r->seq = h.seq;
    r->del = h.del;
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

/* (key, t, seq) order of two records */
static int rec_cmp(const uint8_t *pa, const uint8_t *pb)
{
    ovl_rec a, b;
    rec_at(pa, &a);
    rec_at(pb, &b);
    int c = key_cmp(a.key, a.klen, b.key, b.klen);
    if (c)
        return c;
    if (a.t != b.t)
        return a.t < b.t ? -1 : 1;
    return (a.seq > b.seq) - (a.seq < b.seq);
}

static int sort_cmp(const void *x, const void *y)
{
    return rec_cmp(*(const uint8_t *const *)x, *(const uint8_t *const *)y);
}

/* ---- builder ----------------------------------------------------------------------- */

int ovl_builder_add(ovl_builder *b, uint64_t t, int del, const void *key, size_t klen,
                    const void *val, size_t vlen)
{
    if (klen > OVL_KEY_MAX || vlen > OVL_VAL_MAX)
        return ERR_TOOBIG;
    size_t need = REC_HDR + klen + vlen;
    if (b->bytes.len + need > UINT32_MAX)
        return ERR_TOOBIG;
    if (b->n == b->ncap) {
        size_t nc = b->ncap ? b->ncap * 2 : 256;
        uint32_t *no = realloc(b->off, nc * sizeof *no);
        if (!no)
            return ERR_NOMEM;
        b->off = no;
        b->ncap = nc;
    }
    uint8_t h[REC_HDR];
    uint32_t seq = (uint32_t)b->n;
    uint16_t kl = (uint16_t)klen, vl = (uint16_t)vlen;
    memcpy(h, &t, 8);
    memcpy(h + 8, &seq, 4);
    memcpy(h + 12, &kl, 2);
    memcpy(h + 14, &vl, 2);
    h[16] = del ? 1 : 0;
    size_t at = b->bytes.len;
    buf_put(&b->bytes, h, sizeof h);
    buf_put(&b->bytes, key, klen);
    if (vlen)
        buf_put(&b->bytes, val, vlen);
    if (b->bytes.err) {
        b->bytes.len = at;
        int rc = b->bytes.err;
        b->bytes.err = 0;
        return rc;
    }
    b->off[b->n++] = (uint32_t)at;
    return 0;
}

void ovl_builder_truncate(ovl_builder *b, size_t n)
{
    if (n >= b->n)
        return;
    b->bytes.len = b->off[n];
    b->n = n;
}

void ovl_builder_reset(ovl_builder *b)
{
    buf_reset(&b->bytes);
    b->n = 0;
}

void ovl_builder_free(ovl_builder *b)
{
    buf_free(&b->bytes);
    free(b->off);
    *b = (ovl_builder){0};
}

/* ---- runs and views ------------------------------------------------------------------ */

/* Large buffers come straight from mmap: freed, they go back to the system at once.
 * From malloc, glibc's growing mmap threshold would keep them in the heap, and a
 * process that has folded a few overlays would hold hundreds of MiB it does not use. */
static void *big_alloc(size_t n)
{
    if (n < BIG_ALLOC)
        return malloc(n ? n : 1);
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void big_free(void *p, size_t n)
{
    if (!p)
        return;
    if (n < BIG_ALLOC)
        free(p);
    else
        munmap(p, n);
}

static void chunk_unref(ovl_chunk *c)
{
    if (c && atomic_fetch_sub(&c->ref, 1) == 1) {
        big_free(c->data, c->len);
        free(c);
    }
}

static void run_free(ovl_run *r)
{
    for (size_t i = 0; i < r->nchunks; i++)
        chunk_unref(r->chunks[i]);
    free(r->chunks);
    big_free((void *)r->rec, r->rec_cap);
    free(r);
}

static void run_unref(ovl_run *r)
{
    if (r && atomic_fetch_sub(&r->ref, 1) == 1)
        run_free(r);
}

static size_t run_bytes(const ovl_run *r)
{
    return r->data_len + r->n * sizeof *r->rec + r->nchunks * sizeof(ovl_chunk) + sizeof *r;
}

/* A run with room for n records and nchunks chunks (none taken yet). */
static ovl_run *run_alloc(size_t n, size_t nchunks)
{
    ovl_run *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->rec_cap = n * sizeof *r->rec;
    r->rec = big_alloc(r->rec_cap);
    r->chunks = malloc((nchunks ? nchunks : 1) * sizeof *r->chunks);
    if (!r->rec || !r->chunks) {
        r->nchunks = 0;
        run_free(r);
        return NULL;
    }
    atomic_init(&r->ref, 1);
    r->n = n;
    r->min_t = UINT64_MAX;
    return r;
}

static void run_take(ovl_run *r, ovl_chunk *c)
{
    atomic_fetch_add(&c->ref, 1);
    r->chunks[r->nchunks++] = c;
    r->data_len += c->len;
}

static void note_t(ovl_run *r, uint64_t t)
{
    if (t > r->max_t)
        r->max_t = t;
    if (t < r->min_t)
        r->min_t = t;
}

static ovl_run *run_from_builder(const ovl_builder *b)
{
    ovl_chunk *c = calloc(1, sizeof *c);
    ovl_run *r = c ? run_alloc(b->n, 1) : NULL;
    if (c) {
        c->len = b->bytes.len;
        c->data = big_alloc(c->len);
    }
    if (!r || !c->data) {
        if (c)
            big_free(c->data, c->len);
        free(c);
        if (r)
            run_free(r);
        return NULL;
    }
    atomic_init(&c->ref, 0);
    memcpy(c->data, b->bytes.data, c->len);
    for (size_t i = 0; i < r->n; i++) {
        rec_hdr h;
        r->rec[i] = c->data + b->off[i];
        hdr_read(r->rec[i], &h);
        note_t(r, h.t);
    }
    c->min_t = r->min_t;
    c->max_t = r->max_t;
    run_take(r, c);
    qsort((void *)r->rec, r->n, sizeof *r->rec, sort_cmp);
    return r;
}

/* One sorted run of a's and b's records (a older than b): their pointers merged, the
 * bytes shared. */
static ovl_run *run_merge(const ovl_run *a, const ovl_run *b)
{
    ovl_run *r = run_alloc(a->n + b->n, a->nchunks + b->nchunks);
    if (!r)
        return NULL;
    for (size_t i = 0; i < a->nchunks; i++)
        run_take(r, a->chunks[i]);
    for (size_t i = 0; i < b->nchunks; i++)
        run_take(r, b->chunks[i]);
    const uint8_t *const *pa = a->rec, *const *ea = a->rec + a->n;
    const uint8_t *const *pb = b->rec, *const *eb = b->rec + b->n;
    const uint8_t **out = r->rec;
    while (pa < ea && pb < eb)
        *out++ = rec_cmp(*pa, *pb) <= 0 ? *pa++ : *pb++;
    while (pa < ea)
        *out++ = *pa++;
    while (pb < eb)
        *out++ = *pb++;
    r->max_t = a->max_t > b->max_t ? a->max_t : b->max_t;
    r->min_t = a->min_t < b->min_t ? a->min_t : b->min_t;
    return r;
}

/* The records of r with lo < t <= hi, as a new run (NULL: no memory); it keeps the
 * chunks that hold any of them. */
static ovl_run *run_filter(const ovl_run *r, uint64_t lo, uint64_t hi)
{
    ovl_run *o = run_alloc(r->n, r->nchunks);
    if (!o)
        return NULL;
    for (size_t i = 0; i < r->nchunks; i++)
        if (r->chunks[i]->max_t > lo && r->chunks[i]->min_t <= hi)
            run_take(o, r->chunks[i]);
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        rec_hdr h;
        hdr_read(r->rec[i], &h);
        if (h.t <= lo || h.t > hi)
            continue;
        o->rec[n++] = r->rec[i];
        note_t(o, h.t);
    }
    o->n = n;
    return o;
}

static ovl_view *view_new(uint64_t floor)
{
    ovl_view *v = calloc(1, sizeof *v);
    if (v) {
        atomic_init(&v->ref, 1);
        v->floor = floor;
    }
    return v;
}

static void view_push(ovl_view *v, ovl_run *r)
{
    v->runs[v->nruns++] = r;
    v->bytes += run_bytes(r);
    v->records += r->n;
}

ovl_view *ovl_view_empty(uint64_t floor)
{
    return view_new(floor);
}

int ovl_view_add(const ovl_view *old, const ovl_builder *b, ovl_view **out)
{
    ovl_view *v = view_new(old->floor);
    ovl_run *nr = b->n ? run_from_builder(b) : NULL;
    if (!v || (b->n && !nr)) {
        free(v);
        run_unref(nr);
        return ERR_NOMEM;
    }
    for (size_t i = 0; i < old->nruns; i++) {
        atomic_fetch_add(&old->runs[i]->ref, 1);
        view_push(v, old->runs[i]);
    }
    if (!nr) {
        *out = v;
        return 0;
    }
    /* Merge the new run into its elders while they are no more than twice its size
     * (or while the view is full): sizes then fall geometrically from oldest to newest. */
    while (v->nruns > 0 &&
           (v->runs[v->nruns - 1]->n <= 2 * nr->n || v->nruns == OVL_MAX_RUNS)) {
        ovl_run *prev = v->runs[v->nruns - 1];
        ovl_run *m = run_merge(prev, nr);
        if (!m) {
            run_unref(nr);
            ovl_view_unref(v);
            return ERR_NOMEM;
        }
        v->nruns--;
        v->bytes -= run_bytes(prev);
        v->records -= prev->n;
        run_unref(prev);
        run_unref(nr);
        nr = m;
    }
    view_push(v, nr);
    *out = v;
    return 0;
}

int ovl_view_keep(const ovl_view *old, uint64_t lo, uint64_t hi, uint64_t floor, ovl_view **out)
{
    ovl_view *v = view_new(floor);
    if (!v)
        return ERR_NOMEM;
    for (size_t i = 0; i < old->nruns; i++) {
        ovl_run *r = old->runs[i];
        if (r->min_t > lo && r->max_t <= hi) {
            atomic_fetch_add(&r->ref, 1);
        } else if (r->max_t <= lo || r->min_t > hi) {
            continue; /* nothing of it is kept */
        } else if (!(r = run_filter(r, lo, hi))) {
            ovl_view_unref(v);
            return ERR_NOMEM;
        }
        if (r->n)
            view_push(v, r);
        else
            run_unref(r);
    }
    *out = v;
    return 0;
}

void ovl_view_ref(ovl_view *v)
{
    atomic_fetch_add(&v->ref, 1);
}

void ovl_view_unref(ovl_view *v)
{
    if (v && atomic_fetch_sub(&v->ref, 1) == 1) {
        for (size_t i = 0; i < v->nruns; i++)
            run_unref(v->runs[i]);
        free(v);
    }
}

uint64_t ovl_view_floor(const ovl_view *v)
{
    return v->floor;
}

size_t ovl_view_bytes(const ovl_view *v)
{
    return v->bytes;
}

size_t ovl_view_records(const ovl_view *v)
{
    return v->records;
}

size_t ovl_view_runs(const ovl_view *v)
{
    return v->nruns;
}

/* ---- reading ----------------------------------------------------------------------- */

/* First index of r whose key is >= key. */
static size_t lower_bound(const ovl_run *r, const uint8_t *key, size_t klen)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        ovl_rec m;
        rec_at(r->rec[mid], &m);
        if (key_cmp(m.key, m.klen, key, klen) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Is (t, seq) of a better than that of the current best (in the window)? */
static int better(const ovl_rec *a, const ovl_rec *best, int have)
{
    return !have || a->t > best->t || (a->t == best->t && a->seq > best->seq);
}

int ovl_get(const ovl_view *v, uint64_t lo, uint64_t hi, const void *key, size_t klen,
            ovl_rec *out)
{
    int have = 0;
    for (size_t i = 0; i < v->nruns; i++) {
        const ovl_run *r = v->runs[i];
        for (size_t j = lower_bound(r, key, klen); j < r->n; j++) {
            ovl_rec e;
            rec_at(r->rec[j], &e);
            if (key_cmp(e.key, e.klen, key, klen))
                break;
            if (e.t > lo && e.t <= hi && better(&e, out, have)) {
                *out = e;
                have = 1;
            }
        }
    }
    return have;
}

int64_t ovl_count_delta(const ovl_view *v, uint64_t lo, uint64_t hi, const void *prefix,
                        size_t plen, size_t klen, uint64_t skip_hi, const void *skip_key,
                        size_t skip_len)
{
    int64_t d = 0;
    for (size_t i = 0; i < v->nruns; i++) {
        const ovl_run *r = v->runs[i];
        if (r->max_t <= lo || r->min_t > hi)
            continue;
        for (size_t j = lower_bound(r, prefix, plen); j < r->n; j++) {
            ovl_rec e;
            rec_at(r->rec[j], &e);
            if (e.klen < plen || memcmp(e.key, prefix, plen))
                break;
            if (e.klen != klen || e.t <= lo || e.t > hi)
                continue;
            if (skip_key && e.t <= skip_hi && key_cmp(e.key, e.klen, skip_key, skip_len) <= 0)
                continue;
            d += e.del ? -1 : 1;
        }
    }
    return d;
}

static const ovl_rec *head(ovl_cursor *c, size_t i);

void ovl_cursor_init(ovl_cursor *c, const ovl_view *v, uint64_t lo, uint64_t hi,
                     const uint8_t *prefix, size_t prefix_len, const uint8_t *seek,
                     size_t seek_len, int reverse)
{
    c->v = v;
    c->lo = lo;
    c->hi = hi;
    c->reverse = reverse;
    c->prefix = prefix;
    c->prefix_len = prefix_len;
    if (!reverse && !seek_len) {
        seek = prefix;
        seek_len = prefix_len;
    }
    for (size_t i = 0; i < v->nruns; i++) {
        const ovl_run *r = v->runs[i];
        c->pos[i] = seek_len ? lower_bound(r, seek, seek_len) : (reverse ? r->n : 0);
        c->state[i] = 0;
    }
    c->nact = 0;
    for (size_t i = 0; i < v->nruns; i++)
        if (head(c, i))
            c->act[c->nact++] = (uint8_t)i;
}

/* Run i's head record (decoded once per step), or NULL when the run is done. */
static const ovl_rec *head(ovl_cursor *c, size_t i)
{
    if (c->state[i] == 1)
        return &c->head[i];
    if (c->state[i] == 2)
        return NULL;
    const ovl_run *r = c->v->runs[i];
    ovl_rec *e = &c->head[i];
    if (c->reverse ? c->pos[i] == 0 : c->pos[i] >= r->n) {
        c->state[i] = 2;
        return NULL;
    }
    rec_at(r->rec[c->reverse ? c->pos[i] - 1 : c->pos[i]], e);
    if (c->prefix_len && (e->klen < c->prefix_len || memcmp(e->key, c->prefix, c->prefix_len))) {
        c->state[i] = 2; /* past the prefix: nothing further qualifies */
        return NULL;
    }
    c->state[i] = 1;
    return e;
}

static void advance(ovl_cursor *c, size_t i)
{
    if (c->reverse)
        c->pos[i]--;
    else
        c->pos[i]++;
    c->state[i] = 0;
}

int ovl_cursor_next(ovl_cursor *c, ovl_rec *out)
{
    while (c->nact) {
        /* every head starts with the prefix: only what follows it is compared */
        size_t p = c->prefix_len;
        const ovl_rec *m = NULL;
        for (size_t j = 0; j < c->nact; j++) {
            const ovl_rec *e = head(c, c->act[j]);
            int cmp = m ? key_cmp(e->key + p, e->klen - p, m->key + p, m->klen - p) : 0;
            if (!m || (c->reverse ? cmp > 0 : cmp < 0))
                m = e;
        }
        const uint8_t *k = m->key + p;
        size_t kn = m->klen - p;
        int have = 0;
        for (size_t j = 0; j < c->nact;) {
            size_t i = c->act[j];
            const ovl_rec *e;
            while ((e = head(c, i)) && key_cmp(e->key + p, e->klen - p, k, kn) == 0) {
                if (e->t > c->lo && e->t <= c->hi && better(e, out, have)) {
                    *out = *e;
                    have = 1;
                }
                advance(c, i);
            }
            if (e)
                j++;
            else
                c->act[j] = c->act[--c->nact]; /* done: out of the list */
        }
        if (have)
            return 1;
    }
    return 0;
}
