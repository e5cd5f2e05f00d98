/*
 * num.c -- plain decimal numbers of request parameters (see num.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "base/num.h"

int num_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

int num_env_u64(const char *name, uint64_t lo, uint64_t hi, uint64_t *out)
{
    const char *e = getenv(name);
    if (!e || !*e)
        return 1;
    uint64_t v;
    if (num_parse_u64(e, hi, &v) || v < lo)
        return -1;
    *out = v;
    return 0;
}
