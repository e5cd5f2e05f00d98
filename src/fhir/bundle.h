/*
 * bundle.h -- the skeleton of every Bundle hortus writes (bundle.c): history,
 * searchset, batch-response and transaction-response share one shape, so the
 * members come in one order and are spelled one way.
 *
 *   bundle_begin(w, "searchset");      {"resourceType":"Bundle","type":"searchset"
 *   bundle_total(w, 42);               ,"total":42
 *   bundle_links_begin(w);             ,"link":[
 *   bundle_link(w, "self", url);         {"relation":"self","url":"..."}
 *   bundle_links_end(w);               ]
 *   bundle_entries_begin(w);           ,"entry":[
 *     bundle_entry_begin(w, full_url);   {"fullUrl":"..." ... (the caller's members)
 *     bundle_entry_end(w);               }
 *   bundle_entries_end(w);             ]
 *   bundle_end(w);                     }
 *
 * The writer's sticky error covers everything: check it once at the end.
 */
#ifndef HORTUS_FHIR_BUNDLE_H
#define HORTUS_FHIR_BUNDLE_H

#include <stdint.h>

#include "json/json.h"

void bundle_begin(jw *w, const char *type);
void bundle_total(jw *w, uint64_t total);
void bundle_links_begin(jw *w);
void bundle_link(jw *w, const char *relation, const char *url);
void bundle_links_end(jw *w);
void bundle_entries_begin(jw *w);
/* Opens an entry object; full_url may be NULL (no fullUrl member). */
void bundle_entry_begin(jw *w, const char *full_url);
/* "search": {"mode": mode} of a searchset entry ("match", "include", "outcome"). */
void bundle_entry_search_mode(jw *w, const char *mode);
void bundle_entry_end(jw *w);
void bundle_entries_end(jw *w);
void bundle_end(jw *w);

/* The response.status text of a Bundle entry ("201 Created"); unknown statuses
 * give "500 Internal Server Error". Static. */
const char *bundle_status_text(unsigned status);

#endif
