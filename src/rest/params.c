/*
 * params.c -- ETags, preconditions, Prefer and instants, parsed once for all
 * handlers (see params.h for the forms accepted).
 *
 * Preconditions follow RFC 9110 section 13 on a FHIR resource, whose "current
 * representation" is its newest live version:
 *   If-Match: W/"n"      go on only when version n is current
 *   If-Match: *          refused (400): a version-aware write names its version, and
 *                        "any version" would let a stale client overwrite blindly
 *   If-None-Match: *     go on only when none exists (create-only PUT)
 *   If-None-Match: list  go on only when the current version is not listed
 * A failed precondition is a 412; a malformed header is a 400 (never ignored).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "base/time.h"
#include "rest/params.h"
#include "rest/route.h"

void rest_trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

int rest_etag_parse(const char *s, size_t n, uint64_t *vid)
{
    rest_trim(&s, &n);
    if (n >= 2 && s[0] == 'W' && s[1] == '/') {
        s += 2;
        n -= 2;
    }
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    return rest_vid_parse(s, n, vid);
}

/* 1 when the header is '*' alone (spaces around allowed). */
static int is_star(const char *h)
{
    size_t n = strlen(h);
    rest_trim(&h, &n);
    return n == 1 && h[0] == '*';
}

/* Each comma-separated entry of an ETag list must be an ETag. */
static int etag_list_valid(const char *h)
{
    int any = 0;
    for (const char *p = h;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        uint64_t v;
        if (rest_etag_parse(p, n, &v))
            return 0;
        any = 1;
        if (!c)
            break;
        p = c + 1;
    }
    return any;
}

int rest_precond_parse(const char *if_match, const char *if_none_match, rest_precond *p,
                       const char **bad)
{
    memset(p, 0, sizeof *p);
    *bad = NULL;
    if (if_match) {
        if (is_star(if_match)) {
            *bad = "If-Match: * is not supported: name the version the write expects "
                   "(If-Match: W/\"versionId\")";
            return ERR_INVALID;
        }
        if (rest_etag_parse(if_match, strlen(if_match), &p->if_match_vid)) {
            *bad = "malformed If-Match: expected W/\"versionId\"";
            return ERR_INVALID;
        }
        p->if_match = 1;
    }
    if (if_none_match) {
        if (is_star(if_none_match)) {
            p->if_none_match = 2;
        } else if (etag_list_valid(if_none_match)) {
            p->if_none_match = 1;
            p->if_none_match_list = if_none_match;
        } else {
            *bad = "malformed If-None-Match: expected * or a list of W/\"versionId\"";
            return ERR_INVALID;
        }
    }
    return 0;
}

int rest_etag_list_hits(const char *h, uint64_t vid)
{
    for (const char *p = h;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        const char *s = p;
        size_t k = n;
        rest_trim(&s, &k);
        uint64_t v;
        if ((k == 1 && s[0] == '*') || (rest_etag_parse(s, k, &v) == 0 && v == vid))
            return 1;
        if (!c)
            return 0;
        p = c + 1;
    }
}

int rest_precond_check(const rest_precond *p, int live, uint64_t cur_vid, char *msg,
                       size_t msgsz)
{
    if (p->if_match == 1 && (!live || cur_vid != p->if_match_vid)) {
        if (live)
            snprintf(msg, msgsz,
                     "version conflict: If-Match asks for version %llu, the current version "
                     "is %llu",
                     (unsigned long long)p->if_match_vid, (unsigned long long)cur_vid);
        else
            snprintf(msg, msgsz,
                     "version conflict: If-Match asks for version %llu, and there is no "
                     "current version",
                     (unsigned long long)p->if_match_vid);
        return 1;
    }
    if (p->if_none_match == 2 && live) {
        snprintf(msg, msgsz,
                 "If-None-Match: * allows only a create, and the resource exists (version "
                 "%llu)",
                 (unsigned long long)cur_vid);
        return 1;
    }
    if (p->if_none_match == 1 && live && rest_etag_list_hits(p->if_none_match_list, cur_vid)) {
        snprintf(msg, msgsz, "If-None-Match names the current version %llu",
                 (unsigned long long)cur_vid);
        return 1;
    }
    return 0;
}

int rest_prefer_get(const char *h, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = h; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',' || *p == ';')
            p++;
        const char *end = p + strcspn(p, ",;");
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *k = p;
        size_t kn = (size_t)((eq ? eq : end) - p);
        rest_trim(&k, &kn);
        if (kn == nl && !strncasecmp(k, name, nl)) {
            const char *v = eq ? eq + 1 : end;
            size_t vn = (size_t)(end - v);
            rest_trim(&v, &vn);
            if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
                v++;
                vn -= 2;
            }
            if (vn >= cap)
                return -1;
            memcpy(out, v, vn);
            out[vn] = 0;
            return 1;
        }
        p = end;
    }
    return 0;
}

rest_prefer rest_prefer_return(const char *p)
{
    char v[32];
    if (!p || rest_prefer_get(p, "return", v, sizeof v) != 1)
        return REST_RETURN_REPRESENTATION;
    if (!strcmp(v, "minimal"))
        return REST_RETURN_MINIMAL;
    if (!strcmp(v, "OperationOutcome"))
        return REST_RETURN_OUTCOME;
    return REST_RETURN_REPRESENTATION;
}

int rest_time_param(const char *s, int64_t *us)
{
    /* An unescaped '+' of a zone offset arrives as ' ' after query decoding. */
    char tmp[64];
    size_t n = strlen(s);
    if (n >= sizeof tmp)
        return ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        tmp[i] = s[i] == ' ' ? '+' : s[i];
    ftime t;
    int64_t hi;
    if (ftime_parse_datetime(tmp, n, &t) || ftime_range(&t, us, &hi))
        return ERR_INVALID;
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)(ch | 32);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

int rest_form_each(arena *a, const char *body, size_t len,
                   int (*fn)(void *ctx, const char *key, const char *value), void *ctx)
{
    char *s = arena_alloc(a, len + 1);
    if (!s)
        return ERR_NOMEM;
    size_t o = 0;
    char *key = s, *val = NULL;
    for (size_t i = 0; i <= len; i++) {
        char ch = i < len ? body[i] : '&';
        if (ch == '&') {
            s[o++] = 0;
            if (*key && fn(ctx, key, val ? val : ""))
                return 1;
            key = s + o;
            val = NULL;
        } else if (ch == '=' && !val) {
            s[o++] = 0;
            val = s + o;
        } else if (ch == '+') {
            s[o++] = ' ';
        } else if (ch == '%') {
            int h = i + 2 < len ? hexval(body[i + 1]) : -1;
            int l = i + 2 < len ? hexval(body[i + 2]) : -1;
            if (h < 0 || l < 0)
                return ERR_INVALID;
            s[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            s[o++] = ch;
        }
    }
    return 0;
}

void rest_form_put(buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~' || *p == ':') {
            buf_putc(b, (char)*p);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[*p >> 4]);
            buf_putc(b, hex[*p & 15]);
        }
    }
}
