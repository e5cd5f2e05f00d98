/*
 * page.h -- one page of a searchset Bundle, shared by the search interaction
 * (search.c) and the operations that answer with search pages ($everything):
 * the resources of one or more engine results in order, the resources includes
 * add after them, the links, and the answers to a failed search.
 */
#ifndef HORTUS_REST_PAGE_H
#define HORTUS_REST_PAGE_H

#include "rest/request.h"
#include "search/search.h"
#include "store/store.h"

typedef struct rest_page {
    store_version *v; /* the resources of the page, in order: matches, then included */
    size_t n, cap;
    size_t nmatch;    /* v[nmatch..n) are the resources includes added */
    uint64_t total;
    int has_total, more;
    uint64_t used;    /* matches this page consumed (the next page's offset adds it) */
    size_t bytes;
    const char *warning; /* reported in an outcome entry (rest_page_note_reindex), or NULL */
} rest_page;

/* When q uses a custom search parameter whose reindex is not complete (its answer may
 * miss resources stored before it was defined), say so in pg->warning. */
void rest_page_note_reindex(rest_req *r, store_reader *rd, const srch_query *q, rest_page *pg);

/* Add the rows of one result (resources of `type`) to the page. 0; 1 when the page
 * is full (REST_MAX_RESPONSE bytes; it holds at least one entry); -1 out of memory. */
int rest_page_add(rest_req *r, store_reader *rd, const char *type, const srch_result *res,
                  rest_page *pg);

/* Whether an included resource stays on the page (NULL: every one). */
typedef int (*rest_page_keep)(void *ctx, store_reader *rd, const store_version *v);

/* Append what q's _include/_revinclude add to the page's matches (pg->nmatch is set
 * to the matches). 0, or the engine's error (*e). */
int rest_page_includes(rest_req *r, store_reader *rd, const srch_query *q, rest_page *pg,
                       rest_page_keep keep, void *ctx, srch_error *e);

/* The base of this request's links: [base]/Type, [base]/Comp/id/Type, [base],
 * [base]/Type/id/$op ... (type: the search's type where the route has none). */
void rest_page_path(rest_req *r, const char *type, buf *b);

/* A link: path?applied&_page_t=..&_page_offset=.. (no cursor when page_t is 0), in
 * the request's arena ("" when out of memory). extra: more cursor pairs or NULL. */
const char *rest_page_link(rest_req *r, const char *type, const buf *applied, uint64_t page_t,
                           uint64_t offset, const char *extra);

/* Send the page as a searchset Bundle. self, next, previous: the links (next and
 * previous NULL when none); q: the search whose total, count and parameters left
 * out (q->ignored) the Bundle reports. */
int rest_page_send(rest_req *r, const srch_query *q, const rest_page *pg, const char *self,
                   const char *next, const char *previous);

/* The answer to an engine error rc (*e): 400 too costly, 400/410 as the engine says,
 * 503 out of memory, 500 otherwise. */
int rest_search_failed(rest_req *r, int rc, const srch_error *e);

/* The resource types of a _type value "A,B" (each once as written, in order) into *out
 * (in a). 0; ERR_INVALID with msg filled (a name that is not a resource type, or none);
 * ERR_NOMEM. */
int rest_parse_types(arena *a, const char *s, const char ***out, size_t *n, char *msg,
                     size_t cap);

/* Prefer: handling=lenient. */
int rest_is_lenient(rest_req *r);

#endif
