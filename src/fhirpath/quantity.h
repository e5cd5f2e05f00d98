/*
 * quantity.h -- FHIRPath System.Quantity: an exact decimal with a unit.
 *
 * The unit is either a UCUM code (written 'mg', 'mm[Hg]', 'kg/m2', '1', ...) or one of the
 * FHIRPath calendar duration words (year, month, week, day, hour, minute, second,
 * millisecond, singular or plural). The two families differ in exactly one way the spec
 * cares about: a calendar year or month has no fixed length, so
 *
 *     1 year = 1 'a'     -> false   (but 1 year ~ 1 'a' -> true)
 *     1 week = 1 'wk'    -> true    (week and smaller are definite durations)
 *
 * and only calendar units (plus the definite UCUM ones 'wk' 'd' 'h' 'min' 's' 'ms') can
 * be added to dates. A FHIR Quantity element read from a resource (valueQuantity with a
 * UCUM time code) carries FP_QTY_FHIR: its 'a'/'mo'/'wk'/... then also behave as the
 * matching calendar word (equal to `1 year`, usable in date arithmetic), and that flag
 * survives multiplication/division by dimensionless numbers but not + or - (the
 * fhirpath.js "FHIR-origin quantity" rules the conformance suite checks).
 *
 * Units are converted through UCUM (ucum.h) to canonical base units for comparison,
 * addition and subtraction; multiplication and division combine units.
 *
 * Layout: the unit text lives inside the struct (no pointers, nothing to free), so a
 * quantity is a ~80-byte value type. The unit is stored as given for UCUM units and as
 * the singular word for calendar units (FP_QTY_CALENDAR set).
 *
 * A quantity whose unit text UCUM does not parse (built by hand by the engine for a
 * literal like 1 '[s]') is accepted by every function here: it compares with and adds to
 * quantities of the identical unit text only, multiplies with nothing (FP_EMPTY / false
 * otherwise), prints as written, and has no canonical form (ERR_INVALID).
 *
 * Return codes as in decimal.h: 0, FP_EMPTY (the FHIRPath result is empty, e.g. comparing
 * 'cm' with 's', or dividing by zero), ERR_INVALID (malformed, or an operation the spec
 * calls an error), ERR_TOOBIG (overflow, or a unit longer than FP_QTY_UNIT_MAX - 1).
 */
#ifndef HORTUS_FP_QUANTITY_H
#define HORTUS_FP_QUANTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "fhirpath/datetime.h"
#include "fhirpath/decimal.h"

#define FP_QTY_UNIT_MAX 48 /* bytes of unit text including the NUL */

enum fp_qty_flags {
    FP_QTY_CALENDAR = 1, /* unit is a calendar word: "year", "month", ... (singular) */
    FP_QTY_FHIR = 2,     /* came from a FHIR Quantity element with a UCUM time code */
};

typedef struct fp_qty {
    fp_dec value;
    char unit[FP_QTY_UNIT_MAX]; /* NUL-terminated; "1" for a unitless quantity */
    uint8_t flags;              /* enum fp_qty_flags */
} fp_qty;

/* ---- construction ------------------------------------------------------------------ */

/* value with a unit written unit[0..n) (the text between the quotes of a literal, or the
 * bare word): a calendar word (singular or plural; the suite writes both `1 month` and
 * `1 'month'`) sets FP_QTY_CALENDAR and stores the singular; anything else is stored as
 * a UCUM code after checking that ucum.h can parse it (ERR_INVALID if not). n == 0 means
 * '1'.
 * ERR_TOOBIG when the unit does not fit. */
int fp_qty_make(fp_dec value, const char *unit, size_t n, fp_qty *out);

/* As fp_qty_make, but a unit text UCUM does not know is kept as written instead of being
 * rejected (the FHIRPath literal 1 '[s]' is a quantity, just not comparable with others).
 * Calendar words are still recognised. ERR_TOOBIG when the unit does not fit. */
int fp_qty_make_raw(fp_dec value, const char *unit, size_t n, fp_qty *out);

/* The FHIR Quantity element mapping (value + code, system, comparator already checked by
 * the caller): code from system http://unitsofmeasure.org; a UCUM time code (a, mo, wk,
 * d, h, min, s, ms) gives a quantity with FP_QTY_FHIR set. code NULL -> '1'. */
int fp_qty_from_fhir(fp_dec value, const char *code, size_t n, fp_qty *out);

/* Parse the string form used by toQuantity()/convertsToQuantity() on a String:
 * "<number>" (unit '1'), "<number> '<ucum>'" or "<number> <calendar word>", single
 * spaces or more between. ERR_INVALID when it does not convert. */
int fp_qty_parse(const char *text, size_t n, fp_qty *out);

/* ---- output -------------------------------------------------------------------------- */

/* FHIRPath literal text: "1.5 'mg'", "3 days", "1 week", "1 '1'". Calendar words are
 * plural unless the value is 1 or -1 (by value: 1.0 prints "1.0 year"). */
void fp_qty_write(const fp_qty *q, buf *b);

/* The unit as FHIR JSON wants it in a Quantity's "code"/"unit": UCUM code as written, or
 * for a calendar word its UCUM code (year -> "a", month -> "mo", week -> "wk", day -> "d",
 * hour -> "h", minute -> "min", second -> "s", millisecond -> "ms"). Static or inside q:
 * valid as long as q is. */
const char *fp_qty_ucum_code(const fp_qty *q);

/* ---- comparison -------------------------------------------------------------------------- */

/* True when a and b can be compared (their units convert into each other). */
bool fp_qty_comparable(const fp_qty *a, const fp_qty *b);

/* Ordering after conversion to canonical units. 0 with *out = -1/0/1; FP_EMPTY when the
 * units are not comparable, or when one is a calendar year/month and the other a UCUM
 * 'a'/'mo' (no defined order between them). */
int fp_qty_cmp(const fp_qty *a, const fp_qty *b, int *out);

/* '=': 0 with *out set, or FP_EMPTY when not comparable. Calendar year/month vs UCUM
 * 'a'/'mo' -> FP_EMPTY (unless the UCUM side carries FP_QTY_FHIR, which makes it equal
 * to the calendar word). Calendar week..millisecond equal their UCUM units.
 * 4.0000 'g' = 4000.0 'mg' -> true, 7 days = 1 week -> true. */
int fp_qty_eq(const fp_qty *a, const fp_qty *b, bool *out);

/* '~': values converted to canonical units, then compared at the precision of the less
 * precise one (fp_dec_equiv): 4 'g' ~ 4040 'mg' -> true. Calendar and UCUM year/month are
 * equivalent. Not comparable -> false. */
bool fp_qty_equiv(const fp_qty *a, const fp_qty *b);

/* ---- arithmetic ------------------------------------------------------------------------ */

/* a + b, a - b: b is converted to a's unit; the result has a's unit (and flags minus
 * FP_QTY_FHIR). FP_EMPTY when not comparable (or calendar year/month vs 'a'/'mo'). */
int fp_qty_add(const fp_qty *a, const fp_qty *b, fp_qty *out);
int fp_qty_sub(const fp_qty *a, const fp_qty *b, fp_qty *out);

/* a * b, a / b. When one side is dimensionless (unit '1', or e.g. 'g/kg' which is
 * 0.001 '1') its value folds into the other side, which keeps its unit and flags
 * (2 * 1 'a'[FHIR] stays 2 'a'[FHIR]). Otherwise both are reduced to canonical units and
 * the result unit is the product/quotient in canonical form:
 *   2.0 'cm' * 2.0 'm' = 0.0400 'm2'     4.0 'g' / 2.0 'm' = 2 'g/m'     1 'm' / 1 'm' = 1 '1'
 * Division by zero or an unknown unit -> FP_EMPTY. Units that cannot combine (Cel, [degF])
 * -> ERR_INVALID. */
int fp_qty_mul(const fp_qty *a, const fp_qty *b, fp_qty *out);
int fp_qty_div(const fp_qty *a, const fp_qty *b, fp_qty *out);

/* Quantity times / divided by a plain number (decimal or integer), unit and flags kept. */
int fp_qty_scale(const fp_qty *a, fp_dec factor, fp_qty *out);
int fp_qty_div_number(const fp_qty *a, fp_dec divisor, fp_qty *out);

fp_qty fp_qty_neg(const fp_qty *a);
fp_qty fp_qty_abs(const fp_qty *a);

/* toQuantity(unit): a converted to unit[0..n) (UCUM code or calendar word). Calendar
 * year <-> month convert by 12 (and so do FHIR-origin 'a'/'mo'); calendar year/month do
 * not convert to other time units (FP_EMPTY). FP_EMPTY when not convertible. */
int fp_qty_convert(const fp_qty *a, const char *unit, size_t n, fp_qty *out);

/* The calendar unit a quantity stands for in date arithmetic: calendar words, the
 * definite UCUM units 'wk' 'd' 'h' 'min' 's' 'ms', and with FP_QTY_FHIR also 'a'/'mo'.
 * FP_DTU_NONE for anything else ('a', 'mo' without FHIR origin, 'cm', ...): the caller
 * reports that as an error, as the spec requires. */
enum fp_dt_unit fp_qty_date_unit(const fp_qty *q);

/* Date arithmetic: v + q or v - q (sign +1/-1), per fp_dt_add. ERR_INVALID when q has no
 * date unit (see fp_qty_date_unit). */
int fp_qty_add_to_dt(fp_dt v, int sign, const fp_qty *q, fp_dt *out);

/* lowBoundary/highBoundary of the value, unit kept (1.587 'cm'.lowBoundary(8) =
 * 1.58650000 'cm'). precision() of a quantity is that of its value. */
int fp_qty_low_boundary(const fp_qty *a, int precision, fp_qty *out);
int fp_qty_high_boundary(const fp_qty *a, int precision, fp_qty *out);

/* ---- canonical form (search indexing) ----------------------------------------------------- */

/* The value in UCUM canonical base units and the canonical unit text (see
 * fp_ucum_canonical_text): 5 'mg/dL' -> 50 'g/m3'; 1 '[lb_av]' -> 453.59237 'g';
 * 37 'Cel' -> 310.15 'K'; 2 'mmol/L' -> 2 'mol/m3'; calendar words use their UCUM definite
 * durations (1 year -> 31557600 's'). Commensurable units always give byte-identical unit
 * text, so (unit, value) can be indexed and compared numerically. The value keeps the
 * fractional digits the conversion produced (1.5 '10*3/uL' -> 1500000000000.0 '1/m3'):
 * compare values with fp_dec_cmp, not as text. ERR_INVALID when ucum.h does not know the
 * unit; ERR_TOOBIG when the canonical text does not fit FP_QTY_UNIT_MAX. */
int fp_qty_canonical(const fp_qty *a, fp_qty *out);

#endif
