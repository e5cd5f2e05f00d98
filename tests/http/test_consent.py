"""Patient-privacy Consent: what hortus enforces (docs/CONSENT.md), held to an oracle.

The data of the leak matrix, plus Observations carrying a security label. Consents:
p1 withholds everything from every user but Practitioner/dr0 (a permit inside a deny);
p2 withholds its Observations labelled R (a deny inside a permit); p3 withholds
everything from research use (purpose HRESCH); p4's denial lies in the past. For each
token the oracle says which resources it may see; searches (ids and counts), reads,
_include/_revinclude, chains, _has, vread and history must agree, and a Consent that
uses what hortus does not enforce is refused when written.
"""
import random

import pytest
import requests

from conftest import Server, assert_clean_exit
from test_auth import AUD, ISS, auth, jwks, token  # noqa: F401
from test_auth_matrix import PATIENTS, in_compartment, make_data

SCOPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                     "code": "patient-privacy"}]}
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
LABEL_R = {"system": CONF, "code": "R"}
ACTREASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def consent(cid, pid, provision, status="active"):
    return {"resourceType": "Consent", "id": cid, "status": status, "scope": SCOPE,
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{pid}"}, "provision": provision,
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTOUT"}]}}


CONSENTS = [
    consent("c-p1", "p1", {"type": "deny", "provision": [
        {"type": "permit", "actor": [{"role": {"text": "GP"},
                                      "reference": {"reference": "Practitioner/dr0"}}]}]}),
    consent("c-p2", "p2", {"type": "permit", "provision": [
        {"type": "deny", "class": [{"system": "http://hl7.org/fhir/resource-types",
                                    "code": "Observation"}],
         "securityLabel": [LABEL_R]}]}),
    consent("c-p3", "p3", {"type": "permit", "provision": [
        {"type": "deny", "purpose": [{"system": ACTREASON, "code": "HRESCH"}]}]}),
    consent("c-p4", "p4", {"type": "deny", "period": {"start": "2001-01-01",
                                                      "end": "2002-01-01"}}),
]


def labelled(r):
    return any(s.get("system") == CONF and s.get("code") == "R"
               for s in r.get("meta", {}).get("security", []))


def withheld(tok, r):
    """The oracle: does a consent withhold r from the token kind tok?"""
    if tok["system"] or tok.get("self") and in_compartment(r, tok["self"]):
        return False
    for pid in PATIENTS:
        if not in_compartment(r, pid):
            continue
        if pid == "p1" and tok["user"] != "Practitioner/dr0":
            return True
        if pid == "p2" and r["resourceType"] == "Observation" and labelled(r):
            return True
        if pid == "p3" and tok["purpose"] == "HRESCH":
            return True
    return False


TOKENS = {
    "clinician": dict(scope="user/*.rs", fhirUser="Practitioner/dr1", user="Practitioner/dr1",
                      purpose=None, system=False),
    "gp-of-p1": dict(scope="user/*.rs", fhirUser="Practitioner/dr0", user="Practitioner/dr0",
                     purpose="TREAT", system=False),
    "researcher": dict(scope="user/*.rs", fhirUser="Practitioner/dr1",
                       user="Practitioner/dr1", purpose="HRESCH", system=False),
    "backend": dict(scope="system/*.rs", fhirUser=None, user=None, purpose=None, system=True),
    "patient-p1": dict(scope="patient/*.rs", fhirUser="Patient/p1", user="Patient/p1",
                       purpose=None, system=False, patient="p1", self="p1"),
}


def tok_headers(name):
    t = TOKENS[name]
    extra = {}
    if t["purpose"]:
        extra["purpose_of_use"] = [t["purpose"]]
    return auth(token(scope=t["scope"], patient=t.get("patient"), fhirUser=t["fhirUser"],
                      **extra))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import json
    d = tmp_path_factory.mktemp("consent")
    jf = d / "jwks.json"
    jf.write_text(json.dumps(jwks()))
    s = Server(d / "db", ["--auth-jwks", str(jf), "--auth-issuer", ISS,
                          "--auth-audience", AUD])
    rng = random.Random(5)
    data = make_data(rng)
    for i in range(12):  # labelled Observations, p2's and others'
        pid = "p2" if i < 8 else rng.choice(PATIENTS)
        o = {"resourceType": "Observation", "id": f"lab{i}", "status": "final",
             "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
             "subject": {"reference": f"Patient/{pid}"}}
        if i % 2 == 0:
            o["meta"] = {"security": [LABEL_R]}
        data.append(o)
    admin = auth(token())
    order = {"Organization": 0, "Practitioner": 1, "Patient": 2, "Encounter": 3}
    for r in sorted(data, key=lambda r: order.get(r["resourceType"], 9)):
        rr = requests.put(f"{s.base}/{r['resourceType']}/{r['id']}", headers=admin, json=r)
        assert rr.status_code in (200, 201), rr.text
    for c in CONSENTS:
        rr = requests.put(f"{s.base}/Consent/{c['id']}", headers=admin, json=c)
        assert rr.status_code in (200, 201), rr.text
    yield s, data
    assert_clean_exit(s)


def ids_of(base, url, h):
    out, total = [], None
    while url:
        r = requests.get(url if url.startswith("http") else base + url, headers=h)
        assert r.status_code == 200, r.text
        b = r.json()
        total = b.get("total", total) if total is None else total
        out += [(e["resource"]["resourceType"], e["resource"]["id"], e["search"]["mode"])
                for e in b.get("entry", []) if e["resource"]["resourceType"] != "OperationOutcome"]
        url = next((lk["url"] for lk in b.get("link", []) if lk["relation"] == "next"), None)
    return out, total


@pytest.mark.parametrize("name", list(TOKENS))
def test_searches_reads_and_counts(world, name):
    s, data = world
    h = tok_headers(name)
    t = TOKENS[name]
    some_withheld = False
    for typ in ("Patient", "Observation", "Encounter", "Condition"):
        mine = [r for r in data if r["resourceType"] == typ and
                (not t.get("patient") or in_compartment(r, t["patient"]))]
        want = sorted(r["id"] for r in mine if not withheld(t, r))
        some_withheld |= len(want) < len(mine)
        got, total = ids_of(s.base, f"/{typ}?_count=7&_total=accurate", h)
        assert sorted(i for _, i, _ in got) == want, (name, typ)
        assert total == len(want), (name, typ)
        r = requests.get(f"{s.base}/{typ}?_summary=count", headers=h)
        assert r.json()["total"] == len(want), (name, typ)
        for res in mine:
            r = requests.get(f"{s.base}/{typ}/{res['id']}", headers=h)
            assert r.status_code == (403 if withheld(t, res) else 200), (name, typ, res["id"])
    # the oracle is not vacuous: users lose something, the backend nothing
    assert some_withheld == (name in ("clinician", "researcher", "gp-of-p1")) or \
        name == "patient-p1", name


@pytest.mark.parametrize("name", ["clinician", "researcher"])
def test_links_reveal_nothing_withheld(world, name):
    s, data = world
    h = tok_headers(name)
    t = TOKENS[name]
    seen = {(r["resourceType"], r["id"]) for r in data if not withheld(t, r)}
    # _revinclude and _include: only resources the token may see
    got, _ = ids_of(s.base, "/Patient?_revinclude=Observation:subject&_count=50", h)
    assert got and all((ty, i) in seen for ty, i, _ in got), name
    got, _ = ids_of(s.base, "/Observation?_include=Observation:subject&_count=100", h)
    assert all((ty, i) in seen for ty, i, _ in got), name
    # a chain through a withheld patient finds nothing of it
    for pid in PATIENTS:
        got, total = ids_of(s.base, f"/Observation?subject:Patient.family=fam{pid}", h)
        want = sorted(r["id"] for r in data if r["resourceType"] == "Observation" and
                      any(x == f"Patient/{pid}" for x in [r["subject"]["reference"]]) and
                      not withheld(t, r) and not withheld(t, {"resourceType": "Patient",
                                                              "id": pid}))
        assert sorted(i for _, i, _ in got) == want, (name, pid)
    # _has through withheld labelled Observations does not reveal p2 (clinician)
    got, _ = ids_of(s.base, f"/Patient?_has:Observation:subject:_security={CONF}|R", h)
    want = sorted({r["subject"]["reference"].split("/")[1] for r in data
                   if r["resourceType"] == "Observation" and labelled(r)
                   and not withheld(t, r)} - {p for p in PATIENTS
                                              if withheld(t, {"resourceType": "Patient",
                                                              "id": p})})
    assert sorted(i for _, i, _ in got) == want, name
    # the history of a type or of the system lists no version the consents withhold
    for url, typ in (("/Observation/_history?_count=9", "Observation"), ("/_history?_count=13", None)):
        listed, total = [], None
        u = s.base + url
        while u:
            r = requests.get(u, headers=h)
            assert r.status_code == 200, (name, url, r.text)
            b = r.json()
            total = b.get("total", total)
            listed += [e.get("resource") for e in b.get("entry", [])]
            u = next((lk["url"] for lk in b.get("link", []) if lk["relation"] == "next"), None)
        assert total is None, (name, url)  # a count would include what is withheld
        assert all(x is not None and not withheld(t, x) for x in listed), (name, url)
        got = {(x["resourceType"], x["id"]) for x in listed}
        assert {(r["resourceType"], r["id"]) for r in data if not withheld(t, r) and
                (typ is None or r["resourceType"] == typ)} <= got, (name, url)
    # vread and instance history of a withheld resource: 403
    w = next(r for r in data if r["resourceType"] == "Observation" and withheld(t, r))
    for url in (f"/Observation/{w['id']}/_history", f"/Observation/{w['id']}/_history/1"):
        assert requests.get(s.base + url, headers=h).status_code == 403, (name, url)
    # a batch read of it: 403 in its entry
    b = {"resourceType": "Bundle", "type": "batch",
         "entry": [{"request": {"method": "GET", "url": f"Observation/{w['id']}"}}]}
    r = requests.post(s.base, headers=h, json=b)
    assert r.json()["entry"][0]["response"]["status"].startswith("403"), name


def test_changes_to_consent_take_effect(world):
    s, data = world
    admin = auth(token())
    h = tok_headers("clinician")
    assert requests.get(f"{s.base}/Patient/p1", headers=h).status_code == 403
    c = dict(CONSENTS[0], status="inactive")
    assert requests.put(f"{s.base}/Consent/c-p1", headers=admin, json=c).status_code == 200
    assert requests.get(f"{s.base}/Patient/p1", headers=h).status_code == 200
    assert requests.put(f"{s.base}/Consent/c-p1", headers=admin,
                        json=CONSENTS[0]).status_code == 200
    assert requests.get(f"{s.base}/Patient/p1", headers=h).status_code == 403
    # a new consent, then deleted
    c = consent("c-p5", "p5", {"type": "deny"})
    assert requests.put(f"{s.base}/Consent/c-p5", headers=admin, json=c).status_code == 201
    assert requests.get(f"{s.base}/Patient/p5", headers=h).status_code == 403
    assert requests.delete(f"{s.base}/Consent/c-p5", headers=admin).status_code in (200, 204)
    assert requests.get(f"{s.base}/Patient/p5", headers=h).status_code == 200


UNSUPPORTED = [
    ({"type": "deny", "code": [{"text": "x"}]}, "code"),
    ({"type": "deny", "dataPeriod": {"start": "2020"}}, "dataPeriod"),
    ({"type": "deny", "data": [{"meaning": "instance",
                                "reference": {"reference": "Observation/o1"}}]}, "data"),
    ({"type": "permit", "provision": [{"type": "deny", "provision": [{"type": "permit"}]}]},
     "nested deeper"),
    ({"type": "permit", "provision": [{"type": "permit"}]}, "opposite"),
    ({"type": "deny", "action": [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/consentaction",
        "code": "collect"}]}]}, "action"),
    ({"type": "deny", "class": [{"system": "http://example.org/classes", "code": "x"}]},
     "class"),
    ({"actor": [{"role": {"text": "x"}, "reference": {"reference": "Practitioner/dr1"}}]},
     "type must be"),
    ({"type": "deny", "actor": [{"role": {"text": "x"}, "reference": {
        "identifier": {"system": "http://example.org/staff", "value": "7"}}}]}, "actor"),
]


@pytest.mark.parametrize("case", range(len(UNSUPPORTED)))
def test_unenforceable_consent_refused(world, case):
    s, _ = world
    prov, says = UNSUPPORTED[case]
    admin = auth(token())
    cid = f"bad{case}"
    c = consent(cid, "p5", prov)
    for r in (requests.put(f"{s.base}/Consent/{cid}", headers=admin, json=c),
              requests.post(f"{s.base}/Consent", headers=admin, json=c)):
        assert r.status_code == 422, r.text
        assert says in r.json()["issue"][0]["diagnostics"], r.text
    assert requests.get(f"{s.base}/Consent/{cid}", headers=admin).status_code == 404
    # the same as a draft is data, not a rule: stored
    c["status"] = "draft"
    r = requests.put(f"{s.base}/Consent/{cid}", headers=admin, json=c)
    assert r.status_code == 201, r.text
    assert requests.delete(f"{s.base}/Consent/{cid}", headers=admin).status_code in (200, 204)


def test_no_provision_refused(world):
    s, _ = world
    c = consent("bad2", "p5", None)
    del c["provision"]
    r = requests.put(f"{s.base}/Consent/bad2", headers=auth(token()), json=c)
    assert r.status_code == 422 and "provision" in r.text, r.text
