/*
 * invariants.c -- the R4 invariants through the FHIRPath engine (src/fhirpath/invariants.h):
 * every expression compiles, a violated rule of severity error refuses with its key, a
 * warning is only reported, and a resource that keeps every rule passes.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "fhirpath/invariants.h"
#include "tap.h"

static int run(const char *text, const char *type, oo *o, arena *a)
{
    json_val *root;
    char *copy = arena_strndup(a, text, strlen(text));
    if (json_parse(a, copy, strlen(copy), 0, &root, NULL))
        return -100;
    oo_init(o, a);
    return fp_invariants(root, type, o);
}

/* 1 when o has an issue of that severity whose diagnostics start with key */
static int has(const oo *o, const char *key, oo_severity sev)
{
    for (size_t i = 0;; i++) {
        const oo_issue *is = oo_get(o, i);
        if (!is)
            return 0;
        if (is->severity == sev && is->diagnostics && !strncmp(is->diagnostics, key, strlen(key)))
            return 1;
    }
}

int main(void)
{
    size_t good, bad;
    fp_invariants_stats(&good, &bad);
    ok(good > 200, "the R4 invariants compile (%zu)", good);
    is_int((int)bad, 0, "no invariant expression fails to compile");
    arena *a = arena_new(1 << 16);
    oo o;
    is_int(run("{\"resourceType\":\"Patient\",\"contact\":[{\"gender\":\"male\"}]}", "Patient", &o,
               a),
           ERR_INVALID, "pat-1: a contact with no details is refused");
    ok(has(&o, "pat-1", OO_ERROR), "... with the key pat-1");
    is_int(run("{\"resourceType\":\"Patient\",\"contact\":[{\"name\":{\"family\":\"Kok\"}}]}",
               "Patient", &o, a),
           0, "pat-1 holds with a name");
    is_int(run("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
               "\"valueString\":\"a\",\"dataAbsentReason\":{\"text\":\"b\"}}",
               "Observation", &o, a),
           ERR_INVALID, "obs-6: a value and a dataAbsentReason");
    ok(has(&o, "obs-6", OO_ERROR), "... with the key obs-6");
    is_int(run("{\"resourceType\":\"Encounter\",\"status\":\"finished\",\"class\":{\"code\":\"AMB\"},"
               "\"period\":{\"start\":\"2024-02-01\",\"end\":\"2024-01-01\"}}",
               "Encounter", &o, a),
           ERR_INVALID, "per-1 on a nested Period: the end before the start");
    ok(has(&o, "per-1", OO_ERROR), "... with the key per-1");
    is_int(run("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Patient\","
               "\"id\":\"c\",\"contained\":[{\"resourceType\":\"Patient\",\"id\":\"d\"}]}],"
               "\"link\":[{\"other\":{\"reference\":\"#c\"},\"type\":\"seealso\"}]}",
               "Patient", &o, a),
           ERR_INVALID, "dom-2: a contained resource that contains another");
    ok(has(&o, "dom-2", OO_ERROR), "... with the key dom-2");
    is_int(run("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
               "\"contained\":[{\"resourceType\":\"Patient\",\"id\":\"p\"}],"
               "\"subject\":{\"reference\":\"#p\"},\"performer\":[{\"reference\":\"Practitioner/1\"},"
               "{\"reference\":\"Practitioner/2\"}]}",
               "Observation", &o, a),
           0, "dom-3 (as() over many items, read as ofType()): a contained resource referred to");
    is_int(run("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
               "\"contained\":[{\"resourceType\":\"Patient\",\"id\":\"p\"}],"
               "\"performer\":[{\"reference\":\"Practitioner/1\"},{\"reference\":\"Practitioner/2\"}]}",
               "Observation", &o, a),
           ERR_INVALID, "dom-3: a contained resource nothing refers to");
    ok(has(&o, "dom-3", OO_ERROR), "... with the key dom-3");
    is_int(run("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Kok\"}]}", "Patient", &o, a),
           0, "a resource without narrative passes");
    ok(has(&o, "dom-6", OO_WARNING), "... with the warning dom-6 (no narrative)");
    /* the cost, on a resource of the generator's size */
    const char *obs = "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\","
                      "\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/"
                      "CodeSystem/observation-category\",\"code\":\"vital-signs\"}]}],"
                      "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}]},"
                      "\"subject\":{\"reference\":\"Patient/p\"},\"effectiveDateTime\":"
                      "\"2024-01-01T10:00:00Z\",\"valueQuantity\":{\"value\":72,\"unit\":\"/min\","
                      "\"system\":\"http://unitsofmeasure.org\",\"code\":\"/min\"}}";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n = 2000, fails = 0;
    for (int i = 0; i < n; i++) {
        arena_reset(a);
        fails += run(obs, "Observation", &o, a) != 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    is_int(fails, 0, "a vital-signs Observation keeps every rule");
    double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
                1e3 / n;
    printf("# invariants of a vital-signs Observation: %.1f us each (sanitizer build)\n", us);
    arena_free(a);
    return tap_done();
}
