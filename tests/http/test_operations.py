"""$operations: $validate, and the answers for unknown operations."""
from conftest import FHIR_JSON, assert_outcome

CT = {"Content-Type": FHIR_JSON}


def test_validate_valid_resource(http, base):
    r = http.post(f"{base}/Patient/$validate", json={"resourceType": "Patient", "gender": "male"},
                  headers=CT)
    assert r.status_code == 200, r.text
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    assert all(i["severity"] not in ("error", "fatal") for i in oo["issue"])
    # nothing was stored
    h = http.get(f"{base}/Patient/_history", params={"_count": 1}).json()
    assert all("$validate" not in e["fullUrl"] for e in h.get("entry", []))


def test_validate_reports_every_issue(http, base):
    body = {"resourceType": "Patient", "birthDate": "1970-13-01", "fooBar": 1,
            "name": [{"famly": "x"}]}
    r = http.post(f"{base}/Patient/$validate", json=body, headers=CT)
    assert r.status_code == 200
    issues = [i for i in r.json()["issue"] if i["severity"] == "error"]
    exprs = {e for i in issues for e in i.get("expression", [])}
    assert {"Patient.birthDate", "Patient.fooBar", "Patient.name[0].famly"} <= exprs


def test_validate_parameters_form_and_instance_level(http, base):
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Observation", "status": "final",
                                          "code": {"text": "x"}, "id": "o1"}}]}
    r = http.post(f"{base}/Observation/$validate", json=params, headers=CT)
    assert r.status_code == 200
    assert all(i["severity"] != "error" for i in r.json()["issue"])
    r = http.post(f"{base}/Observation/o2/$validate", json=params, headers=CT)
    assert r.status_code == 200
    assert any(i["severity"] == "error" for i in r.json()["issue"])  # id differs from URL


def test_validate_refusals(http, base):
    assert_outcome(http.post(f"{base}/Patient/$validate", data=b"{", headers=CT), 400)
    assert_outcome(http.post(f"{base}/Patient/$validate",
                             json={"resourceType": "Observation"}, headers=CT), 400)
    assert_outcome(http.get(f"{base}/Patient/$validate"), 405)
    assert_outcome(http.post(f"{base}/$validate", json={"resourceType": "Patient"},
                             headers=CT), 400)


def test_unknown_operation_is_404(http, base):
    assert_outcome(http.get(f"{base}/Patient/$nope"), 404, "not-supported")
    assert_outcome(http.post(f"{base}/$nope", json={"resourceType": "Parameters",
                                                   "parameter": [{"name": "x", "valueString": "y"}]},
                             headers=CT), 404)
    assert_outcome(http.get(f"{base}/Nope/$validate"), 404)


def errors(outcome):
    return [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


def test_invariants_are_enforced(http, base):
    bad = {"resourceType": "Patient", "contact": [{"gender": "male"}]}
    r = http.post(f"{base}/Patient/$validate", json=bad, headers=CT)
    assert r.status_code == 200
    e = errors(r.json())
    assert len(e) == 1 and e[0]["code"] == "invariant" and e[0]["diagnostics"].startswith("pat-1")
    assert e[0]["expression"] == ["Patient.contact"]
    r = http.post(f"{base}/Patient", json=bad, headers=CT)
    assert_outcome(r, 400, "invariant")
    enc = {"resourceType": "Encounter", "status": "finished",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
           "period": {"start": "2024-02-01", "end": "2024-01-01"}}
    assert_outcome(http.post(f"{base}/Encounter", json=enc, headers=CT), 400, "invariant")
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": bad, "request": {"method": "POST", "url": "Patient"}}]}
    r = http.post(base, json=tx, headers=CT)
    assert_outcome(r, 400, "invariant")
    assert "pat-1" in r.json()["issue"][0]["diagnostics"]


def test_validate_modes_and_parameters_are_never_ignored(http, base):
    ct = {"Content-Type": FHIR_JSON}
    pat = {"resourceType": "Patient", "name": [{"family": "Kok"}]}
    ok = http.post(f"{base}/Patient/$validate", json=pat, headers=ct)
    assert ok.status_code == 200 and not errors(ok.json())
    # a warning of the definitions (dom-6: no narrative) is reported, not an error
    assert any(i["severity"] == "warning" and i["diagnostics"].startswith("dom-6")
               for i in ok.json()["issue"])
    # mode=update needs the id
    r = http.post(f"{base}/Patient/$validate", params={"mode": "update"}, json=pat, headers=ct)
    assert r.status_code == 200 and [i["expression"] for i in errors(r.json())] == [["id"]]
    # a profile the server does not hold, in the query or in Parameters, is an error naming
    # it: never "All OK" (profiles it holds: tests/http/test_profile.py)
    r = http.post(f"{base}/Patient/$validate", params={"profile": "http://x/sd"}, json=pat,
                  headers=ct)
    assert "http://x/sd" in assert_outcome(r, 400, "not-found")["issue"][0]["diagnostics"]
    r = http.post(f"{base}/Patient/$validate", headers=ct, json={
        "resourceType": "Parameters", "parameter": [{"name": "resource", "resource": pat},
                                                    {"name": "profile", "valueUri": "http://x"}]})
    assert_outcome(r, 400, "not-found")
    # unknown parameters and modes
    assert_outcome(http.post(f"{base}/Patient/$validate", params={"strict": "1"}, json=pat,
                             headers=ct), 400, "not-supported")
    assert_outcome(http.post(f"{base}/Patient/$validate", params={"mode": "merge"}, json=pat,
                             headers=ct), 400, "invalid")
    # mode=delete: at instance level, of a resource that exists
    pid = http.post(f"{base}/Patient", json=pat, headers=ct).json()["id"]
    r = http.post(f"{base}/Patient/{pid}/$validate", params={"mode": "delete"}, headers=ct)
    assert r.status_code == 200 and not errors(r.json())
    assert_outcome(http.post(f"{base}/Patient/nope-404/$validate", params={"mode": "delete"},
                             headers=ct), 404)
    assert_outcome(http.post(f"{base}/Patient/$validate", params={"mode": "delete"},
                             headers=ct), 400)
