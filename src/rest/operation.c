/*
 * operation.c -- [base]/$name, [base]/Type/$name, [base]/Type/id/$name.
 *
 * A small table maps an operation name to its handler (one file per operation
 * under src/rest/ops/) and says at which levels and with which methods it is
 * defined; everything else is 404 with an OperationOutcome naming the
 * operation. Adding an operation = one file + one row here.
 */
#include <stdio.h>
#include <string.h>

#include "rest/ops/ops.h"
#include "rest/handlers.h"
#include "rest/response.h"

enum { AT_SYSTEM = 1, AT_TYPE = 2, AT_INSTANCE = 4 };
enum { BY_GET = 1, BY_POST = 2 };

typedef struct rest_op {
    const char *name;
    int levels;
    int methods;
    int (*run)(rest_req *r);
} rest_op;

static const rest_op ops[] = {
    {"validate", AT_TYPE | AT_INSTANCE, BY_POST, rest_op_validate},
    {"everything", AT_TYPE | AT_INSTANCE, BY_GET | BY_POST, rest_op_everything},
    {"reindex", AT_SYSTEM | AT_TYPE | AT_INSTANCE, BY_GET | BY_POST, rest_op_reindex},
};

int rest_operation(rest_req *r)
{
    char msg[200];
    int level = r->route.id ? AT_INSTANCE : r->route.type ? AT_TYPE : AT_SYSTEM;
    int method = r->method == RM_POST ? BY_POST : BY_GET;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (strcmp(ops[i].name, r->route.op))
            continue;
        if (!(ops[i].levels & level)) {
            snprintf(msg, sizeof msg, "$%s is not defined at the %s level", ops[i].name,
                     level == AT_SYSTEM ? "system" : level == AT_TYPE ? "type" : "instance");
            return rest_send_error(r, 400, OO_NOT_SUPPORTED, msg, NULL);
        }
        if (!(ops[i].methods & method)) {
            snprintf(msg, sizeof msg, "$%s must be invoked with %s", ops[i].name,
                     ops[i].methods & BY_POST ? "POST" : "GET");
            return rest_send_error_ex(r, 405, OO_NOT_SUPPORTED, msg, NULL,
                                      ops[i].methods & BY_POST ? "POST" : "GET, HEAD");
        }
        if (r->route.id && !rest_id_valid(r->route.id, r->route.id_len)) {
            snprintf(msg, sizeof msg, "invalid id '%.80s' in the URL", r->route.id);
            return rest_send_error(r, 400, OO_INVALID, msg, NULL);
        }
        return ops[i].run(r);
    }
    snprintf(msg, sizeof msg, "unknown operation '$%.80s'", r->route.op);
    return rest_send_error(r, 404, OO_NOT_SUPPORTED, msg, NULL);
}
