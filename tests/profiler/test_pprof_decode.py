"""Unit tests of the independent pprof decoder (no interpreter, no product code).

The profiles are encoded by hand here, field by field, from profile.proto.
"""

import gzip

import pytest

from . import pprof_decode as P


# --- a minimal hand encoder (test-only) -------------------------------------

def varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint((field << 3) | wire)


def f_varint(field, n):
    return key(field, 0) + varint(n)


def f_bytes(field, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return key(field, 2) + varint(len(data)) + data


def f_packed(field, values):
    return f_bytes(field, b"".join(varint(v) for v in values))


def test_varint_encoding_by_hand():
    # The examples of the protobuf encoding guide.
    assert varint(1) == b"\x01"
    assert varint(150) == b"\x96\x01"
    assert varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"
    assert P.read_varint(b"\x96\x01", 0) == (150, 2)
    assert P.read_varint(b"\xac\x02\x00", 0) == (300, 2)
    u, pos = P.read_varint(b"\xff" * 9 + b"\x01", 0)
    assert pos == 10 and P.to_int64(u) == -1
    assert P.to_int64(varint_value(-123456789012)) == -123456789012


def varint_value(n):
    return P.read_varint(varint(n), 0)[0]


def test_iter_fields_wire_types():
    data = (f_varint(1, 5) + key(2, 1) + (7).to_bytes(8, "little") + f_bytes(3, "hi")
            + key(4, 5) + (9).to_bytes(4, "little"))
    assert list(P.iter_fields(data)) == [(1, 0, 5), (2, 1, 7), (3, 2, b"hi"), (4, 5, 9)]
    with pytest.raises(P.DecodeError):
        list(P.iter_fields(f_bytes(3, "hello")[:-1]))
    with pytest.raises(P.DecodeError):
        list(P.iter_fields(b"\x0b"))  # wire type 3 (group) unsupported


STRINGS = ["", "cpu-time", "nanoseconds", "wall-samples", "count", "burn", "/abs/app.py",
           "<module>", "thread name", "w\u00e9rker-\U0001F525", "thread id", "exception type",
           "pkg.Err", "inlined"]


def s(name):
    return STRINGS.index(name)


def build_profile(packed=True):
    body = b""
    body += f_bytes(1, f_varint(1, s("cpu-time")) + f_varint(2, s("nanoseconds")))
    body += f_bytes(1, f_varint(1, s("wall-samples")) + f_varint(2, s("count")))

    def sample(loc_ids, values, labels):
        out = b""
        if packed:
            out += f_packed(1, loc_ids) + f_packed(2, values)
        else:
            out += b"".join(f_varint(1, v) for v in loc_ids)
            out += b"".join(f_varint(2, v) for v in values)
        for lab in labels:
            out += f_bytes(3, lab)
        return f_bytes(2, out)

    body += sample([1, 2], [1500, 1], [
        f_varint(1, s("thread name")) + f_varint(2, s("w\u00e9rker-\U0001F525")),
        f_varint(1, s("thread id")) + f_varint(3, 140000000000001),
    ])
    body += sample([3, 2], [-7, 2], [
        f_varint(1, s("thread id")) + f_varint(3, -42),
        f_varint(1, s("exception type")) + f_varint(2, s("pkg.Err")),
    ])
    # locations: 1 -> burn:12, 2 -> <module>:30, 3 -> two lines (inlined first, caller last)
    body += f_bytes(4, f_varint(1, 1) + f_bytes(4, f_varint(1, 10) + f_varint(2, 12)))
    body += f_bytes(4, f_varint(1, 2) + f_varint(3, 0)
                    + f_bytes(4, f_varint(1, 11) + f_varint(2, 30)))
    body += f_bytes(4, f_varint(1, 3) + f_bytes(4, f_varint(1, 12) + f_varint(2, 5))
                    + f_bytes(4, f_varint(1, 10) + f_varint(2, 13)))
    body += f_bytes(5, f_varint(1, 10) + f_varint(2, s("burn")) + f_varint(4, s("/abs/app.py")))
    body += f_bytes(5, f_varint(1, 11) + f_varint(2, s("<module>"))
                    + f_varint(4, s("/abs/app.py")))
    body += f_bytes(5, f_varint(1, 12) + f_varint(2, s("inlined"))
                    + f_varint(4, s("/abs/app.py")))
    for text in STRINGS:
        body += f_bytes(6, text)
    body += f_varint(9, 1700000000123456789)
    body += f_varint(10, 5000000000)
    body += f_bytes(11, f_varint(1, s("cpu-time")) + f_varint(2, s("nanoseconds")))
    body += f_varint(12, 1)
    return body


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "unpacked"])
@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_decode_hand_built_profile(packed, compress):
    data = build_profile(packed)
    if compress:
        data = gzip.compress(data)
    prof = P.decode(data)
    assert prof.sample_type_names == ["cpu-time/nanoseconds", "wall-samples/count"]
    assert prof.period_type == P.ValueType("cpu-time", "nanoseconds")
    assert prof.period == 1
    assert prof.time_nanos == 1700000000123456789
    assert prof.duration_nanos == 5000000000
    assert prof.end_nanos == 1700000005123456789
    assert prof.string_table == STRINGS
    assert len(prof.samples) == 2

    a, b = prof.samples
    assert a.values == [1500, 1]
    assert a.frames == [P.Frame("burn", "/abs/app.py", 12), P.Frame("<module>", "/abs/app.py", 30)]
    assert a.labels == {"thread name": "w\u00e9rker-\U0001F525", "thread id": 140000000000001}
    assert b.values == [-7, 2]
    assert [f.name for f in b.frames] == ["inlined", "burn", "<module>"]
    assert b.frames[0].line == 5 and b.frames[1].line == 13
    assert b.labels == {"thread id": -42, "exception type": "pkg.Err"}

    assert P.total(prof, "cpu-time") == 1493
    assert P.total(prof, "wall-samples/count") == 3
    assert P.self_by_function(prof, "cpu-time") == {"burn": 1500, "inlined": -7}
    assert P.total_by_function(prof, "wall-samples") == {"burn": 3, "<module>": 3, "inlined": 2}
    assert P.by_thread(prof, "cpu-time") == {"w\u00e9rker-\U0001F525": 1500, None: -7}
    assert P.by_label(prof, "wall-samples", "thread id") == {140000000000001: 1, -42: 2}
    assert P.total(prof, "wall-samples", where=P.stack_contains("inlined")) == 2
    assert P.total([prof, prof], "cpu-time", where=P.self_in("burn")) == 3000
    with pytest.raises(KeyError):
        prof.type_index("alloc-space")


def test_decode_rejects_inconsistent_profiles():
    good = build_profile()
    P.decode(good)
    # A sample pointing to a location that does not exist.
    bad = good + f_bytes(2, f_packed(1, [99]) + f_packed(2, [1, 1]))
    with pytest.raises(P.DecodeError):
        P.decode(bad)
    # A sample with the wrong number of values.
    bad = good + f_bytes(2, f_packed(1, [1]) + f_packed(2, [1]))
    with pytest.raises(P.DecodeError):
        P.decode(bad)
    # string_table[0] must be "".
    with pytest.raises(P.DecodeError):
        P.decode(f_bytes(6, "x"))
    # Truncated input.
    with pytest.raises(P.DecodeError):
        P.decode(good[:-3])
