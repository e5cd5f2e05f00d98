"""GET [base]/Type: listing with stable paging, _id, _count, _summary=count, and what
happens to parameters that cannot be applied: 400 by default, reported under
Prefer: handling=lenient."""
from urllib.parse import parse_qs, urlparse

from conftest import FHIR_JSON, assert_outcome

CT = {"Content-Type": FHIR_JSON}


def put(http, base, typ, rid, **extra):
    r = http.put(f"{base}/{typ}/{rid}", json={"resourceType": typ, "id": rid, **extra},
                 headers=CT)
    assert r.status_code in (200, 201), r.text


def test_list_pages_in_id_order(http, base):
    for i in range(7):
        put(http, base, "Endpoint", f"ep-{i}", status="active",
            connectionType={"code": "hl7-fhir-rest"}, payloadType=[{"text": "x"}],
            address="http://x")
    http.delete(f"{base}/Endpoint/ep-3")
    b = http.get(f"{base}/Endpoint", params={"_count": 4}).json()
    assert b["resourceType"] == "Bundle" and b["type"] == "searchset"
    assert b["total"] == 6
    assert all(e["search"]["mode"] == "match" for e in b["entry"])
    ids = [e["resource"]["id"] for e in b["entry"]]
    nxt = next(l["url"] for l in b["link"] if l["relation"] == "next")
    assert nxt.startswith(f"{base}/Endpoint?")
    put(http, base, "Endpoint", "ep-00", status="active",  # lands on page 1 later: invisible
        connectionType={"code": "hl7-fhir-rest"}, payloadType=[{"text": "x"}], address="http://x")
    b2 = http.get(nxt).json()
    ids += [e["resource"]["id"] for e in b2["entry"]]
    assert not any(l["relation"] == "next" for l in b2["link"])
    assert ids == ["ep-0", "ep-1", "ep-2", "ep-4", "ep-5", "ep-6"]
    # the query alone, re-sent to [base]/Type, gives the same page
    q = urlparse(nxt).query
    assert http.get(f"{base}/Endpoint?{q}").json()["entry"] == b2["entry"]


def test_id_count_and_summary(http, base):
    put(http, base, "Patient", "x")  # the flags' subject: references name what exists
    put(http, base, "Flag", "f1", status="active", code={"text": "a"}, subject={"reference": "Patient/x"})
    put(http, base, "Flag", "f2", status="active", code={"text": "b"}, subject={"reference": "Patient/x"})
    b = http.get(f"{base}/Flag", params={"_id": "f2,nope,f1"}).json()
    assert sorted(e["resource"]["id"] for e in b["entry"]) == ["f1", "f2"]
    assert b["total"] == 2
    b = http.get(f"{base}/Flag", params={"_summary": "count"}).json()
    assert b["total"] >= 2 and "entry" not in b
    assert [l["relation"] for l in b["link"]] == ["self"], "a count has no next page"
    b = http.get(f"{base}/Flag", params={"_count": 0}).json()
    assert "entry" not in b
    assert [l["relation"] for l in b["link"]] == ["self"], "nor has _count=0 (it would loop)"
    b = http.get(f"{base}/Flag", params={"_total": "none"}).json()
    assert "total" not in b
    assert_outcome(http.get(f"{base}/Flag", params={"_count": "x"}), 400)


def test_unknown_parameters_are_rejected_or_reported(http, base):
    put(http, base, "Basic", "b1", code={"text": "x"})
    oo = assert_outcome(http.get(f"{base}/Basic", params={"code": "x", "foo": "1"}), 400,
                        "not-supported")
    assert "foo" in oo["issue"][0]["diagnostics"]
    # the misspelling that must never return every patient
    oo = assert_outcome(http.get(f"{base}/Patient", params={"identifer": "X"}), 400)
    assert "identifer" in oo["issue"][0]["diagnostics"]
    r = http.get(f"{base}/Basic", params={"code:text": "x", "foo": "1"},
                 headers={"Prefer": "handling=lenient"})
    assert r.status_code == 200, r.text
    b = r.json()
    outcome = [e for e in b["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1
    diag = outcome[0]["resource"]["issue"][0]["diagnostics"]
    assert "foo" in diag and "code" not in diag
    self_link = next(l["url"] for l in b["link"] if l["relation"] == "self")
    q = parse_qs(urlparse(self_link).query)
    assert "foo" not in q and q["code:text"] == ["x"]
    assert [e["resource"]["id"] for e in b["entry"] if e["search"]["mode"] == "match"] == ["b1"]


def test_elements_and_summary_shape_bundle_entries(http, base):
    put(http, base, "Patient", "p")
    put(http, base, "Basic", "shape-1", code={"text": "x"}, subject={"reference": "Patient/p"})
    b = http.get(f"{base}/Basic", params={"_id": "shape-1", "_elements": "code"}).json()
    res = b["entry"][0]["resource"]
    assert "code" in res and "subject" not in res
    assert any(t["code"] == "SUBSETTED" for t in res["meta"]["tag"])
    h = http.get(f"{base}/Basic/shape-1/_history", params={"_elements": "subject"}).json()
    res = h["entry"][0]["resource"]
    assert "subject" in res and "code" not in res


def test_the_capability_statement_lists_what_search_accepts(http, base):
    """Every parameter the CapabilityStatement lists for a type is accepted by its
    search, and a parameter of the model it leaves out is refused with 400."""
    types = {r["type"]: r for r in http.get(f"{base}/metadata").json()["rest"][0]["resource"]}
    for t in ("Patient", "Observation", "Encounter", "Condition"):
        listed = [p["name"] for p in types[t].get("searchParam", [])]
        assert listed, t
        for name in listed:
            r = http.get(f"{base}/{t}", params={f"{name}:missing": "false", "_count": 0})
            assert r.status_code == 200, (t, name, r.text)
    # near, the model's special parameter, is listed and searched; its value is checked
    assert "near" in [p["name"] for p in types["Location"].get("searchParam", [])]
    r = http.get(f"{base}/Location", params={"near": "42.25|-83.69|10|km"})
    assert r.status_code == 200, r.text
    assert_outcome(http.get(f"{base}/Location", params={"near": "42.25|-83.69|10|kg"}), 400,
                   "invalid")
    # a result parameter hortus does not build is refused, never ignored
    assert_outcome(http.get(f"{base}/Location", params={"_text": "ward"}), 400,
                   "not-supported")
