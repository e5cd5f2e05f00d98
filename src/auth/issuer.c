/*
 * issuer.c -- the token endpoint of SMART Backend Services (the contract and the files
 * are drawn in issuer.h): a client authenticates with a JWT it signed (RFC 7523
 * private_key_jwt), and gets a short-lived access token signed by the server's key.
 *
 *   form --> grant_type client_credentials?            no: 400 unsupported_grant_type
 *        --> client_assertion_type jwt-bearer, assertion? no: 400 invalid_request
 *        --> iss of the (unverified) assertion --> registered client?  no: 401
 *        --> signature with the client's JWKS, RS384 / ES384 only       no: 401
 *        --> iss = sub = client_id, aud = this endpoint, exp (<= 5 min), jti   401
 *        --> jti not seen before (remembered until exp, on disk)         no: 401
 *        --> requested scopes the registration covers (auth_scope_covers) none: 400
 *                                                                        invalid_scope
 *        --> {"access_token": ES256 JWT {iss, aud = FHIR base, sub = client_id,
 *             client_id, scope, iat, exp, jti}, "token_type": "bearer", ...}
 *
 * The server's key is EC P-256 (ES256): small tokens, fast to sign, and a key that
 * OpenSSL generates in a millisecond on first start.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/issuer.h"
#include "base/err.h"
#include "base/hash.h"
#include "json/json.h"

typedef struct jti_entry {
    int64_t exp;
    uint8_t h[HASH_SHA256_LEN];
} jti_entry;

struct auth_issuer {
    char *dir, *issuer, *fhir_base;
    EVP_PKEY *key;
    char kid[64];
    char *jwks;
    pthread_mutex_t mu; /* the jtis and their file */
    jti_entry *jtis;
    size_t njtis;
    int jti_fd;
    size_t appended; /* lines appended since the log was last rewritten */
    int lifetime_s;  /* of the access tokens issued */
};

static int failf(char *msg, size_t msgsz, int rc, const char *fmt, const char *arg)
{
    snprintf(msg, msgsz, fmt, arg);
    return rc;
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* fsync the directory holding a file just renamed into it. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* ---- the server's key ------------------------------------------------------------ */

static int new_key(const char *path, const char *dir, char *msg, size_t msgsz)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!pk)
        return failf(msg, msgsz, ERR_INTERNAL, "cannot generate a P-256 key%s", "");
    char *tmp = malloc(strlen(path) + 5);
    if (!tmp) {
        EVP_PKEY_free(pk);
        return failf(msg, msgsz, ERR_NOMEM, "out of memory%s", "");
    }
    snprintf(tmp, strlen(path) + 5, "%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    int ok = f && PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1 && fflush(f) == 0 &&
             fsync(fd) == 0;
    if (f)
        ok = (fclose(f) == 0) && ok;
    else if (fd >= 0)
        close(fd);
    ok = ok && rename(tmp, path) == 0;
    if (!ok)
        unlink(tmp);
    else
        sync_dir(dir);
    free(tmp);
    EVP_PKEY_free(pk);
    return ok ? 0 : failf(msg, msgsz, ERR_IO, "cannot write the signing key %s", path);
}

static int load_key(auth_issuer *is, char *msg, size_t msgsz)
{
    char *path = path_in(is->dir, "auth-key.pem");
    if (!path)
        return failf(msg, msgsz, ERR_NOMEM, "out of memory%s", "");
    struct stat st;
    int rc = 0;
    if (stat(path, &st) && errno == ENOENT) {
        mkdir(is->dir, 0700);
        rc = new_key(path, is->dir, msg, msgsz);
    } else if (!stat(path, &st) && (st.st_mode & 077)) {
        snprintf(msg, msgsz,
                 "the signing key %s may be read by others (mode %03o): "
                 "chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
        rc = ERR_INVALID;
    }
    FILE *f = rc ? NULL : fopen(path, "rb");
    if (!rc && !f)
        rc = failf(msg, msgsz, ERR_IO, "cannot read the signing key %s", path);
    if (f) {
        is->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        char grp[32] = "";
        if (!is->key || !EVP_PKEY_is_a(is->key, "EC") ||
            !EVP_PKEY_get_utf8_string_param(is->key, OSSL_PKEY_PARAM_GROUP_NAME, grp, sizeof grp,
                                            NULL) ||
            (strcmp(grp, "prime256v1") && strcmp(grp, "P-256")))
            rc = failf(msg, msgsz, ERR_INVALID,
                       "the signing key %s is not an EC P-256 "
                       "private key in PEM",
                       path);
    }
    free(path);
    return rc;
}

/* The public JWK members and the RFC 7638 thumbprint (the kid). */
static int make_jwks(auth_issuer *is, char *msg, size_t msgsz)
{
    BIGNUM *x = NULL, *y = NULL;
    uint8_t xb[32], yb[32];
    char x64[48], y64[48];
    if (!EVP_PKEY_get_bn_param(is->key, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
        !EVP_PKEY_get_bn_param(is->key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) ||
        BN_bn2binpad(x, xb, 32) != 32 || BN_bn2binpad(y, yb, 32) != 32) {
        BN_free(x);
        BN_free(y);
        return failf(msg, msgsz, ERR_INTERNAL, "cannot read the signing key's point%s", "");
    }
    BN_free(x);
    BN_free(y);
    x64[hash_b64url(xb, 32, x64)] = 0;
    y64[hash_b64url(yb, 32, y64)] = 0;
    char canon[200];
    int cn = snprintf(canon, sizeof canon,
                      "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\","
                      "\"y\":\"%s\"}",
                      x64, y64);
    uint8_t h[HASH_SHA256_LEN];
    if (hash_sha256(canon, (size_t)cn, h))
        return failf(msg, msgsz, ERR_NOMEM, "out of memory%s", "");
    is->kid[hash_b64url(h, sizeof h, is->kid)] = 0;
    size_t n = 300;
    is->jwks = malloc(n);
    if (!is->jwks)
        return failf(msg, msgsz, ERR_NOMEM, "out of memory%s", "");
    snprintf(is->jwks, n,
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"use\":\"sig\","
             "\"alg\":\"ES256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             is->kid, x64, y64);
    return 0;
}

/* ---- jtis ------------------------------------------------------------------------ */

static void jti_hash(const char *client_id, const char *jti, uint8_t h[HASH_SHA256_LEN])
{
    size_t a = strlen(client_id), b = strlen(jti);
    char *t = malloc(a + b + 1);
    if (!t) {
        memset(h, 0, HASH_SHA256_LEN);
        return;
    }
    memcpy(t, client_id, a);
    t[a] = 0; /* client_id NUL jti: no two pairs share a text */
    memcpy(t + a + 1, jti, b);
    hash_sha256(t, a + b + 1, h);
    free(t);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Replace the log by the live entries held (temporary file, fsync, rename) and open
 * it for appending. 0 or ERR_IO (the old log and fd are kept then). */
static int rewrite_jtis(auth_issuer *is)
{
    char *path = path_in(is->dir, "auth-jti.log");
    char *tmp = path_in(is->dir, "auth-jti.log.tmp");
    FILE *w = path && tmp ? fopen(tmp, "w") : NULL;
    int ok = w != NULL;
    for (size_t i = 0; ok && i < is->njtis; i++) {
        char hex[2 * HASH_SHA256_LEN + 1];
        hash_hex(is->jtis[i].h, HASH_SHA256_LEN, hex);
        ok = fprintf(w, "%lld %s\n", (long long)is->jtis[i].exp, hex) > 0;
    }
    if (w) {
        ok = ok && fflush(w) == 0 && fsync(fileno(w)) == 0;
        ok = (fclose(w) == 0) && ok;
    }
    int fd = -1;
    if (ok && !rename(tmp, path)) {
        sync_dir(is->dir);
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    } else if (tmp) {
        unlink(tmp);
    }
    free(path);
    free(tmp);
    if (fd < 0)
        return ERR_IO;
    if (is->jti_fd >= 0)
        close(is->jti_fd);
    is->jti_fd = fd;
    is->appended = 0;
    return 0;
}

/* Read the log, keep the live entries, rewrite it compacted, open it for appending. */
static int load_jtis(auth_issuer *is, int64_t now, char *msg, size_t msgsz)
{
    char *path = path_in(is->dir, "auth-jti.log");
    char *tmp = path_in(is->dir, "auth-jti.log.tmp");
    int rc = 0;
    if (!path || !tmp) {
        rc = failf(msg, msgsz, ERR_NOMEM, "out of memory%s", "");
        goto out;
    }
    is->jtis = calloc(AUTH_MAX_JTIS, sizeof *is->jtis);
    if (!is->jtis) {
        rc = failf(msg, msgsz, ERR_NOMEM, "out of memory%s", "");
        goto out;
    }
    FILE *f = fopen(path, "r");
    char line[128];
    while (f && fgets(line, sizeof line, f)) {
        char *sp = strchr(line, ' ');
        if (!sp || strlen(sp + 1) < 2 * HASH_SHA256_LEN)
            continue; /* a torn last line: its token was never answered */
        char *end;
        long long exp = strtoll(line, &end, 10);
        if (end != sp || exp + AUTH_CLOCK_SKEW_S <= now || is->njtis == AUTH_MAX_JTIS)
            continue;
        jti_entry *e = &is->jtis[is->njtis];
        int ok = 1;
        for (size_t i = 0; i < HASH_SHA256_LEN && ok; i++) {
            int hi = hexval(sp[1 + 2 * i]), lo = hexval(sp[2 + 2 * i]);
            ok = hi >= 0 && lo >= 0;
            e->h[i] = (uint8_t)(hi << 4 | lo);
        }
        if (ok) {
            e->exp = exp;
            is->njtis++;
        }
    }
    if (f)
        fclose(f);
    if (rewrite_jtis(is))
        rc = failf(msg, msgsz, ERR_IO, "cannot write %s", path);
out:
    free(path);
    free(tmp);
    return rc;
}

/* Remember an assertion's jti until exp. 0, ERR_EXISTS (seen: a replay), ERR_TOOBIG
 * (AUTH_MAX_JTIS live ones), ERR_IO (not stored: the token must not be issued). */
static int jti_use(auth_issuer *is, const char *client_id, const char *jti, int64_t exp,
                   int64_t now)
{
    uint8_t h[HASH_SHA256_LEN];
    jti_hash(client_id, jti, h);
    pthread_mutex_lock(&is->mu);
    size_t live = 0;
    int seen = 0;
    for (size_t i = 0; i < is->njtis; i++) {
        if (is->jtis[i].exp + AUTH_CLOCK_SKEW_S <= now)
            continue; /* passed: dropped */
        if (!memcmp(is->jtis[i].h, h, sizeof h))
            seen = 1;
        is->jtis[live++] = is->jtis[i];
    }
    is->njtis = live;
    int rc = 0;
    if (seen) {
        rc = ERR_EXISTS;
    } else if (is->njtis == AUTH_MAX_JTIS) {
        rc = ERR_TOOBIG;
    } else {
        char line[128], hex[2 * HASH_SHA256_LEN + 1];
        hash_hex(h, sizeof h, hex);
        int n = snprintf(line, sizeof line, "%lld %s\n", (long long)exp, hex);
        if (write(is->jti_fd, line, (size_t)n) != n || fdatasync(is->jti_fd)) {
            rc = ERR_IO;
        } else {
            is->jtis[is->njtis].exp = exp;
            memcpy(is->jtis[is->njtis].h, h, sizeof h);
            is->njtis++;
            /* mostly passed entries: compact (a failure keeps appending to the old) */
            if (++is->appended > AUTH_JTI_COMPACT && is->appended > 4 * is->njtis)
                (void)rewrite_jtis(is);
        }
    }
    pthread_mutex_unlock(&is->mu);
    return rc;
}

/* ---- open / free ------------------------------------------------------------------- */

int auth_issuer_open(const char *dir, const char *issuer, const char *fhir_base, auth_issuer **out,
                     char *msg, size_t msgsz)
{
    auth_issuer *is = calloc(1, sizeof *is);
    if (!is)
        return failf(msg, msgsz, ERR_NOMEM, "out of memory%s", "");
    pthread_mutex_init(&is->mu, NULL);
    is->jti_fd = -1;
    is->lifetime_s = AUTH_TOKEN_LIFETIME_S;
    is->dir = strdup(dir);
    is->issuer = strdup(issuer);
    is->fhir_base = strdup(fhir_base);
    int rc;
    if (!is->dir || !is->issuer || !is->fhir_base)
        rc = failf(msg, msgsz, ERR_NOMEM, "out of memory%s", "");
    else if (!(rc = load_key(is, msg, msgsz)) && !(rc = make_jwks(is, msg, msgsz)))
        rc = load_jtis(is, (int64_t)time(NULL), msg, msgsz);
    if (rc) {
        auth_issuer_free(is);
        return rc;
    }
    *out = is;
    return 0;
}

void auth_issuer_free(auth_issuer *is)
{
    if (!is)
        return;
    if (is->jti_fd >= 0)
        close(is->jti_fd);
    EVP_PKEY_free(is->key);
    pthread_mutex_destroy(&is->mu);
    free(is->jtis);
    free(is->jwks);
    free(is->dir);
    free(is->issuer);
    free(is->fhir_base);
    free(is);
}

void auth_issuer_set_lifetime(auth_issuer *is, int seconds)
{
    if (seconds >= 1 && seconds <= AUTH_TOKEN_LIFETIME_MAX)
        is->lifetime_s = seconds;
}

const char *auth_issuer_jwks(const auth_issuer *is)
{
    return is->jwks;
}

const char *auth_issuer_url(const auth_issuer *is)
{
    return is->issuer;
}

/* ---- the token endpoint ------------------------------------------------------------- */

static int oauth_error(unsigned *status, unsigned code, buf *out, const char *error,
                       const char *desc)
{
    jw w;
    jw_init(&w, out, 0);
    jw_obj(&w);
    jw_key(&w, "error");
    jw_str(&w, error);
    jw_key(&w, "error_description");
    jw_str(&w, desc);
    jw_end(&w);
    *status = code;
    return out->err ? ERR_NOMEM : 0;
}

/* Sign header.payload with the server's key: the compact JWS in out. */
static int sign_jws(auth_issuer *is, arena *a, const char *header, const char *payload, buf *out)
{
    size_t hl = strlen(header), pl = strlen(payload);
    char *si = arena_alloc(a, (hl + pl) * 4 / 3 + 16);
    if (!si)
        return ERR_NOMEM;
    size_t n = hash_b64url((const uint8_t *)header, hl, si);
    si[n++] = '.';
    n += hash_b64url((const uint8_t *)payload, pl, si + n);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t der[128];
    size_t dl = sizeof der;
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, is->key) == 1 &&
             EVP_DigestSign(ctx, der, &dl, (const uint8_t *)si, n) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return ERR_INTERNAL;
    const uint8_t *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
    uint8_t rs[64];
    ok = es && BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32) == 32 &&
         BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32) == 32;
    ECDSA_SIG_free(es);
    if (!ok)
        return ERR_INTERNAL;
    char sig[100];
    size_t sl = hash_b64url(rs, sizeof rs, sig);
    buf_put(out, si, n);
    buf_put(out, ".", 1);
    buf_put(out, sig, sl);
    return out->err ? ERR_NOMEM : 0;
}

static int aud_names(const json_val *aud, const char *const *auds)
{
    for (size_t k = 0; k < 2 && auds[k]; k++) {
        if (aud && aud->type == JSON_STRING && !strcmp(aud->u.s, auds[k]))
            return 1;
        for (uint32_t i = 0; aud && aud->type == JSON_ARRAY && i < aud->n; i++)
            if (aud->u.items[i].type == JSON_STRING && !strcmp(aud->u.items[i].u.s, auds[k]))
                return 1;
    }
    return 0;
}

/* A whole-second number claim; -1 when absent or not one. */
static int num_claim(const json_val *v, int64_t *out)
{
    if (!v || v->type != JSON_NUMBER || v->n == 0 || v->n > 15)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (v->u.s[i] == '.')
            break; /* a fraction is cut off */
        if (v->u.s[i] < '0' || v->u.s[i] > '9')
            return -1;
        x = x * 10 + (v->u.s[i] - '0');
    }
    *out = x;
    return 0;
}

/* The requested scopes the registration covers, space-separated, in a ("" for none). */
static char *grant_scopes(arena *a, const char *registered, const char *requested)
{
    size_t rn = strlen(requested);
    char *out = arena_alloc(a, rn + 1);
    if (!out)
        return NULL;
    size_t on = 0;
    for (const char *p = requested; *p;) {
        while (*p == ' ')
            p++;
        const char *b = p;
        while (*p && *p != ' ')
            p++;
        if (p == b)
            break;
        int ok = 0;
        for (const char *q = registered; *q && !ok;) {
            while (*q == ' ')
                q++;
            const char *c = q;
            while (*q && *q != ' ')
                q++;
            if (q > c)
                ok = auth_scope_covers(c, (size_t)(q - c), b, (size_t)(p - b));
        }
        if (ok) {
            if (on)
                out[on++] = ' ';
            memcpy(out + on, b, (size_t)(p - b));
            on += (size_t)(p - b);
        }
    }
    out[on] = 0;
    return out;
}

#define DENY(...)                                                                                  \
    do {                                                                                           \
        snprintf(why, sizeof why, __VA_ARGS__);                                                    \
        return oauth_error(status, 401, out, "invalid_client", why);                               \
    } while (0)

int auth_issuer_token(auth_issuer *is, arena *a, const auth_token_req *req, int64_t now,
                      unsigned *status, buf *out)
{
    char why[700];
    if (!req->grant_type)
        return oauth_error(status, 400, out, "invalid_request", "grant_type is required");
    if (strcmp(req->grant_type, "client_credentials"))
        return oauth_error(status, 400, out, "unsupported_grant_type",
                           "only grant_type=client_credentials is supported");
    if (!req->assertion_type || strcmp(req->assertion_type, AUTH_ASSERTION_TYPE))
        return oauth_error(status, 400, out, "invalid_request",
                           "client_assertion_type must be " AUTH_ASSERTION_TYPE);
    if (!req->assertion || !*req->assertion)
        return oauth_error(status, 400, out, "invalid_request", "client_assertion is required");
    size_t an = strlen(req->assertion);
    if (an > AUTH_MAX_TOKEN)
        return oauth_error(status, 400, out, "invalid_request", "client_assertion is too long");
    json_val *peek = auth_jws_peek(a, req->assertion, an);
    const char *client_id = peek ? json_get_str(peek, "iss") : NULL;
    if (!client_id || !*client_id)
        DENY("the client assertion is no JWS whose payload names its client (iss)");
    auth_client cl;
    char msg[300];
    int rc = auth_client_find(is->dir, a, client_id, &cl, msg, sizeof msg);
    if (rc == ERR_NOMEM)
        return rc;
    if (rc == ERR_NOTFOUND)
        DENY("unknown client '%.100s'", client_id);
    if (rc) {
        fprintf(stderr, "hortus: the client registry: %s\n", msg);
        return oauth_error(status, 503, out, "temporarily_unavailable",
                           "the client registry cannot be read");
    }
    auth_keyset *ks = NULL;
    if ((rc = auth_keyset_parse(cl.jwks, cl.jwks_len, &ks, msg, sizeof msg)))
        DENY("the registered keys of client '%.100s' are not usable: %.200s", client_id, msg);
    json_val *pl = NULL;
    rc = auth_jws_verify(ks, a, req->assertion, an, AUTH_ALG_RS384 | AUTH_ALG_ES384, &pl, msg,
                         sizeof msg);
    auth_keyset_release(ks);
    if (rc == ERR_NOMEM)
        return rc;
    if (rc)
        DENY("client assertion refused: %.300s", msg);
    const char *sub = json_get_str(pl, "sub");
    if (!sub || strcmp(sub, client_id))
        DENY("the client assertion's sub must be its iss, the client_id");
    if (!aud_names(json_get(pl, "aud"), req->auds))
        DENY("the client assertion's aud must name the token endpoint %.200s", req->auds[0]);
    int64_t exp, nbf;
    if (num_claim(json_get(pl, "exp"), &exp))
        DENY("the client assertion has no valid exp");
    if (now >= exp + AUTH_CLOCK_SKEW_S)
        DENY("the client assertion has expired");
    if (exp > now + AUTH_ASSERTION_MAX_S + AUTH_CLOCK_SKEW_S)
        DENY("the client assertion's exp is more than %d s ahead", AUTH_ASSERTION_MAX_S);
    const json_val *nv = json_get(pl, "nbf");
    if (nv && (num_claim(nv, &nbf) || nbf > now + AUTH_CLOCK_SKEW_S))
        DENY("the client assertion is not valid yet (nbf)");
    const char *jti = json_get_str(pl, "jti");
    if (!jti || !*jti || strlen(jti) > AUTH_MAX_CLAIM)
        DENY("the client assertion needs a jti (1-%d bytes)", AUTH_MAX_CLAIM);
    rc = jti_use(is, client_id, jti, exp, now);
    if (rc == ERR_EXISTS)
        DENY("the client assertion was used before (jti '%.100s')", jti);
    if (rc) {
        if (rc == ERR_IO)
            fprintf(stderr, "hortus: cannot record a jti in auth-jti.log: %s\n", strerror(errno));
        return oauth_error(status, 503, out, "temporarily_unavailable",
                           rc == ERR_TOOBIG ? "too many client assertions in their lifetime"
                                            : "the assertion cannot be recorded");
    }
    if (!req->scope || !*req->scope)
        return oauth_error(status, 400, out, "invalid_scope", "scope is required");
    if (strlen(req->scope) > AUTH_MAX_SCOPE_LEN)
        return oauth_error(status, 400, out, "invalid_scope", "scope is too long");
    char *granted = grant_scopes(a, cl.scope, req->scope);
    if (!granted)
        return ERR_NOMEM;
    if (!*granted) {
        snprintf(why, sizeof why,
                 "none of the requested scopes is granted to client "
                 "'%.100s' (registered: %.300s)",
                 client_id, cl.scope);
        return oauth_error(status, 400, out, "invalid_scope", why);
    }
    /* the access token */
    uint8_t rnd[16];
    char tjti[32];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return ERR_INTERNAL;
    tjti[hash_b64url(rnd, sizeof rnd, tjti)] = 0;
    buf hb = BUF_INIT, pb = BUF_INIT;
    jw w;
    jw_init(&w, &hb, 0);
    jw_obj(&w);
    jw_key(&w, "alg");
    jw_str(&w, "ES256");
    jw_key(&w, "kid");
    jw_str(&w, is->kid);
    jw_key(&w, "typ");
    jw_str(&w, "JWT");
    jw_end(&w);
    buf_put(&hb, "", 1);
    jw_init(&w, &pb, 0);
    jw_obj(&w);
    jw_key(&w, "iss");
    jw_str(&w, is->issuer);
    jw_key(&w, "aud");
    jw_str(&w, is->fhir_base);
    jw_key(&w, "sub");
    jw_str(&w, client_id);
    jw_key(&w, "client_id");
    jw_str(&w, client_id);
    jw_key(&w, "scope");
    jw_str(&w, granted);
    jw_key(&w, "iat");
    jw_int(&w, now);
    jw_key(&w, "exp");
    jw_int(&w, now + is->lifetime_s);
    jw_key(&w, "jti");
    jw_str(&w, tjti);
    jw_end(&w);
    buf_put(&pb, "", 1);
    buf tok = BUF_INIT;
    rc = hb.err || pb.err ? ERR_NOMEM : sign_jws(is, a, hb.data, pb.data, &tok);
    buf_free(&hb);
    buf_free(&pb);
    if (!rc) {
        jw_init(&w, out, 0);
        jw_obj(&w);
        jw_key(&w, "access_token");
        jw_strn(&w, tok.data, tok.len);
        jw_key(&w, "token_type");
        jw_str(&w, "bearer");
        jw_key(&w, "expires_in");
        jw_int(&w, is->lifetime_s);
        jw_key(&w, "scope");
        jw_str(&w, granted);
        jw_end(&w);
        rc = out->err ? ERR_NOMEM : 0;
        *status = 200;
    }
    buf_free(&tok);
    return rc;
}
