use proptest::prelude::*;

use super::reference;
use super::*;

fn all_configs() -> Vec<QuantConfig> {
    let mut v = Vec::new();
    for (signed, bits_list) in [
        (false, vec![2u8, 3, 4, 5, 6, 7, 8]),
        (true, vec![8u8, 16, 32]),
    ] {
        for bits in bits_list {
            for granularity in [
                Granularity::Global,
                Granularity::Layer,
                Granularity::Channel,
            ] {
                for symmetric in [true, false] {
                    for rounding in [Rounding::Nearest, Rounding::Truncate] {
                        for w_max in [None, Some(0.1f32), Some(0.5)] {
                            v.push(QuantConfig {
                                bits,
                                granularity,
                                symmetric,
                                signed,
                                rounding,
                                w_max,
                            });
                        }
                    }
                }
            }
        }
    }
    v
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn presets_match_the_paper() {
    let r = QuantConfig::rquant(8);
    assert_eq!(r.granularity, Granularity::Layer);
    assert!(!r.symmetric && !r.signed);
    assert_eq!(r.rounding, Rounding::Nearest);
    let n = QuantConfig::normal(4);
    assert!(n.symmetric && !n.signed);
    assert_eq!(n.rounding, Rounding::Truncate);
    assert_eq!(n.storage_bits(), 4);
    assert_eq!(n.container_bits(), 8);
}

#[test]
fn validate_rejects_bad_bits_and_w_max() {
    for (bits, signed, ok) in [
        (1u8, false, false),
        (2, false, true),
        (8, false, true),
        (9, false, false),
        (16, false, false),
        (4, true, false),
        (8, true, true),
        (16, true, true),
        (32, true, true),
        (24, true, false),
    ] {
        let c = QuantConfig {
            signed,
            ..QuantConfig::rquant(bits)
        };
        assert_eq!(c.validate().is_ok(), ok, "bits {bits} signed {signed}");
    }
    for w in [0.0f32, -0.1, f32::NAN, f32::INFINITY] {
        let e = QuantConfig::rquant(8).with_w_max(w).validate().unwrap_err();
        assert!(matches!(e, QuantError::InvalidWMax { .. }));
        assert!(e.to_string().contains("w_max"));
    }
}

#[test]
fn rquant_8bit_known_values() {
    // [-1, 1] asymmetric: n = w, Δ = 1.001/127; round(n/Δ + 128).
    let q = quantize(&[-1.0, 0.0, 1.0, 0.5], &[4], &QuantConfig::rquant(8)).unwrap();
    assert_eq!(q.codes(), &Codes::U8(vec![1, 128, 255, 191]));
    let d = q.dequantize();
    assert_eq!(d[0], -1.0);
    assert_eq!(d[2], 1.0);
    assert!((d[3] - 0.5).abs() < 0.01);
}

/// The fixed-range ("global") scheme of the 2021 reference quantizer: the step is Δ = (q_fixed + ε)/levels, but
/// inputs and decoded values are clamped to ±q_fixed itself (docs/quantization.md#paper-schemes), so the decoded
/// extremes are exactly ±w_max, never ±(w_max + ε)·k/levels. Expected codes are worked out by hand below.
#[test]
fn global_fixed_range_decodes_to_plus_minus_q_fixed() {
    let global = |bits: u8, signed: bool, rounding: Rounding, w_max: Option<f32>| QuantConfig {
        bits,
        granularity: Granularity::Global,
        symmetric: true,
        signed,
        rounding,
        w_max,
    };
    // m = 8, w_max = 0.1: Δ = 0.101/127; -0.1/Δ = -125.74 → +128 = 2.26 → 2; 0.1 → 253.74 → 254; 0.3 is
    // clipped to 0.1. Decoding 2 gives -126·Δ = -0.10020 before the clamp, -0.1 after it.
    let cfg = global(8, false, Rounding::Nearest, Some(0.1));
    let q = quantize(&[-0.1, 0.1, 0.3, 0.0], &[4], &cfg).unwrap();
    assert_eq!(q.codes(), &Codes::U8(vec![2, 254, 254, 128]));
    assert_eq!(q.dequantize(), vec![-0.1, 0.1, 0.1, 0.0]);
    // Corrupted extreme codes decode to ±w_max too (code 0 = -128·Δ, 255 = 127·Δ = 0.101).
    let mut out = vec![0.0; 4];
    q.dequantize_codes_into(&Codes::U8(vec![0, 255, 1, 253]), &mut out)
        .unwrap();
    assert_eq!(&out[..2], &[-0.1, 0.1]);
    let r = q.ranges();
    assert_eq!((r[0].lo, r[0].hi), (-0.1, 0.1));
    // m = 4: Δ = 0.101/7; -0.1/Δ = -6.93 → +8 = 1.07 → 1 (round and trunc), decoded -7·Δ = -0.101 → -0.1;
    // 0.1 → 14.93 → 15 (round; 7·Δ = 0.101 → 0.1) or 14 (trunc; 6·Δ, inside the range, unclamped).
    let q = quantize(
        &[-0.1, 0.1],
        &[2],
        &global(4, false, Rounding::Nearest, Some(0.1)),
    )
    .unwrap();
    assert_eq!(q.codes(), &Codes::U8(vec![1, 15]));
    assert_eq!(q.dequantize(), vec![-0.1, 0.1]);
    let q = quantize(
        &[-0.1, 0.1],
        &[2],
        &global(4, false, Rounding::Truncate, Some(0.1)),
    )
    .unwrap();
    assert_eq!(q.codes(), &Codes::U8(vec![1, 14]));
    assert_eq!(q.dequantize(), vec![-0.1, 6.0 * (0.101f32 / 7.0)]);
    // Signed 8-bit: -0.1/Δ = -125.74 → -126 → -0.10020 → -0.1.
    let q = quantize(
        &[-0.1, 0.1],
        &[2],
        &global(8, true, Rounding::Nearest, Some(0.1)),
    )
    .unwrap();
    assert_eq!(q.codes(), &Codes::I8(vec![-126, 126]));
    assert_eq!(q.dequantize(), vec![-0.1, 0.1]);
    // Without clipping q_fixed = 1: 1.5 is clamped to 1 (not 1.001) before encoding; truncation then gives
    // trunc(126.87 + 128) = 254, and decoding clamps to ±1.
    let q = quantize(
        &[1.5, -1.5],
        &[2],
        &global(8, false, Rounding::Truncate, None),
    )
    .unwrap();
    assert_eq!(q.codes(), &Codes::U8(vec![254, 1]));
    assert_eq!(
        q.dequantize(),
        vec![(126.0f32 * (1.001f32 / 127.0)).min(1.0), -1.0]
    );
    // The slow reference agrees.
    let r = reference::quantize_dequantize(&[-0.1, 0.1, 0.3, 0.0], &[4], &cfg);
    assert_eq!(r.codes, vec![2, 254, 254, 128]);
    assert_eq!(r.dequantized, vec![-0.1, 0.1, 0.1, 0.0]);
    assert_eq!(r.ranges, vec![(-0.1, 0.1)]);
}

#[test]
fn normal_truncates_toward_zero() {
    // q = 1 + 0.001, Δ = q/7 at 4 bits; 1/Δ = 6.993 → trunc(14.99) = 14 (ε keeps the top code 15 unused);
    // 0.2/Δ = 1.399 → trunc(9.399) = 9; -0.2 → 6.601 → 6.
    let q = quantize(&[1.0, 0.2, -0.2], &[3], &QuantConfig::normal(4)).unwrap();
    assert_eq!(q.codes(), &Codes::U8(vec![14, 9, 6]));
}

#[test]
fn constant_tensor_guard_gives_the_value_not_nan() {
    for signed in [false, true] {
        let cfg = QuantConfig {
            signed,
            ..QuantConfig::rquant(8)
        };
        let q = quantize(&[0.3; 7], &[7], &cfg).unwrap();
        let expect = if signed { 0 } else { 128 };
        assert!(q.codes().to_i64_vec().iter().all(|&c| c == expect));
        assert!(q.dequantize().iter().all(|&x| x == 0.3));
    }
}

#[test]
fn rejects_non_finite_and_shape_mismatch() {
    let e = quantize(&[0.0, f32::NAN], &[2], &QuantConfig::rquant(8)).unwrap_err();
    assert!(matches!(e, QuantError::NonFinite { index: 1, .. }), "{e}");
    let e = quantize(&[0.0; 5], &[2, 3], &QuantConfig::rquant(8)).unwrap_err();
    assert!(matches!(
        e,
        QuantError::ShapeMismatch {
            expected: 6,
            len: 5,
            ..
        }
    ));
}

#[test]
fn codes_never_leave_the_storage_range_and_high_bits_stay_zero() {
    let vals: Vec<f32> = (0..200).map(|i| (i as f32 - 100.0) * 0.037).collect();
    for cfg in all_configs() {
        let q = quantize(&vals, &[10, 20], &cfg).unwrap();
        let (lo, hi) = kernel::storage_range(&cfg);
        assert!(
            q.codes().to_i64_vec().iter().all(|&c| c >= lo && c <= hi),
            "{cfg:?}"
        );
    }
}

#[test]
fn channel_granularity_uses_one_range_per_row() {
    let vals = [0.1f32, -0.1, 0.0, 2.0, -1.0, 0.5];
    let q = quantize(
        &vals,
        &[2, 3],
        &QuantConfig::rquant(8).with_granularity(Granularity::Channel),
    )
    .unwrap();
    assert_eq!(
        q.ranges(),
        vec![
            GroupRange { lo: -0.1, hi: 0.1 },
            GroupRange { lo: -1.0, hi: 2.0 }
        ]
    );
    // Rows are independent: quantizing row 1 alone gives the same codes.
    let row = quantize(&vals[3..], &[3], &QuantConfig::rquant(8)).unwrap();
    assert_eq!(&q.codes().to_i64_vec()[3..], &row.codes().to_i64_vec()[..]);
}

#[test]
fn corrupted_codes_decode_with_clean_ranges() {
    let vals: Vec<f32> = (0..50).map(|i| (i as f32 * 0.7).sin() * 0.2).collect();
    let q = quantize(&vals, &[50], &QuantConfig::rquant(8)).unwrap();
    let mut codes = q.codes().clone();
    if let Codes::U8(c) = &mut codes {
        c[3] ^= 0x80;
        c[10] ^= 0x01;
    }
    let mut out = vec![0.0; 50];
    q.dequantize_codes_into(&codes, &mut out).unwrap();
    let r = reference::quantize_dequantize(&vals, &[50], q.config());
    let mut ci = r.codes.clone();
    ci[3] ^= 0x80;
    ci[10] ^= 0x01;
    let expect = reference::dequantize_codes(&ci, &r.ranges, q.config());
    assert!(same_bits(&out, &expect));
    // Wrong type or length is an error, not a panic.
    assert!(q
        .dequantize_codes_into(&Codes::I8(vec![0; 50]), &mut out)
        .is_err());
    assert!(q
        .dequantize_codes_into(&Codes::U8(vec![0; 49]), &mut out)
        .is_err());
    assert!(q.dequantize_codes_into(&codes, &mut [0.0; 3]).is_err());
}

#[test]
fn u8_fast_path_matches_scalar_decoder_for_every_byte() {
    let vals: Vec<f32> = (0..3000)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.4)
        .collect();
    for cfg in all_configs()
        .into_iter()
        .filter(|c| c.container_bits() == 8)
    {
        let q = quantize(&vals, &[3, 1000], &cfg).unwrap();
        let bytes: Vec<u8> = (0..3000).map(|i| (i % 256) as u8).collect();
        let mut fast = vec![0.0; 3000];
        q.dequantize_u8_into(&bytes, &mut fast).unwrap();
        let codes = if cfg.signed {
            Codes::I8(bytes.iter().map(|&b| b as i8).collect())
        } else {
            Codes::U8(bytes.clone())
        };
        let mut slow = vec![0.0; 3000];
        q.dequantize_codes_into(&codes, &mut slow).unwrap();
        assert!(same_bits(&fast, &slow), "{cfg:?}");
        let r = reference::quantize_dequantize(&vals, &[3, 1000], &cfg);
        let expect = reference::dequantize_codes(&codes.to_i64_vec(), &r.ranges, &cfg);
        assert!(same_bits(&fast, &expect), "{cfg:?}");
    }
    let q16 = quantize(
        &vals,
        &[3000],
        &QuantConfig {
            signed: true,
            ..QuantConfig::rquant(16)
        },
    )
    .unwrap();
    assert!(matches!(
        q16.dequantize_u8_into(&[0; 3000], &mut [0.0; 3000]),
        Err(QuantError::NotByteCodes { .. })
    ));
}

#[test]
fn large_tensor_parallel_path_matches_reference() {
    // Larger than one parallel chunk so the rayon paths run.
    let n = 200_003;
    let vals: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.001).sin() * 0.3).collect();
    for cfg in [
        QuantConfig::rquant(8).with_w_max(0.1),
        QuantConfig::normal(4),
        QuantConfig {
            signed: true,
            ..QuantConfig::rquant(16)
        },
    ] {
        let q = quantize(&vals, &[n], &cfg).unwrap();
        let r = reference::quantize_dequantize(&vals, &[n], &cfg);
        assert_eq!(q.codes().to_i64_vec(), r.codes);
        assert!(same_bits(&q.dequantize(), &r.dequantized));
    }
}

#[test]
fn from_parts_round_trips_and_validates() {
    let vals = [0.1f32, -0.3, 0.25, 0.0];
    let q = quantize(
        &vals,
        &[2, 2],
        &QuantConfig::rquant(6).with_granularity(Granularity::Channel),
    )
    .unwrap();
    let back = QuantizedTensor::from_parts(
        q.config().clone(),
        vec![2, 2],
        q.codes().clone(),
        &q.ranges(),
    )
    .unwrap();
    assert_eq!(back, q);
    assert!(QuantizedTensor::from_parts(
        q.config().clone(),
        vec![4],
        q.codes().clone(),
        &q.ranges()
    )
    .is_err());
    assert!(QuantizedTensor::from_parts(
        q.config().clone(),
        vec![2, 2],
        Codes::I8(vec![0; 4]),
        &q.ranges()
    )
    .is_err());
}

#[test]
fn config_serde_uses_manifest_spelling() {
    let c: QuantConfig = toml::from_str(
        "bits = 8\ngranularity = \"layer\"\nsymmetric = false\nsigned = false\nrounding = true\nw_max = 0.1\n",
    )
    .unwrap();
    assert_eq!(c, QuantConfig::rquant(8).with_w_max(0.1));
    let s = toml::to_string(&QuantConfig::normal(4)).unwrap();
    assert!(s.contains("rounding = false"), "{s}");
    assert!(toml::from_str::<QuantConfig>(
        "bits = 8\ngranularity = \"tensor\"\nsymmetric = false\nsigned = false\nrounding = true\n"
    )
    .is_err());
    assert!(toml::from_str::<QuantConfig>("bits = 8\ngranularity = \"layer\"\nsymmetric = false\nsigned = false\nrounding = true\nextra = 1\n").is_err());
}

fn arb_config() -> impl Strategy<Value = QuantConfig> {
    (
        prop_oneof![
            (2u8..=8).prop_map(|b| (b, false)),
            prop_oneof![Just(8u8), Just(16), Just(32)].prop_map(|b| (b, true))
        ],
        prop_oneof![
            Just(Granularity::Global),
            Just(Granularity::Layer),
            Just(Granularity::Channel)
        ],
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(None), (0.01f32..2.0).prop_map(Some)],
    )
        .prop_map(
            |((bits, signed), granularity, symmetric, nearest, w_max)| QuantConfig {
                bits,
                granularity,
                symmetric,
                signed,
                rounding: if nearest {
                    Rounding::Nearest
                } else {
                    Rounding::Truncate
                },
                w_max,
            },
        )
}

fn arb_value() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -2.0f32..2.0,
        1 => -0.01f32..0.01,
        1 => prop_oneof![Just(0.0f32), Just(-0.0), Just(0.1), Just(-0.1), Just(1.0), Just(-1.0), Just(0.5)],
        1 => -1e4f32..1e4,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The fast fused kernels agree bit for bit with the slow literal reference, for every scheme.
    #[test]
    fn fast_matches_reference(cfg in arb_config(), rows in 1usize..5, vals in prop::collection::vec(arb_value(), 1..40)) {
        let cols = vals.len();
        let mut all = Vec::new();
        for r in 0..rows {
            all.extend(vals.iter().map(|v| if r % 2 == 1 { v * 0.5 } else { *v }));
        }
        let shape = [rows, cols];
        let q = quantize(&all, &shape, &cfg).unwrap();
        let r = reference::quantize_dequantize(&all, &shape, &cfg);
        prop_assert_eq!(q.codes().to_i64_vec(), r.codes.clone());
        prop_assert!(same_bits(&q.dequantize(), &r.dequantized));
        let ranges: Vec<(f32, f32)> = q.ranges().iter().map(|g| (g.lo, g.hi)).collect();
        prop_assert_eq!(ranges, r.ranges);
    }

    /// Any code (not only the clean ones) decodes identically through the fast and the reference decoder.
    #[test]
    fn decode_of_arbitrary_codes_matches_reference(cfg in arb_config(), vals in prop::collection::vec(arb_value(), 1..30), seed in any::<u64>()) {
        let n = vals.len();
        let q = quantize(&vals, &[1, n], &cfg).unwrap();
        let (lo, hi) = kernel::storage_range(&cfg);
        let span = (hi - lo) as u64 + 1;
        let mut s = seed;
        let raw: Vec<i64> = (0..n).map(|_| { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); lo + ((s >> 16) % span) as i64 }).collect();
        let codes = match q.codes() {
            Codes::U8(_) => Codes::U8(raw.iter().map(|&v| v as u8).collect()),
            Codes::I8(_) => Codes::I8(raw.iter().map(|&v| v as i8).collect()),
            Codes::I16(_) => Codes::I16(raw.iter().map(|&v| v as i16).collect()),
            Codes::I32(_) => Codes::I32(raw.iter().map(|&v| v as i32).collect()),
        };
        let mut out = vec![0.0; n];
        q.dequantize_codes_into(&codes, &mut out).unwrap();
        let rr: Vec<(f32, f32)> = q.ranges().iter().map(|g| (g.lo, g.hi)).collect();
        prop_assert!(same_bits(&out, &reference::dequantize_codes(&raw, &rr, &cfg)));
    }

    /// Quantization error of a clean value inside the range is at most one step (Δ, rescaled for asymmetric).
    #[test]
    fn error_is_at_most_one_step(vals in prop::collection::vec(-1.0f32..1.0, 2..50), bits in 2u8..=8, nearest in any::<bool>()) {
        let cfg = QuantConfig { rounding: if nearest { Rounding::Nearest } else { Rounding::Truncate }, ..QuantConfig::rquant(bits) };
        let q = quantize(&vals, &[vals.len()], &cfg).unwrap();
        let g = q.ranges()[0];
        let step = (g.hi - g.lo) / 2.0 * q.codecs()[0].delta();
        for (a, b) in vals.iter().zip(q.dequantize()) {
            prop_assert!((a - b).abs() <= step * 1.0001 + 1e-6, "{a} vs {b}, step {step}");
        }
    }
}
