/*
 * validate.h -- structural validation of FHIR R4 JSON resources on write (prefix val_).
 *
 * One walk over a parsed resource against the generated model (src/fhir/model.h)
 * finds, with the FHIRPath location of each:
 *
 *   resourceType missing / not a string / not a concrete R4 resource
 *   unknown elements, including a wrong choice suffix ("valueFoo")   -> structure
 *   array where max is 1, single value where the element is a list   -> structure
 *   null without a matching "_name" extension item, "_name" on a non-primitive,
 *   "_name" array not aligned with "name", two value[x] keys         -> structure
 *   missing required elements (min >= 1)                              -> required
 *   a code outside the (enumerable) value set of its required binding, or a
 *   CodeableConcept under one with no coding from it                  -> code-invalid
 *   primitive JSON type and format (id, date, dateTime, instant, time, decimal,
 *   integer 32-bit, positiveInt, unsignedInt, uri/url/canonical, oid, uuid, code,
 *   string, markdown, base64Binary, boolean, xhtml)                   -> value
 *   an element object with nothing but an id (ele-1),
 *   Extension with both or neither of extension and value[x] (ext-1),
 *   contained resources nesting contained resources (dom-2)           -> invariant
 *
 * Contained resources, Bundle.entry.resource and Parameters.parameter.resource are
 * validated as resources of their own resourceType.
 *
 * Locations are FHIRPath: "Patient.name[0].given[1]", a choice element is written
 * "Observation.value.ofType(Quantity)", an unknown key keeps its JSON spelling
 * ("Patient.name[0].fooBar"). A primitive's "_name" extension object shares the
 * location of its value.
 *
 * Cost: one pass, hash lookups, no allocation except issue text in the arena of
 * the oo (only when something is wrong). Thread-safe: no shared mutable state.
 */
#ifndef HORTUS_FHIR_VALIDATE_H
#define HORTUS_FHIR_VALIDATE_H

#include <stddef.h>

#include "base/arena.h"
#include "fhir/model.h"
#include "fhir/outcome.h"
#include "json/json.h"

#define VAL_MAX_ISSUES 100 /* issues one val_resource call adds before it stops */
#define VAL_MAX_DEPTH 128  /* nesting of objects walked (JSON depth is capped lower) */

/*
 * Validate `root` as a FHIR resource. When expected_type is not NULL, a resource
 * of another type is reported too (code "invalid", expression "resourceType").
 * Issues (severity error) are appended to `out`; `a` may be NULL (the oo's arena
 * holds all issue text). Returns 0 when the resource is valid, ERR_INVALID when
 * issues were added, ERR_NOMEM when the outcome could not record them.
 */
int val_resource(arena *a, const json_val *root, const char *expected_type, oo *out);

/* The resourceType string of root (an object), or NULL. Valid as long as root. */
const char *val_resource_type(const json_val *root);

/*
 * Helper for callers that check the type themselves (e.g. PUT [base]/Patient/1):
 * adds an "invalid" issue at "resourceType" and returns ERR_INVALID when root's
 * resourceType is not `expected`; returns 0 otherwise.
 */
int val_check_type(const json_val *root, const char *expected, oo *out);

/* 1 when s[0..n) is a valid resource id: [A-Za-z0-9\-\.]{1,64}. */
int val_is_id(const char *s, size_t n);

/*
 * 1 when text[0..n) is a valid lexical value of the primitive type `prim` (for
 * number-valued primitives, the JSON number text). Booleans take "true"/"false".
 * Returns 0 for non-primitive types.
 */
int val_primitive_text(const fhir_type *prim, const char *text, size_t n);

/* `hortus validate [--type TYPE] FILE...`: validate resources in files (a JSON
 * resource, or ndjson when the name ends in .ndjson or is "-"); prints the issues
 * of invalid ones. Exit code 0 all valid, 1 some invalid or unreadable, 2 usage. */
int val_cli_main(int argc, char **argv);

#endif
