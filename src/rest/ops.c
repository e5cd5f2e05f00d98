/*
 * ops.c -- the operational endpoints outside the FHIR base: /healthz and /metrics.
 *
 * /healthz answers 200 {"status":"ok"} when a read snapshot of the store can be
 * taken (so a load balancer sees a wedged store), else 503. /metrics is the
 * Prometheus text format of metrics.c.
 */
#include "base/err.h"
#include "rest/rest.h"
#include "store/store.h"

int rest_health(rest_req *r)
{
    store_reader *rd;
    int rc = store_read_begin(rest_store(r), &rd);
    if (rc)
        return rest_send_error(r, 503, OO_TRANSIENT, "the store cannot be read", NULL);
    uint64_t t = store_reader_t(rd);
    store_read_end(rd);
    buf b = BUF_INIT;
    buf_printf(&b, "{\"status\":\"ok\",\"t\":%llu}", (unsigned long long)t);
    rest_reply rep = {.status = 200, .last_modified_s = -1, .ctype = "application/json"};
    if (b.err) {
        buf_free(&b);
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    }
    size_t n = 0;
    rep.body = buf_detach(&b, &n);
    rep.len = n;
    rep.body_is_heap = 1;
    return rest_send(r, &rep);
}

int rest_metrics(rest_req *r)
{
    buf b = BUF_INIT;
    rest_metrics_write(&b, rest_store(r));
    rest_server_gauges(r, &b);
    if (b.err) {
        buf_free(&b);
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    }
    rest_reply rep = {.status = 200, .last_modified_s = -1,
                      .ctype = "text/plain; version=0.0.4; charset=utf-8"};
    size_t n = 0;
    rep.body = buf_detach(&b, &n);
    rep.len = n;
    rep.body_is_heap = 1;
    return rest_send(r, &rep);
}
