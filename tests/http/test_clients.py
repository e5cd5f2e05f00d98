"""What FHIR client libraries expect (DESIGN.md 6a): absolute links from the Host the
client used, Location absolute, Content-Length: 0 on empty bodies, trailing slashes."""
import socket

from conftest import FHIR_JSON, assert_outcome, create


def test_links_follow_the_host_the_client_used(http, server):
    for host in [f"localhost:{server.port}", f"127.0.0.1:{server.port}"]:
        base = f"http://{host}/fhir"
        r = create(http, base, {"resourceType": "Patient"})
        assert r.headers["Location"].startswith(base + "/Patient/")
        b = http.get(f"{base}/Patient/_history", params={"_count": 1}).json()
        assert all(l["url"].startswith(base + "/Patient/_history?") for l in b["link"])
        assert all(e["fullUrl"].startswith(base + "/Patient/") for e in b["entry"])


def test_forwarded_headers(http, server):
    r = http.get(f"{server.base}/_history", params={"_count": 1},
                 headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "fhir.example.org"})
    for l in r.json()["link"]:
        assert l["url"].startswith("https://fhir.example.org/fhir/_history")


def test_bad_host_header_does_not_leak_into_links(server):
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b'GET /fhir/_history?_count=1 HTTP/1.1\r\nHost: evil"><x\r\nConnection: close\r\n\r\n')
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert b"evil" not in data


def test_base_url_option(make_server, http):
    s = make_server(extra_args=["--base-url", "https://public.example/r4/"])
    r = create(http, s.base, {"resourceType": "Patient"})
    assert r.headers["Location"].startswith("https://public.example/r4/Patient/")


def test_empty_bodies_have_content_length_zero(http, base):
    r = http.post(f"{base}/Patient", json={"resourceType": "Patient"},
                  headers={"Content-Type": FHIR_JSON, "Prefer": "return=minimal"})
    assert r.status_code == 201 and r.headers["Content-Length"] == "0"
    rid = r.headers["Location"].split("/")[-3]
    r = http.get(f"{base}/Patient/{rid}", headers={"If-None-Match": 'W/"1"'})
    assert r.status_code == 304 and r.content == b""


def test_trailing_slashes(http, base):
    p = create(http, base, {"resourceType": "Patient"}).json()
    assert http.get(f"{base}/Patient/{p['id']}/").status_code == 200
    assert http.get(f"{base}/metadata/").status_code == 200
    r = http.post(f"{base}/Patient/", json={"resourceType": "Patient"},
                  headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 201


def test_keep_alive(http, base):
    p = create(http, base, {"resourceType": "Patient"}).json()
    r = http.get(f"{base}/Patient/{p['id']}")
    assert r.headers.get("Connection", "").lower() != "close"


def test_batch_at_base_with_and_without_slash(http, base):
    bundle = {"resourceType": "Bundle", "type": "batch",
              "entry": [{"request": {"method": "GET", "url": "metadata-not-a-type/1"}}]}
    for url in [base, base + "/"]:
        r = http.post(url, json=bundle, headers={"Content-Type": FHIR_JSON})
        assert r.status_code == 200, r.text
        assert r.json()["type"] == "batch-response"


def test_cors_for_browser_apps(http, base):
    p = create(http, base, {"resourceType": "Patient"}).json()
    r = http.get(f"{base}/Patient/{p['id']}", headers={"Origin": "https://app.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in r.headers["Access-Control-Expose-Headers"]
    assert "Location" in r.headers["Access-Control-Expose-Headers"]
    r = http.options(f"{base}/Patient/{p['id']}",
                     headers={"Origin": "https://app.example",
                              "Access-Control-Request-Method": "PUT",
                              "Access-Control-Request-Headers": "content-type, if-match"})
    assert r.status_code == 204
    assert "PUT" in r.headers["Access-Control-Allow-Methods"]
    assert r.headers["Access-Control-Allow-Headers"] == "content-type, if-match"
    r = http.options(f"{base}/Patient", headers={"Origin": "https://app.example"})
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Origin" not in http.get(f"{base}/metadata").headers
