"""`hortus serve`: options, graceful shutdown with writes in flight."""
import signal
import subprocess
import threading
import time

import requests

from conftest import BIN, FHIR_JSON


def test_usage_errors():
    for args in [["--port", "70000"], ["--port", "x"], ["--threads", "-1"], ["--bogus", "1"],
                 ["--port"], ["--bogus"]]:
        p = subprocess.run([BIN, "serve", *args], capture_output=True, timeout=30)
        assert p.returncode == 2, (args, p.stderr)
        assert b"usage" in p.stderr or b"bad" in p.stderr or b"needs" in p.stderr


def test_unusable_store_fails(tmp_path):
    f = tmp_path / "file"
    f.write_text("not a directory")
    p = subprocess.run([BIN, "serve", "--port", "0", "--data", str(f / "sub")],
                       capture_output=True, timeout=30)
    assert p.returncode == 1
    p = subprocess.run([BIN, "serve", "--port", "0", "--store", "postgres://x/y"],
                       capture_output=True, timeout=30)
    assert p.returncode == 1


def test_threads_option(make_server, http):
    s = make_server(extra_args=["--threads", "1"])
    r = http.post(f"{s.base}/Patient", json={"resourceType": "Patient"},
                  headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 201


def test_sigterm_with_writes_in_flight(make_server, tmp_path):
    datadir = tmp_path / "term"
    s = make_server(datadir)
    acked, bad = [], []
    stop = threading.Event()

    def writer():
        with requests.Session() as h:
            while not stop.is_set():
                try:
                    r = h.post(f"{s.base}/Patient", json={"resourceType": "Patient"},
                               headers={"Content-Type": FHIR_JSON}, timeout=10)
                except requests.RequestException:
                    return
                if r.status_code == 201:
                    acked.append(r.json()["id"])
                elif r.status_code == 503:
                    assert r.json()["resourceType"] == "OperationOutcome"
                    return
                else:
                    bad.append(r.status_code)
                    return

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    while len(acked) < 50:
        time.sleep(0.02)
    s.proc.send_signal(signal.SIGTERM)
    s.proc.wait(timeout=30)
    stop.set()
    for t in threads:
        t.join()
    out = s.output()
    assert s.proc.returncode == 0, out
    assert "Sanitizer" not in out and "runtime error" not in out, out
    assert not bad
    s2 = make_server(datadir)
    with requests.Session() as h:
        for rid in acked:
            assert h.get(f"{s2.base}/Patient/{rid}").status_code == 200
