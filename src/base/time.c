/*
 * time.c -- FHIR date/time parsing and the server's timestamp formats; see time.h.
 *
 * The parsers are hand-written scanners that mirror the R4 regexes position by
 * position (fixed widths, so no backtracking is needed), followed by calendar
 * checks. Calendar arithmetic uses the proleptic Gregorian calendar counted in days
 * from 0001-01-01:
 *
 *   days(y, m, d) = 365*(y-1) + (y-1)/4 - (y-1)/100 + (y-1)/400    whole years before y
 *                 + days before month m in year y (+1 after February in leap years)
 *                 + d - 1
 *
 * and 1970-01-01 is day 719162 of that count. The inverse walks 400-, 100-, 4- and
 * 1-year cycles. Only years 1..9999 ever reach these functions from parsed text.
 */
#include "base/time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/err.h"

#define US_PER_SEC INT64_C(1000000)
#define US_PER_DAY (INT64_C(86400) * US_PER_SEC)
#define EPOCH_DAYS INT64_C(719162) /* days from 0001-01-01 to 1970-01-01 */

static const int days_before_month[13] = {0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
static const char *const mon_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const day_names[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const day_names_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                              "Thursday", "Friday", "Saturday"};

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const int len[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m];
}

/* Days since 1970-01-01 of y-m-d (y >= 1, 1 <= m <= 12; d may overflow the month). */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t py = y - 1;
    int64_t days = 365 * py + py / 4 - py / 100 + py / 400;
    days += days_before_month[m] + (m > 2 && is_leap(y));
    return days + d - 1 - EPOCH_DAYS;
}

/* Inverse of days_from_civil for days >= -EPOCH_DAYS (year 1 onwards). */
static void civil_from_days(int64_t days, int *y, int *m, int *d)
{
    int64_t r = days + EPOCH_DAYS;
    int64_t n400 = r / 146097;
    r %= 146097;
    int64_t n100 = r / 36524;
    if (n100 == 4)
        n100 = 3; /* last day of a 400-year cycle */
    r -= n100 * 36524;
    int64_t n4 = r / 1461;
    r %= 1461;
    int64_t n1 = r / 365;
    if (n1 == 4)
        n1 = 3; /* last day of a 4-year cycle */
    r -= n1 * 365;
    int year = (int)(400 * n400 + 100 * n100 + 4 * n4 + n1 + 1);
    int month = 1;
    while (month < 12 && r >= days_before_month[month + 1] + (month + 1 > 2 && is_leap(year)))
        month++;
    *y = year;
    *m = month;
    *d = (int)(r - days_before_month[month] - (month > 2 && is_leap(year))) + 1;
}

int64_t ftime_utc_us(int year, int month, int day, int hour, int minute, int second)
{
    if (month > 12) {
        year += (month - 1) / 12;
        month = (month - 1) % 12 + 1;
    }
    int64_t days = days_from_civil(year, month, day);
    return days * US_PER_DAY + ((int64_t)hour * 3600 + (int64_t)minute * 60 + second) * US_PER_SEC;
}

int64_t ftime_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * US_PER_SEC + ts.tv_nsec / 1000;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t clamp_us(int64_t us)
{
    int64_t min = ftime_utc_us(1, 1, 1, 0, 0, 0);
    int64_t max = ftime_utc_us(10000, 1, 1, 0, 0, 0) - 1;
    return us < min ? min : us > max ? max : us;
}

void ftime_from_us(int64_t us, ftime *out)
{
    us = clamp_us(us);
    int64_t days = floor_div(us, US_PER_DAY);
    int64_t rest = us - days * US_PER_DAY;
    memset(out, 0, sizeof *out);
    civil_from_days(days, &out->year, &out->month, &out->day);
    int64_t secs = rest / US_PER_SEC;
    out->usec = (int)(rest % US_PER_SEC);
    out->hour = (int)(secs / 3600);
    out->minute = (int)(secs / 60 % 60);
    out->second = (int)(secs % 60);
    out->frac_digits = 6;
    out->has_tz = 1;
    out->prec = FTIME_MILLI;
}

/* ---- parsing ------------------------------------------------------------------- */

/* Exactly k ASCII digits at s[*i..]; advances *i. */
static int num(const char *s, size_t n, size_t *i, int k, int *out)
{
    int v = 0;
    if (n - *i < (size_t)k)
        return -1;
    for (int j = 0; j < k; j++) {
        char c = s[*i + (size_t)j];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *i += (size_t)k;
    *out = v;
    return 0;
}

static int expect(const char *s, size_t n, size_t *i, char c)
{
    if (*i >= n || s[*i] != c)
        return -1;
    (*i)++;
    return 0;
}

/* hh:mm:ss[.f+] */
static int parse_clock(const char *s, size_t n, size_t *i, ftime *t)
{
    if (num(s, n, i, 2, &t->hour) || t->hour > 23 || expect(s, n, i, ':') ||
        num(s, n, i, 2, &t->minute) || t->minute > 59 || expect(s, n, i, ':') ||
        num(s, n, i, 2, &t->second) || t->second > 59)
        return -1;
    t->prec = FTIME_SECOND;
    if (*i < n && s[*i] == '.') {
        (*i)++;
        int digits = 0, usec = 0;
        while (*i < n && s[*i] >= '0' && s[*i] <= '9') {
            if (digits < 6)
                usec = usec * 10 + (s[*i] - '0');
            digits++;
            (*i)++;
        }
        if (digits == 0)
            return -1;
        for (int k = digits; k < 6; k++)
            usec *= 10;
        t->usec = usec;
        t->frac_digits = digits > 99 ? 99 : digits;
        t->prec = FTIME_MILLI;
    }
    return 0;
}

/* Z | (+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00) */
static int parse_zone(const char *s, size_t n, size_t *i, ftime *t)
{
    if (*i >= n)
        return -1;
    t->has_tz = 1;
    if (s[*i] == 'Z') {
        (*i)++;
        t->tz_min = 0;
        return 0;
    }
    int sign = s[*i] == '+' ? 1 : s[*i] == '-' ? -1 : 0, hh, mm;
    if (!sign)
        return -1;
    (*i)++;
    if (num(s, n, i, 2, &hh) || expect(s, n, i, ':') || num(s, n, i, 2, &mm) || mm > 59 ||
        hh > 14 || (hh == 14 && mm != 0))
        return -1;
    t->tz_min = sign * (hh * 60 + mm);
    return 0;
}

enum kind { K_DATE, K_DATETIME, K_INSTANT };

static int parse_dt(const char *s, size_t n, enum kind kind, ftime *t)
{
    size_t i = 0;
    memset(t, 0, sizeof *t);
    if (!s || num(s, n, &i, 4, &t->year) || t->year == 0)
        return ERR_INVALID;
    t->prec = FTIME_YEAR;
    if (i == n)
        return kind == K_INSTANT ? ERR_INVALID : 0;
    if (expect(s, n, &i, '-') || num(s, n, &i, 2, &t->month) || t->month < 1 || t->month > 12)
        return ERR_INVALID;
    t->prec = FTIME_MONTH;
    if (i == n)
        return kind == K_INSTANT ? ERR_INVALID : 0;
    if (expect(s, n, &i, '-') || num(s, n, &i, 2, &t->day) || t->day < 1 ||
        t->day > month_days(t->year, t->month))
        return ERR_INVALID;
    t->prec = FTIME_DAY;
    if (i == n)
        return kind == K_INSTANT ? ERR_INVALID : 0;
    if (kind == K_DATE || expect(s, n, &i, 'T') || parse_clock(s, n, &i, t) ||
        parse_zone(s, n, &i, t) || i != n)
        return ERR_INVALID;
    return 0;
}

int ftime_parse_date(const char *s, size_t n, ftime *out)
{
    return parse_dt(s, n, K_DATE, out);
}

int ftime_parse_datetime(const char *s, size_t n, ftime *out)
{
    return parse_dt(s, n, K_DATETIME, out);
}

int ftime_parse_instant(const char *s, size_t n, ftime *out)
{
    return parse_dt(s, n, K_INSTANT, out);
}

int ftime_parse_time(const char *s, size_t n, ftime *out)
{
    size_t i = 0;
    memset(out, 0, sizeof *out);
    if (!s || parse_clock(s, n, &i, out) || i != n)
        return ERR_INVALID;
    return 0;
}

int ftime_range(const ftime *t, int64_t *lo, int64_t *hi)
{
    if (t->year < 1 || t->year > 9999)
        return ERR_INVALID;
    int m = t->month ? t->month : 1, d = t->day ? t->day : 1;
    int64_t l = ftime_utc_us(t->year, m, d, t->hour, t->minute, t->second) + t->usec -
                (int64_t)t->tz_min * 60 * US_PER_SEC;
    int64_t h;
    switch (t->prec) {
    case FTIME_YEAR:
        h = ftime_utc_us(t->year + 1, 1, 1, 0, 0, 0);
        break;
    case FTIME_MONTH:
        h = ftime_utc_us(t->year, m + 1, 1, 0, 0, 0);
        break;
    case FTIME_DAY:
        h = l + US_PER_DAY;
        break;
    case FTIME_SECOND:
        h = l + US_PER_SEC;
        break;
    case FTIME_MILLI: {
        int64_t unit = 1;
        for (int k = t->frac_digits; k < 6; k++)
            unit *= 10;
        h = l + unit;
        break;
    }
    default:
        return ERR_INVALID;
    }
    *lo = l;
    *hi = h;
    return 0;
}

/* ---- formatting ---------------------------------------------------------------- */

static void put2(char *o, int v)
{
    o[0] = (char)('0' + v / 10 % 10);
    o[1] = (char)('0' + v % 10);
}

static void put4(char *o, int v)
{
    put2(o, v / 100);
    put2(o + 2, v % 100);
}

size_t ftime_format_instant(int64_t us, char *out)
{
    ftime t;
    ftime_from_us(clamp_us(us), &t);
    /* YYYY-MM-DDThh:mm:ss.sssZ */
    put4(out, t.year);
    out[4] = '-';
    put2(out + 5, t.month);
    out[7] = '-';
    put2(out + 8, t.day);
    out[10] = 'T';
    put2(out + 11, t.hour);
    out[13] = ':';
    put2(out + 14, t.minute);
    out[16] = ':';
    put2(out + 17, t.second);
    out[19] = '.';
    int ms = t.usec / 1000;
    out[20] = (char)('0' + ms / 100);
    put2(out + 21, ms % 100);
    out[23] = 'Z';
    out[24] = 0;
    return FTIME_INSTANT_LEN;
}

size_t ftime_format_http(int64_t us, char *out)
{
    ftime t;
    us = clamp_us(us);
    ftime_from_us(us, &t);
    int64_t days = floor_div(us, US_PER_DAY);
    int wd = (int)(((days + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
    /* Sun, 06 Nov 1994 08:49:37 GMT */
    memcpy(out, day_names[wd], 3);
    memcpy(out + 3, ", ", 2);
    put2(out + 5, t.day);
    out[7] = ' ';
    memcpy(out + 8, mon_names[t.month - 1], 3);
    out[11] = ' ';
    put4(out + 12, t.year);
    out[16] = ' ';
    put2(out + 17, t.hour);
    out[19] = ':';
    put2(out + 20, t.minute);
    out[22] = ':';
    put2(out + 23, t.second);
    memcpy(out + 25, " GMT", 4);
    out[29] = 0;
    return FTIME_HTTP_LEN;
}

/* ---- HTTP-date ----------------------------------------------------------------- */

static int match_name(const char *s, size_t n, size_t *i, const char *const *names, int count)
{
    for (int k = 0; k < count; k++) {
        size_t len = strlen(names[k]);
        if (n - *i >= len && memcmp(s + *i, names[k], len) == 0) {
            *i += len;
            return k;
        }
    }
    return -1;
}

static int hms(const char *s, size_t n, size_t *i, int *h, int *m, int *sec)
{
    /* RFC 7231 allows second 60 (a leap second); it is counted into the next minute */
    if (num(s, n, i, 2, h) || *h > 23 || expect(s, n, i, ':') || num(s, n, i, 2, m) || *m > 59 ||
        expect(s, n, i, ':') || num(s, n, i, 2, sec) || *sec > 60)
        return -1;
    return 0;
}

int ftime_parse_http(const char *s, size_t n, int64_t *us)
{
    size_t i = 0;
    int day, mon, year, h, m, sec;
    if (!s)
        return ERR_INVALID;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    size_t start = i;
    if (match_name(s, n, &i, day_names_long, 7) >= 0) {
        /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
        if (expect(s, n, &i, ',') || expect(s, n, &i, ' ') || num(s, n, &i, 2, &day) ||
            expect(s, n, &i, '-') || (mon = match_name(s, n, &i, mon_names, 12)) < 0 ||
            expect(s, n, &i, '-') || num(s, n, &i, 2, &year) || expect(s, n, &i, ' ') ||
            hms(s, n, &i, &h, &m, &sec) || n - i != 4 || memcmp(s + i, " GMT", 4) != 0)
            return ERR_INVALID;
        year += year < 70 ? 2000 : 1900;
    } else {
        i = start;
        if (match_name(s, n, &i, day_names, 7) < 0)
            return ERR_INVALID;
        if (i < n && s[i] == ',') {
            /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
            i++;
            if (expect(s, n, &i, ' ') || num(s, n, &i, 2, &day) || expect(s, n, &i, ' ') ||
                (mon = match_name(s, n, &i, mon_names, 12)) < 0 || expect(s, n, &i, ' ') ||
                num(s, n, &i, 4, &year) || expect(s, n, &i, ' ') || hms(s, n, &i, &h, &m, &sec) ||
                n - i != 4 || memcmp(s + i, " GMT", 4) != 0)
                return ERR_INVALID;
        } else {
            /* asctime: Sun Nov  6 08:49:37 1994 */
            if (expect(s, n, &i, ' ') || (mon = match_name(s, n, &i, mon_names, 12)) < 0 ||
                expect(s, n, &i, ' '))
                return ERR_INVALID;
            if (i < n && s[i] == ' ') {
                i++;
                if (num(s, n, &i, 1, &day))
                    return ERR_INVALID;
            } else if (num(s, n, &i, 2, &day)) {
                return ERR_INVALID;
            }
            if (expect(s, n, &i, ' ') || hms(s, n, &i, &h, &m, &sec) || expect(s, n, &i, ' ') ||
                num(s, n, &i, 4, &year) || i != n)
                return ERR_INVALID;
        }
    }
    mon += 1;
    if (year < 1 || day < 1 || day > month_days(year, mon))
        return ERR_INVALID;
    *us = ftime_utc_us(year, mon, day, h, m, sec);
    return 0;
}
