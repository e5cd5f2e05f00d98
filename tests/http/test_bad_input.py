"""Bad requests: each gets the right 4xx with an OperationOutcome, never a 5xx or a crash.

The session server's clean exit (checked at teardown, no sanitizer report) covers
"never a crash"; /healthz after each class covers "still serving".
"""
import json
import socket

import pytest

from conftest import FHIR_JSON, assert_outcome

CT = {"Content-Type": FHIR_JSON}


def post_raw(http, base, body, typ="Patient", headers=CT):
    return http.post(f"{base}/{typ}", data=body, headers=headers)


@pytest.fixture(autouse=True)
def still_healthy(http, server):
    yield
    assert http.get(server.root + "/healthz").status_code == 200


@pytest.mark.parametrize("body", [
    b'{"resourceType": "Patient",',          # truncated
    b'{"resourceType": "Patient"',           # truncated object
    b'{"resourceType": "Patient", "gender": "male"',
    b'{"resourceType": "Patient" "gender": "male"}',  # missing comma
    b"{'resourceType': 'Patient'}",          # not JSON quotes
    b'{"resourceType": "Patient", "active": tru}',
    b'{"resourceType": "Patient"} trailing',
    b'',                                     # empty body
    b'   ',
    b'[1, 2]',                               # not an object
    b'"Patient"',
    b'{"resourceType": "Patient", "active": true, "active": false}',  # duplicate key
    b'{"resourceType": "Patient", "name": [{"family": "A\x01"}]}',    # raw control char
    b'{"resourceType": "Patient", "multipleBirthInteger": 01}',       # bad number
])
def test_invalid_json_is_400(http, base, body):
    assert_outcome(post_raw(http, base, body), 400)


@pytest.mark.parametrize("body", [
    b'{"resourceType": "Patient", "name": [{"family": "\xff\xfe"}]}',
    b'{"resourceType": "Patient", "name": [{"family": "\xc0\xaf"}]}',   # overlong
    b'{"resourceType": "Patient", "name": [{"family": "\xed\xa0\x80"}]}',  # surrogate
    b'{"resourceType": "Patient", "name": [{"family": "\xe2\x82"}]}',   # truncated seq
])
def test_invalid_utf8_is_400(http, base, body):
    oo = assert_outcome(post_raw(http, base, body), 400)
    assert "UTF-8" in json.dumps(oo) or "utf-8" in json.dumps(oo).lower()


def test_null_values_are_400(http, base):
    assert_outcome(post_raw(http, base, b'{"resourceType": "Patient", "gender": null}'), 400)
    assert_outcome(post_raw(http, base, b'{"resourceType": "Patient", "name": [null]}'), 400)
    assert_outcome(post_raw(http, base, b'{"resourceType": null}'), 400)


def test_nesting_over_depth_cap_is_400(http, base):
    deep = b'{"resourceType": "Patient", "extension": ' + b"[" * 200 + b"]" * 200 + b"}"
    oo = assert_outcome(post_raw(http, base, deep), 400)
    assert "deep" in oo["issue"][0]["diagnostics"] or "depth" in oo["issue"][0]["diagnostics"]


def test_body_over_size_cap_is_413(http, base):
    big = b'{"resourceType": "Patient", "name": [{"family": "' + b"x" * (9 << 20) + b'"}]}'
    assert_outcome(post_raw(http, base, big), 413)


def test_chunked_body_over_size_cap_is_413(http, base):
    def chunks():
        yield b'{"resourceType": "Patient", "name": [{"family": "'
        for _ in range(10):
            yield b"x" * (1 << 20)
        yield b'"}]}'
    assert_outcome(http.post(f"{base}/Patient", data=chunks(), headers=CT), 413)


def test_truncated_body_connection_does_not_hurt(server, http, base):
    # announce 1000 bytes, send 20, close: the server must just drop the request
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
              b"Content-Length: 1000\r\n\r\n{\"resourceType\": \"Pa")
    s.close()
    assert http.get(f"{base}/metadata").status_code == 200


def test_resource_type_mismatch_is_400(http, base):
    r = post_raw(http, base, b'{"resourceType": "Observation", "status": "final"}')
    oo = assert_outcome(r, 400)
    assert "Observation" in oo["issue"][0]["diagnostics"]
    r = http.put(f"{base}/Patient/p1", data=b'{"resourceType": "Observation", "id": "p1"}',
                 headers=CT)
    assert_outcome(r, 400)


def test_missing_resource_type_is_400(http, base):
    assert_outcome(post_raw(http, base, b'{"gender": "male"}'), 400)
    assert_outcome(post_raw(http, base, b'{"resourceType": 5}'), 400)


def test_id_mismatch_between_url_and_body_is_400(http, base):
    r = http.put(f"{base}/Patient/abc", data=b'{"resourceType": "Patient", "id": "xyz"}',
                 headers=CT)
    assert_outcome(r, 400)
    r = http.put(f"{base}/Patient/abc", data=b'{"resourceType": "Patient"}', headers=CT)
    assert_outcome(r, 400)
    assert http.get(f"{base}/Patient/abc").status_code == 404


@pytest.mark.parametrize("rid", ["a_b", "a%20b", "x" * 65, "caf%C3%A9"])
def test_invalid_id_is_400(http, base, rid):
    body = json.dumps({"resourceType": "Patient", "id": rid}).encode()
    assert_outcome(http.put(f"{base}/Patient/{rid}", data=body, headers=CT), 400)
    assert_outcome(http.get(f"{base}/Patient/{rid}"), 400)
    assert_outcome(http.delete(f"{base}/Patient/{rid}"), 400)


def test_id_of_64_chars_is_fine(http, base):
    rid = "A-b.9" + "z" * 59
    body = json.dumps({"resourceType": "Patient", "id": rid}).encode()
    assert http.put(f"{base}/Patient/{rid}", data=body, headers=CT).status_code == 201


def test_unknown_resource_type_is_404(http, base):
    assert_outcome(http.get(f"{base}/Patientx/1"), 404)
    assert_outcome(post_raw(http, base, b'{"resourceType": "Foo"}', typ="Foo"), 404)
    assert_outcome(http.get(f"{base}/DomainResource/1"), 404)  # abstract


def test_unknown_element_is_400(http, base):
    oo = assert_outcome(post_raw(http, base, b'{"resourceType": "Patient", "fooBar": 1}'), 400)
    assert "fooBar" in json.dumps(oo)
    oo = assert_outcome(post_raw(
        http, base, b'{"resourceType": "Patient", "name": [{"family": "x", "nickname": "y"}]}'),
        400)
    assert "nickname" in json.dumps(oo)


def test_wrong_primitive_format_is_400(http, base):
    for body in [b'{"resourceType": "Patient", "birthDate": "1970-13-01"}',
                 b'{"resourceType": "Patient", "birthDate": 1970}',
                 b'{"resourceType": "Patient", "active": "yes"}',
                 b'{"resourceType": "Patient", "gender": "male", "multipleBirthInteger": 1.5}']:
        assert_outcome(post_raw(http, base, body), 400)


def test_unsupported_media_type_is_415(http, base):
    body = b'{"resourceType": "Patient"}'
    for ct in ["application/xml", "application/fhir+xml", "text/plain",
               "application/x-www-form-urlencoded", "application/fhir+json; charset=latin1"]:
        assert_outcome(post_raw(http, base, body, headers={"Content-Type": ct}), 415)
    r = http.post(f"{base}/Patient", data=body, headers={"Content-Type": ""})
    assert_outcome(r, 415)


def test_unknown_paths_are_404(http, server, base):
    assert_outcome(http.get(server.root + "/nothing"), 404)
    assert_outcome(http.get(f"{base}/Patient/1/foo"), 404)
    assert_outcome(http.get(f"{base}/Patient/1/_history/1/x"), 404)


def test_bad_history_parameters_are_400(http, base):
    assert_outcome(http.get(f"{base}/_history", params={"_count": "-1"}), 400)
    assert_outcome(http.get(f"{base}/_history", params={"_count": "ten"}), 400)
    assert_outcome(http.get(f"{base}/_history", params={"_since": "yesterday"}), 400)
    assert_outcome(http.get(f"{base}/_history", params={"_since": "2020-01-01T10:00"}), 400)
    assert_outcome(http.get(f"{base}/_history", params={"_at": "2020-02-30"}), 400)
    assert_outcome(http.get(f"{base}/_history", params={"_page_t": "x"}), 400)


def test_non_utf8_in_path_and_headers_gives_valid_json(http, base):
    for url in [f"{base}/%FF%FE/1", f"{base}/Patient/%C3%28", f"{base}/Patient/x/_history/%FF"]:
        r = http.get(url)
        assert 400 <= r.status_code < 500
        r.content.decode("utf-8")  # strict
        assert r.json()["resourceType"] == "OperationOutcome"
    r = http.get(f"{base}/metadata", headers={"Accept": b"text/\xff\xfe"})
    assert_outcome(r, 406)
    r.content.decode("utf-8")


def test_get_with_a_body_is_answered(http, base):
    r = http.get(f"{base}/metadata", data=b"x" * 100000)
    assert r.status_code == 200
    assert r.json()["resourceType"] == "CapabilityStatement"


def raw_request(server, data):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(data)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
        if b"\r\n\r\n" in out:
            head, _, body = out.partition(b"\r\n\r\n")
            cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            if cl and len(body) >= int(cl[0].split(b":")[1]):
                break
    s.close()
    return out


def test_encoded_nul_or_slash_in_the_path_is_400(server, http, base):
    http.put(f"{base}/Patient/enc-victim", data=b'{"resourceType":"Patient","id":"enc-victim"}',
             headers=CT)
    for path in [b"/fhir/Patient/enc-victim%00junk", b"/fhir/Patient/%00",
                 b"/fhir/Patient/enc-victim%2F", b"/fhir/Patient/enc%2fvictim"]:
        for method in [b"GET", b"DELETE"]:
            out = raw_request(server, method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n"
                              b"Connection: close\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 400"), (path, out[:200])
            assert b"OperationOutcome" in out
    assert http.get(f"{base}/Patient/enc-victim").status_code == 200


def test_conflicting_content_lengths_are_400(server):
    body = b'{"resourceType":"Patient"}    '
    out = raw_request(server, b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/fhir+json\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(body), len(body) - 4, body))
    assert out.startswith(b"HTTP/1.1 400"), out[:200]


def test_control_characters_never_reach_outcome_text(http, base):
    for body in [b'{"resourceType":"Patient","a\\fb":1}',
                 b'{"resourceType":"Patient","name":[{"family":"a\\u000bb"}]}']:
        oo = assert_outcome(post_raw(http, base, body), 400)
        for issue in oo["issue"]:
            text = issue.get("diagnostics", "") + "".join(issue.get("expression", []))
            assert not any(ord(ch) < 32 and ch not in "\t\r\n" for ch in text), text


def test_expect_continue_with_a_body_over_the_cap_is_refused_at_once(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
              b"Content-Length: 20000000\r\nExpect: 100-continue\r\n\r\n")
    head = s.recv(65536)
    s.close()
    assert head.startswith(b"HTTP/1.1 413"), head[:200]


def test_outcome_stays_utf8_when_long_text_is_cut(http, base):
    for prefix in ["a", "aa", "aaa"]:
        key = prefix + "\u00e9" * 300
        body = ('{"resourceType":"Patient","%s":1}' % key).encode()
        r = post_raw(http, base, body)
        assert r.status_code == 400
        r.content.decode("utf-8")  # strict
        assert r.json()["resourceType"] == "OperationOutcome"
