/*
 * capabilities.c -- GET [base]/metadata: the CapabilityStatement.
 *
 * Generated from the model tables, never typed by hand: every concrete R4
 * resource type with the interactions this server implements and the search
 * parameters that apply to it (fhir_search_params). The big `rest` part does
 * not depend on the request, so it is built once (pthread_once) and spliced in
 * raw; only implementation.url (the base the client used) is per request, and
 * the rest part itself when the tenant has custom search parameters.
 */
#include <pthread.h>
#include <string.h>

#include "rest/audit_rest.h"
#include "base/err.h"
#include "base/time.h"
#include "cli.h"
#include "fhirpath/spcache.h"
#include "rest/authz.h"
#include "rest/handlers.h"
#include "rest/response.h"
#include "search/search.h"

/* the JSON of the "rest" array, per conditional-delete mode (--conditional-delete);
 * lives as long as the process */
static pthread_once_t once[2] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};
static buf rest_part[2];
static char built_at[40];

static const char *const type_interactions[] = {
    "read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create",
    "search-type",
};

/* The "rest" array for the parameters of spc (NULL: the model's). */
static void build_rest(const fp_sp_cache *spc, int multi_delete, buf *b)
{
    jw w;
    jw_init(&w, b, 0);
    jw_arr(&w);
    jw_obj(&w);
    jw_key(&w, "mode");
    jw_str(&w, "server");
    jw_key(&w, "resource");
    jw_arr(&w);
    const fhir_type *const *types;
    size_t nt = fhir_resource_types(&types);
    for (size_t i = 0; i < nt; i++) {
        const char *name = types[i]->name;
        if (audit_rest_is_audit_type(name)) { /* the audit trail: read and search only */
            audit_rest_capability(&w);
            continue;
        }
        jw_obj(&w);
        jw_key(&w, "type");
        jw_str(&w, name);
        jw_key(&w, "profile");
        buf p = BUF_INIT;
        buf_printf(&p, "http://hl7.org/fhir/StructureDefinition/%s", name);
        jw_str(&w, buf_cstr(&p));
        buf_free(&p);
        jw_key(&w, "interaction");
        jw_arr(&w);
        for (size_t k = 0; k < sizeof type_interactions / sizeof type_interactions[0]; k++) {
            jw_obj(&w);
            jw_key(&w, "code");
            jw_str(&w, type_interactions[k]);
            jw_end(&w);
        }
        jw_end(&w);
        jw_key(&w, "versioning");
        jw_str(&w, "versioned-update");
        jw_key(&w, "readHistory");
        jw_bool(&w, 1);
        jw_key(&w, "updateCreate");
        jw_bool(&w, 1);
        jw_key(&w, "conditionalCreate");
        jw_bool(&w, 1);
        jw_key(&w, "conditionalRead");
        jw_str(&w, "full-support");
        jw_key(&w, "conditionalUpdate");
        jw_bool(&w, 1);
        jw_key(&w, "conditionalDelete");
        jw_str(&w, multi_delete ? "multiple" : "single");
        jw_key(&w, "operation");
        jw_arr(&w);
        jw_obj(&w);
        jw_key(&w, "name");
        jw_str(&w, "validate");
        jw_key(&w, "definition");
        jw_str(&w, "http://hl7.org/fhir/OperationDefinition/Resource-validate");
        jw_end(&w);
        if (!strcmp(name, "Patient") || !strcmp(name, "Encounter")) {
            jw_obj(&w);
            jw_key(&w, "name");
            jw_str(&w, "everything");
            jw_key(&w, "definition");
            jw_str(&w, name[0] == 'P'
                           ? "http://hl7.org/fhir/OperationDefinition/Patient-everything"
                           : "http://hl7.org/fhir/OperationDefinition/Encounter-everything");
            jw_end(&w);
        }
        jw_end(&w);
        const fhir_search_param *const *sps;
        size_t ns = fp_sp_params(spc, name, &sps);
        /* _include: every reference parameter of the type, and *; _revinclude: every
         * reference parameter of any type that may point at this one */
        jw_key(&w, "searchInclude");
        jw_arr(&w);
        jw_str(&w, "*");
        for (size_t k = 0; k < ns; k++)
            if (sps[k]->type == FHIR_SP_REFERENCE) {
                buf d = BUF_INIT;
                buf_printf(&d, "%s:%s", name, sps[k]->code);
                jw_str(&w, buf_cstr(&d));
                buf_free(&d);
            }
        jw_end(&w);
        jw_key(&w, "searchRevInclude");
        jw_arr(&w);
        for (size_t t = 0; t < nt; t++) {
            const fhir_search_param *const *os;
            size_t no = fp_sp_params(spc, types[t]->name, &os);
            for (size_t k = 0; k < no; k++) {
                int refers = os[k]->type == FHIR_SP_REFERENCE && os[k]->ntargets == 0;
                for (uint8_t j = 0; os[k]->type == FHIR_SP_REFERENCE && j < os[k]->ntargets &&
                                    !refers; j++)
                    refers = !strcmp(os[k]->targets[j], name);
                if (!refers)
                    continue;
                buf d = BUF_INIT;
                buf_printf(&d, "%s:%s", types[t]->name, os[k]->code);
                jw_str(&w, buf_cstr(&d));
                buf_free(&d);
            }
        }
        jw_end(&w);
        if (ns) {
            jw_key(&w, "searchParam");
            jw_arr(&w);
            for (size_t k = 0; k < ns; k++) {
                const char *mods, *prefixes;
                if (!srch_param_supported(sps[k]))
                    continue; /* refused when searched: not listed */
                srch_type_support(sps[k]->type, &mods, &prefixes);
                jw_obj(&w);
                jw_key(&w, "name");
                jw_str(&w, sps[k]->code);
                if (sps[k]->url) {
                    jw_key(&w, "definition");
                    jw_str(&w, sps[k]->url);
                }
                jw_key(&w, "type");
                jw_str(&w, fhir_sp_type_name(sps[k]->type));
                buf d = BUF_INIT;
                buf_printf(&d, "modifiers: %s%s%s", mods, *prefixes ? "; prefixes: " : "",
                           prefixes);
                jw_key(&w, "documentation");
                jw_str(&w, buf_cstr(&d));
                buf_free(&d);
                jw_end(&w);
            }
            jw_end(&w);
        }
        jw_end(&w);
    }
    jw_end(&w);
    jw_key(&w, "interaction");
    jw_arr(&w);
    static const char *const system_interactions[] = {"transaction", "batch",
                                                      "history-system"};
    for (size_t k = 0; k < 3; k++) {
        jw_obj(&w);
        jw_key(&w, "code");
        jw_str(&w, system_interactions[k]);
        jw_end(&w);
    }
    jw_end(&w);
    jw_end(&w);
    jw_end(&w);
}

static void build(int multi_delete)
{
    ftime_format_instant(ftime_now_us(), built_at);
    build_rest(NULL, multi_delete, &rest_part[multi_delete]);
}

static void build_single(void)
{
    build(0);
}

static void build_multiple(void)
{
    build(1);
}

int rest_capabilities(rest_req *r)
{
    int multi = r->ctx.svc && r->ctx.svc->policy.cond_delete_max > 1;
    pthread_once(&once[multi], multi ? build_multiple : build_single);
    if (rest_part[multi].err || !rest_part[multi].len)
        return rest_send_errcode(r, ERR_NOMEM, "could not build the CapabilityStatement");
    /* custom search parameters: the rest part of this snapshot's parameters */
    store_reader *rd;
    const fp_sp_custom *cs;
    buf own = BUF_INIT;
    const buf *part = &rest_part[multi];
    if (rest_snapshot(r, &rd) == 0 && fp_sp_customs(r->ctx.spc, &cs)) {
        build_rest(r->ctx.spc, multi, &own);
        if (own.err) {
            buf_free(&own);
            return rest_send_errcode(r, ERR_NOMEM, "could not build the CapabilityStatement");
        }
        part = &own;
    }
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, r->pretty);
    jw_obj(&w);
    jw_key(&w, "resourceType");
    jw_str(&w, "CapabilityStatement");
    jw_key(&w, "status");
    jw_str(&w, "active");
    jw_key(&w, "date");
    jw_str(&w, built_at);
    jw_key(&w, "publisher");
    jw_str(&w, "hortus");
    jw_key(&w, "kind");
    jw_str(&w, "instance");
    jw_key(&w, "software");
    jw_obj(&w);
    jw_key(&w, "name");
    jw_str(&w, "hortus");
    jw_key(&w, "version");
    jw_str(&w, HORTUS_VERSION);
    jw_end(&w);
    jw_key(&w, "implementation");
    jw_obj(&w);
    jw_key(&w, "description");
    jw_str(&w, "hortus FHIR R4 server");
    jw_key(&w, "url");
    jw_str(&w, rest_base_url(r));
    jw_end(&w);
    jw_key(&w, "fhirVersion");
    jw_str(&w, "4.0.1");
    jw_key(&w, "format");
    jw_arr(&w);
    jw_str(&w, "application/fhir+json");
    jw_str(&w, "json");
    jw_end(&w);
    jw_key(&w, "rest");
    buf sec = BUF_INIT;
    const char *security = rest_authz_security_json(r);
    if (security && part->len > 2 && !memcmp(part->data, "[{", 2)) {
        /* the rest part with its security member first */
        buf_printf(&sec, "[{%s,", security);
        buf_put(&sec, part->data + 2, part->len - 2);
        if (sec.err) {
            buf_free(&sec);
            buf_free(&own);
            buf_free(&b);
            return rest_send_errcode(r, ERR_NOMEM, "could not build the CapabilityStatement");
        }
        part = &sec;
    }
    if (r->pretty) {
        json_val *v;
        if (json_parse(r->a, part->data, part->len, 0, &v, NULL) == 0)
            jw_val(&w, v);
        else
            jw_raw(&w, part->data, part->len);
    } else {
        jw_raw(&w, part->data, part->len);
    }
    jw_end(&w);
    buf_free(&sec);
    buf_free(&own);
    return rest_send_buf(r, 200, &b);
}
