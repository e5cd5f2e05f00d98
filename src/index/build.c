/*
 * build.c -- the search index of data written before the index existed (idx_ensure).
 *
 * A data directory written by an earlier build holds resources without index entries;
 * serving it as it is would answer every search as if they did not exist. So at start
 * the server looks for the marker Aux key `tenant | 'i' | "search-index"`: present,
 * the index is complete; absent (or naming an older layout, IDX_MARKER_OLDER), every
 * current resource is indexed now, in requests of IDX_BUILD_BATCH resources (extras
 * only, each its own commit), then the marker is written. An interrupted build resumes: a resource that already has its entries
 * plans no change (idx_plan diffs against its ResourceParam value). Resources indexed
 * here are numbered by the build's commits, type by type in id order.
 *
 *   for each type, each page of IDX_BUILD_BATCH current resources (one snapshot):
 *       idx_plan(resource) -> extras     then   end snapshot, store_write(extras)
 *   store_write(marker)
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "fhir/model.h"
#include "index/index.h"

#define IDX_BUILD_BATCH 500
#define IDX_MARKER "search-index"
#define IDX_MARKER_VERSION "5" /* 2: Timing.repeat.boundsPeriod; 3: composites,
                                  canonical versions, contained references; 4: entries
                                  within a patient; 5: Location.position (near) */
#define IDX_MARKER_OLDER "1234" /* layouts this build brings up to date at start */

static size_t marker_key(uint8_t *k, uint32_t tenant)
{
    k[0] = (uint8_t)(tenant >> 24);
    k[1] = (uint8_t)(tenant >> 16);
    k[2] = (uint8_t)(tenant >> 8);
    k[3] = (uint8_t)tenant;
    k[4] = 'i';
    memcpy(k + 5, IDX_MARKER, sizeof IDX_MARKER - 1);
    return 5 + sizeof IDX_MARKER - 1;
}

/* Index one page of current resources of type after `after` (NULL: from the first).
 * *last gets the last id seen (in a), *done 1 at the end of the type. */
static int build_page(const struct fp_sp_cache *spc, store *st, arena *a, uint32_t tenant,
                      const char *type, const char *after, const char **last, int *done,
                      uint64_t *nres)
{
    store_reader *rd;
    int rc = store_read_begin(st, &rd);
    if (rc)
        return rc;
    store_iter *it;
    if ((rc = store_list(rd, tenant, type, 0, after, &it))) {
        store_read_end(rd);
        return rc;
    }
    idx_sink s = {.a = a};
    size_t n = 0;
    store_version v;
    *done = 0;
    while (n < IDX_BUILD_BATCH && (rc = store_iter_next(it, &v)) == 0) {
        char *copy = arena_strndup(a, v.bytes, v.len);
        json_val *root;
        if (!copy || json_parse(a, copy, v.len, 0, &root, NULL)) {
            rc = copy ? ERR_INTERNAL : ERR_NOMEM;
            break;
        }
        *last = arena_strndup(a, v.id, strlen(v.id));
        /* base "" : absolute references to this server were not recognised when the
         * data was written either; they are indexed as the URLs they are */
        rc = idx_plan(spc, rd, a, tenant, type, v.id, root, "", (uint16_t)n, idx_sink_add, NULL, &s);
        if (rc)
            break;
        n++;
    }
    if (rc == ERR_NOTFOUND) {
        rc = 0;
        *done = 1;
    }
    store_iter_close(it);
    store_read_end(rd); /* never wait for a write while holding a reader */
    if (rc || !*last)
        return rc;
    if (s.nx) {
        store_req req = {.tenant = tenant, .extras = s.x, .nextra = s.nx};
        rc = store_write(st, &req, NULL);
    }
    *nres += n;
    return rc;
}

int idx_ensure(const struct fp_sp_cache *spc, store *st, uint32_t tenant, FILE *log)
{
    uint8_t mk[32];
    size_t mn = marker_key(mk, tenant);
    store_reader *rd;
    int rc = store_read_begin(st, &rd);
    if (rc)
        return rc;
    const void *val;
    size_t vn;
    int have = store_get(rd, STORE_DB_AUX, mk, mn, &val, &vn) == 0;
    int current = have && vn == sizeof IDX_MARKER_VERSION - 1 &&
                  !memcmp(val, IDX_MARKER_VERSION, vn);
    uint64_t total = 0, versions = 0;
    store_count(rd, tenant, NULL, &total, &versions);
    store_read_end(rd);
    if (current)
        return 0;
    int older = have && vn == 1 && memchr(IDX_MARKER_OLDER, *(const char *)val,
                                          sizeof IDX_MARKER_OLDER - 1);
    if (have && !older)
        return ERR_UNSUPPORTED; /* a newer layout than this build knows */
    if (total && log)
        fprintf(log,
                older ? "hortus: bringing the search index of %llu resources up to this "
                        "build's layout (resumes if interrupted)\n"
                      : "hortus: building the search index of %llu resources written before "
                        "it existed (resumes if interrupted)\n",
                (unsigned long long)total);
    const fhir_type *const *types;
    size_t nt = fhir_resource_types(&types);
    arena *a = arena_new(1 << 20);
    if (!a)
        return ERR_NOMEM;
    uint64_t done_res = 0;
    for (size_t i = 0; i < nt && !rc && total; i++) {
        char after[72]; /* the last id of the previous page: outlives the arena's reset */
        int first = 1, done = 0;
        while (!done && !rc) {
            arena_reset(a);
            const char *last = NULL;
            rc = build_page(spc, st, a, tenant, types[i]->name, first ? NULL : after, &last,
                            &done, &done_res);
            if (rc || !last)
                break;
            snprintf(after, sizeof after, "%s", last);
            first = 0;
        }
    }
    arena_free(a);
    if (rc)
        return rc;
    store_extra m = {.db = STORE_DB_AUX, .key = mk, .key_len = mn, .val = IDX_MARKER_VERSION,
                     .val_len = sizeof IDX_MARKER_VERSION - 1};
    store_req req = {.tenant = tenant, .extras = &m, .nextra = 1};
    rc = store_write(st, &req, NULL);
    if (!rc && total && log)
        fprintf(log, "hortus: search index built: %llu resources\n",
                (unsigned long long)done_res);
    return rc;
}
