/*
 * time.h -- FHIR date/dateTime/instant/time parsing, UTC ranges, and the two
 * timestamp formats of the server (meta.lastUpdated and HTTP-date).
 *
 * The parsers follow the R4 regular expressions of the primitive types exactly,
 * then check the calendar (the regexes allow 2023-02-31):
 *
 *   date      YYYY | YYYY-MM | YYYY-MM-DD
 *   dateTime  date | YYYY-MM-DDThh:mm:ss[.f+](Z|+hh:mm|-hh:mm)   (zone required with time)
 *   instant   YYYY-MM-DDThh:mm:ss[.f+](Z|+hh:mm|-hh:mm)
 *   time      hh:mm:ss[.f+]
 *
 * Years 0001..9999 (the regex forbids 0000); month 01-12; day within the month
 * (Feb 29 only in leap years); hour 00-23 (no 24:00); minute and second 00-59 (the
 * regex's leap second "60" is refused: no clock of ours can produce it); zone
 * offset -14:00..+14:00 ((0[0-9]|1[0-3]):[0-5][0-9] or 14:00).
 *
 * Time values are int64 microseconds since 1970-01-01T00:00:00Z ("us"). A parsed
 * value stands for a period, not an instant: ftime_range() gives [lo, hi).
 *
 *   "2024"            -> [2024-01-01T00:00:00Z, 2025-01-01T00:00:00Z)
 *   "2024-02"         -> [2024-02-01, 2024-03-01)       dates are taken as UTC
 *   "2024-02-29"      -> [2024-02-29, 2024-03-01)
 *   "...T10:00:00+02:00"  -> [08:00:00Z, 08:00:01Z)
 *   "...T10:00:00.5Z" -> [10:00:00.500000Z, 10:00:00.600000Z)   one unit of the
 *                        last written digit (at most microseconds)
 *
 * Nothing here allocates; every function writes into caller storage.
 */
#ifndef HORTUS_TIME_H
#define HORTUS_TIME_H

#include <stddef.h>
#include <stdint.h>

typedef enum ftime_prec {
    FTIME_NONE = 0,
    FTIME_YEAR,
    FTIME_MONTH,
    FTIME_DAY,
    FTIME_SECOND, /* time given to the second (FHIR has no minute-only form) */
    FTIME_MILLI,  /* a fraction of a second was given (any number of digits) */
} ftime_prec;

typedef struct ftime {
    int year;       /* 1..9999; 0 for a plain `time` */
    int month, day; /* 1-based; 0 when not given */
    int hour, minute, second;
    int usec;        /* fraction of the second in microseconds (digits past 6 dropped) */
    int frac_digits; /* number of fraction digits written (0 = none) */
    int has_tz;      /* 1 when a zone was given */
    int tz_min;      /* offset east of UTC in minutes (+02:00 -> 120, Z -> 0) */
    ftime_prec prec;
} ftime;

/* Parse s[0..n) (not NUL-terminated) as the FHIR primitive. Return 0 and fill *out,
 * or ERR_INVALID when the text does not match the type or is not a real calendar
 * date/time. *out is unspecified on failure. */
int ftime_parse_date(const char *s, size_t n, ftime *out);
int ftime_parse_datetime(const char *s, size_t n, ftime *out);
int ftime_parse_instant(const char *s, size_t n, ftime *out);
int ftime_parse_time(const char *s, size_t n, ftime *out); /* year/month/day = 0 */

/* [lo, hi) in UTC microseconds covered by t (see the table above). ERR_INVALID when
 * t has no date (a plain `time`). */
int ftime_range(const ftime *t, int64_t *lo, int64_t *hi);

/* Microseconds since the epoch of a calendar date-time in UTC (no validation: the
 * fields may overflow into the next unit, e.g. hour 25). */
int64_t ftime_utc_us(int year, int month, int day, int hour, int minute, int second);

/* The wall clock now, in microseconds since the epoch. */
int64_t ftime_now_us(void);

/* Break us down into UTC fields (tz 0, prec FTIME_MILLI, frac_digits 6); us outside
 * years 1..9999 is clamped to the nearest end. */
void ftime_from_us(int64_t us, ftime *out);

#define FTIME_INSTANT_LEN 24 /* "YYYY-MM-DDThh:mm:ss.sssZ" */
#define FTIME_HTTP_LEN 29    /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* Write us as a FHIR instant with milliseconds in UTC, e.g. "2024-05-01T10:22:33.123Z"
 * (for meta.lastUpdated), into out (at least FTIME_INSTANT_LEN + 1 bytes, NUL-terminated).
 * Years outside 1..9999 are clamped into range. Returns FTIME_INSTANT_LEN. */
size_t ftime_format_instant(int64_t us, char *out);

/* Write us (truncated to the second) as an RFC 7231 IMF-fixdate, e.g.
 * "Sun, 06 Nov 1994 08:49:37 GMT" (for Last-Modified), into out (at least
 * FTIME_HTTP_LEN + 1 bytes, NUL-terminated). Returns FTIME_HTTP_LEN. */
size_t ftime_format_http(int64_t us, char *out);

/* Parse an HTTP-date (If-Modified-Since) in any of the three forms a recipient must
 * accept (RFC 7231 7.1.1.1): IMF-fixdate, obsolete RFC 850 ("Sunday, 06-Nov-94
 * 08:49:37 GMT", two-digit years 70-99 -> 19xx, 00-69 -> 20xx) and asctime ("Sun Nov
 *  6 08:49:37 1994"). The weekday name must be a real one but is not checked against
 * the date. Returns 0 and sets *us, or ERR_INVALID. */
int ftime_parse_http(const char *s, size_t n, int64_t *us);

#endif
