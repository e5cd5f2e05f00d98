"""PATCH: FHIRPath Patch (Parameters) and JSON Patch (RFC 6902)."""
from conftest import FHIR_JSON, assert_outcome, create

JP = {"Content-Type": "application/json-patch+json"}
FP = {"Content-Type": FHIR_JSON}


def op(type_, path, **kw):
    parts = [{"name": "type", "valueCode": type_}, {"name": "path", "valueString": path}]
    for k, v in kw.items():
        if k == "name":
            parts.append({"name": "name", "valueString": v})
        elif k in ("index", "source", "destination"):
            parts.append({"name": k, "valueInteger": v})
        else:  # value_<Type>=...
            parts.append({"name": "value", k.replace("value_", "value"): v})
    return {"name": "operation", "part": parts}


def params(*ops):
    return {"resourceType": "Parameters", "parameter": list(ops)}


def new_patient(http, base):
    return create(http, base, {
        "resourceType": "Patient", "birthDate": "1970-01-01", "gender": "male",
        "identifier": [{"system": "s", "value": "a"}, {"system": "s", "value": "b"}],
        "name": [{"family": "Old", "given": ["A"]}]}).json()


def test_fhirpath_patch(http, base):
    p = new_patient(http, base)
    url = f"{base}/Patient/{p['id']}"
    r = http.patch(url, json=params(
        op("replace", "Patient.birthDate", value_Date="1980-02-02"),
        op("delete", "Patient.gender"),
        op("add", "Patient", name="active", value_Boolean=True),
        op("add", "Patient", name="identifier", value_Identifier={"system": "s", "value": "c"}),
        op("insert", "Patient.identifier", index=0, value_Identifier={"system": "s", "value": "z"}),
        op("move", "Patient.identifier", source=3, destination=1),
        op("replace", "Patient.name[0].family", value_String="New"),
        op("add", "Patient", name="deceased", value_Boolean=False),
    ), headers=FP)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == 'W/"2"'
    got = http.get(url).json()
    assert got["birthDate"] == "1980-02-02"
    assert "gender" not in got
    assert got["active"] is True
    assert got["deceasedBoolean"] is False
    assert [i["value"] for i in got["identifier"]] == ["z", "c", "a", "b"]
    assert got["name"][0]["family"] == "New"
    assert got["meta"]["versionId"] == "2"


def test_fhirpath_patch_errors(http, base):
    p = new_patient(http, base)
    url = f"{base}/Patient/{p['id']}"
    # the path matches nothing to add to
    assert_outcome(http.patch(url, json=params(
        op("add", "Patient.contact", name="gender", value_Code="male")), headers=FP), 400)
    # an invalid FHIRPath
    assert_outcome(http.patch(url, json=params(op("delete", "Patient.(")), headers=FP), 400)
    # a result that is not valid FHIR
    assert_outcome(http.patch(url, json=params(
        op("replace", "Patient.birthDate", value_String="yesterday")), headers=FP), 422)
    # id and resourceType are not the patch's to change
    assert_outcome(http.patch(url, json=params(op("delete", "Patient.id")), headers=FP), 422)
    assert_outcome(http.patch(url, json={"resourceType": "Patient"}, headers=FP), 400)
    # nothing changed, still version 1
    assert http.get(url).json()["meta"]["versionId"] == "1"
    assert_outcome(http.patch(f"{base}/Patient/not-there",
                              json=params(op("delete", "Patient.gender")), headers=FP), 404)


def test_json_patch(http, base):
    p = new_patient(http, base)
    url = f"{base}/Patient/{p['id']}"
    r = http.patch(url, json=[
        {"op": "test", "path": "/gender", "value": "male"},
        {"op": "replace", "path": "/gender", "value": "female"},
        {"op": "add", "path": "/name/0/given/-", "value": "B"},
        {"op": "remove", "path": "/identifier/0"},
        {"op": "copy", "from": "/name/0/family", "path": "/name/0/text"},
        {"op": "move", "from": "/birthDate", "path": "/deceasedDateTime"},
    ], headers=JP)
    assert r.status_code == 200, r.text
    got = http.get(url).json()
    assert got["gender"] == "female"
    assert got["name"][0]["given"] == ["A", "B"]
    assert got["name"][0]["text"] == "Old"
    assert [i["value"] for i in got["identifier"]] == ["b"]
    assert "birthDate" not in got and got["deceasedDateTime"] == "1970-01-01"


def test_json_patch_errors(http, base):
    p = new_patient(http, base)
    url = f"{base}/Patient/{p['id']}"
    assert_outcome(http.patch(url, json=[{"op": "test", "path": "/gender", "value": "female"}],
                              headers=JP), 409)
    assert_outcome(http.patch(url, json=[{"op": "remove", "path": "/nothing"}], headers=JP), 400)
    assert_outcome(http.patch(url, json=[{"op": "jump", "path": "/gender"}], headers=JP), 400)
    assert_outcome(http.patch(url, json={"op": "remove"}, headers=JP), 400)
    assert_outcome(http.patch(url, json=[{"op": "add", "path": "/fooBar", "value": 1}],
                              headers=JP), 422)
    assert_outcome(http.patch(url, data=b"[", headers=JP), 400)
    assert_outcome(http.patch(url, data=b"[]", headers={"Content-Type": "text/plain"}), 415)
    assert http.get(url).json()["meta"]["versionId"] == "1"


def test_patch_if_match(http, base):
    p = new_patient(http, base)
    url = f"{base}/Patient/{p['id']}"
    body = [{"op": "replace", "path": "/gender", "value": "other"}]
    assert_outcome(http.patch(url, json=body, headers={**JP, "If-Match": 'W/"7"'}), 412)
    r = http.patch(url, json=body, headers={**JP, "If-Match": 'W/"1"', "Prefer": "return=minimal"})
    assert r.status_code == 200 and r.content == b""
    h = http.get(url + "/_history").json()
    assert [e["request"]["method"] for e in h["entry"]] == ["PUT", "POST"]


def test_json_patch_copy_is_deep(http, base):
    p = new_patient(http, base)
    url = f"{base}/Patient/{p['id']}"
    r = http.patch(url, json=[
        {"op": "copy", "from": "/name/0", "path": "/name/-"},
        {"op": "replace", "path": "/name/1/family", "value": "Copy"},
    ], headers=JP)
    assert r.status_code == 200, r.text
    got = http.get(url).json()
    assert [n["family"] for n in got["name"]] == ["Old", "Copy"]


def test_fhirpath_patch_path_that_is_not_an_element(http, base):
    p = new_patient(http, base)
    url = f"{base}/Patient/{p['id']}"
    for path in ["'a'", "1", "true", "@2020", "Patient.id + 'x'"]:
        for kind in ["delete", "replace"]:
            extra = {"value_String": "x"} if kind == "replace" else {}
            r = http.patch(url, json=params(op(kind, path, **extra)), headers=FP)
            assert_outcome(r, 400)
    assert http.get(url).json()["meta"]["versionId"] == "1"
