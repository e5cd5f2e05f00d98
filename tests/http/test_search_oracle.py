"""Differential test of the search engine: thousands of seeded random searches over
`hortus generate` data, each answered by the server (the index) and by a test-only oracle
(tests/oracle/oracle.js: every resource scanned, every parameter's FHIRPath expression
evaluated by npm fhirpath, matched by the contract of docs/SEARCH.md), must give exactly
the same ids in the same order -- before and after updates that make resources stop or
start matching, and deletes.

Why it is shaped this way:
- The oracle is one long-lived node process spoken to in JSON lines (Oracle below), so a
  query costs a line each way, not a process start. It is told every write the server
  acknowledged, with the resource as the server returned it (meta included), in order,
  so it knows the creation order that un-sorted results follow.
- The data is loaded with PUT entries of transaction Bundles in a fixed order (faster than
  one PUT per request under the sanitizers; within a Bundle, creation order is entry
  order); updates and deletes later are single PUT / DELETE requests.
- Queries are drawn from the CapabilityStatement's parameters, with values taken from the
  data (the oracle hands out the FHIRPath values of a parameter) and varied the way the
  contract allows (prefixes, precisions, zones, case and accents, modifiers, OR, AND,
  _sort), plus values that match nothing and a few malformed ones that must be a 400 on
  both sides. The generator is one function per parameter type (GEN) so chains and
  includes (part 2) add their own.
- A few resources the generator does not make are added (Extras): numbers, Money,
  Timing events, hierarchical URIs, names in Greek and Cyrillic, identifiers with `|` and
  `,`, Reference.identifier.
- Engine bugs already reported are kept out of the generator by KNOWN_BUGS, each entry
  naming its bug, until fixed.

Knobs: HORTUS_ORACLE_SEED (default 7), HORTUS_ORACLE_QUERIES (default 3000 in all),
HORTUS_ORACLE_LOG (a file to write every query and its number of matches to),
HORTUS_ORACLE_ALL=1 (run the queries of the known bugs too).
"""
import collections
import json
import math
import os
import random
import re
import shutil
import subprocess
import time
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
import requests

from conftest import BIN, FHIR_JSON, ROOT

ORACLE_DIR = os.path.join(ROOT, "tests", "oracle")
SEED = int(os.environ.get("HORTUS_ORACLE_SEED", "7"))
QUERIES = int(os.environ.get("HORTUS_ORACLE_QUERIES", "3000"))
ALL_QUERIES = os.environ.get("HORTUS_ORACLE_ALL") == "1"
LOG = open(os.environ["HORTUS_ORACLE_LOG"], "w", encoding="utf-8") \
    if os.environ.get("HORTUS_ORACLE_LOG") else None
ROUNDS = 3              # query rounds; between two rounds a batch of writes
WRITES_PER_ROUND = 120  # updates, deletes, re-creates and new copies
CT = {"Content-Type": FHIR_JSON}
UCUM = "http://unitsofmeasure.org"
# an order in which every reference names a resource loaded before it
LOAD_FIRST = ["Organization", "Practitioner", "Patient", "Encounter", "Observation"]


# ---------------------------------------------------------------------------- the oracle
def ensure_oracle_deps():
    """npm ci of tests/oracle once (CI starts from a clean clone)."""
    if os.path.isdir(os.path.join(ORACLE_DIR, "node_modules", "fhirpath")) and \
            os.path.isdir(os.path.join(ORACLE_DIR, "node_modules", "@medplum", "definitions")):
        return
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            pytest.fail(f"the search oracle needs {tool} (Debian packages nodejs npm; "
                        "tools/deps.sh test installs them)")
    r = subprocess.run(["npm", "ci", "--prefix", ORACLE_DIR, "--no-audit", "--no-fund"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"npm ci in tests/oracle failed:\n{r.stdout}\n{r.stderr}"


class Oracle:
    """tests/oracle/oracle.js as a child process: one JSON request per line, one answer."""

    def __init__(self):
        self.proc = subprocess.Popen(["node", os.path.join(ORACLE_DIR, "oracle.js")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, encoding="utf-8")

    def ask(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the oracle exited ({self.proc.poll()})"
        ans = json.loads(line)
        assert ans.get("ok"), ans.get("message")
        return ans

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------- known bugs
# Engine bugs found by this test and reported, each kept out of the generated queries by
# a predicate that matches exactly its case, until it is fixed (then delete the entry).
# A predicate gets (type, pairs, gen) and looks at the parsed values and, where the bug
# needs it, at the data (gen.values).

def split_parts(s):
    """A search value's OR values and their | parts, reading the escapes \\, \\| \\$ \\\\
    once (docs/SEARCH.md section 2): [[part, ...], ...]."""
    out, cur, i = [], [[]], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in ",|$\\":
            cur[-1].append(s[i + 1])
            i += 2
            continue
        if s[i] == ",":
            out.append(["".join(p) for p in cur])
            cur = [[]]
        elif s[i] == "|":
            cur.append([])
        else:
            cur[-1].append(s[i])
        i += 1
    return out + [["".join(p) for p in cur]]


# Engine bugs this test found are fixed (cb36d45: UCUM affine units and exponents,
# decimal range edges, exponent forms, escaped bars, fraction digits); a new one is
# added here as a predicate (type_, pairs, gen) -> bool naming it, until fixed.
KNOWN_BUGS = []


def known_bug(type_, pairs, gen):
    """The name of the first known bug the query would run into, or None (always None
    under HORTUS_ORACLE_ALL=1, to see whether a fix made an entry unnecessary)."""
    if ALL_QUERIES:
        return None
    return next((f.__name__ for f in KNOWN_BUGS if f(type_, pairs, gen)), None)


# ---------------------------------------------------------------------------- extras
ODD_NAMES = [("Ödön", ["Zoë"]), ("Straße", ["Jürgen"]), ("Æsir", ["Ørjan"]),
             ("ΣΟΦΊΑ", ["Παναγιώτης"]), ("Дмитриев", ["Ёлка"]), ("  van   der  Berg ", ["Anna"]),
             ("O'Brien-Łukasz", ["Şerban"]), ("Nguyễn", ["Thị"]), ("œuvre", ["Þór"]),
             ("de Jong", ["Marieke"]), ("Иванов", ["Алексей"]), ("Müller", ["Ève"])]


def extras(rng, patients, practitioners, base):
    """Resources of the parameter types the generated data lacks."""
    out = []
    for i, (fam, given) in enumerate(ODD_NAMES):
        out.append({"resourceType": "Patient", "id": f"x-pat-{i}",
                    "name": [{"family": fam, "given": given, "text": " ".join(given + [fam])}],
                    "gender": rng.choice(["male", "female", "other", "unknown"]),
                    "birthDate": rng.choice(["1970", "1970-03", "1970-03-15", "1985-12-31",
                                             "2001-01-01"]),
                    "identifier": [{"system": "urn:x:mrn",
                                    "value": rng.choice(["A|1", "A,1", "B\\2", f"X{i}"]),
                                    "type": {"text": rng.choice(["Medical record", "Ærztliche Nummer"])}}],
                    "telecom": [{"system": "email", "value": f"p{i}@example.org"}]})
    for i in range(12):
        pat = rng.choice(patients)
        out.append({"resourceType": "RiskAssessment", "id": f"x-risk-{i}", "status": "final",
                    "subject": {"reference": f"Patient/{pat}"},
                    "occurrenceDateTime": f"20{10 + i:02d}-0{1 + i % 9}-1{i % 10}T10:00:00Z",
                    "prediction": [{"outcome": {"text": "death"},
                                    "probabilityDecimal": rng.choice(
                                        [0.1, 0.15, 0.2, 0.25, 0.5, 0.95, 1, 0.05, 0.333])}]})
    currencies = ["EUR", "USD"]
    for i in range(12):
        pat = rng.choice(patients)
        ci = {"resourceType": "ChargeItem", "id": f"x-charge-{i}", "status": "billable",
              "code": {"coding": [{"system": "urn:x:charge", "code": f"C{i % 4}"}]},
              "subject": {"reference": f"Patient/{pat}"},
              "factorOverride": rng.choice([0.8, 1, 1.25, 1.5, 2, 0.75]),
              "priceOverride": {"value": rng.choice([10, 12.5, 99.99, 100, 250]),
                                "currency": rng.choice(currencies)},
              "quantity": {"value": rng.choice([1, 2, 3, 10])}}
        if i % 3 == 0:
            ci["occurrenceTiming"] = {"event": [f"2021-0{1 + i % 9}-01T09:00:00Z",
                                                f"2021-0{1 + i % 9}-15T09:00:00Z"]}
        elif i % 3 == 1:
            ci["occurrencePeriod"] = {"start": f"2021-0{1 + i % 9}-01"}
        else:
            ci["occurrenceDateTime"] = f"2021-0{1 + i % 9}-0{1 + i % 9}"
        if i % 4 == 0:
            ci["performer"] = [{"actor": {"identifier": {"system": "urn:x:staff",
                                                          "value": f"S{i % 3}"}}}]
        out.append(ci)
    for i in range(8):
        out.append({"resourceType": "MolecularSequence", "id": f"x-seq-{i}",
                    "coordinateSystem": i % 2, "patient": {"reference": f"Patient/{rng.choice(patients)}"},
                    "variant": [{"start": rng.choice([1, 10, 100, 101, 150, 1000]),
                                 "end": rng.choice([200, 1001, 1500])}]})
    paths = ["http://example.org/fhir/ValueSet/a", "http://example.org/fhir/ValueSet/a/b",
             "http://example.org/fhir/ValueSet/a/b/c", "http://example.org/fhir/ValueSet/ab",
             "http://example.org/other/x", "urn:oid:1.2.3.4", "http://example.org/fhir"]
    for i, url in enumerate(paths):
        out.append({"resourceType": "ValueSet", "id": f"x-vs-{i}", "url": url, "status": "active",
                    "name": f"VS{i}", "version": f"{1 + i % 3}.0", "date": f"20{15 + i}-06-01",
                    "publisher": rng.choice(["HL7", "Hortus", "hortus test"])})
    for i in range(6):
        prac = rng.choice(practitioners)
        perf = [{"reference": f"Practitioner/{prac}"}]
        if i % 2:
            perf.append({"identifier": {"system": "urn:x:staff", "value": f"S{i % 3}"}})
        out.append({"resourceType": "Observation", "id": f"x-obs-{i}", "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}],
                             "text": "Body temperature"},
                    "subject": {"reference": f"Patient/{rng.choice(patients)}"},
                    "performer": perf,
                    "effectiveDateTime": ["2020-05-01T10:00:00.500Z", "2020-05-01",
                                          "2020-05-01T10:00:00.123Z", "2020-05",
                                          "2020-05-01T12:00:00+14:00", "2020"][i],
                    "valueQuantity": {"value": [37.05, 36.95, 98.6, 310.15, 0.5, 37][i],
                                      "unit": ["Cel", "Cel", "degF", "K", "Cel", "C"][i],
                                      "system": UCUM,
                                      "code": ["Cel", "Cel", "[degF]", "K", "Cel", "Cel"][i]}})
    others = [{"value": 2, "unit": "tablets"},
              {"value": 3, "system": "http://snomed.info/sct", "code": "385055001", "unit": "tablet"},
              {"value": 250, "system": UCUM, "code": "mg", "unit": "milligram"},
              {"value": 0.25, "system": UCUM, "code": "g", "unit": "g"},
              {"value": -1.5, "system": "urn:x:units", "code": "score"}]
    for i, q in enumerate(others):
        out.append({"resourceType": "Observation", "id": f"x-obsq-{i}", "status": "amended",
                    "code": {"coding": [{"system": "urn:x:obs", "code": f"Q{i % 2}",
                                         "display": "Dosis Ærztlich"}]},
                    "subject": {"reference": f"Patient/{rng.choice(patients)}"},
                    "effectivePeriod": {"end": "2019-07-01T00:00:00Z"}, "valueQuantity": q})
    # composites: coded, string, date and period values, components of two kinds, strings
    # past the parts' cut (IDX_PART_STR, 64 bytes), a reference component, a token
    # component of %resource, context of a canonical resource
    long_a = "Ölmessung " + "x" * 60 + " A"
    long_b = "Ölmessung " + "x" * 60 + " B"
    values = [{"valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                                    "code": "260385009", "display": "Negative"}]}},
              {"valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                                    "code": "10828004"}], "text": "Positive"}},
              {"valueString": "Trace amounts"}, {"valueString": long_a}, {"valueString": long_b},
              {"valueDateTime": "2021-03-04T10:00:00Z"}, {"valuePeriod": {"start": "2021-03-01"}},
              {"valueDateTime": "2021"}]
    for i, v in enumerate(values):
        obs = {"resourceType": "Observation", "id": f"x-obsc-{i}", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": ["5778-6", "5778-6", "5767-9",
                                                                          "5767-9", "5767-9", "29463-7",
                                                                          "29463-7", "5778-6"][i]}]},
               "subject": {"reference": f"Patient/{rng.choice(patients)}"}, **v}
        if i % 2 == 0:
            obs["component"] = [{"code": {"coding": [{"system": "urn:x:comp", "code": f"C{i % 3}"}]},
                                 "valueCodeableConcept": {"coding": [{"system": "urn:x:ans",
                                                                      "code": f"A{i % 4}"}]}},
                                {"code": {"coding": [{"system": "urn:x:comp", "code": f"C{(i + 1) % 3}"}]},
                                 "valueQuantity": {"value": 10 * i, "system": UCUM, "code": "mg"}}]
        out.append(obs)
    docs = []
    for i in range(4):
        doc = {"resourceType": "DocumentReference", "id": f"x-doc-{i}", "status": "current",
               "subject": {"reference": f"Patient/{rng.choice(patients)}"},
               "content": [{"attachment": {"contentType": "text/plain"}}]}
        if docs:
            doc["relatesTo"] = [{"code": ["replaces", "appends", "signs"][i % 3],
                                 "target": {"reference": f"DocumentReference/{rng.choice(docs)}"}}]
        docs.append(doc["id"])
        out.append(doc)
    for i in range(4):
        out.append({"resourceType": "Group", "id": f"x-group-{i}", "type": "person", "actual": True,
                    "characteristic": [{"code": {"coding": [{"system": "urn:x:char", "code": f"K{i % 2}"}]},
                                        "valueCodeableConcept": {"coding": [{"system": "urn:x:v",
                                                                             "code": f"V{i % 3}"}]},
                                        "exclude": False},
                                       {"code": {"coding": [{"system": "urn:x:char", "code": "flag"}]},
                                        "valueBoolean": i % 2 == 0, "exclude": False}]})
    for i in range(4):
        # msq-5 and msq-6: a chromosome comes with a genomeBuild, and a referenceSeq has
        # exactly one of genomeBuild, referenceSeqId, ...: half of each kind
        ref = {"windowStart": 100 * i, "windowEnd": 100 * i + 500}
        if i % 2 == 0:
            ref["chromosome"] = {"coding": [{"system": "http://hl7.org/fhir/chromosome-human",
                                             "code": str(1 + i % 4 // 2)}]}
            ref["genomeBuild"] = "GRCh38"
        else:
            ref["referenceSeqId"] = {"coding": [{"system": "http://www.ncbi.nlm.nih.gov/nuccore",
                                                 "code": f"NC_00000{i}"}]}
        out.append({"resourceType": "MolecularSequence", "id": f"x-seqc-{i}", "coordinateSystem": 0,
                    "referenceSeq": ref,
                    "variant": [{"start": 100 * i + 10, "end": 100 * i + 20},
                                {"start": 100 * i + 300, "end": 100 * i + 301}]})
    for i in range(3):
        out.append({"resourceType": "Questionnaire", "id": f"x-q-{i}", "status": "active",
                    "useContext": [{"code": {"system": "http://terminology.hl7.org/CodeSystem/usage-context-type",
                                             "code": "age"},
                                    "valueQuantity": {"value": 18 + 20 * i, "system": UCUM, "code": "a"}},
                                   {"code": {"system": "http://terminology.hl7.org/CodeSystem/usage-context-type",
                                             "code": "focus"},
                                    "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                                                         "code": ["38341003", "73211009", "44054006"][i]}]}}]})
    # a subject contained in its Observation: a reference "#id"
    for i in range(2):
        out.append({"resourceType": "Observation", "id": f"x-obsk-{i}", "status": "final",
                    "contained": [{"resourceType": "Patient", "id": f"cp{i}",
                                   "name": [{"family": "Contained"}]}],
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
                    "subject": {"reference": f"#cp{i}"}})
    # reference forms: absolute to this server, a version, a urn, elsewhere, display only
    pat = rng.choice(patients)
    forms = [{"reference": f"{base}/Patient/{pat}"}, {"reference": f"Patient/{pat}/_history/1"},
             {"reference": "urn:uuid:2f1b8c1e-0d53-4c0e-9a43-5d4c1c7b9e10"},
             {"reference": f"http://elsewhere.example/fhir/Patient/{pat}"},
             {"display": "someone"}, {"reference": f"Patient/{pat}", "display": "both"}]
    for i, ref in enumerate(forms):
        out.append({"resourceType": "Procedure", "id": f"x-proc-{i}", "status": "completed",
                    "subject": ref, "performedDateTime": f"2022-0{1 + i}-0{1 + i}",
                    "instantiatesCanonical": [rng.choice(
                        ["http://example.org/fhir/PlanDefinition/p1|2.0",
                         "http://example.org/fhir/PlanDefinition/p1"])],
                    "instantiatesUri": [rng.choice(["http://example.org/fhir/protocol/a",
                                                    "http://example.org/fhir/protocol/a/b",
                                                    "urn:x:protocol"])]})
    # positions for near: a cluster (distances from a few metres to a few hundred km), the
    # antimeridian, a pole, and one without a position
    for i in range(14):
        loc = {"resourceType": "Location", "id": f"x-loc-{i}", "name": f"site {i}"}
        if i == 12:
            loc["position"] = {"latitude": 0.0, "longitude": rng.choice([179.9995, -179.9995])}
        elif i == 13:
            loc["position"] = {"latitude": 89.9999, "longitude": 10.0}
        elif i != 11:
            loc["position"] = {"latitude": round(rng.uniform(50.7, 53.5), 6),
                               "longitude": round(rng.uniform(3.4, 7.2), 6)}
        out.append(loc)
    return out


# ---------------------------------------------------------------------------- generator
def esc(s):
    """A value as a search value: \\ , | $ escaped (docs/SEARCH.md section 2)."""
    return re.sub(r"([\\,|$])", r"\\\1", s)


def esc_comma(s):
    """For strings: only what would split the value."""
    return re.sub(r"([\\,])", r"\\\1", s)


STRINGISH = {"string", "code", "id", "uri", "url", "canonical", "markdown", "oid", "uuid",
             "String"}
PREFIXES = ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
CONVERSIONS = {"mmol/L": [("umol/L", Fraction(1000))], "umol/L": [("mmol/L", Fraction(1, 1000))],
               "kg": [("g", Fraction(1000))], "cm": [("m", Fraction(1, 100)), ("mm", Fraction(10))],
               "mg/dL": [("g/L", Fraction(1, 100)), ("mg/L", Fraction(10))],
               "g/dL": [("g/L", Fraction(10))], "mg/L": [("ug/mL", Fraction(1))],
               "/min": [("/s", Fraction(1, 60))], "%": [("1", Fraction(1, 100))]}


def dec(x):
    """A JSON number (or Fraction) as an exact Decimal."""
    if isinstance(x, Fraction):
        return Decimal(x.numerator) / Decimal(x.denominator)
    return Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def fmt_dec(d, decimals=None):
    if decimals is not None:
        d = d.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    s = format(d, "f")
    if decimals is None and "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def decimals_of(d):
    s = fmt_dec(d)
    return len(s.split(".")[1]) if "." in s else 0


class Gen:
    """Random searches; values from the oracle's view of the data. Most queries are
    anchored on one resource: every clause takes its values from that resource when it
    has some, so that AND clauses can meet; the others draw from the whole type."""

    def __init__(self, rng, oracle, params, live, base):
        self.rng, self.oracle, self.params, self.base = rng, oracle, params, base
        self.live = live
        self.cache = {}

    def forget(self):
        self.cache = {}

    def values(self, type_, code, rid=None):
        k = (type_, code, rid)
        if k not in self.cache:
            req = {"op": "values", "type": type_, "param": code}
            if rid is not None:
                req["id"] = rid
            self.cache[k] = self.oracle.ask(**req)["values"]
        return self.cache[k]

    def referrers(self, t2, c2, type_):
        k = ("referrers", t2, c2, type_)
        if k not in self.cache:
            self.cache[k] = self.oracle.ask(op="referrers", type=t2, param=c2, to=type_)["ids"]
        return self.cache[k]

    def ratio(self, a, b):
        """The exact factor between two UCUM units (the oracle's), or None."""
        k = ("ratio", a, b)
        if k not in self.cache:
            r = self.oracle.ask(op="ratio", **{"from": a, "to": b})["ratio"]
            self.cache[k] = Fraction(int(r[0]), int(r[1])) if r else None
        return self.cache[k]

    def pick_type(self):
        types = sorted(t for t, v in self.live.items() if v and self.params.get(t))
        weights = [len(self.live[t]) ** 0.3 for t in types]
        return self.rng.choices(types, weights)[0]

    def pick_param(self, type_, sortable=False, rid=None):
        ps = self.params[type_]
        codes = sorted(c for c, t in ps.items() if not sortable or t not in ("composite", "special"))
        with_values = [c for c in codes if self.values(type_, c, rid)]
        pool = with_values if with_values and self.rng.random() < 0.93 else codes
        # a parameter type first, then a parameter of it: the rare types get their share
        ptype = self.rng.choice(sorted({ps[c] for c in pool}))
        return self.rng.choice([c for c in pool if ps[c] == ptype])

    def query(self):
        """(type, [(name, value)...])"""
        r = self.rng
        type_ = self.pick_type()
        rid = r.choice(sorted(self.live[type_])) if r.random() < 0.6 else None
        pairs = []
        if r.random() < 0.03:
            pairs.append(self.malformed(type_))
        n = r.choices([0, 1, 2, 3], [2, 50, 33, 15])[0]
        for _ in range(n):
            link = self.link_clause(type_, rid) if r.random() < 0.15 else None
            if link:
                pairs.append(link)
                continue
            code = self.pick_param(type_, rid=rid)
            pairs.append(self.clause(type_, code, rid))
        if r.random() < 0.12:
            pairs += self.includes(type_)
        if r.random() < 0.3:
            keys = []
            for _ in range(r.choice([1, 1, 1, 2, 3])):
                code = self.pick_param(type_, sortable=True)
                keys.append(("-" if r.random() < 0.5 else "") + code)
            pairs.append(("_sort", ",".join(keys)))
        return type_, pairs

    def clause(self, type_, code, rid=None):
        r = self.rng
        ptype = self.params[type_][code]
        if r.random() < 0.07:
            return f"{code}:missing", r.choice(["true", "false"])
        vals = (rid is not None and self.values(type_, code, rid)) or self.values(type_, code)
        gen = GEN.get(ptype)
        nor = r.choices([1, 2, 3], [75, 18, 7])[0]
        mod, outs = None, []
        for k in range(nor):
            m, v = gen(self, type_, code, vals if k == 0 else self.values(type_, code))
            if mod is None:
                mod = m
            if m != mod:  # one modifier per clause
                continue
            outs.append(v)
        return (f"{code}:{mod}" if mod else code), ",".join(outs)

    def link_clause(self, type_, rid=None, depth=0):
        """A chain (subject:Patient.name=x, with or without the type) or a _has
        (_has:Observation:patient:code=x), the clause behind it drawn from a resource the
        link reaches when there is one; sometimes a link behind a link. None when the
        type has nothing to link through."""
        r = self.rng
        if r.random() < 0.6:
            refs = sorted(c for c, t in self.params[type_].items() if t == "reference")
            with_vals = [c for c in refs if self.values(type_, c, rid)] or \
                [c for c in refs if self.values(type_, c)]
            if not with_vals:
                return None
            code = r.choice(with_vals)
            vals = self.values(type_, code, rid) or self.values(type_, code)
            local = []
            for v in vals:
                x = v["value"]
                m = REF_RE.match(x["reference"]) if isinstance(x, dict) and \
                    isinstance(x.get("reference"), str) else None
                if m and m.group(2) in self.live.get(m.group(1), {}):
                    local.append(m.groups())
            if local and r.random() < 0.9:
                t, tid = r.choice(sorted(local))
            else:
                t, tid = r.choice(self.targets[type_].get(code) or sorted(self.live)), None
            if not self.params.get(t):
                return None
            inner = self.link_clause(t, tid, depth + 1) if depth < 1 and r.random() < 0.2 else None
            if inner is None:
                inner = self.clause(t, self.pick_param(t, rid=tid), tid)
            head = f"{code}:{t}" if r.random() < 0.7 else code
            return f"{head}.{inner[0]}", inner[1]
        cands = sorted((t2, c2) for t2, ps in self.targets.items() if self.live.get(t2)
                       for c2, ts in ps.items() if type_ in ts and c2 in self.params.get(t2, {}))
        if not cands:
            return None
        # mostly a parameter that does link some resource of the type
        linked = [(t2, c2) for t2, c2 in cands if self.referrers(t2, c2, type_)]
        if not linked and r.random() < 0.8:
            return None  # nothing refers to this type: mostly another clause instead
        t2, c2 = r.choice(linked if linked and r.random() < 0.9 else cands)
        rid2 = r.choice(self.referrers(t2, c2, type_) or sorted(self.live[t2]))
        inner = self.link_clause(t2, rid2, depth + 1) if depth < 1 and r.random() < 0.2 else None
        if inner is None:
            inner = self.clause(t2, self.pick_param(t2, rid=rid2), rid2)
        return f"_has:{t2}:{c2}:{inner[0]}", inner[1]

    def includes(self, type_):
        """One to three _include / _revinclude parameters, some :iterate, some with a
        target type, some `*`."""
        r = self.rng
        out = []
        reached = [type_]  # the types earlier includes lead to: where :iterate starts
        for _ in range(r.choice([1, 2, 2, 3])):
            c = r.random()
            it = len(reached) > 1 and r.random() < 0.5
            src = r.choice(reached[1:]) if it else type_
            if c < 0.1:
                out.append(("_include" + (":iterate" if it else ""), "*" if not it else f"{src}:*"))
            elif c < 0.55:
                refs = sorted(self.targets.get(src, {}))
                if not refs:
                    continue
                with_vals = [c2 for c2 in refs if self.values(src, c2)]
                code = r.choice(with_vals if with_vals and r.random() < 0.9 else refs)
                ts = self.targets[src][code]
                tgt = f":{r.choice(ts)}" if ts and r.random() < 0.3 else ""
                out.append(("_include" + (":iterate" if it else ""), f"{src}:{code}{tgt}"))
                reached += [t for t in ([tgt[1:]] if tgt else ts) if self.live.get(t)]
            else:
                cands = sorted((t2, c2) for t2, ps in self.targets.items() if self.live.get(t2)
                               for c2, ts in ps.items() if src in ts)
                if not cands:
                    continue
                linked = [tc for tc in cands if self.referrers(tc[0], tc[1], src)]
                t2, c2 = r.choice(linked if linked and r.random() < 0.9 else cands)
                out.append(("_revinclude" + (":iterate" if it else ""), f"{t2}:{c2}"))
                reached.append(t2)
        return out

    def malformed(self, type_):
        r = self.rng
        code = self.pick_param(type_)
        ptype = self.params[type_][code]
        bad = {"date": ["2024-13", "20x4", "ge", "2024-02-30", "2024-01-01T25:00"],
               "number": ["abc", "1.2.3", "ge"],
               "quantity": ["5|x", "x", "5|http://unitsofmeasure.org|", "5|urn:x|"],
               "token": ["|", "a|b|c"],
               "reference": ["Foo/bar/baz/x"],
               "composite": ["8480-6", "a$", "a$1$2$3$4", "$"],
               "special": ["abc", "91|0", "52|5|1|kg", "52|5|-1", "52"],
               "string": [],
               "uri": []}.get(ptype, [])
        choice = r.random()
        if bad and choice < 0.6:
            return code, r.choice(bad)
        if choice < 0.75:
            return f"{code}:missing", "maybe"
        if choice < 0.9:
            wrong = {"string": "not", "token": "exact", "reference": "contains", "uri": "text",
                     "date": "exact", "number": "text", "quantity": "below"}.get(ptype, "bogus")
            return f"{code}:{wrong}", "x"
        return code, "a,"


def strings_of(vals):
    out = []
    for v in vals:
        t, x = v["type"], v["value"]
        if t in STRINGISH and isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            for k in ("family", "given", "prefix", "suffix", "text", "line", "city", "district",
                      "state", "postalCode", "country"):
                y = x.get(k)
                for s in (y if isinstance(y, list) else [y]):
                    if isinstance(s, str) and s:
                        out.append(s)
    return out


def vary_case(rng, s):
    c = rng.random()
    if c < 0.3:
        return s.upper()
    if c < 0.6:
        return s.lower()
    return s


def gen_string(g, type_, code, vals):
    r = g.rng
    ss = strings_of(vals)
    if not ss or r.random() < 0.06:
        return r.choice([None, None, "exact", "contains"]), r.choice(["zzqx", "Q", "ö", "e"])
    s = r.choice(ss)
    c = r.random()
    if c < 0.45:
        k = r.randint(1, len(s))
        v = vary_case(r, s[:k])
        if r.random() < 0.1:
            v = v.replace(" ", "  ")
        return None, esc_comma(v) if v.strip() else esc_comma(s)
    if c < 0.65:
        return "exact", esc_comma(s if r.random() < 0.8 else vary_case(r, s))
    i = r.randint(0, max(0, len(s) - 1))
    j = r.randint(i + 1, len(s))
    v = vary_case(r, s[i:j])
    return "contains", esc_comma(v) if v.strip() else esc_comma(s)


def tokens_of(vals):
    """[(code, system, text)] of token values"""
    out = []
    for v in vals:
        t, x = v["type"], v["value"]
        if isinstance(x, bool):
            out.append(("true" if x else "false", None, None))
        elif isinstance(x, (int, float)) and t in ("integer", "positiveInt", "unsignedInt", "Integer"):
            out.append((str(x), None, None))
        elif isinstance(x, str):
            out.append((x, None, None))
        elif t == "CodeableConcept":
            for c in x.get("coding", []):
                out.append((c.get("code"), c.get("system"), c.get("display")))
            if x.get("text"):
                out.append((None, None, x["text"]))
        elif t == "Coding":
            out.append((x.get("code"), x.get("system"), x.get("display")))
        elif t in ("Identifier", "ContactPoint"):
            out.append((x.get("value"), x.get("system"), (x.get("type") or {}).get("text")))
    return out


def gen_token(g, type_, code, vals):
    r = g.rng
    typed = [(c, x["value"]) for v in vals if v["type"] == "Identifier"
             and isinstance((x := v["value"]).get("value"), str)
             for c in (x.get("type") or {}).get("coding", []) if c.get("code")]
    if typed and r.random() < 0.15:
        c, value = r.choice(typed)
        form = r.random()
        tsys = c.get("system", "") if form < 0.8 else "urn:x:other"
        return "of-type", f"{esc(tsys)}|{esc(c['code'])}|{esc(value if form < 0.9 else 'nope')}"
    toks = tokens_of(vals)
    codes = [t for t in toks if t[0]]
    texts = [t[2] for t in toks if t[2]]
    mod = "not" if r.random() < 0.12 else None
    c = r.random()
    if texts and c < 0.15:
        s = r.choice(texts)
        k = r.randint(1, len(s))
        v = vary_case(r, s[:k])
        return "text", v if v.strip() else s
    if not codes or r.random() < 0.07:
        return mod, r.choice(["nope-code", "urn:x|nope", "http://loinc.org|", "|nope"])
    cd, sy, _ = r.choice(codes)
    c = r.random()
    if c < 0.4:
        return mod, esc(cd)
    if c < 0.7:
        return mod, f"{esc(sy or '')}|{esc(cd)}"
    if c < 0.8 and sy:
        return mod, f"{esc(sy)}|"
    if c < 0.9:
        return mod, f"|{esc(cd)}"
    return mod, f"urn:x:other|{esc(cd)}"


REF_RE = re.compile(r"^([A-Za-z]+)/([A-Za-z0-9.\-]{1,64})$")


def gen_reference(g, type_, code, vals):
    r = g.rng
    refs, idents = [], []
    for v in vals:
        x = v["value"]
        if isinstance(x, dict):
            if isinstance(x.get("reference"), str):
                refs.append(x["reference"])
            if isinstance(x.get("identifier"), dict) and x["identifier"].get("value"):
                idents.append(x["identifier"])
        elif isinstance(x, str):
            refs.append(x)
    c = r.random()
    if idents and c < 0.2:
        i = r.choice(idents)
        form = r.random()
        if form < 0.4:
            return "identifier", esc(i["value"])
        if form < 0.8:
            return "identifier", f"{esc(i.get('system', ''))}|{esc(i['value'])}"
        return "identifier", f"urn:x:nope|{esc(i['value'])}"
    if not refs or r.random() < 0.07:
        return None, r.choice(["Patient/nope", "nope", "http://elsewhere.example/fhir/Patient/1"])
    ref = r.choice(refs)
    m = REF_RE.match(ref)
    if not m:
        if "|" in ref and r.random() < 0.5:  # a canonical without its version: any version
            return None, esc(ref.split("|")[0])
        return None, esc(ref)
    t, i = m.groups()
    c = r.random()
    if c < 0.45:
        return None, ref
    if c < 0.65:
        return t, i
    if c < 0.8:
        return None, i
    if c < 0.9:
        return None, f"{g.base}/{ref}"
    return t, ref


def instants_of(vals):
    out = []
    for v in vals:
        x = v["value"]
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            for k in ("start", "end"):
                if isinstance(x.get(k), str):
                    out.append(x[k])
            for e in x.get("event", []) or []:
                if isinstance(e, str):
                    out.append(e)
    return out


DT_RE = re.compile(r"^(\d{4})(-\d{2})?(-\d{2})?(?:T(\d{2}:\d{2})(:\d{2})?(\.\d+)?(Z|[+-]\d{2}:\d{2})?)?$")


def vary_date(r, s):
    m = DT_RE.match(s)
    if not m:
        return s
    y, mo, d, hm, sec, frac, tz = m.groups()
    parts = [y]
    cut = r.choice(["y", "m", "d", "min", "s", "full", "full", "full"])
    if cut == "y" or not mo:
        return y
    parts.append(mo)
    if cut == "m" or not d:
        return "".join(parts)
    parts.append(d)
    if cut == "d" or not hm:
        return "".join(parts)
    parts.append("T" + hm)
    if cut != "min" and sec:
        parts.append(sec)
        if cut == "full" and frac:
            parts.append(frac if r.random() < 0.7 else frac[:r.choice([2, 3])])
        elif cut == "full" and r.random() < 0.15:
            parts.append(r.choice([".5", ".55", ".000", ".999", ".123456"]))
    zone = r.random()
    if zone < 0.6:
        parts.append(tz or "")
    elif zone < 0.75:
        parts.append("Z")
    elif zone < 0.9:
        parts.append(r.choice(["+05:30", "-08:00", "+14:00"]))
    return "".join(parts)


def gen_date(g, type_, code, vals):
    r = g.rng
    ins = instants_of(vals)
    p = r.choice(PREFIXES + ["", "", ""])
    if not ins or r.random() < 0.12:
        y = r.randint(1940, 2030)
        return None, p + r.choice([f"{y}", f"{y}-0{r.randint(1, 9)}", f"{y}-0{r.randint(1, 9)}-1{r.randint(0, 9)}"])
    return None, p + vary_date(r, r.choice(ins))


def vary_number(r, x):
    """A search number near the data value x (Decimal): itself, with more or fewer
    decimals (a value at the edge of the query's range), in exponent form, one unit of
    the last decimal away, or scaled."""
    c = r.random()
    d = decimals_of(x)
    if c < 0.35:
        return fmt_dec(x)
    if c < 0.5:
        return fmt_dec(x, d + 1)  # 5.4 -> 5.40: a narrower range
    if c < 0.65 and d > 0:
        return fmt_dec(x, d - 1)  # a wider range, the value may be at its edge
    if c < 0.75 and x != 0:
        e = x.adjusted()
        return f"{fmt_dec(x.scaleb(-e), r.choice([0, 1, 2]))}e{e}"
    if c < 0.85:
        return fmt_dec(x + r.choice([-1, 1]) * Decimal(1).scaleb(-d))
    return fmt_dec((x * Decimal(r.choice(["0.5", "0.9", "1.1", "2"]))).normalize())


def gen_number(g, type_, code, vals):
    r = g.rng
    nums = [v["value"] for v in vals if isinstance(v["value"], (int, float)) and not isinstance(v["value"], bool)]
    p = r.choice(PREFIXES + ["", "", ""])
    if not nums or r.random() < 0.1:
        return None, p + r.choice(["0", "1", "-3", "1e3", "0.5"])
    return None, p + vary_number(r, dec(r.choice(nums)))


def gen_quantity(g, type_, code, vals):
    r = g.rng
    qs = []
    for v in vals:
        q = v["value"]
        if isinstance(q, dict) and isinstance(q.get("value"), (int, float)):
            if v["type"] == "Money":
                q = {"value": q["value"], "system": "urn:iso:std:iso:4217", "code": q.get("currency")}
            qs.append(q)
    p = r.choice(PREFIXES + ["", "", ""])
    if not qs or r.random() < 0.08:
        return None, p + r.choice(["5", "5|http://unitsofmeasure.org|mg", "5||nope", "1e2"])
    q = r.choice(qs)
    x = dec(q["value"])
    c = r.random()
    sysm, codem, unit = q.get("system"), q.get("code"), q.get("unit")
    if c < 0.25:
        return None, p + vary_number(r, x)
    if c < 0.5 and codem:
        return None, p + vary_number(r, x) + f"|{esc(sysm or '')}|{esc(codem)}"
    if c < 0.65 and (unit or codem):
        return None, p + vary_number(r, x) + f"||{esc(r.choice([u for u in (unit, codem) if u]))}"
    if c < 0.85 and sysm == UCUM and codem in CONVERSIONS:
        to, f = r.choice(CONVERSIONS[codem])
        y = dec(Fraction(str(x)) * f)
        y = y.quantize(Decimal(1).scaleb(y.adjusted() - 5))  # six significant digits
        return None, p + vary_number(r, y) + f"|{UCUM}|{esc(to)}"
    return None, p + vary_number(r, x) + f"|{UCUM}|{r.choice(['mg', 'kg', 'mmol/L', 'mm[Hg]', '%'])}"


def gen_uri(g, type_, code, vals):
    r = g.rng
    us = [v["value"] for v in vals if isinstance(v["value"], str) and v["value"]]
    if not us or r.random() < 0.08:
        return r.choice([None, "below", "above"]), r.choice(["http://nope.example", "urn:x", "http://example.org"])
    u = r.choice(us)
    c = r.random()
    if c < 0.4:
        return None, esc_comma(u)
    if c < 0.7:
        cut = r.randint(1, len(u))
        if "/" in u and r.random() < 0.5:
            cut = u.rfind("/", 0, len(u) - 1) + 1 or cut
        return "below", esc_comma(u[:cut])
    return "above", esc_comma(u + r.choice(["", "/x", "/x/y", "x"]))


def gen_special(g, type_, code, vals):
    """near=lat|lon[|distance[|unit]]: around a stored point or a random one."""
    r = g.rng
    pts = [v["value"] for v in vals if isinstance(v["value"], dict) and
           isinstance(v["value"].get("latitude"), (int, float)) and
           isinstance(v["value"].get("longitude"), (int, float))]
    if pts and r.random() < 0.8:
        p = r.choice(pts)
        lat, lon = p["latitude"] + r.uniform(-0.3, 0.3), p["longitude"] + r.uniform(-0.3, 0.3)
    else:
        lat, lon = r.uniform(-90, 90), r.uniform(-180, 180)
    lat, lon = max(-90, min(90, lat)), max(-180, min(180, lon))
    form = r.random()
    if form < 0.15:
        return None, f"{lat:.5f}|{lon:.5f}"
    d = r.choice([0.5, 2, 10, 40, 150, 400, 25000])
    if form < 0.3:
        return None, f"{lat:.5f}|{lon:.5f}|{d}"
    unit, scale = r.choice([("km", 1), ("m", 1000), ("[mi_i]", 1 / 1.609344)])
    return None, f"{lat:.5f}|{lon:.5f}|{d * scale:.3f}|{unit}"


PLAIN = {"token": "nope", "string": "nope", "reference": "Patient/nope", "date": "2024",
         "number": "1", "quantity": "1", "uri": "urn:x:nope", "special": "52|5|1|km"}


def gen_composite(g, type_, code, vals):
    """a$b[$c]: one value per component, from one value of the parameter's expression
    (a BP component's code and its own value), sometimes from two different ones (the
    code of one component, the value of another: they must not meet)."""
    r = g.rng
    types = g.composites[type_][code]
    tuples = [v["value"] for v in vals if v.get("type") == "composite"]
    if not tuples or r.random() < 0.08:
        tup = [[] for _ in types]
    else:
        tup = r.choice(tuples)
        if len(tuples) > 1 and r.random() < 0.2:
            other, k = r.choice(tuples), r.randrange(len(types))
            tup = [other[i] if i == k else tup[i] for i in range(len(types))]
    parts = []
    for k, t in enumerate(types):
        v = None
        for _ in range(8):  # composites take no modifiers: a plain value of the component
            m, v0 = GEN[t](g, type_, code, tup[k])
            if m is None:
                v = v0
                break
        parts.append(v if v is not None else PLAIN[t])
    return None, "$".join(parts)


GEN = {"string": gen_string, "token": gen_token, "reference": gen_reference, "date": gen_date,
       "number": gen_number, "quantity": gen_quantity, "uri": gen_uri, "special": gen_special,
       "composite": gen_composite}


# ---------------------------------------------------------------------------- writes
def choice_base(key):
    m = re.match(r"^([a-z]+)([A-Z].*)$", key)
    return m.group(1) if m else None


def mutate(rng, res, donors):
    """A changed copy of res: a top-level element copied from another resource of the type,
    or one removed, or a name/identifier/meta change. None when nothing applies."""
    new = json.loads(json.dumps(res))
    new.pop("meta", None)
    c = rng.random()
    if c < 0.12:
        new["meta"] = {"tag": [{"system": "urn:x:tag", "code": rng.choice(["a", "b", "c"])}],
                       "profile": [rng.choice(["http://example.org/fhir/StructureDefinition/p",
                                               "http://example.org/fhir/StructureDefinition/p/q"])],
                       "source": rng.choice(["urn:x:src", "http://example.org/src#1"]),
                       "security": [{"system": "urn:x:sec", "code": rng.choice(["R", "N"])}]}
        return new
    if c < 0.22 and res["resourceType"] in ("Patient", "Practitioner"):
        fam, given = rng.choice(ODD_NAMES)
        new["name"] = [{"family": fam, "given": given}]
        return new
    if c < 0.3 and res["resourceType"] == "Patient":
        new["identifier"] = [{"system": rng.choice(["urn:x:mrn", "urn:x:other"]),
                              "value": rng.choice(["A|1", "A,1", "B\\2", "MRN1"])}]
        return new
    donor = rng.choice(donors)
    keys = [k for k in donor if k not in ("resourceType", "id", "meta", "text")]
    if c < 0.8 and keys:
        k = rng.choice(keys)
        base = choice_base(k)
        if base:
            for other in [o for o in new if o != k and choice_base(o) == base]:
                del new[other]
        new[k] = json.loads(json.dumps(donor[k]))
        return new
    opt = [k for k in new if k not in ("resourceType", "id", "status", "code", "subject",
                                        "patient", "intent", "class")]
    if opt:
        del new[rng.choice(opt)]
        return new
    return None


# ---------------------------------------------------------------------------- coverage
class Coverage:
    """What the queries exercised, printed with the result (pytest -s shows it)."""

    def __init__(self):
        self.c = collections.Counter()

    def query(self, type_, pairs, params, n, of):
        clauses = 0
        for name, value in pairs:
            if name.startswith(("_include", "_revinclude")):
                self.c[name.split(":")[0] + (":iterate" if ":" in name else "")] += 1
                continue
            if name == "_sort":
                keys = value.split(",")
                self.c[f"_sort of {len(keys)} key(s)"] += 1
                for k in keys:
                    self.c[f"_sort by {params[type_].get(k.lstrip('-'), '?')}"] += 1
                continue
            clauses += 1
            if name.startswith("_has:") or "." in name:
                self.c["_has" if name.startswith("_has:") else "chain"] += 1
                if name.count("_has:") + name.count(".") > 1:
                    self.c["link behind a link"] += 1
                continue
            code, _, mod = name.partition(":")
            pt = params[type_].get(code, "?")
            if mod and mod[0].isupper():
                mod = "[Type]"
            self.c[f"{pt}{':' + mod if mod else ''}"] += 1
            ors = re.split(r"(?<!\\),", value)
            if len(ors) > 1:
                self.c["OR (a, b)"] += 1
            if pt in ("date", "number", "quantity") and mod != "missing":
                for v in ors:
                    m = re.match(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)", v)
                    self.c[f"{pt} {m.group(1) if m else '(no prefix)'}"] += 1
                    if pt == "quantity":
                        parts = re.split(r"(?<!\\)\|", v)
                        form = "value" if len(parts) == 1 else "UCUM" if parts[1] == UCUM else \
                            "||unit" if not parts[1] else "system|code"
                        self.c[f"quantity {form}"] += 1
        self.c[f"AND of {clauses}"] += 1
        self.c["matches: none" if n == 0 else "matches: all" if n == of else "matches: some"] += 1

    def report(self):
        return "\n".join(f"  {k}: {v}" for k, v in sorted(self.c.items()))


# ---------------------------------------------------------------------------- the test
def ids_from_server(http, base, type_, pairs, count, pages_out=None):
    """(status, ids, total) following next links; ids None on an error. pages_out: a
    list that gets (match ids, sorted included Type/id) per page."""
    params = pairs + [("_count", str(count)), ("_elements", "id")]
    r = http.get(f"{base}/{type_}", params=params)
    if r.status_code != 200:
        return r.status_code, None, r.text[:300]
    b = r.json()
    total = b.get("total")
    out = []
    pages = 0
    while True:
        page = [e["resource"]["id"] for e in b.get("entry", []) if e["search"]["mode"] == "match"]
        out += page
        if pages_out is not None:
            inc = sorted(f"{e['resource']['resourceType']}/{e['resource']['id']}"
                         for e in b.get("entry", []) if e["search"]["mode"] == "include")
            pages_out.append((page, inc))
        nxt = next((l["url"] for l in b.get("link", []) if l["relation"] == "next"), None)
        pages += 1
        if not nxt or pages > 50:
            break
        r = http.get(nxt)
        assert r.status_code == 200, r.text
        b = r.json()
    return 200, out, total


def describe(type_, pairs, got, want, oracle):
    q = "&".join(f"{k}={v}" for k, v in pairs)
    lines = [f"GET {type_}?{q}"]
    if isinstance(got, list) and isinstance(want, list):
        only_s = [i for i in got if i not in set(want)]
        only_o = [i for i in want if i not in set(got)]
        lines.append(f"  server {len(got)}, oracle {len(want)}")
        lines.append(f"  only in the server's answer: {only_s[:8]}")
        lines.append(f"  only in the oracle's answer: {only_o[:8]}")
        if not only_s and not only_o:
            k = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
            lines.append(f"  same ids, order differs from position {k}: "
                         f"server {got[k:k + 5]}, oracle {want[k:k + 5]}")
        for rid in (only_s + only_o)[:2]:
            for name, _ in pairs:
                code = name.split(":")[0]
                if code.startswith("_") and code not in ("_id", "_lastUpdated", "_tag", "_profile",
                                                        "_security", "_source"):
                    continue
                ex = oracle.ask(op="explain", type=type_, id=rid, param=code)
                ent = {k: v for k, v in (ex.get("entries") or {}).items() if v}
                lines.append(f"  {type_}/{rid} {code}: entries {json.dumps(ent)[:400]}")
    else:
        lines.append(f"  server: {got!r:.300}")
        lines.append(f"  oracle: {want!r:.300}")
    return "\n".join(lines)


def test_fold_mirrors_gen_fold():
    """The oracle's folding table (tests/oracle/fold.js, rebuilt from JavaScript's Unicode
    functions) is the table tools/gen_fold.py defines."""
    ensure_oracle_deps()
    import importlib.util
    import unicodedata
    spec = importlib.util.spec_from_file_location("gen_fold", os.path.join(ROOT, "tools", "gen_fold.py"))
    gf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gf)
    want = {}
    for lo, hi in gf.RANGES:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            if unicodedata.category(ch) != "Cn":
                f = gf.fold(ch)
                if f != ch and f:
                    want[cp] = f
    out = subprocess.run(["node", "-e", "const f=require(process.argv[1]);const o={};"
                          "for(const [k,v] of f.TABLE)o[k]=v;console.log(JSON.stringify(o))",
                          os.path.join(ORACLE_DIR, "fold.js")],
                         capture_output=True, text=True, check=True).stdout
    got = {int(k): v for k, v in json.loads(out).items()}
    # a code point unassigned in one Unicode version and assigned in the other is no drift
    common = {cp for cp in set(got) | set(want) if unicodedata.category(chr(cp)) != "Cn"}
    diff = {hex(cp): (got.get(cp), want.get(cp)) for cp in common if got.get(cp) != want.get(cp)}
    assert not diff, diff


def custom(code, base, type_, expr, **extra):
    return {"resourceType": "SearchParameter", "id": code, "status": "active",
            "url": f"http://example.org/fhir/SearchParameter/{code}", "name": code,
            "description": "a custom parameter of the oracle test", "code": code,
            "base": [base], "type": type_, "expression": expr, **extra}


# Defined after the load, so the reindex gives their entries of the data loaded; the
# write rounds then keep them as every write does.
CUSTOMS = [
    custom("x-given", "Patient", "string", "Patient.name.given"),
    custom("x-identifier", "Patient", "token", "Patient.identifier"),
    custom("x-value", "Observation", "number", "Observation.value.ofType(Quantity).value"),
    custom("x-subject", "Observation", "reference", "Observation.subject",
           target=["Patient", "Group"]),
    custom("x-period", "Encounter", "date", "Encounter.period"),
    custom("x-code", "Condition", "token", "Condition.code"),
    custom("x-quantity", "Observation", "quantity", "Observation.value.ofType(Quantity)"),
    custom("x-profile", "Observation", "uri", "Observation.meta.profile"),
]


def test_search_matches_the_oracle(make_server, tmp_path):
    ensure_oracle_deps()
    t0 = time.time()
    # A small SearchParam overlay (docs/STORAGE.md 4.6): the index is folded into its
    # B-tree every few dozen writes, 100 records a transaction, so queries read a mix of
    # folded, half-folded and unfolded entries.
    # Referential integrity off: the rounds below delete resources that others still name
    # and write references to nothing, as data loaded by `hortus import` may hold, and
    # search must answer over such data exactly as well.
    # No fold for being idle: the oracle's own work leaves the writer idle between rounds.
    server = make_server(env={"HORTUS_INDEX_OVERLAY_BYTES": "65536",
                              "HORTUS_INDEX_FOLD_CHUNK": "100",
                              "HORTUS_INDEX_IDLE_FOLD_MS": "off"},
                         extra_args=("--referential-integrity", "off"))
    base = server.base
    http = requests.Session()
    rng = random.Random(SEED)

    gen_dir = tmp_path / "gen"
    r = subprocess.run([BIN, "generate", "--patients", "15", "--seed", "7", "--format", "ndjson",
                        str(gen_dir)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    files = sorted(f[:-len(".ndjson")] for f in os.listdir(gen_dir) if f.endswith(".ndjson"))
    order = [t for t in LOAD_FIRST if t in files] + [t for t in files if t not in LOAD_FIRST]
    resources = []
    for t in order:
        with open(gen_dir / f"{t}.ndjson", encoding="utf-8") as f:
            resources += [json.loads(line) for line in f if line.strip()]
    patients = [x["id"] for x in resources if x["resourceType"] == "Patient"]
    practitioners = [x["id"] for x in resources if x["resourceType"] == "Practitioner"]
    resources += extras(rng, patients, practitioners, base)

    oracle = Oracle()
    try:
        cap = http.get(f"{base}/metadata").json()
        init = oracle.ask(op="init", capability=cap, base=base)
        params = init["params"]
        live = {}  # type -> {id: resource as stored}

        def stored(res):
            oracle.ask(op="put", resource=res)
            live.setdefault(res["resourceType"], {})[res["id"]] = res

        for i in range(0, len(resources), 200):
            chunk = resources[i:i + 200]
            bundle = {"resourceType": "Bundle", "type": "transaction",
                      "entry": [{"resource": x, "request": {"method": "PUT",
                                                            "url": f"{x['resourceType']}/{x['id']}"}}
                                for x in chunk]}
            resp = http.post(base, data=json.dumps(bundle), headers=CT)
            assert resp.status_code == 200, resp.text[:2000]
            for e in resp.json()["entry"]:
                assert e["response"]["status"].startswith("201"), e["response"]
                stored(e["resource"])
        # custom search parameters defined over the stored data: reindexed, then queried
        # like the model's (and kept up by every write of the rounds below)
        for sp in CUSTOMS:
            r = http.put(f"{base}/SearchParameter/{sp['id']}", data=json.dumps(sp), headers=CT)
            assert r.status_code == 201, r.text
        deadline = time.time() + 120
        while True:
            jobs = http.get(f"{base}/$reindex").json()["parameter"]
            states = [q["valueCode"] for j in jobs for q in j["part"] if q["name"] == "status"]
            if len(states) == len(CUSTOMS) and set(states) == {"complete"}:
                break
            assert time.time() < deadline, f"reindex not complete: {jobs}"
            time.sleep(0.1)
        cap = http.get(f"{base}/metadata").json()
        init = oracle.ask(op="init", capability=cap, base=base, customs=CUSTOMS)
        params = init["params"]
        for sp in CUSTOMS:
            assert params[sp["base"][0]][sp["code"]] == sp["type"], sp["code"]
        t_loaded = time.time()

        gen = Gen(rng, oracle, params, live, base)
        gen.composites = init["composites"]
        gen.targets = init["targets"]
        mismatches, n_run, n_400, n_inc = [], 0, 0, 0
        cov = Coverage()
        writes = collections.Counter()
        left_out = collections.Counter()
        per_round = QUERIES // ROUNDS
        held = []  # first pages taken before a write round, finished after it
        n_held = 0
        for rnd in range(ROUNDS):
            if rnd:
                writes.update(write_round(rng, http, base, live, stored, oracle))
                gen.forget()
                # the next links of the first pages taken before the writes must give
                # the oracle's answer of before them (docs/SEARCH.md, paging)
                for type_, pairs, want_ids, first_ids, nxt in held:
                    got = list(first_ids)
                    while nxt:
                        r = http.get(nxt)
                        if r.status_code != 200:
                            got = (r.status_code, r.text[:300])
                            break
                        b = r.json()
                        got += [e["resource"]["id"] for e in b.get("entry", [])
                                if e["search"]["mode"] == "match"]
                        nxt = next((l["url"] for l in b.get("link", [])
                                    if l["relation"] == "next"), None)
                    n_held += 1
                    if got != want_ids:
                        mismatches.append("paged across writes: " +
                                          describe(type_, pairs, got, want_ids, oracle))
                held = []
            for _ in range(per_round):
                type_, pairs = gen.query()
                bug = known_bug(type_, pairs, gen)
                if bug:
                    left_out[bug] += 1
                    continue
                want = oracle.ask(op="search", type=type_, params=pairs, now=int(time.time()))
                count = 1000
                if "ids" in want and len(want["ids"]) > 3 and rng.random() < 0.05:
                    count = max(2, math.ceil(len(want["ids"]) / 4))  # paging, at most 4 pages
                pages = [] if any(k.startswith(("_include", "_revinclude")) for k, _ in pairs) \
                    else None
                try:
                    status, got, total = ids_from_server(http, base, type_, pairs, count, pages)
                except requests.ConnectionError:
                    pytest.fail(f"the server died on GET {type_}?{pairs}:\n{server.output()[-3000:]}")
                n_run += 1
                if "ids" in want:
                    cov.query(type_, pairs, params, len(want["ids"]), len(live.get(type_, {})))
                if LOG:
                    LOG.write(f"{type_}?{pairs} -> {len(want['ids']) if 'ids' in want else want}\n")
                if "error" in want:
                    n_400 += 1
                    if status != 400:
                        mismatches.append(describe(type_, pairs, (status, got), want, oracle))
                    continue
                if (rnd + 1 < ROUNDS and status == 200 and len(want["ids"]) > 3 and
                        len(held) < 40 and rng.random() < 0.1):
                    # a first page now, the rest after the next write round
                    n = max(1, len(want["ids"]) // 3)
                    r = http.get(f"{base}/{type_}",
                                 params=pairs + [("_count", str(n)), ("_elements", "id")])
                    b = r.json()
                    first_ids = [e["resource"]["id"] for e in b.get("entry", [])
                                 if e["search"]["mode"] == "match"]
                    nxt = next((l["url"] for l in b.get("link", []) if l["relation"] == "next"),
                               None)
                    held.append((type_, pairs, want["ids"], first_ids, nxt))
                if status == 200 and pages:
                    for page, inc in pages:  # what the includes add, page by page
                        w = oracle.ask(op="includes", type=type_, params=pairs, page=page)
                        n_inc += 1
                        if w.get("included") != inc:
                            extra = sorted(set(inc) - set(w.get("included") or []))[:5]
                            missing = sorted(set(w.get("included") or []) - set(inc))[:5]
                            mismatches.append(f"GET {type_}?{pairs}: included differ on a page "
                                              f"of {len(page)}: only the server's {extra}, only "
                                              f"the oracle's {missing}")
                            break
                if status != 200:
                    mismatches.append(describe(type_, pairs, (status, total), want["ids"], oracle))
                elif got != want["ids"] or total != len(got):
                    if got == want["ids"]:
                        mismatches.append(f"GET {type_}?{pairs}: total {total} for {len(got)} matches")
                    else:
                        mismatches.append(describe(type_, pairs, got, want["ids"], oracle))
                if len(mismatches) >= 15:
                    break
            if len(mismatches) >= 15:
                break
        n_every = check_everything(rng, http, base, live, oracle, mismatches)
        took = time.time() - t0
        assert n_held >= 20, f"only {n_held} queries were paged across write rounds"
        print(f"\nsearch oracle: {n_run} queries ({n_400} malformed, 400 on both sides), "
              f"{n_held} paged across write rounds, {n_inc} pages with includes compared, "
              f"{n_every} $everything compared, "
              f"{len(mismatches)} mismatches; load {t_loaded - t0:.1f} s, all {took:.1f} s\n"
              f"left out as known bugs: {dict(sorted(left_out.items()))}\n"
              f"writes between rounds: {dict(sorted(writes.items()))}\n{cov.report()}")
        assert not mismatches, "\n\n".join(mismatches)
        m = http.get(f"{server.root}/metrics").text
        folds = int(re.search(r"^hortus_index_folds_total (\d+)$", m, re.M).group(1))
        unfolded = int(re.search(r"^hortus_index_overlay_records (\d+)$", m, re.M).group(1))
        assert folds >= 3 and unfolded > 0, \
            f"the queries must have read a mix of folded and unfolded entries ({folds}, {unfolded})"
    finally:
        oracle.close()
        http.close()


def everything_from_server(http, base, comp, rid, params, count):
    """(status, matches "Type/id" in order, included per page) following next links."""
    r = http.get(f"{base}/{comp}/{rid}/$everything", params=params + [("_count", str(count)),
                                                                      ("_elements", "id")])
    if r.status_code != 200:
        return r.status_code, r.text[:300], None
    matches, included, pages = [], [], 0
    while True:
        b = r.json()
        es = b.get("entry", [])
        matches += [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in es
                    if e["search"]["mode"] == "match"]
        included.append(sorted(f"{e['resource']['resourceType']}/{e['resource']['id']}"
                               for e in es if e["search"]["mode"] == "include"))
        nxt = next((l["url"] for l in b.get("link", []) if l["relation"] == "next"), None)
        pages += 1
        if not nxt or pages > 60:
            return 200, matches, included
        r = http.get(nxt)
        if r.status_code != 200:
            return r.status_code, r.text[:300], None


def check_everything(rng, http, base, live, oracle, mismatches):
    """Patient/$everything and Encounter/$everything of random resources, with random
    _type, _since, start and end, against the oracle's definition: the matches in order
    (on one page and across pages) and what one page includes."""
    n = 0
    types = sorted(t for t in live if live[t])
    stamps = sorted(x["meta"]["lastUpdated"] for t in live.values() for x in t.values())
    for comp, k in (("Patient", 40), ("Encounter", 20)):
        ids = sorted(live.get(comp, {}))
        for rid in rng.sample(ids, min(k, len(ids))):
            params, ask = [], {}
            if rng.random() < 0.3:
                ask["types"] = rng.sample(types, rng.randint(1, 3))
                params.append(("_type", ",".join(ask["types"])))
            if rng.random() < 0.2:
                ask["since"] = rng.choice(stamps)
                params.append(("_since", ask["since"]))
            if rng.random() < 0.25:
                ask["start"] = str(rng.randint(1990, 2026))
                params.append(("start", ask["start"]))
            if rng.random() < 0.25:
                ask["end"] = f"{rng.randint(1990, 2026)}-{rng.randint(1, 12):02d}"
                params.append(("end", ask["end"]))
            want = oracle.ask(op="everything", comp=comp, id=rid, **ask)
            status, got, inc = everything_from_server(http, base, comp, rid, params, 1000)
            n += 1
            what = f"GET {comp}/{rid}/$everything?{params}"
            if status != 200:
                mismatches.append(f"{what}: {status} {got}")
            elif got != want["matches"]:
                only_s = [x for x in got if x not in set(want["matches"])][:6]
                only_o = [x for x in want["matches"] if x not in set(got)][:6]
                mismatches.append(f"{what}: matches differ: server {len(got)}, oracle "
                                  f"{len(want['matches'])}; only the server's {only_s}, only "
                                  f"the oracle's {only_o}")
            elif len(inc) == 1 and inc[0] != want["included"]:
                mismatches.append(f"{what}: included differ: only the server's "
                                  f"{sorted(set(inc[0]) - set(want['included']))[:6]}, only "
                                  f"the oracle's {sorted(set(want['included']) - set(inc[0]))[:6]}")
            elif len(got) > 3 and rng.random() < 0.3:
                count = max(1, len(got) // rng.randint(2, 5))
                status, paged, _ = everything_from_server(http, base, comp, rid, params, count)
                if paged != got:
                    mismatches.append(f"{what} with _count={count}: the pages give "
                                      f"{paged if status != 200 else len(paged)} for {len(got)}")
    return n


def write_round(rng, http, base, live, stored, oracle):
    """Updates, deletes, re-creates and new copies, each told to the oracle once the
    server acknowledged it."""
    deleted = []
    done = collections.Counter()
    types = sorted(t for t in live if live[t])
    for _ in range(WRITES_PER_ROUND):
        t = rng.choice(types)
        if not live[t]:
            continue
        ids = sorted(live[t])
        rid = rng.choice(ids)
        c = rng.random()
        if c < 0.6:
            new = mutate(rng, live[t][rid], [live[t][i] for i in rng.sample(ids, min(5, len(ids)))])
            if new is None:
                continue
            r = http.put(f"{base}/{t}/{rid}", data=json.dumps(new), headers=CT)
            if r.status_code == 200:
                stored(r.json())
                done["update"] += 1
            else:
                assert r.status_code in (400, 422), r.text  # an invalid mutation: skipped
                done["update refused"] += 1
        elif c < 0.8:
            r = http.delete(f"{base}/{t}/{rid}")
            assert r.status_code in (200, 204), r.text
            oracle.ask(op="delete", type=t, id=rid)
            deleted.append(live[t].pop(rid))
            done["delete"] += 1
        elif c < 0.9 and deleted:
            res = deleted.pop(rng.randrange(len(deleted)))
            res = {k: v for k, v in res.items() if k != "meta"}
            r = http.put(f"{base}/{res['resourceType']}/{res['id']}", data=json.dumps(res), headers=CT)
            assert r.status_code in (200, 201), r.text
            stored(r.json())
            done["re-create"] += 1
        else:
            res = {k: v for k, v in live[t][rid].items() if k != "meta"}
            res["id"] = f"copy-{rng.getrandbits(40):010x}"
            r = http.put(f"{base}/{t}/{res['id']}", data=json.dumps(res), headers=CT)
            assert r.status_code == 201, r.text
            stored(r.json())
            done["new copy"] += 1
    return done
