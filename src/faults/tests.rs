use proptest::prelude::*;

use super::bitops::*;
use super::*;

// ---------- slow, obviously-right references (one bit at a time) ----------

fn bit_of(x: u32, b: u32) -> u32 {
    (x >> b) & 1
}

fn ref_word<C: Code>(x: C, f: impl Fn(u32, u32) -> u32) -> C {
    let v = x.to_bits();
    let mut out = 0u32;
    for b in 0..C::BITS {
        out |= f(b, bit_of(v, b)) << b;
    }
    C::from_bits(out)
}

fn ref_flip<C: Code>(x: C, mask: u32) -> C {
    ref_word(x, |b, v| if bit_of(mask, b) == 1 { 1 - v } else { v })
}
fn ref_set0<C: Code>(x: C, mask: u32) -> C {
    ref_word(x, |b, v| if bit_of(mask, b) == 1 { 0 } else { v })
}
fn ref_set1<C: Code>(x: C, mask: u32) -> C {
    ref_word(x, |b, v| if bit_of(mask, b) == 1 { 1 } else { v })
}
fn ref_hamming<C: Code>(x: C, y: C) -> u32 {
    (0..C::BITS)
        .filter(|&b| bit_of(x.to_bits(), b) != bit_of(y.to_bits(), b))
        .count() as u32
}

fn check_bitops<C: Code>(
    xs: Vec<C>,
    ys: Vec<C>,
    mask: u32,
    bits: u32,
) -> Result<(), TestCaseError> {
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &ys[..n]);
    let mut a = xs.to_vec();
    flip_mask(&mut a, mask);
    prop_assert!(a.iter().zip(xs).all(|(&r, &x)| r == ref_flip(x, mask)));
    let mut a = xs.to_vec();
    set_bits0(&mut a, mask);
    prop_assert!(a.iter().zip(xs).all(|(&r, &x)| r == ref_set0(x, mask)));
    let mut a = xs.to_vec();
    set_bits1(&mut a, mask);
    prop_assert!(a.iter().zip(xs).all(|(&r, &x)| r == ref_set1(x, mask)));
    let mut a = xs.to_vec();
    xor_into(&mut a, ys).unwrap();
    for i in 0..n {
        prop_assert_eq!(a[i], ref_flip(xs[i], ys[i].to_bits()));
    }
    let per = hamming_per_element(xs, ys).unwrap();
    for i in 0..n {
        prop_assert_eq!(per[i], ref_hamming(xs[i], ys[i]));
    }
    prop_assert_eq!(
        hamming_distance(xs, ys).unwrap(),
        per.iter().map(|&d| d as u64).sum::<u64>()
    );
    // unpack: LSB first, `bits` values per element; pack inverts it on the low bits.
    let u = unpack_bits(xs, bits).unwrap();
    prop_assert_eq!(u.len(), n * bits as usize);
    for i in 0..n {
        for b in 0..bits {
            prop_assert_eq!(
                u[i * bits as usize + b as usize] as u32,
                bit_of(xs[i].to_bits(), b)
            );
        }
    }
    let p: Vec<C> = pack_bits(&u, bits).unwrap();
    for i in 0..n {
        prop_assert_eq!(p[i].to_bits(), xs[i].to_bits() & low_mask(bits));
    }
    // ndarray versions agree with the slice versions.
    let arr = ndarray::Array::from_shape_vec((1, n), xs.to_vec()).unwrap();
    let brr = ndarray::Array::from_shape_vec((1, n), ys.to_vec()).unwrap();
    let mut f = arr.clone();
    flip_mask_array(&mut f, mask);
    let mut s = xs.to_vec();
    flip_mask(&mut s, mask);
    prop_assert_eq!(f.iter().copied().collect::<Vec<_>>(), s);
    let mut f = arr.clone();
    set_bits0_array(&mut f, mask);
    prop_assert!(f.iter().zip(xs).all(|(&r, &x)| r == ref_set0(x, mask)));
    let mut f = arr.clone();
    set_bits1_array(&mut f, mask);
    prop_assert!(f.iter().zip(xs).all(|(&r, &x)| r == ref_set1(x, mask)));
    let mut f = arr.clone();
    xor_into_array(&mut f, &brr).unwrap();
    prop_assert!(f
        .iter()
        .zip(xs)
        .zip(ys)
        .all(|((&r, &x), &y)| r == ref_flip(x, y.to_bits())));
    let h = hamming_array(&arr, &brr).unwrap();
    prop_assert_eq!(h.iter().copied().collect::<Vec<_>>(), per);
    let ua = unpack_bits_array(&arr, bits).unwrap();
    prop_assert_eq!(ua.shape(), &[1, n, bits as usize]);
    prop_assert_eq!(ua.iter().copied().collect::<Vec<_>>(), u);
    let pa: ndarray::Array2<C> = pack_bits_array(&ua, bits).unwrap();
    prop_assert_eq!(pa.iter().copied().collect::<Vec<_>>(), p);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn bitops_u8(xs in prop::collection::vec(any::<u8>(), 0..40), ys in prop::collection::vec(any::<u8>(), 0..40), mask in any::<u32>(), bits in 1u32..=8) {
        check_bitops(xs, ys, mask, bits)?;
    }
    #[test]
    fn bitops_i8(xs in prop::collection::vec(any::<i8>(), 0..40), ys in prop::collection::vec(any::<i8>(), 0..40), mask in any::<u32>(), bits in 1u32..=8) {
        check_bitops(xs, ys, mask, bits)?;
    }
    #[test]
    fn bitops_i16(xs in prop::collection::vec(any::<i16>(), 0..40), ys in prop::collection::vec(any::<i16>(), 0..40), mask in any::<u32>(), bits in 1u32..=16) {
        check_bitops(xs, ys, mask, bits)?;
    }
    #[test]
    fn bitops_i32(xs in prop::collection::vec(any::<i32>(), 0..40), ys in prop::collection::vec(any::<i32>(), 0..40), mask in any::<u32>(), bits in 1u32..=32) {
        check_bitops(xs, ys, mask, bits)?;
    }

    /// Pattern application equals the bit-by-bit reference: flip, then stuck-at-0, then stuck-at-1.
    #[test]
    fn pattern_apply_matches_reference(codes in prop::collection::vec(any::<u8>(), 1..60), bits in 1u8..=8, raw in prop::collection::vec((any::<u16>(), any::<u32>(), any::<u32>(), any::<u32>()), 0..30)) {
        let m = low_mask(bits as u32);
        let mut entries: Vec<FaultEntry> = raw.iter().map(|&(i, f, s0, s1)| FaultEntry { index: i as u64 % codes.len() as u64, flip: f & m, set0: s0 & m, set1: s1 & m }).collect();
        entries.sort_by_key(|e| e.index);
        entries.dedup_by_key(|e| e.index);
        let p = FaultPattern { bits, entries: entries.clone() };
        let mut fast = codes.clone();
        p.apply_u8(&mut fast).unwrap();
        let mut slow = codes.clone();
        for e in &entries {
            let x = slow[e.index as usize];
            slow[e.index as usize] = ref_set1(ref_set0(ref_flip(x, e.flip), e.set0), e.set1);
        }
        prop_assert_eq!(&fast, &slow);
        // Bits above m are never touched.
        for (a, b) in fast.iter().zip(&codes) {
            prop_assert_eq!(a & !(m as u8), b & !(m as u8));
        }
    }

    /// The sampler equals the nested sampler's selection, and the pattern applied equals in-place injection.
    #[test]
    fn sample_apply_inject_and_nested_agree(n in 1usize..3000, bits in 1u8..=8, p01 in 0.0f64..0.3, p10 in 0.0f64..0.3, seed in any::<u64>(), cseed in any::<u64>()) {
        let mask = low_mask(bits as u32) as u8;
        let codes: Vec<u8> = (0..n).map(|i| (sampler_test_mix(cseed ^ i as u64) as u8) & mask).collect();
        let rates = BitErrorRates::new(p01, p10).unwrap();
        let pat = try_sample_bit_errors(&codes, bits, rates, seed).unwrap();
        let mut a = codes.clone();
        pat.apply_u8(&mut a).unwrap();
        let mut b = codes.clone();
        let flips = try_inject_bit_errors(&mut b, bits, rates, seed).unwrap();
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(flips as u64, pat.flip_count());
        prop_assert_eq!(hamming_distance(&codes, &a).unwrap(), pat.flip_count());
        // The fused copy + inject writes the same codes into a buffer full of garbage and leaves `codes` alone.
        let mut c = vec![0xA5u8; n];
        let flips_into = try_inject_bit_errors_into(&codes, &mut c, bits, rates, seed).unwrap();
        prop_assert_eq!(&a, &c);
        prop_assert_eq!(flips_into, flips);
        let ns = NestedSampler::new(n as u64, bits, 0.3, seed).unwrap();
        prop_assert_eq!(&ns.pattern(&codes, rates).unwrap(), &pat);
    }
}

fn sampler_test_mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ---------- patterns as data ----------

#[test]
fn pattern_file_round_trip_with_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.safetensors");
    let p = FaultPattern {
        bits: 4,
        entries: vec![
            FaultEntry {
                index: 0,
                flip: 1,
                set0: 0,
                set1: 0,
            },
            FaultEntry {
                index: 7,
                flip: 0b1010,
                set0: 0b0001,
                set1: 0,
            },
            FaultEntry {
                index: 1 << 40,
                flip: 0,
                set0: 0,
                set1: 0b1000,
            },
        ],
    };
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("seed".to_string(), "42".to_string());
    meta.insert("bits".to_string(), "99".to_string()); // reserved: ignored
    p.write_with_metadata(&path, &meta).unwrap();
    let (q, m) = FaultPattern::read_with_metadata(&path).unwrap();
    assert_eq!(p, q);
    assert_eq!(m["seed"], "42");
    assert_eq!(m["bits"], "4");
    assert_eq!(m["format"], PATTERN_FORMAT);
    // The same pattern and metadata always give the same bytes (the metadata is a hash map inside the
    // safetensors crate; the header is written in canonical form).
    meta.insert("p01".to_string(), "0.01".to_string());
    meta.insert("source".to_string(), "chip1".to_string());
    p.write_with_metadata(&path, &meta).unwrap();
    let first = std::fs::read(&path).unwrap();
    for _ in 0..8 {
        p.write_with_metadata(&path, &meta).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
    }
    // Empty pattern round-trips too.
    let e = FaultPattern::new(8);
    e.write(&path).unwrap();
    assert_eq!(FaultPattern::read(&path).unwrap(), e);
}

#[test]
fn pattern_errors_are_typed_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    assert!(matches!(
        FaultPattern::read(&missing),
        Err(FaultError::Io { .. })
    ));
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file at all").unwrap();
    let e = FaultPattern::read(&junk).unwrap_err();
    assert!(matches!(e, FaultError::Format { .. }), "{e}");
    assert!(e.to_string().contains("junk.safetensors"));

    let p = FaultPattern {
        bits: 4,
        entries: vec![FaultEntry {
            index: 5,
            flip: 1,
            set0: 0,
            set1: 0,
        }],
    };
    assert!(matches!(
        p.apply_u8(&mut [0u8; 5]),
        Err(FaultError::IndexOutOfRange { index: 5, len: 5 })
    ));
    let p = FaultPattern {
        bits: 4,
        entries: vec![FaultEntry {
            index: 0,
            flip: 0x10,
            set0: 0,
            set1: 0,
        }],
    };
    assert!(matches!(
        p.apply_u8(&mut [0u8; 5]),
        Err(FaultError::MaskOutOfRange { .. })
    ));
    let p = FaultPattern {
        bits: 4,
        entries: vec![
            FaultEntry {
                index: 2,
                flip: 1,
                set0: 0,
                set1: 0,
            },
            FaultEntry {
                index: 1,
                flip: 1,
                set0: 0,
                set1: 0,
            },
        ],
    };
    assert!(matches!(
        p.apply_u8(&mut [0u8; 5]),
        Err(FaultError::NotSorted { position: 1 })
    ));
    let p = FaultPattern {
        bits: 9,
        entries: vec![],
    };
    assert!(matches!(
        p.apply_u8(&mut [0u8; 5]),
        Err(FaultError::InvalidBits { .. })
    ));
    assert!(p.apply(&mut [0i16; 5]).is_ok());
}

#[test]
fn slice_restricts_and_rebases() {
    let p = FaultPattern {
        bits: 8,
        entries: (0..10)
            .map(|i| FaultEntry {
                index: i * 3,
                flip: 1,
                set0: 0,
                set1: 0,
            })
            .collect(),
    };
    let s = p.slice(6, 7);
    assert_eq!(
        s.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![0, 3, 6]
    );
}

// ---------- the sampler: exactness, nesting, protection, determinism ----------

/// Counts flips per direction at rates (p01, p10) over `n_el` codes of m = 8, with codes all 0 or all 1.
fn count_flips(n_el: usize, fill: u8, rates: BitErrorRates, seed: u64) -> usize {
    let mut codes = vec![fill; n_el];
    try_inject_bit_errors(&mut codes, 8, rates, seed).unwrap()
}

fn within_sigmas(count: usize, n: f64, p: f64, sigmas: f64) -> bool {
    let mean = n * p;
    let sd = (n * p * (1.0 - p)).sqrt();
    (count as f64 - mean).abs() <= sigmas * sd
}

/// Empirical flip rate within 4 standard deviations of p over 10^7 bits, for p01 (codes all 0) and p10 (codes
/// all 1) separately, for every p of the issue. The opposite direction's rate is 0, so any leak also shows.
#[test]
fn flip_rate_is_p_per_direction_over_1e7_bits() {
    let n_el = 1_250_000; // × 8 bits = 10^7 stored bits
    let n = (n_el * 8) as f64;
    for (i, &p) in [1e-5, 1e-3, 1e-2, 0.1, 0.5].iter().enumerate() {
        let c01 = count_flips(
            n_el,
            0x00,
            BitErrorRates { p01: p, p10: 0.0 },
            1000 + i as u64,
        );
        assert!(
            within_sigmas(c01, n, p, 4.0),
            "p01 = {p}: {c01} flips of {n} bits"
        );
        let c10 = count_flips(
            n_el,
            0xff,
            BitErrorRates { p01: 0.0, p10: p },
            2000 + i as u64,
        );
        assert!(
            within_sigmas(c10, n, p, 4.0),
            "p10 = {p}: {c10} flips of {n} bits"
        );
        // The other direction never flips.
        assert_eq!(
            count_flips(n_el / 10, 0x00, BitErrorRates { p01: 0.0, p10: p }, 7),
            0
        );
    }
}

/// Mixed codes with different rates per direction: each direction's count matches its own rate.
#[test]
fn direction_rates_apply_to_the_stored_value() {
    let n_el = 400_000;
    let codes: Vec<u8> = (0..n_el)
        .map(|i| sampler_test_mix(i as u64) as u8)
        .collect();
    let ones: u64 = codes.iter().map(|c| c.count_ones() as u64).sum();
    let zeros = n_el as u64 * 8 - ones;
    let rates = BitErrorRates {
        p01: 0.003,
        p10: 0.04,
    };
    let pat = try_sample_bit_errors(&codes, 8, rates, 5).unwrap();
    let (mut f01, mut f10) = (0usize, 0usize);
    for e in &pat.entries {
        let v = codes[e.index as usize] as u32;
        f10 += (e.flip & v).count_ones() as usize;
        f01 += (e.flip & !v).count_ones() as usize;
    }
    assert!(
        within_sigmas(f01, zeros as f64, 0.003, 4.0),
        "{f01} of {zeros}"
    );
    assert!(
        within_sigmas(f10, ones as f64, 0.04, 4.0),
        "{f10} of {ones}"
    );
}

/// Flips are spread evenly over bit positions and over the element range (chi-square, 0.1% critical values):
/// a sampler biased toward some bits, chunks or levels fails this.
#[test]
fn flips_are_uniform_over_bit_positions_and_elements() {
    let n_el = 1_000_000;
    let m = 6u8;
    let codes = vec![0u8; n_el];
    for (p, seed) in [(0.013, 11u64), (0.27, 12)] {
        let pat = try_sample_bit_errors(&codes, m, BitErrorRates::uniform(p), seed).unwrap();
        let mut per_bit = [0f64; 6];
        let mut per_bucket = [0f64; 64];
        for e in &pat.entries {
            for (b, count) in per_bit.iter_mut().enumerate() {
                if e.flip >> b & 1 == 1 {
                    *count += 1.0;
                    per_bucket[(e.index as usize * 64) / n_el] += 1.0;
                }
            }
        }
        let total: f64 = per_bit.iter().sum();
        let chi = |obs: &[f64]| {
            let exp = total / obs.len() as f64;
            obs.iter().map(|o| (o - exp) * (o - exp) / exp).sum::<f64>()
        };
        assert!(
            chi(&per_bit) < 20.52,
            "bit positions chi2 {} at p {p}",
            chi(&per_bit)
        ); // 5 dof
        assert!(
            chi(&per_bucket) < 103.4,
            "element buckets chi2 {} at p {p}",
            chi(&per_bucket)
        ); // 63 dof
        assert!(within_sigmas(
            total as usize,
            (n_el * m as usize) as f64,
            p,
            4.0
        ));
    }
}

/// The u of the enumerated candidates is uniform on [0, t_k*): checks the ladder's level rates and the in-level
/// hash together (a wrong r_k skews the histogram by whole levels).
#[test]
fn candidate_u_is_uniform_below_the_boundary_threshold() {
    let p_max = 0.02;
    let ns = NestedSampler::new(2_000_000, 8, p_max, 77).unwrap();
    let tk = (0..LADDER_LEVELS)
        .map(ladder_threshold)
        .filter(|&t| t >= p_max)
        .fold(1.0, f64::min);
    let bins = 32usize;
    let mut h = vec![0f64; bins];
    for c in ns.candidates() {
        let u = ns.u(c);
        assert!(u < tk, "u {u} above t {tk}");
        h[((u / tk) * bins as f64) as usize] += 1.0;
    }
    let total: f64 = h.iter().sum();
    assert!(within_sigmas(total as usize, 16e6, tk, 4.0));
    let exp = total / bins as f64;
    let chi: f64 = h.iter().map(|o| (o - exp) * (o - exp) / exp).sum();
    assert!(chi < 61.1, "chi2 {chi} over {bins} bins"); // 31 dof, 0.1%
}

#[test]
fn patterns_are_nested_across_rates() {
    let codes: Vec<u8> = (0..300_000)
        .map(|i| sampler_test_mix(i) as u8 & 0x1f)
        .collect();
    let rates = [
        0.0, 1e-5, 1e-4, 3e-4, 1e-3, 0.0042, 0.01, 0.0105, 0.05, 0.2, 0.5, 0.9, 1.0,
    ];
    for seed in [1u64, 2, 3] {
        let mut prev: Option<Vec<u8>> = None;
        for &p in &rates {
            let mut a = codes.clone();
            try_inject_bit_errors(&mut a, 5, BitErrorRates::uniform(p), seed).unwrap();
            let flips: Vec<u8> = a.iter().zip(&codes).map(|(x, y)| x ^ y).collect();
            if let Some(prev) = &prev {
                assert!(
                    prev.iter().zip(&flips).all(|(lo, hi)| lo & !hi == 0),
                    "seed {seed}, p {p}: not nested"
                );
            }
            prev = Some(flips);
        }
        // p = 1 flips every stored bit and nothing else; p = 0 flips nothing.
        let mut a = codes.clone();
        try_inject_bit_errors(&mut a, 5, BitErrorRates::uniform(1.0), seed).unwrap();
        assert!(a.iter().zip(&codes).all(|(x, y)| x ^ y == 0x1f));
    }
    // Nested in each direction separately too (p10 grows, p01 fixed).
    let mut prev: Option<FaultPattern> = None;
    for p10 in [0.0, 0.001, 0.01, 0.1] {
        let pat = try_sample_bit_errors(&codes, 5, BitErrorRates { p01: 0.002, p10 }, 9).unwrap();
        if let Some(prev) = &prev {
            let cur: std::collections::HashMap<u64, u32> =
                pat.entries.iter().map(|e| (e.index, e.flip)).collect();
            assert!(prev
                .entries
                .iter()
                .all(|e| cur.get(&e.index).is_some_and(|f| e.flip & !f == 0)));
        }
        prev = Some(pat);
    }
}

#[test]
fn protected_high_bits_never_flip() {
    for m in 1u8..8 {
        let codes: Vec<u8> = (0..100_000).map(|i| sampler_test_mix(i) as u8).collect(); // high bits set too
        let mut a = codes.clone();
        try_inject_bit_errors(&mut a, m, BitErrorRates::uniform(0.6), 3).unwrap();
        let hi = !(low_mask(m as u32) as u8);
        assert!(
            a.iter().zip(&codes).all(|(x, y)| (x ^ y) & hi == 0),
            "m = {m}"
        );
        assert!(a.iter().zip(&codes).any(|(x, y)| x != y));
    }
    let codes = vec![0i16; 50_000];
    let pat = try_sample_bit_errors(&codes, 12, BitErrorRates::uniform(0.5), 3).unwrap();
    assert!(pat.entries.iter().all(|e| e.flip < (1 << 12)));
}

#[test]
fn deterministic_across_thread_counts_and_runs() {
    let codes: Vec<u8> = (0..(3 * CHUNK_ELEMENTS + 1234))
        .map(|i| sampler_test_mix(i as u64) as u8)
        .collect();
    let rates = BitErrorRates {
        p01: 0.01,
        p10: 0.03,
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let pat = try_sample_bit_errors(&codes, 7, rates, 123).unwrap();
            let mut a = codes.clone();
            try_inject_bit_errors(&mut a, 7, rates, 123).unwrap();
            let ns = NestedSampler::new(codes.len() as u64, 7, 0.05, 123).unwrap();
            let mut b = vec![0u8; codes.len()];
            try_inject_bit_errors_into(&codes, &mut b, 7, rates, 123).unwrap();
            (pat, a, ns.candidates().to_vec(), b)
        })
    };
    let one = run(1);
    let two = run(2);
    assert_eq!(one.0, two.0);
    assert_eq!(one.1, two.1);
    assert_eq!(one.2, two.2);
    assert_eq!(one.3, two.3);
    assert_eq!(one.3, one.1);
    assert_eq!(run(2).0, one.0);
    // A different seed gives a different pattern.
    assert_ne!(try_sample_bit_errors(&codes, 7, rates, 124).unwrap(), one.0);
}

#[test]
fn nested_sampler_matches_direct_sampler_over_a_sweep_and_ranges() {
    let codes: Vec<i8> = (0..(CHUNK_ELEMENTS + 5000))
        .map(|i| sampler_test_mix(i as u64 * 7) as i8)
        .collect();
    let ns = NestedSampler::new(codes.len() as u64, 8, 0.025, 99).unwrap();
    for p in [1e-4, 5e-4, 0.001, 0.0075, 0.01, 0.025] {
        let r = BitErrorRates::uniform(p);
        assert_eq!(
            ns.pattern(&codes, r).unwrap(),
            try_sample_bit_errors(&codes, 8, r, 99).unwrap()
        );
    }
    // A sub-range (one tensor inside a model's memory) is the matching slice of the whole.
    let r = BitErrorRates {
        p01: 0.02,
        p10: 0.005,
    };
    let whole = ns.pattern(&codes, r).unwrap();
    let part = ns
        .pattern_range(1000, &codes[1000..CHUNK_ELEMENTS + 10], r)
        .unwrap();
    assert_eq!(part, whole.slice(1000, (CHUNK_ELEMENTS + 10 - 1000) as u64));
    // Rates above p_max are refused.
    assert!(ns.pattern(&codes, BitErrorRates::uniform(0.03)).is_err());
}

#[test]
fn invalid_inputs_are_errors_or_saturate() {
    let mut codes = vec![0u8; 100];
    for bad in [-0.1, 1.1, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            try_inject_bit_errors(&mut codes, 8, BitErrorRates::uniform(bad), 0),
            Err(FaultError::InvalidRate { .. })
        ));
        assert!(BitErrorRates::new(0.1, bad).is_err());
    }
    assert!(matches!(
        try_inject_bit_errors(&mut codes, 0, BitErrorRates::uniform(0.1), 0),
        Err(FaultError::InvalidBits { .. })
    ));
    assert!(matches!(
        try_inject_bit_errors(&mut codes, 9, BitErrorRates::uniform(0.1), 0),
        Err(FaultError::InvalidBits { .. })
    ));
    let mut short = vec![0u8; 99];
    assert!(matches!(
        try_inject_bit_errors_into(&codes, &mut short, 8, BitErrorRates::uniform(0.1), 0),
        Err(FaultError::LengthMismatch {
            left: 100,
            right: 99
        })
    ));
    assert!(matches!(
        try_inject_bit_errors_into(
            &codes,
            &mut codes.clone(),
            8,
            BitErrorRates::uniform(f64::NAN),
            0
        ),
        Err(FaultError::InvalidRate { .. })
    ));
    // The unchecked entry points never panic.
    assert_eq!(
        inject_bit_errors_u8(&mut codes, 8, BitErrorRates::uniform(f64::NAN), 0),
        0
    );
    assert_eq!(
        inject_bit_errors_u8(&mut codes, 0, BitErrorRates::uniform(0.5), 0),
        0
    );
    assert_eq!(
        inject_bit_errors_u8(&mut codes, 200, BitErrorRates::uniform(2.0), 0),
        800
    );
    assert_eq!(
        sample_bit_errors_u8(&codes, 8, BitErrorRates::uniform(-1.0), 0)
            .entries
            .len(),
        0
    );
}

#[test]
fn wide_codes_flip_all_their_bits() {
    let mut a = vec![0i32; 1000];
    let n = try_inject_bit_errors(&mut a, 32, BitErrorRates::uniform(0.25), 4).unwrap();
    assert_eq!(n as u32, a.iter().map(|x| x.count_ones()).sum::<u32>());
    let mut per_bit = [0u32; 32];
    for x in &a {
        for (b, c) in per_bit.iter_mut().enumerate() {
            *c += (*x as u32 >> b) & 1;
        }
    }
    assert!(per_bit[31] > 150 && per_bit[0] > 150, "{per_bit:?}");
    // The fused copy + inject agrees on wide signed codes with non-zero values and asymmetric rates.
    let clean: Vec<i16> = (0..3000).map(|i| sampler_test_mix(i) as i16).collect();
    let rates = BitErrorRates::new(0.02, 0.2).unwrap();
    let mut in_place = clean.clone();
    let n = try_inject_bit_errors(&mut in_place, 13, rates, 8).unwrap();
    let mut out = vec![-1i16; clean.len()];
    assert_eq!(
        try_inject_bit_errors_into(&clean, &mut out, 13, rates, 8).unwrap(),
        n
    );
    assert_eq!(out, in_place);
}
