/*
 * bundle.c -- the Bundle skeleton writer (see bundle.h for the shape).
 */
#include "fhir/bundle.h"

void bundle_begin(jw *w, const char *type)
{
    jw_obj(w);
    jw_key(w, "resourceType");
    jw_str(w, "Bundle");
    jw_key(w, "type");
    jw_str(w, type);
}

void bundle_total(jw *w, uint64_t total)
{
    jw_key(w, "total");
    jw_int(w, (int64_t)total);
}

void bundle_links_begin(jw *w)
{
    jw_key(w, "link");
    jw_arr(w);
}

void bundle_link(jw *w, const char *relation, const char *url)
{
    jw_obj(w);
    jw_key(w, "relation");
    jw_str(w, relation);
    jw_key(w, "url");
    jw_str(w, url);
    jw_end(w);
}

void bundle_links_end(jw *w)
{
    jw_end(w);
}

void bundle_entries_begin(jw *w)
{
    jw_key(w, "entry");
    jw_arr(w);
}

void bundle_entry_begin(jw *w, const char *full_url)
{
    jw_obj(w);
    if (full_url) {
        jw_key(w, "fullUrl");
        jw_str(w, full_url);
    }
}

void bundle_entry_search_mode(jw *w, const char *mode)
{
    jw_key(w, "search");
    jw_obj(w);
    jw_key(w, "mode");
    jw_str(w, mode);
    jw_end(w);
}

void bundle_entry_end(jw *w)
{
    jw_end(w);
}

void bundle_entries_end(jw *w)
{
    jw_end(w);
}

void bundle_end(jw *w)
{
    jw_end(w);
}

const char *bundle_status_text(unsigned s)
{
    switch (s) {
    case 200: return "200 OK";
    case 201: return "201 Created";
    case 204: return "204 No Content";
    case 304: return "304 Not Modified";
    case 400: return "400 Bad Request";
    case 401: return "401 Unauthorized";
    case 403: return "403 Forbidden";
    case 404: return "404 Not Found";
    case 405: return "405 Method Not Allowed";
    case 409: return "409 Conflict";
    case 410: return "410 Gone";
    case 412: return "412 Precondition Failed";
    case 413: return "413 Content Too Large";
    case 422: return "422 Unprocessable Entity";
    case 501: return "501 Not Implemented";
    case 503: return "503 Service Unavailable";
    default: return "500 Internal Server Error";
    }
}
