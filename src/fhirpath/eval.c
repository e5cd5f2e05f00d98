/*
 * eval.c -- the FHIRPath evaluator: walks the compiled tree over JSON values.
 *
 * Every node maps an input collection (the focus) to an output collection. A
 * term at the start of a path (focus == NULL) takes as input the collection the
 * enclosing node gave it: at the top that is the evaluated resource; inside
 * where()/select()/... it is the current item ($this). Non-lambda function
 * arguments get the same input as the call itself, so in
 * `name.given.combine(name.family)` the argument starts again from the resource.
 *
 * Items read from the JSON tree keep their node and model type, so FHIR types
 * (is(code), ofType(Quantity), choice elements such as value[x]) are answered
 * from the generated model; primitive values are converted on the way out of the
 * tree (dates to fp_dt, decimals to fp_dec) and keep their node so the writer can
 * print the exact original spelling.
 *
 * Collections are immutable once produced; results may share arrays with their
 * inputs (a literal's value lives in the compiled node). All memory comes from
 * the caller's arena. Work is bounded: one step per node visit and per item
 * produced (FP_MAX_STEPS), recursion by FP_MAX_DEPTH.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "fhirpath/internal.h"

/* ------------------------------------------------------------ errors ---- */

static void set_err(fp_error *e, const char *src, int code, long pos, const char *fmt,
                    va_list ap)
{
    if (!e)
        return;
    e->code = code;
    e->pos = pos;
    e->line = e->col = 0;
    if (pos >= 0 && src) {
        int line = 1, col = 1;
        for (long i = 0; i < pos && src[i]; i++) {
            if (src[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        e->line = line;
        e->col = col;
    }
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
}

int fp_fail(fp_ctx *c, int code, const fp_node *nd, const char *fmt, ...)
{
    if (c->err && c->err->code == 0) {
        va_list ap;
        va_start(ap, fmt);
        set_err(c->err, c->src, code, nd ? (long)nd->pos : -1, fmt, ap);
        va_end(ap);
    }
    return code;
}

int fp_step(fp_ctx *c, uint64_t n, const fp_node *nd)
{
    c->steps += n;
    if (c->steps > c->max_steps)
        return fp_fail(c, ERR_LIMIT, nd,
                       "evaluation stopped after %llu steps (work limit)",
                       (unsigned long long)c->max_steps);
    if (arena_used(c->a) - c->mem0 > c->max_mem)
        return fp_fail(c, ERR_LIMIT, nd, "evaluation stopped after allocating %zu MiB (memory limit)",
                       c->max_mem >> 20);
    return 0;
}

/* ------------------------------------------------------- collections ---- */

int fp_list_push(fp_ctx *c, fp_list *l, const fp_val *v)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        if (l->n >= FP_MAX_ITEMS)
            return fp_fail(c, ERR_LIMIT, NULL, "a collection grew past %u items",
                           FP_MAX_ITEMS);
        fp_val *nv = arena_realloc(c->a, l->v, l->cap * sizeof *l->v, nc * sizeof *l->v);
        if (!nv)
            return fp_fail(c, ERR_NOMEM, NULL, "out of memory");
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = *v;
    return 0;
}

int fp_list_append(fp_ctx *c, fp_list *l, const fp_coll *src)
{
    if (src->n == 0)
        return 0;
    if (l->n + src->n > FP_MAX_ITEMS)
        return fp_fail(c, ERR_LIMIT, NULL, "a collection grew past %u items", FP_MAX_ITEMS);
    if (l->n + src->n > l->cap) {
        size_t nc = l->cap ? l->cap : 4;
        while (nc < l->n + src->n)
            nc *= 2;
        fp_val *nv = arena_realloc(c->a, l->v, l->cap * sizeof *l->v, nc * sizeof *l->v);
        if (!nv)
            return fp_fail(c, ERR_NOMEM, NULL, "out of memory");
        l->v = nv;
        l->cap = nc;
    }
    memcpy(l->v + l->n, src->v, src->n * sizeof *src->v);
    l->n += src->n;
    return 0;
}

int fp_ret_val(fp_ctx *c, fp_coll *out, const fp_val *v)
{
    fp_val *p = arena_alloc(c->a, sizeof *p);
    if (!p)
        return fp_fail(c, ERR_NOMEM, NULL, "out of memory");
    *p = *v;
    out->v = p;
    out->n = 1;
    return 0;
}

int fp_ret_bool(fp_ctx *c, fp_coll *out, int b)
{
    fp_val v = {.kind = FP_BOOL};
    v.u.b = !!b;
    return fp_ret_val(c, out, &v);
}

int fp_ret_int(fp_ctx *c, fp_coll *out, int64_t i)
{
    fp_val v = {.kind = FP_INT};
    v.u.i = i;
    return fp_ret_val(c, out, &v);
}

int fp_ret_str(fp_ctx *c, fp_coll *out, const char *s, size_t n)
{
    fp_val v = {.kind = FP_STR};
    v.u.s.p = s;
    v.u.s.n = n;
    return fp_ret_val(c, out, &v);
}

/* ------------------------------------------------------ JSON -> values ---- */

static const fhir_type *type_named(const char *name)
{
    return fhir_type_find(name, strlen(name));
}

static const fhir_type *resource_type_of(const json_val *j)
{
    const char *rt = json_get_str(j, "resourceType");
    return rt ? fhir_resource_type(rt, strlen(rt)) : NULL;
}

void fp_obj_val(const json_val *j, const fhir_type *t, fp_val *out)
{
    memset(out, 0, sizeof *out);
    out->kind = FP_OBJ;
    out->node = j;
    if (j && (!t || (t->kind == FHIR_RESOURCE && t->is_abstract))) {
        const fhir_type *rt = resource_type_of(j);
        if (rt)
            t = rt;
    }
    out->ftype = t;
}

static int prim_kind_of(const fhir_type *t)
{
    if (!t)
        return FP_STR;
    if (t->kind != FHIR_PRIMITIVE)
        return FP_OBJ;
    const char *n = t->name;
    switch (n[0]) {
    case 'b':
        return !strcmp(n, "boolean") ? FP_BOOL : FP_STR;
    case 'i':
        if (!strcmp(n, "integer") || !strcmp(n, "integer64"))
            return FP_INT;
        return !strcmp(n, "instant") ? FP_DATETIME : FP_STR;
    case 'p':
        return !strcmp(n, "positiveInt") ? FP_INT : FP_STR;
    case 'u':
        return !strcmp(n, "unsignedInt") ? FP_INT : FP_STR;
    case 'd':
        if (!strcmp(n, "decimal"))
            return FP_DEC;
        if (!strcmp(n, "date"))
            return FP_DATE;
        return !strcmp(n, "dateTime") ? FP_DATETIME : FP_STR;
    case 't':
        return !strcmp(n, "time") ? FP_TIME : FP_STR;
    default:
        return FP_STR;
    }
}

int fp_from_json(fp_ctx *c, const json_val *j, const json_val *ext, const fhir_type *t,
                 fp_val *out)
{
    (void)c;
    if (j && j->type == JSON_OBJECT) {
        fp_obj_val(j, t, out);
        return 0;
    }
    memset(out, 0, sizeof *out);
    out->node = j;
    out->ext = ext;
    out->ftype = t;
    if ((!j || j->type == JSON_NULL) && ext && ext->type == JSON_OBJECT &&
        prim_kind_of(t) == FP_OBJ) {
        /* "_address": [null, {"id": ..}] -- a complex element given only there */
        fp_obj_val(ext, t, out);
        return 0;
    }
    if (!j || j->type == JSON_NULL) {
        out->novalue = 1;
        int k = prim_kind_of(t);
        out->kind = (uint8_t)(k == FP_OBJ ? FP_STR : k);
        return 0;
    }
    switch (j->type) {
    case JSON_TRUE:
    case JSON_FALSE:
        out->kind = FP_BOOL;
        out->u.b = j->type == JSON_TRUE;
        return 0;
    case JSON_NUMBER: {
        int k = prim_kind_of(t);
        int integral = !memchr(j->u.s, '.', j->n) && !memchr(j->u.s, 'e', j->n) &&
                       !memchr(j->u.s, 'E', j->n);
        if ((k == FP_INT || (!t && integral)) && integral && j->n < 19) {
            char tmp[24];
            memcpy(tmp, j->u.s, j->n);
            tmp[j->n] = 0;
            out->kind = FP_INT;
            out->u.i = strtoll(tmp, NULL, 10);
            return 0;
        }
        out->kind = FP_DEC;
        if (fp_dec_parse_json(j->u.s, j->n, &out->u.d)) {
            out->kind = FP_STR;
            out->u.s.p = j->u.s;
            out->u.s.n = j->n;
        }
        return 0;
    }
    case JSON_STRING: {
        int k = prim_kind_of(t);
        if (k == FP_DATE || k == FP_DATETIME) {
            if (fp_dt_parse_fhir(j->u.s, j->n, &out->u.dt) == 0) {
                if (k == FP_DATETIME)
                    out->u.dt = fp_dt_to_datetime(out->u.dt);
                out->kind = (uint8_t)(out->u.dt.kind == FP_DT_DATE ? FP_DATE : FP_DATETIME);
                return 0;
            }
        } else if (k == FP_TIME) {
            if (fp_dt_parse_time(j->u.s, j->n, &out->u.dt) == 0) {
                out->kind = FP_TIME;
                return 0;
            }
        } else if (k == FP_DEC || k == FP_INT) {
            /* a number written as a string: keep it a string */
        }
        out->kind = FP_STR;
        out->u.s.p = j->u.s;
        out->u.s.n = j->n;
        return 0;
    }
    default:
        out->kind = FP_STR;
        out->u.s.p = "";
        out->u.s.n = 0;
        return 0;
    }
}

/* The model element for a FHIRPath name (choice elements by their bare name). A
 * compiled expression asks for the same (type, name) over and over (every search
 * parameter on every resource written), so each thread remembers its last answers by
 * the name's address; a hit is confirmed by comparing the name, so a name at an
 * address used before for another string is looked up anew. */
#define ELEM_CACHE 1024
static const fhir_elem *elem_by_name(const fhir_type *t, const char *name, size_t n)
{
    static __thread struct {
        const fhir_type *t;
        const char *name;
        const fhir_elem *e;
    } cache[ELEM_CACHE];
    size_t h = (((uintptr_t)name >> 3) ^ ((uintptr_t)t >> 4) * 0x9e3779b1u) & (ELEM_CACHE - 1);
    if (cache[h].t == t && cache[h].name == name && cache[h].e &&
        !strncmp(cache[h].e->name, name, n) && !cache[h].e->name[n])
        return cache[h].e;
    const fhir_elem *e = fhir_elem_named(t, name, n);
    if (e) {
        cache[h].t = t;
        cache[h].name = name;
        cache[h].e = e;
    }
    return e;
}

static const json_val *ext_of(const json_val *obj, const char *key, size_t n)
{
    char kb[96];
    if (n + 2 > sizeof kb)
        return NULL;
    kb[0] = '_';
    memcpy(kb + 1, key, n);
    return json_getn(obj, kb, n + 1);
}

/* Append the items of member value v (and its "_" companion ext) typed t. */
static int add_member(fp_ctx *c, const json_val *v, const json_val *ext, const fhir_type *t,
                      fp_list *out)
{
    fp_val item;
    if (v && v->type == JSON_ARRAY) {
        const json_val *ea = ext && ext->type == JSON_ARRAY ? ext : NULL;
        for (uint32_t i = 0; i < v->n; i++) {
            const json_val *e = ea && i < ea->n && ea->u.items[i].type != JSON_NULL
                                    ? &ea->u.items[i]
                                    : NULL;
            if (v->u.items[i].type == JSON_NULL && !e)
                continue;
            if (fp_from_json(c, &v->u.items[i], e, t, &item) || fp_list_push(c, out, &item))
                return c->err && c->err->code ? c->err->code : ERR_NOMEM;
        }
        if (ea && ea->n > v->n) {
            for (uint32_t i = v->n; i < ea->n; i++) {
                if (ea->u.items[i].type == JSON_NULL)
                    continue;
                if (fp_from_json(c, NULL, &ea->u.items[i], t, &item) ||
                    fp_list_push(c, out, &item))
                    return ERR_NOMEM;
            }
        }
        return 0;
    }
    if (v) {
        if (fp_from_json(c, v, ext && ext->type == JSON_OBJECT ? ext : NULL, t, &item))
            return ERR_NOMEM;
        return fp_list_push(c, out, &item);
    }
    if (ext) {
        if (ext->type == JSON_ARRAY) {
            int complex = t && t->kind != FHIR_PRIMITIVE;
            for (uint32_t i = 0; i < ext->n; i++) {
                if (ext->u.items[i].type == JSON_NULL) {
                    if (complex) {
                        /* keep the slot so indexes line up with the "_" array */
                        fp_obj_val(NULL, t, &item);
                        item.novalue = 1;
                        if (fp_list_push(c, out, &item))
                            return ERR_NOMEM;
                    }
                    continue;
                }
                if (fp_from_json(c, NULL, &ext->u.items[i], t, &item) ||
                    fp_list_push(c, out, &item))
                    return ERR_NOMEM;
            }
            return 0;
        }
        if (fp_from_json(c, NULL, ext, t, &item))
            return ERR_NOMEM;
        return fp_list_push(c, out, &item);
    }
    return 0;
}

static int is_upper(char ch)
{
    return ch >= 'A' && ch <= 'Z';
}

int fp_children_named(fp_ctx *c, const fp_val *item, const char *name, size_t n,
                      fp_list *out)
{
    const json_val *obj;
    const fhir_type *t;
    if (item->kind == FP_TYPE) {
        fp_val v = {.kind = FP_STR};
        if (n == 4 && !memcmp(name, "name", 4))
            v.u.s.p = item->u.t.name;
        else if (n == 9 && !memcmp(name, "namespace", 9))
            v.u.s.p = item->u.t.ns;
        else
            return 0;
        v.u.s.n = strlen(v.u.s.p);
        return fp_list_push(c, out, &v);
    }
    if (item->kind == FP_OBJ && n == 12 && !memcmp(name, "resourceType", 12)) {
        const json_val *rt = item->node ? json_get(item->node, "resourceType") : NULL;
        if (!rt || rt->type != JSON_STRING)
            return 0;
        fp_val v;
        fp_from_json(c, rt, NULL, NULL, &v);
        return fp_list_push(c, out, &v);
    }
    if (item->kind != FP_OBJ) {
        /* a primitive's id and extensions live in its "_name" object */
        if (!item->ext || item->ext->type != JSON_OBJECT)
            return 0;
        obj = item->ext;
        t = type_named("Element");
    } else {
        obj = item->node;
        t = item->ftype;
    }
    if (!obj || obj->type != JSON_OBJECT)
        return 0;
    if (t && t->nelems) {
        const fhir_elem *e = elem_by_name(t, name, n);
        if (!e) {
            /* a choice element named with its JSON type suffix (valueQuantity) is not
             * a FHIRPath name: the official R4 suite requires an error here */
            const fhir_type *ct = NULL;
            e = fhir_elem_find(t, name, n, &ct);
            if (e && ct)
                return fp_fail(c, ERR_INVALID, c->cur,
                               "'%.*s' is not an element of %s: choice elements are named "
                               "'%s' (use %s.ofType(%s))",
                               (int)n, name, t->name, e->name, e->name, ct->name);
            return 0;
        }
        if (e->is_choice) {
            for (uint32_t i = 0; i < obj->n; i++) {
                const json_member *m = &obj->u.members[i];
                if (m->key_len <= n || memcmp(m->key, name, n) || !is_upper(m->key[n]))
                    continue;
                const fhir_type *ct = NULL;
                if (fhir_elem_find(t, m->key, m->key_len, &ct) != e)
                    continue;
                int rc = add_member(c, &m->val, ext_of(obj, m->key, m->key_len), ct, out);
                if (rc)
                    return rc;
            }
            /* primitives of a choice present only as "_valueX" */
            for (uint32_t i = 0; i < obj->n; i++) {
                const json_member *m = &obj->u.members[i];
                if (m->key[0] != '_' || m->key_len <= n + 1 || memcmp(m->key + 1, name, n) ||
                    !is_upper(m->key[n + 1]))
                    continue;
                if (json_getn(obj, m->key + 1, m->key_len - 1))
                    continue;
                const fhir_type *ct = NULL;
                if (fhir_elem_find(t, m->key + 1, m->key_len - 1, &ct) != e)
                    continue;
                int rc = add_member(c, NULL, &m->val, ct, out);
                if (rc)
                    return rc;
            }
            return 0;
        }
        const fhir_type *et = e->ntypes ? e->types[0] : NULL;
        /* R4 declares Element.id, Resource.id and Extension.url as System.String */
        if ((n == 2 && !memcmp(name, "id", 2)) ||
            (n == 3 && !memcmp(name, "url", 3) && !strcmp(t->name, "Extension")))
            et = NULL;
        return add_member(c, json_getn(obj, name, n), ext_of(obj, name, n), et, out);
    }
    /* no model for this object: plain JSON navigation, guessing choice keys */
    const json_val *v = json_getn(obj, name, n);
    const json_val *x = ext_of(obj, name, n);
    if (v || x)
        return add_member(c, v, x, NULL, out);
    for (uint32_t i = 0; i < obj->n; i++) {
        const json_member *m = &obj->u.members[i];
        if (m->key_len > n && !memcmp(m->key, name, n) && is_upper(m->key[n])) {
            char tn[64];
            size_t tl = m->key_len - n;
            const fhir_type *ct = NULL;
            if (tl < sizeof tn) {
                memcpy(tn, m->key + n, tl);
                tn[0] = (char)(tn[0] - 'A' + 'a');
                ct = fhir_type_find(tn, tl);
                if (!ct)
                    ct = fhir_type_find(m->key + n, tl);
            }
            int rc = add_member(c, &m->val, ext_of(obj, m->key, m->key_len), ct, out);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int fp_children_all(fp_ctx *c, const fp_val *item, fp_list *out)
{
    const json_val *obj = item->node;
    const fhir_type *t = item->ftype;
    if (item->kind != FP_OBJ) {
        obj = item->ext; /* a primitive's children: its id and extensions */
        t = type_named("Element");
    }
    if (!obj || obj->type != JSON_OBJECT)
        return 0;
    for (uint32_t i = 0; i < obj->n; i++) {
        const json_member *m = &obj->u.members[i];
        if (!strcmp(m->key, "resourceType"))
            continue;
        const json_val *v = &m->val, *x = NULL;
        const char *key = m->key;
        size_t kl = m->key_len;
        if (key[0] == '_') {
            if (json_getn(obj, key + 1, kl - 1))
                continue; /* handled with its value */
            key++;
            kl--;
            x = v;
            v = NULL;
        } else {
            x = ext_of(obj, key, kl);
        }
        const fhir_type *ct = NULL;
        const fhir_elem *e = t ? fhir_elem_find(t, key, kl, &ct) : NULL;
        if (e && !ct && e->ntypes)
            ct = e->types[0];
        int rc = add_member(c, v, x, ct, out);
        if (rc)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------- value semantics ---- */

int fp_prim(fp_ctx *c, const fp_val *v, fp_val *out)
{
    (void)c;
    *out = *v;
    if (v->kind != FP_OBJ || !v->ftype || !v->node)
        return 0;
    /* cached once; atomic so concurrent evaluations may race on it safely */
    static const fhir_type *_Atomic qtype;
    const fhir_type *qt = atomic_load_explicit(&qtype, memory_order_relaxed);
    if (!qt) {
        qt = type_named("Quantity");
        atomic_store_explicit(&qtype, qt, memory_order_relaxed);
    }
    if (!fhir_type_is(v->ftype, qt))
        return 0;
    const json_val *val = json_get(v->node, "value");
    if (!val || val->type != JSON_NUMBER)
        return 0;
    if (json_get(v->node, "comparator"))
        return 0;
    fp_dec d;
    if (fp_dec_parse_json(val->u.s, val->n, &d))
        return 0;
    const char *sys = json_get_str(v->node, "system");
    const char *code = json_get_str(v->node, "code");
    fp_qty q;
    int rc;
    if (code && (!sys || !strcmp(sys, "http://unitsofmeasure.org")))
        rc = fp_qty_from_fhir(d, code, strlen(code), &q);
    else if (!code && !sys) {
        const char *unit = json_get_str(v->node, "unit");
        rc = unit ? fp_qty_make(d, unit, strlen(unit), &q) : fp_qty_from_fhir(d, NULL, 0, &q);
    } else
        return 0;
    if (rc)
        return 0;
    out->kind = FP_QTY;
    out->u.q = q;
    return 0;
}

static int num_dec(const fp_val *v, fp_dec *d)
{
    if (v->kind == FP_INT) {
        *d = fp_dec_from_i64(v->u.i);
        return 1;
    }
    if (v->kind == FP_DEC) {
        *d = v->u.d;
        return 1;
    }
    return 0;
}

static int is_dtkind(int k)
{
    return k == FP_DATE || k == FP_DATETIME || k == FP_TIME;
}

/* '=' on two items: 1, 0, or -1 (empty). */
int fp_val_equal(const fp_val *x0, const fp_val *y0)
{
    fp_val x, y;
    fp_prim(NULL, x0, &x);
    fp_prim(NULL, y0, &y);
    if (x.novalue || y.novalue) {
        /* a primitive without a value equals only the same extensions */
        if (!(x.novalue && y.novalue))
            return 0;
        return x.ext == y.ext || (x.ext && y.ext && json_equal(x.ext, y.ext));
    }
    if (x.node && y.node && x.kind != FP_OBJ && (x.ext || y.ext)) {
        /* two primitives of a resource: their extensions are part of the value */
        if (!x.ext || !y.ext || !json_equal(x.ext, y.ext))
            return 0;
    }
    fp_dec a, b;
    if (num_dec(&x, &a) && num_dec(&y, &b)) {
        if (x.kind == FP_INT && y.kind == FP_INT)
            return x.u.i == y.u.i;
        return fp_dec_eq(a, b);
    }
    if (is_dtkind(x.kind) && is_dtkind(y.kind)) {
        fp_dt p = x.u.dt, q = y.u.dt;
        if ((p.kind == FP_DT_TIME) != (q.kind == FP_DT_TIME))
            return 0;
        if (p.kind != q.kind) {
            p = fp_dt_to_datetime(p);
            q = fp_dt_to_datetime(q);
        }
        bool r;
        if (fp_dt_eq(p, q, &r))
            return -1;
        return r;
    }
    if (x.kind != y.kind)
        return 0;
    switch (x.kind) {
    case FP_BOOL:
        return x.u.b == y.u.b;
    case FP_STR:
        return x.u.s.n == y.u.s.n && !memcmp(x.u.s.p, y.u.s.p, x.u.s.n);
    case FP_QTY: {
        bool r;
        if (fp_qty_eq(&x.u.q, &y.u.q, &r))
            return -1;
        return r;
    }
    case FP_OBJ:
        if (x.node == y.node)
            return 1;
        return x.node && y.node && json_equal(x.node, y.node);
    case FP_TYPE:
        return !strcmp(x.u.t.ns, y.u.t.ns) && !strcmp(x.u.t.name, y.u.t.name);
    }
    return 0;
}

/* string equivalence: case-insensitive, whitespace runs count as one space,
 * leading/trailing whitespace ignored */
static int str_equiv(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0, j = 0;
#define WS(ch) ((ch) == ' ' || (ch) == '\t' || (ch) == '\n' || (ch) == '\r')
    while (i < an && WS(a[i]))
        i++;
    while (j < bn && WS(b[j]))
        j++;
    while (an > i && WS(a[an - 1]))
        an--;
    while (bn > j && WS(b[bn - 1]))
        bn--;
    while (i < an && j < bn) {
        if (WS(a[i]) && WS(b[j])) {
            while (i < an && WS(a[i]))
                i++;
            while (j < bn && WS(b[j]))
                j++;
            continue;
        }
        char ca = a[i], cb = b[j];
        if (ca >= 'A' && ca <= 'Z')
            ca = (char)(ca - 'A' + 'a');
        if (cb >= 'A' && cb <= 'Z')
            cb = (char)(cb - 'A' + 'a');
        if (ca != cb)
            return 0;
        i++;
        j++;
    }
#undef WS
    return i == an && j == bn;
}

int fp_val_equiv(const fp_val *x0, const fp_val *y0)
{
    fp_val x, y;
    fp_prim(NULL, x0, &x);
    fp_prim(NULL, y0, &y);
    if (x.novalue || y.novalue)
        return x.novalue && y.novalue;
    fp_dec a, b;
    if (num_dec(&x, &a) && num_dec(&y, &b))
        return fp_dec_equiv(a, b);
    if (is_dtkind(x.kind) && is_dtkind(y.kind)) {
        fp_dt p = x.u.dt, q = y.u.dt;
        if ((p.kind == FP_DT_TIME) != (q.kind == FP_DT_TIME))
            return 0;
        if (p.kind != q.kind) {
            p = fp_dt_to_datetime(p);
            q = fp_dt_to_datetime(q);
        }
        return fp_dt_equiv(p, q);
    }
    if (x.kind != y.kind)
        return 0;
    switch (x.kind) {
    case FP_STR:
        return str_equiv(x.u.s.p, x.u.s.n, y.u.s.p, y.u.s.n);
    case FP_QTY:
        return fp_qty_equiv(&x.u.q, &y.u.q);
    case FP_OBJ: {
        /* member-wise equivalence of objects */
        if (!x.node || !y.node)
            return x.node == y.node;
        const json_val *p = x.node, *q = y.node;
        size_t np = 0, nq = 0;
        for (uint32_t i = 0; i < p->n; i++)
            if (strcmp(p->u.members[i].key, "id"))
                np++;
        for (uint32_t i = 0; i < q->n; i++)
            if (strcmp(q->u.members[i].key, "id"))
                nq++;
        if (np != nq)
            return 0;
        for (uint32_t i = 0; i < p->n; i++) {
            const json_member *m = &p->u.members[i];
            if (!strcmp(m->key, "id"))
                continue;
            const json_val *o = json_getn(q, m->key, m->key_len);
            if (!o || !json_equal(&m->val, o))
                return 0;
        }
        return 1;
    }
    default:
        return fp_val_equal(&x, &y) == 1;
    }
}

int fp_coll_equal(const fp_coll *x, const fp_coll *y)
{
    if (x->n == 0 || y->n == 0)
        return -1;
    if (x->n != y->n)
        return 0;
    int empty = 0;
    for (size_t i = 0; i < x->n; i++) {
        int r = fp_val_equal(&x->v[i], &y->v[i]);
        if (r == 0)
            return 0;
        if (r < 0)
            empty = 1;
    }
    return empty ? -1 : 1;
}

int fp_coll_equiv(const fp_coll *x, const fp_coll *y)
{
    if (x->n == 0 && y->n == 0)
        return 1;
    if (x->n != y->n)
        return 0;
    /* order does not matter: every item of x has a distinct partner in y */
    unsigned char used_small[64];
    unsigned char *used = used_small;
    if (y->n > sizeof used_small) {
        used = calloc(y->n, 1);
        if (!used)
            return 0;
    } else {
        memset(used_small, 0, sizeof used_small);
    }
    int res = 1;
    for (size_t i = 0; i < x->n && res; i++) {
        int found = 0;
        for (size_t j = 0; j < y->n; j++) {
            if (!used[j] && fp_val_equiv(&x->v[i], &y->v[j])) {
                used[j] = 1;
                found = 1;
                break;
            }
        }
        if (!found)
            res = 0;
    }
    if (used != used_small)
        free(used);
    return res;
}

static const char *kind_name(int k)
{
    switch (k) {
    case FP_BOOL: return "Boolean";
    case FP_INT: return "Integer";
    case FP_DEC: return "Decimal";
    case FP_STR: return "String";
    case FP_DATE: return "Date";
    case FP_DATETIME: return "DateTime";
    case FP_TIME: return "Time";
    case FP_QTY: return "Quantity";
    case FP_TYPE: return "TypeInfo";
    default: return "Object";
    }
}

int fp_val_compare(fp_ctx *c, const fp_node *nd, const fp_val *x0, const fp_val *y0, int *res)
{
    fp_val x, y;
    fp_prim(c, x0, &x);
    fp_prim(c, y0, &y);
    if (x.novalue || y.novalue)
        return 1;
    fp_dec a, b;
    if (num_dec(&x, &a) && num_dec(&y, &b)) {
        if (x.kind == FP_INT && y.kind == FP_INT)
            *res = x.u.i < y.u.i ? -1 : x.u.i > y.u.i;
        else
            *res = fp_dec_cmp(a, b);
        return 0;
    }
    if (x.kind == FP_STR && y.kind == FP_STR) {
        size_t n = x.u.s.n < y.u.s.n ? x.u.s.n : y.u.s.n;
        int r = memcmp(x.u.s.p, y.u.s.p, n);
        if (r == 0)
            r = x.u.s.n < y.u.s.n ? -1 : x.u.s.n > y.u.s.n;
        *res = r < 0 ? -1 : r > 0;
        return 0;
    }
    if (is_dtkind(x.kind) && is_dtkind(y.kind)) {
        fp_dt p = x.u.dt, q = y.u.dt;
        if ((p.kind == FP_DT_TIME) != (q.kind == FP_DT_TIME))
            return fp_fail(c, ERR_INVALID, nd, "cannot compare %s with %s", kind_name(x.kind),
                           kind_name(y.kind));
        int r;
        int rc = fp_dt_cmp(p, q, &r);
        if (rc == FP_EMPTY)
            return 1;
        if (rc)
            return fp_fail(c, ERR_INVALID, nd, "cannot compare %s with %s",
                           kind_name(x.kind), kind_name(y.kind));
        *res = r;
        return 0;
    }
    if (x.kind == FP_QTY && y.kind == FP_QTY) {
        int r;
        int rc = fp_qty_cmp(&x.u.q, &y.u.q, &r);
        if (rc == FP_EMPTY)
            return 1;
        if (rc)
            return fp_fail(c, ERR_INVALID, nd, "cannot compare these quantities");
        *res = r;
        return 0;
    }
    return fp_fail(c, ERR_INVALID, nd, "cannot compare %s with %s", kind_name(x.kind),
                   kind_name(y.kind));
}

/* Singleton evaluation of a collection where a Boolean is expected:
 * *res = -1 (empty), 0 or 1. One non-boolean item counts as true. */
int fp_singleton_bool(fp_ctx *c, const fp_node *nd, const fp_coll *in, int *res)
{
    if (in->n == 0) {
        *res = -1;
        return 0;
    }
    if (in->n > 1)
        return fp_fail(c, ERR_INVALID, nd,
                       "expected a single boolean but the collection has %zu items", in->n);
    if (in->v[0].kind == FP_BOOL && !in->v[0].novalue)
        *res = in->v[0].u.b;
    else
        *res = 1;
    return 0;
}

/* --------------------------------------------------------------- types ---- */

void fp_type_of(const fp_val *v, const char **ns, const char **name)
{
    if (v->ftype) {
        *ns = "FHIR";
        *name = v->ftype->kind == FHIR_BACKBONE ? "BackboneElement" : v->ftype->name;
        return;
    }
    *ns = "System";
    *name = v->kind == FP_OBJ ? "Object" : kind_name(v->kind);
}

static const char *const system_types[] = {"Boolean", "Integer", "Decimal", "String", "Date",
                                           "DateTime", "Time", "Quantity"};

int fp_type_known(const fp_typespec *ts)
{
    int sys = 0;
    for (size_t i = 0; i < sizeof system_types / sizeof system_types[0]; i++)
        if (!strcmp(ts->name, system_types[i]))
            sys = 1;
    if (ts->ns && !strcmp(ts->ns, "System"))
        return sys || !strcmp(ts->name, "Any") || 1; /* System.Patient is simply false */
    if (ts->ns && strcmp(ts->ns, "FHIR"))
        return 0;
    if (type_named(ts->name) || !strcmp(ts->name, "BackboneElement"))
        return 1;
    return !ts->ns && sys;
}

int fp_is_type(const fp_val *v, const fp_typespec *ts, int exact_prim)
{
    const char *ns = ts->ns, *name = ts->name;
    if (v->ftype && (!ns || !strcmp(ns, "FHIR"))) {
        const fhir_type *t = ts->ft; /* type_named(name), resolved when parsed */
        if (!t)
            return !strcmp(name, "BackboneElement") && v->ftype->kind == FHIR_BACKBONE;
        if (exact_prim && v->ftype->kind == FHIR_PRIMITIVE)
            return v->ftype == t;
        if (fhir_type_is(v->ftype, t))
            return 1;
        if (v->ftype->kind == FHIR_BACKBONE) {
            /* a backbone element is a BackboneElement, hence an Element */
            const fhir_type *bb = type_named("BackboneElement");
            return bb && fhir_type_is(bb, t);
        }
        return 0;
    }
    if (v->ftype) {
        /* ofType(System.String) also selects FHIR strings (mode 2) */
        if (exact_prim == 2 && v->ftype->kind == FHIR_PRIMITIVE && v->kind != FP_OBJ)
            return !strcmp(name, kind_name(v->kind));
        return 0;
    }
    if (ns && strcmp(ns, "System"))
        return 0;
    if (v->kind == FP_OBJ)
        return 0;
    return !strcmp(name, kind_name(v->kind));
}

/* ---------------------------------------------------------- evaluation ---- */

static int eval_args(fp_ctx *c, const fp_node *nd, const fp_coll *in, fp_coll *args)
{
    for (int i = 0; i < nd->nargs; i++) {
        args[i].v = NULL;
        args[i].n = 0;
        if ((nd->fn->lambda_mask >> i) & 1 || nd->fn->type_arg)
            continue;
        int rc = fp_eval_node(c, nd->args[i], in, &args[i]);
        if (rc)
            return rc;
    }
    return 0;
}

int fp_eval_with_this(fp_ctx *c, const fp_node *nd, const fp_val *item, int64_t index,
                      fp_coll *out)
{
    const fp_val *save_v = c->this_v;
    fp_coll save_c = c->this_c;
    int64_t save_i = c->index;
    c->this_v = item;
    c->this_c.v = (fp_val *)item;
    c->this_c.n = item ? 1 : 0;
    c->index = index;
    int rc = fp_eval_node(c, nd, &c->this_c, out);
    c->this_v = save_v;
    c->this_c = save_c;
    c->index = save_i;
    return rc;
}

static int eval_member(fp_ctx *c, const fp_node *nd, const fp_coll *focus, int at_start,
                       fp_coll *out)
{
    fp_list l = {0};
    c->cur = nd;
    for (size_t i = 0; i < focus->n; i++) {
        const fp_val *it = &focus->v[i];
        if (at_start && is_upper(nd->name[0]) && it->kind == FP_OBJ) {
            /* a type name at the start of a path selects matching resources */
            const fhir_type *t = nd->ntype;
            if (t && (t->kind == FHIR_RESOURCE)) {
                if (it->ftype && fhir_type_is(it->ftype, t)) {
                    if (fp_list_push(c, &l, it))
                        return c->err->code;
                }
                continue;
            }
        }
        int rc = fp_children_named(c, it, nd->name, nd->name_len, &l);
        if (rc)
            return rc;
    }
    if (fp_step(c, l.n, nd))
        return ERR_LIMIT;
    *out = fp_list_coll(&l);
    return 0;
}

static int arith(fp_ctx *c, const fp_node *nd, int op, const fp_val *x0, const fp_val *y0,
                 fp_coll *out);

static int eval_binop(fp_ctx *c, const fp_node *nd, const fp_coll *in, fp_coll *out)
{
    fp_coll l, r;
    int rc;
    int op = nd->op;
    out->v = NULL;
    out->n = 0;
    if (op == OP_AND || op == OP_OR || op == OP_XOR || op == OP_IMPLIES) {
        int a = -1, b = -1;
        if ((rc = fp_eval_node(c, nd->args[0], in, &l)) ||
            (rc = fp_singleton_bool(c, nd->args[0], &l, &a)))
            return rc;
        if (op == OP_AND && a == 0)
            return fp_ret_bool(c, out, 0);
        if (op == OP_OR && a == 1)
            return fp_ret_bool(c, out, 1);
        if (op == OP_IMPLIES && a == 0)
            return fp_ret_bool(c, out, 1);
        if ((rc = fp_eval_node(c, nd->args[1], in, &r)) ||
            (rc = fp_singleton_bool(c, nd->args[1], &r, &b)))
            return rc;
        switch (op) {
        case OP_AND:
            if (b == 0)
                return fp_ret_bool(c, out, 0);
            if (a == 1 && b == 1)
                return fp_ret_bool(c, out, 1);
            return 0;
        case OP_OR:
            if (b == 1)
                return fp_ret_bool(c, out, 1);
            if (a == 0 && b == 0)
                return fp_ret_bool(c, out, 0);
            return 0;
        case OP_XOR:
            if (a < 0 || b < 0)
                return 0;
            return fp_ret_bool(c, out, a != b);
        default: /* implies, a is true or empty */
            if (b == 1)
                return fp_ret_bool(c, out, 1);
            if (a == 1 && b == 0)
                return fp_ret_bool(c, out, 0);
            return 0;
        }
    }
    if ((rc = fp_eval_node(c, nd->args[0], in, &l)) || (rc = fp_eval_node(c, nd->args[1], in, &r)))
        return rc;
    if (fp_step(c, l.n + r.n, nd))
        return ERR_LIMIT;
    switch (op) {
    case OP_UNION: {
        fp_list u = {0};
        for (int side = 0; side < 2; side++) {
            const fp_coll *s = side ? &r : &l;
            for (size_t i = 0; i < s->n; i++) {
                int dup = 0;
                for (size_t j = 0; j < u.n && !dup; j++)
                    dup = fp_val_equal(&u.v[j], &s->v[i]) == 1;
                if (fp_step(c, u.n, nd))
                    return ERR_LIMIT;
                if (!dup && fp_list_push(c, &u, &s->v[i]))
                    return c->err->code;
            }
        }
        *out = fp_list_coll(&u);
        return 0;
    }
    case OP_EQ:
    case OP_NE: {
        int e = fp_coll_equal(&l, &r);
        if (e < 0)
            return 0;
        return fp_ret_bool(c, out, op == OP_EQ ? e : !e);
    }
    case OP_EQUIV:
    case OP_NEQUIV: {
        if (fp_step(c, l.n * r.n, nd)) /* unordered matching is quadratic */
            return ERR_LIMIT;
        int e = fp_coll_equiv(&l, &r);
        return fp_ret_bool(c, out, op == OP_EQUIV ? e : !e);
    }
    case OP_LT:
    case OP_GT:
    case OP_LE:
    case OP_GE: {
        if (l.n == 0 || r.n == 0)
            return 0;
        if (l.n > 1 || r.n > 1)
            return fp_fail(c, ERR_INVALID, nd, "comparison needs single items, got %zu and %zu",
                           l.n, r.n);
        int cmp;
        rc = fp_val_compare(c, nd, &l.v[0], &r.v[0], &cmp);
        if (rc < 0)
            return rc;
        if (rc > 0)
            return 0;
        int b = op == OP_LT ? cmp < 0 : op == OP_GT ? cmp > 0 : op == OP_LE ? cmp <= 0 : cmp >= 0;
        return fp_ret_bool(c, out, b);
    }
    case OP_IN:
    case OP_CONTAINS: {
        const fp_coll *item = op == OP_IN ? &l : &r, *set = op == OP_IN ? &r : &l;
        if (item->n == 0)
            return 0;
        if (item->n > 1)
            return fp_fail(c, ERR_INVALID, nd, "'%s' needs a single item on its %s side",
                           op == OP_IN ? "in" : "contains", op == OP_IN ? "left" : "right");
        for (size_t i = 0; i < set->n; i++)
            if (fp_val_equal(&item->v[0], &set->v[i]) == 1)
                return fp_ret_bool(c, out, 1);
        return fp_ret_bool(c, out, 0);
    }
    case OP_CONCAT: {
        if (l.n > 1 || r.n > 1)
            return fp_fail(c, ERR_INVALID, nd, "'&' needs single strings");
        const char *a = "", *b = "";
        size_t an = 0, bn = 0;
        /* empty, and a primitive with only extensions, count as '' */
        if (l.n && !l.v[0].novalue && fp_str_of(c, &l.v[0], &a, &an))
            return fp_fail(c, ERR_INVALID, nd, "'&' needs strings");
        if (r.n && !r.v[0].novalue && fp_str_of(c, &r.v[0], &b, &bn))
            return fp_fail(c, ERR_INVALID, nd, "'&' needs strings");
        if (an + bn > FP_MAX_STRING)
            return fp_fail(c, ERR_LIMIT, nd, "string longer than %u bytes", FP_MAX_STRING);
        if (fp_step(c, (an + bn) / FP_STRING_BYTES_PER_STEP, nd))
            return ERR_LIMIT;
        char *s = arena_alloc(c->a, an + bn + 1);
        if (!s)
            return fp_fail(c, ERR_NOMEM, nd, "out of memory");
        memcpy(s, a, an);
        memcpy(s + an, b, bn);
        s[an + bn] = 0;
        return fp_ret_str(c, out, s, an + bn);
    }
    default:
        if (l.n == 0 || r.n == 0)
            return 0;
        if (l.n > 1 || r.n > 1)
            return fp_fail(c, ERR_INVALID, nd,
                           "arithmetic needs single items, got %zu and %zu", l.n, r.n);
        return arith(c, nd, op, &l.v[0], &r.v[0], out);
    }
}

static int ret_dec(fp_ctx *c, const fp_node *nd, int rc, fp_dec d, fp_coll *out)
{
    if (rc == FP_EMPTY)
        return 0;
    if (rc)
        return fp_fail(c, ERR_INVALID, nd, "decimal overflow");
    fp_val v = {.kind = FP_DEC};
    v.u.d = d;
    return fp_ret_val(c, out, &v);
}

static int ret_qty(fp_ctx *c, const fp_node *nd, int rc, const fp_qty *q, fp_coll *out)
{
    if (rc == FP_EMPTY)
        return 0;
    if (rc)
        return fp_fail(c, ERR_INVALID, nd, "invalid quantity arithmetic");
    fp_val v = {.kind = FP_QTY};
    v.u.q = *q;
    return fp_ret_val(c, out, &v);
}

static int arith(fp_ctx *c, const fp_node *nd, int op, const fp_val *x0, const fp_val *y0,
                 fp_coll *out)
{
    fp_val x, y;
    fp_prim(c, x0, &x);
    fp_prim(c, y0, &y);
    if (x.novalue || y.novalue)
        return 0;
    fp_dec a = fp_dec_from_i64(0), b = a, d = a;
    int rc;
    if (x.kind == FP_INT && y.kind == FP_INT && op != OP_DIV) {
        int64_t p = x.u.i, q = y.u.i, res;
        switch (op) {
        case OP_ADD: rc = __builtin_add_overflow(p, q, &res); break;
        case OP_SUB: rc = __builtin_sub_overflow(p, q, &res); break;
        case OP_MUL: rc = __builtin_mul_overflow(p, q, &res); break;
        case OP_IDIV:
            if (q == 0)
                return 0;
            if (p == INT64_MIN && q == -1)
                return fp_fail(c, ERR_INVALID, nd, "integer overflow");
            res = p / q;
            rc = 0;
            break;
        case OP_MOD:
            if (q == 0)
                return 0;
            if (q == -1) {
                res = 0;
                rc = 0;
                break;
            }
            res = p % q;
            rc = 0;
            break;
        default:
            return fp_fail(c, ERR_INVALID, nd, "operator not defined for Integer");
        }
        if (rc || res > INT32_MAX || res < INT32_MIN)
            return fp_fail(c, ERR_INVALID, nd, "integer overflow");
        return fp_ret_int(c, out, res);
    }
    if (num_dec(&x, &a) && num_dec(&y, &b)) {
        switch (op) {
        case OP_ADD: rc = fp_dec_add(a, b, &d); break;
        case OP_SUB: rc = fp_dec_sub(a, b, &d); break;
        case OP_MUL: rc = fp_dec_mul(a, b, &d); break;
        case OP_DIV: rc = fp_dec_div(a, b, &d); break;
        case OP_IDIV:
            rc = fp_dec_idiv(a, b, &d);
            if (rc == 0) {
                int64_t i;
                if (fp_dec_to_i64(d, &i) == 0)
                    return fp_ret_int(c, out, i);
            }
            break;
        case OP_MOD: rc = fp_dec_mod(a, b, &d); break;
        default: return fp_fail(c, ERR_INVALID, nd, "operator not defined for numbers");
        }
        return ret_dec(c, nd, rc, d, out);
    }
    if (x.kind == FP_STR && y.kind == FP_STR && op == OP_ADD) {
        size_t n = x.u.s.n + y.u.s.n;
        if (n > FP_MAX_STRING)
            return fp_fail(c, ERR_LIMIT, nd, "string longer than %u bytes", FP_MAX_STRING);
        if (fp_step(c, n / FP_STRING_BYTES_PER_STEP, nd))
            return ERR_LIMIT;
        char *s = arena_alloc(c->a, n + 1);
        if (!s)
            return fp_fail(c, ERR_NOMEM, nd, "out of memory");
        memcpy(s, x.u.s.p, x.u.s.n);
        memcpy(s + x.u.s.n, y.u.s.p, y.u.s.n);
        s[n] = 0;
        return fp_ret_str(c, out, s, n);
    }
    if (is_dtkind(x.kind) && y.kind == FP_QTY && (op == OP_ADD || op == OP_SUB)) {
        fp_dt r;
        rc = fp_qty_add_to_dt(x.u.dt, op == OP_ADD ? 1 : -1, &y.u.q, &r);
        if (rc == FP_EMPTY)
            return 0;
        if (rc)
            return fp_fail(c, ERR_INVALID, nd, "cannot add '%s' to a date/time",
                           fp_qty_ucum_code(&y.u.q));
        fp_val v = {.kind = x.kind};
        v.u.dt = r;
        return fp_ret_val(c, out, &v);
    }
    if (x.kind == FP_QTY && y.kind == FP_QTY) {
        fp_qty q;
        switch (op) {
        case OP_ADD: rc = fp_qty_add(&x.u.q, &y.u.q, &q); break;
        case OP_SUB: rc = fp_qty_sub(&x.u.q, &y.u.q, &q); break;
        case OP_MUL: rc = fp_qty_mul(&x.u.q, &y.u.q, &q); break;
        case OP_DIV: rc = fp_qty_div(&x.u.q, &y.u.q, &q); break;
        default: return fp_fail(c, ERR_INVALID, nd, "operator not defined for Quantity");
        }
        return ret_qty(c, nd, rc, &q, out);
    }
    if (x.kind == FP_QTY && num_dec(&y, &b) && (op == OP_MUL || op == OP_DIV)) {
        fp_qty q;
        rc = op == OP_MUL ? fp_qty_scale(&x.u.q, b, &q) : fp_qty_div_number(&x.u.q, b, &q);
        return ret_qty(c, nd, rc, &q, out);
    }
    if (y.kind == FP_QTY && num_dec(&x, &a) && op == OP_MUL) {
        fp_qty q;
        rc = fp_qty_scale(&y.u.q, a, &q);
        return ret_qty(c, nd, rc, &q, out);
    }
    if (y.kind == FP_QTY && num_dec(&x, &a) && op == OP_DIV) {
        fp_qty one, q;
        if (fp_qty_make(a, "1", 1, &one))
            return fp_fail(c, ERR_INVALID, nd, "invalid quantity arithmetic");
        rc = fp_qty_div(&one, &y.u.q, &q);
        return ret_qty(c, nd, rc, &q, out);
    }
    static const char *const opn[] = {"", "*", "/", "div", "mod", "+", "-"};
    return fp_fail(c, ERR_INVALID, nd, "operator '%s' cannot combine %s and %s",
                   op <= OP_SUB ? opn[op] : "?", kind_name(x.kind), kind_name(y.kind));
}

static int eval_var(fp_ctx *c, const fp_node *nd, fp_coll *out)
{
    const char *n = nd->name;
    const json_val *j = NULL;
    out->v = NULL;
    out->n = 0;
    for (size_t i = 0; c->env && i < c->env->nvars; i++) {
        if (strcmp(c->env->vars[i].name, n))
            continue;
        const json_val *v = c->env->vars[i].value;
        if (!v)
            return 0;
        fp_list l = {0};
        int rc = add_member(c, v, NULL, NULL, &l);
        if (rc)
            return rc;
        *out = fp_list_coll(&l);
        return 0;
    }
    if (!strcmp(n, "resource"))
        j = c->resource;
    else if (!strcmp(n, "rootResource"))
        j = c->root_res;
    else if (!strcmp(n, "context")) {
        if (c->env && c->env->context)
            j = c->env->context;
        else {
            *out = c->this_c;
            /* the evaluation's original context, not the current $this */
            if (c->input) {
                fp_val v;
                fp_obj_val(c->input, NULL, &v);
                return fp_ret_val(c, out, &v);
            }
            return 0;
        }
    } else if (!strcmp(n, "ucum"))
        return fp_ret_str(c, out, "http://unitsofmeasure.org", 25);
    else if (!strcmp(n, "sct"))
        return fp_ret_str(c, out, "http://snomed.info/sct", 22);
    else if (!strcmp(n, "loinc"))
        return fp_ret_str(c, out, "http://loinc.org", 16);
    else if (!strncmp(n, "vs-", 3) || !strncmp(n, "ext-", 4)) {
        const char *base = n[0] == 'v' ? "http://hl7.org/fhir/ValueSet/"
                                        : "http://hl7.org/fhir/StructureDefinition/";
        size_t bl = strlen(base), rl = strlen(n) - (n[0] == 'v' ? 3 : 4);
        char *s = arena_alloc(c->a, bl + rl + 1);
        if (!s)
            return fp_fail(c, ERR_NOMEM, nd, "out of memory");
        memcpy(s, base, bl);
        memcpy(s + bl, n + strlen(n) - rl, rl + 1);
        return fp_ret_str(c, out, s, bl + rl);
    } else
        return fp_fail(c, ERR_INVALID, nd, "unknown environment variable '%%%s'", n);
    if (!j)
        return 0;
    fp_val v;
    fp_obj_val(j, NULL, &v);
    return fp_ret_val(c, out, &v);
}

int fp_eval_node(fp_ctx *c, const fp_node *nd, const fp_coll *in, fp_coll *out)
{
    int rc;
    c->cur = nd;
    out->v = NULL;
    out->n = 0;
    if (++c->depth > FP_MAX_DEPTH) {
        c->depth--;
        return fp_fail(c, ERR_LIMIT, nd, "evaluation nested deeper than %d levels",
                       FP_MAX_DEPTH);
    }
    if ((rc = fp_step(c, 1, nd)))
        goto done;
    switch (nd->kind) {
    case N_LITERAL:
        out->v = (fp_val *)&nd->lit;
        out->n = 1;
        break;
    case N_EMPTY:
        break;
    case N_THIS:
        *out = c->this_c;
        break;
    case N_INDEXVAR:
        rc = fp_ret_int(c, out, c->index);
        break;
    case N_TOTAL:
        if (c->total)
            *out = *c->total;
        break;
    case N_VAR:
        rc = eval_var(c, nd, out);
        break;
    case N_MEMBER: {
        fp_coll f;
        if (nd->focus) {
            if ((rc = fp_eval_node(c, nd->focus, in, &f)))
                break;
        } else {
            f = *in;
        }
        rc = eval_member(c, nd, &f, nd->focus == NULL, out);
        break;
    }
    case N_CALL: {
        fp_coll f, args[8];
        if (nd->focus) {
            if ((rc = fp_eval_node(c, nd->focus, in, &f)))
                break;
        } else {
            f = *in;
        }
        if ((rc = eval_args(c, nd, in, args)))
            break;
        const fp_coll *save_in = c->call_in;
        c->call_in = in;
        rc = nd->fn->impl(c, nd, &f, args, out);
        c->call_in = save_in;
        break;
    }
    case N_INDEX: {
        fp_coll f, ix;
        if ((rc = fp_eval_node(c, nd->focus, in, &f)) ||
            (rc = fp_eval_node(c, nd->args[0], in, &ix)))
            break;
        if (ix.n == 0)
            break;
        if (ix.n > 1 || ix.v[0].kind != FP_INT) {
            rc = fp_fail(c, ERR_INVALID, nd, "an index must be a single integer");
            break;
        }
        int64_t i = ix.v[0].u.i;
        if (i >= 0 && (uint64_t)i < f.n) {
            out->v = &f.v[i];
            out->n = 1;
        }
        break;
    }
    case N_NEG: {
        fp_coll a;
        if ((rc = fp_eval_node(c, nd->args[0], in, &a)))
            break;
        if (a.n == 0)
            break;
        if (a.n > 1) {
            rc = fp_fail(c, ERR_INVALID, nd, "unary '-' needs a single item");
            break;
        }
        fp_val v;
        fp_prim(c, &a.v[0], &v);
        fp_val r = {.kind = v.kind};
        if (v.kind == FP_INT && v.u.i == INT64_MIN) {
            rc = fp_fail(c, ERR_INVALID, nd, "integer overflow");
            break;
        } else if (v.kind == FP_INT)
            r.u.i = -v.u.i;
        else if (v.kind == FP_DEC)
            r.u.d = fp_dec_neg(v.u.d);
        else if (v.kind == FP_QTY)
            r.u.q = fp_qty_neg(&v.u.q);
        else {
            rc = fp_fail(c, ERR_INVALID, nd, "unary '-' cannot apply to %s", kind_name(v.kind));
            break;
        }
        rc = fp_ret_val(c, out, &r);
        break;
    }
    case N_BINOP:
        rc = eval_binop(c, nd, in, out);
        break;
    case N_IS:
    case N_AS: {
        fp_coll a;
        if ((rc = fp_eval_node(c, nd->args[0], in, &a)))
            break;
        if (a.n == 0)
            break;
        if (a.n > 1 && nd->kind == N_AS) {
            /* the operator form filters (R4 search parameters such as
             * `Observation.component.value as Quantity` rely on it); the as()
             * function stays strict */
            fp_list l = {0};
            for (size_t i = 0; i < a.n && rc == 0; i++)
                if (fp_is_type(&a.v[i], &nd->type, 1))
                    rc = fp_list_push(c, &l, &a.v[i]);
            *out = fp_list_coll(&l);
            break;
        }
        if (a.n > 1) {
            rc = fp_fail(c, ERR_INVALID, nd, "'is' needs a single item, got %zu", a.n);
            break;
        }
        int m = fp_is_type(&a.v[0], &nd->type, nd->kind == N_AS);
        if (nd->kind == N_IS)
            rc = fp_ret_bool(c, out, m);
        else if (m)
            *out = a;
        break;
    }
    default:
        rc = fp_fail(c, ERR_INTERNAL, nd, "unknown node kind %d", nd->kind);
    }
done:
    c->depth--;
    return rc;
}

/* ------------------------------------------------------------- public ---- */

fp_expr *fp_compilen(const char *src, size_t len, fp_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
    /* the expression lives in its own arena: one allocation for small sources */
    arena *a = arena_new(len * 8 + 1024);
    if (!a)
        goto oom;
    fp_expr *x = arena_zalloc(a, sizeof *x);
    if (!x) {
        arena_free(a);
        goto oom;
    }
    x->a = a;
    x->src = arena_strndup(x->a, src, len);
    x->len = len;
    if (!x->src) {
        fp_free(x);
        goto oom;
    }
    if (fp_parse(x, err)) {
        fp_free(x);
        return NULL;
    }
    const fp_node *lead = x->root;
    while (lead && (lead->focus || (lead->kind == N_BINOP && lead->nargs)))
        lead = lead->focus ? lead->focus : lead->args[0];
    if (lead && lead->kind == N_MEMBER && lead->ntype && lead->ntype->kind == FHIR_RESOURCE &&
        !lead->ntype->is_abstract)
        x->hint = lead->ntype;
    return x;
oom:
    if (err) {
        err->code = ERR_NOMEM;
        err->pos = -1;
        snprintf(err->msg, sizeof err->msg, "out of memory");
    }
    return NULL;
}

fp_expr *fp_compile(const char *src, fp_error *err)
{
    return fp_compilen(src, strlen(src), err);
}

const char *fp_source(const fp_expr *x)
{
    return x->src;
}

void fp_free(fp_expr *x)
{
    if (!x)
        return;
    for (fp_relist *r = x->regexes; r; r = r->next)
        pcre2_code_free(r->re);
    arena_free(x->a); /* x itself is in the arena */
}

/* One evaluation: top (NULL: empty input) is the context item, input its JSON. */
static int eval_top(const fp_expr *x, arena *a, const json_val *input, const fp_val *item,
                    const json_val *resource, const fp_env *env, fp_coll *out, fp_error *err)
{
    fp_ctx c = {0};
    fp_error local;
    if (!err)
        err = &local;
    memset(err, 0, sizeof *err);
    c.a = a;
    c.env = env;
    c.err = err;
    c.src = x->src;
    c.input = input;
    c.resource = env && env->resource ? env->resource : resource;
    c.root_res = env && env->root_resource ? env->root_resource : c.resource;
    c.max_steps = env && env->max_steps ? env->max_steps : FP_MAX_STEPS;
    c.max_mem = env && env->max_memory ? env->max_memory : FP_MAX_MEMORY;
    c.mem0 = arena_used(a);
    out->v = NULL;
    out->n = 0;
    fp_val *top = NULL;
    if (item) {
        top = arena_alloc(a, sizeof *top);
        if (!top)
            return fp_fail(&c, ERR_NOMEM, NULL, "out of memory");
        *top = *item;
        c.this_c.v = top;
        c.this_c.n = 1;
    } else if (input) {
        top = arena_alloc(a, sizeof *top);
        if (!top)
            return fp_fail(&c, ERR_NOMEM, NULL, "out of memory");
        const char *rt;
        if (input->type == JSON_OBJECT && x->hint &&
            (rt = json_get_str(input, "resourceType")) && !strcmp(rt, x->hint->name)) {
            fp_obj_val(input, x->hint, top);
        } else if (input->type == JSON_OBJECT)
            fp_obj_val(input, NULL, top);
        else
            fp_from_json(&c, input, NULL, NULL, top);
        c.this_c.v = top;
        c.this_c.n = 1;
    }
    c.this_v = top;
    int rc = fp_eval_node(&c, x->root, &c.this_c, out);
    if (rc) {
        if (err->code == 0)
            fp_fail(&c, rc, NULL, "%s", err_str(rc));
        out->v = NULL;
        out->n = 0;
    }
    return rc;
}

int fp_eval(const fp_expr *x, arena *a, const json_val *input, const fp_env *env,
            fp_coll *out, fp_error *err)
{
    return eval_top(x, a, input, NULL, input, env, out, err);
}

int fp_eval_item(const fp_expr *x, arena *a, const fp_val *item, const json_val *resource,
                 fp_coll *out, fp_error *err)
{
    return eval_top(x, a, item ? item->node : NULL, item, resource, NULL, out, err);
}

void fp_val_system(const fp_val *v, fp_val *out)
{
    fp_prim(NULL, v, out);
}

int fp_as_bool(const fp_coll *c)
{
    if (c->n == 0)
        return -1;
    if (c->n == 1 && c->v[0].kind == FP_BOOL)
        return c->v[0].u.b;
    return ERR_INVALID;
}
