/*
 * registry.c -- the profiles of each tenant: every StructureDefinition of a snapshot,
 * compiled, kept until a StructureDefinition is written again (profile.h).
 *
 * The pattern of the SearchParameter registry (src/index/params.c): every write of a
 * StructureDefinition (create, update, delete) puts the commit's t under the Aux key
 * tenant | "pprofile" (the write pipeline adds it, src/rest/write.c); a request reads
 * that generation from its snapshot and rebuilds the tenant's set when it is past the
 * set's stamp, under the registry's lock. A write validated against a set commits only
 * if the generation is still the set's (prof_gen_cond), so no resource is stored under
 * profiles it was not checked against.
 *
 *   slot[tenant] --cur--> set {stamp, refs, arena, entries sorted by url}
 *                              entry {url, version, lastUpdated, prof_def}
 *
 * A set is reference counted: the slot holds one reference, each request one while it
 * validates; a set replaced by a newer one is freed when its last holder releases it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "profile/profile.h"

#define PROF_MAX_TENANTS 256

typedef struct entry {
    const char *url, *version;
    int64_t lu;
    prof_def *def;
} entry;

struct prof_set {
    atomic_int refs;
    uint64_t stamp;
    arena *a;
    entry *e;
    size_t n;
};

typedef struct slot {
    int used;
    uint32_t tenant;
    prof_set *cur;
} slot;

struct prof_registry {
    pthread_mutex_t mu;
    slot slots[PROF_MAX_TENANTS];
};

size_t prof_gen_key(uint8_t *out, uint32_t tenant)
{
    out[0] = (uint8_t)(tenant >> 24);
    out[1] = (uint8_t)(tenant >> 16);
    out[2] = (uint8_t)(tenant >> 8);
    out[3] = (uint8_t)tenant;
    memcpy(out + 4, "pprofile", 8);
    return PROF_GEN_KEY_LEN;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint64_t gen_of(store_reader *rd, uint32_t tenant)
{
    uint8_t k[PROF_GEN_KEY_LEN];
    const void *v;
    size_t vn;
    if (store_get(rd, STORE_DB_AUX, k, prof_gen_key(k, tenant), &v, &vn) || vn != 8)
        return 0;
    return get_u64(v);
}

void prof_gen_cond(const prof_set *s, uint32_t tenant, uint8_t *kbuf, uint8_t *vbuf,
                   store_cond *c)
{
    uint64_t stamp = s ? s->stamp : 0;
    for (int i = 0; i < 8; i++)
        vbuf[i] = (uint8_t)(stamp >> (56 - 8 * i));
    *c = (store_cond){.kind = STORE_COND_VALUE, .db = STORE_DB_AUX, .key = kbuf,
                      .key_len = prof_gen_key(kbuf, tenant), .val = vbuf, .val_len = 8,
                      .absent = stamp == 0};
}

uint64_t prof_set_stamp(const prof_set *s)
{
    return s ? s->stamp : 0;
}

static void set_free(prof_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        prof_def_free(s->e[i].def);
    arena_free(s->a);
    free(s);
}

void prof_set_release(const prof_set *cs)
{
    prof_set *s = (prof_set *)cs;
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        set_free(s);
}

int prof_registry_new(prof_registry **out)
{
    prof_registry *g = calloc(1, sizeof *g);
    if (!g)
        return ERR_NOMEM;
    pthread_mutex_init(&g->mu, NULL);
    *out = g;
    return 0;
}

void prof_registry_free(prof_registry *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < PROF_MAX_TENANTS; i++)
        prof_set_release(g->slots[i].cur);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static int entry_cmp(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    int c = strcmp(a->url, b->url);
    if (c)
        return c;
    return a->lu < b->lu ? 1 : a->lu > b->lu ? -1 : 0; /* the newest first */
}

static int build(store_reader *rd, uint32_t tenant, uint64_t gen, prof_set **out)
{
    prof_set *s = calloc(1, sizeof *s);
    arena *a = s ? arena_new(1 << 16) : NULL;
    if (!a) {
        free(s);
        return ERR_NOMEM;
    }
    s->a = a;
    s->stamp = gen;
    atomic_init(&s->refs, 1);
    size_t cap = 0;
    store_iter *it;
    int rc = store_list(rd, tenant, "StructureDefinition", 0, NULL, &it);
    store_version v;
    while (!rc && (rc = store_iter_next(it, &v)) == 0) {
        if (s->n >= PROF_MAX_PER_TENANT)
            break;
        char *copy = arena_strndup(a, v.bytes, v.len);
        json_val *root;
        if (!copy) {
            rc = ERR_NOMEM;
            break;
        }
        if (json_parse(a, copy, v.len, 0, &root, NULL))
            continue; /* the store holds valid JSON only */
        const char *url = json_get_str(root, "url");
        if (!url)
            continue; /* nothing can name it */
        prof_def *d;
        if ((rc = prof_compile(a, root, &d))) {
            prof_def_free(d);
            break;
        }
        if (s->n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            entry *m = arena_realloc(a, s->e, sizeof *m * cap, sizeof *m * nc);
            if (!m) {
                prof_def_free(d);
                rc = ERR_NOMEM;
                break;
            }
            s->e = m;
            cap = nc;
        }
        s->e[s->n++] = (entry){.url = url, .version = json_get_str(root, "version"),
                               .lu = v.last_updated, .def = d};
    }
    store_iter_close(it);
    if (rc == ERR_NOTFOUND)
        rc = 0;
    if (rc) {
        set_free(s);
        return rc;
    }
    if (s->n)
        qsort(s->e, s->n, sizeof *s->e, entry_cmp);
    *out = s;
    return 0;
}

int prof_registry_get(prof_registry *g, store_reader *rd, uint32_t tenant, const prof_set **out)
{
    uint64_t gen = gen_of(rd, tenant);
    int rc = 0;
    pthread_mutex_lock(&g->mu);
    slot *s = NULL;
    for (size_t i = 0; i < PROF_MAX_TENANTS && !s; i++)
        if (!g->slots[i].used || g->slots[i].tenant == tenant)
            s = &g->slots[i];
    if (!s) {
        rc = ERR_LIMIT;
    } else {
        s->used = 1;
        s->tenant = tenant;
        /* a snapshot older than the set keeps the newer set: its generation can only
         * be older when a StructureDefinition was written since, and then the write
         * being validated is planned again (prof_gen_cond) */
        if (!s->cur || s->cur->stamp < gen) {
            prof_set *nc = NULL;
            rc = build(rd, tenant, gen, &nc);
            if (!rc) {
                prof_set_release(s->cur);
                s->cur = nc;
            }
        }
        if (!rc) {
            atomic_fetch_add(&s->cur->refs, 1);
            *out = s->cur;
        }
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

const prof_def *prof_set_find(const prof_set *s, const char *canonical)
{
    if (!s || !s->n)
        return NULL;
    const char *bar = strchr(canonical, '|');
    size_t un = bar ? (size_t)(bar - canonical) : strlen(canonical);
    /* binary search for the first entry of the url */
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strncmp(s->e[mid].url, canonical, un);
        if (c == 0 && s->e[mid].url[un])
            c = 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < s->n; i++) {
        const entry *e = &s->e[i];
        if (strlen(e->url) != un || strncmp(e->url, canonical, un))
            break;
        if (!bar || (e->version && !strcmp(e->version, bar + 1)))
            return e->def;
    }
    return NULL;
}

static const prof_def *set_find(const void *ctx, const char *canonical)
{
    return prof_set_find(ctx, canonical);
}

int prof_validate(arena *a, const prof_set *s, const char *canonical, const json_val *res,
                  const char *type, oo *out)
{
    return prof_check(a, set_find, s, canonical, res, type, out);
}

int prof_validate_claims(arena *a, const prof_set *s, const json_val *res, const char *type,
                         prof_unknown unknown, oo *out, int *checked)
{
    if (checked)
        *checked = 0;
    const json_val *ps = json_get(json_get(res, "meta"), "profile");
    int bad = 0;
    for (uint32_t i = 0; ps && ps->type == JSON_ARRAY && i < ps->n; i++) {
        if (ps->u.items[i].type != JSON_STRING)
            continue;
        const char *u = ps->u.items[i].u.s;
        if (!prof_is_core(u) && checked)
            *checked = 1;
        int rc = prof_validate(a, s, u, res, type, out);
        if (rc == ERR_NOTFOUND) {
            char msg[600], where[40];
            snprintf(msg, sizeof msg, "profile %.400s is not known to this server; %s", u,
                     unknown == PROF_UNKNOWN_REFUSE
                         ? "a resource claiming it is refused (--unknown-profile refuse)"
                         : "not validated against it");
            snprintf(where, sizeof where, "%s.meta.profile[%u]", type, i);
            if (oo_add(out, unknown == PROF_UNKNOWN_REFUSE ? OO_ERROR : OO_WARNING,
                       unknown == PROF_UNKNOWN_REFUSE ? OO_NOT_FOUND : OO_NOT_SUPPORTED, msg,
                       where))
                return ERR_NOMEM;
            bad |= unknown == PROF_UNKNOWN_REFUSE;
        } else if (rc == ERR_INVALID) {
            bad = 1;
        } else if (rc) {
            return rc;
        }
    }
    return bad ? ERR_INVALID : 0;
}
