/*
 * delete.c -- DELETE [base]/Type/id: a versioned delete.
 *
 * Deleting writes a tombstone version (vid + 1) so the history keeps every
 * version and a later read answers 410 Gone. Deleting a resource that does not
 * exist or is already deleted changes nothing and also answers 204: the spec
 * allows either 200/204 or 404 and idempotent DELETE is what clients expect
 * (docs/REST.md). If-Match makes the delete version-aware (412 on mismatch).
 * Answer: 204 No Content with the ETag of the tombstone, or 200 with an
 * OperationOutcome under Prefer: return=OperationOutcome. DELETE [base]/Type?query
 * deletes the one resource the search finds (none: nothing to delete; several: 412).
 * The work is the write pipeline's (write.h).
 */
#include "base/err.h"
#include "rest/handlers.h"
#include "rest/response.h"
#include "rest/write.h"

int rest_delete(rest_req *r)
{
    rest_write *w = arena_zalloc(r->a, sizeof *w);
    if (!w)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    if (r->route.kind == RR_TYPE) /* DELETE [base]/Type?query: conditional delete */
        return rest_write_target_cond(r, w, RW_DELETE) ? REST_DONE : rest_write_run(r, w);
    if (rest_write_target(r, w))
        return REST_DONE;
    w->kind = RW_DELETE;
    return rest_write_run(r, w);
}
