"""SMART on FHIR enforcement against a real server started with --auth-jwks.

Keys are generated here (python3-cryptography), the JWKS is written to a file, and
every token is minted in the test: valid ones with various scopes, and the ones the
server must refuse (expired, not yet valid, wrong aud, wrong iss, tampered payload,
alg none, HS256 keyed with the public key, unknown kid). Data is written first by a
system/*.cruds token, then read back under narrower tokens.
"""
import base64
import hashlib
import hmac
import json
import time

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import FHIR_JSON, Server, assert_clean_exit

ISS = "https://idp.example.org"
AUD = "https://fhir.example.org/fhir"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64n(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64(n.to_bytes(size, "big"))


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks():
    rn = RSA_KEY.public_key().public_numbers()
    en = EC_KEY.public_key().public_numbers()
    return {"keys": [
        {"kty": "RSA", "kid": "r1", "use": "sig", "n": b64n(rn.n), "e": b64n(rn.e)},
        {"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64n(en.x, 32), "y": b64n(en.y, 32)},
    ]}


def sign_input(header, claims):
    return (b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())).encode()


def token(scope="system/*.cruds", patient=None, alg="RS256", kid=None, key=None, **over):
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "exp": now + 600, "iat": now, "sub": "tester",
              "scope": scope}
    if patient:
        claims["patient"] = patient
    claims.update(over)
    claims = {k: v for k, v in claims.items() if v is not None}
    kid = kid or ("e1" if alg.startswith("ES") else "r1")
    si = sign_input({"alg": alg, "kid": kid, "typ": "JWT"}, claims)
    if alg.startswith("ES"):
        der = (key or EC_KEY).sign(si, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = (key or RSA_KEY).sign(si, padding.PKCS1v15(),
                                    hashes.SHA256() if alg == "RS256" else hashes.SHA384())
    return si.decode() + "." + b64(sig)


def auth(tok):
    return {"Authorization": "Bearer " + tok, "Content-Type": FHIR_JSON}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = tmp_path_factory.mktemp("auth")
    jf = d / "jwks.json"
    jf.write_text(json.dumps(jwks()))
    s = Server(d / "db", ["--auth-jwks", str(jf), "--auth-issuer", ISS,
                          "--auth-audience", AUD])
    admin = auth(token())
    for pid in ("p1", "p2"):
        r = requests.put(f"{s.base}/Patient/{pid}", headers=admin,
                         json={"resourceType": "Patient", "id": pid, "name": [{"family": pid}]})
        assert r.status_code in (200, 201), r.text
    for oid, pid in (("o1", "p1"), ("o2", "p2")):
        r = requests.put(f"{s.base}/Observation/{oid}", headers=admin, json={
            "resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{pid}"}})
        assert r.status_code in (200, 201), r.text
    yield s
    assert_clean_exit(s)


def oo_text(r):
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    return " ".join(i.get("diagnostics", "") for i in body["issue"])


def test_public_endpoints(srv):
    r = requests.get(srv.base + "/metadata")
    assert r.status_code == 200
    sec = r.json()["rest"][0]["security"]
    assert sec["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    for url in (srv.root + "/.well-known/smart-configuration",
                srv.base + "/.well-known/smart-configuration"):
        r = requests.get(url)
        assert r.status_code == 200, url
        c = r.json()
        assert c["issuer"] == ISS
        assert "permission-v2" in c["capabilities"]
        assert "S256" in c["code_challenge_methods_supported"]
        assert "patient/*.rs" in c["scopes_supported"]
    assert requests.get(srv.root + "/healthz").status_code == 200


def test_no_token_401(srv):
    r = requests.get(srv.base + "/Patient/p1")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith('Bearer realm="hortus"')
    assert "error=" not in r.headers["WWW-Authenticate"]
    assert "bearer token" in oo_text(r)
    r = requests.get(srv.base + "/Patient/p1", headers={"Authorization": "Basic eDp5"})
    assert r.status_code == 401
    r = requests.post(srv.base + "/Patient", json={"resourceType": "Patient"},
                      headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 401


def tampered():
    t = token(scope="patient/Observation.rs", patient="p1")
    h, _, s = t.split(".")
    now = int(time.time())
    wide = {"iss": ISS, "aud": AUD, "exp": now + 600, "scope": "system/*.cruds"}
    return h + "." + b64(json.dumps(wide).encode()) + "." + s


def alg_none():
    now = int(time.time())
    return sign_input({"alg": "none", "kid": "r1"},
                      {"iss": ISS, "aud": AUD, "exp": now + 600,
                       "scope": "system/*.cruds"}).decode() + "."


def hs256_with_public_key():
    now = int(time.time())
    si = sign_input({"alg": "HS256", "kid": "r1"},
                    {"iss": ISS, "aud": AUD, "exp": now + 600, "scope": "system/*.cruds"})
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return si.decode() + "." + b64(hmac.new(pem, si, hashlib.sha256).digest())


BAD_TOKENS = {
    "expired": lambda: token(exp=int(time.time()) - 600),
    "not yet valid": lambda: token(nbf=int(time.time()) + 600),
    "wrong aud": lambda: token(aud="https://other.example/fhir"),
    "wrong iss": lambda: token(iss="https://evil.example"),
    "tampered payload": tampered,
    "alg none": alg_none,
    "HS256 with the public key": hs256_with_public_key,
    "unknown kid": lambda: token(kid="nope"),
    "signed by another key": lambda: token(key=OTHER_KEY),
    "garbage": lambda: "not-a-jwt",
}


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_bad_tokens_401(srv, name):
    r = requests.get(srv.base + "/Patient/p1", headers=auth(BAD_TOKENS[name]()))
    assert r.status_code == 401, name
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert oo_text(r)


def test_valid_tokens_rs_es(srv):
    for alg in ("RS256", "RS384", "ES256"):
        r = requests.get(srv.base + "/Patient/p1", headers=auth(token(alg=alg)))
        assert r.status_code == 200, (alg, r.text)
        assert r.json()["id"] == "p1"


def test_read_per_scope(srv):
    ok = auth(token(scope="user/Patient.read"))
    assert requests.get(srv.base + "/Patient/p2", headers=ok).status_code == 200
    r = requests.get(srv.base + "/Observation/o1", headers=ok)
    assert r.status_code == 403
    assert "insufficient_scope" in r.headers["WWW-Authenticate"]
    v2 = auth(token(scope="user/Observation.rs"))
    assert requests.get(srv.base + "/Observation/o2", headers=v2).status_code == 200
    assert requests.get(srv.base + "/Patient/p1", headers=v2).status_code == 403
    # a token with no resource scope at all
    none = auth(token(scope="openid fhirUser"))
    assert requests.get(srv.base + "/Patient/p1", headers=none).status_code == 403
    # absent resources: 404 only where the type may be read
    assert requests.get(srv.base + "/Patient/nope", headers=ok).status_code == 404
    assert requests.get(srv.base + "/Observation/nope", headers=ok).status_code == 403


def test_patient_context_read(srv):
    h = auth(token(scope="patient/*.rs", patient="p1"))
    assert requests.get(srv.base + "/Patient/p1", headers=h).status_code == 200
    assert requests.get(srv.base + "/Observation/o1", headers=h).status_code == 200
    r = requests.get(srv.base + "/Observation/o2", headers=h)
    assert r.status_code == 403 and "compartment" in oo_text(r)
    assert requests.get(srv.base + "/Patient/p2", headers=h).status_code == 403
    # a missing resource is refused the same way: no existence is revealed
    assert requests.get(srv.base + "/Observation/nope", headers=h).status_code == 403
    # patient/ scopes without a patient claim
    r = requests.get(srv.base + "/Observation/o1", headers=auth(token(scope="patient/*.rs")))
    assert r.status_code == 403 and "patient claim" in oo_text(r)


def ids(bundle):
    return sorted(e["resource"]["id"] for e in bundle.get("entry", [])
                  if e.get("search", {}).get("mode", "match") == "match")


def test_search_restricted(srv):
    h = auth(token(scope="patient/Observation.rs patient/Patient.rs", patient="p1"))
    r = requests.get(srv.base + "/Observation", headers=h)
    assert r.status_code == 200, r.text
    assert ids(r.json()) == ["o1"]
    assert r.json()["total"] == 1
    r = requests.get(srv.base + "/Observation?subject=Patient/p2", headers=h)
    assert r.status_code == 200 and ids(r.json()) == [] and r.json()["total"] == 0
    r = requests.get(srv.base + "/Observation?_summary=count", headers=h)
    assert r.json()["total"] == 1
    r = requests.get(srv.base + "/Patient", headers=h)
    assert ids(r.json()) == ["p1"]
    r = requests.get(srv.base + "/Patient/p2/Observation", headers=h)
    assert r.status_code == 200 and ids(r.json()) == []
    # user/ scopes see every Observation
    r = requests.get(srv.base + "/Observation", headers=auth(token(scope="user/Observation.rs")))
    assert ids(r.json()) == ["o1", "o2"]
    # search needs s: v2 read alone does not give it
    r = requests.get(srv.base + "/Observation", headers=auth(token(scope="user/Observation.r")))
    assert r.status_code == 403


@pytest.mark.parametrize("method,path,what", [
    ("GET", "/$reindex", "operation"),
])
def test_unsupported_refused(srv, method, path, what):
    for scope, patient in (("patient/*.rs", "p1"),):
        r = requests.request(method, srv.base + path, headers=auth(token(scope=scope,
                                                                        patient=patient)))
        assert r.status_code == 403, (path, scope, r.text)
        assert what in oo_text(r)
        assert "not supported with authorisation yet" in oo_text(r)


def test_validate_within_rights(srv):
    """$validate stands for the write its mode names: the token needs that permission,
    and a delete's target must be within its rights (403 alike whether it exists)."""
    obs = {"resourceType": "Observation", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
           "subject": {"reference": "Patient/p1"}}
    url = srv.base + "/Observation/$validate"
    r = requests.post(url, headers=auth(token(scope="patient/Observation.rs", patient="p1")),
                      json=obs)
    assert r.status_code == 403 and "write permission" in oo_text(r), r.text
    h = auth(token(scope="patient/Observation.c", patient="p1"))
    r = requests.post(url, headers=h, json=obs)
    assert r.status_code == 200, r.text
    r = requests.post(url + "?mode=update", headers=h, json=dict(obs, id="o1"))
    assert r.status_code == 403 and "(u)" in oo_text(r), r.text
    hd = auth(token(scope="patient/Observation.d", patient="p1"))
    texts = set()
    for oid in ("o2", "nosuch"):
        r = requests.post(srv.base + f"/Observation/{oid}/$validate?mode=delete", headers=hd)
        assert r.status_code == 403, (oid, r.text)
        texts.add(oo_text(r).replace(oid, "X"))
    assert len(texts) == 1, texts
    r = requests.post(srv.base + "/Observation/o1/$validate?mode=delete", headers=hd)
    assert r.status_code == 200, r.text
    # a whole-type delete right: the plain answers (404 for what does not exist)
    r = requests.post(srv.base + "/Observation/nosuch/$validate?mode=delete",
                      headers=auth(token(scope="system/Observation.d")))
    assert r.status_code == 404, r.text


def test_integrity_does_not_probe(srv):
    """Referential integrity under a token that does not read all of the target type:
    a missing target and one outside its rights get the same 422, word for word."""
    def obs(subject):
        return {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "subject": {"reference": subject}}
    for scope, patient in (("user/Observation.c", None),
                           ("patient/Observation.c patient/Patient.r", "p1")):
        h = auth(token(scope=scope, patient=patient))
        texts = set()
        for subject in ("Patient/p2", "Patient/nosuch"):
            o = obs(subject)
            if patient:  # within the compartment by subject; the probe is the performer
                o = dict(obs("Patient/p1"), performer=[{"reference": subject}])
            r = requests.post(srv.base + "/Observation", headers=h, json=o)
            assert r.status_code == 422, (scope, subject, r.text)
            texts.add(oo_text(r).replace(subject, "X"))
        assert len(texts) == 1, (scope, texts)
    # the launch context's patient may be named without read on Patient
    h = auth(token(scope="patient/Observation.cd", patient="p1"))
    r = requests.post(srv.base + "/Observation", headers=h, json=obs("Patient/p1"))
    assert r.status_code == 201, r.text
    loc = r.headers["Location"].split("/fhir/")[1].split("/_history")[0]
    assert requests.delete(f"{srv.base}/{loc}", headers=h).status_code in (200, 204)
    # a token that reads every Patient hears which case it is
    h = auth(token(scope="user/Observation.c user/Patient.r"))
    r = requests.post(srv.base + "/Observation", headers=h, json=obs("Patient/nosuch"))
    assert r.status_code == 422 and "names nothing" in oo_text(r), r.text


def test_batch_entries_decided_one_by_one(srv):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/p2"}},
        {"request": {"method": "GET", "url": "Observation/o2"}},
        {"request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "name": [{"family": "b"}]}}]}
    r = requests.post(srv.base, headers=auth(token(scope="user/Patient.rs")), json=bundle)
    assert r.status_code == 200, r.text
    st = [e["response"]["status"] for e in r.json()["entry"]]
    assert st[0].startswith("200") and st[1].startswith("403") and st[2].startswith("403")
    bundle["type"] = "transaction"
    r = requests.post(srv.base, headers=auth(token(scope="user/Patient.rs")), json=bundle)
    assert r.status_code == 403, r.text


def test_granular_read(srv):
    # o1 has no category: outside a scope that asks for vital signs, whether it exists or not
    h = auth(token(scope="patient/Observation.rs?category=http://terminology.hl7.org/"
                         "CodeSystem/observation-category|vital-signs", patient="p1"))
    r = requests.get(srv.base + "/Observation/o1", headers=h)
    assert r.status_code == 403 and "not in the compartment" in oo_text(r)
    assert requests.get(srv.base + "/Observation/nosuch", headers=h).status_code == 403
    h = auth(token(scope="user/Observation.rs?code=http://loinc.org|8867-4"))
    assert requests.get(srv.base + "/Observation/o2", headers=h).status_code == 200
    h = auth(token(scope="user/Observation.rs?code=http://loinc.org|1234-5"))
    r = requests.get(srv.base + "/Observation/o2", headers=h)
    assert r.status_code == 403 and "granular" in oo_text(r)
    assert requests.get(srv.base + "/Observation/nosuch", headers=h).status_code == 403


def test_writes_per_scope(srv):
    pat = {"resourceType": "Patient", "name": [{"family": "w"}]}
    r = requests.post(srv.base + "/Patient", json=pat, headers=auth(token(scope="user/Patient.rs")))
    assert r.status_code == 403
    w = auth(token(scope="user/Patient.cud"))
    r = requests.post(srv.base + "/Patient", json=pat, headers=w)
    assert r.status_code == 201, r.text
    pid = r.headers["Location"].split("/Patient/")[1].split("/")[0]
    r = requests.put(f"{srv.base}/Patient/{pid}", headers=w,
                     json={"resourceType": "Patient", "id": pid, "active": True})
    assert r.status_code == 200, r.text
    r = requests.patch(f"{srv.base}/Patient/{pid}", headers={
        **w, "Content-Type": "application/json-patch+json"},
        data=json.dumps([{"op": "replace", "path": "/active", "value": False}]))
    assert r.status_code == 200, r.text
    ro = auth(token(scope="user/Patient.rs"))
    r = requests.patch(f"{srv.base}/Patient/{pid}", headers={
        **ro, "Content-Type": "application/json-patch+json"},
        data=json.dumps([{"op": "replace", "path": "/active", "value": True}]))
    assert r.status_code == 403
    assert requests.delete(f"{srv.base}/Patient/{pid}", headers=ro).status_code == 403
    assert requests.delete(f"{srv.base}/Patient/{pid}", headers=w).status_code in (200, 204)
    # a condition is a search: without s on the whole type it is refused
    r = requests.post(srv.base + "/Patient", json=pat,
                      headers={**w, "If-None-Exist": "name=w"})
    assert r.status_code == 403 and "a condition searches Patient" in oo_text(r)
    r = requests.delete(srv.base + "/Patient?name=w", headers=w)
    assert r.status_code == 403 and "a condition searches Patient" in oo_text(r)
    ws = auth(token(scope="user/Patient.cruds"))
    r = requests.post(srv.base + "/Patient", json=pat,
                      headers={**ws, "If-None-Exist": "name=nobody-by-this-name"})
    assert r.status_code == 201, r.text
    # patient/ writes: within the compartment only (test_auth_matrix.py holds the rest)
    pw = auth(token(scope="patient/*.cruds", patient="p1"))
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "subject": {"reference": "Patient/p1"}}
    r = requests.post(srv.base + "/Observation", headers=pw, json=obs)
    assert r.status_code == 201, r.text
    oid = r.headers["Location"].split("/Observation/")[1].split("/")[0]
    r = requests.post(srv.base + "/Observation", headers=pw,
                      json={**obs, "subject": {"reference": "Patient/p2"}})
    assert r.status_code == 403 and "not within the token's rights" in oo_text(r)
    assert requests.delete(f"{srv.base}/Observation/{oid}", headers=pw).status_code in (200, 204)


def test_vread_history_instance(srv):
    u = auth(token(scope="user/Observation.rs"))
    assert requests.get(srv.base + "/Observation/o1/_history/1", headers=u).status_code == 200
    r = requests.get(srv.base + "/Observation/o1/_history", headers=u)
    assert r.status_code == 200 and r.json()["type"] == "history"
    no = auth(token(scope="user/Patient.rs"))
    assert requests.get(srv.base + "/Observation/o1/_history/1", headers=no).status_code == 403
    assert requests.get(srv.base + "/Observation/o1/_history", headers=no).status_code == 403
    # within the patient's compartment: the versions that are themselves in it
    p = auth(token(scope="patient/*.rs", patient="p1"))
    r = requests.get(srv.base + "/Observation/o1/_history", headers=p)
    assert r.status_code == 200 and len(r.json()["entry"]) >= 1
    r = requests.get(srv.base + "/Observation/o2/_history", headers=p)
    assert r.status_code == 403


def test_without_auth_flags_unchanged(base):
    """The shared server has no --auth-jwks: no token needed, no discovery document."""
    assert requests.get(base + "/metadata").status_code == 200
    assert "security" not in requests.get(base + "/metadata").json()["rest"][0]
    assert requests.get(base + "/.well-known/smart-configuration").status_code == 404
    r = requests.post(base + "/Patient", json={"resourceType": "Patient"},
                      headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 201


def test_bad_flags(tmp_path):
    import subprocess
    from conftest import BIN
    r = subprocess.run([BIN, "serve", "--data", str(tmp_path / "d"), "--auth-jwks",
                        str(tmp_path / "none.json"), "--auth-issuer", ISS], capture_output=True)
    assert r.returncode == 2 and b"go together" in r.stderr
    r = subprocess.run([BIN, "serve", "--data", str(tmp_path / "d"), "--auth-jwks",
                        str(tmp_path / "none.json"), "--auth-issuer", ISS, "--auth-audience",
                        AUD], capture_output=True)
    assert r.returncode == 1 and b"JWKS" in r.stderr


def test_authorisation_allows_another_interface(tmp_path):
    """With --auth-jwks the loopback-only rule (docs/DEPLOY.md) no longer applies: the
    server listens on 0.0.0.0 without --insecure and without its warning, and still
    asks every request for a token."""
    from conftest import Server, assert_clean_exit
    jf = tmp_path / "jwks.json"
    jf.write_text(json.dumps(jwks()))
    s = Server(tmp_path / "db", ["--bind", "0.0.0.0", "--auth-jwks", str(jf),
                                 "--auth-issuer", ISS, "--auth-audience", AUD])
    try:
        assert requests.get(f"{s.base}/Patient").status_code == 401
        assert requests.get(f"{s.base}/Patient", headers=auth(token())).status_code == 200
        log = open(s.logpath, "rb").read()
        assert b"refusing" not in log and b"WARNING" not in log, log
    finally:
        assert_clean_exit(s)


def test_restricted_history_pages_are_bounded(tmp_path):
    """Under a restriction a history page looks at only so many versions
    (HORTUS_HISTORY_SCAN_MAX here 5), then ends with a link on: following the links
    still lists every version within the rights and none outside them."""
    jf = tmp_path / "jwks.json"
    jf.write_text(json.dumps(jwks()))
    s = Server(tmp_path / "db", ["--auth-jwks", str(jf), "--auth-issuer", ISS,
                                 "--auth-audience", AUD],
               env={"HORTUS_HISTORY_SCAN_MAX": "5"})
    admin = auth(token())
    for pid in ("p1", "p2"):
        assert requests.put(f"{s.base}/Patient/{pid}", headers=admin, json={
            "resourceType": "Patient", "id": pid}).status_code == 201
    mine = []
    for i in range(23):
        pid = "p1" if i % 8 == 0 else "p2"
        r = requests.put(f"{s.base}/Observation/h{i}", headers=admin, json={
            "resourceType": "Observation", "id": f"h{i}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{pid}"}})
        assert r.status_code == 201, r.text
        if pid == "p1":
            mine.append(f"h{i}")
    h = auth(token(scope="patient/Observation.rs", patient="p1"))
    url, seen, pages = f"{s.base}/Observation/_history?_count=10", [], 0
    while url:
        b = requests.get(url, headers=h).json()
        assert b["resourceType"] == "Bundle" and "total" not in b, b
        entries = b.get("entry", [])
        assert len(entries) <= 5
        seen += [e["resource"]["id"] for e in entries]
        url = next((ln["url"] for ln in b.get("link", []) if ln["relation"] == "next"), None)
        pages += 1
    assert sorted(seen) == sorted(mine) and pages >= 23 // 5, (seen, pages)
    # with the whole type the same history is one page
    b = requests.get(f"{s.base}/Observation/_history?_count=50", headers=admin).json()
    assert len(b["entry"]) == 23 and b["total"] == 23
    assert_clean_exit(s)
