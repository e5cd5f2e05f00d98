/*
 * rest.h -- the FHIR REST layer: what the files of src/rest/ share.
 *
 * One HTTP request becomes one rest_req. The server (server.c) owns the
 * libmicrohttpd daemon, accumulates the request body, routes the URL
 * (router.c), negotiates formats (conneg.c) and hands the request to exactly one
 * interaction handler (read.c, vread.c, create.c, update.c, delete.c,
 * history.c, capabilities.c, ops.c for /healthz and /metrics). A handler ends the
 * request by calling one of the rest_send_* functions of response.c, or, for a
 * write, by submitting to the store and returning REST_SUSPENDED: the store's
 * completion callback resumes the connection and the server calls the
 * handler's `resume` function in an HTTP thread again.
 *
 *   MHD thread                                  store writer thread
 *   ----------                                  -------------------
 *   handler(): parse, validate, build bytes
 *              store_submit(.., cb, req)  ---->  queue .. group commit .. fsync
 *              MHD_suspend_connection           cb(req, rc, t): save rc,
 *                                                 MHD_resume_connection
 *   handler() again: req->resume(req)  <-----
 *              -> 201/200/412 ...
 *
 * Memory: every rest_req has an arena (req->a) holding everything of the
 * request (parsed JSON, response bytes under construction, base URL...). Read
 * requests borrow the arena of their HTTP thread (reset per request, never
 * freed while the thread lives); write requests own one for their lifetime,
 * because they outlive the call that started them.
 */
#ifndef HORTUS_REST_H
#define HORTUS_REST_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "fhir/model.h"
#include "fhir/outcome.h"
#include "json/json.h"

struct MHD_Connection;
struct rest_server;
struct store;
struct store_req;

/* ---- hard caps (docs/LIMITS.md) -------------------------------------------- */
#define REST_MAX_BODY (8u << 20)  /* request body bytes: more -> 413 */
#define REST_DRAIN_MAX (64u << 20) /* bodies up to this are read and dropped before 413 */
#define REST_MAX_ID 64            /* logical id length, [A-Za-z0-9-.] */
#define REST_MAX_COUNT 1000       /* _count upper bound for history */
#define REST_DEFAULT_COUNT 50     /* _count when absent */
#define REST_MAX_CONNECTIONS 4096 /* open connections at once */
#define REST_CONN_MEMORY (32u << 10) /* per-connection header/URL pool of MHD */
#define REST_MAX_URL 8192            /* request target bytes (path + query): more -> 414 */
#define REST_MAX_QUERY_PARAMS 200    /* '&'-separated query fields: more -> 414 */
#define REST_CONN_TIMEOUT 60      /* seconds of inactivity before a connection closes */
#define REST_MAX_BUNDLE_ENTRIES 10000 /* entries of a batch/transaction Bundle */
#define REST_MAX_RETRIES 16       /* unconditional update re-tries on concurrent writes */
#define REST_MAX_PATCH_COPY 500000 /* values one JSON Patch may copy (all its "copy" ops) */
#define REST_MAX_RESPONSE (64u << 20) /* bytes of a batch answer or a history/search page */

/* ---- interactions (also the label of /metrics) ---------------------------- */
typedef enum rest_interaction {
    RI_READ = 0,
    RI_VREAD,
    RI_CREATE,
    RI_UPDATE,
    RI_DELETE,
    RI_PATCH,
    RI_HISTORY_INSTANCE,
    RI_HISTORY_TYPE,
    RI_HISTORY_SYSTEM,
    RI_SEARCH_TYPE,
    RI_BATCH,
    RI_OPERATION,
    RI_CAPABILITIES,
    RI_HEALTH,
    RI_METRICS,
    RI_OTHER, /* unroutable requests: 404/405 */
    RI__COUNT
} rest_interaction;

const char *rest_interaction_name(rest_interaction i);

/* ---- routing (router.c) --------------------------------------------------- */
typedef enum rest_method {
    RM_GET = 0,
    RM_HEAD,
    RM_POST,
    RM_PUT,
    RM_DELETE,
    RM_PATCH,
    RM_OPTIONS,
    RM_OTHER
} rest_method;

rest_method rest_method_parse(const char *m);

typedef enum rest_route_kind {
    RR_NONE = 0,     /* not under the FHIR base, nor an operational endpoint */
    RR_HEALTH,       /* /healthz */
    RR_METRICS,      /* /metrics */
    RR_BASE,         /* [base] and [base]/ */
    RR_METADATA,     /* [base]/metadata */
    RR_SYS_HISTORY,  /* [base]/_history */
    RR_TYPE,         /* [base]/Type */
    RR_TYPE_HISTORY, /* [base]/Type/_history */
    RR_INSTANCE,     /* [base]/Type/id */
    RR_INST_HISTORY, /* [base]/Type/id/_history */
    RR_VERSION,      /* [base]/Type/id/_history/vid */
    RR_OPERATION,    /* [base]/$op, [base]/Type/$op, [base]/Type/id/$op */
    RR_UNKNOWN_TYPE, /* [base]/Word... where Word is not a resource type: 404 */
    RR_BAD,          /* under [base] but of no known shape: 404 */
} rest_route_kind;

typedef struct rest_route {
    rest_route_kind kind;
    const fhir_type *type; /* resource type for RR_TYPE and below */
    const char *type_name; /* the path segment as sent (for messages); NUL-terminated */
    const char *id;        /* RR_INSTANCE and below; NUL-terminated, not yet validated */
    size_t id_len;
    const char *vid; /* RR_VERSION; NUL-terminated, not yet validated */
    size_t vid_len;
    const char *op; /* RR_OPERATION: the name without '$' (type/id NULL when absent) */
} rest_route;

/* The FHIR base path every FHIR URL starts with. */
#define REST_BASE_PATH "/fhir"

/* Split `path` (decoded URL path, no query) into a route. Strings point into
 * copies in `a`; valid until the arena is reset. Returns 0 or ERR_NOMEM. */
int rest_route_parse(arena *a, const char *path, rest_route *out);

/* 1 when id is a valid FHIR logical id: 1..64 chars of [A-Za-z0-9-.]. */
int rest_id_valid(const char *id, size_t n);

/* Parse a versionId (decimal, 1..2^63); 0 on success, ERR_INVALID otherwise. */
int rest_vid_parse(const char *s, size_t n, uint64_t *out);

/* ---- the request ---------------------------------------------------------- */
typedef struct rest_req rest_req;

/* What a handler returns. */
#define REST_DONE 0      /* a response was queued (or queuing failed: connection dies) */
#define REST_SUSPENDED 1 /* the request waits for the store; resume() will run later */

typedef int (*rest_resume_fn)(rest_req *r);

struct rest_req {
    struct rest_server *srv;
    struct MHD_Connection *conn;
    arena *a;
    rest_method method;
    rest_interaction ri;
    rest_route route;
    uint64_t t_start_ns; /* monotonic clock at the first byte we saw */
    int pretty;          /* _pretty=true */
    int owns_arena;      /* write requests: a is freed with the request */
    const char *base_url; /* cache of rest_base_url() (arena) */

    /* body (POST/PUT) */
    buf body;
    int body_too_big;

    /* a suspended write: set by the store callback, read after resume */
    rest_resume_fn resume;
    int store_rc;
    uint64_t store_t;
    int retries;
    void *hctx; /* the handler's own state for resume */
    int inflight; /* counted by rest_writes_allowed, not yet finished */
    int gated;    /* holds or waits for the per-resource write gate (gate.c) */
    char gate_key[64 + 1 + REST_MAX_ID + 1];
    rest_req *gate_next;
    buf wbytes;   /* the final bytes of a write (heap; freed with the request) */
};

/* Request header / query parameter lookup (NULL when absent). */
const char *rest_header(rest_req *r, const char *name);
const char *rest_query(rest_req *r, const char *name);

/* Call fn(ctx, key, value) for every query parameter in order (value may be
 * NULL for "?key"); stops early when fn returns non-zero. */
void rest_query_each(rest_req *r, int (*fn)(void *ctx, const char *key, const char *value),
                     void *ctx);

/* The public FHIR base URL for this request, without trailing slash
 * ("http://localhost:8080/fhir"): the configured --base-url, or built from
 * X-Forwarded-Proto/-Host or Host. Arena memory. */
const char *rest_base_url(rest_req *r);

/* The store of the server. */
struct store *rest_store(rest_req *r);

/* Suspend the connection of r (write path). Must be called from the handler,
 * before the store can complete. rest_resume() is called by the completion. */
void rest_suspend(rest_req *r);
void rest_resume(rest_req *r);

/* Count a write in flight (so shutdown waits for it). Returns 0 when the server
 * is stopping (answer 503), 1 otherwise; pair with rest_write_finished(). */
int rest_writes_allowed(rest_req *r);
void rest_write_finished(rest_req *r);

/* Monotonic nanoseconds. */
uint64_t rest_now_ns(void);

/* ---- content negotiation (conneg.c) --------------------------------------- */
/* 0 when the client accepts JSON (via _format or Accept), else ERR_UNSUPPORTED
 * with a message in msg. */
int rest_conneg_accept(const char *format_param, const char *accept, char *msg, size_t msgsz);
/* 0 when a request body Content-Type is FHIR JSON (application/fhir+json or
 * application/json, optional charset=utf-8) -- or, when json_patch is set,
 * application/json-patch+json -- else ERR_UNSUPPORTED. */
int rest_conneg_content_type(const char *ct, int json_patch, char *msg, size_t msgsz);
/* _pretty=true -> 1; "false"/absent -> 0. */
int rest_pretty(const char *v);

/* ---- responses (response.c) ----------------------------------------------- */
#define REST_CT_FHIR "application/fhir+json; charset=utf-8"

typedef struct rest_reply {
    unsigned status;
    const char *body; /* NULL for none (Content-Length: 0) */
    size_t len;
    int body_is_heap;        /* body was malloc'd and is now owned by the reply */
    const char *ctype;       /* NULL -> REST_CT_FHIR when there is a body */
    uint64_t etag_vid;       /* 0 = no ETag */
    int64_t last_modified_s; /* < 0 = no Last-Modified; Unix seconds otherwise */
    const char *location;    /* absolute URL or NULL */
    const char *allow;       /* Allow header for 405, or NULL */
} rest_reply;

/* Queue the reply on r's connection, record metrics. Always REST_DONE. */
int rest_send(rest_req *r, rest_reply *rep);

/* An OperationOutcome with one error issue, status `status`, issue type `code`
 * (OO_INVALID, OO_NOT_FOUND, OO_CONFLICT...), text `diag`, optional FHIRPath
 * `expr` (NULL for none). The one place where single errors are shaped. */
int rest_send_error(rest_req *r, unsigned status, oo_code code, const char *diag,
                    const char *expr);

/* As rest_send_error, with an Allow header (405). */
int rest_send_error_ex(rest_req *r, unsigned status, oo_code code, const char *diag,
                       const char *expr, const char *allow);

/* An OperationOutcome with all the issues of o (validation), status `status`. */
int rest_send_outcome(rest_req *r, unsigned status, const oo *o);

/* Error for an internal error code (ERR_*) with a message. */
int rest_send_errcode(rest_req *r, int err, const char *diag);

/* Send a JSON body from a buf (taken over; the buf is left empty). */
int rest_send_buf(rest_req *r, unsigned status, buf *b);

/* A _since/_at parameter (FHIR dateTime: a partial date means its start; a
 * time needs a zone) in Unix microseconds; 0 or ERR_INVALID. */
int rest_time_param(const char *s, int64_t *us);

/* ---- metrics (metrics.c) -------------------------------------------------- */
void rest_metrics_record(rest_interaction ri, unsigned status, uint64_t ns);
/* The Prometheus text exposition (into b). */
void rest_metrics_write(buf *b, struct store *st);

/* ---- writes (write.c) ------------------------------------------------------ */
/* Prefer: return=... */
typedef enum rest_prefer {
    REST_RETURN_REPRESENTATION = 0,
    REST_RETURN_MINIMAL,
    REST_RETURN_OUTCOME,
} rest_prefer;

rest_prefer rest_prefer_return(rest_req *r);

/* Parse and validate the request body as a resource of the route's type.
 * Returns 0 with *root set, or 1 when an error response was sent. */
int rest_parse_resource(rest_req *r, json_val **root);

/* The final stored form of a resource: resourceType, id, meta (versionId and
 * lastUpdated set, other meta members kept), then the remaining members of root
 * in their order. Minified, into out (reset first). */
void rest_build_bytes(const json_val *root, const char *type, const char *id,
                      uint64_t vid, int64_t last_updated_us, buf *out);

/* Parse If-Match (W/"n", "n" or n); 0 = absent, 1 = *vid set, -1 = malformed. */
int rest_if_match(rest_req *r, uint64_t *vid);

/* The checks every write to [base]/Type/id starts with: the id in the URL (400 when
 * invalid) and If-Match (400 when malformed). Returns 0 to go on, with *has_if_match
 * and *if_match set, or 1 when an error response was queued. */
int rest_write_checks(rest_req *r, uint64_t *if_match, int *has_if_match);

/* A write to [base]/Type/id that another commit to the same resource overtook: with
 * If-Match that is a 412; without, `again` (re-read and re-apply) runs again, up to
 * REST_MAX_RETRIES times, then 409 with `busy` as the diagnostic. */
int rest_write_lost_race(rest_req *r, int has_if_match, int (*again)(rest_req *r),
                         const char *busy);

/* Submit req to the store, suspend, and arrange for `resume` to run after the
 * commit (or at once with r->store_rc set when the store refused the request).
 * Answers 503 itself when the server is stopping. Always returns REST_SUSPENDED
 * or REST_DONE. */
int rest_submit(rest_req *r, struct store_req *req, rest_resume_fn resume);

/* Answer a successful write: status, ETag, Last-Modified, Location (when
 * `location`), body by Prefer (bytes = the stored resource). */
int rest_send_write(rest_req *r, unsigned status, const char *type, const char *id,
                    uint64_t vid, int64_t last_updated_us, const char *bytes, size_t len,
                    int location, const char *what);

/* Send a stored resource (read, vread): raw bytes, or re-serialised when
 * _pretty/_summary/_elements ask for it. */
int rest_send_resource(rest_req *r, unsigned status, const char *bytes, size_t len,
                       uint64_t vid, int64_t last_updated_us);

/* The per-resource write gate (gate.c): at most one update/patch/delete of
 * Type/id in flight in this process, the others wait in arrival order.
 * Returns 1 when r may go on now (it holds the gate), 0 when r was queued and
 * suspended (`cont` runs when it is its turn; return REST_SUSPENDED), -1 when
 * a response was sent (server stopping). The server releases the gate when
 * r's answer is queued or its connection ends. */
int rest_gate_enter(rest_req *r, const char *type, const char *id, rest_resume_fn cont);
void rest_gate_leave(rest_req *r);

/* Write a stored resource as a JSON value at w's position (a Bundle entry),
 * shaped like rest_send_resource (_pretty follows w, _summary, _elements). */
void rest_write_resource(rest_req *r, jw *w, const char *bytes, size_t len);

/* A fresh server-assigned id into out: a UUID version 7 (time-ordered, 36 chars
 * + NUL), so ids created later sort after earlier ones (per millisecond). */
void rest_new_id(char out[37]);

/* Server gauges for /metrics (open connections, writes in flight) into b. */
void rest_server_gauges(rest_req *r, buf *b);

/* ---- handlers ------------------------------------------------------------- */
int rest_read(rest_req *r);
int rest_vread(rest_req *r);
int rest_create(rest_req *r);
int rest_update(rest_req *r);
int rest_delete(rest_req *r);
int rest_history(rest_req *r);
int rest_batch(rest_req *r);
int rest_patch(rest_req *r);
int rest_operation(rest_req *r); /* operation.c: $name dispatch */
int rest_search(rest_req *r);
int rest_capabilities(rest_req *r);
int rest_health(rest_req *r);
int rest_metrics(rest_req *r);

#endif
