/*
 * outcome.h -- OperationOutcome builder (prefix oo_).
 *
 * Every error path of the server answers with an OperationOutcome that says what
 * was wrong and where. This is a small accumulator: issues are added as they are
 * found (validation may find dozens), then the whole resource is written once:
 *
 *   oo o; oo_init(&o, a);
 *   oo_add(&o, OO_ERROR, OO_STRUCTURE, "Unknown element 'fooBar'", "Patient.name[0].fooBar");
 *   if (oo_has_error(&o)) { jw w; jw_init(&w, &b, 0); oo_write(&o, &w); }
 *
 *   {"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"structure",
 *     "diagnostics":"Unknown element 'fooBar'","expression":["Patient.name[0].fooBar"],
 *     "location":["Patient.name[0].fooBar"]}]}
 *
 * Memory: strings given to oo_add are copied into the arena passed to oo_init, so
 * callers may pass temporaries; the oo and everything it holds live until that
 * arena is reset or freed. Allocation failure sets a sticky error (oo_error()),
 * later adds are dropped, and oo_write still writes what it has.
 * At most OO_MAX_ISSUES issues are kept; later ones are counted and reported by
 * oo_write as one final "too-costly"/information issue.
 */
#ifndef HORTUS_FHIR_OUTCOME_H
#define HORTUS_FHIR_OUTCOME_H

#include <stdarg.h>
#include <stddef.h>

#include "base/arena.h"
#include "json/json.h"

#define OO_MAX_ISSUES 500

/* OperationOutcome.issue.severity (http://hl7.org/fhir/issue-severity). */
typedef enum oo_severity {
    OO_FATAL = 1,
    OO_ERROR,
    OO_WARNING,
    OO_INFORMATION,
} oo_severity;

/* OperationOutcome.issue.code (http://hl7.org/fhir/issue-type, R4). */
typedef enum oo_code {
    OO_INVALID = 1,
    OO_STRUCTURE,
    OO_REQUIRED,
    OO_VALUE,
    OO_INVARIANT,
    OO_SECURITY,
    OO_LOGIN,
    OO_UNKNOWN,
    OO_EXPIRED,
    OO_FORBIDDEN,
    OO_SUPPRESSED,
    OO_PROCESSING,
    OO_NOT_SUPPORTED,
    OO_DUPLICATE,
    OO_MULTIPLE_MATCHES,
    OO_NOT_FOUND,
    OO_DELETED,
    OO_TOO_LONG,
    OO_CODE_INVALID,
    OO_EXTENSION,
    OO_TOO_COSTLY,
    OO_BUSINESS_RULE,
    OO_CONFLICT,
    OO_TRANSIENT,
    OO_LOCK_ERROR,
    OO_NO_STORE,
    OO_EXCEPTION,
    OO_TIMEOUT,
    OO_INCOMPLETE,
    OO_THROTTLED,
    OO_INFORMATIONAL,
} oo_code;

typedef struct oo_issue {
    oo_severity severity;
    oo_code code;
    const char *diagnostics; /* arena copy or NULL */
    const char *expression;  /* arena copy (FHIRPath) or NULL */
} oo_issue;

typedef struct oo {
    arena *a;
    oo_issue *issues; /* arena array of n entries (capacity cap) */
    size_t n, cap;
    size_t dropped; /* issues not kept past OO_MAX_ISSUES */
    int err;        /* sticky: 0 or ERR_NOMEM */
} oo;

/* Start an empty outcome whose memory comes from `a`. */
void oo_init(oo *o, arena *a);

/* Add one issue; diagnostics and expression may be NULL. Returns 0, or the sticky
 * error (ERR_NOMEM). Past OO_MAX_ISSUES the issue is only counted (returns 0). */
int oo_add(oo *o, oo_severity sev, oo_code code, const char *diagnostics, const char *expression);

/* As oo_add with printf-style diagnostics (truncated at 1 KiB). */
int oo_addf(oo *o, oo_severity sev, oo_code code, const char *expression, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Issues added (including dropped ones past the cap). */
size_t oo_count(const oo *o);

/* 1 when some issue has severity fatal or error. */
int oo_has_error(const oo *o);

/* The sticky error: 0 or ERR_NOMEM. */
int oo_error(const oo *o);

/* The i-th kept issue (i < o->n), or NULL. Valid while the arena lives. */
const oo_issue *oo_get(const oo *o, size_t i);

/* Write the whole OperationOutcome resource as one JSON value (an object) at the
 * writer's current position. With no issue at all it writes one information
 * issue "informational" ("All OK"), because OperationOutcome.issue is 1..*. */
void oo_write(const oo *o, jw *w);

/* An OperationOutcome of exactly one issue at w's position, with no oo and no
 * arena (Bundle entries, writers without a request). */
void oo_write_one(jw *w, oo_severity sev, oo_code code, const char *diagnostics,
                  const char *expression);

/* Convenience: serialise into b (minified or pretty). Returns b->err. */
int oo_to_buf(const oo *o, buf *b, int pretty);

/* "error", "invalid", ... : static strings; "unknown" for an out-of-range value. */
const char *oo_severity_str(oo_severity sev);
const char *oo_code_str(oo_code code);

/* The issue code that best describes an internal error code (ERR_NOTFOUND ->
 * OO_NOT_FOUND, ERR_CONFLICT -> OO_CONFLICT, ERR_TOOBIG -> OO_TOO_COSTLY, ...). */
oo_code oo_code_for_err(int err);

#endif
