/*
 * fp_decimal.c -- unit tests for src/fhirpath/decimal.c: parsing keeps the spelling,
 * arithmetic is exact, rounding and boundaries follow the FHIRPath suite, overflow is
 * reported instead of wrapping.
 */
#include <stdlib.h>

#include "base/err.h"
#include "fhirpath/decimal.h"
#include "tap.h"
#include "testrand.h"

static fp_dec D(const char *s)
{
    fp_dec d;
    if (fp_dec_parse(s, strlen(s), &d) != 0) {
        printf("# bad test literal %s\n", s);
        exit(2);
    }
    return d;
}

static const char *S(fp_dec d)
{
    static char ring[8][FP_DEC_TEXT_MAX];
    static int k;
    char *dst = ring[k++ & 7];
    fp_dec_format(d, dst, FP_DEC_TEXT_MAX);
    return dst;
}

typedef int (*binop)(fp_dec, fp_dec, fp_dec *);

/* Result text of a op b, or "empty"/"toobig"/"invalid". */
static const char *B(binop f, const char *a, const char *b)
{
    fp_dec r;
    int rc = f(D(a), D(b), &r);
    if (rc == FP_EMPTY)
        return "empty";
    if (rc == ERR_TOOBIG)
        return "toobig";
    if (rc != 0)
        return "error";
    return S(r);
}

static const char *LB(const char *a, int p)
{
    fp_dec r;
    int rc = fp_dec_low_boundary(D(a), p, &r);
    return rc == FP_EMPTY ? "empty" : rc ? "error" : S(r);
}

static const char *HB(const char *a, int p)
{
    fp_dec r;
    int rc = fp_dec_high_boundary(D(a), p, &r);
    return rc == FP_EMPTY ? "empty" : rc ? "error" : S(r);
}

static void test_parse_format(void)
{
    const char *keep[] = {"1.50",
                          "0",
                          "-7",
                          "0.00000001",
                          "120",
                          "-0.5",
                          "1234567890987654321.0",
                          "99999999999999999999999999999999999999"};
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
        is_str(S(D(keep[i])), keep[i], "round trip %s", keep[i]);
    is_str(S(D("+1.5")), "1.5", "leading plus accepted in FHIRPath form");
    is_str(S(D("007.50")), "7.50", "leading zeros dropped, trailing kept");
    is_int(fp_dec_precision(D("1.58700")), 5, "precision() counts written fractional digits");

    fp_dec d;
    const char *bad[] = {"", ".5", "5.", "1e5", "1 ", "--1", "1.2.3", "abc", "+"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        is_int(fp_dec_parse(bad[i], strlen(bad[i]), &d), ERR_INVALID, "reject '%s'", bad[i]);
    is_int(fp_dec_parse("100000000000000000000000000000000000000", 39, &d), ERR_TOOBIG,
           "10^38 does not fit");

    is_int(fp_dec_parse_json("1.5e2", 5, &d), 0, "json exponent");
    is_str(S(d), "150", "1.5e2 = 150");
    fp_dec_parse_json("15e-3", 5, &d);
    is_str(S(d), "0.015", "15e-3 = 0.015");
    fp_dec_parse_json("1.50E+1", 7, &d);
    is_str(S(d), "15.0", "1.50E+1 keeps one fractional digit");
    is_int(fp_dec_parse_json("+1", 2, &d), ERR_INVALID, "json has no leading plus");
    is_int(fp_dec_parse_json("1e400", 5, &d), ERR_TOOBIG, "huge exponent overflows");
    is_int(fp_dec_parse_json("1e-400", 6, &d), 0, "tiny exponent rounds to zero");
    ok(d.coef == 0, "1e-400 is zero at the kept precision");
    is_int(fp_dec_parse("0.123456789012345678901234567890123", 35, &d), 0, "long fraction");
    is_int(d.scale, FP_DEC_MAX_SCALE, "rounded to the maximum scale");
    is_str(S(d), "0.1234567890123456789012345679", "rounded half up at digit 28");

    is_str(S(fp_dec_from_i64(-42)), "-42", "from integer");
    fp_dec_from_double(0.1, &d);
    is_str(S(d), "0.1", "double 0.1 prints as 0.1");
    fp_dec_from_double(9.0, &d);
    is_str(S(d), "9", "double 9.0 is integral");
    int64_t i64;
    is_int(fp_dec_to_i64(D("-12.9"), &i64), 0, "to i64");
    is_int(i64, -12, "truncated toward zero");
    is_int(fp_dec_to_i64(D("99999999999999999999"), &i64), ERR_TOOBIG, "i64 overflow");
    ok(fp_dec_is_integral(D("3.000")) && !fp_dec_is_integral(D("3.001")), "is_integral");
    is_str(S(fp_dec_normalize(D("1.500"))), "1.5", "normalize");
    fp_dec_rescale(D("1.5"), 4, &d);
    is_str(S(d), "1.5000", "rescale pads");
    fp_dec_rescale(D("1.25"), 1, &d);
    is_str(S(d), "1.3", "rescale rounds half away from zero");
    fp_dec_rescale(D("-1.25"), 1, &d);
    is_str(S(d), "-1.3", "rescale rounds negative away from zero");
    is_int(fp_dec_rescale(D("9999999999999999999999999999999999999"), 5, &d), ERR_TOOBIG,
           "rescale overflow detected");
    is_str(S(D("-0.001")), "-0.001", "small negative formats with leading zero");
}

static void test_compare(void)
{
    ok(fp_dec_eq(D("1.0"), D("1")), "1.0 = 1");
    ok(fp_dec_eq(D("1.10"), D("1.1")), "1.10 = 1.1");
    ok(fp_dec_eq(D("0.0"), D("0")), "0.0 = 0");
    ok(!fp_dec_eq(D("1.1"), D("1.2")), "1.1 != 1.2");
    is_int(fp_dec_cmp(D("1.0"), D("1.2")), -1, "1.0 < 1.2");
    is_int(fp_dec_cmp(D("-1"), D("-1.5")), 1, "-1 > -1.5");
    is_int(fp_dec_cmp(D("0.0000000000000000000000000001"), D("0")), 1, "tiny positive > 0");
    is_int(fp_dec_cmp(D("12345678901234567890123456789012345678"), D("1.5")), 1,
           "long vs scaled compare (needs 256-bit alignment)");
    fp_dec third;
    fp_dec_div(D("1.2"), D("1.8"), &third);
    ok(fp_dec_equiv(third, D("0.67")), "1.2 / 1.8 ~ 0.67");
    ok(!fp_dec_equiv(third, D("0.6")), "1.2 / 1.8 !~ 0.6");
    ok(fp_dec_equiv(D("1.10"), D("1.1")), "1.10 ~ 1.1");
    ok(!fp_dec_equiv(D("1.1"), D("1.2")), "1.1 !~ 1.2");
}

static void test_arith(void)
{
    is_str(B(fp_dec_add, "1.2", "1.8"), "3.0", "1.2 + 1.8 = 3.0");
    is_str(B(fp_dec_sub, "1.8", "1.2"), "0.6", "1.8 - 1.2 = 0.6");
    is_str(B(fp_dec_sub, "1", "1.25"), "-0.25", "1 - 1.25");
    is_str(B(fp_dec_mul, "1.2", "1.8"), "2.16", "1.2 * 1.8 = 2.16");
    is_str(B(fp_dec_mul, "-2.0", "3"), "-6.0", "sign of product");
    is_str(B(fp_dec_div, "1", "2"), "0.5", "1 / 2 = 0.5");
    is_str(B(fp_dec_div, "4.0", "2.0"), "2.0", "4.0 / 2.0 = 2.0");
    is_str(B(fp_dec_div, "4", "2"), "2", "4 / 2 = 2");
    is_str(B(fp_dec_div, "1", "3"), "0.3333333333333333333333333333", "1 / 3 at 28 digits");
    is_str(B(fp_dec_div, "2", "3"), "0.6666666666666666666666666667", "2 / 3 rounds up");
    is_str(B(fp_dec_div, "-1", "8"), "-0.125", "-1 / 8 exact");
    is_str(B(fp_dec_div, "1", "0"), "empty", "1 / 0 is empty");
    is_str(B(fp_dec_div, "1", "0.000"), "empty", "1 / 0.000 is empty");
    is_str(B(fp_dec_div, "10000000000000000000000000000000000000", "3"),
           "3333333333333333333333333333333333333.3", "quotient keeps 38 digits");
    is_str(B(fp_dec_div, "10000000000000000000000000000000000000", "0.01"), "toobig",
           "quotient overflow");
    is_str(B(fp_dec_idiv, "5", "2"), "2", "5 div 2 = 2");
    is_str(B(fp_dec_idiv, "-5", "2"), "-2", "-5 div 2 = -2 (truncated)");
    is_str(B(fp_dec_idiv, "2.2", "1.8"), "1", "2.2 div 1.8 = 1");
    is_str(B(fp_dec_idiv, "5", "0"), "empty", "5 div 0 is empty");
    is_str(B(fp_dec_mod, "5", "2"), "1", "5 mod 2 = 1");
    is_str(B(fp_dec_mod, "-5", "2"), "-1", "-5 mod 2 = -1");
    is_str(B(fp_dec_mod, "2.2", "1.8"), "0.4", "2.2 mod 1.8 = 0.4");
    is_str(B(fp_dec_mod, "5", "0"), "empty", "5 mod 0 is empty");

    /* Overflow: reported, not wrapped (UBSan would flag a wrap). */
    const char *big = "99999999999999999999999999999999999999";
    is_str(B(fp_dec_add, big, "1"), "toobig", "add overflow");
    is_str(B(fp_dec_sub, "-99999999999999999999999999999999999999", "1"), "toobig", "sub overflow");
    is_str(B(fp_dec_mul, big, big), "toobig", "mul overflow");
    is_str(B(fp_dec_add, "9999999999999999999999999999999999999.9", "0.1"),
           "10000000000000000000000000000000000000", "add loses a fractional digit to fit");
    /* Products of long fractions round instead of overflowing. */
    fp_dec third, sq;
    fp_dec_div(D("1"), D("3"), &third);
    is_int(fp_dec_mul(third, third, &sq), 0, "(1/3)^2 computes");
    is_str(S(sq), "0.1111111111111111111111111111", "(1/3)^2 rounded to 28 digits");

    is_str(S(fp_dec_neg(D("1.5"))), "-1.5", "negate");
    is_str(S(fp_dec_abs(D("-5.5"))), "5.5", "abs");
}

static void test_functions(void)
{
    fp_dec r;
    fp_dec_round(D("3.14159"), 3, &r);
    is_str(S(r), "3.142", "3.14159.round(3)");
    fp_dec_round(D("2.5"), 0, &r);
    is_str(S(r), "3", "2.5.round() = 3");
    fp_dec_round(D("-2.5"), 0, &r);
    is_str(S(r), "-3", "(-2.5).round() = -3");
    fp_dec_round(D("1"), 2, &r);
    is_str(S(r), "1", "round of an integer is itself");
    is_int(fp_dec_round(D("1"), -1, &r), ERR_INVALID, "negative digits is an error");
    fp_dec_div(D("1.2"), D("1.8"), &r);
    fp_dec_round(r, 2, &r);
    ok(fp_dec_eq(r, D("0.67")), "(1.2 / 1.8).round(2) = 0.67");
    is_str(S(fp_dec_truncate(D("-1.56"))), "-1", "truncate toward zero");
    is_str(S(fp_dec_truncate(D("1.00000001"))), "1", "truncate small fraction");
    is_str(S(fp_dec_floor(D("-2.1"))), "-3", "floor(-2.1)");
    is_str(S(fp_dec_floor(D("2.1"))), "2", "floor(2.1)");
    is_str(S(fp_dec_floor(D("-2.0"))), "-2", "floor(-2.0)");
    is_str(S(fp_dec_ceiling(D("-1.1"))), "-1", "ceiling(-1.1)");
    is_str(S(fp_dec_ceiling(D("1.1"))), "2", "ceiling(1.1)");

    is_int(fp_dec_sqrt(D("81"), &r), 0, "sqrt(81)");
    ok(fp_dec_eq(r, D("9.0")), "sqrt(81) = 9.0");
    is_int(fp_dec_sqrt(D("-1"), &r), FP_EMPTY, "sqrt(-1) is empty");
    fp_dec_exp(D("0"), &r);
    ok(fp_dec_eq(r, D("1")), "exp(0) = 1");
    is_int(fp_dec_exp(D("100000"), &r), FP_EMPTY, "exp overflow is empty");
    fp_dec_ln(D("1.0"), &r);
    ok(fp_dec_eq(r, D("0")), "ln(1) = 0");
    is_int(fp_dec_ln(D("0"), &r), FP_EMPTY, "ln(0) empty");
    fp_dec_log(D("16"), D("2"), &r);
    ok(fp_dec_eq(r, D("4")), "16.log(2) = 4");
    fp_dec_log(D("100.0"), D("10.0"), &r);
    ok(fp_dec_eq(r, D("2")), "100.0.log(10.0) = 2");
    is_int(fp_dec_log(D("5"), D("1"), &r), FP_EMPTY, "log base 1 empty");
    fp_dec_power(D("2"), D("3"), &r);
    is_str(S(r), "8", "2.power(3) exact");
    fp_dec_power(D("2.5"), D("2"), &r);
    is_str(S(r), "6.25", "2.5.power(2) exact");
    fp_dec_power(D("2"), D("-2"), &r);
    ok(fp_dec_eq(r, D("0.25")), "2.power(-2) = 0.25");
    is_int(fp_dec_power(D("-1"), D("0.5"), &r), FP_EMPTY, "(-1).power(0.5) empty");
    is_int(fp_dec_power(D("0"), D("-1"), &r), FP_EMPTY, "0.power(-1) empty");
    fp_dec_power(D("4"), D("0.5"), &r);
    ok(fp_dec_eq(r, D("2")), "4.power(0.5) = 2");
    is_int(fp_dec_power(D("10"), D("40"), &r), ERR_TOOBIG, "10^40 overflows");
}

static void test_boundaries(void)
{
    /* Cases of the official suite (LowBoundary*, HighBoundary*). */
    is_str(LB("1.587", 8), "1.58650000", "1.587.lowBoundary()");
    is_str(LB("1.587", 6), "1.586500", "lowBoundary(6)");
    is_str(LB("1.587", 2), "1.58", "lowBoundary(2)");
    is_str(LB("1.587", -1), "empty", "lowBoundary(-1)");
    is_str(LB("1.587", 0), "1", "lowBoundary(0)");
    is_str(LB("1.587", 32), "empty", "lowBoundary(32)");
    is_str(LB("-1.587", 8), "-1.58750000", "(-1.587).lowBoundary()");
    is_str(LB("-1.587", 2), "-1.59", "(-1.587).lowBoundary(2)");
    is_str(LB("-1.587", 0), "-2", "(-1.587).lowBoundary(0)");
    is_str(LB("1", 8), "0.50000000", "1.lowBoundary()");
    is_str(LB("1", 0), "0", "1.lowBoundary(0)");
    is_str(LB("12.587", 2), "12.58", "12.587.lowBoundary(2)");
    is_str(LB("12.500", 4), "12.4995", "12.500.lowBoundary(4)");
    is_str(LB("120", 2), "119.50", "120.lowBoundary(2)");
    is_str(LB("-120", 2), "-120.50", "(-120).lowBoundary(2)");
    is_str(LB("0.0034", 1), "0.0", "0.0034.lowBoundary(1)");
    is_str(LB("-0.0034", 1), "0.0", "(-0.0034).lowBoundary(1) is -0.0 = 0.0");
    is_str(HB("1.587", 8), "1.58750000", "1.587.highBoundary()");
    is_str(HB("1.587", 2), "1.59", "highBoundary(2)");
    is_str(HB("1.587", 39), "empty", "highBoundary(39)");
    is_str(HB("-1.587", 8), "-1.58650000", "(-1.587).highBoundary()");
    is_str(HB("-1.587", 2), "-1.58", "(-1.587).highBoundary(2)");
    is_str(HB("1", 8), "1.50000000", "1.highBoundary()");
    is_str(HB("1", 0), "2", "1.highBoundary(0)");
    is_str(HB("12.500", 4), "12.5005", "12.500.highBoundary(4)");
    is_str(HB("120", 2), "120.50", "120.highBoundary(2)");
    is_str(HB("0.0034", 1), "0.0", "0.0034.highBoundary(1)");
    fp_dec lo, hi, v = D("3.25");
    fp_dec_low_boundary(v, 8, &lo);
    fp_dec_high_boundary(v, 8, &hi);
    ok(fp_dec_cmp(lo, v) < 0 && fp_dec_cmp(v, hi) < 0, "low < value < high");
}

static void test_robust(void)
{
    /* Random text through the parser and every operation: ASan/UBSan watch for UB; the
     * checks here are the invariants that must hold for whatever parses. */
    char t1[64], t2[64];
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n1 = random_text(t1, sizeof t1, "0123456789999.-+eE");
        size_t n2 = random_text(t2, sizeof t2, "0123456789.-");
        fp_dec a, b, r;
        if (fp_dec_parse_json(t1, n1, &a) != 0 || fp_dec_parse(t2, n2, &b) != 0)
            continue;
        if (a.scale < 0 || a.scale > FP_DEC_MAX_SCALE)
            bad++;
        char text[FP_DEC_TEXT_MAX];
        size_t tn = fp_dec_format(a, text, sizeof text);
        fp_dec back;
        if (fp_dec_parse(text, tn, &back) != 0 || back.coef != a.coef || back.scale != a.scale)
            bad++;
        int rcs[] = {fp_dec_add(a, b, &r),
                     fp_dec_sub(a, b, &r),
                     fp_dec_mul(a, b, &r),
                     fp_dec_div(a, b, &r),
                     fp_dec_idiv(a, b, &r),
                     fp_dec_mod(a, b, &r),
                     fp_dec_power(a, b, &r),
                     fp_dec_low_boundary(a, (int)(rng() % 30), &r),
                     fp_dec_high_boundary(b, (int)(rng() % 30), &r)};
        for (size_t k = 0; k < sizeof rcs / sizeof *rcs; k++) {
            if (rcs[k] != 0 && rcs[k] != FP_EMPTY && rcs[k] != ERR_TOOBIG)
                bad++;
        }
        if (fp_dec_cmp(a, b) != -fp_dec_cmp(b, a))
            bad++;
    }
    is_int(bad, 0, "random inputs: round trips, return codes and antisymmetry hold");
}

int main(void)
{
    test_parse_format();
    test_compare();
    test_arith();
    test_functions();
    test_boundaries();
    test_robust();
    return tap_done();
}
