"""Custom search parameters (docs/SEARCH.md section 6): a SearchParameter resource registers
its parameter for its base types, the reindex thread indexes what was stored before, and
search by it then equals what the definition says, including while clients keep writing
and across a kill -9 in the middle of the reindex. Each test has a server of its own: the
parameters it defines must not leak into the other tests."""
import os
import subprocess
import threading
import time
import uuid

import requests

from conftest import BIN, FHIR_JSON, assert_outcome

CT = {"Content-Type": FHIR_JSON}
EYE = "http://example.org/fhir/StructureDefinition/eye-colour"
REF = "http://example.org/fhir/StructureDefinition/care-home"


def put(http, base, res, want=(200, 201)):
    r = http.put(f"{base}/{res['resourceType']}/{res['id']}", json=res, headers=CT)
    assert r.status_code in want, r.text
    return r


def patient(pid, eye=None, family="Jansen"):
    p = {"resourceType": "Patient", "id": pid, "name": [{"family": family}]}
    if eye is not None:
        p["extension"] = [{"url": EYE, "valueString": eye}]
    return p


def search_param(spid, code, expr, type_="string", base=("Patient",), status="active",
                 **extra):
    return {"resourceType": "SearchParameter", "id": spid,
            "url": f"http://example.org/fhir/SearchParameter/{spid}", "name": spid,
            "status": status, "description": "a test parameter", "code": code,
            "base": list(base), "type": type_, "expression": expr, **extra}


def eye_param(spid="eye", code="eye-colour", url=EYE):
    return search_param(spid, code, f"Patient.extension('{url}').value")


def ids(http, url, **params):
    """Every match of a search, over all pages, and whether an outcome warned."""
    params.setdefault("_count", "500")
    r = http.get(url, params=params)
    assert r.status_code == 200, r.text
    out, warned = [], False
    while True:
        b = r.json()
        for e in b.get("entry", []):
            if e["search"]["mode"] == "match":
                out.append(e["resource"]["id"])
            if e["search"]["mode"] == "outcome":
                warned = True
        nxt = next((l["url"] for l in b["link"] if l["relation"] == "next"), None)
        if not nxt:
            return sorted(out), warned
        r = http.get(nxt)
        assert r.status_code == 200, r.text


def reindex_status(http, base):
    r = http.get(f"{base}/$reindex")
    assert r.status_code == 200, r.text
    jobs = []
    for p in r.json()["parameter"]:
        if p["name"] != "job":
            continue
        parts = {q["name"]: q for q in p["part"]}
        jobs.append({"sp": parts["searchParameter"]["valueReference"]["reference"],
                     "code": parts["code"]["valueCode"], "base": parts["base"]["valueCode"],
                     "status": parts["status"]["valueCode"],
                     "processed": parts["processed"]["valueInteger"],
                     "total": parts["total"]["valueInteger"]})
    return jobs


def wait_complete(http, base, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs = reindex_status(http, base)
        if all(j["status"] == "complete" for j in jobs):
            return jobs
        time.sleep(0.1)
    raise AssertionError(f"reindex not complete: {reindex_status(http, base)}")


def test_register_search_update_and_delete(make_server):
    s = make_server()
    http = requests.Session()
    b = s.base
    for i, eye in enumerate(["blue", "green", "Blue-grey", None]):
        put(http, b, patient(f"old{i}", eye))
    # unknown before it is defined
    assert_outcome(http.get(f"{b}/Patient", params={"eye-colour": "blue"}), 400, "not-supported")
    r = put(http, b, eye_param())
    assert r.status_code == 201
    put(http, b, patient("new0", "blue"))
    jobs = wait_complete(http, b)
    assert jobs == [{"sp": "SearchParameter/eye", "code": "eye-colour", "base": "Patient",
                     "status": "complete", "processed": 5, "total": 5}]
    # string semantics: prefix, case- and accent-insensitive; :exact; :missing
    assert ids(http, f"{b}/Patient", **{"eye-colour": "blue"}) == (
        ["new0", "old0", "old2"], False)
    assert ids(http, f"{b}/Patient", **{"eye-colour:exact": "blue"}) == (["new0", "old0"], False)
    assert ids(http, f"{b}/Patient", **{"eye-colour:missing": "true"}) == (["old3"], False)
    assert ids(http, f"{b}/Patient", **{"eye-colour": "green", "family": "jan"}) == (
        ["old1"], False)
    # a write after the definition indexes itself; an update moves the entry
    put(http, b, patient("old0", "green"))
    assert ids(http, f"{b}/Patient", **{"eye-colour": "green"}) == (["old0", "old1"], False)
    http.delete(f"{b}/Patient/old1")
    assert ids(http, f"{b}/Patient", **{"eye-colour": "green"}) == (["old0"], False)
    # _sort by it
    r = http.get(f"{b}/Patient", params={"_sort": "-eye-colour", "eye-colour:missing": "false"})
    assert [e["resource"]["id"] for e in r.json()["entry"]] == ["old0", "old2", "new0"]
    # the CapabilityStatement lists it
    cap = http.get(f"{b}/metadata").json()
    pat = next(t for t in cap["rest"][0]["resource"] if t["type"] == "Patient")
    assert {"name": "eye-colour", "type": "string",
            "definition": "http://example.org/fhir/SearchParameter/eye"} in [
        {k: p.get(k) for k in ("name", "type", "definition")} for p in pat["searchParam"]]
    # a new definition (another extension) is reindexed from scratch
    put(http, b, patient("other", None) | {"extension": [{"url": REF, "valueString": "blue"}]})
    put(http, b, eye_param(url=REF))
    wait_complete(http, b)
    assert ids(http, f"{b}/Patient", **{"eye-colour": "blue"}) == (["other"], False)
    # retired: no longer searchable; active again: back
    put(http, b, eye_param(url=REF) | {"status": "retired"})
    assert_outcome(http.get(f"{b}/Patient", params={"eye-colour": "blue"}), 400, "not-supported")
    assert reindex_status(http, b) == []
    put(http, b, eye_param(url=REF))
    wait_complete(http, b)
    assert ids(http, f"{b}/Patient", **{"eye-colour": "blue"}) == (["other"], False)
    # deleted: unknown again
    assert http.delete(f"{b}/SearchParameter/eye").status_code in (200, 204)
    assert_outcome(http.get(f"{b}/Patient", params={"eye-colour": "blue"}), 400, "not-supported")
    code, out = s.stop()
    assert code == 0, out
    check = subprocess.run([BIN, "check", "--data", s.datadir], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_token_reference_date_params_with_chain_and_include(make_server):
    s = make_server()
    http = requests.Session()
    b = s.base
    put(http, b, {"resourceType": "Organization", "id": "home1", "name": "De Linde"})
    put(http, b, {"resourceType": "Organization", "id": "home2", "name": "Het Anker"})
    for pid, home, day in [("a", "home1", "2020-01-05"), ("b", "home2", "2021-06-01"),
                           ("c", "home1", None)]:
        p = patient(pid)
        p["extension"] = [{"url": REF, "valueReference": {"reference": f"Organization/{home}"}}]
        if day:
            p["extension"].append({"url": EYE, "valueDate": day})
        put(http, b, p)
    put(http, b, search_param("home", "care-home", f"Patient.extension('{REF}').value",
                              type_="reference", target=["Organization"]))
    put(http, b, search_param("since", "in-home-since", f"Patient.extension('{EYE}').value",
                              type_="date"))
    put(http, b, search_param("vip", "vip-code", "Patient.meta.tag", type_="token"))
    wait_complete(http, b)
    assert ids(http, f"{b}/Patient", **{"care-home": "Organization/home1"}) == (["a", "c"], False)
    assert ids(http, f"{b}/Patient", **{"care-home": "home2"}) == (["b"], False)
    assert ids(http, f"{b}/Patient", **{"care-home.name": "de linde"}) == (["a", "c"], False)
    assert ids(http, f"{b}/Organization", **{"_has:Patient:care-home:in-home-since": "ge2021"}) \
        == (["home2"], False)
    r = http.get(f"{b}/Patient", params={"_id": "a", "_include": "Patient:care-home"})
    assert sorted(f"{e['search']['mode']}:{e['resource']['id']}" for e in r.json()["entry"]) == [
        "include:home1", "match:a"]
    r = http.get(f"{b}/Patient", params={"_id": "b", "_include": "*"})
    assert "home2" in [e["resource"]["id"] for e in r.json()["entry"]]
    r = http.get(f"{b}/Organization", params={"_id": "home1", "_revinclude": "Patient:care-home"})
    assert sorted(e["resource"]["id"] for e in r.json()["entry"]) == ["a", "c", "home1"]
    assert ids(http, f"{b}/Patient", **{"in-home-since": "lt2021"}) == (["a"], False)
    assert ids(http, f"{b}/Patient", **{"in-home-since": "2021-06"}) == (["b"], False)
    put(http, b, patient("v") | {"meta": {"tag": [{"system": "http://ex.org/t", "code": "vip"}]}})
    assert ids(http, f"{b}/Patient", **{"vip-code": "http://ex.org/t|vip"}) == (["v"], False)
    code, out = s.stop()
    assert code == 0, out
    check = subprocess.run([BIN, "check", "--data", s.datadir], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_refused_definitions_and_reindex_errors(make_server):
    s = make_server()
    http = requests.Session()
    b = s.base

    def refused(res, words, status=422, code="processing"):
        r = http.put(f"{b}/SearchParameter/{res['id']}", json=res, headers=CT)
        assert_outcome(r, status, code)
        assert words in r.json()["issue"][0]["diagnostics"], r.text

    refused(search_param("x1", "name", "Patient.name"), "parameter of the R4 model")
    refused(search_param("x2", "c1", "Patient.name", type_="composite"), "not supported")
    refused(search_param("x3", "c1", "Patient.name", type_="special"), "not supported")
    refused(search_param("x4", "c1", "Patient.name(", type_="string"), "does not compile")
    refused(search_param("x5", "c1", "Patient.name", base=("Resource",)), "concrete resource")
    # (not a resource type at all: the required binding of base refuses it first)
    refused(search_param("x6", "c1", "Patient.name", base=("Nope",)), "Nope", 400, "code-invalid")
    refused(search_param("x7", "_c1", "Patient.name"), "must be 1-64")
    refused(search_param("x8", "a.b", "Patient.name"), "must be 1-64")
    refused(search_param("x9", "c1", "Patient.name", type_="text"), "text", 400, "code-invalid")
    no_expr = search_param("x10", "c1", "Patient.name")
    del no_expr["expression"]
    refused(no_expr, "expression is required")
    put(http, b, search_param("first", "c1", "Patient.name.family"))
    refused(search_param("second", "c1", "Patient.name.given"), "defined by SearchParameter/first")
    # a draft is stored, not searchable; a model parameter's own definition is stored, and
    # changes nothing
    put(http, b, search_param("draft", "c2", "Patient.name", status="draft"))
    assert_outcome(http.get(f"{b}/Patient", params={"c2": "x"}), 400, "not-supported")
    model = search_param("dup", "family", "Patient.name.family")
    model["url"] = "http://hl7.org/fhir/SearchParameter/individual-family"
    put(http, b, model)
    assert http.get(f"{b}/Patient", params={"family": "x"}).status_code == 200
    # $reindex: errors name what is wrong
    assert_outcome(http.post(f"{b}/$reindex", params={"type": "Patient"}, headers=CT), 400, "not-supported")
    assert_outcome(http.post(f"{b}/$reindex", headers=CT,
                             json={"resourceType": "Parameters",
                                   "parameter": [{"name": "type", "valueString": "x"}]}),
                   400, "not-supported")
    assert_outcome(http.post(f"{b}/SearchParameter/nope/$reindex", headers=CT), 404, "not-found")
    assert_outcome(http.post(f"{b}/SearchParameter/draft/$reindex", headers=CT), 422, "processing")
    assert_outcome(http.post(f"{b}/Patient/p/$reindex", headers=CT), 400, "not-supported")
    r = http.post(f"{b}/Observation/$reindex", headers=CT)
    assert r.status_code == 200 and r.json()["parameter"][0]["name"] == "note"
    r = http.post(f"{b}/SearchParameter/first/$reindex", headers=CT)
    assert r.status_code == 202 and r.headers["Content-Location"] == f"{b}/$reindex"
    assert [p["name"] for p in r.json()["parameter"]] == ["job"]
    assert [j["code"] for j in reindex_status(http, b)] == ["c1"]
    wait_complete(http, b)
    s.stop()


def test_warning_while_the_reindex_runs_and_restart(make_server):
    # one resource per reindex commit, each commit slowed: the reindex takes seconds
    s = make_server(env={"HORTUS_REINDEX_BATCH": "1", "HORTUS_FAULT_COMMIT_DELAY_MS": "40"})
    http = requests.Session()
    b = s.base
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(f"p{i}", "blue"), "request": {"method": "PUT", "url": f"Patient/p{i}"}}
        for i in range(60)]}
    assert http.post(b, json=bundle, headers=CT).status_code == 200
    put(http, b, eye_param())
    found, warned = ids(http, f"{b}/Patient", **{"eye-colour": "blue"})
    assert warned and len(found) < 60
    r = http.get(f"{b}/Patient", params={"eye-colour": "blue"})
    outcome = [e for e in r.json()["entry"] if e["search"]["mode"] == "outcome"][0]["resource"]
    assert "reindex of search parameter eye-colour (Patient) is not complete" in \
        outcome["issue"][0]["diagnostics"]
    assert outcome["issue"][0]["severity"] == "warning"
    job = reindex_status(http, b)[0]
    assert job["status"] in ("queued", "running") and job["total"] == 60
    metrics = http.get(f"{s.root}/metrics").text
    assert "hortus_reindex_pending 1" in metrics
    # a restart from the beginning while it runs
    r = http.post(f"{b}/$reindex", headers=CT)
    assert r.status_code == 202
    wait_complete(http, b)
    assert ids(http, f"{b}/Patient", **{"eye-colour": "blue"}) == (
        sorted(f"p{i}" for i in range(60)), False)
    metrics = http.get(f"{s.root}/metrics").text
    assert "hortus_reindex_pending 0" in metrics
    s.stop()


def test_reindex_under_load_survives_kill9(make_server, tmp_path):
    """A custom parameter defined over 3,000 stored patients is reindexed while 8 clients
    write and read; the server is killed mid-way, and the reindex resumes. Afterwards the
    search equals the oracle (the definition applied to every current patient) and the
    store checks clean."""
    datadir = tmp_path / "load"
    # small batches and slow commits: the reindex takes seconds, so the kill lands inside it
    env = {"HORTUS_REINDEX_BATCH": "40", "HORTUS_FAULT_COMMIT_DELAY_MS": "15"}
    s = make_server(datadir, env=env)
    http = requests.Session()
    b = s.base
    colours = ["blue", "green", "brown", "grey"]
    n = 3000
    for k in range(0, n, 500):
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": patient(f"p{i}", colours[i % 4]),
             "request": {"method": "PUT", "url": f"Patient/p{i}"}} for i in range(k, k + 500)]}
        assert http.post(b, json=bundle, headers=CT).status_code == 200
    put(http, b, eye_param())
    stop = threading.Event()
    errors = []

    def client(c):
        h = requests.Session()
        i = 0
        while not stop.is_set():
            i += 1
            try:
                if c % 2 == 0:  # writers: new patients and updates of stored ones
                    pid = f"w{c}-{i}" if i % 2 else f"p{(c * 7919 + i * 104729) % n}"
                    r = h.put(f"{b}/Patient/{pid}", json=patient(pid, colours[(c + i) % 4]),
                              headers=CT, timeout=30)
                    if r.status_code not in (200, 201):
                        errors.append(r.text)
                else:
                    r = h.get(f"{b}/Patient", params={"eye-colour": colours[i % 4],
                                                     "_count": "5"}, timeout=30)
                    if r.status_code != 200:
                        errors.append(r.text)
            except requests.RequestException:
                if not stop.is_set():
                    time.sleep(0.05)  # the server is being killed and restarted

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    # kill it once the reindex is under way but not done
    deadline = time.time() + 60
    while time.time() < deadline:
        job = reindex_status(http, b)[0]
        if 0 < job["processed"] < n // 2:
            break
        time.sleep(0.02)
    assert 0 < job["processed"] < n, job
    s.kill9()
    s2 = make_server(datadir, env=env)
    b = s2.base  # the clients keep using the old port: point them at the new one
    job2 = reindex_status(http, b)[0]
    assert job2["status"] != "queued" or job2["processed"] == 0
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    wait_complete(http, b, timeout=300)
    # the oracle: every current patient's extension value, read back
    expect = {c: [] for c in colours}
    url = f"{b}/Patient"
    params = {"_count": "1000"}
    while url:
        page = http.get(url, params=params).json()
        params = None
        for e in page.get("entry", []):
            p = e["resource"]
            for x in p.get("extension", []):
                if x["url"] == EYE:
                    expect[x["valueString"]].append(p["id"])
        url = next((l["url"] for l in page["link"] if l["relation"] == "next"), None)
    for c in colours:
        assert ids(http, f"{b}/Patient", **{"eye-colour:exact": c}) == (sorted(expect[c]), False)
    code, out = s2.stop()
    assert code == 0, out
    check = subprocess.run([BIN, "check", "--data", str(datadir)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
