/*
 * fhirpath_fuzz.c -- libFuzzer driver for the FHIRPath compiler and evaluator.
 *
 * The input is an expression, optionally followed by a NUL byte and a JSON
 * document. The expression is compiled; on failure the error must carry a message
 * and a position inside the expression. On success it is evaluated against a fixed
 * Patient (with extensions, contained resources and choice elements), against no
 * input, and against the trailing JSON when it parses, under a small work limit;
 * evaluation must end with a result or with one of the documented error codes,
 * and a result must serialise to JSON that parses back.
 * Anything else (crash, sanitizer report, hang past the step limit) is a finding.
 *
 * Build and run (clang with libFuzzer; tests/fuzz/build.sh compiles every driver):
 *   sh tests/fuzz/build.sh fhirpath
 *   build/fuzz/fhirpath_fuzz -max_total_time=120 build/fuzz/fp-corpus tests/fuzz/corpus/fhirpath
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "fhirpath/fhirpath.h"

static const char resource[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"active\":true,"
    "\"name\":[{\"use\":\"official\",\"family\":\"Chalmers\",\"given\":[\"Peter\",\"James\"],"
    "\"_given\":[null,{\"extension\":[{\"url\":\"http://x/d\",\"valueString\":\"J\"}]}]},"
    "{\"use\":\"usual\",\"given\":[\"Jim\"]}],\"birthDate\":\"1974-12-25\","
    "\"deceasedBoolean\":false,\"multipleBirthInteger\":3,"
    "\"contained\":[{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\","
    "\"valueQuantity\":{\"value\":185.50,\"unit\":\"lbs\",\"system\":\"http://unitsofmeasure.org\","
    "\"code\":\"[lb_av]\"}}],\"managingOrganization\":{\"reference\":\"#o1\"}}";

static arena *A;
static json_val *R;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!A) {
        A = arena_new(0);
        json_error je;
        if (json_parse(A, resource, sizeof resource - 1, 0, &R, &je))
            abort();
    }
    arena *a = arena_new(0);
    if (!a)
        return 0;
    const uint8_t *nul = memchr(data, 0, size);
    size_t elen = nul ? (size_t)(nul - data) : size;
    json_val *doc = NULL;
    if (nul) {
        json_error je;
        if (json_parse(a, (const char *)nul + 1, size - elen - 1, 0, &doc, &je))
            doc = NULL;
    }
    fp_error e;
    fp_expr *x = fp_compilen((const char *)data, elen, &e);
    if (!x) {
        if (e.code >= 0 || !e.msg[0] || e.pos > (long)elen)
            abort();
        arena_free(a);
        return 0;
    }
    fp_env env = {0};
    env.max_steps = 200000;
    env.now_ms = 1700000000000;
    for (int pass = 0; pass < 3; pass++) {
        fp_coll out;
        if (pass == 2 && !doc)
            break;
        int rc = fp_eval(x, a, pass == 0 ? R : pass == 1 ? NULL : doc, &env, &out, &e);
        if (rc) {
            if (rc != ERR_INVALID && rc != ERR_LIMIT && rc != ERR_NOMEM &&
                rc != ERR_UNSUPPORTED)
                abort();
            if (!e.msg[0])
                abort();
            continue;
        }
        buf b = BUF_INIT;
        fp_write_json(&b, &out);
        if (!b.err) {
            json_val *back;
            json_error je;
            if (json_parse(a, b.data, b.len, 0, &back, &je))
                abort(); /* the writer produced invalid JSON */
        }
        buf_free(&b);
    }
    fp_free(x);
    arena_free(a);
    return 0;
}
