"""Conformance of emberscope's profile uploads with the real ddtrace (issue 3).

The same workload (tests/conformance/workload.py: CPU in the main thread, a
sleeping thread, a few raised exceptions, a lock and some allocations; ~6 s,
upload interval 2 s) runs under ``ddtrace-run`` (ddtrace from PyPI, see
conftest.py) and under ``emberscope-run``, each against its own loopback
capture server (tests/conformance/capture.py). The tests then compare the
STRUCTURE of what arrives: request line and header names, multipart parts,
``event.json`` keys and their order, ``tags_profiler`` keys and their order,
``start``/``end`` format and tiling, ``family``/``version``,
``info.profiler.settings``, code provenance entries, pprof sample types and
units, period type, label keys and value kinds per sample type, and the shape
of frames.

Every structural difference is an id computed by ``structure.compare``;
``ALLOWED`` below lists the accepted ones, each with its reason, and each is a
row of docs/COMPATIBILITY.md. A difference that is not allow-listed fails
``test_structural_differences_are_allow_listed``; an allow-list entry marked
``strict`` that no longer occurs fails too (remove it and its row).

The other tests exercise the transport against capture servers that behave
badly: agentless mode (with and without an API key), a unix-socket agent, an
agent answering 503 before recovering, and a hanging agent.
"""

import fnmatch
import json
import os
import re
import time

import pytest

from . import capture
from . import structure as S
from .conftest import ROOT, WORKLOAD, clean_env, finish_app, start_app

pytestmark = pytest.mark.usefixtures("zstd")

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixtures", "ddtrace-4.16-upload")
COMPATIBILITY_MD = os.path.join(ROOT, "docs", "COMPATIBILITY.md")

SERVICE, ENV, VERSION = "conformance-app", "test", "1.2.3"
COMMON_ENV = {
    "DD_PROFILING_ENABLED": "true",
    "DD_PROFILING_UPLOAD_INTERVAL": "2",
    "DD_SERVICE": SERVICE,
    "DD_ENV": ENV,
    "DD_VERSION": VERSION,
    "DD_TAGS": "team:perf,region:eu",
    "DD_PROFILING_TAGS": "ptag:pval",
    "WORKLOAD_SECONDS": "6",
    # the lock and memory collectors run at their defaults (on in both)
}

EXPECTED_PARTS = [
    ("event", "event.json", "application/json"),
    ("code-provenance.json", "code-provenance.json", None),
    ("profile.pprof", "profile.pprof", None),
]
EXPECTED_EVENT_KEYS = ["attachments", "tags_profiler", "start", "end", "family", "version",
                       "endpoint_counts", "process_tags", "internal", "info"]
EXPECTED_TAG_KEYS = ["env", "service", "version", "language", "runtime", "runtime-id",
                     "runtime_version", "profiler_version", "process_id", "profiler_config",
                     "ptag", "region", "team", "runtime_platform"]
EXPECTED_SAMPLE_TYPES = [
    "cpu-time/nanoseconds", "cpu-samples/count", "wall-time/nanoseconds", "wall-samples/count",
    "exception-samples/count", "lock-acquire-wait/nanoseconds", "lock-acquire/count",
    "lock-release-hold/nanoseconds", "lock-release/count", "alloc-space/bytes",
    "alloc-samples/count", "heap-space/bytes", "heap-live-samples/count", "gpu-time/nanoseconds",
    "gpu-samples/count", "gpu-space/bytes", "gpu-alloc-samples/count", "gpu-flops/count",
    "gpu-flops-samples/count"]
EXPECTED_HEADER_NAMES = {"accept", "connection", "content-length", "content-type",
                         "dd-evp-origin", "dd-evp-origin-version", "host", "user-agent"}
THREAD_LABELS = {"thread id": {"num"}, "thread native id": {"num"}, "thread name": {"str"},
                 "end_timestamp_ns": {"num"}}

# ------------------------------------------------------------------------------------------
# Accepted structural differences: id (fnmatch pattern) -> (reason, strict).
# strict: the difference is deterministic, so an entry that stops matching is stale and
# fails the test (remove it together with its row in docs/COMPATIBILITY.md).
# Every key must appear, in backticks, in docs/COMPATIBILITY.md.
# ------------------------------------------------------------------------------------------
_DD_ONLY = "ddtrace-specific (no emberscope equivalent); see docs/COMPATIBILITY.md"
_FIX = "FIX REQUESTED: emberscope has this setting but does not dump it under ddtrace's name"
ALLOWED = {
    # transport
    "header.value:user-agent":
        ("identifies the HTTP client (libdatadog 'DDProf/1.0.0' vs 'emberscope/<v>'); "
         "receivers do not parse it", True),
    # tags_profiler / profiler_config
    "profiler_config.missing:exp_dd":
        ("'exp_dd' means 'exported by libdatadog'; emberscope does not use libdatadog", True),
    "profiler_config.extra:exception":
        ("emberscope samples exceptions on CPython 3.11 too; ddtrace only on 3.12+", False),
    "samples.only_emberscope:exception-samples/count":
        ("emberscope samples exceptions on CPython 3.11 too; ddtrace only on 3.12+", False),
    # internal (self-telemetry: implementation-specific counters)
    "internal.missing:string_table_count": (_DD_ONLY, True),
    "internal.missing:fast_copy_memory_*": (_DD_ONLY, True),
    "internal.missing:heap_tracker_*": (_DD_ONLY, True),
    "internal.missing:asyncio_task_count": (_DD_ONLY, True),
    "internal.missing:greenlet_count": (_DD_ONLY, True),
    "internal.missing:libdatadog_version": (_DD_ONLY, True),
    # info.profiler.settings (dump of each profiler's own settings)
    "settings.missing:enable_asserts": (_DD_ONLY, True),
    "settings.missing:sample_pool_capacity": (_DD_ONLY, True),
    "settings.missing:ignore_profiler": (_DD_ONLY, True),
    "settings.missing:endpoint_collection": (_DD_ONLY, True),
    "settings.missing:stack.adaptive_sampling*": (_DD_ONLY, True),
    "settings.missing:stack.max_threads": (_DD_ONLY, True),
    "settings.missing:stack.max_tasks": (_DD_ONLY, True),
    "settings.missing:stack.uvloop": (_DD_ONLY, True),
    "settings.missing:stack.native_frames": (_DD_ONLY, True),
    "settings.missing:stack.gc_enabled": (_DD_ONLY, True),
    "settings.missing:stack.fast_copy": (_DD_ONLY, True),
    "settings.missing:lock.name_inspect_dir": (_DD_ONLY, True),
    "settings.missing:lock.exclude_modules": (_DD_ONLY, True),
    "settings.missing:memory.events_buffer": (_DD_ONLY, True),
    "settings.missing:memory.mem_domain_enabled": (_DD_ONLY, True),
    "settings.missing:native_heap.enabled": (_DD_ONLY, True),
    "settings.missing:pytorch.*": (_DD_ONLY, True),
    "settings.missing:exception.collect_message": (_DD_ONLY, True),
    # same settings, not (yet) dumped under ddtrace's names: fix requested
    # code provenance
    "provenance.entry_key_order":
        ("JSON object member order carries no meaning; emberscope writes kind,name,paths,"
         "version (serde_json sorts), ddtrace kind,name,version,paths", True),
}


def allowed(diff):
    return [pat for pat in ALLOWED if fnmatch.fnmatchcase(diff, pat)]


# ------------------------------------------------------------------------------------------
# the pair of runs
# ------------------------------------------------------------------------------------------

class Run(object):
    def __init__(self, name, result, server):
        self.name = name
        self.result = result
        self.server = server
        self.requests = list(server.requests)
        self.uploads = [S.Upload.from_request(r) for r in server.profiles()]

    def describe(self):
        r = self.result
        return ("%s: exit %s, %d requests (%s)\nstdout:\n%s\nstderr:\n%s"
                % (self.name, r.returncode, len(self.requests),
                   ", ".join("%s %s" % (q.method, q.path) for q in self.requests),
                   r.stdout[-2000:], r.stderr[-4000:]))


@pytest.fixture(scope="session")
def pair(ddtrace_venv, emberscope_run, tmp_path_factory, zstd):
    """(reference Run, emberscope Run): the workload under both, at the same time."""
    cwd = tmp_path_factory.mktemp("conformance-cwd")
    runs = {}
    procs = {}
    servers = {"ddtrace": capture.CaptureServer(), "emberscope": capture.CaptureServer()}
    try:
        cmds = {
            "ddtrace": [os.path.join(ddtrace_venv, "bin", "ddtrace-run"),
                        os.path.join(ddtrace_venv, "bin", "python"), WORKLOAD],
            "emberscope": [emberscope_run[0], emberscope_run[1], WORKLOAD],
        }
        for name, cmd in cmds.items():
            env = clean_env(DD_TRACE_AGENT_URL=servers[name].url, **COMMON_ENV)
            procs[name] = start_app(cmd, env, cwd)
        for name, (proc, started) in procs.items():
            result = finish_app(proc, started, timeout=120)
            time.sleep(0.2)
            runs[name] = Run(name, result, servers[name])
    finally:
        for s in servers.values():
            s.close()
    for run in runs.values():
        assert run.result.returncode == 0, run.describe()
        assert "workload done" in run.result.stdout, run.describe()
        assert len(run.uploads) >= 3, "expected >= 3 uploads in 6 s\n" + run.describe()
    return runs["ddtrace"], runs["emberscope"]


def both(pair):
    return list(pair)


# ------------------------------------------------------------------------------------------
# structure, asserted for both (what conforms)
# ------------------------------------------------------------------------------------------

def test_request_line_and_headers(pair):
    for run in both(pair):
        for u in run.uploads:
            req = u.request
            assert (req.method, req.path) == ("POST", "/profiling/v1/input"), run.name
            assert set(req.header_names) == EXPECTED_HEADER_NAMES, (run.name, req.headers)
            assert re.match(r"^multipart/form-data; boundary=", u.content_type), run.name
            assert S.BOUNDARY.match(capture.boundary_of(u.content_type)), u.content_type
            assert int(req.header("content-length")) == len(req.body)
            assert req.header("connection").lower() == "close"
            assert req.header("accept") == "*/*"
            # origin version = the profiler version in the tags
            assert req.header("dd-evp-origin-version") == u.tag("profiler_version"), run.name
            assert req.header("dd-api-key") is None  # agent mode: no key
    ref, emb = pair
    assert {u.request.header("dd-evp-origin") for u in ref.uploads} == {"dd-trace-py"}
    assert {u.request.header("dd-evp-origin") for u in emb.uploads} == {"emberscope"}


def test_multipart_parts(pair):
    for run in both(pair):
        for u in run.uploads:
            shape = [(p.name, p.filename, p.content_type) for p in u.parts]
            assert shape == EXPECTED_PARTS, (run.name, u.parts)
            assert [p.header("content-disposition") for p in u.parts] == [
                'form-data; name="%s"; filename="%s"' % (n, f) for n, f, _ in EXPECTED_PARTS]
            assert u.event_raw[:1] == b"{"  # event.json is not compressed
            for p in u.parts[1:]:
                assert p.data[:4] == S.ZSTD_MAGIC, (run.name, p)
            assert list(u.event["attachments"]) == [p.name for p in u.parts[1:]]


def test_event_keys_and_values(pair):
    with open(os.path.join(FIXTURE, "event.json")) as f:
        fixture_keys = list(json.load(f).keys())
    assert fixture_keys == EXPECTED_EVENT_KEYS
    for run in both(pair):
        for u in run.uploads:
            assert u.event.keys() == EXPECTED_EVENT_KEYS, (run.name, u.event.keys())
            assert u.event["family"] == "python"
            assert u.event["version"] == "4"
            assert u.event["endpoint_counts"] is None  # no spans in the workload
            assert S.value_kind(u.event["internal"]) == "object"
            settings = u.event["info"]["profiler"]["settings"]
            assert S.value_kind(settings) == "object" and len(settings) > 5, run.name
    ref, emb = pair
    # process_tags: same entry point, same cwd -> the same string
    assert {u.event["process_tags"] for u in emb.uploads} == {ref.uploads[0].event["process_tags"]}
    # internal: the counters both profilers have carry numbers in both
    for key in ("sample_count", "sampling_event_count", "sample_capture_cpu_time_us",
                "copy_memory_error_count"):
        for run in both(pair):
            assert all(isinstance(u.event["internal"][key], int) for u in run.uploads), key


def test_tags_profiler(pair):
    ref, emb = pair
    for run in both(pair):
        runtime_ids = set()
        for u in run.uploads:
            assert u.tag_keys == EXPECTED_TAG_KEYS, (run.name, u.event["tags_profiler"])
            assert " " not in u.event["tags_profiler"]
            assert u.tag("env") == ENV and u.tag("service") == SERVICE
            assert u.tag("version") == VERSION
            assert (u.tag("language"), u.tag("runtime")) == ("python", "CPython")
            assert re.match(r"^[0-9a-f]{32}$", u.tag("runtime-id")), u.tag("runtime-id")
            runtime_ids.add(u.tag("runtime-id"))
            assert u.tag("process_id") == str(run.result.pid)
            assert [u.tag(k) for k in ("ptag", "region", "team")] == ["pval", "eu", "perf"]
            assert re.match(r"^[a-z0-9_]+(_[A-Za-z0-9.]+)*_MAXF64$", u.tag("profiler_config"))
        assert len(runtime_ids) == 1, run.name
    for key in ("runtime_version", "runtime_platform"):
        assert ref.uploads[0].tag(key) == emb.uploads[0].tag(key), key


def test_start_end_format_and_tiling(pair):
    for run in both(pair):
        ups = sorted(run.uploads, key=lambda u: u.start_ns)
        for u in ups:
            assert S.RFC3339_NANOS.match(u.event["start"]), u.event["start"]
            assert S.RFC3339_NANOS.match(u.event["end"]), u.event["end"]
            assert u.start_ns < u.end_ns
            # the pprof covers the same period
            assert u.profile.time_nanos == u.start_ns, run.name
            assert u.profile.duration_nanos == u.end_ns - u.start_ns, run.name
        assert ups[0].start_ns / 1e9 >= run.result.started - 1
        assert ups[-1].end_ns / 1e9 <= run.result.ended + 1
        # the periods cover the run
        assert (ups[-1].end_ns - ups[0].start_ns) / 1e9 >= 5.5, run.name
        gaps = [b.start_ns - a.end_ns for a, b in zip(ups, ups[1:])]
        if run.name == "emberscope":
            assert gaps == [0] * len(gaps), gaps  # exact tiling
        else:
            # ddtrace takes the next start a little before the previous end
            assert all(-5e6 <= g <= 5e6 for g in gaps), gaps


def test_code_provenance(pair):
    for run in both(pair):
        u = run.uploads[0]
        prov = u.provenance
        assert prov.keys() == ["v1"], run.name
        entries = prov["v1"]
        assert {frozenset(e.keys()) for e in entries} == {
            frozenset(["kind", "name", "version", "paths"])}, run.name
        first = entries[0]
        assert (first["kind"], first["name"]) == ("standard library", "stdlib")
        assert first["version"] == u.tag("runtime_version")
        paths = list(first["paths"])
        assert any(p.startswith("<frozen ") for p in paths), paths
        assert any(os.path.isabs(p) and os.path.isdir(p) for p in paths), paths
        by_name = {e["name"]: e for e in entries}
        assert list(by_name["native"]["paths"]) == ["<native>"]
        assert list(by_name["runtime"]["paths"]) == ["<runtime>"]
        assert by_name["native"]["kind"] == by_name["runtime"]["kind"] == "library"
        libs = [e for e in entries[1:] if e["name"] not in ("native", "runtime")]
        assert libs, run.name
        for e in libs:
            assert e["kind"] == "library" and e["version"], e
            assert all(os.path.isabs(p) for p in e["paths"]), e
        # the profiler's own distribution is listed
        assert ("ddtrace" if run.name == "ddtrace" else "emberscope") in by_name
        # every upload carries the same document
        assert {x.provenance_raw for x in run.uploads} == {u.provenance_raw}


def test_pprof_header_and_frames(pair):
    with open(WORKLOAD) as f:
        src = f.read().splitlines()

    def line_of(text):
        return next(i + 1 for i, s in enumerate(src) if text in s)
    sleeper_lines = {line_of("while not stop.is_set()"), line_of("time.sleep(0.05)")}
    burn_lines = {line_of("for i in range(n)"), line_of("total += i * i % 7"),
                  line_of("return total")}
    main_line = line_of("burn(20000)")
    module_line = line_of("sys.exit(main())")
    for run in both(pair):
        for u in run.uploads:
            p = u.profile
            assert p.sample_type_names == EXPECTED_SAMPLE_TYPES, run.name
            assert tuple(p.period_type) == ("cpu-time", "nanoseconds") and p.period == 1
            assert p.mappings == [] and p.default_sample_type == 0 and not p.comments
            assert {m for m, _a, _n in u.locations.values()} <= {0}
            assert {n for _m, _a, n in u.locations.values()} <= {1}
            for name, system_name, filename, start_line in p.functions.values():
                assert system_name == "" and start_line == 0, (run.name, name)
        samples = [s for u in run.uploads for s in u.profile.samples]
        wall = EXPECTED_SAMPLE_TYPES.index("wall-time/nanoseconds")
        cpu = EXPECTED_SAMPLE_TYPES.index("cpu-time/nanoseconds")
        # leaf first, qualname + absolute filename + current line
        sleeper = [s for s in samples if s.values[wall] and s.labels.get("thread name") == "sleeper"
                   and s.frames and s.frames[0].name == "sleeper"]
        assert sleeper, run.name
        assert {s.frames[0].filename for s in sleeper} == {WORKLOAD}
        assert {s.frames[0].line for s in sleeper} <= sleeper_lines, run.name
        assert all(s.frames[1].name == "Thread.run" for s in sleeper), run.name
        burn = [s for s in samples if s.values[cpu] and s.frames and s.frames[0].name == "burn"]
        assert burn, run.name
        for s in burn:
            f = s.frames
            assert f[0].filename == WORKLOAD and f[0].line in burn_lines, f[:3]
            # The caller's line may read ahead when the sampler catches main() after the
            # return from burn() (a known race of both GIL-free readers: the leaf frame is
            # copied before its caller's, which has moved on meanwhile; seen up to the `with`
            # body, two lines on).
            assert (f[1].name, f[1].filename) == ("main", WORKLOAD), f[:3]
            assert f[1].line in (main_line, main_line + 1, main_line + 2), (run.name, f[:3])
            assert (f[2].name, f[2].filename, f[2].line) == ("<module>", WORKLOAD, module_line)
            assert s.labels.get("thread name") == "MainThread"


def test_labels_of_cpu_and_wall_samples(pair):
    for run in both(pair):
        kinds = {}
        for u in run.uploads:
            for st, d in u.label_kinds().items():
                for k, v in d.items():
                    kinds.setdefault(st, {}).setdefault(k, set()).update(v)
        for st in ("cpu-time/nanoseconds", "cpu-samples/count", "wall-time/nanoseconds",
                   "wall-samples/count"):
            assert kinds.get(st) == THREAD_LABELS, (run.name, st, kinds.get(st))


def test_emberscope_exception_label_format(pair):
    _ref, emb = pair
    idx = EXPECTED_SAMPLE_TYPES.index("exception-samples/count")
    samples = [s for u in emb.uploads for s in u.profile.samples if s.values[idx]]
    if not samples:
        pytest.skip("no exception was sampled in this run (1 in 100 raises are sampled)")
    for s in samples:
        # `module.QualName`; other exceptions than the workload's may be sampled too (the
        # interpreter raises and catches some, e.g. AttributeError during imports).
        etype = s.labels.get("exception type")
        assert isinstance(etype, str) and "." in etype, s
        if etype == "__main__.WorkloadError":
            assert s.frames[0].name == "fail", s  # stack = where it was raised


def test_structural_differences_are_allow_listed(pair):
    ref, emb = pair
    diffs = S.compare(ref.uploads, emb.uploads)
    unexpected = [d for d in diffs if not allowed(d)]
    stale = [pat for pat, (_reason, strict) in ALLOWED.items()
             if strict and not any(fnmatch.fnmatchcase(d, pat) for d in diffs)]
    assert not unexpected, (
        "structural differences with ddtrace that are neither fixed nor allow-listed "
        "(fix them, or add them to ALLOWED and docs/COMPATIBILITY.md with a reason):\n  "
        + "\n  ".join(unexpected) + "\n(all differences: %s)" % diffs)
    assert not stale, ("allow-listed differences that no longer occur: remove them from "
                       "ALLOWED and docs/COMPATIBILITY.md: %s" % stale)


def test_allow_list_is_documented():
    with open(COMPATIBILITY_MD) as f:
        doc = f.read()
    missing = [pat for pat in ALLOWED if "`%s`" % pat not in doc]
    assert not missing, "allow-listed differences without a row in docs/COMPATIBILITY.md: %s" % (
        missing,)


def test_recorded_reference_fixture_matches_emberscope(pair):
    """The upload recorded from ddtrace 4.16 (tests/conformance/fixtures) has the same
    event keys, tag keys and header names as what emberscope sends."""
    _ref, emb = pair
    with open(os.path.join(FIXTURE, "event.json")) as f:
        event = json.load(f)
    with open(os.path.join(FIXTURE, "request-headers.txt")) as f:
        lines = f.read().splitlines()
    names = {ln.split(":", 1)[0].lower() for ln in lines[1:] if ":" in ln}
    assert names == EXPECTED_HEADER_NAMES
    assert lines[0] == "POST /profiling/v1/input HTTP/1.1"
    fixture_tags = [k for k, _ in S.split_tags(event["tags_profiler"])]
    # same order rule: identity tags, user tags sorted by key, runtime_platform
    fixed = ["env", "service", "version", "language", "runtime", "runtime-id",
             "runtime_version", "profiler_version", "process_id"]
    for keys in (fixture_tags, emb.uploads[0].tag_keys):
        assert keys[:len(fixed)] == fixed and keys[-1] == "runtime_platform", keys
        user = keys[len(fixed):-1]
        assert user == sorted(user), keys


# ------------------------------------------------------------------------------------------
# transport: agentless, unix socket, failing agents
# ------------------------------------------------------------------------------------------

def _emberscope_cmd(emberscope_run):
    return [emberscope_run[0], emberscope_run[1], WORKLOAD]


def _warnings(stderr):
    return [ln for ln in stderr.splitlines() if ln.startswith("emberscope:")]


def _tile(uploads):
    ups = sorted(uploads, key=lambda u: u.start_ns)
    return [b.start_ns - a.end_ns for a, b in zip(ups, ups[1:])]


def test_agentless_posts_to_intake_with_api_key(emberscope_run, run_app, tmp_path):
    key = "0123456789abcdef" + os.urandom(8).hex()
    with capture.CaptureServer() as intake, capture.CaptureServer() as agent:
        env = clean_env(DD_PROFILING_ENABLED="true", DD_PROFILING_UPLOAD_INTERVAL="1",
                        DD_PROFILING_AGENTLESS="true", DD_API_KEY=key,
                        EMBERSCOPE_AGENTLESS_URL=intake.url + "/api/v2/profile",
                        DD_TRACE_AGENT_URL=agent.url, EMBERSCOPE_DEBUG="true",
                        WORKLOAD_SECONDS="2.5")
        r = run_app(_emberscope_cmd(emberscope_run), env)
        info = run_app([emberscope_run[0], "--info", emberscope_run[1], "-c", "pass"], env)
        time.sleep(0.2)
        assert r.returncode == 0, r.stderr
        assert not agent.profiles(), "agentless mode must not post to the agent"
        ups = intake.profiles()
        assert len(ups) >= 2, (r.stderr, intake.requests)
        for req in ups:
            assert req.path == "/api/v2/profile"
            assert req.header("dd-api-key") == key
            u = S.Upload.from_request(req)
            assert key.encode() not in u.event_raw
            assert key.encode() not in u.provenance_raw and key.encode() not in u.pprof_raw
            assert u.event["info"]["profiler"]["settings"]["agentless"] is True
        for text in (r.stdout, r.stderr, info.stdout, info.stderr):
            assert key not in text
        assert "DD_API_KEY" in info.stdout + info.stderr  # --info did list the setting


def test_agentless_without_api_key_warns_once(emberscope_run, run_app):
    with capture.CaptureServer() as intake, capture.CaptureServer() as agent:
        env = clean_env(DD_PROFILING_ENABLED="true", DD_PROFILING_UPLOAD_INTERVAL="1",
                        DD_PROFILING_AGENTLESS="true",
                        EMBERSCOPE_AGENTLESS_URL=intake.url + "/api/v2/profile",
                        DD_TRACE_AGENT_URL=agent.url, WORKLOAD_SECONDS="1.5")
        r = run_app(_emberscope_cmd(emberscope_run), env)
        time.sleep(0.2)
        assert r.returncode == 0, r.stderr
        assert "workload done" in r.stdout
        warnings = _warnings(r.stderr)
        assert len(warnings) == 1, r.stderr
        assert "DD_API_KEY" in warnings[0], warnings
        assert not intake.requests and not agent.profiles()


def test_code_provenance_disabled_leaves_the_part_out(emberscope_run, run_app):
    """Reference §1.2: without code provenance, the part and its attachment entry go."""
    with capture.CaptureServer() as agent:
        env = clean_env(DD_PROFILING_ENABLED="true", DD_PROFILING_UPLOAD_INTERVAL="1",
                        DD_PROFILING_ENABLE_CODE_PROVENANCE="false",
                        DD_TRACE_AGENT_URL=agent.url, WORKLOAD_SECONDS="1.5")
        r = run_app(_emberscope_cmd(emberscope_run), env)
        time.sleep(0.2)
        assert r.returncode == 0, r.stderr
        ups = [S.Upload.from_request(q) for q in agent.profiles()]
        assert ups, r.stderr
        for u in ups:
            assert [(p.name, p.filename, p.content_type) for p in u.parts] == [
                EXPECTED_PARTS[0], EXPECTED_PARTS[2]]
            assert list(u.event["attachments"]) == ["profile.pprof"]


def test_unix_socket_agent(emberscope_run, run_app, tmp_path):
    path = capture.free_unix_path(tmp_path)
    with capture.CaptureServer(unix_path=path) as agent:
        env = clean_env(DD_PROFILING_ENABLED="true", DD_PROFILING_UPLOAD_INTERVAL="1",
                        DD_TRACE_AGENT_URL="unix://" + path, WORKLOAD_SECONDS="2.5")
        r = run_app(_emberscope_cmd(emberscope_run), env)
        time.sleep(0.2)
        assert r.returncode == 0, r.stderr
        ups = [S.Upload.from_request(q) for q in agent.profiles()]
        assert len(ups) >= 2, (r.stderr, agent.requests)
        assert all(u.request.path == "/profiling/v1/input" for u in ups)
        assert _tile(ups) == [0] * (len(ups) - 1)
        assert not _warnings(r.stderr), r.stderr


def test_agent_503_then_recovers_nothing_lost(emberscope_run, run_app):
    fails = 3
    with capture.CaptureServer(fail_first=fails, fail_status=503) as agent:
        env = clean_env(DD_PROFILING_ENABLED="true", DD_PROFILING_UPLOAD_INTERVAL="1.5",
                        DD_TRACE_AGENT_URL=agent.url, WORKLOAD_SECONDS="6")
        r = run_app(_emberscope_cmd(emberscope_run), env)
        time.sleep(0.2)
        assert r.returncode == 0, r.stderr
        attempts = agent.profiles()
        failed = [q for q in attempts if q.status != 200]
        delivered = [S.Upload.from_request(q) for q in attempts if q.status == 200]
        assert len(failed) == fails, attempts
        periods = {(u.start_ns, u.end_ns) for u in map(S.Upload.from_request, attempts)}
        got = [(u.start_ns, u.end_ns) for u in delivered]
        assert len(got) == len(set(got)), "a profile was delivered twice"
        assert set(got) == periods, "a period that was attempted was never delivered"
        assert len(delivered) >= 4, (r.stderr, attempts)
        # delivered oldest first, and together they tile the whole run
        assert got == sorted(got)
        assert _tile(delivered) == [0] * (len(delivered) - 1)
        span = (got[-1][1] - got[0][0]) / 1e9
        assert span >= 5.5, span
        assert max(u.event["internal"].get("upload_retry_count", 0) for u in delivered) >= 1
        # no retry storm in the log either
        assert len(_warnings(r.stderr)) <= 3, r.stderr


def test_hanging_agent_does_not_hold_exit(emberscope_run, run_app):
    with capture.CaptureServer(hang=True) as agent:
        env = clean_env(DD_PROFILING_ENABLED="true", DD_PROFILING_UPLOAD_INTERVAL="1",
                        DD_PROFILING_API_TIMEOUT_MS="1000", DD_TRACE_AGENT_URL=agent.url,
                        WORKLOAD_SECONDS="2")
        r = run_app(_emberscope_cmd(emberscope_run), env, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "workload done" in r.stdout
        assert agent.profiles(), "the agent was never reached"
        done_at = float(re.search(r"workload done at ([0-9.]+)", r.stdout).group(1))
        exit_delay = r.ended - done_at
        # A 1 s timeout: exit should follow within ~2 s (timeout + 1 s); the bound is
        # generous, yet below what the default 10 s timeout alone would cost.
        assert exit_delay < 8, (exit_delay, r.stderr)
