"""Reads what each profiler wrote, into one shape: a list of (stack, {sample type: value}),
stack = function names leaf first. Written for the benchmarks, independent of emberscope's
own (Rust) encoder:

  * pprof (perftools.profiles.Profile), gzip (emberscope), zstd (ddtrace) or raw;
  * pyroscope-io uploads: gzip-compressed push.v1.PushRequest (Connect) wrapping pprof;
  * py-spy `record --format raw`: collapsed stacks, "frame;frame;... count", root first.
"""
import gzip
import zlib

try:
    import zstandard
except ImportError:  # pragma: no cover - only the ddtrace files need it
    zstandard = None


def _varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf):
    """Yield (field number, wire type, value) of one protobuf message; LEN values are bytes."""
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 1:
            val, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            ln, pos = _varint(buf, pos)
            val, pos = bytes(buf[pos:pos + ln]), pos + ln
            if pos > n:
                raise ValueError("truncated field")
        elif wire == 5:
            val, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError("bad wire type %d" % wire)
        yield num, wire, val


def _ints(wire, val):
    if wire == 2:
        out, pos = [], 0
        while pos < len(val):
            v, pos = _varint(val, pos)
            out.append(v)
        return out
    return [val]


def _signed(v):
    return v - (1 << 64) if v & (1 << 63) else v


def decompress(data):
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        if zstandard is None:
            raise RuntimeError("zstandard is not installed")
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def decode_pprof(data):
    """-> (sample type names, [(leaf-first function names, [values])])"""
    data = decompress(data)
    strings, types, raw_samples, locations, functions = [], [], [], {}, {}
    for num, wire, val in fields(data):
        if num == 1:
            types.append({n: v for n, _, v in fields(val)}.get(1, 0))
        elif num == 2:
            locs, vals = [], []
            for n, w, v in fields(val):
                if n == 1:
                    locs.extend(_ints(w, v))
                elif n == 2:
                    vals.extend(_signed(x) for x in _ints(w, v))
            raw_samples.append((locs, vals))
        elif num == 4:
            lid, funcs = 0, []
            for n, w, v in fields(val):
                if n == 1:
                    lid = v
                elif n == 4:
                    funcs.append({n2: v2 for n2, _, v2 in fields(v)}.get(1, 0))
            locations[lid] = funcs
        elif num == 5:
            f = {n: v for n, _, v in fields(val)}
            functions[f.get(1, 0)] = f.get(2, 0)
        elif num == 6:
            strings.append(val.decode("utf-8", "replace"))

    def s(i):
        return strings[i] if 0 <= i < len(strings) else ""

    names = [s(t) for t in types]
    samples = []
    for locs, vals in raw_samples:
        stack = []
        for lid in locs:
            # a location's lines are innermost first (inlined frames)
            stack.extend(s(functions.get(fid, 0)) for fid in locations.get(lid, []))
        samples.append((stack, vals))
    return names, samples


def decode_pyroscope_push(body):
    """All pprof profiles inside one push.v1.PushRequest body (gzip or not)."""
    body = decompress(body)
    out = []
    for n, w, series in fields(body):
        if n != 1 or w != 2:
            continue
        for n2, w2, sample in fields(series):
            if n2 != 2 or w2 != 2:
                continue
            for n3, w3, raw in fields(sample):
                if n3 == 1 and w3 == 2:
                    out.append(decode_pprof(raw))
    return out


def parse_pyspy_raw(text):
    """py-spy raw output -> [(leaf-first names, [count])]; a frame reads 'func (file:line)'."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        try:
            count = int(count)
        except ValueError:
            continue
        names = []
        for frame in stack.split(";"):
            names.append(frame.split(" (", 1)[0].strip())
        names.reverse()
        out.append((names, [count]))
    return out


class Profile:
    """Samples of one run, merged over every file; values are keyed by sample type."""

    def __init__(self):
        self.samples = []  # (stack, {type: value})

    def add(self, names, samples):
        for stack, vals in samples:
            self.samples.append((stack, dict(zip(names, vals))))

    def types(self):
        t = set()
        for _, vals in self.samples:
            t.update(k for k, v in vals.items() if v)
        return t

    def total(self, sample_type):
        return sum(v.get(sample_type, 0) for _, v in self.samples)

    def share(self, sample_type, a="planted_a", b="planted_b"):
        """Share of (a + b) attributed to a, counting a sample for whichever of the two is
        nearest the leaf on its stack; None when neither appears."""
        va = vb = 0
        for stack, vals in self.samples:
            v = vals.get(sample_type, 0)
            if not v:
                continue
            for name in stack:
                if name == a or name.endswith("." + a):
                    va += v
                    break
                if name == b or name.endswith("." + b):
                    vb += v
                    break
        return va / (va + vb) if va + vb else None
