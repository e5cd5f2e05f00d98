/*
 * codec.c -- the byte layouts of docs/STORAGE.md, each encoder next to its decoder so a
 * change to one is seen beside the other. No allocation: callers pass buffers of
 * CODEC_KEY_MAX bytes; decoders return pointers into the bytes they were given.
 */
#include "store/codec.h"

#include <string.h>

#include "base/err.h"
#include "base/id.h"

void codec_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint32_t codec_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void codec_put_u64(uint8_t *p, uint64_t v)
{
    codec_put_u32(p, (uint32_t)(v >> 32));
    codec_put_u32(p + 4, (uint32_t)v);
}

uint64_t codec_get_u64(const uint8_t *p)
{
    return (uint64_t)codec_get_u32(p) << 32 | codec_get_u32(p + 4);
}

void codec_put_instant(uint8_t *p, int64_t us)
{
    codec_put_u64(p, (uint64_t)us ^ (UINT64_C(1) << 63));
}

int64_t codec_get_instant(const uint8_t *p)
{
    return (int64_t)(codec_get_u64(p) ^ (UINT64_C(1) << 63));
}

int codec_valid_type(const char *s, size_t n)
{
    if (!s || n == 0 || n > STORE_TYPE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    return 1;
}

_Static_assert(STORE_ID_MAX == ID_MAX, "the store keys resources by FHIR ids");

int codec_valid_id(const char *s, size_t n)
{
    return id_valid(s, n);
}

/* ---- the three version indices ---------------------------------------------------- */

/* The component order of each layout: T = type, I = id, N = ~t. */
static const char *layout_order(codec_layout layout)
{
    switch (layout) {
    case CODEC_RESOURCE_ASOF:
        return "TIN";
    case CODEC_TYPE_ASOF:
        return "TNI";
    case CODEC_SYSTEM_ASOF:
        return "NTI";
    }
    return NULL;
}

int codec_asof_encode(codec_layout layout, uint8_t *out, const codec_key *k, int nparts)
{
    const char *order = layout_order(layout);
    if (!order || nparts < 1 || nparts > 4)
        return ERR_INVALID;
    codec_put_u32(out, k->tenant);
    size_t n = 4;
    for (int i = 0; i < nparts - 1; i++) {
        switch (order[i]) {
        case 'T':
            if (!codec_valid_type(k->type, k->type_len))
                return ERR_INVALID;
            memcpy(out + n, k->type, k->type_len);
            n += k->type_len;
            out[n++] = 0;
            break;
        case 'I':
            if (!codec_valid_id(k->id, k->id_len))
                return ERR_INVALID;
            memcpy(out + n, k->id, k->id_len);
            n += k->id_len;
            out[n++] = 0;
            break;
        case 'N':
            codec_put_u64(out + n, UINT64_MAX - k->t);
            n += 8;
            break;
        }
    }
    return (int)n;
}

/* A NUL-terminated string at key[*pos..n): its length, or -1 when unterminated. */
static long take_string(const uint8_t *key, size_t n, size_t *pos)
{
    const uint8_t *z = memchr(key + *pos, 0, n - *pos);
    if (!z)
        return -1;
    long len = (long)(z - (key + *pos));
    *pos += (size_t)len + 1;
    return len;
}

int codec_asof_decode(codec_layout layout, const uint8_t *key, size_t n, codec_key *k)
{
    const char *order = layout_order(layout);
    if (!order || n < 4)
        return ERR_INVALID;
    k->tenant = codec_get_u32(key);
    size_t pos = 4;
    for (int i = 0; i < 3; i++) {
        size_t start = pos;
        long len;
        switch (order[i]) {
        case 'T':
            len = take_string(key, n, &pos);
            if (len <= 0)
                return ERR_INVALID;
            k->type = (const char *)key + start;
            k->type_len = (size_t)len;
            break;
        case 'I':
            len = take_string(key, n, &pos);
            if (len <= 0)
                return ERR_INVALID;
            k->id = (const char *)key + start;
            k->id_len = (size_t)len;
            break;
        case 'N':
            if (n - pos < 8)
                return ERR_INVALID;
            k->t = UINT64_MAX - codec_get_u64(key + pos);
            pos += 8;
            break;
        }
    }
    return pos == n ? 0 : ERR_INVALID;
}

/* ---- version record ----------------------------------------------------------------- */

void codec_vrec_encode(uint8_t out[CODEC_VREC_LEN], const codec_vrec *v)
{
    codec_put_u64(out, v->vid);
    codec_put_u64(out + 8, (uint64_t)v->last_updated);
    memcpy(out + 16, v->hash, STORE_HASH_LEN);
    out[32] = v->op;
    out[33] = v->flags;
}

int codec_vrec_decode(const uint8_t *p, size_t n, codec_vrec *v)
{
    if (n != CODEC_VREC_LEN || p[32] < STORE_OP_CREATE || p[32] > STORE_OP_DELETE)
        return ERR_INVALID;
    v->vid = codec_get_u64(p);
    v->last_updated = (int64_t)codec_get_u64(p + 8);
    memcpy(v->hash, p + 16, STORE_HASH_LEN);
    v->op = p[32];
    v->flags = p[33];
    return 0;
}

/* ---- Content ------------------------------------------------------------------------ */

void codec_content_key(uint8_t out[CODEC_CONTENT_KEY_LEN], uint32_t tenant, uint64_t t,
                       const uint8_t hash[STORE_HASH_LEN])
{
    codec_put_u32(out, tenant);
    codec_put_u64(out + 4, t);
    memcpy(out + 12, hash, STORE_HASH_LEN);
}

/* ---- TxLog, TxByTime ------------------------------------------------------------- */

void codec_txlog_key(uint8_t out[CODEC_TXLOG_KEY_LEN], uint32_t tenant, uint64_t t)
{
    codec_put_u32(out, tenant);
    codec_put_u64(out + 4, t);
}

int codec_txlog_key_decode(const uint8_t *p, size_t n, uint32_t *tenant, uint64_t *t)
{
    if (n != CODEC_TXLOG_KEY_LEN)
        return ERR_INVALID;
    *tenant = codec_get_u32(p);
    *t = codec_get_u64(p + 4);
    return 0;
}

void codec_txlog_val(uint8_t out[CODEC_TXLOG_VAL_LEN], int64_t instant, uint32_t nops)
{
    codec_put_u64(out, (uint64_t)instant);
    codec_put_u32(out + 8, nops);
}

int codec_txlog_val_decode(const uint8_t *p, size_t n, int64_t *instant, uint32_t *nops)
{
    if (n != CODEC_TXLOG_VAL_LEN)
        return ERR_INVALID;
    *instant = (int64_t)codec_get_u64(p);
    *nops = codec_get_u32(p + 8);
    return 0;
}

int codec_txtime_key(uint8_t out[CODEC_TXTIME_KEY_LEN], uint32_t tenant, int64_t instant,
                     uint64_t t, int nparts)
{
    if (nparts < 1 || nparts > 3)
        return ERR_INVALID;
    codec_put_u32(out, tenant);
    if (nparts == 1)
        return 4;
    codec_put_instant(out + 4, instant);
    if (nparts == 2)
        return 12;
    codec_put_u64(out + 12, t);
    return CODEC_TXTIME_KEY_LEN;
}

int codec_txtime_key_decode(const uint8_t *p, size_t n, uint32_t *tenant, int64_t *instant,
                            uint64_t *t)
{
    if (n != CODEC_TXTIME_KEY_LEN)
        return ERR_INVALID;
    *tenant = codec_get_u32(p);
    *instant = codec_get_instant(p + 4);
    *t = codec_get_u64(p + 12);
    return 0;
}

/* ---- Counts ------------------------------------------------------------------------- */

int codec_counts_key(uint8_t *out, uint32_t tenant, const char *type, size_t type_len)
{
    codec_put_u32(out, tenant);
    if (!type || type_len == 0) {
        out[4] = 0;
        return 5;
    }
    if (!codec_valid_type(type, type_len))
        return ERR_INVALID;
    memcpy(out + 4, type, type_len);
    out[4 + type_len] = 0;
    return (int)(5 + type_len);
}

void codec_counts_val(uint8_t out[CODEC_COUNTS_VAL_LEN], uint64_t current, uint64_t versions)
{
    codec_put_u64(out, current);
    codec_put_u64(out + 8, versions);
}

int codec_counts_val_decode(const uint8_t *p, size_t n, uint64_t *current, uint64_t *versions)
{
    if (n != CODEC_COUNTS_VAL_LEN)
        return ERR_INVALID;
    *current = codec_get_u64(p);
    *versions = codec_get_u64(p + 8);
    return 0;
}
