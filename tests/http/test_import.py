"""`hortus import` (src/rest/import.c): the offline bulk load. Good lines land exactly as
PUTs would (the server then finds and indexes them, `hortus check` is clean), bad lines
are listed and never half-written, a server on the directory makes it refuse, and an
import killed with SIGKILL continues where it stopped when started again."""
import gzip
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


def lines_of_file(f):
    with open(f) as fh:
        return sum(1 for line in fh if line.strip())


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
    # a test knob set to a bad value is refused, not silently defaulted
    r = run_import("--data", str(tmp_path / "knob"), str(gen), env={"HORTUS_IMPORT_BATCH": "10x"})
    assert r.returncode == 1 and "bad HORTUS_IMPORT_BATCH '10x'" in r.stderr, r.stderr
    r = run_import("--data", str(tmp_path / "knob"), str(gen),
                   env={"HORTUS_IMPORT_INDEX_CHUNK": "0"})
    assert r.returncode == 1 and "bad HORTUS_IMPORT_INDEX_CHUNK '0'" in r.stderr, r.stderr


def test_compressed_files(tmp_path, make_server):
    """.ndjson.gz and .ndjson.zst load like the plain file (several gzip members and zstd
    frames one after the other, as gzip -dc and zstd -dc read them); a file whose data is
    not what its name says, or is cut short, is listed and the other files go on; a cut
    file keeps the lines before the damage and continues from there once it is whole."""
    gen = generate(tmp_path, 6)
    plain = b"".join((gen / f).read_bytes() for f in sorted(os.listdir(gen)))
    n = sum(1 for x in plain.splitlines() if x.strip())
    half = plain.index(b"\n", len(plain) // 2) + 1
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.ndjson.gz").write_bytes(gzip.compress(plain[:half]) + gzip.compress(plain[half:]))
    zs = subprocess.run(["zstd", "-q", "-c"], input=plain[:half], capture_output=True).stdout + \
        subprocess.run(["zstd", "-q", "-c"], input=plain[half:], capture_output=True).stdout
    (src / "b.ndjson.zst").write_bytes(zs)
    gz, zd = tmp_path / "gz", tmp_path / "zd"
    r = run_import("--data", str(gz), str(src / "a.ndjson.gz"))
    assert r.returncode == 0 and f"done: {n} resources loaded" in r.stderr, r.stderr
    r = run_import("--data", str(zd), str(src / "b.ndjson.zst"))
    assert r.returncode == 0 and f"done: {n} resources loaded" in r.stderr, r.stderr
    assert entries_of(gz) == entries_of(zd) > n
    # a directory picks up compressed files too; a .gz that is not gzip is listed
    (src / "c.ndjson.gz").write_bytes(plain[:100])
    r = run_import("--data", str(tmp_path / "dir"), str(src))
    assert r.returncode == 1 and "c.ndjson.gz:1: the file is named .gz but is not gzip data" \
        in r.stderr, r.stderr
    assert f"done: {2 * n} resources loaded" in r.stderr, r.stderr
    # cut short: a compressed file is checked whole before any of it is loaded
    whole = gzip.compress(plain)
    cut = tmp_path / "cut.ndjson.gz"
    cut.write_bytes(whole[:len(whole) // 3])
    data = tmp_path / "db"
    r = run_import("--data", str(data), str(cut), str(gen / "Patient.ndjson"))
    assert r.returncode == 1 and "the gzip data is truncated" in r.stderr, r.stderr
    assert "nothing of the file is loaded" in r.stderr, r.stderr
    pats = lines_of_file(gen / "Patient.ndjson")
    assert f"done: {pats} resources loaded" in r.stderr, r.stderr  # the other file went on
    cut.write_bytes(whole)  # repaired: the file loads (it was not marked done)
    r = run_import("--data", str(data), str(cut))
    assert r.returncode == 0 and f"done: {n} resources loaded" in r.stderr, r.stderr
    assert entries_of(data) == entries_of(gz)
    # damaged in the middle (bytes overwritten): refused from the damage on, never loaded
    bad = bytearray(whole)
    bad[len(bad) // 2:len(bad) // 2 + 64] = b"\xff" * 64
    (tmp_path / "bad.ndjson.gz").write_bytes(bytes(bad))
    r = run_import("--data", str(tmp_path / "baddb"), str(tmp_path / "bad.ndjson.gz"))
    assert r.returncode == 1 and "the gzip data is corrupt" in r.stderr, r.stderr
    assert "done: 0 resources loaded" in r.stderr and ", 1 refused" in r.stderr, r.stderr
    # a zstd file cut short the same
    zcut = tmp_path / "cut.ndjson.zst"
    zcut.write_bytes(zs[:len(zs) // 4])
    r = run_import("--data", str(tmp_path / "zdb"), str(zcut))
    assert r.returncode == 1 and "the zstd data is truncated" in r.stderr, r.stderr


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


def test_index_runs_in_memory_and_in_files(tmp_path):
    """The sorted runs of the index build stay in memory while IDX_BULK_MEM_BYTES lasts
    and go to files after it: small runs (many of them), all in files, some in memory
    or all in memory give the same index, entry for entry (check compares each
    resource's entries with its ResourceParam record)."""
    gen = generate(tmp_path, 20)
    want = None
    for name, env in [("mem", {}), ("files", {"HORTUS_IMPORT_SORT_RUN": "65536",
                                              "HORTUS_IMPORT_SORT_MEM": "0"}),
                      ("mixed", {"HORTUS_IMPORT_SORT_RUN": "65536",
                                 "HORTUS_IMPORT_SORT_MEM": str(4 << 20)})]:
        data = tmp_path / name
        r = run_import("--data", str(data), str(gen), env=env)
        assert r.returncode == 0, r.stderr
        runs = int(r.stderr.split(" sorted runs")[0].rsplit(" in ", 1)[1])
        assert runs >= (1 if name == "mem" else 20), r.stderr
        got = entries_of(data)
        want = want or got
        assert got == want, (name, got, want)
    r = run_import("--data", str(tmp_path / "bad"), str(gen), env={"HORTUS_IMPORT_SORT_RUN": "1"})
    assert r.returncode == 1 and "bad HORTUS_IMPORT_SORT_RUN '1'" in r.stderr, r.stderr


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


def test_dangling_references_are_reported(tmp_path, make_server):
    """References are kept as written, in any order of files; the ones whose target is
    neither stored nor in the files are listed at the end (and as warnings in --errors),
    and the load is not refused for them."""
    gen = generate(tmp_path, 3)
    obs = [json.loads(x) for x in (gen / "Observation.ndjson").read_text().splitlines() if x]
    data, errs = tmp_path / "db", tmp_path / "errors.ndjson"
    # the observations first, alone: their patients and encounters are not there yet
    r = run_import("--data", str(data), "--errors", str(errs), str(gen / "Observation.ndjson"))
    assert r.returncode == 0, r.stderr
    targets = {(o["id"], o[k]["reference"]) for o in obs for k in ("subject", "encounter")
               if k in o}
    assert f"dangling references: {len(targets)} (to resources neither stored nor in the " \
        "files), loaded as they are" in r.stderr, r.stderr
    o = min(obs, key=lambda x: x["id"])  # listed in id order, the first 50
    assert f"Observation/{o['id']} refers to {o['subject']['reference']}, which is neither " \
        "stored nor in the files" in r.stderr
    warn = [json.loads(x) for x in errs.read_text().splitlines()]
    assert len(warn) == len(targets)
    assert {w["issue"][0]["severity"] for w in warn} == {"warning"}
    # the rest of the files (the observations again: already imported, skipped): every
    # reference of this load finds its target, in the store or in the files
    r = run_import("--data", str(data), str(gen))
    assert r.returncode == 0, r.stderr
    assert "dangling references:" not in r.stderr, r.stderr
    # a target deleted before the load counts as missing
    s = make_server(str(data))
    pat = o["subject"]["reference"]
    http = requests.Session()
    enc = {"resourceType": "Encounter", "id": "temp", "status": "finished",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}}
    assert http.put(f"{s.base}/Encounter/temp", json=enc).status_code == 201
    assert http.delete(f"{s.base}/Encounter/temp").status_code in (200, 204)
    assert http.get(f"{s.base}/Encounter/temp").status_code == 410
    s.stop()
    late = tmp_path / "late.ndjson"
    late.write_text(json.dumps({"resourceType": "Observation", "id": "late", "status": "final",
                                "code": {"text": "x"}, "subject": {"reference": pat},
                                "encounter": {"reference": "Encounter/temp"}}) + "\n")
    r = run_import("--data", str(data), str(late))
    assert r.returncode == 0, r.stderr
    assert "Observation/late refers to Encounter/temp, which is neither" in r.stderr, r.stderr
    assert "dangling references: 1 (" in r.stderr, r.stderr


def test_options_after_the_files_are_options(tmp_path):
    """`hortus import FILE --validate off` takes --validate as the option it is (it was
    taken for a file name); an unknown option after a file is refused, and after `--`
    an argument that begins with '-' is a file."""
    f = tmp_path / "p.ndjson"
    f.write_text(json.dumps({"resourceType": "Patient", "id": "oa1"}) + "\n")
    data = tmp_path / "db"
    r = run_import(str(f), "--data", str(data), "--validate", "off")
    assert r.returncode == 0, r.stderr
    assert "1 resources loaded" in r.stderr and (data / "data.mdb").exists(), r.stderr
    r = run_import(str(f), "--data", str(tmp_path / "db2"), "--bogus")
    assert r.returncode == 2 and "unknown option '--bogus'" in r.stderr, r.stderr
    assert not (tmp_path / "db2").exists()
    r = run_import("--data", str(tmp_path / "db3"), str(f), "--validate", "sometimes")
    assert r.returncode == 2 and "bad --validate 'sometimes'" in r.stderr, r.stderr
    dash = tmp_path / "-p.ndjson"
    dash.write_text(json.dumps({"resourceType": "Patient", "id": "oa2"}) + "\n")
    r = subprocess.run([BIN, "import", "--data", str(tmp_path / "db4"), "--", "-p.ndjson"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0 and "1 resources loaded" in r.stderr, r.stderr
