/*
 * validate_fuzz.c -- libFuzzer driver for resource validation (src/fhir/validate.c)
 * and the OperationOutcome writer (src/fhir/outcome.c).
 *
 * This is the path every client body takes on create/update: bytes are parsed with
 * json_parse(JSON_FHIR), the tree is validated, and the issues are written back as
 * an OperationOutcome. For every input that parses, the driver validates it three
 * ways (no expected type, its own resourceType, a different type) and checks:
 *   - val_resource returns 0, ERR_INVALID or ERR_NOMEM, and 0 exactly when no error
 *     issue was added, ERR_INVALID exactly when one was;
 *   - an expected type that differs from the resource's own adds an issue;
 *   - the outcome, written minified and pretty, parses back under JSON_FHIR and is
 *     itself a valid OperationOutcome (val_resource finds nothing in it) -- so what
 *     the server sends for a bad body is always well-formed FHIR;
 *   - every kept issue has a known severity and code string.
 * Crashes, leaks and sanitizer reports are findings as well (ASan/UBSan watch).
 *
 * One allowance, for text the server repairs on the way out (src/rest/response.c
 * fhir_string, src/rest/batch.c), the only place outcomes leave the process:
 * strings holding control characters quoted from the client (e.g.
 * corpus/validate/finding_ff_in_key) need not validate as FHIR strings. The
 * outcome must still be valid UTF-8 JSON: corpus/validate/finding_utf8_cut_location
 * guards the location cap (VAL_PATH_MAX), which once cut inside a UTF-8 sequence.
 * Seeds are real resources plus the reproducers of past findings (finding_*);
 * see tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"
#include "fhir/outcome.h"
#include "fhir/validate.h"
#include "json/json.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "validate_fuzz: property violated: %s\n", what);
        abort();
    }
}

/* 1 when s[0..n) holds a C0 control other than tab, CR and LF. */
static int has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 && ch != '\t' && ch != '\r' && ch != '\n')
            return 1;
    }
    return 0;
}

/* 1 when some string in the tree holds such a control character. */
static int tree_has_control(const json_val *v)
{
    switch (v->type) {
    case JSON_STRING:
        return has_control(v->u.s, v->n);
    case JSON_ARRAY:
        for (uint32_t i = 0; i < v->n; i++)
            if (tree_has_control(&v->u.items[i]))
                return 1;
        return 0;
    case JSON_OBJECT:
        for (uint32_t i = 0; i < v->n; i++)
            if (tree_has_control(&v->u.members[i].val))
                return 1;
        return 0;
    default:
        return 0;
    }
}

/* The outcome written with `pretty` must parse under FHIR rules and validate. */
static void check_outcome(arena *a, const oo *o, int pretty)
{
    buf b = BUF_INIT;
    check(oo_to_buf(o, &b, pretty) == 0, "oo_to_buf succeeds");
    json_val *v = NULL;
    json_error e;
    int rc = json_parse(a, b.data, b.len, JSON_FHIR, &v, &e);
    if (rc) {
        fprintf(stderr, "outcome does not parse (%s at %zu):\n%.*s\n", e.msg, e.off,
                (int)b.len, b.data);
        check(0, "OperationOutcome parses under JSON_FHIR");
    }
    if (tree_has_control(v)) { /* replaced by the REST layer, see the top comment */
        buf_free(&b);
        return;
    }
    oo o2;
    oo_init(&o2, a);
    rc = val_resource(a, v, "OperationOutcome", &o2);
    if (rc) {
        buf b2 = BUF_INIT;
        oo_to_buf(&o2, &b2, 1);
        fprintf(stderr, "outcome:\n%.*s\nis invalid:\n%.*s\n", (int)b.len, b.data,
                (int)b2.len, b2.data);
        buf_free(&b2);
        check(0, "the OperationOutcome written is a valid OperationOutcome");
    }
    buf_free(&b);
}

static void validate_as(arena *a, const json_val *root, const char *expected)
{
    oo o;
    oo_init(&o, a);
    int rc = val_resource(a, root, expected, &o);
    check(rc == 0 || rc == ERR_INVALID || rc == ERR_NOMEM, "return code is 0/INVALID/NOMEM");
    if (rc == 0)
        check(!oo_has_error(&o), "valid resource adds no error issue");
    if (rc == ERR_INVALID)
        check(oo_has_error(&o), "ERR_INVALID comes with an error issue");
    const char *type = val_resource_type(root);
    if (expected && (!type || strcmp(type, expected) != 0))
        check(rc != 0, "a resource of another type than expected is rejected");
    for (size_t i = 0; i < o.n; i++) {
        const oo_issue *is = oo_get(&o, i);
        check(is != NULL, "oo_get within n");
        check(strcmp(oo_severity_str(is->severity), "unknown") != 0, "known severity");
        check(strcmp(oo_code_str(is->code), "unknown") != 0, "known issue code");
    }
    check_outcome(a, &o, 0);
    check_outcome(a, &o, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arena *a = arena_new(0);
    if (!a)
        return 0;
    json_val *root = NULL;
    json_error e;
    if (json_parse(a, (const char *)data, size, JSON_FHIR, &root, &e) == 0) {
        const char *type = val_resource_type(root);
        validate_as(a, root, NULL);
        if (type)
            validate_as(a, root, type);
        /* a type it is not (unless it is one): the mismatch path */
        validate_as(a, root, type && strcmp(type, "Observation") == 0 ? "Patient"
                                                                      : "Observation");
    }
    arena_free(a);
    return 0;
}
