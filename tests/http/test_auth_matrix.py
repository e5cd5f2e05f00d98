"""The leak matrix: every scope kind against every search interaction, checked against an
oracle that knows which resources each token may see.

Data: patients, Observations (two categories, three codes, some filed under one patient
with another as performer), Encounters, Conditions, an Organization and Practitioners
(outside the Patient compartment). For each token (SMART v1 and v2, patient/ user/
system/, granular) the oracle computes the visible set of every type; then reads,
searches (with _total and _summary=count), _include (with :iterate), _revinclude, chains
and _has must return exactly the visible resources that answer the query, ids and counts
both, and a read outside the rights is 403 whether the resource exists or not.
"""
import random

import pytest
import requests

from conftest import Server, assert_clean_exit
from test_auth import AUD, ISS, auth, jwks, token  # noqa: F401 (same keys and JWKS)

CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
LOINC = "http://loinc.org"
CODES = ["8867-4", "8310-5", "2339-0"]
PATIENTS = [f"p{i}" for i in range(1, 6)]
# the compartment parameters' elements of each type (R4 CompartmentDefinition Patient)
COMPARTMENT = {"Observation": ("subject", "performer"), "Encounter": ("subject",),
               "Condition": ("subject", "asserter")}


def make_data(rng):
    res = [{"resourceType": "Organization", "id": "org1", "name": "General"}]
    res += [{"resourceType": "Practitioner", "id": f"dr{i}", "name": [{"family": f"dr{i}"}]}
            for i in range(2)]
    for p in PATIENTS:
        res.append({"resourceType": "Patient", "id": p, "name": [{"family": "fam" + p}],
                    "managingOrganization": {"reference": "Organization/org1"},
                    "generalPractitioner": [{"reference": "Practitioner/dr0"}]})
    for i in range(40):
        p = rng.choice(PATIENTS)
        o = {"resourceType": "Observation", "id": f"o{i}", "status": "final",
             "category": [{"coding": [{"system": CAT,
                                       "code": rng.choice(["vital-signs", "laboratory"])}]}],
             "code": {"coding": [{"system": LOINC, "code": rng.choice(CODES)}]},
             "subject": {"reference": f"Patient/{p}"}}
        if rng.random() < 0.2:  # another patient as performer: in both compartments
            o["performer"] = [{"reference": f"Patient/{rng.choice(PATIENTS)}"}]
        elif rng.random() < 0.3:
            o["performer"] = [{"reference": "Practitioner/dr1"}]
        if rng.random() < 0.5:
            o["encounter"] = {"reference": f"Encounter/e{rng.randrange(10)}"}
        res.append(o)
    for i in range(10):
        res.append({"resourceType": "Encounter", "id": f"e{i}", "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                              "code": "AMB"},
                    "subject": {"reference": f"Patient/{rng.choice(PATIENTS)}"}})
    for i in range(10):
        c = {"resourceType": "Condition", "id": f"c{i}",
             "code": {"coding": [{"system": LOINC, "code": rng.choice(CODES)}]},
             "subject": {"reference": f"Patient/{rng.choice(PATIENTS)}"}}
        if rng.random() < 0.3:
            c["asserter"] = {"reference": f"Patient/{rng.choice(PATIENTS)}"}
        res.append(c)
    return res


def refs(r, field):
    v = r.get(field)
    if v is None:
        return []
    return [x["reference"] for x in (v if isinstance(v, list) else [v])]


def in_compartment(r, pid):
    if r["resourceType"] == "Patient":
        return r["id"] == pid
    fields = COMPARTMENT.get(r["resourceType"])
    if not fields:
        return False
    return any(ref == f"Patient/{pid}" for f in fields for ref in refs(r, f))


def category(r):
    return r["category"][0]["coding"][0]["code"]


def code(r):
    return r["code"]["coding"][0]["code"]


# Each token: its scopes, its patient, and the oracle's visibility predicate.
TOKENS = {
    "system-all": ("system/*.rs", None, lambda r: True),
    "user-all-v1": ("user/*.read", None, lambda r: True),
    "patient-all-v2": ("patient/*.rs", "p1", lambda r: in_compartment(r, "p1")),
    "patient-all-v1": ("patient/*.read", "p2", lambda r: in_compartment(r, "p2")),
    "patient-obs-pat": ("patient/Observation.rs patient/Patient.rs", "p3",
                        lambda r: r["resourceType"] in ("Observation", "Patient")
                        and in_compartment(r, "p3")),
    "user-obs-only": ("user/Observation.rs", None,
                      lambda r: r["resourceType"] == "Observation"),
    "granular-user-vitals": (
        f"user/Observation.rs?category={CAT}|vital-signs user/Patient.rs", None,
        lambda r: r["resourceType"] == "Patient" or (
            r["resourceType"] == "Observation" and category(r) == "vital-signs")),
    "granular-patient-lab": (
        f"patient/Observation.rs?category={CAT}|laboratory patient/Patient.rs", "p1",
        lambda r: in_compartment(r, "p1") and (
            r["resourceType"] == "Patient" or (
                r["resourceType"] == "Observation" and category(r) == "laboratory"))),
    "granular-two-codes": (
        f"user/Observation.rs?code={LOINC}|{CODES[0]} user/Observation.rs?code={LOINC}|"
        f"{CODES[1]} system/Patient.rs system/Practitioner.rs", None,
        lambda r: r["resourceType"] in ("Patient", "Practitioner") or (
            r["resourceType"] == "Observation" and code(r) in CODES[:2])),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import json
    d = tmp_path_factory.mktemp("authmatrix")
    jf = d / "jwks.json"
    jf.write_text(json.dumps(jwks()))
    s = Server(d / "db", ["--auth-jwks", str(jf), "--auth-issuer", ISS,
                          "--auth-audience", AUD])
    data = make_data(random.Random(12))
    admin = auth(token())
    order = {"Organization": 0, "Practitioner": 1, "Patient": 2, "Encounter": 3}
    for r in sorted(data, key=lambda r: order.get(r["resourceType"], 9)):
        rr = requests.put(f"{s.base}/{r['resourceType']}/{r['id']}", headers=admin, json=r)
        assert rr.status_code in (200, 201), rr.text
    yield s, data
    assert_clean_exit(s)


def of_type(data, t):
    return [r for r in data if r["resourceType"] == t]


def get_all(base, url, h):
    """Every page: (match ids, include ids, total of the first page)."""
    match, inc, total = [], [], None
    while url:
        r = requests.get(url, headers=h)
        assert r.status_code == 200, (url, r.text)
        b = r.json()
        if total is None:
            total = b.get("total")
        for e in b.get("entry", []):
            key = f"{e['resource']['resourceType']}/{e['resource']['id']}"
            (inc if e["search"]["mode"] == "include" else match).append(key)
        url = next((ln["url"] for ln in b.get("link", []) if ln["relation"] == "next"), None)
    return match, inc, total


def history_pages(url, h):
    """Every page of a history: (the resources listed, None for a deletion; page one)."""
    listed, first = [], None
    while url:
        r = requests.get(url, headers=h)
        assert r.status_code == 200, (url, r.text)
        b = r.json()
        first = first or b
        listed += [e.get("resource") for e in b.get("entry", [])]
        url = next((ln["url"] for ln in b.get("link", []) if ln["relation"] == "next"), None)
    return listed, first


def keys(rs):
    return sorted(f"{r['resourceType']}/{r['id']}" for r in rs)


@pytest.mark.parametrize("name", sorted(TOKENS))
def test_reads(world, name):
    s, data = world
    scope, pid, vis = TOKENS[name]
    h = auth(token(scope=scope, patient=pid))
    for r in data:
        rr = requests.get(f"{s.base}/{r['resourceType']}/{r['id']}", headers=h)
        want = 200 if vis(r) else 403
        assert rr.status_code == want, (name, r["resourceType"], r["id"], rr.text)
        if want == 200:
            assert rr.json()["id"] == r["id"]
    # a resource that does not exist answers as one outside the rights would
    for t in ("Observation", "Patient"):
        rr = requests.get(f"{s.base}/{t}/nosuch", headers=h)
        assert rr.status_code in (403, 404), rr.text
        if not any(vis(r) for r in of_type(data, t)) or pid:
            assert rr.status_code == 403, (name, t, rr.status_code)


def allowed_types(name):
    """Types the token may search at all (a type outside its scopes is a 403)."""
    scope = TOKENS[name][0]
    out = set()
    for sc in scope.split():
        t = sc.split("/", 1)[1].split(".", 1)[0]
        out |= {"Observation", "Patient", "Encounter", "Condition", "Organization",
                "Practitioner"} if t == "*" else {t}
    if TOKENS[name][1]:  # patient/ scopes: only types in the Patient compartment
        out -= {"Organization", "Practitioner"}
    return out


@pytest.mark.parametrize("name", sorted(TOKENS))
def test_searches(world, name):
    s, data = world
    scope, pid, vis = TOKENS[name]
    h = auth(token(scope=scope, patient=pid))
    types = allowed_types(name)
    for t in ("Observation", "Patient", "Encounter", "Condition", "Organization"):
        url = f"{s.base}/{t}?_count=7&_total=accurate"
        if t not in types:
            assert requests.get(url, headers=h).status_code == 403, (name, t)
            continue
        want = keys(r for r in of_type(data, t) if vis(r))
        m, inc, total = get_all(s.base, url, h)
        assert sorted(m) == want and not inc, (name, t)
        assert total == len(want), (name, t)
        r = requests.get(f"{s.base}/{t}?_summary=count", headers=h)
        assert r.json()["total"] == len(want), (name, t)
    if "Observation" not in types:
        return
    obs = [r for r in of_type(data, "Observation") if vis(r)]
    byid = {f"{r['resourceType']}/{r['id']}": r for r in data}
    visible = {k for k, r in byid.items() if vis(r)}
    # a parameter search within the rights
    for c in CODES:
        m, _, total = get_all(s.base, f"{s.base}/Observation?code={LOINC}|{c}", h)
        assert sorted(m) == keys(r for r in obs if code(r) == c) and total == len(m), (name, c)
    # _include (and :iterate to the organization)
    m, inc, _ = get_all(s.base, f"{s.base}/Observation?_include=Observation:subject"
                        "&_include:iterate=Patient:organization&_count=9", h)
    assert sorted(m) == keys(obs)
    subj = {ref for r in obs for ref in refs(r, "subject")} & visible
    orgs = {ref for p in subj for ref in refs(byid[p], "managingOrganization")} & visible
    assert sorted(set(inc)) == sorted(subj | orgs), (name, "include")
    # _include of the performer: patients and practitioners, each only when visible
    m, inc, _ = get_all(s.base, f"{s.base}/Observation?_include=Observation:performer", h)
    perf = {ref for r in obs for ref in refs(r, "performer")} & visible
    assert sorted(set(inc)) == sorted(perf), (name, "performer")
    if "Patient" in types:
        pats = [r for r in of_type(data, "Patient") if vis(r)]
        # _revinclude
        m, inc, _ = get_all(s.base, f"{s.base}/Patient?_revinclude=Observation:subject", h)
        assert sorted(m) == keys(pats)
        want = {f"Observation/{r['id']}" for r in obs
                if any(ref in {f"Patient/{p['id']}" for p in pats} for ref in refs(r, "subject"))}
        assert sorted(set(inc)) == sorted(want), (name, "revinclude")
        # chains: the Observations of a patient found by name, each patient in turn
        for p in PATIENTS:
            m, _, total = get_all(s.base, f"{s.base}/Observation?subject:Patient.name=fam{p}"
                                  "&_total=accurate", h)
            want = keys(r for r in obs if refs(r, "subject") == [f"Patient/{p}"]
                        and f"Patient/{p}" in visible)
            assert sorted(m) == want and total == len(want), (name, "chain", p)
        # _has: the patients with an Observation of a code
        for c in CODES:
            m, _, total = get_all(s.base, f"{s.base}/Patient?_has:Observation:subject:code="
                                  f"{LOINC}|{c}&_total=accurate", h)
            want = keys(p for p in pats if any(
                refs(r, "subject") == [f"Patient/{p['id']}"] and code(r) == c for r in obs))
            assert sorted(m) == want and total == len(want), (name, "_has", c)
    else:
        # a chain or _has through a type outside the rights is refused, not answered
        r = requests.get(f"{s.base}/Observation?subject:Patient.name=famp1", headers=h)
        assert r.status_code == 403, (name, r.text)


@pytest.mark.parametrize("name", sorted(TOKENS))
def test_batch_and_system_search(world, name):
    s, data = world
    scope, pid, vis = TOKENS[name]
    h = auth(token(scope=scope, patient=pid))
    types = allowed_types(name)
    # a batch of reads: each entry answers as the read alone would (403 outside, also
    # for an id that does not exist); the writes of a read-only token are refused
    sample = data[::3]
    entries = [{"request": {"method": "GET", "url": f"{r['resourceType']}/{r['id']}"}}
               for r in sample]
    entries.append({"request": {"method": "GET", "url": "Observation/nosuch"}})
    entries.append({"request": {"method": "GET", "url": f"Observation?code={LOINC}|{CODES[0]}"}})
    entries.append({"request": {"method": "POST", "url": "Patient"},
                    "resource": {"resourceType": "Patient"}})
    r = requests.post(s.base, headers=h, json={"resourceType": "Bundle", "type": "batch",
                                                "entry": entries})
    assert r.status_code == 200, r.text
    got = r.json()["entry"]
    for res, e in zip(sample, got):
        want = "200" if vis(res) else "403"
        assert e["response"]["status"].startswith(want), (name, res["id"], e)
    assert got[len(sample)]["response"]["status"][:3] in (("403",) if pid else ("403", "404"))
    search = got[len(sample) + 1]
    if "Observation" in types:
        ids_ = sorted(f"Observation/{x['resource']['id']}"
                      for x in search["resource"].get("entry", []))
        assert ids_ == keys(r for r in of_type(data, "Observation")
                            if vis(r) and code(r) == CODES[0]), (name, "batch search")
    else:
        assert search["response"]["status"].startswith("403")
    assert got[-1]["response"]["status"].startswith("403")
    # the search of several types: each type within the token's view of it
    if {"Observation", "Encounter"} <= types:
        m, _, total = get_all(s.base, f"{s.base}?_type=Observation,Encounter&_count=20", h)
        want = keys(r for r in data if r["resourceType"] in ("Observation", "Encounter")
                    and vis(r))
        assert sorted(m) == want and total == len(want), (name, "_type")
    else:
        r = requests.get(f"{s.base}?_type=Observation,Encounter", headers=h)
        assert r.status_code == 403, (name, "_type")
    # without _type: every type the token may search, within its view
    m, _, total = get_all(s.base, f"{s.base}?_lastUpdated=gt2000&_count=50", h)
    want = keys(r for r in data if vis(r) and r["resourceType"] in types)
    assert sorted(m) == want and total == len(want), (name, "every type")
    # histories: each version listed only when it is within the token's rights, no
    # total counted outside them, nothing the token may see left out
    whole = name in ("system-all", "user-all-v1")
    for url, want in ((f"{s.base}/Observation/_history?_count=7",
                       [r for r in data if r["resourceType"] == "Observation" and vis(r)]),
                      (f"{s.base}/_history?_count=11", [r for r in data if vis(r)])):
        r = requests.get(url, headers=h)
        if not want and r.status_code == 403:
            continue
        listed, first = history_pages(url, h)
        assert all(res is not None and vis(res) for res in listed), (name, url)
        assert {f"{x['resourceType']}/{x['id']}" for x in listed} >= set(keys(want)), (name, url)
        assert ("total" in first) == (whole or name == "user-obs-only" and "Observation/" in url), \
            (name, url, first.get("total"))


def test_transactions_and_conditions(world):
    s, data = world
    pat = auth(token(scope="patient/*.rs", patient="p1"))
    # a read inside a transaction under patient/ scopes: refused before anything runs
    r = requests.post(s.base, headers=pat, json={
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{"request": {"method": "GET", "url": "Patient/p2"}}]})
    assert r.status_code == 403, r.text
    # a conditional reference is a search of its type: needs s on all of it
    w = auth(token(scope="user/Observation.cruds"))
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "fullUrl": "urn:uuid:7f4e5a3c-0000-4000-8000-000000000001",
        "request": {"method": "POST", "url": "Observation"},
        "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "t"},
                     "subject": {"reference": "Patient?name=famp1"}}}]}
    r = requests.post(s.base, headers=w, json=tx)
    assert r.status_code == 403 and "Patient" in r.text, r.text
    r = requests.post(s.base, headers=auth(token(scope="user/Observation.cruds user/Patient.rs")),
                      json=tx)
    assert r.status_code == 200, r.text
    loc = r.json()["entry"][0]["response"]["location"]
    got = requests.get(loc.split('/_history')[0], headers=w).json()
    assert got.get("subject", {}).get("reference") == "Patient/p1", (loc, got)
    # the other tests' oracle knows only the world's data
    assert requests.delete(loc.split('/_history')[0], headers=w).status_code in (200, 204)
    # conditional create: refused under patient/ scopes, and without s on the type
    body = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    for sc, p in (("patient/*.cruds", "p1"), ("user/Observation.c", None)):
        r = requests.post(s.base + "/Observation", json=body,
                          headers={**auth(token(scope=sc, patient=p)), "If-None-Exist": "code=x"})
        assert r.status_code == 403, (sc, r.text)
    # other operations are still refused whatever exists
    for path in ("/Patient/p1/$validate", "/Patient/nosuch/$validate"):
        assert requests.get(s.base + path, headers=pat).status_code == 403, path


def test_vread_and_history_within_rights(world):
    """A version is shown only when it is itself within the token's rights: a resource
    moved from p2 to p1 shows p1 its current version but not the one that was p2's."""
    s, data = world
    admin = auth(token())
    o = {"resourceType": "Observation", "id": "moved", "status": "final",
         "code": {"coding": [{"system": LOINC, "code": CODES[2]}]},
         "subject": {"reference": "Patient/p2"}}
    assert requests.put(f"{s.base}/Observation/moved", headers=admin, json=o).ok
    o["subject"] = {"reference": "Patient/p1"}
    assert requests.put(f"{s.base}/Observation/moved", headers=admin, json=o).ok
    p1 = auth(token(scope="patient/*.rs", patient="p1"))
    p2 = auth(token(scope="patient/*.rs", patient="p2"))
    try:
        assert requests.get(f"{s.base}/Observation/moved/_history/2", headers=p1).status_code == 200
        r = requests.get(f"{s.base}/Observation/moved/_history/1", headers=p1)
        assert r.status_code == 403, r.text
        assert requests.get(f"{s.base}/Observation/moved/_history/9", headers=p1).status_code == 403
        r = requests.get(f"{s.base}/Observation/moved/_history", headers=p1)
        assert r.status_code == 200, r.text
        assert [e["resource"]["meta"]["versionId"] for e in r.json()["entry"]] == ["2"]
        # p2 no longer reads it, so neither its history nor its old version
        for path in ("/Observation/moved/_history", "/Observation/moved/_history/1",
                     "/Observation/nosuch/_history", "/Observation/nosuch/_history/1"):
            assert requests.get(s.base + path, headers=p2).status_code == 403, path
        # a whole-type token sees both versions, and 404 for what does not exist
        u = auth(token(scope="user/Observation.rs"))
        r = requests.get(f"{s.base}/Observation/moved/_history", headers=u)
        assert len(r.json()["entry"]) == 2
        assert requests.get(f"{s.base}/Observation/moved/_history/9", headers=u).status_code == 404
        # granular: the version with the code is shown, a deletion never
        g = auth(token(scope=f"user/Observation.rs?code={LOINC}|{CODES[2]}"))
        r = requests.get(f"{s.base}/Observation/moved/_history", headers=g)
        assert len(r.json()["entry"]) == 2
    finally:
        assert requests.delete(f"{s.base}/Observation/moved", headers=admin).status_code in (200, 204)
    r = requests.get(f"{s.base}/Observation/moved/_history", headers=g)
    assert r.status_code == 403  # deleted: not readable now


REF_FIELDS = ("subject", "performer", "encounter", "asserter", "managingOrganization",
              "generalPractitioner")


@pytest.mark.parametrize("name", sorted(TOKENS))
def test_everything(world, name):
    s, data = world
    scope, pid, vis = TOKENS[name]
    h = auth(token(scope=scope, patient=pid))
    byid = {f"{r['resourceType']}/{r['id']}": r for r in data}
    for p in PATIENTS + ["nosuch"]:
        url = f"{s.base}/Patient/{p}/$everything?_count=1000"
        if "Patient" not in allowed_types(name) or f"Patient/{p}" not in byid \
                or not vis(byid[f"Patient/{p}"]):
            r = requests.get(url, headers=h)
            assert r.status_code in ((403,) if pid or p != "nosuch" else (403, 404)), (name, p)
            continue
        m, inc, total = get_all(s.base, url, h)
        members = {k for k, r in byid.items() if vis(r) and in_compartment(r, p)}
        want_inc = {ref for k in members for f in REF_FIELDS for ref in refs(byid[k], f)
                    if ref in byid and vis(byid[ref])} - members
        assert sorted(m) == sorted(members) and total == len(members), (name, p)
        assert sorted(set(inc)) == sorted(want_inc), (name, p, "included")
    # type level: every patient the token may see, with what it may see of each
    if "Patient" in allowed_types(name):
        m, inc, _ = get_all(s.base, f"{s.base}/Patient/$everything?_count=1000", h)
        seen = set(m) | set(inc)
        for k in seen:
            assert vis(byid[k]), (name, k)


def test_granular_mixed_and_bad_refused(world):
    s, _ = world
    # patient/ beside granular user/ for one type: no single restriction, refused
    h = auth(token(scope=f"patient/Observation.rs user/Observation.rs?category={CAT}|laboratory",
                   patient="p1"))
    r = requests.get(s.base + "/Observation", headers=h)
    assert r.status_code == 403 and "not supported" in r.text
    # granular scopes on different parameters: refused, not widened or narrowed
    h = auth(token(scope=f"user/Observation.rs?category={CAT}|laboratory "
                         f"user/Observation.rs?code={LOINC}|{CODES[0]}"))
    r = requests.get(s.base + "/Observation", headers=h)
    assert r.status_code == 403 and "combining" in r.text
    # a granular query naming an unknown parameter grants nothing
    h = auth(token(scope="user/Observation.rs?nosuch=1"))
    r = requests.get(s.base + "/Observation", headers=h)
    assert r.status_code == 403 and "nosuch" in r.text
    assert requests.get(s.base + "/Observation/o1", headers=h).status_code == 403


# ---- writes under patient/ and granular scopes -------------------------------------------

def obs(oid, pid, cat="vital-signs"):
    o = {"resourceType": "Observation", "status": "final",
         "category": [{"coding": [{"system": CAT, "code": cat}]}],
         "code": {"coding": [{"system": LOINC, "code": CODES[0]}]},
         "subject": {"reference": f"Patient/{pid}"}}
    if oid:
        o["id"] = oid
    return o


JSON_PATCH = {"Content-Type": "application/json-patch+json"}

# Write tokens: (scopes, patient, may this token write an Observation with this content?)
WRITERS = {
    "patient-v2": ("patient/Observation.cruds patient/Patient.rs", "p1",
                   lambda o: in_compartment(o, "p1")),
    "patient-v1": ("patient/*.write patient/*.read", "p2", lambda o: in_compartment(o, "p2")),
    "granular-user": (f"user/Observation.cruds?category={CAT}|vital-signs user/Patient.rs", None,
                      lambda o: category(o) == "vital-signs"),
    "granular-patient": (f"patient/Observation.cruds?category={CAT}|laboratory", "p3",
                         lambda o: in_compartment(o, "p3") and category(o) == "laboratory"),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_writes_within_rights(world, name):
    """Each write is held to the restriction before (the current version) and after (the
    content as stored); a refusal is the same whether the target exists or not."""
    s, _ = world
    scope, pid, may = WRITERS[name]
    h = auth(token(scope=scope, patient=pid))
    admin = auth(token())
    combos = [(p, c) for p in PATIENTS for c in ("vital-signs", "laboratory")]
    inside = [pc for pc in combos if may(obs(None, *pc))]
    outside = [pc for pc in combos if not may(obs(None, *pc))]
    assert inside and outside
    made = []

    def put_admin(oid, pc):
        r = requests.put(f"{s.base}/Observation/{oid}", headers=admin, json=obs(oid, *pc))
        assert r.status_code in (200, 201), r.text
        made.append(oid)

    def current(oid):
        return requests.get(f"{s.base}/Observation/{oid}", headers=admin)

    try:
        # create: within, or 403 with nothing stored
        before = requests.get(f"{s.base}/Observation?_summary=count", headers=admin).json()["total"]
        for pc in outside:
            r = requests.post(f"{s.base}/Observation", headers=h, json=obs(None, *pc))
            assert r.status_code == 403 and "not within" in r.text, (name, pc, r.text)
        after = requests.get(f"{s.base}/Observation?_summary=count", headers=admin).json()["total"]
        assert after == before, name
        r = requests.post(f"{s.base}/Observation", headers=h, json=obs(None, *inside[0]))
        assert r.status_code == 201, (name, r.text)
        made.append(r.headers["Location"].split("/Observation/")[1].split("/")[0])
        # a Patient create under patient/ rights, even naming the token's patient as id
        if pid:
            r = requests.post(f"{s.base}/Patient", headers=h,
                              json={"resourceType": "Patient", "id": pid})
            assert r.status_code == 403, (name, r.text)
        # update: the current version and the new content both within
        put_admin("win", inside[0])
        put_admin("wout", outside[0])
        r = requests.put(f"{s.base}/Observation/win", headers=h, json=obs("win", *inside[-1]))
        assert r.status_code == 200, (name, r.text)
        r = requests.put(f"{s.base}/Observation/win", headers=h, json=obs("win", *outside[0]))
        assert r.status_code == 403, (name, r.text)
        assert may(current("win").json()), name
        # outside, not existing, deleted: one refusal, word for word
        put_admin("wgone", inside[0])
        assert requests.delete(f"{s.base}/Observation/wgone", headers=admin).status_code in (200, 204)
        texts = set()
        for oid in ("wout", "wnosuch", "wgone"):
            r = requests.put(f"{s.base}/Observation/{oid}", headers=h, json=obs(oid, *inside[0]))
            assert r.status_code == 403, (name, oid, r.text)
            texts.add(r.json()["issue"][0]["diagnostics"].replace(oid, "X"))
            r = requests.patch(f"{s.base}/Observation/{oid}", headers={**h, **JSON_PATCH},
                               data='[{"op": "replace", "path": "/status", "value": "amended"}]')
            assert r.status_code == 403, (name, oid, "patch", r.text)
            r = requests.delete(f"{s.base}/Observation/{oid}", headers=h)
            assert r.status_code == 403, (name, oid, "delete", r.text)
            # a precondition is not looked at before the rights
            r = requests.put(f"{s.base}/Observation/{oid}", json=obs(oid, *inside[0]),
                             headers={**h, "If-Match": 'W/"1"'})
            assert r.status_code == 403, (name, oid, "If-Match")
        assert len(texts) == 1, (name, texts)
        assert current("wout").json()["status"] == "final"
        assert current("wnosuch").status_code == 404 and current("wgone").status_code == 410
        # PATCH: within stays within; a patch that moves it out is refused
        r = requests.patch(f"{s.base}/Observation/win", headers={**h, **JSON_PATCH},
                           data='[{"op": "replace", "path": "/status", "value": "amended"}]')
        assert r.status_code == 200, (name, r.text)
        out_ref = obs(None, *outside[0])
        patch_out = [{"op": "replace", "path": "/subject", "value": out_ref["subject"]},
                     {"op": "replace", "path": "/category", "value": out_ref["category"]}]
        r = requests.patch(f"{s.base}/Observation/win", headers={**h, **JSON_PATCH},
                           json=patch_out)
        assert r.status_code == 403, (name, r.text)
        assert current("win").json()["status"] == "amended"
        # transaction: one entry outside refuses all of it, nothing written
        vid = current("win").json()["meta"]["versionId"]
        tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": obs("win", *inside[0]),
             "request": {"method": "PUT", "url": "Observation/win"}},
            {"resource": obs(None, *outside[0]), "request": {"method": "POST", "url": "Observation"}}]}
        r = requests.post(s.base, headers=h, json=tx)
        assert r.status_code == 403, (name, r.text)
        assert current("win").json()["meta"]["versionId"] == vid, name
        tx["entry"] = tx["entry"][:1]
        r = requests.post(s.base, headers=h, json=tx)
        assert r.status_code == 200, (name, r.text)
        # batch: each entry alone
        b = {"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "DELETE", "url": "Observation/wout"}},
            {"request": {"method": "DELETE", "url": "Observation/win"}}]}
        r = requests.post(s.base, headers=h, json=b)
        st = [e["response"]["status"] for e in r.json()["entry"]]
        assert st[0].startswith("403") and st[1][:3] in ("200", "204"), (name, st)
        assert current("win").status_code == 410 and current("wout").status_code == 200
        # conditional writes under a write restriction are refused
        r = requests.put(f"{s.base}/Observation?code=zzz", headers=h, json=obs(None, *inside[0]))
        assert r.status_code == 403, (name, r.text)
    finally:
        for oid in made:
            requests.delete(f"{s.base}/Observation/{oid}", headers=admin)
