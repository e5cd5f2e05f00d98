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

#include "base/arena.h"
#include "base/err.h"
#include "fhirpath/spcache.h"

/* The expression of a parameter shared by several types ("AllergyIntolerance.patient |
 * CarePlan.subject | ...") as one type evaluates it: the branches rooted in other
 * resource types left out (they give nothing on this type's resources, and each costs
 * an evaluation). */
typedef struct sp_typed {
    const char *type; /* the model's name of the type (compared by address first) */
    fp_expr *expr;    /* NULL: no branch applies to the type */
    int own;          /* expr compiled for this type (else the entry's) */
} sp_typed;

typedef struct sp_entry {
    const fhir_search_param *sp;
    fp_expr *expr;   /* NULL when the parameter has no expression */
    fp_expr **comp;  /* ncomponents compiled component expressions (entries may be NULL) */
    sp_typed *typed; /* per type, for expressions of several branches */
    size_t ntyped;
} sp_entry;

/* The parameters of one type with customs: the merged list, sorted by code. */
typedef struct sp_typelist {
    const char *type;
    const fhir_search_param **sps;
    size_t n;
} sp_typelist;

struct fp_sp_cache {
    size_t n;
    sp_entry *e;
    size_t nexprs;
    /* an extended cache: the model's, the customs (copies in `a`), their compiled
     * expressions, and the merged lists of the types they apply to */
    const fp_sp_cache *model;
    uint64_t stamp;
    arena *a;
    fp_sp_custom *cs;
    fp_expr **cx;
    size_t ncs;
    sp_typelist *tl;
    size_t ntl;
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
    if (c->model) {
        for (size_t i = 0; i < c->ncs; i++)
            fp_free(c->cx[i]);
        arena_free(c->a);
        free(c);
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        fp_free(c->e[i].expr);
        for (size_t k = 0; k < c->e[i].ntyped; k++)
            if (c->e[i].typed[k].own)
                fp_free(c->e[i].typed[k].expr);
        free(c->e[i].typed);
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

/* Split src at its top-level '|' into branches (at most max): 0 and *n, or -1 when the
 * expression has a top-level operator that binds less tightly than '|' (a comparison,
 * and, or, ...: splitting would change its meaning) or is not balanced. */
#define SP_MAX_BRANCHES 64
static int split_union(const char *src, const char **at, size_t *len, size_t *n)
{
    int depth = 0;
    size_t k = 0;
    const char *start = src;
    for (const char *p = src;; p++) {
        char ch = *p;
        if (ch == '\'' || ch == '`') { /* a string or a delimited name */
            for (p++; *p && *p != ch; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (!*p)
                return -1;
            continue;
        }
        if (ch == '(' || ch == '[' || ch == '{')
            depth++;
        else if (ch == ')' || ch == ']' || ch == '}')
            depth--;
        if (depth < 0)
            return -1;
        if (depth == 0 && ch && strchr("=<>~!", ch))
            return -1;
        if (depth == 0 && (ch == ' ' || ch == '\t')) {
            static const char *const low[] = {"and ", "or ", "xor ", "implies ", "in ",
                                              "contains "};
            for (size_t i = 0; i < sizeof low / sizeof *low; i++)
                if (!strncmp(p + 1, low[i], strlen(low[i])))
                    return -1;
        }
        if (!ch || (depth == 0 && ch == '|')) {
            if (k == SP_MAX_BRANCHES)
                return -1;
            at[k] = start;
            len[k++] = (size_t)(p - start);
            if (!ch)
                break;
            start = p + 1;
        }
    }
    if (depth)
        return -1;
    *n = k;
    return 0;
}

/* Does the branch (n bytes) start with the name of a resource type other than `type`
 * (so it gives nothing on a resource of type)? A branch holding a '|' of its own, in
 * parentheses, is kept whatever it starts with. */
static int foreign_branch(const char *b, size_t n, const char *type)
{
    if (memchr(b, '|', n))
        return 0;
    size_t i = 0;
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '('))
        i++;
    size_t j = i;
    while (j < n && ((b[j] >= 'A' && b[j] <= 'Z') || (b[j] >= 'a' && b[j] <= 'z') ||
                     (b[j] >= '0' && b[j] <= '9') || b[j] == '_'))
        j++;
    if (j == i || (j < n && b[j] != '.' && b[j] != ' ' && b[j] != ')'))
        return 0;
    size_t tl = strlen(type);
    if ((j - i == tl && !memcmp(b + i, type, tl)) ||
        (j - i == 8 && !memcmp(b + i, "Resource", 8)) ||
        (j - i == 14 && !memcmp(b + i, "DomainResource", 14)))
        return 0;
    return fhir_resource_type(b + i, j - i) != NULL;
}

/* The per-type expressions of entry e (a parameter of the model), for every type whose
 * parameters list it. */
static int build_typed(sp_entry *e, fp_error *err)
{
    const char *at[SP_MAX_BRANCHES];
    size_t len[SP_MAX_BRANCHES], nb;
    const char *src = e->sp->expression;
    if (!e->expr || !src || split_union(src, at, len, &nb) || nb < 2)
        return 0;
    const fhir_type *const *types;
    size_t nt = fhir_resource_types(&types);
    for (size_t ti = 0; ti < nt; ti++) {
        const fhir_search_param *const *sps;
        size_t ns = fhir_search_params(types[ti]->name, &sps), k = 0;
        while (k < ns && sps[k] != e->sp)
            k++;
        if (k == ns)
            continue;
        const char *type = types[ti]->name;
        buf b = BUF_INIT;
        size_t kept = 0;
        for (size_t i = 0; i < nb; i++) {
            if (foreign_branch(at[i], len[i], type))
                continue;
            if (kept++)
                buf_putc(&b, '|');
            buf_put(&b, at[i], len[i]);
        }
        sp_typed *nt2 = b.err ? NULL : realloc(e->typed, sizeof *e->typed * (e->ntyped + 1));
        if (!nt2) {
            buf_free(&b);
            return ERR_NOMEM;
        }
        e->typed = nt2;
        sp_typed *t = &e->typed[e->ntyped];
        *t = (sp_typed){.type = type, .expr = e->expr};
        int rc = 0;
        if (kept == 0)
            t->expr = NULL;
        else if (kept < nb && !(rc = compile_one(e->sp, buf_cstr(&b), &t->expr, err)))
            t->own = 1;
        buf_free(&b);
        if (rc)
            return rc;
        e->ntyped++;
    }
    return 0;
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
        if (!rc)
            rc = build_typed(e, err);
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

static const sp_typelist *typelist(const fp_sp_cache *c, const char *type)
{
    for (size_t i = 0; i < c->ntl; i++)
        if (!strcmp(c->tl[i].type, type))
            return &c->tl[i];
    return NULL;
}

static int by_code(const void *a, const void *b)
{
    const fhir_search_param *const *x = a, *const *y = b;
    return strcmp((*x)->code, (*y)->code);
}

static char *dup(arena *a, const char *s)
{
    return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

int fp_sp_cache_extend(const fp_sp_cache *model, const fp_sp_custom *cs, size_t n,
                       uint64_t stamp, fp_sp_cache **out, fp_error *err)
{
    *out = NULL;
    while (model->model)
        model = model->model;
    fp_sp_cache *c = calloc(1, sizeof *c);
    if (!c)
        return ERR_NOMEM;
    c->model = model;
    c->stamp = stamp;
    c->nexprs = model->nexprs;
    c->a = arena_new(4096);
    c->cs = c->a ? arena_zalloc(c->a, sizeof *c->cs * (n ? n : 1)) : NULL;
    c->cx = c->a ? arena_zalloc(c->a, sizeof *c->cx * (n ? n : 1)) : NULL;
    c->tl = c->a ? arena_zalloc(c->a, sizeof *c->tl * (n ? n : 1)) : NULL;
    if (!c->cx || !c->cs || !c->tl) {
        fp_sp_cache_free(c);
        return ERR_NOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        fp_sp_custom *d = &c->cs[c->ncs];
        *d = cs[i];
        d->base = dup(c->a, cs[i].base);
        d->id = dup(c->a, cs[i].id);
        d->def.code = dup(c->a, cs[i].def.code);
        d->def.url = dup(c->a, cs[i].def.url);
        d->def.expression = dup(c->a, cs[i].def.expression);
        d->def.ncomponents = 0;
        d->def.component_urls = d->def.component_exprs = NULL;
        const char **tg = arena_zalloc(c->a, sizeof *tg * (cs[i].def.ntargets + 1u));
        if (!d->base || !d->def.code || !tg) {
            rc = ERR_NOMEM;
            break;
        }
        for (uint8_t k = 0; k < cs[i].def.ntargets; k++)
            if (!(tg[k] = dup(c->a, cs[i].def.targets[k])))
                rc = ERR_NOMEM;
        d->def.targets = tg;
        if (!rc)
            rc = compile_one(&d->def, d->def.expression, &c->cx[c->ncs], err);
        if (!rc) {
            c->nexprs += c->cx[c->ncs] != NULL;
            c->ncs++;
        }
    }
    /* the merged list of each type that has customs: the model's, less any parameter a
     * custom replaces by code, plus its customs */
    for (size_t i = 0; i < c->ncs && !rc; i++) {
        if (typelist(c, c->cs[i].base))
            continue;
        const char *type = c->cs[i].base;
        const fhir_search_param *const *ms;
        size_t nm = fhir_search_params(type, &ms);
        size_t nmax = nm + c->ncs;
        const fhir_search_param **l = arena_alloc(c->a, sizeof *l * nmax);
        if (!l) {
            rc = ERR_NOMEM;
            break;
        }
        size_t k = 0;
        for (size_t j = 0; j < c->ncs; j++)
            if (!strcmp(c->cs[j].base, type))
                l[k++] = &c->cs[j].def;
        size_t ncust = k;
        for (size_t j = 0; j < nm; j++) {
            int shadowed = 0;
            for (size_t q = 0; q < ncust && !shadowed; q++)
                shadowed = !strcmp(l[q]->code, ms[j]->code);
            if (!shadowed)
                l[k++] = ms[j];
        }
        qsort(l, k, sizeof *l, by_code);
        c->tl[c->ntl++] = (sp_typelist){type, l, k};
    }
    if (rc) {
        fp_sp_cache_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

uint64_t fp_sp_cache_stamp(const fp_sp_cache *c)
{
    return c ? c->stamp : 0;
}

const fp_sp_custom *fp_sp_custom_of(const fp_sp_cache *c, const fhir_search_param *sp)
{
    /* a custom's definition lies inside the cache's own array: its index from the address */
    if (!c || !c->ncs)
        return NULL;
    const char *p = (const char *)sp, *lo = (const char *)c->cs;
    if (p < lo || p >= (const char *)(c->cs + c->ncs))
        return NULL;
    const fp_sp_custom *cu = &c->cs[(size_t)(p - lo) / sizeof *c->cs];
    return &cu->def == sp ? cu : NULL;
}

size_t fp_sp_customs(const fp_sp_cache *c, const fp_sp_custom **out)
{
    *out = c ? c->cs : NULL;
    return c ? c->ncs : 0;
}

const fhir_search_param *fp_sp_find(const fp_sp_cache *c, const char *type, const char *code)
{
    if (c && c->ncs)
        for (size_t i = 0; i < c->ncs; i++)
            if (!strcmp(c->cs[i].def.code, code) && !strcmp(c->cs[i].base, type))
                return &c->cs[i].def;
    return fhir_search_param_find(type, code);
}

size_t fp_sp_params(const fp_sp_cache *c, const char *type, const fhir_search_param *const **out)
{
    const sp_typelist *l = c && c->ntl ? typelist(c, type) : NULL;
    if (l) {
        *out = l->sps;
        return l->n;
    }
    return fhir_search_params(type, out);
}

/* The model's entry of sp (NULL: not the model's), or in *custom a custom parameter's
 * expression (then 1). */
static int entry_of(const fp_sp_cache *c, const fhir_search_param *sp, const sp_entry **e,
                    const fp_expr **custom)
{
    if (c->model) {
        const fp_sp_custom *cu = fp_sp_custom_of(c, sp);
        if (cu) {
            *custom = c->cx[cu - c->cs];
            return 1;
        }
        c = c->model;
    }
    *e = find(c, sp);
    return 0;
}

const fp_expr *fp_sp_cache_get(const fp_sp_cache *c, const fhir_search_param *sp)
{
    const sp_entry *e;
    const fp_expr *cx;
    if (entry_of(c, sp, &e, &cx))
        return cx;
    return e ? e->expr : NULL;
}

const fp_expr *fp_sp_cache_get_for(const fp_sp_cache *c, const char *type,
                                   const fhir_search_param *sp)
{
    const sp_entry *e;
    const fp_expr *cx;
    if (entry_of(c, sp, &e, &cx))
        return cx;
    if (!e)
        return NULL;
    for (size_t k = 0; k < e->ntyped; k++)
        if (e->typed[k].type == type)
            return e->typed[k].expr;
    for (size_t k = 0; k < e->ntyped; k++)
        if (!strcmp(e->typed[k].type, type))
            return e->typed[k].expr;
    return e->expr;
}

const fp_expr *fp_sp_cache_component(const fp_sp_cache *c, const fhir_search_param *sp,
                                     unsigned k)
{
    if (c->model)
        c = c->model;
    const sp_entry *e = find(c, sp);
    return e && e->comp && k < sp->ncomponents ? e->comp[k] : NULL;
}

size_t fp_sp_cache_count(const fp_sp_cache *c)
{
    return c->nexprs;
}
