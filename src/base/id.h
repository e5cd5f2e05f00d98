/*
 * id.h -- the FHIR id rule (prefix id_): 1 to 64 characters of [A-Za-z0-9-.]. The
 * store keys resources by it and the authorisation layer checks a token's `patient`
 * claim by it, so both ask here.
 */
#ifndef HORTUS_BASE_ID_H
#define HORTUS_BASE_ID_H

#include <stddef.h>

#define ID_MAX 64 /* characters of a FHIR id */

/* 1 when s[0..n) is a FHIR id, else 0 (also for NULL). */
int id_valid(const char *s, size_t n);

#endif
