/*
 * index.h -- the search index (prefix idx_): which entries a resource has, and the
 * extra puts and deletes that keep SearchParam and ResourceParam equal to the
 * current versions (layouts: docs/STORAGE.md section 4).
 *
 *   resource JSON --FHIRPath of every parameter of its type (fp_sp_cache)-->
 *   values --normalise per parameter type--> entries {sp, kind, value}
 *
 *   write plan:  old entries (ResourceParam) vs new entries -> deletes + puts
 *
 * Entries are what the query engine (src/search/) scans: a search value is
 * normalised by the same functions (idx_norm_*), so the two sides cannot drift.
 * Pure functions of their inputs except idx_plan, which reads ResourceParam
 * through the store interface.
 */
#ifndef HORTUS_INDEX_H
#define HORTUS_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/arena.h"
#include "base/buf.h"
#include "fhir/model.h"
#include "json/json.h"
#include "store/store.h"

struct fp_sp_cache;

#define IDX_RN_LEN 10      /* resource number: t(8) | n(2) */
#define IDX_MAX_VALUE 400  /* normalised value bytes in a key; longer strings are cut */
#define IDX_MAX_VERSION 40 /* bytes of a canonical's "|version" kept in its R entry */
#define IDX_MAX_ENTRIES 20000 /* entries of one resource: more is 422 too-costly */

/* The SearchParam keys whose number the store keeps per value (store_opts.count_kinds,
 * docs/STORAGE.md 4.7): the kinds a search names by their whole value, so that the total
 * of `code=system|code` or `subject=Patient/1` needs no scan. The kind is the byte after
 * tenant(4) and sp(4); the rn (IDX_RN_LEN) ends every key. */
#define IDX_COUNT_KINDS "TRUXIO"
#define IDX_COUNT_KIND_AT 8

/* Entry kinds (docs/STORAGE.md 4.3). */
enum {
    IDX_STRING = 'S',  /* normalised string */
    IDX_EXACT = 'X',   /* string as stored */
    IDX_TOKEN = 'T',   /* code\0 system\0 */
    IDX_TEXT = 'Y',    /* normalised display / text of a token */
    IDX_REF = 'R',     /* id\0 Type\0, or url\0 \0 */
    IDX_REF_ID = 'I',  /* value\0 system\0 of Reference.identifier */
    IDX_DATE = 'D',    /* lo(8) hi(8) */
    IDX_DATE_HI = 'H', /* hi(8) lo(8) */
    IDX_NUMBER = 'N',  /* double(8) */
    IDX_QTY = 'Q',     /* system\0 code\0 double(8) */
    IDX_QTY_UCUM = 'C',/* canonical unit\0 double(8) */
    IDX_QTY_VALUE = 'V',/* double(8) */
    IDX_URI = 'U',     /* uri\0 */
    IDX_OF_TYPE = 'O', /* Identifier: type system\0 type code\0 value\0 (:of-type) */
    IDX_COMPOSITE = 'K',/* one part per component (below) */
    IDX_GEO = 'G',      /* latitude double(8) longitude double(8): Location.position (near) */
    IDX_PAT_TOKEN = 'j',/* a T entry within a patient: patient-id\0 code\0 system\0 */
    IDX_PAT_DATE = 'k', /* a D entry within a patient: patient-id\0 lo(8) hi(8) */
    IDX_PAT_OVER = 'z', /* patient-id\0: some entries of this resource within that patient
                           did not fit in a key (searches within it do not use j/k) */
    IDX_QTY_PART = 'q', /* a quantity inside a composite: system\0 code\0 unit\0 double(8)
                           has-canonical(1) [canonical unit\0 double(8)] */
};

/* 1 when special parameter sp is one the index holds entries of (R4's Location.near). */
int idx_special_indexed(const struct fhir_search_param *sp);

/* ---- composite parameters (composite.c) ----------------------------------------------
 * An IDX_COMPOSITE entry holds, for one value of the parameter's expression, one part per
 * component: the part's kind byte and its value (T code\0 system\0, S folded\0,
 * R id\0 Type\0 or url\0 \0, U uri\0, D lo hi, N double, q as above), every string cut
 * at IDX_PART_STR bytes. */
#define IDX_PART_STR 64

/* The definition of component k of composite sp (its type and targets), or NULL. */
const fhir_search_param *idx_component(const fhir_search_param *sp, unsigned k);

/* 1 when entries of this kind become parts of composite entries. */
int idx_part_kind(uint8_t kind);

/* Append the part of a value of `kind` (its entry bytes, or a query's prefix of them)
 * to out: the kind byte and the value with its strings cut at IDX_PART_STR. 0, or -1
 * for bytes that are not of that kind. */
int idx_part_recode(uint8_t kind, const uint8_t *val, size_t len, buf *out);

/* The bytes of one escaped string (idx_put_str) at p[0..n), its 0x00 included; 0 when
 * it is not terminated within n. */
size_t idx_str_len(const uint8_t *p, size_t n);

/* The length of the part at p[0..n) (kind byte included), 0 when malformed. */
size_t idx_part_len(const uint8_t *p, size_t n);

typedef struct idx_entry {
    uint32_t sp;          /* idx_sp_hash(type, code) */
    uint8_t kind;
    uint16_t len;         /* value bytes */
    const uint8_t *val;   /* arena or a decoded ResourceParam value */
} idx_entry;

typedef struct idx_set {
    idx_entry *e;
    size_t n, cap;
} idx_set;

/* The 4-byte parameter hash of "Type.code" (big-endian first bytes of SHA-256). */
uint32_t idx_sp_hash(const char *type, const char *code);

/* All entries of `res` (a resource of `type`), sorted and without duplicates,
 * values in `a`. base_url: this server's FHIR base, so absolute references to it
 * count as local ("" when unknown). Returns 0, ERR_TOOBIG (more than
 * IDX_MAX_ENTRIES), ERR_NOMEM. A parameter whose expression fails on this
 * resource (a FHIRPath run-time error) contributes nothing. */
int idx_extract(const struct fp_sp_cache *spc, arena *a, const char *type, const json_val *res,
                const char *base_url, idx_set *out);

/* The entries of one parameter sp of type alone (a custom parameter's reindex). */
int idx_extract_one(const struct fp_sp_cache *spc, arena *a, const char *type,
                    const fhir_search_param *sp, const json_val *res, const char *base_url,
                    idx_set *out);

/* The 4-byte hash entries of sp carry: idx_sp_hash(type, code) for the model's
 * parameters, the tag of a custom one (a hash that names its SearchParameter's
 * version, so entries of an earlier definition are never read as this one's). */
uint32_t idx_param_hash(const struct fp_sp_cache *spc, const char *type,
                        const fhir_search_param *sp);

/* Order of entries (sp, kind, value bytes): what idx_extract sorts by. */
int idx_entry_cmp(const idx_entry *x, const idx_entry *y);

/* ---- keys --------------------------------------------------------------------------- */

/* SearchParam key of entry e for resource number rn into out (cap >= STORE_EXTRA_KEY_MAX).
 * Returns the key length. The rn starts at (length - IDX_RN_LEN). */
size_t idx_sp_key(uint8_t *out, uint32_t tenant, const idx_entry *e, const uint8_t rn[IDX_RN_LEN]);

/* The prefix of every SearchParam key of (sp, kind) followed by `val` (len bytes). */
size_t idx_sp_prefix(uint8_t *out, uint32_t tenant, uint32_t sp, uint8_t kind, const void *val,
                     size_t len);

/* ResourceParam key of (type, id). */
size_t idx_rp_key(uint8_t *out, uint32_t tenant, const char *type, const char *id);

/* ResourceParam key of the entries of one custom parameter (its tag) of resource id:
 * tenant | 0x01 | tag(4) | id\0 (type names start with a letter: no main key is one).
 * Its value is encoded as a ResourceParam value: rn | the entries of that parameter. */
#define IDX_CUSTOM_RP 0x01
#define IDX_CUSTOM_KEY_MAX (4 + 1 + 4 + 65)
size_t idx_custom_key(uint8_t *out, uint32_t tenant, uint32_t tag, const char *id);

/* Aux key of the parameter set's generation: tenant | "pparams" -> t (u64 BE) of the last
 * commit that changed a SearchParameter; absent before the first. */
#define IDX_PARAMS_KEY_LEN 11
size_t idx_params_key(uint8_t *out, uint32_t tenant);

/* Aux key of a custom parameter's reindex state: tenant | 'x' | tag(4). */
#define IDX_REINDEX_KEY_LEN 9
size_t idx_reindex_key(uint8_t *out, uint32_t tenant, uint32_t tag);

/* The prefix of every Aux rn -> id key of a type: tenant | 'r' | type\0. */
size_t idx_rn_prefix(uint8_t *out, uint32_t tenant, const char *type);

/* Aux key rn -> id: tenant | 'r' | type\0 | rn. */
size_t idx_rn_key(uint8_t *out, uint32_t tenant, const char *type, const uint8_t rn[IDX_RN_LEN]);

/* Aux key of a deleted resource's rn -> id: tenant | 'g' | type\0 | rn. A delete moves
 * the 'r' key here, so a later page of a search begun before the delete still finds
 * the resource's number and id (docs/SEARCH.md, paging). */
size_t idx_gone_key(uint8_t *out, uint32_t tenant, const char *type, const uint8_t rn[IDX_RN_LEN]);

/* Encode rn + entries as a ResourceParam value into b; decode one back (entries point
 * into val). 0, or ERR_INVALID for a malformed value. */
void idx_rp_encode(buf *b, const uint8_t rn[IDX_RN_LEN], const idx_set *s);
int idx_rp_decode(arena *a, const void *val, size_t len, uint8_t rn[IDX_RN_LEN], idx_set *s);

/* ---- normalisation (shared with the query side) ------------------------------------ */

/* Case- and accent-insensitive form of a string (docs/STORAGE.md 4.3) appended to b,
 * cut at IDX_MAX_VALUE bytes on a character boundary. */
void idx_norm_string(const char *s, size_t n, buf *b);

/* A string as a self-delimiting value part: escaped, then 0x00. */
void idx_put_str(buf *b, const char *s, size_t n);

/* The interval [*lo, *hi] in microseconds that a date/dateTime/instant stands for, by
 * its precision: a year is all of it, "10:00:00.5" is [.500000, .599999] (a fraction's
 * digits are its precision, up to milliseconds). A value without a zone is read as UTC. */
struct fp_dt;
void idx_date_range(const struct fp_dt *d, int64_t *lo, int64_t *hi);

/* 8 bytes big-endian (the t of generation and state values). */
void idx_put_u64(uint8_t p[8], uint64_t v);
uint64_t idx_get_u64(const uint8_t p[8]);

/* Order-preserving 8 bytes of a double / of microseconds (as the store's instant). */
void idx_put_double(buf *b, double d);
void idx_double_key(uint8_t p[8], double d); /* the same 8 bytes, into p */
void idx_put_instant(buf *b, int64_t us);

/* ---- the write plan ----------------------------------------------------------------- */

/* What one write changes in the index: appended to the caller's extras through add()
 * (same signature as rest_write_add_extra's core). */
typedef int (*idx_add_fn)(void *ctx, store_db db, int del, const void *key, size_t key_len,
                          const void *val, size_t val_len, int fill_t, size_t t_offset,
                          int fill_t_val, size_t t_val_offset);

/* A condition of the write (store_cond), copied by the callee. */
typedef int (*idx_cond_fn)(void *ctx, const store_cond *c);

/* Append a copy of c (key, val and names copied into a) to the array *x of *n. */
int idx_cond_append(arena *a, store_cond **x, size_t *n, size_t *cap, const store_cond *c);

/* The extras and conditions one request collects (arrays in a): pass it as the ctx of
 * idx_sink_add / idx_sink_cond. */
typedef struct idx_sink {
    arena *a;
    store_extra *x;
    size_t nx, capx;
    store_cond *c;
    size_t nc, capc;
} idx_sink;

int idx_sink_add(void *ctx, store_db db, int del, const void *key, size_t key_len,
                 const void *val, size_t val_len, int fill_t, size_t t_offset, int fill_t_val,
                 size_t t_val_offset);
int idx_sink_cond(void *ctx, const store_cond *c);

/* Append one extra to the array *x of *n (capacity *cap, grown in a), with copies of
 * key and val in a: the one way extras lists are built. 0 or ERR_NOMEM. */
int idx_extra_append(arena *a, store_extra **x, size_t *n, size_t *cap, store_db db, int del,
                     const void *key, size_t key_len, const void *val, size_t val_len,
                     int fill_t, size_t t_offset, int fill_t_val, size_t t_val_offset);

/* The index changes of writing `res` (NULL: a delete) as the new current version of
 * type/id, against what ResourceParam says under rd. op_index: the op's position in
 * its request (the n of a new rn). With cond (may be NULL when nothing else writes):
 * the conditions under which the plan is still right at commit, that the parameter set
 * is still spc's (the generation key equals its stamp) and that the records of its
 * custom parameters were not changed by a reindex since rd. Returns 0, ERR_TOOBIG,
 * ERR_NOMEM, ERR_IO. */
int idx_plan(const struct fp_sp_cache *spc, store_reader *rd, arena *a, uint32_t tenant,
             const char *type, const char *id, const json_val *res, const char *base_url,
             uint16_t op_index, idx_add_fn add, idx_cond_fn cond, void *add_ctx);

/* The index changes of one custom parameter cu for the current version `res` of
 * cu->base/id (a reindex): its entries against its record. The caller makes the commit
 * conditional on the version (which every other change of the record changes too).
 * ERR_NOTFOUND when the resource has no entries. */
struct fp_sp_custom;
int idx_plan_param(const struct fp_sp_cache *spc, const struct fp_sp_custom *cu,
                   store_reader *rd, arena *a, uint32_t tenant, const char *id,
                   const json_val *res, const char *base_url, idx_add_fn add, void *add_ctx);

/* The condition "the parameter set is still spc's" (store_cond into *c, key in kbuf of
 * IDX_PARAMS_KEY_LEN bytes, value in vbuf of 8). */
void idx_params_cond(const struct fp_sp_cache *spc, uint32_t tenant, uint8_t *kbuf,
                     uint8_t *vbuf, store_cond *c);

/* The entries of the current version of type/id as the index holds them: its
 * ResourceParam list and the records of spc's custom parameters of type, merged and
 * sorted. 0, ERR_NOTFOUND (no entries: not a current resource), ERR_IO, ERR_NOMEM. */
int idx_entries(const struct fp_sp_cache *spc, store_reader *rd, arena *a, uint32_t tenant,
                const char *type, const char *id, uint8_t rn[IDX_RN_LEN], idx_set *es);

/* Make sure tenant's search index covers every current resource: when the marker of a
 * complete index is missing (a directory written before the index existed, or a build
 * that was interrupted), index every current resource now, in bounded commits, then
 * write the marker. Progress lines go to log (may be NULL). Call before serving, with
 * no other writer. 0, ERR_UNSUPPORTED (the marker names a newer index layout), or the
 * store's error. */
int idx_ensure(const struct fp_sp_cache *spc, store *st, uint32_t tenant, FILE *log);

/* ---- the index of a bulk load (bulk.c, docs/STORAGE.md 4.6b) ------------------------ */

/* Begin (or continue, after an interruption) a bulk load of tenant: the SearchParam
 * keys of every resource numbered after *from (filled: the t before the load) are
 * left to idx_bulk_finish. A build of an earlier load that was cut short is finished
 * first (tmpdir, log: as for idx_bulk_finish). 0 or the store's error. */
int idx_bulk_begin(store *st, uint32_t tenant, const char *tmpdir, FILE *log, uint64_t *from);

/* Leave out of x[0..n) the SearchParam extras of the load's resources (numbered after
 * from, or numbered by this commit); returns how many extras remain, in order. */
size_t idx_bulk_defer(uint64_t from, store_extra *x, size_t n);

/* Write the keys of a pending bulk load: generated from the ResourceParam records,
 * sorted (in runs spilled to unlinked files in tmpdir; NULL: $TMPDIR or /tmp), merged
 * and appended in sorted loads; resumes after an interruption. No other writer may run.
 * 0 (also when nothing is pending), ERR_IO, ERR_NOMEM or the store's error. */
int idx_bulk_finish(store *st, uint32_t tenant, const char *tmpdir, FILE *log);

/* The local references of the resources numbered after `from` (a bulk load's) whose
 * target has no live version (never written, or deleted): fn once per referring
 * resource and target, *nrefs their number. Canonicals and absolute URLs are not
 * checked. 0, ERR_NOMEM or the store's error. (dangling.c) */
typedef void (*idx_dangling_fn)(void *ctx, const char *type, const char *id,
                                const char *to_type, const char *to_id);
int idx_dangling(store *st, uint32_t tenant, uint64_t from, idx_dangling_fn fn, void *ctx,
                 uint64_t *nrefs);

/* 1 when rd's snapshot has a bulk load of tenant whose keys are not all written. */
int idx_bulk_pending(store_reader *rd, uint32_t tenant);

/* Verify the whole index of tenant against the current versions, in one snapshot:
 * every current version's entries are in ResourceParam and SearchParam, and no
 * entry or ResourceParam key exists without its version. 0, or ERR_INTERNAL with the
 * first problem in msg; *nres / *nentries count what was checked. */
int idx_check(const struct fp_sp_cache *spc, store *s, uint32_t tenant, char *msg, size_t cap,
              uint64_t *nres, uint64_t *nentries);

#endif
