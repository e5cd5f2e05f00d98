/*
 * synth_cli.c -- `hortus generate`: runs the generator of synth.c and writes
 * its resources as ndjson (one OUTDIR/<Type>.ndjson per resource type) or as
 * transaction Bundles (one OUTDIR/<patient-id>.json per patient, plus
 * OUTDIR/organizations.json with the shared Organizations and Practitioners,
 * which the patient bundles reference and which must be loaded first).
 *
 * Parallel but deterministic: patients are generated in rounds; in each round
 * worker t generates a contiguous slice of patient indices into its own
 * per-type buffers, and the main thread appends the slices to the files in
 * index order. The bytes are therefore identical for any --threads value.
 * Bundle files are independent, so workers write them directly.
 *
 *   round r:  [ worker 0: patients a..b ][ worker 1: b..c ] ... -> files, in order
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "synth/synth.h"
#include "json/json.h"

#define SYNTH_MAX_PATIENTS 10000000ULL /* BSNs are unique per seed up to 10^7 patients */
#define SYNTH_MAX_THREADS 16
#define ROUND_PER_THREAD 64 /* patients per worker per round */

enum { FMT_NDJSON, FMT_BUNDLES };

typedef struct worker {
    pthread_t th;
    synth *g;
    uint64_t seed;
    int format;
    const char *outdir;
    uint64_t from, to;     /* patient indices of this round */
    buf out[SYNTH_NTYPES]; /* ndjson lines of this round, per type */
    buf bundle;
    jw bw;
    uint64_t counts[SYNTH_NTYPES];
    int err;
    char msg[512];
} worker;

static int ndjson_sink(void *ctx, int type, const char *id, const char *json, size_t len)
{
    worker *wk = ctx;
    (void)id;
    buf_put(&wk->out[type], json, len);
    buf_putc(&wk->out[type], '\n');
    wk->counts[type]++;
    return wk->out[type].err;
}

static int bundle_sink(void *ctx, int type, const char *id, const char *json, size_t len)
{
    worker *wk = ctx;
    jw *w = &wk->bw;
    char url[128];
    int n = snprintf(url, sizeof url, "urn:uuid:%s", id);
    jw_obj(w);
    jw_key(w, "fullUrl");
    jw_strn(w, url, (size_t)n);
    jw_key(w, "resource");
    jw_raw(w, json, len);
    jw_key(w, "request");
    jw_obj(w);
    jw_key(w, "method");
    jw_str(w, "PUT");
    n = snprintf(url, sizeof url, "%s/%s", synth_type_names[type], id);
    jw_key(w, "url");
    jw_strn(w, url, (size_t)n);
    jw_end(w);
    jw_end(w);
    wk->counts[type]++;
    return wk->bundle.err;
}

static void bundle_begin(worker *wk)
{
    buf_reset(&wk->bundle);
    jw_init(&wk->bw, &wk->bundle, 0);
    jw_obj(&wk->bw);
    jw_key(&wk->bw, "resourceType");
    jw_str(&wk->bw, "Bundle");
    jw_key(&wk->bw, "type");
    jw_str(&wk->bw, "transaction");
    jw_key(&wk->bw, "entry");
    jw_arr(&wk->bw);
}

static int write_file(const char *path, const char *data, size_t len, char *msg, size_t msgn)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(msg, msgn, "cannot create %.300s: %s", path, strerror(errno));
        return ERR_IO;
    }
    size_t w = fwrite(data, 1, len, f);
    int bad = w != len;
    bad |= fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    if (bad) {
        snprintf(msg, msgn, "cannot write %.300s: %s", path, strerror(errno));
        return ERR_IO;
    }
    return 0;
}

static int bundle_finish(worker *wk, const char *name)
{
    jw_end(&wk->bw); /* entry */
    jw_end(&wk->bw); /* Bundle */
    if (wk->bundle.err) {
        snprintf(wk->msg, sizeof wk->msg, "bundle %s: %s", name, err_str(wk->bundle.err));
        return wk->bundle.err;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", wk->outdir, name);
    return write_file(path, wk->bundle.data, wk->bundle.len, wk->msg, sizeof wk->msg);
}

static void *worker_run(void *arg)
{
    worker *wk = arg;
    for (uint64_t i = wk->from; i < wk->to && !wk->err; i++) {
        if (wk->format == FMT_NDJSON) {
            wk->err = synth_patient(wk->g, i, ndjson_sink, wk);
            if (wk->err)
                snprintf(wk->msg, sizeof wk->msg, "patient %llu: %s", (unsigned long long)i,
                         err_str(wk->err));
        } else {
            char pid[37];
            synth_patient_id(wk->seed, i, pid);
            bundle_begin(wk);
            wk->err = synth_patient(wk->g, i, bundle_sink, wk);
            if (!wk->err)
                wk->err = bundle_finish(wk, pid);
            else
                snprintf(wk->msg, sizeof wk->msg, "patient %llu: %s", (unsigned long long)i,
                         err_str(wk->err));
        }
    }
    return NULL;
}

static int mkdirs(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
                return -1;
            tmp[i] = c;
        }
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: hortus generate --patients N [--seed S] [--threads T] "
               "--format ndjson|bundles OUTDIR\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int synth_main(int argc, char **argv)
{
    uint64_t patients = 0, seed = 1, threads = 0;
    int have_patients = 0, format = -1;
    const char *outdir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--patients")) {
            if (parse_u64(v, &patients) || patients < 1 || patients > SYNTH_MAX_PATIENTS) {
                fprintf(stderr, "hortus generate: --patients needs a number from 1 to %llu\n",
                        SYNTH_MAX_PATIENTS);
                return 2;
            }
            have_patients = 1;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (parse_u64(v, &seed)) {
                fprintf(stderr, "hortus generate: --seed needs an unsigned integer\n");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (parse_u64(v, &threads) || threads < 1 || threads > SYNTH_MAX_THREADS) {
                fprintf(stderr, "hortus generate: --threads needs a number from 1 to %d\n",
                        SYNTH_MAX_THREADS);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--format")) {
            if (v && !strcmp(v, "ndjson"))
                format = FMT_NDJSON;
            else if (v && !strcmp(v, "bundles"))
                format = FMT_BUNDLES;
            else {
                fprintf(stderr, "hortus generate: --format must be ndjson or bundles\n");
                return 2;
            }
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "hortus generate: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!outdir) {
            outdir = a;
        } else {
            fprintf(stderr, "hortus generate: only one OUTDIR, got '%s' and '%s'\n", outdir, a);
            return 2;
        }
    }
    if (!have_patients || format < 0 || !outdir) {
        usage(stderr);
        return 2;
    }
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > SYNTH_MAX_THREADS ? SYNTH_MAX_THREADS : (uint64_t)n;
    }
    if (mkdirs(outdir)) {
        fprintf(stderr, "hortus generate: cannot create directory %s: %s\n", outdir,
                strerror(errno));
        return 1;
    }

    double t0 = now_s();
    int rc = 0;
    char msg[512] = "";
    FILE *files[SYNTH_NTYPES] = {0};
    uint64_t counts[SYNTH_NTYPES] = {0};
    worker *wk = calloc(threads, sizeof *wk);
    if (!wk) {
        fprintf(stderr, "hortus generate: out of memory\n");
        return 1;
    }
    for (uint64_t t = 0; t < threads; t++) {
        wk[t].g = synth_new(seed);
        wk[t].seed = seed;
        wk[t].format = format;
        wk[t].outdir = outdir;
        if (!wk[t].g) {
            snprintf(msg, sizeof msg, "out of memory");
            rc = ERR_NOMEM;
            goto done;
        }
    }
    if (format == FMT_NDJSON) {
        for (int ty = 0; ty < SYNTH_NTYPES; ty++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.ndjson", outdir, synth_type_names[ty]);
            files[ty] = fopen(path, "wb");
            if (!files[ty]) {
                snprintf(msg, sizeof msg, "cannot create %.300s: %s", path, strerror(errno));
                rc = ERR_IO;
                goto done;
            }
            setvbuf(files[ty], NULL, _IOFBF, 1 << 20);
        }
    }

    /* the shared Organizations and Practitioners first */
    if (format == FMT_NDJSON) {
        rc = synth_infrastructure(wk[0].g, ndjson_sink, &wk[0]);
    } else {
        bundle_begin(&wk[0]);
        rc = synth_infrastructure(wk[0].g, bundle_sink, &wk[0]);
        if (!rc)
            rc = bundle_finish(&wk[0], "organizations");
    }
    if (rc) {
        snprintf(msg, sizeof msg, "%.500s", wk[0].msg[0] ? wk[0].msg : err_str(rc));
        goto done;
    }

    for (uint64_t next = 0; next < patients && !rc;) {
        uint64_t used = 0;
        for (uint64_t t = 0; t < threads && next < patients; t++, used++) {
            wk[t].from = next;
            wk[t].to = next + ROUND_PER_THREAD < patients ? next + ROUND_PER_THREAD : patients;
            next = wk[t].to;
        }
        /* worker 0 runs on this thread; the others get their own */
        for (uint64_t t = 1; t < used; t++)
            if (pthread_create(&wk[t].th, NULL, worker_run, &wk[t])) {
                wk[t].err = ERR_INTERNAL;
                snprintf(wk[t].msg, sizeof wk[t].msg, "cannot start a thread");
                wk[t].th = 0;
            }
        worker_run(&wk[0]);
        for (uint64_t t = 1; t < used; t++)
            if (wk[t].th)
                pthread_join(wk[t].th, NULL);
        for (uint64_t t = 0; t < used; t++) {
            if (wk[t].err && !rc) {
                rc = wk[t].err;
                snprintf(msg, sizeof msg, "%.500s", wk[t].msg);
            }
            if (format != FMT_NDJSON || rc)
                continue;
            for (int ty = 0; ty < SYNTH_NTYPES; ty++) {
                buf *b = &wk[t].out[ty];
                if (b->len && fwrite(b->data, 1, b->len, files[ty]) != b->len) {
                    rc = ERR_IO;
                    snprintf(msg, sizeof msg, "cannot write %s.ndjson: %s", synth_type_names[ty],
                             strerror(errno));
                    break;
                }
                buf_reset(b);
            }
        }
    }

done:
    for (int ty = 0; ty < SYNTH_NTYPES; ty++)
        if (files[ty] && fclose(files[ty]) != 0 && !rc) {
            rc = ERR_IO;
            snprintf(msg, sizeof msg, "cannot write %s.ndjson: %s", synth_type_names[ty],
                     strerror(errno));
        }
    for (uint64_t t = 0; t < threads; t++) {
        for (int ty = 0; ty < SYNTH_NTYPES; ty++) {
            counts[ty] += wk[t].counts[ty];
            buf_free(&wk[t].out[ty]);
        }
        buf_free(&wk[t].bundle);
        synth_free(wk[t].g);
    }
    free(wk);
    if (rc) {
        fprintf(stderr, "hortus generate: %s\n", msg[0] ? msg : err_str(rc));
        return 1;
    }
    double dt = now_s() - t0;
    uint64_t total = 0;
    for (int ty = 0; ty < SYNTH_NTYPES; ty++)
        total += counts[ty];
    fprintf(stderr,
            "generated %llu patients, %llu resources (%.1f per patient) in %.2f s "
            "(%.0f patients/s, %llu threads) into %s\n",
            (unsigned long long)patients, (unsigned long long)total,
            (double)(total - counts[SYNTH_ORGANIZATION] - counts[SYNTH_PRACTITIONER]) /
                (double)patients,
            dt, dt > 0 ? (double)patients / dt : 0.0, (unsigned long long)threads, outdir);
    for (int ty = 0; ty < SYNTH_NTYPES; ty++)
        fprintf(stderr, "  %-20s %llu\n", synth_type_names[ty], (unsigned long long)counts[ty]);
    return 0;
}
