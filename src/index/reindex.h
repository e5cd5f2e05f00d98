/*
 * reindex.h -- the entries of custom search parameters over data already stored, built
 * in the background while the server serves (prefix idx_), docs/SEARCH.md section 6.
 *
 *   SearchParameter written --> new parameter set (params.h) --> its customs have no
 *   "complete" state --> the reindex thread walks each one's base type in id order:
 *
 *     snapshot: IDX_REINDEX_BATCH current resources after the cursor
 *        idx_plan_param(each) -> extras + conditions (version unchanged, record unchanged)
 *        + the cursor and count (Aux tenant|'x'|tag), same commit
 *     end the snapshot, store_write; a condition that failed: the batch again
 *
 * Each batch is one bounded commit through the same group commit as every write, so
 * reads never wait and writes wait at most one batch. The cursor commits with the
 * entries, so a restart resumes after the last batch that committed. A write of a
 * resource planned with the new parameters indexes it itself; one planned before
 * them cannot commit (the generation condition of idx_plan).
 */
#ifndef HORTUS_IDX_REINDEX_H
#define HORTUS_IDX_REINDEX_H

#include <stdint.h>

#include "base/buf.h"
#include "index/params.h"
#include "store/store.h"

#define IDX_REINDEX_BATCH 2000 /* resources per reindex commit */

typedef struct idx_reindexer idx_reindexer;

/* Start the thread (tenant 0, and every tenant the registry has a set for). base_url:
 * this server's FHIR base, so absolute references to it are local ("" when unknown);
 * batch: resources per commit (0: IDX_REINDEX_BATCH). */
int idx_reindex_start(store *st, idx_registry *reg, const char *base_url, unsigned batch,
                      idx_reindexer **out);

/* Stop the thread at the end of its batch and free it; NULL is a no-op. */
void idx_reindex_stop(idx_reindexer *x);

/* There may be work (a SearchParameter was written, a $reindex asked): look now.
 * base_url: the FHIR base that request used, in its tenant; for the default tenant,
 * without a configured base, it is the one absolute references are recognised by from
 * then on; a named tenant's base ([base]/NAME) is always taken (NULL: unchanged). */
void idx_reindex_kick(idx_reindexer *x, uint32_t tenant, const char *base_url);

/* The state of custom parameter cu in rd: *complete, and how many of its base type's
 * resources the reindex has passed (*done). */
void idx_reindex_state(store_reader *rd, uint32_t tenant, const fp_sp_custom *cu, int *complete,
                       uint64_t *done);

/* Prometheus lines: resources reindexed, batches, conflicts, parameters pending. */
void idx_reindex_metrics(idx_reindexer *x, buf *b);

#endif
