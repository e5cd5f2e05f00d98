/*
 * auth.h -- SMART on FHIR resource server: bearer JWTs verified against a JWKS, and
 * the SMART scopes they carry turned into rights (prefix auth_).
 *
 *   "Authorization: Bearer eyJ..."                               (jwt.c)
 *      --auth_verify--> cache hit? (SHA-256 of the token -> principal, until exp)
 *                       else: header {alg, kid} -> key of the JWKS -> signature
 *                             payload {iss, aud, exp, nbf, scope, patient, sub}
 *      --> auth_principal {rights, patient, sub, client_id, exp}
 *
 *   "patient/Observation.rs user/Patient.cruds launch openid"   (scope.c)
 *      --auth_scopes_parse--> rights [ {Observation, patient, r|s},
 *                                      {Patient, user, c|r|u|d|s} ] (other scopes: no rights)
 *   auth_view_of(principal, "Observation", AUTH_READ)
 *      --> ALL (a user/ or system/ scope for the type) | SOME {patient's compartment?,
 *          OR of granular queries} (src/rest/authz.c turns it into search clauses) |
 *          NONE | MIXED (no single restriction: refused)
 *
 * This module knows nothing of HTTP or of the store: src/rest/authz.c asks it who the
 * caller is and what the caller may do, and enforces the answer.
 *
 * Keys come from a JWKS file (RFC 7517: RSA n/e, EC P-256/P-384 x/y) read at start;
 * fetching a JWKS URL (and refetching on an unknown kid) needs an HTTP client and is
 * not done. Accepted algorithms: RS256, RS384, ES256, ES384. Refused: "none", every
 * HS* (a public key used as an HMAC secret), anything else, a kid that is not in the
 * JWKS, a key whose type, curve or "alg" does not fit the token's alg.
 */
#ifndef HORTUS_AUTH_H
#define HORTUS_AUTH_H

#include "base/id.h"
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"

#define AUTH_CLOCK_SKEW_S 60     /* exp and nbf are checked with this much leeway */
#define AUTH_MAX_TOKEN 8192      /* bytes of one bearer token */
#define AUTH_MAX_KEYS 32         /* keys of the JWKS */
#define AUTH_MAX_JWKS_BYTES (1u << 20)
#define AUTH_MAX_GRANTS 64       /* resource scopes of one token */
#define AUTH_MAX_TYPE_LEN 40     /* a resource type name in a scope */
#define AUTH_MAX_SCOPE_LEN 4096  /* bytes of the scope claim */
#define AUTH_MAX_CLAIM 256       /* bytes of sub, client_id, fhirUser */
#define AUTH_MAX_ID ID_MAX       /* the patient claim: a FHIR id (base/id.h) */
#define AUTH_CACHE_SLOTS 1024    /* verified tokens remembered (direct-mapped) */
#define AUTH_MIN_RSA_BITS 2048

/* SMART v2 permissions (v1: read = r|s, write = c|u|d, * = all). */
enum {
    AUTH_CREATE = 1,
    AUTH_READ = 2,
    AUTH_UPDATE = 4,
    AUTH_DELETE = 8,
    AUTH_SEARCH = 16,
};

/* The context of a scope: patient/ (the launch patient's compartment), user/ (what the
 * user may see; not narrowed further by hortus yet), system/ (a backend service). */
typedef enum auth_context { AUTH_CTX_PATIENT = 0, AUTH_CTX_USER, AUTH_CTX_SYSTEM } auth_context;

/* One resource scope. type is a resource type name as written, or "*". */
typedef struct auth_grant {
    char type[AUTH_MAX_TYPE_LEN + 1];
    uint8_t context; /* auth_context */
    uint8_t ops;     /* AUTH_* bits */
    uint16_t q_off;  /* granular scope: its query (after '?') is text[q_off .. q_off+q_len) */
    uint16_t q_len;  /* 0: the whole type */
} auth_grant;

typedef struct auth_rights {
    size_t n;
    auth_grant g[AUTH_MAX_GRANTS];
    char text[AUTH_MAX_SCOPE_LEN + 1]; /* the queries of granular scopes, NUL-separated */
    size_t text_len;
} auth_rights;

/* Parse a space-separated scope list s[0..n). Resource scopes (patient/, user/,
 * system/ + Type or * + .read/.write/.* or v2 letters in the order c r u d s, with an
 * optional ?query for v2) become grants; every other scope (openid, launch, fhirUser,
 * offline_access ...) is no resource right and is skipped, as is a resource scope that
 * is malformed (it grants nothing). 0, or ERR_TOOBIG (more than AUTH_MAX_GRANTS
 * resource scopes, or n over AUTH_MAX_SCOPE_LEN). */
int auth_scopes_parse(const char *s, size_t n, auth_rights *out);

/* The query of granular grant g ("category=http://...|vital-signs", NUL-terminated),
 * or NULL when g covers the whole type. Valid as long as *rights. */
const char *auth_grant_query(const auth_rights *rights, const auth_grant *g);

/* Who asks, as a verified token says. */
typedef struct auth_principal {
    int64_t exp;                       /* Unix seconds */
    char sub[AUTH_MAX_CLAIM + 1];      /* "" when absent */
    char client_id[AUTH_MAX_CLAIM + 1];
    char fhir_user[AUTH_MAX_CLAIM + 1];
    char patient[AUTH_MAX_ID + 1];     /* launch context; "" when absent */
    char purpose_of_use[AUTH_MAX_CLAIM + 1]; /* the purpose_of_use claim (a v3-ActReason
                                                code, for the audit trail); "" when absent */
    auth_rights rights;
} auth_principal;

/* Which resources of `type` p may reach with permission `op`, as one restriction: */
typedef enum auth_view_kind {
    AUTH_VIEW_NONE = 0,  /* no grant */
    AUTH_VIEW_ALL,       /* a user/ or system/ scope without a query: the whole type */
    AUTH_VIEW_SOME,      /* those matching the restriction below */
    AUTH_VIEW_MIXED,     /* grants whose union is no single restriction (patient/ scopes
                            beside granular user/ or system/ ones): not enforceable */
} auth_view_kind;

typedef struct auth_view {
    auth_view_kind kind;
    int patient;         /* SOME: within the compartment of p->patient */
    size_t nq;           /* SOME: and matching one of these granular queries (0: no query) */
    const char *q[AUTH_MAX_GRANTS]; /* "category=http://...|vital-signs", in p->rights */
} auth_view;

/* The view of p on `type` for `op`. A grant covered by a wider one is absorbed
 * (patient/Observation.rs?category=x beside patient/Observation.rs adds nothing).
 * The queries stay valid as long as *p. */
void auth_view_of(const auth_principal *p, const char *type, unsigned op, auth_view *out);

/* ---- the verifier ------------------------------------------------------------ */
typedef struct auth_server auth_server;

/* A verifier for tokens issued by `issuer` for `audience` (both compared exactly with
 * the iss and aud claims), signed by a key of the JWKS jwks[0..n). 0 and *out, or
 * ERR_INVALID (msg says what is wrong with the JWKS) / ERR_NOMEM. */
int auth_server_new(const char *jwks, size_t n, const char *issuer, const char *audience,
                    auth_server **out, char *msg, size_t msgsz);

/* As auth_server_new with the JWKS read from the file at path (ERR_IO: unreadable). */
int auth_server_load(const char *path, const char *issuer, const char *audience,
                     auth_server **out, char *msg, size_t msgsz);

void auth_server_free(auth_server *s);

/* The issuer and audience it was built with (valid until auth_server_free). */
const char *auth_server_issuer(const auth_server *s);
const char *auth_server_audience(const auth_server *s);

/* Verify the compact JWS tok[0..n) at time now_s (Unix seconds) and fill *out. A token
 * verified before and not expired comes from the cache without a signature check. 0,
 * ERR_INVALID (refused: msg says why, for the client), or ERR_NOMEM. Temporary
 * memory from a. Thread-safe. */
int auth_verify(auth_server *s, arena *a, const char *tok, size_t n, int64_t now_s,
                auth_principal *out, char *msg, size_t msgsz);

/* Cache statistics: tokens answered from the cache, signatures checked. */
void auth_cache_stats(auth_server *s, uint64_t *hits, uint64_t *verified);

#endif
