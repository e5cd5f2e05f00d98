/*
 * search.c -- GET [base]/Type: the search-type interaction, unfiltered for now.
 *
 * Until the search engine (src/search/) lands, this lists the current
 * resources of a type in id order, with stable paging, and honours the
 * parameters that need no index:
 *
 *   _id=a,b        those resources
 *   _count=N       page size (default 50, at most 1000; 0 = total only)
 *   _summary=count total only
 *   _total=none|estimate|accurate
 *   _page_at, _page_id   cursor of the next page (in the `next` link)
 *
 * A page ends early, before REST_MAX_RESPONSE bytes of resources (with at
 * least one entry; the next link continues after it); an _id list has no
 * next page, so one whose matches exceed it is 413 too-costly.
 *
 * Every other parameter is one this server cannot apply yet. As FHIR's
 * lenient handling asks, it is ignored, left out of the `self` link, and
 * reported in an OperationOutcome entry (search.mode = outcome);
 * `Prefer: handling=strict` turns it into 400.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "fhir/bundle.h"
#include "rest/handlers.h"
#include "rest/params.h"
#include "rest/response.h"
#include "store/store.h"

typedef struct search_params {
    rest_req *r;
    unsigned count;
    int summary_count;
    int total_none;
    const char *ids; /* _id value */
    uint64_t page_at;
    const char *page_id;
    int bad;               /* a parameter value was malformed (400 sent) */
    buf ignored;           /* "a, b" */
    size_t nignored;
} search_params;

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

static int on_param(void *ctx, const char *k, const char *v)
{
    search_params *p = ctx;
    rest_req *r = p->r;
    char msg[200];
    uint64_t n;
    if (!strcmp(k, "_format") || !strcmp(k, "_pretty"))
        return 0;
    if (!strcmp(k, "_count")) {
        if (parse_u64(v, UINT32_MAX, &n)) {
            snprintf(msg, sizeof msg, "_count '%.40s' is not a non-negative integer", v ? v : "");
            rest_send_error(r, 400, OO_INVALID, msg, NULL);
            return p->bad = 1;
        }
        p->count = n > REST_MAX_COUNT ? REST_MAX_COUNT : (unsigned)n;
        return 0;
    }
    if (!strcmp(k, "_id") && v && *v) {
        p->ids = v;
        return 0;
    }
    if (!strcmp(k, "_summary") && v && !strcmp(v, "count")) {
        p->summary_count = 1;
        return 0;
    }
    if (!strcmp(k, "_total") && v &&
        (!strcmp(v, "none") || !strcmp(v, "estimate") || !strcmp(v, "accurate"))) {
        p->total_none = !strcmp(v, "none");
        return 0;
    }
    if (!strcmp(k, "_page_at")) {
        if (parse_u64(v, INT64_MAX, &p->page_at)) {
            rest_send_error(r, 400, OO_INVALID, "bad _page_at paging parameter", NULL);
            return p->bad = 1;
        }
        return 0;
    }
    if (!strcmp(k, "_page_id")) {
        if (!v || !rest_id_valid(v, strlen(v))) {
            rest_send_error(r, 400, OO_INVALID, "bad _page_id paging parameter", NULL);
            return p->bad = 1;
        }
        p->page_id = v;
        return 0;
    }
    if (p->nignored++)
        buf_puts(&p->ignored, ", ");
    buf_puts(&p->ignored, k);
    return 0;
}

static int strict(rest_req *r)
{
    const char *p = rest_header(r, "Prefer");
    return p && strstr(p, "handling=strict") != NULL;
}

/* The valid ids of an _id list in the order given, a repeat marked `dup`: a
 * searchset is a set, and `_id=x,x,x...` would otherwise answer one resource
 * once per repetition (with _count=1000, a thousand copies from a few KB of
 * URL). Sorted copies find repeats in O(n log n), the list may be long. */
typedef struct idtok {
    const char *s;
    size_t len;
    size_t pos;
    int dup;
} idtok;

static int idtok_cmp(const void *x, const void *y)
{
    const idtok *a = *(const idtok *const *)x, *b = *(const idtok *const *)y;
    size_t m = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, m);
    if (c)
        return c;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static idtok *id_tokens(arena *a, const char *list, size_t *n)
{
    size_t cap = 1;
    for (const char *q = list; *q; q++)
        cap += *q == ',';
    idtok *t = arena_alloc(a, sizeof *t * cap);
    idtok **o = arena_alloc(a, sizeof *o * cap);
    if (!t || !o)
        return NULL;
    size_t k = 0;
    for (const char *s = list;;) {
        const char *c = strchr(s, ',');
        size_t len = c ? (size_t)(c - s) : strlen(s);
        if (rest_id_valid(s, len) && k < cap) {
            t[k] = (idtok){s, len, k, 0};
            o[k] = &t[k];
            k++;
        }
        if (!c)
            break;
        s = c + 1;
    }
    qsort(o, k, sizeof *o, idtok_cmp);
    for (size_t i = 1; i < k; i++)
        if (o[i]->len == o[i - 1]->len && !memcmp(o[i]->s, o[i - 1]->s, o[i]->len))
            o[i]->dup = 1;
    *n = k;
    return t;
}

static const char *link_url(rest_req *r, const search_params *p, uint64_t page_at,
                            const char *page_id)
{
    buf b = BUF_INIT;
    buf_printf(&b, "%s/%s?_count=%u", rest_base_url(r), r->route.type->name, p->count);
    if (p->ids) {
        buf_puts(&b, "&_id=");
        for (const char *s = p->ids; *s; s++) /* ids are [A-Za-z0-9-.] and ',' */
            if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
                (*s >= '0' && *s <= '9') || *s == '-' || *s == '.' || *s == ',')
                buf_putc(&b, *s);
    }
    if (p->summary_count)
        buf_puts(&b, "&_summary=count");
    if (page_at)
        buf_printf(&b, "&_page_at=%llu", (unsigned long long)page_at);
    if (page_id)
        buf_printf(&b, "&_page_id=%s", page_id);
    const char *out = b.err ? NULL : arena_strndup(r->a, b.data, b.len);
    buf_free(&b);
    return out ? out : "";
}

static void put_entry(rest_req *r, jw *w, const char *base, const store_version *v)
{
    buf u = BUF_INIT;
    buf_printf(&u, "%s/%s/%s", base, v->type, v->id);
    bundle_entry_begin(w, buf_cstr(&u));
    buf_free(&u);
    jw_key(w, "resource");
    rest_write_resource(r, w, v->bytes, v->len);
    bundle_entry_search_mode(w, "match");
    bundle_entry_end(w);
}

static void put_ignored_outcome(jw *w, const search_params *p)
{
    bundle_entry_begin(w, NULL);
    jw_key(w, "resource");
    buf d = BUF_INIT;
    buf_printf(&d, "search parameters not applied (not supported yet): %s",
               buf_cstr(&p->ignored));
    oo_write_one(w, OO_WARNING, OO_NOT_SUPPORTED, buf_cstr(&d), NULL);
    buf_free(&d);
    bundle_entry_search_mode(w, "outcome");
    bundle_entry_end(w);
}

int rest_search(rest_req *r)
{
    search_params p = {.r = r, .count = REST_DEFAULT_COUNT};
    rest_query_each(r, on_param, &p);
    if (p.bad) {
        buf_free(&p.ignored);
        return REST_DONE;
    }
    if (p.nignored && strict(r)) {
        char msg[300];
        snprintf(msg, sizeof msg, "search parameters not supported: %.200s",
                 buf_cstr(&p.ignored));
        buf_free(&p.ignored);
        return rest_send_error(r, 400, OO_NOT_SUPPORTED, msg, NULL);
    }
    if (p.summary_count)
        p.count = 0;
    const char *type = r->route.type->name;
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc) {
        buf_free(&p.ignored);
        return rest_send_errcode(r, rc, "cannot read the store");
    }
    uint64_t snap = store_reader_t(rd);
    uint64_t as_of = p.page_at && p.page_at < snap ? p.page_at : snap;
    store_version *vs = arena_alloc(r->a, sizeof *vs * (p.count + 1));
    size_t n = 0;
    int more = 0;
    int64_t total = -1;
    size_t bytes = 0;
    if (!vs) {
        rc = ERR_NOMEM;
    } else if (p.ids) {
        /* _id=a,b: current versions of those ids, in the order given, each once */
        total = 0;
        size_t nt = 0;
        idtok *t = id_tokens(r->a, p.ids, &nt);
        if (!t)
            rc = ERR_NOMEM;
        for (size_t i = 0; t && i < nt; i++) {
            if (t[i].dup)
                continue;
            char id[REST_MAX_ID + 1];
            store_version v;
            memcpy(id, t[i].s, t[i].len);
            id[t[i].len] = 0;
            if (store_read(rd, r->ctx.tenant, type, id, &v) == 0) {
                total++;
                if (n < p.count) {
                    bytes += v.len;
                    vs[n++] = v;
                }
            }
        }
    } else {
        uint64_t cur = 0, versions = 0;
        if (as_of == snap && store_count(rd, r->ctx.tenant, type, &cur, &versions) == 0)
            total = (int64_t)cur;
        store_iter *it = NULL;
        rc = p.count ? store_list(rd, r->ctx.tenant, type, as_of, p.page_id, &it) : 0;
        store_version v;
        while (it && (rc = store_iter_next(it, &v)) == 0) {
            if (n == p.count || (n && bytes + v.len > REST_MAX_RESPONSE)) {
                more = 1;
                break;
            }
            bytes += v.len;
            vs[n++] = v;
        }
        if (rc == ERR_NOTFOUND)
            rc = 0;
        store_iter_close(it);
    }
    if (rc) {
        buf_free(&p.ignored);
        return rest_send_errcode(r, rc, "cannot list the resources");
    }
    if (p.ids && bytes > REST_MAX_RESPONSE) {
        char msg[200];
        buf_free(&p.ignored);
        snprintf(msg, sizeof msg,
                 "the resources of this _id list exceed %u MiB (REST_MAX_RESPONSE): "
                 "ask for fewer ids or a smaller _count",
                 (unsigned)(REST_MAX_RESPONSE >> 20));
        return rest_send_error(r, 413, OO_TOO_COSTLY, msg, NULL);
    }
    const char *base = rest_base_url(r);
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, r->pretty);
    bundle_begin(&w, "searchset");
    if (total >= 0 && !p.total_none)
        bundle_total(&w, (uint64_t)total);
    bundle_links_begin(&w);
    bundle_link(&w, "self", link_url(r, &p, p.page_at ? as_of : 0, p.page_id));
    if (more && n)
        bundle_link(&w, "next", link_url(r, &p, as_of, vs[n - 1].id));
    bundle_links_end(&w);
    if (n || p.nignored) {
        bundle_entries_begin(&w);
        for (size_t i = 0; i < n; i++)
            put_entry(r, &w, base, &vs[i]);
        if (p.nignored)
            put_ignored_outcome(&w, &p);
        bundle_entries_end(&w);
    }
    bundle_end(&w);
    buf_free(&p.ignored);
    return rest_send_buf(r, 200, &b);
}
