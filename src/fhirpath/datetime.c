/*
 * datetime.c -- FHIRPath Date/DateTime/Time with partial precision (see datetime.h).
 *
 * Values are kept as the fields that were written plus a precision level, never as an
 * instant, because comparison and output both depend on what was written. Arithmetic
 * that crosses field boundaries (adding days, hours, normalising to UTC) goes through a
 * day number (days since 1970-01-01 in the proleptic Gregorian calendar) and back; month
 * arithmetic is done on (year, month) with the day clamped to the month's length.
 */
#include "fhirpath/datetime.h"

#include <stdio.h>
#include <string.h>

#include "base/err.h"

#define MS_PER_MIN 60000LL
#define MS_PER_HOUR 3600000LL
#define MS_PER_DAY 86400000LL

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const uint8_t len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* Days since 1970-01-01 of a civil date (era-based; valid far beyond 1..9999). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t mp = (m + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = era * 400 + yoe + (*m <= 2);
}

/* Local milliseconds since the epoch of the fields (missing fields at their minimum). */
static int64_t local_ms(const fp_dt *v)
{
    int64_t days = v->kind == FP_DT_TIME ? 0 : days_from_civil(v->year, v->month, v->day);
    return days * MS_PER_DAY + v->hour * MS_PER_HOUR + v->minute * MS_PER_MIN + v->second * 1000LL +
           v->ms;
}

/* Set the date and time fields from local epoch milliseconds; ERR_TOOBIG out of range. */
static int set_local_ms(fp_dt *v, int64_t t)
{
    int64_t days = t / MS_PER_DAY, rem = t % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    if (v->kind != FP_DT_TIME) {
        int64_t y;
        int m, d;
        civil_from_days(days, &y, &m, &d);
        if (y < 1 || y > 9999)
            return ERR_TOOBIG;
        v->year = (int16_t)y;
        v->month = (uint8_t)m;
        v->day = (uint8_t)d;
    }
    v->hour = (uint8_t)(rem / MS_PER_HOUR);
    v->minute = (uint8_t)(rem / MS_PER_MIN % 60);
    v->second = (uint8_t)(rem / 1000 % 60);
    v->ms = (uint16_t)(rem % 1000);
    return 0;
}

/* ---- parsing ------------------------------------------------------------------------------ */

/* Exactly `k` digits at s[*i]; advances. -1 when not. */
static int digits(const char *s, size_t n, size_t *i, int k)
{
    int v = 0;
    for (int j = 0; j < k; j++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (s[(*i)++] - '0');
    }
    return v;
}

enum { P_LITERAL = 1, P_TIME_ONLY = 2 };

/* The time part "hh[:mm[:ss[.f+]]]" into v (prec set); returns 0 or ERR_INVALID.
 * need_minutes: FHIR JSON requires at least hh:mm. */
static int parse_clock(const char *s, size_t n, size_t *i, fp_dt *v, int need_minutes)
{
    int h = digits(s, n, i, 2);
    if (h < 0 || h > 23)
        return ERR_INVALID;
    v->hour = (uint8_t)h;
    v->prec = FP_DT_HOUR;
    if (*i < n && s[*i] == ':') {
        (*i)++;
        int mi = digits(s, n, i, 2);
        if (mi < 0 || mi > 59)
            return ERR_INVALID;
        v->minute = (uint8_t)mi;
        v->prec = FP_DT_MINUTE;
        if (*i < n && s[*i] == ':') {
            (*i)++;
            int se = digits(s, n, i, 2);
            if (se < 0 || se > 59)
                return ERR_INVALID;
            v->second = (uint8_t)se;
            v->prec = FP_DT_SECOND;
            if (*i < n && s[*i] == '.') {
                (*i)++;
                int nd = 0, ms = 0;
                while (*i < n && s[*i] >= '0' && s[*i] <= '9') {
                    if (nd < 3)
                        ms = ms * 10 + (s[*i] - '0');
                    nd++;
                    (*i)++;
                }
                if (nd == 0 || nd > 9)
                    return ERR_INVALID;
                for (int k = nd; k < 3; k++)
                    ms *= 10;
                v->ms = (uint16_t)ms;
                v->ms_digits = (uint8_t)nd;
                v->prec = FP_DT_MS;
            }
        }
    } else if (need_minutes) {
        return ERR_INVALID;
    }
    return 0;
}

static int parse_tz(const char *s, size_t n, size_t *i, fp_dt *v)
{
    if (*i >= n)
        return 0;
    if (s[*i] == 'Z') {
        (*i)++;
        v->has_tz = 1;
        v->tz_min = 0;
        return 0;
    }
    if (s[*i] != '+' && s[*i] != '-')
        return ERR_INVALID;
    int neg = s[*i] == '-';
    (*i)++;
    int h = digits(s, n, i, 2);
    if (h < 0 || *i >= n || s[*i] != ':')
        return ERR_INVALID;
    (*i)++;
    int m = digits(s, n, i, 2);
    if (m < 0 || m > 59 || h * 60 + m > 14 * 60)
        return ERR_INVALID;
    v->has_tz = 1;
    v->tz_min = (int16_t)(neg ? -(h * 60 + m) : h * 60 + m);
    return 0;
}

/* literal: FHIRPath form (trailing 'T', hour-only times); else FHIR JSON form. */
static int parse_date_time(const char *s, size_t n, int literal, fp_dt *out)
{
    fp_dt v;
    memset(&v, 0, sizeof v);
    v.month = v.day = 1;
    size_t i = 0;
    int rc;
    if (n > 0 && s[0] == 'T') {
        if (!literal)
            return ERR_INVALID;
        i = 1;
        v.kind = FP_DT_TIME;
        if ((rc = parse_clock(s, n, &i, &v, 0)) < 0)
            return rc;
        if (i != n)
            return ERR_INVALID;
        *out = v;
        return 0;
    }
    int y = digits(s, n, &i, 4);
    if (y < 1)
        return ERR_INVALID;
    v.year = (int16_t)y;
    v.prec = FP_DT_YEAR;
    v.kind = FP_DT_DATE;
    if (i < n && s[i] == '-') {
        i++;
        int m = digits(s, n, &i, 2);
        if (m < 1 || m > 12)
            return ERR_INVALID;
        v.month = (uint8_t)m;
        v.prec = FP_DT_MONTH;
        if (i < n && s[i] == '-') {
            i++;
            int d = digits(s, n, &i, 2);
            if (d < 1 || d > month_days(y, m))
                return ERR_INVALID;
            v.day = (uint8_t)d;
            v.prec = FP_DT_DAY;
        }
    }
    if (i < n && s[i] == 'T') {
        i++;
        v.kind = FP_DT_DATETIME;
        if (i == n) {
            if (!literal)
                return ERR_INVALID;
        } else {
            if (v.prec != FP_DT_DAY)
                return ERR_INVALID;
            if ((rc = parse_clock(s, n, &i, &v, !literal)) < 0)
                return rc;
            if ((rc = parse_tz(s, n, &i, &v)) < 0)
                return rc;
        }
    }
    if (i != n)
        return ERR_INVALID;
    *out = v;
    return 0;
}

int fp_dt_parse_literal(const char *text, size_t n, fp_dt *out)
{
    return parse_date_time(text, n, 1, out);
}

int fp_dt_parse_fhir(const char *text, size_t n, fp_dt *out)
{
    return parse_date_time(text, n, 0, out);
}

int fp_dt_parse_time(const char *text, size_t n, fp_dt *out)
{
    fp_dt v;
    memset(&v, 0, sizeof v);
    v.month = v.day = 1;
    v.kind = FP_DT_TIME;
    size_t i = 0;
    if (n > 0 && text[0] == 'T')
        i = 1;
    int rc = parse_clock(text, n, &i, &v, 0);
    if (rc < 0)
        return rc;
    if (i != n)
        return ERR_INVALID;
    *out = v;
    return 0;
}

int fp_dt_from_string(const char *text, size_t n, enum fp_dt_kind want, fp_dt *out)
{
    fp_dt v;
    int rc;
    if (want == FP_DT_TIME)
        return fp_dt_parse_time(text, n, out);
    if ((rc = parse_date_time(text, n, 1, &v)) < 0)
        return rc;
    if (v.kind == FP_DT_TIME)
        return ERR_INVALID;
    if (want == FP_DT_DATE && v.kind == FP_DT_DATETIME) {
        if (v.prec > FP_DT_DAY)
            v.prec = FP_DT_DAY;
        v.hour = v.minute = v.second = 0;
        v.ms = 0;
        v.ms_digits = 0;
        v.has_tz = 0;
        v.tz_min = 0;
        v.kind = FP_DT_DATE;
    } else if (want == FP_DT_DATETIME) {
        v.kind = FP_DT_DATETIME;
    }
    *out = v;
    return 0;
}

/* ---- output ---------------------------------------------------------------------------------- */

size_t fp_dt_format(fp_dt v, char *dst, size_t cap)
{
    char tmp[FP_DT_TEXT_MAX];
    size_t n = 0;
#define PUT(...) n += (size_t)snprintf(tmp + n, sizeof tmp - n, __VA_ARGS__)
    if (v.kind != FP_DT_TIME) {
        PUT("%04d", v.year);
        if (v.prec >= FP_DT_MONTH)
            PUT("-%02d", v.month);
        if (v.prec >= FP_DT_DAY)
            PUT("-%02d", v.day);
        if (v.prec >= FP_DT_HOUR)
            PUT("T");
    }
    if (v.prec >= FP_DT_HOUR) {
        PUT("%02d", v.hour);
        if (v.prec >= FP_DT_MINUTE)
            PUT(":%02d", v.minute);
        if (v.prec >= FP_DT_SECOND)
            PUT(":%02d", v.second);
        if (v.prec >= FP_DT_MS)
            PUT(".%03d", v.ms);
        if (v.kind == FP_DT_DATETIME && v.has_tz) {
            if (v.tz_min == 0) {
                PUT("Z");
            } else {
                int t = v.tz_min < 0 ? -v.tz_min : v.tz_min;
                PUT("%c%02d:%02d", v.tz_min < 0 ? '-' : '+', t / 60, t % 60);
            }
        }
    }
#undef PUT
    if (n >= sizeof tmp)
        n = sizeof tmp - 1;
    size_t len = n < cap ? n : (cap ? cap - 1 : 0);
    memcpy(dst, tmp, len);
    if (cap)
        dst[len] = '\0';
    return len;
}

void fp_dt_write(fp_dt v, buf *b)
{
    char tmp[FP_DT_TEXT_MAX];
    size_t n = fp_dt_format(v, tmp, sizeof tmp);
    buf_put(b, tmp, n);
}

fp_dt fp_dt_to_datetime(fp_dt v)
{
    if (v.kind == FP_DT_DATE)
        v.kind = FP_DT_DATETIME;
    return v;
}

/* ---- comparison ---------------------------------------------------------------------------- */

/* Field-by-field comparison, seconds and milliseconds as one precision level. */
static int cmp_fields(const fp_dt *a, const fp_dt *b, int *out)
{
    int pa = a->prec > FP_DT_SECOND ? FP_DT_SECOND : a->prec;
    int pb = b->prec > FP_DT_SECOND ? FP_DT_SECOND : b->prec;
    int first = a->kind == FP_DT_TIME ? FP_DT_HOUR : FP_DT_YEAR;
    for (int p = first; p <= FP_DT_SECOND; p++) {
        if (p > pa || p > pb) {
            if (pa == pb) {
                *out = 0;
                return 0;
            }
            return FP_EMPTY;
        }
        long x, y;
        switch (p) {
        case FP_DT_YEAR:
            x = a->year, y = b->year;
            break;
        case FP_DT_MONTH:
            x = a->month, y = b->month;
            break;
        case FP_DT_DAY:
            x = a->day, y = b->day;
            break;
        case FP_DT_HOUR:
            x = a->hour, y = b->hour;
            break;
        case FP_DT_MINUTE:
            x = a->minute, y = b->minute;
            break;
        default:
            x = a->second * 1000L + a->ms, y = b->second * 1000L + b->ms;
            break;
        }
        if (x != y) {
            *out = x < y ? -1 : 1;
            return 0;
        }
    }
    *out = 0;
    return 0;
}

/* v shifted to UTC by offset tz (fields change, has_tz cleared). */
static fp_dt shift_to_utc(fp_dt v, int tz)
{
    fp_dt r = v;
    if (set_local_ms(&r, local_ms(&v) - tz * MS_PER_MIN) < 0)
        return v; /* year 0 or 10000 after shifting: compare unshifted (edge of range) */
    r.has_tz = 0;
    r.tz_min = 0;
    return r;
}

int fp_dt_cmp(fp_dt a, fp_dt b, int *out)
{
    if ((a.kind == FP_DT_TIME) != (b.kind == FP_DT_TIME))
        return ERR_INVALID;
    a = fp_dt_to_datetime(a);
    b = fp_dt_to_datetime(b);
    if (a.kind == FP_DT_DATETIME && b.kind == FP_DT_DATETIME && a.prec >= FP_DT_HOUR &&
        b.prec >= FP_DT_HOUR) {
        if (a.has_tz && b.has_tz && a.tz_min == b.tz_min)
            return cmp_fields(&a, &b, out); /* same offset: no shifting needed */
        if (a.has_tz && b.has_tz) {
            fp_dt ua = shift_to_utc(a, a.tz_min), ub = shift_to_utc(b, b.tz_min);
            return cmp_fields(&ua, &ub, out);
        }
        if (a.has_tz != b.has_tz) {
            /* The offset-less side lies somewhere between UTC-12:00 and UTC+14:00. */
            int flip = !a.has_tz;
            fp_dt z = flip ? b : a, local = flip ? a : b;
            fp_dt uz = shift_to_utc(z, z.tz_min);
            fp_dt early = shift_to_utc(local, 14 * 60), late = shift_to_utc(local, -12 * 60);
            int c1, c2;
            if (cmp_fields(&uz, &early, &c1) != 0 || cmp_fields(&uz, &late, &c2) != 0 || c1 != c2 ||
                c1 == 0)
                return FP_EMPTY;
            *out = flip ? -c1 : c1;
            return 0;
        }
    }
    return cmp_fields(&a, &b, out);
}

int fp_dt_eq(fp_dt a, fp_dt b, bool *out)
{
    int c;
    if ((a.kind == FP_DT_TIME) != (b.kind == FP_DT_TIME)) {
        *out = false;
        return 0;
    }
    int rc = fp_dt_cmp(a, b, &c);
    if (rc != 0)
        return rc < 0 ? FP_EMPTY : rc;
    *out = c == 0;
    return 0;
}

bool fp_dt_equiv(fp_dt a, fp_dt b)
{
    int pa = a.prec > FP_DT_SECOND ? FP_DT_SECOND : a.prec;
    int pb = b.prec > FP_DT_SECOND ? FP_DT_SECOND : b.prec;
    if (pa != pb || (a.kind == FP_DT_TIME) != (b.kind == FP_DT_TIME))
        return false;
    bool eq;
    return fp_dt_eq(a, b, &eq) == 0 && eq;
}

/* ---- arithmetic --------------------------------------------------------------------------------
 */

static const int64_t unit_ms[] = {
    [FP_DTU_WEEK] = 7 * MS_PER_DAY, [FP_DTU_DAY] = MS_PER_DAY, [FP_DTU_HOUR] = MS_PER_HOUR,
    [FP_DTU_MINUTE] = MS_PER_MIN,   [FP_DTU_SECOND] = 1000,    [FP_DTU_MS] = 1,
};

static int add_months(fp_dt *v, int64_t months)
{
    int64_t total = (int64_t)v->year * 12 + (v->month - 1) + months;
    int64_t y = total >= 0 ? total / 12 : -((-total + 11) / 12);
    int m = (int)(total - y * 12) + 1;
    if (y < 1 || y > 9999)
        return ERR_TOOBIG;
    v->year = (int16_t)y;
    v->month = (uint8_t)m;
    int md = month_days((int)y, m);
    if (v->day > md)
        v->day = (uint8_t)md;
    return 0;
}

int fp_dt_add(fp_dt v, int sign, fp_dec amount, enum fp_dt_unit unit, fp_dt *out)
{
    int64_t n;
    if (unit == FP_DTU_NONE || fp_dec_to_i64(fp_dec_truncate(amount), &n) < 0 ||
        n > 1000000000000LL || n < -1000000000000LL)
        return unit == FP_DTU_NONE ? ERR_INVALID : ERR_TOOBIG;
    n *= sign < 0 ? -1 : 1;
    int rc;
    int64_t d = 0;
    /* |d| stays below ~10^16 ms (300000 years): no overflow below, and far past 9999. */
    if (unit >= FP_DTU_WEEK && (__builtin_mul_overflow(n, unit_ms[unit], &d) ||
                                d > 10000000000000000LL || d < -10000000000000000LL))
        return ERR_TOOBIG;
    if (v.kind == FP_DT_TIME) {
        if (unit < FP_DTU_HOUR)
            return ERR_INVALID;
        static const int64_t prec_ms[] = {[FP_DT_HOUR] = MS_PER_HOUR,
                                          [FP_DT_MINUTE] = MS_PER_MIN,
                                          [FP_DT_SECOND] = 1000,
                                          [FP_DT_MS] = 1};
        d = d / prec_ms[v.prec] * prec_ms[v.prec];
        int64_t t = (local_ms(&v) + d) % MS_PER_DAY;
        if (t < 0)
            t += MS_PER_DAY;
        set_local_ms(&v, t);
        *out = v;
        return 0;
    }
    if (unit == FP_DTU_YEAR || unit == FP_DTU_MONTH) {
        int64_t months = unit == FP_DTU_YEAR ? n * 12 : n;
        if (v.prec == FP_DT_YEAR)
            months = months / 12 * 12;
        if ((rc = add_months(&v, months)) < 0)
            return rc;
        *out = v;
        return 0;
    }
    if (v.prec == FP_DT_YEAR) {
        rc = add_months(&v, d / (365 * MS_PER_DAY) * 12);
    } else if (v.prec == FP_DT_MONTH) {
        rc = add_months(&v, d / (30 * MS_PER_DAY));
    } else {
        static const int64_t prec_ms[] = {[FP_DT_DAY] = MS_PER_DAY,
                                          [FP_DT_HOUR] = MS_PER_HOUR,
                                          [FP_DT_MINUTE] = MS_PER_MIN,
                                          [FP_DT_SECOND] = 1000,
                                          [FP_DT_MS] = 1};
        d = d / prec_ms[v.prec] * prec_ms[v.prec];
        rc = set_local_ms(&v, local_ms(&v) + d);
    }
    if (rc < 0)
        return rc;
    *out = v;
    return 0;
}

/* ---- precision and boundaries ---------------------------------------------------------------- */

static const int8_t dt_digits[] = {
    [FP_DT_YEAR] = 4,    [FP_DT_MONTH] = 6,   [FP_DT_DAY] = 8, [FP_DT_HOUR] = 10,
    [FP_DT_MINUTE] = 12, [FP_DT_SECOND] = 14, [FP_DT_MS] = 17};
static const int8_t time_digits[] = {
    [FP_DT_HOUR] = 2, [FP_DT_MINUTE] = 4, [FP_DT_SECOND] = 6, [FP_DT_MS] = 9};

int fp_dt_precision(fp_dt v)
{
    return v.kind == FP_DT_TIME ? time_digits[v.prec] : dt_digits[v.prec];
}

static int dt_boundary(fp_dt v, int p, int high, fp_dt *out)
{
    int target = 0;
    if (p < 0)
        target = v.kind == FP_DT_DATE ? FP_DT_DAY : FP_DT_MS;
    for (int k = FP_DT_YEAR; k <= FP_DT_MS && !target; k++) {
        if (v.kind == FP_DT_TIME ? (k >= FP_DT_HOUR && time_digits[k] == p) : dt_digits[k] == p)
            target = k;
    }
    if (!target || (v.kind == FP_DT_DATE && target > FP_DT_DAY))
        return FP_EMPTY;
    fp_dt r = v;
    for (int k = v.prec + 1; k <= target; k++) {
        switch (k) {
        case FP_DT_MONTH:
            r.month = high ? 12 : 1;
            break;
        case FP_DT_DAY:
            r.day = (uint8_t)(high ? month_days(r.year, r.month) : 1);
            break;
        case FP_DT_HOUR:
            r.hour = high ? 23 : 0;
            break;
        case FP_DT_MINUTE:
            r.minute = high ? 59 : 0;
            break;
        case FP_DT_SECOND:
            r.second = high ? 59 : 0;
            break;
        case FP_DT_MS:
            r.ms = high ? 999 : 0;
            break;
        }
    }
    r.prec = (uint8_t)target;
    r.ms_digits = target == FP_DT_MS ? 3 : 0;
    if (r.kind == FP_DT_DATETIME) {
        if (target < FP_DT_HOUR) {
            r.has_tz = 0;
            r.tz_min = 0;
        } else if (!r.has_tz) {
            r.has_tz = 1;
            r.tz_min = (int16_t)(high ? -12 * 60 : 14 * 60);
        }
    }
    *out = r;
    return 0;
}

int fp_dt_low_boundary(fp_dt v, int p, fp_dt *out)
{
    return dt_boundary(v, p, 0, out);
}

int fp_dt_high_boundary(fp_dt v, int p, fp_dt *out)
{
    return dt_boundary(v, p, 1, out);
}

/* ---- clock helpers ------------------------------------------------------------------------------
 */

static fp_dt from_unix(int64_t unix_ms, int tz_min, int kind, int prec)
{
    fp_dt v;
    memset(&v, 0, sizeof v);
    v.kind = (uint8_t)kind;
    v.month = v.day = 1;
    set_local_ms(&v, unix_ms + tz_min * MS_PER_MIN);
    v.prec = (uint8_t)prec;
    if (kind == FP_DT_DATETIME) {
        v.has_tz = 1;
        v.tz_min = (int16_t)tz_min;
        v.ms_digits = 3;
    } else if (kind == FP_DT_DATE) {
        v.hour = v.minute = v.second = 0;
        v.ms = 0;
    } else {
        v.year = 0;
        v.month = v.day = 1;
        v.ms_digits = 3;
    }
    return v;
}

fp_dt fp_dt_now(int64_t unix_ms, int tz_min)
{
    return from_unix(unix_ms, tz_min, FP_DT_DATETIME, FP_DT_MS);
}

fp_dt fp_dt_today(int64_t unix_ms, int tz_min)
{
    return from_unix(unix_ms, tz_min, FP_DT_DATE, FP_DT_DAY);
}

fp_dt fp_dt_time_of_day(int64_t unix_ms, int tz_min)
{
    return from_unix(unix_ms, tz_min, FP_DT_TIME, FP_DT_MS);
}

int64_t fp_dt_to_unix_ms(fp_dt v)
{
    int64_t t = local_ms(&v);
    if (v.kind == FP_DT_DATETIME && v.has_tz)
        t -= v.tz_min * MS_PER_MIN;
    return t;
}

void fp_dt_range_ms(fp_dt v, int assume_tz_min, int64_t *lo_ms, int64_t *hi_ms)
{
    if (!v.has_tz && v.kind != FP_DT_TIME) {
        v.has_tz = 1;
        v.tz_min = (int16_t)assume_tz_min;
    }
    fp_dt lo = v, hi = v;
    /* Fill the missing fields by hand (not dt_boundary, which would also invent offsets). */
    for (int k = v.prec + 1; k <= FP_DT_MS; k++) {
        switch (k) {
        case FP_DT_MONTH:
            lo.month = 1, hi.month = 12;
            break;
        case FP_DT_DAY:
            lo.day = 1, hi.day = (uint8_t)month_days(hi.year, hi.month);
            break;
        case FP_DT_HOUR:
            lo.hour = 0, hi.hour = 23;
            break;
        case FP_DT_MINUTE:
            lo.minute = 0, hi.minute = 59;
            break;
        case FP_DT_SECOND:
            lo.second = 0, hi.second = 59;
            break;
        default:
            lo.ms = 0, hi.ms = 999;
            break;
        }
    }
    lo.prec = hi.prec = FP_DT_MS;
    if (v.kind == FP_DT_DATE)
        lo.kind = hi.kind = FP_DT_DATETIME;
    *lo_ms = fp_dt_to_unix_ms(lo);
    *hi_ms = fp_dt_to_unix_ms(hi);
}
