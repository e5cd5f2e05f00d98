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
#include "base/num.h"
#include "fhir/bundle.h"
#include "rest/authz.h"
#include "rest/handlers.h"
#include "rest/page.h"
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

/* application/x-www-form-urlencoded: k=v&k=v with %XX and '+' for space. */
static void form_params(collect *c, const char *body, size_t len)
{
    int rc = rest_form_each(c->r->a, body, len, on_param, c);
    if (rc == ERR_NOMEM) {
        on_param(c, "", NULL);
    } else if (rc < 0) {
        snprintf(c->e.msg, sizeof c->e.msg, "malformed %%-escape in the form body");
        c->e.status = 400;
        c->e.oo_code = OO_INVALID;
        c->failed = 1;
    }
}

/* Send a page of this search with its links: self (with the cursor on a later page),
 * next while matches remain, previous on a later page. */
static int send_page(rest_req *r, const char *type, const srch_query *q, const buf *applied,
                     const rest_page *pg, uint64_t page_t)
{
    const char *self = rest_page_link(r, type, applied, q->page_offset ? page_t : 0,
                                      q->page_offset, NULL);
    const char *next = NULL, *prev = NULL;
    if (pg->more && !q->summary_count && q->count) /* a count or _count=0 has no pages */
        next = rest_page_link(r, type, applied, page_t, q->page_offset + pg->used, NULL);
    if (q->page_offset)
        prev = rest_page_link(r, type, applied, page_t,
                              q->page_offset > q->count ? q->page_offset - q->count : 0, NULL);
    return rest_page_send(r, q, pg, self, next, prev);
}

/* ---- GET [base]?_type=A,B&...: the same query over several types ---------------- */

typedef struct kv {
    const char *k, *v;
} kv;

typedef struct kvlist {
    arena *a;
    kv *p;
    size_t n, cap;
    int oom;
} kvlist;

static int collect_kv(void *ctx, const char *k, const char *v)
{
    kvlist *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        kv *p = arena_realloc(l->a, l->p, sizeof *p * l->cap, sizeof *p * cap);
        if (!p) {
            l->oom = 1;
            return 1;
        }
        l->p = p;
        l->cap = cap;
    }
    l->p[l->n++] = (kv){k, v ? v : ""};
    return 0;
}

static int search_system(rest_req *r)
{
    kvlist l = {.a = r->a};
    rest_query_each(r, collect_kv, &l);
    if (l.oom)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    const char *types_s = NULL;
    for (size_t i = 0; i < l.n; i++)
        if (!strcmp(l.p[i].k, "_type")) {
            if (types_s)
                return rest_send_error(r, 400, OO_INVALID, "_type given twice: list the types "
                                       "in one _type, separated by commas", NULL);
            types_s = l.p[i].v;
        }
    /* the types: those of _type, or every resource type */
    const char **types;
    size_t nt = 0;
    if (types_s) {
        char msg[160];
        int trc = rest_parse_types(r->a, types_s, &types, &nt, msg, sizeof msg);
        if (trc)
            return trc == ERR_NOMEM ? rest_send_errcode(r, trc, "out of memory")
                                    : rest_send_error(r, 400, OO_INVALID, msg, "_type");
    } else {
        const fhir_type *const *all;
        size_t nall = fhir_resource_types(&all);
        if (!(types = arena_alloc(r->a, sizeof *types * nall)))
            return rest_send_errcode(r, ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < nall; i++)
            types[nt++] = all[i]->name;
    }
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the store");
    uint64_t snap = store_reader_t(rd);
    int lenient = rest_is_lenient(r);
    rest_page pg = {0};
    srch_query first;
    buf applied = BUF_INIT;
    uint64_t page_t = 0, offset = 0, start = 0;
    unsigned remaining = 0, count = 0;
    for (size_t ti = 0; ti < nt; ti++) {
        srch_query q;
        srch_init(&q, types[ti]);
        q.spc = r->ctx.spc; /* the parameters of the snapshot, custom ones too */
        srch_error e = {0};
        for (size_t i = 0; i < l.n && !rc; i++) {
            if (!strcmp(l.p[i].k, "_type"))
                continue;
            rc = srch_add(&q, r->a, l.p[i].k, l.p[i].v, lenient, rest_base_url(r), &e);
        }
        if (!rc && (q.nsort || q.ninc))
            rc = ERR_UNSUPPORTED,
            snprintf(e.msg, sizeof e.msg, "%s is not supported in a search over several types",
                     q.nsort ? "_sort" : "_include or _revinclude"),
            e.status = 400, e.oo_code = OO_NOT_SUPPORTED;
        if (rc) {
            if (ti && e.status == 400 && !types_s) {
                /* without _type only the parameters every type has are allowed */
                snprintf(e.msg, sizeof e.msg,
                         "a search of every type takes only parameters that every type has "
                         "(_id, _lastUpdated, _tag, _profile, _security, _source): name the "
                         "types with _type");
            }
            srch_done(&q);
            buf_free(&applied);
            if (ti)
                srch_done(&first);
            return rest_search_failed(r, rc, &e);
        }
        if (ti == 0) {
            if (q.page_t > snap) {
                srch_done(&q);
                return rest_send_error(r, 400, OO_INVALID,
                                       "_page_t names a state the server has not reached", NULL);
            }
            page_t = q.page_t ? q.page_t : snap;
            start = offset = q.page_offset;
            count = remaining = q.count;
            if (types_s)
                buf_printf(&applied, "_type=%s%s", types_s, q.applied.len ? "&" : "");
            buf_puts(&applied, buf_cstr(&q.applied));
        }
        /* the token's view of this type: without _type, a type it may not search is
         * left out (the search of every type shows what the token may see) */
        char am[400];
        int az = rest_authz_restrict(r, &q, am, sizeof am);
        if (az == ERR_NOMEM || az == REST_AUTHZ_NOT_YET ||
            (az == REST_AUTHZ_FORBIDDEN && types_s)) {
            srch_done(&q);
            buf_free(&applied);
            if (ti)
                srch_done(&first);
            return az == ERR_NOMEM ? rest_send_errcode(r, az, "out of memory")
                   : rest_send_error(r, 403, az == REST_AUTHZ_NOT_YET ? OO_NOT_SUPPORTED
                                                                      : OO_FORBIDDEN, am, NULL);
        }
        if (az == REST_AUTHZ_FORBIDDEN) {
            if (ti == 0)
                first = q;
            else
                srch_done(&q);
            continue;
        }
        /* this type's slice of the concatenated result */
        q.page_t = page_t;
        q.page_offset = offset;
        q.count = remaining;
        srch_result res;
        q.spc = r->ctx.spc;
        q.base_url = rest_base_url(r);
        rc = srch_run(&q, rd, r->a, r->ctx.tenant, &res, &e);
        if (rc) {
            srch_done(&q);
            buf_free(&applied);
            if (ti)
                srch_done(&first);
            return rest_search_failed(r, rc, &e);
        }
        pg.total += res.total;
        pg.has_total = 1;
        if (!pg.warning)
            rest_page_note_reindex(r, rd, &q, &pg);
        offset = offset > res.total ? offset - res.total : 0;
        if (remaining) {
            int full = rest_page_add(r, rd, types[ti], &res, &pg);
            remaining = full ? 0 : remaining - (unsigned)res.n;
        }
        if (ti == 0)
            first = q;
        else
            srch_done(&q);
    }
    /* the page as requested; more pages when matches remain after it */
    srch_query shown = first;
    shown.page_offset = start;
    shown.count = count;
    pg.more = pg.total > start + pg.used;
    pg.nmatch = pg.n;
    rc = send_page(r, "", &shown, &applied, &pg, page_t);
    buf_free(&applied);
    srch_done(&first);
    return rc;
}

int rest_search(rest_req *r)
{
    if (r->route.kind == RR_BASE)
        return search_system(r);
    int lenient = rest_is_lenient(r);
    /* the snapshot first: its parameter set (custom ones too) is what the query names */
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the store");
    srch_query q;
    srch_init(&q, r->route.type->name);
    q.spc = r->ctx.spc;
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
    if (rest_authz_search(r, &q) >= 0) {
        srch_done(&q);
        return REST_DONE;
    }
    uint64_t snap = store_reader_t(rd);
    uint64_t page_t = q.page_t ? q.page_t : snap;
    if (q.page_t > snap) {
        srch_done(&q);
        return rest_send_error(r, 400, OO_INVALID,
                               "_page_t names a state the server has not reached", NULL);
    }
    q.page_t = page_t;
    q.spc = r->ctx.spc;
    q.base_url = rest_base_url(r);
    srch_result res;
    srch_error e = {0};
    rc = srch_run(&q, rd, r->a, r->ctx.tenant, &res, &e);
    if (rc) {
        srch_done(&q);
        return rest_search_failed(r, rc, &e);
    }
    rest_page pg = {.total = res.total, .has_total = res.has_total};
    rest_page_note_reindex(r, rd, &q, &pg);
    int full = rest_page_add(r, rd, q.type, &res, &pg);
    if (full < 0) {
        srch_done(&q);
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    }
    pg.more = res.more || full;
    if ((rc = rest_page_includes(r, rd, &q, &pg, NULL, NULL, &e))) {
        srch_done(&q);
        return rest_search_failed(r, rc, &e);
    }
    rc = send_page(r, q.type, &q, &q.applied, &pg, page_t);
    srch_done(&q);
    return rc;
}
