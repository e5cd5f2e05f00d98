/*
 * read.c -- GET [base]/Type/id: the hot path.
 *
 * One store lookup under a pooled read snapshot; the stored bytes are already
 * the final JSON, so they are copied straight into the response (MHD copies
 * them once; the snapshot ends right after). Only _pretty, _summary or
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
#include "rest/rest.h"
#include "store/store.h"

/* 1 when the If-None-Match header names vid (or is "*"). */
static int none_match_hits(const char *h, uint64_t vid)
{
    const char *p = h;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        if (*p == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (*p == '"')
            p++;
        const char *s = p;
        while (*p >= '0' && *p <= '9')
            p++;
        uint64_t v;
        if (rest_vid_parse(s, (size_t)(p - s), &v) == 0 && v == vid)
            return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

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
    int rc = store_read_begin(rest_store(r), &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the store");
    store_version v;
    rc = store_read(rd, 0, type, id, &v);
    if (rc == ERR_NOTFOUND) {
        store_read_end(rd);
        snprintf(msg, sizeof msg, "%s/%s is not known", type, id);
        return rest_send_error(r, 404, OO_NOT_FOUND, msg, NULL);
    }
    if (rc == ERR_GONE) {
        store_read_end(rd);
        snprintf(msg, sizeof msg, "%s/%s was deleted (version %llu)", type, id,
                 (unsigned long long)v.vid);
        return rest_send_error(r, 410, OO_DELETED, msg, NULL);
    }
    if (rc) {
        store_read_end(rd);
        return rest_send_errcode(r, rc, "cannot read the resource");
    }
    const char *inm = rest_header(r, "If-None-Match");
    const char *ims = rest_header(r, "If-Modified-Since");
    int not_modified = 0;
    if (inm) {
        not_modified = none_match_hits(inm, v.vid);
    } else if (ims) {
        int64_t since;
        if (ftime_parse_http(ims, strlen(ims), &since) == 0 &&
            v.last_updated / 1000000 <= since / 1000000)
            not_modified = 1;
    }
    if (not_modified) {
        rest_reply rep = {.status = 304, .etag_vid = v.vid,
                          .last_modified_s = v.last_updated / 1000000};
        store_read_end(rd);
        return rest_send(r, &rep);
    }
    rc = rest_send_resource(r, 200, v.bytes, v.len, v.vid, v.last_updated);
    store_read_end(rd);
    return rc;
}
