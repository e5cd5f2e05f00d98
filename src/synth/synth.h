/*
 * synth.h -- deterministic synthetic clinical data (`hortus generate`).
 *
 * The generator produces Synthea-shaped FHIR R4 resources for Dutch patients:
 * Patient, Encounter, Observation (vital signs and labs), DiagnosticReport,
 * Condition, MedicationRequest, Procedure, AllergyIntolerance, Immunization,
 * plus the shared Organizations (hospitals, GP practices) and Practitioners
 * they reference.
 *
 * Determinism: everything is a pure function of (seed, patient index). Each
 * patient has its own PRNG stream (xoshiro256** seeded through splitmix64 from
 * seed and index), its own id stream and a fixed reference date
 * (SYNTH_END_UNIX), so patient #k is byte-identical whatever was generated
 * before it and whichever thread generates it. Nothing reads the clock or rand().
 *
 *   seed, k --splitmix--> rng(k)   --> timeline: birth, conditions, encounters
 *           --splitmix--> ids(k)   --> Patient id, then one UUID per resource
 *
 * Output goes through a sink callback, one call per resource, with the
 * minified JSON of that resource; the CLI turns calls into ndjson lines or
 * transaction Bundle entries.
 */
#ifndef HORTUS_SYNTH_H
#define HORTUS_SYNTH_H

#include <stddef.h>
#include <stdint.h>

/* Generated timelines end here: 2025-01-01T00:00:00Z. */
#define SYNTH_END_UNIX 1735689600LL

/* Resource types the generator emits (index into synth_type_names). */
enum {
    SYNTH_ORGANIZATION,
    SYNTH_PRACTITIONER,
    SYNTH_PATIENT,
    SYNTH_ENCOUNTER,
    SYNTH_CONDITION,
    SYNTH_OBSERVATION,
    SYNTH_DIAGNOSTICREPORT,
    SYNTH_MEDICATIONREQUEST,
    SYNTH_PROCEDURE,
    SYNTH_ALLERGYINTOLERANCE,
    SYNTH_IMMUNIZATION,
    SYNTH_NTYPES
};
extern const char *const synth_type_names[SYNTH_NTYPES];

/*
 * Called once per resource. json[0..len) is the complete minified resource
 * (not NUL-terminated, no newline); type is one of synth_type_names, id its
 * logical id (NUL-terminated). All three are valid only during the call.
 * Return 0 to continue, a negative err.h code to stop generation (returned as is).
 */
typedef int (*synth_sink)(void *ctx, int type, const char *id, const char *json, size_t len);

typedef struct synth synth;

/* A generator for `seed`. NULL on OOM. One synth belongs to one thread at a time;
 * use one per thread to generate in parallel. */
synth *synth_new(uint64_t seed);
void synth_free(synth *g);

/* Emit the shared Organizations and Practitioners (the same for every patient of
 * a seed). Returns 0 or the first error (sink's or ERR_NOMEM). */
int synth_infrastructure(synth *g, synth_sink sink, void *ctx);

/* Emit every resource of patient number `index` (0-based), the Patient first and
 * then its timeline in chronological order (a resource is emitted after every
 * resource it references). Returns 0 or the first error. */
int synth_patient(synth *g, uint64_t index, synth_sink sink, void *ctx);

/* The logical id of patient `index` under `seed` (a UUID, 36 chars + NUL). */
void synth_patient_id(uint64_t seed, uint64_t index, char out[37]);

/* 1 when s is a 9-digit Dutch BSN that passes the 11-proof, else 0. */
int synth_bsn_valid(const char *s);

/* `hortus generate --patients N [--seed S] --format ndjson|bundles OUTDIR` */
int synth_main(int argc, char **argv);

#endif
