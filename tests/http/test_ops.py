"""CapabilityStatement, /healthz and /metrics."""
import re

from conftest import FHIR_JSON, create


def test_metadata(http, base):
    r = http.get(f"{base}/metadata")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith(FHIR_JSON)
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["kind"] == "instance" and cs["status"] == "active"
    assert "application/fhir+json" in cs["format"]
    assert cs["software"]["name"] == "hortus" and cs["software"]["version"]
    assert cs["implementation"]["url"] == base
    rest = cs["rest"][0]
    assert rest["mode"] == "server"
    assert {"code": "history-system"} in rest["interaction"]
    assert {"code": "transaction"} in rest["interaction"]
    assert {"code": "batch"} in rest["interaction"]
    types = {x["type"]: x for x in rest["resource"]}
    # every concrete R4 resource type, nothing abstract
    assert len(types) >= 140
    assert "DomainResource" not in types and "Resource" not in types
    for t in ["Patient", "Observation", "Bundle", "Questionnaire", "MedicationRequest"]:
        assert t in types
    pat = types["Patient"]
    assert {"name": "validate",
            "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"} in pat["operation"]
    codes = {i["code"] for i in pat["interaction"]}
    assert {"read", "vread", "update", "delete", "create", "history-instance",
            "history-type", "search-type", "patch"} <= codes
    assert pat["versioning"] == "versioned-update" and pat["updateCreate"] is True
    sp = {p["name"]: p for p in pat["searchParam"]}
    assert sp["birthdate"]["type"] == "date"
    assert sp["family"]["type"] == "string"
    assert sp["_id"]["type"] == "token"
    obs = {p["name"]: p["type"] for p in types["Observation"]["searchParam"]}
    assert obs["value-quantity"] == "quantity" and obs["subject"] == "reference"
    # listed is what a search accepts: composites are, and near, the one special parameter
    assert obs["component-code-value-quantity"] == "composite"
    loc = {p["name"]: p for p in types["Location"]["searchParam"]}
    assert loc["near"]["type"] == "special" and "address" in loc
    assert "latitude|longitude" in loc["near"]["documentation"]
    doc = {p["name"]: p["documentation"] for p in types["Observation"]["searchParam"]}
    assert "prefixes: eq, ne, gt, lt, ge, le, sa, eb, ap" in doc["date"]
    assert ":not" in doc["code"] and ":exact" in sp["family"]["documentation"]


def test_metadata_pretty_same_content(http, base):
    a = http.get(f"{base}/metadata").json()
    b = http.get(f"{base}/metadata", params={"_pretty": "true"})
    assert b.content.count(b"\n") > 1000
    assert b.json() == a


def test_healthz(http, server):
    r = http.get(server.root + "/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def metric(text, name, labels=""):
    m = re.search(r"^" + re.escape(name + labels) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_metrics(http, server, base):
    before = http.get(server.root + "/metrics").text
    create(http, base, {"resourceType": "Patient"})
    http.get(f"{base}/Patient/not-there")
    r = http.get(server.root + "/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    t = r.text
    c0 = metric(before, "hortus_http_requests_total", '{interaction="create",status="201"}') or 0
    assert metric(t, "hortus_http_requests_total", '{interaction="create",status="201"}') >= c0 + 1
    assert metric(t, "hortus_http_requests_total", '{interaction="read",status="404"}') >= 1
    assert "# TYPE hortus_http_request_duration_seconds histogram" in t
    inf = metric(t, "hortus_http_request_duration_seconds_bucket", '{interaction="create",le="+Inf"}')
    cnt = metric(t, "hortus_http_request_duration_seconds_count", '{interaction="create"}')
    assert inf == cnt and cnt >= 1
    assert metric(t, "hortus_store_commits_total") >= 1
    assert metric(t, "hortus_store_fsyncs_total") >= 1
    assert metric(t, "hortus_store_db_size_bytes") > 0
    assert metric(t, "hortus_resources") >= 1
    assert metric(t, "hortus_http_connections") >= 1
    assert metric(t, "hortus_http_writes_in_flight") == 0
    # buckets are cumulative
    buckets = [float(v) for v in re.findall(
        r'^hortus_http_request_duration_seconds_bucket\{interaction="create",le="[^"]+"\} (\S+)$',
        t, re.M)]
    assert buckets == sorted(buckets)


def test_metrics_commit_histogram(http, server, base):
    before = http.get(server.root + "/metrics").text
    for _ in range(3):
        create(http, base, {"resourceType": "Patient"})
    t = http.get(server.root + "/metrics").text
    assert "# TYPE hortus_store_commit_seconds histogram" in t
    commits = metric(t, "hortus_store_commits_total")
    # every durable commit is counted in the histogram, once
    assert metric(t, "hortus_store_commit_seconds_count") == commits
    assert metric(t, "hortus_store_commit_seconds_bucket", '{le="+Inf"}') == commits
    assert (metric(t, "hortus_store_commit_seconds_count")
            >= (metric(before, "hortus_store_commit_seconds_count") or 0) + 1)
    buckets = [float(v) for v in re.findall(
        r'^hortus_store_commit_seconds_bucket\{le="[^"]+"\} (\S+)$', t, re.M)]
    assert len(buckets) == 13 and buckets == sorted(buckets)
    total = metric(t, "hortus_store_commit_seconds_sum")
    longest = metric(t, "hortus_store_commit_max_seconds")
    assert 0 < longest <= total
    assert metric(t, "hortus_store_map_resizes_total") >= 0
    assert metric(t, "hortus_store_apply_seconds_total") > 0


def test_unroutable_requests_are_counted_as_other(http, server, base):
    http.get(f"{base}/NoSuchType/1")
    http.get(server.root + "/no/such/path")
    t = http.get(server.root + "/metrics").text
    assert metric(t, "hortus_http_requests_total", '{interaction="other",status="404"}') >= 2
