/*
 * consent.h -- patient-privacy Consent resources, read into rules and decided for one
 * token (docs/CONSENT.md). Pure: no store, no search; rest/authz.c turns a decision
 * into queries that leave the withheld resources out.
 *
 * The supported subset: Consent.status active, scope patient-privacy, patient a local
 * Patient reference, provision with a type (deny | permit), optional period, actor
 * (matched against the token's fhirUser), purpose (against its purpose_of_use), class
 * (resource types), securityLabel (meta.security of the resource), action (read as
 * access: only access, use and disclose), and one level of nested provisions of the
 * opposite type. Every other element of an active patient-privacy Consent (code,
 * dataPeriod, data, deeper nesting) is refused when the Consent is written, so a
 * stored active Consent is always enforced as written.
 */
#ifndef HORTUS_AUTH_CONSENT_H
#define HORTUS_AUTH_CONSENT_H

#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "json/json.h"

#include "base/arena.h"

#define AUTH_CONSENT_MAX_ITEMS 16  /* actors, purposes, classes, labels of one provision */
#define AUTH_CONSENT_MAX_NESTED 8  /* nested provisions */

/* One provision: who (actors; none = everyone), why (purposes; none = any), what
 * (classes; none = every type of the patient's compartment; labels: only resources
 * carrying one of them; none = whatever they carry), when (period [start, end) in µs,
 * INT64_MIN / INT64_MAX when open). Strings in the arena given to auth_consent_read. */
typedef struct auth_consent_prov {
    int deny;
    int64_t start, end;
    size_t nactor, npurpose, nclass, nlabel;
    const char *actor[AUTH_CONSENT_MAX_ITEMS];   /* "Practitioner/12" */
    const char *purpose[AUTH_CONSENT_MAX_ITEMS]; /* "system|code", or "|code" */
    const char *cls[AUTH_CONSENT_MAX_ITEMS];     /* "Observation" */
    const char *label[AUTH_CONSENT_MAX_ITEMS];   /* "system|code" */
} auth_consent_prov;

typedef struct auth_consent {
    const char *id;
    const char *patient; /* a Patient id */
    auth_consent_prov root;
    size_t nnested;
    auth_consent_prov *nested;
} auth_consent;

/* Read the Consent res (a parsed resource) into *out, its strings and provisions in a.
 * 0: an active patient-privacy
 * Consent, enforced; 1: not one (another status or scope: data, not a rule);
 * ERR_UNSUPPORTED: an active patient-privacy Consent that uses what is not enforced,
 * or ERR_INVALID: one that is malformed; msg says what, for a 422. */
int auth_consent_read(const json_val *res, arena *a, auth_consent *out, char *msg,
                      size_t msz);

/* What consent c withholds from token p for resources of `type` at `now` (µs): 0 nothing,
 * 1 a rule in *r: the resources of c->patient's compartment of that type which carry
 * one of r->any labels (r->nany 0: whatever they carry) and none of r->none labels
 * (r->nnone 0: no exception). Pointers into c. */
typedef struct auth_consent_rule {
    const char *patient;
    const char *any[AUTH_CONSENT_MAX_ITEMS * AUTH_CONSENT_MAX_NESTED];
    size_t nany;
    const char *none[AUTH_CONSENT_MAX_ITEMS * AUTH_CONSENT_MAX_NESTED];
    size_t nnone;
} auth_consent_rule;

int auth_consent_rule_for(const auth_consent *c, const auth_principal *p, const char *type,
                          int64_t now, auth_consent_rule *r);

/* Whether consent applies to p at all: tokens of users and patients (a user/ or patient/
 * scope, or a fhirUser claim); backend services with only system/ scopes are not
 * user-facing and are not held to consent. */
int auth_consent_user_facing(const auth_principal *p);

#endif
