/*
 * authz.c -- SMART on FHIR enforcement in the request path (the contract is authz.h).
 *
 * The token's scopes give, per type and permission, one restriction (auth_view_of):
 * the whole type, or the patient's compartment and/or an OR of granular queries. The
 * restriction becomes search clauses, so every answer is computed within it:
 *
 *   read                                  r   the restriction with _id=id (403 outside)
 *   vread, history of an instance         r   whole-type scopes only
 *   search of a type (and C/id/T)         s   the restriction's clauses added, to the
 *                                             query and to every query behind its chains
 *                                             and _has; each _include/_revinclude
 *                                             candidate checked like a read
 *   create                                c   \  the resource as stored within the
 *   update, PATCH (of an id)              u    > restriction; an update, PATCH or
 *   delete (of an id)                     d   /  delete also the current version
 *                                                (write.c's plan_rights)
 *   batch, transaction                        each entry as if alone
 *   conditional writes                        the condition needs s on the whole type;
 *                                             under a write restriction refused
 *   everything else (history of a type or the system under a restriction,
 *   operations but $everything)               403 "not supported with authorisation yet"
 *
 * A refusal never depends on whether the resource exists, so a token learns nothing
 * about resources outside its rights. /metadata, the SMART configuration, /healthz and
 * /metrics stay public.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth.h"
#include "auth/issuer.h"
#include "base/err.h"
#include "rest/authz.h"
#include "rest/params.h"
#include "rest/response.h"
#include "json/json.h"
#include "search/search.h"

#define REALM "hortus"
#define NOT_YET "not supported with authorisation yet"

static int unauthorized(rest_req *r, const char *why, int has_token)
{
    char msg[400];
    snprintf(msg, sizeof msg, "authentication required: %s", why);
    /* RFC 6750 3.1: no error code when the request had no token at all */
    return rest_send_error_auth(r, 401, OO_LOGIN, msg,
                                has_token ? "Bearer realm=\"" REALM "\", error=\"invalid_token\""
                                          : "Bearer realm=\"" REALM "\"");
}

static int forbidden(rest_req *r, const char *msg)
{
    return rest_send_error_auth(r, 403, OO_FORBIDDEN, msg,
                                "Bearer realm=\"" REALM "\", error=\"insufficient_scope\"");
}

static int is_public(rest_route_kind k)
{
    return k == RR_HEALTH || k == RR_METRICS || k == RR_METADATA || k == RR_SMART_CONFIG ||
           k == RR_AUTH_TOKEN || k == RR_AUTH_JWKS;
}

int rest_authz_begin(rest_req *r)
{
    auth_server *as = r->ctx.svc ? r->ctx.svc->auth : NULL;
    if (!as || is_public(r->route.kind))
        return -1;
    const char *h = rest_header(r, "Authorization");
    if (!h)
        return unauthorized(r, "send a bearer token (Authorization: Bearer ...)", 0);
    if (strncasecmp(h, "Bearer ", 7))
        return unauthorized(r, "the Authorization header must be 'Bearer TOKEN'", 1);
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    auth_principal *p = arena_alloc(r->a, sizeof *p);
    if (!p)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    char msg[300];
    int rc = auth_verify(as, r->a, tok, strlen(tok), (int64_t)time(NULL), p, msg, sizeof msg);
    if (rc == ERR_NOMEM)
        return rest_send_errcode(r, rc, "out of memory");
    if (rc == ERR_IO) /* the introspection endpoint: not the client's fault */
        return rest_send_error(r, 503, OO_TRANSIENT, msg, NULL);
    if (rc)
        return unauthorized(r, msg, 1);
    r->ctx.principal = p;

    int cond = (r->ri == RI_CREATE && rest_header(r, "If-None-Exist")) ||
               ((r->ri == RI_UPDATE || r->ri == RI_PATCH || r->ri == RI_DELETE) &&
                r->route.kind != RR_INSTANCE);
    char m[400];
    switch (rest_authz_decide(r, r->ri, r->route.type ? r->route.type->name : NULL, cond, m,
                              sizeof m)) {
    case REST_AUTHZ_FORBIDDEN: return forbidden(r, m);
    case REST_AUTHZ_NOT_YET: return rest_send_error(r, 403, OO_NOT_SUPPORTED, m, NULL);
    default: break;
    }
    auth_view v;
    if (r->route.type && (r->ri == RI_READ || r->ri == RI_SEARCH_TYPE)) {
        auth_view_of(p, r->route.type->name, r->ri == RI_READ ? AUTH_READ : AUTH_SEARCH, &v);
        if (v.kind == AUTH_VIEW_SOME && v.patient)
            r->ctx.auth_patient = p->patient;
    }
    return -1;
}

/* The permission bit an interaction needs (0: none of one type). */
static unsigned op_of(rest_interaction ri)
{
    switch (ri) {
    case RI_READ:
    case RI_VREAD:
    case RI_HISTORY_INSTANCE:
    case RI_HISTORY_TYPE:
    case RI_HISTORY_SYSTEM: return AUTH_READ;
    case RI_SEARCH_TYPE:
    case RI_SEARCH_SYSTEM: return AUTH_SEARCH;
    case RI_CREATE: return AUTH_CREATE;
    case RI_UPDATE:
    case RI_PATCH: return AUTH_UPDATE;
    case RI_DELETE: return AUTH_DELETE;
    default: return 0;
    }
}

/* 1 when every resource type of the model is wholly within p's rights for op. */
static int every_type_all(const auth_principal *p, unsigned op)
{
    const fhir_type *const *all;
    size_t n = fhir_resource_types(&all);
    for (size_t i = 0; i < n; i++) {
        auth_view v;
        auth_view_of(p, all[i]->name, op, &v);
        if (v.kind != AUTH_VIEW_ALL)
            return 0;
    }
    return 1;
}

int rest_authz_decide(rest_req *r, rest_interaction ri, const char *type, int conditional,
                      char *m, size_t msz)
{
    const auth_principal *p = r->ctx.principal;
    if (!p)
        return REST_AUTHZ_ALL;
    const char *what = rest_interaction_name(ri);
    unsigned op = op_of(ri);
    switch (ri) {
    case RI_BATCH: return REST_AUTHZ_ALL; /* each entry is decided on its own */
    case RI_SEARCH_SYSTEM: return REST_AUTHZ_SOME; /* each type is restricted on its own */
    case RI_HISTORY_SYSTEM:
        if (every_type_all(p, AUTH_READ))
            return REST_AUTHZ_ALL;
        snprintf(m, msz, "the history of the system needs read (r) on every type by user/ or "
                 "system/ scopes without a query");
        return REST_AUTHZ_FORBIDDEN;
    case RI_OPERATION:
        if (type && r->route.op && !strcmp(r->route.op, "everything")) {
            /* a search of the compartment's types, each within the token's view of it
             * (ops/everything.c): the focal type must be searchable at all */
            auth_view v;
            auth_view_of(p, type, AUTH_SEARCH, &v);
            if (v.kind == AUTH_VIEW_ALL || v.kind == AUTH_VIEW_SOME)
                return REST_AUTHZ_SOME;
            snprintf(m, msz, "$everything of %s needs search (s) on %s", type, type);
            return v.kind == AUTH_VIEW_MIXED ? REST_AUTHZ_NOT_YET : REST_AUTHZ_FORBIDDEN;
        }
        snprintf(m, msz, "the operation $%.40s is %s", r->route.op ? r->route.op : "?",
                 NOT_YET);
        return REST_AUTHZ_NOT_YET;
    default:
        if (!op || !type) {
            snprintf(m, msz, "%s is %s", what, NOT_YET);
            return REST_AUTHZ_NOT_YET;
        }
    }
    auth_view v;
    auth_view_of(p, type, op, &v);
    switch (v.kind) {
    case AUTH_VIEW_ALL: break;
    case AUTH_VIEW_NONE:
        snprintf(m, msz, "the token's scopes do not allow %s of %s", what, type);
        return REST_AUTHZ_FORBIDDEN;
    case AUTH_VIEW_MIXED:
        snprintf(m, msz, "the token's scopes grant %s of %s both within the patient's "
                 "compartment and by granular user/ or system/ scopes: that union is " NOT_YET,
                 what, type);
        return REST_AUTHZ_NOT_YET;
    default:
        if (op != AUTH_READ && op != AUTH_SEARCH) {
            /* a write of an id: the pipeline holds the resource, before and after, to
             * the restriction (write.c, plan_rights); a condition would be a search
             * whose target the restriction cannot be held to before it is found */
            if (conditional) {
                snprintf(m, msz, "a conditional %s of %s under patient/ or granular scopes "
                         "is " NOT_YET " (a user/ or system/ scope for the whole type is "
                         "needed)", what, type);
                return REST_AUTHZ_NOT_YET;
            }
            if (v.patient && !p->patient[0]) {
                snprintf(m, msz, "the token's scopes for %s are patient/ scopes but it has "
                         "no patient claim (launch context)", type);
                return REST_AUTHZ_FORBIDDEN;
            }
            return REST_AUTHZ_SOME;
        }
        if (ri != RI_READ && ri != RI_SEARCH_TYPE && ri != RI_VREAD &&
            ri != RI_HISTORY_INSTANCE) {
            /* a type's history lists versions of resources the token may not read now */
            snprintf(m, msz, "%s of %s under patient/ or granular scopes is " NOT_YET
                     " (a user/ or system/ scope for the whole type is needed)", what, type);
            return REST_AUTHZ_NOT_YET;
        }
        if (v.patient && !p->patient[0]) {
            snprintf(m, msz, "the token's scopes for %s are patient/ scopes but it has no "
                     "patient claim (launch context)", type);
            return REST_AUTHZ_FORBIDDEN;
        }
        return REST_AUTHZ_SOME;
    }
    /* a condition is a search: it may only look where the token sees everything, so
     * that neither its answer (0, 1, several) nor what it writes reveals anything */
    if (conditional && !rest_authz_may_probe(r, type, m, msz))
        return REST_AUTHZ_FORBIDDEN;
    return REST_AUTHZ_ALL;
}

int rest_authz_may_probe(rest_req *r, const char *type, char *m, size_t msz)
{
    const auth_principal *p = r->ctx.principal;
    if (!p)
        return 1;
    auth_view v;
    auth_view_of(p, type, AUTH_SEARCH, &v);
    if (v.kind == AUTH_VIEW_ALL)
        return 1;
    snprintf(m, msz, "a condition searches %s: it needs search (s) on all of %s (a user/ or "
             "system/ scope without a query), so that its answer reveals nothing", type, type);
    return 0;
}

/* ---- the token's view as search clauses ------------------------------------------ */

enum { VIEW_OK = 0, VIEW_FORBIDDEN = 1, VIEW_NOT_YET = 2 };

typedef struct gran_ctx {
    const rest_ctx *cx;
    arena *a;
    srch_query *q;
    srch_error e;
    int rc;
    const char *k; /* the one parameter of a granular query (merging several) */
    const char *v;
    int pairs;
} gran_ctx;

static int gran_add(void *ctx, const char *k, const char *v)
{
    gran_ctx *g = ctx;
    g->rc = srch_add(g->q, g->a, k, v, 0, g->cx->base_url ? g->cx->base_url : "", &g->e);
    return g->rc != 0;
}

static int gran_one(void *ctx, const char *k, const char *v)
{
    gran_ctx *g = ctx;
    g->k = k;
    g->v = v;
    return ++g->pairs > 1;
}

/* The granular queries qs[0..n) of q->type as clauses of q (OR of the queries): one
 * query as it is; several only when each is one parameter, the same one (their values
 * then become one OR). */
static int add_granular(const rest_ctx *cx, arena *a, srch_query *q, const char *const *qs,
                        size_t n, char *msg, size_t msz)
{
    gran_ctx g = {.cx = cx, .a = a, .q = q};
    int rc;
    if (n == 1) {
        rc = rest_form_each(a, qs[0], strlen(qs[0]), gran_add, &g);
    } else {
        buf vals = BUF_INIT;
        const char *key = NULL;
        rc = 0;
        for (size_t i = 0; i < n && !rc; i++) {
            g.pairs = 0;
            rc = rest_form_each(a, qs[i], strlen(qs[i]), gran_one, &g);
            if (rc == 1 || (!rc && (g.pairs != 1 || (key && strcmp(key, g.k))))) {
                buf_free(&vals);
                snprintf(msg, msz, "the token's granular scopes for %s use different "
                         "parameters or several each; combining those is %s", q->type,
                         NOT_YET);
                return VIEW_NOT_YET;
            }
            key = g.k;
            if (vals.len)
                buf_putc(&vals, ',');
            buf_puts(&vals, g.v);
        }
        if (!rc && vals.err)
            rc = ERR_NOMEM;
        if (!rc) {
            const char *joined = arena_strndup(a, (const char *)vals.data, vals.len);
            rc = joined ? 0 : ERR_NOMEM;
            if (!rc)
                gran_add(&g, key, joined);
        }
        buf_free(&vals);
    }
    if (rc == ERR_NOMEM || g.rc == ERR_NOMEM)
        return ERR_NOMEM;
    if (rc || g.rc) {
        snprintf(msg, msz, "a granular scope's query for %s cannot be applied: %s", q->type,
                 g.rc ? g.e.msg : "malformed %-escape");
        return VIEW_FORBIDDEN;
    }
    return VIEW_OK;
}

/* Restrict q to what the token may reach of q->type with op: VIEW_OK (q restricted,
 * or nothing to restrict), VIEW_FORBIDDEN / VIEW_NOT_YET with msg, or ERR_NOMEM. The
 * clauses added to the top query stay out of its links. */
static int restrict_query(const rest_ctx *cx, arena *a, srch_query *q, unsigned op, int nested,
                          char *msg, size_t msz)
{
    const auth_principal *p = cx->principal;
    const char *base = cx->base_url ? cx->base_url : "";
    auth_view v;
    auth_view_of(p, q->type, op, &v);
    const char *where = nested ? " (behind a chain or _has)" : "";
    switch (v.kind) {
    case AUTH_VIEW_ALL: return VIEW_OK;
    case AUTH_VIEW_NONE:
        snprintf(msg, msz, "the token's scopes do not allow a search of %s%s", q->type, where);
        return VIEW_FORBIDDEN;
    case AUTH_VIEW_MIXED:
        snprintf(msg, msz, "the token's scopes grant %s%s both within the patient's "
                 "compartment and by granular user/ or system/ scopes: that union is %s",
                 q->type, where, NOT_YET);
        return VIEW_NOT_YET;
    default: break;
    }
    size_t applied = q->applied.len;
    int rc = VIEW_OK;
    srch_error e = {0};
    if (v.patient) {
        if (!p->patient[0]) {
            snprintf(msg, msz, "the token's scopes for %s are patient/ scopes but it has no "
                     "patient claim (launch context)", q->type);
            return VIEW_FORBIDDEN;
        }
        /* the patient itself (the Patient compartment of Patient is its links) */
        int arc = !strcmp(q->type, "Patient")
                      ? srch_add(q, a, "_id", p->patient, 0, base, &e)
                      : srch_add_compartment(q, a, "Patient", p->patient, &e);
        if (arc == ERR_NOMEM)
            return ERR_NOMEM;
        if (arc) {
            snprintf(msg, msz, "the token's patient/ scopes cannot be applied to a search "
                     "of %s%s: %s", q->type, where, e.msg);
            rc = VIEW_FORBIDDEN;
        }
    }
    if (rc == VIEW_OK && v.nq)
        rc = add_granular(cx, a, q, v.q, v.nq, msg, msz);
    if (!nested && q->applied.data) { /* the restriction is the token's, not the link's */
        q->applied.len = applied;
        q->applied.data[applied] = 0;
    }
    return rc;
}

/* 1 when type/id (current in rd) is within the token's rights for op, 0 when not
 * (whether it exists or not), <0 an error. */
static int view_contains(rest_req *r, store_reader *rd, const char *type, const char *id,
                         unsigned op)
{
    const auth_principal *p = r->ctx.principal;
    auth_view v;
    auth_view_of(p, type, op, &v);
    if (v.kind == AUTH_VIEW_ALL)
        return 1;
    if (v.kind != AUTH_VIEW_SOME || (v.patient && !p->patient[0]))
        return 0;
    if (v.patient && !v.nq) {
        const char *pid = p->patient;
        return !strcmp(type, "Patient")
                   ? !strcmp(id, pid)
                   : srch_in_compartment(rd, r->a, r->ctx.tenant, "Patient", &pid, 1, type, id);
    }
    /* the restriction with _id=id, as a query of its own */
    srch_query q;
    srch_init(&q, type);
    q.spc = r->ctx.spc;
    q.base_url = rest_base_url(r);
    q.count = 1;
    q.total = 0;
    char msg[400];
    srch_error e = {0};
    int rc = restrict_query(&r->ctx, r->a, &q, op, 1, msg, sizeof msg);
    if (rc == VIEW_OK)
        rc = srch_add(&q, r->a, "_id", id, 0, q.base_url, &e);
    else if (rc > 0)
        rc = ERR_INVALID; /* cannot be applied: nothing is within */
    srch_result res;
    if (!rc)
        rc = srch_run(&q, rd, r->a, r->ctx.tenant, &res, &e);
    srch_done(&q);
    if (rc == ERR_NOMEM || rc == ERR_IO)
        return rc;
    return rc ? 0 : res.n > 0;
}

int rest_authz_visible(rest_req *r, store_reader *rd, const char *type, const char *id,
                       int search)
{
    if (!r->ctx.principal)
        return 1;
    return view_contains(r, rd, type, id, search ? AUTH_SEARCH : AUTH_READ);
}

int rest_authz_restricted(rest_req *r, const char *type)
{
    if (!r->ctx.principal)
        return 0;
    auth_view v;
    auth_view_of(r->ctx.principal, type, AUTH_READ, &v);
    return v.kind != AUTH_VIEW_ALL;
}

/* The content is matched against the restriction's clauses as the index would extract
 * them, so no store lookup is needed. */
int rest_authz_content_within(const rest_ctx *cx, arena *a, const char *type, unsigned op,
                              const void *bytes, size_t len)
{
    const auth_principal *p = cx->principal;
    if (!p)
        return 1;
    auth_view av;
    auth_view_of(p, type, op, &av);
    if (av.kind == AUTH_VIEW_ALL)
        return 1;
    if (av.kind != AUTH_VIEW_SOME || !len)
        return 0; /* a deletion has no content to hold to the restriction */
    srch_query q;
    srch_init(&q, type);
    q.spc = cx->spc;
    q.base_url = cx->base_url ? cx->base_url : "";
    char msg[400];
    int rc = restrict_query(cx, a, &q, op, 1, msg, sizeof msg);
    json_val *doc = NULL;
    char *copy = NULL;
    if (rc == VIEW_OK) { /* the tree may point into its input: parse a copy */
        copy = arena_strndup(a, bytes, len);
        rc = copy ? json_parse(a, copy, len, JSON_FHIR, &doc, NULL) : ERR_NOMEM;
    }
    if (rc == VIEW_OK)
        rc = srch_matches_doc(&q, a, doc);
    else if (rc > 0)
        rc = 0; /* a restriction that cannot be applied: nothing is within */
    srch_done(&q);
    return rc == ERR_NOMEM ? rc : rc == 1;
}

int rest_authz_version(rest_req *r, const store_version *v)
{
    return rest_authz_content_within(&r->ctx, r->a, v->type, AUTH_READ, v->bytes, v->len);
}

int rest_authz_write_restricted(const rest_ctx *cx, const char *type, unsigned op)
{
    if (!cx->principal)
        return 0;
    auth_view v;
    auth_view_of(cx->principal, type, op, &v);
    return v.kind != AUTH_VIEW_ALL;
}

int rest_authz_instance(rest_req *r, store_reader *rd, const char *type, const char *id)
{
    if (!r->ctx.principal)
        return -1;
    int in = view_contains(r, rd, type, id, AUTH_READ);
    if (in < 0)
        return rest_send_errcode(r, in, "cannot read the store");
    if (in)
        return -1;
    char m[300];
    if (r->ctx.auth_patient)
        snprintf(m, sizeof m, "%s/%.64s is not in the compartment of Patient/%s, the token's "
                 "patient, or not within its scopes", type, id, r->ctx.auth_patient);
    else
        snprintf(m, sizeof m, "%s/%.64s is not within the token's granular scopes", type, id);
    return forbidden(r, m);
}

typedef struct restrict_walk {
    rest_req *r;
    int rc;
    char msg[400];
} restrict_walk;

static int restrict_each(void *ctx, srch_query *q, unsigned depth)
{
    restrict_walk *w = ctx;
    w->rc = restrict_query(&w->r->ctx, w->r->a, q, AUTH_SEARCH, depth > 0, w->msg, sizeof w->msg);
    return w->rc != VIEW_OK;
}

static int include_visible(void *ctx, store_reader *rd, const char *type, const char *id)
{
    return view_contains(ctx, rd, type, id, AUTH_SEARCH);
}

int rest_authz_restrict(rest_req *r, srch_query *q, char *msg, size_t msz)
{
    if (!r->ctx.principal)
        return REST_AUTHZ_ALL;
    /* every type the query reads is restricted to the token's view of it: the
     * searched type, and those behind chains and _has (so none reveals a resource
     * outside it, nor counts one); included resources are checked one by one */
    restrict_walk w = {.r = r};
    srch_each_query(q, restrict_each, &w);
    if (w.rc) {
        snprintf(msg, msz, "%s", w.msg);
        return w.rc == ERR_NOMEM ? ERR_NOMEM
               : w.rc == VIEW_NOT_YET ? REST_AUTHZ_NOT_YET : REST_AUTHZ_FORBIDDEN;
    }
    if (q->ninc) {
        q->visible = include_visible;
        q->visible_ctx = r;
    }
    return REST_AUTHZ_SOME;
}

void rest_authz_includes(rest_req *r, srch_query *q)
{
    if (r->ctx.principal) {
        q->visible = include_visible;
        q->visible_ctx = r;
    }
}

int rest_authz_search(rest_req *r, srch_query *q)
{
    char m[400];
    switch (rest_authz_restrict(r, q, m, sizeof m)) {
    case REST_AUTHZ_ALL:
    case REST_AUTHZ_SOME: return -1;
    case ERR_NOMEM: return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    case REST_AUTHZ_NOT_YET: return rest_send_error(r, 403, OO_NOT_SUPPORTED, m, NULL);
    default: return forbidden(r, m);
    }
}

/* The URL of an endpoint of the authorization server as the client reached the FHIR
 * base: that base without its REST_BASE_PATH, then path. In r's arena; NULL: no memory. */
static const char *endpoint_url(rest_req *r, const char *path)
{
    const char *base = rest_base_url(r);
    size_t bn = strlen(base), pl = sizeof REST_BASE_PATH - 1;
    if (bn >= pl && !memcmp(base + bn - pl, REST_BASE_PATH, pl))
        bn -= pl;
    size_t n = bn + strlen(path) + 1;
    char *u = arena_alloc(r->a, n);
    if (u)
        snprintf(u, n, "%.*s%s", (int)bn, base, path);
    return u;
}

typedef struct token_form {
    auth_token_req req;
    const char *dup; /* a parameter sent twice */
} token_form;

static int token_field(void *ctx, const char *key, const char *value)
{
    token_form *f = ctx;
    const char **slot = !strcmp(key, "grant_type")              ? &f->req.grant_type
                        : !strcmp(key, "scope")                 ? &f->req.scope
                        : !strcmp(key, "client_assertion_type") ? &f->req.assertion_type
                        : !strcmp(key, "client_assertion")      ? &f->req.assertion
                                                                : NULL;
    if (!slot) /* RFC 6749 3.2: unrecognised parameters are ignored (client_id ...) */
        return 0;
    if (*slot) {
        f->dup = key;
        return 1;
    }
    *slot = value;
    return 0;
}

static int oauth_reply(rest_req *r, unsigned status, buf *b)
{
    rest_reply rep = {.status = status, .last_modified_s = -1, .ctype = "application/json",
                      .no_store = 1};
    if (status == 401)
        rep.www_authenticate = "Bearer realm=\"" REALM "\"";
    if (rest_reply_take(&rep, b))
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    return rest_send(r, &rep);
}

int rest_auth_endpoint(rest_req *r)
{
    auth_issuer *is = r->ctx.svc ? r->ctx.svc->issuer : NULL;
    if (!is)
        return rest_send_error(r, 404, OO_NOT_FOUND,
                               "no such path: the built-in authorization server is off "
                               "(hortus serve --auth-server)", NULL);
    buf b = BUF_INIT;
    if (r->route.kind == RR_AUTH_JWKS) {
        buf_puts(&b, auth_issuer_jwks(is));
        return rest_send_body(r, 200, &b, "application/json");
    }
    token_form f = {{0}};
    int rc = rest_form_each(r->a, r->body.data ? r->body.data : "", r->body.len, token_field, &f);
    if (rc == ERR_NOMEM)
        return rest_send_errcode(r, rc, "out of memory");
    if (rc == ERR_INVALID || f.dup) {
        char msg[120];
        snprintf(msg, sizeof msg, "{\"error\":\"invalid_request\",\"error_description\":"
                 "\"%s\"}", f.dup ? "a parameter is sent twice" : "the form is malformed");
        buf_puts(&b, msg);
        return oauth_reply(r, 400, &b);
    }
    const char *mine = endpoint_url(r, "/auth/token");
    char *conf = arena_alloc(r->a, strlen(auth_issuer_url(is)) + 12);
    if (!mine || !conf)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    snprintf(conf, strlen(auth_issuer_url(is)) + 12, "%s/auth/token", auth_issuer_url(is));
    f.req.auds[0] = conf;
    f.req.auds[1] = strcmp(conf, mine) ? mine : NULL;
    unsigned status = 500;
    rc = auth_issuer_token(is, r->a, &f.req, (int64_t)time(NULL), &status, &b);
    if (rc) {
        buf_free(&b);
        return rest_send_errcode(r, rc, rc == ERR_NOMEM ? "out of memory"
                                                        : "the token cannot be signed");
    }
    return oauth_reply(r, status, &b);
}

static const char *const scopes_supported[] = {
    "patient/*.rs", "user/*.cruds", "system/*.cruds", "patient/*.read", "user/*.read",
    "user/*.write", "system/*.read", "system/*.write",
};

int rest_smart_config(rest_req *r)
{
    auth_server *as = r->ctx.svc ? r->ctx.svc->auth : NULL;
    if (!as) {
        if (r->route.type_name) {
            char msg[200];
            snprintf(msg, sizeof msg, "unknown resource type '%.80s'", r->route.type_name);
            return rest_send_error(r, 404, OO_NOT_SUPPORTED, msg, NULL);
        }
        return rest_send_error(r, 404, OO_NOT_FOUND,
                               "no such path: the FHIR base is " REST_BASE_PATH, NULL);
    }
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, r->pretty);
    jw_obj(&w);
    jw_key(&w, "issuer");
    jw_str(&w, auth_server_issuer(as));
    auth_issuer *is = r->ctx.svc->issuer;
    const char *token_url = is ? endpoint_url(r, "/auth/token") : NULL;
    const char *jwks_url = is ? endpoint_url(r, "/auth/jwks") : NULL;
    if (is && (!token_url || !jwks_url))
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    if (is) { /* SMART Backend Services (without it, the issuer's discovery names them) */
        jw_key(&w, "token_endpoint");
        jw_str(&w, token_url);
        jw_key(&w, "jwks_uri");
        jw_str(&w, jwks_url);
        static const char *const lists[][3] = {
            {"token_endpoint_auth_methods_supported", "private_key_jwt", NULL},
            {"token_endpoint_auth_signing_alg_values_supported", "RS384", "ES384"},
            {"grant_types_supported", "client_credentials", NULL},
        };
        for (size_t i = 0; i < 3; i++) {
            jw_key(&w, lists[i][0]);
            jw_arr(&w);
            for (size_t j = 1; j < 3 && lists[i][j]; j++)
                jw_str(&w, lists[i][j]);
            jw_end(&w);
        }
    }
    jw_key(&w, "scopes_supported");
    jw_arr(&w);
    for (size_t i = 0; i < sizeof scopes_supported / sizeof scopes_supported[0]; i++)
        jw_str(&w, scopes_supported[i]);
    jw_str(&w, "launch/patient");
    jw_end(&w);
    jw_key(&w, "capabilities");
    jw_arr(&w);
    static const char *const caps[] = {"context-standalone-patient", "permission-patient",
                                       "permission-user", "permission-v1", "permission-v2"};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        jw_str(&w, caps[i]);
    if (is)
        jw_str(&w, "client-confidential-asymmetric");
    jw_end(&w);
    jw_key(&w, "code_challenge_methods_supported");
    jw_arr(&w);
    jw_str(&w, "S256");
    jw_end(&w);
    jw_end(&w);
    return rest_send_body(r, 200, &b, "application/json");
}

const char *rest_authz_security_json(const rest_req *r)
{
    if (!r->ctx.svc || !r->ctx.svc->auth)
        return NULL;
    return "\"security\":{\"cors\":true,\"service\":[{\"coding\":[{\"system\":"
           "\"http://terminology.hl7.org/CodeSystem/restful-security-service\",\"code\":"
           "\"SMART-on-FHIR\"}],\"text\":\"OAuth2 using SMART-on-FHIR profile\"}],"
           "\"description\":\"Bearer tokens (JWT, RS256/RS384/ES256/ES384) of the configured "
           "issuer with SMART v1/v2 scopes; discovery at .well-known/smart-configuration\"}";
}
