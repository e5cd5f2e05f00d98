"""The built-in authorization server (SMART Backend Services) and the other ways a
token can be trusted: a JWKS fetched from a URL, and RFC 7662 introspection.

Client keys are generated here (python3-cryptography), registered with
`hortus client add`, and every client assertion is minted in the test: the good one,
and each the token endpoint must refuse (replayed jti, alg none, HS256 keyed with the
public key, wrong aud, expired, exp too far ahead, missing jti, unknown client, scope
not granted). The JWKS URL and the introspection endpoint are tiny python HTTP
servers in this process, which count the requests they get.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import stat
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import BIN, FHIR_JSON, Server, assert_clean_exit, free_port

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64n(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64(n.to_bytes(size, "big"))


def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP384R1())


def rsa_jwk(key, kid):
    n = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "n": b64n(n.n), "e": b64n(n.e)}


def ec_jwk(key, kid, crv="P-384", size=48):
    n = key.public_key().public_numbers()
    return {"kty": "EC", "kid": kid, "crv": crv, "x": b64n(n.x, size), "y": b64n(n.y, size)}


def jws(header, claims, key, alg):
    si = (b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())).encode()
    if alg == "none":
        return si.decode() + "."
    if alg.startswith("HS"):
        sig = hmac.new(key, si, hashlib.sha256).digest()
    elif alg.startswith("ES"):
        h = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384()}[alg]
        size = {"ES256": 32, "ES384": 48}[alg]
        r, s = decode_dss_signature(key.sign(si, ec.ECDSA(h)))
        sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        h = {"RS256": hashes.SHA256(), "RS384": hashes.SHA384()}[alg]
        sig = key.sign(si, padding.PKCS1v15(), h)
    return si.decode() + "." + b64(sig)


def hortus(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True)


# ---- the built-in server ----------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("authsrv")
    data = d / "db"
    jf = d / "client-jwks.json"
    jf.write_text(json.dumps({"keys": [rsa_jwk(RSA_KEY, "c-rsa"), ec_jwk(EC_KEY, "c-ec")]}))
    r = hortus("client", "add", "--jwks", str(jf), "--scope",
               "system/Patient.rs system/Observation.cruds", "--name", "lab feed", str(data))
    assert r.returncode == 0, r.stderr
    client_id = r.stdout.strip()
    s = Server(data, ["--auth-server"])
    s.client_id = client_id
    s.token_url = s.root + "/auth/token"
    s.data = data
    s.jwks_file = jf
    yield s
    assert_clean_exit(s)


def assertion(srv, alg="RS384", key=None, kid=None, **over):
    now = int(time.time())
    claims = {"iss": srv.client_id, "sub": srv.client_id, "aud": srv.token_url,
              "exp": now + 240, "jti": str(uuid.uuid4())}
    claims.update(over)
    claims = {k: v for k, v in claims.items() if v is not None}
    if key is None:
        key = EC_KEY if alg.startswith("ES") else RSA_KEY
    kid = kid or ("c-ec" if alg.startswith("ES") else "c-rsa")
    return jws({"alg": alg, "kid": kid, "typ": "JWT"}, claims, key, alg)


def ask(srv, a, scope="system/Patient.rs", grant="client_credentials", atype=ASSERTION_TYPE):
    form = {"grant_type": grant, "scope": scope, "client_assertion_type": atype,
            "client_assertion": a}
    return requests.post(srv.token_url, data={k: v for k, v in form.items() if v is not None})


def refused(r, status, error):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error, body
    assert body.get("error_description")
    assert "access_token" not in body
    return body["error_description"]


def test_token_issued_and_usable(built):
    for alg in ("RS384", "ES384"):
        r = ask(built, assertion(built, alg), "system/Patient.rs system/Observation.rs")
        assert r.status_code == 200, r.text
        assert r.headers["Cache-Control"] == "no-store"
        t = r.json()
        assert t["token_type"] == "bearer" and t["expires_in"] == 300
        assert t["scope"] == "system/Patient.rs system/Observation.rs"
        hdr, claims = (json.loads(unb64(p)) for p in t["access_token"].split(".")[:2])
        assert hdr["alg"] == "ES256" and hdr["kid"]
        assert claims["iss"] == built.root and claims["aud"] == built.base
        assert claims["client_id"] == built.client_id and claims["jti"]
        assert claims["exp"] - claims["iat"] == 300
        h = {"Authorization": "Bearer " + t["access_token"], "Content-Type": FHIR_JSON}
        r = requests.put(built.base + "/Patient/p1", headers=h,
                         json={"resourceType": "Patient", "id": "p1"})
        assert r.status_code == 403, r.text  # Patient.rs: no update
        r = requests.get(built.base + "/Patient", headers=h)
        assert r.status_code == 200, r.text
    assert requests.get(built.base + "/Patient").status_code == 401


def test_scope_intersection(built):
    # Observation.cruds is registered: .rs and .c within it; Encounter is not
    r = ask(built, assertion(built), "system/Observation.c system/Encounter.rs launch")
    assert r.status_code == 200, r.text
    tok = r.json()
    assert tok["scope"] == "system/Observation.c"
    h = {"Authorization": "Bearer " + tok["access_token"], "Content-Type": FHIR_JSON}
    r = requests.post(built.base + "/Observation", headers=h, json={
        "resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    assert r.status_code == 201, r.text
    assert requests.get(built.base + "/Encounter", headers=h).status_code == 403
    # a wider scope than registered is not granted
    d = refused(ask(built, assertion(built), "system/*.rs system/Patient.cruds"), 400,
                "invalid_scope")
    assert "none of the requested scopes" in d


def test_replayed_jti(built):
    a = assertion(built)
    assert ask(built, a).status_code == 200
    d = refused(ask(built, a), 401, "invalid_client")
    assert "used before" in d
    # another jti of the same content is fine
    assert ask(built, assertion(built)).status_code == 200


def test_replayed_jti_after_restart(tmp_path):
    jf = tmp_path / "jwks.json"
    jf.write_text(json.dumps({"keys": [rsa_jwk(RSA_KEY, "c-rsa")]}))
    data = tmp_path / "db"
    r = hortus("client", "add", "--jwks", str(jf), "--scope", "system/*.rs", str(data))
    assert r.returncode == 0, r.stderr
    s = Server(data, ["--auth-server"])
    s.client_id, s.token_url = r.stdout.strip(), s.root + "/auth/token"
    a = assertion(s)
    r1 = ask(s, a)
    assert r1.status_code == 200, r1.text
    key_before = requests.get(s.root + "/auth/jwks").json()
    assert_clean_exit(s)
    s2 = Server(data, ["--auth-server", "--auth-token-lifetime", "60"])
    s2.client_id, s2.token_url = s.client_id, s2.root + "/auth/token"
    # the key is kept across restarts ...
    assert requests.get(s2.root + "/auth/jwks").json() == key_before
    # ... and so is the jti (the new server has another port, so the assertion is
    # minted again for its endpoint, with the same jti)
    claims = json.loads(unb64(a.split(".")[1]))
    a2 = assertion(s2, jti=claims["jti"])
    d = refused(ask(s2, a2), 401, "invalid_client")
    assert "used before" in d
    r = ask(s2, assertion(s2))
    assert r.status_code == 200 and r.json()["expires_in"] == 60
    claims = json.loads(unb64(r.json()["access_token"].split(".")[1]))
    assert claims["exp"] - claims["iat"] == 60
    assert_clean_exit(s2)


def test_refusals(built):
    pub_pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    cases = [
        (assertion(built, "none"), "alg none"),
        (assertion(built, "HS256", key=pub_pem), "symmetric"),
        (assertion(built, "RS256"), "not supported here (RS384, ES384)"),
        (assertion(built, aud="https://elsewhere.example/token"), "aud"),
        (assertion(built, exp=int(time.time()) - 3600), "expired"),
        (assertion(built, exp=int(time.time()) + 3600), "ahead"),
        (assertion(built, jti=None), "jti"),
        (assertion(built, sub="someone-else"), "sub"),
        (assertion(built, iss="no-such-client", sub="no-such-client"), "unknown client"),
        (assertion(built, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
         "does not verify"),
        ("not-a-jwt", "no JWS"),
    ]
    for a, why in cases:
        d = refused(ask(built, a), 401, "invalid_client")
        assert why in d, (why, d)
    refused(ask(built, assertion(built), grant="authorization_code"), 400,
            "unsupported_grant_type")
    refused(ask(built, assertion(built), grant=None), 400, "invalid_request")
    refused(ask(built, assertion(built), atype="urn:other"), 400, "invalid_request")
    refused(ask(built, None), 400, "invalid_request")
    refused(ask(built, assertion(built), scope=None), 400, "invalid_scope")
    # a parameter twice
    r = requests.post(built.token_url, data="grant_type=client_credentials&grant_type=x",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    refused(r, 400, "invalid_request")
    # not a form
    r = requests.post(built.token_url, json={"grant_type": "client_credentials"})
    assert r.status_code == 415
    assert requests.get(built.token_url).status_code == 405


def test_jwks_and_discovery(built):
    r = requests.get(built.root + "/auth/jwks")
    assert r.status_code == 200
    keys = r.json()["keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "EC" and keys[0]["crv"] == "P-256"
    assert "d" not in keys[0]  # the public key only
    k = keys[0]
    canon = json.dumps({"crv": k["crv"], "kty": "EC", "x": k["x"], "y": k["y"]},
                       separators=(",", ":"), sort_keys=True)
    assert k["kid"] == b64(hashlib.sha256(canon.encode()).digest())
    c = requests.get(built.root + "/.well-known/smart-configuration").json()
    assert c["token_endpoint"] == built.token_url
    assert c["jwks_uri"] == built.root + "/auth/jwks"
    assert c["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert c["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert c["grant_types_supported"] == ["client_credentials"]
    assert "client-confidential-asymmetric" in c["capabilities"]
    assert c["issuer"] == built.root


def test_key_file_mode(built):
    p = os.path.join(str(built.data), "auth-key.pem")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    with open(p) as f:
        assert "PRIVATE KEY" in f.read()


def test_key_file_readable_by_others_refused(tmp_path):
    data = tmp_path / "db"
    s = Server(data, ["--auth-server"])
    assert_clean_exit(s)
    os.chmod(data / "auth-key.pem", 0o644)
    r = subprocess.run([BIN, "serve", "--data", str(data), "--auth-server", "--port",
                        str(free_port())], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "chmod 600" in r.stderr


def test_auth_server_needs_tls_or_loopback(tmp_path):
    r = subprocess.run([BIN, "serve", "--data", str(tmp_path / "db"), "--auth-server",
                        "--bind", "0.0.0.0", "--port", str(free_port())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "without TLS" in r.stderr
    r = subprocess.run([BIN, "serve", "--data", str(tmp_path / "db"), "--auth-server",
                        "--port", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--port" in r.stderr
    r = subprocess.run([BIN, "serve", "--data", str(tmp_path / "db"), "--auth-server",
                        "--auth-jwks", "x", "--auth-issuer", "a", "--auth-audience", "b"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2


def test_off_without_flag(server):
    assert requests.post(server.root + "/auth/token", data={"a": "b"}).status_code == 404
    assert requests.get(server.root + "/auth/jwks").status_code == 404


def test_client_add_list_remove(tmp_path, built):
    data = tmp_path / "db"
    jf = tmp_path / "jwks.json"
    jf.write_text(json.dumps({"keys": [ec_jwk(EC_KEY, "k1")]}))
    r = hortus("client", "add", "--jwks", str(jf), "--scope", "system/*.rs", "--name", "one",
               str(data))
    assert r.returncode == 0, r.stderr
    one = r.stdout.strip()
    r = hortus("client", "add", "--jwks", str(jf), "--scope", "system/Observation.read",
               str(data))
    two = r.stdout.strip()
    assert r.returncode == 0 and two != one
    lines = hortus("client", "list", str(data)).stdout.splitlines()
    assert lines == [f"{one}\tone\tsystem/*.rs", f"{two}\t\tsystem/Observation.read"]
    assert hortus("client", "remove", one, str(data)).returncode == 0
    assert hortus("client", "list", str(data)).stdout.splitlines() == [
        f"{two}\t\tsystem/Observation.read"]
    r = hortus("client", "remove", one, str(data))
    assert r.returncode == 1 and "no client" in r.stderr
    # bad input: exit code 2 and a message
    bad_scope = hortus("client", "add", "--jwks", str(jf), "--scope", "system/Patient.rx",
                       str(data))
    assert bad_scope.returncode == 2 and "bad scope 'system/Patient.rx'" in bad_scope.stderr
    assert hortus("client", "add", "--jwks", str(jf), "--scope", "patient/*.rs",
                  str(data)).returncode == 2
    r = hortus("client", "add", "--jwks", str(tmp_path / "nope.json"), "--scope",
               "system/*.rs", str(data))
    assert r.returncode == 2 and "cannot read" in r.stderr
    p256 = tmp_path / "p256.json"  # ES256 only: not an RS384/ES384 key
    p256.write_text(json.dumps({"keys": [ec_jwk(ec.generate_private_key(ec.SECP256R1()),
                                                "k", "P-256", 32)]}))
    r = hortus("client", "add", "--jwks", str(p256), "--scope", "system/*.rs", str(data))
    assert r.returncode == 2 and "RS384 or ES384" in r.stderr
    private = tmp_path / "private.json"  # a private JWK never enters the registry
    jwk = ec_jwk(EC_KEY, "k")
    jwk["d"] = b64n(EC_KEY.private_numbers().private_value, 48)
    private.write_text(json.dumps({"keys": [jwk]}))
    r = hortus("client", "add", "--jwks", str(private), "--scope", "system/*.rs", str(data))
    assert r.returncode == 2 and "private key" in r.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert hortus("client", "add", "--jwks", str(junk), "--scope", "system/*.rs",
                  str(data)).returncode == 2
    assert hortus("client", "add", "--scope", "system/*.rs", str(data)).returncode == 2
    assert hortus("client", "frobnicate", str(data)).returncode == 2
    # a client removed while the server runs gets no more tokens
    r = hortus("client", "add", "--jwks", str(built.jwks_file), "--scope", "system/*.rs",
               str(built.data))
    cid = r.stdout.strip()
    now = int(time.time())
    mint = lambda: jws({"alg": "RS384", "kid": "c-rsa"},
                       {"iss": cid, "sub": cid, "aud": built.token_url, "exp": now + 200,
                        "jti": str(uuid.uuid4())}, RSA_KEY, "RS384")
    assert ask(built, mint()).status_code == 200
    assert hortus("client", "remove", cid, str(built.data)).returncode == 0
    assert "unknown client" in refused(ask(built, mint()), 401, "invalid_client")


# ---- JWKS from a URL -----------------------------------------------------------------

class Idp:
    """A tiny identity provider: GET serves self.jwks (or fails), POST introspects."""

    def __init__(self):
        self.jwks = {"keys": []}
        self.fail = False
        self.gets = 0
        self.posts = []
        self.active = {}  # token -> introspection answer
        idp = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                idp.gets += 1
                if idp.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                body = json.dumps(idp.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                form = urllib.parse.parse_qs(self.rfile.read(n).decode())
                idp.posts.append((self.headers.get("Authorization"), form))
                tok = form.get("token", [""])[0]
                body = json.dumps(idp.active.get(tok, {"active": False})).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


ISS = "https://idp.example.org"
AUD = "https://fhir.example.org/fhir"


def idp_token(key, kid, scope="system/*.rs", alg="RS256"):
    now = int(time.time())
    return jws({"alg": alg, "kid": kid}, {"iss": ISS, "aud": AUD, "exp": now + 600,
                                          "scope": scope, "jti": str(uuid.uuid4())}, key, alg)


@pytest.fixture
def idp():
    i = Idp()
    yield i
    i.close()


def test_jwks_url_rotation_and_rate_limit(tmp_path, idp):
    k1, k2, k3 = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
                  for _ in range(3))
    idp.jwks = {"keys": [rsa_jwk(k1, "k1")]}
    s = Server(tmp_path / "db", ["--auth-jwks", idp.url + "/jwks.json", "--auth-issuer", ISS,
                                 "--auth-audience", AUD])
    try:
        assert idp.gets == 1
        get = lambda tok: requests.get(s.base + "/Patient",
                                       headers={"Authorization": "Bearer " + tok})
        assert get(idp_token(k1, "k1")).status_code == 200
        assert idp.gets == 1  # known kid: no fetch
        # the provider rotates: k2 is new, k1 gone. An unknown kid refetches once.
        idp.jwks = {"keys": [rsa_jwk(k2, "k2")]}
        assert get(idp_token(k2, "k2")).status_code == 200
        assert idp.gets == 2
        assert get(idp_token(k1, "k1")).status_code == 401  # gone with the refetch
        # rotated again within the minute: refused, and a flood of unknown kids does
        # not reach the provider (one refetch a minute at most)
        idp.jwks = {"keys": [rsa_jwk(k3, "k3")]}
        r = get(idp_token(k3, "k3"))
        assert r.status_code == 401 and "unknown kid" in r.text
        for i in range(20):
            assert get(idp_token(k3, f"flood-{i}")).status_code == 401
        assert idp.gets == 2
        assert get(idp_token(k2, "k2")).status_code == 200
    finally:
        assert_clean_exit(s)


def test_jwks_url_failure_keeps_keys(tmp_path, idp):
    k1, k2 = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    idp.jwks = {"keys": [rsa_jwk(k1, "k1")]}
    s = Server(tmp_path / "db", ["--auth-jwks", idp.url + "/jwks", "--auth-issuer", ISS,
                                 "--auth-audience", AUD])
    try:
        idp.fail = True
        h = lambda tok: {"Authorization": "Bearer " + tok}
        r = requests.get(s.base + "/Patient", headers=h(idp_token(k2, "k2")))
        assert r.status_code == 401
        assert idp.gets == 2  # the refetch was tried, and failed
        r = requests.get(s.base + "/Patient", headers=h(idp_token(k1, "k1")))
        assert r.status_code == 200, r.text
        assert "keeping the JWKS" in s.output()
    finally:
        assert_clean_exit(s)


def test_jwks_url_unreachable_at_start(tmp_path, idp):
    idp.fail = True
    r = subprocess.run([BIN, "serve", "--data", str(tmp_path / "db"), "--port", "0",
                        "--auth-jwks", idp.url + "/jwks", "--auth-issuer", ISS,
                        "--auth-audience", AUD], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "HTTP 500" in r.stderr


# ---- introspection ---------------------------------------------------------------------

def test_introspection(tmp_path, idp):
    now = int(time.time())
    idp.active = {
        "opaque-good": {"active": True, "scope": "system/Patient.rs", "exp": now + 120,
                        "client_id": "c1"},
        "opaque-patient": {"active": True, "scope": "patient/Patient.rs", "patient": "p1",
                           "exp": now + 120},
        "opaque-expired": {"active": True, "scope": "system/*.rs", "exp": now - 10},
        "opaque-badpatient": {"active": True, "scope": "patient/*.rs", "patient": "a b",
                              "exp": now + 120},
    }
    s = Server(tmp_path / "db", ["--auth-introspect", idp.url + "/introspect",
                                 "--auth-introspect-client", "hortus:s3cret"])
    try:
        get = lambda tok, path="/Patient": requests.get(
            s.base + path, headers={"Authorization": "Bearer " + tok})
        assert get("opaque-good").status_code == 200
        auth, form = idp.posts[0]
        assert form == {"token": ["opaque-good"]}
        assert auth == "Basic " + base64.b64encode(b"hortus:s3cret").decode()
        # cached: a second request does not introspect again
        assert get("opaque-good").status_code == 200
        assert len(idp.posts) == 1
        assert get("opaque-good", "/Observation").status_code == 403  # scope
        r = get("opaque-bad")
        assert r.status_code == 401 and "not active" in r.text
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
        assert get("opaque-patient", "/Patient/p1").status_code in (403, 404)
        assert get("opaque-patient", "/Patient/p2").status_code == 403
        assert requests.get(s.base + "/Patient").status_code == 401
        r = get("opaque-expired")
        assert r.status_code == 401 and "expired" in r.text
        r = get("opaque-badpatient")
        assert r.status_code == 401 and "patient claim" in r.text
        # a JWT-shaped token is introspected too when there is no JWKS
        jwt_like = jws({"alg": "RS256", "kid": "x"}, {"sub": "a"}, RSA_KEY, "RS256")
        idp.active[jwt_like] = {"active": True, "scope": "system/Patient.rs"}
        assert get(jwt_like).status_code == 200
    finally:
        assert_clean_exit(s)


def test_introspection_endpoint_down(tmp_path):
    s = Server(tmp_path / "db", ["--auth-introspect", f"http://127.0.0.1:{free_port()}/x",
                                 "--auth-introspect-client", "a:b"])
    try:
        r = requests.get(s.base + "/Patient", headers={"Authorization": "Bearer opaque"})
        assert r.status_code == 503, r.text
        assert "did not answer" in r.text
    finally:
        assert_clean_exit(s)


def test_introspection_options(tmp_path):
    for args in (["--auth-introspect", "http://x"],
                 ["--auth-introspect", "ftp://x", "--auth-introspect-client", "a:b"],
                 ["--auth-introspect", "http://x", "--auth-introspect-client", "nocolon"]):
        r = subprocess.run([BIN, "serve", "--data", str(tmp_path / "db"), *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, args


def test_built_in_server_over_tls(tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(tmp_path / "s.key"), "-out", str(tmp_path / "s.crt"),
                    "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    jf = tmp_path / "jwks.json"
    jf.write_text(json.dumps({"keys": [ec_jwk(EC_KEY, "c-ec")]}))
    data = tmp_path / "db"
    cid = hortus("client", "add", "--jwks", str(jf), "--scope", "system/*.rs",
                 str(data)).stdout.strip()
    port = free_port()
    log = open(tmp_path / "tls.log", "wb")
    proc = subprocess.Popen([BIN, "serve", "--port", str(port), "--data", str(data),
                             "--auth-server", "--tls-cert", str(tmp_path / "s.crt"),
                             "--tls-key", str(tmp_path / "s.key")],
                            stdout=log, stderr=subprocess.STDOUT)
    root, ca = f"https://127.0.0.1:{port}", str(tmp_path / "s.crt")
    try:
        for _ in range(300):
            assert proc.poll() is None, (tmp_path / "tls.log").read_text()
            try:
                if requests.get(root + "/healthz", verify=ca, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        c = requests.get(root + "/.well-known/smart-configuration", verify=ca).json()
        assert c["issuer"] == root and c["token_endpoint"] == root + "/auth/token"
        now = int(time.time())
        a = jws({"alg": "ES384", "kid": "c-ec"}, {"iss": cid, "sub": cid,
                                                 "aud": root + "/auth/token", "exp": now + 60,
                                                 "jti": "tls-1"}, EC_KEY, "ES384")
        r = requests.post(root + "/auth/token", verify=ca, data={
            "grant_type": "client_credentials", "scope": "system/Patient.rs",
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": a})
        assert r.status_code == 200, r.text
        tok = r.json()["access_token"]
        assert json.loads(unb64(tok.split(".")[1]))["aud"] == root + "/fhir"
        r = requests.get(root + "/fhir/Patient", verify=ca,
                         headers={"Authorization": "Bearer " + tok})
        assert r.status_code == 200, r.text
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        log.close()
    out = (tmp_path / "tls.log").read_text(errors="replace")
    assert "Sanitizer" not in out and "runtime error" not in out, out
