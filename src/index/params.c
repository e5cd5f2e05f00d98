/*
 * params.c -- the parameter set of each tenant: the model's search parameters and the
 * custom ones its active SearchParameter resources define (params.h).
 *
 * A set is found by its tenant in a fixed table of slots whose current set is an atomic
 * pointer: a request costs one Aux read (the generation of its snapshot) and a compare.
 * Only a snapshot past the current set rebuilds it, under the registry's lock, from the
 * SearchParameter resources of that snapshot (a few dozen at most in practice).
 */
#include "index/params.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "fhir/model.h"
#include "index/index.h"

typedef struct slot {
    _Atomic uint32_t used; /* 1 once tenant is set */
    uint32_t tenant;
    _Atomic(fp_sp_cache *) cur;   /* NULL: the model's parameters alone */
    _Atomic uint64_t checked_t;   /* a snapshot t whose generation was the set's */
} slot;

typedef struct kept {
    fp_sp_cache *c;
    struct kept *next;
} kept;

struct idx_registry {
    const fp_sp_cache *model;
    pthread_mutex_t mu;
    slot slots[IDX_MAX_TENANTS];
    kept *all; /* every set built: freed with the registry */
};

int idx_registry_new(const fp_sp_cache *model, idx_registry **out)
{
    idx_registry *g = calloc(1, sizeof *g);
    if (!g)
        return ERR_NOMEM;
    g->model = model;
    pthread_mutex_init(&g->mu, NULL);
    *out = g;
    return 0;
}

void idx_registry_free(idx_registry *g)
{
    if (!g)
        return;
    for (kept *k = g->all, *n; k; k = n) {
        n = k->next;
        fp_sp_cache_free(k->c);
        free(k);
    }
    pthread_mutex_destroy(&g->mu);
    free(g);
}

uint64_t idx_params_gen(store_reader *rd, uint32_t tenant)
{
    uint8_t k[IDX_PARAMS_KEY_LEN];
    size_t kn = idx_params_key(k, tenant);
    const void *v;
    size_t vn;
    if (store_get(rd, STORE_DB_AUX, k, kn, &v, &vn) || vn != 8)
        return 0;
    return idx_get_u64(v);
}

/* ---- one SearchParameter ------------------------------------------------------------- */

static int refuse(char *msg, size_t cap, const char *fmt, const char *a, const char *b)
{
    snprintf(msg, cap, fmt, a ? a : "", b ? b : "");
    return ERR_INVALID;
}

static int code_ok(const char *c)
{
    size_t n = strlen(c);
    if (!n || n > 64 || c[0] == '_' || c[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((c[i] >= 'a' && c[i] <= 'z') || (c[i] >= 'A' && c[i] <= 'Z') ||
              (c[i] >= '0' && c[i] <= '9') || c[i] == '-' || c[i] == '_'))
            return 0;
    return 1;
}

static const char *const SP_TYPES[] = {"", "number", "date", "string", "token",
                                       "reference", "composite", "quantity", "uri", "special"};

int idx_sp_parse(const fp_sp_cache *cur, arena *a, const json_val *res, const char *id,
                 uint64_t vid, fp_sp_custom **out, size_t *n, char *msg, size_t cap)
{
    *out = NULL;
    *n = 0;
    const char *status = json_get_str(res, "status");
    const char *url = json_get_str(res, "url");
    if (!status || strcmp(status, "active"))
        return 0; /* draft, retired, unknown: stored, not searchable */
    if (!url)
        return refuse(msg, cap, "SearchParameter.url is required", NULL, NULL);
    if (fhir_search_param_by_url(url))
        return 0; /* the model's own definition: already built in */
    const char *code = json_get_str(res, "code");
    if (!code || !code_ok(code))
        return refuse(msg, cap,
                      "SearchParameter.code '%.64s' must be 1-64 letters, digits, '-' or '_', "
                      "not starting with '_' or '-'",
                      code, NULL);
    const char *tname = json_get_str(res, "type");
    fhir_sp_type type = 0;
    for (int i = 1; tname && i < (int)(sizeof SP_TYPES / sizeof *SP_TYPES); i++)
        if (!strcmp(tname, SP_TYPES[i]))
            type = (fhir_sp_type)i;
    if (!type)
        return refuse(msg, cap, "SearchParameter.type '%.40s' is not a search parameter type",
                      tname, NULL);
    if (type == FHIR_SP_COMPOSITE || type == FHIR_SP_SPECIAL)
        return refuse(msg, cap,
                      "SearchParameter.type '%s': custom parameters of this type are not "
                      "supported (number, date, string, token, reference, quantity and uri are)",
                      tname, NULL);
    const char *expr = json_get_str(res, "expression");
    if (!expr)
        return refuse(msg, cap,
                      "SearchParameter.expression is required: hortus indexes by FHIRPath "
                      "(xpath alone is not supported)",
                      NULL, NULL);
    fp_error fe;
    fp_expr *x = fp_compile(expr, &fe);
    if (!x)
        return refuse(msg, cap, "SearchParameter.expression does not compile: %.200s", fe.msg,
                      NULL);
    fp_free(x);
    const json_val *bases = json_get(res, "base");
    if (!bases || bases->type != JSON_ARRAY || !bases->n)
        return refuse(msg, cap, "SearchParameter.base is required", NULL, NULL);
    const fp_sp_custom *have_cs;
    size_t nhave = fp_sp_customs(cur, &have_cs), mine = 0;
    for (size_t i = 0; i < nhave; i++)
        mine += !strcmp(have_cs[i].id, id);
    if (nhave - mine + bases->n > IDX_MAX_CUSTOM)
        return refuse(msg, cap,
                      "more than IDX_MAX_CUSTOM (%s) custom parameters (one per base) in this "
                      "tenant",
                      "1000", NULL);
    const json_val *tg = json_get(res, "target");
    size_t ntg = tg && tg->type == JSON_ARRAY ? tg->n : 0;
    if (ntg > 200)
        return refuse(msg, cap, "SearchParameter.target lists too many types", NULL, NULL);
    const char **targets = arena_zalloc(a, sizeof *targets * (ntg + 1));
    fp_sp_custom *cs = arena_zalloc(a, sizeof *cs * bases->n);
    if (!targets || !cs)
        return ERR_NOMEM;
    for (size_t i = 0; i < ntg; i++) {
        const json_val *t = &tg->u.items[i];
        if (t->type != JSON_STRING || !fhir_resource_type(t->u.s, strlen(t->u.s)))
            return refuse(msg, cap, "SearchParameter.target '%.64s' is not a resource type",
                          t->type == JSON_STRING ? t->u.s : "?", NULL);
        targets[i] = t->u.s;
    }
    for (size_t i = 0; i < bases->n; i++) {
        const json_val *b = &bases->u.items[i];
        const char *bn = b->type == JSON_STRING ? b->u.s : "?";
        if (b->type != JSON_STRING || !fhir_resource_type(bn, strlen(bn)))
            return refuse(msg, cap,
                          "SearchParameter.base '%.64s' is not a concrete resource type "
                          "(name each type: Resource and DomainResource are not supported)",
                          bn, NULL);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(cs[k].base, bn))
                return refuse(msg, cap, "SearchParameter.base lists %.64s twice", bn, NULL);
        const fhir_search_param *have = fp_sp_find(cur, bn, code);
        const fp_sp_custom *hc = have ? fp_sp_custom_of(cur, have) : NULL;
        if (have && !hc) {
            char what[200];
            snprintf(what, sizeof what, "%.64s of %.64s", code, bn);
            return refuse(msg, cap,
                          "SearchParameter.code: %s is a parameter of the R4 model; choose "
                          "another code%s",
                          what, NULL);
        }
        if (hc && strcmp(hc->id, id)) {
            char what[200];
            snprintf(what, sizeof what, "%.64s of %.64s", code, bn);
            return refuse(msg, cap, "SearchParameter.code: %s is defined by SearchParameter/%s",
                          what, hc->id);
        }
        char key[200];
        snprintf(key, sizeof key, "%s\001%s\001%llu", code, id, (unsigned long long)vid);
        cs[i] = (fp_sp_custom){
            .base = bn,
            .def = {.code = code, .url = url, .type = type, .expression = expr,
                    .ntargets = (uint8_t)(ntg > 255 ? 255 : ntg), .targets = targets},
            .tag = idx_sp_hash(bn, key),
            .id = id,
            .vid = vid,
        };
    }
    *out = cs;
    *n = bases->n;
    return 0;
}

/* ---- the sets ------------------------------------------------------------------------- */

/* Build tenant's set from the SearchParameter resources of rd. */
static int build(idx_registry *g, store_reader *rd, uint32_t tenant, uint64_t gen,
                 fp_sp_cache **out)
{
    arena *a = arena_new(1 << 16);
    if (!a)
        return ERR_NOMEM;
    fp_sp_custom *all = NULL;
    size_t n = 0, cap = 0;
    fp_sp_cache *cur = NULL;
    store_iter *it;
    int rc = store_list(rd, tenant, "SearchParameter", 0, NULL, &it);
    store_version v;
    while (!rc && (rc = store_iter_next(it, &v)) == 0) {
        char *copy = arena_strndup(a, v.bytes, v.len);
        json_val *root;
        if (!copy || json_parse(a, copy, v.len, 0, &root, NULL))
            continue;
        char *id = arena_strndup(a, v.id, strlen(v.id));
        fp_sp_custom *cs;
        size_t nc;
        char msg[300];
        /* a definition refused when written is left out */
        if (!id || idx_sp_parse(g->model, a, root, id, v.vid, &cs, &nc, msg, sizeof msg) ||
            !nc)
            continue;
        /* two definitions of one code on a base (written concurrently): the first by
         * id keeps it */
        int clash = 0;
        for (size_t i = 0; i < nc && !clash; i++)
            for (size_t k = 0; k < n && !clash; k++)
                clash = !strcmp(all[k].base, cs[i].base) && !strcmp(all[k].def.code, cs[i].def.code);
        if (clash)
            continue;
        if (n + nc > IDX_MAX_CUSTOM)
            break;
        if (n + nc > cap) {
            size_t ncap = (n + nc) * 2;
            fp_sp_custom *m = arena_realloc(a, all, sizeof *all * cap, sizeof *all * ncap);
            if (!m) {
                rc = ERR_NOMEM;
                break;
            }
            all = m;
            cap = ncap;
        }
        memcpy(all + n, cs, sizeof *cs * nc);
        n += nc;
    }
    store_iter_close(it);
    if (rc == ERR_NOTFOUND)
        rc = 0;
    if (!rc) {
        fp_error fe;
        rc = fp_sp_cache_extend(g->model, all, n, gen, &cur, &fe);
    }
    arena_free(a);
    if (rc) {
        fp_sp_cache_free(cur);
        return rc;
    }
    *out = cur;
    return 0;
}

static slot *find_slot(idx_registry *g, uint32_t tenant, int add)
{
    for (size_t i = 0; i < IDX_MAX_TENANTS; i++) {
        slot *s = &g->slots[i];
        if (!atomic_load(&s->used))
            return add ? s : NULL;
        if (s->tenant == tenant)
            return s;
    }
    return NULL;
}

int idx_registry_get(idx_registry *g, store_reader *rd, uint32_t tenant,
                     const fp_sp_cache **out)
{
    /* A snapshot no newer than one whose generation was already found equal to the
     * set's cannot have a newer generation: no read at all (the read path's case). */
    uint64_t t = store_reader_t(rd);
    slot *s = find_slot(g, tenant, 0);
    fp_sp_cache *c = s ? atomic_load(&s->cur) : NULL;
    if (s && t <= atomic_load(&s->checked_t)) {
        *out = c ? c : g->model;
        return 0;
    }
    uint64_t gen = idx_params_gen(rd, tenant);
    if (s && fp_sp_cache_stamp(c) >= gen) {
        uint64_t seen = atomic_load(&s->checked_t);
        while (t > seen && !atomic_compare_exchange_weak(&s->checked_t, &seen, t))
            ;
        *out = c ? c : g->model;
        return 0;
    }
    pthread_mutex_lock(&g->mu);
    int rc = 0;
    if (!(s = find_slot(g, tenant, 1))) {
        rc = ERR_LIMIT;
    } else {
        int used = atomic_load(&s->used);
        c = used ? atomic_load(&s->cur) : NULL;
        if (gen && (!c || fp_sp_cache_stamp(c) < gen)) {
            fp_sp_cache *nc = NULL;
            kept *k = malloc(sizeof *k);
            rc = k ? build(g, rd, tenant, gen, &nc) : ERR_NOMEM;
            if (rc) {
                free(k);
            } else {
                k->c = nc;
                k->next = g->all;
                g->all = k;
                atomic_store(&s->cur, nc);
                c = nc;
            }
        }
        if (!rc && !used) {
            s->tenant = tenant;
            atomic_store(&s->used, 1);
        }
    }
    pthread_mutex_unlock(&g->mu);
    if (!rc)
        *out = c ? c : g->model;
    return rc;
}

size_t idx_registry_tenants(idx_registry *g, uint32_t *out, size_t max)
{
    size_t n = 0;
    if (max)
        out[n++] = 0; /* the default tenant, whether or not it was asked for yet */
    for (size_t i = 0; i < IDX_MAX_TENANTS && n < max; i++) {
        slot *s = &g->slots[i];
        if (!atomic_load(&s->used))
            break;
        if (s->tenant)
            out[n++] = s->tenant;
    }
    return n;
}

int idx_reindex_complete(store_reader *rd, uint32_t tenant, const fp_sp_custom *cu)
{
    uint8_t k[IDX_REINDEX_KEY_LEN];
    size_t kn = idx_reindex_key(k, tenant, cu->tag);
    const void *v;
    size_t vn;
    return store_get(rd, STORE_DB_AUX, k, kn, &v, &vn) == 0 && vn >= 1 &&
           *(const char *)v == 'D';
}
