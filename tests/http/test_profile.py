"""Profiles stored as StructureDefinition resources: enforced on writes that claim them in
meta.profile and by $validate?profile= (docs/PROFILES.md)."""
import uuid

import pytest

from conftest import FHIR_JSON, assert_outcome

CT = {"Content-Type": FHIR_JSON}
CORE = "http://hl7.org/fhir/StructureDefinition/"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
LOINC = "http://loinc.org"


def uniq(name):
    return f"http://example.org/fhir/StructureDefinition/{name}-{uuid.uuid4().hex[:8]}"


def sd(url, type_, elements, base=None, form="differential", kind="resource"):
    return {"resourceType": "StructureDefinition", "url": url, "name": "P" + url[-8:],
            "status": "active", "kind": kind, "abstract": False, "type": type_,
            "baseDefinition": base or CORE + type_, "derivation": "constraint",
            form: {"element": elements}}


def store(http, base, res):
    r = http.post(f"{base}/StructureDefinition", json=res, headers=CT)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def nationality_ext(url):
    e = sd(url, "Extension", [
        {"id": "Extension", "path": "Extension"},
        {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
        {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1,
         "type": [{"code": "CodeableConcept"}]},
    ], kind="complex-type")
    e["context"] = [{"type": "element", "expression": "Patient"}]
    return e


def nl_patient(url, ext):
    return sd(url, "Patient", [
        {"id": "Patient", "path": "Patient", "constraint": [
            {"key": "nl-1", "severity": "error", "human": "a name with a family name",
             "expression": "name.family.exists()"},
            {"key": "nl-2", "severity": "warning", "human": "a telecom is recommended",
             "expression": "telecom.exists()"}]},
        {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1,
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
        {"id": "Patient.identifier:bsn", "path": "Patient.identifier", "sliceName": "bsn",
         "min": 1, "max": "1"},
        {"id": "Patient.identifier:bsn.system", "path": "Patient.identifier.system", "min": 1,
         "fixedUri": BSN},
        {"id": "Patient.identifier:bsn.value", "path": "Patient.identifier.value", "min": 1,
         "constraint": [{"key": "bsn-1", "severity": "error", "human": "nine digits",
                         "expression": "matches('^[0-9]{9}$')"}]},
        {"id": "Patient.gender", "path": "Patient.gender", "min": 1},
        {"id": "Patient.birthDate", "path": "Patient.birthDate", "max": "0"},
        {"id": "Patient.extension", "path": "Patient.extension",
         "slicing": {"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}},
        {"id": "Patient.extension:nationality", "path": "Patient.extension",
         "sliceName": "nationality", "min": 0, "max": "1",
         "type": [{"code": "Extension", "profile": [ext]}]},
    ])


def good_patient(profile=None, **kw):
    p = {"resourceType": "Patient",
         "identifier": [{"system": BSN, "value": "123456782"}],
         "name": [{"family": "Jansen"}], "gender": "female",
         "telecom": [{"system": "phone", "value": "+31 20 123 4567"}]}
    if profile:
        p["meta"] = {"profile": [profile]}
    p.update(kw)
    return p


@pytest.fixture(scope="module")
def nl(http_module, base):
    ext = uniq("nationality")
    url = uniq("nl-patient")
    store(http_module, base, nationality_ext(ext))
    store(http_module, base, nl_patient(url, ext))
    return {"url": url, "ext": ext}


@pytest.fixture(scope="module")
def http_module():
    import requests
    with requests.Session() as s:
        yield s


def issues(r, severity=None):
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome", oo
    return [i for i in oo["issue"] if severity is None or i["severity"] == severity]


def errors(r):
    return issues(r, "error")


def find(iss, code, expr, text=None):
    """The issue with this code and expression (and text in its diagnostics)."""
    hits = [i for i in iss if i["code"] == code and i.get("expression") == [expr] and
            (text is None or text in i["diagnostics"])]
    assert hits, (code, expr, text, iss)
    return hits[0]


def validate(http, base, res, profile=None):
    params = {"profile": profile} if profile else None
    r = http.post(f"{base}/{res['resourceType']}/$validate", params=params, json=res, headers=CT)
    assert r.status_code == 200, r.text
    return r


# ---- the rules, each with its location --------------------------------------------------

def test_a_conforming_patient_passes_and_is_stored(http, base, nl):
    r = validate(http, base, good_patient(), nl["url"])
    assert not errors(r), r.text
    r = http.post(f"{base}/Patient", json=good_patient(nl["url"]), headers=CT)
    assert r.status_code == 201, r.text


def test_cardinality_min_max_and_forbidden(http, base, nl):
    bad = good_patient(nl["url"], birthDate="1970-01-01")
    del bad["gender"]
    bad["identifier"] = [{"system": BSN, "value": "123456782"},
                         {"system": BSN, "value": "111222333"}]
    r = http.post(f"{base}/Patient", json=bad, headers=CT)
    assert r.status_code == 422, r.text
    iss = errors(r)
    g = find(iss, "required", "Patient.gender", "minimum cardinality 1")
    assert nl["url"] in g["diagnostics"] and "element Patient.gender" in g["diagnostics"]
    find(iss, "structure", "Patient.birthDate", "max 0")
    find(iss, "structure", "Patient.identifier", "maximum cardinality 1 of slice bsn, found 2")
    # the same through $validate, without claiming it in meta.profile
    bad.pop("meta")
    r = validate(http, base, bad, nl["url"])
    find(errors(r), "required", "Patient.gender")


def test_required_slice_missing_and_slice_rules(http, base, nl):
    p = good_patient(identifier=[{"system": "http://example.org/mrn", "value": "42"}])
    r = validate(http, base, p, nl["url"])
    find(errors(r), "required", "Patient.identifier", "of slice bsn, found 0")
    # a bsn value that breaks the slice's constraint
    p = good_patient(identifier=[{"system": "http://example.org/mrn", "value": "42"},
                                 {"system": BSN, "value": "12"}])
    r = validate(http, base, p, nl["url"])
    i = find(errors(r), "invariant", "Patient.identifier[1].value", "bsn-1")
    assert "Patient.identifier:bsn.value" in i["diagnostics"]
    # no identifier at all: the element's own min
    p = good_patient()
    del p["identifier"]
    r = validate(http, base, p, nl["url"])
    find(errors(r), "required", "Patient.identifier", "minimum cardinality 1, found 0")


def test_constraints_error_and_warning_kept_apart(http, base, nl):
    p = good_patient(name=[{"given": ["Anna"]}])
    del p["telecom"]
    r = validate(http, base, p, nl["url"])
    find(errors(r), "invariant", "Patient", "nl-1")
    w = find(issues(r, "warning"), "invariant", "Patient", "nl-2")
    assert "telecom" in w["diagnostics"]
    assert not [i for i in errors(r) if "nl-2" in i["diagnostics"]]
    # a warning alone does not refuse the write
    p = good_patient(nl["url"])
    del p["telecom"]
    assert http.post(f"{base}/Patient", json=p, headers=CT).status_code == 201


def test_extension_slice_by_url_applies_the_extension_definition(http, base, nl):
    ok = good_patient(extension=[{"url": nl["ext"], "valueCodeableConcept": {
        "coding": [{"system": "urn:iso:std:iso:3166", "code": "NL"}]}}])
    assert not errors(validate(http, base, ok, nl["url"]))
    bad = good_patient(extension=[{"url": "http://example.org/other", "valueString": "x"},
                                  {"url": nl["ext"], "valueString": "Dutch"}])
    r = validate(http, base, bad, nl["url"])
    i = find(errors(r), "structure", "Patient.extension[1].value.ofType(string)",
             "type string is not allowed")
    assert nl["ext"] in i["diagnostics"]  # the extension's own definition said so
    two = good_patient(extension=[ok["extension"][0], ok["extension"][0]])
    r = validate(http, base, two, nl["url"])
    find(errors(r), "structure", "Patient.extension", "of slice nationality, found 2")


def test_closed_slicing_refuses_unmatched_items(http, base):
    url = uniq("closed")
    store(http, base, sd(url, "Patient", [
        {"id": "Patient.identifier", "path": "Patient.identifier",
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "closed"}},
        {"id": "Patient.identifier:bsn", "path": "Patient.identifier", "sliceName": "bsn"},
        {"id": "Patient.identifier:bsn.system", "path": "Patient.identifier.system",
         "fixedUri": BSN}]))
    p = {"resourceType": "Patient", "identifier": [{"system": BSN, "value": "1"},
                                                   {"system": "http://x/mrn", "value": "2"}]}
    r = validate(http, base, p, url)
    find(errors(r), "structure", "Patient.identifier[1]", "matches none of the slices")
    p["identifier"].pop()
    assert not errors(validate(http, base, p, url))


def observation_profile(url):
    return sd(url, "Observation", [
        {"id": "Observation.status", "path": "Observation.status", "fixedCode": "final"},
        {"id": "Observation.code", "path": "Observation.code",
         "patternCodeableConcept": {"coding": [{"system": LOINC, "code": "8867-4"}]}},
        {"id": "Observation.subject", "path": "Observation.subject", "min": 1,
         "type": [{"code": "Reference", "targetProfile": [CORE + "Patient"]}]},
        {"id": "Observation.value[x]", "path": "Observation.value[x]", "min": 1,
         "type": [{"code": "Quantity"}]},
        {"id": "Observation.value[x].unit", "path": "Observation.value[x].unit", "min": 1},
        # any R4 value set the model tables enumerate will do for the mechanism
        {"id": "Observation.method", "path": "Observation.method",
         "binding": {"strength": "required",
                     "valueSet": "http://hl7.org/fhir/ValueSet/days-of-week"}},
        {"id": "Observation.bodySite", "path": "Observation.bodySite",
         "binding": {"strength": "required",
                     "valueSet": "http://example.org/fhir/ValueSet/local-sites"}},
    ])


def heart_rate(**kw):
    o = {"resourceType": "Observation", "status": "final",
         "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}],
                  "text": "HR"},
         "subject": {"reference": "Patient/p1"},
         "valueQuantity": {"value": 72, "unit": "/min"}}
    o.update(kw)
    return o


def test_fixed_pattern_type_binding_and_target(http, base):
    url = uniq("heart-rate")
    store(http, base, observation_profile(url))
    # the pattern is contained (display and text are extra), the code fixed
    assert not errors(validate(http, base, heart_rate(), url))
    r = validate(http, base, heart_rate(
        status="preliminary",
        code={"coding": [{"system": LOINC, "code": "1234-5"}]},
        subject={"reference": "Group/g1"},
        method={"coding": [{"code": "sunday"}]}), url)
    iss = errors(r)
    find(iss, "value", "Observation.status", "exactly \"final\"")
    find(iss, "value", "Observation.code", "pattern")
    find(iss, "structure", "Observation.subject", "reference to Group")
    find(iss, "code-invalid", "Observation.method", "days-of-week")
    wrong = heart_rate(valueString="72")
    del wrong["valueQuantity"]
    r = validate(http, base, wrong, url)
    find(errors(r), "structure", "Observation.value.ofType(string)", "type string is not allowed")
    # value[x] narrowed to Quantity: its children apply to the quantity
    r = validate(http, base, heart_rate(valueQuantity={"value": 72}), url)
    find(errors(r), "required", "Observation.value.ofType(Quantity).unit")
    # a binding to a value set hortus does not have: a warning, never silently passed
    r = validate(http, base, heart_rate(bodySite={"coding": [{"code": "arm"}]}), url)
    assert not errors(r)
    w = find(issues(r, "warning"), "not-supported", "Observation.bodySite", "local-sites")
    assert "not checked" in w["diagnostics"]
    # method from the value set passes
    assert not errors(validate(http, base, heart_rate(method={"coding": [{"code": "mon"}]}), url))


def test_snapshot_form_profile(http, base):
    url = uniq("snapshot")
    def el(path, mn, mx, **kw):
        return {"id": path, "path": path, "definition": "d", "min": mn, "max": mx,
                "base": {"path": path, "min": mn, "max": mx}, **kw}
    store(http, base, sd(url, "Patient", [
        el("Patient", 0, "*", constraint=[
            {"key": "dom-2", "severity": "error", "human": "no nested contained",
             "expression": "contained.contained.empty()", "source": CORE + "DomainResource"}]),
        el("Patient.id", 0, "1", type=[{"code": "http://hl7.org/fhirpath/System.String"}]),
        el("Patient.active", 1, "1", type=[{"code": "boolean"}], fixedBoolean=True,
           mustSupport=True, short="must be active"),
        el("Patient.name", 1, "*", type=[{"code": "HumanName"}]),
    ], form="snapshot"))
    ok = {"resourceType": "Patient", "active": True, "name": [{"family": "X"}]}
    r = validate(http, base, ok, url)
    assert not errors(r), r.text
    assert not [i for i in issues(r) if i["code"] == "not-supported"], r.text
    r = validate(http, base, {"resourceType": "Patient", "active": False}, url)
    find(errors(r), "value", "Patient.active", "exactly true")
    find(errors(r), "required", "Patient.name")


def test_derived_profile_applies_its_base_too(http, base, nl):
    url = uniq("derived")
    store(http, base, sd(url, "Patient", [
        {"id": "Patient.telecom", "path": "Patient.telecom", "min": 1}], base=nl["url"]))
    p = good_patient(url)
    del p["telecom"]
    del p["gender"]
    r = http.post(f"{base}/Patient", json=p, headers=CT)
    assert r.status_code == 422, r.text
    t = find(errors(r), "required", "Patient.telecom")
    assert url in t["diagnostics"]
    g = find(errors(r), "required", "Patient.gender")
    assert nl["url"] in g["diagnostics"]  # the base profile's rule
    assert http.post(f"{base}/Patient", json=good_patient(url), headers=CT).status_code == 201


def test_unsupported_features_are_reported_not_passed(http, base):
    url = uniq("unsupported")
    store(http, base, sd(url, "Patient", [
        {"id": "Patient.identifier", "path": "Patient.identifier",
         "slicing": {"discriminator": [{"type": "exists", "path": "value"}], "rules": "open"}},
        {"id": "Patient.identifier:withvalue", "path": "Patient.identifier",
         "sliceName": "withvalue", "min": 1},
        {"id": "Patient.multipleBirth[x]", "path": "Patient.multipleBirth[x]",
         "minValueInteger": 1},
    ]))
    r = validate(http, base, {"resourceType": "Patient", "identifier": [{"value": "1"}]}, url)
    assert not errors(r)
    notes = [i["diagnostics"] for i in issues(r, "warning") if i["code"] == "not-supported"]
    assert any("Patient.identifier" in d and "exists" in d for d in notes), notes
    assert any("Patient.multipleBirth[x]" in d and "minValueInteger" in d for d in notes), notes
    assert any("Patient.identifier:withvalue" in d and "not checked" in d for d in notes), notes


# ---- where profiles come from ------------------------------------------------------------

def test_unknown_profile_in_validate_is_an_error(http, base):
    url = uniq("nowhere")
    r = http.post(f"{base}/Patient/$validate", params={"profile": url},
                  json={"resourceType": "Patient"}, headers=CT)
    oo = assert_outcome(r, 400, "not-found")
    assert url in oo["issue"][0]["diagnostics"]
    r = http.post(f"{base}/Patient/$validate", headers=CT, json={
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": {"resourceType": "Patient"}},
                      {"name": "profile", "valueCanonical": url}]})
    assert_outcome(r, 400, "not-found")
    # the core definition of the type stands for the base validation
    r = validate(http, base, {"resourceType": "Patient"}, CORE + "Patient")
    assert not errors(r)
    # of another type: an error
    r = validate(http, base, {"resourceType": "Patient"}, CORE + "Observation")
    assert errors(r)


def test_version_in_the_canonical(http, base):
    url = uniq("versioned")
    v1 = sd(url, "Patient", [{"id": "Patient.gender", "path": "Patient.gender", "min": 1}])
    v1["version"] = "1.0"
    store(http, base, v1)
    assert errors(validate(http, base, {"resourceType": "Patient"}, url + "|1.0"))
    r = http.post(f"{base}/Patient/$validate", params={"profile": url + "|2.0"},
                  json={"resourceType": "Patient"}, headers=CT)
    assert_outcome(r, 400, "not-found")


def test_unknown_profile_on_write_warns_by_default(http, base):
    url = uniq("not-here")
    p = {"resourceType": "Patient", "meta": {"profile": [url]}}
    r = http.post(f"{base}/Patient", json=p, headers=CT)
    assert r.status_code == 201, r.text
    r = http.post(f"{base}/Patient", json=p,
                  headers={**CT, "Prefer": "return=OperationOutcome"})
    assert r.status_code == 201, r.text
    w = find(issues(r, "warning"), "not-supported", "Patient.meta.profile[0]", url)
    assert "not validated against it" in w["diagnostics"]
    # a batch entry says so in its response.outcome
    b = http.post(base, headers=CT, json={"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": p, "request": {"method": "POST", "url": "Patient"}}]})
    assert b.status_code == 200, b.text
    resp = b.json()["entry"][0]["response"]
    assert resp["status"].startswith("201"), resp
    assert any(url in i["diagnostics"] for i in resp["outcome"]["issue"]), resp


def test_unknown_profile_refused_with_the_option(make_server, http):
    s = make_server(extra_args=("--unknown-profile", "refuse"))
    s.wait_ready()
    url = uniq("not-here")
    r = http.post(f"{s.base}/Patient", json={"resourceType": "Patient", "meta": {"profile": [url]}},
                  headers=CT)
    oo = assert_outcome(r, 422)
    assert any(url in i["diagnostics"] for i in oo["issue"])
    # a stored one is fine, and the core definition too
    good = uniq("here")
    store(http, s.base, sd(good, "Patient", [{"id": "Patient.active", "path": "Patient.active",
                                              "min": 1}]))
    r = http.post(f"{s.base}/Patient", headers=CT, json={
        "resourceType": "Patient", "active": True, "meta": {"profile": [good, CORE + "Patient"]}})
    assert r.status_code == 201, r.text


def test_bad_option_value_is_refused(make_server):
    import subprocess
    from conftest import BIN
    p = subprocess.run([BIN, "serve", "--unknown-profile", "maybe"], capture_output=True,
                       text=True)
    assert p.returncode == 2 and "--unknown-profile" in p.stderr
    h = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True)
    assert "--unknown-profile" in h.stdout


# ---- the StructureDefinition itself -----------------------------------------------------

@pytest.mark.parametrize("change,status,text", [
    # what the R4 definitions already say (StructureDefinition.url 1..1, eld-2 min <= max):
    # the structural validation refuses it, as any invalid resource (400)
    (lambda s: s.pop("url"), 400, "url"),
    (lambda s: s["differential"]["element"].append(
        {"id": "Patient.name", "path": "Patient.name", "min": 2, "max": "1"}), 400, "eld-2"),
    # what only the profile engine can tell: 422
    (lambda s: s["differential"]["element"].append(
        {"id": "Patient.fooBar", "path": "Patient.fooBar", "min": 1}), 422,
     "not an element of Patient"),
    (lambda s: s["differential"]["element"].append(
        {"id": "Patient.gender", "path": "Patient.gender", "max": "3"}), 422,
     "exceeds the base max 1"),
    (lambda s: s["differential"]["element"].insert(0,
        {"id": "Patient", "path": "Patient", "constraint": [
            {"key": "x-1", "severity": "error", "human": "x", "expression": "name.where("}]}),
     422, "does not compile"),
    (lambda s: s.update(type="Nonsense", differential={"element": [
        {"id": "Nonsense.x", "path": "Nonsense.x"}]}), 422, "not an R4 resource"),
    (lambda s: s["differential"]["element"].append(
        {"id": "Patient.identifier.system", "path": "Patient.identifier.value", "min": 1}), 422,
     "does not match its id"),
])
def test_broken_structure_definition_is_refused(http, base, change, status, text):
    s = sd(uniq("broken"), "Patient", [{"id": "Patient.active", "path": "Patient.active"}])
    change(s)
    r = http.post(f"{base}/StructureDefinition", json=s, headers=CT)
    oo = assert_outcome(r, status)
    assert any(text in i["diagnostics"] for i in oo["issue"]), oo
    if status == 422:
        assert any(i.get("expression", [""])[0].startswith("StructureDefinition")
                   for i in oo["issue"]), oo


# ---- the write paths and the cache -------------------------------------------------------

def test_update_and_delete_of_a_profile_change_enforcement_at_once(http, base):
    url = uniq("changing")
    prof = sd(url, "Patient", [{"id": "Patient.gender", "path": "Patient.gender", "min": 1}])
    sid = store(http, base, prof)
    p = {"resourceType": "Patient", "meta": {"profile": [url]}}
    assert http.post(f"{base}/Patient", json=p, headers=CT).status_code == 422
    prof["id"] = sid
    prof["differential"]["element"] = [{"id": "Patient.active", "path": "Patient.active",
                                        "min": 1}]
    assert http.put(f"{base}/StructureDefinition/{sid}", json=prof, headers=CT).status_code == 200
    r = http.post(f"{base}/Patient", json=p, headers=CT)
    assert r.status_code == 422 and "Patient.active" in r.text, r.text
    assert http.post(f"{base}/Patient", json=dict(p, active=True),
                     headers=CT).status_code == 201
    assert http.delete(f"{base}/StructureDefinition/{sid}").status_code in (200, 204)
    r = http.post(f"{base}/Patient", json=p, headers={**CT, "Prefer": "return=OperationOutcome"})
    assert r.status_code == 201, r.text
    assert any("not known to this server" in i["diagnostics"] for i in issues(r, "warning"))


def test_update_patch_and_transaction_enforce_meta_profile(http, base, nl):
    r = http.post(f"{base}/Patient", json=good_patient(nl["url"]), headers=CT)
    assert r.status_code == 201
    pid = r.json()["id"]
    bad = good_patient(nl["url"], id=pid)
    del bad["gender"]
    r = http.put(f"{base}/Patient/{pid}", json=bad, headers=CT)
    assert r.status_code == 422 and "Patient.gender" in r.text, r.text
    r = http.patch(f"{base}/Patient/{pid}", headers={"Content-Type": "application/json-patch+json"},
                   json=[{"op": "add", "path": "/birthDate", "value": "1980-02-03"}])
    assert r.status_code == 422 and "Patient.birthDate" in r.text, r.text
    assert http.get(f"{base}/Patient/{pid}").json()["meta"]["versionId"] == "1"
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": good_patient(nl["url"]), "request": {"method": "POST", "url": "Patient"}},
        {"resource": bad, "request": {"method": "PUT", "url": f"Patient/{pid}"}}]}
    r = http.post(base, json=tx, headers=CT)
    assert r.status_code == 422 and "gender" in r.text, r.text
    tx["type"] = "batch"
    r = http.post(base, json=tx, headers=CT)
    assert r.status_code == 200
    st = [e["response"]["status"] for e in r.json()["entry"]]
    assert st[0].startswith("201") and st[1].startswith("422"), st


def test_validate_off_does_not_enforce_profiles(make_server, http):
    s = make_server(extra_args=("--validate", "structure"))
    s.wait_ready()
    url = uniq("strict")
    r = http.post(f"{s.base}/StructureDefinition", headers=CT, json=sd(url, "Patient", [
        {"id": "Patient.gender", "path": "Patient.gender", "min": 1}]))
    assert r.status_code == 201
    r = http.post(f"{s.base}/Patient", json={"resourceType": "Patient", "meta": {"profile": [url]}},
                  headers=CT)
    assert r.status_code == 201  # --validate structure: as documented, profiles are not checked
    # $validate still checks what it is asked to
    r = validate(http, s.base, {"resourceType": "Patient"}, url)
    find(errors(r), "required", "Patient.gender")


def test_slices_discriminated_inside_a_sliced_child(http, base):
    """As the R4 bp profile: components sliced by code.coding.code, the coding itself sliced."""
    url = uniq("bp")
    els = [{"id": "Observation.component", "path": "Observation.component", "min": 2,
            "slicing": {"discriminator": [{"type": "value", "path": "code.coding.code"},
                                          {"type": "value", "path": "code.coding.system"}],
                        "rules": "open"}}]
    for name, code in (("Systolic", "8480-6"), ("Diastolic", "8462-4")):
        sid = f"Observation.component:{name}"
        els += [
            {"id": sid, "path": "Observation.component", "sliceName": name, "min": 1, "max": "1"},
            {"id": f"{sid}.code.coding", "path": "Observation.component.code.coding",
             "slicing": {"discriminator": [{"type": "value", "path": "code"}], "rules": "open"}},
            {"id": f"{sid}.code.coding:c", "path": "Observation.component.code.coding",
             "sliceName": "c", "min": 1, "max": "1"},
            {"id": f"{sid}.code.coding:c.system", "path": "Observation.component.code.coding.system",
             "fixedUri": LOINC},
            {"id": f"{sid}.code.coding:c.code", "path": "Observation.component.code.coding.code",
             "fixedCode": code},
            {"id": f"{sid}.value[x]:valueQuantity", "path": "Observation.component.value[x]",
             "sliceName": "valueQuantity", "min": 1},
            {"id": f"{sid}.value[x]:valueQuantity.code",
             "path": "Observation.component.value[x].code", "fixedCode": "mm[Hg]"}]
    store(http, base, sd(url, "Observation", els))

    def comp(code, unit="mm[Hg]"):
        return {"code": {"coding": [{"system": LOINC, "code": code}]},
                "valueQuantity": {"value": 120, "unit": "mmHg", "code": unit,
                                  "system": "http://unitsofmeasure.org"}}
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "BP"},
           "component": [comp("8480-6"), comp("8462-4")]}
    assert not errors(validate(http, base, obs, url))
    obs["component"] = [comp("8480-6"), comp("1111-1", "kPa")]
    r = validate(http, base, obs, url)
    find(errors(r), "required", "Observation.component", "of slice Diastolic, found 0")
    obs["component"] = [comp("8480-6", "kPa"), comp("8462-4")]
    r = validate(http, base, obs, url)
    i = find(errors(r), "value", "Observation.component[0].value.ofType(Quantity).code", "mm[Hg]")
    assert "Observation.component:Systolic.value[x]:valueQuantity.code" in i["diagnostics"]


def test_import_enforces_the_profiles_of_its_data_directory(tmp_path):
    """hortus import plans every line through the write pipeline: profiles stored in the
    directory (by an earlier import or server) are enforced, and one written earlier in the
    same run is enforced on the lines after it."""
    import json
    import subprocess
    from conftest import BIN
    url = uniq("import")
    data = tmp_path / "db"
    first = tmp_path / "sd.ndjson"
    first.write_text(json.dumps(sd(url, "Patient", [
        {"id": "Patient.gender", "path": "Patient.gender", "min": 1}])) + "\n")
    r = subprocess.run([BIN, "import", "--data", str(data), str(first)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    pats = tmp_path / "p.ndjson"
    pats.write_text("\n".join(json.dumps(p) for p in [
        {"resourceType": "Patient", "id": "ok", "gender": "male", "meta": {"profile": [url]}},
        {"resourceType": "Patient", "id": "bad", "meta": {"profile": [url]}}]) + "\n")
    r = subprocess.run([BIN, "import", "--data", str(data), str(pats)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "p.ndjson:2: Patient/bad" in r.stderr and "Patient.gender" in r.stderr, r.stderr
    assert "1 resources loaded" in r.stderr, r.stderr
    # in one run, one file: a definition ends its batch and the lines after it wait for its
    # commit, so they are checked against it (the line before it is not: file order)
    url2 = uniq("import-same-run")
    both = tmp_path / "both.ndjson"
    both.write_text("\n".join(json.dumps(x) for x in [
        {"resourceType": "Patient", "id": "before", "meta": {"profile": [url2]}},
        sd(url2, "Patient", [{"id": "Patient.gender", "path": "Patient.gender", "min": 1}]),
        {"resourceType": "Patient", "id": "after-ok", "gender": "female",
         "meta": {"profile": [url2]}},
        {"resourceType": "Patient", "id": "after-bad", "meta": {"profile": [url2]}}]) + "\n")
    r = subprocess.run([BIN, "import", "--data", str(tmp_path / "db2"), str(both)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "both.ndjson:4: Patient/after-bad" in r.stderr, r.stderr
    assert "both.ndjson:3:" not in r.stderr, r.stderr
    # the line before the definition was planned without it: loaded, with a warning
    assert "both.ndjson:1: Patient/before: warning: profile " in r.stderr, r.stderr
    assert "3 resources loaded" in r.stderr, r.stderr
    # a claim of a profile the directory does not hold: loaded, and said so
    unk = tmp_path / "unknown.ndjson"
    errs = tmp_path / "errors.ndjson"
    unk.write_text(json.dumps({"resourceType": "Patient", "id": "u1",
                               "meta": {"profile": ["http://example.org/none"]}}) + "\n")
    r = subprocess.run([BIN, "import", "--data", str(tmp_path / "db3"), "--errors", str(errs),
                        str(unk)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "unknown.ndjson:1: Patient/u1: warning: profile http://example.org/none is not " \
        "known" in r.stderr and "warnings: 1 (the lines were loaded)" in r.stderr, r.stderr
    w = [json.loads(x) for x in errs.read_text().splitlines()]
    assert len(w) == 1 and w[0]["issue"][0]["severity"] == "warning", w
