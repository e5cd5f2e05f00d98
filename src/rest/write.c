/*
 * write.c -- what create, update and delete share.
 *
 * The request thread does all the JSON work: parse (strict FHIR JSON), check
 * the resource against the URL and the model, and build the final bytes with
 * id, meta.versionId and meta.lastUpdated spliced in. Only then is the write
 * handed to the store, whose single writer thread just checks the expected
 * version and appends. The connection is suspended meanwhile (rest_submit) and
 * the handler's resume function answers once the commit is durable:
 *
 *   body --json_parse--> tree --checks--> rest_build_bytes --> store_submit
 *                                                                  | suspend
 *   201/200 + ETag + Location <-- resume <-- done callback (after fsync)
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/err.h"
#include "base/time.h"
#include "fhir/validate.h"
#include "rest/rest.h"
#include "store/store.h"

rest_prefer rest_prefer_return(rest_req *r)
{
    const char *p = rest_header(r, "Prefer");
    if (!p)
        return REST_RETURN_REPRESENTATION;
    const char *q = strstr(p, "return=");
    if (!q)
        return REST_RETURN_REPRESENTATION;
    q += 7;
    if (!strncmp(q, "minimal", 7))
        return REST_RETURN_MINIMAL;
    if (!strncmp(q, "OperationOutcome", 16))
        return REST_RETURN_OUTCOME;
    return REST_RETURN_REPRESENTATION;
}

/* Structural validation against the model (src/fhir/validate.h): every issue
 * found goes back in one OperationOutcome. Returns 0, or 1 when a 400 was sent. */
static int rest_validate(rest_req *r, const json_val *root)
{
    oo o;
    oo_init(&o, r->a);
    int rc = val_resource(r->a, root, r->route.type->name, &o);
    if (rc == 0)
        return 0;
    if (rc == ERR_NOMEM)
        return rest_send_errcode(r, rc, "out of memory"), 1;
    return rest_send_outcome(r, 400, &o), 1;
}

int rest_parse_resource(rest_req *r, json_val **root)
{
    char msg[400];
    json_error je;
    memset(&je, 0, sizeof je);
    if (r->body.len == 0)
        return rest_send_error(r, 400, OO_INVALID, "the request has no body: send a resource",
                               NULL),
               1;
    int rc = json_parse(r->a, r->body.data, r->body.len, JSON_FHIR, root, &je);
    if (rc == ERR_TOOBIG) {
        snprintf(msg, sizeof msg, "JSON nested deeper than %d levels (line %d, column %d)",
                 JSON_MAX_DEPTH, je.line, je.col);
        return rest_send_error(r, 400, OO_TOO_COSTLY, msg, NULL), 1;
    }
    if (rc == ERR_NOMEM)
        return rest_send_errcode(r, rc, "out of memory"), 1;
    if (rc) {
        snprintf(msg, sizeof msg, "invalid JSON at line %d, column %d: %s", je.line, je.col,
                 je.msg);
        return rest_send_error(r, 400, OO_STRUCTURE, msg, NULL), 1;
    }
    const json_val *v = *root;
    if (v->type != JSON_OBJECT)
        return rest_send_error(r, 400, OO_STRUCTURE, "the body must be a JSON object (a resource)",
                               NULL),
               1;
    const json_val *rt = json_get(v, "resourceType");
    if (!rt || rt->type != JSON_STRING)
        return rest_send_error(r, 400, OO_REQUIRED,
                               "the resource has no resourceType string", "resourceType"),
               1;
    const char *want = r->route.type->name;
    if (strcmp(rt->u.s, want) != 0) {
        snprintf(msg, sizeof msg,
                 "resourceType '%.64s' does not match the resource type of the URL '%s'",
                 rt->u.s, want);
        return rest_send_error(r, 400, OO_INVALID, msg, "resourceType"), 1;
    }
    return rest_validate(r, *root);
}

static void put_meta(jw *w, const json_val *meta, uint64_t vid, int64_t lu)
{
    char tmp[40];
    jw_key(w, "meta");
    jw_obj(w);
    jw_key(w, "versionId");
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)vid);
    jw_str(w, tmp);
    jw_key(w, "lastUpdated");
    ftime_format_instant(lu, tmp);
    jw_str(w, tmp);
    if (meta && meta->type == JSON_OBJECT)
        for (uint32_t i = 0; i < meta->n; i++) {
            const json_member *m = &meta->u.members[i];
            if (!strcmp(m->key, "versionId") || !strcmp(m->key, "lastUpdated"))
                continue;
            jw_keyn(w, m->key, m->key_len);
            jw_val(w, &m->val);
        }
    jw_end(w);
}

void rest_build_bytes(const json_val *root, const char *type, const char *id, uint64_t vid,
                      int64_t lu, buf *out)
{
    buf_reset(out);
    jw w;
    jw_init(&w, out, 0);
    jw_obj(&w);
    jw_key(&w, "resourceType");
    jw_str(&w, type);
    jw_key(&w, "id");
    jw_str(&w, id);
    put_meta(&w, json_get(root, "meta"), vid, lu);
    for (uint32_t i = 0; i < root->n; i++) {
        const json_member *m = &root->u.members[i];
        if (!strcmp(m->key, "resourceType") || !strcmp(m->key, "id") ||
            !strcmp(m->key, "meta"))
            continue;
        jw_keyn(&w, m->key, m->key_len);
        jw_val(&w, &m->val);
    }
    jw_end(&w);
}

int rest_if_match(rest_req *r, uint64_t *vid)
{
    const char *h = rest_header(r, "If-Match");
    if (!h)
        return 0;
    const char *p = h;
    while (*p == ' ')
        p++;
    if (p[0] == 'W' && p[1] == '/')
        p += 2;
    size_t n = strlen(p);
    while (n && p[n - 1] == ' ')
        n--;
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
        p++;
        n -= 2;
    }
    return rest_vid_parse(p, n, vid) ? -1 : 1;
}

static void on_store_done(void *ctx, int rc, uint64_t t)
{
    rest_req *r = ctx;
    r->store_rc = rc;
    r->store_t = t;
    rest_resume(r);
}

int rest_submit(rest_req *r, struct store_req *req, rest_resume_fn resume)
{
    if (!r->inflight) {
        if (!rest_writes_allowed(r))
            return rest_send_error(r, 503, OO_TRANSIENT, "the server is shutting down", NULL);
        r->inflight = 1;
    }
    r->resume = resume;
    r->store_rc = 0;
    r->store_t = 0;
    rest_suspend(r);
    int rc = store_submit(rest_store(r), req, on_store_done, r);
    if (rc) {
        /* refused without a callback: answer from the resumed handler */
        r->store_rc = rc;
        rest_resume(r);
    }
    return REST_SUSPENDED;
}

int rest_send_write(rest_req *r, unsigned status, const char *type, const char *id,
                    uint64_t vid, int64_t lu, const char *bytes, size_t len, int location,
                    const char *what)
{
    const char *base = rest_base_url(r);
    buf loc = BUF_INIT;
    rest_reply rep = {.status = status, .etag_vid = vid, .last_modified_s = lu / 1000000};
    if (location) {
        buf_printf(&loc, "%s/%s/%s/_history/%llu", base, type, id, (unsigned long long)vid);
        if (!loc.err)
            rep.location = loc.data;
    }
    rest_prefer pref = rest_prefer_return(r);
    buf b = BUF_INIT;
    if (pref == REST_RETURN_REPRESENTATION && bytes) {
        if (r->pretty) {
            json_val *v;
            if (json_parse(r->a, bytes, len, 0, &v, NULL) == 0)
                json_write(&b, v, 1);
            else
                buf_put(&b, bytes, len);
        } else {
            buf_put(&b, bytes, len);
        }
    } else if (pref == REST_RETURN_OUTCOME) {
        char diag[200];
        snprintf(diag, sizeof diag, "%s %s/%s, version %llu", what, type, id,
                 (unsigned long long)vid);
        jw w;
        jw_init(&w, &b, r->pretty);
        jw_obj(&w);
        jw_key(&w, "resourceType");
        jw_str(&w, "OperationOutcome");
        jw_key(&w, "issue");
        jw_arr(&w);
        jw_obj(&w);
        jw_key(&w, "severity");
        jw_str(&w, "information");
        jw_key(&w, "code");
        jw_str(&w, "informational");
        jw_key(&w, "diagnostics");
        jw_str(&w, diag);
        jw_end(&w);
        jw_end(&w);
        jw_end(&w);
    }
    if (b.len && !b.err) {
        size_t n = 0;
        rep.body = buf_detach(&b, &n);
        rep.len = n;
        rep.body_is_heap = 1;
    }
    buf_free(&b);
    int rc = rest_send(r, &rep);
    buf_free(&loc);
    return rc;
}

void rest_new_id(char out[37])
{
    /* A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random
     * bits. Ids made close in time sort close together, so a burst of creates
     * dirties a few neighbouring B-tree pages of the store's id-keyed indices
     * instead of one random page each (measured in docs/STORAGE.md). */
    unsigned char u[16];
    size_t got = 0;
    while (got < sizeof u) {
        ssize_t n = getrandom(u + got, sizeof u - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    for (int i = 0; i < 6; i++)
        u[i] = (unsigned char)(ms >> (40 - 8 * i));
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x70); /* version 7 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 9562 variant */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = 0;
}

int rest_write_checks(rest_req *r, uint64_t *if_match, int *has_if_match)
{
    if (!rest_id_valid(r->route.id, r->route.id_len)) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "invalid id '%.80s' in the URL: 1-%d characters of A-Z a-z 0-9 - .",
                 r->route.id, REST_MAX_ID);
        rest_send_error(r, 400, OO_INVALID, msg, NULL);
        return 1;
    }
    int im = rest_if_match(r, if_match);
    if (im < 0) {
        rest_send_error(r, 400, OO_INVALID, "malformed If-Match: expected W/\"versionId\"",
                        NULL);
        return 1;
    }
    *has_if_match = im;
    return 0;
}

int rest_write_lost_race(rest_req *r, int has_if_match, int (*again)(rest_req *r),
                         const char *busy)
{
    if (has_if_match)
        return rest_send_error(r, 412, OO_CONFLICT,
                               "version conflict: the resource was changed concurrently", NULL);
    if (r->retries++ < REST_MAX_RETRIES)
        return again(r);
    return rest_send_error(r, 409, OO_CONFLICT, busy, NULL);
}
