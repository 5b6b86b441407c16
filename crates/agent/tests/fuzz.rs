//! Property tests: decoders and upload building never panic on arbitrary input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use emberscope_agent::decode;
use emberscope_agent::intake::{build_upload, Limits, Part};
use emberscope_agent::synth;
use proptest::prelude::*;
use prost::Message;

const LIMITS: Limits = Limits {
    max_decompressed: 4 << 20,
};

fn valid_pprof() -> Vec<u8> {
    synth::profile(&synth::SynthOptions {
        samples: 40,
        paths: 3,
        ..Default::default()
    })
    .encode_to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn decompress_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048), magic in 0usize..4) {
        let mut d = match magic {
            0 => vec![0x1f, 0x8b],
            1 => vec![0x28, 0xb5, 0x2f, 0xfd],
            2 => vec![0x04, 0x22, 0x4d, 0x18],
            _ => vec![],
        };
        d.extend(data);
        let _ = decode::decompress(&d, 1 << 20);
    }

    #[test]
    fn pprof_decoding_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(p) = decode::decode_pprof(&data) {
            let mut agg = decode::Aggregate::default();
            let _ = agg.add(&p);
        }
    }

    #[test]
    fn mutated_pprof_never_panics(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)) {
        let mut data = valid_pprof();
        for (i, b) in flips {
            let idx = i.index(data.len());
            data[idx] = b;
        }
        if let Ok(p) = decode::decode_pprof(&data) {
            let mut agg = decode::Aggregate::default();
            let _ = agg.add(&p);
        }
    }

    #[test]
    fn build_upload_never_panics(
        event in "\\PC{0,200}",
        names in proptest::collection::vec("[a-z.]{0,12}", 0..4),
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut parts = vec![Part { name: "event".into(), filename: None, data: event.into_bytes() }];
        for n in names {
            parts.push(Part { name: n, filename: None, data: payload.clone() });
        }
        let _ = build_upload(parts, &[], 0, LIMITS);
    }
}

#[test]
fn valid_upload_builds() {
    let start = 1_700_000_000_000_000_000;
    let parts = vec![
        Part {
            name: "event".into(),
            filename: Some("event.json".into()),
            data: synth::event_json("s", "e", "v", start, start + 1).into_bytes(),
        },
        Part {
            name: "code-provenance.json".into(),
            filename: None,
            data: synth::provenance_json().into_bytes(),
        },
        Part {
            name: "profile.pprof".into(),
            filename: None,
            data: valid_pprof(),
        },
    ];
    let u = build_upload(parts, &[("default_env".into(), "x".into())], 0, LIMITS).unwrap();
    assert_eq!(u.service, "s");
    assert_eq!(u.env, "e");
    assert_eq!(u.start_ns, start);
    assert!(u.provenance.is_some());
    assert!(!u.aggregate.stacks.is_empty());
}

#[test]
fn real_event_fixture_parses() {
    // The event.json captured from ddtrace 4.16 (shared fixture), if present.
    let path = "/work/shared/fixtures/ddtrace-4.16-upload/event.json";
    let Ok(ev) = std::fs::read(path) else {
        return;
    };
    let parts = vec![
        Part {
            name: "event".into(),
            filename: Some("event.json".into()),
            data: ev,
        },
        Part {
            name: "code-provenance.json".into(),
            filename: None,
            data: zstd::encode_all(synth::provenance_json().as_bytes(), 1).unwrap(),
        },
        Part {
            name: "profile.pprof".into(),
            filename: None,
            data: zstd::encode_all(&valid_pprof()[..], 1).unwrap(),
        },
    ];
    let u = build_upload(parts, &[], 0, LIMITS).unwrap();
    assert_eq!(u.service, "my-web-app");
    assert_eq!(u.env, "prod");
    assert_eq!(u.version, "1.0.3");
    assert_eq!(u.family, "python");
    assert!(u.tags.contains(&("team".into(), "perf".into())));
    assert_eq!(u.end_ns - u.start_ns, 5_013_660_523);
}
