"""The audit trail (docs/AUDIT.md): one AuditEvent per request, a change's event in the
change's own commit, AuditEvents read-only and behind their own scope, the hash chain
checked by `hortus check --audit` (and broken on purpose with its debugging companion
`--audit-tamper`), and `--audit off`.

Every event of the trail is read back through GET [base]/AuditEvent, which first commits
what is queued: a test never waits for the flush timer.
"""
import base64
import json
import shutil
import struct
import subprocess

import pytest
import requests

from conftest import BIN, FHIR_JSON, Server, assert_clean_exit, assert_outcome
from test_auth import AUD, ISS, auth, jwks, token

H = {"Content-Type": FHIR_JSON}
SUBTYPE = "http://hl7.org/fhir/restful-interaction"


def all_events(s, headers=None):
    """Every event of tenant 0, oldest first, following next links."""
    out = []
    url = f"{s.base}/AuditEvent?_sort=date&_count=1000"
    while url:
        r = requests.get(url, headers=headers)
        assert r.status_code == 200, r.text
        b = r.json()
        out += [e["resource"] for e in b.get("entry", [])]
        url = next((l["url"] for l in b["link"] if l["relation"] == "next"), None)
    return out


def query_of(ev):
    for e in ev.get("entity", []):
        if "query" in e:
            return base64.b64decode(e["query"]).decode()
    return None


def is_audit_search(ev):
    q = query_of(ev)
    return q is not None and q.startswith("AuditEvent?")


class Trail:
    """The events a step added, the trail's own searches left out."""

    def __init__(self, s, headers=None):
        self.s, self.headers = s, headers
        self.seen = {e["id"] for e in all_events(s, headers)}

    def new(self):
        evs = [e for e in all_events(self.s, self.headers) if e["id"] not in self.seen]
        self.seen |= {e["id"] for e in evs}
        return [e for e in evs if not is_audit_search(e)]


def subtype(ev):
    return ev["subtype"][0]["code"]


def refs(ev):
    return [e["what"]["reference"] for e in ev.get("entity", []) if "what" in e]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("audit") / "db")
    yield s
    assert_clean_exit(s)


def one(trail, sub, action, outcome):
    evs = trail.new()
    assert len(evs) == 1, [(subtype(e), e["outcome"]) for e in evs]
    ev = evs[0]
    assert ev["resourceType"] == "AuditEvent"
    assert ev["type"]["code"] == "rest"
    assert ev["subtype"][0]["system"] == SUBTYPE
    assert subtype(ev) == sub, ev
    assert ev["action"] == action, ev
    assert ev["outcome"] == outcome, ev
    assert ev["outcomeDesc"]
    client = ev["agent"][0]
    assert client["requestor"] is True
    assert client["who"]["identifier"]["value"] == "anonymous"
    assert client["network"]["address"] == "127.0.0.1"
    assert ev["source"]["observer"]["display"] == "hortus"
    return ev


def test_one_event_per_request(srv):
    b = srv.base
    t = Trail(srv)
    r = requests.post(f"{b}/Patient", headers=H,
                      json={"resourceType": "Patient", "name": [{"family": "Audit"}]})
    assert r.status_code == 201
    pid = r.json()["id"]
    ev = one(t, "create", "C", "0")
    assert refs(ev) == [f"Patient/{pid}/_history/1"]

    assert requests.get(f"{b}/Patient/{pid}").status_code == 200
    ev = one(t, "read", "R", "0")
    assert refs(ev) == [f"Patient/{pid}/_history/1"]

    assert requests.get(f"{b}/Patient?family=Audit").status_code == 200
    ev = one(t, "search-type", "E", "0")
    assert query_of(ev) == "Patient?family=Audit"

    r = requests.put(f"{b}/Patient/{pid}", headers=H,
                     json={"resourceType": "Patient", "id": pid, "name": [{"family": "Audit2"}]})
    assert r.status_code == 200
    ev = one(t, "update", "U", "0")
    assert refs(ev) == [f"Patient/{pid}/_history/2"]

    r = requests.patch(f"{b}/Patient/{pid}", headers={"Content-Type": "application/json-patch+json"},
                       data=json.dumps([{"op": "add", "path": "/active", "value": True}]))
    assert r.status_code == 200, r.text
    ev = one(t, "patch", "U", "0")
    assert refs(ev) == [f"Patient/{pid}/_history/3"]

    assert requests.get(f"{b}/Patient/{pid}/_history/2").status_code == 200
    ev = one(t, "vread", "R", "0")
    assert refs(ev) == [f"Patient/{pid}/_history/2"]

    assert requests.get(f"{b}/Patient/{pid}/_history").status_code == 200
    ev = one(t, "history-instance", "R", "0")
    assert refs(ev) == [f"Patient/{pid}"]

    assert requests.delete(f"{b}/Patient/{pid}").status_code in (200, 204)
    ev = one(t, "delete", "D", "0")
    assert refs(ev) == [f"Patient/{pid}/_history/4"]

    r = requests.get(f"{b}/Patient/not-there")
    assert r.status_code == 404
    ev = one(t, "read", "R", "4")
    assert "not-there" in ev["outcomeDesc"]

    r = requests.get(f"{b}/Patient?no-such-param=1")
    assert r.status_code == 400
    ev = one(t, "search-type", "E", "4")

    r = requests.post(f"{b}/Patient", headers=H, json={"resourceType": "Patient", "bad": 1})
    assert r.status_code == 400
    ev = one(t, "create", "C", "4")
    assert not refs(ev)  # nothing was written


def test_transaction_and_batch(srv):
    b = srv.base
    t = Trail(srv)
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:aaaaaaaa-0000-0000-0000-000000000001",
         "resource": {"resourceType": "Patient", "name": [{"family": "Tx"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final",
                      "code": {"text": "x"},
                      "subject": {"reference": "urn:uuid:aaaaaaaa-0000-0000-0000-000000000001"}},
         "request": {"method": "POST", "url": "Observation"}}]}
    r = requests.post(b, headers=H, json=tx)
    assert r.status_code == 200, r.text
    ev = one(t, "transaction", "E", "0")
    got = sorted(x.split("/")[0] for x in refs(ev))
    assert got == ["Observation", "Patient"]
    locs = [e["response"]["location"] for e in r.json()["entry"]]
    for loc in locs:  # Type/id/_history/1, as the response says
        assert any(loc.endswith(x) for x in refs(ev)), (loc, refs(ev))

    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": "B1"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient?family=B1"}},
        {"resource": {"resourceType": "Patient", "id": "batch-b2", "name": [{"family": "B2"}]},
         "request": {"method": "PUT", "url": "Patient/batch-b2"}}]}
    r = requests.post(b, headers=H, json=batch)
    assert r.status_code == 200, r.text
    evs = t.new()
    # the batch's own event, and one per write entry (each its own commit)
    kinds = sorted(subtype(e) for e in evs)
    assert kinds == ["batch", "create", "update"], kinds
    upd = next(e for e in evs if subtype(e) == "update")
    assert refs(upd) == ["Patient/batch-b2/_history/1"]


def test_change_exists_exactly_with_its_event(srv):
    """Every version written has a create/update/delete event naming it, and no event of
    a committed change names a version that does not exist."""
    b = srv.base
    for i in range(5):
        r = requests.put(f"{b}/Observation/ex{i}", headers=H, json={
            "resourceType": "Observation", "id": f"ex{i}", "status": "final",
            "code": {"text": str(i)}})
        assert r.status_code in (200, 201)
    evs = all_events(srv)
    changed = set()
    for e in evs:
        if subtype(e) in ("create", "update", "patch", "delete", "transaction") \
                and e["outcome"] == "0":
            changed |= {x for x in refs(e) if "/_history/" in x}
    h = requests.get(f"{b}/_history?_count=1000").json()
    versions = set()
    for e in h.get("entry", []):
        loc = e["response"].get("location") or e["fullUrl"]
        typ_id = "/".join(loc.split("/fhir/")[-1].split("/")[:2])
        vid = e["response"]["etag"].strip('W/"')
        versions.add(f"{typ_id}/_history/{vid}")
    assert versions <= changed, versions - changed
    assert changed <= versions, changed - versions


def test_audit_events_are_read_only(srv):
    b = srv.base
    ev = all_events(srv)[0]
    r = requests.get(f"{b}/AuditEvent/{ev['id']}")
    assert r.status_code == 200 and r.json()["id"] == ev["id"]
    body = {"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded":
            "2024-01-01T00:00:00Z", "agent": [{"requestor": True}], "source": {"observer": {"display": "x"}}}
    assert_outcome(requests.post(f"{b}/AuditEvent", headers=H, json=body), 405)
    assert_outcome(requests.put(f"{b}/AuditEvent/{ev['id']}", headers=H,
                                json={**body, "id": ev["id"]}), 405)
    assert_outcome(requests.delete(f"{b}/AuditEvent/{ev['id']}"), 405)
    assert_outcome(requests.patch(f"{b}/AuditEvent/{ev['id']}", data="[]",
                                  headers={"Content-Type": "application/json-patch+json"}), 405)
    tx = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": body, "request": {"method": "POST", "url": "AuditEvent"}}]}
    r = requests.post(b, headers=H, json=tx)
    assert r.status_code == 200
    assert r.json()["entry"][0]["response"]["status"].startswith("405")
    assert requests.get(f"{b}/AuditEvent/{ev['id']}").json()["recorded"] == ev["recorded"]
    assert_outcome(requests.get(f"{b}/AuditEvent?unknown-param=1"), 400)
    assert_outcome(requests.get(f"{b}/AuditEvent?_sort=outcome"), 400)
    assert_outcome(requests.get(f"{b}/AuditEvent?date=yesterday"), 400)
    assert requests.get(f"{b}/AuditEvent/99999999-0").status_code == 404


def test_search_parameters(srv):
    b = srv.base
    r = requests.put(f"{b}/Patient/search-me", headers=H,
                     json={"resourceType": "Patient", "id": "search-me"})
    assert r.status_code in (200, 201)
    requests.get(f"{b}/Patient/search-me")
    requests.get(f"{b}/Patient/missing-one")

    def search(q):
        r = requests.get(f"{b}/AuditEvent?{q}")
        assert r.status_code == 200, r.text
        return [e["resource"] for e in r.json().get("entry", [])]

    got = search("entity=Patient/search-me")
    assert {subtype(e) for e in got} >= {"update", "read"}
    assert all(any(x.startswith("Patient/search-me") for x in refs(e)) for e in got)
    assert all(e["outcome"] == "4" for e in search("outcome=4"))
    assert any("missing-one" in e["outcomeDesc"] for e in search("outcome=4"))
    reads = search(f"subtype={SUBTYPE}|read")
    assert reads and all(subtype(e) == "read" for e in reads)
    assert search("subtype=read") == reads
    assert search("type=http://terminology.hl7.org/CodeSystem/audit-event-type|rest")
    assert not search("type=http://other|rest")
    assert search("agent=anonymous") and search("who=anonymous")
    assert search("agent:identifier=urn:hortus:client-id|anonymous")
    assert not search("agent=somebody-else")
    assert not search("date=lt2000-01-01")
    assert search("date=ge2000-01-01&_count=1")
    # newest first by default and with _sort=-date; paging by the next link
    newest = search("subtype=read&_count=3")
    assert newest == search("subtype=read&_sort=-date&_count=3")
    assert newest == reads[:3]
    rec = [e["recorded"] for e in newest]
    assert rec == sorted(rec, reverse=True)
    r = requests.get(f"{b}/AuditEvent?_count=2&subtype=read").json()
    nxt = next(l["url"] for l in r["link"] if l["relation"] == "next")
    page2 = requests.get(nxt).json()
    ids1 = [e["resource"]["id"] for e in r["entry"]]
    ids2 = [e["resource"]["id"] for e in page2["entry"]]
    assert not set(ids1) & set(ids2)
    assert ids1 + ids2 == [e["id"] for e in reads[:len(ids1) + len(ids2)]]
    # every page of 3, both ways, gives the whole list once, in order
    for sort in ("-date", "date"):
        whole = [e["id"] for e in search(f"subtype=read,create,update&_sort={sort}&_count=1000")]
        got, url = [], f"{b}/AuditEvent?subtype=read,create,update&_sort={sort}&_count=3"
        while url:
            page = requests.get(url).json()
            got += [e["resource"]["id"] for e in page.get("entry", [])]
            url = next((l["url"] for l in page["link"] if l["relation"] == "next"), None)
        assert got == whole and len(whole) > 6, (sort, got, whole)


def audit_key(event_id, tenant=0):
    t, seq = (int(x) for x in event_id.split("-"))
    return struct.pack(">IQI", tenant, t, seq)


def tamper(datadir, fn):
    """Change the Audit database of a stopped server's directory (python3-lmdb)."""
    import lmdb
    env = lmdb.open(str(datadir), max_dbs=16, lock=False)
    with env.begin(write=True) as txn:
        fn(txn, env.open_db(b"Audit", txn=txn))
    env.close()


def check_audit(datadir):
    r = subprocess.run([BIN, "check", "--audit", str(datadir)], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def test_chain_check_and_tamper(tmp_path):
    s = Server(tmp_path / "db")
    for i in range(3):
        requests.put(f"{s.base}/Patient/c{i}", headers=H,
                     json={"resourceType": "Patient", "id": f"c{i}"})
        requests.get(f"{s.base}/Patient/c{i}")
    evs = all_events(s)
    assert len(evs) >= 6
    # each event links to the SHA-256 of the one before it, as stored
    assert evs[0]["extension"][0]["valueString"] == "0" * 64
    assert len({e["extension"][0]["valueString"] for e in evs}) == len(evs)
    assert_clean_exit(s)
    code, out = check_audit(tmp_path / "db")
    assert code == 0, out
    n = len(evs) + 1  # and the search that listed them
    assert f"audit chain: {n} events, intact" in out
    r = subprocess.run([BIN, "check", "--data", str(tmp_path / "db")], capture_output=True,
                       text=True)
    assert r.returncode == 0 and f"audit chain: {n} events, intact" in r.stdout, r.stdout

    middle, last = audit_key(evs[2]["id"]), audit_key(evs[-1]["id"])

    def alter(txn, db):  # one digit of when it was recorded
        v = txn.get(middle, db=db)
        i = v.index(b'"rec":') + 6
        w = v[:i] + (b"1" if v[i:i + 1] != b"1" else b"2") + v[i + 1:]
        assert w != v
        txn.put(middle, w, db=db)

    def remove(txn, db):
        assert txn.delete(middle, db=db)

    def insert(txn, db):  # a copy of it, right after it
        k = middle[:12] + struct.pack(">I", 1000000)
        txn.put(k, txn.get(middle, db=db), db=db)

    def remove_newest(txn, db):  # only the chain head can tell
        newest = None
        for key, _ in txn.cursor(db=db):
            if key != struct.pack(">I", 0) + b"\xff" * 12:
                newest = key
        assert txn.delete(newest, db=db)

    def remove_all(txn, db):
        for key, _ in list(txn.cursor(db=db)):
            if key != struct.pack(">I", 0) + b"\xff" * 12:
                txn.delete(key, db=db)

    for name, fn in (("alter", alter), ("delete", remove), ("insert", insert),
                     ("newest", remove_newest), ("all", remove_all)):
        d = tmp_path / f"db-{name}"
        shutil.copytree(tmp_path / "db", d, ignore=shutil.ignore_patterns("hortus.lock"))
        tamper(d, fn)
        code, out = check_audit(d)
        assert code == 1, (name, out)
        assert "PROBLEM" in out and "intact" not in out, (name, out)


def test_audit_off(tmp_path):
    s = Server(tmp_path / "db", ["--audit", "off"])
    requests.put(f"{s.base}/Patient/off", headers=H, json={"resourceType": "Patient", "id": "off"})
    requests.get(f"{s.base}/Patient/off")
    assert all_events(s) == []
    assert "hortus_audit_" not in requests.get(s.root + "/metrics").text
    assert_outcome(requests.post(f"{s.base}/AuditEvent", headers=H,
                                 json={"resourceType": "AuditEvent"}), 405)
    code, out = s.stop()
    assert code == 0
    assert "--audit off" in out
    r = subprocess.run([BIN, "check", "--audit", str(tmp_path / "db")], capture_output=True,
                       text=True)
    assert "audit chain: 0 events, intact" in r.stdout, r.stdout
    bad = subprocess.run([BIN, "serve", "--data", str(tmp_path / "x"), "--audit", "maybe"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--audit" in bad.stderr


@pytest.fixture(scope="module")
def asrv(tmp_path_factory):
    d = tmp_path_factory.mktemp("audit-auth")
    jf = d / "jwks.json"
    jf.write_text(json.dumps(jwks()))
    s = Server(d / "db", ["--auth-jwks", str(jf), "--auth-issuer", ISS,
                          "--auth-audience", AUD])
    yield s
    assert_clean_exit(s)


def test_scopes_and_agents(asrv):
    b = asrv.base
    reader = auth(token("system/AuditEvent.rs"))
    t = Trail(asrv, reader)
    tok = token("user/Patient.cruds", sub="u1", client_id="app-1",
                fhirUser="Practitioner/pr1", purpose_of_use="TREAT")
    r = requests.put(f"{b}/Patient/a1", headers=auth(tok),
                     json={"resourceType": "Patient", "id": "a1"})
    assert r.status_code == 201, r.text
    evs = t.new()
    assert len(evs) == 1
    ev = evs[0]
    assert subtype(ev) == "update" and refs(ev) == ["Patient/a1/_history/1"]
    assert ev["agent"][0]["who"]["identifier"]["value"] == "app-1"
    assert ev["agent"][1]["who"]["reference"] == "Practitioner/pr1"
    assert ev["agent"][1]["requestor"] is True
    assert ev["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    # azp names the client when client_id is absent; no purpose: none recorded
    tok2 = token("user/Patient.rs", azp="app-2")
    assert requests.get(f"{b}/Patient/a1", headers=auth(tok2)).status_code == 200
    ev = t.new()[0]
    assert ev["agent"][0]["who"]["identifier"]["value"] == "app-2"
    assert "purposeOfEvent" not in ev
    # 401 and 403 leave events too
    assert requests.get(f"{b}/Patient/a1").status_code == 401
    evs = t.new()
    assert len(evs) == 1 and evs[0]["outcome"] == "4" and subtype(evs[0]) == "read"
    assert requests.get(f"{b}/Observation?code=x", headers=auth(tok2)).status_code == 403
    evs = t.new()
    assert len(evs) == 1 and evs[0]["outcome"] == "4" and subtype(evs[0]) == "search-type"
    # the trail needs a scope of its own: a wildcard does not grant it
    for scope in ("system/*.cruds", "user/*.rs", "user/Patient.rs", "patient/AuditEvent.rs"):
        hdr = auth(token(scope, patient="a1"))
        assert_outcome(requests.get(f"{b}/AuditEvent", headers=hdr), 403)
        assert_outcome(requests.get(f"{b}/AuditEvent/{ev['id']}", headers=hdr), 403)
    for scope in ("user/AuditEvent.rs", "system/AuditEvent.read", "user/AuditEvent.r"):
        hdr = auth(token(scope))
        assert requests.get(f"{b}/AuditEvent/{ev['id']}", headers=hdr).status_code == 200
    assert requests.get(f"{b}/AuditEvent", headers=auth(token("user/AuditEvent.s"))).status_code == 200
    # and even it cannot write
    w = auth(token("system/AuditEvent.cruds"))
    assert requests.post(f"{b}/AuditEvent", headers=w,
                         json={"resourceType": "AuditEvent"}).status_code in (403, 405)


def test_metrics(srv):
    m = requests.get(srv.root + "/metrics").text
    assert "hortus_audit_queued_events_total " in m
    assert "hortus_audit_lost_events_total 0" in m


def test_capability_statement(srv):
    cs = requests.get(f"{srv.base}/metadata").json()
    res = next(r for r in cs["rest"][0]["resource"] if r["type"] == "AuditEvent")
    assert [i["code"] for i in res["interaction"]] == ["read", "search-type"]
    names = {p["name"] for p in res["searchParam"]}
    assert {"date", "agent", "entity", "type", "subtype", "outcome"} <= names
    assert not res.get("conditionalCreate")


def test_kill9_loses_no_change_event(tmp_path):
    """A change's event is in the change's commit: after kill -9 every version written has
    its event (reads queued at the crash may be lost; none are asserted), and the chain of
    what was committed is intact."""
    s = Server(tmp_path / "db")
    for i in range(20):
        r = requests.put(f"{s.base}/Patient/k{i}", headers=H,
                         json={"resourceType": "Patient", "id": f"k{i}"})
        assert r.status_code == 201
        requests.get(f"{s.base}/Patient/k{i}")
    r = requests.put(f"{s.base}/Patient/k0", headers={**H, "If-Match": 'W/"7"'},
                     json={"resourceType": "Patient", "id": "k0", "active": True})
    assert r.status_code == 412
    s.kill9()
    code, out = check_audit(tmp_path / "db")
    assert code == 0 and "intact" in out, out
    s2 = Server(tmp_path / "db")
    evs = all_events(s2)
    writes = [e for e in evs if subtype(e) == "update" and e["outcome"] == "0"]
    assert sorted(refs(e)[0] for e in writes) == sorted(f"Patient/k{i}/_history/1"
                                                         for i in range(20))
    assert requests.get(f"{s2.base}/Patient/k0").json()["meta"]["versionId"] == "1"
    assert_clean_exit(s2)
