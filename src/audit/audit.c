/*
 * audit.c -- AuditEvents (BALP shape), their keys, the queue of events that ride no
 * change, and the walk of the hash chain (audit.h, docs/AUDIT.md).
 *
 * The queue is a mutex-guarded list drained by one flusher thread: a request thread
 * only copies its event in and signals, so a read never waits for a commit. The flusher
 * commits everything queued as one request of extras alone (store.h allows it: it gets
 * a t of its own) when AUDIT_BATCH_MAX events wait, the oldest has waited
 * AUDIT_FLUSH_MS, or a change is being submitted (audit_kick), whichever comes first: with
 * writes flowing, the queue's request reaches the writer beside them and shares their
 * group commit instead of costing an fsync of its own.
 */
#include <errno.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "base/err.h"
#include "base/time.h"
#include "store/codec.h"
#include "json/json.h"

/* ---- building ------------------------------------------------------------------ */

/* A Coding without display: the code systems define them, and every byte of an event is
 * written for every request. */
static void put_coding(buf *b, const char *system, const char *code)
{
    buf_puts(b, "{\"system\":\"");
    buf_puts(b, system); /* static, nothing to escape */
    buf_puts(b, "\",\"code\":");
    json_write_string(b, code, strlen(code));
    buf_putc(b, '}');
}

static void put_str(buf *b, const char *key, const char *s)
{
    buf_putc(b, '"');
    buf_puts(b, key);
    buf_puts(b, "\":");
    json_write_string(b, s, strlen(s));
}

/* "Patient/x" or an absolute URL: a reference; anything else is no reference. */
static int looks_like_reference(const char *s)
{
    if (!strncmp(s, "http://", 7) || !strncmp(s, "https://", 8))
        return 1;
    const char *sl = strchr(s, '/');
    return sl && sl > s && s[0] >= 'A' && s[0] <= 'Z' && sl[1];
}

static const char *profile_of(const char *sub)
{
    if (!strcmp(sub, "create"))
        return "IHE.BasicAudit.Create";
    if (!strcmp(sub, "read") || !strcmp(sub, "vread"))
        return "IHE.BasicAudit.Read";
    if (!strcmp(sub, "update") || !strcmp(sub, "patch"))
        return "IHE.BasicAudit.Update";
    if (!strcmp(sub, "delete"))
        return "IHE.BasicAudit.Delete";
    if (!strncmp(sub, "search", 6))
        return "IHE.BasicAudit.Query";
    return NULL;
}

static const char b64d[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_base64(buf *b, const unsigned char *p, size_t n)
{
    buf_putc(b, '"');
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        buf_putc(b, b64d[v >> 18 & 63]);
        buf_putc(b, b64d[v >> 12 & 63]);
        buf_putc(b, i + 1 < n ? b64d[v >> 6 & 63] : '=');
        buf_putc(b, i + 2 < n ? b64d[v & 63] : '=');
    }
    buf_putc(b, '"');
}

/* The stored record: what varies from event to event, nothing the BALP shape adds (that
 * is put around it when it is served: audit_expand), so each request writes ~250 bytes
 * instead of ~1.4 KiB. */
static void opt_str(buf *b, const char *key, const char *v)
{
    if (!v || !*v)
        return;
    buf_printf(b, ",\"%s\":", key);
    json_write_string(b, v, strlen(v));
}

int audit_build(const audit_info *in, buf *b, size_t *link_off)
{
    size_t start = b->len;
    buf_puts(b, AUDIT_RECORD_PREFIX);
    *link_off = b->len - start;
    for (int i = 0; i < STORE_CHAIN_HEX; i++)
        buf_putc(b, '0');
    buf_puts(b, "\",\"sub\":");
    json_write_string(b, in->subtype, strlen(in->subtype));
    buf_printf(b, ",\"act\":\"%c\",\"rec\":%lld,\"st\":%u", in->action,
               (long long)in->recorded_us, in->status);
    opt_str(b, "desc", in->desc);
    opt_str(b, "cli", in->client);
    opt_str(b, "uref", in->user_ref);
    opt_str(b, "usub", in->user_sub);
    opt_str(b, "ip", in->address);
    opt_str(b, "site", in->site);
    opt_str(b, "pur", in->purpose);
    opt_str(b, "q", in->query);
    size_t nent = in->nent < AUDIT_MAX_ENTITIES ? in->nent : AUDIT_MAX_ENTITIES;
    for (size_t i = 0; i < nent; i++) {
        const audit_entity *e = &in->ent[i];
        buf_puts(b, i ? ",\"" : ",\"ent\":[\"");
        buf_puts(b, e->type);
        buf_putc(b, '/');
        buf_put(b, e->id, e->id_len); /* a FHIR id: nothing to escape */
        if (e->vid)
            buf_printf(b, "/_history/%llu", (unsigned long long)e->vid);
        buf_putc(b, '"');
    }
    if (nent)
        buf_putc(b, ']');
    buf_putc(b, '}');
    return b->err;
}

static int full_build(const audit_info *in, const char *id, const char *prev,
                      const char *const *ents, size_t nent, buf *b);

static const char *str_of(const json_val *o, const char *key)
{
    const char *v = json_get_str(o, key);
    return v && *v ? v : NULL;
}

int audit_expand(arena *a, const void *stored, size_t len, const char *id, buf *out)
{
    static const char pre[] = AUDIT_RECORD_PREFIX;
    size_t pl = sizeof pre - 1;
    char *copy = NULL;
    json_val *r = NULL;
    if (len >= pl + STORE_CHAIN_HEX && !memcmp(stored, pre, pl)) {
        if (!(copy = arena_strndup(a, stored, len)))
            return ERR_NOMEM;
        if (json_parse(a, copy, len, 0, &r, NULL) || r->type != JSON_OBJECT)
            r = NULL;
    }
    if (!r) { /* not written by hortus: shown as nothing */
        buf_puts(out, "{\"resourceType\":\"AuditEvent\",\"id\":");
        json_write_string(out, id, strlen(id));
        buf_puts(out, ",\"extension\":[]}");
        return out->err;
    }
    audit_info in = {0};
    const char *sub = str_of(r, "sub"), *act = str_of(r, "act");
    const json_val *rec = json_get(r, "rec"), *st = json_get(r, "st");
    in.subtype = sub ? sub : "read";
    in.action = act ? act[0] : 'R';
    in.recorded_us = rec && rec->type == JSON_NUMBER ? strtoll(rec->u.s, NULL, 10) : 0;
    in.status = st && st->type == JSON_NUMBER ? (unsigned)strtoul(st->u.s, NULL, 10) : 0;
    in.desc = str_of(r, "desc");
    in.client = str_of(r, "cli");
    in.user_ref = str_of(r, "uref");
    in.user_sub = str_of(r, "usub");
    in.address = str_of(r, "ip");
    in.site = str_of(r, "site");
    in.purpose = str_of(r, "pur");
    in.query = str_of(r, "q");
    const char *ents[AUDIT_MAX_ENTITIES];
    size_t nent = 0;
    const json_val *ev = json_get(r, "ent");
    for (uint32_t i = 0; ev && ev->type == JSON_ARRAY && i < ev->n && nent < AUDIT_MAX_ENTITIES;
         i++)
        if (ev->u.items[i].type == JSON_STRING)
            ents[nent++] = ev->u.items[i].u.s;
    return full_build(&in, id, copy + pl, ents, nent, out);
}

/* The AuditEvent as served (BALP), from what the stored record says: prev the link's 64
 * hex digits, ents[0..nent) "Type/id[/_history/vid]". */
static int full_build(const audit_info *in, const char *id, const char *prev,
                      const char *const *ents, size_t nent, buf *b)
{
    buf_puts(b, "{\"resourceType\":\"AuditEvent\",\"id\":");
    json_write_string(b, id, strlen(id));
    buf_puts(b, ",\"extension\":[{\"url\":\"" AUDIT_PREV_URL "\",\"valueString\":\"");
    buf_put(b, prev, STORE_CHAIN_HEX);
    buf_puts(b, "\"}]");
    const char *prof = profile_of(in->subtype);
    if (prof)
        buf_printf(b,
                   ",\"meta\":{\"profile\":[\"https://profiles.ihe.net/ITI/BALP/"
                   "StructureDefinition/%s\"]}",
                   prof);
    buf_puts(b, ",\"type\":");
    put_coding(b, "http://terminology.hl7.org/CodeSystem/audit-event-type", "rest");
    buf_puts(b, ",\"subtype\":[");
    put_coding(b, "http://hl7.org/fhir/restful-interaction", in->subtype);
    buf_printf(b, "],\"action\":\"%c\"", in->action);
    char inst[FTIME_INSTANT_LEN + 1];
    ftime_format_instant(in->recorded_us, inst);
    buf_printf(b, ",\"recorded\":\"%s\"", inst);
    const char *oc = in->status >= 500 ? "8" : in->status >= 400 ? "4" : "0";
    buf_printf(b, ",\"outcome\":\"%s\"", oc);
    char desc[64];
    const char *d = in->desc;
    if (!d) {
        if (in->status)
            snprintf(desc, sizeof desc, "HTTP %u", in->status);
        else
            snprintf(desc, sizeof desc, "committed");
        d = desc;
    }
    buf_putc(b, ',');
    put_str(b, "outcomeDesc", d);
    if (in->purpose && *in->purpose) {
        /* space-separated, each "code" (v3-ActReason) or "system|code" (auth.h) */
        buf_puts(b, ",\"purposeOfEvent\":[");
        int first = 1;
        for (const char *q = in->purpose; *q;) {
            const char *e = strchr(q, ' ');
            size_t n = e ? (size_t)(e - q) : strlen(q);
            const char *bar = memchr(q, '|', n);
            if (n) {
                buf_puts(b, first ? "{\"coding\":[{\"system\":" : ",{\"coding\":[{\"system\":");
                if (bar)
                    json_write_string(b, q, (size_t)(bar - q));
                else
                    buf_puts(b, "\"http://terminology.hl7.org/CodeSystem/v3-ActReason\"");
                buf_puts(b, ",\"code\":");
                json_write_string(b, bar ? bar + 1 : q, bar ? n - (size_t)(bar + 1 - q) : n);
                buf_puts(b, "}]}");
                first = 0;
            }
            q += n;
            while (*q == ' ')
                q++;
        }
        buf_putc(b, ']');
    }
    /* agents: the client (requestor), the user when the token names one, this server */
    int user = (in->user_ref && *in->user_ref) || (in->user_sub && *in->user_sub);
    buf_puts(b, ",\"agent\":[{\"type\":{\"coding\":[");
    put_coding(b, "http://dicom.nema.org/resources/ontology/DCM", "110153");
    buf_puts(b, "]},\"who\":{\"identifier\":{\"system\":\"urn:hortus:client-id\",");
    put_str(b, "value", in->client && *in->client ? in->client : "anonymous");
    buf_puts(b, "}},\"requestor\":true");
    if (in->address && *in->address) {
        buf_puts(b, ",\"network\":{");
        put_str(b, "address", in->address);
        buf_puts(b, ",\"type\":\"2\"}");
    }
    buf_putc(b, '}');
    if (user) {
        buf_puts(b, ",{\"type\":{\"coding\":[");
        put_coding(b, "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                   "humanuser");
        buf_puts(b, "]},\"who\":{");
        const char *u = in->user_ref && *in->user_ref ? in->user_ref : in->user_sub;
        if (looks_like_reference(u)) {
            put_str(b, "reference", u);
        } else {
            buf_puts(b, "\"identifier\":{");
            put_str(b, "value", u);
            buf_putc(b, '}');
        }
        if (in->user_sub && *in->user_sub && u != in->user_sub) {
            buf_putc(b, ',');
            put_str(b, "display", in->user_sub);
        }
        buf_puts(b, "},\"requestor\":true}");
    }
    buf_puts(b, ",{\"type\":{\"coding\":[");
    put_coding(b, "http://dicom.nema.org/resources/ontology/DCM", "110152");
    buf_puts(b, "]},\"who\":{\"display\":\"hortus\"},\"requestor\":false");
    if (in->site) {
        buf_puts(b, ",\"network\":{");
        put_str(b, "address", in->site);
        buf_puts(b, ",\"type\":\"5\"}");
    }
    buf_puts(b, "}],\"source\":{");
    if (in->site) {
        put_str(b, "site", in->site);
        buf_putc(b, ',');
    }
    buf_puts(b, "\"observer\":{\"display\":\"hortus\"},\"type\":[");
    put_coding(b, "http://terminology.hl7.org/CodeSystem/security-source-type", "4");
    buf_puts(b, "]}");
    if (nent || in->query) {
        buf_puts(b, ",\"entity\":[");
        for (size_t i = 0; i < nent; i++) {
            buf_puts(b, i ? ",{" : "{");
            buf_puts(b, "\"what\":{\"reference\":");
            json_write_string(b, ents[i], strlen(ents[i]));
            buf_puts(b, "},\"type\":");
            put_coding(b, "http://terminology.hl7.org/CodeSystem/audit-entity-type", "2");
            buf_puts(b, ",\"role\":");
            put_coding(b, "http://terminology.hl7.org/CodeSystem/object-role", "4");
            buf_putc(b, '}');
        }
        if (in->query) {
            buf_puts(b, nent ? ",{" : "{");
            buf_puts(b, "\"type\":");
            put_coding(b, "http://terminology.hl7.org/CodeSystem/audit-entity-type", "2");
            buf_puts(b, ",\"role\":");
            put_coding(b, "http://terminology.hl7.org/CodeSystem/object-role", "24");
            buf_puts(b, ",\"query\":");
            put_base64(b, (const unsigned char *)in->query, strlen(in->query));
            buf_putc(b, '}');
        }
        buf_putc(b, ']');
    }
    buf_putc(b, '}');
    return b->err;
}

void audit_key(uint8_t k[AUDIT_KEY_LEN], uint32_t tenant, uint64_t t, uint32_t seq)
{
    codec_put_u32(k, tenant);
    codec_put_u64(k + 4, t);
    codec_put_u32(k + 12, seq);
}

void audit_head_key(uint8_t k[AUDIT_KEY_LEN], uint32_t tenant)
{
    codec_put_u32(k, tenant);
    memset(k + 4, 0xff, AUDIT_KEY_LEN - 4);
}

int audit_is_head(const uint8_t *k, size_t n)
{
    if (n != AUDIT_KEY_LEN)
        return 0;
    for (size_t i = 4; i < AUDIT_KEY_LEN; i++)
        if (k[i] != 0xff)
            return 0;
    return 1;
}

void audit_key_decode(const uint8_t *k, uint32_t *tenant, uint64_t *t, uint32_t *seq)
{
    *tenant = codec_get_u32(k);
    *t = codec_get_u64(k + 4);
    *seq = codec_get_u32(k + 12);
}

void audit_extra(store_extra *x, uint8_t *key, uint32_t tenant, uint32_t seq, const char *json,
                 size_t len, size_t link_off)
{
    audit_key(key, tenant, 0, seq);
    memset(x, 0, sizeof *x);
    x->db = STORE_DB_AUDIT;
    x->key = key;
    x->key_len = AUDIT_KEY_LEN;
    x->val = json;
    x->val_len = len;
    x->fill_t = 1;
    x->t_offset = 4;
    x->chain = 1;
    x->chain_offset = link_off;
}

void audit_id_format(uint64_t t, uint32_t seq, char *out)
{
    snprintf(out, AUDIT_ID_MAX + 1, "%llu-%u", (unsigned long long)t, seq);
}

int audit_id_parse(const char *s, size_t n, uint64_t *t, uint32_t *seq)
{
    uint64_t a = 0, b = 0;
    size_t i = 0, da = 0, db = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9' && da < 19; i++, da++)
        a = a * 10 + (uint64_t)(s[i] - '0');
    if (!da || i >= n || s[i] != '-')
        return ERR_INVALID;
    for (i++; i < n && s[i] >= '0' && s[i] <= '9' && db < 10; i++, db++)
        b = b * 10 + (uint64_t)(s[i] - '0');
    if (!db || i != n || b > UINT32_MAX)
        return ERR_INVALID;
    *t = a;
    *seq = (uint32_t)b;
    return 0;
}

/* ---- the queue ----------------------------------------------------------------- */

typedef struct qev {
    struct qev *next;
    uint32_t tenant;
    int taken; /* commit_batch: in a request already */
    size_t len, link_off;
    char json[];
} qev;

struct audit_log {
    store *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* the flusher waits for events */
    pthread_cond_t done_cv; /* audit_flush waits for the flusher */
    pthread_cond_t room_cv; /* audit_enqueue waits for room (AUDIT_QUEUE_MAX) */
    qev *head, **tail;
    size_t n;
    int64_t first_ms; /* when the oldest queued event came (monotonic ms) */
    uint64_t flushes_asked, flushes_done;
    int stop;
    int kick; /* a change is being committed: flush now, so the queue rides its commit */
    int busy; /* the flusher holds a batch not yet committed */
    uint64_t written, commits, dropped;
    pthread_t th;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Commit the events of list (n of them): one store request per tenant (each request's
 * commit log entry is its tenant's), the events of a tenant in queue order, which is
 * their order in its chain. Frees the list. */
static void commit_batch(audit_log *l, qev *list, size_t n)
{
    store_extra *x = calloc(n, sizeof *x);
    uint8_t *keys = malloc(n * AUDIT_KEY_LEN);
    size_t written = 0, commits = 0, lost = 0;
    if (!x || !keys) {
        lost = n;
        fprintf(stderr, "hortus: audit: %zu events could not be stored: out of memory\n", n);
    }
    for (qev *first = x && keys ? list : NULL; first;) {
        uint32_t tenant = first->tenant;
        size_t k = 0;
        for (qev *e = first; e; e = e->next) {
            if (e->taken || e->tenant != tenant)
                continue;
            audit_extra(&x[k], keys + k * AUDIT_KEY_LEN, tenant, (uint32_t)k, e->json, e->len,
                        e->link_off);
            k++;
            e->taken = 1;
        }
        store_req req;
        memset(&req, 0, sizeof req);
        req.tenant = tenant;
        req.extras = x;
        req.nextra = k;
        int rc = store_write(l->s, &req, NULL);
        if (rc) {
            fprintf(stderr, "hortus: audit: %zu events could not be stored: %s\n", k, err_str(rc));
            lost += k;
        } else {
            written += k;
            commits++;
        }
        while (first && first->taken) /* the next tenant with events not taken yet */
            first = first->next;
    }
    pthread_mutex_lock(&l->mu);
    l->written += written;
    l->commits += commits;
    l->dropped += lost;
    pthread_mutex_unlock(&l->mu);
    free(x);
    free(keys);
    while (list) {
        qev *nx = list->next;
        free(list);
        list = nx;
    }
}

static void *flusher(void *arg)
{
    audit_log *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->n && !l->stop && l->flushes_asked == l->flushes_done)
            pthread_cond_wait(&l->cv, &l->mu);
        if (!l->n) {
            l->flushes_done = l->flushes_asked;
            pthread_cond_broadcast(&l->done_cv);
            if (l->stop)
                break;
            continue;
        }
        /* wait for more, up to the batch size or the oldest event's deadline */
        while (l->n < AUDIT_BATCH_MAX && !l->stop && !l->kick &&
               l->flushes_asked == l->flushes_done) {
            int64_t left = l->first_ms + AUDIT_FLUSH_MS - mono_ms();
            if (left <= 0)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)(left % 1000) * 1000000;
            ts.tv_sec += left / 1000 + ts.tv_nsec / 1000000000;
            ts.tv_nsec %= 1000000000;
            pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        }
        qev *list = l->head;
        size_t n = l->n;
        l->kick = 0;
        uint64_t asked = l->flushes_asked;
        l->head = NULL;
        l->tail = &l->head;
        l->n = 0;
        l->busy = 1;
        pthread_cond_broadcast(&l->room_cv);
        pthread_mutex_unlock(&l->mu);
        commit_batch(l, list, n);
        pthread_mutex_lock(&l->mu);
        l->busy = 0;
        if (!l->n) {
            l->flushes_done = asked;
            pthread_cond_broadcast(&l->done_cv);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int audit_open(store *s, audit_log **out)
{
    audit_log *l = calloc(1, sizeof *l);
    if (!l)
        return ERR_NOMEM;
    l->s = s;
    l->tail = &l->head;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    pthread_cond_init(&l->done_cv, NULL);
    pthread_cond_init(&l->room_cv, NULL);
    if (pthread_create(&l->th, NULL, flusher, l)) {
        pthread_cond_destroy(&l->cv);
        pthread_cond_destroy(&l->done_cv);
        pthread_cond_destroy(&l->room_cv);
        pthread_mutex_destroy(&l->mu);
        free(l);
        return ERR_IO;
    }
    *out = l;
    return 0;
}

int audit_enqueue(audit_log *l, uint32_t tenant, const char *json, size_t len, size_t link_off)
{
    qev *e = malloc(sizeof *e + len);
    if (!e) {
        pthread_mutex_lock(&l->mu);
        l->dropped++;
        pthread_mutex_unlock(&l->mu);
        return ERR_NOMEM;
    }
    e->next = NULL;
    e->tenant = tenant;
    e->taken = 0;
    e->len = len;
    e->link_off = link_off;
    memcpy(e->json, json, len);
    pthread_mutex_lock(&l->mu);
    /* bounded: when the store falls behind, requests wait for room rather than the
     * queue growing without end (or events being dropped) */
    while (l->n >= AUDIT_QUEUE_MAX && !l->stop) {
        pthread_cond_signal(&l->cv);
        pthread_cond_wait(&l->room_cv, &l->mu);
    }
    if (!l->n)
        l->first_ms = mono_ms();
    *l->tail = e;
    l->tail = &e->next;
    l->n++;
    if (l->n == 1 || l->n >= AUDIT_BATCH_MAX)
        pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

void audit_kick(audit_log *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    if (l->n && !l->kick) {
        l->kick = 1;
        pthread_cond_signal(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
}

void audit_flush(audit_log *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    uint64_t ticket = ++l->flushes_asked;
    pthread_cond_signal(&l->cv);
    while (l->flushes_done < ticket)
        pthread_cond_wait(&l->done_cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

void audit_close(audit_log *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_signal(&l->cv);
    pthread_cond_broadcast(&l->room_cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->th, NULL);
    pthread_cond_destroy(&l->cv);
    pthread_cond_destroy(&l->done_cv);
    pthread_cond_destroy(&l->room_cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

void audit_stats(audit_log *l, uint64_t *written, uint64_t *commits, uint64_t *dropped)
{
    pthread_mutex_lock(&l->mu);
    *written = l->written;
    *commits = l->commits;
    *dropped = l->dropped;
    pthread_mutex_unlock(&l->mu);
}

void audit_metrics(audit_log *l, buf *b)
{
    if (!l)
        return;
    uint64_t w, c, d;
    audit_stats(l, &w, &c, &d);
    buf_printf(b,
               "# HELP hortus_audit_queued_events_total AuditEvents committed from the queue "
               "(reads, searches, failures; a change's event rides its commit).\n"
               "# TYPE hortus_audit_queued_events_total counter\n"
               "hortus_audit_queued_events_total %llu\n"
               "# HELP hortus_audit_flushes_total Commits of queued AuditEvents.\n"
               "# TYPE hortus_audit_flushes_total counter\n"
               "hortus_audit_flushes_total %llu\n"
               "# HELP hortus_audit_lost_events_total AuditEvents that could not be stored.\n"
               "# TYPE hortus_audit_lost_events_total counter\n"
               "hortus_audit_lost_events_total %llu\n",
               (unsigned long long)w, (unsigned long long)c, (unsigned long long)d);
}

/* ---- the walk ------------------------------------------------------------------ */

static void hex32(const uint8_t *h, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = d[h[i] >> 4];
        out[2 * i + 1] = d[h[i] & 15];
    }
    out[64] = 0;
}

/* The link of an event: the 64 hex digits after the prefix audit_build writes. */
static const char *link_of(const char *v, size_t n)
{
    static const char pre[] = AUDIT_RECORD_PREFIX;
    size_t pl = sizeof pre - 1;
    if (n < pl + STORE_CHAIN_HEX || memcmp(v, pre, pl))
        return NULL;
    return v + pl;
}

/* Compare the head of tenant with the hash of its last event (have: one was seen). */
static int check_head(store_reader *r, uint32_t tenant, const uint8_t *last, int have, uint64_t nt,
                      char *msg, size_t cap)
{
    uint8_t hk[STORE_CHAIN_HEAD_LEN];
    audit_head_key(hk, tenant);
    const void *hv;
    size_t hn;
    int rc = store_get(r, STORE_DB_AUDIT, hk, sizeof hk, &hv, &hn);
    if (rc == ERR_NOTFOUND) {
        if (!have)
            return 0;
        snprintf(msg, cap, "audit chain of tenant %u: %llu events but no chain head", tenant,
                 (unsigned long long)nt);
        return ERR_INTERNAL;
    }
    if (rc)
        return rc;
    if (!have) {
        snprintf(msg, cap, "audit chain of tenant %u: a chain head but no events (all removed)",
                 tenant);
        return ERR_INTERNAL;
    }
    if (hn != 32 || memcmp(hv, last, 32)) {
        snprintf(msg, cap,
                 "audit chain of tenant %u: the newest of its %llu events is not the chain head "
                 "(the last event was altered, removed or added)",
                 tenant, (unsigned long long)nt);
        return ERR_INTERNAL;
    }
    return 0;
}

int audit_check(store *s, uint64_t *n, char *msg, size_t cap)
{
    store_reader *r;
    int rc = store_read_begin(s, &r);
    if (rc)
        return rc;
    store_iter *it = NULL;
    rc = store_scan(r, STORE_DB_AUDIT, "", 0, "", 0, &it);
    uint64_t total = 0, nt = 0;
    uint32_t cur_tenant = 0;
    int have = 0;
    uint8_t prev[32];
    uint8_t pkey[AUDIT_KEY_LEN];
    const void *k, *v;
    size_t kn, vn;
    while (!rc && (rc = store_scan_next(it, &k, &kn, &v, &vn)) == 0) {
        uint32_t tenant, seq;
        uint64_t t;
        char id[AUDIT_ID_MAX + 1];
        if (kn != AUDIT_KEY_LEN) {
            snprintf(msg, cap, "audit: a key of %zu bytes (not %d): inserted by something else", kn,
                     AUDIT_KEY_LEN);
            rc = ERR_INTERNAL;
            break;
        }
        audit_key_decode(k, &tenant, &t, &seq);
        if (audit_is_head(k, kn)) {
            if (have && tenant == cur_tenant)
                continue; /* compared with the tenant's last event below */
            snprintf(msg, cap, "audit chain of tenant %u: a chain head but no events (all removed)",
                     tenant);
            rc = ERR_INTERNAL;
            break;
        }
        audit_id_format(t, seq, id);
        if (have && tenant != cur_tenant) {
            if ((rc = check_head(r, cur_tenant, prev, 1, nt, msg, cap)))
                break;
            have = 0;
            nt = 0;
        }
        cur_tenant = tenant;
        const char *link = link_of(v, vn);
        if (!link) {
            snprintf(msg, cap, "audit event %s (tenant %u) has no chain link: altered", id, tenant);
            rc = ERR_INTERNAL;
            break;
        }
        char want[65];
        if (have)
            hex32(prev, want);
        else
            memset(want, '0', 64), want[64] = 0;
        if (memcmp(link, want, 64)) {
            char pid[AUDIT_ID_MAX + 1] = "(none)";
            if (have) {
                uint32_t pt, ps;
                uint64_t ptt;
                audit_key_decode(pkey, &pt, &ptt, &ps);
                audit_id_format(ptt, ps, pid);
            }
            snprintf(msg, cap,
                     "audit event %s (tenant %u, event %llu of the chain) does not link to the "
                     "event before it (%s): that one was altered, or events were removed or "
                     "inserted between them",
                     id, tenant, (unsigned long long)nt + 1, pid);
            rc = ERR_INTERNAL;
            break;
        }
        SHA256(v, vn, prev);
        memcpy(pkey, k, AUDIT_KEY_LEN);
        have = 1;
        nt++;
        total++;
    }
    if (rc == ERR_NOTFOUND)
        rc = have ? check_head(r, cur_tenant, prev, 1, nt, msg, cap) : 0;
    store_iter_close(it);
    /* a head without events (tenant 0): every event removed */
    if (!rc && !total)
        rc = check_head(r, 0, prev, 0, 0, msg, cap);
    store_read_end(r);
    *n = total;
    return rc;
}
