/*
 * delete.c -- DELETE [base]/Type/id: a versioned delete.
 *
 * Deleting writes a tombstone version (vid + 1) so the history keeps every
 * version and a later read answers 410 Gone. Deleting a resource that does not
 * exist or is already deleted changes nothing and also answers 204: the spec
 * allows either 200/204 or 404 and idempotent DELETE is what clients expect
 * (docs/REST.md). If-Match makes the delete version-aware (412 on mismatch).
 * Answer: 204 No Content with the ETag of the tombstone, or 200 with an
 * OperationOutcome under Prefer: return=OperationOutcome.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/time.h"
#include "rest/rest.h"
#include "store/store.h"

typedef struct delete_ctx {
    store_req req;
    store_op op;
    int has_if_match;
    uint64_t if_match;
} delete_ctx;

static int delete_resume(rest_req *r);
static int delete_continue(rest_req *r);

static int send_deleted(rest_req *r, uint64_t vid, int64_t lu, const char *what)
{
    unsigned status = rest_prefer_return(r) == REST_RETURN_OUTCOME ? 200 : 204;
    return rest_send_write(r, status, r->route.type->name, r->route.id, vid, lu, NULL, 0, 0,
                           what);
}

static int delete_prepare(rest_req *r, delete_ctx *c)
{
    const char *type = r->route.type->name, *id = r->route.id;
    store_reader *rd;
    int rc = store_read_begin(rest_store(r), &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the store");
    store_version v;
    rc = store_read(rd, 0, type, id, &v);
    store_read_end(rd);
    if (rc && rc != ERR_NOTFOUND && rc != ERR_GONE)
        return rest_send_errcode(r, rc, "cannot read the current version");
    if (c->has_if_match && (rc || v.vid != c->if_match))
        return rest_send_error(r, 412, OO_CONFLICT,
                               "version conflict: If-Match does not name the current version",
                               NULL);
    if (rc == ERR_NOTFOUND)
        return send_deleted(r, 0, -1000000, "nothing to delete:");
    if (rc == ERR_GONE)
        return send_deleted(r, v.vid, v.last_updated, "already deleted:");
    memset(&c->op, 0, sizeof c->op);
    memset(&c->req, 0, sizeof c->req);
    c->op.op = STORE_OP_DELETE;
    c->op.type = type;
    c->op.type_len = strlen(type);
    c->op.id = id;
    c->op.id_len = r->route.id_len;
    c->op.expect = v.vid;
    c->op.vid = v.vid + 1;
    c->op.last_updated = ftime_now_us() / 1000 * 1000;
    c->req.ops = &c->op;
    c->req.nops = 1;
    return rest_submit(r, &c->req, delete_resume);
}

static int delete_resume(rest_req *r)
{
    delete_ctx *c = r->hctx;
    int rc = r->store_rc;
    if (rc == ERR_CONFLICT || rc == ERR_INVALID)
        return rest_write_lost_race(r, c->has_if_match, delete_continue,
                                    "too many concurrent writes to this resource; retry");
    if (rc == ERR_NOTFOUND || rc == ERR_GONE)
        return delete_prepare(r, c); /* answers 204 from the new state */
    if (rc)
        return rest_send_errcode(r, rc, "the deletion could not be stored");
    return send_deleted(r, c->op.vid, c->op.last_updated, "deleted");
}

static int delete_continue(rest_req *r)
{
    return delete_prepare(r, r->hctx);
}

int rest_delete(rest_req *r)
{
    delete_ctx *c = arena_zalloc(r->a, sizeof *c);
    if (!c)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    r->hctx = c;
    if (rest_write_checks(r, &c->if_match, &c->has_if_match))
        return REST_DONE;
    /* one writer of this resource at a time, in arrival order (gate.c) */
    int g = rest_gate_enter(r, r->route.type->name, r->route.id, delete_continue);
    if (g <= 0)
        return g < 0 ? REST_DONE : REST_SUSPENDED;
    return delete_prepare(r, c);
}
