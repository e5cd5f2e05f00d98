/*
 * plan.c -- keeping the index equal to the current versions: the index changes of
 * one write (idx_plan, called by the write pipeline's extras hook) and the check
 * of a whole tenant against its resources (idx_check, for `hortus check`).
 *
 *   ResourceParam(type/id) --decode--> old rn + old entries ----+
 *   new content --idx_extract--> new entries --------------------+--> merge of two
 *                                                                     sorted lists:
 *     only old: delete SearchParam key      only new: put SearchParam key
 *     ResourceParam: put rn + new entries (delete on a delete)
 *
 * A resource created by this write has no rn yet: its keys carry a placeholder t
 * that the writer fills with the commit's t (store_extra.fill_t / fill_t_val).
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "fhir/model.h"
#include "index/index.h"

int idx_extra_append(arena *a, store_extra **x, size_t *n, size_t *cap, store_db db, int del,
                     const void *key, size_t key_len, const void *val, size_t val_len,
                     int fill_t, size_t t_offset, int fill_t_val, size_t t_val_offset)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        store_extra *g = arena_realloc(a, *x, sizeof *g * *cap, sizeof *g * nc);
        if (!g)
            return ERR_NOMEM;
        *x = g;
        *cap = nc;
    }
    void *k = arena_alloc(a, key_len ? key_len : 1);
    void *v = val_len ? arena_alloc(a, val_len) : NULL;
    if (!k || (val_len && !v))
        return ERR_NOMEM;
    memcpy(k, key, key_len);
    if (val_len)
        memcpy(v, val, val_len);
    (*x)[(*n)++] = (store_extra){.db = db, .del = del, .key = k, .key_len = key_len, .val = v,
                                 .val_len = val_len, .fill_t = fill_t, .t_offset = t_offset,
                                 .fill_t_val = fill_t_val, .t_val_offset = t_val_offset};
    return 0;
}

static int put_entry_key(idx_add_fn add, void *ctx, uint32_t tenant, const idx_entry *e,
                         const uint8_t rn[IDX_RN_LEN], int del, int fill)
{
    uint8_t k[STORE_EXTRA_KEY_MAX];
    if (4 + 4 + 1 + (size_t)e->len + IDX_RN_LEN > sizeof k)
        return ERR_TOOBIG;
    size_t n = idx_sp_key(k, tenant, e, rn);
    return add(ctx, STORE_DB_SEARCH_PARAM, del, k, n, NULL, 0, fill, n - IDX_RN_LEN, 0, 0);
}

int idx_plan(const struct fp_sp_cache *spc, store_reader *rd, arena *a, uint32_t tenant,
             const char *type, const char *id, const json_val *res, const char *base_url,
             uint16_t op_index, idx_add_fn add, void *add_ctx)
{
    uint8_t rpk[4 + 65 + 65];
    size_t rpn = idx_rp_key(rpk, tenant, type, id);
    const void *val;
    size_t vlen;
    idx_set old = {0}, cur = {0};
    uint8_t rn[IDX_RN_LEN];
    int have_old = 0;
    int rc = store_get(rd, STORE_DB_RESOURCE_PARAM, rpk, rpn, &val, &vlen);
    if (rc == 0) {
        rc = idx_rp_decode(a, val, vlen, rn, &old);
        if (rc)
            return rc == ERR_INVALID ? ERR_IO : rc;
        have_old = 1;
    } else if (rc != ERR_NOTFOUND) {
        return rc;
    }
    if (res && (rc = idx_extract(spc, a, type, res, base_url, &cur)))
        return rc;
    int fill = 0;
    if (!have_old) {
        memset(rn, 0, 8); /* the commit's t, filled in by the writer */
        rn[8] = (uint8_t)(op_index >> 8);
        rn[9] = (uint8_t)op_index;
        fill = 1;
    }
    /* merge the two sorted lists */
    size_t i = 0, j = 0;
    while (i < old.n || j < cur.n) {
        int c = i == old.n ? 1 : j == cur.n ? -1 : idx_entry_cmp(&old.e[i], &cur.e[j]);
        if (c < 0)
            rc = put_entry_key(add, add_ctx, tenant, &old.e[i++], rn, 1, 0);
        else if (c > 0)
            rc = put_entry_key(add, add_ctx, tenant, &cur.e[j++], rn, 0, fill);
        else
            i++, j++; /* unchanged */
        if (rc)
            return rc;
    }
    if (!res) {
        if (!have_old)
            return 0;
        rc = add(add_ctx, STORE_DB_RESOURCE_PARAM, 1, rpk, rpn, NULL, 0, 0, 0, 0, 0);
        if (rc)
            return rc;
        uint8_t rk[4 + 1 + 65 + IDX_RN_LEN];
        size_t rkn = idx_rn_key(rk, tenant, type, rn);
        if ((rc = add(add_ctx, STORE_DB_AUX, 1, rk, rkn, NULL, 0, 0, 0, 0, 0)))
            return rc;
        rkn = idx_gone_key(rk, tenant, type, rn); /* for pages of searches begun before */
        return add(add_ctx, STORE_DB_AUX, 0, rk, rkn, id, strlen(id), 0, 0, 0, 0);
    }
    buf b = BUF_INIT;
    idx_rp_encode(&b, rn, &cur);
    if (b.err) {
        buf_free(&b);
        return ERR_NOMEM;
    }
    rc = add(add_ctx, STORE_DB_RESOURCE_PARAM, 0, rpk, rpn, b.data, b.len, 0, 0, fill, 0);
    buf_free(&b);
    if (rc || have_old)
        return rc;
    uint8_t rk[4 + 1 + 65 + IDX_RN_LEN];
    size_t rkn = idx_rn_key(rk, tenant, type, rn);
    return add(add_ctx, STORE_DB_AUX, 0, rk, rkn, id, strlen(id), 1, rkn - IDX_RN_LEN, 0, 0);
}

/* ---- check ------------------------------------------------------------------------- */

static int fail(char *msg, size_t cap, const char *fmt, const char *type, const char *id)
{
    if (msg && cap)
        snprintf(msg, cap, fmt, type, id);
    return ERR_INTERNAL;
}

/* Every key of a database in tenant must be accounted for: counts them. */
static int count_keys(store_reader *rd, store_db db, uint32_t tenant, uint8_t sub, uint64_t *n)
{
    uint8_t p[5] = {(uint8_t)(tenant >> 24), (uint8_t)(tenant >> 16), (uint8_t)(tenant >> 8),
                    (uint8_t)tenant, sub};
    store_iter *it;
    int rc = store_scan(rd, db, NULL, 0, p, sub ? 5 : 4, &it);
    if (rc)
        return rc;
    const void *k, *v;
    size_t kn, vn;
    *n = 0;
    while ((rc = store_scan_next(it, &k, &kn, &v, &vn)) == 0)
        (*n)++;
    store_iter_close(it);
    return rc == ERR_NOTFOUND ? 0 : rc;
}

/* Every counted value's count (store_key_count) is the number of its keys in this
 * snapshot, as a scan of SearchParam finds them. Nothing to check when the store keeps
 * no counts. */
static int check_counts(store_reader *rd, uint32_t tenant, char *msg, size_t cap)
{
    uint8_t p[4];
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(tenant >> (24 - 8 * i));
    store_iter *it;
    int rc = store_scan(rd, STORE_DB_SEARCH_PARAM, p, 4, p, 4, &it);
    if (rc)
        return rc;
    uint8_t cur[STORE_EXTRA_KEY_MAX];
    size_t curn = 0;
    uint64_t run = 0;
    const void *k, *v;
    size_t kn, vn;
    for (;;) {
        int end = (rc = store_scan_next(it, &k, &kn, &v, &vn)) != 0;
        const uint8_t *kb = k;
        int counted = !end && kn > IDX_COUNT_KIND_AT + IDX_RN_LEN &&
                      strchr(IDX_COUNT_KINDS, kb[IDX_COUNT_KIND_AT]) && kb[IDX_COUNT_KIND_AT];
        size_t pn = counted ? kn - IDX_RN_LEN : 0;
        if (curn && (end || pn != curn || memcmp(cur, kb, pn))) {
            uint64_t n;
            int crc = store_key_count(rd, STORE_DB_SEARCH_PARAM, cur, curn, &n);
            if (crc == ERR_UNSUPPORTED)
                break; /* the store keeps no counts */
            if (crc || n != run) {
                store_iter_close(it);
                if (crc)
                    return crc;
                snprintf(msg, cap, "SearchCount: a value counted %llu times has %llu keys",
                         (unsigned long long)n, (unsigned long long)run);
                return ERR_INTERNAL;
            }
            curn = 0;
        }
        if (end)
            break;
        if (counted && !curn) {
            memcpy(cur, kb, pn);
            curn = pn;
            run = 0;
        }
        if (counted)
            run++;
    }
    store_iter_close(it);
    return rc == ERR_NOTFOUND || rc == 0 ? 0 : rc;
}

int idx_check(const struct fp_sp_cache *spc, store *s, uint32_t tenant, char *msg, size_t cap,
              uint64_t *nres, uint64_t *nentries)
{
    store_reader *rd;
    int rc = store_read_begin(s, &rd);
    if (rc)
        return rc;
    arena *a = arena_new(1 << 16);
    if (!a) {
        store_read_end(rd);
        return ERR_NOMEM;
    }
    uint64_t resources = 0, entries = 0;
    const fhir_type *const *types;
    size_t ntypes = fhir_resource_types(&types);
    for (size_t ti = 0; ti < ntypes && !rc; ti++) {
        const fhir_type *t = types[ti];
        store_iter *it;
        if ((rc = store_list(rd, tenant, t->name, 0, NULL, &it)))
            break;
        store_version v;
        while (rc == 0 && (rc = store_iter_next(it, &v)) == 0) {
            arena_reset(a);
            char *copy = arena_strndup(a, v.bytes, v.len);
            json_val *root;
            if (!copy || json_parse(a, copy, v.len, 0, &root, NULL)) {
                rc = fail(msg, cap, "%s/%s: the stored content does not parse", v.type, v.id);
                break;
            }
            idx_set want;
            if ((rc = idx_extract(spc, a, v.type, root, "", &want)))
                break;
            uint8_t rpk[4 + 65 + 65];
            size_t rpn = idx_rp_key(rpk, tenant, v.type, v.id);
            const void *val;
            size_t vlen;
            idx_set have;
            uint8_t rn[IDX_RN_LEN];
            if (store_get(rd, STORE_DB_RESOURCE_PARAM, rpk, rpn, &val, &vlen) ||
                idx_rp_decode(a, val, vlen, rn, &have)) {
                rc = fail(msg, cap, "%s/%s has no (or a malformed) ResourceParam entry", v.type,
                          v.id);
                break;
            }
            for (size_t i = 0; i < have.n; i++) {
                uint8_t k[STORE_EXTRA_KEY_MAX];
                size_t kn = idx_sp_key(k, tenant, &have.e[i], rn);
                const void *x;
                size_t xn;
                if (store_get(rd, STORE_DB_SEARCH_PARAM, k, kn, &x, &xn)) {
                    rc = fail(msg, cap, "%s/%s: a SearchParam entry of its ResourceParam list "
                                        "is missing",
                              v.type, v.id);
                    break;
                }
            }
            if (rc)
                break;
            /* The stored list and the content's entries must be the same set. The one
             * allowed difference: a reference to this server by absolute URL, indexed as
             * a local one when written (the base URL of that request is not known here),
             * and so the entries within that patient it led to. */
            for (size_t i = 0, j = 0; (i < want.n || j < have.n) && !rc;) {
                int c = i == want.n ? 1 : j == have.n ? -1 : idx_entry_cmp(&want.e[i], &have.e[j]);
                uint8_t kd = c < 0 ? want.e[i].kind : c > 0 ? have.e[j].kind : 0;
                if (c == 0) {
                    i++, j++;
                } else if (kd == IDX_REF || kd == IDX_PAT_TOKEN || kd == IDX_PAT_DATE ||
                           kd == IDX_PAT_OVER) {
                    c < 0 ? i++ : j++;
                } else {
                    rc = fail(msg, cap,
                              c < 0 ? "%s/%s: an entry of its content is not indexed"
                                    : "%s/%s: it lists an entry its content does not give",
                              v.type, v.id);
                }
            }
            if (rc)
                break;
            uint8_t rk[4 + 1 + 65 + IDX_RN_LEN];
            size_t rkn = idx_rn_key(rk, tenant, v.type, rn);
            if (store_get(rd, STORE_DB_AUX, rk, rkn, &val, &vlen) || vlen != strlen(v.id) ||
                memcmp(val, v.id, vlen)) {
                rc = fail(msg, cap, "%s/%s: its resource number does not lead back to it",
                          v.type, v.id);
                break;
            }
            resources++;
            entries += have.n;
        }
        store_iter_close(it);
        if (rc == ERR_NOTFOUND)
            rc = 0;
        if (rc)
            break;
    }
    uint64_t nsp = 0, nrp = 0, nrn = 0;
    if (!rc && !(rc = count_keys(rd, STORE_DB_SEARCH_PARAM, tenant, 0, &nsp)) &&
        !(rc = count_keys(rd, STORE_DB_RESOURCE_PARAM, tenant, 0, &nrp)) &&
        !(rc = count_keys(rd, STORE_DB_AUX, tenant, 'r', &nrn))) {
        if (nrp != resources || nrn != resources)
            rc = fail(msg, cap, "%s%s: index entries of resources that have no current version",
                      nrp != resources ? "ResourceParam" : "Aux", "");
        else if (nsp != entries)
            rc = fail(msg, cap, "%s%s: SearchParam entries that no current version lists",
                      "SearchParam", "");
    }
    if (!rc)
        rc = check_counts(rd, tenant, msg, cap);
    arena_free(a);
    store_read_end(rd);
    if (nres)
        *nres = resources;
    if (nentries)
        *nentries = entries;
    return rc;
}
