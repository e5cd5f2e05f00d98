"""Chains (subject:Patient.family=x) and reverse chains (_has:Observation:patient:code=x):
what they find, and the 400s that name what is wrong with them (docs/SEARCH.md 4b). The
differential oracle covers them at random; these pin the cases by hand."""
import uuid

from conftest import FHIR_JSON, assert_outcome

CT = {"Content-Type": FHIR_JSON}


def put(http, base, res):
    r = http.put(f"{base}/{res['resourceType']}/{res['id']}", json=res, headers=CT)
    assert r.status_code in (200, 201), r.text


def ids(http, base, path, **params):
    r = http.get(f"{base}/{path}", params=params)
    assert r.status_code == 200, r.text
    return sorted(e["resource"]["id"] for e in r.json().get("entry", [])
                  if e["search"]["mode"] == "match")


def world(http, base):
    """Two organisations, three patients, observations and an encounter; every name and
    code made unique to this call, so other tests' data cannot match."""
    u = uuid.uuid4().hex[:8]
    fam = f"Linkfam{u}"
    put(http, base, {"resourceType": "Organization", "id": f"org-a-{u}", "name": f"Alpha {u}"})
    put(http, base, {"resourceType": "Organization", "id": f"org-b-{u}", "name": f"Beta {u}"})
    for i, org in enumerate(["a", "a", "b"]):
        put(http, base, {"resourceType": "Patient", "id": f"p{i}-{u}",
                         "name": [{"family": fam if i < 2 else f"Other{u}", "given": [f"G{i}"]}],
                         "managingOrganization": {"reference": f"Organization/org-{org}-{u}"}})
    put(http, base, {"resourceType": "Encounter", "id": f"enc-{u}", "status": "finished",
                     "class": {"code": "AMB"}, "subject": {"reference": f"Patient/p2-{u}"}})
    code = f"c{u}"
    obs = [("o0", "p0", code, None), ("o1", "p1", "other", None), ("o2", "p2", code, f"enc-{u}")]
    for oid, pid, c, enc in obs:
        o = {"resourceType": "Observation", "id": f"{oid}-{u}", "status": "final",
             "code": {"coding": [{"system": "urn:x", "code": c}]},
             "subject": {"reference": f"Patient/{pid}-{u}"}}
        if enc:
            o["encounter"] = {"reference": f"Encounter/{enc}"}
        put(http, base, o)
    return u, fam, code


def test_chains_find_what_the_reference_points_at(http, base):
    u, fam, code = world(http, base)
    assert ids(http, base, "Observation", **{"subject:Patient.family": fam}) == [f"o0-{u}", f"o1-{u}"]
    # one target type has the parameter: the type may be left out
    assert ids(http, base, "Observation", **{"patient.family": fam}) == [f"o0-{u}", f"o1-{u}"]
    # with another clause, and OR inside the chain
    assert ids(http, base, "Observation", **{"subject:Patient.family": f"{fam},Other{u}",
                                             "code": f"urn:x|{code}"}) == [f"o0-{u}", f"o2-{u}"]
    # two links: the organisation of the patient
    assert ids(http, base, "Observation",
               **{"subject:Patient.organization.name": f"Beta {u}"}) == [f"o2-{u}"]
    # a modifier on the chained parameter
    assert ids(http, base, "Observation", **{"subject:Patient.family:exact": fam.lower()}) == []
    # nothing behind the chain matches: no match, a 200
    assert ids(http, base, "Observation", **{"subject:Patient.family": f"None{u}"}) == []
    # _summary=count of a chain
    r = http.get(f"{base}/Observation", params={"subject:Patient.family": fam, "_summary": "count"})
    assert r.json()["total"] == 2


def test_reverse_chains(http, base):
    u, fam, code = world(http, base)
    assert ids(http, base, "Patient", **{"_has:Observation:patient:code": f"urn:x|{code}"}) == \
        [f"p0-{u}", f"p2-{u}"]
    # AND of a _has and a plain clause
    assert ids(http, base, "Patient", **{"_has:Observation:patient:code": f"urn:x|{code}",
                                         "family": fam}) == [f"p0-{u}"]
    # nested: organisations of patients who have such an Observation
    assert ids(http, base, "Organization",
               **{"_has:Patient:organization:_has:Observation:patient:code": f"urn:x|{code}"}) == \
        [f"org-a-{u}", f"org-b-{u}"]
    # a chain behind a _has: patients with an Observation in an encounter of the patient
    assert ids(http, base, "Patient",
               **{"_has:Observation:patient:encounter:Encounter.status": "finished",
                  "_id": f"p0-{u},p1-{u},p2-{u}"}) == [f"p2-{u}"]
    # an update breaks the link
    put(http, base, {"resourceType": "Observation", "id": f"o0-{u}", "status": "final",
                     "code": {"coding": [{"system": "urn:x", "code": "changed"}]},
                     "subject": {"reference": f"Patient/p0-{u}"}})
    assert ids(http, base, "Patient", **{"_has:Observation:patient:code": f"urn:x|{code}"}) == \
        [f"p2-{u}"]
    # and a chain sees it too
    assert ids(http, base, "Observation", **{"subject:Patient.family": fam,
                                             "code": f"urn:x|{code}"}) == []


def test_bad_links_are_400_naming_the_parameter(http, base):
    cases = [
        ({"subject.name": "x"}, "several types"),                 # Patient and Location
        ({"subject:Patient.nam": "x"}, "unknown search parameter 'nam' for Patient"),
        ({"code.name": "x"}, "only reference parameters can be chained"),
        ({"subject:Medication.code": "x"}, "not a type subject of Observation refers to"),
        ({"subject:Patient.": "x"}, "needs a parameter after"),
        ({"subject:Patient._count": "5"}, "is not a search parameter of Patient"),
        ({"subject:Patient._sort": "family"}, "is not a search parameter of Patient"),
        ({"subject:Patient.birthdate": "tomorrow"}, "subject:Patient.birthdate"),
        ({"nope.name": "x"}, "unknown search parameter 'nope'"),
    ]
    for params, words in cases:
        oo = assert_outcome(http.get(f"{base}/Observation", params=params), 400)
        diag = oo["issue"][0]["diagnostics"]
        assert words in diag, (params, diag)
    for name, words in [("_has", "_has takes"), ("_has:Observation", "_has takes"),
                        ("_has:Observation:patient", "_has takes"),
                        ("_has:Nope:patient:code", "not a resource type"),
                        ("_has:Observation:code:code", "not a reference parameter"),
                        ("_has:Observation:encounter:code", "does not refer to Patient"),
                        ("_has:Observation:patient:nope", "unknown search parameter 'nope'")]:
        oo = assert_outcome(http.get(f"{base}/Patient", params={name: "x"}), 400)
        assert words in oo["issue"][0]["diagnostics"], (name, oo)
    deep = "organization:Organization." + "partof:Organization." * 6 + "name"
    oo = assert_outcome(http.get(f"{base}/Patient", params={deep: "x"}), 400)
    assert "at most 6" in oo["issue"][0]["diagnostics"], oo
    assert ids(http, base, "Patient", **{"organization:Organization." + "partof." * 4 + "name": "x"}) == []


def test_lenient_leaves_out_a_chain_it_cannot_apply(http, base):
    u, fam, code = world(http, base)
    r = http.get(f"{base}/Observation", params={"subject:Patient.nam": "x", "code": f"urn:x|{code}"},
                 headers={"Prefer": "handling=lenient"})
    assert r.status_code == 200, r.text
    b = r.json()
    got = sorted(e["resource"]["id"] for e in b["entry"] if e["search"]["mode"] == "match")
    assert got == [f"o0-{u}", f"o2-{u}"]
    oo = next(e["resource"] for e in b["entry"] if e["search"]["mode"] == "outcome")
    assert "subject:Patient.nam" in oo["issue"][0]["diagnostics"]
    self_link = next(l["url"] for l in b["link"] if l["relation"] == "self")
    assert "nam" not in self_link
    # a chain that is wrong, not unknown, is a 400 even then
    assert_outcome(http.get(f"{base}/Observation", params={"code.name": "x"},
                            headers={"Prefer": "handling=lenient"}), 400)


def test_chain_links_carry_the_chain(http, base):
    u, fam, code = world(http, base)
    b = http.get(f"{base}/Observation", params={"subject:Patient.family": fam, "_count": 1}).json()
    nxt = next(l["url"] for l in b["link"] if l["relation"] == "next")
    assert "subject:Patient.family=" in nxt
    b2 = http.get(nxt).json()
    got = [e["resource"]["id"] for e in b["entry"] + b2["entry"]]
    assert sorted(got) == [f"o0-{u}", f"o1-{u}"]


def entries(http, base, path, **params):
    r = http.get(f"{base}/{path}", params=params)
    assert r.status_code == 200, r.text
    b = r.json()
    return b, [(e["search"]["mode"], e["resource"]["resourceType"], e["resource"]["id"])
               for e in b.get("entry", [])]


def test_include_and_revinclude(http, base):
    u, fam, code = world(http, base)
    b, es = entries(http, base, "Observation", **{"subject:Patient.family": fam,
                                                  "_include": "Observation:subject"})
    assert b["total"] == 2, "included resources never count"
    assert sorted(e for e in es if e[0] == "match") == \
        [("match", "Observation", f"o0-{u}"), ("match", "Observation", f"o1-{u}")]
    assert sorted(e for e in es if e[0] == "include") == \
        [("include", "Patient", f"p0-{u}"), ("include", "Patient", f"p1-{u}")]
    # a target type filter, and `*`
    _, es = entries(http, base, "Observation", _id=f"o2-{u}", _include="Observation:subject:Group")
    assert [e for e in es if e[0] == "include"] == []
    _, es = entries(http, base, "Observation", _id=f"o2-{u}", _include="*")
    assert sorted(e[1] for e in es if e[0] == "include") == ["Encounter", "Patient"]
    # revinclude, and :iterate from what it added; each resource once per page
    _, es = entries(http, base, "Organization", _id=f"org-a-{u}",
                    _revinclude="Patient:organization",
                    **{"_revinclude:iterate": "Observation:subject"})
    inc = sorted((e[1], e[2]) for e in es if e[0] == "include")
    assert inc == [("Observation", f"o0-{u}"), ("Observation", f"o1-{u}"),
                   ("Patient", f"p0-{u}"), ("Patient", f"p1-{u}")]
    # a cycle ends: patients -> organisation -> patients
    _, es = entries(http, base, "Patient", _id=f"p0-{u}", _include="Patient:organization",
                    **{"_revinclude:iterate": "Patient:organization"})
    inc = sorted((e[1], e[2]) for e in es if e[0] == "include")
    assert inc == [("Organization", f"org-a-{u}"), ("Patient", f"p1-{u}")]
    # a match is never also an include on its page
    _, es = entries(http, base, "Patient", _id=f"p0-{u},p1-{u}", _include="Patient:organization",
                    **{"_revinclude:iterate": "Patient:organization"})
    assert sorted((e[0], e[2]) for e in es if e[1] == "Patient") == \
        [("match", f"p0-{u}"), ("match", f"p1-{u}")]
    # the next link carries the includes
    b, _ = entries(http, base, "Observation", **{"subject:Patient.family": fam, "_count": 1,
                                                 "_include": "Observation:subject"})
    nxt = next(l["url"] for l in b["link"] if l["relation"] == "next")
    assert "_include=Observation:subject" in nxt
    b2 = http.get(nxt).json()
    assert [e["search"]["mode"] for e in b2["entry"]] == ["match", "include"]


def test_bad_includes_are_400(http, base):
    cases = [
        ("Observation", "_include", "Patient:organization", "add :iterate"),
        ("Observation", "_include", "Observation", "expected [type]:[parameter]"),
        ("Observation", "_include", "Observation:code", "not a reference parameter"),
        ("Observation", "_include", "Observation:subject:Medication", "not a type subject"),
        ("Observation", "_include", "Nope:subject", "not a resource type"),
        ("Observation", "_include:deep", "Observation:subject", "only modifier"),
        ("Patient", "_revinclude", "Observation:encounter", "does not refer to Patient"),
        ("Patient", "_revinclude", "*", "not supported"),
        ("Patient", "_revinclude", "Observation:*", "name the parameter"),
    ]
    for typ, name, value, words in cases:
        oo = assert_outcome(http.get(f"{base}/{typ}", params={name: value}), 400)
        assert words in oo["issue"][0]["diagnostics"], (name, value, oo)
    oo = assert_outcome(http.get(base, params={"_type": "Observation",
                                               "_include": "Observation:subject"}), 400)
    assert "several types" in oo["issue"][0]["diagnostics"]


def test_patient_is_subject_kept_to_patients(http, base):
    """Observation's `patient` is subject.where(resolve() is Patient): it takes the plan
    within the patient (docs/SEARCH.md 4a), so it must still tell a patient that is the
    subject from one that is only the performer, alone and behind a _has."""
    u = uuid.uuid4().hex[:8]
    put(http, base, {"resourceType": "Patient", "id": f"pp-{u}", "name": [{"family": f"Pp{u}"}]})
    put(http, base, {"resourceType": "Patient", "id": f"pq-{u}", "name": [{"family": f"Pp{u}"}]})
    put(http, base, {"resourceType": "Group", "id": f"g-{u}", "type": "person", "actual": True})
    obs = {"resourceType": "Observation", "status": "final",
           "code": {"coding": [{"system": "urn:x", "code": f"k{u}"}]}}
    put(http, base, {**obs, "id": f"os-{u}", "subject": {"reference": f"Patient/pp-{u}"}})
    # in pq's compartment through performer only; its subject is a Group
    put(http, base, {**obs, "id": f"op-{u}", "subject": {"reference": f"Group/g-{u}"},
                     "performer": [{"reference": f"Patient/pq-{u}"}]})
    code = f"urn:x|k{u}"
    assert ids(http, base, "Observation", patient=f"Patient/pp-{u}", code=code) == [f"os-{u}"]
    assert ids(http, base, "Observation", patient=f"pq-{u}", code=code) == []
    assert ids(http, base, "Observation", subject=f"Group/g-{u}", code=code) == [f"op-{u}"]
    assert ids(http, base, f"Patient/pq-{u}/Observation", code=code) == [f"op-{u}"]
    assert ids(http, base, "Patient", family=f"Pp{u}",
               **{"_has:Observation:patient:code": code}) == [f"pp-{u}"]
    assert ids(http, base, "Patient", family=f"Pp{u}",
               **{"_has:Observation:performer:code": code}) == [f"pq-{u}"]
