/*
 * store.h -- the storage interface of hortus: versioned FHIR resources at logical time t.
 *
 * The model (docs/STORAGE.md has the byte layouts):
 *   - the database is a value at a logical time t; each committed write *request* (one
 *     REST write, or one whole transaction Bundle) gets the next t (1, 2, 3 ...);
 *   - a resource is a list of versions; a version is immutable JSON bytes (content-addressed)
 *     or a tombstone (delete); versionIds (vid) are chosen by the caller, 1, 2, 3 ...;
 *   - every key carries a tenant number (0 = default tenant).
 *
 * Writes are group-committed by one writer thread:
 *
 *   request thread                          writer thread
 *   read current vid v, build bytes          take all queued requests
 *   with meta.versionId = v+1                one LMDB write txn, one nested txn per request
 *   store_submit(req, done, ctx) ---------> check expect == current vid, else ERR_CONFLICT
 *   (suspend the HTTP connection)            (only that request is rolled back)
 *                                            commit + fsync once for the whole batch
 *   done(ctx, rc, t)  <--------------------  then call every request's done callback
 *
 * Reads are zero-copy under a read snapshot (store_reader): every pointer a read returns
 * points into the database map and is valid until store_read_end() of that reader. The hot
 * path (store_read by id) is two B-tree lookups and allocates nothing.
 *
 * Backends implement struct store_ops (LMDB now; PostgreSQL later); store_open() picks
 * one from the location string. All functions are thread-safe unless noted; a reader and
 * its iterators belong to one thread at a time.
 */
#ifndef HORTUS_STORE_H
#define HORTUS_STORE_H

#include <stddef.h>
#include <stdint.h>

/* ---- limits and constants --------------------------------------------------------- */

#define STORE_TYPE_MAX 64                   /* resource type name length, [A-Za-z] */
#define STORE_ID_MAX 64                     /* FHIR id length, [A-Za-z0-9.-] */
#define STORE_HASH_LEN 16                   /* bytes of SHA-256 kept as the content hash */
#define STORE_ANY UINT64_MAX                /* store_op.expect: don't check the version */
#define STORE_NO_TIME INT64_MIN             /* "no instant given" for since / at */
#define STORE_DEFAULT_MAP_SIZE (256u << 20) /* initial LMDB map: 256 MiB, grows by doubling */
#define STORE_DEFAULT_GROUP_WAIT_US 500
#define STORE_DEFAULT_OVERLAY_BYTES (32u << 20) /* SearchParam overlay folded at 32 MiB */
#define STORE_DEFAULT_FOLD_CHUNK 16384          /* records per fold transaction */
#define STORE_DEFAULT_IDLE_FOLD_MS 1000         /* a writer idle this long folds what it holds */
#define STORE_EXTRA_KEY_MAX 480 /* extra keys: LMDB's key limit (511) minus margin */

/* What a version records as its operation (the history entry's request.method). */
typedef enum store_opkind {
    STORE_OP_CREATE = 1, /* POST */
    STORE_OP_UPDATE = 2, /* PUT (also create-on-update: then `created` is set) */
    STORE_OP_DELETE = 3, /* DELETE: a tombstone, no content */
} store_opkind;

/* Databases that extra puts/deletes (store_extra) may write: reserved for later layers,
 * key layouts planned in docs/STORAGE.md section 4. Keys must start with the tenant. */
typedef enum store_db {
    STORE_DB_SEARCH_PARAM = 0, /* (tenant, param, type, value, id, hash4) */
    STORE_DB_RESOURCE_PARAM,   /* reverse of the above */
    STORE_DB_COMPARTMENT,      /* (tenant, comp type, comp id, type, id) */
    STORE_DB_AUDIT,            /* (tenant, t, seq) -> AuditEvent JSON */
    STORE_DB_OUTBOX,           /* (tenant, t, seq) -> notification payload */
    STORE_DB_AUX,              /* free-form state of other layers */
    STORE_DB_COUNT_
} store_db;

typedef struct store store;
typedef struct store_reader store_reader;
typedef struct store_iter store_iter;

/* ---- open / close ------------------------------------------------------------------ */

typedef struct store_opts {
    size_t map_size;    /* initial map size in bytes; 0 = STORE_DEFAULT_MAP_SIZE */
    unsigned max_batch; /* most requests per group commit; 0 = 1024 */
    int group_wait_us;  /* how long the writer may wait for the clients of its previous
                           batch to come back before committing a smaller one (never more
                           than half the previous commit's duration);
                           0 = STORE_DEFAULT_GROUP_WAIT_US, < 0 = never wait */
    unsigned fault_commit_delay_ms; /* fault injection for tests: every durable commit
                                       waits this long first (a slow disk); 0 = none */
    size_t overlay_bytes; /* fold the SearchParam overlay into the B-tree once it holds
                             this many bytes (docs/STORAGE.md 4.6);
                             0 = STORE_DEFAULT_OVERLAY_BYTES */
    size_t fold_chunk;    /* records per fold transaction; 0 = STORE_DEFAULT_FOLD_CHUNK */
    int idle_fold_ms;     /* a writer with nothing to write for this long folds the
                             overlay whatever its size, so reads stop merging it;
                             0 = STORE_DEFAULT_IDLE_FOLD_MS, < 0 = only when full */
    /* Which SearchParam keys the store counts (store_key_count): those whose byte at
     * count_kind_at is one of count_kinds, by their bytes without the last count_suffix
     * (docs/STORAGE.md 4.7). NULL count_kinds: whatever the directory keeps (a directory
     * keeps the policy it was given last, in Meta; a new one keeps none). A policy other
     * than the directory's makes the open count every key again. */
    const char *count_kinds;
    uint8_t count_kind_at, count_suffix;
} store_opts;

/*
 * Open (creating if needed) the store at `location`: "lmdb:DIR" or a plain directory DIR
 * (LMDB); "postgres://..." answers ERR_UNSUPPORTED for now. The directory is created if
 * missing. `opts` may be NULL. Starts the writer thread. A directory is used by one
 * process at a time (an flock on DIR/hortus.lock): a second open from another process
 * fails with ERR_IO and a message instead of corrupting t. On success *out owns the store
 * until store_close(). Returns 0, ERR_INVALID (bad location), ERR_IO (with a message on
 * stderr), ERR_NOMEM.
 */
int store_open(const char *location, const store_opts *opts, store **out);

/*
 * Finish every request already submitted (their callbacks run), stop the writer, close
 * the database and free the store. Every reader must have been ended and no thread may
 * submit concurrently. NULL is a no-op.
 */
void store_close(store *s);

/* ---- writes -------------------------------------------------------------------------- */

/* One resource change. Filled by the caller; `hash`, `have_hash` may be filled by the
 * store (see below); the output fields are written by the writer before the callback. */
typedef struct store_op {
    store_opkind op;
    const char *type; /* resource type, not NUL-terminated necessarily */
    size_t type_len;
    const char *id;
    size_t id_len;
    uint64_t expect;      /* current vid must equal this; 0 = must not exist or be deleted
                             (create); STORE_ANY = no check */
    uint64_t vid;         /* the new version's id; must be > the current vid */
    int64_t last_updated; /* microseconds since epoch; equal to meta.lastUpdated in bytes */
    const char *bytes;    /* final JSON (not for DELETE); must stay valid until the callback */
    size_t len;
    uint8_t hash[STORE_HASH_LEN]; /* content hash; computed by store_submit unless have_hash */
    int have_hash;                /* caller already set hash = store_hash(bytes) */
    /* outputs */
    uint64_t prev_vid; /* current vid found by the writer (0: none) */
    int created;       /* no live version existed before: 201 rather than 200 */
} store_op;

/* An extra put or delete into a reserved database, applied in the same nested
 * transaction as the ops (index entries, AuditEvents, outbox messages). */
typedef struct store_extra {
    store_db db;
    int del;         /* 1 = delete the key (absent key is not an error), 0 = put */
    const void *key; /* 1..STORE_EXTRA_KEY_MAX bytes, starting with the tenant */
    size_t key_len;
    const void *val; /* put only; may be empty */
    size_t val_len;
    int fill_t; /* 1: the writer writes the commit's t (u64 BE) into the key at
                   t_offset (the caller cannot know t); 0: key used as given */
    size_t t_offset;
    int fill_t_val; /* the same for the value (put only), at t_val_offset */
    size_t t_val_offset;
    /* 1 (a put into STORE_DB_AUDIT only): a link of its tenant's hash chain. The writer
     * writes at chain_offset of the value the STORE_CHAIN_HEX lowercase hex digits of
     * the SHA-256 of the tenant's previous chained value (all '0' for the first), read
     * from the chain head, then makes the SHA-256 of this value (as stored, link filled)
     * the head: the Audit key tenant(4) | 12 bytes 0xff (after every event of the
     * tenant) -> 32 bytes. In commit order, so a rolled-back request leaves no gap
     * (docs/AUDIT.md). */
    int chain;
    size_t chain_offset;
} store_extra;

#define STORE_CHAIN_HEX 64      /* hex digits of a chain link */
#define STORE_CHAIN_HEAD_LEN 16 /* the head's key: tenant(4) | 0xff x 12 */

/* A condition the writer checks, inside the commit, before it applies a request: the
 * request fails with ERR_CONFLICT (failed_op = nops) unless every check holds. What a
 * layer planned from a snapshot stays right only if what it read is unchanged: a write
 * of the index checks the ResourceParam records it diffed against, a reindex batch the
 * versions it indexed. */
typedef enum store_cond_kind {
    STORE_COND_VALUE = 1, /* db/key holds exactly val (absent: the key does not exist) */
    STORE_COND_VERSION,   /* the current version of type/id is vid (0: none, or deleted) */
    STORE_COND_TYPE_VERSIONS, /* type has vid versions in all (store_count's `versions`):
                                 no resource of type was written since (a conditional
                                 create's search still has its answer) */
} store_cond_kind;

typedef struct store_check {
    store_cond_kind kind;
    store_db db; /* VALUE: ResourceParam or Aux (not SearchParam, which is written in folds) */
    const void *key;
    size_t key_len;
    const void *val;
    size_t val_len;
    int absent;
    const char *type, *id; /* VERSION: NUL-terminated; TYPE_VERSIONS: type only */
    uint64_t vid;
} store_cond;

typedef void (*store_done_fn)(void *ctx, int rc, uint64_t t);

/*
 * A write request: all ops (and extras) are applied atomically with one t, or not at all.
 * The caller owns the request, its ops, extras and all bytes they point to; everything
 * must stay valid and untouched until the done callback has been called.
 */
typedef struct store_req {
    uint32_t tenant;
    store_op *ops;
    size_t nops; /* 1 .. any; a transaction Bundle is one request */
    store_extra *extras;
    size_t nextra;
    const store_cond *conds; /* checked before anything is applied; may be NULL */
    size_t ncond;
    /* 1: a sorted load (an offline tool's bulk build of the search index, docs/STORAGE.md
     * 4.6b): the request's SearchParam extras are puts without fill_t in strictly
     * ascending key order, written straight into the B-tree (appended where they follow
     * its last key) instead of the IndexLog, with their counts kept; a key the B-tree
     * holds already is left as it is and not counted again. Its other extras are
     * applied as usual. */
    int sorted_load;
    /* outputs, set before the callback */
    int rc;           /* same as the callback's rc */
    uint64_t t;       /* the commit's t on success */
    size_t failed_op; /* index of the op that failed when rc != 0 (nops if extras) */
    /* private to the store */
    struct store_req *next_;
    store_done_fn done_;
    void *ctx_;
} store_req;

/*
 * Queue a write. Returns 0 when queued: `done(ctx, rc, t)` is then called exactly once,
 * from the writer thread, after the commit is durable (rc 0, t = the commit's t) or the
 * request failed (rc < 0, t = 0): ERR_CONFLICT (an op's expect did not match, or its vid
 * is not greater than the current one, or a check failed: the caller planned from a state another commit
 * has changed since), ERR_INVALID (the same resource twice in one request),
 * ERR_NOTFOUND / ERR_GONE (delete of a missing / already deleted resource), ERR_IO.
 * The callback must be quick (resume a connection, signal a condvar): it delays the
 * next batch; it must not call store_write() (the writer would wait for itself). Returns a negative
 * code without queuing (no callback) when the request is malformed (ERR_INVALID: bad type/id
 * characters or length, neither ops nor extras, missing bytes, vid 0; a request of extras
 * alone is allowed: it still gets its own t) or the store is closing (ERR_IO). Computes
 * SHA-256 of each op's bytes in the calling thread unless op.have_hash.
 */
int store_submit(store *s, store_req *req, store_done_fn done, void *ctx);

/* store_submit + wait for the callback; returns its rc, *t (may be NULL) its t. */
int store_write(store *s, store_req *req, uint64_t *t);

/* The content hash of bytes (first STORE_HASH_LEN bytes of their SHA-256). */
void store_hash(const void *bytes, size_t len, uint8_t out[STORE_HASH_LEN]);

/* ---- reads ------------------------------------------------------------------------- */

/*
 * Begin a read snapshot (the state as of the last commit at this moment). Reader handles
 * are cached (one per thread, then a free list): after warm-up this allocates nothing
 * and takes no lock. Every pointer obtained through the reader is valid until
 * store_read_end(). Keep snapshots short (milliseconds): a long one delays map growth and
 * keeps old pages from reuse. Returns 0, ERR_NOMEM, ERR_IO.
 *
 * Two rules, because map growth must wait for every open reader of the process:
 *   - never wait for a write (store_write, or a done callback) while holding a reader:
 *     end the reader first (read current vid, end, then submit);
 *   - never begin a second reader in a thread that already holds one.
 * Breaking either can deadlock when the map has to grow.
 */
int store_read_begin(store *s, store_reader **out);
/* End the snapshot; all its iterators must be closed first. NULL is a no-op. */
void store_read_end(store_reader *r);

/* The t of the reader's snapshot (0 for an empty database): use it as `as_of_t` so that
 * later pages of a listing see exactly the same data. */
uint64_t store_reader_t(const store_reader *r);

/* One version of a resource; all pointers into the map, valid until store_read_end(). */
typedef struct store_version {
    const char *type;     /* NUL-terminated type name */
    const char *id;       /* NUL-terminated id */
    uint64_t t;           /* commit that wrote this version */
    uint64_t vid;         /* versionId */
    int64_t last_updated; /* microseconds since epoch */
    store_opkind op;      /* create / update / delete */
    int created;          /* no live version existed before this one */
    const uint8_t *hash;  /* STORE_HASH_LEN bytes (zeros for delete) */
    const char *bytes;    /* JSON (not NUL-terminated); NULL for delete */
    size_t len;
} store_version;

/*
 * Current version of (tenant, type, id). 0: live, *v filled. ERR_GONE: the newest version
 * is a delete (*v filled, bytes NULL: vid, t, last_updated of the deletion).
 * ERR_NOTFOUND: never existed. ERR_INVALID: bad type/id. ERR_IO.
 */
int store_read(store_reader *r, uint32_t tenant, const char *type, const char *id,
               store_version *v);

/* Version `vid` of the resource. 0: found; ERR_GONE: that version is a delete (*v filled);
 * ERR_NOTFOUND: no such resource or version. Cost grows with the number of newer
 * versions (walks back from the newest). */
int store_vread(store_reader *r, uint32_t tenant, const char *type, const char *id, uint64_t vid,
                store_version *v);

/* Which history. */
typedef enum store_scope {
    STORE_SCOPE_INSTANCE = 1, /* one resource: type + id */
    STORE_SCOPE_TYPE,         /* all resources of type */
    STORE_SCOPE_SYSTEM,       /* everything of the tenant */
} store_scope;

typedef struct store_hist_opts {
    store_scope scope;
    uint32_t tenant;
    const char *type; /* INSTANCE, TYPE */
    const char *id;   /* INSTANCE */
    int64_t since;    /* STORE_NO_TIME (or 0) or: only versions with last_updated >= since */
    int64_t at;       /* STORE_NO_TIME (or 0: a zeroed struct means "no _at") or: only the
                         version of each resource that was current at this instant
                         (resolved to the last t committed at or before it); deletions
                         current at `at` are included */
    uint64_t as_of_t; /* 0 = the reader's snapshot; else ignore commits after this t
                         (stable paging: pass the first page's store_reader_t()) */
    /* page cursor: continue strictly after this entry (from a previous page's last
     * store_version); after_t = 0 means from the start */
    uint64_t after_t;
    const char *after_type; /* TYPE needs after_id; SYSTEM needs both */
    const char *after_id;
} store_hist_opts;

/*
 * Open a history iterator: versions newest first (t descending; within one t by type,
 * then id). Deletes are included (op == STORE_OP_DELETE, bytes NULL). The iterator
 * allocates (once) and must be closed before store_read_end(). Returns 0, ERR_INVALID,
 * ERR_NOMEM.
 */
int store_history(store_reader *r, const store_hist_opts *o, store_iter **out);

/*
 * All current, non-deleted resources of one type, ordered by id (byte order), as of
 * `as_of_t` (0 = the snapshot), starting strictly after `after_id` (NULL = from the
 * first). The basis of an unfiltered search and of paging it stably.
 */
int store_list(store_reader *r, uint32_t tenant, const char *type, uint64_t as_of_t,
               const char *after_id, store_iter **out);

/* Next entry: 0 with *v filled (pointers valid until store_read_end()), ERR_NOTFOUND at
 * the end, ERR_IO on failure. */
int store_iter_next(store_iter *it, store_version *v);

/* Close an iterator; NULL is a no-op. */
void store_iter_close(store_iter *it);

/* Current (non-deleted) resources and total versions (tombstones included) of `type`,
 * or of all types when type is NULL, in the reader's snapshot. Missing type = 0, 0. */
int store_count(store_reader *r, uint32_t tenant, const char *type, uint64_t *current,
                uint64_t *versions);

/*
 * Generic lookups into the reserved databases (for the search/index layers).
 * store_get: 0 and *val, *val_len pointing into the map, or ERR_NOTFOUND.
 * store_scan: iterate keys >= from (from_len bytes) that start with `prefix` (prefix_len
 * bytes; the prefix may be from itself); store_scan_next returns 0 with key/value
 * pointers into the map, ERR_NOTFOUND at the end. Closed with store_iter_close().
 */
int store_get(store_reader *r, store_db db, const void *key, size_t key_len, const void **val,
              size_t *val_len);
int store_scan(store_reader *r, store_db db, const void *from, size_t from_len, const void *prefix,
               size_t prefix_len, store_iter **out);
int store_scan_next(store_iter *it, const void **key, size_t *key_len, const void **val,
                    size_t *val_len);
/* As store_scan over every key that starts with prefix, in descending key order (the
 * same store_scan_next walks it backwards). */
int store_scan_rev(store_reader *r, store_db db, const void *prefix, size_t prefix_len,
                   store_iter **out);
/* As store_scan_rev, from the last key that is less than `before` (before_len bytes, 1 ..
 * STORE_EXTRA_KEY_MAX): the next page of a descending listing. Not for SearchParam
 * (ERR_INVALID). */
int store_scan_rev_before(store_reader *r, store_db db, const void *before, size_t before_len,
                          const void *prefix, size_t prefix_len, store_iter **out);

/*
 * The number of SearchParam keys of length prefix_len + count_suffix that start with
 * `prefix`, in the reader's snapshot, without reading them: a counted key's prefix
 * (store_opts.count_kinds) has its count kept in the same commits as the keys.
 * 0 and *n, or ERR_UNSUPPORTED (db is not SearchParam, the directory keeps no counts, or
 * the prefix is not of a counted kind).
 */
int store_key_count(store_reader *r, store_db db, const void *prefix, size_t prefix_len,
                    uint64_t *n);

/* ---- operations / metrics ---------------------------------------------------------- */

/* Upper bounds (µs) of the commit-duration histogram; one more bucket holds the rest. */
#define STORE_COMMIT_BUCKETS 12
extern const uint32_t store_commit_bucket_us[STORE_COMMIT_BUCKETS];

typedef struct store_stats {
    uint64_t last_t;         /* t of the last commit */
    uint64_t commits;        /* durable write transactions (each = one group commit) */
    uint64_t fsyncs;         /* sync calls issued by those commits (LMDB: data + meta) */
    uint64_t requests;       /* requests committed */
    uint64_t failed;         /* requests answered with an error (conflicts included) */
    uint64_t conflicts;      /* requests rejected with ERR_CONFLICT */
    uint64_t max_batch;      /* largest group commit seen, in requests */
    uint64_t map_resizes;    /* times the map was grown */
    uint64_t map_size;       /* current map size in bytes */
    uint64_t used_bytes;     /* pages in use (high-water mark) times page size */
    uint64_t readers;        /* reader handles currently in use */
    uint64_t apply_ns;       /* writer time spent applying batches (before commit) */
    uint64_t commit_ns;      /* writer time spent in commits (writing pages + syncs) */
    uint64_t reader_handles; /* read handles created so far (each holds a reader slot) */
    /* durations of durable commits (page writes + syncs), per bucket (not cumulative) */
    uint64_t commit_hist[STORE_COMMIT_BUCKETS + 1];
    uint64_t commit_max_ns; /* longest commit so far */
    uint64_t index_folds;           /* SearchParam overlay folds into the B-tree */
    uint64_t index_fold_ns;         /* time spent folding */
    uint64_t index_overlay_bytes;   /* memory of the overlay now */
    uint64_t index_overlay_records; /* SearchParam changes not folded yet */
    uint64_t index_fold_running;    /* 1 while a fold is in progress */
} store_stats;

/* A consistent-enough snapshot of the counters (each field is exact, not all together). */
void store_get_stats(store *s, store_stats *st);

/*
 * Verify the database against its invariants, in one read snapshot: the three version
 * indices hold the same entries with the same values; every non-delete version's content
 * exists and hashes to its key, and no content lacks a version; vids grow with t per
 * resource; Counts equal what the indices say; every t has its TxLog entry. Reads
 * everything (minutes on a big database): for tests, `hortus check` and after a crash.
 * Returns 0, or ERR_INTERNAL with the first problem described in msg (cap bytes,
 * NUL-terminated; may be NULL).
 */
int store_check(store *s, char *msg, size_t cap);

/* ---- backend interface (for implementers; callers use the functions above) ------- */

struct store_ops {
    const char *name;
    int (*open)(const char *where, const store_opts *o, store **out);
    void (*close)(store *s);
    int (*submit)(store *s, store_req *req);
    int (*read_begin)(store *s, store_reader **out);
    void (*read_end)(store_reader *r);
    uint64_t (*reader_t)(const store_reader *r);
    int (*read)(store_reader *r, uint32_t tenant, const char *type, const char *id, uint64_t vid,
                store_version *v); /* vid 0 = current */
    int (*history)(store_reader *r, const store_hist_opts *o, store_iter **out);
    int (*list)(store_reader *r, uint32_t tenant, const char *type, uint64_t as_of_t,
                const char *after_id, store_iter **out);
    int (*iter_next)(store_iter *it, store_version *v);
    void (*iter_close)(store_iter *it);
    int (*count)(store_reader *r, uint32_t tenant, const char *type, uint64_t *current,
                 uint64_t *versions);
    int (*get)(store_reader *r, store_db db, const void *key, size_t key_len, const void **val,
               size_t *val_len);
    int (*scan)(store_reader *r, store_db db, const void *from, size_t from_len, const void *prefix,
                size_t prefix_len, store_iter **out);
    int (*scan_next)(store_iter *it, const void **key, size_t *key_len, const void **val,
                     size_t *val_len);
    int (*scan_rev)(store_reader *r, store_db db, const void *prefix, size_t prefix_len,
                    store_iter **out);
    int (*scan_rev_before)(store_reader *r, store_db db, const void *before, size_t before_len,
                           const void *prefix, size_t prefix_len, store_iter **out);
    int (*key_count)(store_reader *r, store_db db, const void *prefix, size_t prefix_len,
                     uint64_t *n);
    void (*stats)(store *s, store_stats *st);
    int (*check)(store *s, char *msg, size_t cap);
};

/* Every backend's store, reader and iterator struct begins with these, so store.c can
 * dispatch. */
struct store {
    const struct store_ops *ops;
};
struct store_reader {
    const struct store_ops *ops;
};
struct store_iter {
    const struct store_ops *ops;
};

extern const struct store_ops store_lmdb_ops;

#endif
