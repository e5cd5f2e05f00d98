/*
 * scope.c -- SMART scopes (App Launch 1.0 and 2.x) into rights, and the question
 * "may this principal do op on type".
 *
 *   scope      := context "/" type "." perms [ "?" query ]
 *   context    := "patient" | "user" | "system"
 *   type       := a resource type name | "*"
 *   perms (v1) := "read" (r s) | "write" (c u d) | "*" (c r u d s)
 *   perms (v2) := a non-empty subsequence of "cruds", in that order
 *   query (v2) := a search query (granular scope), kept as written
 *
 * A scope that is no resource scope (openid, fhirUser, launch/patient, offline_access)
 * grants nothing here; a malformed resource scope grants nothing either. Nothing is
 * widened: an unknown permission letter voids the scope instead of being skipped.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/err.h"

/* v2 letters in order: c r u d s. 0 when s[0..n) is not such a sequence. */
static unsigned v2_perms(const char *s, size_t n)
{
    static const char order[] = "cruds";
    static const unsigned bit[] = {AUTH_CREATE, AUTH_READ, AUTH_UPDATE, AUTH_DELETE,
                                   AUTH_SEARCH};
    unsigned ops = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        while (at < 5 && order[at] != s[i])
            at++;
        if (at == 5)
            return 0; /* unknown letter, repeated, or out of order */
        ops |= bit[at++];
    }
    return ops;
}

static int type_name_ok(const char *s, size_t n)
{
    if (n == 1 && s[0] == '*')
        return 1;
    if (n == 0 || n > AUTH_MAX_TYPE_LEN || s[0] < 'A' || s[0] > 'Z')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')))
            return 0;
    return 1;
}

/* One scope s[0..n) into *g (query copied into rights->text). 1 when it is a resource
 * scope, 0 when it grants nothing. */
static int parse_one(const char *s, size_t n, auth_rights *rights, auth_grant *g)
{
    static const struct {
        const char *name;
        auth_context ctx;
    } contexts[] = {{"patient/", AUTH_CTX_PATIENT}, {"user/", AUTH_CTX_USER},
                    {"system/", AUTH_CTX_SYSTEM}};
    size_t k;
    for (k = 0; k < 3; k++) {
        size_t cl = strlen(contexts[k].name);
        if (n > cl && !memcmp(s, contexts[k].name, cl)) {
            s += cl;
            n -= cl;
            break;
        }
    }
    if (k == 3)
        return 0;
    const char *dot = memchr(s, '.', n);
    if (!dot || !type_name_ok(s, (size_t)(dot - s)))
        return 0;
    size_t tl = (size_t)(dot - s);
    const char *perm = dot + 1;
    const char *q = memchr(perm, '?', n - tl - 1);
    size_t pl = q ? (size_t)(q - perm) : n - tl - 1;
    unsigned ops;
    int v1 = 0;
    if (pl == 4 && !memcmp(perm, "read", 4))
        ops = AUTH_READ | AUTH_SEARCH, v1 = 1;
    else if (pl == 5 && !memcmp(perm, "write", 5))
        ops = AUTH_CREATE | AUTH_UPDATE | AUTH_DELETE, v1 = 1;
    else if (pl == 1 && perm[0] == '*')
        ops = AUTH_CREATE | AUTH_READ | AUTH_UPDATE | AUTH_DELETE | AUTH_SEARCH, v1 = 1;
    else
        ops = v2_perms(perm, pl);
    if (!ops)
        return 0;
    memset(g, 0, sizeof *g);
    memcpy(g->type, s, tl);
    g->context = (uint8_t)contexts[k].ctx;
    g->ops = (uint8_t)ops;
    if (q) {
        size_t ql = n - tl - 1 - pl - 1;
        if (v1 || ql == 0)
            return 0; /* a query belongs to v2 scopes only, and is not empty */
        if (rights->text_len + ql + 1 > sizeof rights->text)
            return 0; /* cannot happen: the text is as long as the whole claim */
        g->q_off = (uint16_t)rights->text_len;
        g->q_len = (uint16_t)ql;
        memcpy(rights->text + rights->text_len, q + 1, ql);
        rights->text_len += ql;
        rights->text[rights->text_len++] = 0;
    }
    return 1;
}

int auth_scopes_parse(const char *s, size_t n, auth_rights *out)
{
    memset(out, 0, sizeof *out);
    if (n > AUTH_MAX_SCOPE_LEN)
        return ERR_TOOBIG;
    size_t i = 0;
    while (i < n) {
        while (i < n && s[i] == ' ')
            i++;
        size_t b = i;
        while (i < n && s[i] != ' ')
            i++;
        if (i == b)
            break;
        auth_grant g;
        if (!parse_one(s + b, i - b, out, &g))
            continue;
        if (out->n == AUTH_MAX_GRANTS)
            return ERR_TOOBIG;
        out->g[out->n++] = g;
    }
    return 0;
}

const char *auth_grant_query(const auth_rights *rights, const auth_grant *g)
{
    return g->q_len ? rights->text + g->q_off : NULL;
}

void auth_view_of(const auth_principal *p, const char *type, unsigned op, auth_view *out)
{
    memset(out, 0, sizeof *out);
    int whole = 0, patient = 0, pgran = 0, ugran = 0;
    for (size_t i = 0; i < p->rights.n; i++) {
        const auth_grant *g = &p->rights.g[i];
        if (!(g->ops & op) || (strcmp(g->type, "*") && strcmp(g->type, type)))
            continue;
        if (!g->q_len)
            *(g->context == AUTH_CTX_PATIENT ? &patient : &whole) = 1;
        else
            *(g->context == AUTH_CTX_PATIENT ? &pgran : &ugran) = 1;
    }
    if (whole) {
        out->kind = AUTH_VIEW_ALL;
        return;
    }
    if (!patient && !pgran && !ugran)
        return; /* AUTH_VIEW_NONE */
    if ((patient || pgran) && ugran) {
        out->kind = AUTH_VIEW_MIXED;
        return;
    }
    out->kind = AUTH_VIEW_SOME;
    out->patient = patient || pgran;
    if (patient)
        return; /* the whole compartment: its granular grants add nothing */
    for (size_t i = 0; i < p->rights.n; i++) {
        const auth_grant *g = &p->rights.g[i];
        if ((g->ops & op) && g->q_len && (!strcmp(g->type, "*") || !strcmp(g->type, type)))
            out->q[out->nq++] = auth_grant_query(&p->rights, g);
    }
}

int auth_scope_valid(const char *s, size_t n)
{
    auth_rights *tmp = calloc(1, sizeof *tmp); /* parse_one keeps a query in its text */
    if (!tmp || n > AUTH_MAX_SCOPE_LEN || memchr(s, ' ', n)) {
        free(tmp);
        return 0;
    }
    auth_grant g;
    int ok = parse_one(s, n, tmp, &g);
    free(tmp);
    return ok;
}

int auth_scope_covers(const char *reg, size_t gn, const char *req, size_t rn)
{
    if (gn == rn && !memcmp(reg, req, rn))
        return 1;
    if (gn > AUTH_MAX_SCOPE_LEN || rn > AUTH_MAX_SCOPE_LEN)
        return 0;
    auth_rights *ra = calloc(2, sizeof *ra);
    if (!ra)
        return 0;
    auth_grant g, q;
    int ok = parse_one(reg, gn, &ra[0], &g) && parse_one(req, rn, &ra[1], &q) &&
             g.context == q.context && (!strcmp(g.type, "*") || !strcmp(g.type, q.type)) &&
             (q.ops & ~g.ops) == 0;
    if (ok && g.q_len) /* a granular registration grants only its own query */
        ok = q.q_len == g.q_len &&
             !memcmp(auth_grant_query(&ra[0], &g), auth_grant_query(&ra[1], &q), g.q_len);
    free(ra);
    return ok;
}
