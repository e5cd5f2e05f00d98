/*
 * json_bench.c -- parse and write throughput of src/json on a FHIR-like resource.
 *
 * Builds a ~2 KB Patient-shaped document (names, identifiers, telecom, address,
 * extensions, a few decimals and one escaped string), then times json_parse
 * (with JSON_FHIR, arena reset between runs, as the server does per request) and
 * json_write (minified) over enough iterations to run about a second each.
 * Prints MB/s of JSON text per second of this process's CPU time (the machine is
 * shared, so wall time would also count other people's work). Build and run by hand:
 *
 *   make build/librel.a
 *   cc -O2 -Isrc -o build/json_bench bench/json_bench.c build/librel.a -lm
 *   ./build/json_bench [pretty]       # "pretty" parses the indented form instead
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json/json.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void make_resource(buf *b)
{
    buf_puts(b, "{\"resourceType\":\"Patient\",\"id\":\"pat-000123\",\"meta\":{\"versionId\":\"3\","
                "\"lastUpdated\":\"2024-05-01T10:22:33.123Z\",\"profile\":[\"http://hl7.org/"
                "fhir/us/core/StructureDefinition/us-core-patient\"]},");
    buf_puts(b, "\"extension\":[{\"url\":\"http://hl7.org/fhir/us/core/StructureDefinition/"
                "us-core-race\",\"extension\":[{\"url\":\"ombCategory\",\"valueCoding\":{"
                "\"system\":\"urn:oid:2.16.840.1.113883.6.238\",\"code\":\"2106-3\",\"display\":"
                "\"White\"}},{\"url\":\"text\",\"valueString\":\"White\"}]},{\"url\":\"http://"
                "hl7.org/fhir/StructureDefinition/patient-birthPlace\",\"valueAddress\":{"
                "\"city\":\"Springfield\",\"state\":\"MA\",\"country\":\"US\"}}],");
    buf_puts(b,
             "\"identifier\":[{\"use\":\"usual\",\"type\":{\"coding\":[{\"system\":\"http://"
             "terminology.hl7.org/CodeSystem/v2-0203\",\"code\":\"MR\",\"display\":"
             "\"Medical Record Number\"}],\"text\":\"Medical Record Number\"},\"system\":"
             "\"http://hospital.example.org\",\"value\":\"a1b2c3d4-e5f6-7890-abcd-ef0123456789\"},"
             "{\"system\":\"http://hl7.org/fhir/sid/us-ssn\",\"value\":\"999-12-3456\"}],");
    buf_puts(b,
             "\"active\":true,\"name\":[{\"use\":\"official\",\"family\":\"M\xc3\xbcller\","
             "\"given\":[\"Anna\",\"Maria\"],\"prefix\":[\"Mrs.\"]},{\"use\":\"maiden\","
             "\"family\":\"Schmidt\",\"given\":[\"Anna\"],\"period\":{\"end\":\"2001-06-30\"}}],");
    buf_puts(b, "\"telecom\":[{\"system\":\"phone\",\"value\":\"555-555-0101\",\"use\":\"home\"},"
                "{\"system\":\"email\",\"value\":\"anna.mueller@example.org\"}],\"gender\":"
                "\"female\",\"birthDate\":\"1974-12-25\",\"_birthDate\":{\"extension\":[{\"url\":"
                "\"http://hl7.org/fhir/StructureDefinition/patient-birthTime\",\"valueDateTime\":"
                "\"1974-12-25T14:35:45-05:00\"}]},\"deceasedBoolean\":false,");
    buf_puts(b, "\"address\":[{\"use\":\"home\",\"type\":\"both\",\"text\":\"534 Erewhon St\\n"
                "PeasantVille, Rainbow, Vic  3999\",\"line\":[\"534 Erewhon St\"],\"city\":"
                "\"PleasantVille\",\"district\":\"Rainbow\",\"state\":\"Vic\",\"postalCode\":"
                "\"3999\",\"period\":{\"start\":\"1974-12-25\"},\"extension\":[{\"url\":\"http://"
                "hl7.org/fhir/StructureDefinition/geolocation\",\"extension\":[{\"url\":"
                "\"latitude\",\"valueDecimal\":-37.81400},{\"url\":\"longitude\",\"valueDecimal\":"
                "144.96332}]}]}],");
    buf_puts(b, "\"maritalStatus\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/"
                "CodeSystem/v3-MaritalStatus\",\"code\":\"M\",\"display\":\"Married\"}]},"
                "\"multipleBirthInteger\":2,\"communication\":[{\"language\":{\"coding\":[{"
                "\"system\":\"urn:ietf:bcp:47\",\"code\":\"de\",\"display\":\"German\"}]},"
                "\"preferred\":true}],\"generalPractitioner\":[{\"reference\":"
                "\"Practitioner/prac-42\",\"display\":\"Dr. Adam Careful\"}],"
                "\"managingOrganization\":{\"reference\":\"Organization/org-1\"}}");
}

int main(int argc, char **argv)
{
    int pretty = argc > 1 && strcmp(argv[1], "pretty") == 0;
    buf doc = BUF_INIT, out = BUF_INIT;
    make_resource(&doc);
    arena *a = arena_new(64 * 1024);
    json_val *v;
    json_error e;
    if (json_parse(a, doc.data, doc.len, JSON_FHIR, &v, &e)) {
        fprintf(stderr, "bench document does not parse: %s at %d:%d\n", e.msg, e.line, e.col);
        return 1;
    }
    if (pretty) {
        json_write(&out, v, 1);
        buf_reset(&doc);
        buf_put(&doc, out.data, out.len);
        buf_reset(&out);
    }
    size_t len = doc.len;
    long iters = 0;
    double t0 = now(), t;
    do {
        for (int i = 0; i < 1000; i++) {
            arena_reset(a);
            if (json_parse(a, doc.data, len, JSON_FHIR, &v, NULL))
                return 1;
        }
        iters += 1000;
        t = now() - t0;
    } while (t < 1.0);
    double parse_mbs = (double)len * (double)iters / t / 1e6;
    double parse_docs = (double)iters / t;

    arena_reset(a);
    json_parse(a, doc.data, len, JSON_FHIR, &v, NULL);
    long witers = 0;
    size_t wlen = 0;
    t0 = now();
    do {
        for (int i = 0; i < 1000; i++) {
            buf_reset(&out);
            json_write(&out, v, 0);
        }
        witers += 1000;
        t = now() - t0;
    } while (t < 1.0);
    wlen = out.len;
    double write_mbs = (double)wlen * (double)witers / t / 1e6;

    printf("document: %zu bytes (%s), written minified: %zu bytes\n", len,
           pretty ? "pretty" : "minified", wlen);
    printf("parse (JSON_FHIR): %8.1f MB/s  %8.0f docs/s\n", parse_mbs, parse_docs);
    printf("write (minified):  %8.1f MB/s\n", write_mbs);
    arena_free(a);
    buf_free(&doc);
    buf_free(&out);
    return 0;
}
