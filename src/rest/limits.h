/*
 * limits.h -- the hard caps of the REST layer, one named constant each.
 *
 * Every number here is documented in docs/LIMITS.md with what a client sees when
 * it is exceeded. Nothing else in src/rest/ may hold a bare limit.
 */
#ifndef HORTUS_REST_LIMITS_H
#define HORTUS_REST_LIMITS_H

#define REST_MAX_BODY (8u << 20)      /* request body bytes: more -> 413 */
#define REST_DRAIN_MAX (64u << 20)    /* bodies up to this are read and dropped before 413 */
#define REST_MAX_ID 64                /* logical id length, [A-Za-z0-9-.] */
#define REST_MAX_COUNT 1000           /* _count upper bound for history */
#define REST_DEFAULT_COUNT 50         /* _count when absent */
#define REST_MAX_CONNECTIONS 4096     /* open connections at once (--max-connections) */
#define REST_MAX_CONN_PER_CLIENT 256  /* from one client address (--max-connections-per-client) */
#define REST_CONNECTIONS_CEILING 65536 /* the largest --max-connections accepted */
#define REST_CONN_MEMORY (32u << 10)  /* per-connection header/URL pool of MHD */
#define REST_MMAP_THRESHOLD (256u << 10) /* allocations from here up are mapped, and unmapped when freed */
#define REST_MAX_URL 8192             /* request target bytes (path + query): more -> 414 */
#define REST_MAX_QUERY_PARAMS 200     /* '&'-separated query fields: more -> 414 */
#define REST_IDLE_TIMEOUT 30          /* seconds without traffic before a connection closes (--idle-timeout) */
#define REST_IDLE_TIMEOUT_MAX 86400   /* the largest --idle-timeout accepted */
#define REST_REQUEST_TIMEOUT 10       /* seconds for a request to arrive whole (--request-timeout) */
#define REST_REQUEST_TIMEOUT_MAX 3600 /* the largest --request-timeout accepted */
#define REST_EDGE_TICK_MS 250         /* how often the edge watchdog looks at every connection */
#define REST_MAX_BUNDLE_ENTRIES 10000 /* entries of a batch/transaction Bundle */
#define REST_MAX_COND_DELETE 1000    /* resources one conditional delete removes (--conditional-delete multiple) */
#define REST_MAX_RETRIES 16           /* re-plans of a write overtaken by concurrent commits */
#define REST_MAX_PATCH_COPY 500000    /* values one JSON Patch may copy (all its "copy" ops) */
#define REST_MAX_RESPONSE (64u << 20) /* bytes of a batch answer or a history/search page */
#define REST_HISTORY_SCAN_MAX 4096    /* versions one history page looks at under a
                                         restriction (then a shorter page, and a link on) */
#define REST_SHUTDOWN_GRACE_MS 2000   /* after the last write: time for answers to drain */

/* The FHIR base path every FHIR URL starts with. */
#define REST_BASE_PATH "/fhir"

/* The tenant of every request until tenants exist (partner hospitals, issue 12). */
#define REST_DEFAULT_TENANT 0u

#endif
