/*
 * reindex.c -- $reindex: the state of the reindex of custom search parameters (GET) and
 * a new reindex of them (POST), at the system level (every custom parameter), the type
 * level (those of the type) and on one SearchParameter (those it defines).
 *
 *   GET  [base]/$reindex                       200 Parameters: one `job` per parameter
 *   POST [base]/Observation/$reindex           202 the same, Content-Location: the GET
 *   POST [base]/SearchParameter/x/$reindex
 *
 * A POST deletes the states of the chosen parameters in one commit; the reindex thread
 * (src/index/reindex.c) then runs them again from the first resource, and a batch it
 * had begun before cannot commit (it is conditional on the state it read). The
 * parameters of the R4 model need no reindex: every write keeps their entries, and a
 * start brings data of an older layout up to date (docs/SEARCH.md section 6).
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "fhirpath/spcache.h"
#include "index/index.h"
#include "index/params.h"
#include "index/reindex.h"
#include "rest/ops/ops.h"
#include "rest/write.h"

typedef struct rx {
    rest_commit commit;
    store_extra *x;
    size_t n, cap;
} rx;

static int refuse_param(void *ctx, const char *key, const char *value)
{
    (void)value;
    if (!strcmp(key, "_format") || !strcmp(key, "_pretty"))
        return 0;
    if (!*(const char **)ctx)
        *(const char **)ctx = key;
    return 0;
}

/* Does custom cu belong to what the URL names? */
static int chosen(const rest_req *r, const fp_sp_custom *cu)
{
    if (!r->route.type)
        return 1;
    if (!r->route.id)
        return !strcmp(cu->base, r->route.type->name);
    return strlen(cu->id) == r->route.id_len && !memcmp(cu->id, r->route.id, r->route.id_len);
}

static void part_str(jw *w, const char *name, const char *kind, const char *v)
{
    jw_obj(w);
    jw_key(w, "name");
    jw_str(w, name);
    jw_key(w, kind);
    jw_str(w, v);
    jw_end(w);
}

static void part_int(jw *w, const char *name, uint64_t v)
{
    jw_obj(w);
    jw_key(w, "name");
    jw_str(w, name);
    jw_key(w, "valueInteger");
    jw_int(w, (int64_t)v);
    jw_end(w);
}

/* The Parameters of every chosen parameter's state (queued: restarted by this POST). */
static int send_status(rest_req *r, unsigned status, int queued)
{
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the store");
    const fp_sp_custom *cs;
    size_t ncs = fp_sp_customs(r->ctx.spc, &cs);
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, r->pretty);
    jw_obj(&w);
    jw_key(&w, "resourceType");
    jw_str(&w, "Parameters");
    jw_key(&w, "parameter");
    jw_arr(&w);
    size_t shown = 0;
    for (size_t i = 0; i < ncs; i++) {
        if (!chosen(r, &cs[i]))
            continue;
        int complete;
        uint64_t done, total = 0, versions;
        idx_reindex_state(rd, r->ctx.tenant, &cs[i], &complete, &done);
        store_count(rd, r->ctx.tenant, cs[i].base, &total, &versions);
        if (queued)
            complete = 0, done = 0;
        char ref[120];
        snprintf(ref, sizeof ref, "SearchParameter/%s", cs[i].id);
        jw_obj(&w);
        jw_key(&w, "name");
        jw_str(&w, "job");
        jw_key(&w, "part");
        jw_arr(&w);
        jw_obj(&w);
        jw_key(&w, "name");
        jw_str(&w, "searchParameter");
        jw_key(&w, "valueReference");
        jw_obj(&w);
        jw_key(&w, "reference");
        jw_str(&w, ref);
        jw_end(&w);
        jw_end(&w);
        part_str(&w, "code", "valueCode", cs[i].def.code);
        part_str(&w, "base", "valueCode", cs[i].base);
        part_str(&w, "status", "valueCode",
                 complete ? "complete" : done ? "running" : "queued");
        part_int(&w, "processed", complete ? total : done);
        part_int(&w, "total", total);
        jw_end(&w);
        jw_end(&w);
        shown++;
    }
    if (!shown)
        part_str(&w, "note", "valueString",
                 "no custom search parameter applies here; the R4 model's parameters need no "
                 "reindex (every write keeps their entries)");
    jw_end(&w);
    jw_end(&w);
    buf loc = BUF_INIT;
    buf_printf(&loc, "%s/$reindex", rest_base_url(r));
    rest_reply rep = {.status = status, .content_location = status == 202 ? buf_cstr(&loc) : NULL};
    rest_reply_take(&rep, &b);
    rc = rest_send(r, &rep);
    buf_free(&loc);
    return rc;
}

static int reindex_resume(rest_req *r)
{
    rx *x = r->hctx;
    if (x->commit.rc)
        return rest_send_errcode(r, x->commit.rc, "the reindex could not be started");
    if (r->ctx.svc)
        idx_reindex_kick(r->ctx.svc->reindex, r->ctx.tenant, rest_base_url(r));
    return send_status(r, 202, 1);
}

int rest_op_reindex(rest_req *r)
{
    const char *bad = NULL;
    rest_query_each(r, refuse_param, &bad);
    if (bad) {
        char msg[200];
        snprintf(msg, sizeof msg, "$reindex takes no parameter '%.80s'", bad);
        return rest_send_error(r, 400, OO_NOT_SUPPORTED, msg, NULL);
    }
    if (r->method == RM_POST && r->body.len) {
        /* an empty Parameters is all it accepts */
        json_val *root;
        if (json_parse(r->a, r->body.data, r->body.len, 0, &root, NULL) ||
            root->type != JSON_OBJECT || !json_get_str(root, "resourceType") ||
            strcmp(json_get_str(root, "resourceType"), "Parameters") ||
            (json_get(root, "parameter") && json_get(root, "parameter")->n))
            return rest_send_error(r, 400, OO_NOT_SUPPORTED,
                                   "$reindex takes no parameters (an empty body, or a "
                                   "Parameters resource without any)",
                                   NULL);
    }
    if (r->route.id && strcmp(r->route.type->name, "SearchParameter"))
        return rest_send_error(r, 400, OO_NOT_SUPPORTED,
                               "$reindex on an instance is defined on a SearchParameter only",
                               NULL);
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the store");
    if (r->route.id) {
        store_version v;
        char id[REST_MAX_ID + 1];
        snprintf(id, sizeof id, "%.*s", (int)r->route.id_len, r->route.id);
        if (store_read(rd, r->ctx.tenant, "SearchParameter", id, &v)) {
            char msg[160];
            snprintf(msg, sizeof msg, "SearchParameter/%s is not known", id);
            return rest_send_error(r, 404, OO_NOT_FOUND, msg, NULL);
        }
        const fp_sp_custom *cs;
        size_t ncs = fp_sp_customs(r->ctx.spc, &cs), mine = 0;
        for (size_t i = 0; i < ncs; i++)
            mine += chosen(r, &cs[i]);
        if (!mine)
            return rest_send_error(r, 422, OO_PROCESSING,
                                   "this SearchParameter defines no searchable parameter (not "
                                   "active, or a parameter of the R4 model): nothing to reindex",
                                   NULL);
    }
    if (r->method != RM_POST)
        return send_status(r, 200, 0);
    rx *x = arena_zalloc(r->a, sizeof *x);
    if (!x)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    const fp_sp_custom *cs;
    size_t ncs = fp_sp_customs(r->ctx.spc, &cs);
    for (size_t i = 0; i < ncs && !rc; i++) {
        if (!chosen(r, &cs[i]))
            continue;
        uint8_t k[IDX_REINDEX_KEY_LEN];
        size_t kn = idx_reindex_key(k, r->ctx.tenant, cs[i].tag);
        rc = idx_extra_append(r->a, &x->x, &x->n, &x->cap, STORE_DB_AUX, 1, k, kn, NULL, 0, 0,
                              0, 0, 0);
    }
    if (rc)
        return rest_send_errcode(r, rc, "out of memory");
    if (!x->n)
        return send_status(r, 200, 0);
    rest_snapshot_end(r);
    r->hctx = x;
    x->commit.req.extras = x->x;
    x->commit.req.nextra = x->n;
    return rest_commit_submit(r, &x->commit, 1, reindex_resume);
}
