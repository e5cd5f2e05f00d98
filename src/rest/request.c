/*
 * request.c -- the per-request accessors handlers use: headers, query, the
 * request context (tenant, base URL, snapshot), suspension and the count of
 * writes in flight.
 *
 * They sit between libmicrohttpd and the handlers so that server.c is only the
 * connection state machine and no handler needs it. With no connection
 * (r->conn NULL, as in unit tests) every header and query lookup answers
 * "absent" and suspension is a no-op.
 */
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth/tenant.h"
#include "base/err.h"
#include "index/params.h"
#include "rest/params.h"
#include "rest/request.h"
#include "store/store.h"

const char *rest_header(rest_req *r, const char *name)
{
    if (!r->conn && r->parent)
        return rest_header(r->parent, name);
    return r->conn ? MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name) : NULL;
}

typedef struct query_find {
    const char *name, *value;
    int found;
} query_find;

static int find_cb(void *ctx, const char *key, const char *value)
{
    query_find *f = ctx;
    if (strcmp(key, f->name))
        return 0;
    f->value = value;
    f->found = 1;
    return 1;
}

const char *rest_query(rest_req *r, const char *name)
{
    if (r->sub_query) {
        query_find f = {name, NULL, 0};
        rest_form_each(r->a, r->sub_query, strlen(r->sub_query), find_cb, &f);
        return f.found ? (f.value ? f.value : "") : NULL;
    }
    return r->conn ? MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name) : NULL;
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
    if (r->sub_query) {
        rest_form_each(r->a, r->sub_query, strlen(r->sub_query), fn, ctx);
        return;
    }
    if (!r->conn)
        return;
    query_iter q = {fn, ctx};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_cb, &q);
}

struct store *rest_store(rest_req *r)
{
    return r->site->svc->store;
}

/* ---- the request context ------------------------------------------------------- */

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

/* The configured --base-url, else built from X-Forwarded-Proto/-Host or Host. */
static const char *compute_base_url(rest_req *r)
{
    if (r->site->base_url)
        return r->site->base_url;
    const char *proto = rest_header(r, "X-Forwarded-Proto");
    if (!proto || (strcmp(proto, "http") && strcmp(proto, "https")))
        proto = r->site->tls ? "https" : "http";
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
        buf_printf(&b, "%s://localhost:%u%s", proto, r->site->port, REST_BASE_PATH);
    const char *out = b.err ? NULL : arena_strndup(r->a, b.data, b.len);
    buf_free(&b);
    return out;
}

int rest_req_begin(rest_req *r)
{
    r->ctx.svc = r->site->svc;
    r->ctx.tenant = REST_DEFAULT_TENANT;
    r->ctx.tenant_name = NULL;
    r->ctx.principal = NULL;
    r->ctx.auth_patient = NULL;
    r->ctx.snap = NULL;
    r->ctx.base_url = compute_base_url(r);
    if (!r->ctx.base_url)
        return ERR_NOMEM;
    if (r->route.tenant) {
        tenant_reg *tg = r->ctx.svc ? r->ctx.svc->tenants : NULL;
        uint32_t num;
        if (!tg || !tenant_reg_find(tg, r->route.tenant, r->route.tenant_len, &num)) {
            r->route.kind = RR_UNKNOWN_TENANT;
            return 0;
        }
        size_t bl = strlen(r->ctx.base_url);
        char *b = arena_alloc(r->a, bl + 1 + r->route.tenant_len + 1);
        if (!b)
            return ERR_NOMEM;
        memcpy(b, r->ctx.base_url, bl);
        b[bl] = '/';
        memcpy(b + bl + 1, r->route.tenant, r->route.tenant_len + 1);
        r->ctx.base_url = b;
        r->ctx.tenant = num;
        r->ctx.tenant_name = r->route.tenant;
    }
    return 0;
}

const char *rest_base_url(rest_req *r)
{
    return r->ctx.base_url ? r->ctx.base_url : "";
}

int rest_snapshot(rest_req *r, store_reader **rd)
{
    if (!r->ctx.snap) {
        int rc = store_read_begin(rest_store(r), &r->ctx.snap);
        if (rc) {
            r->ctx.snap = NULL;
            return rc;
        }
        const rest_services *svc = r->ctx.svc;
        r->ctx.spc = svc ? svc->spc : NULL;
        if (svc && svc->params &&
            (rc = idx_registry_get(svc->params, r->ctx.snap, r->ctx.tenant, &r->ctx.spc))) {
            rest_snapshot_end(r);
            return rc;
        }
    }
    *rd = r->ctx.snap;
    return 0;
}

void rest_snapshot_end(rest_req *r)
{
    if (r->ctx.consents_release)
        r->ctx.consents_release(r);
    if (r->ctx.snap) {
        store_read_end(r->ctx.snap);
        r->ctx.snap = NULL;
    }
}

/* ---- suspension and writes in flight ------------------------------------------- */

void rest_suspend(rest_req *r)
{
    rest_snapshot_end(r);
    if (r->conn)
        MHD_suspend_connection(r->conn);
}

void rest_resume(rest_req *r)
{
    if (r->conn)
        MHD_resume_connection(r->conn);
}

int rest_writes_allowed(rest_req *r)
{
    __atomic_add_fetch(&r->site->inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&r->site->stopping, __ATOMIC_SEQ_CST)) {
        __atomic_sub_fetch(&r->site->inflight, 1, __ATOMIC_SEQ_CST);
        return 0;
    }
    return 1;
}

void rest_write_finished(rest_req *r)
{
    __atomic_sub_fetch(&r->site->inflight, 1, __ATOMIC_SEQ_CST);
}

uint64_t rest_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void rest_server_gauges(rest_req *r, buf *b)
{
    unsigned conns = 0;
    if (r->conn) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_DAEMON);
        const union MHD_DaemonInfo *di =
            ci ? MHD_get_daemon_info(ci->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS) : NULL;
        conns = di ? di->num_connections : 0u;
    }
    buf_printf(b,
               "# HELP hortus_http_connections Open HTTP connections.\n"
               "# TYPE hortus_http_connections gauge\n"
               "hortus_http_connections %u\n"
               "# HELP hortus_http_writes_in_flight Writes waiting for their commit or their "
               "turn at a resource.\n"
               "# TYPE hortus_http_writes_in_flight gauge\n"
               "hortus_http_writes_in_flight %d\n",
               conns, __atomic_load_n(&r->site->inflight, __ATOMIC_RELAXED));
}
