"""Acknowledged writes survive kill -9: a 201/200 is sent only after the commit is durable."""
import threading
import time

import requests

from conftest import FHIR_JSON


def writer(base, stop, acked, errors, n):
    with requests.Session() as s:
        i = 0
        while not stop.is_set():
            i += 1
            body = {"resourceType": "Patient", "name": [{"family": f"w{n}-{i}"}]}
            try:
                r = s.post(f"{base}/Patient", json=body,
                           headers={"Content-Type": FHIR_JSON}, timeout=10)
            except requests.RequestException:
                return  # the server died under us: this write was not acknowledged
            if r.status_code != 201:
                errors.append((r.status_code, r.text))
                return
            res = r.json()
            acked.append((res["id"], 1, body["name"]))
            # and an update of it, acknowledged as version 2
            res["name"] = [{"family": f"w{n}-{i}-v2"}]
            try:
                r = s.put(f"{base}/Patient/{res['id']}", json=res,
                          headers={"Content-Type": FHIR_JSON}, timeout=10)
            except requests.RequestException:
                return
            if r.status_code != 200:
                errors.append((r.status_code, r.text))
                return
            acked.append((res["id"], 2, res["name"]))


def tx_writer(base, stop, attempted, acked_tx, errors):
    with requests.Session() as s:
        k = 0
        while not stop.is_set():
            k += 1
            ids = [f"tx-{k}-{x}" for x in "abc"]
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": {"resourceType": "Patient", "id": i},
                 "request": {"method": "PUT", "url": f"Patient/{i}"}} for i in ids]}
            attempted.append(ids)
            try:
                r = s.post(base, json=bundle, headers={"Content-Type": FHIR_JSON}, timeout=10)
            except requests.RequestException:
                return
            if r.status_code != 200:
                errors.append((r.status_code, r.text))
                return
            acked_tx.append(ids)


def test_acknowledged_writes_survive_kill9(make_server, tmp_path):
    datadir = tmp_path / "durable"
    s = make_server(datadir)
    stop = threading.Event()
    acked, errors = [], []
    attempted, acked_tx = [], []
    threads = [threading.Thread(target=writer, args=(s.base, stop, acked, errors, n))
               for n in range(8)]
    threads.append(threading.Thread(target=tx_writer,
                                    args=(s.base, stop, attempted, acked_tx, errors)))
    for t in threads:
        t.start()
    deadline = time.time() + 20
    while len(acked) < 200 and time.time() < deadline:
        time.sleep(0.05)
    s.kill9()  # while the writers are still writing
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(acked) >= 50
    s2 = make_server(datadir)
    latest = {}
    with requests.Session() as h:
        for rid, vid, name in acked:
            r = h.get(f"{s2.base}/Patient/{rid}/_history/{vid}")
            assert r.status_code == 200, (rid, vid, r.text)
            assert r.json()["name"] == name
            latest[rid] = max(latest.get(rid, 0), vid)
        for rid, vid in latest.items():
            cur = h.get(f"{s2.base}/Patient/{rid}").json()
            assert int(cur["meta"]["versionId"]) >= vid
        # transactions: acknowledged ones entirely there, the others all or nothing
        assert acked_tx
        for ids in attempted:
            present = [h.get(f"{s2.base}/Patient/{i}").status_code == 200 for i in ids]
            assert all(present) or not any(present), (ids, present)
            if ids in acked_tx:
                assert all(present), ids
        # the store still takes writes after recovery
        r = h.post(f"{s2.base}/Patient", json={"resourceType": "Patient"},
                   headers={"Content-Type": FHIR_JSON})
        assert r.status_code == 201
