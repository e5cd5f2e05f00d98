/*
 * tests/unit/auth.c -- JWT verification against a JWKS built in the test from keys
 * generated with OpenSSL (RSA 2048, EC P-256, EC P-384), every refusal the resource
 * server must make (alg none, HS256 keyed with the public key, unknown kid, bad or
 * foreign signature, tampered payload, exp, nbf, iss, aud, key/alg mismatch), the
 * clock skew, the cache of verified tokens, JWKS errors, and SMART scope parsing
 * (v1, v2, granular, wildcards) with the views of auth_view_of. Then the built-in
 * authorization server: scope validity and coverage, a token request end to end in a
 * temporary data directory (issued, usable by a verifier trusting the server's key,
 * its jti refused when replayed, also after a reopen), and the key file's mode.
 */
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json/json.h"

#include "auth/auth.h"
#include "auth/issuer.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/hash.h"
#include "tap.h"

#define ISS "https://idp.example.org"
#define AUD "https://fhir.example.org/fhir"


/* auth_view_of in one number: what the checks below compare */
enum { V_NONE, V_ALL, V_PATIENT, V_GRANULAR, V_PATIENT_GRANULAR, V_MIXED };

static int view(const auth_principal *p, const char *type, unsigned op)
{
    auth_view v;
    auth_view_of(p, type, op, &v);
    switch (v.kind) {
    case AUTH_VIEW_ALL: return V_ALL;
    case AUTH_VIEW_MIXED: return V_MIXED;
    case AUTH_VIEW_SOME:
        return v.patient ? (v.nq ? V_PATIENT_GRANULAR : V_PATIENT) : V_GRANULAR;
    default: return V_NONE;
    }
}

static void b64(buf *b, const void *p, size_t n)
{
    char *out = malloc(HASH_B64URL_LEN(n) + 1);
    hash_b64url(p, n, out);
    buf_puts(b, out);
    free(out);
}

static void b64s(buf *b, const char *s)
{
    b64(b, s, strlen(s));
}

/* The JWK of pk's public half with kid. */
static void jwk(buf *b, EVP_PKEY *pk, const char *kid, const char *extra)
{
    buf_printf(b, "{\"kid\":\"%s\",%s", kid, extra ? extra : "");
    if (EVP_PKEY_is_a(pk, "RSA")) {
        BIGNUM *n = NULL, *e = NULL;
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n);
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e);
        uint8_t nb[1024], eb[16];
        int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
        buf_puts(b, "\"kty\":\"RSA\",\"n\":\"");
        b64(b, nb, (size_t)nl);
        buf_puts(b, "\",\"e\":\"");
        b64(b, eb, (size_t)el);
        buf_puts(b, "\"}");
        BN_free(n);
        BN_free(e);
    } else {
        uint8_t pt[200];
        size_t pl = 0;
        EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &pl);
        size_t w = (pl - 1) / 2;
        buf_printf(b, "\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"", w == 32 ? "P-256" : "P-384");
        b64(b, pt + 1, w);
        buf_puts(b, "\",\"y\":\"");
        b64(b, pt + 1 + w, w);
        buf_puts(b, "\"}");
    }
}

/* A compact JWS of header/payload signed by pk with alg (RS* or ES*), heap string. */
static char *sign(const char *header, const char *payload, const char *alg, EVP_PKEY *pk)
{
    buf b = BUF_INIT;
    b64s(&b, header);
    buf_putc(&b, '.');
    b64s(&b, payload);
    const EVP_MD *md = strstr(alg, "256") ? EVP_sha256() : EVP_sha384();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t sig[1024];
    size_t sl = sizeof sig;
    EVP_DigestSignInit(ctx, NULL, md, NULL, pk);
    EVP_DigestSign(ctx, sig, &sl, (const uint8_t *)b.data, b.len);
    EVP_MD_CTX_free(ctx);
    buf_putc(&b, '.');
    if (alg[0] == 'E') {
        const uint8_t *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
        size_t w = md == EVP_sha256() ? 32 : 48;
        uint8_t rs[96];
        BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, (int)w);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + w, (int)w);
        ECDSA_SIG_free(es);
        b64(&b, rs, 2 * w);
    } else {
        b64(&b, sig, sl);
    }
    return buf_detach(&b, NULL);
}

static EVP_PKEY *rsa, *rsa_other, *ec256, *ec384;
static auth_server *srv;
static arena *ar;
static int64_t now;

static char *payload(const char *extra)
{
    buf b = BUF_INIT;
    buf_printf(&b, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld,\"sub\":\"u1\"%s%s}",
               (long long)now + 300, extra ? "," : "", extra ? extra : "");
    return buf_detach(&b, NULL);
}

/* verify tok at now; returns the code, msg into m */
static int verify(const char *tok, auth_principal *p, char *m, size_t msz, int64_t at)
{
    arena_reset(ar);
    m[0] = 0;
    return auth_verify(srv, ar, tok, strlen(tok), at, p, m, msz);
}

static void refused(const char *tok, const char *why_part, const char *name)
{
    auth_principal p;
    char m[300];
    int rc = verify(tok, &p, m, sizeof m, now);
    is_int(rc, ERR_INVALID, "refused: %s", name);
    ok(strstr(m, why_part) != NULL, "  message says '%s' (%s)", why_part, m);
}

static void accepted(const char *tok, const char *name)
{
    auth_principal p;
    char m[300];
    int rc = verify(tok, &p, m, sizeof m, now);
    is_int(rc, 0, "accepted: %s (%s)", name, m);
}

static void test_tokens(void)
{
    auth_principal p;
    char m[300];
    char *pl = payload("\"scope\":\"patient/Observation.rs openid\",\"patient\":\"p1\"");
    const struct {
        const char *alg, *kid;
        EVP_PKEY *pk;
    } good[] = {{"RS256", "rsa1", rsa}, {"RS384", "rsa1", rsa}, {"ES256", "ec256", ec256},
                {"ES384", "ec384", ec384}};
    for (size_t i = 0; i < 4; i++) {
        char hdr[100];
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", good[i].alg,
                 good[i].kid);
        char *t = sign(hdr, pl, good[i].alg, good[i].pk);
        int rc = verify(t, &p, m, sizeof m, now);
        is_int(rc, 0, "%s token verifies (%s)", good[i].alg, m);
        is_str(p.patient, "p1", "  patient claim");
        is_str(p.sub, "u1", "  sub claim");
        is_int(p.rights.n, 1, "  one resource scope");
        is_int(p.exp, now + 300, "  exp");
        free(t);
    }

    /* alg none: header says none, no signature */
    buf b = BUF_INIT;
    b64s(&b, "{\"alg\":\"none\",\"kid\":\"rsa1\"}");
    buf_putc(&b, '.');
    b64s(&b, pl);
    buf_putc(&b, '.');
    refused(buf_cstr(&b), "alg none", "alg none");
    buf_free(&b);

    /* HS256 keyed with the public key (PEM and raw JWKS text): the classic confusion */
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, rsa);
    char *pem;
    long pemlen = BIO_get_mem_data(bio, &pem);
    b64s(&b, "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}");
    buf_putc(&b, '.');
    b64s(&b, pl);
    uint8_t mac[64];
    unsigned ml = 0;
    HMAC(EVP_sha256(), pem, (int)pemlen, (const uint8_t *)b.data, b.len, mac, &ml);
    buf_putc(&b, '.');
    b64(&b, mac, ml);
    refused(buf_cstr(&b), "symmetric", "HS256 signed with the public key");
    buf_free(&b);
    BIO_free(bio);

    char *t = sign("{\"alg\":\"RS256\",\"kid\":\"nope\"}", pl, "RS256", rsa);
    refused(t, "unknown kid", "unknown kid");
    free(t);
    t = sign("{\"alg\":\"RS256\"}", pl, "RS256", rsa);
    refused(t, "no kid", "no kid");
    free(t);
    t = sign("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", pl, "RS256", rsa_other);
    refused(t, "does not verify", "signed by a key that is not the kid's");
    free(t);
    t = sign("{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", pl, "ES256", ec256);
    refused(t, "cannot verify ES256", "ES256 under an RSA kid");
    free(t);
    t = sign("{\"alg\":\"ES384\",\"kid\":\"ec256\"}", pl, "ES384", ec384);
    refused(t, "cannot verify ES384", "ES384 under a P-256 kid");
    free(t);
    t = sign("{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", pl, "RS256", rsa);
    refused(t, "not supported", "PS256");
    free(t);
    t = sign("{\"alg\":\"RS512\",\"kid\":\"rsa1\"}", pl, "RS256", rsa);
    refused(t, "not supported", "RS512");
    free(t);

    /* tampered payload: a wider scope with the old signature */
    t = sign("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", pl, "RS256", rsa);
    char *dot1 = strchr(t, '.'), *dot2 = strchr(dot1 + 1, '.');
    char *wide = payload("\"scope\":\"system/*.cruds\",\"patient\":\"p1\"");
    buf_put(&b, t, (size_t)(dot1 - t + 1));
    b64s(&b, wide);
    buf_puts(&b, dot2);
    refused(buf_cstr(&b), "does not verify", "tampered payload");
    buf_free(&b);
    /* one flipped signature character */
    size_t tl = strlen(t);
    t[tl - 5] = t[tl - 5] == 'A' ? 'B' : 'A';
    refused(t, "does not verify", "flipped signature byte");
    free(t);
    free(wide);
    /* an EC signature of the wrong width */
    t = sign("{\"alg\":\"ES256\",\"kid\":\"ec256\"}", pl, "ES256", ec256);
    *strrchr(t, '.') = 0;
    {
        uint8_t short_sig[63] = {1};
        buf_puts(&b, t);
        buf_putc(&b, '.');
        b64(&b, short_sig, sizeof short_sig);
        refused(buf_cstr(&b), "bytes", "ES256 signature of 63 bytes");
        buf_free(&b);
    }
    free(t);
    refused("abc.def", "compact", "two parts");
    refused("a.b.c.d", "compact", "four parts");
    free(pl);

    /* the claims */
    const char *hdr = "{\"alg\":\"ES256\",\"kid\":\"ec256\"}";
    char c[300];
    snprintf(c, sizeof c, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld}",
             (long long)now - 2 * AUTH_CLOCK_SKEW_S);
    t = sign(hdr, c, "ES256", ec256);
    refused(t, "expired", "exp passed");
    free(t);
    snprintf(c, sizeof c, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld}",
             (long long)now - AUTH_CLOCK_SKEW_S / 2);
    t = sign(hdr, c, "ES256", ec256);
    accepted(t, "exp passed by less than the clock skew");
    free(t);
    snprintf(c, sizeof c, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld,\"nbf\":%lld}",
             (long long)now + 900, (long long)now + 2 * AUTH_CLOCK_SKEW_S);
    t = sign(hdr, c, "ES256", ec256);
    refused(t, "not valid yet", "nbf in the future");
    free(t);
    snprintf(c, sizeof c, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld,\"nbf\":%lld}",
             (long long)now + 900, (long long)now + AUTH_CLOCK_SKEW_S / 2);
    t = sign(hdr, c, "ES256", ec256);
    accepted(t, "nbf ahead by less than the clock skew");
    free(t);
    snprintf(c, sizeof c, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}");
    t = sign(hdr, c, "ES256", ec256);
    refused(t, "exp", "no exp");
    free(t);
    snprintf(c, sizeof c, "{\"iss\":\"https://evil.example\",\"aud\":\"" AUD "\",\"exp\":%lld}",
             (long long)now + 300);
    t = sign(hdr, c, "ES256", ec256);
    refused(t, "iss", "wrong iss");
    free(t);
    snprintf(c, sizeof c, "{\"aud\":\"" AUD "\",\"exp\":%lld}", (long long)now + 300);
    t = sign(hdr, c, "ES256", ec256);
    refused(t, "iss", "no iss");
    free(t);
    snprintf(c, sizeof c, "{\"iss\":\"" ISS "\",\"aud\":\"https://other/fhir\",\"exp\":%lld}",
             (long long)now + 300);
    t = sign(hdr, c, "ES256", ec256);
    refused(t, "aud", "wrong aud");
    free(t);
    snprintf(c, sizeof c,
             "{\"iss\":\"" ISS "\",\"aud\":[\"https://other/fhir\",\"" AUD "\"],\"exp\":%lld}",
             (long long)now + 300);
    t = sign(hdr, c, "ES256", ec256);
    accepted(t, "aud array naming us");
    free(t);
    snprintf(c, sizeof c,
             "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld,\"patient\":\"a/b\"}",
             (long long)now + 300);
    t = sign(hdr, c, "ES256", ec256);
    refused(t, "patient claim", "patient claim that is no id");
    free(t);
    snprintf(c, sizeof c,
             "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld,\"scope\":[\"a\"]}",
             (long long)now + 300);
    t = sign(hdr, c, "ES256", ec256);
    refused(t, "scope claim", "scope that is no string");
    free(t);
}

static void test_cache(void)
{
    auth_principal p;
    char m[300];
    char c[300];
    snprintf(c, sizeof c,
             "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld,\"scope\":\"user/*.rs\"}",
             (long long)now + 100);
    char *t = sign("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", c, "RS256", rsa);
    uint64_t h0, v0, h1, v1, h2, v2;
    auth_cache_stats(srv, &h0, &v0);
    is_int(verify(t, &p, m, sizeof m, now), 0, "cache: first use verifies");
    auth_cache_stats(srv, &h1, &v1);
    is_int(v1 - v0, 1, "  one signature checked");
    is_int(h1 - h0, 0, "  no cache hit");
    is_int(verify(t, &p, m, sizeof m, now + 10), 0, "cache: second use");
    auth_cache_stats(srv, &h2, &v2);
    is_int(v2 - v1, 0, "  no signature checked again");
    is_int(h2 - h1, 1, "  answered from the cache");
    is_int(view(&p, "Patient", AUTH_READ), V_ALL, "  cached rights kept");
    is_int(verify(t, &p, m, sizeof m, now + 100 + AUTH_CLOCK_SKEW_S), ERR_INVALID,
           "cache: a cached token past exp + skew is refused");
    ok(strstr(m, "expired") != NULL, "  as expired (%s)", m);
    /* a different token never hits another's entry */
    char *t2 = sign("{\"alg\":\"RS384\",\"kid\":\"rsa1\"}", c, "RS384", rsa);
    t2[strlen(t2) - 4] ^= 1;
    is_int(verify(t2, &p, m, sizeof m, now), ERR_INVALID, "cache: a forged sibling is checked");
    free(t);
    free(t2);
}

static void test_jwks(void)
{
    auth_server *s = NULL;
    char m[300];
    const char *bad[][2] = {
        {"[]", "keys"},
        {"{\"keys\":[]}", "keys"},
        {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", "kid"},
        {"{\"keys\":[{\"kid\":\"a\",\"kty\":\"oct\",\"k\":\"AQAB\"}]}", "kty"},
        {"{\"keys\":[{\"kid\":\"a\",\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQAB\",\"y\":\"AQAB\"}]}",
         "x and y"},
        {"{\"keys\":[{\"kid\":\"a\",\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AQAB\",\"y\":\"AQAB\"}]}",
         "crv"},
        {"{\"keys\":[{\"kid\":\"a\",\"kty\":\"EC\",\"crv\":\"P-256\","
         "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
         "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}",
         "not a point"},
        {"not json", "not JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m[0] = 0;
        int rc = auth_server_new(bad[i][0], strlen(bad[i][0]), ISS, AUD, &s, m, sizeof m);
        ok(rc < 0 && strstr(m, bad[i][1]), "JWKS refused: %s (%s)", bad[i][1], m);
    }
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    buf b = BUF_INIT;
    buf_puts(&b, "{\"keys\":[");
    jwk(&b, small, "small", NULL);
    buf_puts(&b, "]}");
    int rc = auth_server_new(b.data, b.len, ISS, AUD, &s, m, sizeof m);
    ok(rc < 0 && strstr(m, "bits"), "JWKS refused: RSA key of 1024 bits (%s)", m);
    buf_reset(&b);
    buf_puts(&b, "{\"keys\":[");
    jwk(&b, rsa, "x", NULL);
    buf_putc(&b, ',');
    jwk(&b, ec256, "x", NULL);
    buf_puts(&b, "]}");
    rc = auth_server_new(b.data, b.len, ISS, AUD, &s, m, sizeof m);
    ok(rc < 0 && strstr(m, "twice"), "JWKS refused: a kid twice (%s)", m);
    buf_free(&b);
    EVP_PKEY_free(small);
    rc = auth_server_load("/nonexistent/jwks.json", ISS, AUD, &s, m, sizeof m);
    is_int(rc, ERR_IO, "JWKS file that does not exist");
}

static void test_scopes(void)
{
    auth_principal p;
    memset(&p, 0, sizeof p);
    const char *s = "openid fhirUser launch/patient offline_access patient/Observation.read "
                    "user/Patient.write system/Encounter.* patient/Condition.rs "
                    "user/*.cud patient/Observation.rs?category=http://terminology.hl7.org/"
                    "CodeSystem/observation-category|vital-signs patient/Immunization.sr "
                    "patient/Procedure.rx user/Device.read?x=1 patient/observation.r "
                    "patient/Medication.";
    is_int(auth_scopes_parse(s, strlen(s), &p.rights), 0, "scopes parse");
    is_int(p.rights.n, 6, "six resource scopes (invalid and non-resource ones grant nothing)");
    const auth_grant *g = p.rights.g;
    is_str(g[0].type, "Observation", "v1 read: type");
    is_int(g[0].ops, AUTH_READ | AUTH_SEARCH, "v1 read = r s");
    is_int(g[0].context, AUTH_CTX_PATIENT, "  patient context");
    is_int(g[1].ops, AUTH_CREATE | AUTH_UPDATE | AUTH_DELETE, "v1 write = c u d");
    is_int(g[1].context, AUTH_CTX_USER, "  user context");
    is_int(g[2].ops, 31, "v1 * = c r u d s");
    is_int(g[2].context, AUTH_CTX_SYSTEM, "  system context");
    is_int(g[3].ops, AUTH_READ | AUTH_SEARCH, "v2 rs");
    is_str(g[4].type, "*", "v2 wildcard type");
    is_int(g[4].ops, AUTH_CREATE | AUTH_UPDATE | AUTH_DELETE, "v2 cud");
    ok(auth_grant_query(&p.rights, &g[4]) == NULL, "  no query");
    is_int(g[5].ops, AUTH_READ | AUTH_SEARCH, "granular v2 scope: its permissions");
    is_str(auth_grant_query(&p.rights, &g[5]),
           "category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
           "granular v2 scope: its query kept");

    is_int(view(&p, "Observation", AUTH_READ), V_PATIENT,
           "Observation read: the patient's compartment");
    is_int(view(&p, "Observation", AUTH_CREATE), V_ALL, "Observation create: user/*");
    is_int(view(&p, "Observation", AUTH_UPDATE), V_ALL, "Observation update: user/*");
    is_int(view(&p, "Encounter", AUTH_SEARCH), V_ALL, "Encounter search: system/");
    is_int(view(&p, "Patient", AUTH_READ), V_NONE, "Patient read: denied (write only)");
    is_int(view(&p, "Immunization", AUTH_READ), V_NONE,
           "letters out of order grant nothing");
    is_int(view(&p, "Procedure", AUTH_READ), V_NONE, "unknown letter grants nothing");
    is_int(view(&p, "Device", AUTH_READ), V_NONE, "v1 with a query grants nothing");
    is_int(view(&p, "Condition", AUTH_DELETE), V_ALL, "Condition delete: user/*.cud");
    is_int(view(&p, "Condition", AUTH_SEARCH), V_PATIENT, "Condition search");

    const char *gs = "patient/Observation.rs?category=vital-signs";
    is_int(auth_scopes_parse(gs, strlen(gs), &p.rights), 0, "granular only");
    is_int(view(&p, "Observation", AUTH_READ), V_PATIENT_GRANULAR,
           "only a granular scope grants Observation read: the compartment and its query");
    is_int(view(&p, "Observation", AUTH_CREATE), V_NONE, "  and not create");
    is_int(view(&p, "Patient", AUTH_READ), V_NONE, "  nor another type");
    auth_view av;
    auth_view_of(&p, "Observation", AUTH_SEARCH, &av);
    is_int(av.nq, 1, "  one query");
    is_str(av.q[0], "category=vital-signs", "  the scope's query");
    const char *ms = "patient/Observation.rs user/Observation.rs?code=x user/Patient.rs?a=1 "
                     "user/Patient.rs?a=2 patient/Condition.rs patient/Condition.rs?code=y "
                     "user/Encounter.rs?class=z system/Encounter.rs";
    auth_scopes_parse(ms, strlen(ms), &p.rights);
    is_int(view(&p, "Observation", AUTH_READ), V_MIXED,
           "patient/ beside granular user/: no single restriction");
    auth_view_of(&p, "Patient", AUTH_READ, &av);
    ok(av.kind == AUTH_VIEW_SOME && !av.patient && av.nq == 2 && !strcmp(av.q[1], "a=2"),
       "two granular user/ scopes: either query");
    is_int(view(&p, "Condition", AUTH_READ), V_PATIENT,
           "a granular patient/ scope beside the whole compartment adds nothing");
    is_int(view(&p, "Encounter", AUTH_READ), V_ALL, "a whole-type scope absorbs a granular one");
    const char *ws = "patient/*.rs";
    auth_scopes_parse(ws, strlen(ws), &p.rights);
    is_int(view(&p, "MedicationRequest", AUTH_SEARCH), V_PATIENT,
           "patient/*.rs covers every type");
    is_int(view(&p, "MedicationRequest", AUTH_DELETE), V_NONE, "  read only");
    is_int(auth_scopes_parse("", 0, &p.rights), 0, "empty scope");
    is_int(view(&p, "Patient", AUTH_READ), V_NONE, "  grants nothing");

    buf b = BUF_INIT;
    for (int i = 0; i <= AUTH_MAX_GRANTS; i++)
        buf_printf(&b, "user/Patient.r ");
    is_int(auth_scopes_parse(b.data, b.len, &p.rights), ERR_TOOBIG, "too many resource scopes");
    buf_free(&b);
}

static void test_scope_rules(void)
{
    static const struct {
        const char *s;
        int valid;
    } v[] = {{"system/*.rs", 1},            {"system/Patient.read", 1},
             {"user/Observation.cruds", 1}, {"system/Observation.rs?code=x", 1},
             {"system/Patient.rx", 0},      {"system/Patient.sr", 0},
             {"system/patient.rs", 0},      {"openid", 0},
             {"system/*.read?code=x", 0},   {"system/", 0}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        is_int(auth_scope_valid(v[i].s, strlen(v[i].s)), v[i].valid, "scope '%s' valid: %d",
               v[i].s, v[i].valid);
    static const struct {
        const char *reg, *req;
        int covers;
    } c[] = {
        {"system/*.rs", "system/Observation.r", 1},
        {"system/*.rs", "system/Observation.rs", 1},
        {"system/*.read", "system/Observation.rs", 1},
        {"system/*.rs", "system/Observation.rus", 0},
        {"system/*.rs", "system/*.cruds", 0},
        {"system/Observation.rs", "system/*.rs", 0},
        {"system/Observation.rs", "system/Patient.rs", 0},
        {"system/*.rs", "user/Observation.rs", 0},
        {"system/*.rs", "system/Observation.rs?code=x", 1},
        {"system/Observation.rs?code=x", "system/Observation.rs", 0},
        {"system/Observation.rs?code=x", "system/Observation.r?code=x", 1},
        {"system/Observation.rs?code=x", "system/Observation.r?code=y", 0},
        {"launch", "launch", 1},
        {"system/*.rs", "openid", 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        is_int(auth_scope_covers(c[i].reg, strlen(c[i].reg), c[i].req, strlen(c[i].req)),
               c[i].covers, "'%s' covers '%s': %d", c[i].reg, c[i].req, c[i].covers);
}

static void test_keysets(void)
{
    static const struct {
        const char *extra;
        unsigned want;
        const char *name;
    } k[] = {{NULL, AUTH_ALG_RS256 | AUTH_ALG_RS384, "RSA: RS256, RS384"},
             {"\"alg\":\"RS384\",", AUTH_ALG_RS384, "RSA with alg RS384: RS384 only"}};
    char m[300];
    for (size_t i = 0; i < 2; i++) {
        buf b = BUF_INIT;
        buf_puts(&b, "{\"keys\":[");
        jwk(&b, rsa, "k", k[i].extra);
        buf_puts(&b, "]}");
        auth_keyset *ks = NULL;
        int rc = auth_keyset_parse(b.data, b.len, &ks, m, sizeof m);
        is_int(rc, 0, "keyset parses (%s)", m);
        is_int((int)auth_keyset_algs(ks), (int)k[i].want, "%s", k[i].name);
        auth_keyset_release(ks);
        buf_free(&b);
    }
    buf b = BUF_INIT;
    buf_puts(&b, "{\"keys\":[");
    jwk(&b, ec256, "e256", NULL);
    buf_putc(&b, ',');
    jwk(&b, ec384, "e384", NULL);
    buf_puts(&b, "]}");
    auth_keyset *ks = NULL;
    is_int(auth_keyset_parse(b.data, b.len, &ks, m, sizeof m), 0, "EC keyset parses");
    buf_free(&b);
    is_int((int)auth_keyset_algs(ks), AUTH_ALG_ES256 | AUTH_ALG_ES384, "EC keys: ES256, ES384");
    char *pl = payload(NULL);
    char *t = sign("{\"alg\":\"ES256\",\"kid\":\"e256\"}", pl, "ES256", ec256);
    json_val *v = NULL;
    arena_reset(ar);
    int rc = auth_jws_verify(ks, ar, t, strlen(t), AUTH_ALG_ES384 | AUTH_ALG_RS384, &v, m,
                             sizeof m);
    is_int(rc, ERR_INVALID, "ES256 refused where only RS384/ES384 are accepted");
    ok(strstr(m, "not supported here (RS384, ES384)") != NULL, "  says so (%s)", m);
    rc = auth_jws_verify(ks, ar, t, strlen(t), AUTH_ALGS_ACCESS, &v, m, sizeof m);
    is_int(rc, 0, "ES256 accepted among the access-token algs");
    ok(v && json_get_str(v, "sub") && !strcmp(json_get_str(v, "sub"), "u1"), "  payload back");
    free(t);
    t = sign("{\"alg\":\"ES384\",\"kid\":\"nope\"}", pl, "ES384", ec384);
    is_int(auth_jws_verify(ks, ar, t, strlen(t), AUTH_ALGS_ACCESS, &v, m, sizeof m),
           ERR_NOTFOUND, "unknown kid: ERR_NOTFOUND (what triggers a refetch)");
    free(t);
    free(pl);
    auth_keyset_release(ks);
}

/* A token request to is with an ES384 assertion of client cid (jti), at now. */
static unsigned token_request(auth_issuer *is, const char *cid, const char *jti,
                              const char *scope, buf *out)
{
    buf pl = BUF_INIT;
    buf_printf(&pl, "{\"iss\":\"%s\",\"sub\":\"%s\",\"aud\":\"https://h.example/auth/token\","
               "\"exp\":%lld,\"jti\":\"%s\"}", cid, cid, (long long)now + 200, jti);
    char *a = sign("{\"alg\":\"ES384\",\"kid\":\"c1\"}", pl.data, "ES384", ec384);
    buf_free(&pl);
    auth_token_req req = {.grant_type = "client_credentials", .scope = scope,
                          .assertion_type = AUTH_ASSERTION_TYPE, .assertion = a,
                          .auds = {"https://h.example/auth/token", NULL}};
    unsigned status = 0;
    arena_reset(ar);
    buf_reset(out);
    int rc = auth_issuer_token(is, ar, &req, now, &status, out);
    free(a);
    return rc ? 0 : status;
}

static void test_issuer(void)
{
    char dir[] = "/tmp/hortus-auth-unit-XXXXXX";
    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    char path[200];
    snprintf(path, sizeof path, "%s/auth-clients.json", dir);
    FILE *f = fopen(path, "w");
    buf b = BUF_INIT;
    buf_puts(&b, "{\"clients\":[{\"client_id\":\"cid1\",\"name\":\"\",\"scope\":"
                 "\"system/Patient.rs system/Observation.cruds\",\"jwks\":{\"keys\":[");
    jwk(&b, ec384, "c1", NULL);
    buf_puts(&b, "]}}]}");
    fwrite(b.data, 1, b.len, f);
    fclose(f);
    buf_free(&b);
    auth_issuer *is = NULL;
    char m[300];
    int rc = auth_issuer_open(dir, "https://h.example", "https://h.example/fhir", &is, m,
                              sizeof m);
    is_int(rc, 0, "issuer opens in a new data directory (%s)", m);
    if (rc)
        return;
    struct stat st;
    snprintf(path, sizeof path, "%s/auth-key.pem", dir);
    ok(!stat(path, &st) && (st.st_mode & 0777) == 0600, "the signing key is written 0600");
    buf out = BUF_INIT;
    is_int((int)token_request(is, "cid1", "j1", "system/Observation.rs system/Encounter.r",
                              &out),
           200, "token issued (%s)", buf_cstr(&out));
    json_val *v = NULL;
    arena *a2 = arena_new(0);
    json_parse(a2, out.data, out.len, 0, &v, NULL);
    const char *tok = v ? json_get_str(v, "access_token") : NULL;
    is_str(v ? json_get_str(v, "scope") : "", "system/Observation.rs",
           "granted: the requested scopes the registration covers");
    auth_server *rs = NULL;
    const char *jwks = auth_issuer_jwks(is);
    rc = auth_server_new(jwks, strlen(jwks), "https://h.example", "https://h.example/fhir", &rs,
                         m, sizeof m);
    is_int(rc, 0, "a verifier trusts the server's JWKS (%s)", m);
    auth_principal p;
    rc = tok && rs ? auth_verify(rs, ar, tok, strlen(tok), now, &p, m, sizeof m) : -1;
    is_int(rc, 0, "the access token verifies (%s)", m);
    if (!rc) {
        is_str(p.client_id, "cid1", "  client_id claim");
        is_int(view(&p, "Observation", AUTH_SEARCH), V_ALL, "  Observation searchable");
        is_int(view(&p, "Observation", AUTH_CREATE), V_NONE, "  Observation not creatable");
    }
    auth_server_free(rs);
    arena_free(a2);
    is_int((int)token_request(is, "cid1", "j1", "system/Observation.rs", &out), 401,
           "the same jti again: 401");
    ok(strstr(buf_cstr(&out), "used before") != NULL, "  says so (%s)", buf_cstr(&out));
    is_int((int)token_request(is, "cid2", "j2", "system/Observation.rs", &out), 401,
           "unknown client: 401");
    is_int((int)token_request(is, "cid1", "j3", "system/Encounter.rs", &out), 400,
           "no scope granted: 400");
    ok(strstr(buf_cstr(&out), "invalid_scope") != NULL, "  invalid_scope");
    auth_issuer_free(is);
    is = NULL;
    rc = auth_issuer_open(dir, "https://h.example", "https://h.example/fhir", &is, m, sizeof m);
    is_int(rc, 0, "reopened (%s)", m);
    if (!rc) {
        is_int((int)token_request(is, "cid1", "j1", "system/Observation.rs", &out), 401,
               "the jti is still refused after a reopen");
        is_int((int)token_request(is, "cid1", "j4", "system/Observation.rs", &out), 200,
               "a new jti is fine");
    }
    auth_issuer_free(is);
    chmod(path, 0644);
    is = NULL;
    rc = auth_issuer_open(dir, "https://h.example", "https://h.example/fhir", &is, m, sizeof m);
    is_int(rc, ERR_INVALID, "a key file others may read is refused");
    ok(strstr(m, "chmod 600") != NULL, "  says what to do (%s)", m);
    auth_issuer_free(is);
    buf_free(&out);
    const char *names[] = {"auth-clients.json", "auth-key.pem", "auth-jti.log"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(void)
{
    now = (int64_t)time(NULL);
    ar = arena_new(0);
    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa_other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    ok(rsa && rsa_other && ec256 && ec384, "test keys generated");
    buf b = BUF_INIT;
    buf_puts(&b, "{\"keys\":[");
    jwk(&b, rsa, "rsa1", "\"use\":\"sig\",");
    buf_putc(&b, ',');
    jwk(&b, ec256, "ec256", "\"alg\":\"ES256\",");
    buf_putc(&b, ',');
    jwk(&b, ec384, "ec384", NULL);
    buf_putc(&b, ',');
    jwk(&b, rsa_other, "enc1", "\"use\":\"enc\",");
    buf_puts(&b, "]}");
    char m[300] = "";
    int rc = auth_server_new(b.data, b.len, ISS, AUD, &srv, m, sizeof m);
    is_int(rc, 0, "JWKS of RSA, P-256 and P-384 keys loads (%s)", m);
    buf_free(&b);
    if (rc)
        return tap_done();
    is_str(auth_server_issuer(srv), ISS, "issuer kept");
    test_tokens();
    /* the encryption key is not used for signatures */
    char *pl = payload(NULL);
    char *t = sign("{\"alg\":\"RS256\",\"kid\":\"enc1\"}", pl, "RS256", rsa_other);
    refused(t, "unknown kid", "a key with use=enc does not verify signatures");
    free(t);
    free(pl);
    test_cache();
    test_jwks();
    test_scopes();
    test_scope_rules();
    test_keysets();
    test_issuer();
    auth_server_free(srv);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa_other);
    EVP_PKEY_free(ec256);
    EVP_PKEY_free(ec384);
    arena_free(ar);
    return tap_done();
}
