/*
 * funcs.c -- the FHIRPath function library (FHIRPath N1 as used by FHIR R4, the
 * FHIR-specific functions, and the few later additions the R4 test suite uses).
 *
 * Every function has the same shape (fp_fn_impl): the input collection, the
 * call node (for lambda arguments, which are evaluated per item through
 * fp_eval_with_this), the already evaluated ordinary arguments, and the output.
 * The table at the end is sorted by name and searched once per call site at
 * compile time, so evaluation calls through a resolved pointer.
 *
 * Conventions: an empty input gives an empty result unless the spec says
 * otherwise (empty(), count(), exists(), all()...); a function that needs one
 * item and receives several is an error; an empty argument where a value is
 * needed gives an empty result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "fhirpath/internal.h"

#define FN(name)                                                                          \
    static int fn_##name(fp_ctx *c, const fp_node *nd, const fp_coll *in,                 \
                         const fp_coll *args, fp_coll *out)
#define UNUSED_ARGS (void)args, (void)nd

/* ------------------------------------------------------------- helpers ---- */

static int oom(fp_ctx *c, const fp_node *nd)
{
    return fp_fail(c, ERR_NOMEM, nd, "out of memory");
}

/* The single item of `in` as a primitive view: 0 ok, 1 empty, <0 error. */
static int one(fp_ctx *c, const fp_node *nd, const fp_coll *in, fp_val *v)
{
    if (in->n == 0)
        return 1;
    if (in->n > 1)
        return fp_fail(c, ERR_INVALID, nd, "%s() needs a single input item, got %zu",
                       nd->name, in->n);
    fp_prim(c, &in->v[0], v);
    return v->novalue ? 1 : 0;
}

static int one_str(fp_ctx *c, const fp_node *nd, const fp_coll *in, const char **s, size_t *n)
{
    fp_val v;
    int rc = one(c, nd, in, &v);
    if (rc)
        return rc;
    if (v.kind != FP_STR)
        return fp_fail(c, ERR_INVALID, nd, "%s() needs a string input", nd->name);
    *s = v.u.s.p;
    *n = v.u.s.n;
    return 0;
}

static int arg_str(fp_ctx *c, const fp_node *nd, const fp_coll *a, const char **s, size_t *n)
{
    if (a->n == 0)
        return 1;
    if (a->n > 1 || a->v[0].kind != FP_STR || a->v[0].novalue)
        return fp_fail(c, ERR_INVALID, nd, "%s() needs a single string argument", nd->name);
    *s = a->v[0].u.s.p;
    *n = a->v[0].u.s.n;
    return 0;
}

static int arg_int(fp_ctx *c, const fp_node *nd, const fp_coll *a, int64_t *i)
{
    if (a->n == 0)
        return 1;
    if (a->n > 1 || a->v[0].kind != FP_INT)
        return fp_fail(c, ERR_INVALID, nd, "%s() needs a single integer argument", nd->name);
    *i = a->v[0].u.i;
    return 0;
}

static char *dupn(fp_ctx *c, const char *s, size_t n)
{
    return arena_strndup(c->a, s, n);
}

/* A string builder on the arena with a size cap. */
typedef struct sb {
    char *p;
    size_t n, cap;
    int err;
} sb;

static void sb_put(fp_ctx *c, sb *b, const char *s, size_t n)
{
    if (b->err)
        return;
    if (b->n + n > FP_MAX_STRING) {
        b->err = ERR_LIMIT;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        while (nc < b->n + n + 1)
            nc *= 2;
        char *np = arena_realloc(c->a, b->p, b->cap, nc);
        if (!np) {
            b->err = ERR_NOMEM;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static int sb_ret(fp_ctx *c, const fp_node *nd, sb *b, fp_coll *out)
{
    if (b->err == ERR_LIMIT)
        return fp_fail(c, ERR_LIMIT, nd, "string longer than %u bytes", FP_MAX_STRING);
    if (b->err)
        return oom(c, nd);
    if (fp_step(c, b->n / FP_STRING_BYTES_PER_STEP, nd))
        return ERR_LIMIT;
    if (!b->p)
        return fp_ret_str(c, out, "", 0);
    return fp_ret_str(c, out, b->p, b->n);
}

static int ret_dec(fp_ctx *c, const fp_node *nd, int rc, fp_dec d, fp_coll *out)
{
    if (rc == FP_EMPTY)
        return 0;
    if (rc)
        return fp_fail(c, ERR_INVALID, nd, "%s(): number out of range", nd->name);
    fp_val v = {.kind = FP_DEC};
    v.u.d = d;
    return fp_ret_val(c, out, &v);
}

/* ------------------------------------------------------------ existence ---- */

FN(empty)
{
    UNUSED_ARGS;
    return fp_ret_bool(c, out, in->n == 0);
}

FN(exists)
{
    UNUSED_ARGS;
    if (nd->nargs == 0)
        return fp_ret_bool(c, out, in->n != 0);
    for (size_t i = 0; i < in->n; i++) {
        fp_coll r;
        int b, rc;
        if ((rc = fp_eval_with_this(c, nd->args[0], &in->v[i], (int64_t)i, &r)) ||
            (rc = fp_singleton_bool(c, nd->args[0], &r, &b)))
            return rc;
        if (b == 1)
            return fp_ret_bool(c, out, 1);
    }
    return fp_ret_bool(c, out, 0);
}

FN(all)
{
    UNUSED_ARGS;
    for (size_t i = 0; i < in->n; i++) {
        fp_coll r;
        int b, rc;
        if ((rc = fp_eval_with_this(c, nd->args[0], &in->v[i], (int64_t)i, &r)) ||
            (rc = fp_singleton_bool(c, nd->args[0], &r, &b)))
            return rc;
        if (b != 1)
            return fp_ret_bool(c, out, 0);
    }
    return fp_ret_bool(c, out, 1);
}

static int bools(fp_ctx *c, const fp_node *nd, const fp_coll *in, int want_all, int value,
                 fp_coll *out)
{
    for (size_t i = 0; i < in->n; i++) {
        if (in->v[i].kind != FP_BOOL)
            return fp_fail(c, ERR_INVALID, nd, "%s() needs booleans", nd->name);
        int b = in->v[i].u.b == value;
        if (want_all && !b)
            return fp_ret_bool(c, out, 0);
        if (!want_all && b)
            return fp_ret_bool(c, out, 1);
    }
    return fp_ret_bool(c, out, want_all);
}

FN(allTrue)
{
    UNUSED_ARGS;
    return bools(c, nd, in, 1, 1, out);
}
FN(anyTrue)
{
    UNUSED_ARGS;
    return bools(c, nd, in, 0, 1, out);
}
FN(allFalse)
{
    UNUSED_ARGS;
    return bools(c, nd, in, 1, 0, out);
}
FN(anyFalse)
{
    UNUSED_ARGS;
    return bools(c, nd, in, 0, 0, out);
}

static int coll_has(const fp_coll *s, const fp_val *v)
{
    for (size_t i = 0; i < s->n; i++)
        if (fp_val_equal(&s->v[i], v) == 1)
            return 1;
    return 0;
}

static int subset(fp_ctx *c, const fp_node *nd, const fp_coll *a, const fp_coll *b, fp_coll *out)
{
    if (fp_step(c, a->n * (b->n + 1), nd))
        return ERR_LIMIT;
    for (size_t i = 0; i < a->n; i++)
        if (!coll_has(b, &a->v[i]))
            return fp_ret_bool(c, out, 0);
    return fp_ret_bool(c, out, 1);
}

FN(subsetOf)
{
    return subset(c, nd, in, &args[0], out);
}
FN(supersetOf)
{
    return subset(c, nd, &args[0], in, out);
}

FN(count)
{
    UNUSED_ARGS;
    (void)nd;
    return fp_ret_int(c, out, (int64_t)in->n);
}

static int distinct_list(fp_ctx *c, const fp_node *nd, const fp_coll *in, fp_list *l)
{
    if (fp_step(c, in->n * in->n / 2 + 1, nd))
        return ERR_LIMIT;
    for (size_t i = 0; i < in->n; i++) {
        fp_coll cur = fp_list_coll(l);
        if (!coll_has(&cur, &in->v[i]) && fp_list_push(c, l, &in->v[i]))
            return c->err->code;
    }
    return 0;
}

FN(distinct)
{
    UNUSED_ARGS;
    fp_list l = {0};
    int rc = distinct_list(c, nd, in, &l);
    if (rc)
        return rc;
    *out = fp_list_coll(&l);
    return 0;
}

FN(isDistinct)
{
    UNUSED_ARGS;
    fp_list l = {0};
    int rc = distinct_list(c, nd, in, &l);
    if (rc)
        return rc;
    return fp_ret_bool(c, out, l.n == in->n);
}

/* ------------------------------------------------- filtering/projection ---- */

FN(where)
{
    UNUSED_ARGS;
    fp_list l = {0};
    for (size_t i = 0; i < in->n; i++) {
        fp_coll r;
        int b, rc;
        if ((rc = fp_eval_with_this(c, nd->args[0], &in->v[i], (int64_t)i, &r)) ||
            (rc = fp_singleton_bool(c, nd->args[0], &r, &b)))
            return rc;
        if (b == 1 && fp_list_push(c, &l, &in->v[i]))
            return c->err->code;
    }
    *out = fp_list_coll(&l);
    return 0;
}

FN(select)
{
    UNUSED_ARGS;
    if (in->n == 1)
        return fp_eval_with_this(c, nd->args[0], &in->v[0], 0, out);
    fp_list l = {0};
    for (size_t i = 0; i < in->n; i++) {
        fp_coll r;
        int rc = fp_eval_with_this(c, nd->args[0], &in->v[i], (int64_t)i, &r);
        if (rc)
            return rc;
        if (fp_list_append(c, &l, &r))
            return c->err->code;
    }
    *out = fp_list_coll(&l);
    return 0;
}

FN(repeat)
{
    UNUSED_ARGS;
    fp_list l = {0};
    fp_coll queue = *in;
    size_t next = 0; /* items of l already expanded */
    int first = 1;
    for (;;) {
        const fp_coll *src = first ? &queue : NULL;
        fp_coll cur;
        if (!first) {
            if (next >= l.n)
                break;
            cur.v = &l.v[next];
            cur.n = 1;
            next++;
            src = &cur;
        }
        first = 0;
        for (size_t i = 0; i < src->n; i++) {
            fp_coll r;
            fp_val item = src->v[i];
            int rc = fp_eval_with_this(c, nd->args[0], &item, (int64_t)i, &r);
            if (rc)
                return rc;
            for (size_t k = 0; k < r.n; k++) {
                fp_coll have = fp_list_coll(&l);
                if (fp_step(c, have.n + 1, nd))
                    return ERR_LIMIT;
                if (!coll_has(&have, &r.v[k]) && fp_list_push(c, &l, &r.v[k]))
                    return c->err->code;
            }
        }
    }
    *out = fp_list_coll(&l);
    return 0;
}

FN(ofType)
{
    UNUSED_ARGS;
    fp_list l = {0};
    for (size_t i = 0; i < in->n; i++)
        if (fp_is_type(&in->v[i], &nd->type, 2) && fp_list_push(c, &l, &in->v[i]))
            return c->err->code;
    *out = fp_list_coll(&l);
    return 0;
}

/* ----------------------------------------------------------- subsetting ---- */

FN(single)
{
    UNUSED_ARGS;
    if (in->n > 1)
        return fp_fail(c, ERR_INVALID, nd, "single() on a collection of %zu items", in->n);
    *out = *in;
    return 0;
}

FN(first)
{
    UNUSED_ARGS;
    (void)c;
    (void)nd;
    if (in->n) {
        out->v = in->v;
        out->n = 1;
    }
    return 0;
}

FN(last)
{
    UNUSED_ARGS;
    (void)c;
    (void)nd;
    if (in->n) {
        out->v = in->v + in->n - 1;
        out->n = 1;
    }
    return 0;
}

FN(tail)
{
    UNUSED_ARGS;
    (void)c;
    (void)nd;
    if (in->n > 1) {
        out->v = in->v + 1;
        out->n = in->n - 1;
    }
    return 0;
}

FN(skip)
{
    int64_t k = 0;
    int rc = arg_int(c, nd, &args[0], &k);
    if (rc)
        return rc < 0 ? rc : 0;
    if (k <= 0) {
        *out = *in;
    } else if ((uint64_t)k < in->n) {
        out->v = in->v + k;
        out->n = in->n - (size_t)k;
    }
    return 0;
}

FN(take)
{
    int64_t k = 0;
    int rc = arg_int(c, nd, &args[0], &k);
    if (rc)
        return rc < 0 ? rc : 0;
    if (k > 0) {
        out->v = in->v;
        out->n = (uint64_t)k < in->n ? (size_t)k : in->n;
    }
    return 0;
}

FN(intersect)
{
    fp_list l = {0};
    if (fp_step(c, in->n * (args[0].n + 1), nd))
        return ERR_LIMIT;
    for (size_t i = 0; i < in->n; i++) {
        fp_coll have = fp_list_coll(&l);
        if (coll_has(&args[0], &in->v[i]) && !coll_has(&have, &in->v[i]) &&
            fp_list_push(c, &l, &in->v[i]))
            return c->err->code;
    }
    *out = fp_list_coll(&l);
    return 0;
}

FN(exclude)
{
    fp_list l = {0};
    if (fp_step(c, in->n * (args[0].n + 1), nd))
        return ERR_LIMIT;
    for (size_t i = 0; i < in->n; i++)
        if (!coll_has(&args[0], &in->v[i]) && fp_list_push(c, &l, &in->v[i]))
            return c->err->code;
    *out = fp_list_coll(&l);
    return 0;
}

/* ------------------------------------------------------------ combining ---- */

FN(union)
{
    fp_list l = {0};
    fp_coll both[2] = {*in, args[0]};
    for (int s = 0; s < 2; s++) {
        if (fp_step(c, both[s].n * (l.n + 1), nd))
            return ERR_LIMIT;
        for (size_t i = 0; i < both[s].n; i++) {
            fp_coll have = fp_list_coll(&l);
            if (!coll_has(&have, &both[s].v[i]) && fp_list_push(c, &l, &both[s].v[i]))
                return c->err->code;
        }
    }
    *out = fp_list_coll(&l);
    return 0;
}

FN(combine)
{
    (void)nd;
    fp_list l = {0};
    if (fp_list_append(c, &l, in) || fp_list_append(c, &l, &args[0]))
        return c->err->code;
    *out = fp_list_coll(&l);
    return 0;
}

/* ----------------------------------------------------------- conversion ---- */

FN(iif)
{
    UNUSED_ARGS;
    const fp_val *item = NULL;
    int use_item = nd->focus != NULL;
    if (use_item) {
        if (in->n > 1)
            return fp_fail(c, ERR_INVALID, nd, "iif() on a collection of %zu items", in->n);
        item = in->n ? &in->v[0] : NULL;
    }
    fp_coll r;
    int rc = use_item ? fp_eval_with_this(c, nd->args[0], item, 0, &r)
                      : fp_eval_node(c, nd->args[0], c->call_in, &r);
    if (rc)
        return rc;
    int b = 0;
    if (r.n > 1 || (r.n == 1 && r.v[0].kind != FP_BOOL))
        return fp_fail(c, ERR_INVALID, nd, "iif() criterion must be a boolean");
    if (r.n == 1)
        b = r.v[0].u.b;
    const fp_node *pick = b ? nd->args[1] : nd->nargs > 2 ? nd->args[2] : NULL;
    if (!pick)
        return 0;
    return use_item ? fp_eval_with_this(c, pick, item, 0, out)
                    : fp_eval_node(c, pick, c->call_in, out);
}

static int ci_eq(const char *s, size_t n, const char *w)
{
    size_t l = strlen(w);
    if (l != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch != w[i])
            return 0;
    }
    return 1;
}

/* conversions: 0 converted (*r set), 1 not convertible */
static int conv_bool(const fp_val *v, fp_val *r)
{
    memset(r, 0, sizeof *r);
    r->kind = FP_BOOL;
    switch (v->kind) {
    case FP_BOOL:
        r->u.b = v->u.b;
        return 0;
    case FP_INT:
        if (v->u.i == 0 || v->u.i == 1) {
            r->u.b = (int)v->u.i;
            return 0;
        }
        return 1;
    case FP_DEC: {
        fp_dec one = fp_dec_from_i64(1), zero = fp_dec_from_i64(0);
        if (fp_dec_eq(v->u.d, one) || fp_dec_eq(v->u.d, zero)) {
            r->u.b = fp_dec_eq(v->u.d, one);
            return 0;
        }
        return 1;
    }
    case FP_STR: {
        const char *s = v->u.s.p;
        size_t n = v->u.s.n;
        if (ci_eq(s, n, "true") || ci_eq(s, n, "t") || ci_eq(s, n, "yes") ||
            ci_eq(s, n, "y") || ci_eq(s, n, "1") || ci_eq(s, n, "1.0")) {
            r->u.b = 1;
            return 0;
        }
        if (ci_eq(s, n, "false") || ci_eq(s, n, "f") || ci_eq(s, n, "no") ||
            ci_eq(s, n, "n") || ci_eq(s, n, "0") || ci_eq(s, n, "0.0")) {
            r->u.b = 0;
            return 0;
        }
        return 1;
    }
    default:
        return 1;
    }
}

static int is_int_text(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    if (i == n)
        return 0;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int conv_int(const fp_val *v, fp_val *r)
{
    memset(r, 0, sizeof *r);
    r->kind = FP_INT;
    switch (v->kind) {
    case FP_INT:
        r->u.i = v->u.i;
        return 0;
    case FP_BOOL:
        r->u.i = v->u.b;
        return 0;
    case FP_STR: {
        if (!is_int_text(v->u.s.p, v->u.s.n) || v->u.s.n > 12)
            return 1;
        char tmp[16];
        memcpy(tmp, v->u.s.p, v->u.s.n);
        tmp[v->u.s.n] = 0;
        long long x = strtoll(tmp, NULL, 10);
        if (x > INT32_MAX || x < INT32_MIN)
            return 1;
        r->u.i = x;
        return 0;
    }
    default:
        return 1;
    }
}

static int is_dec_text(const char *s, size_t n)
{
    size_t i = 0, d = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, d++;
    if (!d)
        return 0;
    if (i < n && s[i] == '.') {
        i++;
        size_t f = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, f++;
        if (!f)
            return 0;
    }
    return i == n;
}

static int conv_dec(const fp_val *v, fp_val *r)
{
    memset(r, 0, sizeof *r);
    r->kind = FP_DEC;
    switch (v->kind) {
    case FP_DEC:
        r->u.d = v->u.d;
        return 0;
    case FP_INT:
        r->u.d = fp_dec_from_i64(v->u.i);
        return 0;
    case FP_BOOL:
        fp_dec_parse(v->u.b ? "1.0" : "0.0", 3, &r->u.d);
        return 0;
    case FP_STR: {
        const char *s = v->u.s.p;
        size_t n = v->u.s.n;
        if (!is_dec_text(s, n))
            return 1;
        if (s[0] == '+') {
            s++;
            n--;
        }
        return fp_dec_parse(s, n, &r->u.d) ? 1 : 0;
    }
    default:
        return 1;
    }
}

static int conv_dt(const fp_val *v, int want, fp_val *r)
{
    memset(r, 0, sizeof *r);
    r->kind = (uint8_t)want;
    enum fp_dt_kind wk = want == FP_DATE ? FP_DT_DATE : want == FP_TIME ? FP_DT_TIME : FP_DT_DATETIME;
    if (v->kind == FP_STR)
        return fp_dt_from_string(v->u.s.p, v->u.s.n, wk, &r->u.dt) ? 1 : 0;
    if (v->kind == want) {
        r->u.dt = v->u.dt;
        return 0;
    }
    if (want == FP_DATETIME && v->kind == FP_DATE) {
        r->u.dt = fp_dt_to_datetime(v->u.dt);
        return 0;
    }
    if (want == FP_DATE && v->kind == FP_DATETIME) {
        fp_dt d = v->u.dt;
        d.kind = FP_DT_DATE;
        if (d.prec > FP_DT_DAY)
            d.prec = FP_DT_DAY;
        d.hour = d.minute = d.second = 0;
        d.ms = 0;
        d.has_tz = 0;
        d.tz_min = 0;
        d.ms_digits = 0;
        r->u.dt = d;
        return 0;
    }
    return 1;
}

static int conv_qty(const fp_val *v, const char *unit, size_t un, int has_unit, fp_val *r)
{
    memset(r, 0, sizeof *r);
    r->kind = FP_QTY;
    fp_qty q;
    fp_dec d;
    switch (v->kind) {
    case FP_QTY:
        q = v->u.q;
        break;
    case FP_INT:
    case FP_DEC:
        d = v->kind == FP_INT ? fp_dec_from_i64(v->u.i) : v->u.d;
        if (fp_qty_make(d, "1", 1, &q))
            return 1;
        break;
    case FP_BOOL:
        fp_dec_parse(v->u.b ? "1.0" : "0.0", 3, &d);
        if (fp_qty_make(d, "1", 1, &q))
            return 1;
        break;
    case FP_STR:
        if (fp_qty_parse(v->u.s.p, v->u.s.n, &q))
            return 1;
        break;
    default:
        return 1;
    }
    if (has_unit) {
        fp_qty cq;
        if (fp_qty_convert(&q, unit, un, &cq))
            return 1;
        q = cq;
    }
    r->u.q = q;
    return 0;
}

int fp_str_of(fp_ctx *c, const fp_val *v0, const char **s, size_t *n)
{
    fp_val v;
    fp_prim(c, v0, &v);
    char tmp[64];
    size_t l = 0;
    if (v.novalue)
        return 1;
    switch (v.kind) {
    case FP_STR:
        *s = v.u.s.p;
        *n = v.u.s.n;
        return 0;
    case FP_BOOL:
        *s = v.u.b ? "true" : "false";
        *n = strlen(*s);
        return 0;
    case FP_INT:
        l = (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i);
        break;
    case FP_DEC:
        l = fp_dec_format(v.u.d, tmp, sizeof tmp);
        break;
    case FP_DATE:
    case FP_DATETIME:
    case FP_TIME:
        l = fp_dt_format(v.u.dt, tmp, sizeof tmp);
        break;
    case FP_QTY: {
        buf b = BUF_INIT;
        fp_qty_write(&v.u.q, &b);
        if (b.err) {
            buf_free(&b);
            return fp_fail(c, ERR_NOMEM, NULL, "out of memory");
        }
        *s = dupn(c, buf_cstr(&b), b.len);
        *n = b.len;
        buf_free(&b);
        return *s ? 0 : fp_fail(c, ERR_NOMEM, NULL, "out of memory");
    }
    default:
        return 1;
    }
    *s = dupn(c, tmp, l);
    *n = l;
    return *s ? 0 : fp_fail(c, ERR_NOMEM, NULL, "out of memory");
}

enum { CV_BOOL = 1, CV_INT, CV_DEC, CV_STR, CV_DATE, CV_DATETIME, CV_TIME, CV_QTY };

static int convert(fp_ctx *c, const fp_node *nd, const fp_coll *in, const fp_coll *args,
                   int what, int test, fp_coll *out)
{
    fp_val v, r;
    int rc = one(c, nd, in, &v);
    if (rc)
        return rc < 0 ? rc : 0;
    if (what == CV_QTY && !test && v.kind == FP_OBJ && v.node && json_get(v.node, "comparator"))
        return fp_fail(c, ERR_INVALID, nd,
                       "toQuantity(): a Quantity with a comparator has no single value");
    int bad;
    switch (what) {
    case CV_BOOL: bad = conv_bool(&v, &r); break;
    case CV_INT: bad = conv_int(&v, &r); break;
    case CV_DEC: bad = conv_dec(&v, &r); break;
    case CV_DATE: bad = conv_dt(&v, FP_DATE, &r); break;
    case CV_DATETIME: bad = conv_dt(&v, FP_DATETIME, &r); break;
    case CV_TIME: bad = conv_dt(&v, FP_TIME, &r); break;
    case CV_QTY: {
        const char *u = NULL;
        size_t un = 0;
        int has = nd->nargs > 0;
        if (has) {
            int a = arg_str(c, nd, &args[0], &u, &un);
            if (a < 0)
                return a;
            if (a)
                return 0;
        }
        bad = conv_qty(&v, u, un, has, &r);
        break;
    }
    default: {
        const char *s = NULL;
        size_t n = 0;
        bad = fp_str_of(c, &v, &s, &n);
        if (bad < 0)
            return bad;
        memset(&r, 0, sizeof r);
        r.kind = FP_STR;
        r.u.s.p = s;
        r.u.s.n = n;
    }
    }
    if (test)
        return fp_ret_bool(c, out, !bad);
    if (bad)
        return 0;
    return fp_ret_val(c, out, &r);
}

#define CONV(fname, what, test)                                                           \
    FN(fname)                                                                             \
    {                                                                                     \
        return convert(c, nd, in, args, what, test, out);                                 \
    }
CONV(toBoolean, CV_BOOL, 0)
CONV(convertsToBoolean, CV_BOOL, 1)
CONV(toInteger, CV_INT, 0)
CONV(convertsToInteger, CV_INT, 1)
CONV(toDecimal, CV_DEC, 0)
CONV(convertsToDecimal, CV_DEC, 1)
CONV(toString, CV_STR, 0)
CONV(convertsToString, CV_STR, 1)
CONV(toDate, CV_DATE, 0)
CONV(convertsToDate, CV_DATE, 1)
CONV(toDateTime, CV_DATETIME, 0)
CONV(convertsToDateTime, CV_DATETIME, 1)
CONV(toTime, CV_TIME, 0)
CONV(convertsToTime, CV_TIME, 1)
CONV(toQuantity, CV_QTY, 0)
CONV(convertsToQuantity, CV_QTY, 1)

/* --------------------------------------------------------------- strings ---- */

/* UTF-8 aware character helpers: strings index by characters (code points). */
static size_t u8_len(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            k++;
    return k;
}

/* byte offset of character index ci (n if past the end) */
static size_t u8_off(const char *s, size_t n, size_t ci)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (k == ci)
                return i;
            k++;
        }
    }
    return n;
}

static const char *find_sub(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0)
        return h;
    if (nn > hn)
        return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && !memcmp(h + i, nd, nn))
            return h + i;
    return NULL;
}

FN(indexOf)
{
    const char *s = NULL, *p = NULL;
    size_t n = 0, pn = 0;
    int rc = one_str(c, nd, in, &s, &n);
    if (rc)
        return rc < 0 ? rc : 0;
    if ((rc = arg_str(c, nd, &args[0], &p, &pn)))
        return rc < 0 ? rc : 0;
    const char *f = find_sub(s, n, p, pn);
    return fp_ret_int(c, out, f ? (int64_t)u8_len(s, (size_t)(f - s)) : -1);
}

FN(lastIndexOf)
{
    const char *s = NULL, *p = NULL;
    size_t n = 0, pn = 0;
    int rc = one_str(c, nd, in, &s, &n);
    if (rc)
        return rc < 0 ? rc : 0;
    if ((rc = arg_str(c, nd, &args[0], &p, &pn)))
        return rc < 0 ? rc : 0;
    if (pn > n)
        return fp_ret_int(c, out, -1);
    for (size_t i = n - pn + 1; i-- > 0;)
        if (!memcmp(s + i, p, pn))
            return fp_ret_int(c, out, (int64_t)u8_len(s, i));
    return fp_ret_int(c, out, -1);
}

FN(substring)
{
    const char *s = NULL;
    size_t n = 0;
    int64_t start = 0, len = -1;
    int rc = one_str(c, nd, in, &s, &n);
    if (rc)
        return rc < 0 ? rc : 0;
    if ((rc = arg_int(c, nd, &args[0], &start)))
        return rc < 0 ? rc : 0;
    if (nd->nargs > 1) {
        if ((rc = arg_int(c, nd, &args[1], &len)) < 0)
            return rc;
        if (rc)
            len = -1;
    }
    size_t chars = u8_len(s, n);
    if (start < 0 || (uint64_t)start >= chars)
        return 0;
    size_t b = u8_off(s, n, (size_t)start);
    size_t e = n;
    if (len >= 0) {
        if (len == 0)
            return fp_ret_str(c, out, "", 0);
        e = (uint64_t)start + (uint64_t)len >= chars ? n : u8_off(s, n, (size_t)(start + len));
    }
    return fp_ret_str(c, out, s + b, e - b);
}

static int str2(fp_ctx *c, const fp_node *nd, const fp_coll *in, const fp_coll *args,
                const char **s, size_t *n, const char **p, size_t *pn)
{
    int rc = one_str(c, nd, in, s, n);
    if (rc)
        return rc;
    return arg_str(c, nd, &args[0], p, pn);
}

FN(startsWith)
{
    const char *s = NULL, *p = NULL;
    size_t n = 0, pn = 0;
    int rc = str2(c, nd, in, args, &s, &n, &p, &pn);
    if (rc)
        return rc < 0 ? rc : 0;
    return fp_ret_bool(c, out, pn <= n && !memcmp(s, p, pn));
}

FN(endsWith)
{
    const char *s = NULL, *p = NULL;
    size_t n = 0, pn = 0;
    int rc = str2(c, nd, in, args, &s, &n, &p, &pn);
    if (rc)
        return rc < 0 ? rc : 0;
    return fp_ret_bool(c, out, pn <= n && !memcmp(s + n - pn, p, pn));
}

FN(contains)
{
    const char *s = NULL, *p = NULL;
    size_t n = 0, pn = 0;
    int rc = str2(c, nd, in, args, &s, &n, &p, &pn);
    if (rc)
        return rc < 0 ? rc : 0;
    return fp_ret_bool(c, out, find_sub(s, n, p, pn) != NULL);
}

static int casefn(fp_ctx *c, const fp_node *nd, const fp_coll *in, int upper, fp_coll *out)
{
    const char *s = NULL;
    size_t n = 0;
    int rc = one_str(c, nd, in, &s, &n);
    if (rc)
        return rc < 0 ? rc : 0;
    char *r = dupn(c, s, n);
    if (!r)
        return oom(c, nd);
    for (size_t i = 0; i < n; i++) {
        if (upper && r[i] >= 'a' && r[i] <= 'z')
            r[i] = (char)(r[i] - 'a' + 'A');
        else if (!upper && r[i] >= 'A' && r[i] <= 'Z')
            r[i] = (char)(r[i] - 'A' + 'a');
    }
    return fp_ret_str(c, out, r, n);
}

FN(upper)
{
    UNUSED_ARGS;
    return casefn(c, nd, in, 1, out);
}
FN(lower)
{
    UNUSED_ARGS;
    return casefn(c, nd, in, 0, out);
}

FN(replace)
{
    const char *s = NULL, *p = NULL, *r = NULL;
    size_t n = 0, pn = 0, rn = 0;
    int rc = str2(c, nd, in, args, &s, &n, &p, &pn);
    if (rc)
        return rc < 0 ? rc : 0;
    if ((rc = arg_str(c, nd, &args[1], &r, &rn)))
        return rc < 0 ? rc : 0;
    sb b = {0};
    if (pn == 0) {
        /* an empty pattern matches between every character */
        sb_put(c, &b, r, rn);
        for (size_t i = 0; i < n;) {
            size_t j = i + 1;
            while (j < n && ((unsigned char)s[j] & 0xC0) == 0x80)
                j++;
            sb_put(c, &b, s + i, j - i);
            sb_put(c, &b, r, rn);
            i = j;
        }
        return sb_ret(c, nd, &b, out);
    }
    size_t i = 0;
    while (i < n) {
        const char *f = find_sub(s + i, n - i, p, pn);
        if (!f)
            break;
        sb_put(c, &b, s + i, (size_t)(f - (s + i)));
        sb_put(c, &b, r, rn);
        i = (size_t)(f - s) + pn;
    }
    sb_put(c, &b, s + i, n - i);
    return sb_ret(c, nd, &b, out);
}

/* ------------------------------------------------------------- regexes ---- */

/*
 * FHIRPath regexes are PCRE-flavoured, so they go to PCRE2 as written. The options
 * give the spec's semantics: case-sensitive, "single line" mode (`.` matches a
 * newline: PCRE2_DOTALL), Unicode (PCRE2_UTF: `.` is one code point; \d \w \s stay
 * ASCII), `$` only at the very end (PCRE2_DOLLAR_ENDONLY, as POSIX had it). \C, which
 * could split a UTF-8 character, is refused. matchesFull() is compiled anchored at
 * both ends instead of rewriting the pattern, so error offsets stay the client's.
 *
 * PCRE2_AUTO_CALLOUT puts a callout before every pattern item: regex_callout() is
 * how the evaluation's step budget sees the matcher's work (see fhirpath.h).
 */
#define REGEX_OPTIONS                                                                     \
    (PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOTALL | PCRE2_DOLLAR_ENDONLY |         \
     PCRE2_NEVER_BACKSLASH_C | PCRE2_AUTO_CALLOUT)

int fp_regex_compile(const char *re, size_t n, int full, pcre2_code **out, char *msg,
                     size_t msgn)
{
    *out = NULL;
    if (!re)
        re = "";
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) {
        snprintf(msg, msgn, "out of memory");
        return ERR_NOMEM;
    }
    pcre2_set_max_pattern_length(cc, FP_REGEX_MAX_PATTERN);
    pcre2_set_parens_nest_limit(cc, FP_REGEX_MAX_NEST);
    uint32_t opts = REGEX_OPTIONS | (full ? PCRE2_ANCHORED | PCRE2_ENDANCHORED : 0);
    int code;
    PCRE2_SIZE off;
    *out = pcre2_compile((PCRE2_SPTR)re, n, opts, &code, &off, cc);
    pcre2_compile_context_free(cc);
    if (*out)
        return 0;
    switch (code) {
    case PCRE2_ERROR_PATTERN_STRING_TOO_LONG:
        snprintf(msg, msgn, "regular expression of %zu bytes is longer than the limit of %u",
                 n, FP_REGEX_MAX_PATTERN);
        return ERR_TOOBIG;
    case PCRE2_ERROR_PARENTHESES_NEST_TOO_DEEP:
        snprintf(msg, msgn, "regular expression nests parentheses deeper than %u",
                 FP_REGEX_MAX_NEST);
        return ERR_TOOBIG;
    case PCRE2_ERROR_PATTERN_TOO_LARGE:
    case PCRE2_ERROR_PATTERN_TOO_COMPLICATED:
        snprintf(msg, msgn, "regular expression too large once compiled");
        return ERR_TOOBIG;
    case PCRE2_ERROR_HEAP_FAILED:
        snprintf(msg, msgn, "out of memory");
        return ERR_NOMEM;
    default: {
        PCRE2_UCHAR why[120];
        if (pcre2_get_error_message(code, why, sizeof why) < 0)
            snprintf((char *)why, sizeof why, "error %d", code);
        snprintf(msg, msgn, "invalid regular expression: %s at offset %zu", (char *)why,
                 (size_t)off);
        return ERR_INVALID;
    }
    }
}

/* The pattern of a call: the one compiled with the expression when it was a
 * literal, else compiled now (*owned = 1: the caller pcre2_code_free()s it).
 * Compiling during evaluation costs a step per byte of pattern, and a pattern over
 * a limit is ERR_LIMIT here, as every limit met while evaluating. */
static int get_regex(fp_ctx *c, const fp_node *nd, const char *p, size_t pn, int full,
                     pcre2_code **re, int *owned)
{
    *owned = 0;
    if (nd->re) {
        *re = nd->re;
        return 0;
    }
    if (fp_step(c, pn, nd))
        return ERR_LIMIT;
    char msg[160];
    int rc = fp_regex_compile(p, pn, full, re, msg, sizeof msg);
    if (rc)
        return fp_fail(c, rc == ERR_TOOBIG ? ERR_LIMIT : rc, nd, "%s", msg);
    *owned = 1;
    return 0;
}

/* The matching state of one call: limits and the callout in the match context,
 * captures in the match data (both freed by regex_run_close()). */
typedef struct regex_run {
    fp_ctx *c;
    pcre2_match_context *mc;
    pcre2_match_data *md;
    PCRE2_SIZE pos; /* where the matcher stood at the last callout */
    size_t moved;   /* bytes moved over the subject not yet paid for */
} regex_run;

/* Called by PCRE2 before each pattern item is tried: one step per item and one per
 * FP_STRING_BYTES_PER_STEP bytes the matcher moved (forwards or back) since the last
 * call. Returning PCRE2_ERROR_CALLOUT abandons the match. */
static int regex_callout(pcre2_callout_block *cb, void *data)
{
    regex_run *r = data;
    PCRE2_SIZE at = cb->current_position;
    r->moved += at > r->pos ? at - r->pos : r->pos - at;
    r->pos = at;
    r->c->steps += 1 + r->moved / FP_STRING_BYTES_PER_STEP;
    r->moved %= FP_STRING_BYTES_PER_STEP;
    return r->c->steps > r->c->max_steps ? PCRE2_ERROR_CALLOUT : 0;
}

/* pairs: capture pairs wanted (1 for a yes/no answer; group 0..pairs-1). */
static int regex_run_open(fp_ctx *c, const fp_node *nd, uint32_t pairs, regex_run *r)
{
    memset(r, 0, sizeof *r);
    r->c = c;
    r->mc = pcre2_match_context_create(NULL);
    r->md = pcre2_match_data_create(pairs, NULL);
    if (!r->mc || !r->md) {
        pcre2_match_context_free(r->mc);
        pcre2_match_data_free(r->md);
        return oom(c, nd);
    }
    pcre2_set_match_limit(r->mc, FP_REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(r->mc, FP_REGEX_DEPTH_LIMIT);
    pcre2_set_heap_limit(r->mc, FP_REGEX_HEAP_LIMIT_KIB);
    pcre2_set_callout(r->mc, regex_callout, r);
    return 0;
}

static void regex_run_close(regex_run *r)
{
    pcre2_match_data_free(r->md);
    pcre2_match_context_free(r->mc);
}

/* Search s[0..n) from byte `at`: the number of capture pairs set (>= 1) on a match,
 * 0 on none, or a negative code with the error reported. */
static int regex_run_match(regex_run *r, const fp_node *nd, const pcre2_code *re,
                           const char *s, size_t n, size_t at, uint32_t opts)
{
    if (!s)
        s = "";
    r->pos = at;
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, opts, r->md, r->mc);
    if (rc == 0) /* more groups than pairs asked for: all of them are set */
        return (int)pcre2_get_ovector_count(r->md);
    if (rc > 0)
        return rc;
    switch (rc) {
    case PCRE2_ERROR_NOMATCH:
        return 0;
    case PCRE2_ERROR_CALLOUT:
        return fp_fail(r->c, ERR_LIMIT, nd,
                       "regular expression too costly: the evaluation reached its work "
                       "limit of %llu steps while matching",
                       (unsigned long long)r->c->max_steps);
    case PCRE2_ERROR_MATCHLIMIT:
        return fp_fail(r->c, ERR_LIMIT, nd,
                       "regular expression too costly: more than %u backtracking points "
                       "(match limit)",
                       FP_REGEX_MATCH_LIMIT);
    case PCRE2_ERROR_DEPTHLIMIT:
        return fp_fail(r->c, ERR_LIMIT, nd,
                       "regular expression too costly: backtracking nested deeper than %u "
                       "(depth limit)",
                       FP_REGEX_DEPTH_LIMIT);
    case PCRE2_ERROR_HEAPLIMIT:
        return fp_fail(r->c, ERR_LIMIT, nd,
                       "regular expression too costly: more than %u KiB of backtracking "
                       "memory (heap limit)",
                       FP_REGEX_HEAP_LIMIT_KIB);
    case PCRE2_ERROR_NOMEMORY:
        return oom(r->c, nd);
    default: {
        PCRE2_UCHAR why[120];
        if (pcre2_get_error_message(rc, why, sizeof why) < 0)
            snprintf((char *)why, sizeof why, "error %d", rc);
        return fp_fail(r->c, ERR_INTERNAL, nd, "regular expression match failed: %s",
                       (char *)why);
    }
    }
}

static int matches_impl(fp_ctx *c, const fp_node *nd, const fp_coll *in, const fp_coll *args,
                        int full, fp_coll *out)
{
    const char *s = NULL, *p = NULL;
    size_t n = 0, pn = 0;
    int rc = str2(c, nd, in, args, &s, &n, &p, &pn);
    if (rc)
        return rc < 0 ? rc : 0;
    pcre2_code *re = NULL;
    int owned = 0;
    if ((rc = get_regex(c, nd, p, pn, full, &re, &owned)))
        return rc;
    regex_run r;
    if ((rc = regex_run_open(c, nd, 1, &r)) == 0) {
        rc = regex_run_match(&r, nd, re, s, n, 0, 0);
        regex_run_close(&r);
    }
    if (owned)
        pcre2_code_free(re);
    return rc < 0 ? rc : fp_ret_bool(c, out, rc > 0);
}

FN(matches)
{
    return matches_impl(c, nd, in, args, 0, out);
}
FN(matchesFull)
{
    return matches_impl(c, nd, in, args, 1, out);
}

/* Every match replaced by the substitution, where $0..$9 stand for the groups (an
 * unset group for nothing). After an empty match the next one may not be empty at
 * the same place; when there is none the search moves on by one character. */
static int replace_all(regex_run *r, const fp_node *nd, const pcre2_code *re, const char *s,
                       size_t n, const char *sub, size_t subn, sb *b)
{
    fp_ctx *c = r->c;
    size_t at = 0, copied = 0;
    uint32_t opts = 0;
    while (at <= n) {
        if (fp_step(c, 1, nd))
            return ERR_LIMIT;
        int sets = regex_run_match(r, nd, re, s, n, at, opts);
        if (sets < 0)
            return sets;
        if (sets == 0) {
            if (!opts || at == n)
                break;
            at++; /* past the empty match: one character on */
            while (at < n && ((unsigned char)s[at] & 0xC0) == 0x80)
                at++;
            opts = 0;
            continue;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        if (ov[0] < copied || ov[1] < ov[0] || ov[1] > n) /* \K can do this */
            return fp_fail(c, ERR_INVALID, nd,
                           "replaceMatches(): the match does not follow the previous one "
                           "(\\K in the pattern?)");
        sb_put(c, b, s + copied, ov[0] - copied);
        for (size_t k = 0; k < subn; k++) {
            if (sub[k] == '$' && k + 1 < subn && sub[k + 1] >= '0' && sub[k + 1] <= '9') {
                int g = sub[++k] - '0';
                if (g < sets && ov[2 * g] != PCRE2_UNSET)
                    sb_put(c, b, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
            } else {
                sb_put(c, b, sub + k, 1);
            }
        }
        copied = at = ov[1];
        opts = ov[0] == ov[1] ? PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED : 0;
    }
    sb_put(c, b, s + copied, n - copied);
    return 0;
}

FN(replaceMatches)
{
    const char *s = NULL, *p = NULL, *r = NULL;
    size_t n = 0, pn = 0, rn = 0;
    int rc = str2(c, nd, in, args, &s, &n, &p, &pn);
    if (rc)
        return rc < 0 ? rc : 0;
    if ((rc = arg_str(c, nd, &args[1], &r, &rn)))
        return rc < 0 ? rc : 0;
    if (pn == 0)
        return fp_ret_str(c, out, s, n);
    pcre2_code *re = NULL;
    int owned = 0;
    if ((rc = get_regex(c, nd, p, pn, 0, &re, &owned)))
        return rc;
    regex_run run;
    sb b = {0};
    if ((rc = regex_run_open(c, nd, 10, &run)) == 0) {
        rc = replace_all(&run, nd, re, s, n, r, rn, &b);
        regex_run_close(&run);
    }
    if (owned)
        pcre2_code_free(re);
    return rc ? rc : sb_ret(c, nd, &b, out);
}

FN(length)
{
    UNUSED_ARGS;
    const char *s = NULL;
    size_t n = 0;
    int rc = one_str(c, nd, in, &s, &n);
    if (rc)
        return rc < 0 ? rc : 0;
    return fp_ret_int(c, out, (int64_t)u8_len(s, n));
}

FN(toChars)
{
    UNUSED_ARGS;
    const char *s = NULL;
    size_t n = 0;
    int rc = one_str(c, nd, in, &s, &n);
    if (rc)
        return rc < 0 ? rc : 0;
    fp_list l = {0};
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && ((unsigned char)s[j] & 0xC0) == 0x80)
            j++;
        fp_val v = {.kind = FP_STR};
        v.u.s.p = s + i;
        v.u.s.n = j - i;
        if (fp_list_push(c, &l, &v))
            return c->err->code;
        i = j;
    }
    *out = fp_list_coll(&l);
    return 0;
}

FN(trim)
{
    UNUSED_ARGS;
    const char *s = NULL;
    size_t n = 0;
    int rc = one_str(c, nd, in, &s, &n);
    if (rc)
        return rc < 0 ? rc : 0;
    while (n && (s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    return fp_ret_str(c, out, s, n);
}

FN(split)
{
    const char *s = NULL, *p = NULL;
    size_t n = 0, pn = 0;
    int rc = str2(c, nd, in, args, &s, &n, &p, &pn);
    if (rc)
        return rc < 0 ? rc : 0;
    fp_list l = {0};
    size_t i = 0;
    for (;;) {
        const char *f = pn ? find_sub(s + i, n - i, p, pn) : NULL;
        size_t e = f ? (size_t)(f - s) : n;
        fp_val v = {.kind = FP_STR};
        v.u.s.p = s + i;
        v.u.s.n = e - i;
        if (fp_list_push(c, &l, &v))
            return c->err->code;
        if (!f)
            break;
        i = e + pn;
    }
    *out = fp_list_coll(&l);
    return 0;
}

FN(join)
{
    const char *sep = "";
    size_t sn = 0;
    if (nd->nargs) {
        int rc = arg_str(c, nd, &args[0], &sep, &sn);
        if (rc < 0)
            return rc;
    }
    sb b = {0};
    int any = 0;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = NULL;
        size_t n = 0;
        if (in->v[i].novalue)
            continue;
        int rc = fp_str_of(c, &in->v[i], &s, &n);
        if (rc < 0)
            return rc;
        if (rc)
            return fp_fail(c, ERR_INVALID, nd, "join() needs strings");
        if (any++)
            sb_put(c, &b, sep, sn);
        sb_put(c, &b, s, n);
    }
    return sb_ret(c, nd, &b, out);
}

static const char b64s[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64val(char ch, int url)
{
    const char *t = url ? b64u : b64s;
    const char *f = ch ? strchr(t, ch) : NULL;
    return f ? (int)(f - t) : -1;
}

static int codec(fp_ctx *c, const fp_node *nd, const fp_coll *in, const fp_coll *args,
                 int decode, fp_coll *out)
{
    const char *s = NULL, *fmt = NULL;
    size_t n = 0, fn = 0;
    int rc = str2(c, nd, in, args, &s, &n, &fmt, &fn);
    if (rc)
        return rc < 0 ? rc : 0;
    sb b = {0};
    int url = fn == 9 && !memcmp(fmt, "urlbase64", 9);
    if ((fn == 6 && !memcmp(fmt, "base64", 6)) || url) {
        const char *t = url ? b64u : b64s;
        if (!decode) {
            for (size_t i = 0; i < n; i += 3) {
                unsigned v = (unsigned char)s[i] << 16;
                if (i + 1 < n)
                    v |= (unsigned char)s[i + 1] << 8;
                if (i + 2 < n)
                    v |= (unsigned char)s[i + 2];
                char q[4] = {t[(v >> 18) & 63], t[(v >> 12) & 63],
                             i + 1 < n ? t[(v >> 6) & 63] : '=', i + 2 < n ? t[v & 63] : '='};
                sb_put(c, &b, q, 4);
            }
        } else {
            unsigned acc = 0;
            int bits = 0;
            for (size_t i = 0; i < n; i++) {
                if (s[i] == '=')
                    break;
                int v = b64val(s[i], url);
                if (v < 0)
                    return 0;
                acc = (acc << 6) | (unsigned)v;
                bits += 6;
                if (bits >= 8) {
                    bits -= 8;
                    char ch = (char)((acc >> bits) & 0xFF);
                    sb_put(c, &b, &ch, 1);
                }
            }
        }
    } else if (fn == 3 && !memcmp(fmt, "hex", 3)) {
        static const char hx[] = "0123456789abcdef";
        if (!decode) {
            for (size_t i = 0; i < n; i++) {
                char q[2] = {hx[(unsigned char)s[i] >> 4], hx[(unsigned char)s[i] & 15]};
                sb_put(c, &b, q, 2);
            }
        } else {
            if (n % 2)
                return 0;
            for (size_t i = 0; i < n; i += 2) {
                int h = -1, l = -1;
                const char *ph = strchr(hx, s[i] | 0x20), *pl = strchr(hx, s[i + 1] | 0x20);
                if (s[i] && ph)
                    h = (int)(ph - hx);
                if (s[i + 1] && pl)
                    l = (int)(pl - hx);
                if (h < 0 || l < 0)
                    return 0;
                char ch = (char)(h * 16 + l);
                sb_put(c, &b, &ch, 1);
            }
        }
    } else {
        return 0;
    }
    return sb_ret(c, nd, &b, out);
}

FN(encode)
{
    return codec(c, nd, in, args, 0, out);
}
FN(decode)
{
    return codec(c, nd, in, args, 1, out);
}

static int escape_impl(fp_ctx *c, const fp_node *nd, const fp_coll *in, const fp_coll *args,
                       int un, fp_coll *out)
{
    const char *s = NULL, *fmt = NULL;
    size_t n = 0, fn = 0;
    int rc = str2(c, nd, in, args, &s, &n, &fmt, &fn);
    if (rc)
        return rc < 0 ? rc : 0;
    sb b = {0};
    int html = fn == 4 && !memcmp(fmt, "html", 4);
    int json = fn == 4 && !memcmp(fmt, "json", 4);
    if (!html && !json)
        return 0;
    static const struct {
        char ch;
        const char *h, *j;
    } map[] = {{'&', "&amp;", NULL},   {'<', "&lt;", NULL},     {'>', "&gt;", NULL},
               {'"', "&quot;", "\\\""}, {'\'', "&#39;", NULL}, {'\\', NULL, "\\\\"},
               {'\n', NULL, "\\n"},     {'\r', NULL, "\\r"},    {'\t', NULL, "\\t"}};
    size_t nm = sizeof map / sizeof map[0];
    for (size_t i = 0; i < n;) {
        int done = 0;
        for (size_t k = 0; k < nm && !done; k++) {
            const char *e = html ? map[k].h : map[k].j;
            if (!e)
                continue;
            if (!un && s[i] == map[k].ch) {
                sb_put(c, &b, e, strlen(e));
                i++;
                done = 1;
            } else if (un && !strncmp(s + i, e, strlen(e)) && strlen(e) <= n - i) {
                sb_put(c, &b, &map[k].ch, 1);
                i += strlen(e);
                done = 1;
            }
        }
        if (!done) {
            sb_put(c, &b, s + i, 1);
            i++;
        }
    }
    return sb_ret(c, nd, &b, out);
}

FN(escape)
{
    return escape_impl(c, nd, in, args, 0, out);
}
FN(unescape)
{
    return escape_impl(c, nd, in, args, 1, out);
}

/* ------------------------------------------------------------------ math ---- */

typedef int (*dec_fn1)(fp_dec, fp_dec *);

static int num_in(fp_ctx *c, const fp_node *nd, const fp_coll *in, fp_val *v)
{
    int rc = one(c, nd, in, v);
    if (rc)
        return rc;
    if (v->kind != FP_INT && v->kind != FP_DEC && v->kind != FP_QTY)
        return fp_fail(c, ERR_INVALID, nd, "%s() needs a number", nd->name);
    return 0;
}

static fp_dec as_dec(const fp_val *v)
{
    return v->kind == FP_INT ? fp_dec_from_i64(v->u.i) : v->u.d;
}

FN(abs)
{
    UNUSED_ARGS;
    fp_val v;
    int rc = num_in(c, nd, in, &v);
    if (rc)
        return rc < 0 ? rc : 0;
    if (v.kind == FP_INT && v.u.i == INT64_MIN)
        return fp_fail(c, ERR_INVALID, nd, "abs(): integer overflow");
    if (v.kind == FP_INT)
        return fp_ret_int(c, out, v.u.i < 0 ? -v.u.i : v.u.i);
    fp_val r = {.kind = v.kind};
    if (v.kind == FP_QTY)
        r.u.q = fp_qty_abs(&v.u.q);
    else
        r.u.d = fp_dec_abs(v.u.d);
    return fp_ret_val(c, out, &r);
}

static int int_result(fp_ctx *c, const fp_node *nd, fp_dec d, fp_coll *out)
{
    int64_t i = 0;
    if (fp_dec_to_i64(d, &i))
        return fp_fail(c, ERR_INVALID, nd, "%s(): result out of range", nd->name);
    return fp_ret_int(c, out, i);
}

static int rounding(fp_ctx *c, const fp_node *nd, const fp_coll *in,
                    fp_dec (*f)(fp_dec), fp_coll *out)
{
    fp_val v;
    int rc = num_in(c, nd, in, &v);
    if (rc)
        return rc < 0 ? rc : 0;
    if (v.kind == FP_INT)
        return fp_ret_int(c, out, v.u.i);
    if (v.kind == FP_QTY)
        return fp_fail(c, ERR_INVALID, nd, "%s() needs a number", nd->name);
    return int_result(c, nd, f(v.u.d), out);
}

FN(ceiling)
{
    UNUSED_ARGS;
    return rounding(c, nd, in, fp_dec_ceiling, out);
}
FN(floor)
{
    UNUSED_ARGS;
    return rounding(c, nd, in, fp_dec_floor, out);
}
FN(truncate)
{
    UNUSED_ARGS;
    return rounding(c, nd, in, fp_dec_truncate, out);
}

FN(round)
{
    fp_val v;
    int rc = num_in(c, nd, in, &v);
    if (rc)
        return rc < 0 ? rc : 0;
    int64_t digits = 0;
    if (nd->nargs) {
        if ((rc = arg_int(c, nd, &args[0], &digits)))
            return rc < 0 ? rc : 0;
        if (digits < 0 || digits > FP_DEC_MAX_SCALE)
            return fp_fail(c, ERR_INVALID, nd, "round() precision must be 0..%d",
                           FP_DEC_MAX_SCALE);
    }
    if (v.kind == FP_QTY)
        return fp_fail(c, ERR_INVALID, nd, "round() needs a number");
    fp_dec d;
    rc = fp_dec_round(as_dec(&v), (int)digits, &d);
    return ret_dec(c, nd, rc, d, out);
}

static int math1(fp_ctx *c, const fp_node *nd, const fp_coll *in, dec_fn1 f, fp_coll *out)
{
    fp_val v;
    int rc = num_in(c, nd, in, &v);
    if (rc)
        return rc < 0 ? rc : 0;
    if (v.kind == FP_QTY)
        return fp_fail(c, ERR_INVALID, nd, "%s() needs a number", nd->name);
    fp_dec d;
    rc = f(as_dec(&v), &d);
    return ret_dec(c, nd, rc, d, out);
}

FN(sqrt)
{
    UNUSED_ARGS;
    return math1(c, nd, in, fp_dec_sqrt, out);
}
FN(exp)
{
    UNUSED_ARGS;
    return math1(c, nd, in, fp_dec_exp, out);
}
FN(ln)
{
    UNUSED_ARGS;
    return math1(c, nd, in, fp_dec_ln, out);
}

static int num_arg(fp_ctx *c, const fp_node *nd, const fp_coll *a, fp_val *v)
{
    if (a->n == 0)
        return 1;
    if (a->n > 1 || (a->v[0].kind != FP_INT && a->v[0].kind != FP_DEC))
        return fp_fail(c, ERR_INVALID, nd, "%s() needs a number argument", nd->name);
    *v = a->v[0];
    return 0;
}

FN(log)
{
    fp_val v, b;
    int rc = num_in(c, nd, in, &v);
    if (rc)
        return rc < 0 ? rc : 0;
    if ((rc = num_arg(c, nd, &args[0], &b)))
        return rc < 0 ? rc : 0;
    fp_dec d;
    rc = fp_dec_log(as_dec(&v), as_dec(&b), &d);
    return ret_dec(c, nd, rc, d, out);
}

FN(power)
{
    fp_val v, e;
    int rc = num_in(c, nd, in, &v);
    if (rc)
        return rc < 0 ? rc : 0;
    if ((rc = num_arg(c, nd, &args[0], &e)))
        return rc < 0 ? rc : 0;
    fp_dec d;
    rc = fp_dec_power(as_dec(&v), as_dec(&e), &d);
    if (rc == 0 && v.kind == FP_INT && e.kind == FP_INT && fp_dec_is_integral(d)) {
        int64_t i = 0;
        if (fp_dec_to_i64(d, &i) == 0 && i <= INT32_MAX && i >= INT32_MIN)
            return fp_ret_int(c, out, i);
    }
    return ret_dec(c, nd, rc, d, out);
}

/* ---------------------------------------------------- boundaries/precision ---- */

static int boundary(fp_ctx *c, const fp_node *nd, const fp_coll *in, const fp_coll *args,
                    int high, fp_coll *out)
{
    fp_val v;
    int rc = one(c, nd, in, &v);
    if (rc)
        return rc < 0 ? rc : 0;
    int64_t p = -1;
    if (nd->nargs) {
        if ((rc = arg_int(c, nd, &args[0], &p)))
            return rc < 0 ? rc : 0;
        if (p < 0 || p > 100)
            return 0;
    }
    fp_val r = {.kind = v.kind};
    switch (v.kind) {
    case FP_INT:
    case FP_DEC: {
        fp_dec d = as_dec(&v);
        int prec = p < 0 ? FP_DEC_DEFAULT_BOUNDARY : (int)p;
        r.kind = FP_DEC;
        rc = high ? fp_dec_high_boundary(d, prec, &r.u.d) : fp_dec_low_boundary(d, prec, &r.u.d);
        break;
    }
    case FP_DATE:
    case FP_DATETIME:
    case FP_TIME:
        rc = high ? fp_dt_high_boundary(v.u.dt, (int)p, &r.u.dt)
                  : fp_dt_low_boundary(v.u.dt, (int)p, &r.u.dt);
        if (rc == 0)
            r.kind = r.u.dt.kind == FP_DT_DATE ? FP_DATE
                     : r.u.dt.kind == FP_DT_TIME ? FP_TIME
                                                 : FP_DATETIME;
        break;
    case FP_QTY: {
        int prec = p < 0 ? FP_DEC_DEFAULT_BOUNDARY : (int)p;
        rc = high ? fp_qty_high_boundary(&v.u.q, prec, &r.u.q)
                  : fp_qty_low_boundary(&v.u.q, prec, &r.u.q);
        break;
    }
    default:
        return fp_fail(c, ERR_INVALID, nd, "%s() needs a number, date/time or quantity",
                       nd->name);
    }
    if (rc == FP_EMPTY)
        return 0;
    if (rc)
        return fp_fail(c, ERR_INVALID, nd, "%s(): value out of range", nd->name);
    return fp_ret_val(c, out, &r);
}

FN(lowBoundary)
{
    return boundary(c, nd, in, args, 0, out);
}
FN(highBoundary)
{
    return boundary(c, nd, in, args, 1, out);
}

FN(precision)
{
    UNUSED_ARGS;
    fp_val v;
    int rc = one(c, nd, in, &v);
    if (rc)
        return rc < 0 ? rc : 0;
    switch (v.kind) {
    case FP_INT:
        return fp_ret_int(c, out, 0);
    case FP_DEC:
        return fp_ret_int(c, out, fp_dec_precision(v.u.d));
    case FP_QTY:
        return fp_ret_int(c, out, fp_dec_precision(v.u.q.value));
    case FP_DATE:
    case FP_DATETIME:
    case FP_TIME:
        return fp_ret_int(c, out, fp_dt_precision(v.u.dt));
    default:
        return fp_fail(c, ERR_INVALID, nd, "precision() needs a number or date/time");
    }
}

FN(comparable)
{
    fp_val v;
    int rc = one(c, nd, in, &v);
    if (rc)
        return rc < 0 ? rc : 0;
    if (args[0].n != 1)
        return 0;
    fp_val w;
    fp_prim(c, &args[0].v[0], &w);
    if (v.kind != FP_QTY || w.kind != FP_QTY)
        return fp_fail(c, ERR_INVALID, nd, "comparable() needs quantities");
    return fp_ret_bool(c, out, fp_qty_comparable(&v.u.q, &w.u.q));
}

/* ------------------------------------------------------- tree navigation ---- */

FN(children)
{
    UNUSED_ARGS;
    (void)nd;
    fp_list l = {0};
    for (size_t i = 0; i < in->n; i++) {
        int rc = fp_children_all(c, &in->v[i], &l);
        if (rc)
            return rc;
    }
    *out = fp_list_coll(&l);
    return 0;
}

FN(descendants)
{
    UNUSED_ARGS;
    fp_list l = {0};
    for (size_t i = 0; i < in->n; i++) {
        int rc = fp_children_all(c, &in->v[i], &l);
        if (rc)
            return rc;
    }
    /* breadth first: expand each item once; JSON trees have no cycles */
    for (size_t k = 0; k < l.n; k++) {
        fp_val it = l.v[k];
        int rc = fp_children_all(c, &it, &l);
        if (rc)
            return rc;
        if (fp_step(c, 1, nd))
            return ERR_LIMIT;
    }
    *out = fp_list_coll(&l);
    return 0;
}

/* --------------------------------------------------------------- utility ---- */

FN(trace)
{
    if (c->env && c->env->trace) {
        const char *name = "";
        size_t nn = 0;
        if (args[0].n == 1 && args[0].v[0].kind == FP_STR) {
            name = args[0].v[0].u.s.p;
            nn = args[0].v[0].u.s.n;
        }
        fp_coll shown = *in;
        if (nd->nargs > 1) {
            fp_list l = {0};
            for (size_t i = 0; i < in->n; i++) {
                fp_coll r;
                int rc = fp_eval_with_this(c, nd->args[1], &in->v[i], (int64_t)i, &r);
                if (rc)
                    return rc;
                if (fp_list_append(c, &l, &r))
                    return c->err->code;
            }
            shown = fp_list_coll(&l);
        }
        buf b = BUF_INIT;
        fp_write_json(&b, &shown);
        fprintf(stderr, "trace %.*s: %s\n", (int)nn, name, buf_cstr(&b));
        buf_free(&b);
    }
    *out = *in;
    return 0;
}

static void sample_now(fp_ctx *c)
{
    if (c->now_set)
        return;
    int64_t ms = 0;
    if (c->env && c->env->now_ms) {
        ms = c->env->now_ms;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    c->now = fp_dt_now(ms, c->env ? c->env->tz_offset_min : 0);
    c->now_ms = ms;
    c->now_set = 1;
}

FN(now)
{
    UNUSED_ARGS;
    (void)in;
    (void)nd;
    sample_now(c);
    fp_val v = {.kind = FP_DATETIME};
    v.u.dt = c->now;
    return fp_ret_val(c, out, &v);
}

FN(today)
{
    UNUSED_ARGS;
    (void)in;
    (void)nd;
    sample_now(c);
    fp_val v = {.kind = FP_DATE};
    v.u.dt = fp_dt_today(c->now_ms, c->env ? c->env->tz_offset_min : 0);
    return fp_ret_val(c, out, &v);
}

FN(timeOfDay)
{
    UNUSED_ARGS;
    (void)in;
    (void)nd;
    sample_now(c);
    fp_val v = {.kind = FP_TIME};
    v.u.dt = fp_dt_time_of_day(c->now_ms, c->env ? c->env->tz_offset_min : 0);
    return fp_ret_val(c, out, &v);
}

FN(not)
{
    UNUSED_ARGS;
    int b;
    int rc = fp_singleton_bool(c, nd, in, &b);
    if (rc)
        return rc;
    if (b < 0)
        return 0;
    return fp_ret_bool(c, out, !b);
}

/* ------------------------------------------------------------------ types ---- */

FN(is)
{
    UNUSED_ARGS;
    if (in->n == 0)
        return 0;
    if (in->n > 1)
        return fp_fail(c, ERR_INVALID, nd, "is() needs a single item, got %zu", in->n);
    return fp_ret_bool(c, out, fp_is_type(&in->v[0], &nd->type, 0));
}

FN(as)
{
    UNUSED_ARGS;
    if (in->n > 1)
        return fp_fail(c, ERR_INVALID, nd, "as() needs a single item, got %zu", in->n);
    if (in->n == 1 && fp_is_type(&in->v[0], &nd->type, 1))
        *out = *in;
    return 0;
}

FN(type)
{
    UNUSED_ARGS;
    (void)nd;
    fp_list l = {0};
    for (size_t i = 0; i < in->n; i++) {
        fp_val v = {.kind = FP_TYPE};
        fp_type_of(&in->v[i], &v.u.t.ns, &v.u.t.name);
        if (fp_list_push(c, &l, &v))
            return c->err->code;
    }
    *out = fp_list_coll(&l);
    return 0;
}

/* ------------------------------------------------------------- aggregates ---- */

FN(aggregate)
{
    fp_coll total = nd->nargs > 1 ? args[1] : (fp_coll){NULL, 0};
    const fp_coll *save = c->total;
    for (size_t i = 0; i < in->n; i++) {
        fp_coll r;
        c->total = &total;
        int rc = fp_eval_with_this(c, nd->args[0], &in->v[i], (int64_t)i, &r);
        c->total = save;
        if (rc)
            return rc;
        total = r;
    }
    *out = total;
    return 0;
}

static int fold(fp_ctx *c, const fp_node *nd, const fp_coll *in, int what, fp_coll *out)
{
    /* what: 0 sum, 1 min, 2 max, 3 avg */
    if (in->n == 0)
        return 0;
    fp_val acc;
    fp_prim(c, &in->v[0], &acc);
    if (acc.kind != FP_INT && acc.kind != FP_DEC && acc.kind != FP_QTY &&
        !(what == 1 || what == 2))
        return 0;
    for (size_t i = 1; i < in->n; i++) {
        fp_val x;
        fp_prim(c, &in->v[i], &x);
        if (what == 0 || what == 3) {
            fp_dec s;
            if (acc.kind == FP_INT && x.kind == FP_INT) {
                if (__builtin_add_overflow(acc.u.i, x.u.i, &acc.u.i))
                    return fp_fail(c, ERR_INVALID, nd, "sum(): integer overflow");
                continue;
            }
            if ((acc.kind == FP_INT || acc.kind == FP_DEC) &&
                (x.kind == FP_INT || x.kind == FP_DEC)) {
                if (fp_dec_add(as_dec(&acc), as_dec(&x), &s))
                    return fp_fail(c, ERR_INVALID, nd, "sum(): overflow");
                acc.kind = FP_DEC;
                acc.u.d = s;
                continue;
            }
            if (acc.kind == FP_QTY && x.kind == FP_QTY) {
                fp_qty q;
                if (fp_qty_add(&acc.u.q, &x.u.q, &q))
                    return 0;
                acc.u.q = q;
                continue;
            }
            return 0;
        }
        int cmp;
        int rc = fp_val_compare(c, nd, &acc, &x, &cmp);
        if (rc < 0)
            return rc;
        if (rc > 0)
            return 0;
        if ((what == 1 && cmp > 0) || (what == 2 && cmp < 0))
            acc = x;
    }
    if (what == 3) {
        fp_dec d;
        fp_dec n = fp_dec_from_i64((int64_t)in->n);
        if (acc.kind == FP_QTY) {
            fp_qty q;
            if (fp_qty_div_number(&acc.u.q, n, &q))
                return 0;
            acc.u.q = q;
        } else {
            if (fp_dec_div(as_dec(&acc), n, &d))
                return 0;
            acc.kind = FP_DEC;
            acc.u.d = d;
        }
    }
    acc.node = NULL;
    acc.ftype = NULL;
    acc.ext = NULL;
    return fp_ret_val(c, out, &acc);
}

FN(sum)
{
    UNUSED_ARGS;
    return fold(c, nd, in, 0, out);
}
FN(min)
{
    UNUSED_ARGS;
    return fold(c, nd, in, 1, out);
}
FN(max)
{
    UNUSED_ARGS;
    return fold(c, nd, in, 2, out);
}
FN(avg)
{
    UNUSED_ARGS;
    return fold(c, nd, in, 3, out);
}

/* ----------------------------------------------------------------- sort ---- */

typedef struct sort_item {
    fp_val v;
    fp_coll *keys; /* one per sort key */
} sort_item;

typedef struct sort_ctx {
    fp_ctx *c;
    const fp_node *nd;
    int nkeys;
    const signed char *desc;
    int err;
} sort_ctx;

static int key_cmp(sort_ctx *s, const fp_coll *a, const fp_coll *b)
{
    if (a->n == 0 || b->n == 0)
        return (a->n == 0) - (b->n == 0); /* empty keys sort after values */
    int r;
    int rc = fp_val_compare(s->c, s->nd, &a->v[0], &b->v[0], &r);
    if (rc < 0) {
        s->err = rc;
        return 0;
    }
    return rc ? 0 : r;
}

/* insertion/merge sort that keeps order of equal items (stable) */
static void msort(sort_ctx *s, sort_item *a, sort_item *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    msort(s, a, tmp, h);
    msort(s, a + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int r = 0;
        for (int q = 0; q < s->nkeys && r == 0; q++) {
            r = key_cmp(s, &a[i].keys[q], &a[j].keys[q]);
            if (s->desc[q])
                r = -r;
        }
        tmp[k++] = r <= 0 ? a[i++] : a[j++];
    }
    while (i < h)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

FN(sort)
{
    UNUSED_ARGS;
    if (in->n == 0)
        return 0;
    int nk = nd->nargs ? nd->nargs : 1;
    signed char desc[8] = {0};
    sort_item *items = arena_alloc(c->a, in->n * sizeof *items);
    sort_item *tmp = arena_alloc(c->a, in->n * sizeof *tmp);
    if (!items || !tmp)
        return oom(c, nd);
    for (size_t i = 0; i < in->n; i++) {
        items[i].v = in->v[i];
        items[i].keys = arena_alloc(c->a, (size_t)nk * sizeof(fp_coll));
        if (!items[i].keys)
            return oom(c, nd);
        if (!nd->nargs) {
            items[i].keys[0].v = &in->v[i]; /* stable: items move while sorting */
            items[i].keys[0].n = 1;
            continue;
        }
        for (int k = 0; k < nk; k++) {
            const fp_node *key = nd->args[k];
            if (key->kind == N_NEG) {
                desc[k] = 1;
                key = key->args[0];
            }
            int rc = fp_eval_with_this(c, key, &in->v[i], (int64_t)i, &items[i].keys[k]);
            if (rc)
                return rc;
        }
    }
    if (fp_step(c, in->n * 8, nd))
        return ERR_LIMIT;
    sort_ctx s = {c, nd, nk, desc, 0};
    msort(&s, items, tmp, in->n);
    if (s.err)
        return s.err;
    fp_val *v = arena_alloc(c->a, in->n * sizeof *v);
    if (!v)
        return oom(c, nd);
    for (size_t i = 0; i < in->n; i++)
        v[i] = items[i].v;
    out->v = v;
    out->n = in->n;
    return 0;
}

/* ------------------------------------------------------------------ FHIR ---- */

FN(extension)
{
    const char *url = NULL;
    size_t un = 0;
    int rc = arg_str(c, nd, &args[0], &url, &un);
    if (rc)
        return rc < 0 ? rc : 0;
    fp_list ext = {0}, l = {0};
    for (size_t i = 0; i < in->n; i++)
        if ((rc = fp_children_named(c, &in->v[i], "extension", 9, &ext)))
            return rc;
    for (size_t i = 0; i < ext.n; i++) {
        const json_val *node = ext.v[i].node;
        const json_val *u = node ? json_get(node, "url") : NULL;
        if (u && u->type == JSON_STRING && u->n == un && !memcmp(u->u.s, url, un) &&
            fp_list_push(c, &l, &ext.v[i]))
            return c->err->code;
    }
    *out = fp_list_coll(&l);
    return 0;
}

FN(hasValue)
{
    UNUSED_ARGS;
    (void)nd;
    /* primitives have a value (a resource's only when not just extensions; xhtml is
     * not a primitive value); objects and quantities do not */
    const fp_val *v = in->n == 1 ? &in->v[0] : NULL;
    int has = v && v->kind != FP_OBJ && v->kind != FP_TYPE && !v->novalue &&
              !(v->kind == FP_QTY && !v->node) &&
              !(v->ftype && !strcmp(v->ftype->name, "xhtml"));
    return fp_ret_bool(c, out, has);
}

FN(getValue)
{
    UNUSED_ARGS;
    (void)nd;
    if (in->n != 1 || in->v[0].kind == FP_OBJ || in->v[0].kind == FP_TYPE || in->v[0].novalue)
        return 0;
    fp_val v = in->v[0];
    v.ftype = NULL;
    v.ext = NULL;
    return fp_ret_val(c, out, &v);
}

static const json_val *find_by_id(const json_val *list, const char *id, size_t n)
{
    if (!list || list->type != JSON_ARRAY)
        return NULL;
    for (uint32_t i = 0; i < list->n; i++) {
        const json_val *r = &list->u.items[i];
        const json_val *rid = json_get(r, "id");
        if (rid && rid->type == JSON_STRING && rid->n == n && !memcmp(rid->u.s, id, n))
            return r;
    }
    return NULL;
}

/* "Type/id" (possibly absolute, possibly with /_history/v) matches resource r */
static int ref_matches(const json_val *r, const char *ref, size_t n)
{
    const char *rt = json_get_str(r, "resourceType");
    const json_val *rid = json_get(r, "id");
    if (!rt || !rid || rid->type != JSON_STRING)
        return 0;
    const char *h = find_sub(ref, n, "/_history/", 10);
    if (h)
        n = (size_t)(h - ref);
    size_t tl = strlen(rt);
    size_t want = tl + 1 + rid->n;
    if (n < want)
        return 0;
    const char *tail = ref + n - want;
    if (n > want && tail[-1] != '/')
        return 0;
    return !memcmp(tail, rt, tl) && tail[tl] == '/' && !memcmp(tail + tl + 1, rid->u.s, rid->n);
}

static const json_val *resolve_ref(fp_ctx *c, const char *ref, size_t n)
{
    if (n > 1 && ref[0] == '#') {
        const json_val *r = find_by_id(json_get(c->resource, "contained"), ref + 1, n - 1);
        if (!r && c->root_res != c->resource)
            r = find_by_id(json_get(c->root_res, "contained"), ref + 1, n - 1);
        return r;
    }
    const json_val *roots[2] = {c->root_res, c->resource};
    for (int k = 0; k < 2; k++) {
        const json_val *root = roots[k];
        if (!root)
            continue;
        const char *rt = json_get_str(root, "resourceType");
        if (rt && !strcmp(rt, "Bundle")) {
            const json_val *entries = json_get(root, "entry");
            if (entries && entries->type == JSON_ARRAY) {
                for (uint32_t i = 0; i < entries->n; i++) {
                    const json_val *e = &entries->u.items[i];
                    const json_val *fu = json_get(e, "fullUrl");
                    const json_val *res = json_get(e, "resource");
                    if (!res)
                        continue;
                    if (fu && fu->type == JSON_STRING && fu->n == n && !memcmp(fu->u.s, ref, n))
                        return res;
                    if (ref_matches(res, ref, n))
                        return res;
                }
            }
        }
        if (ref_matches(root, ref, n))
            return root;
    }
    return NULL;
}

/* {"resourceType": Type, "id": id} for a reference "[base/]Type/id[/_history/v]" whose
 * Type is a concrete resource type, else NULL. */
static const json_val *ref_stub(fp_ctx *c, const char *ref, size_t n)
{
    const char *h = find_sub(ref, n, "/_history/", 10);
    if (h)
        n = (size_t)(h - ref);
    const char *slash = NULL;
    for (size_t i = n; i-- > 0;)
        if (ref[i] == '/') {
            slash = ref + i;
            break;
        }
    if (!slash || slash == ref || (size_t)(slash - ref) + 1 >= n)
        return NULL;
    const char *t = slash;
    while (t > ref && t[-1] != '/')
        t--;
    if (!fhir_resource_type(t, (size_t)(slash - t)))
        return NULL;
    json_val *obj = json_new_object(c->a);
    json_val *tv = json_new_string(c->a, t, (size_t)(slash - t));
    json_val *iv = json_new_string(c->a, slash + 1, n - (size_t)(slash - ref) - 1);
    if (!obj || !tv || !iv || json_obj_set(c->a, obj, "resourceType", tv) ||
        json_obj_set(c->a, obj, "id", iv))
        return NULL;
    return obj;
}

FN(resolve)
{
    UNUSED_ARGS;
    (void)nd;
    fp_list l = {0};
    for (size_t i = 0; i < in->n; i++) {
        const fp_val *v = &in->v[i];
        const char *ref = NULL;
        size_t n = 0;
        if (v->kind == FP_STR) {
            ref = v->u.s.p;
            n = v->u.s.n;
        } else if (v->kind == FP_OBJ && v->node) {
            const json_val *r = json_get(v->node, "reference");
            if (r && r->type == JSON_STRING) {
                ref = r->u.s;
                n = r->n;
            }
        }
        if (!ref)
            continue;
        const json_val *res = resolve_ref(c, ref, n);
        if (!res && !(c->env && c->env->exact_resolve))
            res = ref_stub(c, ref, n);
        if (!res)
            continue;
        fp_val rv;
        fp_obj_val(res, NULL, &rv);
        if (fp_list_push(c, &l, &rv))
            return c->err->code;
    }
    *out = fp_list_coll(&l);
    return 0;
}

FN(conformsTo)
{
    const char *url = NULL;
    size_t un = 0;
    int rc = arg_str(c, nd, &args[0], &url, &un);
    if (rc)
        return rc < 0 ? rc : 0;
    static const char base[] = "http://hl7.org/fhir/StructureDefinition/";
    size_t bl = sizeof base - 1;
    if (un <= bl || memcmp(url, base, bl))
        return fp_fail(c, ERR_UNSUPPORTED, nd,
                       "conformsTo() supports only the base resource profiles");
    const fhir_type *t = fhir_type_find(url + bl, un - bl);
    if (!t)
        return fp_fail(c, ERR_INVALID, nd, "conformsTo(): unknown profile '%.*s'", (int)un, url);
    if (in->n == 0)
        return 0;
    if (in->n > 1)
        return fp_fail(c, ERR_INVALID, nd, "conformsTo() needs a single item");
    return fp_ret_bool(c, out, in->v[0].ftype && fhir_type_is(in->v[0].ftype, t));
}

/* htmlChecks(): the FHIR narrative rules txt-1 and txt-2 on a Narrative.div (or a
 * Narrative): an xhtml <div>, none of the elements and event-handler attributes the
 * narrative rules exclude (scripts, forms, frames, embedded objects, document-level
 * elements), and some text or an image. A tag-level scan, not an XML parser. */
static int ci_prefix(const char *s, size_t n, const char *w)
{
    size_t l = strlen(w);
    if (n < l)
        return 0;
    for (size_t i = 0; i < l; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch != w[i])
            return 0;
    }
    return 1;
}

static int html_ok(const char *s, size_t n)
{
    static const char *const banned[] = {
        "script", "object", "applet", "embed", "form",  "input",    "button", "select",
        "textarea", "iframe", "frame", "frameset", "base", "link", "meta",  "style",
        "head",   "body",   "html",   "noscript", "param"};
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    if (!ci_prefix(s + i, n - i, "<div") || !find_sub(s, n, "http://www.w3.org/1999/xhtml", 28))
        return 0;
    int content = 0;
    while (i < n) {
        if (s[i] != '<') {
            if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
                content = 1;
            i++;
            continue;
        }
        size_t j = i + 1;
        if (j < n && (s[j] == '/' || s[j] == '!' || s[j] == '?'))
            j++;
        size_t nb = j;
        while (j < n && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') ||
                         (s[j] >= '0' && s[j] <= '9')))
            j++;
        for (size_t k = 0; k < sizeof banned / sizeof banned[0]; k++)
            if (j - nb == strlen(banned[k]) && ci_prefix(s + nb, j - nb, banned[k]))
                return 0;
        if (j - nb == 3 && ci_prefix(s + nb, 3, "img"))
            content = 1;
        /* attributes up to '>': none may be an event handler (on...) */
        char quote = 0;
        for (; j < n && (quote || s[j] != '>'); j++) {
            if (quote) {
                if (s[j] == quote)
                    quote = 0;
            } else if (s[j] == '"' || s[j] == '\'') {
                quote = s[j];
            } else if ((s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r') &&
                       j + 3 < n && ci_prefix(s + j + 1, n - j - 1, "on") &&
                       ((s[j + 3] >= 'a' && s[j + 3] <= 'z') || (s[j + 3] >= 'A' && s[j + 3] <= 'Z'))) {
                return 0;
            }
        }
        i = j + 1;
    }
    return content;
}

FN(htmlChecks)
{
    UNUSED_ARGS;
    if (in->n == 0)
        return 0;
    if (in->n > 1)
        return fp_fail(c, ERR_INVALID, nd, "htmlChecks() needs a single item");
    const fp_val *v = &in->v[0];
    fp_list l = {0};
    if (v->kind == FP_OBJ) {
        int rc = fp_children_named(c, v, "div", 3, &l);
        if (rc)
            return rc;
        if (l.n != 1)
            return fp_ret_bool(c, out, 0);
        v = &l.v[0];
    }
    if (v->kind != FP_STR || v->novalue)
        return fp_ret_bool(c, out, 0);
    return fp_ret_bool(c, out, html_ok(v->u.s.p, v->u.s.n));
}

/* FHIR functions that need terminology or profile definitions hortus does not have
 * yet: they compile (so invariants and filters that mention them load) and report
 * ERR_UNSUPPORTED when evaluated. */
FN(needs_terminology)
{
    UNUSED_ARGS;
    (void)in;
    (void)out;
    return fp_fail(c, ERR_UNSUPPORTED, nd,
                   "%s() needs a terminology service, which hortus does not have yet",
                   nd->name);
}

FN(needs_profiles)
{
    UNUSED_ARGS;
    (void)in;
    (void)out;
    return fp_fail(c, ERR_UNSUPPORTED, nd,
                   "%s() needs profile (StructureDefinition) support, which hortus does not "
                   "have yet",
                   nd->name);
}

/* ----------------------------------------------------------------- table ---- */

#define L0 1u
#define L1 2u
#define L2 4u

static const fp_func funcs[] = {
    /* sorted by name (strcmp order) for bsearch */
    {"abs", 0, 0, 0, 0, fn_abs},
    {"aggregate", 1, 2, L0, 0, fn_aggregate},
    {"all", 1, 1, L0, 0, fn_all},
    {"allFalse", 0, 0, 0, 0, fn_allFalse},
    {"allTrue", 0, 0, 0, 0, fn_allTrue},
    {"anyFalse", 0, 0, 0, 0, fn_anyFalse},
    {"anyTrue", 0, 0, 0, 0, fn_anyTrue},
    {"as", 1, 1, 0, 1, fn_as},
    {"avg", 0, 0, 0, 0, fn_avg},
    {"ceiling", 0, 0, 0, 0, fn_ceiling},
    {"checkModifiers", 1, 8, 0, 0, fn_needs_profiles},
    {"children", 0, 0, 0, 0, fn_children},
    {"combine", 1, 1, 0, 0, fn_combine},
    {"comparable", 1, 1, 0, 0, fn_comparable},
    {"conformsTo", 1, 1, 0, 0, fn_conformsTo},
    {"contains", 1, 1, 0, 0, fn_contains},
    {"convertsToBoolean", 0, 0, 0, 0, fn_convertsToBoolean},
    {"convertsToDate", 0, 0, 0, 0, fn_convertsToDate},
    {"convertsToDateTime", 0, 0, 0, 0, fn_convertsToDateTime},
    {"convertsToDecimal", 0, 0, 0, 0, fn_convertsToDecimal},
    {"convertsToInteger", 0, 0, 0, 0, fn_convertsToInteger},
    {"convertsToQuantity", 0, 1, 0, 0, fn_convertsToQuantity},
    {"convertsToString", 0, 0, 0, 0, fn_convertsToString},
    {"convertsToTime", 0, 0, 0, 0, fn_convertsToTime},
    {"count", 0, 0, 0, 0, fn_count},
    {"decode", 1, 1, 0, 0, fn_decode},
    {"descendants", 0, 0, 0, 0, fn_descendants},
    {"distinct", 0, 0, 0, 0, fn_distinct},
    {"elementDefinition", 0, 0, 0, 0, fn_needs_profiles},
    {"empty", 0, 0, 0, 0, fn_empty},
    {"encode", 1, 1, 0, 0, fn_encode},
    {"endsWith", 1, 1, 0, 0, fn_endsWith},
    {"escape", 1, 1, 0, 0, fn_escape},
    {"exclude", 1, 1, 0, 0, fn_exclude},
    {"exists", 0, 1, L0, 0, fn_exists},
    {"exp", 0, 0, 0, 0, fn_exp},
    {"extension", 1, 1, 0, 0, fn_extension},
    {"first", 0, 0, 0, 0, fn_first},
    {"floor", 0, 0, 0, 0, fn_floor},
    {"getValue", 0, 0, 0, 0, fn_getValue},
    {"hasValue", 0, 0, 0, 0, fn_hasValue},
    {"highBoundary", 0, 1, 0, 0, fn_highBoundary},
    {"htmlChecks", 0, 0, 0, 0, fn_htmlChecks},
    {"iif", 2, 3, L0 | L1 | L2, 0, fn_iif},
    {"indexOf", 1, 1, 0, 0, fn_indexOf},
    {"intersect", 1, 1, 0, 0, fn_intersect},
    {"is", 1, 1, 0, 1, fn_is},
    {"isDistinct", 0, 0, 0, 0, fn_isDistinct},
    {"join", 0, 1, 0, 0, fn_join},
    {"last", 0, 0, 0, 0, fn_last},
    {"lastIndexOf", 1, 1, 0, 0, fn_lastIndexOf},
    {"length", 0, 0, 0, 0, fn_length},
    {"ln", 0, 0, 0, 0, fn_ln},
    {"log", 1, 1, 0, 0, fn_log},
    {"lowBoundary", 0, 1, 0, 0, fn_lowBoundary},
    {"lower", 0, 0, 0, 0, fn_lower},
    {"matches", 1, 1, 0, 0, fn_matches},
    {"matchesFull", 1, 1, 0, 0, fn_matchesFull},
    {"max", 0, 0, 0, 0, fn_max},
    {"memberOf", 1, 1, 0, 0, fn_needs_terminology},
    {"min", 0, 0, 0, 0, fn_min},
    {"not", 0, 0, 0, 0, fn_not},
    {"now", 0, 0, 0, 0, fn_now},
    {"ofType", 1, 1, 0, 1, fn_ofType},
    {"power", 1, 1, 0, 0, fn_power},
    {"precision", 0, 0, 0, 0, fn_precision},
    {"repeat", 1, 1, L0, 0, fn_repeat},
    {"replace", 2, 2, 0, 0, fn_replace},
    {"replaceMatches", 2, 2, 0, 0, fn_replaceMatches},
    {"resolve", 0, 0, 0, 0, fn_resolve},
    {"round", 0, 1, 0, 0, fn_round},
    {"select", 1, 1, L0, 0, fn_select},
    {"single", 0, 0, 0, 0, fn_single},
    {"skip", 1, 1, 0, 0, fn_skip},
    {"slice", 2, 2, 0, 0, fn_needs_profiles},
    {"sort", 0, 8, 0xFF, 0, fn_sort},
    {"split", 1, 1, 0, 0, fn_split},
    {"sqrt", 0, 0, 0, 0, fn_sqrt},
    {"startsWith", 1, 1, 0, 0, fn_startsWith},
    {"subsetOf", 1, 1, 0, 0, fn_subsetOf},
    {"substring", 1, 2, 0, 0, fn_substring},
    {"subsumedBy", 1, 1, 0, 0, fn_needs_terminology},
    {"subsumes", 1, 1, 0, 0, fn_needs_terminology},
    {"sum", 0, 0, 0, 0, fn_sum},
    {"supersetOf", 1, 1, 0, 0, fn_supersetOf},
    {"tail", 0, 0, 0, 0, fn_tail},
    {"take", 1, 1, 0, 0, fn_take},
    {"timeOfDay", 0, 0, 0, 0, fn_timeOfDay},
    {"toBoolean", 0, 0, 0, 0, fn_toBoolean},
    {"toChars", 0, 0, 0, 0, fn_toChars},
    {"toDate", 0, 0, 0, 0, fn_toDate},
    {"toDateTime", 0, 0, 0, 0, fn_toDateTime},
    {"toDecimal", 0, 0, 0, 0, fn_toDecimal},
    {"toInteger", 0, 0, 0, 0, fn_toInteger},
    {"toQuantity", 0, 1, 0, 0, fn_toQuantity},
    {"toString", 0, 0, 0, 0, fn_toString},
    {"toTime", 0, 0, 0, 0, fn_toTime},
    {"today", 0, 0, 0, 0, fn_today},
    {"trace", 1, 2, L1, 0, fn_trace},
    {"trim", 0, 0, 0, 0, fn_trim},
    {"truncate", 0, 0, 0, 0, fn_truncate},
    {"type", 0, 0, 0, 0, fn_type},
    {"unescape", 1, 1, 0, 0, fn_unescape},
    {"union", 1, 1, 0, 0, fn_union},
    {"upper", 0, 0, 0, 0, fn_upper},
    {"where", 1, 1, L0, 0, fn_where},
};

size_t fp_func_table(const fp_func **table)
{
    *table = funcs;
    return sizeof funcs / sizeof funcs[0];
}

const fp_func *fp_func_find(const char *name, size_t n)
{
    size_t lo = 0, hi = sizeof funcs / sizeof funcs[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = strncmp(name, funcs[mid].name, n);
        if (r == 0 && funcs[mid].name[n] != 0)
            r = -1;
        if (r == 0)
            return &funcs[mid];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}
