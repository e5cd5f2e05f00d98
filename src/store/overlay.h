/*
 * overlay.h -- the in-memory overlay of recent SearchParam writes (docs/STORAGE.md 4.6).
 *
 * A SearchParam entry is durable in the commit of its version (a per-request record in
 * the IndexLog database), but it reaches the SearchParam B-tree only later, in one large
 * sorted "fold". Until then readers see it here. Writing ~20 scattered index keys per
 * resource straight into the B-tree dirtied ~20 pages per create in every commit; the
 * overlay turns that into one appended log record per request plus a fold that writes
 * each touched leaf once for many thousands of entries.
 *
 * The overlay is a *view*: an immutable list of sorted *runs* of records
 * (key, value, t, seq, put|del). The writer makes a new view for every commit (the old
 * runs plus one new run; adjacent runs of similar size are merged, so a view has
 * O(log n) runs) and swaps it in; readers hold a reference to the view they started
 * with. Nothing in a view changes after it is published, so reading needs no lock.
 *
 * Reading at a snapshot: a reader whose LMDB snapshot has folded everything up to
 * `lo` and committed everything up to `hi` sees, per key, the record with the greatest
 * (t, seq) among lo < t <= hi; a put gives the key its value, a delete hides it; a key
 * with no record in that window is whatever the B-tree says.
 *
 * Not thread-safe by itself except ovl_view_ref/unref: the store serialises publishing.
 */
#ifndef HORTUS_STORE_OVERLAY_H
#define HORTUS_STORE_OVERLAY_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define OVL_MAX_RUNS 48  /* runs in one view; merging keeps it near log2(records) */
#define OVL_VAL_MAX 65535 /* value bytes of one record */
#define OVL_KEY_MAX 65535 /* key bytes of one record (the store allows far fewer) */

typedef struct ovl_run ovl_run;
typedef struct ovl_view ovl_view;

/* One commit's records, in the order they were written (seq = position). */
typedef struct ovl_builder {
    buf bytes;     /* the records, one after the other */
    uint32_t *off; /* where each begins */
    size_t n, ncap;
} ovl_builder;

/* A record as read back; pointers stay valid while the view is referenced. */
typedef struct ovl_rec {
    const uint8_t *key;
    size_t klen;
    const uint8_t *val;
    size_t vlen;
    uint64_t t;
    uint32_t seq;
    int del;
} ovl_rec;

/* Append a record; 0, ERR_NOMEM, ERR_TOOBIG (key or value over the limits). */
int ovl_builder_add(ovl_builder *b, uint64_t t, int del, const void *key, size_t klen,
                    const void *val, size_t vlen);
/* Forget every record after the first n (a request rolled back). */
void ovl_builder_truncate(ovl_builder *b, size_t n);
void ovl_builder_reset(ovl_builder *b);
void ovl_builder_free(ovl_builder *b);

/* An empty view: everything at or before `floor` is in the B-tree. NULL: no memory. */
ovl_view *ovl_view_empty(uint64_t floor);
/* A new view: `old` plus the builder's records as one more run (which is then merged
 * with its neighbours while they are no more than twice its size). The builder is
 * left unchanged. 0 or ERR_NOMEM (then *out is untouched). */
int ovl_view_add(const ovl_view *old, const ovl_builder *b, ovl_view **out);
/* A new view of old's records with lo < t <= hi, and the given floor: (0, t, floor)
 * takes back a commit that failed after publishing; (F, UINT64_MAX, F) forgets what a
 * fold up to F has written into the B-tree. 0 or ERR_NOMEM. */
int ovl_view_keep(const ovl_view *old, uint64_t lo, uint64_t hi, uint64_t floor, ovl_view **out);
void ovl_view_ref(ovl_view *v);
void ovl_view_unref(ovl_view *v); /* NULL is a no-op; frees at zero */

uint64_t ovl_view_floor(const ovl_view *v);
size_t ovl_view_bytes(const ovl_view *v);   /* memory held by the records */
size_t ovl_view_records(const ovl_view *v);
size_t ovl_view_runs(const ovl_view *v);

/* The winning record of `key` in the window lo < t <= hi: 1 (out filled; it may be a
 * delete) or 0 (no record in the window). */
int ovl_get(const ovl_view *v, uint64_t lo, uint64_t hi, const void *key, size_t klen,
            ovl_rec *out);

/*
 * The change in the number of keys with `prefix` whose length is exactly klen that the
 * records of the window lo < t <= hi make, counting every record (a put +1, a delete -1:
 * the writer puts only keys that are absent and deletes only keys that are present, so
 * each record is an exact change), except those with t <= skip_hi whose key is <= skip_key
 * (a fold in progress has written them into the B-tree already; skip_key NULL: none).
 */
int64_t ovl_count_delta(const ovl_view *v, uint64_t lo, uint64_t hi, const void *prefix,
                        size_t plen, size_t klen, uint64_t skip_hi, const void *skip_key,
                        size_t skip_len);

/* A cursor over the distinct keys that have a record in the window, ascending or
 * descending, limited to keys starting with `prefix`. Forward starts at the first key
 * >= seek (seek_len 0: the prefix); reverse at the last key < seek (seek_len 0: the
 * end), so a caller passes the prefix plus one as seek, as store_scan_rev does. */
typedef struct ovl_cursor {
    const ovl_view *v;
    uint64_t lo, hi;
    int reverse;
    const uint8_t *prefix;
    size_t prefix_len;
    size_t pos[OVL_MAX_RUNS]; /* next index per run; reverse: next index + 1 (0 = done) */
    ovl_rec head[OVL_MAX_RUNS]; /* the record at pos, decoded once */
    uint8_t state[OVL_MAX_RUNS]; /* 0: head not decoded yet, 1: head valid, 2: run done */
    uint8_t act[OVL_MAX_RUNS];   /* the runs not done yet (a scan's range is in few) */
    size_t nact;
} ovl_cursor;

void ovl_cursor_init(ovl_cursor *c, const ovl_view *v, uint64_t lo, uint64_t hi,
                     const uint8_t *prefix, size_t prefix_len, const uint8_t *seek,
                     size_t seek_len, int reverse);
/* The next key's winning record: 1 (may be a delete) or 0 at the end. */
int ovl_cursor_next(ovl_cursor *c, ovl_rec *out);

#endif
