/* audit.c -- the audit trail below HTTP: an event's JSON (its link where audit_build says,
 * the BALP members, the query in base64), ids, the chain the store's writer links (through
 * queued batches, events riding changes, a rolled-back request that must leave no hole,
 * two tenants), and audit_check finding an altered, removed or added event. */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/arena.h"
#include "base/err.h"
#include "store/store.h"
#include "tap.h"
#include "json/json.h"

static char dir[64];

static void test_build(void)
{
    audit_entity ent = {"Patient", "p1", 2, 3};
    audit_info in = {.subtype = "read",
                     .action = 'R',
                     .recorded_us = 1700000000123000,
                     .status = 404,
                     .desc = "Patient/p1 \"gone\"",
                     .client = "app",
                     .user_ref = "Practitioner/9",
                     .user_sub = "u9",
                     .address = "10.0.0.1",
                     .site = "http://x/fhir",
                     .purpose = "TREAT",
                     .query = "Patient?a=b",
                     .ent = &ent,
                     .nent = 1};
    buf b = BUF_INIT, e = BUF_INIT;
    size_t link;
    is_int(audit_build(&in, &b, &link), 0, "built");
    ok(link + STORE_CHAIN_HEX < b.len && !memcmp(b.data + link, "0000000000", 10),
       "the link's place is all zeros");
    ok(b.len < 400, "the stored record is small (%zu bytes)", b.len);
    memset(b.data + link, 'a', STORE_CHAIN_HEX); /* as the writer links it */
    arena *a = arena_new(4096);
    is_int(audit_expand(a, b.data, b.len, "5-1", &e), 0, "expanded");
    json_val *v;
    is_int(json_parse(a, e.data, e.len, JSON_FHIR, &v, NULL), 0, "valid FHIR JSON");
    is_str(json_get_str(v, "id"), "5-1", "the id given");
    const json_val *ext = json_get(v, "extension");
    ok(ext && ext->n == 1 && !strncmp(json_get_str(&ext->u.items[0], "valueString"),
                                      "aaaaaaaaaa", 10), "the link as stored");
    is_str(json_get_str(v, "outcome"), "4", "4xx is outcome 4");
    is_str(json_get_str(v, "action"), "R", "action");
    is_str(json_get_str(v, "recorded"), "2023-11-14T22:13:20.123Z", "recorded");
    is_str(json_get_str(v, "outcomeDesc"), "Patient/p1 \"gone\"", "desc escaped and kept");
    const json_val *ents = json_get(v, "entity");
    ok(ents && ents->n == 2, "an entity for the resource and one for the query");
    is_str(json_get_str(json_get(&ents->u.items[0], "what"), "reference"), "Patient/p1/_history/3",
           "what");
    is_str(json_get_str(&ents->u.items[1], "query"), "UGF0aWVudD9hPWI=", "query in base64");
    const json_val *ag = json_get(v, "agent");
    ok(ag && ag->n == 3, "client, user, server");
    is_str(json_get_str(json_get(&ag->u.items[1], "who"), "reference"), "Practitioner/9",
           "the user by fhirUser");
    in.status = 503;
    b.len = e.len = 0;
    audit_build(&in, &b, &link);
    audit_expand(a, b.data, b.len, "1-0", &e);
    buf_putc(&e, 0);
    ok(strstr(e.data, "\"outcome\":\"8\"") != NULL, "5xx is outcome 8");
    in.status = 0;
    in.purpose = NULL;
    in.desc = NULL;
    b.len = e.len = 0;
    audit_build(&in, &b, &link);
    audit_expand(a, b.data, b.len, "1-0", &e);
    buf_putc(&e, 0);
    ok(strstr(e.data, "\"outcome\":\"0\"") && !strstr(e.data, "purposeOfEvent") &&
           strstr(e.data, "\"outcomeDesc\":\"committed\""),
       "a committed change: outcome 0, no purpose when none");
    b.len = e.len = 0;
    audit_expand(a, "{\"resourceType\":\"Patient\"}", 26, "1-1", &e);
    buf_putc(&e, 0);
    ok(strstr(e.data, "\"extension\":[]") != NULL, "foreign bytes: an event without content");
    buf_free(&b);
    buf_free(&e);
    arena_free(a);

    uint64_t t;
    uint32_t seq;
    char id[AUDIT_ID_MAX + 1];
    audit_id_format(42, 7, id);
    is_str(id, "42-7", "id");
    ok(audit_id_parse("42-7", 4, &t, &seq) == 0 && t == 42 && seq == 7, "id parsed");
    ok(audit_id_parse("42", 2, &t, &seq) && audit_id_parse("a-1", 3, &t, &seq) &&
           audit_id_parse("1-", 2, &t, &seq) && audit_id_parse("1-99999999999", 13, &t, &seq),
       "bad ids refused");
}

/* One event of tenant, as a change's extra or alone. */
static int write_event(store *s, uint32_t tenant, const char *sub, store_op *op)
{
    audit_info in = {.subtype = sub, .action = 'C', .recorded_us = 1700000000000000};
    buf b = BUF_INIT;
    size_t link;
    audit_build(&in, &b, &link);
    uint8_t key[AUDIT_KEY_LEN];
    store_extra x;
    audit_extra(&x, key, tenant, 0, b.data, b.len, link);
    store_req req = {.tenant = tenant, .ops = op, .nops = op ? 1 : 0, .extras = &x, .nextra = 1};
    int rc = store_write(s, &req, NULL);
    buf_free(&b);
    return rc;
}

static void test_chain(void)
{
    snprintf(dir, sizeof dir, "/tmp/hortus-audit-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    store *s;
    is_int(store_open(dir, NULL, &s), 0, "store opened");
    uint64_t n = 99;
    char msg[400];
    is_int(audit_check(s, &n, msg, sizeof msg), 0, "an empty trail is intact");
    is_int((int)n, 0, "no events");

    /* a chained put is for the Audit database only, and needs room for its link */
    uint8_t bk[AUDIT_KEY_LEN] = {0};
    store_extra bad = {
        .db = STORE_DB_AUX, .key = bk, .key_len = sizeof bk, .val = "x", .val_len = 1, .chain = 1};
    store_req breq = {.extras = &bad, .nextra = 1};
    is_int(store_write(s, &breq, NULL), ERR_INVALID, "a chained put outside Audit refused");
    bad.db = STORE_DB_AUDIT;
    is_int(store_write(s, &breq, NULL), ERR_INVALID, "a value without room for the link refused");

    audit_log *l;
    is_int(audit_open(s, &l), 0, "queue started");
    for (int i = 0; i < 300; i++) { /* over AUDIT_BATCH_MAX: two batches at least */
        audit_info in = {.subtype = "read", .action = 'R', .recorded_us = i, .status = 200};
        buf b = BUF_INIT;
        size_t link;
        audit_build(&in, &b, &link);
        audit_enqueue(l, (uint32_t)(i % 2), b.data, b.len, link);
        buf_free(&b);
    }
    audit_flush(l);
    uint64_t w, c, d;
    audit_stats(l, &w, &c, &d);
    ok(w == 300 && d == 0 && c >= 1, "300 events written in %llu commits, none lost",
       (unsigned long long)c);

    store_op op = {.op = STORE_OP_CREATE,
                   .type = "Patient",
                   .type_len = 7,
                   .id = "p1",
                   .id_len = 2,
                   .vid = 1,
                   .last_updated = 1,
                   .bytes = "{}",
                   .len = 2};
    is_int(write_event(s, 0, "create", &op), 0, "a change with its event");
    store_op again = op; /* must not exist: conflict, rolled back with its event */
    is_int(write_event(s, 0, "create", &again), ERR_CONFLICT, "a conflicting change fails");
    is_int(write_event(s, 1, "read", NULL), 0, "an event alone, tenant 1");
    audit_close(l);
    is_int(audit_check(s, &n, msg, sizeof msg), 0, "intact: %s", msg);
    is_int((int)n, 302, "every event, and none of the rolled-back request");

    /* links by hand: each is the SHA-256 of the value before it in the tenant */
    store_reader *r;
    store_iter *it;
    store_read_begin(s, &r);
    uint8_t prefix[4] = {0, 0, 0, 0};
    store_scan(r, STORE_DB_AUDIT, prefix, 4, prefix, 4, &it);
    const void *k, *v;
    size_t kn, vn;
    uint8_t prev[32], key[AUDIT_KEY_LEN];
    int have = 0, good = 1, count = 0;
    while (store_scan_next(it, &k, &kn, &v, &vn) == 0) {
        if (audit_is_head(k, kn)) {
            good &= vn == 32 && !memcmp(v, prev, 32);
            continue;
        }
        const char *p = (const char *)v + sizeof AUDIT_RECORD_PREFIX - 1;
        char want[65];
        for (int i = 0; i < 32; i++)
            snprintf(want + 2 * i, 3, "%02x", have ? prev[i] : 0);
        good &= !memcmp(p, want, 64);
        SHA256(v, vn, prev);
        have = 1;
        if (count++ == 2)
            memcpy(key, k, sizeof key); /* the third: tampered with below */
    }
    store_iter_close(it);
    store_read_end(r);
    ok(good && count == 151, "tenant 0: %d events linked by hand, the head the last", count);

    /* a descending scan from a cursor: the keys before it, newest first */
    store_read_begin(s, &r);
    int before_ok = store_scan_rev_before(r, STORE_DB_AUDIT, key, sizeof key, prefix, 4, &it) == 0;
    int seen = 0, order = 1;
    uint8_t last[AUDIT_KEY_LEN];
    memcpy(last, key, sizeof last);
    while (before_ok && store_scan_next(it, &k, &kn, &v, &vn) == 0) {
        order &= kn == AUDIT_KEY_LEN && memcmp(k, last, AUDIT_KEY_LEN) < 0;
        memcpy(last, k, AUDIT_KEY_LEN);
        seen++;
    }
    store_iter_close(it);
    ok(before_ok && order && seen == 2, "scan_rev_before: the 2 keys before the third, descending");
    is_int(store_scan_rev_before(r, STORE_DB_SEARCH_PARAM, key, sizeof key, NULL, 0, &it),
           ERR_INVALID, "not for SearchParam");
    store_read_end(r);

    /* tampering: alter one, remove one, add one, each found */
    uint32_t kt, kseq;
    uint64_t tt;
    char kid[AUDIT_ID_MAX + 1];
    audit_key_decode(key, &kt, &tt, &kseq);
    audit_id_format(tt, kseq, kid);
    store_read_begin(s, &r);
    int found = store_get(r, STORE_DB_AUDIT, key, sizeof key, &v, &vn) == 0;
    char *copy = found ? malloc(vn) : NULL;
    if (copy)
        memcpy(copy, v, vn);
    store_read_end(r);
    ok(found, "an event to tamper with");
    if (copy) {
        copy[vn - 3] = 'X'; /* the same length, one byte changed */
        store_extra x = {
            .db = STORE_DB_AUDIT, .key = key, .key_len = sizeof key, .val = copy, .val_len = vn};
        store_req req = {.extras = &x, .nextra = 1};
        store_write(s, &req, NULL);
        ok(audit_check(s, &n, msg, sizeof msg) == ERR_INTERNAL && strstr(msg, "link"),
           "altered: %s", msg);
        x.del = 1;
        store_write(s, &req, NULL);
        ok(audit_check(s, &n, msg, sizeof msg) == ERR_INTERNAL, "removed: %s", msg);
        free(copy);
    }
    store_close(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd))
        fprintf(stderr, "# could not remove %s\n", dir);
}

int main(void)
{
    test_build();
    test_chain();
    return tap_done();
}
