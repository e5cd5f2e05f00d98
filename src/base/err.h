/*
 * err.h -- the one error-code enum of hortus.
 *
 * Internal calls return int: 0 on success, one of the negative codes below on
 * failure. Callers unwind with `goto fail` and map codes to HTTP statuses only at
 * the REST boundary (src/rest/). Keep the list short: a code says what *kind* of
 * failure happened; the human-readable detail travels separately (an error
 * message buffer or an OperationOutcome being built).
 */
#ifndef HORTUS_ERR_H
#define HORTUS_ERR_H

enum {
    ERR_OK = 0,
    ERR_NOMEM = -1,       /* allocation failed */
    ERR_INVALID = -2,     /* the caller's input is malformed (client error) */
    ERR_NOTFOUND = -3,    /* no such resource / key / type */
    ERR_GONE = -4,        /* the resource exists but its current version is a deletion */
    ERR_CONFLICT = -5,    /* version conflict (If-Match, concurrent update) */
    ERR_TOOBIG = -6,      /* a documented hard cap was exceeded (size, depth, count) */
    ERR_IO = -7,          /* the storage or the OS failed */
    ERR_UNSUPPORTED = -8, /* valid request for something hortus does not do */
    ERR_LIMIT = -9,       /* a work limit was hit (FHIRPath steps, recursion) */
    ERR_EXISTS = -10,     /* something that must be new already exists */
    ERR_INTERNAL = -11,   /* a bug: an invariant did not hold */
};

/* Static, never-NULL description of an error code ("ok" for 0). */
const char *err_str(int code);

#endif
