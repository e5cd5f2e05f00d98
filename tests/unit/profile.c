/*
 * profile.c -- the profile engine alone (src/profile/profile.h), without a store: a
 * StructureDefinition is compiled and applied through prof_check with a finder over a
 * small table, so each rule's verdict and location can be asserted exactly.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "profile/profile.h"
#include "tap.h"

static arena *A;
static prof_def *table[8];
static size_t ntable;

static const prof_def *find(const void *ctx, const char *canonical)
{
    (void)ctx;
    size_t n = strcspn(canonical, "|");
    for (size_t i = 0; i < ntable; i++)
        if (strlen(prof_def_url(table[i])) == n && !strncmp(prof_def_url(table[i]), canonical, n))
            return table[i];
    return NULL;
}

static json_val *parse(const char *text)
{
    json_val *v = NULL;
    char *copy = arena_strndup(A, text, strlen(text));
    if (json_parse(A, copy, strlen(copy), 0, &v, NULL))
        return NULL;
    return v;
}

static prof_def *compile(const char *text)
{
    prof_def *p = NULL;
    json_val *v = parse(text);
    if (!v || prof_compile(A, v, &p))
        return NULL;
    table[ntable++] = p;
    return p;
}

/* The issue (severity, code) at expression expr whose diagnostics contain text. */
static int has(const oo *o, oo_severity sev, oo_code code, const char *expr, const char *text)
{
    for (size_t i = 0;; i++) {
        const oo_issue *is = oo_get(o, i);
        if (!is)
            return 0;
        if (is->severity == sev && is->code == code &&
            (!expr || (is->expression && !strcmp(is->expression, expr))) &&
            (!text || (is->diagnostics && strstr(is->diagnostics, text))))
            return 1;
    }
}

static int check(const char *profile, const char *res, const char *type, oo *o)
{
    oo_init(o, A);
    json_val *v = parse(res);
    return v ? prof_check(A, find, NULL, profile, v, type, o) : -100;
}

#define SD_HEAD(url, type)                                                                     \
    "{\"resourceType\":\"StructureDefinition\",\"url\":\"" url "\",\"kind\":\"resource\","   \
    "\"type\":\"" type "\",\"derivation\":\"constraint\",\"baseDefinition\":"                  \
    "\"http://hl7.org/fhir/StructureDefinition/" type "\","

int main(void)
{
    A = arena_new(1 << 16);
    oo o;

    /* broken definitions: errors, not a usable profile */
    prof_def *b = compile(SD_HEAD("http://t/broken", "Patient") "\"differential\":{\"element\":["
                          "{\"id\":\"Patient.nope\",\"path\":\"Patient.nope\"},"
                          "{\"id\":\"Patient.name\",\"path\":\"Patient.name\",\"min\":3,\"max\":\"2\"}]}}");
    ok(b && !prof_def_usable(b), "a definition with errors is not usable");
    oo_init(&o, A);
    is_int((int)prof_def_errors(b, &o), 2, "both errors are kept");
    ok(has(&o, OO_ERROR, OO_INVALID, NULL, "'nope' is not an element of Patient"), "path outside");
    ok(has(&o, OO_ERROR, OO_INVALID, NULL, "min 3 is greater than max 2"), "min > max");

    /* identifier sliced by system, a pattern on code of Observation, a required binding */
    compile(SD_HEAD("http://t/pat", "Patient") "\"differential\":{\"element\":["
            "{\"id\":\"Patient.identifier\",\"path\":\"Patient.identifier\",\"slicing\":"
            "{\"discriminator\":[{\"type\":\"pattern\",\"path\":\"$this\"}],\"rules\":\"closed\"}},"
            "{\"id\":\"Patient.identifier:a\",\"path\":\"Patient.identifier\",\"sliceName\":\"a\","
            "\"min\":1,\"patternIdentifier\":{\"system\":\"urn:a\"}},"
            "{\"id\":\"Patient.gender\",\"path\":\"Patient.gender\",\"fixedCode\":\"male\"},"
            "{\"id\":\"Patient.maritalStatus\",\"path\":\"Patient.maritalStatus\",\"binding\":"
            "{\"strength\":\"required\",\"valueSet\":\"http://hl7.org/fhir/ValueSet/days-of-week|4.0.1\"}}"
            "]}}");
    is_int(check("http://t/pat",
                 "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"1\"}],"
                 "\"gender\":\"male\",\"maritalStatus\":{\"coding\":[{\"code\":\"mon\"}]}}",
                 "Patient", &o),
           0, "a conforming patient (pattern on $this, binding version stripped)");
    is_int(check("http://t/pat",
                 "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:b\"}],"
                 "\"gender\":\"female\",\"maritalStatus\":{\"coding\":[{\"code\":\"M\"}]}}",
                 "Patient", &o),
           ERR_INVALID, "a patient breaking every rule");
    ok(has(&o, OO_ERROR, OO_STRUCTURE, "Patient.identifier[0]", "matches none of the slices"),
       "closed slicing");
    ok(has(&o, OO_ERROR, OO_REQUIRED, "Patient.identifier", "of slice a, found 0"), "slice min");
    ok(has(&o, OO_ERROR, OO_VALUE, "Patient.gender", "exactly \"male\""), "fixed");
    ok(has(&o, OO_ERROR, OO_CODE_INVALID, "Patient.maritalStatus", "days-of-week"), "binding");
    ok(has(&o, OO_ERROR, OO_REQUIRED, "Patient.identifier", "http://t/pat"),
       "the diagnostics name the profile");

    /* a derived profile: its rules and its base's */
    compile(SD_HEAD("http://t/derived", "Patient")
            "\"differential\":{\"element\":[{\"id\":\"Patient.active\",\"path\":\"Patient.active\","
            "\"min\":1}]}}");
    prof_def *d = compile("{\"resourceType\":\"StructureDefinition\",\"url\":\"http://t/d2\","
                          "\"kind\":\"resource\",\"type\":\"Patient\",\"derivation\":\"constraint\","
                          "\"baseDefinition\":\"http://t/derived\",\"differential\":{\"element\":["
                          "{\"id\":\"Patient.birthDate\",\"path\":\"Patient.birthDate\",\"max\":\"0\"}]}}");
    ok(d && prof_def_usable(d), "a derived profile compiles");
    is_int(check("http://t/d2", "{\"resourceType\":\"Patient\",\"birthDate\":\"2000\"}", "Patient", &o),
           ERR_INVALID, "derived: both levels apply");
    ok(has(&o, OO_ERROR, OO_STRUCTURE, "Patient.birthDate", "http://t/d2"), "its own max 0");
    ok(has(&o, OO_ERROR, OO_REQUIRED, "Patient.active", "http://t/derived"), "its base's min 1");

    /* what is not checked is said, with the element and the feature */
    compile(SD_HEAD("http://t/notes", "Patient")
            "\"differential\":{\"element\":[{\"id\":\"Patient.name\",\"path\":\"Patient.name\","
            "\"slicing\":{\"discriminator\":[{\"type\":\"profile\",\"path\":\"$this\"}]}},"
            "{\"id\":\"Patient.multipleBirth[x]\",\"path\":\"Patient.multipleBirth[x]\","
            "\"maxValueInteger\":3}]}}");
    is_int(check("http://t/notes", "{\"resourceType\":\"Patient\"}", "Patient", &o), 0,
           "notes are warnings");
    ok(has(&o, OO_WARNING, OO_NOT_SUPPORTED, NULL, "discriminator profile"), "discriminator noted");
    ok(has(&o, OO_WARNING, OO_NOT_SUPPORTED, NULL, "Patient.multipleBirth[x]: maxValueInteger"),
       "maxValue noted");

    /* maxLength counts characters, not bytes */
    compile(SD_HEAD("http://t/len", "Patient")
            "\"differential\":{\"element\":[{\"id\":\"Patient.name.family\",\"path\":"
            "\"Patient.name.family\",\"maxLength\":3}]}}");
    is_int(check("http://t/len", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\u00c9va\"}]}",
                 "Patient", &o),
           0, "three characters in four bytes");
    is_int(check("http://t/len", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Jansen\"}]}",
                 "Patient", &o),
           ERR_INVALID, "six characters");
    ok(has(&o, OO_ERROR, OO_VALUE, "Patient.name[0].family", "more than maxLength 3"), "maxLength");

    /* core definitions and other types */
    is_int(check("http://hl7.org/fhir/StructureDefinition/Patient", "{\"resourceType\":\"Patient\"}",
                 "Patient", &o),
           0, "the core definition is the base validation");
    is_int(check("http://t/pat", "{\"resourceType\":\"Observation\",\"status\":\"final\","
                 "\"code\":{\"text\":\"x\"}}", "Observation", &o),
           ERR_INVALID, "a Patient profile on an Observation");
    is_int(check("http://t/none", "{\"resourceType\":\"Patient\"}", "Patient", &o), ERR_NOTFOUND,
           "an unknown profile is not found");

    for (size_t i = 0; i < ntable; i++)
        prof_def_free(table[i]);
    arena_free(A);
    return tap_done();
}
