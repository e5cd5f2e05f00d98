/*
 * invariants.c -- the R4 invariants (ElementDefinition.constraint) of a resource,
 * evaluated with the FHIRPath engine (invariants.h).
 *
 *   the resource, and every node under it with its model type (descendants())
 *     -> the constraints of that type and of its base types
 *     -> each expression with the node as its context (fp_eval_item), %resource the
 *        resource; a constraint on an element of the type (Narrative.div) is
 *        evaluated on each value of that element
 *     -> false: an issue with the constraint's key, its words and the node's path
 *        (severity error or warning, as the definition says)
 *
 * Every expression is compiled once, at first use; one that does not compile is
 * counted (fp_invariants_stats) and never silently taken as satisfied: the tests
 * prove the count is zero. ele-1 and ext-1 (every element has a value or children;
 * an extension has a value or extensions, not both) are left to the structural
 * validator, which enforces both on every node (src/fhir/validate.c).
 */
#include "fhirpath/invariants.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "fhirpath/fhirpath.h"

typedef struct compiled {
    const fhir_constraint *c;
    const fhir_type *owner;
    fp_expr *x;
    fp_expr *elem; /* the element it is on, or NULL */
} compiled;

/* per type (by index in fhir_types_all): its constraints and those of its bases */
typedef struct per_type {
    compiled **c;
    size_t n;
} per_type;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const fhir_type *all;
static size_t nall;
static per_type *tab;
static compiled *pool;
static size_t npool, nbad;
static fp_expr *descendants;

static int skipped(const char *key)
{
    return !strcmp(key, "ele-1") || !strcmp(key, "ext-1");
}

/* The definitions apply as() to collections (dom-3: descendants().as(canonical)), where
 * FHIRPath makes it an error; what they mean is the filter, ofType(). */
static fp_expr *compile_rule(const char *src, fp_error *e)
{
    if (!strstr(src, ".as("))
        return fp_compile(src, e);
    buf b = BUF_INIT;
    for (const char *p = src; *p;) {
        const char *m = strstr(p, ".as(");
        if (!m) {
            buf_puts(&b, p);
            break;
        }
        buf_put(&b, p, (size_t)(m - p));
        buf_puts(&b, ".ofType(");
        p = m + 4;
    }
    fp_expr *x = b.err ? NULL : fp_compile(buf_cstr(&b), e);
    buf_free(&b);
    return x;
}

static void build(void)
{
    nall = fhir_types_all(&all);
    tab = calloc(nall ? nall : 1, sizeof *tab);
    size_t total = 0;
    for (size_t i = 0; i < nall; i++) {
        const fhir_constraint *cs;
        total += fhir_constraints(&all[i], &cs);
    }
    pool = calloc(total ? total : 1, sizeof *pool);
    fp_error e;
    descendants = fp_compile("descendants()", &e);
    if (!tab || !pool || !descendants)
        return;
    /* compile each constraint once, then give every type the list of its own and
     * its bases' (pointers into the pool) */
    for (size_t i = 0; i < nall; i++) {
        const fhir_constraint *cs;
        size_t n = fhir_constraints(&all[i], &cs);
        for (size_t k = 0; k < n; k++) {
            if (skipped(cs[k].key))
                continue;
            compiled *p = &pool[npool++];
            p->c = &cs[k];
            p->owner = &all[i];
            p->x = compile_rule(cs[k].expression, &e);
            p->elem = cs[k].elem ? fp_compile(cs[k].elem, &e) : NULL;
            if (!p->x || (cs[k].elem && !p->elem))
                nbad++;
        }
    }
    for (size_t i = 0; i < nall; i++) {
        size_t n = 0;
        for (const fhir_type *t = &all[i]; t; t = t->base)
            for (size_t k = 0; k < npool; k++)
                n += pool[k].owner == t;
        if (!n)
            continue;
        tab[i].c = calloc(n, sizeof *tab[i].c);
        if (!tab[i].c)
            continue;
        for (const fhir_type *t = &all[i]; t; t = t->base)
            for (size_t k = 0; k < npool; k++)
                if (pool[k].owner == t)
                    tab[i].c[tab[i].n++] = &pool[k];
    }
}

static const per_type *of(const fhir_type *t)
{
    if (!t || t < all || t >= all + nall)
        return NULL;
    return &tab[t - all];
}

void fp_invariants_stats(size_t *compiled_ok, size_t *failed)
{
    pthread_once(&once, build);
    *compiled_ok = npool - nbad;
    *failed = nbad;
}

#define INV_SCRATCH (64u << 10) /* first block of each scratch arena (the arena cache keeps it) */

static int check_resource(arena *a, arena *rules, const json_val *res, const char *type,
                          oo *out);

/* Check the constraints of item (type t) under resource res; a is scratch, reset here. */
static int check_item(arena *a, const fp_val *item, const fhir_type *t, const json_val *res,
                      oo *out, size_t *nerr)
{
    const per_type *pt = of(t);
    for (size_t i = 0; pt && i < pt->n; i++) {
        const compiled *c = pt->c[i];
        if (!c->x || (c->c->elem && !c->elem)) {
            /* a rule that cannot be evaluated is not a rule that holds */
            char msg[160];
            snprintf(msg, sizeof msg, "invariant %s of %s cannot be evaluated by hortus",
                     c->c->key, c->owner->name);
            if (oo_add(out, OO_WARNING, OO_NOT_SUPPORTED, msg, NULL))
                return ERR_NOMEM;
            continue;
        }
        fp_coll ctx = {.v = (fp_val *)item, .n = 1};
        if (c->elem) {
            fp_error e;
            if (fp_eval_item(c->elem, a, item, res, &ctx, &e))
                continue;
        }
        for (size_t k = 0; k < ctx.n; k++) {
            fp_coll r;
            fp_error e;
            int rc = fp_eval_item(c->x, a, &ctx.v[k], res, &r, &e);
            int holds = rc ? -2 : fp_as_bool(&r);
            if (!c->elem)
                arena_reset(a); /* the rule's lists are not needed past its answer */
            if (holds == 1 || holds == -1)
                continue; /* true, or empty: not violated */
            char msg[700];
            if (holds == -2 || holds == ERR_INVALID)
                snprintf(msg, sizeof msg, "invariant %s (%s) could not be evaluated: %.200s",
                         c->c->key, c->owner->name, rc ? e.msg : "not a boolean");
            else
                snprintf(msg, sizeof msg, "%s: %.300s [%.300s]", c->c->key, c->c->human,
                         c->c->expression);
            int sev = c->c->is_error ? OO_ERROR : OO_WARNING;
            /* where: the type the rule is on (the node's own path is not known here) */
            if (oo_add(out, (oo_severity)sev, OO_INVARIANT, msg, c->owner->name))
                return ERR_NOMEM;
            *nerr += c->c->is_error;
        }
        arena_reset(a);
    }
    return 0;
}

/* The items of a resource are listed into one scratch arena and the rules evaluated
 * in another, reset after each: checking a resource no longer leaves its evaluations
 * (tens of KB each) in the caller's arena, which for a transaction is that of the
 * whole request. */
int fp_invariants(const json_val *res, const char *type, oo *out)
{
    arena *items = arena_new(INV_SCRATCH), *rules = arena_new(INV_SCRATCH);
    int rc = items && rules ? check_resource(items, rules, res, type, out) : ERR_NOMEM;
    arena_free(items);
    arena_free(rules);
    return rc;
}

static int check_resource(arena *a, arena *rules, const json_val *res, const char *type,
                          oo *out)
{
    pthread_once(&once, build);
    if (!tab || !descendants)
        return ERR_NOMEM;
    const fhir_type *t = fhir_resource_type(type, strlen(type));
    if (!t)
        return ERR_INVALID;
    size_t nerr = 0;
    fp_error e;
    /* the resource as an item of its type, then everything under it */
    fp_coll all_items;
    int erc = fp_eval(descendants, a, res, NULL, &all_items, &e);
    if (erc == ERR_NOMEM)
        return erc;
    if (erc) { /* a work limit of the engine: the rules cannot be said to hold */
        char msg[300];
        snprintf(msg, sizeof msg, "the invariants of this %s could not be checked: %.200s",
                 type, e.msg);
        return oo_add(out, OO_ERROR, OO_TOO_COSTLY, msg, NULL) ? ERR_NOMEM : ERR_INVALID;
    }
    fp_val root = {.kind = FP_OBJ, .ftype = t, .node = res};
    int rc = check_item(rules, &root, t, res, out, &nerr);
    for (size_t i = 0; i < all_items.n && !rc; i++)
        if (all_items.v[i].ftype)
            rc = check_item(rules, &all_items.v[i], all_items.v[i].ftype, res, out, &nerr);
    if (rc)
        return rc;
    return nerr ? ERR_INVALID : 0;
}
