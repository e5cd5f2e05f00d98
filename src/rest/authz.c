/*
 * authz.c -- SMART on FHIR enforcement in the request path (the contract is authz.h).
 *
 * One table decides, per interaction, which permission of the type it needs and
 * whether hortus can enforce it yet:
 *
 *   read                                  r   patient/ scopes: compartment check
 *   vread, history of an instance         r   user/ or system/ scopes only
 *   search of a type (and C/id/T)         s   patient/ scopes: compartment clause
 *   create                                c   \
 *   update, PATCH (of an id)              u    > user/ or system/ scopes only
 *   delete (of an id)                     d   /
 *   everything else (system search, history of a type or the system, batch,
 *   transaction, operations, conditional writes)   403 "not supported with
 *                                                  authorisation yet"
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
#include "base/err.h"
#include "rest/authz.h"
#include "rest/response.h"
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

static int not_yet(rest_req *r, const char *what)
{
    char msg[300];
    snprintf(msg, sizeof msg, "%s is %s", what, NOT_YET);
    return rest_send_error(r, 403, OO_NOT_SUPPORTED, msg, NULL);
}

static int is_public(rest_route_kind k)
{
    return k == RR_HEALTH || k == RR_METRICS || k == RR_METADATA || k == RR_SMART_CONFIG;
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
    if (rc)
        return unauthorized(r, msg, 1);
    r->ctx.principal = p;

    unsigned op;
    const char *what = rest_interaction_name(r->ri);
    switch (r->ri) {
    case RI_READ:
    case RI_VREAD:
    case RI_HISTORY_INSTANCE: op = AUTH_READ; break;
    case RI_SEARCH_TYPE: op = AUTH_SEARCH; break;
    case RI_CREATE:
        if (rest_header(r, "If-None-Exist"))
            return not_yet(r, "a conditional create (If-None-Exist)");
        op = AUTH_CREATE;
        break;
    case RI_UPDATE:
    case RI_PATCH:
    case RI_DELETE:
        if (r->route.kind != RR_INSTANCE)
            return not_yet(r, "a conditional write (Type?query)");
        op = r->ri == RI_DELETE ? AUTH_DELETE : AUTH_UPDATE;
        break;
    case RI_SEARCH_SYSTEM: return not_yet(r, "a search of every type");
    case RI_HISTORY_TYPE: return not_yet(r, "the history of a type");
    case RI_HISTORY_SYSTEM: return not_yet(r, "the history of the system");
    case RI_BATCH: return not_yet(r, "a batch or transaction");
    case RI_OPERATION: return not_yet(r, "an operation ($everything, $validate ...)");
    default: return not_yet(r, what);
    }
    const char *type = r->route.type->name;
    auth_verdict v = auth_check(p, type, op);
    char m[300];
    switch (v) {
    case AUTH_ALLOW: return -1;
    case AUTH_GRANULAR:
        snprintf(m, sizeof m, "only granular scopes (with a query) grant %s of %s: granular "
                 "scopes are not supported yet", what, type);
        return forbidden(r, m);
    case AUTH_ALLOW_PATIENT:
        if (op != AUTH_READ && op != AUTH_SEARCH) {
            snprintf(m, sizeof m, "%s of %s under patient/ scopes is " NOT_YET
                     " (a user/ or system/ scope is needed)", what, type);
            return rest_send_error(r, 403, OO_NOT_SUPPORTED, m, NULL);
        }
        if (r->ri == RI_VREAD || r->ri == RI_HISTORY_INSTANCE) {
            /* an older version may have been another patient's (a misfiled resource
             * moved since): membership is only known for the current one */
            snprintf(m, sizeof m, "%s of %s under patient/ scopes is " NOT_YET
                     " (older versions may belong to another patient's compartment)",
                     what, type);
            return rest_send_error(r, 403, OO_NOT_SUPPORTED, m, NULL);
        }
        if (!p->patient[0]) {
            snprintf(m, sizeof m, "the token's scopes for %s are patient/ scopes but it has "
                     "no patient claim (launch context)", type);
            return forbidden(r, m);
        }
        r->ctx.auth_patient = p->patient;
        return -1;
    default:
        snprintf(m, sizeof m, "the token's scopes do not allow %s of %s", what, type);
        return forbidden(r, m);
    }
}

int rest_authz_instance(rest_req *r, store_reader *rd, const char *type, const char *id)
{
    const char *pid = r->ctx.auth_patient;
    if (!pid)
        return -1;
    int in;
    if (!strcmp(type, "Patient"))
        in = !strcmp(id, pid);
    else
        in = srch_in_compartment(rd, r->a, r->ctx.tenant, "Patient", &pid, 1, type, id);
    if (in < 0)
        return rest_send_errcode(r, in, "cannot read the store");
    if (in)
        return -1;
    char m[300];
    snprintf(m, sizeof m, "%s/%.64s is not in the compartment of Patient/%s, the token's "
             "patient", type, id, pid);
    return forbidden(r, m);
}

int rest_authz_search(rest_req *r, srch_query *q)
{
    if (!r->ctx.principal)
        return -1;
    if (q->ninc)
        return not_yet(r, "_include or _revinclude");
    for (size_t i = 0; i < q->nc; i++)
        if (q->c[i].link != SL_NONE)
            return not_yet(r, "a chained search or _has");
    const char *pid = r->ctx.auth_patient;
    if (!pid)
        return -1;
    srch_error e = {0};
    int rc;
    if (!strcmp(q->type, "Patient")) {
        /* the patient itself (the Patient compartment of Patient is its links) */
        size_t applied = q->applied.len;
        rc = srch_add(q, r->a, "_id", pid, 0, rest_base_url(r), &e);
        if (!rc && q->applied.data) { /* the restriction is the token's, not the link's */
            q->applied.len = applied;
            q->applied.data[applied] = 0;
        }
    } else {
        rc = srch_add_compartment(q, r->a, "Patient", pid, &e);
    }
    if (rc == ERR_NOMEM)
        return rest_send_errcode(r, rc, "out of memory");
    if (rc) {
        char m[400];
        snprintf(m, sizeof m, "the token's patient/ scopes cannot be applied to this search: "
                 "%s", e.msg);
        return forbidden(r, m);
    }
    return -1;
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
    /* no built-in authorization server yet: tokens come from the configured issuer,
     * whose own discovery document names its endpoints */
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
