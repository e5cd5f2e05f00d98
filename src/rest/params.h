/*
 * params.h -- parsing what a request says in its headers and parameters:
 * ETags and preconditions, Prefer, instants (params.c). Pure functions of
 * strings, so each is tested alone (tests/unit/rest.c); the handlers and the
 * write pipeline use only these, so a header is read the same way everywhere.
 *
 *   ETag forms accepted:  W/"3"   "3"   3     (spaces around are ignored)
 *   If-Match:             one ETag ('*' is refused: see params.c)
 *   If-None-Match:        a list of ETags, or *
 */
#ifndef HORTUS_REST_PARAMS_H
#define HORTUS_REST_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"

/* Narrow s[0..*n) to its text without leading and trailing spaces and tabs. */
void rest_trim(const char **s, size_t *n);

/* One ETag (s, n bytes) into its versionId. 0, or ERR_INVALID. */
int rest_etag_parse(const char *s, size_t n, uint64_t *vid);

/* The preconditions of a write, from If-Match and If-None-Match (or a Bundle
 * entry's request.ifMatch / ifNoneMatch). */
typedef struct rest_precond {
    int if_match;          /* 0 absent, 1 versionId in if_match_vid */
    uint64_t if_match_vid;
    int if_none_match;     /* 0 absent, 1 a list (if_none_match_list), 2 '*' */
    const char *if_none_match_list; /* the raw list, valid as long as its header */
} rest_precond;

/* Parse both headers (NULL when absent). 0, or ERR_INVALID with *bad = a static
 * message naming the header and what was expected. */
int rest_precond_parse(const char *if_match, const char *if_none_match, rest_precond *p,
                       const char **bad);

/* 1 when the ETag list `h` (If-None-Match) names vid or is '*'; entries that are
 * no ETag are skipped (reads are lenient: a cache validator never fails a read). */
int rest_etag_list_hits(const char *h, uint64_t vid);

/* Whether a write may go on against the current state of its target: `live` (a
 * current, non-deleted version exists) and its versionId `cur_vid`. 0 to go on,
 * 1 when a precondition fails (412), with a message in msg. */
int rest_precond_check(const rest_precond *p, int live, uint64_t cur_vid, char *msg,
                       size_t msgsz);


/* Prefer: return=... */
typedef enum rest_prefer {
    REST_RETURN_REPRESENTATION = 0,
    REST_RETURN_MINIMAL,
    REST_RETURN_OUTCOME,
} rest_prefer;

/* The value of preference `name` in a Prefer header (RFC 7240: comma- or
 * semicolon-separated name=value, names case-insensitive, values optionally quoted)
 * into out. 1 found, 0 absent, -1 when the value does not fit cap. */
int rest_prefer_get(const char *h, const char *name, char *out, size_t cap);

/* The return preference of a Prefer header (NULL: representation). */
rest_prefer rest_prefer_return(const char *prefer);

/* A _since/_at parameter (FHIR dateTime: a partial date means its start; a
 * time needs a zone) in Unix microseconds; 0 or ERR_INVALID. */
int rest_time_param(const char *s, int64_t *us);

/* application/x-www-form-urlencoded (a POST _search body, the query of If-None-Exist):
 * k=v&k=v with %XX and '+' for a space. fn gets each decoded pair (value "" without
 * '='); a non-zero return stops. 0, 1 (fn stopped), ERR_INVALID (a malformed %-escape),
 * or ERR_NOMEM. Strings in a. */
int rest_form_each(arena *a, const char *s, size_t n,
                   int (*fn)(void *ctx, const char *key, const char *value), void *ctx);

/* Append s to b %-escaped for a query (RFC 3986 unreserved and ':' kept): the inverse of
 * rest_form_each for one key or value. */
void rest_form_put(buf *b, const char *s);

#endif
