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
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "fhir/model.h"
#include "fhirpath/spcache.h"
#include "index/index.h"
#include "index/params.h"

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

static int entry_cmp_void(const void *a, const void *b)
{
    return idx_entry_cmp(a, b);
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

int idx_cond_append(arena *a, store_cond **x, size_t *n, size_t *cap, const store_cond *c)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        store_cond *g = arena_realloc(a, *x, sizeof *g * *cap, sizeof *g * nc);
        if (!g)
            return ERR_NOMEM;
        *x = g;
        *cap = nc;
    }
    store_cond d = *c;
    d.key = c->key_len ? arena_strndup(a, c->key, c->key_len) : NULL;
    d.val = c->val_len ? arena_strndup(a, c->val, c->val_len) : NULL;
    d.type = c->type ? arena_strndup(a, c->type, strlen(c->type)) : NULL;
    d.id = c->id ? arena_strndup(a, c->id, strlen(c->id)) : NULL;
    if ((c->key_len && !d.key) || (c->val_len && !d.val) || (c->type && !d.type) ||
        (c->id && !d.id))
        return ERR_NOMEM;
    (*x)[(*n)++] = d;
    return 0;
}

int idx_sink_add(void *ctx, store_db db, int del, const void *key, size_t key_len,
                 const void *val, size_t val_len, int fill_t, size_t t_offset, int fill_t_val,
                 size_t t_val_offset)
{
    idx_sink *s = ctx;
    return idx_extra_append(s->a, &s->x, &s->nx, &s->capx, db, del, key, key_len, val, val_len,
                            fill_t, t_offset, fill_t_val, t_val_offset);
}

int idx_sink_cond(void *ctx, const store_cond *c)
{
    idx_sink *s = ctx;
    return idx_cond_append(s->a, &s->c, &s->nc, &s->capc, c);
}

void idx_params_cond(const struct fp_sp_cache *spc, uint32_t tenant, uint8_t *kbuf,
                     uint8_t *vbuf, store_cond *c)
{
    uint64_t stamp = fp_sp_cache_stamp(spc);
    idx_put_u64(vbuf, stamp);
    *c = (store_cond){.kind = STORE_COND_VALUE, .db = STORE_DB_AUX, .key = kbuf,
                      .key_len = idx_params_key(kbuf, tenant), .val = vbuf, .val_len = 8,
                      .absent = stamp == 0};
}

/* The merge of two sorted entry lists into deletes and puts of SearchParam keys. */
static int diff_entries(const idx_set *old, const idx_entry *cur, size_t ncur, uint32_t tenant,
                        const uint8_t rn[IDX_RN_LEN], int fill, idx_add_fn add, void *add_ctx)
{
    size_t i = 0, j = 0;
    int rc = 0;
    while (i < old->n || j < ncur) {
        int c = i == old->n ? 1 : j == ncur ? -1 : idx_entry_cmp(&old->e[i], &cur[j]);
        if (c < 0)
            rc = put_entry_key(add, add_ctx, tenant, &old->e[i++], rn, 1, 0);
        else if (c > 0)
            rc = put_entry_key(add, add_ctx, tenant, &cur[j++], rn, 0, fill);
        else
            i++, j++; /* unchanged */
        if (rc)
            return rc;
    }
    return 0;
}

/* The record of custom parameter cu of type/id: its entries in `cur` (all of the
 * resource's, sorted: those of cu->tag are one run), against its record under rd. */
static int plan_custom(const fp_sp_custom *cu, store_reader *rd, arena *a, uint32_t tenant,
                       const char *id, const idx_set *cur, int deleting,
                       const uint8_t rn[IDX_RN_LEN], int fill, idx_add_fn add,
                       idx_cond_fn cond, void *add_ctx)
{
    uint8_t ck[IDX_CUSTOM_KEY_MAX];
    size_t ckn = idx_custom_key(ck, tenant, cu->tag, id);
    const void *val = NULL;
    size_t vlen = 0;
    idx_set old = {0};
    uint8_t orn[IDX_RN_LEN];
    int rc = store_get(rd, STORE_DB_RESOURCE_PARAM, ck, ckn, &val, &vlen);
    int have = rc == 0;
    if (rc && rc != ERR_NOTFOUND)
        return rc;
    if (have && idx_rp_decode(a, val, vlen, orn, &old))
        return ERR_IO;
    if (cond) {
        store_cond c = {.kind = STORE_COND_VALUE, .db = STORE_DB_RESOURCE_PARAM, .key = ck,
                        .key_len = ckn, .val = val, .val_len = have ? vlen : 0,
                        .absent = !have};
        if ((rc = cond(add_ctx, &c)))
            return rc;
    }
    size_t lo = 0, n = 0;
    while (lo < cur->n && cur->e[lo].sp != cu->tag)
        lo++;
    while (lo + n < cur->n && cur->e[lo + n].sp == cu->tag)
        n++;
    if ((rc = diff_entries(&old, cur->e + lo, n, tenant, rn, fill, add, add_ctx)))
        return rc;
    if (deleting || !n)
        return have ? add(add_ctx, STORE_DB_RESOURCE_PARAM, 1, ck, ckn, NULL, 0, 0, 0, 0, 0) : 0;
    idx_set mine = {.e = (idx_entry *)cur->e + lo, .n = n};
    buf b = BUF_INIT;
    idx_rp_encode(&b, rn, &mine);
    rc = b.err ? ERR_NOMEM
               : add(add_ctx, STORE_DB_RESOURCE_PARAM, 0, ck, ckn, b.data, b.len, 0, 0, fill, 0);
    buf_free(&b);
    return rc;
}

int idx_plan_param(const struct fp_sp_cache *spc, const fp_sp_custom *cu, store_reader *rd,
                   arena *a, uint32_t tenant, const char *id, const json_val *res,
                   const char *base_url, idx_add_fn add, void *add_ctx)
{
    uint8_t rpk[4 + 65 + 65];
    size_t rpn = idx_rp_key(rpk, tenant, cu->base, id);
    const void *val;
    size_t vlen;
    int rc = store_get(rd, STORE_DB_RESOURCE_PARAM, rpk, rpn, &val, &vlen);
    if (rc)
        return rc;
    if (vlen < IDX_RN_LEN)
        return ERR_IO;
    uint8_t rn[IDX_RN_LEN];
    memcpy(rn, val, IDX_RN_LEN);
    idx_set cur;
    if ((rc = idx_extract_one(spc, a, cu->base, &cu->def, res, base_url, &cur)))
        return rc;
    /* no condition on the record: only a write of the resource changes it besides this
     * reindex, and that write changes the version, which the caller's condition covers */
    return plan_custom(cu, rd, a, tenant, id, &cur, 0, rn, 0, add, NULL, add_ctx);
}

int idx_plan(const struct fp_sp_cache *spc, store_reader *rd, arena *a, uint32_t tenant,
             const char *type, const char *id, const json_val *res, const char *base_url,
             uint16_t op_index, idx_add_fn add, idx_cond_fn cond, void *add_ctx)
{
    uint8_t rpk[4 + 65 + 65];
    size_t rpn = idx_rp_key(rpk, tenant, type, id);
    const void *val;
    size_t vlen;
    idx_set old = {0}, cur = {0};
    uint8_t rn[IDX_RN_LEN];
    int have_old = 0;
    int rc;
    if (cond) {
        uint8_t kb[IDX_PARAMS_KEY_LEN], vb[8];
        store_cond c;
        idx_params_cond(spc, tenant, kb, vb, &c);
        if ((rc = cond(add_ctx, &c)))
            return rc;
    }
    rc = store_get(rd, STORE_DB_RESOURCE_PARAM, rpk, rpn, &val, &vlen);
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
    /* the custom parameters' entries go to their own records; the rest is the list */
    const fp_sp_custom *cs;
    size_t ncs = fp_sp_customs(spc, &cs);
    idx_set model = cur;
    if (ncs && cur.n) {
        model.e = arena_alloc(a, sizeof *model.e * cur.n);
        if (!model.e)
            return ERR_NOMEM;
        model.n = 0;
        for (size_t i = 0; i < cur.n; i++) {
            int custom = 0;
            for (size_t k = 0; k < ncs && !custom; k++)
                custom = cs[k].tag == cur.e[i].sp && !strcmp(cs[k].base, type);
            if (!custom)
                model.e[model.n++] = cur.e[i];
        }
    }
    for (size_t k = 0; k < ncs; k++)
        if (!strcmp(cs[k].base, type) && (have_old || res) &&
            (rc = plan_custom(&cs[k], rd, a, tenant, id, &cur, !res, rn, fill, add, cond,
                              add_ctx)))
            return rc;
    if ((rc = diff_entries(&old, model.e, model.n, tenant, rn, fill, add, add_ctx)))
        return rc;
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
    idx_rp_encode(&b, rn, &model);
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

int idx_entries(const struct fp_sp_cache *spc, store_reader *rd, arena *a, uint32_t tenant,
                const char *type, const char *id, uint8_t rn[IDX_RN_LEN], idx_set *es)
{
    uint8_t k[4 + 65 + 65];
    size_t kn = idx_rp_key(k, tenant, type, id);
    const void *val;
    size_t vlen;
    int rc = store_get(rd, STORE_DB_RESOURCE_PARAM, k, kn, &val, &vlen);
    if (rc)
        return rc;
    if (idx_rp_decode(a, val, vlen, rn, es))
        return ERR_IO;
    const fp_sp_custom *cs;
    size_t ncs = fp_sp_customs(spc, &cs), more = 0;
    for (size_t i = 0; i < ncs; i++) {
        if (strcmp(cs[i].base, type))
            continue;
        uint8_t ck[IDX_CUSTOM_KEY_MAX], crn[IDX_RN_LEN];
        size_t ckn = idx_custom_key(ck, tenant, cs[i].tag, id);
        idx_set one;
        if ((rc = store_get(rd, STORE_DB_RESOURCE_PARAM, ck, ckn, &val, &vlen)) == ERR_NOTFOUND)
            continue;
        if (rc)
            return rc;
        if (idx_rp_decode(a, val, vlen, crn, &one))
            return ERR_IO;
        if (!one.n)
            continue;
        idx_entry *m = arena_alloc(a, sizeof *m * (es->n + one.n));
        if (!m)
            return ERR_NOMEM;
        memcpy(m, es->e, sizeof *m * es->n);
        memcpy(m + es->n, one.e, sizeof *m * one.n);
        es->e = m;
        es->n += one.n;
        more = 1;
    }
    if (more)
        qsort(es->e, es->n, sizeof *es->e, entry_cmp_void);
    return 0;
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

/* The records of custom parameters (tenant | 0x01 | tag | id): those of the current
 * parameters must number `expect` (each found from its resource); those of earlier
 * definitions (a SearchParameter updated or deleted since) are left behind with their
 * entries, which must all exist: *old_records and *old_entries count them. */
static int check_custom_records(store_reader *rd, arena *a, const fp_sp_cache *spc,
                                uint32_t tenant, uint64_t expect, uint64_t *old_records,
                                uint64_t *old_entries, char *msg, size_t cap)
{
    const fp_sp_custom *cs;
    size_t ncs = fp_sp_customs(spc, &cs);
    uint8_t p[5] = {(uint8_t)(tenant >> 24), (uint8_t)(tenant >> 16), (uint8_t)(tenant >> 8),
                    (uint8_t)tenant, IDX_CUSTOM_RP};
    store_iter *it;
    int rc = store_scan(rd, STORE_DB_RESOURCE_PARAM, NULL, 0, p, 5, &it);
    if (rc)
        return rc;
    const void *k, *v;
    size_t kn, vn;
    uint64_t current = 0;
    while ((rc = store_scan_next(it, &k, &kn, &v, &vn)) == 0) {
        const uint8_t *kb = k;
        if (kn < 10)
            continue;
        uint32_t tag = (uint32_t)kb[5] << 24 | (uint32_t)kb[6] << 16 | (uint32_t)kb[7] << 8 | kb[8];
        int cur = 0;
        for (size_t i = 0; i < ncs && !cur; i++)
            cur = cs[i].tag == tag;
        if (cur) {
            current++;
            continue;
        }
        idx_set es;
        uint8_t rn[IDX_RN_LEN];
        if (idx_rp_decode(a, v, vn, rn, &es)) {
            rc = fail(msg, cap, "%s%s: a malformed record of a custom parameter", "", "");
            break;
        }
        for (size_t i = 0; i < es.n && !rc; i++) {
            uint8_t sk[STORE_EXTRA_KEY_MAX];
            size_t skn = idx_sp_key(sk, tenant, &es.e[i], rn);
            const void *x;
            size_t xn;
            if (store_get(rd, STORE_DB_SEARCH_PARAM, sk, skn, &x, &xn))
                rc = fail(msg, cap, "%s%s: an entry of an earlier custom parameter is missing",
                          "", "");
        }
        (*old_records)++;
        *old_entries += es.n;
    }
    store_iter_close(it);
    if (rc == ERR_NOTFOUND)
        rc = 0;
    if (!rc && current != expect)
        rc = fail(msg, cap, "%s%s: records of custom parameters of resources that have no "
                            "current version",
                  "ResourceParam", "");
    return rc;
}

int idx_check(const struct fp_sp_cache *spc, store *s, uint32_t tenant, char *msg, size_t cap,
              uint64_t *nres, uint64_t *nentries)
{
    store_reader *rd;
    int rc = store_read_begin(s, &rd);
    if (rc)
        return rc;
    arena *a = arena_new(1 << 16);
    idx_registry *reg = NULL;
    const fp_sp_cache *model = spc;
    if (!a || (rc = idx_registry_new(model, &reg)) ||
        (rc = idx_registry_get(reg, rd, tenant, &spc))) {
        idx_registry_free(reg);
        arena_free(a);
        store_read_end(rd);
        return rc ? rc : ERR_NOMEM;
    }
    if (idx_bulk_pending(rd, tenant)) {
        fail(msg, cap, "the keys of a bulk load are not written yet (hortus import or hortus "
                       "serve on this directory writes them)%s%s", "", "");
        idx_registry_free(reg);
        arena_free(a);
        store_read_end(rd);
        return ERR_INTERNAL;
    }
    /* the custom parameters whose reindex is still running: their entries may be
     * missing (not wrong) */
    const fp_sp_custom *cs;
    size_t ncs = fp_sp_customs(spc, &cs);
    uint32_t partial[IDX_MAX_CUSTOM];
    size_t npartial = 0;
    for (size_t i = 0; i < ncs; i++)
        if (!idx_reindex_complete(rd, tenant, &cs[i]))
            partial[npartial++] = cs[i].tag;
    uint64_t custom_records = 0;
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
                idx_entries(spc, rd, a, tenant, v.type, v.id, rn, &have)) {
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
                uint32_t dsp = c < 0 ? want.e[i].sp : c > 0 ? have.e[j].sp : 0;
                int unfinished = 0;
                for (size_t k = 0; k < npartial && c < 0 && !unfinished; k++)
                    unfinished = partial[k] == dsp; /* not reindexed yet */
                if (c == 0) {
                    i++, j++;
                } else if (kd == IDX_REF || kd == IDX_PAT_TOKEN || kd == IDX_PAT_DATE ||
                           kd == IDX_PAT_OVER || unfinished) {
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
            for (size_t k = 0; k < ncs; k++) {
                uint8_t ck[IDX_CUSTOM_KEY_MAX];
                size_t ckn = idx_custom_key(ck, tenant, cs[k].tag, v.id);
                if (!strcmp(cs[k].base, v.type) &&
                    !store_get(rd, STORE_DB_RESOURCE_PARAM, ck, ckn, &val, &vlen))
                    custom_records++;
            }
        }
        store_iter_close(it);
        if (rc == ERR_NOTFOUND)
            rc = 0;
        if (rc)
            break;
    }
    uint64_t nsp = 0, nrp = 0, nrn = 0, old_entries = 0, old_records = 0;
    if (!rc)
        rc = check_custom_records(rd, a, spc, tenant, custom_records, &old_records,
                                  &old_entries, msg, cap);
    if (!rc && !(rc = count_keys(rd, STORE_DB_SEARCH_PARAM, tenant, 0, &nsp)) &&
        !(rc = count_keys(rd, STORE_DB_RESOURCE_PARAM, tenant, 0, &nrp)) &&
        !(rc = count_keys(rd, STORE_DB_AUX, tenant, 'r', &nrn))) {
        nrp -= custom_records + old_records;
        nsp -= old_entries;
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
    idx_registry_free(reg);
    if (nres)
        *nres = resources;
    if (nentries)
        *nentries = entries;
    return rc;
}
