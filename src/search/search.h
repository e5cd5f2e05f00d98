/*
 * search.h -- the query engine (prefix srch_): parse a FHIR search into clauses,
 * plan each clause as range scans over the search index, execute, sort, page.
 * docs/SEARCH.md says how and why; the index layout is docs/STORAGE.md section 4.
 *
 *   "code=http://loinc.org|8867-4&date=ge2024"
 *      --srch_parse-->  query {clause code: [T "8867-4\0http://loinc.org\0"],
 *                              clause date: [ge 2024-01-01T00:00 .. 2024-12-31T23:59]}
 *      --srch_run---->  each clause: union of its values' scans (sorted rn sets)
 *                       query: intersection of its clauses, smallest first
 *                       then sort (_sort), count, and one page of rn -> id
 *
 * Reads only through the store interface (store_scan / store_get), under the
 * caller's snapshot. Every query is bounded: SRCH_MAX_SCAN index entries read,
 * SRCH_MAX_MATCHES resources in one set, SRCH_MAX_SORT sorted; over a budget the
 * query fails with ERR_LIMIT and a message naming it (a 4xx "too costly").
 */
#ifndef HORTUS_SEARCH_H
#define HORTUS_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "fhir/model.h"
#include "index/index.h"
#include "store/store.h"

#define SRCH_MAX_SCAN 20000000u    /* index entries one query may read */
#define SRCH_MAX_MATCHES 2000000u  /* resources in one intermediate set */
#define SRCH_MAX_SORT 200000u      /* matches a _sort may order */
#define SRCH_MAX_OR 1000u          /* comma-separated values of one parameter */
#define SRCH_MAX_CLAUSES 100u      /* search parameters (AND) in one query */
#define SRCH_MAX_SORT_KEYS 8u      /* keys of one _sort */
#define SRCH_FILTER_MAX 4096u      /* candidates up to which range clauses are checked one by one */
#define SRCH_DEFAULT_COUNT 50u     /* _count when absent */
#define SRCH_MAX_COUNT 1000u       /* _count upper bound */
#define SRCH_PAGE_CHANGES_MAX 4096u /* changes to a type since _page_t a later page re-checks */
#define SRCH_MAX_LINK_DEPTH 6u     /* links (chains, _has) nested in one parameter */
#define SRCH_MAX_INCLUDES 16u      /* _include and _revinclude parameters of one query */
#define SRCH_MAX_INCLUDED 5000u    /* resources the includes add to one page */
#define SRCH_MAX_LINK_MATCHES 100000u /* matches of the query behind one chain or _has */

/* Date, number and quantity comparators. */
typedef enum srch_prefix {
    SP_EQ = 0, SP_NE, SP_GT, SP_LT, SP_GE, SP_LE, SP_SA, SP_EB, SP_AP
} srch_prefix;

/* Modifiers. */
typedef enum srch_modifier {
    SM_NONE = 0, SM_EXACT, SM_CONTAINS, SM_TEXT, SM_NOT, SM_MISSING, SM_BELOW, SM_ABOVE,
    SM_IDENTIFIER, SM_TYPE /* reference :[type] */, SM_OF_TYPE
} srch_modifier;

/* One value of a clause, ready to scan. */
typedef struct srch_value {
    uint32_t sph;        /* the parameter scanned when not the clause's (compartments) */
    uint8_t kind;        /* entry kind to scan */
    const uint8_t *key;  /* value bytes (a prefix of the entries' values) */
    size_t key_len;
    int whole;           /* 1: key is a whole value; 0: a prefix (string default, :below) */
    srch_prefix prefix;  /* dates, numbers, quantities */
    int64_t lo, hi;      /* dates: query interval (µs) */
    double dlo, dhi, d;  /* numbers, quantities: precision range and the value */
    const char *system;  /* token "system|" (any code) */
    const char *needle;  /* :contains: folded substring */
    size_t needle_len;
    int above;           /* uri :above: match entries that are prefixes of key */
    const struct srch_value *sub; /* composite: one value per component, keys as parts */
    size_t nsub;
    double glat, glon, gdist; /* near: the point (degrees) and the distance (metres) */
} srch_value;

#define SRCH_NEAR_DEFAULT_M 1000.0 /* near without a distance: within 1 km */
#define SRCH_EARTH_RADIUS_M 6371008.8 /* mean radius (IUGG) for great-circle distances */

/* The great-circle distance in metres between two points given in degrees (haversine). */
double srch_distance_m(double lat1, double lon1, double lat2, double lon2);

struct srch_query;

/* A clause that crosses a reference: its values come from another query, run first. */
typedef enum srch_link {
    SL_NONE = 0,
    SL_CHAIN, /* subject:Patient.name=x: the references to the matches of Patient?name=x */
    SL_HAS,   /* _has:Observation:patient:code=x: the resources the matches of
                 Observation?code=x refer to through `patient` */
    SL_EXCEPT /* not a parameter: the resources of this type that its query matches are
                 left out (srch_add_except; authorisation's consent denials) */
} srch_link;

typedef struct srch_clause {
    const fhir_search_param *sp; /* SL_HAS: the type's _id */
    uint32_t sph;
    srch_modifier mod;
    int missing;         /* :missing value */
    srch_value *v;       /* OR */
    size_t nv;
    srch_link link;
    const struct srch_query *sub; /* the query of the other type (link) */
    uint32_t has_sph;    /* SL_HAS: the other type's reference parameter */
    const fhir_search_param *has_sp;
} srch_clause;

typedef struct srch_sort {
    const fhir_search_param *sp; /* NULL: _id */
    uint32_t sph;
    int desc;
} srch_sort;

/* _include=Observation:subject[:Patient], _revinclude=Provenance:target, with :iterate. */
typedef struct srch_include {
    int rev;                      /* _revinclude */
    int iterate;                  /* :iterate (or :recurse): also from included resources */
    const char *src;              /* the type whose reference parameter it is (NULL with
                                     `*` forward: every type's) */
    const fhir_search_param *sp;  /* NULL: every reference parameter of src (`*`) */
    uint32_t sph;
    const char *target;           /* the type the reference must point at, or NULL */
} srch_include;

typedef struct srch_query {
    const char *type;
    srch_clause *c;       /* AND */
    size_t nc;
    srch_sort sort[SRCH_MAX_SORT_KEYS];
    size_t nsort;
    srch_include inc[SRCH_MAX_INCLUDES];
    size_t ninc;
    unsigned count;       /* page size */
    int summary_count;    /* _summary=count */
    int any;              /* the caller asks only whether something matches: the
                             result may stop at one match (its total then says 1) */
    int total;            /* 0 none, 1 estimate, 2 accurate (default) */
    /* the paging cursor of a later page */
    uint64_t page_t;      /* 0: first page */
    uint64_t page_offset; /* position of the page in the sorted result */
    /* for a later page after writes: the versions as of page_t are indexed again */
    const struct fp_sp_cache *spc;
    const char *base_url;
    /* parameters that were not applied (Prefer: handling=lenient), "a, b" */
    buf ignored;
    size_t nignored;
    /* the applied parameters, for the links (k=v&k=v, escaped) */
    buf applied;
    /* _include/_revinclude add a resource only when this says 1 (NULL: every one);
     * 0 leaves it out as if it did not exist, <0 fails the includes with that code */
    int (*visible)(void *ctx, store_reader *rd, const char *type, const char *id);
    void *visible_ctx;
} srch_query;

/* Where a parameter failed. */
typedef struct srch_error {
    unsigned status;  /* 400 */
    int oo_code;      /* oo_code of fhir/outcome.h */
    char msg[300];
} srch_error;

/* Whether parameters of type t can be searched, and what they take: the modifiers
 * (":missing, :exact, :contains") and prefixes ("eq, ne, ...", or "" when none),
 * static strings from the same tables the parser uses. 0 when t is not supported. */
int srch_type_support(fhir_sp_type t, const char **modifiers, const char **prefixes);

/* 1 when parameter sp can be searched: a supported type, and an expression to
 * index its values by (the definitions of _content, _text, _list, _query, _filter
 * have none). */
int srch_param_supported(const fhir_search_param *sp);

/* Start an empty query of `type` (a resource type of the model). */
void srch_init(srch_query *q, const char *type);

/* Add one name=value pair (both decoded). lenient: an unknown or unsupported
 * parameter is recorded in q->ignored instead of failing. Returns 0, or ERR_INVALID
 * / ERR_UNSUPPORTED / ERR_LIMIT with *e filled. Strings go into a. */
int srch_add(srch_query *q, arena *a, const char *name, const char *value, int lenient,
             const char *base_url, srch_error *e);

/* Restrict q to the compartment comp_type/id (a clause: any of the compartment's
 * parameters of q->type refers to it). 0, ERR_UNSUPPORTED (no such compartment in
 * the model, or q->type is not in it; *e says which), ERR_NOMEM. */
int srch_add_compartment(srch_query *q, arena *a, const char *comp_type, const char *id,
                         srch_error *e);

/* Leave out of q's matches those of sub, a query of q->type made by the caller in a (it
 * must outlive q): matches, totals, counts and pages are computed without them. sub
 * stays out of srch_each_query's walk and of q's links. 0, ERR_INVALID (another type;
 * *e says so), ERR_LIMIT (too many clauses). When sub matches more than
 * SRCH_MAX_LINK_MATCHES resources, srch_run fails with ERR_LIMIT. */
int srch_add_except(srch_query *q, arena *a, const srch_query *sub, srch_error *e);

/* Append "&name=value" (no '&' when b is empty) to b, escaped for a link URL: the
 * form of srch_query.applied. */
void srch_link_param(buf *b, const char *name, const char *value);

/* Call fn on q (depth 0) and on every query behind its chains and _has (depth >= 1,
 * nested ones too), so a caller can add clauses to each (authorisation restricts every
 * type a query reads). fn's additions to a nested query stay out of every link. Stops
 * at fn's first non-zero return and returns it; 0 when fn returned 0 everywhere. */
int srch_each_query(srch_query *q, int (*fn)(void *ctx, srch_query *q, unsigned depth),
                    void *ctx);

/* Free what srch_init/srch_add allocated outside the arena. */
void srch_done(srch_query *q);

/* A result: the rn of one page, in order, and the total. */
typedef struct srch_result {
    uint8_t (*rn)[IDX_RN_LEN];
    size_t n;            /* rows of this page */
    uint64_t total;      /* matches (when counted) */
    int has_total;
    int more;            /* a next page exists */
    uint64_t as_of;      /* non-zero: the rows are the versions current at this t (a later
                            page after writes: read them with srch_read_as_of) */
} srch_result;

/* Run q under the snapshot rd for tenant. A first page: the matches of the snapshot.
 * A later page (q->page_t): the matches as of page_t, the result set of the first page,
 * whatever was written since (the resources changed since are re-checked in their
 * version at page_t; needs q->spc). Returns 0, ERR_LIMIT (a budget; *e says which),
 * ERR_GONE (too much changed since page_t: the paging link has expired; *e says so),
 * ERR_NOMEM, ERR_IO. */
int srch_run(const srch_query *q, store_reader *rd, arena *a, uint32_t tenant,
             srch_result *out, srch_error *e);

/* 1 when the resource doc (of type q->type, e.g. an older version) satisfies every
 * clause of q as the index would (its entries extracted with q->spc and q->base_url),
 * 0 when not; ERR_UNSUPPORTED for a query with chains or _has (they need the store),
 * ERR_NOMEM. Memory from a. */
int srch_matches_doc(const srch_query *q, arena *a, const json_val *doc);

/* A resource by type and id. */
typedef struct srch_ref {
    const char *type, *id;
} srch_ref;

/* The resources q's _include and _revinclude add to a page of matches page[0..n) (in
 * the snapshot rd): each once, none of the page's, targets that exist; with :iterate
 * also those the added ones lead to, until nothing new (cycles end). *out in a, in
 * the order found. 0, ERR_LIMIT (more than SRCH_MAX_INCLUDED; *e says so), ERR_NOMEM,
 * ERR_IO. */
int srch_includes(const srch_query *q, store_reader *rd, arena *a, uint32_t tenant,
                  const srch_ref *page, size_t n, srch_ref **out, size_t *nout, srch_error *e);

/* 1 when the resource type/id (current in rd) is in the compartment comp/cid of one of
 * cids[0..ncids) (a parameter of the compartment definition refers to it; one read of
 * its entries for all of them), 0 when not, or ERR_IO, ERR_NOMEM. */
int srch_in_compartment(store_reader *rd, arena *a, uint32_t tenant, const char *comp,
                        const char *const *cids, size_t ncids, const char *type,
                        const char *id);

/* A resource that refers to another through one of its reference search parameters. */
typedef struct srch_referrer {
    const char *type, *id; /* type: the model's name; id in the arena */
    const char *param;     /* the parameter's code */
} srch_referrer;

/* 1 when the caller accounts for type/id itself (srch_referrers leaves it out). */
typedef int (*srch_skip_fn)(void *ctx, const char *type, const char *id);

/* Up to max resources, current in rd, whose reference search parameters (the model's and
 * the custom ones of spc, every type) name type/id, other than itself and those skip
 * accepts: what the delete of type/id would leave dangling. One prefix scan of the
 * reference entries per parameter that may target type (a few hundred for Patient).
 * *n found into out[0..max). 0, ERR_NOMEM, ERR_IO. */
int srch_referrers(store_reader *rd, arena *a, const struct fp_sp_cache *spc, uint32_t tenant,
                   const char *type, const char *id, size_t max, srch_skip_fn skip,
                   void *skip_ctx, srch_referrer *out, size_t *n);

/* The id of resource number rn of type (Aux), NUL-terminated in a; NULL when unknown.
 * A deleted resource's number is found too (its 'g' key). */
const char *srch_rn_id(store_reader *rd, arena *a, uint32_t tenant, const char *type,
                       const uint8_t rn[IDX_RN_LEN]);

/* The version of type/id current at t (t <= the snapshot's): 0 and *v, or ERR_NOTFOUND
 * (none, or deleted then). */
int srch_read_as_of(store_reader *rd, uint32_t tenant, const char *type, const char *id,
                    uint64_t t, store_version *v);

#endif
