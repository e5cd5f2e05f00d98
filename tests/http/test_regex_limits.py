"""Regular expressions written by a client cost bounded time and memory.

FHIRPath matches()/matchesFull()/replaceMatches() take patterns from whoever sends the
expression: `hortus fhirpath` on the command line, and the operation paths of a
FHIRPath Patch over HTTP. With glibc's regcomp, the 258-byte patch whose path held
'8' followed by 20 '+' took a server from 13 MB to 731 MB (1.3 GB in the ASan build)
and 24 of them exhausted 4 GB; now such a pattern is a compile error, and a pattern
that makes the matcher backtrack or rescan without end stops at the FP_REGEX_*
limits or at the evaluation's step budget (docs/LIMITS.md).

Bounds are generous (this binary runs under AddressSanitizer, and the machine may be
busy); each one fails by a wide margin with the old engine, as noted per case.
"""
import json
import os
import signal
import subprocess
import time

import pytest
import requests

from conftest import BIN, FHIR_JSON, assert_outcome, create

CLI_SECONDS = 30         # each case takes well under a second
CLI_MAX_RSS_KB = 200 * 1024  # a run needs ~20-40 MB here; glibc took 1.3 GB for 20 '+'
SERVER_GROWTH_KB = 100 * 1024

PLUS20 = "8" + "+" * 20
PLUS30 = "8" + "+" * 30


def run_cli(args):
    """Run `hortus fhirpath ARGS`; return (exit code, stderr, seconds, peak RSS in KiB)
    of that one child. os.wait4 gives the child's own rusage, where RUSAGE_CHILDREN
    would be the largest of every server this session has reaped. Linux counts in a
    child's ru_maxrss the pages it had from the fork, so the figure is at least the
    RSS of this pytest process (~40 MB): an upper bound, which is what is checked."""
    t0 = time.monotonic()
    p = subprocess.Popen([BIN, "fhirpath", *args], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    # stderr is small (one message), so it cannot fill the pipe before the exit
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - t0 > CLI_SECONDS:
            p.send_signal(signal.SIGKILL)
            pid, status, ru = os.wait4(p.pid, 0)
            p.returncode = -9
            pytest.fail(f"hortus fhirpath {args[-1][:80]!r} still running after "
                        f"{CLI_SECONDS} s, {ru.ru_maxrss} KiB")
        time.sleep(0.01)
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode("utf-8", "replace")
    p.stderr.close()
    return p.returncode, err, time.monotonic() - t0, ru.ru_maxrss


def write_resource(tmp_path, gender):
    f = tmp_path / "patient.json"
    f.write_text(json.dumps({"resourceType": "Patient", "id": "p", "gender": gender}))
    return str(f)


# (name, arguments, what stderr must say). With glibc each of these either succeeded
# (exit 0: '8'+20 with [true] after 1.3 GB, (a+)+$ and a*[0-9] with [false], the
# nesting and the long pattern compiled) or ran out of memory or time ('8'+30).
CLI_CASES = [
    ("8 and 20 +", [f"'8'.matches('{PLUS20}')"], "invalid regular expression"),
    ("8 and 30 +", [f"'8'.matches('{PLUS30}')"], "invalid regular expression"),
    ("8 and 20 + built at evaluation", ["'8'.matches('8' & '" + "+" * 20 + "')"],
     "invalid regular expression"),
    ("8 and 20 + in replaceMatches", [f"'8'.replaceMatches('{PLUS20}', 'x')"],
     "invalid regular expression"),
    ("(a+)+$", ["'" + "a" * 40 + "b'.matches('(a+)+$')"], "too costly"),
    ("(a+)+$ in replaceMatches", ["'" + "a" * 40 + "b'.replaceMatches('(a+)+$', '')"],
     "too costly"),
    ("(a|aa)*c anchored", ["'" + "a" * 80 + "cx'.matchesFull('(a|aa)*c')"], "too costly"),
    ("1000 nested groups", ["'a'.matches('" + "(" * 1000 + "a" + ")" * 1000 + "')"],
     "parentheses"),
    ("pattern of 5000 bytes", ["'a'.matches('" + "a" * 5000 + "')"], "longer than the limit"),
]


@pytest.mark.parametrize("name,args,says", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_hostile_pattern(name, args, says):
    code, err, secs, rss = run_cli(args)
    assert code == 1, (name, code, err)
    assert says in err, (name, err)
    assert secs < CLI_SECONDS
    assert rss < CLI_MAX_RSS_KB, f"{name}: peak RSS {rss} KiB"


@pytest.mark.parametrize("pattern,says", [
    # every start position rescans the rest: quadratic with hardly any backtracking
    # (glibc: linear, so [false]; PCRE2 without the step accounting: 2 s)
    ("a*[0-9]", "work limit"),
    # the same with a group: glibc took 17 s, PCRE2 without limits 86 s
    ("(a|c)*[0-9]", "too costly"),
])
def test_cli_long_subject(tmp_path, pattern, says):
    res = write_resource(tmp_path, "a" * 100_000)
    code, err, secs, rss = run_cli(["--resource", res, f"gender.matches('{pattern}')"])
    assert code == 1, (code, err)
    assert says in err, err
    assert rss < CLI_MAX_RSS_KB, f"peak RSS {rss} KiB"


def test_cli_linear_pattern_on_long_subject_still_matches(tmp_path):
    res = write_resource(tmp_path, "a" * 100_000 + "1")
    p = subprocess.run([BIN, "fhirpath", "--resource", res,
                        "gender.matches('^a+[0-9]$') and gender.matches('1')"],
                       capture_output=True, text=True, timeout=CLI_SECONDS)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [True]


def proc_kb(pid, field):
    """A field of /proc/PID/status in KiB: VmRSS now, VmHWM the peak so far."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def fp_patch(path):
    return {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": path},
        {"name": "value", "valueString": "x"}]}]}


def test_fhirpath_patch_with_hostile_regex(make_server):
    # a server of its own, so that its peak RSS (VmHWM) starts from this test alone
    s = make_server()
    http = requests.Session()
    hdr = {"Content-Type": FHIR_JSON}
    pid = s.proc.pid
    p = create(http, s.base, {"resourceType": "Patient", "gender": "male",
                              "name": [{"family": "a" * 40 + "b"}]}).json()
    url = f"{s.base}/Patient/{p['id']}"
    rss0, hwm0 = proc_kb(pid, "VmRSS"), proc_kb(pid, "VmHWM")

    # the request of the incident: rejected when the path is compiled
    body = json.dumps(fp_patch(f"Patient.name.family.where($this.matches('{PLUS20}'))"))
    assert len(body) < 300
    oo = assert_outcome(http.patch(url, data=body, headers=hdr, timeout=60), 400)
    assert "regular expression" in json.dumps(oo), oo
    # the same pattern built while the path is evaluated
    oo = assert_outcome(http.patch(url, json=fp_patch(
        "Patient.name.family.where($this.matches('8' & '" + "+" * 30 + "'))"),
        headers=hdr, timeout=60), 400)
    assert "regular expression" in json.dumps(oo), oo
    # a valid pattern that backtracks exponentially over the stored value: with glibc
    # it was simply false (and a 400 for a path matching nothing), so the test is the
    # reason given
    oo = assert_outcome(http.patch(url, json=fp_patch(
        "Patient.name.family.where($this.matches('(a+)+$'))"), headers=hdr, timeout=60), 400)
    assert "too costly" in json.dumps(oo), oo

    rss1, hwm1 = proc_kb(pid, "VmRSS"), proc_kb(pid, "VmHWM")
    assert rss1 - rss0 < SERVER_GROWTH_KB, (rss0, rss1)
    assert hwm1 - hwm0 < SERVER_GROWTH_KB, (hwm0, hwm1)
    # nothing was written, and the server still serves
    got = http.get(url, timeout=30).json()
    assert got["meta"]["versionId"] == "1"
    assert got["name"][0]["family"] == "a" * 40 + "b"
    http.close()
