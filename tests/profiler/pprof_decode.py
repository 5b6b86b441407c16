"""An independent, minimal pprof decoder in pure Python.

It deliberately shares no code with emberscope's own (Rust) profile builder:
the tests use it to check what the product writes. It understands exactly the
protobuf subset pprof needs (varints, 64/32-bit fixed fields, length-delimited
fields, packed and unpacked repeated scalars) and the ``perftools.profiles``
schema (profile.proto):

    Profile   1 sample_type*  2 sample*  3 mapping*  4 location*  5 function*
              6 string_table* 7 drop_frames 8 keep_frames 9 time_nanos
              10 duration_nanos 11 period_type 12 period 13 comment*
              14 default_sample_type 15 doc_url
    ValueType 1 type 2 unit                      (string table indexes)
    Sample    1 location_id* 2 value* 3 label*
    Label     1 key 2 str 3 num 4 num_unit
    Mapping   1 id 2 memory_start 3 memory_limit 4 file_offset 5 filename 6 build_id ...
    Location  1 id 2 mapping_id 3 address 4 line* 5 is_folded
    Line      1 function_id 2 line 3 column
    Function  1 id 2 name 3 system_name 4 filename 5 start_line

Files may be gzip-compressed (what emberscope writes) or raw.
"""

import collections
import gzip
import io

# ----------------------------------------------------------------- protobuf --

WIRE_VARINT = 0
WIRE_FIXED64 = 1
WIRE_LEN = 2
WIRE_FIXED32 = 5


class DecodeError(ValueError):
    pass


def read_varint(buf, pos):
    """Return (unsigned value, new position)."""
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise DecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift >= 70:
            raise DecodeError("varint too long")
    return result & 0xFFFFFFFFFFFFFFFF, pos


def to_int64(u):
    """Reinterpret an unsigned 64-bit varint as a signed int64 (two's complement)."""
    return u - (1 << 64) if u & (1 << 63) else u


def iter_fields(buf):
    """Yield (field number, wire type, value) for one message.

    value is an int for varint/fixed fields and a bytes object for
    length-delimited ones.
    """
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise DecodeError("field number 0 at offset %d" % pos)
        if wire == WIRE_VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == WIRE_FIXED64:
            if pos + 8 > n:
                raise DecodeError("truncated fixed64")
            value = int.from_bytes(buf[pos:pos + 8], "little")
            pos += 8
        elif wire == WIRE_LEN:
            length, pos = read_varint(buf, pos)
            if pos + length > n:
                raise DecodeError("truncated length-delimited field %d" % field)
            value = bytes(buf[pos:pos + length])
            pos += length
        elif wire == WIRE_FIXED32:
            if pos + 4 > n:
                raise DecodeError("truncated fixed32")
            value = int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        else:
            raise DecodeError("unsupported wire type %d (field %d)" % (wire, field))
        yield field, wire, value


def repeated_varints(wire, value):
    """Values of a repeated scalar field occurrence: packed (LEN) or single (VARINT)."""
    if wire == WIRE_VARINT:
        return [value]
    if wire == WIRE_LEN:
        out = []
        pos = 0
        while pos < len(value):
            v, pos = read_varint(value, pos)
            out.append(v)
        return out
    raise DecodeError("unexpected wire type %d for a repeated varint" % wire)


# -------------------------------------------------------------------- pprof --

Frame = collections.namedtuple("Frame", "name filename line")
ValueType = collections.namedtuple("ValueType", "type unit")


class Label(object):
    __slots__ = ("key", "str", "num", "num_unit")

    def __init__(self, key, str_=None, num=None, num_unit=None):
        self.key = key
        self.str = str_
        self.num = num
        self.num_unit = num_unit

    @property
    def value(self):
        return self.str if self.str is not None else self.num

    def __repr__(self):
        return "Label(%r=%r)" % (self.key, self.value)


class Sample(object):
    __slots__ = ("values", "location_ids", "frames", "labels", "label_list")

    def __init__(self, values, location_ids, frames, label_list):
        self.values = values
        self.location_ids = location_ids
        self.frames = frames  # leaf first
        self.label_list = label_list
        # A pprof sample may repeat a key; keep the first for the dict view.
        labels = {}
        for lab in label_list:
            labels.setdefault(lab.key, lab.value)
        self.labels = labels

    @property
    def leaf(self):
        return self.frames[0] if self.frames else None

    def function_names(self):
        return [f.name for f in self.frames]

    def __repr__(self):
        return "Sample(values=%r, frames=%r, labels=%r)" % (
            self.values, [f.name for f in self.frames], self.labels)


class Profile(object):
    def __init__(self):
        self.sample_types = []  # [ValueType]
        self.samples = []
        self.string_table = []
        self.locations = {}  # id -> [Frame] (first = innermost inlined)
        self.location_address = {}  # id -> address
        self.functions = {}  # id -> (name, system_name, filename, start_line)
        self.mappings = []
        self.time_nanos = 0
        self.duration_nanos = 0
        self.period_type = None
        self.period = 0
        self.comments = []
        self.drop_frames = None
        self.keep_frames = None
        self.default_sample_type = 0
        self.path = None

    # --- sample types
    @property
    def sample_type_names(self):
        return ["%s/%s" % (vt.type, vt.unit) for vt in self.sample_types]

    def type_index(self, sample_type):
        """Index of a sample type given as 'cpu-time' or 'cpu-time/nanoseconds'."""
        for i, vt in enumerate(self.sample_types):
            if sample_type in (vt.type, "%s/%s" % (vt.type, vt.unit)):
                return i
        raise KeyError("sample type %r not in %r" % (sample_type, self.sample_type_names))

    @property
    def end_nanos(self):
        return self.time_nanos + self.duration_nanos

    def __repr__(self):
        return "Profile(%s, %d samples, time_nanos=%d, duration_nanos=%d)" % (
            self.path or "?", len(self.samples), self.time_nanos, self.duration_nanos)


def _decode_value_type(buf):
    t = u = 0
    for field, wire, value in iter_fields(buf):
        if field == 1:
            t = value
        elif field == 2:
            u = value
    return (t, u)


def decode(data):
    """Decode pprof bytes (gzip-compressed or raw) into a Profile."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    raw_sample_types = []
    raw_samples = []
    raw_locations = []
    raw_functions = []
    raw_mappings = []
    strings = []
    prof = Profile()
    period_type = None
    for field, wire, value in iter_fields(data):
        if field == 1:
            raw_sample_types.append(_decode_value_type(value))
        elif field == 2:
            raw_samples.append(value)
        elif field == 3:
            raw_mappings.append(value)
        elif field == 4:
            raw_locations.append(value)
        elif field == 5:
            raw_functions.append(value)
        elif field == 6:
            strings.append(value.decode("utf-8"))
        elif field == 7:
            prof.drop_frames = to_int64(value)
        elif field == 8:
            prof.keep_frames = to_int64(value)
        elif field == 9:
            prof.time_nanos = to_int64(value)
        elif field == 10:
            prof.duration_nanos = to_int64(value)
        elif field == 11:
            period_type = _decode_value_type(value)
        elif field == 12:
            prof.period = to_int64(value)
        elif field == 13:
            prof.comments.extend(to_int64(v) for v in repeated_varints(wire, value))
        elif field == 14:
            prof.default_sample_type = to_int64(value)
        # other fields (doc_url, unknown) are ignored

    if not strings or strings[0] != "":
        raise DecodeError("string_table[0] must be the empty string, got %r"
                          % (strings[:1],))
    prof.string_table = strings

    def s(i):
        if i < 0 or i >= len(strings):
            raise DecodeError("string index %d out of range (%d strings)" % (i, len(strings)))
        return strings[i]

    prof.sample_types = [ValueType(s(t), s(u)) for t, u in raw_sample_types]
    if period_type is not None:
        prof.period_type = ValueType(s(period_type[0]), s(period_type[1]))

    for buf in raw_functions:
        fid = 0
        name = system_name = filename = 0
        start_line = 0
        for field, wire, value in iter_fields(buf):
            if field == 1:
                fid = value
            elif field == 2:
                name = to_int64(value)
            elif field == 3:
                system_name = to_int64(value)
            elif field == 4:
                filename = to_int64(value)
            elif field == 5:
                start_line = to_int64(value)
        if fid == 0:
            raise DecodeError("function with id 0")
        if fid in prof.functions:
            raise DecodeError("duplicate function id %d" % fid)
        prof.functions[fid] = (s(name), s(system_name), s(filename), start_line)

    for buf in raw_mappings:
        m = {}
        for field, wire, value in iter_fields(buf):
            m[field] = value
        prof.mappings.append(m)

    for buf in raw_locations:
        lid = 0
        address = 0
        lines = []
        for field, wire, value in iter_fields(buf):
            if field == 1:
                lid = value
            elif field == 3:
                address = value
            elif field == 4:
                fn_id = 0
                line = 0
                for f2, w2, v2 in iter_fields(value):
                    if f2 == 1:
                        fn_id = v2
                    elif f2 == 2:
                        line = to_int64(v2)
                if fn_id not in prof.functions:
                    raise DecodeError("line refers to unknown function id %d" % fn_id)
                name, _sys, filename, _start = prof.functions[fn_id]
                lines.append(Frame(name, filename, line))
        if lid == 0:
            raise DecodeError("location with id 0")
        if lid in prof.locations:
            raise DecodeError("duplicate location id %d" % lid)
        prof.locations[lid] = lines
        prof.location_address[lid] = address

    ntypes = len(prof.sample_types)
    for buf in raw_samples:
        loc_ids = []
        values = []
        labels = []
        for field, wire, value in iter_fields(buf):
            if field == 1:
                loc_ids.extend(repeated_varints(wire, value))
            elif field == 2:
                values.extend(to_int64(v) for v in repeated_varints(wire, value))
            elif field == 3:
                key = 0
                str_ = None
                num = None
                num_unit = None
                for f2, w2, v2 in iter_fields(value):
                    if f2 == 1:
                        key = to_int64(v2)
                    elif f2 == 2:
                        str_ = to_int64(v2)
                    elif f2 == 3:
                        num = to_int64(v2)
                    elif f2 == 4:
                        num_unit = to_int64(v2)
                # proto3: a zero str index means "no string"; a label has either.
                # proto3 omits zero values: no str index means a numeric label
                # (num 0 when absent).
                labels.append(Label(
                    s(key),
                    s(str_) if str_ else None,
                    (num or 0) if not str_ else None,
                    s(num_unit) if num_unit else None,
                ))
        if len(values) != ntypes:
            raise DecodeError("sample has %d values for %d sample types" % (len(values), ntypes))
        frames = []
        for lid in loc_ids:
            if lid not in prof.locations:
                raise DecodeError("sample refers to unknown location id %d" % lid)
            frames.extend(prof.locations[lid])
        prof.samples.append(Sample(values, loc_ids, frames, labels))
    return prof


def load(path):
    with open(path, "rb") as f:
        prof = decode(f.read())
    prof.path = str(path)
    return prof


# ------------------------------------------------------------ aggregations --

def _iter_samples(profiles):
    if isinstance(profiles, Profile):
        profiles = [profiles]
    for prof in profiles:
        for sample in prof.samples:
            yield prof, sample


def _values(profiles, sample_type, where=None):
    for prof, sample in _iter_samples(profiles):
        if where is not None and not where(sample):
            continue
        yield sample, sample.values[prof.type_index(sample_type)]


def total(profiles, sample_type, where=None):
    """Sum of one sample type over all samples (optionally filtered)."""
    return sum(v for _s, v in _values(profiles, sample_type, where))


def self_by_function(profiles, sample_type, where=None):
    """{leaf function name: value} ("self" time)."""
    out = collections.Counter()
    for sample, v in _values(profiles, sample_type, where):
        if v and sample.frames:
            out[sample.frames[0].name] += v
    return dict(out)


def total_by_function(profiles, sample_type, where=None):
    """{function name: value of the samples whose stack contains it (once per sample)}."""
    out = collections.Counter()
    for sample, v in _values(profiles, sample_type, where):
        if v:
            for name in set(f.name for f in sample.frames):
                out[name] += v
    return dict(out)


def by_label(profiles, sample_type, key, where=None):
    """{label value: value} for one label key (samples without it under None)."""
    out = collections.Counter()
    for sample, v in _values(profiles, sample_type, where):
        out[sample.labels.get(key)] += v
    return dict(out)


def by_thread(profiles, sample_type, key="thread name", where=None):
    return by_label(profiles, sample_type, key, where)


def samples_where(profiles, where):
    return [s for _p, s in _iter_samples(profiles) if where(s)]


def with_label(key, value):
    return lambda s: s.labels.get(key) == value


def self_in(function_name):
    return lambda s: bool(s.frames) and s.frames[0].name == function_name


def stack_contains(function_name):
    return lambda s: any(f.name == function_name for f in s.frames)


def all_of(*preds):
    return lambda s: all(p(s) for p in preds)


def dump(prof, sample_type=None, limit=30):
    """Human-readable summary for assertion messages."""
    out = io.StringIO()
    out.write("%r\n" % (prof,))
    out.write("sample types: %s\n" % ", ".join(prof.sample_type_names))
    for sample in prof.samples[:limit]:
        vals = sample.values
        if sample_type is not None:
            vals = vals[prof.type_index(sample_type)]
        out.write("  %r %s %r\n" % (vals, " <- ".join(
            "%s:%d" % (f.name, f.line) for f in sample.frames[:8]), sample.labels))
    if len(prof.samples) > limit:
        out.write("  ... %d more\n" % (len(prof.samples) - limit))
    return out.getvalue()
