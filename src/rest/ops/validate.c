/*
 * validate.c -- $validate: check a resource without storing it.
 *
 * The body is the resource itself, or a Parameters resource whose `resource`
 * parameter holds it (the operation's formal form). `mode` (query or Parameters):
 * create (the default), update (the resource must have its id), delete (at instance
 * level: may it be deleted, 404/410 when it is not there). `profile` (query, may
 * repeat, or Parameters valueUri/valueCanonical; url or url|version) names a
 * StructureDefinition stored on this server to validate against, on top of the
 * profiles the resource claims in meta.profile (docs/PROFILES.md); a profile the
 * server does not hold is a 400 naming it, never "All OK". Any other parameter is a
 * 400. The answer is 200 with an OperationOutcome listing every issue the structural
 * validator, the R4 invariants and the profiles find (warnings included: a rule of a
 * profile hortus does not check, a claimed profile it does not hold), or one
 * information issue "All OK"; a body that is not JSON at all, or names another type
 * than the URL, is 400.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "fhir/validate.h"
#include "fhirpath/invariants.h"
#include "profile/profile.h"
#include "rest/authz.h"
#include "rest/limits.h"
#include "store/store.h"
#include "rest/ops/ops.h"

#define VALIDATE_MAX_PROFILES 16 /* profile parameters of one $validate */

typedef struct vparams {
    const char *mode; /* create (default), update, delete */
    const char *bad;  /* the first parameter that is not taken */
    const char *profile[VALIDATE_MAX_PROFILES];
    size_t nprofile;
    int too_many, empty_profile;
} vparams;

static void add_profile(vparams *p, const char *v)
{
    if (!v || !*v)
        p->empty_profile = 1;
    else if (p->nprofile < VALIDATE_MAX_PROFILES)
        p->profile[p->nprofile++] = v;
    else
        p->too_many = 1;
}

static int on_query(void *ctx, const char *k, const char *v)
{
    vparams *p = ctx;
    if (!strcmp(k, "_format") || !strcmp(k, "_pretty"))
        return 0;
    if (!strcmp(k, "mode"))
        p->mode = v ? v : "";
    else if (!strcmp(k, "profile"))
        add_profile(p, v);
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
            else if (name && !strcmp(name, "profile")) {
                const char *u = json_get_str(&ps->u.items[i], "valueUri");
                add_profile(&vp, u ? u : json_get_str(&ps->u.items[i], "valueCanonical"));
            }
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
    if (vp.empty_profile)
        return rest_send_error(r, 400, OO_INVALID,
                               "profile: give the canonical URL of a StructureDefinition "
                               "(valueUri or valueCanonical)",
                               NULL);
    if (vp.too_many) {
        snprintf(msg, sizeof msg, "$validate takes at most %d profiles", VALIDATE_MAX_PROFILES);
        return rest_send_error(r, 400, OO_TOO_COSTLY, msg, NULL);
    }
    const char *mode = vp.mode ? vp.mode : "create";
    if (strcmp(mode, "create") && strcmp(mode, "update") && strcmp(mode, "delete")) {
        snprintf(msg, sizeof msg, "mode '%.40s': $validate takes create, update or delete",
                 mode);
        return rest_send_error(r, 400, OO_INVALID, msg, NULL);
    }
    {
        store_reader *ard = NULL;
        char aid[REST_MAX_ID + 1];
        snprintf(aid, sizeof aid, "%.*s", (int)r->route.id_len,
                 r->route.id ? r->route.id : "");
        if (r->ctx.principal && r->route.id && (rc = rest_snapshot(r, &ard)))
            return rest_send_errcode(r, rc, "cannot read the store");
        if (rest_authz_validate(r, ard, r->route.type->name, r->route.id ? aid : NULL, mode) >= 0)
            return REST_DONE;
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
    const char *type = r->route.type->name;
    rc = val_resource(r->a, root, type, &o);
    int structural = rc;
    if (rc == 0) /* and the invariants, warnings included */
        rc = fp_invariants(root, type, &o);
    if (rc == ERR_NOMEM)
        return rest_send_errcode(r, rc, "out of memory");
    if (vp.nprofile || prof_has_claims(root)) {
        /* the profiles: those named, then those the resource claims (as a write would) */
        const rest_services *svc = r->ctx.svc;
        const prof_set *set = NULL;
        store_reader *rd;
        if ((rc = rest_snapshot(r, &rd)) ||
            (svc && svc->profiles && (rc = prof_registry_get(svc->profiles, rd, r->ctx.tenant, &set))))
            return rest_send_errcode(r, rc, "cannot read the profiles");
        for (size_t i = 0; i < vp.nprofile; i++) {
            /* a structurally broken resource is not walked, but the profile must exist */
            oo *into = &o, scratch;
            if (structural) {
                oo_init(&scratch, r->a);
                into = &scratch;
            }
            rc = prof_validate(r->a, set, vp.profile[i], root, type, into);
            if (rc == ERR_NOTFOUND) {
                prof_set_release(set);
                snprintf(msg, sizeof msg,
                         "profile %.200s is not known to this server (no StructureDefinition "
                         "with that url%s)",
                         vp.profile[i], strchr(vp.profile[i], '|') ? " and version" : "");
                return rest_send_error(r, 400, OO_NOT_FOUND, msg, NULL);
            }
            if (rc == ERR_NOMEM) {
                prof_set_release(set);
                return rest_send_errcode(r, rc, "out of memory");
            }
        }
        if (!structural) {
            rc = prof_validate_claims(
                r->a, set, root, type,
                svc ? (prof_unknown)svc->policy.unknown_profile : PROF_UNKNOWN_WARN, &o, NULL);
            if (rc == ERR_NOMEM) {
                prof_set_release(set);
                return rest_send_errcode(r, rc, "out of memory");
            }
        }
        prof_set_release(set);
    }
    const char *id = json_get_str(root, "id");
    if (r->route.id && (!id || strlen(id) != r->route.id_len ||
                        memcmp(id, r->route.id, r->route.id_len)))
        oo_add(&o, OO_ERROR, OO_INVALID, "the id of the resource must equal the id of the URL",
               "id");
    else if (!strcmp(mode, "update") && !id)
        oo_add(&o, OO_ERROR, OO_REQUIRED, "mode update: the resource has no id", "id");
    return rest_send_outcome(r, 200, &o);
}
