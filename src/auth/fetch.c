/*
 * fetch.c -- the one HTTP client of hortus: libcurl's easy interface, for the two
 * exchanges with an identity provider (a JWKS from its jwks_uri, an RFC 7662
 * introspection POST).
 *
 *   auth_http_fetch(url, form?, userpwd?) --> curl_easy_perform
 *        http/https only, no redirects, AUTH_FETCH_TIMEOUT_S, NOSIGNAL (threads)
 *        body capped at AUTH_MAX_FETCH_BYTES --> 0 + body | ERR_IO + message
 *
 * One easy handle per call: both exchanges are rare (the JWKS at most once per
 * AUTH_JWKS_REFETCH_S, an introspection once per token and cache lifetime), so a
 * connection pool would buy nothing and cost shared state.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/err.h"

int auth_http_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : ERR_INTERNAL;
}

typedef struct sink {
    char *p;
    size_t n, cap;
    int too_big, nomem;
} sink;

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
    sink *s = ud;
    size_t n = size * nmemb;
    if (s->n + n > AUTH_MAX_FETCH_BYTES) {
        s->too_big = 1;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    if (s->n + n + 1 > s->cap) {
        size_t cap = (s->n + n + 1) * 2;
        char *p = realloc(s->p, cap);
        if (!p) {
            s->nomem = 1;
            return 0;
        }
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->n, data, n);
    s->n += n;
    s->p[s->n] = 0;
    return n;
}

int auth_http_fetch(const char *url, const char *form, const char *userpwd, char **body,
                    size_t *len, char *msg, size_t msgsz)
{
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
        snprintf(msg, msgsz, "%.200s is not an http:// or https:// URL", url);
        return ERR_IO;
    }
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(msg, msgsz, "out of memory");
        return ERR_NOMEM;
    }
    sink s = {0};
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)AUTH_FETCH_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)AUTH_FETCH_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "hortus");
    struct curl_slist *hdr = curl_slist_append(NULL, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    if (form) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(form));
    }
    if (userpwd) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, userpwd);
    }
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdr);
    int rc = 0;
    if (s.nomem) {
        snprintf(msg, msgsz, "out of memory");
        rc = ERR_NOMEM;
    } else if (s.too_big) {
        snprintf(msg, msgsz, "%.200s answered more than %u bytes", url, AUTH_MAX_FETCH_BYTES);
        rc = ERR_IO;
    } else if (cc != CURLE_OK) {
        snprintf(msg, msgsz, "cannot reach %.200s: %s", url,
                 cerr[0] ? cerr : curl_easy_strerror(cc));
        rc = ERR_IO;
    } else if (status < 200 || status > 299) {
        snprintf(msg, msgsz, "%.200s answered HTTP %ld", url, status);
        rc = ERR_IO;
    }
    if (rc) {
        free(s.p);
        return rc;
    }
    if (!s.p && !(s.p = calloc(1, 1))) {
        snprintf(msg, msgsz, "out of memory");
        return ERR_NOMEM;
    }
    *body = s.p;
    *len = s.n;
    return 0;
}
