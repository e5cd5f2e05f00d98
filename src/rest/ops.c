/*
 * ops.c -- the operational endpoints outside the FHIR base: /healthz and /metrics.
 *
 * /healthz answers 200 {"status":"ok"} when a read snapshot of the store can be
 * taken (so a load balancer sees a wedged store), else 503. /metrics is the
 * Prometheus text format of metrics.c.
 */
#include "audit/audit.h"
#include "base/err.h"
#include "index/reindex.h"
#include "rest/handlers.h"
#include "rest/metrics.h"
#include "rest/response.h"
#include "store/store.h"

int rest_health(rest_req *r)
{
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc)
        return rest_send_error(r, 503, OO_TRANSIENT, "the store cannot be read", NULL);
    uint64_t t = store_reader_t(rd);
    buf b = BUF_INIT;
    buf_printf(&b, "{\"status\":\"ok\",\"t\":%llu}", (unsigned long long)t);
    return rest_send_body(r, 200, &b, "application/json");
}

int rest_metrics(rest_req *r)
{
    buf b = BUF_INIT;
    rest_metrics_write(&b, rest_store(r));
    rest_server_gauges(r, &b);
    if (r->ctx.svc)
        idx_reindex_metrics(r->ctx.svc->reindex, &b);
    if (r->ctx.svc)
        audit_metrics(r->ctx.svc->audit, &b);
    return rest_send_body(r, 200, &b, "text/plain; version=0.0.4; charset=utf-8");
}
