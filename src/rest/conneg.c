/*
 * conneg.c -- content negotiation: hortus speaks FHIR JSON only.
 *
 * Responses are always application/fhir+json. A request may say what it wants
 * in `_format` (which wins, per the FHIR spec) or in Accept; it is refused with
 * 406 only when it accepts nothing JSON-like. Request bodies must be
 * application/fhir+json or application/json (clients send both), optionally with
 * charset=utf-8 and fhirVersion parameters; anything else is 415.
 *
 * Media-type parsing is deliberately small: split on ',' then ';', trim
 * spaces, compare case-insensitively, honour q=0 as "not acceptable". A
 * fhirVersion parameter other than 4.0 (R4) is not acceptable either (406 in
 * Accept, 415 in Content-Type), as the FHIR version negotiation rules ask.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "rest/conneg.h"
#include "rest/params.h"

/* Media types (and _format shorthands) that mean JSON to us. In a query string
 * an unescaped '+' arrives as ' ', so "application/fhir json" is accepted too. */
static const char *const json_types[] = {
    "application/fhir+json", "application/json", "application/json+fhir", "text/json",
    "application/fhir json", "application/json fhir", "json", NULL,
};

static int is_json_type(const char *s, size_t n)
{
    for (int i = 0; json_types[i]; i++)
        if (strlen(json_types[i]) == n && !strncasecmp(s, json_types[i], n))
            return 1;
    return 0;
}

/* q parameter value of one media range parameter list: 0 when "q=0", "q=0.0"...,
 * 1 otherwise. */
static int q_nonzero(const char *params, size_t n)
{
    const char *p = params, *end = params + n;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pe = semi ? semi : end;
        const char *s = p;
        size_t sn = (size_t)(pe - p);
        rest_trim(&s, &sn);
        if (sn >= 2 && (s[0] == 'q' || s[0] == 'Q') && s[1] == '=') {
            int nonzero = 0;
            for (size_t i = 2; i < sn; i++)
                if (s[i] >= '1' && s[i] <= '9')
                    nonzero = 1;
            return nonzero;
        }
        p = semi ? semi + 1 : end;
    }
    return 1;
}

/* 1 when a parameter list (after the media type) has no fhirVersion, or one
 * naming R4 ("4.0" or "4.0.x"); 0 for any other FHIR version. */
static int fhir_version_ok(const char *params, size_t n)
{
    const char *p = params, *end = params + n;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pe = semi ? semi : end;
        const char *s = p;
        size_t sn = (size_t)(pe - p);
        rest_trim(&s, &sn);
        if (sn > 12 && !strncasecmp(s, "fhirVersion=", 12)) {
            const char *v = s + 12;
            size_t vn = sn - 12;
            if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
                v++;
                vn -= 2;
            }
            return (vn == 3 && !memcmp(v, "4.0", 3)) || (vn > 4 && !memcmp(v, "4.0.", 4));
        }
        p = semi ? semi + 1 : end;
    }
    return 1;
}

int rest_conneg_accept(const char *format_param, const char *accept, char *msg, size_t msgsz)
{
    if (format_param && *format_param) {
        if (is_json_type(format_param, strlen(format_param)))
            return 0;
        snprintf(msg, msgsz,
                 "_format '%.80s' is not supported: this server produces FHIR JSON only "
                 "(_format=json or application/fhir+json)",
                 format_param);
        return ERR_UNSUPPORTED;
    }
    if (!accept)
        return 0;
    const char *p = accept;
    int any = 0;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *semi = memchr(p, ';', (size_t)(e - p));
        const char *te = semi ? semi : e;
        const char *t = p;
        size_t tn = (size_t)(te - p);
        rest_trim(&t, &tn);
        if (tn) {
            any = 1;
            int ok = is_json_type(t, tn) || (tn == 3 && !memcmp(t, "*/*", 3)) ||
                     (tn == 13 && !strncasecmp(t, "application/*", 13));
            if (ok && (!semi || (q_nonzero(semi + 1, (size_t)(e - semi - 1)) &&
                                 fhir_version_ok(semi + 1, (size_t)(e - semi - 1)))))
                return 0;
        }
        p = comma ? comma + 1 : e;
    }
    if (!any)
        return 0; /* "Accept:" with nothing in it means anything */
    snprintf(msg, msgsz,
             "Accept '%.120s' is not supported: this server produces FHIR JSON only "
             "(application/fhir+json)",
             accept);
    return ERR_UNSUPPORTED;
}

int rest_conneg_content_type(const char *ct, int json_patch, char *msg, size_t msgsz)
{
    if (!ct || !*ct) {
        snprintf(msg, msgsz,
                 "missing Content-Type: send the body as application/fhir+json");
        return ERR_UNSUPPORTED;
    }
    const char *semi = strchr(ct, ';');
    const char *t = ct;
    size_t tn = semi ? (size_t)(semi - ct) : strlen(ct);
    rest_trim(&t, &tn);
    int patch_type = json_patch && tn == 27 && !strncasecmp(t, "application/json-patch+json", 27);
    if (!patch_type && (!is_json_type(t, tn) || (tn == 4 && !strncasecmp(t, "json", 4)))) {
        snprintf(msg, msgsz,
                 "Content-Type '%.120s' is not supported: this server accepts FHIR JSON "
                 "only (application/fhir+json or application/json)",
                 ct);
        return ERR_UNSUPPORTED;
    }
    if (semi && !fhir_version_ok(semi + 1, strlen(semi + 1))) {
        snprintf(msg, msgsz, "Content-Type '%.120s': this server speaks FHIR R4 (fhirVersion=4.0)",
                 ct);
        return ERR_UNSUPPORTED;
    }
    /* parameters: charset must be UTF-8 when given; others are ignored */
    const char *p = semi;
    while (p && *p) {
        p++;
        const char *next = strchr(p, ';');
        const char *s = p;
        size_t sn = next ? (size_t)(next - p) : strlen(p);
        rest_trim(&s, &sn);
        if (sn > 8 && !strncasecmp(s, "charset=", 8)) {
            const char *v = s + 8;
            size_t vn = sn - 8;
            if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
                v++;
                vn -= 2;
            }
            if (!((vn == 5 && !strncasecmp(v, "utf-8", 5)) ||
                  (vn == 4 && !strncasecmp(v, "utf8", 4)))) {
                snprintf(msg, msgsz,
                         "charset '%.*s' is not supported: FHIR JSON bodies are UTF-8",
                         (int)(vn > 40 ? 40 : vn), v);
                return ERR_UNSUPPORTED;
            }
        }
        p = next;
    }
    return 0;
}

int rest_conneg_form(const char *ct, char *msg, size_t msgsz)
{
    const char *t = ct ? ct : "";
    size_t tn = strcspn(t, ";");
    rest_trim(&t, &tn);
    if (tn == 33 && !strncasecmp(t, "application/x-www-form-urlencoded", 33))
        return 0;
    snprintf(msg, msgsz,
             "Content-Type '%.120s': a search posted to [type]/_search is a form "
             "(application/x-www-form-urlencoded)",
             ct ? ct : "");
    return ERR_UNSUPPORTED;
}

int rest_pretty(const char *v)
{
    return v && !strcasecmp(v, "true");
}
