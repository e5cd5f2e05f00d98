/*
 * spcache.c -- every R4 search-parameter expression compiled once, at start-up.
 *
 * The generated model lists each search parameter (src/fhir/model.h) with its
 * FHIRPath expression and, for composites, one expression per component. Indexing
 * evaluates them for every write, so they are compiled once here and looked up by
 * the parameter's address: the entries are sorted by pointer and found by binary
 * search. The cache is immutable after fp_sp_cache_build(), so any number of
 * threads may read it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "fhirpath/spcache.h"

typedef struct sp_entry {
    const fhir_search_param *sp;
    fp_expr *expr;   /* NULL when the parameter has no expression */
    fp_expr **comp;  /* ncomponents compiled component expressions (entries may be NULL) */
} sp_entry;

struct fp_sp_cache {
    size_t n;
    sp_entry *e;
    size_t nexprs;
};

static int by_ptr(const void *a, const void *b)
{
    const sp_entry *x = a, *y = b;
    uintptr_t p = (uintptr_t)x->sp, q = (uintptr_t)y->sp;
    return p < q ? -1 : p > q;
}

void fp_sp_cache_free(fp_sp_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        fp_free(c->e[i].expr);
        if (c->e[i].comp) {
            for (uint8_t k = 0; k < c->e[i].sp->ncomponents; k++)
                fp_free(c->e[i].comp[k]);
            free(c->e[i].comp);
        }
    }
    free(c->e);
    free(c);
}

static int compile_one(const fhir_search_param *sp, const char *src, fp_expr **out,
                       fp_error *err)
{
    *out = NULL;
    if (!src)
        return 0;
    fp_error e;
    /* Errata of the R4 definitions: Observation-value-date's component of the composites
     * code-value-date is "value.as(DateTime) | value.as(Period)", the System type, which
     * no FHIR dateTime is; the parameter itself says (Observation.value as dateTime).
     * The FHIR type is meant. */
    char fixed[256];
    const char *at = strstr(src, "as(DateTime)");
    if (at && strlen(src) < sizeof fixed) {
        snprintf(fixed, sizeof fixed, "%s", src);
        for (char *p = fixed; (p = strstr(p, "as(DateTime)")); p += 12)
            p[3] = 'd';
        src = fixed;
    }
    *out = fp_compile(src, &e);
    if (*out)
        return 0;
    if (err) {
        *err = e;
        /* name the parameter: the position refers to its expression */
        buf b = BUF_INIT;
        buf_printf(&b, "search parameter %s (%s): %s", sp->code, sp->url, e.msg);
        snprintf(err->msg, sizeof err->msg, "%s", buf_cstr(&b));
        buf_free(&b);
    }
    return e.code ? e.code : ERR_INVALID;
}

int fp_sp_cache_build(fp_sp_cache **out, fp_error *err)
{
    *out = NULL;
    const fhir_search_param *const *all;
    size_t n = fhir_search_params_all(&all);
    fp_sp_cache *c = calloc(1, sizeof *c);
    if (!c || !(c->e = calloc(n ? n : 1, sizeof *c->e))) {
        free(c);
        return ERR_NOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        sp_entry *e = &c->e[c->n++];
        e->sp = all[i];
        rc = compile_one(all[i], all[i]->expression, &e->expr, err);
        if (!rc && e->expr)
            c->nexprs++;
        if (!rc && all[i]->ncomponents) {
            e->comp = calloc(all[i]->ncomponents, sizeof *e->comp);
            if (!e->comp) {
                rc = ERR_NOMEM;
                break;
            }
            for (uint8_t k = 0; k < all[i]->ncomponents && !rc; k++) {
                rc = compile_one(all[i], all[i]->component_exprs[k], &e->comp[k], err);
                if (!rc && e->comp[k])
                    c->nexprs++;
            }
        }
    }
    if (rc) {
        fp_sp_cache_free(c);
        return rc;
    }
    qsort(c->e, c->n, sizeof *c->e, by_ptr);
    *out = c;
    return 0;
}

static const sp_entry *find(const fp_sp_cache *c, const fhir_search_param *sp)
{
    sp_entry key = {.sp = sp};
    return bsearch(&key, c->e, c->n, sizeof *c->e, by_ptr);
}

const fp_expr *fp_sp_cache_get(const fp_sp_cache *c, const fhir_search_param *sp)
{
    const sp_entry *e = find(c, sp);
    return e ? e->expr : NULL;
}

const fp_expr *fp_sp_cache_component(const fp_sp_cache *c, const fhir_search_param *sp,
                                     unsigned k)
{
    const sp_entry *e = find(c, sp);
    return e && e->comp && k < sp->ncomponents ? e->comp[k] : NULL;
}

size_t fp_sp_cache_count(const fp_sp_cache *c)
{
    return c->nexprs;
}
