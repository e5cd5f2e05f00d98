"""Referential integrity (docs/REST.md): a write may not name a resource of this server that
does not exist (422), a delete may not leave references to what it deletes (409, naming the
referrers), both race-free; `--referential-integrity off` turns both off."""
import threading
import uuid

import requests

from conftest import FHIR_JSON, assert_outcome

CT = {"Content-Type": FHIR_JSON}


def obs(subject, **extra):
    return {"resourceType": "Observation", "status": "final", "code": {"text": "t"},
            "subject": {"reference": subject}, **extra}


def new_patient(http, base):
    r = http.post(f"{base}/Patient", json={"resourceType": "Patient"}, headers=CT)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def tx(http, base, *entries, type_="transaction"):
    return http.post(base, json={"resourceType": "Bundle", "type": type_,
                                 "entry": list(entries)}, headers=CT)


def test_a_write_names_only_what_exists(http, base):
    pid = new_patient(http, base)
    missing = f"Patient/{uuid.uuid4()}"
    r = http.post(f"{base}/Observation", json=obs(missing), headers=CT)
    assert_outcome(r, 422, "processing")
    issue = r.json()["issue"][0]
    assert missing in issue["diagnostics"] and "nothing" in issue["diagnostics"]
    assert issue["expression"] == ["Observation.subject.reference"]
    # the same under this server's base, in an extension, in a contained resource
    assert_outcome(http.post(f"{base}/Observation", json=obs(f"{base}/{missing}"), headers=CT),
                   422)
    ext = obs(f"Patient/{pid}", extension=[{"url": "http://example.org/x",
                                            "valueReference": {"reference": missing}}])
    r = http.post(f"{base}/Observation", json=ext, headers=CT)
    assert_outcome(r, 422)
    assert r.json()["issue"][0]["expression"] == ["Observation.extension.valueReference.reference"]
    cont = obs("#c1", contained=[{"resourceType": "Group", "id": "c1", "type": "person",
                                  "actual": True, "member": [{"entity": {"reference": missing}}]}])
    r = http.post(f"{base}/Observation", json=cont, headers=CT)
    assert_outcome(r, 422)
    assert r.json()["issue"][0]["expression"][0].startswith("Observation.contained[0]")
    # what may be named: an existing resource, one of its versions, a contained resource,
    # another server's URL, a urn; not a version that does not exist
    for ref in (f"Patient/{pid}", f"Patient/{pid}/_history/1", f"{base}/Patient/{pid}",
                "http://elsewhere.example.org/fhir/Patient/1", "urn:oid:1.2.3"):
        r = http.post(f"{base}/Observation", json=obs(ref), headers=CT)
        assert r.status_code == 201, (ref, r.text)
    assert_outcome(http.post(f"{base}/Observation", json=obs(f"Patient/{pid}/_history/9"),
                             headers=CT), 422)
    ok = obs("#c1", contained=[{"resourceType": "Group", "id": "c1", "type": "person",
                                "actual": True, "member": [{"entity": {"reference": f"Patient/{pid}"}}]}])
    assert http.post(f"{base}/Observation", json=ok, headers=CT).status_code == 201
    # a deleted resource is not there any more; a resource may name itself
    gone = new_patient(http, base)
    assert http.delete(f"{base}/Patient/{gone}").status_code == 204
    r = http.post(f"{base}/Observation", json=obs(f"Patient/{gone}"), headers=CT)
    assert_outcome(r, 422)
    assert "deleted" in r.json()["issue"][0]["diagnostics"]
    me = str(uuid.uuid4())
    r = http.put(f"{base}/Patient/{me}", json={"resourceType": "Patient", "id": me, "link": [
        {"other": {"reference": f"Patient/{me}"}, "type": "seealso"}]}, headers=CT)
    assert r.status_code == 201, r.text
    # an update and a patch are held to it too
    oid = http.post(f"{base}/Observation", json=obs(f"Patient/{pid}"), headers=CT).json()["id"]
    assert_outcome(http.put(f"{base}/Observation/{oid}", json={**obs(missing), "id": oid},
                            headers=CT), 422)
    patch = [{"op": "replace", "path": "/subject/reference", "value": missing}]
    assert_outcome(http.patch(f"{base}/Observation/{oid}", json=patch,
                              headers={"Content-Type": "application/json-patch+json"}), 422)
    assert http.get(f"{base}/Observation/{oid}").json()["subject"]["reference"] == f"Patient/{pid}"


def test_a_delete_leaves_no_reference_behind(http, base):
    pid = new_patient(http, base)
    o1 = http.post(f"{base}/Observation", json=obs(f"Patient/{pid}"), headers=CT).json()["id"]
    o2 = http.post(f"{base}/Observation", json=obs(f"Patient/{pid}"), headers=CT).json()["id"]
    r = http.delete(f"{base}/Patient/{pid}")
    assert_outcome(r, 409, "conflict")
    d = r.json()["issue"][0]["diagnostics"]
    assert f"Observation/{o1}" in d and f"Observation/{o2}" in d and "(patient)" in d, d
    assert http.get(f"{base}/Patient/{pid}").status_code == 200
    # a conditional delete is refused the same way
    assert_outcome(http.delete(f"{base}/Patient?_id={pid}"), 409)
    assert http.delete(f"{base}/Observation/{o1}").status_code == 204
    assert_outcome(http.delete(f"{base}/Patient/{pid}"), 409)
    # one that no longer names it does not hold it
    other = new_patient(http, base)
    r = http.put(f"{base}/Observation/{o2}", json={**obs(f"Patient/{other}"), "id": o2},
                 headers=CT)
    assert r.status_code == 200, r.text
    assert http.delete(f"{base}/Patient/{pid}").status_code == 204
    # in one transaction: the patient and what names it, together
    r = tx(http, base, {"request": {"method": "DELETE", "url": f"Patient/{other}"}},
           {"request": {"method": "DELETE", "url": f"Observation/{o2}"}})
    assert r.status_code == 200, r.text
    assert http.get(f"{base}/Patient/{other}").status_code == 410


def test_transactions_and_batches(http, base):
    pid = new_patient(http, base)
    # a new patient and its observation, by placeholder
    u = f"urn:uuid:{uuid.uuid4()}"
    r = tx(http, base, {"fullUrl": u, "resource": {"resourceType": "Patient"},
                        "request": {"method": "POST", "url": "Patient"}},
           {"resource": obs(u), "request": {"method": "POST", "url": "Observation"}})
    assert r.status_code == 200, r.text
    # a PUT entry's id may be named by another entry's literal reference
    nid = str(uuid.uuid4())
    r = tx(http, base, {"resource": obs(f"Patient/{nid}"),
                        "request": {"method": "POST", "url": "Observation"}},
           {"resource": {"resourceType": "Patient", "id": nid},
            "request": {"method": "PUT", "url": f"Patient/{nid}"}})
    assert r.status_code == 200, r.text
    # an entry naming what another entry deletes: the whole transaction is refused
    r = tx(http, base, {"resource": obs(f"Patient/{pid}"),
                        "request": {"method": "POST", "url": "Observation"}},
           {"request": {"method": "DELETE", "url": f"Patient/{pid}"}})
    assert_outcome(r, 422)
    assert "this transaction deletes" in r.json()["issue"][0]["diagnostics"]
    assert http.get(f"{base}/Patient/{pid}").status_code == 200
    # a batch: each entry alone
    r = tx(http, base, {"resource": obs(f"Patient/{uuid.uuid4()}"),
                        "request": {"method": "POST", "url": "Observation"}},
           {"resource": obs(f"Patient/{pid}"), "request": {"method": "POST", "url": "Observation"}},
           type_="batch")
    assert [e["response"]["status"][:3] for e in r.json()["entry"]] == ["422", "201"], r.text


def test_racing_delete_and_reference(base):
    """A create naming a patient and the patient's delete, at once: never both. Either the
    delete wins (the create is refused) or the create does (the delete is refused)."""
    for _ in range(50):
        s = requests.Session()
        pid = new_patient(s, base)
        results = {}

        def create():
            with requests.Session() as h:
                results["create"] = h.post(f"{base}/Observation", json=obs(f"Patient/{pid}"),
                                           headers=CT).status_code

        def delete():
            with requests.Session() as h:
                results["delete"] = h.delete(f"{base}/Patient/{pid}").status_code

        ts = [threading.Thread(target=create), threading.Thread(target=delete)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert sorted(results.values()) in ([201, 409], [204, 422]), results
        n = s.get(f"{base}/Observation?subject=Patient/{pid}&_summary=count").json()["total"]
        gone = s.get(f"{base}/Patient/{pid}").status_code == 410
        assert (gone and n == 0) or (not gone and n == 1), (results, n, gone)


def test_off(http, make_server):
    s = make_server(extra_args=("--referential-integrity", "off"))
    missing = f"Patient/{uuid.uuid4()}"
    r = http.post(f"{s.base}/Observation", json=obs(missing), headers=CT)
    assert r.status_code == 201, r.text
    pid = new_patient(http, s.base)
    http.post(f"{s.base}/Observation", json=obs(f"Patient/{pid}"), headers=CT)
    assert http.delete(f"{s.base}/Patient/{pid}").status_code == 204
