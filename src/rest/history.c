/*
 * history.c -- GET [base]/Type/id/_history, [base]/Type/_history, [base]/_history.
 *
 * A Bundle of type "history", newest first, one entry per version: fullUrl,
 * resource (absent for deletions), request (method, url), response (status,
 * etag, lastModified). Parameters: _count (default REST_DEFAULT_COUNT, at most
 * REST_MAX_COUNT), _since (instant), _at (dateTime).
 *
 * Paging is stable while writes continue: the first page fixes the snapshot t
 * (`_page_at`), and every link carries it, so later pages see exactly the same
 * versions. Links are absolute and carry all state in their query string:
 *
 *   next      ..._history?_count=N&_page_at=T&_offset=O+N&_page_t=t&_page_type=X&_page_id=Y
 *             (the cursor after the last entry: one seek, no skipping)
 *   previous  ..._history?_count=N&_page_at=T&_offset=O-N   (skips O-N entries)
 *   self      this page
 *
 * A page also ends before REST_MAX_RESPONSE bytes of resources (but holds
 * at least one entry), so _count=1000 of large versions cannot build gigabytes;
 * the next link continues after its last entry as usual.
 *
 * total is given when it is cheap and exact: type and system history without
 * _since/_at on the current snapshot (from the store's counters).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/num.h"
#include "fhir/bundle.h"
#include "base/time.h"
#include "rest/authz.h"
#include "rest/handlers.h"
#include "rest/params.h"
#include "rest/response.h"
#include "store/store.h"

typedef struct hist_params {
    unsigned count;
    const char *since_s, *at_s;
    int64_t since, at;
    uint64_t page_at, offset, page_t;
    const char *page_type, *page_id;
} hist_params;

/* 0, or 1 when a 400 was sent */
static int get_params(rest_req *r, hist_params *p)
{
    char msg[200];
    memset(p, 0, sizeof *p);
    p->count = REST_DEFAULT_COUNT;
    p->since = p->at = STORE_NO_TIME;
    const char *c = rest_query(r, "_count");
    if (c) {
        uint64_t v;
        if (num_parse_u64(c, UINT32_MAX, &v)) {
            snprintf(msg, sizeof msg, "_count '%.40s' is not a non-negative integer", c);
            return rest_send_error(r, 400, OO_INVALID, msg, NULL), 1;
        }
        p->count = v > REST_MAX_COUNT ? REST_MAX_COUNT : (unsigned)v;
    }
    p->since_s = rest_query(r, "_since");
    if (p->since_s && rest_time_param(p->since_s, &p->since)) {
        snprintf(msg, sizeof msg, "_since '%.60s' is not an instant (e.g. 2024-01-31T12:00:00Z)",
                 p->since_s);
        return rest_send_error(r, 400, OO_INVALID, msg, NULL), 1;
    }
    p->at_s = rest_query(r, "_at");
    if (p->at_s && rest_time_param(p->at_s, &p->at)) {
        snprintf(msg, sizeof msg, "_at '%.60s' is not a dateTime", p->at_s);
        return rest_send_error(r, 400, OO_INVALID, msg, NULL), 1;
    }
    const char *s;
    if ((s = rest_query(r, "_page_at")) && num_parse_u64(s, INT64_MAX, &p->page_at))
        return rest_send_error(r, 400, OO_INVALID, "bad _page_at paging parameter", NULL), 1;
    if ((s = rest_query(r, "_offset")) && num_parse_u64(s, INT64_MAX, &p->offset))
        return rest_send_error(r, 400, OO_INVALID, "bad _offset paging parameter", NULL), 1;
    if ((s = rest_query(r, "_page_t"))) {
        if (num_parse_u64(s, INT64_MAX, &p->page_t) || p->page_t == 0)
            return rest_send_error(r, 400, OO_INVALID, "bad _page_t paging parameter", NULL), 1;
        p->page_type = rest_query(r, "_page_type");
        p->page_id = rest_query(r, "_page_id");
        if (r->ri != RI_HISTORY_INSTANCE &&
            (!p->page_id || (r->ri == RI_HISTORY_SYSTEM && !p->page_type)))
            return rest_send_error(r, 400, OO_INVALID,
                                   "_page_t needs _page_id (and _page_type for system history)",
                                   NULL),
                   1;
    }
    return 0;
}

static void put_qs(buf *b, int *first, const char *k, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    buf_putc(b, *first ? '?' : '&');
    *first = 0;
    buf_puts(b, k);
    buf_putc(b, '=');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            buf_putc(b, (char)*p);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[*p >> 4]);
            buf_putc(b, hex[*p & 15]);
        }
    }
}

static void put_qs_u64(buf *b, int *first, const char *k, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    put_qs(b, first, k, tmp);
}

/* An absolute link for this history with the given paging state. */
static const char *link_url(rest_req *r, const hist_params *p, uint64_t page_at,
                            uint64_t offset, const store_version *cursor)
{
    buf b = BUF_INIT;
    buf_puts(&b, rest_base_url(r));
    if (r->ri == RI_HISTORY_SYSTEM)
        buf_puts(&b, "/_history");
    else if (r->ri == RI_HISTORY_TYPE)
        buf_printf(&b, "/%s/_history", r->route.type->name);
    else
        buf_printf(&b, "/%s/%s/_history", r->route.type->name, r->route.id);
    int first = 1;
    put_qs_u64(&b, &first, "_count", p->count);
    if (p->since_s)
        put_qs(&b, &first, "_since", p->since_s);
    if (p->at_s)
        put_qs(&b, &first, "_at", p->at_s);
    if (page_at)
        put_qs_u64(&b, &first, "_page_at", page_at);
    if (offset)
        put_qs_u64(&b, &first, "_offset", offset);
    if (cursor) {
        put_qs_u64(&b, &first, "_page_t", cursor->t);
        if (r->ri == RI_HISTORY_SYSTEM)
            put_qs(&b, &first, "_page_type", cursor->type);
        if (r->ri != RI_HISTORY_INSTANCE)
            put_qs(&b, &first, "_page_id", cursor->id);
    }
    const char *out = b.err ? NULL : arena_strndup(r->a, b.data, b.len);
    buf_free(&b);
    return out ? out : "";
}

static void put_entry(rest_req *r, jw *w, const char *base, const store_version *v)
{
    char tmp[64];
    buf u = BUF_INIT;
    buf_printf(&u, "%s/%s/%s", base, v->type, v->id);
    bundle_entry_begin(w, buf_cstr(&u));
    buf_free(&u);
    if (v->op != STORE_OP_DELETE && v->bytes) {
        jw_key(w, "resource");
        rest_write_resource(r, w, v->bytes, v->len);
    }
    jw_key(w, "request");
    jw_obj(w);
    jw_key(w, "method");
    jw_str(w, v->op == STORE_OP_CREATE ? "POST" : v->op == STORE_OP_UPDATE ? "PUT" : "DELETE");
    jw_key(w, "url");
    if (v->op == STORE_OP_CREATE) {
        jw_str(w, v->type);
    } else {
        buf p = BUF_INIT;
        buf_printf(&p, "%s/%s", v->type, v->id);
        jw_strn(w, buf_cstr(&p), p.len);
        buf_free(&p);
    }
    jw_end(w);
    jw_key(w, "response");
    jw_obj(w);
    jw_key(w, "status");
    jw_str(w, v->op == STORE_OP_DELETE ? "204" : v->created ? "201" : "200");
    jw_key(w, "etag");
    snprintf(tmp, sizeof tmp, "W/\"%llu\"", (unsigned long long)v->vid);
    jw_str(w, tmp);
    jw_key(w, "lastModified");
    ftime_format_instant(v->last_updated, tmp);
    jw_str(w, tmp);
    jw_end(w);
    bundle_entry_end(w);
}

int rest_history(rest_req *r)
{
    hist_params p;
    if (get_params(r, &p))
        return REST_DONE;
    if (r->ri == RI_HISTORY_INSTANCE && !rest_id_valid(r->route.id, r->route.id_len)) {
        char msg[200];
        snprintf(msg, sizeof msg, "invalid id '%.80s': 1-%d characters of A-Z a-z 0-9 - .",
                 r->route.id, REST_MAX_ID);
        return rest_send_error(r, 400, OO_INVALID, msg, NULL);
    }
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the store");
    uint64_t snap = store_reader_t(rd);
    uint64_t as_of = p.page_at && p.page_at < snap ? p.page_at : snap;
    /* within a restriction (patient/ or granular scopes, Consents; the system's history
     * with any token): each version is shown only when it is itself within the token's
     * rights; an instance's resource must also be readable now (403 otherwise, whatever
     * exists) */
    int restricted = r->ri == RI_HISTORY_INSTANCE
                         ? r->ctx.principal != NULL
                         : rest_authz_restricted(r, r->ri == RI_HISTORY_SYSTEM
                                                        ? NULL : r->route.type->name);
    if (restricted && r->ri == RI_HISTORY_INSTANCE &&
        rest_authz_instance(r, rd, r->route.type->name, r->route.id) >= 0)
        return REST_DONE;
    if (r->ri == RI_HISTORY_INSTANCE) {
        /* 404 for a resource that never existed */
        store_version cur;
        int e = store_read(rd, r->ctx.tenant, r->route.type->name, r->route.id, &cur);
        if (e == ERR_NOTFOUND) {
            char msg[200];
            snprintf(msg, sizeof msg, "%s/%s is not known", r->route.type->name, r->route.id);
            return rest_send_error(r, 404, OO_NOT_FOUND, msg, NULL);
        }
    }
    store_hist_opts o = {
        .scope = r->ri == RI_HISTORY_INSTANCE ? STORE_SCOPE_INSTANCE
                 : r->ri == RI_HISTORY_TYPE   ? STORE_SCOPE_TYPE
                                              : STORE_SCOPE_SYSTEM,
        .tenant = r->ctx.tenant,
        .type = r->ri == RI_HISTORY_SYSTEM ? NULL : r->route.type->name,
        .id = r->ri == RI_HISTORY_INSTANCE ? r->route.id : NULL,
        .since = p.since,
        .at = p.at,
        .as_of_t = as_of ? as_of : 0,
    };
    int use_cursor = p.page_t != 0;
    if (use_cursor) {
        o.after_t = p.page_t;
        o.after_type = r->ri == RI_HISTORY_SYSTEM ? p.page_type
                       : r->ri == RI_HISTORY_TYPE ? r->route.type->name
                                                  : NULL;
        o.after_id = r->ri == RI_HISTORY_INSTANCE ? NULL : p.page_id;
    }
    store_iter *it = NULL;
    rc = store_history(rd, &o, &it);
    if (rc) {
        return rest_send_errcode(r, rc, "cannot read the history");
    }
    store_version *vs = arena_alloc(r->a, sizeof *vs * (p.count + 1));
    size_t n = 0;
    int more = 0;
    uint64_t skip = use_cursor ? 0 : p.offset;
    size_t bytes = 0;
    store_version v, last; /* last: the newest version looked at, for a capped page */
    size_t looked = 0;
    size_t scan_max = r->ctx.svc && r->ctx.svc->policy.history_scan_max
                          ? r->ctx.svc->policy.history_scan_max
                          : REST_HISTORY_SCAN_MAX;
    int capped = 0;
    while (vs && (rc = store_iter_next(it, &v)) == 0) {
        if (restricted) {
            if (looked++ == scan_max) {
                /* a page of what was looked at, and a link on from there: a token
                 * that sees little of a long history cannot make one request read all */
                more = capped = 1;
                break;
            }
            last = v;
            int in = rest_authz_version(r, &v);
            if (in < 0) {
                store_iter_close(it);
                return rest_send_errcode(r, in, "out of memory");
            }
            if (!in)
                continue; /* never counted: offsets and cursors see the same list */
        }
        if (skip) {
            skip--;
            continue;
        }
        if (n == p.count || (n && bytes + v.len > REST_MAX_RESPONSE)) {
            more = 1;
            break;
        }
        bytes += v.len;
        vs[n++] = v;
    }
    if (!vs || (rc && rc != ERR_NOTFOUND)) {
        store_iter_close(it);
        return rest_send_errcode(r, vs ? rc : ERR_NOMEM, "cannot read the history");
    }
    store_iter_close(it);

    const char *base = rest_base_url(r);
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, r->pretty);
    bundle_begin(&w, "history");
    if (p.since == STORE_NO_TIME && p.at == STORE_NO_TIME && as_of == snap &&
        r->ri != RI_HISTORY_INSTANCE && !restricted) { /* a count outside the rights: not said */
        uint64_t cur = 0, versions = 0;
        if (store_count(rd, r->ctx.tenant, r->ri == RI_HISTORY_SYSTEM ? NULL : r->route.type->name, &cur,
                        &versions) == 0)
            bundle_total(&w, versions);
    }
    bundle_links_begin(&w);
    store_version self_cursor = {.t = p.page_t, .type = p.page_type, .id = p.page_id};
    bundle_link(&w, "self",
             link_url(r, &p, p.page_at ? as_of : 0, p.offset, use_cursor ? &self_cursor : NULL));
    if (more)
        bundle_link(&w, "next", link_url(r, &p, as_of, p.offset + n,
                                         capped ? &last : n ? &vs[n - 1] : NULL));
    if (p.offset > 0)
        bundle_link(&w, "previous",
                 link_url(r, &p, as_of, p.offset > p.count ? p.offset - p.count : 0, NULL));
    bundle_links_end(&w);
    if (n) {
        bundle_entries_begin(&w);
        for (size_t i = 0; i < n; i++)
            put_entry(r, &w, base, &vs[i]);
        bundle_entries_end(&w);
    }
    bundle_end(&w);
    return rest_send_buf(r, 200, &b);
}
