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

#endif
