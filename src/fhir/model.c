/*
 * model.c -- lookups over the generated FHIR R4 tables (src/fhir/gen/).
 *
 * All tables are static and sorted by the generator, so every lookup here is a
 * binary search and nothing is allocated or initialised at start-up:
 *
 *   fhir_type_find     binary search of fhir_gen_types[] (sorted by name)
 *   fhir_elem_find     one probe (usually) of the generated hash fhir_gen_keys[],
 *                      which holds every plain element name and every choice
 *                      key ("valueQuantity" = "value" + "Quantity") per type
 *   fhir_elem_named    binary search of the type's run in fhir_gen_esort[]
 *                      (its element positions sorted by name)
 *   search params      binary search of fhir_gen_sp_index[] by type, then of
 *                      that type's list by code
 *   value sets         binary search by URL, then of the sorted codes
 *
 * Names arrive as (pointer, length) because they usually point into JSON text
 * or a URL path; the tables hold NUL-terminated strings.
 */
#include "fhir/model.h"

#include <string.h>

#include "fhir/gen/model_gen.h"

/* strcmp order between s[0..n) and the NUL-terminated t. */
static int name_cmp(const char *s, size_t n, const char *t)
{
    size_t i;
    if (n > 0 && s[0] != t[0]) /* most probes differ at once */
        return (unsigned char)s[0] < (unsigned char)t[0] ? -1 : 1;
    for (i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s[i], b = (unsigned char)t[i];
        if (b == 0)
            return 1; /* t is a proper prefix of s */
        if (a != b)
            return a < b ? -1 : 1;
    }
    return t[n] == 0 ? 0 : -1;
}

const fhir_type *fhir_type_find(const char *name, size_t n)
{
    size_t lo = 0, hi = FHIR_GEN_NTYPES;
    if (!name)
        return NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(name, n, fhir_gen_types[mid].name);
        if (c == 0)
            return &fhir_gen_types[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const fhir_type *fhir_resource_type(const char *name, size_t n)
{
    const fhir_type *t = fhir_type_find(name, n);
    if (!t || t->kind != FHIR_RESOURCE || t->is_abstract)
        return NULL;
    return t;
}

/* FNV-1a over the type index (2 bytes, little-endian) and the key, then a final
 * avalanche: the same function as key_hash() in tools/gen_model.py, which placed
 * the keys. */
static uint32_t key_hash(size_t ti, const char *key, size_t n)
{
    uint32_t h = 2166136261u;
    h = (h ^ (uint32_t)(ti & 0xff)) * 16777619u;
    h = (h ^ (uint32_t)((ti >> 8) & 0xff)) * 16777619u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    /* final avalanche (MurmurHash3 fmix32): the table index uses the low bits */
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* 1 when key[0..n) is the element name, followed for a choice key by the chosen
 * type's name with its first letter capitalised. */
static int key_matches(const char *key, size_t n, const fhir_elem *e, const fhir_type *choice)
{
    const char *name = e->name;
    size_t i = 0;
    while (name[i] && i < n && key[i] == name[i])
        i++;
    if (name[i] != 0)
        return 0;
    if (!choice)
        return i == n;
    const char *tn = choice->name;
    char first = tn[0];
    if (first >= 'a' && first <= 'z')
        first = (char)(first - 'a' + 'A');
    if (i >= n || key[i] != first)
        return 0;
    return name_cmp(key + i + 1, n - i - 1, tn + 1) == 0;
}

const fhir_elem *fhir_elem_find(const fhir_type *t, const char *key, size_t n,
                                const fhir_type **choice)
{
    if (choice)
        *choice = NULL;
    if (!t || !key || t->nelems == 0 || t < fhir_gen_types || t >= fhir_gen_types + FHIR_GEN_NTYPES)
        return NULL;
    size_t ti = (size_t)(t - fhir_gen_types);
    const size_t mask = FHIR_GEN_NKEYS - 1;
    for (size_t i = key_hash(ti, key, n) & mask;; i = (i + 1) & mask) {
        const fhir_gen_key *k = &fhir_gen_keys[i];
        if (k->type == 0xffff)
            return NULL;
        if (k->type != ti)
            continue;
        const fhir_elem *e = &fhir_gen_elems[k->elem];
        const fhir_type *ct = k->choice ? &fhir_gen_types[k->choice - 1] : NULL;
        if (key_matches(key, n, e, ct)) {
            if (choice)
                *choice = ct;
            return e;
        }
    }
}

const fhir_elem *fhir_elem_named(const fhir_type *t, const char *name, size_t n)
{
    if (!t || !name || t->nelems == 0)
        return NULL;
    const uint16_t *order = &fhir_gen_esort[t->elems - fhir_gen_elems];
    size_t lo = 0, hi = t->nelems;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const fhir_elem *e = &t->elems[order[mid]];
        int c = name_cmp(name, n, e->name);
        if (c == 0)
            return e;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int fhir_type_is(const fhir_type *t, const fhir_type *ancestor)
{
    if (!ancestor)
        return 0;
    for (; t; t = t->base)
        if (t == ancestor)
            return 1;
    return 0;
}

size_t fhir_resource_types(const fhir_type *const **out)
{
    if (out)
        *out = fhir_gen_resources;
    return FHIR_GEN_NRESOURCES;
}

size_t fhir_types_all(const fhir_type **out)
{
    if (out)
        *out = fhir_gen_types;
    return FHIR_GEN_NTYPES;
}

size_t fhir_constraints(const fhir_type *t, const fhir_constraint **out)
{
    if (out)
        *out = NULL;
    if (!t || t < fhir_gen_types || t >= fhir_gen_types + FHIR_GEN_NTYPES)
        return 0;
    size_t i = (size_t)(t - fhir_gen_types);
    size_t lo = fhir_gen_constraint_off[i], hi = fhir_gen_constraint_off[i + 1];
    if (out && hi > lo)
        *out = &fhir_gen_constraints[lo];
    return hi - lo;
}

static const fhir_gen_sp_entry *sp_entry(const char *type)
{
    size_t lo = 0, hi = FHIR_GEN_NSP_INDEX;
    if (!type)
        return NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(type, fhir_gen_sp_index[mid].type);
        if (c == 0)
            return &fhir_gen_sp_index[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t fhir_search_params(const char *type, const fhir_search_param *const **out)
{
    const fhir_gen_sp_entry *e = sp_entry(type);
    if (!e) {
        if (out)
            *out = NULL;
        return 0;
    }
    if (out)
        *out = e->params;
    return e->count;
}

const fhir_search_param *fhir_search_param_find(const char *type, const char *code)
{
    const fhir_gen_sp_entry *e = sp_entry(type);
    if (!e || !code)
        return NULL;
    size_t lo = 0, hi = e->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(code, e->params[mid]->code);
        if (c == 0)
            return e->params[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t fhir_search_params_all(const fhir_search_param *const **out)
{
    if (out)
        *out = fhir_gen_sp_all;
    return FHIR_GEN_NSP;
}

const fhir_search_param *fhir_search_param_by_url(const char *url)
{
    size_t lo = 0, hi = FHIR_GEN_NSP;
    if (!url)
        return NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(url, fhir_gen_sp_all[mid]->url);
        if (c == 0)
            return fhir_gen_sp_all[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static size_t comp_lookup(const fhir_gen_comp_entry *tab, size_t n, const char *type,
                          const char *const **codes)
{
    size_t lo = 0, hi = n;
    if (codes)
        *codes = NULL;
    if (!type)
        return 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(type, tab[mid].type);
        if (c == 0) {
            if (codes)
                *codes = tab[mid].codes;
            return tab[mid].count;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

size_t fhir_patient_compartment(const char *type, const char *const **codes)
{
    return comp_lookup(fhir_gen_compartment, FHIR_GEN_NCOMPARTMENT, type, codes);
}

static const fhir_gen_comp_entry *comp_table(const char *comp, size_t *n)
{
    if (comp && !strcmp(comp, "Patient")) {
        *n = FHIR_GEN_NCOMPARTMENT;
        return fhir_gen_compartment;
    }
    if (comp && !strcmp(comp, "Encounter")) {
        *n = FHIR_GEN_NENC_COMPARTMENT;
        return fhir_gen_enc_compartment;
    }
    *n = 0;
    return NULL;
}

size_t fhir_compartment(const char *comp, const char *type, const char *const **codes)
{
    size_t n;
    const fhir_gen_comp_entry *tab = comp_table(comp, &n);
    if (!tab) {
        if (codes)
            *codes = NULL;
        return 0;
    }
    return comp_lookup(tab, n, type, codes);
}

const char *fhir_compartment_type(const char *comp, size_t i)
{
    size_t n;
    const fhir_gen_comp_entry *tab = comp_table(comp, &n);
    return tab && i < n ? tab[i].type : NULL;
}

static const fhir_gen_vs_entry *vs_entry(const char *url)
{
    size_t lo = 0, hi = FHIR_GEN_NVALUESETS;
    if (!url)
        return NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(url, fhir_gen_valuesets[mid].url);
        if (c == 0)
            return &fhir_gen_valuesets[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int fhir_valueset_contains(const char *url, const char *code, size_t n)
{
    const fhir_gen_vs_entry *vs = vs_entry(url);
    if (!vs)
        return -1;
    if (!code)
        return 0;
    size_t lo = 0, hi = vs->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(code, n, vs->codes[mid]);
        if (c == 0)
            return 1;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

size_t fhir_valueset_codes(const char *url, const char *const **codes)
{
    const fhir_gen_vs_entry *vs = vs_entry(url);
    if (codes)
        *codes = vs ? vs->codes : NULL;
    return vs ? vs->count : 0;
}

const char *fhir_sp_type_name(fhir_sp_type t)
{
    switch (t) {
    case FHIR_SP_NUMBER: return "number";
    case FHIR_SP_DATE: return "date";
    case FHIR_SP_STRING: return "string";
    case FHIR_SP_TOKEN: return "token";
    case FHIR_SP_REFERENCE: return "reference";
    case FHIR_SP_COMPOSITE: return "composite";
    case FHIR_SP_QUANTITY: return "quantity";
    case FHIR_SP_URI: return "uri";
    case FHIR_SP_SPECIAL: return "special";
    }
    return "special";
}
