/*
 * update.c -- PUT [base]/Type/id: update, or create with a client-chosen id.
 *
 * The body must carry the same id as the URL (FHIR: 400 otherwise). The write
 * pipeline (write.h) reads the current version v, builds version v+1 and
 * commits it with expect = v (0 when the resource does not exist or is
 * deleted: create-on-update). If another write got in between:
 *   - with If-Match (version-aware update) the client gets 412;
 *   - without it the write is planned again (up to REST_MAX_RETRIES times):
 *     last writer wins, every version stays in the history.
 * If-None-Match: * makes the PUT create-only: 412 when the resource exists.
 * PUT [base]/Type?query is a conditional update: the plan finds the resource by the
 * search (none: create, with the body's id if it has one; one: update it, the body's
 * id must then be its id or absent; several: 412), write.c plan_conditional.
 * Answer: 200 (updated) or 201 (created), ETag, Last-Modified, Location on 201.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "rest/handlers.h"
#include "rest/response.h"
#include "rest/write.h"

int rest_update(rest_req *r)
{
    char msg[200];
    rest_write *w = arena_zalloc(r->a, sizeof *w);
    if (!w)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    if (r->route.kind == RR_TYPE) { /* PUT [base]/Type?query: conditional update */
        if (rest_write_target_cond(r, w, RW_UPDATE) || rest_parse_resource(r, &w->res))
            return REST_DONE;
        const json_val *idv = json_get(w->res, "id");
        if (idv && idv->type != JSON_STRING)
            return rest_send_error(r, 400, OO_INVALID, "the resource's id is not a string", "id");
        return rest_write_run(r, w);
    }
    if (rest_write_target(r, w))
        return REST_DONE;
    if (rest_parse_resource(r, &w->res))
        return REST_DONE;
    const json_val *idv = json_get(w->res, "id");
    if (!idv)
        return rest_send_error(r, 400, OO_REQUIRED,
                               "the resource has no id: an update must carry the id of the URL",
                               "id");
    if (idv->type != JSON_STRING || idv->n != r->route.id_len ||
        memcmp(idv->u.s, r->route.id, idv->n)) {
        snprintf(msg, sizeof msg, "the id in the body does not match the id '%s' of the URL",
                 r->route.id);
        return rest_send_error(r, 400, OO_INVALID, msg, "id");
    }
    w->kind = RW_UPDATE;
    return rest_write_run(r, w);
}
