/*
 * reindex.c -- the background reindex of custom search parameters (reindex.h).
 *
 * State of one custom parameter (Aux tenant | 'x' | tag):
 *   absent                        queued: nothing done yet
 *   'R' | done(8) | last id       running: every resource up to `last id` is indexed
 *   'D' | done(8)                 complete
 * The thread takes the first parameter of a tenant that is not complete, runs batches
 * until it is, and sleeps when there is nothing to do (a kick wakes it).
 */
#include "index/reindex.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "index/index.h"

#define REINDEX_SCRATCH (256u << 10) /* first block of the per-resource arena: a resource fits */
#define RETRY_MAX 50 /* batches lost to concurrent writes in a row before a pause */

struct idx_reindexer {
    store *st;
    idx_registry *reg;
    char base_url[512]; /* under mu */
    int base_fixed;     /* configured: kicks do not change it */
    /* the bases of the named tenants ([base]/NAME), as their last kick gave them (under
     * mu; a tenant not kicked since the start has none: only its relative references
     * are local to a reindex until then) */
    struct {
        uint32_t tenant;
        char *base;
    } tbase[IDX_MAX_TENANTS];
    size_t ntbase;
    unsigned batch;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, kicked;
    _Atomic uint64_t resources, batches, conflicts, pending;
};

void idx_reindex_state(store_reader *rd, uint32_t tenant, const fp_sp_custom *cu, int *complete,
                       uint64_t *done)
{
    uint8_t k[IDX_REINDEX_KEY_LEN];
    size_t kn = idx_reindex_key(k, tenant, cu->tag);
    const void *v;
    size_t vn;
    *complete = 0;
    *done = 0;
    if (store_get(rd, STORE_DB_AUX, k, kn, &v, &vn) || vn < 9)
        return;
    *complete = *(const char *)v == 'D';
    *done = idx_get_u64((const uint8_t *)v + 1);
}

/* One batch of parameter `tag` of tenant, committed while the next is prepared. */
typedef struct rx_job {
    idx_sink s;
    store_req req;
    uint8_t st[9 + STORE_ID_MAX]; /* the state it writes */
    size_t stn, n;
    int end;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
} rx_job;

/* Prepare the next batch of parameter `tag` of tenant into j (its memory from a): after
 * the state in the snapshot, or after the one `prior` writes when prior is still being
 * committed (the batch then holds only if prior does). 0: prepared, 1: the parameter is
 * complete (or gone), or an error. */
static int prepare(idx_reindexer *x, arena *a, arena *scratch, uint32_t tenant, uint32_t tag,
                   const rx_job *prior, rx_job *j)
{
    store_reader *rd;
    int rc = store_read_begin(x->st, &rd);
    if (rc)
        return rc;
    const fp_sp_cache *spc;
    const fp_sp_custom *cs, *cu = NULL;
    if ((rc = idx_registry_get(x->reg, rd, tenant, &spc))) {
        store_read_end(rd);
        return rc;
    }
    size_t ncs = fp_sp_customs(spc, &cs);
    for (size_t i = 0; i < ncs && !cu; i++)
        if (cs[i].tag == tag)
            cu = &cs[i];
    if (!cu) { /* redefined or deleted meanwhile */
        store_read_end(rd);
        return 1;
    }
    uint8_t sk[IDX_REINDEX_KEY_LEN];
    size_t skn = idx_reindex_key(sk, tenant, tag);
    const void *sv = prior ? prior->st : NULL;
    size_t svn = prior ? prior->stn : 0;
    int have = prior || store_get(rd, STORE_DB_AUX, sk, skn, &sv, &svn) == 0;
    if (have && svn >= 1 && *(const char *)sv == 'D') {
        store_read_end(rd);
        return 1;
    }
    uint64_t done = have && svn >= 9 ? idx_get_u64((const uint8_t *)sv + 1) : 0;
    char after[STORE_ID_MAX + 1] = "";
    if (have && svn > 9 && svn - 9 <= STORE_ID_MAX) {
        memcpy(after, (const char *)sv + 9, svn - 9);
        after[svn - 9] = 0;
    }
    char base[sizeof x->base_url];
    pthread_mutex_lock(&x->mu);
    if (tenant) {
        base[0] = 0;
        for (size_t i = 0; i < x->ntbase; i++)
            if (x->tbase[i].tenant == tenant)
                snprintf(base, sizeof base, "%s", x->tbase[i].base);
    } else {
        memcpy(base, x->base_url, sizeof base);
    }
    pthread_mutex_unlock(&x->mu);
    idx_sink *sp = &j->s, s = {.a = a};
    /* the batch holds only if the state, and the parameter set, are what it read */
    store_cond sc = {.kind = STORE_COND_VALUE, .db = STORE_DB_AUX, .key = sk, .key_len = skn,
                     .val = have ? sv : NULL, .val_len = have ? svn : 0, .absent = !have};
    uint8_t gk[IDX_PARAMS_KEY_LEN], gv[8];
    store_cond gc;
    idx_params_cond(spc, tenant, gk, gv, &gc);
    if ((rc = idx_sink_cond(&s, &sc)) || (rc = idx_sink_cond(&s, &gc))) {
        store_read_end(rd);
        return rc;
    }
    store_iter *it;
    if ((rc = store_list(rd, tenant, cu->base, 0, after[0] ? after : NULL, &it))) {
        store_read_end(rd);
        return rc;
    }
    size_t n = 0;
    int end = 0;
    store_version v;
    char last[STORE_ID_MAX + 1] = "";
    while (n < x->batch) {
        if ((rc = store_iter_next(it, &v))) {
            if (rc == ERR_NOTFOUND)
                rc = 0, end = 1;
            break;
        }
        /* the resource's bytes, tree and plan in the scratch arena, reset after it: the
         * batch's arena keeps only what the commit needs (the entries and conditions) */
        arena_reset(scratch);
        char *copy = arena_strndup(scratch, v.bytes, v.len);
        json_val *root;
        if (!copy || json_parse(scratch, copy, v.len, 0, &root, NULL)) {
            rc = copy ? ERR_IO : ERR_NOMEM;
            break;
        }
        store_cond vc = {.kind = STORE_COND_VERSION, .type = v.type, .id = v.id, .vid = v.vid};
        if ((rc = idx_sink_cond(&s, &vc)))
            break;
        rc = idx_plan_param(spc, cu, rd, scratch, tenant, v.id, root, base, idx_sink_add, &s);
        if (rc == ERR_TOOBIG || rc == ERR_NOTFOUND)
            rc = 0; /* more entries than a resource may have: left out, as a write would be;
                       or no index list (never, in one snapshot): nothing to add to */
        if (rc)
            break;
        snprintf(last, sizeof last, "%s", v.id);
        n++;
    }
    store_iter_close(it);
    store_read_end(rd);
    if (rc)
        return rc;
    uint8_t *st = j->st;
    size_t ln = strlen(last);
    st[0] = end ? 'D' : 'R';
    idx_put_u64(st + 1, done + n);
    memcpy(st + 9, last, end ? 0 : ln);
    if (!end && !ln)
        memcpy(st + 9, after, ln = strlen(after));
    j->stn = 9 + (end ? 0 : ln);
    if ((rc = idx_sink_add(&s, STORE_DB_AUX, 0, sk, skn, st, j->stn, 0, 0, 0, 0)))
        return rc;
    *sp = s;
    j->req = (store_req){.tenant = tenant, .extras = sp->x, .nextra = sp->nx, .conds = sp->c,
                         .ncond = sp->nc};
    j->n = n;
    j->end = end;
    return 0;
}

static void job_done(void *ctx, int rc, uint64_t t)
{
    rx_job *j = ctx;
    (void)t;
    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    j->done = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static int job_submit(idx_reindexer *x, rx_job *j)
{
    j->done = 0;
    j->rc = 0;
    return store_submit(x->st, &j->req, job_done, j);
}

/* Wait for j's commit: its rc (the counters count it when it held). */
static int job_wait(idx_reindexer *x, rx_job *j)
{
    pthread_mutex_lock(&j->mu);
    while (!j->done)
        pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
    if (!j->rc) {
        atomic_fetch_add(&x->resources, j->n);
        atomic_fetch_add(&x->batches, 1);
    }
    return j->rc;
}

static int stopping(idx_reindexer *x)
{
    pthread_mutex_lock(&x->mu);
    int stop = x->stop;
    pthread_mutex_unlock(&x->mu);
    return stop;
}

/*
 * Parameter `tag` of tenant, batch after batch until it is complete (1), the server
 * stops (0), or a batch fails: ERR_CONFLICT (a concurrent change: run it again) or an
 * error. Each batch is prepared while the one before it commits (the writer checks
 * the new batch's condition on the state the one before writes, so when that one
 * fails, so does the new one, and both start over from the stored state).
 */
static int run_job(idx_reindexer *x, arena *const ab[2], arena *scratch, uint32_t tenant,
                   uint32_t tag)
{
    rx_job jobs[2];
    for (int i = 0; i < 2; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        pthread_mutex_init(&jobs[i].mu, NULL);
        pthread_cond_init(&jobs[i].cv, NULL);
    }
    rx_job *inflight = NULL;
    int cur = 0, rc = 0;
    while (!stopping(x)) {
        rx_job *j = &jobs[cur];
        arena_reset(ab[cur]);
        int jrc = prepare(x, ab[cur], scratch, tenant, tag, inflight, j);
        int submitted = 0;
        if (!jrc)
            submitted = (jrc = job_submit(x, j)) == 0;
        int prev = inflight ? job_wait(x, inflight) : 0;
        inflight = submitted ? j : NULL;
        cur ^= submitted;
        if (prev || jrc) { /* the one before failed (then so will j), or j: done or failed */
            rc = prev ? prev : jrc;
            break;
        }
        if (j->end)
            break; /* the last batch: its commit says */
    }
    if (inflight) {
        int irc = job_wait(x, inflight);
        if (!rc)
            rc = irc ? irc : inflight->end;
    }
    for (int i = 0; i < 2; i++) {
        pthread_mutex_destroy(&jobs[i].mu);
        pthread_cond_destroy(&jobs[i].cv);
    }
    return rc;
}

/* The first custom parameter of tenant that is not complete: 1 and *tag, or 0. */
static int next_job(idx_reindexer *x, uint32_t tenant, uint32_t *tag, uint64_t *pending)
{
    store_reader *rd;
    if (store_read_begin(x->st, &rd))
        return 0;
    const fp_sp_cache *spc;
    int found = 0;
    if (!idx_registry_get(x->reg, rd, tenant, &spc)) {
        const fp_sp_custom *cs;
        size_t ncs = fp_sp_customs(spc, &cs);
        for (size_t i = 0; i < ncs; i++)
            if (!idx_reindex_complete(rd, tenant, &cs[i])) {
                if (!found)
                    *tag = cs[i].tag;
                found = 1;
                (*pending)++;
            }
    }
    store_read_end(rd);
    return found;
}

static void *run(void *arg)
{
    idx_reindexer *x = arg;
    arena *ab[2] = {arena_new(1 << 20), arena_new(1 << 20)};
    arena *scratch = arena_new(REINDEX_SCRATCH);
    unsigned conflicts = 0;
    for (;;) {
        pthread_mutex_lock(&x->mu);
        int stop = x->stop;
        x->kicked = 0;
        pthread_mutex_unlock(&x->mu);
        if (stop || !ab[0] || !ab[1] || !scratch)
            break;
        uint32_t tenants[IDX_MAX_TENANTS];
        size_t nt = idx_registry_tenants(x->reg, tenants, IDX_MAX_TENANTS);
        uint64_t pending = 0;
        int worked = 0;
        for (size_t i = 0; i < nt; i++) {
            uint32_t tag = 0;
            if (!next_job(x, tenants[i], &tag, &pending) || worked)
                continue;
            int rc = run_job(x, ab, scratch, tenants[i], tag);
            worked = 1;
            if (rc == ERR_CONFLICT) {
                atomic_fetch_add(&x->conflicts, 1);
                if (++conflicts < RETRY_MAX)
                    continue;
                conflicts = 0;
                worked = 0; /* a pause: the resources are being written right now */
            } else if (rc < 0) {
                fprintf(stderr, "hortus: reindex: %s; retrying in a second\n", err_str(rc));
                worked = 0;
            } else {
                conflicts = 0;
            }
        }
        atomic_store(&x->pending, pending);
        if (worked)
            continue;
        for (int k = 0; k < 2 && !pending; k++) /* idle: give back what the batches grew to */
            if (ab[k] && arena_used(ab[k]) > (1u << 20)) {
                arena_free(ab[k]);
                ab[k] = arena_new(1 << 20);
            }
        pthread_mutex_lock(&x->mu);
        if (!x->stop && !x->kicked) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_sec += 1;
            pthread_cond_timedwait(&x->cv, &x->mu, &dl);
        }
        pthread_mutex_unlock(&x->mu);
    }
    arena_free(ab[0]);
    arena_free(ab[1]);
    arena_free(scratch);
    return NULL;
}

int idx_reindex_start(store *st, idx_registry *reg, const char *base_url, unsigned batch,
                      idx_reindexer **out)
{
    idx_reindexer *x = calloc(1, sizeof *x);
    if (!x)
        return ERR_NOMEM;
    x->batch = batch ? batch : IDX_REINDEX_BATCH;
    x->st = st;
    x->reg = reg;
    snprintf(x->base_url, sizeof x->base_url, "%s", base_url ? base_url : "");
    x->base_fixed = base_url && *base_url;
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    if (pthread_create(&x->th, NULL, run, x)) {
        pthread_mutex_destroy(&x->mu);
        pthread_cond_destroy(&x->cv);
        free(x);
        return ERR_NOMEM;
    }
    *out = x;
    return 0;
}

void idx_reindex_kick(idx_reindexer *x, uint32_t tenant, const char *base_url)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->mu);
    if (tenant && base_url && strlen(base_url) < sizeof x->base_url) {
        size_t i = 0;
        while (i < x->ntbase && x->tbase[i].tenant != tenant)
            i++;
        char *b = strdup(base_url);
        if (b && i < IDX_MAX_TENANTS) {
            if (i == x->ntbase)
                x->tbase[x->ntbase++].tenant = tenant;
            free(x->tbase[i].base);
            x->tbase[i].base = b;
        } else {
            free(b);
        }
    } else if (!tenant && !x->base_fixed && base_url) {
        snprintf(x->base_url, sizeof x->base_url, "%s", base_url);
    }
    x->kicked = 1;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

void idx_reindex_stop(idx_reindexer *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->mu);
    x->stop = 1;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->th, NULL);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    for (size_t i = 0; i < x->ntbase; i++)
        free(x->tbase[i].base);
    free(x);
}

void idx_reindex_metrics(idx_reindexer *x, buf *b)
{
    if (!x)
        return;
    uint32_t tenants[IDX_MAX_TENANTS], tag;
    size_t nt = idx_registry_tenants(x->reg, tenants, IDX_MAX_TENANTS);
    uint64_t pending = 0; /* as of now, not of the thread's last look */
    for (size_t i = 0; i < nt; i++)
        next_job(x, tenants[i], &tag, &pending);
    atomic_store(&x->pending, pending);
    buf_printf(b,
               "# HELP hortus_reindex_resources_total Resources the reindex of custom search "
               "parameters has indexed.\n"
               "# TYPE hortus_reindex_resources_total counter\n"
               "hortus_reindex_resources_total %llu\n"
               "# HELP hortus_reindex_batches_total Reindex commits.\n"
               "# TYPE hortus_reindex_batches_total counter\n"
               "hortus_reindex_batches_total %llu\n"
               "# HELP hortus_reindex_conflicts_total Reindex batches run again after a "
               "concurrent write.\n"
               "# TYPE hortus_reindex_conflicts_total counter\n"
               "hortus_reindex_conflicts_total %llu\n"
               "# HELP hortus_reindex_pending Custom search parameters whose reindex is not "
               "complete.\n"
               "# TYPE hortus_reindex_pending gauge\n"
               "hortus_reindex_pending %llu\n",
               (unsigned long long)atomic_load(&x->resources),
               (unsigned long long)atomic_load(&x->batches),
               (unsigned long long)atomic_load(&x->conflicts),
               (unsigned long long)atomic_load(&x->pending));
}
