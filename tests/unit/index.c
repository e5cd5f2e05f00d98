/*
 * index.c -- tests of the search index's byte forms and extraction (src/index/).
 *
 * What a search will compare: folded strings, order-preserving numbers and
 * instants, the parameter hashes of the whole model (no two may collide), the
 * ResourceParam value round trip, and the entries idx_extract gives for resources
 * whose parameters are known by heart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "fhirpath/spcache.h"
#include "index/index.h"
#include "json/json.h"
#include "synth/synth.h"
#include "tap.h"

static const char *fold(const char *s)
{
    static char out[512];
    buf b = BUF_INIT;
    idx_norm_string(s, strlen(s), &b);
    size_t n = b.len < sizeof out - 1 ? b.len : sizeof out - 1;
    memcpy(out, b.data ? b.data : "", n);
    out[n] = 0;
    buf_free(&b);
    return out;
}

static void test_fold(void)
{
    is_str(fold("Ödön"), "odon", "accents and case fold: Ödön -> odon");
    is_str(fold("MÜLLER"), "muller", "MÜLLER -> muller");
    is_str(fold("Straße"), "strasse", "sharp s -> ss");
    is_str(fold("Æsir Œuvre"), "aesir oeuvre", "ligatures spelled out");
    is_str(fold("Łódź"), "lodz", "Polish letters");
    is_str(fold("Çelik Şahin"), "celik sahin", "Turkish letters");
    is_str(fold("Nguyễn"), "nguyen", "Vietnamese stacked marks");
    is_str(fold("ΣΟΦΊΑ"), "σοφια", "Greek capitals with tonos");
    is_str(fold("ИВАНОВ Ёлкин"), "иванов елкин", "Cyrillic capitals, yo");
    is_str(fold("  van   der\tBerg  "), "van der berg", "whitespace runs collapse, trimmed");
    is_str(fold("Zoe\xcc\x88"), "zoe", "a combining mark (NFD input) is dropped");
    is_str(fold("\xff\xfe"), "\xff\xfe", "bytes that are not UTF-8 are kept as they are");
    is_str(fold("山田"), "山田", "other scripts kept");
    char longs[1000];
    memset(longs, 'a', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    ok(strlen(fold(longs)) == IDX_MAX_VALUE, "long strings are cut at IDX_MAX_VALUE");
    char longu[1000];
    for (size_t i = 0; i + 2 < sizeof longu; i += 2)
        memcpy(longu + i, "\xc3\xa9", 2); /* é: folds to 1 byte */
    longu[998] = 0;
    ok(strlen(fold(longu)) == IDX_MAX_VALUE, "cut counts folded bytes");
}

static int cmp8(const buf *a, const buf *b)
{
    return memcmp(a->data, b->data, 8);
}

static void test_order(void)
{
    double v[] = {-1e300, -5.5, -1, -0.001, 0, 0.001, 1, 1.5, 2, 1e300};
    int good = 1;
    for (size_t i = 0; i + 1 < sizeof v / sizeof v[0]; i++) {
        buf a = BUF_INIT, b = BUF_INIT;
        idx_put_double(&a, v[i]);
        idx_put_double(&b, v[i + 1]);
        good &= cmp8(&a, &b) < 0;
        buf_free(&a);
        buf_free(&b);
    }
    ok(good, "doubles keep their order as bytes");
    buf z = BUF_INIT, nz = BUF_INIT;
    idx_put_double(&z, 0.0);
    idx_put_double(&nz, -0.0);
    ok(cmp8(&z, &nz) == 0, "-0 and +0 are one value");
    buf_free(&z);
    buf_free(&nz);
    int64_t t[] = {INT64_MIN, -62135596800000000LL, -1, 0, 1, 1700000000000000LL, INT64_MAX};
    good = 1;
    for (size_t i = 0; i + 1 < sizeof t / sizeof t[0]; i++) {
        buf a = BUF_INIT, b = BUF_INIT;
        idx_put_instant(&a, t[i]);
        idx_put_instant(&b, t[i + 1]);
        good &= cmp8(&a, &b) < 0;
        buf_free(&a);
        buf_free(&b);
    }
    ok(good, "instants keep their order as bytes, before 1970 included");
    buf s = BUF_INIT;
    idx_put_str(&s, "a\0\1b", 4);
    ok(s.len == 7 && !memcmp(s.data, "a\1\1\1\2b\0", 7), "0x00 and 0x01 are escaped, 0x00 ends");
    buf_free(&s);
}

static int sp_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void test_hashes(void)
{
    const fhir_type *const *types;
    size_t nt = fhir_resource_types(&types), n = 0, cap = 0;
    uint32_t *h = NULL;
    for (size_t i = 0; i < nt; i++) {
        const fhir_search_param *const *sps;
        size_t ns = fhir_search_params(types[i]->name, &sps);
        for (size_t k = 0; k < ns; k++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                h = realloc(h, sizeof *h * cap);
            }
            h[n++] = idx_sp_hash(types[i]->name, sps[k]->code);
        }
    }
    qsort(h, n, sizeof *h, sp_cmp);
    size_t dups = 0;
    for (size_t i = 1; i < n; i++)
        dups += h[i] == h[i - 1];
    ok(n > 2000, "every parameter of every type hashed (%zu)", n);
    is_int(dups, 0, "no two Type.code pairs of the model share a hash");
    free(h);
    ok(idx_sp_hash("Patient", "name") != idx_sp_hash("Practitioner", "name"),
       "the hash is per type");
    /* the table of the model's hashes: looked up by the names, not by their addresses */
    char ty[16] = "Patient", co[16] = "name";
    uint32_t a = idx_sp_hash(ty, co), a2 = idx_sp_hash(ty, co);
    strcpy(co, "family");
    uint32_t b = idx_sp_hash(ty, co);
    strcpy(ty, "Practitioner");
    uint32_t c = idx_sp_hash(ty, co);
    ok(a == a2 && a == idx_sp_hash("Patient", "name") && b == idx_sp_hash("Patient", "family") &&
           c == idx_sp_hash("Practitioner", "family") && a != b && b != c,
       "a reused buffer never gets another name's hash");
    ok(idx_sp_hash("NoSuchType", "name") != idx_sp_hash("Patient", "name") &&
           idx_sp_hash("NoSuchType", "name") == idx_sp_hash("NoSuchType", "name"),
       "a pair outside the model is hashed too");
}

/* The entries of kind k of parameter code, as "value" strings with \0 shown as '|'. */
static int has(const idx_set *s, const char *type, const char *code, uint8_t kind,
               const void *val, size_t len)
{
    uint32_t sp = idx_sp_hash(type, code);
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i].sp == sp && s->e[i].kind == kind && s->e[i].len == len &&
            !memcmp(s->e[i].val, val, len))
            return 1;
    return 0;
}

static json_val *parse(arena *a, const char *j)
{
    json_val *v = NULL;
    char *c = arena_strndup(a, j, strlen(j));
    return json_parse(a, c, strlen(j), 0, &v, NULL) == 0 ? v : NULL;
}

static void test_extract(const fp_sp_cache *spc)
{
    arena *a = arena_new(1 << 16);
    json_val *p = parse(a, "{\"resourceType\":\"Patient\",\"id\":\"p1\","
                           "\"meta\":{\"versionId\":\"1\",\"lastUpdated\":\"2024-01-02T03:04:05.678Z\"},"
                           "\"identifier\":[{\"system\":\"urn:mrn\",\"value\":\"A1\"}],"
                           "\"name\":[{\"family\":\"Ödön\",\"given\":[\"Zoë\",\"Ann\"]}],"
                           "\"telecom\":[{\"system\":\"phone\",\"value\":\"+31 20\"}],"
                           "\"gender\":\"female\",\"birthDate\":\"1970-03\","
                           "\"managingOrganization\":{\"reference\":\"http://h/fhir/Organization/o1\"},"
                           "\"generalPractitioner\":[{\"reference\":\"Practitioner/dr/_history/2\"},"
                           "{\"identifier\":{\"system\":\"urn:uzi\",\"value\":\"9\"}}]}");
    idx_set s;
    ok(p && idx_extract(spc, a, "Patient", p, "http://h/fhir", &s) == 0, "Patient extracted");
    ok(has(&s, "Patient", "family", 'S', "odon\0", 5), "family: folded");
    ok(has(&s, "Patient", "family", 'X', "\xc3\x96" "d\xc3\xb6n\0", 7), "family: exact");
    ok(has(&s, "Patient", "given", 'S', "zoe\0", 4) && has(&s, "Patient", "given", 'S', "ann\0", 4),
       "given: every given name");
    ok(has(&s, "Patient", "name", 'S', "odon\0", 5) && has(&s, "Patient", "name", 'S', "zoe\0", 4),
       "name: all parts of HumanName");
    ok(has(&s, "Patient", "identifier", 'T', "A1\0urn:mrn\0", 11), "identifier: value, system");
    ok(has(&s, "Patient", "gender", 'T', "female\0\0", 8), "gender: a code without system");
    ok(has(&s, "Patient", "phone", 'T', "+31 20\0phone\0", 13), "phone: ContactPoint value");
    ok(has(&s, "Patient", "_id", 'T', "p1\0\0", 4), "_id");
    ok(has(&s, "Patient", "organization", 'R', "o1\0Organization\0", 16),
       "an absolute reference to this server is a local one");
    ok(has(&s, "Patient", "general-practitioner", 'R', "dr\0Practitioner\0", 16),
       "a versioned reference indexes its resource");
    ok(has(&s, "Patient", "general-practitioner", 'I', "9\0urn:uzi\0", 10),
       "a logical reference (identifier)");
    buf lo = BUF_INIT;
    idx_put_instant(&lo, 5097600000000LL); /* 1970-03-01T00:00:00Z */
    idx_put_instant(&lo, 7775999999999LL); /* 1970-03-31T23:59:59.999999 */
    ok(has(&s, "Patient", "birthdate", 'D', lo.data, 16), "birthdate: the month as an interval");
    buf_free(&lo);
    int sorted = 1;
    for (size_t i = 1; i < s.n; i++)
        sorted &= idx_entry_cmp(&s.e[i - 1], &s.e[i]) < 0;
    ok(sorted, "entries sorted, no duplicates (%zu)", s.n);

    json_val *o = parse(a, "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\","
                           "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\","
                           "\"display\":\"Heart rate\"}],\"text\":\"HR\"},"
                           "\"subject\":{\"reference\":\"Patient/p1\"},"
                           "\"effectivePeriod\":{\"start\":\"2024-03-01\"},"
                           "\"valueQuantity\":{\"value\":5.4,\"unit\":\"mmol/L\","
                           "\"system\":\"http://unitsofmeasure.org\",\"code\":\"mmol/L\"}}");
    ok(o && idx_extract(spc, a, "Observation", o, "", &s) == 0, "Observation extracted");
    ok(has(&s, "Observation", "code", 'T', "8867-4\0http://loinc.org\0", 24), "code: Coding");
    ok(has(&s, "Observation", "code", 'Y', "heart rate\0", 11) &&
           has(&s, "Observation", "code", 'Y', "hr\0", 3),
       "code: display and text for :text");
    ok(has(&s, "Observation", "subject", 'R', "p1\0Patient\0", 11) &&
           has(&s, "Observation", "patient", 'R', "p1\0Patient\0", 11),
       "subject and patient");
    buf q = BUF_INIT;
    idx_put_str(&q, "http://unitsofmeasure.org", 25);
    idx_put_str(&q, "mmol/L", 6);
    idx_put_double(&q, 5.4);
    ok(has(&s, "Observation", "value-quantity", 'Q', q.data, q.len), "value-quantity as stored");
    buf_reset(&q);
    idx_put_double(&q, 5.4);
    ok(has(&s, "Observation", "value-quantity", 'V', q.data, q.len), "value-quantity: value");
    int canon = 0;
    uint32_t vq = idx_sp_hash("Observation", "value-quantity");
    for (size_t i = 0; i < s.n; i++)
        canon |= s.e[i].sp == vq && s.e[i].kind == 'C';
    ok(canon, "value-quantity: in the canonical UCUM unit");
    buf_free(&q);
    buf hi = BUF_INIT;
    idx_put_instant(&hi, INT64_MAX);
    int open_end = 0;
    uint32_t dsp = idx_sp_hash("Observation", "date");
    for (size_t i = 0; i < s.n; i++)
        open_end |= s.e[i].sp == dsp && s.e[i].kind == 'H' && !memcmp(s.e[i].val, hi.data, 8);
    ok(open_end, "a Period without end is open to the largest instant");
    buf_free(&hi);

    /* ResourceParam round trip */
    uint8_t rn[IDX_RN_LEN] = {0, 0, 0, 0, 0, 0, 0, 7, 0, 3}, rn2[IDX_RN_LEN];
    buf b = BUF_INIT;
    idx_rp_encode(&b, rn, &s);
    idx_set back;
    ok(idx_rp_decode(a, b.data, b.len, rn2, &back) == 0 && back.n == s.n &&
           !memcmp(rn, rn2, IDX_RN_LEN),
       "ResourceParam value decodes to what was encoded");
    int same = back.n == s.n;
    for (size_t i = 0; same && i < s.n; i++)
        same = idx_entry_cmp(&s.e[i], &back.e[i]) == 0;
    ok(same, "every entry comes back");
    ok(idx_rp_decode(a, b.data, b.len - 1, rn2, &back) == ERR_INVALID,
       "a truncated value is refused");
    buf_free(&b);
    arena_free(a);
}

/* Composite parts: what extraction writes, how long each part is, and the cut. */
static void test_composite(const fp_sp_cache *spc)
{
    arena *a = arena_new(1 << 16);
    json_val *o = parse(a, "{\"resourceType\":\"Observation\",\"id\":\"bp\",\"status\":\"final\","
                           "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"85354-9\"}]},"
                           "\"component\":[{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\","
                           "\"code\":\"8480-6\"}]},\"valueQuantity\":{\"value\":150,\"unit\":\"mmHg\","
                           "\"system\":\"http://unitsofmeasure.org\",\"code\":\"mm[Hg]\"}},"
                           "{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8462-4\"}]},"
                           "\"valueQuantity\":{\"value\":90,\"unit\":\"mmHg\"}}]}");
    idx_set s;
    ok(o && idx_extract(spc, a, "Observation", o, "", &s) == 0, "blood pressure extracted");
    uint32_t ccvq = idx_sp_hash("Observation", "component-code-value-quantity");
    size_t n = 0, whole = 0;
    for (size_t i = 0; i < s.n; i++) {
        const idx_entry *e = &s.e[i];
        if (e->sp != ccvq || e->kind != IDX_COMPOSITE)
            continue;
        n++;
        size_t l1 = idx_part_len(e->val, e->len);
        size_t l2 = l1 ? idx_part_len(e->val + l1, e->len - l1) : 0;
        whole += l1 && l2 && l1 + l2 == e->len && e->val[0] == IDX_TOKEN &&
                 e->val[l1] == IDX_QTY_PART;
    }
    ok(n == 2, "one entry per component: %zu", n);
    ok(whole == 2, "each entry is a token part and a quantity part");
    uint32_t cvq = idx_sp_hash("Observation", "code-value-quantity");
    size_t own = 0;
    for (size_t i = 0; i < s.n; i++)
        own += s.e[i].sp == cvq;
    ok(own == 0, "no value of its own: no code-value-quantity");

    /* the cut: 64 bytes of each string, escapes counted as one byte */
    char longs[100];
    memset(longs, 'x', sizeof longs);
    buf v = BUF_INIT, p = BUF_INIT;
    idx_put_str(&v, longs, sizeof longs);
    idx_put_str(&v, "sys", 3);
    ok(idx_part_recode(IDX_TOKEN, (const uint8_t *)v.data, v.len, &p) == 0 &&
           p.len == 1 + IDX_PART_STR + 1 + 4,
       "a token part's code is cut at IDX_PART_STR (%zu)", p.len);
    ok(idx_part_len((const uint8_t *)p.data, p.len) == p.len, "and reads back whole");
    ok(idx_part_len((const uint8_t *)p.data, p.len - 1) == 0, "a truncated part is refused");
    buf_reset(&v);
    buf_reset(&p);
    const char esc[3] = {'a', 0, 'b'};
    idx_put_str(&v, esc, 3);
    ok(idx_part_recode(IDX_URI, (const uint8_t *)v.data, v.len, &p) == 0 && p.len == 1 + 4 + 1 &&
           idx_part_len((const uint8_t *)p.data, p.len) == p.len,
       "an escaped byte is kept whole");
    ok(idx_part_recode('Z', (const uint8_t *)v.data, v.len, &p) != 0, "an unknown kind is refused");
    buf_free(&v);
    buf_free(&p);
    ok(idx_component(fhir_search_param_find("DocumentReference", "relationship"), 0)->type ==
           FHIR_SP_TOKEN,
       "relationship: the relation code first (R4's definitions named the other way)");
    arena_free(a);
}

/* Each parameter's expression as a type evaluates it (its union without the branches
 * of other types) gives, on every generated resource, exactly the items of the whole
 * expression. */
typedef struct typed_ctx {
    const fp_sp_cache *spc;
    size_t resources, evals, differ, narrowed;
} typed_ctx;

static int typed_sink(void *ctx, int type, const char *id, const char *json, size_t len)
{
    (void)id;
    typed_ctx *t = ctx;
    arena *a = arena_new(1 << 16);
    json_val *root;
    if (!a || json_parse(a, json, len, 0, &root, NULL)) {
        arena_free(a);
        t->differ++;
        return 0;
    }
    const char *tn = synth_type_names[type];
    const fhir_type *ft = fhir_resource_type(tn, strlen(tn));
    const fhir_search_param *const *sps;
    size_t n = fhir_search_params(ft->name, &sps);
    for (size_t i = 0; i < n; i++) {
        const fp_expr *all = fp_sp_cache_get(t->spc, sps[i]);
        const fp_expr *mine = fp_sp_cache_get_for(t->spc, ft->name, sps[i]);
        if (!all)
            continue;
        if (mine != all)
            t->narrowed++;
        fp_coll x = {0}, y = {0};
        fp_error e;
        int rx = fp_eval(all, a, root, NULL, &x, &e);
        int ry = mine ? fp_eval(mine, a, root, NULL, &y, &e) : 0;
        t->evals++;
        int same = (rx != 0) == (ry != 0) && (rx || x.n == y.n);
        for (size_t k = 0; same && !rx && k < x.n; k++)
            same = x.v[k].kind == y.v[k].kind && x.v[k].node == y.v[k].node;
        if (!same && t->differ++ < 5)
            fprintf(stderr, "# %s.%s differs (%zu items against %zu)\n", ft->name, sps[i]->code, x.n, y.n);
    }
    arena_free(a);
    t->resources++;
    return 0;
}

static void test_typed(const fp_sp_cache *spc)
{
    typed_ctx t = {.spc = spc};
    synth *g = synth_new(7);
    int rc = g ? synth_infrastructure(g, typed_sink, &t) : ERR_NOMEM;
    for (uint64_t i = 0; i < 15 && !rc; i++)
        rc = synth_patient(g, i, typed_sink, &t);
    synth_free(g);
    ok(rc == 0 && t.resources > 1000, "generated %zu resources", t.resources);
    ok(t.differ == 0, "per-type expressions: %zu evaluations, %zu differ", t.evals, t.differ);
    ok(t.narrowed > t.resources, "per-type expressions are narrower for %zu evaluations",
       t.narrowed);
    const fhir_search_param *pat = fhir_search_param_find("Observation", "patient");
    const fhir_search_param *bd = fhir_search_param_find("Observation", "value-quantity");
    ok(pat && fp_sp_cache_get_for(spc, "Observation", pat) != fp_sp_cache_get(spc, pat),
       "Observation.patient: a union of many types, narrowed");
    ok(bd && fp_sp_cache_get_for(spc, "Observation", bd) == fp_sp_cache_get(spc, bd),
       "Observation.value-quantity: both branches Observation's, kept as it is");
}

int main(void)
{
    test_fold();
    test_order();
    test_hashes();
    fp_sp_cache *spc;
    fp_error fe;
    if (fp_sp_cache_build(&spc, &fe)) {
        ok(0, "search parameters compile: %s", fe.msg);
        return tap_done();
    }
    test_extract(spc);
    test_composite(spc);
    test_typed(spc);
    fp_sp_cache_free(spc);
    return tap_done();
}
