/*
 * lmdb_raw.c -- the raw LMDB write rate of the keys and bytes a hortus import wrote:
 * the limit of this storage design on this machine, which `make bench` sets the import
 * rate against.
 *
 *   lmdb_raw SRC DST [KEYS_PER_COMMIT]
 *
 * SRC is a hortus data directory (an LMDB environment) after `hortus import`; DST a new
 * directory. Every named database of SRC is created in DST with the same flags, and
 * every key and value is written into it in key order with MDB_APPEND (MDB_APPENDDUP
 * for sorted duplicates) -- the cheapest way LMDB can take them: no search down the
 * tree, every page filled once -- in durable commits of KEYS_PER_COMMIT keys (default
 * 131072, the commits of hortus's own sorted index build). The reads come from SRC's
 * map, which is read once, before the clock starts, so the figure is the writes alone.
 * Prints the keys, bytes, seconds, keys/s and MiB/s, and the total line
 * "raw: K keys, B bytes, S s".
 */
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_DBS 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "lmdb_raw: %s: %s\n", what, mdb_strerror(rc));
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: lmdb_raw SRC DST [KEYS_PER_COMMIT]\n");
        return 2;
    }
    size_t per = argc > 3 ? strtoul(argv[3], NULL, 10) : 131072;
    if (!per)
        per = 131072;
    MDB_env *se, *de;
    int rc;
    if ((rc = mdb_env_create(&se)) || (rc = mdb_env_set_maxdbs(se, MAX_DBS)))
        die("src env", rc);
    struct stat sb;
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", argv[1]);
    if (stat(path, &sb)) {
        perror(path);
        return 1;
    }
    if ((rc = mdb_env_set_mapsize(se, (size_t)sb.st_size)) ||
        (rc = mdb_env_open(se, argv[1], MDB_RDONLY | MDB_NOLOCK, 0644)))
        die(argv[1], rc);
    mkdir(argv[2], 0755);
    if ((rc = mdb_env_create(&de)) || (rc = mdb_env_set_maxdbs(de, MAX_DBS)) ||
        (rc = mdb_env_set_mapsize(de, (size_t)sb.st_size * 2 + (1u << 30))) ||
        (rc = mdb_env_open(de, argv[2], 0, 0644)))
        die(argv[2], rc);
    MDB_txn *st;
    if ((rc = mdb_txn_begin(se, NULL, MDB_RDONLY, &st)))
        die("src txn", rc);
    /* the named databases: the keys of the main one */
    MDB_dbi main_dbi, sdb[MAX_DBS], ddb[MAX_DBS];
    unsigned flags[MAX_DBS];
    char *names[MAX_DBS];
    int n = 0;
    if ((rc = mdb_dbi_open(st, NULL, 0, &main_dbi)))
        die("main db", rc);
    MDB_cursor *c;
    MDB_val k, v;
    if ((rc = mdb_cursor_open(st, main_dbi, &c)))
        die("cursor", rc);
    while (n < MAX_DBS && !mdb_cursor_get(c, &k, &v, n ? MDB_NEXT : MDB_FIRST)) {
        names[n] = strndup(k.mv_data, k.mv_size);
        n++;
    }
    mdb_cursor_close(c);
    /* touch SRC's pages once, so the timed part reads from memory */
    uint64_t keys = 0, bytes = 0, sum = 0;
    for (int i = 0; i < n; i++) {
        if ((rc = mdb_dbi_open(st, names[i], 0, &sdb[i])) ||
            (rc = mdb_dbi_flags(st, sdb[i], &flags[i])))
            die(names[i], rc);
        if ((rc = mdb_cursor_open(st, sdb[i], &c)))
            die("cursor", rc);
        for (int op = MDB_FIRST; !mdb_cursor_get(c, &k, &v, op); op = MDB_NEXT) {
            for (size_t j = 0; j < v.mv_size; j += 4096)
                sum += ((const unsigned char *)v.mv_data)[j];
            keys++;
            bytes += k.mv_size + v.mv_size;
        }
        mdb_cursor_close(c);
    }
    fprintf(stderr, "lmdb_raw: %d databases, %llu keys, %.1f MiB of keys and values (%llu)\n",
            n, (unsigned long long)keys, (double)bytes / 1048576.0, (unsigned long long)(sum & 1));
    MDB_txn *dt;
    if ((rc = mdb_txn_begin(de, NULL, 0, &dt)))
        die("dst txn", rc);
    for (int i = 0; i < n; i++)
        if ((rc = mdb_dbi_open(dt, names[i], MDB_CREATE | flags[i], &ddb[i])))
            die(names[i], rc);
    if ((rc = mdb_txn_commit(dt)))
        die("commit", rc);
    double t0 = now_s();
    uint64_t done = 0, commits = 0;
    for (int i = 0; i < n; i++) {
        double ti = now_s();
        uint64_t di = 0, bi = 0;
        unsigned wf = (flags[i] & MDB_DUPSORT) ? MDB_APPENDDUP : MDB_APPEND;
        if ((rc = mdb_cursor_open(st, sdb[i], &c)))
            die("cursor", rc);
        if ((rc = mdb_txn_begin(de, NULL, 0, &dt)))
            die("dst txn", rc);
        size_t inbatch = 0;
        for (int op = MDB_FIRST; !mdb_cursor_get(c, &k, &v, op); op = MDB_NEXT) {
            if ((rc = mdb_put(dt, ddb[i], &k, &v, wf)))
                die(names[i], rc);
            di++;
            bi += k.mv_size + v.mv_size;
            if (++inbatch == per) {
                if ((rc = mdb_txn_commit(dt)) || (rc = mdb_txn_begin(de, NULL, 0, &dt)))
                    die("commit", rc);
                commits++;
                inbatch = 0;
            }
        }
        if ((rc = mdb_txn_commit(dt)))
            die("commit", rc);
        commits++;
        mdb_cursor_close(c);
        done += di;
        double el = now_s() - ti;
        if (di)
            fprintf(stderr, "lmdb_raw: %-16s %10llu keys %9.1f MiB %7.2f s\n", names[i],
                    (unsigned long long)di, (double)bi / 1048576.0, el);
    }
    double el = now_s() - t0;
    printf("raw: %llu keys, %llu bytes, %.2f s, %.0f keys/s, %.0f MiB/s, %llu commits\n",
           (unsigned long long)done, (unsigned long long)bytes, el, el > 0 ? done / el : 0,
           el > 0 ? bytes / 1048576.0 / el : 0, (unsigned long long)commits);
    mdb_txn_abort(st);
    mdb_env_close(se);
    mdb_env_close(de);
    for (int i = 0; i < n; i++)
        free(names[i]);
    return 0;
}
