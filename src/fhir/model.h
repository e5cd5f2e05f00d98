/*
 * model.h -- the FHIR R4 model as C tables, generated from the official
 * definitions by tools/gen_model.py into src/fhir/gen/ (never typed by hand).
 *
 * A type is a resource, a complex datatype, a primitive, or a backbone element
 * (the anonymous structure under e.g. Patient.contact, named by its path
 * "Patient.contact"). Each type lists its elements *flattened*: inherited ones
 * (id, meta, extension, ...) are included, so one lookup answers "may Patient
 * have `text`?".
 *
 *   fhir_type "Observation" (RESOURCE, base DomainResource)
 *     elems: id, meta, implicitRules, language, text, contained, extension,
 *            modifierExtension, identifier, basedOn, ..., value[x], ..., component
 *     "value[x]" -> fhir_elem{name "value", choice, types: Quantity, CodeableConcept,
 *                             string, boolean, integer, Range, Ratio, SampledData,
 *                             time, dateTime, Period}
 *     "component" -> fhir_elem{name "component", max *, types: BackboneElement,
 *                              backbone -> fhir_type "Observation.component"}
 *
 * All pointers point into static tables: valid forever, never freed.
 */
#ifndef HORTUS_FHIR_MODEL_H
#define HORTUS_FHIR_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef enum fhir_kind {
    FHIR_PRIMITIVE = 1, /* boolean, string, decimal, date, code, ... */
    FHIR_COMPLEX,       /* HumanName, Quantity, Age (a Quantity), Extension, ... */
    FHIR_RESOURCE,      /* Patient, Bundle, Resource, DomainResource */
    FHIR_BACKBONE,      /* "Patient.contact": inline structure of one element */
} fhir_kind;

#define FHIR_MAX_UNBOUNDED 0xffff /* fhir_elem.max for "*" */

typedef struct fhir_type fhir_type;
typedef struct fhir_elem fhir_elem;

struct fhir_elem {
    const char *name;   /* JSON name; for a choice "value" (without "[x]") */
    uint16_t min;       /* minimum cardinality */
    uint16_t max;       /* maximum cardinality, FHIR_MAX_UNBOUNDED for "*" */
    uint8_t is_choice;  /* value[x]: the JSON key is name + capitalised type name */
    uint8_t is_modifier;
    uint8_t is_summary;
    uint8_t ntypes;     /* number of allowed types (several only for choices) */
    const fhir_type *const *types; /* allowed types; for backbone elements the one
                                      entry is the backbone type itself */
    const char *binding_vs;        /* required-strength ValueSet URL or NULL */
};

struct fhir_type {
    const char *name;      /* "Patient", "HumanName", "string", "Patient.contact" */
    fhir_kind kind;
    uint8_t is_abstract;   /* Resource, DomainResource, Element, BackboneElement... */
    const fhir_type *base; /* DomainResource for Patient, Quantity for Age; NULL at root */
    uint16_t nelems;
    const fhir_elem *elems; /* flattened, own and inherited, in definition order */
    const char *regex;      /* primitives: the value regex of the spec, else NULL */
    const char *json_type;  /* primitives: "string", "boolean" or "number" (JSON form) */
};

/* Lookup by name ("Patient", "string", "Observation.component"): NULL if unknown. */
const fhir_type *fhir_type_find(const char *name, size_t n);

/* The type of a concrete resource type name (not abstract, kind RESOURCE), or NULL. */
const fhir_type *fhir_resource_type(const char *name, size_t n);

/*
 * Element `key` as it appears in JSON under an instance of `t`:
 *   "given" -> the element; "valueQuantity" -> value[x] with *choice = Quantity;
 *   "_given" is NOT handled here (strip the underscore first).
 * NULL when t has no such element. `choice` may be NULL; it is set to the chosen
 * type for choice elements and to NULL otherwise.
 */
const fhir_elem *fhir_elem_find(const fhir_type *t, const char *key, size_t n,
                                const fhir_type **choice);

/* Element by its model name, as FHIRPath names it: "name", and for a choice
 * element its bare name ("value" for value[x]). NULL when t has no such element. */
const fhir_elem *fhir_elem_named(const fhir_type *t, const char *name, size_t n);

/* 1 when t is `ancestor` or derives from it (Age is Quantity, Patient is Resource). */
int fhir_type_is(const fhir_type *t, const fhir_type *ancestor);

/* All concrete resource types, sorted by name (for the CapabilityStatement). */
size_t fhir_resource_types(const fhir_type *const **out);

/* Every type (resources, datatypes, primitives, backbone types), sorted by name;
 * *out points at a static array of the returned count. */
size_t fhir_types_all(const fhir_type **out);

/* --- invariants (ElementDefinition.constraint) --------------------------------- */
typedef struct fhir_constraint {
    const char *key;        /* "pat-1", "obs-6" */
    uint8_t is_error;       /* severity: 1 error, 0 warning */
    const char *human;      /* the rule in words */
    const char *expression; /* FHIRPath, evaluated with each instance as the context */
    const char *elem;       /* NULL: on instances of the type itself; else on the
                               values of this element of the type */
} fhir_constraint;

/* The invariants type t declares itself, in definition order; inherited ones
 * (ele-1, dom-2..dom-6, ext-1, ...) belong to the base types: walk t->base.
 * *out points into a static array. */
size_t fhir_constraints(const fhir_type *t, const fhir_constraint **out);

/* --- search parameters (from search-parameters.json) ------------------------- */
typedef enum fhir_sp_type {
    FHIR_SP_NUMBER = 1,
    FHIR_SP_DATE,
    FHIR_SP_STRING,
    FHIR_SP_TOKEN,
    FHIR_SP_REFERENCE,
    FHIR_SP_COMPOSITE,
    FHIR_SP_QUANTITY,
    FHIR_SP_URI,
    FHIR_SP_SPECIAL,
} fhir_sp_type;

typedef struct fhir_search_param {
    const char *code;        /* "birthdate", "_lastUpdated" */
    const char *url;         /* canonical URL of the SearchParameter */
    fhir_sp_type type;
    const char *expression;  /* FHIRPath, the whole expression of the definition (it
                                may cover several bases joined by "|"), or NULL */
    uint8_t ntargets;        /* reference params: target resource types */
    const char *const *targets;
    uint8_t ncomponents;     /* composite params: component definitions and expressions */
    const char *const *component_urls;
    const char *const *component_exprs;
} fhir_search_param;

/* The FHIR name of a search parameter type ("token", "date" ...). Static. */
const char *fhir_sp_type_name(fhir_sp_type t);

/* Search parameters that apply to resource type `type` (including those defined
 * on Resource and DomainResource), sorted by code. Returns the count. */
size_t fhir_search_params(const char *type, const fhir_search_param *const **out);

/* One parameter by resource type and code, or NULL. */
const fhir_search_param *fhir_search_param_find(const char *type, const char *code);

/* Every search parameter definition once (for start-up compilation checks),
 * sorted by url. */
size_t fhir_search_params_all(const fhir_search_param *const **out);

/* One definition by its canonical url (e.g. a composite's component_urls[i]),
 * or NULL. */
const fhir_search_param *fhir_search_param_by_url(const char *url);

/* --- required-binding value sets (valuesets.json) ---------------------------- */
/* Is `code` in the value set `url` (a fhir_elem.binding_vs)? 1 yes, 0 no, -1 when
 * the value set is unknown or not enumerable from the definitions (defined by
 * filters or by external code systems such as BCP-13 mime types or ISO 4217). */
int fhir_valueset_contains(const char *url, const char *code, size_t n);

/* The codes of value set `url`, sorted (strcmp); 0 when not enumerable. */
size_t fhir_valueset_codes(const char *url, const char *const **codes);

/* --- Patient compartment (compartmentdefinition-patient.json) ---------------- */
/* The parameter codes linking a resource of `type` to a Patient, e.g.
 * Observation -> {"subject", "performer"}; 0 when type is not in the compartment. */
size_t fhir_patient_compartment(const char *type, const char *const **codes);

/* --- Compartments by name: Patient, and Encounter (tools/defs) ------------------ */
/* The parameter codes linking a resource of `type` to compartment `comp` ("Patient"
 * or "Encounter"; "{def}" names the compartment's own type), as
 * fhir_patient_compartment; 0 when comp is not known or type is not in it. */
size_t fhir_compartment(const char *comp, const char *type, const char *const **codes);

/* The resource types of compartment `comp`, sorted (strcmp): the i-th of n, or NULL
 * past the end or for an unknown compartment. */
const char *fhir_compartment_type(const char *comp, size_t i);

#endif
