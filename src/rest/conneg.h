/*
 * conneg.h -- content negotiation (conneg.c): which formats a request accepts
 * and sends. hortus speaks FHIR JSON only; everything else is refused with a
 * message naming what was asked for (406 / 415), never answered in a format
 * the client did not ask for. Pure functions of header values.
 */
#ifndef HORTUS_REST_CONNEG_H
#define HORTUS_REST_CONNEG_H

#include <stddef.h>

/* 0 when the client accepts JSON (via _format or Accept), else ERR_UNSUPPORTED
 * with a message in msg. */
int rest_conneg_accept(const char *format_param, const char *accept, char *msg, size_t msgsz);

/* 0 when a request body Content-Type is FHIR JSON (application/fhir+json or
 * application/json, optional charset=utf-8) -- or, when json_patch is set,
 * application/json-patch+json -- else ERR_UNSUPPORTED. */
int rest_conneg_content_type(const char *ct, int json_patch, char *msg, size_t msgsz);

/* 0 when a Content-Type is application/x-www-form-urlencoded (a search's form
 * body, optional charset=utf-8), else ERR_UNSUPPORTED with a message. */
int rest_conneg_form(const char *ct, char *msg, size_t msgsz);

/* _pretty=true -> 1; "false"/absent -> 0. */
int rest_pretty(const char *v);

#endif
