/*
 * audit.h -- the audit trail (prefix audit_): one AuditEvent per HTTP request, in the
 * shape of IHE Basic Audit Log Patterns (BALP), stored in the store's Audit database
 * and hash-chained per tenant. docs/AUDIT.md is the contract; this is the code's map.
 *
 *   a change (create, update, patch, delete, transaction, a batch's write entry)
 *      rest_commit_submit --audit_rest_commit--> the event rides the change's commit as
 *      one more extra: it exists exactly when the change does
 *   anything else (read, search, history, a refusal, a failed write)
 *      rest_send --audit_rest_answered--> audit_enqueue --> queue --(every
 *      AUDIT_FLUSH_MS or AUDIT_BATCH_MAX events)--> one commit of extras alone
 *
 *   key   tenant(4) | t(8, filled by the writer) | seq(4)        (Audit database)
 *   value {"prev":"<64 hex: SHA-256 of the previous record of the tenant>","sub":...}
 *         the varying part only (audit_build); audit_expand serves it as a BALP
 *         AuditEvent whose extension AUDIT_PREV_URL carries the link
 *
 * The link is written by the store's writer in commit order (store_extra.chain), so the
 * chain never forks and a rolled-back request leaves no hole; the head (the SHA-256 of
 * the newest event) is kept under the tenant's last key, tenant | 0xff x 12.
 * audit_check walks the chain.
 *
 * Events are never served with their stored bytes' id: an event's id is its key,
 * "t-seq" (audit_id_format), spliced in when it is served.
 */
#ifndef HORTUS_AUDIT_H
#define HORTUS_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "store/store.h"

#define AUDIT_KEY_LEN 16      /* tenant(4) t(8) seq(4) */
#define AUDIT_BATCH_MAX 256   /* queued events that make the flusher commit at once */
#define AUDIT_FLUSH_MS 50     /* a queued event waits at most this long for its commit */
#define AUDIT_QUEUE_MAX 16384 /* queued events at most: more wait for the flusher (memory
                                 stays bounded when the store falls behind) */
#define AUDIT_ID_MAX 32       /* "t-seq" */
#define AUDIT_MAX_ENTITIES 64 /* entities of one event (a transaction's first ones) */
#define AUDIT_PREV_URL "https://hortus.dev/fhir/StructureDefinition/audit-previous-sha256"
#define AUDIT_RECORD_PREFIX "{\"prev\":\"" /* every stored record starts so; the link follows */

/* One resource an event names: Type/id, and /_history/vid when vid is not 0. */
typedef struct audit_entity {
    const char *type;
    const char *id;
    size_t id_len;
    uint64_t vid;
} audit_entity;

/* What an event records. Strings are borrowed for the call; NULL = absent. */
typedef struct audit_info {
    const char *subtype; /* restful-interaction code: read, vread, create, search-type ... */
    char action;         /* C R U D E */
    int64_t recorded_us;
    unsigned status;      /* the HTTP status; 0: a change whose commit carries the event */
    const char *desc;     /* outcomeDesc (a failure's diagnostics) */
    const char *client;   /* client_id / azp; NULL: "anonymous" */
    const char *user_ref; /* fhirUser ("Practitioner/1" or a URL) */
    const char *user_sub; /* sub */
    const char *address;  /* the caller's network address */
    const char *site;     /* this server's FHIR base */
    const char *purpose;  /* purpose_of_use: space-separated codes or system|code */
    const char *query;    /* the query of a search (form-encoded) */
    const audit_entity *ent;
    size_t nent;
} audit_info;

/* The stored record of an event (appended to out): a small JSON object of what varies,
 * {"prev":"<64 hex>","sub":..,"act":..,"rec":µs,"st":status,"desc","cli","uref","usub",
 * "ip","site","pur","q","ent":["Type/id/_history/vid",...]} (absent members left out),
 * with an all-'0' link at out->len-before + *link_off. Returns 0 or ERR_NOMEM. */
int audit_build(const audit_info *in, buf *out, size_t *link_off);

/* The AuditEvent as served, in the BALP shape (docs/AUDIT.md), with id, from a stored
 * record (stored[0..len)), appended to out; bytes hortus did not write are served as an
 * event without content. The record is parsed in a (the caller's scratch). 0 or
 * ERR_NOMEM. */
int audit_expand(arena *a, const void *stored, size_t len, const char *id, buf *out);

/* The store extra of an event: key (AUDIT_KEY_LEN bytes of caller storage, t filled by the
 * writer), chained at link_off. json must stay valid until the commit's callback. */
void audit_extra(store_extra *x, uint8_t *key, uint32_t tenant, uint32_t seq, const char *json,
                 size_t len, size_t link_off);

/* Keys. */
void audit_key(uint8_t k[AUDIT_KEY_LEN], uint32_t tenant, uint64_t t, uint32_t seq);
void audit_key_decode(const uint8_t *k, uint32_t *tenant, uint64_t *t, uint32_t *seq);
/* The chain head's key of tenant (after all its events; store.h store_extra.chain), and
 * whether k[0..n) is such a key. */
void audit_head_key(uint8_t k[AUDIT_KEY_LEN], uint32_t tenant);
int audit_is_head(const uint8_t *k, size_t n);
/* An event's id "t-seq" into out (AUDIT_ID_MAX + 1 bytes); its parse (0 or ERR_INVALID). */
void audit_id_format(uint64_t t, uint32_t seq, char *out);
int audit_id_parse(const char *s, size_t n, uint64_t *t, uint32_t *seq);

/* ---- the queue of events that ride no change ------------------------------------ */
typedef struct audit_log audit_log;

/* A queue with its flusher thread, writing into s. 0 and *out, ERR_NOMEM, ERR_IO. */
int audit_open(store *s, audit_log **out);
/* Queue one event (copied). Waits only when AUDIT_QUEUE_MAX events are queued already
 * (the store is behind), until the flusher takes them. 0 or ERR_NOMEM (the event is
 * then lost: counted in audit_stats' dropped). */
int audit_enqueue(audit_log *l, uint32_t tenant, const char *json, size_t len, size_t link_off);
/* A change is about to be submitted: commit what is queued now, without waiting for it,
 * so that its request reaches the store's writer beside the change and shares its group
 * commit (and fsync) instead of taking one of its own. */
void audit_kick(audit_log *l);
/* Commit what is queued and wait for it (tests, shutdown). */
void audit_flush(audit_log *l);
/* Flush, stop the thread, free. Before store_close. NULL is a no-op. */
void audit_close(audit_log *l);
/* Events committed by the flusher, commits it made, events lost (no memory, a failed
 * commit). */
void audit_stats(audit_log *l, uint64_t *written, uint64_t *commits, uint64_t *dropped);

/* The queue's counters in Prometheus text format (hortus_audit_*), appended to b; nothing
 * when l is NULL (`--audit off`). */
void audit_metrics(audit_log *l, buf *b);

/* ---- verification ------------------------------------------------------------------ */
/* Walk every tenant's chain in one snapshot: each event's link must be the SHA-256 of
 * the event before it (all '0' for the first), the last one's hash the head, and the
 * key order strictly (t, seq). 0 and *n events, or ERR_INTERNAL with the first problem
 * in msg (an altered, removed or inserted event), ERR_IO / ERR_NOMEM. */
int audit_check(store *s, uint64_t *n, char *msg, size_t cap);

#endif
