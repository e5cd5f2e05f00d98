/*
 * num.h -- parsing the plain numbers of request parameters (prefix num_): digits
 * only, no sign, no spaces, no hex, no exponent, so "_count=+5" or "_count= 5" is
 * an error rather than whatever strtoull would make of it.
 */
#ifndef HORTUS_BASE_NUM_H
#define HORTUS_BASE_NUM_H

#include <stdint.h>

/* s as a decimal integer 0..max into *out: 0, or -1 (NULL, empty, anything but
 * digits, or over max). */
int num_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* The environment variable `name` as a number lo..hi into *out: 0 when it holds one,
 * 1 when it is unset or empty (*out untouched), -1 when it holds anything else -- a
 * knob set to a bad value is refused by its caller, never silently defaulted. */
int num_env_u64(const char *name, uint64_t lo, uint64_t hi, uint64_t *out);

#endif
