/*
 * synth.c -- the synthetic patient generator behind `hortus generate`.
 *
 * One patient is generated in two passes over its timeline:
 *
 *   1. plan:    draw the person (sex, age, city, body, chronic conditions with
 *               onsets) and lay out every encounter of the last SYNTH_YEARS years
 *               (yearly check-ups, diagnosis visits, follow-ups, acute episodes,
 *               emergencies and admissions, vaccinations), sorted by start time;
 *   2. emit:    walk the plan in order, writing the Encounter and then what
 *               happened in it (Observations with the DiagnosticReport of their
 *               panel, Conditions, MedicationRequests, Procedures, Immunizations).
 *
 * Planning first is what keeps the timeline consistent: a prescription knows
 * whether a later renewal replaces it (status completed vs active), admissions
 * follow the emergency visit that caused them, and every resource is written
 * after the resources it references. Measured values come from per-patient
 * baselines plus the effect of conditions, treatment and the acute state of the
 * visit, so a patient's blood pressure, weight or HbA1c move plausibly over time.
 * Some of the elderly die within the window: their timeline ends with a final
 * admission discharged as "expired" at Patient.deceasedDateTime, and their last
 * prescriptions are "stopped" rather than "active".
 *
 * Randomness: xoshiro256** seeded through splitmix64 from (seed, patient index);
 * normal deviates are Irwin-Hall sums, so the random stream does not depend on
 * the math library (only the eGFR formula calls pow()). Times are seconds since
 * the Unix epoch, written as Dutch local time with the Europe/Amsterdam offset
 * (+01:00, or +02:00 in summer time).
 */
#include "synth/synth.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "synth/synth_int.h"
#include "json/json.h"

const char *const synth_type_names[SYNTH_NTYPES] = {
    [SYNTH_ORGANIZATION] = "Organization",
    [SYNTH_PRACTITIONER] = "Practitioner",
    [SYNTH_PATIENT] = "Patient",
    [SYNTH_ENCOUNTER] = "Encounter",
    [SYNTH_CONDITION] = "Condition",
    [SYNTH_OBSERVATION] = "Observation",
    [SYNTH_DIAGNOSTICREPORT] = "DiagnosticReport",
    [SYNTH_MEDICATIONREQUEST] = "MedicationRequest",
    [SYNTH_PROCEDURE] = "Procedure",
    [SYNTH_ALLERGYINTOLERANCE] = "AllergyIntolerance",
    [SYNTH_IMMUNIZATION] = "Immunization",
};

#define DAY 86400LL
#define YEAR 31556952LL /* 365.2425 days */
#define SYNTH_YEARS 9   /* length of the generated history */
#define MAX_ENC 320     /* encounters planned per patient, at most */
#define GP_PER_CITY 2   /* general practitioners per GP practice */
#define DOC_PER_CITY 3  /* specialists per hospital */
#define NPRACT_PER_CITY (GP_PER_CITY + DOC_PER_CITY)
#define INFRA_INDEX 0xffffffffffff0000ULL /* id-stream index of the shared resources */

/* ---- random numbers ----------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static void rng_seed(rng *r, uint64_t seed, uint64_t index)
{
    uint64_t x = mix64(seed ^ 0x5851f42d4c957f2dULL) ^ mix64(index + 0x14057b7ef767814fULL);
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        r->s[i] = mix64(x);
    }
}

/* uniform in [0,1) */
static double rng_unit(rng *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform integer in [0,n) */
static uint32_t rng_below(rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static int rng_chance(rng *r, double p)
{
    return rng_unit(r) < p;
}

static double rng_range(rng *r, double lo, double hi)
{
    return lo + (hi - lo) * rng_unit(r);
}

/* approximately normal: Irwin-Hall sum of four uniforms, rescaled to unit variance */
static double rng_normal(rng *r, double mean, double sd)
{
    double s = rng_unit(r) + rng_unit(r) + rng_unit(r) + rng_unit(r) - 2.0;
    return mean + sd * s * 1.7320508075688772;
}

/* ---- ids ------------------------------------------------------------------------ */

static const char hexd[] = "0123456789abcdef";

/* RFC 4122 version-4 layout from 128 bits: 8-4-4-4-12 lowercase hex. */
static void uuid_fmt(uint64_t hi, uint64_t lo, char out[37])
{
    hi = (hi & ~0xf000ULL) | 0x4000ULL;
    lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
    int o = 0;
    for (int i = 15; i >= 0; i--) {
        out[o++] = hexd[(hi >> (i * 4)) & 15];
        if (i == 8 || i == 4)
            out[o++] = '-';
    }
    out[o++] = '-';
    for (int i = 15; i >= 0; i--) {
        out[o++] = hexd[(lo >> (i * 4)) & 15];
        if (i == 12)
            out[o++] = '-';
    }
    out[o] = 0;
}

static uint64_t id_key(uint64_t seed, uint64_t index)
{
    return mix64(mix64(seed ^ 0x2545f4914f6cdd1dULL) ^ index);
}

static void id_make(uint64_t key, uint32_t ctr, char out[37])
{
    uint64_t hi = mix64(key ^ ((uint64_t)ctr << 1));
    uint64_t lo = mix64(key ^ (((uint64_t)ctr << 1) | 1) ^ 0xd6e8feb86659fd93ULL);
    uuid_fmt(hi, lo, out);
}

void synth_patient_id(uint64_t seed, uint64_t index, char out[37])
{
    id_make(id_key(seed, index), 0, out);
}

int synth_bsn_valid(const char *s)
{
    if (!s || strlen(s) != 9)
        return 0;
    int sum = 0;
    for (int i = 0; i < 9; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        int d = s[i] - '0';
        sum += i < 8 ? (9 - i) * d : -d;
    }
    return sum % 11 == 0;
}

/*
 * A BSN unique per (seed, index): the first seven digits are an affine bijection
 * of the index modulo 10^7, the eighth is the smallest digit that keeps the check
 * digit below 10 (the weight 2 of digit eight makes 0 or 1 always work), and the
 * ninth is the check digit.
 */
static void make_bsn(uint64_t seed, uint64_t index, char out[10])
{
    uint64_t mul = (mix64(seed ^ 0xb5) % 1000000) * 10 + 3; /* ends in 3: coprime to 10 */
    uint64_t add = mix64(seed ^ 0xa7) % 10000000;
    uint64_t x = ((index % 10000000) * mul + add) % 10000000;
    int sum7 = 0;
    for (int i = 6; i >= 0; i--) {
        out[i] = (char)('0' + x % 10);
        x /= 10;
    }
    for (int i = 0; i < 7; i++)
        sum7 += (9 - i) * (out[i] - '0');
    for (int d8 = 0; d8 < 10; d8++) {
        int c = (sum7 + 2 * d8) % 11;
        if (c < 10) {
            out[7] = (char)('0' + d8);
            out[8] = (char)('0' + c);
            break;
        }
    }
    out[9] = 0;
}

/* A hospital number unique per (seed, index) for up to 10^8 patients: "MRN" and an
 * affine bijection of the index modulo 10^8, as eight digits. */
static void make_mrn(uint64_t seed, uint64_t index, char out[12])
{
    uint64_t mul = (mix64(seed ^ 0x3c) % 10000000) * 10 + 7; /* ends in 7: coprime to 10 */
    uint64_t x = ((index % 100000000) * mul + mix64(seed ^ 0x4d) % 100000000) % 100000000;
    memcpy(out, "MRN", 3);
    for (int i = 10; i >= 3; i--) {
        out[i] = (char)('0' + x % 10);
        x /= 10;
    }
    out[11] = 0;
}

/* ---- time ------------------------------------------------------------------------- */

/* days since 1970-01-01 of a proleptic Gregorian date */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* the day number of the last Sunday of month m (which has `len` days) */
static int64_t last_sunday(int y, unsigned m, unsigned len)
{
    int64_t d = days_from_civil(y, m, len);
    int64_t wd = ((d % 7) + 7 + 4) % 7; /* 1970-01-01 was a Thursday; 0 = Sunday */
    return d - wd;
}

/* Europe/Amsterdam offset from UTC at instant t: summer time runs from the last
 * Sunday of March to the last Sunday of October, switching at 01:00 UTC. */
static int utc_offset(int64_t t)
{
    int y;
    unsigned m, d;
    civil_from_days(floor_div(t, DAY), &y, &m, &d);
    int64_t start = last_sunday(y, 3, 31) * DAY + 3600;
    int64_t end = last_sunday(y, 10, 31) * DAY + 3600;
    return (t >= start && t < end) ? 7200 : 3600;
}

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

static void put4(char *p, int v)
{
    p[0] = (char)('0' + v / 1000 % 10);
    p[1] = (char)('0' + v / 100 % 10);
    p[2] = (char)('0' + v / 10 % 10);
    p[3] = (char)('0' + v % 10);
}

/* "YYYY-MM-DD" of a day number; returns 10 */
static int fmt_date(int64_t day, char *out)
{
    int y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    put4(out, y);
    out[4] = '-';
    put2(out + 5, m);
    out[7] = '-';
    put2(out + 8, d);
    out[10] = 0;
    return 10;
}

/* "YYYY-MM-DDThh:mm:ss+hh:00" in Amsterdam local time; returns 25 */
static int fmt_datetime(int64_t t, char *out)
{
    int off = utc_offset(t);
    int64_t lt = t + off;
    int64_t day = floor_div(lt, DAY);
    int64_t sec = lt - day * DAY;
    fmt_date(day, out);
    out[10] = 'T';
    put2(out + 11, (unsigned)(sec / 3600));
    out[13] = ':';
    put2(out + 14, (unsigned)(sec / 60 % 60));
    out[16] = ':';
    put2(out + 17, (unsigned)(sec % 60));
    out[19] = '+';
    put2(out + 20, (unsigned)(off / 3600));
    out[22] = ':';
    out[23] = '0';
    out[24] = '0';
    out[25] = 0;
    return 25;
}

/* UTC instant of local wall-clock time `secs` after midnight of local day `day` */
static int64_t at_local(int64_t day, int64_t secs)
{
    int64_t guess = day * DAY + secs - 3600;
    return day * DAY + secs - utc_offset(guess);
}

/* fixed-point text of v with `dec` decimals (round half away from zero) */
static int fmt_fixed(double v, int dec, char *out)
{
    static const double p10[] = {1, 10, 100, 1000, 10000};
    int neg = v < 0;
    if (neg)
        v = -v;
    uint64_t n = (uint64_t)(v * p10[dec] + 0.5);
    char tmp[32];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n || k <= dec);
    int o = 0;
    if (neg)
        out[o++] = '-';
    for (int i = k - 1; i >= 0; i--) {
        out[o++] = tmp[i];
        if (i == dec && dec > 0)
            out[o++] = '.';
    }
    out[o] = 0;
    return o;
}

/* ---- generator state --------------------------------------------------------------- */

enum { PU_CHECKUP, PU_DIAG, PU_FOLLOW, PU_ACUTE, PU_EXACERBATION, PU_ADMIT, PU_VACC };

typedef struct plan_enc {
    int64_t start, end;
    uint32_t seq;    /* insertion order: the tie-break that keeps sorting deterministic */
    uint8_t kind;    /* E_AMB .. E_VR */
    uint8_t etype;   /* ET_* */
    uint8_t purpose; /* PU_* */
    uint8_t arg;     /* chronic C_*, acute A_* or vaccine V_* */
    uint8_t arg2;    /* PU_VACC: a second vaccine + 1; PU_ADMIT: 1 when after an ED visit */
    uint8_t fatal;   /* the patient dies at the end of this admission */
} plan_enc;

typedef struct patient {
    char id[37];
    char bsn[10];
    uint64_t index;
    int female;
    int64_t birth_day;
    int64_t birth; /* birth instant (noon) */
    int64_t end;   /* end of the timeline: death, or SYNTH_END_UNIX */
    int deceased;
    int city;
    int gp, doc; /* practitioner indices (global) */
    double adult_height, bmi0, bmi_drift;
    double base[M_COUNT];
    uint32_t has; /* bit per chronic condition */
    int64_t onset[C_CHRONIC_COUNT];
    uint8_t drugs[C_CHRONIC_COUNT]; /* bit i: drugs[i] of the condition is used */
    int recorded[C_CHRONIC_COUNT];
    int last_rx[C_CHRONIC_COUNT]; /* plan index of the last prescribing visit */
    char cond_id[C_CHRONIC_COUNT][37];
    int nenc;
    plan_enc enc[MAX_ENC];
} patient;

struct synth {
    uint64_t seed;
    rng r;
    uint64_t idkey;
    uint32_t idctr;
    buf res; /* the resource being written */
    jw w;
    int cur_type;
    char cur_id[37];
    synth_sink sink;
    void *ctx;
    int err;
    char org_id[64][37];   /* hospital of city c at 2c, GP practice at 2c+1 */
    char prac_id[128][37]; /* NPRACT_PER_CITY per city */
    patient p;
    /* the encounter being written */
    const plan_enc *e;
    char enc_id[37];
    const char *enc_org, *enc_prac;
};

synth *synth_new(uint64_t seed)
{
    synth *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->seed = seed;
    buf_init(&g->res);
    uint64_t key = id_key(seed, INFRA_INDEX);
    for (size_t c = 0; c < synth_n_cities; c++) {
        id_make(key, (uint32_t)(2 * c + 1), g->org_id[2 * c]);
        id_make(key, (uint32_t)(2 * c + 2), g->org_id[2 * c + 1]);
        for (int k = 0; k < NPRACT_PER_CITY; k++)
            id_make(key, (uint32_t)(1000 + c * NPRACT_PER_CITY + k),
                    g->prac_id[c * NPRACT_PER_CITY + k]);
    }
    return g;
}

void synth_free(synth *g)
{
    if (!g)
        return;
    buf_free(&g->res);
    free(g);
}

/* ---- JSON helpers ------------------------------------------------------------------ */

static void k_str(jw *w, const char *k, const char *v)
{
    jw_key(w, k);
    jw_str(w, v);
}

static void k_time(jw *w, const char *k, int64_t t)
{
    char s[32];
    fmt_datetime(t, s);
    k_str(w, k, s);
}

static void w_coding(jw *w, const char *sys, const char *code, const char *display)
{
    jw_obj(w);
    k_str(w, "system", sys);
    k_str(w, "code", code);
    if (display)
        k_str(w, "display", display);
    jw_end(w);
}

/* "k": {"coding":[{system, code, display}], "text": display} */
static void k_cc(jw *w, const char *k, const char *sys, const char *code, const char *display)
{
    jw_key(w, k);
    jw_obj(w);
    jw_key(w, "coding");
    jw_arr(w);
    w_coding(w, sys, code, display);
    jw_end(w);
    k_str(w, "text", display);
    jw_end(w);
}

/* "k": [ CodeableConcept ] */
static void k_cc1(jw *w, const char *k, const char *sys, const char *code, const char *display)
{
    jw_key(w, k);
    jw_arr(w);
    jw_obj(w);
    jw_key(w, "coding");
    jw_arr(w);
    w_coding(w, sys, code, display);
    jw_end(w);
    k_str(w, "text", display);
    jw_end(w);
    jw_end(w);
}

static void w_ref(jw *w, const char *type, const char *id)
{
    char ref[96];
    size_t tl = strlen(type), il = strlen(id);
    memcpy(ref, type, tl);
    ref[tl] = '/';
    memcpy(ref + tl + 1, id, il + 1);
    jw_obj(w);
    k_str(w, "reference", ref);
    jw_end(w);
}

static void k_ref(jw *w, const char *k, const char *type, const char *id)
{
    jw_key(w, k);
    w_ref(w, type, id);
}

static void k_num(jw *w, const char *k, double v, int dec)
{
    char s[40];
    int n = fmt_fixed(v, dec, s);
    jw_key(w, k);
    jw_num(w, s, (size_t)n);
}

static void k_qty(jw *w, const char *k, double v, const synth_measure *m)
{
    jw_key(w, k);
    jw_obj(w);
    k_num(w, "value", v, m->decimals);
    k_str(w, "unit", m->unit);
    k_str(w, "system", SYNTH_UCUM);
    k_str(w, "code", m->ucum);
    jw_end(w);
}

static void k_period(jw *w, const char *k, int64_t start, int64_t end)
{
    jw_key(w, k);
    jw_obj(w);
    k_time(w, "start", start);
    k_time(w, "end", end);
    jw_end(w);
}

/* start a resource of `type` with a fresh id (copied to id_out when not NULL) */
static jw *res_begin(synth *g, int type, char *id_out)
{
    id_make(g->idkey, g->idctr++, g->cur_id);
    if (id_out)
        memcpy(id_out, g->cur_id, 37);
    g->cur_type = type;
    buf_reset(&g->res);
    jw_init(&g->w, &g->res, 0);
    jw_obj(&g->w);
    k_str(&g->w, "resourceType", synth_type_names[type]);
    k_str(&g->w, "id", g->cur_id);
    return &g->w;
}

static void res_end(synth *g)
{
    jw_end(&g->w);
    if (g->err)
        return;
    if (g->res.err) {
        g->err = g->res.err;
        return;
    }
    int rc = g->sink(g->ctx, g->cur_type, g->cur_id, g->res.data, g->res.len);
    if (rc)
        g->err = rc;
}

/* ---- shared resources ----------------------------------------------------------------- */

static void digits(rng *r, char *out, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = (char)('0' + rng_below(r, 10));
    out[n] = 0;
}

static void postcode(rng *r, const synth_city *c, char out[8])
{
    static const char letters[] = "ABCDEGHJKLMNPRSTVWXZ"; /* F I O Q U Y are not used */
    unsigned n = c->pc_lo + rng_below(r, (uint32_t)(c->pc_hi - c->pc_lo + 1));
    put4(out, (int)n);
    out[4] = ' ';
    for (;;) {
        out[5] = letters[rng_below(r, sizeof letters - 1)];
        out[6] = letters[rng_below(r, sizeof letters - 1)];
        if (!(out[5] == 'S' && (out[6] == 'A' || out[6] == 'D' || out[6] == 'S')))
            break;
    }
    out[7] = 0;
}

static void w_address(jw *w, rng *r, const synth_city *c, int home)
{
    char line[96], pc[8], num[8];
    const char *street = synth_streets[rng_below(r, (uint32_t)synth_n_streets)];
    fmt_fixed(1 + rng_below(r, home ? 180 : 40), 0, num);
    size_t sl = strlen(street), nl = strlen(num);
    memcpy(line, street, sl);
    line[sl] = ' ';
    memcpy(line + sl + 1, num, nl + 1);
    postcode(r, c, pc);
    jw_key(w, "address");
    jw_arr(w);
    jw_obj(w);
    if (home) {
        k_str(w, "use", "home");
        k_str(w, "type", "physical");
    } else {
        k_str(w, "use", "work");
    }
    jw_key(w, "line");
    jw_arr(w);
    jw_str(w, line);
    jw_end(w);
    /* the parts of the line, as the Dutch address profile (nl-core) records them */
    jw_key(w, "_line");
    jw_arr(w);
    jw_obj(w);
    jw_key(w, "extension");
    jw_arr(w);
    jw_obj(w);
    k_str(w, "url", "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-streetName");
    k_str(w, "valueString", street);
    jw_end(w);
    jw_obj(w);
    k_str(w, "url", "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-houseNumber");
    k_str(w, "valueString", num);
    jw_end(w);
    jw_end(w);
    jw_end(w);
    jw_end(w);
    k_str(w, "city", c->name);
    k_str(w, "postalCode", pc);
    k_str(w, "country", "NL");
    jw_end(w);
    jw_end(w);
}

/* HumanName with the Dutch family-name parts as nl-core does it */
static void w_name(jw *w, const char *given, const synth_surname *s, const char *prefix)
{
    char family[64], text[128];
    size_t o = 0;
    if (s->prefix) {
        size_t pl = strlen(s->prefix);
        memcpy(family, s->prefix, pl);
        family[pl] = ' ';
        o = pl + 1;
    }
    size_t nl = strlen(s->name);
    memcpy(family + o, s->name, nl + 1);
    size_t gl = strlen(given), fl = strlen(family);
    memcpy(text, given, gl);
    text[gl] = ' ';
    memcpy(text + gl + 1, family, fl + 1);

    jw_key(w, "name");
    jw_arr(w);
    jw_obj(w);
    k_str(w, "use", "official");
    k_str(w, "text", text);
    k_str(w, "family", family);
    if (s->prefix) {
        jw_key(w, "_family");
        jw_obj(w);
        jw_key(w, "extension");
        jw_arr(w);
        jw_obj(w);
        k_str(w, "url", "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix");
        k_str(w, "valueString", s->prefix);
        jw_end(w);
        jw_obj(w);
        k_str(w, "url", "http://hl7.org/fhir/StructureDefinition/humanname-own-name");
        k_str(w, "valueString", s->name);
        jw_end(w);
        jw_end(w);
        jw_end(w);
    }
    jw_key(w, "given");
    jw_arr(w);
    jw_str(w, given);
    jw_end(w);
    if (prefix) {
        jw_key(w, "prefix");
        jw_arr(w);
        jw_str(w, prefix);
        jw_end(w);
    }
    jw_end(w);
    jw_end(w);
}

static void w_phone(jw *w, rng *r, const char *area, const char *use)
{
    char v[24], d[12];
    size_t al = strlen(area);
    int n = 10 - (int)al; /* Dutch numbers have ten digits */
    digits(r, d, n);
    d[0] = (char)('1' + rng_below(r, 9));
    memcpy(v, area, al);
    v[al] = '-';
    memcpy(v + al + 1, d, (size_t)n + 1);
    jw_key(w, "telecom");
    jw_arr(w);
    jw_obj(w);
    k_str(w, "system", "phone");
    k_str(w, "value", v);
    k_str(w, "use", use);
    jw_end(w);
    jw_end(w);
}

int synth_infrastructure(synth *g, synth_sink sink, void *ctx)
{
    g->sink = sink;
    g->ctx = ctx;
    g->err = 0;
    g->idkey = id_key(g->seed, INFRA_INDEX);
    rng r;
    rng_seed(&r, g->seed, INFRA_INDEX);
    for (size_t c = 0; c < synth_n_cities && !g->err; c++) {
        const synth_city *city = &synth_cities[c];
        for (int k = 0; k < 2; k++) {
            char agb[10], name[96];
            g->idctr = (uint32_t)(2 * c + 1 + k);
            jw *w = res_begin(g, SYNTH_ORGANIZATION, NULL);
            digits(&r, agb, 8);
            agb[0] = '0';
            agb[1] = k ? '1' : '6'; /* AGB type prefix: 01 GP, 06 hospital */
            jw_key(w, "identifier");
            jw_arr(w);
            jw_obj(w);
            k_str(w, "system", SYNTH_AGB);
            k_str(w, "value", agb);
            jw_end(w);
            jw_end(w);
            jw_key(w, "active");
            jw_bool(w, 1);
            k_cc1(w, "type", "http://terminology.hl7.org/CodeSystem/organization-type", "prov",
                  "Healthcare Provider");
            if (k == 0) {
                k_str(w, "name", city->hospital);
            } else {
                const char *street = synth_streets[rng_below(&r, (uint32_t)synth_n_streets)];
                size_t pl = strlen("Huisartsenpraktijk "), sl = strlen(street);
                memcpy(name, "Huisartsenpraktijk ", pl);
                memcpy(name + pl, street, sl + 1);
                k_str(w, "name", name);
            }
            w_phone(w, &r, city->area_code, "work");
            w_address(w, &r, city, 0);
            res_end(g);
        }
        for (int k = 0; k < NPRACT_PER_CITY; k++) {
            char big[12];
            g->idctr = (uint32_t)(1000 + c * NPRACT_PER_CITY + k);
            jw *w = res_begin(g, SYNTH_PRACTITIONER, NULL);
            int female = rng_chance(&r, 0.55);
            const char *given =
                female ? synth_given_female[rng_below(&r, (uint32_t)synth_n_given_female)]
                       : synth_given_male[rng_below(&r, (uint32_t)synth_n_given_male)];
            const synth_surname *s = &synth_surnames[rng_below(&r, (uint32_t)synth_n_surnames)];
            digits(&r, big, 11);
            jw_key(w, "identifier");
            jw_arr(w);
            jw_obj(w);
            k_str(w, "system", SYNTH_BIG);
            k_str(w, "value", big);
            jw_end(w);
            jw_end(w);
            jw_key(w, "active");
            jw_bool(w, 1);
            w_name(w, given, s, "dr.");
            k_str(w, "gender", female ? "female" : "male");
            res_end(g);
        }
    }
    return g->err;
}

/* ---- planning ---------------------------------------------------------------------- */

static double age_at(const patient *p, int64_t t)
{
    return (double)(t - p->birth) / (double)YEAR;
}

static int has_at(const patient *p, int c, int64_t t)
{
    return (p->has >> c & 1) && p->onset[c] <= t;
}

static plan_enc *plan_at(synth *g, int64_t start, int kind, int etype, int purpose, int arg)
{
    patient *p = &g->p;
    rng *r = &g->r;
    if (p->nenc >= MAX_ENC || start <= p->birth)
        return NULL;
    int64_t dur;
    switch (kind) {
    case E_AMB:
        dur = (etype == ET_CHECKUP ? 30 : 15) * 60 + rng_below(r, 4) * 300;
        break;
    case E_VR:
        dur = 600 + rng_below(r, 3) * 300;
        break;
    case E_EMER:
        dur = 7200 + rng_below(r, 48) * 300;
        break;
    default:
        dur = (1 + rng_below(r, 6)) * DAY + rng_below(r, 48) * 900;
        break;
    }
    if (start + dur >= p->end)
        return NULL;
    plan_enc *e = &p->enc[p->nenc];
    e->seq = (uint32_t)p->nenc++;
    e->start = start;
    e->end = start + dur;
    e->kind = (uint8_t)kind;
    e->etype = (uint8_t)etype;
    e->purpose = (uint8_t)purpose;
    e->arg = (uint8_t)arg;
    e->arg2 = 0;
    e->fatal = 0;
    return e;
}

/* a visit on local day `day`: office hours for planned care, any time for emergencies */
static plan_enc *plan_day(synth *g, int64_t day, int kind, int etype, int purpose, int arg)
{
    int64_t secs;
    if (kind == E_EMER)
        secs = rng_below(&g->r, 24 * 12) * 300;
    else
        secs = 8 * 3600 + rng_below(&g->r, 9 * 12) * 300;
    return plan_at(g, at_local(day, secs), kind, etype, purpose, arg);
}

static int64_t day_of(int64_t t)
{
    return floor_div(t + 3600, DAY);
}

static int cmp_enc(const void *a, const void *b)
{
    const plan_enc *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* chance per month for a yearly rate */
static int monthly(rng *r, double per_year)
{
    return rng_chance(r, per_year / 12.0);
}

static int pick_acute(rng *r, const patient *p, double age)
{
    double w[A_ACUTE_COUNT] = {0};
    w[A_PHARYNGITIS] = 3;
    w[A_BRONCHITIS] = 2;
    w[A_SINUSITIS] = 2;
    w[A_UTI] = p->female ? 2.5 : 0.4;
    w[A_PNEUMONIA] = age > 65 ? 1.5 : 0.3;
    w[A_SPRAIN] = age > 8 && age < 60 ? 1.2 : 0.3;
    w[A_OTITIS] = age < 10 ? 4 : 0.2;
    double sum = 0;
    for (int i = 0; i < A_ACUTE_COUNT; i++)
        sum += w[i];
    double x = rng_unit(r) * sum;
    for (int i = 0; i < A_ACUTE_COUNT; i++) {
        if (x < w[i])
            return i;
        x -= w[i];
    }
    return A_PHARYNGITIS;
}

static void plan_timeline(synth *g)
{
    patient *p = &g->p;
    rng *r = &g->r;
    int64_t end_day = day_of(p->end) - 1;
    int64_t win = SYNTH_END_UNIX - SYNTH_YEARS * YEAR;
    if (win < p->birth)
        win = p->birth;
    int64_t win_day = day_of(win) + 1;

    /* yearly check-ups */
    for (int64_t d = win_day; d < end_day; d += 365) {
        if (rng_chance(r, 0.75)) {
            int64_t day = d + rng_below(r, 365);
            if (day < end_day)
                plan_day(g, day, E_AMB, ET_CHECKUP, PU_CHECKUP, 0);
        }
    }
    /* chronic conditions: diagnosis in the window, then follow-ups */
    for (int c = 0; c < C_CHRONIC_COUNT; c++) {
        if (!(p->has >> c & 1))
            continue;
        if (p->onset[c] >= win && c != C_OBESITY)
            plan_day(g, day_of(p->onset[c]), E_AMB, ET_PROBLEM, PU_DIAG, c);
        int64_t from = p->onset[c] > win ? p->onset[c] + 30 * DAY : win;
        double rate = synth_chronics[c].followups;
        for (int64_t d = day_of(from); d < end_day; d += 30) {
            if (!monthly(r, rate))
                continue;
            int vr = rng_chance(r, c == C_DEPR ? 0.6 : 0.25);
            plan_day(g, d + rng_below(r, 30), vr ? E_VR : E_AMB, vr ? ET_TELE : ET_FOLLOWUP,
                     PU_FOLLOW, c);
        }
    }
    /* acute episodes, exacerbations, admissions */
    for (int64_t d = win_day; d < end_day; d += 30) {
        int64_t t = d * DAY;
        double age = age_at(p, t);
        int64_t day = d + rng_below(r, 30);
        if (monthly(r, age < 12 ? 0.9 : 0.45)) {
            int a = pick_acute(r, p, age);
            if (a == A_PNEUMONIA) {
                plan_enc *e = plan_day(g, day, E_EMER, ET_EMERGENCY, PU_ACUTE, a);
                if (e && age > 70 && rng_chance(r, 0.6)) {
                    plan_enc *ad = plan_at(g, e->end, E_IMP, ET_ADMISSION, PU_ADMIT, a);
                    if (ad)
                        ad->arg2 = 1;
                }
            } else if (a == A_SPRAIN) {
                plan_day(g, day, E_EMER, ET_EMERGENCY, PU_ACUTE, a);
            } else if (a == A_SINUSITIS && rng_chance(r, 0.5)) {
                plan_day(g, day, E_VR, ET_TELE, PU_ACUTE, a);
            } else {
                plan_day(g, day, E_AMB, ET_PROBLEM, PU_ACUTE, a);
            }
        }
        if (age > 40 && monthly(r, has_at(p, C_CHD, t) ? 0.2 : 0.02)) {
            int mi = has_at(p, C_CHD, t) && rng_chance(r, 0.3);
            plan_enc *e = plan_day(g, day, E_EMER, ET_EMERGENCY, PU_ACUTE, mi ? A_MI : A_CHESTPAIN);
            if (e && mi) {
                plan_enc *ad = plan_at(g, e->end, E_IMP, ET_ADMISSION, PU_ADMIT, A_MI);
                if (ad)
                    ad->arg2 = 1;
            }
        }
        if (has_at(p, C_COPD, t) && monthly(r, 0.3))
            plan_day(g, day, E_EMER, ET_EMERGENCY, PU_EXACERBATION, C_COPD);
        if (has_at(p, C_ASTHMA, t) && monthly(r, 0.08))
            plan_day(g, day, E_EMER, ET_EMERGENCY, PU_EXACERBATION, C_ASTHMA);
        if (has_at(p, C_HF, t) && monthly(r, 0.25))
            plan_day(g, day, E_IMP, ET_ADMISSION, PU_ADMIT, 100 + C_HF);
    }
    /* seasonal influenza vaccination (October/November) for the elderly and chronically ill */
    int y0, y1;
    unsigned m, dd;
    civil_from_days(win_day, &y0, &m, &dd);
    civil_from_days(end_day, &y1, &m, &dd);
    for (int y = y0; y <= y1; y++) {
        int64_t day = days_from_civil(y, 10, 15) + rng_below(r, 45);
        if (day < win_day || day >= end_day)
            continue;
        int64_t t = day * DAY;
        int risk = age_at(p, t) >= 60 || has_at(p, C_HF, t) || has_at(p, C_COPD, t) ||
                   has_at(p, C_DM2, t) || has_at(p, C_ASTHMA, t) || has_at(p, C_CHD, t);
        if (risk && rng_chance(r, 0.7))
            plan_day(g, day, E_AMB, ET_VACCINATION, PU_VACC, V_FLU);
    }
    /* COVID-19 in 2021: two doses five weeks apart, a booster in December for some */
    int64_t c0 = days_from_civil(2021, 3, 1) + rng_below(r, 100);
    if (c0 >= win_day && age_at(p, c0 * DAY) >= 12 && rng_chance(r, 0.85)) {
        plan_day(g, c0, E_AMB, ET_VACCINATION, PU_VACC, V_COVID);
        plan_day(g, c0 + 35, E_AMB, ET_VACCINATION, PU_VACC, V_COVID);
        if (age_at(p, c0 * DAY) >= 18 && rng_chance(r, 0.6))
            plan_day(g, days_from_civil(2021, 12, 1) + rng_below(r, 28), E_AMB, ET_VACCINATION,
                     PU_VACC, V_COVID);
    }
    /* the Dutch childhood schedule, at the ages that fall in the window */
    static const struct {
        int days;
        uint8_t v1, v2;
    } sched[] = {
        {92, V_HEXA, V_PCV},  {153, V_HEXA, V_PCV}, {335, V_HEXA, V_PCV}, {426, V_MMR, 0},
        {1461, V_DTAPIPV, 0}, {3287, V_MMR, 0},     {3652, V_HPV, 0},
    };
    for (size_t i = 0; i < sizeof sched / sizeof sched[0]; i++) {
        int64_t day = p->birth_day + sched[i].days + rng_below(r, 14);
        if (day < win_day || day >= end_day)
            continue;
        plan_enc *e = plan_day(g, day, E_AMB, ET_VACCINATION, PU_VACC, sched[i].v1);
        if (e && sched[i].days < 400)
            e->arg2 = (uint8_t)(sched[i].v2 + 1);
    }

    /* a death ends a last admission, for the worst of the patient's conditions */
    if (p->deceased && p->nenc < MAX_ENC) {
        int64_t dur = (1 + rng_below(r, 8)) * DAY + rng_below(r, 48) * 900;
        int64_t start = p->end - dur;
        int reason = A_PNEUMONIA;
        static const int worst[] = {C_HF, C_COPD, C_CKD, C_CHD, C_DM2};
        for (size_t k = 0; k < sizeof worst / sizeof worst[0]; k++)
            if (has_at(p, worst[k], start)) {
                reason = 100 + worst[k];
                break;
            }
        /* drop what the admission would overlap */
        int keep = 0;
        for (int i = 0; i < p->nenc; i++)
            if (p->enc[i].end <= start)
                p->enc[keep++] = p->enc[i];
        p->nenc = keep;
        plan_enc *e = &p->enc[p->nenc];
        memset(e, 0, sizeof *e);
        e->seq = (uint32_t)p->nenc++;
        e->start = start;
        e->end = p->end;
        e->kind = E_IMP;
        e->etype = ET_ADMISSION;
        e->purpose = PU_ADMIT;
        e->arg = (uint8_t)reason;
        e->fatal = 1;
    }

    qsort(p->enc, (size_t)p->nenc, sizeof p->enc[0], cmp_enc);

    /* the last visit that prescribes for each chronic condition decides "active" */
    for (int c = 0; c < C_CHRONIC_COUNT; c++)
        p->last_rx[c] = -1;
    int first = 1;
    for (int i = 0; i < p->nenc; i++) {
        const plan_enc *e = &p->enc[i];
        if (first) {
            for (int c = 0; c < C_CHRONIC_COUNT; c++)
                if (has_at(p, c, e->start))
                    p->last_rx[c] = i;
            first = 0;
        }
        if (e->purpose == PU_DIAG || e->purpose == PU_FOLLOW)
            p->last_rx[e->arg] = i;
    }
}

/* ---- the person ----------------------------------------------------------------------- */

/* fraction of adult height reached at a given age (both sexes, coarse) */
static double growth(double age)
{
    static const double ages[] = {0, 1, 2, 5, 10, 14, 18};
    static const double frac[] = {0.29, 0.42, 0.49, 0.61, 0.77, 0.92, 1.0};
    if (age >= 18)
        return 1.0;
    for (int i = 1; i < 7; i++)
        if (age < ages[i]) {
            double f = (age - ages[i - 1]) / (ages[i] - ages[i - 1]);
            return frac[i - 1] + f * (frac[i] - frac[i - 1]);
        }
    return 1.0;
}

/* typical BMI of a child relative to an adult's 22 */
static double child_bmi(double age)
{
    static const double ages[] = {0, 1, 2, 5, 10, 14, 18};
    static const double bmi[] = {13.5, 17.0, 16.5, 15.5, 17.0, 19.5, 21.5};
    if (age >= 18)
        return 22;
    for (int i = 1; i < 7; i++)
        if (age < ages[i]) {
            double f = (age - ages[i - 1]) / (ages[i] - ages[i - 1]);
            return bmi[i - 1] + f * (bmi[i] - bmi[i - 1]);
        }
    return 22;
}

static void make_person(synth *g, uint64_t index)
{
    patient *p = &g->p;
    rng *r = &g->r;
    memset(p, 0, offsetof(patient, enc));
    synth_patient_id(g->seed, index, p->id);
    make_bsn(g->seed, index, p->bsn);
    p->index = index;
    p->female = rng_chance(r, 0.505);

    /* age on the reference date: roughly the Dutch population pyramid */
    static const double w[] = {10, 11, 13, 12, 12, 14, 13, 10, 5};
    double x = rng_unit(r) * 100, age = 0;
    for (int i = 0; i < 9; i++) {
        if (x < w[i] || i == 8) {
            age = i * 10 + rng_unit(r) * (i == 8 ? 15 : 10);
            break;
        }
        x -= w[i];
    }
    int64_t age_days = (int64_t)(age * 365.2425);
    p->birth_day = day_of(SYNTH_END_UNIX) - 1 - age_days;
    p->birth = p->birth_day * DAY + 12 * 3600 - 3600;
    /* some of the elderly die within the generated years */
    p->end = SYNTH_END_UNIX;
    if (age >= 65) {
        double pd = 0.02 + 0.012 * (age - 65);
        if (rng_chance(r, pd > 0.35 ? 0.35 : pd)) {
            int64_t span = SYNTH_YEARS * YEAR - 90 * DAY;
            int64_t death = SYNTH_END_UNIX - 30 * DAY - (int64_t)(rng_unit(r) * (double)span);
            death -= death % 300; /* on a 5-minute mark, like every other time */
            p->end = death;
            p->deceased = 1;
        }
    }
    double age_end = age_at(p, p->end);
    p->city = (int)rng_below(r, (uint32_t)synth_n_cities);
    p->gp = p->city * NPRACT_PER_CITY + (int)rng_below(r, GP_PER_CITY);
    p->doc = p->city * NPRACT_PER_CITY + GP_PER_CITY + (int)rng_below(r, DOC_PER_CITY);

    p->adult_height = p->female ? rng_normal(r, 168.5, 6.5) : rng_normal(r, 182, 7);
    p->bmi0 = rng_normal(r, 25.5, 3.8);
    if (p->bmi0 < 17.5)
        p->bmi0 = 17.5 + rng_unit(r);
    p->bmi_drift = rng_normal(r, 0.08, 0.15); /* BMI units per year */

    double *b = p->base;
    b[M_HR] = rng_normal(r, 70, 7);
    b[M_SYS] = rng_normal(r, 0, 8); /* offset from the age curve */
    b[M_TEMP] = rng_normal(r, 36.8, 0.15);
    b[M_GLUC] = rng_normal(r, 5.1, 0.35);
    b[M_HBA1C] = rng_normal(r, 5.3, 0.25);
    b[M_CREA] = p->female ? rng_normal(r, 68, 9) : rng_normal(r, 85, 11);
    b[M_NA] = rng_normal(r, 140, 1.5);
    b[M_K] = rng_normal(r, 4.2, 0.25);
    b[M_HB] = p->female ? rng_normal(r, 13.6, 0.8) : rng_normal(r, 15.1, 0.9);
    b[M_WBC] = rng_normal(r, 6.5, 1.2);
    b[M_PLT] = rng_normal(r, 260, 45);
    b[M_CHOL] = rng_normal(r, 0, 22); /* offset from the age curve */
    b[M_HDL] = p->female ? rng_normal(r, 62, 11) : rng_normal(r, 49, 9);
    b[M_TG] = rng_normal(r, 115, 30);
    b[M_NTPROBNP] = rng_normal(r, 60, 25);
    b[M_CRP] = rng_normal(r, 1.8, 0.8);

    /* chronic conditions, with onset somewhere after the minimum age */
    for (int c = 0; c < C_CHRONIC_COUNT; c++) {
        const synth_chronic *cd = &synth_chronics[c];
        if (c == C_OBESITY || age_end < cd->min_age)
            continue;
        double pr = cd->base + cd->slope * (age_end - cd->min_age);
        if (pr > cd->cap)
            pr = cd->cap;
        if ((c == C_DM2 || c == C_HLD || c == C_HTN) && p->bmi0 >= 30)
            pr *= 1.8;
        if (!rng_chance(r, pr))
            continue;
        p->has |= 1u << c;
        double a = cd->min_age + rng_unit(r) * (age_end - cd->min_age);
        p->onset[c] = p->birth + (int64_t)(a * (double)YEAR);
        if (p->onset[c] > p->end - 60 * DAY)
            p->onset[c] = p->end - 60 * DAY;
        p->drugs[c] = 1; /* the first-line drug */
        for (int k = 1; k < 3; k++)
            if (cd->drugs[k] && rng_chance(r, c == C_HF ? 0.9 : 0.45))
                p->drugs[c] |= (uint8_t)(1u << k);
    }
    if (age_end >= 18 && p->bmi0 >= 30) {
        p->has |= 1u << C_OBESITY;
        p->onset[C_OBESITY] = p->birth + (int64_t)((18 + rng_unit(r) * (age_end - 18)) * YEAR);
    }
    /* per-condition baselines */
    if (p->has >> C_DM2 & 1)
        b[M_HBA1C] = rng_range(r, 7.2, 9.5);
    if (p->has >> C_CKD & 1)
        b[M_CREA] = rng_range(r, 140, 260);
    if (p->has >> C_HF & 1)
        b[M_NTPROBNP] = rng_range(r, 600, 3500);
    if (p->has >> C_HLD & 1)
        b[M_CHOL] += 55;
}

/* ---- measured values ---------------------------------------------------------------- */

enum { F_FEVER = 1, F_PNEUMONIA = 2, F_RESP = 4, F_MI = 8, F_HF = 16 };

static double clampm(int m, double v)
{
    const synth_measure *d = &synth_measures[m];
    return v < d->min ? d->min : v > d->max ? d->max : v;
}

static int treated(const patient *p, int c, int64_t t)
{
    return has_at(p, c, t) && t > p->onset[c] + 45 * DAY && synth_chronics[c].drugs[0];
}

static double height_at(const patient *p, int64_t t)
{
    double age = age_at(p, t);
    double h = p->adult_height * growth(age);
    if (age > 60)
        h -= (age - 60) * 0.12;
    return h;
}

static double bmi_at(const patient *p, int64_t t)
{
    double age = age_at(p, t);
    if (age < 18)
        return child_bmi(age) * p->bmi0 / 25.5;
    double years = (double)(t - (SYNTH_END_UNIX - SYNTH_YEARS * YEAR)) / (double)YEAR;
    double bmi = p->bmi0 + p->bmi_drift * years;
    if (has_at(p, C_HF, t))
        bmi += 0.8;
    return bmi < 15 ? 15 : bmi;
}

static double value_at(synth *g, int m, int64_t t, unsigned f)
{
    patient *p = &g->p;
    rng *r = &g->r;
    const double *b = p->base;
    double age = age_at(p, t), v = 0;
    switch (m) {
    case M_HR:
        v = age < 12 ? 130 - 4.5 * age : b[M_HR];
        if (treated(p, C_HF, t) || treated(p, C_AF, t))
            v -= 6;
        v += rng_normal(r, 0, has_at(p, C_AF, t) ? 12 : 5);
        if (f & (F_FEVER | F_PNEUMONIA))
            v += 14;
        if (f & (F_RESP | F_MI | F_HF))
            v += 16;
        break;
    case M_RR:
        v = age < 12 ? 32 - 1.4 * age : 14;
        v += rng_normal(r, 0, 1.5);
        if (has_at(p, C_COPD, t))
            v += 3;
        if (f & (F_FEVER | F_PNEUMONIA))
            v += 4;
        if (f & (F_RESP | F_HF))
            v += 8;
        break;
    case M_TEMP:
        v = (f & F_FEVER) ? rng_range(r, 38.0, 39.6) : b[M_TEMP] + rng_normal(r, 0, 0.15);
        break;
    case M_SPO2:
        v = 98 + rng_normal(r, 0, 0.8);
        if (has_at(p, C_COPD, t))
            v -= 4;
        if (f & (F_RESP | F_PNEUMONIA | F_HF))
            v -= 6;
        if (v > 100)
            v = 100;
        break;
    case M_SYS:
        v = age < 18 ? 95 + age : 100 + 0.45 * age;
        v += b[M_SYS];
        if (has_at(p, C_HTN, t))
            v += treated(p, C_HTN, t) ? 12 : 28;
        if (f & F_MI)
            v += 15;
        v += rng_normal(r, 0, 6);
        break;
    case M_GLUC:
        v = has_at(p, C_DM2, t) ? 1.59 * value_at(g, M_HBA1C, t, 0) - 2.59 : b[M_GLUC];
        v += rng_normal(r, 0, has_at(p, C_DM2, t) ? 1.0 : 0.35);
        break;
    case M_HBA1C:
        v = b[M_HBA1C];
        if (has_at(p, C_DM2, t)) {
            double years = (double)(t - p->onset[C_DM2]) / (double)YEAR;
            v += 0.08 * years - (treated(p, C_DM2, t) ? 1.1 : 0);
            if (v < 6.2)
                v = 6.2;
        }
        v += rng_normal(r, 0, 0.2);
        break;
    case M_CREA:
        v = b[M_CREA];
        if (has_at(p, C_CKD, t))
            v += 6 * (double)(t - p->onset[C_CKD]) / (double)YEAR;
        if (age > 70)
            v += (age - 70) * 0.6;
        if (f & F_HF)
            v *= 1.25;
        v += rng_normal(r, 0, 5);
        break;
    case M_NA:
        v = b[M_NA] + rng_normal(r, 0, 1.5) - (treated(p, C_HF, t) ? 2 : 0);
        break;
    case M_K:
        v = b[M_K] + rng_normal(r, 0, 0.2) + (has_at(p, C_CKD, t) ? 0.4 : 0);
        break;
    case M_HB:
        v = b[M_HB] + rng_normal(r, 0, 0.35) - (has_at(p, C_CKD, t) ? 1.4 : 0);
        break;
    case M_WBC:
        v = b[M_WBC] + rng_normal(r, 0, 0.8);
        if (f & (F_FEVER | F_PNEUMONIA))
            v += rng_range(r, 4, 9);
        break;
    case M_PLT:
        v = b[M_PLT] + rng_normal(r, 0, 20);
        break;
    case M_CHOL:
        v = 160 + (age < 60 ? age : 60) * 0.9 + b[M_CHOL];
        if (treated(p, C_HLD, t) || treated(p, C_CHD, t))
            v *= 0.72;
        v += rng_normal(r, 0, 10);
        break;
    case M_HDL:
        v = b[M_HDL] + rng_normal(r, 0, 4);
        break;
    case M_TG:
        v = b[M_TG] + (has_at(p, C_DM2, t) ? 60 : 0) + rng_normal(r, 0, 20);
        break;
    case M_TROP:
        v = (f & F_MI) ? rng_range(r, 0.3, 4.5) : 0.006 + rng_normal(r, 0, 0.002);
        break;
    case M_NTPROBNP:
        v = b[M_NTPROBNP] + (age > 50 ? (age - 50) * 3 : 0);
        if (f & F_HF)
            v *= 2.5;
        v *= 1 + rng_normal(r, 0, 0.12);
        break;
    case M_CRP:
        v = b[M_CRP] + rng_normal(r, 0, 0.5);
        if (f & F_PNEUMONIA)
            v = rng_range(r, 80, 240);
        else if (f & F_FEVER)
            v = rng_range(r, 15, 90);
        if (v < 0.3)
            v = 0.3;
        break;
    default:
        break;
    }
    return clampm(m, v);
}

/* ---- writing clinical resources -------------------------------------------------------- */

static void k_subject(synth *g, const char *key)
{
    k_ref(&g->w, key, "Patient", g->p.id);
}

static void k_encounter(synth *g)
{
    k_ref(&g->w, "encounter", "Encounter", g->enc_id);
}

static void obs_head(synth *g, const char *loinc, const char *display, int lab, int64_t t,
                     char *id_out)
{
    jw *w = res_begin(g, SYNTH_OBSERVATION, id_out);
    k_str(w, "status", "final");
    if (lab)
        k_cc1(w, "category", "http://terminology.hl7.org/CodeSystem/observation-category",
              "laboratory", "Laboratory");
    else
        k_cc1(w, "category", "http://terminology.hl7.org/CodeSystem/observation-category",
              "vital-signs", "Vital Signs");
    k_cc(w, "code", SYNTH_LOINC, loinc, display);
    k_subject(g, "subject");
    k_encounter(g);
    k_time(w, "effectiveDateTime", t);
}

static void emit_obs(synth *g, int m, double v, int64_t t, int64_t issued, char *id_out)
{
    const synth_measure *d = &synth_measures[m];
    jw *w;
    if (m == M_SPO2) {
        /* the vital-signs profile wants 2708-6 next to the pulse-oximetry code */
        w = res_begin(g, SYNTH_OBSERVATION, id_out);
        k_str(w, "status", "final");
        k_cc1(w, "category", "http://terminology.hl7.org/CodeSystem/observation-category",
              "vital-signs", "Vital Signs");
        jw_key(w, "code");
        jw_obj(w);
        jw_key(w, "coding");
        jw_arr(w);
        w_coding(w, SYNTH_LOINC, "2708-6", "Oxygen saturation in Arterial blood");
        w_coding(w, SYNTH_LOINC, d->loinc, d->display);
        jw_end(w);
        k_str(w, "text", "Oxygen saturation");
        jw_end(w);
        k_subject(g, "subject");
        k_encounter(g);
        k_time(w, "effectiveDateTime", t);
    } else {
        obs_head(g, d->loinc, d->display, d->lab, t, id_out);
        w = &g->w;
    }
    if (issued)
        k_time(w, "issued", issued);
    k_qty(w, "valueQuantity", v, d);
    const synth_range *rr = &synth_ref_ranges[m];
    if (d->lab && (rr->lo != 0 || rr->hi != 0)) {
        /* interpretation against the range, judged on the value as written */
        char txt[40];
        fmt_fixed(v, d->decimals, txt);
        double shown = strtod(txt, NULL);
        int hi = rr->hi >= 0 && shown > rr->hi, lo = rr->lo >= 0 && shown < rr->lo;
        k_cc1(w, "interpretation",
              "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
              hi   ? "H"
              : lo ? "L"
                   : "N",
              hi   ? "High"
              : lo ? "Low"
                   : "Normal");
        jw_key(w, "referenceRange");
        jw_arr(w);
        jw_obj(w);
        if (rr->lo >= 0)
            k_qty(w, "low", rr->lo, d);
        if (rr->hi >= 0)
            k_qty(w, "high", rr->hi, d);
        jw_end(w);
        jw_end(w);
    }
    res_end(g);
}

static void emit_bp(synth *g, int64_t t, unsigned f)
{
    double sys = value_at(g, M_SYS, t, f);
    double dia = clampm(M_DIA, sys * 0.58 + 8 + rng_normal(&g->r, 0, 4));
    obs_head(g, "85354-9", "Blood pressure panel with all children optional", 0, t, NULL);
    jw *w = &g->w;
    jw_key(w, "component");
    jw_arr(w);
    for (int k = 0; k < 2; k++) {
        const synth_measure *d = &synth_measures[k ? M_DIA : M_SYS];
        jw_obj(w);
        k_cc(w, "code", SYNTH_LOINC, d->loinc, d->display);
        k_qty(w, "valueQuantity", k ? dia : sys, d);
        jw_end(w);
    }
    jw_end(w);
    res_end(g);
}

enum {
    VS_HR = 1,
    VS_RR = 2,
    VS_TEMP = 4,
    VS_SPO2 = 8,
    VS_BP = 16,
    VS_WEIGHT = 32,
    VS_HEIGHT = 64,
    VS_BMI = 128,
    VS_ALL = 255,
    VS_SHORT = VS_HR | VS_BP | VS_WEIGHT,
    VS_ACUTE = VS_HR | VS_RR | VS_TEMP | VS_SPO2 | VS_BP,
};

static void vitals(synth *g, int64_t t, unsigned set, unsigned f)
{
    const patient *p = &g->p;
    double age = age_at(p, t);
    if (age < 2)
        set &= VS_HR | VS_TEMP | VS_WEIGHT | VS_HEIGHT;
    else if (age < 6)
        set &= ~(unsigned)VS_BP;
    double h = height_at(p, t) + rng_normal(&g->r, 0, 0.3);
    double bmi = bmi_at(p, t) + rng_normal(&g->r, 0, 0.25);
    double kg = bmi * h * h / 10000.0;
    /* round first so the BMI agrees with the weight and height as written */
    kg = floor(kg * 10 + 0.5) / 10;
    h = floor(h * 10 + 0.5) / 10;
    t += 60 * (1 + rng_below(&g->r, 5));
    if (set & VS_HEIGHT)
        emit_obs(g, M_HEIGHT, clampm(M_HEIGHT, h), t, 0, NULL);
    if (set & VS_WEIGHT)
        emit_obs(g, M_WEIGHT, clampm(M_WEIGHT, kg), t, 0, NULL);
    if (set & VS_BMI)
        emit_obs(g, M_BMI, clampm(M_BMI, kg / (h * h / 10000.0)), t, 0, NULL);
    if (set & VS_BP)
        emit_bp(g, t, f);
    if (set & VS_HR)
        emit_obs(g, M_HR, value_at(g, M_HR, t, f), t, 0, NULL);
    if (set & VS_RR)
        emit_obs(g, M_RR, value_at(g, M_RR, t, f), t, 0, NULL);
    if (set & VS_TEMP)
        emit_obs(g, M_TEMP, value_at(g, M_TEMP, t, f), t, 0, NULL);
    if (set & VS_SPO2)
        emit_obs(g, M_SPO2, value_at(g, M_SPO2, t, f), t, 0, NULL);
}

static double egfr(const patient *p, double crea, int64_t t)
{
    /* MDRD: 175 x (Scr/88.4)^-1.154 x age^-0.203 (x 0.742 for women) */
    double age = age_at(p, t);
    if (age < 18)
        age = 18;
    double v = 175.0 * pow(crea / 88.4, -1.154) * pow(age, -0.203);
    if (p->female)
        v *= 0.742;
    return clampm(M_EGFR, v);
}

static void lab_panel(synth *g, int panel, int64_t t, unsigned f)
{
    const synth_panel *pn = &synth_panels[panel];
    char ids[6][37];
    double v[6];
    int64_t drawn = t + 300 * (1 + rng_below(&g->r, 2)); /* inside the visit */
    int64_t issued = drawn + 3600 + rng_below(&g->r, 36) * 300;
    /* values first: eGFR derives from the creatinine, LDL from the other lipids */
    for (int i = 0; i < pn->n; i++) {
        int m = pn->measures[i];
        v[i] = (m == M_EGFR || m == M_LDL) ? 0 : value_at(g, m, drawn, f);
    }
    for (int i = 0; i < pn->n; i++) {
        int m = pn->measures[i];
        if (m == M_EGFR)
            v[i] = egfr(&g->p, v[i - 1], drawn);
        else if (m == M_LDL)
            v[i] = clampm(M_LDL, v[0] - v[1] - v[3] / 5);
        emit_obs(g, m, v[i], drawn, issued, ids[i]);
    }
    jw *w = res_begin(g, SYNTH_DIAGNOSTICREPORT, NULL);
    k_str(w, "status", "final");
    k_cc1(w, "category", "http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory");
    k_cc(w, "code", SYNTH_LOINC, pn->loinc, pn->display);
    k_subject(g, "subject");
    k_encounter(g);
    k_time(w, "effectiveDateTime", drawn);
    k_time(w, "issued", issued);
    jw_key(w, "performer");
    jw_arr(w);
    w_ref(w, "Organization", g->org_id[2 * g->p.city]);
    jw_end(w);
    jw_key(w, "result");
    jw_arr(w);
    for (int i = 0; i < pn->n; i++)
        w_ref(w, "Observation", ids[i]);
    jw_end(w);
    res_end(g);
}

static void emit_condition(synth *g, const char *code, const char *display, int chronic,
                           int64_t onset, int64_t abate, int64_t recorded, char *id_out)
{
    jw *w = res_begin(g, SYNTH_CONDITION, id_out);
    int resolved = abate && abate < g->p.end;
    k_cc(w, "clinicalStatus", "http://terminology.hl7.org/CodeSystem/condition-clinical",
         resolved ? "resolved" : "active", resolved ? "Resolved" : "Active");
    k_cc(w, "verificationStatus", "http://terminology.hl7.org/CodeSystem/condition-ver-status",
         "confirmed", "Confirmed");
    if (chronic)
        k_cc1(w, "category", "http://terminology.hl7.org/CodeSystem/condition-category",
              "problem-list-item", "Problem List Item");
    else
        k_cc1(w, "category", "http://terminology.hl7.org/CodeSystem/condition-category",
              "encounter-diagnosis", "Encounter Diagnosis");
    k_cc(w, "code", SYNTH_SNOMED, code, display);
    k_subject(g, "subject");
    k_encounter(g);
    k_time(w, "onsetDateTime", onset);
    if (resolved)
        k_time(w, "abatementDateTime", abate);
    k_time(w, "recordedDate", recorded);
    res_end(g);
}

static void emit_medreq(synth *g, int drug, int active, int64_t t, const char *reason_code,
                        const char *reason_display)
{
    const synth_drug *d = &synth_drugs[drug];
    jw *w = res_begin(g, SYNTH_MEDICATIONREQUEST, NULL);
    /* the last prescription stays active, unless the patient has died */
    k_str(w, "status", active ? (g->p.deceased ? "stopped" : "active") : "completed");
    k_str(w, "intent", "order");
    jw_key(w, "medicationCodeableConcept");
    jw_obj(w);
    jw_key(w, "coding");
    jw_arr(w);
    w_coding(w, SYNTH_ATC, d->atc, d->atc_display);
    if (d->rxnorm)
        w_coding(w, SYNTH_RXNORM, d->rxnorm, d->rxnorm_display);
    jw_end(w);
    k_str(w, "text", d->rxnorm_display ? d->rxnorm_display : d->atc_display);
    jw_end(w);
    k_subject(g, "subject");
    k_encounter(g);
    k_time(w, "authoredOn", t);
    k_ref(w, "requester", "Practitioner", g->enc_prac);
    if (reason_code)
        k_cc1(w, "reasonCode", SYNTH_SNOMED, reason_code, reason_display);
    jw_key(w, "dosageInstruction");
    jw_arr(w);
    jw_obj(w);
    jw_key(w, "sequence");
    jw_int(w, 1);
    k_str(w, "text", d->dosage);
    if (d->per_day) {
        jw_key(w, "timing");
        jw_obj(w);
        jw_key(w, "repeat");
        jw_obj(w);
        jw_key(w, "frequency");
        jw_int(w, d->per_day);
        jw_key(w, "period");
        jw_num(w, "1", 1);
        k_str(w, "periodUnit", "d");
        jw_end(w);
        jw_end(w);
    } else {
        jw_key(w, "asNeededBoolean");
        jw_bool(w, 1);
    }
    jw_end(w);
    jw_end(w);
    res_end(g);
}

static void emit_procedure(synth *g, int pr, int64_t t, int64_t minutes, const char *reason_code,
                           const char *reason_display)
{
    const synth_code *c = &synth_procedures[pr];
    jw *w = res_begin(g, SYNTH_PROCEDURE, NULL);
    k_str(w, "status", "completed");
    k_cc(w, "code", SYNTH_SNOMED, c->code, c->display);
    k_subject(g, "subject");
    k_encounter(g);
    k_period(w, "performedPeriod", t, t + minutes * 60);
    if (reason_code)
        k_cc1(w, "reasonCode", SYNTH_SNOMED, reason_code, reason_display);
    res_end(g);
}

static void emit_immunization(synth *g, int v, int64_t t)
{
    const synth_code *c = &synth_vaccines[v];
    jw *w = res_begin(g, SYNTH_IMMUNIZATION, NULL);
    k_str(w, "status", "completed");
    k_cc(w, "vaccineCode", SYNTH_CVX, c->code, c->display);
    k_subject(g, "patient");
    k_encounter(g);
    k_time(w, "occurrenceDateTime", t);
    jw_key(w, "primarySource");
    jw_bool(w, 1);
    res_end(g);
}

static void emit_allergy(synth *g, int a, int64_t t)
{
    const synth_allergy *al = &synth_allergies[a];
    const synth_code *re = &synth_reactions[al->reaction];
    int severe = al->reaction == 1;
    jw *w = res_begin(g, SYNTH_ALLERGYINTOLERANCE, NULL);
    k_cc(w, "clinicalStatus", "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
         "active", "Active");
    k_cc(w, "verificationStatus",
         "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed",
         "Confirmed");
    k_str(w, "type", "allergy");
    jw_key(w, "category");
    jw_arr(w);
    jw_str(w, al->category);
    jw_end(w);
    k_str(w, "criticality", severe ? "high" : "low");
    k_cc(w, "code", SYNTH_SNOMED, al->snomed, al->display);
    k_subject(g, "patient");
    k_encounter(g);
    k_time(w, "recordedDate", t);
    jw_key(w, "reaction");
    jw_arr(w);
    jw_obj(w);
    k_cc1(w, "manifestation", SYNTH_SNOMED, re->code, re->display);
    k_str(w, "severity", severe ? "severe" : rng_chance(&g->r, 0.5) ? "mild" : "moderate");
    jw_end(w);
    jw_end(w);
    res_end(g);
}

static void emit_encounter(synth *g, const plan_enc *e, const char *reason_code,
                           const char *reason_display)
{
    patient *p = &g->p;
    int hospital = e->kind == E_EMER || e->kind == E_IMP;
    g->enc_org = g->org_id[2 * p->city + (hospital ? 0 : 1)];
    g->enc_prac = g->prac_id[hospital ? p->doc : p->gp];
    const synth_code *cls = &synth_enc_class[e->kind];
    const synth_code *ty = &synth_enc_types[e->etype];
    jw *w = res_begin(g, SYNTH_ENCOUNTER, g->enc_id);
    k_str(w, "status", "finished");
    jw_key(w, "class");
    w_coding(w, "http://terminology.hl7.org/CodeSystem/v3-ActCode", cls->code, cls->display);
    k_cc1(w, "type", SYNTH_SNOMED, ty->code, ty->display);
    k_subject(g, "subject");
    jw_key(w, "participant");
    jw_arr(w);
    jw_obj(w);
    k_cc1(w, "type", "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "PPRF",
          "primary performer");
    k_period(w, "period", e->start, e->end);
    k_ref(w, "individual", "Practitioner", g->enc_prac);
    jw_end(w);
    jw_end(w);
    k_period(w, "period", e->start, e->end);
    if (reason_code)
        k_cc1(w, "reasonCode", SYNTH_SNOMED, reason_code, reason_display);
    if (e->kind == E_IMP) {
        jw_key(w, "hospitalization");
        jw_obj(w);
        if (e->fatal)
            k_cc(w, "dischargeDisposition",
                 "http://terminology.hl7.org/CodeSystem/discharge-disposition", "exp", "Expired");
        else
            k_cc(w, "dischargeDisposition",
                 "http://terminology.hl7.org/CodeSystem/discharge-disposition", "home", "Home");
        jw_end(w);
    }
    k_ref(w, "serviceProvider", "Organization", g->enc_org);
    res_end(g);
}

/* prescriptions of a chronic condition at visit i */
static void prescribe(synth *g, int c, int i, int64_t t)
{
    const synth_chronic *cd = &synth_chronics[c];
    for (int k = 0; k < 3; k++)
        if (cd->drugs[k] && (g->p.drugs[c] >> k & 1))
            emit_medreq(g, cd->drugs[k] - 1, g->p.last_rx[c] == i, t, cd->snomed, cd->display);
}

/* condition-specific diagnostics at a diagnosis or follow-up visit */
static void monitor(synth *g, int c, int64_t t, int diagnosis)
{
    rng *r = &g->r;
    switch (c) {
    case C_DM2:
        lab_panel(g, P_HBA1C, t, 0);
        if (diagnosis || rng_chance(r, 0.4))
            lab_panel(g, P_BMP, t, 0);
        break;
    case C_HTN:
    case C_CKD:
        if (diagnosis || rng_chance(r, c == C_CKD ? 0.8 : 0.3))
            lab_panel(g, P_BMP, t, 0);
        break;
    case C_HLD:
        lab_panel(g, P_LIPID, t, 0);
        break;
    case C_HF:
        if (diagnosis || rng_chance(r, 0.5))
            lab_panel(g, P_NTPROBNP, t, 0);
        if (diagnosis || rng_chance(r, 0.5))
            lab_panel(g, P_BMP, t, 0);
        if (diagnosis)
            emit_procedure(g, PR_ECG, t + 600, 10, synth_chronics[c].snomed,
                           synth_chronics[c].display);
        break;
    case C_AF:
    case C_CHD:
        if (diagnosis || rng_chance(r, 0.3))
            emit_procedure(g, PR_ECG, t + 600, 10, synth_chronics[c].snomed,
                           synth_chronics[c].display);
        break;
    case C_ASTHMA:
    case C_COPD:
        if (diagnosis || rng_chance(r, 0.2))
            emit_procedure(g, PR_SPIRO, t + 600, 20, synth_chronics[c].snomed,
                           synth_chronics[c].display);
        break;
    default:
        break;
    }
}

static void visit(synth *g, int i, int first)
{
    patient *p = &g->p;
    rng *r = &g->r;
    const plan_enc *e = &p->enc[i];
    int64_t t = e->start;
    double age = age_at(p, t);
    const char *rc = NULL, *rd = NULL;
    unsigned f = 0;

    if (e->purpose == PU_DIAG || e->purpose == PU_FOLLOW || e->purpose == PU_EXACERBATION) {
        rc = synth_chronics[e->arg].snomed;
        rd = synth_chronics[e->arg].display;
    } else if (e->purpose == PU_ACUTE || (e->purpose == PU_ADMIT && e->arg < 100)) {
        rc = synth_acutes[e->arg].snomed;
        rd = synth_acutes[e->arg].display;
    } else if (e->purpose == PU_ADMIT) {
        rc = synth_chronics[e->arg - 100].snomed;
        rd = synth_chronics[e->arg - 100].display;
    }
    g->e = e;
    emit_encounter(g, e, rc, rd);

    /* first visit of the window: record what the patient already has */
    if (first) {
        for (int c = 0; c < C_CHRONIC_COUNT; c++) {
            if (!has_at(p, c, t) || p->recorded[c] || (e->purpose == PU_DIAG && e->arg == c))
                continue;
            const synth_chronic *cd = &synth_chronics[c];
            emit_condition(g, cd->snomed, cd->display, 1, p->onset[c], 0, t, p->cond_id[c]);
            p->recorded[c] = 1;
            prescribe(g, c, i, t + 900);
        }
        uint64_t roll = rng_next(r);
        int nall = (roll & 0xff) < 50 ? 1 + ((roll >> 8 & 0xff) < 40) : 0;
        for (int k = 0; k < nall; k++)
            emit_allergy(g, (int)rng_below(r, (uint32_t)synth_n_allergies), t + 300);
    }

    switch (e->purpose) {
    case PU_CHECKUP:
        if (has_at(p, C_OBESITY, t) && !p->recorded[C_OBESITY]) {
            const synth_chronic *cd = &synth_chronics[C_OBESITY];
            emit_condition(g, cd->snomed, cd->display, 1, p->onset[C_OBESITY], 0, t + 600,
                           p->cond_id[C_OBESITY]);
            p->recorded[C_OBESITY] = 1;
        }
        vitals(g, t, age < 18 ? VS_HR | VS_WEIGHT | VS_HEIGHT | VS_BMI | VS_TEMP | VS_BP : VS_ALL,
               0);
        if (age >= 40 && rng_chance(r, 0.3))
            lab_panel(g, P_LIPID, t, 0);
        if (age >= 40 && rng_chance(r, 0.3))
            lab_panel(g, P_BMP, t, 0);
        if (age >= 18 && rng_chance(r, 0.1))
            lab_panel(g, P_CBC, t, 0);
        if (age >= 12 && rng_chance(r, 0.15))
            emit_procedure(g, PR_DEPSCREEN, t + 1200, 10, NULL, NULL);
        break;
    case PU_DIAG: {
        const synth_chronic *cd = &synth_chronics[e->arg];
        vitals(g, t, VS_SHORT, 0);
        monitor(g, e->arg, t, 1);
        emit_condition(g, cd->snomed, cd->display, 1, p->onset[e->arg], 0, t + 600,
                       p->cond_id[e->arg]);
        p->recorded[e->arg] = 1;
        prescribe(g, e->arg, i, t + 900);
        break;
    }
    case PU_FOLLOW:
        vitals(g, t, e->kind == E_VR ? VS_BP | VS_WEIGHT : VS_SHORT, 0);
        if (e->kind != E_VR)
            monitor(g, e->arg, t, 0);
        prescribe(g, e->arg, i, t + 600);
        if (e->kind != E_VR && rng_chance(r, 0.2))
            emit_procedure(g, PR_MEDREC, t + 300, 10, NULL, NULL);
        break;
    case PU_ACUTE: {
        const synth_acute *a = &synth_acutes[e->arg];
        if (a->fever)
            f |= F_FEVER;
        if (e->arg == A_PNEUMONIA)
            f |= F_PNEUMONIA;
        if (e->arg == A_MI)
            f |= F_MI;
        if (e->kind == E_EMER) {
            vitals(g, t, VS_ACUTE, f);
            if (e->arg == A_PNEUMONIA) {
                lab_panel(g, P_CBC, t, f);
                lab_panel(g, P_CRP, t, f);
                emit_procedure(g, PR_CXR, t + 1800, 15, a->snomed, a->display);
            } else if (e->arg == A_CHESTPAIN || e->arg == A_MI) {
                emit_procedure(g, PR_ECG, t + 600, 10, a->snomed, a->display);
                lab_panel(g, P_TROP, t, f);
                lab_panel(g, P_CBC, t, f);
                lab_panel(g, P_BMP, t, f);
            }
        } else {
            vitals(g, t, e->kind == E_VR ? 0 : VS_TEMP | VS_HR | (age >= 18 ? VS_BP : 0), f);
        }
        int64_t abate = t + (a->days + rng_below(r, a->days / 2 + 1)) * DAY;
        if (e->arg == A_MI)
            abate = 0; /* stays on the problem list */
        emit_condition(g, a->snomed, a->display, e->arg == A_MI, t, abate, t + 900, NULL);
        if (a->drug)
            emit_medreq(g, a->drug - 1, t + 14 * DAY >= p->end, t + 1200, a->snomed, a->display);
        break;
    }
    case PU_EXACERBATION:
        f = F_RESP;
        vitals(g, t, VS_ACUTE, f);
        lab_panel(g, P_CBC, t, f);
        if (e->arg == C_COPD)
            emit_procedure(g, PR_CXR, t + 1800, 15, rc, rd);
        emit_medreq(g, D_SALBUTAMOL, t + 30 * DAY >= p->end, t + 3600, rc, rd);
        break;
    case PU_ADMIT: {
        int hf = e->arg == 100 + C_HF;
        f = hf ? F_HF : e->arg == A_MI ? F_MI : e->arg == A_PNEUMONIA ? F_PNEUMONIA : 0;
        if (!e->arg2) /* direct admission: the admitting measurements */
            vitals(g, t, VS_ACUTE | VS_WEIGHT, f);
        if (e->fatal && e->arg < 100)
            emit_condition(g, synth_acutes[e->arg].snomed, synth_acutes[e->arg].display, 0, t, 0,
                           t + 900, NULL);
        lab_panel(g, P_BMP, t, f);
        lab_panel(g, P_CBC, t, f);
        if (hf) {
            lab_panel(g, P_NTPROBNP, t, f);
            emit_procedure(g, PR_CXR, t + 3600, 15, rc, rd);
        }
        if (e->arg == A_MI)
            emit_procedure(g, PR_PCI, t + 2 * 3600, 90, rc, rd);
        /* a daily round, then the discharge check */
        unsigned ff = f;
        for (int64_t d = t + DAY; d < e->end - 3600; d += DAY) {
            vitals(g, d, VS_HR | VS_BP | VS_TEMP | VS_SPO2 | VS_RR, ff);
            ff = 0;
        }
        if (e->fatal)
            break;
        lab_panel(g, P_BMP, e->end - 3 * 3600, 0);
        if (hf)
            emit_medreq(g, D_FUROSEMIDE, 1, e->end - 3600, rc, rd);
        if (e->arg == A_MI) {
            emit_medreq(g, D_ASA, 1, e->end - 3600, rc, rd);
            emit_medreq(g, D_ATORVASTATIN, 1, e->end - 3600, rc, rd);
        }
        break;
    }
    case PU_VACC:
        if (age < 2)
            vitals(g, t, VS_WEIGHT | VS_HEIGHT, 0);
        emit_immunization(g, e->arg, t + 300);
        if (e->arg2)
            emit_immunization(g, e->arg2 - 1, t + 360);
        break;
    default:
        break;
    }
}

static void emit_patient(synth *g)
{
    patient *p = &g->p;
    rng *r = &g->r;
    const synth_city *city = &synth_cities[p->city];
    jw *w = res_begin(g, SYNTH_PATIENT, NULL);
    double age = age_at(p, SYNTH_END_UNIX);
    char mrn[12];
    make_mrn(g->seed, g->p.index, mrn);

    jw_key(w, "identifier");
    jw_arr(w);
    jw_obj(w);
    k_str(w, "use", "official");
    k_str(w, "system", SYNTH_BSN);
    k_str(w, "value", p->bsn);
    jw_end(w);
    jw_obj(w);
    k_str(w, "use", "usual");
    jw_key(w, "type");
    jw_obj(w);
    jw_key(w, "coding");
    jw_arr(w);
    w_coding(w, "http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number");
    jw_end(w);
    jw_end(w);
    k_str(w, "system", SYNTH_MRN);
    k_str(w, "value", mrn);
    jw_end(w);
    jw_end(w);
    jw_key(w, "active");
    jw_bool(w, 1);
    const char *given = p->female ? synth_given_female[rng_below(r, (uint32_t)synth_n_given_female)]
                                  : synth_given_male[rng_below(r, (uint32_t)synth_n_given_male)];
    w_name(w, given, &synth_surnames[rng_below(r, (uint32_t)synth_n_surnames)], NULL);
    w_phone(w, r, age >= 12 && rng_chance(r, 0.8) ? "06" : city->area_code,
            age >= 12 ? "mobile" : "home");
    k_str(w, "gender", p->female ? "female" : "male");
    char bd[16];
    fmt_date(p->birth_day, bd);
    k_str(w, "birthDate", bd);
    if (p->deceased)
        k_time(w, "deceasedDateTime", p->end);
    w_address(w, r, city, 1);
    static const char *const ms[][2] = {
        {"S", "Never Married"}, {"M", "Married"}, {"D", "Divorced"}, {"W", "Widowed"}};
    int k = age < 25                      ? 0
            : (int)rng_below(r, 100) < 55 ? 1
            : rng_chance(r, 0.4)          ? 0
            : age > 65                    ? 3
                                          : 2;
    k_cc(w, "maritalStatus", "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", ms[k][0],
         ms[k][1]);
    jw_key(w, "communication");
    jw_arr(w);
    jw_obj(w);
    k_cc(w, "language", "urn:ietf:bcp:47", "nl", "Dutch");
    jw_key(w, "preferred");
    jw_bool(w, 1);
    jw_end(w);
    jw_end(w);
    jw_key(w, "generalPractitioner");
    jw_arr(w);
    w_ref(w, "Practitioner", g->prac_id[p->gp]);
    jw_end(w);
    k_ref(w, "managingOrganization", "Organization", g->org_id[2 * p->city + 1]);
    res_end(g);
}

int synth_patient(synth *g, uint64_t index, synth_sink sink, void *ctx)
{
    g->sink = sink;
    g->ctx = ctx;
    g->err = 0;
    g->idkey = id_key(g->seed, index);
    g->idctr = 0;
    rng_seed(&g->r, g->seed, index);
    make_person(g, index);
    g->p.nenc = 0;
    plan_timeline(g);
    /* the Patient takes id 0 of the stream, which synth_patient_id reproduces */
    g->idctr = 0;
    emit_patient(g);
    for (int i = 0; i < g->p.nenc && !g->err; i++)
        visit(g, i, i == 0);
    return g->err;
}
