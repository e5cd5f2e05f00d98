/*
 * write.c -- the one write pipeline (its shape is drawn in write.h).
 *
 * The request thread does all the JSON work: parse (strict FHIR JSON), check
 * the resource against the URL and the model, and build the final bytes with
 * id, meta.versionId and meta.lastUpdated spliced in. Only then is the write
 * handed to the store, whose single writer thread just checks the expected
 * version and appends. The connection is suspended meanwhile and the answer is
 * sent once the commit is durable:
 *
 *   body --json_parse--> tree --checks--> plan --> rest_commit_submit
 *                                                        | suspend
 *   201/200/204 + ETag + Location <-- classify <-- done callback (after fsync)
 *
 * Single writes to an existing id (update, patch, delete) first pass the
 * per-resource gate (gate.h), so concurrent writers of one resource take turns
 * instead of overtaking each other.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/err.h"
#include "base/time.h"
#include "fhir/validate.h"
#include "fhirpath/invariants.h"
#include "fhirpath/spcache.h"
#include "index/index.h"
#include "index/params.h"
#include "index/reindex.h"
#include "profile/profile.h"
#include "auth/auth.h"
#include "rest/audit_rest.h"
#include "rest/authz.h"
#include "rest/consent.h"
#include "rest/gate.h"
#include "rest/params.h"
#include "rest/response.h"
#include "rest/write.h"
#include "search/search.h"

/* ---- parsing the request -------------------------------------------------------- */

int rest_parse_resource(rest_req *r, json_val **root)
{
    char msg[200];
    json_error je;
    memset(&je, 0, sizeof je);
    if (r->body.len == 0)
        return rest_send_error(r, 400, OO_INVALID, "the request has no body: send a resource",
                               NULL),
               1;
    int rc = json_parse(r->a, r->body.data, r->body.len, JSON_FHIR, root, &je);
    if (rc)
        return rest_send_json_error(r, rc, &je), 1;
    const json_val *v = *root;
    if (v->type != JSON_OBJECT)
        return rest_send_error(r, 400, OO_STRUCTURE, "the body must be a JSON object (a resource)",
                               NULL),
               1;
    const json_val *rt = json_get(v, "resourceType");
    if (!rt || rt->type != JSON_STRING)
        return rest_send_error(r, 400, OO_REQUIRED,
                               "the resource has no resourceType string", "resourceType"),
               1;
    const char *want = r->route.type->name;
    if (strcmp(rt->u.s, want) != 0) {
        snprintf(msg, sizeof msg,
                 "resourceType '%.64s' does not match the resource type of the URL '%s'",
                 rt->u.s, want);
        return rest_send_error(r, 400, OO_INVALID, msg, "resourceType"), 1;
    }
    /* structural validation against the model: every issue in one outcome */
    oo o;
    oo_init(&o, r->a);
    rc = rest_validate(r->a, *root, want, rest_validation_of(&r->ctx), &o);
    if (rc == 0)
        return 0;
    if (rc == ERR_NOMEM)
        return rest_send_errcode(r, rc, "out of memory"), 1;
    return rest_send_outcome(r, 400, &o), 1;
}

int rest_validation_parse(const char *s, rest_validation *out)
{
    static const char *const names[] = {[REST_VALIDATE_FULL] = "full",
                                        [REST_VALIDATE_STRUCTURE] = "structure",
                                        [REST_VALIDATE_OFF] = "off"};
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(s, names[i])) {
            *out = (rest_validation)i;
            return 0;
        }
    return -1;
}

rest_validation rest_validation_of(const rest_ctx *ctx)
{
    return ctx && ctx->svc ? ctx->svc->policy.validate : REST_VALIDATE_FULL;
}

int rest_validate(arena *a, const json_val *root, const char *type, rest_validation level,
                  oo *o)
{
    if (level == REST_VALIDATE_OFF)
        return 0;
    int rc = val_resource(a, root, type, o);
    if (rc || level == REST_VALIDATE_STRUCTURE)
        return rc;
    /* the invariants only FHIRPath can say; their warnings are not a reason to refuse */
    oo inv;
    oo_init(&inv, a);
    rc = fp_invariants(root, type, &inv);
    for (size_t i = 0; rc == ERR_INVALID; i++) {
        const oo_issue *is = oo_get(&inv, i);
        if (!is)
            break;
        if (is->severity == OO_ERROR &&
            oo_add(o, is->severity, is->code, is->diagnostics, is->expression))
            return ERR_NOMEM;
    }
    return rc;
}

const oo_issue *rest_first_error(const oo *o)
{
    for (size_t i = 0;; i++) {
        const oo_issue *is = oo_get(o, i);
        if (!is || is->severity == OO_ERROR || is->severity == OO_FATAL)
            return is;
    }
}

/* If-Match / If-None-Match of the headers into w->pre: 0, or 1 when a 400 was sent. */
static int target_preconditions(rest_req *r, rest_write *w)
{
    const char *bad;
    if (rest_precond_parse(rest_header(r, "If-Match"), rest_header(r, "If-None-Match"), &w->pre,
                           &bad)) {
        rest_send_error(r, 400, OO_INVALID, bad, NULL);
        return 1;
    }
    return 0;
}

int rest_write_target(rest_req *r, rest_write *w)
{
    if (!rest_id_valid(r->route.id, r->route.id_len)) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "invalid id '%.80s' in the URL: 1-%d characters of A-Z a-z 0-9 - .",
                 r->route.id, REST_MAX_ID);
        rest_send_error(r, 400, OO_INVALID, msg, NULL);
        return 1;
    }
    w->type = r->route.type;
    w->id = r->route.id;
    return target_preconditions(r, w);
}

static int add_query_pair(void *ctx, const char *k, const char *v)
{
    buf *b = ctx;
    if (!strcmp(k, "_format") || !strcmp(k, "_pretty"))
        return 0; /* how to answer, not what to look for */
    if (b->len)
        buf_putc(b, '&');
    rest_form_put(b, k);
    buf_putc(b, '=');
    rest_form_put(b, v ? v : "");
    return 0;
}

int rest_write_target_cond(rest_req *r, rest_write *w, rest_write_kind kind)
{
    buf q = BUF_INIT;
    rest_query_each(r, add_query_pair, &q);
    if (!q.len) {
        buf_free(&q);
        char msg[200];
        snprintf(msg, sizeof msg,
                 "a conditional %s names the resource by search parameters: "
                 "[base]/%s?parameter=value",
                 kind == RW_UPDATE ? "update" : kind == RW_PATCH ? "patch" : "delete",
                 r->route.type->name);
        rest_send_error(r, 400, OO_INVALID, msg, NULL);
        return 1;
    }
    w->cond = q.err ? NULL : arena_strndup(r->a, q.data, q.len);
    buf_free(&q);
    if (!w->cond) {
        rest_send_errcode(r, ERR_NOMEM, "out of memory");
        return 1;
    }
    w->type = r->route.type;
    w->kind = w->asked = kind;
    return target_preconditions(r, w);
}

/* ---- bytes and ids -------------------------------------------------------------- */

static void put_meta(jw *w, const json_val *meta, uint64_t vid, int64_t lu)
{
    char tmp[40];
    jw_key(w, "meta");
    jw_obj(w);
    jw_key(w, "versionId");
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)vid);
    jw_str(w, tmp);
    jw_key(w, "lastUpdated");
    ftime_format_instant(lu, tmp);
    jw_str(w, tmp);
    if (meta && meta->type == JSON_OBJECT)
        for (uint32_t i = 0; i < meta->n; i++) {
            const json_member *m = &meta->u.members[i];
            if (!strcmp(m->key, "versionId") || !strcmp(m->key, "lastUpdated"))
                continue;
            jw_keyn(w, m->key, m->key_len);
            jw_val(w, &m->val);
        }
    jw_end(w);
}

void rest_build_bytes(const json_val *root, const char *type, const char *id, uint64_t vid,
                      int64_t lu, buf *out)
{
    buf_reset(out);
    jw w;
    jw_init(&w, out, 0);
    jw_obj(&w);
    jw_key(&w, "resourceType");
    jw_str(&w, type);
    jw_key(&w, "id");
    jw_str(&w, id);
    put_meta(&w, json_get(root, "meta"), vid, lu);
    for (uint32_t i = 0; i < root->n; i++) {
        const json_member *m = &root->u.members[i];
        if (!strcmp(m->key, "resourceType") || !strcmp(m->key, "id") ||
            !strcmp(m->key, "meta"))
            continue;
        jw_keyn(&w, m->key, m->key_len);
        jw_val(&w, &m->val);
    }
    jw_end(&w);
}

/* The tree of what rest_build_bytes writes for the same arguments, built from root's
 * values without parsing the bytes back (the index reads the version as stored: its id
 * and meta, not the body). The values are root's, shared. 0 or ERR_NOMEM. */
static int stored_tree(arena *a, const json_val *root, const char *type, const char *id,
                       uint64_t vid, int64_t lu, json_val **out)
{
    const json_val *meta = json_get(root, "meta");
    uint32_t nm = 2, n = 3;
    for (uint32_t i = 0; meta && meta->type == JSON_OBJECT && i < meta->n; i++)
        nm += strcmp(meta->u.members[i].key, "versionId") &&
              strcmp(meta->u.members[i].key, "lastUpdated");
    for (uint32_t i = 0; i < root->n; i++)
        n += strcmp(root->u.members[i].key, "resourceType") && strcmp(root->u.members[i].key, "id") &&
             strcmp(root->u.members[i].key, "meta");
    json_val *t = arena_zalloc(a, sizeof *t);
    json_member *m = arena_alloc(a, sizeof *m * n), *mm = arena_alloc(a, sizeof *mm * nm);
    char *vs = arena_alloc(a, 24), *ls = arena_alloc(a, 40);
    if (!t || !m || !mm || !vs || !ls)
        return ERR_NOMEM;
    snprintf(vs, 24, "%llu", (unsigned long long)vid);
    ftime_format_instant(lu, ls);
#define STR_MEMBER(k, v) \
    (json_member){.key = (k), .key_len = (uint32_t)strlen(k), \
                  .val = {.type = JSON_STRING, .n = (uint32_t)strlen(v), .u.s = (v)}}
    mm[0] = STR_MEMBER("versionId", vs);
    mm[1] = STR_MEMBER("lastUpdated", ls);
    for (uint32_t i = 0, k = 2; meta && meta->type == JSON_OBJECT && i < meta->n; i++)
        if (strcmp(meta->u.members[i].key, "versionId") &&
            strcmp(meta->u.members[i].key, "lastUpdated"))
            mm[k++] = meta->u.members[i];
    m[0] = STR_MEMBER("resourceType", type);
    m[1] = STR_MEMBER("id", id);
#undef STR_MEMBER
    m[2] = (json_member){.key = "meta", .key_len = 4,
                         .val = {.type = JSON_OBJECT, .n = nm, .u.members = mm}};
    for (uint32_t i = 0, k = 3; i < root->n; i++)
        if (strcmp(root->u.members[i].key, "resourceType") && strcmp(root->u.members[i].key, "id") &&
            strcmp(root->u.members[i].key, "meta"))
            m[k++] = root->u.members[i];
    *t = (json_val){.type = JSON_OBJECT, .n = n, .u.members = m};
    *out = t;
    return 0;
}

void rest_new_id(char out[37])
{
    /* A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random
     * bits. Ids made close in time sort close together, so a burst of creates
     * dirties a few neighbouring B-tree pages of the store's id-keyed indices
     * instead of one random page each (measured in docs/STORAGE.md). */
    unsigned char u[16];
    size_t got = 0;
    while (got < sizeof u) {
        ssize_t n = getrandom(u + got, sizeof u - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    for (int i = 0; i < 6; i++)
        u[i] = (unsigned char)(ms >> (40 - 8 * i));
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x70); /* version 7 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 9562 variant */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = 0;
}

/* ---- plan ----------------------------------------------------------------------- */

static int refuse(arena *a, rest_write *w, unsigned status, oo_code code, const char *msg)
{
    w->why.status = status;
    w->why.code = code;
    w->why.msg = arena_strndup(a, msg, strlen(msg));
    w->why.expr = NULL;
    w->why.outcome = NULL;
    return REST_PLAN_REFUSED;
}

/* The permission a write of w's kind needs (auth/auth.h). */
static unsigned write_op(const rest_write *w)
{
    return w->kind == RW_CREATE ? AUTH_CREATE : w->kind == RW_DELETE ? AUTH_DELETE : AUTH_UPDATE;
}

/* May the caller of ctx make this write? Whether the interaction is allowed at all was
 * decided before the plan (rest_authz_decide); here, under patient/ or granular scopes
 * (rest/authz.h), the resource is held to the token's restriction: an update, PATCH or
 * delete only of a current resource within it (checked before anything else about the
 * target is said: 403 the same whether it exists or not, is deleted or lies outside),
 * and every create, update and PATCH only with content that stays within it (checked
 * on the bytes as stored, with their id). *restricted: whether those checks apply.
 * 0 or REST_PLAN_REFUSED. */
static int plan_rights(const rest_ctx *ctx, arena *a, rest_write *w, int *restricted)
{
    *restricted = rest_authz_write_restricted(ctx, w->type->name, write_op(w));
    if (!*restricted)
        return 0;
    if (w->cond)
        return refuse(a, w, 403, OO_NOT_SUPPORTED,
                      "a conditional write under patient/ or granular scopes is not "
                      "supported with authorisation yet");
    return 0;
}

static int refuse_outside(arena *a, rest_write *w)
{
    char msg[300];
    static const char *const verb[] = {[RW_CREATE] = "create", [RW_UPDATE] = "update",
                                       [RW_PATCH] = "patch", [RW_DELETE] = "delete"};
    snprintf(msg, sizeof msg, "%s/%.64s is not within the token's rights to %s it (under "
             "patient/ or granular scopes only a current resource within them may be "
             "changed)", w->type->name, w->id, verb[w->kind]);
    return refuse(a, w, 403, OO_FORBIDDEN, msg);
}

/* The current version v of a restricted write's target: within the token's rights? */
static int rights_current(const rest_ctx *ctx, arena *a, rest_write *w, const store_version *v)
{
    if (!w->live)
        return refuse_outside(a, w); /* an update may not create under a restriction */
    int in = rest_authz_content_within(ctx, a, w->type->name, write_op(w), v->bytes, v->len);
    return in < 0 ? in : in ? 0 : refuse_outside(a, w);
}

/* The resource as it will be stored: still within the token's rights? */
static int rights_new(const rest_ctx *ctx, arena *a, rest_write *w)
{
    int in = rest_authz_content_within(ctx, a, w->type->name, write_op(w), w->op.bytes,
                                       w->op.len);
    if (in < 0)
        return in;
    if (in)
        return 0;
    char msg[300];
    snprintf(msg, sizeof msg, "the %s as it would be stored is not within the token's rights "
             "(under patient/ or granular scopes a %s must stay within them)", w->type->name,
             w->kind == RW_CREATE ? "new resource" : "change");
    return refuse(a, w, 403, OO_FORBIDDEN, msg);
}

typedef struct extra_sink {
    arena *a;
    rest_write *w;
} extra_sink;

static int add_extra(rest_write *w, arena *a, store_db db, int del, const void *key,
                     size_t key_len, const void *val, size_t val_len, int fill_t,
                     size_t t_offset, int fill_t_val, size_t t_val_offset);

static int sink_add(void *ctx, store_db db, int del, const void *key, size_t key_len,
                    const void *val, size_t val_len, int fill_t, size_t t_offset, int fill_t_val,
                    size_t t_val_offset)
{
    extra_sink *s = ctx;
    return add_extra(s->w, s->a, db, del, key, key_len, val, val_len, fill_t, t_offset,
                     fill_t_val, t_val_offset);
}

static int sink_cond(void *ctx, const store_cond *c)
{
    extra_sink *s = ctx;
    return idx_cond_append(s->a, &s->w->conds, &s->w->ncond, &s->w->cond_cap, c);
}

/* A SearchParameter write: an active definition must be one hortus can index (else 422),
 * and every SearchParameter write moves the tenant's parameter generation to its commit,
 * so the writes planned with the parameters before it are planned again (params.h). */
static int plan_search_parameter(const rest_ctx *ctx, arena *a, rest_write *w,
                                 const json_val *stored)
{
    if (stored) {
        fp_sp_custom *cs;
        size_t n;
        char msg[400];
        int rc = idx_sp_parse(ctx->spc, a, stored, w->id, w->op.vid, &cs, &n, msg, sizeof msg);
        if (rc == ERR_INVALID)
            return refuse(a, w, 422, OO_PROCESSING, msg);
        if (rc)
            return rc;
    }
    uint8_t k[IDX_PARAMS_KEY_LEN], v[8] = {0};
    size_t kn = idx_params_key(k, ctx->tenant);
    return add_extra(w, a, STORE_DB_AUX, 0, k, kn, v, sizeof v, 0, 0, 1, 0);
}

/* The profiles (docs/PROFILES.md), with --validate full: a StructureDefinition written
 * must compile into a usable profile when it is one (a broken one is refused now, not
 * when it is first applied); a resource claiming profiles in meta.profile is checked
 * against those the tenant holds, under the condition that they are unchanged at the
 * commit. What is only a warning (a profile not held, a rule not checked) is kept in
 * w->notes for the answer. 0, REST_PLAN_REFUSED (422 with the issues), or ERR_*. */
static int plan_profiles(const rest_ctx *ctx, store_reader *rd, arena *a, rest_write *w)
{
    if (w->kind == RW_DELETE || !w->res || rest_validation_of(ctx) != REST_VALIDATE_FULL)
        return 0;
    const char *type = w->type->name;
    oo *o = arena_alloc(a, sizeof *o);
    if (!o)
        return ERR_NOMEM;
    oo_init(o, a);
    if (!strcmp(type, "StructureDefinition")) {
        prof_def *d;
        int rc = prof_compile(a, w->res, &d);
        size_t ne = rc ? 0 : prof_def_errors(d, o);
        prof_def_free(d);
        if (rc || oo_error(o))
            return rc ? rc : ERR_NOMEM;
        if (ne) {
            refuse(a, w, 422, OO_INVALID, "the StructureDefinition is not a usable profile");
            w->why.outcome = o;
            return REST_PLAN_REFUSED;
        }
    }
    if (!ctx->svc || !ctx->svc->profiles || !prof_has_claims(w->res))
        return 0;
    const prof_set *set;
    int rc = prof_registry_get(ctx->svc->profiles, rd, ctx->tenant, &set);
    if (rc)
        return rc;
    int checked = 0;
    rc = prof_validate_claims(a, set, w->res, type, (prof_unknown)ctx->svc->policy.unknown_profile,
                              o, &checked);
    if ((rc == 0 || rc == ERR_INVALID) && checked) {
        uint8_t k[PROF_GEN_KEY_LEN], v[8];
        store_cond c;
        prof_gen_cond(set, ctx->tenant, k, v, &c);
        if (idx_cond_append(a, &w->conds, &w->ncond, &w->cond_cap, &c))
            rc = ERR_NOMEM;
    }
    prof_set_release(set);
    if (rc == ERR_INVALID) {
        char msg[200];
        snprintf(msg, sizeof msg, "the %s does not conform to the profiles it claims (meta.profile)",
                 type);
        refuse(a, w, 422, OO_PROCESSING, msg);
        w->why.outcome = o;
        return REST_PLAN_REFUSED;
    }
    if (rc)
        return rc;
    if (oo_error(o))
        return ERR_NOMEM;
    if (oo_count(o))
        w->notes = o;
    return 0;
}

/* Hook: what else this write changes in the same commit, added as extras. Now: the
 * search index (src/index/: the entries of the new content against those of the
 * version it replaces). Later: AuditEvents, the subscription outbox. Runs last, on
 * the final content. 0, REST_PLAN_REFUSED, or ERR_*. Without services (unit tests of
 * the plan alone) there is no index to keep. */
static int plan_extras(const rest_ctx *ctx, store_reader *rd, arena *a, rest_write *w)
{
    if (!ctx->svc || !ctx->spc)
        return 0;
    extra_sink sink = {a, w};
    /* the index sees the version as stored: with its id and meta, not the body */
    json_val *stored = NULL;
    if (w->kind != RW_DELETE) {
        int prc = stored_tree(a, w->res, w->type->name, w->id, w->op.vid, w->op.last_updated,
                              &stored);
        if (prc)
            return prc;
#ifndef NDEBUG
        /* the tree is the bytes, parsed (checked in the test build) */
        buf chk = BUF_INIT;
        json_write(&chk, stored, 0);
        assert(!chk.err && chk.len == w->op.len && !memcmp(chk.data, w->op.bytes, chk.len));
        buf_free(&chk);
#endif
    }
    int rc = 0;
    if (!strcmp(w->type->name, "SearchParameter") &&
        (rc = plan_search_parameter(ctx, a, w, stored)))
        return rc;
    if (stored && !strcmp(w->type->name, "Consent")) {
        /* an active privacy Consent is stored only when it is enforced as written */
        char msg[400];
        rc = rest_consent_check(stored, msg, sizeof msg);
        if (rc == ERR_NOMEM)
            return rc;
        if (rc)
            return refuse(a, w, 422, rc == ERR_INVALID ? OO_INVALID : OO_NOT_SUPPORTED, msg);
    }
    if (!strcmp(w->type->name, "StructureDefinition")) {
        /* the tenant's profiles change with this commit (profile.h: the generation) */
        uint8_t k[PROF_GEN_KEY_LEN], v[8] = {0};
        size_t kn = prof_gen_key(k, ctx->tenant);
        if ((rc = add_extra(w, a, STORE_DB_AUX, 0, k, kn, v, sizeof v, 0, 0, 1, 0)))
            return rc;
    }
    rc = idx_plan(ctx->spc, rd, a, ctx->tenant, w->type->name, w->id, stored, ctx->base_url,
                  w->op_index, sink_add, sink_cond, &sink);
    if (rc == ERR_TOOBIG) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "the resource would have more than %d search-index entries "
                 "(IDX_MAX_ENTRIES): split it",
                 IDX_MAX_ENTRIES);
        return refuse(a, w, 422, OO_TOO_COSTLY, msg);
    }
    return rc;
}

static int extra_cmp(const void *pa, const void *pb)
{
    const store_extra *a = pa, *b = pb;
    if (a->db != b->db)
        return a->db < b->db ? -1 : 1;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, n);
    if (c)
        return c;
    return a->key_len == b->key_len ? 0 : a->key_len < b->key_len ? -1 : 1;
}

void rest_extras_sort(store_extra *x, size_t n)
{
    if (n > 1)
        qsort(x, n, sizeof *x, extra_cmp);
}

int rest_write_add_extra(arena *a, rest_write *w, store_db db, int del, const void *key,
                         size_t key_len, const void *val, size_t val_len)
{
    return add_extra(w, a, db, del, key, key_len, val, val_len, 0, 0, 0, 0);
}

static int add_extra(rest_write *w, arena *a, store_db db, int del, const void *key,
                     size_t key_len, const void *val, size_t val_len, int fill_t,
                     size_t t_offset, int fill_t_val, size_t t_val_offset)
{
    return idx_extra_append(a, &w->extras, &w->nextra, &w->extra_cap, db, del, key, key_len,
                            val, val_len, fill_t, t_offset, fill_t_val, t_val_offset);
}

/* PATCH: the new content, from a private copy of the current bytes. */
static int plan_patch_content(arena *a, rest_write *w, const store_version *v)
{
    char msg[200];
    /* the tree may point into its input (number text): parse a copy, not the map */
    char *copy = arena_strndup(a, v->bytes, v->len);
    json_val *root = NULL;
    int rc = copy ? json_parse(a, copy, v->len, 0, &root, NULL) : ERR_NOMEM;
    if (rc)
        return rc == ERR_NOMEM ? rc : ERR_INTERNAL; /* the store holds only valid JSON */
    rc = w->transform(w->transform_arg, a, root, &w->why);
    if (rc)
        return rc;
    const char *type = w->type->name;
    const char *rt = root->type == JSON_OBJECT ? json_get_str(root, "resourceType") : NULL;
    const char *nid = root->type == JSON_OBJECT ? json_get_str(root, "id") : NULL;
    if (!rt || strcmp(rt, type) || !nid || strcmp(nid, w->id))
        return refuse(a, w, 422, OO_PROCESSING, "the patch may not change resourceType or id");
    oo *o = arena_alloc(a, sizeof *o);
    if (!o)
        return ERR_NOMEM;
    oo_init(o, a);
    /* structure only: the official FHIRPath Patch test cases (the conformance ratchet)
     * expect results that break pat-1, so the invariants of a patch result are not
     * enforced yet (docs/REST.md, Errors) */
    rc = val_resource(a, root, type, o);
    if (rc == ERR_NOMEM)
        return rc;
    if (rc) {
        snprintf(msg, sizeof msg, "the patched %s is not valid", type);
        refuse(a, w, 422, OO_PROCESSING, msg);
        w->why.outcome = o;
        return REST_PLAN_REFUSED;
    }
    w->res = root;
    return 0;
}

/* A "reference" of v that is a search (Type?query): resolved in transactions only. */
static const char *conditional_reference(const json_val *v, int depth)
{
    if (depth > JSON_MAX_DEPTH + 2)
        return NULL;
    const char *found = NULL;
    if (v->type == JSON_ARRAY) {
        for (uint32_t i = 0; i < v->n && !found; i++)
            found = conditional_reference(&v->u.items[i], depth + 1);
    } else if (v->type == JSON_OBJECT) {
        for (uint32_t i = 0; i < v->n && !found; i++) {
            const json_member *m = &v->u.members[i];
            if (m->val.type == JSON_STRING && !strcmp(m->key, "reference")) {
                const char *q = memchr(m->val.u.s, '?', m->val.n);
                if (q && fhir_resource_type(m->val.u.s, (size_t)(q - m->val.u.s)))
                    found = m->val.u.s;
            } else {
                found = conditional_reference(&m->val, depth + 1);
            }
        }
    }
    return found;
}

/* ---- conditional create --------------------------------------------------------- */

typedef struct cond_query {
    srch_query *q;
    arena *a;
    const char *base;
    srch_error e;
    int rc;
} cond_query;

static int cond_pair(void *ctx, const char *k, const char *v)
{
    cond_query *c = ctx;
    /* a condition names resources: _count, _sort, _elements, _total ... shape a result
     * and have no meaning here (refused, not ignored) */
    char name[80];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(k, ":."), k);
    if (k[0] == '_' && strncmp(k, "_has:", 5) && !fp_sp_find(c->q->spc, c->q->type, name)) {
        snprintf(c->e.msg, sizeof c->e.msg,
                 "'%.60s' shapes a search result: a condition takes search parameters only", k);
        c->e.oo_code = OO_INVALID;
        c->rc = ERR_INVALID;
        return 1;
    }
    c->rc = srch_add(c->q, c->a, k, v, 0, c->base, &c->e);
    return c->rc != 0;
}

int rest_gone_has(const rest_gone *g, const fhir_type *type, const char *id)
{
    for (size_t i = 0; g && i < g->n; i++)
        if (g->type[i] == type && !strcmp(g->id[i], id))
            return 1;
    return 0;
}

/* The types a query reads (its own, and those behind its chains and _has): a write of
 * any of them could change its answer. */
static int cond_types(const rest_ctx *ctx, arena *a, const srch_query *q, store_reader *rd,
                      rest_write *w, unsigned depth)
{
    uint64_t cur, versions;
    int rc = store_count(rd, ctx->tenant, q->type, &cur, &versions);
    store_cond c = {.kind = STORE_COND_TYPE_VERSIONS, .type = q->type, .vid = versions};
    if (!rc)
        rc = idx_cond_append(a, &w->conds, &w->ncond, &w->cond_cap, &c);
    for (size_t i = 0; i < q->nc && !rc && depth < 16; i++)
        if (q->c[i].sub)
            rc = cond_types(ctx, a, q->c[i].sub, rd, w, depth + 1);
    return rc;
}

/* The matches of w's condition (If-None-Exist, or the search of a conditional update,
 * patch or delete) in the plan's snapshot: *n (0, 1, or 2 for several; *total the
 * count) and, for one, *id. The write that follows is conditional on no write of the
 * types the search reads, so the answer cannot change before it commits: two creates
 * racing for one identifier make one resource, the loser plans again and finds it.
 * 0, REST_PLAN_REFUSED (400: not a plain search), or ERR_*. */
static int plan_match(const rest_ctx *ctx, store_reader *rd, arena *a, rest_write *w,
                      const char *what, unsigned limit, int *n, uint64_t *total,
                      const char ***ids)
{
    char msg[480];
    srch_query q;
    srch_init(&q, w->type->name);
    q.spc = ctx->spc;
    q.base_url = ctx->base_url;
    cond_query c = {.q = &q, .a = a, .base = ctx->base_url};
    int rc = rest_form_each(a, w->cond, strlen(w->cond), cond_pair, &c);
    if (rc == ERR_NOMEM || c.rc == ERR_NOMEM) {
        srch_done(&q);
        return ERR_NOMEM;
    }
    if (rc < 0 || c.rc || !q.nc || q.nsort || q.ninc || q.summary_count || q.page_t) {
        snprintf(msg, sizeof msg, "%s '%.60s': %.300s", what, w->cond,
                 rc < 0 ? "a malformed %-escape"
                 : c.rc ? c.e.msg
                 : !q.nc ? "no search parameter (name the resource to look for)"
                         : "only search parameters, no _sort, _include, _summary or paging");
        srch_done(&q);
        return refuse(a, w, 400, c.rc ? (oo_code)c.e.oo_code : OO_INVALID, msg);
    }
    /* what the transaction deletes is gone before its conditions are looked at: ask for
     * as many more rows as it could hide */
    size_t ngone = 0;
    for (size_t i = 0; w->gone && i < w->gone->n; i++)
        ngone += w->gone->type[i] == w->type;
    q.count = (unsigned)(limit + 1 + ngone);
    srch_result res;
    srch_error e = {0};
    rc = srch_run(&q, rd, a, ctx->tenant, &res, &e);
    if (rc == ERR_LIMIT || rc == ERR_INVALID || rc == ERR_UNSUPPORTED) {
        snprintf(msg, sizeof msg, "%s '%.60s': %.300s", what, w->cond, e.msg);
        srch_done(&q);
        return refuse(a, w, 400, OO_TOO_COSTLY, msg);
    }
    if (rc) {
        srch_done(&q);
        return rc;
    }
    uint64_t all = res.has_total ? res.total : res.n;
    /* the ids when there are no more than limit (one, or a conditional delete's several),
     * without those the transaction deletes */
    *ids = NULL;
    if (all <= limit + ngone) { /* every match is a row of res */
        size_t nid = 0;
        *ids = all ? arena_alloc(a, sizeof **ids * (size_t)all) : NULL;
        if (all && !*ids) {
            srch_done(&q);
            return ERR_NOMEM;
        }
        for (size_t i = 0; i < all; i++) {
            const char *id =
                i < res.n ? srch_rn_id(rd, a, ctx->tenant, q.type, res.rn[i]) : NULL;
            if (!id) {
                srch_done(&q);
                return ERR_INTERNAL; /* a match of this snapshot has its number in it */
            }
            if (!rest_gone_has(w->gone, w->type, id))
                (*ids)[nid++] = id;
        }
        all = nid;
    }
    *total = all;
    *n = all > 1 ? 2 : (int)all;
    rc = cond_types(ctx, a, &q, rd, w, 0);
    srch_done(&q);
    return rc;
}

/* A conditional write: w->kind and w->id from what the condition finds (docs/REST.md).
 *   create (If-None-Exist): none -> create; one -> nothing written, the answer names it
 *   update: none -> create (with the body's id, if any); one -> update it; several 412
 *   patch: none -> 404; one -> patch it; several 412
 *   delete: none -> nothing to delete; one -> delete it; several 412 */
static int plan_conditional(const rest_ctx *ctx, store_reader *rd, arena *a, rest_write *w)
{
    static const char *const what[] = {[RW_CREATE] = "If-None-Exist",
                                       [RW_UPDATE] = "conditional update",
                                       [RW_PATCH] = "conditional patch",
                                       [RW_DELETE] = "conditional delete"};
    char msg[300];
    w->kind = w->asked;
    w->id = NULL;
    w->more = NULL;
    w->nmore = 0;
    unsigned limit = 1;
    if (w->asked == RW_DELETE && ctx->svc && ctx->svc->policy.cond_delete_max > 1)
        limit = ctx->svc->policy.cond_delete_max;
    int n;
    uint64_t total;
    const char **ids;
    int rc = plan_match(ctx, rd, a, w, what[w->asked], limit, &n, &total, &ids);
    if (rc)
        return rc;
    if (n == 2 && limit > 1 && total > limit) {
        snprintf(msg, sizeof msg,
                 "%s '%.100s' matches %llu resources; one conditional delete removes at most "
                 "%u (REST_MAX_COND_DELETE): nothing is deleted, narrow the condition",
                 what[w->asked], w->cond, (unsigned long long)total, limit);
        return refuse(a, w, 412, OO_TOO_COSTLY, msg);
    }
    if (n == 2 && limit > 1) { /* the delete of several: the first, and the others */
        w->id = ids[0];
        w->more = ids + 1;
        w->nmore = (size_t)total - 1;
        return 0;
    }
    if (n == 2) {
        snprintf(msg, sizeof msg, "%s '%.100s' matches %llu resources: nothing is written",
                 what[w->asked], w->cond, (unsigned long long)total);
        return refuse(a, w, 412, OO_DUPLICATE, msg);
    }
    const char *id = n == 1 ? ids[0] : NULL;
    const char *body_id = w->res ? json_get_str(w->res, "id") : NULL;
    switch (w->asked) {
    case RW_CREATE:
        w->id = w->create_id; /* a Bundle's, which its references name; else drawn */
        if (n == 1) {
            store_version v;
            if (store_read(rd, ctx->tenant, w->type->name, id, &v))
                return ERR_INTERNAL;
            w->existing = id;
            w->cur_vid = v.vid;
            w->cur_lu = v.last_updated;
            w->noop = 1;
        }
        return 0;
    case RW_UPDATE:
        if (n == 1 && body_id && strcmp(body_id, id)) {
            snprintf(msg, sizeof msg,
                     "the condition finds %s/%.64s, but the body's id is '%.64s'",
                     w->type->name, id, body_id);
            return refuse(a, w, 400, OO_INVALID, msg);
        }
        if (n == 1)
            w->id = id;
        else if (body_id && rest_id_valid(body_id, strlen(body_id)))
            w->id = body_id; /* create with the client's id */
        else if (body_id)
            return refuse(a, w, 400, OO_INVALID, "the body's id is not a valid id");
        else
            w->kind = RW_CREATE, w->id = w->create_id;
        return 0;
    case RW_PATCH:
        if (!n) {
            snprintf(msg, sizeof msg, "conditional patch '%.100s' matches nothing", w->cond);
            return refuse(a, w, 404, OO_NOT_FOUND, msg);
        }
        w->id = id;
        return 0;
    case RW_DELETE:
    default:
        w->id = id;
        if (!n)
            w->noop = 1; /* nothing to delete: 204, as a delete of what is not there */
        return 0;
    }
}

int rest_write_resolve(const rest_ctx *ctx, store_reader *rd, arena *a, rest_write *w)
{
    w->noop = 0;
    w->existing = NULL;
    w->ncond = 0;
    memset(&w->why, 0, sizeof w->why);
    return plan_conditional(ctx, rd, a, w);
}

int rest_resolve_reference(const rest_ctx *ctx, store_reader *rd, arena *a, const char *ref,
                           const char **out, rest_write *into, char *msg, size_t cap)
{
    const char *qm = strchr(ref, '?');
    const fhir_type *t = qm ? fhir_resource_type(ref, (size_t)(qm - ref)) : NULL;
    if (!t || !qm[1]) {
        snprintf(msg, cap, "reference '%.100s' is neither a resource nor a search", ref);
        return REST_PLAN_REFUSED;
    }
    rest_write *w = arena_zalloc(a, sizeof *w);
    if (!w)
        return ERR_NOMEM;
    w->type = t;
    w->cond = qm + 1;
    w->gone = into->gone;
    int n;
    uint64_t total;
    const char **ids;
    int rc = plan_match(ctx, rd, a, w, "conditional reference", 1, &n, &total, &ids);
    if (rc == REST_PLAN_REFUSED)
        snprintf(msg, cap, "%s", w->why.msg ? w->why.msg : "bad conditional reference");
    if (rc)
        return rc;
    if (n != 1) {
        snprintf(msg, cap, "conditional reference '%.100s' matches %s", ref,
                 n ? "several resources" : "nothing");
        return REST_PLAN_REFUSED;
    }
    buf b = BUF_INIT;
    buf_printf(&b, "%s/%s", t->name, ids[0]);
    *out = b.err ? NULL : arena_strndup(a, b.data, b.len);
    buf_free(&b);
    if (!*out)
        return ERR_NOMEM;
    for (size_t i = 0; i < w->ncond && !rc; i++)
        rc = idx_cond_append(a, &into->conds, &into->ncond, &into->cond_cap, &w->conds[i]);
    return rc;
}

/* ---- referential integrity ------------------------------------------------------- */

#define REF_LOCK 'L' /* Aux tenant | 'L' | Type\0 | id\0: t of the last write naming it */
#define REF_MAX_NAMED 5 /* referrers a refused delete names */

static size_t ref_lock_key(uint8_t *k, uint32_t tenant, const char *type, const char *id)
{
    k[0] = (uint8_t)(tenant >> 24), k[1] = (uint8_t)(tenant >> 16);
    k[2] = (uint8_t)(tenant >> 8), k[3] = (uint8_t)tenant;
    k[4] = REF_LOCK;
    size_t tl = strlen(type) + 1, il = strlen(id) + 1;
    memcpy(k + 5, type, tl);
    memcpy(k + 5 + tl, id, il);
    return 5 + tl + il;
}

/* A literal reference to a resource of this server: "Type/id" or "Type/id/_history/vid",
 * relative or under the base. 1 with *t, id (NUL-terminated) and *vid (0: current), or 0
 * (contained, urn, conditional, another server's, or not a resource's URL). */
static int local_ref(const rest_ctx *ctx, const char *s, size_t n, const fhir_type **t,
                     char id[REST_MAX_ID + 1], uint64_t *vid)
{
    const char *base = ctx->base_url;
    size_t bl = base ? strlen(base) : 0;
    if (bl && n > bl && !memcmp(s, base, bl) && s[bl] == '/')
        s += bl + 1, n -= bl + 1;
    if (!n || memchr(s, ':', n) || memchr(s, '?', n) || memchr(s, '#', n))
        return 0;
    const char *sl = memchr(s, '/', n);
    if (!sl || !(*t = fhir_resource_type(s, (size_t)(sl - s))))
        return 0;
    const char *ip = sl + 1, *end = s + n;
    const char *h = memchr(ip, '/', (size_t)(end - ip));
    size_t il = (size_t)((h ? h : end) - ip);
    if (!rest_id_valid(ip, il) || il > REST_MAX_ID)
        return 0;
    memcpy(id, ip, il);
    id[il] = 0;
    *vid = 0;
    if (h) {
        if ((size_t)(end - h) < 11 || memcmp(h, "/_history/", 10))
            return 0;
        if (rest_vid_parse(h + 10, (size_t)(end - h - 10), vid))
            return 0;
    }
    return 1;
}

typedef struct ref_walk {
    const rest_ctx *ctx;
    store_reader *rd;
    arena *a;
    rest_write *w;
    buf path;
    int rc;
} ref_walk;

/* One literal reference of w's resource, at path: it must name a resource that exists
 * (or that the transaction writes), and stay so until the commit. */
static int check_ref(ref_walk *rw, const char *s, size_t n)
{
    rest_write *w = rw->w;
    const fhir_type *t;
    char id[REST_MAX_ID + 1];
    uint64_t vid;
    if (!local_ref(rw->ctx, s, n, &t, id, &vid))
        return 0;
    if (t == w->type && w->id && !strcmp(id, w->id))
        return 0; /* itself */
    if (!vid && rest_gone_has(w->made, t, id))
        return 0; /* written by the same transaction */
    char msg[400];
    store_version v;
    int rc = rest_gone_has(w->deleted, t, id) ? ERR_GONE
             : vid ? store_vread(rw->rd, rw->ctx->tenant, t->name, id, vid, &v)
                   : store_read(rw->rd, rw->ctx->tenant, t->name, id, &v);
    if (rest_authz_ref_restricted(rw->ctx, t->name)) {
        /* the token does not read all of t: missing, deleted and outside its rights get
         * one answer, so the check cannot tell it what exists */
        int in = rc ? 0 : rest_authz_ref_within(rw->ctx, rw->a, rw->rd, t->name, id);
        if (in < 0)
            return in;
        if (rc && rc != ERR_NOTFOUND && rc != ERR_GONE)
            return rc;
        if (!in) {
            snprintf(msg, sizeof msg,
                     "reference '%.*s' names no resource within the token's rights: a "
                     "reference to this server must name a resource it holds that the token "
                     "may read (referential integrity)",
                     (int)(n > 120 ? 120 : n), s);
            refuse(rw->a, w, 422, OO_PROCESSING, msg);
            w->why.expr = arena_strndup(rw->a, buf_cstr(&rw->path), rw->path.len);
            return REST_PLAN_REFUSED;
        }
    }
    if (rc == ERR_NOTFOUND || rc == ERR_GONE) {
        snprintf(msg, sizeof msg,
                 "reference '%.*s' names %s: a reference to this server must name a resource "
                 "it holds (referential integrity; create the target first, or in the same "
                 "transaction)",
                 (int)(n > 120 ? 120 : n), s,
                 rest_gone_has(w->deleted, t, id) ? "a resource this transaction deletes"
                 : rc == ERR_GONE && !vid     ? "a deleted resource"
                                              : "nothing");
        refuse(rw->a, w, 422, OO_PROCESSING, msg);
        w->why.expr = arena_strndup(rw->a, buf_cstr(&rw->path), rw->path.len);
        return REST_PLAN_REFUSED;
    }
    if (rc || vid)
        return rc; /* a version stays as it is */
    store_cond c = {.kind = STORE_COND_VERSION, .type = t->name,
                    .id = arena_strndup(rw->a, id, strlen(id)), .vid = v.vid};
    uint8_t k[5 + 64 + 1 + REST_MAX_ID + 1];
    uint8_t zero[8] = {0};
    size_t kn = ref_lock_key(k, rw->ctx->tenant, t->name, id);
    if (!c.id || idx_cond_append(rw->a, &w->conds, &w->ncond, &w->cond_cap, &c))
        return ERR_NOMEM;
    return add_extra(w, rw->a, STORE_DB_AUX, 0, k, kn, zero, sizeof zero, 0, 0, 1, 0);
}

static int walk_refs(ref_walk *rw, const json_val *v, int depth)
{
    if (depth > JSON_MAX_DEPTH + 2 || rw->rc)
        return rw->rc;
    if (v->type == JSON_ARRAY) {
        for (uint32_t i = 0; i < v->n && !rw->rc; i++)
            walk_refs(rw, &v->u.items[i], depth + 1);
    } else if (v->type == JSON_OBJECT) {
        size_t at = rw->path.len;
        for (uint32_t i = 0; i < v->n && !rw->rc; i++) {
            const json_member *m = &v->u.members[i];
            if (depth == 0 && !strcmp(m->key, "contained"))
                continue; /* contained resources name the container's targets: checked
                             the same way below */
            buf_printf(&rw->path, ".%s", m->key);
            if (m->val.type == JSON_STRING && !strcmp(m->key, "reference"))
                rw->rc = check_ref(rw, m->val.u.s, m->val.n);
            else
                walk_refs(rw, &m->val, depth + 1);
            rw->path.len = at;
            if (rw->path.data)
                rw->path.data[at] = 0;
        }
    }
    return rw->rc;
}

/* Every literal reference of w's resource (contained resources included) names a
 * resource this server holds: REST_PLAN_REFUSED (422) when one does not, else the
 * conditions and the lock puts that keep it true until the commit. */
static int plan_references(const rest_ctx *ctx, store_reader *rd, arena *a, rest_write *w)
{
    ref_walk rw = {.ctx = ctx, .rd = rd, .a = a, .w = w, .path = BUF_INIT};
    buf_printf(&rw.path, "%s", w->type->name);
    walk_refs(&rw, w->res, 0);
    const json_val *cont = json_get(w->res, "contained");
    for (uint32_t i = 0; cont && cont->type == JSON_ARRAY && i < cont->n && !rw.rc; i++) {
        rw.path.len = 0;
        buf_printf(&rw.path, "%s.contained[%u]", w->type->name, i);
        walk_refs(&rw, &cont->u.items[i], 1);
    }
    int rc = rw.path.err && !rw.rc ? ERR_NOMEM : rw.rc;
    buf_free(&rw.path);
    return rc;
}

typedef struct skip_ctx {
    const rest_write *w;
} skip_ctx;

/* Referrers a delete may leave: deleted or written by the same transaction (what the
 * latter write then names is checked on its own), or deleted by the same conditional
 * delete. */
static int skip_referrer(void *ctx, const char *type, const char *id)
{
    const rest_write *w = ((skip_ctx *)ctx)->w;
    const fhir_type *t = fhir_resource_type(type, strlen(type));
    if (rest_gone_has(w->deleted, t, id) || rest_gone_has(w->made, t, id))
        return 1;
    const rest_write *g = w->group ? w->group : w;
    if (g->type == t && g->id && !strcmp(g->id, id))
        return 1;
    for (size_t i = 0; g->type == t && i < g->nmore; i++)
        if (!strcmp(g->more[i], id))
            return 1;
    return 0;
}

/* A delete may not leave references to what it deletes: REST_PLAN_REFUSED (409, naming
 * the first referrers) when some remain, else the condition that none was written
 * since the snapshot (the lock key of every write naming it). */
static int plan_referrers(const rest_ctx *ctx, store_reader *rd, arena *a, rest_write *w)
{
    srch_referrer found[REF_MAX_NAMED];
    size_t n;
    skip_ctx sc = {w};
    int rc = srch_referrers(rd, a, ctx->spc, ctx->tenant, w->type->name, w->id, REF_MAX_NAMED,
                            skip_referrer, &sc, found, &n);
    if (rc)
        return rc;
    if (n) {
        buf m = BUF_INIT;
        buf_printf(&m, "%s/%s is referred to by", w->type->name, w->id);
        for (size_t i = 0; i < n; i++)
            buf_printf(&m, "%s %s/%s (%s)", i ? "," : "", found[i].type, found[i].id,
                       found[i].param);
        buf_printf(&m, "%s: deleting it would leave %s dangling (referential integrity); "
                       "delete or change %s first, or in the same transaction",
                   n == REF_MAX_NAMED ? " and maybe more" : "", n > 1 ? "them" : "it",
                   n > 1 ? "them" : "it");
        const char *msg = m.err ? NULL : arena_strndup(a, m.data, m.len);
        buf_free(&m);
        if (!msg)
            return ERR_NOMEM;
        return refuse(a, w, 409, OO_CONFLICT, msg);
    }
    uint8_t k[5 + 64 + 1 + REST_MAX_ID + 1];
    size_t kn = ref_lock_key(k, ctx->tenant, w->type->name, w->id);
    const void *val = NULL;
    size_t vn = 0;
    rc = store_get(rd, STORE_DB_AUX, k, kn, &val, &vn);
    if (rc && rc != ERR_NOTFOUND)
        return rc;
    uint8_t *kc = arena_alloc(a, kn), *vc = vn ? arena_alloc(a, vn) : NULL;
    if (!kc || (vn && !vc))
        return ERR_NOMEM;
    memcpy(kc, k, kn);
    if (vn)
        memcpy(vc, val, vn);
    store_cond c = {.kind = STORE_COND_VALUE, .db = STORE_DB_AUX, .key = kc, .key_len = kn,
                    .val = vc, .val_len = vn, .absent = rc == ERR_NOTFOUND};
    return idx_cond_append(a, &w->conds, &w->ncond, &w->cond_cap, &c);
}

/* A conditional delete of several: the deletes of w->more planned like w's own, their
 * ops after w->op in w->ops, their extras and conditions joined to w's (one commit). */
static int plan_more_deletes(const rest_ctx *ctx, store_reader *rd, arena *a, int64_t now_us,
                             rest_write *w)
{
    if (w->pre.if_match)
        return refuse(a, w, 412, OO_CONFLICT,
                      "If-Match names one version: it cannot hold for a conditional delete "
                      "that finds several resources");
    store_op *ops = arena_alloc(a, sizeof *ops * (1 + w->nmore));
    if (!ops)
        return ERR_NOMEM;
    ops[0] = w->op;
    size_t n = 1;
    for (size_t i = 0; i < w->nmore; i++) {
        rest_write *d = arena_zalloc(a, sizeof *d);
        if (!d)
            return ERR_NOMEM;
        d->kind = RW_DELETE;
        d->type = w->type;
        d->id = w->more[i];
        d->op_index = w->op_index;
        d->made = w->made;
        d->deleted = w->deleted;
        d->group = w;
        int rc = rest_write_plan(ctx, rd, a, now_us, d);
        if (rc == REST_PLAN_REFUSED)
            w->why = d->why;
        if (rc)
            return rc;
        if (d->noop)
            continue; /* a match of this snapshot is live; kept for safety */
        ops[n++] = d->op;
        if (d->nextra) {
            size_t need = w->nextra + d->nextra;
            store_extra *x = arena_realloc(a, w->extras, sizeof *x * w->extra_cap,
                                           sizeof *x * need);
            if (!x)
                return ERR_NOMEM;
            memcpy(x + w->nextra, d->extras, sizeof *x * d->nextra);
            w->extras = x;
            w->nextra = w->extra_cap = need;
        }
        for (size_t k = 0; k < d->ncond; k++)
            if (idx_cond_append(a, &w->conds, &w->ncond, &w->cond_cap, &d->conds[k]))
                return ERR_NOMEM;
    }
    w->ops = ops;
    w->nops = n;
    return 0;
}

int rest_write_plan(const rest_ctx *ctx, store_reader *rd, arena *a, int64_t now_us,
                    rest_write *w)
{
    char msg[300];
    assert(w->type && (w->kind == RW_CREATE || w->id || w->cond));
    assert(w->kind != RW_PATCH || w->transform);
    assert(w->kind == RW_DELETE || w->kind == RW_PATCH || w->res);
    w->noop = 0;
    w->live = 0;
    w->cur_vid = 0;
    w->cur_lu = 0;
    w->nextra = 0;
    w->ncond = 0;
    w->existing = NULL;
    w->notes = NULL;
    w->ops = &w->op;
    w->nops = 1;
    memset(&w->why, 0, sizeof w->why);
    if (audit_rest_is_audit_type(w->type->name))
        return refuse(a, w, 405, OO_NOT_SUPPORTED,
                      "AuditEvents are the server's audit trail: they cannot be created, "
                      "changed or deleted through the API");
    int restricted;
    int rc = plan_rights(ctx, a, w, &restricted);
    if (rc)
        return rc;
    const char *cref = w->res ? conditional_reference(w->res, 0) : NULL;
    if (cref) {
        snprintf(msg, sizeof msg,
                 "reference '%.100s' is a search: conditional references are resolved in "
                 "transactions only",
                 cref);
        return refuse(a, w, 400, OO_NOT_SUPPORTED, msg);
    }
    if (w->cond) {
        rc = plan_conditional(ctx, rd, a, w);
        if (rc || w->noop)
            return rc;
    }
    const char *type = w->type->name;
    store_version v;
    memset(&v, 0, sizeof v);
    if (w->kind == RW_CREATE) {
        if (!w->id || w->id == w->newid) {
            rest_new_id(w->newid); /* drawn again on every plan: a collision is a lost race */
            w->id = w->newid;
        }
    } else {
        rc = store_read(rd, ctx->tenant, type, w->id, &v);
        if (rc == 0 || rc == ERR_GONE) {
            w->live = rc == 0;
            w->cur_vid = v.vid;
            w->cur_lu = v.last_updated;
        } else if (rc != ERR_NOTFOUND) {
            return rc;
        }
        if (restricted && (rc = rights_current(ctx, a, w, &v)))
            return rc;
    }
    if (w->kind == RW_PATCH && !w->live) {
        /* nothing to patch: that, not a precondition, is what the client must hear */
        snprintf(msg, sizeof msg, "%s/%s %s", type, w->id,
                 w->cur_vid ? "is deleted" : "is not known");
        return refuse(a, w, w->cur_vid ? 410 : 404, w->cur_vid ? OO_DELETED : OO_NOT_FOUND, msg);
    }
    if (rest_precond_check(&w->pre, w->live, w->cur_vid, msg, sizeof msg))
        return refuse(a, w, 412, OO_CONFLICT, msg);
    if (w->kind == RW_DELETE && !w->live) {
        w->noop = 1; /* nothing to delete: idempotent, no write */
        return REST_PLAN_OK;
    }
    if (w->kind == RW_PATCH) {
        rc = plan_patch_content(a, w, &v);
        if (rc)
            return rc;
    }
    if (w->kind != RW_DELETE && (rc = plan_profiles(ctx, rd, a, w)))
        return rc;
    memset(&w->op, 0, sizeof w->op);
    w->op.type = type;
    w->op.type_len = strlen(type);
    w->op.id = w->id;
    w->op.id_len = strlen(w->id);
    w->op.vid = w->cur_vid + 1;
    w->op.last_updated = now_us;
    w->op.expect = w->live ? w->cur_vid : 0;
    if (w->kind == RW_DELETE) {
        w->op.op = STORE_OP_DELETE;
    } else {
        w->op.op = w->kind == RW_CREATE ? STORE_OP_CREATE : STORE_OP_UPDATE;
        buf b = BUF_INIT;
        rest_build_bytes(w->res, type, w->id, w->op.vid, now_us, &b);
        char *bytes = b.err ? NULL : arena_alloc(a, b.len ? b.len : 1);
        int err = b.err ? b.err : bytes ? 0 : ERR_NOMEM;
        if (bytes)
            memcpy(bytes, b.data, b.len);
        w->op.bytes = bytes;
        w->op.len = b.len;
        buf_free(&b);
        if (err)
            return err;
        if (restricted && (rc = rights_new(ctx, a, w)))
            return rc;
    }
    if (ctx->svc && ctx->svc->policy.ref_integrity && ctx->spc) {
        rc = w->kind == RW_DELETE ? plan_referrers(ctx, rd, a, w)
                                  : plan_references(ctx, rd, a, w);
        if (rc)
            return rc;
    }
    rc = plan_extras(ctx, rd, a, w);
    if (rc || !w->nmore)
        return rc;
    return plan_more_deletes(ctx, rd, a, now_us, w);
}

/* ---- commit --------------------------------------------------------------------- */

rest_commit_result rest_commit_classify(int rc, int sync)
{
    if (rc == 0)
        return REST_COMMITTED;
    /* Only the writer thread's version check can be overtaken by another commit;
     * a request refused before it was queued failed on its own terms. */
    if (!sync && rc == ERR_CONFLICT)
        return REST_LOST_RACE;
    return REST_FAILED;
}

static void on_commit_done(void *ctx, int rc, uint64_t t)
{
    rest_commit *c = ctx;
    (void)t;
    c->rc = rc;
    rest_req *r = c->owner;
    if (__atomic_sub_fetch(&r->commit_pending, 1, __ATOMIC_ACQ_REL) == 0)
        rest_resume(r);
}

int rest_commit_submit(rest_req *r, rest_commit *c, size_t n, rest_resume_fn resume)
{
    if (!r->inflight) {
        if (!rest_writes_allowed(r))
            return rest_send_error(r, 503, OO_TRANSIENT, "the server is shutting down", NULL);
        r->inflight = 1;
    }
    r->resume = resume;
    if (audit_rest_commit(r, c, n)) /* each unit's AuditEvent rides its commit */
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    /* one guard count until every unit is queued, so no callback resumes early */
    __atomic_store_n(&r->commit_pending, 1, __ATOMIC_RELEASE);
    rest_suspend(r);
    for (size_t i = 0; i < n; i++) {
        c[i].owner = r;
        c[i].rc = 0;
        c[i].sync = 0;
        c[i].req.tenant = r->ctx.tenant;
        __atomic_add_fetch(&r->commit_pending, 1, __ATOMIC_ACQ_REL);
        int rc = store_submit(rest_store(r), &c[i].req, on_commit_done, &c[i]);
        if (rc) {
            /* refused without a callback */
            c[i].rc = rc;
            c[i].sync = 1;
            __atomic_sub_fetch(&r->commit_pending, 1, __ATOMIC_ACQ_REL);
        }
    }
    if (__atomic_sub_fetch(&r->commit_pending, 1, __ATOMIC_ACQ_REL) == 0)
        rest_resume(r);
    return REST_SUSPENDED;
}

/* ---- answering a single write ------------------------------------------------- */

static int send_write(rest_req *r, unsigned status, const rest_write *w, uint64_t vid,
                      int64_t lu, int location, const char *what)
{
    const char *type = w->type->name;
    buf loc = BUF_INIT;
    rest_reply rep = {.status = status, .etag_vid = vid,
                      .last_modified_s = vid ? lu / 1000000 : -1};
    if (location) {
        buf_printf(&loc, "%s/%s/%s/_history/%llu", rest_base_url(r), type, w->id,
                   (unsigned long long)vid);
        if (!loc.err)
            rep.location = loc.data;
    }
    rest_prefer pref = rest_prefer_return(rest_header(r, "Prefer"));
    buf b = BUF_INIT;
    const char *bytes = w->kind == RW_DELETE ? NULL : w->op.bytes;
    if (pref == REST_RETURN_REPRESENTATION && bytes) {
        json_val *v;
        if (r->pretty && json_parse(r->a, bytes, w->op.len, 0, &v, NULL) == 0)
            json_write(&b, v, 1);
        else
            buf_put(&b, bytes, w->op.len);
    } else if (pref == REST_RETURN_OUTCOME) {
        char diag[200];
        if (w->id)
            snprintf(diag, sizeof diag, "%s %s/%s, version %llu", what, type, w->id,
                     (unsigned long long)vid);
        else /* a conditional delete that found nothing */
            snprintf(diag, sizeof diag, "%s no %s matches the condition", what, type);
        oo o;
        oo_init(&o, r->a);
        oo_add(&o, OO_INFORMATION, OO_INFORMATIONAL, diag, NULL);
        for (size_t i = 0; w->notes && i < w->notes->n; i++) {
            const oo_issue *is = oo_get(w->notes, i);
            oo_add(&o, is->severity, is->code, is->diagnostics, is->expression);
        }
        oo_to_buf(&o, &b, r->pretty);
    }
    rest_reply_take(&rep, &b);
    int rc = rest_send(r, &rep);
    buf_free(&loc);
    return rc;
}

/* If-None-Exist found one: 200 with its Location and ETag, the body by Prefer. */
static int send_existing(rest_req *r, rest_write *w)
{
    store_reader *rd;
    store_version v;
    int rc = rest_snapshot(r, &rd);
    if (!rc)
        rc = store_vread(rd, r->ctx.tenant, w->type->name, w->existing, w->cur_vid, &v);
    if (rc)
        return rest_send_errcode(r, rc, "the resource the condition found cannot be read");
    w->id = w->existing;
    w->op.bytes = v.bytes;
    w->op.len = v.len;
    return send_write(r, 200, w, w->cur_vid, w->cur_lu, 1, "exists already (If-None-Exist):");
}

/* A conditional delete of several: 204, or 200 with an OperationOutcome naming them. */
static int send_deleted_several(rest_req *r, const rest_write *w)
{
    rest_reply rep = {.status = 204, .last_modified_s = -1};
    buf b = BUF_INIT;
    if (rest_prefer_return(rest_header(r, "Prefer")) == REST_RETURN_OUTCOME) {
        buf d = BUF_INIT;
        buf_printf(&d, "deleted %zu resources (conditional delete '%.200s'):", w->nops,
                   w->cond);
        for (size_t i = 0; i < w->nops; i++)
            buf_printf(&d, "%s %s/%.*s", i ? "," : "", w->type->name, (int)w->ops[i].id_len,
                       w->ops[i].id);
        oo o;
        oo_init(&o, r->a);
        if (d.err || oo_add(&o, OO_INFORMATION, OO_INFORMATIONAL, buf_cstr(&d), NULL)) {
            buf_free(&d);
            return rest_send_errcode(r, ERR_NOMEM, "out of memory");
        }
        buf_free(&d);
        oo_to_buf(&o, &b, r->pretty);
        rep.status = 200;
    }
    rest_reply_take(&rep, &b);
    return rest_send(r, &rep);
}

static int answer(rest_req *r, rest_write *w)
{
    if (w->kind == RW_DELETE && w->nops > 1)
        return send_deleted_several(r, w);
    if (w->kind == RW_DELETE) {
        unsigned st = rest_prefer_return(rest_header(r, "Prefer")) == REST_RETURN_OUTCOME ? 200
                                                                                         : 204;
        if (!w->noop)
            return send_write(r, st, w, w->op.vid, w->op.last_updated, 0, "deleted");
        if (!w->cur_vid)
            return send_write(r, st, w, 0, 0, 0, "nothing to delete:");
        return send_write(r, st, w, w->cur_vid, w->cur_lu, 0, "already deleted:");
    }
    if (w->kind == RW_PATCH)
        return send_write(r, 200, w, w->op.vid, w->op.last_updated, 0, "patched");
    if (w->existing)
        return send_existing(r, w);
    int created = w->kind == RW_CREATE || w->op.created;
    return send_write(r, created ? 201 : 200, w, w->op.vid, w->op.last_updated, created,
                      created ? "created" : "updated");
}

static int send_refusal(rest_req *r, const rest_refusal *why)
{
    if (why->outcome)
        return rest_send_outcome(r, why->status, why->outcome);
    return rest_send_error(r, why->status, why->code, why->msg ? why->msg : "refused",
                           why->expr);
}

static int write_resume(rest_req *r);

/* Plan under a fresh snapshot, then commit (or answer a refusal or a no-op). */
static int write_continue(rest_req *r)
{
    rest_write *w = r->hctx;
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the store");
    int64_t now = ftime_now_us() / 1000 * 1000; /* the instant keeps milliseconds */
    rc = rest_write_plan(&r->ctx, rd, r->a, now, w);
    rest_snapshot_end(r);
    if (rc == REST_PLAN_REFUSED)
        return send_refusal(r, &w->why);
    if (rc < 0)
        return rest_send_errcode(r, rc, "the write could not be prepared");
    if (w->noop)
        return answer(r, w);
    rest_extras_sort(w->extras, w->nextra);
    memset(&w->commit, 0, sizeof w->commit);
    w->commit.req.ops = w->ops;
    w->commit.req.nops = w->nops;
    w->commit.req.extras = w->extras;
    w->commit.req.nextra = w->nextra;
    w->commit.req.conds = w->conds;
    w->commit.req.ncond = w->ncond;
    return rest_commit_submit(r, &w->commit, 1, write_resume);
}

static int write_resume(rest_req *r)
{
    rest_write *w = r->hctx;
    switch (rest_commit_classify(w->commit.rc, w->commit.sync)) {
    case REST_COMMITTED:
        /* its parameters are reindexed from now, not at the next look in a second */
        if (r->ctx.svc && !strcmp(w->type->name, "SearchParameter"))
            idx_reindex_kick(r->ctx.svc->reindex, r->ctx.tenant, rest_base_url(r));
        return answer(r, w);
    case REST_LOST_RACE:
        /* planned again: an If-Match that no longer holds is then a 412 of the plan (the
         * commit may also have lost to a change of the parameters, not of the resource) */
        if (r->retries++ < REST_MAX_RETRIES)
            return write_continue(r);
        return rest_send_error(r, 409, OO_CONFLICT,
                               "too many concurrent writes to this resource; retry", NULL);
    case REST_FAILED:
    default:
        return rest_send_errcode(r, w->commit.rc, "the resource could not be stored");
    }
}

int rest_write_run(rest_req *r, rest_write *w)
{
    r->hctx = w;
    if (!r->inflight) {
        if (!rest_writes_allowed(r))
            return rest_send_error(r, 503, OO_TRANSIENT, "the server is shutting down", NULL);
        r->inflight = 1;
    }
    /* one writer of an existing id at a time, in arrival order (gate.h) */
    if (w->kind != RW_CREATE && w->id &&
        !rest_gate_enter(r->site->gate, r, r->ctx.tenant, w->type->name, w->id, write_continue))
        return REST_SUSPENDED;
    return write_continue(r);
}
