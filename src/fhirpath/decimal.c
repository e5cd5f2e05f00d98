/*
 * decimal.c -- exact base-10 arithmetic for FHIRPath decimals (see decimal.h).
 *
 * The common case (a few digits, small scales) runs on the signed 128-bit coefficient
 * with the compiler's overflow builtins. When an intermediate result can exceed 128 bits
 * (aligning scales of long numbers, products of two long coefficients, quotients at full
 * precision) the magnitude is carried in a 256-bit unsigned integer (u256, two 128-bit
 * halves) and brought back by dec_fit(), which rounds away fractional digits past
 * FP_DEC_MAX_SCALE or past 38 significant digits, and reports ERR_TOOBIG when even the
 * integer part does not fit. Everything is on the stack; nothing allocates.
 */
#include "fhirpath/decimal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

typedef unsigned __int128 u128;

typedef struct u256 {
    u128 hi, lo;
} u256;

#define U64_MASK ((u128)0xFFFFFFFFFFFFFFFFull)
#define P10_19 10000000000000000000ull

/* 10^k for k = 0..38. */
static const u128 P10[39] = {
    (u128)1ull,
    (u128)10ull,
    (u128)100ull,
    (u128)1000ull,
    (u128)10000ull,
    (u128)100000ull,
    (u128)1000000ull,
    (u128)10000000ull,
    (u128)100000000ull,
    (u128)1000000000ull,
    (u128)10000000000ull,
    (u128)100000000000ull,
    (u128)1000000000000ull,
    (u128)10000000000000ull,
    (u128)100000000000000ull,
    (u128)1000000000000000ull,
    (u128)10000000000000000ull,
    (u128)100000000000000000ull,
    (u128)1000000000000000000ull,
    (u128)10000000000000000000ull,
    (u128)10ull * (u128)10000000000000000000ull,
    (u128)100ull * (u128)10000000000000000000ull,
    (u128)1000ull * (u128)10000000000000000000ull,
    (u128)10000ull * (u128)10000000000000000000ull,
    (u128)100000ull * (u128)10000000000000000000ull,
    (u128)1000000ull * (u128)10000000000000000000ull,
    (u128)10000000ull * (u128)10000000000000000000ull,
    (u128)100000000ull * (u128)10000000000000000000ull,
    (u128)1000000000ull * (u128)10000000000000000000ull,
    (u128)10000000000ull * (u128)10000000000000000000ull,
    (u128)100000000000ull * (u128)10000000000000000000ull,
    (u128)1000000000000ull * (u128)10000000000000000000ull,
    (u128)10000000000000ull * (u128)10000000000000000000ull,
    (u128)100000000000000ull * (u128)10000000000000000000ull,
    (u128)1000000000000000ull * (u128)10000000000000000000ull,
    (u128)10000000000000000ull * (u128)10000000000000000000ull,
    (u128)100000000000000000ull * (u128)10000000000000000000ull,
    (u128)1000000000000000000ull * (u128)10000000000000000000ull,
    (u128)10000000000000000000ull * (u128)10000000000000000000ull,
};

static u128 p10(int k)
{
    return P10[k];
}

static u128 dec_limit(void) /* 10^38: coefficients stay strictly below */
{
    return P10[38];
}

static u128 mag128(__int128 v)
{
    return v < 0 ? (u128)0 - (u128)v : (u128)v;
}

/* ---- u256 helpers ------------------------------------------------------------------ */

static u256 u256_from(u128 v)
{
    u256 r = {0, v};
    return r;
}

static int u256_cmp(u256 a, u256 b)
{
    if (a.hi != b.hi)
        return a.hi < b.hi ? -1 : 1;
    if (a.lo != b.lo)
        return a.lo < b.lo ? -1 : 1;
    return 0;
}

static int u256_is_zero(u256 a)
{
    return a.hi == 0 && a.lo == 0;
}

/* a + b; sets *ovf on carry out of 256 bits. */
static u256 u256_add(u256 a, u256 b, int *ovf)
{
    u256 r;
    r.lo = a.lo + b.lo;
    u128 carry = r.lo < a.lo;
    r.hi = a.hi + b.hi + carry;
    if (r.hi < a.hi || (carry && r.hi == a.hi))
        *ovf = 1;
    return r;
}

/* a - b for a >= b. */
static u256 u256_sub(u256 a, u256 b)
{
    u256 r;
    r.lo = a.lo - b.lo;
    r.hi = a.hi - b.hi - (a.lo < b.lo);
    return r;
}

/* Full 128 x 128 -> 256-bit product. */
static u256 u256_mul128(u128 a, u128 b)
{
    u128 a0 = a & U64_MASK, a1 = a >> 64, b0 = b & U64_MASK, b1 = b >> 64;
    u128 p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    u128 mid = (p00 >> 64) + (p01 & U64_MASK) + (p10 & U64_MASK);
    u256 r;
    r.lo = (p00 & U64_MASK) | (mid << 64);
    r.hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    return r;
}

/* a * m for a 64-bit m; sets *ovf when the product needs more than 256 bits. */
static u256 u256_mul64(u256 a, uint64_t m, int *ovf)
{
    uint64_t limb[4] = {(uint64_t)a.lo, (uint64_t)(a.lo >> 64), (uint64_t)a.hi,
                        (uint64_t)(a.hi >> 64)};
    u128 carry = 0;
    for (int i = 0; i < 4; i++) {
        u128 t = (u128)limb[i] * m + carry;
        limb[i] = (uint64_t)t;
        carry = t >> 64;
    }
    if (carry)
        *ovf = 1;
    u256 r = {((u128)limb[3] << 64) | limb[2], ((u128)limb[1] << 64) | limb[0]};
    return r;
}

/* a * 10^k; sets *ovf on overflow. */
static u256 u256_mul_p10(u256 a, int k, int *ovf)
{
    while (k > 0 && !*ovf) {
        int step = k > 19 ? 19 : k;
        a = u256_mul64(a, (uint64_t)p10(step), ovf);
        k -= step;
    }
    return a;
}

/* a / d with remainder for a 64-bit d > 0. */
static u256 u256_divmod64(u256 a, uint64_t d, uint64_t *rem)
{
    uint64_t limb[4] = {(uint64_t)(a.hi >> 64), (uint64_t)a.hi, (uint64_t)(a.lo >> 64),
                        (uint64_t)a.lo};
    u128 r = 0;
    for (int i = 0; i < 4; i++) {
        u128 cur = (r << 64) | limb[i];
        limb[i] = (uint64_t)(cur / d);
        r = cur % d;
    }
    if (rem)
        *rem = (uint64_t)r;
    u256 q = {((u128)limb[0] << 64) | limb[1], ((u128)limb[2] << 64) | limb[3]};
    return q;
}

/* a / b with remainder, b > 0, by shift-and-subtract (only on slow paths). */
static u256 u256_divmod(u256 a, u256 b, u256 *rem)
{
    if (a.hi == 0 && b.hi == 0) {
        u256 q = u256_from(a.lo / b.lo);
        if (rem)
            *rem = u256_from(a.lo % b.lo);
        return q;
    }
    u256 q = {0, 0}, r = {0, 0};
    for (int i = 255; i >= 0; i--) {
        r.hi = (r.hi << 1) | (r.lo >> 127);
        r.lo <<= 1;
        u128 bit = i >= 128 ? (a.hi >> (i - 128)) & 1 : (a.lo >> i) & 1;
        r.lo |= bit;
        if (u256_cmp(r, b) >= 0) {
            r = u256_sub(r, b);
            if (i >= 128)
                q.hi |= (u128)1 << (i - 128);
            else
                q.lo |= (u128)1 << i;
        }
    }
    if (rem)
        *rem = r;
    return q;
}

static int u256_digits(u256 a)
{
    int n = 0;
    while (a.hi != 0 || a.lo >= P10_19) {
        a = u256_divmod64(a, P10_19, NULL);
        n += 19;
    }
    uint64_t v = (uint64_t)a.lo;
    do {
        n++;
        v /= 10;
    } while (v);
    return n;
}

/* Drop the last k decimal digits of *m: toward zero, or half away from zero (round). */
static void u256_drop(u256 *m, int k, int round)
{
    if (k <= 0)
        return;
    if (k > 78) {
        *m = u256_from(0);
        return;
    }
    int rest = k - 1;
    while (rest > 0) {
        int step = rest > 19 ? 19 : rest;
        *m = u256_divmod64(*m, (uint64_t)p10(step), NULL);
        rest -= step;
    }
    uint64_t digit;
    *m = u256_divmod64(*m, 10, &digit);
    if (round && digit >= 5) {
        int ovf = 0;
        *m = u256_add(*m, u256_from(1), &ovf);
    }
}

/* Bring sign + magnitude + scale into an fp_dec: round to FP_DEC_MAX_SCALE and to 38
 * significant digits; ERR_TOOBIG when the integer part alone is too long. */
static int dec_fit(int neg, u256 mag, int scale, fp_dec *out)
{
    if (scale < 0) {
        int ovf = 0;
        mag = u256_mul_p10(mag, -scale, &ovf);
        if (ovf)
            return ERR_TOOBIG;
        scale = 0;
    }
    int drop = scale > FP_DEC_MAX_SCALE ? scale - FP_DEC_MAX_SCALE : 0;
    int nd = u256_digits(mag);
    if (nd - drop > FP_DEC_MAX_DIGITS)
        drop = nd - FP_DEC_MAX_DIGITS;
    if (drop > scale)
        return ERR_TOOBIG;
    u256_drop(&mag, drop, 1);
    scale -= drop;
    if (mag.hi != 0 || mag.lo >= dec_limit()) {
        if (scale == 0)
            return ERR_TOOBIG;
        u256_drop(&mag, 1, 1);
        scale--;
        if (mag.hi != 0 || mag.lo >= dec_limit())
            return ERR_TOOBIG;
    }
    out->coef = neg ? -(__int128)mag.lo : (__int128)mag.lo;
    out->scale = scale;
    return 0;
}

/* ---- construction and conversion ----------------------------------------------------- */

/* The common short form ("-12.50": at most 18 digits, no exponent) without u256 work.
 * Returns 1 when it handled the text, 0 to fall through to the general parser. */
static int dec_parse_short(const char *s, size_t n, int json, fp_dec *out)
{
    size_t i = 0;
    int neg = 0, digits = 0, frac = -1;
    uint64_t v = 0;
    if (n > 0 && (s[0] == '-' || (!json && s[0] == '+'))) {
        neg = s[0] == '-';
        i++;
    }
    size_t start = i;
    for (; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            if (++digits > 18)
                return 0;
            v = v * 10 + (uint64_t)(c - '0');
            if (frac >= 0)
                frac++;
        } else if (c == '.' && frac < 0 && i > start) {
            frac = 0;
        } else {
            return 0;
        }
    }
    if (digits == 0 || frac == 0)
        return 0; /* let the general parser report the error */
    out->coef = neg ? -(__int128)v : (__int128)v;
    out->scale = frac < 0 ? 0 : frac;
    return 1;
}

static int dec_parse(const char *s, size_t n, int json, fp_dec *out)
{
    size_t i = 0;
    int neg = 0;
    if (!s || n == 0)
        return ERR_INVALID;
    if (dec_parse_short(s, n, json, out))
        return 0;
    if (s[0] == '-' || (!json && s[0] == '+')) {
        neg = s[0] == '-';
        i++;
    }
    u256 mag = {0, 0};
    int sig = 0, frac = 0, ndig = 0, ovf = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (sig || s[i] != '0') {
            if (++sig > 76)
                return ERR_TOOBIG;
        }
        mag = u256_mul64(mag, 10, &ovf);
        mag = u256_add(mag, u256_from((u128)(s[i] - '0')), &ovf);
        i++;
        ndig++;
    }
    if (ndig == 0)
        return ERR_INVALID;
    if (i < n && s[i] == '.') {
        i++;
        int fd = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (sig || s[i] != '0')
                sig++;
            if (sig > 76 || frac > 200) {
                /* Digits that can only be rounded away: keep scanning, stop counting. */
                i++;
                fd++;
                continue;
            }
            mag = u256_mul64(mag, 10, &ovf);
            mag = u256_add(mag, u256_from((u128)(s[i] - '0')), &ovf);
            frac++;
            i++;
            fd++;
        }
        if (fd == 0)
            return ERR_INVALID;
    }
    long exp10 = 0;
    if (json && i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            eneg = s[i] == '-';
            i++;
        }
        int ed = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (exp10 < 100000)
                exp10 = exp10 * 10 + (s[i] - '0');
            i++;
            ed++;
        }
        if (ed == 0)
            return ERR_INVALID;
        if (eneg)
            exp10 = -exp10;
    }
    if (i != n || ovf)
        return i != n ? ERR_INVALID : ERR_TOOBIG;
    long scale = (long)frac - exp10;
    if (scale < -80)
        return u256_is_zero(mag) ? (out->coef = 0, out->scale = 0, 0) : ERR_TOOBIG;
    if (scale > 400) {
        out->coef = 0;
        out->scale = FP_DEC_MAX_SCALE;
        return 0;
    }
    return dec_fit(neg, mag, (int)scale, out);
}

int fp_dec_parse(const char *text, size_t n, fp_dec *out)
{
    return dec_parse(text, n, 0, out);
}

int fp_dec_parse_json(const char *text, size_t n, fp_dec *out)
{
    return dec_parse(text, n, 1, out);
}

fp_dec fp_dec_from_i64(int64_t v)
{
    fp_dec d = {v, 0};
    return d;
}

int fp_dec_from_double(double d, fp_dec *out)
{
    if (!isfinite(d))
        return FP_EMPTY;
    if (fabs(d) >= 1e38)
        return ERR_TOOBIG;
    char tmp[64];
    int len = snprintf(tmp, sizeof tmp, "%.15g", d);
    if (len <= 0 || (size_t)len >= sizeof tmp)
        return ERR_INTERNAL;
    fp_dec r;
    int rc = fp_dec_parse_json(tmp, (size_t)len, &r);
    if (rc < 0)
        return rc;
    *out = fp_dec_normalize(r);
    return 0;
}

double fp_dec_to_double(fp_dec a)
{
    char tmp[FP_DEC_TEXT_MAX];
    fp_dec_format(a, tmp, sizeof tmp);
    return strtod(tmp, NULL);
}

bool fp_dec_is_integral(fp_dec a)
{
    return a.scale == 0 || a.coef % (__int128)p10(a.scale) == 0;
}

int fp_dec_to_i64(fp_dec a, int64_t *out)
{
    __int128 v = a.coef / (__int128)p10(a.scale);
    if (v > INT64_MAX || v < INT64_MIN)
        return ERR_TOOBIG;
    *out = (int64_t)v;
    return 0;
}

size_t fp_dec_format(fp_dec a, char *dst, size_t cap)
{
    char rev[FP_DEC_TEXT_MAX];
    size_t n = 0;
    u128 m = mag128(a.coef);
    int scale = a.scale;
    do {
        rev[n++] = (char)('0' + (int)(m % 10));
        m /= 10;
        if (scale > 0 && (int)n == scale)
            rev[n++] = '.';
    } while (m != 0 || (int)n <= scale);
    /* "0.5": make sure a digit precedes the point. */
    if (rev[n - 1] == '.')
        rev[n++] = '0';
    size_t len = 0;
    if (a.coef < 0 && len + 1 < cap)
        dst[len++] = '-';
    while (n > 0 && len + 1 < cap)
        dst[len++] = rev[--n];
    if (cap > 0)
        dst[len < cap ? len : cap - 1] = '\0';
    return len;
}

void fp_dec_write(fp_dec a, buf *b)
{
    char tmp[FP_DEC_TEXT_MAX];
    size_t n = fp_dec_format(a, tmp, sizeof tmp);
    buf_put(b, tmp, n);
}

fp_dec fp_dec_normalize(fp_dec a)
{
    while (a.scale > 0 && a.coef % 10 == 0) {
        a.coef /= 10;
        a.scale--;
    }
    return a;
}

/* a with its magnitude's last k digits dropped (toward zero or half away from zero). */
static fp_dec dec_drop(fp_dec a, int k, int round)
{
    if (k <= 0)
        return a;
    if (k > a.scale)
        k = a.scale;
    u256 m = u256_from(mag128(a.coef));
    u256_drop(&m, k, round);
    fp_dec r = {a.coef < 0 ? -(__int128)m.lo : (__int128)m.lo, a.scale - k};
    return r;
}

int fp_dec_rescale(fp_dec a, int scale, fp_dec *out)
{
    if (scale < 0)
        scale = 0;
    if (scale > FP_DEC_MAX_SCALE)
        scale = FP_DEC_MAX_SCALE;
    if (scale <= a.scale) {
        *out = dec_drop(a, a.scale - scale, 1);
        return 0;
    }
    int ovf = 0;
    u256 m = u256_mul_p10(u256_from(mag128(a.coef)), scale - a.scale, &ovf);
    if (ovf || m.hi != 0 || m.lo >= dec_limit())
        return ERR_TOOBIG;
    out->coef = a.coef < 0 ? -(__int128)m.lo : (__int128)m.lo;
    out->scale = scale;
    return 0;
}

/* ---- comparison ------------------------------------------------------------------------ */

/* Magnitudes of a and b at the common (larger) scale. */
static void dec_align(fp_dec a, fp_dec b, u256 *ma, u256 *mb, int *scale)
{
    int ovf = 0;
    *ma = u256_from(mag128(a.coef));
    *mb = u256_from(mag128(b.coef));
    if (a.scale < b.scale)
        *ma = u256_mul_p10(*ma, b.scale - a.scale, &ovf);
    else if (b.scale < a.scale)
        *mb = u256_mul_p10(*mb, a.scale - b.scale, &ovf);
    *scale = a.scale > b.scale ? a.scale : b.scale;
    /* Scales are <= 28 and coefficients < 10^38: 10^66 fits in 256 bits, no overflow. */
}

int fp_dec_cmp(fp_dec a, fp_dec b)
{
    if (a.scale == b.scale)
        return a.coef < b.coef ? -1 : a.coef > b.coef;
    int sa = (a.coef > 0) - (a.coef < 0), sb = (b.coef > 0) - (b.coef < 0);
    if (sa != sb)
        return sa < sb ? -1 : 1;
    if (sa == 0)
        return 0;
    u256 ma, mb;
    int scale;
    dec_align(a, b, &ma, &mb, &scale);
    int c = u256_cmp(ma, mb);
    return sa < 0 ? -c : c;
}

bool fp_dec_eq(fp_dec a, fp_dec b)
{
    return fp_dec_cmp(a, b) == 0;
}

bool fp_dec_equiv(fp_dec a, fp_dec b)
{
    int s = a.scale < b.scale ? a.scale : b.scale;
    return fp_dec_eq(dec_drop(a, a.scale - s, 1), dec_drop(b, b.scale - s, 1));
}

/* ---- arithmetic ------------------------------------------------------------------------- */

static int dec_addsub(fp_dec a, fp_dec b, int negate_b, fp_dec *out)
{
    if (negate_b)
        b.coef = -b.coef;
    if (a.scale == b.scale) {
        __int128 r;
        if (!__builtin_add_overflow(a.coef, b.coef, &r) && mag128(r) < dec_limit()) {
            out->coef = r;
            out->scale = a.scale;
            return 0;
        }
    }
    u256 ma, mb;
    int scale;
    dec_align(a, b, &ma, &mb, &scale);
    int na = a.coef < 0, nb = b.coef < 0;
    if (na == nb) {
        int ovf = 0;
        u256 s = u256_add(ma, mb, &ovf);
        if (ovf)
            return ERR_TOOBIG;
        return dec_fit(na, s, scale, out);
    }
    if (u256_cmp(ma, mb) >= 0)
        return dec_fit(na, u256_sub(ma, mb), scale, out);
    return dec_fit(nb, u256_sub(mb, ma), scale, out);
}

int fp_dec_add(fp_dec a, fp_dec b, fp_dec *out)
{
    return dec_addsub(a, b, 0, out);
}

int fp_dec_sub(fp_dec a, fp_dec b, fp_dec *out)
{
    return dec_addsub(a, b, 1, out);
}

int fp_dec_mul(fp_dec a, fp_dec b, fp_dec *out)
{
    __int128 r;
    int scale = a.scale + b.scale;
    if (scale <= FP_DEC_MAX_SCALE && !__builtin_mul_overflow(a.coef, b.coef, &r) &&
        mag128(r) < dec_limit()) {
        out->coef = r;
        out->scale = scale;
        return 0;
    }
    u256 m = u256_mul128(mag128(a.coef), mag128(b.coef));
    return dec_fit((a.coef < 0) != (b.coef < 0), m, scale, out);
}

int fp_dec_div(fp_dec a, fp_dec b, fp_dec *out)
{
    if (b.coef == 0)
        return FP_EMPTY;
    u256 ma = u256_from(mag128(a.coef));
    u256 mb = u256_from(mag128(b.coef));
    /* quotient scale T: q = ma * 10^(T + sb - sa) / mb */
    int extra = FP_DEC_MAX_SCALE + b.scale - a.scale;
    int na = u256_digits(ma);
    if (na + extra > 76)
        extra = 76 - na;
    int qscale = extra - b.scale + a.scale;
    if (extra < 0 || qscale < 0)
        return ERR_TOOBIG;
    int ovf = 0;
    u256 num = u256_mul_p10(ma, extra, &ovf);
    if (ovf)
        return ERR_TOOBIG;
    u256 rem;
    u256 q = u256_divmod(num, mb, &rem);
    /* half away from zero: round up when 2 * rem >= mb */
    u256 twice = u256_add(rem, rem, &ovf);
    if (u256_cmp(twice, mb) >= 0)
        q = u256_add(q, u256_from(1), &ovf);
    fp_dec r;
    int rc = dec_fit((a.coef < 0) != (b.coef < 0), q, qscale, &r);
    if (rc < 0)
        return rc;
    int keep = a.scale > b.scale ? a.scale : b.scale;
    while (r.scale > keep && r.coef % 10 == 0) {
        r.coef /= 10;
        r.scale--;
    }
    *out = r;
    return 0;
}

int fp_dec_idiv(fp_dec a, fp_dec b, fp_dec *out)
{
    if (b.coef == 0)
        return FP_EMPTY;
    u256 ma, mb;
    int scale;
    dec_align(a, b, &ma, &mb, &scale);
    u256 q = u256_divmod(ma, mb, NULL);
    return dec_fit((a.coef < 0) != (b.coef < 0), q, 0, out);
}

int fp_dec_mod(fp_dec a, fp_dec b, fp_dec *out)
{
    if (b.coef == 0)
        return FP_EMPTY;
    u256 ma, mb, rem;
    int scale;
    dec_align(a, b, &ma, &mb, &scale);
    u256_divmod(ma, mb, &rem);
    return dec_fit(a.coef < 0, rem, scale, out);
}

fp_dec fp_dec_neg(fp_dec a)
{
    a.coef = -a.coef;
    return a;
}

fp_dec fp_dec_abs(fp_dec a)
{
    if (a.coef < 0)
        a.coef = -a.coef;
    return a;
}

/* ---- math functions ----------------------------------------------------------------------- */

int fp_dec_round(fp_dec a, int digits, fp_dec *out)
{
    if (digits < 0)
        return ERR_INVALID;
    *out = digits >= a.scale ? a : dec_drop(a, a.scale - digits, 1);
    return 0;
}

fp_dec fp_dec_truncate(fp_dec a)
{
    return dec_drop(a, a.scale, 0);
}

fp_dec fp_dec_floor(fp_dec a)
{
    fp_dec t = dec_drop(a, a.scale, 0);
    if (a.coef < 0 && !fp_dec_is_integral(a))
        t.coef -= 1;
    return t;
}

fp_dec fp_dec_ceiling(fp_dec a)
{
    fp_dec t = dec_drop(a, a.scale, 0);
    if (a.coef > 0 && !fp_dec_is_integral(a))
        t.coef += 1;
    return t;
}

int fp_dec_sqrt(fp_dec a, fp_dec *out)
{
    if (a.coef < 0)
        return FP_EMPTY;
    return fp_dec_from_double(sqrt(fp_dec_to_double(a)), out);
}

int fp_dec_exp(fp_dec a, fp_dec *out)
{
    return fp_dec_from_double(exp(fp_dec_to_double(a)), out);
}

int fp_dec_ln(fp_dec a, fp_dec *out)
{
    if (a.coef <= 0)
        return FP_EMPTY;
    return fp_dec_from_double(log(fp_dec_to_double(a)), out);
}

int fp_dec_log(fp_dec a, fp_dec base, fp_dec *out)
{
    if (a.coef <= 0 || base.coef <= 0 || fp_dec_eq(base, fp_dec_from_i64(1)))
        return FP_EMPTY;
    return fp_dec_from_double(log(fp_dec_to_double(a)) / log(fp_dec_to_double(base)), out);
}

int fp_dec_power(fp_dec a, fp_dec b, fp_dec *out)
{
    if (fp_dec_is_integral(b)) {
        int64_t e;
        if (fp_dec_to_i64(b, &e) == 0 && e >= -1000 && e <= 1000) {
            if (a.coef == 0 && e < 0)
                return FP_EMPTY;
            fp_dec r = fp_dec_from_i64(1), base = a;
            int64_t k = e < 0 ? -e : e;
            int rc;
            while (k > 0) {
                if (k & 1) {
                    if ((rc = fp_dec_mul(r, base, &r)) < 0)
                        return rc;
                }
                k >>= 1;
                if (k > 0 && (rc = fp_dec_mul(base, base, &base)) < 0)
                    return rc;
            }
            if (e < 0)
                return fp_dec_div(fp_dec_from_i64(1), r, out);
            *out = r;
            return 0;
        }
    }
    double x = fp_dec_to_double(a), y = fp_dec_to_double(b);
    if (x < 0 && !fp_dec_is_integral(b))
        return FP_EMPTY;
    if (x == 0 && y < 0)
        return FP_EMPTY;
    return fp_dec_from_double(pow(x, y), out);
}

/* ---- precision and boundaries --------------------------------------------------------------- */

int fp_dec_precision(fp_dec a)
{
    return a.scale;
}

/* Boundaries of a non-negative a: low truncates a - half-ulp, high rounds a + half-ulp
 * (the behaviour the official suite fixes: 1.587.lowBoundary(2) = 1.58 and
 * 1.587.highBoundary(2) = 1.59, 0.0034.highBoundary(1) = 0.0, 1.highBoundary(0) = 2). */
static int dec_boundary_pos(fp_dec a, int precision, int high, fp_dec *out)
{
    fp_dec half = {5, a.scale + 1}, v;
    int rc;
    if (a.scale + 1 > FP_DEC_MAX_SCALE) {
        v = a; /* no room for the half digit: the value is already as fine as we keep */
    } else {
        fp_dec wide;
        if ((rc = fp_dec_rescale(a, a.scale + 1, &wide)) < 0)
            return rc;
        rc = high ? fp_dec_add(wide, half, &v) : fp_dec_sub(wide, half, &v);
        if (rc < 0)
            return rc;
    }
    if (precision < v.scale)
        v = dec_drop(v, v.scale - precision, high);
    return fp_dec_rescale(v, precision, out);
}

static int dec_boundary(fp_dec a, int precision, int high, fp_dec *out)
{
    if (precision < 0 || precision > FP_DEC_MAX_PRECISION)
        return FP_EMPTY;
    if (a.coef < 0) {
        fp_dec r;
        int rc = dec_boundary_pos(fp_dec_neg(a), precision, !high, &r);
        if (rc < 0)
            return rc;
        *out = fp_dec_neg(r);
        return 0;
    }
    return dec_boundary_pos(a, precision, high, out);
}

int fp_dec_low_boundary(fp_dec a, int precision, fp_dec *out)
{
    return dec_boundary(a, precision, 0, out);
}

int fp_dec_high_boundary(fp_dec a, int precision, fp_dec *out)
{
    return dec_boundary(a, precision, 1, out);
}
