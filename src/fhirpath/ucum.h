/*
 * ucum.h -- the part of UCUM (Unified Code for Units of Measure) that clinical data uses.
 *
 * A unit expression is parsed into a dimension vector and an exact conversion factor to
 * canonical base units:
 *
 *     "mg/dL"   ->  dims  g^1 m^-3           factor 10^-3 / 10^-4 = 10 (i.e. 1 mg/dL = 10 g/m3)
 *     "[lb_av]" ->  dims  g^1                factor 453.59237
 *     "Cel"     ->  dims  K^1                factor 1, offset 273.15 (special unit)
 *
 * Grammar (UCUM section 2): term = ['/'] component { ('.' | '/') component }, left to
 * right; component = annotatable [annotation] | annotation | '(' term ')' | integer;
 * annotatable = [prefix] atom [exponent]; exponent = ['+'|'-'] digits;
 * annotation = '{' text '}' (ignored: '{beats}/min' is '/min'); '1' and '10*3' style
 * factors are numbers. Metric atoms take the SI prefixes (Y..y plus da, Ki.. not needed).
 *
 * Base dimensions follow UCUM (m, s, g, rad, K, C, cd) with two deliberate additions that
 * keep clinical results sane: mol is its own base (UCUM makes it the number 6.02e23, which
 * would make mmol/L comparable with counts per volume and overflow exact arithmetic), and
 * international units ([iU], [IU]) are a base of their own (arbitrary units convert to
 * nothing else). Every other arbitrary unit ([arb'U], [CFU], [PFU], [APL'U], ...) is its own
 * base too: it is commensurable only with itself (10*6.[CFU]/L with [CFU]/mL). Canonical
 * output therefore uses these base atoms: m s g rad K C cd mol [iU] and the arbitrary
 * unit's own code.
 *
 * Factors are kept as exact rationals of decimal numbers (mantissa * 10^exp over
 * mantissa * 10^exp) so that 4.0000 'g' = 4000.0 'mg' and [psi] conversions are exact.
 * Nothing here allocates; parsed units are small structs. fp_ucum_parse keeps a small
 * per-thread (_Thread_local) memo of recently parsed texts, so repeated units cost a hash
 * lookup; it holds copies, never pointers into the caller's text.
 */
#ifndef HORTUS_FP_UCUM_H
#define HORTUS_FP_UCUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fhirpath/decimal.h"

enum {
    FP_UCUM_M,   /* length: metre */
    FP_UCUM_S,   /* time: second */
    FP_UCUM_G,   /* mass: gram */
    FP_UCUM_RAD, /* plane angle */
    FP_UCUM_K,   /* temperature: kelvin */
    FP_UCUM_C,   /* electric charge: coulomb */
    FP_UCUM_CD,  /* luminous intensity: candela */
    FP_UCUM_MOL, /* amount of substance (a base here, see above) */
    FP_UCUM_IU,  /* international unit (arbitrary) */
    FP_UCUM_ARB, /* one other arbitrary unit ([arb'U], [CFU], ...): which one is in .arb */
    FP_UCUM_NDIM
};

#define FP_UCUM_UNIT_MAX 64 /* longest canonical unit text written, incl. NUL */

/* An exact positive number mant * 10^exp. */
typedef struct fp_ucum_num {
    __int128 mant;
    int32_t exp;
} fp_ucum_num;

typedef struct fp_ucum {
    int8_t dim[FP_UCUM_NDIM];
    fp_ucum_num num; /* value_in_canonical = value * num / den (+ offset for specials) */
    fp_ucum_num den;
    uint8_t special; /* 0, or FP_UCUM_CEL / FP_UCUM_DEGF: offset scales, which may only
                        stand alone (no prefix, exponent or combination) */
    uint8_t arb;     /* which arbitrary unit dim[FP_UCUM_ARB] counts (an atom number), 0 when
                        none; a unit mixing two different arbitrary units is rejected */
} fp_ucum;

enum { FP_UCUM_CEL = 1, FP_UCUM_DEGF = 2 };

/* Parse text[0..n) (n == 0 or "1" = dimensionless unity). 0, or ERR_INVALID for syntax
 * errors and unknown atoms, ERR_TOOBIG when the factor overflows exact arithmetic. */
int fp_ucum_parse(const char *text, size_t n, fp_ucum *out);

/* True when text[0..n) parses. */
bool fp_ucum_valid(const char *text, size_t n);

/* True when both have the same dimension vector (and the same arbitrary unit, if any);
 * temperatures K, Cel and [degF] all convert into each other. */
bool fp_ucum_commensurable(const fp_ucum *a, const fp_ucum *b);

/* True when every dimension is 0 and the unit is not special ('1', '%', 'g/kg', '{beats}'). */
bool fp_ucum_dimensionless(const fp_ucum *u);

/* value (in unit u) expressed in canonical base units; temperatures become kelvin.
 * ERR_TOOBIG on overflow. */
int fp_ucum_to_canonical(fp_dec value, const fp_ucum *u, fp_dec *out);

/* canonical value expressed in unit u (the inverse of fp_ucum_to_canonical). */
int fp_ucum_from_canonical(fp_dec canon, const fp_ucum *u, fp_dec *out);

/* value in unit `from` expressed in unit `to` (commensurable units only, else
 * ERR_INVALID). Exact when the factor ratio terminates within FP_DEC_MAX_SCALE digits. */
int fp_ucum_convert(fp_dec value, const fp_ucum *from, const fp_ucum *to, fp_dec *out);

/* Exact comparison of a (in unit ua) with b (in unit ub), commensurable units:
 * -1/0/1 in *out. Falls back to 28-digit canonical values if exact products overflow. */
int fp_ucum_cmp(fp_dec a, const fp_ucum *ua, fp_dec b, const fp_ucum *ub, int *out);

/* The canonical unit text of u's dimensions: base atoms in the enum order, positive
 * exponents joined by '.', then one '/' atom or negative exponents: "g", "m2", "g/m",
 * "m/s2", "g.m-1.s-2", "1/s", "1" for none. dst holds FP_UCUM_UNIT_MAX bytes; returns
 * the length. Temperatures give "K". */
size_t fp_ucum_canonical_text(const fp_ucum *u, char *dst, size_t cap);

/* The product / quotient of two parsed units (dims added / subtracted, factors
 * multiplied / divided). ERR_INVALID if either is special, ERR_TOOBIG on overflow. */
int fp_ucum_mul(const fp_ucum *a, const fp_ucum *b, fp_ucum *out);
int fp_ucum_div(const fp_ucum *a, const fp_ucum *b, fp_ucum *out);

#endif
