/*
 * response.h -- every answer of the REST layer leaves through rest_send()
 * (response.c), and resources are shaped for the client in shape.c.
 *
 * One exit makes the protocol details hold everywhere at once: the
 * Content-Type is application/fhir+json when there is a body, an empty body
 * carries Content-Length: 0, the ETag is weak W/"vid", Last-Modified is an
 * IMF-fixdate, Location is absolute, CORS headers follow Origin, and every
 * answer is counted in /metrics. Sending also ends the request's snapshot, so
 * bytes read from the store may be passed straight in (they are copied first).
 */
#ifndef HORTUS_REST_RESPONSE_H
#define HORTUS_REST_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "fhir/outcome.h"
#include "json/json.h"
#include "rest/request.h"

#define REST_CT_FHIR "application/fhir+json; charset=utf-8"

typedef struct rest_reply {
    unsigned status;
    const char *body; /* NULL for none (Content-Length: 0) */
    size_t len;
    int body_is_heap;        /* body was malloc'd and is now owned by the reply */
    const char *ctype;       /* NULL -> REST_CT_FHIR when there is a body */
    uint64_t etag_vid;       /* 0 = no ETag */
    int64_t last_modified_s; /* < 0 = no Last-Modified; Unix seconds otherwise */
    const char *location;    /* absolute URL or NULL */
    const char *content_location; /* absolute URL or NULL (the status of an async job) */
    const char *allow;       /* Allow header for 405, or NULL */
    const char *www_authenticate; /* WWW-Authenticate header for 401/403, or NULL */
    int no_store;            /* Cache-Control: no-store (an OAuth token answer, RFC 6749 5.1) */
} rest_reply;

/* Queue the reply on r's connection, record metrics, end the snapshot.
 * Always REST_DONE. */
int rest_send(rest_req *r, rest_reply *rep);

/* Move the bytes of b into rep's body (b is left empty): nothing moves when b is
 * empty or its sticky error is set. Returns b's sticky error (0 when fine). */
int rest_reply_take(rest_reply *rep, buf *b);

/* Send the bytes of b (taken over; b is left empty) with `status` and Content-Type
 * `ctype` (NULL: FHIR JSON). A buffer whose sticky error is set becomes a 500/503
 * OperationOutcome instead. The one way a built body is sent. */
int rest_send_body(rest_req *r, unsigned status, buf *b, const char *ctype);

/* rest_send_body with FHIR JSON. */
int rest_send_buf(rest_req *r, unsigned status, buf *b);

/* An OperationOutcome with one error issue, status `status`, issue type `code`
 * (OO_INVALID, OO_NOT_FOUND, OO_CONFLICT...), text `diag`, optional FHIRPath
 * `expr` (NULL for none). The one place where single errors are shaped. */
int rest_send_error(rest_req *r, unsigned status, oo_code code, const char *diag,
                    const char *expr);

/* As rest_send_error, with an Allow header (405). */
int rest_send_error_ex(rest_req *r, unsigned status, oo_code code, const char *diag,
                       const char *expr, const char *allow);

/* As rest_send_error, with a WWW-Authenticate header (401, 403 of authorisation). */
int rest_send_error_auth(rest_req *r, unsigned status, oo_code code, const char *diag,
                         const char *www_authenticate);

/* An OperationOutcome with all the issues of o (validation), status `status`. */
int rest_send_outcome(rest_req *r, unsigned status, const oo *o);

/* Error for an internal error code (ERR_*) with a message. */
int rest_send_errcode(rest_req *r, int err, const char *diag);

/* The answer to a body that json_parse refused with rc (je filled): 400
 * structure (or too-costly for nesting past JSON_MAX_DEPTH) naming line and
 * column; 503 for ERR_NOMEM. The one JSON-parse-error reply. */
int rest_send_json_error(rest_req *r, int rc, const json_error *je);

/* Send a stored resource (read, vread): raw bytes, or re-serialised when
 * _pretty/_summary/_elements ask for it (shape.c). */
int rest_send_resource(rest_req *r, unsigned status, const char *bytes, size_t len,
                       uint64_t vid, int64_t last_updated_us);

/* Write a stored resource as a JSON value at w's position (a Bundle entry),
 * shaped like rest_send_resource (_pretty follows w, _summary, _elements). */
void rest_write_resource(rest_req *r, jw *w, const char *bytes, size_t len);

#endif
