/*
 * route.h -- what a request is: its method, the shape of its path, and the FHIR
 * interaction that pair names (router.c). Pure functions, no I/O: the server
 * routes every request through them and tests/unit/rest.c checks them alone.
 *
 *   "/fhir/Patient/123/_history/2"  --rest_route_parse-->  RR_VERSION {Patient, 123, 2}
 *   (RR_VERSION, GET)               --rest_classify----->  RI_VREAD
 *   (RR_VERSION, POST)              --rest_classify----->  405, Allow: GET, HEAD
 */
#ifndef HORTUS_REST_ROUTE_H
#define HORTUS_REST_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "fhir/model.h"

/* ---- interactions (also the label of /metrics) ---------------------------- */
typedef enum rest_interaction {
    RI_READ = 0,
    RI_VREAD,
    RI_CREATE,
    RI_UPDATE,
    RI_DELETE,
    RI_PATCH,
    RI_HISTORY_INSTANCE,
    RI_HISTORY_TYPE,
    RI_HISTORY_SYSTEM,
    RI_SEARCH_TYPE,
    RI_SEARCH_SYSTEM,
    RI_BATCH,
    RI_OPERATION,
    RI_CAPABILITIES,
    RI_HEALTH,
    RI_METRICS,
    RI_AUTH,  /* the built-in authorization server: /auth/token, /auth/jwks */
    RI_OTHER, /* unroutable requests: 404/405 */
    RI__COUNT
} rest_interaction;

/* Static name of an interaction ("read", "vread" ...; "other" when out of range). */
const char *rest_interaction_name(rest_interaction i);

typedef enum rest_method {
    RM_GET = 0,
    RM_HEAD,
    RM_POST,
    RM_PUT,
    RM_DELETE,
    RM_PATCH,
    RM_OPTIONS,
    RM_OTHER
} rest_method;

rest_method rest_method_parse(const char *m);

typedef enum rest_route_kind {
    RR_NONE = 0,     /* not under the FHIR base, nor an operational endpoint */
    RR_HEALTH,       /* /healthz */
    RR_METRICS,      /* /metrics */
    RR_BASE,         /* [base] and [base]/ */
    RR_METADATA,     /* [base]/metadata */
    RR_SYS_HISTORY,  /* [base]/_history */
    RR_TYPE,         /* [base]/Type */
    RR_TYPE_HISTORY, /* [base]/Type/_history */
    RR_TYPE_SEARCH,  /* [base]/Type/_search (POST, form body) */
    RR_INSTANCE,     /* [base]/Type/id */
    RR_INST_HISTORY, /* [base]/Type/id/_history */
    RR_VERSION,      /* [base]/Type/id/_history/vid */
    RR_COMPARTMENT,  /* [base]/CompType/id/Type: search in a compartment (type = Type) */
    RR_OPERATION,    /* [base]/$op, [base]/Type/$op, [base]/Type/id/$op */
    RR_UNKNOWN_TYPE, /* [base]/Word... where Word is not a resource type: 404 */
    RR_BAD,          /* under [base] but of no known shape: 404 */
    RR_SMART_CONFIG, /* /.well-known/smart-configuration and [base]/.well-known/... (404
                        while authorisation is off, as before it existed) */
    RR_UNKNOWN_TENANT, /* /fhir/name/... where name is no registered tenant: 404 (set by
                          rest_req_begin, which looks the name up) */
    RR_AUTH_TOKEN,   /* /auth/token (POST, form body): the built-in authorization server */
    RR_AUTH_JWKS,    /* /auth/jwks: its public key (both 404 unless --auth-server) */
} rest_route_kind;

typedef struct rest_route {
    rest_route_kind kind;
    const char *tenant; /* /fhir/NAME/...: the tenant segment (NUL-terminated; a name's
                           shape, tenant_segment, not yet looked up), else NULL */
    size_t tenant_len;
    const fhir_type *type; /* resource type for RR_TYPE and below */
    const char *type_name; /* the path segment as sent (for messages); NUL-terminated */
    const char *id;        /* RR_INSTANCE and below; NUL-terminated, not yet validated */
    size_t id_len;
    const char *vid; /* RR_VERSION; NUL-terminated, not yet validated */
    size_t vid_len;
    const char *op; /* RR_OPERATION: the name without '$' (type/id NULL when absent) */
    const fhir_type *comp_type; /* RR_COMPARTMENT: the compartment's type; id is its id */
} rest_route;

/* Split `path` (decoded URL path, no query) into a route. A first segment with the
 * shape of a tenant name (lower case, auth/tenant.h; no resource type is) is taken
 * off as route.tenant and the rest parsed as under the default base, so
 * /fhir/acme/Patient/1 is RR_INSTANCE {tenant acme, Patient, 1}. Strings point into
 * copies in `a`; valid until the arena is reset. Returns 0 or ERR_NOMEM. */
int rest_route_parse(arena *a, const char *path, rest_route *out);

/* The interaction that `method` names on a route of `kind` (HEAD counts as GET).
 * Returns 0 with *ri set; 1 when the route exists but does not take the method
 * (*ri = RI_OTHER, *allow = the Allow header of the 405). Routes that are no
 * interaction at all (RR_NONE, RR_UNKNOWN_TYPE, RR_BAD) give 0 and RI_OTHER, with
 * *allow NULL: the 404 paths. *allow is a static string or NULL. */
int rest_classify(rest_route_kind kind, rest_method method, rest_interaction *ri,
                  const char **allow);

/* 1 when id is a valid FHIR logical id: 1..64 chars of [A-Za-z0-9-.]. */
int rest_id_valid(const char *id, size_t n);

/* Parse a versionId (decimal, 1..2^63); 0 on success, ERR_INVALID otherwise. */
int rest_vid_parse(const char *s, size_t n, uint64_t *out);

#endif
