"""The search index follows every write: after creates, updates that change and drop
values, patches, deletes, re-creates, transactions and batches -- sequential and
concurrent -- `hortus check` finds every current version's entries and nothing else
(entries of replaced or deleted versions would make it fail)."""
import json
import os
import random
import subprocess
import threading
import time

import requests

from conftest import BIN, FHIR_JSON

CT = {"Content-Type": FHIR_JSON}


def check(datadir):
    r = subprocess.run([BIN, "check", "--data", str(datadir)], capture_output=True, text=True,
                       timeout=300)
    return r.returncode, r.stdout + r.stderr


def patient(pid, family, given=None, birth=None, extra=None):
    p = {"resourceType": "Patient", "id": pid, "name": [{"family": family}]}
    if given:
        p["name"][0]["given"] = given
    if birth:
        p["birthDate"] = birth
    p.update(extra or {})
    return p


def test_index_follows_every_kind_of_write(make_server, tmp_path):
    data = tmp_path / "idx"
    s = make_server(data)
    b = s.base
    put = lambda res: requests.put(f"{b}/{res['resourceType']}/{res['id']}",
                                   data=json.dumps(res), headers=CT)
    assert put(patient("ix1", "Ödön", ["Zoë"], "1970-03",
                       {"identifier": [{"system": "urn:mrn", "value": "A1"}],
                        "telecom": [{"system": "phone", "value": "+31 20 1234"}]})).status_code == 201
    # an update that changes some values and drops others
    assert put(patient("ix1", "Jansen", birth="1971")).status_code == 200
    # a patch
    r = requests.patch(f"{b}/Patient/ix1", headers={"Content-Type": "application/json-patch+json"},
                       data=json.dumps([{"op": "add", "path": "/gender", "value": "female"}]))
    assert r.status_code == 200, r.text
    # create, delete, re-create
    r = requests.post(f"{b}/Observation", headers=CT, data=json.dumps({
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4",
                             "display": "Heart rate"}]},
        "subject": {"reference": "Patient/ix1"},
        "effectiveDateTime": "2024-03-01T10:00:00+01:00",
        "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org",
                          "code": "/min"}}))
    assert r.status_code == 201, r.text
    oid = r.json()["id"]
    assert requests.delete(f"{b}/Observation/{oid}").status_code == 204
    assert put(patient("ix2", "Gone")).status_code == 201
    assert requests.delete(f"{b}/Patient/ix2").status_code == 204
    assert put(patient("ix2", "Back")).status_code == 201
    # a transaction with references between its entries, and an absolute reference
    # to this server (indexed as a local one)
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
         "resource": {"resourceType": "Patient", "name": [{"family": "Tx"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final",
                      "code": {"text": "note"},
                      "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
                      "performer": [{"reference": f"{b}/Patient/ix1"}]},
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": patient("ix1", "Jansen", ["Piet"]),
         "request": {"method": "PUT", "url": "Patient/ix1"}},
        {"request": {"method": "DELETE", "url": "Patient/ix2"}},
    ]}
    r = requests.post(b, data=json.dumps(tx), headers=CT)
    assert r.status_code == 200, r.text
    # a batch
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient(f"ixb{i}", f"Batch{i}"), "request": {"method": "PUT",
                                                                  "url": f"Patient/ixb{i}"}}
        for i in range(5)]}
    assert requests.post(b, data=json.dumps(batch), headers=CT).status_code == 200

    # concurrent writers of a few resources
    def writer(seed):
        rng = random.Random(seed)
        with requests.Session() as h:
            for _ in range(30):
                pid = f"ixc{rng.randint(0, 3)}"
                op = rng.random()
                if op < 0.6:
                    h.put(f"{b}/Patient/{pid}", headers=CT, data=json.dumps(
                        patient(pid, rng.choice(["Müller", "Smith", "Çelik"]),
                                [rng.choice(["Anna", "Björn"])], f"19{rng.randint(10, 99)}")))
                elif op < 0.8:
                    h.delete(f"{b}/Patient/{pid}")
                else:
                    h.patch(f"{b}/Patient/{pid}",
                            headers={"Content-Type": "application/json-patch+json"},
                            data=json.dumps([{"op": "replace", "path": "/gender",
                                              "value": rng.choice(["male", "female"])}]))

    ts = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    code, out = s.stop()
    assert code == 0, out
    code, out = check(data)
    assert code == 0, out
    assert "ok: search index:" in out, out
    n = int(out.split("ok: search index: ")[1].split(" resources")[0])
    assert n >= 10, out


def test_check_notices_a_missing_index(make_server, tmp_path):
    """The check can fail: a data directory whose SearchParam database lost its entries
    is reported."""
    data = tmp_path / "idx-broken"
    s = make_server(data)
    assert requests.put(f"{s.base}/Patient/ixk", data=json.dumps(patient("ixk", "Kees")),
                        headers=CT).status_code == 201
    code, out = s.stop()
    assert code == 0, out
    assert check(data)[0] == 0
    # empty the SearchParam database (python3-lmdb, installed by tools/deps.sh test)
    import lmdb
    env = lmdb.open(str(data), max_dbs=16, lock=False)
    with env.begin(write=True) as txn:  # the keys and their counts (STORAGE.md 4.7)
        for name in (b"SearchParam", b"SearchCount"):
            txn.drop(env.open_db(name, txn=txn), delete=False)
    env.close()
    code, out = check(data)
    assert code == 1, out
    assert "search index" in out and "missing" in out, out


def test_check_notices_a_wrong_count(make_server, tmp_path):
    """The counts of values (SearchCount, docs/STORAGE.md 4.7) are checked too: one
    count off by one is reported, and a search's total would have been wrong."""
    data = tmp_path / "count-broken"
    s = make_server(data, env={"HORTUS_INDEX_OVERLAY_BYTES": "1024"})  # folded at once
    for i in range(3):
        assert requests.put(f"{s.base}/Patient/wc{i}", data=json.dumps(patient(f"wc{i}", "Kees")),
                            headers=CT).status_code == 201
    code, out = s.stop()
    assert code == 0, out
    assert check(data)[0] == 0
    import lmdb
    env = lmdb.open(str(data), max_dbs=16, lock=False)
    with env.begin(write=True) as txn:
        db = env.open_db(b"SearchCount", txn=txn)
        k, v = next(iter(txn.cursor(db=db)))
        txn.put(k, (int.from_bytes(v, "big") + 1).to_bytes(8, "big"), db=db)
    env.close()
    code, out = check(data)
    assert code == 1 and "SearchCount" in out, out


def test_data_written_before_the_index_is_indexed_at_start(make_server, tmp_path):
    """A directory whose resources have no index entries (as one written by a build
    before the index existed) is indexed when the server starts, so its resources are
    found: never answered as if they did not exist."""
    import lmdb
    data = tmp_path / "old"
    s = make_server(data)
    for i in range(30):
        assert requests.put(f"{s.base}/Patient/old{i}", headers=CT, data=json.dumps(
            patient(f"old{i}", "Oud" if i % 2 else "Nieuw"))).status_code == 201
    code, out = s.stop()
    assert code == 0, out
    env = lmdb.open(str(data), max_dbs=16, lock=False)
    with env.begin(write=True) as txn:
        for name in (b"SearchParam", b"SearchCount", b"ResourceParam", b"Aux"):
            txn.drop(env.open_db(name, txn=txn), delete=False)
    env.close()
    assert check(data)[0] == 1  # the index is gone: check says so
    s2 = make_server(data)
    assert "building the search index of 30 resources" in s2.output()
    r = requests.get(f"{s2.base}/Patient", params={"family": "oud", "_summary": "count"})
    assert r.json()["total"] == 15
    r = requests.get(f"{s2.base}/Patient", params={"_id": "old3"}).json()
    assert [e["resource"]["id"] for e in r["entry"]] == ["old3"]
    code, out = s2.stop()
    assert code == 0, out
    code, out = check(data)
    assert code == 0, out
    # the next start finds the index complete and does not build it again
    s3 = make_server(data)
    assert "building the search index" not in s3.output()


def test_an_older_index_layout_is_brought_up_to_date_at_start(make_server, tmp_path):
    """A directory whose index marker names an older layout (1: before
    Timing.repeat.boundsPeriod was indexed; 2: before composites; 4: before near) is
    re-planned at start,
    resource by resource, so what the older layout left out is found; a layout newer
    than the build stops it."""
    import lmdb
    data = tmp_path / "older"
    s = make_server(data)
    sr = {"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order",
          "subject": {"reference": "Patient/p"},
          "occurrenceTiming": {"repeat": {"boundsPeriod": {"start": "2024-05-01",
                                                           "end": "2024-05-31"}}}}
    obs = {"resourceType": "Observation", "id": "o1", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
           "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
    loc = {"resourceType": "Location", "id": "loc1", "position": {"latitude": 52.0907,
                                                                   "longitude": 5.1214}}
    for res in ({"resourceType": "Patient", "id": "p"}, sr, obs, loc):
        assert requests.put(f"{s.base}/{res['resourceType']}/{res['id']}", headers=CT,
                            data=json.dumps(res)).status_code == 201
    code, out = s.stop()
    assert code == 0, out
    key = b"\0\0\0\0isearch-index"

    def set_marker(v):
        env = lmdb.open(str(data), max_dbs=16, lock=False)
        with env.begin(write=True) as txn:
            aux = env.open_db(b"Aux", txn=txn)
            assert txn.get(key, db=aux) == b"5"
            if v in (b"1", b"2", b"3", b"4"):  # what an older layout left out: here, everything
                for name in (b"SearchParam", b"SearchCount", b"ResourceParam", b"Aux"):
                    txn.drop(env.open_db(name, txn=txn), delete=False)
            txn.put(key, v, db=aux)
        env.close()

    for older in (b"1", b"2", b"3", b"4"):
        set_marker(older)
        s2 = make_server(data)
        assert "bringing the search index of" in s2.output()
        r = requests.get(f"{s2.base}/ServiceRequest", params={"occurrence": "2024-05"}).json()
        assert [e["resource"]["id"] for e in r.get("entry", [])] == ["sr1"]
        r = requests.get(f"{s2.base}/Observation",
                         params={"code-value-quantity": "8480-6$gt100"}).json()
        assert [e["resource"]["id"] for e in r.get("entry", [])] == ["o1"]
        r = requests.get(f"{s2.base}/Location", params={"near": "52.09|5.12|1|km"}).json()
        assert [e["resource"]["id"] for e in r.get("entry", [])] == ["loc1"]
        code, out = s2.stop()
        assert code == 0, out
        assert check(data)[0] == 0
    set_marker(b"9")
    r = subprocess.run([BIN, "serve", "--port", "0", "--data", str(data)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "newer index layout" in r.stderr, (r.returncode, r.stderr)


def metric(base, name):
    m = requests.get(f"{base.rsplit('/fhir', 1)[0]}/metrics").text
    return int(next(line.split()[1] for line in m.splitlines() if line.startswith(name + " ")))


def test_an_idle_writer_folds_the_overlay(make_server, tmp_path):
    """After a while without writes the overlay is folded whatever its size (reads then
    stop merging it, docs/STORAGE.md 4.6); with HORTUS_INDEX_IDLE_FOLD_MS=off it stays
    until it is full. Either way every entry is found."""
    for idle, folded in (("200", True), ("off", False)):
        s = make_server(tmp_path / f"idle-{idle}", env={"HORTUS_INDEX_IDLE_FOLD_MS": idle})
        for i in range(5):
            assert requests.put(f"{s.base}/Patient/if{i}", data=json.dumps(patient(f"if{i}", "Idle")),
                                headers=CT).status_code == 201
        assert metric(s.base, "hortus_index_overlay_records") > 0
        deadline = time.time() + 30
        while folded and metric(s.base, "hortus_index_overlay_records") and time.time() < deadline:
            time.sleep(0.1)
        if not folded:
            time.sleep(1.0)  # several times the other server's idle time
        records = metric(s.base, "hortus_index_overlay_records")
        folds = metric(s.base, "hortus_index_folds_total")
        assert (records == 0 and folds >= 1) if folded else (records > 0 and folds == 0), \
            (idle, records, folds)
        b = requests.get(f"{s.base}/Patient", params={"family": "Idle"}).json()
        assert b["total"] == 5, b
        code, out = s.stop()
        assert code == 0, out


def test_a_bad_idle_fold_time_is_refused(tmp_path):
    for bad in ("0", "soon", "-5"):
        r = subprocess.run([BIN, "serve", "--data", str(tmp_path / "x"), "--port", "0"],
                           env={**os.environ, "HORTUS_INDEX_IDLE_FOLD_MS": bad},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and f"bad HORTUS_INDEX_IDLE_FOLD_MS '{bad}'" in r.stderr, r.stderr
