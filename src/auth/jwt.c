/*
 * jwt.c -- bearer tokens: JWS compact serialisation (RFC 7515) verified with OpenSSL
 * EVP against the keys of a JWKS (RFC 7517), claims checked (RFC 7519), and a cache
 * of verified tokens so a signature is checked once per token.
 *
 *   BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature)
 *   `---------------- signing input ------------'
 *
 *   header  {"alg":"RS256"|"RS384"|"ES256"|"ES384", "kid":"..."}  (kid required)
 *   payload {"iss", "aud" (string or array), "exp" (required), "nbf", "scope",
 *            "patient", "sub", "client_id", "fhirUser", "purpose_of_use"}
 *
 * ECDSA signatures arrive in JOSE form, r || s as fixed-width big-endian integers (32
 * bytes each for P-256, 48 for P-384); OpenSSL verifies DER, so they are re-encoded.
 *
 * Keys live in a reference-counted auth_keyset: a JWKS URL refetched on an unknown kid
 * swaps in a new set under the mutex while requests still verifying with the old one
 * keep their reference. A refetch happens at most once per AUTH_JWKS_REFETCH_S (a flood
 * of made-up kids costs the identity provider one request a minute), and a fetch that
 * fails or brings a bad JWKS keeps the keys held.
 *
 * Introspection (RFC 7662): a token that is no JWS, or any token when there are no keys,
 * is POSTed to the endpoint; an active answer becomes a principal (scope, exp, patient,
 * fhirUser, client_id, sub) cached like a verified token, until the earlier of its exp
 * and AUTH_INTROSPECT_CACHE_S from now.
 *
 * The cache is direct-mapped: slot = first bytes of SHA-256(token) mod
 * AUTH_CACHE_SLOTS, holding the whole hash (compared in full) and the principal. A
 * colliding token replaces the slot; an expired entry is refused and dropped. Only
 * tokens that passed every check are stored, so a refused token is checked again each
 * time it is sent (a refusal costs at most one signature check).
 */
#include <math.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/id.h"
#include "json/json.h"

typedef enum key_kind { KEY_RSA = 1, KEY_EC256, KEY_EC384 } key_kind;

typedef struct auth_key {
    char kid[AUTH_MAX_CLAIM + 1];
    char alg[8]; /* the JWK's "alg" or "" */
    key_kind kind;
    EVP_PKEY *pk;
} auth_key;

struct auth_keyset {
    int refs; /* atomic */
    size_t nkeys;
    auth_key keys[AUTH_MAX_KEYS];
};

typedef struct cache_slot {
    int used;
    uint8_t h[HASH_SHA256_LEN];
    uint8_t ah[HASH_SHA256_LEN]; /* of the audience it was verified for (tenants) */
    auth_principal p;
} cache_slot;

struct auth_server {
    char *issuer, *audience;
    auth_keyset *keys; /* NULL: introspection only; swapped under mu */
    char *jwks_url;    /* or NULL */
    int64_t last_refetch; /* Unix seconds of the last refetch for an unknown kid */
    uint64_t fetches;
    char *introspect_url, *introspect_client;
    pthread_mutex_t mu;
    cache_slot *cache; /* AUTH_CACHE_SLOTS */
    uint64_t hits, verified;
};

static int failf(char *msg, size_t msgsz, int rc, const char *fmt, const char *arg)
{
    snprintf(msg, msgsz, fmt, arg);
    return rc;
}

/* base64url s[0..n) into bytes in a. NULL when it is not base64url. */
static uint8_t *b64_decode(arena *a, const char *s, size_t n, size_t *len)
{
    uint8_t *out = arena_alloc(a, n * 3 / 4 + 4);
    if (!out)
        return NULL;
    long m = hash_b64url_decode(s, n, out);
    if (m < 0)
        return NULL;
    *len = (size_t)m;
    return out;
}

/* ---- JWKS ----------------------------------------------------------------------- */

static EVP_PKEY *pkey_from_params(const char *kty, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pk = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, kty, NULL);
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

static EVP_PKEY *rsa_key(arena *a, const json_val *jwk, char *msg, size_t msgsz)
{
    const char *n64 = json_get_str(jwk, "n"), *e64 = json_get_str(jwk, "e");
    size_t nl, el;
    uint8_t *nb, *eb;
    if (!n64 || !e64 || !(nb = b64_decode(a, n64, strlen(n64), &nl)) ||
        !(eb = b64_decode(a, e64, strlen(e64), &el)) || !nl || !el) {
        snprintf(msg, msgsz, "an RSA key needs n and e in base64url");
        return NULL;
    }
    BIGNUM *n = BN_bin2bn(nb, (int)nl, NULL), *e = BN_bin2bn(eb, (int)el, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;
    if (n && e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        pk = pkey_from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    if (!pk)
        snprintf(msg, msgsz, "the RSA key is not valid");
    else if (EVP_PKEY_get_bits(pk) < AUTH_MIN_RSA_BITS) {
        snprintf(msg, msgsz, "the RSA key has %d bits: at least %d are required",
                 EVP_PKEY_get_bits(pk), AUTH_MIN_RSA_BITS);
        EVP_PKEY_free(pk);
        pk = NULL;
    }
    return pk;
}

static EVP_PKEY *ec_key(arena *a, const json_val *jwk, key_kind *kind, char *msg, size_t msgsz)
{
    const char *crv = json_get_str(jwk, "crv");
    size_t w;
    const char *group;
    if (crv && !strcmp(crv, "P-256"))
        w = 32, group = "P-256", *kind = KEY_EC256;
    else if (crv && !strcmp(crv, "P-384"))
        w = 48, group = "P-384", *kind = KEY_EC384;
    else {
        snprintf(msg, msgsz, "an EC key's crv must be P-256 or P-384");
        return NULL;
    }
    const char *x64 = json_get_str(jwk, "x"), *y64 = json_get_str(jwk, "y");
    size_t xl, yl;
    uint8_t *x, *y;
    if (!x64 || !y64 || !(x = b64_decode(a, x64, strlen(x64), &xl)) ||
        !(y = b64_decode(a, y64, strlen(y64), &yl)) || xl != w || yl != w) {
        snprintf(msg, msgsz, "an EC key needs x and y of %zu bytes each in base64url", w);
        return NULL;
    }
    uint8_t point[1 + 2 * 48];
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, w);
    memcpy(point + 1 + w, y, w);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * w))
        pk = pkey_from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (!pk)
        snprintf(msg, msgsz, "the EC key is not a point of %s", group);
    return pk;
}

static int load_keys(auth_keyset *s, arena *a, const char *jwks, size_t n, char *msg,
                     size_t msgsz)
{
    json_val *root;
    json_error je;
    if (json_parse(a, jwks, n, 0, &root, &je))
        return failf(msg, msgsz, ERR_INVALID, "the JWKS is not JSON: %s", je.msg);
    json_val *keys = json_get(root, "keys");
    if (!keys || keys->type != JSON_ARRAY || !keys->n)
        return failf(msg, msgsz, ERR_INVALID, "the JWKS has no \"keys\" array%s", "");
    if (keys->n > AUTH_MAX_KEYS)
        return failf(msg, msgsz, ERR_TOOBIG, "the JWKS has more than %s keys",
                     "AUTH_MAX_KEYS (32)");
    for (uint32_t i = 0; i < keys->n; i++) {
        const json_val *jwk = &keys->u.items[i];
        const char *kty = json_get_str(jwk, "kty"), *kid = json_get_str(jwk, "kid");
        const char *use = json_get_str(jwk, "use"), *alg = json_get_str(jwk, "alg");
        char why[200] = "";
        if (!kid || !*kid || strlen(kid) > AUTH_MAX_CLAIM)
            return failf(msg, msgsz, ERR_INVALID, "every key of the JWKS needs a kid (1-256 "
                                                  "bytes)%s", "");
        for (size_t j = 0; j < s->nkeys; j++)
            if (!strcmp(s->keys[j].kid, kid))
                return failf(msg, msgsz, ERR_INVALID, "kid '%.100s' is in the JWKS twice",
                             kid);
        if (use && strcmp(use, "sig"))
            continue; /* an encryption key: never used for signatures */
        auth_key *k = &s->keys[s->nkeys];
        memset(k, 0, sizeof *k);
        if (kty && !strcmp(kty, "RSA")) {
            k->kind = KEY_RSA;
            k->pk = rsa_key(a, jwk, why, sizeof why);
        } else if (kty && !strcmp(kty, "EC")) {
            k->pk = ec_key(a, jwk, &k->kind, why, sizeof why);
        } else {
            snprintf(why, sizeof why, "kty must be RSA or EC");
        }
        if (!k->pk) {
            snprintf(msg, msgsz, "JWKS key '%.100s': %s", kid, why);
            return ERR_INVALID;
        }
        snprintf(k->kid, sizeof k->kid, "%s", kid);
        if (alg) {
            if (strlen(alg) >= sizeof k->alg) {
                EVP_PKEY_free(k->pk);
                k->pk = NULL;
                return failf(msg, msgsz, ERR_INVALID, "JWKS key '%.100s': unknown alg", kid);
            }
            snprintf(k->alg, sizeof k->alg, "%s", alg);
        }
        s->nkeys++;
    }
    if (!s->nkeys)
        return failf(msg, msgsz, ERR_INVALID, "the JWKS has no signature key%s", "");
    return 0;
}

void auth_keyset_release(auth_keyset *ks)
{
    if (!ks || __atomic_sub_fetch(&ks->refs, 1, __ATOMIC_ACQ_REL))
        return;
    for (size_t i = 0; i < ks->nkeys; i++)
        EVP_PKEY_free(ks->keys[i].pk);
    free(ks);
}

size_t auth_keyset_count(const auth_keyset *ks)
{
    return ks ? ks->nkeys : 0;
}

unsigned auth_keyset_algs(const auth_keyset *ks)
{
    unsigned m = 0;
    for (size_t i = 0; ks && i < ks->nkeys; i++) {
        const auth_key *k = &ks->keys[i];
        unsigned can = k->kind == KEY_RSA     ? AUTH_ALG_RS256 | AUTH_ALG_RS384
                       : k->kind == KEY_EC256 ? AUTH_ALG_ES256
                                              : AUTH_ALG_ES384;
        if (k->alg[0]) /* a JWK naming its alg verifies that one only */
            can &= !strcmp(k->alg, "RS256")   ? AUTH_ALG_RS256
                   : !strcmp(k->alg, "RS384") ? AUTH_ALG_RS384
                   : !strcmp(k->alg, "ES256") ? AUTH_ALG_ES256
                   : !strcmp(k->alg, "ES384") ? AUTH_ALG_ES384
                                              : 0;
        m |= can;
    }
    return m;
}

int auth_keyset_parse(const char *jwks, size_t n, auth_keyset **out, char *msg, size_t msgsz)
{
    auth_keyset *ks = calloc(1, sizeof *ks);
    arena *a = arena_new(0);
    int rc = ERR_NOMEM;
    if (!ks || !a) {
        snprintf(msg, msgsz, "out of memory");
        free(ks);
        arena_free(a);
        return rc;
    }
    ks->refs = 1;
    rc = load_keys(ks, a, jwks, n, msg, msgsz);
    arena_free(a);
    if (rc) {
        auth_keyset_release(ks);
        return rc;
    }
    *out = ks;
    return 0;
}

/* The file at path into a malloc'd buffer (at most AUTH_MAX_JWKS_BYTES). */
static int read_file(const char *path, char **text, size_t *len, char *msg, size_t msgsz)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return failf(msg, msgsz, ERR_IO, "cannot open the JWKS file %s", path);
    char *t = malloc(AUTH_MAX_JWKS_BYTES + 1);
    size_t n = t ? fread(t, 1, AUTH_MAX_JWKS_BYTES + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!t)
        return failf(msg, msgsz, ERR_NOMEM, "out of memory%s", "");
    if (bad || n > AUTH_MAX_JWKS_BYTES) {
        free(t);
        return failf(msg, msgsz, bad ? ERR_IO : ERR_TOOBIG,
                     "cannot read the JWKS file %s (at most 1 MiB)", path);
    }
    *text = t;
    *len = n;
    return 0;
}

/* Fetch and parse the JWKS URL: 0 and *out, or an error with msg. */
static int fetch_keys(auth_server *s, auth_keyset **out, char *msg, size_t msgsz)
{
    char *body = NULL;
    size_t len = 0;
    char why[300];
    __atomic_add_fetch(&s->fetches, 1, __ATOMIC_RELAXED);
    int rc = auth_http_fetch(s->jwks_url, NULL, NULL, &body, &len, why, sizeof why);
    if (rc)
        return failf(msg, msgsz, rc, "cannot fetch the JWKS: %s", why);
    rc = auth_keyset_parse(body, len, out, why, sizeof why);
    free(body);
    if (rc)
        snprintf(msg, msgsz, "the JWKS at %.200s: %s", s->jwks_url, why);
    return rc;
}

int auth_server_open(const auth_server_cfg *cfg, auth_server **out, char *msg, size_t msgsz)
{
    int nsrc = !!cfg->jwks_file + !!cfg->jwks_url + !!cfg->jwks_text;
    if (nsrc > 1)
        return failf(msg, msgsz, ERR_INVALID, "one JWKS only (a file, a URL or the built-in "
                                              "server's key)%s", "");
    if (nsrc && (!cfg->issuer || !*cfg->issuer || !cfg->audience || !*cfg->audience))
        return failf(msg, msgsz, ERR_INVALID, "an issuer and an audience are required%s", "");
    if (!nsrc && !cfg->introspect_url)
        return failf(msg, msgsz, ERR_INVALID, "a JWKS or an introspection endpoint is "
                                              "required%s", "");
    auth_server *s = calloc(1, sizeof *s);
    int rc = ERR_NOMEM;
    if (!s)
        return failf(msg, msgsz, ERR_NOMEM, "out of memory%s", "");
    pthread_mutex_init(&s->mu, NULL);
    s->issuer = strdup(cfg->issuer ? cfg->issuer : "");
    s->audience = strdup(cfg->audience ? cfg->audience : "");
    s->cache = calloc(AUTH_CACHE_SLOTS, sizeof *s->cache);
    if (!s->issuer || !s->audience || !s->cache)
        goto nomem;
    if (cfg->introspect_url) {
        s->introspect_url = strdup(cfg->introspect_url);
        s->introspect_client = cfg->introspect_client ? strdup(cfg->introspect_client) : NULL;
        if (!s->introspect_url || (cfg->introspect_client && !s->introspect_client))
            goto nomem;
    }
    if (cfg->jwks_text) {
        rc = auth_keyset_parse(cfg->jwks_text, cfg->jwks_len, &s->keys, msg, msgsz);
    } else if (cfg->jwks_file) {
        char *text;
        size_t len;
        if (!(rc = read_file(cfg->jwks_file, &text, &len, msg, msgsz))) {
            rc = auth_keyset_parse(text, len, &s->keys, msg, msgsz);
            free(text);
        }
    } else if (cfg->jwks_url) {
        if (!(s->jwks_url = strdup(cfg->jwks_url)))
            goto nomem;
        rc = fetch_keys(s, &s->keys, msg, msgsz);
    } else {
        rc = 0;
    }
    if (rc)
        goto fail;
    *out = s;
    return 0;
nomem:
    snprintf(msg, msgsz, "out of memory");
fail:
    auth_server_free(s);
    return rc;
}

int auth_server_new(const char *jwks, size_t n, const char *issuer, const char *audience,
                    auth_server **out, char *msg, size_t msgsz)
{
    auth_server_cfg cfg = {.jwks_text = jwks, .jwks_len = n, .issuer = issuer,
                           .audience = audience};
    return auth_server_open(&cfg, out, msg, msgsz);
}

int auth_server_load(const char *path, const char *issuer, const char *audience,
                     auth_server **out, char *msg, size_t msgsz)
{
    auth_server_cfg cfg = {.jwks_file = path, .issuer = issuer, .audience = audience};
    return auth_server_open(&cfg, out, msg, msgsz);
}

void auth_server_free(auth_server *s)
{
    if (!s)
        return;
    auth_keyset_release(s->keys);
    pthread_mutex_destroy(&s->mu);
    free(s->cache);
    free(s->issuer);
    free(s->audience);
    free(s->jwks_url);
    free(s->introspect_url);
    free(s->introspect_client);
    free(s);
}

uint64_t auth_jwks_fetches(auth_server *s)
{
    return __atomic_load_n(&s->fetches, __ATOMIC_RELAXED);
}

const char *auth_server_issuer(const auth_server *s)
{
    return s->issuer;
}

const char *auth_server_audience(const auth_server *s)
{
    return s->audience;
}

void auth_cache_stats(auth_server *s, uint64_t *hits, uint64_t *verified)
{
    pthread_mutex_lock(&s->mu);
    *hits = s->hits;
    *verified = s->verified;
    pthread_mutex_unlock(&s->mu);
}

/* ---- verification ------------------------------------------------------------- */

/* JOSE r||s (2 * w bytes) into DER in a. NULL on failure. */
static uint8_t *ecdsa_der(arena *a, const uint8_t *sig, size_t w, size_t *len)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)w, NULL), *s = BN_bin2bn(sig + w, (int)w, NULL);
    uint8_t *out = NULL;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        int n = i2d_ECDSA_SIG(es, NULL);
        uint8_t *p = n > 0 ? arena_alloc(a, (size_t)n) : NULL;
        if (p) {
            out = p;
            *len = (size_t)i2d_ECDSA_SIG(es, &p);
        }
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return out;
}

/* A JSON number claim as whole seconds. 0, or -1 when v is not a finite number. */
static int num_claim(arena *a, const json_val *v, int64_t *out)
{
    if (!v || v->type != JSON_NUMBER)
        return -1;
    char *t = arena_strndup(a, v->u.s, v->n);
    if (!t)
        return -1;
    char *end;
    double d = strtod(t, &end);
    if (*end || !isfinite(d) || d < 0 || d > 1e15)
        return -1;
    *out = (int64_t)floor(d);
    return 0;
}

/* A string claim into out (size cap + 1). 0 when absent (out ""), 1 when copied, -1
 * when it is no string or too long. */
static int str_claim(const json_val *payload, const char *name, char *out, size_t cap)
{
    out[0] = 0;
    const json_val *v = json_get(payload, name);
    if (!v)
        return 0;
    if (v->type != JSON_STRING || v->n >= cap || memchr(v->u.s, 0, v->n))
        return -1;
    memcpy(out, v->u.s, v->n + 1);
    return 1;
}

/* purpose_of_use: one string or an array of them, joined by spaces into out. 0 or -1. */
static int purpose_claim(const json_val *v, char *out, size_t cap)
{
    out[0] = 0;
    if (!v)
        return 0;
    const json_val *items = v->type == JSON_ARRAY ? v->u.items : v;
    uint32_t n = v->type == JSON_ARRAY ? v->n : 1;
    size_t o = 0;
    for (uint32_t i = 0; i < n; i++) {
        const json_val *s = &items[i];
        if (s->type != JSON_STRING || !s->n || memchr(s->u.s, 0, s->n) ||
            memchr(s->u.s, ' ', s->n) || o + s->n + 1 >= cap)
            return -1;
        if (o)
            out[o++] = ' ';
        memcpy(out + o, s->u.s, s->n);
        o += s->n;
    }
    out[o] = 0;
    return 0;
}

static int aud_matches(const json_val *aud, const char *want)
{
    if (!aud)
        return 0;
    if (aud->type == JSON_STRING)
        return !strcmp(aud->u.s, want);
    if (aud->type != JSON_ARRAY)
        return 0;
    for (uint32_t i = 0; i < aud->n; i++)
        if (aud->u.items[i].type == JSON_STRING && !strcmp(aud->u.items[i].u.s, want))
            return 1;
    return 0;
}


/* Decode and parse one base64url JSON object part. */
static json_val *json_part(arena *a, const char *s, size_t n)
{
    size_t len;
    uint8_t *raw = b64_decode(a, s, n, &len);
    json_val *v;
    if (!raw || json_parse(a, (const char *)raw, len, 0, &v, NULL) || v->type != JSON_OBJECT)
        return NULL;
    return v;
}

json_val *auth_jws_peek(arena *a, const char *tok, size_t n)
{
    const char *d1 = memchr(tok, '.', n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok)) : NULL;
    return d2 ? json_part(a, d1 + 1, (size_t)(d2 - d1 - 1)) : NULL;
}

#define REFUSE(...)                                                                             \
    do {                                                                                        \
        snprintf(msg, msgsz, __VA_ARGS__);                                                      \
        return ERR_INVALID;                                                                     \
    } while (0)

int auth_jws_verify(const auth_keyset *ks, arena *a, const char *tok, size_t n, unsigned algs,
                    json_val **payload, char *msg, size_t msgsz)
{
    const char *d1 = memchr(tok, '.', n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - tok)))
        REFUSE("the token is not a JWS in compact form (header.payload.signature)");
    json_val *hdr = json_part(a, tok, (size_t)(d1 - tok));
    if (!hdr)
        REFUSE("the token's header is not base64url-encoded JSON");
    const char *alg = json_get_str(hdr, "alg");
    if (!alg)
        REFUSE("the token's header has no alg");
    if (!strcmp(alg, "none"))
        REFUSE("unsigned tokens (alg none) are refused");
    static const struct {
        const char *name;
        unsigned bit;
        key_kind kind;
    } known[] = {{"RS256", AUTH_ALG_RS256, KEY_RSA},
                 {"RS384", AUTH_ALG_RS384, KEY_RSA},
                 {"ES256", AUTH_ALG_ES256, KEY_EC256},
                 {"ES384", AUTH_ALG_ES384, KEY_EC384}};
    char allowed[40] = "";
    for (size_t i = 0; i < 4; i++)
        if (algs & known[i].bit)
            snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s",
                     allowed[0] ? ", " : "", known[i].name);
    size_t ai;
    for (ai = 0; ai < 4 && strcmp(alg, known[ai].name); ai++)
        ;
    if (alg[0] == 'H' && alg[1] == 'S')
        REFUSE("symmetric signatures (%.10s) are refused: tokens must be signed with %s", alg,
               allowed);
    if (ai == 4 || !(algs & known[ai].bit))
        REFUSE("alg '%.20s' is not supported here (%s)", alg, allowed);
    key_kind want = known[ai].kind;
    const EVP_MD *md = (known[ai].bit & (AUTH_ALG_RS256 | AUTH_ALG_ES256)) ? EVP_sha256()
                                                                             : EVP_sha384();
    if (json_get(hdr, "crit"))
        REFUSE("the token's header has crit extensions, which are not supported");
    const char *kid = json_get_str(hdr, "kid");
    if (!kid)
        REFUSE("the token's header has no kid");
    const auth_key *k = NULL;
    for (size_t i = 0; ks && i < ks->nkeys && !k; i++)
        if (!strcmp(ks->keys[i].kid, kid))
            k = &ks->keys[i];
    if (!k) {
        snprintf(msg, msgsz, "unknown kid '%.80s': no key of the JWKS has it", kid);
        return ERR_NOTFOUND;
    }
    if (k->kind != want || (k->alg[0] && strcmp(k->alg, alg)))
        REFUSE("key '%.80s' cannot verify %s signatures", kid, alg);
    size_t sl;
    const uint8_t *sig = b64_decode(a, d2 + 1, n - (size_t)(d2 + 1 - tok), &sl);
    if (!sig)
        REFUSE("the token's signature is not base64url");
    if (want != KEY_RSA) {
        size_t w = want == KEY_EC256 ? 32 : 48;
        if (sl != 2 * w)
            REFUSE("an %s signature has %zu bytes, not %zu", alg, sl, 2 * w);
        if (!(sig = ecdsa_der(a, sig, w, &sl)))
            return ERR_NOMEM;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return ERR_NOMEM;
    int ok = EVP_DigestVerifyInit(ctx, NULL, md, NULL, k->pk) == 1 &&
             EVP_DigestVerify(ctx, sig, sl, (const uint8_t *)tok, (size_t)(d2 - tok)) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        REFUSE("the token's signature does not verify");
    json_val *pl = json_part(a, d1 + 1, (size_t)(d2 - d1 - 1));
    if (!pl)
        REFUSE("the token's payload is not base64url-encoded JSON");
    *payload = pl;
    return 0;
}

/* The claims every principal is made of (sub, client_id, fhirUser, patient,
 * purpose_of_use, scope),
 * from a verified payload or an introspection answer. */
static int principal_claims(const json_val *pl, auth_principal *p, char *msg, size_t msgsz)
{
    if (str_claim(pl, "sub", p->sub, sizeof p->sub) < 0 ||
        str_claim(pl, "client_id", p->client_id, sizeof p->client_id) < 0 ||
        str_claim(pl, "fhirUser", p->fhir_user, sizeof p->fhir_user) < 0)
        REFUSE("sub, client_id and fhirUser must be strings of at most %d bytes",
               AUTH_MAX_CLAIM);
    /* no client_id: the authorised party (azp, OpenID Connect) names the client */
    if (!p->client_id[0] && str_claim(pl, "azp", p->client_id, sizeof p->client_id) < 0)
        REFUSE("azp must be a string of at most %d bytes", AUTH_MAX_CLAIM);
    int pr = str_claim(pl, "patient", p->patient, sizeof p->patient);
    if (pr < 0 || (pr == 1 && !id_valid(p->patient, strlen(p->patient))))
        REFUSE("the patient claim must be a FHIR id (1-64 of A-Z a-z 0-9 - .)");
    if (purpose_claim(json_get(pl, "purpose_of_use"), p->purpose, sizeof p->purpose))
        REFUSE("purpose_of_use must be a string or an array of strings without spaces, "
               "at most %d bytes in all", AUTH_MAX_CLAIM);
    const json_val *sc = json_get(pl, "scope");
    if (sc && sc->type != JSON_STRING)
        REFUSE("the scope claim must be a string");
    if (sc && auth_scopes_parse(sc->u.s, sc->n, &p->rights))
        REFUSE("the scope claim is longer than %d bytes or has more than %d resource scopes",
               AUTH_MAX_SCOPE_LEN, AUTH_MAX_GRANTS);
    return 0;
}

static int check_claims(auth_server *s, const char *aud, arena *a, const json_val *pl,
                        int64_t now, auth_principal *p, char *msg, size_t msgsz)
{
    const char *iss = json_get_str(pl, "iss");
    if (!iss || strcmp(iss, s->issuer))
        REFUSE("the token was not issued by %.200s (iss)", s->issuer);
    if (!aud_matches(json_get(pl, "aud"), aud))
        REFUSE("the token is not meant for %.200s (aud)", aud);
    int64_t exp, nbf;
    if (num_claim(a, json_get(pl, "exp"), &exp))
        REFUSE("the token has no valid exp");
    if (now >= exp + AUTH_CLOCK_SKEW_S)
        REFUSE("the token has expired");
    json_val *nv = json_get(pl, "nbf");
    if (nv && num_claim(a, nv, &nbf))
        REFUSE("the token's nbf is not a number");
    if (nv && nbf > now + AUTH_CLOCK_SKEW_S)
        REFUSE("the token is not valid yet (nbf)");
    memset(p, 0, sizeof *p);
    p->exp = exp;
    return principal_claims(pl, p, msg, msgsz);
}

/* A reference to the keys held now (NULL: none). Release with auth_keyset_release. */
static auth_keyset *keys_ref(auth_server *s)
{
    pthread_mutex_lock(&s->mu);
    auth_keyset *ks = s->keys;
    if (ks)
        __atomic_add_fetch(&ks->refs, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_unlock(&s->mu);
    return ks;
}

/* An unknown kid: refetch the JWKS URL unless one was fetched for an unknown kid less
 * than AUTH_JWKS_REFETCH_S ago. 1 when new keys are held, 0 when not. */
static int refetch(auth_server *s, int64_t now)
{
    pthread_mutex_lock(&s->mu);
    int due = s->jwks_url && (s->last_refetch == 0 || now - s->last_refetch >= AUTH_JWKS_REFETCH_S);
    if (due)
        s->last_refetch = now;
    pthread_mutex_unlock(&s->mu);
    if (!due)
        return 0;
    auth_keyset *ks = NULL;
    char why[400];
    if (fetch_keys(s, &ks, why, sizeof why)) {
        fprintf(stderr, "hortus: keeping the JWKS held: %s\n", why);
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    auth_keyset *old = s->keys;
    s->keys = ks;
    pthread_mutex_unlock(&s->mu);
    auth_keyset_release(old);
    return 1;
}

static int verify_jws(auth_server *s, const char *aud, arena *a, const char *tok, size_t n,
                      int64_t now, auth_principal *out, char *msg, size_t msgsz)
{
    json_val *pl = NULL;
    auth_keyset *ks = keys_ref(s);
    int rc = auth_jws_verify(ks, a, tok, n, AUTH_ALGS_ACCESS, &pl, msg, msgsz);
    auth_keyset_release(ks);
    if (rc == ERR_NOTFOUND && refetch(s, now)) {
        ks = keys_ref(s);
        rc = auth_jws_verify(ks, a, tok, n, AUTH_ALGS_ACCESS, &pl, msg, msgsz);
        auth_keyset_release(ks);
    }
    if (rc == ERR_NOTFOUND)
        rc = ERR_INVALID;
    if (!rc)
        rc = check_claims(s, aud, a, pl, now, out, msg, msgsz);
    return rc;
}

/* ---- introspection (RFC 7662) ------------------------------------------------ */

/* s[0..n) form-encoded (RFC 3986 unreserved kept) into out (3n + 1 bytes). */
static void form_escape(const char *s, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *out++ = (char)c;
        } else {
            *out++ = '%';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        }
    }
    *out = 0;
}

static int introspect(auth_server *s, const char *aud, arena *a, const char *tok, size_t n,
                      int64_t now, auth_principal *p, char *msg, size_t msgsz)
{
    char *form = arena_alloc(a, 6 + 3 * n + 1);
    if (!form)
        return ERR_NOMEM;
    memcpy(form, "token=", 6);
    form_escape(tok, n, form + 6);
    char *body = NULL;
    size_t len = 0;
    char why[300];
    int rc = auth_http_fetch(s->introspect_url, form, s->introspect_client, &body, &len, why,
                             sizeof why);
    if (rc) {
        fprintf(stderr, "hortus: token introspection failed: %s\n", why);
        snprintf(msg, msgsz, "the token introspection endpoint did not answer");
        return rc == ERR_NOMEM ? rc : ERR_IO;
    }
    json_val *v;
    char *text = arena_strndup(a, body, len);
    free(body);
    if (!text)
        return ERR_NOMEM;
    if (json_parse(a, text, len, 0, &v, NULL) || v->type != JSON_OBJECT) {
        fprintf(stderr, "hortus: token introspection answered no JSON object\n");
        snprintf(msg, msgsz, "the token introspection endpoint answered no JSON object");
        return ERR_IO;
    }
    const json_val *act = json_get(v, "active");
    if (!act || act->type != JSON_TRUE)
        REFUSE("the token is not active (introspection)");
    /* an answer naming an audience must name this one; one without may stand only for
     * the configured audience (a named tenant's tokens must say they are its own) */
    const json_val *av = json_get(v, "aud");
    if (av ? !aud_matches(av, aud) : strcmp(aud, s->audience) != 0)
        REFUSE("the token is not meant for %.200s (aud, introspection)", aud);
    memset(p, 0, sizeof *p);
    int64_t exp = now + AUTH_INTROSPECT_CACHE_S, e;
    const json_val *ev = json_get(v, "exp");
    if (ev) {
        if (num_claim(a, ev, &e))
            REFUSE("the introspection answer's exp is not a number");
        if (now >= e)
            REFUSE("the token has expired (introspection)");
        if (e < exp)
            exp = e;
    }
    /* the cache adds the clock skew to exp: keep the answer no longer than exp itself */
    p->exp = exp - AUTH_CLOCK_SKEW_S;
    return principal_claims(v, p, msg, msgsz);
}

/* 1 when tok[0..n) has the shape of a compact JWS (two dots, a JSON header). */
static int looks_like_jws(arena *a, const char *tok, size_t n)
{
    const char *d1 = memchr(tok, '.', n);
    if (!d1 || !memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok)))
        return 0;
    return json_part(a, tok, (size_t)(d1 - tok)) != NULL;
}

/* *d = *s, but only the grants and query text in use (a principal is ~9 KiB, most of it
 * room for scopes a token rarely has; every request copies one out of the cache). */
static void principal_copy(auth_principal *d, const auth_principal *s)
{
    size_t n = s->rights.n <= AUTH_MAX_GRANTS ? s->rights.n : AUTH_MAX_GRANTS;
    size_t tl = s->rights.text_len < sizeof s->rights.text ? s->rights.text_len
                                                           : sizeof s->rights.text - 1;
    memcpy(d, s, offsetof(auth_principal, rights.g) + n * sizeof s->rights.g[0]);
    memcpy(d->rights.text, s->rights.text, tl);
    d->rights.text[tl] = 0;
    d->rights.text_len = tl;
}

int auth_verify(auth_server *s, arena *a, const char *tok, size_t n, int64_t now_s,
                auth_principal *out, char *msg, size_t msgsz)
{
    return auth_verify_aud(s, NULL, a, tok, n, now_s, out, msg, msgsz);
}

int auth_verify_aud(auth_server *s, const char *aud, arena *a, const char *tok, size_t n,
                    int64_t now_s, auth_principal *out, char *msg, size_t msgsz)
{
    if (n == 0 || n > AUTH_MAX_TOKEN)
        REFUSE("the bearer token is empty or longer than %d bytes", AUTH_MAX_TOKEN);
    if (!aud)
        aud = s->audience;
    uint8_t h[HASH_SHA256_LEN], ah[HASH_SHA256_LEN];
    if (hash_sha256(tok, n, h) || hash_sha256(aud, strlen(aud), ah))
        return ERR_NOMEM;
    uint64_t slot_no;
    memcpy(&slot_no, h, sizeof slot_no);
    cache_slot *slot = &s->cache[slot_no % AUTH_CACHE_SLOTS];
    pthread_mutex_lock(&s->mu);
    if (slot->used && !memcmp(slot->h, h, sizeof h) && !memcmp(slot->ah, ah, sizeof ah)) {
        if (now_s < slot->p.exp + AUTH_CLOCK_SKEW_S) {
            principal_copy(out, &slot->p);
            s->hits++;
            pthread_mutex_unlock(&s->mu);
            return 0;
        }
        slot->used = 0; /* expired: checked again below, and refused */
    }
    int have_keys = s->keys != NULL;
    pthread_mutex_unlock(&s->mu);
    int rc;
    if (s->introspect_url && (!have_keys || !looks_like_jws(a, tok, n)))
        rc = introspect(s, aud, a, tok, n, now_s, out, msg, msgsz);
    else
        rc = verify_jws(s, aud, a, tok, n, now_s, out, msg, msgsz);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->mu);
    s->verified++;
    slot->used = 1;
    memcpy(slot->h, h, sizeof h);
    memcpy(slot->ah, ah, sizeof ah);
    principal_copy(&slot->p, out);
    pthread_mutex_unlock(&s->mu);
    return 0;
}
