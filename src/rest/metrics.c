/*
 * metrics.c -- /metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * Counters are plain arrays of 64-bit integers updated with relaxed atomic adds
 * from every HTTP thread: no lock on the request path. The latency histogram
 * keeps per-bucket (non-cumulative) counts; the writer accumulates them into
 * Prometheus' cumulative `le` buckets when /metrics is scraped.
 *
 *   requests[interaction][status slot]       hortus_http_requests_total
 *   hist[interaction][bucket], sum_ns, count hortus_http_request_duration_seconds
 *
 * Store figures (commits, fsyncs, database size, resource counts) are read
 * from the store at scrape time.
 */
#include <inttypes.h>
#include <stdio.h>

#include "rest/limits.h"
#include "rest/metrics.h"
#include "store/store.h"

static const unsigned status_slots[] = {200, 201, 204, 304, 400, 401, 403, 404, 405, 406,
                                        409, 410, 412, 413, 415, 422, 429, 500, 501, 503};
#define NSTATUS (sizeof status_slots / sizeof status_slots[0])
#define SLOT_OTHER NSTATUS

/* upper bounds in microseconds; the last bucket is +Inf */
static const uint32_t bucket_us[] = {100,   250,    500,    1000,   2500,    5000,   10000,
                                     25000, 50000, 100000, 250000, 500000, 1000000, 2500000};
#define NBUCKETS (sizeof bucket_us / sizeof bucket_us[0])

static uint64_t requests[RI__COUNT][NSTATUS + 1];
static uint64_t hist[RI__COUNT][NBUCKETS + 1];
static uint64_t hist_sum_ns[RI__COUNT];
static uint64_t hist_count[RI__COUNT];

static const char *const interaction_names[RI__COUNT] = {
    [RI_READ] = "read",
    [RI_VREAD] = "vread",
    [RI_CREATE] = "create",
    [RI_UPDATE] = "update",
    [RI_DELETE] = "delete",
    [RI_PATCH] = "patch",
    [RI_HISTORY_INSTANCE] = "history-instance",
    [RI_HISTORY_TYPE] = "history-type",
    [RI_HISTORY_SYSTEM] = "history-system",
    [RI_SEARCH_TYPE] = "search-type",
    [RI_SEARCH_SYSTEM] = "search-system",
    [RI_BATCH] = "batch",
    [RI_OPERATION] = "operation",
    [RI_CAPABILITIES] = "capabilities",
    [RI_HEALTH] = "healthz",
    [RI_METRICS] = "metrics",
    [RI_AUTH] = "auth",
    [RI_OTHER] = "other",
};

const char *rest_interaction_name(rest_interaction i)
{
    return (unsigned)i < RI__COUNT ? interaction_names[i] : "other";
}

void rest_metrics_record(rest_interaction ri, unsigned status, uint64_t ns)
{
    if ((unsigned)ri >= RI__COUNT)
        ri = RI_OTHER;
    size_t slot = SLOT_OTHER;
    for (size_t i = 0; i < NSTATUS; i++)
        if (status_slots[i] == status) {
            slot = i;
            break;
        }
    __atomic_fetch_add(&requests[ri][slot], 1, __ATOMIC_RELAXED);
    uint64_t us = ns / 1000;
    size_t b = 0;
    while (b < NBUCKETS && us > bucket_us[b])
        b++;
    __atomic_fetch_add(&hist[ri][b], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&hist_sum_ns[ri], ns, __ATOMIC_RELAXED);
    __atomic_fetch_add(&hist_count[ri], 1, __ATOMIC_RELAXED);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void rest_metrics_write(buf *b, struct store *st)
{
    buf_puts(b, "# HELP hortus_http_requests_total HTTP requests by FHIR interaction and "
                "status code.\n"
                "# TYPE hortus_http_requests_total counter\n");
    for (int i = 0; i < RI__COUNT; i++)
        for (size_t s = 0; s <= NSTATUS; s++) {
            uint64_t v = load(&requests[i][s]);
            if (!v)
                continue;
            if (s == SLOT_OTHER)
                buf_printf(b, "hortus_http_requests_total{interaction=\"%s\",status=\"other\"} %" PRIu64 "\n",
                           interaction_names[i], v);
            else
                buf_printf(b, "hortus_http_requests_total{interaction=\"%s\",status=\"%u\"} %" PRIu64 "\n",
                           interaction_names[i], status_slots[s], v);
        }
    buf_puts(b, "# HELP hortus_http_request_duration_seconds Time from request headers to "
                "response queued (writes include the durable commit).\n"
                "# TYPE hortus_http_request_duration_seconds histogram\n");
    for (int i = 0; i < RI__COUNT; i++) {
        uint64_t n = load(&hist_count[i]);
        if (!n)
            continue;
        uint64_t cum = 0;
        for (size_t k = 0; k < NBUCKETS; k++) {
            cum += load(&hist[i][k]);
            buf_printf(b,
                       "hortus_http_request_duration_seconds_bucket{interaction=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                       interaction_names[i], bucket_us[k] / 1e6, cum);
        }
        cum += load(&hist[i][NBUCKETS]);
        buf_printf(b,
                   "hortus_http_request_duration_seconds_bucket{interaction=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                   interaction_names[i], cum);
        buf_printf(b, "hortus_http_request_duration_seconds_sum{interaction=\"%s\"} %.9f\n",
                   interaction_names[i], load(&hist_sum_ns[i]) / 1e9);
        buf_printf(b, "hortus_http_request_duration_seconds_count{interaction=\"%s\"} %" PRIu64 "\n",
                   interaction_names[i], n);
    }
    if (!st)
        return;
    store_stats ss;
    store_get_stats(st, &ss);
    buf_printf(b,
               "# HELP hortus_store_commits_total Durable write transactions (group commits).\n"
               "# TYPE hortus_store_commits_total counter\n"
               "hortus_store_commits_total %" PRIu64 "\n"
               "# HELP hortus_store_fsyncs_total Sync calls issued by commits.\n"
               "# TYPE hortus_store_fsyncs_total counter\n"
               "hortus_store_fsyncs_total %" PRIu64 "\n"
               "# HELP hortus_store_write_requests_total Write requests committed.\n"
               "# TYPE hortus_store_write_requests_total counter\n"
               "hortus_store_write_requests_total %" PRIu64 "\n"
               "# HELP hortus_store_write_failures_total Write requests answered with an error.\n"
               "# TYPE hortus_store_write_failures_total counter\n"
               "hortus_store_write_failures_total %" PRIu64 "\n"
               "# HELP hortus_store_conflicts_total Write requests rejected by a version check.\n"
               "# TYPE hortus_store_conflicts_total counter\n"
               "hortus_store_conflicts_total %" PRIu64 "\n"
               "# HELP hortus_store_max_batch Largest group commit seen, in requests.\n"
               "# TYPE hortus_store_max_batch gauge\n"
               "hortus_store_max_batch %" PRIu64 "\n"
               "# HELP hortus_store_db_size_bytes Database pages in use times page size.\n"
               "# TYPE hortus_store_db_size_bytes gauge\n"
               "hortus_store_db_size_bytes %" PRIu64 "\n"
               "# HELP hortus_store_map_size_bytes Size of the memory map.\n"
               "# TYPE hortus_store_map_size_bytes gauge\n"
               "hortus_store_map_size_bytes %" PRIu64 "\n"
               "# HELP hortus_store_last_t Logical time of the last commit.\n"
               "# TYPE hortus_store_last_t gauge\n"
               "hortus_store_last_t %" PRIu64 "\n",
               ss.commits, ss.fsyncs, ss.requests, ss.failed, ss.conflicts, ss.max_batch,
               ss.used_bytes, ss.map_size, ss.last_t);
    buf_printf(b,
               "# HELP hortus_store_map_resizes_total Times the memory map was grown.\n"
               "# TYPE hortus_store_map_resizes_total counter\n"
               "hortus_store_map_resizes_total %" PRIu64 "\n"
               "# HELP hortus_store_apply_seconds_total Writer time applying batches before "
               "their commits.\n"
               "# TYPE hortus_store_apply_seconds_total counter\n"
               "hortus_store_apply_seconds_total %.9f\n"
               "# HELP hortus_store_commit_max_seconds Longest durable commit so far.\n"
               "# TYPE hortus_store_commit_max_seconds gauge\n"
               "hortus_store_commit_max_seconds %.9f\n"
               "# HELP hortus_store_commit_seconds Durable commits (page writes and syncs), "
               "by duration.\n"
               "# TYPE hortus_store_commit_seconds histogram\n",
               ss.map_resizes, ss.apply_ns / 1e9, ss.commit_max_ns / 1e9);
    uint64_t cum = 0;
    for (int k = 0; k < STORE_COMMIT_BUCKETS; k++) {
        cum += ss.commit_hist[k];
        buf_printf(b, "hortus_store_commit_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                   store_commit_bucket_us[k] / 1e6, cum);
    }
    cum += ss.commit_hist[STORE_COMMIT_BUCKETS];
    buf_printf(b,
               "hortus_store_commit_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
               "hortus_store_commit_seconds_sum %.9f\n"
               "hortus_store_commit_seconds_count %" PRIu64 "\n",
               cum, ss.commit_ns / 1e9, cum);
    buf_printf(b,
               "# HELP hortus_index_folds_total Folds of the SearchParam overlay into its "
               "B-tree.\n"
               "# TYPE hortus_index_folds_total counter\n"
               "hortus_index_folds_total %" PRIu64 "\n"
               "# HELP hortus_index_fold_seconds_total Writer time spent folding.\n"
               "# TYPE hortus_index_fold_seconds_total counter\n"
               "hortus_index_fold_seconds_total %.9f\n"
               "# HELP hortus_index_overlay_bytes Memory of the SearchParam overlay.\n"
               "# TYPE hortus_index_overlay_bytes gauge\n"
               "hortus_index_overlay_bytes %" PRIu64 "\n"
               "# HELP hortus_index_overlay_records SearchParam changes not folded yet.\n"
               "# TYPE hortus_index_overlay_records gauge\n"
               "hortus_index_overlay_records %" PRIu64 "\n"
               "# HELP hortus_index_fold_running 1 while a fold is in progress.\n"
               "# TYPE hortus_index_fold_running gauge\n"
               "hortus_index_fold_running %" PRIu64 "\n",
               ss.index_folds, ss.index_fold_ns / 1e9, ss.index_overlay_bytes,
               ss.index_overlay_records, ss.index_fold_running);
    store_reader *rd;
    if (store_read_begin(st, &rd) == 0) {
        uint64_t cur = 0, versions = 0;
        if (store_count(rd, REST_DEFAULT_TENANT, NULL, &cur, &versions) == 0)
            buf_printf(b,
                       "# HELP hortus_resources Current (not deleted) resources.\n"
                       "# TYPE hortus_resources gauge\n"
                       "hortus_resources %" PRIu64 "\n"
                       "# HELP hortus_resource_versions Stored versions, deletions included.\n"
                       "# TYPE hortus_resource_versions gauge\n"
                       "hortus_resource_versions %" PRIu64 "\n",
                       cur, versions);
        store_read_end(rd);
    }
}
