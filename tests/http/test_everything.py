"""Patient/$everything and Encounter/$everything (docs/SEARCH.md 4d): what they list, how
they page over one snapshot, and the errors that name what is wrong. The differential
oracle (test_search_oracle.py) compares random ones with the definition; these pin the
cases by hand."""
import uuid

import requests

from conftest import FHIR_JSON, assert_outcome

CT = {"Content-Type": FHIR_JSON}


def put(http, base, res):
    r = http.put(f"{base}/{res['resourceType']}/{res['id']}", json=res, headers=CT)
    assert r.status_code in (200, 201), r.text
    return r.json()


def entries(bundle, mode):
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def every(http, url, **params):
    """(matches in order, included per page, totals) over every page."""
    r = http.get(url, params=params)
    assert r.status_code == 200, r.text
    matches, inc, totals = [], [], []
    while True:
        b = r.json()
        matches += entries(b, "match")
        inc.append(sorted(entries(b, "include")))
        totals.append(b.get("total"))
        nxt = next((l["url"] for l in b["link"] if l["relation"] == "next"), None)
        if not nxt:
            return matches, inc, totals
        r = http.get(nxt)
        assert r.status_code == 200, r.text


def world(http, base):
    u = uuid.uuid4().hex[:8]
    put(http, base, {"resourceType": "Organization", "id": f"org-{u}", "name": "Org"})
    put(http, base, {"resourceType": "Practitioner", "id": f"pr-{u}"})
    put(http, base, {"resourceType": "Location", "id": f"loc-{u}", "name": "Ward"})
    put(http, base, {"resourceType": "Medication", "id": f"med-{u}"})
    put(http, base, {"resourceType": "Patient", "id": f"p-{u}",
                     "managingOrganization": {"reference": f"Organization/org-{u}"},
                     "generalPractitioner": [{"reference": f"Practitioner/pr-{u}"}]})
    put(http, base, {"resourceType": "Patient", "id": f"q-{u}"})
    put(http, base, {"resourceType": "Patient", "id": f"p2-{u}",
                     "link": [{"other": {"reference": f"Patient/p-{u}"}, "type": "seealso"}]})
    put(http, base, {"resourceType": "Encounter", "id": f"e-{u}", "status": "finished",
                     "class": {"code": "AMB"}, "subject": {"reference": f"Patient/p-{u}"},
                     "period": {"start": "2020-05-01", "end": "2020-05-02"},
                     "location": [{"location": {"reference": f"Location/loc-{u}"}}]})
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    put(http, base, {**obs, "id": f"o1-{u}", "subject": {"reference": f"Patient/p-{u}"},
                     "encounter": {"reference": f"Encounter/e-{u}"},
                     "performer": [{"reference": f"Practitioner/pr-{u}"}],
                     "effectiveDateTime": "2020-05-01T10:00:00Z"})
    # in p's compartment through performer, though another patient's
    put(http, base, {**obs, "id": f"o2-{u}", "subject": {"reference": f"Patient/q-{u}"},
                     "performer": [{"reference": f"Patient/p-{u}"}]})
    put(http, base, {**obs, "id": f"o3-{u}", "subject": {"reference": f"Patient/q-{u}"}})
    put(http, base, {"resourceType": "MedicationRequest", "id": f"mr-{u}", "status": "active",
                     "intent": "order", "subject": {"reference": f"Patient/p-{u}"},
                     "medicationReference": {"reference": f"Medication/med-{u}"},
                     "authoredOn": "2023-01-01"})
    put(http, base, {"resourceType": "Condition", "id": f"c-{u}",
                     "subject": {"reference": f"Patient/p-{u}"},
                     "onsetDateTime": "2019-03-01"})
    return u


def test_everything_lists_the_compartment_and_what_it_refers_to(http, base):
    u = world(http, base)
    url = f"{base}/Patient/p-{u}/$everything"
    m, inc, totals = every(http, url, _count=1000)
    # the patient first, then the compartment's types in name order, creation order within
    assert m == [f"Patient/p-{u}", f"Condition/c-{u}", f"Encounter/e-{u}",
                 f"MedicationRequest/mr-{u}", f"Observation/o1-{u}", f"Observation/o2-{u}",
                 f"Patient/p2-{u}"]
    assert totals == [7]
    # what they refer to, outside the compartment, once; never the patient itself
    assert inc == [sorted([f"Organization/org-{u}", f"Practitioner/pr-{u}",
                           f"Location/loc-{u}", f"Medication/med-{u}", f"Patient/q-{u}"])]
    # _type keeps to the types named, matches and included alike
    m, inc, _ = every(http, url, _type="Observation,Practitioner")
    assert m == [f"Observation/o1-{u}", f"Observation/o2-{u}"]
    assert inc == [[f"Practitioner/pr-{u}"]]
    # start/end: the clinical date of each type; without one (Patient) it is kept, a
    # dated type's resource without a date is not
    m, _, _ = every(http, url, start="2020-01-01")
    assert m == [f"Patient/p-{u}", f"Encounter/e-{u}", f"MedicationRequest/mr-{u}",
                 f"Observation/o1-{u}", f"Patient/p2-{u}"]
    m, _, _ = every(http, url, end="2019-12-31")
    assert m == [f"Patient/p-{u}", f"Condition/c-{u}", f"Patient/p2-{u}"]
    m, _, _ = every(http, url, start="2020-05", end="2020-05")
    assert m == [f"Patient/p-{u}", f"Encounter/e-{u}", f"Observation/o1-{u}", f"Patient/p2-{u}"]
    # _since: what changed since then, the patient included only when it changed
    o1 = http.get(f"{base}/Observation/o1-{u}").json()
    since = put(http, base, o1)["meta"]["lastUpdated"]
    m, inc, _ = every(http, url, _since=since)
    assert m == [f"Observation/o1-{u}"]
    assert f"Patient/p-{u}" in inc[0]  # referred to, so included


def test_everything_pages_over_one_snapshot(http, base):
    u = world(http, base)
    url = f"{base}/Patient/p-{u}/$everything"
    whole, _, _ = every(http, url, _count=1000)
    r = http.get(url, params={"_count": 2}).json()
    assert r["total"] == len(whole)
    got = entries(r, "match")
    # a write between the pages neither shifts them nor shows up in them
    put(http, base, {"resourceType": "Condition", "id": f"c-new-{u}",
                     "subject": {"reference": f"Patient/p-{u}"}})
    nxt = next(l["url"] for l in r["link"] if l["relation"] == "next")
    assert "_page_t=" in nxt and f"/Patient/p-{u}/$everything?" in nxt
    pages = 1
    while nxt:
        b = http.get(nxt).json()
        assert b["total"] == len(whole)
        got += entries(b, "match")
        assert any(l["relation"] == "previous" for l in b["link"])
        nxt = next((l["url"] for l in b["link"] if l["relation"] == "next"), None)
        pages += 1
    assert got == whole and pages == 4
    now, _, _ = every(http, url, _count=1000)
    assert f"Condition/c-new-{u}" in now
    # _summary=count: the total only
    b = http.get(url, params={"_summary": "count"}).json()
    assert b["total"] == len(whole) + 1 and "entry" not in b


def test_everything_by_post_takes_a_parameters_body(http, base):
    u = world(http, base)
    url = f"{base}/Patient/p-{u}/$everything"
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "start", "valueDate": "2020-01-01"},
        {"name": "_type", "valueCode": "Observation"}, {"name": "_type", "valueCode": "Encounter"},
        {"name": "_count", "valueInteger": 1}]}
    r = http.post(url, json=body, headers=CT)
    assert r.status_code == 200, r.text
    b = r.json()
    assert entries(b, "match") == [f"Encounter/e-{u}"] and b["total"] == 2
    nxt = next(l["url"] for l in b["link"] if l["relation"] == "next")
    assert "start=2020-01-01" in nxt and "_type=Observation,Encounter" in nxt
    assert entries(http.get(nxt).json(), "match") == [f"Observation/o1-{u}"]


def test_encounter_everything(http, base):
    u = world(http, base)
    m, inc, _ = every(http, f"{base}/Encounter/e-{u}/$everything")
    assert m == [f"Encounter/e-{u}", f"Observation/o1-{u}"]
    assert inc == [sorted([f"Patient/p-{u}", f"Location/loc-{u}", f"Practitioner/pr-{u}"])]
    # the Encounter compartment as a search too
    r = http.get(f"{base}/Encounter/e-{u}/Observation").json()
    assert entries(r, "match") == [f"Observation/o1-{u}"]


def test_type_level_everything_is_every_patient_in_turn(make_server):
    s = make_server()
    http = requests.Session()
    u = world(http, s.base)
    patients, _, _ = every(http, f"{s.base}/Patient", _count=1000)
    want = []
    for p in patients:
        m, _, _ = every(http, f"{s.base}/{p}/$everything", _count=1000)
        want += m
    for count in (1000, 3, 1):
        got, inc, totals = every(http, f"{s.base}/Patient/$everything", _count=count)
        assert got == want, count  # o2 under p and under q: each patient's own list
        assert totals[0] is None
    got, _, _ = every(http, f"{s.base}/Patient/$everything", _type="Condition", _count=1)
    assert got == [f"Condition/c-{u}"]
    http.close()


def test_everything_refuses_what_it_does_not_do(http, base):
    u = world(http, base)
    url = f"{base}/Patient/p-{u}/$everything"
    assert_outcome(http.get(f"{base}/Patient/nope-{u}/$everything"), 404, "not-found")
    put(http, base, {"resourceType": "Patient", "id": f"gone-{u}"})
    assert http.delete(f"{base}/Patient/gone-{u}").status_code in (200, 204)
    assert_outcome(http.get(f"{base}/Patient/gone-{u}/$everything"), 410)
    assert_outcome(http.get(f"{base}/Observation/o1-{u}/$everything"), 400, "not-supported")
    assert_outcome(http.get(f"{base}/Encounter/$everything"), 400, "not-supported")
    oo = assert_outcome(http.get(url, params={"nope": "1"}), 400, "not-supported")
    assert "nope" in oo["issue"][0]["diagnostics"]
    for k, v in (("start", "yesterday"), ("end", "2020-13"), ("_since", "x"),
                 ("_type", "Nope"), ("_count", "-1"), ("_summary", "maybe"),
                 ("_page_t", "0"), ("_page_skip", "1")):
        oo = assert_outcome(http.get(url, params={k: v}), 400)
        assert k in oo["issue"][0]["diagnostics"] or v in oo["issue"][0]["diagnostics"], oo
    assert_outcome(http.get(url, params=[("start", "2020"), ("start", "2021")]), 400)
    assert_outcome(http.post(url, json={"resourceType": "Patient"}, headers=CT), 400)
    assert_outcome(http.post(url, data="{", headers=CT), 400)
    assert_outcome(http.post(url, json={"resourceType": "Parameters", "parameter": [
        {"name": "nope", "valueString": "1"}]}, headers=CT), 400, "not-supported")
    assert_outcome(http.post(url, json={"resourceType": "Parameters", "parameter": [
        {"name": "start", "valueDate": "soon"}]}, headers=CT), 400)
    assert http.post(url, headers=CT).status_code == 200  # no body: the URL's parameters
    # lenient: the unknown parameter is reported, not applied
    r = http.get(url, params={"nope": "1"}, headers={"Prefer": "handling=lenient"})
    assert r.status_code == 200
    out = [e for e in r.json()["entry"] if e["search"]["mode"] == "outcome"]
    assert "nope" in out[0]["resource"]["issue"][0]["diagnostics"]
