/*
 * authz.h -- authorisation in the request path (authz.c): who the caller is (a bearer
 * token verified by src/auth) and whether the interaction is within the token's SMART
 * scopes. Only active when `hortus serve` was given --auth-jwks (svc->auth); without it
 * every function here lets everything through and nothing changes.
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

struct srch_query;

/* Authenticate and authorise r (route and interaction known, headers only). Returns -1
 * to go on (r->ctx.principal and r->ctx.auth_patient set when authorisation is on), or
 * REST_DONE when a 401/403 was sent. */
int rest_authz_begin(rest_req *r);

/* For a read of type/id under
 * the request's snapshot: -1 to go on, REST_DONE when refused (403: the resource is not
 * in the token's patient compartment, whether it exists or not). */
int rest_authz_instance(rest_req *r, struct store_reader *rd, const char *type,
                        const char *id);

/* For a search of q->type with its parameters added: -1 to go on (q and every query
 * behind its chains and _has restricted to the token's view of their types, and
 * q->visible set to check what _include/_revinclude add), or REST_DONE when refused (a
 * type the token may not search, a type outside the Patient compartment under patient/
 * scopes, scopes with no single restriction, a granular query that cannot be applied).
 * q->visible refers to r: q must not outlive the request. */
int rest_authz_search(rest_req *r, struct srch_query *q);

/* GET /.well-known/smart-configuration (404 when authorisation is off). */
int rest_smart_config(rest_req *r);

/* The CapabilityStatement's rest.security JSON (a member list without braces, e.g.
 * "\"security\":{...}"), or NULL when authorisation is off. Static string. */
const char *rest_authz_security_json(const rest_req *r);

#endif
