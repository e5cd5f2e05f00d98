/*
 * synth_tables.c -- the static vocabulary of the synthetic data generator:
 * Dutch given names, surnames (with their tussenvoegsel kept apart, the way
 * nl-core HumanName splits them), streets, cities with their postcode ranges and
 * hospitals, and the clinical codes (SNOMED CT, LOINC + UCUM, ATC/RxNorm, CVX).
 *
 * Value ranges in synth_measures are physiological clamps, not reference ranges:
 * the generator draws per-patient baselines inside the reference range and lets
 * conditions push values out of it; the clamp only stops a random walk from
 * producing impossible numbers.
 */
#include "synth/synth_int.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *const synth_given_male[] = {
    "Jan", "Pieter", "Kees", "Henk", "Johannes", "Willem", "Hendrik", "Cornelis",
    "Gerrit", "Dirk", "Jeroen", "Mark", "Thomas", "Daan", "Sem", "Lucas", "Bram",
    "Ruben", "Stijn", "Tim", "Bas", "Niels", "Sander", "Martijn", "Erik", "Joost",
    "Wouter", "Koen", "Jesse", "Finn", "Noah", "Levi", "Milan", "Luuk", "Thijs",
    "Jasper", "Rik", "Maarten", "Frank", "Peter", "Gert-Jan", "Teun",
};
const size_t synth_n_given_male = COUNT(synth_given_male);

const char *const synth_given_female[] = {
    "Maria", "Johanna", "Anna", "Cornelia", "Elisabeth", "Wilhelmina", "Hendrika",
    "Geertruida", "Anne", "Emma", "Julia", "Sophie", "Lotte", "Sanne", "Lisa",
    "Fleur", "Eva", "Femke", "Iris", "Sara", "Noa", "Tess", "Mila", "Zo\xc3\xab",
    "Lieke", "Anouk", "Marieke", "Ingrid", "Els", "Annemarie", "Petra", "Monique",
    "Linda", "Esther", "Karin", "Marloes", "Inge", "Saskia", "Nicole", "Wendy",
    "Ilse", "Renée",
};
const size_t synth_n_given_female = COUNT(synth_given_female);

const synth_surname synth_surnames[] = {
    {"de", "Jong"}, {0, "Jansen"}, {"de", "Vries"}, {"van den", "Berg"},
    {"van", "Dijk"}, {0, "Bakker"}, {0, "Janssen"}, {0, "Visser"}, {0, "Smit"},
    {0, "Meijer"}, {"de", "Boer"}, {0, "Mulder"}, {"de", "Groot"}, {0, "Bos"},
    {0, "Vos"}, {0, "Peters"}, {0, "Hendriks"}, {"van", "Leeuwen"}, {0, "Dekker"},
    {0, "Brouwer"}, {"de", "Wit"}, {0, "Dijkstra"}, {0, "Smits"}, {"de", "Graaf"},
    {"van der", "Meer"}, {"van der", "Linden"}, {0, "Kok"}, {0, "Jacobs"},
    {"de", "Haan"}, {0, "Vermeulen"}, {"van den", "Heuvel"}, {"van der", "Veen"},
    {"van den", "Broek"}, {"de", "Bruijn"}, {"van der", "Heijden"}, {0, "Schouten"},
    {"van", "Beek"}, {0, "Willems"}, {"van", "Vliet"}, {"van de", "Ven"},
    {0, "Hoekstra"}, {0, "Maas"}, {0, "Verhoeven"}, {0, "Koster"}, {"van", "Dam"},
    {"van der", "Wal"}, {0, "Prins"}, {0, "Blom"}, {0, "Huisman"}, {0, "Peeters"},
    {"de", "Jonge"}, {0, "Kuipers"}, {"van", "Veen"}, {0, "Post"}, {0, "Kuiper"},
    {0, "Veenstra"}, {0, "Kramer"}, {"van den", "Brink"}, {0, "Scholten"},
    {"van", "Wijk"}, {0, "Postma"}, {0, "Martens"}, {0, "Vink"}, {"de", "Ruiter"},
};
const size_t synth_n_surnames = COUNT(synth_surnames);

const char *const synth_streets[] = {
    "Kerkstraat", "Schoolstraat", "Molenstraat", "Dorpsstraat", "Julianastraat",
    "Beatrixstraat", "Wilhelminastraat", "Stationsweg", "Nieuwstraat", "Marktstraat",
    "Eikenlaan", "Lindelaan", "Beukenlaan", "Prinses Irenestraat", "Emmastraat",
    "Oranjestraat", "Parallelweg", "Sportlaan", "Mozartlaan", "Industrieweg",
    "Raadhuisstraat", "Vondelstraat", "Rembrandtlaan", "Van Goghstraat",
    "Populierenlaan", "Kastanjelaan", "Wilgenlaan", "Hoofdstraat", "Kanaalweg",
    "Prins Bernhardstraat", "Tulpstraat", "Rozenstraat", "Zandweg", "Dijkstraat",
    "Havenstraat", "Spoorstraat", "Burgemeester de Withstraat", "Achterweg",
};
const size_t synth_n_streets = COUNT(synth_streets);

const synth_city synth_cities[] = {
    {"Amsterdam", 1011, 1109, "Amsterdam UMC", "020"},
    {"Rotterdam", 3011, 3089, "Erasmus MC", "010"},
    {"Den Haag", 2491, 2599, "HagaZiekenhuis", "070"},
    {"Utrecht", 3511, 3585, "UMC Utrecht", "030"},
    {"Eindhoven", 5611, 5658, "Catharina Ziekenhuis", "040"},
    {"Groningen", 9711, 9747, "UMC Groningen", "050"},
    {"Tilburg", 5011, 5049, "Elisabeth-TweeSteden Ziekenhuis", "013"},
    {"Almere", 1311, 1363, "Flevoziekenhuis", "036"},
    {"Breda", 4811, 4839, "Amphia Ziekenhuis", "076"},
    {"Nijmegen", 6511, 6546, "Radboudumc", "024"},
    {"Enschede", 7511, 7548, "Medisch Spectrum Twente", "053"},
    {"Haarlem", 2011, 2037, "Spaarne Gasthuis", "023"},
    {"Arnhem", 6811, 6846, "Rijnstate", "026"},
    {"Zwolle", 8011, 8045, "Isala", "038"},
    {"Leiden", 2311, 2334, "LUMC", "071"},
    {"Maastricht", 6211, 6229, "Maastricht UMC+", "043"},
    {"Apeldoorn", 7311, 7336, "Gelre ziekenhuizen", "055"},
    {"Amersfoort", 3811, 3829, "Meander Medisch Centrum", "033"},
    {"Delft", 2611, 2629, "Reinier de Graaf", "015"},
    {"'s-Hertogenbosch", 5211, 5237, "Jeroen Bosch Ziekenhuis", "073"},
};
const size_t synth_n_cities = COUNT(synth_cities);

/* LOINC, display, unit, UCUM, decimals, lab, clamp min, clamp max */
const synth_measure synth_measures[M_COUNT] = {
    [M_HR] = {"8867-4", "Heart rate", "/min", "/min", 0, 0, 30, 220},
    [M_RR] = {"9279-1", "Respiratory rate", "/min", "/min", 0, 0, 6, 60},
    [M_TEMP] = {"8310-5", "Body temperature", "Cel", "Cel", 1, 0, 34.5, 41.5},
    [M_SPO2] = {"59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%",
                "%", 0, 0, 70, 100},
    [M_WEIGHT] = {"29463-7", "Body weight", "kg", "kg", 1, 0, 2, 250},
    [M_HEIGHT] = {"8302-2", "Body height", "cm", "cm", 1, 0, 40, 215},
    [M_BMI] = {"39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", "kg/m2", 1, 0, 11, 70},
    [M_SYS] = {"8480-6", "Systolic blood pressure", "mm[Hg]", "mm[Hg]", 0, 0, 70, 240},
    [M_DIA] = {"8462-4", "Diastolic blood pressure", "mm[Hg]", "mm[Hg]", 0, 0, 35, 140},
    [M_GLUC] = {"15074-8", "Glucose [Moles/volume] in Blood", "mmol/L", "mmol/L", 1, 1, 2.5,
                30},
    [M_CREA] = {"14682-9", "Creatinine [Moles/volume] in Serum or Plasma", "\xc2\xb5mol/L",
                "umol/L", 0, 1, 30, 900},
    [M_EGFR] = {"33914-3",
                "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum "
                "or Plasma by Creatinine-based formula (MDRD)",
                "mL/min/1.73m2", "mL/min/{1.73_m2}", 0, 1, 5, 120},
    [M_NA] = {"2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", "mmol/L", 0, 1,
              120, 160},
    [M_K] = {"2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", "mmol/L", 1,
             1, 2.5, 7},
    [M_HB] = {"718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "g/dL", 1, 1, 6, 20},
    [M_WBC] = {"6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL",
               "10*3/uL", 1, 1, 1, 40},
    [M_PLT] = {"777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL",
               "10*3/uL", 0, 1, 50, 800},
    [M_CHOL] = {"2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 0,
                1, 90, 400},
    [M_HDL] = {"2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL",
               "mg/dL", 0, 1, 20, 110},
    [M_LDL] = {"18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay",
               "mg/dL", "mg/dL", 0, 1, 30, 300},
    [M_TG] = {"2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 0,
              1, 30, 800},
    [M_HBA1C] = {"4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "%", 1, 1, 3.5,
                 15},
    [M_TROP] = {"6598-7", "Troponin T.cardiac [Mass/volume] in Serum or Plasma", "ug/L",
                "ug/L", 3, 1, 0.001, 25},
    [M_NTPROBNP] = {"33762-6",
                    "Natriuretic peptide.B prohormone N-Terminal [Mass/volume] in Serum or "
                    "Plasma",
                    "pg/mL", "pg/mL", 0, 1, 5, 35000},
    [M_CRP] = {"1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", "mg/L",
               1, 1, 0.1, 400},
};

/* unset rows (vital signs) are {0, 0} and mean "no range": see has_range() in synth.c */
const synth_range synth_ref_ranges[M_COUNT] = {
    [M_GLUC] = {4.0, 7.8},    [M_CREA] = {50, 110},     [M_EGFR] = {60, -1},
    [M_NA] = {135, 145},      [M_K] = {3.5, 5.0},       [M_HB] = {12.0, 17.0},
    [M_WBC] = {4.0, 10.0},    [M_PLT] = {150, 400},     [M_CHOL] = {-1, 200},
    [M_HDL] = {40, -1},       [M_LDL] = {-1, 130},      [M_TG] = {-1, 150},
    [M_HBA1C] = {4.0, 5.6},   [M_TROP] = {-1, 0.014},   [M_NTPROBNP] = {-1, 125},
    [M_CRP] = {-1, 5},
};

const synth_panel synth_panels[P_COUNT] = {
    [P_BMP] = {"51990-0", "Basic metabolic panel - Blood", 5,
               {M_GLUC, M_CREA, M_EGFR, M_NA, M_K}},
    [P_CBC] = {"58410-2", "CBC panel - Blood by Automated count", 3, {M_HB, M_WBC, M_PLT}},
    [P_LIPID] = {"57698-3", "Lipid panel with direct LDL - Serum or Plasma", 4,
                 {M_CHOL, M_HDL, M_LDL, M_TG}},
    [P_HBA1C] = {"4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", 1, {M_HBA1C}},
    [P_TROP] = {"6598-7", "Troponin T.cardiac [Mass/volume] in Serum or Plasma", 1, {M_TROP}},
    [P_NTPROBNP] = {"33762-6",
                    "Natriuretic peptide.B prohormone N-Terminal [Mass/volume] in Serum or "
                    "Plasma",
                    1, {M_NTPROBNP}},
    [P_CRP] = {"1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", 1, {M_CRP}},
};

const synth_drug synth_drugs[D_COUNT] = {
    [D_LISINOPRIL] = {"C09AA03", "lisinopril", "314076", "lisinopril 10 MG Oral Tablet",
                      "1 tablet once daily", 1},
    [D_AMLODIPINE] = {"C08CA01", "amlodipine", "197361", "amlodipine 5 MG Oral Tablet",
                      "1 tablet once daily", 1},
    [D_HCTZ] = {"C03AA03", "hydrochlorothiazide", "310798",
                "Hydrochlorothiazide 25 MG Oral Tablet", "1 tablet once daily in the morning",
                1},
    [D_METFORMIN] = {"A10BA02", "metformin", "860975",
                     "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
                     "1 tablet twice daily with meals", 2},
    [D_GLICLAZIDE] = {"A10BB09", "gliclazide", 0, 0, "1 tablet once daily with breakfast", 1},
    [D_ATORVASTATIN] = {"C10AA05", "atorvastatin", 0, 0, "1 tablet once daily in the evening",
                        1},
    [D_SALBUTAMOL] = {"R03AC02", "salbutamol", "745679",
                      "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
                      "1-2 puffs when short of breath", 0},
    [D_FLUTICASONE] = {"R03BA05", "fluticasone", "895994",
                       "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
                       "2 puffs twice daily", 2},
    [D_TIOTROPIUM] = {"R03BB04", "tiotropium bromide", 0, 0, "1 inhalation once daily", 1},
    [D_FUROSEMIDE] = {"C03CA01", "furosemide", 0, 0, "1 tablet once daily in the morning", 1},
    [D_BISOPROLOL] = {"C07AB07", "bisoprolol", 0, 0, "1 tablet once daily", 1},
    [D_RIVAROXABAN] = {"B01AF01", "rivaroxaban", 0, 0, "1 tablet once daily with food", 1},
    [D_ASA] = {"B01AC06", "acetylsalicylic acid", 0, 0, "1 tablet once daily", 1},
    [D_PARACETAMOL] = {"N02BE01", "paracetamol", "313782", "Acetaminophen 325 MG Oral Tablet",
                       "1-2 tablets up to 3 times daily when needed", 0},
    [D_SERTRALINE] = {"N06AB06", "sertraline", 0, 0, "1 tablet once daily", 1},
    [D_AMOXICILLIN] = {"J01CA04", "amoxicillin", "308182", "Amoxicillin 250 MG Oral Capsule",
                       "2 capsules three times daily for 7 days", 3},
    [D_IBUPROFEN] = {"M01AE01", "ibuprofen", "310965", "Ibuprofen 200 MG Oral Tablet",
                     "1-2 tablets up to 3 times daily with food when needed", 0},
    [D_NITROFURANTOIN] = {"J01XE01", "nitrofurantoin", 0, 0,
                          "1 capsule twice daily for 5 days", 2},
    [D_OMEPRAZOLE] = {"A02BC01", "omeprazole", 0, 0, "1 capsule once daily before breakfast",
                      1},
};

/* code, display, min age, base, slope, cap, follow-ups/year, drugs (D_* + 1) */
const synth_chronic synth_chronics[C_CHRONIC_COUNT] = {
    [C_HTN] = {"38341003", "Hypertensive disorder, systemic arterial (disorder)", 30, 0.03f,
               0.009f, 0.55f, 1.5f, {D_LISINOPRIL + 1, D_AMLODIPINE + 1, 0}},
    [C_DM2] = {"44054006", "Diabetes mellitus type 2 (disorder)", 35, 0.01f, 0.003f, 0.2f,
               2.5f, {D_METFORMIN + 1, D_GLICLAZIDE + 1, 0}},
    [C_HLD] = {"55822004", "Hyperlipidemia (disorder)", 35, 0.02f, 0.005f, 0.3f, 0.5f,
               {D_ATORVASTATIN + 1, 0, 0}},
    [C_ASTHMA] = {"195967001", "Asthma (disorder)", 4, 0.07f, 0, 0.07f, 1.0f,
                  {D_SALBUTAMOL + 1, D_FLUTICASONE + 1, 0}},
    [C_COPD] = {"13645005", "Chronic obstructive lung disease (disorder)", 45, 0.0f, 0.004f,
                0.14f, 2.0f, {D_TIOTROPIUM + 1, D_SALBUTAMOL + 1, 0}},
    [C_HF] = {"84114007", "Heart failure (disorder)", 55, 0.0f, 0.003f, 0.12f, 3.0f,
              {D_FUROSEMIDE + 1, D_BISOPROLOL + 1, D_LISINOPRIL + 1}},
    [C_AF] = {"49436004", "Atrial fibrillation (disorder)", 55, 0.0f, 0.004f, 0.12f, 1.0f,
              {D_RIVAROXABAN + 1, D_BISOPROLOL + 1, 0}},
    [C_CKD] = {"709044004", "Chronic kidney disease (disorder)", 50, 0.0f, 0.003f, 0.12f, 2.0f,
               {0, 0, 0}},
    [C_CHD] = {"53741008", "Coronary arteriosclerosis (disorder)", 45, 0.0f, 0.004f, 0.15f,
               1.0f, {D_ASA + 1, D_ATORVASTATIN + 1, 0}},
    [C_OA] = {"396275006", "Osteoarthritis (disorder)", 45, 0.0f, 0.006f, 0.3f, 0.5f,
              {D_PARACETAMOL + 1, 0, 0}},
    [C_DEPR] = {"35489007", "Depressive disorder (disorder)", 16, 0.05f, 0, 0.05f, 2.0f,
                {D_SERTRALINE + 1, 0, 0}},
    [C_OBESITY] = {"414916001", "Obesity (disorder)", 18, 0, 0, 0, 0.0f, {0, 0, 0}},
};

const synth_acute synth_acutes[A_ACUTE_COUNT] = {
    [A_PHARYNGITIS] = {"195662009", "Acute viral pharyngitis (disorder)", 7,
                       D_PARACETAMOL + 1, 1},
    [A_BRONCHITIS] = {"10509002", "Acute bronchitis (disorder)", 14, D_PARACETAMOL + 1, 1},
    [A_SINUSITIS] = {"444814009", "Viral sinusitis (disorder)", 10, 0, 0},
    [A_UTI] = {"68566005", "Urinary tract infectious disease (disorder)", 7,
               D_NITROFURANTOIN + 1, 0},
    [A_PNEUMONIA] = {"233604007", "Pneumonia (disorder)", 21, D_AMOXICILLIN + 1, 1},
    [A_SPRAIN] = {"44465007", "Sprain of ankle (disorder)", 28, D_IBUPROFEN + 1, 0},
    [A_OTITIS] = {"65363002", "Otitis media (disorder)", 10, D_AMOXICILLIN + 1, 1},
    [A_CHESTPAIN] = {"29857009", "Chest pain (finding)", 2, 0, 0},
    [A_MI] = {"22298006", "Myocardial infarction (disorder)", 60, D_ASA + 1, 0},
};

const synth_code synth_procedures[PR_COUNT] = {
    [PR_MEDREC] = {"430193006", "Medication reconciliation (procedure)"},
    [PR_DEPSCREEN] = {"171207006", "Depression screening (procedure)"},
    [PR_ECG] = {"29303009", "Electrocardiographic procedure (procedure)"},
    [PR_CXR] = {"399208008", "Plain chest X-ray (procedure)"},
    [PR_SPIRO] = {"23426006", "Measurement of respiratory function (procedure)"},
    [PR_PCI] = {"415070008", "Percutaneous coronary intervention (procedure)"},
};

const synth_allergy synth_allergies[] = {
    {"91936005", "Allergy to penicillin (finding)", "medication", 0},
    {"91935009", "Allergy to peanuts (finding)", "food", 1},
    {"91930004", "Allergy to eggs (finding)", "food", 2},
    {"300916003", "Latex allergy (finding)", "environment", 0},
    {"418689008", "Allergy to grass pollen (finding)", "environment", 3},
    {"232350006", "House dust mite allergy (finding)", "environment", 3},
    {"232347008", "Dander (animal) allergy (finding)", "environment", 4},
};
const size_t synth_n_allergies = COUNT(synth_allergies);

const synth_code synth_reactions[] = {
    {"247472004", "Wheal (finding)"},
    {"39579001", "Anaphylaxis (disorder)"},
    {"271807003", "Eruption of skin (disorder)"},
    {"76067001", "Sneezing (finding)"},
    {"267036007", "Dyspnea (finding)"},
};

const synth_code synth_vaccines[V_COUNT] = {
    [V_FLU] = {"140", "Influenza, seasonal, injectable, preservative free"},
    [V_COVID] = {"208", "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, "
                        "preservative free, 30 mcg/0.3mL dose"},
    [V_HEXA] = {"146", "DTaP,IPV,Hib,HepB"},
    [V_PCV] = {"133", "Pneumococcal conjugate PCV 13"},
    [V_MMR] = {"03", "MMR"},
    [V_DTAPIPV] = {"130", "DTaP-IPV"},
    [V_HPV] = {"165", "HPV9"},
    [V_TD] = {"113", "Td (adult) preservative free"},
};

const synth_code synth_enc_class[4] = {
    [E_AMB] = {"AMB", "ambulatory"},
    [E_IMP] = {"IMP", "inpatient encounter"},
    [E_EMER] = {"EMER", "emergency"},
    [E_VR] = {"VR", "virtual"},
};

const synth_code synth_enc_types[ET_COUNT] = {
    [ET_CHECKUP] = {"185349003", "Encounter for check up (procedure)"},
    [ET_PROBLEM] = {"185347001", "Encounter for problem (procedure)"},
    [ET_FOLLOWUP] = {"390906007", "Follow-up encounter (procedure)"},
    [ET_TELE] = {"448337001", "Telemedicine consultation with patient (procedure)"},
    [ET_EMERGENCY] = {"50849002", "Emergency room admission (procedure)"},
    [ET_ADMISSION] = {"32485007", "Hospital admission (procedure)"},
    [ET_VACCINATION] = {"33879002",
                        "Administration of vaccine to produce active immunity (procedure)"},
};
