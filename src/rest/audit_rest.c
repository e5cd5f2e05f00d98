/*
 * audit_rest.c -- the audit trail in the request path: what a request's event says
 * (interaction, outcome, agents from the verified token and the connection, entities
 * from the route or the commit's ops), and the read-only AuditEvent endpoints answered
 * from the Audit database (audit_rest.h, docs/AUDIT.md).
 *
 * Search walks the tenant's events newest first (or oldest first, _sort=date) by key,
 * parses each and keeps those every parameter matches; a page ends after _count
 * matches and its next link carries the last key (_cursor), which is stable because
 * events are only ever appended.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "audit/audit.h"
#include "rest/audit_rest.h"
#include "rest/params.h"
#include "auth/auth.h"
#include "base/err.h"
#include "base/time.h"
#include "fhir/outcome.h"
#include "store/codec.h"
#include "json/json.h"

#define AUDIT_MAX_COUNT 1000
#define AUDIT_DEFAULT_COUNT 50
#define AUDIT_MAX_CLAUSES 16 /* search parameters of one AuditEvent search */
#define AUDIT_MAX_ALTS 16    /* comma-separated values of one parameter */

int audit_rest_is_audit_type(const char *type)
{
    return type && !strcmp(type, "AuditEvent");
}

/* ---- what an event says -------------------------------------------------------- */

static const char *subtype_of(const rest_req *r)
{
    switch (r->ri) {
    case RI_READ:
        return "read";
    case RI_VREAD:
        return "vread";
    case RI_CREATE:
        return "create";
    case RI_UPDATE:
        return "update";
    case RI_DELETE:
        return "delete";
    case RI_PATCH:
        return "patch";
    case RI_HISTORY_INSTANCE:
        return "history-instance";
    case RI_HISTORY_TYPE:
        return "history-type";
    case RI_HISTORY_SYSTEM:
        return "history-system";
    case RI_SEARCH_TYPE:
        return "search-type";
    case RI_SEARCH_SYSTEM:
        return "search-system";
    case RI_BATCH:
        return r->audit_sub ? r->audit_sub : "batch";
    case RI_OPERATION:
        return "operation";
    case RI_CAPABILITIES:
        return "capabilities";
    default:
        break;
    }
    /* no interaction (an unknown path, a method the path does not take): the method */
    switch (r->method) {
    case RM_POST:
        return "create";
    case RM_PUT:
        return "update";
    case RM_DELETE:
        return "delete";
    case RM_PATCH:
        return "patch";
    default:
        return "read";
    }
}

static char action_of(const char *sub)
{
    if (!strcmp(sub, "create"))
        return 'C';
    if (!strcmp(sub, "update") || !strcmp(sub, "patch"))
        return 'U';
    if (!strcmp(sub, "delete"))
        return 'D';
    if (!strcmp(sub, "read") || !strcmp(sub, "vread") || !strncmp(sub, "history", 7) ||
        !strcmp(sub, "capabilities"))
        return 'R';
    return 'E'; /* searches, operations, batches, transactions */
}

static void peer_address(rest_req *r, char *out, size_t cap)
{
    out[0] = 0;
    if (!r->conn)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

/* Who asks and from where, into in (strings in r's lifetime or addr). */
static void who_of(rest_req *r, audit_info *in, char *addr, size_t cap)
{
    const auth_principal *p = r->ctx.principal;
    if (p) {
        in->client = p->client_id;
        in->user_ref = p->fhir_user;
        in->user_sub = p->sub;
        in->purpose = p->purpose;
    }
    peer_address(r, addr, cap);
    in->address = addr;
    in->site = r->ctx.base_url;
}

typedef struct qctx {
    buf *b;
    const char *skip; /* a parameter left out (the cursor of a next link) */
} qctx;

static int add_pair(void *ctx, const char *k, const char *v)
{
    qctx *q = ctx;
    if (q->skip && !strcmp(k, q->skip))
        return 0;
    if (q->b->len)
        buf_putc(q->b, '&');
    rest_form_put(q->b, k);
    buf_putc(q->b, '=');
    rest_form_put(q->b, v ? v : "");
    return 0;
}

/* The request's query, form-encoded, in r's arena ("" when none), or NULL. */
static char *query_of(rest_req *r, const char *skip)
{
    buf b = BUF_INIT;
    qctx q = {&b, skip};
    rest_query_each(r, add_pair, &q);
    char *s = b.err ? NULL : arena_strndup(r->a, b.data ? b.data : "", b.len);
    buf_free(&b);
    return s;
}

/* Build an event into an arena copy; *out, *len, *link. 0 or ERR_NOMEM. */
static int build(rest_req *r, const audit_info *in, char **out, size_t *len, size_t *link)
{
    buf b = BUF_INIT;
    int rc = audit_build(in, &b, link);
    char *s = rc ? NULL : arena_alloc(r->a, b.len);
    if (s)
        memcpy(s, b.data, b.len);
    *out = s;
    *len = b.len;
    buf_free(&b);
    return s ? 0 : ERR_NOMEM;
}

int audit_rest_commit(rest_req *r, rest_commit *c, size_t n)
{
    const rest_services *svc = r->site ? r->site->svc : NULL;
    if (!svc || !svc->audit)
        return 0;
    int batch = r->ri == RI_BATCH && r->audit_sub && !strcmp(r->audit_sub, "batch");
    char addr[64];
    audit_info in;
    memset(&in, 0, sizeof in);
    who_of(r, &in, addr, sizeof addr);
    in.recorded_us = ftime_now_us();
    for (size_t i = 0; i < n; i++) {
        store_req *q = &c[i].req;
        size_t ne = q->nops < AUDIT_MAX_ENTITIES ? q->nops : AUDIT_MAX_ENTITIES;
        audit_entity *ent = ne ? arena_alloc(r->a, sizeof *ent * ne) : NULL;
        if (ne && !ent)
            return ERR_NOMEM;
        for (size_t k = 0; k < ne; k++) {
            char *ty = arena_strndup(r->a, q->ops[k].type, q->ops[k].type_len);
            if (!ty)
                return ERR_NOMEM;
            ent[k] = (audit_entity){ty, q->ops[k].id, q->ops[k].id_len, q->ops[k].vid};
        }
        if (batch) /* an entry of a batch: its own interaction */
            in.subtype = !ne                               ? "batch"
                         : q->ops[0].op == STORE_OP_CREATE ? "create"
                         : q->ops[0].op == STORE_OP_DELETE ? "delete"
                                                           : "update";
        else
            in.subtype = subtype_of(r);
        in.action = action_of(in.subtype);
        in.ent = ent;
        in.nent = ne;
        char *json;
        size_t len, link;
        if (build(r, &in, &json, &len, &link))
            return ERR_NOMEM;
        store_extra *x = arena_alloc(r->a, sizeof *x * (q->nextra + 1));
        uint8_t *key = arena_alloc(r->a, AUDIT_KEY_LEN);
        if (!x || !key)
            return ERR_NOMEM;
        if (q->nextra)
            memcpy(x, q->extras, sizeof *x * q->nextra);
        audit_extra(&x[q->nextra], key, r->ctx.tenant, 0, json, len, link);
        q->extras = x;
        q->nextra++;
    }
    r->audit_units = c;
    r->audit_nunits = n;
    audit_kick(svc->audit); /* the queued events join the group commit of this one */
    return 0;
}

void audit_rest_answered(rest_req *r, const rest_reply *rep)
{
    const rest_services *svc = r->site ? r->site->svc : NULL;
    if (!svc || !svc->audit || r->method == RM_OPTIONS)
        return;
    if (r->route.kind == RR_NONE || r->route.kind == RR_HEALTH || r->route.kind == RR_METRICS)
        return;
    int batch = r->ri == RI_BATCH && r->audit_sub && !strcmp(r->audit_sub, "batch");
    for (size_t i = 0; !batch && i < r->audit_nunits; i++)
        if (r->audit_units[i].rc == 0 && !r->audit_units[i].sync)
            return; /* the event is in the change's commit */
    char addr[64];
    audit_info in;
    memset(&in, 0, sizeof in);
    who_of(r, &in, addr, sizeof addr);
    in.recorded_us = ftime_now_us();
    in.subtype = subtype_of(r);
    in.action = action_of(in.subtype);
    in.status = rep->status;
    if (rep->status >= 400 && r->audit_desc)
        in.desc = r->audit_desc;
    audit_entity ent[2];
    size_t ne = 0;
    const rest_route *rt = &r->route;
    if (rt->kind == RR_COMPARTMENT && rt->comp_type && rt->id && rest_id_valid(rt->id, rt->id_len))
        ent[ne++] = (audit_entity){rt->comp_type->name, rt->id, rt->id_len, 0};
    else if (rt->type && rt->id && rest_id_valid(rt->id, rt->id_len)) {
        uint64_t vid = 0;
        if (rt->kind == RR_VERSION && rt->vid && rest_vid_parse(rt->vid, rt->vid_len, &vid))
            vid = 0;
        if (!vid && rep->status < 300 && (r->ri == RI_READ))
            vid = rep->etag_vid;
        ent[ne++] = (audit_entity){rt->type->name, rt->id, rt->id_len, vid};
    }
    in.ent = ent;
    in.nent = ne;
    if (r->ri == RI_SEARCH_TYPE || r->ri == RI_SEARCH_SYSTEM) {
        /* the search as the client wrote it after the base: Type?query */
        const char *qs = query_of(r, NULL);
        buf u = BUF_INIT;
        if (rt->kind == RR_COMPARTMENT && rt->comp_type && rt->type)
            buf_printf(&u, "%s/%s/%s", rt->comp_type->name, rt->id, rt->type->name);
        else if (rt->type)
            buf_puts(&u, rt->type->name);
        buf_printf(&u, "?%s", qs ? qs : "");
        in.query = u.err ? NULL : arena_strndup(r->a, u.data, u.len);
        buf_free(&u);
    }
    buf b = BUF_INIT;
    size_t link;
    if (audit_build(&in, &b, &link) == 0)
        audit_enqueue(svc->audit, r->ctx.tenant, b.data, b.len, link);
    buf_free(&b);
}

/* ---- the endpoints ------------------------------------------------------------- */

/* 1 when the token holds an AuditEvent scope of its own (user/ or system/, not a
 * wildcard) with permission op; 1 without authorisation. */
static int may_see_audit(rest_req *r, unsigned op)
{
    const rest_services *svc = r->site->svc;
    if (!svc || !svc->auth)
        return 1;
    const auth_principal *p = r->ctx.principal;
    if (!p)
        return 0;
    for (size_t i = 0; i < p->rights.n; i++) {
        const auth_grant *g = &p->rights.g[i];
        if (!strcmp(g->type, "AuditEvent") && g->context != AUTH_CTX_PATIENT && (g->ops & op) &&
            !g->q_len)
            return 1;
    }
    return 0;
}

static int forbidden(rest_req *r)
{
    return rest_send_error(r, 403, OO_FORBIDDEN,
                           "AuditEvents are read with an AuditEvent scope of their own "
                           "(user/AuditEvent.rs or system/AuditEvent.rs); a wildcard scope "
                           "does not grant them",
                           NULL);
}

/* Serve a stored record as the AuditEvent it stands for (audit_expand). */
static void put_event(arena *a, buf *b, const void *v, size_t vn, const char *id)
{
    if (audit_expand(a, v, vn, id, b) && !b->err)
        b->err = ERR_NOMEM;
}

static int audit_read(rest_req *r)
{
    if (!may_see_audit(r, AUTH_READ))
        return forbidden(r);
    audit_flush(r->site->svc->audit); /* what was queued before this request is readable */
    uint64_t t;
    uint32_t seq;
    char msg[200];
    if (audit_id_parse(r->route.id, r->route.id_len, &t, &seq)) {
        snprintf(msg, sizeof msg, "AuditEvent/%.80s is not known (an AuditEvent id is t-seq)",
                 r->route.id);
        return rest_send_error(r, 404, OO_NOT_FOUND, msg, NULL);
    }
    uint8_t k[AUDIT_KEY_LEN];
    audit_key(k, r->ctx.tenant, t, seq);
    if (audit_is_head(k, sizeof k))
        k[15] = 0xfe; /* the chain head is no event: look for one that cannot exist */
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    const void *v;
    size_t vn;
    if (!rc)
        rc = store_get(rd, STORE_DB_AUDIT, k, sizeof k, &v, &vn);
    if (rc == ERR_NOTFOUND) {
        snprintf(msg, sizeof msg, "AuditEvent/%.80s is not known", r->route.id);
        return rest_send_error(r, 404, OO_NOT_FOUND, msg, NULL);
    }
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the audit trail");
    char id[AUDIT_ID_MAX + 1];
    audit_id_format(t, seq, id);
    buf b = BUF_INIT;
    put_event(r->a, &b, v, vn, id);
    return rest_send_buf(r, 200, &b);
}

/* One search clause: a parameter and its comma-separated alternatives. */
enum { P_DATE = 1, P_AGENT, P_AGENT_ID, P_ENTITY, P_TYPE, P_SUBTYPE, P_OUTCOME, P_ACTION };

typedef struct clause {
    int kind;
    size_t n;
    const char *alt[AUDIT_MAX_ALTS]; /* arena copies */
    int64_t lo, hi;                  /* P_DATE: the range matched, [lo, hi) */
    char prefix[3];                  /* P_DATE: eq gt lt ge le */
} clause;

typedef struct squery {
    rest_req *r;
    clause c[AUDIT_MAX_CLAUSES];
    size_t nc;
    unsigned count;
    int oldest_first;
    int have_cursor;
    uint8_t cursor[AUDIT_KEY_LEN];
    char err[300];
} squery;

static int split_alts(squery *q, clause *c, const char *v)
{
    const char *p = v ? v : "";
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (c->n == AUDIT_MAX_ALTS) {
            snprintf(q->err, sizeof q->err, "more than %d values in one parameter", AUDIT_MAX_ALTS);
            return -1;
        }
        if (!n) {
            snprintf(q->err, sizeof q->err, "an empty search value");
            return -1;
        }
        c->alt[c->n] = arena_strndup(q->r->a, p, n);
        if (!c->alt[c->n]) {
            snprintf(q->err, sizeof q->err, "out of memory");
            return -1;
        }
        c->n++;
        if (!e)
            return 0;
        p = e + 1;
    }
}

static int parse_date(squery *q, clause *c, const char *v)
{
    static const char *pfx[] = {"eq", "gt", "lt", "ge", "le"};
    memcpy(c->prefix, "eq", 3);
    if (!v)
        v = "";
    for (size_t i = 0; i < sizeof pfx / sizeof *pfx; i++)
        if (!strncmp(v, pfx[i], 2) && v[2] >= '0' && v[2] <= '9') {
            memcpy(c->prefix, pfx[i], 3);
            v += 2;
            break;
        }
    ftime ft;
    if (ftime_parse_datetime(v, strlen(v), &ft) || ftime_range(&ft, &c->lo, &c->hi)) {
        snprintf(q->err, sizeof q->err,
                 "date: '%.80s' is not a FHIR dateTime (with an optional prefix eq, gt, lt, "
                 "ge, le)",
                 v);
        return -1;
    }
    return 0;
}

static int param(void *ctx, const char *k, const char *v)
{
    squery *q = ctx;
    if (q->err[0])
        return 1;
    if (!strcmp(k, "_format") || !strcmp(k, "_pretty"))
        return 0;
    if (!strcmp(k, "_count")) {
        char *end;
        long n = v ? strtol(v, &end, 10) : -1;
        if (!v || *end || n < 0 || n > AUDIT_MAX_COUNT) {
            snprintf(q->err, sizeof q->err, "_count must be a number from 0 to %d",
                     AUDIT_MAX_COUNT);
            return 1;
        }
        q->count = (unsigned)n;
        return 0;
    }
    if (!strcmp(k, "_sort")) {
        if (v && !strcmp(v, "-date")) {
            q->oldest_first = 0;
        } else if (v && !strcmp(v, "date")) {
            q->oldest_first = 1;
        } else {
            snprintf(q->err, sizeof q->err,
                     "AuditEvents are sorted by date only: _sort=-date (newest first, the "
                     "default) or _sort=date");
            return 1;
        }
        return 0;
    }
    if (!strcmp(k, "_cursor")) {
        uint64_t t;
        uint32_t seq;
        if (!v || audit_id_parse(v, strlen(v), &t, &seq)) {
            snprintf(q->err, sizeof q->err, "_cursor is not an AuditEvent id");
            return 1;
        }
        audit_key(q->cursor, q->r->ctx.tenant, t, seq);
        q->have_cursor = 1;
        return 0;
    }
    int kind = 0;
    if (!strcmp(k, "date"))
        kind = P_DATE;
    else if (!strcmp(k, "agent") || !strcmp(k, "who"))
        kind = P_AGENT;
    else if (!strcmp(k, "agent:identifier") || !strcmp(k, "who:identifier"))
        kind = P_AGENT_ID;
    else if (!strcmp(k, "entity"))
        kind = P_ENTITY;
    else if (!strcmp(k, "type"))
        kind = P_TYPE;
    else if (!strcmp(k, "subtype"))
        kind = P_SUBTYPE;
    else if (!strcmp(k, "outcome"))
        kind = P_OUTCOME;
    else if (!strcmp(k, "action"))
        kind = P_ACTION;
    if (!kind) {
        snprintf(q->err, sizeof q->err,
                 "unknown or unsupported search parameter '%.80s' for AuditEvent (supported: "
                 "date, agent, who, agent:identifier, entity, type, subtype, outcome, action, "
                 "_count, _sort)",
                 k);
        return 1;
    }
    if (q->nc == AUDIT_MAX_CLAUSES) {
        snprintf(q->err, sizeof q->err, "more than %d search parameters", AUDIT_MAX_CLAUSES);
        return 1;
    }
    clause *c = &q->c[q->nc++];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    if (kind == P_DATE)
        return parse_date(q, c, v) ? 1 : 0;
    return split_alts(q, c, v) ? 1 : 0;
}

/* A token [system|]code against a Coding. */
static int token_match(const char *want, const json_val *coding)
{
    const char *code = json_get_str(coding, "code");
    const char *sys = json_get_str(coding, "system");
    const char *bar = strchr(want, '|');
    if (!code)
        return 0;
    if (!bar)
        return !strcmp(want, code);
    size_t sl = (size_t)(bar - want);
    if (strcmp(bar + 1, code))
        return 0;
    if (!sl)
        return !sys;
    return sys && strlen(sys) == sl && !memcmp(sys, want, sl);
}

/* s ends with "/" + ref, or equals it: a reference matched whether absolute or not. */
static int ref_match(const char *s, const char *want)
{
    if (!s)
        return 0;
    size_t n = strlen(s), w = strlen(want);
    if (n == w)
        return !strcmp(s, want);
    return n > w && s[n - w - 1] == '/' && !strcmp(s + n - w, want);
}

static int alt_match(const clause *c, const char *want, const json_val *ev)
{
    switch (c->kind) {
    case P_TYPE:
        return token_match(want, json_get(ev, "type"));
    case P_SUBTYPE: {
        const json_val *a = json_get(ev, "subtype");
        for (size_t i = 0; a && a->type == JSON_ARRAY && i < a->n; i++)
            if (token_match(want, &a->u.items[i]))
                return 1;
        return 0;
    }
    case P_OUTCOME: {
        const char *o = json_get_str(ev, "outcome");
        return o && !strcmp(o, want);
    }
    case P_ACTION: {
        const char *o = json_get_str(ev, "action");
        return o && !strcmp(o, want);
    }
    case P_ENTITY: {
        const json_val *a = json_get(ev, "entity");
        for (size_t i = 0; a && a->type == JSON_ARRAY && i < a->n; i++) {
            const char *ref = json_get_str(json_get(&a->u.items[i], "what"), "reference");
            if (!ref)
                continue;
            const char *h = strstr(ref, "/_history/");
            size_t n = h ? (size_t)(h - ref) : strlen(ref);
            if ((strlen(want) == n && !memcmp(ref, want, n)) || !strcmp(ref, want))
                return 1;
        }
        return 0;
    }
    case P_AGENT:
    case P_AGENT_ID: {
        const json_val *a = json_get(ev, "agent");
        const char *bar = strchr(want, '|');
        for (size_t i = 0; a && a->type == JSON_ARRAY && i < a->n; i++) {
            const json_val *who = json_get(&a->u.items[i], "who");
            if (c->kind == P_AGENT && ref_match(json_get_str(who, "reference"), want))
                return 1;
            const json_val *id = json_get(who, "identifier");
            const char *val = json_get_str(id, "value");
            const char *sys = json_get_str(id, "system");
            if (!val)
                continue;
            if (!bar && !strcmp(val, want))
                return 1;
            if (bar && !strcmp(bar + 1, val) && sys && strlen(sys) == (size_t)(bar - want) &&
                !memcmp(sys, want, (size_t)(bar - want)))
                return 1;
        }
        return 0;
    }
    default:
        return 0;
    }
}

static int date_match(const clause *c, const json_val *ev)
{
    const char *rec = json_get_str(ev, "recorded");
    ftime ft;
    int64_t lo, hi;
    if (!rec || ftime_parse_instant(rec, strlen(rec), &ft) || ftime_range(&ft, &lo, &hi))
        return 0;
    if (!strcmp(c->prefix, "gt"))
        return lo >= c->hi;
    if (!strcmp(c->prefix, "lt"))
        return lo < c->lo;
    if (!strcmp(c->prefix, "ge"))
        return lo >= c->lo;
    if (!strcmp(c->prefix, "le"))
        return lo < c->hi;
    return lo >= c->lo && lo < c->hi;
}

static int matches(const squery *q, const json_val *ev)
{
    for (size_t i = 0; i < q->nc; i++) {
        const clause *c = &q->c[i];
        if (c->kind == P_DATE) {
            if (!date_match(c, ev))
                return 0;
            continue;
        }
        int any = 0;
        for (size_t k = 0; k < c->n && !any; k++)
            any = alt_match(c, c->alt[k], ev);
        if (!any)
            return 0;
    }
    return 1;
}

static int audit_search(rest_req *r)
{
    if (!may_see_audit(r, AUTH_SEARCH))
        return forbidden(r);
    squery *q = arena_zalloc(r->a, sizeof *q);
    if (!q)
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    q->r = r;
    q->count = AUDIT_DEFAULT_COUNT;
    rest_query_each(r, param, q);
    if (q->err[0])
        return rest_send_error(r, 400, OO_NOT_SUPPORTED, q->err, NULL);
    audit_flush(r->site->svc->audit); /* what was queued before this request is found */
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the audit trail");
    uint8_t prefix[4];
    codec_put_u32(prefix, r->ctx.tenant);
    store_iter *it = NULL;
    if (q->oldest_first)
        rc = q->have_cursor ? store_scan(rd, STORE_DB_AUDIT, q->cursor, sizeof q->cursor, prefix,
                                         sizeof prefix, &it)
                            : store_scan(rd, STORE_DB_AUDIT, prefix, sizeof prefix, prefix,
                                         sizeof prefix, &it);
    else
        rc = q->have_cursor ? store_scan_rev_before(rd, STORE_DB_AUDIT, q->cursor,
                                                    sizeof q->cursor, prefix, sizeof prefix, &it)
                            : store_scan_rev(rd, STORE_DB_AUDIT, prefix, sizeof prefix, &it);
    if (rc)
        return rest_send_errcode(r, rc, "cannot read the audit trail");
    arena *scratch = arena_new(16 * 1024);
    buf b = BUF_INIT;
    const char *base = rest_base_url(r);
    char *self = query_of(r, NULL);
    buf_puts(&b, "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"link\":[{\"relation\":"
                 "\"self\",\"url\":");
    {
        buf u = BUF_INIT;
        buf_printf(&u, "%s/AuditEvent%s%s", base, self && *self ? "?" : "", self ? self : "");
        json_write_string(&b, u.data ? u.data : "", u.len);
        buf_free(&u);
    }
    size_t links_end = b.len; /* a next link goes here */
    buf entries = BUF_INIT, full = BUF_INIT; /* full: the event being looked at */
    unsigned found = 0;
    int more = 0;
    char last_id[AUDIT_ID_MAX + 1] = "";
    const void *k, *v;
    size_t kn, vn;
    while (scratch && (rc = store_scan_next(it, &k, &kn, &v, &vn)) == 0) {
        if (kn != AUDIT_KEY_LEN || audit_is_head(k, kn))
            continue;
        if (q->have_cursor) {
            int c = memcmp(k, q->cursor, AUDIT_KEY_LEN);
            if (q->oldest_first ? c <= 0 : c >= 0)
                continue; /* up to and including the previous page's last */
        }
        arena_reset(scratch);
        uint32_t tn0, seq0;
        uint64_t t0;
        audit_key_decode(k, &tn0, &t0, &seq0);
        char id0[AUDIT_ID_MAX + 1];
        audit_id_format(t0, seq0, id0);
        buf_reset(&full);
        json_val *ev;
        if (audit_expand(scratch, v, vn, id0, &full) || full.err ||
            json_parse(scratch, (char *)full.data, full.len, 0, &ev, NULL))
            continue;
        if (!matches(q, ev))
            continue;
        if (found == q->count) {
            more = 1;
            break;
        }
        uint32_t tn, seq;
        uint64_t t;
        audit_key_decode(k, &tn, &t, &seq);
        audit_id_format(t, seq, last_id);
        buf_puts(&entries, found ? ",{\"fullUrl\":\"" : "{\"fullUrl\":\"");
        buf_printf(&entries, "%s/AuditEvent/%s\",\"resource\":", base, last_id);
        buf_put(&entries, full.data, full.len);
        buf_puts(&entries, ",\"search\":{\"mode\":\"match\"}}");
        found++;
    }
    store_iter_close(it);
    arena_free(scratch);
    buf_free(&full);
    if (rc && rc != ERR_NOTFOUND && !more) {
        buf_free(&b);
        buf_free(&entries);
        return rest_send_errcode(r, rc, "cannot read the audit trail");
    }
    b.len = links_end;
    buf_puts(&b, "}");
    if (more && last_id[0]) {
        char *rest = query_of(r, "_cursor");
        buf u = BUF_INIT;
        buf_printf(&u, "%s/AuditEvent?%s%s_cursor=%s", base, rest ? rest : "",
                   rest && *rest ? "&" : "", last_id);
        buf_puts(&b, ",{\"relation\":\"next\",\"url\":");
        json_write_string(&b, u.data ? u.data : "", u.len);
        buf_puts(&b, "}");
        buf_free(&u);
    }
    buf_puts(&b, "]");
    if (found) {
        buf_puts(&b, ",\"entry\":[");
        buf_put(&b, entries.data, entries.len);
        buf_puts(&b, "]");
    }
    buf_puts(&b, "}");
    int err = entries.err;
    buf_free(&entries);
    if (err || b.err) {
        buf_free(&b);
        return rest_send_errcode(r, ERR_NOMEM, "out of memory");
    }
    return rest_send_buf(r, 200, &b);
}

void audit_rest_capability(jw *w)
{
    /* the R4 parameters this search answers (who and agent:identifier are extra: no
     * R4 definition, so not listed) */
    static const struct {
        const char *name, *type, *doc;
    } params[] = {
        {"date", "date", "recorded; prefixes eq gt lt ge le"},
        {"agent", "reference", "agent.who: reference, or identifier value"},
        {"entity", "reference", "entity.what, with or without _history/vid"},
        {"type", "token", "[system|]code"},
        {"subtype", "token", "[system|]code"},
        {"outcome", "token", "0, 4, 8"},
        {"action", "token", "C R U D E"},
    };
    jw_obj(w);
    jw_key(w, "type");
    jw_str(w, "AuditEvent");
    jw_key(w, "profile");
    jw_str(w, "http://hl7.org/fhir/StructureDefinition/AuditEvent");
    jw_key(w, "documentation");
    jw_str(w, "The server's audit trail (BALP shape), one event per request; read-only, "
              "newest first, needs an AuditEvent scope of its own (docs/AUDIT.md)");
    jw_key(w, "interaction");
    jw_arr(w);
    jw_obj(w);
    jw_key(w, "code");
    jw_str(w, "read");
    jw_end(w);
    jw_obj(w);
    jw_key(w, "code");
    jw_str(w, "search-type");
    jw_end(w);
    jw_end(w);
    jw_key(w, "searchParam");
    jw_arr(w);
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        jw_obj(w);
        jw_key(w, "name");
        jw_str(w, params[i].name);
        char def[96];
        snprintf(def, sizeof def, "http://hl7.org/fhir/SearchParameter/AuditEvent-%s",
                 params[i].name);
        jw_key(w, "definition");
        jw_str(w, def);
        jw_key(w, "type");
        jw_str(w, params[i].type);
        jw_key(w, "documentation");
        jw_str(w, params[i].doc);
        jw_end(w);
    }
    jw_end(w);
    jw_end(w);
}

int audit_rest_handle(rest_req *r)
{
    if (!r->route.type || !audit_rest_is_audit_type(r->route.type->name))
        return -1;
    static const char allow[] = "GET, HEAD";
    switch (r->ri) {
    case RI_READ:
        return audit_read(r);
    case RI_SEARCH_TYPE:
        if (r->route.kind == RR_TYPE)
            return audit_search(r);
        return rest_send_error(r, 400, OO_NOT_SUPPORTED,
                               "AuditEvents are searched with GET [base]/AuditEvent?... only "
                               "(not in a compartment, not by POST _search)",
                               NULL);
    case RI_CREATE:
    case RI_UPDATE:
    case RI_PATCH:
    case RI_DELETE:
        return rest_send_error_ex(r, 405, OO_NOT_SUPPORTED,
                                  "AuditEvents are the server's audit trail: they cannot be "
                                  "created, changed or deleted through the API",
                                  NULL, allow);
    default:
        return rest_send_error(r, 400, OO_NOT_SUPPORTED,
                               "AuditEvents are read (GET [base]/AuditEvent/id) and searched "
                               "(GET [base]/AuditEvent?...) only",
                               NULL);
    }
}
