/*
 * server.c -- the HTTP server of hortus on libmicrohttpd, and `hortus serve`.
 *
 * MHD runs an internal epoll thread pool (one thread per core by default).
 * Everything a request needs is decided in the access handler, which MHD calls
 * several times per request:
 *
 *   1st call   headers only. Reads (GET, HEAD, OPTIONS) just mark *con_cls
 *              with a static marker (no allocation); they are answered on their
 *              last call with the HTTP thread's own arena, so the read hot path
 *              allocates nothing else (answering on the first call would make
 *              MHD close the connection). Writes (POST, PUT, PATCH, DELETE) get
 *              a rest_req of their own (with its own arena) and the cheap
 *              refusals (405, 406, 415, 413 by Content-Length) are sent at once.
 *              A raw path with %00 or %2F was marked by on_uri: 400.
 *   n-th call  a chunk of body: appended to req->body, capped at REST_MAX_BODY.
 *   last call  *upload_data_size == 0: the handler runs. A write submits to the
 *              store and suspends the connection (rest_suspend) so the thread
 *              serves other clients while the group commit runs; many clients
 *              thus share one fsync even with two HTTP threads.
 *   resumed    the store callback saved its result and resumed us: the
 *              handler's resume function answers (or re-submits after a
 *              concurrent-write conflict).
 *
 * Shutdown (SIGINT/SIGTERM): stop accepting, refuse new writes with 503, wait
 * for suspended writes to complete, stop MHD, close the store.
 */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/err.h"
#include "cli.h"
#include "fhirpath/spcache.h"
#include "rest/rest.h"
#include "rest/server.h"
#include "store/store.h"

struct rest_server {
    struct MHD_Daemon *d;
    struct store *st;
    char *base_url; /* configured public base (no trailing slash), or NULL */
    unsigned port;
    int inflight; /* suspended writes (atomic) */
    int stopping; /* atomic */
};

/* ---- per-thread arena for bodiless requests ------------------------------ */
static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void arena_key_free(void *p)
{
    arena_free(p);
}

static void arena_key_init(void)
{
    pthread_key_create(&arena_key, arena_key_free);
}

static arena *thread_arena(void)
{
    pthread_once(&arena_once, arena_key_init);
    arena *a = pthread_getspecific(arena_key);
    if (!a) {
        a = arena_new(64 * 1024);
        if (a && pthread_setspecific(arena_key, a) != 0) {
            arena_free(a);
            a = NULL;
        }
    }
    if (a)
        arena_reset(a);
    return a;
}

/* ---- request helpers ----------------------------------------------------- */
const char *rest_header(rest_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *rest_query(rest_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct query_iter {
    int (*fn)(void *ctx, const char *key, const char *value);
    void *ctx;
} query_iter;

static enum MHD_Result query_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    query_iter *q = cls;
    (void)kind;
    return q->fn(q->ctx, key, value) ? MHD_NO : MHD_YES;
}

void rest_query_each(rest_req *r, int (*fn)(void *ctx, const char *key, const char *value),
                     void *ctx)
{
    query_iter q = {fn, ctx};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_cb, &q);
}

struct store *rest_store(rest_req *r)
{
    return r->srv->st;
}

static int host_ok(const char *h)
{
    if (!*h || strlen(h) > 255)
        return 0;
    for (const char *p = h; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_'))
            return 0;
    }
    return 1;
}

const char *rest_base_url(rest_req *r)
{
    if (r->srv->base_url)
        return r->srv->base_url;
    if (r->base_url)
        return r->base_url;
    const char *proto = rest_header(r, "X-Forwarded-Proto");
    if (!proto || (strcmp(proto, "http") && strcmp(proto, "https")))
        proto = "http";
    char hostbuf[256];
    const char *host = NULL;
    const char *fh = rest_header(r, "X-Forwarded-Host");
    if (fh) {
        size_t n = strcspn(fh, ", ");
        if (n < sizeof hostbuf) {
            memcpy(hostbuf, fh, n);
            hostbuf[n] = 0;
            if (host_ok(hostbuf))
                host = hostbuf;
        }
    }
    if (!host) {
        const char *h = rest_header(r, MHD_HTTP_HEADER_HOST);
        if (h && host_ok(h))
            host = h;
    }
    buf b = BUF_INIT;
    if (host)
        buf_printf(&b, "%s://%s%s", proto, host, REST_BASE_PATH);
    else
        buf_printf(&b, "%s://localhost:%u%s", proto, r->srv->port, REST_BASE_PATH);
    const char *out = b.err ? NULL : arena_strndup(r->a, b.data, b.len);
    buf_free(&b);
    r->base_url = out;
    return out ? out : "";
}

void rest_server_gauges(rest_req *r, buf *b)
{
    rest_server *srv = r->srv;
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    buf_printf(b,
               "# HELP hortus_http_connections Open HTTP connections.\n"
               "# TYPE hortus_http_connections gauge\n"
               "hortus_http_connections %u\n"
               "# HELP hortus_http_writes_in_flight Writes waiting for their commit or their "
               "turn at a resource.\n"
               "# TYPE hortus_http_writes_in_flight gauge\n"
               "hortus_http_writes_in_flight %d\n",
               di ? di->num_connections : 0u,
               __atomic_load_n(&srv->inflight, __ATOMIC_RELAXED));
}

void rest_suspend(rest_req *r)
{
    MHD_suspend_connection(r->conn);
}

void rest_resume(rest_req *r)
{
    MHD_resume_connection(r->conn);
}

/* ---- dispatch ------------------------------------------------------------ */
static int method_not_allowed(rest_req *r, const char *allow)
{
    char msg[160];
    snprintf(msg, sizeof msg, "method not allowed here; allowed: %s", allow);
    return rest_send_error_ex(r, 405, OO_NOT_SUPPORTED, msg, NULL, allow);
}

/* Which interaction each route answers per method (RI_OTHER: not allowed there),
 * and the Allow header of its 405. HEAD is answered as GET. */
typedef struct route_methods {
    const char *allow;
    rest_interaction get, post, put, patch, del;
} route_methods;

#define NO RI_OTHER
static const route_methods route_table[] = {
    [RR_HEALTH] = {"GET, HEAD", RI_HEALTH, NO, NO, NO, NO},
    [RR_METRICS] = {"GET, HEAD", RI_METRICS, NO, NO, NO, NO},
    [RR_BASE] = {"POST", NO, RI_BATCH, NO, NO, NO},
    [RR_METADATA] = {"GET, HEAD", RI_CAPABILITIES, NO, NO, NO, NO},
    [RR_SYS_HISTORY] = {"GET, HEAD", RI_HISTORY_SYSTEM, NO, NO, NO, NO},
    [RR_TYPE] = {"GET, HEAD, POST", RI_SEARCH_TYPE, RI_CREATE, NO, NO, NO},
    [RR_TYPE_HISTORY] = {"GET, HEAD", RI_HISTORY_TYPE, NO, NO, NO, NO},
    [RR_INSTANCE] = {"GET, HEAD, PUT, PATCH, DELETE", RI_READ, NO, RI_UPDATE, RI_PATCH, RI_DELETE},
    [RR_INST_HISTORY] = {"GET, HEAD", RI_HISTORY_INSTANCE, NO, NO, NO, NO},
    [RR_VERSION] = {"GET, HEAD", RI_VREAD, NO, NO, NO, NO},
    [RR_OPERATION] = {"GET, HEAD, POST", RI_OPERATION, RI_OPERATION, NO, NO, NO},
};
#undef NO

/* Sets r->ri from route and method; returns 0, or 1 when the combination is not
 * an interaction (405 with the allowed methods in *allow). Routes outside the
 * table (none, unknown type, bad shape) are left RI_OTHER for the 404 paths. */
static int classify(rest_req *r, const char **allow)
{
    r->ri = RI_OTHER;
    unsigned k = (unsigned)r->route.kind;
    if (k >= sizeof route_table / sizeof route_table[0] || !route_table[k].allow)
        return 0;
    const route_methods *rm = &route_table[k];
    *allow = rm->allow;
    switch (r->method) {
    case RM_GET:
    case RM_HEAD: r->ri = rm->get; break;
    case RM_POST: r->ri = rm->post; break;
    case RM_PUT: r->ri = rm->put; break;
    case RM_PATCH: r->ri = rm->patch; break;
    case RM_DELETE: r->ri = rm->del; break;
    default: break;
    }
    return r->ri == RI_OTHER;
}

typedef struct cl_scan {
    const char *first;
    int differ;
} cl_scan;

static enum MHD_Result cl_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                             const char *value)
{
    cl_scan *s = cls;
    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0 || !value)
        return MHD_YES;
    if (!s->first)
        s->first = value;
    else if (strcmp(s->first, value) != 0)
        s->differ = 1;
    return MHD_YES;
}

/* RFC 9112 6.3: different Content-Length values make the framing ambiguous
 * (a request-smuggling vector behind a proxy that reads the other one). */
static int content_lengths_differ(rest_req *r)
{
    cl_scan s = {0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, cl_cb, &s);
    return s.differ;
}

/* Checks that need only the headers. Returns REST_DONE when a refusal was sent,
 * -1 to go on. */
static int precheck(rest_req *r)
{
    const char *allow = NULL;
    switch (r->route.kind) {
    case RR_NONE:
        return rest_send_error(r, 404, OO_NOT_FOUND,
                               "no such path: the FHIR base is " REST_BASE_PATH, NULL);
    case RR_BAD:
        return rest_send_error(r, 404, OO_NOT_FOUND, "not a FHIR REST path", NULL);
    case RR_UNKNOWN_TYPE: {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown resource type '%.80s'", r->route.type_name);
        return rest_send_error(r, 404, OO_NOT_SUPPORTED, msg, NULL);
    }
    default:
        break;
    }
    r->pretty = rest_pretty(rest_query(r, "_pretty"));
    if (r->method == RM_OPTIONS) {
        /* CORS preflight (and plain OPTIONS): which methods this path takes */
        rest_method saved = r->method;
        const char *allow_get = NULL;
        r->method = RM_GET;
        classify(r, &allow_get);
        r->method = saved;
        r->ri = RI_OTHER;
        rest_reply rep = {.status = 204, .last_modified_s = -1, .allow = allow_get};
        return rest_send(r, &rep);
    }
    if (classify(r, &allow))
        return method_not_allowed(r, allow);
    if (r->route.kind != RR_HEALTH && r->route.kind != RR_METRICS) {
        char msg[300];
        if (rest_conneg_accept(rest_query(r, "_format"), rest_header(r, "Accept"), msg,
                               sizeof msg))
            return rest_send_error(r, 406, OO_NOT_SUPPORTED, msg, NULL);
        if (r->method == RM_POST || r->method == RM_PUT || r->method == RM_PATCH) {
            if (rest_conneg_content_type(rest_header(r, MHD_HTTP_HEADER_CONTENT_TYPE),
                                         r->method == RM_PATCH, msg, sizeof msg))
                return rest_send_error(r, 415, OO_NOT_SUPPORTED, msg, NULL);
            if (content_lengths_differ(r))
                return rest_send_error(r, 400, OO_INVALID,
                                       "several different Content-Length headers", NULL);
            const char *cl = rest_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl) {
                char *end;
                errno = 0;
                unsigned long long v = strtoull(cl, &end, 10);
                if (errno || *end || v > REST_DRAIN_MAX) {
                    snprintf(msg, sizeof msg, "request body over the size limit of %u bytes",
                             REST_MAX_BODY);
                    return rest_send_error(r, 413, OO_TOO_COSTLY, msg, NULL);
                }
                /* Over the cap but not absurd: read and drop the body, then answer
                 * 413. Answering now would close the connection under clients that
                 * write the whole body before reading (most of them). */
                if (v > REST_MAX_BODY) {
                    const char *ex = rest_header(r, "Expect");
                    if (ex && !strcasecmp(ex, "100-continue")) {
                        /* the client waits before sending: refuse at once */
                        snprintf(msg, sizeof msg,
                                 "request body over the size limit of %u bytes", REST_MAX_BODY);
                        return rest_send_error(r, 413, OO_TOO_COSTLY, msg, NULL);
                    }
                    r->body_too_big = 1;
                }
            }
        }
    }
    return -1;
}

static int dispatch(rest_req *r)
{
    switch (r->ri) {
    case RI_READ: return rest_read(r);
    case RI_VREAD: return rest_vread(r);
    case RI_CREATE: return rest_create(r);
    case RI_UPDATE: return rest_update(r);
    case RI_DELETE: return rest_delete(r);
    case RI_PATCH: return rest_patch(r);
    case RI_HISTORY_INSTANCE:
    case RI_HISTORY_TYPE:
    case RI_HISTORY_SYSTEM: return rest_history(r);
    case RI_CAPABILITIES: return rest_capabilities(r);
    case RI_HEALTH: return rest_health(r);
    case RI_METRICS: return rest_metrics(r);
    case RI_SEARCH_TYPE: return rest_search(r);
    case RI_BATCH: return rest_batch(r);
    case RI_OPERATION: return rest_operation(r);
    default: return rest_send_error(r, 404, OO_NOT_FOUND, "not a FHIR REST path", NULL);
    }
}

int rest_writes_allowed(rest_req *r)
{
    __atomic_add_fetch(&r->srv->inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&r->srv->stopping, __ATOMIC_SEQ_CST)) {
        __atomic_sub_fetch(&r->srv->inflight, 1, __ATOMIC_SEQ_CST);
        return 0;
    }
    return 1;
}

void rest_write_finished(rest_req *r)
{
    __atomic_sub_fetch(&r->srv->inflight, 1, __ATOMIC_SEQ_CST);
}

static void req_free(rest_req *r)
{
    if (!r)
        return;
    buf_free(&r->body);
    buf_free(&r->wbytes);
    if (r->owns_arena)
        arena_free(r->a);
    free(r);
}

/* request states for body requests (rest_req.hctx is the handler's; this is ours) */
enum { ST_BODY = 0, ST_ANSWERED, ST_SUSPENDED };

typedef struct body_req {
    rest_req r;
    int state;
} body_req;

/* *con_cls of a read between its first and second call: no allocation */
static body_req bodiless_marker;
/* Requests refused by on_uri from their raw target alone. `marker` is their *con_cls
 * until the first call, `pending` while their body is read and dropped; then they are
 * answered `status` with `msg`. */
typedef struct early_refusal {
    body_req marker, pending;
    unsigned status;
    oo_code code;
    const char *msg;
} early_refusal;

static early_refusal bad_path = {
    .status = 400,
    .code = OO_INVALID,
    .msg = "the path holds an encoded NUL (%00) or '/' (%2F): no FHIR type, id or versionId "
           "can contain them"};

#define STR_(x) #x
#define STR(x) STR_(x)
static early_refusal long_target = {
    .status = 414,
    .code = OO_TOO_LONG,
    .msg = "the request target is longer than " STR(REST_MAX_URL) " bytes or its query has "
           "more than " STR(REST_MAX_QUERY_PARAMS) " parameters"};

static early_refusal *early_refusal_of(const body_req *br)
{
    if (br == &bad_path.marker || br == &bad_path.pending)
        return &bad_path;
    if (br == &long_target.marker || br == &long_target.pending)
        return &long_target;
    return NULL;
}

/* Called with the raw request target before MHD decodes it or splits its query.
 * - A decoded NUL would cut the path short (Patient/x%00y is not Patient/x) and a decoded
 *   '/' would move segments (Patient/a%2Fb is not Patient/a/b): neither can be part of a
 *   FHIR type, id or versionId, so such requests are refused.
 * - A query's fields are stored by libmicrohttpd in the connection's REST_CONN_MEMORY
 *   pool; when they do not fit it gives up without an answer and the client hangs until
 *   the idle timeout. So a target over REST_MAX_URL bytes or REST_MAX_QUERY_PARAMS fields
 *   is refused here, and its query is cut off in place (the target lies in the
 *   connection's own read buffer, which libmicrohttpd 0.9.75 splits right after this
 *   call): nothing is left to overflow the pool. tests/http/test_robustness.py holds
 *   both sides of the limits. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    (void)c;
    const char *p = uri;
    for (; *p && *p != '?'; p++)
        if (p[0] == '%' && p[1] && p[2] &&
            ((p[1] == '0' && p[2] == '0') || (p[1] == '2' && (p[2] == 'F' || p[2] == 'f'))))
            return &bad_path.marker;
    if (!*p)
        return (size_t)(p - uri) > REST_MAX_URL ? &long_target.marker : NULL;
    char *query = (char *)p; /* see above: libmicrohttpd's buffer, writable */
    size_t fields = 1;
    for (p++; *p; p++)
        fields += *p == '&';
    if ((size_t)(p - uri) > REST_MAX_URL || fields > REST_MAX_QUERY_PARAMS) {
        query[1] = '\0';
        return &long_target.marker;
    }
    return NULL;
}

/* Send an error for a request that has no rest_req of its own (the thread's
 * arena serves the answer). Queued on the first call, before the body, MHD
 * closes the connection after it: what follows is never read as a request. */
static enum MHD_Result refuse(rest_server *srv, struct MHD_Connection *c, const char *method,
                              unsigned status, oo_code code, const char *msg)
{
    rest_req r;
    memset(&r, 0, sizeof r);
    r.srv = srv;
    r.conn = c;
    r.method = rest_method_parse(method);
    r.t_start_ns = rest_now_ns();
    r.ri = RI_OTHER;
    r.a = thread_arena();
    if (!r.a)
        return MHD_NO;
    rest_send_error(&r, status, code, msg, NULL);
    return MHD_YES;
}

/* RFC 9112 6.1/6.3: a request with both Transfer-Encoding and Content-Length
 * is framed by the first, a proxy in front may have framed it by the second:
 * they then disagree where the next request starts (request smuggling). The
 * server must at least close the connection after answering; refusing at the
 * first call does both. */
static int te_with_cl(struct MHD_Connection *c)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) &&
           MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
}

/* 1 when a refused path's body may be read and dropped before the answer:
 * none, or a Content-Length within REST_DRAIN_MAX. A chunked body has no
 * announced end and a larger one would tie the connection for as long as the
 * client sends: those are answered at once. */
static int refused_body_drainable(struct MHD_Connection *c)
{
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return 0;
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return 1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(cl, &end, 10);
    return !errno && end != cl && !*end && v <= REST_DRAIN_MAX;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    rest_server *srv = cls;
    (void)version;
    body_req *br = *con_cls;
    early_refusal *er = early_refusal_of(br);
    if ((!br || (er && br == &er->marker)) && te_with_cl(c)) {
        *con_cls = NULL;
        return refuse(srv, c, method, 400, OO_INVALID,
                      "both Transfer-Encoding and Content-Length: the body's framing is "
                      "ambiguous (RFC 9112 section 6.1)");
    }
    if (er && br == &er->marker && !refused_body_drainable(c)) {
        *con_cls = NULL;
        return refuse(srv, c, method, er->status, er->code, er->msg);
    }
    if (er) {
        if (br == &er->marker || *upload_size) {
            *con_cls = &er->pending;
            *upload_size = 0; /* read and drop the body (at most REST_DRAIN_MAX) */
            return MHD_YES;
        }
        *con_cls = NULL;
        return refuse(srv, c, method, er->status, er->code, er->msg);
    }
    if (br == &bodiless_marker) {
        /* A read with a body (allowed, meaningless): drop the bytes. */
        if (*upload_size) {
            *upload_size = 0;
            return MHD_YES;
        }
        /* last call of a read: the request is complete, answer it. (Answering
         * on the first call would make MHD close the connection, since the
         * request might still have a body coming.) */
        rest_req r;
        memset(&r, 0, sizeof r);
        r.srv = srv;
        r.conn = c;
        r.method = rest_method_parse(method);
        r.t_start_ns = rest_now_ns();
        r.ri = RI_OTHER;
        r.a = thread_arena();
        *con_cls = NULL;
        if (!r.a || rest_route_parse(r.a, url, &r.route))
            return MHD_NO;
        if (precheck(&r) < 0)
            dispatch(&r);
        return MHD_YES;
    }
    if (!br) {
        rest_method m = rest_method_parse(method);
        if (m != RM_POST && m != RM_PUT && m != RM_PATCH && m != RM_DELETE) {
            *con_cls = &bodiless_marker;
            return MHD_YES;
        }
        br = calloc(1, sizeof *br);
        if (!br)
            return MHD_NO;
        rest_req *r = &br->r;
        r->srv = srv;
        r->conn = c;
        r->method = m;
        r->t_start_ns = rest_now_ns();
        r->ri = RI_OTHER;
        r->owns_arena = 1;
        r->a = arena_new(16 * 1024);
        buf_init(&r->body);
        r->body.limit = REST_MAX_BODY;
        *con_cls = br;
        if (!r->a || rest_route_parse(r->a, url, &r->route))
            return MHD_NO; /* freed by on_completed */
        if (precheck(r) >= 0)
            br->state = ST_ANSWERED;
        return MHD_YES;
    }
    rest_req *r = &br->r;
    if (*upload_size) {
        if (br->state == ST_BODY && !r->body_too_big) {
            buf_put(&r->body, upload, *upload_size);
            if (r->body.err) {
                r->body_too_big = 1;
                buf_free(&r->body);
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (br->state == ST_ANSWERED)
        return MHD_YES;
    if (br->state == ST_SUSPENDED) {
        /* resumed by the store callback */
        br->state = ST_ANSWERED;
        int rc = r->resume(r);
        if (rc == REST_SUSPENDED) {
            br->state = ST_SUSPENDED;
        } else {
            rest_gate_leave(r);
            if (r->inflight) {
                r->inflight = 0;
                rest_write_finished(r);
            }
        }
        return MHD_YES;
    }
    /* whole body here */
    br->state = ST_ANSWERED;
    if (r->body_too_big) {
        char msg[100];
        snprintf(msg, sizeof msg, "request body over the size limit of %u bytes",
                 REST_MAX_BODY);
        rest_send_error(r, 413, OO_TOO_COSTLY, msg, NULL);
        return MHD_YES;
    }
    if (dispatch(r) == REST_SUSPENDED)
        br->state = ST_SUSPENDED;
    else
        rest_gate_leave(r);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    body_req *br = *con_cls;
    if (br && br != &bodiless_marker && !early_refusal_of(br)) {
        rest_gate_leave(&br->r);
        if (br->r.inflight)
            rest_write_finished(&br->r);
        req_free(&br->r);
    }
    *con_cls = NULL;
}

/* ---- lifecycle ----------------------------------------------------------- */
int rest_server_start(const rest_server_opts *o, struct store *st, rest_server **out)
{
    rest_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return ERR_NOMEM;
    srv->st = st;
    srv->port = o->port;
    if (o->base_url && *o->base_url) {
        size_t n = strlen(o->base_url);
        while (n && o->base_url[n - 1] == '/')
            n--;
        srv->base_url = strndup(o->base_url, n);
        if (!srv->base_url) {
            free(srv);
            return ERR_NOMEM;
        }
    }
    unsigned threads = o->threads;
    if (!threads) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nc > 0 ? (unsigned)nc : 2;
    }
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG;
    srv->d = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, on_request, srv, MHD_OPTION_THREAD_POOL_SIZE,
        threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)REST_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)REST_CONN_TIMEOUT,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_URI_LOG_CALLBACK, on_uri,
        srv, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)REST_CONN_MEMORY,
        MHD_OPTION_LISTENING_ADDRESS_REUSE,
        (unsigned)1, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
    if (!srv->d) {
        free(srv->base_url);
        free(srv);
        return ERR_IO;
    }
    if (!srv->port) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
        if (di)
            srv->port = di->port;
    }
    *out = srv;
    return 0;
}

unsigned rest_server_port(const rest_server *srv)
{
    return srv->port;
}

void rest_server_stop(rest_server *srv)
{
    if (!srv)
        return;
    __atomic_store_n(&srv->stopping, 1, __ATOMIC_SEQ_CST);
    MHD_quiesce_daemon(srv->d);
    /* suspended writes finish when their commit does; MHD must not stop with
     * suspended connections */
    for (int i = 0; i < 3000 && __atomic_load_n(&srv->inflight, __ATOMIC_SEQ_CST) > 0; i++)
        usleep(10000);
    MHD_stop_daemon(srv->d);
    free(srv->base_url);
    free(srv);
}

/* ---- hortus serve -------------------------------------------------------- */
static void serve_usage(FILE *f)
{
    fprintf(f, "usage: hortus serve [--data DIR] [--port N] [--store lmdb:DIR] [--threads N] "
               "[--base-url URL]\n");
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int serve_main(int argc, char **argv)
{
    const char *data = "./hortus-data", *store_url = NULL;
    rest_server_opts o = {.port = 8080};
    for (int i = 1; i < argc; i += 2) { /* every option takes one value */
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            serve_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--data") && strcmp(a, "--store") && strcmp(a, "--base-url") &&
            strcmp(a, "--port") && strcmp(a, "--threads")) {
            fprintf(stderr, "hortus serve: unknown option '%s'\n", a);
            serve_usage(stderr);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "hortus serve: %s needs a value\n", a);
            serve_usage(stderr);
            return 2;
        }
        if (!strcmp(a, "--data")) {
            data = v;
        } else if (!strcmp(a, "--store")) {
            store_url = v;
        } else if (!strcmp(a, "--base-url")) {
            o.base_url = v;
        } else if (!strcmp(a, "--port")) {
            if (parse_uint(v, 65535, &o.port)) {
                fprintf(stderr, "hortus serve: bad --port '%s'\n", v);
                return 2;
            }
        } else if (parse_uint(v, 256, &o.threads)) {
            fprintf(stderr, "hortus serve: bad --threads '%s'\n", v);
            return 2;
        }
    }
    /* Block the stop signals in every thread (MHD's and the store's inherit the
     * mask) and wait for them here. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Every search-parameter expression of the model is compiled once, here: a
     * model or engine change that breaks one stops the server at start-up rather
     * than failing a search later. */
    fp_sp_cache *spc = NULL;
    fp_error fpe;
    if (fp_sp_cache_build(&spc, &fpe)) {
        fprintf(stderr, "hortus serve: search parameters do not compile: %s\n", fpe.msg);
        return 1;
    }

    char spec[4096];
    if (store_url)
        snprintf(spec, sizeof spec, "%s", store_url);
    else
        snprintf(spec, sizeof spec, "lmdb:%s", data);
    struct store *st = NULL;
    int rc = store_open(spec, NULL, &st);
    if (rc) {
        fprintf(stderr, "hortus serve: cannot open store %s: %s\n", spec, err_str(rc));
        fp_sp_cache_free(spc);
        return 1;
    }
    rest_server *srv = NULL;
    rc = rest_server_start(&o, st, &srv);
    if (rc) {
        fprintf(stderr, "hortus serve: cannot listen on port %u: %s\n", o.port, err_str(rc));
        store_close(st);
        fp_sp_cache_free(spc);
        return 1;
    }
    fprintf(stderr,
            "hortus %s serving FHIR R4 at http://localhost:%u%s (data: %s; "
            "%zu search-parameter expressions compiled)\n",
            HORTUS_VERSION, rest_server_port(srv), REST_BASE_PATH, spec, fp_sp_cache_count(spc));
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "hortus: signal %d, shutting down\n", sig);
    rest_server_stop(srv);
    store_close(st);
    fp_sp_cache_free(spc);
    return 0;
}
