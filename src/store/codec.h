/*
 * codec.h -- every key and value byte layout of the LMDB store, encoded and decoded side
 * by side (docs/STORAGE.md is the specification; keep the two in step).
 *
 * The three version indices hold the same components in different orders:
 *
 *   ResourceAsOf  tenant(4) | type\0 | id\0  | ~t(8)        read, vread, instance history
 *   TypeAsOf      tenant(4) | type\0 | ~t(8) | id\0         type history
 *   SystemAsOf    tenant(4) | ~t(8)  | type\0 | id\0        system history
 *
 * so one struct (codec_key) and one pair of functions per direction serve all three,
 * selected by codec_layout. An encoder can stop after the first `nparts` components to
 * build a range prefix or a seek key. Big-endian integers make byte order numeric order;
 * ~t = UINT64_MAX - t makes a forward cursor walk newest first.
 *
 * Encoders write into caller buffers of CODEC_KEY_MAX bytes and return the length, or
 * ERR_INVALID for a bad type/id. Decoders return 0 or ERR_INVALID (corrupt key); their
 * string pointers point into the key bytes given (valid as long as those are).
 */
#ifndef HORTUS_STORE_CODEC_H
#define HORTUS_STORE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define CODEC_KEY_MAX (4 + 8 + (STORE_TYPE_MAX + 1) + (STORE_ID_MAX + 1) + 16)
#define CODEC_VREC_LEN 34 /* version record */
#define CODEC_TXLOG_VAL_LEN 12
#define CODEC_COUNTS_VAL_LEN 16

/* ---- integers ---------------------------------------------------------------------- */
void codec_put_u32(uint8_t *p, uint32_t v);
void codec_put_u64(uint8_t *p, uint64_t v);
uint32_t codec_get_u32(const uint8_t *p);
uint64_t codec_get_u64(const uint8_t *p);
/* An instant (µs, signed) as 8 bytes that sort in time order: sign bit flipped. */
void codec_put_instant(uint8_t *p, int64_t us);
int64_t codec_get_instant(const uint8_t *p);

/* 1 when s[0..n) is a valid type name ([A-Za-z], 1..STORE_TYPE_MAX) / id. */
int codec_valid_type(const char *s, size_t n);
int codec_valid_id(const char *s, size_t n);

/* ---- the three version indices ------------------------------------------------------ */
typedef enum codec_layout {
    CODEC_RESOURCE_ASOF = 1, /* tenant, type, id, ~t */
    CODEC_TYPE_ASOF,         /* tenant, type, ~t, id */
    CODEC_SYSTEM_ASOF,       /* tenant, ~t, type, id */
} codec_layout;

typedef struct codec_key {
    uint32_t tenant;
    const char *type; /* decoded: NUL-terminated inside the key */
    size_t type_len;
    const char *id;
    size_t id_len;
    uint64_t t;
} codec_key;

/* Encode the first nparts (1..4) components of k in `layout` order. */
int codec_asof_encode(codec_layout layout, uint8_t *out, const codec_key *k, int nparts);
/* Decode a full key of `layout`. */
int codec_asof_decode(codec_layout layout, const uint8_t *key, size_t n, codec_key *k);

/* ---- version record (value of the three indices) --------------------------------- */
typedef struct codec_vrec {
    uint64_t vid;
    int64_t last_updated;
    uint8_t hash[STORE_HASH_LEN];
    uint8_t op;    /* store_opkind */
    uint8_t flags; /* CODEC_VF_* */
} codec_vrec;
#define CODEC_VF_CREATED 0x01

void codec_vrec_encode(uint8_t out[CODEC_VREC_LEN], const codec_vrec *v);
/* 0, or ERR_INVALID when n != CODEC_VREC_LEN or op is unknown. */
int codec_vrec_decode(const uint8_t *p, size_t n, codec_vrec *v);

/* ---- Content ------------------------------------------------------------------------ */
/* tenant(4) | t(8) | hash(16): the content address, behind the commit that stored it so
 * the contents of one commit share leaf pages (docs/STORAGE.md, "Content"). */
#define CODEC_CONTENT_KEY_LEN (4 + 8 + STORE_HASH_LEN)
#define CODEC_ENC_PLAIN 0
void codec_content_key(uint8_t out[CODEC_CONTENT_KEY_LEN], uint32_t tenant, uint64_t t,
                       const uint8_t hash[STORE_HASH_LEN]);

/* ---- TxLog, TxByTime ------------------------------------------------------------- */
#define CODEC_TXLOG_KEY_LEN 12
#define CODEC_TXTIME_KEY_LEN 20
void codec_txlog_key(uint8_t out[CODEC_TXLOG_KEY_LEN], uint32_t tenant, uint64_t t);
int codec_txlog_key_decode(const uint8_t *p, size_t n, uint32_t *tenant, uint64_t *t);
void codec_txlog_val(uint8_t out[CODEC_TXLOG_VAL_LEN], int64_t instant, uint32_t nops);
int codec_txlog_val_decode(const uint8_t *p, size_t n, int64_t *instant, uint32_t *nops);
/* nparts 1 = tenant, 2 = + instant, 3 = + t; returns the length */
int codec_txtime_key(uint8_t out[CODEC_TXTIME_KEY_LEN], uint32_t tenant, int64_t instant,
                     uint64_t t, int nparts);
int codec_txtime_key_decode(const uint8_t *p, size_t n, uint32_t *tenant, int64_t *instant,
                            uint64_t *t);

/* ---- Counts ------------------------------------------------------------------------- */
/* type NULL/empty = the tenant's totals; returns the length or ERR_INVALID */
int codec_counts_key(uint8_t *out, uint32_t tenant, const char *type, size_t type_len);
void codec_counts_val(uint8_t out[CODEC_COUNTS_VAL_LEN], uint64_t current, uint64_t versions);
int codec_counts_val_decode(const uint8_t *p, size_t n, uint64_t *current, uint64_t *versions);

#endif
