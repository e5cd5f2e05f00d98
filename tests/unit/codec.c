/* codec.c -- round trips of every store key/value layout, the examples of
 * docs/STORAGE.md byte for byte, and the sort orders the store relies on
 * (~t newest first, ids of different lengths, type names that prefix each other). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "store/codec.h"
#include "tap.h"

/* LMDB's default key order: memcmp over the common length, then shorter first. */
static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02X", p[i]);
}

static int enc(codec_layout l, uint8_t *out, uint32_t tenant, const char *type, const char *id,
               uint64_t t)
{
    codec_key k = {.tenant = tenant,
                   .type = type,
                   .type_len = type ? strlen(type) : 0,
                   .id = id,
                   .id_len = id ? strlen(id) : 0,
                   .t = t};
    return codec_asof_encode(l, out, &k, 4);
}

static void test_integers(void)
{
    uint8_t b[8];
    codec_put_u32(b, 0x01020304u);
    ok(b[0] == 1 && b[3] == 4, "u32 is big-endian");
    is_int(codec_get_u32(b), 0x01020304u, "u32 round trip");
    codec_put_u64(b, UINT64_C(0x0102030405060708));
    ok(b[0] == 1 && b[7] == 8, "u64 is big-endian");
    ok(codec_get_u64(b) == UINT64_C(0x0102030405060708), "u64 round trip");

    int64_t samples[] = {INT64_MIN + 1, -86400000000LL, -1, 0, 1, 1795000000000000LL, INT64_MAX};
    int sorted = 1, round = 1;
    uint8_t prev[8];
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        codec_put_instant(b, samples[i]);
        round &= codec_get_instant(b) == samples[i];
        if (i)
            sorted &= memcmp(prev, b, 8) < 0;
        memcpy(prev, b, 8);
    }
    ok(round, "instant round trip, negative and positive");
    ok(sorted, "instant bytes sort in time order across the sign");
}

static void test_validation(void)
{
    ok(codec_valid_type("Patient", 7), "Patient is a valid type");
    ok(!codec_valid_type("Pat ient", 8), "space in a type is rejected");
    ok(!codec_valid_type("", 0), "empty type is rejected");
    ok(codec_valid_id("a-B.9", 5), "id with - and . is valid");
    ok(!codec_valid_id("a_b", 3), "underscore in an id is rejected");
    ok(!codec_valid_id("a\0b", 3), "NUL in an id is rejected");
    char long_id[STORE_ID_MAX + 2];
    memset(long_id, 'x', sizeof long_id);
    ok(codec_valid_id(long_id, STORE_ID_MAX), "id of exactly 64 chars is valid");
    ok(!codec_valid_id(long_id, STORE_ID_MAX + 1), "id of 65 chars is rejected");
    uint8_t kb[CODEC_KEY_MAX];
    is_int(enc(CODEC_RESOURCE_ASOF, kb, 0, "Patient", "a/b", 1), ERR_INVALID,
           "encoder refuses a bad id");
    is_int(enc(CODEC_TYPE_ASOF, kb, 0, "Pat\x01", "a", 1), ERR_INVALID,
           "encoder refuses a bad type");
}

static void test_documented_examples(void)
{
    uint8_t kb[CODEC_KEY_MAX];
    char h[2 * CODEC_KEY_MAX + 1];
    int n = enc(CODEC_RESOURCE_ASOF, kb, 0, "Patient", "p1", 5);
    hex(kb, (size_t)n, h);
    is_str(h, "0000000050617469656E7400703100FFFFFFFFFFFFFFFA", "ResourceAsOf example");
    n = enc(CODEC_TYPE_ASOF, kb, 0, "Patient", "p1", 5);
    hex(kb, (size_t)n, h);
    is_str(h, "0000000050617469656E7400FFFFFFFFFFFFFFFA703100", "TypeAsOf example");
    n = enc(CODEC_SYSTEM_ASOF, kb, 0, "Patient", "p1", 5);
    hex(kb, (size_t)n, h);
    is_str(h, "00000000FFFFFFFFFFFFFFFA50617469656E7400703100", "SystemAsOf example");

    codec_vrec v = {.vid = 2, .last_updated = INT64_C(1795431600000000), .op = 2, .flags = 0};
    uint8_t vb[CODEC_VREC_LEN];
    codec_vrec_encode(vb, &v);
    hex(vb, 16, h);
    is_str(h, "0000000000000002000660EF7EBC8C00", "version record example (vid, lastUpdated)");
    ok(vb[32] == 2 && vb[33] == 0, "version record example (op, flags)");
}

static void test_asof_round_trips(void)
{
    codec_layout layouts[] = {CODEC_RESOURCE_ASOF, CODEC_TYPE_ASOF, CODEC_SYSTEM_ASOF};
    const char *names[] = {"ResourceAsOf", "TypeAsOf", "SystemAsOf"};
    for (int i = 0; i < 3; i++) {
        uint8_t kb[CODEC_KEY_MAX];
        int n = enc(layouts[i], kb, 0xA1B2C3D4u, "Observation", "obs-1.x", UINT64_C(1) << 40);
        codec_key k;
        int rc = codec_asof_decode(layouts[i], kb, (size_t)n, &k);
        ok(rc == 0 && k.tenant == 0xA1B2C3D4u && k.t == UINT64_C(1) << 40 && k.type_len == 11 &&
               !strcmp(k.type, "Observation") && k.id_len == 7 && !strcmp(k.id, "obs-1.x"),
           "%s round trip (strings come back NUL-terminated)", names[i]);
        is_int(codec_asof_decode(layouts[i], kb, (size_t)n - 1, &k), ERR_INVALID,
               "%s: a truncated key is rejected", names[i]);
        uint8_t longer[CODEC_KEY_MAX + 1];
        memcpy(longer, kb, (size_t)n);
        longer[n] = 'x';
        is_int(codec_asof_decode(layouts[i], longer, (size_t)n + 1, &k), ERR_INVALID,
               "%s: trailing bytes are rejected", names[i]);
    }
    /* prefixes are prefixes of full keys */
    uint8_t full[CODEC_KEY_MAX], pre[CODEC_KEY_MAX];
    int n = enc(CODEC_TYPE_ASOF, full, 3, "Patient", "x", 9);
    codec_key k = {.tenant = 3, .type = "Patient", .type_len = 7, .t = 9};
    int p = codec_asof_encode(CODEC_TYPE_ASOF, pre, &k, 3);
    ok(p > 0 && p < n && memcmp(full, pre, (size_t)p) == 0,
       "a 3-part TypeAsOf key is a prefix of the full key");
}

static void test_order(void)
{
    uint8_t a[CODEC_KEY_MAX], b[CODEC_KEY_MAX];
    int an, bn;
    an = enc(CODEC_RESOURCE_ASOF, a, 0, "Patient", "p", 10);
    bn = enc(CODEC_RESOURCE_ASOF, b, 0, "Patient", "p", 9);
    ok(key_cmp(a, (size_t)an, b, (size_t)bn) < 0, "ResourceAsOf: t=10 sorts before t=9");
    an = enc(CODEC_RESOURCE_ASOF, a, 0, "Patient", "a", 1);
    bn = enc(CODEC_RESOURCE_ASOF, b, 0, "Patient", "ab", 1000);
    ok(key_cmp(a, (size_t)an, b, (size_t)bn) < 0, "every version of id a sorts before id ab");
    codec_key k = {.tenant = 0, .type = "Patient", .type_len = 7, .id = "a", .id_len = 1};
    uint8_t pre[CODEC_KEY_MAX];
    int pn = codec_asof_encode(CODEC_RESOURCE_ASOF, pre, &k, 3);
    ok(memcmp(b, pre, (size_t)pn) != 0, "the prefix of id a does not match keys of id ab");
    an = enc(CODEC_RESOURCE_ASOF, a, 0, "Obs", "z", 1);
    bn = enc(CODEC_RESOURCE_ASOF, b, 0, "Observation", "a", 1);
    ok(key_cmp(a, (size_t)an, b, (size_t)bn) < 0, "type Obs sorts wholly before Observation");
    an = enc(CODEC_RESOURCE_ASOF, a, 0, "Zz", "a", 1);
    bn = enc(CODEC_RESOURCE_ASOF, b, 1, "Account", "a", 1);
    ok(key_cmp(a, (size_t)an, b, (size_t)bn) < 0, "tenant 0 sorts wholly before tenant 1");
    an = enc(CODEC_TYPE_ASOF, a, 0, "Patient", "zzz", 7);
    bn = enc(CODEC_TYPE_ASOF, b, 0, "Patient", "aaa", 6);
    ok(key_cmp(a, (size_t)an, b, (size_t)bn) < 0, "TypeAsOf: newer t first regardless of id");
    an = enc(CODEC_TYPE_ASOF, a, 0, "Patient", "a", 6);
    bn = enc(CODEC_TYPE_ASOF, b, 0, "Patient", "b", 6);
    ok(key_cmp(a, (size_t)an, b, (size_t)bn) < 0, "TypeAsOf: same t orders by id");
    an = enc(CODEC_SYSTEM_ASOF, a, 0, "Patient", "a", 300);
    bn = enc(CODEC_SYSTEM_ASOF, b, 0, "Account", "a", 2);
    ok(key_cmp(a, (size_t)an, b, (size_t)bn) < 0, "SystemAsOf: newer t first regardless of type");
    /* the list iterator's skip key (id, t=0) lands between two ids */
    an = enc(CODEC_RESOURCE_ASOF, a, 0, "Patient", "a", 0);
    bn = enc(CODEC_RESOURCE_ASOF, b, 0, "Patient", "a", 1);
    ok(key_cmp(b, (size_t)bn, a, (size_t)an) < 0, "(id a, t=0) sorts after every version of a");
    bn = enc(CODEC_RESOURCE_ASOF, b, 0, "Patient", "a-", UINT64_MAX - 1);
    ok(key_cmp(a, (size_t)an, b, (size_t)bn) < 0, "(id a, t=0) sorts before the next id");
}

static void test_values(void)
{
    codec_vrec v = {
        .vid = 77, .last_updated = -5, .op = STORE_OP_DELETE, .flags = CODEC_VF_CREATED};
    for (int i = 0; i < STORE_HASH_LEN; i++)
        v.hash[i] = (uint8_t)(i * 17);
    uint8_t vb[CODEC_VREC_LEN];
    codec_vrec_encode(vb, &v);
    codec_vrec w;
    ok(codec_vrec_decode(vb, sizeof vb, &w) == 0 && w.vid == 77 && w.last_updated == -5 &&
           w.op == STORE_OP_DELETE && w.flags == CODEC_VF_CREATED &&
           !memcmp(w.hash, v.hash, STORE_HASH_LEN),
       "version record round trip");
    is_int(codec_vrec_decode(vb, sizeof vb - 1, &w), ERR_INVALID, "short version record");
    vb[32] = 9;
    is_int(codec_vrec_decode(vb, sizeof vb, &w), ERR_INVALID, "unknown op is rejected");

    uint8_t k[CODEC_TXTIME_KEY_LEN], val[CODEC_TXLOG_VAL_LEN];
    codec_txlog_key(k, 7, 123456789);
    uint32_t tenant;
    uint64_t t;
    ok(codec_txlog_key_decode(k, CODEC_TXLOG_KEY_LEN, &tenant, &t) == 0 && tenant == 7 &&
           t == 123456789,
       "TxLog key round trip");
    int64_t inst;
    uint32_t nops;
    codec_txlog_val(val, -42, 3000);
    ok(codec_txlog_val_decode(val, sizeof val, &inst, &nops) == 0 && inst == -42 && nops == 3000,
       "TxLog value round trip");
    int n = codec_txtime_key(k, 7, -1000, 99, 3);
    ok(n == CODEC_TXTIME_KEY_LEN &&
           codec_txtime_key_decode(k, (size_t)n, &tenant, &inst, &t) == 0 && tenant == 7 &&
           inst == -1000 && t == 99,
       "TxByTime key round trip");
    uint8_t k2[CODEC_TXTIME_KEY_LEN];
    codec_txtime_key(k2, 7, 1000, 1, 3);
    ok(memcmp(k, k2, CODEC_TXTIME_KEY_LEN) < 0, "TxByTime orders by instant before t");
    is_int(codec_txtime_key(k, 7, 0, 0, 2), 12, "TxByTime 2-part prefix is 12 bytes");

    uint8_t ck[CODEC_KEY_MAX], cv[CODEC_COUNTS_VAL_LEN];
    is_int(codec_counts_key(ck, 1, "Patient", 7), 12, "Counts key length");
    is_int(codec_counts_key(ck, 1, NULL, 0), 5, "Counts totals key is tenant + NUL");
    uint64_t cur, ver;
    codec_counts_val(cv, 5, UINT64_C(1) << 33);
    ok(codec_counts_val_decode(cv, sizeof cv, &cur, &ver) == 0 && cur == 5 &&
           ver == UINT64_C(1) << 33,
       "Counts value round trip");
    uint8_t hash[STORE_HASH_LEN] = {0xAB};
    uint8_t ct[CODEC_CONTENT_KEY_LEN];
    codec_content_key(ct, 2, 5, hash);
    ok(codec_get_u32(ct) == 2 && codec_get_u64(ct + 4) == 5 && ct[12] == 0xAB,
       "Content key is tenant, t, hash");
    uint8_t ct2[CODEC_CONTENT_KEY_LEN], hash2[STORE_HASH_LEN] = {0x01};
    codec_content_key(ct2, 2, 6, hash2);
    ok(memcmp(ct, ct2, CODEC_CONTENT_KEY_LEN) < 0,
       "Content keys order by commit before hash (one commit's contents are neighbours)");
}

int main(void)
{
    test_integers();
    test_validation();
    test_documented_examples();
    test_asof_round_trips();
    test_order();
    test_values();
    return tap_done();
}
