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

/* The compiled expression of component k of a composite parameter, or NULL. */
const fp_expr *fp_sp_cache_component(const fp_sp_cache *c, const fhir_search_param *sp,
                                     unsigned k);

/* How many expressions were compiled (parameters plus components). */
size_t fp_sp_cache_count(const fp_sp_cache *c);

void fp_sp_cache_free(fp_sp_cache *c);

#endif
