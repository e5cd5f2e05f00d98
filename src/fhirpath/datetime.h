/*
 * datetime.h -- FHIRPath Date, DateTime and Time values with partial precision.
 *
 * One small struct holds all three kinds. A value remembers how much was written
 * (its precision) and whether a timezone offset was given, because FHIRPath compares
 * partial values field by field and answers "unknown" (empty) when the shorter one
 * runs out first:
 *
 *     @2012-04-15  =  @2012-04-15T10:00:00   -> empty   (day vs second precision)
 *     @2012-04-15T15:30:31 = @2012-04-15T15:30:31.0  -> true  (seconds and ms are one
 *                                                       precision for comparison)
 *
 *   kind      fields that may be set (in order of precision)
 *   DATE      year [month [day]]
 *   DATETIME  year [month [day [hour [minute [second [millisecond]]]]]] [+ offset]
 *   TIME      hour [minute [second [millisecond]]]
 *
 * Fields below the precision are 0 (month/day are 1). Offsets are minutes east of UTC.
 * Nothing here allocates; the struct is 16 bytes and is passed by value.
 *
 * Return codes as in decimal.h: 0, FP_EMPTY (result is the empty collection),
 * ERR_INVALID (malformed text, or an operation the spec calls an error, such as adding
 * 1 'mo' to a date), ERR_TOOBIG (year outside 1..9999 after arithmetic).
 */
#ifndef HORTUS_FP_DATETIME_H
#define HORTUS_FP_DATETIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "fhirpath/decimal.h"

enum fp_dt_kind { FP_DT_DATE = 1, FP_DT_DATETIME = 2, FP_DT_TIME = 3 };

/* Precision levels, coarsest first; a value's prec is the finest field written. */
enum fp_dt_prec {
    FP_DT_YEAR = 1,
    FP_DT_MONTH,
    FP_DT_DAY,
    FP_DT_HOUR,
    FP_DT_MINUTE,
    FP_DT_SECOND,
    FP_DT_MS,
};

#define FP_DT_TEXT_MAX 40 /* fp_dt_format never needs more bytes (incl. NUL) */

typedef struct fp_dt {
    int16_t year;      /* 1..9999 (0 for TIME) */
    uint8_t month;     /* 1..12 */
    uint8_t day;       /* 1..31 */
    uint8_t hour;      /* 0..23 */
    uint8_t minute;    /* 0..59 */
    uint8_t second;    /* 0..59 */
    uint8_t kind;      /* enum fp_dt_kind */
    uint16_t ms;       /* 0..999 */
    int16_t tz_min;    /* offset east of UTC in minutes, when has_tz */
    uint8_t prec;      /* enum fp_dt_prec */
    uint8_t has_tz;    /* 1 when an offset (or Z) was written: DATETIME only */
    uint8_t ms_digits; /* fractional-second digits as written (0 = none); output
                          always uses 3 when prec == FP_DT_MS */
    uint8_t pad_;
} fp_dt;

/* ---- parsing ---------------------------------------------------------------------- */

/* A FHIRPath literal without its '@' (the lexer strips it), text[0..n):
 *   "2012", "2012-04", "2012-04-15"                         -> DATE
 *   "2012T", "2012-04-15T", "2012-04-15T10", "...T10:00:00.000+02:00", "...Z" -> DATETIME
 *   "T14", "T14:30", "T14:30:15.5"                          -> TIME (no offset allowed)
 * Fractional seconds may have 1..9 digits; they are kept to milliseconds (truncated).
 * Month/day/hour ranges and the day-of-month are checked. ERR_INVALID otherwise. */
int fp_dt_parse_literal(const char *text, size_t n, fp_dt *out);

/* A FHIR JSON value (element type date, dateTime or instant): "2012", "2012-04-15",
 * "2012-04-15T10:00:00+02:00" (FHIR requires an offset on times; hortus accepts one
 * missing). Gives DATE for date-only text and DATETIME otherwise. ERR_INVALID if not. */
int fp_dt_parse_fhir(const char *text, size_t n, fp_dt *out);

/* A FHIR JSON time ("14:30:00", "14:30:00.5"; FHIRPath also allows "14" and "14:30").
 * Gives TIME. ERR_INVALID if not. */
int fp_dt_parse_time(const char *text, size_t n, fp_dt *out);

/* String-to-value conversions of toDate()/toDateTime()/toTime() and convertsTo*():
 * the same grammar as FHIR JSON, with kind fixed by the target: a date string given to
 * toDateTime() becomes a DATETIME of day precision; toDate() of a dateTime string keeps
 * only the date. ERR_INVALID when the text does not convert. */
int fp_dt_from_string(const char *text, size_t n, enum fp_dt_kind want, fp_dt *out);

/* ---- output ------------------------------------------------------------------------ */

/* FHIR text without '@': "2012-04", "2012-04-15T10:00:00.000+02:00", "14:30" (no 'T'
 * prefix for TIME), "Z" for offset 0 with has_tz. DATETIME of hour precision prints
 * "2012-04-15T10" (FHIRPath form). Seconds print as "SS" for SECOND and "SS.mmm" for MS.
 * dst must hold FP_DT_TEXT_MAX bytes; returns the length without the NUL. */
size_t fp_dt_format(fp_dt v, char *dst, size_t cap);
void fp_dt_write(fp_dt v, buf *b);

/* ---- conversion -------------------------------------------------------------------- */

/* DATE -> DATETIME of the same precision, no offset (FHIRPath's implicit conversion
 * when a Date meets a DateTime). Other kinds are returned unchanged. */
fp_dt fp_dt_to_datetime(fp_dt v);

/* ---- comparison -------------------------------------------------------------------- */

/* Ordering per FHIRPath: both DATETIME with offsets -> compared as instants in UTC;
 * one DATE and one DATETIME -> the DATE is converted first; one with an offset and one
 * without -> the offset-less one may be anywhere from -12:00 to +14:00, decided only if
 * that whole range is before or after the other; otherwise fields from the year down are
 * compared, second and millisecond together. Writes -1/0/1 to *out and returns 0, or
 * returns FP_EMPTY when the answer depends on fields one side lacks. A TIME against a
 * DATE or DATETIME returns ERR_INVALID (not comparable). */
int fp_dt_cmp(fp_dt a, fp_dt b, int *out);

/* '=': 0 with *out true/false, or FP_EMPTY (different precision, equal so far).
 * Different kinds (TIME vs DATE) are simply unequal (*out = false). */
int fp_dt_eq(fp_dt a, fp_dt b, bool *out);

/* '~': never empty: different precision -> false; otherwise as '='. */
bool fp_dt_equiv(fp_dt a, fp_dt b);

/* ---- arithmetic -------------------------------------------------------------------- */

/* Calendar units understood by fp_dt_add (also used by quantity.h). */
enum fp_dt_unit {
    FP_DTU_NONE = 0,
    FP_DTU_YEAR,
    FP_DTU_MONTH,
    FP_DTU_WEEK,
    FP_DTU_DAY,
    FP_DTU_HOUR,
    FP_DTU_MINUTE,
    FP_DTU_SECOND,
    FP_DTU_MS,
};

/* v + sign * amount unit (sign is +1 or -1). The amount is truncated toward zero to an
 * integer in its own unit first (@...T00:00:00.000 + 0.1 's' is unchanged). A unit finer
 * than v's precision is converted to v's precision and truncated (@2014 + 24 months =
 * @2016, @2014-01-01 + 25 hours = @2014-01-02, @2014 + 3 days = @2014). Months are added
 * on the calendar and the day is clamped to the month's end (@2012-01-31 + 1 month =
 * @2012-02-29); weeks are 7 days. Time-of-day arithmetic on a TIME wraps around midnight;
 * adding year/month/week/day to a TIME is ERR_INVALID. The offset is kept unchanged.
 * ERR_TOOBIG when the year leaves 1..9999. */
int fp_dt_add(fp_dt v, int sign, fp_dec amount, enum fp_dt_unit unit, fp_dt *out);

/* ---- precision and boundaries ------------------------------------------------------ */

/* precision(): digits of the written form: DATE/DATETIME year 4, month 6, day 8,
 * hour 10, minute 12, second 14, millisecond 17; TIME hour 2, minute 4, second 6,
 * millisecond 9. */
int fp_dt_precision(fp_dt v);

/* lowBoundary(p)/highBoundary(p): the earliest/latest value v could stand for, at the
 * precision whose digit count is p (the numbers of fp_dt_precision: 4,6,8,10,12,14,17
 * for dates and dateTimes, 2,4,6,9 for times). p < 0 means the default (the finest:
 * 8 for DATE, 17 for DATETIME, 9 for TIME). A DATETIME without an offset gets +14:00 as
 * its low boundary offset and -12:00 as its high one (when p reaches hours). A p that
 * is not one of those numbers -> FP_EMPTY.
 *   @2014.highBoundary(6) = @2014-12      @T10:30.highBoundary(9) = @T10:30:59.999
 *   @2014-01-01T08:05+08:00.lowBoundary(17) = @2014-01-01T08:05:00.000+08:00 */
int fp_dt_low_boundary(fp_dt v, int p, fp_dt *out);
int fp_dt_high_boundary(fp_dt v, int p, fp_dt *out);

/* ---- now(), today(), timeOfDay() ---------------------------------------------------- */

/* The caller samples the clock once per evaluation (so every now() in one expression
 * agrees) and passes it here: unix_ms = milliseconds since 1970-01-01T00:00:00Z,
 * tz_min = the local offset to present the value in (0 for UTC).
 *   fp_dt_now       -> DATETIME, millisecond precision, with that offset
 *   fp_dt_today     -> DATE of the local day
 *   fp_dt_time_of_day -> TIME, millisecond precision, local */
fp_dt fp_dt_now(int64_t unix_ms, int tz_min);
fp_dt fp_dt_today(int64_t unix_ms, int tz_min);
fp_dt fp_dt_time_of_day(int64_t unix_ms, int tz_min);

/* Milliseconds since the epoch of the earliest instant v can mean (offset applied when
 * present, UTC assumed otherwise); TIME gives milliseconds since midnight. For indexing
 * and sorting. */
int64_t fp_dt_to_unix_ms(fp_dt v);

/* The closed range of instants [*lo_ms, *hi_ms] (milliseconds since the epoch) that a
 * DATE or DATETIME of any precision stands for: 2012-04 -> 2012-04-01T00:00:00.000 ..
 * 2012-04-30T23:59:59.999. A value without an offset is read at assume_tz_min (minutes
 * east of UTC; 0 reads it as UTC). For search indexing of date parameters. TIME gives
 * milliseconds since midnight. Never fails. */
void fp_dt_range_ms(fp_dt v, int assume_tz_min, int64_t *lo_ms, int64_t *hi_ms);

#endif
