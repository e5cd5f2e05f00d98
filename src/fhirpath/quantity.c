/*
 * quantity.c -- FHIRPath quantities: calendar-duration rules on top of UCUM (quantity.h).
 *
 * Every operation first classifies each operand:
 *
 *   calendar year/month ("year", "month")     indefinite: only comparable with each other
 *   FHIR-origin 'a'/'mo'/.. (FP_QTY_FHIR)     both UCUM and the matching calendar word
 *   anything else                             plain UCUM (calendar week..millisecond are
 *                                             their definite UCUM units wk, d, h, ...)
 *
 * and then either works in months (two indefinite calendar values) or in UCUM through
 * ucum.h. The unit text is parsed again on each use: it is short, the parse allocates
 * nothing, and it keeps the value type free of cached state.
 */
#include "fhirpath/quantity.h"

#include <string.h>

#include "base/err.h"
#include "fhirpath/ucum.h"

static const struct {
    const char *word; /* singular calendar word */
    const char *plural;
    const char *ucum; /* matching UCUM code */
    enum fp_dt_unit dtu;
} CAL[] = {
    {"year", "years", "a", FP_DTU_YEAR},       {"month", "months", "mo", FP_DTU_MONTH},
    {"week", "weeks", "wk", FP_DTU_WEEK},      {"day", "days", "d", FP_DTU_DAY},
    {"hour", "hours", "h", FP_DTU_HOUR},       {"minute", "minutes", "min", FP_DTU_MINUTE},
    {"second", "seconds", "s", FP_DTU_SECOND}, {"millisecond", "milliseconds", "ms", FP_DTU_MS},
};
#define NCAL (sizeof CAL / sizeof *CAL)

static int eqn(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && memcmp(s, w, n) == 0;
}

/* Index in CAL of a calendar word (singular or plural), or -1. */
static int cal_word(const char *s, size_t n)
{
    for (size_t k = 0; k < NCAL; k++) {
        if (eqn(s, n, CAL[k].word) || eqn(s, n, CAL[k].plural))
            return (int)k;
    }
    return -1;
}

/* Index in CAL of a UCUM time code, or -1. */
static int cal_ucum(const char *s)
{
    for (size_t k = 0; k < NCAL; k++) {
        if (strcmp(s, CAL[k].ucum) == 0)
            return (int)k;
    }
    return -1;
}

/* The calendar index a quantity stands for when used as a calendar duration: calendar
 * words, and FHIR-origin UCUM time codes. -1 otherwise. */
static int as_calendar(const fp_qty *q)
{
    if (q->flags & FP_QTY_CALENDAR)
        return cal_word(q->unit, strlen(q->unit));
    if (q->flags & FP_QTY_FHIR)
        return cal_ucum(q->unit);
    return -1;
}

static int is_indefinite(int cal)
{
    return cal == 0 || cal == 1; /* year, month */
}

static int set_unit(fp_qty *q, const char *u, size_t n)
{
    if (n >= FP_QTY_UNIT_MAX)
        return ERR_TOOBIG;
    memcpy(q->unit, u, n);
    q->unit[n] = '\0';
    return 0;
}

/* The UCUM reading of q (calendar words by their UCUM code). */
static int qty_ucum(const fp_qty *q, fp_ucum *u)
{
    if (q->flags & FP_QTY_CALENDAR) {
        int k = cal_word(q->unit, strlen(q->unit));
        if (k < 0)
            return ERR_INTERNAL;
        return fp_ucum_parse(CAL[k].ucum, strlen(CAL[k].ucum), u);
    }
    return fp_ucum_parse(q->unit, strlen(q->unit), u);
}

/* ---- construction --------------------------------------------------------------------- */

int fp_qty_make(fp_dec value, const char *unit, size_t n, fp_qty *out)
{
    fp_qty q;
    memset(&q, 0, sizeof q);
    q.value = value;
    int k = n ? cal_word(unit, n) : -1;
    int rc;
    if (n == 0) {
        rc = set_unit(&q, "1", 1);
    } else if (k >= 0) {
        q.flags = FP_QTY_CALENDAR;
        rc = set_unit(&q, CAL[k].word, strlen(CAL[k].word));
    } else {
        if (n >= FP_QTY_UNIT_MAX)
            return ERR_TOOBIG;
        if (!fp_ucum_valid(unit, n))
            return ERR_INVALID;
        rc = set_unit(&q, unit, n);
    }
    if (rc < 0)
        return rc;
    *out = q;
    return 0;
}

int fp_qty_make_raw(fp_dec value, const char *unit, size_t n, fp_qty *out)
{
    int rc = fp_qty_make(value, unit, n, out);
    if (rc != ERR_INVALID)
        return rc;
    fp_qty q;
    memset(&q, 0, sizeof q);
    q.value = value;
    if ((rc = set_unit(&q, unit, n)) < 0)
        return rc;
    *out = q;
    return 0;
}

int fp_qty_from_fhir(fp_dec value, const char *code, size_t n, fp_qty *out)
{
    if (!code)
        n = 0;
    if (n && cal_word(code, n) >= 0)
        return ERR_INVALID; /* "days" is not a UCUM code */
    int rc = fp_qty_make(value, code, n, out);
    if (rc < 0)
        return rc;
    if (cal_ucum(out->unit) >= 0)
        out->flags |= FP_QTY_FHIR;
    return 0;
}

int fp_qty_parse(const char *text, size_t n, fp_qty *out)
{
    size_t i = 0;
    if (i < n && (text[i] == '+' || text[i] == '-'))
        i++;
    while (i < n && text[i] >= '0' && text[i] <= '9')
        i++;
    if (i < n && text[i] == '.') {
        i++;
        while (i < n && text[i] >= '0' && text[i] <= '9')
            i++;
    }
    fp_dec v;
    int rc = fp_dec_parse(text, i, &v);
    if (rc < 0)
        return rc == ERR_TOOBIG ? rc : ERR_INVALID;
    size_t sp = i;
    while (i < n && text[i] == ' ')
        i++;
    if (i == n)
        return sp == n ? fp_qty_make(v, NULL, 0, out) : ERR_INVALID;
    if (i == sp)
        return ERR_INVALID;
    if (text[i] == '\'') {
        size_t end = n - 1;
        if (end <= i || text[end] != '\'')
            return ERR_INVALID;
        if (memchr(text + i + 1, '\'', end - i - 1))
            return ERR_INVALID;
        return fp_qty_make(v, text + i + 1, end - i - 1, out);
    }
    if (cal_word(text + i, n - i) < 0)
        return ERR_INVALID;
    return fp_qty_make(v, text + i, n - i, out);
}

/* ---- output ------------------------------------------------------------------------------ */

void fp_qty_write(const fp_qty *q, buf *b)
{
    fp_dec_write(q->value, b);
    if (q->flags & FP_QTY_CALENDAR) {
        int k = cal_word(q->unit, strlen(q->unit));
        buf_putc(b, ' ');
        if (k < 0)
            buf_puts(b, q->unit);
        else
            buf_puts(b, fp_dec_eq(fp_dec_abs(q->value), fp_dec_from_i64(1)) ? CAL[k].word
                                                                            : CAL[k].plural);
        return;
    }
    buf_puts(b, " '");
    buf_puts(b, q->unit);
    buf_putc(b, '\'');
}

const char *fp_qty_ucum_code(const fp_qty *q)
{
    if (q->flags & FP_QTY_CALENDAR) {
        int k = cal_word(q->unit, strlen(q->unit));
        if (k >= 0)
            return CAL[k].ucum;
    }
    return q->unit;
}

/* ---- comparison -------------------------------------------------------------------------- */

/* How a and b meet. MONTHS: both indefinite calendar values (compare in months);
 * UCUM: compare through UCUM; NONE: not comparable. For MONTHS, *ma and *mb get the
 * months-per-unit multipliers. */
enum meet { MEET_NONE, MEET_MONTHS, MEET_UCUM };

static enum meet meet(const fp_qty *a, const fp_qty *b, int *ma, int *mb)
{
    int ca = as_calendar(a), cb = as_calendar(b);
    int wa = (a->flags & FP_QTY_CALENDAR) && is_indefinite(ca);
    int wb = (b->flags & FP_QTY_CALENDAR) && is_indefinite(cb);
    if (!wa && !wb)
        return MEET_UCUM; /* includes FHIR-origin 'a' against plain 'a' */
    if (is_indefinite(ca) && is_indefinite(cb)) {
        /* calendar year/month against calendar year/month or a FHIR-origin 'a'/'mo' */
        *ma = ca == 0 ? 12 : 1;
        *mb = cb == 0 ? 12 : 1;
        return MEET_MONTHS;
    }
    return MEET_NONE;
}

bool fp_qty_comparable(const fp_qty *a, const fp_qty *b)
{
    int ma, mb;
    enum meet m = meet(a, b, &ma, &mb);
    if (m == MEET_MONTHS)
        return true;
    if (m == MEET_NONE)
        return false;
    fp_ucum ua, ub;
    return qty_ucum(a, &ua) == 0 && qty_ucum(b, &ub) == 0 && fp_ucum_commensurable(&ua, &ub);
}

/* Same unit text and family: values compare directly (also for units UCUM does not know). */
static int same_unit(const fp_qty *a, const fp_qty *b)
{
    return (a->flags & FP_QTY_CALENDAR) == (b->flags & FP_QTY_CALENDAR) &&
           strcmp(a->unit, b->unit) == 0;
}

static int months_value(const fp_qty *q, int per, fp_dec *out)
{
    return fp_dec_mul(q->value, fp_dec_from_i64(per), out);
}

int fp_qty_cmp(const fp_qty *a, const fp_qty *b, int *out)
{
    int ma, mb, rc;
    enum meet m = meet(a, b, &ma, &mb);
    if (m == MEET_NONE)
        return FP_EMPTY;
    if (m == MEET_MONTHS) {
        fp_dec x, y;
        if ((rc = months_value(a, ma, &x)) < 0 || (rc = months_value(b, mb, &y)) < 0)
            return rc;
        *out = fp_dec_cmp(x, y);
        return 0;
    }
    if (same_unit(a, b)) {
        *out = fp_dec_cmp(a->value, b->value);
        return 0;
    }
    fp_ucum ua, ub;
    if (qty_ucum(a, &ua) < 0 || qty_ucum(b, &ub) < 0 || !fp_ucum_commensurable(&ua, &ub))
        return FP_EMPTY;
    return fp_ucum_cmp(a->value, &ua, b->value, &ub, out);
}

int fp_qty_eq(const fp_qty *a, const fp_qty *b, bool *out)
{
    int c;
    int rc = fp_qty_cmp(a, b, &c);
    if (rc != 0)
        return rc;
    *out = c == 0;
    return 0;
}

bool fp_qty_equiv(const fp_qty *a, const fp_qty *b)
{
    if (same_unit(a, b))
        return fp_dec_equiv(a->value, b->value);
    fp_ucum ua, ub;
    if (qty_ucum(a, &ua) < 0 || qty_ucum(b, &ub) < 0 || !fp_ucum_commensurable(&ua, &ub))
        return false;
    /* Precision is relative to each operand's own unit: 4 'g' is precise to 1 g, 4040 'mg'
     * to 1 mg. Find the less precise operand (the larger last-digit step in canonical
     * units), express the other in its unit and compare at its precision. */
    fp_dec step_a = {1, a->value.scale}, step_b = {1, b->value.scale}, ca, cb;
    fp_ucum la = ua, lb = ub;
    la.special = lb.special = 0; /* a step is a difference: no offset */
    if (fp_ucum_to_canonical(step_a, &la, &ca) < 0 || fp_ucum_to_canonical(step_b, &lb, &cb) < 0)
        return false;
    const fp_qty *coarse = a, *fine = b;
    const fp_ucum *uc = &ua, *uf = &ub;
    if (fp_dec_cmp(ca, cb) < 0) {
        coarse = b, fine = a;
        uc = &ub, uf = &ua;
    }
    fp_dec v;
    if (fp_ucum_convert(fine->value, uf, uc, &v) < 0)
        return false;
    return fp_dec_equiv(coarse->value, v);
}

/* ---- arithmetic ------------------------------------------------------------------------------ */

/* b's value expressed in a's unit, per the meeting rules. */
static int value_in_unit_of(const fp_qty *a, const fp_qty *b, fp_dec *out)
{
    int ma, mb, rc;
    enum meet m = meet(a, b, &ma, &mb);
    if (m == MEET_NONE)
        return FP_EMPTY;
    if (m == MEET_MONTHS) {
        fp_dec months;
        if ((rc = months_value(b, mb, &months)) < 0)
            return rc;
        return fp_dec_div(months, fp_dec_from_i64(ma), out);
    }
    if (same_unit(a, b)) {
        fp_ucum u;
        if (qty_ucum(a, &u) == 0 && u.special)
            return ERR_INVALID; /* adding temperatures on offset scales is not defined here */
        *out = b->value;
        return 0;
    }
    fp_ucum ua, ub;
    if (qty_ucum(a, &ua) < 0 || qty_ucum(b, &ub) < 0 || !fp_ucum_commensurable(&ua, &ub))
        return FP_EMPTY;
    if (ua.special || ub.special)
        return ERR_INVALID; /* adding temperatures on offset scales is not defined here */
    return fp_ucum_convert(b->value, &ub, &ua, out);
}

static int addsub(const fp_qty *a, const fp_qty *b, int sub, fp_qty *out)
{
    /* A FHIR-origin time quantity meeting a calendar word acts as that word. */
    fp_qty ca = *a, cb = *b;
    int ka = as_calendar(a), kb = as_calendar(b);
    if ((a->flags & FP_QTY_FHIR) && (b->flags & FP_QTY_CALENDAR) && ka >= 0) {
        ca.flags = FP_QTY_CALENDAR;
        set_unit(&ca, CAL[ka].word, strlen(CAL[ka].word));
    }
    if ((b->flags & FP_QTY_FHIR) && (a->flags & FP_QTY_CALENDAR) && kb >= 0) {
        cb.flags = FP_QTY_CALENDAR;
        set_unit(&cb, CAL[kb].word, strlen(CAL[kb].word));
    }
    fp_dec bv;
    int rc = value_in_unit_of(&ca, &cb, &bv);
    if (rc != 0)
        return rc;
    fp_qty r = ca;
    rc = sub ? fp_dec_sub(ca.value, bv, &r.value) : fp_dec_add(ca.value, bv, &r.value);
    if (rc != 0)
        return rc;
    r.flags &= (uint8_t)~FP_QTY_FHIR;
    *out = r;
    return 0;
}

int fp_qty_add(const fp_qty *a, const fp_qty *b, fp_qty *out)
{
    return addsub(a, b, 0, out);
}

int fp_qty_sub(const fp_qty *a, const fp_qty *b, fp_qty *out)
{
    return addsub(a, b, 1, out);
}

static int muldiv(const fp_qty *a, const fp_qty *b, int div, fp_qty *out)
{
    fp_ucum ua, ub;
    int rc;
    if (qty_ucum(a, &ua) < 0 || qty_ucum(b, &ub) < 0)
        return FP_EMPTY; /* a unit UCUM does not know combines with nothing */
    if (ua.special || ub.special)
        return ERR_INVALID;
    fp_dec f;
    if (fp_ucum_dimensionless(&ub)) {
        /* fold b into a's value: a keeps its unit and flags */
        if ((rc = fp_ucum_to_canonical(b->value, &ub, &f)) < 0)
            return rc;
        return div ? fp_qty_div_number(a, f, out) : fp_qty_scale(a, f, out);
    }
    if (!div && fp_ucum_dimensionless(&ua)) {
        if ((rc = fp_ucum_to_canonical(a->value, &ua, &f)) < 0)
            return rc;
        return fp_qty_scale(b, f, out);
    }
    fp_dec ca, cb;
    if ((rc = fp_ucum_to_canonical(a->value, &ua, &ca)) < 0 ||
        (rc = fp_ucum_to_canonical(b->value, &ub, &cb)) < 0)
        return rc;
    fp_ucum ur;
    if ((rc = div ? fp_ucum_div(&ua, &ub, &ur) : fp_ucum_mul(&ua, &ub, &ur)) < 0)
        return rc;
    fp_qty r;
    memset(&r, 0, sizeof r);
    rc = div ? fp_dec_div(ca, cb, &r.value) : fp_dec_mul(ca, cb, &r.value);
    if (rc != 0)
        return rc;
    char text[FP_UCUM_UNIT_MAX];
    size_t n = fp_ucum_canonical_text(&ur, text, sizeof text);
    if ((rc = set_unit(&r, text, n)) < 0)
        return rc;
    *out = r;
    return 0;
}

int fp_qty_mul(const fp_qty *a, const fp_qty *b, fp_qty *out)
{
    return muldiv(a, b, 0, out);
}

int fp_qty_div(const fp_qty *a, const fp_qty *b, fp_qty *out)
{
    return muldiv(a, b, 1, out);
}

int fp_qty_scale(const fp_qty *a, fp_dec factor, fp_qty *out)
{
    fp_qty r = *a;
    int rc = fp_dec_mul(a->value, factor, &r.value);
    if (rc != 0)
        return rc;
    *out = r;
    return 0;
}

int fp_qty_div_number(const fp_qty *a, fp_dec divisor, fp_qty *out)
{
    fp_qty r = *a;
    int rc = fp_dec_div(a->value, divisor, &r.value);
    if (rc != 0)
        return rc;
    *out = r;
    return 0;
}

fp_qty fp_qty_neg(const fp_qty *a)
{
    fp_qty r = *a;
    r.value = fp_dec_neg(a->value);
    return r;
}

fp_qty fp_qty_abs(const fp_qty *a)
{
    fp_qty r = *a;
    r.value = fp_dec_abs(a->value);
    return r;
}

int fp_qty_convert(const fp_qty *a, const char *unit, size_t n, fp_qty *out)
{
    fp_qty target;
    fp_dec one = fp_dec_from_i64(1);
    int rc = fp_qty_make(one, unit, n, &target);
    if (rc < 0)
        return FP_EMPTY;
    fp_qty src = *a;
    int k = as_calendar(a);
    /* A FHIR-origin 'a'/'mo' asked for a calendar word converts as that word. */
    if ((a->flags & FP_QTY_FHIR) && (target.flags & FP_QTY_CALENDAR) && k >= 0) {
        src.flags = FP_QTY_CALENDAR;
        set_unit(&src, CAL[k].word, strlen(CAL[k].word));
    }
    fp_dec v;
    fp_ucum us, ut;
    if (!(target.flags & FP_QTY_CALENDAR) && !(src.flags & FP_QTY_CALENDAR) &&
        qty_ucum(&src, &us) == 0 && qty_ucum(&target, &ut) == 0 && (us.special || ut.special))
        rc = fp_ucum_convert(src.value, &us, &ut, &v); /* temperatures on offset scales */
    else
        rc = value_in_unit_of(&target, &src, &v);
    if (rc != 0)
        return rc == ERR_INVALID ? FP_EMPTY : rc;
    fp_qty r = target;
    r.value = v;
    *out = r;
    return 0;
}

enum fp_dt_unit fp_qty_date_unit(const fp_qty *q)
{
    int k = as_calendar(q);
    if (k >= 0)
        return CAL[k].dtu;
    k = cal_ucum(q->unit);
    if (k >= 0 && !is_indefinite(k))
        return CAL[k].dtu;
    return FP_DTU_NONE;
}

int fp_qty_add_to_dt(fp_dt v, int sign, const fp_qty *q, fp_dt *out)
{
    enum fp_dt_unit u = fp_qty_date_unit(q);
    if (u == FP_DTU_NONE)
        return ERR_INVALID;
    return fp_dt_add(v, sign, q->value, u, out);
}

int fp_qty_low_boundary(const fp_qty *a, int precision, fp_qty *out)
{
    fp_qty r = *a;
    int rc = fp_dec_low_boundary(a->value, precision, &r.value);
    if (rc != 0)
        return rc;
    *out = r;
    return 0;
}

int fp_qty_high_boundary(const fp_qty *a, int precision, fp_qty *out)
{
    fp_qty r = *a;
    int rc = fp_dec_high_boundary(a->value, precision, &r.value);
    if (rc != 0)
        return rc;
    *out = r;
    return 0;
}

int fp_qty_canonical(const fp_qty *a, fp_qty *out)
{
    fp_ucum u;
    int rc = qty_ucum(a, &u);
    if (rc < 0)
        return ERR_INVALID;
    fp_qty r;
    memset(&r, 0, sizeof r);
    if ((rc = fp_ucum_to_canonical(a->value, &u, &r.value)) < 0)
        return rc;
    char text[FP_UCUM_UNIT_MAX];
    size_t n = fp_ucum_canonical_text(&u, text, sizeof text);
    if ((rc = set_unit(&r, text, n)) < 0)
        return rc;
    *out = r;
    return 0;
}
