"""Hostile HTTP against a real (ASan/UBSan) server: nothing a client sends may crash it,
make it leak, or earn a 5xx for the client's own mistake.

The module runs its own server (conftest's Server class, a fresh data directory) so
that its log holds only what these requests caused: the last test checks /healthz and
that the log has no sanitizer report, and the teardown stops the server with SIGTERM
and asserts a clean exit (LeakSanitizer runs at exit).

Rules checked everywhere:
  - a status is never 5xx (one documented exception: 505 for an HTTP major version
    the server does not speak, which RFC 9110 15.6.6 prescribes);
  - a 4xx produced by the FHIR layer carries an OperationOutcome with an error issue
    (4xx produced by libmicrohttpd's own HTTP parser -- malformed request lines,
    headers too large -- are plain HTML and are only required to be 4xx);
  - a connection may also be closed without an answer when the request is not HTTP.

Tests that could kill a server (a past use-after-free) or that measure a process's
peak memory start a server of their own, so the module's server is never at stake.

A known failure is marked xfail(strict=True) with a reason naming its input and where
it happens; a fix turns it into XPASS, i.e. a failure that asks for the marker to go.
Limits that shape these answers are listed in docs/LIMITS.md.
"""
import json
import random
import re
import socket
import threading
import time

import pytest
import requests

from conftest import FHIR_JSON, Server, assert_clean_exit

CT = {"Content-Type": FHIR_JSON}
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:", "ERROR: ")


# ---------------------------------------------------------------- fixtures, helpers
@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("robust") / "db")
    yield s
    assert_clean_exit(s)


@pytest.fixture
def http():
    with requests.Session() as s:
        yield s


@pytest.fixture(autouse=True)
def still_serving(srv):
    yield
    assert srv.proc.poll() is None, srv.output()[-4000:]
    r = requests.get(srv.root + "/healthz", timeout=5)
    assert r.status_code == 200, r.text


class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Reply({self.status}, {self.body[:300]!r})"


def read_reply(sock, head=False, pending=b""):
    """One HTTP response from sock (after the bytes `pending` already read from it), or
    None when the peer closed first or timed out. Reply.extra holds bytes read past it."""
    data = pending
    try:
        while b"\r\n\r\n" not in data:
            d = sock.recv(65536)
            if not d:
                return None
            data += d
    except (socket.timeout, ConnectionError):
        return None
    head_bytes, rest = data.split(b"\r\n\r\n", 1)
    lines = head_bytes.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    assert parts[0].startswith(b"HTTP/1."), lines[0]
    status = int(parts[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    n = 0 if head or status in (204, 304) else int(headers.get("content-length", "0"))
    try:
        while len(rest) < n:
            d = sock.recv(65536)
            if not d:
                break
            rest += d
    except (socket.timeout, ConnectionError):
        pass
    r = Reply(status, headers, rest[:n])
    r.extra = rest[n:]
    return r


def raw(srv, data, timeout=3.0, half_close=False, head=False):
    """Send bytes on a fresh connection and read one reply (None: no answer)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            # the server may refuse to read a huge request (a reset, or ENOTCONN on the
            # shutdown when it has closed already); the reply may still come
            pass
        return read_reply(s, head=head)


def req(method, path, headers=(), body=b"", version=b"HTTP/1.1"):
    """Bytes of one request with Host and (when there is a body) Content-Length."""
    lines = [method + b" " + path + b" " + version, b"Host: 127.0.0.1"]
    lines += list(headers)
    if body and not any(h.lower().startswith(b"content-length") or
                        h.lower().startswith(b"transfer-encoding") for h in headers):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def assert_not_5xx(r, allow_none=True):
    if r is None:
        assert allow_none, "no answer"
        return
    assert r.status < 500, r


def assert_oo(r, statuses=None):
    """A 4xx FHIR-layer answer: an OperationOutcome with an error issue."""
    status = r.status if isinstance(r, Reply) else r.status_code
    body = r.body if isinstance(r, Reply) else r.content
    assert 400 <= status < 500, (status, body[:500])
    if statuses:
        assert status in statuses, (status, body[:500])
    oo = json.loads(body.decode("utf-8"))  # strict UTF-8
    assert oo["resourceType"] == "OperationOutcome", oo
    assert oo["issue"] and oo["issue"][0]["severity"] in ("error", "fatal"), oo
    for text in json_strings(oo):  # FHIR strings: no C0 controls but tab, CR, LF
        assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", text), text
    return oo


def json_strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, list):
        for x in v:
            yield from json_strings(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from json_strings(x)


def assert_2xx_or_oo(r):
    """2xx, or 4xx with an OperationOutcome; never 5xx."""
    status = r.status if isinstance(r, Reply) else r.status_code
    body = r.body if isinstance(r, Reply) else r.content
    assert status < 500, (status, body[:500])
    if status >= 400:
        assert_oo(r)
    else:
        assert 200 <= status < 300, (status, body[:500])


PATIENT = {
    "resourceType": "Patient", "id": "p1",
    "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/Patient"]},
    "extension": [{"url": "http://x/a", "valueCode": "a"},
                  {"url": "http://x/b", "extension": [{"url": "c", "valueDecimal": 1.5}]}],
    "active": True,
    "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"],
              "_given": [None, {"extension": [{"url": "http://x/d", "valueString": "J"}]}]}],
    "telecom": [{"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1}],
    "gender": "male", "birthDate": "1974-12-25",
    "_birthDate": {"extension": [{"url": "http://x/t", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
    "deceasedBoolean": False,
    "address": [{"line": ["534 Erewhon St"], "city": "PleasantVille", "postalCode": "3999",
                 "period": {"start": "1974-12-25"}}],
    "contained": [{"resourceType": "Organization", "id": "o1", "name": "Org"}],
    "managingOrganization": {"reference": "#o1"},
}
OBSERVATION = {
    "resourceType": "Observation", "status": "final",
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                              "code": "vital-signs"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}], "text": "BP"},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2012-09-17T10:00:00+02:00", "issued": "2013-04-03T15:30:10.123+01:00",
    "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
         "valueQuantity": {"value": 107, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                           "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
         "valueQuantity": {"value": 60.50, "unit": "mmHg"}}],
}
BUNDLE = {
    "resourceType": "Bundle", "type": "transaction",
    "entry": [
        {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
         "resource": {"resourceType": "Patient", "active": True},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final",
                      "code": {"text": "x"},
                      "id": "rob-o1",
                      "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},
         "request": {"method": "PUT", "url": "Observation/rob-o1"}},
        {"request": {"method": "GET", "url": "Patient/p1"}}],
}


def jb(o):
    return json.dumps(o, separators=(",", ":")).encode()


def test_raw_helper_reads_a_normal_answer(srv):
    r = raw(srv, req(b"GET", b"/fhir/metadata"))
    assert r.status == 200 and r.json()["resourceType"] == "CapabilityStatement"


# ---------------------------------------------------------------- request line, headers
MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /fhir/metadata\r\n\r\n",                         # HTTP/0.9 form
    b"GET /fhir/metadata HTTP/1.1\r\n\r\n",                # no Host
    b"GET /fhir/metadata HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    b"GET  /fhir/metadata  HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /fhir/metadata HTTP/1.x\r\nHost: x\r\n\r\n",
    b"GET /fhir/metadata HTTP/1.1\r\nHost x\r\n\r\n",      # header without colon
    b"GET /fhir/metadata HTTP/1.1\r\n: v\r\nHost: x\r\n\r\n",
    b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nX-A\x00: b\r\n\r\n",
    b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
    b"GET /fhir/metadata HTTP/1.1\nHost: x\n\n",           # bare LF
    b"GET /fhir/metadata HTTP/1.1\rHost: x\r\r",           # bare CR
    b"GET http://evil.example/fhir/metadata HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET fhir/metadata HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /fhir/metadata?%zz=%%&=&&=x HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /fhir/metadata#frag HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x00\x01\x02\xff\xfe\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)) + b"\r\n\r\n",  # TLS hello
    b"GET /fhir/metadata HTTP/1.1\r\nHost: \xff\xfe\r\nAccept: \xc0\xaf\r\n\r\n",
    b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nAccept: " + b"a/b;" * 200 + b"\r\n\r\n",
    b"GET /fhir/Patient HTTP/1.1\r\nHost: x\r\nIf-None-Match: \xff\r\n"
    b"If-Modified-Since: \x00\r\n\r\n",
    b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
    b"Content-Length: -1\r\n\r\n{}",
    b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
    b"Content-Length: 99999999999999999999999999\r\n\r\n{}",
    b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
    b"Content-Length: 0x10\r\n\r\n{}",
    b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
    b"Content-Length: 2 3\r\n\r\n{}",
    b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: \xff/\xfe\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json; charset=latin-1"
    b"\r\nContent-Length: 2\r\n\r\n{}",
]


@pytest.mark.parametrize("data", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_request_is_not_5xx(srv, data):
    r = raw(srv, data, timeout=1.5)
    assert_not_5xx(r)
    if r is not None and r.status >= 400 and r.headers.get("content-type", "").startswith(FHIR_JSON):
        assert_oo(r)


def test_unknown_http_major_version_is_505(srv):
    # RFC 9110 15.6.6: 505 is the answer for a major version the server does not
    # support; the one 5xx a client can cause, kept on purpose.
    r = raw(srv, req(b"GET", b"/fhir/metadata", version=b"HTTP/9.9"))
    assert r is None or r.status in (400, 505), r
    r = raw(srv, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # HTTP/2 preface, no upgrade
    assert r is None or r.status in (400, 505), r
    r = raw(srv, req(b"GET", b"/fhir/metadata", version=b"HTTP/1.9"))
    assert_not_5xx(r)


def test_huge_header_is_431(srv):
    r = raw(srv, req(b"GET", b"/fhir/metadata", [b"X-Big: " + b"a" * 200_000]))
    assert r is None or r.status in (400, 413, 431), r


def test_thousands_of_headers_are_431(srv):
    r = raw(srv, req(b"GET", b"/fhir/metadata", [b"X-H%d: v" % i for i in range(5000)]))
    assert r is None or r.status in (400, 413, 431), r


def test_huge_url_is_414(srv):
    r = raw(srv, req(b"GET", b"/fhir/Patient/" + b"a" * 200_000))
    assert r is None or r.status in (400, 414), r


def test_long_id_within_header_limits_is_400_with_outcome(srv):
    for n in (65, 1000, 8000):
        assert_oo(raw(srv, req(b"GET", b"/fhir/Patient/" + b"a" * n)), (400,))
    r = raw(srv, req(b"GET", b"/fhir/" + b"P" * 8000 + b"/1"))
    assert_oo(r, (400, 404))


def test_long_query_values_are_answered(srv):
    r = raw(srv, req(b"GET", b"/fhir/Patient?_id=" + b"a," * 3000))
    assert_2xx_or_oo(r)
    r = raw(srv, req(b"GET", b"/fhir/_history?_since=" + b"9" * 8000))
    assert_oo(r, (400,))


# The request target (path + query) may be up to 8192 bytes with up to 200 '&'-separated
# query fields (REST_MAX_URL, REST_MAX_QUERY_PARAMS); beyond, 414 with an OperationOutcome.
# (libmicrohttpd keeps query fields in a per-connection pool and, when they overflow it,
# used to leave the client without an answer until the idle timeout.)
TARGET_MAX, FIELDS_MAX = 8192, 200


def fields(n, width=0):
    return b"/fhir/Patient?" + b"&".join([b"a" * width] * n)


def test_query_fields_up_to_the_limit_are_answered(srv):
    assert_2xx_or_oo(raw(srv, req(b"GET", fields(FIELDS_MAX))))
    assert_2xx_or_oo(raw(srv, req(b"GET", b"/fhir/Patient?" + b"&".join([b"_id=a"] * FIELDS_MAX))))
    # the most the limits allow at once: 200 fields filling 8192 bytes, and a large header
    width = (TARGET_MAX - len(fields(0)) - (FIELDS_MAX - 1)) // FIELDS_MAX
    target = fields(FIELDS_MAX, width)
    assert len(target) <= TARGET_MAX
    assert_2xx_or_oo(raw(srv, req(b"GET", target, [b"Authorization: Bearer " + b"t" * 6000])))


@pytest.mark.parametrize("n", [FIELDS_MAX + 1, 1000, 5000, 20_000])
def test_too_many_query_fields_are_414_with_outcome(srv, n):
    r = raw(srv, req(b"GET", fields(n)), timeout=2)
    assert r is not None, "no answer"
    oo = assert_oo(r, (414,))
    assert oo["issue"][0]["code"] == "too-long", oo


def test_target_length_limit(srv):
    base = b"/fhir/Patient?_id="
    assert_2xx_or_oo(raw(srv, req(b"GET", base + b"a" * (TARGET_MAX - len(base)))))
    for target in (base + b"a" * (TARGET_MAX + 1 - len(base)),
                   b"/fhir/Patient/" + b"a" * TARGET_MAX):
        oo = assert_oo(raw(srv, req(b"GET", target), timeout=2), (414,))
        assert oo["issue"][0]["code"] == "too-long", oo


def test_target_beyond_the_connection_pool_is_answered(srv):
    # too long even for libmicrohttpd's read buffer: its own 414, but an answer
    r = raw(srv, req(b"GET", fields(50_000)), timeout=2)
    assert r is not None and r.status == 414, r


def resources_stored(srv):
    text = requests.get(srv.root + "/metrics", timeout=5).text
    return int(re.search(r"^hortus_resources (\d+)$", text, re.M).group(1))


def test_refused_target_with_a_body_leaves_the_server_serving(srv):
    before = resources_stored(srv)
    body = b'{"resourceType":"Patient"}'
    r = raw(srv, req(b"POST", fields(300), [b"Content-Type: application/fhir+json"], body))
    assert_oo(r, (414,))
    assert requests.get(srv.root + "/healthz", timeout=2).status_code == 200
    # the whole request was refused, not only its query: nothing was created
    assert resources_stored(srv) == before


def test_large_headers_within_the_pool_are_served(srv):
    for n in (8000, 16_000):
        r = raw(srv, req(b"GET", b"/fhir/metadata", [b"Authorization: Bearer " + b"t" * n]))
        assert r is not None and r.status == 200, r


# ---------------------------------------------------------------- bodies that lie
def post_head(extra=()):
    return [b"Content-Type: application/fhir+json", *extra]


def test_chunked_body_that_never_ends(srv):
    """A chunked upload that stalls must not hold the server: others are served,
    and closing the connection leaves nothing behind."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(req(b"POST", b"/fhir/Patient", post_head([b"Transfer-Encoding: chunked"]))
                  + b"10\r\n{\"resourceType\":\r\n")
        t0 = time.time()
        while time.time() - t0 < 1.5:
            s.sendall(b"1\r\n \r\n")  # keeps trickling, never the last chunk
            assert requests.get(srv.root + "/healthz", timeout=2).status_code == 200
            time.sleep(0.1)
        s.settimeout(0.3)
        assert read_reply(s) is None  # nothing answered for an unfinished body


CHUNKED_LIES = [
    b"zz\r\n{}\r\n0\r\n\r\n",                              # not hex
    b"ffffffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",         # size overflows
    b"-2\r\n{}\r\n0\r\n\r\n",
    b"2\r\n{}0\r\n\r\n",                                    # missing CRLF after data
    b"2;ext=\"x\r\n{}\r\n0\r\n\r\n",                       # broken extension
    b"100\r\n" + jb(PATIENT)[:40] + b"\r\n0\r\n\r\n",       # says 256, sends 40 then ends
    b"2\r\n{}\r\n0\r\nX-Trailer: " + b"t" * 50_000 + b"\r\n\r\n",
]


@pytest.mark.parametrize("body", CHUNKED_LIES, ids=range(len(CHUNKED_LIES)))
def test_chunked_bodies_that_lie(srv, body):
    data = req(b"POST", b"/fhir/Patient", post_head([b"Transfer-Encoding: chunked"])) + body
    r = raw(srv, data, timeout=1.5, half_close=True)
    assert_not_5xx(r)
    assert r is None or r.status >= 400, r  # never accepted as a resource


def test_content_length_longer_than_body(srv):
    body = jb({"resourceType": "Patient", "active": True})
    data = req(b"POST", b"/fhir/Patient", post_head([b"Content-Length: %d" % (len(body) + 50)]),
               body)
    r = raw(srv, data, timeout=1.5, half_close=True)
    assert r is None or 400 <= r.status < 500, r


def test_content_length_shorter_than_body(srv):
    body = jb({"resourceType": "Patient", "active": True})
    data = req(b"POST", b"/fhir/Patient", post_head([b"Content-Length: 5"]), body)
    r = raw(srv, data, timeout=1.5)
    assert r is not None
    assert_oo(r, (400,))  # the first five bytes are not JSON; the rest is a bad request line


def test_two_equal_content_lengths_are_fine(srv):
    body = jb({"resourceType": "Patient", "active": True})
    cl = b"Content-Length: %d" % len(body)
    r = raw(srv, req(b"POST", b"/fhir/Patient", post_head([cl, cl]), body))
    assert r is not None and (r.status == 201 or r.status == 400), r


@pytest.mark.parametrize("order", ["long-first", "short-first"])
def test_conflicting_content_lengths_are_400(srv, order):
    # both lengths frame a valid resource (trailing spaces), so only a refusal of the
    # header pair itself gives 400
    body = jb({"resourceType": "Patient", "active": True}) + b"    "
    a, b = b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) - 4)
    heads = [a, b] if order == "long-first" else [b, a]
    r = raw(srv, req(b"POST", b"/fhir/Patient", post_head(heads), body), timeout=1.5)
    assert r is not None and r.status == 400, r


def test_transfer_encoding_with_content_length_is_not_5xx(srv):
    body = jb({"resourceType": "Patient", "active": True})
    chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    r = raw(srv, req(b"POST", b"/fhir/Patient",
                     post_head([b"Transfer-Encoding: chunked", b"Content-Length: 3"]), chunked))
    assert_not_5xx(r, allow_none=False)


def test_transfer_encoding_with_content_length_closes_the_connection(srv):
    body = jb({"resourceType": "Patient", "active": True})
    chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    first = req(b"POST", b"/fhir/Patient",
                post_head([b"Transfer-Encoding: chunked", b"Content-Length: 3"]), chunked)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=2) as s:
        s.sendall(first + req(b"GET", b"/healthz"))
        r1 = read_reply(s)
        assert r1 is not None and r1.status < 500, r1
        r2 = read_reply(s, pending=r1.extra)
        assert r2 is None, "the pipelined request after it was served: %r" % r2


def test_unknown_transfer_encoding_is_not_accepted(srv):
    body = jb({"resourceType": "Patient", "active": True})
    r = raw(srv, req(b"POST", b"/fhir/Patient", post_head([b"Transfer-Encoding: gzip"]), body),
            timeout=1.5, half_close=True)
    assert r is None or 400 <= r.status < 500 or r.status == 501, r


def test_conflicting_content_types_are_answered(srv):
    body = jb({"resourceType": "Patient", "active": True})
    r = raw(srv, req(b"POST", b"/fhir/Patient",
                     [b"Content-Type: application/fhir+json", b"Content-Type: text/xml"], body))
    assert r is not None and r.status in (201, 400, 415), r


def test_slowloris_partial_requests_do_not_block_others(srv):
    """Many connections dribbling header bytes for a few seconds; the server keeps
    answering everybody else promptly."""
    socks = []
    try:
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
            s.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        t0 = time.time()
        worst = 0.0
        i = 0
        with requests.Session() as h:
            while time.time() - t0 < 3.0:
                for s in socks:
                    s.sendall(b"X-%d: y\r\n" % i)
                i += 1
                t = time.time()
                assert h.get(srv.root + "/healthz", timeout=2).status_code == 200
                assert h.get(srv.base + "/metadata", timeout=2).status_code == 200
                worst = max(worst, time.time() - t)
                time.sleep(0.05)
        assert worst < 2.0, worst
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------- bodies of every bad shape
INTERESTING = [b"\x00", b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\"", b"\\", b"{", b"}", b"[",
               b"]", b",", b":", b"null", b"true", b"-", b"1e999999", b"0.", b"\\u0000",
               b"\\ud800", b"\xf0\x9f\x98\x80", b" ", b"\t", b"\n", b"\f", b"\\f",
               b"99999999999999999999999", b"\"\":", b"_", b"value", b"resourceType"]


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:                     # flip a bit
            p = min(pos, len(data) - 1)
            data[p] ^= 1 << rng.randrange(8)
        elif op == 1:                            # insert an interesting token
            data[pos:pos] = rng.choice(INTERESTING)
        elif op == 2:                            # delete a range
            data[pos:pos + rng.randint(1, 16)] = b""
        elif op == 3 and data:                   # duplicate a range elsewhere
            a = rng.randrange(len(data))
            chunk = data[a:a + rng.randint(1, 40)]
            data[pos:pos] = chunk
        elif op == 4 and data:                   # overwrite one byte with anything
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        else:                                    # swap two ranges
            a, b = sorted(rng.randrange(len(data) + 1) for _ in range(2))
            data = data[b:] + data[a:b] + data[:a]
    return bytes(data)


def test_random_byte_mutations_of_valid_resources(srv, http):
    """A deterministic few hundred mutated bodies over create, update and transaction:
    each is answered 2xx, or 4xx with an OperationOutcome; never 5xx."""
    seeds = [("POST", "/Patient", jb(PATIENT)), ("PUT", "/Patient/p1", jb(PATIENT)),
             ("POST", "/Observation", jb(OBSERVATION)), ("POST", "", jb(BUNDLE))]
    for method, path, body in seeds:  # the unmutated seeds are accepted
        r = http.request(method, srv.base + path, data=body, headers=CT)
        assert r.status_code in (200, 201), (path, r.text)
    rng = random.Random(20261123)
    counts = {}
    for i in range(400):
        method, path, body = seeds[i % len(seeds)]
        bad = mutate(rng, body)
        r = http.request(method, srv.base + path, data=bad, headers=CT)
        counts[r.status_code] = counts.get(r.status_code, 0) + 1
        try:
            assert_2xx_or_oo(r)
        except AssertionError as e:
            raise AssertionError(f"mutation {i} {method} {path} body={bad!r}") from e
    assert sum(v for k, v in counts.items() if k >= 400) > 100, counts  # mutations do bite


def nest_extension(depth):
    ext = {"url": "http://x/leaf", "valueString": "x"}
    for i in range(depth):
        ext = {"url": "http://x/%d" % i, "extension": [ext]}
    return ext


def test_deep_nesting(srv, http):
    # valid nesting below the JSON depth cap is accepted
    p = {"resourceType": "Patient", "extension": [nest_extension(25)]}
    assert http.post(srv.base + "/Patient", data=jb(p), headers=CT).status_code == 201
    # right at and just over the cap: accepted or refused, never 5xx
    for depth in (30, 31, 32, 33, 40):
        p = {"resourceType": "Patient", "extension": [nest_extension(depth)]}
        assert_2xx_or_oo(http.post(srv.base + "/Patient", data=jb(p), headers=CT))
    # absurd depth (parser recursion) in every container kind
    n = 200_000
    for body in (b'{"resourceType":"Patient","extension":' + b"[" * n + b"]" * n + b"}",
                 b'{"resourceType":"Patient","a":' + b'{"a":' * n + b"1" + b"}" * n + b"}",
                 b"[" * n, b'{"a":' * n):
        assert_oo(http.post(srv.base + "/Patient", data=body, headers=CT), (400, 413))
    # resources nested in resources: Bundle in Bundle, contained in contained
    b = {"resourceType": "Bundle", "type": "collection"}
    for _ in range(12):
        b = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": b}]}
    assert_2xx_or_oo(http.post(srv.base + "/Bundle", data=jb(b), headers=CT))
    q_item = {"linkId": "leaf", "type": "display", "text": "x"}
    for i in range(28):
        q_item = {"linkId": "g%d" % i, "type": "group", "item": [q_item]}
    q = {"resourceType": "Questionnaire", "status": "draft", "item": [q_item]}
    assert_2xx_or_oo(http.post(srv.base + "/Questionnaire", data=jb(q), headers=CT))
    c = {"resourceType": "Patient", "contained": [
        {"resourceType": "Patient", "id": "a", "contained": [{"resourceType": "Patient", "id": "b"}]}]}
    assert_oo(http.post(srv.base + "/Patient", data=jb(c), headers=CT), (400,))


def test_huge_arrays_and_objects(srv, http):
    # 200k given names: a big but valid resource, or a refusal; never 5xx
    p = {"resourceType": "Patient", "name": [{"given": ["g%d" % i for i in range(200_000)]}]}
    assert_2xx_or_oo(http.post(srv.base + "/Patient", data=jb(p), headers=CT))
    # ~4 M tiny array items under the body cap, in an unknown element
    body = b'{"resourceType":"Patient","x":[' + b"0," * 3_900_000 + b"0]}"
    assert len(body) < 8 << 20
    assert_oo(http.post(srv.base + "/Patient", data=body, headers=CT), (400,))
    # 150k unknown keys: issues are capped, the outcome stays small
    body = (b'{"resourceType":"Patient",' + b",".join(b'"k%d":1' % i for i in range(150_000))
            + b"}")
    r = http.post(srv.base + "/Patient", data=body, headers=CT)
    oo = assert_oo(r, (400,))
    assert len(oo["issue"]) <= 502 and len(r.content) < 1 << 20, len(oo["issue"])
    # 10k nulls in a primitive array (alignment with "_given")
    p = {"resourceType": "Patient", "name": [{"given": [None] * 10_000,
                                             "_given": [{"id": "x"}] * 10_000}]}
    assert_2xx_or_oo(http.post(srv.base + "/Patient", data=jb(p), headers=CT))
    # a transaction with many entries, over the entry cap
    e = {"request": {"method": "GET", "url": "Patient/p1"}}
    b = {"resourceType": "Bundle", "type": "batch", "entry": [e] * 10_001}
    assert_oo(http.post(srv.base, data=jb(b), headers=CT), (400, 413))


# ---------------------------------------------------------------- ids, URLs, unicode
@pytest.fixture(scope="module")
def victim(srv):
    """Patient/rob-v (version 1), for tests that must not touch it."""
    body = jb({"resourceType": "Patient", "id": "rob-v", "active": True})
    r = requests.put(srv.base + "/Patient/rob-v", data=body, headers=CT)
    assert r.status_code in (200, 201), r.text
    return r.headers["ETag"]


def current_etag(srv, rid="rob-v"):
    r = requests.get(srv.base + "/Patient/" + rid)
    return r.status_code, r.headers.get("ETag")


BAD_IDS = [b"%C0%AF", b"%C0%80", b"%E0%80%AF", b"%ED%A0%80", b"%FF", b"%F4%90%80%80", b"%",
           b"%zz", b"%2", b"..%2F..%2Fetc", b"%E2%80%AE", b"%F0%9F%98%80",
           b"a%20b", b"a+b", b"a%09b", b"\xc3\xa9", b"\xff", b"a;b", b"a%3Bb", b"a'b", b"a%22b",
           b"a*", b"a~b", b"a_b", b"a%5Cb", b"%EF%BC%91"]


@pytest.mark.parametrize("rid", BAD_IDS, ids=range(len(BAD_IDS)))
def test_bad_ids_in_urls_are_4xx_with_outcome(srv, victim, rid):
    body = jb({"resourceType": "Patient", "id": "rob-v", "active": False})
    for method, path, b in [(b"GET", b"/fhir/Patient/" + rid, b""),
                            (b"GET", b"/fhir/Patient/" + rid + b"/_history/1", b""),
                            (b"GET", b"/fhir/Patient/rob-v/_history/" + rid, b""),
                            (b"GET", b"/fhir/Patient/" + rid + b"/_history", b""),
                            (b"PUT", b"/fhir/Patient/" + rid, body),
                            (b"DELETE", b"/fhir/Patient/" + rid, b"")]:
        hdrs = [b"Content-Type: application/fhir+json"] if b else []
        r = raw(srv, req(method, path, hdrs, b))
        assert r is not None, (method, path)
        assert_oo(r, (400, 404))
    assert current_etag(srv) == (200, victim)


def test_percent_encoded_nul_does_not_truncate_the_id(srv, victim):
    for method in (b"GET", b"DELETE"):
        assert_oo(raw(srv, req(method, b"/fhir/Patient/rob-v%00junk")), (400,))
    body = jb({"resourceType": "Patient", "id": "rob-v", "active": False})
    assert_oo(raw(srv, req(b"PUT", b"/fhir/Patient/rob-v%00junk", post_head(), body)), (400,))
    assert current_etag(srv) == (200, victim)


def test_percent_encoded_nul_alone_is_an_invalid_id(srv):
    assert_oo(raw(srv, req(b"GET", b"/fhir/Patient/%00")), (400,))


def test_percent_encoded_slash_is_part_of_the_id(srv, victim):
    assert_oo(raw(srv, req(b"GET", b"/fhir/Patient/rob-v%2F")), (400,))
    assert_oo(raw(srv, req(b"GET", b"/fhir/Patient/rob%2Fv")), (400,))


def test_huge_content_length_is_413_at_once(srv):
    # an ordinary path answers a Content-Length over REST_DRAIN_MAX at once (413)
    head = [b"Content-Type: application/fhir+json", b"Content-Length: 1000000000"]
    r = raw(srv, req(b"PUT", b"/fhir/Patient/rob-x", head), timeout=2)
    assert r is not None and r.status == 413, r


def test_huge_body_on_a_path_with_encoded_nul_is_refused_at_once(srv):
    head = [b"Content-Type: application/fhir+json", b"Content-Length: 1000000000"]
    r = raw(srv, req(b"PUT", b"/fhir/Patient/a%00b", head), timeout=2)
    assert r is not None and 400 <= r.status < 500, r


@pytest.mark.parametrize("path", [b"/fhir/Pat%C0%AFient", b"/fhir/%F0%9F%98%80",
                                  b"/fhir/Patient%2F_history", b"/fhir/%2E%2E/healthz",
                                  b"/fhir/../healthz", b"//fhir//Patient", b"/fhir/Patient//x",
                                  b"/fhir/Patient/x/_history/1/extra", b"/FHIR/Patient",
                                  b"/fhir/patient", b"/fhir/Patient/x/%5Fhistory",
                                  b"/fhir/metadata/x", b"/fhir/_history/x", b"/healthz/x"])
def test_odd_paths_are_4xx_with_outcome(srv, path):
    r = raw(srv, req(b"GET", path))
    assert r is not None
    if r.status >= 300:
        assert_oo(r)


def test_search_id_list_with_repeats_lists_each_resource_once(srv, victim):
    r = requests.get(srv.base + "/Patient", params={"_id": ",".join(["rob-v"] * 5)})
    assert r.status_code == 200, r.text
    ids = [e["resource"]["id"] for e in r.json().get("entry", []) if "resource" in e
           and e["resource"]["resourceType"] == "Patient"]
    assert ids == ["rob-v"], ids


# ---------------------------------------------------------------- methods
@pytest.mark.parametrize("method", [b"PATCH", b"OPTIONS", b"TRACE", b"CONNECT", b"FOO",
                                    b"get", b"PROPFIND", b"M" * 200])  # HEAD: below
@pytest.mark.parametrize("path", [b"/fhir", b"/fhir/Patient", b"/fhir/Patient/rob-v",
                                  b"/fhir/metadata", b"/fhir/Patient/rob-v/_history/1",
                                  b"/healthz", b"/metrics"])
def test_odd_methods_are_4xx_with_outcome(srv, victim, method, path):
    body = jb({"resourceType": "Patient", "id": "rob-v"}) if method == b"PATCH" else b""
    hdrs = [b"Content-Type: application/fhir+json"] if body else []
    r = raw(srv, req(method, path, hdrs, body))
    assert r is not None, (method, path)
    if method == b"OPTIONS" and r.status < 300:  # answered (CORS preflight / Allow)
        assert r.status in (200, 204) and not r.body.strip() or \
            json.loads(r.body)["resourceType"] == "CapabilityStatement", r
    else:
        assert_oo(r, (400, 404, 405, 501))
    assert current_etag(srv) == (200, victim)


@pytest.mark.parametrize("path", [b"/fhir/Patient/rob-v", b"/fhir/Patient/nope",
                                  b"/fhir/Patient/rob-v/_history", b"/fhir/metadata",
                                  b"/fhir/Patient/%FF", b"/healthz", b"/fhir/nope"])
def test_head_has_get_status_and_no_body(srv, victim, path):
    """HEAD then GET /healthz pipelined on one connection: the HEAD answer must end at
    its headers (a body would be read as the start of the second answer)."""
    get = raw(srv, req(b"GET", path))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=3) as s:
        s.sendall(req(b"HEAD", path) + req(b"GET", b"/healthz"))
        h = read_reply(s, head=True)
        assert h is not None and h.status == get.status, (h, get)
        # what follows the HEAD headers is the second answer, not a body
        rest = h.extra
        while b"\r\n\r\n" not in rest:
            d = s.recv(65536)
            assert d, rest
            rest += d
        assert rest.startswith(b"HTTP/1.1 200"), rest[:200]


# ---------------------------------------------------------------- conditional headers
IF_MATCH_GARBAGE = [b"", b"W/", b"W/\"", b"\"", b"\"\"", b"W/\"\"", b"W/\"abc\"", b"W/\"-1\"",
                    b"W/\"0\"", b"W/\"01\"", b"W/\"1.0\"", b"W/\"99999999999999999999999\"",
                    b"W/\"18446744073709551617\"", b"W/\"9223372036854775808\"", b"*", b"W/*",
                    b"\xff\xfe", b"W/\"1\", W/\"2\"", b"w/\"1\"", b"W/ \"1\"", b"1 2",
                    b"\"1" + b"0" * 5000 + b"\""]


@pytest.mark.parametrize("value", IF_MATCH_GARBAGE, ids=range(len(IF_MATCH_GARBAGE)))
def test_if_match_garbage(srv, victim, value):
    body = jb({"resourceType": "Patient", "id": "rob-v", "active": False})
    patch = json.dumps([{"op": "replace", "path": "/active", "value": False}]).encode()
    for method, b, ct in ((b"PUT", body, b"application/fhir+json"), (b"DELETE", b"", None),
                          (b"PATCH", patch, b"application/json-patch+json")):
        hdrs = [b"If-Match: " + value] + ([b"Content-Type: " + ct] if ct else [])
        r = raw(srv, req(method, b"/fhir/Patient/rob-v", hdrs, b))
        assert r is not None
        assert_oo(r, (400, 409, 412))
    assert current_etag(srv) == (200, victim)


def test_two_if_match_headers_do_not_write_blindly(srv, victim):
    body = jb({"resourceType": "Patient", "id": "rob-v", "active": False})
    hdrs = [b"If-Match: W/\"77\"", b"If-Match: W/\"78\"", b"Content-Type: application/fhir+json"]
    assert_oo(raw(srv, req(b"PUT", b"/fhir/Patient/rob-v", hdrs, body)), (400, 412))
    assert current_etag(srv) == (200, victim)


@pytest.mark.parametrize("hdr", [b"If-None-Match", b"If-Modified-Since"])
def test_conditional_read_garbage(srv, victim, hdr):
    for value in (b"", b"W/", b"\xff", b"*, *", b"W/\"-1\"", b"Sun, 99 Foo 99999 99:99:99 GMT",
                  b"Thu, 01 Jan 1970 00:00:00 GMT", b"x" * 4000, b"Sat, 31 Dec 9999 23:59:59 GMT"):
        r = raw(srv, req(b"GET", b"/fhir/Patient/rob-v", [hdr + b": " + value]))
        assert r is not None and r.status in (200, 304, 400, 412), (value, r)
        if r.status >= 400:
            assert_oo(r)


# ---------------------------------------------------------------- history parameters
HISTORY_GARBAGE = [
    b"_count=-1", b"_count=abc", b"_count=", b"_count=1e3", b"_count=0x10", b"_count=%2B5",
    b"_count=99999999999999999999999", b"_count=%EF%BC%91", b"_count=%00", b"_count=5%00",
    b"_count=1&_count=2", b"_since=", b"_since=yesterday", b"_since=2020-13-45",
    b"_since=2020-01-01T25:00:00Z", b"_since=9999-12-31T23:59:59.999999999Z",
    b"_since=0000-01-01", b"_since=-2020", b"_since=2020-02-30", b"_since=%00",
    b"_since=2020-01-01T00:00:00%2B99:99", b"_since=" + b"2" * 5000,
    b"_at=", b"_at=ge2020", b"_at=2020-01-01T00:00:00Z&_since=2020", b"_at=%FF",
    b"_at=1970", b"_at=99999", b"_since=2020&_since=2021", b"_page=x", b"_getpages=%00",
    b"_format=%00", b"_pretty=%FF", b"_summary=maybe", b"_elements=%00,,",
    # paging cursors are client input too
    b"_page_at=18446744073709551615", b"_page_at=-1", b"_offset=9223372036854775807",
    b"_offset=9223372036854775808", b"_page_t=5", b"_page_t=0&_page_id=x",
    b"_page_t=5&_page_id=" + b"x" * 1000 + b"&_page_type=Patient",
    b"_page_t=5&_page_id=%C3%A9&_page_type=Foo", b"_page_t=5&_page_id=..&_page_type=%00",
    b"_page_t=9223372036854775807&_page_id=rob-v&_page_type=Patient&_offset=3",
]


@pytest.mark.parametrize("query", HISTORY_GARBAGE, ids=range(len(HISTORY_GARBAGE)))
def test_history_parameter_garbage(srv, victim, query):
    for path in (b"/fhir/_history", b"/fhir/Patient/_history", b"/fhir/Patient/rob-v/_history"):
        r = raw(srv, req(b"GET", path + b"?" + query))
        assert r is not None, (path, query)
        assert_2xx_or_oo(r)
        if r.status == 200:
            assert r.json()["resourceType"] == "Bundle"


# ---------------------------------------------------------------- concurrency
def test_concurrent_writers_to_one_id(srv):
    """8 writers x 8 unconditional PUTs to one id: every write succeeds (or 409 after
    the retry budget), versions are dense and unique, history has them all."""
    url = srv.base + "/Patient/rob-c"
    results, errors = [], []

    def writer(k):
        try:
            with requests.Session() as h:
                for j in range(8):
                    body = jb({"resourceType": "Patient", "id": "rob-c",
                               "name": [{"family": "w%d-%d" % (k, j)}]})
                    r = h.put(url, data=body, headers=CT, timeout=30)
                    results.append((r.status_code, r.headers.get("ETag"), r.content))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(results) == 64
    for status, _, content in results:
        assert status in (200, 201, 409), (status, content[:300])
    ok = [etag for status, etag, _ in results if status in (200, 201)]
    assert sum(1 for s, _, _ in results if s == 201) == 1
    assert len(set(ok)) == len(ok)
    hist = requests.get(url + "/_history", params={"_count": 1000}).json()
    vids = sorted(int(e["response"]["etag"].split('"')[1]) for e in hist["entry"])
    assert vids == list(range(1, len(ok) + 1)), vids
    cur = requests.get(url)
    assert cur.headers["ETag"] == 'W/"%d"' % len(ok)


def test_concurrent_conditional_writers_one_wins(srv):
    """8 writers all PUT with If-Match of the current version: exactly one wins."""
    url = srv.base + "/Patient/rob-m"
    r = requests.put(url, data=jb({"resourceType": "Patient", "id": "rob-m"}), headers=CT)
    assert r.status_code in (200, 201)
    etag = r.headers["ETag"]
    statuses = []
    barrier = threading.Barrier(8)

    def writer(k):
        body = jb({"resourceType": "Patient", "id": "rob-m", "name": [{"family": "c%d" % k}]})
        barrier.wait(10)
        rr = requests.put(url, data=body, headers={**CT, "If-Match": etag}, timeout=30)
        statuses.append((rr.status_code, rr.content))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = sorted(s for s, _ in statuses)
    assert codes == [200] + [412] * 7, statuses
    for s, content in statuses:
        if s == 412:
            assert json.loads(content)["resourceType"] == "OperationOutcome"


def test_concurrent_puts_and_deletes(srv):
    """Writers and deleters racing on one id: no 5xx, and the final state is readable."""
    url = srv.base + "/Patient/rob-d"
    bad = []

    def worker(k):
        with requests.Session() as h:
            for j in range(6):
                if (k + j) % 3 == 0:
                    r = h.delete(url, timeout=30)
                else:
                    body = jb({"resourceType": "Patient", "id": "rob-d", "gender": "other"})
                    r = h.put(url, data=body, headers=CT, timeout=30)
                if r.status_code >= 500 or r.status_code not in (200, 201, 204, 409):
                    bad.append((r.status_code, r.text[:300]))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not bad, bad
    assert requests.get(url).status_code in (200, 410)
    hist = requests.get(url + "/_history", params={"_count": 1000})
    assert hist.status_code == 200


def test_concurrent_transactions_and_batches_on_overlapping_ids(srv):
    """6 clients x 20 Bundles writing/deleting two of three ids in random order (some
    with ifMatch) and reading the third: no 5xx anywhere, and each id's history stays
    a dense 1..n sequence."""
    bad = []

    def worker(k):
        rng = random.Random(100 + k)
        with requests.Session() as h:
            for _ in range(20):
                ids = ["rob-ta", "rob-tb", "rob-tc"]
                rng.shuffle(ids)
                entries = []
                for i in ids[:2]:
                    m = rng.choice(["PUT", "DELETE", "PUT"])
                    e = {"request": {"method": m, "url": "Patient/" + i}}
                    if m == "PUT":
                        e["resource"] = {"resourceType": "Patient", "id": i, "gender": "other"}
                    if rng.random() < 0.3:
                        e["request"]["ifMatch"] = 'W/"%d"' % rng.randint(1, 5)
                    entries.append(e)
                entries.append({"request": {"method": "GET", "url": "Patient/" + ids[2]}})
                kind = rng.choice(["transaction", "batch"])
                r = h.post(srv.base, data=jb({"resourceType": "Bundle", "type": kind,
                                              "entry": entries}), headers=CT, timeout=30)
                if r.status_code >= 500 or (r.status_code >= 400 and
                                            r.json()["resourceType"] != "OperationOutcome"):
                    bad.append((kind, r.status_code, r.text[:300]))
                elif r.status_code == 200:
                    for en in r.json().get("entry", []):
                        if en["response"]["status"].startswith("5"):
                            bad.append((kind, en["response"]))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not bad, bad[:5]
    for i in ("rob-ta", "rob-tb", "rob-tc"):
        hist = requests.get(srv.base + "/Patient/%s/_history" % i, params={"_count": 1000})
        if hist.status_code == 404:
            continue  # never written (every attempt lost its ifMatch)
        vids = sorted(int(e["response"]["etag"].split('"')[1]) for e in hist.json()["entry"])
        assert vids == list(range(1, len(vids) + 1)), (i, vids)


def test_concurrent_patches_lose_nothing(srv):
    """8 clients x 6 PATCHes (JSON Patch and FHIRPath Patch, each appending a name) to one
    resource: every patch lands exactly once (re-applied after a lost race)."""
    url = srv.base + "/Patient/rob-cp"
    r = requests.put(url, data=jb({"resourceType": "Patient", "id": "rob-cp",
                                   "name": [{"family": "start"}]}), headers=CT)
    assert r.status_code in (200, 201)
    results = []

    def writer(k):
        with requests.Session() as h:
            for j in range(6):
                fam = "k%d-%d" % (k, j)
                if j % 2:
                    body = json.dumps([{"op": "add", "path": "/name/-",
                                        "value": {"family": fam}}]).encode()
                    hdr = JP
                else:
                    body = jb(fp_patch({"type": {"valueCode": "add"},
                                        "path": {"valueString": "Patient"},
                                        "name": {"valueString": "name"},
                                        "value": {"valueHumanName": {"family": fam}}}))
                    hdr = CT
                rr = h.patch(url, data=body, headers=hdr, timeout=30)
                results.append((rr.status_code, fam, rr.text[:200]))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 48
    bad = [x for x in results if x[0] not in (200, 409)]
    assert not bad, bad[:3]
    landed = sorted(f for st, f, _ in results if st == 200)
    cur = requests.get(url).json()
    fams = sorted(n["family"] for n in cur["name"] if n["family"] != "start")
    assert fams == landed
    assert cur["meta"]["versionId"] == str(1 + len(landed))


# ---------------------------------------------------------------- connections that go away
def test_pipelined_writes_are_answered_in_order(srv):
    """50 creates and a read pipelined in one send: writes suspend for the group
    commit, yet every answer comes back, in order."""
    body = jb({"resourceType": "Patient", "active": True})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"".join(req(b"POST", b"/fhir/Patient", post_head(), body) for _ in range(50))
                  + req(b"GET", b"/healthz"))
        statuses = []
        pending = b""
        for _ in range(51):
            r = read_reply(s, pending=pending)
            assert r is not None, statuses
            statuses.append(r.status)
            pending = r.extra
    assert statuses == [201] * 50 + [200], statuses


def test_clients_that_vanish_during_writes(srv):
    """Writes whose client is gone before the commit answers (FIN or RST), and bodies
    cut short: the server must not touch the freed request when the store calls back."""
    def hit(n, rst):
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            body = jb({"resourceType": "Patient", "id": "rob-gone%d" % (i % 4)})
            s.sendall(req(b"PUT", b"/fhir/Patient/rob-gone%d" % (i % 4), post_head(), body))
            if rst:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01" + b"\x00" * 7)
            s.close()

    threads = [threading.Thread(target=hit, args=(60, k % 2 == 0)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(req(b"POST", b"/fhir/Patient", post_head([b"Content-Length: 1000"]))
                  + b'{"resourceType":')
        s.close()
    time.sleep(0.5)  # let the last commits call back
    for k in range(4):
        r = requests.get(srv.base + "/Patient/rob-gone%d" % k)
        assert r.status_code in (200, 404), r.text


def test_sigterm_with_slow_clients_and_writes_in_flight(tmp_path):
    """Shutdown while connections dribble headers, stall bodies and write: the server
    exits 0 within the fixture's wait, with no sanitizer report."""
    s = Server(tmp_path / "db")
    socks = []
    try:
        for i in range(10):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=3)
            c.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n")  # never finished
            socks.append(c)
            c = socket.create_connection(("127.0.0.1", s.port), timeout=3)
            c.sendall(req(b"POST", b"/fhir/Patient", post_head([b"Content-Length: 500"])) + b"{")
            socks.append(c)
        stop = threading.Event()

        def writer():
            with requests.Session() as h:
                while not stop.is_set():
                    try:
                        h.post(s.base + "/Patient", data=jb({"resourceType": "Patient"}),
                               headers=CT, timeout=5)
                    except requests.RequestException:
                        return

        ws = [threading.Thread(target=writer) for _ in range(3)]
        for t in ws:
            t.start()
        time.sleep(0.5)
        t0 = time.time()
        assert_clean_exit(s)  # SIGTERM, wait, exit 0, no sanitizer report
        assert time.time() - t0 < 20
        stop.set()
        for t in ws:
            t.join(10)
    finally:
        for c in socks:
            c.close()
        if s.proc.poll() is None:
            s.kill9()


# ---------------------------------------------------------------- PATCH
def fp_patch(*ops):
    """A FHIRPath Patch Parameters resource; each op is a dict of part name -> value part."""
    return {"resourceType": "Parameters", "parameter": [
        {"name": "operation", "part": [{"name": k, **v} for k, v in op.items()]} for op in ops]}


@pytest.mark.parametrize("path", ["'a'", "Patient.name.given.aggregate($total + $this, '')"])
def test_fhirpath_patch_with_a_literal_path_does_not_kill_the_server(tmp_path, path):
    s = Server(tmp_path / "db")  # its own server: the crash must not take the module's down
    try:
        r = requests.put(s.base + "/Patient/p", data=jb({"resourceType": "Patient", "id": "p"}),
                         headers=CT)
        assert r.status_code == 201
        body = fp_patch({"type": {"valueCode": "delete"}, "path": {"valueString": path}})
        try:
            r = requests.patch(s.base + "/Patient/p", data=jb(body), headers=CT, timeout=10)
        except requests.ConnectionError as e:
            raise AssertionError("no answer: " + s.output()[-3000:]) from e
        assert_2xx_or_oo(r)
        assert requests.get(s.root + "/healthz", timeout=5).status_code == 200
    finally:
        if s.proc.poll() is None:
            code, out = s.stop()
        else:
            s.log.close()
            code, out = s.proc.returncode, s.output()
    assert "AddressSanitizer" not in out, out[-3000:]
    assert code == 0


def peak_rss_mb(proc):
    """The process's peak resident set (VmHWM) in MiB (Linux)."""
    with open("/proc/%d/status" % proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM")


def test_json_patch_copy_cannot_amplify_memory(tmp_path):
    s = Server(tmp_path / "db")  # its own server: peak memory is measured per process
    try:
        body = jb({"resourceType": "Patient", "id": "p", "name": [{"given": ["a"]}]})
        assert requests.put(s.base + "/Patient/p", data=body, headers=CT).status_code == 201
        before = peak_rss_mb(s.proc)
        ops = [{"op": "copy", "from": "/name", "path": "/name/-"}] * 21
        r = requests.patch(s.base + "/Patient/p", data=json.dumps(ops).encode(),
                           headers={"Content-Type": "application/json-patch+json"}, timeout=60)
        assert_oo(r)
        grew = peak_rss_mb(s.proc) - before
        assert grew < 100, "peak RSS grew by %d MiB for a %d-byte request" % (grew, len(r.request.body))
    finally:
        assert_clean_exit(s)


def test_batch_of_reads_cannot_amplify_memory(tmp_path):
    """A 5 KB batch asking for 100 reads of a 1 MiB resource must not be answered with
    a 100 MiB Bundle built in memory: refused (4xx), or held under a cap (64 MiB, the
    order of magnitude suggested in the finding)."""
    s = Server(tmp_path / "db")  # its own server, so a huge answer costs only this test
    try:
        big = {"resourceType": "Patient", "id": "big",
               "extension": [{"url": "http://x", "valueString": "x" * (1 << 20)}]}
        assert requests.put(s.base + "/Patient/big", data=jb(big), headers=CT).status_code == 201
        bundle = {"resourceType": "Bundle", "type": "batch",
                  "entry": [{"request": {"method": "GET", "url": "Patient/big"}}] * 100}
        r = requests.post(s.base, data=jb(bundle), headers=CT, timeout=60)
        assert_2xx_or_oo(r)
        assert len(r.content) <= 64 << 20, "a %d-byte batch got a %d MiB answer" % (
            len(jb(bundle)), len(r.content) >> 20)
    finally:
        assert_clean_exit(s)


def test_history_and_search_pages_are_bounded_in_bytes(tmp_path):
    """R13: 70 Patients of 1 MiB make every unfiltered page (_count=1000) -- type and
    system history, search, search by _id -- hold 70 MiB of resources; each page must
    stay under REST_MAX_RESPONSE (64 MiB) and say where to go on (a next link), or be
    refused 413 too-costly."""
    s = Server(tmp_path / "db")  # its own server: 70 MiB of resources stay out of the others

    def big(rid):
        return jb({"resourceType": "Patient", "id": rid,
                   "extension": [{"url": "http://x", "valueString": "x" * (1 << 20)}]})

    try:
        with requests.Session() as h:
            for i in range(70):
                assert h.put(s.base + "/Patient/b%d" % i, data=big("b%d" % i), headers=CT).status_code == 201
            for path, params in (("/Patient/_history", {"_count": 1000}),
                                 ("/_history", {"_count": 1000}),
                                 ("/Patient", {"_count": 1000}),
                                 ("/Patient", {"_count": 1000,
                                               "_id": ",".join("b%d" % i for i in range(70))})):
                r = h.get(s.base + path, params=params, timeout=60)
                assert len(r.content) <= 64 << 20, "%s: a %d MiB page" % (path, len(r.content) >> 20)
                if r.status_code == 413:  # refused as too costly (an _id list cannot page)
                    assert_oo(r)
                    continue
                assert r.status_code == 200, (path, r.text[:300])
                links = {l["relation"] for l in r.json()["link"]}
                assert "next" in links, (path, links)  # more than fitted: the page says so
    finally:
        assert_clean_exit(s)


JP = {"Content-Type": "application/json-patch+json"}
JP_PATHS = ["", "/", "/name", "/name/0", "/name/-", "/name/1/given/0", "/name/-1", "/name/01",
            "/name/99999999999999999999", "/name/0/given/-", "/~0", "/~1", "/~2", "/~", "/a~1b",
            "/" + "\u00e9" * 200, "/name/0/" + "x" * 400, "/id", "/resourceType", "/meta",
            "/meta/versionId", "/telecom/0/value", "/active/x", "//", "/ name", "/\u0000"]
JP_VALUES = [None, 1, "x", True, [], {}, [None], {"a": 1}, "\u00e9" * 400, [1] * 500,
             {"family": "Z"}, "2020-13-01", 1e308, "\f", {"resourceType": "Patient"}]
JP_OPS = ["add", "remove", "replace", "move", "copy", "test", "ADD", "", None, 1]
FP_PATHS = ["Patient", "Patient.name", "Patient.name[0]", "Patient.name.given",
            "Patient.name.where(family = 'A')", "Patient.telecom", "Patient.extension",
            "Patient.active", "Patient.id", "Patient.meta", "Patient.name.first().given.last()",
            "Patient.repeat(name)", "Patient.descendants()", "Patient.name[99999999999]",
            "Patient.name[-1]", "Patient.*", "Patient.children().children()",
            "Patient." + "name." * 50 + "given", "Patient.name.given.select($this + 'x')",
            "\u00e9" * 300, "", "Patient.name.", "Patient.name.trace('x')",
            # values, not elements (R7 was a use-after-free on these)
            "'a'", "1", "true", "@2020", "(1 | 2)", "Patient.name.given.aggregate($total + $this, '')",
            "iif(true, 'x', Patient.name)", "Patient.id + 'x'", "%resource"]
FP_VALUES = [{"valueString": "v"}, {"valueInteger": 5}, {"valueHumanName": {"family": "Q"}},
             {"valueBoolean": False}, {"valueDate": "2001"}, {"valueString": "\u00e9" * 500},
             {"valueContactPoint": {"system": "email", "value": "a@b"}},
             {"part": [{"name": "x"}]}, {"resource": {"resourceType": "Patient"}}]


def test_hostile_patches(srv, http):
    """Seeded random JSON Patches and FHIRPath Patches (paths that name elements,
    compute values or are literals) on one resource: 2xx, or 4xx with an
    OperationOutcome, and the body is always UTF-8 JSON."""
    target = {"resourceType": "Patient", "id": "rob-p", "active": True,
              "name": [{"family": "A", "given": ["B", "C"]}, {"family": "D"}],
              "telecom": [{"system": "phone", "value": "1"}],
              "extension": [{"url": "http://x", "valueString": "s"}], "birthDate": "2000-01-01"}
    url = srv.base + "/Patient/rob-p"

    def reset():
        r = http.put(url, data=jb(target), headers=CT)
        assert r.status_code in (200, 201), r.text

    def check(r, what):
        json.loads(r.content.decode("utf-8")) if r.content else None
        try:
            assert_2xx_or_oo(r)
        except AssertionError as e:
            raise AssertionError(what) from e

    reset()
    rng = random.Random(7)
    for i in range(250):
        ops = []
        for _ in range(rng.randint(0, 4)):
            op = {}
            o = rng.choice(JP_OPS)
            if o is not None or rng.random() < 0.5:
                op["op"] = o
            if rng.random() < 0.95:
                op["path"] = rng.choice(JP_PATHS)
            if rng.random() < 0.6:
                op["value"] = rng.choice(JP_VALUES)
            if rng.random() < 0.3:
                op["from"] = rng.choice(JP_PATHS)
            ops.append(op)
        body = ops if rng.random() < 0.9 else rng.choice([{}, "x", None, 1, [[]], {"op": "add"}])
        r = http.patch(url, data=json.dumps(body).encode(), headers=JP)
        check(r, body)
        if r.status_code == 200:
            reset()
    for i in range(250):
        ops = []
        for _ in range(rng.randint(1, 2)):
            op = {"type": {"valueCode": rng.choice(["add", "insert", "delete", "replace", "move",
                                                    "x", ""])},
                  "path": {"valueString": rng.choice(FP_PATHS)}}
            for k in rng.sample(["name", "value", "index", "source", "destination"],
                                rng.randint(0, 3)):
                if k == "name":
                    op[k] = {"valueString": rng.choice(["given", "family", "x", "", "\u00e9" * 99])}
                elif k == "value":
                    op[k] = rng.choice(FP_VALUES)
                else:
                    op[k] = {"valueInteger": rng.choice([0, 1, -1, 2147483647, 5])}
            ops.append(op)
        body = fp_patch(*ops)
        r = http.patch(url, data=jb(body), headers=CT)
        check(r, body)
        if r.status_code == 200:
            reset()


# ---------------------------------------------------------------- outcome text
@pytest.mark.parametrize("body", [b'{"resourceType":"Patient","a\\fb":1}',
                                  b'{"resourceType":"Patient","name":[{"family":"a\\u000bb"}]}'])
def test_outcome_strings_are_valid_fhir_strings(srv, http, body):
    r = http.post(srv.base + "/Patient", data=body, headers=CT)
    oo = assert_oo(r, (400,))
    for text in json_strings(oo):
        assert "\f" not in text and "\v" not in text, text


@pytest.mark.parametrize("prefix", ["a", "aaa"])
def test_outcome_is_utf8_when_a_long_key_is_cut(srv, http, prefix):
    key = prefix + "\u00e9" * 300
    body = ('{"resourceType":"Patient","%s":1}' % key).encode()
    for path, status in (("/Patient", 400), ("/Patient/$validate", 200)):
        r = http.post(srv.base + path, data=body, headers=CT)
        assert r.status_code == status, (path, r.status_code)
        oo = json.loads(r.content.decode("utf-8"))  # strict: raises on a cut sequence
        assert oo["resourceType"] == "OperationOutcome"


OPERATION_NAMES = [b"$validate", b"$VALIDATE", b"$", b"$$", b"$" + b"x" * 300, b"$validate$",
                   b"$everything", b"$meta", b"$%C3%A9", b"$validate/x", b"$%FF"]


@pytest.mark.parametrize("name", OPERATION_NAMES, ids=range(len(OPERATION_NAMES)))
def test_operation_urls_and_bodies(srv, victim, name):
    bodies = [b"", b"{}", b"[]", b"null", jb({"resourceType": "Parameters"}),
              jb({"resourceType": "Parameters", "parameter": [{"name": "resource"}]}),
              jb({"resourceType": "Parameters", "parameter": [
                  {"name": "resource", "resource": {"resourceType": "Observation"}}] * 3}),
              jb({"resourceType": "Parameters", "parameter": [
                  {"name": "mode", "valueCode": "delete"}, {"name": "profile", "valueUri": "x"}]}),
              jb({"resourceType": "Parameters", "parameter": [
                  {"name": "resource", "resource": {"resourceType": "Parameters", "parameter": [
                      {"name": "resource", "resource": {"resourceType": "Patient", "x": 1}}]}}]})]
    for base in (b"/fhir", b"/fhir/Patient", b"/fhir/Patient/rob-v", b"/fhir/Patient/nope",
                 b"/fhir/Foo", b"/fhir/Patient/rob-v/_history/1"):
        for method in (b"GET", b"DELETE"):
            r = raw(srv, req(method, base + b"/" + name))
            assert r is not None, (method, base, name)
            assert_2xx_or_oo(r)
        for body in bodies:
            r = raw(srv, req(b"POST", base + b"/" + name, post_head(), body))
            assert r is not None, (base, name, body)
            assert_2xx_or_oo(r)
    assert current_etag(srv) == (200, victim)


# ---------------------------------------------------------------- after all of it
def test_zz_server_survived_without_sanitizer_reports(srv):
    """Runs last (file order): the server still answers and its log is clean."""
    assert srv.proc.poll() is None
    assert requests.get(srv.root + "/healthz", timeout=5).status_code == 200
    r = requests.post(srv.base + "/Patient", data=jb({"resourceType": "Patient"}), headers=CT)
    assert r.status_code == 201
    metrics = requests.get(srv.root + "/metrics", timeout=5)
    assert metrics.status_code == 200
    for line in metrics.text.splitlines():  # hostile methods/paths never leak into labels
        assert line.startswith("#") or re.fullmatch(
            r'[a-z_]+(\{([a-z_]+="[A-Za-z0-9_.+-]*",?)*\})? [0-9.e+-]+', line), line
    out = srv.output()
    for mark in SANITIZER_MARKS:
        assert mark not in out, out[-6000:]
