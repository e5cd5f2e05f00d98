/*
 * id.c -- the FHIR id rule (id.h).
 */
#include "base/id.h"

int id_valid(const char *s, size_t n)
{
    if (!s || n == 0 || n > ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}
