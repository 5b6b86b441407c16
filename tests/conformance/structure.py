"""Decoding of recorded profile uploads and their structural comparison.

``Upload.from_request`` decodes one recorded ``POST`` (multipart framing,
``event.json``, zstd attachments, code provenance, pprof). ``compare`` takes
the uploads of the reference (ddtrace) and of emberscope for the same workload
and returns the structural differences as stable string ids, e.g.
``"internal.missing:libdatadog_version"``; the conformance test checks them
against its documented allow-list.
"""

import json
import os
import re
import sys

from . import capture

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/ (for profiler.pprof_decode)
from profiler import pprof_decode  # noqa: E402  (shared pure-Python pprof decoder)

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
RFC3339_NANOS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$")
BOUNDARY = re.compile(r"^[0-9a-f]{16}-[0-9a-f]{16}-[0-9a-f]{16}-[0-9a-f]{16}$")

# profiler_config tokens in the order the reference emits them (see
# reference §1.3): features, then exp_dd, CAP<pct>, MAXF<n>.
PROFILER_CONFIG_ORDER = ["stack_v2", "stack", "lock", "mem", "heap", "nativeheap",
                         "pytorch", "exception", "exp_dd", "CAP", "MAXF"]


def zstd_decompress(data):
    import zstandard
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def rfc3339_to_ns(s):
    """'2026-11-24T18:36:48.605662892Z' -> integer ns since the epoch."""
    import calendar
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{9})Z$", s)
    if not m:
        raise ValueError("not RFC 3339 with nanoseconds: %r" % s)
    y, mo, d, h, mi, sec, ns = (int(g) for g in m.groups())
    return calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0)) * 10 ** 9 + ns


def split_tags(s):
    """'a:b,c:d:e' -> [('a', 'b'), ('c', 'd:e')]."""
    out = []
    for item in s.split(","):
        k, _, v = item.partition(":")
        out.append((k, v))
    return out


def config_tokens(profiler_config):
    """profiler_config split into tokens, CAP1.0/MAXF64 reduced to CAP/MAXF."""
    toks = []
    for t in profiler_config.split("_"):
        if t.startswith("CAP"):
            toks.append("CAP")
        elif t.startswith("MAXF"):
            toks.append("MAXF")
        else:
            toks.append(t)
    # 'stack_v2' and 'exp_dd' contain the separator
    joined = []
    i = 0
    while i < len(toks):
        if i + 1 < len(toks) and (toks[i], toks[i + 1]) in (("stack", "v2"), ("exp", "dd")):
            joined.append(toks[i] + "_" + toks[i + 1])
            i += 2
        else:
            joined.append(toks[i])
            i += 1
    return joined


def json_kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def raw_locations(raw):
    """{location id: (mapping_id, address, number of lines)} straight from the protobuf."""
    out = {}
    for field, _wire, value in pprof_decode.iter_fields(raw):
        if field != 4:
            continue
        lid = mapping_id = address = 0
        nlines = 0
        for f2, _w2, v2 in pprof_decode.iter_fields(value):
            if f2 == 1:
                lid = v2
            elif f2 == 2:
                mapping_id = v2
            elif f2 == 3:
                address = v2
            elif f2 == 4:
                nlines += 1
        out[lid] = (mapping_id, address, nlines)
    return out


class Upload(object):
    """One decoded profile upload."""

    def __init__(self, req):
        self.request = req
        self.content_type = req.header("content-type")
        self.parts = capture.parse_multipart(req.body, self.content_type)
        event_part = self.parts[0]
        self.event_raw = event_part.data
        self.event = json.loads(event_part.data.decode("utf-8"), object_pairs_hook=_Ordered)
        self.attachments = {}
        for p in self.parts[1:]:
            self.attachments[p.name] = p.data
        self.provenance = None
        self.provenance_raw = None
        if "code-provenance.json" in self.attachments:
            self.provenance_raw = zstd_decompress(self.attachments["code-provenance.json"])
            self.provenance = json.loads(self.provenance_raw.decode("utf-8"),
                                         object_pairs_hook=_Ordered)
        self.pprof_raw = zstd_decompress(self.attachments["profile.pprof"])
        self.profile = pprof_decode.decode(self.pprof_raw)
        self.locations = raw_locations(self.pprof_raw)
        self.tags = split_tags(self.event["tags_profiler"])
        self.start_ns = rfc3339_to_ns(self.event["start"])
        self.end_ns = rfc3339_to_ns(self.event["end"])

    @classmethod
    def from_request(cls, req):
        return cls(req)

    @property
    def tag_keys(self):
        return [k for k, _ in self.tags]

    def tag(self, key):
        for k, v in self.tags:
            if k == key:
                return v
        return None

    def label_kinds(self):
        """{sample type: {label key: set of 'num'/'str'}} over samples with a non-zero value."""
        prof = self.profile
        names = prof.sample_type_names
        out = {}
        for s in prof.samples:
            for i, v in enumerate(s.values):
                if not v:
                    continue
                d = out.setdefault(names[i], {})
                for lab in s.label_list:
                    d.setdefault(lab.key, set()).add("str" if lab.str is not None else "num")
        return out


class _Ordered(list):
    """JSON object kept as an ordered list of pairs with dict-like access."""

    def __init__(self, pairs):
        super(_Ordered, self).__init__(pairs)

    def keys(self):
        return [k for k, _ in self]

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return list.__getitem__(self, key)
        for k, v in self:
            if k == key:
                return v
        raise KeyError(key)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key):
        return any(k == key for k, _ in self)

    def items(self):
        return list(self)


def value_kind(v):
    return "object" if isinstance(v, _Ordered) else json_kind(v)


# -------------------------------------------------------------- compare --

def _union_keys(uploads, getter):
    keys = []
    kinds = {}
    for u in uploads:
        obj = getter(u)
        if not isinstance(obj, _Ordered):
            continue
        for k, v in obj:
            if k not in keys:
                keys.append(k)
            kinds.setdefault(k, set()).add(value_kind(v))
    return keys, kinds


def compare(ref, emb):
    """Structural differences between two lists of Uploads (reference, emberscope),
    as a sorted list of ids. Per-process facts that are not structure (values of
    ids, times, pids) are checked by the tests, not here."""
    diffs = set()
    r0, e0 = ref[0], emb[0]

    # --- request
    if r0.request.path != e0.request.path:
        diffs.add("request.path")
    rh = set(r0.request.header_names)
    eh = set(e0.request.header_names)
    for h in sorted(rh - eh):
        diffs.add("header.missing:%s" % h)
    for h in sorted(eh - rh):
        diffs.add("header.extra:%s" % h)
    for h in sorted(rh & eh):
        if h in ("host", "content-length", "content-type", "dd-evp-origin",
                 "dd-evp-origin-version"):
            continue  # per-request values, or compared by the tests
        if r0.request.header(h) != e0.request.header(h):
            diffs.add("header.value:%s" % h)

    # --- multipart parts
    def shape(u):
        return [(p.name, p.filename, p.content_type) for p in u.parts]
    if shape(r0) != shape(e0):
        diffs.add("multipart.parts")

    # --- event.json
    if r0.event.keys() != e0.event.keys():
        diffs.add("event.keys")
    if r0.tag_keys != e0.tag_keys:
        diffs.add("tags_profiler.keys")
    rt = config_tokens(r0.tag("profiler_config") or "")
    et = config_tokens(e0.tag("profiler_config") or "")
    for t in rt:
        if t not in et:
            diffs.add("profiler_config.missing:%s" % t)
    for t in et:
        if t not in rt:
            diffs.add("profiler_config.extra:%s" % t)
    for toks in (rt, et):
        known = [t for t in toks if t in PROFILER_CONFIG_ORDER]
        if known != sorted(known, key=PROFILER_CONFIG_ORDER.index) or len(known) != len(toks):
            diffs.add("profiler_config.order")
    for key in ("family", "version"):
        if r0.event.get(key) != e0.event.get(key):
            diffs.add("event.value:%s" % key)
    for key in ("endpoint_counts", "process_tags"):
        if value_kind(r0.event.get(key)) != value_kind(e0.event.get(key)):
            diffs.add("event.kind:%s" % key)
    if r0.event.get("process_tags") != e0.event.get("process_tags"):
        diffs.add("event.value:process_tags")

    # internal: keys of the reference that emberscope lacks, and type mismatches
    rk, rkinds = _union_keys(ref, lambda u: u.event.get("internal"))
    ek, ekinds = _union_keys(emb, lambda u: u.event.get("internal"))
    for k in rk:
        if k not in ek:
            diffs.add("internal.missing:%s" % k)
        elif rkinds[k] != ekinds[k] and not (rkinds[k] | ekinds[k]) <= {"number", "null"}:
            diffs.add("internal.kind:%s" % k)

    def settings(u):
        info = u.event.get("info")
        prof = info.get("profiler") if isinstance(info, _Ordered) else None
        return prof.get("settings") if isinstance(prof, _Ordered) else None
    if settings(r0) is None or settings(e0) is None:
        diffs.add("info.profiler.settings")
    else:
        rk, rkinds = _union_keys(ref, settings)
        ek, ekinds = _union_keys(emb, settings)
        for k in rk:
            if k not in ek:
                diffs.add("settings.missing:%s" % k)
            elif rkinds[k] != ekinds[k] and "null" not in (rkinds[k] | ekinds[k]):
                diffs.add("settings.kind:%s" % k)

    # --- code provenance
    if (r0.provenance is None) != (e0.provenance is None):
        diffs.add("provenance.presence")
    elif r0.provenance is not None:
        if r0.provenance.keys() != e0.provenance.keys():
            diffs.add("provenance.keys")
        rents = r0.provenance.get("v1") or []
        eents = e0.provenance.get("v1") or []
        rkeys = {tuple(x.keys()) for x in rents}
        ekeys = {tuple(x.keys()) for x in eents}
        if {frozenset(k) for k in rkeys} != {frozenset(k) for k in ekeys}:
            diffs.add("provenance.entry_keys")
        elif rkeys != ekeys:
            diffs.add("provenance.entry_key_order")
        if {x["kind"] for x in rents} != {x["kind"] for x in eents}:
            diffs.add("provenance.kinds")
        for u_ents in (rents, eents):
            if not u_ents or (u_ents[0]["kind"], u_ents[0]["name"]) != ("standard library",
                                                                         "stdlib"):
                diffs.add("provenance.first_entry")
        rsyn = {(x["name"], tuple(x["paths"])) for x in rents if x["name"] in ("native", "runtime")}
        esyn = {(x["name"], tuple(x["paths"])) for x in eents if x["name"] in ("native", "runtime")}
        if rsyn != esyn:
            diffs.add("provenance.synthetic")

    # --- pprof
    rp, ep = r0.profile, e0.profile
    if rp.sample_type_names != ep.sample_type_names:
        diffs.add("pprof.sample_types")
    if rp.period_type != ep.period_type or rp.period != ep.period:
        diffs.add("pprof.period_type")
    for attr in ("default_sample_type", "drop_frames", "keep_frames"):
        if getattr(rp, attr) != getattr(ep, attr):
            diffs.add("pprof.%s" % attr)
    if bool(rp.comments) != bool(ep.comments):
        diffs.add("pprof.comments")

    def loc_shape(uploads):
        mapped = any(u.profile.mappings for u in uploads)
        mapping_ids = {m for u in uploads for (m, _a, _n) in u.locations.values()}
        nlines = {n for u in uploads for (_m, _a, n) in u.locations.values()}
        sysnames = {f[1] for u in uploads for f in u.profile.functions.values()}
        return mapped, mapping_ids, nlines, sysnames
    rm, rmids, rnl, rsys = loc_shape(ref)
    em, emids, enl, esys = loc_shape(emb)
    if rm != em or rmids != emids:
        diffs.add("pprof.mappings")
    if rnl != enl:
        diffs.add("pprof.lines_per_location")
    if rsys != esys:
        diffs.add("pprof.function_system_name")

    # label keys and value kinds per sample type, over all uploads
    def labels(uploads):
        out = {}
        for u in uploads:
            for st, d in u.label_kinds().items():
                o = out.setdefault(st, {})
                for k, kinds in d.items():
                    o.setdefault(k, set()).update(kinds)
        return out
    rl, el = labels(ref), labels(emb)
    for st in rl:
        if st not in el:
            diffs.add("samples.only_reference:%s" % st)
    for st in el:
        if st not in rl:
            diffs.add("samples.only_emberscope:%s" % st)
    for st in set(rl) & set(el):
        for k in set(rl[st]) | set(el[st]):
            if k not in el[st]:
                diffs.add("label.missing:%s:%s" % (st, k))
            elif k not in rl[st]:
                diffs.add("label.extra:%s:%s" % (st, k))
            elif rl[st][k] != el[st][k]:
                diffs.add("label.kind:%s:%s" % (st, k))
    return sorted(diffs)
