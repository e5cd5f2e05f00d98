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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/time.h"
#include "cli.h"
#include "fhir/validate.h"
#include "fhirpath/spcache.h"
#include "index/index.h"
#include "index/params.h"
#include "rest/write.h"
#include "store/store.h"

#define IMPORT_BATCH 1000          /* resources per commit */
#define IMPORT_MAX_LINE (64u << 20) /* bytes of one ndjson line (a resource) */
#define IMPORT_SHOW_ERRORS 50      /* errors listed in the summary (all go to --errors) */

typedef struct importer {
    store *st;
    rest_services svc;
    arena *a;        /* the batch's */
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
    uint64_t shown;
    uint64_t bulk_from; /* resources numbered after this t get their keys at the end */
    double t0, last_show;
    int tty;
} importer;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
        buf b = BUF_INIT;
        jw w;
        jw_init(&w, &b, 0);
        jw_obj(&w);
        jw_key(&w, "resourceType");
        jw_str(&w, "OperationOutcome");
        jw_key(&w, "issue");
        jw_arr(&w);
        jw_obj(&w);
        jw_key(&w, "severity");
        jw_str(&w, "error");
        jw_key(&w, "code");
        jw_str(&w, "invalid");
        jw_key(&w, "diagnostics");
        buf d = BUF_INIT;
        buf_printf(&d, "%s:%llu: %s%s%s%s%s", im->file, (unsigned long long)line,
                   type ? type : "", id ? "/" : "", id ? id : "", type ? ": " : "", why);
        jw_str(&w, buf_cstr(&d));
        buf_free(&d);
        jw_end(&w);
        jw_end(&w);
        jw_end(&w);
        buf_putc(&b, '\n');
        fwrite(b.data, 1, b.len, im->errors);
        buf_free(&b);
    }
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
static size_t cursor_key(uint8_t *k, const char *path)
{
    size_t n = strlen(path);
    if (n > STORE_EXTRA_KEY_MAX - 5)
        n = STORE_EXTRA_KEY_MAX - 5; /* long paths: their first bytes */
    memset(k, 0, 4);
    k[4] = 'm';
    memcpy(k + 5, path, n);
    return 5 + n;
}

/* Plan and commit the batch with the cursor after it. */
static int flush(importer *im, int done)
{
    store_reader *rd;
    int rc = store_read_begin(im->st, &rd);
    if (rc)
        return rc;
    rest_ctx ctx = {.svc = &im->svc, .tenant = 0, .base_url = "", .snap = rd};
    if ((rc = idx_registry_get(im->svc.params, rd, 0, &ctx.spc))) {
        store_read_end(rd);
        return rc;
    }
    int64_t lu = ftime_now_us() / 1000 * 1000;
    store_op *ops = arena_alloc(im->a, sizeof *ops * (im->n ? im->n : 1));
    size_t nops = 0, nx = 1, nc = 0; /* nx: the cursor's extra, added below */
    if (!ops) {
        store_read_end(rd);
        return ERR_NOMEM;
    }
    for (size_t i = 0; i < im->n && !rc; i++) {
        rest_write *w = im->w[i];
        w->op_index = (uint16_t)nops;
        int prc = rest_write_plan(&ctx, rd, im->a, lu, w);
        if (prc == REST_PLAN_REFUSED) {
            report(im, im->line_of[i], w->type->name, w->id, w->why.msg ? w->why.msg : "refused");
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
     * values stay where the plans put them (this batch's arena) */
    store_extra *x = rc ? NULL : arena_alloc(im->a, sizeof *x * nx);
    store_cond *cs = rc || !nc ? NULL : arena_alloc(im->a, sizeof *cs * nc);
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
    store_read_end(rd);
    if (rc)
        return rc;
    /* the cursor commits with the resources it passed */
    uint8_t ck[STORE_EXTRA_KEY_MAX], cv[8 * 5];
    size_t ckn = cursor_key(ck, im->file);
    idx_put_u64(cv, im->offset);
    idx_put_u64(cv + 8, im->line);
    idx_put_u64(cv + 16, im->loaded + nops);
    idx_put_u64(cv + 24, im->failed);
    idx_put_u64(cv + 32, done);
    x[nx++] = (store_extra){.db = STORE_DB_AUX, .key = ck, .key_len = ckn, .val = cv,
                            .val_len = sizeof cv};
    nx = idx_bulk_defer(im->bulk_from, x, nx);
    rest_extras_sort(x, nx);
    store_req req = {.tenant = 0, .ops = nops ? ops : NULL, .nops = nops, .extras = x,
                     .nextra = nx, .conds = cs, .ncond = nc};
    rc = store_write(im->st, &req, NULL);
    if (rc)
        return rc;
    im->loaded += nops;
    im->all_loaded += nops;
    im->n = 0;
    arena_reset(im->a);
    progress(im, 0);
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
    for (size_t i = 0; id && i < im->n; i++)
        if (im->w[i]->type == t && im->w[i]->id && !strcmp(im->w[i]->id, id)) {
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
    im->line_of[im->n] = line;
    im->w[im->n++] = w;
    return 0;
}

/* The cursor of path in the store: 1 when it has one (*offset, *line, *loaded,
 * *failed, *done filled). */
static int read_cursor(store *st, const char *path, uint64_t *v)
{
    store_reader *rd;
    if (store_read_begin(st, &rd))
        return 0;
    uint8_t k[STORE_EXTRA_KEY_MAX];
    size_t kn = cursor_key(k, path);
    const void *val;
    size_t vn;
    int have = store_get(rd, STORE_DB_AUX, k, kn, &val, &vn) == 0 && vn == 40;
    for (int i = 0; have && i < 5; i++)
        v[i] = idx_get_u64((const uint8_t *)val + 8 * i);
    store_read_end(rd);
    return have;
}

/* The resources of a .json file: a Bundle's entries, or one resource. */
static int import_json(importer *im, FILE *f)
{
    struct stat sb;
    if (fstat(fileno(f), &sb) || sb.st_size > (off_t)IMPORT_MAX_LINE * 4) {
        report(im, 1, NULL, NULL, "the file is too large for one JSON document: use ndjson");
        return 0;
    }
    arena *doc = arena_new((size_t)sb.st_size + 4096);
    char *text = doc ? arena_alloc(doc, (size_t)sb.st_size + 1) : NULL;
    if (!text) {
        arena_free(doc);
        return ERR_NOMEM;
    }
    size_t len = fread(text, 1, (size_t)sb.st_size, f);
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
            if (!rc && im->n == IMPORT_BATCH)
                rc = flush(im, 0);
        }
    }
    im->offset = (uint64_t)sb.st_size;
    im->bytes_done += (uint64_t)sb.st_size;
    arena_free(doc);
    return rc;
}

static int import_ndjson(importer *im, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;
    while (!rc && (got = getline(&line, &cap, f)) >= 0) {
        im->line_start = im->offset;
        im->line++;
        im->offset += (uint64_t)got;
        im->bytes_done += (uint64_t)got;
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
        if (!rc && im->n == IMPORT_BATCH)
            rc = flush(im, 0);
    }
    free(line);
    return rc;
}

static int import_file(importer *im, const char *path)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        snprintf(real, sizeof real, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "hortus import: cannot open %s: %s\n", path, strerror(errno));
        return ERR_IO;
    }
    im->file = real;
    im->offset = im->line = im->loaded = im->failed = 0;
    uint64_t cur[5];
    struct stat sb;
    fstat(fileno(f), &sb);
    if (read_cursor(im->st, real, cur)) {
        if (cur[4]) {
            fprintf(stderr, "hortus import: %s was imported before (%llu resources, %llu "
                            "errors): skipped\n",
                    path, (unsigned long long)cur[2], (unsigned long long)cur[3]);
            im->bytes_done += (uint64_t)sb.st_size;
            fclose(f);
            return 0;
        }
        fprintf(stderr, "hortus import: resuming %s after line %llu (%llu resources already "
                        "loaded)\n",
                path, (unsigned long long)cur[1], (unsigned long long)cur[2]);
        im->offset = cur[0];
        im->line = cur[1];
        im->loaded = cur[2];
        im->failed = cur[3];
        im->bytes_done += cur[0];
    }
    size_t pl = strlen(path);
    int json = pl > 5 && !strcmp(path + pl - 5, ".json");
    int rc = 0;
    if (!json && fseeko(f, (off_t)im->offset, SEEK_SET))
        rc = ERR_IO;
    if (!rc)
        rc = json ? import_json(im, f) : import_ndjson(im, f);
    if (!rc)
        rc = flush(im, 1); /* the rest, and the file marked done */
    fclose(f);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int importable(const char *name)
{
    size_t n = strlen(name);
    return (n > 7 && !strcmp(name + n - 7, ".ndjson")) || (n > 5 && !strcmp(name + n - 5, ".json"));
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
    fprintf(f, "usage: hortus import [--data DIR | --store lmdb:DIR] [--errors FILE] "
               "[--validate full|structure|off] FILE|DIR...\n"
               "  ndjson files (one resource per line, any types) and .json files (a Bundle "
               "or one resource);\n"
               "  a directory: its *.ndjson and *.json files, in name order.\n"
               "  --errors FILE  every refused line as an ndjson OperationOutcome\n"
               "  --validate L   full (default: structure, bindings, invariants), structure,\n"
               "                 or off (JSON, resourceType and id only)\n");
}

int import_main(int argc, char **argv)
{
    const char *data = "./hortus-data", *store_url = NULL, *errors = NULL, *vlevel = "full";
    int first = argc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            import_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--data") || !strcmp(argv[i], "--store") ||
            !strcmp(argv[i], "--errors") || !strcmp(argv[i], "--validate")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hortus import: %s needs a value\n", argv[i]);
                return 2;
            }
            const char **to = !strcmp(argv[i], "--data")     ? &data
                              : !strcmp(argv[i], "--store")  ? &store_url
                              : !strcmp(argv[i], "--errors") ? &errors
                                                             : &vlevel;
            *to = argv[++i];
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "hortus import: unknown option '%s'\n", argv[i]);
            import_usage(stderr);
            return 2;
        }
        first = i;
        break;
    }
    if (first >= argc) {
        import_usage(stderr);
        return 2;
    }
    rest_validation level;
    if (rest_validation_parse(vlevel, &level)) {
        fprintf(stderr, "hortus import: bad --validate '%s' (full, structure or off)\n", vlevel);
        return 2;
    }
    /* the files, checked before anything is opened */
    flist fl = {0};
    int bad = 0;
    for (int i = first; i < argc && !bad; i++) {
        struct stat sb;
        size_t al = strlen(argv[i]);
        if ((al > 3 && !strcmp(argv[i] + al - 3, ".gz")) ||
            (al > 4 && !strcmp(argv[i] + al - 4, ".zst"))) {
            fprintf(stderr, "hortus import: %s: compressed files are not supported yet "
                            "(decompress them first)\n",
                    argv[i]);
            bad = 1;
            break;
        }
        if (stat(argv[i], &sb)) {
            fprintf(stderr, "hortus import: %s: %s\n", argv[i], strerror(errno));
            bad = 1;
            break;
        }
        if (!S_ISDIR(sb.st_mode)) {
            bad = flist_add(&fl, NULL, argv[i]) != 0;
            continue;
        }
        size_t from = fl.n;
        DIR *d = opendir(argv[i]);
        struct dirent *de;
        while (d && !bad && (de = readdir(d)))
            if (importable(de->d_name))
                bad = flist_add(&fl, argv[i], de->d_name) != 0;
        if (d)
            closedir(d);
        qsort(fl.v + from, fl.n - from, sizeof *fl.v, cmp_str);
    }
    char **files = fl.v;
    size_t nf = fl.n;
    uint64_t total = fl.bytes;
    char spec[4096];
    snprintf(spec, sizeof spec, store_url ? "%s" : "lmdb:%s", store_url ? store_url : data);
    importer im = {.tty = isatty(2), .bytes_total = total};
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
    /* HORTUS_FAULT_COMMIT_DELAY_MS: a slow disk, for the tests of an interrupted import */
    const char *fd = getenv("HORTUS_FAULT_COMMIT_DELAY_MS");
    so.fault_commit_delay_ms = fd && *fd ? (unsigned)strtoul(fd, NULL, 10) : 0;
    if (!rc && (rc = store_open(spec, &so, &im.st)))
        fprintf(stderr,
                "hortus import: cannot open %s: %s (is a server running on it? the import "
                "needs the data directory to itself)\n",
                spec, err_str(rc));
    if (!rc && (rc = idx_ensure(spc, im.st, 0, stderr)))
        fprintf(stderr, "hortus import: the search index of %s: %s\n", spec, err_str(rc));
    if (!rc && (rc = idx_bulk_begin(im.st, 0, store_url ? NULL : data, stderr, &im.bulk_from)))
        fprintf(stderr, "hortus import: %s: %s\n", spec, err_str(rc));
    if (!rc)
        rc = idx_registry_new(spc, &reg);
    if (!rc && errors && !(im.errors = fopen(errors, "w"))) {
        fprintf(stderr, "hortus import: cannot write %s: %s\n", errors, strerror(errno));
        rc = ERR_IO;
    }
    if (!rc && !(im.a = arena_new(8u << 20)))
        rc = ERR_NOMEM;
    im.svc = (rest_services){.store = im.st, .spc = spc, .params = reg,
                             .policy = {.validate = level}};
    im.t0 = im.last_show = now_s();
    for (size_t i = 0; i < nf && !rc; i++)
        rc = import_file(&im, files[i]);
    /* the search index of everything loaded, sorted and appended */
    if (!rc && (rc = idx_bulk_finish(im.st, 0, store_url ? NULL : data, stderr)))
        fprintf(stderr, "hortus import: writing the search index: %s\n", err_str(rc));
    if (!bad && im.st) {
        progress(&im, 1);
        double el = now_s() - im.t0;
        fprintf(stderr, "hortus import: %s: %llu resources loaded in %.1f s (%.0f/s), %llu "
                        "refused%s\n",
                rc ? "stopped" : "done", (unsigned long long)im.all_loaded, el,
                el > 0 ? (double)im.all_loaded / el : 0.0, (unsigned long long)im.all_failed,
                im.all_failed > im.shown ? " (the first ones are listed above)" : "");
        if (rc)
            fprintf(stderr, "hortus import: %s (start it again to continue)\n", err_str(rc));
    }
    if (im.errors)
        fclose(im.errors);
    arena_free(im.a);
    if (im.st)
        store_close(im.st);
    idx_registry_free(reg);
    fp_sp_cache_free(spc);
    for (size_t i = 0; i < nf; i++)
        free(files[i]);
    free(files);
    if (bad)
        return 2;
    return rc || im.all_failed ? 1 : 0;
}
