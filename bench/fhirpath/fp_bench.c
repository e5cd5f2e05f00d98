/*
 * fp_bench.c -- FHIRPath throughput of hortus, measured the way bench/fhirpath/
 * fp_bench.js measures npm fhirpath, so the two figures can stand side by side.
 *
 *   fp_bench DIR            evaluate every R4 search-parameter expression that
 *                           applies to each resource of DIR/*.ndjson (compiled once
 *                           per type), ROUNDS times; then parse + evaluate a simple
 *                           path a million times
 *   fp_bench --list DIR     print the (type, expression) pairs used, one JSON array
 *                           per line, for the node script to evaluate the same work
 *
 * Build: cc -O2 -Isrc -D_GNU_SOURCE -o build/fp_bench bench/fhirpath/fp_bench.c \
 *          build/librel.a -llmdb -lmicrohttpd -lcrypto -lpthread -lm
 * Knobs: FP_BENCH_ROUNDS (default 5), FP_BENCH_SIMPLE (default 1000000).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fhirpath/fhirpath.h"

typedef struct res {
    const char *type;
    json_val *json;
} res;

typedef struct typeexprs {
    const char *type;
    size_t n;
    fp_expr **x;
    const char **src;
} typeexprs;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(p);
        return NULL;
    }
    fclose(f);
    p[n] = 0;
    *len = (size_t)n;
    return p;
}

static typeexprs *types;
static size_t ntypes;

static typeexprs *exprs_for(const char *type)
{
    for (size_t i = 0; i < ntypes; i++)
        if (!strcmp(types[i].type, type))
            return &types[i];
    types = realloc(types, (ntypes + 1) * sizeof *types);
    typeexprs *t = &types[ntypes++];
    memset(t, 0, sizeof *t);
    t->type = strdup(type);
    const fhir_search_param *const *sp;
    size_t n = fhir_search_params(type, &sp);
    t->x = calloc(n ? n : 1, sizeof *t->x);
    t->src = calloc(n ? n : 1, sizeof *t->src);
    for (size_t i = 0; i < n; i++) {
        if (!sp[i]->expression)
            continue;
        fp_error e;
        fp_expr *x = fp_compile(sp[i]->expression, &e);
        if (!x) {
            fprintf(stderr, "compile failed: %s: %s\n", sp[i]->expression, e.msg);
            continue;
        }
        t->src[t->n] = sp[i]->expression;
        t->x[t->n++] = x;
    }
    return t;
}

int main(int argc, char **argv)
{
    int list = argc > 2 && !strcmp(argv[1], "--list");
    const char *dir = argv[list ? 2 : 1];
    if (!dir) {
        fprintf(stderr, "usage: fp_bench [--list] DIR\n");
        return 2;
    }
    int rounds = getenv("FP_BENCH_ROUNDS") ? atoi(getenv("FP_BENCH_ROUNDS")) : 5;
    long simple = getenv("FP_BENCH_SIMPLE") ? atol(getenv("FP_BENCH_SIMPLE")) : 1000000;
    arena *keep = arena_new(1 << 20);
    res *rs = NULL;
    size_t nres = 0, cap = 0;
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 7 || strcmp(de->d_name + l - 7, ".ndjson"))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        char *text = slurp(path, &len);
        if (!text)
            continue;
        char *line = text;
        while (line < text + len) {
            char *nl = memchr(line, '\n', (size_t)(text + len - line));
            size_t ll = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
            json_val *j;
            json_error je;
            if (ll && json_parse(keep, line, ll, 0, &j, &je) == 0) {
                const char *rt = json_get_str(j, "resourceType");
                if (rt) {
                    if (nres == cap) {
                        cap = cap ? cap * 2 : 256;
                        rs = realloc(rs, cap * sizeof *rs);
                    }
                    rs[nres].type = rt;
                    rs[nres].json = j;
                    nres++;
                }
            }
            line += ll + 1;
        }
        /* numbers point into the text: keep it */
    }
    closedir(d);
    size_t nexpr_total = 0;
    for (size_t i = 0; i < nres; i++)
        exprs_for(rs[i].type);
    if (list) {
        for (size_t i = 0; i < ntypes; i++)
            for (size_t k = 0; k < types[i].n; k++) {
                buf b = BUF_INIT;
                buf_putc(&b, '[');
                json_write_string(&b, types[i].type, strlen(types[i].type));
                buf_putc(&b, ',');
                json_write_string(&b, types[i].src[k], strlen(types[i].src[k]));
                buf_puts(&b, "]\n");
                fputs(buf_cstr(&b), stdout);
                buf_free(&b);
            }
        return 0;
    }
    arena *a = arena_new(1 << 16);
    size_t evals = 0, errors = 0, items = 0;
    double t0 = now_s();
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < nres; i++) {
            typeexprs *t = exprs_for(rs[i].type);
            for (size_t k = 0; k < t->n; k++) {
                fp_coll out;
                fp_error e;
                if (fp_eval(t->x[k], a, rs[i].json, NULL, &out, &e))
                    errors++;
                else
                    items += out.n;
                evals++;
                arena_reset(a);
            }
        }
    }
    double t1 = now_s();
    for (size_t i = 0; i < ntypes; i++)
        nexpr_total += types[i].n;
    printf("search-parameter expressions: %zu resources, %zu types, %zu expressions\n", nres,
           ntypes, nexpr_total);
    printf("  %zu evaluations in %.3f s: %.0f evaluations/s (%.2f us each), %zu items, %zu "
           "errors\n",
           evals, t1 - t0, evals / (t1 - t0), (t1 - t0) * 1e6 / (double)evals, items, errors);

    /* simple path: compile + evaluate + free, like a one-off expression */
    json_val *pat = NULL;
    for (size_t i = 0; i < nres && !pat; i++)
        if (!strcmp(rs[i].type, "Patient"))
            pat = rs[i].json;
    if (pat && simple > 0) {
        const char *src = "Patient.name.given";
        size_t got = 0;
        t0 = now_s();
        for (long i = 0; i < simple; i++) {
            fp_expr *x = fp_compile(src, NULL);
            fp_coll out;
            if (x && fp_eval(x, a, pat, NULL, &out, NULL) == 0)
                got += out.n;
            fp_free(x);
            arena_reset(a);
        }
        t1 = now_s();
        printf("simple path '%s': %ld parse+evaluate in %.3f s: %.0f per second (%zu items)\n",
               src, simple, t1 - t0, simple / (t1 - t0), got);
        fp_expr *x = fp_compile(src, NULL);
        t0 = now_s();
        for (long i = 0; i < simple; i++) {
            fp_coll out;
            if (fp_eval(x, a, pat, NULL, &out, NULL) == 0)
                got += out.n;
            arena_reset(a);
        }
        t1 = now_s();
        printf("  compiled once: %.0f evaluations per second\n", simple / (t1 - t0));
        fp_free(x);
    }
    arena_free(a);
    return 0;
}
