/*
 * profile.h -- validation against profiles stored as StructureDefinition resources
 * (prefix prof_), docs/PROFILES.md.
 *
 * A StructureDefinition of derivation `constraint` (kind resource or complex-type),
 * given as a differential or, failing that, as a snapshot, is compiled once into a
 * tree of element rules that mirrors the element ids:
 *
 *   Patient                                   root: constraints on the resource
 *    +- identifier        slicing value@system, closed?
 *    |   +- system        min 1                        (rules on every identifier)
 *    |   +- :bsn          min 1 max 1                  (a slice: its items only)
 *    |       +- system    fixedUri http://fhir.nl/fhir/NamingSystem/bsn
 *    +- gender            min 1
 *    +- birthDate         max 0
 *    +- extension
 *        +- :birthPlace   type Extension(profile http://x/ext), min 1
 *
 * and checked on top of the base R4 validation (src/fhir/validate.h and the R4
 * invariants), which the caller runs first. What a StructureDefinition says that
 * the engine does not check is kept as a note and reported as a warning
 * (not-supported, naming the element id and the feature) every time the profile is
 * used, never passed over as if it held.
 *
 * A prof_set is the profiles of one tenant at one generation of its
 * StructureDefinitions (the t of the last StructureDefinition write, Aux key
 * tenant | "pprofile", docs/STORAGE.md): built from the snapshot when first asked
 * after a change, immutable, reference counted (prof_registry_get / prof_set_release).
 * Profiles refer to each other (baseDefinition, type.profile of extensions and
 * datatypes) by canonical URL within one set.
 *
 * Thread-safety: compiled profiles and sets are read-only after building; the
 * registry's rebuild is serialised by its lock.
 */
#ifndef HORTUS_PROF_PROFILE_H
#define HORTUS_PROF_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "fhir/outcome.h"
#include "json/json.h"
#include "store/store.h"

#define PROF_MAX_CHAIN 16        /* profiles applied within one another (baseDefinition,
                                    type.profile), deeper is an error */
#define PROF_MAX_ELEMENTS 10000  /* elements of one StructureDefinition */
#define PROF_MAX_PER_TENANT 5000 /* StructureDefinitions compiled per tenant */
#define PROF_MAX_LOC 1024        /* bytes of one FHIRPath location in an issue */

typedef struct prof_def prof_def;
typedef struct prof_set prof_set;
typedef struct prof_registry prof_registry;

/* What a claimed profile the server does not hold does to a write (`--unknown-profile`). */
typedef enum prof_unknown {
    PROF_UNKNOWN_WARN = 0, /* accepted; a warning issue says it was not validated */
    PROF_UNKNOWN_REFUSE,   /* an error issue: the write is refused */
} prof_unknown;

/* ---- one StructureDefinition ---------------------------------------------------- */

/*
 * Compile StructureDefinition `sd` (a parsed resource) into *out, allocated in `a`
 * (the compiled FHIRPath of its constraints is heap memory: prof_def_free). Never
 * fails on content: what is wrong with the definition (no url, an element path
 * outside its type, min > max, a constraint that does not compile ...) is kept as
 * its errors (prof_def_errors), what it says that hortus does not check as its notes.
 * Returns 0 or ERR_NOMEM.
 */
int prof_compile(arena *a, const json_val *sd, prof_def **out);

/* Free what prof_compile allocated outside its arena. NULL is a no-op. */
void prof_def_free(prof_def *p);

/* Append the definition's errors (severity error, code invalid/structure, expression
 * the element's location in the StructureDefinition) to out; returns how many. */
size_t prof_def_errors(const prof_def *p, oo *out);

/* 1 when p is a profile that can be applied to instances (a constraint of a resource
 * or complex type, with no errors). */
int prof_def_usable(const prof_def *p);

const char *prof_def_url(const prof_def *p);

/* ---- validation ------------------------------------------------------------------ */

/* How the engine finds the profiles a profile names (its baseDefinition, the
 * type.profile of an element): the compiled profile of canonical, or NULL. */
typedef const prof_def *(*prof_find_fn)(const void *ctx, const char *canonical);

/* prof_validate with the profiles found through find(ctx, ...) instead of a set (the
 * engine alone: profile.c knows no set). */
int prof_check(arena *a, prof_find_fn find, const void *ctx, const char *canonical,
               const json_val *res, const char *type, oo *out);

/* 1 when `canonical` (url or url|version) is the core R4 definition of a type
 * ("http://hl7.org/fhir/StructureDefinition/Patient"): it stands for the base
 * validation alone. */
int prof_is_core(const char *canonical);

/*
 * Validate `res` (a structurally valid resource of `type`) against the profile
 * `canonical` of set s (may be NULL: none held). Issues go to out (severity error
 * for a violation, warning for what is not checked), with the profile's url and the
 * element id in the diagnostics and the FHIRPath location as the expression.
 * Returns 0 (valid; warnings may have been added), ERR_INVALID (errors added),
 * ERR_NOTFOUND (s does not hold the profile; nothing added), ERR_NOMEM.
 * A core definition of `type` (prof_is_core) is valid at once; one of another type
 * is an error.
 */
int prof_validate(arena *a, const prof_set *s, const char *canonical, const json_val *res,
                  const char *type, oo *out);

/*
 * Every profile res claims in meta.profile: prof_validate each; one s does not hold
 * adds a warning ("not validated against it") or, with PROF_UNKNOWN_REFUSE, an
 * error. Returns 0, ERR_INVALID (an error was added), ERR_NOMEM. *checked (may be
 * NULL) is set to 1 when some claim was looked up in s (the caller then makes its
 * write conditional on the set's generation).
 */
int prof_validate_claims(arena *a, const prof_set *s, const json_val *res, const char *type,
                         prof_unknown unknown, oo *out, int *checked);

/* 1 when res claims a profile in meta.profile other than a core definition. */
int prof_has_claims(const json_val *res);

/* ---- the sets of a tenant ------------------------------------------------------ */

int prof_registry_new(prof_registry **out);
void prof_registry_free(prof_registry *g); /* every set must have been released */

/* The profiles of tenant as of snapshot rd: 0 and *out (hold it until
 * prof_set_release), or the store's error / ERR_NOMEM / ERR_LIMIT (too many tenants). */
int prof_registry_get(prof_registry *g, store_reader *rd, uint32_t tenant,
                      const prof_set **out);
void prof_set_release(const prof_set *s); /* NULL is a no-op */

/* The compiled profile of canonical (url, or url|version; a url alone names the
 * version written last), or NULL. Valid while s is held. */
const prof_def *prof_set_find(const prof_set *s, const char *canonical);

/* The generation the set was built at (0: no StructureDefinition ever written). */
uint64_t prof_set_stamp(const prof_set *s);

/* Aux key of the generation: tenant | "pprofile" -> t (u64 BE) of the last commit that
 * wrote a StructureDefinition; absent before the first. */
#define PROF_GEN_KEY_LEN 12
size_t prof_gen_key(uint8_t *out, uint32_t tenant);

/* The condition "the profiles are still s's" (key in kbuf of PROF_GEN_KEY_LEN bytes,
 * value in vbuf of 8): a write validated with s commits only under it. */
void prof_gen_cond(const prof_set *s, uint32_t tenant, uint8_t *kbuf, uint8_t *vbuf,
                   store_cond *c);

#endif
