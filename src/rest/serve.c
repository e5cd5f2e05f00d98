/*
 * serve.c -- `hortus serve`: build the services, start the server, wait for a
 * stop signal, stop in order.
 *
 *   options --> services {store, compiled search parameters} --> rest_server_start
 *   SIGINT/SIGTERM --> rest_server_stop (answers every write) --> store_close
 *
 * Every search-parameter expression of the model is compiled here, once, and
 * kept for the server's life: a model or engine change that breaks one stops
 * the server at start-up rather than failing a search later.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "auth/tenant.h"
#include "auth/issuer.h"
#include "base/err.h"
#include "cli.h"
#include "fhirpath/spcache.h"
#include "index/params.h"
#include "index/reindex.h"
#include "index/index.h"
#include "profile/profile.h"
#include "rest/audit_rest.h"
#include "rest/consent.h"
#include "rest/server.h"
#include "rest/tls.h"
#include "rest/write.h"
#include "rest/limits.h"
#include "store/store.h"

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: hortus serve [--data DIR] [--store lmdb:DIR] [--bind ADDR] [--port N] "
               "[--threads N] [--base-url URL]\n"
               "                    [--insecure] [--tls-cert FILE --tls-key FILE]\n"
               "                    [--auth-jwks FILE|URL --auth-issuer URL --auth-audience URL]\n"
               "                    [--auth-introspect URL --auth-introspect-client ID:SECRET]\n"
               "                    [--auth-server [--auth-token-lifetime S]]\n"
               "                    [--audit on|off]\n"
               "                    [--request-timeout S] [--idle-timeout S] "
               "[--max-connections N] [--max-connections-per-client N]\n"
               "                    [--validate full|structure|off] "
               "[--conditional-delete single|multiple]\n"
               "                    [--referential-integrity on|off] "
               "[--unknown-profile warn|refuse]\n"
               "  --bind ADDR   address to listen on (default " REST_DEFAULT_BIND
               ", this machine only).\n"
               "                Without authorisation (--auth-*), an address that is not\n"
               "                loopback (0.0.0.0, ::, a LAN address) is refused unless\n"
               "                --insecure is given (docs/DEPLOY.md)\n"
               "  --insecure    serve a non-loopback --bind without authorisation anyway:\n"
               "                anyone who reaches it reads and writes every record (a\n"
               "                warning says so on start)\n"
               "  --tls-cert FILE --tls-key FILE  serve HTTPS (TLS 1.2 and 1.3 only) with\n"
               "                this PEM certificate (chain) and its unencrypted PEM key\n"
               "  --request-timeout S  a request (line, headers, body) must arrive whole\n"
               "                within S seconds of its first byte, or the connection is cut\n"
               "                (default %u, 1 .. %u)\n"
               "  --idle-timeout S  a connection without traffic for S seconds is closed\n"
               "                (default %u, 1 .. %u)\n"
               "  --max-connections N  open connections at once (default %u, at most %u);\n"
               "                near it, the connection idle longest is closed for each new one\n"
               "  --max-connections-per-client N  open connections from one client address\n"
               "                (default %u); more are closed at once. Behind a reverse proxy\n"
               "                every connection comes from the proxy: raise it\n"
               "  --validate L  what every write checks: full (default: structure, bindings,\n"
               "                invariants), structure, or off (JSON, resourceType, id only)\n"
               "  --conditional-delete M  DELETE Type?query finding several resources:\n"
               "                single (default: 412) or multiple (all of them, at most %u)\n"
               "  --referential-integrity on|off  on (default): a write naming a resource of\n"
               "                this server that does not exist is 422, a delete leaving\n"
               "                references to what it deletes 409\n"
               "  --unknown-profile P  a written resource claiming (meta.profile) a profile\n"
               "                no StructureDefinition of this server defines: warn (default:\n"
               "                stored, and a warning says it was not validated against it,\n"
               "                with Prefer: return=OperationOutcome and in Bundle entries)\n"
               "                or refuse (422 naming the profile). Stored profiles are\n"
               "                always enforced under --validate full\n"
               "  --auth-jwks FILE|URL  require SMART on FHIR bearer tokens (JWT) signed by a\n"
               "                key of this JWKS, issued by --auth-issuer for --auth-audience\n"
               "                (all three together; docs/AUTH.md). An http(s):// URL is\n"
               "                fetched at start and again on an unknown kid (at most once a\n"
               "                minute)\n"
               "  --auth-introspect URL --auth-introspect-client ID:SECRET  ask this RFC 7662\n"
               "                endpoint about opaque bearer tokens (every token without\n"
               "                --auth-jwks)\n"
               "  --auth-server  the built-in authorization server of SMART Backend Services:\n"
               "                POST /auth/token, GET /auth/jwks, clients from `hortus client`;\n"
               "                its tokens are required. Over TLS or on loopback only\n"
               "  --auth-token-lifetime S  of the tokens --auth-server issues (default %d,\n"
               "                1 .. %d)\n"
               "  --audit on|off  record an AuditEvent for every request (default on;\n"
               "                docs/AUDIT.md)\n",
            REST_REQUEST_TIMEOUT, REST_REQUEST_TIMEOUT_MAX, REST_IDLE_TIMEOUT,
            REST_IDLE_TIMEOUT_MAX, REST_MAX_CONNECTIONS, REST_CONNECTIONS_CEILING,
            REST_MAX_CONN_PER_CLIENT, REST_MAX_COND_DELETE, AUTH_TOKEN_LIFETIME_S,
            AUTH_TOKEN_LIFETIME_MAX);
}

/* The built-in authorization server of data directory dir and the verifier that
 * trusts its key. Its issuer is the server's base: --base-url without its
 * REST_BASE_PATH, or scheme://bind:port; the tokens' audience is the FHIR base. */
static int open_builtin(const char *dir, const rest_server_opts *o, int tls, auth_issuer **is,
                        auth_server **as, char *msg, size_t msgsz)
{
    char iss[1024], aud[1100];
    if (o->base_url) {
        size_t n = strlen(o->base_url), pl = sizeof REST_BASE_PATH - 1;
        while (n && o->base_url[n - 1] == '/')
            n--;
        snprintf(aud, sizeof aud, "%.*s", (int)n, o->base_url);
        if (n >= pl && !memcmp(o->base_url + n - pl, REST_BASE_PATH, pl))
            n -= pl;
        snprintf(iss, sizeof iss, "%.*s", (int)n, o->base_url);
    } else {
        int v6 = strchr(o->bind, ':') != NULL;
        snprintf(iss, sizeof iss, "%s://%s%s%s:%u", tls ? "https" : "http", v6 ? "[" : "",
                 o->bind, v6 ? "]" : "", o->port);
        snprintf(aud, sizeof aud, "%s" REST_BASE_PATH, iss);
    }
    int rc = auth_issuer_open(dir, iss, aud, is, msg, msgsz);
    if (rc)
        return rc;
    const char *jwks = auth_issuer_jwks(*is);
    auth_server_cfg cfg = {.jwks_text = jwks, .jwks_len = strlen(jwks), .issuer = iss,
                           .audience = aud};
    return auth_server_open(&cfg, as, msg, msgsz);
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* Load each named tenant's parameter set, so the reindex thread (which walks the
 * tenants the registry has a set for) resumes an interrupted reindex of a tenant
 * without waiting for its first request; with a configured --base-url, give it the
 * tenant's base at once. */
static void tenants_warm(tenant_reg *tg, store *st, idx_registry *params, idx_reindexer *rx,
                         const char *base_url)
{
    tenant_entry *te = tg ? calloc(TENANT_MAX, sizeof *te) : NULL;
    size_t n = te ? tenant_reg_list(tg, te, TENANT_MAX) : 0;
    size_t bl = base_url ? strlen(base_url) : 0;
    while (bl && base_url[bl - 1] == '/')
        bl--;
    for (size_t i = 0; i < n; i++) {
        store_reader *rd;
        const struct fp_sp_cache *spc;
        if (store_read_begin(st, &rd) == 0) {
            idx_registry_get(params, rd, te[i].num, &spc);
            store_read_end(rd);
        }
        char b[600];
        if (bl && snprintf(b, sizeof b, "%.*s/%s", (int)bl, base_url, te[i].name) <
                      (int)sizeof b)
            idx_reindex_kick(rx, te[i].num, b);
        else
            idx_reindex_kick(rx, te[i].num, NULL);
    }
    free(te);
}

int serve_main(int argc, char **argv)
{
    const char *data = "./hortus-data", *store_url = NULL;
    rest_server_opts o = {.port = 8080, .bind = REST_DEFAULT_BIND};
    rest_policy policy = {.validate = REST_VALIDATE_FULL, .cond_delete_max = 1,
                          .ref_integrity = 1};
    const char *tls_cert = NULL, *tls_key = NULL;
    const char *auth_jwks = NULL, *auth_issuer = NULL, *auth_audience = NULL;
    const char *auth_introspect = NULL, *auth_introspect_client = NULL;
    int auth_builtin = 0;
    unsigned token_lifetime = 0;
    int audit_on = 1;
    /* every option but --insecure and --auth-server takes one value */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            serve_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--insecure") || !strcmp(a, "--auth-server")) {
            *(a[2] == 'i' ? &o.insecure : &auth_builtin) = 1;
            i--;
            continue;
        }
        if (strcmp(a, "--data") && strcmp(a, "--store") && strcmp(a, "--base-url") &&
            strcmp(a, "--port") && strcmp(a, "--threads") && strcmp(a, "--bind") &&
            strcmp(a, "--validate") && strcmp(a, "--conditional-delete") &&
            strcmp(a, "--referential-integrity") && strcmp(a, "--unknown-profile") &&
            strcmp(a, "--tls-cert") && strcmp(a, "--tls-key") &&
            strcmp(a, "--request-timeout") && strcmp(a, "--idle-timeout") &&
            strcmp(a, "--max-connections") && strcmp(a, "--max-connections-per-client") &&
            strcmp(a, "--auth-jwks") && strcmp(a, "--auth-issuer") &&
            strcmp(a, "--auth-audience") && strcmp(a, "--auth-introspect") &&
            strcmp(a, "--auth-introspect-client") && strcmp(a, "--auth-token-lifetime") &&
            strcmp(a, "--audit")) {
            fprintf(stderr, "hortus serve: unknown option '%s'\n", a);
            serve_usage(stderr);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "hortus serve: %s needs a value\n", a);
            serve_usage(stderr);
            return 2;
        }
        if (!strcmp(a, "--data")) {
            data = v;
        } else if (!strcmp(a, "--audit")) {
            if (strcmp(v, "on") && strcmp(v, "off")) {
                fprintf(stderr, "hortus serve: bad --audit '%s' (on or off)\n", v);
                return 2;
            }
            audit_on = !strcmp(v, "on");
        } else if (!strcmp(a, "--auth-jwks")) {
            auth_jwks = v;
        } else if (!strcmp(a, "--auth-issuer")) {
            auth_issuer = v;
        } else if (!strcmp(a, "--auth-audience")) {
            auth_audience = v;
        } else if (!strcmp(a, "--auth-introspect")) {
            auth_introspect = v;
        } else if (!strcmp(a, "--auth-introspect-client")) {
            auth_introspect_client = v;
        } else if (!strcmp(a, "--auth-token-lifetime")) {
            if (parse_uint(v, AUTH_TOKEN_LIFETIME_MAX, &token_lifetime) || !token_lifetime) {
                fprintf(stderr, "hortus serve: bad --auth-token-lifetime '%s' (seconds, 1 .. %d)\n",
                        v, AUTH_TOKEN_LIFETIME_MAX);
                return 2;
            }
        } else if (!strcmp(a, "--store")) {
            store_url = v;
        } else if (!strcmp(a, "--base-url")) {
            o.base_url = v;
        } else if (!strcmp(a, "--bind")) {
            if (!*v) {
                fprintf(stderr, "hortus serve: --bind needs an address\n");
                return 2;
            }
            o.bind = v;
        } else if (!strcmp(a, "--validate")) {
            if (rest_validation_parse(v, &policy.validate)) {
                fprintf(stderr, "hortus serve: bad --validate '%s' (full, structure or off)\n",
                        v);
                return 2;
            }
        } else if (!strcmp(a, "--conditional-delete")) {
            if (strcmp(v, "single") && strcmp(v, "multiple")) {
                fprintf(stderr,
                        "hortus serve: bad --conditional-delete '%s' (single or multiple)\n", v);
                return 2;
            }
            policy.cond_delete_max = !strcmp(v, "multiple") ? REST_MAX_COND_DELETE : 1;
        } else if (!strcmp(a, "--referential-integrity")) {
            if (strcmp(v, "on") && strcmp(v, "off")) {
                fprintf(stderr, "hortus serve: bad --referential-integrity '%s' (on or off)\n",
                        v);
                return 2;
            }
            policy.ref_integrity = !strcmp(v, "on");
        } else if (!strcmp(a, "--unknown-profile")) {
            if (strcmp(v, "warn") && strcmp(v, "refuse")) {
                fprintf(stderr, "hortus serve: bad --unknown-profile '%s' (warn or refuse)\n", v);
                return 2;
            }
            policy.unknown_profile = !strcmp(v, "refuse") ? PROF_UNKNOWN_REFUSE : PROF_UNKNOWN_WARN;
        } else if (!strcmp(a, "--tls-cert") || !strcmp(a, "--tls-key")) {
            if (!*v) {
                fprintf(stderr, "hortus serve: %s needs a file\n", a);
                return 2;
            }
            *(!strcmp(a, "--tls-cert") ? &tls_cert : &tls_key) = v;
        } else if (!strcmp(a, "--request-timeout")) {
            if (parse_uint(v, REST_REQUEST_TIMEOUT_MAX, &o.request_timeout_s) ||
                !o.request_timeout_s) {
                fprintf(stderr, "hortus serve: bad --request-timeout '%s' (seconds, 1 .. %u)\n",
                        v, REST_REQUEST_TIMEOUT_MAX);
                return 2;
            }
        } else if (!strcmp(a, "--idle-timeout")) {
            if (parse_uint(v, REST_IDLE_TIMEOUT_MAX, &o.idle_timeout_s) || !o.idle_timeout_s) {
                fprintf(stderr, "hortus serve: bad --idle-timeout '%s' (seconds, 1 .. %u)\n", v,
                        REST_IDLE_TIMEOUT_MAX);
                return 2;
            }
        } else if (!strcmp(a, "--max-connections")) {
            if (parse_uint(v, REST_CONNECTIONS_CEILING, &o.max_connections) ||
                !o.max_connections) {
                fprintf(stderr, "hortus serve: bad --max-connections '%s' (1 .. %u)\n", v,
                        REST_CONNECTIONS_CEILING);
                return 2;
            }
        } else if (!strcmp(a, "--max-connections-per-client")) {
            if (parse_uint(v, REST_CONNECTIONS_CEILING, &o.max_per_client) || !o.max_per_client) {
                fprintf(stderr, "hortus serve: bad --max-connections-per-client '%s' (1 .. %u)\n",
                        v, REST_CONNECTIONS_CEILING);
                return 2;
            }
        } else if (!strcmp(a, "--port")) {
            if (parse_uint(v, 65535, &o.port)) {
                fprintf(stderr, "hortus serve: bad --port '%s'\n", v);
                return 2;
            }
        } else if (parse_uint(v, 256, &o.threads)) {
            fprintf(stderr, "hortus serve: bad --threads '%s'\n", v);
            return 2;
        }
    }
    if ((auth_jwks || auth_issuer || auth_audience) &&
        (!auth_jwks || !auth_issuer || !auth_audience || !*auth_issuer || !*auth_audience)) {
        fprintf(stderr, "hortus serve: --auth-jwks, --auth-issuer and --auth-audience go "
                        "together\n");
        return 2;
    }
    if (!auth_introspect != !auth_introspect_client ||
        (auth_introspect && strncmp(auth_introspect, "http://", 7) &&
         strncmp(auth_introspect, "https://", 8)) ||
        (auth_introspect_client && !strchr(auth_introspect_client, ':'))) {
        fprintf(stderr, "hortus serve: --auth-introspect takes an http(s):// URL and goes with "
                        "--auth-introspect-client ID:SECRET\n");
        return 2;
    }
    if (auth_builtin && (auth_jwks || auth_issuer || auth_audience || auth_introspect)) {
        fprintf(stderr, "hortus serve: --auth-server names itself issuer and audience (set "
                        "--base-url) and trusts its own key: it does not go with --auth-jwks, "
                        "--auth-issuer, --auth-audience or --auth-introspect yet\n");
        return 2;
    }
    /* the JWKS itself is checked below */
    o.auth_configured = auth_jwks || auth_introspect || auth_builtin;
    if (!tls_cert != !tls_key) {
        fprintf(stderr, "hortus serve: %s needs %s too\n", tls_cert ? "--tls-cert" : "--tls-key",
                tls_cert ? "--tls-key" : "--tls-cert");
        return 2;
    }
    /* The TLS files and the address are judged before the store is opened (which
     * may build an index for minutes); the files are read again for the daemon. */
    rest_tls tls = {0};
    char tmsg[600];
    if (tls_cert) {
        if (rest_tls_load(tls_cert, tls_key, &tls, tmsg, sizeof tmsg)) {
            fprintf(stderr, "hortus serve: %s\n", tmsg);
            return 2;
        }
        rest_tls_free(&tls);
    }
    if (token_lifetime && !auth_builtin) {
        fprintf(stderr, "hortus serve: --auth-token-lifetime goes with --auth-server\n");
        return 2;
    }
    if (auth_builtin && !o.port && !o.base_url) {
        fprintf(stderr, "hortus serve: --auth-server names its issuer by its port: give --port "
                        "N (not 0) or --base-url\n");
        return 2;
    }
    if (auth_builtin && !tls_cert && rest_bind_is_loopback(o.bind) != 1) {
        fprintf(stderr,
                "hortus serve: refusing --auth-server on '%s' without TLS: client assertions "
                "and access tokens would cross the network in clear. Give --tls-cert and "
                "--tls-key, or listen on loopback behind a TLS reverse proxy (with "
                "--base-url)\n",
                o.bind);
        return 2;
    }
    if ((auth_introspect || (auth_jwks && (!strncmp(auth_jwks, "http://", 7) ||
                                           !strncmp(auth_jwks, "https://", 8)))) &&
        auth_http_init()) {
        fprintf(stderr, "hortus serve: cannot initialise libcurl\n");
        return 1;
    }
    if (!o.auth_configured && !o.insecure && rest_bind_is_loopback(o.bind) == 0) {
        fprintf(stderr,
                "hortus serve: refusing to listen on '%s': no authorisation is configured, so "
                "anyone who can reach that address could read and write every record.\n"
                "  Listen on loopback (the default, " REST_DEFAULT_BIND
                ") behind a reverse proxy, or pass --insecure to serve it anyway "
                "(docs/DEPLOY.md)\n",
                o.bind);
        return 2;
    }
    /* Block the stop signals in every thread (MHD's and the store's inherit the
     * mask) and wait for them here. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A fixed mmap threshold: glibc's default raises it to the size of every large
     * block freed (up to 32 MiB), after which a transaction's megabytes of request
     * arena come from the thread's heap, and freed there they stay: the server held
     * ~200 MiB it did not use after a transaction ingest (docs/LIMITS.md, memory). */
    mallopt(M_MMAP_THRESHOLD, REST_MMAP_THRESHOLD);

    fp_sp_cache *spc = NULL;
    fp_error fpe;
    if (fp_sp_cache_build(&spc, &fpe)) {
        fprintf(stderr, "hortus serve: search parameters do not compile: %s\n", fpe.msg);
        return 1;
    }
    char spec[4096];
    if (store_url)
        snprintf(spec, sizeof spec, "%s", store_url);
    else
        snprintf(spec, sizeof spec, "lmdb:%s", data);
    /* HORTUS_FAULT_COMMIT_DELAY_MS: a slow disk, for the shutdown tests only */
    store_opts so = {.count_kinds = IDX_COUNT_KINDS, .count_kind_at = IDX_COUNT_KIND_AT,
                     .count_suffix = IDX_RN_LEN};
    const char *fd = getenv("HORTUS_FAULT_COMMIT_DELAY_MS");
    if (fd && *fd && parse_uint(fd, 600000, &so.fault_commit_delay_ms)) {
        fprintf(stderr, "hortus serve: bad HORTUS_FAULT_COMMIT_DELAY_MS '%s'\n", fd);
        fp_sp_cache_free(spc);
        return 2;
    }
    if (so.fault_commit_delay_ms)
        fprintf(stderr, "hortus serve: fault injection: every commit waits %u ms\n",
                so.fault_commit_delay_ms);
    /* HORTUS_INDEX_OVERLAY_BYTES: when the SearchParam overlay is folded (STORAGE.md 4.6) */
    const char *ob = getenv("HORTUS_INDEX_OVERLAY_BYTES");
    unsigned obv = 0;
    if (ob && *ob && (parse_uint(ob, 1u << 31, &obv) || obv < 1024)) {
        fprintf(stderr, "hortus serve: bad HORTUS_INDEX_OVERLAY_BYTES '%s' (1024 .. 2^31)\n", ob);
        fp_sp_cache_free(spc);
        return 2;
    }
    so.overlay_bytes = obv;
    const char *oc = getenv("HORTUS_INDEX_FOLD_CHUNK"); /* records per fold transaction */
    unsigned ocv = 0;
    if (oc && *oc && (parse_uint(oc, 1u << 24, &ocv) || ocv < 1)) {
        fprintf(stderr, "hortus serve: bad HORTUS_INDEX_FOLD_CHUNK '%s' (1 .. 2^24)\n", oc);
        fp_sp_cache_free(spc);
        return 2;
    }
    so.fold_chunk = ocv;
    /* HORTUS_HISTORY_SCAN_MAX: versions a restricted history page looks at (tests) */
    const char *hs = getenv("HORTUS_HISTORY_SCAN_MAX");
    if (hs && *hs && (parse_uint(hs, 1u << 24, &policy.history_scan_max) ||
                      !policy.history_scan_max)) {
        fprintf(stderr, "hortus serve: bad HORTUS_HISTORY_SCAN_MAX '%s' (1 .. 2^24)\n", hs);
        fp_sp_cache_free(spc);
        return 2;
    }
    /* HORTUS_INDEX_IDLE_FOLD_MS: how long the writer waits without writes before it folds
     * the overlay whatever its size; "off": only when full (tests that need unfolded
     * entries to stay) */
    const char *oi = getenv("HORTUS_INDEX_IDLE_FOLD_MS");
    unsigned oiv = 0;
    if (oi && *oi && strcmp(oi, "off") && (parse_uint(oi, 1u << 30, &oiv) || oiv < 1)) {
        fprintf(stderr, "hortus serve: bad HORTUS_INDEX_IDLE_FOLD_MS '%s' (1 .. 2^30, or off)\n",
                oi);
        fp_sp_cache_free(spc);
        return 2;
    }
    so.idle_fold_ms = oi && !strcmp(oi, "off") ? -1 : (int)oiv;
    struct store *st = NULL;
    int rc = store_open(spec, &so, &st);
    if (rc) {
        fprintf(stderr, "hortus serve: cannot open store %s: %s\n", spec, err_str(rc));
        fp_sp_cache_free(spc);
        return 1;
    }
    /* the named tenants of the directory (auth/tenant.h), read again while serving */
    tenant_reg *tenants = NULL;
    char tdir[4096];
    if (!tenant_dir_of(spec, tdir, sizeof tdir) &&
        (rc = tenant_reg_open(tdir, &tenants, tmsg, sizeof tmsg))) {
        fprintf(stderr, "hortus serve: tenants: %s\n", tmsg);
        store_close(st);
        fp_sp_cache_free(spc);
        return 1;
    }
    /* the index of a bulk load that was interrupted, and data written before the
     * search index existed, are indexed before the directory is served: in every
     * tenant (those added later start empty, with every write indexed) */
    tenant_entry *te = calloc(TENANT_MAX, sizeof *te);
    size_t nte = te && tenants ? tenant_reg_list(tenants, te, TENANT_MAX) : 0;
    rc = te ? 0 : ERR_NOMEM;
    for (size_t i = 0; i <= nte && !rc; i++) {
        uint32_t tn = i ? te[i - 1].num : REST_DEFAULT_TENANT;
        rc = idx_bulk_finish(st, tn, store_url ? NULL : data, stderr);
        if (!rc)
            rc = idx_ensure(spc, st, tn, stderr);
    }
    free(te);
    if (rc) {
        fprintf(stderr, "hortus serve: the search index cannot be built: %s\n",
                rc == ERR_UNSUPPORTED ? "the data directory has a newer index layout than "
                                        "this build"
                                      : err_str(rc));
        store_close(st);
        tenant_reg_free(tenants);
        fp_sp_cache_free(spc);
        return 1;
    }
    idx_registry *params = NULL;
    if ((rc = idx_registry_new(spc, &params))) {
        fprintf(stderr, "hortus serve: %s\n", err_str(rc));
        store_close(st);
        tenant_reg_free(tenants);
        fp_sp_cache_free(spc);
        return 1;
    }
    /* HORTUS_REINDEX_BATCH: resources per reindex commit (small ones for the tests) */
    const char *rb = getenv("HORTUS_REINDEX_BATCH");
    unsigned rbv = 0;
    if (rb && *rb && (parse_uint(rb, 1u << 20, &rbv) || rbv < 1)) {
        fprintf(stderr, "hortus serve: bad HORTUS_REINDEX_BATCH '%s' (1 .. 2^20)\n", rb);
        store_close(st);
        tenant_reg_free(tenants);
        idx_registry_free(params);
        fp_sp_cache_free(spc);
        return 2;
    }
    idx_reindexer *reindex = NULL;
    if ((rc = idx_reindex_start(st, params, o.base_url, rbv, &reindex))) {
        fprintf(stderr, "hortus serve: cannot start the reindex: %s\n", err_str(rc));
        store_close(st);
        tenant_reg_free(tenants);
        idx_registry_free(params);
        fp_sp_cache_free(spc);
        return 1;
    }
    tenants_warm(tenants, st, params, reindex, o.base_url);
    prof_registry *profiles = NULL;
    if ((rc = prof_registry_new(&profiles))) {
        fprintf(stderr, "hortus serve: %s\n", err_str(rc));
        idx_reindex_stop(reindex);
        store_close(st);
        tenant_reg_free(tenants);
        idx_registry_free(params);
        fp_sp_cache_free(spc);
        return 1;
    }
    auth_server *auth = NULL;
    struct auth_issuer *issuer = NULL; /* (auth_issuer is the option here) */
    rest_server *srv = NULL;
    char msg[600];
    if (auth_builtin) {
        rc = open_builtin(data, &o, tls_cert != NULL, &issuer, &auth, msg, sizeof msg);
        if (issuer && token_lifetime)
            auth_issuer_set_lifetime(issuer, (int)token_lifetime);
    } else if (o.auth_configured) {
        int url = auth_jwks && (!strncmp(auth_jwks, "http://", 7) ||
                                !strncmp(auth_jwks, "https://", 8));
        auth_server_cfg cfg = {.jwks_file = url ? NULL : auth_jwks,
                               .jwks_url = url ? auth_jwks : NULL,
                               .issuer = auth_issuer, .audience = auth_audience,
                               .introspect_url = auth_introspect,
                               .introspect_client = auth_introspect_client};
        rc = auth_server_open(&cfg, &auth, msg, sizeof msg);
    }
    rest_consents *consents = NULL;
    if (!rc && auth && !(consents = rest_consents_new())) {
        snprintf(msg, sizeof msg, "out of memory");
        rc = ERR_NOMEM;
    }
    audit_log *audit = NULL;
    if (!rc && audit_on && (rc = audit_open(st, &audit)))
        snprintf(msg, sizeof msg, "cannot start the audit trail: %s", err_str(rc));
    rest_services svc = {.store = st, .spc = spc, .params = params, .reindex = reindex,
                         .profiles = profiles, .policy = policy, .auth = auth,
                         .issuer = issuer, .consents = consents, .tenants = tenants,
                         .audit = audit, .answered = audit ? audit_rest_answered : NULL};
    if (!rc && tls_cert && (rc = rest_tls_load(tls_cert, tls_key, &tls, msg, sizeof msg)) == 0) {
        o.tls_cert_pem = tls.cert_pem;
        o.tls_key_pem = tls.key_pem;
    }
    if (!rc)
        rc = rest_server_start(&o, &svc, &srv, msg, sizeof msg);
    rest_tls_free(&tls); /* the daemon has its own copy */
    if (rc) {
        fprintf(stderr, "hortus serve: %s\n", msg);
        rest_consents_free(consents);
        auth_server_free(auth);
        auth_issuer_free(issuer);
        audit_close(audit);
        idx_reindex_stop(reindex);
        prof_registry_free(profiles);
        store_close(st);
        tenant_reg_free(tenants);
        idx_registry_free(params);
        fp_sp_cache_free(spc);
        return 1;
    }
    fprintf(stderr,
            "hortus %s serving FHIR R4 at %s (data: %s; %zu search-parameter expressions "
            "compiled)\n",
            HORTUS_VERSION, rest_server_url(srv), spec, fp_sp_cache_count(spc));
    if (!o.auth_configured && rest_bind_is_loopback(o.bind) == 1)
        fprintf(stderr, "hortus serve: listening on this machine only (%s): no authorisation "
                        "is configured; docs/DEPLOY.md shows how to serve a network\n",
                o.bind);
    else if (!o.auth_configured)
        fprintf(stderr, "hortus serve: WARNING: --insecure: serving %s without authorisation: "
                        "anyone who can reach it can read and write every record\n",
                o.bind);
    if (issuer)
        fprintf(stderr, "hortus: built-in authorization server at %s/auth/token; its bearer "
                        "tokens required (audience %s)\n",
                auth_issuer_url(issuer), auth_server_audience(auth));
    else if (auth && auth_jwks)
        fprintf(stderr, "hortus: bearer tokens required (issuer %s, audience %s%s%s)\n",
                auth_issuer, auth_audience, auth_introspect ? "; opaque tokens introspected at "
                                                            : "",
                auth_introspect ? auth_introspect : "");
    else if (auth)
        fprintf(stderr, "hortus: bearer tokens required, introspected at %s\n",
                auth_introspect);
    if (!audit)
        fprintf(stderr, "hortus serve: --audit off: no AuditEvents are recorded "
                        "(docs/AUDIT.md)\n");
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "hortus: signal %d, shutting down\n", sig);
    rest_server_stop(srv);
    audit_close(audit); /* commits what is queued, before the store closes */
    idx_reindex_stop(reindex); /* at the end of its batch: the cursor is committed */
    prof_registry_free(profiles);
    store_close(st);
    tenant_reg_free(tenants);
    idx_registry_free(params);
    fp_sp_cache_free(spc);
    rest_consents_free(consents);
    auth_server_free(auth);
    auth_issuer_free(issuer);
    return 0;
}
