/*
 * page.c -- one page of a searchset Bundle (page.h): collect the resources of the
 * engine's results and of the includes, write the Bundle with its links.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "fhir/bundle.h"
#include "fhirpath/spcache.h"
#include "index/params.h"
#include "rest/handlers.h"
#include "rest/page.h"
#include "rest/params.h"
#include "rest/response.h"

static int page_grow(rest_req *r, rest_page *pg, size_t need)
{
    if (pg->n + need <= pg->cap)
        return 0;
    size_t cap = pg->n + need + 8;
    store_version *v = arena_realloc(r->a, pg->v, sizeof *v * pg->cap, sizeof *v * cap);
    if (!v)
        return -1;
    pg->v = v;
    pg->cap = cap;
    return 0;
}

int rest_page_add(rest_req *r, store_reader *rd, const char *type, const srch_result *res,
                  rest_page *pg)
{
    if (page_grow(r, pg, res->n))
        return -1;
    for (size_t i = 0; i < res->n; i++) {
        const char *id = srch_rn_id(rd, r->a, r->ctx.tenant, type, res->rn[i]);
        store_version v;
        /* a later page after writes shows the versions of the first page's snapshot */
        if (!id || (res->as_of ? srch_read_as_of(rd, r->ctx.tenant, type, id, res->as_of, &v)
                               : store_read(rd, r->ctx.tenant, type, id, &v)))
            continue; /* cannot happen within one snapshot; never a broken entry */
        if (pg->n && pg->bytes + v.len > REST_MAX_RESPONSE)
            return 1;
        pg->bytes += v.len;
        pg->v[pg->n++] = v;
        pg->used++;
    }
    return 0;
}

int rest_page_includes(rest_req *r, store_reader *rd, const srch_query *q, rest_page *pg,
                       rest_page_keep keep, void *ctx, srch_error *e)
{
    pg->nmatch = pg->n;
    if (!q->ninc || !pg->n)
        return 0;
    srch_ref *refs = arena_alloc(r->a, sizeof *refs * pg->n), *inc;
    if (!refs)
        return ERR_NOMEM;
    for (size_t i = 0; i < pg->n; i++)
        refs[i] = (srch_ref){pg->v[i].type, pg->v[i].id};
    size_t ninc;
    int rc = srch_includes(q, rd, r->a, r->ctx.tenant, refs, pg->n, &inc, &ninc, e);
    if (rc)
        return rc;
    if (page_grow(r, pg, ninc))
        return ERR_NOMEM;
    for (size_t i = 0; i < ninc; i++) {
        store_version v;
        if (store_read(rd, r->ctx.tenant, inc[i].type, inc[i].id, &v))
            continue; /* found in this snapshot a moment ago: cannot happen */
        if (keep && !keep(ctx, rd, &v))
            continue;
        pg->v[pg->n++] = v;
    }
    return 0;
}

void rest_page_path(rest_req *r, const char *type, buf *b)
{
    const char *base = rest_base_url(r);
    switch (r->route.kind) {
    case RR_COMPARTMENT:
        buf_printf(b, "%s/%s/%s/%s", base, r->route.comp_type->name, r->route.id, type);
        break;
    case RR_BASE:
        buf_puts(b, base);
        break;
    case RR_OPERATION:
        buf_puts(b, base);
        if (r->route.type)
            buf_printf(b, "/%s", r->route.type->name);
        if (r->route.id)
            buf_printf(b, "/%s", r->route.id);
        buf_printf(b, "/$%s", r->route.op);
        break;
    default:
        buf_printf(b, "%s/%s", base, type);
    }
}

const char *rest_page_link(rest_req *r, const char *type, const buf *applied, uint64_t page_t,
                           uint64_t offset, const char *extra)
{
    buf b = BUF_INIT;
    rest_page_path(r, type, &b);
    buf_printf(&b, "?%s", buf_cstr(applied));
    if (page_t)
        buf_printf(&b, "%s_page_t=%llu&_page_offset=%llu%s%s", applied->len ? "&" : "",
                   (unsigned long long)page_t, (unsigned long long)offset, extra ? "&" : "",
                   extra ? extra : "");
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

static void note_param(rest_req *r, store_reader *rd, const fhir_search_param *sp, buf *names)
{
    const fp_sp_custom *cu = sp ? fp_sp_custom_of(r->ctx.spc, sp) : NULL;
    if (!cu || idx_reindex_complete(rd, r->ctx.tenant, cu))
        return;
    char one[160];
    snprintf(one, sizeof one, "%s (%s)", cu->def.code, cu->base);
    if (names->len && strstr(buf_cstr(names), one))
        return;
    buf_printf(names, "%s%s", names->len ? ", " : "", one);
}

static void note_query(rest_req *r, store_reader *rd, const srch_query *q, buf *names,
                       unsigned depth)
{
    for (size_t i = 0; i < q->nc; i++) {
        note_param(r, rd, q->c[i].sp, names);
        note_param(r, rd, q->c[i].has_sp, names);
        if (q->c[i].sub && depth < 16)
            note_query(r, rd, q->c[i].sub, names, depth + 1);
    }
    for (size_t i = 0; i < q->nsort; i++)
        note_param(r, rd, q->sort[i].sp, names);
    for (size_t i = 0; i < q->ninc; i++)
        note_param(r, rd, q->inc[i].sp, names);
}

void rest_page_note_reindex(rest_req *r, store_reader *rd, const srch_query *q, rest_page *pg)
{
    const fp_sp_custom *cs;
    if (!fp_sp_customs(r->ctx.spc, &cs))
        return;
    buf names = BUF_INIT;
    note_query(r, rd, q, &names, 0);
    if (names.len) {
        buf m = BUF_INIT;
        buf_printf(&m,
                   "the reindex of search parameter%s %s is not complete: resources stored "
                   "before %s defined may be missing from this result (progress: GET "
                   "[base]/$reindex)",
                   strchr(buf_cstr(&names), ',') ? "s" : "", buf_cstr(&names),
                   strchr(buf_cstr(&names), ',') ? "they were" : "it was");
        pg->warning = m.err ? NULL : arena_strndup(r->a, m.data, m.len);
        buf_free(&m);
    }
    buf_free(&names);
}

static void put_warning_outcome(jw *w, const char *msg)
{
    bundle_entry_begin(w, NULL);
    jw_key(w, "resource");
    oo_write_one(w, OO_WARNING, OO_INCOMPLETE, msg, NULL);
    bundle_entry_search_mode(w, "outcome");
    bundle_entry_end(w);
}

int rest_page_send(rest_req *r, const srch_query *q, const rest_page *pg, const char *self,
                   const char *next, const char *previous)
{
    const char *base = rest_base_url(r);
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, r->pretty);
    bundle_begin(&w, "searchset");
    if (q->total && pg->has_total)
        bundle_total(&w, pg->total);
    bundle_links_begin(&w);
    bundle_link(&w, "self", self);
    if (next)
        bundle_link(&w, "next", next);
    if (previous)
        bundle_link(&w, "previous", previous);
    bundle_links_end(&w);
    if (pg->n || q->nignored || pg->warning) {
        bundle_entries_begin(&w);
        for (size_t i = 0; i < pg->n; i++) {
            buf u = BUF_INIT;
            buf_printf(&u, "%s/%s/%s", base, pg->v[i].type, pg->v[i].id);
            bundle_entry_begin(&w, buf_cstr(&u));
            buf_free(&u);
            jw_key(&w, "resource");
            rest_write_resource(r, &w, pg->v[i].bytes, pg->v[i].len);
            bundle_entry_search_mode(&w, i < pg->nmatch ? "match" : "include");
            bundle_entry_end(&w);
        }
        if (q->nignored)
            put_ignored_outcome(&w, q);
        if (pg->warning)
            put_warning_outcome(&w, pg->warning);
        bundle_entries_end(&w);
    }
    bundle_end(&w);
    return rest_send_buf(r, 200, &b);
}

int rest_search_failed(rest_req *r, int rc, const srch_error *e)
{
    if (rc == ERR_LIMIT)
        return rest_send_error(r, 400, OO_TOO_COSTLY, e->msg, NULL);
    if (rc == ERR_NOMEM)
        return rest_send_errcode(r, rc, "out of memory");
    if (e->status == 400 || e->status == 403 || (rc == ERR_GONE && e->status == 410))
        return rest_send_error(r, e->status, (oo_code)e->oo_code, e->msg, NULL);
    return rest_send_errcode(r, rc, e->msg[0] ? e->msg : "the search failed");
}

int rest_parse_types(arena *a, const char *s, const char ***out, size_t *n, char *msg,
                     size_t cap)
{
    const fhir_type *const *all;
    size_t nall = fhir_resource_types(&all);
    const char **types = arena_alloc(a, sizeof *types * (nall + 1));
    *n = 0;
    if (!types)
        return ERR_NOMEM;
    for (const char *p = s; *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        const fhir_type *t = fhir_resource_type(p, len);
        if (!t) {
            snprintf(msg, cap, "_type: '%.*s' is not a resource type",
                     (int)(len > 60 ? 60 : len), p);
            return ERR_INVALID;
        }
        if (*n < nall)
            types[(*n)++] = t->name;
        p = c ? c + 1 : p + len;
    }
    if (!*n) {
        snprintf(msg, cap, "_type names no type");
        return ERR_INVALID;
    }
    *out = types;
    return 0;
}

int rest_is_lenient(rest_req *r)
{
    char pref[32];
    const char *ph = rest_header(r, "Prefer");
    return ph && rest_prefer_get(ph, "handling", pref, sizeof pref) == 1 &&
           !strcmp(pref, "lenient");
}
