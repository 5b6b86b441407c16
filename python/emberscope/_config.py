"""Configuration of emberscope, read from the environment.

``SETTINGS`` is the single source of truth: parsing, ``Config`` attributes,
``emberscope-run --help`` and ``emberscope-run --info`` are all generated from
it.  Parsing never raises: a bad value produces exactly one warning line
naming the variable, the value and the value used instead, and parsing goes on.

This module must stay importable on every supported Python (3.8+) and must not
import the native extension.
"""

import math
import os
import textwrap

from emberscope import _log

try:  # pragma: no cover - trivial
    from urllib.parse import urlsplit
except Exception:  # pragma: no cover
    urlsplit = None

# Value types understood by the parser.
BOOL = "bool"
STR = "str"
INT = "int"
FLOAT = "float"
TAGS = "tags"
URL = "url"
HOST = "host"

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

MAX_FRAMES_LIMIT = 599
DEFAULT_AGENT_URL = "http://localhost:8126"
DEFAULT_AGENT_HOST = "localhost"
DEFAULT_AGENT_PORT = 8126
DEFAULT_AGENT_SOCKET = "/var/run/datadog/apm.socket"


class Setting(object):
    """One configuration knob: where it comes from, its type and its doc."""

    __slots__ = (
        "name", "env", "default", "type", "doc", "aliases", "minimum", "maximum",
        "min_exclusive", "clamp", "native", "allow_auto", "default_doc", "secret",
    )

    def __init__(self, name, env, default, type, doc, aliases=(), minimum=None,
                 maximum=None, min_exclusive=False, clamp=False, native=True,
                 allow_auto=False, default_doc=None, secret=False):
        self.name = name
        self.env = env
        self.default = default
        self.type = type
        self.doc = doc
        self.aliases = tuple(aliases)
        self.minimum = minimum
        self.maximum = maximum
        self.min_exclusive = min_exclusive
        self.clamp = clamp
        self.native = native
        self.allow_auto = allow_auto
        self.default_doc = default_doc
        self.secret = secret

    @property
    def env_names(self):
        return (self.env,) + self.aliases

    def __repr__(self):
        return "Setting(%r, %r, default=%r, type=%r)" % (self.name, self.env, self.default, self.type)


SETTINGS = (
    Setting("enabled", "DD_PROFILING_ENABLED", False, BOOL,
            "Start the profiler in every Python process launched by emberscope-run "
            "(or when emberscope.profiling.auto is imported). 'auto' counts as true.",
            native=False, allow_auto=True),
    Setting("service", "DD_SERVICE", None, STR,
            "Service name attached to profiles (the exporter uses "
            "'unnamed-python-service' when unset)."),
    Setting("env", "DD_ENV", None, STR, "Environment name attached to profiles (e.g. prod)."),
    Setting("version", "DD_VERSION", None, STR, "Application version attached to profiles."),
    Setting("dd_tags", "DD_TAGS", {}, TAGS,
            "Global tags 'k:v,k2:v2' (or space separated), merged with DD_PROFILING_TAGS.",
            native=False),
    Setting("profiling_tags", "DD_PROFILING_TAGS", {}, TAGS,
            "Profiler tags 'k:v,k2:v2' (or space separated); they win over DD_TAGS.",
            native=False),
    Setting("output_pprof", "DD_PROFILING_OUTPUT_PPROF", None, STR,
            "Write profiles to files '<prefix>.<pid>.<seq>.pprof' instead of uploading them."),
    Setting("upload_interval", "DD_PROFILING_UPLOAD_INTERVAL", 60.0, FLOAT,
            "Seconds between two profile exports (> 0).",
            minimum=0.0, min_exclusive=True),
    Setting("max_frames", "DD_PROFILING_MAX_FRAMES", 64, INT,
            "Maximum number of frames kept per sample (1..%d, clamped)." % MAX_FRAMES_LIMIT,
            minimum=1, maximum=MAX_FRAMES_LIMIT, clamp=True),
    Setting("max_time_usage_pct", "DD_PROFILING_MAX_TIME_USAGE_PCT", 1.0, FLOAT,
            "CPU budget of the sampler, in percent of the process CPU time (0 < x <= 100).",
            minimum=0.0, maximum=100.0, min_exclusive=True),
    Setting("max_sampling_hz", "EMBERSCOPE_MAX_SAMPLING_HZ", 100.0, FLOAT,
            "emberscope-specific: maximum sampling rate per thread, in Hz (0 < x <= 10000).",
            minimum=0.0, maximum=10000.0, min_exclusive=True),
    Setting("timeline", "DD_PROFILING_TIMELINE_ENABLED", True, BOOL,
            "Attach an end timestamp to every sample (timeline view)."),
    Setting("stack", "DD_PROFILING_STACK_ENABLED", True, BOOL, "Collect CPU and wall-time samples."),
    Setting("stack_v2", "DD_PROFILING_STACK_V2_ENABLED", True, BOOL,
            "Use the native GIL-free stack sampler; false selects the fallback "
            "sampler (a Python thread, higher overhead)."),
    Setting("exception", "DD_PROFILING_EXCEPTION_ENABLED", True, BOOL,
            "Sample raised exceptions (sys.monitoring on Python 3.12+)."),
    Setting("exception_sampling_interval", "DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL", 100, INT,
            "Mean number of raised exceptions between two exception samples (>= 1).",
            minimum=1),
    # collectors (issue 5)
    Setting("memory", "DD_PROFILING_MEMORY_ENABLED", True, BOOL,
            "Sample allocations (alloc-space, alloc-samples) through a Python allocator hook; "
            "false turns allocation and heap profiling off."),
    Setting("heap", "DD_PROFILING_HEAP_ENABLED", True, BOOL,
            "Track sampled allocations until freed and export the live heap every period "
            "(heap-space, heap-live-samples). false only stops tracking; the sampling rate "
            "does not change."),
    Setting("heap_sample_size", "DD_PROFILING_HEAP_SAMPLE_SIZE", None, INT,
            "Mean number of allocated bytes between two allocation samples (>= 1).",
            minimum=1, default_doc="max(total RAM / 65536, 1 MiB)"),
    Setting("lock", "DD_PROFILING_LOCK_ENABLED", True, BOOL,
            "Profile threading and asyncio locks (lock-acquire-wait, lock-release-hold): "
            "threading.Lock/RLock/Condition/Semaphore/BoundedSemaphore and asyncio's "
            "Lock/Semaphore/Condition."),
    Setting("capture_pct", "DD_PROFILING_CAPTURE_PCT", 1.0, FLOAT,
            "Percentage of lock acquisitions recorded (0 < x <= 100); recorded events are "
            "scaled so totals estimate all acquisitions.",
            minimum=0.0, maximum=100.0, min_exclusive=True),
    Setting("api_timeout_ms", "DD_PROFILING_API_TIMEOUT_MS", 10000, INT,
            "Timeout of a profile upload, in milliseconds (>= 1).", minimum=1),
    Setting("code_provenance", "DD_PROFILING_ENABLE_CODE_PROVENANCE", True, BOOL,
            "Report which library (distribution) each source file belongs to."),
    Setting("agent_url", "DD_TRACE_AGENT_URL", None, URL,
            "Agent URL (http://, https:// or unix://). Wins over DD_AGENT_HOST/DD_TRACE_AGENT_PORT.",
            default_doc="from the host/port, else unix://%s if it exists, else %s"
            % (DEFAULT_AGENT_SOCKET, DEFAULT_AGENT_URL)),
    Setting("agent_host", "DD_AGENT_HOST", None, HOST,
            "Agent host name or IP address (IPv6 allowed) when DD_TRACE_AGENT_URL is unset.",
            aliases=("DD_TRACE_AGENT_HOSTNAME",), native=False, default_doc=DEFAULT_AGENT_HOST),
    Setting("agent_port", "DD_TRACE_AGENT_PORT", None, INT,
            "Agent port when DD_TRACE_AGENT_URL is unset (1..65535).",
            aliases=("DD_AGENT_PORT",), minimum=1, maximum=65535, native=False,
            default_doc=str(DEFAULT_AGENT_PORT)),
    Setting("agentless", "DD_PROFILING_AGENTLESS", False, BOOL,
            "Upload straight to the Datadog intake (https://intake.profile.<DD_SITE>/api/v2/profile)"
            " with DD_API_KEY instead of through an agent."),
    Setting("api_key", "DD_API_KEY", None, STR,
            "API key for agentless uploads. Never printed: --info shows only whether it is set.",
            secret=True),
    Setting("site", "DD_SITE", "datadoghq.com", STR,
            "Datadog site for agentless uploads."),
    Setting("agentless_url", "EMBERSCOPE_AGENTLESS_URL", None, URL,
            "emberscope-specific: full intake URL for agentless uploads (overrides DD_SITE;"
            " for tests and self-hosted intakes).",
            default_doc="https://intake.profile.<DD_SITE>/api/v2/profile"),
    Setting("main_package", "DD_MAIN_PACKAGE", None, STR,
            "Distribution name of your application: code provenance marks it as your code and"
            " git metadata is read from its package metadata."),
    Setting("git_repository_url", "DD_GIT_REPOSITORY_URL", None, STR,
            "Tag git.repository_url (credentials in the URL are stripped)."),
    Setting("git_commit_sha", "DD_GIT_COMMIT_SHA", None, STR,
            "Tag git.commit.sha."),
    Setting("debug", "EMBERSCOPE_DEBUG", False, BOOL,
            "emberscope-specific: log emberscope debug messages to stderr (emberscope-run -d).",
            native=False),
)

SETTINGS_BY_NAME = dict((s.name, s) for s in SETTINGS)

# Keys of the dict handed to the native layer, in a stable order.
NATIVE_KEYS = (
    "service", "env", "version", "tags", "output_pprof", "upload_interval", "max_frames",
    "max_time_usage_pct", "max_sampling_hz", "timeline", "stack", "stack_v2", "exception",
    "exception_sampling_interval", "agent_url", "api_timeout_ms", "code_provenance",
    "agentless", "api_key", "site", "agentless_url", "main_package", "git_repository_url",
    "git_commit_sha", "memory", "heap", "heap_sample_size", "lock", "capture_pct",
)

# Attributes of Config that are not settings of their own.
DERIVED = ("tags",)


class _Bad(Exception):
    """A value could not be used; ``args[0]`` says why, ``replacement`` what to use."""

    def __init__(self, why, replacement=None, clamped=False):
        Exception.__init__(self, why)
        self.why = why
        self.replacement = replacement
        self.clamped = clamped


def format_value(value):
    """Human/env-style rendering of a value (used in warnings, --info, --help)."""
    if value is None:
        return "unset"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict):
        if not value:
            return "(none)"
        return ",".join("%s:%s" % (k, v) for k, v in value.items())
    return str(value)


def parse_tags(raw):
    """Parse ``k:v,k2:v2`` (or ``k:v k2:v2``). Returns (dict, list of bad items)."""
    text = str(raw).strip()
    if "," in text:
        items = [part.strip() for part in text.split(",")]
    else:
        items = text.split()
    tags = {}
    bad = []
    for item in items:
        if not item:
            continue
        key, sep, value = item.partition(":")
        key = key.strip()
        value = value.strip()
        if not sep or not key or not value:
            bad.append(item)
            continue
        tags[key] = value
    return tags, bad


def _check_range(setting, value):
    lo, hi = setting.minimum, setting.maximum
    if lo is not None:
        too_low = value <= lo if setting.min_exclusive else value < lo
        if too_low:
            if setting.clamp:
                raise _Bad("is below the minimum %s" % lo, replacement=lo, clamped=True)
            raise _Bad("must be %s %s" % (">" if setting.min_exclusive else ">=", lo))
    if hi is not None and value > hi:
        if setting.clamp:
            raise _Bad("is above the maximum %s" % hi, replacement=hi, clamped=True)
        raise _Bad("must be <= %s" % hi)
    return value


def _convert(setting, raw):
    """Convert ``raw`` (a string from the environment or a Python value given
    as an argument) to the setting's type. Raises _Bad."""
    t = setting.type
    if t == BOOL:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        word = str(raw).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        if setting.allow_auto and word == "auto":
            return True
        raise _Bad("is not a boolean (use 1/0, true/false, yes/no or on/off)")
    if t == INT:
        if isinstance(raw, bool):
            raise _Bad("is not an integer")
        if isinstance(raw, int):
            value = raw
        else:
            try:
                value = int(str(raw).strip())
            except (TypeError, ValueError):
                raise _Bad("is not an integer")
        return _check_range(setting, value)
    if t == FLOAT:
        if isinstance(raw, bool):
            raise _Bad("is not a number")
        try:
            value = float(raw.strip() if isinstance(raw, str) else raw)
        except (TypeError, ValueError):
            raise _Bad("is not a number")
        if math.isnan(value) or math.isinf(value):
            raise _Bad("is not a finite number")
        return float(_check_range(setting, value))
    if t == STR:
        if raw is None:
            return None
        value = str(raw).strip()
        return value or None
    if t == HOST:
        value = str(raw).strip()
        if not value or "/" in value or any(c.isspace() for c in value):
            raise _Bad("is not a valid host name or IP address")
        return value
    if t == URL:
        value = str(raw).strip()
        if not _valid_url(value):
            raise _Bad("is not a valid agent URL (expected http://, https:// or unix://)")
        return value
    if t == TAGS:
        if isinstance(raw, dict):
            return dict((str(k), str(v)) for k, v in raw.items())
        if isinstance(raw, (list, tuple)):
            raw = ",".join(str(x) for x in raw)
        tags, bad = parse_tags(raw)
        if bad:
            raise _Bad("has malformed entries %s (expected key:value)"
                       % ", ".join(repr(b) for b in bad), replacement=tags, clamped=True)
        return tags
    raise _Bad("has an unknown type %r" % (t,))  # pragma: no cover


def _valid_url(value):
    if urlsplit is None:  # pragma: no cover
        return True
    try:
        parts = urlsplit(value)
    except Exception:
        return False
    scheme = (parts.scheme or "").lower()
    if scheme in ("http", "https"):
        try:
            parts.port  # raises ValueError on a bad port
        except ValueError:
            return False
        return bool(parts.hostname)
    if scheme == "unix":
        return bool(parts.path or parts.netloc)
    return False


def _warning(label, raw, exc, default):
    if exc.clamped:
        return "%s=%r %s; using %s" % (label, raw, exc.why, format_value(exc.replacement))
    return "%s=%r %s; using the default %s" % (label, raw, exc.why, format_value(default))


def _read_env(setting, environ):
    """Return (value, source) for one setting from ``environ``; warns on bad values."""
    for name in setting.env_names:
        raw = environ.get(name)
        if raw is None or not raw.strip():
            continue
        try:
            return _convert(setting, raw), "env " + name
        except _Bad as exc:
            default = setting.default
            if default is None and setting.default_doc:
                default = setting.default_doc
            _log.warn_once(_warning(name, raw, exc, default))
            if exc.clamped:
                return exc.replacement, "env " + name
            return setting.default, "default (bad %s)" % name
    return setting.default, "default"


def _bracket_host(host):
    if ":" in host and not host.startswith("["):
        return "[%s]" % host
    return host


def resolve_agent_url(url, host, port, socket_path=DEFAULT_AGENT_SOCKET):
    """Resolution order: explicit URL, else host/port, else the agent's unix
    socket if it exists, else http://localhost:8126. Returns (url, how)."""
    if url:
        return url, "url"
    if host or port:
        return "http://%s:%d" % (_bracket_host(host or DEFAULT_AGENT_HOST),
                                 port or DEFAULT_AGENT_PORT), "host/port"
    try:
        if socket_path and os.path.exists(socket_path):
            return "unix://" + socket_path, "socket"
    except Exception:
        pass
    return DEFAULT_AGENT_URL, "default"


def _merge_tags(dd_tags, profiling_tags):
    tags = dict(dd_tags or {})
    tags.update(profiling_tags or {})
    return tags


class Config(object):
    """Immutable, validated configuration. Build it with :func:`from_env`
    and derive variants with :meth:`with_overrides`."""

    __slots__ = tuple(s.name for s in SETTINGS) + DERIVED + ("_sources",)

    def __init__(self, values, sources):
        for s in SETTINGS:
            object.__setattr__(self, s.name, values.get(s.name, s.default))
        object.__setattr__(self, "tags", dict(values.get("tags") or {}))
        object.__setattr__(self, "_sources", dict(sources))

    def __setattr__(self, name, value):
        raise AttributeError("Config is frozen; use with_overrides()")

    def __delattr__(self, name):
        raise AttributeError("Config is frozen")

    def __eq__(self, other):
        if not isinstance(other, Config):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None

    def __repr__(self):
        def shown(k, v):
            setting = SETTINGS_BY_NAME.get(k)
            if setting is not None and setting.secret and v:
                return "%s=<hidden>" % k
            return "%s=%r" % (k, v)
        return "Config(%s)" % ", ".join(shown(k, v) for k, v in self.as_dict().items())

    def as_dict(self):
        """Every attribute (settings and derived values) as a new dict."""
        out = {}
        for name in Config.__slots__:
            if name != "_sources":
                value = getattr(self, name)
                out[name] = dict(value) if isinstance(value, dict) else value
        return out

    def source(self, name):
        """Where a value came from: 'default', 'env NAME', 'argument', ..."""
        return self._sources.get(name, "default")

    def as_native_dict(self):
        """The plain dict handed to ``emberscope._native.start``."""
        return {
            "service": self.service,
            "env": self.env,
            "version": self.version,
            "tags": dict((str(k), str(v)) for k, v in self.tags.items()),
            "output_pprof": self.output_pprof,
            "upload_interval": float(self.upload_interval),
            "max_frames": int(self.max_frames),
            "max_time_usage_pct": float(self.max_time_usage_pct),
            "max_sampling_hz": float(self.max_sampling_hz),
            "timeline": bool(self.timeline),
            "stack": bool(self.stack),
            "stack_v2": bool(self.stack_v2),
            "exception": bool(self.exception),
            "exception_sampling_interval": int(self.exception_sampling_interval),
            "agent_url": str(self.agent_url),
            "api_timeout_ms": int(self.api_timeout_ms),
            "code_provenance": bool(self.code_provenance),
            "agentless": bool(self.agentless),
            "api_key": self.api_key,
            "site": self.site,
            "agentless_url": self.agentless_url,
            "main_package": self.main_package,
            "git_repository_url": self.git_repository_url,
            "git_commit_sha": self.git_commit_sha,
            # collectors (issue 5)
            "memory": bool(self.memory),
            "heap": bool(self.heap),
            "heap_sample_size": int(effective_heap_sample_size(self)),
            "lock": bool(self.lock),
            "capture_pct": float(self.capture_pct),
        }

    def with_overrides(self, overrides, origin="Profiler"):
        """Return a new Config with some values replaced (e.g. by Profiler
        arguments). Keys are setting names or native-dict keys; ``url`` is an
        alias of ``agent_url``; ``tags`` replaces the merged tags. Bad values
        and unknown keys log one warning each and are ignored."""
        values = self.as_dict()
        sources = dict(self._sources)
        url_given = False
        hostport_given = False
        tags_given = False
        for key in sorted(overrides):
            raw = overrides[key]
            if raw is None:
                continue
            name = "agent_url" if key == "url" else key
            label = "%s(%s)" % (origin, key)
            if name == "tags":
                setting = Setting("tags", None, {}, TAGS, "")
            else:
                setting = SETTINGS_BY_NAME.get(name)
            if setting is None:
                _log.warn("%s: unknown setting %r ignored (known: %s)", origin, key,
                          ", ".join(sorted(set(SETTINGS_BY_NAME) | set(NATIVE_KEYS) | {"url"})))
                continue
            current = values.get(name)
            try:
                value = _convert(setting, raw)
            except _Bad as exc:
                if exc.clamped:
                    _log.warn("%s=%r %s; using %s", label, raw, exc.why, format_value(exc.replacement))
                    value = exc.replacement
                else:
                    _log.warn("%s=%r %s; keeping %s", label, raw, exc.why, format_value(current))
                    continue
            values[name] = value
            sources[name] = "argument"
            if name == "agent_url":
                url_given = True
            elif name in ("agent_host", "agent_port"):
                hostport_given = True
            elif name == "tags":
                tags_given = True
        if not tags_given and ("dd_tags" in overrides or "profiling_tags" in overrides):
            values["tags"] = _merge_tags(values["dd_tags"], values["profiling_tags"])
            sources["tags"] = "argument"
        if hostport_given and not url_given:
            values["agent_url"], _ = resolve_agent_url(None, values["agent_host"], values["agent_port"])
            sources["agent_url"] = "argument (host/port)"
        return Config(values, sources)

    def describe(self):
        return describe(self)


def from_env(environ=None):
    """Parse the environment (``os.environ`` by default) into a Config.
    Never raises; bad values warn once and fall back to defaults."""
    env = os.environ if environ is None else environ
    values = {}
    sources = {}
    for setting in SETTINGS:
        try:
            value, source = _read_env(setting, env)
        except Exception as exc:  # pragma: no cover - defensive
            _log.warn_once("could not read %s: %s; using the default %s",
                           setting.env, exc, format_value(setting.default))
            value, source = setting.default, "default"
        values[setting.name] = value
        sources[setting.name] = source
    values["tags"] = _merge_tags(values["dd_tags"], values["profiling_tags"])
    tag_sources = [sources[n] for n in ("dd_tags", "profiling_tags") if sources[n] != "default"]
    sources["tags"] = " + ".join(tag_sources) if tag_sources else "default"
    url, how = resolve_agent_url(values["agent_url"], values["agent_host"], values["agent_port"])
    values["agent_url"] = url
    if how == "host/port":
        parts = [sources[n] for n in ("agent_host", "agent_port") if sources[n] != "default"]
        sources["agent_url"] = " + ".join(parts)
    elif how == "socket":
        sources["agent_url"] = "default (agent socket exists)"
    elif how == "default":
        sources["agent_url"] = "default"
    return Config(values, sources)


def default_heap_sample_size():
    """The reference's rule: max(total RAM / 65536, 1 MiB)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        ram = 0
    return max(int(ram) // 65536, 1 << 20)


def effective_heap_sample_size(config):
    """DD_PROFILING_HEAP_SAMPLE_SIZE, else :func:`default_heap_sample_size`. Never 0:
    turning the heap off does not make every allocation a sample."""
    value = getattr(config, "heap_sample_size", None)
    if value is None or value < 1:
        return default_heap_sample_size()
    return int(value)


def collectors_line(config):
    """One line for --info: which collectors the configuration turns on."""
    parts = []
    if config.memory:
        parts.append("memory on (one sample per %d bytes on average)"
                     % effective_heap_sample_size(config))
        parts.append("heap %s" % ("on" if config.heap else "off"))
    else:
        parts.append("memory off")
        parts.append("heap off")
    if config.lock:
        parts.append("lock on (%s%% of acquisitions, scaled)" % format_value(config.capture_pct))
    else:
        parts.append("lock off")
    parts.append("exception %s" % ("on" if config.exception else "off"))
    return "collectors: " + ", ".join(parts)


def profiling_enabled(environ=None):
    """Just DD_PROFILING_ENABLED (used by the bootstrap before anything else)."""
    env = os.environ if environ is None else environ
    try:
        value, _ = _read_env(SETTINGS_BY_NAME["enabled"], env)
        return bool(value)
    except Exception:  # pragma: no cover - defensive
        return False


def planned_sampler(config):
    """Which sampler the configuration asks for: (kind, why). The native layer
    may still degrade 'native' to 'fallback' at start when the platform does
    not allow reading the interpreter's memory."""
    if not config.stack:
        return "off", "DD_PROFILING_STACK_ENABLED is false"
    if not config.stack_v2:
        return "fallback", "DD_PROFILING_STACK_V2_ENABLED is false"
    return "native", None


def describe(config=None, native_unavailable=None):
    """Lines describing the effective configuration (for --info).
    ``native_unavailable``: why the native extension cannot be loaded, if so."""
    if config is None:
        config = from_env()
    lines = []
    if config.enabled:
        lines.append("profiling: enabled [%s]" % config.source("enabled"))
    else:
        lines.append("profiling: disabled [%s] (set DD_PROFILING_ENABLED=true or use -p)"
                     % config.source("enabled"))
    kind, why = planned_sampler(config)
    if native_unavailable:
        lines.append("sampler: none (native extension unavailable: %s; configured: %s)"
                     % (native_unavailable, kind))
    elif kind == "native":
        lines.append("sampler: native (GIL-free; falls back to the fallback sampler, "
                     "with one warning, if the native layer cannot read this process)")
    elif kind == "fallback":
        lines.append("sampler: fallback (%s)" % why)
    else:
        lines.append("sampler: off (%s)" % why)
    lines.append(collectors_line(config))
    lines.append("settings:")
    width = max(len(s.env) for s in SETTINGS)
    for setting in SETTINGS:
        value = getattr(config, setting.name)
        if setting.secret:
            shown = "<set, hidden>" if value else "unset"
        elif setting.name == "agent_url":
            shown = value
        elif value is None and setting.default_doc:
            shown = "unset (%s)" % setting.default_doc
        else:
            shown = format_value(value)
        lines.append("  %-*s = %s  [%s]" % (width, setting.env, shown, config.source(setting.name)))
    lines.append("  %-*s = %s  [%s]" % (width, "(merged tags)", format_value(config.tags),
                                        config.source("tags")))
    return lines


def env_help(width=79):
    """Lines documenting every environment variable (for --help)."""
    lines = []
    for setting in SETTINGS:
        default = setting.default_doc if setting.default_doc else format_value(setting.default)
        names = " | ".join(setting.env_names)
        lines.append("  %s  (default: %s)" % (names, default))
        lines.extend(textwrap.wrap(setting.doc, width=width, initial_indent="      ",
                                   subsequent_indent="      "))
    return lines


def markdown_table():
    """The settings as a Markdown table (for the documentation)."""
    rows = ["| variable | default | type | meaning |", "| --- | --- | --- | --- |"]
    for setting in SETTINGS:
        default = setting.default_doc if setting.default_doc else format_value(setting.default)
        rows.append("| `%s` | %s | %s | %s |" % (
            "` / `".join(setting.env_names), default, setting.type, setting.doc))
    return rows
