/*
 * vread.c -- GET [base]/Type/id/_history/vid: one version of a resource.
 *
 * Versions are immutable, so the answer carries the ETag and Last-Modified of
 * that version. A version that is a deletion answers 410 Gone; an unknown
 * resource or version 404; a versionId that is not a positive integer 400
 * (hortus versionIds are 1, 2, 3...).
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "rest/handlers.h"
#include "rest/params.h"
#include "rest/authz.h"
#include "rest/response.h"
#include "store/store.h"

int rest_vread(rest_req *r)
{
    const char *type = r->route.type->name, *id = r->route.id;
    char msg[240];
    if (!rest_id_valid(id, r->route.id_len)) {
        snprintf(msg, sizeof msg,
                 "invalid id '%.80s': 1-%d characters of A-Z a-z 0-9 - .", id, REST_MAX_ID);
        return rest_send_error(r, 400, OO_INVALID, msg, NULL);
    }
    uint64_t vid;
    if (rest_vid_parse(r->route.vid, r->route.vid_len, &vid)) {
        snprintf(msg, sizeof msg, "invalid versionId '%.40s': a positive integer is expected",
                 r->route.vid);
        return rest_send_error(r, 400, OO_INVALID, msg, NULL);
    }
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the store");
    /* within a restriction: the resource as it is now, then the version itself; any
     * refusal is 403, whatever exists */
    if (rest_authz_instance(r, rd, type, id) >= 0)
        return REST_DONE;
    store_version v;
    rc = store_vread(rd, r->ctx.tenant, type, id, vid, &v);
    if (rest_authz_restricted(r, type) && rc != ERR_NOMEM &&
        (rc || !(rc = rest_authz_version(r, &v)))) {
        snprintf(msg, sizeof msg, "version %llu of %s/%.64s is not within the token's rights",
                 (unsigned long long)vid, type, id);
        return rest_send_error(r, 403, OO_FORBIDDEN, msg, NULL);
    }
    if (rc == 1)
        rc = 0;
    if (rc == ERR_NOTFOUND) {
        snprintf(msg, sizeof msg, "%s/%s has no version %llu", type, id,
                 (unsigned long long)vid);
        return rest_send_error(r, 404, OO_NOT_FOUND, msg, NULL);
    }
    if (rc == ERR_GONE) {
        snprintf(msg, sizeof msg, "version %llu of %s/%s is a deletion",
                 (unsigned long long)vid, type, id);
        return rest_send_error(r, 410, OO_DELETED, msg, NULL);
    }
    if (rc) {
        return rest_send_errcode(r, rc, "cannot read the resource");
    }
    rc = rest_send_resource(r, 200, v.bytes, v.len, v.vid, v.last_updated);
    return rc;
}
