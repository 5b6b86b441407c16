//! [`ProfileBuilder::encode`]: the period's pprof protobuf written straight from the
//! builder's interned tables, without the [`pprof::Profile`] that
//! [`ProfileBuilder::build`] materialises (a `Vec` per sample for its location ids, its
//! values and its labels, then prost walking it all twice, to size and to write).
//!
//! The bytes are exactly prost's encoding of `build(end)` (same field order, zero scalars
//! left out, packed repeated numbers), which the tests check; the gain is in the work, not
//! the format. Each stack's location ids and each label set are encoded once and copied into
//! every sample that uses them, so a timeline sample (one per lock event, say) costs its
//! values, its timestamp and two copies.
//!
//! [`pprof::Profile`]: crate::pprof::Profile

use std::time::SystemTime;

use prost::encoding::{encoded_len_varint, WireType};

use super::{
    duration_nanos, epoch_nanos, location_address, LabelRec, ProfileBuilder, SampleRec,
    NATIVE_FILENAME, NONE,
};
use crate::sample_type::{SampleType, SAMPLE_TYPE_COUNT};

// Field numbers of perftools.profiles (crate::pprof).
const PROFILE_SAMPLE_TYPE: u32 = 1;
const PROFILE_SAMPLE: u32 = 2;
const PROFILE_LOCATION: u32 = 4;
const PROFILE_FUNCTION: u32 = 5;
const PROFILE_STRING_TABLE: u32 = 6;
const PROFILE_TIME_NANOS: u32 = 9;
const PROFILE_DURATION_NANOS: u32 = 10;
const PROFILE_PERIOD_TYPE: u32 = 11;
const PROFILE_PERIOD: u32 = 12;
const VALUE_TYPE_TYPE: u32 = 1;
const VALUE_TYPE_UNIT: u32 = 2;
const SAMPLE_LOCATION_ID: u32 = 1;
const SAMPLE_VALUE: u32 = 2;
const SAMPLE_LABEL: u32 = 3;
const LABEL_KEY: u32 = 1;
const LABEL_STR: u32 = 2;
const LABEL_NUM: u32 = 3;
const LOCATION_ID: u32 = 1;
const LOCATION_ADDRESS: u32 = 3;
const LOCATION_LINE: u32 = 4;
const LINE_FUNCTION_ID: u32 = 1;
const LINE_LINE: u32 = 2;
const FUNCTION_ID: u32 = 1;
const FUNCTION_NAME: u32 = 2;
const FUNCTION_FILENAME: u32 = 4;

/// A base-128 varint. prost's `encode_varint` is generic over `BufMut` and checks the
/// buffer's room byte by byte; timeline samples are mostly one-byte values (19 per sample),
/// where this loop is a third of the cost. Same bytes.
#[inline]
fn encode_varint(mut v: u64, buf: &mut Vec<u8>) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A field key (`tag << 3 | wire type`).
#[inline]
fn encode_key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    encode_varint(u64::from(tag << 3 | wire_type as u32), buf);
}

/// A varint field, left out when zero (proto3 scalars, as prost writes them).
fn int(buf: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v, buf);
    }
}

/// A length-delimited field whose body is `body`.
fn bytes(buf: &mut Vec<u8>, tag: u32, body: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(body.len() as u64, buf);
    buf.extend_from_slice(body);
}

/// A packed repeated varint field (left out when empty).
fn packed(buf: &mut Vec<u8>, tag: u32, values: impl Iterator<Item = u64> + Clone) {
    let len: usize = values.clone().map(encoded_len_varint).sum();
    if len == 0 {
        return;
    }
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    for v in values {
        encode_varint(v, buf);
    }
}

/// `Sample.value`: one packed varint per sample type, read from the sample's compact block
/// (a zero, most of them, is the single byte 0: runs of them are copied in one go).
/// `len` is [`values_len`]'s.
fn sample_values(buf: &mut Vec<u8>, rec: &SampleRec, values: &[i64], len: usize) {
    const ZEROS: [u8; SAMPLE_TYPE_COUNT] = [0; SAMPLE_TYPE_COUNT];
    encode_key(SAMPLE_VALUE, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    let mut next = rec.stored(values).iter();
    let mut written = 0;
    let mut mask = rec.mask & ((1u32 << SAMPLE_TYPE_COUNT) - 1);
    while mask != 0 {
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        buf.extend_from_slice(ZEROS.get(..i - written).unwrap_or_default());
        encode_varint(next.next().map_or(0, |&v| v as u64), buf);
        written = i + 1;
    }
    buf.extend_from_slice(ZEROS.get(..SAMPLE_TYPE_COUNT - written).unwrap_or_default());
}

/// The packed body length of a sample's values (one varint per sample type).
fn values_len(rec: &SampleRec, values: &[i64]) -> usize {
    let stored = rec.stored(values);
    SAMPLE_TYPE_COUNT - stored.len()
        + stored
            .iter()
            .map(|&v| encoded_len_varint(v as u64))
            .sum::<usize>()
}

/// A length-delimited field's size: key, length and body, for a field number below 16 (a
/// one-byte key, as `Sample.value` and `Sample.label` have).
fn delimited_len(body: usize) -> usize {
    1 + encoded_len_varint(body as u64) + body
}

/// The body length of a `Label` message.
fn label_len(key: u32, str: u32, num: i64) -> usize {
    let field = |v: u64| if v == 0 { 0 } else { 1 + encoded_len_varint(v) };
    field(u64::from(key)) + field(u64::from(str)) + field(num as u64)
}

/// One `Label` message, as a `Sample.label` field (its length worked out, not staged).
fn label(buf: &mut Vec<u8>, key: u32, str: u32, num: i64) {
    let len = label_len(key, str, num);
    encode_key(SAMPLE_LABEL, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    int(buf, LABEL_KEY, u64::from(key));
    int(buf, LABEL_STR, u64::from(str));
    int(buf, LABEL_NUM, num as u64);
}

/// Encoded pieces, each an `(offset, len)` range of one shared buffer, indexed by id.
struct Pieces {
    bytes: Vec<u8>,
    ranges: Vec<(usize, usize)>,
}

impl Pieces {
    fn new(count: usize) -> Self {
        Pieces {
            bytes: Vec::new(),
            ranges: vec![(0, 0); count],
        }
    }

    /// Encodes piece `id` with `f` (ids outside the table are ignored).
    fn put(&mut self, id: u32, f: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        f(&mut self.bytes);
        if let Some(r) = self.ranges.get_mut(id as usize) {
            *r = (start, self.bytes.len() - start);
        }
    }

    fn get(&self, id: u32) -> &[u8] {
        self.ranges
            .get(id as usize)
            .and_then(|&(s, n)| self.bytes.get(s..s + n))
            .unwrap_or(&[])
    }
}

impl ProfileBuilder {
    /// The serialized pprof of the period `[start, end)`: the same bytes as
    /// `codec::encode(&self.build(end))`, written directly (see the module docs).
    pub fn encode(self, end: SystemTime) -> Vec<u8> {
        let ProfileBuilder {
            start,
            strings,
            functions,
            locations,
            stack_index,
            label_set_index,
            samples,
            values,
            sample_type_ids,
            end_timestamp_key,
            ..
        } = self;

        // Each stack as its Sample.location_id field, each label set as its Sample.label
        // fields.
        let mut stacks = Pieces::new(stack_index.len());
        for (locs, &id) in &stack_index {
            stacks.put(id, |buf| {
                packed(
                    buf,
                    SAMPLE_LOCATION_ID,
                    locs.iter().map(|&l| u64::from(l) + 1),
                )
            });
        }
        let mut scratch = Vec::with_capacity(64);
        let mut label_sets = Pieces::new(label_set_index.len());
        for (recs, &id) in &label_set_index {
            label_sets.put(id, |buf| {
                for &LabelRec { key, str, num } in recs.iter() {
                    if str == NONE {
                        label(buf, key, 0, num);
                    } else {
                        label(buf, key, str, 0);
                    }
                }
            });
        }

        let mut out = Vec::with_capacity(
            samples.len() * 64 + stacks.bytes.len() + locations.len() * 12 + 4096,
        );
        for &(t, u) in &sample_type_ids {
            scratch.clear();
            int(&mut scratch, VALUE_TYPE_TYPE, u64::from(t));
            int(&mut scratch, VALUE_TYPE_UNIT, u64::from(u));
            bytes(&mut out, PROFILE_SAMPLE_TYPE, &scratch);
        }

        // Each sample is written in place: its length is the sum of its pieces'.
        for rec in &samples {
            let stack = stacks.get(rec.stack);
            let labels = label_sets.get(rec.labels);
            let vlen = values_len(rec, &values);
            let ts_len = rec
                .timestamp
                .map_or(0, |ts| delimited_len(label_len(end_timestamp_key, 0, ts)));
            let len = stack.len() + delimited_len(vlen) + labels.len() + ts_len;
            encode_key(PROFILE_SAMPLE, WireType::LengthDelimited, &mut out);
            encode_varint(len as u64, &mut out);
            out.extend_from_slice(stack);
            sample_values(&mut out, rec, &values, vlen);
            out.extend_from_slice(labels);
            if let Some(ts) = rec.timestamp {
                label(&mut out, end_timestamp_key, 0, ts);
            }
        }

        let native = strings.index.get(NATIVE_FILENAME).copied();
        let mut body = Vec::with_capacity(256);
        for (i, l) in locations.iter().enumerate() {
            scratch.clear();
            int(&mut scratch, LINE_FUNCTION_ID, u64::from(l.function) + 1);
            int(&mut scratch, LINE_LINE, l.line as u64);
            body.clear();
            int(&mut body, LOCATION_ID, i as u64 + 1);
            int(
                &mut body,
                LOCATION_ADDRESS,
                location_address(&functions, native, l),
            );
            bytes(&mut body, LOCATION_LINE, &scratch);
            bytes(&mut out, PROFILE_LOCATION, &body);
        }
        for (i, f) in functions.iter().enumerate() {
            body.clear();
            int(&mut body, FUNCTION_ID, i as u64 + 1);
            int(&mut body, FUNCTION_NAME, u64::from(f.name));
            int(&mut body, FUNCTION_FILENAME, u64::from(f.filename));
            bytes(&mut out, PROFILE_FUNCTION, &body);
        }
        for s in &strings.list {
            bytes(&mut out, PROFILE_STRING_TABLE, s.as_bytes());
        }

        int(&mut out, PROFILE_TIME_NANOS, epoch_nanos(start) as u64);
        int(
            &mut out,
            PROFILE_DURATION_NANOS,
            duration_nanos(start, end) as u64,
        );
        let (cpu_time, nanoseconds) = sample_type_ids
            .get(SampleType::CpuTime.index())
            .copied()
            .unwrap_or_default();
        scratch.clear();
        int(&mut scratch, VALUE_TYPE_TYPE, u64::from(cpu_time));
        int(&mut scratch, VALUE_TYPE_UNIT, u64::from(nanoseconds));
        bytes(&mut out, PROFILE_PERIOD_TYPE, &scratch);
        int(&mut out, PROFILE_PERIOD, 1);
        out
    }
}
