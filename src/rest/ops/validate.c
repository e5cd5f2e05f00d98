/*
 * validate.c -- $validate: check a resource without storing it.
 *
 * The body is the resource itself, or a Parameters resource whose `resource`
 * parameter holds it (the operation's formal form). `mode` (query or Parameters):
 * create (the default), update (the resource must have its id), delete (at instance
 * level: may it be deleted, 404/410 when it is not there). A `profile` is refused
 * (400) rather than silently ignored, as is any other parameter. The answer is 200
 * with an OperationOutcome listing every issue the structural validator finds (or
 * one information issue "All OK"); a body that is not JSON at all, or names another
 * type than the URL, is 400.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "fhir/validate.h"
#include "fhirpath/invariants.h"
#include "rest/limits.h"
#include "store/store.h"
#include "rest/ops/ops.h"

typedef struct vparams {
    const char *mode; /* create (default), update, delete */
    const char *bad;  /* the first parameter that is not taken */
    int profile;
} vparams;

static int on_query(void *ctx, const char *k, const char *v)
{
    vparams *p = ctx;
    if (!strcmp(k, "_format") || !strcmp(k, "_pretty"))
        return 0;
    if (!strcmp(k, "mode"))
        p->mode = v ? v : "";
    else if (!strcmp(k, "profile"))
        p->profile = 1;
    else if (!p->bad)
        p->bad = k;
    return 0;
}

int rest_op_validate(rest_req *r)
{
    char msg[300];
    vparams vp = {0};
    rest_query_each(r, on_query, &vp);
    json_error je;
    memset(&je, 0, sizeof je);
    json_val *root = NULL;
    int rc;
    const char *rt = NULL;
    if (r->body.len) {
        rc = json_parse(r->a, r->body.data, r->body.len, JSON_FHIR, &root, &je);
        if (rc)
            return rest_send_json_error(r, rc, &je);
        rt = json_get_str(root, "resourceType");
    }
    if (rt && !strcmp(rt, "Parameters") && strcmp(r->route.type->name, "Parameters")) {
        json_val *ps = json_get(root, "parameter");
        json_val *res = NULL;
        for (uint32_t i = 0; ps && ps->type == JSON_ARRAY && i < ps->n; i++) {
            const char *name = json_get_str(&ps->u.items[i], "name");
            if (name && !strcmp(name, "resource"))
                res = json_get(&ps->u.items[i], "resource");
            else if (name && !strcmp(name, "profile"))
                vp.profile = 1;
            else if (name && !strcmp(name, "mode")) {
                const char *m = json_get_str(&ps->u.items[i], "valueCode");
                vp.mode = m ? m : "";
            } else if (!vp.bad)
                vp.bad = name ? name : "(a parameter without a name)";
        }
        root = res;
        rt = root ? json_get_str(root, "resourceType") : NULL;
        if (!root && !(vp.mode && !strcmp(vp.mode, "delete")))
            return rest_send_error(r, 400, OO_REQUIRED,
                                   "the Parameters have no 'resource' parameter", NULL);
    }
    if (vp.bad) {
        snprintf(msg, sizeof msg,
                 "$validate takes resource, mode and profile; '%.80s' is not a parameter of it",
                 vp.bad);
        return rest_send_error(r, 400, OO_NOT_SUPPORTED, msg, NULL);
    }
    if (vp.profile)
        return rest_send_error(r, 400, OO_NOT_SUPPORTED,
                               "$validate against a profile is not supported yet", NULL);
    const char *mode = vp.mode ? vp.mode : "create";
    if (strcmp(mode, "create") && strcmp(mode, "update") && strcmp(mode, "delete")) {
        snprintf(msg, sizeof msg, "mode '%.40s': $validate takes create, update or delete",
                 mode);
        return rest_send_error(r, 400, OO_INVALID, msg, NULL);
    }
    oo o;
    oo_init(&o, r->a);
    if (!strcmp(mode, "delete")) {
        /* may it be deleted? Without referential integrity a delete is always possible
         * when the resource exists */
        if (!r->route.id)
            return rest_send_error(r, 400, OO_INVALID,
                                   "mode delete: name the resource ([base]/Type/id/$validate)",
                                   NULL);
        store_reader *rd;
        store_version v;
        char id[REST_MAX_ID + 1];
        snprintf(id, sizeof id, "%.*s", (int)r->route.id_len, r->route.id);
        if ((rc = rest_snapshot(r, &rd)))
            return rest_send_errcode(r, rc, "cannot read the store");
        rc = store_read(rd, r->ctx.tenant, r->route.type->name, id, &v);
        if (rc == ERR_NOTFOUND || rc == ERR_GONE) {
            snprintf(msg, sizeof msg, "%s/%s %s", r->route.type->name, id,
                     rc == ERR_GONE ? "is deleted" : "is not known");
            return rest_send_error(r, rc == ERR_GONE ? 410 : 404,
                                   rc == ERR_GONE ? OO_DELETED : OO_NOT_FOUND, msg, NULL);
        }
        if (rc)
            return rest_send_errcode(r, rc, "cannot read the store");
        return rest_send_outcome(r, 200, &o);
    }
    if (!root)
        return rest_send_error(r, 400, OO_INVALID, "$validate needs a resource in the body",
                               NULL);
    if (rt && strcmp(rt, r->route.type->name)) {
        snprintf(msg, sizeof msg, "resourceType '%.64s' does not match the URL type '%s'", rt,
                 r->route.type->name);
        return rest_send_error(r, 400, OO_INVALID, msg, "resourceType");
    }
    rc = val_resource(r->a, root, r->route.type->name, &o);
    if (rc == 0) /* and the invariants, warnings included */
        rc = fp_invariants(r->a, root, r->route.type->name, &o);
    if (rc == ERR_NOMEM)
        return rest_send_errcode(r, rc, "out of memory");
    const char *id = json_get_str(root, "id");
    if (r->route.id && (!id || strlen(id) != r->route.id_len ||
                        memcmp(id, r->route.id, r->route.id_len)))
        oo_add(&o, OO_ERROR, OO_INVALID, "the id of the resource must equal the id of the URL",
               "id");
    else if (!strcmp(mode, "update") && !id)
        oo_add(&o, OO_ERROR, OO_REQUIRED, "mode update: the resource has no id", "id");
    return rest_send_outcome(r, 200, &o);
}
