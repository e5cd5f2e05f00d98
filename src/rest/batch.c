/*
 * batch.c -- POST [base] with a Bundle of type "transaction" or "batch".
 *
 * Both are prepared the same way, in the HTTP thread: each entry's request
 * (method + url) is routed with the REST router, POST entries get new ids, and
 * every write entry is planned by the write pipeline (write.h) in one snapshot
 * of the request context, exactly as a single write would be. Then:
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
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/time.h"
#include "fhir/bundle.h"
#include "fhir/validate.h"
#include "fhirpath/invariants.h"
#include "index/reindex.h"
#include "rest/authz.h"
#include "rest/handlers.h"
#include "rest/params.h"
#include "rest/response.h"
#include "rest/write.h"
#include "store/store.h"

typedef enum { BM_GET = 0, BM_POST, BM_PUT, BM_DELETE } bmethod;

typedef struct bctx bctx;

typedef struct bentry {
    bctx *c;
    size_t idx;
    bmethod m;
    rest_write w;     /* POST, PUT, DELETE: the write, as the pipeline plans it */
    char newid[37];   /* POST: the id, fixed before planning (references name it) */
    const char *full; /* entry.fullUrl, or NULL */
    uint64_t get_vid; /* GET of a version; 0 = current */
    const char *get_if_none_match;     /* GET: request.ifNoneMatch */
    rest_route sub_route; /* GET of a search or a history: run as a request of its own */
    const char *sub_query; /* its query ("" when none); NULL: a read or vread */
    int64_t get_if_modified_since;     /* GET: request.ifModifiedSince, or INT64_MIN */
    /* outcome */
    unsigned status;     /* 0 while pending */
    oo_code err_code;    /* when status >= 400 */
    const char *err_msg; /* arena */
    int has_op;          /* planned with an op to commit */
    int sub_done;        /* a search or history entry, answered with its own response */
    int restricted;      /* a read the token may make only within a restriction */
} bentry;

struct bctx {
    rest_req *r;
    int transaction;
    size_t n;
    bentry *e;
    /* transaction: one commit of all ops */
    rest_commit unit;
    store_op *ops;
    store_extra *extras;
    /* batch: one commit unit per entry with an op, in entry order */
    rest_commit *units;
    size_t nunits;
    /* fullUrl -> "Type/id" (transaction reference rewriting) */
    const char **map_from, **map_to;
    size_t map_cap;
    /* transaction: every reference string of the entries' resources, with its text as
     * sent, rewritten anew at each plan (a condition's answer may change between
     * plans); and the conditions of the conditional references */
    json_val **refs;
    const char **ref_orig;
    uint32_t *ref_n;
    size_t nrefs, refs_cap;
    rest_write refw;
    rest_gone gone; /* transaction: what its DELETE entries delete */
    rest_gone made; /* transaction: what its POST and PUT entries write */
};

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

/* Record the refusal of an entry's plan (a precondition, a patch ...). */
static void fail_refused(bentry *e, const rest_refusal *why)
{
    const char *msg = why->msg ? why->msg : "refused";
    const oo_issue *is = why->outcome ? oo_get(why->outcome, 0) : NULL;
    if (is && is->diagnostics)
        fail_entry(e, why->status, is->code, "%s: %s%s%s", msg, is->diagnostics,
                   is->expression ? " at " : "", is->expression ? is->expression : "");
    else
        fail_entry(e, why->status, why->code, "%s", msg);
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

/* Every "reference" string of v, kept with its text as sent (transaction). */
static int collect_refs(bctx *c, json_val *v, int depth)
{
    if (depth > JSON_MAX_DEPTH + 2)
        return 0;
    if (v->type == JSON_ARRAY) {
        for (uint32_t i = 0; i < v->n; i++)
            if (collect_refs(c, &v->u.items[i], depth + 1))
                return ERR_NOMEM;
    } else if (v->type == JSON_OBJECT) {
        for (uint32_t i = 0; i < v->n; i++) {
            json_member *m = &v->u.members[i];
            /* a reference, or a uri/canonical that holds another entry's placeholder */
            if (m->val.type == JSON_STRING &&
                (!strcmp(m->key, "reference") || !strncmp(m->val.u.s, "urn:uuid:", 9) ||
                 !strncmp(m->val.u.s, "urn:oid:", 8))) {
                if (c->nrefs == c->refs_cap) {
                    size_t nc = c->refs_cap ? c->refs_cap * 2 : 64;
                    arena *a = c->r->a;
                    json_val **r = arena_realloc(a, c->refs, sizeof *r * c->refs_cap,
                                                 sizeof *r * nc);
                    const char **o = arena_realloc(a, c->ref_orig, sizeof *o * c->refs_cap,
                                                   sizeof *o * nc);
                    uint32_t *n = arena_realloc(a, c->ref_n, sizeof *n * c->refs_cap,
                                                sizeof *n * nc);
                    if (!r || !o || !n)
                        return ERR_NOMEM;
                    c->refs = r, c->ref_orig = o, c->ref_n = n, c->refs_cap = nc;
                }
                c->refs[c->nrefs] = &m->val;
                c->ref_orig[c->nrefs] = m->val.u.s;
                c->ref_n[c->nrefs++] = m->val.n;
            } else if (collect_refs(c, &m->val, depth + 1)) {
                return ERR_NOMEM;
            }
        }
    }
    return 0;
}

/* Each reference as sent, rewritten: another entry's fullUrl to its Type/id, a
 * conditional reference (Type?query) to the one resource it finds in rd. 0, 1 when
 * the transaction fails (a response was sent), or ERR_*. */
static int apply_refs(bctx *c, store_reader *rd)
{
    for (size_t i = 0; i < c->nrefs; i++) {
        json_val *v = c->refs[i];
        const char *orig = c->ref_orig[i];
        v->u.s = orig;
        v->n = c->ref_n[i];
        const char *to = map_get(c, orig, v->n);
        if (to && !*to)
            to = NULL; /* an entry that writes nothing (a delete) */
        if (!to && memchr(orig, '?', v->n) && strncmp(orig, "http", 4) &&
            strncmp(orig, "urn:", 4)) {
            char msg[400];
            /* the server searches on the token's behalf: only where it sees everything */
            const char *qm = memchr(orig, '?', v->n);
            char type[80];
            snprintf(type, sizeof type, "%.*s", (int)(qm - orig), orig);
            if (!rest_authz_may_probe(c->r, type, msg, sizeof msg)) {
                rest_snapshot_end(c->r);
                return rest_send_error(c->r, 403, OO_FORBIDDEN, msg, NULL), 1;
            }
            int rc = rest_resolve_reference(&c->r->ctx, rd, c->r->a, orig, &to, &c->refw, msg,
                                            sizeof msg);
            if (rc == REST_PLAN_REFUSED) {
                rest_snapshot_end(c->r);
                return rest_send_error(c->r, 412, OO_PROCESSING, msg, NULL), 1;
            }
            if (rc)
                return rc;
        }
        if (to) {
            v->u.s = to;
            v->n = (uint32_t)strlen(to);
        }
    }
    return 0;
}

/* ---- parsing the entries -------------------------------------------------- */

/* The token's rights for entry e, decided before anything runs, as for a request of
 * its own: a refusal fails the entry (and so a transaction). A read within a
 * restriction (patient/ or granular scopes) is checked when it is answered in a batch;
 * in a transaction it is refused, since its answer would only come after the commit. */
static void authz_entry(bctx *c, bentry *e)
{
    rest_req *r = c->r;
    if (!r->ctx.principal || e->status)
        return;
    rest_interaction ri;
    if (e->m != BM_GET)
        ri = e->m == BM_POST ? RI_CREATE : e->m == BM_PUT ? RI_UPDATE : RI_DELETE;
    else if (!e->sub_query)
        ri = e->get_vid ? RI_VREAD : RI_READ;
    else
        ri = e->sub_route.kind == RR_TYPE || e->sub_route.kind == RR_COMPARTMENT
                 ? RI_SEARCH_TYPE
             : e->sub_route.kind == RR_SYS_HISTORY  ? RI_HISTORY_SYSTEM
             : e->sub_route.kind == RR_TYPE_HISTORY ? RI_HISTORY_TYPE
                                                    : RI_HISTORY_INSTANCE;
    char m[400];
    int d = rest_authz_decide(r, ri, e->w.type ? e->w.type->name : NULL, e->w.cond != NULL,
                              m, sizeof m);
    if (d == REST_AUTHZ_SOME && ri == RI_READ) {
        if (c->transaction) {
            snprintf(m, sizeof m, "a read of %s under patient/ or granular scopes inside a "
                     "transaction is not supported with authorisation yet (send it in a "
                     "batch, or on its own)", e->w.type->name);
            d = REST_AUTHZ_NOT_YET;
        } else {
            e->restricted = 1;
        }
    }
    if (d == REST_AUTHZ_FORBIDDEN || d == REST_AUTHZ_NOT_YET)
        fail_entry(e, 403, d == REST_AUTHZ_FORBIDDEN ? OO_FORBIDDEN : OO_NOT_SUPPORTED, "%s", m);
}


/* A GET entry's url (relative, its base already taken off): a read or vread as before,
 * or a search (Type?..., CompType/id/Type?...) or a history, run after the writes as a
 * request of its own. Fails the entry when it is none of these. */
static int route_get(bctx *c, bentry *e, const char *url, const char *qm)
{
    rest_req *r = c->r;
    buf p = BUF_INIT;
    buf_printf(&p, "%s/%.*s", REST_BASE_PATH, (int)(qm ? (size_t)(qm - url) : strlen(url)), url);
    rest_route rt;
    int rc = p.err ? p.err : rest_route_parse(r->a, buf_cstr(&p), &rt);
    buf_free(&p);
    if (rc)
        return fail_entry(e, 500, OO_EXCEPTION, "out of memory");
    if (rt.tenant) /* an entry stays in the tenant its Bundle was sent to */
        return fail_entry(e, 404, OO_NOT_SUPPORTED, "request.url '%.100s' does not begin with "
                          "a resource type (an entry cannot name another tenant)", url);
    if (rt.kind == RR_UNKNOWN_TYPE || rt.kind == RR_SMART_CONFIG) /* not a type */
        return fail_entry(e, 404, OO_NOT_SUPPORTED, "unknown resource type '%.80s'",
                          rt.type_name);
    if ((rt.kind == RR_INSTANCE || rt.kind == RR_VERSION) && !qm) {
        if (!rest_id_valid(rt.id, rt.id_len))
            return fail_entry(e, 400, OO_INVALID, "invalid id '%.80s' in request.url", rt.id);
        if (rt.kind == RR_VERSION && rest_vid_parse(rt.vid, rt.vid_len, &e->get_vid))
            return fail_entry(e, 400, OO_INVALID, "invalid versionId '%.40s' in request.url",
                              rt.vid);
        e->w.type = rt.type;
        e->w.id = rt.id;
        return 0;
    }
    if (rt.kind != RR_TYPE && rt.kind != RR_COMPARTMENT && rt.kind != RR_SYS_HISTORY &&
        rt.kind != RR_TYPE_HISTORY && rt.kind != RR_INST_HISTORY)
        return fail_entry(e, 400, OO_NOT_SUPPORTED,
                          "GET entries are reads, vreads, searches and histories ('%.100s')",
                          url);
    e->sub_route = rt;
    e->sub_query = qm ? qm + 1 : "";
    e->w.type = rt.type;
    return 0;
}

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
    const char *qm = strchr(url, '?');
    if (e->m == BM_GET)
        return route_get(c, e, url, qm);
    if (qm && e->m == BM_POST)
        return fail_entry(e, 400, OO_NOT_SUPPORTED,
                          "a POST entry's request.url is 'Type' ('%.100s'): a conditional "
                          "create names its search in request.ifNoneExist",
                          url);
    if (qm) { /* a conditional update or delete of a batch: Type?query */
        if (!qm[1])
            return fail_entry(e, 400, OO_INVALID,
                              "request.url '%.100s' has no search after the '?'", url);
        e->w.cond = qm + 1;
        e->w.asked = e->m == BM_PUT ? RW_UPDATE : RW_DELETE;
    }
    buf p = BUF_INIT;
    if (qm)
        buf_printf(&p, "%s/%.*s", REST_BASE_PATH, (int)(qm - url), url);
    else
        buf_printf(&p, "%s/%s", REST_BASE_PATH, url);
    rest_route rt;
    int rc = p.err ? p.err : rest_route_parse(r->a, buf_cstr(&p), &rt);
    buf_free(&p);
    if (rc)
        return fail_entry(e, 500, OO_EXCEPTION, "out of memory");
    if (rt.tenant) /* an entry stays in the tenant its Bundle was sent to */
        return fail_entry(e, 404, OO_NOT_SUPPORTED, "request.url '%.100s' does not begin with "
                          "a resource type (an entry cannot name another tenant)", url);
    if (rt.kind == RR_UNKNOWN_TYPE || rt.kind == RR_SMART_CONFIG) /* not a type */
        return fail_entry(e, 404, OO_NOT_SUPPORTED, "unknown resource type '%.80s'",
                          rt.type_name);
    int want_id = (e->m == BM_PUT || e->m == BM_DELETE) && !qm;
    if (qm && rt.kind != RR_TYPE)
        return fail_entry(e, 400, OO_INVALID, "a conditional %s entry needs request.url "
                                              "'Type?parameter=value'",
                          e->m == BM_PUT ? "PUT" : "DELETE");
    if (e->m == BM_POST && rt.kind != RR_TYPE)
        return fail_entry(e, 400, OO_INVALID, "a POST entry needs request.url 'Type'");
    if (want_id && rt.kind != RR_INSTANCE)
        return fail_entry(e, 400, OO_INVALID, "a %s entry needs request.url 'Type/id'",
                          e->m == BM_PUT ? "PUT" : "DELETE");
    e->w.type = rt.type;
    if (rt.kind == RR_INSTANCE || rt.kind == RR_VERSION) {
        if (!rest_id_valid(rt.id, rt.id_len))
            return fail_entry(e, 400, OO_INVALID, "invalid id '%.80s' in request.url", rt.id);
        e->w.id = rt.id;
    }
    if (rt.kind == RR_VERSION && rest_vid_parse(rt.vid, rt.vid_len, &e->get_vid))
        return fail_entry(e, 400, OO_INVALID, "invalid versionId '%.40s' in request.url",
                          rt.vid);
    return 0;
}

/* The entry's request.ifMatch / ifNoneMatch / ifModifiedSince: parsed by the
 * same functions as the headers of a single request, never ignored. */
static void parse_entry_preconditions(bentry *e, json_val *req)
{
    const char *im = req ? json_get_str(req, "ifMatch") : NULL;
    const char *inm = req ? json_get_str(req, "ifNoneMatch") : NULL;
    const char *ims = req ? json_get_str(req, "ifModifiedSince") : NULL;
    e->get_if_modified_since = INT64_MIN;
    if (e->m == BM_GET) {
        if (im)
            fail_entry(e, 400, OO_INVALID, "ifMatch has no meaning on a GET entry");
        else if (inm)
            e->get_if_none_match = inm;
        if (!e->status && ims) {
            int64_t us;
            if (rest_time_param(ims, &us) == 0)
                e->get_if_modified_since = us;
            else
                fail_entry(e, 400, OO_INVALID,
                           "malformed ifModifiedSince '%.40s': an instant is expected", ims);
        }
        return;
    }
    if (ims) {
        fail_entry(e, 400, OO_INVALID, "ifModifiedSince has a meaning on GET entries only");
        return;
    }
    if (e->m == BM_POST && (im || inm)) {
        fail_entry(e, 400, OO_INVALID,
                   "ifMatch and ifNoneMatch have no meaning on a create: the server chooses "
                   "the id");
        return;
    }
    const char *bad;
    if (rest_precond_parse(im, inm, &e->w.pre, &bad))
        fail_entry(e, 400, OO_INVALID, "%s (request.%s)", bad,
                   strstr(bad, "If-Match") ? "ifMatch" : "ifNoneMatch");
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
        json_val *req = ent->type == JSON_OBJECT ? json_get(ent, "request") : NULL;
        const char *method = req ? json_get_str(req, "method") : NULL;
        const char *url = req ? json_get_str(req, "url") : NULL;
        if (ent->type != JSON_OBJECT) {
            fail_entry(e, 400, OO_STRUCTURE, "entry %zu is not an object", i);
        } else if (!method || !url) {
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
        const char *ine = req ? json_get_str(req, "ifNoneExist") : NULL;
        if (!e->status && req && json_get(req, "ifNoneExist") && !ine)
            fail_entry(e, 400, OO_INVALID, "request.ifNoneExist is a string (a search)");
        else if (!e->status && ine && e->m != BM_POST)
            fail_entry(e, 400, OO_INVALID, "request.ifNoneExist belongs to a POST entry");
        else if (!e->status && ine) {
            const char *q = strchr(ine, '?');
            e->w.cond = q ? q + 1 : ine;
            e->w.asked = RW_CREATE;
        }
        if (!e->status)
            parse_entry_preconditions(e, req);
        if (!e->status && e->sub_query &&
            (e->get_if_none_match || e->get_if_modified_since != INT64_MIN))
            fail_entry(e, 400, OO_NOT_SUPPORTED,
                       "ifNoneMatch and ifModifiedSince apply to reads, not to a %s entry",
                       e->sub_route.kind == RR_TYPE || e->sub_route.kind == RR_COMPARTMENT
                           ? "search"
                           : "history");
        authz_entry(c, e);
        e->w.kind = e->m == BM_POST ? RW_CREATE : e->m == BM_PUT ? RW_UPDATE : RW_DELETE;
        e->w.op_index = (uint16_t)i; /* < REST_MAX_BUNDLE_ENTRIES: unique in its request */
        if (!e->status && (e->m == BM_POST || e->m == BM_PUT)) {
            e->w.res = json_get(ent, "resource");
            const char *rt = e->w.res ? json_get_str(e->w.res, "resourceType") : NULL;
            if (!rt) {
                fail_entry(e, 400, OO_REQUIRED, "entry %zu has no resource", i);
            } else if (strcmp(rt, e->w.type->name)) {
                fail_entry(e, 400, OO_INVALID,
                           "resourceType '%.64s' does not match request.url type '%s'", rt,
                           e->w.type->name);
            } else if (e->m == BM_PUT && !e->w.cond) {
                const json_val *idv = json_get(e->w.res, "id");
                if (!idv || idv->type != JSON_STRING || strcmp(idv->u.s, e->w.id))
                    fail_entry(e, 400, OO_INVALID,
                               "the resource id must equal the id '%s' of request.url", e->w.id);
            }
            if (!e->status) {
                /* each resource is validated alone (a transaction's structure was checked
                 * with the Bundle; its invariants are checked here) */
                oo o;
                oo_init(&o, r->a);
                rest_validation lv = rest_validation_of(&r->ctx);
                int vrc = !c->transaction ? rest_validate(r->a, e->w.res, e->w.type->name, lv, &o)
                          : lv == REST_VALIDATE_FULL
                              ? fp_invariants(e->w.res, e->w.type->name, &o)
                              : 0;
                if (vrc) {
                    const oo_issue *is = rest_first_error(&o);
                    fail_entry(e, 400, is ? is->code : OO_INVALID, "%s%s%s",
                               is && is->diagnostics ? is->diagnostics : "invalid resource",
                               is && is->expression ? " at " : "",
                               is && is->expression ? is->expression : "");
                }
            }
        }
        if (!e->status && (e->m == BM_POST || (e->m == BM_PUT && e->w.cond))) {
            rest_new_id(e->newid); /* a create's id, also when a condition creates */
            if (e->w.cond)
                e->w.create_id = e->newid;
            else
                e->w.id = e->newid;
        }
        e->full = e->status ? NULL : json_get_str(ent, "fullUrl");
        if (e->full && map_get(c, e->full, strlen(e->full))) {
            fail_entry(e, 400, OO_INVALID, "entry %zu has the fullUrl '%.100s' of an earlier entry",
                       i, e->full);
            e->full = NULL;
        }
        if (e->full) {
            /* a conditional entry's stands for what its condition finds: "" until then */
            const char *to = "";
            if ((e->m == BM_POST || e->m == BM_PUT) && e->w.id) {
                buf t = BUF_INIT;
                buf_printf(&t, "%s/%s", e->w.type->name, e->w.id);
                to = t.err ? NULL : arena_strndup(r->a, t.data, t.len);
                buf_free(&t);
            }
            if (to)
                map_put(c, e->full, to);
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
        if (a->status || a->m == BM_GET || a->m == BM_POST || !a->w.id)
            continue;
        for (size_t j = i + 1; j < c->n; j++) {
            bentry *b = &c->e[j];
            if (!b->status && (b->m == BM_PUT || b->m == BM_DELETE) && b->w.id &&
                b->w.type == a->w.type && !strcmp(a->w.id, b->w.id)) {
                char msg[200];
                snprintf(msg, sizeof msg, "%s/%s is written by entries %zu and %zu",
                         a->w.type->name, a->w.id, i, j);
                if (c->transaction)
                    return rest_send_error(r, 400, OO_INVALID, msg, "Bundle.entry"), 1;
                fail_entry(b, 400, OO_INVALID, "%s", msg);
            }
        }
    }
    return 0;
}

/* ---- preparing the writes ------------------------------------------------- */

/* Plan e's write with the write pipeline under the snapshot rd. A refusal is
 * recorded in e; a negative ERR_* is a failure of the server. */
static int prepare_entry(bctx *c, bentry *e, store_reader *rd, int64_t lu)
{
    rest_req *r = c->r;
    e->has_op = 0;
    if (e->status || e->m == BM_GET)
        return 0;
    int rc = rest_write_plan(&r->ctx, rd, r->a, lu, &e->w);
    if (rc == REST_PLAN_REFUSED) {
        fail_refused(e, &e->w.why);
        return 0;
    }
    if (rc < 0)
        return rc;
    if (e->w.noop) {
        /* a conditional create that found its resource: 200, naming it; else nothing
         * to delete: idempotent, no write */
        e->status = e->w.existing ? 200 : 204;
        if (e->w.existing)
            e->w.id = e->w.existing;
        return 0;
    }
    e->has_op = 1;
    return 0;
}

static int prepare_all(bctx *c)
{
    store_reader *rd;
    int rc = rest_snapshot(c->r, &rd);
    if (rc)
        return rc;
    int64_t lu = ftime_now_us() / 1000 * 1000;
    for (size_t i = 0; i < c->n && !rc; i++)
        rc = prepare_entry(c, &c->e[i], rd, lu);
    rest_snapshot_end(c->r);
    return rc;
}

/* ---- the response Bundle -------------------------------------------------- */

static void write_outcome(jw *w, bentry *e)
{
    jw_key(w, "outcome");
    oo_write_one(w, OO_ERROR, e->err_code, e->err_msg ? e->err_msg : "failed", NULL);
}

static void write_version_response(jw *w, const char *base, bentry *e, uint64_t vid,
                                   int64_t lu, int location)
{
    char tmp[64];
    jw_key(w, "response");
    jw_obj(w);
    jw_key(w, "status");
    jw_str(w, bundle_status_text(e->status));
    if (location) {
        buf l = BUF_INIT;
        buf_printf(&l, "%s/%s/%s/_history/%llu", base, e->w.type->name, e->w.id,
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
    if (e->w.notes && oo_count(e->w.notes)) {
        /* what the write was accepted with (a profile not known to this server ...) */
        jw_key(w, "outcome");
        oo_write(e->w.notes, w);
    }
    jw_end(w);
}

static void open_entry(jw *w, const char *base, const bentry *e)
{
    buf f = BUF_INIT;
    buf_printf(&f, "%s/%s/%s", base, e->w.type->name, e->w.id);
    bundle_entry_begin(w, buf_cstr(&f));
    buf_free(&f);
}

/* A GET entry: read (or vread) under the response's snapshot; 304 when its
 * ifNoneMatch / ifModifiedSince say the client's copy is current. */
static void respond_get(bctx *c, bentry *e, store_reader *rd, jw *w, const buf *b)
{
    rest_req *r = c->r;
    const char *type = e->w.type->name, *id = e->w.id;
    store_version v;
    /* a read within a restriction: outside it is 403 whether it exists or not */
    int in = e->restricted || r->ctx.principal ? rest_authz_visible(r, rd, type, id, 0) : 1;
    int g = in <= 0 ? 0
            : e->get_vid ? store_vread(rd, r->ctx.tenant, type, id, e->get_vid, &v)
                         : store_read(rd, r->ctx.tenant, type, id, &v);
    if (in < 0) {
        fail_entry(e, 500, OO_EXCEPTION, "cannot read the store");
    } else if (!in) {
        fail_entry(e, 403, OO_FORBIDDEN, "%s/%.64s is not within the token's rights", type, id);
    } else if (g == ERR_GONE) {
        fail_entry(e, 410, OO_DELETED, "%s/%s is deleted", type, id);
    } else if (g == ERR_NOTFOUND) {
        fail_entry(e, 404, OO_NOT_FOUND, "%s/%s%s is not known", type, id,
                   e->get_vid ? " (that version)" : "");
    } else if (g) {
        fail_entry(e, 500, OO_EXCEPTION, "cannot read %s/%s", type, id);
    } else if (b->len + v.len > REST_MAX_RESPONSE) {
        fail_entry(e, 413, OO_TOO_COSTLY,
                   "%s/%s does not fit in the response (REST_MAX_RESPONSE): read it on its own",
                   type, id);
    } else {
        int not_modified =
            e->get_if_none_match
                ? rest_etag_list_hits(e->get_if_none_match, v.vid)
                : e->get_if_modified_since != INT64_MIN &&
                      v.last_updated / 1000000 <= e->get_if_modified_since / 1000000;
        e->status = not_modified ? 304 : 200;
        open_entry(w, rest_base_url(r), e);
        if (!not_modified) {
            jw_key(w, "resource");
            rest_write_resource(r, w, v.bytes, v.len);
        }
        write_version_response(w, rest_base_url(r), e, v.vid, v.last_updated, 0);
        return;
    }
    bundle_entry_begin(w, NULL);
}

/* A search or history entry: run as a request of its own (after the writes, so it sees
 * them), its answer -- a Bundle, or an OperationOutcome -- the entry's resource or
 * outcome. */
static void respond_sub(bctx *c, bentry *e, jw *w, const buf *b)
{
    rest_req *r = c->r;
    rest_req *s = arena_zalloc(r->a, sizeof *s);
    buf out = BUF_INIT;
    if (!s) {
        fail_entry(e, 500, OO_EXCEPTION, "out of memory");
        bundle_entry_begin(w, NULL);
        return;
    }
    s->site = r->site;
    s->a = r->a;
    s->method = RM_GET;
    s->route = e->sub_route;
    s->ctx = r->ctx;
    s->ctx.snap = NULL;
    s->ctx.consents = NULL; /* its own, with its own snapshot */
    s->ctx.consents_release = NULL;
    s->t_start_ns = rest_now_ns();
    s->parent = r;
    s->sub_query = e->sub_query;
    s->sub_body = &out;
    int search = e->sub_route.kind == RR_TYPE || e->sub_route.kind == RR_COMPARTMENT;
    s->ri = search ? RI_SEARCH_TYPE
            : e->sub_route.kind == RR_SYS_HISTORY  ? RI_HISTORY_SYSTEM
            : e->sub_route.kind == RR_TYPE_HISTORY ? RI_HISTORY_TYPE
                                                   : RI_HISTORY_INSTANCE;
    if (search)
        rest_search(s);
    else
        rest_history(s);
    rest_snapshot_end(s);
    if (out.err || !s->sub_status) {
        fail_entry(e, 500, OO_EXCEPTION, "the %s could not be answered",
                   search ? "search" : "history");
        buf_free(&out);
        bundle_entry_begin(w, NULL);
        return;
    }
    if (b->len + out.len > REST_MAX_RESPONSE) {
        fail_entry(e, 413, OO_TOO_COSTLY,
                   "the answer does not fit in the response (REST_MAX_RESPONSE): ask it on its "
                   "own, or with a smaller _count");
        buf_free(&out);
        bundle_entry_begin(w, NULL);
        return;
    }
    e->status = s->sub_status;
    bundle_entry_begin(w, NULL);
    if (e->status < 400 && out.len) {
        jw_key(w, "resource");
        rest_write_resource(r, w, out.data, out.len);
    }
    jw_key(w, "response");
    jw_obj(w);
    jw_key(w, "status");
    jw_str(w, bundle_status_text(e->status));
    if (e->status >= 400 && out.len) {
        jw_key(w, "outcome");
        rest_write_resource(r, w, out.data, out.len);
    }
    jw_end(w);
    buf_free(&out);
    e->sub_done = 1;
}

static int respond(bctx *c)
{
    rest_req *r = c->r;
    const char *base = rest_base_url(r);
    rest_prefer pref = rest_prefer_return(rest_header(r, "Prefer"));
    store_reader *rd = NULL;
    int rc = rest_snapshot(r, &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the store");
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, r->pretty);
    bundle_begin(&w, c->transaction ? "transaction-response" : "batch-response");
    bundle_entries_begin(&w);
    for (size_t i = 0; i < c->n; i++) {
        bentry *e = &c->e[i];
        const store_op *op = &e->w.op;
        if (!e->status && e->m == BM_GET && e->sub_query) {
            respond_sub(c, e, &w, &b);
        } else if (!e->status && e->m == BM_GET) {
            respond_get(c, e, rd, &w, &b);
        } else if (e->status < 400 && e->has_op) {
            open_entry(&w, base, e);
            if (op->op != STORE_OP_DELETE && pref == REST_RETURN_REPRESENTATION) {
                jw_key(&w, "resource");
                rest_write_resource(r, &w, op->bytes, op->len);
            }
            write_version_response(&w, base, e, op->vid, op->last_updated,
                                   op->op != STORE_OP_DELETE);
        } else if (e->status < 400 && e->w.existing) {
            /* ifNoneExist found it: that resource, nothing written */
            open_entry(&w, base, e);
            store_version v;
            if (pref == REST_RETURN_REPRESENTATION &&
                !store_vread(rd, r->ctx.tenant, e->w.type->name, e->w.existing, e->w.cur_vid,
                             &v)) {
                jw_key(&w, "resource");
                rest_write_resource(r, &w, v.bytes, v.len);
            }
            write_version_response(&w, base, e, e->w.cur_vid, e->w.cur_lu, 1);
        } else {
            bundle_entry_begin(&w, NULL);
            if (e->status < 400)
                write_version_response(&w, base, e, 0, 0, 0); /* 204 without a write */
        }
        if (e->status >= 400 && !e->sub_done) {
            jw_key(&w, "response");
            jw_obj(&w);
            jw_key(&w, "status");
            jw_str(&w, bundle_status_text(e->status));
            write_outcome(&w, e);
            jw_end(&w);
        }
        bundle_entry_end(&w);
    }
    bundle_entries_end(&w);
    bundle_end(&w);
    return rest_send_buf(r, 200, &b);
}

/* The status of a committed entry. */
static unsigned committed_status(const store_op *op)
{
    return op->op == STORE_OP_DELETE  ? 204
           : op->op == STORE_OP_CREATE ? 201
           : op->created               ? 201
                                       : 200;
}

/* ---- transaction ---------------------------------------------------------- */

static int tx_resume(rest_req *r);

/* 1 when entry e writes the resource id of its type (a conditional delete: any it found). */
static int writes(const bentry *e, const char *id)
{
    if (e->w.id && !strcmp(e->w.id, id))
        return 1;
    for (size_t k = 0; k < e->w.nmore; k++)
        if (!strcmp(e->w.more[k], id))
            return 1;
    return 0;
}

/* What a transaction's conditional entry finds: its id, which its fullUrl stands for.
 * 0 (a refusal is recorded in e) or ERR_*. */
static int resolve_entry(bctx *c, bentry *e, store_reader *rd)
{
    rest_req *r = c->r;
    int rc = rest_write_resolve(&r->ctx, rd, r->a, &e->w);
    if (rc == REST_PLAN_REFUSED) {
        fail_refused(e, &e->w.why);
        return 0;
    }
    const char *id = e->w.existing ? e->w.existing : e->w.id;
    if (!rc && e->full && id) {
        buf t = BUF_INIT;
        buf_printf(&t, "%s/%s", e->w.type->name, id);
        const char *to = t.err ? NULL : arena_strndup(r->a, t.data, t.len);
        buf_free(&t);
        if (!to)
            return ERR_NOMEM;
        map_put(c, e->full, to);
    }
    return rc;
}

static int set_add(bctx *c, rest_gone *g, const fhir_type *type, const char *id)
{
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 16;
        const fhir_type **t = arena_realloc(c->r->a, g->type, sizeof *t * g->cap, sizeof *t * nc);
        const char **i = arena_realloc(c->r->a, g->id, sizeof *i * g->cap, sizeof *i * nc);
        if (!t || !i)
            return ERR_NOMEM;
        g->type = t, g->id = i, g->cap = nc;
    }
    g->type[g->n] = type;
    g->id[g->n++] = id;
    return 0;
}

/* A transaction's plan, in one snapshot: the conditional entries first (what each
 * finds decides its id, which the fullUrl map gets), then the references, then every
 * entry. 0, 1 when a response was sent, or ERR_*. */
static int tx_prepare(bctx *c)
{
    rest_req *r = c->r;
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc)
        return rc;
    c->refw.ncond = 0;
    c->gone.n = 0;
    c->refw.gone = &c->gone;
    /* the DELETE entries first (the order of the specification: DELETE, POST, PUT/PATCH,
     * GET): what they delete, the other entries' conditions and references do not find */
    for (int pass = 0; pass < 2 && !rc; pass++)
        for (size_t i = 0; i < c->n && !rc; i++) {
            bentry *e = &c->e[i];
            if (e->status >= 400 || e->m == BM_GET || (e->m == BM_DELETE) != !pass)
                continue;
            e->w.gone = pass ? &c->gone : NULL;
            if (e->w.cond && (rc = resolve_entry(c, e, rd)))
                break;
            if (!pass && e->status < 400 && e->w.id && !e->w.noop)
                for (size_t k = 0; k <= e->w.nmore && !rc; k++)
                    rc = set_add(c, &c->gone, e->w.type, k ? e->w.more[k - 1] : e->w.id);
        }
    /* two entries that came to write one resource (a conditional delete: any it found) */
    for (size_t i = 0; i < c->n && !rc; i++) {
        bentry *a = &c->e[i];
        if (a->status >= 400 || !a->w.cond || !a->w.id || a->w.existing)
            continue;
        for (size_t k = 0; k <= a->w.nmore; k++) {
            const char *aid = k ? a->w.more[k - 1] : a->w.id;
            for (size_t j = 0; j < c->n; j++) {
                bentry *b = &c->e[j];
                if (j != i && b->status < 400 && b->m != BM_GET && !b->w.existing &&
                    b->w.type == a->w.type && writes(b, aid)) {
                    char msg[200];
                    snprintf(msg, sizeof msg, "%s/%s is written by entries %zu and %zu",
                             a->w.type->name, aid, i < j ? i : j, i < j ? j : i);
                    rest_snapshot_end(r);
                    return rest_send_error(r, 400, OO_INVALID, msg, "Bundle.entry"), 1;
                }
            }
        }
    }
    /* what the POST and PUT entries write: the references of the others may name it */
    c->made.n = 0;
    for (size_t i = 0; i < c->n && !rc; i++) {
        bentry *e = &c->e[i];
        e->w.made = &c->made;
        e->w.deleted = &c->gone;
        if (e->status < 400 && (e->m == BM_POST || e->m == BM_PUT) && e->w.id &&
            !e->w.existing)
            rc = set_add(c, &c->made, e->w.type, e->w.id);
    }
    if (!rc && (rc = apply_refs(c, rd)) == 1)
        return 1;
    int64_t lu = ftime_now_us() / 1000 * 1000;
    for (size_t i = 0; i < c->n && !rc; i++)
        rc = prepare_entry(c, &c->e[i], rd, lu);
    rest_snapshot_end(r);
    return rc;
}

/* Plan every entry, then commit all ops as one store request (one t). */
static int tx_submit(bctx *c)
{
    rest_req *r = c->r;
    int rc = tx_prepare(c);
    if (rc == 1)
        return REST_DONE;
    if (rc)
        return rest_send_errcode(r, rc, "cannot prepare the transaction");
    size_t nops = 0, nextra = 0, ncond = c->refw.ncond;
    for (size_t i = 0; i < c->n; i++) {
        bentry *e = &c->e[i];
        if (e->status >= 400) {
            char msg[400], expr[40];
            snprintf(msg, sizeof msg, "Bundle.entry[%zu]: %s", i, e->err_msg ? e->err_msg : "");
            snprintf(expr, sizeof expr, "Bundle.entry[%zu]", i);
            return rest_send_error(r, e->status, e->err_code, msg, expr);
        }
        if (e->has_op) {
            nops += e->w.nops;
            nextra += e->w.nextra;
            ncond += e->w.ncond;
        }
    }
    if (!nops)
        return respond(c);
    c->ops = arena_alloc(r->a, sizeof *c->ops * nops);
    if (!c->ops)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    nops = 0;
    for (size_t i = 0; i < c->n; i++)
        for (size_t k = 0; c->e[i].has_op && k < c->e[i].w.nops; k++)
            c->ops[nops++] = c->e[i].w.ops[k];
    c->extras = nextra ? arena_alloc(r->a, sizeof *c->extras * nextra) : NULL;
    if (nextra && !c->extras)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    nextra = 0;
    for (size_t i = 0; i < c->n; i++)
        for (size_t k = 0; c->e[i].has_op && k < c->e[i].w.nextra; k++)
            c->extras[nextra++] = c->e[i].w.extras[k];
    rest_extras_sort(c->extras, nextra);
    store_cond *conds = ncond ? arena_alloc(r->a, sizeof *conds * ncond) : NULL;
    if (ncond && !conds)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    ncond = 0;
    for (size_t k = 0; k < c->refw.ncond; k++)
        conds[ncond++] = c->refw.conds[k];
    for (size_t i = 0; i < c->n; i++)
        for (size_t k = 0; c->e[i].has_op && k < c->e[i].w.ncond; k++)
            conds[ncond++] = c->e[i].w.conds[k];
    memset(&c->unit, 0, sizeof c->unit);
    c->unit.req.ops = c->ops;
    c->unit.req.nops = nops;
    c->unit.req.extras = c->extras;
    c->unit.req.nextra = nextra;
    c->unit.req.conds = conds;
    c->unit.req.ncond = ncond;
    return rest_commit_submit(r, &c->unit, 1, tx_resume);
}

static int tx_resume(rest_req *r)
{
    bctx *c = r->hctx;
    switch (rest_commit_classify(c->unit.rc, c->unit.sync)) {
    case REST_LOST_RACE: {
        /* planned again: an ifMatch that no longer holds fails the plan with 412 */
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
    case REST_FAILED:
        return rest_send_errcode(r, c->unit.rc, "the transaction could not be stored");
    case REST_COMMITTED:
    default:
        break;
    }
    /* the ops were copied into c->ops: take their outputs back */
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        bentry *e = &c->e[i];
        if (!e->has_op)
            continue;
        e->w.op = c->ops[k];
        k += e->w.nops;
        e->status = committed_status(&e->w.op);
        if (r->ctx.svc && !strcmp(e->w.type->name, "SearchParameter"))
            idx_reindex_kick(r->ctx.svc->reindex, r->ctx.tenant, rest_base_url(r));
    }
    return respond(c);
}

/* ---- batch ---------------------------------------------------------------- */

static int batch_resume(rest_req *r);

/* Commit every planned entry as a request of its own, all at once; the
 * connection resumes when the last one completed. */
static int batch_submit(bctx *c)
{
    rest_req *r = c->r;
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->e[i].has_op && !c->e[i].status;
    if (!n)
        return respond(c);
    rest_commit *units = arena_zalloc(r->a, sizeof *units * n);
    if (!units)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        bentry *e = &c->e[i];
        if (!e->has_op || e->status)
            continue;
        units[k].req.ops = e->w.ops;
        units[k].req.nops = e->w.nops;
        units[k].req.extras = e->w.extras;
        units[k].req.nextra = e->w.nextra;
        units[k].req.conds = e->w.conds;
        units[k].req.ncond = e->w.ncond;
        k++;
    }
    c->units = units;
    c->nunits = n;
    return rest_commit_submit(r, units, n, batch_resume);
}

static int batch_resume(rest_req *r)
{
    bctx *c = r->hctx;
    int retry = 0;
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        bentry *e = &c->e[i];
        if (!e->has_op || e->status)
            continue;
        assert(k < c->nunits && c->units[k].req.ops == e->w.ops);
        const rest_commit *u = &c->units[k++];
        switch (rest_commit_classify(u->rc, u->sync)) {
        case REST_COMMITTED:
            e->status = committed_status(&e->w.op);
            if (r->ctx.svc && !strcmp(e->w.type->name, "SearchParameter"))
                idx_reindex_kick(r->ctx.svc->reindex, r->ctx.tenant, rest_base_url(r));
            break;
        case REST_LOST_RACE:
            if (r->retries < REST_MAX_RETRIES)
                retry = 1; /* planned again below */
            else
                fail_entry(e, 409, OO_CONFLICT,
                           "too many concurrent writes to %s/%s; retry", e->w.type->name,
                           e->w.id);
            break;
        case REST_FAILED:
        default:
            fail_entry(e, 500, OO_EXCEPTION, "%s/%s could not be stored: %s", e->w.type->name,
                       e->w.id, err_str(u->rc));
            break;
        }
    }
    if (retry) {
        r->retries++;
        store_reader *rd;
        int rc = rest_snapshot(r, &rd);
        if (rc)
            return rest_send_errcode(r, rc, "cannot read the store");
        int64_t lu = ftime_now_us() / 1000 * 1000;
        for (size_t i = 0; i < c->n && !rc; i++) {
            bentry *e = &c->e[i];
            if (e->has_op && !e->status)
                rc = prepare_entry(c, e, rd, lu);
        }
        rest_snapshot_end(r);
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
    if (rest_snapshot(r, &rd))
        return 0; /* respond() reports the store error */
    size_t total = r->body.len;
    for (size_t i = 0; i < c->n && total <= REST_MAX_RESPONSE; i++) {
        bentry *e = &c->e[i];
        if (e->status || e->m != BM_GET || e->sub_query)
            continue; /* a search or history answer is budgeted when it is built */
        store_version v;
        int g = e->get_vid
                    ? store_vread(rd, r->ctx.tenant, e->w.type->name, e->w.id, e->get_vid, &v)
                    : store_read(rd, r->ctx.tenant, e->w.type->name, e->w.id, &v);
        if (g == 0)
            total += v.len;
    }
    rest_snapshot_end(r);
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
    if (r->body.len == 0)
        return rest_send_error(r, 400, OO_INVALID, "the request has no body: send a Bundle",
                               NULL);
    int rc = json_parse(r->a, r->body.data, r->body.len, JSON_FHIR, &root, &je);
    if (rc)
        return rest_send_json_error(r, rc, &je);
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
    r->audit_sub = c->transaction ? "transaction" : "batch"; /* its AuditEvent's subtype */
    if (c->transaction && rest_validation_of(&r->ctx) != REST_VALIDATE_OFF) {
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
            if (c->e[i].w.res && collect_refs(c, c->e[i].w.res, 0))
                return rest_send_errcode(r, ERR_NOMEM, "out of memory");
        return tx_submit(c);
    }
    rc = prepare_all(c);
    if (rc)
        return rest_send_errcode(r, rc, "cannot prepare the batch");
    return batch_submit(c);
}
