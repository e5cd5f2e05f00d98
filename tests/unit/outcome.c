/*
 * outcome.c -- tests of the OperationOutcome builder (src/fhir/outcome.h).
 *
 * The written JSON is parsed back with the project's parser and checked member by
 * member, so the tests assert what a client would read.
 */
#include <string.h>

#include "base/err.h"
#include "fhir/outcome.h"
#include "tap.h"

static json_val *written(arena *a, const oo *o, int pretty)
{
    buf b = BUF_INIT;
    json_val *v = NULL;
    if (oo_to_buf(o, &b, pretty) == 0 && b.len > 0) {
        char *copy = arena_strndup(a, b.data, b.len);
        if (json_parse(a, copy, b.len, JSON_FHIR, &v, NULL) != 0)
            v = NULL;
    }
    buf_free(&b);
    return v;
}

static const json_val *issue(const json_val *root, size_t i)
{
    const json_val *arr = json_get(root, "issue");
    if (!arr || arr->type != JSON_ARRAY || i >= arr->n)
        return NULL;
    return &arr->u.items[i];
}

static const char *first_of(const json_val *is, const char *key)
{
    const json_val *arr = json_get(is, key);
    if (!arr || arr->type != JSON_ARRAY || arr->n < 1 || arr->u.items[0].type != JSON_STRING)
        return NULL;
    return arr->u.items[0].u.s;
}

int main(void)
{
    arena *a = arena_new(0);
    oo o;

    oo_init(&o, a);
    ok(oo_count(&o) == 0 && !oo_has_error(&o), "empty outcome");
    json_val *v = written(a, &o, 0);
    ok(v != NULL, "empty outcome is valid FHIR JSON");
    is_str(json_get_str(v, "resourceType"), "OperationOutcome", "resourceType");
    ok(issue(v, 0) && !issue(v, 1), "one placeholder issue (issue is 1..*)");
    is_str(json_get_str(issue(v, 0), "severity"), "information", "placeholder severity");
    is_str(json_get_str(issue(v, 0), "code"), "informational", "placeholder code");

    char diag[64], expr[64];
    snprintf(diag, sizeof diag, "Unknown element '%s'", "fooBar");
    snprintf(expr, sizeof expr, "Patient.name[%d].fooBar", 0);
    is_int(oo_add(&o, OO_ERROR, OO_STRUCTURE, diag, expr), 0, "add returns 0");
    memset(diag, 'x', sizeof diag - 1); /* the outcome keeps its own copies */
    memset(expr, 'y', sizeof expr - 1);
    oo_add(&o, OO_WARNING, OO_VALUE, "just a warning", NULL);
    oo_addf(&o, OO_ERROR, OO_REQUIRED, "Patient.status", "Missing required element '%s'", "status");
    is_int(oo_count(&o), 3, "three issues");
    ok(oo_has_error(&o), "has error");
    ok(oo_get(&o, 1) && oo_get(&o, 1)->code == OO_VALUE, "oo_get");
    ok(oo_get(&o, 3) == NULL, "oo_get past the end");

    v = written(a, &o, 1);
    ok(v != NULL, "pretty output parses");
    const json_val *i0 = issue(v, 0), *i1 = issue(v, 1), *i2 = issue(v, 2);
    ok(i0 && i1 && i2 && !issue(v, 3), "three issues written");
    is_str(json_get_str(i0, "severity"), "error", "issue 0 severity");
    is_str(json_get_str(i0, "code"), "structure", "issue 0 code");
    is_str(json_get_str(i0, "diagnostics"), "Unknown element 'fooBar'",
           "issue 0 diagnostics copied");
    is_str(first_of(i0, "expression"), "Patient.name[0].fooBar", "issue 0 expression copied");
    is_str(first_of(i0, "location"), "Patient.name[0].fooBar", "issue 0 location");
    is_str(json_get_str(i1, "severity"), "warning", "issue 1 severity");
    ok(json_get(i1, "expression") == NULL && json_get(i1, "location") == NULL,
       "no expression array without an expression");
    is_str(json_get_str(i2, "diagnostics"), "Missing required element 'status'",
           "formatted diagnostics");
    is_str(json_get_str(i2, "code"), "required", "required code");

    /* only warnings: no error */
    oo w;
    oo_init(&w, a);
    oo_add(&w, OO_WARNING, OO_NOT_SUPPORTED, "unknown parameter", NULL);
    oo_add(&w, OO_INFORMATION, OO_INFORMATIONAL, NULL, NULL);
    ok(!oo_has_error(&w), "warnings and information are not errors");
    oo_add(&w, OO_FATAL, OO_EXCEPTION, "boom", NULL);
    ok(oo_has_error(&w), "fatal is an error");

    /* strings needing escapes survive the round trip */
    oo e;
    oo_init(&e, a);
    oo_add(&e, OO_ERROR, OO_VALUE, "bad \"quote\" and \\ and \n newline",
           "Patient.name[0].given[1]");
    v = written(a, &e, 0);
    is_str(json_get_str(issue(v, 0), "diagnostics"), "bad \"quote\" and \\ and \n newline",
           "escaped diagnostics");

    /* the cap: issues past OO_MAX_ISSUES are counted and summarised */
    oo c;
    oo_init(&c, a);
    for (int i = 0; i < OO_MAX_ISSUES + 7; i++)
        oo_addf(&c, OO_ERROR, OO_VALUE, NULL, "issue %d", i);
    is_int(oo_count(&c), OO_MAX_ISSUES + 7, "all issues counted");
    is_int(c.n, OO_MAX_ISSUES, "kept up to the cap");
    v = written(a, &c, 0);
    const json_val *last = issue(v, OO_MAX_ISSUES);
    ok(last && !issue(v, OO_MAX_ISSUES + 1), "one summary issue after the cap");
    is_str(json_get_str(last, "code"), "too-costly", "summary code");
    ok(json_get_str(last, "diagnostics") && strstr(json_get_str(last, "diagnostics"), "7 more"),
       "summary says how many were dropped");
    is_str(json_get_str(issue(v, 499), "diagnostics"), "issue 499", "last kept issue");

    /* names */
    is_str(oo_code_str(OO_NOT_FOUND), "not-found", "not-found");
    is_str(oo_code_str(OO_TOO_COSTLY), "too-costly", "too-costly");
    is_str(oo_code_str(OO_BUSINESS_RULE), "business-rule", "business-rule");
    is_str(oo_code_str((oo_code)999), "unknown", "out of range code");
    is_str(oo_severity_str(OO_INFORMATION), "information", "information");
    is_str(oo_severity_str((oo_severity)0), "unknown", "out of range severity");
    ok(oo_code_for_err(ERR_NOTFOUND) == OO_NOT_FOUND, "ERR_NOTFOUND -> not-found");
    ok(oo_code_for_err(ERR_GONE) == OO_DELETED, "ERR_GONE -> deleted");
    ok(oo_code_for_err(ERR_CONFLICT) == OO_CONFLICT, "ERR_CONFLICT -> conflict");
    ok(oo_code_for_err(ERR_INVALID) == OO_INVALID, "ERR_INVALID -> invalid");
    ok(oo_code_for_err(ERR_UNSUPPORTED) == OO_NOT_SUPPORTED, "ERR_UNSUPPORTED -> not-supported");

    /* writing inside a larger document (a Bundle entry) */
    buf b = BUF_INIT;
    jw jwr;
    jw_init(&jwr, &b, 0);
    jw_obj(&jwr);
    jw_key(&jwr, "outcome");
    oo_write(&o, &jwr);
    jw_key(&jwr, "after");
    jw_bool(&jwr, 1);
    jw_end(&jwr);
    json_val *doc = NULL;
    char *copy = arena_strndup(a, b.data ? b.data : "", b.len);
    ok(json_parse(a, copy, b.len, 0, &doc, NULL) == 0 && json_get(doc, "after") &&
           json_get_str(json_get(doc, "outcome"), "resourceType"),
       "oo_write nests inside an enclosing object");
    buf_free(&b);

    arena_free(a);
    return tap_done();
}
