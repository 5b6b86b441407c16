"""Configuration parsing (emberscope._config)."""

import json
import os

import pytest

from pyl_helpers import PACKAGE_DIR, available_interpreters, run, run_py, stderr_lines

from emberscope import _config

DEFAULT_NATIVE = {
    "service": None,
    "env": None,
    "version": None,
    "tags": {},
    "output_pprof": None,
    "upload_interval": 60.0,
    "max_frames": 64,
    "max_time_usage_pct": 1.0,
    "max_sampling_hz": 100.0,
    "timeline": True,
    "stack": True,
    "stack_v2": True,
    "exception": True,
    "exception_sampling_interval": 100,
    "agent_url": "http://localhost:8126",
    "api_timeout_ms": 10000,
    "code_provenance": True,
    # upload (issue 3)
    "agentless": False,
    "api_key": None,
    "site": "datadoghq.com",
    "agentless_url": None,
    "main_package": None,
    "git_repository_url": None,
    "git_commit_sha": None,
    # collectors (issue 5)
    "memory": True,
    "heap": True,
    "heap_sample_size": _config.default_heap_sample_size(),
    "lock": True,
    "capture_pct": 1.0,
}

NO_SOCKET = {}


def native(environ):
    config = _config.from_env(environ)
    return config, config.as_native_dict()


def parse_in_subprocess(env):
    code = ("import json; from emberscope import _config; "
            "c = _config.from_env(); d = c.as_native_dict(); d['enabled'] = c.enabled; "
            "print(json.dumps(d))")
    result = run_py(code, extra_env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), stderr_lines(result)


def test_defaults_and_native_keys():
    if os.path.exists(_config.DEFAULT_AGENT_SOCKET):
        pytest.skip("an agent socket exists on this machine")
    config, d = native({})
    assert d == DEFAULT_NATIVE
    assert list(d) == list(_config.NATIVE_KEYS)
    assert config.enabled is False
    assert config.service is None  # the exporter applies unnamed-python-service
    assert all(config.source(s.name) == "default" for s in _config.SETTINGS
               if s.name != "agent_url")


def test_no_warning_and_no_output_for_defaults():
    d, lines = parse_in_subprocess({})
    assert lines == []
    assert d["enabled"] is False


@pytest.mark.parametrize("var,raw,key,expected", [
    ("DD_SERVICE", "my-web-app", "service", "my-web-app"),
    ("DD_ENV", " prod ", "env", "prod"),
    ("DD_VERSION", "1.0.3", "version", "1.0.3"),
    ("DD_PROFILING_OUTPUT_PPROF", "/tmp/prof", "output_pprof", "/tmp/prof"),
    ("DD_PROFILING_UPLOAD_INTERVAL", "5", "upload_interval", 5.0),
    ("DD_PROFILING_UPLOAD_INTERVAL", "0.5", "upload_interval", 0.5),
    ("DD_PROFILING_MAX_FRAMES", "128", "max_frames", 128),
    ("DD_PROFILING_MAX_FRAMES", "599", "max_frames", 599),
    ("DD_PROFILING_MAX_TIME_USAGE_PCT", "100", "max_time_usage_pct", 100.0),
    ("DD_PROFILING_MAX_TIME_USAGE_PCT", "0.5", "max_time_usage_pct", 0.5),
    ("EMBERSCOPE_MAX_SAMPLING_HZ", "250", "max_sampling_hz", 250.0),
    ("DD_PROFILING_TIMELINE_ENABLED", "false", "timeline", False),
    ("DD_PROFILING_STACK_ENABLED", "0", "stack", False),
    ("DD_PROFILING_STACK_V2_ENABLED", "no", "stack_v2", False),
    ("DD_PROFILING_EXCEPTION_ENABLED", "off", "exception", False),
    ("DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL", "1", "exception_sampling_interval", 1),
    ("DD_PROFILING_API_TIMEOUT_MS", "2500", "api_timeout_ms", 2500),
    ("DD_PROFILING_ENABLE_CODE_PROVENANCE", "0", "code_provenance", False),
    ("DD_TRACE_AGENT_URL", "http://agent:9126", "agent_url", "http://agent:9126"),
    ("DD_TRACE_AGENT_URL", "unix:///tmp/apm.sock", "agent_url", "unix:///tmp/apm.sock"),
    ("DD_TAGS", "team:core,tier:1", "tags", {"team": "core", "tier": "1"}),
    ("DD_PROFILING_TAGS", "a:b c:d", "tags", {"a": "b", "c": "d"}),
    # upload (issue 3)
    ("DD_PROFILING_AGENTLESS", "true", "agentless", True),
    ("DD_API_KEY", "0123456789abcdef", "api_key", "0123456789abcdef"),
    ("DD_SITE", "datadoghq.eu", "site", "datadoghq.eu"),
    ("EMBERSCOPE_AGENTLESS_URL", "http://127.0.0.1:9/api/v2/profile", "agentless_url",
     "http://127.0.0.1:9/api/v2/profile"),
    ("DD_MAIN_PACKAGE", "shop", "main_package", "shop"),
    ("DD_GIT_REPOSITORY_URL", "https://github.com/x/y", "git_repository_url",
     "https://github.com/x/y"),
    ("DD_GIT_COMMIT_SHA", "abc123", "git_commit_sha", "abc123"),
    # collectors (issue 5)
    ("DD_PROFILING_MEMORY_ENABLED", "true", "memory", True),
    ("DD_PROFILING_HEAP_ENABLED", "0", "heap", False),
    ("DD_PROFILING_HEAP_SAMPLE_SIZE", "524288", "heap_sample_size", 524288),
    ("DD_PROFILING_LOCK_ENABLED", "yes", "lock", True),
    ("DD_PROFILING_CAPTURE_PCT", "12.5", "capture_pct", 12.5),
])
def test_every_variable(var, raw, key, expected):
    config, d = native({var: raw})
    assert d[key] == expected
    assert config.source(key).startswith("env ")


def test_every_setting_has_a_parse_case():
    # Guard: a new SETTINGS row must get a test case above or below.
    covered = {"DD_SERVICE", "DD_ENV", "DD_VERSION", "DD_PROFILING_OUTPUT_PPROF",
               "DD_PROFILING_UPLOAD_INTERVAL", "DD_PROFILING_MAX_FRAMES",
               "DD_PROFILING_MAX_TIME_USAGE_PCT", "EMBERSCOPE_MAX_SAMPLING_HZ",
               "DD_PROFILING_TIMELINE_ENABLED", "DD_PROFILING_STACK_ENABLED",
               "DD_PROFILING_STACK_V2_ENABLED", "DD_PROFILING_EXCEPTION_ENABLED",
               "DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL", "DD_PROFILING_API_TIMEOUT_MS",
               "DD_PROFILING_ENABLE_CODE_PROVENANCE", "DD_TRACE_AGENT_URL", "DD_TAGS",
               "DD_PROFILING_TAGS", "DD_PROFILING_ENABLED", "DD_AGENT_HOST",
               "DD_TRACE_AGENT_PORT", "EMBERSCOPE_DEBUG",
               # upload (issue 3)
               "DD_PROFILING_AGENTLESS", "DD_API_KEY", "DD_SITE", "EMBERSCOPE_AGENTLESS_URL",
               "DD_MAIN_PACKAGE", "DD_GIT_REPOSITORY_URL", "DD_GIT_COMMIT_SHA",
               # collectors (issue 5)
               "DD_PROFILING_MEMORY_ENABLED", "DD_PROFILING_HEAP_ENABLED",
               "DD_PROFILING_HEAP_SAMPLE_SIZE", "DD_PROFILING_LOCK_ENABLED",
               "DD_PROFILING_CAPTURE_PCT"}
    assert {s.env for s in _config.SETTINGS} == covered


BOOL_SPELLINGS = [
    ("1", True), ("0", False), ("true", True), ("false", False), ("yes", True), ("no", False),
    ("on", True), ("off", False), ("TRUE", True), ("False", False), (" Yes ", True),
    ("\tOFF\n", False), ("On", True), ("nO", False),
]


@pytest.mark.parametrize("setting", [s for s in _config.SETTINGS if s.type == _config.BOOL],
                         ids=lambda s: s.env)
def test_boolean_spellings(setting):
    for raw, expected in BOOL_SPELLINGS:
        config = _config.from_env({setting.env: raw})
        assert getattr(config, setting.name) is expected, (setting.env, raw)


def test_profiling_enabled_accepts_auto_but_others_do_not():
    assert _config.from_env({"DD_PROFILING_ENABLED": "auto"}).enabled is True
    assert _config.from_env({"DD_PROFILING_ENABLED": " AUTO "}).enabled is True
    assert _config.profiling_enabled({"DD_PROFILING_ENABLED": "auto"}) is True
    assert _config.profiling_enabled({}) is False
    # 'auto' is not a boolean for the other switches: default kept
    d, lines = parse_in_subprocess({"DD_PROFILING_TIMELINE_ENABLED": "auto"})
    assert d["timeline"] is True
    assert len(lines) == 1 and "DD_PROFILING_TIMELINE_ENABLED='auto'" in lines[0]


def test_empty_values_are_unset_without_warning():
    env = {s.env: "" for s in _config.SETTINGS}
    env["DD_SERVICE"] = "   "
    d, lines = parse_in_subprocess(env)
    assert lines == []
    assert d["service"] is None and d["upload_interval"] == 60.0


def test_tags_merge_profiling_wins():
    config = _config.from_env({
        "DD_TAGS": "team:core, region:eu ,url:http://x:1",
        "DD_PROFILING_TAGS": "region:us team2:z",
    })
    assert config.tags == {"team": "core", "region": "us", "url": "http://x:1", "team2": "z"}
    assert config.as_native_dict()["tags"] == config.tags
    assert config.source("tags") == "env DD_TAGS + env DD_PROFILING_TAGS"


def test_agent_url_resolution():
    def url(env, socket="/nonexistent/apm.socket"):
        c = _config.from_env(env)
        if c.source("agent_url") == "default (agent socket exists)":
            pytest.skip("an agent socket exists on this machine")
        return c.agent_url

    assert url({}) == "http://localhost:8126"
    assert url({"DD_TRACE_AGENT_URL": "https://a:1", "DD_AGENT_HOST": "h"}) == "https://a:1"
    assert url({"DD_AGENT_HOST": "agent"}) == "http://agent:8126"
    assert url({"DD_TRACE_AGENT_HOSTNAME": "alias"}) == "http://alias:8126"
    assert url({"DD_AGENT_HOST": "first", "DD_TRACE_AGENT_HOSTNAME": "second"}) == "http://first:8126"
    assert url({"DD_TRACE_AGENT_PORT": "9000"}) == "http://localhost:9000"
    assert url({"DD_AGENT_PORT": "9001"}) == "http://localhost:9001"
    assert url({"DD_TRACE_AGENT_PORT": "9000", "DD_AGENT_PORT": "9001"}) == "http://localhost:9000"
    assert url({"DD_AGENT_HOST": "::1", "DD_TRACE_AGENT_PORT": "1234"}) == "http://[::1]:1234"
    assert url({"DD_AGENT_HOST": "[fe80::1]"}) == "http://[fe80::1]:8126"


def test_agent_socket_is_used_when_it_exists(tmp_path):
    sock = tmp_path / "apm.socket"
    assert _config.resolve_agent_url(None, None, None, str(sock)) == ("http://localhost:8126", "default")
    sock.write_text("")
    assert _config.resolve_agent_url(None, None, None, str(sock)) == ("unix://" + str(sock), "socket")
    assert _config.resolve_agent_url(None, "h", None, str(sock))[0] == "http://h:8126"


@pytest.mark.parametrize("var,raw,line", [
    ("DD_PROFILING_UPLOAD_INTERVAL", "abc",
     "emberscope: DD_PROFILING_UPLOAD_INTERVAL='abc' is not a number; using the default 60.0"),
    ("DD_PROFILING_UPLOAD_INTERVAL", "0",
     "emberscope: DD_PROFILING_UPLOAD_INTERVAL='0' must be > 0.0; using the default 60.0"),
    ("DD_PROFILING_UPLOAD_INTERVAL", "nan",
     "emberscope: DD_PROFILING_UPLOAD_INTERVAL='nan' is not a finite number; using the default 60.0"),
    ("DD_PROFILING_MAX_FRAMES", "1000",
     "emberscope: DD_PROFILING_MAX_FRAMES='1000' is above the maximum 599; using 599"),
    ("DD_PROFILING_MAX_FRAMES", "0",
     "emberscope: DD_PROFILING_MAX_FRAMES='0' is below the minimum 1; using 1"),
    ("DD_PROFILING_MAX_FRAMES", "6.5",
     "emberscope: DD_PROFILING_MAX_FRAMES='6.5' is not an integer; using the default 64"),
    ("DD_PROFILING_MAX_TIME_USAGE_PCT", "150",
     "emberscope: DD_PROFILING_MAX_TIME_USAGE_PCT='150' must be <= 100.0; using the default 1.0"),
    ("DD_PROFILING_MAX_TIME_USAGE_PCT", "0",
     "emberscope: DD_PROFILING_MAX_TIME_USAGE_PCT='0' must be > 0.0; using the default 1.0"),
    ("EMBERSCOPE_MAX_SAMPLING_HZ", "-3",
     "emberscope: EMBERSCOPE_MAX_SAMPLING_HZ='-3' must be > 0.0; using the default 100.0"),
    ("DD_PROFILING_ENABLED", "maybe",
     "emberscope: DD_PROFILING_ENABLED='maybe' is not a boolean (use 1/0, true/false, yes/no "
     "or on/off); using the default false"),
    ("DD_PROFILING_STACK_V2_ENABLED", "2",
     "emberscope: DD_PROFILING_STACK_V2_ENABLED='2' is not a boolean (use 1/0, true/false, "
     "yes/no or on/off); using the default true"),
    ("DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL", "0",
     "emberscope: DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL='0' must be >= 1; using the default 100"),
    ("DD_PROFILING_API_TIMEOUT_MS", "ten",
     "emberscope: DD_PROFILING_API_TIMEOUT_MS='ten' is not an integer; using the default 10000"),
    ("DD_TRACE_AGENT_URL", "ftp://x",
     "emberscope: DD_TRACE_AGENT_URL='ftp://x' is not a valid agent URL (expected http://, "
     "https:// or unix://); using the default from the host/port, else "
     "unix:///var/run/datadog/apm.socket if it exists, else http://localhost:8126"),
    ("DD_TRACE_AGENT_PORT", "99999",
     "emberscope: DD_TRACE_AGENT_PORT='99999' must be <= 65535; using the default 8126"),
    ("DD_AGENT_HOST", "a b",
     "emberscope: DD_AGENT_HOST='a b' is not a valid host name or IP address; using the default localhost"),
    ("DD_TAGS", "good:1,bad,:x",
     "emberscope: DD_TAGS='good:1,bad,:x' has malformed entries 'bad', ':x' (expected "
     "key:value); using good:1"),
])
def test_bad_value_is_exactly_one_warning_line(var, raw, line):
    d, lines = parse_in_subprocess({var: raw, "DD_SERVICE": "still-parsed"})
    assert lines == [line]
    assert d["service"] == "still-parsed"  # parsing went on


def test_several_bad_values_one_line_each_and_defaults_used():
    d, lines = parse_in_subprocess({
        "DD_PROFILING_UPLOAD_INTERVAL": "abc",
        "DD_PROFILING_MAX_FRAMES": "x",
        "DD_PROFILING_TIMELINE_ENABLED": "perhaps",
        "DD_ENV": "prod",
    })
    assert len(lines) == 3
    assert all(l.startswith("emberscope: ") for l in lines)
    assert d["upload_interval"] == 60.0 and d["max_frames"] == 64 and d["timeline"] is True
    assert d["env"] == "prod"


def test_agent_url_falls_back_to_host_when_url_is_bad():
    d, lines = parse_in_subprocess({"DD_TRACE_AGENT_URL": "nonsense", "DD_AGENT_HOST": "h"})
    assert d["agent_url"] == "http://h:8126"
    assert len(lines) == 1 and "DD_TRACE_AGENT_URL='nonsense'" in lines[0]


def test_warning_emitted_once_per_process_even_if_parsed_again():
    code = ("from emberscope import _config\n"
            "for _ in range(3): _config.from_env()\n"
            "from emberscope.profiling import Profiler\n"
            "Profiler(); Profiler()\n")
    result = run_py(code, extra_env={"DD_PROFILING_MAX_FRAMES": "nope"})
    assert result.returncode == 0
    assert stderr_lines(result) == [
        "emberscope: DD_PROFILING_MAX_FRAMES='nope' is not an integer; using the default 64"]


def test_warning_goes_through_logging_when_configured():
    code = ("import logging, sys\n"
            "logging.basicConfig(stream=sys.stdout, format='LOG %(name)s %(levelname)s %(message)s')\n"
            "from emberscope import _config\n"
            "_config.from_env()\n")
    result = run_py(code, extra_env={"DD_PROFILING_UPLOAD_INTERVAL": "abc"})
    assert result.returncode == 0
    assert result.stderr == ""  # no raw stderr line when logging is configured
    assert result.stdout.splitlines() == [
        "LOG emberscope WARNING DD_PROFILING_UPLOAD_INTERVAL='abc' is not a number; "
        "using the default 60.0"]


def test_config_is_frozen_and_overrides_make_new_objects():
    config = _config.from_env({"DD_SERVICE": "a"})
    with pytest.raises(AttributeError):
        config.service = "b"
    with pytest.raises(AttributeError):
        del config.service
    other = config.with_overrides({"service": "b", "upload_interval": "5", "url": "http://h:1"})
    assert (config.service, other.service) == ("a", "b")
    assert other.upload_interval == 5.0 and other.agent_url == "http://h:1"
    assert other.source("service") == "argument"
    assert config != other and config == _config.from_env({"DD_SERVICE": "a"})


def test_profiler_arguments_fall_back_to_environment():
    code = ("import json\n"
            "from emberscope.profiling import Profiler\n"
            "p = Profiler(env='staging', tags={'k': 'v'}, url='http://agent:1', api_key='x',\n"
            "             output_pprof='/tmp/out', upload_interval=5, max_frames=10000,\n"
            "             exception_sampling_interval='bad', bogus=1)\n"
            "print(json.dumps(p.config.as_native_dict()))\n")
    result = run_py(code, extra_env={"DD_SERVICE": "svc", "DD_ENV": "prod",
                                      "DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL": "7",
                                      "DD_TAGS": "from:env"})
    assert result.returncode == 0, result.stderr
    d = json.loads(result.stdout)
    assert d["service"] == "svc"             # from the environment
    assert d["env"] == "staging"             # argument wins
    assert d["tags"] == {"k": "v"}           # tags= replaces the environment tags
    assert d["agent_url"] == "http://agent:1"
    assert d["output_pprof"] == "/tmp/out" and d["upload_interval"] == 5.0
    assert d["max_frames"] == 599            # clamped
    assert d["exception_sampling_interval"] == 7  # bad argument: environment value kept
    lines = stderr_lines(result)
    assert len(lines) == 3, lines
    assert any("Profiler(max_frames)=10000 is above the maximum 599; using 599" in l for l in lines)
    assert any("Profiler(exception_sampling_interval)='bad' is not an integer; keeping 7" in l
               for l in lines)
    assert any("unknown setting 'bogus'" in l for l in lines)


def test_describe_and_help_come_from_settings():
    config = _config.from_env({"DD_SERVICE": "svc", "DD_PROFILING_STACK_V2_ENABLED": "0"})
    text = "\n".join(config.describe())
    for setting in _config.SETTINGS:
        assert setting.env in text
    assert "DD_SERVICE" in text and "= svc  [env DD_SERVICE]" in text
    assert "sampler: fallback (DD_PROFILING_STACK_V2_ENABLED is false)" in text
    assert "sampler: off" in "\n".join(_config.describe(
        _config.from_env({"DD_PROFILING_STACK_ENABLED": "false"})))
    help_text = "\n".join(_config.env_help())
    for setting in _config.SETTINGS:
        for name in setting.env_names:
            assert name in help_text
    assert len(_config.markdown_table()) == len(_config.SETTINGS) + 2


@pytest.mark.parametrize("version,python", available_interpreters(),
                         ids=[v for v, _ in available_interpreters()])
def test_config_imports_and_parses_on_every_interpreter(version, python):
    code = ("import json\n"
            "from emberscope import _config\n"
            "import emberscope.profiling, emberscope.commands.run\n"
            "c = _config.from_env()\n"
            "assert c.as_native_dict()['max_frames'] == 12\n"
            "print(json.dumps(_config.describe(c)))\n")
    result = run_py(code, python=python, extra_env={"DD_PROFILING_MAX_FRAMES": "12"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # every source file of the package compiles on this interpreter
    check = ("import ast, os, sys\n"
             "for root, _, files in os.walk(sys.argv[1]):\n"
             "    for f in files:\n"
             "        if f.endswith('.py'):\n"
             "            p = os.path.join(root, f)\n"
             "            compile(open(p).read(), p, 'exec')\n")
    result = run([python, "-c", check, PACKAGE_DIR])
    assert result.returncode == 0, result.stderr


def test_heap_off_never_means_every_allocation():
    # collectors (issue 5): the reference derives a sample size of 0 from
    # DD_PROFILING_HEAP_ENABLED=false and then records every allocation.
    _, d = native({"DD_PROFILING_HEAP_ENABLED": "false"})
    assert d["heap"] is False
    assert d["heap_sample_size"] == _config.default_heap_sample_size() >= 1 << 20


def test_capture_pct_range():
    _, d = native({"DD_PROFILING_CAPTURE_PCT": "0"})
    assert d["capture_pct"] == 1.0
    _, d = native({"DD_PROFILING_CAPTURE_PCT": "100"})
    assert d["capture_pct"] == 100.0


def test_api_key_is_never_shown():
    config = _config.from_env({"DD_API_KEY": "s3cr3t-key-value", "DD_PROFILING_AGENTLESS": "1"})
    assert "s3cr3t-key-value" not in "\n".join(_config.describe(config))
    assert "s3cr3t-key-value" not in repr(config)
