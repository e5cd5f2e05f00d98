/*
 * consent.h -- the enforced Consents of each tenant, read from the store once per
 * change (prefix rest_consent_; docs/CONSENT.md).
 *
 * A request takes the set of its snapshot (rest_consent_set_of): the Consent versions
 * newest t in the snapshot is the set's stamp; a snapshot with another stamp builds a
 * new set (every current Consent read with auth_consent_read), else the cached one is
 * shared. Sets are immutable and reference-counted: a request holds its set until
 * rest_snapshot_end, a newer set replaces the cached one and the old one is freed when
 * its last request lets go.
 */
#ifndef HORTUS_REST_CONSENT_H
#define HORTUS_REST_CONSENT_H

#include <stddef.h>
#include <stdint.h>

#include "auth/consent.h"
#include "rest/request.h"

#define REST_CONSENT_MAX 100000 /* enforced Consents of one tenant */

typedef struct rest_consents rest_consents;

typedef struct rest_consent_set {
    uint32_t tenant;
    uint64_t stamp; /* t of the newest Consent version it was read from (0: none) */
    size_t n;
    const auth_consent *c; /* the enforced ones (auth_consent_read returned 0) */
} rest_consent_set;

/* The server's cache (NULL on failure), and its end (every set must be released). */
rest_consents *rest_consents_new(void);
void rest_consents_free(rest_consents *cs);

/* The enforced Consents of r's tenant as of r's snapshot (rest_snapshot is begun if it
 * is not): 0 and *out, held by r until rest_snapshot_end (an empty set without
 * services), or the store's error / ERR_NOMEM. */
int rest_consent_set_of(rest_req *r, const rest_consent_set **out);

/* Let go of the set r holds (rest_snapshot_end calls it through ctx.consents_release). */
void rest_consent_release(rest_req *r);

/* Whether res, about to be written as a Consent, is one hortus enforces as written:
 * 0 (enforced, or not a patient-privacy Consent in force), or ERR_UNSUPPORTED /
 * ERR_INVALID with msg for a 422. */
int rest_consent_check(const json_val *res, char *msg, size_t msz);

#endif
