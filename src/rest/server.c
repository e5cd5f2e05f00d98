/*
 * server.c -- the HTTP server of hortus on libmicrohttpd: the connection state machine.
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
 *              A raw path with %00 or %2F was marked by on_uri: 400. A head
 *              whose framing is ambiguous (framing_problem: folded lines, NUL
 *              bytes, conflicting lengths) is 400 and the connection closes.
 *   n-th call  a chunk of body: appended to req->body, capped at REST_MAX_BODY.
 *   last call  *upload_data_size == 0: the handler runs. A write submits to the
 *              store and suspends the connection (rest_suspend) so the thread
 *              serves other clients while the group commit runs; many clients
 *              thus share one fsync even with two HTTP threads.
 *   resumed    the store callback saved its result and resumed us: the
 *              handler's resume function answers (or re-submits after a
 *              concurrent-write conflict).
 *
 * Shutdown (rest_server_stop): stop accepting, refuse new writes with 503, wait
 * for every write in flight to be answered, however long its commit takes (a
 * suspended connection must never outlive the daemon: the store's callback
 * would resume freed memory), give the answers of the last writes
 * REST_SHUTDOWN_GRACE_MS to reach their clients, then stop MHD.
 *
 * Around it, the edge: every connection is watched (edge_conn), so a request
 * that does not arrive whole within --request-timeout is cut off and idle
 * connections are shed near --max-connections (see "the edge" below).
 *
 * This file is the connection state machine and nothing else: the accessors
 * handlers use are in request.c, `hortus serve` is in serve.c. It includes the
 * handlers (to dispatch); nothing it defines is used by them.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received */
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "rest/audit_rest.h"
#include "rest/authz.h"
#include "rest/conneg.h"
#include "rest/gate.h"
#include "rest/handlers.h"
#include "rest/limits.h"
#include "rest/response.h"
#include "rest/server.h"
#include "rest/tls.h"
#include "store/store.h"

typedef struct edge_conn edge_conn;

struct rest_server {
    struct MHD_Daemon *d;
    rest_site site;
    int listen_fd;
    char *base_url;   /* owned copy behind site.base_url */
    char url[128];    /* http(s)://ADDR:PORT/fhir as bound */
    int open_writes;  /* write requests between their first call and completion (atomic) */
    /* the edge (see "the edge" below) */
    pthread_mutex_t edge_lock; /* guards the list and its count */
    pthread_cond_t edge_wake;  /* the watchdog's sleep; signalled to stop it */
    pthread_t edge_thread;
    int edge_stop;
    edge_conn *conns;         /* every open connection */
    unsigned nconns;
    unsigned shed_above;      /* more open connections than this: shed the longest idle */
    uint64_t request_timeout_ms;
    int check_layout;         /* the libmicrohttpd whose buffer layout framing_problem knows */
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

/* ---- the edge: bounded requests, shed idle connections ------------------------
 *
 * libmicrohttpd 0.9.75 has one timer per connection, reset by every byte: a client
 * sending a byte now and then holds its connection forever. So every connection
 * has an edge_conn (MHD_OPTION_NOTIFY_CONNECTION) whose state a watchdog thread
 * looks at every REST_EDGE_TICK_MS:
 *
 *            accept                    request whole              answer sent
 *   (new) ----------> EC_REQUEST ------------------> EC_BUSY -----------------> EC_IDLE
 *                      |    ^      (last handler call)     (on_completed)         |
 *        older than    |    +-----------------------------------------------------+
 *   request_timeout_ms |      a byte arrived (TCP_INFO bytes received grew) or the
 *                      v      handler's first call for the next request
 *                    EC_CUT: shutdown(2); libmicrohttpd sees the end and closes
 *
 * A request therefore arrives whole -- request line, headers, body, the TLS
 * handshake of a new connection included -- within request_timeout_ms of its
 * first byte (for a new connection: of the accept), or is cut off. EC_BUSY is
 * never cut: a write waiting for its commit may take as long as the commit.
 * Idle connections are closed by libmicrohttpd's own timer (--idle-timeout), and
 * when the open connections pass shed_above the longest idle one is shut down
 * for each new one, so idle keep-alive connections never lock others out.
 *
 * State and its start time share one atomic word (ms << 2 | state), so the
 * watchdog's transitions (compare-and-swap) never undo the connection thread's.
 * Bytes that came with the previous request (a pipelined half request) are not
 * seen arriving: such a connection is bounded by the idle timer instead. */
enum { EC_REQUEST = 0, EC_BUSY = 1, EC_IDLE = 2, EC_CUT = 3 };

struct edge_conn {
    edge_conn *prev, *next;
    int fd;
    int linked;          /* in srv->conns */
    uint64_t word;       /* atomic: since_ms << 2 | state */
    uint64_t idle_bytes; /* bytes received when EC_IDLE began (written before the word) */
    const char *uri;     /* on_uri: the raw request target of the current request and */
    size_t uri_len;      /* its length (up to a NUL byte in it), for framing_problem */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t ec_word(uint64_t since_ms, int state)
{
    return since_ms << 2 | (uint64_t)state;
}

static int ec_state(uint64_t w)
{
    return (int)(w & 3);
}

static uint64_t ec_since(uint64_t w)
{
    return w >> 2;
}

/* Bytes the kernel has received on fd (TCP_INFO), or UINT64_MAX when unknown. */
static uint64_t bytes_received(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
        return UINT64_MAX;
    return ti.tcpi_bytes_received;
}

static edge_conn *edge_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void edge_set(edge_conn *ec, int state)
{
    if (ec)
        __atomic_store_n(&ec->word, ec_word(mono_ms(), state), __ATOMIC_RELEASE);
}

/* The handler's first call: the headers are here, so the request has begun. */
static void edge_request_begins(edge_conn *ec)
{
    if (!ec)
        return;
    uint64_t w = __atomic_load_n(&ec->word, __ATOMIC_ACQUIRE);
    if (ec_state(w) == EC_IDLE || ec_state(w) == EC_BUSY)
        __atomic_compare_exchange_n(&ec->word, &w, ec_word(mono_ms(), EC_REQUEST), 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* Cut a connection off (caller holds edge_lock, so fd is still open). */
static void edge_cut(edge_conn *ec, uint64_t expect)
{
    if (__atomic_compare_exchange_n(&ec->word, &expect, ec_word(mono_ms(), EC_CUT), 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        shutdown(ec->fd, SHUT_RDWR);
}

/* For a new connection beyond shed_above: shut down the one idle longest, if any
 * (caller holds edge_lock). */
static void edge_shed_one(rest_server *srv)
{
    edge_conn *oldest = NULL;
    uint64_t ow = 0;
    for (edge_conn *e = srv->conns; e; e = e->next) {
        uint64_t w = __atomic_load_n(&e->word, __ATOMIC_ACQUIRE);
        if (ec_state(w) == EC_IDLE && (!oldest || ec_since(w) < ec_since(ow))) {
            oldest = e;
            ow = w;
        }
    }
    if (oldest)
        edge_cut(oldest, ow);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    rest_server *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        edge_conn *ec = calloc(1, sizeof *ec);
        *socket_context = ec;
        if (!ec || !ci)
            return; /* unwatched: still bounded by the idle timer */
        ec->fd = ci->connect_fd;
        ec->linked = 1;
        ec->word = ec_word(mono_ms(), EC_REQUEST);
        pthread_mutex_lock(&srv->edge_lock);
        ec->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = ec;
        srv->conns = ec;
        if (++srv->nconns > srv->shed_above)
            edge_shed_one(srv);
        pthread_mutex_unlock(&srv->edge_lock);
        return;
    }
    edge_conn *ec = *socket_context;
    *socket_context = NULL;
    if (!ec)
        return;
    if (ec->linked) {
        pthread_mutex_lock(&srv->edge_lock);
        if (ec->prev)
            ec->prev->next = ec->next;
        else
            srv->conns = ec->next;
        if (ec->next)
            ec->next->prev = ec->prev;
        srv->nconns--;
        pthread_mutex_unlock(&srv->edge_lock);
    }
    free(ec);
}

/* The watchdog: cuts requests older than request_timeout_ms, notices the first
 * bytes of a request on an idle connection. */
static void *edge_watch(void *arg)
{
    rest_server *srv = arg;
    uint64_t last_tick = mono_ms();
    pthread_mutex_lock(&srv->edge_lock);
    while (!srv->edge_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)REST_EDGE_TICK_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&srv->edge_wake, &srv->edge_lock, &until);
        if (srv->edge_stop)
            break;
        uint64_t now = mono_ms();
        for (edge_conn *e = srv->conns; e; e = e->next) {
            uint64_t w = __atomic_load_n(&e->word, __ATOMIC_ACQUIRE);
            if (ec_state(w) == EC_IDLE) {
                uint64_t got = bytes_received(e->fd);
                if (got != UINT64_MAX && got > __atomic_load_n(&e->idle_bytes, __ATOMIC_RELAXED)) {
                    /* the bytes came after the last look: the earliest they can
                     * have begun a request */
                    uint64_t since = ec_since(w) > last_tick ? ec_since(w) : last_tick;
                    __atomic_compare_exchange_n(&e->word, &w, ec_word(since, EC_REQUEST), 0,
                                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
                }
            } else if (ec_state(w) == EC_REQUEST &&
                       now - ec_since(w) >= srv->request_timeout_ms) {
                edge_cut(e, w);
            }
        }
        last_tick = now;
    }
    pthread_mutex_unlock(&srv->edge_lock);
    return NULL;
}

/* ---- framing: what libmicrohttpd 0.9.75 lets through ------------------------
 *
 * libmicrohttpd joins an obsolete folded header line onto the previous header's
 * *name*, takes "Content-Length : 5" as a header named "Content-Length ", cuts a
 * value, a method or a target at a NUL byte, and reads one of several
 * Content-Length values. Each is a way for two parsers (a proxy and hortus) to
 * disagree where a request ends. It offers no switch for them, but it parses in
 * place: the request line and header block lie in the connection's read buffer
 * as [method, method + header size), each CR and LF turned into a NUL, each
 * name's colon into a NUL, with the parsed names and values pointing into it in
 * order. So the parse is checked against the bytes: every header line must be
 * exactly "name\0[SP/HT]*value" followed by one or two NULs, with nothing between
 * lines and a clean end. A folded line, a NUL byte, whitespace in a name all break
 * that. The layout is libmicrohttpd 0.9.75's: with another version that part of
 * the check is off (srv->check_layout); the Content-Length, Transfer-Encoding and
 * Host checks hold for any. Returns what is wrong, or NULL. */
typedef struct layout_walk {
    const char *q;   /* end of the previous line's text (its value, or the version) */
    const char *end; /* end of the header block */
    const char *bad;
    const char *cl;  /* the first Content-Length value */
    int te, host;    /* a Transfer-Encoding, a Host header seen */
} layout_walk;

static int ws(char ch)
{
    return ch == ' ' || ch == '\t';
}

static enum MHD_Result layout_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    layout_walk *w = cls;
    (void)kind;
    if (!key || !value)
        return MHD_YES;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        if (!w->cl)
            w->cl = value;
        else if (strcmp(w->cl, value) && !w->bad)
            w->bad = "several different Content-Length headers: the body's framing is "
                     "ambiguous (RFC 9112 section 6.3)";
    }
    if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        w->te = 1;
    if (!strcasecmp(key, MHD_HTTP_HEADER_HOST))
        w->host = 1;
    if (w->bad || !w->q)
        return MHD_YES;
    const char *fold = "a header line that is not 'name: value' on a line of its own "
                       "(an obsolete folded line, or a NUL byte in the header before it: "
                       "RFC 9112 section 5.2)";
    size_t gap = (size_t)(key - w->q);
    if (key <= w->q || gap > 2 || key >= w->end || (gap == 2 && w->q[1])) {
        w->bad = fold;
        return MHD_YES;
    }
    size_t klen = strlen(key);
    for (size_t i = 0; i < klen; i++)
        if (ws(key[i]) || (unsigned char)key[i] < 0x20 || key[i] == 0x7f) {
            w->bad = "whitespace or a control byte in a header name (RFC 9112 section 5.1)";
            return MHD_YES;
        }
    const char *p = key + klen + 1;
    if (value < p || value >= w->end) {
        w->bad = fold;
        return MHD_YES;
    }
    for (; p < value; p++)
        if (!ws(*p)) {
            w->bad = fold;
            return MHD_YES;
        }
    w->q = value + strlen(value);
    if (w->q >= w->end)
        w->bad = fold;
    return MHD_YES;
}

static const char *framing_problem(rest_server *srv, struct MHD_Connection *c, edge_conn *ec,
                                   const char *method, const char *version)
{
    layout_walk w = {0};
    const union MHD_ConnectionInfo *hi =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (srv->check_layout && ec && ec->uri && hi && version && *version) {
        /* the request line: "method\0 *target\0version" */
        const char *p = method + strlen(method);
        for (p++; p < ec->uri; p++)
            if (*p != ' ')
                return "a NUL byte in the request method";
        if (version != ec->uri + ec->uri_len + 1)
            return "a NUL byte in the request target";
        w.q = version + strlen(version);
        w.end = method + hi->header_size;
    }
    MHD_get_connection_values(c, MHD_HEADER_KIND, layout_cb, &w);
    if (w.bad)
        return w.bad;
    if (!w.host && version && !strcmp(version, MHD_HTTP_VERSION_1_1))
        return "an HTTP/1.1 request without a Host header (RFC 9112 section 3.2)";
    if (w.te && w.cl)
        return "both Transfer-Encoding and Content-Length: the body's framing is ambiguous "
               "(RFC 9112 section 6.1)";
    if (w.q) { /* after the last line: its end and an empty line, nothing else */
        size_t tail = (size_t)(w.end - w.q);
        if (w.end < w.q || tail < 2 || tail > 4)
            return "a NUL byte in the last header line";
        for (const char *t = w.q; t < w.end; t++)
            if (*t)
                return "a NUL byte in the last header line";
    }
    return NULL;
}

/* ---- the gate's hooks: a waiting write is a suspended connection ------------- */
static void gate_park(rest_req *r)
{
    rest_suspend(r);
}

static void gate_wake(rest_req *r)
{
    rest_resume(r);
}

/* ---- dispatch ------------------------------------------------------------ */
static int method_not_allowed(rest_req *r, const char *allow)
{
    char msg[160];
    snprintf(msg, sizeof msg, "method not allowed here; allowed: %s", allow);
    return rest_send_error_ex(r, 405, OO_NOT_SUPPORTED, msg, NULL, allow);
}

/* Sets r->ri from route and method; returns 0, or 1 when the combination is not
 * an interaction (405 with the allowed methods in *allow). */
static int classify(rest_req *r, const char **allow)
{
    return rest_classify(r->route.kind, r->method, &r->ri, allow);
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
    case RR_UNKNOWN_TENANT: {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "unknown tenant '%.40s': no tenant of this name is registered "
                 "(hortus tenant list), and resource types begin in upper case",
                 r->route.tenant);
        return rest_send_error(r, 404, OO_NOT_FOUND, msg, NULL);
    }
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
    if (rest_authz_begin(r) >= 0)
        return REST_DONE; /* 401 or 403 sent */
    if (r->route.kind != RR_HEALTH && r->route.kind != RR_METRICS) {
        char msg[300];
        if (rest_conneg_accept(rest_query(r, "_format"), rest_header(r, "Accept"), msg,
                               sizeof msg))
            return rest_send_error(r, 406, OO_NOT_SUPPORTED, msg, NULL);
        if (r->method == RM_POST || r->method == RM_PUT || r->method == RM_PATCH) {
            if (r->route.kind == RR_TYPE_SEARCH || r->route.kind == RR_AUTH_TOKEN) {
                if (rest_conneg_form(rest_header(r, MHD_HTTP_HEADER_CONTENT_TYPE), msg,
                                     sizeof msg))
                    return rest_send_error(r, 415, OO_NOT_SUPPORTED, msg, NULL);
            } else if (rest_conneg_content_type(rest_header(r, MHD_HTTP_HEADER_CONTENT_TYPE),
                                                r->method == RM_PATCH, msg, sizeof msg)) {
                return rest_send_error(r, 415, OO_NOT_SUPPORTED, msg, NULL);
            }
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
    if (audit_rest_handle(r) >= 0) /* AuditEvent: the audit trail's own endpoints */
        return REST_DONE;
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
    case RI_CAPABILITIES:
        return r->route.kind == RR_SMART_CONFIG ? rest_smart_config(r) : rest_capabilities(r);
    case RI_HEALTH: return rest_health(r);
    case RI_METRICS: return rest_metrics(r);
    case RI_SEARCH_TYPE:
    case RI_SEARCH_SYSTEM: return rest_search(r);
    case RI_BATCH: return rest_batch(r);
    case RI_OPERATION: return rest_operation(r);
    case RI_AUTH: return rest_auth_endpoint(r);
    default: return rest_send_error(r, 404, OO_NOT_FOUND, "not a FHIR REST path", NULL);
    }
}

static void req_free(rest_req *r)
{
    if (!r)
        return;
    assert(!r->ctx.snap && !r->gated); /* both end before the request is freed */
    buf_free(&r->body);
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
    edge_conn *ec = edge_of(c);
    if (ec) {
        ec->uri = uri;
        ec->uri_len = uri ? strlen(uri) : 0;
    }
    if (!uri)
        return NULL;
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
    r.site = &srv->site;
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

/* A write request's answer is queued: its turn at the gate and its place among
 * the writes in flight end here (shutdown waits for the latter). */
static void request_answered(rest_req *r)
{
    rest_snapshot_end(r);
    rest_gate_leave(r->site->gate, r);
    if (r->inflight) {
        r->inflight = 0;
        rest_write_finished(r);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    rest_server *srv = cls;
    body_req *br = *con_cls;
    early_refusal *er = early_refusal_of(br);
    edge_conn *ec = edge_of(c);
    if (!br || (er && br == &er->marker)) {
        /* first call: the request line and headers are here */
        edge_request_begins(ec);
        const char *bad = framing_problem(srv, c, ec, method, version);
        if (ec)
            ec->uri = NULL;
        if (bad) {
            *con_cls = NULL;
            return refuse(srv, c, method, 400, OO_INVALID, bad);
        }
    } else if (!*upload_size) {
        edge_set(ec, EC_BUSY); /* the request is whole: no longer bounded */
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
        r.site = &srv->site;
        r.conn = c;
        r.method = rest_method_parse(method);
        r.t_start_ns = rest_now_ns();
        r.ri = RI_OTHER;
        r.a = thread_arena();
        *con_cls = NULL;
        if (!r.a || rest_route_parse(r.a, url, &r.route) || rest_req_begin(&r))
            return MHD_NO;
        if (precheck(&r) < 0)
            dispatch(&r);
        assert(r.ri != RI_OTHER || !r.inflight); /* reads never wait for the store */
        rest_snapshot_end(&r);
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
        __atomic_add_fetch(&srv->open_writes, 1, __ATOMIC_SEQ_CST);
        rest_req *r = &br->r;
        r->site = &srv->site;
        r->conn = c;
        r->method = m;
        r->t_start_ns = rest_now_ns();
        r->ri = RI_OTHER;
        r->owns_arena = 1;
        r->a = arena_new(16 * 1024);
        buf_init(&r->body);
        r->body.limit = REST_MAX_BODY;
        *con_cls = br;
        if (!r->a || rest_route_parse(r->a, url, &r->route) || rest_req_begin(r))
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
            request_answered(r);
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
        request_answered(r);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    rest_server *srv = cls;
    (void)c;
    (void)toe;
    edge_conn *ec = edge_of(c);
    if (ec) { /* the next request begins with the next byte received */
        __atomic_store_n(&ec->idle_bytes, bytes_received(ec->fd), __ATOMIC_RELAXED);
        edge_set(ec, EC_IDLE);
    }
    body_req *br = *con_cls;
    if (br && br != &bodiless_marker && !early_refusal_of(br)) {
        request_answered(&br->r);
        req_free(&br->r);
        __atomic_sub_fetch(&srv->open_writes, 1, __ATOMIC_SEQ_CST);
    }
    *con_cls = NULL;
}

/* ---- lifecycle ----------------------------------------------------------- */

/* Bind and listen on addr:port ourselves, so that a port in use is a clear error
 * (no SO_REUSEPORT: a second server must not share the port and split the
 * traffic between two databases) and the start line can name the real address.
 * SO_REUSEADDR only lets a restarted server bind past connections in TIME_WAIT;
 * on Linux it never lets two sockets listen on one address. Returns the socket,
 * or -1 with a message in msg. */
static int listen_on(const char *addr, unsigned port, const char *scheme, char *url,
                     size_t urlsz, unsigned *bound, char *msg, size_t msgsz)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char ports[8];
    snprintf(ports, sizeof ports, "%u", port);
    int g = getaddrinfo(addr, ports, &hints, &res);
    if (g || !res) {
        snprintf(msg, msgsz, "cannot use --bind '%s': %s", addr, gai_strerror(g));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (fd < 0) {
        snprintf(msg, msgsz, "socket: %s", strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 1024)) {
        int e = errno;
        snprintf(msg, msgsz, "cannot listen on %s port %u: %s%s", addr, port, strerror(e),
                 e == EADDRINUSE ? " (is another hortus serving it?)" : "");
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned p = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
            p = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
            p = ntohs(in6->sin6_port);
        }
    }
    int v6 = ss.ss_family == AF_INET6;
    snprintf(url, urlsz, "%s://%s%s%s:%u%s", scheme, v6 ? "[" : "", host, v6 ? "]" : "", p,
             REST_BASE_PATH);
    *bound = p;
    return fd;
}

int rest_bind_is_loopback(const char *addr)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (getaddrinfo(addr, "0", &hints, &res) || !res)
        return -1;
    int lo = 0; /* the first address is the one listen_on binds */
    if (res->ai_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)res->ai_addr;
        lo = (ntohl(in->sin_addr.s_addr) >> 24) == 127; /* 127.0.0.0/8 */
    } else if (res->ai_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)res->ai_addr;
        lo = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    freeaddrinfo(res);
    return lo;
}

/* The edge's options with their defaults; 0 and a message when they are unusable. */
static int edge_options(const rest_server_opts *o, unsigned threads, unsigned *max_conn,
                        unsigned *per_client, unsigned *idle_s, unsigned *request_s, char *msg,
                        size_t msgsz)
{
    *max_conn = o->max_connections ? o->max_connections : REST_MAX_CONNECTIONS;
    *per_client = o->max_per_client ? o->max_per_client : REST_MAX_CONN_PER_CLIENT;
    *idle_s = o->idle_timeout_s ? o->idle_timeout_s : REST_IDLE_TIMEOUT;
    *request_s = o->request_timeout_s ? o->request_timeout_s : REST_REQUEST_TIMEOUT;
    if (!o->max_per_client && *per_client > *max_conn)
        *per_client = *max_conn;
    if (*max_conn > REST_CONNECTIONS_CEILING || *max_conn < 2 * threads) {
        snprintf(msg, msgsz, "--max-connections %u: must be %u (twice the HTTP threads) .. %u",
                 *max_conn, 2 * threads, REST_CONNECTIONS_CEILING);
        return -1;
    }
    if (*per_client > *max_conn) {
        snprintf(msg, msgsz, "--max-connections-per-client %u is more than --max-connections %u",
                 *per_client, *max_conn);
        return -1;
    }
    if (*idle_s > REST_IDLE_TIMEOUT_MAX || *request_s > REST_REQUEST_TIMEOUT_MAX) {
        snprintf(msg, msgsz, "a timeout over its maximum (--idle-timeout %u, --request-timeout %u)",
                 REST_IDLE_TIMEOUT_MAX, REST_REQUEST_TIMEOUT_MAX);
        return -1;
    }
    return 0;
}

int rest_server_start(const rest_server_opts *o, const rest_services *svc, rest_server **out,
                      char *msg, size_t msgsz)
{
    const char *bind_addr = o->bind && *o->bind ? o->bind : REST_DEFAULT_BIND;
    if (!o->auth_configured && !o->insecure && rest_bind_is_loopback(bind_addr) == 0) {
        snprintf(msg, msgsz,
                 "refusing to listen on '%s': no authorisation is configured, so anyone who "
                 "can reach that address could read and write every record. Listen on "
                 "loopback (the default, " REST_DEFAULT_BIND ") behind a reverse proxy, or "
                 "pass --insecure to serve it anyway (docs/DEPLOY.md)",
                 bind_addr);
        return ERR_INVALID;
    }
    int tls = o->tls_cert_pem || o->tls_key_pem;
    if (tls && (!o->tls_cert_pem || !o->tls_key_pem)) {
        snprintf(msg, msgsz, "TLS needs both a certificate and its key");
        return ERR_INVALID;
    }
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(msg, msgsz, "this libmicrohttpd (%s) was built without TLS: serve plain HTTP "
                 "on loopback behind a reverse proxy instead (docs/DEPLOY.md)",
                 MHD_get_version());
        return ERR_UNSUPPORTED;
    }
    unsigned threads = o->threads;
    if (!threads) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nc > 0 ? (unsigned)nc : 2;
    }
    unsigned max_conn, per_client, idle_s, request_s;
    if (edge_options(o, threads, &max_conn, &per_client, &idle_s, &request_s, msg, msgsz))
        return ERR_INVALID;
    int rc = ERR_IO;
    rest_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(msg, msgsz, "out of memory");
        return ERR_NOMEM;
    }
    srv->listen_fd = -1;
    srv->site.svc = svc;
    pthread_mutex_init(&srv->edge_lock, NULL);
    pthread_cond_init(&srv->edge_wake, NULL);
    srv->request_timeout_ms = (uint64_t)request_s * 1000u;
    /* room for each thread's share: a thread whose share is full stops accepting */
    srv->shed_above = max_conn - threads;
    srv->check_layout = !strcmp(MHD_get_version(), "0.9.75");
    if (o->base_url && *o->base_url) {
        size_t n = strlen(o->base_url);
        while (n && o->base_url[n - 1] == '/')
            n--;
        srv->base_url = strndup(o->base_url, n);
        if (!srv->base_url)
            goto nomem;
        srv->site.base_url = srv->base_url;
    }
    srv->site.tls = tls;
    rest_gate_hooks hooks = {gate_park, gate_wake};
    srv->site.gate = rest_gate_new(&hooks);
    if (!srv->site.gate)
        goto nomem;
    srv->listen_fd = listen_on(bind_addr, o->port, tls ? "https" : "http", srv->url,
                               sizeof srv->url, &srv->site.port, msg, msgsz);
    if (srv->listen_fd < 0)
        goto fail;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG | MHD_USE_ITC | (tls ? MHD_USE_TLS : 0);
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)o->tls_cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)o->tls_key_pem},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)REST_TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    if (!tls)
        tls_opts[0].option = MHD_OPTION_END;
    srv->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, max_conn,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_client, MHD_OPTION_CONNECTION_TIMEOUT, idle_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_URI_LOG_CALLBACK, on_uri,
        srv, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)REST_CONN_MEMORY, MHD_OPTION_ARRAY,
        tls_opts, MHD_OPTION_END);
    if (!srv->d) {
        snprintf(msg, msgsz, tls ? "the HTTPS daemon did not start (see the message above)"
                                 : "the HTTP daemon did not start");
        goto fail;
    }
    srv->listen_fd = -1; /* the daemon's now */
    if (pthread_create(&srv->edge_thread, NULL, edge_watch, srv)) {
        snprintf(msg, msgsz, "cannot start the connection watchdog");
        MHD_stop_daemon(srv->d);
        goto fail;
    }
    *out = srv;
    return 0;
nomem:
    snprintf(msg, msgsz, "out of memory");
    rc = ERR_NOMEM;
fail:
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    rest_gate_free(srv->site.gate);
    pthread_cond_destroy(&srv->edge_wake);
    pthread_mutex_destroy(&srv->edge_lock);
    free(srv->base_url);
    free(srv);
    return rc;
}

unsigned rest_server_port(const rest_server *srv)
{
    return srv->site.port;
}

const char *rest_server_url(const rest_server *srv)
{
    return srv->url;
}

void rest_server_stop(rest_server *srv)
{
    if (!srv)
        return;
    __atomic_store_n(&srv->site.stopping, 1, __ATOMIC_SEQ_CST);
    int fd = MHD_quiesce_daemon(srv->d); /* no new connections from here on */
    if (fd >= 0)
        close(fd);
    /* Every write in flight is answered before the daemon stops, however long its
     * commit takes: a suspended connection must not outlive MHD, or the store's
     * callback resumes freed memory. New writes are refused with 503 meanwhile. */
    uint64_t t0 = mono_ms(), said = t0;
    int n;
    while ((n = __atomic_load_n(&srv->site.inflight, __ATOMIC_SEQ_CST)) > 0) {
        if (mono_ms() - said >= 5000) {
            said = mono_ms();
            fprintf(stderr, "hortus: waiting for %d write%s to commit (%llu s)\n", n,
                    n == 1 ? "" : "s", (unsigned long long)((said - t0) / 1000));
        }
        usleep(2000);
    }
    /* The answers of the last writes are queued; give them time to be sent. */
    uint64_t grace_end = mono_ms() + REST_SHUTDOWN_GRACE_MS;
    while (__atomic_load_n(&srv->open_writes, __ATOMIC_SEQ_CST) > 0 && mono_ms() < grace_end)
        usleep(2000);
    pthread_mutex_lock(&srv->edge_lock);
    srv->edge_stop = 1;
    pthread_cond_signal(&srv->edge_wake);
    pthread_mutex_unlock(&srv->edge_lock);
    pthread_join(srv->edge_thread, NULL);
    MHD_stop_daemon(srv->d); /* closes every connection: the edge list empties */
    assert(srv->nconns == 0 && !srv->conns);
    pthread_cond_destroy(&srv->edge_wake);
    pthread_mutex_destroy(&srv->edge_lock);
    assert(rest_gate_keys(srv->site.gate) == 0);
    rest_gate_free(srv->site.gate);
    free(srv->base_url);
    free(srv);
}
