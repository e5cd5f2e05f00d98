/*
 * json_fuzz.c -- libFuzzer driver for the JSON parser and writer (src/json/).
 *
 * For every input: parse it with and without JSON_FHIR. Whatever the outcome, the
 * parser must not crash, leak or read out of bounds (ASan/UBSan watch that). When a
 * parse succeeds, the tree is written (minified and pretty), the output re-parsed
 * with the same flags, and the properties below must hold; a violation aborts so
 * libFuzzer saves the input:
 *   - the re-parsed tree equals the first one (json_equal);
 *   - writing is stable: write(parse(write(v))) is byte-identical to write(v);
 *   - a document accepted under JSON_FHIR is also accepted without it;
 *   - a failed parse fills the error with an offset inside the input and a message.
 * See tests/fuzz/README.md to build and run it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "json/json.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "json_fuzz: property violated: %s\n", what);
        abort();
    }
}

static void roundtrip(arena *a, const json_val *v, unsigned flags, int pretty)
{
    buf w1 = BUF_INIT, w2 = BUF_INIT;
    json_val *v2;
    json_error e;
    json_write(&w1, v, pretty);
    check(w1.err == 0, "writer error");
    int rc = json_parse(a, w1.data, w1.len, flags, &v2, &e);
    if (rc) {
        fprintf(stderr, "re-parse failed: %s at %zu\n%.*s\n", e.msg, e.off, (int)w1.len, w1.data);
        check(0, "written output re-parses");
    }
    check(json_equal(v, v2), "re-parsed tree equals the original");
    json_write(&w2, v2, pretty);
    check(w1.len == w2.len && memcmp(w1.data, w2.data, w1.len) == 0, "write is stable");
    buf_free(&w1);
    buf_free(&w2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arena *a = arena_new(0);
    if (!a)
        return 0;
    int ok_plain = -1;
    for (unsigned flags = 0; flags <= JSON_FHIR; flags += JSON_FHIR) {
        json_val *v;
        json_error e;
        int rc = json_parse(a, (const char *)data, size, flags, &v, &e);
        if (rc == 0) {
            if (flags & JSON_FHIR)
                check(ok_plain == 0, "FHIR-accepted input is accepted without the flag");
            roundtrip(a, v, flags, 0);
            roundtrip(a, v, flags, 1);
        } else {
            check(rc == ERR_INVALID || rc == ERR_TOOBIG, "error code is INVALID or TOOBIG");
            check(e.off <= size && e.msg[0] != 0 && e.line >= 1 && e.col >= 1,
                  "error position and message filled");
        }
        if (!(flags & JSON_FHIR))
            ok_plain = rc;
        arena_reset(a);
    }
    arena_free(a);
    return 0;
}
