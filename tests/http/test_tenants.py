"""Tenants (docs/TENANTS.md): partner hospitals as partitions of one data directory.

Two named tenants (north, south) and the default tenant hold resources with the SAME ids
and different content (each resource names its tenant in a family name, a code or a
note). Every interaction is asked in each tenant and must see its own content only: a
lookup that fell through to another tenant would show another label. Also: unknown
tenants are 404, a tenant added while the server runs is served, import --tenant, and a
token of one tenant is refused on another.
"""
import json
import os
import subprocess

import pytest
import requests

from conftest import BIN, FHIR_JSON, Server, assert_clean_exit, assert_outcome

CT = {"Content-Type": FHIR_JSON}
LABELS = ("default", "north", "south")
CODES = {"default": "1111-1", "north": "2222-2", "south": "3333-3"}
SYS = "urn:test:mrn"


def tenant_cli(*args):
    return subprocess.run([BIN, "tenant", *args], capture_output=True, text=True, timeout=60)


def base_of(srv, label):
    return srv.base if label == "default" else f"{srv.base}/{label}"


def put(http, base, res):
    r = http.put(f"{base}/{res['resourceType']}/{res['id']}", json=res, headers=CT)
    assert r.status_code in (200, 201), r.text
    return r


def seed(http, base, label):
    """The same ids in every tenant, the content naming the tenant."""
    put(http, base, {"resourceType": "Practitioner", "id": "dr1",
                     "name": [{"family": f"Dr-{label}"}]})
    put(http, base, {"resourceType": "Patient", "id": "p1", "name": [{"family": label}],
                     "identifier": [{"system": SYS, "value": "p1"}],
                     "generalPractitioner": [{"reference": "Practitioner/dr1"}]})
    put(http, base, {"resourceType": "Patient", "id": f"only-{label}",
                     "name": [{"family": label}],
                     "identifier": [{"system": SYS, "value": f"only-{label}"}]})
    put(http, base, {"resourceType": "Observation", "id": "o1", "status": "final",
                     "code": {"coding": [{"system": "http://loinc.org",
                                          "code": CODES[label]}]},
                     "subject": {"reference": "Patient/p1"},
                     "note": [{"text": f"note-{label}"}]})


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = tmp_path_factory.mktemp("tenants") / "db"
    for i, name in enumerate(("north", "south"), 1):
        r = tenant_cli("add", name, str(d))
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == str(i)
    s = Server(d)
    http = requests.Session()
    for label in LABELS:
        seed(http, base_of(s, label), label)
    # north has more patients and a second version of p1
    for i in range(3):
        put(http, base_of(s, "north"), {"resourceType": "Patient", "id": f"n{i}",
                                        "name": [{"family": "north"}]})
    put(http, base_of(s, "north"), {"resourceType": "Patient", "id": "p1",
                                    "name": [{"family": "north"}], "gender": "female",
                                    "identifier": [{"system": SYS, "value": "p1"}],
                                    "generalPractitioner": [{"reference": "Practitioner/dr1"}]})
    yield s
    assert_clean_exit(s)


def families(bundle, rtype="Patient"):
    return sorted(e["resource"]["name"][0]["family"] for e in bundle.get("entry", [])
                  if e["resource"]["resourceType"] == rtype)


def labels_in(bundle):
    """The tenant labels the bundle's resources carry (family names, notes)."""
    found = set()
    for e in bundle.get("entry", []):
        res = e.get("resource") or {}
        for n in res.get("name", []):
            found.add(n.get("family", "").removeprefix("Dr-"))
        for n in res.get("note", []):
            found.add(n.get("text", "").removeprefix("note-"))
    found.discard("")
    assert found <= set(LABELS), found
    return found


def test_reads_see_only_their_tenant(srv, http):
    for label in LABELS:
        b = base_of(srv, label)
        r = http.get(f"{b}/Patient/p1")
        assert r.status_code == 200, r.text
        assert r.json()["name"][0]["family"] == label
        assert http.get(f"{b}/Observation/o1").json()["note"][0]["text"] == f"note-{label}"
        assert http.get(f"{b}/Patient/only-{label}").status_code == 200
        for other in LABELS:
            if other != label:
                assert_outcome(http.get(f"{b}/Patient/only-{other}"), 404)
    # versions are per tenant: north's p1 has two, the others one
    assert http.get(f"{base_of(srv, 'north')}/Patient/p1").json()["meta"]["versionId"] == "2"
    assert http.get(f"{srv.base}/Patient/p1").json()["meta"]["versionId"] == "1"
    assert http.get(f"{base_of(srv, 'north')}/Patient/p1/_history/1").status_code == 200
    assert http.get(f"{base_of(srv, 'south')}/Patient/p1/_history/2").status_code == 404


def test_searches_and_counts(srv, http):
    expected = {"default": 2, "north": 5, "south": 2}
    for label in LABELS:
        b = base_of(srv, label)
        r = http.get(f"{b}/Patient", params={"_total": "accurate"})
        assert r.status_code == 200, r.text
        bundle = r.json()
        assert bundle["total"] == expected[label]
        assert set(families(bundle)) == {label}
        for e in bundle["entry"]:
            assert e["fullUrl"].startswith(f"{b}/Patient/")
        r = http.get(f"{b}/Patient", params={"_summary": "count"})
        assert r.json()["total"] == expected[label]
        for other in LABELS:
            r = http.get(f"{b}/Patient", params={"family": other})
            assert r.json()["total"] == (expected[label] if other == label else 0), (label, other)
            r = http.get(f"{b}/Observation", params={"code": CODES[other]})
            assert r.json()["total"] == (1 if other == label else 0), (label, other)
        # the same identifier is in every tenant: one match in each
        r = http.get(f"{b}/Patient", params={"identifier": f"{SYS}|p1"})
        assert r.json()["total"] == 1 and families(r.json()) == [label]
        # system search
        r = http.get(b, params={"_type": "Patient,Observation"})
        assert r.status_code == 200, r.text
        assert r.json()["total"] == expected[label] + 1 and labels_in(r.json()) == {label}


def test_include_revinclude_chain_has(srv, http):
    for label in LABELS:
        b = base_of(srv, label)
        r = http.get(f"{b}/Observation", params={"_id": "o1", "_include": "Observation:subject"})
        assert r.status_code == 200, r.text
        assert families(r.json()) == [label]
        r = http.get(f"{b}/Patient", params={"_id": "p1", "_revinclude": "Observation:subject",
                                             "_include": "Patient:general-practitioner"})
        entries = r.json()["entry"]
        notes = [e["resource"]["note"][0]["text"] for e in entries
                 if e["resource"]["resourceType"] == "Observation"]
        assert notes == [f"note-{label}"]
        drs = [e["resource"]["name"][0]["family"] for e in entries
               if e["resource"]["resourceType"] == "Practitioner"]
        assert drs == [f"Dr-{label}"]
        for other in LABELS:
            want = 1 if other == label else 0
            r = http.get(f"{b}/Observation", params={"subject.family": other})
            assert r.json()["total"] == want, (label, other)
            r = http.get(f"{b}/Observation",
                         params={"subject:Patient.general-practitioner.family": f"Dr-{other}"})
            assert r.json()["total"] == want, (label, other)
            r = http.get(f"{b}/Patient", params={"_has:Observation:subject:code": CODES[other]})
            assert r.json()["total"] == want, (label, other)
            if want:
                assert families(r.json()) == [label]
        # compartment search
        r = http.get(f"{b}/Patient/p1/Observation")
        assert r.json()["total"] == 1 and labels_in(r.json()) == {label}


def test_history(srv, http):
    nb = base_of(srv, "north")
    h = http.get(f"{nb}/Patient/p1/_history").json()
    assert families(h) == ["north", "north"]
    assert len(http.get(f"{base_of(srv, 'south')}/Patient/p1/_history").json()["entry"]) == 1
    for label in LABELS:
        b = base_of(srv, label)
        for url in (f"{b}/_history", f"{b}/Patient/_history"):
            h = http.get(url, params={"_count": "100"}).json()
            assert h["entry"], url
            assert labels_in(h) == {label}, url
            for e in h["entry"]:
                assert e["fullUrl"].startswith(b + "/"), e["fullUrl"]
                # the default base is a prefix of the others: no entry of a tenant
                assert label != "default" or e["fullUrl"].split("/fhir/")[1][0].isupper()
        assert http.get(f"{b}/Patient/_history", params={"_summary": "count"}).json()["total"] \
            == {"default": 2, "north": 6, "south": 2}[label]


def test_paging_links_and_location_carry_the_tenant_base(srv, http):
    nb = base_of(srv, "north")
    r = http.get(f"{nb}/Patient", params={"_count": "1", "family": "north"})
    links = {link["relation"]: link["url"] for link in r.json()["link"]}
    assert links["self"].startswith(nb + "/Patient")
    assert links["next"].startswith(nb + "/Patient")
    seen = families(r.json())
    url = links["next"]
    while url:
        page = http.get(url).json()
        seen += families(page)
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        if url:
            assert url.startswith(nb + "/")
    assert seen == ["north"] * 5
    r = http.post(f"{nb}/Patient", json={"resourceType": "Patient",
                                         "name": [{"family": "north"}]}, headers=CT)
    assert r.status_code == 201
    assert r.headers["Location"].startswith(nb + "/Patient/")
    pid = r.json()["id"]
    assert http.get(f"{nb}/Patient/{pid}").status_code == 200
    assert http.get(f"{srv.base}/Patient/{pid}").status_code == 404
    assert http.delete(f"{nb}/Patient/{pid}").status_code in (200, 204)
    meta = http.get(f"{nb}/metadata").json()
    assert meta["implementation"]["url"] == nb


def test_transaction_conditional_references_and_if_none_exist(srv, http):
    sb = base_of(srv, "south")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0b8d1a7c-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Observation", "status": "final",
                      "code": {"text": "tx-south"},
                      "subject": {"reference": f"Patient?identifier={SYS}|p1"}},
         "request": {"method": "POST", "url": "Observation"}},
        # exists in north only: created here
        {"resource": {"resourceType": "Patient", "name": [{"family": "south"}],
                      "identifier": [{"system": SYS, "value": "only-north"}]},
         "request": {"method": "POST", "url": "Patient",
                     "ifNoneExist": f"identifier={SYS}|only-north"}},
        # exists in south: not created again
        {"resource": {"resourceType": "Patient", "name": [{"family": "south"}]},
         "request": {"method": "POST", "url": "Patient",
                     "ifNoneExist": f"identifier={SYS}|only-south"}},
        {"request": {"method": "GET", "url": "Patient/p1"}},
    ]}
    r = http.post(sb, json=bundle, headers=CT)
    assert r.status_code == 200, r.text
    out = r.json()["entry"]
    assert out[0]["response"]["status"].startswith("201")
    assert out[1]["response"]["status"].startswith("201")
    assert out[2]["response"]["status"].startswith("200")
    assert out[3]["resource"]["name"][0]["family"] == "south"
    for e in out[:3]:
        assert e["response"]["location"].startswith(sb + "/"), e
    oid = out[0]["response"]["location"].split("/")[-3]
    o = http.get(f"{sb}/Observation/{oid}").json()
    assert o["subject"]["reference"] == "Patient/p1"
    assert http.get(f"{srv.base}/Observation/{oid}").status_code == 404
    # north's only-north is untouched, south now has its own
    r = http.get(f"{sb}/Patient", params={"identifier": f"{SYS}|only-north"})
    assert families(r.json()) == ["south"]
    r = http.get(f"{base_of(srv, 'north')}/Patient", params={"identifier": f"{SYS}|only-north"})
    assert families(r.json()) == ["north"]
    # a conditional reference that matches only in another tenant fails here
    bad = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": f"Patient?identifier={SYS}|only-default"}},
         "request": {"method": "POST", "url": "Observation"}}]}
    r = http.post(sb, json=bad, headers=CT)
    assert r.status_code >= 400, r.text
    # an entry cannot name another tenant
    cross = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "north/Patient/p1"}},
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST",
                                                                "url": "north/Patient"}}]}
    r = http.post(srv.base, json=cross, headers=CT)
    assert r.status_code == 200, r.text
    for e in r.json()["entry"]:
        assert e["response"]["status"].startswith("404"), e
        assert "resource" not in e


def test_conditional_update_and_delete_stay_in_their_tenant(srv, http):
    db, nb = srv.base, base_of(srv, "north")
    # conditional update in the default tenant of an identifier only north has: a create
    r = http.put(f"{db}/Patient", params={"identifier": f"{SYS}|n-cond"},
                 json={"resourceType": "Patient", "name": [{"family": "default"}],
                       "identifier": [{"system": SYS, "value": "n-cond"}]}, headers=CT)
    put(http, nb, {"resourceType": "Patient", "id": "ncond", "name": [{"family": "north"}],
                   "identifier": [{"system": SYS, "value": "n-cond2"}]})
    r = http.put(f"{db}/Patient", params={"identifier": f"{SYS}|n-cond2"},
                 json={"resourceType": "Patient", "name": [{"family": "default"}],
                       "identifier": [{"system": SYS, "value": "n-cond2"}]}, headers=CT)
    assert r.status_code == 201, r.text
    assert r.json()["id"] != "ncond"
    assert http.get(f"{nb}/Patient/ncond").json()["name"][0]["family"] == "north"
    # conditional delete in south of what only north has: nothing of north's goes
    r = http.delete(f"{base_of(srv, 'south')}/Patient", params={"identifier": f"{SYS}|n-cond2"})
    assert r.status_code in (200, 204), r.text
    assert http.get(f"{nb}/Patient/ncond").status_code == 200
    # the same id deleted in one tenant lives on in the others
    put(http, nb, {"resourceType": "Patient", "id": "twin", "name": [{"family": "north"}]})
    put(http, db, {"resourceType": "Patient", "id": "twin", "name": [{"family": "default"}]})
    assert http.delete(f"{db}/Patient/twin").status_code in (200, 204)
    assert http.get(f"{db}/Patient/twin").status_code == 410
    assert http.get(f"{nb}/Patient/twin").json()["name"][0]["family"] == "north"


def test_if_none_exist_header(srv, http):
    nb = base_of(srv, "north")
    # only south has only-south: north creates its own
    r = http.post(f"{nb}/Patient", headers={**CT, "If-None-Exist": f"identifier={SYS}|only-south"},
                  json={"resourceType": "Patient", "name": [{"family": "north"}],
                        "identifier": [{"system": SYS, "value": "only-south"}]})
    assert r.status_code == 201, r.text
    # north has only-north: no new one
    r = http.post(f"{nb}/Patient", headers={**CT, "If-None-Exist": f"identifier={SYS}|only-north"},
                  json={"resourceType": "Patient", "name": [{"family": "north"}]})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "only-north"
    r = http.get(f"{base_of(srv, 'south')}/Patient", params={"identifier": f"{SYS}|only-south"})
    assert families(r.json()) == ["south"]


def test_configured_base_url_carries_the_tenant(tmp_path, make_server):
    d = tmp_path / "bu"
    assert tenant_cli("add", "north", str(d)).returncode == 0
    s = make_server(str(d), extra_args=("--base-url", "https://fhir.example.org/fhir/"))
    http = requests.Session()
    r = http.post(f"{s.base}/north/Patient", json={"resourceType": "Patient"}, headers=CT)
    assert r.status_code == 201
    assert r.headers["Location"].startswith("https://fhir.example.org/fhir/north/Patient/")
    r = http.get(f"{s.base}/north/Patient")
    assert r.json()["entry"][0]["fullUrl"].startswith("https://fhir.example.org/fhir/north/")
    assert http.get(f"{s.base}/Patient").json()["total"] == 0


def test_referential_integrity_per_tenant(srv, http):
    nb, sb, db = base_of(srv, "north"), base_of(srv, "south"), srv.base
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "ri"},
           "subject": {"reference": "Patient/only-north"}}
    r = http.post(f"{sb}/Observation", json=obs, headers=CT)
    assert_outcome(r, 422)
    assert http.post(f"{nb}/Observation", json=obs, headers=CT).status_code == 201
    # a resource referenced only in north may go in the default tenant, not in north
    for b in (db, nb):
        put(http, b, {"resourceType": "Practitioner", "id": "lonely"})
    r = http.post(f"{nb}/Observation", headers=CT, json={
        "resourceType": "Observation", "status": "final", "code": {"text": "ri"},
        "performer": [{"reference": "Practitioner/lonely"}]})
    assert r.status_code == 201, r.text
    assert_outcome(http.delete(f"{nb}/Practitioner/lonely"), 409)
    assert http.delete(f"{db}/Practitioner/lonely").status_code in (200, 204)


def test_everything(srv, http):
    for label in LABELS:
        b = base_of(srv, label)
        r = http.get(f"{b}/Patient/p1/$everything")
        assert r.status_code == 200, r.text
        bundle = r.json()
        assert labels_in(bundle) == {label}
        types = {e["resource"]["resourceType"] for e in bundle["entry"]}
        assert {"Patient", "Observation", "Practitioner"} <= types
        for e in bundle["entry"]:
            assert e["fullUrl"].startswith(b + "/")
        r = http.get(f"{b}/Patient/$everything", params={"_count": "200"})
        assert r.status_code == 200, r.text
        assert labels_in(r.json()) == {label}


def test_unknown_tenant_is_404(srv, http):
    for path in ("/nosuch", "/nosuch/", "/nosuch/Patient/p1", "/nosuch/Patient",
                 "/nosuch/metadata", "/nosuch/_history", "/nosuch/Patient/$everything",
                 "/nosuch/NotAType"):
        r = http.get(srv.base + path)
        oo = assert_outcome(r, 404)
        assert "unknown tenant 'nosuch'" in oo["issue"][0]["diagnostics"], path
    r = http.post(srv.base + "/nosuch", json={"resourceType": "Bundle", "type": "batch"},
                  headers=CT)
    assert_outcome(r, 404)
    r = http.put(srv.base + "/nosuch/Patient/p1", json={"resourceType": "Patient", "id": "p1"},
                 headers=CT)
    assert_outcome(r, 404)
    # a resource type still answers as before
    assert_outcome(http.get(srv.base + "/NotAType"), 404)


def test_tenant_added_while_serving(srv, http):
    late = srv.base + "/late"
    assert_outcome(http.get(late + "/Patient"), 404)
    r = tenant_cli("add", "late", srv.datadir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3"
    r = http.get(late + "/Patient")
    assert r.status_code == 200 and r.json()["total"] == 0
    put(http, late, {"resourceType": "Patient", "id": "p1", "name": [{"family": "late"}]})
    assert http.get(late + "/Patient/p1").json()["name"][0]["family"] == "late"
    assert http.get(srv.base + "/Patient/p1").json()["name"][0]["family"] == "default"
    r = tenant_cli("list", srv.datadir)
    assert r.returncode == 0
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert [row[:2] for row in rows] == [["(default)", "0"], ["north", "1"], ["south", "2"],
                                         ["late", "3"]]
    # the same name again, and bad names
    assert tenant_cli("add", "late", srv.datadir).returncode == 2


@pytest.mark.parametrize("name", ["Patient", "patient", "observation", "metadata", "auth",
                                  "a_b", "-x", "x-", "", "x" * 33, "UPPER", "a/b"])
def test_bad_tenant_names(tmp_path, name):
    r = tenant_cli("add", name, str(tmp_path / "d"))
    assert r.returncode == 2, (name, r.stdout)
    assert "tenant" in r.stderr and r.stdout == ""


def test_cli_usage(tmp_path):
    assert tenant_cli().returncode == 2
    assert tenant_cli("remove", "x").returncode == 2
    assert tenant_cli("add").returncode == 2
    assert tenant_cli("add", "ok", str(tmp_path / "d"), "extra").returncode == 2
    assert tenant_cli("list", "--bogus").returncode == 2
    r = tenant_cli("add", "ok", "--data", str(tmp_path / "d"))
    assert r.returncode == 0 and r.stdout.strip() == "1"


def test_import_into_a_tenant(tmp_path, make_server):
    d = tmp_path / "imp"
    src = tmp_path / "in.ndjson"
    src.write_text("\n".join(json.dumps(x) for x in (
        {"resourceType": "Patient", "id": "p1", "name": [{"family": "imported"}]},
        {"resourceType": "Observation", "id": "o1", "status": "final",
         "code": {"text": "imported"}, "subject": {"reference": "Patient/p1"}},
    )) + "\n")
    r = subprocess.run([BIN, "import", "--data", str(d), "--tenant", "clinic", str(src)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown tenant 'clinic'" in r.stderr, r.stderr
    assert tenant_cli("add", "clinic", str(d)).returncode == 0
    r = subprocess.run([BIN, "import", "--data", str(d), "--tenant", "clinic", str(src)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = tenant_cli("list", str(d))
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
    assert rows["clinic"][1:] == ["1", "2"] and rows["(default)"][2] == "0", r.stdout
    chk = subprocess.run([BIN, "check", "--data", str(d)], capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    s = make_server(str(d))
    http = requests.Session()
    cb = s.base + "/clinic"
    assert http.get(f"{cb}/Patient/p1").json()["name"][0]["family"] == "imported"
    assert http.get(f"{s.base}/Patient/p1").status_code == 404
    r = http.get(f"{cb}/Observation", params={"subject.family": "imported"})
    assert r.json()["total"] == 1
    assert http.get(f"{s.base}/Observation", params={"code:text": "imported"}).json()["total"] == 0


def test_a_token_of_one_tenant_is_refused_on_another(tmp_path):
    from test_auth import AUD, ISS, auth, jwks, token
    d = tmp_path / "db"
    for name in ("north", "south"):
        assert tenant_cli("add", name, str(d)).returncode == 0
    jf = tmp_path / "jwks.json"
    jf.write_text(json.dumps(jwks()))
    s = Server(d, ["--auth-jwks", str(jf), "--auth-issuer", ISS, "--auth-audience", AUD])
    try:
        http = requests.Session()
        toks = {"default": token(), "north": token(aud=AUD + "/north"),
                "south": token(aud=AUD + "/south")}
        for label in LABELS:
            b = base_of(s, label)
            r = http.put(f"{b}/Patient/p1", headers=auth(toks[label]),
                         json={"resourceType": "Patient", "id": "p1",
                               "name": [{"family": label}]})
            assert r.status_code == 201, r.text
        for label in LABELS:
            b = base_of(s, label)
            for other in LABELS:
                r = http.get(f"{b}/Patient/p1", headers=auth(toks[other]))
                if other == label:
                    assert r.json()["name"][0]["family"] == label
                else:
                    assert r.status_code in (401, 403), (label, other, r.text)
                    assert "family" not in r.text
                r = http.get(f"{b}/Patient", headers=auth(toks[other]))
                assert (r.status_code == 200) == (other == label), (label, other)
        # an audience with a trailing slash, or another base, is no tenant's
        r = http.get(f"{base_of(s, 'north')}/Patient/p1",
                     headers=auth(token(aud=[AUD + "/south", AUD])))
        assert r.status_code == 401
        r = http.get(f"{base_of(s, 'north')}/Patient/p1",
                     headers=auth(token(aud=[AUD + "/south", AUD + "/north"])))
        assert r.status_code == 200
        # metadata stays public in every tenant
        assert http.get(f"{base_of(s, 'north')}/metadata").status_code == 200
    finally:
        assert_clean_exit(s)


def test_custom_search_parameters_are_per_tenant(tmp_path, make_server):
    import time
    d = tmp_path / "sp"
    assert tenant_cli("add", "north", str(d)).returncode == 0
    assert tenant_cli("add", "south", str(d)).returncode == 0
    s = make_server(str(d))
    http = requests.Session()
    eye = "http://example.org/fhir/StructureDefinition/eye-colour"
    nb, sb = s.base + "/north", s.base + "/south"
    for b, label in ((nb, "north"), (sb, "south"), (s.base, "default")):
        put(http, b, {"resourceType": "Patient", "id": "before", "name": [{"family": label}],
                      "extension": [{"url": eye, "valueString": "blue"}]})
    put(http, nb, {"resourceType": "SearchParameter", "id": "eye",
                   "url": "http://example.org/fhir/SearchParameter/eye", "name": "eye",
                   "status": "active", "description": "eye colour", "code": "eye-colour",
                   "base": ["Patient"], "type": "string",
                   "expression": f"Patient.extension('{eye}').value"})
    put(http, nb, {"resourceType": "Patient", "id": "after", "name": [{"family": "north"}],
                   "extension": [{"url": eye, "valueString": "blue"}]})
    # what was stored before is reindexed in the background: wait for the search to say
    # it is complete (no outcome entry), then both match
    deadline = time.time() + 60
    while True:
        r = http.get(f"{nb}/Patient", params={"eye-colour": "blue"})
        assert r.status_code == 200, r.text
        outcome = any(e["search"]["mode"] == "outcome" for e in r.json().get("entry", []))
        if not outcome or time.time() > deadline:
            break
        time.sleep(0.2)
    assert not outcome, r.text
    got = sorted(e["resource"]["id"] for e in r.json()["entry"])
    assert got == ["after", "before"] and labels_in(r.json()) == {"north"}
    for b in (sb, s.base):
        assert_outcome(http.get(f"{b}/Patient", params={"eye-colour": "blue"}), 400)
