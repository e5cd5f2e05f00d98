/*
 * fp_quantity.c -- unit tests for src/fhirpath/quantity.c and ucum.c: UCUM parsing and
 * conversion, calendar-duration rules, arithmetic with unit algebra, the FHIR-origin
 * quantity mapping, date arithmetic with quantities and the canonical form.
 */
#include <stdlib.h>

#include "base/err.h"
#include "fhirpath/quantity.h"
#include "fhirpath/ucum.h"
#include "tap.h"
#include "testrand.h"

/* "1.5 'mg'" or "3 days" -> quantity; the unit part after the number. */
static fp_qty Q(const char *s)
{
    fp_qty q;
    if (fp_qty_parse(s, strlen(s), &q) != 0) {
        printf("# bad test quantity %s\n", s);
        exit(2);
    }
    return q;
}

static fp_qty FHIR(const char *value, const char *code)
{
    fp_dec v;
    fp_qty q;
    fp_dec_parse(value, strlen(value), &v);
    if (fp_qty_from_fhir(v, code, strlen(code), &q) != 0) {
        printf("# bad FHIR quantity %s %s\n", value, code);
        exit(2);
    }
    return q;
}

static const char *S(const fp_qty *q)
{
    static char ring[8][128];
    static int k;
    char *dst = ring[k++ & 7];
    buf b = BUF_INIT;
    fp_qty_write(q, &b);
    snprintf(dst, 128, "%s", buf_cstr(&b));
    buf_free(&b);
    return dst;
}

static const char *EQ2(fp_qty a, fp_qty b)
{
    bool r;
    int rc = fp_qty_eq(&a, &b, &r);
    return rc == FP_EMPTY ? "empty" : rc ? "error" : r ? "true" : "false";
}

static const char *EQ(const char *a, const char *b)
{
    return EQ2(Q(a), Q(b));
}

static const char *CMP(const char *a, const char *b)
{
    fp_qty x = Q(a), y = Q(b);
    int c;
    int rc = fp_qty_cmp(&x, &y, &c);
    return rc == FP_EMPTY ? "empty" : rc ? "error" : c < 0 ? "-1" : c > 0 ? "1" : "0";
}

typedef int (*qop)(const fp_qty *, const fp_qty *, fp_qty *);

static const char *OP2(qop f, fp_qty a, fp_qty b)
{
    fp_qty r;
    int rc = f(&a, &b, &r);
    return rc == FP_EMPTY ? "empty" : rc == ERR_INVALID ? "invalid" : rc ? "error" : S(&r);
}

static const char *OP(qop f, const char *a, const char *b)
{
    return OP2(f, Q(a), Q(b));
}

static const char *CONV2(fp_qty a, const char *unit)
{
    fp_qty r;
    int rc = fp_qty_convert(&a, unit, strlen(unit), &r);
    return rc == FP_EMPTY ? "empty" : rc ? "error" : S(&r);
}

static const char *CANON(const char *a)
{
    fp_qty q = Q(a), r;
    int rc = fp_qty_canonical(&q, &r);
    return rc ? "error" : S(&r);
}

static void test_ucum(void)
{
    const char *good[] = {"mg",        "mg/dL",       "mmol/L",    "kg/m2",    "mm[Hg]",
                          "cm[H2O]",   "[lb_av]",     "[oz_av]",   "[in_i]",   "[ft_i]",
                          "Cel",       "[degF]",      "K",         "kPa",      "bar",
                          "U/L",       "[iU]/mL",     "m[iU]/mL",  "%",        "{beats}/min",
                          "/min",      "10*3/uL",     "10*9/L",    "1",        "mL/(min.1.73.m2)",
                          "g.m-1.s-2", "ug/(kg.h)",   "[gal_us]",  "meq/L",    "mosm/kg",
                          "{score}",   "a",           "mo",        "wk",       "ms",
                          "m/s2",      "cm3",         "kcal",      "[psi]",    "kat",
                          "deg",       "{RBC}/[HPF]", "mg/(24.h)", "u[iU]/mL", "mL/min/{1.73_m2}",
                          "10^3"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        ok(fp_ucum_valid(good[i], strlen(good[i])), "UCUM parses '%s'", good[i]);
    const char *bad[] = {"xyz", "mg/", "m[Hg", "kCel", "Cel2", "Cel/h", "(m",
                         "m)",  "m g", "{x",   "10*-", "kmin", "0",     "mg//L"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ok(!fp_ucum_valid(bad[i], strlen(bad[i])), "UCUM rejects '%s'", bad[i]);

    fp_ucum a, b;
    fp_ucum_parse("mg/dL", 5, &a);
    fp_ucum_parse("g/L", 3, &b);
    ok(fp_ucum_commensurable(&a, &b), "mg/dL and g/L are commensurable");
    fp_dec v = {100, 0}, r;
    fp_ucum_convert(v, &a, &b, &r);
    fp_dec want = {1, 0};
    ok(fp_dec_eq(r, want), "100 mg/dL = 1 g/L");
    fp_ucum_parse("mmol/L", 6, &b);
    ok(!fp_ucum_commensurable(&a, &b), "mg/dL and mmol/L are not (no molar mass)");
    fp_ucum_parse("g/kg", 4, &a);
    ok(fp_ucum_dimensionless(&a), "g/kg is dimensionless");
    fp_ucum_parse("Cel", 3, &a);
    ok(!fp_ucum_dimensionless(&a), "Cel is not");
    char text[FP_UCUM_UNIT_MAX];
    fp_ucum_parse("kPa", 3, &a);
    fp_ucum_canonical_text(&a, text, sizeof text);
    is_str(text, "g.m-1.s-2", "canonical text of kPa");
    fp_ucum_parse("/min", 4, &a);
    fp_ucum_canonical_text(&a, text, sizeof text);
    is_str(text, "1/s", "canonical text of /min");
    fp_ucum_parse("m/s2", 4, &a);
    fp_ucum_canonical_text(&a, text, sizeof text);
    is_str(text, "m/s2", "canonical text of m/s2");
    int c;
    fp_ucum_parse("[psi]", 5, &a);
    fp_ucum_parse("kPa", 3, &b);
    fp_dec one = {1, 0}, k689 = {689475, 5};
    fp_ucum_cmp(one, &a, k689, &b, &c);
    is_int(c, 1, "1 psi > 6.89475 kPa");
    fp_dec k6895 = {689476, 5};
    fp_ucum_cmp(one, &a, k6895, &b, &c);
    is_int(c, -1, "1 psi < 6.89476 kPa");
    fp_ucum first, again;
    fp_ucum_parse("mg/dL", 5, &first);
    for (int i = 0; i < 100; i++) /* push other units through the per-thread memo */
        fp_ucum_parse(good[i % (sizeof good / sizeof *good)],
                      strlen(good[i % (sizeof good / sizeof *good)]), &again);
    fp_ucum_parse("mg/dL", 5, &again);
    ok(memcmp(first.dim, again.dim, sizeof first.dim) == 0 && first.num.mant == again.num.mant &&
           first.num.exp == again.num.exp && first.den.mant == again.den.mant,
       "a memoised parse gives the same unit");
    /* arbitrary units are commensurable only with themselves */
    fp_ucum_parse("10*6.[CFU]/L", 12, &a);
    fp_ucum_parse("[CFU]/mL", 8, &b);
    ok(fp_ucum_commensurable(&a, &b), "[CFU] per volume commensurable with itself");
    fp_ucum_canonical_text(&a, text, sizeof text);
    is_str(text, "[CFU]/m3", "canonical text names the arbitrary unit");
    fp_ucum_parse("[PFU]/mL", 8, &b);
    ok(!fp_ucum_commensurable(&a, &b), "[CFU] and [PFU] are not commensurable");
    fp_ucum_parse("[arb'U]", 7, &b);
    ok(!fp_ucum_dimensionless(&b) && !fp_ucum_commensurable(&b, &(fp_ucum){.num = {1, 0}}),
       "[arb'U] is not a number");
    ok(fp_ucum_parse("[CFU].[PFU]", 11, &b) == ERR_INVALID, "mixing two arbitrary units");
    ok(fp_ucum_parse("[CFU]/[CFU]", 11, &b) == 0 && fp_ucum_dimensionless(&b),
       "an arbitrary unit over itself is a number");
    fp_ucum_parse("10*", 3, &b);
    ok(b.num.mant == 1 && b.num.exp == 1, "10* alone is ten");
    fp_ucum_parse("'", 1, &a);
    fp_ucum_parse("''", 2, &b);
    fp_dec sixty = {60, 0}, ang;
    fp_ucum_convert(sixty, &b, &a, &ang);
    ok(fp_dec_eq(ang, (fp_dec){1, 0}), "60 seconds of arc are one minute of arc");
    ok(fp_ucum_parse("m1000000", 8, &a) != 0, "absurd exponent rejected");
    ok(fp_ucum_parse("((((((((((((((((((m))))))))))))))))))", 38, &a) == ERR_TOOBIG,
       "nesting limit");
}

static void test_make_print(void)
{
    fp_qty q = Q("1.5 'mg'");
    is_str(S(&q), "1.5 'mg'", "print UCUM quantity");
    q = Q("3 days");
    ok(q.flags & FP_QTY_CALENDAR, "days is calendar");
    is_str(q.unit, "day", "stored singular");
    is_str(S(&q), "3 days", "printed plural");
    q = Q("1 week");
    is_str(S(&q), "1 week", "printed singular for 1");
    q = Q("-1 week");
    is_str(S(&q), "-1 week", "and for -1");
    q = Q("1.0 year");
    is_str(S(&q), "1.0 year", "1.0 is one by value");
    q = Q("1 'wk'");
    is_str(S(&q), "1 'wk'", "wk stays UCUM");
    q = Q("1 'month'");
    ok(q.flags & FP_QTY_CALENDAR, "quoted calendar word is calendar");
    q = Q("1");
    is_str(S(&q), "1 '1'", "plain number has unit 1");
    q = Q("1.0");
    is_str(S(&q), "1.0 '1'", "decimal string keeps scale");
    fp_qty r;
    is_int(fp_qty_parse("1.a", 3, &r), ERR_INVALID, "'1.a' does not convert");
    is_int(fp_qty_parse("1 'foo'", 7, &r), ERR_INVALID, "unknown unit does not convert");
    is_int(fp_qty_parse("1 fortnights", 12, &r), ERR_INVALID, "unknown word");
    is_int(fp_qty_parse("1'mg'", 5, &r), ERR_INVALID, "space required");
    is_int(fp_qty_parse("", 0, &r), ERR_INVALID, "empty");
    is_str(fp_qty_ucum_code(&(fp_qty){.unit = "year", .flags = FP_QTY_CALENDAR}), "a",
           "calendar year as UCUM code");
    fp_dec v = {5, 0};
    char longu[80];
    memset(longu, 'm', sizeof longu);
    is_int(fp_qty_make(v, longu, sizeof longu, &r), ERR_TOOBIG, "unit too long");
    is_int(fp_qty_from_fhir(v, "days", 4, &r), ERR_INVALID, "FHIR code must be UCUM");
    is_int(fp_qty_from_fhir(v, NULL, 0, &r), 0, "FHIR quantity without code");
    is_str(r.unit, "1", "... is unitless");
}

static void test_compare(void)
{
    is_str(EQ("4.0000 'g'", "4000.0 'mg'"), "true", "4.0000 'g' = 4000.0 'mg'");
    is_str(EQ("4 'g'", "4040 'mg'"), "false", "4 'g' != 4040 'mg'");
    fp_qty a = Q("4 'g'"), b = Q("4040 'mg'");
    ok(fp_qty_equiv(&a, &b), "4 'g' ~ 4040 'mg'");
    a = Q("4 'g'"), b = Q("4000 'mg'");
    ok(fp_qty_equiv(&a, &b), "4 'g' ~ 4000 'mg'");
    a = Q("4.00 'g'"), b = Q("4040 'mg'");
    ok(!fp_qty_equiv(&a, &b), "4.00 'g' !~ 4040 'mg'");
    a = Q("185 '[lb_av]'"), b = Q("84 'kg'");
    ok(fp_qty_equiv(&a, &b), "185 lb ~ 84 kg (at the precision of 84 kg)");
    ok(fp_qty_equiv(&b, &a), "equivalence is symmetric");
    b = Q("83 'kg'");
    ok(!fp_qty_equiv(&a, &b), "185 lb !~ 83 kg");
    a = Q("1 year"), b = Q("12 months");
    ok(fp_qty_equiv(&a, &b), "1 year ~ 12 months");
    a = Q("37.0 'Cel'"), b = Q("310.16 'K'");
    ok(fp_qty_equiv(&a, &b), "37.0 Cel ~ 310.16 K");
    is_str(EQ("7 days", "1 week"), "true", "7 days = 1 week");
    is_str(EQ("7 days", "1 'wk'"), "true", "7 days = 1 'wk'");
    is_str(CMP("6 days", "1 week"), "-1", "6 days < 1 week");
    is_str(CMP("8 days", "1 week"), "1", "8 days > 1 week");
    is_str(EQ("1 year", "1 'a'"), "empty", "1 year = 1 'a' is empty");
    is_str(EQ("1 'mo'", "1 month"), "empty", "1 'mo' = 1 month is empty");
    a = Q("1 year"), b = Q("1 'a'");
    ok(fp_qty_equiv(&a, &b), "1 year ~ 1 'a'");
    is_str(EQ("1 year", "12 months"), "true", "1 year = 12 months");
    is_str(EQ("1 year", "365 days"), "empty", "year vs days not comparable");
    is_str(EQ("1 'd'", "24 'h'"), "true", "1 'd' = 24 'h'");
    is_str(EQ("1 'cm'", "1 's'"), "empty", "cm vs s not comparable");
    a = Q("1 'cm'"), b = Q("1 '[in_i]'");
    ok(fp_qty_comparable(&a, &b), "cm comparable with [in_i]");
    b = Q("1 's'");
    ok(!fp_qty_comparable(&a, &b), "cm not comparable with s");
    ok(!fp_qty_equiv(&a, &b), "cm !~ s");
    is_str(CMP("1 '[in_i]'", "2.54 'cm'"), "0", "1 inch = 2.54 cm exactly");
    is_str(CMP("1 '[lb_av]'", "453.59237 'g'"), "0", "1 lb = 453.59237 g exactly");
    is_str(CMP("37 'Cel'", "310.15 'K'"), "0", "37 Cel = 310.15 K");
    is_str(CMP("98.6 '[degF]'", "37 'Cel'"), "0", "98.6 degF = 37 Cel");
    is_str(CMP("100 'mg/dL'", "1 'g/L'"), "0", "100 mg/dL = 1 g/L");
    is_str(CMP("120 'mm[Hg]'", "15.99864 'kPa'"), "0", "120 mmHg = 15.99864 kPa");
    is_str(CMP("1 'U/L'", "1 'kat/L'"), "-1", "U smaller than kat");
    is_str(CMP("50 '%'", "0.5 '1'"), "0", "50 %% = 0.5");
    is_str(CMP("1 '[gal_br]'", "8 '[pt_br]'"), "0", "8 imperial pints make a gallon");
    is_str(CMP("1 '[lb_tr]'", "12 '[oz_tr]'"), "0", "12 troy ounces make a troy pound");
    is_str(CMP("1 '[ston_av]'", "2000 '[lb_av]'"), "0", "short ton");
    is_str(CMP("1 '[cft_i]'", "1728 '[cin_i]'"), "0", "cubic foot");
    is_str(CMP("1 '[foz_us]'", "8 '[fdr_us]'"), "0", "US fluid dram");
    is_str(CMP("1 '[fdr_us]'", "60 '[min_us]'"), "0", "US minim");
    is_str(CMP("3 '[Ch]'", "1 'mm'"), "0", "3 French = 1 mm");
    is_str(CMP("1 'cP'", "1 'mPa.s'"), "0", "centipoise");
    is_str(CMP("1 'g%'", "1 'g/dL'"), "0", "gram percent");
    is_str(CMP("1 'cal_IT'", "4.1868 'J'"), "0", "IT calorie");
    is_str(CMP("1 '[lbf_av]'", "4.4482216152605 'N'"), "0", "pound force");
    is_str(CMP("1 '[MET]'", "3.5 'mL/min/kg'"), "0", "metabolic equivalent");
    is_str(CMP("10 'G'", "1 'mT'"), "0", "gauss and tesla");
    is_str(CMP("2 '[CFU]/mL'", "2000 '[CFU]/L'"), "0", "colony forming units per volume");
    is_str(CMP("2 '[CFU]/mL'", "2 '[PFU]/mL'"), "empty", "different arbitrary units");
    is_str(CMP("7.4 '[pH]'", "7.35 '[pH]'"), "1", "pH against pH");
    is_str(CMP("7.4 '[pH]'", "7.4 '1'"), "empty", "pH is not a plain number");
    is_str(CMP("1 'h'", "60 'min'"), "0", "1 h = 60 min");
    is_str(CMP("3 'mL/(min.m2)'", "3 'mL/min/m2'"), "0",
           "parenthesised and chained division agree");
    is_str(CMP("3 'mL/min/{1.73_m2}'", "3 'mL/min'"), "0", "annotations carry no factor");
    is_str(CMP("1 'm/2.s'", "1 'm.s/2'"), "0", "'.' and '/' are left-associative");
}

static void test_arith(void)
{
    fp_qty r;
    fp_qty a = Q("2.0 'cm'"), b = Q("2.0 'm'");
    is_int(fp_qty_mul(&a, &b, &r), 0, "cm * m");
    is_str(EQ2(r, Q("0.040 'm2'")), "true", "2.0 'cm' * 2.0 'm' = 0.040 'm2'");
    is_str(r.unit, "m2", "product unit is canonical m2");
    a = Q("4.0 'g'"), b = Q("2.0 'm'");
    fp_qty_div(&a, &b, &r);
    is_str(EQ2(r, Q("2 'g/m'")), "true", "4.0 'g' / 2.0 'm' = 2 'g/m'");
    a = Q("1.0 'm'"), b = Q("1.0 'm'");
    fp_qty_div(&a, &b, &r);
    is_str(EQ2(r, Q("1 '1'")), "true", "1.0 'm' / 1.0 'm' = 1 '1'");
    is_str(r.unit, "1", "quotient of same units is unitless");
    is_str(OP(fp_qty_div, "185 'mo'", "185 'mo'"), "1 '1'", "185 'mo' / 185 'mo'");
    is_str(OP(fp_qty_mul, "2 '1'", "3 'mg'"), "6 'mg'", "unitless * mg keeps mg");
    is_str(OP(fp_qty_mul, "3 'mg'", "2 '%'"), "0.06 'mg'", "mg * %% folds the percent");
    is_str(OP(fp_qty_div, "1 'mg'", "0 '1'"), "empty", "division by zero is empty");
    is_str(OP(fp_qty_mul, "1 'Cel'", "2 'm'"), "invalid", "Cel does not combine");

    is_str(OP(fp_qty_add, "1 'g'", "500 'mg'"), "1.500 'g'", "1 g + 500 mg");
    is_str(OP(fp_qty_sub, "1 'g'", "500 'mg'"), "0.500 'g'", "1 g - 500 mg");
    is_str(OP(fp_qty_add, "1 'g'", "1 'm'"), "empty", "g + m not comparable");
    is_str(OP(fp_qty_add, "1 year", "1 'a'"), "empty", "year + 'a' undefined");
    is_str(OP(fp_qty_add, "1 year", "6 months"), "1.5 years", "year + months");
    is_str(OP(fp_qty_add, "1 week", "1 'd'"), "1.1428571428571428571428571429 weeks",
           "week + day in weeks");
    is_str(OP(fp_qty_add, "1 'Cel'", "1 'K'"), "invalid", "temperatures do not add");

    fp_qty x = Q("-5.5 'mg'");
    fp_qty y = fp_qty_abs(&x);
    is_str(S(&y), "5.5 'mg'", "abs keeps unit");
    y = fp_qty_neg(&x);
    is_str(S(&y), "5.5 'mg'", "neg");
    fp_dec two = {2, 0};
    fp_qty_scale(&x, two, &y);
    is_str(S(&y), "-11.0 'mg'", "scale by number");
    fp_dec zero = {0, 0};
    is_int(fp_qty_div_number(&x, zero, &y), FP_EMPTY, "divide by number zero");

    fp_qty_low_boundary(&(fp_qty){.value = {1587, 3}, .unit = "cm"}, 8, &y);
    is_str(S(&y), "1.58650000 'cm'", "1.587 'cm'.lowBoundary(8)");
    fp_qty_high_boundary(&(fp_qty){.value = {1587, 3}, .unit = "m"}, 8, &y);
    is_str(S(&y), "1.58750000 'm'", "1.587 'm'.highBoundary(8)");
}

static void test_convert(void)
{
    is_str(CONV2(Q("1 'kg'"), "g"), "1000 'g'", "kg to g");
    is_str(CONV2(Q("84 'kg'"), "[lb_av]"), "185.1883002352971678072979931298 '[lb_av]'",
           "kg to lb");
    is_str(CONV2(Q("37 'Cel'"), "[degF]"), "98.60 '[degF]'", "Cel to degF");
    is_str(CONV2(Q("1 'kg'"), "m"), "empty", "kg to m");
    is_str(CONV2(Q("1 day"), "h"), "24 'h'", "calendar day to UCUM h");
    is_str(CONV2(Q("1 year"), "month"), "12 months", "calendar year to months");
    is_str(CONV2(Q("1 year"), "d"), "empty", "calendar year has no days");
    is_str(CONV2(Q("1 'a'"), "year"), "empty", "plain 'a' is no calendar year");
    is_str(CONV2(Q("2 'wk'"), "days"), "14 days", "wk to calendar days");
    is_str(CONV2(Q("1.5 'mg'"), "foo"), "empty", "unknown target unit");
}

static void test_fhir_origin(void)
{
    fp_qty a = FHIR("2", "a");
    ok(a.flags & FP_QTY_FHIR, "FHIR 'a' is dual");
    is_str(EQ2(a, Q("2 years")), "true", "FHIR 2 'a' = 2 years");
    is_str(EQ2(a, Q("2 'a'")), "true", "FHIR 2 'a' = 2 'a'");
    fp_qty b = Q("2 'a'");
    ok(fp_qty_equiv(&a, &b), "FHIR 2 'a' ~ 2 'a'");
    is_str(EQ2(FHIR("3", "min"), Q("3 minutes")), "true", "FHIR 3 'min' = 3 minutes");
    fp_qty y = FHIR("1", "a");
    is_str(OP2(fp_qty_add, y, Q("1 'a'")), "2 'a'", "FHIR 'a' + 'a' is plain 'a'");
    fp_qty r;
    fp_qty q1 = Q("1 'a'");
    fp_qty_add(&y, &q1, &r);
    ok(!(r.flags & FP_QTY_FHIR), "sum loses the FHIR mapping");
    is_int(fp_qty_date_unit(&r), FP_DTU_NONE, "so it cannot be added to a date");
    is_str(OP2(fp_qty_add, y, Q("1 year")), "2 years", "FHIR 'a' + year is calendar");
    is_str(CONV2(y, "year"), "1 year", "toQuantity('year')");
    is_str(CONV2(y, "month"), "12 months", "toQuantity('month')");
    is_str(CONV2(y, "mo"), "12 'mo'", "toQuantity('mo')");
    is_str(CONV2(y, "a"), "1 'a'", "toQuantity('a')");
    fp_dec two = {2, 0};
    fp_qty_div_number(&y, two, &r);
    ok(r.flags & FP_QTY_FHIR, "dividing by a number keeps the mapping");
    is_str(CONV2(r, "month"), "6.0 months", "(1 'a' / 2).toQuantity('month')");
    fp_qty g = Q("2000 'g/kg'");
    fp_qty_mul(&y, &g, &r);
    ok((r.flags & FP_QTY_FHIR) && fp_qty_date_unit(&r) == FP_DTU_YEAR,
       "times a dimensionless quantity keeps the mapping");
    fp_qty_mul(&g, &y, &r);
    ok((r.flags & FP_QTY_FHIR), "also in reverse order");
    fp_qty mo = FHIR("185", "mo");
    b = Q("2 years");
    ok(fp_qty_comparable(&mo, &b), "FHIR 'mo' comparable with years");
    is_str(OP2(fp_qty_div, FHIR("1", "a"), Q("1 'a'")), "1 '1'", "FHIR 'a' / 'a'");
}

static void test_dates(void)
{
    fp_dt d, r;
    fp_dt_parse_literal("1973-12-25", 10, &d);
    char out[FP_DT_TEXT_MAX];
    fp_qty q = Q("1 'd'");
    is_int(fp_qty_add_to_dt(d, 1, &q, &r), 0, "date + 1 'd'");
    fp_dt_format(r, out, sizeof out);
    is_str(out, "1973-12-26", "1973-12-25 + 1 'd'");
    q = Q("1 'wk'");
    fp_qty_add_to_dt(d, 1, &q, &r);
    fp_dt_format(r, out, sizeof out);
    is_str(out, "1974-01-01", "+ 1 'wk'");
    q = Q("1 'mo'");
    is_int(fp_qty_add_to_dt(d, 1, &q, &r), ERR_INVALID, "+ 1 'mo' is an error");
    q = Q("1 'a'");
    is_int(fp_qty_add_to_dt(d, 1, &q, &r), ERR_INVALID, "+ 1 'a' is an error");
    q = Q("1 'cm'");
    is_int(fp_qty_add_to_dt(d, -1, &q, &r), ERR_INVALID, "- 1 'cm' is an error");
    q = Q("1 'month'");
    fp_dt_parse_literal("1974-12-25", 10, &d);
    fp_qty_add_to_dt(d, -1, &q, &r);
    fp_dt_format(r, out, sizeof out);
    is_str(out, "1974-11-25", "- 1 'month'");
    q = FHIR("1", "a");
    fp_dt_parse_literal("2025", 4, &d);
    fp_qty_add_to_dt(d, 1, &q, &r);
    fp_dt_format(r, out, sizeof out);
    is_str(out, "2026", "@2025 + FHIR 1 'a'");
}

static void test_unknown_unit(void)
{
    fp_qty odd = {.value = {1, 0}, .unit = "[s]"}, cm = Q("1 'cm'"), r;
    bool eq;
    int c;
    ok(!fp_qty_comparable(&cm, &odd), "unknown unit is not comparable");
    is_int(fp_qty_cmp(&cm, &odd, &c), FP_EMPTY, "cmp with unknown unit is empty");
    ok(fp_qty_eq(&odd, &odd, &eq) == 0 && eq, "but equal to the same unit text");
    is_int(fp_qty_add(&odd, &odd, &r), 0, "and adds to it");
    is_str(S(&r), "2 '[s]'", "keeping the unit");
    ok(!fp_qty_equiv(&cm, &odd), "not equivalent");
    is_int(fp_qty_add(&cm, &odd, &r), FP_EMPTY, "add is empty");
    is_int(fp_qty_mul(&odd, &cm, &r), FP_EMPTY, "mul is empty");
    is_int(fp_qty_div(&cm, &odd, &r), FP_EMPTY, "div is empty");
    is_int(fp_qty_convert(&odd, "cm", 2, &r), FP_EMPTY, "convert is empty");
    is_int(fp_qty_canonical(&odd, &r), ERR_INVALID, "no canonical form");
    is_int(fp_qty_date_unit(&odd), FP_DTU_NONE, "no date unit");
    is_str(S(&odd), "1 '[s]'", "prints as written");
    fp_qty raw;
    is_int(fp_qty_make_raw((fp_dec){1, 0}, "[s]", 3, &raw), 0, "make_raw keeps an unknown unit");
    ok(strcmp(raw.unit, "[s]") == 0 && raw.flags == 0, "... as written, without flags");
    is_int(fp_qty_make_raw((fp_dec){1, 0}, "days", 4, &raw), 0, "make_raw knows calendar words");
    ok(raw.flags == FP_QTY_CALENDAR, "... and flags them");
    char longu[80];
    memset(longu, 'x', sizeof longu);
    is_int(fp_qty_make_raw((fp_dec){1, 0}, longu, sizeof longu, &raw), ERR_TOOBIG,
           "make_raw still bounds the length");
}

static void test_canonical(void)
{
    is_str(CANON("5 'mg/dL'"), "50 'g/m3'", "mg/dL canonical");
    is_str(CANON("1 '[lb_av]'"), "453.59237 'g'", "lb canonical");
    is_str(CANON("37 'Cel'"), "310.15 'K'", "Cel canonical");
    is_str(CANON("1 year"), "31557600 's'", "calendar year canonical");
    is_str(CANON("120 'mm[Hg]'"), "15998640 'g.m-1.s-2'", "mmHg canonical");
    is_str(CANON("2 'mmol/L'"), "2 'mol/m3'", "mmol/L canonical");
    is_str(CANON("3 '{beats}/min'"), "0.05 '1/s'", "beats per minute canonical");
    is_str(CANON("1.5 '10*3/uL'"), "1500000000000.0 '1/m3'", "cell count canonical");
    fp_qty a = Q("1000 'mg'"), b = Q("1 'g'"), ca, cb;
    fp_qty_canonical(&a, &ca);
    fp_qty_canonical(&b, &cb);
    ok(strcmp(ca.unit, cb.unit) == 0 && fp_dec_eq(ca.value, cb.value),
       "equal amounts have equal canonical forms");
}

static void test_robust(void)
{
    char t[48];
    int bad = 0, parsed = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n = random_text(t, sizeof t, "mgLkd/.()[]{}_0123-+%HgiUaos*^Celx");
        fp_ucum u;
        int rc = fp_ucum_parse(t, n, &u);
        if (rc != 0 && rc != ERR_INVALID && rc != ERR_TOOBIG)
            bad++;
        if (rc != 0)
            continue;
        parsed++;
        fp_qty q, c, r;
        fp_dec v = fp_dec_from_i64((int64_t)(rng() % 1000));
        if (fp_qty_make(v, t, n, &q) != 0)
            continue;
        if (fp_qty_canonical(&q, &c) == 0) {
            /* The canonical unit is itself UCUM and maps to the same dimensions. */
            fp_ucum cu;
            if (fp_ucum_parse(c.unit, strlen(c.unit), &cu) != 0 || !fp_ucum_commensurable(&u, &cu))
                bad++;
        }
        fp_qty g = Q("2 'g'");
        rc = fp_qty_mul(&q, &g, &r);
        if (rc != 0 && rc != ERR_INVALID && rc != ERR_TOOBIG && rc != FP_EMPTY)
            bad++;
    }
    ok(parsed > 50, "the random loop parsed %d units", parsed);

    /* Random pairs of real units: ordering is antisymmetric, = agrees with the ordering,
     * and (a + b) - b gives a back whenever b converts exactly into a's unit. */
    static const char *units[] = {"mg",     "g",   "kg",     "[lb_av]", "mg/dL",  "g/L",
                                  "mmol/L", "Cel", "K",      "[degF]",  "mm[Hg]", "kPa",
                                  "h",      "min", "d",      "wk",      "a",      "mo",
                                  "%",      "1",   "[in_i]", "cm",      "m",      "[CFU]/mL"};
    static const char *words[] = {"year", "month", "week", "day", "hour", "second"};
    int nu = (int)(sizeof units / sizeof *units), nw = (int)(sizeof words / sizeof *words);
    int pairs = 0, roundtrips = 0, bad2 = 0;
    for (int i = 0; i < 20000; i++) {
        fp_qty x, y, sum, back;
        fp_dec vx = {(int64_t)(rng() % 100000), (int32_t)(rng() % 4)};
        fp_dec vy = {(int64_t)(rng() % 100000), (int32_t)(rng() % 4)};
        int kx = (int)(rng() % (uint32_t)(nu + nw)), ky = (int)(rng() % (uint32_t)(nu + nw));
        const char *ux = kx < nu ? units[kx] : words[kx - nu];
        const char *uy = ky < nu ? units[ky] : words[ky - nu];
        if (fp_qty_make(vx, ux, strlen(ux), &x) != 0 || fp_qty_make(vy, uy, strlen(uy), &y) != 0) {
            bad2++;
            continue;
        }
        int c1, c2;
        bool e;
        int r1 = fp_qty_cmp(&x, &y, &c1), r2 = fp_qty_cmp(&y, &x, &c2);
        if (r1 != r2 || (r1 == 0 && c1 != -c2))
            bad2++;
        if (fp_qty_eq(&x, &y, &e) != r1 || (r1 == 0 && e != (c1 == 0)))
            bad2++;
        if (fp_qty_comparable(&x, &y) != (r1 == 0))
            bad2++;
        if (r1 != 0)
            continue;
        pairs++;
        if (fp_qty_add(&x, &y, &sum) == 0 && fp_qty_sub(&sum, &y, &back) == 0) {
            fp_ucum ua, ub;
            fp_dec one = {1, 0}, conv;
            /* exact when one unit of y is a terminating decimal in x's unit */
            if (!(x.flags & FP_QTY_CALENDAR) && !(y.flags & FP_QTY_CALENDAR) &&
                fp_ucum_parse(x.unit, strlen(x.unit), &ua) == 0 &&
                fp_ucum_parse(y.unit, strlen(y.unit), &ub) == 0 && ua.den.mant == 1 &&
                ub.den.mant == 1 && fp_ucum_convert(one, &ub, &ua, &conv) == 0 && conv.scale < 20) {
                roundtrips++;
                if (!fp_dec_eq(back.value, x.value))
                    bad2++;
            }
        }
    }
    ok(pairs > 1000 && roundtrips > 100, "random unit pairs: %d comparable, %d round trips", pairs,
       roundtrips);
    is_int(bad2, 0, "ordering, equality and add/sub agree on random unit pairs");
    is_int(bad, 0, "random units: defined codes, canonical units re-parse");
}

int main(void)
{
    test_ucum();
    test_make_print();
    test_compare();
    test_arith();
    test_convert();
    test_fhir_origin();
    test_dates();
    test_canonical();
    test_unknown_unit();
    test_robust();
    return tap_done();
}
