/*
 * spcache.h -- the FHIRPath expressions of all R4 search parameters, compiled once.
 *
 * Build the cache at start-up; a failure names the parameter whose expression did not
 * compile (tests/unit/fhirpath.c proves that none fails). Lookups take the parameter as
 * returned by src/fhir/model.h (fhir_search_params, fhir_search_param_find).
 *
 *   fp_sp_cache *spc;  fp_error e;
 *   if (fp_sp_cache_build(&spc, &e)) die(e.msg);
 *   const fp_expr *x = fp_sp_cache_get(spc, fhir_search_param_find("Patient", "name"));
 *   fp_eval(x, arena, resource, NULL, &out, &e);
 *
 * Ownership: the cache owns every expression; pointers returned by the getters are valid
 * until fp_sp_cache_free(). The cache is read-only after building: threads may share it.
 */
#ifndef HORTUS_FP_SPCACHE_H
#define HORTUS_FP_SPCACHE_H

#include "fhir/model.h"
#include "fhirpath/fhirpath.h"

typedef struct fp_sp_cache fp_sp_cache;

/* Compile every expression (and composite component expression) of the model's
 * search parameters. 0 and *out, or the compile error code with *err filled (its
 * message starts with the parameter's code and URL), or ERR_NOMEM. */
int fp_sp_cache_build(fp_sp_cache **out, fp_error *err);

/* The compiled expression of sp, or NULL when sp has none (or is not from the model). */
const fp_expr *fp_sp_cache_get(const fp_sp_cache *c, const fhir_search_param *sp);

/* The same as evaluated on resources of `type`: without the branches of the union
 * rooted in other resource types (which give nothing there). NULL also when no branch
 * applies to the type. */
const fp_expr *fp_sp_cache_get_for(const fp_sp_cache *c, const char *type,
                                   const fhir_search_param *sp);

/* The compiled expression of component k of a composite parameter, or NULL. */
const fp_expr *fp_sp_cache_component(const fp_sp_cache *c, const fhir_search_param *sp,
                                     unsigned k);

/* ---- parameters defined at run time (SearchParameter resources) -------------------------
 * A cache extended with custom parameters answers every lookup below for the model's
 * parameters and the custom ones together; it shares the model cache (which must outlive
 * it) and owns copies of everything in the customs. */
typedef struct fp_sp_custom {
    const char *base;      /* the resource type it applies to (one entry per base) */
    fhir_search_param def; /* code, url, type, expression, targets; no components */
    uint32_t tag;          /* the caller's value for it (the index: its parameter hash) */
    const char *id;        /* the SearchParameter resource's id and version */
    uint64_t vid;
} fp_sp_custom;

/* A new cache: model's parameters plus n customs, stamped with the caller's `stamp`.
 * A custom whose expression does not compile fails the whole call with *err naming it. */
int fp_sp_cache_extend(const fp_sp_cache *model, const fp_sp_custom *cs, size_t n,
                       uint64_t stamp, fp_sp_cache **out, fp_error *err);

/* The stamp given to fp_sp_cache_extend (0 for the model's cache). */
uint64_t fp_sp_cache_stamp(const fp_sp_cache *c);

/* The parameter `code` of `type`: a custom one first, else the model's (c may be NULL:
 * the model's only). */
const fhir_search_param *fp_sp_find(const fp_sp_cache *c, const char *type, const char *code);

/* Every parameter of `type`, sorted by code (the model's list when it has no custom). */
size_t fp_sp_params(const fp_sp_cache *c, const char *type, const fhir_search_param *const **out);

/* The custom entry of sp, or NULL for a parameter of the model. */
const fp_sp_custom *fp_sp_custom_of(const fp_sp_cache *c, const fhir_search_param *sp);

/* The customs of the cache (n), in the order given to fp_sp_cache_extend. */
size_t fp_sp_customs(const fp_sp_cache *c, const fp_sp_custom **out);

/* How many expressions were compiled (parameters plus components). */
size_t fp_sp_cache_count(const fp_sp_cache *c);

void fp_sp_cache_free(fp_sp_cache *c);

#endif
