/*
 * cli.c -- `hortus fhirpath [--resource FILE.json] EXPRESSION`.
 *
 * Compiles the expression, evaluates it against the resource (or against
 * nothing), and prints the result collection as one JSON array on stdout.
 * trace() output goes to stderr. A syntax error or an evaluation error exits 1
 * with "fhirpath: line:col: message" and the expression with a caret on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "cli.h"
#include "fhirpath/fhirpath.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    buf b = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_put(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad || b.err) {
        buf_free(&b);
        return NULL;
    }
    if (!b.data)
        buf_put(&b, "", 0);
    return buf_detach(&b, len);
}

static void show_error(const char *what, const char *expr, const fp_error *e)
{
    if (e->pos >= 0)
        fprintf(stderr, "fhirpath: %s at line %d, column %d: %s\n", what, e->line, e->col,
                e->msg);
    else
        fprintf(stderr, "fhirpath: %s: %s\n", what, e->msg);
    if (e->pos >= 0 && !strchr(expr, '\n') && strlen(expr) < 200) {
        fprintf(stderr, "  %s\n  %*s^\n", expr, (int)e->pos, "");
    }
}

int fp_cli_main(int argc, char **argv)
{
    const char *res_path = NULL, *expr = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--resource") && i + 1 < argc) {
            res_path = argv[++i];
        } else if (!strcmp(argv[i], "--")) {
            if (i + 1 < argc)
                expr = argv[i + 1];
            break;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: hortus fhirpath [--resource FILE.json] EXPRESSION\n");
            return 0;
        } else if (!expr) {
            expr = argv[i];
        } else {
            fprintf(stderr, "fhirpath: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!expr) {
        fprintf(stderr, "usage: hortus fhirpath [--resource FILE.json] EXPRESSION\n");
        return 2;
    }
    int status = 1;
    char *text = NULL;
    arena *a = arena_new(1 << 16);
    fp_expr *x = NULL;
    json_val *res = NULL;
    if (!a) {
        fprintf(stderr, "fhirpath: out of memory\n");
        return 1;
    }
    if (res_path) {
        size_t len;
        text = read_file(res_path, &len);
        if (!text) {
            fprintf(stderr, "fhirpath: cannot read %s: %s\n", res_path, strerror(errno));
            goto done;
        }
        json_error je;
        if (json_parse(a, text, len, 0, &res, &je)) {
            fprintf(stderr, "fhirpath: %s:%d:%d: %s\n", res_path, je.line, je.col, je.msg);
            goto done;
        }
    }
    fp_error e;
    x = fp_compile(expr, &e);
    if (!x) {
        show_error("syntax error", expr, &e);
        goto done;
    }
    fp_env env = {0};
    env.trace = 1;
    fp_coll out;
    if (fp_eval(x, a, res, &env, &out, &e)) {
        show_error("evaluation error", expr, &e);
        goto done;
    }
    buf b = BUF_INIT;
    fp_write_json(&b, &out);
    buf_putc(&b, '\n');
    if (b.err) {
        fprintf(stderr, "fhirpath: out of memory\n");
        buf_free(&b);
        goto done;
    }
    fwrite(b.data, 1, b.len, stdout);
    buf_free(&b);
    status = 0;
done:
    fp_free(x);
    arena_free(a);
    free(text);
    return status;
}
