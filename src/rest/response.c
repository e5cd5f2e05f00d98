/*
 * response.c -- every response of the REST layer leaves through rest_send()
 * (the protocol rules it keeps are listed in response.h).
 *
 * Errors are shaped in one function, rest_send_error(): an OperationOutcome
 * with one issue (validation failures use rest_send_outcome with all issues),
 * written by src/fhir/outcome.c like every other OperationOutcome.
 */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/time.h"
#include "json/json.h"
#include "rest/metrics.h"
#include "rest/response.h"

int rest_send(rest_req *r, rest_reply *rep)
{
    if (r->sub_body) { /* a Bundle entry's request: the answer goes back to the Bundle */
        r->sub_status = rep->status;
        if (rep->body && rep->len)
            buf_put(r->sub_body, rep->body, rep->len);
        if (rep->body_is_heap)
            free((void *)rep->body);
        rep->body = NULL;
        rep->body_is_heap = 0;
        rest_snapshot_end(r);
        return REST_DONE;
    }
    if (r->site && r->site->svc && r->site->svc->answered)
        r->site->svc->answered(r, rep); /* the request's AuditEvent, unless its commit has it */
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
    rest_snapshot_end(r); /* the body was copied: the map may move on */
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
        ftime_format_http(rep->last_modified_s * 1000000, tmp);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, tmp);
    }
    if (rep->location)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, rep->location);
    if (rep->content_location)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_LOCATION, rep->content_location);
    if (rep->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep->allow);
    if (rep->www_authenticate)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, rep->www_authenticate);
    if (rep->no_store) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_PRAGMA, "no-cache");
    }
    if (rest_header(r, "Origin")) {
        /* CORS for browser apps (SMART on FHIR): any origin, no cookies; let
         * scripts see the headers FHIR clients read. */
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                "Location, ETag, Last-Modified, Content-Location");
        if (r->method == RM_OPTIONS) {
            MHD_add_response_header(resp, "Access-Control-Allow-Methods",
                                    rep->allow ? rep->allow : "GET, HEAD");
            const char *h = rest_header(r, "Access-Control-Request-Headers");
            MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                    h && strlen(h) < 1024 ? h
                                                          : "Content-Type, Accept, Authorization, "
                                                            "Prefer, If-Match, If-None-Match, "
                                                            "If-None-Exist, If-Modified-Since");
            MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
        }
    }
    if (r->conn)
        MHD_queue_response(r->conn, rep->status, resp);
    MHD_destroy_response(resp);
    rest_metrics_record(r->ri, rep->status, rest_now_ns() - r->t_start_ns);
    return REST_DONE;
}

int rest_reply_take(rest_reply *rep, buf *b)
{
    int err = b->err;
    if (!err && b->len) {
        size_t n = 0;
        rep->body = buf_detach(b, &n);
        rep->len = n;
        rep->body_is_heap = 1;
    }
    buf_free(b);
    return err;
}

int rest_send_body(rest_req *r, unsigned status, buf *b, const char *ctype)
{
    if (b->err) {
        int e = b->err;
        buf_free(b);
        return rest_send_errcode(r, e, "could not build the response");
    }
    rest_reply rep = {.status = status, .last_modified_s = -1, .ctype = ctype};
    rest_reply_take(&rep, b);
    return rest_send(r, &rep);
}

int rest_send_buf(rest_req *r, unsigned status, buf *b)
{
    return rest_send_body(r, status, b, NULL);
}

int rest_send_error(rest_req *r, unsigned status, oo_code code, const char *diag,
                    const char *expr)
{
    return rest_send_error_ex(r, status, code, diag, expr, NULL);
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (!n)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) /* also stops at the NUL */
            return 0;
    if (n == 3 && ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0)))
        return 0; /* overlong, or a surrogate */
    if (n == 4 && ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90)))
        return 0; /* overlong, or past U+10FFFF */
    return n;
}

/* s as a valid FHIR string: messages quote client input, which may hold control
 * characters FHIR strings forbid (all but tab, CR, LF) or be cut inside a UTF-8
 * sequence by a length cap; such bytes become '?'. s itself when already fine. */
static const char *fhir_string(arena *a, const char *s)
{
    if (!s)
        return NULL;
    int bad = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && !bad;) {
        size_t n = utf8_seq(p);
        bad = !n || (*p < 0x20 && *p != '\t' && *p != '\r' && *p != '\n');
        p += n ? n : 1;
    }
    if (!bad)
        return s;
    char *c = arena_strndup(a, s, strlen(s));
    if (!c)
        return NULL;
    for (unsigned char *p = (unsigned char *)c; *p;) {
        size_t n = utf8_seq(p);
        if (!n || (*p < 0x20 && *p != '\t' && *p != '\r' && *p != '\n')) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
    return c;
}

static int send_oo(rest_req *r, unsigned status, const oo *o_in, const char *allow,
                   const char *www_auth)
{
    oo copy = *o_in;
    const oo *o = o_in;
    if (!r->audit_desc && o_in->n) /* the first issue says what failed, for the audit trail */
        r->audit_desc = oo_get(o_in, 0)->diagnostics;
    oo_issue *is = o_in->n ? arena_alloc(r->a, sizeof *is * o_in->n) : NULL;
    if (is) {
        for (size_t i = 0; i < o_in->n; i++) {
            is[i] = o_in->issues[i];
            is[i].diagnostics = fhir_string(r->a, is[i].diagnostics);
            is[i].expression = fhir_string(r->a, is[i].expression);
        }
        copy.issues = is;
        o = &copy;
    }
    buf b = BUF_INIT;
    oo_to_buf(o, &b, r->pretty);
    rest_reply rep = {.status = status, .last_modified_s = -1, .allow = allow,
                      .www_authenticate = www_auth};
    rest_reply_take(&rep, &b); /* an outcome that could not be built still gets its status */
    return rest_send(r, &rep);
}

static int send_error(rest_req *r, unsigned status, oo_code code, const char *diag,
                      const char *expr, const char *allow, const char *www_auth)
{
    /* Messages quote what the client sent (paths, header values), which need
     * not be UTF-8: keep printable ASCII only, so the answer is valid JSON. */
    size_t n = strlen(diag);
    char *clean = arena_alloc(r->a, n + 1);
    if (clean) {
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)diag[i];
            clean[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        clean[n] = 0;
        diag = clean;
    }
    r->audit_desc = diag;
    oo o;
    oo_init(&o, r->a);
    oo_add(&o, status >= 500 ? OO_FATAL : OO_ERROR, code, diag, expr);
    return send_oo(r, status, &o, allow, www_auth);
}

int rest_send_error_ex(rest_req *r, unsigned status, oo_code code, const char *diag,
                       const char *expr, const char *allow)
{
    return send_error(r, status, code, diag, expr, allow, NULL);
}

int rest_send_error_auth(rest_req *r, unsigned status, oo_code code, const char *diag,
                         const char *www_authenticate)
{
    return send_error(r, status, code, diag, NULL, NULL, www_authenticate);
}

int rest_send_outcome(rest_req *r, unsigned status, const oo *o)
{
    return send_oo(r, status, o, NULL, NULL);
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

int rest_send_json_error(rest_req *r, int rc, const json_error *je)
{
    char msg[400];
    if (rc == ERR_NOMEM)
        return rest_send_errcode(r, rc, "out of memory");
    if (rc == ERR_TOOBIG) {
        snprintf(msg, sizeof msg, "JSON nested deeper than %d levels (line %d, column %d)",
                 JSON_MAX_DEPTH, je->line, je->col);
        return rest_send_error(r, 400, OO_TOO_COSTLY, msg, NULL);
    }
    snprintf(msg, sizeof msg, "invalid JSON at line %d, column %d: %s", je->line, je->col,
             je->msg);
    return rest_send_error(r, 400, OO_STRUCTURE, msg, NULL);
}
