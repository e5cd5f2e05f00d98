/*
 * update.c -- PUT [base]/Type/id: update, or create with a client-chosen id.
 *
 * The body must carry the same id as the URL (FHIR: 400 otherwise). The request
 * thread reads the current version v, builds the bytes of version v+1 and
 * submits them with expect = v (0 when the resource does not exist or is
 * deleted: create-on-update). If another write got in between, the store
 * answers ERR_CONFLICT and:
 *   - with If-Match (version-aware update) the client gets 412;
 *   - without it we read again and rebuild (up to REST_MAX_RETRIES times):
 *     last writer wins, every version stays in the history.
 * Answer: 200 (updated) or 201 (created), ETag, Last-Modified, Location on 201.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/time.h"
#include "rest/rest.h"
#include "store/store.h"

typedef struct update_ctx {
    store_req req;
    store_op op;
    json_val *root;
    int has_if_match;
    uint64_t if_match;
} update_ctx;

static int update_resume(rest_req *r);
static int update_continue(rest_req *r);

static int update_prepare(rest_req *r, update_ctx *c)
{
    const char *type = r->route.type->name, *id = r->route.id;
    store_reader *rd;
    int rc = store_read_begin(rest_store(r), &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the store");
    store_version v;
    rc = store_read(rd, 0, type, id, &v);
    uint64_t cur = 0;
    int live = 0;
    if (rc == 0) {
        cur = v.vid;
        live = 1;
    } else if (rc == ERR_GONE) {
        cur = v.vid;
    } else if (rc != ERR_NOTFOUND) {
        store_read_end(rd);
        return rest_send_errcode(r, rc, "cannot read the current version");
    }
    store_read_end(rd);
    if (c->has_if_match && (!live || cur != c->if_match)) {
        char msg[200];
        if (live)
            snprintf(msg, sizeof msg,
                     "version conflict: If-Match asks for version %llu, the current version "
                     "of %s/%s is %llu",
                     (unsigned long long)c->if_match, type, id, (unsigned long long)cur);
        else
            snprintf(msg, sizeof msg, "version conflict: %s/%s has no current version", type,
                     id);
        return rest_send_error(r, 412, OO_CONFLICT, msg, NULL);
    }
    int64_t lu = ftime_now_us() / 1000 * 1000;
    rest_build_bytes(c->root, type, id, cur + 1, lu, &r->wbytes);
    if (r->wbytes.err)
        return rest_send_errcode(r, r->wbytes.err, "could not build the resource");
    memset(&c->op, 0, sizeof c->op);
    memset(&c->req, 0, sizeof c->req);
    c->op.op = STORE_OP_UPDATE;
    c->op.type = type;
    c->op.type_len = strlen(type);
    c->op.id = id;
    c->op.id_len = r->route.id_len;
    c->op.expect = live ? cur : 0;
    c->op.vid = cur + 1;
    c->op.last_updated = lu;
    c->op.bytes = r->wbytes.data;
    c->op.len = r->wbytes.len;
    c->req.ops = &c->op;
    c->req.nops = 1;
    return rest_submit(r, &c->req, update_resume);
}

static int update_resume(rest_req *r)
{
    update_ctx *c = r->hctx;
    if (r->store_rc == ERR_CONFLICT || r->store_rc == ERR_INVALID) /* overtaken */
        return rest_write_lost_race(r, c->has_if_match, update_continue,
                                    "too many concurrent updates of this resource; retry");
    if (r->store_rc)
        return rest_send_errcode(r, r->store_rc, "the resource could not be stored");
    unsigned status = c->op.created ? 201 : 200;
    return rest_send_write(r, status, r->route.type->name, r->route.id, c->op.vid,
                           c->op.last_updated, r->wbytes.data, r->wbytes.len, status == 201,
                           status == 201 ? "created" : "updated");
}

static int update_continue(rest_req *r)
{
    return update_prepare(r, r->hctx);
}

int rest_update(rest_req *r)
{
    char msg[200];
    update_ctx *c = arena_zalloc(r->a, sizeof *c);
    if (!c)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    r->hctx = c;
    if (rest_write_checks(r, &c->if_match, &c->has_if_match))
        return REST_DONE;
    if (rest_parse_resource(r, &c->root))
        return REST_DONE;
    const json_val *idv = json_get(c->root, "id");
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
    /* one writer of this resource at a time, in arrival order (gate.c) */
    int g = rest_gate_enter(r, r->route.type->name, r->route.id, update_continue);
    if (g <= 0)
        return g < 0 ? REST_DONE : REST_SUSPENDED;
    return update_prepare(r, c);
}
