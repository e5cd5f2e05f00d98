/*
 * router.c -- URL path -> route (which interaction shape, which type/id/vid).
 *
 * The FHIR base is REST_BASE_PATH ("/fhir"). Paths are split on '/' after the
 * base; an empty trailing segment is ignored so "[base]/" is the base and
 * "[base]/Patient/" is the type (clients disagree about trailing slashes):
 *
 *   /healthz                       RR_HEALTH
 *   /metrics                       RR_METRICS
 *   /fhir  /fhir/                  RR_BASE          (batch/transaction)
 *   /fhir/metadata                 RR_METADATA
 *   /fhir/_history                 RR_SYS_HISTORY
 *   /fhir/T                        RR_TYPE          (create, search)
 *   /fhir/T/_history               RR_TYPE_HISTORY
 *   /fhir/T/_search                RR_TYPE_SEARCH   (search with a form body)
 *   /fhir/T/id                     RR_INSTANCE      (read, update, delete)
 *   /fhir/T/id/_history            RR_INST_HISTORY
 *   /fhir/T/id/_history/vid        RR_VERSION       (vread)
 *   /fhir/C/id/T                   RR_COMPARTMENT   (search of T in compartment C/id)
 *   /fhir/$op  /fhir/T/$op  /fhir/T/id/$op   RR_OPERATION
 *   /.well-known/smart-configuration, /fhir/.well-known/smart-configuration
 *                                  RR_SMART_CONFIG  (SMART App Launch discovery)
 *   /fhir/name/...                 any of the above under /fhir, in tenant `name`
 *                                  (a lower-case first segment: docs/TENANTS.md)
 *   /auth/token  /auth/jwks        RR_AUTH_TOKEN, RR_AUTH_JWKS (built-in authorization
 *                                  server, src/auth/issuer.h)
 *
 * A first segment that is not a concrete resource type is RR_UNKNOWN_TYPE (404
 * with a message naming it); any other shape is RR_BAD (404). Ids and vids are
 * only located here; their syntax is checked by the handlers so that the error
 * can say what was wrong. rest_classify then names the interaction of a route
 * and a method from one table.
 */
#include <string.h>

#include "auth/tenant.h"
#include "base/err.h"
#include "rest/limits.h"
#include "rest/route.h"

rest_method rest_method_parse(const char *m)
{
    if (!strcmp(m, "GET"))
        return RM_GET;
    if (!strcmp(m, "HEAD"))
        return RM_HEAD;
    if (!strcmp(m, "POST"))
        return RM_POST;
    if (!strcmp(m, "PUT"))
        return RM_PUT;
    if (!strcmp(m, "DELETE"))
        return RM_DELETE;
    if (!strcmp(m, "PATCH"))
        return RM_PATCH;
    if (!strcmp(m, "OPTIONS"))
        return RM_OPTIONS;
    return RM_OTHER;
}

#define MAX_SEGS 5

int rest_route_parse(arena *a, const char *path, rest_route *out)
{
    memset(out, 0, sizeof *out);
    if (!strcmp(path, "/healthz")) {
        out->kind = RR_HEALTH;
        return 0;
    }
    if (!strcmp(path, "/metrics")) {
        out->kind = RR_METRICS;
        return 0;
    }
    if (!strcmp(path, "/.well-known/smart-configuration") ||
        !strcmp(path, REST_BASE_PATH "/.well-known/smart-configuration")) {
        out->kind = RR_SMART_CONFIG;
        out->type_name = path[1] == '.' ? NULL : ".well-known"; /* the 404 without auth */
        return 0;
    }
    if (!strcmp(path, "/auth/token") || !strcmp(path, "/auth/jwks")) {
        out->kind = path[6] == 't' ? RR_AUTH_TOKEN : RR_AUTH_JWKS;
        return 0;
    }
    size_t bl = sizeof REST_BASE_PATH - 1;
    if (strncmp(path, REST_BASE_PATH, bl) != 0 || (path[bl] != 0 && path[bl] != '/')) {
        out->kind = RR_NONE;
        return 0;
    }
    const char *p = path + bl;
    if (*p == '/') {
        size_t tn = strcspn(p + 1, "/");
        if (tenant_segment(p + 1, tn)) {
            if (!(out->tenant = arena_strndup(a, p + 1, tn)))
                return ERR_NOMEM;
            out->tenant_len = tn;
            p += 1 + tn;
            if (!strcmp(p, "/.well-known/smart-configuration")) {
                out->kind = RR_SMART_CONFIG;
                out->type_name = ".well-known";
                return 0;
            }
        }
    }
    const char *seg[MAX_SEGS];
    size_t segn[MAX_SEGS];
    int nseg = 0;
    while (*p == '/') {
        p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 0) {
            if (*p == 0)
                break; /* trailing slash */
            out->kind = RR_BAD; /* "//" inside the path */
            return 0;
        }
        if (nseg == MAX_SEGS) {
            out->kind = RR_BAD;
            return 0;
        }
        seg[nseg] = s;
        segn[nseg] = n;
        nseg++;
    }
    if (nseg == 0) {
        out->kind = RR_BASE;
        return 0;
    }
#define SEG_IS(i, lit) (segn[i] == sizeof(lit) - 1 && !memcmp(seg[i], lit, segn[i]))
    if (nseg == 1 && SEG_IS(0, "metadata")) {
        out->kind = RR_METADATA;
        return 0;
    }
    if (nseg == 1 && SEG_IS(0, "_history")) {
        out->kind = RR_SYS_HISTORY;
        return 0;
    }
    /* operations: the last segment starts with '$' */
    if (segn[nseg - 1] > 1 && seg[nseg - 1][0] == '$' && nseg <= 3) {
        out->op = arena_strndup(a, seg[nseg - 1] + 1, segn[nseg - 1] - 1);
        if (!out->op)
            return ERR_NOMEM;
        out->kind = RR_OPERATION;
        if (nseg >= 2) {
            out->type_name = arena_strndup(a, seg[0], segn[0]);
            if (!out->type_name)
                return ERR_NOMEM;
            out->type = fhir_resource_type(seg[0], segn[0]);
            if (!out->type)
                out->kind = RR_UNKNOWN_TYPE;
        }
        if (nseg == 3) {
            out->id = arena_strndup(a, seg[1], segn[1]);
            if (!out->id)
                return ERR_NOMEM;
            out->id_len = segn[1];
        }
        return 0;
    }
    out->type_name = arena_strndup(a, seg[0], segn[0]);
    if (!out->type_name)
        return ERR_NOMEM;
    out->type = fhir_resource_type(seg[0], segn[0]);
    if (!out->type) {
        out->kind = RR_UNKNOWN_TYPE;
        return 0;
    }
    if (nseg == 1) {
        out->kind = RR_TYPE;
        return 0;
    }
    if (nseg == 2 && SEG_IS(1, "_history")) {
        out->kind = RR_TYPE_HISTORY;
        return 0;
    }
    if (nseg == 2 && SEG_IS(1, "_search")) {
        out->kind = RR_TYPE_SEARCH;
        return 0;
    }
    out->id = arena_strndup(a, seg[1], segn[1]);
    if (!out->id)
        return ERR_NOMEM;
    out->id_len = segn[1];
    if (nseg == 2) {
        out->kind = RR_INSTANCE;
        return 0;
    }
    if (nseg == 3 && !SEG_IS(2, "_history")) {
        const fhir_type *t = fhir_resource_type(seg[2], segn[2]);
        if (!t) {
            out->kind = RR_BAD;
            return 0;
        }
        out->comp_type = out->type;
        out->type = t;
        out->type_name = arena_strndup(a, seg[2], segn[2]);
        if (!out->type_name)
            return ERR_NOMEM;
        out->kind = RR_COMPARTMENT;
        return 0;
    }
    if (!SEG_IS(2, "_history")) {
        out->kind = RR_BAD;
        return 0;
    }
    if (nseg == 3) {
        out->kind = RR_INST_HISTORY;
        return 0;
    }
    if (nseg == 4) {
        out->vid = arena_strndup(a, seg[3], segn[3]);
        if (!out->vid)
            return ERR_NOMEM;
        out->vid_len = segn[3];
        out->kind = RR_VERSION;
        return 0;
    }
#undef SEG_IS
    out->kind = RR_BAD;
    return 0;
}

int rest_id_valid(const char *id, size_t n)
{
    if (n == 0 || n > REST_MAX_ID)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

int rest_vid_parse(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19 || s[0] == '0')
        return ERR_INVALID;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return ERR_INVALID;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > INT64_MAX)
        return ERR_INVALID;
    *out = v;
    return 0;
}

/* Which interaction each route answers per method (RI_OTHER: not allowed there),
 * and the Allow header of its 405. HEAD is answered as GET. */
typedef struct route_methods {
    const char *allow;
    rest_interaction get, post, put, patch, del;
} route_methods;

#define NO RI_OTHER
static const route_methods route_table[] = {
    [RR_HEALTH] = {"GET, HEAD", RI_HEALTH, NO, NO, NO, NO},
    [RR_METRICS] = {"GET, HEAD", RI_METRICS, NO, NO, NO, NO},
    [RR_BASE] = {"GET, HEAD, POST", RI_SEARCH_SYSTEM, RI_BATCH, NO, NO, NO},
    [RR_METADATA] = {"GET, HEAD", RI_CAPABILITIES, NO, NO, NO, NO},
    [RR_SYS_HISTORY] = {"GET, HEAD", RI_HISTORY_SYSTEM, NO, NO, NO, NO},
    [RR_TYPE] = {"GET, HEAD, POST, PUT, PATCH, DELETE", RI_SEARCH_TYPE, RI_CREATE, RI_UPDATE,
                 RI_PATCH, RI_DELETE},
    [RR_TYPE_HISTORY] = {"GET, HEAD", RI_HISTORY_TYPE, NO, NO, NO, NO},
    [RR_TYPE_SEARCH] = {"POST", NO, RI_SEARCH_TYPE, NO, NO, NO},
    [RR_INSTANCE] = {"GET, HEAD, PUT, PATCH, DELETE", RI_READ, NO, RI_UPDATE, RI_PATCH, RI_DELETE},
    [RR_INST_HISTORY] = {"GET, HEAD", RI_HISTORY_INSTANCE, NO, NO, NO, NO},
    [RR_VERSION] = {"GET, HEAD", RI_VREAD, NO, NO, NO, NO},
    [RR_COMPARTMENT] = {"GET, HEAD", RI_SEARCH_TYPE, NO, NO, NO, NO},
    [RR_OPERATION] = {"GET, HEAD, POST", RI_OPERATION, RI_OPERATION, NO, NO, NO},
    [RR_SMART_CONFIG] = {"GET, HEAD", RI_CAPABILITIES, NO, NO, NO, NO},
    [RR_AUTH_TOKEN] = {"POST", NO, RI_AUTH, NO, NO, NO},
    [RR_AUTH_JWKS] = {"GET, HEAD", RI_AUTH, NO, NO, NO, NO},
};
#undef NO

int rest_classify(rest_route_kind kind, rest_method method, rest_interaction *ri,
                  const char **allow)
{
    *ri = RI_OTHER;
    *allow = NULL;
    unsigned k = (unsigned)kind;
    if (k >= sizeof route_table / sizeof route_table[0] || !route_table[k].allow)
        return 0;
    const route_methods *rm = &route_table[k];
    *allow = rm->allow;
    switch (method) {
    case RM_GET:
    case RM_HEAD: *ri = rm->get; break;
    case RM_POST: *ri = rm->post; break;
    case RM_PUT: *ri = rm->put; break;
    case RM_PATCH: *ri = rm->patch; break;
    case RM_DELETE: *ri = rm->del; break;
    default: break;
    }
    return *ri == RI_OTHER;
}
