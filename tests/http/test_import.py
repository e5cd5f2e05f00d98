"""`hortus import` (src/rest/import.c): the offline bulk load. Good lines land exactly as
PUTs would (the server then finds and indexes them, `hortus check` is clean), bad lines
are listed and never half-written, a server on the directory makes it refuse, and an
import killed with SIGKILL continues where it stopped when started again."""
import json
import os
import signal
import subprocess
import time

import requests

from conftest import BIN


def run_import(*args, env=None):
    return subprocess.run([BIN, "import", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def generate(tmp_path, patients, name="gen"):
    out = tmp_path / name
    r = subprocess.run([BIN, "generate", "--patients", str(patients), "--seed", "11",
                        "--format", "ndjson", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def lines_of(d):
    n = 0
    for f in os.listdir(d):
        with open(d / f) as fh:
            n += sum(1 for line in fh if line.strip())
    return n


def test_good_lines_land_bad_lines_are_listed(tmp_path, make_server):
    gen = generate(tmp_path, 4)
    broken = tmp_path / "broken.ndjson"
    with open(gen / "Patient.ndjson") as f:
        first = json.loads(f.readline())
    broken.write_text("\n".join([
        json.dumps({**first, "id": "twice", "gender": "male"}),
        '{"resourceType":"Patient","id":"bad id"}',
        "{not json",
        '{"resourceType":"Nope","id":"x"}',
        '{"resourceType":"Patient","id":"g","gender":"robot"}',
        "",
        json.dumps({**first, "id": "twice", "gender": "female"}),
        '{"resourceType":"Patient","name":[{"family":"Zonder-id"}]}',
        '{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},'
        '"subject":{"reference":"Patient?identifier=x|1"}}',
    ]) + "\n")
    data = tmp_path / "db"
    errs = tmp_path / "errors.ndjson"
    r = run_import("--data", str(data), "--errors", str(errs), str(gen), str(broken))
    assert r.returncode == 1, r.stderr  # some lines were refused
    for want in ["broken.ndjson:2: Patient: the id is not a valid FHIR id",
                 "broken.ndjson:3: not valid JSON",
                 "broken.ndjson:4: resourceType is not a resource type of R4",
                 "broken.ndjson:5: Patient/g: Code 'robot'",
                 "broken.ndjson:9: Observation/o1: reference 'Patient?identifier=x|1' is a search"]:
        assert want in r.stderr, (want, r.stderr)
    outcomes = [json.loads(x) for x in errs.read_text().splitlines()]
    assert len(outcomes) == 5 and all(o["resourceType"] == "OperationOutcome" for o in outcomes)
    good = lines_of(gen) + 3  # twice (two versions), the one without an id
    assert f"done: {good} resources loaded" in r.stderr, r.stderr
    check = subprocess.run([BIN, "check", "--data", str(data)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    s = make_server(str(data))
    http = requests.Session()
    p = http.get(f"{s.base}/Patient/twice")
    assert p.json()["gender"] == "female" and p.json()["meta"]["versionId"] == "2"
    assert http.get(f"{s.base}/Patient/g").status_code == 404
    assert http.get(f"{s.base}/Patient", params={"family": "zonder-id"}).json()["total"] == 1
    obs = json.loads((gen / "Observation.ndjson").read_text().splitlines()[0])
    got = http.get(f"{s.base}/Observation", params={"subject": obs["subject"]["reference"],
                                                   "_summary": "count"}).json()["total"]
    assert got >= 1
    # a server on the directory: the import refuses, naming why
    r = run_import("--data", str(data), str(gen))
    assert r.returncode == 1 and "is a server running on it" in r.stderr
    s.stop()
    # the same files again: recognised as imported, nothing doubled
    r = run_import("--data", str(data), str(gen))
    assert r.returncode == 0 and "was imported before" in r.stderr, r.stderr
    # bad usage
    assert run_import("--data", str(data)).returncode == 2
    assert run_import("--data", str(data), str(tmp_path / "missing.ndjson")).returncode == 2
    gz = tmp_path / "x.ndjson.gz"
    gz.write_bytes(b"")
    r = run_import("--data", str(data), str(gz))
    assert r.returncode == 2 and "compressed files are not supported yet" in r.stderr


def test_killed_import_resumes(tmp_path):
    gen = generate(tmp_path, 60)
    mixed = tmp_path / "all.ndjson"  # every type in one file, so the kill lands inside it
    with open(mixed, "w") as out:
        for f in sorted(os.listdir(gen)):
            out.write((gen / f).read_text())
    data = tmp_path / "db"
    # a second per commit of 1,000 lines: about ten commits, so a kill after 4 s lands
    # after the first one and long before the last, even on a machine twice as slow
    env = {**os.environ, "HORTUS_FAULT_COMMIT_DELAY_MS": "1000", "HORTUS_IMPORT_BATCH": "1000"}
    p = subprocess.Popen([BIN, "import", "--data", str(data), str(mixed)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = run_import("--data", str(data), str(mixed))
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr, r.stderr
    check = subprocess.run([BIN, "check", "--data", str(data)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    want = lines_of(gen)
    m = [line for line in check.stdout.splitlines() if "current resources" in line][0]
    assert f", {want} current resources, {want} versions" in m, (m, want)


def entries_of(data):
    check = subprocess.run([BIN, "check", "--data", str(data)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    line = [x for x in check.stdout.splitlines() if x.startswith("ok: search index")][0]
    return int(line.split(" resources, ")[1].split(" entries")[0])


def test_killed_index_build_resumes(tmp_path):
    """The search index of a load is written at its end, sorted, in commits of its own: a
    kill among them leaves the directory marked (check says so), and the next import
    finishes the index without a key lost or doubled."""
    gen = generate(tmp_path, 60)
    fresh = tmp_path / "fresh"
    assert run_import("--data", str(fresh), str(gen)).returncode == 0
    want = entries_of(fresh)
    data = tmp_path / "db"
    env = {**os.environ, "HORTUS_FAULT_COMMIT_DELAY_MS": "200",
           "HORTUS_IMPORT_INDEX_CHUNK": str(max(1000, want // 40))}
    p = subprocess.Popen([BIN, "import", "--data", str(data), str(gen)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "writing the search index of the load" in line:
            break
    time.sleep(2.0)  # ten of the forty commits of the build
    assert p.poll() is None, "the build ended before the kill"
    p.send_signal(signal.SIGKILL)
    p.wait()
    check = subprocess.run([BIN, "check", "--data", str(data)], capture_output=True, text=True)
    assert check.returncode == 1 and "keys of a bulk load are not written yet" in check.stdout, \
        check.stdout
    r = run_import("--data", str(data), str(gen))
    assert r.returncode == 0, r.stderr
    assert "continuing the search index" in r.stderr, r.stderr
    assert entries_of(data) == want


def test_server_finishes_an_interrupted_load(tmp_path, make_server):
    """A load killed before its index was written: the server writes it before it serves,
    so no search misses what was loaded."""
    gen = generate(tmp_path, 30)
    data = tmp_path / "db"
    env = {**os.environ, "HORTUS_FAULT_COMMIT_DELAY_MS": "1000", "HORTUS_IMPORT_BATCH": "1000"}
    p = subprocess.Popen([BIN, "import", "--data", str(data), str(gen)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(4.5)  # a second per commit: the first of AllergyIntolerance.ndjson and more
    assert p.poll() is None, "the load ended before the kill"
    p.send_signal(signal.SIGKILL)
    p.wait()
    first = json.loads((gen / "AllergyIntolerance.ndjson").read_text().splitlines()[0])
    s = make_server(str(data))
    assert requests.get(f"{s.base}/AllergyIntolerance/{first['id']}").status_code == 200
    got = requests.get(f"{s.base}/AllergyIntolerance", params={"_id": first["id"]}).json()
    assert got["total"] == 1, got
    pat = first["patient"]["reference"]
    n = requests.get(f"{s.base}/AllergyIntolerance",
                     params={"patient": pat, "_summary": "count"}).json()["total"]
    assert n == sum(1 for x in (gen / "AllergyIntolerance.ndjson").read_text().splitlines()
                    if x.strip() and json.loads(x)["patient"]["reference"] == pat)
    s.stop()
    check = subprocess.run([BIN, "check", "--data", str(data)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
