/*
 * fp_datetime.c -- unit tests for src/fhirpath/datetime.c: literal and FHIR parsing,
 * output, partial-precision comparison (including the empty answers), calendar
 * arithmetic, boundaries, precision() and the clock helpers.
 */
#include <stdlib.h>

#include "base/err.h"
#include "fhirpath/datetime.h"
#include "tap.h"
#include "testrand.h"

static fp_dt L(const char *s)
{
    fp_dt v;
    if (fp_dt_parse_literal(s, strlen(s), &v) != 0) {
        printf("# bad test literal %s\n", s);
        exit(2);
    }
    return v;
}

static const char *S(fp_dt v)
{
    static char ring[8][FP_DT_TEXT_MAX];
    static int k;
    char *dst = ring[k++ & 7];
    fp_dt_format(v, dst, FP_DT_TEXT_MAX);
    return dst;
}

/* "true", "false", "empty" or "error" for a = b. */
static const char *EQ(const char *a, const char *b)
{
    bool r;
    int rc = fp_dt_eq(L(a), L(b), &r);
    return rc == FP_EMPTY ? "empty" : rc ? "error" : r ? "true" : "false";
}

/* "-1", "0", "1", "empty" or "error" for the ordering of a and b. */
static const char *CMP(const char *a, const char *b)
{
    int c;
    int rc = fp_dt_cmp(L(a), L(b), &c);
    return rc == FP_EMPTY ? "empty" : rc ? "error" : c < 0 ? "-1" : c > 0 ? "1" : "0";
}

static const char *ADD(const char *a, int sign, const char *amount, enum fp_dt_unit u)
{
    fp_dec d;
    fp_dt r;
    fp_dec_parse(amount, strlen(amount), &d);
    int rc = fp_dt_add(L(a), sign, d, u, &r);
    return rc == ERR_INVALID ? "invalid" : rc == ERR_TOOBIG ? "toobig" : rc ? "error" : S(r);
}

static const char *BOUND(const char *a, int p, int high)
{
    fp_dt r;
    int rc = high ? fp_dt_high_boundary(L(a), p, &r) : fp_dt_low_boundary(L(a), p, &r);
    return rc == FP_EMPTY ? "empty" : rc ? "error" : S(r);
}

static void test_parse(void)
{
    const char *round[] = {"2012",
                           "2012-04",
                           "2012-04-15",
                           "2012-04-15T10",
                           "2012-04-15T10:30",
                           "2012-04-15T10:30:31",
                           "2012-04-15T10:30:31.123",
                           "2012-04-15T10:30:31.123+02:00",
                           "2012-04-15T10:30:31-05:30",
                           "2012-04-15T10:30:31Z",
                           "T14",
                           "T14:30",
                           "T14:30:15.500"};
    for (size_t i = 0; i < sizeof round / sizeof *round; i++) {
        const char *want = round[i][0] == 'T' ? round[i] + 1 : round[i];
        is_str(S(L(round[i])), want, "literal %s prints back", round[i]);
    }
    fp_dt v = L("2015");
    ok(v.kind == FP_DT_DATE && v.prec == FP_DT_YEAR, "@2015 is a Date of year precision");
    v = L("2015T");
    ok(v.kind == FP_DT_DATETIME && v.prec == FP_DT_YEAR, "@2015T is a DateTime");
    is_str(S(v), "2015", "@2015T prints as 2015");
    v = L("2015-02-04T");
    ok(v.kind == FP_DT_DATETIME && v.prec == FP_DT_DAY, "@2015-02-04T is a DateTime of day");
    v = L("T14:34:28.123");
    ok(v.kind == FP_DT_TIME && v.prec == FP_DT_MS && v.ms == 123, "time with ms");
    v = L("2015-02-04T14:34:28.1");
    is_int(v.ms, 100, ".1 second is 100 ms");
    v = L("2015-02-04T14:34:28.123456789Z");
    is_int(v.ms, 123, "9 fractional digits truncate to ms");
    ok(v.has_tz && v.tz_min == 0, "Z is offset 0");
    v = L("2017-11-05T01:30:00.0-04:00");
    is_int(v.tz_min, -240, "negative offset");

    const char *bad[] = {"",
                         "201",
                         "2012-13",
                         "2012-02-30",
                         "2012-04-15T25",
                         "2012-04-15T10:60",
                         "T14:34:28Z",
                         "T14:34:28+10:00",
                         "2012-04T10",
                         "2012-04-15T10:00:00+15:00",
                         "2012-4-15",
                         "2012-04-15x",
                         "T",
                         "2012-04-15T10:00:00.",
                         "2013-02-29"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        is_int(fp_dt_parse_literal(bad[i], strlen(bad[i]), &v), ERR_INVALID, "reject @%s", bad[i]);
    ok(fp_dt_parse_literal("2012-02-29", 10, &v) == 0, "leap day accepted");

    ok(fp_dt_parse_fhir("1974-12-25", 10, &v) == 0 && v.kind == FP_DT_DATE, "FHIR date");
    ok(fp_dt_parse_fhir("2005-01-27T06:40:01Z", 20, &v) == 0 && v.kind == FP_DT_DATETIME,
       "FHIR instant");
    is_int(fp_dt_parse_fhir("2015T", 5, &v), ERR_INVALID, "FHIR has no trailing T");
    is_int(fp_dt_parse_fhir("2015-01-01T10", 13, &v), ERR_INVALID, "FHIR needs minutes");
    ok(fp_dt_parse_time("14:30:00", 8, &v) == 0 && v.kind == FP_DT_TIME, "FHIR time");
    is_int(fp_dt_parse_time("25:00", 5, &v), ERR_INVALID, "bad FHIR time");

    ok(fp_dt_from_string("2015", 4, FP_DT_DATETIME, &v) == 0 && v.kind == FP_DT_DATETIME,
       "toDateTime('2015')");
    ok(fp_dt_from_string("2015-02-04T14:34:28.123", 23, FP_DT_DATETIME, &v) == 0 &&
           v.prec == FP_DT_MS,
       "toDateTime with ms");
    ok(fp_dt_from_string("2015-02-04T14:34", 16, FP_DT_DATE, &v) == 0 && v.kind == FP_DT_DATE &&
           v.prec == FP_DT_DAY,
       "toDate drops the time");
    ok(fp_dt_from_string("14", 2, FP_DT_TIME, &v) == 0 && v.prec == FP_DT_HOUR, "toTime('14')");
    ok(fp_dt_from_string("14:34:28.123", 12, FP_DT_TIME, &v) == 0, "toTime with ms");
    is_int(fp_dt_from_string("x", 1, FP_DT_DATE, &v), ERR_INVALID, "toDate('x') fails");

    buf b = BUF_INIT;
    fp_dt_write(L("2014-12-14"), &b);
    is_str(buf_cstr(&b), "2014-12-14", "write into a buf");
    buf_free(&b);
}

static void test_compare(void)
{
    is_str(EQ("2012-04-15", "2012-04-15"), "true", "same date");
    is_str(EQ("2012-04-15", "2012-04-16"), "false", "different date");
    is_str(EQ("2012-04-15", "2012-04-15T10:00:00"), "empty", "date vs dateTime precision");
    is_str(EQ("2012-04-15T15:00:00", "2012-04-15T10:00:00"), "false", "different hour");
    is_str(EQ("2012-04-15T15:30:31", "2012-04-15T15:30:31.0"), "true", "seconds vs ms");
    is_str(EQ("2012-04-15T15:30:31", "2012-04-15T15:30:31.1"), "false", "ms differ");
    is_str(EQ("2012-04-15T15:00:00Z", "2012-04-15T10:00:00"), "empty", "offset vs none");
    is_str(EQ("2012-04-15T15:00:00+02:00", "2012-04-15T16:00:00+03:00"), "true",
           "same instant, other offsets");
    is_str(EQ("2017-11-05T01:30:00.0-04:00", "2017-11-05T00:30:00.0-05:00"), "true",
           "same instant across DST-like offsets");
    is_str(EQ("2017-11-05T01:30:00.0-04:00", "2017-11-05T01:15:00.0-05:00"), "false",
           "different instants");
    is_str(CMP("2017-11-05T01:30:00.0-04:00", "2017-11-05T01:15:00.0-05:00"), "-1",
           "offset-normalised ordering");
    is_str(CMP("2012-04-15T15:00:00Z", "2012-04-17T10:00:00"), "-1",
           "offset vs none decidable when days apart");
    is_str(CMP("2012-04-20T15:00:00Z", "2012-04-17T10:00:00"), "1", "and the other way");
    is_str(CMP("2014-12-12", "2014-12-13"), "-1", "date order");
    is_str(CMP("2018-03", "2018-03-01"), "empty", "month vs day precision");
    is_str(CMP("2018-02", "2018-03-01"), "-1", "decided before precision runs out");
    is_str(CMP("2018-03-01T10:30", "2018-03-01T10:30:00"), "empty", "minute vs second");
    is_str(CMP("T10:30", "T10:30:00"), "empty", "time minute vs second");
    is_str(CMP("2018-03-01T10:30:00", "2018-03-01T10:30:00.0"), "0", "second vs ms equal");
    is_str(CMP("T12:00:00", "T14:00:00"), "-1", "time order");
    is_str(CMP("T12:00:01", "T12:00:00"), "1", "time order by second");
    is_str(CMP("T12:00:00", "2012-01-01"), "error", "time vs date not comparable");
    bool r;
    ok(fp_dt_eq(L("T12:00"), L("2012"), &r) == 0 && !r, "time = date is false");
    ok(fp_dt_equiv(L("2012-04-15"), L("2012-04-15")), "~ same");
    ok(!fp_dt_equiv(L("2012-04-15"), L("2012-04-16")), "!~ different");
    ok(!fp_dt_equiv(L("2012-04-15"), L("2012-04-15T10:00:00")), "~ different precision false");
    ok(fp_dt_equiv(L("2012-04-15T15:30:31"), L("2012-04-15T15:30:31.0")), "~ seconds vs ms");
    ok(!fp_dt_equiv(L("2012-04-15T15:30:31"), L("2012-04-15T15:30:31.1")), "!~ ms differ");
    fp_dt d = L("1974-12-25");
    ok(fp_dt_to_datetime(d).kind == FP_DT_DATETIME, "date converts to dateTime");
}

static void test_arith(void)
{
    is_str(ADD("1973-12-25", 1, "7", FP_DTU_DAY), "1974-01-01", "+ 7 days");
    is_str(ADD("1973-12-25", 1, "7.7", FP_DTU_DAY), "1974-01-01", "+ 7.7 days truncates");
    is_str(ADD("1973-12-25T00:00:00.000+10:00", 1, "7", FP_DTU_DAY),
           "1974-01-01T00:00:00.000+10:00", "dateTime + 7 days keeps offset");
    is_str(ADD("1973-12-25T00:00:00.000+10:00", 1, "1", FP_DTU_SECOND),
           "1973-12-25T00:00:01.000+10:00", "+ 1 second");
    is_str(ADD("1973-12-25T00:00:00.000+10:00", 1, "10", FP_DTU_MS),
           "1973-12-25T00:00:00.010+10:00", "+ 10 ms");
    is_str(ADD("1973-12-25T00:00:00.000+10:00", 1, "0.1", FP_DTU_SECOND),
           "1973-12-25T00:00:00.000+10:00", "+ 0.1 s truncates to nothing");
    is_str(ADD("1973-12-25T00:00:00.000+10:00", 1, "1", FP_DTU_MINUTE),
           "1973-12-25T00:01:00.000+10:00", "+ 1 minute");
    is_str(ADD("1973-12-25T00:00:00.000+10:00", 1, "1", FP_DTU_HOUR),
           "1973-12-25T01:00:00.000+10:00", "+ 1 hour");
    is_str(ADD("1973-12-25", 1, "1", FP_DTU_MONTH), "1974-01-25", "+ 1 month");
    is_str(ADD("1973-12-25", 1, "1", FP_DTU_WEEK), "1974-01-01", "+ 1 week");
    is_str(ADD("1973-12-25", 1, "1", FP_DTU_YEAR), "1974-12-25", "+ 1 year");
    is_str(ADD("1974-12-25", -1, "1", FP_DTU_MONTH), "1974-11-25", "- 1 month");
    is_str(ADD("1974-12-25", -1, "1", FP_DTU_DAY), "1974-12-24", "- 1 day");
    is_str(ADD("2012-01-31", 1, "1", FP_DTU_MONTH), "2012-02-29", "month end clamps (leap)");
    is_str(ADD("2013-01-31", 1, "1", FP_DTU_MONTH), "2013-02-28", "month end clamps");
    is_str(ADD("2012-02-29", 1, "1", FP_DTU_YEAR), "2013-02-28", "leap day + 1 year");
    is_str(ADD("2012-01", 1, "1", FP_DTU_MONTH), "2012-02", "@2012-01 + 1 month");
    is_str(ADD("2014", 1, "24", FP_DTU_MONTH), "2016", "@2014 + 24 months");
    is_str(ADD("2014", 1, "23", FP_DTU_MONTH), "2015", "@2014 + 23 months truncates");
    is_str(ADD("2014", 1, "3", FP_DTU_DAY), "2014", "@2014 + 3 days: below precision");
    is_str(ADD("2014-01-01", 1, "25", FP_DTU_HOUR), "2014-01-02", "day + 25 hours");
    is_str(ADD("2014-01-01", 1, "23", FP_DTU_HOUR), "2014-01-01", "day + 23 hours");
    is_str(ADD("2025-01", 1, "6", FP_DTU_MONTH), "2025-07", "@2025-01 + 6 months");
    is_str(ADD("2014-01-01T10:00", 1, "90", FP_DTU_SECOND), "2014-01-01T10:01",
           "minute precision + 90 s");
    is_str(ADD("2014-12-31T23:59:59.999", 1, "1", FP_DTU_MS), "2015-01-01T00:00:00.000",
           "ms carries into the year");
    is_str(ADD("T23:30", 1, "1", FP_DTU_HOUR), "00:30", "time wraps around midnight");
    is_str(ADD("T00:30", -1, "1", FP_DTU_HOUR), "23:30", "time wraps backwards");
    is_str(ADD("T10:00", 1, "1", FP_DTU_DAY), "invalid", "time + day is an error");
    is_str(ADD("9999-12-31", 1, "1", FP_DTU_DAY), "toobig", "past year 9999");
    is_str(ADD("0001-01-01", -1, "1", FP_DTU_MONTH), "toobig", "before year 1");
    is_str(ADD("2014-01-01", 1, "1", FP_DTU_NONE), "invalid", "no unit");
}

static void test_boundaries(void)
{
    is_str(BOUND("2014", 6, 0), "2014-01", "@2014.lowBoundary(6)");
    is_str(BOUND("2014", 6, 1), "2014-12", "@2014.highBoundary(6)");
    is_str(BOUND("2014-02", 8, 1), "2014-02-28", "high day of February");
    is_str(BOUND("2012-02", 8, 1), "2012-02-29", "high day of leap February");
    is_str(BOUND("2014-01-01T08", 17, 0), "2014-01-01T08:00:00.000+14:00",
           "no offset: low boundary at +14:00");
    is_str(BOUND("2014-01-01T08:05+08:00", 17, 0), "2014-01-01T08:05:00.000+08:00", "offset kept");
    is_str(BOUND("2014-01-01T08", 8, 0), "2014-01-01", "coarser precision truncates");
    is_str(BOUND("2014-01-01T08:05-05:00", 17, 1), "2014-01-01T08:05:59.999-05:00",
           "high boundary fills 59.999");
    is_str(BOUND("2014-01-01T08", 17, 1), "2014-01-01T08:59:59.999-12:00",
           "no offset: high boundary at -12:00");
    is_str(BOUND("T10:30", 9, 0), "10:30:00.000", "time low");
    is_str(BOUND("T10:30", 9, 1), "10:30:59.999", "time high");
    is_str(BOUND("2014", 5, 0), "empty", "5 digits is not a precision");
    is_str(BOUND("2014", 17, 0), "empty", "a Date has no millisecond boundary");
    is_str(BOUND("2014-05", -1, 1), "2014-05-31", "default precision of a Date is days");

    is_int(fp_dt_precision(L("2014")), 4, "@2014.precision()");
    is_int(fp_dt_precision(L("2014-01-05T10:30:00.000")), 17, "dateTime ms precision");
    is_int(fp_dt_precision(L("T10:30")), 4, "time minutes precision");
    is_int(fp_dt_precision(L("T10:30:00.000")), 9, "time ms precision");
}

static void test_clock(void)
{
    int64_t t = 1700000000123LL; /* 2023-11-14T22:13:20.123Z */
    is_str(S(fp_dt_now(t, 0)), "2023-11-14T22:13:20.123Z", "now() in UTC");
    is_str(S(fp_dt_now(t, 120)), "2023-11-15T00:13:20.123+02:00", "now() at +02:00");
    is_str(S(fp_dt_today(t, 120)), "2023-11-15", "today() is the local day");
    is_str(S(fp_dt_time_of_day(t, 0)), "22:13:20.123", "timeOfDay()");
    ok(fp_dt_to_unix_ms(fp_dt_now(t, 120)) == t, "now() round-trips to the same instant");
    ok(fp_dt_to_unix_ms(L("1970-01-01T00:00:00Z")) == 0, "epoch");
    ok(fp_dt_to_unix_ms(L("1970-01-01T02:00:00+02:00")) == 0, "epoch with offset");
    int64_t lo, hi;
    fp_dt_range_ms(L("1970-01"), 0, &lo, &hi);
    ok(lo == 0 && hi == 31LL * 86400000 - 1, "range of a month");
    fp_dt_range_ms(L("1970-01-01"), 60, &lo, &hi);
    ok(lo == -3600000 && hi == 86400000 - 3600000 - 1, "range of a day read at +01:00");
    fp_dt_range_ms(L("1970-01-01T00:00:00Z"), 60, &lo, &hi);
    ok(lo == 0 && hi == 999, "an explicit offset wins; a second spans 1000 ms");
    fp_dt_range_ms(L("2012-02"), 0, &lo, &hi);
    ok(hi - lo == 29LL * 86400000 - 1, "leap February spans 29 days");
    is_str(CMP("2012-04-15T10:00:00+02:00", "2012-04-15T09:00:00+02:00"), "1",
           "same offset compares by fields");
}

static void test_robust(void)
{
    char t1[40], t2[40];
    int bad = 0, parsed = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n1 = random_text(t1, sizeof t1, "0123456789012-:T.Z+");
        fp_dt a, r;
        if (fp_dt_parse_literal(t1, n1, &a) != 0)
            continue;
        parsed++;
        char text[FP_DT_TEXT_MAX];
        size_t tn = fp_dt_format(a, text, sizeof text);
        fp_dt back;
        /* The printed form parses back to an equivalent value (a lone trailing 'T' of a
         * year/month/day dateTime is not printed, so compare equivalence, not bytes). */
        const char *p = text;
        char tbuf[FP_DT_TEXT_MAX + 1];
        if (a.kind == FP_DT_TIME) {
            tbuf[0] = 'T';
            memcpy(tbuf + 1, text, tn + 1);
            p = tbuf;
            tn++;
        }
        if (fp_dt_parse_literal(p, tn, &back) != 0 ||
            !fp_dt_equiv(fp_dt_to_datetime(a), fp_dt_to_datetime(back)))
            bad++;
        random_text(t2, 12, "0123456789");
        fp_dec amount;
        if (fp_dec_parse(t2, strlen(t2), &amount) != 0)
            amount = fp_dec_from_i64(1);
        int rc = fp_dt_add(a, rng() % 2 ? 1 : -1, amount, (enum fp_dt_unit)(1 + rng() % 8), &r);
        if (rc != 0 && rc != ERR_TOOBIG && rc != ERR_INVALID)
            bad++;
        rc = fp_dt_high_boundary(a, (int)(rng() % 20) - 1, &r);
        if (rc != 0 && rc != FP_EMPTY)
            bad++;
    }
    ok(parsed > 100, "the random loop parsed %d values", parsed);

    /* Random well-formed dateTimes at random precisions and offsets: the ordering is
     * antisymmetric, = agrees with it, and full-precision values with offsets order like
     * their instants. */
    int bad2 = 0, decided = 0;
    for (int i = 0; i < 20000; i++) {
        char ta[64], tb[64];
        fp_dt a, b;
        const char *tzs[] = {"", "Z", "+02:00", "-05:00", "+14:00", "-12:00"};
        for (int k = 0; k < 2; k++) {
            char *t = k ? tb : ta;
            int prec = 1 + (int)(rng() % 7);
            int n = snprintf(t, 64, "%04u", 2000 + rng() % 3);
            if (prec >= 2)
                n += snprintf(t + n, (size_t)(64 - n), "-%02u", 1 + rng() % 2);
            if (prec >= 3)
                n += snprintf(t + n, (size_t)(64 - n), "-%02u", 1 + rng() % 28);
            if (prec >= 4)
                n += snprintf(t + n, (size_t)(64 - n), "T%02u", rng() % 24);
            if (prec >= 5)
                n += snprintf(t + n, (size_t)(64 - n), ":%02u", rng() % 60);
            if (prec >= 6)
                n += snprintf(t + n, (size_t)(64 - n), ":%02u", rng() % 60);
            if (prec >= 7)
                n += snprintf(t + n, (size_t)(64 - n), ".%03u", rng() % 1000);
            if (prec >= 4)
                snprintf(t + n, (size_t)(64 - n), "%s", tzs[rng() % 6]);
        }
        if (fp_dt_parse_literal(ta, strlen(ta), &a) != 0 ||
            fp_dt_parse_literal(tb, strlen(tb), &b) != 0) {
            bad2++;
            continue;
        }
        int c1, c2;
        bool e;
        int r1 = fp_dt_cmp(a, b, &c1), r2 = fp_dt_cmp(b, a, &c2);
        if (r1 != r2 || (r1 == 0 && c1 != -c2))
            bad2++;
        if (fp_dt_eq(a, b, &e) != r1 || (r1 == 0 && e != (c1 == 0)))
            bad2++;
        if (fp_dt_equiv(a, b) && !(r1 == 0 && c1 == 0))
            bad2++;
        if (r1 == 0)
            decided++;
        if (a.prec == FP_DT_MS && b.prec == FP_DT_MS && a.has_tz && b.has_tz) {
            int64_t x = fp_dt_to_unix_ms(a), y = fp_dt_to_unix_ms(b);
            if (r1 != 0 || c1 != (x < y ? -1 : x > y))
                bad2++;
        }
    }
    ok(decided > 5000, "random dateTime pairs: %d decided", decided);
    is_int(bad2, 0, "ordering is antisymmetric, = and ~ agree with it, instants order alike");
    is_int(bad, 0, "random inputs: output re-parses and operations return defined codes");
}

int main(void)
{
    test_parse();
    test_compare();
    test_arith();
    test_boundaries();
    test_clock();
    test_robust();
    return tap_done();
}
