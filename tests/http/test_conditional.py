"""Conditional create (If-None-Exist, docs/REST.md): none found creates, one found answers
with it and writes nothing, several are 412, and the condition holds under concurrency:
32 clients racing to create one identifier make exactly one resource."""
import threading
import uuid

import requests

from conftest import FHIR_JSON, assert_outcome

CT = {"Content-Type": FHIR_JSON}


def patient(system, value, family="Visser"):
    return {"resourceType": "Patient", "identifier": [{"system": system, "value": value}],
            "name": [{"family": family}]}


def count(http, base, query):
    r = http.get(f"{base}/Patient?{query}&_summary=count")
    assert r.status_code == 200, r.text
    return r.json()["total"]


def test_none_one_several(http, base):
    sys_ = f"urn:oid:2.16.840.1.113883.2.4.6.3.{uuid.uuid4().int % 10**9}"
    cond = f"identifier={sys_}|111"
    r1 = http.post(f"{base}/Patient", json=patient(sys_, "111"),
                   headers={**CT, "If-None-Exist": cond})
    assert r1.status_code == 201, r1.text
    pid = r1.json()["id"]
    # the same again: 200, that resource, nothing written
    r2 = http.post(f"{base}/Patient", json=patient(sys_, "111", "Other"),
                   headers={**CT, "If-None-Exist": cond, "Prefer": "return=representation"})
    assert r2.status_code == 200, r2.text
    assert r2.json()["id"] == pid and r2.json()["name"][0]["family"] == "Visser"
    assert r2.headers["ETag"] == 'W/"1"'
    assert r2.headers["Location"].endswith(f"/Patient/{pid}/_history/1")
    assert count(http, base, cond) == 1
    # written with its type's prefix, and with Prefer: return=OperationOutcome
    r3 = http.post(f"{base}/Patient", json=patient(sys_, "111"),
                   headers={**CT, "If-None-Exist": f"Patient?{cond}",
                            "Prefer": "return=OperationOutcome"})
    assert r3.status_code == 200
    assert "exists already" in r3.json()["issue"][0]["diagnostics"]
    # several: 412, nothing written
    http.post(f"{base}/Patient", json=patient(sys_, "222"), headers=CT)
    http.post(f"{base}/Patient", json=patient(sys_, "222"), headers=CT)
    r4 = http.post(f"{base}/Patient", json=patient(sys_, "222"),
                   headers={**CT, "If-None-Exist": f"identifier={sys_}|222"})
    assert_outcome(r4, 412, "duplicate")
    assert count(http, base, f"identifier={sys_}|222") == 2
    # AND of two parameters, one of them not matching: creates
    r5 = http.post(f"{base}/Patient", json=patient(sys_, "111"),
                   headers={**CT, "If-None-Exist": f"{cond}&family=nobody"})
    assert r5.status_code == 201


def test_conditions_that_are_not_searches(http, base):
    for cond, code in [("bogus=1", "not-supported"), ("", "invalid"),
                       ("family=x&_sort=family", "invalid"),
                       ("family=x&_include=Patient:organization", "invalid"),
                       ("family=x&_summary=count", "invalid"), ("family=%zz", "invalid"),
                       ("family=x&_count=5", "invalid"), ("family=x&_elements=id", "invalid"),
                       ("birthdate=notadate", "invalid")]:
        r = http.post(f"{base}/Patient", json=patient("urn:x", "1"),
                      headers={**CT, "If-None-Exist": cond})
        assert r.status_code == 400, (cond, r.status_code, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"


def test_racing_creates_make_one_resource(base):
    sys_ = f"urn:uuid:{uuid.uuid4()}"
    cond = f"identifier={sys_}|race"
    barrier = threading.Barrier(32)
    out = []

    def one():
        h = requests.Session()
        barrier.wait()
        r = h.post(f"{base}/Patient", json=patient(sys_, "race"),
                   headers={**CT, "If-None-Exist": cond}, timeout=60)
        out.append((r.status_code, r.json().get("id") if r.status_code in (200, 201) else r.text))

    threads = [threading.Thread(target=one) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    http = requests.Session()
    assert count(http, base, cond) == 1, out
    assert sorted(s for s, _ in out).count(201) == 1, out
    assert all(s in (200, 201) for s, _ in out), out
    assert len({i for _, i in out}) == 1, out


def test_condition_through_a_chain_sees_writes_of_the_other_type(http, base):
    org = http.post(f"{base}/Organization", json={"resourceType": "Organization",
                                                 "name": f"Zorg {uuid.uuid4()}"}, headers=CT)
    oid = org.json()["id"]
    p = patient("urn:x", str(uuid.uuid4()))
    p["managingOrganization"] = {"reference": f"Organization/{oid}"}
    cond = f"organization.name={org.json()['name']}"
    r1 = http.post(f"{base}/Patient", json=p, headers={**CT, "If-None-Exist": cond})
    assert r1.status_code == 201
    r2 = http.post(f"{base}/Patient", json=p, headers={**CT, "If-None-Exist": cond})
    assert r2.status_code == 200 and r2.json()["id"] == r1.json()["id"]


def test_conditional_update(http, base):
    sys_ = f"urn:uuid:{uuid.uuid4()}"
    url = f"{base}/Patient?identifier={sys_}|u1"
    # none: a create with a server id
    r1 = http.put(url, json=patient(sys_, "u1"), headers=CT)
    assert r1.status_code == 201, r1.text
    pid = r1.json()["id"]
    # one: an update of it, with or without the id in the body
    r2 = http.put(url, json=patient(sys_, "u1", "Second"), headers=CT)
    assert r2.status_code == 200 and r2.json()["id"] == pid and r2.headers["ETag"] == 'W/"2"'
    r3 = http.put(url, json={**patient(sys_, "u1", "Third"), "id": pid}, headers=CT)
    assert r3.status_code == 200 and r3.json()["meta"]["versionId"] == "3"
    # the body's id must be the one found
    assert_outcome(http.put(url, json={**patient(sys_, "u1"), "id": "other"}, headers=CT),
                   400, "invalid")
    # If-Match applies to the resource found
    assert_outcome(http.put(url, json=patient(sys_, "u1"), headers={**CT, "If-Match": 'W/"1"'}),
                   412, "conflict")
    # none, with an id in the body: created with that id
    cid = f"c-{uuid.uuid4().hex[:12]}"
    r4 = http.put(f"{base}/Patient?identifier={sys_}|u2", json={**patient(sys_, "u2"), "id": cid},
                  headers=CT)
    assert r4.status_code == 201 and r4.json()["id"] == cid
    # several: 412
    http.post(f"{base}/Patient", json=patient(sys_, "u3"), headers=CT)
    http.post(f"{base}/Patient", json=patient(sys_, "u3"), headers=CT)
    assert_outcome(http.put(f"{base}/Patient?identifier={sys_}|u3", json=patient(sys_, "u3"),
                            headers=CT), 412, "duplicate")
    # no query at all, a bad one
    assert_outcome(http.put(f"{base}/Patient", json=patient(sys_, "u4"), headers=CT), 400)
    assert_outcome(http.put(f"{base}/Patient?nope=1", json=patient(sys_, "u4"), headers=CT), 400)


def test_conditional_patch_and_delete(http, base):
    sys_ = f"urn:uuid:{uuid.uuid4()}"
    pid = http.post(f"{base}/Patient", json=patient(sys_, "d1"), headers=CT).json()["id"]
    patch = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "add"}, {"name": "path", "valueString": "Patient"},
        {"name": "name", "valueString": "active"}, {"name": "value", "valueBoolean": True}]}]}
    r = http.patch(f"{base}/Patient?identifier={sys_}|d1", json=patch, headers=CT)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == pid and r.json()["active"] is True
    assert_outcome(http.patch(f"{base}/Patient?identifier={sys_}|none", json=patch, headers=CT),
                   404, "not-found")
    # delete: the one found; then nothing matches: 204 and nothing written
    r = http.delete(f"{base}/Patient?identifier={sys_}|d1")
    assert r.status_code == 204
    assert http.get(f"{base}/Patient/{pid}").status_code == 410
    r = http.delete(f"{base}/Patient?identifier={sys_}|d1",
                    headers={"Prefer": "return=OperationOutcome"})
    assert r.status_code == 200 and "no Patient matches" in r.json()["issue"][0]["diagnostics"]
    http.post(f"{base}/Patient", json=patient(sys_, "d2"), headers=CT)
    http.post(f"{base}/Patient", json=patient(sys_, "d2"), headers=CT)
    assert_outcome(http.delete(f"{base}/Patient?identifier={sys_}|d2"), 412, "duplicate")
    assert count(http, base, f"identifier={sys_}|d2") == 2
    assert_outcome(http.delete(f"{base}/Patient"), 400)


def test_racing_conditional_updates_make_one_resource(base):
    sys_ = f"urn:uuid:{uuid.uuid4()}"
    url = f"{base}/Patient?identifier={sys_}|r"
    barrier = threading.Barrier(12)
    out = []

    def one(k):
        h = requests.Session()
        barrier.wait()
        r = h.put(url, json=patient(sys_, "r", f"F{k}"), headers=CT, timeout=60)
        out.append((r.status_code, r.json().get("id")))

    threads = [threading.Thread(target=one, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    http = requests.Session()
    assert count(http, base, f"identifier={sys_}|r") == 1, out
    assert [s for s, _ in out].count(201) == 1 and len({i for _, i in out}) == 1, out
    pid = out[0][1]
    hist = http.get(f"{base}/Patient/{pid}/_history", params={"_count": "50"}).json()
    assert len(hist["entry"]) == 12  # every update landed as a version of the one resource


def test_conditional_entries_of_a_batch(http, base):
    sys_ = f"urn:uuid:{uuid.uuid4()}"
    stored = http.post(f"{base}/Patient", json=patient(sys_, "b1"), headers=CT).json()["id"]

    def entry(method, url, res=None, **req):
        e = {"request": {"method": method, "url": url, **req}}
        if res:
            e["resource"] = res
        return e

    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        entry("POST", "Patient", patient(sys_, "b1"), ifNoneExist=f"identifier={sys_}|b1"),
        entry("POST", "Patient", patient(sys_, "b2"), ifNoneExist=f"identifier={sys_}|b2"),
        entry("PUT", f"Patient?identifier={sys_}|b1", patient(sys_, "b1", "Updated")),
        entry("DELETE", f"Patient?identifier={sys_}|nothing"),
        entry("PUT", "Patient?", patient(sys_, "b3")),
        entry("GET", f"Patient?identifier={sys_}|b1"),
        entry("POST", "Patient", patient(sys_, "b4"), ifNoneExist="bogus=1"),
    ]}
    r = http.post(base, json=bundle, headers=CT)
    assert r.status_code == 200, r.text
    got = r.json()["entry"]
    status = [e["response"]["status"].split()[0] for e in got]
    assert status == ["200", "201", "200", "204", "400", "200", "400"], status
    # the search entry runs after the writes: it finds the updated patient
    found = got[5]["resource"]["entry"]
    assert [e["resource"]["name"][0]["family"] for e in found] == ["Updated"]
    assert got[0]["resource"]["id"] == stored
    assert got[0]["response"]["location"].endswith(f"Patient/{stored}/_history/1")
    assert got[2]["resource"]["id"] == stored and got[2]["resource"]["meta"]["versionId"] == "2"
    assert count(http, base, f"identifier={sys_}|b2") == 1


def test_conditional_entries_and_references_of_a_transaction(http, base):
    sys_ = f"urn:uuid:{uuid.uuid4()}"
    known = http.post(f"{base}/Patient", json=patient(sys_, "k"), headers=CT).json()["id"]

    def tx(*entries):
        return http.post(base, json={"resourceType": "Bundle", "type": "transaction",
                                     "entry": list(entries)}, headers=CT)

    obs = {"resourceType": "Observation", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}}
    # ifNoneExist finds the known patient: the observation's urn reference names it
    r = tx({"fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
            "resource": patient(sys_, "k"),
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={sys_}|k"}},
           {"resource": {**obs, "subject": {"reference": "urn:uuid:11111111-1111-1111-1111-111111111111"}},
            "request": {"method": "POST", "url": "Observation"}})
    assert r.status_code == 200, r.text
    e = r.json()["entry"]
    assert e[0]["response"]["status"].startswith("200") and e[0]["resource"]["id"] == known
    assert e[1]["resource"]["subject"]["reference"] == f"Patient/{known}"
    # not found: the patient is created, and the reference names the new one
    r = tx({"fullUrl": "urn:uuid:22222222-2222-2222-2222-222222222222",
            "resource": patient(sys_, "new"),
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={sys_}|new"}},
           {"resource": {**obs, "subject": {"reference": "urn:uuid:22222222-2222-2222-2222-222222222222"}},
            "request": {"method": "POST", "url": "Observation"}})
    assert r.status_code == 200, r.text
    e = r.json()["entry"]
    assert e[0]["response"]["status"].startswith("201")
    assert e[1]["resource"]["subject"]["reference"] == f"Patient/{e[0]['resource']['id']}"
    # a conditional reference, and a conditional update, in one transaction
    r = tx({"resource": {**obs, "subject": {"reference": f"Patient?identifier={sys_}|k"}},
            "request": {"method": "POST", "url": "Observation"}},
           {"resource": patient(sys_, "k", "Renamed"),
            "request": {"method": "PUT", "url": f"Patient?identifier={sys_}|k"}})
    assert r.status_code == 200, r.text
    e = r.json()["entry"]
    assert e[0]["resource"]["subject"]["reference"] == f"Patient/{known}"
    assert e[1]["resource"]["id"] == known and e[1]["resource"]["name"][0]["family"] == "Renamed"
    # a conditional reference that finds nothing, or several: the transaction fails whole
    before = count(http, base, f"identifier={sys_}|k")
    r = tx({"resource": {**obs, "subject": {"reference": f"Patient?identifier={sys_}|nobody"}},
            "request": {"method": "POST", "url": "Observation"}},
           {"resource": patient(sys_, "k2"), "request": {"method": "POST", "url": "Patient"}})
    assert_outcome(r, 412)
    assert "matches nothing" in r.json()["issue"][0]["diagnostics"]
    assert count(http, base, f"identifier={sys_}|k2") == 0 and \
        count(http, base, f"identifier={sys_}|k") == before
    # outside a transaction a conditional reference is refused, never stored as text
    r = http.post(f"{base}/Observation", headers=CT,
                  json={**obs, "subject": {"reference": f"Patient?identifier={sys_}|k"}})
    assert_outcome(r, 400, "not-supported")
    # two conditional entries that come to the same resource
    r = tx({"resource": patient(sys_, "k"), "request": {"method": "PUT", "url": f"Patient?identifier={sys_}|k"}},
           {"resource": patient(sys_, "k"), "request": {"method": "PUT", "url": f"Patient/{known}"}})
    assert_outcome(r, 400, "invalid")


def test_transaction_placeholders_everywhere_and_refusals(http, base):
    full = f"urn:uuid:{uuid.uuid4()}"
    oid = "urn:oid:1.2.3.4.5.6.7.%d" % (uuid.uuid4().int % 10**6)
    obs = {"resourceType": "Observation", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
           "subject": {"reference": full},
           "extension": [{"url": "http://example.org/ext/source", "valueUri": oid},
                         {"url": "http://example.org/ext/provenance",  # dom-3: referred to
                          "valueReference": {"reference": "#p"}}],
           "contained": [{"resourceType": "Provenance", "id": "p", "recorded": "2024-01-01T00:00:00Z",
                          "target": [{"reference": full}],
                          "agent": [{"who": {"reference": oid}}]}]}
    r = http.post(base, headers=CT, json={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": full, "resource": patient("urn:x", "p"), "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": oid, "resource": {"resourceType": "Organization", "name": "O"},
         "request": {"method": "POST", "url": "Organization"}},
        {"resource": obs, "request": {"method": "POST", "url": "Observation"}}]})
    assert r.status_code == 200, r.text
    e = r.json()["entry"]
    pid, org = e[0]["resource"]["id"], e[1]["resource"]["id"]
    o = e[2]["resource"]
    assert o["subject"]["reference"] == f"Patient/{pid}"
    assert o["extension"][0]["valueUri"] == f"Organization/{org}"
    assert o["contained"][0]["target"][0]["reference"] == f"Patient/{pid}"
    assert o["contained"][0]["agent"][0]["who"]["reference"] == f"Organization/{org}"
    # one fullUrl twice; an entry that is not an object
    r = http.post(base, headers=CT, json={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": full, "resource": patient("urn:x", "a"), "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": full, "resource": patient("urn:x", "b"), "request": {"method": "POST", "url": "Patient"}}]})
    assert_outcome(r, 400, "invalid")
    assert "entry[1]" in r.json()["issue"][0]["diagnostics"]
    r = http.post(base, headers=CT, json={"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient("urn:x", "c"), "request": {"method": "POST", "url": "Patient"}}, 7]})
    assert r.status_code == 200  # a batch: the other entries go ahead, that one says why
    got = r.json()["entry"]
    assert got[0]["response"]["status"].startswith("201")
    assert got[1]["response"]["status"].startswith("400")
    assert got[1]["response"]["outcome"]["issue"][0]["diagnostics"] == "entry 1 is not an object"


def test_transaction_deletes_come_first(http, base):
    """DELETE entries are processed before the others (DELETE, POST, PUT/PATCH, GET): what
    they delete, the conditions and conditional references of the others do not find."""
    sys_ = f"urn:uuid:{uuid.uuid4()}"

    def tx(*entries):
        return http.post(base, json={"resourceType": "Bundle", "type": "transaction",
                                     "entry": list(entries)}, headers=CT)

    old = http.post(f"{base}/Patient", json=patient(sys_, "x"), headers=CT).json()["id"]
    # the delete entry comes after the conditional create in the Bundle, yet runs first:
    # the create finds nothing and makes a new patient
    r = tx({"resource": patient(sys_, "x", "New"),
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={sys_}|x"}},
           {"request": {"method": "DELETE", "url": f"Patient/{old}"}},
           {"request": {"method": "GET", "url": f"Patient/{old}"}})
    assert r.status_code == 200, r.text
    e = r.json()["entry"]
    assert e[0]["response"]["status"].startswith("201") and e[0]["resource"]["id"] != old
    assert e[1]["response"]["status"].startswith("204")
    assert e[2]["response"]["status"].startswith("410")  # the read runs after the writes
    new = e[0]["resource"]["id"]
    assert http.get(f"{base}/Patient/{old}").status_code == 410
    assert count(http, base, f"identifier={sys_}|x") == 1
    # a conditional update whose match a conditional delete removes: it creates
    r = tx({"resource": patient(sys_, "x", "Third"),
            "request": {"method": "PUT", "url": f"Patient?identifier={sys_}|x"}},
           {"request": {"method": "DELETE", "url": f"Patient?identifier={sys_}|x"}})
    assert r.status_code == 200, r.text
    e = r.json()["entry"]
    assert e[0]["response"]["status"].startswith("201") and e[0]["resource"]["id"] != new
    assert http.get(f"{base}/Patient/{new}").status_code == 410
    # a conditional reference to what the transaction deletes finds nothing: 412, nothing
    # written
    third = e[0]["resource"]["id"]
    r = tx({"resource": {"resourceType": "Observation", "status": "final",
                         "code": {"text": "t"},
                         "subject": {"reference": f"Patient?identifier={sys_}|x"}},
            "request": {"method": "POST", "url": "Observation"}},
           {"request": {"method": "DELETE", "url": f"Patient/{third}"}})
    assert_outcome(r, 412)
    assert "matches nothing" in r.json()["issue"][0]["diagnostics"]
    assert http.get(f"{base}/Patient/{third}").status_code == 200
