"""The operator's choices of `hortus serve` (docs/REST.md): how much every write validates
(`--validate full|structure|off`) and whether a conditional delete may remove several
resources (`--conditional-delete single|multiple`, at most REST_MAX_COND_DELETE)."""
import json
import subprocess
import uuid

from conftest import BIN, FHIR_JSON, assert_outcome

CT = {"Content-Type": FHIR_JSON}

# structurally invalid: an element Patient does not have
UNKNOWN_ELEMENT = {"resourceType": "Patient", "fooBar": 1}
# structurally valid, breaks the invariant pat-1 (a contact needs details or an organization)
BREAKS_PAT1 = {"resourceType": "Patient", "contact": [{"gender": "male"}]}


def txn(*entries):
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def post_entry(res):
    return {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": res,
            "request": {"method": "POST", "url": res["resourceType"]}}


def test_validation_levels(http, make_server):
    full, structure, off = (make_server(extra_args=a) for a in
                            ((), ("--validate", "structure"), ("--validate", "off")))
    for s, unknown_ok, pat1_ok in ((full, False, False), (structure, False, True),
                                   (off, True, True)):
        for res, ok in ((UNKNOWN_ELEMENT, unknown_ok), (BREAKS_PAT1, pat1_ok)):
            r = http.post(f"{s.base}/Patient", json=res, headers=CT)
            if ok:
                assert r.status_code == 201, (s.datadir, r.text)
                back = http.get(f"{s.base}/Patient/{r.json()['id']}").json()
                assert {k: v for k, v in back.items() if k not in ("id", "meta")} == res
            else:
                assert r.status_code == 400, (s.datadir, r.text)
            # a transaction's entries and a batch's the same way
            t = http.post(s.base, json=txn(post_entry(res)), headers=CT)
            assert t.status_code == (200 if ok else 400), (s.datadir, t.text)
            b = http.post(s.base, json={"resourceType": "Bundle", "type": "batch",
                                        "entry": [post_entry(res)]}, headers=CT)
            assert b.status_code == 200
            assert b.json()["entry"][0]["response"]["status"].startswith(
                "201" if ok else "400"), b.text
    # whatever the level: JSON, resourceType and the id are checked
    for s in (structure, off):
        assert_outcome(http.post(f"{s.base}/Patient", data=b"{", headers=CT), 400)
        assert_outcome(http.post(f"{s.base}/Patient", json={"resourceType": "Observation"},
                                 headers=CT), 400)
        assert_outcome(http.put(f"{s.base}/Patient/a", json={"resourceType": "Patient",
                                                               "id": "b"}, headers=CT), 400)
    # an unvalidated resource of odd shapes is indexed and searched without harm
    odd = {"resourceType": "Patient", "name": "Jansen", "birthDate": {"x": 1},
           "identifier": [{"system": 7, "value": ["a"]}], "gender": "female"}
    r = http.post(f"{off.base}/Patient", json=odd, headers=CT)
    assert r.status_code == 201, r.text
    for q in ("name=Jansen", "birthdate=ge2000", "identifier=a", "gender=female"):
        assert http.get(f"{off.base}/Patient?{q}").status_code == 200, q
    # $validate always validates fully
    r = http.post(f"{off.base}/Patient/$validate", json=BREAKS_PAT1, headers=CT)
    assert any(i["severity"] == "error" for i in r.json()["issue"]), r.text


def test_validation_option_is_checked():
    for args in (("--validate", "partial"), ("--validate",),
                 ("--conditional-delete", "several")):
        p = subprocess.run([BIN, "serve", "--port", "1", *args], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 2, (args, p.stderr)
        assert args[0] in p.stderr
    p = subprocess.run([BIN, "import", "--validate", "maybe", "x.ndjson"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "--validate" in p.stderr


def test_import_validation_level(tmp_path):
    f = tmp_path / "p.ndjson"
    f.write_text(json.dumps(UNKNOWN_ELEMENT) + "\n" + json.dumps(BREAKS_PAT1) + "\n")
    loaded = {}
    for level in ("full", "structure", "off"):
        p = subprocess.run([BIN, "import", "--data", str(tmp_path / level), "--validate", level,
                            str(f)], capture_output=True, text=True, timeout=120)
        assert p.returncode in (0, 1), p.stderr
        loaded[level] = p.stdout + p.stderr
    for level, n in (("full", 0), ("structure", 1), ("off", 2)):
        assert f"done: {n} resources loaded" in loaded[level], loaded[level]


def patient(system, value):
    return {"resourceType": "Patient", "identifier": [{"system": system, "value": value}]}


def test_conditional_delete_multiple(http, base, make_server):
    cap = http.get(f"{base}/metadata").json()["rest"][0]["resource"][0]
    assert cap["conditionalDelete"] == "single"
    s = make_server(extra_args=("--conditional-delete", "multiple"))
    cap = http.get(f"{s.base}/metadata").json()["rest"][0]["resource"][0]
    assert cap["conditionalDelete"] == "multiple"
    sys_ = f"urn:uuid:{uuid.uuid4()}"
    ids = [http.post(f"{s.base}/Patient", json=patient(sys_, "m"), headers=CT).json()["id"]
           for _ in range(3)]
    other = http.post(f"{s.base}/Patient", json=patient(sys_, "keep"), headers=CT).json()["id"]
    # If-Match names one version: not a condition for several
    assert_outcome(http.delete(f"{s.base}/Patient?identifier={sys_}|m",
                               headers={"If-Match": 'W/"1"'}), 412)
    r = http.delete(f"{s.base}/Patient?identifier={sys_}|m",
                    headers={"Prefer": "return=OperationOutcome"})
    assert r.status_code == 200, r.text
    diag = r.json()["issue"][0]["diagnostics"]
    assert "deleted 3 resources" in diag and all(f"Patient/{i}" in diag for i in ids), diag
    for i in ids:
        assert http.get(f"{s.base}/Patient/{i}").status_code == 410
        h = http.get(f"{s.base}/Patient/{i}/_history").json()
        assert len(h["entry"]) == 2 and h["entry"][0]["request"]["method"] == "DELETE"
    assert http.get(f"{s.base}/Patient/{other}").status_code == 200
    r = http.get(f"{s.base}/Patient?identifier={sys_}|m&_summary=count").json()
    assert r["total"] == 0
    # one of them: 204 as a single delete
    assert http.delete(f"{s.base}/Patient?identifier={sys_}|keep").status_code == 204
    assert http.get(f"{s.base}/Patient/{other}").status_code == 410
    # in a transaction (with another write) and in a batch
    two = [http.post(f"{s.base}/Patient", json=patient(sys_, "t"), headers=CT).json()["id"]
           for _ in range(2)]
    r = http.post(s.base, json=txn({"request": {"method": "DELETE",
                                                "url": f"Patient?identifier={sys_}|t"}},
                                   post_entry(patient(sys_, "new"))), headers=CT)
    assert r.status_code == 200, r.text
    assert [e["response"]["status"][:3] for e in r.json()["entry"]] == ["204", "201"]
    assert all(http.get(f"{s.base}/Patient/{i}").status_code == 410 for i in two)
    two = [http.post(f"{s.base}/Patient", json=patient(sys_, "b"), headers=CT).json()["id"]
           for _ in range(2)]
    r = http.post(s.base, json={"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "DELETE", "url": f"Patient?identifier={sys_}|b"}}]}, headers=CT)
    assert r.json()["entry"][0]["response"]["status"].startswith("204"), r.text
    assert all(http.get(f"{s.base}/Patient/{i}").status_code == 410 for i in two)
    # more than the cap: 412, nothing deleted
    many = txn(*[post_entry(patient(sys_, "many")) for _ in range(1001)])
    assert http.post(s.base, json=many, headers=CT).status_code == 200
    r = http.delete(f"{s.base}/Patient?identifier={sys_}|many")
    assert_outcome(r, 412, "too-costly")
    assert "1001" in r.text and "1000" in r.text
    r = http.get(f"{s.base}/Patient?identifier={sys_}|many&_summary=count").json()
    assert r["total"] == 1001
    # the single server still refuses several
    http.post(f"{base}/Patient", json=patient(sys_, "s"), headers=CT)
    http.post(f"{base}/Patient", json=patient(sys_, "s"), headers=CT)
    assert_outcome(http.delete(f"{base}/Patient?identifier={sys_}|s"), 412, "duplicate")
