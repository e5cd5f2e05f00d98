/*
 * check_cli.c -- `hortus check`: verify a data directory. The store's own
 * invariants first (store_check: version indices, content hashes, counts, commit
 * log), then the search index against every current version (idx_check). It lives
 * here, above both, because the store knows nothing of search parameters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit/audit_cli.h"
#include "auth/tenant.h"
#include "base/err.h"
#include "cli.h"
#include "fhirpath/spcache.h"
#include "index/index.h"
#include "store/store.h"

int check_main(int argc, char **argv)
{
    const char *where = "./hortus-data";
    int audit_only = 0;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "--data") || !strcmp(argv[i], "--store")) && i + 1 < argc) {
            where = argv[++i];
        } else if (!strcmp(argv[i], "--audit") && i + 1 < argc) {
            where = argv[++i]; /* the audit chain alone */
            audit_only = 1;
        } else {
            fprintf(stderr, "usage: hortus check [--data DIR | --store lmdb:DIR | --audit DIR]\n");
            return 2;
        }
    }
    /* Do not create an empty database for a mistyped path. */
    char path[4096];
    struct stat st_file;
    const char *dir = strncmp(where, "lmdb:", 5) ? where : where + 5;
    if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path ||
        stat(path, &st_file) != 0) {
        fprintf(stderr, "hortus check: no database in %s\n", dir);
        return 1;
    }
    store *s;
    int rc = store_open(where, NULL, &s);
    if (rc) {
        fprintf(stderr, "hortus check: cannot open %s: %s\n", where, err_str(rc));
        return 1;
    }
    if (audit_only) {
        rc = audit_cli_check(s);
        store_close(s);
        return rc;
    }
    char msg[512];
    rc = store_check(s, msg, sizeof msg);
    store_stats st;
    store_get_stats(s, &st);
    uint64_t current = 0, versions = 0;
    store_reader *r;
    if (store_read_begin(s, &r) == 0) {
        store_count(r, 0, NULL, &current, &versions);
        store_read_end(r);
    }
    printf("%s: t %llu, %llu current resources, %llu versions (tenant 0), %.1f MiB used\n", where,
           (unsigned long long)st.last_t, (unsigned long long)current, (unsigned long long)versions,
           (double)st.used_bytes / 1048576.0);
    if (rc) {
        printf("PROBLEM: %s\n", msg);
        store_close(s);
        return 1;
    }
    printf("ok: indices, content hashes, counts and the commit log agree\n");
    fp_sp_cache *spc = NULL;
    fp_error fe;
    if (fp_sp_cache_build(&spc, &fe)) {
        printf("PROBLEM: search parameters do not compile: %s\n", fe.msg);
        store_close(s);
        return 1;
    }
    uint64_t nres = 0, nent = 0;
    rc = idx_check(spc, s, 0, msg, sizeof msg, &nres, &nent);
    if (rc)
        printf("PROBLEM: search index: %s\n", msg);
    else
        printf("ok: search index: %llu resources, %llu entries, each the entries of its "
               "current version\n",
               (unsigned long long)nres, (unsigned long long)nent);
    /* the index of every named tenant (auth/tenant.h) */
    tenant_entry *te = calloc(TENANT_MAX, sizeof *te);
    size_t nte = 0;
    if (!te || tenant_load(dir, te, &nte, msg, sizeof msg)) {
        printf("PROBLEM: tenants: %s\n", te ? msg : "out of memory");
        rc = rc ? rc : ERR_IO;
    }
    for (size_t i = 0; i < nte && !rc; i++) {
        rc = idx_check(spc, s, te[i].num, msg, sizeof msg, &nres, &nent);
        if (rc)
            printf("PROBLEM: search index of tenant %s: %s\n", te[i].name, msg);
        else
            printf("ok: search index of tenant %s (%u): %llu resources, %llu entries\n",
                   te[i].name, (unsigned)te[i].num, (unsigned long long)nres,
                   (unsigned long long)nent);
    }
    free(te);
    fp_sp_cache_free(spc);
    int arc = audit_cli_check(s);
    store_close(s);
    return rc || arc ? 1 : 0;
}
