/*
 * create.c -- POST [base]/Type: create a resource with a server-assigned id.
 *
 * Per the FHIR spec the server chooses the id and ignores any id (and
 * meta.versionId / meta.lastUpdated) in the body. The id is a random UUID (36
 * characters, unguessable, collision-free in practice), the first version is 1,
 * and the store is asked to check that the id is new (expect = 0), so even an
 * astronomically unlikely collision cannot overwrite anything.
 *
 * Answer: 201 Created, Location [base]/Type/id/_history/1, ETag W/"1",
 * Last-Modified, body by Prefer. Conditional create (If-None-Exist) needs
 * search and is refused with 400 (not-supported) for now rather than silently
 * ignored, which could create duplicates the client meant to avoid
 * (docs/REST.md).
 */
#include <string.h>

#include "base/err.h"
#include "base/time.h"
#include "rest/rest.h"
#include "store/store.h"

typedef struct create_ctx {
    store_req req;
    store_op op;
    char id[37];
} create_ctx;

static int create_resume(rest_req *r)
{
    create_ctx *c = r->hctx;
    const char *type = r->route.type->name;
    if (r->store_rc == ERR_CONFLICT && r->retries++ < REST_MAX_RETRIES) {
        /* the random id exists already: draw another one */
        json_val *root = NULL;
        if (json_parse(r->a, r->body.data, r->body.len, JSON_FHIR, &root, NULL))
            return rest_send_errcode(r, ERR_INTERNAL, "could not re-parse the body");
        rest_new_id(c->id);
        rest_build_bytes(root, type, c->id, 1, c->op.last_updated, &r->wbytes);
        c->op.id = c->id;
        c->op.bytes = r->wbytes.data;
        c->op.len = r->wbytes.len;
        c->op.have_hash = 0;
        return rest_submit(r, &c->req, create_resume);
    }
    if (r->store_rc)
        return rest_send_errcode(r, r->store_rc, "the resource could not be stored");
    return rest_send_write(r, 201, type, c->id, 1, c->op.last_updated, r->wbytes.data,
                           r->wbytes.len, 1, "created");
}

int rest_create(rest_req *r)
{
    if (rest_header(r, "If-None-Exist"))
        return rest_send_error(r, 400, OO_NOT_SUPPORTED,
                               "conditional create (If-None-Exist) is not supported yet", NULL);
    json_val *root;
    if (rest_parse_resource(r, &root))
        return REST_DONE;
    create_ctx *c = arena_zalloc(r->a, sizeof *c);
    if (!c)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    r->hctx = c;
    const char *type = r->route.type->name;
    rest_new_id(c->id);
    int64_t lu = ftime_now_us() / 1000 * 1000; /* the instant keeps milliseconds */
    rest_build_bytes(root, type, c->id, 1, lu, &r->wbytes);
    if (r->wbytes.err)
        return rest_send_errcode(r, r->wbytes.err, "could not build the resource");
    c->op.op = STORE_OP_CREATE;
    c->op.type = type;
    c->op.type_len = strlen(type);
    c->op.id = c->id;
    c->op.id_len = strlen(c->id);
    c->op.expect = 0;
    c->op.vid = 1;
    c->op.last_updated = lu;
    c->op.bytes = r->wbytes.data;
    c->op.len = r->wbytes.len;
    c->req.ops = &c->op;
    c->req.nops = 1;
    return rest_submit(r, &c->req, create_resume);
}
