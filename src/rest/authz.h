/*
 * authz.h -- authorisation in the request path (authz.c): who the caller is (a bearer
 * token verified by src/auth) and whether the interaction is within the token's SMART
 * scopes. Only active when `hortus serve` was given --auth-jwks, --auth-introspect or
 * --auth-server (svc->auth); without them every function here lets everything through
 * and nothing changes. rest_auth_endpoint serves the built-in authorization server
 * (svc->issuer) when there is one.
 *
 *   precheck (server.c) --rest_authz_begin--> 401 no/invalid token
 *                                             403 scope does not grant the interaction,
 *                                                 or an interaction not enforced yet
 *                                             else r->ctx.principal (+ auth_patient)
 *   read                  --rest_authz_instance--> 403 outside the token's restriction
 *   search                --rest_authz_search----> the restriction's clauses added to the
 *                                                  query and those behind its links,
 *                                                  includes checked one by one; or 403
 *
 * docs/AUTH.md lists what is enforced and what is refused for now.
 */
#ifndef HORTUS_REST_AUTHZ_H
#define HORTUS_REST_AUTHZ_H

#include "rest/request.h"
#include "store/store.h"

struct srch_query;

/* Authenticate and authorise r (route and interaction known, headers only). Returns -1
 * to go on (r->ctx.principal and r->ctx.auth_patient set when authorisation is on), or
 * REST_DONE when a 401/403 was sent. */
int rest_authz_begin(rest_req *r);

/* What rest_authz_decide answers. */
enum {
    REST_AUTHZ_ALL = 0,   /* go on: the whole type (or no authorisation configured) */
    REST_AUTHZ_SOME,      /* go on within a restriction: a read is checked with
                             rest_authz_instance, a search restricted by rest_authz_search */
    REST_AUTHZ_FORBIDDEN, /* refused: outside the token's scopes (msg says why) */
    REST_AUTHZ_NOT_YET,   /* refused: not enforced with authorisation yet (msg) */
};

/* Whether the token of r allows interaction ri on type (NULL for system-wide ones),
 * before any data is read; conditional: the write names a search (If-None-Exist,
 * Type?query), which needs search on the whole type as well. Used for the request and
 * for each entry of a batch or transaction. A REST_AUTHZ_* code; msg[0..msz) filled
 * when refused. */
int rest_authz_decide(rest_req *r, rest_interaction ri, const char *type, int conditional,
                      char *msg, size_t msz);

/* 1 when a search of type by the server on the token's behalf (a condition, a
 * conditional reference of a transaction) reveals nothing: the token may search all of
 * it. 0 with msg filled when not. */
int rest_authz_may_probe(rest_req *r, const char *type, char *msg, size_t msz);

/* 1 when the token may read only part of type (patient/ or granular scopes, or
 * patient-privacy Consents withhold some of it; type NULL: of some type): its reads are
 * then checked resource by resource, version by version. 0 without authorisation. */
int rest_authz_restricted(rest_req *r, const char *type);

/* For a version about to be shown (vread, instance history): 1 when its content is
 * within the token's rights as it stands (a restriction is checked on the version
 * itself: an older version may have been another patient's), 0 when not (and for a
 * deletion under a restriction), ERR_NOMEM. 1 without authorisation. */
int rest_authz_version(rest_req *r, const store_version *v);

/* The write pipeline's checks (write.c), on a rest_ctx because entries of a Bundle and
 * retried plans have no request of their own. op is AUTH_CREATE, AUTH_UPDATE or
 * AUTH_DELETE (auth/auth.h).
 * rest_authz_write_restricted: 1 when the token may write only part of type (patient/
 * or granular scopes), so each write must be checked; 0 without authorisation.
 * rest_authz_content_within: 1 when the resource stored as bytes[0..len) (of type) is
 * within the token's rights for op, 0 when not (also: no content, a restriction that
 * cannot be applied), ERR_NOMEM. */
int rest_authz_write_restricted(const rest_ctx *cx, const char *type, unsigned op);
int rest_authz_content_within(const rest_ctx *cx, arena *a, const char *type, unsigned op,
                              const void *bytes, size_t len);

/* For a read of type/id under
 * the request's snapshot: -1 to go on, REST_DONE when refused (403: the resource is not
 * in the token's patient compartment, whether it exists or not). */
int rest_authz_instance(rest_req *r, struct store_reader *rd, const char *type,
                        const char *id);

/* For $validate of type (id: the instance named in the URL, or NULL) in mode "create",
 * "update" or "delete": the token needs the permission that write would need (c, u, d)
 * on type; a delete also the current resource within its rights (checked in rd; 403
 * whether it exists or not). -1 to go on, REST_DONE when refused. */
int rest_authz_validate(rest_req *r, struct store_reader *rd, const char *type,
                        const char *id, const char *mode);

/* For referential integrity under authorisation: whether a reference of a write may
 * name type/id. rest_authz_ref_restricted: 1 when the token does not read all of type
 * (the check then answers alike for a target that does not exist, is deleted or lies
 * outside its rights, so a write cannot probe existence); rest_authz_ref_within: 1
 * when type/id (current in rd) is within its read rights (Consents are not applied:
 * they govern access, not writes), 0 when not, <0 an error. Without authorisation 0
 * and 1. */
int rest_authz_ref_restricted(const rest_ctx *cx, const char *type);
int rest_authz_ref_within(const rest_ctx *cx, arena *a, struct store_reader *rd,
                          const char *type, const char *id);

/* 1 when type/id (current in rd) is within the token's rights for a read (search:
 * for a search), 0 when not (whether it exists or not), <0 an error. 1 without
 * authorisation. */
int rest_authz_visible(rest_req *r, struct store_reader *rd, const char *type, const char *id,
                       int search);

/* For a search of q->type with its parameters added: -1 to go on (q and every query
 * behind its chains and _has restricted to the token's view of their types, and
 * q->visible set to check what _include/_revinclude add), or REST_DONE when refused (a
 * type the token may not search, a type outside the Patient compartment under patient/
 * scopes, scopes with no single restriction, a granular query that cannot be applied).
 * q->visible refers to r: q must not outlive the request. */
int rest_authz_search(rest_req *r, struct srch_query *q);

/* rest_authz_search without sending: REST_AUTHZ_ALL (no authorisation), REST_AUTHZ_SOME
 * (q restricted), REST_AUTHZ_FORBIDDEN / REST_AUTHZ_NOT_YET with msg, or ERR_NOMEM. */
int rest_authz_restrict(rest_req *r, struct srch_query *q, char *msg, size_t msz);

/* Let q's includes add only what the token may see (q->visible; nothing without
 * authorisation), for includes a query makes without rest_authz_restrict. */
void rest_authz_includes(rest_req *r, struct srch_query *q);

/* The built-in authorization server (src/auth/issuer.h): POST /auth/token and GET
 * /auth/jwks; 404 unless `serve --auth-server`. */
int rest_auth_endpoint(rest_req *r);

/* GET /.well-known/smart-configuration (404 when authorisation is off). */
int rest_smart_config(rest_req *r);

/* The CapabilityStatement's rest.security JSON (a member list without braces, e.g.
 * "\"security\":{...}"), or NULL when authorisation is off. Static string. */
const char *rest_authz_security_json(const rest_req *r);

#endif
