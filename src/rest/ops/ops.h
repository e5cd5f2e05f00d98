/*
 * ops.h -- the $operations of the REST layer, one file each (src/rest/ops/).
 *
 * Each handler is called by operation.c after the level, method and id were
 * checked, and ends the request like any interaction handler (REST_DONE, or
 * REST_SUSPENDED for an operation that writes).
 */
#ifndef HORTUS_REST_OPS_H
#define HORTUS_REST_OPS_H

#include "rest/request.h"
#include "rest/response.h"

/* POST [base]/Type/$validate, POST [base]/Type/id/$validate (ops/validate.c) */
int rest_op_validate(rest_req *r);

/* GET [base]/Patient/id/$everything, [base]/Patient/$everything,
 * [base]/Encounter/id/$everything (ops/everything.c) */
int rest_op_everything(rest_req *r);

/* GET/POST [base]/$reindex, [base]/Type/$reindex, [base]/SearchParameter/id/$reindex
 * (ops/reindex.c) */
int rest_op_reindex(rest_req *r);

#endif
