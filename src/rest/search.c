/*
 * search.c -- GET [base]/Type (and POST [base]/Type/_search): the search-type
 * interaction, answered by the query engine (src/search/) over the index.
 *
 *   query string (+ form body) --srch_add per pair--> query    (400 on the first
 *   snapshot --srch_run--> one page of rn, the total            parameter that is
 *   rn --Aux--> id --store_read--> resources --> Bundle         wrong or unknown)
 *
 * Paging: the first page runs at the snapshot's t; its next link carries that t
 * (_page_t) and the offset of the next page (_page_offset), and later pages keep
 * to the resources created by then, so new resources never shift a client's pages.
 * Every link carries every applied parameter; parameters left out under
 * Prefer: handling=lenient are reported in an OperationOutcome entry (search.mode
 * outcome) and left out of the links. A page also ends early before
 * REST_MAX_RESPONSE bytes of resources (with at least one entry); its next link
 * continues after it.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "fhir/bundle.h"
#include "rest/handlers.h"
#include "rest/params.h"
#include "rest/response.h"
#include "search/search.h"
#include "store/store.h"

typedef struct collect {
    rest_req *r;
    srch_query *q;
    int lenient;
    int failed;
    srch_error e;
} collect;

static int on_param(void *ctx, const char *k, const char *v)
{
    collect *c = ctx;
    int rc = srch_add(c->q, c->r->a, k, v, c->lenient, rest_base_url(c->r), &c->e);
    if (rc == ERR_NOMEM) {
        snprintf(c->e.msg, sizeof c->e.msg, "out of memory");
        c->e.status = 503;
        c->e.oo_code = OO_TRANSIENT;
    }
    if (rc) {
        c->failed = 1;
        return 1;
    }
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)(ch | 32);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* application/x-www-form-urlencoded: k=v&k=v with %XX and '+' for space. */
static void form_params(collect *c, const char *body, size_t len)
{
    arena *a = c->r->a;
    char *s = arena_alloc(a, len + 1);
    if (!s) {
        on_param(c, "", NULL);
        return;
    }
    size_t o = 0;
    char *key = s, *val = NULL;
    for (size_t i = 0; i <= len && !c->failed; i++) {
        char ch = i < len ? body[i] : '&';
        if (ch == '&') {
            s[o++] = 0;
            if (*key)
                on_param(c, key, val ? val : "");
            key = s + o;
            val = NULL;
        } else if (ch == '=' && !val) {
            s[o++] = 0;
            val = s + o;
        } else if (ch == '+') {
            s[o++] = ' ';
        } else if (ch == '%') {
            int h = i + 2 < len ? hexval(body[i + 1]) : -1;
            int l = i + 2 < len ? hexval(body[i + 2]) : -1;
            if (h < 0 || l < 0) {
                snprintf(c->e.msg, sizeof c->e.msg, "malformed %%-escape in the form body");
                c->e.status = 400;
                c->e.oo_code = OO_INVALID;
                c->failed = 1;
                return;
            }
            s[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            s[o++] = ch;
        }
    }
}

static const char *link_url(rest_req *r, const srch_query *q, uint64_t page_t, uint64_t offset)
{
    buf b = BUF_INIT;
    if (r->route.kind == RR_COMPARTMENT)
        buf_printf(&b, "%s/%s/%s/%s?%s", rest_base_url(r), r->route.comp_type->name,
                   r->route.id, q->type, buf_cstr(&q->applied));
    else
        buf_printf(&b, "%s/%s?%s", rest_base_url(r), q->type, buf_cstr(&q->applied));
    if (page_t)
        buf_printf(&b, "%s_page_t=%llu&_page_offset=%llu", q->applied.len ? "&" : "",
                   (unsigned long long)page_t, (unsigned long long)offset);
    const char *out = b.err ? NULL : arena_strndup(r->a, b.data, b.len);
    buf_free(&b);
    return out ? out : "";
}

static void put_ignored_outcome(jw *w, const srch_query *q)
{
    bundle_entry_begin(w, NULL);
    jw_key(w, "resource");
    buf d = BUF_INIT;
    buf_printf(&d, "search parameters not applied (unknown or not supported): %s",
               buf_cstr(&q->ignored));
    oo_write_one(w, OO_WARNING, OO_NOT_SUPPORTED, buf_cstr(&d), NULL);
    buf_free(&d);
    bundle_entry_search_mode(w, "outcome");
    bundle_entry_end(w);
}

int rest_search(rest_req *r)
{
    char pref[32];
    const char *ph = rest_header(r, "Prefer");
    int lenient = ph && rest_prefer_get(ph, "handling", pref, sizeof pref) == 1 &&
                  !strcmp(pref, "lenient");
    srch_query q;
    srch_init(&q, r->route.type->name);
    collect c = {.r = r, .q = &q, .lenient = lenient};
    if (r->route.kind == RR_COMPARTMENT) {
        if (!rest_id_valid(r->route.id, r->route.id_len)) {
            srch_done(&q);
            return rest_send_error(r, 400, OO_INVALID, "invalid compartment id in the URL",
                                   NULL);
        }
        int crc = srch_add_compartment(&q, r->a, r->route.comp_type->name, r->route.id, &c.e);
        if (crc) {
            srch_done(&q);
            return crc == ERR_NOMEM ? rest_send_errcode(r, crc, "out of memory")
                                    : rest_send_error(r, 400, (oo_code)c.e.oo_code, c.e.msg,
                                                      NULL);
        }
    }
    rest_query_each(r, on_param, &c);
    if (!c.failed && r->method == RM_POST && r->body.len)
        form_params(&c, r->body.data, r->body.len);
    if (c.failed) {
        srch_done(&q);
        return rest_send_error(r, c.e.status ? c.e.status : 400,
                               (oo_code)(c.e.oo_code ? c.e.oo_code : OO_INVALID), c.e.msg, NULL);
    }
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc) {
        srch_done(&q);
        return rest_send_errcode(r, rc, "cannot read the store");
    }
    uint64_t snap = store_reader_t(rd);
    uint64_t page_t = q.page_t ? q.page_t : snap;
    if (q.page_t > snap) {
        srch_done(&q);
        return rest_send_error(r, 400, OO_INVALID,
                               "_page_t names a state the server has not reached", NULL);
    }
    q.page_t = page_t;
    srch_result res;
    srch_error e = {0};
    rc = srch_run(&q, rd, r->a, r->ctx.tenant, &res, &e);
    if (rc) {
        srch_done(&q);
        if (rc == ERR_LIMIT)
            return rest_send_error(r, 400, OO_TOO_COSTLY, e.msg, NULL);
        return rest_send_errcode(r, rc, e.msg[0] ? e.msg : "the search failed");
    }
    const char *base = rest_base_url(r);
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, r->pretty);
    bundle_begin(&w, "searchset");
    if (q.total && res.has_total)
        bundle_total(&w, res.total);
    /* which rows fit the page, before anything is written: the links depend on it */
    store_version *vs = arena_alloc(r->a, sizeof *vs * (res.n ? res.n : 1));
    if (!vs) {
        srch_done(&q);
        buf_free(&b);
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    }
    size_t bytes = 0, shown = 0, used = 0;
    for (; used < res.n; used++) {
        const char *id = srch_rn_id(rd, r->a, r->ctx.tenant, q.type, res.rn[used]);
        store_version v;
        if (!id || store_read(rd, r->ctx.tenant, q.type, id, &v))
            continue; /* cannot happen within one snapshot; never a broken entry */
        if (shown && bytes + v.len > REST_MAX_RESPONSE)
            break;
        bytes += v.len;
        vs[shown++] = v;
    }
    int more = res.more || used < res.n;
    bundle_links_begin(&w);
    bundle_link(&w, "self", link_url(r, &q, q.page_offset ? page_t : 0, q.page_offset));
    if (more)
        bundle_link(&w, "next", link_url(r, &q, page_t, q.page_offset + used));
    if (q.page_offset) {
        uint64_t prev = q.page_offset > q.count ? q.page_offset - q.count : 0;
        bundle_link(&w, "previous", link_url(r, &q, page_t, prev));
    }
    bundle_links_end(&w);
    if (shown || q.nignored) {
        bundle_entries_begin(&w);
        for (size_t i = 0; i < shown; i++) {
            buf u = BUF_INIT;
            buf_printf(&u, "%s/%s/%s", base, vs[i].type, vs[i].id);
            bundle_entry_begin(&w, buf_cstr(&u));
            buf_free(&u);
            jw_key(&w, "resource");
            rest_write_resource(r, &w, vs[i].bytes, vs[i].len);
            bundle_entry_search_mode(&w, "match");
            bundle_entry_end(&w);
        }
        if (q.nignored)
            put_ignored_outcome(&w, &q);
        bundle_entries_end(&w);
    }
    bundle_end(&w);
    srch_done(&q);
    return rest_send_buf(r, 200, &b);
}
