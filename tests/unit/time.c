/*
 * tests/unit/time.c -- FHIR date/dateTime/instant/time parsing (R4 regexes plus the
 * calendar), UTC ranges, instant and HTTP-date formatting, HTTP-date parsing.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/time.h"
#include "tap.h"

typedef int (*parse_fn)(const char *, size_t, ftime *);

static void accept(parse_fn f, const char *name, const char *s, ftime_prec prec)
{
    ftime t;
    int rc = f(s, strlen(s), &t);
    is_int(rc, 0, "%s accepts %s", name, s);
    if (!rc)
        is_int(t.prec, prec, "  precision of %s", s);
}

static void refuse(parse_fn f, const char *name, const char *s)
{
    ftime t;
    is_int(f(s, strlen(s), &t), ERR_INVALID, "%s refuses '%s'", name, s);
}

/* Range of s parsed as dateTime, as two instants formatted back. */
static void range_is(const char *s, const char *lo, const char *hi)
{
    ftime t;
    int64_t l = 0, h = 0;
    char a[32] = "", b[32] = "";
    if (ftime_parse_datetime(s, strlen(s), &t) == 0 && ftime_range(&t, &l, &h) == 0) {
        ftime_format_instant(l, a);
        ftime_format_instant(h, b);
    }
    is_str(a, lo, "range of %s: low", s);
    is_str(b, hi, "range of %s: high", s);
}

static void test_parse(void)
{
    accept(ftime_parse_date, "date", "2024", FTIME_YEAR);
    accept(ftime_parse_date, "date", "2024-02", FTIME_MONTH);
    accept(ftime_parse_date, "date", "2024-02-29", FTIME_DAY);
    accept(ftime_parse_date, "date", "0001-01-01", FTIME_DAY);
    accept(ftime_parse_date, "date", "9999-12-31", FTIME_DAY);
    accept(ftime_parse_date, "date", "2000-02-29", FTIME_DAY); /* divisible by 400 */
    refuse(ftime_parse_date, "date", "");
    refuse(ftime_parse_date, "date", "0000");
    refuse(ftime_parse_date, "date", "202");
    refuse(ftime_parse_date, "date", "20245");
    refuse(ftime_parse_date, "date", "2024-2");
    refuse(ftime_parse_date, "date", "2024-00");
    refuse(ftime_parse_date, "date", "2024-13");
    refuse(ftime_parse_date, "date", "2024-01-00");
    refuse(ftime_parse_date, "date", "2024-01-32");
    refuse(ftime_parse_date, "date", "2023-02-29"); /* not a leap year */
    refuse(ftime_parse_date, "date", "1900-02-29"); /* divisible by 100, not 400 */
    refuse(ftime_parse_date, "date", "2024-04-31");
    refuse(ftime_parse_date, "date", "2024-01-01T10:00:00Z"); /* a date has no time */
    refuse(ftime_parse_date, "date", "2024-01-01 ");
    refuse(ftime_parse_date, "date", "2024/01/01");
    refuse(ftime_parse_date, "date", "-2024");

    accept(ftime_parse_datetime, "dateTime", "2024", FTIME_YEAR);
    accept(ftime_parse_datetime, "dateTime", "2024-05", FTIME_MONTH);
    accept(ftime_parse_datetime, "dateTime", "2024-05-01", FTIME_DAY);
    accept(ftime_parse_datetime, "dateTime", "2024-05-01T10:22:33Z", FTIME_SECOND);
    accept(ftime_parse_datetime, "dateTime", "2024-05-01T10:22:33.1Z", FTIME_MILLI);
    accept(ftime_parse_datetime, "dateTime", "2024-05-01T10:22:33.123456789+02:00", FTIME_MILLI);
    accept(ftime_parse_datetime, "dateTime", "2024-05-01T23:59:59-14:00", FTIME_SECOND);
    accept(ftime_parse_datetime, "dateTime", "2024-05-01T00:00:00+14:00", FTIME_SECOND);
    accept(ftime_parse_datetime, "dateTime", "2024-05-01T00:00:00+13:59", FTIME_SECOND);
    accept(ftime_parse_datetime, "dateTime", "2024-05-01T00:00:00-00:00", FTIME_SECOND);
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T10:22:33"); /* zone required */
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T10:22Z");   /* seconds required */
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T10Z");
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T");
    refuse(ftime_parse_datetime, "dateTime", "2024-05T10:22:33Z");
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T24:00:00Z"); /* no 24:00 */
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T10:60:00Z");
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T10:00:60Z");  /* no leap second */
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T10:00:00.Z"); /* empty fraction */
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T10:00:00+14:01");
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T10:00:00+15:00");
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T10:00:00+02:60");
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T10:00:00+0200");
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T10:00:00z");
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01t10:00:00Z");
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T10:00:00ZZ");
    refuse(ftime_parse_datetime, "dateTime", "2023-02-29T10:00:00Z");
    refuse(ftime_parse_datetime, "dateTime", "2024-05-01T1:00:00Z");

    accept(ftime_parse_instant, "instant", "2024-05-01T10:22:33.123Z", FTIME_MILLI);
    accept(ftime_parse_instant, "instant", "2024-05-01T10:22:33+05:30", FTIME_SECOND);
    refuse(ftime_parse_instant, "instant", "2024-05-01");
    refuse(ftime_parse_instant, "instant", "2024-05");
    refuse(ftime_parse_instant, "instant", "2024");
    refuse(ftime_parse_instant, "instant", "2024-05-01T10:22:33");

    accept(ftime_parse_time, "time", "00:00:00", FTIME_SECOND);
    accept(ftime_parse_time, "time", "23:59:59.999", FTIME_MILLI);
    refuse(ftime_parse_time, "time", "24:00:00");
    refuse(ftime_parse_time, "time", "12:00");
    refuse(ftime_parse_time, "time", "12:00:00Z"); /* time has no zone */
    refuse(ftime_parse_time, "time", "12:5:00");
    refuse(ftime_parse_time, "time", "12:00:61");

    ftime t;
    ftime_parse_datetime("2024-05-01T10:22:33.1234567-03:30", 33, &t);
    ok(t.year == 2024 && t.month == 5 && t.day == 1 && t.hour == 10 && t.minute == 22 &&
           t.second == 33,
       "fields of a full dateTime");
    is_int(t.usec, 123456, "fraction in microseconds, digits past 6 dropped");
    is_int(t.frac_digits, 7, "fraction digits counted");
    ok(t.has_tz && t.tz_min == -210, "zone -03:30 is -210 minutes");
    ok(ftime_parse_datetime("2024-05-01T10:22:33Z", 10, &t) == 0 && t.prec == FTIME_DAY,
       "length is honoured (text need not be NUL-terminated)");
    ok(ftime_parse_time("10:11:12.5", 10, &t) == 0 && t.hour == 10 && t.usec == 500000 &&
           t.year == 0,
       "time fields");
    int64_t lo, hi;
    is_int(ftime_range(&t, &lo, &hi), ERR_INVALID, "a plain time has no range");
}

static void test_range(void)
{
    range_is("2024", "2024-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z");
    range_is("2024-02", "2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z");
    range_is("2024-12", "2024-12-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z");
    range_is("2024-02-29", "2024-02-29T00:00:00.000Z", "2024-03-01T00:00:00.000Z");
    range_is("2024-12-31", "2024-12-31T00:00:00.000Z", "2025-01-01T00:00:00.000Z");
    range_is("2024-05-01T10:00:00+02:00", "2024-05-01T08:00:00.000Z", "2024-05-01T08:00:01.000Z");
    range_is("2024-01-01T01:00:00+05:00", "2023-12-31T20:00:00.000Z", "2023-12-31T20:00:01.000Z");
    range_is("2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00.000Z", "2025-01-01T00:30:01.000Z");
    range_is("2024-05-01T10:00:00.5Z", "2024-05-01T10:00:00.500Z", "2024-05-01T10:00:00.600Z");
    range_is("2024-05-01T10:00:00.123Z", "2024-05-01T10:00:00.123Z", "2024-05-01T10:00:00.124Z");
    range_is("1969-12-31T23:59:59Z", "1969-12-31T23:59:59.000Z", "1970-01-01T00:00:00.000Z");

    ftime t;
    int64_t lo, hi;
    ftime_parse_datetime("2024-05-01T10:00:00.1234567Z", 28, &t);
    ftime_range(&t, &lo, &hi);
    is_int(hi - lo, 1, "fraction finer than a microsecond spans one microsecond");
    ftime_parse_datetime("1970-01-01T00:00:00Z", 20, &t);
    ftime_range(&t, &lo, &hi);
    is_int(lo, 0, "the epoch is 0");
    ftime_parse_datetime("2000-03-01T00:00:00Z", 20, &t);
    ftime_range(&t, &lo, &hi);
    is_int(lo, INT64_C(951868800) * 1000000, "2000-03-01 in epoch seconds (known value)");
    ftime_parse_date("0001-01-01", 10, &t);
    ftime_range(&t, &lo, &hi);
    is_int(lo / 1000000, INT64_C(-62135596800), "0001-01-01 in epoch seconds (known value)");
    ftime_parse_date("9999", 4, &t);
    ftime_range(&t, &lo, &hi);
    is_int(hi / 1000000, INT64_C(253402300800), "end of 9999 in epoch seconds (known value)");

    /* every day of 1900..2100 agrees with the C library's timegm */
    int bad = 0;
    for (int y = 1900; y <= 2100 && !bad; y++)
        for (int m = 1; m <= 12 && !bad; m++)
            for (int d = 1; d <= 31; d++) {
                char s[48];
                snprintf(s, sizeof s, "%04d-%02d-%02d", y, m, d);
                struct tm tm = {0};
                tm.tm_year = y - 1900;
                tm.tm_mon = m - 1;
                tm.tm_mday = d;
                time_t want = timegm(&tm);
                int valid = tm.tm_mday == d; /* timegm normalises invalid days */
                int rc = ftime_parse_date(s, 10, &t);
                if ((rc == 0) != valid) {
                    bad = 1;
                    printf("# %s: parse %d, libc valid %d\n", s, rc, valid);
                    break;
                }
                if (rc == 0 && (ftime_range(&t, &lo, &hi) || lo != (int64_t)want * 1000000)) {
                    bad = 1;
                    printf("# %s: %lld, libc %lld\n", s, (long long)lo, (long long)want);
                    break;
                }
            }
    ok(!bad, "calendar validity and day numbers of 1900-2100 agree with timegm");
}

static void test_format(void)
{
    char s[64];
    is_int(ftime_format_instant(0, s), FTIME_INSTANT_LEN, "instant length");
    is_str(s, "1970-01-01T00:00:00.000Z", "epoch as instant");
    ftime_format_instant(INT64_C(1714558953123456), s);
    is_str(s, "2024-05-01T10:22:33.123Z", "instant truncates to milliseconds");
    ftime_format_instant(-1, s);
    is_str(s, "1969-12-31T23:59:59.999Z", "just before the epoch");
    ftime_format_instant(INT64_C(951782400) * 1000000, s);
    is_str(s, "2000-02-29T00:00:00.000Z", "leap day 2000");
    ftime_format_instant(INT64_MIN, s);
    is_str(s, "0001-01-01T00:00:00.000Z", "clamped low");
    ftime_format_instant(INT64_MAX, s);
    is_str(s, "9999-12-31T23:59:59.999Z", "clamped high");

    ftime fx;
    ftime_from_us(INT64_MIN, &fx);
    ok(fx.year == 1 && fx.month == 1 && fx.day == 1 && fx.hour == 0, "from_us clamps low");
    ftime_from_us(INT64_C(1714558953123456), &fx);
    ok(fx.year == 2024 && fx.month == 5 && fx.day == 1 && fx.hour == 10 && fx.minute == 22 &&
           fx.second == 33 && fx.usec == 123456 && fx.has_tz && fx.tz_min == 0,
       "from_us fields");
    is_int(ftime_format_http(INT64_C(784111777) * 1000000 + 999999, s), FTIME_HTTP_LEN,
           "HTTP-date length");
    is_str(s, "Sun, 06 Nov 1994 08:49:37 GMT", "RFC 7231 example");
    ftime_format_http(0, s);
    is_str(s, "Thu, 01 Jan 1970 00:00:00 GMT", "epoch as HTTP-date");
    ftime_format_http(INT64_C(1709164800) * 1000000, s);
    is_str(s, "Thu, 29 Feb 2024 00:00:00 GMT", "leap day 2024");

    /* now: formats to something that parses back as an instant close to time() */
    int64_t now = ftime_now_us();
    ftime_format_instant(now, s);
    ftime t;
    int64_t lo, hi;
    ok(ftime_parse_instant(s, strlen(s), &t) == 0 && ftime_range(&t, &lo, &hi) == 0 && lo <= now &&
           now < hi,
       "now formats as a parseable instant whose range holds now (%s)", s);
    int64_t secs = (int64_t)time(NULL);
    ok(now / 1000000 >= secs - 2 && now / 1000000 <= secs + 2, "now agrees with time()");

    /* round trip of formatting through from_us for many instants */
    int bad = 0;
    for (int64_t us = -INT64_C(86400000000) * 400 * 366; us < INT64_C(86400000000) * 400 * 366;
         us += INT64_C(86400000000) * 7 + 3600000123) {
        ftime_format_instant(us, s);
        if (ftime_parse_instant(s, strlen(s), &t) || ftime_range(&t, &lo, &hi) ||
            lo != us / 1000 * 1000 - (us % 1000 < 0 ? 1000 : 0)) {
            bad = 1;
            printf("# %lld -> %s -> %lld\n", (long long)us, s, (long long)lo);
            break;
        }
    }
    ok(!bad, "format_instant then parse gives the same millisecond over 1570-2370");
}

static void test_http(void)
{
    int64_t us;
    const int64_t want = INT64_C(784111777) * 1000000;
    ok(ftime_parse_http("Sun, 06 Nov 1994 08:49:37 GMT", 29, &us) == 0 && us == want,
       "IMF-fixdate");
    ok(ftime_parse_http("Sunday, 06-Nov-94 08:49:37 GMT", 30, &us) == 0 && us == want,
       "RFC 850 date");
    ok(ftime_parse_http("Sun Nov  6 08:49:37 1994", 24, &us) == 0 && us == want, "asctime date");
    ok(ftime_parse_http(" Sun, 06 Nov 1994 08:49:37 GMT ", 31, &us) == 0 && us == want,
       "surrounding whitespace ignored");
    ok(ftime_parse_http("Thursday, 01-Jan-04 00:00:00 GMT", 32, &us) == 0 &&
           us == INT64_C(1072915200) * 1000000,
       "RFC 850 two-digit year 04 is 2004");
    const char *bad[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMTx",
        "1994-11-06T08:49:37Z",
        "Sun Nov 6 08:49:37 1994",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        is_int(ftime_parse_http(bad[i], strlen(bad[i]), &us), ERR_INVALID, "HTTP-date refuses '%s'",
               bad[i]);
    char s[64];
    int64_t now = ftime_now_us();
    ftime_format_http(now, s);
    ok(ftime_parse_http(s, strlen(s), &us) == 0 && us == now / 1000000 * 1000000,
       "format_http then parse_http gives the same second");
}

int main(void)
{
    test_parse();
    test_range();
    test_format();
    test_http();
    return tap_done();
}
