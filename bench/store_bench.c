/*
 * store_bench.c -- durable creates/s through the group-commit writer at 1..N concurrent
 * submitters (each keeps one request in flight, like one HTTP client), then reads by id
 * per second from R reader threads. Prints one line per figure; no assertions (figures
 * go to bench/RESULTS.md).
 *
 *   cc -O2 -Isrc -D_GNU_SOURCE -pthread bench/store_bench.c build/librel.a \
 *      -llmdb -lmicrohttpd -lcrypto -lpthread -lm -o build/store_bench
 *   build/store_bench [DIR] [CREATES_PER_RUN] [ordered|random] [GROUP_WAIT_US, -1 = off]
 *
 * Ids: "ordered" (default) are time-ordered like UUIDv7, so creates append to the
 * ResourceAsOf B-tree; "random" are random hex like UUIDv4, so every create dirties a
 * different leaf page and the commit has more pages to write.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "store/store.h"

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A ~1 KiB Observation, the typical size of a vital-sign resource. */
static size_t make_body(char *out, size_t cap, const char *id)
{
    int n = snprintf(out, cap,
                     "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"meta\":{\"versionId\":"
                     "\"1\",\"lastUpdated\":\"2026-11-23T11:00:00.000Z\"},\"status\":\"final\","
                     "\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/"
                     "CodeSystem/observation-category\",\"code\":\"vital-signs\"}]}],\"code\":{"
                     "\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\","
                     "\"display\":\"Heart rate\"}]},\"subject\":{\"reference\":\"Patient/"
                     "p-%s\"},\"effectiveDateTime\":\"2026-11-23T10:59:00Z\",\"valueQuantity\":"
                     "{\"value\":72,\"unit\":\"beats/minute\",\"system\":\"http://unitsofmeasure"
                     ".org\",\"code\":\"/min\"},\"note\":[{\"text\":\"%0400d\"}]}",
                     id, id, 0);
    return (size_t)n;
}

typedef struct slot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished, rc;
} slot;

static void slot_done(void *ctx, int rc, uint64_t t)
{
    (void)t;
    slot *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->rc = rc;
    s->finished = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int random_ids;
static atomic_uint_fast64_t id_seq;

static void make_id(char *out, size_t cap, unsigned *seed)
{
    if (random_ids)
        snprintf(out, cap, "%08x-%08x-%08x", (unsigned)rand_r(seed), (unsigned)rand_r(seed),
                 (unsigned)rand_r(seed));
    else
        snprintf(out, cap, "%016llx", (unsigned long long)atomic_fetch_add(&id_seq, 1));
}

typedef struct warg {
    store *s;
    int run, thread, count, errors;
} warg;

static void *writer(void *p)
{
    warg *a = p;
    slot sl = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    char bytes[2048];
    unsigned seed = (unsigned)(a->run * 1000 + a->thread);
    for (int i = 0; i < a->count; i++) {
        char id[48];
        make_id(id, sizeof id, &seed);
        if (a->run == 1 && a->thread == 0) /* the readers look these up */
            snprintf(id, sizeof id, "r1-t0-%d", i);
        store_op op = {.op = STORE_OP_CREATE,
                       .type = "Observation",
                       .type_len = 11,
                       .id = id,
                       .id_len = strlen(id),
                       .expect = 0,
                       .vid = 1,
                       .last_updated = now_us()};
        op.bytes = bytes;
        op.len = make_body(bytes, sizeof bytes, id);
        store_req req = {.ops = &op, .nops = 1};
        sl.finished = 0;
        if (store_submit(a->s, &req, slot_done, &sl)) {
            a->errors++;
            continue;
        }
        pthread_mutex_lock(&sl.mu);
        while (!sl.finished)
            pthread_cond_wait(&sl.cv, &sl.mu);
        pthread_mutex_unlock(&sl.mu);
        a->errors += sl.rc != 0;
    }
    return NULL;
}

typedef struct rarg {
    store *s;
    int nids;
    double until;
    long reads, misses;
} rarg;

static void *reader(void *p)
{
    rarg *a = p;
    unsigned seed = (unsigned)(uintptr_t)p;
    while (mono_s() < a->until) {
        for (int k = 0; k < 1000; k++) {
            char id[48];
            snprintf(id, sizeof id, "r1-t0-%d", (int)(rand_r(&seed) % (unsigned)a->nids));
            store_reader *r;
            if (store_read_begin(a->s, &r))
                continue;
            store_version v;
            if (store_read(r, 0, "Observation", id, &v) != 0)
                a->misses++;
            a->reads++;
            store_read_end(r);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp/hortus-store-bench";
    int total = 6400;
    if (argc > 2) {
        char *end;
        long v = strtol(argv[2], &end, 10);
        if (*end || v < 64 || v > 10000000) {
            fprintf(stderr, "usage: store_bench [DIR] [CREATES_PER_RUN >= 64]\n");
            return 2;
        }
        total = (int)v;
    }
    random_ids = argc > 3 && !strcmp(argv[3], "random");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    store *s;
    store_opts opts = {0};
    if (argc > 4)
        opts.group_wait_us = (int)strtol(argv[4], NULL, 10);
    if (store_open(dir, &opts, &s)) {
        fprintf(stderr, "cannot open %s\n", dir);
        return 1;
    }
    int levels[] = {1, 4, 32, 64};
    for (int li = 0; li < 4; li++) {
        int n = levels[li];
        int per = n == 1 ? total / 8 : total / n;
        pthread_t th[64];
        warg args[64];
        store_stats before, after;
        store_get_stats(s, &before);
        double t0 = mono_s();
        for (int i = 0; i < n; i++) {
            args[i] = (warg){.s = s, .run = li + 1, .thread = i, .count = per};
            pthread_create(&th[i], NULL, writer, &args[i]);
        }
        int errors = 0;
        for (int i = 0; i < n; i++) {
            pthread_join(th[i], NULL);
            errors += args[i].errors;
        }
        double dt = mono_s() - t0;
        store_get_stats(s, &after);
        uint64_t commits = after.commits - before.commits;
        printf("creates  submitters=%-3d  %8.0f/s  (%d creates, %llu commits, avg batch %.1f, "
               "apply %.0f us + commit %.0f us per batch, errors %d)\n",
               n, n * per / dt, n * per, (unsigned long long)commits,
               (double)(n * per) / (double)commits,
               (after.apply_ns - before.apply_ns) / 1e3 / (double)commits,
               (after.commit_ns - before.commit_ns) / 1e3 / (double)commits, errors);
    }
    for (int nr = 1; nr <= 2; nr++) {
        pthread_t th[2];
        rarg ra[2];
        double t0 = mono_s();
        for (int i = 0; i < nr; i++) {
            ra[i] = (rarg){.s = s, .nids = total / 8, .until = t0 + 2.0};
            pthread_create(&th[i], NULL, reader, &ra[i]);
        }
        long reads = 0, misses = 0;
        for (int i = 0; i < nr; i++) {
            pthread_join(th[i], NULL);
            reads += ra[i].reads;
            misses += ra[i].misses;
        }
        printf("reads    threads=%d       %8.0f/s  (begin + read by id + end; misses %ld)\n", nr,
               reads / (mono_s() - t0), misses);
    }
    store_stats st;
    store_get_stats(s, &st);
    printf("store    used %.1f MiB, map %.0f MiB, commits %llu, largest batch %llu\n",
           st.used_bytes / 1048576.0, st.map_size / 1048576.0, (unsigned long long)st.commits,
           (unsigned long long)st.max_batch);
    store_close(s);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return 0;
}
