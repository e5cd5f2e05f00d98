/*
 * extract.c -- the entries of one resource: every search parameter of its type is
 * evaluated with its compiled FHIRPath expression (fp_sp_cache) and each value is
 * normalised by the parameter's type into entries (docs/STORAGE.md 4.3):
 *
 *   string     string -> S (folded) + X (exact); HumanName, Address: every part
 *   token      code/id/string/uri/boolean -> T(code, ""); Coding -> T(code, system)
 *              + Y(display); CodeableConcept -> its codings + Y(text); Identifier ->
 *              T(value, system) + Y(type.text); ContactPoint -> T(value, system)
 *   reference  Reference -> R(id, Type) for local targets, R(url, "") otherwise,
 *              I(value, system) for Reference.identifier; canonical/uri -> R(url, "")
 *   date       date/dateTime/instant -> D + H over the interval its precision
 *              implies; Period -> [start.lo, end.hi] (open ends: min/max); Timing
 *              -> its events and its repeat.boundsPeriod
 *   number     integer/decimal -> N
 *   quantity   Quantity (and Age, Duration ...) -> Q(system, code) + V, and C in the
 *              canonical UCUM unit when the unit is UCUM; Money -> Q(currency) + V
 *   uri        -> U
 *   composite  for each value of its expression, every component's expression is
 *              evaluated on that value and gives parts (the entries above, of one kind
 *              each: T, S, R, U, D, N, and q for a quantity); every combination of one
 *              part per component is one K entry
 *   special    near (Location.position) -> G(latitude, longitude); no other special
 *              parameter is indexed (the query side refuses them with a clear message)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "fhirpath/fhirpath.h"
#include "fhirpath/spcache.h"
#include "index/index.h"

#define XTRACT_SCRATCH (64u << 10) /* first block of the scratch arena: the arena cache keeps it */
#define INSTANT_MIN INT64_MIN
#define INSTANT_MAX INT64_MAX

/* The parts of one composite component on one focus: Observation's eight composites
 * evaluate `code` on the same Observation six times, so each (focus, component
 * expression, type) is evaluated once per resource. */
#define COMP_MEMO 24
typedef struct comp_memo {
    const json_val *node; /* the focus */
    const char *expr;
    int type;
    idx_set parts;
} comp_memo;

typedef struct xctx {
    comp_memo *memo; /* composites of this resource (NULL in a component's own xctx) */
    size_t nmemo;
    arena *a;      /* the entries (and the composite parts kept in memo) */
    arena *s;      /* the evaluations of one parameter, reset after it */
    idx_set *out;
    uint32_t sp;
    const char *base_url;
    size_t base_len;
    int err;
    int part;      /* 1: values of a composite's component (quantities as IDX_QTY_PART) */
    buf tmp;
} xctx;

static void add(xctx *x, uint8_t kind, const buf *v)
{
    if (x->err)
        return;
    if (v->err) {
        x->err = v->err;
        return;
    }
    if (x->out->n >= IDX_MAX_ENTRIES) {
        x->err = ERR_TOOBIG;
        return;
    }
    if (x->out->n == x->out->cap) {
        size_t cap = x->out->cap ? x->out->cap * 2 : 32;
        idx_entry *e = arena_realloc(x->a, x->out->e, sizeof *e * x->out->cap, sizeof *e * cap);
        if (!e) {
            x->err = ERR_NOMEM;
            return;
        }
        x->out->e = e;
        x->out->cap = cap;
    }
    uint8_t *val = arena_alloc(x->a, v->len ? v->len : 1);
    if (!val) {
        x->err = ERR_NOMEM;
        return;
    }
    memcpy(val, v->data, v->len);
    x->out->e[x->out->n++] = (idx_entry){.sp = x->sp, .kind = kind, .len = (uint16_t)v->len,
                                          .val = val};
}

static int is_a(const fhir_type *t, const char *name)
{
    for (; t; t = t->base)
        if (!strcmp(t->name, name))
            return 1;
    return 0;
}

static const char *tname(const fp_val *v)
{
    return v->ftype ? v->ftype->name : "";
}

/* ---- strings ---------------------------------------------------------------------- */

static void add_string(xctx *x, const char *s, size_t n)
{
    if (!n)
        return;
    buf_reset(&x->tmp);
    buf norm = BUF_INIT;
    idx_norm_string(s, n, &norm);
    if (norm.len) {
        idx_put_str(&x->tmp, norm.data, norm.len);
        add(x, IDX_STRING, &x->tmp);
    }
    buf_free(&norm);
    buf_reset(&x->tmp);
    idx_put_str(&x->tmp, s, n > IDX_MAX_VALUE ? IDX_MAX_VALUE : n);
    add(x, IDX_EXACT, &x->tmp);
}

static void add_json_string(xctx *x, const json_val *v)
{
    if (v && v->type == JSON_STRING)
        add_string(x, v->u.s, v->n);
    else if (v && v->type == JSON_ARRAY)
        for (uint32_t i = 0; i < v->n; i++)
            if (v->u.items[i].type == JSON_STRING)
                add_string(x, v->u.items[i].u.s, v->u.items[i].n);
}

static void string_value(xctx *x, const fp_val *v)
{
    if (v->kind == FP_STR) {
        add_string(x, v->u.s.p, v->u.s.n);
        return;
    }
    if (v->kind != FP_OBJ || !v->node)
        return;
    static const char *const name_parts[] = {"family", "given", "prefix", "suffix", "text"};
    static const char *const addr_parts[] = {"line",  "city",    "district", "state",
                                             "postalCode", "country", "text"};
    const char *const *parts = NULL;
    size_t np = 0;
    if (is_a(v->ftype, "HumanName")) {
        parts = name_parts;
        np = sizeof name_parts / sizeof *name_parts;
    } else if (is_a(v->ftype, "Address")) {
        parts = addr_parts;
        np = sizeof addr_parts / sizeof *addr_parts;
    }
    for (size_t i = 0; i < np; i++)
        add_json_string(x, json_get(v->node, parts[i]));
}

/* ---- tokens ------------------------------------------------------------------------ */

static void add_token(xctx *x, const char *code, size_t cn, const char *sys, size_t sn)
{
    if (!code || !cn)
        return;
    buf_reset(&x->tmp);
    idx_put_str(&x->tmp, code, cn > IDX_MAX_VALUE / 2 ? IDX_MAX_VALUE / 2 : cn);
    idx_put_str(&x->tmp, sys ? sys : "", sys ? (sn > IDX_MAX_VALUE / 2 ? IDX_MAX_VALUE / 2 : sn) : 0);
    add(x, IDX_TOKEN, &x->tmp);
}

static void add_text(xctx *x, const char *s)
{
    if (!s || !*s)
        return;
    buf norm = BUF_INIT;
    idx_norm_string(s, strlen(s), &norm);
    buf_reset(&x->tmp);
    if (norm.len) {
        idx_put_str(&x->tmp, norm.data, norm.len);
        add(x, IDX_TEXT, &x->tmp);
    }
    buf_free(&norm);
}

static void add_coding(xctx *x, const json_val *c)
{
    if (!c || c->type != JSON_OBJECT)
        return;
    const char *code = json_get_str(c, "code"), *sys = json_get_str(c, "system");
    if (code)
        add_token(x, code, strlen(code), sys, sys ? strlen(sys) : 0);
    add_text(x, json_get_str(c, "display"));
}

static void add_concept(xctx *x, const json_val *cc)
{
    if (!cc || cc->type != JSON_OBJECT)
        return;
    const json_val *cs = json_get(cc, "coding");
    for (uint32_t i = 0; cs && cs->type == JSON_ARRAY && i < cs->n; i++)
        add_coding(x, &cs->u.items[i]);
    add_text(x, json_get_str(cc, "text"));
}

static void token_value(xctx *x, const fp_val *v)
{
    switch (v->kind) {
    case FP_STR: add_token(x, v->u.s.p, v->u.s.n, NULL, 0); return;
    case FP_BOOL: add_token(x, v->u.b ? "true" : "false", v->u.b ? 4 : 5, NULL, 0); return;
    case FP_INT: {
        char t[24];
        int n = snprintf(t, sizeof t, "%lld", (long long)v->u.i);
        add_token(x, t, (size_t)n, NULL, 0);
        return;
    }
    case FP_OBJ: break;
    default: return;
    }
    const json_val *o = v->node;
    if (!o || o->type != JSON_OBJECT)
        return;
    const char *t = tname(v);
    if (is_a(v->ftype, "Coding")) {
        add_coding(x, o);
    } else if (is_a(v->ftype, "CodeableConcept")) {
        add_concept(x, o);
    } else if (is_a(v->ftype, "Identifier")) {
        const char *val = json_get_str(o, "value"), *sys = json_get_str(o, "system");
        if (val)
            add_token(x, val, strlen(val), sys, sys ? strlen(sys) : 0);
        const json_val *ty = json_get(o, "type");
        if (ty)
            add_text(x, json_get_str(ty, "text"));
        /* :of-type: every coding of the identifier's type with its value */
        const json_val *tc = ty ? json_get(ty, "coding") : NULL;
        for (uint32_t i = 0; val && tc && tc->type == JSON_ARRAY && i < tc->n; i++) {
            const char *ts = json_get_str(&tc->u.items[i], "system");
            const char *tcode = json_get_str(&tc->u.items[i], "code");
            if (!tcode)
                continue;
            buf_reset(&x->tmp);
            idx_put_str(&x->tmp, ts ? ts : "", ts ? strlen(ts) : 0);
            idx_put_str(&x->tmp, tcode, strlen(tcode));
            size_t vl = strlen(val);
            idx_put_str(&x->tmp, val, vl > IDX_MAX_VALUE / 2 ? IDX_MAX_VALUE / 2 : vl);
            add(x, IDX_OF_TYPE, &x->tmp);
        }
    } else if (is_a(v->ftype, "ContactPoint")) {
        const char *val = json_get_str(o, "value"), *sys = json_get_str(o, "system");
        if (val)
            add_token(x, val, strlen(val), sys, sys ? strlen(sys) : 0);
    } else if (!strcmp(t, "") || is_a(v->ftype, "Element")) {
        /* another complex type: nothing a token search could name */
    }
}

/* ---- references -------------------------------------------------------------------- */

/* "Type/id" (optionally followed by "/_history/vid") with a resource type of the model
 * and a valid id: 1 and the parts. */
static int split_local(const char *s, size_t n, const char **type, size_t *tn, const char **id,
                       size_t *in)
{
    const char *slash = memchr(s, '/', n);
    if (!slash || slash == s)
        return 0;
    size_t l = (size_t)(slash - s);
    if (!fhir_resource_type(s, l))
        return 0;
    const char *p = slash + 1, *end = s + n;
    const char *h = memchr(p, '/', (size_t)(end - p));
    size_t il = h ? (size_t)(h - p) : (size_t)(end - p);
    if (h && ((size_t)(end - h) < 11 || memcmp(h, "/_history/", 10)))
        return 0;
    if (!il || il > 64)
        return 0;
    for (size_t i = 0; i < il; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
    }
    *type = s;
    *tn = l;
    *id = p;
    *in = il;
    return 1;
}

static void add_ref_target(xctx *x, const char *s, size_t n)
{
    if (!n)
        return;
    if (s[0] == '#') { /* a contained resource: present, but no other resource's */
        buf_reset(&x->tmp);
        idx_put_str(&x->tmp, s, n > IDX_MAX_VALUE ? IDX_MAX_VALUE : n);
        idx_put_str(&x->tmp, "", 0);
        add(x, IDX_REF, &x->tmp);
        return;
    }
    if (x->base_len && n > x->base_len + 1 && !memcmp(s, x->base_url, x->base_len) &&
        s[x->base_len] == '/') {
        s += x->base_len + 1;
        n -= x->base_len + 1;
    }
    const char *type, *id;
    size_t tn, in;
    buf_reset(&x->tmp);
    if (split_local(s, n, &type, &tn, &id, &in)) {
        idx_put_str(&x->tmp, id, in);
        idx_put_str(&x->tmp, type, tn);
    } else {
        /* canonical|version: url\0 \0 for any version, and url\0 |version\0 for this one */
        const char *bar = memchr(s, '|', n);
        size_t un = bar ? (size_t)(bar - s) : n;
        idx_put_str(&x->tmp, s, un > IDX_MAX_VALUE ? IDX_MAX_VALUE : un);
        idx_put_str(&x->tmp, "", 0);
        if (bar) {
            add(x, IDX_REF, &x->tmp);
            size_t vn = n - un; /* with its '|' */
            buf_reset(&x->tmp);
            idx_put_str(&x->tmp, s, un > IDX_MAX_VALUE ? IDX_MAX_VALUE : un);
            idx_put_str(&x->tmp, bar, vn > IDX_MAX_VERSION ? IDX_MAX_VERSION : vn);
        }
    }
    add(x, IDX_REF, &x->tmp);
}

static void reference_value(xctx *x, const fp_val *v)
{
    if (v->kind == FP_STR) { /* canonical, uri */
        add_ref_target(x, v->u.s.p, v->u.s.n);
        return;
    }
    if (v->kind != FP_OBJ || !v->node || v->node->type != JSON_OBJECT)
        return;
    const json_val *o = v->node;
    if (is_a(v->ftype, "Reference")) {
        const json_val *r = json_get(o, "reference");
        if (r && r->type == JSON_STRING)
            add_ref_target(x, r->u.s, r->n);
        const json_val *ident = json_get(o, "identifier");
        if (ident && ident->type == JSON_OBJECT) {
            const char *val = json_get_str(ident, "value"), *sys = json_get_str(ident, "system");
            if (val) {
                buf_reset(&x->tmp);
                idx_put_str(&x->tmp, val, strlen(val) > IDX_MAX_VALUE / 2 ? IDX_MAX_VALUE / 2
                                                                           : strlen(val));
                idx_put_str(&x->tmp, sys ? sys : "",
                            sys ? (strlen(sys) > IDX_MAX_VALUE / 2 ? IDX_MAX_VALUE / 2
                                                                   : strlen(sys))
                                : 0);
                add(x, IDX_REF_ID, &x->tmp);
            }
        }
    }
}

/* ---- dates ------------------------------------------------------------------------- */

static void add_interval(xctx *x, int64_t lo, int64_t hi)
{
    buf_reset(&x->tmp);
    idx_put_instant(&x->tmp, lo);
    idx_put_instant(&x->tmp, hi);
    add(x, IDX_DATE, &x->tmp);
    buf_reset(&x->tmp);
    idx_put_instant(&x->tmp, hi);
    idx_put_instant(&x->tmp, lo);
    add(x, IDX_DATE_HI, &x->tmp);
}

/* The interval of a date/dateTime/instant string, in microseconds; 0 or -1. */
static int str_range(const char *s, size_t n, int64_t *lo, int64_t *hi)
{
    fp_dt d;
    if (fp_dt_parse_fhir(s, n, &d))
        return -1;
    idx_date_range(&d, lo, hi);
    return 0;
}

/* A Period: [start.lo, end.hi], an open end the smallest or largest instant. */
static void period_value(xctx *x, const json_val *o)
{
    const char *s = json_get_str(o, "start"), *e = json_get_str(o, "end");
    int64_t l1 = INSTANT_MIN, h1 = INSTANT_MAX, l2, h2;
    if (s && str_range(s, strlen(s), &l1, &h2))
        l1 = INSTANT_MIN;
    if (e && str_range(e, strlen(e), &l2, &h1))
        h1 = INSTANT_MAX;
    if (s || e)
        add_interval(x, l1, h1);
}

static void date_value(xctx *x, const fp_val *v)
{
    int64_t lo, hi;
    if (v->kind == FP_DATE || v->kind == FP_DATETIME) {
        idx_date_range(&v->u.dt, &lo, &hi);
        add_interval(x, lo, hi);
        return;
    }
    if (v->kind == FP_STR) {
        if (str_range(v->u.s.p, v->u.s.n, &lo, &hi) == 0)
            add_interval(x, lo, hi);
        return;
    }
    if (v->kind != FP_OBJ || !v->node || v->node->type != JSON_OBJECT)
        return;
    const json_val *o = v->node;
    if (is_a(v->ftype, "Period")) {
        period_value(x, o);
    } else if (is_a(v->ftype, "Timing")) {
        const json_val *ev = json_get(o, "event");
        for (uint32_t i = 0; ev && ev->type == JSON_ARRAY && i < ev->n; i++)
            if (ev->u.items[i].type == JSON_STRING &&
                str_range(ev->u.items[i].u.s, ev->u.items[i].n, &lo, &hi) == 0)
                add_interval(x, lo, hi);
        /* the period the repetitions fall in (Timing.repeat.boundsPeriod) */
        const json_val *rep = json_get(o, "repeat"), *bp;
        if (rep && rep->type == JSON_OBJECT && (bp = json_get(rep, "boundsPeriod")) &&
            bp->type == JSON_OBJECT)
            period_value(x, bp);
    }
}

/* ---- numbers and quantities --------------------------------------------------------- */

static int json_double(const json_val *v, double *d)
{
    if (!v || v->type != JSON_NUMBER)
        return -1;
    fp_dec dec;
    if (fp_dec_parse_json(v->u.s, v->n, &dec))
        return -1;
    *d = fp_dec_to_double(dec);
    return 0;
}

static void add_double(xctx *x, uint8_t kind, const char *a, const char *b, double d)
{
    buf_reset(&x->tmp);
    if (a)
        idx_put_str(&x->tmp, a, strlen(a) > IDX_MAX_VALUE / 2 ? IDX_MAX_VALUE / 2 : strlen(a));
    if (b)
        idx_put_str(&x->tmp, b, strlen(b) > IDX_MAX_VALUE / 2 ? IDX_MAX_VALUE / 2 : strlen(b));
    idx_put_double(&x->tmp, d);
    add(x, kind, &x->tmp);
}

static void number_value(xctx *x, const fp_val *v)
{
    if (v->kind == FP_INT)
        add_double(x, IDX_NUMBER, NULL, NULL, (double)v->u.i);
    else if (v->kind == FP_DEC)
        add_double(x, IDX_NUMBER, NULL, NULL, fp_dec_to_double(v->u.d));
}

int idx_special_indexed(const fhir_search_param *sp)
{
    return sp->type == FHIR_SP_SPECIAL && !strcmp(sp->code, "near") && sp->expression &&
           !strcmp(sp->expression, "Location.position");
}

/* Location.position: G latitude longitude, when both are there and on the globe. */
static void geo_value(xctx *x, const fp_val *v)
{
    if (v->kind != FP_OBJ || !v->node || v->node->type != JSON_OBJECT)
        return;
    double lat, lon;
    if (json_double(json_get(v->node, "latitude"), &lat) ||
        json_double(json_get(v->node, "longitude"), &lon) || !(lat >= -90 && lat <= 90) ||
        !(lon >= -180 && lon <= 180))
        return;
    buf_reset(&x->tmp);
    idx_put_double(&x->tmp, lat);
    idx_put_double(&x->tmp, lon);
    add(x, IDX_GEO, &x->tmp);
}

/* A quantity as one part of a composite entry: every form a query may take (value,
 * value|system|code, value||unit, UCUM) is decided from these fields. */
static void quantity_part(xctx *x, const json_val *val, double d, const char *sys,
                          const char *code, const char *unit)
{
    buf_reset(&x->tmp);
    idx_put_str(&x->tmp, sys ? sys : "", sys ? strlen(sys) : 0);
    idx_put_str(&x->tmp, code ? code : "", code ? strlen(code) : 0);
    idx_put_str(&x->tmp, unit ? unit : "", unit ? strlen(unit) : 0);
    idx_put_double(&x->tmp, d);
    fp_dec dec;
    fp_qty q, c;
    if (code && sys && !strcmp(sys, "http://unitsofmeasure.org") &&
        fp_dec_parse_json(val->u.s, val->n, &dec) == 0 &&
        fp_qty_make(dec, code, strlen(code), &q) == 0 && fp_qty_canonical(&q, &c) == 0) {
        buf_putc(&x->tmp, 1);
        idx_put_str(&x->tmp, c.unit, strlen(c.unit));
        idx_put_double(&x->tmp, fp_dec_to_double(c.value));
    } else {
        buf_putc(&x->tmp, 0);
    }
    add(x, IDX_QTY_PART, &x->tmp);
}

static void quantity_value(xctx *x, const fp_val *v)
{
    if (v->kind != FP_OBJ || !v->node || v->node->type != JSON_OBJECT)
        return;
    const json_val *o = v->node;
    const json_val *val = json_get(o, "value");
    double d;
    if (json_double(val, &d))
        return;
    if (is_a(v->ftype, "Money")) {
        add_double(x, IDX_QTY, "urn:iso:std:iso:4217", json_get_str(o, "currency"), d);
        add_double(x, IDX_QTY_VALUE, NULL, NULL, d);
        return;
    }
    if (!is_a(v->ftype, "Quantity"))
        return;
    const char *sys = json_get_str(o, "system"), *code = json_get_str(o, "code");
    const char *unit = json_get_str(o, "unit");
    if (x->part) {
        quantity_part(x, val, d, sys, code, unit);
        return;
    }
    if (sys && code)
        add_double(x, IDX_QTY, sys, code, d); /* value|system|code */
    /* value||unit: the code or the human unit, whatever the system */
    if (code)
        add_double(x, IDX_QTY, "", code, d);
    if (unit && (!code || strcmp(unit, code)))
        add_double(x, IDX_QTY, "", unit, d);
    add_double(x, IDX_QTY_VALUE, NULL, NULL, d);
    if (code && sys && !strcmp(sys, "http://unitsofmeasure.org")) {
        fp_dec dec;
        fp_qty q, c;
        if (fp_dec_parse_json(val->u.s, val->n, &dec) == 0 &&
            fp_qty_make(dec, code, strlen(code), &q) == 0 && fp_qty_canonical(&q, &c) == 0)
            add_double(x, IDX_QTY_UCUM, c.unit, NULL, fp_dec_to_double(c.value));
    }
}

static void uri_value(xctx *x, const fp_val *v)
{
    if (v->kind != FP_STR || !v->u.s.n)
        return;
    buf_reset(&x->tmp);
    idx_put_str(&x->tmp, v->u.s.p, v->u.s.n > IDX_MAX_VALUE ? IDX_MAX_VALUE : v->u.s.n);
    add(x, IDX_URI, &x->tmp);
}

/* ---- the resource ------------------------------------------------------------------ */

static int cmp_entries(const void *a, const void *b)
{
    return idx_entry_cmp(a, b);
}

/* The entries of the values c of a parameter of type t. */
static void values_of(xctx *x, fhir_sp_type t, const fp_coll *c)
{
    for (size_t k = 0; k < c->n && !x->err; k++) {
        const fp_val *v = &c->v[k];
        switch (t) {
        case FHIR_SP_STRING: string_value(x, v); break;
        case FHIR_SP_TOKEN: token_value(x, v); break;
        case FHIR_SP_REFERENCE: reference_value(x, v); break;
        case FHIR_SP_DATE: date_value(x, v); break;
        case FHIR_SP_NUMBER: number_value(x, v); break;
        case FHIR_SP_QUANTITY: quantity_value(x, v); break;
        case FHIR_SP_URI: uri_value(x, v); break;
        case FHIR_SP_SPECIAL: geo_value(x, v); break; /* near, the one indexed */
        default: break;
        }
    }
}

#define COMP_MAX 4 /* components of one composite (R4 has at most 3) */
#define COMP_VALUE_MAX (STORE_EXTRA_KEY_MAX - 4 - 4 - 1 - IDX_RN_LEN)

/* The K entries of one value (focus) of composite sp: the parts of each component,
 * every combination of one part per component. A component without parts gives none. */
static void composite_value(xctx *x, const fp_sp_cache *spc, const fhir_search_param *sp,
                            const json_val *res, const fp_val *focus)
{
    unsigned nc = sp->ncomponents;
    if (nc == 0 || nc > COMP_MAX)
        return;
    idx_set parts[COMP_MAX];
    memset(parts, 0, sizeof parts);
    for (unsigned k = 0; k < nc; k++) {
        const fhir_search_param *def = idx_component(sp, k);
        const fp_expr *ex = fp_sp_cache_component(spc, sp, k);
        if (!def || !ex)
            return;
        const char *etext = sp->component_exprs ? sp->component_exprs[k] : NULL;
        comp_memo *m = NULL;
        for (size_t i = 0; focus->node && etext && x->memo && i < x->nmemo && !m; i++)
            if (x->memo[i].node == focus->node && x->memo[i].type == (int)def->type &&
                !strcmp(x->memo[i].expr, etext))
                m = &x->memo[i];
        if (m) {
            parts[k] = m->parts; /* read only below */
            if (!parts[k].n)
                return;
            continue;
        }
        fp_coll c;
        fp_error fe;
        if (fp_eval_item(ex, x->s, focus, res, &c, &fe))
            return; /* a run-time error on this content: no entry */
        xctx y = {.a = x->a, .out = &parts[k], .base_url = x->base_url,
                  .base_len = x->base_len, .part = 1, .tmp = BUF_INIT};
        values_of(&y, def->type, &c);
        buf_free(&y.tmp);
        if (y.err) {
            x->err = y.err;
            return;
        }
        size_t w = 0;
        for (size_t i = 0; i < parts[k].n; i++)
            if (idx_part_kind(parts[k].e[i].kind))
                parts[k].e[w++] = parts[k].e[i];
        parts[k].n = w;
        if (focus->node && etext && x->memo && x->nmemo < COMP_MEMO)
            x->memo[x->nmemo++] = (comp_memo){.node = focus->node, .expr = etext,
                                              .type = (int)def->type, .parts = parts[k]};
        if (!w)
            return;
    }
    size_t at[COMP_MAX] = {0};
    for (;;) {
        buf_reset(&x->tmp);
        int bad = 0;
        for (unsigned k = 0; k < nc && !bad; k++) {
            const idx_entry *e = &parts[k].e[at[k]];
            bad = idx_part_recode(e->kind, e->val, e->len, &x->tmp) != 0;
        }
        /* over the key limit only when nearly every byte of its strings needed an escape */
        if (!bad && x->tmp.len <= COMP_VALUE_MAX)
            add(x, IDX_COMPOSITE, &x->tmp);
        if (x->err)
            return;
        unsigned k = 0;
        while (k < nc && ++at[k] == parts[k].n)
            at[k++] = 0;
        if (k == nc)
            return;
    }
}

#define SCOPE_MAX_PATIENTS 8 /* patients a resource has j/k entries for; more get z */

/* The entries within each patient whose compartment the resource is in (docs/SEARCH.md
 * 4a): every T and D entry again, behind the patient's id, so Observation?subject=
 * Patient/1&code=X&date=ge2020 reads the matches of that patient only. The patients are
 * the Patient references of the type's compartment parameters. */
static void patient_scope(xctx *x, const char *type)
{
    const char *const *codes;
    size_t nc = fhir_patient_compartment(type, &codes);
    if (!nc)
        return;
    uint32_t csp[32];
    if (nc > 32)
        nc = 32;
    for (size_t i = 0; i < nc; i++)
        csp[i] = idx_sp_hash(type, codes[i]);
    idx_set *out = x->out;
    size_t n0 = out->n, np = 0;
    const uint8_t *pat[SCOPE_MAX_PATIENTS * 4];
    size_t patn[SCOPE_MAX_PATIENTS * 4];
    static const uint8_t tail[] = "Patient"; /* R value: id\0 Patient\0 */
    for (size_t i = 0; i < n0 && np < sizeof pat / sizeof *pat; i++) {
        const idx_entry *e = &out->e[i];
        if (e->kind != IDX_REF)
            continue;
        int comp = 0;
        for (size_t k = 0; k < nc && !comp; k++)
            comp = e->sp == csp[k];
        const uint8_t *z = comp ? memchr(e->val, 0, e->len) : NULL;
        if (!z || (size_t)(e->val + e->len - (z + 1)) != sizeof tail ||
            memcmp(z + 1, tail, sizeof tail))
            continue;
        size_t pn = (size_t)(z + 1 - e->val);
        int seen = 0;
        for (size_t k = 0; k < np && !seen; k++)
            seen = patn[k] == pn && !memcmp(pat[k], e->val, pn);
        if (!seen) {
            pat[np] = e->val;
            patn[np++] = pn;
        }
    }
    uint32_t idsp = idx_sp_hash(type, "_id");
    for (size_t k = 0; k < np && !x->err; k++) {
        int over = k >= SCOPE_MAX_PATIENTS;
        for (size_t i = 0; i < n0 && !over && !x->err; i++) {
            const idx_entry *e = &out->e[i];
            if ((e->kind != IDX_TOKEN && e->kind != IDX_DATE) || e->sp == idsp)
                continue;
            if (patn[k] + e->len > COMP_VALUE_MAX) {
                over = 1;
                break;
            }
            buf_reset(&x->tmp);
            buf_put(&x->tmp, pat[k], patn[k]);
            buf_put(&x->tmp, e->val, e->len);
            x->sp = e->sp;
            add(x, e->kind == IDX_TOKEN ? IDX_PAT_TOKEN : IDX_PAT_DATE, &x->tmp);
        }
        if (over) {
            buf_reset(&x->tmp);
            buf_put(&x->tmp, pat[k], patn[k]);
            x->sp = idsp;
            add(x, IDX_PAT_OVER, &x->tmp);
        }
    }
}

uint32_t idx_param_hash(const fp_sp_cache *spc, const char *type, const fhir_search_param *sp)
{
    const fp_sp_custom *cu = fp_sp_custom_of(spc, sp);
    return cu ? cu->tag : idx_sp_hash(type, sp->code);
}

/* The entries of one parameter of the type into x->out. */
static void extract_param(xctx *x, const fp_sp_cache *spc, const char *type,
                          const fhir_search_param *sp, const json_val *res)
{
    const fp_expr *ex = fp_sp_cache_get_for(spc, type, sp);
    if (!ex || (sp->type == FHIR_SP_SPECIAL && !idx_special_indexed(sp)))
        return;
    fp_coll c;
    fp_error fe;
    /* the evaluation's lists and strings are not needed once the entries are made:
     * they go to the scratch arena, so a resource's extraction does not leave ~60 KB
     * per Observation in the request's arena (and stays in a block the cache holds) */
    if (fp_eval(ex, x->s, res, NULL, &c, &fe) == 0) {
        x->sp = idx_param_hash(spc, type, sp);
        if (sp->type == FHIR_SP_COMPOSITE)
            for (size_t k = 0; k < c.n && !x->err; k++)
                composite_value(x, spc, sp, res, &c.v[k]);
        else
            values_of(x, sp->type, &c);
    } /* else: a run-time type error of the expression on this content, no entry */
    arena_reset(x->s);
}

static int finish(xctx *x, idx_set *out)
{
    buf_free(&x->tmp);
    arena_free(x->s);
    if (x->err)
        return x->err;
    if (out->n > 1) {
        qsort(out->e, out->n, sizeof *out->e, cmp_entries);
        size_t w = 1;
        for (size_t i = 1; i < out->n; i++)
            if (idx_entry_cmp(&out->e[i], &out->e[w - 1]))
                out->e[w++] = out->e[i];
        out->n = w;
    }
    return 0;
}

int idx_extract(const fp_sp_cache *spc, arena *a, const char *type, const json_val *res,
                const char *base_url, idx_set *out)
{
    memset(out, 0, sizeof *out);
    const fhir_search_param *const *sps;
    size_t nsp = fp_sp_params(spc, type, &sps);
    comp_memo memo[COMP_MEMO];
    xctx x = {.memo = memo, .a = a, .s = arena_new(XTRACT_SCRATCH), .out = out,
              .base_url = base_url ? base_url : "",
              .base_len = base_url ? strlen(base_url) : 0, .tmp = BUF_INIT};
    if (!x.s)
        return ERR_NOMEM;
    /* the model's parameters, then the entries within the patient (of those only: a
     * custom parameter is reindexed alone), then the custom ones */
    for (size_t i = 0; i < nsp && !x.err; i++)
        if (!fp_sp_custom_of(spc, sps[i]))
            extract_param(&x, spc, type, sps[i], res);
    if (!x.err)
        patient_scope(&x, type);
    for (size_t i = 0; i < nsp && !x.err; i++)
        if (fp_sp_custom_of(spc, sps[i]))
            extract_param(&x, spc, type, sps[i], res);
    return finish(&x, out);
}

int idx_extract_one(const fp_sp_cache *spc, arena *a, const char *type,
                    const fhir_search_param *sp, const json_val *res, const char *base_url,
                    idx_set *out)
{
    memset(out, 0, sizeof *out);
    xctx x = {.a = a, .s = arena_new(XTRACT_SCRATCH), .out = out,
              .base_url = base_url ? base_url : "",
              .base_len = base_url ? strlen(base_url) : 0, .tmp = BUF_INIT};
    if (!x.s)
        return ERR_NOMEM;
    extract_param(&x, spc, type, sp, res);
    return finish(&x, out);
}
