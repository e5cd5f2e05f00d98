"""History for instance, type and system: entries, _since, _at, _count, paging links."""
import datetime
import time
from urllib.parse import parse_qs, urlparse

import pytest

from conftest import FHIR_JSON, assert_outcome, create

CT = {"Content-Type": FHIR_JSON}


def obs(code, value=None):
    o = {"resourceType": "Observation", "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": code}]}}
    if value is not None:
        o["valueQuantity"] = {"value": value, "unit": "mmHg"}
    return o


def follow(http, url):
    """All entries across pages, following next links; returns (entries, pages)."""
    entries, pages = [], []
    while url:
        r = http.get(url)
        assert r.status_code == 200, r.text
        b = r.json()
        assert b["resourceType"] == "Bundle" and b["type"] == "history"
        pages.append(b)
        entries += b.get("entry", [])
        url = next((l["url"] for l in b["link"] if l["relation"] == "next"), None)
    return entries, pages


def test_instance_history(http, base):
    o = create(http, base, obs("1", 1)).json()
    url = f"{base}/Observation/{o['id']}"
    o["valueQuantity"]["value"] = 2
    assert http.put(url, json=o, headers=CT).status_code == 200
    assert http.delete(url).status_code == 204
    o["valueQuantity"]["value"] = 3
    assert http.put(url, json=o, headers=CT).status_code == 201
    b = http.get(url + "/_history").json()
    e = b["entry"]
    assert [x["response"]["etag"] for x in e] == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']
    assert [x["request"]["method"] for x in e] == ["PUT", "DELETE", "PUT", "POST"]
    assert [x["response"]["status"] for x in e] == ["201", "204", "200", "201"]
    assert "resource" not in e[1]
    assert e[0]["resource"]["valueQuantity"]["value"] == 3
    assert e[2]["resource"]["valueQuantity"]["value"] == 2
    assert e[3]["request"]["url"] == "Observation"
    assert e[2]["request"]["url"] == f"Observation/{o['id']}"
    assert all(x["fullUrl"] == url for x in e)
    assert all(x["response"]["lastModified"].endswith("Z") for x in e)
    self_link = [l["url"] for l in b["link"] if l["relation"] == "self"]
    assert self_link and self_link[0].startswith(url + "/_history")


def test_instance_history_unknown_is_404(http, base):
    assert_outcome(http.get(f"{base}/Observation/never/_history"), 404)


def test_type_history_paging_and_total(http, base):
    ids = [create(http, base, {"resourceType": "Device", "status": "active"}).json()["id"]
           for _ in range(7)]
    b = http.get(f"{base}/Device/_history", params={"_count": 3}).json()
    assert b["total"] == 7
    assert len(b["entry"]) == 3
    entries, pages = follow(http, f"{base}/Device/_history?_count=3")
    assert len(pages) == 3
    got = [e["resource"]["id"] for e in entries]
    assert got == list(reversed(ids))  # newest first, each once
    # previous link on the later pages leads back
    prev = next(l["url"] for l in pages[1]["link"] if l["relation"] == "previous")
    assert [e["resource"]["id"] for e in http.get(prev).json()["entry"]] == got[:3]
    assert not any(l["relation"] == "previous" for l in pages[0]["link"])


def test_paging_is_stable_while_writing(http, base):
    for _ in range(5):
        create(http, base, {"resourceType": "Substance", "code": {"text": "x"}})
    first = http.get(f"{base}/Substance/_history", params={"_count": 2}).json()
    before = [e["resource"]["id"] for e in first["entry"]]
    nxt = next(l["url"] for l in first["link"] if l["relation"] == "next")
    for _ in range(3):  # new versions land at the front
        create(http, base, {"resourceType": "Substance", "code": {"text": "y"}})
    rest, _ = follow(http, nxt)
    ids = before + [e["resource"]["id"] for e in rest]
    assert len(ids) == 5 and len(set(ids)) == 5


def test_count_limits(http, base):
    for _ in range(3):
        create(http, base, {"resourceType": "Group", "type": "person", "actual": True})
    b = http.get(f"{base}/Group/_history", params={"_count": 0}).json()
    assert "entry" not in b and b["total"] == 3
    b = http.get(f"{base}/Group/_history", params={"_count": 100000}).json()
    assert len(b["entry"]) == 3
    assert parse_qs(urlparse(b["link"][0]["url"]).query)["_count"] == ["1000"]


def test_since_and_at(http, base):
    a = create(http, base, {"resourceType": "Location", "name": "a"}).json()
    lu1 = a["meta"]["lastUpdated"]
    time.sleep(0.1)
    # an instant 50 ms after version 1 was written, before version 2
    t1 = datetime.datetime.strptime(lu1, "%Y-%m-%dT%H:%M:%S.%fZ") + datetime.timedelta(milliseconds=50)
    mid = t1.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t1.microsecond // 1000:03d}Z"
    time.sleep(0.05)
    # a new version after `mid`
    a["name"] = "a2"
    assert http.put(f"{base}/Location/{a['id']}", json=a, headers=CT).status_code == 200
    lu2 = http.get(f"{base}/Location/{a['id']}").json()["meta"]["lastUpdated"]
    b = http.get(f"{base}/Location/{a['id']}/_history", params={"_since": lu2}).json()
    assert [e["response"]["etag"] for e in b["entry"]] == ['W/"2"']
    b = http.get(f"{base}/Location/{a['id']}/_history", params={"_since": mid}).json()
    assert len(b["entry"]) >= 1
    # _at: the version current at the time of version 1
    b = http.get(f"{base}/Location/_history", params={"_at": mid}).json()
    mine = [e for e in b["entry"] if e["fullUrl"].endswith("/" + a["id"])]
    assert [e["response"]["etag"] for e in mine] == ['W/"1"']
    # timezone offsets are understood ('+' must be escaped in a query)
    b = http.get(f"{base}/Location/_history", params={"_since": "2000-01-01T01:00:00+01:00"})
    assert b.status_code == 200 and len(b.json()["entry"]) >= 2
    b = http.get(f"{base}/Location/_history", params={"_since": "2999-01-01T00:00:00Z"}).json()
    assert "entry" not in b


def test_system_history(http, base):
    p = create(http, base, {"resourceType": "Patient", "gender": "male"}).json()
    o = create(http, base, obs("sys")).json()
    b = http.get(f"{base}/_history", params={"_count": 2}).json()
    assert [e["resource"]["id"] for e in b["entry"]] == [o["id"], p["id"]]
    assert b["total"] >= 2
    entries, pages = follow(http, f"{base}/_history?_count=50")
    assert len(entries) == b["total"]
    keys = [(e["fullUrl"], e["response"]["etag"]) for e in entries]
    assert len(keys) == len(set(keys))


def test_history_pretty(http, base):
    b = http.get(f"{base}/_history", params={"_count": 1, "_pretty": "true"})
    assert b"\n  \"resourceType\": \"Bundle\"" in b.content
    assert b.json()["entry"]
