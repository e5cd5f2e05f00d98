/*
 * batch.c -- POST [base] with a Bundle of type "transaction" or "batch".
 *
 * Both are prepared the same way, in the HTTP thread: each entry's request
 * (method + url) is routed with the REST router, POST entries get new ids, the
 * current version of every written resource is read in one snapshot, and the
 * final bytes of every new version are built. Then:
 *
 *   transaction  one store request with all ops: one t, all or nothing. A
 *                conflicting concurrent write re-prepares the whole Bundle
 *                (unless an entry has ifMatch: 412). References to the
 *                fullUrl of another entry (urn:uuid:...) are rewritten to
 *                Type/id before the bytes are built.
 *   batch        one store request per entry, all submitted together; the
 *                connection resumes when the last one completed. Each entry
 *                succeeds or fails alone (errors become that entry's
 *                response.outcome); entries may not refer to each other.
 *
 * GET entries (read, vread) are answered after the writes, as the spec asks.
 * The response Bundle keeps the order of the request; each entry has
 * response.status ("201 Created"...), location, etag, lastModified, and the
 * resource when Prefer asks for the representation (the default).
 * The response is built in memory, so its size is budgeted before anything
 * runs (REST_MAX_RESPONSE, 413 too-costly for the whole Bundle).
 *
 *   entry i --route--> bentry{method, type, id} --prepare--> store_op (bytes)
 *                                                     |
 *                 transaction: req{ops[0..n)}   batch: req_i{op_i}  -> submit
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/time.h"
#include "fhir/validate.h"
#include "rest/rest.h"
#include "store/store.h"

typedef enum { BM_GET = 0, BM_POST, BM_PUT, BM_DELETE } bmethod;

typedef struct bctx bctx;

typedef struct bentry {
    bctx *c;
    size_t idx;
    bmethod m;
    json_val *res; /* POST/PUT resource */
    const fhir_type *type;
    const char *id; /* target id (POST: the new one) */
    char newid[37];
    uint64_t get_vid; /* GET of a version; 0 = current */
    int has_if_match;
    uint64_t if_match;
    /* outcome */
    unsigned status;     /* 0 while pending */
    oo_code err_code;    /* when status >= 400 */
    const char *err_msg; /* arena */
    /* the write */
    int has_op;
    store_op op;
    store_req req; /* batch: this entry's own request */
    int rc;        /* batch: store result */
} bentry;

struct bctx {
    rest_req *r;
    int transaction;
    size_t n;
    bentry *e;
    /* transaction: one request */
    store_req req;
    store_op *ops;
    /* fullUrl -> "Type/id" (transaction reference rewriting) */
    const char **map_from, **map_to;
    size_t map_cap;
    int pending; /* batch: store callbacks outstanding + 1 guard (atomic) */
};

static const char *status_text(unsigned s)
{
    switch (s) {
    case 200: return "200 OK";
    case 201: return "201 Created";
    case 204: return "204 No Content";
    case 400: return "400 Bad Request";
    case 404: return "404 Not Found";
    case 405: return "405 Method Not Allowed";
    case 409: return "409 Conflict";
    case 410: return "410 Gone";
    case 412: return "412 Precondition Failed";
    case 413: return "413 Content Too Large";
    case 501: return "501 Not Implemented";
    default: return "500 Internal Server Error";
    }
}

/* Record an entry's failure; returns 0 so routing code can `return fail_entry(..)`. */
static int fail_entry(bentry *e, unsigned status, oo_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_entry(bentry *e, unsigned status, oo_code code, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    e->status = status;
    e->err_code = code;
    e->err_msg = arena_strndup(e->c->r->a, msg, strlen(msg));
    e->has_op = 0;
    return 0;
}

/* ---- fullUrl map (open addressing, arena) -------------------------------- */
static void map_put(bctx *c, const char *from, const char *to)
{
    size_t i = hash_u64(from, strlen(from), 0) & (c->map_cap - 1);
    while (c->map_from[i] && strcmp(c->map_from[i], from))
        i = (i + 1) & (c->map_cap - 1);
    c->map_from[i] = from;
    c->map_to[i] = to;
}

static const char *map_get(const bctx *c, const char *from, size_t n)
{
    if (!c->map_cap)
        return NULL;
    size_t i = hash_u64(from, n, 0) & (c->map_cap - 1);
    while (c->map_from[i]) {
        if (strlen(c->map_from[i]) == n && !memcmp(c->map_from[i], from, n))
            return c->map_to[i];
        i = (i + 1) & (c->map_cap - 1);
    }
    return NULL;
}

/* Rewrite every "reference" string that names another entry's fullUrl. */
static void rewrite_refs(const bctx *c, json_val *v, int depth)
{
    if (depth > JSON_MAX_DEPTH + 2)
        return;
    if (v->type == JSON_ARRAY) {
        for (uint32_t i = 0; i < v->n; i++)
            rewrite_refs(c, &v->u.items[i], depth + 1);
    } else if (v->type == JSON_OBJECT) {
        for (uint32_t i = 0; i < v->n; i++) {
            json_member *m = &v->u.members[i];
            if (m->val.type == JSON_STRING && !strcmp(m->key, "reference")) {
                const char *to = map_get(c, m->val.u.s, m->val.n);
                if (to) {
                    m->val.u.s = to;
                    m->val.n = (uint32_t)strlen(to);
                }
            } else {
                rewrite_refs(c, &m->val, depth + 1);
            }
        }
    }
}

/* ---- parsing the entries -------------------------------------------------- */

/* Route entry.request.url: relative "Type[/id[/_history/vid]]" or absolute under
 * our base. Fills e->type, e->id, e->get_vid or fails the entry. */
static int route_entry(bctx *c, bentry *e, const char *url)
{
    rest_req *r = c->r;
    const char *base = rest_base_url(r);
    size_t bl = strlen(base);
    if (!strncmp(url, base, bl) && url[bl] == '/')
        url += bl + 1;
    else if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))
        return fail_entry(e, 400, OO_NOT_SUPPORTED, "request.url '%.100s' is not on this server",
                          url);
    if (url[0] == '/')
        url++;
    if (strchr(url, '?'))
        return fail_entry(e, 400, OO_NOT_SUPPORTED,
                          "conditional and search requests in a Bundle are not supported yet "
                          "('%.100s')",
                          url);
    buf p = BUF_INIT;
    buf_printf(&p, "%s/%s", REST_BASE_PATH, url);
    rest_route rt;
    int rc = p.err ? p.err : rest_route_parse(r->a, buf_cstr(&p), &rt);
    buf_free(&p);
    if (rc)
        return fail_entry(e, 500, OO_EXCEPTION, "out of memory");
    if (rt.kind == RR_UNKNOWN_TYPE)
        return fail_entry(e, 404, OO_NOT_SUPPORTED, "unknown resource type '%.80s'",
                          rt.type_name);
    int want_id = e->m == BM_PUT || e->m == BM_DELETE;
    if (e->m == BM_POST && rt.kind != RR_TYPE)
        return fail_entry(e, 400, OO_INVALID, "a POST entry needs request.url 'Type'");
    if (want_id && rt.kind != RR_INSTANCE)
        return fail_entry(e, 400, OO_INVALID, "a %s entry needs request.url 'Type/id'",
                          e->m == BM_PUT ? "PUT" : "DELETE");
    if (e->m == BM_GET && rt.kind != RR_INSTANCE && rt.kind != RR_VERSION)
        return fail_entry(e, 400, OO_NOT_SUPPORTED,
                          "GET entries support read and vread only ('%.100s')", url);
    e->type = rt.type;
    if (rt.kind == RR_INSTANCE || rt.kind == RR_VERSION) {
        if (!rest_id_valid(rt.id, rt.id_len))
            return fail_entry(e, 400, OO_INVALID, "invalid id '%.80s' in request.url", rt.id);
        e->id = rt.id;
    }
    if (rt.kind == RR_VERSION && rest_vid_parse(rt.vid, rt.vid_len, &e->get_vid))
        return fail_entry(e, 400, OO_INVALID, "invalid versionId '%.40s' in request.url",
                          rt.vid);
    return 0;
}

static int parse_if_match(const char *h, uint64_t *vid)
{
    const char *p = h;
    if (p[0] == 'W' && p[1] == '/')
        p += 2;
    size_t n = strlen(p);
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
        p++;
        n -= 2;
    }
    return rest_vid_parse(p, n, vid);
}

/* Fill the bentry array from the Bundle. Returns 0, or 1 when a response was
 * sent (a transaction fails as a whole on the first bad entry). */
static int parse_entries(bctx *c, json_val *bundle)
{
    rest_req *r = c->r;
    json_val *entries = json_get(bundle, "entry");
    c->n = entries && entries->type == JSON_ARRAY ? entries->n : 0;
    if (c->n > REST_MAX_BUNDLE_ENTRIES) {
        char msg[120];
        snprintf(msg, sizeof msg, "a Bundle may have at most %u entries",
                 REST_MAX_BUNDLE_ENTRIES);
        return rest_send_error(r, 413, OO_TOO_COSTLY, msg, "Bundle.entry"), 1;
    }
    c->e = arena_zalloc(r->a, sizeof *c->e * (c->n ? c->n : 1));
    c->map_cap = 16;
    while (c->map_cap < c->n * 2)
        c->map_cap *= 2;
    c->map_from = arena_zalloc(r->a, sizeof *c->map_from * c->map_cap);
    c->map_to = arena_zalloc(r->a, sizeof *c->map_to * c->map_cap);
    if (!c->e || !c->map_from || !c->map_to)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory"), 1;
    for (size_t i = 0; i < c->n; i++) {
        bentry *e = &c->e[i];
        e->c = c;
        e->idx = i;
        json_val *ent = &entries->u.items[i];
        json_val *req = json_get(ent, "request");
        const char *method = req ? json_get_str(req, "method") : NULL;
        const char *url = req ? json_get_str(req, "url") : NULL;
        if (!method || !url) {
            fail_entry(e, 400, OO_REQUIRED, "entry %zu has no request.method and request.url", i);
        } else {
            if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
                e->m = BM_GET;
            else if (!strcmp(method, "POST"))
                e->m = BM_POST;
            else if (!strcmp(method, "PUT"))
                e->m = BM_PUT;
            else if (!strcmp(method, "DELETE"))
                e->m = BM_DELETE;
            else
                fail_entry(e, 405, OO_NOT_SUPPORTED, "request.method %.20s is not supported",
                           method);
            if (!e->status)
                route_entry(c, e, url);
        }
        if (!e->status && json_get(req, "ifNoneExist"))
            fail_entry(e, 400, OO_NOT_SUPPORTED, "ifNoneExist (conditional create) is not "
                                                 "supported yet");
        const char *im = req ? json_get_str(req, "ifMatch") : NULL;
        if (!e->status && im) {
            if (parse_if_match(im, &e->if_match))
                fail_entry(e, 400, OO_INVALID, "malformed ifMatch '%.40s'", im);
            else
                e->has_if_match = 1;
        }
        if (!e->status && (e->m == BM_POST || e->m == BM_PUT)) {
            e->res = json_get(ent, "resource");
            const char *rt = e->res ? json_get_str(e->res, "resourceType") : NULL;
            if (!rt) {
                fail_entry(e, 400, OO_REQUIRED, "entry %zu has no resource", i);
            } else if (strcmp(rt, e->type->name)) {
                fail_entry(e, 400, OO_INVALID,
                           "resourceType '%.64s' does not match request.url type '%s'", rt,
                           e->type->name);
            } else if (e->m == BM_PUT) {
                const json_val *idv = json_get(e->res, "id");
                if (!idv || idv->type != JSON_STRING || strcmp(idv->u.s, e->id))
                    fail_entry(e, 400, OO_INVALID,
                               "the resource id must equal the id '%s' of request.url", e->id);
            }
            if (!e->status && !c->transaction) {
                /* batch: each resource is validated alone */
                oo o;
                oo_init(&o, r->a);
                if (val_resource(r->a, e->res, e->type->name, &o)) {
                    const oo_issue *is = oo_get(&o, 0);
                    fail_entry(e, 400, is ? is->code : OO_INVALID, "%s%s%s",
                               is && is->diagnostics ? is->diagnostics : "invalid resource",
                               is && is->expression ? " at " : "",
                               is && is->expression ? is->expression : "");
                }
            }
        }
        if (!e->status && e->m == BM_POST) {
            rest_new_id(e->newid);
            e->id = e->newid;
        }
        if (!e->status && (e->m == BM_POST || e->m == BM_PUT)) {
            const char *full = json_get_str(ent, "fullUrl");
            if (full) {
                buf t = BUF_INIT;
                buf_printf(&t, "%s/%s", e->type->name, e->id);
                const char *to = t.err ? NULL : arena_strndup(r->a, t.data, t.len);
                buf_free(&t);
                if (to)
                    map_put(c, full, to);
            }
        }
        if (c->transaction && e->status) {
            char msg[400];
            snprintf(msg, sizeof msg, "Bundle.entry[%zu]: %s", i, e->err_msg ? e->err_msg : "");
            char expr[40];
            snprintf(expr, sizeof expr, "Bundle.entry[%zu]", i);
            return rest_send_error(r, e->status, e->err_code, msg, expr), 1;
        }
    }
    /* the same resource written twice */
    for (size_t i = 0; i < c->n; i++) {
        bentry *a = &c->e[i];
        if (a->status || a->m == BM_GET || a->m == BM_POST)
            continue;
        for (size_t j = i + 1; j < c->n; j++) {
            bentry *b = &c->e[j];
            if (!b->status && (b->m == BM_PUT || b->m == BM_DELETE) && b->type == a->type &&
                !strcmp(a->id, b->id)) {
                char msg[200];
                snprintf(msg, sizeof msg, "%s/%s is written by entries %zu and %zu",
                         a->type->name, a->id, i, j);
                if (c->transaction)
                    return rest_send_error(r, 400, OO_INVALID, msg, "Bundle.entry"), 1;
                fail_entry(b, 400, OO_INVALID, "%s", msg);
            }
        }
    }
    return 0;
}

/* ---- preparing the writes ------------------------------------------------- */

/* Read the current version of e's target and build its op. Entry errors are
 * recorded in e. Returns ERR_IO / ERR_NOMEM for failures of the server. */
static int prepare_entry(bctx *c, bentry *e, store_reader *rd, int64_t lu)
{
    rest_req *r = c->r;
    e->has_op = 0;
    if (e->status || e->m == BM_GET)
        return 0;
    uint64_t cur = 0;
    int live = 0;
    if (e->m != BM_POST) {
        store_version v;
        int rc = store_read(rd, 0, e->type->name, e->id, &v);
        if (rc == 0) {
            cur = v.vid;
            live = 1;
        } else if (rc == ERR_GONE) {
            cur = v.vid;
        } else if (rc != ERR_NOTFOUND) {
            return rc;
        }
    }
    if (e->has_if_match && (!live || cur != e->if_match)) {
        fail_entry(e, 412, OO_CONFLICT, "ifMatch W/\"%llu\" is not the current version of %s/%s",
                   (unsigned long long)e->if_match, e->type->name, e->id);
        return 0;
    }
    if (e->m == BM_DELETE && !live) {
        e->status = 204; /* nothing to delete: idempotent, no write */
        return 0;
    }
    memset(&e->op, 0, sizeof e->op);
    e->op.type = e->type->name;
    e->op.type_len = strlen(e->type->name);
    e->op.id = e->id;
    e->op.id_len = strlen(e->id);
    e->op.vid = cur + 1;
    e->op.last_updated = lu;
    if (e->m == BM_DELETE) {
        e->op.op = STORE_OP_DELETE;
        e->op.expect = cur;
    } else {
        e->op.op = e->m == BM_POST ? STORE_OP_CREATE : STORE_OP_UPDATE;
        e->op.expect = live ? cur : 0;
        buf b = BUF_INIT;
        rest_build_bytes(e->res, e->type->name, e->id, cur + 1, lu, &b);
        if (b.err) {
            int err = b.err;
            buf_free(&b);
            return err;
        }
        char *bytes = arena_alloc(r->a, b.len ? b.len : 1);
        if (!bytes) {
            buf_free(&b);
            return ERR_NOMEM;
        }
        memcpy(bytes, b.data, b.len);
        e->op.bytes = bytes;
        e->op.len = b.len;
        buf_free(&b);
    }
    e->has_op = 1;
    return 0;
}

static int prepare_all(bctx *c)
{
    store_reader *rd;
    int rc = store_read_begin(rest_store(c->r), &rd);
    if (rc)
        return rc;
    int64_t lu = ftime_now_us() / 1000 * 1000;
    for (size_t i = 0; i < c->n && !rc; i++)
        rc = prepare_entry(c, &c->e[i], rd, lu);
    store_read_end(rd);
    return rc;
}

/* ---- the response Bundle -------------------------------------------------- */

static void write_outcome(jw *w, bentry *e)
{
    jw_key(w, "outcome");
    jw_obj(w);
    jw_key(w, "resourceType");
    jw_str(w, "OperationOutcome");
    jw_key(w, "issue");
    jw_arr(w);
    jw_obj(w);
    jw_key(w, "severity");
    jw_str(w, "error");
    jw_key(w, "code");
    jw_str(w, oo_code_str(e->err_code));
    jw_key(w, "diagnostics");
    jw_str(w, e->err_msg ? e->err_msg : "failed");
    jw_end(w);
    jw_end(w);
    jw_end(w);
}

static void write_entry_resource(rest_req *r, jw *w, const char *bytes, size_t len)
{
    jw_key(w, "resource");
    rest_write_resource(r, w, bytes, len);
}

static void write_version_response(jw *w, const char *base, bentry *e, uint64_t vid,
                                   int64_t lu, int location)
{
    char tmp[64];
    jw_key(w, "response");
    jw_obj(w);
    jw_key(w, "status");
    jw_str(w, status_text(e->status));
    if (location) {
        buf l = BUF_INIT;
        buf_printf(&l, "%s/%s/%s/_history/%llu", base, e->type->name, e->id,
                   (unsigned long long)vid);
        jw_key(w, "location");
        jw_str(w, buf_cstr(&l));
        buf_free(&l);
    }
    if (vid) {
        snprintf(tmp, sizeof tmp, "W/\"%llu\"", (unsigned long long)vid);
        jw_key(w, "etag");
        jw_str(w, tmp);
        ftime_format_instant(lu, tmp);
        jw_key(w, "lastModified");
        jw_str(w, tmp);
    }
    jw_end(w);
}

static int respond(bctx *c)
{
    rest_req *r = c->r;
    const char *base = rest_base_url(r);
    rest_prefer pref = rest_prefer_return(r);
    store_reader *rd = NULL;
    int rc = store_read_begin(rest_store(r), &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the store");
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, r->pretty);
    jw_obj(&w);
    jw_key(&w, "resourceType");
    jw_str(&w, "Bundle");
    jw_key(&w, "type");
    jw_str(&w, c->transaction ? "transaction-response" : "batch-response");
    jw_key(&w, "entry");
    jw_arr(&w);
    for (size_t i = 0; i < c->n; i++) {
        bentry *e = &c->e[i];
        jw_obj(&w);
        if (!e->status && e->m == BM_GET) {
            store_version v;
            int g = e->get_vid ? store_vread(rd, 0, e->type->name, e->id, e->get_vid, &v)
                               : store_read(rd, 0, e->type->name, e->id, &v);
            if (g == 0 && b.len + v.len > REST_MAX_RESPONSE) {
                fail_entry(e, 413, OO_TOO_COSTLY,
                           "%s/%s does not fit in the response (REST_MAX_RESPONSE): read it "
                           "on its own", e->type->name, e->id);
            } else if (g == 0) {
                e->status = 200;
                buf f = BUF_INIT;
                buf_printf(&f, "%s/%s/%s", base, e->type->name, e->id);
                jw_key(&w, "fullUrl");
                jw_str(&w, buf_cstr(&f));
                buf_free(&f);
                write_entry_resource(r, &w, v.bytes, v.len);
                write_version_response(&w, base, e, v.vid, v.last_updated, 0);
            } else if (g == ERR_GONE) {
                fail_entry(e, 410, OO_DELETED, "%s/%s is deleted", e->type->name, e->id);
            } else if (g == ERR_NOTFOUND) {
                fail_entry(e, 404, OO_NOT_FOUND, "%s/%s%s is not known", e->type->name, e->id,
                           e->get_vid ? " (that version)" : "");
            } else {
                fail_entry(e, 500, OO_EXCEPTION, "cannot read %s/%s", e->type->name, e->id);
            }
        } else if (e->status < 400 && e->has_op) {
            buf f = BUF_INIT;
            buf_printf(&f, "%s/%s/%s", base, e->type->name, e->id);
            jw_key(&w, "fullUrl");
            jw_str(&w, buf_cstr(&f));
            buf_free(&f);
            if (e->op.op != STORE_OP_DELETE && pref == REST_RETURN_REPRESENTATION)
                write_entry_resource(r, &w, e->op.bytes, e->op.len);
            write_version_response(&w, base, e, e->op.vid, e->op.last_updated,
                                   e->op.op != STORE_OP_DELETE);
        } else if (e->status < 400) {
            write_version_response(&w, base, e, 0, 0, 0); /* 204 without a write */
        }
        if (e->status >= 400) {
            jw_key(&w, "response");
            jw_obj(&w);
            jw_key(&w, "status");
            jw_str(&w, status_text(e->status));
            write_outcome(&w, e);
            jw_end(&w);
        }
        jw_end(&w);
    }
    jw_end(&w);
    jw_end(&w);
    store_read_end(rd);
    return rest_send_buf(r, 200, &b);
}

/* ---- transaction ---------------------------------------------------------- */

static int tx_resume(rest_req *r);

static int tx_submit(bctx *c)
{
    rest_req *r = c->r;
    int rc = prepare_all(c);
    if (rc)
        return rest_send_errcode(r, rc, "cannot prepare the transaction");
    size_t nops = 0;
    for (size_t i = 0; i < c->n; i++) {
        bentry *e = &c->e[i];
        if (e->status >= 400) {
            char msg[400], expr[40];
            snprintf(msg, sizeof msg, "Bundle.entry[%zu]: %s", i, e->err_msg ? e->err_msg : "");
            snprintf(expr, sizeof expr, "Bundle.entry[%zu]", i);
            return rest_send_error(r, e->status, e->err_code, msg, expr);
        }
        if (e->has_op)
            c->ops[nops++] = e->op;
    }
    if (!nops)
        return respond(c);
    memset(&c->req, 0, sizeof c->req);
    c->req.ops = c->ops;
    c->req.nops = nops;
    return rest_submit(r, &c->req, tx_resume);
}

static int tx_resume(rest_req *r)
{
    bctx *c = r->hctx;
    int rc = r->store_rc;
    if (rc == ERR_CONFLICT || rc == ERR_NOTFOUND || rc == ERR_GONE || rc == ERR_INVALID) {
        int conditional = 0;
        for (size_t i = 0; i < c->n; i++)
            conditional |= c->e[i].has_if_match;
        if (conditional)
            return rest_send_error(r, 412, OO_CONFLICT,
                                   "version conflict: a resource of the transaction was changed "
                                   "concurrently",
                                   NULL);
        if (r->retries++ < REST_MAX_RETRIES) {
            for (size_t i = 0; i < c->n; i++)
                if (c->e[i].status < 400)
                    c->e[i].status = 0;
            return tx_submit(c);
        }
        return rest_send_error(r, 409, OO_CONFLICT,
                               "too many concurrent writes to resources of this transaction; retry",
                               NULL);
    }
    if (rc)
        return rest_send_errcode(r, rc, "the transaction could not be stored");
    /* the ops were copied into c->ops: take their outputs back */
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        bentry *e = &c->e[i];
        if (!e->has_op)
            continue;
        e->op = c->ops[k++];
        e->status = e->op.op == STORE_OP_DELETE ? 204
                    : e->op.op == STORE_OP_CREATE ? 201
                    : e->op.created             ? 201
                                                : 200;
    }
    return respond(c);
}

/* ---- batch ---------------------------------------------------------------- */

static int batch_resume(rest_req *r);

static void batch_done(void *ctx, int rc, uint64_t t)
{
    bentry *e = ctx;
    (void)t;
    e->rc = rc;
    if (__atomic_sub_fetch(&e->c->pending, 1, __ATOMIC_ACQ_REL) == 0)
        rest_resume(e->c->r);
}

/* Submit every prepared entry; the connection resumes when all completed. */
static int batch_submit(bctx *c)
{
    rest_req *r = c->r;
    size_t nops = 0;
    for (size_t i = 0; i < c->n; i++)
        nops += c->e[i].has_op && !c->e[i].status;
    if (!nops)
        return respond(c);
    if (!r->inflight) {
        if (!rest_writes_allowed(r))
            return rest_send_error(r, 503, OO_TRANSIENT, "the server is shutting down", NULL);
        r->inflight = 1;
    }
    r->resume = batch_resume;
    __atomic_store_n(&c->pending, 1, __ATOMIC_RELEASE); /* guard until all are queued */
    rest_suspend(r);
    for (size_t i = 0; i < c->n; i++) {
        bentry *e = &c->e[i];
        if (!e->has_op || e->status)
            continue;
        memset(&e->req, 0, sizeof e->req);
        e->req.ops = &e->op;
        e->req.nops = 1;
        e->rc = 0;
        __atomic_add_fetch(&c->pending, 1, __ATOMIC_ACQ_REL);
        int rc = store_submit(rest_store(r), &e->req, batch_done, e);
        if (rc) {
            e->rc = rc;
            __atomic_sub_fetch(&c->pending, 1, __ATOMIC_ACQ_REL);
        }
    }
    if (__atomic_sub_fetch(&c->pending, 1, __ATOMIC_ACQ_REL) == 0)
        rest_resume(r);
    return REST_SUSPENDED;
}

static int batch_resume(rest_req *r)
{
    bctx *c = r->hctx;
    int retry = 0;
    for (size_t i = 0; i < c->n; i++) {
        bentry *e = &c->e[i];
        if (!e->has_op || e->status)
            continue;
        int rc = e->rc;
        if (rc == 0) {
            e->status = e->op.op == STORE_OP_DELETE ? 204
                        : e->op.op == STORE_OP_CREATE ? 201
                        : e->op.created             ? 201
                                                    : 200;
        } else if ((rc == ERR_CONFLICT || rc == ERR_NOTFOUND || rc == ERR_GONE ||
                    rc == ERR_INVALID) &&
                   !e->has_if_match && r->retries < REST_MAX_RETRIES) {
            retry = 1; /* lost a race: prepare again below */
        } else if (rc == ERR_CONFLICT || rc == ERR_INVALID) {
            fail_entry(e, e->has_if_match ? 412 : 409, OO_CONFLICT,
                       "version conflict: %s/%s was changed concurrently", e->type->name, e->id);
        } else {
            fail_entry(e, 500, OO_EXCEPTION, "%s/%s could not be stored: %s", e->type->name,
                       e->id, err_str(rc));
        }
    }
    if (retry) {
        r->retries++;
        store_reader *rd;
        int rc = store_read_begin(rest_store(r), &rd);
        if (rc)
            return rest_send_errcode(r, rc, "cannot read the store");
        int64_t lu = ftime_now_us() / 1000 * 1000;
        for (size_t i = 0; i < c->n && !rc; i++) {
            bentry *e = &c->e[i];
            if (e->has_op && !e->status && e->rc)
                rc = prepare_entry(c, e, rd, lu);
        }
        store_read_end(rd);
        if (rc)
            return rest_send_errcode(r, rc, "cannot prepare the batch");
        /* entries that already succeeded keep their status and op */
        return batch_submit(c);
    }
    return respond(c);
}

/* ---- response budget -------------------------------------------------------- */

/* 1 (and a 413 sent) when the answer would exceed REST_MAX_RESPONSE: the GET
 * entries' stored bytes plus the request itself (the representations of the
 * writes are about the size of their input). Checked before anything is
 * written, so a refused batch or transaction changes nothing; respond() keeps
 * a second check for resources that grew in between. Without it, a few KB of
 * reads of one large resource build a response of gigabytes in memory. */
static int response_too_big(bctx *c)
{
    rest_req *r = c->r;
    store_reader *rd;
    if (store_read_begin(rest_store(r), &rd))
        return 0; /* respond() reports the store error */
    size_t total = r->body.len;
    for (size_t i = 0; i < c->n && total <= REST_MAX_RESPONSE; i++) {
        bentry *e = &c->e[i];
        if (e->status || e->m != BM_GET)
            continue;
        store_version v;
        int g = e->get_vid ? store_vread(rd, 0, e->type->name, e->id, e->get_vid, &v)
                           : store_read(rd, 0, e->type->name, e->id, &v);
        if (g == 0)
            total += v.len;
    }
    store_read_end(rd);
    if (total <= REST_MAX_RESPONSE)
        return 0;
    char msg[200];
    snprintf(msg, sizeof msg,
             "the response to this Bundle would exceed %u MiB (REST_MAX_RESPONSE): "
             "split the reads over several requests",
             (unsigned)(REST_MAX_RESPONSE >> 20));
    rest_send_error(r, 413, OO_TOO_COSTLY, msg, "Bundle.entry");
    return 1;
}

/* ---- entry point ---------------------------------------------------------- */

int rest_batch(rest_req *r)
{
    json_val *root;
    json_error je;
    memset(&je, 0, sizeof je);
    char msg[300];
    if (r->body.len == 0)
        return rest_send_error(r, 400, OO_INVALID, "the request has no body: send a Bundle",
                               NULL);
    int rc = json_parse(r->a, r->body.data, r->body.len, JSON_FHIR, &root, &je);
    if (rc == ERR_NOMEM)
        return rest_send_errcode(r, rc, "out of memory");
    if (rc) {
        snprintf(msg, sizeof msg, "invalid JSON at line %d, column %d: %s", je.line, je.col,
                 je.msg);
        return rest_send_error(r, 400, rc == ERR_TOOBIG ? OO_TOO_COSTLY : OO_STRUCTURE, msg,
                               NULL);
    }
    const char *rt = root->type == JSON_OBJECT ? json_get_str(root, "resourceType") : NULL;
    if (!rt || strcmp(rt, "Bundle"))
        return rest_send_error(r, 400, OO_INVALID,
                               "POST to the base needs a Bundle of type batch or transaction",
                               "resourceType");
    const char *type = json_get_str(root, "type");
    bctx *c = arena_zalloc(r->a, sizeof *c);
    if (!c)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    c->r = r;
    r->hctx = c;
    if (type && !strcmp(type, "transaction"))
        c->transaction = 1;
    else if (!type || strcmp(type, "batch"))
        return rest_send_error(r, 400, OO_INVALID,
                               "Bundle.type must be 'batch' or 'transaction'", "Bundle.type");
    if (c->transaction) {
        oo o;
        oo_init(&o, r->a);
        rc = val_resource(r->a, root, "Bundle", &o);
        if (rc == ERR_NOMEM)
            return rest_send_errcode(r, rc, "out of memory");
        if (rc)
            return rest_send_outcome(r, 400, &o);
    }
    if (parse_entries(c, root) || response_too_big(c))
        return REST_DONE;
    if (c->transaction) {
        for (size_t i = 0; i < c->n; i++)
            if (c->e[i].res)
                rewrite_refs(c, c->e[i].res, 0);
        c->ops = arena_zalloc(r->a, sizeof *c->ops * (c->n ? c->n : 1));
        if (!c->ops)
            return rest_send_errcode(r, ERR_NOMEM, "out of memory");
        return tx_submit(c);
    }
    rc = prepare_all(c);
    if (rc)
        return rest_send_errcode(r, rc, "cannot prepare the batch");
    return batch_submit(c);
}
