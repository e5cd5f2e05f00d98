/* overlay.c -- the SearchParam overlay (src/store/overlay.c) against a plain oracle: a
 * log of every record ever added. Random commits of puts and deletes over a small key
 * space with shared prefixes; views kept by "readers" at many points in time; folds that
 * restart the overlay empty. For every kept view and window, the cursor (forward and
 * reverse, random prefix and seek) and ovl_get must give exactly the oracle's latest
 * record per key; ovl_view_keep must equal the view before the dropped commits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/overlay.h"
#include "tap.h"

#define diag(...) (printf("# "), printf(__VA_ARGS__), printf("\n"))
#include "testrand.h"

#define MAXOPS 20000
#define NKEYS 300

typedef struct op {
    uint64_t t;
    uint32_t seq;
    int del;
    char key[16];
    size_t klen;
    char val[8];
    size_t vlen;
} op;

static op ops[MAXOPS];
static size_t nops;

static void key_of(unsigned k, char *out, size_t *len)
{
    /* prefixes "a", "ab", "b" and lengths that make some keys prefixes of others */
    static const char *const pre[] = {"a", "ab", "b", "abc"};
    *len = (size_t)snprintf(out, 16, "%s%u", pre[k % 4], k / 4);
}

/* The oracle's winner of key in (lo, hi]: index into ops, or -1. */
static long oracle(const char *key, size_t klen, uint64_t lo, uint64_t hi)
{
    long best = -1;
    for (size_t i = 0; i < nops; i++) {
        const op *o = &ops[i];
        if (o->t <= lo || o->t > hi || o->klen != klen || memcmp(o->key, key, klen))
            continue;
        if (best < 0 || o->t > ops[best].t || (o->t == ops[best].t && o->seq > ops[best].seq))
            best = (long)i;
    }
    return best;
}

static int cmpkey(const void *a, size_t an, const void *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

typedef struct kept {
    ovl_view *v;
    uint64_t lo, hi; /* the floor and last t when it was current */
} kept;

static int check_view(const kept *k, int *bad)
{
    /* every key through ovl_get */
    for (unsigned i = 0; i < NKEYS; i++) {
        char key[16];
        size_t kn;
        key_of(i, key, &kn);
        ovl_rec r;
        int got = ovl_get(k->v, k->lo, k->hi, key, kn, &r);
        long want = oracle(key, kn, k->lo, k->hi);
        if (got != (want >= 0) ||
            (got && (r.t != ops[want].t || r.seq != ops[want].seq || r.del != ops[want].del ||
                     r.vlen != ops[want].vlen || memcmp(r.val, ops[want].val, r.vlen)))) {
            if (!(*bad)++)
                diag("ovl_get(%.*s) in (%llu, %llu]: got %d, want %ld", (int)kn, key,
                     (unsigned long long)k->lo, (unsigned long long)k->hi, got, want);
            return 0;
        }
    }
    /* cursors: random prefix and seek, both directions */
    for (int round = 0; round < 4; round++) {
        char pre[16], seek[16];
        size_t pn = 0, sn = 0;
        static const char *const pres[] = {"", "a", "ab", "abc", "b", "c"};
        const char *p = pres[rng() % 6];
        pn = strlen(p);
        memcpy(pre, p, pn);
        int reverse = rng() % 2;
        if (rng() % 2) { /* a seek key inside the prefix range */
            memcpy(seek, pre, pn);
            sn = pn + (size_t)snprintf(seek + pn, sizeof seek - pn, "%u", rng() % 40);
        } else if (reverse && pn) { /* the prefix plus one, as store_scan_rev passes it */
            memcpy(seek, pre, pn);
            sn = pn;
            seek[sn - 1]++;
        }
        /* the oracle: sorted distinct keys with a winner, inside the range */
        const char *keys[NKEYS];
        size_t klens[NKEYS], nk = 0;
        static char kbuf[NKEYS][16];
        for (unsigned i = 0; i < NKEYS; i++) {
            size_t kn;
            key_of(i, kbuf[i], &kn);
            if (kn < pn || memcmp(kbuf[i], pre, pn))
                continue;
            if (sn && (reverse ? cmpkey(kbuf[i], kn, seek, sn) >= 0
                               : cmpkey(kbuf[i], kn, seek, sn) < 0))
                continue;
            if (oracle(kbuf[i], kn, k->lo, k->hi) < 0)
                continue;
            keys[nk] = kbuf[i];
            klens[nk++] = kn;
        }
        for (size_t a = 1; a < nk; a++) /* insertion sort, direction aware */
            for (size_t b = a; b > 0; b--) {
                int c = cmpkey(keys[b - 1], klens[b - 1], keys[b], klens[b]);
                if (reverse ? c > 0 : c < 0)
                    break;
                const char *tk = keys[b];
                size_t tl = klens[b];
                keys[b] = keys[b - 1];
                klens[b] = klens[b - 1];
                keys[b - 1] = tk;
                klens[b - 1] = tl;
            }
        ovl_cursor c;
        ovl_cursor_init(&c, k->v, k->lo, k->hi, (const uint8_t *)pre, pn,
                        sn ? (const uint8_t *)seek : NULL, sn, reverse);
        ovl_rec r;
        size_t j = 0;
        while (ovl_cursor_next(&c, &r)) {
            long want = j < nk ? oracle(keys[j], klens[j], k->lo, k->hi) : -1;
            if (j >= nk || cmpkey(r.key, r.klen, keys[j], klens[j]) || want < 0 ||
                r.t != ops[want].t || r.seq != ops[want].seq || r.del != ops[want].del) {
                if (!(*bad)++)
                    diag("cursor '%.*s' seek '%.*s' %s: entry %zu is %.*s, want %.*s", (int)pn,
                         pre, (int)sn, seek, reverse ? "reverse" : "forward", j, (int)r.klen,
                         r.key, j < nk ? (int)klens[j] : 0, j < nk ? keys[j] : "");
                return 0;
            }
            j++;
        }
        if (j != nk) {
            if (!(*bad)++)
                diag("cursor '%.*s' %s: %zu keys, want %zu", (int)pn, pre,
                     reverse ? "reverse" : "forward", j, nk);
            return 0;
        }
    }
    return 1;
}

int main(void)
{
    enum { KEEP = 64 };
    kept keep[KEEP];
    size_t nkeep = 0;
    ovl_view *cur = ovl_view_empty(0);
    ok(cur && ovl_view_records(cur) == 0, "an empty view");
    ovl_builder b = {0};
    uint64_t t = 0, floor = 0;
    int bad = 0, checked = 0, folds = 0;
    size_t max_runs = 0;
    while (nops < MAXOPS - 64) {
        /* one commit: several requests (t each), random puts and deletes */
        ovl_builder_reset(&b);
        uint64_t t_start = t;
        unsigned nreq = 1 + rng() % 4;
        for (unsigned q = 0; q < nreq; q++) {
            t++;
            size_t mark = b.n, mark_ops = nops;
            unsigned n = rng() % 12;
            for (unsigned i = 0; i < n; i++) {
                op *o = &ops[nops];
                o->t = t;
                o->seq = (uint32_t)b.n;
                o->del = rng() % 3 == 0;
                key_of(rng() % NKEYS, o->key, &o->klen);
                o->vlen = o->del ? 0 : rng() % 4;
                for (size_t v = 0; v < o->vlen; v++)
                    o->val[v] = (char)('0' + rng() % 10);
                if (ovl_builder_add(&b, t, o->del, o->key, o->klen, o->val, o->vlen))
                    abort();
                nops++;
            }
            if (rng() % 10 == 0) { /* the request rolled back */
                ovl_builder_truncate(&b, mark);
                nops = mark_ops;
                t--;
            }
        }
        /* seq numbers are positions in the commit's builder */
        ovl_view *nv;
        if (ovl_view_add(cur, &b, &nv))
            abort();
        if (rng() % 17 == 0) { /* the commit failed after publishing: take it back */
            while (nops > 0 && ops[nops - 1].t > t_start)
                nops--;
            ovl_view *dv;
            if (ovl_view_keep(nv, 0, t_start, ovl_view_floor(nv), &dv))
                abort();
            ovl_view_unref(nv);
            nv = dv;
            t = t_start;
        }
        ovl_view_unref(cur);
        cur = nv;
        if (ovl_view_runs(cur) > max_runs)
            max_runs = ovl_view_runs(cur);
        if (rng() % 3 == 0) {
            kept *k = &keep[nkeep % KEEP];
            if (nkeep >= KEEP)
                ovl_view_unref(k->v);
            ovl_view_ref(cur);
            /* a reader window: folded up to the floor or later, committed up to t or
             * earlier (a reader of an older snapshot) */
            k->v = cur;
            k->lo = floor + (t > floor ? rng() % 2 : 0);
            k->hi = t - (t > k->lo ? rng() % 2 : 0);
            nkeep++;
        }
        if (rng() % 60 == 0) { /* fold: the overlay restarts empty at t */
            ovl_view_unref(cur);
            cur = ovl_view_empty(t);
            floor = t;
            folds++;
        }
        if (nkeep && rng() % 4 == 0 && bad == 0) {
            checked++;
            check_view(&keep[rng() % (nkeep < KEEP ? nkeep : KEEP)], &bad);
        }
    }
    for (size_t i = 0; i < (nkeep < KEEP ? nkeep : KEEP) && !bad; i++, checked++)
        check_view(&keep[i], &bad);
    is_int(bad, 0, "%d view checks over %zu records (%d folds): cursors and gets match the oracle",
           checked, nops, folds);
    ok(max_runs <= 20, "views stay at a few runs (at most %zu)", max_runs);
    ok(checked > 100, "enough views were checked (%d)", checked);

    /* sizes: merging keeps every record; drop_after removes exactly the later ones */
    ovl_builder_reset(&b);
    ovl_view *v0 = ovl_view_empty(0), *v1, *v2, *v3;
    for (int i = 0; i < 100; i++) {
        char k[16];
        size_t kn;
        key_of((unsigned)i, k, &kn);
        ovl_builder_add(&b, 1 + (uint64_t)i / 10, 0, k, kn, "", 0);
    }
    ok(ovl_view_add(v0, &b, &v1) == 0 && ovl_view_records(v1) == 100, "100 records in");
    ok(ovl_view_add(v1, &b, &v2) == 0 && ovl_view_records(v2) == 200, "200 after a second run");
    ok(ovl_view_keep(v2, 0, 5, 0, &v3) == 0 && ovl_view_records(v3) == 100,
       "keep(0, 5] keeps the 2 x 50 records of t <= 5 (%zu)", ovl_view_records(v3));
    ovl_view *v4;
    ok(ovl_view_keep(v2, 5, UINT64_MAX, 5, &v4) == 0 && ovl_view_records(v4) == 100 &&
           ovl_view_floor(v4) == 5,
       "keep(5, max] keeps the other 100, with the floor at 5");
    ovl_view_unref(v4);
    ok(ovl_builder_add(&b, 1, 0, "k", 1, NULL, OVL_VAL_MAX + 1) != 0, "an oversized value is refused");
    ovl_view_unref(v0);
    ovl_view_unref(v1);
    ovl_view_unref(v2);
    ovl_view_unref(v3);
    for (size_t i = 0; i < (nkeep < KEEP ? nkeep : KEEP); i++)
        ovl_view_unref(keep[i].v);
    ovl_view_unref(cur);
    ovl_builder_free(&b);
    return tap_done();
}
