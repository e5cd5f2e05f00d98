/*
 * import.c -- `hortus import FILE|DIR...`: the offline bulk load of ndjson and Bundle
 * files into a data directory no server is running on (docs/IMPORT.md).
 *
 *   file --line--> parse (strict FHIR JSON) --> resourceType, id --> validate
 *        --> rest_write_plan (the write pipeline: bytes, versions, index entries)
 *        --> IMPORT_BATCH resources per store request, with the file's cursor
 *
 * Every resource takes the write path a PUT takes (an id from the file is kept; a
 * line without one gets a new id), so the index, the history and `hortus check` hold
 * exactly as after the same writes over HTTP. A bad line is reported (file, line,
 * resource, reason; --errors writes them as ndjson OperationOutcomes) and never
 * stops the load; nothing of it is written. Each commit carries the file's cursor
 * (Aux tenant | 'm' | path -> byte offset, line, counts), so an interrupted import
 * started again continues after the last committed line, and says so.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/tenant.h"
#include "base/err.h"
#include "base/num.h"
#include "base/time.h"
#include "base/zfile.h"
#include "cli.h"
#include "fhir/validate.h"
#include "fhirpath/spcache.h"
#include "index/index.h"
#include "index/params.h"
#include "profile/profile.h"
#include "rest/write.h"
#include "store/store.h"

#define IMPORT_BATCH 4000          /* resources per commit (1,000: 7,832/s -> 6,254/s at 3,000 patients) */
#define IMPORT_MAX_LINE (64u << 20) /* bytes of one ndjson line (a resource) */
#define IMPORT_SHOW_ERRORS 50      /* errors listed in the summary (all go to --errors) */
#define IMPORT_MAX_THREADS 16      /* planning threads (--threads) */
#define IMPORT_DAMAGED 1           /* import_ndjson/json: the file's data is damaged (not an error code) */
#define IMPORT_PEND_SLOTS 16384    /* hash slots of the committing batch's ids (> 2 x batch) */

struct plan_job;

typedef struct importer {
    store *st;
    rest_services svc;
    arena *a;        /* the batch's: ba[gen] */
    arena *ba[2];    /* two generations (flush) */
    arena *wa[2][IMPORT_MAX_THREADS]; /* the planning threads' of each generation */
    int gen;
    unsigned nthreads;
    size_t batch; /* resources per commit: IMPORT_BATCH, or HORTUS_IMPORT_BATCH (tests) */
    struct plan_job *job;
    /* the batch submitted last, committing while the next one is read */
    store_req req;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int busy, pend_rc;
    size_t pend_n;
    double t_wait, t_plan, t_load;
    /* the resources of the batch committing: a batch naming none of them (and no
     * SearchParameter) is planned while it commits */
    const char *pend_type[IMPORT_BATCH], *pend_id[IMPORT_BATCH];
    uint16_t pend_slot[IMPORT_PEND_SLOTS]; /* index + 1 into pend_*, 0 empty */
    uint16_t batch_slot[IMPORT_PEND_SLOTS]; /* the same for the ids of w[] */
    int ends_batch;  /* the last resource added is a definition: flush after it */
    int pend_params; /* seconds waiting for commits, planning (the rest: reading) */
    FILE *errors;    /* --errors, or NULL */
    const char *file;
    /* the batch */
    rest_write *w[IMPORT_BATCH];
    uint64_t line_of[IMPORT_BATCH];
    size_t n;
    /* the file's cursor: bytes and lines read; what the next commit records */
    uint64_t offset, line, loaded, failed;
    uint64_t line_start; /* ndjson: the offset where the line being added starts */
    /* totals */
    uint64_t all_loaded, all_failed, bytes_done, bytes_total;
    uint64_t dangling;      /* references of the load to resources that do not exist */
    size_t dangling_shown;
    uint64_t all_warned;    /* warnings of loaded lines (profiles not held ...) */
    size_t warn_shown;
    uint64_t shown;
    uint64_t bulk_from; /* resources numbered after this t get their keys at the end */
    uint32_t tenant;    /* --tenant: its number (0: the default tenant) */
    double t0, last_show;
    int tty;
} importer;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One OperationOutcome line of --errors. */
static void write_outcome(importer *im, oo_severity sev, oo_code code, const char *diagnostics)
{
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, 0);
    oo_write_one(&w, sev, code, diagnostics, NULL);
    buf_putc(&b, '\n');
    fwrite(b.data, 1, b.len, im->errors);
    buf_free(&b);
}

static void report(importer *im, uint64_t line, const char *type, const char *id,
                   const char *why)
{
    im->failed++;
    im->all_failed++;
    if (im->shown < IMPORT_SHOW_ERRORS) {
        fprintf(stderr, "%s%s:%llu: %s%s%s%s%s\n", im->tty ? "\r\033[K" : "", im->file,
                (unsigned long long)line, type ? type : "", id ? "/" : "", id ? id : "",
                type ? ": " : "", why);
        im->shown++;
    }
    if (im->errors) {
        buf d = BUF_INIT;
        buf_printf(&d, "%s:%llu: %s%s%s%s%s", im->file, (unsigned long long)line,
                   type ? type : "", id ? "/" : "", id ? id : "", type ? ": " : "", why);
        write_outcome(im, OO_ERROR, OO_INVALID, buf_cstr(&d));
        buf_free(&d);
    }
}

/* A warning of a line that was loaded (a profile it claims that the directory does not
 * hold, a rule of a profile not checked): listed (the first IMPORT_SHOW_ERRORS), and in
 * --errors with severity warning; the line is loaded. */
static void warn(importer *im, uint64_t line, const char *type, const char *id,
                 const oo_issue *is)
{
    char d[800];
    snprintf(d, sizeof d, "%s:%llu: %s/%s: warning: %.500s%s%.200s", im->file,
             (unsigned long long)line, type, id ? id : "(new)",
             is->diagnostics ? is->diagnostics : "", is->expression ? " at " : "",
             is->expression ? is->expression : "");
    im->all_warned++;
    if (im->warn_shown < IMPORT_SHOW_ERRORS) {
        fprintf(stderr, "%s%s\n", im->tty ? "\r\033[K" : "", d);
        im->warn_shown++;
    }
    if (im->errors)
        write_outcome(im, OO_WARNING, is->code, d);
}

/* A reference of the load to a resource that is neither stored nor in the files: listed
 * (the first IMPORT_SHOW_ERRORS), and a warning in --errors; the load is not refused. */
static void dangling(void *ctx, const char *type, const char *id, const char *to_type,
                     const char *to_id)
{
    importer *im = ctx;
    char d[600];
    snprintf(d, sizeof d, "%s/%s refers to %s/%s, which is neither stored nor in the files",
             type, id, to_type, to_id);
    if (im->dangling_shown < IMPORT_SHOW_ERRORS) {
        fprintf(stderr, "hortus import: %s\n", d);
        im->dangling_shown++;
    }
    if (im->errors)
        write_outcome(im, OO_WARNING, OO_NOT_FOUND, d);
}

static void progress(importer *im, int last)
{
    double t = now_s();
    if (!last && t - im->last_show < (im->tty ? 0.25 : 5.0))
        return;
    im->last_show = t;
    double el = t - im->t0 > 1e-6 ? t - im->t0 : 1e-6;
    double rate = (double)im->all_loaded / el;
    double bps = (double)im->bytes_done / el;
    double eta = bps > 0 && im->bytes_total > im->bytes_done
                     ? (double)(im->bytes_total - im->bytes_done) / bps
                     : 0;
    fprintf(stderr, "%s%llu resources, %.0f/s, %.1f of %.1f MiB, %llu errors%s%.0f s left%s",
            im->tty ? "\r\033[K" : "hortus import: ", (unsigned long long)im->all_loaded, rate,
            (double)im->bytes_done / 1048576.0, (double)im->bytes_total / 1048576.0,
            (unsigned long long)im->all_failed, ", ", eta, im->tty && !last ? "" : "\n");
}

/* Aux key of a file's cursor: tenant | 'm' | path. */
static size_t cursor_key(uint8_t *k, uint32_t tenant, const char *path)
{
    size_t n = strlen(path);
    if (n > STORE_EXTRA_KEY_MAX - 5)
        n = STORE_EXTRA_KEY_MAX - 5; /* long paths: their first bytes */
    k[0] = (uint8_t)(tenant >> 24), k[1] = (uint8_t)(tenant >> 16);
    k[2] = (uint8_t)(tenant >> 8), k[3] = (uint8_t)tenant;
    k[4] = 'm';
    memcpy(k + 5, path, n);
    return 5 + n;
}

/* ---- planning in threads, committing behind -----------------------------------------
 *
 * A batch is planned (rest_write_plan: the stored bytes, their hash, the index entries)
 * by im->nthreads threads, each with its own snapshot and arena, then submitted without
 * waiting: the next batch is read and parsed while the writer commits this one. Its
 * plan waits for that commit (it may update a resource of it). Two generations of
 * arenas alternate: a batch's bytes stay untouched until its commit is done. */

typedef struct plan_job {
    importer *im;
    rest_ctx ctx; /* snap: each thread its own */
    int64_t lu;
    atomic_size_t next;
    int prc[IMPORT_BATCH];
    int rc;
} plan_job;

typedef struct plan_thread {
    plan_job *job;
    arena *a;
    int rc;
} plan_thread;

static void *plan_worker(void *arg)
{
    plan_thread *pt = arg;
    plan_job *j = pt->job;
    importer *im = j->im;
    store_reader *rd;
    if ((pt->rc = store_read_begin(im->st, &rd)))
        return NULL;
    rest_ctx ctx = j->ctx;
    ctx.snap = rd;
    size_t i;
    while ((i = atomic_fetch_add(&j->next, 1)) < im->n) {
        rest_write *w = im->w[i];
        w->op_index = (uint16_t)i; /* unique in the request; a refused one leaves a gap */
        int prc = rest_write_plan(&ctx, rd, pt->a, j->lu, w);
        if (prc == 0 && w->op.bytes) {
            store_hash(w->op.bytes, w->op.len, w->op.hash);
            w->op.have_hash = 1;
        }
        j->prc[i] = prc;
    }
    store_read_end(rd);
    return NULL;
}

static void commit_done(void *ctx, int rc, uint64_t t)
{
    (void)t;
    importer *im = ctx;
    pthread_mutex_lock(&im->mu);
    im->busy = 0;
    im->pend_rc = rc;
    pthread_cond_signal(&im->cv);
    pthread_mutex_unlock(&im->mu);
}

/* Wait for the batch submitted last, and count it. */
static int wait_pending(importer *im)
{
    double t0 = now_s();
    pthread_mutex_lock(&im->mu);
    while (im->busy)
        pthread_cond_wait(&im->cv, &im->mu);
    int rc = im->pend_rc;
    im->pend_rc = 0;
    size_t n = im->pend_n;
    im->pend_n = 0;
    pthread_mutex_unlock(&im->mu);
    im->t_wait += now_s() - t0;
    if (rc)
        return rc;
    im->loaded += n;
    im->all_loaded += n;
    if (n)
        progress(im, 0);
    return 0;
}

static uint32_t pend_hash(const char *type, const char *id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)type; *p; p++)
        h = (h ^ *p) * 16777619u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

/* The slot of type/id among the ids of the batch being read: the one holding it, or
 * the empty one where it goes. */
static uint32_t batch_find(const importer *im, const char *type, const char *id)
{
    uint32_t j = pend_hash(type, id) & (IMPORT_PEND_SLOTS - 1);
    for (; im->batch_slot[j]; j = (j + 1) & (IMPORT_PEND_SLOTS - 1)) {
        const rest_write *w = im->w[im->batch_slot[j] - 1u];
        if (w->type->name == type && !strcmp(w->id, id))
            break;
    }
    return j;
}

/* Remember the resources of the batch just submitted (im->w[0..n)). */
static void pend_note(importer *im)
{
    memset(im->pend_slot, 0, sizeof im->pend_slot);
    im->pend_params = 0;
    size_t k = 0;
    for (size_t i = 0; i < im->n; i++) {
        const rest_write *w = im->w[i];
        if (!w)
            continue;
        if (!strcmp(w->type->name, "SearchParameter") ||
            !strcmp(w->type->name, "StructureDefinition"))
            im->pend_params = 1; /* new parameters or profiles: the next plan waits */
        im->pend_type[k] = w->type->name;
        im->pend_id[k] = w->id;
        uint32_t j = pend_hash(w->type->name, w->id) & (IMPORT_PEND_SLOTS - 1);
        while (im->pend_slot[j])
            j = (j + 1) & (IMPORT_PEND_SLOTS - 1);
        im->pend_slot[j] = (uint16_t)(k + 1);
        k++;
    }
}

/* Does the batch being planned name a resource of the one committing? */
static int pend_overlaps(const importer *im)
{
    if (im->pend_params)
        return 1;
    for (size_t i = 0; i < im->n; i++) {
        const rest_write *w = im->w[i];
        if (!w->id)
            continue; /* a new id */
        for (uint32_t j = pend_hash(w->type->name, w->id) & (IMPORT_PEND_SLOTS - 1);
             im->pend_slot[j]; j = (j + 1) & (IMPORT_PEND_SLOTS - 1)) {
            size_t k = im->pend_slot[j] - 1u;
            if (im->pend_type[k] == w->type->name && !strcmp(im->pend_id[k], w->id))
                return 1;
        }
    }
    return 0;
}

/* Plan the batch and submit it with the cursor after it. */
static int flush(importer *im, int done)
{
    int rc = 0;
    im->ends_batch = 0;
    /* planned from a snapshot without the batch committing: right unless it changes
     * what this one reads */
    if (im->busy && pend_overlaps(im) && (rc = wait_pending(im)))
        return rc;
    int g = im->gen;
    double t0 = now_s();
    store_reader *rd;
    if ((rc = store_read_begin(im->st, &rd)))
        return rc;
    plan_job *j = im->job;
    j->im = im;
    j->ctx = (rest_ctx){.svc = &im->svc, .tenant = im->tenant, .base_url = ""};
    if ((rc = idx_registry_get(im->svc.params, rd, im->tenant, &j->ctx.spc))) {
        store_read_end(rd);
        return rc;
    }
    store_read_end(rd); /* the threads take their own snapshots */
    j->lu = ftime_now_us() / 1000 * 1000;
    atomic_store(&j->next, 0);
    plan_thread pt[IMPORT_MAX_THREADS];
    pthread_t th[IMPORT_MAX_THREADS];
    unsigned nt = im->nthreads, started = 1;
    if (nt > 1 && im->n < 64)
        nt = 1; /* not worth a thread */
    for (unsigned k = 0; k < nt; k++)
        pt[k] = (plan_thread){.job = j, .a = im->wa[g][k]};
    for (unsigned k = 1; k < nt; k++, started++)
        if (pthread_create(&th[k], NULL, plan_worker, &pt[k]))
            break;
    plan_worker(&pt[0]);
    for (unsigned k = 1; k < started; k++)
        pthread_join(th[k], NULL);
    im->t_plan += now_s() - t0;
    for (unsigned k = 0; k < started && !rc; k++)
        rc = pt[k].rc;
    if (rc || (rc = wait_pending(im))) /* its cursor comes before this one's */
        return rc;
    arena *a = im->a;
    store_op *ops = arena_alloc(a, sizeof *ops * (im->n ? im->n : 1));
    if (!ops)
        return ERR_NOMEM;
    size_t nops = 0, nx = 1, nc = 0; /* nx: the cursor's extra, added below */
    for (size_t i = 0; i < im->n && !rc; i++) {
        rest_write *w = im->w[i];
        int prc = j->prc[i];
        for (size_t k = 0; prc != REST_PLAN_REFUSED && w->notes && oo_get(w->notes, k); k++)
            warn(im, im->line_of[i], w->type->name, w->id, oo_get(w->notes, k));
        if (prc == REST_PLAN_REFUSED) {
            const oo_issue *is = w->why.outcome ? rest_first_error(w->why.outcome) : NULL;
            char why[700];
            snprintf(why, sizeof why, "%s%s%.400s%s%.200s", w->why.msg ? w->why.msg : "refused",
                     is && is->diagnostics ? ": " : "", is && is->diagnostics ? is->diagnostics : "",
                     is && is->expression ? " at " : "", is && is->expression ? is->expression : "");
            report(im, im->line_of[i], w->type->name, w->id, why);
            im->w[i] = NULL;
            continue;
        }
        if (prc < 0) {
            rc = prc;
            break;
        }
        ops[nops++] = w->op;
        nx += w->nextra;
        nc += w->ncond;
    }
    /* one request of every planned write: the structs are copied, their keys and
     * values stay where the plans put them (this generation's arenas) */
    store_extra *x = rc ? NULL : arena_alloc(a, sizeof *x * nx);
    store_cond *cs = rc || !nc ? NULL : arena_alloc(a, sizeof *cs * nc);
    if (!rc && (!x || (nc && !cs)))
        rc = ERR_NOMEM;
    nx = nc = 0;
    for (size_t i = 0; i < im->n && !rc; i++) {
        const rest_write *w = im->w[i];
        if (!w)
            continue;
        memcpy(x + nx, w->extras, sizeof *x * w->nextra);
        nx += w->nextra;
        if (w->ncond)
            memcpy(cs + nc, w->conds, sizeof *cs * w->ncond);
        nc += w->ncond;
    }
    /* the cursor commits with the resources it passed */
    uint8_t *ck = rc ? NULL : arena_alloc(a, STORE_EXTRA_KEY_MAX);
    uint8_t *cv = ck ? arena_alloc(a, 8 * 5) : NULL;
    if (!rc && !cv)
        rc = ERR_NOMEM;
    if (rc)
        return rc;
    size_t ckn = cursor_key(ck, im->tenant, im->file);
    idx_put_u64(cv, im->offset);
    idx_put_u64(cv + 8, im->line);
    idx_put_u64(cv + 16, im->loaded + nops);
    idx_put_u64(cv + 24, im->failed);
    idx_put_u64(cv + 32, done);
    x[nx++] = (store_extra){.db = STORE_DB_AUX, .key = ck, .key_len = ckn, .val = cv,
                            .val_len = 8 * 5};
    nx = idx_bulk_defer(im->bulk_from, x, nx);
    rest_extras_sort(x, nx);
    im->req = (store_req){.tenant = im->tenant, .ops = nops ? ops : NULL, .nops = nops, .extras = x,
                          .nextra = nx, .conds = cs, .ncond = nc};
    im->busy = 1;
    im->pend_n = nops;
    if ((rc = store_submit(im->st, &im->req, commit_done, im))) {
        im->busy = 0;
        im->pend_n = 0;
        return rc;
    }
    pend_note(im);
    memset(im->batch_slot, 0, sizeof im->batch_slot);
    /* the other generation's commit is done (waited for above): its memory is free */
    im->gen = g ^ 1;
    im->a = im->ba[im->gen];
    arena_reset(im->a);
    for (unsigned k = 0; k < im->nthreads; k++)
        arena_reset(im->wa[im->gen][k]);
    im->n = 0;
    return 0;
}

/* One resource (text in the batch's arena), line `line` of the file. */
static int add_resource(importer *im, char *text, size_t len, uint64_t line)
{
    json_val *root;
    json_error je;
    memset(&je, 0, sizeof je);
    if (json_parse(im->a, text, len, JSON_FHIR, &root, &je)) {
        char why[200];
        snprintf(why, sizeof why, "not valid JSON: %s", je.msg);
        report(im, line, NULL, NULL, why);
        return 0;
    }
    const char *rt = root->type == JSON_OBJECT ? json_get_str(root, "resourceType") : NULL;
    const fhir_type *t = rt ? fhir_resource_type(rt, strlen(rt)) : NULL;
    if (!t) {
        report(im, line, NULL, NULL,
               rt ? "resourceType is not a resource type of R4" : "not a resource");
        return 0;
    }
    const json_val *idv = json_get(root, "id");
    const char *id = idv && idv->type == JSON_STRING ? idv->u.s : NULL;
    if (idv && (!id || !rest_id_valid(id, strlen(id)))) {
        report(im, line, t->name, NULL, "the id is not a valid FHIR id");
        return 0;
    }
    oo o;
    oo_init(&o, im->a);
    int rc = rest_validate(im->a, root, t->name, im->svc.policy.validate, &o);
    if (rc == ERR_NOMEM)
        return rc;
    if (rc) {
        const oo_issue *is = rest_first_error(&o);
        char why[400];
        snprintf(why, sizeof why, "%s%s%s%s", is && is->diagnostics ? is->diagnostics : "invalid",
                 is && is->expression ? " (at " : "", is && is->expression ? is->expression : "",
                 is && is->expression ? ")" : "");
        report(im, line, t->name, id, why);
        return 0;
    }
    /* the same id twice in one commit is two versions: the first commits alone */
    uint32_t slot = id ? batch_find(im, t->name, id) : UINT32_MAX;
    if (slot != UINT32_MAX && im->batch_slot[slot]) {
        /* keep this one across the flush: copy it out of the batch's arena */
        char *keep = malloc(len + 1);
        if (!keep)
            return ERR_NOMEM;
        memcpy(keep, text, len);
        keep[len] = 0;
        /* the cursor of this commit stands before the line, which is not in it */
        uint64_t off = im->offset, ln = im->line;
        im->offset = im->line_start;
        im->line = line - 1;
        rc = flush(im, 0);
        im->offset = off;
        im->line = ln;
        if (!rc) {
            char *again = arena_strndup(im->a, keep, len);
            rc = again ? add_resource(im, again, len, line) : ERR_NOMEM;
        }
        free(keep);
        return rc;
    }
    rest_write *w = arena_zalloc(im->a, sizeof *w);
    if (!w)
        return ERR_NOMEM;
    w->type = t;
    w->res = root;
    w->kind = id ? RW_UPDATE : RW_CREATE;
    w->id = id;
    if (id)
        im->batch_slot[slot] = (uint16_t)(im->n + 1);
    im->line_of[im->n] = line;
    im->w[im->n++] = w;
    /* a definition the lines after it depend on (a search parameter indexes them, a
     * profile checks them) ends its batch, and the next batch waits for its commit */
    if (!strcmp(t->name, "SearchParameter") || !strcmp(t->name, "StructureDefinition"))
        im->ends_batch = 1;
    return 0;
}

/* The cursor of path in the store: 1 when it has one (*offset, *line, *loaded,
 * *failed, *done filled). */
static int read_cursor(store *st, uint32_t tenant, const char *path, uint64_t *v)
{
    store_reader *rd;
    if (store_read_begin(st, &rd))
        return 0;
    uint8_t k[STORE_EXTRA_KEY_MAX];
    size_t kn = cursor_key(k, tenant, path);
    const void *val;
    size_t vn;
    int have = store_get(rd, STORE_DB_AUX, k, kn, &val, &vn) == 0 && vn == 40;
    for (int i = 0; have && i < 5; i++)
        v[i] = idx_get_u64((const uint8_t *)val + 8 * i);
    store_read_end(rd);
    return have;
}

/* The dangling-reference check of the load, run beside its index build. */
typedef struct dangling_job {
    importer *im;
    pthread_t th;
    int rc;
    double t; /* when it ended */
} dangling_job;

static void *dangling_main(void *arg)
{
    dangling_job *j = arg;
    j->rc = idx_dangling(j->im->st, j->im->tenant, j->im->bulk_from, dangling, j->im, &j->im->dangling);
    j->t = now_s();
    return NULL;
}

/* The resources of a .json file: a Bundle's entries, or one resource. */
static int import_json(importer *im, zfile *z)
{
    /* the whole document (a compressed one has no size to ask for: read until the end) */
    buf t = {.limit = (size_t)IMPORT_MAX_LINE * 4};
    char blk[65536];
    size_t got;
    while ((got = fread(blk, 1, sizeof blk, zf_stream(z))) > 0 && !t.err)
        buf_put(&t, blk, got);
    if (zf_failed(z)) {
        buf_free(&t);
        report(im, 1, NULL, NULL, zf_failed(z));
        return IMPORT_DAMAGED;
    }
    if (t.err == ERR_TOOBIG) {
        buf_free(&t);
        report(im, 1, NULL, NULL, "the file is too large for one JSON document: use ndjson");
        return 0;
    }
    arena *doc = t.err ? NULL : arena_new(t.len + 4096);
    char *text = doc ? arena_alloc(doc, t.len + 1) : NULL;
    if (!text) {
        buf_free(&t);
        arena_free(doc);
        return ERR_NOMEM;
    }
    size_t len = t.len;
    memcpy(text, t.data, len);
    buf_free(&t);
    json_val *root;
    json_error je;
    memset(&je, 0, sizeof je);
    int rc = 0;
    if (json_parse(doc, text, len, 0, &root, &je) || root->type != JSON_OBJECT) {
        report(im, 1, NULL, NULL, "not a JSON object (a Bundle or a resource)");
    } else if (!json_get_str(root, "resourceType") ||
               strcmp(json_get_str(root, "resourceType"), "Bundle")) {
        if (im->line < 1) {
            buf b = BUF_INIT;
            json_write(&b, root, 0);
            char *one = b.err ? NULL : arena_strndup(im->a, b.data, b.len);
            rc = one ? add_resource(im, one, b.len, 1) : ERR_NOMEM;
            buf_free(&b);
            im->line = 1;
        }
    } else {
        const json_val *es = json_get(root, "entry");
        for (uint32_t i = 0; es && es->type == JSON_ARRAY && i < es->n && !rc; i++) {
            if (i < im->line)
                continue; /* committed by the run that was interrupted */
            const json_val *res = es->u.items[i].type == JSON_OBJECT
                                      ? json_get(&es->u.items[i], "resource")
                                      : NULL;
            im->line = i + 1;
            im->line_start = 0; /* a .json file resumes by entry, from its start */
            if (!res) {
                report(im, i + 1, NULL, NULL, "Bundle entry without a resource");
                continue;
            }
            buf b = BUF_INIT;
            json_write(&b, res, 0);
            char *one = b.err ? NULL : arena_strndup(im->a, b.data, b.len);
            rc = one ? add_resource(im, one, b.len, i + 1) : ERR_NOMEM;
            buf_free(&b);
            if (!rc && (im->n == im->batch || im->ends_batch))
                rc = flush(im, 0);
        }
    }
    im->offset = len;
    im->bytes_done += zf_in_bytes(z);
    arena_free(doc);
    return rc;
}

static int import_ndjson(importer *im, zfile *z)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;
    FILE *f = zf_stream(z);
    /* progress counts the bytes of the file, compressed or not */
    uint64_t base = im->bytes_done - zf_in_bytes(z), seen = zf_in_bytes(z);
    while (!rc && (got = getline(&line, &cap, f)) >= 0) {
        if (zf_failed(z) && line[got - 1] != '\n')
            break; /* the piece of a line before damaged data */
        im->line_start = im->offset;
        im->line++;
        im->offset += (uint64_t)got;
        if ((im->line & 255) == 0 || zf_in_bytes(z) - seen > (1u << 20)) {
            seen = zf_in_bytes(z);
            im->bytes_done = base + seen;
        }
        size_t n = (size_t)got;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        size_t lead = 0;
        while (lead < n && (line[lead] == ' ' || line[lead] == '\t'))
            lead++;
        if (lead == n)
            continue; /* a blank line */
        if (n > IMPORT_MAX_LINE) {
            report(im, im->line, NULL, NULL, "the line is longer than IMPORT_MAX_LINE");
            continue;
        }
        char *text = arena_strndup(im->a, line + lead, n - lead);
        rc = text ? add_resource(im, text, n - lead, im->line) : ERR_NOMEM;
        if (!rc && (im->n == im->batch || im->ends_batch))
            rc = flush(im, 0);
    }
    free(line);
    im->bytes_done = base + zf_in_bytes(z);
    if (!rc && zf_failed(z)) {
        /* corrupt or truncated: the lines before stay, the file is not marked done */
        char why[200];
        snprintf(why, sizeof why, "%s: the lines before it are loaded, the rest of the file "
                                  "is not", zf_failed(z));
        report(im, im->line + 1, NULL, NULL, why);
        rc = IMPORT_DAMAGED;
    }
    return rc;
}

static int import_file(importer *im, const char *path)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        snprintf(real, sizeof real, "%s", path);
    im->file = real;
    im->offset = im->line = im->loaded = im->failed = 0;
    const char *why;
    zfile *z = zf_open(path, &why);
    if (!z && why) { /* not the data its name says: listed, and the other files go on */
        report(im, 1, NULL, NULL, why);
        return 0;
    }
    if (!z) {
        fprintf(stderr, "hortus import: cannot open %s: %s\n", path, strerror(errno));
        return ERR_IO;
    }
    uint64_t cur[5];
    struct stat sb;
    if (stat(path, &sb))
        sb.st_size = 0;
    if (read_cursor(im->st, im->tenant, real, cur)) {
        if (cur[4]) {
            fprintf(stderr, "hortus import: %s was imported before (%llu resources, %llu "
                            "errors): skipped\n",
                    path, (unsigned long long)cur[2], (unsigned long long)cur[3]);
            im->bytes_done += (uint64_t)sb.st_size;
            zf_close(z);
            return 0;
        }
        fprintf(stderr, "hortus import: resuming %s after line %llu (%llu resources already "
                        "loaded)\n",
                path, (unsigned long long)cur[1], (unsigned long long)cur[2]);
        im->offset = cur[0];
        im->line = cur[1];
        im->loaded = cur[2];
        im->failed = cur[3];
    }
    size_t pl = zf_base_len(path);
    int json = pl > 5 && !strncmp(path + pl - 5, ".json", 5);
    int rc = 0;
    uint64_t vl;
    if (zf_kind_of(path) != ZF_PLAIN && zf_verify(path, &why, &vl)) {
        /* damaged deflate data can decode to plausible lines: nothing of such a file */
        char msg[240];
        snprintf(msg, sizeof msg, "%s (found after line %llu): nothing of the file is loaded",
                 why, (unsigned long long)vl);
        report(im, im->line + 1, NULL, NULL, msg);
        im->bytes_done += (uint64_t)sb.st_size;
        zf_close(z);
        return 0;
    }
    if (!json && zf_skip(z, im->offset)) {
        fprintf(stderr, "hortus import: %s: cannot resume after line %llu: the file is shorter "
                        "than when it was interrupted (%s)\n",
                path, (unsigned long long)im->line, zf_failed(z) ? zf_failed(z) : "it ended");
        rc = ERR_INVALID;
    }
    if (!rc)
        im->bytes_done += zf_in_bytes(z);
    if (!rc)
        rc = json ? import_json(im, z) : import_ndjson(im, z);
    if (rc == IMPORT_DAMAGED) /* what was read before the damage, the file not done */
        rc = flush(im, 0);
    else if (!rc)
        rc = flush(im, 1); /* the rest, and the file marked done */
    int wrc = wait_pending(im); /* its counts are this file's */
    if (!rc)
        rc = wrc;
    zf_close(z);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* .ndjson and .json files, plain or compressed (.gz, .zst) */
static int importable(const char *name)
{
    size_t n = zf_base_len(name);
    return (n > 7 && !strncmp(name + n - 7, ".ndjson", 7)) ||
           (n > 5 && !strncmp(name + n - 5, ".json", 5));
}

typedef struct flist {
    char **v;
    size_t n, cap;
    uint64_t bytes;
} flist;

/* Append dir/name (dir NULL: name alone) and count its bytes. 0 or ERR_NOMEM. */
static int flist_add(flist *l, const char *dir, const char *name)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        char **g = realloc(l->v, sizeof *g * nc);
        if (!g)
            return ERR_NOMEM;
        l->v = g;
        l->cap = nc;
    }
    size_t n = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
    char *p = malloc(n);
    if (!p)
        return ERR_NOMEM;
    snprintf(p, n, "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
    struct stat sb;
    if (!stat(p, &sb))
        l->bytes += (uint64_t)sb.st_size;
    l->v[l->n++] = p;
    return 0;
}

static void import_usage(FILE *f)
{
    fprintf(f, "usage: hortus import [--data DIR | --store lmdb:DIR] [--tenant NAME] [--errors FILE] "
               "[--validate full|structure|off] [--threads N] FILE|DIR...\n"
               "  ndjson files (one resource per line, any types) and .json files (a Bundle "
               "or one resource),\n"
               "  plain or compressed (.gz, .zst); a directory: its *.ndjson and *.json files "
               "(also .gz, .zst),\n"
               "  in name order. Options may come before, between or after the files; "
               "after --\n  every argument is a file.\n"
               "  --errors FILE  every refused line as an ndjson OperationOutcome (and each "
               "dangling reference\n"
               "                 as a warning)\n"
               "  --validate L   full (default: structure, bindings, invariants), structure,\n"
               "                 or off (JSON, resourceType and id only)\n"
               "  --threads N    threads that plan the resources (default: the CPUs)\n"
               "  --tenant NAME  load into tenant NAME (hortus tenant add; docs/TENANTS.md)\n");
}

int import_main(int argc, char **argv)
{
    const char *data = "./hortus-data", *store_url = NULL, *errors = NULL, *vlevel = "full";
    const char *threads = NULL, *tenant = NULL;
    /* options before, between or after the files (`--` ends them: a file may then
     * begin with '-'); every argument that is not an option's is a file */
    int nargs = 0, opts = 1;
    char **fargs = calloc((size_t)argc, sizeof *fargs);
    if (!fargs) {
        fprintf(stderr, "hortus import: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (opts && !strcmp(argv[i], "--")) {
            opts = 0;
            continue;
        }
        if (opts && (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))) {
            import_usage(stdout);
            free(fargs);
            return 0;
        }
        if (opts && (!strcmp(argv[i], "--data") || !strcmp(argv[i], "--store") ||
                     !strcmp(argv[i], "--errors") || !strcmp(argv[i], "--validate") ||
                     !strcmp(argv[i], "--threads") || !strcmp(argv[i], "--tenant"))) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hortus import: %s needs a value\n", argv[i]);
                free(fargs);
                return 2;
            }
            const char **to = !strcmp(argv[i], "--data")     ? &data
                              : !strcmp(argv[i], "--store")  ? &store_url
                              : !strcmp(argv[i], "--errors") ? &errors
                              : !strcmp(argv[i], "--threads") ? &threads
                              : !strcmp(argv[i], "--tenant") ? &tenant
                                                             : &vlevel;
            *to = argv[++i];
            continue;
        }
        if (opts && argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "hortus import: unknown option '%s'\n", argv[i]);
            import_usage(stderr);
            free(fargs);
            return 2;
        }
        fargs[nargs++] = argv[i];
    }
    if (!nargs) {
        import_usage(stderr);
        free(fargs);
        return 2;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned nthreads = ncpu < 1 ? 1 : ncpu > IMPORT_MAX_THREADS ? IMPORT_MAX_THREADS : (unsigned)ncpu;
    if (threads) {
        char *end;
        long v = strtol(threads, &end, 10);
        if (*end || v < 1 || v > IMPORT_MAX_THREADS) {
            fprintf(stderr, "hortus import: bad --threads '%s' (1 .. %d)\n", threads,
                    IMPORT_MAX_THREADS);
            free(fargs);
            return 2;
        }
        nthreads = (unsigned)v;
    }
    rest_validation level;
    if (rest_validation_parse(vlevel, &level)) {
        fprintf(stderr, "hortus import: bad --validate '%s' (full, structure or off)\n", vlevel);
        free(fargs);
        return 2;
    }
    /* the files, checked before anything is opened */
    flist fl = {0};
    int bad = 0;
    for (int i = 0; i < nargs && !bad; i++) {
        struct stat sb;
        if (stat(fargs[i], &sb)) {
            fprintf(stderr, "hortus import: %s: %s\n", fargs[i], strerror(errno));
            bad = 1;
            break;
        }
        if (!S_ISDIR(sb.st_mode)) {
            bad = flist_add(&fl, NULL, fargs[i]) != 0;
            continue;
        }
        size_t from = fl.n;
        DIR *d = opendir(fargs[i]);
        struct dirent *de;
        while (d && !bad && (de = readdir(d)))
            if (importable(de->d_name))
                bad = flist_add(&fl, fargs[i], de->d_name) != 0;
        if (d)
            closedir(d);
        qsort(fl.v + from, fl.n - from, sizeof *fl.v, cmp_str);
    }
    free(fargs);
    char **files = fl.v;
    size_t nf = fl.n;
    uint64_t total = fl.bytes;
    char spec[4096];
    snprintf(spec, sizeof spec, store_url ? "%s" : "lmdb:%s", store_url ? store_url : data);
    importer im = {.tty = isatty(2), .bytes_total = total};
    /* --tenant NAME: a tenant registered in the data directory (auth/tenant.h) */
    char tdir[4096];
    if (!bad && tenant) {
        tenant_entry *te = calloc(TENANT_MAX, sizeof *te);
        size_t nte = 0;
        char tmsg[400];
        int found = 0;
        if (!te) {
            fprintf(stderr, "hortus import: out of memory\n");
            bad = 1;
        } else if (tenant_dir_of(spec, tdir, sizeof tdir)) {
            fprintf(stderr, "hortus import: --tenant needs an LMDB data directory\n");
            bad = 1;
        } else if (tenant_load(tdir, te, &nte, tmsg, sizeof tmsg)) {
            fprintf(stderr, "hortus import: tenants: %s\n", tmsg);
            bad = 1;
        }
        for (size_t i = 0; !bad && i < nte && !found; i++)
            if (!strcmp(te[i].name, tenant))
                im.tenant = te[i].num, found = 1;
        if (!bad && !found) {
            fprintf(stderr, "hortus import: unknown tenant '%s' (register it first: hortus "
                            "tenant add %s %s)\n", tenant, tenant, tdir);
            bad = 1;
        }
        free(te);
    }
    fp_sp_cache *spc = NULL;
    idx_registry *reg = NULL;
    fp_error fe;
    int rc = bad ? ERR_INVALID : 0;
    if (!rc && fp_sp_cache_build(&spc, &fe)) {
        fprintf(stderr, "hortus import: search parameters do not compile: %s\n", fe.msg);
        rc = ERR_INTERNAL;
    }
    store_opts so = {.count_kinds = IDX_COUNT_KINDS, .count_kind_at = IDX_COUNT_KIND_AT,
                     .count_suffix = IDX_RN_LEN};
    /* HORTUS_FAULT_COMMIT_DELAY_MS: a slow disk, for the tests of an interrupted import;
     * HORTUS_IMPORT_BATCH: resources per commit (small ones for those tests) */
    uint64_t fdv = 0, ebv = IMPORT_BATCH;
    if (!rc && num_env_u64("HORTUS_FAULT_COMMIT_DELAY_MS", 0, 600000, &fdv) < 0) {
        fprintf(stderr, "hortus import: bad HORTUS_FAULT_COMMIT_DELAY_MS '%s' (0 .. 600000)\n",
                getenv("HORTUS_FAULT_COMMIT_DELAY_MS"));
        rc = ERR_INVALID;
    }
    if (!rc && num_env_u64("HORTUS_IMPORT_BATCH", 1, IMPORT_BATCH, &ebv) < 0) {
        fprintf(stderr, "hortus import: bad HORTUS_IMPORT_BATCH '%s' (1 .. %d)\n",
                getenv("HORTUS_IMPORT_BATCH"), IMPORT_BATCH);
        rc = ERR_INVALID;
    }
    so.fault_commit_delay_ms = (unsigned)fdv;
    if (!rc && (rc = store_open(spec, &so, &im.st)))
        fprintf(stderr,
                "hortus import: cannot open %s: %s (is a server running on it? the import "
                "needs the data directory to itself)\n",
                spec, err_str(rc));
    if (!rc && (rc = idx_ensure(spc, im.st, im.tenant, stderr)))
        fprintf(stderr, "hortus import: the search index of %s: %s\n", spec, err_str(rc));
    if (!rc && (rc = idx_bulk_begin(im.st, im.tenant, store_url ? NULL : data, stderr, &im.bulk_from)))
        fprintf(stderr, "hortus import: %s: %s\n", spec, err_str(rc));
    if (!rc)
        rc = idx_registry_new(spc, &reg);
    if (!rc && errors && !(im.errors = fopen(errors, "w"))) {
        fprintf(stderr, "hortus import: cannot write %s: %s\n", errors, strerror(errno));
        rc = ERR_IO;
    }
    im.nthreads = nthreads;
    im.batch = (size_t)ebv;
    pthread_mutex_init(&im.mu, NULL);
    pthread_cond_init(&im.cv, NULL);
    for (int g = 0; g < 2 && !rc; g++) {
        if (!(im.ba[g] = arena_new(8u << 20)))
            rc = ERR_NOMEM;
        for (unsigned k = 0; k < im.nthreads && !rc; k++)
            if (!(im.wa[g][k] = arena_new(4u << 20)))
                rc = ERR_NOMEM;
    }
    if (!rc && !(im.job = calloc(1, sizeof *im.job)))
        rc = ERR_NOMEM;
    im.a = im.ba[0];
    prof_registry *profiles = NULL;
    if (!rc)
        rc = prof_registry_new(&profiles);
    im.svc = (rest_services){.store = im.st, .spc = spc, .params = reg, .profiles = profiles,
                             .policy = {.validate = level}};
    im.t0 = im.last_show = now_s();
    for (size_t i = 0; i < nf && !rc; i++)
        rc = import_file(&im, files[i]);
    if (im.st) {
        int wrc = wait_pending(&im);
        if (!rc)
            rc = wrc;
    }
    im.t_load = now_s() - im.t0;
    /* the search index of everything loaded, sorted and appended; meanwhile, in a thread
     * of its own (it only reads ResourceParam, which the build does not write), which
     * references point nowhere: they are kept as written, in any order, so only now is
     * that known */
    double td = now_s();
    dangling_job dj = {.im = &im};
    int dthread = !rc && pthread_create(&dj.th, NULL, dangling_main, &dj) == 0;
    if (!rc && !dthread)
        dangling_main(&dj);
    if (!rc && (rc = idx_bulk_finish(im.st, im.tenant, store_url ? NULL : data, stderr)))
        fprintf(stderr, "hortus import: writing the search index: %s\n", err_str(rc));
    double tj = now_s();
    if (dthread)
        pthread_join(dj.th, NULL);
    td = dj.t - td; /* when the check ended, from the start of the build */
    tj = now_s() - tj; /* how long the check outlasted the build */
    if (dj.rc)
        fprintf(stderr, "hortus import: checking the references: %s\n", err_str(dj.rc));
    if (!rc)
        rc = dj.rc;
    if (!bad && im.st) {
        progress(&im, 1);
        double el = now_s() - im.t0;
        fprintf(stderr, "hortus import: %s: %llu resources loaded in %.1f s (%.0f/s), %llu "
                        "refused%s\n",
                rc ? "stopped" : "done", (unsigned long long)im.all_loaded, el,
                el > 0 ? (double)im.all_loaded / el : 0.0, (unsigned long long)im.all_failed,
                im.all_failed > im.shown ? " (the first ones are listed above)" : "");
        if (im.all_warned)
            fprintf(stderr, "hortus import: warnings: %llu (the lines were loaded)%s\n",
                    (unsigned long long)im.all_warned,
                    im.all_warned > im.warn_shown ? " (the first ones are listed above)" : "");
        if (!rc && im.dangling)
            fprintf(stderr, "hortus import: dangling references: %llu (to resources neither "
                            "stored nor in the files), loaded as they are%s\n",
                    (unsigned long long)im.dangling,
                    im.dangling > im.dangling_shown ? " (the first ones are listed above)" : "");
        if (rc)
            fprintf(stderr, "hortus import: %s (start it again to continue)\n", err_str(rc));
        else
            fprintf(stderr, "hortus import: %.1f s reading and validating, %.1f s planning in "
                            "%u threads, %.1f s waiting for commits, %.1f s writing the index "
                            "(checking the references: %.1f s, alongside)\n",
                    im.t_load - im.t_plan - im.t_wait, im.t_plan, im.nthreads, im.t_wait,
                    el - im.t_load - tj, td);
    }
    if (im.errors)
        fclose(im.errors);
    for (int g = 0; g < 2; g++) {
        arena_free(im.ba[g]);
        for (unsigned k = 0; k < IMPORT_MAX_THREADS; k++)
            arena_free(im.wa[g][k]);
    }
    free(im.job);
    if (im.st)
        store_close(im.st);
    idx_registry_free(reg);
    prof_registry_free(profiles);
    fp_sp_cache_free(spc);
    for (size_t i = 0; i < nf; i++)
        free(files[i]);
    free(files);
    if (bad)
        return 2;
    return rc || im.all_failed ? 1 : 0;
}
