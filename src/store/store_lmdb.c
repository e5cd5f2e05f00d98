/*
 * store_lmdb.c -- the LMDB backend of store.h: one environment, named databases laid out
 * as in docs/STORAGE.md, one writer thread doing group commit, pooled read snapshots.
 *
 * Threads and what they touch:
 *
 *   submitters --(qmu: queue)--> writer thread --(commit, fsync)--> done callbacks
 *   readers: gate (atomic counter) -> cached MDB_txn (reset/renew) -> zero-copy results
 *
 * Read handles are cached: the last one a thread ended stays in that thread's slot (no
 * lock to reuse it), the others in a mutex-protected free list; every handle ever made
 * is on `all` so store_close() can free them whichever thread parked them.
 *
 * Group commit: the writer takes every queued request (up to max_batch), opens one write
 * transaction, runs each request in a nested transaction so a failing one (conflict) is
 * undone alone, commits once (LMDB syncs data, then the meta page) and calls back.
 *
 * Why the writer sometimes waits before a batch: with N clients each keeping one write
 * in flight, the clients answered by commit k come back while commit k+1 runs, so
 * without care the clients split into two groups that alternate, each commit carries
 * about N/2 requests and every client waits for two commits. When fewer requests are
 * queued than the previous batch held, the writer waits (at most group_wait_us) for the
 * rest to come back, which merges the groups. With one client the previous batch held 1
 * and it never waits.
 *
 * Map growth: on MDB_MAP_FULL the whole batch is aborted, the writer closes the gate
 * (`resizing`), waits until no read transaction is active (LMDB requires that for
 * mdb_env_set_mapsize), doubles the map, opens the gate and redoes the batch. Reset
 * transactions parked in the reader pool are not active and survive the remap.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "store/codec.h"
#include "store/overlay.h"
#include "store/store.h"

#define LMDB_MAX_READERS 1024 /* pooled read transactions, each holds one reader slot */
#define LMDB_MAX_DBS 16
#define LMDB_FORMAT 4 /* 3: SearchParam writes go through IndexLog and the overlay;
                         4: SearchCount, the counts of SearchParam key prefixes */
#define LMDB_DEFAULT_BATCH 1024
#define LMDB_SYNCS_PER_COMMIT 2 /* data pages, then the meta page */

typedef struct lmdb_store lmdb_store;

typedef struct lmdb_reader {
    struct store_reader base;
    lmdb_store *s;
    MDB_txn *txn;
    MDB_cursor *cur; /* ResourceAsOf cursor for read / vread, renewed with the txn */
    /* store_get's cursor per extra database, opened at first use and renewed at the
     * first use of each snapshot (bit db of `live`): a lookup near the previous one
     * (sorted candidates probed under one prefix) is found on the leaf the cursor is
     * on, without a descent from the root */
    MDB_cursor *gcur[STORE_DB_COUNT_];
    unsigned live;
    _Static_assert(STORE_DB_COUNT_ <= 32, "live has a bit per database");
    uint64_t t;      /* snapshot t, loaded on first store_reader_t() */
    int have_t;
    ovl_view *view;  /* the overlay as of this snapshot (taken with the txn) */
    uint64_t fold_t; /* SearchParam holds every entry of t <= fold_t in this snapshot */
    int have_fold;
    struct lmdb_reader *next;     /* free-list link */
    struct lmdb_reader *all_next; /* every handle of the store, for close */
} lmdb_reader;

struct lmdb_store {
    struct store base;
    MDB_env *env;
    int lock_fd; /* DIR/hortus.lock, flock()ed: one writing process per directory */
    MDB_dbi db_res, db_type, db_sys, db_content, db_txlog, db_txtime, db_counts, db_meta;
    MDB_dbi db_extra[STORE_DB_COUNT_];
    MDB_dbi db_idxlog; /* t -> that request's SearchParam puts and deletes */
    MDB_dbi db_keycount; /* SearchParam key prefix -> u64 number of keys (docs/STORAGE.md 4.7) */
    unsigned max_batch;
    /* the counting policy (Meta count_policy; fixed at open): keys whose byte at count_at
     * is in count_kinds are counted by their bytes without the last count_suffix */
    int counting;
    uint8_t count_at, count_suffix;
    char count_kinds[32];

    /* the SearchParam overlay (overlay.h): published by the writer under vlock (write),
     * taken by readers together with their txn under vlock (read) */
    pthread_rwlock_t vlock;
    ovl_view *view;
    size_t fold_bytes;  /* fold the overlay into SearchParam once it holds this much */
    ovl_builder w_ovl;  /* writer only: this commit's records */
    size_t fold_chunk;  /* records per fold transaction */
    int idle_fold_ms;   /* fold whatever the overlay holds after this long without writes (< 0: never) */
    ovl_view *fold_view; /* writer only: the overlay being folded (NULL: no fold) */
    ovl_cursor fold_cur; /* ... where the fold has got to */
    uint64_t fold_target, fold_t0;
    buf w_log;          /* writer only: this request's IndexLog record */

    /* the write queue */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    store_req *qhead, *qtail;
    uint64_t qlen;
    int closing;
    int group_wait_us;
    unsigned fault_commit_delay_ms; /* store_opts: a slow disk, for tests */
    uint64_t w_prev_batch;     /* writer only: requests in the previous batch */
    uint64_t w_last_commit_ns; /* writer only: duration of the previous commit_batch */
    pthread_t writer;

    /* writer-only state */
    uint64_t w_last_t;
    int64_t w_last_instant;

    /* resize gate */
    atomic_int active;
    atomic_int resizing;
    pthread_mutex_t gmu;
    pthread_cond_t gcv_readers; /* readers wait here for the resize to finish */
    pthread_cond_t gcv_writer;  /* the writer waits here for readers to leave */

    /* reader cache */
    uint64_t gen; /* never reused: tells this store's thread-cached handles from others' */
    pthread_mutex_t pmu;
    lmdb_reader *pool, *all;
    struct lmdb_store *live_next; /* list of open stores (live_mu) */

    /* counters */
    atomic_uint_fast64_t last_t, commits, requests, failed, conflicts, max_batch_seen, resizes,
        map_size, apply_ns, sync_ns, used_bytes, handles, commit_max_ns, folds, fold_ns,
        overlay_bytes, overlay_records, fold_running;
    atomic_uint_fast64_t commit_hist[STORE_COMMIT_BUCKETS + 1];
};

typedef enum iter_kind { IT_HISTORY = 1, IT_LIST, IT_SCAN } iter_kind;

typedef struct lmdb_iter {
    struct store_iter base;
    lmdb_reader *r;
    iter_kind kind;
    store_scope scope;
    MDB_cursor *cur;
    MDB_cursor *cur2; /* ResourceAsOf, for the "current at" check of _at */
    codec_layout layout;
    uint32_t tenant;
    uint64_t t_max, t_min;
    int64_t since;
    int current_only;
    int started, finished, skip_equal;
    int reverse; /* IT_SCAN: descending (store_scan_rev) */
    int merge;   /* IT_SCAN of SearchParam with overlay records in range */
    int ovl_have, db_have, db_done; /* the look-ahead of each side of the merge */
    ovl_rec ovl_head;
    MDB_val db_key, db_val;
    ovl_cursor oc;
    size_t prefix_len, seek_len;
    uint8_t prefix[STORE_EXTRA_KEY_MAX];
    uint8_t seek[STORE_EXTRA_KEY_MAX];
} lmdb_iter;

extern const struct store_ops store_lmdb_ops;

static atomic_uint_fast64_t lmdb_generation;

/* One parked read handle per thread: (store generation, handle). */
static __thread struct {
    uint64_t gen;
    lmdb_reader *r;
    int registered; /* the exit hook below is armed for this thread */
} tls_reader;

/*
 * When a thread that parked a handle exits, the handle goes back to its store's free
 * list, so threads that come and go (importers, per-task workers) do not use up LMDB's
 * reader slots. The store is found by generation in the list of open stores; closing a
 * store leaves that list (under live_mu) before freeing its handles.
 */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static lmdb_store *live_stores;
static pthread_key_t tls_exit_key;
static pthread_once_t tls_exit_once = PTHREAD_ONCE_INIT;

static void tls_exit(void *unused)
{
    (void)unused;
    lmdb_reader *r = tls_reader.r;
    if (!r)
        return;
    tls_reader.r = NULL;
    pthread_mutex_lock(&live_mu);
    for (lmdb_store *s = live_stores; s; s = s->live_next) {
        if (s->gen == tls_reader.gen) {
            pthread_mutex_lock(&s->pmu);
            r->next = s->pool;
            s->pool = r;
            pthread_mutex_unlock(&s->pmu);
            break;
        }
    }
    pthread_mutex_unlock(&live_mu);
}

static void tls_exit_init(void)
{
    pthread_key_create(&tls_exit_key, tls_exit);
}

/* ---- small helpers ---------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* MDB_* codes (positive, or errno values) to the error enum; ours (negative) pass. */
static int map_rc(int rc)
{
    /* LMDB's own codes are negative too (MDB_KEYEXIST .. MDB_LAST_ERRCODE): they must
     * not pass for ours */
    if (rc == MDB_NOTFOUND)
        return ERR_NOTFOUND;
    if (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE)
        return ERR_IO;
    if (rc <= 0)
        return rc;
    if (rc == ENOMEM)
        return ERR_NOMEM;
    return ERR_IO;
}

static int has_prefix(const MDB_val *k, const uint8_t *p, size_t n)
{
    return k->mv_size >= n && memcmp(k->mv_data, p, n) == 0;
}

/* ---- resize gate --------------------------------------------------------------- */

static void gate_leave(lmdb_store *s)
{
    if (atomic_fetch_sub(&s->active, 1) == 1 && atomic_load(&s->resizing)) {
        pthread_mutex_lock(&s->gmu);
        pthread_cond_signal(&s->gcv_writer);
        pthread_mutex_unlock(&s->gmu);
    }
}

static void gate_enter(lmdb_store *s)
{
    for (;;) {
        atomic_fetch_add(&s->active, 1);
        if (!atomic_load(&s->resizing))
            return;
        gate_leave(s);
        pthread_mutex_lock(&s->gmu);
        while (atomic_load(&s->resizing))
            pthread_cond_wait(&s->gcv_readers, &s->gmu);
        pthread_mutex_unlock(&s->gmu);
    }
}

/* Writer only, with no write transaction open: double the map. */
static int grow_map(lmdb_store *s)
{
    atomic_store(&s->resizing, 1);
    pthread_mutex_lock(&s->gmu);
    while (atomic_load(&s->active) > 0)
        pthread_cond_wait(&s->gcv_writer, &s->gmu);
    MDB_envinfo info;
    int rc = mdb_env_info(s->env, &info);
    if (rc == 0) {
        size_t size = info.me_mapsize * 2;
        rc = mdb_env_set_mapsize(s->env, size);
        if (rc == 0 && mdb_env_info(s->env, &info) == 0) {
            atomic_store(&s->map_size, info.me_mapsize);
            atomic_fetch_add(&s->resizes, 1);
        }
    }
    atomic_store(&s->resizing, 0);
    pthread_cond_broadcast(&s->gcv_readers);
    pthread_mutex_unlock(&s->gmu);
    if (rc)
        fprintf(stderr, "hortus: store: cannot grow the map: %s\n", mdb_strerror(rc));
    return rc ? ERR_IO : 0;
}

/* Writer (or open) only: refresh the used-bytes gauge from the meta page. */
static void note_used_bytes(lmdb_store *s)
{
    MDB_envinfo info;
    MDB_stat ms;
    if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &ms) == 0)
        atomic_store(&s->used_bytes, (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize);
}

/* ---- the write path --------------------------------------------------------------- */

/* The newest ResourceAsOf entry of (tenant, type, id) in txn: 0 with *t and *vr, or
 * ERR_NOTFOUND; other MDB codes positive. */
static int current_version(lmdb_store *s, MDB_cursor *c, uint32_t tenant, const store_op *op,
                           uint64_t *t, codec_vrec *vr)
{
    uint8_t kb[CODEC_KEY_MAX];
    codec_key k = {.tenant = tenant,
                   .type = op->type,
                   .type_len = op->type_len,
                   .id = op->id,
                   .id_len = op->id_len};
    int n = codec_asof_encode(CODEC_RESOURCE_ASOF, kb, &k, 3);
    if (n < 0)
        return n;
    MDB_val key = {(size_t)n, kb}, val;
    int rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        return ERR_NOTFOUND;
    if (rc)
        return rc;
    if (!has_prefix(&key, kb, (size_t)n) || key.mv_size != (size_t)n + 8)
        return ERR_NOTFOUND;
    (void)s;
    *t = UINT64_MAX - codec_get_u64((const uint8_t *)key.mv_data + n);
    return codec_vrec_decode(val.mv_data, val.mv_size, vr);
}

static int bump_count(lmdb_store *s, MDB_txn *txn, uint32_t tenant, const char *type,
                      size_t type_len, int64_t dcurrent)
{
    uint8_t kb[CODEC_KEY_MAX];
    int n = codec_counts_key(kb, tenant, type, type_len);
    if (n < 0)
        return n;
    MDB_val key = {(size_t)n, kb}, val;
    uint64_t cur = 0, ver = 0;
    int rc = mdb_get(txn, s->db_counts, &key, &val);
    if (rc == 0) {
        if (codec_counts_val_decode(val.mv_data, val.mv_size, &cur, &ver))
            return ERR_INTERNAL;
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }
    uint8_t vb[CODEC_COUNTS_VAL_LEN];
    codec_counts_val(vb, (uint64_t)((int64_t)cur + dcurrent), ver + 1);
    val.mv_size = sizeof vb;
    val.mv_data = vb;
    return mdb_put(txn, s->db_counts, &key, &val, 0);
}

static int put_content(lmdb_store *s, MDB_txn *txn, uint32_t tenant, const store_op *op, uint64_t t)
{
    uint8_t kb[CODEC_CONTENT_KEY_LEN];
    codec_content_key(kb, tenant, t, op->hash);
    MDB_val key = {sizeof kb, kb}, val = {op->len + 1, NULL};
    /* Keys grow with t, so this is nearly always an append: MDB_APPEND fills a leaf
     * page before starting the next instead of splitting it in half. It fails on a key
     * not above the last one (another tenant's, or the same bytes twice in one commit). */
    int rc = mdb_put(txn, s->db_content, &key, &val, MDB_APPEND | MDB_RESERVE);
    if (rc == MDB_KEYEXIST) {
        val.mv_size = op->len + 1;
        val.mv_data = NULL;
        rc = mdb_put(txn, s->db_content, &key, &val, MDB_NOOVERWRITE | MDB_RESERVE);
    }
    if (rc == MDB_KEYEXIST) {
        /* Same bytes stored before (or a 128-bit collision: refuse to alias). */
        const uint8_t *old = val.mv_data;
        if (val.mv_size != op->len + 1 || old[0] != CODEC_ENC_PLAIN ||
            memcmp(old + 1, op->bytes, op->len) != 0)
            return ERR_INTERNAL;
        return 0;
    }
    if (rc)
        return rc;
    uint8_t *dst = val.mv_data;
    dst[0] = CODEC_ENC_PLAIN;
    memcpy(dst + 1, op->bytes, op->len);
    return 0;
}

static int put_version(lmdb_store *s, MDB_txn *txn, uint32_t tenant, const store_op *op, uint64_t t,
                       const uint8_t vrec[CODEC_VREC_LEN])
{
    static const codec_layout layouts[3] = {CODEC_RESOURCE_ASOF, CODEC_TYPE_ASOF,
                                            CODEC_SYSTEM_ASOF};
    MDB_dbi dbis[3] = {s->db_res, s->db_type, s->db_sys};
    codec_key k = {.tenant = tenant,
                   .type = op->type,
                   .type_len = op->type_len,
                   .id = op->id,
                   .id_len = op->id_len,
                   .t = t};
    for (int i = 0; i < 3; i++) {
        uint8_t kb[CODEC_KEY_MAX];
        int n = codec_asof_encode(layouts[i], kb, &k, 4);
        if (n < 0)
            return n;
        MDB_val key = {(size_t)n, kb}, val = {CODEC_VREC_LEN, (void *)vrec};
        int rc = mdb_put(txn, dbis[i], &key, &val, 0);
        if (rc)
            return rc;
    }
    return 0;
}

static int apply_op(lmdb_store *s, MDB_txn *txn, MDB_cursor *c, uint32_t tenant, store_op *op,
                    uint64_t t)
{
    uint64_t cur_t = 0;
    codec_vrec cur;
    int rc = current_version(s, c, tenant, op, &cur_t, &cur);
    int exists = rc == 0;
    if (rc && rc != ERR_NOTFOUND)
        return rc;
    if (exists && cur_t == t)
        return ERR_INVALID; /* the same resource twice in one request */
    int live = exists && cur.op != STORE_OP_DELETE;

    if (op->expect != STORE_ANY) {
        if (op->expect == 0 ? live : (!exists || cur.vid != op->expect))
            return ERR_CONFLICT;
    }
    if (op->op == STORE_OP_DELETE && !exists)
        return ERR_NOTFOUND;
    if (op->op == STORE_OP_DELETE && !live)
        return ERR_GONE;
    if (exists && op->vid <= cur.vid)
        return ERR_CONFLICT; /* planned from an older version: another commit got in */
    op->prev_vid = exists ? cur.vid : 0;
    op->created = !live && op->op != STORE_OP_DELETE;

    codec_vrec vr = {.vid = op->vid,
                     .last_updated = op->last_updated,
                     .op = (uint8_t)op->op,
                     .flags = op->created ? CODEC_VF_CREATED : 0};
    if (op->op != STORE_OP_DELETE) {
        memcpy(vr.hash, op->hash, STORE_HASH_LEN);
        if ((rc = put_content(s, txn, tenant, op, t)))
            return rc;
    }
    uint8_t vb[CODEC_VREC_LEN];
    codec_vrec_encode(vb, &vr);
    if ((rc = put_version(s, txn, tenant, op, t, vb)))
        return rc;
    int64_t d = (op->op == STORE_OP_DELETE) ? -1 : (live ? 0 : 1);
    if ((rc = bump_count(s, txn, tenant, op->type, op->type_len, d)))
        return rc;
    return bump_count(s, txn, tenant, NULL, 0, d);
}

/* Writer only: append one SearchParam change to the request's IndexLog record:
 * del (u8) | klen (u16 BE) | vlen (u16 BE) | key | value. */
static int log_append(lmdb_store *s, int del, const uint8_t *k, size_t kn, const void *v,
                      size_t vn)
{
    uint8_t h[5] = {del ? 1 : 0, (uint8_t)(kn >> 8), (uint8_t)kn, (uint8_t)(vn >> 8),
                    (uint8_t)vn};
    buf_put(&s->w_log, h, sizeof h);
    buf_put(&s->w_log, k, kn);
    if (vn)
        buf_put(&s->w_log, v, vn);
    return s->w_log.err;
}

/* Replay one IndexLog record (t) into a builder; ERR_INTERNAL when it is malformed. */
static int log_replay(ovl_builder *b, uint64_t t, const uint8_t *p, size_t n)
{
    while (n) {
        if (n < 5)
            return ERR_INTERNAL;
        size_t kn = (size_t)p[1] << 8 | p[2], vn = (size_t)p[3] << 8 | p[4];
        if (n < 5 + kn + vn)
            return ERR_INTERNAL;
        int rc = ovl_builder_add(b, t, p[0], p + 5, kn, p + 5 + kn, vn);
        if (rc)
            return rc;
        p += 5 + kn + vn;
        n -= 5 + kn + vn;
    }
    return 0;
}

/* A chained put (store.h store_extra.chain): the link to the tenant's chain head is
 * written into the value, and the value's own SHA-256 becomes the head, both in txn:
 * a nested transaction rolled back takes its links and its head with it. */
static int apply_chained(lmdb_store *s, MDB_txn *txn, const store_extra *x, MDB_val *key,
                         uint64_t t)
{
    uint8_t hk[STORE_CHAIN_HEAD_LEN];
    memcpy(hk, x->key, 4);
    memset(hk + 4, 0xff, sizeof hk - 4);
    if (x->key_len == sizeof hk && !memcmp(x->key, hk, sizeof hk))
        return ERR_INVALID; /* the head's own key */
    MDB_val hkey = {sizeof hk, hk}, hval;
    uint8_t prev[32] = {0};
    int have = 0;
    int rc = mdb_get(txn, s->db_extra[STORE_DB_AUDIT], &hkey, &hval);
    if (rc == 0 && hval.mv_size == 32) {
        memcpy(prev, hval.mv_data, 32);
        have = 1;
    } else if (rc == 0) {
        return ERR_INTERNAL;
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }
    MDB_val val = {x->val_len, NULL};
    if ((rc = mdb_put(txn, s->db_extra[x->db], key, &val, MDB_RESERVE)))
        return rc;
    uint8_t *v = val.mv_data;
    memcpy(v, x->val, x->val_len);
    if (x->fill_t_val)
        codec_put_u64(v + x->t_val_offset, t);
    static const char hexd[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        v[x->chain_offset + 2 * i] = have ? (uint8_t)hexd[prev[i] >> 4] : '0';
        v[x->chain_offset + 2 * i + 1] = have ? (uint8_t)hexd[prev[i] & 15] : '0';
    }
    uint8_t head[32];
    SHA256(v, x->val_len, head);
    hval = (MDB_val){32, head};
    return mdb_put(txn, s->db_extra[STORE_DB_AUDIT], &hkey, &hval, 0);
}

static int apply_extra(lmdb_store *s, MDB_txn *txn, const store_extra *x, uint64_t t)
{
    uint8_t kb[STORE_EXTRA_KEY_MAX];
    memcpy(kb, x->key, x->key_len);
    if (x->fill_t)
        codec_put_u64(kb + x->t_offset, t);
    MDB_val key = {x->key_len, kb};
    if (x->db == STORE_DB_SEARCH_PARAM) {
        /* Into the request's IndexLog record and this commit's overlay run; the fold
         * writes it into SearchParam later (docs/STORAGE.md 4.6). */
        uint8_t vb[STORE_EXTRA_KEY_MAX];
        const void *v = x->val;
        size_t vn = x->del ? 0 : x->val_len;
        if (vn > OVL_VAL_MAX)
            return ERR_TOOBIG;
        if (!x->del && x->fill_t_val) {
            if (vn > sizeof vb)
                return ERR_TOOBIG;
            memcpy(vb, x->val, vn);
            codec_put_u64(vb + x->t_val_offset, t);
            v = vb;
        }
        int rc = log_append(s, x->del, kb, x->key_len, v, vn);
        return rc ? rc : ovl_builder_add(&s->w_ovl, t, x->del, kb, x->key_len, v, vn);
    }
    if (x->del) {
        int rc = mdb_del(txn, s->db_extra[x->db], &key, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    MDB_val val = {x->val_len, (void *)x->val};
    if (x->chain)
        return apply_chained(s, txn, x, &key, t);
    if (!x->fill_t_val)
        return mdb_put(txn, s->db_extra[x->db], &key, &val, 0);
    int rc = mdb_put(txn, s->db_extra[x->db], &key, &val, MDB_RESERVE);
    if (rc == 0) {
        memcpy(val.mv_data, x->val, x->val_len);
        codec_put_u64((uint8_t *)val.mv_data + x->t_val_offset, t);
    }
    return rc;
}

/* Does check x hold in txn (as the requests before this one in the batch left it)?
 * 0 yes, ERR_CONFLICT no, or another failure. */
static int check_one(lmdb_store *s, MDB_txn *txn, MDB_cursor *c, uint32_t tenant,
                     const store_cond *x)
{
    if (x->kind == STORE_COND_VERSION) {
        store_op probe = {.type = x->type, .type_len = strlen(x->type), .id = x->id,
                          .id_len = strlen(x->id)};
        uint64_t cur_t;
        codec_vrec cur;
        int rc = current_version(s, c, tenant, &probe, &cur_t, &cur);
        if (rc && rc != ERR_NOTFOUND)
            return rc;
        uint64_t vid = rc == 0 && cur.op != STORE_OP_DELETE ? cur.vid : 0;
        return vid == x->vid ? 0 : ERR_CONFLICT;
    }
    if (x->kind == STORE_COND_TYPE_VERSIONS) {
        uint8_t kb[CODEC_KEY_MAX];
        int n = codec_counts_key(kb, tenant, x->type, strlen(x->type));
        if (n < 0)
            return n;
        MDB_val key = {(size_t)n, kb}, val;
        uint64_t cur = 0, ver = 0;
        int rc = mdb_get(txn, s->db_counts, &key, &val);
        if (rc == 0 && codec_counts_val_decode(val.mv_data, val.mv_size, &cur, &ver))
            return ERR_INTERNAL;
        if (rc && rc != MDB_NOTFOUND)
            return rc;
        return ver == x->vid ? 0 : ERR_CONFLICT;
    }
    if (x->kind != STORE_COND_VALUE || x->db == STORE_DB_SEARCH_PARAM ||
        (unsigned)x->db >= STORE_DB_COUNT_ || !x->key_len || x->key_len > STORE_EXTRA_KEY_MAX)
        return ERR_INVALID;
    MDB_val key = {x->key_len, (void *)x->key}, val;
    int rc = mdb_get(txn, s->db_extra[x->db], &key, &val);
    if (rc == MDB_NOTFOUND)
        return x->absent ? 0 : ERR_CONFLICT;
    if (rc)
        return rc;
    if (x->absent || val.mv_size != x->val_len ||
        (x->val_len && memcmp(val.mv_data, x->val, x->val_len)))
        return ERR_CONFLICT;
    return 0;
}

/* One request inside its nested transaction `txn`. */
static int apply_loaded(lmdb_store *s, MDB_txn *txn, const store_req *req);

static int apply_request(lmdb_store *s, MDB_txn *txn, store_req *req, uint64_t t, int64_t instant)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db_res, &c);
    if (rc)
        return rc;
    for (size_t i = 0; i < req->ncond; i++) {
        if ((rc = check_one(s, txn, c, req->tenant, &req->conds[i]))) {
            req->failed_op = req->nops;
            goto done;
        }
    }
    for (size_t i = 0; i < req->nops; i++) {
        if ((rc = apply_op(s, txn, c, req->tenant, &req->ops[i], t))) {
            req->failed_op = i;
            goto done;
        }
    }
    req->failed_op = req->nops;
    uint8_t kb[CODEC_TXTIME_KEY_LEN], vb[CODEC_TXLOG_VAL_LEN];
    codec_txlog_key(kb, req->tenant, t);
    codec_txlog_val(vb, instant, (uint32_t)req->nops);
    MDB_val key = {CODEC_TXLOG_KEY_LEN, kb}, val = {sizeof vb, vb};
    if ((rc = mdb_put(txn, s->db_txlog, &key, &val, 0)))
        goto done;
    key.mv_size = (size_t)codec_txtime_key(kb, req->tenant, instant, t, 3);
    val.mv_size = 0;
    val.mv_data = "";
    if ((rc = mdb_put(txn, s->db_txtime, &key, &val, 0)))
        goto done;
    buf_reset(&s->w_log);
    for (size_t i = 0; i < req->nextra; i++)
        if (!(req->sorted_load && req->extras[i].db == STORE_DB_SEARCH_PARAM) &&
            (rc = apply_extra(s, txn, &req->extras[i], t)))
            goto done;
    if (req->sorted_load && (rc = apply_loaded(s, txn, req)))
        goto done;
    if (s->w_log.len) {
        codec_put_u64(kb, t);
        key = (MDB_val){8, kb};
        val = (MDB_val){s->w_log.len, s->w_log.data};
        rc = mdb_put(txn, s->db_idxlog, &key, &val, MDB_APPEND);
    }
done:
    mdb_cursor_close(c);
    return rc;
}

static int put_meta_u64(lmdb_store *s, MDB_txn *txn, const char *name, uint64_t v)
{
    uint8_t b[8];
    codec_put_u64(b, v);
    MDB_val key = {strlen(name), (void *)name}, val = {8, b};
    return mdb_put(txn, s->db_meta, &key, &val, 0);
}

/* The counted prefix length of a SearchParam key (0: not counted). */
static size_t count_prefix_len(const lmdb_store *s, const uint8_t *key, size_t klen)
{
    if (!s->counting || klen <= (size_t)s->count_at + s->count_suffix ||
        !memchr(s->count_kinds, key[s->count_at], strlen(s->count_kinds)))
        return 0;
    return klen - s->count_suffix;
}

/* Add d to the count of prefix p in txn (a count that reaches 0 is deleted). */
static int count_add(lmdb_store *s, MDB_txn *txn, const uint8_t *p, size_t n, int64_t d)
{
    if (!d)
        return 0;
    MDB_val key = {n, (void *)p}, val;
    int64_t c = 0;
    int rc = mdb_get(txn, s->db_keycount, &key, &val);
    if (rc == 0 && val.mv_size == 8)
        c = (int64_t)codec_get_u64(val.mv_data);
    else if (rc && rc != MDB_NOTFOUND)
        return rc;
    c += d;
    if (c <= 0) {
        rc = mdb_del(txn, s->db_keycount, &key, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    uint8_t b[8];
    codec_put_u64(b, (uint64_t)c);
    val.mv_size = 8;
    val.mv_data = b;
    return mdb_put(txn, s->db_keycount, &key, &val, 0);
}

/* The SearchParam extras of a sorted load (ascending puts, store.c checks), straight
 * into the B-tree: appended once they follow its last key, put unless present before
 * that; each new key counted as the fold counts (docs/STORAGE.md 4.6b). */
static int apply_loaded(lmdb_store *s, MDB_txn *txn, const store_req *req)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db_extra[STORE_DB_SEARCH_PARAM], &c);
    if (rc)
        return rc;
    MDB_val k, v;
    int appending = 0;
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (rc == MDB_NOTFOUND)
        appending = 1;
    else if (rc)
        goto out;
    uint8_t last[STORE_EXTRA_KEY_MAX];
    size_t lastn = appending ? 0 : k.mv_size;
    if (!appending)
        memcpy(last, k.mv_data, lastn);
    rc = 0;
    const uint8_t *cur = NULL;
    size_t curn = 0;
    int64_t cd = 0;
    for (size_t i = 0; i < req->nextra && !rc; i++) {
        const store_extra *x = &req->extras[i];
        if (x->db != STORE_DB_SEARCH_PARAM)
            continue;
        if (!appending) { /* the keys ascend: once past the last key, all are */
            size_t m = lastn < x->key_len ? lastn : x->key_len;
            int d = memcmp(x->key, last, m);
            appending = d > 0 || (d == 0 && x->key_len > lastn);
        }
        MDB_val key = {x->key_len, (void *)x->key};
        MDB_val val = {x->val_len, x->val_len ? (void *)x->val : (void *)""};
        rc = mdb_cursor_put(c, &key, &val, appending ? MDB_APPEND : MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) { /* there already (a load resumed): counted then */
            rc = 0;
            continue;
        }
        size_t cp = rc ? 0 : count_prefix_len(s, x->key, x->key_len);
        if (cp) {
            if (cp != curn || memcmp(cur, x->key, cp)) {
                rc = count_add(s, txn, cur, curn, cd);
                cur = x->key;
                curn = cp;
                cd = 0;
            }
            cd++;
        }
    }
    if (!rc)
        rc = count_add(s, txn, cur, curn, cd);
out:
    mdb_cursor_close(c);
    return rc;
}

/* Writer only: one durable commit took ns (the histogram behind /metrics). */
static void note_commit_time(lmdb_store *s, uint64_t ns)
{
    int k = 0;
    while (k < STORE_COMMIT_BUCKETS && ns > (uint64_t)store_commit_bucket_us[k] * 1000)
        k++;
    atomic_fetch_add(&s->commit_hist[k], 1);
    if (ns > atomic_load(&s->commit_max_ns))
        atomic_store(&s->commit_max_ns, ns);
}

/* Writer only: make v the current overlay (readers keep the one they hold). */
static void publish(lmdb_store *s, ovl_view *v)
{
    pthread_rwlock_wrlock(&s->vlock);
    ovl_view *old = s->view;
    s->view = v;
    pthread_rwlock_unlock(&s->vlock);
    atomic_store(&s->overlay_bytes, ovl_view_bytes(v));
    atomic_store(&s->overlay_records, ovl_view_records(v));
    ovl_view_unref(old);
}

static int publish_add(lmdb_store *s)
{
    ovl_view *v;
    int rc = ovl_view_add(s->view, &s->w_ovl, &v);
    if (rc)
        return rc;
    publish(s, v);
    return 0;
}

/* A commit failed after its records were published: take them back out. Without the
 * memory for that, readers must not go on with records of a t that may be reused. */
static void unpublish_after(lmdb_store *s, uint64_t t_max)
{
    ovl_view *v;
    if (ovl_view_keep(s->view, 0, t_max, ovl_view_floor(s->view), &v)) {
        fprintf(stderr, "hortus: store: out of memory undoing a failed commit\n");
        abort();
    }
    publish(s, v);
}

/*
 * Folding the overlay into SearchParam (docs/STORAGE.md 4.6), in chunks between the
 * writer's batches. A fold takes the overlay as it is (all of it committed, up to t =
 * F), and writes every key's latest record in key order, fold_chunk records per write
 * transaction, so a leaf is written once for all the entries it receives and writes
 * wait for one chunk at most. The last chunk also deletes IndexLog up to F and sets
 * Meta.fold_t = F; then the overlay forgets the records of t <= F.
 *
 * Until then a reader's window still starts at the old fold_t, so it applies the
 * records of the chunks already written once more: the same latest record per key
 * gives the same answer whether the B-tree has it or not. Records written during the
 * fold (t > F) stay in the overlay; a crash in the middle replays IndexLog from the
 * old fold_t over a partly folded B-tree, which is the same state.
 */
static int fold_chunk_txn(lmdb_store *s, ovl_cursor *c, int *finished)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return rc;
    /* one cursor for the chunk: the keys ascend, and a cursor still on the leaf of the
     * previous key finds the next one without a descent from the root */
    MDB_cursor *sc;
    if ((rc = mdb_cursor_open(txn, s->db_extra[STORE_DB_SEARCH_PARAM], &sc))) {
        mdb_txn_abort(txn);
        return rc;
    }
    ovl_rec e;
    size_t n = 0;
    *finished = 0;
    /* the counts: whether a key came or went is what the B-tree says as it is written
     * (a record applied again changes nothing); consecutive keys share their prefix, so
     * each prefix's count is written once per run of its keys */
    const uint8_t *cur = NULL, *last = NULL; /* into the fold's view, held until it ends */
    size_t curn = 0, lastn = 0;
    int64_t cd = 0;
    while (n < s->fold_chunk && !(*finished = !ovl_cursor_next(c, &e))) {
        MDB_val key = {e.klen, (void *)e.key}, val = {e.vlen, (void *)e.val};
        int changed = 0;
        if (e.del) {
            MDB_val old;
            rc = mdb_cursor_get(sc, &key, &old, MDB_SET);
            if (rc == 0)
                rc = mdb_cursor_del(sc, 0);
            changed = rc == 0 ? -1 : 0;
        } else {
            rc = mdb_cursor_put(sc, &key, &val, MDB_NOOVERWRITE);
            changed = rc == 0 ? 1 : 0;
            if (rc == MDB_KEYEXIST) { /* there already: its value as the record has it */
                MDB_val v2 = {e.vlen, (void *)e.val};
                rc = e.vlen ? mdb_cursor_put(sc, &key, &v2, MDB_CURRENT) : 0;
            }
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
        if (rc)
            goto fail;
        size_t cp = changed ? count_prefix_len(s, e.key, e.klen) : 0;
        if (cp) {
            if (cp != curn || memcmp(cur, e.key, cp)) {
                if ((rc = count_add(s, txn, cur, curn, cd)))
                    goto fail;
                cur = e.key;
                curn = cp;
                cd = 0;
            }
            cd += changed;
        }
        last = e.key;
        lastn = e.klen;
        n++;
    }
    if ((rc = count_add(s, txn, cur, curn, cd)))
        goto fail;
    if (!*finished) {
        /* at the chunk's end: is anything left? (the cursor is only peeked at by a
         * copy, so the next chunk starts at that record) */
        ovl_cursor peek = *c;
        *finished = !ovl_cursor_next(&peek, &e);
    }
    if (*finished) {
        MDB_cursor *lc;
        MDB_val key, val;
        if ((rc = mdb_cursor_open(txn, s->db_idxlog, &lc)))
            goto fail;
        while ((rc = mdb_cursor_get(lc, &key, &val, MDB_FIRST)) == 0 && key.mv_size == 8 &&
               codec_get_u64(key.mv_data) <= s->fold_target)
            if ((rc = mdb_cursor_del(lc, 0)))
                break;
        mdb_cursor_close(lc);
        if (rc != 0 && rc != MDB_NOTFOUND)
            goto fail;
        if ((rc = put_meta_u64(s, txn, "fold_t", s->fold_target)))
            goto fail;
        MDB_val fk = {8, "fold_key"};
        if ((rc = mdb_del(txn, s->db_meta, &fk, NULL)) && rc != MDB_NOTFOUND)
            goto fail;
    } else if (lastn) {
        /* how far this fold has got: readers counting keys skip the records of
         * t <= fold_target up to this key, which the B-tree holds already */
        MDB_val fk = {8, "fold_key"}, fv = {lastn, (void *)last};
        if ((rc = put_meta_u64(s, txn, "fold_target", s->fold_target)) ||
            (rc = mdb_put(txn, s->db_meta, &fk, &fv, 0)))
            goto fail;
    }
    mdb_cursor_close(sc);
    return mdb_txn_commit(txn);
fail:
    mdb_cursor_close(sc);
    mdb_txn_abort(txn);
    return rc;
}

/* One chunk of the fold in progress (starting one when the overlay is full, or when
 * `all`: at close). Returns 1 while a fold is still in progress. Writer only. */
static int fold_step(lmdb_store *s, int all)
{
    if (!s->fold_view) {
        if (!ovl_view_records(s->view) || (!all && ovl_view_bytes(s->view) < s->fold_bytes))
            return 0;
        s->fold_view = s->view;
        ovl_view_ref(s->fold_view);
        atomic_store(&s->fold_running, 1);
        s->fold_target = s->w_last_t;
        s->fold_t0 = mono_ns();
        ovl_cursor_init(&s->fold_cur, s->fold_view, ovl_view_floor(s->fold_view),
                        s->fold_target, NULL, 0, NULL, 0, 0);
    }
    ovl_cursor saved = s->fold_cur;
    int rc, finished = 0;
    while ((rc = fold_chunk_txn(s, &s->fold_cur, &finished)) == MDB_MAP_FULL) {
        s->fold_cur = saved; /* nothing of the chunk was committed */
        if ((rc = grow_map(s)))
            break;
    }
    if (rc) {
        /* Nothing is lost: the records stay in IndexLog and in the overlay; the fold
         * starts over later. */
        fprintf(stderr, "hortus: store: index fold failed: %s\n",
                rc > 0 ? mdb_strerror(rc) : err_str(rc));
        ovl_view_unref(s->fold_view);
        s->fold_view = NULL;
        atomic_store(&s->fold_running, 0);
        return 0;
    }
    if (!finished)
        return 1;
    ovl_view *v;
    if (ovl_view_keep(s->view, s->fold_target, UINT64_MAX, s->fold_target, &v) == 0)
        publish(s, v);
    else /* still right (readers skip records of t <= fold_t), only larger */
        fprintf(stderr, "hortus: store: out of memory trimming the index overlay\n");
    ovl_view_unref(s->fold_view);
    s->fold_view = NULL;
    atomic_store(&s->fold_running, 0);
    atomic_fetch_add(&s->folds, 1);
    atomic_fetch_add(&s->fold_ns, mono_ns() - s->fold_t0);
    note_used_bytes(s);
    return 0;
}

/*
 * Apply and commit a batch once. Returns 0 (each request's rc says how it went),
 * MDB_MAP_FULL (nothing committed; grow and call again) or another failure (nothing
 * committed; every request gets it).
 */
static int commit_batch(lmdb_store *s, store_req *batch)
{
    MDB_txn *txn;
    uint64_t t0 = mono_ns();
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return rc;
    uint64_t t = s->w_last_t;
    int64_t instant = now_us();
    if (instant < s->w_last_instant)
        instant = s->w_last_instant;
    ovl_builder_reset(&s->w_ovl);
    for (store_req *req = batch; req; req = req->next_) {
        for (size_t i = 0; i < req->nops; i++)
            if (req->ops[i].last_updated > instant)
                instant = req->ops[i].last_updated;
        MDB_txn *child;
        if ((rc = mdb_txn_begin(s->env, txn, 0, &child)))
            goto fail;
        size_t mark = s->w_ovl.n;
        rc = apply_request(s, child, req, t + 1, instant);
        if (rc == 0)
            rc = mdb_txn_commit(child);
        else
            mdb_txn_abort(child);
        if (rc)
            ovl_builder_truncate(&s->w_ovl, mark); /* rolled back with its request */
        if (rc == MDB_MAP_FULL)
            goto fail;
        req->rc = map_rc(rc);
        req->t = rc ? 0 : ++t;
    }
    if (t != s->w_last_t) {
        if ((rc = put_meta_u64(s, txn, "last_t", t)) ||
            (rc = put_meta_u64(s, txn, "last_instant", (uint64_t)instant)))
            goto fail;
        if (s->fault_commit_delay_ms)
            usleep(s->fault_commit_delay_ms * 1000u);
        /* Readers must find this commit's records in the overlay as soon as its
         * snapshot is visible, so they are published first; a reader of an older
         * snapshot ignores them (their t is past its own). */
        if (s->w_ovl.n && (rc = publish_add(s)))
            goto fail;
        uint64_t t1 = mono_ns();
        if ((rc = mdb_txn_commit(txn))) {
            if (s->w_ovl.n)
                unpublish_after(s, s->w_last_t);
            return rc;
        }
        uint64_t t2 = mono_ns();
        atomic_fetch_add(&s->apply_ns, t1 - t0);
        atomic_fetch_add(&s->sync_ns, t2 - t1);
        s->w_last_commit_ns = t2 - t0;
        note_commit_time(s, t2 - t1);
        atomic_fetch_add(&s->commits, 1);
        note_used_bytes(s);
    } else {
        mdb_txn_abort(txn); /* every request failed: nothing to make durable */
    }
    s->w_last_t = t;
    s->w_last_instant = instant;
    atomic_store(&s->last_t, t);
    return 0;
fail:
    mdb_txn_abort(txn);
    return rc;
}

static void process_batch(lmdb_store *s, store_req *batch, uint64_t nreq)
{
    int rc;
    while ((rc = commit_batch(s, batch)) == MDB_MAP_FULL) {
        if ((rc = grow_map(s)))
            break;
    }
    if (rc) {
        if (rc > 0)
            fprintf(stderr, "hortus: store: commit failed: %s\n", mdb_strerror(rc));
        for (store_req *req = batch; req; req = req->next_) {
            req->rc = ERR_IO;
            req->t = 0;
        }
    }
    if (nreq > atomic_load(&s->max_batch_seen))
        atomic_store(&s->max_batch_seen, nreq);
    store_req *next;
    for (store_req *req = batch; req; req = next) {
        next = req->next_; /* the callback may free req */
        if (req->rc == 0)
            atomic_fetch_add(&s->requests, 1);
        else
            atomic_fetch_add(&s->failed, 1);
        if (req->rc == ERR_CONFLICT)
            atomic_fetch_add(&s->conflicts, 1);
        req->done_(req->ctx_, req->rc, req->t);
    }
}

static void *writer_main(void *arg)
{
    lmdb_store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        int idle = 0;
        while (!s->qhead && !s->closing && !s->fold_view && !idle) {
            if (s->idle_fold_ms < 0 || !ovl_view_records(s->view)) {
                pthread_cond_wait(&s->qcv, &s->qmu);
                continue;
            }
            /* nothing to write for idle_fold_ms: fold what the overlay holds, so that
             * reads stop merging it (the next write waits for one chunk at most) */
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_sec += s->idle_fold_ms / 1000;
            dl.tv_nsec += (long)(s->idle_fold_ms % 1000) * 1000000L;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
            }
            idle = pthread_cond_timedwait(&s->qcv, &s->qmu, &dl) == ETIMEDOUT && !s->qhead;
        }
        if (!s->qhead) {
            pthread_mutex_unlock(&s->qmu);
            if (s->closing)
                break;
            fold_step(s, idle); /* idle: go on with the fold in progress, or start one */
            continue;
        }
        if (s->group_wait_us > 0 && s->qlen < s->w_prev_batch && !s->closing) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            /* at most half a commit: waiting longer than the commit it saves is a loss */
            uint64_t wait_ns = (uint64_t)s->group_wait_us * 1000;
            if (wait_ns > s->w_last_commit_ns / 2)
                wait_ns = s->w_last_commit_ns / 2;
            dl.tv_nsec += (long)wait_ns;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec += dl.tv_nsec / 1000000000L;
                dl.tv_nsec %= 1000000000L;
            }
            while (s->qlen < s->w_prev_batch && !s->closing)
                if (pthread_cond_timedwait(&s->qcv, &s->qmu, &dl) == ETIMEDOUT)
                    break;
        }
        store_req *batch = s->qhead, *last = batch;
        uint64_t n = 1;
        while (last->next_ && n < s->max_batch) {
            last = last->next_;
            n++;
        }
        s->qhead = last->next_;
        if (!s->qhead)
            s->qtail = NULL;
        last->next_ = NULL;
        s->qlen -= n;
        pthread_mutex_unlock(&s->qmu);
        process_batch(s, batch, n);
        s->w_prev_batch = n;
        fold_step(s, 0);
    }
    while (fold_step(s, 1)) /* a clean close leaves nothing to replay */
        ;
    return NULL;
}

static int lmdb_submit(store *base, store_req *req)
{
    lmdb_store *s = (lmdb_store *)base;
    pthread_mutex_lock(&s->qmu);
    if (s->closing) {
        pthread_mutex_unlock(&s->qmu);
        return ERR_IO;
    }
    if (s->qtail)
        s->qtail->next_ = req;
    else
        s->qhead = req;
    s->qtail = req;
    s->qlen++;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    return 0;
}

/* ---- open / close ------------------------------------------------------------------ */

/* A u64 of Meta (last_t, last_instant, fold_t) in txn: 0 when absent. */
static uint64_t meta_u64(lmdb_store *s, MDB_txn *txn, const char *name)
{
    MDB_val key = {strlen(name), (void *)name}, val;
    if (mdb_get(txn, s->db_meta, &key, &val) == 0 && val.mv_size == 8)
        return codec_get_u64(val.mv_data);
    return 0;
}

static int open_dbs(lmdb_store *s, uint32_t *format)
{
    static const char *const extra_names[STORE_DB_COUNT_] = {
        "SearchParam", "ResourceParam", "Compartment", "Audit", "Outbox", "Aux"};
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return rc;
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {{"ResourceAsOf", &s->db_res}, {"TypeAsOf", &s->db_type}, {"SystemAsOf", &s->db_sys},
               {"Content", &s->db_content},  {"TxLog", &s->db_txlog},   {"TxByTime", &s->db_txtime},
               {"Counts", &s->db_counts},    {"Meta", &s->db_meta},
               {"IndexLog", &s->db_idxlog}, {"SearchCount", &s->db_keycount}};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++)
        if ((rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbs[i].dbi)))
            goto fail;
    for (int i = 0; i < STORE_DB_COUNT_; i++)
        if ((rc = mdb_dbi_open(txn, extra_names[i], MDB_CREATE, &s->db_extra[i])))
            goto fail;

    MDB_val key = {6, "format"}, val;
    rc = mdb_get(txn, s->db_meta, &key, &val);
    *format = LMDB_FORMAT;
    if (rc == MDB_NOTFOUND) {
        uint8_t b[4];
        codec_put_u32(b, LMDB_FORMAT);
        val.mv_size = 4;
        val.mv_data = b;
        if ((rc = mdb_put(txn, s->db_meta, &key, &val, 0)))
            goto fail;
    } else if (rc) {
        goto fail;
    } else if (val.mv_size == 4 && codec_get_u32(val.mv_data) == 1) {
        *format = 1; /* upgraded by lmdb_open (upgrade_1_to_2, then to 3) */
    } else if (val.mv_size == 4 && codec_get_u32(val.mv_data) == 2) {
        *format = 2; /* format 3 only adds IndexLog (empty here) and Meta.fold_t */
    } else if (val.mv_size == 4 && codec_get_u32(val.mv_data) == 3) {
        *format = 3; /* format 4 adds SearchCount: counted at open (setup_counts) */
    } else if (val.mv_size != 4 || codec_get_u32(val.mv_data) != LMDB_FORMAT) {
        fprintf(stderr,
                "hortus: store: this directory holds data format %u; this build reads format %u "
                "(docs/STORAGE.md, Meta)\n",
                val.mv_size == 4 ? codec_get_u32(val.mv_data) : 0u, LMDB_FORMAT);
        rc = EINVAL;
        goto fail;
    }
    s->w_last_t = meta_u64(s, txn, "last_t");
    s->w_last_instant = (int64_t)meta_u64(s, txn, "last_instant");
    return mdb_txn_commit(txn);
fail:
    mdb_txn_abort(txn);
    return rc;
}

/* ---- format upgrades (at open, before the writer starts) ----------------------------- */

#define LMDB_UPGRADE_CHUNK 4096 /* versions (or deletions) per upgrade transaction */

typedef struct upgrade_pos {
    uint8_t key[CODEC_KEY_MAX > STORE_EXTRA_KEY_MAX ? CODEC_KEY_MAX : STORE_EXTRA_KEY_MAX];
    /* ^ resume after this key (len 0: from the start) */
    size_t len;
    uint64_t done; /* entries handled so far */
} upgrade_pos;

typedef int (*upgrade_step)(lmdb_store *s, MDB_txn *txn, upgrade_pos *pos);

/* Run one upgrade step in its own write transaction; on MDB_MAP_FULL abort, double the
 * map (no transaction is open at this point) and run the step again from the same
 * position: *pos only moves on with a commit. The step returns 0 when it has more to
 * do, 1 when it is finished, or an error. */
static int upgrade_txn(lmdb_store *s, upgrade_step step, upgrade_pos *pos)
{
    for (;;) {
        upgrade_pos at = *pos;
        MDB_txn *txn;
        int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (rc)
            return rc;
        rc = step(s, txn, &at);
        if (rc >= 0 && rc <= 1) {
            int crc = mdb_txn_commit(txn);
            if (crc == 0) {
                *pos = at;
                return rc;
            }
            if (crc != MDB_MAP_FULL)
                return crc;
        } else {
            mdb_txn_abort(txn);
            if (rc != MDB_MAP_FULL)
                return rc;
        }
        MDB_envinfo info;
        if ((rc = mdb_env_info(s->env, &info)) ||
            (rc = mdb_env_set_mapsize(s->env, info.me_mapsize * 2)))
            return rc;
    }
}

/* Put c on the first key after pos (the first key when pos is empty): MDB_SUCCESS with
 * key/val, or MDB_NOTFOUND at the end. */
static int cursor_resume(MDB_cursor *c, const upgrade_pos *pos, MDB_val *key, MDB_val *val)
{
    *key = (MDB_val){pos->len, (void *)pos->key};
    int rc = pos->len ? mdb_cursor_get(c, key, val, MDB_SET_RANGE)
                      : mdb_cursor_get(c, key, val, MDB_FIRST);
    if (rc == 0 && pos->len && key->mv_size == pos->len &&
        !memcmp(key->mv_data, pos->key, pos->len))
        rc = mdb_cursor_get(c, key, val, MDB_NEXT);
    return rc;
}

/* Format 1 -> 2, phase 1: give every version's content its new key tenant|t|hash (a copy
 * of the value under tenant|hash), walking ResourceAsOf in chunks. */
static int upgrade_copy_step(lmdb_store *s, MDB_txn *txn, upgrade_pos *pos)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db_res, &c);
    if (rc)
        return rc;
    MDB_val key, val;
    rc = cursor_resume(c, pos, &key, &val);
    int n = 0;
    for (; rc == 0 && n < LMDB_UPGRADE_CHUNK; rc = mdb_cursor_get(c, &key, &val, MDB_NEXT), n++) {
        codec_key k;
        codec_vrec vr;
        if (codec_asof_decode(CODEC_RESOURCE_ASOF, key.mv_data, key.mv_size, &k) ||
            codec_vrec_decode(val.mv_data, val.mv_size, &vr)) {
            rc = ERR_INTERNAL;
            break;
        }
        memcpy(pos->key, key.mv_data, key.mv_size);
        pos->len = key.mv_size;
        pos->done++;
        if (vr.op == STORE_OP_DELETE)
            continue;
        uint8_t nk[CODEC_CONTENT_KEY_LEN], ok[4 + STORE_HASH_LEN];
        codec_content_key(nk, k.tenant, k.t, vr.hash);
        MDB_val nkey = {sizeof nk, nk}, cv;
        if (mdb_get(txn, s->db_content, &nkey, &cv) == 0)
            continue; /* copied by an earlier, interrupted run */
        codec_put_u32(ok, k.tenant);
        memcpy(ok + 4, vr.hash, STORE_HASH_LEN);
        MDB_val okey = {sizeof ok, ok};
        if ((rc = mdb_get(txn, s->db_content, &okey, &cv))) {
            rc = rc == MDB_NOTFOUND ? ERR_INTERNAL : rc; /* a version without content */
            break;
        }
        /* cv points into the map; mdb_put may move pages, so copy via MDB_RESERVE */
        MDB_val nv = {cv.mv_size, NULL};
        const void *src = cv.mv_data;
        size_t len = cv.mv_size;
        void *tmp = malloc(len);
        if (!tmp) {
            rc = ERR_NOMEM;
            break;
        }
        memcpy(tmp, src, len);
        rc = mdb_put(txn, s->db_content, &nkey, &nv, MDB_RESERVE);
        if (rc == 0)
            memcpy(nv.mv_data, tmp, len);
        free(tmp);
        if (rc)
            break;
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        return 1;
    return rc ? rc : 0;
}

/* Format 1 -> 2, phase 2: delete the old tenant|hash keys (20 bytes; new ones are 28).
 * A chunk's keys are collected first and deleted after the walk, so no cursor has to
 * stand on an entry that was just removed. */
static int upgrade_delete_step(lmdb_store *s, MDB_txn *txn, upgrade_pos *pos)
{
    enum { OLD = 4 + STORE_HASH_LEN };
    uint8_t(*keys)[OLD] = malloc((size_t)LMDB_UPGRADE_CHUNK * OLD);
    if (!keys)
        return ERR_NOMEM;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db_content, &c);
    if (rc) {
        free(keys);
        return rc;
    }
    MDB_val key = {pos->len, pos->key}, val;
    rc = pos->len ? mdb_cursor_get(c, &key, &val, MDB_SET_RANGE)
                  : mdb_cursor_get(c, &key, &val, MDB_FIRST);
    int n = 0;
    for (; rc == 0 && n < LMDB_UPGRADE_CHUNK; rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        memcpy(pos->key, key.mv_data, key.mv_size);
        pos->len = key.mv_size;
        if (key.mv_size == OLD)
            memcpy(keys[n++], key.mv_data, OLD);
    }
    mdb_cursor_close(c);
    int more = rc == 0;
    if (rc == 0 || rc == MDB_NOTFOUND) {
        rc = 0;
        for (int i = 0; i < n && rc == 0; i++) {
            MDB_val k = {OLD, keys[i]};
            rc = mdb_del(txn, s->db_content, &k, NULL);
        }
        pos->done += (uint64_t)n;
    }
    free(keys);
    return rc ? rc : more ? 0 : 1;
}

static int upgrade_set_format(lmdb_store *s, MDB_txn *txn, upgrade_pos *pos)
{
    (void)pos;
    uint8_t b[4];
    codec_put_u32(b, 2);
    MDB_val key = {6, "format"}, val = {4, b};
    int rc = mdb_put(txn, s->db_meta, &key, &val, 0);
    return rc ? rc : 1;
}

/*
 * Format 1 kept Content under tenant|hash; format 2 under tenant|t|hash. Each step is a
 * transaction of its own and can be repeated, so an upgrade cut short (crash, kill) goes
 * on at the next open: copies that exist are skipped, old keys are deleted only once
 * every version has its new one, and Meta.format turns 2 last.
 */
static int upgrade_1_to_2(lmdb_store *s, const char *dir)
{
    fprintf(stderr, "hortus: store: upgrading %s from data format 1 to 2 (Content keys)\n", dir);
    upgrade_pos pos = {.len = 0};
    int rc;
    while ((rc = upgrade_txn(s, upgrade_copy_step, &pos)) == 0)
        ;
    if (rc < 0 || rc > 1)
        return rc;
    uint64_t versions = pos.done;
    pos = (upgrade_pos){.len = 0};
    while ((rc = upgrade_txn(s, upgrade_delete_step, &pos)) == 0)
        ;
    if (rc < 0 || rc > 1)
        return rc;
    if ((rc = upgrade_txn(s, upgrade_set_format, &pos)) != 1)
        return rc ? rc : ERR_INTERNAL;
    fprintf(stderr, "hortus: store: upgraded %s: %llu versions, %llu old content keys removed\n",
            dir, (unsigned long long)versions, (unsigned long long)pos.done);
    return 0;
}

static void lmdb_close(store *base);

static int set_format(lmdb_store *s, uint32_t format)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return rc;
    uint8_t b[4];
    codec_put_u32(b, format);
    MDB_val key = {6, "format"}, val = {4, b};
    if ((rc = mdb_put(txn, s->db_meta, &key, &val, 0))) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

/* At open: the overlay is IndexLog, every record after Meta.fold_t, replayed. */
static int load_overlay(lmdb_store *s)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    uint64_t fold_t = meta_u64(s, txn, "fold_t");
    MDB_val key, val;
    ovl_builder b = {0};
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, s->db_idxlog, &c)) == 0) {
        for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
            uint64_t t = key.mv_size == 8 ? codec_get_u64(key.mv_data) : 0;
            if (t <= fold_t || t > s->w_last_t) {
                rc = ERR_INTERNAL; /* folded, or never committed: not a state we write */
                break;
            }
            if ((rc = log_replay(&b, t, val.mv_data, val.mv_size)))
                break;
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
        mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
    ovl_view *empty = rc ? NULL : ovl_view_empty(fold_t);
    if (!rc && !empty)
        rc = ERR_NOMEM;
    if (!rc && (rc = ovl_view_add(empty, &b, &s->view)) == 0)
        atomic_store(&s->overlay_bytes, ovl_view_bytes(s->view));
    ovl_view_unref(empty);
    ovl_builder_free(&b);
    return rc;
}

/* ---- counts of SearchParam key prefixes (docs/STORAGE.md 4.7) ------------------------ */

/* One step of counting the SearchParam B-tree again from scratch (SearchCount emptied by
 * the first): LMDB_UPGRADE_CHUNK * 16 keys per transaction; a prefix that runs over a
 * step's end is added to by the next. */
static int recount_step(lmdb_store *s, MDB_txn *txn, upgrade_pos *pos)
{
    int rc;
    if (!pos->len && !pos->done && (rc = mdb_drop(txn, s->db_keycount, 0)))
        return rc;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, s->db_extra[STORE_DB_SEARCH_PARAM], &c)))
        return rc;
    MDB_val key, val;
    rc = cursor_resume(c, pos, &key, &val);
    uint8_t cur[STORE_EXTRA_KEY_MAX];
    size_t curn = 0, n = 0;
    int64_t cd = 0;
    for (; rc == 0 && n < LMDB_UPGRADE_CHUNK * 16; rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        size_t cp = key.mv_size <= sizeof cur ? count_prefix_len(s, key.mv_data, key.mv_size) : 0;
        if (cp) {
            if (cp != curn || memcmp(cur, key.mv_data, cp)) {
                if ((rc = count_add(s, txn, cur, curn, cd)))
                    break;
                memcpy(cur, key.mv_data, cp);
                curn = cp;
                cd = 0;
            }
            cd++;
        }
        if (key.mv_size <= sizeof pos->key) {
            memcpy(pos->key, key.mv_data, key.mv_size);
            pos->len = key.mv_size;
        }
        n++;
    }
    mdb_cursor_close(c);
    int done = rc == MDB_NOTFOUND;
    if (rc && !done)
        return rc;
    if ((rc = count_add(s, txn, cur, curn, cd)))
        return rc;
    pos->done += n;
    return done;
}

/* Write the counting policy into Meta (the last step of a recount). */
static int policy_step(lmdb_store *s, MDB_txn *txn, upgrade_pos *pos)
{
    uint8_t b[2 + sizeof s->count_kinds];
    size_t kn = strlen(s->count_kinds);
    b[0] = s->count_at;
    b[1] = s->count_suffix;
    memcpy(b + 2, s->count_kinds, kn);
    MDB_val key = {12, "count_policy"}, val = {2 + kn, b};
    (void)pos;
    int rc = mdb_put(txn, s->db_meta, &key, &val, 0);
    return rc ? rc : 1;
}

/*
 * At open, before the writer starts: take the directory's counting policy, or the one
 * asked for when it differs (then every key is counted again); and when the counts were
 * made anew, or a fold was cut short (Meta.fold_key), fold the whole overlay now, so
 * readers never meet a B-tree that holds some of the overlay's records without a
 * fold_key saying which.
 */
static int setup_counts(lmdb_store *s, const store_opts *o, const char *dir)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    MDB_val key = {12, "count_policy"}, val;
    uint8_t have[2 + sizeof s->count_kinds];
    size_t hn = 0;
    if (mdb_get(txn, s->db_meta, &key, &val) == 0 && val.mv_size >= 3 &&
        val.mv_size <= sizeof have - 1) {
        memcpy(have, val.mv_data, val.mv_size);
        hn = val.mv_size;
    }
    MDB_val fk = {8, "fold_key"};
    int cut_short = mdb_get(txn, s->db_meta, &fk, &val) == 0;
    mdb_txn_abort(txn);
    int recount = 0;
    if (o && o->count_kinds && *o->count_kinds) {
        size_t kn = strlen(o->count_kinds);
        if (kn >= sizeof s->count_kinds)
            return ERR_INVALID;
        recount = hn != 2 + kn || have[0] != o->count_kind_at || have[1] != o->count_suffix ||
                  memcmp(have + 2, o->count_kinds, kn);
        s->count_at = o->count_kind_at;
        s->count_suffix = o->count_suffix;
        memcpy(s->count_kinds, o->count_kinds, kn + 1);
        s->counting = 1;
    } else if (hn) {
        s->count_at = have[0];
        s->count_suffix = have[1];
        memcpy(s->count_kinds, have + 2, hn - 2);
        s->count_kinds[hn - 2] = 0;
        s->counting = 1;
    }
    if (recount) {
        MDB_stat st;
        if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) == 0) {
            if (!mdb_stat(txn, s->db_extra[STORE_DB_SEARCH_PARAM], &st) && st.ms_entries)
                fprintf(stderr, "hortus: store: counting the %llu search index keys of %s\n",
                        (unsigned long long)st.ms_entries, dir);
            mdb_txn_abort(txn);
        }
        upgrade_pos pos = {.len = 0};
        while ((rc = upgrade_txn(s, recount_step, &pos)) == 0)
            ;
        if (rc != 1 || (rc = upgrade_txn(s, policy_step, &pos)) != 1)
            return rc;
    }
    if (recount || cut_short)
        while (fold_step(s, 1))
            ;
    return 0;
}

static int lmdb_open(const char *dir, const store_opts *o, store **out)
{
    lmdb_store *s = calloc(1, sizeof *s);
    if (!s)
        return ERR_NOMEM;
    s->base.ops = &store_lmdb_ops;
    s->lock_fd = -1;
    s->gen = atomic_fetch_add(&lmdb_generation, 1) + 1;
    s->max_batch = o && o->max_batch ? o->max_batch : LMDB_DEFAULT_BATCH;
    s->group_wait_us = !o || o->group_wait_us == 0 ? STORE_DEFAULT_GROUP_WAIT_US
                                                   : o->group_wait_us; /* < 0: never */
    s->fault_commit_delay_ms = o ? o->fault_commit_delay_ms : 0;
    size_t map = o && o->map_size ? o->map_size : STORE_DEFAULT_MAP_SIZE;
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);
    pthread_mutex_init(&s->gmu, NULL);
    pthread_cond_init(&s->gcv_readers, NULL);
    pthread_cond_init(&s->gcv_writer, NULL);
    pthread_mutex_init(&s->pmu, NULL);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    /* writer-preferring: a stream of readers must not hold the publisher off */
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->vlock, &ra);
    pthread_rwlockattr_destroy(&ra);
    s->fold_bytes = o && o->overlay_bytes ? o->overlay_bytes : STORE_DEFAULT_OVERLAY_BYTES;
    s->fold_chunk = o && o->fold_chunk ? o->fold_chunk : STORE_DEFAULT_FOLD_CHUNK;
    s->idle_fold_ms = o && o->idle_fold_ms ? o->idle_fold_ms : STORE_DEFAULT_IDLE_FOLD_MS;

    int rc;
    if (mkdir(dir, 0775) && errno != EEXIST) {
        fprintf(stderr, "hortus: store: cannot create %s: %s\n", dir, strerror(errno));
        rc = ERR_IO;
        goto fail;
    }
    /* One process per directory: the writer keeps t in memory, so a second writing
     * process would hand out the same t twice. */
    char path[4096];
    if (snprintf(path, sizeof path, "%s/hortus.lock", dir) >= (int)sizeof path) {
        rc = ERR_INVALID;
        goto fail;
    }
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0664);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB)) {
        fprintf(stderr, "hortus: store: %s is in use by another open store (%s)\n", dir,
                strerror(errno));
        rc = ERR_IO;
        goto fail;
    }
    /* Never map less than the file already holds. */
    uint32_t format = LMDB_FORMAT;
    struct stat st;
    if (snprintf(path, sizeof path, "%s/data.mdb", dir) < (int)sizeof path &&
        stat(path, &st) == 0 && (size_t)st.st_size > map)
        map = (size_t)st.st_size;
    if ((rc = mdb_env_create(&s->env)) || (rc = mdb_env_set_maxdbs(s->env, LMDB_MAX_DBS)) ||
        (rc = mdb_env_set_maxreaders(s->env, LMDB_MAX_READERS)) ||
        (rc = mdb_env_set_mapsize(s->env, map)) ||
        (rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0664)) || (rc = open_dbs(s, &format))) {
        fprintf(stderr, "hortus: store: cannot open %s: %s\n", dir, mdb_strerror(rc));
        rc = map_rc(rc);
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead); /* slots left by a killed process */
    if (format == 1 && (rc = upgrade_1_to_2(s, dir))) {
        fprintf(stderr,
                "hortus: store: upgrade of %s failed (%s); the directory is unchanged "
                "or partly upgraded, and the next open goes on\n",
                dir, rc > 0 ? mdb_strerror(rc) : err_str(rc));
        rc = rc > 0 ? map_rc(rc) : rc;
        goto fail;
    }
    if (format != LMDB_FORMAT && (rc = set_format(s, LMDB_FORMAT))) {
        fprintf(stderr, "hortus: store: cannot upgrade %s: %s\n", dir, mdb_strerror(rc));
        rc = map_rc(rc);
        goto fail;
    }
    if ((rc = load_overlay(s))) {
        fprintf(stderr, "hortus: store: cannot replay the index log of %s: %s\n", dir,
                rc > 0 ? mdb_strerror(rc) : err_str(rc));
        rc = map_rc(rc);
        goto fail;
    }
    if ((rc = setup_counts(s, o, dir))) {
        fprintf(stderr, "hortus: store: cannot count the index keys of %s: %s\n", dir,
                rc > 0 ? mdb_strerror(rc) : err_str(rc));
        rc = rc > 0 ? map_rc(rc) : rc;
        goto fail;
    }
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    atomic_store(&s->map_size, info.me_mapsize);
    atomic_store(&s->last_t, s->w_last_t);
    note_used_bytes(s);
    if (pthread_create(&s->writer, NULL, writer_main, s)) {
        rc = ERR_NOMEM;
        goto fail;
    }
    pthread_mutex_lock(&live_mu);
    s->live_next = live_stores;
    live_stores = s;
    pthread_mutex_unlock(&live_mu);
    *out = &s->base;
    return 0;
fail:
    if (s->env)
        mdb_env_close(s->env);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->qcv);
    pthread_mutex_destroy(&s->gmu);
    pthread_cond_destroy(&s->gcv_readers);
    pthread_cond_destroy(&s->gcv_writer);
    pthread_mutex_destroy(&s->pmu);
    pthread_rwlock_destroy(&s->vlock);
    ovl_view_unref(s->view);
    free(s);
    return rc;
}

static void lmdb_close(store *base)
{
    lmdb_store *s = (lmdb_store *)base;
    pthread_mutex_lock(&s->qmu);
    s->closing = 1;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    pthread_join(s->writer, NULL);
    pthread_mutex_lock(&live_mu);
    for (lmdb_store **pp = &live_stores; *pp; pp = &(*pp)->live_next) {
        if (*pp == s) {
            *pp = s->live_next;
            break;
        }
    }
    pthread_mutex_unlock(&live_mu);
    for (lmdb_reader *r = s->all, *next; r; r = next) {
        next = r->all_next;
        mdb_cursor_close(r->cur);
        for (int d = 0; d < STORE_DB_COUNT_; d++)
            if (r->gcur[d])
                mdb_cursor_close(r->gcur[d]);
        mdb_txn_abort(r->txn);
        free(r);
    }
    mdb_env_close(s->env);
    close(s->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->qcv);
    pthread_mutex_destroy(&s->gmu);
    pthread_cond_destroy(&s->gcv_readers);
    pthread_cond_destroy(&s->gcv_writer);
    pthread_mutex_destroy(&s->pmu);
    pthread_rwlock_destroy(&s->vlock);
    ovl_view_unref(s->view);
    ovl_builder_free(&s->w_ovl);
    buf_free(&s->w_log);
    free(s);
}

/* ---- readers ---------------------------------------------------------------------- */

static int lmdb_read_begin(store *base, store_reader **out)
{
    lmdb_store *s = (lmdb_store *)base;
    *out = NULL;
    lmdb_reader *r = NULL;
    if (tls_reader.r && tls_reader.gen == s->gen) {
        r = tls_reader.r;
        tls_reader.r = NULL;
    } else {
        pthread_mutex_lock(&s->pmu);
        r = s->pool;
        if (r)
            s->pool = r->next;
        pthread_mutex_unlock(&s->pmu);
    }

    gate_enter(s);
    int rc;
    /* The snapshot and the overlay are taken together: a fold commits and then
     * publishes its empty overlay under the write lock, so no reader pairs a snapshot
     * from before a fold with the overlay from after it. */
    pthread_rwlock_rdlock(&s->vlock);
    if (r) {
        if ((rc = mdb_txn_renew(r->txn)) || (rc = mdb_cursor_renew(r->txn, r->cur))) {
            pthread_rwlock_unlock(&s->vlock);
            /* keep it parked in the reset state; it is freed at close */
            mdb_txn_reset(r->txn);
            gate_leave(s);
            pthread_mutex_lock(&s->pmu);
            r->next = s->pool;
            s->pool = r;
            pthread_mutex_unlock(&s->pmu);
            fprintf(stderr, "hortus: store: renew read transaction: %s\n", mdb_strerror(rc));
            return map_rc(rc);
        }
    } else {
        r = calloc(1, sizeof *r);
        if (!r) {
            pthread_rwlock_unlock(&s->vlock);
            gate_leave(s);
            return ERR_NOMEM;
        }
        r->base.ops = &store_lmdb_ops;
        r->s = s;
        if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn))) {
            pthread_rwlock_unlock(&s->vlock);
            free(r);
            gate_leave(s);
            fprintf(stderr, "hortus: store: read transaction: %s\n", mdb_strerror(rc));
            return map_rc(rc);
        }
        if ((rc = mdb_cursor_open(r->txn, s->db_res, &r->cur))) {
            pthread_rwlock_unlock(&s->vlock);
            mdb_txn_abort(r->txn);
            free(r);
            gate_leave(s);
            return map_rc(rc);
        }
        pthread_mutex_lock(&s->pmu);
        r->all_next = s->all;
        s->all = r;
        pthread_mutex_unlock(&s->pmu);
        atomic_fetch_add(&s->handles, 1);
    }
    r->view = s->view;
    ovl_view_ref(r->view);
    pthread_rwlock_unlock(&s->vlock);
    r->have_t = 0;
    r->have_fold = 0;
    r->live = 0;
    r->next = NULL;
    *out = &r->base;
    return 0;
}

static void lmdb_read_end(store_reader *base)
{
    lmdb_reader *r = (lmdb_reader *)base;
    lmdb_store *s = r->s;
    mdb_txn_reset(r->txn);
    ovl_view_unref(r->view);
    r->view = NULL;
    gate_leave(s);
    if (!tls_reader.r) {
        if (!tls_reader.registered) {
            pthread_once(&tls_exit_once, tls_exit_init);
            pthread_setspecific(tls_exit_key, &tls_reader); /* non-NULL: run tls_exit */
            tls_reader.registered = 1;
        }
        tls_reader.gen = s->gen;
        tls_reader.r = r;
        return;
    }
    pthread_mutex_lock(&s->pmu);
    r->next = s->pool;
    s->pool = r;
    pthread_mutex_unlock(&s->pmu);
}

static uint64_t reader_t(lmdb_reader *r)
{
    if (!r->have_t) {
        r->t = meta_u64(r->s, r->txn, "last_t");
        r->have_t = 1;
    }
    return r->t;
}

/* The overlay window of this snapshot: records of fold_t < t <= reader_t. */
static uint64_t reader_fold_t(lmdb_reader *r)
{
    if (!r->have_fold) {
        r->fold_t = meta_u64(r->s, r->txn, "fold_t");
        r->have_fold = 1;
    }
    return r->fold_t;
}

static int lmdb_key_count(store_reader *base, store_db db, const void *prefix, size_t plen,
                          uint64_t *n)
{
    lmdb_reader *r = (lmdb_reader *)base;
    lmdb_store *s = r->s;
    const uint8_t *p = prefix;
    *n = 0;
    if (db != STORE_DB_SEARCH_PARAM || !s->counting || plen <= s->count_at ||
        plen > STORE_EXTRA_KEY_MAX || !memchr(s->count_kinds, p[s->count_at], strlen(s->count_kinds)))
        return ERR_UNSUPPORTED;
    MDB_val key = {plen, (void *)prefix}, val;
    int64_t c = 0;
    int rc = mdb_get(r->txn, s->db_keycount, &key, &val);
    if (rc == 0 && val.mv_size == 8)
        c = (int64_t)codec_get_u64(val.mv_data);
    else if (rc && rc != MDB_NOTFOUND)
        return map_rc(rc);
    if (r->view) {
        /* the overlay's records of the window, less those a fold in progress has written */
        MDB_val fk = {8, "fold_key"}, fv;
        const void *skip = NULL;
        size_t skip_len = 0;
        uint64_t skip_hi = 0;
        if (mdb_get(r->txn, s->db_meta, &fk, &fv) == 0) {
            skip = fv.mv_data;
            skip_len = fv.mv_size;
            skip_hi = meta_u64(s, r->txn, "fold_target");
        }
        c += ovl_count_delta(r->view, reader_fold_t(r), reader_t(r), prefix, plen,
                             plen + s->count_suffix, skip_hi, skip, skip_len);
    }
    *n = c > 0 ? (uint64_t)c : 0;
    return 0;
}

static uint64_t lmdb_reader_t(const store_reader *base)
{
    return reader_t((lmdb_reader *)base);
}

/* Fill *v from a version-index entry whose key was decoded into k. */
static int fill_version(lmdb_reader *r, const codec_key *k, const MDB_val *val, store_version *v)
{
    codec_vrec vr;
    if (codec_vrec_decode(val->mv_data, val->mv_size, &vr))
        return ERR_INTERNAL;
    v->type = k->type;
    v->id = k->id;
    v->t = k->t;
    v->vid = vr.vid;
    v->last_updated = vr.last_updated;
    v->op = (store_opkind)vr.op;
    v->created = (vr.flags & CODEC_VF_CREATED) != 0;
    v->hash = (const uint8_t *)val->mv_data + 16; /* points into the map, not into vr */
    v->bytes = NULL;
    v->len = 0;
    if (vr.op == STORE_OP_DELETE)
        return ERR_GONE;
    uint8_t kb[CODEC_CONTENT_KEY_LEN];
    codec_content_key(kb, k->tenant, k->t, vr.hash);
    MDB_val key = {sizeof kb, kb}, cv;
    int rc = mdb_get(r->txn, r->s->db_content, &key, &cv);
    if (rc)
        return rc == MDB_NOTFOUND ? ERR_INTERNAL : ERR_IO;
    if (cv.mv_size < 1 || ((const uint8_t *)cv.mv_data)[0] != CODEC_ENC_PLAIN)
        return ERR_UNSUPPORTED;
    v->bytes = (const char *)cv.mv_data + 1;
    v->len = cv.mv_size - 1;
    return 0;
}

static int lmdb_read(store_reader *base, uint32_t tenant, const char *type, const char *id,
                     uint64_t vid, store_version *v)
{
    lmdb_reader *r = (lmdb_reader *)base;
    uint8_t kb[CODEC_KEY_MAX];
    codec_key k = {
        .tenant = tenant, .type = type, .type_len = strlen(type), .id = id, .id_len = strlen(id)};
    int n = codec_asof_encode(CODEC_RESOURCE_ASOF, kb, &k, 3);
    if (n < 0)
        return n;
    MDB_val key = {(size_t)n, kb}, val;
    int rc = mdb_cursor_get(r->cur, &key, &val, MDB_SET_RANGE);
    for (;;) {
        if (rc == MDB_NOTFOUND)
            return ERR_NOTFOUND;
        if (rc)
            return ERR_IO;
        if (!has_prefix(&key, kb, (size_t)n) || key.mv_size != (size_t)n + 8)
            return ERR_NOTFOUND;
        if (vid == 0)
            break;
        if (val.mv_size != CODEC_VREC_LEN)
            return ERR_INTERNAL;
        uint64_t this_vid = codec_get_u64(val.mv_data);
        if (this_vid == vid)
            break;
        if (this_vid < vid) /* vids increase with t: it is not there */
            return ERR_NOTFOUND;
        rc = mdb_cursor_get(r->cur, &key, &val, MDB_NEXT);
    }
    k.type = (const char *)key.mv_data + 4;
    k.id = k.type + k.type_len + 1;
    k.t = UINT64_MAX - codec_get_u64((const uint8_t *)key.mv_data + n);
    return fill_version(r, &k, &val, v);
}

static int lmdb_count(store_reader *base, uint32_t tenant, const char *type, uint64_t *current,
                      uint64_t *versions)
{
    lmdb_reader *r = (lmdb_reader *)base;
    uint8_t kb[CODEC_KEY_MAX];
    int n = codec_counts_key(kb, tenant, type, type ? strlen(type) : 0);
    if (n < 0)
        return n;
    MDB_val key = {(size_t)n, kb}, val;
    uint64_t c = 0, ver = 0;
    int rc = mdb_get(r->txn, r->s->db_counts, &key, &val);
    if (rc == 0) {
        if (codec_counts_val_decode(val.mv_data, val.mv_size, &c, &ver))
            return ERR_INTERNAL;
    } else if (rc != MDB_NOTFOUND) {
        return ERR_IO;
    }
    if (current)
        *current = c;
    if (versions)
        *versions = ver;
    return 0;
}

static int lmdb_get(store_reader *base, store_db db, const void *k, size_t kn, const void **v,
                    size_t *vn)
{
    lmdb_reader *r = (lmdb_reader *)base;
    ovl_rec e;
    if (db == STORE_DB_SEARCH_PARAM && ovl_view_records(r->view) &&
        ovl_get(r->view, reader_fold_t(r), reader_t(r), k, kn, &e)) {
        if (e.del)
            return ERR_NOTFOUND;
        *v = e.val;
        *vn = e.vlen;
        return 0;
    }
    MDB_val key = {kn, (void *)k}, val;
    int rc = 0;
    MDB_cursor *c = r->gcur[db];
    if (!c)
        rc = mdb_cursor_open(r->txn, r->s->db_extra[db], &r->gcur[db]);
    else if (!(r->live & 1u << db))
        rc = mdb_cursor_renew(r->txn, c);
    if (rc)
        return map_rc(rc);
    r->live |= 1u << db;
    rc = mdb_cursor_get(r->gcur[db], &key, &val, MDB_SET);
    if (rc)
        return map_rc(rc);
    *v = val.mv_data;
    *vn = val.mv_size;
    return 0;
}

static void lmdb_stats(store *base, store_stats *st)
{
    lmdb_store *s = (lmdb_store *)base;
    st->last_t = atomic_load(&s->last_t);
    st->commits = atomic_load(&s->commits);
    st->fsyncs = st->commits * LMDB_SYNCS_PER_COMMIT;
    st->requests = atomic_load(&s->requests);
    st->failed = atomic_load(&s->failed);
    st->conflicts = atomic_load(&s->conflicts);
    st->max_batch = atomic_load(&s->max_batch_seen);
    st->map_resizes = atomic_load(&s->resizes);
    st->map_size = atomic_load(&s->map_size);
    st->readers = (uint64_t)atomic_load(&s->active);
    st->apply_ns = atomic_load(&s->apply_ns);
    st->commit_ns = atomic_load(&s->sync_ns);
    /* Not mdb_env_info() here: it reads the map, which a resize may be replacing. */
    st->used_bytes = atomic_load(&s->used_bytes);
    st->reader_handles = atomic_load(&s->handles);
    for (int k = 0; k <= STORE_COMMIT_BUCKETS; k++)
        st->commit_hist[k] = atomic_load(&s->commit_hist[k]);
    st->commit_max_ns = atomic_load(&s->commit_max_ns);
    st->index_folds = atomic_load(&s->folds);
    st->index_fold_ns = atomic_load(&s->fold_ns);
    st->index_overlay_bytes = atomic_load(&s->overlay_bytes);
    st->index_overlay_records = atomic_load(&s->overlay_records);
    st->index_fold_running = atomic_load(&s->fold_running);
}

/* ---- iterators ---------------------------------------------------------------------- */

static int iter_new(lmdb_reader *r, iter_kind kind, MDB_dbi dbi, lmdb_iter **out)
{
    lmdb_iter *it = calloc(1, sizeof *it);
    if (!it)
        return ERR_NOMEM;
    it->base.ops = &store_lmdb_ops;
    it->r = r;
    it->kind = kind;
    int rc = mdb_cursor_open(r->txn, dbi, &it->cur);
    if (rc) {
        free(it);
        return map_rc(rc);
    }
    *out = it;
    return 0;
}

static void lmdb_iter_close(store_iter *base)
{
    lmdb_iter *it = (lmdb_iter *)base;
    mdb_cursor_close(it->cur);
    if (it->cur2)
        mdb_cursor_close(it->cur2);
    free(it);
}

/* Last t of `tenant` committed at or before `at`: 0 when none. */
static uint64_t t_at_instant(lmdb_reader *r, uint32_t tenant, int64_t at)
{
    uint8_t kb[CODEC_TXTIME_KEY_LEN];
    MDB_cursor *c;
    if (mdb_cursor_open(r->txn, r->s->db_txtime, &c))
        return 0;
    uint64_t t = 0;
    int n = at == INT64_MAX ? codec_txtime_key(kb, tenant + 1, 0, 0, 1)
                            : codec_txtime_key(kb, tenant, at + 1, 0, 2);
    MDB_val key = {(size_t)n, kb}, val;
    int rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
    rc =
        rc == 0 ? mdb_cursor_get(c, &key, &val, MDB_PREV) : mdb_cursor_get(c, &key, &val, MDB_LAST);
    uint32_t kt;
    int64_t inst;
    uint64_t kt_t;
    if (rc == 0 && codec_txtime_key_decode(key.mv_data, key.mv_size, &kt, &inst, &kt_t) == 0 &&
        kt == tenant && inst <= at)
        t = kt_t;
    mdb_cursor_close(c);
    return t;
}

/* First t of `tenant` committed at or after `since`: UINT64_MAX when none. */
static uint64_t t_since_instant(lmdb_reader *r, uint32_t tenant, int64_t since)
{
    uint8_t kb[CODEC_TXTIME_KEY_LEN];
    MDB_cursor *c;
    if (mdb_cursor_open(r->txn, r->s->db_txtime, &c))
        return UINT64_MAX;
    uint64_t t = UINT64_MAX;
    int n = codec_txtime_key(kb, tenant, since, 0, 2);
    MDB_val key = {(size_t)n, kb}, val;
    uint32_t kt;
    int64_t inst;
    uint64_t kt_t;
    if (mdb_cursor_get(c, &key, &val, MDB_SET_RANGE) == 0 &&
        codec_txtime_key_decode(key.mv_data, key.mv_size, &kt, &inst, &kt_t) == 0 && kt == tenant)
        t = kt_t;
    mdb_cursor_close(c);
    return t;
}

static int lmdb_history(store_reader *base, const store_hist_opts *o, store_iter **out)
{
    lmdb_reader *r = (lmdb_reader *)base;
    lmdb_store *s = r->s;
    MDB_dbi dbi = o->scope == STORE_SCOPE_INSTANCE ? s->db_res
                  : o->scope == STORE_SCOPE_TYPE   ? s->db_type
                                                   : s->db_sys;
    lmdb_iter *it;
    int rc = iter_new(r, IT_HISTORY, dbi, &it);
    if (rc)
        return rc;
    it->scope = o->scope;
    it->tenant = o->tenant;
    it->layout = o->scope == STORE_SCOPE_INSTANCE ? CODEC_RESOURCE_ASOF
                 : o->scope == STORE_SCOPE_TYPE   ? CODEC_TYPE_ASOF
                                                  : CODEC_SYSTEM_ASOF;
    uint64_t snap = reader_t(r);
    it->t_max = o->as_of_t && o->as_of_t < snap ? o->as_of_t : snap;
    it->t_min = 1;
    it->since = o->since == 0 ? STORE_NO_TIME : o->since;
    if (o->at != STORE_NO_TIME && o->at != 0) {
        uint64_t ta = t_at_instant(r, o->tenant, o->at);
        if (ta < it->t_max)
            it->t_max = ta;
        it->current_only = 1;
        if (o->scope != STORE_SCOPE_INSTANCE &&
            (rc = mdb_cursor_open(r->txn, s->db_res, &it->cur2))) {
            lmdb_iter_close(&it->base);
            return map_rc(rc);
        }
    }
    if (o->since != STORE_NO_TIME && o->since != 0)
        it->t_min = t_since_instant(r, o->tenant, o->since);
    if (it->t_max == 0 || it->t_min > it->t_max)
        it->finished = 1;

    codec_key k = {.tenant = o->tenant};
    if (o->type) {
        k.type = o->type;
        k.type_len = strlen(o->type);
    }
    if (o->id) {
        k.id = o->id;
        k.id_len = strlen(o->id);
    }
    int prefix_parts = o->scope == STORE_SCOPE_INSTANCE ? 3 : o->scope == STORE_SCOPE_TYPE ? 2 : 1;
    rc = codec_asof_encode(it->layout, it->prefix, &k, prefix_parts);
    if (rc < 0)
        goto fail;
    it->prefix_len = (size_t)rc;

    /* Where to start: strictly after the cursor if it is inside the window, else at t_max. */
    uint64_t start_t = it->t_max;
    if (o->after_t && o->after_t <= it->t_max) {
        if (o->scope == STORE_SCOPE_INSTANCE) {
            start_t = o->after_t - 1;
            if (start_t == 0)
                it->finished = 1;
        } else {
            codec_key a = k;
            a.t = o->after_t;
            a.id = o->after_id;
            a.id_len = strlen(o->after_id);
            if (o->scope == STORE_SCOPE_SYSTEM) {
                a.type = o->after_type;
                a.type_len = strlen(o->after_type);
            }
            rc = codec_asof_encode(it->layout, it->seek, &a, 4);
            if (rc < 0)
                goto fail;
            it->seek_len = (size_t)rc;
            it->skip_equal = 1;
        }
    }
    if (!it->seek_len) {
        k.t = start_t;
        rc = codec_asof_encode(it->layout, it->seek, &k, prefix_parts + 1);
        if (rc < 0)
            goto fail;
        it->seek_len = (size_t)rc;
    }
    *out = &it->base;
    return 0;
fail:
    lmdb_iter_close(&it->base);
    return rc;
}

/* _at: is this entry the newest version of its resource at or before t_max? */
static int is_current_at(lmdb_iter *it, const codec_key *k)
{
    uint8_t kb[CODEC_KEY_MAX];
    codec_key q = *k;
    q.t = it->t_max;
    int n = codec_asof_encode(CODEC_RESOURCE_ASOF, kb, &q, 4);
    if (n < 0)
        return 0;
    MDB_val key = {(size_t)n, kb}, val;
    if (mdb_cursor_get(it->cur2, &key, &val, MDB_SET_RANGE))
        return 0;
    if (!has_prefix(&key, kb, (size_t)n - 8) || key.mv_size != (size_t)n)
        return 0;
    return UINT64_MAX - codec_get_u64((const uint8_t *)key.mv_data + n - 8) == k->t;
}

static int history_next(lmdb_iter *it, store_version *v)
{
    MDB_val key, val;
    for (;;) {
        if (it->finished)
            return ERR_NOTFOUND;
        int rc;
        if (!it->started) {
            it->started = 1;
            key.mv_size = it->seek_len;
            key.mv_data = it->seek;
            rc = mdb_cursor_get(it->cur, &key, &val, MDB_SET_RANGE);
            if (rc == 0 && it->skip_equal && key.mv_size == it->seek_len &&
                memcmp(key.mv_data, it->seek, it->seek_len) == 0)
                rc = mdb_cursor_get(it->cur, &key, &val, MDB_NEXT);
        } else {
            rc = mdb_cursor_get(it->cur, &key, &val, MDB_NEXT);
        }
        if (rc == MDB_NOTFOUND || (rc == 0 && !has_prefix(&key, it->prefix, it->prefix_len))) {
            it->finished = 1;
            return ERR_NOTFOUND;
        }
        if (rc)
            return ERR_IO;
        codec_key k;
        if (codec_asof_decode(it->layout, key.mv_data, key.mv_size, &k))
            return ERR_INTERNAL;
        if (k.t > it->t_max)
            continue; /* only before the seek lands (instance scope) */
        if (k.t < it->t_min) {
            it->finished = 1;
            return ERR_NOTFOUND;
        }
        if (it->since != STORE_NO_TIME && val.mv_size == CODEC_VREC_LEN &&
            (int64_t)codec_get_u64((const uint8_t *)val.mv_data + 8) < it->since)
            continue;
        if (it->current_only) {
            if (it->scope == STORE_SCOPE_INSTANCE)
                it->finished = 1; /* the first entry at or before t_max is the one */
            else if (!is_current_at(it, &k))
                continue;
        }
        rc = fill_version(it->r, &k, &val, v);
        return rc == ERR_GONE ? 0 : rc;
    }
}

static int lmdb_list(store_reader *base, uint32_t tenant, const char *type, uint64_t as_of_t,
                     const char *after_id, store_iter **out)
{
    lmdb_reader *r = (lmdb_reader *)base;
    lmdb_iter *it;
    int rc = iter_new(r, IT_LIST, r->s->db_res, &it);
    if (rc)
        return rc;
    it->tenant = tenant;
    it->layout = CODEC_RESOURCE_ASOF;
    uint64_t snap = reader_t(r);
    it->t_max = as_of_t && as_of_t < snap ? as_of_t : snap;
    codec_key k = {.tenant = tenant, .type = type, .type_len = strlen(type)};
    rc = codec_asof_encode(CODEC_RESOURCE_ASOF, it->prefix, &k, 2);
    if (rc < 0)
        goto fail;
    it->prefix_len = (size_t)rc;
    if (after_id) {
        /* (type, after_id, ~0): sorts after every version of after_id, before the next id */
        k.id = after_id;
        k.id_len = strlen(after_id);
        k.t = 0;
        rc = codec_asof_encode(CODEC_RESOURCE_ASOF, it->seek, &k, 4);
    } else {
        rc = codec_asof_encode(CODEC_RESOURCE_ASOF, it->seek, &k, 2);
    }
    if (rc < 0)
        goto fail;
    it->seek_len = (size_t)rc;
    if (it->t_max == 0)
        it->finished = 1;
    *out = &it->base;
    return 0;
fail:
    lmdb_iter_close(&it->base);
    return rc;
}

static int list_next(lmdb_iter *it, store_version *v)
{
    MDB_val key, val;
    while (!it->finished) {
        key.mv_size = it->seek_len;
        key.mv_data = it->seek;
        int rc = mdb_cursor_get(it->cur, &key, &val, MDB_SET_RANGE);
        codec_key k;
        /* Walk this id's versions (newest first) down to the newest one <= t_max. */
        for (;;) {
            if (rc == MDB_NOTFOUND || (rc == 0 && !has_prefix(&key, it->prefix, it->prefix_len))) {
                it->finished = 1;
                return ERR_NOTFOUND;
            }
            if (rc)
                return ERR_IO;
            if (codec_asof_decode(CODEC_RESOURCE_ASOF, key.mv_data, key.mv_size, &k))
                return ERR_INTERNAL;
            if (k.t <= it->t_max)
                break;
            rc = mdb_cursor_get(it->cur, &key, &val, MDB_NEXT);
        }
        /* Next time: past every version of this id. */
        codec_key skip = k;
        skip.t = 0;
        int n = codec_asof_encode(CODEC_RESOURCE_ASOF, it->seek, &skip, 4);
        if (n < 0)
            return ERR_INTERNAL;
        it->seek_len = (size_t)n;
        /* The walk above may have left an id whose versions are all newer than t_max;
         * it then stopped at the next id's first entry <= t_max, which is that id's
         * newest in the window because each id's entries run newest first. */
        rc = fill_version(it->r, &k, &val, v);
        if (rc == ERR_GONE)
            continue; /* deleted at t_max */
        return rc;
    }
    return ERR_NOTFOUND;
}

static int lmdb_scan(store_reader *base, store_db db, const void *from, size_t from_len,
                     const void *prefix, size_t prefix_len, store_iter **out)
{
    lmdb_reader *r = (lmdb_reader *)base;
    lmdb_iter *it;
    int rc = iter_new(r, IT_SCAN, r->s->db_extra[db], &it);
    if (rc)
        return rc;
    if (prefix_len)
        memcpy(it->prefix, prefix, prefix_len);
    it->prefix_len = prefix_len;
    if (db == STORE_DB_SEARCH_PARAM && ovl_view_records(r->view))
        it->merge = -1; /* decided at the first step, once the seek key is final */
    if (from_len) {
        memcpy(it->seek, from, from_len);
        it->seek_len = from_len;
    } else if (prefix_len) {
        memcpy(it->seek, prefix, prefix_len);
        it->seek_len = prefix_len;
    }
    *out = &it->base;
    return 0;
}

static int lmdb_scan_rev(store_reader *base, store_db db, const void *prefix, size_t prefix_len,
                         store_iter **out)
{
    int rc = lmdb_scan(base, db, NULL, 0, prefix, prefix_len, out);
    if (rc)
        return rc;
    lmdb_iter *it = (lmdb_iter *)*out;
    it->reverse = 1;
    /* seek: the first key past the prefix range (the prefix plus one, with carry) */
    size_t n = prefix_len;
    memcpy(it->seek, prefix, n);
    while (n && it->seek[n - 1] == 0xFF)
        n--;
    if (n)
        it->seek[n - 1]++;
    it->seek_len = n; /* 0: the range runs to the end of the database */
    return 0;
}

static int lmdb_scan_rev_before(store_reader *base, store_db db, const void *before,
                                size_t before_len, const void *prefix, size_t prefix_len,
                                store_iter **out)
{
    int rc = lmdb_scan_rev(base, db, prefix, prefix_len, out);
    if (rc)
        return rc;
    lmdb_iter *it = (lmdb_iter *)*out;
    memcpy(it->seek, before, before_len); /* rev_start: the last key < seek */
    it->seek_len = before_len;
    return 0;
}

/* The first step of a reverse scan: the last key of the prefix range. */
static int rev_start(lmdb_iter *it, MDB_val *key, MDB_val *val)
{
    int rc;
    if (it->seek_len) {
        *key = (MDB_val){it->seek_len, it->seek};
        rc = mdb_cursor_get(it->cur, key, val, MDB_SET_RANGE);
        if (rc == 0)
            return mdb_cursor_get(it->cur, key, val, MDB_PREV);
        if (rc != MDB_NOTFOUND)
            return rc;
    }
    return mdb_cursor_get(it->cur, key, val, MDB_LAST);
}

/* One step of the B-tree side of a scan: 0, MDB_NOTFOUND (past the range) or an error. */
static int db_step(lmdb_iter *it, MDB_val *key, MDB_val *val)
{
    int rc;
    if (!it->started) {
        it->started = 1;
        *key = (MDB_val){it->seek_len, it->seek};
        rc = it->reverse ? rev_start(it, key, val)
                         : mdb_cursor_get(it->cur, key, val,
                                          it->seek_len ? MDB_SET_RANGE : MDB_FIRST);
    } else {
        rc = mdb_cursor_get(it->cur, key, val, it->reverse ? MDB_PREV : MDB_NEXT);
    }
    if (rc == 0 && !has_prefix(key, it->prefix, it->prefix_len))
        rc = MDB_NOTFOUND;
    return rc;
}

/* A SearchParam scan with overlay records in its range: the two sorted streams merged;
 * on equal keys the overlay's record wins (a put gives the key, a delete hides it). */
static int merge_next(lmdb_iter *it, const void **k, size_t *kn, const void **v, size_t *vn)
{
    for (;;) {
        if (!it->db_have && !it->db_done) {
            int rc = db_step(it, &it->db_key, &it->db_val);
            if (rc == MDB_NOTFOUND)
                it->db_done = 1;
            else if (rc)
                return ERR_IO;
            else
                it->db_have = 1;
        }
        if (!it->ovl_have && !it->db_have) {
            it->finished = 1;
            return ERR_NOTFOUND;
        }
        int c; /* < 0: the overlay's key comes first in scan order */
        if (!it->db_have) {
            c = -1;
        } else if (!it->ovl_have) {
            c = 1;
        } else {
            /* both keys start with the scan's prefix: compare what follows it */
            size_t p = it->prefix_len, a = it->ovl_head.klen - p, b = it->db_key.mv_size - p;
            c = memcmp(it->ovl_head.key + p, (const uint8_t *)it->db_key.mv_data + p,
                       a < b ? a : b);
            if (!c)
                c = (a > b) - (a < b);
            if (it->reverse)
                c = -c;
        }
        if (c > 0) {
            it->db_have = 0;
            *k = it->db_key.mv_data;
            *kn = it->db_key.mv_size;
            *v = it->db_val.mv_data;
            *vn = it->db_val.mv_size;
            return 0;
        }
        ovl_rec e = it->ovl_head;
        it->ovl_have = ovl_cursor_next(&it->oc, &it->ovl_head);
        if (c == 0)
            it->db_have = 0;
        if (e.del)
            continue;
        *k = e.key;
        *kn = e.klen;
        *v = e.val;
        *vn = e.vlen;
        return 0;
    }
}

static int lmdb_scan_next(store_iter *base, const void **k, size_t *kn, const void **v, size_t *vn)
{
    lmdb_iter *it = (lmdb_iter *)base;
    if (it->kind != IT_SCAN)
        return ERR_INVALID;
    if (it->finished)
        return ERR_NOTFOUND;
    if (it->merge < 0) { /* first step of a SearchParam scan: any overlay records in range? */
        lmdb_reader *r = it->r;
        ovl_cursor_init(&it->oc, r->view, reader_fold_t(r), reader_t(r), it->prefix,
                        it->prefix_len, it->seek, it->seek_len, it->reverse);
        it->ovl_have = ovl_cursor_next(&it->oc, &it->ovl_head);
        it->merge = it->ovl_have;
    }
    if (it->merge)
        return merge_next(it, k, kn, v, vn);
    MDB_val key, val;
    int rc = db_step(it, &key, &val);
    if (rc == MDB_NOTFOUND) {
        it->finished = 1;
        return ERR_NOTFOUND;
    }
    if (rc)
        return ERR_IO;
    *k = key.mv_data;
    *kn = key.mv_size;
    *v = val.mv_data;
    *vn = val.mv_size;
    return 0;
}

static int lmdb_iter_next(store_iter *base, store_version *v)
{
    lmdb_iter *it = (lmdb_iter *)base;
    switch (it->kind) {
    case IT_HISTORY:
        return history_next(it, v);
    case IT_LIST:
        return list_next(it, v);
    case IT_SCAN:
        break;
    }
    return ERR_INVALID;
}

/* ---- consistency check ---------------------------------------------------------------- */

typedef struct check_ctx {
    lmdb_store *s;
    MDB_txn *txn;
    char *msg;
    size_t cap;
    uint64_t groups;   /* (tenant, type) groups plus tenants seen */
    uint64_t contents; /* versions with content (not deletes) */
} check_ctx;

static int check_fail(check_ctx *c, const char *what, const codec_key *k)
{
    if (k)
        snprintf(c->msg, c->cap, "%s: tenant %u %.*s/%.*s t %llu", what, (unsigned)k->tenant,
                 (int)k->type_len, k->type ? k->type : "", (int)k->id_len, k->id ? k->id : "",
                 (unsigned long long)k->t);
    else
        snprintf(c->msg, c->cap, "%s", what);
    return ERR_INTERNAL;
}

/* Compare the tallies of one (tenant, type) -- or of a tenant when type_len is 0 -- with
 * its Counts entry. */
static int check_counts(check_ctx *c, uint32_t tenant, const char *type, size_t type_len,
                        uint64_t current, uint64_t versions)
{
    uint8_t kb[CODEC_KEY_MAX];
    int n = codec_counts_key(kb, tenant, type, type_len);
    MDB_val key = {(size_t)n, kb}, val;
    uint64_t cur = 0, ver = 0;
    if (n < 0 || mdb_get(c->txn, c->s->db_counts, &key, &val) ||
        codec_counts_val_decode(val.mv_data, val.mv_size, &cur, &ver) || cur != current ||
        ver != versions) {
        snprintf(c->msg, c->cap,
                 "Counts of tenant %u %.*s: stored %llu current / %llu versions, indices say "
                 "%llu / %llu",
                 (unsigned)tenant, type_len ? (int)type_len : 11, type_len ? type : "(all types)",
                 (unsigned long long)cur, (unsigned long long)ver, (unsigned long long)current,
                 (unsigned long long)versions);
        return ERR_INTERNAL;
    }
    c->groups++;
    return 0;
}

static int check_entry(check_ctx *c, const codec_key *k, const MDB_val *val)
{
    codec_vrec vr;
    if (codec_vrec_decode(val->mv_data, val->mv_size, &vr))
        return check_fail(c, "bad version record", k);
    static const codec_layout others[2] = {CODEC_TYPE_ASOF, CODEC_SYSTEM_ASOF};
    MDB_dbi dbis[2] = {c->s->db_type, c->s->db_sys};
    for (int i = 0; i < 2; i++) {
        uint8_t kb[CODEC_KEY_MAX];
        int n = codec_asof_encode(others[i], kb, k, 4);
        MDB_val key = {(size_t)n, kb}, v2;
        if (n < 0 || mdb_get(c->txn, dbis[i], &key, &v2) || v2.mv_size != val->mv_size ||
            memcmp(v2.mv_data, val->mv_data, val->mv_size))
            return check_fail(c,
                              i ? "SystemAsOf entry missing or different"
                                : "TypeAsOf entry missing or different",
                              k);
    }
    uint8_t tk[CODEC_TXLOG_KEY_LEN];
    codec_txlog_key(tk, k->tenant, k->t);
    MDB_val key = {sizeof tk, tk}, tv;
    if (mdb_get(c->txn, c->s->db_txlog, &key, &tv))
        return check_fail(c, "no TxLog entry for the version's t", k);
    if (vr.op == STORE_OP_DELETE)
        return 0;
    c->contents++;
    uint8_t ck[CODEC_CONTENT_KEY_LEN];
    codec_content_key(ck, k->tenant, k->t, vr.hash);
    key.mv_size = sizeof ck;
    key.mv_data = ck;
    MDB_val cv;
    if (mdb_get(c->txn, c->s->db_content, &key, &cv) || cv.mv_size < 1 ||
        ((const uint8_t *)cv.mv_data)[0] != CODEC_ENC_PLAIN)
        return check_fail(c, "content missing", k);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)cv.mv_data + 1, cv.mv_size - 1, md);
    if (memcmp(md, vr.hash, STORE_HASH_LEN))
        return check_fail(c, "content does not match its hash", k);
    return 0;
}

static int check_all(check_ctx *c)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(c->txn, c->s->db_res, &cur))
        return check_fail(c, "cannot open a cursor", NULL);
    int rc = 0;
    MDB_val key, val;
    /* the group being tallied, and the resource being walked */
    uint32_t g_tenant = 0;
    char g_type[STORE_TYPE_MAX + 1] = "";
    size_t g_type_len = 0;
    uint64_t g_cur = 0, g_ver = 0, t_cur = 0, t_ver = 0;
    int have_group = 0;
    char r_id[STORE_ID_MAX + 1] = "";
    uint64_t prev_t = 0, prev_vid = 0, entries = 0;
    int mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    for (; mrc == 0; mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        codec_key k;
        if (codec_asof_decode(CODEC_RESOURCE_ASOF, key.mv_data, key.mv_size, &k)) {
            rc = check_fail(c, "undecodable ResourceAsOf key", NULL);
            goto done;
        }
        entries++;
        int new_tenant = !have_group || k.tenant != g_tenant;
        int new_group =
            new_tenant || k.type_len != g_type_len || memcmp(k.type, g_type, g_type_len);
        int new_resource = new_group || strcmp(k.id, r_id);
        if (new_group && have_group) {
            if ((rc = check_counts(c, g_tenant, g_type, g_type_len, g_cur, g_ver)))
                goto done;
            g_cur = g_ver = 0;
        }
        if (new_tenant && have_group) {
            if ((rc = check_counts(c, g_tenant, NULL, 0, t_cur, t_ver)))
                goto done;
            t_cur = t_ver = 0;
        }
        if (new_group) {
            have_group = 1;
            g_tenant = k.tenant;
            memcpy(g_type, k.type, k.type_len);
            g_type[k.type_len] = 0;
            g_type_len = k.type_len;
        }
        uint64_t vid = codec_get_u64(val.mv_data);
        if (new_resource) {
            memcpy(r_id, k.id, k.id_len + 1);
            if (val.mv_size == CODEC_VREC_LEN &&
                ((const uint8_t *)val.mv_data)[32] != STORE_OP_DELETE) {
                g_cur++;
                t_cur++;
            }
        } else if (!(k.t < prev_t && vid < prev_vid)) {
            rc = check_fail(c, "versions do not grow with t", &k);
            goto done;
        }
        prev_t = k.t;
        prev_vid = vid;
        g_ver++;
        t_ver++;
        if ((rc = check_entry(c, &k, &val)))
            goto done;
    }
    if (mrc != MDB_NOTFOUND) {
        rc = check_fail(c, "cursor failure", NULL);
        goto done;
    }
    if (have_group && ((rc = check_counts(c, g_tenant, g_type, g_type_len, g_cur, g_ver)) ||
                       (rc = check_counts(c, g_tenant, NULL, 0, t_cur, t_ver))))
        goto done;
    MDB_stat st_type, st_sys, st_counts, st_content;
    if (mdb_stat(c->txn, c->s->db_type, &st_type) || mdb_stat(c->txn, c->s->db_sys, &st_sys) ||
        mdb_stat(c->txn, c->s->db_counts, &st_counts) ||
        mdb_stat(c->txn, c->s->db_content, &st_content)) {
        rc = check_fail(c, "mdb_stat failed", NULL);
        goto done;
    }
    if (st_type.ms_entries != entries || st_sys.ms_entries != entries) {
        snprintf(c->msg, c->cap,
                 "index sizes differ: ResourceAsOf %llu, TypeAsOf %llu, SystemAsOf %llu",
                 (unsigned long long)entries, (unsigned long long)st_type.ms_entries,
                 (unsigned long long)st_sys.ms_entries);
        rc = ERR_INTERNAL;
        goto done;
    }
    /* Every version's content was found above, so more entries than versions with
     * content means content without a version. (Fewer would be versions of one commit
     * sharing bytes: allowed by the layout, never made by REST, whose bytes carry id.) */
    if (st_content.ms_entries > c->contents) {
        snprintf(c->msg, c->cap, "Content holds %llu entries for %llu stored versions",
                 (unsigned long long)st_content.ms_entries, (unsigned long long)c->contents);
        rc = ERR_INTERNAL;
        goto done;
    }
    if (st_counts.ms_entries != c->groups) {
        snprintf(c->msg, c->cap, "Counts holds %llu entries for %llu types and tenants seen",
                 (unsigned long long)st_counts.ms_entries, (unsigned long long)c->groups);
        rc = ERR_INTERNAL;
    }
done:
    mdb_cursor_close(cur);
    return rc;
}

/* SearchCount against the SearchParam B-tree (the counts describe the B-tree; readers
 * add the overlay): every counted prefix's count is its number of keys, and there is no
 * count without keys. */
static int check_key_counts(check_ctx *c)
{
    lmdb_store *s = c->s;
    if (!s->counting)
        return 0;
    MDB_cursor *cur;
    if (mdb_cursor_open(c->txn, s->db_extra[STORE_DB_SEARCH_PARAM], &cur))
        return check_fail(c, "cannot open a cursor", NULL);
    uint8_t pre[STORE_EXTRA_KEY_MAX];
    size_t pn = 0;
    uint64_t run = 0, groups = 0;
    MDB_val key, val;
    int rc = 0, mrc;
    for (mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);; mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        size_t cp = mrc == 0 && key.mv_size <= sizeof pre ? count_prefix_len(s, key.mv_data, key.mv_size) : 0;
        if (pn && (mrc || cp != pn || memcmp(pre, key.mv_data, cp))) {
            MDB_val ck = {pn, pre}, cv;
            if (mdb_get(c->txn, s->db_keycount, &ck, &cv) || cv.mv_size != 8 ||
                codec_get_u64(cv.mv_data) != run) {
                snprintf(c->msg, c->cap, "SearchCount: a prefix with %llu keys is counted %s",
                         (unsigned long long)run, "otherwise");
                rc = ERR_INTERNAL;
                break;
            }
            groups++;
            pn = 0;
        }
        if (mrc)
            break;
        if (cp && !pn) {
            memcpy(pre, key.mv_data, cp);
            pn = cp;
            run = 0;
        }
        if (cp)
            run++;
    }
    mdb_cursor_close(cur);
    MDB_stat st;
    if (!rc && !mdb_stat(c->txn, s->db_keycount, &st) && st.ms_entries != groups) {
        snprintf(c->msg, c->cap, "SearchCount: %llu counts for %llu counted prefixes",
                 (unsigned long long)st.ms_entries, (unsigned long long)groups);
        rc = ERR_INTERNAL;
    }
    return rc;
}

static int lmdb_check(store *base, char *msg, size_t cap)
{
    lmdb_store *s = (lmdb_store *)base;
    check_ctx c = {.s = s, .msg = msg, .cap = cap};
    gate_enter(s);
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &c.txn);
    if (rc) {
        gate_leave(s);
        snprintf(msg, cap, "read transaction: %s", mdb_strerror(rc));
        return ERR_IO;
    }
    rc = check_all(&c);
    if (!rc)
        rc = check_key_counts(&c);
    mdb_txn_abort(c.txn);
    gate_leave(s);
    return rc;
}

const struct store_ops store_lmdb_ops = {
    .name = "lmdb",
    .open = lmdb_open,
    .close = lmdb_close,
    .submit = lmdb_submit,
    .read_begin = lmdb_read_begin,
    .read_end = lmdb_read_end,
    .reader_t = lmdb_reader_t,
    .read = lmdb_read,
    .history = lmdb_history,
    .list = lmdb_list,
    .iter_next = lmdb_iter_next,
    .iter_close = lmdb_iter_close,
    .count = lmdb_count,
    .get = lmdb_get,
    .scan = lmdb_scan,
    .scan_next = lmdb_scan_next,
    .scan_rev = lmdb_scan_rev,
    .scan_rev_before = lmdb_scan_rev_before,
    .key_count = lmdb_key_count,
    .stats = lmdb_stats,
    .check = lmdb_check,
};
