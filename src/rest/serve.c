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
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/err.h"
#include "cli.h"
#include "fhirpath/spcache.h"
#include "index/params.h"
#include "index/reindex.h"
#include "index/index.h"
#include "profile/profile.h"
#include "rest/server.h"
#include "rest/write.h"
#include "rest/limits.h"
#include "store/store.h"

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: hortus serve [--data DIR] [--store lmdb:DIR] [--bind ADDR] [--port N] "
               "[--threads N] [--base-url URL]\n"
               "                    [--validate full|structure|off] "
               "[--conditional-delete single|multiple]\n"
               "                    [--referential-integrity on|off] "
               "[--unknown-profile warn|refuse]\n"
               "  --bind ADDR   address to listen on (default " REST_DEFAULT_BIND
               ", this machine only;\n"
               "                0.0.0.0 or :: for every interface)\n"
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
               "  --auth-jwks FILE  require SMART on FHIR bearer tokens (JWT) signed by a key\n"
               "                of this JWKS, issued by --auth-issuer for --auth-audience\n"
               "                (all three together; docs/AUTH.md)\n",
            REST_MAX_COND_DELETE);
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

int serve_main(int argc, char **argv)
{
    const char *data = "./hortus-data", *store_url = NULL;
    rest_server_opts o = {.port = 8080, .bind = REST_DEFAULT_BIND};
    rest_policy policy = {.validate = REST_VALIDATE_FULL, .cond_delete_max = 1,
                          .ref_integrity = 1};
    const char *auth_jwks = NULL, *auth_issuer = NULL, *auth_audience = NULL;
    for (int i = 1; i < argc; i += 2) { /* every option takes one value */
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            serve_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--data") && strcmp(a, "--store") && strcmp(a, "--base-url") &&
            strcmp(a, "--port") && strcmp(a, "--threads") && strcmp(a, "--bind") &&
            strcmp(a, "--validate") && strcmp(a, "--conditional-delete") &&
            strcmp(a, "--referential-integrity") && strcmp(a, "--unknown-profile") &&
            strcmp(a, "--auth-jwks") && strcmp(a, "--auth-issuer") &&
            strcmp(a, "--auth-audience")) {
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
        } else if (!strcmp(a, "--auth-jwks")) {
            auth_jwks = v;
        } else if (!strcmp(a, "--auth-issuer")) {
            auth_issuer = v;
        } else if (!strcmp(a, "--auth-audience")) {
            auth_audience = v;
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
    /* Block the stop signals in every thread (MHD's and the store's inherit the
     * mask) and wait for them here. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

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
    struct store *st = NULL;
    int rc = store_open(spec, &so, &st);
    if (rc) {
        fprintf(stderr, "hortus serve: cannot open store %s: %s\n", spec, err_str(rc));
        fp_sp_cache_free(spc);
        return 1;
    }
    /* the index of a bulk load that was interrupted, and data written before the
     * search index existed, are indexed before the directory is served */
    rc = idx_bulk_finish(st, REST_DEFAULT_TENANT, store_url ? NULL : data, stderr);
    if (!rc)
        rc = idx_ensure(spc, st, REST_DEFAULT_TENANT, stderr);
    if (rc) {
        fprintf(stderr, "hortus serve: the search index cannot be built: %s\n",
                rc == ERR_UNSUPPORTED ? "the data directory has a newer index layout than "
                                        "this build"
                                      : err_str(rc));
        store_close(st);
        fp_sp_cache_free(spc);
        return 1;
    }
    idx_registry *params = NULL;
    if ((rc = idx_registry_new(spc, &params))) {
        fprintf(stderr, "hortus serve: %s\n", err_str(rc));
        store_close(st);
        fp_sp_cache_free(spc);
        return 1;
    }
    /* HORTUS_REINDEX_BATCH: resources per reindex commit (small ones for the tests) */
    const char *rb = getenv("HORTUS_REINDEX_BATCH");
    unsigned rbv = 0;
    if (rb && *rb && (parse_uint(rb, 1u << 20, &rbv) || rbv < 1)) {
        fprintf(stderr, "hortus serve: bad HORTUS_REINDEX_BATCH '%s' (1 .. 2^20)\n", rb);
        store_close(st);
        idx_registry_free(params);
        fp_sp_cache_free(spc);
        return 2;
    }
    idx_reindexer *reindex = NULL;
    if ((rc = idx_reindex_start(st, params, o.base_url, rbv, &reindex))) {
        fprintf(stderr, "hortus serve: cannot start the reindex: %s\n", err_str(rc));
        store_close(st);
        idx_registry_free(params);
        fp_sp_cache_free(spc);
        return 1;
    }
    prof_registry *profiles = NULL;
    if ((rc = prof_registry_new(&profiles))) {
        fprintf(stderr, "hortus serve: %s\n", err_str(rc));
        idx_reindex_stop(reindex);
        store_close(st);
        idx_registry_free(params);
        fp_sp_cache_free(spc);
        return 1;
    }
    auth_server *auth = NULL;
    char amsg[300];
    if (auth_jwks &&
        auth_server_load(auth_jwks, auth_issuer, auth_audience, &auth, amsg, sizeof amsg)) {
        fprintf(stderr, "hortus serve: %s\n", amsg);
        idx_reindex_stop(reindex);
        prof_registry_free(profiles);
        store_close(st);
        idx_registry_free(params);
        fp_sp_cache_free(spc);
        return 1;
    }
    rest_services svc = {.store = st, .spc = spc, .params = params, .reindex = reindex,
                         .profiles = profiles, .policy = policy, .auth = auth};
    rest_server *srv = NULL;
    char msg[300];
    rc = rest_server_start(&o, &svc, &srv, msg, sizeof msg);
    if (rc) {
        fprintf(stderr, "hortus serve: %s\n", msg);
        auth_server_free(auth);
        idx_reindex_stop(reindex);
        prof_registry_free(profiles);
        store_close(st);
        idx_registry_free(params);
        fp_sp_cache_free(spc);
        return 1;
    }
    fprintf(stderr,
            "hortus %s serving FHIR R4 at %s (data: %s; %zu search-parameter expressions "
            "compiled)\n",
            HORTUS_VERSION, rest_server_url(srv), spec, fp_sp_cache_count(spc));
    if (auth)
        fprintf(stderr, "hortus: bearer tokens required (issuer %s, audience %s)\n",
                auth_issuer, auth_audience);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "hortus: signal %d, shutting down\n", sig);
    rest_server_stop(srv);
    idx_reindex_stop(reindex); /* at the end of its batch: the cursor is committed */
    prof_registry_free(profiles);
    store_close(st);
    idx_registry_free(params);
    fp_sp_cache_free(spc);
    auth_server_free(auth);
    return 0;
}
