/*
 * create.c -- POST [base]/Type: create a resource with a server-assigned id.
 *
 * Per the FHIR spec the server chooses the id and ignores any id (and
 * meta.versionId / meta.lastUpdated) in the body. The id is a UUID version 7
 * (rest_new_id), the first version is 1, and the store is asked to check that
 * the id is new (expect = 0), so even an astronomically unlikely collision
 * cannot overwrite anything: it is a lost race, and the plan draws another id.
 *
 * Answer: 201 Created, Location [base]/Type/id/_history/1, ETag W/"1",
 * Last-Modified, body by Prefer. Conditional create (If-None-Exist: a search):
 * none found creates, one found answers 200 with it and writes nothing, several
 * are 412; race-free, because the create commits only if no resource of the
 * types the search reads was written since its snapshot (write.c). If-Match and
 * If-None-Match name a version of a resource that cannot exist yet, so they are
 * refused (docs/REST.md).
 */
#include <string.h>

#include "base/err.h"
#include "rest/handlers.h"
#include "rest/response.h"
#include "rest/write.h"

int rest_create(rest_req *r)
{
    if (rest_header(r, "If-Match") || rest_header(r, "If-None-Match"))
        return rest_send_error(r, 400, OO_INVALID,
                               "If-Match and If-None-Match have no meaning on a create: the "
                               "server chooses the id, so no version of it exists yet",
                               NULL);
    rest_write *w = arena_zalloc(r->a, sizeof *w);
    if (!w)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    if (rest_parse_resource(r, &w->res))
        return REST_DONE;
    w->kind = RW_CREATE;
    w->type = r->route.type;
    const char *ine = rest_header(r, "If-None-Exist");
    if (ine) {
        /* the header holds the query, with or without its "Type?" */
        const char *qm = strchr(ine, '?');
        w->cond = qm ? qm + 1 : ine;
        w->asked = RW_CREATE;
    }
    return rest_write_run(r, w);
}
