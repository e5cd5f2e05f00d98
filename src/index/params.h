/*
 * params.h -- the search parameters of a tenant: the model's and those its
 * SearchParameter resources define (prefix idx_), docs/SEARCH.md section 6.
 *
 *   SearchParameter resources of the snapshot --idx_sp_parse--> customs
 *   model cache + customs --fp_sp_cache_extend--> one immutable set, stamped with the
 *   generation (Aux "pparams": the t of the last SearchParameter write)
 *
 * A request takes the set of its snapshot (idx_registry_get): rebuilt when the
 * snapshot's generation is past the set's, else shared. Sets are immutable and kept
 * until the registry is freed, so a request may hold one for its whole life. Every
 * write plans with its set and is committed only if the generation is still the set's
 * (idx_plan's condition), so no write lands under a parameter set it did not see.
 */
#ifndef HORTUS_IDX_PARAMS_H
#define HORTUS_IDX_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "fhirpath/spcache.h"
#include "json/json.h"
#include "store/store.h"

#define IDX_MAX_TENANTS 256   /* tenants whose parameter sets are kept apart */
#define IDX_MAX_CUSTOM 1000   /* custom parameter definitions (x bases) per tenant */

typedef struct idx_registry idx_registry;

int idx_registry_new(const fp_sp_cache *model, idx_registry **out);
void idx_registry_free(idx_registry *g);

/* The parameter set of tenant as of rd's snapshot: 0 and *out (valid until
 * idx_registry_free), or the store's error / ERR_NOMEM / ERR_LIMIT (too many tenants). */
int idx_registry_get(idx_registry *g, store_reader *rd, uint32_t tenant,
                     const fp_sp_cache **out);

/* The tenants that have a parameter set (tenant 0 always) into out (up to max). */
size_t idx_registry_tenants(idx_registry *g, uint32_t *out, size_t max);

/* The generation of tenant's parameters in rd (0: no SearchParameter was ever written). */
uint64_t idx_params_gen(store_reader *rd, uint32_t tenant);

/* The custom parameters SearchParameter `res` (id, version vid) defines, one per base,
 * into *out (n in *n, in a): none when it is not active or is a parameter of the model
 * (same url). cur: the set it joins (a code already taken on a base by the model or by
 * another SearchParameter is refused). 0, ERR_INVALID with the reason in msg (the write
 * is refused with 422), ERR_NOMEM. */
int idx_sp_parse(const fp_sp_cache *cur, arena *a, const json_val *res, const char *id,
                 uint64_t vid, fp_sp_custom **out, size_t *n, char *msg, size_t cap);

/* The reindex state of custom parameter cu in rd: 1 complete, 0 not (yet). */
int idx_reindex_complete(store_reader *rd, uint32_t tenant, const fp_sp_custom *cu);

#endif
