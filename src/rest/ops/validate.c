/*
 * validate.c -- $validate: check a resource without storing it.
 *
 * The body is the resource itself, or a Parameters resource whose `resource`
 * parameter holds it (the operation's formal form; `mode` and `profile` are not
 * supported yet: a profile is refused rather than silently ignored). The answer
 * is 200 with an OperationOutcome listing every issue the structural validator
 * finds (or one information issue "All OK"); only a body that is not JSON at
 * all, or names another type than the URL, is 400.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "fhir/validate.h"
#include "rest/ops/ops.h"

int rest_op_validate(rest_req *r)
{
    char msg[300];
    json_error je;
    memset(&je, 0, sizeof je);
    if (r->body.len == 0)
        return rest_send_error(r, 400, OO_INVALID, "$validate needs a resource in the body",
                               NULL);
    json_val *root;
    int rc = json_parse(r->a, r->body.data, r->body.len, JSON_FHIR, &root, &je);
    if (rc)
        return rest_send_json_error(r, rc, &je);
    const char *rt = json_get_str(root, "resourceType");
    if (rt && !strcmp(rt, "Parameters") && strcmp(r->route.type->name, "Parameters")) {
        json_val *ps = json_get(root, "parameter");
        json_val *res = NULL;
        for (uint32_t i = 0; ps && ps->type == JSON_ARRAY && i < ps->n; i++) {
            const char *name = json_get_str(&ps->u.items[i], "name");
            if (name && !strcmp(name, "resource"))
                res = json_get(&ps->u.items[i], "resource");
            if (name && !strcmp(name, "profile"))
                return rest_send_error(r, 400, OO_NOT_SUPPORTED,
                                       "$validate against a profile is not supported yet", NULL);
        }
        if (!res)
            return rest_send_error(r, 400, OO_REQUIRED,
                                   "the Parameters have no 'resource' parameter", NULL);
        root = res;
        rt = json_get_str(root, "resourceType");
    }
    if (rt && strcmp(rt, r->route.type->name)) {
        snprintf(msg, sizeof msg, "resourceType '%.64s' does not match the URL type '%s'", rt,
                 r->route.type->name);
        return rest_send_error(r, 400, OO_INVALID, msg, "resourceType");
    }
    oo o;
    oo_init(&o, r->a);
    rc = val_resource(r->a, root, r->route.type->name, &o);
    if (rc == ERR_NOMEM)
        return rest_send_errcode(r, rc, "out of memory");
    if (r->route.id) {
        const char *id = json_get_str(root, "id");
        if (!id || strcmp(id, r->route.id))
            oo_add(&o, OO_ERROR, OO_INVALID, "the id of the resource must equal the id of the URL",
                   "id");
    }
    return rest_send_outcome(r, 200, &o);
}
