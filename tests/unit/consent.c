/* Unit tests of auth/consent.c: reading Consents into rules and deciding them for a
 * token (docs/CONSENT.md). */
#include <string.h>

#include "auth/consent.h"
#include "base/err.h"
#include "base/time.h"
#include "tap.h"

static arena *A;

#define SCOPE "\"scope\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/" \
              "consentscope\",\"code\":\"patient-privacy\"}]}"
#define CONF "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

static int read_text(const char *text, auth_consent *c, char *msg, size_t msz)
{
    char *copy = arena_strndup(A, text, strlen(text));
    json_val *doc;
    if (json_parse(A, copy, strlen(copy), 0, &doc, NULL))
        return -100;
    return auth_consent_read(doc, A, c, msg, msz);
}

static auth_consent must_read(const char *provision)
{
    char text[4096];
    snprintf(text, sizeof text, "{\"resourceType\":\"Consent\",\"id\":\"c\",\"status\":\"active\","
             SCOPE ",\"patient\":{\"reference\":\"Patient/p1\"},\"provision\":%s}", provision);
    auth_consent c;
    char msg[300] = "";
    int rc = read_text(text, &c, msg, sizeof msg);
    ok(rc == 0, "read %s (%s)", provision, msg);
    return c;
}

static auth_principal user(const char *fhir_user, const char *purpose, const char *scope)
{
    auth_principal p;
    memset(&p, 0, sizeof p);
    if (fhir_user)
        snprintf(p.fhir_user, sizeof p.fhir_user, "%s", fhir_user);
    if (purpose)
        snprintf(p.purpose, sizeof p.purpose, "%s", purpose);
    auth_scopes_parse(scope, strlen(scope), &p.rights);
    return p;
}

static void test_read(void)
{
    auth_consent c;
    char msg[300];
    is_int(read_text("{\"resourceType\":\"Consent\",\"status\":\"draft\"," SCOPE
                     ",\"provision\":{\"code\":[]}}", &c, msg, sizeof msg),
           1, "a draft is data");
    is_int(read_text("{\"resourceType\":\"Consent\",\"status\":\"active\",\"scope\":{\"coding\":"
                     "[{\"code\":\"research\"}]}}", &c, msg, sizeof msg),
           1, "another scope is data");
    static const char *const bad[] = {
        "{\"type\":\"deny\",\"code\":[{\"text\":\"x\"}]}",
        "{\"type\":\"deny\",\"dataPeriod\":{}}",
        "{\"type\":\"deny\",\"data\":[]}",
        "{\"actor\":[]}",
        "{\"type\":\"deny\",\"provision\":[{\"type\":\"deny\"}]}",
        "{\"type\":\"deny\",\"provision\":[{\"type\":\"permit\",\"provision\":[{\"type\":\"deny\"}]}]}",
        "{\"type\":\"deny\",\"class\":[{\"system\":\"http://hl7.org/fhir/resource-types\","
        "\"code\":\"NoSuchType\"}]}",
        "{\"type\":\"deny\",\"securityLabel\":[{\"code\":\"R\"}]}",
        "{\"type\":\"deny\",\"period\":{\"start\":\"not a date\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[2048];
        snprintf(text, sizeof text, "{\"resourceType\":\"Consent\",\"status\":\"active\","
                 SCOPE ",\"patient\":{\"reference\":\"Patient/p1\"},\"provision\":%s}", bad[i]);
        int rc = read_text(text, &c, msg, sizeof msg);
        ok(rc == ERR_UNSUPPORTED || rc == ERR_INVALID, "refused: %s (%s)", bad[i], msg);
    }
    int rc = read_text("{\"resourceType\":\"Consent\",\"status\":\"active\"," SCOPE
                       ",\"patient\":{\"reference\":\"Group/g\"},\"provision\":{\"type\":\"deny\"}}",
                       &c, msg, sizeof msg);
    is_int(rc, ERR_UNSUPPORTED, "the patient must be a Patient");
}

static void test_rules(void)
{
    int64_t now = ftime_now_us();
    auth_consent_rule r;
    auth_principal dr1 = user("Practitioner/dr1", NULL, "user/*.rs");
    auth_principal dr0 = user("https://h.example/fhir/Practitioner/dr0", "TREAT", "user/*.rs");
    auth_principal sys = user(NULL, NULL, "system/*.rs");
    auth_principal self = user("Patient/p1", NULL, "patient/*.rs");
    auth_principal other = user("Patient/p10", NULL, "patient/*.rs");

    auth_consent c = must_read("{\"type\":\"deny\",\"provision\":[{\"type\":\"permit\",\"actor\":"
                               "[{\"role\":{},\"reference\":{\"reference\":\"Practitioner/dr0\"}}]}]}");
    ok(auth_consent_rule_for(&c, &dr1, "Observation", now, &r) == 1 && !r.nany && !r.nnone &&
           !strcmp(r.patient, "p1"), "deny all: withheld from another user, whole");
    ok(!auth_consent_rule_for(&c, &dr0, "Observation", now, &r),
       "the permitted actor (absolute fhirUser) sees it");
    ok(!auth_consent_rule_for(&c, &self, "Observation", now, &r), "the patient sees their own");
    ok(auth_consent_rule_for(&c, &other, "Observation", now, &r) == 1,
       "another patient (Patient/p10, not p1) does not");
    ok(auth_consent_user_facing(&dr1) && !auth_consent_user_facing(&sys),
       "system/ only is not user-facing");

    c = must_read("{\"type\":\"permit\",\"provision\":[{\"type\":\"deny\",\"class\":[{\"system\":"
                  "\"http://hl7.org/fhir/resource-types\",\"code\":\"Observation\"}],"
                  "\"securityLabel\":[{\"system\":\"" CONF "\",\"code\":\"R\"}]}]}");
    ok(auth_consent_rule_for(&c, &dr1, "Observation", now, &r) == 1 && r.nany == 1 &&
           !strcmp(r.any[0], CONF "|R"), "labelled denial of one class");
    ok(!auth_consent_rule_for(&c, &dr1, "Condition", now, &r), "another class is not withheld");

    c = must_read("{\"type\":\"permit\",\"provision\":[{\"type\":\"deny\",\"purpose\":[{\"system\":"
                  "\"http://terminology.hl7.org/CodeSystem/v3-ActReason\",\"code\":\"HRESCH\"}]}]}");
    auth_principal res1 = user("Practitioner/dr1", "HRESCH", "user/*.rs");
    auth_principal res2 = user("Practitioner/dr1",
                               "TREAT http://terminology.hl7.org/CodeSystem/v3-ActReason|HRESCH",
                               "user/*.rs");
    auth_principal res3 = user("Practitioner/dr1", "http://example.org|HRESCH", "user/*.rs");
    ok(auth_consent_rule_for(&c, &res1, "Observation", now, &r) == 1, "purpose by code");
    ok(auth_consent_rule_for(&c, &res2, "Observation", now, &r) == 1, "purpose by system|code");
    ok(!auth_consent_rule_for(&c, &res3, "Observation", now, &r), "another system's code");
    ok(!auth_consent_rule_for(&c, &dr1, "Observation", now, &r), "no purpose: not research");

    c = must_read("{\"type\":\"deny\",\"period\":{\"start\":\"2001\",\"end\":\"2002-01-01\"}}");
    ok(!auth_consent_rule_for(&c, &dr1, "Observation", now, &r), "a past period");
    c = must_read("{\"type\":\"deny\",\"period\":{\"start\":\"2001\"}}");
    ok(auth_consent_rule_for(&c, &dr1, "Observation", now, &r) == 1, "an open end");

    c = must_read("{\"type\":\"deny\",\"provision\":[{\"type\":\"permit\",\"securityLabel\":"
                  "[{\"system\":\"" CONF "\",\"code\":\"N\"}]}]}");
    ok(auth_consent_rule_for(&c, &dr1, "Observation", now, &r) == 1 && !r.nany &&
           r.nnone == 1 && !strcmp(r.none[0], CONF "|N"), "deny but what carries N");
}

int main(void)
{
    A = arena_new(0);
    test_read();
    test_rules();
    arena_free(A);
    return tap_done();
}
