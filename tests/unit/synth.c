/*
 * synth.c -- tests of the synthetic data generator (src/synth/) and of
 * `hortus generate`.
 *
 * The generator is included as source so the tests reach its statics (BSN
 * construction, the time formatter). What is checked is observable output:
 * every resource parses under FHIR JSON rules and validates against the R4
 * model, references resolve to resources emitted before them, timelines are
 * consistent, bytes are a pure function of the seed, and the CLI writes the
 * files and bundles it promises.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/arena.h"
#include "fhir/validate.h"
#include "synth/synth.c"
#include "tap.h"

/* ---- an in-memory sink -------------------------------------------------------- */

typedef struct rec {
    int type;
    char id[40];
    char *json;
    size_t len;
} rec;

typedef struct store {
    rec *r;
    size_t n, cap;
    buf all; /* every resource, newline-terminated, in emission order */
} store;

static int mem_sink(void *ctx, int type, const char *id, const char *json, size_t len)
{
    store *s = ctx;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->r = realloc(s->r, s->cap * sizeof *s->r);
        if (!s->r)
            return ERR_NOMEM;
    }
    rec *r = &s->r[s->n++];
    r->type = type;
    snprintf(r->id, sizeof r->id, "%s", id);
    r->json = malloc(len + 1);
    if (!r->json)
        return ERR_NOMEM;
    memcpy(r->json, json, len);
    r->json[len] = 0;
    r->len = len;
    buf_put(&s->all, json, len);
    buf_putc(&s->all, '\n');
    return 0;
}

static void store_free(store *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->r[i].json);
    free(s->r);
    buf_free(&s->all);
    memset(s, 0, sizeof *s);
}

static int gen(uint64_t seed, uint64_t from, uint64_t to, int infra, store *s)
{
    synth *g = synth_new(seed);
    int rc = g ? 0 : ERR_NOMEM;
    if (!rc && infra)
        rc = synth_infrastructure(g, mem_sink, s);
    for (uint64_t i = from; i < to && !rc; i++)
        rc = synth_patient(g, i, mem_sink, s);
    synth_free(g);
    return rc;
}

/* ---- a string set for reference resolution ---------------------------------------- */

typedef struct sset {
    char **slot;
    size_t cap;
} sset;

static uint64_t shash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void sset_add(sset *ss, const char *s)
{
    size_t i = shash(s) & (ss->cap - 1);
    while (ss->slot[i]) {
        if (!strcmp(ss->slot[i], s))
            return;
        i = (i + 1) & (ss->cap - 1);
    }
    ss->slot[i] = strdup(s);
}

static int sset_has(const sset *ss, const char *s)
{
    size_t i = shash(s) & (ss->cap - 1);
    while (ss->slot[i]) {
        if (!strcmp(ss->slot[i], s))
            return 1;
        i = (i + 1) & (ss->cap - 1);
    }
    return 0;
}

static void sset_free(sset *ss)
{
    for (size_t i = 0; i < ss->cap; i++)
        free(ss->slot[i]);
    free(ss->slot);
}

/* count "reference" members under v that are (not) in the set */
static void check_refs(const json_val *v, const sset *ss, int *refs, int *dangling)
{
    if (v->type == JSON_OBJECT) {
        for (uint32_t i = 0; i < v->n; i++) {
            const json_member *m = &v->u.members[i];
            if (!strcmp(m->key, "reference") && m->val.type == JSON_STRING) {
                (*refs)++;
                if (!sset_has(ss, m->val.u.s)) {
                    if (*dangling < 3)
                        printf("# dangling reference %s\n", m->val.u.s);
                    (*dangling)++;
                }
            } else {
                check_refs(&m->val, ss, refs, dangling);
            }
        }
    } else if (v->type == JSON_ARRAY) {
        for (uint32_t i = 0; i < v->n; i++)
            check_refs(&v->u.items[i], ss, refs, dangling);
    }
}

/* ---- time parsing for timeline checks ----------------------------------------------- */

/* "YYYY-MM-DDThh:mm:ss+hh:mm" -> Unix seconds; -1 when not exactly that shape */
static int64_t parse_dt(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd+dd:dd";
    if (!s || strlen(s) != 25)
        return -1;
    for (int i = 0; i < 25; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return -1;
    }
#define N2(p) ((s[p] - '0') * 10 + (s[p + 1] - '0'))
    int y = N2(0) * 100 + N2(2);
    int64_t day = days_from_civil(y, (unsigned)N2(5), (unsigned)N2(8));
    int64_t off = N2(20) * 3600 + N2(23) * 60;
    return day * DAY + N2(11) * 3600 + N2(14) * 60 + N2(17) - off;
#undef N2
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_bsn(void)
{
    ok(synth_bsn_valid("111222333"), "111222333 passes the 11-proof");
    ok(synth_bsn_valid("123456782"), "123456782 passes the 11-proof");
    ok(!synth_bsn_valid("111222334"), "a wrong check digit fails");
    ok(!synth_bsn_valid("11122233"), "eight digits fail");
    ok(!synth_bsn_valid("11122233a"), "a letter fails");

    /* every constructed BSN is valid and unique over many patients */
    enum { NB = 200000 };
    char(*v)[10] = malloc((size_t)NB * 10);
    int valid = 1;
    for (int i = 0; i < NB; i++) {
        make_bsn(7, (uint64_t)i, v[i]);
        valid &= synth_bsn_valid(v[i]);
    }
    ok(valid, "%d generated BSNs all pass the 11-proof", NB);
    qsort(v, NB, 10, (int (*)(const void *, const void *))strcmp);
    int dup = 0;
    for (int i = 1; i < NB; i++)
        dup += !strcmp(v[i - 1], v[i]);
    is_int(dup, 0, "generated BSNs are unique");

    /* hospital numbers too */
    int shape = 1;
    for (int i = 0; i < NB; i++) {
        char m[12];
        make_mrn(7, (uint64_t)i, m);
        shape &= strlen(m) == 11 && !strncmp(m, "MRN", 3);
        memcpy(v[i], m + 3, 9);
    }
    ok(shape, "MRNs are MRN + eight digits");
    qsort(v, NB, 10, (int (*)(const void *, const void *))strcmp);
    dup = 0;
    for (int i = 1; i < NB; i++)
        dup += !strcmp(v[i - 1], v[i]);
    is_int(dup, 0, "generated MRNs are unique");
    free(v);
}

static void test_time(void)
{
    char s[32];
    fmt_datetime(1735689600LL, s); /* 2025-01-01T00:00:00Z */
    is_str(s, "2025-01-01T01:00:00+01:00", "winter time is UTC+1");
    fmt_datetime(1719835200LL, s); /* 2024-07-01T12:00:00Z */
    is_str(s, "2024-07-01T14:00:00+02:00", "summer time is UTC+2");
    fmt_datetime(1711846800LL - 1, s); /* 2024-03-31T00:59:59Z, just before the switch */
    is_str(s, "2024-03-31T01:59:59+01:00", "before the March switch");
    fmt_datetime(1711846800LL, s);
    is_str(s, "2024-03-31T03:00:00+02:00", "after the March switch");
    fmt_datetime(1729990800LL, s); /* 2024-10-27T01:00:00Z */
    is_str(s, "2024-10-27T02:00:00+01:00", "after the October switch");
    is_int(parse_dt("2024-10-27T02:00:00+01:00"), 1729990800LL, "test parser agrees");
    char n[40];
    fmt_fixed(36.849, 1, n);
    is_str(n, "36.8", "fixed-point rounding");
    fmt_fixed(0.0049, 3, n);
    is_str(n, "0.005", "leading zero kept");
    fmt_fixed(120, 0, n);
    is_str(n, "120", "integers without a point");
}

/* SNOMED CT identifiers end in a Verhoeff check digit (dihedral group D5) */
static int sctid_valid(const char *s)
{
    static const int d[10][10] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
        {2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
        {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
        {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
        {8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
    };
    int p[8][10] = {{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4}};
    for (int i = 2; i < 8; i++) /* each row applies the base permutation once more */
        for (int j = 0; j < 10; j++)
            p[i][j] = p[i - 1][p[1][j]];
    size_t n = strlen(s);
    if (n < 6 || n > 18)
        return 0;
    int c = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[n - 1 - i];
        if (ch < '0' || ch > '9')
            return 0;
        c = d[c][p[i % 8][ch - '0']];
    }
    /* partition identifier "00": a concept id in short format */
    return c == 0 && s[n - 3] == '0' && s[n - 2] == '0';
}

/* LOINC codes are NNNNN-C with a mod-10 check digit over the number part */
static int loinc_valid(const char *s)
{
    const char *dash = strchr(s, '-');
    if (!dash || dash == s || strlen(dash) != 2 || dash[1] < '0' || dash[1] > '9')
        return 0;
    int sum = 0, k = 0;
    for (const char *q = dash - 1; q >= s; q--, k++) {
        if (*q < '0' || *q > '9')
            return 0;
        int v = (*q - '0') * (k % 2 == 0 ? 2 : 1);
        sum += v / 10 + v % 10;
    }
    return (10 - sum % 10) % 10 == dash[1] - '0';
}

static void test_codes(void)
{
    ok(sctid_valid("138875005") && sctid_valid("404684003") && !sctid_valid("138875006"),
       "Verhoeff check accepts known SCTIDs and rejects a changed digit");
    ok(loinc_valid("8867-4") && loinc_valid("85354-9") && !loinc_valid("8867-5"),
       "LOINC check accepts known codes and rejects a changed check digit");
    int bad = 0, n = 0;
#define SCT(code)                                                                                  \
    do {                                                                                           \
        n++;                                                                                       \
        if (!sctid_valid(code)) {                                                                  \
            bad++;                                                                                 \
            printf("# bad SNOMED CT id %s\n", code);                                               \
        }                                                                                          \
    } while (0)
    for (int i = 0; i < C_CHRONIC_COUNT; i++)
        SCT(synth_chronics[i].snomed);
    for (int i = 0; i < A_ACUTE_COUNT; i++)
        SCT(synth_acutes[i].snomed);
    for (int i = 0; i < PR_COUNT; i++)
        SCT(synth_procedures[i].code);
    for (size_t i = 0; i < synth_n_allergies; i++) {
        SCT(synth_allergies[i].snomed);
        SCT(synth_reactions[synth_allergies[i].reaction].code);
    }
    for (int i = 0; i < ET_COUNT; i++)
        SCT(synth_enc_types[i].code);
#undef SCT
    is_int(bad, 0, "all %d SNOMED CT codes carry a valid check digit", n);
    bad = n = 0;
    for (int m = 0; m < M_COUNT; m++, n++)
        bad += !loinc_valid(synth_measures[m].loinc);
    for (int k = 0; k < P_COUNT; k++, n++)
        bad += !loinc_valid(synth_panels[k].loinc);
    bad += !loinc_valid("85354-9") + !loinc_valid("2708-6");
    is_int(bad, 0, "all %d LOINC codes carry a valid check digit", n + 2);
    int atc_bad = 0;
    for (int i = 0; i < D_COUNT; i++) {
        const char *a = synth_drugs[i].atc;
        /* ATC level 5: letter, 2 digits, 2 letters, 2 digits */
        atc_bad += strlen(a) != 7 || a[0] < 'A' || a[0] > 'Z' || a[1] < '0' || a[1] > '9' ||
                   a[2] < '0' || a[2] > '9' || a[3] < 'A' || a[3] > 'Z' || a[4] < 'A' ||
                   a[4] > 'Z' || a[5] < '0' || a[5] > '9' || a[6] < '0' || a[6] > '9';
    }
    is_int(atc_bad, 0, "ATC codes have the level-5 shape");
}

#define NPAT 60

static void test_resources(void)
{
    store s = {0};
    int rc = gen(1, 0, NPAT, 1, &s);
    is_int(rc, 0, "generated %d patients", NPAT);

    arena *a = arena_new(0);
    size_t counts[SYNTH_NTYPES] = {0};
    int parse_fail = 0, type_mismatch = 0, bad_id = 0, invalid = 0, refs = 0, dangling = 0;
    int bad_time = 0, outside = 0, bp_bad = 0, bp_n = 0, bsn_bad = 0, before_birth = 0;
    int vitals = 0, labs = 0, dr_results_bad = 0, ranged = 0, interp_bad = 0, interp_h = 0;
    sset ids = {calloc(1 << 16, sizeof(char *)), 1 << 16};
    /* encounter periods by id, for the Observation timeline check */
    sset enc_seen = {calloc(1 << 14, sizeof(char *)), 1 << 14};
    typedef struct {
        char id[64];
        int64_t start, end;
    } encp;
    encp *encs = calloc(s.n, sizeof *encs);
    size_t nenc = 0;
    int64_t birth = 0;

    for (size_t i = 0; i < s.n; i++) {
        rec *r = &s.r[i];
        counts[r->type]++;
        arena_reset(a);
        json_val *v;
        json_error je;
        if (json_parse(a, r->json, r->len, JSON_FHIR, &v, &je)) {
            if (parse_fail++ < 3)
                printf("# parse: %s in %.120s\n", je.msg, r->json);
            continue;
        }
        const char *rt = json_get_str(v, "resourceType");
        const char *id = json_get_str(v, "id");
        if (!rt || strcmp(rt, synth_type_names[r->type]))
            type_mismatch++;
        if (!id || strcmp(id, r->id) || !val_is_id(id, strlen(id)))
            bad_id++;
        oo o;
        oo_init(&o, a);
        if (val_resource(a, v, NULL, &o)) {
            if (invalid++ < 3)
                for (size_t k = 0; k < oo_count(&o) && k < 3; k++)
                    printf("# invalid %s: %s at %s\n", rt, oo_get(&o, k)->diagnostics,
                           oo_get(&o, k)->expression);
        }
        /* references must point at something emitted before */
        check_refs(v, &ids, &refs, &dangling);
        char key[128];
        snprintf(key, sizeof key, "%s/%s", rt ? rt : "?", id ? id : "?");
        sset_add(&ids, key);

        if (r->type == SYNTH_PATIENT) {
            const json_val *idents = json_get(v, "identifier");
            const char *bsn = NULL;
            for (uint32_t k = 0; idents && k < idents->n; k++) {
                const char *sys = json_get_str(&idents->u.items[k], "system");
                if (sys && !strcmp(sys, SYNTH_BSN))
                    bsn = json_get_str(&idents->u.items[k], "value");
            }
            bsn_bad += !synth_bsn_valid(bsn);
            const char *bd = json_get_str(v, "birthDate");
            birth = bd ? days_from_civil(strtol(bd, NULL, 10), (unsigned)strtol(bd + 5, NULL, 10),
                                         (unsigned)strtol(bd + 8, NULL, 10)) *
                                 DAY -
                             2 * 3600
                       : 0;
        } else if (r->type == SYNTH_ENCOUNTER) {
            const json_val *per = json_get(v, "period");
            int64_t st = parse_dt(json_get_str(per, "start"));
            int64_t en = parse_dt(json_get_str(per, "end"));
            bad_time += st < 0 || en < 0 || en < st || en > SYNTH_END_UNIX;
            before_birth += st < birth;
            snprintf(encs[nenc].id, sizeof encs[nenc].id, "Encounter/%s", id);
            encs[nenc].start = st;
            encs[nenc].end = en;
            nenc++;
            sset_add(&enc_seen, encs[nenc - 1].id);
        } else if (r->type == SYNTH_OBSERVATION) {
            int64_t t = parse_dt(json_get_str(v, "effectiveDateTime"));
            bad_time += t < 0;
            const char *er = json_get_str(json_get(v, "encounter"), "reference");
            /* encounters are emitted just before their content: search backwards */
            int found = 0;
            for (size_t k = nenc; k-- > 0 && !found;)
                if (er && !strcmp(encs[k].id, er)) {
                    found = 1;
                    outside += t < encs[k].start || t > encs[k].end;
                }
            outside += !found;
            const json_val *cat = json_get(v, "category");
            const char *cc =
                cat && cat->n
                    ? json_get_str(&json_get(&cat->u.items[0], "coding")->u.items[0], "code")
                    : NULL;
            vitals += cc && !strcmp(cc, "vital-signs");
            labs += cc && !strcmp(cc, "laboratory");
            const json_val *rrs = json_get(v, "referenceRange");
            if (rrs) {
                /* the interpretation agrees with the value and the range */
                ranged++;
                const json_val *val = json_get(json_get(v, "valueQuantity"), "value");
                const json_val *lo = json_get(json_get(&rrs->u.items[0], "low"), "value");
                const json_val *hi = json_get(json_get(&rrs->u.items[0], "high"), "value");
                const json_val *in = json_get(v, "interpretation");
                const char *ic =
                    in ? json_get_str(&json_get(&in->u.items[0], "coding")->u.items[0], "code")
                       : NULL;
                double x = val ? strtod(val->u.s, NULL) : 0;
                const char *want = hi && x > strtod(hi->u.s, NULL)   ? "H"
                                   : lo && x < strtod(lo->u.s, NULL) ? "L"
                                                                     : "N";
                interp_bad += !val || !ic || strcmp(ic, want);
                interp_h += ic && !strcmp(ic, "H");
            }
            const json_val *code = json_get(v, "code");
            const char *lc = json_get_str(&json_get(code, "coding")->u.items[0], "code");
            if (lc && !strcmp(lc, "85354-9")) {
                bp_n++;
                const json_val *comp = json_get(v, "component");
                int okbp = comp && comp->n == 2;
                if (okbp) {
                    const json_val *c0 = &comp->u.items[0], *c1 = &comp->u.items[1];
                    const char *k0 =
                        json_get_str(&json_get(json_get(c0, "code"), "coding")->u.items[0], "code");
                    const char *k1 =
                        json_get_str(&json_get(json_get(c1, "code"), "coding")->u.items[0], "code");
                    const json_val *q0 = json_get(json_get(c0, "valueQuantity"), "value");
                    const json_val *q1 = json_get(json_get(c1, "valueQuantity"), "value");
                    const char *u0 = json_get_str(json_get(c0, "valueQuantity"), "code");
                    okbp = k0 && k1 && !strcmp(k0, "8480-6") && !strcmp(k1, "8462-4") && q0 && q1 &&
                           strtod(q0->u.s, NULL) > strtod(q1->u.s, NULL) && u0 &&
                           !strcmp(u0, "mm[Hg]");
                }
                bp_bad += !okbp;
            }
        } else if (r->type == SYNTH_DIAGNOSTICREPORT) {
            const json_val *res = json_get(v, "result");
            dr_results_bad += !res || res->n < 1;
            for (uint32_t k = 0; res && k < res->n; k++) {
                const char *ref = json_get_str(&res->u.items[k], "reference");
                dr_results_bad += !ref || strncmp(ref, "Observation/", 12);
            }
        }
    }
    is_int(parse_fail, 0, "every resource parses as FHIR JSON");
    is_int(type_mismatch, 0, "resourceType matches the sink's type");
    is_int(bad_id, 0, "ids are valid FHIR ids and match the sink's id");
    is_int(invalid, 0, "every resource validates against the R4 model");
    ok(refs > (int)s.n, "resources carry references (%d)", refs);
    is_int(dangling, 0, "every reference resolves to a resource emitted before it");
    is_int(bsn_bad, 0, "every Patient has a BSN that passes the 11-proof");
    is_int(bad_time, 0, "encounter and observation times have a timezone and end before 2025");
    is_int(before_birth, 0, "no encounter before the patient's birth");
    is_int(outside, 0, "every Observation lies inside the period of its Encounter");
    ok(bp_n > NPAT, "blood-pressure panels present (%d)", bp_n);
    is_int(bp_bad, 0, "BP panels carry 8480-6 > 8462-4 components in mm[Hg]");
    is_int(dr_results_bad, 0, "DiagnosticReports reference their Observations");
    ok(ranged > 0 && ranged == labs, "every lab result has a reference range (%d of %d)", ranged,
       labs);
    is_int(interp_bad, 0, "interpretation H/L/N agrees with value and reference range");
    ok(interp_h > 0 && interp_h < ranged, "some but not all results are high (%d)", interp_h);
    ok(vitals > 0 && labs > 0, "both vital-signs (%d) and laboratory (%d) observations", vitals,
       labs);

    is_int(counts[SYNTH_PATIENT], NPAT, "one Patient per patient");
    is_int(counts[SYNTH_ORGANIZATION], 2 * synth_n_cities, "a hospital and a GP practice per city");
    is_int(counts[SYNTH_PRACTITIONER], NPRACT_PER_CITY * synth_n_cities, "practitioners");
    for (int t = 0; t < SYNTH_NTYPES; t++)
        ok(counts[t] > 0, "%s emitted (%zu)", synth_type_names[t], counts[t]);
    double per = (double)(s.n - counts[SYNTH_ORGANIZATION] - counts[SYNTH_PRACTITIONER]) / NPAT;
    ok(per >= 100 && per <= 220, "about 150 resources per patient (%.1f)", per);
    double enc = (double)counts[SYNTH_ENCOUNTER] / NPAT;
    ok(enc >= 8 && enc <= 40, "encounters per patient in range (%.1f)", enc);
    ok(counts[SYNTH_OBSERVATION] > 3 * counts[SYNTH_ENCOUNTER],
       "observations dominate (%zu for %zu encounters)", counts[SYNTH_OBSERVATION],
       counts[SYNTH_ENCOUNTER]);

    /* encounter classes: all four kinds occur */
    const char *cls[] = {"\"code\":\"AMB\"", "\"code\":\"IMP\"", "\"code\":\"EMER\"",
                         "\"code\":\"VR\""};
    for (int k = 0; k < 4; k++) {
        int seen = 0;
        for (size_t i = 0; i < s.n && !seen; i++)
            seen = s.r[i].type == SYNTH_ENCOUNTER && strstr(s.r[i].json, cls[k]);
        ok(seen, "an encounter with class %s", cls[k]);
    }

    free(encs);
    sset_free(&ids);
    sset_free(&enc_seen);
    arena_free(a);
    store_free(&s);
}

/* patients who die: the timeline stops at death, inside a final admission */
static void test_deceased(void)
{
    store s = {0};
    int rc = gen(1, 0, 400, 0, &s);
    is_int(rc, 0, "generated 400 patients");
    arena *a = arena_new(0);
    int deceased = 0, after_death = 0, no_exp = 0, active_rx = 0;
    int64_t death = -1, last_end = -1;
    int last_exp = 0;
    for (size_t i = 0; i <= s.n; i++) {
        rec *r = i < s.n ? &s.r[i] : NULL;
        if (!r || r->type == SYNTH_PATIENT) {
            /* close the previous patient */
            if (death >= 0)
                no_exp += !last_exp || last_end != death;
            if (!r)
                break;
            arena_reset(a);
            json_val *v;
            death = -1;
            last_exp = 0;
            last_end = -1;
            if (json_parse(a, r->json, r->len, JSON_FHIR, &v, NULL) == 0) {
                const char *dd = json_get_str(v, "deceasedDateTime");
                if (dd) {
                    death = parse_dt(dd);
                    deceased++;
                }
            }
            continue;
        }
        if (death < 0)
            continue;
        if (r->type == SYNTH_ENCOUNTER) {
            arena_reset(a);
            json_val *v;
            if (json_parse(a, r->json, r->len, JSON_FHIR, &v, NULL) == 0) {
                int64_t en = parse_dt(json_get_str(json_get(v, "period"), "end"));
                after_death += en > death;
                last_end = en;
                last_exp = strstr(r->json, "\"code\":\"exp\"") != NULL;
            }
        } else if (r->type == SYNTH_MEDICATIONREQUEST) {
            active_rx += strstr(r->json, "\"status\":\"active\"") != NULL;
        }
    }
    ok(deceased > 0 && deceased < 40, "some patients die (%d of 400)", deceased);
    is_int(after_death, 0, "no encounter ends after the patient's death");
    is_int(no_exp, 0, "the last encounter of the deceased ends at death, discharge 'exp'");
    is_int(active_rx, 0, "no prescription of a deceased patient stays active");
    arena_free(a);
    store_free(&s);
}

static void test_determinism(void)
{
    store a = {0}, b = {0}, c = {0}, one = {0};
    gen(42, 0, 20, 1, &a);
    gen(42, 0, 20, 1, &b);
    gen(43, 0, 20, 1, &c);
    ok(a.all.len > 0 && a.all.len == b.all.len && !memcmp(a.all.data, b.all.data, a.all.len),
       "same seed, same bytes (%zu)", a.all.len);
    ok(a.all.len != c.all.len || memcmp(a.all.data, c.all.data, a.all.len),
       "a different seed gives different bytes");
    /* patient 13 alone equals patient 13 inside the run */
    gen(42, 13, 14, 0, &one);
    char pid[37];
    synth_patient_id(42, 13, pid);
    ok(one.n > 0 && one.r[0].type == SYNTH_PATIENT && !strcmp(one.r[0].id, pid),
       "synth_patient_id names the Patient resource");
    int found = 0;
    for (size_t i = 0; i + one.n <= a.n && !found; i++) {
        if (strcmp(a.r[i].id, pid))
            continue;
        found = 1;
        for (size_t k = 0; k < one.n; k++)
            found &= one.r[k].len == a.r[i + k].len &&
                     !memcmp(one.r[k].json, a.r[i + k].json, one.r[k].len);
    }
    ok(found, "a patient does not depend on the patients generated before it");
    /* ids never repeat across patients and seeds */
    sset ids = {calloc(1 << 15, sizeof(char *)), 1 << 15};
    int dup = 0;
    for (size_t i = 0; i < a.n; i++) {
        dup += sset_has(&ids, a.r[i].id);
        sset_add(&ids, a.r[i].id);
    }
    is_int(dup, 0, "ids are unique within a run");
    sset_free(&ids);
    store_free(&a);
    store_free(&b);
    store_free(&c);
    store_free(&one);
}

/* ---- the CLI --------------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    buf b = BUF_INIT;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_put(&b, tmp, n);
    fclose(f);
    if (b.len == 0) { /* an empty file is still a file */
        buf_free(&b);
        *len = 0;
        return calloc(1, 1);
    }
    return buf_detach(&b, len);
}

/* synth_main with its stderr summary and messages silenced, to keep TAP output clean */
static int run(const char **args, int n)
{
    char *argv[16];
    for (int i = 0; i < n; i++)
        argv[i] = (char *)args[i];
    argv[n] = NULL;
    fflush(stderr);
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
    if (saved >= 0 && devnull >= 0)
        dup2(devnull, 2);
    int rc = synth_main(n, argv);
    fflush(stderr);
    if (saved >= 0) {
        dup2(saved, 2);
        close(saved);
    }
    if (devnull >= 0)
        close(devnull);
    return rc;
}

static int count_lines(const char *data, size_t len)
{
    int n = 0;
    for (size_t i = 0; i < len; i++)
        n += data[i] == '\n';
    return n;
}

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void test_cli(void)
{
    char base[] = "/tmp/hortus-synth-XXXXXX";
    ok(mkdtemp(base) != NULL, "temp dir");
    char d1[4200], d2[4200], d3[4200];
    snprintf(d1, sizeof d1, "%s/nd1", base);
    snprintf(d2, sizeof d2, "%s/nd2/deeper", base);
    snprintf(d3, sizeof d3, "%s/bundles", base);

    const char *a1[] = {"generate",  "--patients", "25",       "--seed", "9",
                        "--threads", "1",          "--format", "ndjson", d1};
    is_int(run(a1, 10), 0, "generate ndjson, one thread");
    const char *a2[] = {"generate", "--format", "ndjson",     "--threads", "3",
                        "--seed",   "9",        "--patients", "25",        d2};
    is_int(run(a2, 10), 0, "generate ndjson, three threads, nested OUTDIR created");

    int same = 1, total_lines = 0;
    for (int t = 0; t < SYNTH_NTYPES; t++) {
        char p1[4400], p2[4400];
        snprintf(p1, sizeof p1, "%s/%s.ndjson", d1, synth_type_names[t]);
        snprintf(p2, sizeof p2, "%s/%s.ndjson", d2, synth_type_names[t]);
        size_t l1 = 0, l2 = 0;
        char *b1 = slurp(p1, &l1), *b2 = slurp(p2, &l2);
        same &= b1 && b2 && l1 == l2 && !memcmp(b1, b2, l1);
        if (b1)
            total_lines += count_lines(b1, l1);
        if (t == SYNTH_PATIENT)
            is_int(b1 ? count_lines(b1, l1) : -1, 25, "Patient.ndjson has one line per patient");
        free(b1);
        free(b2);
    }
    ok(same, "thread count does not change a byte");

    /* the files hold exactly what the library emits for the same seed */
    store s = {0};
    gen(9, 0, 25, 1, &s);
    is_int(total_lines, (long long)s.n, "ndjson lines = resources generated (%zu)", s.n);

    const char *a3[] = {"generate", "--patients", "4", "--seed", "9", "--format", "bundles", d3};
    is_int(run(a3, 8), 0, "generate bundles");
    arena *a = arena_new(0);
    int files_ok = 1, entries = 0, entry_bad = 0, invalid = 0;
    for (int i = -1; i < 4; i++) {
        char name[64], path[4400];
        if (i < 0)
            snprintf(name, sizeof name, "organizations");
        else
            synth_patient_id(9, (uint64_t)i, name);
        snprintf(path, sizeof path, "%s/%s.json", d3, name);
        size_t len = 0;
        char *data = slurp(path, &len);
        if (!data) {
            files_ok = 0;
            continue;
        }
        arena_reset(a);
        json_val *v;
        if (json_parse(a, data, len, JSON_FHIR, &v, NULL)) {
            files_ok = 0;
            free(data);
            continue;
        }
        oo o;
        oo_init(&o, a);
        invalid += val_resource(a, v, "Bundle", &o) != 0;
        const char *rt = json_get_str(v, "resourceType"), *ty = json_get_str(v, "type");
        files_ok &= rt && !strcmp(rt, "Bundle") && ty && !strcmp(ty, "transaction");
        const json_val *en = json_get(v, "entry");
        for (uint32_t k = 0; en && k < en->n; k++) {
            const json_val *e = &en->u.items[k];
            const json_val *res = json_get(e, "resource"), *req = json_get(e, "request");
            const char *rid = json_get_str(res, "id"), *rty = json_get_str(res, "resourceType");
            const char *full = json_get_str(e, "fullUrl");
            const char *meth = json_get_str(req, "method"), *url = json_get_str(req, "url");
            char want_full[128], want_url[128];
            snprintf(want_full, sizeof want_full, "urn:uuid:%s", rid ? rid : "");
            snprintf(want_url, sizeof want_url, "%s/%s", rty ? rty : "", rid ? rid : "");
            entry_bad += !full || strcmp(full, want_full) || !meth || strcmp(meth, "PUT") || !url ||
                         strcmp(url, want_url);
            if (i >= 0 && k == 0)
                entry_bad += !rty || strcmp(rty, "Patient") || strcmp(rid, name);
            entries++;
        }
        free(data);
    }
    ok(files_ok, "organizations.json and one Bundle file per patient, each a transaction");
    is_int(invalid, 0, "bundles validate against the R4 model");
    is_int(entry_bad, 0, "entries: fullUrl urn:uuid:<id>, PUT Type/id, Patient first");
    size_t want = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.r[i].type == SYNTH_PATIENT) {
            char pid[37];
            synth_patient_id(9, 4, pid);
            if (!strcmp(s.r[i].id, pid))
                break;
        }
        want++;
    }
    is_int(entries, (long long)want, "bundle entries = resources of those patients (%zu)", want);
    arena_free(a);
    store_free(&s);

    const char *bad1[] = {"generate", "--patients", "0", "--format", "ndjson", d1};
    is_int(run(bad1, 6), 2, "--patients 0 is a usage error");
    const char *bad2[] = {"generate", "--patients", "3", "--format", "xml", d1};
    is_int(run(bad2, 6), 2, "unknown format is a usage error");
    const char *bad3[] = {"generate", "--patients", "3", "--format", "ndjson"};
    is_int(run(bad3, 5), 2, "missing OUTDIR is a usage error");
    const char *bad4[] = {"generate", "--patients", "12x", "--format", "ndjson", d1};
    is_int(run(bad4, 6), 2, "a malformed number is a usage error");

    /* OUTDIR that is a regular file: a runtime failure, not a usage error */
    char file[4300];
    snprintf(file, sizeof file, "%s/plainfile", base);
    FILE *pf = fopen(file, "w");
    if (pf)
        fclose(pf);
    const char *bad5[] = {"generate", "--patients", "1", "--format", "ndjson", file};
    is_int(run(bad5, 6), 1, "OUTDIR that is a file fails with exit code 1");
    unlink(file);

    char sub[4300];
    snprintf(sub, sizeof sub, "%s/nd2", base);
    rm_rf(d1);
    rm_rf(d2);
    rm_rf(sub);
    rm_rf(d3);
    rm_rf(base);
}

int main(void)
{
    test_bsn();
    test_time();
    test_codes();
    test_resources();
    test_deceased();
    test_determinism();
    test_cli();
    return tap_done();
}
