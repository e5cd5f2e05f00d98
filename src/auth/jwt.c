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
 *            "patient", "sub", "client_id", "fhirUser"}
 *
 * ECDSA signatures arrive in JOSE form, r || s as fixed-width big-endian integers (32
 * bytes each for P-256, 48 for P-384); OpenSSL verifies DER, so they are re-encoded.
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

typedef struct cache_slot {
    int used;
    uint8_t h[HASH_SHA256_LEN];
    auth_principal p;
} cache_slot;

struct auth_server {
    char *issuer, *audience;
    auth_key keys[AUTH_MAX_KEYS];
    size_t nkeys;
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

static int load_keys(auth_server *s, arena *a, const char *jwks, size_t n, char *msg,
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

int auth_server_new(const char *jwks, size_t n, const char *issuer, const char *audience,
                    auth_server **out, char *msg, size_t msgsz)
{
    if (!issuer || !*issuer || !audience || !*audience)
        return failf(msg, msgsz, ERR_INVALID, "an issuer and an audience are required%s", "");
    auth_server *s = calloc(1, sizeof *s);
    arena *a = arena_new(0);
    int rc = ERR_NOMEM;
    if (!s || !a)
        goto nomem;
    pthread_mutex_init(&s->mu, NULL);
    s->issuer = strdup(issuer);
    s->audience = strdup(audience);
    s->cache = calloc(AUTH_CACHE_SLOTS, sizeof *s->cache);
    if (!s->issuer || !s->audience || !s->cache)
        goto nomem;
    if ((rc = load_keys(s, a, jwks, n, msg, msgsz)))
        goto fail;
    arena_free(a);
    *out = s;
    return 0;
nomem:
    snprintf(msg, msgsz, "out of memory");
fail:
    arena_free(a);
    auth_server_free(s);
    return rc;
}

int auth_server_load(const char *path, const char *issuer, const char *audience,
                     auth_server **out, char *msg, size_t msgsz)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return failf(msg, msgsz, ERR_IO, "cannot open the JWKS file %s", path);
    char *text = malloc(AUTH_MAX_JWKS_BYTES + 1);
    size_t n = text ? fread(text, 1, AUTH_MAX_JWKS_BYTES + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!text)
        return failf(msg, msgsz, ERR_NOMEM, "out of memory%s", "");
    if (bad || n > AUTH_MAX_JWKS_BYTES) {
        free(text);
        return failf(msg, msgsz, bad ? ERR_IO : ERR_TOOBIG,
                     "cannot read the JWKS file %s (at most 1 MiB)", path);
    }
    int rc = auth_server_new(text, n, issuer, audience, out, msg, msgsz);
    free(text);
    return rc;
}

void auth_server_free(auth_server *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nkeys; i++)
        EVP_PKEY_free(s->keys[i].pk);
    pthread_mutex_destroy(&s->mu);
    free(s->cache);
    free(s->issuer);
    free(s->audience);
    free(s);
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

#define REFUSE(...)                                                                             \
    do {                                                                                        \
        snprintf(msg, msgsz, __VA_ARGS__);                                                      \
        return ERR_INVALID;                                                                     \
    } while (0)

static int verify_signature(auth_server *s, arena *a, const char *tok, size_t n,
                            char *msg, size_t msgsz)
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
    if (alg[0] == 'H' && alg[1] == 'S')
        REFUSE("symmetric signatures (%.10s) are refused: tokens must be signed with "
               "RS256, RS384, ES256 or ES384", alg);
    const EVP_MD *md;
    key_kind want;
    if (!strcmp(alg, "RS256"))
        md = EVP_sha256(), want = KEY_RSA;
    else if (!strcmp(alg, "RS384"))
        md = EVP_sha384(), want = KEY_RSA;
    else if (!strcmp(alg, "ES256"))
        md = EVP_sha256(), want = KEY_EC256;
    else if (!strcmp(alg, "ES384"))
        md = EVP_sha384(), want = KEY_EC384;
    else
        REFUSE("alg '%.20s' is not supported (RS256, RS384, ES256, ES384)", alg);
    if (json_get(hdr, "crit"))
        REFUSE("the token's header has crit extensions, which are not supported");
    const char *kid = json_get_str(hdr, "kid");
    if (!kid)
        REFUSE("the token's header has no kid");
    const auth_key *k = NULL;
    for (size_t i = 0; i < s->nkeys && !k; i++)
        if (!strcmp(s->keys[i].kid, kid))
            k = &s->keys[i];
    if (!k)
        REFUSE("unknown kid '%.80s': no key of the configured JWKS has it", kid);
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
    return 0;
}

static int check_claims(auth_server *s, arena *a, const char *tok, size_t n, int64_t now,
                        auth_principal *p, char *msg, size_t msgsz)
{
    const char *d1 = memchr(tok, '.', n);
    const char *d2 = memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok));
    json_val *pl = json_part(a, d1 + 1, (size_t)(d2 - d1 - 1));
    if (!pl)
        REFUSE("the token's payload is not base64url-encoded JSON");
    const char *iss = json_get_str(pl, "iss");
    if (!iss || strcmp(iss, s->issuer))
        REFUSE("the token was not issued by %.200s (iss)", s->issuer);
    if (!aud_matches(json_get(pl, "aud"), s->audience))
        REFUSE("the token is not meant for %.200s (aud)", s->audience);
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
    if (str_claim(pl, "sub", p->sub, sizeof p->sub) < 0 ||
        str_claim(pl, "client_id", p->client_id, sizeof p->client_id) < 0 ||
        str_claim(pl, "fhirUser", p->fhir_user, sizeof p->fhir_user) < 0 ||
        str_claim(pl, "purpose_of_use", p->purpose_of_use, sizeof p->purpose_of_use) < 0)
        REFUSE("sub, client_id, fhirUser and purpose_of_use must be strings of at most %d "
               "bytes",
               AUTH_MAX_CLAIM);
    /* no client_id: the authorised party (azp, OpenID Connect) names the client */
    if (!p->client_id[0] && str_claim(pl, "azp", p->client_id, sizeof p->client_id) < 0)
        REFUSE("azp must be a string of at most %d bytes", AUTH_MAX_CLAIM);
    int pr = str_claim(pl, "patient", p->patient, sizeof p->patient);
    if (pr < 0 || (pr == 1 && !id_valid(p->patient, strlen(p->patient))))
        REFUSE("the patient claim must be a FHIR id (1-64 of A-Z a-z 0-9 - .)");
    const json_val *sc = json_get(pl, "scope");
    if (sc && sc->type != JSON_STRING)
        REFUSE("the scope claim must be a string");
    if (sc && auth_scopes_parse(sc->u.s, sc->n, &p->rights))
        REFUSE("the scope claim is longer than %d bytes or has more than %d resource scopes",
               AUTH_MAX_SCOPE_LEN, AUTH_MAX_GRANTS);
    return 0;
}

int auth_verify(auth_server *s, arena *a, const char *tok, size_t n, int64_t now_s,
                auth_principal *out, char *msg, size_t msgsz)
{
    if (n == 0 || n > AUTH_MAX_TOKEN)
        REFUSE("the bearer token is empty or longer than %d bytes", AUTH_MAX_TOKEN);
    uint8_t h[HASH_SHA256_LEN];
    if (hash_sha256(tok, n, h))
        return ERR_NOMEM;
    uint64_t slot_no;
    memcpy(&slot_no, h, sizeof slot_no);
    cache_slot *slot = &s->cache[slot_no % AUTH_CACHE_SLOTS];
    pthread_mutex_lock(&s->mu);
    if (slot->used && !memcmp(slot->h, h, sizeof h)) {
        if (now_s < slot->p.exp + AUTH_CLOCK_SKEW_S) {
            *out = slot->p;
            s->hits++;
            pthread_mutex_unlock(&s->mu);
            return 0;
        }
        slot->used = 0; /* expired: checked again below, and refused */
    }
    pthread_mutex_unlock(&s->mu);
    int rc = verify_signature(s, a, tok, n, msg, msgsz);
    if (!rc)
        rc = check_claims(s, a, tok, n, now_s, out, msg, msgsz);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->mu);
    s->verified++;
    slot->used = 1;
    memcpy(slot->h, h, sizeof h);
    slot->p = *out;
    pthread_mutex_unlock(&s->mu);
    return 0;
}
