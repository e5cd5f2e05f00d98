/*
 * rest.c -- the pure parts of the REST layer, each through its own header:
 * the router (route.h), content negotiation (conneg.h), headers and parameters
 * (params.h), the commit classifier and the write plan (write.h), and the
 * per-resource write gate (gate.h). No HTTP server runs here: the black-box
 * tests in tests/http cover the wiring, these cover the decisions.
 *
 * Shape: most sections are tables, one row per input with the answer the header
 * promises, so an edge case is one line and a failure names its row. The expected
 * tables are written from the headers' contracts (and the FHIR/HTTP rules they
 * cite), not copied from the implementation's tables.
 *
 *   section             drives                        against
 *   -------             ------                        -------
 *   router              rest_route_parse/classify     path and method tables
 *   conneg              rest_conneg_*                 _format / Accept / Content-Type
 *   params              ETags, preconditions ...      header tables
 *   commit classifier   rest_commit_classify          rc x sync
 *   write plan          rest_write_plan               a real LMDB store in a temp dir
 *   gate                rest_gate_*                   recording hooks; a FIFO model fed
 *                                                     by testrand.h; a threaded run
 *
 * The write plan needs real reads (its contract is about the state it reads), so
 * it runs on a store opened in /tmp and removed at the end. The gate's hooks only
 * record (single-thread parts) or signal a condition variable (threaded part), so
 * the order of parks and wakes is what is asserted.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/time.h"
#include "fhir/model.h"
#include "rest/conneg.h"
#include "rest/gate.h"
#include "rest/limits.h"
#include "rest/params.h"
#include "rest/route.h"
#include "rest/write.h"
#include "store/store.h"
#include "tap.h"
#include "testrand.h"
#include "json/json.h"

/* s with control and non-ASCII bytes shown as \xNN, for one-line TAP messages. */
static const char *show(const char *s)
{
    static char out[256];
    size_t k = 0;
    if (!s)
        return "(null)";
    for (; *s && k + 5 < sizeof out; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c < 0x7F)
            out[k++] = (char)c;
        else
            k += (size_t)snprintf(out + k, sizeof out - k, "\\x%02X", c);
    }
    out[k] = 0;
    return out;
}

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* =============================================================================
 * 1. Router
 * ============================================================================= */

static const char *kind_name(rest_route_kind k)
{
    static const char *const names[] = {
        "RR_NONE",        "RR_HEALTH",       "RR_METRICS",     "RR_BASE",
        "RR_METADATA",    "RR_SYS_HISTORY",  "RR_TYPE",        "RR_TYPE_HISTORY",
        "RR_TYPE_SEARCH", "RR_INSTANCE",     "RR_INST_HISTORY", "RR_VERSION",
        "RR_COMPARTMENT", "RR_OPERATION",    "RR_UNKNOWN_TYPE", "RR_BAD",
        "RR_SMART_CONFIG", "RR_UNKNOWN_TENANT", "RR_AUTH_TOKEN", "RR_AUTH_JWKS",
    };
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "RR_?";
}

typedef struct route_case {
    const char *path;
    rest_route_kind kind;
    const char *type_name; /* the segment as sent; NULL when none */
    int typed;             /* 1: route.type resolves to the type named type_name */
    const char *id, *vid, *op;
} route_case;

static const route_case route_cases[] = {
    /* operational endpoints */
    {"/healthz", RR_HEALTH},
    {"/metrics", RR_METRICS},
    /* the built-in authorization server, outside the FHIR base */
    {"/auth/token", RR_AUTH_TOKEN},
    {"/auth/jwks", RR_AUTH_JWKS},
    {"/auth/tokens", RR_NONE},
    {"/fhir/auth/token", RR_UNKNOWN_TYPE, "token"}, /* "auth" read as a tenant segment */
    /* the base, with and without trailing slash */
    {"/fhir", RR_BASE},
    {"/fhir/", RR_BASE},
    {"/fhir/metadata", RR_METADATA},
    {"/fhir/metadata/", RR_METADATA},
    {"/fhir/_history", RR_SYS_HISTORY},
    {"/fhir/_history/", RR_SYS_HISTORY},
    /* type level */
    {"/fhir/Patient", RR_TYPE, "Patient", 1},
    {"/fhir/Patient/", RR_TYPE, "Patient", 1},
    {"/fhir/Observation", RR_TYPE, "Observation", 1},
    {"/fhir/Patient/_history", RR_TYPE_HISTORY, "Patient", 1},
    {"/fhir/Patient/_history/", RR_TYPE_HISTORY, "Patient", 1},
    {"/fhir/Patient/_search", RR_TYPE_SEARCH, "Patient", 1},
    {"/fhir/Observation/_search/", RR_TYPE_SEARCH, "Observation", 1},
    /* instance level */
    {"/fhir/Patient/123", RR_INSTANCE, "Patient", 1, "123"},
    {"/fhir/Patient/123/", RR_INSTANCE, "Patient", 1, "123"},
    {"/fhir/Patient/a.b-C", RR_INSTANCE, "Patient", 1, "a.b-C"},
    {"/fhir/Patient/bad_id!", RR_INSTANCE, "Patient", 1, "bad_id!"}, /* located, not checked */
    {"/fhir/Patient/123/_history", RR_INST_HISTORY, "Patient", 1, "123"},
    {"/fhir/Patient/123/_history/", RR_INST_HISTORY, "Patient", 1, "123"},
    {"/fhir/Patient/123/_history/2", RR_VERSION, "Patient", 1, "123", "2"},
    {"/fhir/Patient/123/_history/2/", RR_VERSION, "Patient", 1, "123", "2"},
    {"/fhir/Observation/o-1/_history/17", RR_VERSION, "Observation", 1, "o-1", "17"},
    {"/fhir/Patient/123/_history/x", RR_VERSION, "Patient", 1, "123", "x"}, /* not checked */
    /* a compartment: the route's type is the searched one, the id the compartment's */
    {"/fhir/Patient/123/Observation", RR_COMPARTMENT, "Observation", 1, "123"},
    {"/fhir/Patient/123/Observation/", RR_COMPARTMENT, "Observation", 1, "123"},
    /* operations at the three levels */
    {"/fhir/$op", RR_OPERATION, NULL, 0, NULL, NULL, "op"},
    {"/fhir/$export", RR_OPERATION, NULL, 0, NULL, NULL, "export"},
    {"/fhir/Patient/$validate", RR_OPERATION, "Patient", 1, NULL, NULL, "validate"},
    {"/fhir/Patient/1/$validate", RR_OPERATION, "Patient", 1, "1", NULL, "validate"},
    {"/fhir/Patient/1/$everything/", RR_OPERATION, "Patient", 1, "1", NULL, "everything"},
    /* first segment that is no concrete resource type */
    {"/fhir/NotAType", RR_UNKNOWN_TYPE, "NotAType"},
    {"/fhir/NotAType/", RR_UNKNOWN_TYPE, "NotAType"},
    {"/fhir/NotAType/1", RR_UNKNOWN_TYPE, "NotAType"},
    {"/fhir/NotAType/$op", RR_UNKNOWN_TYPE, "NotAType", 0, NULL, NULL, "op"},
    {"/fhir/pAtient", RR_UNKNOWN_TYPE, "pAtient"},   /* types are case-sensitive (all
                                                        lower case: a tenant, below) */
    {"/fhir/Resource", RR_UNKNOWN_TYPE, "Resource"}, /* abstract */
    {"/fhir/DomainResource", RR_UNKNOWN_TYPE, "DomainResource"},
    {"/fhir/HumanName", RR_UNKNOWN_TYPE, "HumanName"},             /* a datatype */
    {"/fhir/base64Binary", RR_UNKNOWN_TYPE, "base64Binary"},       /* a primitive */
    {"/fhir/Patient.contact", RR_UNKNOWN_TYPE, "Patient.contact"}, /* a backbone type */
    {"/fhir/metadata/x", RR_UNKNOWN_TYPE, "metadata"},
    {"/fhir/$", RR_UNKNOWN_TYPE, "$"}, /* '$' alone names no operation */
};

/* Shapes under the base that name nothing (fields unspecified). */
static const char *const bad_paths[] = {
    "/fhir/Patient/1/2/3/4/5",
    "/fhir/Patient/123/foo",
    "/fhir/Patient/123/observation", /* not a type: types are case-sensitive */
    "/fhir/Patient/123/_history/2/x",
    "/fhir//Patient",
    "/fhir/Patient//1",
    "/fhir/Patient/1//",
    "/fhir/Patient/1/x/$op",
    "/fhir/Patient/1/_history/2/$op",
    "/fhir/Patient/_history/2",
};

/* Paths outside the FHIR base and not operational. */
static const char *const none_paths[] = {
    "",
    "/",
    "/fhirx",
    "/fhir2/Patient",
    "/FHIR/Patient",
    "/healthz/",
    "/metrics/x",
    "/api/fhir/Patient",
    "fhir/Patient",
    "/Patient",
    "/healthzz",
    "//fhir",
};

static void test_route_parse(arena *a)
{
    for (size_t i = 0; i < sizeof route_cases / sizeof route_cases[0]; i++) {
        const route_case *c = &route_cases[i];
        rest_route r;
        int rc = rest_route_parse(a, c->path, &r);
        int good = rc == 0 && r.kind == c->kind && str_eq(r.type_name, c->type_name) &&
                   str_eq(r.id, c->id) && str_eq(r.vid, c->vid) && str_eq(r.op, c->op) &&
                   r.id_len == (c->id ? strlen(c->id) : 0) &&
                   r.vid_len == (c->vid ? strlen(c->vid) : 0);
        if (c->typed)
            good = good && r.type && !strcmp(r.type->name, c->type_name) &&
                   r.type->kind == FHIR_RESOURCE;
        else
            good = good && !r.type;
        ok(good, "route %s -> %s", c->path, kind_name(c->kind));
        if (!good)
            printf("#   got rc %d %s type_name=%s id=%s vid=%s op=%s type=%s\n", rc,
                   kind_name(r.kind), show(r.type_name), r.id ? r.id : "(null)",
                   r.vid ? r.vid : "(null)", r.op ? r.op : "(null)",
                   r.type ? r.type->name : "(null)");
    }
    for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++) {
        rest_route r;
        int rc = rest_route_parse(a, bad_paths[i], &r);
        ok(rc == 0 && r.kind == RR_BAD, "route %s -> RR_BAD (got %s)", bad_paths[i],
           kind_name(r.kind));
    }
    for (size_t i = 0; i < sizeof none_paths / sizeof none_paths[0]; i++) {
        rest_route r;
        memset(&r, 0x5a, sizeof r); /* parse must clear what it does not set */
        int rc = rest_route_parse(a, none_paths[i], &r);
        ok(rc == 0 && r.kind == RR_NONE && !r.type && !r.type_name && !r.id && !r.vid && !r.op,
           "route '%s' -> RR_NONE, no fields (got %s)", none_paths[i], kind_name(r.kind));
    }

    /* strings are copies in the arena: the caller's path may change afterwards */
    char path[] = "/fhir/Patient/abc/_history/7";
    rest_route r;
    rest_route_parse(a, path, &r);
    memset(path, 'x', sizeof path - 1);
    ok(r.kind == RR_VERSION && str_eq(r.type_name, "Patient") && str_eq(r.id, "abc") &&
           str_eq(r.vid, "7"),
       "route strings are arena copies, independent of the path buffer");
    char opath[] = "/fhir/Patient/9/$meta";
    rest_route_parse(a, opath, &r);
    memset(opath, 'y', sizeof opath - 1);
    ok(r.kind == RR_OPERATION && str_eq(r.id, "9") && str_eq(r.op, "meta"),
       "operation strings are arena copies too");

    /* a lower-case first segment is a tenant (auth/tenant.h); the rest routes as under
     * the default base */
    static const struct {
        const char *path, *tenant;
        rest_route_kind kind;
        const char *type, *id;
    } tenant_cases[] = {
        {"/fhir/north", "north", RR_BASE, NULL, NULL},
        {"/fhir/north/", "north", RR_BASE, NULL, NULL},
        {"/fhir/st-marys-2/Patient/p1", "st-marys-2", RR_INSTANCE, "Patient", "p1"},
        {"/fhir/north/metadata", "north", RR_METADATA, NULL, NULL},
        {"/fhir/north/_history", "north", RR_SYS_HISTORY, NULL, NULL},
        {"/fhir/north/Patient/p1/$everything", "north", RR_OPERATION, "Patient", "p1"},
        {"/fhir/north/Patient/p1/Observation", "north", RR_COMPARTMENT, "Observation", "p1"},
        {"/fhir/north/Nope", "north", RR_UNKNOWN_TYPE, "Nope", NULL},
        {"/fhir/north/south/Patient", "north", RR_UNKNOWN_TYPE, "south", NULL},
        {"/fhir/metadata", NULL, RR_METADATA, NULL, NULL},
        {"/fhir/Patient/p1", NULL, RR_INSTANCE, "Patient", "p1"},
        {"/fhir/-x/Patient", NULL, RR_UNKNOWN_TYPE, "-x", NULL},
        {"/fhir/a_b/Patient", NULL, RR_UNKNOWN_TYPE, "a_b", NULL},
    };
    for (size_t i = 0; i < sizeof tenant_cases / sizeof tenant_cases[0]; i++) {
        rest_route tr;
        int rc = rest_route_parse(a, tenant_cases[i].path, &tr);
        ok(rc == 0 && tr.kind == tenant_cases[i].kind && str_eq(tr.tenant, tenant_cases[i].tenant) &&
               tr.tenant_len == (tr.tenant ? strlen(tr.tenant) : 0) &&
               str_eq(tr.type_name, tenant_cases[i].type) && str_eq(tr.id, tenant_cases[i].id),
           "route %s -> tenant %s, %s", tenant_cases[i].path, show(tenant_cases[i].tenant),
           kind_name(tenant_cases[i].kind));
    }

    /* an id of the maximum length and one over it are both located (the handler judges) */
    char longp[200];
    char id65[66];
    memset(id65, 'a', 65);
    id65[65] = 0;
    snprintf(longp, sizeof longp, "/fhir/Patient/%s", id65);
    rest_route_parse(a, longp, &r);
    ok(r.kind == RR_INSTANCE && r.id_len == 65 && !rest_id_valid(r.id, r.id_len),
       "a 65-character id is located; rest_id_valid refuses it");
}

static const char *method_name(rest_method m)
{
    static const char *const names[] = {"GET",    "HEAD",  "POST",    "PUT",
                                        "DELETE", "PATCH", "OPTIONS", "OTHER"};
    return (unsigned)m < sizeof names / sizeof names[0] ? names[m] : "?";
}

/* What each route answers per method (RI_OTHER: 405 there), from route.h and the
 * table at the top of router.c. HEAD is answered as GET. */
typedef struct classify_row {
    rest_route_kind kind;
    const char *allow;
    rest_interaction get, post, put, patch, del;
} classify_row;

#define NO RI_OTHER
static const classify_row classify_rows[] = {
    {RR_HEALTH, "GET, HEAD", RI_HEALTH, NO, NO, NO, NO},
    {RR_METRICS, "GET, HEAD", RI_METRICS, NO, NO, NO, NO},
    {RR_BASE, "GET, HEAD, POST", RI_SEARCH_SYSTEM, RI_BATCH, NO, NO, NO},
    {RR_METADATA, "GET, HEAD", RI_CAPABILITIES, NO, NO, NO, NO},
    {RR_SYS_HISTORY, "GET, HEAD", RI_HISTORY_SYSTEM, NO, NO, NO, NO},
    {RR_TYPE, "GET, HEAD, POST, PUT, PATCH, DELETE", RI_SEARCH_TYPE, RI_CREATE, RI_UPDATE,
     RI_PATCH, RI_DELETE},
    {RR_TYPE_HISTORY, "GET, HEAD", RI_HISTORY_TYPE, NO, NO, NO, NO},
    {RR_TYPE_SEARCH, "POST", NO, RI_SEARCH_TYPE, NO, NO, NO},
    {RR_INSTANCE, "GET, HEAD, PUT, PATCH, DELETE", RI_READ, NO, RI_UPDATE, RI_PATCH, RI_DELETE},
    {RR_INST_HISTORY, "GET, HEAD", RI_HISTORY_INSTANCE, NO, NO, NO, NO},
    {RR_VERSION, "GET, HEAD", RI_VREAD, NO, NO, NO, NO},
    {RR_COMPARTMENT, "GET, HEAD", RI_SEARCH_TYPE, NO, NO, NO, NO},
    {RR_OPERATION, "GET, HEAD, POST", RI_OPERATION, RI_OPERATION, NO, NO, NO},
    {RR_AUTH_TOKEN, "POST", NO, RI_AUTH, NO, NO, NO},
    {RR_AUTH_JWKS, "GET, HEAD", RI_AUTH, NO, NO, NO, NO},
};
#undef NO

static rest_interaction row_want(const classify_row *row, rest_method m)
{
    switch (m) {
    case RM_GET:
    case RM_HEAD:
        return row->get;
    case RM_POST:
        return row->post;
    case RM_PUT:
        return row->put;
    case RM_PATCH:
        return row->patch;
    case RM_DELETE:
        return row->del;
    default:
        return RI_OTHER; /* OPTIONS and unknown methods: nowhere an interaction */
    }
}

/* 1 when the comma-separated Allow value lists method name m. */
static int allow_lists(const char *allow, const char *m)
{
    size_t n = strlen(m);
    for (const char *p = allow; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        if ((size_t)(e - p) == n && !memcmp(p, m, n))
            return 1;
        p = e;
    }
    return 0;
}

static void test_classify(void)
{
    static const rest_method methods[] = {RM_GET,   RM_HEAD,   RM_POST,    RM_PUT,
                                          RM_PATCH, RM_DELETE, RM_OPTIONS, RM_OTHER};
    const size_t nm = sizeof methods / sizeof methods[0];
    for (size_t k = 0; k < sizeof classify_rows / sizeof classify_rows[0]; k++) {
        const classify_row *row = &classify_rows[k];
        for (size_t i = 0; i < nm; i++) {
            rest_interaction ri = RI__COUNT;
            const char *allow = "unset";
            rest_interaction want = row_want(row, methods[i]);
            int rc = rest_classify(row->kind, methods[i], &ri, &allow);
            if (want != RI_OTHER)
                ok(rc == 0 && ri == want && str_eq(allow, row->allow), "%s %s -> %s",
                   method_name(methods[i]), kind_name(row->kind), rest_interaction_name(want));
            else
                ok(rc == 1 && ri == RI_OTHER && str_eq(allow, row->allow),
                   "%s %s -> 405, Allow: %s", method_name(methods[i]), kind_name(row->kind),
                   row->allow);
            if (!(rc == (want == RI_OTHER) && ri == want && str_eq(allow, row->allow)))
                printf("#   got rc %d ri %s allow '%s'\n", rc, rest_interaction_name(ri),
                       show(allow));
        }
        /* the Allow header lists exactly the methods the route takes */
        int mismatch = 0;
        for (size_t i = 0; i < 6; i++) { /* GET .. DELETE: the methods an Allow can name */
            rest_interaction ri;
            const char *allow;
            int rc = rest_classify(row->kind, methods[i], &ri, &allow);
            if (allow_lists(allow, method_name(methods[i])) != (rc == 0))
                mismatch++;
        }
        is_int(mismatch, 0, "Allow of %s names exactly the methods it takes", kind_name(row->kind));
    }
    static const rest_route_kind no_route[] = {RR_NONE, RR_UNKNOWN_TYPE, RR_BAD};
    for (size_t k = 0; k < 3; k++)
        for (size_t i = 0; i < nm; i++) {
            rest_interaction ri = RI_READ;
            const char *allow = "unset";
            int rc = rest_classify(no_route[k], methods[i], &ri, &allow);
            ok(rc == 0 && ri == RI_OTHER && allow == NULL, "%s %s -> RI_OTHER, no Allow (404)",
               method_name(methods[i]), kind_name(no_route[k]));
        }
    rest_interaction ri = RI_READ;
    const char *allow = "unset";
    int rc = rest_classify((rest_route_kind)99, RM_GET, &ri, &allow);
    ok(rc == 0 && ri == RI_OTHER && allow == NULL, "an out-of-range route kind is a 404 too");

    /* interaction names (the /metrics label) */
    is_str(rest_interaction_name(RI_READ), "read", "name of RI_READ");
    is_str(rest_interaction_name(RI_VREAD), "vread", "name of RI_VREAD");
    is_str(rest_interaction_name(RI_HISTORY_INSTANCE), "history-instance",
           "name of RI_HISTORY_INSTANCE");
    is_str(rest_interaction_name(RI_OTHER), "other", "name of RI_OTHER");
    is_str(rest_interaction_name(RI__COUNT), "other", "out of range -> other");
    is_str(rest_interaction_name((rest_interaction)-1), "other", "negative -> other");
    int distinct = 1;
    for (int i = 0; i < RI__COUNT; i++)
        for (int j = i + 1; j < RI__COUNT; j++)
            if (!rest_interaction_name((rest_interaction)i) ||
                !strcmp(rest_interaction_name((rest_interaction)i),
                        rest_interaction_name((rest_interaction)j)))
                distinct = 0;
    ok(distinct, "every interaction has its own name");
}

static void test_method_parse(void)
{
    static const struct {
        const char *s;
        rest_method m;
    } cases[] = {
        {"GET", RM_GET},         {"HEAD", RM_HEAD},     {"POST", RM_POST},
        {"PUT", RM_PUT},         {"DELETE", RM_DELETE}, {"PATCH", RM_PATCH},
        {"OPTIONS", RM_OPTIONS}, {"get", RM_OTHER}, /* methods are case-sensitive (RFC 9110 9.1) */
        {"Get", RM_OTHER},       {"", RM_OTHER},        {"GETX", RM_OTHER},
        {"GE", RM_OTHER},        {"TRACE", RM_OTHER},   {"CONNECT", RM_OTHER},
        {" GET", RM_OTHER},      {"GET ", RM_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_int(rest_method_parse(cases[i].s), cases[i].m, "method '%s' -> %s", cases[i].s,
               method_name(cases[i].m));
}

static void test_id_valid(void)
{
    char id[80];
    is_int(rest_id_valid("", 0), 0, "id of length 0 refused");
    is_int(rest_id_valid("a", 1), 1, "id of length 1");
    memset(id, 'z', sizeof id);
    is_int(rest_id_valid(id, 64), 1, "id of length 64");
    is_int(rest_id_valid(id, 65), 0, "id of length 65 refused");
    is_int(rest_id_valid(id, REST_MAX_ID), 1, "id of REST_MAX_ID characters");
    is_int(rest_id_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 26), 1, "upper-case letters");
    is_int(rest_id_valid("abcdefghijklmnopqrstuvwxyz", 26), 1, "lower-case letters");
    is_int(rest_id_valid("0123456789", 10), 1, "digits");
    is_int(rest_id_valid("-", 1), 1, "'-' alone");
    is_int(rest_id_valid(".", 1), 1, "'.' alone");
    is_int(rest_id_valid("a.b-C9", 6), 1, "a mix of every class");
    is_int(rest_id_valid("a_b", 3), 0, "'_' refused");
    is_int(rest_id_valid("a/b", 3), 0, "'/' refused");
    is_int(rest_id_valid("a b", 3), 0, "' ' refused");
    is_int(rest_id_valid("a\tb", 3), 0, "tab refused");
    is_int(rest_id_valid("a\0b", 3), 0, "an embedded NUL refused");
    is_int(rest_id_valid("caf\xc3\xa9", 5), 0, "UTF-8 letter refused (ASCII only)");
    is_int(rest_id_valid("\x80", 1), 0, "byte 0x80 refused");
    is_int(rest_id_valid("\xff", 1), 0, "byte 0xff refused");
    is_int(rest_id_valid("ab_", 2), 1, "only n bytes are looked at");
    /* every byte value once: exactly [A-Za-z0-9.-] */
    int wrong = 0, first_wrong = -1;
    for (int c = 1; c < 256; c++) {
        char s[3] = {'x', (char)c, 'y'};
        int want = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '.';
        if (rest_id_valid(s, 3) != want) {
            wrong++;
            if (first_wrong < 0)
                first_wrong = c;
        }
    }
    is_int(wrong, 0, "every byte 1..255 judged as [A-Za-z0-9.-] (first wrong: %d)", first_wrong);
}

static void test_vid_parse(void)
{
    static const struct {
        const char *s;
        int rc;
        uint64_t v;
    } cases[] = {
        {"1", 0, 1},
        {"2", 0, 2},
        {"10", 0, 10},
        {"123456789", 0, 123456789},
        {"9223372036854775807", 0, 9223372036854775807ull}, /* 2^63 - 1 */
        {"9223372036854775808", ERR_INVALID, 0},            /* 2^63 */
        {"9999999999999999999", ERR_INVALID, 0},            /* 19 digits, over 2^63 */
        {"18446744073709551615", ERR_INVALID, 0},           /* 20 digits: 2^64 - 1 */
        {"18446744073709551616", ERR_INVALID, 0},           /* 20 digits: wraps a u64 */
        {"10000000000000000000", ERR_INVALID, 0},
        {"0", ERR_INVALID, 0},
        {"00", ERR_INVALID, 0},
        {"01", ERR_INVALID, 0},
        {"", ERR_INVALID, 0},
        {"+1", ERR_INVALID, 0},
        {"-1", ERR_INVALID, 0},
        {" 1", ERR_INVALID, 0},
        {"1 ", ERR_INVALID, 0},
        {"1 2", ERR_INVALID, 0},
        {"1a", ERR_INVALID, 0},
        {"0x1", ERR_INVALID, 0},
        {"1.0", ERR_INVALID, 0},
        {"1e3", ERR_INVALID, 0},
        {"\"1\"", ERR_INVALID, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 0;
        int rc = rest_vid_parse(cases[i].s, strlen(cases[i].s), &v);
        if (cases[i].rc == 0)
            ok(rc == 0 && v == cases[i].v, "vid '%s' -> %llu", cases[i].s,
               (unsigned long long)cases[i].v);
        else
            is_int(rc, ERR_INVALID, "vid '%s' refused", cases[i].s);
    }
    uint64_t v = 0;
    ok(rest_vid_parse("123", 2, &v) == 0 && v == 12, "only n bytes are parsed");
    ok(rest_vid_parse("1\0002", 3, &v) == ERR_INVALID, "an embedded NUL is refused");
}

/* =============================================================================
 * 2. Content negotiation
 * ============================================================================= */

typedef struct accept_case {
    const char *format, *accept;
    int accepted;
} accept_case;

static const accept_case accept_cases[] = {
    /* nothing asked: JSON */
    {NULL, NULL, 1},
    {"", NULL, 1}, /* an empty _format says nothing */
    /* _format shorthands and media types */
    {"json", NULL, 1},
    {"JSON", NULL, 1},
    {"application/fhir+json", NULL, 1},
    {"application/json", NULL, 1},
    {"application/json+fhir", NULL, 1},
    {"application/fhir json", NULL, 1}, /* '+' decoded to ' ' in a query string */
    {"xml", NULL, 0},
    {"application/fhir+xml", NULL, 0},
    {"text/turtle", NULL, 0},
    {"ttl", NULL, 0},
    {"html", NULL, 0},
    {"garbage", NULL, 0},
    {"jsonx", NULL, 0},
    {"json ", NULL, 0},
    /* _format wins over Accept, both ways */
    {"json", "application/fhir+xml", 1},
    {"xml", "application/fhir+json", 0},
    {"xml", "*/*", 0},
    /* Accept */
    {NULL, "", 1}, /* "Accept:" with nothing in it */
    {NULL, " , ", 1},
    {NULL, "*/*", 1},
    {NULL, "application/*", 1},
    {NULL, "APPLICATION/*", 1},
    {NULL, "application/fhir+json", 1},
    {NULL, "Application/FHIR+JSON", 1},
    {NULL, "application/json", 1},
    {NULL, "text/json", 1},
    {NULL, " application/fhir+json ", 1},
    {NULL, "application/fhir+xml", 0},
    {NULL, "application/xml", 0},
    {NULL, "text/html", 0},
    {NULL, "text/*", 0},
    {NULL, "text/turtle", 0},
    {NULL, "text/html, application/xhtml+xml, application/xml;q=0.9", 0},
    {NULL, "application/fhir+xml, */*", 1},
    {NULL, "text/html, */*;q=0.8", 1}, /* a browser's default */
    /* q values: q=0 means "not acceptable" */
    {NULL, "application/fhir+json;q=0", 0},
    {NULL, "application/fhir+json; q=0", 0},
    {NULL, "application/fhir+json;q=0.0", 0},
    {NULL, "application/fhir+json;q=0.000", 0},
    {NULL, "application/fhir+json;Q=0", 0},
    {NULL, "*/*;q=0", 0},
    {NULL, "application/*;q=0", 0},
    {NULL, "application/fhir+json;q=0.001", 1},
    {NULL, "application/fhir+json;q=0.5", 1},
    {NULL, "application/fhir+json;q=1", 1},
    {NULL, "application/fhir+json;q=1.0", 1},
    {NULL, "application/fhir+json;q=0, application/json;q=0.2", 1},
    {NULL, "application/fhir+json;q=0, application/json;q=0", 0},
    {NULL, "application/xml;q=0.9, application/fhir+json;q=0.1", 1},
    {NULL, "application/fhir+xml;q=1, application/fhir+xml;q=0.5", 0},
    /* fhirVersion: R4 (4.0, 4.0.x) only */
    {NULL, "application/fhir+json; fhirVersion=4.0", 1},
    {NULL, "application/fhir+json;fhirVersion=4.0.1", 1},
    {NULL, "application/fhir+json;fhirVersion=\"4.0\"", 1},
    {NULL, "application/fhir+json; q=0.9; fhirVersion=4.0", 1},
    {NULL, "application/fhir+json; fhirVersion=3.0", 0},
    {NULL, "application/fhir+json; fhirVersion=4.3", 0},
    {NULL, "application/fhir+json; fhirVersion=5.0", 0},
    {NULL, "application/fhir+json; fhirVersion=4", 0},
    {NULL, "application/fhir+json; fhirVersion=4.01", 0},
    {NULL, "application/fhir+json; fhirVersion=4.0.", 0},
    {NULL, "application/fhir+json; fhirVersion=\"3.0\"", 0},
    {NULL, "*/*; fhirVersion=3.0", 0},
    {NULL, "application/fhir+json;fhirVersion=3.0, application/fhir+json;fhirVersion=4.0", 1},
    {NULL, "application/fhir+json;fhirVersion=4.0;q=0", 0},
    {NULL, "application/fhir+json; charset=utf-8", 1}, /* other parameters are ignored */
};

static void test_conneg_accept(void)
{
    for (size_t i = 0; i < sizeof accept_cases / sizeof accept_cases[0]; i++) {
        const accept_case *c = &accept_cases[i];
        char msg[300] = "";
        int rc = rest_conneg_accept(c->format, c->accept, msg, sizeof msg);
        char label[200];
        snprintf(label, sizeof label, "_format=%s Accept: %s", c->format ? c->format : "-",
                 c->accept ? c->accept : "-");
        if (c->accepted) {
            is_int(rc, 0, "accepted: %s", label);
        } else {
            /* the refusal names what was asked for: _format when given, else Accept */
            const char *asked = c->format && *c->format ? c->format : c->accept;
            ok(rc == ERR_UNSUPPORTED && strstr(msg, asked) && strstr(msg, "JSON"),
               "refused with a message naming it: %s", label);
            if (rc != ERR_UNSUPPORTED)
                printf("#   got rc %d msg '%s'\n", rc, msg);
        }
    }
    /* a long Accept is cut in the message, which stays within msgsz */
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    memcpy(big, "text/", 5);
    char msg[64];
    ok(rest_conneg_accept(NULL, big, msg, sizeof msg) == ERR_UNSUPPORTED &&
           strlen(msg) < sizeof msg,
       "the message of a 600-byte Accept fits its buffer");
}

typedef struct ct_case {
    const char *ct;
    int json_patch;
    int accepted;
    const char *msg_has; /* for refusals: a substring of the message */
} ct_case;

static const ct_case ct_cases[] = {
    {NULL, 0, 0, "missing Content-Type"},
    {"", 0, 0, "missing Content-Type"},
    {"application/fhir+json", 0, 1},
    {"application/json", 0, 1},
    {"APPLICATION/FHIR+JSON", 0, 1},
    {" application/fhir+json ", 0, 1},
    {"application/fhir+json;charset=utf-8", 0, 1},
    {"application/fhir+json; charset=utf-8", 0, 1},
    {"application/fhir+json; charset=UTF-8", 0, 1},
    {"application/fhir+json; charset=\"utf-8\"", 0, 1},
    {"application/fhir+json; charset=utf8", 0, 1},
    {"application/json; charset=utf-8", 0, 1},
    {"application/fhir+json; charset=iso-8859-1", 0, 0, "iso-8859-1"},
    {"application/fhir+json; charset=latin1", 0, 0, "latin1"},
    {"application/fhir+json; charset=utf-16", 0, 0, "utf-16"},
    {"application/fhir+json; charset=utf-8x", 0, 0, "charset"},
    {"application/fhir+json; charset=us-ascii", 0, 0, "us-ascii"},
    {"application/fhir+json; fhirVersion=4.0", 0, 1},
    {"application/fhir+json; fhirVersion=4.0.1; charset=utf-8", 0, 1},
    {"application/fhir+json; fhirVersion=3.0", 0, 0, "R4"},
    {"application/fhir+json; fhirVersion=5.0; charset=utf-8", 0, 0, "R4"},
    {"application/fhir+xml", 0, 0, "application/fhir+xml"},
    {"application/xml", 0, 0, "application/xml"},
    {"text/plain", 0, 0, "text/plain"},
    {"json", 0, 0, "json"}, /* a _format shorthand is no media type */
    {"application/fhir+jsonx", 0, 0, "application/fhir+jsonx"},
    {"multipart/form-data; boundary=x", 0, 0, "multipart/form-data"},
    /* JSON Patch only where the flag allows it */
    {"application/json-patch+json", 0, 0, "application/json-patch+json"},
    {"application/json-patch+json", 1, 1},
    {"Application/JSON-Patch+JSON", 1, 1},
    {"application/json-patch+json; charset=utf-8", 1, 1},
    {"application/json-patch+json; charset=latin1", 1, 0, "latin1"},
    {"application/fhir+json", 1, 1}, /* a FHIRPath Patch Parameters body */
    {"application/xml-patch+xml", 1, 0, "application/xml-patch+xml"},
    {"application/merge-patch+json", 1, 0, "application/merge-patch+json"},
};

static void test_conneg_content_type(void)
{
    for (size_t i = 0; i < sizeof ct_cases / sizeof ct_cases[0]; i++) {
        const ct_case *c = &ct_cases[i];
        char msg[300] = "";
        int rc = rest_conneg_content_type(c->ct, c->json_patch, msg, sizeof msg);
        if (c->accepted)
            is_int(rc, 0, "Content-Type %s accepted (json_patch %d)", c->ct ? c->ct : "(none)",
                   c->json_patch);
        else {
            ok(rc == ERR_UNSUPPORTED && strstr(msg, c->msg_has),
               "Content-Type %s refused (json_patch %d), message names '%s'",
               c->ct ? c->ct : "(none)", c->json_patch, c->msg_has);
            if (!(rc == ERR_UNSUPPORTED && strstr(msg, c->msg_has)))
                printf("#   got rc %d msg '%s'\n", rc, msg);
        }
    }
}

static void test_pretty(void)
{
    is_int(rest_pretty("true"), 1, "_pretty=true");
    is_int(rest_pretty("TRUE"), 1, "_pretty=TRUE");
    is_int(rest_pretty("false"), 0, "_pretty=false");
    is_int(rest_pretty(NULL), 0, "_pretty absent");
    is_int(rest_pretty(""), 0, "_pretty empty");
    is_int(rest_pretty("1"), 0, "_pretty=1 is not true");
    is_int(rest_pretty("yes"), 0, "_pretty=yes is not true");
    is_int(rest_pretty("truex"), 0, "_pretty=truex is not true");
}

/* =============================================================================
 * 3. Params: ETags, preconditions, Prefer, instants
 * ============================================================================= */

static void test_etag_parse(void)
{
    static const struct {
        const char *s;
        int rc;
        uint64_t v;
    } cases[] = {
        {"W/\"3\"", 0, 3},
        {"\"3\"", 0, 3},
        {"3", 0, 3},
        {"W/\"1\" ", 0, 1},
        {" W/\"1\"", 0, 1},
        {"\tW/\"1\"\t", 0, 1},
        {"  \"7\"  ", 0, 7},
        {" 42 ", 0, 42},
        {"W/\"9223372036854775807\"", 0, 9223372036854775807ull},
        {"", ERR_INVALID, 0},
        {" ", ERR_INVALID, 0},
        {"W/", ERR_INVALID, 0},
        {"W/\"\"", ERR_INVALID, 0},
        {"\"\"", ERR_INVALID, 0},
        {"\"", ERR_INVALID, 0},
        {"W/\"-1\"", ERR_INVALID, 0},
        {"\"-1\"", ERR_INVALID, 0},
        {"-1", ERR_INVALID, 0},
        {"W/\"0\"", ERR_INVALID, 0},
        {"W/\"01\"", ERR_INVALID, 0},
        {"w/\"1\"", ERR_INVALID, 0}, /* the weak indicator is case-sensitive */
        {"W/ \"1\"", ERR_INVALID, 0},
        {"W/\" 1\"", ERR_INVALID, 0},
        {"W/\"1 \"", ERR_INVALID, 0},
        {"1 2", ERR_INVALID, 0},
        {"W/\"1\" W/\"2\"", ERR_INVALID, 0},
        {"W/\"1\", W/\"2\"", ERR_INVALID, 0},
        {"W/\"1", ERR_INVALID, 0},
        {"1\"", ERR_INVALID, 0},
        {"W/\"\"1\"\"", ERR_INVALID, 0},
        {"W/\"12345678901234567890\"", ERR_INVALID, 0}, /* 20 digits */
        {"W/\"9223372036854775808\"", ERR_INVALID, 0},  /* 2^63 */
        {"*", ERR_INVALID, 0},
        {"W/\"abc\"", ERR_INVALID, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 0;
        int rc = rest_etag_parse(cases[i].s, strlen(cases[i].s), &v);
        if (cases[i].rc == 0)
            ok(rc == 0 && v == cases[i].v, "ETag '%s' -> %llu", show(cases[i].s),
               (unsigned long long)cases[i].v);
        else
            is_int(rc, ERR_INVALID, "ETag '%s' refused", show(cases[i].s));
    }
    uint64_t v = 0;
    ok(rest_etag_parse("W/\"12\"xyz", 6, &v) == 0 && v == 12, "only n bytes are parsed");
}

typedef struct precond_case {
    const char *im, *inm;
    int rc;
    int if_match;
    uint64_t im_vid;
    int if_none_match;
    const char *bad_has; /* refusals: the header the message names */
} precond_case;

static const precond_case precond_cases[] = {
    {NULL, NULL, 0, 0, 0, 0},
    {"W/\"3\"", NULL, 0, 1, 3, 0},
    {"\"3\"", NULL, 0, 1, 3, 0},
    {" W/\"12\" ", NULL, 0, 1, 12, 0},
    {"*", NULL, ERR_INVALID, 0, 0, 0, "If-Match: *"},
    {" * ", NULL, ERR_INVALID, 0, 0, 0, "If-Match: *"},
    {"W/\"1\", W/\"2\"", NULL, ERR_INVALID, 0, 0, 0, "If-Match"},
    {"W/\"1\",W/\"2\"", NULL, ERR_INVALID, 0, 0, 0, "If-Match"},
    {"", NULL, ERR_INVALID, 0, 0, 0, "If-Match"},
    {"W/\"0\"", NULL, ERR_INVALID, 0, 0, 0, "If-Match"},
    {"W/\"x\"", NULL, ERR_INVALID, 0, 0, 0, "If-Match"},
    {NULL, "*", 0, 0, 0, 2},
    {NULL, " * ", 0, 0, 0, 2},
    {NULL, "W/\"1\"", 0, 0, 0, 1},
    {NULL, "W/\"1\", W/\"2\"", 0, 0, 0, 1},
    {NULL, "W/\"1\",\"2\", 3", 0, 0, 0, 1},
    {NULL, "", ERR_INVALID, 0, 0, 0, "If-None-Match"},
    {NULL, "W/\"1\",", ERR_INVALID, 0, 0, 0, "If-None-Match"},
    {NULL, ",W/\"1\"", ERR_INVALID, 0, 0, 0, "If-None-Match"},
    {NULL, "W/\"1\",,W/\"2\"", ERR_INVALID, 0, 0, 0, "If-None-Match"},
    {NULL, "W/\"1\", junk", ERR_INVALID, 0, 0, 0, "If-None-Match"},
    {NULL, "W/\"1\" W/\"2\"", ERR_INVALID, 0, 0, 0, "If-None-Match"},
    {NULL, "*, W/\"1\"", ERR_INVALID, 0, 0, 0, "If-None-Match"},
    {NULL, "**", ERR_INVALID, 0, 0, 0, "If-None-Match"},
    {"W/\"2\"", "W/\"1\"", 0, 1, 2, 1},
    {"W/\"2\"", "*", 0, 1, 2, 2},
    {"W/\"2\"", "junk", ERR_INVALID, 0, 0, 0, "If-None-Match"},
    {"junk", "*", ERR_INVALID, 0, 0, 0, "If-Match"},
};

static void test_precond_parse(void)
{
    for (size_t i = 0; i < sizeof precond_cases / sizeof precond_cases[0]; i++) {
        const precond_case *c = &precond_cases[i];
        rest_precond p;
        memset(&p, 0x5a, sizeof p);
        const char *bad = "unset";
        int rc = rest_precond_parse(c->im, c->inm, &p, &bad);
        char label[160];
        snprintf(label, sizeof label, "If-Match: %s / If-None-Match: %s", c->im ? c->im : "-",
                 c->inm ? c->inm : "-");
        if (c->rc == 0) {
            int good = rc == 0 && bad == NULL && p.if_match == c->if_match &&
                       (!c->if_match || p.if_match_vid == c->im_vid) &&
                       p.if_none_match == c->if_none_match &&
                       (c->if_none_match == 1 ? p.if_none_match_list == c->inm
                                              : p.if_none_match_list == NULL);
            ok(good, "parsed: %s", label);
            if (!good)
                printf("#   got rc %d im %d/%llu inm %d bad %s\n", rc, p.if_match,
                       (unsigned long long)p.if_match_vid, p.if_none_match, show(bad));
        } else {
            /* the message names the header at fault (and not the other one) */
            int names = bad && strstr(bad, c->bad_has);
            if (!strcmp(c->bad_has, "If-Match"))
                names = names && !strstr(bad, "If-None-Match");
            ok(rc == ERR_INVALID && names, "refused: %s, message names %s", label, c->bad_has);
            if (!(rc == ERR_INVALID && names))
                printf("#   got rc %d bad '%s'\n", rc, show(bad));
        }
    }
    rest_precond p;
    const char *bad;
    rest_precond_parse("*", NULL, &p, &bad);
    ok(bad && strstr(bad, "W/\"versionId\""), "If-Match: * message says what to send instead");
}

static void test_etag_list_hits(void)
{
    static const struct {
        const char *h;
        uint64_t vid;
        int hit;
    } cases[] = {
        {"W/\"1\", W/\"2\"", 1, 1},
        {"W/\"1\", W/\"2\"", 2, 1},
        {"W/\"1\", W/\"2\"", 3, 0},
        {"W/\"1\",W/\"2\"", 2, 1},
        {"*", 1, 1},
        {"*", 999, 1},
        {" * ", 5, 1},
        {"W/\"1\", *", 9, 1},
        {"W/\"3\"", 3, 1},
        {" W/\"3\" ", 3, 1},
        {"\"3\"", 3, 1},
        {"3", 3, 1},
        {"W/\"3\"", 30, 0},
        {"W/\"30\"", 3, 0},
        {"W/\"3\"", 4, 0},
        {"", 1, 0},
        {"junk, W/\"5\"", 5, 1}, /* junk skipped: reads lenient */
        {"junk", 5, 0},
        {"W/\"5\",,", 5, 1},
        {",,", 1, 0},
        {"W/\"0\"", 0, 0}, /* 0 is no versionId */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_int(rest_etag_list_hits(cases[i].h, cases[i].vid), cases[i].hit,
               "If-None-Match '%s' %s version %llu", cases[i].h, cases[i].hit ? "hits" : "misses",
               (unsigned long long)cases[i].vid);
}

typedef struct check_case {
    int if_match;
    uint64_t im_vid;
    int if_none_match;
    const char *list;
    int live;
    uint64_t cur;
    int fails;
    const char *msg_has; /* failures: a substring of the message */
} check_case;

static const check_case check_cases[] = {
    /* no precondition: always go on */
    {0, 0, 0, NULL, 1, 5, 0},
    {0, 0, 0, NULL, 0, 0, 0},
    {0, 0, 0, NULL, 0, 5, 0},
    /* If-Match */
    {1, 3, 0, NULL, 1, 3, 0},
    {1, 3, 0, NULL, 1, 4, 1, "current version is 4"},
    {1, 4, 0, NULL, 1, 3, 1, "version 4"},
    {1, 3, 0, NULL, 0, 0, 1, "no current version"},
    {1, 3, 0, NULL, 0, 3, 1, "no current version"}, /* deleted at 3: no live version 3 */
    /* If-None-Match: * */
    {0, 0, 2, NULL, 1, 1, 1, "exists"},
    {0, 0, 2, NULL, 0, 0, 0},
    {0, 0, 2, NULL, 0, 7, 0}, /* a tombstone is no current version */
    /* If-None-Match: list */
    {0, 0, 1, "W/\"1\", W/\"2\"", 1, 2, 1, "current version 2"},
    {0, 0, 1, "W/\"1\", W/\"2\"", 1, 1, 1, "current version 1"},
    {0, 0, 1, "W/\"1\", W/\"2\"", 1, 3, 0},
    {0, 0, 1, "W/\"1\", W/\"2\"", 0, 2, 0}, /* not live: nothing current to match */
    {0, 0, 1, "W/\"1\", W/\"2\"", 0, 0, 0},
    /* both */
    {1, 2, 2, NULL, 1, 2, 1, "If-None-Match"},
    {1, 2, 2, NULL, 0, 0, 1, "If-Match"},
    {1, 2, 1, "W/\"1\"", 1, 2, 0},
    {1, 2, 1, "W/\"2\"", 1, 2, 1, "If-None-Match"},
    {1, 2, 1, "W/\"1\"", 1, 3, 1, "If-Match"},
};

static void test_precond_check(void)
{
    for (size_t i = 0; i < sizeof check_cases / sizeof check_cases[0]; i++) {
        const check_case *c = &check_cases[i];
        rest_precond p = {.if_match = c->if_match,
                          .if_match_vid = c->im_vid,
                          .if_none_match = c->if_none_match,
                          .if_none_match_list = c->list};
        char msg[300] = "";
        int rc = rest_precond_check(&p, c->live, c->cur, msg, sizeof msg);
        char label[200];
        char im[32] = "none";
        if (c->if_match)
            snprintf(im, sizeof im, "W/\"%llu\"", (unsigned long long)c->im_vid);
        snprintf(label, sizeof label, "If-Match %s, If-None-Match %s, %s at %llu", im,
                 c->if_none_match == 2 ? "*"
                 : c->list             ? c->list
                                       : "none",
                 c->live ? "live" : "not live", (unsigned long long)c->cur);
        if (c->fails) {
            ok(rc == 1 && strstr(msg, c->msg_has), "412: %s (message has '%s')", label, c->msg_has);
            if (!(rc == 1 && strstr(msg, c->msg_has)))
                printf("#   got rc %d msg '%s'\n", rc, msg);
        } else {
            is_int(rc, 0, "go on: %s", label);
        }
    }
    /* the parsed form checks the same way */
    rest_precond p;
    const char *bad;
    char msg[200];
    rest_precond_parse(NULL, "W/\"4\", W/\"5\"", &p, &bad);
    ok(rest_precond_check(&p, 1, 5, msg, sizeof msg) == 1 &&
           rest_precond_check(&p, 1, 6, msg, sizeof msg) == 0,
       "a parsed If-None-Match list fails on a listed current version only");
    rest_precond_parse("W/\"5\"", NULL, &p, &bad);
    ok(rest_precond_check(&p, 1, 5, msg, sizeof msg) == 0 &&
           rest_precond_check(&p, 1, 6, msg, sizeof msg) == 1,
       "a parsed If-Match fails on another current version");
}

static void test_prefer(void)
{
    static const struct {
        const char *h;
        rest_prefer want;
    } cases[] = {
        {NULL, REST_RETURN_REPRESENTATION},
        {"", REST_RETURN_REPRESENTATION},
        {"return=representation", REST_RETURN_REPRESENTATION},
        {"return=minimal", REST_RETURN_MINIMAL},
        {"return=OperationOutcome", REST_RETURN_OUTCOME},
        {"respond-async, return=minimal", REST_RETURN_MINIMAL},
        {"handling=strict; return=OperationOutcome", REST_RETURN_OUTCOME},
        {"return=minimal, handling=lenient", REST_RETURN_MINIMAL},
        {"handling=strict", REST_RETURN_REPRESENTATION},
        {"return=", REST_RETURN_REPRESENTATION},
        {"return=bogus", REST_RETURN_REPRESENTATION},
        {"return=operationoutcome", REST_RETURN_REPRESENTATION}, /* the value is a FHIR code */
        {"RETURN=minimal", REST_RETURN_MINIMAL},           /* RFC 7240: names ignore case */
        {"x-return=minimal", REST_RETURN_REPRESENTATION},  /* another preference */
        {"return=minimalist", REST_RETURN_REPRESENTATION}, /* not the value minimal */
        {"return = minimal", REST_RETURN_MINIMAL},
        {"return=\"minimal\"", REST_RETURN_MINIMAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_int(rest_prefer_return(cases[i].h), cases[i].want, "Prefer: %s",
               cases[i].h ? cases[i].h : "(none)");
    char v[16];
    is_int(rest_prefer_get("return=minimal; handling=lenient", "handling", v, sizeof v), 1,
           "rest_prefer_get finds handling");
    is_str(v, "lenient", "its value");
    is_int(rest_prefer_get("return=minimal", "handling", v, sizeof v), 0, "absent: 0");
    is_int(rest_prefer_get("handling=aaaaaaaaaaaaaaaaaaaaaaaa", "handling", v, sizeof v), -1,
           "a value longer than the buffer: -1");
}

static void test_time_param(void)
{
    const int64_t S = 1000000;
    static char too_long[80];
    memset(too_long, '1', sizeof too_long - 1);
    memcpy(too_long, "2024-01-01T10:00:00.", 20);
    too_long[sizeof too_long - 2] = 'Z';
    struct {
        const char *s;
        int rc;
        int64_t us;
    } cases[] = {
        {"1970-01-01T00:00:00Z", 0, 0},
        {"2024", 0, 1704067200 * S}, /* 2024-01-01T00:00:00Z */
        {"2024-02", 0, ftime_utc_us(2024, 2, 1, 0, 0, 0)},
        {"2024-02-29", 0, ftime_utc_us(2024, 2, 29, 0, 0, 0)},
        {"2024-01-01T10:00:00Z", 0, ftime_utc_us(2024, 1, 1, 10, 0, 0)},
        {"2024-01-01T10:00:00.5Z", 0, ftime_utc_us(2024, 1, 1, 10, 0, 0) + 500000},
        {"2024-01-01T10:00:00.123456Z", 0, ftime_utc_us(2024, 1, 1, 10, 0, 0) + 123456},
        {"2024-01-01T10:00:00+02:00", 0, ftime_utc_us(2024, 1, 1, 8, 0, 0)},
        {"2024-01-01T10:00:00 02:00", 0, ftime_utc_us(2024, 1, 1, 8, 0, 0)}, /* '+' as ' ' */
        {"2024-01-01T10:00:00-02:00", 0, ftime_utc_us(2024, 1, 1, 12, 0, 0)},
        {"2024-01-01T01:00:00+02:00", 0, ftime_utc_us(2023, 12, 31, 23, 0, 0)},
        {"2024-01-01T10:00:00", ERR_INVALID, 0}, /* a time needs a zone */
        {"2024-01-01T10:00", ERR_INVALID, 0},
        {"2024-01-01T10:00Z", ERR_INVALID, 0},
        {"2024-01-01T", ERR_INVALID, 0},
        {"2024-01-01T10:00:00+15:00", ERR_INVALID, 0},
        {"2023-02-29", ERR_INVALID, 0},
        {"2024-13", ERR_INVALID, 0},
        {"24", ERR_INVALID, 0},
        {"", ERR_INVALID, 0},
        {"yesterday", ERR_INVALID, 0},
        {" 2024", ERR_INVALID, 0},
        {too_long, ERR_INVALID, 0}, /* longer than any dateTime */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t us = -1;
        int rc = rest_time_param(cases[i].s, &us);
        if (cases[i].rc == 0) {
            ok(rc == 0 && us == cases[i].us, "_since=%s -> %lld", cases[i].s,
               (long long)cases[i].us);
            if (rc || us != cases[i].us)
                printf("#   got rc %d us %lld\n", rc, (long long)us);
        } else {
            is_int(rc, ERR_INVALID, "_since=%.40s refused", cases[i].s);
        }
    }
}

/* =============================================================================
 * 4. The commit classifier
 * ============================================================================= */

static void test_commit_classify(void)
{
    is_int(rest_commit_classify(0, 0), REST_COMMITTED, "rc 0 -> committed");
    is_int(rest_commit_classify(ERR_CONFLICT, 0), REST_LOST_RACE,
           "ERR_CONFLICT from the writer -> lost race");
    is_int(rest_commit_classify(ERR_CONFLICT, 1), REST_FAILED,
           "ERR_CONFLICT refused at once by store_submit -> failed, never a race");
    static const int others[] = {ERR_INVALID, ERR_NOTFOUND, ERR_GONE,    ERR_IO,
                                 ERR_NOMEM,   ERR_TOOBIG,   ERR_INTERNAL};
    static const char *const names[] = {"ERR_INVALID", "ERR_NOTFOUND", "ERR_GONE",    "ERR_IO",
                                        "ERR_NOMEM",   "ERR_TOOBIG",   "ERR_INTERNAL"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        for (int sync = 0; sync < 2; sync++)
            is_int(rest_commit_classify(others[i], sync), REST_FAILED, "%s %s -> failed", names[i],
                   sync ? "sync" : "async");
}

/* =============================================================================
 * 5. The write plan, against a real store
 * ============================================================================= */

static const int64_t LU_OLD = 1700000000000000; /* lastUpdated of the stored versions */
static const int64_t NOW = 1704067200123000;    /* the plans' now: 2024-01-01T00:00:00.123Z */

/* Write one version of Patient/id in tenant (blocking): content with gender=male. */
static int put_version(store *s, uint32_t tenant, store_opkind kind, const char *id,
                       uint64_t expect, uint64_t vid)
{
    char lu[40], b[300];
    ftime_format_instant(LU_OLD, lu);
    int n = snprintf(b, sizeof b,
                     "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"meta\":{\"versionId\":"
                     "\"%llu\",\"lastUpdated\":\"%s\"},\"gender\":\"male\"}",
                     id, (unsigned long long)vid, lu);
    store_op op = {.op = kind,
                   .type = "Patient",
                   .type_len = 7,
                   .id = id,
                   .id_len = strlen(id),
                   .expect = expect,
                   .vid = vid,
                   .last_updated = LU_OLD,
                   .bytes = kind == STORE_OP_DELETE ? NULL : b,
                   .len = kind == STORE_OP_DELETE ? 0 : (size_t)n};
    store_req req = {.tenant = tenant, .ops = &op, .nops = 1};
    return store_write(s, &req, NULL);
}

/* Commit a planned op (no reader may be held). *created: the store's answer. */
static int commit_op(store *s, uint32_t tenant, const store_op *planned, int *created)
{
    store_op op = *planned;
    store_req req = {.tenant = tenant, .ops = &op, .nops = 1};
    int rc = store_write(s, &req, NULL);
    if (created)
        *created = op.created;
    return rc;
}

static void wr_init(rest_write *w, rest_write_kind kind, const fhir_type *t, const char *id,
                    json_val *res)
{
    memset(w, 0, sizeof *w);
    w->kind = kind;
    w->type = t;
    w->id = id;
    w->res = res;
}

/* The stored form the plan built, parsed back: 1 when it is the resource with
 * resourceType, id, meta first and meta.versionId, meta.lastUpdated as planned,
 * other meta members and content kept. `gender` is the expected gender. */
static int bytes_are(arena *a, const store_op *op, const char *id, uint64_t vid, const char *gender)
{
    if (!op->bytes || !op->len)
        return 0;
    char *copy = arena_strndup(a, op->bytes, op->len);
    json_val *v = NULL;
    if (!copy || json_parse(a, copy, op->len, JSON_FHIR, &v, NULL) || v->type != JSON_OBJECT ||
        v->n < 3)
        return 0;
    char vids[24], lu[40];
    snprintf(vids, sizeof vids, "%llu", (unsigned long long)vid);
    ftime_format_instant(op->last_updated, lu);
    const json_val *meta = json_get(v, "meta");
    return !strcmp(v->u.members[0].key, "resourceType") && !strcmp(v->u.members[1].key, "id") &&
           !strcmp(v->u.members[2].key, "meta") &&
           str_eq(json_get_str(v, "resourceType"), "Patient") &&
           str_eq(json_get_str(v, "id"), id) && str_eq(json_get_str(meta, "versionId"), vids) &&
           str_eq(json_get_str(meta, "lastUpdated"), lu) &&
           str_eq(json_get_str(v, "gender"), gender);
}

/* A PATCH transform for the tests: what it does is chosen by mode. */
enum {
    TX_SET_GENDER = 0, /* gender = "other": a valid change */
    TX_CHANGE_ID,      /* id = "someone-else" */
    TX_CHANGE_TYPE,    /* resourceType = "Observation" */
    TX_DROP_ID,        /* remove id */
    TX_REFUSE,         /* refuse like a bad patch document */
    TX_ERROR,          /* a server error */
    TX_INVALID,        /* an element the model does not know */
};

typedef struct tx_spec {
    int mode;
    int calls;
    char saw_id[80], saw_gender[20], saw_vid[24];
} tx_spec;

static const char TX_REFUSAL[] = "patch operation 1: path not found";

static int transform(void *arg, arena *a, json_val *root, rest_refusal *why)
{
    tx_spec *t = arg;
    t->calls++;
    const char *id = json_get_str(root, "id"), *g = json_get_str(root, "gender");
    const char *vid = json_get_str(json_get(root, "meta"), "versionId");
    snprintf(t->saw_id, sizeof t->saw_id, "%s", id ? id : "");
    snprintf(t->saw_gender, sizeof t->saw_gender, "%s", g ? g : "");
    snprintf(t->saw_vid, sizeof t->saw_vid, "%s", vid ? vid : "");
    json_val *v;
    switch (t->mode) {
    case TX_SET_GENDER:
        v = json_new_string(a, "other", 5);
        return v ? json_obj_set(a, root, "gender", v) : ERR_NOMEM;
    case TX_CHANGE_ID:
        v = json_new_string(a, "someone-else", 12);
        return v ? json_obj_set(a, root, "id", v) : ERR_NOMEM;
    case TX_CHANGE_TYPE:
        v = json_new_string(a, "Observation", 11);
        return v ? json_obj_set(a, root, "resourceType", v) : ERR_NOMEM;
    case TX_DROP_ID:
        json_obj_del(root, "id");
        return 0;
    case TX_REFUSE:
        why->status = 422;
        why->code = OO_PROCESSING;
        why->msg = TX_REFUSAL;
        why->expr = "Patient.name";
        return 1;
    case TX_ERROR:
        return ERR_IO;
    case TX_INVALID:
        v = json_new_string(a, "x", 1);
        return v ? json_obj_set(a, root, "notAnElement", v) : ERR_NOMEM;
    }
    return ERR_INTERNAL;
}

static int plan_patch(const rest_ctx *ctx, store_reader *rd, arena *a, const fhir_type *pt,
                      const char *id, tx_spec *tx, rest_write *w)
{
    wr_init(w, RW_PATCH, pt, id, NULL);
    w->transform = transform;
    w->transform_arg = tx;
    return rest_write_plan(ctx, rd, a, NOW, w);
}

static char store_dir[64];

static void test_write_plan(void)
{
    const fhir_type *pt = fhir_resource_type("Patient", 7);
    ok(pt && pt == fhir_type_find("Patient", 7), "Patient resolves through the model");
    if (!pt)
        return;
    snprintf(store_dir, sizeof store_dir, "/tmp/hortus-rest-XXXXXX");
    if (!mkdtemp(store_dir)) {
        ok(0, "temp dir for the store");
        return;
    }
    char loc[80];
    snprintf(loc, sizeof loc, "lmdb:%s", store_dir);
    store *s = NULL;
    int rc = store_open(loc, NULL, &s);
    is_int(rc, 0, "store opened in %s", store_dir);
    if (rc)
        return;
    arena *a = arena_new(0);

    /* tenant 0: p1 live at version 2; gone deleted at version 2 */
    ok(put_version(s, 0, STORE_OP_CREATE, "p1", 0, 1) == 0 &&
           put_version(s, 0, STORE_OP_UPDATE, "p1", 1, 2) == 0 &&
           put_version(s, 0, STORE_OP_CREATE, "gone", 0, 1) == 0 &&
           put_version(s, 0, STORE_OP_DELETE, "gone", 1, 2) == 0,
       "fixture: Patient/p1 at version 2, Patient/gone deleted at version 2");

    static const char res_text[] =
        "{\"resourceType\":\"Patient\",\"id\":\"ignored\",\"gender\":\"female\","
        "\"meta\":{\"versionId\":\"99\",\"lastUpdated\":\"2000-01-01T00:00:00Z\","
        "\"source\":\"urn:test\"},\"active\":true}";
    json_val *res = NULL;
    is_int(json_parse(a, res_text, sizeof res_text - 1, JSON_FHIR, &res, NULL), 0,
           "fixture: a Patient to write");

    store_reader *rd = NULL;
    is_int(store_read_begin(s, &rd), 0, "read snapshot");
    rest_ctx ctx0 = {.tenant = 0, .snap = rd}, ctx1 = {.tenant = 1, .snap = rd};
    rest_write w, w2;

    /* ---- CREATE ---- */
    wr_init(&w, RW_CREATE, pt, NULL, res);
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    is_int(rc, REST_PLAN_OK, "CREATE planned");
    ok(w.id == w.newid && strlen(w.newid) == 36 && rest_id_valid(w.newid, 36),
       "CREATE draws a 36-character valid id (%s)", w.newid);
    ok(w.newid[8] == '-' && w.newid[13] == '-' && w.newid[18] == '-' && w.newid[23] == '-' &&
           w.newid[14] == '7' && strchr("89ab", w.newid[19]),
       "the drawn id is a UUID version 7");
    ok(w.op.op == STORE_OP_CREATE && w.op.vid == 1 && w.op.expect == 0 && !w.noop && !w.live &&
           w.cur_vid == 0,
       "CREATE op: STORE_OP_CREATE, vid 1, expect 0");
    ok(w.op.id_len == 36 && !memcmp(w.op.id, w.newid, 36) && w.op.type_len == 7 &&
           !memcmp(w.op.type, "Patient", 7) && w.op.last_updated == NOW,
       "CREATE op names Patient/<new id> at now");
    ok(bytes_are(a, &w.op, w.newid, 1, "female"),
       "CREATE bytes: the new id, meta.versionId \"1\", lastUpdated = now, content kept");
    {
        char *copy = arena_strndup(a, w.op.bytes, w.op.len);
        json_val *v = NULL;
        json_parse(a, copy, w.op.len, JSON_FHIR, &v, NULL);
        const json_val *meta = json_get(v, "meta");
        ok(str_eq(json_get_str(meta, "source"), "urn:test") && json_get(v, "active") &&
               !strstr(copy, "ignored") && !strstr(copy, "\"99\"") && !strstr(copy, "2000-"),
           "CREATE bytes keep meta.source, drop the client's id, versionId and lastUpdated");
    }
    char first_id[37];
    memcpy(first_id, w.newid, 37);
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_OK && strcmp(w.newid, first_id) != 0 && w.id == w.newid &&
           bytes_are(a, &w.op, w.newid, 1, "female"),
       "a CREATE planned again draws a new id");
    /* committed below, after w is reused: op.id points into w.newid, so it gets a
     * copy of its own (the latest plan's id, which its bytes name) */
    memcpy(first_id, w.newid, 37);
    store_op create_op = w.op;
    create_op.id = first_id;
    wr_init(&w, RW_CREATE, pt, "bundle-ref", res);
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_OK && str_eq(w.id, "bundle-ref") && w.op.id_len == 10 &&
           !memcmp(w.op.id, "bundle-ref", 10) && bytes_are(a, &w.op, "bundle-ref", 1, "female"),
       "a CREATE with a given id (Bundle reference) keeps it");

    /* ---- UPDATE ---- */
    wr_init(&w, RW_UPDATE, pt, "p1", res);
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_OK && w.live && w.cur_vid == 2 && w.cur_lu == LU_OLD && !w.noop,
       "UPDATE of p1 reads it: live at version 2");
    ok(w.op.op == STORE_OP_UPDATE && w.op.vid == 3 && w.op.expect == 2 &&
           bytes_are(a, &w.op, "p1", 3, "female"),
       "UPDATE op: vid cur+1 = 3, expect cur = 2, bytes at versionId \"3\"");
    store_op update_op = w.op;

    wr_init(&w, RW_UPDATE, pt, "p1", res);
    w.pre.if_match = 1;
    w.pre.if_match_vid = 1;
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 412 && w.why.code == OO_CONFLICT && w.why.msg &&
           strstr(w.why.msg, "version 1") && strstr(w.why.msg, "is 2"),
       "UPDATE with a stale If-Match W/\"1\" -> 412 naming both versions");
    wr_init(&w, RW_UPDATE, pt, "p1", res);
    w.pre.if_match = 1;
    w.pre.if_match_vid = 2;
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_OK && w.op.vid == 3 && w.op.expect == 2,
       "UPDATE with the current If-Match W/\"2\" -> planned");

    wr_init(&w, RW_UPDATE, pt, "p1", res);
    w.pre.if_none_match = 2;
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 412 && w.why.code == OO_CONFLICT,
       "UPDATE with If-None-Match * of an existing resource -> 412");
    wr_init(&w, RW_UPDATE, pt, "new1", res);
    w.pre.if_none_match = 2;
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_OK && !w.live && w.cur_vid == 0 && w.op.op == STORE_OP_UPDATE &&
           w.op.vid == 1 && w.op.expect == 0 && bytes_are(a, &w.op, "new1", 1, "female"),
       "UPDATE with If-None-Match * of a missing resource -> create at version 1");
    wr_init(&w, RW_UPDATE, pt, "gone", res);
    w.pre.if_none_match = 2;
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_OK && !w.live && w.cur_vid == 2 && w.op.vid == 3 && w.op.expect == 0,
       "UPDATE with If-None-Match * of a deleted resource -> recreate at version 3, expect 0");
    wr_init(&w, RW_UPDATE, pt, "p1", res);
    w.pre.if_none_match = 1;
    w.pre.if_none_match_list = "W/\"1\", W/\"2\"";
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 412,
       "UPDATE with If-None-Match naming the current version -> 412");

    wr_init(&w, RW_UPDATE, pt, "new2", res);
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_OK && !w.live && w.op.vid == 1 && w.op.expect == 0,
       "UPDATE of a missing resource: create-on-update at version 1, expect 0");
    store_op upcreate_op = w.op;
    wr_init(&w, RW_UPDATE, pt, "gone", res);
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_OK && !w.live && w.cur_vid == 2 && w.op.vid == 3 && w.op.expect == 0 &&
           bytes_are(a, &w.op, "gone", 3, "female"),
       "UPDATE of a deleted resource: version 3 after the tombstone, expect 0");

    /* ---- DELETE ---- */
    wr_init(&w, RW_DELETE, pt, "nope", NULL);
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_OK && w.noop && !w.live && w.cur_vid == 0,
       "DELETE of a missing resource -> noop");
    wr_init(&w, RW_DELETE, pt, "gone", NULL);
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_OK && w.noop && !w.live && w.cur_vid == 2,
       "DELETE of a deleted resource -> noop (tombstone version 2 seen)");
    wr_init(&w, RW_DELETE, pt, "p1", NULL);
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_OK && !w.noop && w.live && w.op.op == STORE_OP_DELETE && w.op.vid == 3 &&
           w.op.expect == 2 && !w.op.bytes && w.op.len == 0 && w.op.last_updated == NOW,
       "DELETE of a live resource -> STORE_OP_DELETE, vid 3, expect 2, no bytes");
    wr_init(&w, RW_DELETE, pt, "p1", NULL);
    w.pre.if_match = 1;
    w.pre.if_match_vid = 1;
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 412, "DELETE with a stale If-Match -> 412");
    wr_init(&w, RW_DELETE, pt, "nope", NULL);
    w.pre.if_match = 1;
    w.pre.if_match_vid = 1;
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 412 && !w.noop,
       "DELETE of a missing resource with If-Match -> 412, not a silent noop");

    /* ---- PATCH ---- */
    tx_spec tx = {.mode = TX_SET_GENDER};
    rc = plan_patch(&ctx0, rd, a, pt, "nope", &tx, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 404 && w.why.code == OO_NOT_FOUND && w.why.msg &&
           strstr(w.why.msg, "Patient/nope") && tx.calls == 0,
       "PATCH of a missing resource -> 404 naming it, transform not called");
    rc = plan_patch(&ctx0, rd, a, pt, "gone", &tx, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 410 && w.why.code == OO_DELETED && tx.calls == 0,
       "PATCH of a deleted resource -> 410");
    wr_init(&w, RW_PATCH, pt, "nope", NULL);
    w.transform = transform;
    w.transform_arg = &tx;
    w.pre.if_match = 1;
    w.pre.if_match_vid = 1;
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 404,
       "PATCH of a missing resource with If-Match -> 404 (not 412)");

    tx = (tx_spec){.mode = TX_SET_GENDER};
    rc = plan_patch(&ctx0, rd, a, pt, "p1", &tx, &w);
    ok(rc == REST_PLAN_OK && tx.calls == 1 && str_eq(tx.saw_id, "p1") &&
           str_eq(tx.saw_gender, "male") && str_eq(tx.saw_vid, "2"),
       "PATCH hands the transform the current version (p1, gender male, versionId 2)");
    ok(w.op.op == STORE_OP_UPDATE && w.op.vid == 3 && w.op.expect == 2 && w.res &&
           bytes_are(a, &w.op, "p1", 3, "other"),
       "PATCH op: the transformed content at version 3, expect 2");
    store_op patch_op = w.op;

    tx = (tx_spec){.mode = TX_SET_GENDER};
    wr_init(&w, RW_PATCH, pt, "p1", NULL);
    w.transform = transform;
    w.transform_arg = &tx;
    w.pre.if_match = 1;
    w.pre.if_match_vid = 1;
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 412 && tx.calls == 0,
       "PATCH with a stale If-Match -> 412 before the transform runs");

    tx = (tx_spec){.mode = TX_CHANGE_ID};
    rc = plan_patch(&ctx0, rd, a, pt, "p1", &tx, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 422 && w.why.code == OO_PROCESSING && w.why.msg &&
           strstr(w.why.msg, "id"),
       "PATCH whose transform changes the id -> 422");
    tx = (tx_spec){.mode = TX_CHANGE_TYPE};
    rc = plan_patch(&ctx0, rd, a, pt, "p1", &tx, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 422 && w.why.msg &&
           strstr(w.why.msg, "resourceType"),
       "PATCH whose transform changes resourceType -> 422");
    tx = (tx_spec){.mode = TX_DROP_ID};
    rc = plan_patch(&ctx0, rd, a, pt, "p1", &tx, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 422, "PATCH whose transform drops the id -> 422");
    tx = (tx_spec){.mode = TX_REFUSE};
    rc = plan_patch(&ctx0, rd, a, pt, "p1", &tx, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 422 && w.why.code == OO_PROCESSING &&
           str_eq(w.why.msg, TX_REFUSAL) && str_eq(w.why.expr, "Patient.name"),
       "PATCH whose transform refuses -> its refusal passed through");
    tx = (tx_spec){.mode = TX_ERROR};
    rc = plan_patch(&ctx0, rd, a, pt, "p1", &tx, &w);
    is_int(rc, ERR_IO, "PATCH whose transform fails -> its error passed through");
    tx = (tx_spec){.mode = TX_INVALID};
    rc = plan_patch(&ctx0, rd, a, pt, "p1", &tx, &w);
    ok(rc == REST_PLAN_REFUSED && w.why.status == 422 && w.why.outcome &&
           oo_count(w.why.outcome) > 0,
       "PATCH producing an invalid resource -> 422 with the validation outcome");
    /* a refusal is cleared by the next plan */
    tx = (tx_spec){.mode = TX_SET_GENDER};
    w.kind = RW_PATCH;
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w);
    ok(rc == REST_PLAN_OK && w.why.status == 0 && !w.why.msg && !w.why.outcome,
       "planning again clears the previous refusal");

    /* ---- extras ---- */
    wr_init(&w2, RW_DELETE, pt, "p1", NULL);
    int extra_rc = 0;
    for (int i = 0; i < 20; i++) {
        unsigned char key[8] = {0, 0, 0, 0, 'k', (unsigned char)i, 0, 0};
        extra_rc |= rest_write_add_extra(a, &w2, STORE_DB_AUX, i & 1, key, sizeof key, "v",
                                         (size_t)(i & 1 ? 0 : 1));
    }
    int extras_ok = extra_rc == 0 && w2.nextra == 20 && w2.extra_cap >= 20;
    for (size_t i = 0; extras_ok && i < w2.nextra; i++) {
        const store_extra *x = &w2.extras[i];
        const unsigned char *k = x->key;
        extras_ok = x->db == STORE_DB_AUX && x->del == (int)(i & 1) && x->key_len == 8 &&
                    k[5] == (unsigned char)i && x->val_len == (i & 1 ? 0u : 1u) &&
                    (x->val_len == 0 || !memcmp(x->val, "v", 1));
    }
    ok(extras_ok, "rest_write_add_extra keeps 20 copies in order across growth");
    rc = rest_write_plan(&ctx0, rd, a, NOW, &w2);
    ok(rc == REST_PLAN_OK && w2.nextra == 0, "a plan starts with no extras");

    /* ---- tenants ---- */
    store_version v;
    is_int(store_read(rd, 1, "Patient", "p1", &v), ERR_NOTFOUND,
           "tenant 1 does not see tenant 0's Patient/p1");
    wr_init(&w, RW_UPDATE, pt, "p1", res);
    rc = rest_write_plan(&ctx1, rd, a, NOW, &w);
    ok(rc == REST_PLAN_OK && !w.live && w.cur_vid == 0 && w.op.expect == 0 && w.op.vid == 1,
       "UPDATE of p1 in tenant 1 is a create there: expect 0, vid 1");
    store_op tenant1_op = w.op;
    rc = plan_patch(&ctx1, rd, a, pt, "p1", &tx, &w2);
    ok(rc == REST_PLAN_REFUSED && w2.why.status == 404, "PATCH of p1 in tenant 1 -> 404");
    wr_init(&w2, RW_DELETE, pt, "p1", NULL);
    rc = rest_write_plan(&ctx1, rd, a, NOW, &w2);
    ok(rc == REST_PLAN_OK && w2.noop, "DELETE of p1 in tenant 1 -> noop");
    store_read_end(rd);
    rd = NULL;

    /* ---- the planned ops are what the store takes ---- */
    int created = -1;
    rc = commit_op(s, 0, &update_op, &created);
    ok(rc == 0 && created == 0, "the planned UPDATE of p1 commits (200, not created)");
    is_int(commit_op(s, 0, &patch_op, NULL), ERR_CONFLICT,
           "the PATCH planned from the same snapshot lost the race: ERR_CONFLICT");
    is_int(rest_commit_classify(ERR_CONFLICT, 0), REST_LOST_RACE, "... which is a lost race");
    rc = commit_op(s, 0, &create_op, &created);
    ok(rc == 0 && created == 1, "the planned CREATE commits (201)");
    rc = commit_op(s, 0, &upcreate_op, &created);
    ok(rc == 0 && created == 1, "the planned create-on-update commits (201)");
    rc = commit_op(s, 1, &tenant1_op, &created);
    ok(rc == 0 && created == 1, "the tenant-1 UPDATE of p1 commits as a create (201)");
    if (store_read_begin(s, &rd) == 0) {
        store_version v0, v1, vc;
        int r0 = store_read(rd, 0, "Patient", "p1", &v0);
        int r1 = store_read(rd, 1, "Patient", "p1", &v1);
        int rcre = store_read(rd, 0, "Patient", first_id, &vc);
        ok(r0 == 0 && v0.vid == 3 && r1 == 0 && v1.vid == 1,
           "tenants apart: p1 is at version 3 in tenant 0 and 1 in tenant 1");
        ok(r0 == 0 && v0.len == update_op.len && !memcmp(v0.bytes, update_op.bytes, v0.len),
           "the stored bytes are the planned bytes");
        ok(rcre == 0 && vc.vid == 1, "the created Patient/<drawn id> reads back at version 1");
        /* planned again on the new state: the PATCH now goes from version 3 */
        tx = (tx_spec){.mode = TX_SET_GENDER};
        rc = plan_patch(&ctx0, rd, a, pt, "p1", &tx, &w);
        ok(rc == REST_PLAN_OK && w.op.vid == 4 && w.op.expect == 3 && str_eq(tx.saw_vid, "3") &&
               str_eq(tx.saw_gender, "female"),
           "a re-plan after the lost race starts from the new version 3");
        store_read_end(rd);
    } else {
        ok(0, "second read snapshot");
    }
    store_close(s);
    arena_free(a);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", store_dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", store_dir);
}

/* =============================================================================
 * 6. The gate
 * ============================================================================= */

#define MAXREC 64
static rest_req *parked[MAXREC], *woken[MAXREC];
static int nparked, nwoken;

static void rec_park(rest_req *r)
{
    if (nparked < MAXREC)
        parked[nparked] = r;
    nparked++;
}

static void rec_wake(rest_req *r)
{
    if (nwoken < MAXREC)
        woken[nwoken] = r;
    nwoken++;
}

static int cont_a(rest_req *r)
{
    (void)r;
    return REST_DONE;
}

static int cont_b(rest_req *r)
{
    (void)r;
    return REST_SUSPENDED;
}

static void test_gate_basic(void)
{
    rest_gate_hooks hooks = {rec_park, rec_wake};
    rest_gate *g = rest_gate_new(&hooks);
    ok(g != NULL, "gate created");
    if (!g)
        return;
    is_int(rest_gate_keys(g), 0, "a new gate has no keys");
    static rest_req r[8]; /* zeroed; the gate uses gate_* and resume only */
    nparked = nwoken = 0;

    is_int(rest_gate_enter(g, &r[1], 0, "Patient", "1", cont_a), 1, "first writer holds");
    ok(nparked == 0 && r[1].gated, "the holder is not parked");
    is_int(rest_gate_keys(g), 1, "one key");
    is_int(rest_gate_enter(g, &r[2], 0, "Patient", "1", cont_a), 0, "second writer waits");
    is_int(rest_gate_enter(g, &r[3], 0, "Patient", "1", cont_b), 0, "third writer waits");
    ok(nparked == 2 && parked[0] == &r[2] && parked[1] == &r[3],
       "the waiters were parked, in arrival order");
    ok(r[2].resume == cont_a && r[3].resume == cont_b, "each waiter's continuation is its resume");
    is_int(rest_gate_keys(g), 1, "waiters share the key's entry");
    is_int(rest_gate_enter(g, &r[4], 0, "Patient", "2", cont_a), 1, "another id: holds at once");
    is_int(rest_gate_enter(g, &r[5], 1, "Patient", "1", cont_a), 1,
           "the same id in another tenant: holds at once");
    is_int(rest_gate_enter(g, &r[6], 0, "Observation", "1", cont_a), 1,
           "the same id of another type: holds at once");
    is_int(rest_gate_keys(g), 4, "four keys");
    is_int(nparked, 2, "none of them parked");

    rest_gate_leave(g, &r[1]);
    ok(nwoken == 1 && woken[0] == &r[2], "the holder leaving wakes exactly the second");
    ok(!r[1].gated, "the holder is out");
    rest_gate_leave(g, &r[1]);
    is_int(nwoken, 1, "leaving twice is a no-op");
    rest_gate_leave(g, &r[7]);
    ok(nwoken == 1 && rest_gate_keys(g) == 4, "leaving a request that never entered is a no-op");
    is_int(rest_gate_enter(g, &r[1], 0, "Patient", "1", cont_a), 0,
           "the old holder entering again queues behind the third");
    rest_gate_leave(g, &r[2]);
    ok(nwoken == 2 && woken[1] == &r[3], "the second leaving wakes the third");
    rest_gate_leave(g, &r[3]);
    ok(nwoken == 3 && woken[2] == &r[1], "the third leaving wakes the re-entered first");
    is_int(rest_gate_keys(g), 4, "the key stays while someone holds it");
    rest_gate_leave(g, &r[1]);
    ok(nwoken == 3 && rest_gate_keys(g) == 3, "the last holder frees the key, waking no one");
    rest_gate_leave(g, &r[4]);
    rest_gate_leave(g, &r[5]);
    rest_gate_leave(g, &r[6]);
    ok(nwoken == 3 && rest_gate_keys(g) == 0, "every key freed: the gate is idle");
    is_int(rest_gate_enter(g, &r[2], 0, "Patient", "1", cont_a), 1,
           "after the key was freed the next writer holds at once");
    rest_gate_leave(g, &r[2]);
    is_int(rest_gate_keys(g), 0, "idle again");

    /* a key too long for gate_key goes ungated: held at once, nothing recorded */
    char longtype[200];
    memset(longtype, 'T', sizeof longtype - 1);
    longtype[sizeof longtype - 1] = 0;
    is_int(rest_gate_enter(g, &r[3], 0, longtype, "1", cont_a), 1, "an over-long key goes ungated");
    ok(!r[3].gated && rest_gate_keys(g) == 0, "... and takes no entry");
    rest_gate_leave(g, &r[3]);
    is_int(nwoken, 3, "... and its leave wakes no one");

    /* many keys at once: entries chain in the hash buckets and unlink in any order */
    enum { NK = 3000 };
    rest_req *many = calloc(NK, sizeof *many);
    int *order = calloc(NK, sizeof *order);
    if (many && order) {
        int held = 0;
        char id[16];
        for (int i = 0; i < NK; i++) {
            snprintf(id, sizeof id, "k%d", i);
            held += rest_gate_enter(g, &many[i], (uint32_t)(i % 3), "Patient", id, cont_a);
        }
        ok(held == NK && rest_gate_keys(g) == NK, "%d distinct keys all held at once", NK);
        for (int i = 0; i < NK; i++)
            order[i] = i;
        for (int i = NK - 1; i > 0; i--) {
            int j = (int)(rng() % (uint32_t)(i + 1));
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        int count_ok = 1;
        for (int i = 0; i < NK; i++) {
            rest_gate_leave(g, &many[order[i]]);
            if (rest_gate_keys(g) != (unsigned)(NK - 1 - i))
                count_ok = 0;
        }
        ok(count_ok && nwoken == 3, "left in random order: the count falls by one each time");
    }
    free(many);
    free(order);
    rest_gate_free(g);
}

/* Random interleavings in one thread against a model: per key, a FIFO list whose
 * head is the holder. Every enter, park and wake is compared with the model. */
#define MODEL_REQS 64
#define MODEL_KEYS 4

static rest_req *m_woken_last;
static int m_parks, m_wakes;
static void m_park(rest_req *r)
{
    (void)r;
    m_parks++;
}
static void m_wake(rest_req *r)
{
    m_woken_last = r;
    m_wakes++;
}

/* A waiter that goes away before its turn (its connection ended) leaves the queue
 * and wakes nobody: the holder keeps the key, and the one after it is next. */
static void test_gate_waiter_leaves(void)
{
    rest_gate_hooks hooks = {rec_park, rec_wake};
    rest_gate *g = rest_gate_new(&hooks);
    static rest_req r[5];
    nparked = nwoken = 0;
    is_int(rest_gate_enter(g, &r[1], 0, "Patient", "w", cont_a), 1, "r1 holds");
    is_int(rest_gate_enter(g, &r[2], 0, "Patient", "w", cont_a), 0, "r2 waits");
    is_int(rest_gate_enter(g, &r[3], 0, "Patient", "w", cont_a), 0, "r3 waits");
    is_int(rest_gate_enter(g, &r[4], 0, "Patient", "w", cont_a), 0, "r4 waits");
    rest_gate_leave(g, &r[3]); /* from the middle */
    is_int(nwoken, 0, "a waiter leaving from the middle wakes nobody");
    rest_gate_leave(g, &r[2]); /* the head */
    is_int(nwoken, 0, "the head waiter leaving wakes nobody: r1 still holds");
    rest_gate_leave(g, &r[1]);
    ok(nwoken == 1 && woken[0] == &r[4], "the holder leaving wakes the one waiter left");
    rest_gate_leave(g, &r[4]);
    ok(nwoken == 1 && rest_gate_keys(g) == 0, "then the key is free");
    rest_gate_free(g);
}

static void test_gate_model(void)
{
    rest_gate_hooks hooks = {m_park, m_wake};
    rest_gate *g = rest_gate_new(&hooks);
    static rest_req reqs[MODEL_REQS];
    int queue[MODEL_KEYS][MODEL_REQS], qlen[MODEL_KEYS] = {0};
    int where[MODEL_REQS]; /* key of each request, -1 when outside */
    static const uint32_t key_tenant[MODEL_KEYS] = {0, 0, 1, 1};
    static const char *const key_id[MODEL_KEYS] = {"a", "b", "a", "b"};
    for (int i = 0; i < MODEL_REQS; i++)
        where[i] = -1;
    int errors = 0, steps = 0, enters = 0, waits = 0;
    const char *first_error = NULL;
#define MODEL_FAIL(what)                                                                           \
    do {                                                                                           \
        if (!errors++)                                                                             \
            first_error = what;                                                                    \
    } while (0)
    for (steps = 0; steps < 20000; steps++) {
        uint32_t act = rng() % 8;
        if (act < 4) { /* enter: a request outside the gate on a random key */
            int i = (int)(rng() % MODEL_REQS);
            if (where[i] >= 0)
                continue;
            int k = (int)(rng() % MODEL_KEYS);
            int parks0 = m_parks;
            int got = rest_gate_enter(g, &reqs[i], key_tenant[k], "Patient", key_id[k], cont_a);
            int want = qlen[k] == 0;
            enters++;
            waits += !want;
            if (got != want)
                MODEL_FAIL("enter: hold/wait differs from the model");
            if (m_parks != parks0 + !want)
                MODEL_FAIL("enter: park hook not called exactly for a waiter");
            queue[k][qlen[k]++] = i;
            where[i] = k;
        } else if (act < 7) { /* leave: the holder of a random key */
            int k = (int)(rng() % MODEL_KEYS);
            if (qlen[k] == 0)
                continue;
            int h = queue[k][0];
            int wakes0 = m_wakes;
            rest_gate_leave(g, &reqs[h]);
            memmove(&queue[k][0], &queue[k][1], sizeof queue[k][0] * (size_t)(qlen[k] - 1));
            qlen[k]--;
            where[h] = -1;
            if (qlen[k] > 0) {
                if (m_wakes != wakes0 + 1 || m_woken_last != &reqs[queue[k][0]])
                    MODEL_FAIL("leave: the next in FIFO order was not the one woken");
            } else if (m_wakes != wakes0) {
                MODEL_FAIL("leave: a wake with nobody waiting");
            }
        } else { /* leave by a request outside the gate: nothing happens */
            int i = (int)(rng() % MODEL_REQS);
            if (where[i] >= 0)
                continue;
            int wakes0 = m_wakes;
            rest_gate_leave(g, &reqs[i]);
            if (m_wakes != wakes0)
                MODEL_FAIL("leave by an outsider woke someone");
        }
        unsigned want_keys = 0;
        for (int k = 0; k < MODEL_KEYS; k++)
            want_keys += qlen[k] > 0;
        if (rest_gate_keys(g) != want_keys)
            MODEL_FAIL("key count differs from the model");
    }
    /* drain: holders leave until the model is empty */
    for (int k = 0; k < MODEL_KEYS; k++)
        while (qlen[k] > 0) {
            int h = queue[k][0];
            int wakes0 = m_wakes;
            rest_gate_leave(g, &reqs[h]);
            memmove(&queue[k][0], &queue[k][1], sizeof queue[k][0] * (size_t)(qlen[k] - 1));
            qlen[k]--;
            where[h] = -1;
            if (qlen[k] > 0 && (m_wakes != wakes0 + 1 || m_woken_last != &reqs[queue[k][0]]))
                MODEL_FAIL("drain: FIFO order broken");
        }
#undef MODEL_FAIL
    ok(errors == 0, "%d random steps (%d enters, %d of them waited) follow the FIFO model%s%s",
       steps, enters, waits, errors ? ": " : "", errors ? first_error : "");
    ok(waits > 100, "the interleaving made requests wait (%d)", waits);
    ok(m_parks == m_wakes, "every park was matched by one wake (%d)", m_parks);
    is_int(rest_gate_keys(g), 0, "drained: keys back to 0");
    rest_gate_free(g);
}

/* Threads: each writer waits on its own condition variable when parked; the gate
 * must let one writer per key in at a time and never lose a wake-up. */
#define MT_THREADS 8
#define MT_ROUNDS 300
#define MT_KEYS 3

typedef struct mt_writer {
    rest_req r; /* first: the hooks get &r and cast back */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int woken;
    uint32_t seed;
    int waited;
} mt_writer;

static rest_gate *mt_gate;
static atomic_int mt_inside[MT_KEYS], mt_overlaps, mt_parks, mt_wakes;
static long mt_count[MT_KEYS]; /* changed only by the key's holder */

static void mt_park(rest_req *r)
{
    (void)r;
    atomic_fetch_add(&mt_parks, 1);
}

static void mt_wake(rest_req *r)
{
    mt_writer *w = (mt_writer *)r;
    atomic_fetch_add(&mt_wakes, 1);
    pthread_mutex_lock(&w->mu);
    w->woken = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void *mt_run(void *arg)
{
    mt_writer *w = arg;
    char id[8];
    for (int i = 0; i < MT_ROUNDS; i++) {
        w->seed ^= w->seed << 13;
        w->seed ^= w->seed >> 17;
        w->seed ^= w->seed << 5;
        int k = (int)(w->seed % MT_KEYS);
        snprintf(id, sizeof id, "m%d", k);
        pthread_mutex_lock(&w->mu);
        w->woken = 0;
        pthread_mutex_unlock(&w->mu);
        if (!rest_gate_enter(mt_gate, &w->r, 0, "Patient", id, cont_a)) {
            w->waited++;
            pthread_mutex_lock(&w->mu);
            while (!w->woken)
                pthread_cond_wait(&w->cv, &w->mu);
            pthread_mutex_unlock(&w->mu);
        }
        if (atomic_fetch_add(&mt_inside[k], 1) != 0)
            atomic_fetch_add(&mt_overlaps, 1);
        long c = mt_count[k];
        if (w->seed & 1)
            sched_yield();
        mt_count[k] = c + 1;
        atomic_fetch_sub(&mt_inside[k], 1);
        rest_gate_leave(mt_gate, &w->r);
    }
    return NULL;
}

static void test_gate_threads(void)
{
    rest_gate_hooks hooks = {mt_park, mt_wake};
    mt_gate = rest_gate_new(&hooks);
    static mt_writer ws[MT_THREADS];
    pthread_t th[MT_THREADS];
    int started = 0;
    for (int i = 0; i < MT_THREADS; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        pthread_mutex_init(&ws[i].mu, NULL);
        pthread_cond_init(&ws[i].cv, NULL);
        ws[i].seed = 2463534242u + 7919u * (uint32_t)i;
    }
    for (int i = 0; i < MT_THREADS; i++)
        if (pthread_create(&th[i], NULL, mt_run, &ws[i]) == 0)
            started++;
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    long total = 0;
    int waited = 0;
    for (int k = 0; k < MT_KEYS; k++)
        total += mt_count[k];
    for (int i = 0; i < MT_THREADS; i++)
        waited += ws[i].waited;
    is_int(started, MT_THREADS, "%d writer threads ran", MT_THREADS);
    is_int(atomic_load(&mt_overlaps), 0, "never two holders of one key at once");
    is_int(total, (long)started * MT_ROUNDS, "every turn was taken (no lost wake-up)");
    ok(atomic_load(&mt_parks) == atomic_load(&mt_wakes) && atomic_load(&mt_parks) == waited,
       "parks = wakes = waits (%d)", waited);
    is_int(rest_gate_keys(mt_gate), 0, "keys back to 0 after the threads");
    for (int i = 0; i < MT_THREADS; i++) {
        pthread_mutex_destroy(&ws[i].mu);
        pthread_cond_destroy(&ws[i].cv);
    }
    rest_gate_free(mt_gate);
}

int main(void)
{
    arena *a = arena_new(0);
    test_route_parse(a);
    test_classify();
    test_method_parse();
    test_id_valid();
    test_vid_parse();
    test_conneg_accept();
    test_conneg_content_type();
    test_pretty();
    test_etag_parse();
    test_precond_parse();
    test_etag_list_hits();
    test_precond_check();
    test_prefer();
    test_time_param();
    test_commit_classify();
    test_write_plan();
    test_gate_basic();
    test_gate_waiter_leaves();
    test_gate_model();
    test_gate_threads();
    arena_free(a);
    return tap_done();
}
