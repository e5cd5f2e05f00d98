/*
 * parse.c -- a FHIR search's parameters into clauses (srch_add), each value turned
 * into the entry kind and key bytes it scans, by the same normalisers the index
 * uses (src/index/keys.c), so a query and the data it should find cannot drift.
 *
 *   name[:modifier]=v1,v2     one clause, OR of its values; repeated names are AND
 *   \,  \|  \$  \\            escapes inside a value
 *
 * Everything not understood is an error naming the parameter (400), or, under
 * Prefer: handling=lenient, an unknown parameter is noted and left out. Result
 * parameters (_count, _sort, _total, _summary, _elements) are checked here too.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/num.h"
#include "fhir/outcome.h"
#include "fhirpath/datetime.h"
#include "fhirpath/decimal.h"
#include "fhirpath/quantity.h"
#include "fhirpath/spcache.h"
#include "search/search.h"

static int fail(srch_error *e, int rc, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(srch_error *e, int rc, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->status = 400;
    e->oo_code = code;
    return rc;
}

void srch_init(srch_query *q, const char *type)
{
    memset(q, 0, sizeof *q);
    q->type = type;
    q->count = SRCH_DEFAULT_COUNT;
    q->total = 2;
    buf_init(&q->ignored);
    buf_init(&q->applied);
}

void srch_done(srch_query *q)
{
    buf_free(&q->ignored);
    buf_free(&q->applied);
}

static int each_query(srch_query *q, int (*fn)(void *, srch_query *, unsigned), void *ctx,
                      unsigned depth)
{
    int rc = fn(ctx, q, depth);
    if (depth)
        srch_done(q); /* a nested query's own links are never used */
    for (size_t i = 0; !rc && i < q->nc; i++)
        if (q->c[i].link != SL_NONE && q->c[i].link != SL_EXCEPT && q->c[i].sub)
            /* the parser made each sub-query in the arena for this query alone (an
             * exception's is the caller's own) */
            rc = each_query((srch_query *)q->c[i].sub, fn, ctx, depth + 1);
    return rc;
}

int srch_each_query(srch_query *q, int (*fn)(void *ctx, srch_query *q, unsigned depth),
                    void *ctx)
{
    return each_query(q, fn, ctx, 0);
}

/* ---- values -------------------------------------------------------------------------- */

/* Split s at unescaped `sep` into at most max parts (arena): unescaped, or, with
 * keep set, with their escapes kept for a later split of each part (a value's commas
 * first, then its bars: identifier=a\|1,b keeps "a\|1" whole for the bar split). */
static size_t split_kept(arena *a, const char *s, char sep, char **parts, size_t max,
                         int keep)
{
    size_t n = 0, len = strlen(s);
    char *cur = arena_alloc(a, len + 1);
    if (!cur)
        return (size_t)-1;
    size_t o = 0;
    for (size_t i = 0;; i++) {
        char c = s[i];
        if (c == '\\' && (s[i + 1] == ',' || s[i + 1] == '|' || s[i + 1] == '$' ||
                          s[i + 1] == '\\')) {
            if (keep)
                cur[o++] = c;
            cur[o++] = s[++i];
            continue;
        }
        if (c == sep || c == 0) {
            if (n == max)
                return (size_t)-2;
            cur[o++] = 0;
            parts[n++] = cur;
            cur += o;
            o = 0;
            if (!c)
                break;
            continue;
        }
        cur[o++] = c;
    }
    return n;
}

static size_t split(arena *a, const char *s, char sep, char **parts, size_t max)
{
    return split_kept(a, s, sep, parts, max, 0);
}

/* s without its escapes (arena); NULL on ENOMEM. */
static const char *unescape(arena *a, const char *s)
{
    char *one[2];
    return split(a, s, 0x01, one, 1) == 1 ? one[0] : NULL; /* 0x01 never appears */
}

static uint8_t *take(arena *a, const buf *b, size_t *n)
{
    uint8_t *p = arena_alloc(a, b->len ? b->len : 1);
    if (p && b->len)
        memcpy(p, b->data, b->len);
    *n = b->len;
    return p;
}

static int parse_prefix(const char **s, srch_prefix *p)
{
    static const char *const names[] = {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"};
    *p = SP_EQ;
    for (int i = 0; i < 9; i++)
        if ((*s)[0] == names[i][0] && (*s)[1] == names[i][1]) {
            *p = (srch_prefix)i;
            *s += 2;
            return 1;
        }
    return 0;
}

/* A date parameter value: prefix + FHIR date/dateTime (a ' ' of an unescaped '+' in
 * the zone is read as '+'). */
static int date_value(const char *name, const char *s, srch_value *v, srch_error *e)
{
    parse_prefix(&s, &v->prefix);
    char tmp[64];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof tmp)
        return fail(e, ERR_INVALID, OO_INVALID,
                    "%s: '%.40s' is not a date (expected [prefix]YYYY[-MM[-DD[Thh:mm:ss[.sss]"
                    "(Z|+hh:mm)]]])",
                    name, s);
    for (size_t i = 0; i < n; i++)
        tmp[i] = s[i] == ' ' ? '+' : s[i];
    tmp[n] = 0;
    fp_dt d;
    if (fp_dt_parse_fhir(tmp, n, &d))
        return fail(e, ERR_INVALID, OO_INVALID,
                    "%s: '%.40s' is not a date (expected [prefix]YYYY[-MM[-DD[Thh:mm:ss[.sss]"
                    "(Z|+hh:mm)]]])",
                    name, s);
    idx_date_range(&d, &v->lo, &v->hi);
    v->kind = IDX_DATE;
    if (v->prefix == SP_AP) {
        /* approximately: 10% of the distance between now and the value, at least a day */
        int64_t now = (int64_t)time(NULL) * 1000000;
        int64_t dist = now > v->hi ? now - v->hi : v->lo > now ? v->lo - now : 0;
        int64_t w = dist / 10;
        if (w < 86400000000LL)
            w = 86400000000LL;
        v->lo = v->lo > INT64_MIN + w ? v->lo - w : INT64_MIN;
        v->hi = v->hi < INT64_MAX - w ? v->hi + w : INT64_MAX;
    }
    return 0;
}

/* A search number "[+-]digits[.digits][e[+-]exp]" as an exact decimal, with the half
 * unit of its last digit (1.0 -> 0.05; 1e2 -> 50; 100 -> 0.5). 0 or -1. */
static int number_decimal(const char *s, fp_dec *v, fp_dec *half)
{
    char tmp[96];
    size_t n = strlen(s);
    const char *ep = strpbrk(s, "eE");
    long exp = 0;
    if (ep) {
        char *end;
        errno = 0;
        exp = strtol(ep + 1, &end, 10);
        if (errno || *end || end == ep + 1 || exp > 30 || exp < -30)
            return -1;
        n = (size_t)(ep - s);
    }
    if (n == 0 || n >= 64)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    fp_dec m;
    if (fp_dec_parse(tmp, n, &m))
        return -1;
    /* the digits as written, shifted by the exponent: exact, no binary rounding */
    int scale = m.scale - (int)exp; /* digits after the point of the result */
    fp_dec ten = fp_dec_from_i64(10), p10 = fp_dec_from_i64(1);
    for (long k = 0; k < (exp < 0 ? -exp : exp); k++)
        if (fp_dec_mul(p10, ten, &p10))
            return -1;
    if (exp >= 0 ? fp_dec_mul(m, p10, v) : fp_dec_div(m, p10, v))
        return -1;
    /* half a unit of the last written digit: 5 * 10^-(scale + 1) */
    fp_dec five = fp_dec_from_i64(5), unit = fp_dec_from_i64(1);
    for (int k = 0; k < (scale + 1 < 0 ? -(scale + 1) : scale + 1); k++)
        if (fp_dec_mul(unit, ten, &unit))
            return -1;
    return scale + 1 >= 0 ? fp_dec_div(five, unit, half) : fp_dec_mul(five, unit, half);
}

/* The query value and its bounds as doubles, each rounded once from an exact decimal so
 * that an edge equal to a stored value (itself the double of a decimal) compares equal. */
static void set_bounds(srch_value *v, fp_dec x, fp_dec half)
{
    fp_dec lo, hi, tenth, a = fp_dec_abs(x);
    if (v->prefix == SP_AP) {
        /* approximately: within 10% of the value */
        if (fp_dec_div(a, fp_dec_from_i64(10), &tenth))
            tenth = a;
        half = tenth;
    }
    if (fp_dec_sub(x, half, &lo) || fp_dec_add(x, half, &hi)) {
        lo = x;
        hi = x;
    }
    v->d = fp_dec_to_double(x);
    v->dlo = fp_dec_to_double(lo);
    v->dhi = fp_dec_to_double(hi);
}

static int number_value(const char *name, const char *s, srch_value *v, srch_error *e)
{
    parse_prefix(&s, &v->prefix);
    fp_dec x, half;
    if (number_decimal(s, &x, &half))
        return fail(e, ERR_INVALID, OO_INVALID, "%s: '%.40s' is not a number", name, s);
    set_bounds(v, x, half);
    v->kind = IDX_NUMBER;
    return 0;
}

/* near=latitude|longitude[|distance[|unit]]: a point and how far from it (the unit a UCUM
 * length, km when absent; the distance SRCH_NEAR_DEFAULT_M when absent). */
static int near_value(arena *a, const char *name, const char *s, srch_value *v, srch_error *e)
{
    char *parts[5];
    size_t np = split(a, s, '|', parts, 4);
    if (np == (size_t)-1)
        return ERR_NOMEM;
    if (np == (size_t)-2 || np < 2)
        return fail(e, ERR_INVALID, OO_INVALID,
                    "%s: '%.60s' is not a position (expected latitude|longitude[|distance"
                    "[|unit]])",
                    name, s);
    fp_dec x, half;
    if (number_decimal(parts[0], &x, &half) || !((v->glat = fp_dec_to_double(x)) >= -90) ||
        v->glat > 90)
        return fail(e, ERR_INVALID, OO_INVALID, "%s: latitude '%.40s' is not a number in "
                                                "[-90, 90]", name, parts[0]);
    if (number_decimal(parts[1], &x, &half) || !((v->glon = fp_dec_to_double(x)) >= -180) ||
        v->glon > 180)
        return fail(e, ERR_INVALID, OO_INVALID, "%s: longitude '%.40s' is not a number in "
                                                "[-180, 180]", name, parts[1]);
    v->gdist = SRCH_NEAR_DEFAULT_M;
    if (np >= 3 && *parts[2]) {
        const char *unit = np == 4 && *parts[3] ? parts[3] : "km";
        fp_qty q, c;
        if (number_decimal(parts[2], &x, &half) || fp_dec_cmp(x, fp_dec_from_i64(0)) < 0)
            return fail(e, ERR_INVALID, OO_INVALID,
                        "%s: distance '%.40s' is not a number of 0 or more", name, parts[2]);
        if (fp_qty_make(x, unit, strlen(unit), &q) || fp_qty_canonical(&q, &c) ||
            strcmp(c.unit, "m"))
            return fail(e, ERR_INVALID, OO_INVALID,
                        "%s: unit '%.40s' is not a UCUM length (km, m, [mi_i] ...)", name,
                        unit);
        v->gdist = fp_dec_to_double(c.value);
    } else if (np == 4 && *parts[3]) {
        return fail(e, ERR_INVALID, OO_INVALID, "%s: a unit without a distance", name);
    }
    v->kind = IDX_GEO;
    return 0;
}

double srch_distance_m(double lat1, double lon1, double lat2, double lon2)
{
    const double rad = M_PI / 180.0;
    double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
    double h = sin(dlat / 2) * sin(dlat / 2) +
               cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);
    if (h > 1)
        h = 1;
    return 2 * SRCH_EARTH_RADIUS_M * asin(sqrt(h));
}

/* value in a UCUM unit -> the same quantity in its canonical unit (decimal), 0 or -1 */
static int ucum_canonical(fp_dec value, const char *unit, fp_dec *out, char *cunit,
                          size_t cap)
{
    fp_qty q, c;
    if (fp_qty_make(value, unit, strlen(unit), &q) || fp_qty_canonical(&q, &c))
        return -1;
    *out = c.value;
    snprintf(cunit, cap, "%s", c.unit);
    return 0;
}

static int quantity_value(arena *a, const char *name, const char *s, srch_value *v,
                          srch_error *e)
{
    char *parts[4];
    size_t np = split(a, s, '|', parts, 3);
    if (np == (size_t)-1)
        return ERR_NOMEM;
    if (np == (size_t)-2 || np == 2)
        return fail(e, ERR_INVALID, OO_INVALID,
                    "%s: '%.60s' is not a quantity (expected [prefix]value[|system|code])",
                    name, s);
    const char *num = parts[0];
    parse_prefix(&num, &v->prefix);
    fp_dec x, half;
    if (number_decimal(num, &x, &half))
        return fail(e, ERR_INVALID, OO_INVALID, "%s: '%.40s' is not a number", name, num);
    buf b = BUF_INIT;
    if (np == 1) {
        v->kind = IDX_QTY_VALUE;
        set_bounds(v, x, half);
    } else if (!strcmp(parts[1], "http://unitsofmeasure.org") && parts[2][0]) {
        /* UCUM: the value and each bound converted on their own (affine units such as
         * Cel are not a factor), compared in the canonical unit */
        fp_dec lo, hi, ap;
        if (v->prefix == SP_AP) {
            if (fp_dec_div(fp_dec_abs(x), fp_dec_from_i64(10), &ap))
                ap = half;
            half = ap;
        }
        char cu[64], cu2[64], cu3[64];
        if (fp_dec_sub(x, half, &lo) || fp_dec_add(x, half, &hi) ||
            ucum_canonical(x, parts[2], &x, cu, sizeof cu) ||
            ucum_canonical(lo, parts[2], &lo, cu2, sizeof cu2) ||
            ucum_canonical(hi, parts[2], &hi, cu3, sizeof cu3)) {
            buf_free(&b);
            return fail(e, ERR_INVALID, OO_INVALID, "%s: '%.40s' is not a UCUM unit", name,
                        parts[2]);
        }
        v->d = fp_dec_to_double(x);
        v->dlo = fp_dec_to_double(lo);
        v->dhi = fp_dec_to_double(hi);
        if (v->dlo > v->dhi) {
            double t = v->dlo;
            v->dlo = v->dhi;
            v->dhi = t;
        }
        idx_put_str(&b, cu, strlen(cu));
        v->kind = IDX_QTY_UCUM;
    } else {
        if (!parts[2][0]) {
            buf_free(&b);
            return fail(e, ERR_INVALID, OO_INVALID, "%s: '%.60s' names a system but no code",
                        name, s);
        }
        set_bounds(v, x, half);
        idx_put_str(&b, parts[1], strlen(parts[1]));
        idx_put_str(&b, parts[2], strlen(parts[2]));
        v->kind = IDX_QTY;
    }
    v->key = take(a, &b, &v->key_len);
    buf_free(&b);
    return v->key ? 0 : ERR_NOMEM;
}

static int token_value(arena *a, const char *name, srch_modifier mod, const char *s,
                       srch_value *v, srch_error *e)
{
    buf b = BUF_INIT;
    if (mod == SM_TEXT) {
        idx_norm_string(s, strlen(s), &b);
        v->kind = IDX_TEXT;
        v->whole = 0;
    } else if (mod == SM_OF_TYPE) {
        char *parts[4];
        size_t np = split(a, s, '|', parts, 3);
        if (np == (size_t)-1)
            return ERR_NOMEM;
        if (np != 3 || !parts[1][0] || !parts[2][0]) {
            buf_free(&b);
            return fail(e, ERR_INVALID, OO_INVALID,
                        "%s:of-type: '%.60s' is not [type system]|[type code]|[value]", name, s);
        }
        for (int i = 0; i < 3; i++)
            idx_put_str(&b, parts[i], strlen(parts[i]));
        v->kind = IDX_OF_TYPE;
        v->whole = 1;
    } else {
        char *parts[3];
        size_t np = split(a, s, '|', parts, 2);
        if (np == (size_t)-1)
            return ERR_NOMEM;
        if (np == (size_t)-2) {
            buf_free(&b);
            return fail(e, ERR_INVALID, OO_INVALID,
                        "%s: '%.60s' is not a token (expected [system|]code)", name, s);
        }
        v->kind = IDX_TOKEN;
        if (np == 1) { /* code: any system */
            if (!parts[0][0]) {
                buf_free(&b);
                return fail(e, ERR_INVALID, OO_INVALID, "%s: an empty token", name);
            }
            idx_put_str(&b, parts[0], strlen(parts[0]));
            v->whole = 0;
        } else if (!parts[1][0]) { /* system|: any code of the system */
            if (!parts[0][0]) {
                buf_free(&b);
                return fail(e, ERR_INVALID, OO_INVALID, "%s: '|' alone is not a token", name);
            }
            v->system = parts[0];
            v->whole = 0;
        } else { /* system|code, or |code (no system) */
            idx_put_str(&b, parts[1], strlen(parts[1]));
            idx_put_str(&b, parts[0], strlen(parts[0]));
            v->whole = 1;
        }
    }
    v->key = take(a, &b, &v->key_len);
    buf_free(&b);
    return v->key ? 0 : ERR_NOMEM;
}

static int string_value(arena *a, const char *name, srch_modifier mod, const char *s,
                        srch_value *v, srch_error *e)
{
    (void)name;
    (void)e;
    buf b = BUF_INIT;
    if (mod == SM_EXACT) {
        idx_put_str(&b, s, strlen(s));
        v->kind = IDX_EXACT;
        v->whole = 1;
    } else {
        idx_norm_string(s, strlen(s), &b);
        v->kind = IDX_STRING;
        v->whole = 0;
        if (mod == SM_CONTAINS) {
            v->needle = arena_strndup(a, b.data ? b.data : "", b.len);
            v->needle_len = b.len;
            b.len = 0; /* scan every value of the parameter */
        }
    }
    v->key = take(a, &b, &v->key_len);
    buf_free(&b);
    return v->key ? 0 : ERR_NOMEM;
}

/* "Type/id", "id" (with :Type, or the parameter's single target), an absolute URL on
 * this server, or any other URL. */
static int reference_value(arena *a, const fhir_search_param *sp, srch_modifier mod,
                           const char *type_mod, const char *s, const char *base_url,
                           srch_value *v, srch_error *e)
{
    buf b = BUF_INIT;
    if (mod == SM_IDENTIFIER) {
        char *parts[3];
        size_t np = split(a, s, '|', parts, 2);
        if (np == (size_t)-1)
            return ERR_NOMEM;
        if (np == (size_t)-2 || !parts[np - 1][0])
            return fail(e, ERR_INVALID, OO_INVALID,
                        "%s:identifier: '%.60s' is not an identifier ([system|]value)",
                        sp->code, s);
        idx_put_str(&b, parts[np - 1], strlen(parts[np - 1]));
        if (np == 2)
            idx_put_str(&b, parts[0], strlen(parts[0]));
        v->kind = IDX_REF_ID;
        v->whole = np == 2;
        v->key = take(a, &b, &v->key_len);
        buf_free(&b);
        return v->key ? 0 : ERR_NOMEM;
    }
    size_t bl = base_url ? strlen(base_url) : 0;
    if (bl && !strncmp(s, base_url, bl) && s[bl] == '/')
        s += bl + 1;
    v->kind = IDX_REF;
    const char *slash = strchr(s, '/');
    if (!*s)
        return fail(e, ERR_INVALID, OO_INVALID, "%s: an empty reference", sp->code);
    if (slash && fhir_resource_type(s, (size_t)(slash - s)) && !strchr(slash + 1, '/')) {
        if (type_mod && strncmp(type_mod, s, (size_t)(slash - s)))
            return fail(e, ERR_INVALID, OO_INVALID, "%s:%s: '%.60s' names another type",
                        sp->code, type_mod, s);
        idx_put_str(&b, slash + 1, strlen(slash + 1));
        idx_put_str(&b, s, (size_t)(slash - s));
        v->whole = 1;
    } else if (strstr(s, "://") || !strncmp(s, "urn:", 4) || s[0] == '#') {
        /* a URL, a canonical (url|version: that version only), a contained resource */
        const char *bar = s[0] == '#' ? NULL : strchr(s, '|');
        size_t un = bar ? (size_t)(bar - s) : strlen(s);
        if (bar && !bar[1])
            return fail(e, ERR_INVALID, OO_INVALID,
                        "%s: '%.60s' ends in '|' without a version", sp->code, s);
        idx_put_str(&b, s, un > IDX_MAX_VALUE ? IDX_MAX_VALUE : un);
        if (bar)
            idx_put_str(&b, bar, strlen(bar) > IDX_MAX_VERSION ? IDX_MAX_VERSION : strlen(bar));
        else
            idx_put_str(&b, "", 0);
        v->whole = 1;
    } else if (!strchr(s, '/')) {
        idx_put_str(&b, s, strlen(s));
        const char *t = type_mod ? type_mod : sp->ntargets == 1 ? sp->targets[0] : NULL;
        if (t)
            idx_put_str(&b, t, strlen(t));
        v->whole = t != NULL;
    } else {
        return fail(e, ERR_INVALID, OO_INVALID,
                    "%s: '%.60s' is not a reference (Type/id, id, or an absolute URL)",
                    sp->code, s);
    }
    v->key = take(a, &b, &v->key_len);
    buf_free(&b);
    return v->key ? 0 : ERR_NOMEM;
}

static int uri_value(arena *a, srch_modifier mod, const char *s, srch_value *v)
{
    buf b = BUF_INIT;
    v->kind = IDX_URI;
    if (mod == SM_BELOW) {
        buf_put(&b, s, strlen(s)); /* a prefix, no terminator */
        v->whole = 0;
    } else {
        idx_put_str(&b, s, strlen(s));
        v->whole = 1;
        v->above = mod == SM_ABOVE;
    }
    v->key = take(a, &b, &v->key_len);
    buf_free(&b);
    return v->key ? 0 : ERR_NOMEM;
}

/* One value of parameter sp (its escapes kept: tokens, quantities and identifiers split
 * at '|' themselves, every other value is unescaped here). name: for messages. */
static int one_value(arena *a, const fhir_search_param *sp, const char *name, srch_modifier mod,
                     const char *type_mod, const char *raw, const char *base_url,
                     srch_value *v, srch_error *e)
{
    int bars = sp->type == FHIR_SP_TOKEN || sp->type == FHIR_SP_QUANTITY ||
               (sp->type == FHIR_SP_REFERENCE && mod == SM_IDENTIFIER);
    const char *s = bars && mod != SM_TEXT ? raw : unescape(a, raw);
    if (!s)
        return ERR_NOMEM;
    if (!*s)
        return fail(e, ERR_INVALID, OO_INVALID, "%s: an empty value", name);
    switch (sp->type) {
    case FHIR_SP_STRING: return string_value(a, name, mod, s, v, e);
    case FHIR_SP_TOKEN: return token_value(a, name, mod, s, v, e);
    case FHIR_SP_REFERENCE: return reference_value(a, sp, mod, type_mod, s, base_url, v, e);
    case FHIR_SP_DATE: return date_value(name, s, v, e);
    case FHIR_SP_NUMBER: return number_value(name, s, v, e);
    case FHIR_SP_QUANTITY: return quantity_value(a, name, s, v, e);
    case FHIR_SP_URI: return uri_value(a, mod, s, v);
    case FHIR_SP_SPECIAL:
        if (idx_special_indexed(sp))
            return near_value(a, name, s, v, e);
        /* fall through */
    default:
        return fail(e, ERR_UNSUPPORTED, OO_NOT_SUPPORTED, "%s: a %s value is not supported",
                    name, fhir_sp_type_name(sp->type));
    }
}

/* The key bytes of sub-value v in the form of a composite part (strings cut at
 * IDX_PART_STR), as `kind`'s part without its kind byte. */
static int recode_key(arena *a, srch_value *v, uint8_t kind)
{
    if (!v->key_len)
        return 0;
    buf b = BUF_INIT;
    if (idx_part_recode(kind, v->key, v->key_len, &b) || b.err || b.len < 1) {
        buf_free(&b);
        return ERR_INVALID;
    }
    uint8_t *k = arena_alloc(a, b.len);
    if (!k) {
        buf_free(&b);
        return ERR_NOMEM;
    }
    memcpy(k, b.data + 1, b.len - 1);
    v->key = k;
    v->key_len = b.len - 1;
    buf_free(&b);
    return 0;
}

/* A composite value "a$b[$c]": one sub-value per component, parsed as that component's
 * type, without modifiers. The scan is over the composite's entries whose first part
 * starts as the first sub-value's key fixes (a token or reference: a whole part); the
 * parts are then checked one by one (docs/SEARCH.md 1a). */
static int composite_value(arena *a, const fhir_search_param *sp, const char *name,
                           const char *raw, const char *base_url, srch_value *v, srch_error *e)
{
    unsigned nc = sp->ncomponents;
    char *parts[8];
    if (nc == 0 || nc > 4)
        return fail(e, ERR_UNSUPPORTED, OO_NOT_SUPPORTED, "%s: composite of %u components",
                    name, nc);
    size_t np = split_kept(a, raw, '$', parts, nc, 1);
    if (np == (size_t)-1)
        return ERR_NOMEM;
    if (np != nc) {
        char want[200];
        size_t o = 0;
        for (unsigned k = 0; k < nc && o < sizeof want - 40; k++) {
            const fhir_search_param *d = idx_component(sp, k);
            o += (size_t)snprintf(want + o, sizeof want - o, "%s%s", k ? "$" : "",
                                  d ? fhir_sp_type_name(d->type) : "?");
        }
        return fail(e, ERR_INVALID, OO_INVALID,
                    "%s: '%.60s' is not a composite value: expected %u parts separated by "
                    "'$' (%s)", name, raw, nc, want);
    }
    srch_value *sub = arena_zalloc(a, sizeof *sub * nc);
    if (!sub)
        return ERR_NOMEM;
    for (unsigned k = 0; k < nc; k++) {
        const fhir_search_param *d = idx_component(sp, k);
        if (!d)
            return fail(e, ERR_UNSUPPORTED, OO_NOT_SUPPORTED,
                        "%s: component %u has no definition in the model", name, k + 1);
        char sname[160];
        snprintf(sname, sizeof sname, "%s (component %u, %s)", name, k + 1, d->code);
        int rc = one_value(a, d, sname, SM_NONE, NULL, parts[k], base_url, &sub[k], e);
        if (rc)
            return rc;
        srch_value *s = &sub[k];
        /* the strings of the query cut as the parts' are */
        uint8_t as = s->kind == IDX_QTY ? IDX_TOKEN : s->kind == IDX_QTY_UCUM ? IDX_URI
                   : idx_part_kind(s->kind) && s->kind != IDX_DATE && s->kind != IDX_NUMBER
                       ? s->kind : 0;
        if (as && (rc = recode_key(a, s, as)))
            return rc == ERR_NOMEM ? rc : fail(e, ERR_INVALID, OO_INVALID, "%s: a bad value",
                                               sname);
        if (s->system && strlen(s->system) > IDX_PART_STR)
            s->system = arena_strndup(a, s->system, IDX_PART_STR);
        if (s->kind == IDX_TEXT || s->kind == IDX_EXACT || s->kind == IDX_OF_TYPE ||
            s->kind == IDX_REF_ID || s->needle || s->above)
            return fail(e, ERR_INVALID, OO_INVALID, "%s: modifiers do not apply", sname);
    }
    v->kind = IDX_COMPOSITE;
    v->sub = sub;
    v->nsub = nc;
    v->whole = 0;
    /* the scan's prefix: the first part's kind, and its key when that fixes a prefix */
    const srch_value *f = &sub[0];
    int qty = f->kind == IDX_QTY || f->kind == IDX_QTY_UCUM || f->kind == IDX_QTY_VALUE;
    uint8_t pk = qty ? IDX_QTY_PART : f->kind;
    int fixes = !qty && f->kind != IDX_DATE && f->kind != IDX_NUMBER && !f->system;
    size_t n = 1 + (fixes ? f->key_len : 0);
    uint8_t *k = arena_alloc(a, n);
    if (!k)
        return ERR_NOMEM;
    k[0] = pk;
    if (fixes && f->key_len)
        memcpy(k + 1, f->key, f->key_len);
    v->key = k;
    v->key_len = n;
    return 0;
}

/* ---- modifiers ------------------------------------------------------------------------ */

/* The modifier `m` on a parameter of type t; SM_TYPE sets *type_mod. -1 when it does
 * not apply. */
static int parse_modifier(const fhir_search_param *sp, const char *m, srch_modifier *out,
                          const char **type_mod)
{
    fhir_sp_type t = sp->type;
    *type_mod = NULL;
    if (!strcmp(m, "missing"))
        return *out = SM_MISSING, 0;
    if (!strcmp(m, "exact") && t == FHIR_SP_STRING)
        return *out = SM_EXACT, 0;
    if (!strcmp(m, "contains") && t == FHIR_SP_STRING)
        return *out = SM_CONTAINS, 0;
    if (!strcmp(m, "text") && t == FHIR_SP_TOKEN)
        return *out = SM_TEXT, 0;
    if (!strcmp(m, "not") && t == FHIR_SP_TOKEN)
        return *out = SM_NOT, 0;
    if (!strcmp(m, "of-type") && t == FHIR_SP_TOKEN)
        return *out = SM_OF_TYPE, 0;
    if ((!strcmp(m, "below") || !strcmp(m, "above")) && t == FHIR_SP_URI)
        return *out = m[0] == 'b' ? SM_BELOW : SM_ABOVE, 0;
    if (!strcmp(m, "identifier") && t == FHIR_SP_REFERENCE)
        return *out = SM_IDENTIFIER, 0;
    if (t == FHIR_SP_REFERENCE && fhir_resource_type(m, strlen(m))) {
        *type_mod = m;
        return *out = SM_TYPE, 0;
    }
    return -1;
}

int srch_type_support(fhir_sp_type t, const char **modifiers, const char **prefixes)
{
    static const char *const prefix_list = "eq, ne, gt, lt, ge, le, sa, eb, ap";
    *prefixes = "";
    switch (t) {
    case FHIR_SP_STRING: *modifiers = ":missing, :exact, :contains"; return 1;
    case FHIR_SP_TOKEN: *modifiers = ":missing, :not, :text, :of-type"; return 1;
    case FHIR_SP_REFERENCE:
        *modifiers = ":missing, :[type], :identifier; chained as name[:type].parameter";
        return 1;
    case FHIR_SP_URI: *modifiers = ":missing, :below, :above"; return 1;
    case FHIR_SP_DATE:
    case FHIR_SP_NUMBER:
    case FHIR_SP_QUANTITY: *modifiers = ":missing"; *prefixes = prefix_list; return 1;
    case FHIR_SP_COMPOSITE:
        *modifiers = ":missing";
        *prefixes = "eq, ne, gt, lt, ge, le, sa, eb, ap (on date, number and quantity parts)";
        return 1;
    case FHIR_SP_SPECIAL: /* near, the one special parameter served */
        *modifiers = ":missing; value latitude|longitude|distance|unit (km when absent; "
                     "1 km when the distance is absent)";
        return 1;
    default: *modifiers = ""; return 0;
    }
}

int srch_param_supported(const fhir_search_param *sp)
{
    const char *m, *p;
    if (sp->type == FHIR_SP_SPECIAL)
        return idx_special_indexed(sp);
    return sp->expression && *sp->expression && srch_type_support(sp->type, &m, &p);
}

/* ---- result parameters ---------------------------------------------------------------- */

/* _include[:iterate]=Type:param[:target], _include=* ; _revinclude the same, from the
 * referring type's side. *handled = 0 for a name that only starts like them. */
static int include_param(srch_query *q, const char *name, const char *value, srch_error *e,
                         int *handled)
{
    int rev = name[1] == 'r';
    const char *mod = name + (rev ? 11 : 8);
    if (*mod && *mod != ':') {
        *handled = 0;
        return 0;
    }
    int iterate = 0;
    if (*mod) {
        if (strcmp(mod, ":iterate") && strcmp(mod, ":recurse"))
            return fail(e, ERR_INVALID, OO_INVALID,
                        "%s: the only modifier of _include and _revinclude is :iterate", name);
        iterate = 1;
    }
    const char *pn = rev ? "_revinclude" : "_include";
    if (q->ninc >= SRCH_MAX_INCLUDES)
        return fail(e, ERR_LIMIT, OO_TOO_COSTLY, "at most %u _include and _revinclude in one "
                    "query", SRCH_MAX_INCLUDES);
    srch_include inc = {.rev = rev, .iterate = iterate};
    if (!strcmp(value, "*")) {
        if (rev)
            return fail(e, ERR_UNSUPPORTED, OO_NOT_SUPPORTED,
                        "_revinclude=* is not supported: name the type and parameter "
                        "(_revinclude=Provenance:target)");
        inc.src = q->type;
        q->inc[q->ninc++] = inc;
        return 0;
    }
    const char *c1 = strchr(value, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || c1 == value || c1[1] == 0 || c1[1] == ':' || (c2 && (!c2[1] || strchr(c2 + 1, ':'))))
        return fail(e, ERR_INVALID, OO_INVALID,
                    "%s '%.80s': expected [type]:[parameter] or [type]:[parameter]:[target type]",
                    pn, value);
    const fhir_type *st = fhir_resource_type(value, (size_t)(c1 - value));
    if (!st)
        return fail(e, ERR_INVALID, OO_INVALID, "%s '%.80s': '%.*s' is not a resource type", pn,
                    value, (int)(c1 - value > 60 ? 60 : c1 - value), value);
    inc.src = st->name;
    char code[128];
    size_t cn = c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1);
    if (cn >= sizeof code)
        return fail(e, ERR_INVALID, OO_INVALID, "%s '%.80s': unknown parameter", pn, value);
    memcpy(code, c1 + 1, cn);
    code[cn] = 0;
    if (strcmp(code, "*")) {
        inc.sp = fp_sp_find(q->spc, st->name, code);
        if (!inc.sp || inc.sp->type != FHIR_SP_REFERENCE)
            return fail(e, ERR_INVALID, OO_INVALID, "%s '%.80s': %s is not a reference parameter "
                        "of %s", pn, value, code, st->name);
        inc.sph = idx_param_hash(q->spc, st->name, inc.sp);
    } else if (rev) {
        return fail(e, ERR_UNSUPPORTED, OO_NOT_SUPPORTED,
                    "_revinclude '%.80s': name the parameter, not *", value);
    }
    if (c2) {
        const fhir_type *tt = fhir_resource_type(c2 + 1, strlen(c2 + 1));
        int ok = tt != NULL && (!inc.sp || inc.sp->ntargets == 0);
        for (uint8_t i = 0; tt && inc.sp && i < inc.sp->ntargets && !ok; i++)
            ok = !strcmp(inc.sp->targets[i], tt->name);
        if (!ok)
            return fail(e, ERR_INVALID, OO_INVALID, "%s '%.80s': %s is not a type %s refers to",
                        pn, value, c2 + 1, code);
        inc.target = tt->name;
    }
    /* without :iterate, an include applies to the matches only: it must start there */
    if (!iterate && !rev && strcmp(inc.src, q->type))
        return fail(e, ERR_INVALID, OO_INVALID,
                    "_include '%.80s' on a search of %s: the matches are %s (add :iterate to "
                    "include from included resources)",
                    value, q->type, q->type);
    if (!iterate && rev) {
        int ok = inc.sp->ntargets == 0;
        for (uint8_t i = 0; i < inc.sp->ntargets && !ok; i++)
            ok = !strcmp(inc.sp->targets[i], q->type);
        if (!ok || (inc.target && strcmp(inc.target, q->type)))
            return fail(e, ERR_INVALID, OO_INVALID,
                        "_revinclude '%.80s' on a search of %s: %s.%s does not refer to %s (add "
                        ":iterate to include from included resources)",
                        value, q->type, inc.src, code, q->type);
    }
    q->inc[q->ninc++] = inc;
    return 0;
}

static int result_param(srch_query *q, arena *a, const char *name, const char *value,
                        srch_error *e, int *handled)
{
    uint64_t n;
    *handled = 1;
    if (!strcmp(name, "_count")) {
        if (num_parse_u64(value, UINT32_MAX, &n))
            return fail(e, ERR_INVALID, OO_INVALID,
                        "_count '%.40s' is not a non-negative integer", value);
        q->count = n > SRCH_MAX_COUNT ? SRCH_MAX_COUNT : (unsigned)n;
        return 0;
    }
    if (!strcmp(name, "_total")) {
        if (!strcmp(value, "none"))
            q->total = 0;
        else if (!strcmp(value, "estimate"))
            q->total = 1;
        else if (!strcmp(value, "accurate"))
            q->total = 2;
        else
            return fail(e, ERR_INVALID, OO_INVALID,
                        "_total '%.40s': expected none, estimate or accurate", value);
        return 0;
    }
    if (!strcmp(name, "_summary")) {
        if (!strcmp(value, "count"))
            q->summary_count = 1;
        else if (strcmp(value, "true") && strcmp(value, "false") && strcmp(value, "text") &&
                 strcmp(value, "data"))
            return fail(e, ERR_INVALID, OO_INVALID,
                        "_summary '%.40s': expected true, text, data, count or false", value);
        return 0;
    }
    if (!strcmp(name, "_elements"))
        return 0; /* applied when the resources are written (src/rest/shape.c) */
    if (!strncmp(name, "_include", 8) || !strncmp(name, "_revinclude", 11))
        return include_param(q, name, value, e, handled);
    if (!strcmp(name, "_page_t")) {
        if (num_parse_u64(value, INT64_MAX, &n) || n == 0)
            return fail(e, ERR_INVALID, OO_INVALID, "bad _page_t paging parameter");
        q->page_t = n;
        return 0;
    }
    if (!strcmp(name, "_page_offset")) {
        if (num_parse_u64(value, UINT32_MAX, &n))
            return fail(e, ERR_INVALID, OO_INVALID, "bad _page_offset paging parameter");
        q->page_offset = n;
        return 0;
    }
    if (!strcmp(name, "_sort")) {
        char *keys[SRCH_MAX_SORT_KEYS + 1];
        size_t nk = split(a, value, ',', keys, SRCH_MAX_SORT_KEYS);
        if (nk == (size_t)-1)
            return ERR_NOMEM;
        if (nk == (size_t)-2)
            return fail(e, ERR_LIMIT, OO_TOO_COSTLY, "_sort: at most %u keys",
                        SRCH_MAX_SORT_KEYS);
        q->nsort = 0;
        for (size_t i = 0; i < nk; i++) {
            const char *k = keys[i];
            int desc = k[0] == '-';
            k += desc;
            const fhir_search_param *sp = fp_sp_find(q->spc, q->type, k);
            if (!sp)
                return fail(e, ERR_INVALID, OO_NOT_SUPPORTED,
                            "_sort: '%.60s' is not a search parameter of %s", k, q->type);
            if (sp->type == FHIR_SP_COMPOSITE || sp->type == FHIR_SP_SPECIAL)
                return fail(e, ERR_UNSUPPORTED, OO_NOT_SUPPORTED,
                            "_sort: %s is a %s parameter; sorting by it is not supported", k,
                            fhir_sp_type_name(sp->type));
            q->sort[q->nsort++] = (srch_sort){sp, idx_param_hash(q->spc, q->type, sp), desc};
        }
        return 0;
    }
    *handled = 0;
    return 0;
}

/* Note a parameter in q->applied for the links: name=value, escaped. */
void srch_link_param(buf *b, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    if (b->len)
        buf_putc(b, '&');
    for (int part = 0; part < 2; part++) {
        const unsigned char *p = (const unsigned char *)(part ? value : name);
        if (part)
            buf_putc(b, '=');
        for (; *p; p++) {
            if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
                *p == '~' || *p == ':' || *p == ',') {
                buf_putc(b, (char)*p);
            } else {
                buf_putc(b, '%');
                buf_putc(b, hex[*p >> 4]);
                buf_putc(b, hex[*p & 15]);
            }
        }
    }
}

static void applied(srch_query *q, const char *name, const char *value)
{
    srch_link_param(&q->applied, name, value);
}

static void note_ignored(srch_query *q, const char *name)
{
    if (q->nignored++)
        buf_puts(&q->ignored, ", ");
    buf_puts(&q->ignored, name);
}

static int add_param(srch_query *q, arena *a, const char *name, const char *value,
                     int lenient, const char *base_url, srch_error *e, unsigned depth);

static int add_clause(srch_query *q, arena *a, const srch_clause *c)
{
    srch_clause *nc = arena_realloc(a, q->c, sizeof *q->c * q->nc, sizeof *q->c * (q->nc + 1));
    if (!nc)
        return ERR_NOMEM;
    q->c = nc;
    q->c[q->nc++] = *c;
    return 0;
}

/* The query of the other type behind a link: `rest`=value parsed as a search of `type`.
 * Its failure is the whole parameter's, named by the outer name; under lenient an
 * unknown or unsupported parameter behind the link leaves the whole parameter out
 * (*ignored). */
static int link_query(srch_query *q, arena *a, const char *outer, const char *type,
                      const char *rest, const char *value, int lenient, const char *base_url,
                      srch_error *e, unsigned depth, srch_query **out, int *ignored)
{
    *ignored = 0;
    if (depth + 1 > SRCH_MAX_LINK_DEPTH)
        return fail(e, ERR_LIMIT, OO_TOO_COSTLY,
                    "'%.80s': at most %u chained or _has links in one parameter", outer,
                    SRCH_MAX_LINK_DEPTH);
    srch_query *sub = arena_alloc(a, sizeof *sub);
    if (!sub)
        return ERR_NOMEM;
    srch_init(sub, type);
    sub->spc = q->spc;
    size_t before = sub->nc;
    srch_error se = {0};
    int rc = add_param(sub, a, rest, value, 0, base_url, &se, depth + 1);
    int was_result = !rc && sub->nc == before;
    srch_done(sub);
    if (rc == ERR_NOMEM)
        return rc;
    if (rc && lenient && se.oo_code == OO_NOT_SUPPORTED) {
        note_ignored(q, outer);
        *ignored = 1;
        return 0;
    }
    if (rc && depth) { /* the outermost link names the whole parameter */
        *e = se;
        return rc;
    }
    if (rc) {
        char m[sizeof se.msg];
        snprintf(m, sizeof m, "%s", se.msg);
        return fail(e, rc, se.oo_code ? se.oo_code : OO_INVALID, "%.80s: %s", outer, m);
    }
    if (was_result)
        return fail(e, ERR_INVALID, OO_INVALID,
                    "%.80s: '%.60s' is not a search parameter of %s (a chain or _has ends in "
                    "one)",
                    outer, rest, type);
    *out = sub;
    return 0;
}

/* The name of the parameter that starts `rest` (up to ':' or '.'), in n bytes. */
static size_t first_name(const char *rest)
{
    if (!strncmp(rest, "_has:", 5))
        return 4;
    return strcspn(rest, ":.");
}

/* Parameter `pname` (of `name` as written) is not one of q's type: noted under lenient,
 * else a 400 naming it. */
static int unknown_param(srch_query *q, const char *name, const char *pname, int lenient,
                         srch_error *e)
{
    if (lenient) {
        note_ignored(q, name);
        return 0;
    }
    return fail(e, ERR_INVALID, OO_NOT_SUPPORTED,
                "unknown search parameter '%.60s' for %s (see /metadata for the parameters "
                "of each type)",
                pname, q->type);
}

/* subject:Patient.name=x, patient.organization.name=x: a chain over reference `head`. */
static int chain_param(srch_query *q, arena *a, const char *name, const char *dot,
                       const char *value, int lenient, const char *base_url, srch_error *e,
                       unsigned depth)
{
    char pname[128], tname[72];
    size_t hn = (size_t)(dot - name);
    const char *colon = memchr(name, ':', hn);
    size_t pn = colon ? (size_t)(colon - name) : hn;
    if (pn == 0 || pn >= sizeof pname)
        return fail(e, ERR_INVALID, OO_NOT_SUPPORTED, "unknown search parameter '%.60s'", name);
    memcpy(pname, name, pn);
    pname[pn] = 0;
    const char *rest = dot + 1;
    if (!*rest)
        return fail(e, ERR_INVALID, OO_INVALID, "'%.60s': a chain needs a parameter after the "
                    "'.'", name);
    const fhir_search_param *sp = fp_sp_find(q->spc, q->type, pname);
    if (!sp)
        return unknown_param(q, name, pname, lenient, e);
    if (sp->type != FHIR_SP_REFERENCE)
        return fail(e, ERR_INVALID, OO_INVALID,
                    "'%.60s': %s is a %s parameter; only reference parameters can be chained",
                    name, pname, fhir_sp_type_name(sp->type));
    const fhir_type *target = NULL;
    if (colon) {
        size_t tn = hn - pn - 1;
        target = fhir_resource_type(colon + 1, tn);
        int ok = target != NULL && sp->ntargets == 0;
        for (uint8_t i = 0; target && i < sp->ntargets && !ok; i++)
            ok = !strcmp(sp->targets[i], target->name);
        if (!ok)
            return fail(e, ERR_INVALID, OO_INVALID,
                        "'%.60s': ':%.*s' is not a type %s of %s refers to", name,
                        (int)(tn > 60 ? 60 : tn), colon + 1, pname, q->type);
    } else {
        /* the target types that have the next parameter: one, or the chain is ambiguous */
        size_t nn = first_name(rest);
        if (nn == 0 || nn >= sizeof tname)
            return fail(e, ERR_INVALID, OO_INVALID, "'%.60s': no parameter after the '.'", name);
        memcpy(tname, rest, nn);
        tname[nn] = 0;
        buf names = BUF_INIT;
        size_t found = 0;
        for (uint8_t i = 0; i < sp->ntargets; i++) {
            const fhir_type *t = fhir_resource_type(sp->targets[i], strlen(sp->targets[i]));
            if (!t || (strcmp(tname, "_has") && !fp_sp_find(q->spc, t->name, tname)))
                continue;
            buf_printf(&names, "%s%s", found ? ", " : "", t->name);
            if (!found++)
                target = t;
        }
        if (found != 1) {
            int rc = fail(e, ERR_INVALID, OO_INVALID,
                          found ? "'%.60s': %s of %s refers to several types with a parameter "
                                  "'%s' (%s): name one, as in %s:%s.%s"
                                : "'%.60s': no type that %s of %s refers to has a parameter "
                                  "'%s'%s (name the type, as in %s:Type.%s)",
                          name, pname, q->type, tname, found ? buf_cstr(&names) : "", pname,
                          found ? target->name : tname, found ? rest : "");
            buf_free(&names);
            return rc;
        }
        buf_free(&names);
    }
    srch_query *sub;
    int ignored;
    int rc = link_query(q, a, name, target->name, rest, value, lenient, base_url, e, depth,
                        &sub, &ignored);
    if (rc || ignored)
        return rc;
    if (q->nc >= SRCH_MAX_CLAUSES)
        return fail(e, ERR_LIMIT, OO_TOO_COSTLY, "at most %u search parameters in one query",
                    SRCH_MAX_CLAUSES);
    srch_clause c = {.sp = sp, .sph = idx_param_hash(q->spc, q->type, sp), .link = SL_CHAIN,
                     .sub = sub};
    if ((rc = add_clause(q, a, &c)))
        return rc;
    applied(q, name, value);
    return 0;
}

/* _has:Observation:patient:code=x (nested: _has:A:p:_has:B:q:code=x). */
static int has_param(srch_query *q, arena *a, const char *name, const char *value, int lenient,
                     const char *base_url, srch_error *e, unsigned depth)
{
    const char *p = name + 5, *c1 = strchr(p, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2 || c1 == p || c2 == c1 + 1 || !c2[1])
        return fail(e, ERR_INVALID, OO_INVALID,
                    "'%.60s': _has takes _has:[type]:[reference parameter]:[parameter]", name);
    const fhir_type *t = fhir_resource_type(p, (size_t)(c1 - p));
    if (!t)
        return fail(e, ERR_INVALID, OO_INVALID, "'%.60s': '%.*s' is not a resource type", name,
                    (int)(c1 - p > 60 ? 60 : c1 - p), p);
    char rname[128];
    size_t rn = (size_t)(c2 - c1 - 1);
    if (rn >= sizeof rname)
        return fail(e, ERR_INVALID, OO_INVALID, "'%.60s': unknown reference parameter", name);
    memcpy(rname, c1 + 1, rn);
    rname[rn] = 0;
    const fhir_search_param *rsp = fp_sp_find(q->spc, t->name, rname);
    if (!rsp || rsp->type != FHIR_SP_REFERENCE)
        return fail(e, ERR_INVALID, OO_INVALID, "'%.60s': %s is not a reference parameter of %s",
                    name, rname, t->name);
    int ok = rsp->ntargets == 0;
    for (uint8_t i = 0; i < rsp->ntargets && !ok; i++)
        ok = !strcmp(rsp->targets[i], q->type);
    if (!ok)
        return fail(e, ERR_INVALID, OO_INVALID, "'%.60s': %s.%s does not refer to %s", name,
                    t->name, rname, q->type);
    const fhir_search_param *idp = fp_sp_find(q->spc, q->type, "_id");
    if (!idp)
        return fail(e, ERR_INTERNAL, OO_EXCEPTION, "%s has no _id parameter", q->type);
    srch_query *sub;
    int ignored;
    int rc = link_query(q, a, name, t->name, c2 + 1, value, lenient, base_url, e, depth, &sub,
                        &ignored);
    if (rc || ignored)
        return rc;
    if (q->nc >= SRCH_MAX_CLAUSES)
        return fail(e, ERR_LIMIT, OO_TOO_COSTLY, "at most %u search parameters in one query",
                    SRCH_MAX_CLAUSES);
    srch_clause c = {.sp = idp, .sph = idx_sp_hash(q->type, "_id"), .link = SL_HAS, .sub = sub,
                     .has_sph = idx_param_hash(q->spc, t->name, rsp), .has_sp = rsp};
    if ((rc = add_clause(q, a, &c)))
        return rc;
    applied(q, name, value);
    return 0;
}

int srch_add_except(srch_query *q, arena *a, const srch_query *sub, srch_error *e)
{
    if (strcmp(sub->type, q->type))
        return fail(e, ERR_INVALID, OO_EXCEPTION, "an exception of %s from a query of %s",
                    sub->type, q->type);
    if (q->nc >= SRCH_MAX_CLAUSES)
        return fail(e, ERR_LIMIT, OO_TOO_COSTLY, "at most %u search parameters in one query",
                    SRCH_MAX_CLAUSES);
    srch_clause c = {.sp = fp_sp_find(q->spc, q->type, "_id"), .sph = idx_sp_hash(q->type, "_id"),
                     .mod = SM_NOT, .link = SL_EXCEPT, .sub = sub};
    return add_clause(q, a, &c);
}

int srch_add(srch_query *q, arena *a, const char *name, const char *value, int lenient,
             const char *base_url, srch_error *e)
{
    return add_param(q, a, name, value, lenient, base_url, e, 0);
}

static int add_param(srch_query *q, arena *a, const char *name, const char *value,
                     int lenient, const char *base_url, srch_error *e, unsigned depth)
{
    if (!value)
        value = "";
    if (!strcmp(name, "_format") || !strcmp(name, "_pretty"))
        return 0; /* applied by the REST layer */
    int handled;
    int rc = result_param(q, a, name, value, e, &handled);
    if (rc)
        return rc;
    if (handled) {
        if (strncmp(name, "_page_", 6))
            applied(q, name, value);
        return 0;
    }
    if (!strcmp(name, "_has"))
        return fail(e, ERR_INVALID, OO_INVALID,
                    "_has takes _has:[type]:[reference parameter]:[parameter]");
    if (!strncmp(name, "_has:", 5))
        return has_param(q, a, name, value, lenient, base_url, e, depth);
    static const char *const later[] = {"_contained",
                                        "_containedType", "_query", "_filter", "_list",
                                        "_text", "_content", "_type"};
    for (size_t i = 0; i < sizeof later / sizeof *later; i++)
        if (!strcmp(name, later[i]) ||
            (!strncmp(name, later[i], strlen(later[i])) && name[strlen(later[i])] == ':')) {
            if (lenient) {
                note_ignored(q, name);
                return 0;
            }
            return fail(e, ERR_UNSUPPORTED, OO_NOT_SUPPORTED,
                        "search parameter '%.60s' is not supported yet", name);
        }
    const char *dot = strchr(name, '.');
    if (dot)
        return chain_param(q, a, name, dot, value, lenient, base_url, e, depth);
    /* name[:modifier] */
    char pname[128];
    const char *colon = strchr(name, ':');
    size_t pn = colon ? (size_t)(colon - name) : strlen(name);
    if (pn >= sizeof pname || pn == 0) {
        if (lenient) {
            note_ignored(q, name);
            return 0;
        }
        return fail(e, ERR_INVALID, OO_NOT_SUPPORTED, "unknown search parameter '%.60s'", name);
    }
    memcpy(pname, name, pn);
    pname[pn] = 0;
    const fhir_search_param *sp = fp_sp_find(q->spc, q->type, pname);
    if (!sp)
        return unknown_param(q, name, pname, lenient, e);
    if (!srch_param_supported(sp)) {
        if (lenient) {
            note_ignored(q, name);
            return 0;
        }
        return fail(e, ERR_UNSUPPORTED, OO_NOT_SUPPORTED,
                    "search parameter '%.60s' (%s) is not supported yet", pname,
                    fhir_sp_type_name(sp->type));
    }
    if (q->nc >= SRCH_MAX_CLAUSES)
        return fail(e, ERR_LIMIT, OO_TOO_COSTLY, "at most %u search parameters in one query",
                    SRCH_MAX_CLAUSES);
    srch_clause c = {.sp = sp, .sph = idx_param_hash(q->spc, q->type, sp)};
    const char *type_mod = NULL;
    if (colon && parse_modifier(sp, colon + 1, &c.mod, &type_mod))
        return fail(e, ERR_INVALID, OO_INVALID,
                    "modifier ':%.40s' is not allowed on %s (a %s parameter)", colon + 1,
                    pname, fhir_sp_type_name(sp->type));
    if (c.mod == SM_MISSING) {
        if (strcmp(value, "true") && strcmp(value, "false"))
            return fail(e, ERR_INVALID, OO_INVALID, "%s:missing takes true or false", pname);
        c.missing = !strcmp(value, "true");
    } else {
        char **vals = arena_alloc(a, sizeof *vals * (SRCH_MAX_OR + 1));
        if (!vals)
            return ERR_NOMEM;
        size_t nv = split_kept(a, value, ',', vals, SRCH_MAX_OR, 1);
        if (nv == (size_t)-1)
            return ERR_NOMEM;
        if (nv == (size_t)-2)
            return fail(e, ERR_LIMIT, OO_TOO_COSTLY, "%s: at most %u values (OR) in one "
                        "parameter", pname, SRCH_MAX_OR);
        c.v = arena_zalloc(a, sizeof *c.v * nv);
        if (!c.v)
            return ERR_NOMEM;
        for (size_t i = 0; i < nv; i++) {
            rc = sp->type == FHIR_SP_COMPOSITE
                     ? composite_value(a, sp, pname, vals[i], base_url, &c.v[i], e)
                     : one_value(a, sp, pname, c.mod, type_mod, vals[i], base_url, &c.v[i], e);
            if (rc)
                return rc;
        }
        c.nv = nv;
    }
    if ((rc = add_clause(q, a, &c)))
        return rc;
    applied(q, name, value);
    return 0;
}

int srch_add_compartment(srch_query *q, arena *a, const char *comp_type, const char *id,
                         srch_error *e)
{
    if (strcmp(comp_type, "Patient") && strcmp(comp_type, "Encounter"))
        return fail(e, ERR_UNSUPPORTED, OO_NOT_SUPPORTED,
                    "compartment %s is not supported: the Patient and Encounter "
                    "compartments are known",
                    comp_type);
    const char *const *codes;
    size_t nc = fhir_compartment(comp_type, q->type, &codes);
    if (!nc)
        return fail(e, ERR_UNSUPPORTED, OO_NOT_SUPPORTED, "%s is not in the %s compartment",
                    q->type, comp_type);
    if (q->nc >= SRCH_MAX_CLAUSES)
        return fail(e, ERR_LIMIT, OO_TOO_COSTLY, "too many search parameters");
    srch_clause c = {0};
    c.v = arena_zalloc(a, sizeof *c.v * nc);
    if (!c.v)
        return ERR_NOMEM;
    buf b = BUF_INIT;
    idx_put_str(&b, id, strlen(id));
    idx_put_str(&b, comp_type, strlen(comp_type));
    for (size_t i = 0; i < nc; i++) {
        const fhir_search_param *sp = fp_sp_find(q->spc, q->type, codes[i]);
        if (!sp)
            continue;
        srch_value *v = &c.v[c.nv++];
        v->sph = idx_sp_hash(q->type, codes[i]);
        v->kind = IDX_REF;
        v->whole = 1;
        v->key = take(a, &b, &v->key_len);
        c.sp = sp;
        c.sph = v->sph;
    }
    buf_free(&b);
    if (!c.nv)
        return fail(e, ERR_UNSUPPORTED, OO_NOT_SUPPORTED,
                    "%s has no parameter of the %s compartment", q->type, comp_type);
    srch_clause *cs = arena_realloc(a, q->c, sizeof *q->c * q->nc, sizeof *q->c * (q->nc + 1));
    if (!cs)
        return ERR_NOMEM;
    q->c = cs;
    q->c[q->nc++] = c;
    return 0;
}
