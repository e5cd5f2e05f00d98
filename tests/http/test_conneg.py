"""Formats: JSON only. _format wins over Accept; XML and other formats get 406."""
import pytest

from conftest import FHIR_JSON, assert_outcome, create

PAT = {"resourceType": "Patient", "active": True}


@pytest.fixture(scope="module")
def pid(base):
    import requests
    return create(requests, base, PAT).json()["id"]


@pytest.mark.parametrize("accept", [
    None, "application/fhir+json", "application/json", "*/*", "application/*",
    "application/fhir+json; fhirVersion=4.0", "text/html, application/json;q=0.9, */*;q=0.8",
    "application/json+fhir", "application/fhir+xml;q=0.9, application/fhir+json",
])
def test_json_accepted(http, base, pid, accept):
    r = http.get(f"{base}/Patient/{pid}", headers={"Accept": accept} if accept else {})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/fhir+json; charset=utf-8"


@pytest.mark.parametrize("accept", [
    "application/fhir+xml", "application/xml", "text/xml", "text/html", "text/turtle",
    "application/fhir+json;q=0, application/xml",
])
def test_non_json_accept_is_406(http, base, pid, accept):
    oo = assert_outcome(http.get(f"{base}/Patient/{pid}", headers={"Accept": accept}), 406)
    assert "JSON" in oo["issue"][0]["diagnostics"]


@pytest.mark.parametrize("fmt", ["json", "application/json", "application/fhir+json"])
def test_format_json(http, base, pid, fmt):
    r = http.get(f"{base}/Patient/{pid}", params={"_format": fmt},
                 headers={"Accept": "application/xml"})
    assert r.status_code == 200


def test_format_unescaped_plus(http, base, pid):
    # a client writing the query by hand: '+' arrives as a space
    assert http.get(f"{base}/Patient/{pid}?_format=application/fhir+json").status_code == 200


@pytest.mark.parametrize("fmt", ["xml", "application/fhir+xml", "text/xml", "ttl", "html"])
def test_format_xml_is_406(http, base, pid, fmt):
    oo = assert_outcome(http.get(f"{base}/Patient/{pid}", params={"_format": fmt}), 406)
    assert "JSON" in oo["issue"][0]["diagnostics"]
    assert_outcome(http.get(f"{base}/metadata", params={"_format": fmt}), 406)


def test_application_json_body_accepted(http, base):
    for ct in ["application/json", "application/json; charset=utf-8",
               "application/fhir+json;charset=UTF-8", "application/fhir+json; fhirVersion=4.0"]:
        r = http.post(f"{base}/Patient", json=PAT, headers={"Content-Type": ct})
        assert r.status_code == 201, (ct, r.text)
        assert r.headers["Content-Type"] == "application/fhir+json; charset=utf-8"


def test_content_type_on_get_and_delete_is_fine(http, base, pid):
    h = {"Content-Type": "application/fhir+json"}
    assert http.get(f"{base}/Patient/{pid}", headers=h).status_code == 200
    assert http.get(f"{base}/metadata", headers=h).status_code == 200
    p = create(http, base, PAT).json()
    assert http.delete(f"{base}/Patient/{p['id']}", headers=h).status_code == 204


def test_xml_body_is_415(http, base):
    xml = b'<Patient xmlns="http://hl7.org/fhir"><active value="true"/></Patient>'
    oo = assert_outcome(http.post(f"{base}/Patient", data=xml,
                                  headers={"Content-Type": "application/fhir+xml"}), 415)
    assert "application/fhir+json" in oo["issue"][0]["diagnostics"]
    r = http.put(f"{base}/Patient/x1", data=xml, headers={"Content-Type": "application/xml"})
    assert_outcome(r, 415)


def test_fhir_version_parameter(http, base, pid):
    ok = {"Accept": "application/fhir+json; fhirVersion=4.0"}
    assert http.get(f"{base}/Patient/{pid}", headers=ok).status_code == 200
    for v in ["3.0", "4.3", "5.0", "1.0.2"]:
        r = http.get(f"{base}/Patient/{pid}", headers={"Accept": f"application/fhir+json; fhirVersion={v}"})
        assert_outcome(r, 406)
    r = http.post(f"{base}/Patient", json=PAT,
                  headers={"Content-Type": "application/fhir+json; fhirVersion=3.0"})
    assert_outcome(r, 415)
    r = http.post(f"{base}/Patient", json=PAT,
                  headers={"Content-Type": "application/fhir+json; fhirVersion=4.0.1"})
    assert r.status_code == 201
