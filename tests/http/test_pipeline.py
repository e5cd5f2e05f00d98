"""The write pipeline and the server's life: preconditions read one way everywhere
(headers and Bundle entries alike), If-None-Match on writes, a second server on a busy
port, --bind, and a shutdown that answers every write however long its commit takes."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import requests

from conftest import BIN, FHIR_JSON, Server, assert_outcome, create, free_port

CT = {"Content-Type": FHIR_JSON}


def put(http, base, res, **headers):
    return http.put(f"{base}/{res['resourceType']}/{res['id']}", data=json.dumps(res),
                    headers={**CT, **headers})


def history_len(http, base, type_, id_):
    r = http.get(f"{base}/{type_}/{id_}/_history")
    assert r.status_code == 200, r.text
    return len(r.json().get("entry", []))


# ---------------------------------------------------------------- If-None-Match on writes
def test_put_if_none_match_star_refuses_an_existing_resource(http, base):
    res = {"resourceType": "Patient", "id": "inm-star", "active": True}
    r = put(http, base, res, **{"If-None-Match": "*"})
    assert r.status_code == 201, r.text  # create-only PUT of a new id: created
    res["active"] = False
    assert_outcome(put(http, base, res, **{"If-None-Match": "*"}), 412, "conflict")
    cur = http.get(f"{base}/Patient/inm-star").json()
    assert cur["active"] is True and cur["meta"]["versionId"] == "1"
    assert history_len(http, base, "Patient", "inm-star") == 1


def test_put_if_none_match_star_on_a_deleted_resource_recreates_it(http, base):
    res = {"resourceType": "Patient", "id": "inm-del"}
    assert put(http, base, res).status_code == 201
    assert http.delete(f"{base}/Patient/inm-del").status_code == 204
    r = put(http, base, res, **{"If-None-Match": "*"})
    assert r.status_code == 201, r.text
    assert r.headers["ETag"] == 'W/"3"'


def test_put_if_none_match_list(http, base):
    res = {"resourceType": "Patient", "id": "inm-list"}
    assert put(http, base, res).status_code == 201
    assert_outcome(put(http, base, res, **{"If-None-Match": 'W/"7", W/"1"'}), 412)
    r = put(http, base, res, **{"If-None-Match": 'W/"7", "8"'})
    assert r.status_code == 200 and r.headers["ETag"] == 'W/"2"', r.text


def test_malformed_if_none_match_on_a_write_is_refused(http, base):
    res = {"resourceType": "Patient", "id": "inm-bad"}
    assert put(http, base, res).status_code == 201
    for bad in ("W/", "abc", "W/\"x\"", "*, W/\"1\"x"):
        oo = assert_outcome(put(http, base, res, **{"If-None-Match": bad}), 400)
        assert "If-None-Match" in oo["issue"][0]["diagnostics"]
    assert history_len(http, base, "Patient", "inm-bad") == 1


def test_delete_if_none_match_star_on_a_live_resource_is_412(http, base):
    res = {"resourceType": "Patient", "id": "inm-delete"}
    assert put(http, base, res).status_code == 201
    assert_outcome(http.delete(f"{base}/Patient/inm-delete", headers={"If-None-Match": "*"}),
                   412)
    assert http.get(f"{base}/Patient/inm-delete").status_code == 200


def test_create_refuses_version_preconditions(http, base):
    for h in ({"If-Match": 'W/"1"'}, {"If-None-Match": "*"}):
        assert_outcome(http.post(f"{base}/Patient", data='{"resourceType":"Patient"}',
                                 headers={**CT, **h}), 400)


def test_a_refused_plan_writes_nothing_and_is_not_retried(http, base):
    """A stale If-Match is refused by the plan, before anything is submitted: one 412,
    no new version, and the store's conflict counter does not move (it would, had the
    write been submitted and retried as a race)."""
    res = {"resourceType": "Patient", "id": "plan-refused"}
    assert put(http, base, res).status_code == 201
    assert put(http, base, res).status_code == 200

    def conflicts():
        m = re.search(r"^hortus_store_conflicts_total (\d+)", http.get(
            base.replace("/fhir", "/metrics")).text, re.M)
        return int(m.group(1)) if m else None

    before = conflicts()
    assert_outcome(put(http, base, res, **{"If-Match": 'W/"1"'}), 412)
    assert history_len(http, base, "Patient", "plan-refused") == 2
    if before is not None:
        assert conflicts() == before


# ---------------------------------------------------------------- Bundle entries
def tx(http, base, entries, type_="transaction"):
    return http.post(base, data=json.dumps({"resourceType": "Bundle", "type": type_,
                                            "entry": entries}), headers=CT)


def test_bundle_if_match_with_spaces_is_the_same_etag_as_the_header(http, base):
    res = {"resourceType": "Patient", "id": "bundle-im-space"}
    assert put(http, base, res).status_code == 201
    for kind, etag, want in (("transaction", 'W/"1" ', 'W/"2"'),
                             ("batch", ' W/"2"\t', 'W/"3"')):
        r = tx(http, base, [{"resource": res, "request": {
            "method": "PUT", "url": "Patient/bundle-im-space", "ifMatch": etag}}], kind)
        assert r.status_code == 200, r.text
        e = r.json()["entry"][0]
        assert e["response"]["status"].startswith("200"), e
        assert e["response"]["etag"] == want
    # and the header with the same spacing
    r = put(http, base, res, **{"If-Match": 'W/"3"  '})
    assert r.status_code == 200 and r.headers["ETag"] == 'W/"4"', r.text


def test_bundle_if_none_match_on_a_write(http, base):
    res = {"resourceType": "Patient", "id": "bundle-inm"}
    assert put(http, base, res).status_code == 201
    entry = {"resource": res, "request": {"method": "PUT", "url": "Patient/bundle-inm",
                                          "ifNoneMatch": "*"}}
    r = tx(http, base, [entry], "batch")
    assert r.status_code == 200, r.text
    assert r.json()["entry"][0]["response"]["status"].startswith("412")
    assert_outcome(tx(http, base, [entry]), 412)
    assert history_len(http, base, "Patient", "bundle-inm") == 1


def test_bundle_get_entry_conditional_read(http, base):
    res = {"resourceType": "Patient", "id": "bundle-get-cond"}
    assert put(http, base, res).status_code == 201
    lm = http.get(f"{base}/Patient/bundle-get-cond").json()["meta"]["lastUpdated"]
    r = tx(http, base, [
        {"request": {"method": "GET", "url": "Patient/bundle-get-cond", "ifNoneMatch": 'W/"1"'}},
        {"request": {"method": "GET", "url": "Patient/bundle-get-cond", "ifNoneMatch": 'W/"9"'}},
        {"request": {"method": "GET", "url": "Patient/bundle-get-cond", "ifModifiedSince": lm}},
        {"request": {"method": "GET", "url": "Patient/bundle-get-cond",
                     "ifModifiedSince": "2000-01-01T00:00:00Z"}},
        {"request": {"method": "GET", "url": "Patient/bundle-get-cond",
                     "ifModifiedSince": "yesterday"}},
        {"request": {"method": "GET", "url": "Patient/bundle-get-cond", "ifMatch": 'W/"1"'}},
    ], "batch")
    assert r.status_code == 200, r.text
    es = r.json()["entry"]
    assert es[0]["response"]["status"].startswith("304") and "resource" not in es[0]
    assert es[0]["response"]["etag"] == 'W/"1"'
    assert es[1]["response"]["status"].startswith("200") and es[1]["resource"]["id"]
    assert es[2]["response"]["status"].startswith("304")
    assert es[3]["response"]["status"].startswith("200")
    assert es[4]["response"]["status"].startswith("400")
    assert es[5]["response"]["status"].startswith("400")


def test_bundle_post_entry_with_if_match_is_refused(http, base):
    r = tx(http, base, [{"resource": {"resourceType": "Patient"},
                         "request": {"method": "POST", "url": "Patient", "ifMatch": 'W/"1"'}}],
           "batch")
    assert r.status_code == 200
    assert r.json()["entry"][0]["response"]["status"].startswith("400")


# ---------------------------------------------------------------- listening
def spawn(args, env=None):
    return subprocess.Popen([BIN, "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env or dict(os.environ))


def test_second_server_on_a_busy_port_fails_and_the_first_keeps_serving(server, tmp_path):
    p = spawn(["--port", str(server.port), "--data", str(tmp_path / "other")])
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("a second server on a busy port kept running")
    text = out.decode("utf-8", "replace")
    assert p.returncode == 1, text
    assert "ddress already in use" in text, text
    # every connection still reaches the first server's database
    ids = set()
    for _ in range(20):
        with requests.Session() as s:  # a new connection each time
            r = s.get(server.base + "/Patient/inm-star")
            ids.add(r.status_code)
    assert ids == {200}


def can_bind(addr):
    try:
        with socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET) as s:
            s.bind((addr, 0))
        return True
    except OSError:
        return False


def start_line(srv):
    deadline = time.time() + 10
    while time.time() < deadline:
        m = re.search(r"serving FHIR R4 at (\S+)", srv.output())
        if m:
            return m.group(1)
        time.sleep(0.05)
    raise AssertionError(srv.output())


def reachable(addr, port):
    try:
        with socket.create_connection((addr, port), timeout=2):
            return True
    except OSError:
        return False


def test_default_bind_is_loopback_and_the_start_line_says_so(make_server):
    s = make_server()
    assert start_line(s) == f"http://127.0.0.1:{s.port}/fhir"
    assert reachable("127.0.0.1", s.port)
    if can_bind("127.0.0.2"):
        assert not reachable("127.0.0.2", s.port)  # another loopback address: not bound


def test_bind_every_interface(make_server):
    s = make_server(extra_args=("--bind", "0.0.0.0", "--insecure"))
    assert start_line(s) == f"http://0.0.0.0:{s.port}/fhir"
    if can_bind("127.0.0.2"):
        assert reachable("127.0.0.2", s.port)


def test_bind_ipv6_loopback(tmp_path):
    if not can_bind("::1"):
        return
    port = free_port()
    p = spawn(["--bind", "::1", "--port", str(port), "--data", str(tmp_path / "v6")])
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(f"http://[::1]:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.05)
        r = requests.get(f"http://[::1]:{port}/fhir/metadata", timeout=5)
        assert r.status_code == 200
        assert not reachable("127.0.0.1", port)
    finally:
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=30)
    assert p.returncode == 0, out
    assert f"http://[::1]:{port}/fhir" in out.decode()


def test_bad_bind_address_is_a_clear_error(tmp_path):
    p = spawn(["--bind", "not-an-address.invalid", "--port", str(free_port()),
               "--data", str(tmp_path / "bad")])
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 1, out
    assert b"--bind" in out


# ---------------------------------------------------------------- shutdown
SLOW_COMMIT_MS = 33000  # longer than any cap a shutdown could use to give up waiting


def test_shutdown_answers_a_write_whose_commit_is_slow(tmp_path):
    """SIGTERM while a create waits 33 s for its commit: the client still gets its 201,
    a write arriving meanwhile gets 503, the server exits cleanly (no sanitizer report:
    no connection is resumed after the daemon stopped), and the resource is there after
    a restart."""
    data = tmp_path / "slow"
    # a first start writes what a new directory needs (the search index's marker), so
    # that the slow start below has nothing to commit before it serves
    first = Server(data)
    code, out = first.stop()
    assert code == 0, out
    env = dict(os.environ, HORTUS_FAULT_COMMIT_DELAY_MS=str(SLOW_COMMIT_MS))
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    port = free_port()
    log = open(tmp_path / "slow.log", "wb")
    # --audit off: the audit trail's queued events (of the 503 below) take a commit of
    # their own at shutdown, which would wait 33 s more (docs/AUDIT.md)
    p = subprocess.Popen([BIN, "serve", "--port", str(port), "--data", str(data), "--audit",
                          "off"], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        deadline = time.time() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.time() < deadline, "server did not start"
            time.sleep(0.05)
        keep = requests.Session()
        assert keep.get(base + "/metadata").status_code == 200  # an open keep-alive
        result = {}

        def slow_create():
            try:
                result["r"] = requests.post(base + "/Patient", headers=CT, timeout=120,
                                            data='{"resourceType":"Patient","active":true}')
            except requests.RequestException as e:
                result["e"] = e

        t = threading.Thread(target=slow_create)
        t.start()
        # wait until the create is in flight
        deadline = time.time() + 10
        while True:
            m = re.search(r"^hortus_http_writes_in_flight (\d+)",
                          requests.get(f"http://127.0.0.1:{port}/metrics").text, re.M)
            if m and int(m.group(1)) >= 1:
                break
            assert time.time() < deadline, "the create never got in flight"
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        late = keep.put(base + "/Patient/late", headers=CT,
                        data='{"resourceType":"Patient","id":"late"}', timeout=10)
        assert_outcome(late, 503, "transient")
        t.join(timeout=90)
        assert "e" not in result, result.get("e")
        r = result["r"]
        assert r.status_code == 201, r.text
        location = r.headers["Location"]
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()
    out = (tmp_path / "slow.log").read_text(errors="replace")
    assert p.returncode == 0, out
    assert "AddressSanitizer" not in out and "runtime error" not in out, out
    assert "waiting for 1 write to commit" in out, out  # it waited, and said so
    again = Server(data)
    try:
        rel = location.split("/fhir/", 1)[1].split("/_history")[0]
        got = requests.get(f"{again.base}/{rel}")
        assert got.status_code == 200 and got.json()["active"] is True
        assert requests.get(f"{again.base}/Patient/late").status_code == 404
    finally:
        again.stop()
