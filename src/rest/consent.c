/*
 * consent.c -- each tenant's enforced Consents, cached per change (rest/consent.h).
 *
 * An active patient-privacy Consent stored before this server enforced consent, or
 * one it can no longer read, is not skipped: it becomes "withhold everything of this
 * patient from every user" (fail closed) and the server logs which one.
 */
#include "rest/consent.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "store/store.h"

typedef struct cset {
    rest_consent_set pub;
    int refs; /* the cache's and each request's (under rest_consents.mu) */
    arena *a;
} cset;

#define MAX_TENANTS 256

struct rest_consents {
    pthread_mutex_t mu;
    size_t n;
    cset *cur[MAX_TENANTS]; /* the newest set of each tenant seen */
    /* the newest snapshot t found to hold no Consent version past cur[i]'s stamp: a
     * snapshot t in [stamp, checked] needs no look at the store */
    uint64_t checked[MAX_TENANTS];
};

static const rest_consent_set empty_set;

rest_consents *rest_consents_new(void)
{
    rest_consents *cs = calloc(1, sizeof *cs);
    if (cs && pthread_mutex_init(&cs->mu, NULL)) {
        free(cs);
        cs = NULL;
    }
    return cs;
}

static void unref(cset *s)
{
    if (s && --s->refs == 0) {
        arena_free(s->a);
        free(s);
    }
}

void rest_consents_free(rest_consents *cs)
{
    if (!cs)
        return;
    for (size_t i = 0; i < cs->n; i++)
        unref(cs->cur[i]);
    pthread_mutex_destroy(&cs->mu);
    free(cs);
}

/* t of the newest Consent version of tenant in rd (0: none ever). */
static int newest_t(store_reader *rd, uint32_t tenant, uint64_t *t)
{
    store_hist_opts o = {.scope = STORE_SCOPE_TYPE, .tenant = tenant, .type = "Consent"};
    store_iter *it;
    int rc = store_history(rd, &o, &it);
    if (rc)
        return rc;
    store_version v;
    rc = store_iter_next(it, &v);
    *t = rc == 0 ? v.t : 0;
    store_iter_close(it);
    return rc == ERR_NOTFOUND ? 0 : rc;
}

static int build(store_reader *rd, uint32_t tenant, uint64_t stamp, cset **out)
{
    cset *s = calloc(1, sizeof *s);
    arena *a = s ? arena_new(16 * 1024) : NULL;
    if (!a) {
        free(s);
        return ERR_NOMEM;
    }
    s->a = a;
    s->refs = 1;
    s->pub.tenant = tenant;
    s->pub.stamp = stamp;
    store_iter *it;
    int rc = store_list(rd, tenant, "Consent", 0, NULL, &it);
    size_t cap = 0;
    auth_consent *c = NULL;
    arena *scratch = rc ? NULL : arena_new(16 * 1024);
    if (!rc && !scratch)
        rc = ERR_NOMEM;
    store_version v;
    while (!rc && !(rc = store_iter_next(it, &v))) {
        /* the tree points into its text: a copy in the set's arena */
        char *text = arena_strndup(a, v.bytes, v.len);
        json_val *doc;
        if (!text)
            rc = ERR_NOMEM;
        else if (json_parse(a, text, v.len, 0, &doc, NULL))
            continue; /* not JSON: the store never holds such */
        if (rc)
            break;
        auth_consent one;
        char msg[300];
        int r = auth_consent_read(doc, a, &one, msg, sizeof msg);
        if (r == 1)
            continue;
        if (r == ERR_NOMEM) {
            rc = r;
            break;
        }
        if (r) { /* stored before it was checked: fail closed */
            const char *pref = json_get_str(json_get(doc, "patient"), "reference");
            if (!pref || strncmp(pref, "Patient/", 8))
                continue; /* names no patient of this server: nothing to withhold */
            fprintf(stderr, "hortus: Consent/%s cannot be enforced as written (%s): "
                    "everything of %s is withheld from users until it is corrected\n",
                    v.id, msg, pref);
            memset(&one, 0, sizeof one);
            one.id = json_get_str(doc, "id");
            one.patient = pref + 8;
            one.root.deny = 1;
            one.root.start = INT64_MIN;
            one.root.end = INT64_MAX;
        }
        if (s->pub.n == REST_CONSENT_MAX) {
            rc = ERR_LIMIT;
            break;
        }
        if (s->pub.n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            auth_consent *g = arena_realloc(a, c, sizeof *c * cap, sizeof *c * nc);
            if (!g) {
                rc = ERR_NOMEM;
                break;
            }
            c = g;
            cap = nc;
        }
        c[s->pub.n++] = one;
    }
    if (rc == ERR_NOTFOUND)
        rc = 0;
    if (it && scratch)
        store_iter_close(it);
    arena_free(scratch);
    s->pub.c = c;
    if (rc) {
        unref(s);
        return rc;
    }
    *out = s;
    return 0;
}

int rest_consent_set_of(rest_req *r, const rest_consent_set **out)
{
    if (r->ctx.consents) {
        *out = r->ctx.consents;
        return 0;
    }
    rest_consents *cs = r->ctx.svc ? r->ctx.svc->consents : NULL;
    if (!cs) {
        *out = &empty_set;
        return 0;
    }
    store_reader *rd;
    int rc = rest_snapshot(r, &rd);
    if (rc)
        return rc;
    uint64_t t = store_reader_t(rd);
    pthread_mutex_lock(&cs->mu);
    size_t i = 0;
    while (i < cs->n && cs->cur[i]->pub.tenant != r->ctx.tenant)
        i++;
    cset *s = i < cs->n ? cs->cur[i] : NULL;
    if (s && t >= s->pub.stamp && t <= cs->checked[i]) { /* the read path's case */
        s->refs++;
        pthread_mutex_unlock(&cs->mu);
        r->ctx.consents = &s->pub;
        r->ctx.consents_release = rest_consent_release;
        *out = &s->pub;
        return 0;
    }
    pthread_mutex_unlock(&cs->mu);
    uint64_t stamp = 0;
    if ((rc = newest_t(rd, r->ctx.tenant, &stamp)))
        return rc;
    pthread_mutex_lock(&cs->mu);
    for (i = 0; i < cs->n && cs->cur[i]->pub.tenant != r->ctx.tenant;)
        i++;
    s = i < cs->n ? cs->cur[i] : NULL;
    if (!s || s->pub.stamp != stamp) {
        /* built under the lock: Consent writes are rare beside the reads that use them */
        cset *ns = NULL;
        if (i == cs->n && i == MAX_TENANTS)
            rc = ERR_LIMIT;
        else
            rc = build(rd, r->ctx.tenant, stamp, &ns);
        if (!rc) {
            if (s && s->pub.stamp > stamp) {
                /* an older snapshot: its own set, not cached */
            } else {
                if (i == cs->n)
                    cs->n++;
                unref(s);
                cs->cur[i] = ns;
                cs->checked[i] = t;
                ns->refs++;
            }
            s = ns;
        } else {
            s = NULL;
        }
    } else {
        s->refs++;
        if (t > cs->checked[i])
            cs->checked[i] = t;
    }
    pthread_mutex_unlock(&cs->mu);
    if (rc)
        return rc;
    r->ctx.consents = &s->pub;
    r->ctx.consents_release = rest_consent_release;
    *out = &s->pub;
    return 0;
}

void rest_consent_release(rest_req *r)
{
    r->ctx.consents_release = NULL;
    if (!r->ctx.consents)
        return;
    rest_consents *cs = r->ctx.svc->consents;
    cset *s = (cset *)((char *)r->ctx.consents - offsetof(cset, pub));
    r->ctx.consents = NULL;
    pthread_mutex_lock(&cs->mu);
    unref(s);
    pthread_mutex_unlock(&cs->mu);
}

int rest_consent_check(const json_val *res, char *msg, size_t msz)
{
    arena *a = arena_new(4096);
    if (!a)
        return ERR_NOMEM;
    auth_consent c;
    int rc = auth_consent_read(res, a, &c, msg, msz);
    arena_free(a);
    return rc == 1 ? 0 : rc;
}
