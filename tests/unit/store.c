/* store.c -- behaviour of the LMDB store through store.h only: create, read, update,
 * vread, delete, the three history levels with _since, _at and stable paging while
 * writes continue, expect conflicts (also rolled back alone inside one group commit),
 * atomic multi-op requests, counts, extra puts, map growth under concurrent readers,
 * reopening, and many concurrent submitters (with creates/s printed as a diagnostic). */
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "store/codec.h"
#include "store/store.h"
#include "tap.h"
#include "testrand.h"

static char dirs[32][64];
static int ndirs;

static const char *new_dir(void)
{
    if (ndirs == (int)(sizeof dirs / sizeof dirs[0]))
        abort();
    char *d = dirs[ndirs++];
    snprintf(d, 64, "/tmp/hortus-store-XXXXXX");
    if (!mkdtemp(d))
        abort();
    return d;
}

static void rm_dir(const char *d)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", d);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A JSON body for a version; kept in static storage for the blocking helpers. */
static size_t body(char *out, size_t cap, const char *type, const char *id, uint64_t vid,
                   const char *extra)
{
    int n = snprintf(out, cap,
                     "{\"resourceType\":\"%s\",\"id\":\"%s\",\"meta\":{\"versionId\":\"%llu\"}%s}",
                     type, id, (unsigned long long)vid, extra ? extra : "");
    return (size_t)n;
}

static void set_op(store_op *op, store_opkind kind, const char *type, const char *id,
                   uint64_t expect, uint64_t vid, const char *bytes, size_t len)
{
    memset(op, 0, sizeof *op);
    op->op = kind;
    op->type = type;
    op->type_len = strlen(type);
    op->id = id;
    op->id_len = strlen(id);
    op->expect = expect;
    op->vid = vid;
    op->last_updated = now_us();
    op->bytes = bytes;
    op->len = len;
}

/* One blocking single-op write; returns rc, *t the commit. */
static int write1(store *s, store_opkind kind, const char *type, const char *id, uint64_t expect,
                  uint64_t vid, uint64_t *t, int *created)
{
    char b[256];
    size_t n = body(b, sizeof b, type, id, vid, NULL);
    store_op op;
    set_op(&op, kind, type, id, expect, vid, kind == STORE_OP_DELETE ? NULL : b,
           kind == STORE_OP_DELETE ? 0 : n);
    store_req req = {.ops = &op, .nops = 1};
    int rc = store_write(s, &req, t);
    if (created)
        *created = op.created;
    return rc;
}

/* Read the current version and compare its bytes with what body() builds. */
static int read_is(store *s, const char *type, const char *id, uint64_t vid)
{
    store_reader *r;
    if (store_read_begin(s, &r))
        return 0;
    store_version v;
    int rc = store_read(r, 0, type, id, &v);
    char b[256];
    size_t n = body(b, sizeof b, type, id, vid, NULL);
    int good = rc == 0 && v.vid == vid && v.len == n && !memcmp(v.bytes, b, n) &&
               !strcmp(v.type, type) && !strcmp(v.id, id);
    store_read_end(r);
    return good;
}

/* Collect a history as "type/id/vid" joined by spaces into out. */
static int history_str(store *s, const store_hist_opts *o, char *out, size_t cap, int limit)
{
    store_reader *r;
    out[0] = 0;
    if (store_read_begin(s, &r))
        return -1;
    store_iter *it;
    int rc = store_history(r, o, &it);
    if (rc) {
        store_read_end(r);
        return rc;
    }
    store_version v;
    size_t len = 0;
    int count = 0;
    while ((limit < 0 || count < limit) && (rc = store_iter_next(it, &v)) == 0) {
        int n = snprintf(out + len, cap - len, "%s%s/%s/%llu%s", len ? " " : "", v.type, v.id,
                         (unsigned long long)v.vid, v.op == STORE_OP_DELETE ? "D" : "");
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
        count++;
    }
    store_iter_close(it);
    store_read_end(r);
    return rc == 0 || rc == ERR_NOTFOUND ? count : rc;
}

/* store_cond must pass; print its complaint otherwise. */
static void checked(store *s, const char *when)
{
    char msg[256];
    int rc = store_check(s, msg, sizeof msg);
    ok(rc == 0, "store_cond after %s", when);
    if (rc)
        printf("#   %s\n", msg);
}

/* Damage the closed store at dir with the raw LMDB API: in database `db`, either delete
 * the first entry (flip == 0) or XOR the last byte of its value with flip. */
static int damage(const char *dir, const char *db, int flip)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_env_create(&env);
    rc = rc ? rc : mdb_env_set_maxdbs(env, 16);
    rc = rc ? rc : mdb_env_open(env, dir, 0, 0664);
    rc = rc ? rc : mdb_txn_begin(env, NULL, 0, &txn);
    rc = rc ? rc : mdb_dbi_open(txn, db, 0, &dbi);
    rc = rc ? rc : mdb_cursor_open(txn, dbi, &c);
    rc = rc ? rc : mdb_cursor_get(c, &k, &v, MDB_FIRST);
    if (rc == 0 && !flip) {
        rc = mdb_cursor_del(c, 0);
    } else if (rc == 0) {
        char copy[8192];
        if (v.mv_size > sizeof copy)
            return -1;
        memcpy(copy, v.mv_data, v.mv_size);
        copy[v.mv_size - 1] ^= (char)flip;
        MDB_val nv = {v.mv_size, copy};
        rc = mdb_cursor_put(c, &k, &nv, MDB_CURRENT);
    }
    rc = rc ? rc : mdb_txn_commit(txn);
    mdb_env_close(env);
    return rc;
}

static void test_check_detects(void)
{
    const char *names[3] = {"TypeAsOf", "Content", "Counts"};
    const char *expect[3] = {"TypeAsOf", "hash", "Counts"};
    for (int i = 0; i < 3; i++) {
        const char *d = new_dir();
        store *s;
        uint64_t t;
        store_open(d, NULL, &s);
        write1(s, STORE_OP_CREATE, "Patient", "a", 0, 1, &t, NULL);
        write1(s, STORE_OP_UPDATE, "Patient", "a", 1, 2, &t, NULL);
        write1(s, STORE_OP_CREATE, "Observation", "b", 0, 1, &t, NULL);
        checked(s, "three writes (before damage)");
        store_close(s);
        ok(damage(d, names[i], i > 0) == 0, "damaged %s with the raw LMDB API", names[i]);
        store_open(d, NULL, &s);
        char msg[256];
        int rc = store_check(s, msg, sizeof msg);
        ok(rc == ERR_INTERNAL && strstr(msg, expect[i]), "store_cond finds the damage in %s (%s)",
           names[i], msg);
        store_close(s);
        rm_dir(d);
    }
}

/* Content that no version points at (left by a bug or a hand edit) is reported. */
static void test_check_orphan_content(void)
{
    const char *d = new_dir();
    store *s;
    uint64_t t;
    store_open(d, NULL, &s);
    write1(s, STORE_OP_CREATE, "Patient", "a", 0, 1, &t, NULL);
    checked(s, "one write (before the orphan)");
    store_close(s);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t kb[CODEC_CONTENT_KEY_LEN], hash[STORE_HASH_LEN];
    const char body[] = "\0{\"resourceType\":\"Patient\",\"id\":\"orphan\"}";
    store_hash(body + 1, sizeof body - 2, hash);
    codec_content_key(kb, 0, t, hash);
    MDB_val k = {sizeof kb, kb}, v = {sizeof body - 1, (void *)body};
    int rc = mdb_env_create(&env);
    rc = rc ? rc : mdb_env_set_maxdbs(env, 16);
    rc = rc ? rc : mdb_env_open(env, d, 0, 0664);
    rc = rc ? rc : mdb_txn_begin(env, NULL, 0, &txn);
    rc = rc ? rc : mdb_dbi_open(txn, "Content", 0, &dbi);
    rc = rc ? rc : mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE);
    rc = rc ? rc : mdb_txn_commit(txn);
    mdb_env_close(env);
    ok(rc == 0, "added a Content entry no version points at");
    store_open(d, NULL, &s);
    char msg[256];
    rc = store_check(s, msg, sizeof msg);
    ok(rc == ERR_INTERNAL && strstr(msg, "Content holds 2 entries for 1 stored versions"),
       "store_cond reports the orphaned content (%s)", msg);
    store_close(s);
    rm_dir(d);
}

/* ---- format 1 directories are upgraded at open ------------------------------------- */

/* Turn a closed format 2 store back into format 1 with the raw LMDB API: every Content
 * entry tenant|t|hash gets its old key tenant|hash. keep_new 0 removes the new keys (a
 * format 1 directory); 1 keeps every other new key (an upgrade cut short while copying);
 * 2 keeps every new key and every other old one (cut short while deleting). */
static int downgrade(const char *dir, int keep_new)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi content, meta;
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_env_create(&env);
    rc = rc ? rc : mdb_env_set_maxdbs(env, 16);
    rc = rc ? rc : mdb_env_set_mapsize(env, 64u << 20);
    rc = rc ? rc : mdb_env_open(env, dir, 0, 0664);
    rc = rc ? rc : mdb_txn_begin(env, NULL, 0, &txn);
    rc = rc ? rc : mdb_dbi_open(txn, "Content", 0, &content);
    rc = rc ? rc : mdb_dbi_open(txn, "Meta", 0, &meta);
    rc = rc ? rc : mdb_cursor_open(txn, content, &c);
    if (rc)
        return rc;
    /* collect first: the keys change under the cursor otherwise */
    size_t n = 0, cap = 16;
    struct kv {
        uint8_t key[CODEC_CONTENT_KEY_LEN];
        uint8_t *val;
        size_t len;
    } *all = malloc(cap * sizeof *all);
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != CODEC_CONTENT_KEY_LEN)
            continue;
        if (n == cap)
            all = realloc(all, (cap *= 2) * sizeof *all);
        memcpy(all[n].key, k.mv_data, CODEC_CONTENT_KEY_LEN);
        all[n].val = malloc(v.mv_size);
        memcpy(all[n].val, v.mv_data, v.mv_size);
        all[n].len = v.mv_size;
        n++;
    }
    mdb_cursor_close(c);
    rc = rc == MDB_NOTFOUND ? 0 : rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint8_t old[4 + STORE_HASH_LEN];
        memcpy(old, all[i].key, 4);
        memcpy(old + 4, all[i].key + 12, STORE_HASH_LEN);
        MDB_val ok = {sizeof old, old}, nk = {CODEC_CONTENT_KEY_LEN, all[i].key};
        MDB_val val = {all[i].len, all[i].val};
        if (keep_new != 2 || i % 2)
            rc = mdb_put(txn, content, &ok, &val, 0);
        if (rc == 0 && (keep_new == 0 || (keep_new == 1 && i % 2)))
            rc = mdb_del(txn, content, &nk, NULL);
    }
    for (size_t i = 0; i < n; i++)
        free(all[i].val);
    free(all);
    uint8_t one[4] = {0, 0, 0, 1};
    MDB_val fk = {6, "format"}, fv = {4, one};
    rc = rc ? rc : mdb_put(txn, meta, &fk, &fv, 0);
    rc = rc ? rc : mdb_txn_commit(txn);
    mdb_env_close(env);
    return rc;
}

/* Content entries whose key has the format 1 length (tenant|hash). */
static long old_content_keys(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    MDB_val k, v;
    long n = 0;
    int rc = mdb_env_create(&env);
    rc = rc ? rc : mdb_env_set_maxdbs(env, 16);
    rc = rc ? rc : mdb_env_open(env, dir, MDB_RDONLY, 0664);
    rc = rc ? rc : mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    rc = rc ? rc : mdb_dbi_open(txn, "Content", 0, &dbi);
    rc = rc ? rc : mdb_cursor_open(txn, dbi, &c);
    if (rc)
        return -1;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        n += k.mv_size == 4 + STORE_HASH_LEN;
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return n;
}

#define UPGRADE_N 5000 /* more than one upgrade transaction (LMDB_UPGRADE_CHUNK) */

static void test_upgrade_from_format_1(void)
{
    static const char *const modes[3] = {"a format 1 directory",
                                         "an upgrade cut short while copying",
                                         "an upgrade cut short while deleting"};
    for (int mode = 0; mode < 3; mode++) {
        const char *d = new_dir();
        store *s;
        uint64_t t;
        ok(store_open(d, NULL, &s) == 0, "open (%s)", modes[mode]);
        /* one commit of UPGRADE_N creates, then updates, a delete and another tenant */
        store_op *ops = calloc(UPGRADE_N, sizeof *ops);
        char(*ids)[16] = calloc(UPGRADE_N, 16);
        char(*bodies)[128] = calloc(UPGRADE_N, 128);
        for (int i = 0; i < UPGRADE_N; i++) {
            snprintf(ids[i], 16, "p%d", i);
            set_op(&ops[i], STORE_OP_CREATE, "Patient", ids[i], 0, 1, bodies[i],
                   body(bodies[i], 128, "Patient", ids[i], 1, NULL));
        }
        store_req big = {.ops = ops, .nops = UPGRADE_N};
        is_int(store_write(s, &big, &t), 0, "%d creates in one commit", UPGRADE_N);
        write1(s, STORE_OP_UPDATE, "Patient", "p1", 1, 2, &t, NULL);
        write1(s, STORE_OP_UPDATE, "Patient", "p1", 2, 3, &t, NULL);
        write1(s, STORE_OP_DELETE, "Patient", "p2", 1, 2, &t, NULL);
        char b7[256];
        store_op op7;
        set_op(&op7, STORE_OP_CREATE, "Observation", "o", 0, 1, b7,
               body(b7, sizeof b7, "Observation", "o", 1, ",\"tenant\":7"));
        store_req r7 = {.tenant = 7, .ops = &op7, .nops = 1};
        is_int(store_write(s, &r7, &t), 0, "tenant 7 writes too");
        checked(s, "the writes before the downgrade");
        store_close(s);
        free(ops);
        free(ids);
        free(bodies);

        is_int(downgrade(d, mode), 0, "rewrote the directory as %s", modes[mode]);
        ok(old_content_keys(d) > 0, "it holds format 1 content keys");
        s = NULL;
        /* the smallest map: the file's own size, so copying the content must grow it */
        store_opts small = {.map_size = 4096};
        char path[128];
        struct stat st;
        snprintf(path, sizeof path, "%s/data.mdb", d);
        uint64_t file_size = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
        ok(store_open(d, &small, &s) == 0 && s, "%s opens: upgraded", modes[mode]);
        if (!s)
            continue;
        store_stats ss;
        store_get_stats(s, &ss);
        if (mode < 2) /* left to do after a cut while deleting: deletions, no growth */
            ok(ss.map_size > file_size, "the map grew during the upgrade (%llu -> %llu bytes)",
               (unsigned long long)file_size, (unsigned long long)ss.map_size);
        checked(s, "the upgrade");
        store_reader *r;
        store_version v;
        store_read_begin(s, &r);
        ok(store_read(r, 0, "Patient", "p4999", &v) == 0 &&
               memmem(v.bytes, v.len, "\"id\":\"p4999\"", 12),
           "a resource of the big commit reads back");
        ok(store_read(r, 0, "Patient", "p1", &v) == 0 && v.vid == 3 &&
               memmem(v.bytes, v.len, "\"versionId\":\"3\"", 15),
           "the updated resource reads its newest version");
        ok(store_vread(r, 0, "Patient", "p1", 1, &v) == 0 &&
               memmem(v.bytes, v.len, "\"versionId\":\"1\"", 15),
           "its first version still reads (vread)");
        is_int(store_read(r, 0, "Patient", "p2", &v), ERR_GONE, "the deleted one is gone");
        ok(store_read(r, 7, "Observation", "o", &v) == 0 &&
               memmem(v.bytes, v.len, "\"tenant\":7", 10),
           "the other tenant's resource reads back");
        store_read_end(r);
        write1(s, STORE_OP_UPDATE, "Patient", "p1", 3, 4, &t, NULL);
        checked(s, "a write after the upgrade");
        store_close(s);
        is_int((int)old_content_keys(d), 0, "no format 1 content key is left");
        ok(store_open(d, NULL, &s) == 0, "the upgraded directory opens again");
        store_close(s);
        rm_dir(d);
    }
}

/* A directory written in another layout (Meta.format) is refused, never misread. */
static void test_format_guard(void)
{
    const char *d = new_dir();
    store *s;
    uint64_t t;
    ok(store_open(d, NULL, &s) == 0, "fresh directory opens");
    write1(s, STORE_OP_CREATE, "Patient", "a", 0, 1, &t, NULL);
    store_close(s);
    /* Meta's first key is "format"; XOR 4 turns format 3 into 7 (and back) */
    ok(damage(d, "Meta", 4) == 0, "changed Meta.format with the raw LMDB API");
    s = NULL;
    ok(store_open(d, NULL, &s) != 0 && s == NULL, "a directory of another format is refused");
    ok(damage(d, "Meta", 4) == 0, "restored Meta.format");
    ok(store_open(d, NULL, &s) == 0, "the same directory opens again with its own format");
    if (s) {
        checked(s, "format restored");
        store_close(s);
    }
    rm_dir(d);
}

static void test_crud(store *s)
{
    uint64_t t = 0;
    int created = 0;
    store_reader *r;
    store_version v;
    ok(store_read_begin(s, &r) == 0, "reader on an empty store");
    is_int(store_read(r, 0, "Patient", "a", &v), ERR_NOTFOUND, "read of nothing: not found");
    is_int(store_reader_t(r), 0, "empty store is at t 0");
    is_int(store_read(r, 0, "Pat/ient", "a", &v), ERR_INVALID, "bad type on read: invalid");
    store_read_end(r);

    is_int(write1(s, STORE_OP_CREATE, "Patient", "a", 0, 1, &t, &created), 0, "create");
    is_int(t, 1, "first commit is t 1");
    ok(created, "create reports created");
    ok(read_is(s, "Patient", "a", 1), "read returns the created bytes");
    is_int(write1(s, STORE_OP_CREATE, "Patient", "a", 0, 1, &t, NULL), ERR_CONFLICT,
           "create of an existing resource with expect 0: conflict");
    is_int(write1(s, STORE_OP_UPDATE, "Patient", "a", 1, 2, &t, &created), 0, "update");
    is_int(t, 2, "update gets the next t");
    ok(!created, "update of a live resource is not a create");
    is_int(write1(s, STORE_OP_UPDATE, "Patient", "a", 1, 3, &t, NULL), ERR_CONFLICT,
           "update with a stale expect: conflict");
    is_int(write1(s, STORE_OP_UPDATE, "Patient", "a", STORE_ANY, 2, &t, NULL), ERR_CONFLICT,
           "update whose vid does not grow: a version conflict (planned from an older one)");
    ok(read_is(s, "Patient", "a", 2), "read returns the updated bytes");

    ok(store_read_begin(s, &r) == 0, "reader");
    char b[256];
    size_t n = body(b, sizeof b, "Patient", "a", 1, NULL);
    int rc = store_vread(r, 0, "Patient", "a", 1, &v);
    ok(rc == 0 && v.vid == 1 && v.t == 1 && v.len == n && !memcmp(v.bytes, b, n),
       "vread of version 1 after the update");
    is_int(store_vread(r, 0, "Patient", "a", 3, &v), ERR_NOTFOUND, "vread of a future vid");
    is_int(store_vread(r, 0, "Patient", "b", 1, &v), ERR_NOTFOUND, "vread of another id");
    is_int(store_reader_t(r), 2, "reader snapshot is at t 2");
    store_read_end(r);

    is_int(write1(s, STORE_OP_DELETE, "Patient", "a", STORE_ANY, 3, &t, NULL), 0, "delete");
    ok(store_read_begin(s, &r) == 0, "reader");
    rc = store_read(r, 0, "Patient", "a", &v);
    ok(rc == ERR_GONE && v.vid == 3 && v.bytes == NULL && v.op == STORE_OP_DELETE,
       "read after delete: gone, with the tombstone's vid");
    is_int(store_vread(r, 0, "Patient", "a", 3, &v), ERR_GONE, "vread of the delete: gone");
    ok(store_vread(r, 0, "Patient", "a", 2, &v) == 0 && v.vid == 2, "older versions remain");
    store_read_end(r);
    is_int(write1(s, STORE_OP_DELETE, "Patient", "a", STORE_ANY, 4, &t, NULL), ERR_GONE,
           "delete of a deleted resource: gone");
    is_int(write1(s, STORE_OP_DELETE, "Patient", "zz", STORE_ANY, 1, &t, NULL), ERR_NOTFOUND,
           "delete of a missing resource: not found");
    is_int(write1(s, STORE_OP_UPDATE, "Patient", "a", 0, 4, &t, &created), 0,
           "update (create-on-update) after delete with expect 0");
    ok(created, "recreating a deleted resource is a create");
    ok(read_is(s, "Patient", "a", 4), "read of the recreated resource");

    uint64_t cur = 9, ver = 9;
    ok(store_read_begin(s, &r) == 0, "reader");
    ok(store_count(r, 0, "Patient", &cur, &ver) == 0 && cur == 1 && ver == 4,
       "counts: 1 current Patient, 4 versions (got %llu, %llu)", (unsigned long long)cur,
       (unsigned long long)ver);
    ok(store_count(r, 0, "Observation", &cur, &ver) == 0 && cur == 0 && ver == 0,
       "counts of an unused type are 0");
    store_read_end(r);

    /* malformed requests are refused synchronously */
    store_op op;
    set_op(&op, STORE_OP_CREATE, "Patient", "bad id", 0, 1, "{}", 2);
    store_req req = {.ops = &op, .nops = 1};
    is_int(store_write(s, &req, &t), ERR_INVALID, "space in an id: invalid, not queued");
    set_op(&op, STORE_OP_CREATE, "Patient", "x", 0, 1, NULL, 0);
    is_int(store_write(s, &req, &t), ERR_INVALID, "create without bytes: invalid");
    req.nops = 0;
    is_int(store_write(s, &req, &t), ERR_INVALID, "request without ops or extras: invalid");
    store_extra only = {.db = STORE_DB_AUX, .key = "\0\0\0\0only", .key_len = 8, .val = "x",
                        .val_len = 1};
    store_req ex = {.extras = &only, .nextra = 1};
    uint64_t t_before = t;
    is_int(store_write(s, &ex, &t), 0, "a request of extras alone is written");
    ok(t > t_before, "and gets its own t");
}

static void test_transactions(store *s)
{
    char b1[256], b2[256];
    store_op ops[2];
    uint64_t t = 0;
    size_t n1 = body(b1, sizeof b1, "Observation", "o1", 1, NULL);
    size_t n2 = body(b2, sizeof b2, "Patient", "a", 5, NULL);
    set_op(&ops[0], STORE_OP_CREATE, "Observation", "o1", 0, 1, b1, n1);
    set_op(&ops[1], STORE_OP_UPDATE, "Patient", "a", 1 /* stale */, 5, b2, n2);
    store_req req = {.ops = ops, .nops = 2};
    is_int(store_write(s, &req, &t), ERR_CONFLICT, "two-op request with one conflict fails");
    is_int(req.failed_op, 1, "the failing op is reported");
    store_reader *r;
    store_version v;
    store_read_begin(s, &r);
    is_int(store_read(r, 0, "Observation", "o1", &v), ERR_NOTFOUND,
           "the other op of the failed request was rolled back");
    store_read_end(r);
    ops[1].expect = 4;
    is_int(store_write(s, &req, &t), 0, "the same request with the right expect commits");
    store_read_begin(s, &r);
    ok(store_read(r, 0, "Observation", "o1", &v) == 0 && v.t == t,
       "both ops share the request's t (op 1)");
    ok(store_read(r, 0, "Patient", "a", &v) == 0 && v.t == t && v.vid == 5,
       "both ops share the request's t (op 2)");
    store_read_end(r);

    set_op(&ops[0], STORE_OP_UPDATE, "Observation", "o1", STORE_ANY, 2, b1, n1);
    set_op(&ops[1], STORE_OP_UPDATE, "Observation", "o1", STORE_ANY, 3, b1, n1);
    is_int(store_write(s, &req, &t), ERR_INVALID, "the same resource twice in one request");
}

/* ---- group commit: hold the writer in a callback, queue several, release ---------- */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, released;
} gate;

static void blocking_done(void *ctx, int rc, uint64_t t)
{
    (void)rc;
    (void)t;
    gate *g = ctx;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->released)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

typedef struct result {
    atomic_int calls;
    int rc;
    uint64_t t;
} result;

static void record_done(void *ctx, int rc, uint64_t t)
{
    result *res = ctx;
    res->rc = rc;
    res->t = t;
    atomic_fetch_add(&res->calls, 1);
}

static void test_group_conflict(store *s)
{
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    char hb[256];
    size_t hn = body(hb, sizeof hb, "Basic", "hold", 1, NULL);
    store_op hold;
    set_op(&hold, STORE_OP_CREATE, "Basic", "hold", 0, 1, hb, hn);
    store_req hreq = {.ops = &hold, .nops = 1};
    ok(store_submit(s, &hreq, blocking_done, &g) == 0, "submit the writer-holding request");
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);

    store_stats before;
    store_get_stats(s, &before);
    char b[3][256];
    store_op ops[3];
    store_req reqs[3];
    result res[3];
    const char *ids[3] = {"g1", "a", "g2"};
    for (int i = 0; i < 3; i++) {
        size_t n = body(b[i], sizeof b[i], i == 1 ? "Patient" : "Basic", ids[i], 9, NULL);
        set_op(&ops[i], i == 1 ? STORE_OP_UPDATE : STORE_OP_CREATE, i == 1 ? "Patient" : "Basic",
               ids[i], i == 1 ? 1 /* stale */ : 0, 9, b[i], n);
        memset(&reqs[i], 0, sizeof reqs[i]);
        reqs[i].ops = &ops[i];
        reqs[i].nops = 1;
        atomic_init(&res[i].calls, 0);
        store_submit(s, &reqs[i], record_done, &res[i]);
    }
    pthread_mutex_lock(&g.mu);
    g.released = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    for (int spin = 0; spin < 5000; spin++) {
        if (atomic_load(&res[0].calls) + atomic_load(&res[1].calls) + atomic_load(&res[2].calls) ==
            3)
            break;
        usleep(1000);
    }
    ok(res[0].calls == 1 && res[1].calls == 1 && res[2].calls == 1,
       "each request of the group got exactly one callback");
    ok(res[0].rc == 0 && res[2].rc == 0, "the good requests of the group committed");
    is_int(res[1].rc, ERR_CONFLICT, "the conflicting request in the group failed alone");
    is_int(res[2].t, res[0].t + 1, "the good requests got consecutive t (no gap for the failure)");
    store_stats after;
    store_get_stats(s, &after);
    is_int(after.commits - before.commits, 1, "the group was one commit");
    ok(after.max_batch >= 3, "stats saw a batch of at least 3 (%llu)",
       (unsigned long long)after.max_batch);
    ok(after.conflicts > before.conflicts, "conflict counted");
    ok(read_is(s, "Basic", "g1", 9) && read_is(s, "Basic", "g2", 9), "group writes readable");
}

/* ---- history ------------------------------------------------------------------------ */
static void test_history(store *s)
{
    const char *d = new_dir();
    store *h;
    ok(store_open(d, NULL, &h) == 0, "open a fresh store for history");
    uint64_t t;
    /* t1 P/a v1, t2 P/b v1, t3 O/x v1, t4 P/a v2, t5 P/b delete v2 */
    write1(h, STORE_OP_CREATE, "Patient", "a", 0, 1, &t, NULL);
    write1(h, STORE_OP_CREATE, "Patient", "b", 0, 1, &t, NULL);
    write1(h, STORE_OP_CREATE, "Observation", "x", 0, 1, &t, NULL);
    usleep(3000);
    int64_t mid = now_us();
    usleep(3000);
    write1(h, STORE_OP_UPDATE, "Patient", "a", 1, 2, &t, NULL);
    write1(h, STORE_OP_DELETE, "Patient", "b", 1, 2, &t, NULL);
    is_int(t, 5, "five commits");

    char out[1024];
    store_hist_opts o = {.scope = STORE_SCOPE_INSTANCE,
                         .type = "Patient",
                         .id = "a",
                         .since = STORE_NO_TIME,
                         .at = STORE_NO_TIME};
    history_str(h, &o, out, sizeof out, -1);
    is_str(out, "Patient/a/2 Patient/a/1", "instance history, newest first");
    o.scope = STORE_SCOPE_TYPE;
    history_str(h, &o, out, sizeof out, -1);
    is_str(out, "Patient/b/2D Patient/a/2 Patient/b/1 Patient/a/1",
           "type history includes the delete, newest first");
    store_hist_opts zeroed = {.scope = STORE_SCOPE_TYPE, .type = "Patient"};
    history_str(h, &zeroed, out, sizeof out, -1);
    is_str(out, "Patient/b/2D Patient/a/2 Patient/b/1 Patient/a/1",
           "zeroed since/at mean no filter");
    o.scope = STORE_SCOPE_SYSTEM;
    history_str(h, &o, out, sizeof out, -1);
    is_str(out, "Patient/b/2D Patient/a/2 Observation/x/1 Patient/b/1 Patient/a/1",
           "system history across types");
    o.since = mid;
    history_str(h, &o, out, sizeof out, -1);
    is_str(out, "Patient/b/2D Patient/a/2", "system history _since");
    o.scope = STORE_SCOPE_INSTANCE;
    history_str(h, &o, out, sizeof out, -1);
    is_str(out, "Patient/a/2", "instance history _since");
    o.since = STORE_NO_TIME;
    o.at = mid;
    history_str(h, &o, out, sizeof out, -1);
    is_str(out, "Patient/a/1", "instance history _at: the version current then");
    o.scope = STORE_SCOPE_TYPE;
    history_str(h, &o, out, sizeof out, -1);
    is_str(out, "Patient/b/1 Patient/a/1", "type history _at: each resource as it was");
    o.scope = STORE_SCOPE_SYSTEM;
    o.at = now_us();
    history_str(h, &o, out, sizeof out, -1);
    is_str(out, "Patient/b/2D Patient/a/2 Observation/x/1", "system history _at now");
    o.at = mid - 60000000; /* a minute before anything */
    history_str(h, &o, out, sizeof out, -1);
    is_str(out, "", "_at before the first commit is empty");
    o.at = STORE_NO_TIME;
    o.since = now_us() + 60000000;
    history_str(h, &o, out, sizeof out, -1);
    is_str(out, "", "_since in the future is empty");

    /* Paging while writing: page 1 of 2, then writes, then page 2 after the cursor. */
    store_reader *r;
    store_read_begin(h, &r);
    uint64_t snap = store_reader_t(r);
    store_hist_opts p = {.scope = STORE_SCOPE_SYSTEM, .since = STORE_NO_TIME, .at = STORE_NO_TIME};
    store_iter *it;
    store_history(r, &p, &it);
    store_version v;
    char last_type[STORE_TYPE_MAX + 1] = "", last_id[STORE_ID_MAX + 1] = "";
    uint64_t last_t = 0;
    for (int i = 0; i < 2 && store_iter_next(it, &v) == 0; i++) {
        snprintf(last_type, sizeof last_type, "%s", v.type);
        snprintf(last_id, sizeof last_id, "%s", v.id);
        last_t = v.t;
    }
    store_iter_close(it);
    store_read_end(r);
    write1(h, STORE_OP_CREATE, "Patient", "c", 0, 1, &t, NULL);
    write1(h, STORE_OP_UPDATE, "Observation", "x", 1, 2, &t, NULL);
    p.as_of_t = snap;
    p.after_t = last_t;
    p.after_type = last_type;
    p.after_id = last_id;
    history_str(h, &p, out, sizeof out, -1);
    is_str(out, "Observation/x/1 Patient/b/1 Patient/a/1",
           "system page 2 continues after page 1 and ignores later writes");
    p.scope = STORE_SCOPE_TYPE;
    p.type = "Patient";
    p.after_t = 4;
    p.after_type = NULL;
    p.after_id = "a";
    history_str(h, &p, out, sizeof out, -1);
    is_str(out, "Patient/b/1 Patient/a/1", "type page after (t 4, a) as of the snapshot");
    p.scope = STORE_SCOPE_INSTANCE;
    p.id = "a";
    p.after_t = 4;
    history_str(h, &p, out, sizeof out, -1);
    is_str(out, "Patient/a/1", "instance page after t 4");
    p.after_t = 1;
    history_str(h, &p, out, sizeof out, -1);
    is_str(out, "", "instance page after the oldest is empty");

    /* Same-t entries (a transaction) page one by one. */
    char b1[256], b2[256];
    store_op ops[2];
    set_op(&ops[0], STORE_OP_CREATE, "Basic", "t1", 0, 1, b1,
           body(b1, sizeof b1, "Basic", "t1", 1, NULL));
    set_op(&ops[1], STORE_OP_CREATE, "Basic", "t2", 0, 1, b2,
           body(b2, sizeof b2, "Basic", "t2", 1, NULL));
    store_req req = {.ops = ops, .nops = 2};
    store_write(h, &req, &t);
    store_hist_opts q = {.scope = STORE_SCOPE_SYSTEM,
                         .since = STORE_NO_TIME,
                         .at = STORE_NO_TIME,
                         .after_t = t,
                         .after_type = "Basic",
                         .after_id = "t1"};
    history_str(h, &q, out, sizeof out, 2);
    is_str(out, "Basic/t2/1 Observation/x/2", "cursor inside one t continues with its next id");

    /* list: current resources by id */
    store_read_begin(h, &r);
    uint64_t snap2 = store_reader_t(r);
    store_iter *li;
    ok(store_list(r, 0, "Patient", 0, NULL, &li) == 0, "list Patients");
    out[0] = 0;
    size_t len = 0;
    while (store_iter_next(li, &v) == 0)
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%s/%llu", len ? " " : "", v.id,
                                (unsigned long long)v.vid);
    store_iter_close(li);
    is_str(out, "a/2 c/1", "list: current, non-deleted, ordered by id");
    ok(store_list(r, 0, "Patient", 0, "a", &li) == 0 && store_iter_next(li, &v) == 0 &&
           !strcmp(v.id, "c") && store_iter_next(li, &v) == ERR_NOTFOUND,
       "list after id a gives c only");
    store_iter_close(li);
    store_read_end(r);
    write1(h, STORE_OP_CREATE, "Patient", "aa", 0, 1, &t, NULL);
    write1(h, STORE_OP_DELETE, "Patient", "c", 1, 2, &t, NULL);
    store_read_begin(h, &r);
    store_list(r, 0, "Patient", snap2, NULL, &li);
    out[0] = 0;
    len = 0;
    while (store_iter_next(li, &v) == 0)
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%s/%llu", len ? " " : "", v.id,
                                (unsigned long long)v.vid);
    store_iter_close(li);
    is_str(out, "a/2 c/1", "list as of an older t ignores the later create and delete");
    store_list(r, 0, "Patient", 0, NULL, &li);
    out[0] = 0;
    len = 0;
    while (store_iter_next(li, &v) == 0)
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%s/%llu", len ? " " : "", v.id,
                                (unsigned long long)v.vid);
    store_iter_close(li);
    is_str(out, "a/2 aa/1", "list now sees them");
    uint64_t cur, ver;
    store_count(r, 0, NULL, &cur, &ver);
    ok(cur == 5 && ver == 11, "totals over all types: 5 current, 11 versions (got %llu, %llu)",
       (unsigned long long)cur, (unsigned long long)ver);
    store_read_end(r);
    (void)s;
    checked(h, "the history scenario");
    store_close(h);
    rm_dir(d);
}

/* Checks: a request applies only when every condition holds in the commit, as the
 * requests before it in the same batch left the store. */
static void test_checks(store *s)
{
    char b[256];
    store_op op;
    set_op(&op, STORE_OP_CREATE, "Basic", "chk", 0, 1, b, body(b, sizeof b, "Basic", "chk", 1, NULL));
    store_req req = {.ops = &op, .nops = 1};
    is_int(store_write(s, &req, NULL), 0, "checks: the resource to check");
    store_extra put = {.db = STORE_DB_AUX, .key = "\0\0\0\0chk", .key_len = 7, .val = "v1",
                       .val_len = 2};
    store_cond absent = {.kind = STORE_COND_VALUE, .db = STORE_DB_AUX, .key = put.key,
                          .key_len = put.key_len, .absent = 1};
    store_req r1 = {.extras = &put, .nextra = 1, .conds = &absent, .ncond = 1};
    is_int(store_write(s, &r1, NULL), 0, "checks: an absent key that is absent holds");
    store_req r2 = {.extras = &put, .nextra = 1, .conds = &absent, .ncond = 1};
    is_int(store_write(s, &r2, NULL), ERR_CONFLICT, "checks: the same key now exists: conflict");
    ok(r2.failed_op == r2.nops, "checks: a failed check is reported past the ops");
    store_cond same = {.kind = STORE_COND_VALUE, .db = STORE_DB_AUX, .key = put.key,
                        .key_len = put.key_len, .val = "v1", .val_len = 2};
    store_cond other = same;
    other.val = "v2";
    store_extra put2 = put;
    put2.val = "v2";
    store_req r3 = {.extras = &put2, .nextra = 1, .conds = &other, .ncond = 1};
    is_int(store_write(s, &r3, NULL), ERR_CONFLICT, "checks: another value: conflict");
    store_cond ver = {.kind = STORE_COND_VERSION, .type = "Basic", .id = "chk", .vid = 1};
    store_cond both[2] = {same, ver};
    store_req r4 = {.extras = &put2, .nextra = 1, .conds = both, .ncond = 2};
    is_int(store_write(s, &r4, NULL), 0, "checks: the value and the version hold");
    store_reader *rd;
    const void *val;
    size_t vn;
    store_read_begin(s, &rd);
    ok(store_get(rd, STORE_DB_AUX, put.key, put.key_len, &val, &vn) == 0 && vn == 2 &&
           !memcmp(val, "v2", 2),
       "checks: the extra of the request whose checks held is applied");
    store_read_end(rd);
    store_cond ver2 = {.kind = STORE_COND_VERSION, .type = "Basic", .id = "chk", .vid = 2};
    store_req r5 = {.extras = &put, .nextra = 1, .conds = &ver2, .ncond = 1};
    is_int(store_write(s, &r5, NULL), ERR_CONFLICT, "checks: another version: conflict");
    store_cond none = {.kind = STORE_COND_VERSION, .type = "Basic", .id = "nochk", .vid = 0};
    store_req r6 = {.extras = &put, .nextra = 1, .conds = &none, .ncond = 1};
    is_int(store_write(s, &r6, NULL), 0, "checks: vid 0 holds for a resource that does not exist");
    uint64_t cur = 0, versions = 0;
    store_read_begin(s, &rd);
    store_count(rd, 0, "Basic", &cur, &versions);
    store_read_end(rd);
    store_cond tv = {.kind = STORE_COND_TYPE_VERSIONS, .type = "Basic", .vid = versions};
    store_req r8 = {.extras = &put, .nextra = 1, .conds = &tv, .ncond = 1};
    is_int(store_write(s, &r8, NULL), 0, "checks: no write of the type since: holds");
    store_op op9;
    char b9[256];
    set_op(&op9, STORE_OP_CREATE, "Basic", "chk9", 0, 1, b9, body(b9, sizeof b9, "Basic", "chk9", 1, NULL));
    store_req w9 = {.ops = &op9, .nops = 1};
    is_int(store_write(s, &w9, NULL), 0, "checks: another resource of the type");
    store_req r9 = {.extras = &put, .nextra = 1, .conds = &tv, .ncond = 1};
    is_int(store_write(s, &r9, NULL), ERR_CONFLICT, "checks: a write of the type since: conflict");
    store_cond sp = {.kind = STORE_COND_VALUE, .db = STORE_DB_SEARCH_PARAM, .key = put.key,
                      .key_len = put.key_len, .absent = 1};
    store_req r7 = {.extras = &put, .nextra = 1, .conds = &sp, .ncond = 1};
    is_int(store_write(s, &r7, NULL), ERR_INVALID, "checks: SearchParam cannot be checked");
}

static void test_extras(store *s)
{
    uint8_t key[4 + 5 + 8];
    codec_put_u32(key, 0);
    memcpy(key + 4, "idx1:", 5);
    memset(key + 9, 0xEE, 8); /* replaced by the commit's t */
    char b[256];
    store_op op;
    set_op(&op, STORE_OP_CREATE, "Basic", "ex", 0, 1, b, body(b, sizeof b, "Basic", "ex", 1, NULL));
    store_extra x[2] = {
        {.db = STORE_DB_OUTBOX,
         .key = key,
         .key_len = sizeof key,
         .val = "hello",
         .val_len = 5,
         .fill_t = 1,
         .t_offset = 9},
        {.db = STORE_DB_AUX, .del = 1, .key = "\0\0\0\0none", .key_len = 8},
    };
    store_req req = {.ops = &op, .nops = 1, .extras = x, .nextra = 2};
    uint64_t t;
    is_int(store_write(s, &req, &t), 0, "write with an extra put and an extra delete");
    store_reader *r;
    store_read_begin(s, &r);
    codec_put_u64(key + 9, t);
    const void *val;
    size_t vn;
    ok(store_get(r, STORE_DB_OUTBOX, key, sizeof key, &val, &vn) == 0 && vn == 5 &&
           !memcmp(val, "hello", 5),
       "extra put is there with the commit's t in its key");
    store_iter *it;
    const void *k;
    size_t kn;
    ok(store_scan(r, STORE_DB_OUTBOX, NULL, 0, key, 9, &it) == 0 &&
           store_scan_next(it, &k, &kn, &val, &vn) == 0 && kn == sizeof key &&
           codec_get_u64((const uint8_t *)k + 9) == t &&
           store_scan_next(it, &k, &kn, &val, &vn) == ERR_NOTFOUND,
       "scan by prefix finds exactly that entry");
    store_iter_close(it);
    store_read_end(r);

    /* the commit's t written into a value */
    {
        uint8_t vkey[8] = {0, 0, 0, 0, 'v', 'a', 'l', 't'};
        uint8_t vval[12];
        memcpy(vval, "ab", 2);
        memset(vval + 2, 0xEE, 8);
        memcpy(vval + 10, "yz", 2);
        store_op op2;
        char b2[256];
        set_op(&op2, STORE_OP_CREATE, "Basic", "ex-val", 0, 1, b2,
               body(b2, sizeof b2, "Basic", "ex-val", 1, NULL));
        store_extra xv = {.db = STORE_DB_AUX, .key = vkey, .key_len = sizeof vkey, .val = vval,
                          .val_len = sizeof vval, .fill_t_val = 1, .t_val_offset = 2};
        store_req rv = {.ops = &op2, .nops = 1, .extras = &xv, .nextra = 1};
        uint64_t tv = 0;
        is_int(store_write(s, &rv, &tv), 0, "write with t filled into a value");
        store_read_begin(s, &r);
        ok(store_get(r, STORE_DB_AUX, vkey, sizeof vkey, &val, &vn) == 0 && vn == sizeof vval &&
               !memcmp(val, "ab", 2) && codec_get_u64((const uint8_t *)val + 2) == tv &&
               !memcmp((const uint8_t *)val + 10, "yz", 2),
           "the value holds the commit's t at its offset, the rest as given");
        /* a reverse scan: keys of one prefix, last first, nothing outside it */
        {
            static const char *const keys[] = {"\0\0\0\0" "rv", "\0\0\0\0" "rva",
                                               "\0\0\0\0" "rvb", "\0\0\0\0" "rw",
                                               "\0\0\0\0" "r\xff\xff" "1", "\0\0\0\0" "r\xff\xff" "2"};
            static const size_t lens[] = {6, 7, 7, 6, 8, 8};
            store_extra xs[6];
            for (int i = 0; i < 6; i++)
                xs[i] = (store_extra){.db = STORE_DB_AUX, .key = keys[i], .key_len = lens[i]};
            store_op op3;
            char b3[256];
            set_op(&op3, STORE_OP_CREATE, "Basic", "ex-rev", 0, 1, b3,
                   body(b3, sizeof b3, "Basic", "ex-rev", 1, NULL));
            store_req rr = {.ops = &op3, .nops = 1, .extras = xs, .nextra = 6};
            uint64_t tr;
            is_int(store_write(s, &rr, &tr), 0, "keys for the reverse scan");
            store_iter *ri;
            const void *kk;
            size_t kkn;
            char got[64] = "";
            is_int(store_scan_rev(r, STORE_DB_AUX, "\0\0\0\0rv", 6, &ri), 0, "reverse scan opens");
            store_read_end(r);
            store_iter_close(ri);
            store_read_begin(s, &r);
            store_scan_rev(r, STORE_DB_AUX, "\0\0\0\0rv", 6, &ri);
            while (store_scan_next(ri, &kk, &kkn, &val, &vn) == 0)
                strncat(got, (const char *)kk + 6, kkn - 6), strncat(got, ",", 2);
            store_iter_close(ri);
            is_str(got, "b,a,,", "descending, the prefix itself last, rw left out");
            got[0] = 0;
            store_scan_rev(r, STORE_DB_AUX, "\0\0\0\0r\xff\xff", 7, &ri);
            while (store_scan_next(ri, &kk, &kkn, &val, &vn) == 0)
                strncat(got, (const char *)kk + 7, kkn - 7), strncat(got, ",", 2);
            store_iter_close(ri);
            is_str(got, "2,1,", "a prefix ending in 0xFF: the carry finds the range");
        }
        uint8_t missing[8] = {0, 0, 0, 0, 'n', 'o', 'n', 'e'};
        is_int(store_get(r, STORE_DB_AUX, missing, sizeof missing, &val, &vn), ERR_NOTFOUND,
               "store_get of a missing key: ERR_NOTFOUND (not LMDB's own code)");
        store_read_end(r);
        ok(vval[2] == 0xEE, "the caller's value bytes are not touched");
        xv.t_val_offset = 5;
        is_int(store_write(s, &rv, &tv), ERR_INVALID, "t that would not fit in the value: invalid");
    }

    store_extra bad_t = {.db = STORE_DB_AUX,
                         .key = key,
                         .key_len = sizeof key,
                         .fill_t = 1,
                         .t_offset = sizeof key - 4};
    store_req bad_req = {.ops = &op, .nops = 1, .extras = &bad_t, .nextra = 1};
    is_int(store_write(s, &bad_req, &t), ERR_INVALID, "t that would not fit in the key: invalid");

    /* an extra of a failing request is not written */
    op.expect = 0;
    op.vid = 2;
    x[0].val = "nope!";
    store_req bad = {.ops = &op, .nops = 1, .extras = x, .nextra = 1};
    is_int(store_write(s, &bad, &t), ERR_CONFLICT, "conflicting request with an extra");
    store_read_begin(s, &r);
    ok(store_scan(r, STORE_DB_OUTBOX, NULL, 0, key, 9, &it) == 0 &&
           store_scan_next(it, &k, &kn, &val, &vn) == 0 &&
           store_scan_next(it, &k, &kn, &val, &vn) == ERR_NOTFOUND,
       "the failed request's extra was rolled back with it");
    store_iter_close(it);
    store_read_end(r);
}

/* ---- map growth with a concurrent reader ------------------------------------------- */
typedef struct reader_arg {
    store *s;
    atomic_int stop;
    long reads, errors;
} reader_arg;

static void *reader_loop(void *p)
{
    reader_arg *a = p;
    while (!atomic_load(&a->stop)) {
        store_reader *r;
        if (store_read_begin(a->s, &r)) {
            a->errors++;
            continue;
        }
        store_version v;
        int rc = store_read(r, 0, "Binary", "b0", &v);
        if (rc == 0 && (v.len < 1000 || v.bytes[0] != '{'))
            a->errors++;
        else if (rc != 0 && rc != ERR_NOTFOUND)
            a->errors++;
        a->reads++;
        store_read_end(r);
    }
    return NULL;
}

static void test_growth(void)
{
    const char *d = new_dir();
    store *s;
    store_opts o = {.map_size = 1 << 20};
    ok(store_open(d, &o, &s) == 0, "open with a 1 MiB map");
    reader_arg ra = {.s = s};
    pthread_t th;
    pthread_create(&th, NULL, reader_loop, &ra);
    static char big[64 * 1024];
    int fails = 0;
    for (int i = 0; i < 100; i++) {
        char id[16];
        snprintf(id, sizeof id, "b%d", i);
        int n =
            snprintf(big, sizeof big, "{\"resourceType\":\"Binary\",\"id\":\"%s\",\"data\":\"", id);
        memset(big + n, 'A' + i % 26, 40000);
        n += 40000;
        memcpy(big + n, "\"}", 2);
        n += 2;
        store_op op;
        set_op(&op, STORE_OP_CREATE, "Binary", id, 0, 1, big, (size_t)n);
        store_req req = {.ops = &op, .nops = 1};
        uint64_t t;
        fails += store_write(s, &req, &t) != 0;
    }
    atomic_store(&ra.stop, 1);
    pthread_join(th, NULL);
    is_int(fails, 0, "4 MB of writes into a 1 MiB map all committed");
    store_stats st;
    store_get_stats(s, &st);
    ok(st.map_resizes >= 2 && st.map_size >= (4u << 20), "the map grew (%llu times, %llu bytes)",
       (unsigned long long)st.map_resizes, (unsigned long long)st.map_size);
    ok(st.used_bytes >= (4u << 20) && st.used_bytes <= st.map_size,
       "used bytes cover the 4 MB written and fit the map (%llu)",
       (unsigned long long)st.used_bytes);
    ok(ra.reads > 0 && ra.errors == 0, "a concurrent reader kept reading (%ld reads, %ld errors)",
       ra.reads, ra.errors);
    store_reader *r;
    store_read_begin(s, &r);
    store_version v;
    int good = 0;
    for (int i = 0; i < 100; i++) {
        char id[16];
        snprintf(id, sizeof id, "b%d", i);
        if (store_read(r, 0, "Binary", id, &v) == 0 && v.len == strlen(id) + 40043 &&
            v.bytes[v.len - 3] == 'A' + i % 26)
            good++;
    }
    store_read_end(r);
    is_int(good, 100, "every large resource reads back intact after growth");
    checked(s, "map growth");
    store_close(s);
    ok(store_open(d, &o, &s) == 0, "reopen with the small map size configured");
    store_read_begin(s, &r);
    ok(store_read(r, 0, "Binary", "b99", &v) == 0 && v.vid == 1,
       "data written after growth is readable on reopen");
    store_read_end(r);
    store_close(s);
    rm_dir(d);
}

static void test_reopen(const char *d, store **s)
{
    store_stats st;
    store_get_stats(*s, &st);
    uint64_t last = st.last_t;
    store_close(*s);
    ok(store_open(d, NULL, s) == 0, "reopen");
    ok(read_is(*s, "Patient", "a", 5), "current version survives reopen");
    store_reader *r;
    store_read_begin(*s, &r);
    store_version v;
    ok(store_vread(r, 0, "Patient", "a", 1, &v) == 0, "old versions survive reopen");
    is_int(store_reader_t(r), last, "last t survives reopen");
    store_read_end(r);
    uint64_t t;
    write1(*s, STORE_OP_CREATE, "Patient", "after-reopen", 0, 1, &t, NULL);
    is_int(t, last + 1, "t continues after reopen");
}

/* ---- concurrent submitters ----------------------------------------------------------- */
typedef struct sub_arg {
    store *s;
    int thread, count;
    atomic_int *done_calls;
    int errors;
} sub_arg;

typedef struct pending {
    store_req req;
    store_op op;
    char bytes[200];
    atomic_int *done_calls;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished;
    int rc;
} pending;

static void pending_done(void *ctx, int rc, uint64_t t)
{
    (void)t;
    pending *p = ctx;
    atomic_fetch_add(p->done_calls, 1);
    pthread_mutex_lock(&p->mu);
    p->rc = rc;
    p->finished = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Each thread keeps one request in flight at a time (like one HTTP client). */
static void *submitter(void *arg)
{
    sub_arg *a = arg;
    pending *p = calloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 0; i < a->count; i++) {
        char id[32];
        snprintf(id, sizeof id, "c%d-%d", a->thread, i);
        size_t n = body(p->bytes, sizeof p->bytes, "Observation", id, 1, NULL);
        set_op(&p->op, STORE_OP_CREATE, "Observation", id, 0, 1, p->bytes, n);
        p->op.id = id;
        memset(&p->req, 0, sizeof p->req);
        p->req.ops = &p->op;
        p->req.nops = 1;
        p->done_calls = a->done_calls;
        p->finished = 0;
        if (store_submit(a->s, &p->req, pending_done, p)) {
            a->errors++;
            continue;
        }
        pthread_mutex_lock(&p->mu);
        while (!p->finished)
            pthread_cond_wait(&p->cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
        if (p->rc)
            a->errors++;
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    return NULL;
}

static double run_submitters(store *s, int nthreads, int per_thread, int *errors, int *callbacks)
{
    pthread_t th[64];
    sub_arg args[64];
    atomic_int calls;
    atomic_init(&calls, 0);
    double t0 = mono_s();
    for (int i = 0; i < nthreads; i++) {
        args[i] = (sub_arg){
            .s = s, .thread = i + 1000 * nthreads, .count = per_thread, .done_calls = &calls};
        pthread_create(&th[i], NULL, submitter, &args[i]);
    }
    *errors = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        *errors += args[i].errors;
    }
    *callbacks = atomic_load(&calls);
    return (double)(nthreads * per_thread) / (mono_s() - t0);
}

static void test_concurrency(void)
{
    const char *d = new_dir();
    store *s;
    ok(store_open(d, NULL, &s) == 0, "open for concurrency");
    int errors, calls;
    double one = run_submitters(s, 1, 200, &errors, &calls);
    ok(errors == 0 && calls == 200, "1 submitter: 200 callbacks, no errors");
    double many = run_submitters(s, 32, 100, &errors, &calls);
    ok(errors == 0 && calls == 3200, "32 submitters: 3200 callbacks, no errors (%d, %d)", calls,
       errors);
    store_stats st;
    store_get_stats(s, &st);
    printf("# durable creates/s: 1 submitter %.0f, 32 submitters %.0f; commits %llu, "
           "largest batch %llu (sanitizer build)\n",
           one, many, (unsigned long long)st.commits, (unsigned long long)st.max_batch);
    ok(st.commits < 3400, "32 submitters share commits (%llu commits for 3400 creates)",
       (unsigned long long)st.commits);
    store_reader *r;
    store_read_begin(s, &r);
    uint64_t cur, ver;
    store_count(r, 0, "Observation", &cur, &ver);
    is_int(cur, 3400, "all 3400 resources are counted");
    int found = 0;
    store_version v;
    for (int th = 0; th < 32; th++)
        for (int i = 0; i < 100; i++) {
            char id[32];
            snprintf(id, sizeof id, "c%d-%d", th + 32000, i);
            found += store_read(r, 0, "Observation", id, &v) == 0;
        }
    is_int(found, 3200, "every acknowledged create of the 32 submitters is readable");
    store_read_end(r);
    checked(s, "3400 concurrent creates");
    store_close(s);
    rm_dir(d);
}

/* ---- one big transaction into a small map; paging against a live writer ----------- */
typedef struct bg_writer {
    store *s;
    atomic_int stop;
    int written;
} bg_writer;

static void *bg_write_loop(void *p)
{
    bg_writer *w = p;
    while (!atomic_load(&w->stop)) {
        char id[32];
        snprintf(id, sizeof id, "live%d", w->written);
        uint64_t t;
        if (write1(w->s, STORE_OP_CREATE, "Encounter", id, 0, 1, &t, NULL) == 0)
            w->written++;
    }
    return NULL;
}

static void test_big_request_and_live_paging(void)
{
    const char *d = new_dir();
    store *s;
    store_opts o = {.map_size = 1 << 20};
    ok(store_open(d, &o, &s) == 0, "open a 1 MiB store for one big transaction");
    enum { NOPS = 600 };
    store_op *ops = calloc(NOPS, sizeof *ops);
    char(*ids)[16] = calloc(NOPS, 16);
    static char payload[NOPS][4200];
    for (int i = 0; i < NOPS; i++) {
        snprintf(ids[i], 16, "e%04d", i);
        size_t n = body(payload[i], sizeof payload[i], "Encounter", ids[i], 1, NULL);
        memset(payload[i] + n - 1, ' ', 4000); /* pad inside the object: ~4 KiB each */
        payload[i][n - 1 + 4000] = '}';
        set_op(&ops[i], STORE_OP_CREATE, "Encounter", ids[i], 0, 1, payload[i], n + 4000);
    }
    store_req req = {.ops = ops, .nops = NOPS};
    uint64_t t = 0;
    is_int(store_write(s, &req, &t), 0, "a 600-op (~2.4 MB) request commits in a 1 MiB map");
    store_stats st;
    store_get_stats(s, &st);
    ok(st.map_resizes >= 1, "the map grew inside the request (%llu resizes)",
       (unsigned long long)st.map_resizes);
    store_reader *r;
    store_read_begin(s, &r);
    store_version v;
    int same_t = 0;
    for (int i = 0; i < NOPS; i++)
        same_t += store_read(r, 0, "Encounter", ids[i], &v) == 0 && v.t == t && v.len == ops[i].len;
    is_int(same_t, NOPS, "all 600 resources are there with the request's single t");
    uint64_t cur, ver;
    store_count(r, 0, "Encounter", &cur, &ver);
    is_int(cur, NOPS, "counts include the whole transaction");
    store_read_end(r);

    /* Page through type history 7 at a time while another thread keeps creating. */
    bg_writer w = {.s = s};
    pthread_t th;
    pthread_create(&th, NULL, bg_write_loop, &w);
    usleep(20000);
    store_read_begin(s, &r);
    uint64_t snap = store_reader_t(r);
    uint64_t expect_total;
    store_count(r, 0, "Encounter", &cur, &expect_total);
    store_read_end(r);
    uint64_t after_t = 0, seen = 0, dups = 0, newer = 0;
    char after_id[STORE_ID_MAX + 1] = "";
    char prev_key[96] = "";
    for (;;) {
        store_hist_opts h = {.scope = STORE_SCOPE_TYPE,
                             .type = "Encounter",
                             .since = STORE_NO_TIME,
                             .at = STORE_NO_TIME,
                             .as_of_t = snap,
                             .after_t = after_t,
                             .after_id = after_t ? after_id : NULL};
        store_read_begin(s, &r);
        store_iter *it;
        store_history(r, &h, &it);
        int n = 0;
        while (n < 7 && store_iter_next(it, &v) == 0) {
            char key[96];
            snprintf(key, sizeof key, "%020llu/%s", (unsigned long long)(UINT64_MAX - v.t), v.id);
            if (prev_key[0] && strcmp(key, prev_key) <= 0)
                dups++; /* out of order or repeated */
            snprintf(prev_key, sizeof prev_key, "%s", key);
            newer += v.t > snap;
            after_t = v.t;
            snprintf(after_id, sizeof after_id, "%s", v.id);
            n++;
            seen++;
        }
        store_iter_close(it);
        store_read_end(r);
        if (n < 7)
            break;
    }
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    ok(w.written > 0, "the background writer committed %d creates meanwhile", w.written);
    is_int(seen, expect_total, "paging saw exactly the versions of the first page's snapshot");
    is_int(dups, 0, "no entry repeated or out of order across pages");
    is_int(newer, 0, "no entry newer than the snapshot leaked into later pages");
    checked(s, "a big transaction and live paging");
    free(ops);
    free(ids);
    store_close(s);
    rm_dir(d);
}

/* ---- kill -9 while writing: every acknowledged write survives ----------------------- */
typedef struct ack_arg {
    store *s;
    int thread, fd;
} ack_arg;

static void *ack_writer(void *p)
{
    ack_arg *a = p;
    for (int i = 0;; i++) {
        char id[32], line[40];
        snprintf(id, sizeof id, "k%d-%d", a->thread, i);
        uint64_t t;
        if (write1(a->s, STORE_OP_CREATE, "Observation", id, 0, 1, &t, NULL) == 0) {
            int n = snprintf(line, sizeof line, "%s\n", id);
            if (write(a->fd, line, (size_t)n) != n) /* one write < PIPE_BUF: atomic */
                _exit(3);
        }
    }
    return NULL;
}

static void test_kill9(void)
{
    const char *d = new_dir();
    int fds[2];
    if (pipe(fds))
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        store *s;
        if (store_open(d, NULL, &s))
            _exit(2);
        pthread_t th[8];
        ack_arg args[8];
        for (int i = 0; i < 8; i++) {
            args[i] = (ack_arg){.s = s, .thread = i, .fd = fds[1]};
            pthread_create(&th[i], NULL, ack_writer, &args[i]);
        }
        for (;;)
            pause();
    }
    close(fds[1]);
    /* Let it acknowledge a few hundred writes (or run 3 s on a slow machine), then kill
     * it in the middle of whatever it is doing. */
    static char acks[1 << 20];
    size_t len = 0;
    ssize_t n;
    int lines = 0;
    double until = mono_s() + 3.0;
    while (lines < 300 && mono_s() < until &&
           (n = read(fds[0], acks + len, sizeof acks - 1 - len)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            lines += acks[len + (size_t)i] == '\n';
        len += (size_t)n;
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writing process was killed -9");
    while (len < sizeof acks - 1 && (n = read(fds[0], acks + len, sizeof acks - 1 - len)) > 0)
        len += (size_t)n;
    acks[len] = 0;
    close(fds[0]);
    store *s;
    ok(store_open(d, NULL, &s) == 0, "reopen after kill -9 (lock released, stale readers cleared)");
    store_reader *r;
    store_read_begin(s, &r);
    int acked = 0, found = 0;
    store_version v;
    for (char *line = strtok(acks, "\n"); line; line = strtok(NULL, "\n")) {
        acked++;
        found += store_read(r, 0, "Observation", line, &v) == 0;
    }
    uint64_t cur, ver;
    store_count(r, 0, "Observation", &cur, &ver);
    store_read_end(r);
    ok(acked > 0, "the child acknowledged %d writes before it died", acked);
    is_int(found, acked, "every acknowledged write is there after kill -9");
    ok(cur >= (uint64_t)acked, "counts hold at least the acknowledged writes (%llu)",
       (unsigned long long)cur);
    checked(s, "kill -9 during writes");
    uint64_t t;
    is_int(write1(s, STORE_OP_CREATE, "Observation", "after-crash", 0, 1, &t, NULL), 0,
           "writes continue after recovery");
    store_close(s);
    rm_dir(d);
}

/* ---- tenants are separate key ranges ------------------------------------------------ */
static void test_tenants(void)
{
    const char *d = new_dir();
    store *s;
    ok(store_open(d, NULL, &s) == 0, "open for tenants");
    uint64_t t;
    char b0[256], b7[256];
    store_op op;
    set_op(&op, STORE_OP_CREATE, "Patient", "a", 0, 1, b0,
           body(b0, sizeof b0, "Patient", "a", 1, ",\"t\":0"));
    store_req r0 = {.tenant = 0, .ops = &op, .nops = 1};
    is_int(store_write(s, &r0, &t), 0, "tenant 0 creates Patient/a");
    store_op op7;
    set_op(&op7, STORE_OP_CREATE, "Patient", "a", 0, 1, b7,
           body(b7, sizeof b7, "Patient", "a", 1, ",\"t\":7"));
    store_req r7 = {.tenant = 7, .ops = &op7, .nops = 1};
    is_int(store_write(s, &r7, &t), 0, "tenant 7 creates its own Patient/a (expect 0 holds)");
    set_op(&op7, STORE_OP_CREATE, "Observation", "o", 0, 1, b7,
           body(b7, sizeof b7, "Observation", "o", 1, NULL));
    is_int(store_write(s, &r7, &t), 0, "tenant 7 creates Observation/o");
    /* tenant 0's content key sorts below tenant 7's: not an append in Content */
    set_op(&op, STORE_OP_CREATE, "Patient", "b", 0, 1, b0,
           body(b0, sizeof b0, "Patient", "b", 1, ",\"t\":0"));
    is_int(store_write(s, &r0, &t), 0, "tenant 0 creates Patient/b after tenant 7's writes");

    store_reader *r;
    store_read_begin(s, &r);
    store_version v;
    ok(store_read(r, 0, "Patient", "a", &v) == 0 && memmem(v.bytes, v.len, "\"t\":0", 5),
       "tenant 0 reads its own bytes");
    ok(store_read(r, 0, "Patient", "b", &v) == 0 && memmem(v.bytes, v.len, "\"b\"", 3),
       "tenant 0 reads the resource written after tenant 7's");
    ok(store_read(r, 7, "Patient", "a", &v) == 0 && memmem(v.bytes, v.len, "\"t\":7", 5),
       "tenant 7 reads its own bytes");
    is_int(store_read(r, 0, "Observation", "o", &v), ERR_NOTFOUND,
           "tenant 0 does not see tenant 7's Observation");
    is_int(store_read(r, 3, "Patient", "a", &v), ERR_NOTFOUND, "tenant 3 sees nothing");
    uint64_t cur, ver;
    store_count(r, 7, NULL, &cur, &ver);
    ok(cur == 2 && ver == 2, "tenant 7 counts 2 resources");
    store_count(r, 0, NULL, &cur, &ver);
    ok(cur == 2 && ver == 2, "tenant 0 counts 2 resources");
    store_read_end(r);
    char out[512];
    store_hist_opts h = {
        .scope = STORE_SCOPE_SYSTEM, .tenant = 7, .since = STORE_NO_TIME, .at = STORE_NO_TIME};
    history_str(s, &h, out, sizeof out, -1);
    is_str(out, "Observation/o/1 Patient/a/1", "system history of tenant 7 only");
    h.tenant = 0;
    history_str(s, &h, out, sizeof out, -1);
    is_str(out, "Patient/b/1 Patient/a/1", "system history of tenant 0 only");
    h.tenant = 7;
    h.at = now_us();
    history_str(s, &h, out, sizeof out, -1);
    is_str(out, "Observation/o/1 Patient/a/1", "_at resolves against tenant 7's commits");
    checked(s, "writes in two tenants");
    store_close(s);
    rm_dir(d);
}

/* ---- threads that come and go give their read handle back -------------------------- */
static void *one_read(void *p)
{
    store *s = p;
    store_reader *r;
    store_version v;
    if (store_read_begin(s, &r) == 0) {
        store_read(r, 0, "Patient", "a", &v);
        store_read_end(r);
    }
    return NULL;
}

static void test_thread_churn(void)
{
    const char *d = new_dir();
    store *s;
    store_open(d, NULL, &s);
    uint64_t t;
    write1(s, STORE_OP_CREATE, "Patient", "a", 0, 1, &t, NULL);
    for (int i = 0; i < 1200; i++) {
        pthread_t th;
        pthread_create(&th, NULL, one_read, s);
        pthread_join(th, NULL);
    }
    store_stats st;
    store_get_stats(s, &st);
    ok(st.reader_handles <= 4,
       "1200 short-lived reader threads reused %llu handle(s), not one each",
       (unsigned long long)st.reader_handles);
    ok(read_is(s, "Patient", "a", 1), "reads still work after the churn (more than 1024 slots)");
    store_close(s);
    rm_dir(d);
}

/* ---- lost updates are impossible: read-modify-write races with expect ------------------ */
typedef struct rmw_arg {
    store *s;
    int thread, updates, conflicts, errors;
} rmw_arg;

static void *rmw_loop(void *p)
{
    rmw_arg *a = p;
    for (int i = 0; i < 60; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%d", (a->thread + i) % 3);
        for (;;) {
            store_reader *r;
            store_version v;
            if (store_read_begin(a->s, &r)) {
                a->errors++;
                break;
            }
            int rc = store_read(r, 0, "Basic", id, &v);
            uint64_t cur = rc == 0 ? v.vid : 0;
            store_read_end(r); /* never hold a reader while waiting for a write */
            if (rc) {
                a->errors++;
                break;
            }
            uint64_t t;
            rc = write1(a->s, STORE_OP_UPDATE, "Basic", id, cur, cur + 1, &t, NULL);
            if (rc == 0) {
                a->updates++;
                break;
            }
            if (rc != ERR_CONFLICT) {
                a->errors++;
                break;
            }
            a->conflicts++; /* someone else won: re-read and retry */
        }
    }
    return NULL;
}

static void test_no_lost_updates(void)
{
    const char *d = new_dir();
    store *s;
    store_open(d, NULL, &s);
    uint64_t t;
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%d", i);
        write1(s, STORE_OP_CREATE, "Basic", id, 0, 1, &t, NULL);
    }
    pthread_t th[12];
    rmw_arg args[12];
    for (int i = 0; i < 12; i++) {
        args[i] = (rmw_arg){.s = s, .thread = i};
        pthread_create(&th[i], NULL, rmw_loop, &args[i]);
    }
    int updates = 0, conflicts = 0, errors = 0;
    for (int i = 0; i < 12; i++) {
        pthread_join(th[i], NULL);
        updates += args[i].updates;
        conflicts += args[i].conflicts;
        errors += args[i].errors;
    }
    is_int(errors, 0, "no errors other than conflicts");
    is_int(updates, 12 * 60, "every read-modify-write eventually succeeded");
    ok(conflicts > 0, "the race was real: %d conflicts were detected and retried", conflicts);
    store_reader *r;
    store_read_begin(s, &r);
    uint64_t total = 0;
    store_version v;
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%d", i);
        if (store_read(r, 0, "Basic", id, &v) == 0)
            total += v.vid - 1;
    }
    store_read_end(r);
    is_int(total, 12 * 60, "the vids add up to exactly the successful updates (none lost)");
    checked(s, "racing read-modify-writes");
    store_close(s);
    rm_dir(d);
}

/* ---- SearchParam through IndexLog and the overlay (STORAGE.md 4.6) ------------------ *
 * Random puts and deletes of SearchParam keys, in groups that commit together (some
 * requests conflict and roll back alone), with a fold every few commits (a 2 KiB
 * overlay). After each group, scans in both directions, prefix scans and gets must equal
 * a plain oracle set; a reader held across folds keeps seeing its snapshot; a process
 * that dies without closing has its unfolded entries replayed at the next open. */
#define SPO_KEYS 160
static uint8_t spo_have[SPO_KEYS], spo_val[SPO_KEYS];

static size_t spo_key(uint8_t *k, unsigned i)
{
    codec_put_u32(k, 0);
    return 4 + (size_t)snprintf((char *)k + 4, 16, "%s%u", i % 3 ? "k" : "kk", i);
}

static int spo_cmp(const void *a, const void *b)
{
    uint8_t ka[24], kb[24];
    size_t na = spo_key(ka, *(const unsigned *)a), nb = spo_key(kb, *(const unsigned *)b);
    int c = memcmp(ka, kb, na < nb ? na : nb);
    return c ? c : (na > nb) - (na < nb);
}

/* The oracle's keys (with have[]) under prefix, sorted, as "name=val," text. */
static void spo_expect(const uint8_t *have, const uint8_t *vals, const char *prefix, int reverse,
                       char *out, size_t cap)
{
    unsigned order[SPO_KEYS], n = 0;
    for (unsigned i = 0; i < SPO_KEYS; i++)
        order[n++] = i;
    qsort(order, n, sizeof order[0], spo_cmp);
    out[0] = 0;
    for (unsigned j = 0; j < n; j++) {
        unsigned i = order[reverse ? n - 1 - j : j];
        uint8_t k[24];
        size_t kn = spo_key(k, i);
        if (!have[i] || strncmp((const char *)k + 4, prefix, strlen(prefix)))
            continue;
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%.*s=%u,", (int)(kn - 4), (const char *)k + 4, vals[i]);
    }
}

static void spo_scan(store_reader *r, const char *prefix, int reverse, char *out, size_t cap)
{
    uint8_t p[24];
    codec_put_u32(p, 0);
    size_t pn = 4 + strlen(prefix);
    memcpy(p + 4, prefix, pn - 4);
    store_iter *it;
    out[0] = 0;
    int rc = reverse ? store_scan_rev(r, STORE_DB_SEARCH_PARAM, p, pn, &it)
                     : store_scan(r, STORE_DB_SEARCH_PARAM, NULL, 0, p, pn, &it);
    if (rc) {
        snprintf(out, cap, "scan failed: %d", rc);
        return;
    }
    const void *k, *v;
    size_t kn, vn;
    while (store_scan_next(it, &k, &kn, &v, &vn) == 0) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%.*s=%u,", (int)(kn - 4), (const char *)k + 4,
                 vn == 1 ? *(const uint8_t *)v : 999u);
    }
    store_iter_close(it);
}

static int spo_agree(store *s, const uint8_t *have, const uint8_t *vals, store_reader *held)
{
    static const char *const prefixes[] = {"", "k", "kk", "k1", "kk2", "x"};
    store_reader *r = held;
    if (!r && store_read_begin(s, &r))
        return 0;
    int good = 1;
    static char got[8192], want[8192];
    for (int p = 0; p < 6 && good; p++)
        for (int rev = 0; rev < 2 && good; rev++) {
            spo_scan(r, prefixes[p], rev, got, sizeof got);
            spo_expect(have, vals, prefixes[p], rev, want, sizeof want);
            if (strcmp(got, want)) {
                printf("#   scan '%s'%s:\n#   got  %s\n#   want %s\n", prefixes[p],
                       rev ? " reversed" : "", got, want);
                good = 0;
            }
        }
    for (unsigned i = 0; i < SPO_KEYS && good; i++) {
        uint8_t k[24];
        size_t kn = spo_key(k, i);
        const void *v;
        size_t vn;
        int rc = store_get(r, STORE_DB_SEARCH_PARAM, k, kn, &v, &vn);
        if (have[i] ? rc != 0 || vn != 1 || *(const uint8_t *)v != vals[i] : rc != ERR_NOTFOUND) {
            printf("#   get key %u: rc %d\n", i, rc);
            good = 0;
        }
    }
    if (!held)
        store_read_end(r);
    return good;
}

static void test_search_param_overlay(void)
{
    const char *d = new_dir();
    store_opts o = {.overlay_bytes = 2048, .fold_chunk = 7};
    store *s;
    ok(store_open(d, &o, &s) == 0, "open with a 2 KiB SearchParam overlay, folded 7 records a txn");
    int good = 1, groups = 0;
    store_reader *held = NULL;
    uint8_t held_have[SPO_KEYS], held_val[SPO_KEYS];
    for (int round = 0; round < 120 && good; round++) {
        /* hold the writer, queue a group, release: the group is one commit */
        gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
        store_op hold;
        char hb[256], hid[16];
        snprintf(hid, sizeof hid, "h%d", round);
        set_op(&hold, STORE_OP_CREATE, "Basic", hid, 0, 1, hb, body(hb, sizeof hb, "Basic", hid, 1, NULL));
        store_req hreq = {.ops = &hold, .nops = 1};
        store_submit(s, &hreq, blocking_done, &g);
        pthread_mutex_lock(&g.mu);
        while (!g.entered)
            pthread_cond_wait(&g.cv, &g.mu);
        pthread_mutex_unlock(&g.mu);
        enum { NREQ = 4, NX = 8 };
        store_req reqs[NREQ];
        store_op ops[NREQ];
        store_extra xs[NREQ][NX];
        uint8_t keys[NREQ][NX][24], vals[NREQ][NX];
        char bodies[NREQ][256], ids[NREQ][16];
        result res[NREQ];
        int fails[NREQ];
        for (int q = 0; q < NREQ; q++) {
            fails[q] = rng() % 5 == 0;
            snprintf(ids[q], sizeof ids[q], "h%d", round);
            /* a failing request updates the held resource at a stale version */
            set_op(&ops[q], STORE_OP_UPDATE, "Basic", ids[q], 7, 9, bodies[q],
                   body(bodies[q], sizeof bodies[q], "Basic", ids[q], 9, NULL));
            unsigned nx = 1 + rng() % NX;
            for (unsigned x = 0; x < nx; x++) {
                unsigned i = rng() % SPO_KEYS;
                size_t kn = spo_key(keys[q][x], i);
                vals[q][x] = (uint8_t)(rng() % 200);
                xs[q][x] = (store_extra){.db = STORE_DB_SEARCH_PARAM, .del = rng() % 3 == 0,
                                         .key = keys[q][x], .key_len = kn, .val = &vals[q][x],
                                         .val_len = 1};
            }
            reqs[q] = (store_req){.ops = fails[q] ? &ops[q] : NULL, .nops = fails[q] ? 1 : 0,
                                  .extras = xs[q], .nextra = nx};
            atomic_init(&res[q].calls, 0);
            store_submit(s, &reqs[q], record_done, &res[q]);
        }
        pthread_mutex_lock(&g.mu);
        g.released = 1;
        pthread_cond_broadcast(&g.cv);
        pthread_mutex_unlock(&g.mu);
        for (int q = 0; q < NREQ; q++) {
            while (!atomic_load(&res[q].calls))
                usleep(100);
            if ((res[q].rc != 0) != fails[q]) {
                printf("#   request %d: rc %d\n", q, res[q].rc);
                good = 0;
            }
            if (res[q].rc)
                continue;
            for (size_t x = 0; x < reqs[q].nextra; x++) {
                unsigned i = 0;
                for (; i < SPO_KEYS; i++) {
                    uint8_t k[24];
                    size_t kn = spo_key(k, i);
                    if (kn == xs[q][x].key_len && !memcmp(k, xs[q][x].key, kn))
                        break;
                }
                spo_have[i] = !xs[q][x].del;
                spo_val[i] = vals[q][x];
            }
        }
        groups++;
        if (good && !spo_agree(s, spo_have, spo_val, NULL))
            good = 0;
        if (round % 30 == 5) { /* a reader that stays while later groups fold */
            if (held) {
                good = good && spo_agree(s, held_have, held_val, held);
                store_read_end(held);
            }
            store_read_begin(s, &held);
            memcpy(held_have, spo_have, sizeof held_have);
            memcpy(held_val, spo_val, sizeof held_val);
        }
    }
    if (held) {
        good = good && spo_agree(s, held_have, held_val, held);
        store_read_end(held);
    }
    ok(good, "%d groups: scans, reverse scans, prefix scans and gets equal the oracle, also for "
             "readers held across folds", groups);
    store_stats st;
    store_get_stats(s, &st);
    ok(st.index_folds >= 10, "the overlay was folded (%llu times)", (unsigned long long)st.index_folds);
    store_close(s);
    ok(store_open(d, &o, &s) == 0 && spo_agree(s, spo_have, spo_val, NULL),
       "after a clean close and reopen, the same entries");
    store_close(s);

    /* a process that dies with entries in its overlay (IndexLog is replayed at open),
     * and one that dies in the middle of folds of one record a transaction */
    for (int mode = 0; mode < 2; mode++) {
        pid_t pid = fork();
        if (pid == 0) {
            store_opts co = mode ? (store_opts){.overlay_bytes = 1024, .fold_chunk = 1}
                                 : (store_opts){.overlay_bytes = 64u << 20};
            store *c;
            if (store_open(d, &co, &c))
                _exit(2);
            for (unsigned i = mode; i < SPO_KEYS; i += 2) {
                uint8_t k[24], v = (uint8_t)(77 + mode);
                size_t kn = spo_key(k, i);
                store_extra x = {.db = STORE_DB_SEARCH_PARAM, .del = i % 4 == (unsigned)mode, .key = k,
                                 .key_len = kn, .val = &v, .val_len = 1};
                store_req req = {.extras = &x, .nextra = 1};
                uint64_t t;
                if (store_write(c, &req, &t))
                    _exit(3);
            }
            store_stats cs;
            store_get_stats(c, &cs);
            _exit(mode && cs.index_folds == 0 && cs.index_overlay_records == 0 ? 4 : 0); /* no close */
        }
        int status = 0;
        waitpid(pid, &status, 0);
        for (unsigned i = mode; i < SPO_KEYS; i += 2) {
            spo_have[i] = i % 4 != (unsigned)mode;
            spo_val[i] = (uint8_t)(77 + mode);
        }
        ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a child wrote entries and died %s",
           mode ? "folding" : "with nothing folded");
        ok(store_open(d, &o, &s) == 0 && spo_agree(s, spo_have, spo_val, NULL),
           "at the next open its entries are all there (IndexLog replayed%s)",
           mode ? " over a partly folded B-tree" : "");
        if (mode)
            break;
        store_close(s);
    }
    checked(s, "the overlay tests");
    store_close(s);
    rm_dir(d);
}

/* ---- counts of SearchParam key prefixes ------------------------------------------- */
/* Keys tenant(4) | kind | value | rn(2): kinds 'A' 'B' counted, 'C' not (the policy
 * below), 4 values, 12 rn: 144 keys. Every request puts only absent keys and deletes
 * only present ones, as the index's plans do. */
enum { KC_KINDS = 3, KC_VALS = 4, KC_RNS = 12, KC_KEYS = KC_KINDS * KC_VALS * KC_RNS };
static uint8_t kc_have[KC_KEYS];

static size_t kc_key(uint8_t *k, unsigned i)
{
    codec_put_u32(k, 0);
    k[4] = (uint8_t)('A' + i / (KC_VALS * KC_RNS));
    k[5] = (uint8_t)('0' + i / KC_RNS % KC_VALS);
    k[6] = 'r';
    k[7] = (uint8_t)(i % KC_RNS);
    return 8;
}

/* Every prefix's count as the store gives it equals the oracle's (have[]); kind C is
 * not counted unless counted_c. */
static int kc_agree(store *s, const uint8_t *have, store_reader *held, int counted_c)
{
    store_reader *r = held;
    if (!r && store_read_begin(s, &r))
        return 0;
    int good = 1;
    for (unsigned kind = 0; kind < KC_KINDS && good; kind++)
        for (unsigned v = 0; v < KC_VALS && good; v++) {
            uint8_t k[8];
            kc_key(k, (kind * KC_VALS + v) * KC_RNS);
            uint64_t want = 0, n = 99;
            for (unsigned j = 0; j < KC_RNS; j++)
                want += have[(kind * KC_VALS + v) * KC_RNS + j];
            int rc = store_key_count(r, STORE_DB_SEARCH_PARAM, k, 6, &n);
            if (kind == 2 && !counted_c) {
                if (rc != ERR_UNSUPPORTED) {
                    printf("#   kind C is not counted, yet rc %d\n", rc);
                    good = 0;
                }
            } else if (rc || n != want) {
                printf("#   %c%c: count %llu (rc %d), want %llu\n", k[4], k[5],
                       (unsigned long long)n, rc, (unsigned long long)want);
                good = 0;
            }
        }
    if (!held)
        store_read_end(r);
    return good;
}

static int kc_write(store *s, unsigned nx)
{
    store_extra xs[16];
    uint8_t keys[16][8], used[KC_KEYS] = {0};
    unsigned idx[16], n = 0;
    for (unsigned x = 0; x < nx && x < 16; x++) {
        unsigned i = rng() % KC_KEYS;
        if (used[i]++)
            continue; /* one record per key and request */
        size_t kn = kc_key(keys[n], i);
        xs[n] = (store_extra){.db = STORE_DB_SEARCH_PARAM, .del = kc_have[i], .key = keys[n],
                              .key_len = kn};
        idx[n++] = i;
    }
    store_req req = {.extras = xs, .nextra = n};
    uint64_t t;
    if (store_write(s, &req, &t))
        return 0;
    for (unsigned j = 0; j < n; j++)
        kc_have[idx[j]] = !kc_have[idx[j]];
    return 1;
}

static void test_key_counts(void)
{
    const char *d = new_dir();
    store_opts o = {.overlay_bytes = 1024, .fold_chunk = 5, .count_kinds = "AB",
                    .count_kind_at = 4, .count_suffix = 2};
    store *s;
    ok(store_open(d, &o, &s) == 0, "open counting kinds A and B, folding 5 records a txn");
    int good = 1;
    store_reader *held = NULL;
    uint8_t held_have[KC_KEYS];
    for (int round = 0; round < 300 && good; round++) {
        good = kc_write(s, 1 + rng() % 12) && kc_agree(s, kc_have, NULL, 0);
        if (round % 40 == 3) { /* a reader that stays while later writes fold */
            if (held) {
                good = good && kc_agree(s, held_have, held, 0);
                store_read_end(held);
            }
            store_read_begin(s, &held);
            memcpy(held_have, kc_have, sizeof held_have);
        }
    }
    if (held) {
        good = good && kc_agree(s, held_have, held, 0);
        store_read_end(held);
    }
    store_stats st;
    store_get_stats(s, &st);
    ok(good, "300 writes: every count equals the oracle's, also for readers held across folds");
    ok(st.index_folds >= 10, "with folds in between (%llu)", (unsigned long long)st.index_folds);
    checked(s, "counts after folds");
    store_close(s);
    ok(store_open(d, NULL, &s) == 0 && kc_agree(s, kc_have, NULL, 0),
       "reopened without a policy: the directory's, the same counts");
    store_close(s);

    /* a child killed in the middle of folds of one record a transaction */
    pid_t pid = fork();
    if (pid == 0) {
        store_opts co = o;
        co.fold_chunk = 1;
        store *c;
        if (store_open(d, &co, &c))
            _exit(2);
        for (int i = 0; i < 200; i++)
            if (!kc_write(c, 1 + rng() % 12))
                _exit(3);
        _exit(0); /* no close */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    /* the child drew the same random keys from the same state: replay them here */
    for (int i = 0; i < 200; i++) {
        unsigned nx = 1 + rng() % 12, used[KC_KEYS] = {0};
        for (unsigned x = 0; x < nx && x < 16; x++) {
            unsigned k = rng() % KC_KEYS;
            if (!used[k]++)
                kc_have[k] = !kc_have[k];
        }
    }
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a child wrote and died folding");
    ok(store_open(d, &o, &s) == 0 && kc_agree(s, kc_have, NULL, 0),
       "at the next open the counts are right (an interrupted fold is finished first)");
    checked(s, "counts after a crash mid-fold");
    store_close(s);
    o.count_kinds = "ABC";
    ok(store_open(d, &o, &s) == 0 && kc_agree(s, kc_have, NULL, 1),
       "another policy (A, B and C) counts every key again");
    checked(s, "counts after a new policy");
    store_close(s);
    rm_dir(d);
}

int main(void)
{
    store *s;
    is_int(store_open("postgres://x", NULL, &s), ERR_UNSUPPORTED, "postgres: not yet");
    is_int(store_open("lmdb:", NULL, &s), ERR_INVALID, "lmdb: without a directory");
    const char *d = new_dir();
    char loc[96];
    snprintf(loc, sizeof loc, "lmdb:%s", d);
    ok(store_open(loc, NULL, &s) == 0, "open lmdb:DIR");
    store *twice = NULL;
    is_int(store_open(d, NULL, &twice), ERR_IO, "a second open of the same directory is refused");
    test_crud(s);
    test_transactions(s);
    test_group_conflict(s);
    test_extras(s);
    test_checks(s);
    test_reopen(d, &s);
    checked(s, "crud, transactions, group conflicts, extras and reopen");
    store_close(s);
    rm_dir(d);
    test_history(NULL);
    test_growth();
    test_big_request_and_live_paging();
    test_concurrency();
    test_check_detects();
    test_format_guard();
    test_check_orphan_content();
    test_upgrade_from_format_1();
    test_tenants();
    test_thread_churn();
    test_no_lost_updates();
    test_search_param_overlay();
    test_key_counts();
    test_kill9();
    return tap_done();
}
