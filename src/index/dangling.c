/*
 * dangling.c -- the references of a bulk load that point nowhere (see index.h).
 *
 * An import keeps references as they are written, in any order of files and lines, so
 * whether a target exists is known only at the end. This walks the ResourceParam
 * records of the load's resources (numbered after `from`), takes each local reference
 * entry (kind R, "id\0 Type\0") and asks the store for the target's current version.
 * Targets already asked about are remembered in an open-addressing table (a load
 * refers to the same patients and encounters over and over), so the cost is one
 * lookup per distinct target; the table is emptied when it reaches
 * IDX_DANGLING_CACHE entries, which bounds its memory whatever the load's size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "index/index.h"

#define IDX_DANGLING_CACHE (1u << 21) /* targets remembered (slots: at most twice as many) */
#define IDX_DANGLING_PER_RES 64       /* targets of one resource checked for repeats */

typedef struct slot {
    uint64_t h; /* 0: empty */
    char *key;  /* "Type/id" */
    int live;
} slot;

typedef struct cache {
    slot *s;
    size_t cap, n;
} cache;

static void cache_clear(cache *c)
{
    for (size_t i = 0; i < c->cap; i++)
        free(c->s[i].key);
    memset(c->s, 0, sizeof *c->s * c->cap);
    c->n = 0;
}

/* The slot of key (found, or the empty one where it goes). */
static slot *cache_find(cache *c, const char *key, size_t n, uint64_t h)
{
    size_t i = (size_t)h & (c->cap - 1);
    for (;; i = (i + 1) & (c->cap - 1)) {
        slot *s = &c->s[i];
        if (!s->h || (s->h == h && !strncmp(s->key, key, n) && !s->key[n]))
            return s;
    }
}

/* 1 when Type/id has a live current version, 0 when not, or the store's error. */
static int target_live(store_reader *rd, cache *c, uint32_t tenant, const char *type,
                       const char *id)
{
    char key[2 * IDX_MAX_VALUE + 2];
    int n = snprintf(key, sizeof key, "%s/%s", type, id);
    if (n < 0 || (size_t)n >= sizeof key)
        return 0;
    uint64_t h = hash_u64(key, (size_t)n, 0x5eed) | 1;
    slot *s = cache_find(c, key, (size_t)n, h);
    if (s->h)
        return s->live;
    store_version v;
    int rc = store_read(rd, tenant, type, id, &v);
    if (rc && rc != ERR_NOTFOUND && rc != ERR_GONE && rc != ERR_INVALID)
        return rc;
    if (c->n == IDX_DANGLING_CACHE) {
        cache_clear(c);
        s = cache_find(c, key, (size_t)n, h);
    } else if (2 * (c->n + 1) > c->cap) { /* grow, at most to 2 x IDX_DANGLING_CACHE */
        cache g = {.cap = 2 * c->cap, .n = c->n};
        if (!(g.s = calloc(g.cap, sizeof *g.s)))
            return ERR_NOMEM;
        for (size_t i = 0; i < c->cap; i++)
            if (c->s[i].h) {
                const char *k = c->s[i].key;
                *cache_find(&g, k, strlen(k), c->s[i].h) = c->s[i];
            }
        free(c->s);
        *c = g;
        s = cache_find(c, key, (size_t)n, h);
    }
    if (!(s->key = strdup(key)))
        return ERR_NOMEM;
    s->h = h;
    s->live = rc == 0;
    c->n++;
    return s->live;
}

int idx_dangling(store *st, uint32_t tenant, uint64_t from, idx_dangling_fn fn, void *ctx,
                 uint64_t *nrefs)
{
    *nrefs = 0;
    cache c = {.cap = 4096};
    if (!(c.s = calloc(c.cap, sizeof *c.s)))
        return ERR_NOMEM;
    arena *a = arena_new(1 << 20);
    store_reader *rd = NULL;
    int rc = a ? store_read_begin(st, &rd) : ERR_NOMEM;
    store_iter *it = NULL;
    uint8_t pfx[4] = {(uint8_t)(tenant >> 24), (uint8_t)(tenant >> 16), (uint8_t)(tenant >> 8),
                      (uint8_t)tenant};
    if (!rc)
        rc = store_scan(rd, STORE_DB_RESOURCE_PARAM, NULL, 0, pfx, 4, &it);
    const void *k, *v;
    size_t kn, vn, nrec = 0;
    while (!rc && (rc = store_scan_next(it, &k, &kn, &v, &vn)) == 0) {
        uint8_t rn[IDX_RN_LEN];
        idx_set s;
        if (vn < IDX_RN_LEN || kn < 6 || idx_get_u64(v) <= from)
            continue;
        if ((rc = idx_rp_decode(a, v, vn, rn, &s)))
            break;
        /* the referring resource: key tenant(4) | type\0 | id\0 */
        const char *type = (const char *)k + 4;
        size_t tl = strnlen(type, kn - 4);
        const char *id = type + tl + 1;
        const idx_entry *seen[IDX_DANGLING_PER_RES];
        size_t nseen = 0;
        for (size_t i = 0; i < s.n && !rc; i++) {
            const idx_entry *e = &s.e[i];
            if (e->kind != IDX_REF || !e->len || e->val[0] == '#')
                continue;
            size_t il = idx_str_len(e->val, e->len);
            if (!il || il >= e->len)
                continue;
            const char *tid = (const char *)e->val, *tt = tid + il;
            size_t ttl = strnlen(tt, e->len - il);
            if (!ttl || ttl == e->len - il)
                continue; /* a canonical or an absolute URL: not a resource of here */
            int dup = 0;
            for (size_t j = 0; j < nseen && !dup; j++)
                dup = seen[j]->len == e->len && !memcmp(seen[j]->val, e->val, e->len);
            if (dup)
                continue;
            if (nseen < IDX_DANGLING_PER_RES)
                seen[nseen++] = e;
            int live = target_live(rd, &c, tenant, tt, tid);
            if (live < 0) {
                rc = live;
            } else if (!live) {
                ++*nrefs;
                fn(ctx, type, id, tt, tid);
            }
        }
        if (++nrec % 4096 == 0)
            arena_reset(a);
    }
    if (rc == ERR_NOTFOUND)
        rc = 0;
    store_iter_close(it);
    if (rd)
        store_read_end(rd);
    arena_free(a);
    cache_clear(&c);
    free(c.s);
    return rc;
}
