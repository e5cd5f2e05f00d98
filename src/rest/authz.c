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
 *   $validate                                 the letter of the write its mode names;
 *                                             mode delete: the target within (as delete)
 *   patient-privacy Consents                  for user-facing tokens, what they withhold
 *                                             is left out of every read path above
 *                                             (docs/CONSENT.md)
 *   everything else (history of a type or the system under a restriction,
 *   operations but $everything, $validate)    403 "not supported with authorisation yet"
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
#include "auth/consent.h"
#include "auth/issuer.h"
#include "base/err.h"
#include "base/time.h"
#include "rest/authz.h"
#include "rest/consent.h"
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
    /* a named tenant's tokens are for its own base: <audience>/NAME (docs/TENANTS.md) */
    const char *aud = NULL;
    if (r->ctx.tenant_name) {
        const char *ca = auth_server_audience(as);
        size_t cn = strlen(ca), tn = strlen(r->ctx.tenant_name);
        while (cn && ca[cn - 1] == '/')
            cn--;
        char *b = arena_alloc(r->a, cn + 1 + tn + 1);
        if (!b)
            return rest_send_errcode(r, ERR_NOMEM, "out of memory");
        memcpy(b, ca, cn);
        b[cn] = '/';
        memcpy(b + cn + 1, r->ctx.tenant_name, tn + 1);
        aud = b;
    }
    int rc = auth_verify_aud(as, aud, r->a, tok, strlen(tok), (int64_t)time(NULL), p, msg,
                             sizeof msg);
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

static const rest_consent_set *consents_for(const rest_ctx *cx, unsigned op);

/* Take the tenant's enforced Consents into r->ctx when they can concern its token (a
 * user-facing one: auth_consent_user_facing), so consents_for sees them. 0 or the
 * store's error. */
static int load_consents(rest_req *r)
{
    const rest_consent_set *cs;
    if (!r->ctx.principal || !auth_consent_user_facing(r->ctx.principal))
        return 0;
    return rest_consent_set_of(r, &cs);
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
        /* each version is shown only when it is within the token's rights (history.c) */
        return REST_AUTHZ_SOME;
    case RI_OPERATION:
        if (type && r->route.op && !strcmp(r->route.op, "validate")) {
            /* the mode decides which write it stands for (ops/validate.c asks
             * rest_authz_validate); here: any write of the type at all */
            static const unsigned writes[] = {AUTH_CREATE, AUTH_UPDATE, AUTH_DELETE};
            for (size_t i = 0; i < sizeof writes / sizeof *writes; i++) {
                auth_view v;
                auth_view_of(p, type, writes[i], &v);
                if (v.kind == AUTH_VIEW_ALL || v.kind == AUTH_VIEW_SOME)
                    return REST_AUTHZ_SOME;
            }
            snprintf(m, msz, "$validate of %s needs a write permission (c, u or d) on %s", type,
                     type);
            return REST_AUTHZ_FORBIDDEN;
        }
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
            ri != RI_HISTORY_INSTANCE && ri != RI_HISTORY_TYPE) {
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

/* Restrict q to what the token's scopes let it reach of q->type with op: VIEW_OK (q
 * restricted, or nothing to restrict), VIEW_FORBIDDEN / VIEW_NOT_YET with msg, or
 * ERR_NOMEM. The clauses added to the top query stay out of its links. */
static int restrict_view(const rest_ctx *cx, arena *a, srch_query *q, unsigned op, int nested,
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

/* ---- consent (docs/CONSENT.md) ------------------------------------------------------
 *
 * For a user-facing token, each enforced Consent that withholds something of q->type
 * from it becomes a query of q->type (the patient's compartment, the labels) whose
 * matches srch_add_except leaves out. Denials without labels are merged into one
 * query (the compartments of all their patients, OR); those with labels get one each. */

#define CONSENT_MAX_LABELLED 32 /* label-specific denials applied to one query */

/* Are the rules of the consents in cx->consents to be applied to this token? */
static const rest_consent_set *consents_for(const rest_ctx *cx, unsigned op)
{
    const rest_consent_set *cs = cx->consents;
    if (!cs || !cs->n || !(op & (AUTH_READ | AUTH_SEARCH)) ||
        !auth_consent_user_facing(cx->principal))
        return NULL;
    return cs;
}

/* "a,b" of labels "system|code", each part escaped for a search value. */
static const char *label_values(arena *a, const char *const *ls, size_t n)
{
    buf b = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(&b, ',');
        const char *bar = strchr(ls[i], '|');
        for (const char *c = ls[i]; *c; c++) {
            if (c != bar && (*c == ',' || *c == '|' || *c == '$' || *c == '\\'))
                buf_putc(&b, '\\');
            buf_putc(&b, *c);
        }
    }
    const char *out = b.err ? NULL : arena_strndup(a, (const char *)b.data, b.len);
    buf_free(&b);
    return out;
}

/* A query of type for the resources of patients pids[0..n) (the Patient compartment;
 * for Patient the patients themselves) carrying one of `any` labels and none of `none`.
 * *sub NULL: type is not in the compartment (nothing to withhold). */
static int withheld_query(const rest_ctx *cx, arena *a, const char *type,
                          const char *const *pids, size_t n, const auth_consent_rule *r,
                          srch_query **sub, srch_error *e)
{
    *sub = NULL;
    srch_query *s = arena_alloc(a, sizeof *s);
    if (!s)
        return ERR_NOMEM;
    srch_init(s, type);
    s->spc = cx->spc;
    s->base_url = cx->base_url ? cx->base_url : "";
    int rc = 0;
    if (!strcmp(type, "Patient")) {
        buf b = BUF_INIT;
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_putc(&b, ',');
            buf_puts(&b, pids[i]);
        }
        const char *ids = b.err ? NULL : arena_strndup(a, (const char *)b.data, b.len);
        buf_free(&b);
        rc = ids ? srch_add(s, a, "_id", ids, 0, s->base_url, e) : ERR_NOMEM;
    } else {
        /* one compartment clause whose values are those of every patient's (OR) */
        for (size_t i = 0; i < n && !rc; i++) {
            size_t before = s->nc;
            rc = srch_add_compartment(s, a, "Patient", pids[i], e);
            if (rc == ERR_UNSUPPORTED && i == 0) {
                srch_done(s);
                return 0; /* type is not in the Patient compartment */
            }
            if (rc || !before)
                continue;
            srch_clause *first = &s->c[0], *add = &s->c[1];
            srch_value *v = arena_alloc(a, sizeof *v * (first->nv + add->nv));
            if (!v) {
                rc = ERR_NOMEM;
                break;
            }
            memcpy(v, first->v, sizeof *v * first->nv);
            memcpy(v + first->nv, add->v, sizeof *v * add->nv);
            first->v = v;
            first->nv += add->nv;
            s->nc = 1;
        }
    }
    if (!rc && r && r->nany) {
        const char *vals = label_values(a, r->any, r->nany);
        rc = vals ? srch_add(s, a, "_security", vals, 0, s->base_url, e) : ERR_NOMEM;
    }
    if (!rc && r && r->nnone) {
        const char *vals = label_values(a, r->none, r->nnone);
        rc = vals ? srch_add(s, a, "_security:not", vals, 0, s->base_url, e) : ERR_NOMEM;
    }
    srch_done(s); /* its applied parameters are never a link */
    if (!rc)
        *sub = s;
    return rc;
}

/* What the consents withhold of q->type from the token, left out of q. */
static int restrict_consent(const rest_ctx *cx, arena *a, srch_query *q, unsigned op,
                            char *msg, size_t msz)
{
    const rest_consent_set *cs = consents_for(cx, op);
    if (!cs)
        return VIEW_OK;
    int64_t now = ftime_now_us();
    const char **whole = arena_alloc(a, sizeof *whole * cs->n);
    if (!whole)
        return ERR_NOMEM;
    size_t nwhole = 0, nlab = 0;
    srch_error e = {0};
    int rc = 0;
    for (size_t i = 0; i < cs->n && !rc; i++) {
        auth_consent_rule rule;
        if (!auth_consent_rule_for(&cs->c[i], cx->principal, q->type, now, &rule))
            continue;
        if (!rule.nany && !rule.nnone) {
            whole[nwhole++] = rule.patient;
            continue;
        }
        if (++nlab > CONSENT_MAX_LABELLED) {
            snprintf(msg, msz, "more than %d patient-privacy Consents with security labels "
                     "withhold %s resources from this token: applying them all is " NOT_YET,
                     CONSENT_MAX_LABELLED, q->type);
            return VIEW_NOT_YET;
        }
        srch_query *sub;
        if (!(rc = withheld_query(cx, a, q->type, &rule.patient, 1, &rule, &sub, &e)) && sub)
            rc = srch_add_except(q, a, sub, &e);
    }
    if (!rc && nwhole) {
        srch_query *sub;
        if (!(rc = withheld_query(cx, a, q->type, whole, nwhole, NULL, &sub, &e)) && sub)
            rc = srch_add_except(q, a, sub, &e);
    }
    if (rc == ERR_NOMEM)
        return rc;
    if (rc) {
        snprintf(msg, msz, "the patient-privacy Consents cannot be applied to a search of "
                 "%s: %s", q->type, e.msg);
        return VIEW_FORBIDDEN;
    }
    return VIEW_OK;
}

/* Whether the consents withhold doc (a version of type) from the token: 1 withheld, 0
 * not, ERR_NOMEM. */
static int consent_withholds_doc(const rest_ctx *cx, arena *a, const char *type,
                                 const json_val *doc)
{
    const rest_consent_set *cs = consents_for(cx, AUTH_READ);
    if (!cs)
        return 0;
    int64_t now = ftime_now_us();
    for (size_t i = 0; i < cs->n; i++) {
        auth_consent_rule rule;
        if (!auth_consent_rule_for(&cs->c[i], cx->principal, type, now, &rule))
            continue;
        srch_query *sub;
        srch_error e = {0};
        int rc = withheld_query(cx, a, type, &rule.patient, 1, &rule, &sub, &e);
        if (rc == ERR_NOMEM)
            return rc;
        if (rc)
            return 1; /* cannot be decided: withheld */
        if (!sub)
            continue;
        rc = srch_matches_doc(sub, a, doc);
        if (rc == ERR_NOMEM)
            return rc;
        if (rc)
            return 1;
    }
    return 0;
}

/* Restrict q to what the token may reach of q->type with op: its scopes' view, less
 * what patient-privacy Consents withhold from it. */
static int restrict_query(const rest_ctx *cx, arena *a, srch_query *q, unsigned op, int nested,
                          char *msg, size_t msz)
{
    int rc = restrict_view(cx, a, q, op, nested, msg, msz);
    return rc == VIEW_OK ? restrict_consent(cx, a, q, op, msg, msz) : rc;
}

/* contains(): 1 when type/id (current in rd) is within cx's token's rights for op, 0
 * when not (whether it exists or not), <0 an error; the consents in cx as loaded. */
static int contains(const rest_ctx *cx, arena *a, const char *base, store_reader *rd,
                    const char *type, const char *id, unsigned op)
{
    const auth_principal *p = cx->principal;
    auth_view v;
    auth_view_of(p, type, op, &v);
    int consent = consents_for(cx, op) != NULL;
    if (v.kind == AUTH_VIEW_ALL && !consent)
        return 1;
    if (v.kind != AUTH_VIEW_SOME && v.kind != AUTH_VIEW_ALL)
        return 0;
    if (v.patient && !p->patient[0])
        return 0;
    if (v.patient && !v.nq && !consent) {
        const char *pid = p->patient;
        return !strcmp(type, "Patient")
                   ? !strcmp(id, pid)
                   : srch_in_compartment(rd, a, cx->tenant, "Patient", &pid, 1, type, id);
    }
    /* the restriction with _id=id, as a query of its own */
    srch_query q;
    srch_init(&q, type);
    q.spc = cx->spc;
    q.base_url = base;
    q.count = 1;
    q.total = 0;
    char msg[400];
    srch_error e = {0};
    int rc = restrict_query(cx, a, &q, op, 1, msg, sizeof msg);
    if (rc == VIEW_OK)
        rc = srch_add(&q, a, "_id", id, 0, q.base_url, &e);
    else if (rc > 0)
        rc = ERR_INVALID; /* cannot be applied: nothing is within */
    srch_result res;
    if (!rc)
        rc = srch_run(&q, rd, a, cx->tenant, &res, &e);
    srch_done(&q);
    if (rc == ERR_NOMEM || rc == ERR_IO)
        return rc;
    return rc ? 0 : res.n > 0;
}

/* 1 when type/id (current in rd) is within the token's rights for op, 0 when not
 * (whether it exists or not), <0 an error. */
static int view_contains(rest_req *r, store_reader *rd, const char *type, const char *id,
                         unsigned op)
{
    int crc = load_consents(r);
    return crc ? crc : contains(&r->ctx, r->a, rest_base_url(r), rd, type, id, op);
}

int rest_authz_ref_within(const rest_ctx *cx, arena *a, store_reader *rd, const char *type,
                          const char *id)
{
    const auth_principal *p = cx->principal;
    if (!p)
        return 1;
    if (p->patient[0] && !strcmp(type, "Patient") && !strcmp(id, p->patient))
        return 1; /* the launch context names it: nothing to learn */
    rest_ctx c = *cx;
    c.consents = NULL; /* consents govern access, not what a write may name */
    return contains(&c, a, c.base_url ? c.base_url : "", rd, type, id, AUTH_READ);
}

int rest_authz_ref_restricted(const rest_ctx *cx, const char *type)
{
    if (!cx->principal)
        return 0;
    auth_view v;
    auth_view_of(cx->principal, type, AUTH_READ, &v);
    return v.kind != AUTH_VIEW_ALL;
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
    if (!type) /* every type */
        return !every_type_all(r->ctx.principal, AUTH_READ) || load_consents(r) ||
               consents_for(&r->ctx, AUTH_READ) != NULL;
    auth_view v;
    auth_view_of(r->ctx.principal, type, AUTH_READ, &v);
    if (v.kind != AUTH_VIEW_ALL)
        return 1;
    return load_consents(r) || consents_for(&r->ctx, AUTH_READ) != NULL;
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
    int rc = restrict_view(cx, a, &q, op, 1, msg, sizeof msg);
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
    int in = rest_authz_content_within(&r->ctx, r->a, v->type, AUTH_READ, v->bytes, v->len);
    int rc = in == 1 ? load_consents(r) : 0;
    if (rc)
        return rc;
    if (in != 1 || !consents_for(&r->ctx, AUTH_READ))
        return in;
    /* the version as it was, held to the consents in force now */
    char *copy = arena_strndup(r->a, v->bytes, v->len);
    json_val *doc;
    if (!copy || json_parse(r->a, copy, v->len, JSON_FHIR, &doc, NULL))
        return ERR_NOMEM;
    rc = consent_withholds_doc(&r->ctx, r->a, v->type, doc);
    return rc < 0 ? rc : !rc;
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

int rest_authz_validate(rest_req *r, store_reader *rd, const char *type, const char *id,
                        const char *mode)
{
    const auth_principal *p = r->ctx.principal;
    if (!p)
        return -1;
    unsigned op = !strcmp(mode, "delete") ? AUTH_DELETE
                  : !strcmp(mode, "update") ? AUTH_UPDATE : AUTH_CREATE;
    auth_view v;
    auth_view_of(p, type, op, &v);
    char m[300];
    if (v.kind == AUTH_VIEW_NONE || v.kind == AUTH_VIEW_MIXED) {
        snprintf(m, sizeof m, "$validate in mode %s of %s needs the permission that %s would "
                 "(%c), which the token's scopes %s", mode, type, mode,
                 op == AUTH_DELETE ? 'd' : op == AUTH_UPDATE ? 'u' : 'c',
                 v.kind == AUTH_VIEW_NONE ? "do not grant" : "grant only as a union that is "
                 NOT_YET);
        return v.kind == AUTH_VIEW_NONE ? forbidden(r, m)
                                        : rest_send_error(r, 403, OO_NOT_SUPPORTED, m, NULL);
    }
    if (op != AUTH_DELETE || v.kind == AUTH_VIEW_ALL || !id)
        return -1;
    int in = view_contains(r, rd, type, id, AUTH_DELETE);
    if (in < 0)
        return rest_send_errcode(r, in, "cannot read the store");
    if (in)
        return -1;
    snprintf(m, sizeof m, "%s/%.64s is not within the token's rights to delete it", type, id);
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
    int crc = load_consents(r);
    if (crc) {
        snprintf(msg, msz, "cannot read the patient-privacy Consents");
        return crc;
    }
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
    size_t tn = r->ctx.tenant_name ? strlen(r->ctx.tenant_name) : 0;
    if (tn && bn > tn + 1 && base[bn - tn - 1] == '/' &&
        !memcmp(base + bn - tn, r->ctx.tenant_name, tn))
        bn -= tn + 1; /* a tenant's base: the endpoints are the server's, not the tenant's */
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
