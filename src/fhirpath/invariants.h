/*
 * invariants.h -- the invariants of the R4 definitions (ElementDefinition.constraint:
 * pat-1, obs-6, per-1, dom-2 ...) checked on a resource with the FHIRPath engine
 * (prefix fp_). The structural validator (src/fhir/validate.h) runs first; this adds
 * the rules only FHIRPath can say.
 *
 *   oo o; oo_init(&o, a);
 *   int rc = fp_invariants(resource, "Patient", &o);   // 0, ERR_INVALID, ERR_NOMEM
 *
 * Thread-safe: the expressions are compiled once (at first use) and only read after.
 */
#ifndef HORTUS_FP_INVARIANTS_H
#define HORTUS_FP_INVARIANTS_H

#include <stddef.h>

#include "base/arena.h"
#include "fhir/model.h"
#include "fhir/outcome.h"
#include "json/json.h"

/* Check every invariant of `res` (a resource of `type`, structurally valid) and of
 * every element under it. A violated rule adds an issue of its severity (code
 * invariant, its key, words and expression in the diagnostics, the type it is on as
 * the location). Returns 0 when no rule of severity error is violated (warnings may
 * have been added), ERR_INVALID when one is, ERR_NOMEM. The evaluations use scratch
 * arenas of their own, freed before it returns (the issues go to out's arena). */
int fp_invariants(const json_val *res, const char *type, oo *out);

/* How many invariant expressions compiled, and how many did not (those are reported
 * as a warning "cannot be evaluated" whenever they apply, never taken as holding). */
void fp_invariants_stats(size_t *compiled_ok, size_t *failed);

#endif
