"""create, read, vread, update, delete: status codes, headers and bodies."""
import email.utils
import re
import time

from conftest import FHIR_JSON, assert_outcome, create

PATIENT = {"resourceType": "Patient", "name": [{"family": "Garden", "given": ["Ada"]}],
           "gender": "female", "birthDate": "1970-01-02"}


def test_create_assigns_id_version_and_headers(http, base):
    body = dict(PATIENT, id="client-chosen", meta={"versionId": "77", "profile": ["http://x/p"]})
    r = create(http, base, body)
    res = r.json()
    assert res["id"] != "client-chosen"
    assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", res["id"])
    assert res["meta"]["versionId"] == "1"
    assert res["meta"]["profile"] == ["http://x/p"]  # other meta kept
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", res["meta"]["lastUpdated"])
    assert res["name"] == PATIENT["name"]
    assert r.headers["ETag"] == 'W/"1"'
    assert r.headers["Location"] == f"{base}/Patient/{res['id']}/_history/1"
    assert r.headers["Content-Type"].startswith(FHIR_JSON)
    lm = email.utils.parsedate_to_datetime(r.headers["Last-Modified"])
    assert abs(lm.timestamp() - time.time()) < 120


def test_two_creates_get_distinct_ids(http, base):
    a = create(http, base, PATIENT).json()["id"]
    b = create(http, base, PATIENT).json()["id"]
    assert a != b


def test_server_ids_are_time_ordered_uuids(http, base):
    # UUID version 7: later creates sort after earlier ones (millisecond clock),
    # which keeps a burst of creates on neighbouring store pages.
    ids = []
    for _ in range(3):
        ids.append(create(http, base, PATIENT).json()["id"])
        time.sleep(0.003)
    for i in ids:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", i)
        ms = int(i.replace("-", "")[:12], 16)
        assert abs(ms / 1000 - time.time()) < 120
    assert ids == sorted(ids)


def test_read_returns_stored_resource(http, base):
    created = create(http, base, PATIENT).json()
    r = http.get(f"{base}/Patient/{created['id']}")
    assert r.status_code == 200
    assert r.json() == created
    assert r.headers["ETag"] == 'W/"1"'
    assert "Last-Modified" in r.headers
    assert r.headers["Content-Type"].startswith(FHIR_JSON)


def test_read_unknown_is_404(http, base):
    assert_outcome(http.get(f"{base}/Patient/does-not-exist"), 404, "not-found")


def test_update_creates_new_version(http, base):
    p = create(http, base, PATIENT).json()
    p["gender"] = "other"
    r = http.put(f"{base}/Patient/{p['id']}", json=p, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == 'W/"2"'
    assert r.json()["meta"]["versionId"] == "2"
    assert http.get(f"{base}/Patient/{p['id']}").json()["gender"] == "other"
    old = http.get(f"{base}/Patient/{p['id']}/_history/1")
    assert old.status_code == 200
    assert old.json()["gender"] == "female"
    assert old.headers["ETag"] == 'W/"1"'


def test_update_as_create(http, base):
    body = dict(PATIENT, id="upd-create-1")
    r = http.put(f"{base}/Patient/upd-create-1", json=body, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"{base}/Patient/upd-create-1/_history/1"
    assert r.json()["id"] == "upd-create-1"
    r = http.put(f"{base}/Patient/upd-create-1", json=body, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 200
    assert r.headers["ETag"] == 'W/"2"'


def test_if_match_version_aware_update(http, base):
    p = create(http, base, PATIENT).json()
    url = f"{base}/Patient/{p['id']}"
    r = http.put(url, json=p, headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"1"'})
    assert r.status_code == 200, r.text
    # version 1 is no longer current
    r = http.put(url, json=p, headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"1"'})
    assert_outcome(r, 412, "conflict")
    assert http.get(url).headers["ETag"] == 'W/"2"'
    r = http.put(url, json=p, headers={"Content-Type": FHIR_JSON, "If-Match": '"2"'})
    assert r.status_code == 200
    r = http.put(url, json=p, headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"x"'})
    assert_outcome(r, 400)


def test_if_match_on_missing_resource_is_412(http, base):
    body = dict(PATIENT, id="never-there")
    r = http.put(f"{base}/Patient/never-there", json=body,
                 headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"1"'})
    assert_outcome(r, 412)


def test_delete_then_read_is_410(http, base):
    p = create(http, base, PATIENT).json()
    url = f"{base}/Patient/{p['id']}"
    r = http.delete(url)
    assert r.status_code == 204
    assert r.headers["ETag"] == 'W/"2"'
    assert r.content == b""
    assert_outcome(http.get(url), 410, "deleted")
    # versions stay readable; the deletion version is gone
    assert http.get(url + "/_history/1").status_code == 200
    assert_outcome(http.get(url + "/_history/2"), 410)
    assert_outcome(http.get(url + "/_history/3"), 404)
    # deleting again is idempotent
    assert http.delete(url).status_code == 204
    # and an update brings it back as version 3
    r = http.put(url, json=p, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 201, r.text
    assert r.headers["ETag"] == 'W/"3"'
    assert http.get(url).status_code == 200


def test_delete_missing_is_204(http, base):
    r = http.delete(f"{base}/Patient/no-such-thing")
    assert r.status_code == 204
    assert r.content == b""


def test_delete_if_match(http, base):
    p = create(http, base, PATIENT).json()
    url = f"{base}/Patient/{p['id']}"
    assert_outcome(http.delete(url, headers={"If-Match": 'W/"5"'}), 412)
    assert http.get(url).status_code == 200
    assert http.delete(url, headers={"If-Match": 'W/"1"'}).status_code == 204


def test_vread_bad_version_is_400(http, base):
    p = create(http, base, PATIENT).json()
    assert_outcome(http.get(f"{base}/Patient/{p['id']}/_history/abc"), 400)
    assert_outcome(http.get(f"{base}/Patient/{p['id']}/_history/0"), 400)


def test_if_none_match_304(http, base):
    p = create(http, base, PATIENT).json()
    url = f"{base}/Patient/{p['id']}"
    r = http.get(url, headers={"If-None-Match": 'W/"1"'})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["ETag"] == 'W/"1"'
    assert http.get(url, headers={"If-None-Match": 'W/"9"'}).status_code == 200
    assert http.get(url, headers={"If-None-Match": '"1"'}).status_code == 304
    assert http.get(url, headers={"If-None-Match": '*'}).status_code == 304


def test_if_modified_since_304(http, base):
    p = create(http, base, PATIENT).json()
    url = f"{base}/Patient/{p['id']}"
    lm = http.get(url).headers["Last-Modified"]
    assert http.get(url, headers={"If-Modified-Since": lm}).status_code == 304
    future = email.utils.formatdate(time.time() + 3600, usegmt=True)
    assert http.get(url, headers={"If-Modified-Since": future}).status_code == 304
    past = email.utils.formatdate(time.time() - 3600, usegmt=True)
    assert http.get(url, headers={"If-Modified-Since": past}).status_code == 200


def test_prefer_return(http, base):
    url = f"{base}/Patient"
    r = http.post(url, json=PATIENT,
                  headers={"Content-Type": FHIR_JSON, "Prefer": "return=minimal"})
    assert r.status_code == 201
    assert r.content == b""
    assert r.headers["Content-Length"] == "0"
    assert r.headers["Location"].startswith(base + "/Patient/")
    r = http.post(url, json=PATIENT,
                  headers={"Content-Type": FHIR_JSON, "Prefer": "return=OperationOutcome"})
    assert r.status_code == 201
    assert r.json()["resourceType"] == "OperationOutcome"
    assert r.json()["issue"][0]["severity"] == "information"
    r = http.post(url, json=PATIENT,
                  headers={"Content-Type": FHIR_JSON, "Prefer": "return=representation"})
    assert r.json()["resourceType"] == "Patient"
    rid = r.json()["id"]
    r = http.put(f"{url}/{rid}", json=r.json(),
                 headers={"Content-Type": FHIR_JSON, "Prefer": "return=minimal"})
    assert r.status_code == 200 and r.content == b""
    r = http.delete(f"{url}/{rid}", headers={"Prefer": "return=OperationOutcome"})
    assert r.status_code == 200
    assert r.json()["resourceType"] == "OperationOutcome"


def test_pretty(http, base):
    p = create(http, base, PATIENT).json()
    compact = http.get(f"{base}/Patient/{p['id']}")
    pretty = http.get(f"{base}/Patient/{p['id']}", params={"_pretty": "true"})
    assert b"\n" not in compact.content
    assert b'\n  "resourceType": "Patient"' in pretty.content
    assert pretty.json() == compact.json()
    err = http.get(f"{base}/Patient/nope", params={"_pretty": "true"})
    assert b"\n" in err.content


def test_elements_and_summary(http, base):
    p = create(http, base, dict(PATIENT, text={"status": "generated",
                                               "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Ada</div>"})).json()
    url = f"{base}/Patient/{p['id']}"
    r = http.get(url, params={"_elements": "gender"}).json()
    assert r["gender"] == "female"
    assert "name" not in r and "birthDate" not in r
    assert r["id"] == p["id"]
    assert any(t["code"] == "SUBSETTED" for t in r["meta"]["tag"])
    r = http.get(url, params={"_summary": "true"}).json()
    assert "text" not in r  # text is not a summary element
    assert r["name"] == PATIENT["name"]
    r = http.get(url, params={"_summary": "data"}).json()
    assert "text" not in r and r["gender"] == "female"
    r = http.get(url, params={"_summary": "text"}).json()
    assert "text" in r and "gender" not in r


def test_head_read(http, base):
    p = create(http, base, PATIENT).json()
    r = http.head(f"{base}/Patient/{p['id']}")
    assert r.status_code == 200
    assert r.headers["ETag"] == 'W/"1"'
    assert r.content == b""


def test_method_not_allowed(http, base):
    r = http.put(f"{base}/Patient/_history", json=PATIENT, headers={"Content-Type": FHIR_JSON})
    assert_outcome(r, 405)
    assert "GET" in r.headers["Allow"]
    assert_outcome(http.delete(f"{base}/metadata"), 405)
    # PUT on the type is a conditional update: without a search it says what is missing
    r = http.put(f"{base}/Patient", json=PATIENT, headers={"Content-Type": FHIR_JSON})
    assert_outcome(r, 400, "invalid")
    assert "search parameters" in r.json()["issue"][0]["diagnostics"]


def test_create_after_client_disconnect_keeps_serving(server, http, base):
    # a write whose client vanished while it waited for the commit must not hurt
    import socket
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", server.port))
        body = b'{"resourceType":"Patient"}'
        s.sendall(b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        s.close()
    assert http.get(f"{base}/metadata").status_code == 200
    assert create(http, base, PATIENT).status_code == 201
