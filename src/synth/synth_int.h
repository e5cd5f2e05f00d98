/*
 * synth_int.h -- what the files of src/synth/ share: the code tables
 * (synth_tables.c) and the measure definitions the generator (synth.c) draws
 * values from. Not a public contract; see synth.h for that.
 *
 * Why tables: the generator is a small state machine over a patient's timeline,
 * and every clinical code it emits (SNOMED CT, LOINC, ATC/RxNorm, CVX, UCUM)
 * comes from one of these rows, so a wrong code is fixed in exactly one place.
 * All pointers point into static storage: valid forever.
 */
#ifndef HORTUS_SYNTH_INT_H
#define HORTUS_SYNTH_INT_H

#include <stddef.h>
#include <stdint.h>

#define SYNTH_SNOMED "http://snomed.info/sct"
#define SYNTH_LOINC "http://loinc.org"
#define SYNTH_UCUM "http://unitsofmeasure.org"
#define SYNTH_ATC "http://www.whocc.no/atc"
#define SYNTH_RXNORM "http://www.nlm.nih.gov/research/umls/rxnorm"
#define SYNTH_CVX "http://hl7.org/fhir/sid/cvx"
#define SYNTH_BSN "http://fhir.nl/fhir/NamingSystem/bsn"
#define SYNTH_AGB "http://fhir.nl/fhir/NamingSystem/agb-z"
#define SYNTH_BIG "http://fhir.nl/fhir/NamingSystem/big"
#define SYNTH_MRN "https://hortus.example.org/NamingSystem/mrn"

/* ---- people and places ----------------------------------------------------- */
typedef struct synth_surname {
    const char *prefix; /* Dutch tussenvoegsel ("van der") or NULL */
    const char *name;   /* own name ("Berg") */
} synth_surname;

typedef struct synth_city {
    const char *name;
    uint16_t pc_lo, pc_hi; /* 4-digit postcode range of the city */
    const char *hospital;  /* its main hospital */
    const char *area_code; /* telephone area code, e.g. "020" */
} synth_city;

extern const char *const synth_given_male[];
extern const size_t synth_n_given_male;
extern const char *const synth_given_female[];
extern const size_t synth_n_given_female;
extern const synth_surname synth_surnames[];
extern const size_t synth_n_surnames;
extern const char *const synth_streets[];
extern const size_t synth_n_streets;
extern const synth_city synth_cities[];
extern const size_t synth_n_cities;

/* ---- measures (Observations) ------------------------------------------------ */
enum {
    M_HR,
    M_RR,
    M_TEMP,
    M_SPO2,
    M_WEIGHT,
    M_HEIGHT,
    M_BMI,
    M_SYS,
    M_DIA,
    M_GLUC,
    M_CREA,
    M_EGFR,
    M_NA,
    M_K,
    M_HB,
    M_WBC,
    M_PLT,
    M_CHOL,
    M_HDL,
    M_LDL,
    M_TG,
    M_HBA1C,
    M_TROP,
    M_NTPROBNP,
    M_CRP,
    M_COUNT
};

typedef struct synth_measure {
    const char *loinc, *display; /* LOINC code and long name */
    const char *unit, *ucum;     /* human unit and UCUM code */
    uint8_t decimals;            /* digits after the decimal point */
    uint8_t lab;                 /* 1: category laboratory, 0: vital-signs */
    double min, max;             /* physiological clamp */
} synth_measure;

extern const synth_measure synth_measures[M_COUNT];

/* Adult reference range of a lab measure, in its unit; a bound < 0 is absent
 * (e.g. HDL has only a lower bound). Vital signs have none here. */
typedef struct synth_range {
    double lo, hi;
} synth_range;
extern const synth_range synth_ref_ranges[M_COUNT];

/* Lab panels: a DiagnosticReport code and the measures it reports. */
enum { P_BMP, P_CBC, P_LIPID, P_HBA1C, P_TROP, P_NTPROBNP, P_CRP, P_COUNT };
typedef struct synth_panel {
    const char *loinc, *display;
    uint8_t n;
    uint8_t measures[6];
} synth_panel;
extern const synth_panel synth_panels[P_COUNT];

/* ---- medications ------------------------------------------------------------- */
enum {
    D_LISINOPRIL,
    D_AMLODIPINE,
    D_HCTZ,
    D_METFORMIN,
    D_GLICLAZIDE,
    D_ATORVASTATIN,
    D_SALBUTAMOL,
    D_FLUTICASONE,
    D_TIOTROPIUM,
    D_FUROSEMIDE,
    D_BISOPROLOL,
    D_RIVAROXABAN,
    D_ASA,
    D_PARACETAMOL,
    D_SERTRALINE,
    D_AMOXICILLIN,
    D_IBUPROFEN,
    D_NITROFURANTOIN,
    D_OMEPRAZOLE,
    D_COUNT
};
typedef struct synth_drug {
    const char *atc, *atc_display;
    const char *rxnorm, *rxnorm_display; /* NULL when not coded in RxNorm here */
    const char *dosage;                  /* patient instruction text */
    uint8_t per_day;                     /* timing frequency per day; 0 = as needed */
} synth_drug;
extern const synth_drug synth_drugs[D_COUNT];

/* ---- conditions ---------------------------------------------------------------- */
enum {
    C_HTN,
    C_DM2,
    C_HLD,
    C_ASTHMA,
    C_COPD,
    C_HF,
    C_AF,
    C_CKD,
    C_CHD,
    C_OA,
    C_DEPR,
    C_OBESITY,
    C_CHRONIC_COUNT
};
typedef struct synth_chronic {
    const char *snomed, *display;
    uint8_t min_age;
    float base, slope, cap; /* prevalence at min_age, per year after, maximum */
    float followups;        /* follow-up visits per year */
    uint8_t drugs[3];       /* D_* + 1 (0 = none) */
} synth_chronic;
extern const synth_chronic synth_chronics[C_CHRONIC_COUNT];

enum {
    A_PHARYNGITIS,
    A_BRONCHITIS,
    A_SINUSITIS,
    A_UTI,
    A_PNEUMONIA,
    A_SPRAIN,
    A_OTITIS,
    A_CHESTPAIN,
    A_MI,
    A_ACUTE_COUNT
};
typedef struct synth_acute {
    const char *snomed, *display;
    uint8_t days;  /* typical duration until abatement */
    uint8_t drug;  /* D_* + 1 (0 = none) */
    uint8_t fever; /* raises temperature, WBC, CRP */
} synth_acute;
extern const synth_acute synth_acutes[A_ACUTE_COUNT];

/* ---- procedures, allergies, vaccines ------------------------------------------- */
enum { PR_MEDREC, PR_DEPSCREEN, PR_ECG, PR_CXR, PR_SPIRO, PR_PCI, PR_COUNT };
typedef struct synth_code {
    const char *code, *display;
} synth_code;
extern const synth_code synth_procedures[PR_COUNT];

typedef struct synth_allergy {
    const char *snomed, *display;
    const char *category; /* food | medication | environment */
    uint8_t reaction;     /* index into synth_reactions */
} synth_allergy;
extern const synth_allergy synth_allergies[];
extern const size_t synth_n_allergies;
extern const synth_code synth_reactions[];

enum { V_FLU, V_COVID, V_HEXA, V_PCV, V_MMR, V_DTAPIPV, V_HPV, V_TD, V_COUNT };
extern const synth_code synth_vaccines[V_COUNT];

/* Encounter kinds and their v3-ActCode class. */
enum { E_AMB, E_IMP, E_EMER, E_VR };
extern const synth_code synth_enc_class[4];

/* Encounter types (SNOMED CT). */
enum {
    ET_CHECKUP,
    ET_PROBLEM,
    ET_FOLLOWUP,
    ET_TELE,
    ET_EMERGENCY,
    ET_ADMISSION,
    ET_VACCINATION,
    ET_COUNT
};
extern const synth_code synth_enc_types[ET_COUNT];

#endif
