/*
 * handlers.h -- the interaction handlers, one file each; only the server's
 * dispatch includes this. A handler ends its request by one of the rest_send*
 * functions (response.h), or, for a write, through the write pipeline
 * (write.h), which suspends the connection until the commit is durable.
 * Returns REST_DONE or REST_SUSPENDED (request.h).
 */
#ifndef HORTUS_REST_HANDLERS_H
#define HORTUS_REST_HANDLERS_H

#include "rest/request.h"

int rest_read(rest_req *r);         /* read.c */
int rest_vread(rest_req *r);        /* vread.c */
int rest_create(rest_req *r);       /* create.c */
int rest_update(rest_req *r);       /* update.c */
int rest_delete(rest_req *r);       /* delete.c */
int rest_patch(rest_req *r);        /* patch.c */
int rest_history(rest_req *r);      /* history.c */
int rest_search(rest_req *r);       /* search.c */
int rest_batch(rest_req *r);        /* batch.c */
int rest_operation(rest_req *r);    /* operation.c: $name dispatch */
int rest_capabilities(rest_req *r); /* capabilities.c */
int rest_health(rest_req *r);       /* ops.c */
int rest_metrics(rest_req *r);      /* ops.c */

#endif
