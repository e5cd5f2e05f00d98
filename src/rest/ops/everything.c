/*
 * everything.c -- Patient/{id}/$everything, Patient/$everything and
 * Encounter/{id}/$everything: a compartment's resources and what they reference,
 * as searchset pages over one snapshot (docs/SEARCH.md section 4d).
 *
 * The answer is a concatenation of sections, each a query of the engine:
 *
 *   the focal resource               Patient?_id=1
 *   each type of the compartment     Observation?[compartment Patient/1]   (subject,
 *   in the definition's order        performer ...), and _lastUpdated=ge<_since>,
 *                                    <date>=ge<start>&<date>=le<end> where the type
 *                                    has a clinical date parameter
 *
 * so a page is "offset o of the concatenation" exactly as a search over several
 * types (rest/search.c), with the same snapshot paging: the first page runs at the
 * snapshot's t, its links carry _page_t, later pages read the versions of then.
 * Each page adds, as search.mode include, the resources its matches refer to
 * (Medication, Practitioner, Organization, Location ...) that are not themselves
 * in the compartment (those come as matches of their own section).
 *
 * POST takes the same parameters in a Parameters body (or none).
 *
 * Patient/$everything pages through the patients (in the order of Patient?) and,
 * for each, through its sections; its cursor is the patient's position and the
 * offset within that patient's sections (_page_offset, _page_skip).
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/num.h"
#include "rest/authz.h"
#include "rest/handlers.h"
#include "rest/ops/ops.h"
#include "rest/page.h"

#define EVERYTHING_MAX_PATIENTS 1000u /* patients one page of Patient/$everything visits */

/* The request's parameters. */
typedef struct evreq {
    rest_req *r;
    const char *comp;        /* Patient or Encounter */
    const char *start, *end; /* care dates (yyyy[-mm[-dd]]...) */
    const char *since;       /* _since instant */
    const char **types;      /* _type, or NULL: every type */
    size_t ntypes;
    unsigned count;
    int summary_count;
    int lenient;
    uint64_t page_t, offset, skip;
    int later;               /* a later page (_page_t given) */
    buf applied;             /* the parameters for the links */
    srch_query shown;        /* what the Bundle reports: count, total, ignored */
    srch_error e;
} evreq;

static int bad(evreq *ev, const char *fmt, const char *a)
{
    snprintf(ev->e.msg, sizeof ev->e.msg, fmt, a);
    ev->e.status = 400;
    ev->e.oo_code = OO_INVALID;
    return ERR_INVALID;
}

static void applied(evreq *ev, const char *k, const char *v)
{
    srch_link_param(&ev->applied, k, v);
}

static int parse_types(evreq *ev, const char *s)
{
    int rc = rest_parse_types(ev->r->a, s, &ev->types, &ev->ntypes, ev->e.msg,
                              sizeof ev->e.msg);
    if (rc == ERR_INVALID)
        ev->e.status = 400, ev->e.oo_code = OO_INVALID;
    else if (rc)
        snprintf(ev->e.msg, sizeof ev->e.msg, "out of memory");
    return rc;
}

/* A date value of start, end or _since: the engine's parser checks it (as the
 * _lastUpdated parameter of Patient), so the error names the operation's parameter. */
static int check_date(evreq *ev, const char *name, const char *v)
{
    srch_query q;
    srch_init(&q, "Patient");
    char val[80];
    srch_error e = {0};
    if (strlen(v) > 60)
        return bad(ev, "%s: the date is too long", name);
    snprintf(val, sizeof val, "ge%s", v);
    int rc = srch_add(&q, ev->r->a, "_lastUpdated", val, 0, NULL, &e);
    srch_done(&q);
    if (rc == ERR_NOMEM)
        return rc;
    if (rc || v[0] < '0' || v[0] > '9') {
        snprintf(ev->e.msg, sizeof ev->e.msg, "%s '%.60s' is not a date", name, v);
        ev->e.status = 400;
        ev->e.oo_code = OO_INVALID;
        return ERR_INVALID;
    }
    return 0;
}

static int on_param(void *ctx, const char *k, const char *v)
{
    evreq *ev = ctx;
    int rc = 0;
    uint64_t n;
    if (!v)
        v = "";
    if (!strcmp(k, "_format") || !strcmp(k, "_pretty"))
        return 0; /* the REST layer's */
    if (!strcmp(k, "start") || !strcmp(k, "end") || !strcmp(k, "_since")) {
        const char **slot = k[0] == 's' ? &ev->start : k[0] == 'e' ? &ev->end : &ev->since;
        if (*slot)
            rc = bad(ev, "%s given twice", k);
        else if (!(rc = check_date(ev, k, v)))
            *slot = v;
    } else if (!strcmp(k, "_type")) {
        rc = ev->types ? bad(ev, "_type given twice: list the types in one _type%s", "")
                       : parse_types(ev, v);
    } else if (!strcmp(k, "_count")) {
        if (num_parse_u64(v, UINT32_MAX, &n))
            rc = bad(ev, "_count '%.40s' is not a whole number", v);
        else
            ev->count = n > SRCH_MAX_COUNT ? SRCH_MAX_COUNT : (unsigned)n;
    } else if (!strcmp(k, "_summary") || !strcmp(k, "_elements")) {
        if (!strcmp(k, "_summary") && !strcmp(v, "count"))
            ev->summary_count = 1;
        else if (!strcmp(k, "_summary") && strcmp(v, "true") && strcmp(v, "false") &&
                 strcmp(v, "text") && strcmp(v, "data"))
            rc = bad(ev, "_summary '%.40s': expected true, text, data, count or false", v);
        /* else: applied when the resources are written (src/rest/shape.c) */
    } else if (!strcmp(k, "_page_t") || !strcmp(k, "_page_offset") || !strcmp(k, "_page_skip")) {
        uint64_t *slot = k[6] == 't' ? &ev->page_t : k[6] == 'o' ? &ev->offset : &ev->skip;
        if (num_parse_u64(v, INT64_MAX, &n) || (k[6] == 't' && !n) ||
            (k[6] == 's' && ev->r->route.id))
            return bad(ev, "bad %s paging parameter", k);
        *slot = n;
        ev->later |= k[6] == 't';
        return 0;
    } else if (ev->lenient) {
        if (ev->shown.nignored++)
            buf_puts(&ev->shown.ignored, ", ");
        buf_puts(&ev->shown.ignored, k);
        return 0;
    } else {
        snprintf(ev->e.msg, sizeof ev->e.msg,
                 "unknown parameter '%.60s' of $everything (it takes start, end, _since, "
                 "_type, _count, _summary and _elements)",
                 k);
        ev->e.status = 400;
        ev->e.oo_code = OO_NOT_SUPPORTED;
        return ERR_UNSUPPORTED;
    }
    if (!rc)
        applied(ev, k, v);
    return rc;
}

/* POST with a Parameters body: each parameter as the same name in the URL (_type may
 * repeat: its codes are joined). The value is the string of value[x] (valueDate,
 * valueInstant, valueCode, valueString, valueInteger ...). */
static int body_params(evreq *ev)
{
    rest_req *r = ev->r;
    json_error je = {0};
    json_val *root;
    if (json_parse(r->a, r->body.data, r->body.len, JSON_FHIR, &root, &je))
        return bad(ev, "the body is not JSON: %s", je.msg);
    const char *rt = json_get_str(root, "resourceType");
    if (!rt || strcmp(rt, "Parameters"))
        return bad(ev, "the body of a POST $everything is a Parameters resource%s", "");
    json_val *ps = json_get(root, "parameter");
    buf types = BUF_INIT;
    int rc = 0;
    for (uint32_t i = 0; ps && ps->type == JSON_ARRAY && i < ps->n && !rc; i++) {
        const json_val *p = &ps->u.items[i];
        const char *name = json_get_str(p, "name");
        const json_val *v = NULL;
        for (uint32_t k = 0; p->type == JSON_OBJECT && k < p->n && !v; k++)
            if (!strncmp(p->u.members[k].key, "value", 5))
                v = &p->u.members[k].val;
        if (!name)
            rc = bad(ev, "a parameter of the body has no name%s", "");
        else if (!v || (v->type != JSON_STRING && v->type != JSON_NUMBER))
            rc = bad(ev, "body parameter '%.60s' has no primitive value[x]", name);
        else if (!strcmp(name, "_type")) {
            if (types.len)
                buf_putc(&types, ',');
            buf_put(&types, v->u.s, v->n);
        } else {
            const char *val = arena_strndup(r->a, v->u.s, v->n); /* numbers: raw text */
            rc = val ? on_param(ev, name, val) : ERR_NOMEM;
        }
    }
    if (!rc && types.len)
        rc = types.err ? ERR_NOMEM : on_param(ev, "_type", buf_cstr(&types));
    buf_free(&types);
    return rc;
}

/* The date parameter start and end apply to for a type: its clinical date. The table
 * names it where `date` is missing or means something else (MedicationRequest's `date`
 * is its dosage timing; its care date is when it was written); otherwise `date`. */
static const char *date_param(const char *type)
{
    static const char *const other[][2] = {
        {"Condition", "onset-date"},       {"MedicationAdministration", "effective-time"},
        {"MedicationDispense", "whenhandedover"}, {"MedicationRequest", "authoredon"},
        {"MedicationStatement", "effective"}, {"ServiceRequest", "authored"},
        {"Specimen", "collected"},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (!strcmp(other[i][0], type))
            return other[i][1];
    const fhir_search_param *sp = fhir_search_param_find(type, "date");
    return sp && sp->type == FHIR_SP_DATE ? "date" : NULL;
}

static int type_wanted(const evreq *ev, const char *type)
{
    if (!ev->types)
        return 1;
    for (size_t i = 0; i < ev->ntypes; i++)
        if (!strcmp(ev->types[i], type))
            return 1;
    return 0;
}

/* The token's view of the section's type (its matches and totals stay within it): 0,
 * 2 when the token may not search the type at all (the section is left out), or
 * ERR_INVALID / ERR_NOMEM with ev->e filled (403: scopes that cannot be enforced). */
static int restrict_section(evreq *ev, srch_query *q)
{
    char m[400];
    int az = rest_authz_restrict(ev->r, q, m, sizeof m);
    if (az == REST_AUTHZ_ALL || az == REST_AUTHZ_SOME)
        return 0;
    srch_done(q);
    if (az == REST_AUTHZ_FORBIDDEN)
        return 2;
    if (az == REST_AUTHZ_NOT_YET) {
        snprintf(ev->e.msg, sizeof ev->e.msg, "%.299s", m);
        ev->e.status = 403;
        ev->e.oo_code = OO_NOT_SUPPORTED;
        return ERR_INVALID;
    }
    return az;
}

/* Section i of focal resource comp/id: 0 and *q ready to run, 1 past the last section,
 * 2 when the section is empty by construction (a type _type leaves out). */
static int section(evreq *ev, const char *id, size_t i, srch_query *q)
{
    arena *a = ev->r->a;
    const char *type = i == 0 ? ev->comp : fhir_compartment_type(ev->comp, i - 1);
    if (!type)
        return 1;
    const char *const *codes;
    if (i && !strcmp(type, ev->comp) &&
        (fhir_compartment(ev->comp, type, &codes) != 1 || !strcmp(codes[0], "{def}")))
        return 2; /* the Encounter itself is section 0 */
    if (!type_wanted(ev, type))
        return 2;
    srch_init(q, type);
    srch_error *e = &ev->e;
    int rc = i == 0 ? srch_add(q, a, "_id", id, 0, NULL, e)
                    : srch_add_compartment(q, a, ev->comp, id, e);
    if (!rc && i && !strcmp(type, ev->comp)) /* Patient.link: other patients only */
        rc = srch_add(q, a, "_id:not", id, 0, NULL, e);
    char val[80];
    if (!rc && ev->since) {
        snprintf(val, sizeof val, "ge%s", ev->since);
        rc = srch_add(q, a, "_lastUpdated", val, 0, NULL, e);
    }
    const char *dp = i ? date_param(type) : NULL;
    if (!rc && dp && ev->start) {
        snprintf(val, sizeof val, "ge%s", ev->start);
        rc = srch_add(q, a, dp, val, 0, NULL, e);
    }
    if (!rc && dp && ev->end) {
        snprintf(val, sizeof val, "le%s", ev->end);
        rc = srch_add(q, a, dp, val, 0, NULL, e);
    }
    if (rc) {
        srch_done(q);
        return rc < 0 ? rc : ERR_INVALID;
    }
    q->spc = ev->r->ctx.spc;
    q->base_url = rest_base_url(ev->r);
    q->page_t = ev->page_t;
    q->total = 2;
    return restrict_section(ev, q);
}

/* One focal resource's sections from offset *offset on, into the page while
 * *remaining; *total: its matches. */
static int focal_page(evreq *ev, store_reader *rd, const char *id, uint64_t *offset,
                      unsigned *remaining, uint64_t *total, rest_page *pg)
{
    *total = 0;
    for (size_t i = 0;; i++) {
        srch_query q;
        int rc = section(ev, id, i, &q);
        if (rc == 1)
            return 0;
        if (rc == 2)
            continue;
        if (rc)
            return rc;
        uint64_t cur, versions;
        if (i && !store_count(rd, ev->r->ctx.tenant, q.type, &cur, &versions) && !versions) {
            srch_done(&q); /* never a resource of this type: nothing in any snapshot */
            continue;
        }
        q.page_offset = *offset;
        q.count = *remaining;
        srch_result res;
        rc = srch_run(&q, rd, ev->r->a, ev->r->ctx.tenant, &res, &ev->e);
        if (!rc) {
            *total += res.total;
            *offset = *offset > res.total ? *offset - res.total : 0;
            if (*remaining) {
                int full = rest_page_add(ev->r, rd, q.type, &res, pg);
                if (full < 0)
                    rc = ERR_NOMEM;
                *remaining = full ? 0 : *remaining - (unsigned)res.n;
            }
        }
        srch_done(&q);
        if (rc)
            return rc;
    }
}

/* Which included resources stay: those of _type, and none the page lists as a match
 * of a compartment (without _since/start/end every member of the compartment is a
 * match of its own section, on this page or another). */
typedef struct keepctx {
    evreq *ev;
    const char **ids; /* the focal resources of the page */
    size_t nids;
} keepctx;

static int keep_included(void *ctx, store_reader *rd, const store_version *v)
{
    keepctx *k = ctx;
    evreq *ev = k->ev;
    if (!type_wanted(ev, v->type))
        return 0;
    if (ev->since || ev->start || ev->end)
        return 1;
    for (size_t i = 0; i < k->nids; i++)
        if (!strcmp(v->type, ev->comp) && !strcmp(v->id, k->ids[i]))
            return 0;
    return srch_in_compartment(rd, ev->r->a, ev->r->ctx.tenant, ev->comp, k->ids, k->nids,
                               v->type, v->id) != 1;
}

static int add_includes(evreq *ev, store_reader *rd, rest_page *pg, const char **ids,
                        size_t nids)
{
    srch_query inc;
    srch_init(&inc, ev->comp);
    inc.ninc = 1; /* `*` forward from every type */
    rest_authz_includes(ev->r, &inc); /* what the token may see, and nothing else */
    keepctx k = {ev, ids, nids};
    int rc = rest_page_includes(ev->r, rd, &inc, pg, keep_included, &k, &ev->e);
    srch_done(&inc);
    return rc;
}

static int send(evreq *ev, rest_page *pg, const char *next_extra, uint64_t next_offset,
                int prev)
{
    rest_req *r = ev->r;
    uint64_t start = ev->shown.page_offset;
    char skip[48];
    snprintf(skip, sizeof skip, "_page_skip=%llu", (unsigned long long)ev->skip);
    const char *self = rest_page_link(r, NULL, &ev->applied, ev->later ? ev->page_t : 0, start,
                                      ev->later && ev->skip ? skip : NULL);
    const char *next = NULL, *previous = NULL;
    if (pg->more && ev->count && !ev->summary_count)
        next = rest_page_link(r, NULL, &ev->applied, ev->page_t, next_offset, next_extra);
    if (prev && start)
        previous = rest_page_link(r, NULL, &ev->applied, ev->page_t,
                                  start > ev->count ? start - ev->count : 0, NULL);
    return rest_page_send(r, &ev->shown, pg, self, next, previous);
}

static int fail(evreq *ev, int rc)
{
    int out = rest_search_failed(ev->r, rc, &ev->e);
    srch_done(&ev->shown);
    buf_free(&ev->applied);
    return out;
}

/* Patient/{id}/$everything, Encounter/{id}/$everything */
static int everything_one(evreq *ev, store_reader *rd)
{
    rest_req *r = ev->r;
    const char *id = r->route.id;
    int in = rest_authz_visible(r, rd, ev->comp, id, 0);
    if (in <= 0) { /* outside the token's rights: 403 whether it exists or not */
        char msg[160];
        snprintf(msg, sizeof msg, "%s/%.64s is not within the token's rights", ev->comp, id);
        srch_done(&ev->shown);
        buf_free(&ev->applied);
        return in ? rest_send_errcode(r, in, "cannot read the store")
                  : rest_send_error(r, 403, OO_FORBIDDEN, msg, NULL);
    }
    if (!ev->later) {
        store_version v;
        int rc = store_read(rd, r->ctx.tenant, ev->comp, id, &v);
        if (rc) {
            char msg[160];
            snprintf(msg, sizeof msg, "%s/%s %s", ev->comp, id,
                     rc == ERR_GONE ? "was deleted" : "is not known");
            srch_done(&ev->shown);
            buf_free(&ev->applied);
            if (rc == ERR_GONE || rc == ERR_NOTFOUND)
                return rest_send_error(r, rc == ERR_GONE ? 410 : 404,
                                       rc == ERR_GONE ? OO_DELETED : OO_NOT_FOUND, msg, NULL);
            return rest_send_errcode(r, rc, "cannot read the store");
        }
    }
    rest_page pg = {.has_total = 1};
    uint64_t offset = ev->offset;
    unsigned remaining = ev->summary_count ? 0 : ev->count;
    int rc = focal_page(ev, rd, id, &offset, &remaining, &pg.total, &pg);
    if (!rc)
        rc = add_includes(ev, rd, &pg, &id, 1);
    if (rc)
        return fail(ev, rc);
    pg.more = pg.total > ev->offset + pg.used;
    rc = send(ev, &pg, NULL, ev->offset + pg.used, 1);
    srch_done(&ev->shown);
    buf_free(&ev->applied);
    return rc;
}

/* Patient/$everything: patient by patient, each as everything_one. */
static int everything_all(evreq *ev, store_reader *rd)
{
    rest_req *r = ev->r;
    rest_page pg = {0};
    unsigned remaining = ev->summary_count ? 0 : ev->count;
    uint64_t pidx = ev->offset, skip = ev->skip, npatients = 0;
    const char **ids = arena_alloc(r->a, sizeof *ids * EVERYTHING_MAX_PATIENTS);
    size_t nids = 0;
    int rc = ids ? 0 : ERR_NOMEM, done = 0;
    while (!rc && remaining && nids < EVERYTHING_MAX_PATIENTS && !done) {
        srch_query pq; /* the next patients, in the order of Patient? at page_t */
        srch_init(&pq, "Patient");
        pq.page_t = ev->page_t;
        pq.page_offset = pidx;
        pq.count = 64;
        pq.total = 2;
        pq.spc = r->ctx.spc;
        pq.base_url = rest_base_url(r);
        srch_result pr;
        rc = restrict_section(ev, &pq); /* the patients the token may see */
        if (rc == 2) { /* none: decided before, cannot happen */
            done = 1;
            rc = 0;
            break;
        }
        if (!rc)
            rc = srch_run(&pq, rd, r->a, r->ctx.tenant, &pr, &ev->e);
        srch_done(&pq);
        if (rc)
            break;
        npatients = pr.total;
        done = pr.n == 0;
        for (size_t i = 0; i < pr.n && !rc && remaining && nids < EVERYTHING_MAX_PATIENTS;
             i++) {
            const char *id = srch_rn_id(rd, r->a, r->ctx.tenant, "Patient", pr.rn[i]);
            if (!id) {
                pidx++, skip = 0;
                continue;
            }
            ids[nids++] = id;
            uint64_t off = skip, total;
            size_t before = pg.used;
            rc = focal_page(ev, rd, id, &off, &remaining, &total, &pg);
            uint64_t taken = skip + (pg.used - before);
            if (!rc && remaining == 0 && taken < total) {
                skip = taken; /* the page ends within this patient */
            } else {
                pidx++;
                skip = 0;
            }
        }
    }
    if (!rc)
        rc = add_includes(ev, rd, &pg, ids, nids);
    if (rc)
        return fail(ev, rc);
    pg.more = pidx < npatients;
    char extra[48];
    snprintf(extra, sizeof extra, "_page_skip=%llu", (unsigned long long)skip);
    rc = send(ev, &pg, skip ? extra : NULL, pidx, 0);
    srch_done(&ev->shown);
    buf_free(&ev->applied);
    return rc;
}

int rest_op_everything(rest_req *r)
{
    const char *type = r->route.type ? r->route.type->name : "";
    if (strcmp(type, "Patient") && strcmp(type, "Encounter"))
        return rest_send_error(r, 400, OO_NOT_SUPPORTED,
                               "$everything is defined for Patient and Encounter", NULL);
    if (!r->route.id && strcmp(type, "Patient"))
        return rest_send_error(r, 400, OO_NOT_SUPPORTED,
                               "Encounter/$everything is defined on one Encounter only: "
                               "Encounter/{id}/$everything",
                               NULL);
    evreq ev = {.r = r, .comp = type, .count = SRCH_DEFAULT_COUNT,
                .lenient = rest_is_lenient(r)};
    srch_init(&ev.shown, type);
    rest_query_each(r, on_param, &ev);
    if (!ev.e.msg[0] && r->method == RM_POST && r->body.len) {
        int brc = body_params(&ev);
        if (brc == ERR_NOMEM && !ev.e.msg[0])
            snprintf(ev.e.msg, sizeof ev.e.msg, "out of memory");
        if (brc && brc != ERR_NOMEM && !ev.e.status)
            ev.e.status = 400, ev.e.oo_code = OO_INVALID;
    }
    if (ev.applied.err || (!ev.e.status && ev.e.msg[0]))
        return fail(&ev, ERR_NOMEM);
    if (ev.e.status)
        return fail(&ev, ERR_INVALID);
    if (!r->route.id && ev.skip && !ev.later)
        return fail(&ev, bad(&ev, "_page_skip needs _page_t%s", ""));
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc) {
        srch_done(&ev.shown);
        buf_free(&ev.applied);
        return rest_send_errcode(r, rc, "cannot read the store");
    }
    uint64_t snap = store_reader_t(rd);
    if (ev.page_t > snap)
        return fail(&ev, bad(&ev, "_page_t names a state the server has not reached%s", ""));
    if (!ev.page_t)
        ev.page_t = snap;
    ev.shown.count = ev.count;
    ev.shown.page_offset = ev.offset;
    ev.shown.summary_count = ev.summary_count;
    ev.shown.total = 2;
    return r->route.id ? everything_one(&ev, rd) : everything_all(&ev, rd);
}
