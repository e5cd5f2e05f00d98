/*
 * decimal.h -- exact base-10 numbers for FHIRPath (System.Decimal) and FHIR decimals.
 *
 * FHIR insists that a decimal keeps its spelling ("1.50" is not "1.5": the trailing zero
 * carries precision), and FHIRPath defines equivalence, precision() and the boundary
 * functions in terms of that spelling. A binary double can do neither, so a value is
 *
 *     value = coef * 10^-scale        coef: signed 128-bit, |coef| < 10^38
 *                                     scale: 0 .. FP_DEC_MAX_SCALE digits after the point
 *
 * "1.50" is {150, 2}, "-7" is {-7, 0}, "0.00000001" is {1, 8}. The struct is 32 bytes
 * and is passed and returned by value; nothing here allocates.
 *
 * Results and errors. Every operation that can fail returns an int:
 *     0            the result was written to *out
 *     FP_EMPTY     the FHIRPath result is the empty collection (1 / 0, sqrt(-1),
 *                  lowBoundary(-1), ...): not an error, *out is untouched
 *     ERR_TOOBIG   the result does not fit (more than 38 significant digits before the
 *                  FP_DEC_MAX_SCALE rounding can help): overflow is detected, never UB
 *     ERR_INVALID  malformed text (fp_dec_parse)
 * FP_EMPTY is shared with datetime.h and quantity.h.
 *
 * Rounding: results that need more than FP_DEC_MAX_SCALE fractional digits (products,
 * quotients) are rounded half away from zero to that many digits; round() uses the same
 * rule (FHIRPath "traditional round": 2.5 -> 3, -2.5 -> -3).
 */
#ifndef HORTUS_FP_DECIMAL_H
#define HORTUS_FP_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Returned (positive) when the FHIRPath result is the empty collection. */
#ifndef FP_EMPTY
#define FP_EMPTY 1
#endif

#define FP_DEC_MAX_SCALE 28       /* fractional digits kept at most */
#define FP_DEC_MAX_DIGITS 38      /* significant digits of the coefficient at most */
#define FP_DEC_MAX_PRECISION 28   /* largest precision accepted by low/highBoundary */
#define FP_DEC_DEFAULT_BOUNDARY 8 /* low/highBoundary() without an argument */
#define FP_DEC_TEXT_MAX 48        /* fp_dec_format never needs more bytes (incl. NUL) */

typedef struct fp_dec {
    __int128 coef; /* signed coefficient, |coef| < 10^38 */
    int32_t scale; /* digits after the decimal point, 0..FP_DEC_MAX_SCALE */
} fp_dec;

/* ---- construction and conversion ------------------------------------------------ */

/* Parse the FHIRPath / String form text[0..n): optional '+' or '-', digits, optional '.'
 * followed by digits ("1", "-0.50", "007.5"). The scale is the number of fractional
 * digits written ("1.50" -> scale 2). Rejects empty input, ".5", "5.", exponents, spaces
 * and anything else with ERR_INVALID (what toDecimal()/convertsToDecimal() need); values
 * that do not fit give ERR_TOOBIG (fractional digits past FP_DEC_MAX_SCALE are rounded). */
int fp_dec_parse(const char *text, size_t n, fp_dec *out);

/* As fp_dec_parse for JSON number text: no '+', but an exponent is allowed and applied
 * exactly ("1.5e2" -> 150, "15e-3" -> 0.015, "1.50E+1" -> 15.0: the scale is the
 * written fractional digits minus the exponent, never below 0). */
int fp_dec_parse_json(const char *text, size_t n, fp_dec *out);

/* The integer v with scale 0. Never fails. */
fp_dec fp_dec_from_i64(int64_t v);

/* Nearest decimal to d using at most 15 significant digits (what a double can carry),
 * trailing fractional zeros dropped (0.1 -> "0.1", 9.0 -> "9"). FP_EMPTY for NaN and
 * infinities (the FHIRPath result of e.g. ln(0)); ERR_TOOBIG when |d| >= 1e38. */
int fp_dec_from_double(double d, fp_dec *out);

/* Closest double (for the transcendental functions and for callers that index). */
double fp_dec_to_double(fp_dec a);

/* True when a has no fractional part by value (3.00 is integral). */
bool fp_dec_is_integral(fp_dec a);

/* The integral part (truncated toward zero) as an int64; ERR_TOOBIG if it does not fit.
 * Callers that need an exact integer check fp_dec_is_integral() first. */
int fp_dec_to_i64(fp_dec a, int64_t *out);

/* Canonical text: '-' when negative, no exponent, exactly `scale` fractional digits
 * ("1.50", "-0.001", "120"). Writes at most FP_DEC_TEXT_MAX bytes including the NUL into
 * dst (cap must be >= FP_DEC_TEXT_MAX) and returns the length without the NUL. */
size_t fp_dec_format(fp_dec a, char *dst, size_t cap);

/* Appends the canonical text to b (sticky-error buffer). */
void fp_dec_write(fp_dec a, buf *b);

/* Same value with trailing fractional zeros removed ("1.500" -> "1.5", "2.0" -> "2"). */
fp_dec fp_dec_normalize(fp_dec a);

/* Same value written with exactly `scale` fractional digits when that loses nothing,
 * else rounded half away from zero to that many digits (scale clamped to 0..MAX). */
int fp_dec_rescale(fp_dec a, int scale, fp_dec *out);

/* ---- comparison ------------------------------------------------------------------ */

/* -1, 0 or 1 by numeric value (1.0 and 1 compare equal). Never fails. */
int fp_dec_cmp(fp_dec a, fp_dec b);

/* FHIRPath '=' on decimals: numeric value equality (1.10 = 1.1, 0.0 = 0). */
bool fp_dec_eq(fp_dec a, fp_dec b);

/* FHIRPath '~' on decimals: both rounded (half away from zero) to the smaller of the two
 * scales, then compared: 1.2/1.8 (0.666..) ~ 0.67 is true, 1.1 ~ 1.2 is false. */
bool fp_dec_equiv(fp_dec a, fp_dec b);

/* ---- arithmetic (0, FP_EMPTY or ERR_TOOBIG; see the top of this file) -------------- */

int fp_dec_add(fp_dec a, fp_dec b, fp_dec *out); /* scale = max of the two */
int fp_dec_sub(fp_dec a, fp_dec b, fp_dec *out); /* scale = max of the two */
int fp_dec_mul(fp_dec a, fp_dec b, fp_dec *out); /* scale = sum, rounded to MAX_SCALE */
/* a / b. FP_EMPTY when b is zero. The quotient is exact when it terminates within
 * FP_DEC_MAX_SCALE digits, else rounded there (fewer digits when the integer part is so
 * large that 38 significant digits run out); trailing zeros are then removed down to the
 * larger operand scale: 1 / 2 -> 0.5, 4.0 / 2.0 -> 2.0, 1 / 3 -> 0.3333333333333333333333333333. */
int fp_dec_div(fp_dec a, fp_dec b, fp_dec *out);
/* FHIRPath 'div': the quotient truncated toward zero, scale 0. FP_EMPTY when b is 0. */
int fp_dec_idiv(fp_dec a, fp_dec b, fp_dec *out);
/* FHIRPath 'mod': a - b * (a div b), sign of a; scale = max. FP_EMPTY when b is 0.
 * 2.2 mod 1.8 = 0.4, -5 mod 2 = -1. */
int fp_dec_mod(fp_dec a, fp_dec b, fp_dec *out);
fp_dec fp_dec_neg(fp_dec a); /* never fails: |coef| < 10^38 is symmetric */
fp_dec fp_dec_abs(fp_dec a);

/* ---- FHIRPath math functions ----------------------------------------------------- */

/* round(digits): half away from zero to `digits` fractional places (0 for round()).
 * digits < 0 -> ERR_INVALID (the spec calls that an error). 3.14159.round(3) = 3.142. */
int fp_dec_round(fp_dec a, int digits, fp_dec *out);
fp_dec fp_dec_truncate(fp_dec a); /* toward zero, scale 0 */
fp_dec fp_dec_floor(fp_dec a);    /* toward -inf, scale 0 */
fp_dec fp_dec_ceiling(fp_dec a);  /* toward +inf, scale 0 */

/* Computed in double and converted with fp_dec_from_double, except where an exact
 * answer is cheap (sqrt of a perfect square, integral powers). FP_EMPTY where the
 * result is not a real number: sqrt(-1), ln(0), ln(-1), log(x, 1), (-1).power(0.5). */
int fp_dec_sqrt(fp_dec a, fp_dec *out);
int fp_dec_exp(fp_dec a, fp_dec *out);
int fp_dec_ln(fp_dec a, fp_dec *out);
int fp_dec_log(fp_dec a, fp_dec base, fp_dec *out);
/* a^b. Exact (decimal multiplication) when b is an integer with |b| <= 1000 and the
 * result fits; a negative integral b divides. Else double. 0^negative -> FP_EMPTY. */
int fp_dec_power(fp_dec a, fp_dec b, fp_dec *out);

/* ---- precision and boundaries ---------------------------------------------------- */

/* precision(): the number of fractional digits written (1.58700 -> 5, 7 -> 0). */
int fp_dec_precision(fp_dec a);

/* lowBoundary(precision) / highBoundary(precision): the least / greatest value the
 * spelled number could stand for (it is +-half a unit of its last digit), written with
 * exactly `precision` fractional digits. precision < 0 or > FP_DEC_MAX_PRECISION ->
 * FP_EMPTY. Callers pass FP_DEC_DEFAULT_BOUNDARY when no argument was given.
 *   1.587.lowBoundary(8) = 1.58650000   1.587.highBoundary(2) = 1.59
 *   (-1.587).lowBoundary(0) = -2         120.lowBoundary(2) = 119.50
 * Integers use the same functions with scale 0 (1.highBoundary(0) = 2). */
int fp_dec_low_boundary(fp_dec a, int precision, fp_dec *out);
int fp_dec_high_boundary(fp_dec a, int precision, fp_dec *out);

#endif
