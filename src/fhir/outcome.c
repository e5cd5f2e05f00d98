/*
 * outcome.c -- OperationOutcome accumulator and writer.
 *
 * Issues live in one arena array that doubles when full (arena_realloc), so adding
 * is amortised O(1) and a request's outcome disappears with its arena. Strings are
 * copied at add time because callers usually format them in stack buffers.
 */
#include "fhir/outcome.h"

#include <stdio.h>
#include <string.h>

#include "base/err.h"

static const char *const severity_names[] = {
    [OO_FATAL] = "fatal",
    [OO_ERROR] = "error",
    [OO_WARNING] = "warning",
    [OO_INFORMATION] = "information",
};

static const char *const code_names[] = {
    [OO_INVALID] = "invalid",
    [OO_STRUCTURE] = "structure",
    [OO_REQUIRED] = "required",
    [OO_VALUE] = "value",
    [OO_INVARIANT] = "invariant",
    [OO_SECURITY] = "security",
    [OO_LOGIN] = "login",
    [OO_UNKNOWN] = "unknown",
    [OO_EXPIRED] = "expired",
    [OO_FORBIDDEN] = "forbidden",
    [OO_SUPPRESSED] = "suppressed",
    [OO_PROCESSING] = "processing",
    [OO_NOT_SUPPORTED] = "not-supported",
    [OO_DUPLICATE] = "duplicate",
    [OO_MULTIPLE_MATCHES] = "multiple-matches",
    [OO_NOT_FOUND] = "not-found",
    [OO_DELETED] = "deleted",
    [OO_TOO_LONG] = "too-long",
    [OO_CODE_INVALID] = "code-invalid",
    [OO_EXTENSION] = "extension",
    [OO_TOO_COSTLY] = "too-costly",
    [OO_BUSINESS_RULE] = "business-rule",
    [OO_CONFLICT] = "conflict",
    [OO_TRANSIENT] = "transient",
    [OO_LOCK_ERROR] = "lock-error",
    [OO_NO_STORE] = "no-store",
    [OO_EXCEPTION] = "exception",
    [OO_TIMEOUT] = "timeout",
    [OO_INCOMPLETE] = "incomplete",
    [OO_THROTTLED] = "throttled",
    [OO_INFORMATIONAL] = "informational",
};

const char *oo_severity_str(oo_severity sev)
{
    if ((int)sev <= 0 || (size_t)sev >= sizeof severity_names / sizeof severity_names[0])
        return "unknown";
    return severity_names[sev];
}

const char *oo_code_str(oo_code code)
{
    if ((int)code <= 0 || (size_t)code >= sizeof code_names / sizeof code_names[0])
        return "unknown";
    return code_names[code];
}

oo_code oo_code_for_err(int err)
{
    switch (err) {
    case ERR_INVALID:
        return OO_INVALID;
    case ERR_NOTFOUND:
        return OO_NOT_FOUND;
    case ERR_GONE:
        return OO_DELETED;
    case ERR_CONFLICT:
        return OO_CONFLICT;
    case ERR_TOOBIG:
        return OO_TOO_COSTLY;
    case ERR_UNSUPPORTED:
        return OO_NOT_SUPPORTED;
    case ERR_LIMIT:
        return OO_TOO_COSTLY;
    case ERR_EXISTS:
        return OO_DUPLICATE;
    case ERR_NOMEM:
        return OO_TRANSIENT;
    case ERR_IO:
        return OO_EXCEPTION;
    default:
        return OO_EXCEPTION;
    }
}

void oo_init(oo *o, arena *a)
{
    memset(o, 0, sizeof *o);
    o->a = a;
}

int oo_add(oo *o, oo_severity sev, oo_code code, const char *diagnostics, const char *expression)
{
    if (o->err)
        return o->err;
    if (o->n >= OO_MAX_ISSUES) {
        o->dropped++;
        return 0;
    }
    if (o->n == o->cap) {
        size_t ncap = o->cap ? o->cap * 2 : 8;
        oo_issue *p = arena_realloc(o->a, o->issues, o->cap * sizeof *p, ncap * sizeof *p);
        if (!p) {
            o->err = ERR_NOMEM;
            return o->err;
        }
        o->issues = p;
        o->cap = ncap;
    }
    oo_issue *is = &o->issues[o->n];
    is->severity = sev;
    is->code = code;
    is->diagnostics = NULL;
    is->expression = NULL;
    if (diagnostics) {
        is->diagnostics = arena_strndup(o->a, diagnostics, strlen(diagnostics));
        if (!is->diagnostics)
            goto nomem;
    }
    if (expression) {
        is->expression = arena_strndup(o->a, expression, strlen(expression));
        if (!is->expression)
            goto nomem;
    }
    o->n++;
    return 0;
nomem:
    o->err = ERR_NOMEM;
    return o->err;
}

int oo_addf(oo *o, oo_severity sev, oo_code code, const char *expression, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return oo_add(o, sev, code, msg, expression);
}

size_t oo_count(const oo *o)
{
    return o->n + o->dropped;
}

int oo_has_error(const oo *o)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->issues[i].severity == OO_FATAL || o->issues[i].severity == OO_ERROR)
            return 1;
    return 0;
}

int oo_error(const oo *o)
{
    return o->err;
}

const oo_issue *oo_get(const oo *o, size_t i)
{
    return i < o->n ? &o->issues[i] : NULL;
}

static void write_issue(jw *w, oo_severity sev, oo_code code, const char *diagnostics,
                        const char *expression)
{
    jw_obj(w);
    jw_key(w, "severity");
    jw_str(w, oo_severity_str(sev));
    jw_key(w, "code");
    jw_str(w, oo_code_str(code));
    if (diagnostics && diagnostics[0]) {
        jw_key(w, "diagnostics");
        jw_str(w, diagnostics);
    }
    if (expression && expression[0]) {
        /* expression is the R4 FHIRPath form; location (deprecated in R4, still read
         * by older clients) carries the same path */
        jw_key(w, "location");
        jw_arr(w);
        jw_str(w, expression);
        jw_end(w);
        jw_key(w, "expression");
        jw_arr(w);
        jw_str(w, expression);
        jw_end(w);
    }
    jw_end(w);
}

void oo_write(const oo *o, jw *w)
{
    jw_obj(w);
    jw_key(w, "resourceType");
    jw_str(w, "OperationOutcome");
    jw_key(w, "issue");
    jw_arr(w);
    for (size_t i = 0; i < o->n; i++) {
        const oo_issue *is = &o->issues[i];
        write_issue(w, is->severity, is->code, is->diagnostics, is->expression);
    }
    if (o->dropped) {
        char msg[128];
        snprintf(msg, sizeof msg, "%zu more issues were found but not listed", o->dropped);
        write_issue(w, OO_INFORMATION, OO_TOO_COSTLY, msg, NULL);
    } else if (o->n == 0) {
        write_issue(w, OO_INFORMATION, OO_INFORMATIONAL, "All OK", NULL);
    }
    jw_end(w);
    jw_end(w);
}

void oo_write_one(jw *w, oo_severity sev, oo_code code, const char *diagnostics,
                  const char *expression)
{
    jw_obj(w);
    jw_key(w, "resourceType");
    jw_str(w, "OperationOutcome");
    jw_key(w, "issue");
    jw_arr(w);
    write_issue(w, sev, code, diagnostics, expression);
    jw_end(w);
    jw_end(w);
}

int oo_to_buf(const oo *o, buf *b, int pretty)
{
    jw w;
    jw_init(&w, b, pretty);
    oo_write(o, &w);
    return b->err;
}
