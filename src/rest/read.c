/*
 * read.c -- GET [base]/Type/id: the hot path.
 *
 * One store lookup under the request's snapshot; the stored bytes are already
 * the final JSON, so they are copied straight into the response (MHD copies
 * them once; rest_send ends the snapshot right after). Only _pretty, _summary or
 * _elements make us parse and re-serialise.
 *
 * Conditional reads: If-None-Match (W/"vid", a list, or *) and
 * If-Modified-Since (HTTP-date, second precision) answer 304 Not Modified with
 * the ETag and Last-Modified. A deleted resource answers 410 Gone, a missing one
 * 404, both with an OperationOutcome.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/time.h"
#include "rest/authz.h"
#include "rest/handlers.h"
#include "rest/params.h"
#include "rest/response.h"
#include "store/store.h"

int rest_read(rest_req *r)
{
    const char *type = r->route.type->name, *id = r->route.id;
    char msg[200];
    if (!rest_id_valid(id, r->route.id_len)) {
        snprintf(msg, sizeof msg,
                 "invalid id '%.80s': 1-%d characters of A-Z a-z 0-9 - .", id, REST_MAX_ID);
        return rest_send_error(r, 400, OO_INVALID, msg, NULL);
    }
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the store");
    if (rest_authz_instance(r, rd, type, id) >= 0)
        return REST_DONE; /* before the lookup: a refusal says nothing of existence */
    store_version v;
    rc = store_read(rd, r->ctx.tenant, type, id, &v);
    if (rc == ERR_NOTFOUND) {
        snprintf(msg, sizeof msg, "%s/%s is not known", type, id);
        return rest_send_error(r, 404, OO_NOT_FOUND, msg, NULL);
    }
    if (rc == ERR_GONE) {
        snprintf(msg, sizeof msg, "%s/%s was deleted (version %llu)", type, id,
                 (unsigned long long)v.vid);
        return rest_send_error(r, 410, OO_DELETED, msg, NULL);
    }
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the resource");
    const char *inm = rest_header(r, "If-None-Match");
    const char *ims = rest_header(r, "If-Modified-Since");
    int not_modified = 0;
    if (inm) {
        not_modified = rest_etag_list_hits(inm, v.vid);
    } else if (ims) {
        int64_t since;
        if (ftime_parse_http(ims, strlen(ims), &since) == 0 &&
            v.last_updated / 1000000 <= since / 1000000)
            not_modified = 1;
    }
    if (not_modified) {
        rest_reply rep = {.status = 304, .etag_vid = v.vid,
                          .last_modified_s = v.last_updated / 1000000};
        return rest_send(r, &rep);
    }
    /* the bytes point into the snapshot: rest_send copies them, then ends it */
    return rest_send_resource(r, 200, v.bytes, v.len, v.vid, v.last_updated);
}
