/*
 * store.c -- the backend-independent half of store.h: picks a backend from the location
 * string, validates write requests and computes content hashes in the caller's thread
 * (so the single writer thread does no per-byte work), offers the blocking store_write()
 * on top of the asynchronous store_submit(), and forwards everything else through the
 * backend's struct store_ops.
 */
#include "store/store.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"
#include "store/codec.h"

const uint32_t store_commit_bucket_us[STORE_COMMIT_BUCKETS] = {
    250, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000};

int store_open(const char *location, const store_opts *opts, store **out)
{
    *out = NULL;
    if (!location || !*location)
        return ERR_INVALID;
    if (!strncmp(location, "postgres://", 11) || !strncmp(location, "postgresql://", 13))
        return ERR_UNSUPPORTED;
    const char *dir = location;
    if (!strncmp(location, "lmdb:", 5))
        dir = location + 5;
    if (!*dir)
        return ERR_INVALID;
    return store_lmdb_ops.open(dir, opts, out);
}

void store_close(store *s)
{
    if (s)
        s->ops->close(s);
}

void store_hash(const void *bytes, size_t len, uint8_t out[STORE_HASH_LEN])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(bytes, len, md);
    memcpy(out, md, STORE_HASH_LEN);
}

/* Everything that can be checked without the database. */
static int check_request(store_req *req)
{
    /* a request changes resources, or (maintenance of a later layer, such as building
     * the search index over data written before it existed) only extras */
    if (!req || (req->nops && !req->ops) || (req->nops == 0 && req->nextra == 0))
        return ERR_INVALID;
    for (size_t i = 0; i < req->nops; i++) {
        store_op *op = &req->ops[i];
        if (op->op != STORE_OP_CREATE && op->op != STORE_OP_UPDATE && op->op != STORE_OP_DELETE)
            return ERR_INVALID;
        if (!codec_valid_type(op->type, op->type_len) || !codec_valid_id(op->id, op->id_len))
            return ERR_INVALID;
        if (op->vid == 0 || op->vid == STORE_ANY)
            return ERR_INVALID;
        if (op->op != STORE_OP_DELETE && (!op->bytes || op->len == 0))
            return ERR_INVALID;
    }
    if ((req->nextra && !req->extras) || (req->ncond && !req->conds))
        return ERR_INVALID;
    for (size_t i = 0; i < req->ncond; i++) {
        const store_cond *c = &req->conds[i];
        if (c->kind == STORE_COND_VERSION) {
            if (!c->type || !c->id || !codec_valid_type(c->type, strlen(c->type)) ||
                !codec_valid_id(c->id, strlen(c->id)))
                return ERR_INVALID;
        } else if (c->kind == STORE_COND_TYPE_VERSIONS) {
            if (!c->type || !codec_valid_type(c->type, strlen(c->type)))
                return ERR_INVALID;
        } else if (c->kind != STORE_COND_VALUE || c->db == STORE_DB_SEARCH_PARAM ||
                   (unsigned)c->db >= STORE_DB_COUNT_ || !c->key || !c->key_len ||
                   c->key_len > STORE_EXTRA_KEY_MAX || (c->val_len && !c->val)) {
            return ERR_INVALID;
        }
    }
    for (size_t i = 0; i < req->nextra; i++) {
        const store_extra *x = &req->extras[i];
        if ((unsigned)x->db >= STORE_DB_COUNT_ || !x->key || x->key_len == 0 ||
            x->key_len > STORE_EXTRA_KEY_MAX)
            return ERR_INVALID;
        if (x->fill_t && (x->t_offset > x->key_len || x->key_len - x->t_offset < 8))
            return ERR_INVALID;
        if (!x->del && x->val_len && !x->val)
            return ERR_INVALID;
        if (x->fill_t_val &&
            (x->del || x->t_val_offset > x->val_len || x->val_len - x->t_val_offset < 8))
            return ERR_INVALID;
        if (x->chain && (x->db != STORE_DB_AUDIT || x->del || x->key_len < 4 ||
                         x->chain_offset > x->val_len ||
                         x->val_len - x->chain_offset < STORE_CHAIN_HEX))
            return ERR_INVALID;
    }
    /* a sorted load: its SearchParam extras are plain puts in strictly ascending order */
    const store_extra *prev = NULL;
    for (size_t i = 0; req->sorted_load && i < req->nextra; i++) {
        const store_extra *x = &req->extras[i];
        if (x->db != STORE_DB_SEARCH_PARAM)
            continue;
        if (x->del || x->fill_t || x->fill_t_val)
            return ERR_INVALID;
        if (prev) {
            size_t m = prev->key_len < x->key_len ? prev->key_len : x->key_len;
            int c = memcmp(prev->key, x->key, m);
            if (c > 0 || (c == 0 && prev->key_len >= x->key_len))
                return ERR_INVALID;
        }
        prev = x;
    }
    return 0;
}

int store_submit(store *s, store_req *req, store_done_fn done, void *ctx)
{
    if (!s || !done)
        return ERR_INVALID;
    int rc = check_request(req);
    if (rc)
        return rc;
    for (size_t i = 0; i < req->nops; i++) {
        store_op *op = &req->ops[i];
        if (op->op == STORE_OP_DELETE)
            memset(op->hash, 0, sizeof op->hash);
        else if (!op->have_hash)
            store_hash(op->bytes, op->len, op->hash);
        op->prev_vid = 0;
        op->created = 0;
    }
    req->rc = 0;
    req->t = 0;
    req->failed_op = 0;
    req->next_ = NULL;
    req->done_ = done;
    req->ctx_ = ctx;
    return s->ops->submit(s, req);
}

/* store_write waits on one of these, living on its stack. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished;
    int rc;
    uint64_t t;
} waiter;

static void waiter_done(void *ctx, int rc, uint64_t t)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->t = t;
    w->finished = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int store_write(store *s, store_req *req, uint64_t *t)
{
    waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    int rc = store_submit(s, req, waiter_done, &w);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.finished)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = w.rc;
    }
    if (t)
        *t = rc == 0 ? w.t : 0;
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}

/* ---- reads: plain forwarding ------------------------------------------------------- */

int store_read_begin(store *s, store_reader **out)
{
    return s->ops->read_begin(s, out);
}

void store_read_end(store_reader *r)
{
    if (r)
        r->ops->read_end(r);
}

uint64_t store_reader_t(const store_reader *r)
{
    return r->ops->reader_t(r);
}

static int check_type_id(const char *type, const char *id)
{
    if (!type || !codec_valid_type(type, strlen(type)))
        return ERR_INVALID;
    if (id && !codec_valid_id(id, strlen(id)))
        return ERR_INVALID;
    return 0;
}

int store_read(store_reader *r, uint32_t tenant, const char *type, const char *id, store_version *v)
{
    if (!id || check_type_id(type, id))
        return ERR_INVALID;
    return r->ops->read(r, tenant, type, id, 0, v);
}

int store_vread(store_reader *r, uint32_t tenant, const char *type, const char *id, uint64_t vid,
                store_version *v)
{
    if (!id || check_type_id(type, id))
        return ERR_INVALID;
    if (vid == 0)
        return ERR_NOTFOUND;
    return r->ops->read(r, tenant, type, id, vid, v);
}

int store_history(store_reader *r, const store_hist_opts *o, store_iter **out)
{
    *out = NULL;
    switch (o->scope) {
    case STORE_SCOPE_INSTANCE:
        if (!o->id || check_type_id(o->type, o->id))
            return ERR_INVALID;
        break;
    case STORE_SCOPE_TYPE:
        if (check_type_id(o->type, NULL))
            return ERR_INVALID;
        if (o->after_t && (!o->after_id || check_type_id(o->type, o->after_id)))
            return ERR_INVALID;
        break;
    case STORE_SCOPE_SYSTEM:
        if (o->after_t && (!o->after_id || check_type_id(o->after_type, o->after_id)))
            return ERR_INVALID;
        break;
    default:
        return ERR_INVALID;
    }
    return r->ops->history(r, o, out);
}

int store_list(store_reader *r, uint32_t tenant, const char *type, uint64_t as_of_t,
               const char *after_id, store_iter **out)
{
    *out = NULL;
    if (check_type_id(type, after_id))
        return ERR_INVALID;
    return r->ops->list(r, tenant, type, as_of_t, after_id, out);
}

int store_iter_next(store_iter *it, store_version *v)
{
    return it->ops->iter_next(it, v);
}

void store_iter_close(store_iter *it)
{
    if (it)
        it->ops->iter_close(it);
}

int store_count(store_reader *r, uint32_t tenant, const char *type, uint64_t *current,
                uint64_t *versions)
{
    if (type && check_type_id(type, NULL))
        return ERR_INVALID;
    return r->ops->count(r, tenant, type, current, versions);
}

int store_get(store_reader *r, store_db db, const void *key, size_t key_len, const void **val,
              size_t *val_len)
{
    if ((unsigned)db >= STORE_DB_COUNT_ || !key || key_len == 0 || key_len > STORE_EXTRA_KEY_MAX)
        return ERR_INVALID;
    return r->ops->get(r, db, key, key_len, val, val_len);
}

int store_scan(store_reader *r, store_db db, const void *from, size_t from_len, const void *prefix,
               size_t prefix_len, store_iter **out)
{
    *out = NULL;
    if ((unsigned)db >= STORE_DB_COUNT_ || from_len > STORE_EXTRA_KEY_MAX ||
        prefix_len > STORE_EXTRA_KEY_MAX || (from_len && !from) || (prefix_len && !prefix))
        return ERR_INVALID;
    return r->ops->scan(r, db, from, from_len, prefix, prefix_len, out);
}

int store_scan_rev(store_reader *r, store_db db, const void *prefix, size_t prefix_len,
                   store_iter **out)
{
    *out = NULL;
    if ((unsigned)db >= STORE_DB_COUNT_ || prefix_len > STORE_EXTRA_KEY_MAX ||
        (prefix_len && !prefix))
        return ERR_INVALID;
    return r->ops->scan_rev(r, db, prefix, prefix_len, out);
}

int store_scan_rev_before(store_reader *r, store_db db, const void *before, size_t before_len,
                          const void *prefix, size_t prefix_len, store_iter **out)
{
    *out = NULL;
    if ((unsigned)db >= STORE_DB_COUNT_ || db == STORE_DB_SEARCH_PARAM || !before ||
        !before_len || before_len > STORE_EXTRA_KEY_MAX || prefix_len > STORE_EXTRA_KEY_MAX ||
        (prefix_len && !prefix))
        return ERR_INVALID;
    return r->ops->scan_rev_before(r, db, before, before_len, prefix, prefix_len, out);
}

int store_key_count(store_reader *r, store_db db, const void *prefix, size_t prefix_len,
                    uint64_t *n)
{
    *n = 0;
    if (!r->ops->key_count)
        return ERR_UNSUPPORTED;
    return r->ops->key_count(r, db, prefix, prefix_len, n);
}

int store_scan_next(store_iter *it, const void **key, size_t *key_len, const void **val,
                    size_t *val_len)
{
    return it->ops->scan_next(it, key, key_len, val, val_len);
}

void store_get_stats(store *s, store_stats *st)
{
    memset(st, 0, sizeof *st);
    s->ops->stats(s, st);
}

int store_check(store *s, char *msg, size_t cap)
{
    char dummy[1];
    if (!msg || cap == 0) {
        msg = dummy;
        cap = sizeof dummy;
    }
    msg[0] = 0;
    return s->ops->check(s, msg, cap);
}

/* ---- `hortus check`: run store_check on a data directory ---------------------------- */
