"""Fixtures for the HTTP black-box tests: a real `hortus serve` on a free port.

HORTUS_BIN names the binary (the Makefile passes build/hortus-san); each server
gets a fresh data directory. At teardown the server is stopped with SIGTERM and
must exit cleanly with no sanitizer report in its stderr.
"""
import os
import signal
import socket
import subprocess
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("HORTUS_BIN", os.path.join(ROOT, "build", "hortus-san"))
FHIR_JSON = "application/fhir+json"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One hortus process serving a data directory."""

    def __init__(self, datadir, extra_args=(), env=None):
        self.datadir = str(datadir)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.root = f"http://{self.host}"
        self.base = self.root + "/fhir"
        self.logpath = os.path.join(self.datadir + ".log")
        self.log = open(self.logpath, "wb")
        env = {**os.environ, **(env or {})}
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--port", str(self.port), "--data", self.datadir, *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.wait_ready()

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early: {self.output()}")
            try:
                if requests.get(self.root + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        """SIGTERM, wait, and return (exit code, output)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode, self.output()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()


def assert_clean_exit(server):
    code, out = server.stop()
    assert "AddressSanitizer" not in out, out
    assert "runtime error" not in out, out
    assert "LeakSanitizer" not in out, out
    assert code == 0, out
    # whatever the tests did through the API, the audit trail they left is whole
    if os.path.exists(os.path.join(server.datadir, "data.mdb")):
        r = subprocess.run([BIN, "check", "--audit", server.datadir], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0 and "intact" in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("data") / "db")
    yield s
    assert_clean_exit(s)


@pytest.fixture(scope="session")
def base(server):
    return server.base


@pytest.fixture
def http():
    with requests.Session() as s:
        yield s


@pytest.fixture
def make_server(tmp_path):
    """Start extra servers for tests that need their own (durability, options)."""
    started = []

    def start(datadir=None, extra_args=(), env=None):
        s = Server(datadir or (tmp_path / f"db{len(started)}"), extra_args, env)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            assert_clean_exit(s)


def create(http, base, resource, **kw):
    """POST a resource, return the response (asserting 201)."""
    r = http.post(f"{base}/{resource['resourceType']}", json=resource,
                  headers={"Content-Type": FHIR_JSON, **kw.pop("headers", {})}, **kw)
    assert r.status_code == 201, r.text
    return r


def assert_outcome(r, status, code=None):
    """The response is `status` with an OperationOutcome carrying an error issue."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith(FHIR_JSON)
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    assert oo["issue"], oo
    assert oo["issue"][0]["severity"] in ("error", "fatal")
    if code:
        assert oo["issue"][0]["code"] == code, oo
    return oo
