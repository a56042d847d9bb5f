//! Exhaustive checks of every shipped code against the explicit-matrix reference, and of the row layout.
use super::reference::{from_bits, to_bits, RefCode};
use super::*;
use crate::config::EccScheme;
use proptest::prelude::*;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// (fast code, reference) for every scheme and data width the config accepts.
fn all_codes() -> Vec<(Code, RefCode)> {
    let mut v = Vec::new();
    for k in [16u32, 32, 64] {
        v.push((secded::secded(k), RefCode::hsiao(k as usize)));
        v.push((parity::parity(k), RefCode::parity(k as usize)));
    }
    v
}

/// Data words to test each error position on: all zeros, all ones and pseudo-random words.
fn data_words(code: &Code) -> Vec<u64> {
    let mut w = vec![0, u64::MAX & code.data_mask()];
    w.extend((0..4).map(|i| mix(i + code.k() as u64) & code.data_mask()));
    w
}

/// A read word with the bits of `positions` (codeword positions 0..n) flipped, as (data, check).
fn corrupt(code: &Code, data: u64, positions: &[u32]) -> (u64, u16, u64, u16) {
    let check = code.encode(data);
    let (mut ed, mut ec) = (0u64, 0u16);
    for &p in positions {
        if p < code.k() {
            ed ^= 1 << p;
        } else {
            ec ^= 1 << (p - code.k());
        }
    }
    (data ^ ed, check ^ ec, ed, ec)
}

/// The reference's answer for the same read, as (delivered data, detected).
fn reference_decode(rc: &RefCode, code: &Code, data: u64, check: u16) -> (u64, bool) {
    let mut word = to_bits(data, code.k() as usize);
    word.extend(to_bits(check as u64, code.r() as usize));
    let (d, det) = rc.decode(&word);
    (from_bits(&d), det)
}

#[test]
fn codes_have_the_textbook_shapes() {
    let shapes: Vec<String> = all_codes().iter().map(|(c, _)| c.name()).collect();
    assert_eq!(
        shapes,
        [
            "secded(22,16)",
            "parity(17,16)",
            "secded(39,32)",
            "parity(33,32)",
            "secded(72,64)",
            "parity(65,64)"
        ]
    );
    for (c, rc) in all_codes() {
        assert_eq!((c.k() as usize, c.r() as usize), (rc.k, rc.r));
        assert_eq!(c.r(), crate::config::ecc::check_bits(c.scheme(), c.k()));
        for i in 0..c.n() {
            let col = from_bits(&rc.column(i as usize)) as u16;
            assert_eq!(c.column(i), col, "{} column {i}", c.name());
        }
    }
}

#[test]
fn secded_columns_are_distinct_odd_and_any_three_are_independent() {
    for (c, _) in all_codes()
        .into_iter()
        .filter(|(c, _)| c.scheme() == EccScheme::Secded)
    {
        let cols: Vec<u16> = (0..c.n()).map(|i| c.column(i)).collect();
        for (i, &a) in cols.iter().enumerate() {
            assert!(
                a != 0 && a.count_ones() % 2 == 1,
                "{}: column {i}",
                c.name()
            );
            for (j, &b) in cols.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "{}: columns {i} and {j}", c.name());
                for &x in &cols[j + 1..] {
                    assert_ne!(a ^ b ^ x, 0, "{}: three dependent columns", c.name());
                }
            }
        }
    }
}

#[test]
fn encoder_matches_the_explicit_matrix() {
    for (c, rc) in all_codes() {
        for w in 0..300u64 {
            let data = mix(w ^ 0xA5) & c.data_mask();
            let want = rc.encode(&to_bits(data, c.k() as usize));
            assert_eq!(
                c.encode(data) as u64,
                from_bits(&want[c.k() as usize..]),
                "{}",
                c.name()
            );
            assert_eq!(c.syndrome(data, c.encode(data)), 0);
        }
    }
}

#[test]
fn every_single_error_is_corrected_by_secded_and_detected_by_parity() {
    for (c, rc) in all_codes() {
        for data in data_words(&c) {
            for p in 0..c.n() {
                let (rd, rck, ed, ec) = corrupt(&c, data, &[p]);
                let (got, act) = c.decode(rd, rck);
                let d = c.classify(ed, ec);
                assert_eq!(
                    reference_decode(&rc, &c, rd, rck),
                    (got, act == Action::Detect)
                );
                match c.scheme() {
                    EccScheme::Secded => {
                        assert_eq!(got, data, "{} position {p}", c.name());
                        assert_eq!(act, Action::Flip(p as u8));
                        assert_eq!(
                            d,
                            Decoded {
                                outcome: Outcome::Corrected,
                                residual: 0
                            }
                        );
                    }
                    _ => {
                        assert_eq!(act, Action::Detect, "{} position {p}", c.name());
                        assert_eq!(d.outcome, Outcome::Detected);
                        assert_eq!(d.residual, ed);
                    }
                }
            }
        }
    }
}

#[test]
fn every_double_error_is_detected_by_secded_and_missed_by_parity() {
    for (c, rc) in all_codes() {
        for data in data_words(&c) {
            for p in 0..c.n() {
                for q in p + 1..c.n() {
                    let (rd, rck, ed, ec) = corrupt(&c, data, &[p, q]);
                    let (got, act) = c.decode(rd, rck);
                    assert_eq!(
                        reference_decode(&rc, &c, rd, rck),
                        (got, act == Action::Detect)
                    );
                    let d = c.classify(ed, ec);
                    match c.scheme() {
                        EccScheme::Secded => {
                            assert_eq!(act, Action::Detect, "{} positions {p},{q}", c.name());
                            assert_eq!(d.outcome, Outcome::Detected);
                        }
                        _ => {
                            assert_eq!(act, Action::Accept);
                            // Two errors in the check bit region is impossible for parity (one check bit), so
                            // at least one data bit is wrong: silent.
                            assert_eq!(
                                d,
                                Decoded {
                                    outcome: Outcome::Silent,
                                    residual: ed
                                }
                            );
                        }
                    }
                    assert_eq!(d.residual, ed);
                }
            }
        }
    }
}

#[test]
fn every_triple_error_decodes_exactly_as_the_reference() {
    for (c, rc) in all_codes() {
        let data = mix(c.n() as u64) & c.data_mask();
        let mut counts = EccCounts::default();
        for p in 0..c.n() {
            for q in p + 1..c.n() {
                for s in q + 1..c.n() {
                    let (rd, rck, ed, ec) = corrupt(&c, data, &[p, q, s]);
                    let (got, act) = c.decode(rd, rck);
                    let (ref_data, ref_det) = reference_decode(&rc, &c, rd, rck);
                    assert_eq!((got, act == Action::Detect), (ref_data, ref_det));
                    let d = c.classify(ed, ec);
                    counts.add(d.outcome);
                    if ref_det {
                        assert_eq!(d.outcome, Outcome::Detected);
                    } else {
                        assert_eq!(
                            d.outcome,
                            if ref_data == data {
                                Outcome::Corrected
                            } else {
                                Outcome::Silent
                            }
                        );
                        assert_eq!(d.residual, ref_data ^ data);
                    }
                }
            }
        }
        match c.scheme() {
            // Three errors have odd weight: parity always detects them.
            EccScheme::Parity => assert_eq!(
                counts.detected,
                (c.n() * (c.n() - 1) * (c.n() - 2) / 6) as u64
            ),
            // SECDED: the syndrome of three errors is odd and nonzero, so never accepted; it is either some
            // column (miscorrection: silent) or not (detected). Both happen, and nothing is corrected.
            _ => {
                assert!(
                    counts.silent > 0 && counts.detected > 0,
                    "{}: {counts:?}",
                    c.name()
                );
                assert_eq!(counts.corrected, 0);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn any_error_pattern_decodes_as_the_reference(which in 0usize..6, data in any::<u64>(),
                                                   ed in any::<u64>(), ec in any::<u16>(), sparse in any::<bool>()) {
        let (c, rc) = all_codes().swap_remove(which);
        let data = data & c.data_mask();
        // Sparse patterns (a few bits) exercise the 3..5-error cases; dense ones everything else.
        let (ed, ec) = if sparse { (ed & mix(ed) & mix(ed ^ 1), ec & (mix(ec as u64) as u16)) } else { (ed, ec) };
        let ed = ed & c.data_mask();
        let ec = ec & ((1u32 << c.r()) - 1) as u16;
        let check = c.encode(data);
        let (got, act) = c.decode(data ^ ed, check ^ ec);
        prop_assert_eq!(reference_decode(&rc, &c, data ^ ed, check ^ ec), (got, act == Action::Detect));
        let d = c.classify(ed, ec);
        let want = if ed == 0 && ec == 0 {
            Outcome::Clean
        } else if act == Action::Detect {
            Outcome::Detected
        } else if got == data {
            Outcome::Corrected
        } else {
            Outcome::Silent
        };
        prop_assert_eq!(d.outcome, want);
        if want != Outcome::Detected {
            prop_assert_eq!(d.residual, got ^ data);
        }
    }
}

#[test]
fn gate_counts_follow_from_h() {
    // (72,64): 56 weight-3 and 8 weight-5 data columns = 208 ones in A.
    let c = secded::secded(64);
    assert_eq!((0..64).map(|i| c.column(i).count_ones()).sum::<u32>(), 208);
    assert_eq!(c.encoder_gates(), 208 - 8);
    assert_eq!(c.decoder_gates(), 208 + 2 * 7 + 64 * 7 + 64);
    let p = parity::parity(64);
    assert_eq!(p.encoder_gates(), 63);
    assert_eq!(p.decoder_gates(), 64);
}

fn layouts() -> Vec<EccLayout> {
    let mut v = Vec::new();
    for (k, word, cols) in [
        (16u32, 64u32, 64u32),
        (32, 64, 64),
        (64, 64, 64),
        (64, 64, 256),
        (16, 32, 128),
    ] {
        let q = cols / k;
        for d in (1..=q).filter(|d| q % d == 0) {
            v.push(EccLayout::new(secded::secded(k), word, cols, d));
            v.push(EccLayout::new(parity::parity(k), word, cols, d));
        }
    }
    v
}

#[test]
fn layout_is_a_bijection_onto_the_physical_row() {
    for l in layouts() {
        let n = l.code().n();
        let mut seen = vec![false; l.physical_columns() as usize];
        for q in 0..l.codewords_per_row() {
            for i in 0..n {
                let col = l.physical_column(q, i);
                assert!(col < l.physical_columns());
                assert!(!seen[col as usize], "column {col} used twice");
                seen[col as usize] = true;
                assert_eq!(l.locate(col), Some((q, i)));
                // Data bits stay in the data region, check bits in the check region.
                assert_eq!(i < l.code().k(), col < l.data_columns());
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(l.locate(l.physical_columns()), None);
    }
}

#[test]
fn interleaving_spreads_adjacent_columns_over_codewords() {
    for l in layouts() {
        let d = l.interleave();
        for col in 0..l.physical_columns() {
            let (q, i) = l.locate(col).unwrap();
            if d == 1 && i < l.code().k() {
                // Without interleaving a data bit keeps its unprotected column.
                assert_eq!(col, q * l.code().k() + i);
            }
            // Any d adjacent columns inside one group belong to d different codewords.
            if col % d == 0 && col + d <= l.physical_columns() {
                let qs: std::collections::BTreeSet<u32> =
                    (col..col + d).map(|c| l.locate(c).unwrap().0).collect();
                assert_eq!(qs.len(), d as usize, "columns {col}..{}", col + d);
            }
        }
    }
    // The documented example: (22,16) with 4 codewords per 64-column row, interleave 4.
    let l = EccLayout::new(secded::secded(16), 64, 64, 4);
    assert_eq!(l.physical_columns(), 88);
    assert_eq!(l.physical_column(1, 0), 1);
    assert_eq!(l.physical_column(1, 1), 5);
    assert_eq!(l.physical_column(0, 16), 64);
    assert_eq!(l.physical_column(2, 17), 64 + 4 + 2);
    let l1 = EccLayout::new(secded::secded(16), 64, 64, 1);
    assert_eq!(l1.physical_column(1, 0), 16);
    assert_eq!(l1.physical_column(1, 16), 64 + 6);
    let l72 = EccLayout::new(secded::secded(64), 64, 64, 1);
    assert_eq!(l72.physical_columns(), 72);
    assert_eq!(l72.physical_column(0, 64), 64);
}
