/*
 * consent.c -- patient-privacy Consent resources read into rules (auth/consent.h,
 * docs/CONSENT.md).
 *
 * A Consent is either enforced exactly as written or refused when written: every
 * element of an active patient-privacy provision is one hortus evaluates (type,
 * period, actor, purpose, class, securityLabel, action) or the write fails naming the
 * element. The decision for one token and one resource type is a rule "withhold the
 * patient's resources of this type that carry one of these labels and none of those",
 * which rest/authz.c turns into a query whose matches are left out.
 *
 *   root deny  + nested permits: withheld = root's match minus what a permit that
 *                                applies gives back (a permit without labels gives
 *                                back the whole type; with labels, those labels)
 *   root permit + nested denies: withheld = each applicable deny's match
 */
#include "auth/consent.h"

#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/id.h"
#include "base/time.h"
#include "fhir/model.h"

#define SCOPE_SYSTEM "http://terminology.hl7.org/CodeSystem/consentscope"
#define ACTION_SYSTEM "http://terminology.hl7.org/CodeSystem/consentaction"
#define CLASS_SYSTEM "http://hl7.org/fhir/resource-types"

#define FAIL(rc, ...) (snprintf(msg, msz, __VA_ARGS__), (rc))

static int has_coding(const json_val *cc, const char *system, const char *code)
{
    const json_val *cs = json_get(cc, "coding");
    for (uint32_t i = 0; cs && cs->type == JSON_ARRAY && i < cs->n; i++) {
        const char *s = json_get_str(&cs->u.items[i], "system");
        const char *c = json_get_str(&cs->u.items[i], "code");
        if (s && c && !strcmp(s, system) && !strcmp(c, code))
            return 1;
    }
    return 0;
}

/* "system|code" of a Coding (system may be absent: "|code"), in a; NULL without a code. */
static const char *coding_text(arena *a, const json_val *c)
{
    const char *s = json_get_str(c, "system"), *code = json_get_str(c, "code");
    if (!code || !*code)
        return NULL;
    size_t sl = s ? strlen(s) : 0, cl = strlen(code);
    char *t = arena_alloc(a, sl + cl + 2);
    if (!t)
        return NULL;
    memcpy(t, s ? s : "", sl);
    t[sl] = '|';
    memcpy(t + sl + 1, code, cl + 1);
    return t;
}

/* An array member of a provision: its items, 0 when absent; -1 when not an array or
 * longer than AUTH_CONSENT_MAX_ITEMS. */
static int items(const json_val *prov, const char *key, const json_val **out)
{
    const json_val *v = json_get(prov, key);
    *out = NULL;
    if (!v)
        return 0;
    if (v->type != JSON_ARRAY || v->n > AUTH_CONSENT_MAX_ITEMS)
        return -1;
    *out = v->u.items;
    return (int)v->n;
}

static int read_period(const json_val *p, int64_t *start, int64_t *end, char *msg, size_t msz)
{
    *start = INT64_MIN;
    *end = INT64_MAX;
    if (!p)
        return 0;
    const char *s = json_get_str(p, "start"), *e = json_get_str(p, "end");
    ftime t;
    int64_t lo, hi;
    if (s && (ftime_parse_datetime(s, strlen(s), &t) || ftime_range(&t, &lo, &hi)))
        return FAIL(ERR_INVALID, "provision.period.start is not a dateTime");
    if (s)
        *start = lo;
    if (e && (ftime_parse_datetime(e, strlen(e), &t) || ftime_range(&t, &lo, &hi)))
        return FAIL(ERR_INVALID, "provision.period.end is not a dateTime");
    if (e)
        *end = hi;
    return 0;
}

static int read_prov(const json_val *pv, arena *a, auth_consent_prov *out, const char *where,
                     char *msg, size_t msz)
{
    static const char *const known[] = {"id", "extension", "type", "period", "actor",
                                        "action", "securityLabel", "purpose", "class",
                                        "provision"};
    memset(out, 0, sizeof *out);
    if (pv->type != JSON_OBJECT)
        return FAIL(ERR_INVALID, "%s is not an object", where);
    for (uint32_t i = 0; i < pv->n; i++) {
        const char *k = pv->u.members[i].key;
        size_t j = 0;
        while (j < sizeof known / sizeof *known && strcmp(known[j], k))
            j++;
        if (j == sizeof known / sizeof *known)
            return FAIL(ERR_UNSUPPORTED, "%s.%s is not enforced by this server (supported: "
                        "type, period, actor, action, securityLabel, purpose, class and one "
                        "level of nested provisions; docs/CONSENT.md)", where, k);
    }
    const char *type = json_get_str(pv, "type");
    if (!type || (strcmp(type, "deny") && strcmp(type, "permit")))
        return FAIL(ERR_UNSUPPORTED, "%s.type must be deny or permit: a provision without "
                    "one is not enforced", where);
    out->deny = !strcmp(type, "deny");
    int rc = read_period(json_get(pv, "period"), &out->start, &out->end, msg, msz);
    if (rc)
        return rc;
    const json_val *it;
    int n;
    if ((n = items(pv, "actor", &it)) < 0)
        return FAIL(ERR_INVALID, "%s.actor: an array of at most %d", where,
                    AUTH_CONSENT_MAX_ITEMS);
    for (int i = 0; i < n; i++) {
        const char *ref = json_get_str(json_get(&it[i], "reference"), "reference");
        if (!ref || !strchr(ref, '/') || ref[0] == '#')
            return FAIL(ERR_UNSUPPORTED, "%s.actor[%d] needs reference.reference of the form "
                        "Type/id (the token's fhirUser is matched against it)", where, i);
        out->actor[out->nactor++] = ref;
    }
    if ((n = items(pv, "purpose", &it)) < 0)
        return FAIL(ERR_INVALID, "%s.purpose: an array of at most %d", where,
                    AUTH_CONSENT_MAX_ITEMS);
    for (int i = 0; i < n; i++)
        if (!(out->purpose[out->npurpose++] = coding_text(a, &it[i])))
            return FAIL(ERR_INVALID, "%s.purpose[%d] has no code", where, i);
    if ((n = items(pv, "securityLabel", &it)) < 0)
        return FAIL(ERR_INVALID, "%s.securityLabel: an array of at most %d", where,
                    AUTH_CONSENT_MAX_ITEMS);
    for (int i = 0; i < n; i++) {
        const char *s = json_get_str(&it[i], "system");
        if (!s || !(out->label[out->nlabel++] = coding_text(a, &it[i])))
            return FAIL(ERR_INVALID, "%s.securityLabel[%d] needs a system and a code", where,
                        i);
    }
    if ((n = items(pv, "class", &it)) < 0)
        return FAIL(ERR_INVALID, "%s.class: an array of at most %d", where,
                    AUTH_CONSENT_MAX_ITEMS);
    for (int i = 0; i < n; i++) {
        const char *s = json_get_str(&it[i], "system"), *c = json_get_str(&it[i], "code");
        if (!s || strcmp(s, CLASS_SYSTEM) || !c || !fhir_resource_type(c, strlen(c)))
            return FAIL(ERR_UNSUPPORTED, "%s.class[%d]: only resource types (system "
                        CLASS_SYSTEM ", code a resource type) are enforced", where, i);
        out->cls[out->nclass++] = c;
    }
    if ((n = items(pv, "action", &it)) < 0)
        return FAIL(ERR_INVALID, "%s.action: an array of at most %d", where,
                    AUTH_CONSENT_MAX_ITEMS);
    for (int i = 0; i < n; i++)
        if (!has_coding(&it[i], ACTION_SYSTEM, "access") &&
            !has_coding(&it[i], ACTION_SYSTEM, "use") &&
            !has_coding(&it[i], ACTION_SYSTEM, "disclose"))
            return FAIL(ERR_UNSUPPORTED, "%s.action[%d]: consent is enforced on access to "
                        "the data; only the actions access, use and disclose (" ACTION_SYSTEM
                        ") are", where, i);
    return 0;
}

int auth_consent_read(const json_val *res, arena *a, auth_consent *out, char *msg, size_t msz)
{
    memset(out, 0, sizeof *out);
    const char *status = json_get_str(res, "status");
    if (!status || strcmp(status, "active") ||
        !has_coding(json_get(res, "scope"), SCOPE_SYSTEM, "patient-privacy"))
        return 1;
    out->id = json_get_str(res, "id");
    if (json_get(res, "modifierExtension"))
        return FAIL(ERR_UNSUPPORTED, "an active patient-privacy Consent with a "
                    "modifierExtension is not enforced by this server");
    const char *pref = json_get_str(json_get(res, "patient"), "reference");
    if (!pref || strncmp(pref, "Patient/", 8) || !id_valid(pref + 8, strlen(pref + 8)))
        return FAIL(ERR_UNSUPPORTED, "an active patient-privacy Consent needs patient."
                    "reference of the form Patient/id (a resource on this server)");
    out->patient = pref + 8;
    const json_val *root = json_get(res, "provision");
    if (!root)
        return FAIL(ERR_UNSUPPORTED, "an active patient-privacy Consent without a provision "
                    "says nothing this server can enforce (policyRule alone is not "
                    "evaluated)");
    int rc = read_prov(root, a, &out->root, "provision", msg, msz);
    if (rc)
        return rc;
    const json_val *nested;
    int n = items(root, "provision", &nested);
    if (n < 0 || n > AUTH_CONSENT_MAX_NESTED)
        return FAIL(ERR_UNSUPPORTED, "provision.provision: at most %d nested provisions",
                    AUTH_CONSENT_MAX_NESTED);
    out->nested = n ? arena_zalloc(a, sizeof *out->nested * (size_t)n) : NULL;
    if (n && !out->nested)
        return ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        char where[40];
        snprintf(where, sizeof where, "provision.provision[%d]", i);
        if ((rc = read_prov(&nested[i], a, &out->nested[i], where, msg, msz)))
            return rc;
        if (json_get(&nested[i], "provision"))
            return FAIL(ERR_UNSUPPORTED, "%s.provision: provisions nested deeper than one "
                        "level are not enforced", where);
        if (out->nested[i].deny == out->root.deny)
            return FAIL(ERR_UNSUPPORTED, "%s.type: a nested provision must be the opposite "
                        "of the one around it (%s inside %s says nothing more)", where,
                        out->root.deny ? "deny" : "permit", out->root.deny ? "deny" : "permit");
        out->nnested++;
    }
    return 0;
}

/* fhirUser (a reference, relative or absolute) names the same resource as ref (Type/id). */
static int same_ref(const char *fhir_user, const char *ref)
{
    size_t fl = strlen(fhir_user), rl = strlen(ref);
    if (fl == rl)
        return !strcmp(fhir_user, ref);
    return fl > rl && fhir_user[fl - rl - 1] == '/' && !strcmp(fhir_user + fl - rl, ref);
}

/* The token's purposes (space-separated "code" or "system|code") include coding c
 * ("system|code" or "|code"): a purpose without a system matches on the code. */
static int has_purpose(const char *purposes, const char *c)
{
    const char *bar = strchr(c, '|');
    const char *code = bar ? bar + 1 : c;
    size_t sl = bar ? (size_t)(bar - c) : 0;
    for (const char *p = purposes; *p;) {
        const char *e = strchr(p, ' ');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *pb = memchr(p, '|', n);
        const char *pcode = pb ? pb + 1 : p;
        size_t pcl = n - (size_t)(pcode - p);
        int code_eq = pcl == strlen(code) && !memcmp(pcode, code, pcl);
        int sys_eq = !pb || !sl || ((size_t)(pb - p) == sl && !memcmp(p, c, sl));
        if (code_eq && sys_eq)
            return 1;
        p += n;
        while (*p == ' ')
            p++;
    }
    return 0;
}

static int applies(const auth_consent_prov *v, const auth_principal *p, const char *type,
                   int64_t now)
{
    if (now < v->start || now >= v->end)
        return 0;
    int ok = !v->nactor;
    for (size_t i = 0; i < v->nactor && !ok; i++)
        ok = p->fhir_user[0] && same_ref(p->fhir_user, v->actor[i]);
    if (!ok)
        return 0;
    ok = !v->npurpose;
    for (size_t i = 0; i < v->npurpose && !ok; i++)
        ok = has_purpose(p->purpose, v->purpose[i]);
    if (!ok)
        return 0;
    ok = !v->nclass;
    for (size_t i = 0; i < v->nclass && !ok; i++)
        ok = !strcmp(v->cls[i], type);
    return ok;
}

int auth_consent_rule_for(const auth_consent *c, const auth_principal *p, const char *type,
                          int64_t now, auth_consent_rule *r)
{
    memset(r, 0, sizeof *r);
    r->patient = c->patient;
    /* the patient's own access is not held to their consent */
    char self[8 + ID_MAX + 1];
    snprintf(self, sizeof self, "Patient/%s", c->patient);
    if (p->fhir_user[0] && same_ref(p->fhir_user, self))
        return 0;
    if (c->root.deny) {
        if (!applies(&c->root, p, type, now))
            return 0;
        for (size_t i = 0; i < c->root.nlabel; i++)
            r->any[r->nany++] = c->root.label[i];
        for (size_t i = 0; i < c->nnested; i++) {
            const auth_consent_prov *v = &c->nested[i];
            if (!applies(v, p, type, now))
                continue;
            if (!v->nlabel)
                return 0; /* given back whole */
            for (size_t j = 0; j < v->nlabel; j++)
                r->none[r->nnone++] = v->label[j];
        }
        return 1;
    }
    /* a permit: the denials inside it that apply, as one rule (the union of their
     * labels; one without labels withholds the whole type) */
    int found = 0;
    for (size_t i = 0; i < c->nnested; i++) {
        const auth_consent_prov *v = &c->nested[i];
        if (!applies(v, p, type, now))
            continue;
        if (!v->nlabel) {
            r->nany = 0;
            return 1;
        }
        for (size_t j = 0; j < v->nlabel; j++)
            r->any[r->nany++] = v->label[j];
        found = 1;
    }
    return found;
}

int auth_consent_user_facing(const auth_principal *p)
{
    if (p->fhir_user[0])
        return 1;
    for (size_t i = 0; i < p->rights.n; i++)
        if (p->rights.g[i].context != AUTH_CTX_SYSTEM)
            return 1;
    return 0;
}
