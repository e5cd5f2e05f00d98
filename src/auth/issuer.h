/*
 * issuer.h -- the built-in authorization server of SMART Backend Services (prefix
 * auth_issuer_, issuer.c) and its registered clients (prefix auth_client_, clients.c).
 *
 *   POST /auth/token  grant_type=client_credentials & scope=... &
 *                     client_assertion_type=urn:ietf:params:oauth:client-assertion-type:
 *                     jwt-bearer & client_assertion=JWT (RS384 / ES384, signed by the
 *                     client's key; iss = sub = client_id, aud = this endpoint, exp at
 *                     most 5 min ahead, jti used once)
 *      --auth_issuer_token--> 200 {"access_token": JWT (ES256, the server's key),
 *                                   "token_type": "bearer", "expires_in", "scope"}
 *                             400 / 401 {"error": RFC 6749 code, "error_description"}
 *   GET /auth/jwks    --auth_issuer_jwks--> the server's public key
 *
 * Everything lives in the data directory, as files (not in the store, so that
 * `hortus client add` works while the server runs and with --store postgres):
 *
 *   DIR/auth-key.pem      the server's signing key (EC P-256, PKCS#8 PEM), mode 0600,
 *                         generated on first start; kid = its RFC 7638 thumbprint
 *   DIR/auth-clients.json {"clients": [{"client_id", "name", "scope", "jwks"}]},
 *                         rewritten whole (temporary file + rename) by `hortus client`;
 *                         read again by the server on every token request
 *   DIR/auth-jti.log      "EXP SHA256HEX\n" per accepted assertion (of client_id NUL
 *                         jti), appended and fsync'd before the token is answered, so a
 *                         replayed assertion is refused after a restart too; entries
 *                         whose exp has passed are dropped when the server starts
 */
#ifndef HORTUS_AUTH_ISSUER_H
#define HORTUS_AUTH_ISSUER_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"

#define AUTH_TOKEN_LIFETIME_S 300 /* issued access tokens, unless set */
#define AUTH_TOKEN_LIFETIME_MAX 3600
#define AUTH_JTI_COMPACT 4096 /* the jti log is rewritten after this many appends when most
                                 of its lines have passed */
#define AUTH_ASSERTION_MAX_S 300  /* a client assertion's exp at most this far ahead */
#define AUTH_MAX_JTIS 100000      /* assertions remembered at once (then 503) */
#define AUTH_MAX_CLIENTS 1000
#define AUTH_MAX_CLIENTS_BYTES (4u << 20)
#define AUTH_ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

typedef struct auth_issuer auth_issuer;

/* The authorization server of data directory dir, issuing tokens with iss = issuer
 * (e.g. "https://x.org") for aud = fhir_base ("https://x.org/fhir"). Loads or creates
 * dir/auth-key.pem (refused when others may read it) and loads dir/auth-jti.log. 0 and
 * *out, or ERR_IO / ERR_INVALID / ERR_NOMEM with msg. */
int auth_issuer_open(const char *dir, const char *issuer, const char *fhir_base, auth_issuer **out,
                     char *msg, size_t msgsz);
void auth_issuer_free(auth_issuer *is);

/* The lifetime of the access tokens issued from now on (1 .. AUTH_TOKEN_LIFETIME_MAX s;
 * AUTH_TOKEN_LIFETIME_S until set). Before the server starts. */
void auth_issuer_set_lifetime(auth_issuer *is, int seconds);

/* The public JWKS ({"keys":[...]}, NUL-terminated), valid until auth_issuer_free. */
const char *auth_issuer_jwks(const auth_issuer *is);
const char *auth_issuer_url(const auth_issuer *is);

/* The parameters of one token request (NULL: absent). */
typedef struct auth_token_req {
    const char *grant_type, *scope, *assertion_type, *assertion;
    const char *auds[2]; /* the URLs naming the token endpoint an assertion's aud may
                            name (as configured, as the client reached it); NULL ends */
} auth_token_req;

/* Answer a token request at now (Unix seconds): *status (200, 400, 401, 503) and the
 * JSON body in out (RFC 6749 5.1 or 5.2). 0, or ERR_NOMEM. Thread-safe. */
int auth_issuer_token(auth_issuer *is, arena *a, const auth_token_req *req, int64_t now,
                      unsigned *status, buf *out);

/* ---- registered clients (clients.c) -------------------------------------------- */
typedef struct auth_client {
    const char *client_id, *name, *scope;
    const char *jwks; /* the client's public keys, JSON text */
    size_t jwks_len;
} auth_client;

/* The client client_id of dir's registry into *out (strings in a). 0, ERR_NOTFOUND (no
 * such client, or no registry), ERR_IO / ERR_INVALID (the file cannot be read or is
 * corrupt: msg), ERR_NOMEM. */
int auth_client_find(const char *dir, arena *a, const char *client_id, auth_client *out, char *msg,
                     size_t msgsz);

/* `hortus client add|list|remove` (exit code). */
int client_main(int argc, char **argv);

#endif
