/*
 * response.c -- every response of the REST layer leaves through rest_send().
 *
 * Keeping one exit makes the protocol details hold everywhere at once: the
 * Content-Type is always application/fhir+json (when there is a body), an empty
 * body carries Content-Length: 0, ETag is weak W/"vid", Last-Modified is an
 * IMF-fixdate, Location is absolute, and every response is counted in /metrics
 * with its interaction, status and latency.
 *
 * Errors are shaped in one function, rest_send_error(): an OperationOutcome
 * with one issue. It also carries the small time helpers the layer needs
 * (instant and HTTP-date formatting and parsing).
 */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "json/json.h"
#include "rest/rest.h"

int rest_send(rest_req *r, rest_reply *rep)
{
    struct MHD_Response *resp;
    if (rep->body && rep->len) {
        resp = MHD_create_response_from_buffer(
            rep->len, (void *)rep->body,
            rep->body_is_heap ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
        if (!resp && rep->body_is_heap)
            free((void *)rep->body);
    } else {
        if (rep->body_is_heap)
            free((void *)rep->body);
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    rep->body = NULL;
    rep->body_is_heap = 0;
    if (!resp)
        return REST_DONE; /* out of memory: MHD closes the connection */
    if (rep->len)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                rep->ctype ? rep->ctype : REST_CT_FHIR);
    char tmp[64];
    if (rep->etag_vid) {
        snprintf(tmp, sizeof tmp, "W/\"%llu\"", (unsigned long long)rep->etag_vid);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, tmp);
    }
    if (rep->last_modified_s >= 0) {
        rest_http_date(rep->last_modified_s, tmp, sizeof tmp);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, tmp);
    }
    if (rep->location)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, rep->location);
    if (rep->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep->allow);
    MHD_queue_response(r->conn, rep->status, resp);
    MHD_destroy_response(resp);
    rest_metrics_record(r->ri, rep->status, rest_now_ns() - r->t_start_ns);
    return REST_DONE;
}

int rest_send_buf(rest_req *r, unsigned status, buf *b)
{
    if (b->err) {
        int e = b->err;
        buf_free(b);
        return rest_send_errcode(r, e, "could not build the response");
    }
    rest_reply rep = {.status = status, .last_modified_s = -1};
    size_t n = 0;
    rep.body = buf_detach(b, &n);
    rep.len = n;
    rep.body_is_heap = 1;
    return rest_send(r, &rep);
}

int rest_send_error(rest_req *r, unsigned status, oo_code code, const char *diag,
                    const char *expr)
{
    return rest_send_error_ex(r, status, code, diag, expr, NULL);
}

static int send_oo(rest_req *r, unsigned status, const oo *o, const char *allow)
{
    buf b = BUF_INIT;
    oo_to_buf(o, &b, r->pretty);
    rest_reply rep = {.status = status, .last_modified_s = -1, .allow = allow};
    if (!b.err) {
        size_t n = 0;
        rep.body = buf_detach(&b, &n);
        rep.len = n;
        rep.body_is_heap = 1;
    }
    buf_free(&b);
    return rest_send(r, &rep);
}

int rest_send_error_ex(rest_req *r, unsigned status, oo_code code, const char *diag,
                       const char *expr, const char *allow)
{
    oo o;
    oo_init(&o, r->a);
    oo_add(&o, status >= 500 ? OO_FATAL : OO_ERROR, code, diag, expr);
    return send_oo(r, status, &o, allow);
}

int rest_send_outcome(rest_req *r, unsigned status, const oo *o)
{
    return send_oo(r, status, o, NULL);
}

int rest_send_errcode(rest_req *r, int err, const char *diag)
{
    switch (err) {
    case ERR_INVALID: return rest_send_error(r, 400, OO_INVALID, diag, NULL);
    case ERR_NOTFOUND: return rest_send_error(r, 404, OO_NOT_FOUND, diag, NULL);
    case ERR_GONE: return rest_send_error(r, 410, OO_DELETED, diag, NULL);
    case ERR_CONFLICT: return rest_send_error(r, 412, OO_CONFLICT, diag, NULL);
    case ERR_TOOBIG: return rest_send_error(r, 413, OO_TOO_COSTLY, diag, NULL);
    case ERR_UNSUPPORTED: return rest_send_error(r, 400, OO_NOT_SUPPORTED, diag, NULL);
    case ERR_LIMIT: return rest_send_error(r, 400, OO_TOO_COSTLY, diag, NULL);
    case ERR_EXISTS: return rest_send_error(r, 409, OO_DUPLICATE, diag, NULL);
    case ERR_NOMEM: return rest_send_error(r, 503, OO_TRANSIENT, "out of memory", NULL);
    case ERR_IO: return rest_send_error(r, 500, OO_EXCEPTION, diag, NULL);
    default: return rest_send_error(r, 500, OO_EXCEPTION, diag, NULL);
    }
}

/* ---- time ----------------------------------------------------------------- */

int64_t rest_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t rest_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t floordiv(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

void rest_instant(int64_t us, char *out, size_t outsz)
{
    time_t s = (time_t)floordiv(us, 1000000);
    int ms = (int)((us - (int64_t)s * 1000000) / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void rest_http_date(int64_t secs, char *out, size_t outsz)
{
    time_t s = (time_t)secs;
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, outsz, "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* n decimal digits at s -> value, or -1. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

int rest_http_date_parse(const char *s, int64_t *out)
{
    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    if (!s || strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[19] != ':' || s[22] != ':' || strcmp(s + 25, " GMT"))
        return ERR_INVALID;
    int mon = -1;
    for (int i = 0; i < 12; i++)
        if (!memcmp(s + 8, months[i], 3))
            mon = i;
    int day = digits(s + 5, 2), year = digits(s + 12, 4), hh = digits(s + 17, 2),
        mm = digits(s + 20, 2), ss = digits(s + 23, 2);
    if (mon < 0 || day < 1 || year < 1970 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 ||
        ss > 60 || day > days_in_month(year, mon + 1))
        return ERR_INVALID;
    struct tm tm = {.tm_year = year - 1900, .tm_mon = mon, .tm_mday = day,
                    .tm_hour = hh, .tm_min = mm, .tm_sec = ss};
    *out = (int64_t)timegm(&tm);
    return 0;
}

int rest_instant_parse(const char *s, size_t n, int64_t *us)
{
    /* YYYY[-MM[-DD[Thh:mm[:ss[.fff...]](Z|+hh:mm|-hh:mm)]]] */
    int year = -1, mon = 1, day = 1, hh = 0, mm = 0, ss = 0;
    int64_t frac_us = 0, off_s = 0;
    if (n < 4 || (year = digits(s, 4)) < 0)
        return ERR_INVALID;
    size_t i = 4;
    if (i < n) {
        if (s[i] != '-' || n < i + 3 || (mon = digits(s + i + 1, 2)) < 1 || mon > 12)
            return ERR_INVALID;
        i += 3;
    }
    if (i < n) {
        if (s[i] != '-' || n < i + 3 || (day = digits(s + i + 1, 2)) < 1 ||
            day > days_in_month(year, mon))
            return ERR_INVALID;
        i += 3;
    }
    if (i < n) {
        if (s[i] != 'T' || n < i + 6 || s[i + 3] != ':' || (hh = digits(s + i + 1, 2)) < 0 ||
            hh > 23 || (mm = digits(s + i + 4, 2)) < 0 || mm > 59)
            return ERR_INVALID;
        i += 6;
        if (i < n && s[i] == ':') {
            if (n < i + 3 || (ss = digits(s + i + 1, 2)) < 0 || ss > 59)
                return ERR_INVALID;
            i += 3;
            if (i < n && s[i] == '.') {
                i++;
                size_t start = i;
                int64_t scale = 100000;
                while (i < n && s[i] >= '0' && s[i] <= '9') {
                    frac_us += (s[i] - '0') * scale;
                    scale /= 10;
                    i++;
                }
                if (i == start)
                    return ERR_INVALID;
            }
        }
        if (i >= n)
            return ERR_INVALID; /* a time needs a zone */
        if (s[i] == 'Z') {
            i++;
        } else if (s[i] == '+' || s[i] == '-' || s[i] == ' ') {
            /* ' ' is '+' after form decoding of an unescaped query string */
            int oh, om;
            if (n < i + 6 || s[i + 3] != ':' || (oh = digits(s + i + 1, 2)) < 0 || oh > 14 ||
                (om = digits(s + i + 4, 2)) < 0 || om > 59)
                return ERR_INVALID;
            off_s = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
            i += 6;
        } else {
            return ERR_INVALID;
        }
    }
    if (i != n)
        return ERR_INVALID;
    struct tm tm = {.tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day,
                    .tm_hour = hh, .tm_min = mm, .tm_sec = ss};
    int64_t secs = (int64_t)timegm(&tm) - off_s;
    *us = secs * 1000000 + frac_us;
    return 0;
}
