"""Concurrent writers: unconditional updates all land as versions, version-aware ones
lose with 412, batches and creates share commits without losing anything."""
import threading

import requests

from conftest import FHIR_JSON

CT = {"Content-Type": FHIR_JSON}


def run_threads(n, fn):
    errors = []

    def wrap(i):
        try:
            fn(i)
        except Exception as e:  # reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]


def test_concurrent_unconditional_updates_all_become_versions(base):
    rid = "race-1"
    statuses = []

    def writer(i):
        with requests.Session() as h:
            for k in range(10):
                r = h.put(f"{base}/Patient/{rid}",
                          json={"resourceType": "Patient", "id": rid,
                                "name": [{"family": f"t{i}-{k}"}]}, headers=CT)
                statuses.append(r.status_code)

    run_threads(8, writer)
    assert sorted(set(statuses)) in ([200, 201], [201, 200], [200]) and statuses.count(201) == 1
    cur = requests.get(f"{base}/Patient/{rid}").json()
    assert cur["meta"]["versionId"] == "80"
    h = requests.get(f"{base}/Patient/{rid}/_history", params={"_count": 100}).json()
    assert [e["response"]["etag"] for e in h["entry"]] == [f'W/"{v}"' for v in range(80, 0, -1)]


def test_concurrent_version_aware_updates_one_wins(base):
    rid = "race-2"
    requests.put(f"{base}/Patient/{rid}", json={"resourceType": "Patient", "id": rid},
                 headers=CT)
    results = []

    def writer(i):
        r = requests.put(f"{base}/Patient/{rid}",
                         json={"resourceType": "Patient", "id": rid, "gender": "male"},
                         headers={**CT, "If-Match": 'W/"1"'})
        results.append(r.status_code)

    run_threads(8, writer)
    assert results.count(200) == 1 and results.count(412) == 7, results
    assert requests.get(f"{base}/Patient/{rid}").json()["meta"]["versionId"] == "2"


def test_concurrent_creates_and_batches(base):
    ids = []
    lock = threading.Lock()

    def writer(i):
        with requests.Session() as h:
            for k in range(5):
                r = h.post(f"{base}/Patient", json={"resourceType": "Patient"}, headers=CT)
                assert r.status_code == 201
                b = {"resourceType": "Bundle", "type": "batch", "entry": [
                    {"resource": {"resourceType": "Patient"},
                     "request": {"method": "POST", "url": "Patient"}} for _ in range(3)]}
                rb = h.post(base, json=b, headers=CT)
                assert rb.status_code == 200
                with lock:
                    ids.append(r.json()["id"])
                    ids.extend(e["resource"]["id"] for e in rb.json()["entry"])

    run_threads(8, writer)
    assert len(ids) == 8 * 5 * 4 and len(set(ids)) == len(ids)
    with requests.Session() as h:
        for rid in ids[::7]:
            assert h.get(f"{base}/Patient/{rid}").status_code == 200
