/*
 * audit_rest.h -- where the audit trail meets the request path (audit_rest.c): three
 * hooks, each one call in the code it watches, and the AuditEvent endpoints.
 *
 *   rest_commit_submit (write.c) --audit_rest_commit--> one event per commit unit, as
 *                                                        an extra of that unit
 *   rest_send (response.c, through rest_services.answered)
 *                                --audit_rest_answered--> one queued event, unless a
 *                                                        committed unit carried it
 *   dispatch (server.c)          --audit_rest_handle---> GET [base]/AuditEvent?...,
 *                                                        GET [base]/AuditEvent/id from
 *                                                        the Audit database; 405 for
 *                                                        every write
 *
 * Nothing here runs when the server has no audit log (`--audit off`), except the
 * endpoints, which then find no events and still refuse writes.
 */
#ifndef HORTUS_AUDIT_REST_H
#define HORTUS_AUDIT_REST_H

#include <stddef.h>

#include "rest/request.h"
#include "rest/response.h"
#include "rest/write.h"

/* Add the event of each of the n units to its extras (the extras array is replaced by
 * a copy in r's arena with one more). 0 or ERR_NOMEM. */
int audit_rest_commit(rest_req *r, rest_commit *c, size_t n);

/* r is answered with rep: queue its event, unless one of its committed units carries it
 * (a batch's own event is always queued: its entries carry theirs). Not for a Bundle
 * entry's request (r->sub_body). */
void audit_rest_answered(rest_req *r, const rest_reply *rep);

/* The AuditEvent endpoints: -1 when r is not about AuditEvent, else REST_DONE. */
int audit_rest_handle(rest_req *r);

/* 1 when type is AuditEvent: the write pipeline refuses to write it (Bundle entries). */
int audit_rest_is_audit_type(const char *type);

/* The CapabilityStatement's rest.resource entry of AuditEvent (an object): read and
 * search-type, the search parameters of audit_rest_handle. */
struct jw;
void audit_rest_capability(struct jw *w);

#endif
