/*
 * extract_bench.c -- CPU cost of index extraction (idx_extract) per resource and per
 * search parameter, on ndjson files such as `hortus generate --format ndjson` writes.
 *
 *   make build/bench/extract_bench
 *   ./build/bench/extract_bench [--params] FILE.ndjson...
 *
 * Every line is parsed once (not timed); then idx_extract runs over all of them, and
 * the process CPU time per resource is printed per type. --params also times each
 * parameter alone (idx_extract_one) and lists the 25 costliest, so a change to the
 * extraction can be aimed and measured without a server, a store or a disk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/arena.h"
#include "fhirpath/spcache.h"
#include "index/index.h"
#include "json/json.h"

#define MAX_DOCS 400000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct doc {
    const json_val *root;
    const char *type;
} doc;

typedef struct pcost {
    const char *type, *code;
    double s;
    size_t n;
} pcost;

static int by_cost(const void *a, const void *b)
{
    const pcost *x = a, *y = b;
    return x->s < y->s ? 1 : x->s > y->s ? -1 : 0;
}

int main(int argc, char **argv)
{
    int params = 0, i0 = 1;
    if (argc > 1 && !strcmp(argv[1], "--params")) {
        params = 1;
        i0 = 2;
    }
    if (i0 >= argc) {
        fprintf(stderr, "usage: extract_bench [--params] FILE.ndjson...\n");
        return 2;
    }
    fp_sp_cache *spc;
    fp_error fe;
    if (fp_sp_cache_build(&spc, &fe)) {
        fprintf(stderr, "%s\n", fe.msg);
        return 1;
    }
    arena *docs = arena_new(1u << 24);
    doc *d = malloc(sizeof *d * MAX_DOCS);
    size_t nd = 0;
    char *line = NULL;
    size_t cap = 0;
    for (int i = i0; i < argc; i++) {
        FILE *f = fopen(argv[i], "r");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        ssize_t n;
        while ((n = getline(&line, &cap, f)) > 0 && nd < MAX_DOCS) {
            char *text = arena_alloc(docs, (size_t)n);
            memcpy(text, line, (size_t)n);
            json_val *v;
            if (json_parse(docs, text, (size_t)n, JSON_FHIR, &v, NULL))
                continue;
            const char *t = json_get_str(v, "resourceType");
            if (t)
                d[nd++] = (doc){v, t};
        }
        fclose(f);
    }
    free(line);
    arena *a = arena_new(1u << 20);
    size_t entries = 0;
    double t0 = now();
    for (size_t i = 0; i < nd; i++) {
        idx_set s;
        if (idx_extract(spc, a, d[i].type, d[i].root, "http://h/fhir", &s) == 0)
            entries += s.n;
        arena_reset(a);
    }
    double t = now() - t0;
    printf("%zu resources, %zu entries: %.2f us/resource (%.0f resources/s on one core)\n",
           nd, entries, t * 1e6 / (double)(nd ? nd : 1), (double)nd / t);
    if (params) {
        pcost *pc = NULL;
        size_t npc = 0, cpc = 0;
        for (size_t i = 0; i < nd; i++) {
            const fhir_search_param *const *sps;
            size_t nsp = fp_sp_params(spc, d[i].type, &sps);
            for (size_t k = 0; k < nsp; k++) {
                size_t j = 0;
                while (j < npc && !(pc[j].code == sps[k]->code && !strcmp(pc[j].type, d[i].type)))
                    j++;
                if (j == npc) {
                    if (npc == cpc)
                        pc = realloc(pc, sizeof *pc * (cpc = cpc ? cpc * 2 : 256));
                    pc[npc++] = (pcost){d[i].type, sps[k]->code, 0, 0};
                }
                idx_set s;
                double u = now();
                (void)idx_extract_one(spc, a, d[i].type, sps[k], d[i].root, "http://h/fhir", &s);
                pc[j].s += now() - u;
                pc[j].n++;
                arena_reset(a);
            }
        }
        qsort(pc, npc, sizeof *pc, by_cost);
        printf("costliest parameters (total s, us per resource of the type):\n");
        for (size_t j = 0; j < npc && j < 25; j++)
            printf("  %-20s %-28s %7.3f s  %6.2f us\n", pc[j].type, pc[j].code, pc[j].s,
                   pc[j].s * 1e6 / (double)pc[j].n);
        free(pc);
    }
    arena_free(a);
    arena_free(docs);
    free(d);
    fp_sp_cache_free(spc);
    return 0;
}
