/*
 * bulk.c -- the search index of a bulk load, built sorted and appended (docs/STORAGE.md
 * 4.6b, docs/IMPORT.md).
 *
 * Written commit by commit, the entries of a load land all over the SearchParam B-tree
 * (through the IndexLog and the overlay's folds): once the tree is much larger than the
 * overlay, every entry costs a page. A load therefore writes its resources and their
 * ResourceParam records (which list every entry) and leaves the SearchParam keys of the
 * resources it numbers out; at its end the keys are generated from those records,
 * sorted in runs, merged and appended to the B-tree in key order.
 *
 *   idx_bulk_begin   Aux tenant | 'i' | "bulk-from" -> t: every resource numbered after
 *                    t (rn) has its ResourceParam record but not yet its SearchParam keys
 *   idx_bulk_defer   drops those keys from a request's extras
 *   idx_bulk_finish  ResourceParam --scan--> keys of rn.t > from --sort--> runs
 *                    --merge--> sorted loads of IDX_BULK_CHUNK keys (store_req.sorted_load),
 *                    each with Aux tenant | 'i' | "bulk-key" -> its last key; the last
 *                    request deletes both Aux keys
 *
 * Interrupted, the build starts again from the records (which a load no longer changes)
 * and skips the keys up to "bulk-key": the commits already made. idx_ensure finishes a
 * build left pending before a server serves the directory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/num.h"
#include "index/index.h"

#define IDX_BULK_RUN_BYTES (128u << 20) /* key bytes sorted in memory per run */
#define IDX_BULK_CHUNK 131072           /* keys per sorted-load commit */
#define IDX_BULK_CHUNK_BYTES (16u << 20)
#define IDX_BULK_IO_BUF (1u << 20)      /* stdio buffer of each run file */
#define IDX_BULK_MEM_BYTES (2ull << 30) /* sorted runs kept in memory, not spilled to files */

static size_t aux_key(uint8_t *k, uint32_t tenant, const char *name)
{
    k[0] = (uint8_t)(tenant >> 24);
    k[1] = (uint8_t)(tenant >> 16);
    k[2] = (uint8_t)(tenant >> 8);
    k[3] = (uint8_t)tenant;
    k[4] = 'i';
    size_t n = strlen(name);
    memcpy(k + 5, name, n);
    return 5 + n;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The state of tenant's bulk load: 1 when one is pending (*from, and in skip the last
 * key its build committed, *skipn 0 before the build began), 0 when none is (*from:
 * the snapshot's t); or the store's error. */
static int pending(store *st, uint32_t tenant, uint64_t *from, uint8_t skip[STORE_EXTRA_KEY_MAX],
                   size_t *skipn)
{
    uint8_t fk[32], kk[32];
    size_t fkn = aux_key(fk, tenant, "bulk-from"), kkn = aux_key(kk, tenant, "bulk-key");
    store_reader *rd;
    int rc = store_read_begin(st, &rd);
    if (rc)
        return rc;
    const void *v;
    size_t vn;
    int have = store_get(rd, STORE_DB_AUX, fk, fkn, &v, &vn) == 0 && vn == 8;
    *from = have ? get_u64(v) : store_reader_t(rd);
    *skipn = 0;
    if (have && store_get(rd, STORE_DB_AUX, kk, kkn, &v, &vn) == 0 &&
        vn <= STORE_EXTRA_KEY_MAX) {
        memcpy(skip, v, vn);
        *skipn = vn;
    }
    store_read_end(rd);
    return have;
}

int idx_bulk_begin(store *st, uint32_t tenant, const char *tmpdir, FILE *log, uint64_t *from)
{
    uint8_t k[32], skip[STORE_EXTRA_KEY_MAX];
    size_t kn = aux_key(k, tenant, "bulk-from"), skipn;
    uint64_t t;
    int have = pending(st, tenant, &t, skip, &skipn);
    if (have < 0)
        return have;
    /* a build cut short skips the keys it wrote: they must stay the smallest, so it
     * ends before anything more is loaded */
    if (skipn) {
        int rc = idx_bulk_finish(st, tenant, tmpdir, log);
        if (rc)
            return rc;
        return idx_bulk_begin(st, tenant, tmpdir, log, from);
    }
    *from = t;
    if (have)
        return 0; /* a load interrupted: its keys are still to be written */
    uint8_t tv[8];
    idx_put_u64(tv, t);
    store_extra x = {.db = STORE_DB_AUX, .key = k, .key_len = kn, .val = tv, .val_len = 8};
    store_req req = {.tenant = tenant, .extras = &x, .nextra = 1};
    return store_write(st, &req, NULL);
}

int idx_bulk_pending(store_reader *rd, uint32_t tenant)
{
    uint8_t k[32];
    size_t kn = aux_key(k, tenant, "bulk-from");
    const void *v;
    size_t vn;
    return store_get(rd, STORE_DB_AUX, k, kn, &v, &vn) == 0;
}

size_t idx_bulk_defer(uint64_t from, store_extra *x, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const store_extra *e = &x[i];
        if (e->db == STORE_DB_SEARCH_PARAM && e->key_len >= IDX_RN_LEN &&
            (e->fill_t || get_u64((const uint8_t *)e->key + e->key_len - IDX_RN_LEN) > from))
            continue; /* a resource of the load: idx_bulk_finish writes its keys */
        x[o++] = *e;
    }
    return o;
}

/* ---- runs --------------------------------------------------------------------------- */

/* A key in the run buffer and a 16-byte window of it as two numbers (bytes 4..20 after
 * the tenant, which all keys share, until the sort moves the window deeper), so the
 * sort compares numbers, not key bytes (which are cache misses). */
typedef struct item {
    uint64_t pfx, pfx2;
    uint32_t off;
    uint16_t len;
} item;

#define WIN 16 /* bytes of a key an item's window holds */

/* Bytes p[0..WIN) (zeros from n on) as two big-endian numbers. */
static inline void window_of(const uint8_t *p, size_t n, uint64_t *w0, uint64_t *w1)
{
    uint8_t b[WIN] = {0};
    if (n >= WIN) {
        memcpy(b, p, WIN); /* the common case: two loads */
    } else {
        memcpy(b, p, n);
    }
    uint64_t a, c;
    memcpy(&a, b, 8);
    memcpy(&c, b + 8, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    a = __builtin_bswap64(a);
    c = __builtin_bswap64(c);
#endif
    *w0 = a;
    *w1 = c;
}

/* The window of key bytes [d, d + WIN), zeros past the key's end. */
static void window_at(item *x, const uint8_t *mem, size_t d)
{
    window_of(mem + x->off + d, x->len > d ? x->len - d : 0, &x->pfx, &x->pfx2);
}

/* Order of two items whose keys are equal before the window at depth d (lim: d + WIN):
 * the window, then the length the key has within it (a key that ends inside the window,
 * padded with zeros, is a prefix of a longer key with zeros there, so it comes first). */
static inline int item_cmp(const item *x, const item *y, size_t lim)
{
    if (x->pfx != y->pfx)
        return x->pfx < y->pfx ? -1 : 1;
    if (x->pfx2 != y->pfx2)
        return x->pfx2 < y->pfx2 ? -1 : 1;
    size_t xl = x->len < lim ? x->len : lim, yl = y->len < lim ? y->len : lim;
    return (xl > yl) - (xl < yl);
}

static inline void item_swap(item *a, item *b)
{
    item t = *a;
    *a = *b;
    *b = t;
}

/* Quicksort of items by item_cmp with the comparison inlined (qsort_r's calls through a
 * pointer were most of the sort): median of three, Hoare partition (many equal windows
 * split evenly), insertion sort below 16, the smaller side recursed. */
static void sort_window(item *a, size_t n, size_t lim)
{
    while (n > 16) {
        size_t m = n / 2;
        if (item_cmp(&a[m], &a[0], lim) < 0)
            item_swap(&a[m], &a[0]);
        if (item_cmp(&a[n - 1], &a[m], lim) < 0) {
            item_swap(&a[n - 1], &a[m]);
            if (item_cmp(&a[m], &a[0], lim) < 0)
                item_swap(&a[m], &a[0]);
        }
        item p = a[m];
        size_t i = 0, j = n - 1;
        for (;;) {
            while (item_cmp(&a[i], &p, lim) < 0)
                i++;
            while (item_cmp(&p, &a[j], lim) < 0)
                j--;
            if (i >= j)
                break;
            item_swap(&a[i++], &a[j--]);
        }
        size_t left = j + 1; /* a[0..j] <= p <= a[j+1..n) */
        if (left < n - left) {
            sort_window(a, left, lim);
            a += left;
            n -= left;
        } else {
            sort_window(a + left, n - left, lim);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        item x = a[i];
        size_t j = i;
        for (; j > 0 && item_cmp(&x, &a[j - 1], lim) < 0; j--)
            a[j] = a[j - 1];
        a[j] = x;
    }
}

static void sort_items(item *it, size_t n, const uint8_t *mem, size_t d)
{
    if (n < 2)
        return;
    sort_window(it, n, d + WIN);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && !item_cmp(&it[i], &it[j], d + WIN))
            j++;
        if (j - i > 1 && it[i].len > d + WIN) { /* equal so far, and longer: go deeper */
            for (size_t k = i; k < j; k++)
                window_at(&it[k], mem, d + WIN);
            sort_items(it + i, j - i, mem, d + WIN);
        }
        i = j;
    }
}

typedef struct run {
    FILE *f; /* NULL: the run in memory */
    const item *it;
    size_t i, n;
    const uint8_t *mem;
    const uint8_t *key; /* the current key */
    size_t len;
    uint64_t w0, w1; /* its bytes 4..20 as numbers (zeros past its end): most comparisons */
    uint8_t kb[STORE_EXTRA_KEY_MAX];
    char *iobuf;
} run;

static void run_window(run *r)
{
    window_of(r->key + 4, r->len - 4, &r->w0, &r->w1);
}

/* The run's next key into r->key: 1, 0 at its end, ERR_IO. */
static int run_next(run *r)
{
    if (!r->f) {
        if (r->i == r->n)
            return 0;
        r->key = r->mem + r->it[r->i].off;
        r->len = r->it[r->i++].len;
        if (r->i + 8 < r->n) /* the keys are scattered in the buffer: fetch ahead */
            __builtin_prefetch(r->mem + r->it[r->i + 8].off);
        run_window(r);
        return 1;
    }
    uint8_t lb[2];
    size_t got = fread(lb, 1, 2, r->f);
    if (got == 0 && feof(r->f))
        return 0;
    size_t n = got == 2 ? (size_t)lb[0] << 8 | lb[1] : 0;
    if (got != 2 || n < 4 + 4 + 1 + IDX_RN_LEN || n > STORE_EXTRA_KEY_MAX || fread(r->kb, 1, n, r->f) != n)
        return ERR_IO;
    r->key = r->kb;
    r->len = n;
    run_window(r);
    return 1;
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

/* Keys collected in memory: their bytes and the items that sort them. */
typedef struct kbuf {
    uint8_t *mem;
    size_t used;
    item *it;
    size_t nit, cap;
} kbuf;

/* Half of a buffer being sorted and written out as a run, in a thread of its own (two
 * per buffer, one per core of the bench machine), while the next buffer is filled. */
typedef struct spill_job {
    kbuf *kb;
    size_t lo, hi; /* its items */
    const char *tmpdir; /* NULL: sort only (the last buffer, merged from memory) */
    run out;
    int rc;
} spill_job;

#define IDX_BULK_SORTERS 2

typedef struct builder {
    store *st;
    uint32_t tenant;
    uint64_t from;
    const char *tmpdir;
    kbuf kb[2];
    int cur; /* the buffer being filled */
    pthread_t spiller[IDX_BULK_SORTERS];
    int started[IDX_BULK_SORTERS];
    spill_job sj[IDX_BULK_SORTERS];
    kbuf *spilled; /* the buffer the spill threads have */
    run *runs;
    size_t nruns;
    uint64_t keys;
    size_t run_bytes;  /* IDX_BULK_RUN_BYTES, or HORTUS_IMPORT_SORT_RUN (tests) */
    uint64_t mem_bytes; /* IDX_BULK_MEM_BYTES, or HORTUS_IMPORT_SORT_MEM (tests) */
    kbuf *kept;        /* buffers whose runs are read from memory (while the budget lasts) */
    size_t nkept;
    uint64_t kept_bytes;
} builder;

/* Sort the job's items and write them to a run file (unlinked: it lives while open). */
static void *spill_main(void *arg)
{
    spill_job *j = arg;
    kbuf *k = j->kb;
    sort_items(k->it + j->lo, j->hi - j->lo, k->mem, 4);
    if (!j->tmpdir) {
        j->out = (run){.it = k->it + j->lo, .n = j->hi - j->lo, .mem = k->mem};
        return NULL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/hortus-bulk-XXXXXX", j->tmpdir);
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "hortus: cannot create a sort file in %s: %s\n", j->tmpdir,
                strerror(errno));
        j->rc = ERR_IO;
        return NULL;
    }
    unlink(path);
    FILE *f = fdopen(fd, "w+");
    char *io = f ? malloc(IDX_BULK_IO_BUF) : NULL;
    if (!io) {
        if (f)
            fclose(f);
        else
            close(fd);
        j->rc = ERR_NOMEM;
        return NULL;
    }
    setvbuf(f, io, _IOFBF, IDX_BULK_IO_BUF);
    int rc = 0;
    for (size_t i = j->lo; i < j->hi && !rc; i++) {
        uint8_t lb[2] = {(uint8_t)(k->it[i].len >> 8), (uint8_t)k->it[i].len};
        if (fwrite(lb, 1, 2, f) != 2 ||
            fwrite(k->mem + k->it[i].off, 1, k->it[i].len, f) != k->it[i].len)
            rc = ERR_IO;
    }
    if (!rc && (fflush(f) || fseek(f, 0, SEEK_SET)))
        rc = ERR_IO;
    if (rc) {
        fprintf(stderr, "hortus: cannot write a sort file in %s: %s\n", j->tmpdir,
                strerror(errno));
        fclose(f);
        free(io);
        j->rc = rc;
        return NULL;
    }
    j->out = (run){.f = f, .iobuf = io};
    return NULL;
}

/* Wait for the sort threads and keep their runs; the buffer they had is free again
 * (unless its runs are read from memory: tmpdir NULL). */
static int spill_join(builder *b)
{
    int rc = 0;
    for (int i = 0; i < IDX_BULK_SORTERS; i++) {
        if (!b->started[i])
            continue;
        if (b->started[i] == 1)
            pthread_join(b->spiller[i], NULL);
        b->started[i] = 0;
        spill_job *j = &b->sj[i];
        if (!rc)
            rc = j->rc;
        run *nr = j->rc ? NULL : realloc(b->runs, sizeof *b->runs * (b->nruns + 1));
        if (nr) {
            b->runs = nr;
            b->runs[b->nruns++] = j->out;
        } else if (!j->rc) {
            if (j->out.f)
                fclose(j->out.f);
            free(j->out.iobuf);
            rc = ERR_NOMEM;
        }
    }
    if (b->spilled && b->sj[0].tmpdir) {
        b->spilled->used = 0;
        b->spilled->nit = 0;
    }
    b->spilled = NULL;
    return rc;
}

/* Sort the buffer in halves, each in a thread (to files in tmpdir, or kept in memory
 * when tmpdir is NULL). */
static void sort_start(builder *b, kbuf *k, const char *tmpdir)
{
    b->spilled = k;
    for (int i = 0; i < IDX_BULK_SORTERS; i++) {
        size_t lo = k->nit * (size_t)i / IDX_BULK_SORTERS;
        size_t hi = k->nit * (size_t)(i + 1) / IDX_BULK_SORTERS;
        b->sj[i] = (spill_job){.kb = k, .lo = lo, .hi = hi, .tmpdir = tmpdir};
        if (pthread_create(&b->spiller[i], NULL, spill_main, &b->sj[i]) == 0) {
            b->started[i] = 1;
        } else {
            spill_main(&b->sj[i]); /* no thread: here */
            b->started[i] = 2;
        }
    }
}

/* Hand the full buffer to the sort threads and go on with the other one. While
 * IDX_BULK_MEM_BYTES lasts a buffer's runs stay in memory (writing them to a file and
 * reading them back is a tenth of a load's CPU): the buffer is kept for the merge, and
 * its slot gets fresh memory. */
static int spill(builder *b)
{
    int rc = spill_join(b); /* the other buffer must be free */
    if (rc)
        return rc;
    kbuf *full = &b->kb[b->cur];
    uint64_t cost = b->run_bytes + (uint64_t)full->cap * sizeof(item);
    if (b->kept_bytes + cost <= b->mem_bytes) {
        kbuf *nk = realloc(b->kept, sizeof *nk * (b->nkept + 1));
        if (!nk)
            return ERR_NOMEM;
        b->kept = nk;
        b->kept[b->nkept++] = *full; /* owns mem and it; the runs point into them */
        b->kept_bytes += cost;
        *full = (kbuf){0};
        /* b->kept moves only in a later spill, after spill_join */
        sort_start(b, &b->kept[b->nkept - 1], NULL);
    } else {
        sort_start(b, full, b->tmpdir);
    }
    b->cur ^= 1;
    kbuf *k = &b->kb[b->cur];
    if (!k->mem && !(k->mem = malloc(b->run_bytes)))
        return ERR_NOMEM;
    return 0;
}

static int add_key(builder *b, const uint8_t *key, size_t n)
{
    kbuf *k = &b->kb[b->cur];
    if (k->used + n > b->run_bytes) {
        int rc = spill(b);
        if (rc)
            return rc;
        k = &b->kb[b->cur];
    }
    if (k->nit == k->cap) {
        size_t nc = k->cap ? k->cap * 2 : 1u << 16;
        item *ni = realloc(k->it, sizeof *ni * nc);
        if (!ni)
            return ERR_NOMEM;
        k->it = ni;
        k->cap = nc;
    }
    memcpy(k->mem + k->used, key, n);
    item *x = &k->it[k->nit++]; /* the window: bytes 4..20 */
    *x = (item){.off = (uint32_t)k->used, .len = (uint16_t)n};
    window_of(key + 4, n - 4, &x->pfx, &x->pfx2);
    k->used += n;
    b->keys++;
    return 0;
}

/* Every key of the records of resources numbered after b->from, into runs. */
static int collect(builder *b)
{
    store_reader *rd;
    int rc = store_read_begin(b->st, &rd);
    if (rc)
        return rc;
    uint8_t pfx[4] = {(uint8_t)(b->tenant >> 24), (uint8_t)(b->tenant >> 16),
                      (uint8_t)(b->tenant >> 8), (uint8_t)b->tenant};
    store_iter *it;
    if ((rc = store_scan(rd, STORE_DB_RESOURCE_PARAM, NULL, 0, pfx, 4, &it))) {
        store_read_end(rd);
        return rc;
    }
    arena *a = arena_new(1 << 20);
    if (!a) {
        store_iter_close(it);
        store_read_end(rd);
        return ERR_NOMEM;
    }
    const void *k, *v;
    size_t kn, vn, nrec = 0;
    while (!rc && (rc = store_scan_next(it, &k, &kn, &v, &vn)) == 0) {
        uint8_t rn[IDX_RN_LEN];
        idx_set s;
        if (vn < IDX_RN_LEN || get_u64(v) <= b->from)
            continue;
        if ((rc = idx_rp_decode(a, v, vn, rn, &s)))
            break;
        for (size_t i = 0; i < s.n && !rc; i++) {
            uint8_t key[STORE_EXTRA_KEY_MAX];
            if (4 + 4 + 1 + (size_t)s.e[i].len + IDX_RN_LEN > sizeof key) {
                rc = ERR_INVALID;
                break;
            }
            size_t n = idx_sp_key(key, b->tenant, &s.e[i], rn);
            rc = add_key(b, key, n);
        }
        if (++nrec % 4096 == 0)
            arena_reset(a);
    }
    if (rc == ERR_NOTFOUND)
        rc = 0;
    arena_free(a);
    store_iter_close(it);
    store_read_end(rd);
    return rc == ERR_INVALID ? ERR_IO : rc;
}

/* ---- the merge and the loads -------------------------------------------------------- */

typedef struct chunk {
    store_extra *x;
    size_t n;
    uint8_t *bytes;
    size_t used;
    uint8_t pk[32], pv[STORE_EXTRA_KEY_MAX]; /* the progress key and value */
    store_req req;
    int busy, rc;
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
} chunk;

static void chunk_done(void *ctx, int rc, uint64_t t)
{
    (void)t;
    chunk *c = ctx;
    pthread_mutex_lock(c->mu);
    c->busy = 0;
    c->rc = rc;
    pthread_cond_broadcast(c->cv);
    pthread_mutex_unlock(c->mu);
}

static int chunk_wait(chunk *c)
{
    pthread_mutex_lock(c->mu);
    while (c->busy)
        pthread_cond_wait(c->cv, c->mu);
    int rc = c->rc;
    c->rc = 0;
    pthread_mutex_unlock(c->mu);
    return rc;
}

static int chunk_submit(builder *b, chunk *c)
{
    const store_extra *last = &c->x[c->n - 1];
    memcpy(c->pv, last->key, last->key_len);
    size_t pn = aux_key(c->pk, b->tenant, "bulk-key");
    c->x[c->n] = (store_extra){.db = STORE_DB_AUX, .key = c->pk, .key_len = pn, .val = c->pv,
                               .val_len = last->key_len};
    c->req = (store_req){.tenant = b->tenant, .extras = c->x, .nextra = c->n + 1,
                         .sorted_load = 1};
    c->busy = 1;
    int rc = store_submit(b->st, &c->req, chunk_done, c);
    if (rc)
        c->busy = 0;
    return rc;
}

/* The heap of runs by their current key (smallest first). */
static int run_less(const run *x, const run *y)
{
    if (x->w0 != y->w0)
        return x->w0 < y->w0;
    if (x->w1 != y->w1)
        return x->w1 < y->w1;
    return key_cmp(x->key, x->len, y->key, y->len) < 0;
}

static void heap_down(run **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && run_less(h[l], h[m]))
            m = l;
        if (l + 1 < n && run_less(h[l + 1], h[m]))
            m = l + 1;
        if (m == i)
            return;
        run *t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* A setting of the environment for the tests (many small commits so a kill lands inside
 * the build; small runs, spilled or not): *v, or 0 with a message when it is bad. */
static int knob(FILE *log, const char *name, uint64_t lo, uint64_t hi, uint64_t *v)
{
    if (num_env_u64(name, lo, hi, v) >= 0)
        return 1;
    if (log)
        fprintf(log, "hortus: bad %s '%s' (%llu .. %llu)\n", name, getenv(name),
                (unsigned long long)lo, (unsigned long long)hi);
    return 0;
}

static int merge_load(builder *b, size_t per, const uint8_t *skip, size_t skipn,
                      uint64_t *written)
{
    size_t nr = b->nruns;
    run **h = malloc(sizeof *h * (nr ? nr : 1));
    if (!h)
        return ERR_NOMEM;
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < nr && !rc; i++) {
        int got = run_next(&b->runs[i]);
        if (got < 0)
            rc = got;
        else if (got)
            h[n++] = &b->runs[i];
    }
    for (size_t i = n / 2; i-- > 0;)
        heap_down(h, n, i);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    chunk ch[2];
    memset(ch, 0, sizeof ch);
    for (int i = 0; i < 2 && !rc; i++) {
        ch[i].mu = &mu;
        ch[i].cv = &cv;
        ch[i].x = malloc(sizeof *ch[i].x * (IDX_BULK_CHUNK + 1));
        ch[i].bytes = malloc(IDX_BULK_CHUNK_BYTES + STORE_EXTRA_KEY_MAX);
        if (!ch[i].x || !ch[i].bytes)
            rc = ERR_NOMEM;
    }
    int cur = 0;
    uint8_t prev[STORE_EXTRA_KEY_MAX];
    size_t prevn = 0;
    while (!rc && n) {
        run *r = h[0];
        chunk *c = &ch[cur];
        /* a key twice (cannot happen: keys end with their resource's number) or one a
         * previous run of this build loaded already is left out */
        if ((!prevn || key_cmp(r->key, r->len, prev, prevn) > 0) &&
            (!skipn || key_cmp(r->key, r->len, skip, skipn) > 0)) {
            memcpy(c->bytes + c->used, r->key, r->len);
            c->x[c->n++] = (store_extra){.db = STORE_DB_SEARCH_PARAM,
                                         .key = c->bytes + c->used, .key_len = r->len};
            c->used += r->len;
            memcpy(prev, r->key, r->len);
            prevn = r->len;
            (*written)++;
        }
        int got = run_next(r);
        if (got < 0) {
            rc = got;
            break;
        }
        if (!got)
            h[0] = h[--n];
        heap_down(h, n, 0);
        if (c->n == per || c->used >= IDX_BULK_CHUNK_BYTES || (!n && c->n)) {
            if ((rc = chunk_submit(b, c)))
                break;
            cur ^= 1;
            if ((rc = chunk_wait(&ch[cur])))
                break;
            ch[cur].n = ch[cur].used = 0;
        }
    }
    for (int i = 0; i < 2; i++) {
        int wrc = chunk_wait(&ch[i]);
        if (!rc)
            rc = wrc;
        free(ch[i].x);
        free(ch[i].bytes);
    }
    free(h);
    return rc;
}

int idx_bulk_finish(store *st, uint32_t tenant, const char *tmpdir, FILE *log)
{
    uint8_t fk[32], kk[32];
    size_t fkn = aux_key(fk, tenant, "bulk-from"), kkn = aux_key(kk, tenant, "bulk-key");
    uint8_t skip[STORE_EXTRA_KEY_MAX];
    size_t skipn;
    uint64_t from;
    int rc = pending(st, tenant, &from, skip, &skipn);
    if (rc <= 0)
        return rc;
    uint64_t per = IDX_BULK_CHUNK, runb = IDX_BULK_RUN_BYTES, memb = IDX_BULK_MEM_BYTES;
    if (!knob(log, "HORTUS_IMPORT_INDEX_CHUNK", 1, IDX_BULK_CHUNK, &per) ||
        !knob(log, "HORTUS_IMPORT_SORT_RUN", 4096, IDX_BULK_RUN_BYTES, &runb) ||
        !knob(log, "HORTUS_IMPORT_SORT_MEM", 0, 1ull << 40, &memb))
        return ERR_INVALID;
    double t0 = mono_s();
    builder b = {.st = st, .tenant = tenant, .from = from, .run_bytes = (size_t)runb,
                 .mem_bytes = memb,
                 .tmpdir = tmpdir && *tmpdir ? tmpdir : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp")};
    if (!(b.kb[0].mem = malloc(b.run_bytes)))
        return ERR_NOMEM;
    if (log && skipn)
        fprintf(log, "hortus: continuing the search index of the load (it was interrupted)\n");
    rc = collect(&b);
    int jrc = spill_join(&b);
    if (!rc)
        rc = jrc;
    uint64_t written = 0;
    kbuf *last = &b.kb[b.cur];
    if (!rc && last->nit) { /* the last buffer is merged from memory */
        sort_start(&b, last, NULL);
        rc = spill_join(&b);
    }
    double t2 = mono_s();
    if (!rc && log && b.keys)
        fprintf(log, "hortus: writing the search index of the load: %llu keys\n",
                (unsigned long long)b.keys);
    if (!rc)
        rc = merge_load(&b, (size_t)per, skip, skipn, &written);
    if (!rc) {
        store_extra x[2] = {{.db = STORE_DB_AUX, .del = 1, .key = fk, .key_len = fkn},
                            {.db = STORE_DB_AUX, .del = 1, .key = kk, .key_len = kkn}};
        store_req req = {.tenant = tenant, .extras = x, .nextra = 2};
        rc = store_write(st, &req, NULL);
    }
    if (!rc && log && b.keys)
        fprintf(log,
                "hortus: search index of the load: %llu keys in %zu sorted runs (%.1f s), "
                "written in %.1f s\n",
                (unsigned long long)b.keys, b.nruns, t2 - t0, mono_s() - t2);
    for (size_t i = 0; i < b.nruns; i++)
        if (b.runs[i].f) {
            fclose(b.runs[i].f);
            free(b.runs[i].iobuf);
        }
    free(b.runs);
    for (int i = 0; i < 2; i++) {
        free(b.kb[i].it);
        free(b.kb[i].mem);
    }
    for (size_t i = 0; i < b.nkept; i++) {
        free(b.kept[i].it);
        free(b.kept[i].mem);
    }
    free(b.kept);
    return rc;
}
