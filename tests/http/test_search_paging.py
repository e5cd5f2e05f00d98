"""Paging over the snapshot of the first page (docs/SEARCH.md, paging): while others
write, the next links keep returning the result set of the first page, in its order and
in the versions of then, and say so when too much has changed to answer."""
import json
import uuid

import pytest
import requests

from conftest import FHIR_JSON, assert_outcome

CT = {"Content-Type": FHIR_JSON}
TAG = uuid.uuid4().hex[:8]


def put(base, res):
    r = requests.put(f"{base}/{res['resourceType']}/{res['id']}", data=json.dumps(res),
                     headers=CT)
    assert r.status_code in (200, 201), r.text
    return r.json()


def entries(bundle):
    return [(e["resource"]["id"], e["resource"]["meta"]["versionId"])
            for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def next_url(bundle):
    return next((l["url"] for l in bundle["link"] if l["relation"] == "next"), None)


def patient(fam, i, gender, birth):
    return {"resourceType": "Patient", "id": f"pg{fam}-{i}", "gender": gender,
            "birthDate": birth, "name": [{"family": f"{fam}{chr(97 + i % 26)}"}]}


@pytest.mark.parametrize("sort", [None, "birthdate", "-family", "family,-birthdate"])
def test_later_pages_keep_the_first_pages_result_set(base, sort):
    fam = f"pg{TAG}{(sort or 'none').replace(',', '').replace('-', 'd')}"
    genders = ["female", "female", "male", "female", "female", "male", "female", "female",
               "female", "male", "female", "female"]
    for i, g in enumerate(genders):
        put(base, patient(fam, i, g, f"19{50 + (i * 7) % 40}-0{1 + i % 9}-1{i % 10}"))
    params = {"family": fam, "gender": "female"}
    if sort:
        params["_sort"] = sort
    whole = requests.get(f"{base}/Patient", params={**params, "_count": 100}).json()
    want = entries(whole)
    assert len(want) == 9
    first = requests.get(f"{base}/Patient", params={**params, "_count": 3}).json()
    assert entries(first) == want[:3]
    assert first["total"] == 9

    # writes after the first page, each of a kind that would show through
    ids = [i for i, _ in want]
    p = lambda rid: int(rid.rsplit("-", 1)[1])  # noqa: E731
    a, b, c, d, e = ids[3], ids[4], ids[5], ids[6], ids[7]
    put(base, {**patient(fam, p(a), "male", "1960-01-01")})         # stops matching
    put(base, {**patient(fam, 2, "female", "1951-01-01")})          # starts matching
    assert requests.delete(f"{base}/Patient/{b}").status_code in (200, 204)  # deleted
    put(base, {**patient(fam, p(c), "female", "2001-12-31"),        # moves in the sort
               "name": [{"family": f"{fam}zz"}]})
    assert requests.delete(f"{base}/Patient/{d}").status_code in (200, 204)  # deleted and
    put(base, patient(fam, p(d), "female", "1950-01-01"))                     # re-created
    put(base, patient(fam, 40, "female", "1950-06-06"))             # a new match
    put(base, {**patient(fam, p(e), "female", "1999-09-09")})       # updated, still matching

    got, url, pages = list(entries(first)), next_url(first), 1
    while url:
        r = requests.get(url)
        assert r.status_code == 200, r.text
        bundle = r.json()
        assert bundle["total"] == 9, "the total of the first page's snapshot"
        got += entries(bundle)
        url = next_url(bundle)
        pages += 1
    assert got == want, "the same resources, order and versions as the whole first answer"
    assert pages == 3

    now = entries(requests.get(f"{base}/Patient", params={**params, "_count": 100}).json())
    assert now != want and len(now) == 9, "a new search sees the writes"
    assert f"pg{fam}-40" in [i for i, _ in now] and a not in [i for i, _ in now]


def test_a_paging_link_expires_when_too_much_changed(base):
    code = f"exp{TAG}"
    for i in range(3):
        put(base, {"resourceType": "Basic", "id": f"{code}-{i}",
                   "code": {"coding": [{"system": "urn:t", "code": code}]}})
    first = requests.get(f"{base}/Basic", params={"code": f"urn:t|{code}", "_count": 1}).json()
    url = next_url(first)
    assert url
    # SRCH_PAGE_CHANGES_MAX (4096) changes to Basic since the first page
    entry = [{"resource": {"resourceType": "Basic",
                           "code": {"coding": [{"system": "urn:t", "code": f"other{TAG}"}]}},
              "request": {"method": "POST", "url": "Basic"}} for _ in range(4100)]
    r = requests.post(base, data=json.dumps({"resourceType": "Bundle", "type": "transaction",
                                             "entry": entry}), headers=CT)
    assert r.status_code == 200, r.text[:500]
    r = requests.get(url)
    oo = assert_outcome(r, 410, "processing")
    assert "expired" in oo["issue"][0]["diagnostics"]
    # a fresh search still answers
    again = requests.get(f"{base}/Basic", params={"code": f"urn:t|{code}"})
    assert again.status_code == 200 and len(entries(again.json())) == 3
