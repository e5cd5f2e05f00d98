/*
 * model.c -- tests of the generated FHIR R4 model tables (src/fhir/model.h).
 *
 * Checks counts against the definitions, element lookups (own, inherited, choice
 * keys, backbone and contentReference types), inheritance, primitive metadata,
 * search parameters and the Patient compartment. Expected values come from the
 * R4 specification pages, not from the generated file.
 */
#include <stdio.h>
#include <string.h>

#include "fhir/model.h"
#include "tap.h"

static const fhir_type *T(const char *name)
{
    return fhir_type_find(name, strlen(name));
}

static const fhir_elem *E(const char *type, const char *key, const fhir_type **choice)
{
    return fhir_elem_find(T(type), key, strlen(key), choice);
}

/* 1 when elem e of type `type` allows the type named `tname`. */
static int allows(const fhir_elem *e, const char *tname)
{
    if (!e)
        return 0;
    for (unsigned i = 0; i < e->ntypes; i++)
        if (strcmp(e->types[i]->name, tname) == 0)
            return 1;
    return 0;
}

static void test_counts(void)
{
    const fhir_type *const *res;
    size_t n = fhir_resource_types(&res);
    ok(n >= 145 && n <= 150, "about 145 concrete resource types (%zu)", n);
    int sorted = 1, concrete = 1;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(res[i - 1]->name, res[i]->name) >= 0)
            sorted = 0;
        if (res[i]->kind != FHIR_RESOURCE || res[i]->is_abstract)
            concrete = 0;
    }
    ok(sorted, "resource types sorted by name");
    ok(concrete, "resource list holds only concrete resources");
    ok(n > 0 && strcmp(res[0]->name, "Account") == 0, "first resource is Account");

    const fhir_search_param *const *all;
    size_t nsp = fhir_search_params_all(&all);
    ok(nsp > 1300 && nsp < 1450, "about 1380 R4 search parameters (%zu)", nsp);

    const fhir_type *types;
    size_t nt = fhir_types_all(&types);
    ok(nt > 600, "several hundred types including backbones (%zu)", nt);
    int all_found = 1;
    for (size_t i = 0; i < nt; i++)
        if (fhir_type_find(types[i].name, strlen(types[i].name)) != &types[i])
            all_found = 0;
    ok(all_found, "every type is found by its own name");

    /* every element's type list is non-empty and every choice has >= 2 types */
    int well_formed = 1;
    for (size_t i = 0; i < nt; i++) {
        for (unsigned k = 0; k < types[i].nelems; k++) {
            const fhir_elem *e = &types[i].elems[k];
            if (e->ntypes == 0 || (e->is_choice && e->ntypes < 2) || e->min > e->max)
                well_formed = 0;
        }
    }
    ok(well_formed, "every element has types and sane cardinality");

    /* every JSON key of every type resolves to its own element (and chosen type) */
    size_t keys = 0, bad = 0;
    for (size_t i = 0; i < nt; i++) {
        for (unsigned k = 0; k < types[i].nelems; k++) {
            const fhir_elem *e = &types[i].elems[k];
            const fhir_type *c = NULL;
            if (!e->is_choice) {
                keys++;
                if (fhir_elem_find(&types[i], e->name, strlen(e->name), &c) != e || c)
                    bad++;
                continue;
            }
            for (unsigned j = 0; j < e->ntypes; j++) {
                char key[128];
                int n = snprintf(key, sizeof key, "%s%s", e->name, e->types[j]->name);
                size_t len = strlen(e->name);
                if (key[len] >= 'a' && key[len] <= 'z')
                    key[len] = (char)(key[len] - 'a' + 'A');
                keys++;
                if (fhir_elem_find(&types[i], key, (size_t)n, &c) != e || c != e->types[j])
                    bad++;
            }
        }
    }
    ok(keys > 7000 && bad == 0, "all %zu JSON keys resolve to their element (%zu wrong)", keys,
       bad);
}

static void test_type_lookup(void)
{
    ok(T("Patient") && T("Patient")->kind == FHIR_RESOURCE, "Patient is a resource");
    ok(fhir_resource_type("Patient", 7) != NULL, "Patient is concrete");
    ok(fhir_resource_type("Patientx", 7) != NULL, "length-limited name lookup");
    ok(fhir_resource_type("Resource", 8) == NULL, "Resource is abstract");
    ok(fhir_resource_type("DomainResource", 14) == NULL, "DomainResource is abstract");
    ok(fhir_resource_type("HumanName", 9) == NULL, "HumanName is not a resource");
    ok(fhir_resource_type("patient", 7) == NULL, "lookup is case-sensitive");
    ok(fhir_type_find("", 0) == NULL, "empty name");
    ok(fhir_type_find("Zzz", 3) == NULL, "unknown name");
    ok(T("Resource") && T("Resource")->is_abstract, "Resource is abstract (flag)");
    ok(T("HumanName") && T("HumanName")->kind == FHIR_COMPLEX, "HumanName is complex");
    ok(T("dateTime") && T("dateTime")->kind == FHIR_PRIMITIVE, "dateTime is primitive");
    ok(T("Patient.contact") && T("Patient.contact")->kind == FHIR_BACKBONE,
       "Patient.contact is a backbone type");
    ok(T("Bundle.entry.request") && T("Bundle.entry.request")->kind == FHIR_BACKBONE,
       "Bundle.entry.request is a backbone type");
    ok(T("Timing.repeat") && T("Timing.repeat")->kind == FHIR_BACKBONE,
       "backbone inside a datatype (Timing.repeat)");
    ok(T("Element") && T("BackboneElement"), "Element and BackboneElement exist");
    ok(T("SimpleQuantity") == NULL, "profiles are not types");
}

static void test_inheritance(void)
{
    ok(fhir_type_is(T("Age"), T("Quantity")), "Age is Quantity");
    ok(fhir_type_is(T("Age"), T("Element")), "Age is Element");
    ok(!fhir_type_is(T("Quantity"), T("Age")), "Quantity is not Age");
    ok(fhir_type_is(T("Patient"), T("DomainResource")), "Patient is DomainResource");
    ok(fhir_type_is(T("Patient"), T("Resource")), "Patient is Resource");
    ok(fhir_type_is(T("Patient"), T("Patient")), "Patient is Patient");
    ok(!fhir_type_is(T("Bundle"), T("DomainResource")), "Bundle is not DomainResource");
    ok(fhir_type_is(T("Bundle"), T("Resource")), "Bundle is Resource");
    ok(fhir_type_is(T("code"), T("string")), "code derives from string");
    ok(fhir_type_is(T("positiveInt"), T("integer")), "positiveInt derives from integer");
    ok(fhir_type_is(T("Patient.contact"), T("BackboneElement")),
       "Patient.contact is BackboneElement");
    ok(fhir_type_is(T("Dosage"), T("BackboneElement")), "Dosage is BackboneElement");
    ok(!fhir_type_is(T("Patient"), NULL), "NULL ancestor");
    ok(T("Resource")->base == NULL, "Resource is a root");
}

static void test_elements(void)
{
    const fhir_type *c = (const fhir_type *)1;
    const fhir_elem *e;

    e = E("Patient", "name", &c);
    ok(e && allows(e, "HumanName") && e->max == FHIR_MAX_UNBOUNDED && e->min == 0,
       "Patient.name: HumanName 0..*");
    ok(c == NULL, "choice cleared for a non-choice element");
    e = E("Patient", "gender", NULL);
    ok(e && allows(e, "code") && e->max == 1 && e->is_summary, "Patient.gender code 0..1 summary");
    ok(e && e->binding_vs &&
           strcmp(e->binding_vs, "http://hl7.org/fhir/ValueSet/administrative-gender") == 0,
       "Patient.gender required binding");
    e = E("Patient", "active", NULL);
    ok(e && e->is_modifier && allows(e, "boolean"), "Patient.active is a modifier");
    e = E("Patient", "birthDate", NULL);
    ok(e && allows(e, "date") && e->is_summary, "Patient.birthDate date, in the summary");
    e = E("Patient", "photo", NULL);
    ok(e && !e->is_summary && !e->is_modifier, "Patient.photo: not summary, not modifier");
    ok(E("Patient", "implicitRules", NULL) && E("Patient", "implicitRules", NULL)->is_modifier,
       "implicitRules is a modifier");
    ok(E("Patient", "modifierExtension", NULL)->is_modifier, "modifierExtension is a modifier");
    ok(!E("Patient", "text", NULL)->is_summary, "text is not in the summary");
    ok(E("Patient", "meta", NULL)->is_summary, "meta is in the summary");
    /* inherited */
    e = E("Patient", "id", NULL);
    ok(e && allows(e, "id") && e->max == 1, "Patient.id is the primitive id");
    ok(E("Patient", "meta", NULL) && allows(E("Patient", "meta", NULL), "Meta"), "Patient.meta");
    ok(E("Patient", "text", NULL) != NULL, "Patient.text (DomainResource)");
    ok(E("Patient", "contained", NULL) && allows(E("Patient", "contained", NULL), "Resource"),
       "Patient.contained: Resource");
    ok(E("Patient", "extension", NULL) && E("Patient", "modifierExtension", NULL),
       "Patient extensions");
    ok(E("Bundle", "text", NULL) == NULL, "Bundle has no text");
    ok(E("Bundle", "id", NULL) != NULL, "Bundle.id");
    ok(E("Patient", "fooBar", NULL) == NULL, "unknown element");
    ok(E("Patient", "_name", NULL) == NULL, "underscore keys are not elements");
    ok(E("HumanName", "given", NULL) && allows(E("HumanName", "given", NULL), "string"),
       "HumanName.given string");
    ok(E("HumanName", "id", NULL) && allows(E("HumanName", "id", NULL), "string"),
       "Element.id is string");
    e = E("Extension", "url", NULL);
    ok(e && allows(e, "uri") && e->min == 1, "Extension.url is uri 1..1");
    ok(E("string", "extension", NULL) != NULL, "primitives have extension");
    ok(E("string", "value", NULL) == NULL, "primitive value is not an element");
    ok(E("xhtml", "extension", NULL) == NULL, "xhtml.extension (max 0) dropped");
    e = E("Observation", "status", NULL);
    ok(e && e->min == 1 && e->is_modifier, "Observation.status 1..1 modifier");
    e = E("Observation", "code", NULL);
    ok(e && e->min == 1 && allows(e, "CodeableConcept"), "Observation.code 1..1");
    /* length-limited keys */
    e = fhir_elem_find(T("Patient"), "namexyz", 4, NULL);
    ok(e && strcmp(e->name, "name") == 0, "key given with explicit length");
    ok(fhir_elem_find(NULL, "name", 4, NULL) == NULL, "NULL type");
}

static void test_choice(void)
{
    const fhir_type *c = NULL;
    const fhir_elem *e;

    e = E("Observation", "valueQuantity", &c);
    ok(e && e->is_choice && strcmp(e->name, "value") == 0, "valueQuantity -> value[x]");
    ok(c && strcmp(c->name, "Quantity") == 0, "valueQuantity chooses Quantity");
    ok(e && e->ntypes == 11, "Observation.value[x] has 11 types");
    e = E("Observation", "valueString", &c);
    ok(e && c == T("string"), "valueString -> string");
    e = E("Observation", "effectiveDateTime", &c);
    ok(e && c == T("dateTime"), "effectiveDateTime -> dateTime");
    e = E("Observation", "effectivePeriod", &c);
    ok(e && c == T("Period"), "effectivePeriod -> Period");
    e = E("Patient", "deceasedBoolean", &c);
    ok(e && c == T("boolean") && e->is_modifier, "deceasedBoolean -> boolean, modifier");
    e = E("Patient", "deceasedDateTime", &c);
    ok(e && c == T("dateTime"), "deceasedDateTime");
    e = E("Patient", "multipleBirthInteger", &c);
    ok(e && c == T("integer"), "multipleBirthInteger");
    c = (const fhir_type *)1;
    ok(E("Observation", "valueFoo", &c) == NULL && c == NULL, "valueFoo unknown, choice cleared");
    ok(E("Observation", "value", NULL) == NULL, "bare choice name is not a key");
    ok(E("Observation", "valuequantity", NULL) == NULL, "suffix must be capitalised");
    e = fhir_elem_named(T("Observation"), "value", 5);
    ok(e && e->is_choice && strcmp(e->name, "value") == 0, "fhir_elem_named finds value[x]");
    e = fhir_elem_named(T("Observation"), "status", 6);
    ok(e && !e->is_choice && strcmp(e->name, "status") == 0, "fhir_elem_named plain element");
    ok(fhir_elem_named(T("Observation"), "valueQuantity", 13) == NULL,
       "fhir_elem_named does not resolve JSON choice keys");
    ok(fhir_elem_named(T("Observation"), "statu", 5) == NULL, "fhir_elem_named prefix");
    ok(E("Observation", "valueDatetime", NULL) == NULL, "suffix case matters after first letter");
    e = E("Extension", "valueReference", &c);
    ok(e && c == T("Reference"), "Extension.valueReference");
    e = E("Extension", "valueCodeableConcept", &c);
    ok(e && c == T("CodeableConcept"), "Extension.valueCodeableConcept");
    e = E("Extension", "valueBase64Binary", &c);
    ok(e && c == T("base64Binary"), "Extension.valueBase64Binary");
    e = E("Extension", "valueUuid", &c);
    ok(e && c == T("uuid"), "Extension.valueUuid");
    ok(e && e->ntypes >= 45, "Extension.value[x] allows every type (%d)", e ? e->ntypes : 0);
    e = E("Observation.component", "valueCodeableConcept", &c);
    ok(e && c == T("CodeableConcept"), "choice inside a backbone");
    e = E("MedicationRequest", "medicationReference", &c);
    ok(e && c == T("Reference"), "MedicationRequest.medicationReference");
}

static void test_backbone(void)
{
    const fhir_elem *e = E("Patient", "contact", NULL);
    ok(e && e->ntypes == 1 && e->types[0] == T("Patient.contact"),
       "Patient.contact elem -> backbone");
    ok(E("Patient.contact", "relationship", NULL) != NULL, "Patient.contact.relationship");
    ok(E("Patient.contact", "modifierExtension", NULL) != NULL, "backbone modifierExtension");
    ok(E("Patient.contact", "id", NULL) != NULL, "backbone id");
    e = E("Bundle", "entry", NULL);
    ok(e && e->types[0] == T("Bundle.entry"), "Bundle.entry");
    e = E("Bundle.entry", "request", NULL);
    ok(e && e->types[0] == T("Bundle.entry.request") && e->max == 1, "Bundle.entry.request 0..1");
    e = E("Bundle.entry.request", "method", NULL);
    ok(e && e->min == 1, "Bundle.entry.request.method 1..1");
    e = E("Bundle.entry", "resource", NULL);
    ok(e && e->types[0] == T("Resource"), "Bundle.entry.resource is Resource");
    e = E("Observation", "component", NULL);
    ok(e && e->types[0] == T("Observation.component") && e->max == FHIR_MAX_UNBOUNDED,
       "Observation.component 0..*");
    /* contentReference */
    e = E("Questionnaire.item", "item", NULL);
    ok(e && e->ntypes == 1 && e->types[0] == T("Questionnaire.item"),
       "Questionnaire.item.item uses Questionnaire.item");
    e = E("Bundle.entry", "link", NULL);
    ok(e && e->types[0] == T("Bundle.link"), "Bundle.entry.link uses Bundle.link");
    ok(T("Questionnaire.item.item") == NULL, "no separate type for a contentReference");
    e = E("Timing", "repeat", NULL);
    ok(e && e->types[0] == T("Timing.repeat"), "Timing.repeat");
    ok(E("Timing.repeat", "boundsDuration", NULL) != NULL, "Timing.repeat.boundsDuration");
}

static void test_primitives(void)
{
    ok(T("boolean")->json_type && strcmp(T("boolean")->json_type, "boolean") == 0, "boolean json");
    ok(strcmp(T("decimal")->json_type, "number") == 0, "decimal json number");
    ok(strcmp(T("integer")->json_type, "number") == 0, "integer json number");
    ok(strcmp(T("positiveInt")->json_type, "number") == 0, "positiveInt json number");
    ok(strcmp(T("unsignedInt")->json_type, "number") == 0, "unsignedInt json number");
    ok(strcmp(T("date")->json_type, "string") == 0, "date json string");
    ok(strcmp(T("xhtml")->json_type, "string") == 0, "xhtml json string");
    ok(T("Quantity")->json_type == NULL, "complex has no json type");
    ok(T("id")->regex && strcmp(T("id")->regex, "[A-Za-z0-9\\-\\.]{1,64}") == 0, "id regex");
    ok(T("date")->regex && strstr(T("date")->regex, "(0[1-9]|1[0-2])") != NULL, "date regex");
    ok(T("oid")->regex && strncmp(T("oid")->regex, "urn:oid:", 8) == 0, "oid regex");
    ok(T("HumanName")->regex == NULL, "complex has no regex");
    const fhir_type *all;
    size_t n = fhir_types_all(&all), prims = 0;
    for (size_t i = 0; i < n; i++)
        if (all[i].kind == FHIR_PRIMITIVE)
            prims++;
    is_int(prims, 20, "20 primitive types");
}

static int has_code(const fhir_search_param *const *ps, size_t n, const char *code)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ps[i]->code, code) == 0)
            return 1;
    return 0;
}

static void test_search_params(void)
{
    const fhir_search_param *const *ps;
    size_t n = fhir_search_params("Observation", &ps);
    ok(n > 30, "Observation has many search params (%zu)", n);
    int sorted = 1;
    for (size_t i = 1; i < n; i++)
        if (strcmp(ps[i - 1]->code, ps[i]->code) >= 0)
            sorted = 0;
    ok(sorted, "sorted by code, no duplicates");
    ok(has_code(ps, n, "_id") && has_code(ps, n, "_lastUpdated") && has_code(ps, n, "_tag"),
       "Resource params apply to Observation");
    ok(has_code(ps, n, "_text"), "DomainResource params apply to Observation");

    const fhir_search_param *p = fhir_search_param_find("Observation", "code");
    ok(p && p->type == FHIR_SP_TOKEN, "Observation code is a token");
    ok(p && p->expression && strstr(p->expression, "Observation.code") != NULL,
       "code expression mentions Observation.code");
    p = fhir_search_param_find("Observation", "subject");
    ok(p && p->type == FHIR_SP_REFERENCE && p->ntargets > 1, "subject is a reference with targets");
    int patient_target = 0;
    for (unsigned i = 0; p && i < p->ntargets; i++)
        if (strcmp(p->targets[i], "Patient") == 0)
            patient_target = 1;
    ok(patient_target, "subject targets Patient");
    p = fhir_search_param_find("Observation", "value-quantity");
    ok(p && p->type == FHIR_SP_QUANTITY, "value-quantity is a quantity");
    p = fhir_search_param_find("Observation", "date");
    ok(p && p->type == FHIR_SP_DATE, "date");
    p = fhir_search_param_find("Observation", "component-code-value-quantity");
    ok(p && p->type == FHIR_SP_COMPOSITE && p->ncomponents == 2, "composite with two components");
    ok(p && p->ncomponents == 2 &&
           strcmp(p->component_urls[0],
                  "http://hl7.org/fhir/SearchParameter/Observation-component-code") == 0 &&
           strcmp(p->component_exprs[0], "code") == 0,
       "first component is component-code");
    ok(p && p->ncomponents == 2 && strstr(p->component_exprs[1], "Quantity") != NULL,
       "second component is the quantity value");
    const fhir_search_param *c0 =
        p && p->ncomponents ? fhir_search_param_by_url(p->component_urls[0]) : NULL;
    const fhir_search_param *c1 =
        p && p->ncomponents > 1 ? fhir_search_param_by_url(p->component_urls[1]) : NULL;
    ok(c0 && c0->type == FHIR_SP_TOKEN && strcmp(c0->code, "component-code") == 0,
       "component 0 resolves by url to the token component-code");
    ok(c1 && c1->type == FHIR_SP_QUANTITY, "component 1 resolves to a quantity parameter");
    ok(fhir_search_param_by_url("http://example.org/none") == NULL, "unknown url");
    {
        const fhir_search_param *const *all;
        size_t na = fhir_search_params_all(&all), found = 0;
        for (size_t i = 0; i < na; i++)
            if (fhir_search_param_by_url(all[i]->url) == all[i])
                found++;
        ok(found == na, "every definition is found by its url");
    }
    ok(fhir_search_param_find("Observation", "nonexistent") == NULL, "unknown code");
    ok(fhir_search_param_find("NotAType", "code") == NULL, "unknown type");
    p = fhir_search_param_find("Patient", "birthdate");
    ok(p && p->type == FHIR_SP_DATE && strstr(p->expression, "Patient.birthDate"),
       "Patient birthdate");
    p = fhir_search_param_find("Patient", "name");
    ok(p && p->type == FHIR_SP_STRING, "Patient name is a string param");
    p = fhir_search_param_find("Patient", "_lastUpdated");
    ok(p && p->type == FHIR_SP_DATE && strcmp(p->expression, "Resource.meta.lastUpdated") == 0,
       "_lastUpdated on Patient");
    /* a multi-base definition applies to each base, shared once */
    const fhir_search_param *a = fhir_search_param_find("Condition", "patient");
    const fhir_search_param *b = fhir_search_param_find("AllergyIntolerance", "patient");
    ok(a && a == b, "clinical-patient is one definition shared by bases");
    ok(fhir_search_param_find("Bundle", "_text") == NULL, "Bundle is not a DomainResource");
    n = fhir_search_params("Resource", &ps);
    ok(n >= 5 && has_code(ps, n, "_id"), "Resource-level params");
    n = fhir_search_params("Nope", &ps);
    ok(n == 0, "no params for unknown type");
}

static void test_compartment(void)
{
    const char *const *codes;
    size_t n = fhir_patient_compartment("Observation", &codes);
    int subject = 0, performer = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(codes[i], "subject") == 0)
            subject = 1;
        if (strcmp(codes[i], "performer") == 0)
            performer = 1;
    }
    ok(n == 2 && subject && performer, "Observation: subject, performer");
    n = fhir_patient_compartment("Patient", &codes);
    ok(n == 1 && strcmp(codes[0], "link") == 0, "Patient: link");
    ok(fhir_patient_compartment("Organization", &codes) == 0, "Organization not in compartment");
    ok(fhir_patient_compartment("Nope", NULL) == 0, "unknown type");
    /* every compartment code is a search parameter of that type */
    const fhir_type *const *res;
    size_t nr = fhir_resource_types(&res);
    int all_ok = 1;
    for (size_t i = 0; i < nr; i++) {
        n = fhir_patient_compartment(res[i]->name, &codes);
        for (size_t k = 0; k < n; k++)
            if (!fhir_search_param_find(res[i]->name, codes[k]))
                all_ok = 0;
    }
    ok(all_ok, "compartment codes are search params of their type");
    /* the Encounter compartment: its codes are reference parameters of their type
     * that may point at an Encounter, except {def}, the Encounter itself */
    n = fhir_compartment("Encounter", "MedicationAdministration", &codes);
    ok(n == 1 && !strcmp(codes[0], "context"), "Encounter: MedicationAdministration.context");
    n = fhir_compartment("Encounter", "Encounter", &codes);
    ok(n == 1 && !strcmp(codes[0], "{def}"), "Encounter: the Encounter itself");
    ok(fhir_compartment("Encounter", "Patient", NULL) == 0, "Patient not in Encounter's");
    ok(fhir_compartment("Device", "Observation", NULL) == 0, "unknown compartment");
    ok(fhir_compartment("Patient", "Observation", NULL) == 2, "Patient by name");
    all_ok = 1;
    size_t nenc = 0;
    for (const char *t; (t = fhir_compartment_type("Encounter", nenc)); nenc++) {
        n = fhir_compartment("Encounter", t, &codes);
        for (size_t k = 0; k < n; k++) {
            if (!strcmp(codes[k], "{def}"))
                continue;
            const fhir_search_param *sp = fhir_search_param_find(t, codes[k]);
            int enc = 0;
            for (uint8_t j = 0; sp && j < sp->ntargets; j++)
                enc |= !strcmp(sp->targets[j], "Encounter");
            if (!sp || sp->type != FHIR_SP_REFERENCE || !enc)
                all_ok = 0;
        }
        if (nenc && strcmp(fhir_compartment_type("Encounter", nenc - 1), t) >= 0)
            all_ok = 0;
    }
    ok(nenc == 25 && all_ok, "Encounter compartment: 25 types, reference codes, sorted");
}

static void test_valuesets(void)
{
    const char *g = "http://hl7.org/fhir/ValueSet/administrative-gender";
    ok(fhir_valueset_contains(g, "male", 4) == 1, "male is a gender");
    ok(fhir_valueset_contains(g, "unknown", 7) == 1, "unknown is a gender");
    ok(fhir_valueset_contains(g, "mal", 3) == 0, "mal is not a gender");
    ok(fhir_valueset_contains(g, "Male", 4) == 0, "codes are case-sensitive");
    const char *const *codes;
    is_int(fhir_valueset_codes(g, &codes), 4, "four genders");
    ok(fhir_valueset_contains("http://hl7.org/fhir/ValueSet/mimetypes", "text/plain", 10) == -1,
       "mime types are not enumerable");
    ok(fhir_valueset_contains("http://example.org/nope", "x", 1) == -1, "unknown value set");
    const fhir_elem *e = E("Observation", "status", NULL);
    ok(e && e->binding_vs && fhir_valueset_contains(e->binding_vs, "final", 5) == 1 &&
           fhir_valueset_contains(e->binding_vs, "entered-in-error", 16) == 1 &&
           fhir_valueset_contains(e->binding_vs, "done", 4) == 0,
       "Observation.status binding");
    e = E("Bundle", "type", NULL);
    ok(e && e->binding_vs && fhir_valueset_contains(e->binding_vs, "transaction", 11) == 1 &&
           fhir_valueset_contains(e->binding_vs, "transaction-response", 20) == 1,
       "Bundle.type binding");
    e = E("Timing.repeat", "when", NULL);
    ok(e && e->binding_vs && fhir_valueset_contains(e->binding_vs, "MORN", 4) == 1 &&
           fhir_valueset_contains(e->binding_vs, "HS", 2) == 1,
       "event-timing unites two code systems");
    e = E("Quantity", "comparator", NULL);
    ok(e && e->binding_vs && fhir_valueset_contains(e->binding_vs, "<=", 2) == 1, "comparator");
}

static const fhir_constraint *find_con(const char *type, const char *key)
{
    const fhir_constraint *cs;
    size_t n = fhir_constraints(T(type), &cs);
    for (size_t i = 0; i < n; i++)
        if (strcmp(cs[i].key, key) == 0)
            return &cs[i];
    return NULL;
}

static void test_constraints(void)
{
    const fhir_constraint *c = find_con("Patient.contact", "pat-1");
    ok(c && c->is_error && c->elem == NULL && strstr(c->expression, "organization.exists()"),
       "pat-1 on Patient.contact");
    c = find_con("Observation", "obs-6");
    ok(c && strstr(c->expression, "dataAbsentReason"), "obs-6 on Observation");
    ok(find_con("DomainResource", "dom-2") && find_con("DomainResource", "dom-6"),
       "dom-2..dom-6 on DomainResource");
    c = find_con("Element", "ele-1");
    ok(c && c->elem == NULL && strstr(c->expression, "hasValue()"), "ele-1 on Element");
    ok(find_con("Extension", "ext-1") != NULL, "ext-1 on Extension");
    ok(find_con("Patient", "dom-2") == NULL && find_con("Patient", "ele-1") == NULL,
       "inherited invariants are not repeated");
    c = find_con("Organization", "org-3");
    ok(c && c->elem && strcmp(c->elem, "telecom") == 0, "org-3 applies to Organization.telecom");
    c = find_con("Questionnaire", "que-0");
    ok(c && !c->is_error, "que-0 is a warning");
    const fhir_type *all;
    size_t nt = fhir_types_all(&all), total = 0, sane = 1;
    for (size_t i = 0; i < nt; i++) {
        const fhir_constraint *cs;
        size_t n = fhir_constraints(&all[i], &cs);
        total += n;
        for (size_t k = 0; k < n; k++)
            if (!cs[k].key[0] || !cs[k].expression[0] ||
                (cs[k].elem && !fhir_elem_named(&all[i], cs[k].elem, strlen(cs[k].elem))))
                sane = 0;
    }
    ok(total > 200 && sane, "%zu invariants, each with key, expression and a real element", total);
    ok(fhir_constraints(NULL, NULL) == 0, "NULL type");
}

int main(void)
{
    test_counts();
    test_type_lookup();
    test_inheritance();
    test_elements();
    test_choice();
    test_backbone();
    test_primitives();
    test_search_params();
    test_compartment();
    test_valuesets();
    test_constraints();
    return tap_done();
}
