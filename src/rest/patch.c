/*
 * patch.c -- PATCH [base]/Type/id: FHIRPath Patch and JSON Patch.
 *
 * The body says which kind:
 *   application/fhir+json (or application/json) with a Parameters resource:
 *     FHIRPath Patch (operations add, insert, delete, replace, move; paths are
 *     FHIRPath expressions evaluated with src/fhirpath);
 *   application/json-patch+json: JSON Patch (RFC 6902: add, remove, replace,
 *     move, copy, test; paths are JSON Pointers).
 *
 * The current version is read and parsed into the request arena, the
 * operations edit that tree in place (one after the other, each seeing the
 * previous ones), the result is validated like any update (422 when the patch
 * produces an invalid resource; the id and resourceType cannot change) and
 * written as version v+1 with expect = v. All of this runs as the transform
 * step of the write pipeline (write.h): a concurrent write makes it re-read and
 * re-apply (412 instead when If-Match was given), exactly like an update.
 *
 * Editing in place: a FHIRPath result item points at its JSON node; the
 * node's container (object member or array slot) is found by walking the tree
 * (resources are small), then members/items are shifted, appended with
 * json_obj_set / json_arr_push, or overwritten.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "fhirpath/fhirpath.h"
#include "rest/handlers.h"
#include "rest/response.h"
#include "rest/write.h"

/* An error while applying: status and message for the response. */
typedef struct perr {
    unsigned status;
    oo_code code;
    char msg[300];
} perr;

static int fail(perr *e, unsigned status, oo_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(perr *e, unsigned status, oo_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->status = status;
    e->code = code;
    return -1;
}

/* ---- tree surgery ---------------------------------------------------------- */

/* Find the container of `target` under v: *parent and the member/item index. */
static int find_parent(json_val *v, const json_val *target, json_val **parent, uint32_t *idx,
                       int depth)
{
    if (depth > JSON_MAX_DEPTH + 2)
        return 0;
    if (v->type == JSON_OBJECT) {
        for (uint32_t i = 0; i < v->n; i++) {
            if (&v->u.members[i].val == target) {
                *parent = v;
                *idx = i;
                return 1;
            }
            if (find_parent(&v->u.members[i].val, target, parent, idx, depth + 1))
                return 1;
        }
    } else if (v->type == JSON_ARRAY) {
        for (uint32_t i = 0; i < v->n; i++) {
            if (&v->u.items[i] == target) {
                *parent = v;
                *idx = i;
                return 1;
            }
            if (find_parent(&v->u.items[i], target, parent, idx, depth + 1))
                return 1;
        }
    }
    return 0;
}

static void obj_remove_at(json_val *obj, uint32_t i)
{
    memmove(&obj->u.members[i], &obj->u.members[i + 1],
            sizeof(json_member) * (obj->n - i - 1));
    obj->n--;
}

static void arr_remove_at(json_val *arr, uint32_t i)
{
    memmove(&arr->u.items[i], &arr->u.items[i + 1], sizeof(json_val) * (arr->n - i - 1));
    arr->n--;
}

/* Insert *val at index i of arr (0..n). */
static int arr_insert(arena *a, json_val *arr, uint32_t i, const json_val *val)
{
    json_val copy = *val;
    if (json_arr_push(a, arr, &copy))
        return ERR_NOMEM;
    memmove(&arr->u.items[i + 1], &arr->u.items[i], sizeof(json_val) * (arr->n - 1 - i));
    arr->u.items[i] = copy;
    return 0;
}

/* A deep copy of v in a (a JSON Patch "copy" must not share children with its
 * source, or a later edit of one would change both). Every value copied is
 * taken from *budget (REST_MAX_PATCH_COPY per patch): copying an array into
 * itself doubles it, so without a budget a few dozen small operations would
 * build gigabytes. ERR_TOOBIG when the budget runs out, ERR_NOMEM. */
static int clone(arena *a, const json_val *v, json_val *out, int depth, size_t *budget)
{
    int rc;
    *out = *v;
    if (depth > JSON_MAX_DEPTH + 2 || *budget == 0)
        return ERR_TOOBIG;
    (*budget)--;
    if (v->type == JSON_ARRAY && v->n) {
        if (v->n > *budget)
            return ERR_TOOBIG;
        json_val *items = arena_alloc(a, sizeof *items * v->n);
        if (!items)
            return ERR_NOMEM;
        for (uint32_t i = 0; i < v->n; i++)
            if ((rc = clone(a, &v->u.items[i], &items[i], depth + 1, budget)))
                return rc;
        out->u.items = items;
    } else if (v->type == JSON_OBJECT && v->n) {
        if (v->n > *budget)
            return ERR_TOOBIG;
        json_member *m = arena_alloc(a, sizeof *m * v->n);
        if (!m)
            return ERR_NOMEM;
        for (uint32_t i = 0; i < v->n; i++) {
            m[i] = v->u.members[i];
            if ((rc = clone(a, &v->u.members[i].val, &m[i].val, depth + 1, budget)))
                return rc;
        }
        out->u.members = m;
    }
    return 0;
}

/* Remove node from the tree; an array or object left empty goes too (FHIR has
 * no [] or {}), and so does a primitive's "_name" companion. */
static int remove_node(json_val *root, const json_val *node)
{
    json_val *parent;
    uint32_t idx;
    if (!find_parent(root, node, &parent, &idx, 0))
        return -1;
    if (parent->type == JSON_OBJECT) {
        char under[200];
        snprintf(under, sizeof under, "_%s", parent->u.members[idx].key);
        obj_remove_at(parent, idx);
        json_obj_del(parent, under);
        if (parent->n == 0 && parent != root)
            return remove_node(root, parent); /* FHIR has no {} either */
        return 0;
    }
    arr_remove_at(parent, idx);
    if (parent->n == 0)
        return remove_node(root, parent);
    return 0;
}

/* ---- FHIRPath Patch ---------------------------------------------------------- */

/* The part of a Parameters.parameter named `name`, or NULL. */
static json_val *part(const json_val *param, const char *name)
{
    json_val *parts = json_get(param, "part");
    if (!parts || parts->type != JSON_ARRAY)
        return NULL;
    for (uint32_t i = 0; i < parts->n; i++) {
        const char *n = json_get_str(&parts->u.items[i], "name");
        if (n && !strcmp(n, name))
            return &parts->u.items[i];
    }
    return NULL;
}

/* The value[x] member of a part: *suffix gets "Date", "HumanName"... */
static json_val *part_value(json_val *p, const char **suffix)
{
    if (!p || p->type != JSON_OBJECT)
        return NULL;
    for (uint32_t i = 0; i < p->n; i++) {
        json_member *m = &p->u.members[i];
        if (!strncmp(m->key, "value", 5) && m->key[5] >= 'A' && m->key[5] <= 'Z') {
            *suffix = m->key + 5;
            return &m->val;
        }
    }
    return NULL;
}

static const char *part_string(json_val *param, const char *name)
{
    json_val *p = part(param, name);
    const char *suffix;
    json_val *v = part_value(p, &suffix);
    return v && v->type == JSON_STRING ? v->u.s : NULL;
}

static int part_int(json_val *param, const char *name, long *out)
{
    json_val *p = part(param, name);
    const char *suffix;
    json_val *v = part_value(p, &suffix);
    if (!v || v->type != JSON_NUMBER || v->n > 9)
        return -1;
    char tmp[16];
    memcpy(tmp, v->u.s, v->n);
    tmp[v->n] = 0;
    char *end;
    long x = strtol(tmp, &end, 10);
    if (*end || x < 0)
        return -1;
    *out = x;
    return 0;
}

/* The element `name` of type t, for JSON key building: the element, its value
 * type (for backbones / complex types) and the JSON key (choice types get the
 * suffix of the value's type). */
static const fhir_elem *elem_for(const fhir_type *t, const char *name, const char *suffix,
                                 char *key, size_t keysz, const fhir_type **vtype)
{
    *vtype = NULL;
    snprintf(key, keysz, "%s", name);
    if (!t)
        return NULL;
    const fhir_elem *e = fhir_elem_find(t, name, strlen(name), NULL);
    if (e && !e->is_choice) {
        *vtype = e->ntypes ? e->types[0] : NULL;
        return e;
    }
    if (suffix) {
        char k[200];
        snprintf(k, sizeof k, "%s%s", name, suffix);
        const fhir_type *choice = NULL;
        e = fhir_elem_find(t, k, strlen(k), &choice);
        if (e) {
            snprintf(key, keysz, "%s", k);
            *vtype = choice;
            return e;
        }
    }
    return NULL;
}

/* Build the JSON value of a "value" part: value[x] as is, or an object from
 * nested parts (anonymous types such as Patient.contact), using the model type
 * `t` (may be NULL) to tell lists from single elements. */
static int build_value(arena *a, json_val *p, const fhir_type *t, json_val *out,
                       const char **suffix, int depth)
{
    *suffix = NULL;
    json_val *v = part_value(p, suffix);
    if (v) {
        *out = *v;
        return 0;
    }
    json_val *parts = p ? json_get(p, "part") : NULL;
    if (!parts || parts->type != JSON_ARRAY || depth > 16)
        return -1;
    json_val *obj = json_new_object(a);
    if (!obj)
        return ERR_NOMEM;
    for (uint32_t i = 0; i < parts->n; i++) {
        json_val *sp = &parts->u.items[i];
        const char *name = json_get_str(sp, "name");
        if (!name)
            return -1;
        const char *sub_suffix = NULL;
        part_value(sp, &sub_suffix);
        char key[200];
        const fhir_type *st = NULL;
        const fhir_elem *e = elem_for(t, name, sub_suffix, key, sizeof key, &st);
        json_val val;
        const char *ignored;
        if (build_value(a, sp, st, &val, &ignored, depth + 1))
            return -1;
        if (e && e->max > 1) {
            json_val *arr = json_get(obj, key);
            if (!arr) {
                json_val *na = json_new_array(a);
                if (!na || json_obj_set(a, obj, key, na))
                    return ERR_NOMEM;
                arr = json_get(obj, key);
            }
            if (json_arr_push(a, arr, &val))
                return ERR_NOMEM;
        } else if (json_obj_set(a, obj, key, &val)) {
            return ERR_NOMEM;
        }
    }
    *out = *obj;
    return 0;
}

/* The JSON array that holds the items of a list path (non-empty result). */
static json_val *list_of(json_val *root, const fp_coll *c)
{
    json_val *parent;
    uint32_t idx;
    if (!c->n || !c->v[0].node || !find_parent(root, c->v[0].node, &parent, &idx, 0) ||
        parent->type != JSON_ARRAY)
        return NULL;
    return parent;
}

/* Apply one operation whose path evaluated to c (valid while the compiled path
 * lives: literal results point into it). */
static int fp_op_apply(arena *a, json_val *root, json_val *param, int i, perr *e,
                       const char *type, const char *path, fp_coll c)
{
    for (size_t k = 0; k < c.n; k++)
        if (!c.v[k].node)
            return fail(e, 400, OO_INVALID, "'%.100s' selects values, not elements of the resource",
                        path);
    if (!strcmp(type, "delete")) {
        if (c.n == 0)
            return 0; /* nothing there: nothing to delete */
        if (c.n > 1)
            return fail(e, 400, OO_INVALID, "delete: '%.100s' matches %zu elements", path, c.n);
        if (!c.v[0].node || c.v[0].node == root || remove_node(root, c.v[0].node))
            return fail(e, 400, OO_INVALID, "delete: '%.100s' is not an element", path);
        return 0;
    }
    if (!strcmp(type, "replace")) {
        if (c.n != 1 || !c.v[0].node || c.v[0].node == root)
            return fail(e, 400, OO_INVALID, "replace: '%.100s' must match one element (%zu)",
                        path, c.n);
        json_val val;
        const char *suffix;
        if (build_value(a, part(param, "value"), c.v[0].ftype, &val, &suffix, 0))
            return fail(e, 400, OO_INVALID, "replace: operation %d has no usable value", i);
        json_val *node = (json_val *)c.v[0].node;
        uint32_t off = node->off;
        *node = val;
        node->off = off;
        return 0;
    }
    if (!strcmp(type, "add")) {
        const char *name = part_string(param, "name");
        if (!name)
            return fail(e, 400, OO_INVALID, "add: operation %d needs a name", i);
        if (c.n != 1 || !c.v[0].node || c.v[0].node->type != JSON_OBJECT)
            return fail(e, 400, OO_INVALID,
                        "add: '%.100s' must match one element to add '%s' to (it matches %zu)",
                        path, name, c.n);
        json_val *obj = (json_val *)c.v[0].node;
        const char *sfx = NULL;
        part_value(part(param, "value"), &sfx);
        char key[200];
        const fhir_type *vt = NULL;
        const fhir_elem *el = elem_for(c.v[0].ftype, name, sfx, key, sizeof key, &vt);
        json_val val;
        const char *suffix;
        if (build_value(a, part(param, "value"), vt, &val, &suffix, 0))
            return fail(e, 400, OO_INVALID, "add: operation %d has no usable value", i);
        json_val *cur = json_get(obj, key);
        if ((el && el->max > 1) || (cur && cur->type == JSON_ARRAY)) {
            if (!cur) {
                json_val *na = json_new_array(a);
                if (!na || json_obj_set(a, obj, key, na))
                    return fail(e, 503, OO_TRANSIENT, "out of memory");
                cur = json_get(obj, key);
            }
            if (json_arr_push(a, cur, &val))
                return fail(e, 503, OO_TRANSIENT, "out of memory");
            return 0;
        }
        if (json_obj_set(a, obj, key, &val))
            return fail(e, 503, OO_TRANSIENT, "out of memory");
        return 0;
    }
    if (!strcmp(type, "insert")) {
        long index;
        if (part_int(param, "index", &index))
            return fail(e, 400, OO_INVALID, "insert: operation %d needs an index", i);
        json_val *arr = list_of(root, &c);
        if (!arr)
            return fail(e, 400, OO_INVALID, "insert: '%.100s' is not a non-empty list", path);
        if ((unsigned long)index > arr->n)
            return fail(e, 400, OO_INVALID, "insert: index %ld is past the end (%u)", index,
                        arr->n);
        json_val val;
        const char *suffix;
        if (build_value(a, part(param, "value"), c.v[0].ftype, &val, &suffix, 0))
            return fail(e, 400, OO_INVALID, "insert: operation %d has no usable value", i);
        if (arr_insert(a, arr, (uint32_t)index, &val))
            return fail(e, 503, OO_TRANSIENT, "out of memory");
        return 0;
    }
    if (!strcmp(type, "move")) {
        long src, dst;
        if (part_int(param, "source", &src) || part_int(param, "destination", &dst))
            return fail(e, 400, OO_INVALID, "move: operation %d needs source and destination",
                        i);
        json_val *arr = list_of(root, &c);
        if (!arr || (unsigned long)src >= arr->n || (unsigned long)dst >= arr->n)
            return fail(e, 400, OO_INVALID, "move: indexes out of range for '%.100s'", path);
        json_val moved = arr->u.items[src];
        arr_remove_at(arr, (uint32_t)src);
        memmove(&arr->u.items[dst + 1], &arr->u.items[dst],
                sizeof(json_val) * (arr->n - (uint32_t)dst));
        arr->u.items[dst] = moved;
        arr->n++;
        return 0;
    }
    return fail(e, 400, OO_NOT_SUPPORTED, "unknown patch operation type '%.40s'", type);
}

static int fp_op(arena *a, json_val *root, json_val *param, int i, perr *e)
{
    const char *type = part_string(param, "type");
    const char *path = part_string(param, "path");
    if (!type || !path)
        return fail(e, 400, OO_INVALID, "operation %d needs type and path", i);
    fp_error fe;
    fp_expr *x = fp_compile(path, &fe);
    if (!x)
        return fail(e, 400, OO_INVALID, "invalid FHIRPath '%.100s': %s", path, fe.msg);
    fp_coll c;
    int rc = fp_eval(x, a, root, NULL, &c, &fe);
    if (rc)
        rc = fail(e, 400, OO_INVALID, "cannot evaluate '%.100s': %s", path, fe.msg);
    else
        rc = fp_op_apply(a, root, param, i, e, type, path, c);
    fp_free(x); /* only now: results may point into the compiled expression */
    return rc;
}

static int apply_fhirpath_patch(arena *a, json_val *root, json_val *params, perr *e)
{
    const char *rt = json_get_str(params, "resourceType");
    if (!rt || strcmp(rt, "Parameters"))
        return fail(e, 400, OO_INVALID,
                    "a FHIRPath Patch is a Parameters resource (or send "
                    "application/json-patch+json)");
    json_val *ps = json_get(params, "parameter");
    if (!ps)
        return 0;
    if (ps->type != JSON_ARRAY)
        return fail(e, 400, OO_STRUCTURE, "Parameters.parameter must be an array");
    for (uint32_t i = 0; i < ps->n; i++) {
        const char *name = json_get_str(&ps->u.items[i], "name");
        if (!name || strcmp(name, "operation"))
            return fail(e, 400, OO_INVALID, "parameter %u is not an 'operation'", i);
        if (fp_op(a, root, &ps->u.items[i], (int)i, e))
            return -1;
    }
    return 0;
}

/* ---- JSON Patch (RFC 6902) ------------------------------------------------------ */

/* Resolve a JSON Pointer: parent, key or idx say where the target is (or
 * would be, for add); *target is NULL when it does not exist. */
typedef struct jptr {
    json_val *parent; /* NULL for the root */
    char key[256];    /* object member name */
    long idx;         /* array index; -1 for "-" (append) */
    json_val *target;
} jptr;

static int jp_resolve(json_val *root, const char *p, jptr *out, perr *e)
{
    memset(out, 0, sizeof *out);
    out->target = root;
    if (!*p)
        return 0;
    if (*p != '/')
        return fail(e, 400, OO_INVALID, "JSON Pointer '%.100s' must start with '/'", p);
    json_val *cur = root;
    while (*p == '/') {
        p++;
        char tok[256];
        size_t n = 0;
        while (*p && *p != '/') {
            char ch = *p++;
            if (ch == '~') {
                if (*p == '0')
                    ch = '~';
                else if (*p == '1')
                    ch = '/';
                else
                    return fail(e, 400, OO_INVALID, "bad '~' escape in a JSON Pointer");
                p++;
            }
            if (n + 1 >= sizeof tok)
                return fail(e, 400, OO_INVALID, "JSON Pointer token too long");
            tok[n++] = ch;
        }
        tok[n] = 0;
        if (!cur)
            return fail(e, 400, OO_INVALID, "JSON Pointer goes through a missing value");
        out->parent = cur;
        out->idx = -1;
        snprintf(out->key, sizeof out->key, "%s", tok);
        if (cur->type == JSON_OBJECT) {
            cur = json_get(cur, tok);
        } else if (cur->type == JSON_ARRAY) {
            if (!strcmp(tok, "-")) {
                out->idx = -1;
                cur = NULL;
            } else {
                char *end;
                long i = strtol(tok, &end, 10);
                if (!n || *end || (tok[0] == '0' && n > 1) || i < 0)
                    return fail(e, 400, OO_INVALID, "'%s' is not an array index", tok);
                out->idx = i;
                cur = (unsigned long)i < cur->n ? &cur->u.items[i] : NULL;
            }
        } else {
            return fail(e, 400, OO_INVALID, "JSON Pointer goes through a primitive value");
        }
    }
    out->target = cur;
    return 0;
}

static int jp_add(arena *a, json_val *root, const char *path, const json_val *val, perr *e)
{
    jptr t;
    if (jp_resolve(root, path, &t, e))
        return -1;
    if (!t.parent)
        return fail(e, 400, OO_INVALID, "cannot replace the whole resource with add");
    if (t.parent->type == JSON_OBJECT) {
        if (json_obj_set(a, t.parent, t.key, val))
            return fail(e, 422, OO_TOO_COSTLY, "out of memory while applying the patch");
        return 0;
    }
    long i = t.idx < 0 ? (long)t.parent->n : t.idx;
    if ((unsigned long)i > t.parent->n)
        return fail(e, 400, OO_INVALID, "array index %ld out of range", i);
    if (arr_insert(a, t.parent, (uint32_t)i, val))
        return fail(e, 422, OO_TOO_COSTLY, "out of memory while applying the patch");
    return 0;
}

static int jp_remove(json_val *root, const char *path, json_val *removed, perr *e)
{
    jptr t;
    if (jp_resolve(root, path, &t, e))
        return -1;
    if (!t.target || !t.parent)
        return fail(e, 400, OO_INVALID, "nothing at '%.100s' to remove", path);
    *removed = *t.target;
    if (t.parent->type == JSON_OBJECT)
        json_obj_del(t.parent, t.key);
    else
        arr_remove_at(t.parent, (uint32_t)t.idx);
    return 0;
}

static int apply_json_patch(arena *a, json_val *root, json_val *ops, perr *e)
{
    if (ops->type != JSON_ARRAY)
        return fail(e, 400, OO_STRUCTURE, "a JSON Patch is an array of operations");
    size_t budget = REST_MAX_PATCH_COPY;
    for (uint32_t i = 0; i < ops->n; i++) {
        json_val *o = &ops->u.items[i];
        const char *op = json_get_str(o, "op");
        const char *path = json_get_str(o, "path");
        const char *from = json_get_str(o, "from");
        json_val *val = json_get(o, "value");
        if (!op || !path)
            return fail(e, 400, OO_INVALID, "JSON Patch operation %u needs op and path", i);
        if (!strcmp(op, "add")) {
            if (!val || jp_add(a, root, path, val, e))
                return val ? -1 : fail(e, 400, OO_INVALID, "add needs a value");
        } else if (!strcmp(op, "remove")) {
            json_val gone;
            if (jp_remove(root, path, &gone, e))
                return -1;
        } else if (!strcmp(op, "replace")) {
            jptr t;
            if (!val)
                return fail(e, 400, OO_INVALID, "replace needs a value");
            if (jp_resolve(root, path, &t, e))
                return -1;
            if (!t.target || !t.parent)
                return fail(e, 400, OO_INVALID, "nothing at '%.100s' to replace", path);
            *t.target = *val;
        } else if (!strcmp(op, "move") || !strcmp(op, "copy")) {
            jptr f;
            if (!from || jp_resolve(root, from, &f, e))
                return from ? -1 : fail(e, 400, OO_INVALID, "%s needs from", op);
            if (!f.target)
                return fail(e, 400, OO_INVALID, "nothing at '%.100s' to %s", from, op);
            json_val v = *f.target;
            if (!strcmp(op, "copy") && clone(a, f.target, &v, 0, &budget))
                return fail(e, 422, OO_TOO_COSTLY,
                            "JSON Patch operation %u: the copies of this patch would exceed "
                            "%u values (REST_MAX_PATCH_COPY) or the memory available",
                            i, (unsigned)REST_MAX_PATCH_COPY);
            if (!strcmp(op, "move")) {
                size_t fl = strlen(from);
                if (!strncmp(path, from, fl) && path[fl] == '/')
                    return fail(e, 400, OO_INVALID, "cannot move a value into itself");
                if (jp_remove(root, from, &v, e))
                    return -1;
            }
            if (jp_add(a, root, path, &v, e))
                return -1;
        } else if (!strcmp(op, "test")) {
            jptr t;
            if (!val || jp_resolve(root, path, &t, e))
                return val ? -1 : fail(e, 400, OO_INVALID, "test needs a value");
            if (!t.target || !json_equal(t.target, val))
                return fail(e, 409, OO_CONFLICT, "test failed at '%.100s'", path);
        } else {
            return fail(e, 400, OO_NOT_SUPPORTED, "unknown JSON Patch op '%.20s'", op);
        }
    }
    return 0;
}

/* ---- the interaction ------------------------------------------------------------ */

typedef struct patch_ctx {
    json_val *patch; /* parsed body */
    int json_patch;  /* 1: RFC 6902, 0: FHIRPath Patch */
} patch_ctx;

/* The write pipeline's transform: apply the patch to the current version. */
static int patch_transform(void *arg, arena *a, json_val *root, rest_refusal *why)
{
    patch_ctx *c = arg;
    perr pe = {0};
    int rc = c->json_patch ? apply_json_patch(a, root, c->patch, &pe)
                           : apply_fhirpath_patch(a, root, c->patch, &pe);
    if (rc == 0)
        return 0;
    why->status = pe.status;
    why->code = pe.code;
    why->msg = arena_strndup(a, pe.msg, strlen(pe.msg));
    return why->msg ? REST_PLAN_REFUSED : ERR_NOMEM;
}

int rest_patch(rest_req *r)
{
    patch_ctx *c = arena_zalloc(r->a, sizeof *c);
    rest_write *w = arena_zalloc(r->a, sizeof *w);
    if (!c || !w)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    /* PATCH [base]/Type?query: the one resource the search finds (write.c) */
    if (r->route.kind == RR_TYPE ? rest_write_target_cond(r, w, RW_PATCH)
                                 : rest_write_target(r, w))
        return REST_DONE;
    const char *ct = rest_header(r, "Content-Type");
    c->json_patch = ct && !strncasecmp(ct, "application/json-patch+json", 27);
    if (r->body.len == 0)
        return rest_send_error(r, 400, OO_INVALID, "the request has no body: send a patch",
                               NULL);
    json_error je;
    memset(&je, 0, sizeof je);
    int rc = json_parse(r->a, r->body.data, r->body.len, c->json_patch ? 0 : JSON_FHIR,
                        &c->patch, &je);
    if (rc)
        return rest_send_json_error(r, rc, &je);
    if (!c->json_patch && c->patch->type != JSON_OBJECT)
        return rest_send_error(r, 400, OO_STRUCTURE,
                               "a FHIRPath Patch is a Parameters resource", NULL);
    w->kind = RW_PATCH;
    w->transform = patch_transform;
    w->transform_arg = c;
    return rest_write_run(r, w);
}
