"""Search by hand, one parameter type at a time: every form, prefix and modifier of
docs/SEARCH.md on small data whose answers are known, with the edge cases (partial
dates, time zones, open periods, decimal precision, UCUM conversion, accents,
escaping, :missing, :not), updates that make a resource stop matching, and the
errors that must never be silent."""
import json
import uuid

import pytest
import requests

from conftest import FHIR_JSON, assert_outcome

CT = {"Content-Type": FHIR_JSON}
TAG = uuid.uuid4().hex[:8]  # keeps this file's data apart from the other tests'


def put(base, res):
    r = requests.put(f"{base}/{res['resourceType']}/{res['id']}", data=json.dumps(res),
                     headers=CT)
    assert r.status_code in (200, 201), r.text


def ids(base, type_, params, **kw):
    params = list(params.items()) if isinstance(params, dict) else list(params)
    params.append(("_count", 1000))
    r = requests.get(f"{base}/{type_}", params=params, **kw)
    assert r.status_code == 200, (params, r.text)
    return sorted(e["resource"]["id"] for e in r.json().get("entry", [])
                  if e["search"]["mode"] == "match")


def pid(n):
    return f"sp{TAG}{n}"


@pytest.fixture(scope="module")
def data(base):
    pats = [
        {"id": pid(1), "name": [{"family": "Ödön", "given": ["Zoë"]}], "gender": "female",
         "birthDate": "1970-03", "identifier": [{"system": "urn:mrn", "value": "A,1"}],
         "telecom": [{"system": "email", "value": "a@x.org"}], "active": True},
        {"id": pid(2), "name": [{"family": "Odon", "given": ["Piet"]}], "gender": "male",
         "birthDate": "1970-03-15", "identifier": [{"system": "urn:other", "value": "A,1"}]},
        {"id": pid(3), "name": [{"family": "van der Berg", "given": ["Anna"]}],
         "gender": "female", "birthDate": "1985", "active": False,
         "address": [{"city": "Den Haag", "line": ["Lange Voorhout 1"]}]},
        {"id": pid(4), "name": [{"family": "Müller-Lüdenscheidt"}]},
    ]
    for p in pats:
        put(base, {"resourceType": "Patient", **p})
    obs = [
        ("o1", "2024-03-01T10:00:00+01:00", 5.4, "mmol/L", "8867-4"),   # 09:00Z
        ("o2", "2024-03-01T23:30:00-05:00", 100, "mg/dL", "8867-4"),    # 04:30Z next day
        ("o3", "2024-02", 1.0, "mmol/L", "2339-0"),
        ("o4", None, 0.95, "mmol/L", "2339-0"),
        ("o5", None, 1.05, "mmol/L", "2339-0"),
    ]
    for oid, eff, val, unit, code in obs:
        o = {"resourceType": "Observation", "id": pid(oid), "status": "final",
             "code": {"coding": [{"system": "http://loinc.org", "code": code,
                                  "display": "Glucose [Moles/volume]"}], "text": "Glucose"},
             "subject": {"reference": f"Patient/{pid(1)}"},
             "valueQuantity": {"value": val, "unit": unit,
                               "system": "http://unitsofmeasure.org", "code": unit}}
        if eff:
            o["effectiveDateTime"] = eff
        put(base, o)
    put(base, {"resourceType": "Observation", "id": pid("op"), "status": "final",
               "code": {"text": "open period"}, "subject": {"reference": f"Patient/{pid(2)}"},
               "effectivePeriod": {"start": "2020-01-01"}})
    return base


def P(*ns):
    return sorted(pid(n) for n in ns)


def mine(base, type_, params, **kw):
    """ids among this file's resources only"""
    return [i for i in ids(base, type_, params, **kw) if i.startswith(f"sp{TAG}")]


# ---------------------------------------------------------------- string
def test_string_prefix_accents_and_case(data):
    b = data
    assert mine(b, "Patient", {"family": "odon"}) == P(1, 2)
    assert mine(b, "Patient", {"family": "ÖD"}) == P(1, 2)
    assert mine(b, "Patient", {"family": "Ödön"}) == P(1, 2)
    assert mine(b, "Patient", {"family:exact": "Ödön"}) == P(1)
    assert mine(b, "Patient", {"family:exact": "ödön"}) == []
    assert mine(b, "Patient", {"given": "zoe"}) == P(1)
    assert mine(b, "Patient", {"name": "zoë"}) == P(1)
    assert mine(b, "Patient", {"family": "van der"}) == P(3)
    assert mine(b, "Patient", {"family:contains": "lüden"}) == P(4)
    assert mine(b, "Patient", {"family:contains": "der b"}) == P(3)
    assert mine(b, "Patient", {"address-city": "den haag"}) == P(3)
    assert mine(b, "Patient", {"address": "voorhout"}) == []  # prefix, not contains
    assert mine(b, "Patient", {"address": "lange"}) == P(3)


def test_or_and_and(data):
    b = data
    assert mine(b, "Patient", {"family": "odon,berg"}) == P(1, 2)  # berg is no prefix
    assert mine(b, "Patient", {"family": "odon,van"}) == P(1, 2, 3)
    assert mine(b, "Patient", [("family", "odon"), ("gender", "male")]) == P(2)
    assert mine(b, "Patient", [("_id", pid(1)), ("_id", pid(2))]) == []


# ---------------------------------------------------------------- token
def test_token_forms(data):
    b = data
    assert mine(b, "Patient", {"gender": "female"}) == P(1, 3)
    assert mine(b, "Patient", {"gender:not": "female"}) == P(2, 4)  # without gender too
    assert mine(b, "Patient", {"identifier": "urn:mrn|A\\,1"}) == P(1)
    assert mine(b, "Patient", {"identifier": "A\\,1"}) == P(1, 2)
    assert mine(b, "Patient", {"identifier": "urn:other|"}) == P(2)
    assert mine(b, "Patient", {"identifier": "|A\\,1"}) == []  # no system
    assert mine(b, "Patient", {"email": "a@x.org"}) == P(1)
    assert mine(b, "Patient", {"active": "true"}) == P(1)
    assert mine(b, "Patient", {"active": "false"}) == P(3)
    assert mine(b, "Observation", {"code": "http://loinc.org|2339-0"}) == P("o3", "o4", "o5")
    assert mine(b, "Observation", {"code:text": "gluc"}) == P("o1", "o2", "o3", "o4", "o5")
    # :text is a string search of the whole text: a prefix, not any word
    assert mine(b, "Observation", {"code:text": "glucose [mol"}) == P("o1", "o2", "o3", "o4", "o5")
    assert mine(b, "Observation", {"code:text": "moles"}) == []


def test_missing(data):
    b = data
    assert mine(b, "Patient", {"gender:missing": "true"}) == P(4)
    assert mine(b, "Patient", {"gender:missing": "false"}) == P(1, 2, 3)
    assert mine(b, "Patient", {"birthdate:missing": "true"}) == P(4)


# ---------------------------------------------------------------- reference
def test_reference_forms(data, base):
    b = data
    allo = P("o1", "o2", "o3", "o4", "o5")
    assert mine(b, "Observation", {"subject": f"Patient/{pid(1)}"}) == allo
    assert mine(b, "Observation", {"subject": pid(1)}) == allo
    assert mine(b, "Observation", {"subject:Patient": pid(1)}) == allo
    assert mine(b, "Observation", {"subject:Group": pid(1)}) == []
    assert mine(b, "Observation", {"patient": pid(1)}) == allo  # single target: Patient
    assert mine(b, "Observation", {"subject": f"{base}/Patient/{pid(1)}"}) == allo
    assert mine(b, "Observation", {"subject": f"Patient/{pid(2)}"}) == P("op")


# ---------------------------------------------------------------- date
@pytest.mark.parametrize("q,want", [
    ("1970", [1, 2]), ("1970-03", [1, 2]), ("eq1970-03", [1, 2]), ("1970-03-15", [2]),
    ("ne1970-03-15", [1, 3]), ("gt1970-03-15", [1, 3]), ("ge1970-03-15", [1, 2, 3]),
    ("lt1970-03-15", [1]), ("le1970-03-15", [1, 2]), ("sa1970", [3]), ("eb1985", [1, 2]),
    ("lt1970-03-01", []), ("ge1985-06", [3]), ("ap1970-03-10", [1, 2]),
])
def test_date_prefixes_on_partial_dates(data, q, want):
    assert mine(data, "Patient", {"birthdate": q}) == P(*want)


def test_date_time_zones_and_periods(data):
    b = data
    # o1 is 2024-03-01T09:00Z, o2 is 2024-03-02T04:30Z
    assert mine(b, "Observation", {"date": "2024-03-01"}) == P("o1")
    assert mine(b, "Observation", {"date": "2024-03-02"}) == P("o2")
    assert mine(b, "Observation", {"date": "ge2024-03-01T09:00:00Z"}) == P("o1", "o2", "op")
    assert mine(b, "Observation", {"date": "gt2024-03-01T09:00:00+00:00"}) == P("o2", "op")
    assert mine(b, "Observation", {"date": "lt2024-03-01T10:00:00+01:00"}) == P("o3", "op")
    assert mine(b, "Observation", {"date": "2024-02"}) == P("o3")
    # the open period [2020-01-01, oo): ends after anything, starts before 2021
    assert mine(b, "Observation", {"date": "gt2099"}) == P("op")
    assert mine(b, "Observation", {"date": "sa2019"}) == P("o1", "o2", "o3", "op")
    assert mine(b, "Observation", {"date": "eq2020"}) == []  # not contained in 2020
    assert mine(b, "Observation", [("date", "ge2024-03-01"), ("date", "lt2024-03-02")]) == \
        P("o1", "op")


# ---------------------------------------------------------------- number / quantity
def test_quantity_precision_and_prefixes(data):
    b = data
    mmol = "|http://unitsofmeasure.org|mmol/L"
    assert mine(b, "Observation", {"value-quantity": "1" + mmol}) == P("o3", "o4", "o5")
    assert mine(b, "Observation", {"value-quantity": "1.0" + mmol}) == P("o3", "o4")  # [0.95,1.05)
    assert mine(b, "Observation", {"value-quantity": "1.00" + mmol}) == P("o3")
    # 100 mg/dL is a mass concentration: not comparable with mmol/L, so not matched
    assert mine(b, "Observation", {"value-quantity": "gt1" + mmol}) == P("o1", "o5")
    assert mine(b, "Observation", {"value-quantity": "le1" + mmol}) == P("o3", "o4")
    assert mine(b, "Observation", {"value-quantity": "ne1.0" + mmol}) == P("o1", "o5")
    assert mine(b, "Observation", {"value-quantity": "100||mg/dL"}) == P("o2")
    assert mine(b, "Observation", {"value-quantity": "5.4"}) == P("o1")


def test_quantity_ucum_conversion(data):
    b = data
    # 5.4 mmol/L is 5400 umol/L and 0.0054 mol/L
    assert mine(b, "Observation", {"value-quantity": "5400|http://unitsofmeasure.org|umol/L"}) \
        == P("o1")
    assert mine(b, "Observation", {"value-quantity": "gt5|http://unitsofmeasure.org|mmol/L"}) \
        == P("o1")
    assert mine(b, "Observation",
                {"value-quantity": "lt0.006|http://unitsofmeasure.org|mol/L"}) == \
        P("o1", "o3", "o4", "o5")
    assert_outcome(requests.get(f"{b}/Observation", params={
        "value-quantity": "5|http://unitsofmeasure.org|notaunit"}), 400)


# ---------------------------------------------------------------- updates and deletes
def test_a_resource_stops_matching_after_update_and_delete(data):
    b = data
    put(b, {"resourceType": "Patient", "id": pid(9), "name": [{"family": "Klaassen"}],
            "gender": "male"})
    assert mine(b, "Patient", {"family": "klaas"}) == P(9)
    put(b, {"resourceType": "Patient", "id": pid(9), "name": [{"family": "Pietersen"}]})
    assert mine(b, "Patient", {"family": "klaas"}) == []
    assert mine(b, "Patient", {"family": "pieters"}) == P(9)
    assert pid(9) in mine(b, "Patient", {"gender:missing": "true"})
    assert requests.delete(f"{b}/Patient/{pid(9)}").status_code == 204
    assert mine(b, "Patient", {"family": "pieters"}) == []
    assert pid(9) not in mine(b, "Patient", {"gender:missing": "true"})


# ---------------------------------------------------------------- sort and paging
def test_sort(data):
    b = data
    r = requests.get(f"{b}/Patient", params={"_id": ",".join(P(1, 2, 3, 4)),
                                             "_sort": "birthdate"}).json()
    got = [e["resource"]["id"] for e in r["entry"]]
    assert got == [pid(1), pid(2), pid(3), pid(4)]  # 1970-03 < 1970-03-15 < 1985, none last
    r = requests.get(f"{b}/Patient", params={"_id": ",".join(P(1, 2, 3, 4)),
                                             "_sort": "-birthdate"}).json()
    got = [e["resource"]["id"] for e in r["entry"]]
    # descending by the high end: 1985 > 1970-03 (ends on the 31st) > 1970-03-15
    assert got == [pid(3), pid(1), pid(2), pid(4)]
    r = requests.get(f"{b}/Patient", params={"_id": ",".join(P(1, 2, 3, 4)),
                                             "_sort": "gender,-family"}).json()
    got = [e["resource"]["id"] for e in r["entry"]]
    assert got == [pid(3), pid(1), pid(2), pid(4)]  # female (van.., odon), male, none


def test_paging_carries_every_parameter(data):
    b = data
    r = requests.get(f"{b}/Observation", params={"subject": pid(1), "_count": 2,
                                                 "_elements": "status", "_sort": "date"})
    bundle = r.json()
    assert bundle["total"] == 5
    seen = [e["resource"]["id"] for e in bundle["entry"]]
    nxt = next(l["url"] for l in bundle["link"] if l["relation"] == "next")
    for p in ("subject=", "_count=2", "_elements=status", "_sort=date", "_page_t="):
        assert p in nxt, nxt
    # a resource created meanwhile does not shift the pages
    put(b, {"resourceType": "Observation", "id": pid("late"), "status": "final",
            "code": {"text": "late"}, "subject": {"reference": f"Patient/{pid(1)}"},
            "effectiveDateTime": "1900-01-01"})
    while nxt:
        page = requests.get(nxt).json()
        seen += [e["resource"]["id"] for e in page["entry"]]
        assert all("code" not in e["resource"] for e in page["entry"])  # _elements kept
        nxt = next((l["url"] for l in page["link"] if l["relation"] == "next"), None)
    assert sorted(seen) == P("o1", "o2", "o3", "o4", "o5")
    assert seen[:2] == [pid("o3"), pid("o1")]  # by date; o4, o5 (no date) last


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("params", [
    {"birthdate": "1970-13"}, {"birthdate": "xx2020"}, {"birthdate": "yesterday"},
    {"family:below": "x"}, {"gender:exact": "male"}, {"birthdate:contains": "1"},
    {"value-quantity": "abc"}, {"value-quantity": "5|http://loinc.org|"},
    {"family": ""}, {"_count": "-1"}, {"_total": "maybe"}, {"_summary": "maybe"},
    {"_sort": "nope"}, {"name.family": "x"}, {"_include": "Patient:nope"},
    {"subject:identifier": "|"}, {"gender:missing": "maybe"}, {"identifier": "|"},
])
def test_bad_parameters_are_400_naming_them(data, params):
    type_ = "Observation" if any(k.startswith(("value", "subject")) for k in params) else "Patient"
    r = requests.get(f"{data}/{type_}", params=params)
    oo = assert_outcome(r, 400)
    name = next(iter(params)).split(":")[0].split(".")[0]
    assert name in oo["issue"][0]["diagnostics"], oo


def test_lenient_keeps_bad_values_an_error(data):
    r = requests.get(f"{data}/Patient", params={"birthdate": "1970-13"},
                     headers={"Prefer": "handling=lenient"})
    assert_outcome(r, 400)


def test_post_search_is_the_same_as_get(data):
    b = data
    r = requests.post(f"{b}/Patient/_search", data="family=odon&gender=male",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [pid(2)]
    r = requests.post(f"{b}/Patient/_search?gender=male", data="family=od%C3%B6n",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [pid(2)]
    assert_outcome(requests.post(f"{b}/Patient/_search", data="family=%zz",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"}),
                   400)
    assert_outcome(requests.post(f"{b}/Patient/_search", data="{}", headers=CT), 415)


def test_compartment_search(data):
    b = data
    allo = P("o1", "o2", "o3", "o4", "o5")
    r = requests.get(f"{b}/Patient/{pid(1)}/Observation", params={"_count": 100})
    assert r.status_code == 200, r.text
    got = sorted(e["resource"]["id"] for e in r.json()["entry"])
    assert [g for g in got if g != pid("late")] == allo  # "late": made by the paging test
    r = requests.get(f"{b}/Patient/{pid(1)}/Observation",
                     params={"code": "http://loinc.org|8867-4"}).json()
    assert sorted(e["resource"]["id"] for e in r["entry"]) == P("o1", "o2")
    self_link = next(l["url"] for l in r["link"] if l["relation"] == "self")
    assert f"/Patient/{pid(1)}/Observation?" in self_link
    assert "entry" not in requests.get(f"{b}/Patient/{pid(3)}/Observation").json()
    assert_outcome(requests.get(f"{b}/Patient/{pid(1)}/Organization"), 400, "not-supported")
    assert_outcome(requests.get(f"{b}/Device/d1/Observation"), 400, "not-supported")
    assert_outcome(requests.get(f"{b}/Encounter/e1/Patient"), 400, "not-supported")
    r = requests.get(f"{b}/Encounter/e1/Observation")  # the Encounter compartment: none here
    assert r.status_code == 200 and "entry" not in r.json(), r.text
    assert_outcome(requests.get(f"{b}/Patient/{pid(1)}/Observation", params={"nope": "1"}), 400)


def test_system_search(data):
    b = data
    r = requests.get(b, params={"_type": "Patient,Observation", "_id": f"{pid(1)},{pid('o1')}"})
    assert r.status_code == 200, r.text
    bundle = r.json()
    got = sorted((e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"])
    assert got == [("Observation", pid("o1")), ("Patient", pid(1))]
    assert bundle["total"] == 2
    # paging across the types: one per page, every page carries _type
    r = requests.get(b, params={"_type": "Patient,Observation",
                                "_id": f"{pid(1)},{pid(2)},{pid('o1')}", "_count": 1}).json()
    seen = [e["resource"]["id"] for e in r["entry"]]
    nxt = next(l["url"] for l in r["link"] if l["relation"] == "next")
    assert "_type=Patient,Observation" in nxt or "_type=Patient%2CObservation" in nxt, nxt
    while nxt:
        page = requests.get(nxt).json()
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        nxt = next((l["url"] for l in page["link"] if l["relation"] == "next"), None)
    assert sorted(seen) == P(1, 2, "o1")
    # a parameter every type has, without _type
    lu = requests.get(f"{b}/Patient/{pid(1)}").json()["meta"]["lastUpdated"]
    r = requests.get(b, params={"_lastUpdated": lu, "_id": pid(1)})
    assert r.status_code == 200, r.text
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [pid(1)]
    # what does not apply to every type is a 400, and so is an unknown type
    assert_outcome(requests.get(b, params={"family": "odon"}), 400)
    assert_outcome(requests.get(b, params={"_type": "Patient,Nope"}), 400)
    assert_outcome(requests.get(b, params={"_type": "Patient,Observation", "family": "x"}), 400)
    assert_outcome(requests.get(b, params={"_type": "Patient", "_sort": "_id"}), 400)


@pytest.mark.parametrize("cheap,costly", [
    (("subject", "PID1"), ("date", "ge2024-03-01")),
    (("subject", "PID1"), ("date", "lt2024-03-02T00:00:00Z")),
    (("subject", "PID1"), ("value-quantity", "gt1|http://unitsofmeasure.org|mmol/L")),
    (("subject", "PID1"), ("value-quantity", "le1")),
    (("code", "http://loinc.org|2339-0"), ("value-quantity", "ap1")),
    (("subject", "PID1"), ("code", "http://loinc.org|")),
    (("subject", "PID1"), ("code:not", "8867-4")),
    (("subject", "PID1"), ("date:missing", "true")),
    (("subject", "PID1"), ("code:text", "gluc")),
])
def test_a_range_clause_on_few_candidates_agrees_with_its_scan(data, cheap, costly):
    """With a selective clause, a range clause is checked on each candidate rather than
    scanned: both ways must give the same answer."""
    b = data
    cheap = (cheap[0], cheap[1].replace("PID1", pid(1)))
    both = mine(b, "Observation", [cheap, costly])
    alone = set(mine(b, "Observation", [costly]))
    sel = set(mine(b, "Observation", [cheap]))
    assert both == sorted(alone & sel), (both, alone, sel)
    assert both  # every case above finds something


@pytest.mark.parametrize("sort", ["birthdate", "-birthdate", "family", "-family", "gender"])
def test_sort_ties_keep_creation_order_across_pages(data, sort):
    b = data
    fam = f"tie{TAG}"
    for i, (bd, fx) in enumerate([("1999-01-01", "a"), ("1999-01-01", "b"), ("1998", "a"),
                                  ("1999-01-01", "a"), (None, "c")]):
        p = {"resourceType": "Patient", "id": pid(f"t{i}"), "name": [{"family": fam + fx}],
             "gender": "other"}
        if bd:
            p["birthDate"] = bd
        put(b, p)
    params = {"family": fam, "_sort": sort}
    whole = [e["resource"]["id"] for e in
             requests.get(f"{b}/Patient", params={**params, "_count": 100}).json()["entry"]]
    assert sorted(whole) == sorted(pid(f"t{i}") for i in range(5))
    paged, url = [], None
    r = requests.get(f"{b}/Patient", params={**params, "_count": 1}).json()
    while True:
        paged += [e["resource"]["id"] for e in r.get("entry", [])]
        url = next((l["url"] for l in r["link"] if l["relation"] == "next"), None)
        if not url:
            break
        r = requests.get(url).json()
    assert paged == whole
    t = [pid(f"t{i}") for i in range(5)]
    want = {"birthdate": [t[2], t[0], t[1], t[3], t[4]],
            "-birthdate": [t[0], t[1], t[3], t[2], t[4]],
            "family": [t[0], t[2], t[3], t[1], t[4]],
            "-family": [t[4], t[1], t[0], t[2], t[3]],
            "gender": t}[sort]
    assert whole == want


def test_identifier_of_type(data):
    b = data
    put(b, {"resourceType": "Patient", "id": pid("ot"), "identifier": [{
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                             "code": "MR"}]}, "system": "urn:h", "value": "77"}]})
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
    assert mine(b, "Patient", {"identifier:of-type": f"{v2}|MR|77"}) == P("ot")
    assert mine(b, "Patient", {"identifier:of-type": f"{v2}|MR|78"}) == []
    assert mine(b, "Patient", {"identifier:of-type": f"{v2}|SS|77"}) == []
    assert_outcome(requests.get(f"{b}/Patient", params={"identifier:of-type": "MR|77"}), 400)
    # gender is a token too: :of-type is allowed there and finds nothing
    assert mine(b, "Patient", {"gender:of-type": "a|b|c"}) == []


def test_canonical_with_and_without_its_version(base):
    """url|version finds that version only; the url alone finds every version."""
    q = "http://x.org/fhir/Questionnaire/q"
    for i, ref in enumerate([q + "|2", q + "|3", q]):
        put(base, {"resourceType": "QuestionnaireResponse", "id": f"qr{TAG}{i}",
                   "status": "completed", "questionnaire": ref})
    found = lambda v: [i for i in ids(base, "QuestionnaireResponse", {"questionnaire": v})  # noqa: E731
                       if i.startswith(f"qr{TAG}")]
    assert found(q + "|2") == [f"qr{TAG}0"]
    assert found(q + "|3") == [f"qr{TAG}1"]
    assert found(q + "|4") == []
    assert found(q) == [f"qr{TAG}0", f"qr{TAG}1", f"qr{TAG}2"]
    assert_outcome(requests.get(f"{base}/QuestionnaireResponse", params={"questionnaire": q + "|"}),
                   400)


def test_a_contained_subject_is_present_but_no_one_elses(base):
    """A reference to a contained resource ("#id") makes the parameter present
    (:missing=false) without matching any resource on the server."""
    oid = f"cont{TAG}"
    put(base, {"resourceType": "Observation", "id": oid, "status": "final",
               "contained": [{"resourceType": "Patient", "id": "p", "name": [{"family": "X"}]}],
               "code": {"coding": [{"system": "urn:x", "code": f"c{TAG}"}]},
               "subject": {"reference": "#p"}})
    mine_ = lambda p: ids(base, "Observation", {"code": f"urn:x|c{TAG}", **p})  # noqa: E731
    assert mine_({"subject:missing": "false"}) == [oid]
    assert mine_({"subject:missing": "true"}) == []
    assert mine_({"subject": "Patient/p"}) == []
    assert mine_({"patient": "#p"}) == [oid]


def test_a_large_clause_is_checked_on_the_candidates_of_a_small_one(data):
    """1,100 Observations share a code, two of them a subject: the code's clause has more
    matches than the subject's candidates allow a scan of (8 per candidate, at least
    1,024), so it is checked on each candidate instead; the answer must not change."""
    b = data
    code = f"big{TAG}"
    entries = [{"resource": {"resourceType": "Observation", "status": "final",
                             "code": {"coding": [{"system": "urn:t", "code": code}]},
                             "subject": {"reference": f"Patient/{pid(3 if i in (5, 900) else 2)}"}},
                "request": {"method": "POST", "url": "Observation"}} for i in range(1100)]
    r = requests.post(b, data=json.dumps({"resourceType": "Bundle", "type": "transaction",
                                          "entry": entries}), headers=CT)
    assert r.status_code == 200, r.text[:300]
    def count(params):
        r = requests.get(f"{b}/Observation", params={**params, "_summary": "count"})
        assert r.status_code == 200, r.text
        return r.json()["total"]
    assert count({"code": f"urn:t|{code}"}) == 1100
    assert count({"subject": pid(3), "code": f"urn:t|{code}"}) == 2
    assert count({"subject": pid(2), "code": f"urn:t|{code}"}) == 1098
    assert count({"patient": pid(3), "code": f"urn:t|{code}", "status": "final"}) == 2
    assert count({"subject": pid(3), "code": f"urn:t|{code},urn:t|nothing"}) == 2


def test_a_large_clause_is_probed_per_candidate(base):
    """subject=P&code=X where X has over 1024 matches: the code clause is not scanned
    past 8 times the candidates (SRCH_FILTER_MAX path) but decided by a key lookup per
    candidate; deletes and updates since must count there too."""
    code, pat = f"probe{TAG}", f"probep{TAG}"
    put(base, {"resourceType": "Patient", "id": pat})
    entry = []
    for i in range(1100):
        o = {"resourceType": "Observation", "id": f"{code}-{i}", "status": "final",
             "code": {"coding": [{"system": "urn:probe", "code": code if i % 50 else "other"}]}}
        if i % 100 == 0 or i in (7, 8):
            o["subject"] = {"reference": f"Patient/{pat}"}
        entry.append({"resource": o, "request": {"method": "PUT", "url": f"Observation/{o['id']}"}})
    r = requests.post(base, data=json.dumps({"resourceType": "Bundle", "type": "batch",
                                             "entry": entry}), headers=CT)
    assert r.status_code == 200, r.text[:300]
    q = {"subject": f"Patient/{pat}", "code": f"urn:probe|{code}"}
    # i % 100 == 0 are i % 50 == 0 too: code "other"; so only 7 and 8 match
    assert ids(base, "Observation", q) == sorted([f"{code}-7", f"{code}-8"])
    assert requests.delete(f"{base}/Observation/{code}-7").status_code in (200, 204)
    o = {"resourceType": "Observation", "id": f"{code}-100", "status": "final",
         "code": {"coding": [{"system": "urn:probe", "code": code}]},
         "subject": {"reference": f"Patient/{pat}"}}
    put(base, o)  # was "other", now matches
    assert ids(base, "Observation", q) == sorted([f"{code}-8", f"{code}-100"])
    q2 = {**q, "code": f"urn:probe|{code},urn:probe|other"}  # OR of two whole keys
    assert len(ids(base, "Observation", q2)) == 13 - 1  # 13 with the subject, 7 deleted


def test_timing_dates_are_its_events_and_its_bounds(base):
    """A Timing is searched by its events and by the period its repetitions fall in
    (repeat.boundsPeriod); ServiceRequest.occurrence takes one."""
    sid = f"tim{TAG}"
    put(base, {"resourceType": "Patient", "id": "x"})
    put(base, {"resourceType": "ServiceRequest", "id": sid, "status": "active",
               "intent": "order", "subject": {"reference": "Patient/x"},
               "occurrenceTiming": {"event": ["2023-01-15"],
                                    "repeat": {"boundsPeriod": {"start": "2024-05-01",
                                                                "end": "2024-05-31"},
                                               "frequency": 1, "period": 1,
                                               "periodUnit": "d"}}})
    found = lambda d: sid in ids(base, "ServiceRequest", {"occurrence": d, "_id": sid})  # noqa: E731
    assert found("2023-01-15"), "the event"
    assert found("2024-05"), "the bounds: May 2024 lies within them"
    assert found("ge2024-05-20") and found("sa2023-06-01")
    assert not found("2024-07"), "neither an event nor within the bounds"
    assert not found("2023-06")


# ---------------------------------------------------------------- composite
@pytest.fixture(scope="module")
def bp(base):
    """Two blood pressures as components, one systolic on its own, one coded result."""
    def comp(code, v):
        return {"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": {"value": v, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                                  "code": "mm[Hg]"}}
    rows = [
        {"id": pid("bp1"), "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
         "component": [comp("8480-6", 150), comp("8462-4", 90)]},
        {"id": pid("bp2"), "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
         "component": [comp("8480-6", 110), comp("8462-4", 70)]},
        {"id": pid("bp3"), "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
         "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                           "code": "mm[Hg]"}},
        {"id": pid("bp4"), "code": {"coding": [{"system": "http://loinc.org", "code": "5778-6"}]},
         "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "371244009"}]},
         "effectiveDateTime": "2024-05-01"},
        {"id": pid("bp5"), "code": {"coding": [{"system": "http://loinc.org", "code": "5778-6"}]},
         "valueString": "Straße " + "x" * 70 + " one"},
        {"id": pid("bp6"), "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
         "valueDateTime": "2024-05-01T10:00:00Z"},
    ]
    for o in rows:
        put(base, {"resourceType": "Observation", "status": "final", **o})
    return base


@pytest.mark.parametrize("q,want", [
    # one component matches both parts; a code and a value of two components do not meet
    ({"component-code-value-quantity": "http://loinc.org|8480-6$gt140"}, ["bp1"]),
    ({"component-code-value-quantity": "8480-6$lt100"}, []),
    ({"component-code-value-quantity": "8462-4$lt100"}, ["bp1", "bp2"]),
    ({"component-code-value-quantity": "8462-4$le70,8480-6$ge150"}, ["bp1", "bp2"]),
    # UCUM: 20 kPa is 150 mmHg
    ({"component-code-value-quantity": "8480-6$20|http://unitsofmeasure.org|kPa"}, ["bp1"]),
    ({"component-code-value-quantity": "8480-6$150||mmHg"}, ["bp1"]),
    ({"code-value-quantity": "8480-6$120"}, ["bp3"]),
    ({"code-value-quantity": "http://loinc.org|$gt100"}, ["bp3"]),
    # combo: the Observation or any of its components
    ({"combo-code-value-quantity": "8480-6$gt100"}, ["bp1", "bp2", "bp3"]),
    ({"code-value-concept": "5778-6$http://snomed.info/sct|371244009"}, ["bp4"]),
    ({"code-value-concept": "5778-6$http://snomed.info/sct|"}, ["bp4"]),
    ({"code-value-concept": "5778-6$urn:x|371244009"}, []),
    # strings: prefix, accents and case folded; cut at 64 bytes in a composite
    ({"code-value-string": "5778-6$strasse"}, ["bp5"]),
    ({"code-value-string": "5778-6$STRASSE xxxx"}, ["bp5"]),
    ({"code-value-string": "5778-6$nope"}, []),
    ({"code-value-date": "29463-7$2024-05"}, ["bp6"]),
    ({"code-value-date": "29463-7$gt2024-05-01T10:00:00Z"}, []),
    ({"code-value-date": "29463-7$ge2024-05-01T10:00:00Z"}, ["bp6"]),
    ({"code-value-quantity:missing": "false", "code": "8480-6"}, ["bp3"]),
])
def test_composite_parts_meet_in_one_value(bp, q, want):
    assert mine(bp, "Observation", q) == P(*want)


def test_composite_errors_name_the_parameter(bp):
    for v, words in [("8480-6", "2 parts"), ("8480-6$120$3", "2 parts"), ("8480-6$", "empty"),
                     ("8480-6$abc", "not a number"), ("|$120", "alone")]:
        r = requests.get(f"{bp}/Observation", params={"code-value-quantity": v})
        oo = assert_outcome(r, 400)
        d = oo["issue"][0]["diagnostics"]
        assert "code-value-quantity" in d and words in d, (v, d)
    r = requests.get(f"{bp}/Observation", params={"code-value-quantity:exact": "8480-6$1"})
    assert_outcome(r, 400)
    r = requests.get(f"{bp}/Observation", params={"_sort": "code-value-quantity"})
    assert_outcome(r, 400)


def test_composite_follows_updates(bp):
    o = {"resourceType": "Observation", "id": pid("bp3"), "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
         "valueQuantity": {"value": 95, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
    put(bp, o)
    assert mine(bp, "Observation", {"code-value-quantity": "8480-6$gt100"}) == []
    assert mine(bp, "Observation", {"code-value-quantity": "8480-6$95"}) == P("bp3")


def test_document_relationship_is_code_then_target(base):
    """R4 names the definitions of DocumentReference's relationship components the
    wrong way round; the parts follow the expressions: relation code, then target."""
    a, b = f"docA{TAG}", f"docB{TAG}"
    put(base, {"resourceType": "DocumentReference", "id": a, "status": "current",
               "content": [{"attachment": {"contentType": "text/plain"}}]})
    put(base, {"resourceType": "DocumentReference", "id": b, "status": "current",
               "relatesTo": [{"code": "replaces", "target": {"reference": f"DocumentReference/{a}"}}],
               "content": [{"attachment": {"contentType": "text/plain"}}]})
    found = ids(base, "DocumentReference", {"relationship": f"replaces$DocumentReference/{a}"})
    assert found == [b]
    assert ids(base, "DocumentReference", {"relationship": f"appends$DocumentReference/{a}"}) == []


def test_within_one_patient_and_its_overflow(base):
    """A patient's clause with token and date clauses reads the entries within that
    patient (docs/SEARCH.md 4a); an entry too long to repeat there (a z key) makes the
    search of that patient take the general plan: the same answers either way."""
    pat = f"pw{TAG}" + "p" * 54  # 64 characters, the longest id
    put(base, {"resourceType": "Patient", "id": pat})
    long_sys, long_code = "urn:x:" + "s" * 194, "c" * 200  # with the id, over a key

    def obs(oid, code, system, date):
        put(base, {"resourceType": "Observation", "id": oid, "status": "final",
                   "code": {"coding": [{"system": system, "code": code}]},
                   "subject": {"reference": f"Patient/{pat}"}, "effectiveDateTime": date})
    obs(f"pw1{TAG}", "8867-4", "http://loinc.org", "2021-01-01")
    obs(f"pw2{TAG}", "8867-4", "http://loinc.org", "2019-06-01")
    obs(f"pw3{TAG}", "2339-0", "http://loinc.org", "2022-01-01")
    q = {"subject": f"Patient/{pat}", "code": "http://loinc.org|8867-4", "date": "ge2020"}
    assert ids(base, "Observation", q) == [f"pw1{TAG}"]
    assert ids(base, "Observation", {**q, "date": "lt2020"}) == [f"pw2{TAG}"]
    assert ids(base, "Observation", {"patient": pat, "code": "8867-4,2339-0",
                                     "date": "ge2020"}) == sorted([f"pw1{TAG}", f"pw3{TAG}"])
    r = requests.get(f"{base}/Patient/{pat}/Observation", params={"code": "2339-0"})
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [f"pw3{TAG}"]
    obs(f"pw4{TAG}", long_code, long_sys, "2021-05-05")  # too long within the patient
    assert ids(base, "Observation", q) == [f"pw1{TAG}"]
    assert ids(base, "Observation", {"subject": f"Patient/{pat}", "code": f"{long_sys}|{long_code}"}) \
        == [f"pw4{TAG}"]
    assert ids(base, "Observation", {"subject": f"Patient/{pat}", "date": "2021"}) \
        == sorted([f"pw1{TAG}", f"pw4{TAG}"])


def test_a_patients_date_range_is_checked_on_the_few_candidates_of_its_code(base):
    """A patient with many resources, a code that leaves few candidates: the date clause
    is then checked on each candidate's entries instead of scanning the patient's whole
    range (docs/SEARCH.md 4a), and so is the patient's own clause -- a resource that is
    in the patient's compartment through another parameter (performer) is no match of
    subject. The answers are those of the scan."""
    pat, other = f"pc{TAG}", f"pco{TAG}"
    put(base, {"resourceType": "Patient", "id": pat})
    put(base, {"resourceType": "Patient", "id": other})

    def obs(oid, code, date, subject=pat, performer=None):
        o = {"resourceType": "Observation", "id": oid, "status": "final",
             "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
             "subject": {"reference": f"Patient/{subject}"}, "effectiveDateTime": date}
        if performer:
            o["performer"] = [{"reference": f"Patient/{performer}"}]
        put(base, o)
    for i in range(120):  # the bulk: another code, dates over five years
        obs(f"pcb{i}{TAG}", "29463-7", f"{2016 + i % 5}-0{1 + i % 9}-1{i % 10}")
    obs(f"pc1{TAG}", "8867-4", "2021-03-01")
    obs(f"pc2{TAG}", "8867-4", "2018-03-01")
    obs(f"pc3{TAG}", "8867-4", "2023-07-01T10:00:00Z")
    # in pat's compartment as performer, subject another patient: never a match of subject
    obs(f"pc4{TAG}", "8867-4", "2021-03-01", subject=other, performer=pat)
    code = "http://loinc.org|8867-4"
    for date, want in (("ge2020", ["pc1", "pc3"]), ("lt2020", ["pc2"]), ("2021", ["pc1"]),
                       ("ge2030", []), ("ne2021-03-01", ["pc2", "pc3"]),
                       ("sa2019", ["pc1", "pc3"])):
        got = ids(base, "Observation", {"subject": f"Patient/{pat}", "code": code, "date": date})
        assert got == sorted(f"{w}{TAG}" for w in want), (date, got)
        # the same through `patient` and the compartment search
        assert ids(base, "Observation", {"patient": pat, "code": code, "date": date}) == got
        r = requests.get(f"{base}/Patient/{pat}/Observation", params={"code": code, "date": date})
        comp = sorted(e["resource"]["id"] for e in r.json().get("entry", []))
        want_comp = sorted(got + ([f"pc4{TAG}"] if date in ("ge2020", "2021", "sa2019") else []))
        assert comp == want_comp, (date, comp)
    # and the other patient: pc4 is its subject's
    assert ids(base, "Observation", {"subject": f"Patient/{other}", "code": code,
                                     "date": "ge2020"}) == [f"pc4{TAG}"]


def test_a_code_without_system_across_its_systems(base):
    """code=X is spelled out into the systems X has (docs/SEARCH.md 4): a resource with X
    in two systems is one match, totals and sorted pages included."""
    code = f"xs{TAG}"
    rows = [("a", ["urn:a", "urn:b"], "2021"), ("b", ["urn:a"], "2020"), ("c", ["urn:b"], "2022"),
            ("d", [None], "2019")]
    for oid, systems, date in rows:
        put(base, {"resourceType": "Observation", "id": f"xs{oid}{TAG}", "status": "final",
                   "code": {"coding": [{"code": code, **({"system": s} if s else {})}
                                       for s in systems]}, "effectiveDateTime": date})
    want = [f"xs{o}{TAG}" for o in "abcd"]
    assert ids(base, "Observation", {"code": code}) == want
    r = requests.get(f"{base}/Observation", params={"code": code, "_summary": "count"}).json()
    assert r["total"] == 4
    r = requests.get(f"{base}/Observation", params={"code": code, "_sort": "date", "_count": 2}).json()
    assert r["total"] == 4 and [e["resource"]["id"] for e in r["entry"]] == [f"xsd{TAG}", f"xsb{TAG}"]
    assert ids(base, "Observation", {"code": f"|{code}"}) == [f"xsd{TAG}"]
    assert ids(base, "Observation", {"code:not": code, "_id": f"xsa{TAG},xsd{TAG}"}) == []


def test_near(base):
    """Location?near=latitude|longitude|distance|unit: great-circle distance from a point
    (km when no unit, 1 km when no distance), OR over points, :missing, chains; checked
    against the distances this test computes itself."""
    import math
    import random
    places = {"utrecht": (52.0907, 5.1214), "amsterdam": (52.3676, 4.9041),
              "rotterdam": (51.9244, 4.4777), "groningen": (53.2194, 6.5665),
              "maastricht": (50.8514, 5.6910), "east": (0.0, 179.9995),
              "west": (0.0, -179.9995), "pole": (89.9999, 10.0)}
    lid = {k: f"loc-{k}-{TAG}" for k in places}
    for k, (lat, lon) in places.items():
        put(base, {"resourceType": "Location", "id": lid[k], "name": f"{TAG} {k}",
                   "position": {"latitude": lat, "longitude": lon}})
    put(base, {"resourceType": "Location", "id": f"loc-none-{TAG}", "name": f"{TAG} none"})
    mine = {**{v: k for k, v in lid.items()}, f"loc-none-{TAG}": "none"}

    def near(value, **more):
        got = ids(base, "Location", {"near": value, "name": TAG, **more})
        return sorted(mine[i] for i in got)

    def dist(a, b):
        r = math.pi / 180
        h = (math.sin((b[0] - a[0]) * r / 2) ** 2 +
             math.cos(a[0] * r) * math.cos(b[0] * r) * math.sin((b[1] - a[1]) * r / 2) ** 2)
        return 2 * 6371008.8 * math.asin(math.sqrt(min(1, h)))

    u = places["utrecht"]
    assert near("52.0907|5.1214|1|km") == ["utrecht"]
    assert near("52.0907|5.1214") == ["utrecht"]  # 1 km when no distance
    assert near("52.0907|5.1214|40") == ["amsterdam", "utrecht"]  # km when no unit
    assert near("52.0907|5.1214|40000|m") == ["amsterdam", "utrecht"]
    assert near(f"52.0907|5.1214|{dist(u, places['rotterdam']) / 1609.344 + 0.01}|[mi_i]") == \
        ["amsterdam", "rotterdam", "utrecht"]
    assert near("52.0907|5.1214|1|km,53.2194|6.5665|1|km") == ["groningen", "utrecht"]
    assert near("0|180|1|km") == ["east", "west"]  # across the antimeridian
    assert near("90|-170|1|km") == ["pole"]  # every longitude meets at the pole
    missing = sorted(mine[i] for i in ids(base, "Location", {"near:missing": "true", "name": TAG}))
    assert missing == ["none"]
    rng = random.Random(5)
    for _ in range(60):
        p = (rng.uniform(50.5, 53.5), rng.uniform(3.5, 7.2))
        d = rng.uniform(1, 250) * 1000
        want = sorted(k for k, q in places.items() if dist(p, q) <= d)
        if any(abs(dist(p, q) - d) < 1 for q in places.values()):
            continue  # on the edge: rounding may decide
        assert near(f"{p[0]:.6f}|{p[1]:.6f}|{d:.3f}|m") == want, (p, d)
    # through a chain: the encounters at a location near a point
    enc = f"enc-near-{TAG}"
    put(base, {"resourceType": "Encounter", "id": enc, "status": "finished",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                         "code": "AMB"},
               "location": [{"location": {"reference": f"Location/{lid['maastricht']}"}}]})
    assert ids(base, "Encounter", {"location.near": "50.85|5.69|2|km", "_id": enc}) == [enc]
    assert ids(base, "Encounter", {"location.near": "52.09|5.12|2|km", "_id": enc}) == []
    # refused, never ignored
    for bad, what in (("abc", "position"), ("91|0", "latitude"), ("52|181", "longitude"),
                      ("52|5|1|kg", "unit"), ("52|5|-1", "distance"), ("52", "position"),
                      ("52|5||km", "unit")):
        r = requests.get(f"{base}/Location", params={"near": bad})
        assert_outcome(r, 400)
        assert what in r.json()["issue"][0]["diagnostics"], (bad, r.text)
    assert_outcome(requests.get(f"{base}/Location", params={"_sort": "near"}), 400)
    cap = requests.get(f"{base}/metadata").json()["rest"][0]["resource"]
    loc = next(x for x in cap if x["type"] == "Location")
    assert any(p["name"] == "near" and p["type"] == "special" for p in loc["searchParam"])
