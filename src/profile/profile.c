/*
 * profile.c -- compiling a StructureDefinition into element rules and checking a
 * resource against them (profile.h draws the tree).
 *
 * Compiling: the elements (differential, else snapshot) are taken in order; each
 * element id ("Patient.identifier:bsn.system") is a walk from the root through
 * named children and slices, creating nodes on the way, each resolved against the
 * generated R4 model (a name that is not an element of the type there makes the
 * definition broken). The element's rules are then set on its node:
 *
 *   min, max                 cardinality of the values under one parent object
 *   type[].code              the types a choice element may take
 *   type[].profile           profiles of the values (an extension's definition,
 *                            a datatype profile), applied when the set holds them
 *   type[].targetProfile     core resource types a Reference may name
 *   fixed[x], pattern[x]     exact value / the value contains the pattern
 *   maxLength                string length
 *   binding (required)       codes from an R4 value set hortus enumerates
 *   constraint[]             FHIRPath, with the value as its context
 *   slicing                  value/pattern discriminators on a path, extensions by url
 *
 * Anything else an element says is either documentation (short, definition,
 * mustSupport, mapping, ...: no rule about instances) or a note, reported as a
 * warning every time the profile is used.
 *
 * Checking walks the resource and the tree together: for each node, the values of
 * its element under the current object are collected, counted, checked one by one,
 * matched to slices, and the node's children are checked under each value that is
 * an object. Locations are built in a buffer as the walk goes down
 * (Patient.identifier[0].system, Observation.value.ofType(Quantity)).
 */
#include "profile/profile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "fhir/model.h"
#include "fhirpath/decimal.h"
#include "fhirpath/fhirpath.h"

#define CORE_SD "http://hl7.org/fhir/StructureDefinition/"

typedef struct pcons {
    const char *key, *human, *src;
    int is_error;
    fp_expr *x;
} pcons;

typedef struct pdisc {
    const char *path; /* "system", "$this", "url", "coding.code" */
} pdisc;

typedef struct pnode pnode;
struct pnode {
    const char *id;        /* element id, for the messages */
    const char *name;      /* the segment: "identifier", "value[x]", "valueQuantity" */
    const char *slice;     /* sliceName, or NULL */
    const fhir_elem *el;   /* model element (NULL at the root) */
    const fhir_type *type; /* the values' type when it is one (NULL: an open choice) */
    const fhir_type *choice; /* a type-specific name (valueQuantity): only that type */
    int min, max;          /* -1: not constrained here; max -2: "*" */
    const fhir_type **types; /* type narrowing of a choice */
    size_t ntypes;
    const char **targets;  /* core resource types a Reference may name */
    size_t ntargets, captargets;
    const char **tprof;    /* type.profile canonicals */
    size_t ntprof, captprof;
    const json_val *fixed, *pattern;
    long max_length;       /* -1: none */
    const char *vs;        /* required binding, version removed */
    pcons *cons;
    size_t ncons;
    fp_expr *xname;        /* the element's name as FHIRPath (constraints on primitives) */
    int sliced;            /* a slicing is defined on this element */
    int slicing_ok;        /* and the engine can match its slices */
    int closed;
    pdisc *disc;
    size_t ndisc;
    pnode **slices;
    size_t nslices, capslices;
    pnode **kids;
    size_t nkids, capkids;
};

typedef struct pmsg {
    const char *elem; /* element id, or NULL */
    const char *text;
} pmsg;

struct prof_def {
    arena *a;
    const char *url, *version, *name, *base;
    const fhir_type *type;
    int constraint;  /* derivation constraint (or none given) */
    int kind_ok;     /* kind resource or complex-type */
    int snapshot;    /* compiled from the snapshot (there was no differential) */
    const char *unusable; /* why it cannot be applied, or NULL */
    pnode *root;
    pmsg *errors;
    size_t nerrors, caperrors;
    pmsg *notes;
    size_t nnotes, capnotes;
    fp_expr **exprs; /* to free */
    size_t nexprs, capexprs;
    int oom;
};

/* ---- small helpers ----------------------------------------------------------------- */

static int grow(arena *a, void **arr, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 4;
    void *m = arena_realloc(a, *arr, *cap * sz, nc * sz);
    if (!m)
        return ERR_NOMEM;
    *arr = m;
    *cap = nc;
    return 0;
}

static void addmsg(prof_def *p, int err, const char *elem, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void addmsg(prof_def *p, int err, const char *elem, const char *fmt, ...)
{
    char text[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pmsg **arr = err ? &p->errors : &p->notes;
    size_t *n = err ? &p->nerrors : &p->nnotes, *cap = err ? &p->caperrors : &p->capnotes;
    if (*n >= 200)
        return; /* enough to say what is wrong */
    if (grow(p->a, (void **)arr, cap, *n, sizeof **arr)) {
        p->oom = 1;
        return;
    }
    (*arr)[*n].elem = elem;
    (*arr)[*n].text = arena_strndup(p->a, text, strlen(text));
    if (!(*arr)[*n].text)
        p->oom = 1;
    (*n)++;
}

static char *dupn(prof_def *p, const char *s, size_t n)
{
    char *d = arena_strndup(p->a, s, n);
    if (!d)
        p->oom = 1;
    return d;
}

static fp_expr *compile_expr(prof_def *p, const char *src, fp_error *e)
{
    fp_expr *x = fp_compile(src, e);
    if (!x)
        return NULL;
    if (grow(p->a, (void **)&p->exprs, &p->capexprs, p->nexprs, sizeof *p->exprs)) {
        fp_free(x);
        p->oom = 1;
        return NULL;
    }
    p->exprs[p->nexprs++] = x;
    return x;
}

/* "url|version" -> the url part length */
static size_t url_len(const char *c)
{
    const char *bar = strchr(c, '|');
    return bar ? (size_t)(bar - c) : strlen(c);
}

int prof_is_core(const char *canonical)
{
    size_t n = url_len(canonical), k = strlen(CORE_SD);
    return n > k && !strncmp(canonical, CORE_SD, k) && fhir_type_find(canonical + k, n - k);
}

static const fhir_type *core_type(const char *canonical)
{
    size_t n = url_len(canonical), k = strlen(CORE_SD);
    if (n <= k || strncmp(canonical, CORE_SD, k))
        return NULL;
    return fhir_type_find(canonical + k, n - k);
}

const char *prof_def_url(const prof_def *p)
{
    return p->url;
}

int prof_def_usable(const prof_def *p)
{
    return p && !p->nerrors && !p->unusable;
}

/* ---- compiling --------------------------------------------------------------------- */

static pnode *new_node(prof_def *p, const char *id, const char *name, const char *slice)
{
    pnode *n = arena_zalloc(p->a, sizeof *n);
    if (!n) {
        p->oom = 1;
        return NULL;
    }
    n->id = id;
    n->name = name;
    n->slice = slice;
    n->min = -1;
    n->max = -1;
    n->max_length = -1;
    return n;
}

/* The one type the values of node n have, for walking into them (NULL: not known). */
static const fhir_type *node_type(const pnode *n)
{
    if (n->choice)
        return n->choice;
    if (n->type)
        return n->type;
    if (n->ntypes == 1)
        return n->types[0];
    return NULL;
}

/* Child `name` of node parent (type t), resolved in the model; created when new. */
static pnode *child(prof_def *p, pnode *parent, const char *id, const char *name)
{
    for (size_t i = 0; i < parent->nkids; i++)
        if (!strcmp(parent->kids[i]->name, name))
            return parent->kids[i];
    const fhir_type *t = node_type(parent);
    if (!t) {
        addmsg(p, 1, id,
               "element %s: '%s' is under a choice element whose type is not narrowed to one",
               id, name);
        return NULL;
    }
    size_t n = strlen(name);
    const fhir_elem *el;
    const fhir_type *choice = NULL;
    if (n > 3 && !strcmp(name + n - 3, "[x]")) {
        el = fhir_elem_named(t, name, n - 3);
        if (el && !el->is_choice)
            el = NULL;
    } else {
        el = fhir_elem_find(t, name, n, &choice);
        if (el && el->is_choice && !choice)
            el = NULL; /* "value" alone is not a path of the definitions */
    }
    if (!el) {
        addmsg(p, 1, id, "element %s: '%s' is not an element of %s", id, name, t->name);
        return NULL;
    }
    pnode *k = new_node(p, id, name, NULL);
    if (!k)
        return NULL;
    k->el = el;
    k->choice = choice;
    k->type = el->is_choice ? choice : el->ntypes ? el->types[0] : NULL;
    if (grow(p->a, (void **)&parent->kids, &parent->capkids, parent->nkids, sizeof *parent->kids)) {
        p->oom = 1;
        return NULL;
    }
    parent->kids[parent->nkids++] = k;
    return k;
}

static pnode *slice_of(prof_def *p, pnode *base, const char *id, const char *slice)
{
    for (size_t i = 0; i < base->nslices; i++)
        if (!strcmp(base->slices[i]->slice, slice))
            return base->slices[i];
    pnode *s = new_node(p, id, base->name, slice);
    if (!s)
        return NULL;
    s->el = base->el;
    s->type = base->type;
    s->choice = base->choice;
    if (grow(p->a, (void **)&base->slices, &base->capslices, base->nslices, sizeof *base->slices)) {
        p->oom = 1;
        return NULL;
    }
    base->slices[base->nslices++] = s;
    return s;
}

/* Capitalised type name appended to the choice's name: "value" + "Quantity". */
static int is_type_slice(const pnode *base, const char *slice, const fhir_type **t)
{
    if (!base->el || !base->el->is_choice)
        return 0;
    size_t bn = strlen(base->el->name);
    if (strncmp(slice, base->el->name, bn) || !slice[bn])
        return 0;
    const fhir_type *ch = NULL;
    for (uint8_t i = 0; i < base->el->ntypes; i++) {
        const char *tn = base->el->types[i]->name;
        if ((tn[0] & ~0x20) == slice[bn] && !strcmp(tn + 1, slice + bn + 1))
            ch = base->el->types[i];
    }
    *t = ch;
    return ch != NULL;
}

/* Walk (and create) the nodes of element id `id` (segments split by '.', each
 * name[:slice]); NULL when it cannot be placed (an error or note was added). */
static pnode *place(prof_def *p, const char *id)
{
    if (strchr(id, '/')) {
        addmsg(p, 0, id, "element %s: reslicing is not supported; its rules are not checked", id);
        return NULL;
    }
    const char *s = id;
    const char *dot = strchr(s, '.');
    size_t rn = dot ? (size_t)(dot - s) : strlen(s);
    const char *colon = memchr(s, ':', rn);
    if (colon || rn != strlen(p->type->name) || strncmp(s, p->type->name, rn)) {
        addmsg(p, 1, id, "element %s: the path does not start with the type %s", id,
               p->type->name);
        return NULL;
    }
    pnode *n = p->root;
    while (dot && n) {
        s = dot + 1;
        dot = strchr(s, '.');
        size_t sn = dot ? (size_t)(dot - s) : strlen(s);
        const char *c = memchr(s, ':', sn);
        size_t nn = c ? (size_t)(c - s) : sn;
        if (!nn || (c && c + 1 == s + sn)) {
            addmsg(p, 1, id, "element %s: empty path segment", id);
            return NULL;
        }
        char *name = dupn(p, s, nn);
        char *plain = dupn(p, id, (size_t)(s + nn - id));
        char *upto = dupn(p, id, (size_t)(s + sn - id));
        if (!name || !plain || !upto)
            return NULL;
        pnode *k = child(p, n, plain, name);
        if (!k)
            return NULL;
        if (c) {
            char *slice = dupn(p, c + 1, (size_t)(s + sn - c - 1));
            const fhir_type *tt;
            if (!slice)
                return NULL;
            if (is_type_slice(k, slice, &tt)) {
                /* value[x]:valueQuantity is the type-specific valueQuantity */
                k = child(p, n, upto, slice);
            } else {
                k = slice_of(p, k, upto, slice);
            }
            if (!k)
                return NULL;
        }
        n = k;
    }
    return n;
}

static int parse_max(const char *s, int *out)
{
    if (!strcmp(s, "*")) {
        *out = -2;
        return 0;
    }
    long v = 0;
    if (!*s)
        return -1;
    for (const char *q = s; *q; q++) {
        if (*q < '0' || *q > '9' || v > 1000000)
            return -1;
        v = v * 10 + (*q - '0');
    }
    *out = (int)v;
    return 0;
}

/* A JSON number that is a non-negative integer of at most 9 digits into *out: 0, or -1. */
static int json_count(const json_val *v, long *out)
{
    if (v->type != JSON_NUMBER || !v->n || v->n > 9)
        return -1;
    long r = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        if (v->u.s[i] < '0' || v->u.s[i] > '9')
            return -1;
        r = r * 10 + (v->u.s[i] - '0');
    }
    *out = r;
    return 0;
}

static int is_simple_path(const char *s)
{
    if (!strcmp(s, "$this"))
        return 1;
    if (!*s)
        return 0;
    for (const char *q = s; *q; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
              *q == '.' || *q == '_'))
            return 0;
    return 1;
}

static void take_slicing(prof_def *p, pnode *n, const json_val *sl)
{
    n->sliced = 1;
    n->slicing_ok = 1;
    const char *rules = json_get_str(sl, "rules");
    if (rules && !strcmp(rules, "closed"))
        n->closed = 1;
    else if (rules && !strcmp(rules, "openAtEnd"))
        addmsg(p, 0, n->id, "element %s: slicing rules openAtEnd are checked as open", n->id);
    const json_val *ord = json_get(sl, "ordered");
    if (ord && ord->type == JSON_TRUE)
        addmsg(p, 0, n->id, "element %s: ordered slicing: the order of the slices is not checked",
               n->id);
    const json_val *ds = json_get(sl, "discriminator");
    size_t nd = ds && ds->type == JSON_ARRAY ? ds->n : 0;
    n->disc = nd ? arena_zalloc(p->a, sizeof *n->disc * nd) : NULL;
    if (nd && !n->disc) {
        p->oom = 1;
        return;
    }
    int is_ext = n->el && (!strcmp(n->el->name, "extension") || !strcmp(n->el->name, "modifierExtension"));
    for (size_t i = 0; i < nd; i++) {
        const char *ty = json_get_str(&ds->u.items[i], "type");
        const char *pa = json_get_str(&ds->u.items[i], "path");
        if (!ty || !pa) {
            addmsg(p, 1, n->id, "element %s: a slicing discriminator needs type and path", n->id);
            n->slicing_ok = 0;
            continue;
        }
        if ((!strcmp(ty, "value") || !strcmp(ty, "pattern")) && is_simple_path(pa)) {
            n->disc[n->ndisc++].path = pa;
        } else if (!strcmp(ty, "type") && !strcmp(pa, "$this") && n->el && n->el->is_choice) {
            /* a choice sliced by type: its slices are the type-specific elements */
        } else {
            addmsg(p, 0, n->id,
                   "element %s: slicing discriminator %s on '%s' is not supported; the slices of "
                   "%s are not checked",
                   n->id, ty, pa, n->id);
            n->slicing_ok = 0;
        }
    }
    if (!nd && !is_ext) {
        addmsg(p, 0, n->id, "element %s: slicing without a discriminator; the slices are not checked",
               n->id);
        n->slicing_ok = 0;
    }
}

static void take_types(prof_def *p, pnode *n, const json_val *ts)
{
    if (ts->type != JSON_ARRAY)
        return;
    const fhir_type **types = arena_zalloc(p->a, sizeof *types * (ts->n ? ts->n : 1));
    if (!types) {
        p->oom = 1;
        return;
    }
    size_t nt = 0;
    for (uint32_t i = 0; i < ts->n; i++) {
        const json_val *t = &ts->u.items[i];
        const char *code = json_get_str(t, "code");
        if (!code) {
            addmsg(p, 1, n->id, "element %s: type[%u] has no code", n->id, i);
            continue;
        }
        if (!strncmp(code, "http://hl7.org/fhirpath/System.", 31))
            continue; /* a snapshot's id and url elements: the model knows their types */
        const fhir_type *ft = fhir_type_find(code, strlen(code));
        if (n->el && n->el->is_choice) {
            int allowed = 0;
            for (uint8_t k = 0; ft && k < n->el->ntypes; k++)
                allowed |= n->el->types[k] == ft;
            if (!allowed) {
                addmsg(p, 1, n->id, "element %s: type %s is not one of the types of %s", n->id,
                       code, n->el->name);
                continue;
            }
            types[nt++] = ft;
        } else if (n->el && n->type && ft != n->type && !(n->type->kind == FHIR_BACKBONE &&
                                                        (!strcmp(code, "BackboneElement") ||
                                                         !strcmp(code, "Element")))) {
            if (!ft)
                addmsg(p, 1, n->id, "element %s: type %s is not an R4 type", n->id, code);
            else
                addmsg(p, 0, n->id, "element %s: type %s narrowing %s is not checked", n->id, code,
                       n->type->name);
        }
        const json_val *pr = json_get(t, "profile");
        for (uint32_t k = 0; pr && pr->type == JSON_ARRAY && k < pr->n; k++) {
            if (pr->u.items[k].type != JSON_STRING)
                continue;
            if (grow(p->a, (void **)&n->tprof, &n->captprof, n->ntprof, sizeof *n->tprof)) {
                p->oom = 1;
                return;
            }
            n->tprof[n->ntprof++] = pr->u.items[k].u.s;
        }
        const json_val *tp = json_get(t, "targetProfile");
        int all_core = 1;
        for (uint32_t k = 0; tp && tp->type == JSON_ARRAY && k < tp->n; k++) {
            const char *u = tp->u.items[k].type == JSON_STRING ? tp->u.items[k].u.s : "";
            const fhir_type *ct = core_type(u);
            if (!ct) {
                all_core = 0;
                continue;
            }
            if (grow(p->a, (void **)&n->targets, &n->captargets, n->ntargets,
                     sizeof *n->targets)) {
                p->oom = 1;
                return;
            }
            n->targets[n->ntargets++] = ct->name;
        }
        if (!all_core) {
            addmsg(p, 0, n->id,
                   "element %s: targetProfile other than a core resource type is not checked "
                   "(the target is not read)",
                   n->id);
            n->ntargets = 0;
        }
        if (json_get(t, "aggregation") || json_get(t, "versioning"))
            addmsg(p, 0, n->id, "element %s: type aggregation/versioning is not checked", n->id);
    }
    if (n->el && n->el->is_choice && nt) {
        n->types = types;
        n->ntypes = nt;
    }
}

/* ElementDefinition members that say nothing an instance could break. */
static int is_documentation(const char *k)
{
    static const char *const doc[] = {
        "id", "extension", "path", "sliceName", "label", "code", "short", "definition",
        "comment", "requirements", "alias", "base", "meaningWhenMissing", "orderMeaning",
        "example", "condition", "mustSupport", "isModifier", "isModifierReason", "isSummary",
        "mapping", "representation", "contentReference", "_short", "_definition", "_comment", "_requirements"};
    for (size_t i = 0; i < sizeof doc / sizeof *doc; i++)
        if (!strcmp(k, doc[i]))
            return 1;
    return 0;
}

static void take_constraints(prof_def *p, pnode *n, const json_val *cs, int snapshot)
{
    if (cs->type != JSON_ARRAY)
        return;
    n->cons = arena_zalloc(p->a, sizeof *n->cons * (cs->n ? cs->n : 1));
    if (!n->cons) {
        p->oom = 1;
        return;
    }
    for (uint32_t i = 0; i < cs->n; i++) {
        const json_val *c = &cs->u.items[i];
        const char *key = json_get_str(c, "key"), *sev = json_get_str(c, "severity");
        const char *expr = json_get_str(c, "expression"), *human = json_get_str(c, "human");
        const char *src = json_get_str(c, "source");
        /* a snapshot repeats the base definitions' invariants: those are the base's */
        if (snapshot && src && !strncmp(src, CORE_SD, strlen(CORE_SD)))
            continue;
        if (!key)
            key = "(no key)";
        if (!expr) {
            addmsg(p, 0, n->id, "element %s: constraint %s has no FHIRPath expression; not checked",
                   n->id, key);
            continue;
        }
        fp_error e;
        fp_expr *x = compile_expr(p, expr, &e);
        if (!x) {
            addmsg(p, 1, n->id, "element %s: constraint %s: the expression does not compile: %s",
                   n->id, key, e.msg);
            continue;
        }
        pcons *pc = &n->cons[n->ncons++];
        pc->x = x;
        pc->key = key;
        pc->human = human ? human : "";
        pc->src = expr;
        pc->is_error = !sev || strcmp(sev, "warning");
    }
    if (n->ncons && n->el && !n->xname) {
        fp_error e;
        n->xname = compile_expr(p, n->el->name, &e);
    }
}

static void take_element(prof_def *p, const json_val *ed, size_t i, int snapshot)
{
    const char *path = json_get_str(ed, "path");
    const char *id = json_get_str(ed, "id");
    const char *sn = json_get_str(ed, "sliceName");
    char where[64];
    snprintf(where, sizeof where, "element[%zu]", i);
    if (!path) {
        addmsg(p, 1, NULL, "%s has no path", where);
        return;
    }
    if (!id) {
        buf b = BUF_INIT;
        buf_printf(&b, "%s%s%s", path, sn ? ":" : "", sn ? sn : "");
        id = b.err ? NULL : dupn(p, b.data, b.len);
        buf_free(&b);
        if (!id)
            return;
    }
    /* the path must be the id without its slice names */
    {
        size_t pi = 0;
        int ok = 1;
        for (const char *q = id; *q && ok;) {
            if (*q == ':') {
                while (*q && *q != '.')
                    q++;
                continue;
            }
            ok = path[pi] == *q;
            pi++;
            q++;
        }
        if (!ok || path[pi]) {
            addmsg(p, 1, id, "element %s: its path %s does not match its id", id, path);
            return;
        }
    }
    pnode *n = place(p, id);
    if (!n)
        return;
    int is_root = n == p->root;
    for (uint32_t k = 0; k < ed->n; k++) {
        const json_member *m = &ed->u.members[k];
        const char *key = m->key;
        const json_val *v = &m->val;
        if (is_documentation(key))
            continue;
        if (!strcmp(key, "min")) {
            long mn;
            if (json_count(v, &mn) || mn > 1000000)
                addmsg(p, 1, id, "element %s: min must be a non-negative integer", id);
            else
                n->min = (int)mn;
        } else if (!strcmp(key, "max")) {
            if (v->type != JSON_STRING || parse_max(v->u.s, &n->max))
                addmsg(p, 1, id, "element %s: max must be '*' or a non-negative integer", id);
        } else if (!strcmp(key, "type")) {
            take_types(p, n, v);
        } else if (!strcmp(key, "slicing")) {
            take_slicing(p, n, v);
        } else if (!strcmp(key, "constraint")) {
            take_constraints(p, n, v, snapshot);
        } else if (!strcmp(key, "binding")) {
            const char *st = json_get_str(v, "strength"), *vs = json_get_str(v, "valueSet");
            if (st && !strcmp(st, "required")) {
                if (!vs)
                    addmsg(p, 0, id, "element %s: a required binding without a valueSet is not checked", id);
                else if (!(n->el && n->el->binding_vs && url_len(vs) == strlen(n->el->binding_vs) &&
                           !strncmp(vs, n->el->binding_vs, url_len(vs))))
                    n->vs = dupn(p, vs, url_len(vs)); /* the base's own is checked already */
            }
        } else if (!strcmp(key, "maxLength")) {
            if (json_count(v, &n->max_length))
                addmsg(p, 1, id, "element %s: maxLength must be a non-negative integer", id);
        } else if (!strncmp(key, "fixed", 5) && key[5] >= 'A' && key[5] <= 'Z') {
            n->fixed = v;
        } else if (!strncmp(key, "pattern", 7) && key[7] >= 'A' && key[7] <= 'Z') {
            n->pattern = v;
        } else if (key[0] == '_') {
            continue; /* extensions of primitive members */
        } else if (!strncmp(key, "defaultValue", 12)) {
            addmsg(p, 0, id, "element %s: defaultValue is not applied", id);
        } else {
            addmsg(p, 0, id, "element %s: %s is not checked by hortus", id, key);
        }
    }
    if (!is_root && n->el) {
        int bmax = n->el->max == FHIR_MAX_UNBOUNDED ? -2 : n->el->max;
        int max = n->max;
        if (n->min >= 0 && max >= 0 && n->min > max)
            addmsg(p, 1, id, "element %s: min %d is greater than max %d", id, n->min, max);
        if (max == -2 && bmax != -2)
            addmsg(p, 1, id, "element %s: max * exceeds the base max %d", id, bmax);
        else if (max >= 0 && bmax >= 0 && max > bmax)
            addmsg(p, 1, id, "element %s: max %d exceeds the base max %d", id, max, bmax);
    }
    if (is_root && (n->min >= 0 || n->max >= 0))
        n->min = n->max = -1; /* the resource itself: always one */
}

int prof_compile(arena *a, const json_val *sd, prof_def **out)
{
    prof_def *p = arena_zalloc(a, sizeof *p);
    *out = p;
    if (!p)
        return ERR_NOMEM;
    p->a = a;
    p->url = json_get_str(sd, "url");
    p->version = json_get_str(sd, "version");
    p->name = json_get_str(sd, "name");
    p->base = json_get_str(sd, "baseDefinition");
    if (!p->url)
        addmsg(p, 1, NULL, "StructureDefinition.url is required");
    const char *kind = json_get_str(sd, "kind"), *der = json_get_str(sd, "derivation");
    const char *type = json_get_str(sd, "type");
    p->constraint = !der || !strcmp(der, "constraint");
    p->kind_ok = kind && (!strcmp(kind, "resource") || !strcmp(kind, "complex-type"));
    if (!p->constraint)
        p->unusable = "it is a specialization (a definition of a type), not a profile";
    else if (!p->kind_ok)
        p->unusable = "only profiles of kind resource or complex-type are applied";
    if (!p->constraint || !p->kind_ok)
        return p->oom ? ERR_NOMEM : 0; /* stored as it is; never applied */
    p->type = type ? fhir_type_find(type, strlen(type)) : NULL;
    if (!p->type || p->type->kind == FHIR_PRIMITIVE || p->type->kind == FHIR_BACKBONE) {
        addmsg(p, 1, NULL, "StructureDefinition.type '%s' is not an R4 resource or complex type",
               type ? type : "");
        return p->oom ? ERR_NOMEM : 0;
    }
    if (!strcmp(kind, "resource") != (p->type->kind == FHIR_RESOURCE))
        addmsg(p, 1, NULL, "StructureDefinition.kind %s does not fit the type %s", kind,
               p->type->name);
    if (!p->base)
        addmsg(p, 1, NULL, "StructureDefinition.baseDefinition is required for a constraint");
    else if (!strcmp(p->base, p->url ? p->url : ""))
        addmsg(p, 1, NULL, "StructureDefinition.baseDefinition names the profile itself");
    else {
        const fhir_type *bt = core_type(p->base);
        if (bt && !fhir_type_is(p->type, bt))
            addmsg(p, 1, NULL, "StructureDefinition.baseDefinition %s is not a definition of %s",
                   p->base, p->type->name);
    }
    p->root = new_node(p, p->type->name, p->type->name, NULL);
    if (!p->root)
        return ERR_NOMEM;
    p->root->type = p->type;
    int snapshot = 0;
    const json_val *els = json_get(json_get(sd, "differential"), "element");
    if (!els) {
        els = json_get(json_get(sd, "snapshot"), "element");
        snapshot = 1;
        p->snapshot = 1;
    }
    size_t n = els && els->type == JSON_ARRAY ? els->n : 0;
    if (n > PROF_MAX_ELEMENTS)
        addmsg(p, 1, NULL, "more than %d elements (PROF_MAX_ELEMENTS)", PROF_MAX_ELEMENTS);
    for (size_t i = 0; i < n && i < PROF_MAX_ELEMENTS && !p->oom; i++)
        take_element(p, &els->u.items[i], i, snapshot);
    return p->oom ? ERR_NOMEM : 0;
}

void prof_def_free(prof_def *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nexprs; i++)
        fp_free(p->exprs[i]);
    p->nexprs = 0;
}

size_t prof_def_errors(const prof_def *p, oo *out)
{
    for (size_t i = 0; i < p->nerrors; i++) {
        char where[300] = "StructureDefinition";
        if (p->errors[i].elem)
            snprintf(where, sizeof where, "StructureDefinition.%s.element.where(id = '%.200s')",
                     p->snapshot ? "snapshot" : "differential", p->errors[i].elem);
        oo_add(out, OO_ERROR, OO_INVALID, p->errors[i].text, where);
    }
    return p->nerrors;
}

/* ---- checking ---------------------------------------------------------------------- */

typedef struct ck {
    arena *a;
    prof_find_fn find;   /* profiles by canonical (baseDefinition, type.profile) */
    const void *fctx;
    const json_val *res; /* %resource */
    oo *out;
    const prof_def *p;   /* the profile being applied */
    int depth;
    size_t nerr;
    int rc;              /* sticky ERR_NOMEM */
    char loc[PROF_MAX_LOC];
    size_t nloc;
} ck;

typedef struct pitem {
    const json_val *v;   /* the value (NULL: a primitive with only "_name") */
    const fhir_type *t;  /* its type */
    const char *key;     /* the JSON key it is under */
    int idx;             /* array index, -1 for a single value */
} pitem;

static size_t loc_push(ck *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t loc_push(ck *c, const char *fmt, ...)
{
    size_t mark = c->nloc;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(c->loc + c->nloc, sizeof c->loc - c->nloc, fmt, ap);
    va_end(ap);
    if (w > 0)
        c->nloc += (size_t)w < sizeof c->loc - c->nloc ? (size_t)w : sizeof c->loc - c->nloc - 1;
    return mark;
}

static void loc_pop(ck *c, size_t mark)
{
    c->nloc = mark;
    c->loc[mark] = 0;
}

static void issue(ck *c, oo_severity sev, oo_code code, const pnode *n, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void issue(ck *c, oo_severity sev, oo_code code, const pnode *n, const char *fmt, ...)
{
    char what[700], msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "profile %s, element %s: %s", c->p->url ? c->p->url : "?",
             n ? n->id : "?", what);
    if (oo_add(c->out, sev, code, msg, c->loc))
        c->rc = ERR_NOMEM;
    if (sev == OO_ERROR || sev == OO_FATAL)
        c->nerr++;
}

static void describe(const json_val *v, char *out, size_t cap)
{
    buf b = BUF_INIT;
    json_write(&b, v, 0);
    snprintf(out, cap, "%.*s%s", b.len > 200 ? 200 : (int)b.len, b.err ? "" : buf_cstr(&b),
             b.len > 200 ? "..." : "");
    buf_free(&b);
}

static int num_eq(const json_val *x, const json_val *y)
{
    fp_dec a, b;
    if (fp_dec_parse_json(x->u.s, x->n, &a) || fp_dec_parse_json(y->u.s, y->n, &b))
        return x->n == y->n && !memcmp(x->u.s, y->u.s, x->n);
    return fp_dec_eq(a, b);
}

/* fixed[x]: the same value (object members in any order). */
static int jeq(const json_val *x, const json_val *y)
{
    if (x->type != y->type)
        return 0;
    switch (x->type) {
    case JSON_NUMBER:
        return num_eq(x, y);
    case JSON_STRING:
        return x->n == y->n && !memcmp(x->u.s, y->u.s, x->n);
    case JSON_ARRAY:
        if (x->n != y->n)
            return 0;
        for (uint32_t i = 0; i < x->n; i++)
            if (!jeq(&x->u.items[i], &y->u.items[i]))
                return 0;
        return 1;
    case JSON_OBJECT:
        if (x->n != y->n)
            return 0;
        for (uint32_t i = 0; i < x->n; i++) {
            const json_val *o = json_getn(y, x->u.members[i].key, x->u.members[i].key_len);
            if (!o || !jeq(&x->u.members[i].val, o))
                return 0;
        }
        return 1;
    default:
        return 1;
    }
}

/* pattern[x]: inst has every member of pat (recursively); an array item of the
 * pattern matches some item of the instance's array. */
static int jcontains(const json_val *inst, const json_val *pat)
{
    if (pat->type == JSON_ARRAY) {
        if (inst->type != JSON_ARRAY)
            return pat->n == 1 && jcontains(inst, &pat->u.items[0]);
        for (uint32_t i = 0; i < pat->n; i++) {
            int found = 0;
            for (uint32_t k = 0; k < inst->n && !found; k++)
                found = jcontains(&inst->u.items[k], &pat->u.items[i]);
            if (!found)
                return 0;
        }
        return 1;
    }
    if (inst->type == JSON_ARRAY) /* a repeating member matched by one item */
        return 0;
    if (pat->type != JSON_OBJECT)
        return jeq(inst, pat);
    if (inst->type != JSON_OBJECT)
        return 0;
    for (uint32_t i = 0; i < pat->n; i++) {
        const json_val *o = json_getn(inst, pat->u.members[i].key, pat->u.members[i].key_len);
        if (!o || !jcontains(o, &pat->u.members[i].val))
            return 0;
    }
    return 1;
}

/* The values of node n's element under object obj (type t) into *out (arena). */
static size_t collect(ck *c, const pnode *n, const json_val *obj, const fhir_type *t, pitem **out)
{
    *out = NULL;
    if (!n->el || obj->type != JSON_OBJECT)
        return 0;
    size_t total = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0;
        for (uint32_t i = 0; i < obj->n; i++) {
            const json_member *m = &obj->u.members[i];
            const char *key = m->key;
            size_t kl = m->key_len;
            int under = key[0] == '_';
            if (under) {
                key++;
                kl--;
            }
            const fhir_type *ch = NULL;
            const fhir_elem *el = fhir_elem_find(t, key, kl, &ch);
            if (el != n->el || (n->choice && ch != n->choice))
                continue;
            const json_val *v = &m->val;
            const json_val *twin = under ? json_getn(obj, key, kl) : NULL;
            if (under && twin)
                continue; /* counted with its value */
            size_t cnt = v->type == JSON_ARRAY ? v->n : 1;
            if (!under && v->type == JSON_ARRAY) {
                /* "_given" may be longer than "given" (nulls fill the value array) */
                char uk[130];
                snprintf(uk, sizeof uk, "_%.*s", (int)kl, key);
                const json_val *ext = json_get(obj, uk);
                if (ext && ext->type == JSON_ARRAY && ext->n > cnt)
                    cnt = ext->n;
            }
            if (pass == 0) {
                total += cnt;
                continue;
            }
            for (size_t j = 0; j < cnt; j++) {
                pitem *it = &(*out)[k++];
                const json_val *iv = v->type == JSON_ARRAY ? (j < v->n ? &v->u.items[j] : NULL) : v;
                if (under || (iv && iv->type == JSON_NULL))
                    iv = NULL;
                it->v = iv;
                it->t = el->is_choice ? ch : el->ntypes ? el->types[0] : NULL;
                it->key = m->key;
                it->idx = v->type == JSON_ARRAY ? (int)j : -1;
            }
        }
        if (pass == 0) {
            if (!total)
                return 0;
            *out = arena_alloc(c->a, sizeof **out * total);
            if (!*out) {
                c->rc = ERR_NOMEM;
                return 0;
            }
        }
    }
    return total;
}

static size_t push_item(ck *c, const pnode *n, const pitem *it)
{
    size_t mark = loc_push(c, ".%s", n->el->name);
    if (n->el->is_choice && it->t)
        loc_push(c, ".ofType(%s)", it->t->name);
    if (it->idx >= 0)
        loc_push(c, "[%d]", it->idx);
    return mark;
}

static void check_kids(ck *c, const pnode *n, const json_val *obj, const fhir_type *t,
                       const fp_val *self);
static void apply_profile(ck *c, const prof_def *p, const pnode *from, const json_val *obj,
                          const fhir_type *t, const fp_val *self);

/* Codes of a value under a required binding: code/string/uri, Coding, Quantity,
 * CodeableConcept (its codings). 1 when it has one in the value set, 0 when not, -1
 * when the value set is not known, -2 when the value has no code at all. */
static int binding_holds(const char *vs, const pitem *it)
{
    const json_val *v = it->v;
    if (!v)
        return -2;
    if (v->type == JSON_STRING)
        return fhir_valueset_contains(vs, v->u.s, v->n);
    const char *tn = it->t ? it->t->name : "";
    if (!strcmp(tn, "CodeableConcept")) {
        const json_val *cs = json_get(v, "coding");
        int any = -2;
        for (uint32_t i = 0; cs && cs->type == JSON_ARRAY && i < cs->n; i++) {
            const json_val *code = json_get(&cs->u.items[i], "code");
            if (!code || code->type != JSON_STRING)
                continue;
            int r = fhir_valueset_contains(vs, code->u.s, code->n);
            if (r == 1 || r == -1)
                return r;
            any = 0;
        }
        return any == -2 ? 0 : any;
    }
    const json_val *code = json_get(v, "code");
    if (!code || code->type != JSON_STRING)
        return -2;
    return fhir_valueset_contains(vs, code->u.s, code->n);
}

/* The type named by a reference string ("Patient/1", "http://x/fhir/Patient/1",
 * "Patient/1/_history/2"), or 0 when it names none (contained, urn:...). */
static int reference_type(const char *s, char *out, size_t cap)
{
    if (s[0] == '#' || !strncmp(s, "urn:", 4))
        return 0;
    const char *h = strstr(s, "/_history/");
    size_t n = h ? (size_t)(h - s) : strlen(s);
    /* the last two segments of what is left: Type/id */
    const char *slash = NULL, *prev = NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/') {
            prev = slash;
            slash = s + i;
        }
    if (!slash)
        return 0;
    const char *t0 = prev ? prev + 1 : s;
    size_t tl = (size_t)(slash - t0);
    if (!tl || tl >= cap)
        return 0;
    memcpy(out, t0, tl);
    out[tl] = 0;
    return 1;
}

/* The FHIRPath item of a primitive value (for constraints): found among the values of
 * n's element under parent. */
static int prim_item(ck *c, const pnode *n, const fp_val *parent, const pitem *it, fp_val *out)
{
    if (!n->xname || !parent)
        return 0;
    fp_coll r;
    fp_error e;
    if (fp_eval_item(n->xname, c->a, parent, c->res, &r, &e))
        return 0;
    for (size_t i = 0; i < r.n; i++)
        if (r.v[i].node == it->v) {
            *out = r.v[i];
            return 1;
        }
    return 0;
}

static void check_constraints(ck *c, const pnode *n, const fp_val *item)
{
    for (size_t i = 0; i < n->ncons && !c->rc; i++) {
        const pcons *pc = &n->cons[i];
        fp_coll r;
        fp_error e;
        int rc = fp_eval_item(pc->x, c->a, item, c->res, &r, &e);
        if (rc == ERR_NOMEM) {
            c->rc = rc;
            return;
        }
        int holds = rc ? -2 : fp_as_bool(&r);
        if (holds == 1 || holds == -1)
            continue;
        oo_severity sev = pc->is_error ? OO_ERROR : OO_WARNING;
        if (holds == -2 || holds == ERR_INVALID)
            issue(c, sev, OO_INVARIANT, n, "constraint %s could not be evaluated: %.200s", pc->key,
                  rc ? e.msg : "not a boolean");
        else
            issue(c, sev, OO_INVARIANT, n, "constraint %s failed: %.300s [%.300s]", pc->key,
                  pc->human, pc->src);
    }
}

/* The rules of node n on one of its values (the location is the value's). */
static void check_value(ck *c, const pnode *n, const pitem *it, const fp_val *parent)
{
    char d[260];
    if (n->ntypes && it->t) {
        int ok = 0;
        for (size_t i = 0; i < n->ntypes; i++)
            ok |= n->types[i] == it->t;
        if (!ok) {
            buf b = BUF_INIT;
            for (size_t i = 0; i < n->ntypes; i++)
                buf_printf(&b, "%s%s", i ? ", " : "", n->types[i]->name);
            issue(c, OO_ERROR, OO_STRUCTURE, n, "type %s is not allowed here (allowed: %s)",
                  it->t->name, b.err ? "?" : buf_cstr(&b));
            buf_free(&b);
        }
    }
    if (n->fixed && (!it->v || !jeq(it->v, n->fixed))) {
        describe(n->fixed, d, sizeof d);
        issue(c, OO_ERROR, OO_VALUE, n, "the value must be exactly %s", d);
    }
    if (n->pattern && (!it->v || !jcontains(it->v, n->pattern))) {
        describe(n->pattern, d, sizeof d);
        issue(c, OO_ERROR, OO_VALUE, n, "the value must match the pattern %s", d);
    }
    if (n->max_length >= 0 && it->v && it->v->type == JSON_STRING) {
        long chars = 0;
        for (uint32_t i = 0; i < it->v->n; i++)
            chars += ((unsigned char)it->v->u.s[i] & 0xc0) != 0x80;
        if (chars > n->max_length)
            issue(c, OO_ERROR, OO_VALUE, n, "%ld characters, more than maxLength %ld", chars,
                  n->max_length);
    }
    if (n->vs) {
        int h = binding_holds(n->vs, it);
        if (h == -1)
            issue(c, OO_WARNING, OO_NOT_SUPPORTED, n,
                  "value set %s is not known to hortus; the required binding is not checked",
                  n->vs);
        else if (h == 0)
            issue(c, OO_ERROR, OO_CODE_INVALID, n, "the code is not in the value set %s (required)",
                  n->vs);
        else if (h == -2)
            issue(c, OO_ERROR, OO_CODE_INVALID, n, "no code from the value set %s (required)",
                  n->vs);
    }
    if (n->ntargets && it->v && it->t && !strcmp(it->t->name, "Reference")) {
        const char *ref = json_get_str(it->v, "reference");
        char rt[80];
        if (ref && reference_type(ref, rt, sizeof rt)) {
            int ok = 0;
            for (size_t i = 0; i < n->ntargets; i++)
                ok |= !strcmp(n->targets[i], rt) || !strcmp(n->targets[i], "Resource");
            if (!ok)
                issue(c, OO_ERROR, OO_STRUCTURE, n, "a reference to %s is not allowed here", rt);
        }
    }
    fp_val self = {0};
    int is_obj = it->v && it->v->type == JSON_OBJECT && it->t;
    if (is_obj)
        self = (fp_val){.kind = FP_OBJ, .ftype = it->t, .node = it->v};
    if (n->ncons) {
        fp_val pv;
        if (is_obj)
            check_constraints(c, n, &self);
        else if (it->v && prim_item(c, n, parent, it, &pv))
            check_constraints(c, n, &pv);
        else if (it->v)
            issue(c, OO_WARNING, OO_NOT_SUPPORTED, n,
                  "the constraints of this element could not be evaluated on the value");
    }
    for (size_t i = 0; i < n->ntprof && is_obj && !c->rc; i++) {
        const char *u = n->tprof[i];
        if (prof_is_core(u))
            continue; /* the base type: checked by the base validation */
        const prof_def *tp = c->find(c->fctx, u);
        if (!tp) {
            issue(c, OO_WARNING, OO_NOT_SUPPORTED, n,
                  "profile %s of this value is not known to this server; not validated against it",
                  u);
            continue;
        }
        if (!prof_def_usable(tp) || !fhir_type_is(it->t, tp->type)) {
            issue(c, OO_WARNING, OO_NOT_SUPPORTED, n,
                  "profile %s cannot be applied to this %s value", u, it->t->name);
            continue;
        }
        apply_profile(c, tp, n, it->v, it->t, &self);
    }
    if (is_obj && n->nkids)
        check_kids(c, n, it->v, it->t, &self);
}

/* The values at the dotted path `p` under v (arrays flattened) into out, up to cap. */
static size_t walk_path(const json_val *v, const char *p, const json_val **out, size_t cap,
                        size_t n)
{
    if (!v || n >= cap)
        return n;
    if (v->type == JSON_ARRAY) {
        for (uint32_t i = 0; i < v->n; i++)
            n = walk_path(&v->u.items[i], p, out, cap, n);
        return n;
    }
    if (!*p || !strcmp(p, "$this")) {
        out[n++] = v;
        return n;
    }
    const char *dot = strchr(p, '.');
    size_t sl = dot ? (size_t)(dot - p) : strlen(p);
    if (v->type != JSON_OBJECT)
        return n;
    /* a choice named by its bare name ("value") matches value[Type] */
    for (uint32_t i = 0; i < v->n; i++) {
        const json_member *m = &v->u.members[i];
        if (m->key_len < sl || strncmp(m->key, p, sl))
            continue;
        if (m->key_len == sl || (m->key[sl] >= 'A' && m->key[sl] <= 'Z'))
            n = walk_path(&m->val, dot ? dot + 1 : "", out, cap, n);
    }
    return n;
}

/* The fixed or pattern value at dotted path q under node at: on the node itself (then
 * within its value), else on a child of that name or on one of the child's slices (a
 * coding sliced inside a sliced component: bp's code.coding.code). */
static int find_disc(const pnode *at, const char *q, const json_val **val, int *is_pattern,
                     int depth)
{
    if (at->fixed || at->pattern) {
        const json_val *v = at->fixed ? at->fixed : at->pattern;
        const json_val *found[1];
        if (*q && !walk_path(v, q, found, 1, 0))
            return 0;
        *val = *q ? found[0] : v;
        *is_pattern = !at->fixed;
        return 1;
    }
    if (!*q || depth > 32)
        return 0;
    const char *dot = strchr(q, '.');
    size_t sl = dot ? (size_t)(dot - q) : strlen(q);
    const char *rest = dot ? dot + 1 : "";
    for (size_t i = 0; i < at->nkids; i++) {
        const pnode *k = at->kids[i];
        if (!k->el || strlen(k->el->name) != sl || strncmp(k->el->name, q, sl))
            continue;
        if (find_disc(k, rest, val, is_pattern, depth + 1))
            return 1;
        for (size_t j = 0; j < k->nslices; j++)
            if (find_disc(k->slices[j], rest, val, is_pattern, depth + 1))
                return 1;
    }
    return 0;
}

/* What slice s of node base requires at discriminator path `path`: a value and
 * whether it is a pattern, or (an extension's url) the canonical in *url. 0 when the
 * slice says nothing there. */
static int slice_value(const pnode *base, const pnode *s, const char *path, const json_val **val,
                       int *is_pattern, const char **url)
{
    *url = NULL;
    *val = NULL;
    if (find_disc(s, strcmp(path, "$this") ? path : "", val, is_pattern, 0))
        return 1;
    /* an extension slice: its url is the canonical of its definition */
    if (!strcmp(path, "url") && s->ntprof && base->el &&
        (!strcmp(base->el->name, "extension") || !strcmp(base->el->name, "modifierExtension"))) {
        *url = s->tprof[0];
        return 1;
    }
    return 0;
}

static int matches_slice(const pnode *base, const pnode *s, const pitem *it)
{
    if (!it->v)
        return 0;
    size_t nd = base->ndisc;
    static const pdisc url_disc = {"url"};
    const pdisc *ds = base->disc;
    int is_ext = base->el && (!strcmp(base->el->name, "extension") ||
                              !strcmp(base->el->name, "modifierExtension"));
    if (!nd && is_ext) {
        ds = &url_disc;
        nd = 1;
    }
    for (size_t i = 0; i < nd; i++) {
        const json_val *want;
        const char *url;
        int pat;
        if (!slice_value(base, s, ds[i].path, &want, &pat, &url))
            return 0;
        const json_val *got[64];
        size_t ng = walk_path(it->v, ds[i].path, got, 64, 0);
        int ok = 0;
        for (size_t k = 0; k < ng && !ok; k++) {
            if (url)
                ok = got[k]->type == JSON_STRING && strlen(got[k]->u.s) == url_len(url) &&
                     !strncmp(got[k]->u.s, url, url_len(url));
            else
                ok = pat ? jcontains(got[k], want) : jeq(got[k], want);
        }
        if (!ok)
            return 0;
    }
    return 1;
}

/* Can the slices of base be matched at all? 1 yes; 0 and *why when not. */
static int slices_matchable(const pnode *base, const pnode *s)
{
    int is_ext = base->el && (!strcmp(base->el->name, "extension") ||
                              !strcmp(base->el->name, "modifierExtension"));
    if (base->sliced && !base->slicing_ok)
        return 0;
    if (!base->sliced && !is_ext)
        return 0;
    const json_val *v;
    const char *url;
    int pat;
    if (!base->ndisc)
        return is_ext && slice_value(base, s, "url", &v, &pat, &url);
    for (size_t i = 0; i < base->ndisc; i++)
        if (!slice_value(base, s, base->disc[i].path, &v, &pat, &url))
            return 0;
    return 1;
}

static void check_count(ck *c, const pnode *n, size_t cnt, const char *what)
{
    if (n->min > 0 && cnt < (size_t)n->min)
        issue(c, OO_ERROR, OO_REQUIRED, n, "minimum cardinality %d%s, found %zu", n->min, what,
              cnt);
    if (n->max == 0 && cnt)
        issue(c, OO_ERROR, OO_STRUCTURE, n, "the element is not allowed by the profile (max 0)%s",
              what);
    else if (n->max > 0 && cnt > (size_t)n->max)
        issue(c, OO_ERROR, OO_STRUCTURE, n, "maximum cardinality %d%s, found %zu", n->max, what,
              cnt);
}

static void check_node(ck *c, const pnode *n, const json_val *obj, const fhir_type *t,
                       const fp_val *self)
{
    pitem *its;
    size_t cnt = collect(c, n, obj, t, &its);
    if (c->rc)
        return;
    size_t mark = loc_push(c, ".%s", n->el->name);
    check_count(c, n, cnt, "");
    loc_pop(c, mark);
    for (size_t i = 0; i < cnt && !c->rc; i++) {
        size_t m = push_item(c, n, &its[i]);
        check_value(c, n, &its[i], self);
        loc_pop(c, m);
    }
    if (!n->nslices || c->rc)
        return;
    /* slices: each value goes to the first slice it matches */
    int *which = arena_alloc(c->a, sizeof *which * (cnt ? cnt : 1));
    if (!which) {
        c->rc = ERR_NOMEM;
        return;
    }
    int usable = 1;
    for (size_t s = 0; s < n->nslices; s++)
        if (!slices_matchable(n, n->slices[s])) {
            usable = 0;
            mark = loc_push(c, ".%s", n->el->name);
            issue(c, OO_WARNING, OO_NOT_SUPPORTED, n->slices[s],
                  "the slice cannot be matched (no supported discriminator, or no fixed or "
                  "pattern value at its path); the slice is not checked");
            loc_pop(c, mark);
        }
    if (!usable)
        return;
    for (size_t i = 0; i < cnt; i++) {
        which[i] = -1;
        for (size_t s = 0; s < n->nslices && which[i] < 0; s++)
            if (matches_slice(n, n->slices[s], &its[i]))
                which[i] = (int)s;
        if (which[i] < 0 && n->closed) {
            size_t m = push_item(c, n, &its[i]);
            issue(c, OO_ERROR, OO_STRUCTURE, n,
                  "the value matches none of the slices and the slicing is closed");
            loc_pop(c, m);
        }
    }
    for (size_t s = 0; s < n->nslices && !c->rc; s++) {
        const pnode *sl = n->slices[s];
        size_t in = 0;
        for (size_t i = 0; i < cnt; i++)
            in += which[i] == (int)s;
        char what[100];
        snprintf(what, sizeof what, " of slice %.60s", sl->slice);
        mark = loc_push(c, ".%s", n->el->name);
        check_count(c, sl, in, what);
        loc_pop(c, mark);
        for (size_t i = 0; i < cnt && !c->rc; i++) {
            if (which[i] != (int)s)
                continue;
            size_t m = push_item(c, n, &its[i]);
            check_value(c, sl, &its[i], self);
            loc_pop(c, m);
        }
    }
}

static void check_kids(ck *c, const pnode *n, const json_val *obj, const fhir_type *t,
                       const fp_val *self)
{
    for (size_t i = 0; i < n->nkids && !c->rc; i++)
        check_node(c, n->kids[i], obj, t, self);
}

static void report_notes(ck *c, const prof_def *p)
{
    for (size_t i = 0; i < p->nnotes && !c->rc; i++) {
        char msg[800];
        snprintf(msg, sizeof msg, "profile %s: %s", p->url, p->notes[i].text);
        if (oo_add(c->out, OO_WARNING, OO_NOT_SUPPORTED, msg, c->loc[0] ? c->loc : NULL))
            c->rc = ERR_NOMEM;
    }
}

/* Apply profile p (and its base chain) to obj (type t) at the current location. */
static void apply_profile(ck *c, const prof_def *p, const pnode *from, const json_val *obj,
                          const fhir_type *t, const fp_val *self)
{
    if (c->depth >= PROF_MAX_CHAIN) {
        issue(c, OO_ERROR, OO_TOO_COSTLY, from,
              "profiles nested deeper than %d (a cycle of baseDefinition or type.profile?)",
              PROF_MAX_CHAIN);
        return;
    }
    const prof_def *saved = c->p;
    c->depth++;
    if (p->base && !prof_is_core(p->base)) {
        const prof_def *b = c->find(c->fctx, p->base);
        c->p = p;
        if (!b)
            issue(c, OO_WARNING, OO_NOT_SUPPORTED, p->root,
                  "its baseDefinition %s is not known to this server; not validated against it",
                  p->base);
        else if (!prof_def_usable(b))
            issue(c, OO_ERROR, OO_PROCESSING, p->root,
                  "its baseDefinition %s is stored but cannot be applied", p->base);
        else
            apply_profile(c, b, p->root, obj, t, self);
    }
    c->p = p;
    report_notes(c, p);
    if (p->root->ncons)
        check_constraints(c, p->root, self);
    check_kids(c, p->root, obj, t, self);
    c->p = saved;
    c->depth--;
}

static int run(arena *a, prof_find_fn find, const void *fctx, const prof_def *p,
               const json_val *res, const fhir_type *t, oo *out)
{
    ck *c = arena_zalloc(a, sizeof *c);
    if (!c)
        return ERR_NOMEM;
    c->a = a;
    c->find = find;
    c->fctx = fctx;
    c->res = res;
    c->out = out;
    c->p = p;
    c->nloc = 0;
    loc_push(c, "%s", t->name);
    fp_val self = {.kind = FP_OBJ, .ftype = t, .node = res};
    apply_profile(c, p, p->root, res, t, &self);
    if (c->rc)
        return c->rc;
    return c->nerr ? ERR_INVALID : 0;
}

int prof_check(arena *a, prof_find_fn find, const void *fctx, const char *canonical,
               const json_val *res, const char *type, oo *out)
{
    const fhir_type *t = fhir_resource_type(type, strlen(type));
    if (!t)
        return ERR_INVALID;
    char msg[700];
    const fhir_type *ct = core_type(canonical);
    if (ct) {
        if (fhir_type_is(t, ct))
            return 0;
        snprintf(msg, sizeof msg, "profile %.400s is the definition of %s, not of %s", canonical,
                 ct->name, type);
        return oo_add(out, OO_ERROR, OO_INVALID, msg, "meta.profile") ? ERR_NOMEM : ERR_INVALID;
    }
    const prof_def *p = find(fctx, canonical);
    if (!p)
        return ERR_NOTFOUND;
    if (!prof_def_usable(p)) {
        snprintf(msg, sizeof msg, "profile %.400s is stored but cannot be applied: %s", canonical,
                 p->unusable ? p->unusable
                             : p->nerrors ? p->errors[0].text : "it has errors");
        return oo_add(out, OO_ERROR, OO_PROCESSING, msg, NULL) ? ERR_NOMEM : ERR_INVALID;
    }
    if (!fhir_type_is(t, p->type)) {
        snprintf(msg, sizeof msg, "profile %.400s constrains %s, not %s", canonical, p->type->name,
                 type);
        return oo_add(out, OO_ERROR, OO_INVALID, msg, "resourceType") ? ERR_NOMEM : ERR_INVALID;
    }
    return run(a, find, fctx, p, res, t, out);
}

int prof_has_claims(const json_val *res)
{
    const json_val *ps = json_get(json_get(res, "meta"), "profile");
    for (uint32_t i = 0; ps && ps->type == JSON_ARRAY && i < ps->n; i++)
        if (ps->u.items[i].type == JSON_STRING && !prof_is_core(ps->u.items[i].u.s))
            return 1;
    return 0;
}
