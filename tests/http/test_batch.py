"""POST [base]: transaction (atomic, urn:uuid references resolved) and batch (per entry)."""
import pytest

from conftest import FHIR_JSON, assert_outcome, create

CT = {"Content-Type": FHIR_JSON}


def tx(entries, typ="transaction"):
    return {"resourceType": "Bundle", "type": typ, "entry": entries}


def post_entry(res, full=None):
    e = {"resource": res, "request": {"method": "POST", "url": res["resourceType"]}}
    if full:
        e["fullUrl"] = full
    return e


def put_entry(res):
    return {"resource": res,
            "request": {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}}


def test_transaction_creates_and_resolves_references(http, base):
    pat = "urn:uuid:7f1c3a52-1111-4a5e-9d1e-000000000001"
    b = tx([
        post_entry({"resourceType": "Patient", "name": [{"family": "Tx"}]}, pat),
        post_entry({"resourceType": "Observation", "status": "final",
                    "code": {"text": "bp"}, "subject": {"reference": pat}}),
        put_entry({"resourceType": "Practitioner", "id": "tx-prac-1", "active": True}),
    ])
    r = http.post(base, json=b, headers=CT)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["resourceType"] == "Bundle" and out["type"] == "transaction-response"
    e = out["entry"]
    assert [x["response"]["status"] for x in e] == ["201 Created", "201 Created", "201 Created"]
    pid = e[0]["resource"]["id"]
    assert e[0]["response"]["location"] == f"{base}/Patient/{pid}/_history/1"
    assert e[0]["response"]["etag"] == 'W/"1"'
    assert e[1]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    oid = e[1]["resource"]["id"]
    stored = http.get(f"{base}/Observation/{oid}").json()
    assert stored["subject"]["reference"] == f"Patient/{pid}"
    assert http.get(f"{base}/Practitioner/tx-prac-1").status_code == 200
    # one transaction = one logical time: all three versions share a commit
    h = http.get(f"{base}/_history", params={"_count": 3}).json()
    assert {x["fullUrl"] for x in h["entry"]} == {x["fullUrl"] for x in e}


def test_transaction_is_all_or_nothing(http, base):
    b = tx([
        put_entry({"resourceType": "Practitioner", "id": "tx-atomic-1", "active": True}),
        put_entry({"resourceType": "Practitioner", "id": "tx-atomic-2", "bogus": 1}),
    ])
    assert_outcome(http.post(base, json=b, headers=CT), 400)
    assert http.get(f"{base}/Practitioner/tx-atomic-1").status_code == 404
    # a failing ifMatch also rolls back everything
    create_put = put_entry({"resourceType": "Practitioner", "id": "tx-atomic-3"})
    stale = put_entry({"resourceType": "Practitioner", "id": "tx-atomic-4"})
    stale["request"]["ifMatch"] = 'W/"3"'
    assert_outcome(http.post(base + "/", json=tx([create_put, stale]), headers=CT), 412)
    assert http.get(f"{base}/Practitioner/tx-atomic-3").status_code == 404


def test_transaction_update_delete_and_read(http, base):
    p = create(http, base, {"resourceType": "Patient", "gender": "male"}).json()
    q = create(http, base, {"resourceType": "Patient", "gender": "female"}).json()
    p["gender"] = "other"
    b = tx([
        put_entry(p),
        {"request": {"method": "DELETE", "url": f"Patient/{q['id']}"}},
        {"request": {"method": "DELETE", "url": "Patient/never-existed"}},
        {"request": {"method": "GET", "url": f"Patient/{p['id']}"}},
    ])
    r = http.post(base, json=b, headers=CT)
    assert r.status_code == 200, r.text
    e = r.json()["entry"]
    assert [x["response"]["status"] for x in e] == ["200 OK", "204 No Content",
                                                    "204 No Content", "200 OK"]
    assert e[0]["response"]["etag"] == 'W/"2"'
    assert e[3]["resource"]["gender"] == "other"  # GETs see the transaction's writes
    assert http.get(f"{base}/Patient/{q['id']}").status_code == 410


def test_transaction_entry_errors(http, base):
    cases = [
        [{"request": {"method": "POST", "url": "Patient"}}],                     # no resource
        [post_entry({"resourceType": "Patient"}) | {"request": {"method": "POST", "url": "Observation"}}],
        [put_entry({"resourceType": "Patient", "id": "a"}) | {"request": {"method": "PUT", "url": "Patient/b"}}],
        [{"request": {"method": "PATCH", "url": "Patient/a"}}],
        [{"request": {"method": "GET", "url": "Patient/$everything"}}],  # not a read, search or history
        [put_entry({"resourceType": "Patient", "id": "dup"}), put_entry({"resourceType": "Patient", "id": "dup"})],
        [{"request": {"method": "DELETE", "url": "Foo/1"}}],
    ]
    for entries in cases:
        r = http.post(base, json=tx(entries), headers=CT)
        assert 400 <= r.status_code < 500, (entries, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"


def test_batch_entries_succeed_or_fail_alone(http, base):
    p = create(http, base, {"resourceType": "Patient"}).json()
    b = tx([
        post_entry({"resourceType": "Patient", "name": [{"family": "Batch"}]}),
        put_entry({"resourceType": "Patient", "id": "batch-bad", "birthDate": "not-a-date"}),
        {"request": {"method": "GET", "url": f"Patient/{p['id']}"}},
        {"request": {"method": "GET", "url": "Patient/batch-missing"}},
        put_entry({"resourceType": "Patient", "id": "batch-ok", "active": True}),
    ], typ="batch")
    r = http.post(base, json=b, headers=CT)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "batch-response"
    st = [x["response"]["status"] for x in out["entry"]]
    assert st == ["201 Created", "400 Bad Request", "200 OK", "404 Not Found", "201 Created"]
    assert out["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert http.get(f"{base}/Patient/batch-ok").status_code == 200
    assert http.get(f"{base}/Patient/batch-bad").status_code == 404


def test_batch_many_entries(http, base):
    entries = [put_entry({"resourceType": "Patient", "id": f"bm-{i}", "active": True})
               for i in range(200)]
    r = http.post(base, json=tx(entries, "batch"), headers=CT,
                  params={}, )
    assert r.status_code == 200
    assert all(x["response"]["status"] == "201 Created" for x in r.json()["entry"])
    r = http.post(base, json=tx(entries, "batch"), headers={**CT, "Prefer": "return=minimal"})
    assert all(x["response"]["status"] == "200 OK" for x in r.json()["entry"])
    assert all("resource" not in x for x in r.json()["entry"])
    assert http.get(f"{base}/Patient/bm-199").json()["meta"]["versionId"] == "2"


@pytest.mark.parametrize("body", [
    {"resourceType": "Patient"},
    {"resourceType": "Bundle", "type": "collection"},
    {"resourceType": "Bundle"},
])
def test_base_post_needs_batch_or_transaction(http, base, body):
    assert_outcome(http.post(base, json=body, headers=CT), 400)


def test_base_post_bad_json(http, base):
    assert_outcome(http.post(base, data=b'{"resourceType": "Bundle",', headers=CT), 400)
    assert_outcome(http.post(base, data=b'<Bundle/>', headers={"Content-Type": "application/xml"}), 415)


def test_search_and_history_entries(http, base):
    """GET entries may search (Type?..., a compartment) and read histories; they run after
    the writes of their Bundle, and each answers with a Bundle of its own, or its
    OperationOutcome when it fails."""
    import uuid
    fam = f"Srch{uuid.uuid4().hex[:8]}"
    r = http.post(base, json=tx([
        post_entry({"resourceType": "Patient", "name": [{"family": fam}]}, "urn:uuid:p1"),
        post_entry({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:p1"}}),
        {"request": {"method": "GET", "url": f"Patient?family={fam}"}},
        {"request": {"method": "GET", "url": f"Patient?family={fam}&_summary=count"}},
        {"request": {"method": "GET", "url": "Observation?subject:missing=false&_count=1"}},
    ]), headers=CT)
    assert r.status_code == 200, r.text
    e = r.json()["entry"]
    pid = e[0]["resource"]["id"]
    found = e[2]["resource"]
    assert e[2]["response"]["status"].startswith("200")
    assert found["resourceType"] == "Bundle" and found["type"] == "searchset"
    assert [x["resource"]["id"] for x in found["entry"]] == [pid]  # the write it follows
    assert e[3]["resource"]["total"] == 1
    assert len(e[4]["resource"]["entry"]) == 1
    # a batch: a compartment search, a history, an unknown parameter (that entry fails,
    # the others answer), a read
    r = http.post(base, json=tx([
        {"request": {"method": "GET", "url": f"Patient/{pid}/Observation"}},
        {"request": {"method": "GET", "url": f"Patient/{pid}/_history"}},
        {"request": {"method": "GET", "url": f"Patient?famly={fam}"}},
        {"request": {"method": "GET", "url": f"{base}/Patient?family={fam}"}},
        {"request": {"method": "GET", "url": f"Patient/{pid}"}},
        {"request": {"method": "GET", "url": "Patient/$everything"}},
        {"request": {"method": "GET", "url": f"Patient?family={fam}", "ifNoneMatch": "*"}},
    ], "batch"), headers=CT)
    assert r.status_code == 200, r.text
    e = r.json()["entry"]
    assert [x["resource"]["subject"]["reference"] for x in e[0]["resource"]["entry"]] == \
        [f"Patient/{pid}"]
    assert e[1]["resource"]["type"] == "history" and len(e[1]["resource"]["entry"]) == 1
    assert e[2]["response"]["status"].startswith("400")
    assert "famly" in e[2]["response"]["outcome"]["issue"][0]["diagnostics"]
    assert "resource" not in e[2]
    assert len(e[3]["resource"]["entry"]) == 1
    assert e[4]["resource"]["id"] == pid
    assert e[5]["response"]["status"].startswith("400")
    assert e[6]["response"]["status"].startswith("400")
    # lenient handling of the Bundle's request applies to its searches
    r = http.post(base, json=tx([{"request": {"method": "GET", "url": f"Patient?famly={fam}"}}],
                                "batch"),
                  headers={**CT, "Prefer": "handling=lenient"})
    out = r.json()["entry"][0]
    assert out["response"]["status"].startswith("200"), out
    assert any(x["search"]["mode"] == "outcome" for x in out["resource"]["entry"])
