/*
 * request.h -- one HTTP request as every handler sees it, and the accessors
 * handlers use (request.c). Below the handlers and below the server: this file
 * includes no handler and no part of the connection state machine, so nothing
 * in src/rest/ reaches a handler's helpers through server.c.
 *
 *   server.c (connection state machine)
 *      | builds a rest_req per request, calls rest_req_begin() once, then
 *      v dispatches to exactly one handler (handlers.h)
 *   handler --> request.h accessors (headers, query, context, snapshot)
 *           --> response.h (rest_send*) or write.h (the write pipeline)
 *
 * The services (store, compiled search parameters, later authorisation) are
 * built by `hortus serve` and reach every request through r->site->svc; the
 * request context (r->ctx: tenant, principal, base URL, snapshot) is set once
 * before dispatch and handed to every handler and every Bundle entry.
 *
 * Memory: every rest_req has an arena (r->a) holding everything of the request
 * (parsed JSON, response bytes under construction, base URL ...). Read requests
 * borrow the arena of their HTTP thread (reset per request, never freed while
 * the thread lives); write requests own one for their lifetime, because they
 * outlive the call that started them (they wait for their commit suspended).
 */
#ifndef HORTUS_REST_REQUEST_H
#define HORTUS_REST_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "rest/limits.h"
#include "rest/route.h"

struct MHD_Connection;
struct store;
struct store_reader;
struct fp_sp_cache;
struct idx_registry;
struct idx_reindexer;
struct rest_gate;
struct auth_server;
struct tenant_reg;
struct auth_issuer;

/* How much of a resource every write checks (`--validate`, docs/REST.md Validation). */
typedef enum rest_validation {
    REST_VALIDATE_FULL = 0,  /* structure, bindings and the invariants (the default) */
    REST_VALIDATE_STRUCTURE, /* structure and bindings; no invariants */
    REST_VALIDATE_OFF,       /* only JSON, resourceType and id: for data already validated */
} rest_validation;

/* The choices of the operator that change what a write does (`hortus serve` options). */
typedef struct rest_policy {
    rest_validation validate;
    unsigned cond_delete_max; /* DELETE Type?query: 0 or 1 = single (several: 412); more =
                                 multiple, deleting at most this many in one commit */
    int ref_integrity;        /* 1: a write may not name a resource that does not exist, a
                                 delete may not leave references to it (docs/REST.md) */
    int unknown_profile;      /* prof_unknown (`--unknown-profile`): a meta.profile this
                                 server does not hold warns (0, default) or refuses */
    unsigned history_scan_max; /* versions a restricted history page looks at (0:
                                  REST_HISTORY_SCAN_MAX; HORTUS_HISTORY_SCAN_MAX, tests) */
} rest_policy;

/* What the server is built from, owned by `hortus serve` (or a test) and
 * borrowed by the server for its whole life. Shared by all threads: read-only
 * after start. */
struct rest_req;
struct rest_reply;

typedef struct rest_services {
    struct store *store;             /* the database; required */
    const struct fp_sp_cache *spc;   /* every search-parameter expression, compiled once */
    struct idx_registry *params;     /* each tenant's parameters, custom ones too (or NULL:
                                        the model's alone) */
    struct idx_reindexer *reindex;   /* the background reindex (or NULL) */
    struct prof_registry *profiles;  /* each tenant's StructureDefinitions, compiled (or
                                        NULL: meta.profile is not looked at) */
    rest_policy policy;
    struct auth_server *auth;        /* bearer-token verifier (`--auth-jwks`), or NULL:
                                        no authorisation, every request is served */
    struct rest_consents *consents;  /* the enforced Consents of each tenant, cached
                                        (rest/consent.h; mutable, with its own lock), or
                                        NULL: consent is not enforced */
    struct tenant_reg *tenants;      /* the named tenants of the data directory (or NULL:
                                        only the default tenant; auth/tenant.h) */
    struct auth_issuer *issuer;      /* the built-in authorization server
                                        (`--auth-server`), or NULL */
    struct audit_log *audit;         /* the audit trail's queue (`--audit`, docs/AUDIT.md),
                                        or NULL: no AuditEvents are recorded */
    /* called by rest_send with every answer before it goes out (the audit trail's
     * audit_rest_answered), or NULL */
    void (*answered)(struct rest_req *r, const struct rest_reply *rep);
} rest_services;

/* The server as requests see it (one per server; server.c owns it). */
typedef struct rest_site {
    const rest_services *svc;
    const char *base_url;   /* configured public base (no trailing slash), or NULL */
    unsigned port;          /* the port bound */
    int tls;                /* 1: served over TLS (a base built from Host is https://) */
    struct rest_gate *gate; /* per-resource write order (gate.h) */
    int inflight;           /* writes in flight (atomic): shutdown waits for 0 */
    int stopping;           /* atomic: set once when shutdown begins */
} rest_site;

/* The request context: who asks, for which partition, through which base, in
 * which snapshot. Set by rest_req_begin(); handlers read it, Bundle entries get
 * a pointer to their request's. */
typedef struct rest_ctx {
    const rest_services *svc; /* the server's services (NULL only in unit tests) */
    uint32_t tenant;       /* first field of every key the request touches */
    const char *tenant_name; /* the named tenant's name (route.tenant), NULL for the
                                default tenant */
    const void *principal; /* the authenticated caller (an auth_principal in the arena):
                              NULL when authorisation is off */
    const char *auth_patient; /* non-NULL: the request may only reach this patient's
                                 compartment (patient/ scopes; rest/authz.h) */
    const char *base_url;  /* public FHIR base without trailing slash (arena or site) */
    struct store_reader *snap; /* read snapshot begun by rest_snapshot(), or NULL */
    const struct fp_sp_cache *spc; /* the search parameters of that snapshot (set by
                                      rest_snapshot; NULL without services) */
    const struct rest_consent_set *consents; /* the Consents enforced as of that snapshot
                                                (rest/consent.h), once asked for; let go
                                                of by rest_snapshot_end through: */
    void (*consents_release)(struct rest_req *r);
} rest_ctx;

typedef struct rest_req rest_req;

/* What a handler returns. */
#define REST_DONE 0      /* a response was queued (or queuing failed: connection dies) */
#define REST_SUSPENDED 1 /* the request waits for the store; resume() will run later */

typedef int (*rest_resume_fn)(rest_req *r);

struct rest_req {
    rest_site *site;
    struct MHD_Connection *conn; /* NULL in unit tests: accessors then see no headers */
    arena *a;
    rest_method method;
    rest_interaction ri;
    rest_route route;
    rest_ctx ctx;
    uint64_t t_start_ns; /* monotonic clock at the first byte we saw */
    int pretty;          /* _pretty=true */
    int owns_arena;      /* write requests: a is freed with the request */

    /* body (POST/PUT/PATCH) */
    buf body;
    int body_too_big;

    /* a suspended write: set by the store callback, read after resume */
    rest_resume_fn resume;
    int retries;  /* re-plans after lost races (REST_MAX_RETRIES) */
    int commit_pending; /* commit units not yet called back, + 1 while queuing (atomic) */
    void *hctx;   /* the handler's own state for resume */
    int inflight; /* counted by rest_writes_allowed, not yet finished */
    int gated;    /* holds or waits for the per-resource write gate (gate.h) */
    int gate_waiting; /* gated, and still waiting (not the holder) */
    char gate_key[24 + 64 + 1 + REST_MAX_ID + 1];
    rest_req *gate_next;

    /* a GET entry of a Bundle (search, history) run as a request of its own (batch.c):
     * its query instead of the connection's, its headers those of the Bundle's request,
     * and its answer into sub_body and sub_status instead of onto the connection */
    rest_req *parent;
    const char *sub_query;
    buf *sub_body;
    unsigned sub_status;

    /* the audit trail (src/rest/audit_rest.h): the commit units that carry this
     * request's events, the Bundle's kind ("batch", "transaction"), the diagnostics of
     * an error answer (its outcomeDesc) */
    struct rest_commit *audit_units;
    size_t audit_nunits;
    const char *audit_sub;
    const char *audit_desc;
};

/* Fill r->ctx (tenant, base URL; principal and snapshot empty). Called once per
 * request by the server before dispatch. A route naming a tenant (route.tenant) gets
 * that tenant's number and the base URL [base]/NAME when it is registered; when it is
 * not, route.kind becomes RR_UNKNOWN_TENANT (a 404) and the context is the default
 * tenant's. Returns 0 or ERR_NOMEM. */
int rest_req_begin(rest_req *r);

/* Request header / query parameter lookup (NULL when absent). The string
 * belongs to the connection: valid until the request's answer is queued. */
const char *rest_header(rest_req *r, const char *name);
const char *rest_query(rest_req *r, const char *name);

/* Call fn(ctx, key, value) for every query parameter in order (value may be
 * NULL for "?key"); stops early when fn returns non-zero. */
void rest_query_each(rest_req *r, int (*fn)(void *ctx, const char *key, const char *value),
                     void *ctx);

/* The public FHIR base URL of this request, without trailing slash
 * ("http://localhost:8080/fhir"): r->ctx.base_url. Never NULL. */
const char *rest_base_url(rest_req *r);

/* The store of the server. */
struct store *rest_store(rest_req *r);

/* The request's read snapshot, begun at the first call and kept until
 * rest_snapshot_end(), which rest_send() and rest_suspend() call: a request
 * never waits for a write while it holds one (store.h). Every pointer read
 * through it is valid until then. 0 and *rd, or the store's error. */
int rest_snapshot(rest_req *r, struct store_reader **rd);
void rest_snapshot_end(rest_req *r);

/* Suspend the connection of r (write path) until rest_resume(); ends the
 * snapshot first. Must be called from the handler, before the store can
 * complete. */
void rest_suspend(rest_req *r);
void rest_resume(rest_req *r);

/* Count a write in flight (so shutdown waits for it). Returns 0 when the server
 * is stopping (answer 503), 1 otherwise; pair with rest_write_finished(). */
int rest_writes_allowed(rest_req *r);
void rest_write_finished(rest_req *r);

/* Monotonic nanoseconds. */
uint64_t rest_now_ns(void);

/* Server gauges for /metrics (open connections, writes in flight) into b. */
void rest_server_gauges(rest_req *r, buf *b);

#endif
