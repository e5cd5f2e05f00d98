/*
 * shape.c -- sending a stored resource, shaped as the client asked.
 *
 * The common case is the stored bytes as they are (no parse). _pretty=true
 * indents; _elements=a,b keeps only those top-level elements (plus
 * resourceType, id, meta); _summary=true keeps the summary elements of the
 * model, _summary=text keeps text, id, meta and required elements,
 * _summary=data drops text. Shaped resources are tagged SUBSETTED as the spec
 * asks. Filtering is top-level only (documented in docs/REST.md). The same
 * shaping applies to the resources inside history, search and batch Bundles
 * (rest_write_resource).
 */
#include <string.h>

#include "base/err.h"
#include "rest/response.h"

enum { SHAPE_ALL = 0, SHAPE_SUMMARY, SHAPE_TEXT, SHAPE_DATA, SHAPE_ELEMENTS };

/* 1 when JSON key k (maybe "_k" or a choice "valueQuantity") names an element
 * listed in the comma-separated list. */
static int listed(const fhir_type *t, const char *k, size_t kn, const char *list)
{
    if (kn > 1 && k[0] == '_') {
        k++;
        kn--;
    }
    const fhir_elem *e = t ? fhir_elem_find(t, k, kn, NULL) : NULL;
    const char *name = e ? e->name : k;
    size_t nn = e ? strlen(e->name) : kn;
    const char *p = list;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if ((n == nn && !memcmp(p, name, n)) || (n == kn && !memcmp(p, k, n)))
            return 1;
        if (!c)
            break;
        p = c + 1;
    }
    return 0;
}

static int keep(const fhir_type *t, const json_member *m, int mode, const char *elements)
{
    const char *k = m->key;
    if (!strcmp(k, "resourceType") || !strcmp(k, "id") || !strcmp(k, "meta"))
        return 1;
    size_t kn = m->key_len;
    const char *bk = k;
    size_t bn = kn;
    if (bn > 1 && bk[0] == '_') {
        bk++;
        bn--;
    }
    const fhir_elem *e = t ? fhir_elem_find(t, bk, bn, NULL) : NULL;
    switch (mode) {
    case SHAPE_ELEMENTS: return listed(t, k, kn, elements);
    case SHAPE_SUMMARY: return e && (e->is_summary || e->min > 0);
    case SHAPE_TEXT: return !strcmp(bk, "text") || (e && e->min > 0);
    case SHAPE_DATA: return strcmp(bk, "text") != 0;
    default: return 1;
    }
}

static void subsetted_tag(jw *w)
{
    jw_obj(w);
    jw_key(w, "system");
    jw_str(w, "http://terminology.hl7.org/CodeSystem/v3-ObservationValue");
    jw_key(w, "code");
    jw_str(w, "SUBSETTED");
    jw_end(w);
}

/* meta as stored, with the SUBSETTED tag added to meta.tag */
static void write_subsetted_meta(jw *w, const json_val *meta)
{
    jw_obj(w);
    int tagged = 0;
    if (meta && meta->type == JSON_OBJECT)
        for (uint32_t i = 0; i < meta->n; i++) {
            const json_member *m = &meta->u.members[i];
            jw_keyn(w, m->key, m->key_len);
            if (!strcmp(m->key, "tag") && m->val.type == JSON_ARRAY) {
                jw_arr(w);
                for (uint32_t j = 0; j < m->val.n; j++)
                    jw_val(w, &m->val.u.items[j]);
                subsetted_tag(w);
                jw_end(w);
                tagged = 1;
            } else {
                jw_val(w, &m->val);
            }
        }
    if (!tagged) {
        jw_key(w, "tag");
        jw_arr(w);
        subsetted_tag(w);
        jw_end(w);
    }
    jw_end(w);
}

/* Write resource v shaped by mode into w. */
static void write_shaped(jw *w, const json_val *v, int mode, const char *elements)
{
    if (mode == SHAPE_ALL || v->type != JSON_OBJECT) {
        jw_val(w, v);
        return;
    }
    const char *rt = json_get_str(v, "resourceType");
    const fhir_type *t = rt ? fhir_resource_type(rt, strlen(rt)) : NULL;
    jw_obj(w);
    int had_meta = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        const json_member *m = &v->u.members[i];
        if (!keep(t, m, mode, elements))
            continue;
        jw_keyn(w, m->key, m->key_len);
        if (!strcmp(m->key, "meta")) {
            write_subsetted_meta(w, &m->val);
            had_meta = 1;
        } else {
            jw_val(w, &m->val);
        }
    }
    if (!had_meta) {
        jw_key(w, "meta");
        write_subsetted_meta(w, NULL);
    }
    jw_end(w);
}

static int shape_mode(rest_req *r, const char **elements)
{
    const char *el = rest_query(r, "_elements");
    if (el && *el) {
        *elements = el;
        return SHAPE_ELEMENTS;
    }
    const char *s = rest_query(r, "_summary");
    if (!s)
        return SHAPE_ALL;
    if (!strcmp(s, "true"))
        return SHAPE_SUMMARY;
    if (!strcmp(s, "text"))
        return SHAPE_TEXT;
    if (!strcmp(s, "data"))
        return SHAPE_DATA;
    return SHAPE_ALL;
}

void rest_write_resource(rest_req *r, jw *w, const char *bytes, size_t len)
{
    const char *elements = NULL;
    int mode = shape_mode(r, &elements);
    json_val *v;
    if ((mode == SHAPE_ALL && !r->pretty) || json_parse(r->a, bytes, len, 0, &v, NULL)) {
        jw_raw(w, bytes, len);
        return;
    }
    write_shaped(w, v, mode, elements);
}

int rest_send_resource(rest_req *r, unsigned status, const char *bytes, size_t len,
                       uint64_t vid, int64_t lu)
{
    const char *elements = NULL;
    int mode = shape_mode(r, &elements);
    rest_reply rep = {.status = status, .etag_vid = vid, .last_modified_s = lu / 1000000};
    if (mode == SHAPE_ALL && !r->pretty) {
        rep.body = bytes;
        rep.len = len;
        return rest_send(r, &rep);
    }
    json_val *v;
    if (json_parse(r->a, bytes, len, 0, &v, NULL))
        return rest_send_errcode(r, ERR_INTERNAL, "a stored resource could not be parsed");
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, r->pretty);
    write_shaped(&w, v, mode, elements);
    int e = rest_reply_take(&rep, &b);
    if (e)
        return rest_send_errcode(r, e, "could not build the response");
    return rest_send(r, &rep);
}
