//! Readable views of a decoded profile for tests and tools: per-type totals
//! and one row per sample with resolved frames, labels and values (and a JSON
//! form of the same, for checks written in Python).
//!
//! [`rows`] and [`ProfileSummary::from_profile`] check every reference (string
//! index, location id, function id) and return [`SummaryError`] on a dangling
//! one, so they double as a validity check of profiles we emit.

use std::collections::BTreeMap;

use crate::pprof;

/// A dangling reference in a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummaryError {
    /// A string index outside the string table.
    #[error("string index {0} out of range")]
    String(i64),
    /// A sample refers to a location id that does not exist.
    #[error("location id {0} not found")]
    Location(u64),
    /// A line refers to a function id that does not exist.
    #[error("function id {0} not found")]
    Function(u64),
    /// A location has no line.
    #[error("location id {0} has no line")]
    NoLine(u64),
    /// A sample does not have one value per sample type.
    #[error("sample {index} has {got} values, expected {expected}")]
    ValueCount {
        /// Sample index.
        index: usize,
        /// Number of values found.
        got: usize,
        /// Number of sample types.
        expected: usize,
    },
}

/// An owned label value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum OwnedLabelValue {
    /// String label.
    Str(String),
    /// Numeric label.
    Num(i64),
}

/// A resolved frame: `(function name, filename, line)`.
pub type FrameRow = (String, String, i64);

/// One sample, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRow {
    /// Frames, leaf first.
    pub frames: Vec<FrameRow>,
    /// Labels by key (a repeated key keeps its last value).
    pub labels: BTreeMap<String, OwnedLabelValue>,
    /// `(type name, value)` for every sample type, in profile order.
    pub values: Vec<(String, i64)>,
}

impl SampleRow {
    /// Value of the sample type named `type_name` (0 if absent).
    pub fn value(&self, type_name: &str) -> i64 {
        self.values
            .iter()
            .find(|(t, _)| t == type_name)
            .map_or(0, |(_, v)| *v)
    }

    /// Numeric label `key`, if present and numeric.
    pub fn num_label(&self, key: &str) -> Option<i64> {
        match self.labels.get(key) {
            Some(OwnedLabelValue::Num(n)) => Some(*n),
            _ => None,
        }
    }

    /// String label `key`, if present and a string.
    pub fn str_label(&self, key: &str) -> Option<&str> {
        match self.labels.get(key) {
            Some(OwnedLabelValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// JSON form: `{"frames": [[name, file, line], ...], "labels": {k: v},
    /// "values": {type: value}}` (values: non-zero only).
    pub fn to_json(&self) -> serde_json::Value {
        let frames: Vec<serde_json::Value> = self
            .frames
            .iter()
            .map(|(n, f, l)| serde_json::json!([n, f, l]))
            .collect();
        let labels: serde_json::Map<String, serde_json::Value> = self
            .labels
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    OwnedLabelValue::Str(s) => serde_json::Value::from(s.as_str()),
                    OwnedLabelValue::Num(n) => serde_json::Value::from(*n),
                };
                (k.clone(), v)
            })
            .collect();
        let values: serde_json::Map<String, serde_json::Value> = self
            .values
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(t, v)| (t.clone(), serde_json::Value::from(*v)))
            .collect();
        serde_json::json!({ "frames": frames, "labels": labels, "values": values })
    }
}

fn string(p: &pprof::Profile, idx: i64) -> Result<&str, SummaryError> {
    usize::try_from(idx)
        .ok()
        .and_then(|i| p.string_table.get(i))
        .map(String::as_str)
        .ok_or(SummaryError::String(idx))
}

fn string_lenient(p: &pprof::Profile, idx: i64) -> String {
    string(p, idx).unwrap_or("").to_owned()
}

/// Total of each sample type over all samples, in profile order:
/// `(type name, sum)`. Lenient: an unknown type name reads as `""`.
pub fn totals(p: &pprof::Profile) -> Vec<(String, i64)> {
    p.sample_type
        .iter()
        .enumerate()
        .map(|(i, vt)| {
            let sum = p
                .sample
                .iter()
                .filter_map(|s| s.value.get(i))
                .fold(0i64, |a, v| a.saturating_add(*v));
            (string_lenient(p, vt.r#type), sum)
        })
        .collect()
}

/// One [`SampleRow`] per sample, in profile order.
pub fn rows(p: &pprof::Profile) -> Result<Vec<SampleRow>, SummaryError> {
    let functions: BTreeMap<u64, &pprof::Function> = p.function.iter().map(|f| (f.id, f)).collect();
    let mut locations: BTreeMap<u64, FrameRow> = BTreeMap::new();
    for loc in &p.location {
        let line = loc.line.first().ok_or(SummaryError::NoLine(loc.id))?;
        let f = functions
            .get(&line.function_id)
            .ok_or(SummaryError::Function(line.function_id))?;
        locations.insert(
            loc.id,
            (
                string(p, f.name)?.to_owned(),
                string(p, f.filename)?.to_owned(),
                line.line,
            ),
        );
    }
    let type_names = p
        .sample_type
        .iter()
        .map(|vt| string(p, vt.r#type).map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()?;

    let mut out = Vec::with_capacity(p.sample.len());
    for (index, s) in p.sample.iter().enumerate() {
        if s.value.len() != type_names.len() {
            return Err(SummaryError::ValueCount {
                index,
                got: s.value.len(),
                expected: type_names.len(),
            });
        }
        let frames = s
            .location_id
            .iter()
            .map(|id| {
                locations
                    .get(id)
                    .cloned()
                    .ok_or(SummaryError::Location(*id))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut labels = BTreeMap::new();
        for l in &s.label {
            let key = string(p, l.key)?.to_owned();
            let value = if l.str != 0 {
                OwnedLabelValue::Str(string(p, l.str)?.to_owned())
            } else {
                OwnedLabelValue::Num(l.num)
            };
            labels.insert(key, value);
        }
        let values = type_names
            .iter()
            .cloned()
            .zip(s.value.iter().copied())
            .collect();
        out.push(SampleRow {
            frames,
            labels,
            values,
        });
    }
    Ok(out)
}

/// Everything a test wants to assert about a profile, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSummary {
    /// `(type, unit)` of each sample type, in order.
    pub sample_types: Vec<(String, String)>,
    /// `(type, unit)` of the period type.
    pub period_type: Option<(String, String)>,
    /// `period`.
    pub period: i64,
    /// Start, epoch nanoseconds.
    pub time_nanos: i64,
    /// Duration, nanoseconds.
    pub duration_nanos: i64,
    /// Number of mappings (0 for ours).
    pub mapping_count: usize,
    /// Number of locations.
    pub location_count: usize,
    /// Number of strings, `""` included.
    pub string_count: usize,
    /// Per-type totals, see [`totals`].
    pub totals: Vec<(String, i64)>,
    /// The samples, see [`rows`].
    pub rows: Vec<SampleRow>,
}

impl ProfileSummary {
    /// Resolves `p`; fails on any dangling reference.
    pub fn from_profile(p: &pprof::Profile) -> Result<Self, SummaryError> {
        let sample_types = p
            .sample_type
            .iter()
            .map(|vt| {
                Ok((
                    string(p, vt.r#type)?.to_owned(),
                    string(p, vt.unit)?.to_owned(),
                ))
            })
            .collect::<Result<Vec<_>, SummaryError>>()?;
        let period_type = match &p.period_type {
            Some(vt) => Some((
                string(p, vt.r#type)?.to_owned(),
                string(p, vt.unit)?.to_owned(),
            )),
            None => None,
        };
        Ok(ProfileSummary {
            sample_types,
            period_type,
            period: p.period,
            time_nanos: p.time_nanos,
            duration_nanos: p.duration_nanos,
            mapping_count: p.mapping.len(),
            location_count: p.location.len(),
            string_count: p.string_table.len(),
            totals: totals(p),
            rows: rows(p)?,
        })
    }

    /// Total of the sample type named `type_name` (0 if absent).
    pub fn total(&self, type_name: &str) -> i64 {
        self.totals
            .iter()
            .find(|(t, _)| t == type_name)
            .map_or(0, |(_, v)| *v)
    }

    /// JSON form (for tools and Python tests): header fields, `totals` as an
    /// object, `samples` as [`SampleRow::to_json`].
    pub fn to_json(&self) -> serde_json::Value {
        let types: Vec<String> = self
            .sample_types
            .iter()
            .map(|(t, u)| format!("{t}/{u}"))
            .collect();
        let totals: serde_json::Map<String, serde_json::Value> = self
            .totals
            .iter()
            .map(|(t, v)| (t.clone(), serde_json::Value::from(*v)))
            .collect();
        let samples: Vec<serde_json::Value> = self.rows.iter().map(SampleRow::to_json).collect();
        serde_json::json!({
            "sample_types": types,
            "period_type": self.period_type.as_ref().map(|(t, u)| format!("{t}/{u}")),
            "period": self.period,
            "time_nanos": self.time_nanos,
            "duration_nanos": self.duration_nanos,
            "mapping_count": self.mapping_count,
            "location_count": self.location_count,
            "string_count": self.string_count,
            "totals": totals,
            "samples": samples,
        })
    }
}
