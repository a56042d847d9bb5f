use super::*;
use crate::config::ActivationSramConfig;
use crate::engine::act_store::FoldTable;
use crate::sram::profile::{FailingCell, ProfileMeta};

/// One 128x64 array per buffer (1 KiB each): B0 = array 0, B1 = array 1; 1024 codes per buffer.
fn tiny_cfg() -> ActivationSramConfig {
    ActivationSramConfig {
        ifmap_kib: 1,
        ofmap_kib: 1,
        word_bits: 64,
        rows: 128,
        fault_profile: None,
        partial_sums: Default::default(),
    }
}

fn tiny_hw(scaled: &[Rail]) -> HwConfig {
    let mut hw = HwConfig::load_named("14nm_sram").unwrap();
    hw.activation_sram = tiny_cfg();
    hw.with_rails(scaled).unwrap()
}

fn cell(array: u32, row: u32, column: u32, fail: f64, kind: FailureKind, p: f64) -> FailingCell {
    FailingCell {
        cell: (array * 128 + row) * 64 + column,
        fail_vdd_rel: fail,
        kind,
        p_access: p,
    }
}

/// The hand-built fault map of the tests (cells named by array, row, column).
fn tiny_profile() -> FaultProfile {
    let meta = ProfileMeta {
        name: "tiny".into(),
        source: "hand-built".into(),
        style: None,
        seed: None,
        arrays: 2,
        rows: 128,
        columns: 64,
        floor_vdd_rel: 0.75,
    };
    FaultProfile::new(
        meta,
        vec![
            // B0 slot 0 bit 3 reads 1; slot 1 bit 5 reads 0 (only below 0.85); slot 2 bit 7 flips.
            cell(0, 0, 3, 0.9, FailureKind::ReadsOne, 1.0),
            cell(0, 0, 13, 0.85, FailureKind::ReadsZero, 1.0),
            cell(0, 0, 23, 0.9, FailureKind::Flips, 1.0),
            // B0 slot 7: beyond a 4-code map.
            cell(0, 0, 62, 0.9, FailureKind::Flips, 1.0),
            // B1 slot 1 bit 0 flips.
            cell(1, 0, 8, 0.9, FailureKind::Flips, 1.0),
        ],
    )
    .unwrap()
}

fn read(store: &ActivationFaults, layer: usize, image: u64, codes: &[u8]) -> Vec<u8> {
    let mut out = codes.to_vec();
    let shape = [codes.len(), 1, 1];
    store.read_back(
        &StoredMap {
            layer,
            shape,
            image,
        },
        &mut out,
    );
    out
}

#[test]
fn hand_computed_two_layer_corruption() {
    let hw = tiny_hw(&[Rail::WeightSram, Rail::ActivationSram]);
    let p = tiny_profile();
    let store = ActivationFaults::build(&hw, 0.8, Some(&p), 0.0, 7).unwrap();
    assert_eq!(store.map().faulty_cells(), 5);
    // Layer 0 (the image, 2x2 in B0): 0x00 bit 3 -> 1 = 0x08; 0xFF bit 5 -> 0 = 0xDF; 0x12 bit 7 flips = 0x92;
    // 0x34 untouched (its slot 3 has no faulty cell; slot 7's cell lies past the map).
    assert_eq!(
        read(&store, 0, 0, &[0x00, 0xFF, 0x12, 0x34]),
        [0x08, 0xDF, 0x92, 0x34]
    );
    assert_eq!(
        store.counts(),
        ActCounts {
            bits_read: 32,
            bits_flipped: 3
        }
    );
    // Layer 1 (2 codes in B1): slot 1 bit 0 flips, 0x01 -> 0x00; slot 0 is clean.
    assert_eq!(read(&store, 1, 0, &[0x01, 0x01]), [0x01, 0x00]);
    // A stuck-at cell agreeing with the stored bit is no error: 0x08 reads 0x08, 0xDF stays.
    assert_eq!(read(&store, 2, 5, &[0x08, 0xDF, 0x92]), [0x08, 0xDF, 0x12]);
    assert_eq!(
        store.counts(),
        ActCounts {
            bits_read: 32 + 16 + 24,
            bits_flipped: 3 + 1 + 1
        }
    );
    assert!((store.counts().ber() - 5.0 / 72.0).abs() < 1e-15);
    // At 0.88 V the reads-as-0 cell (fails below 0.85) works.
    let store = ActivationFaults::build(&hw, 0.88, Some(&p), 0.0, 7).unwrap();
    assert_eq!(
        read(&store, 0, 0, &[0x00, 0xFF, 0x12, 0x34]),
        [0x08, 0xFF, 0x92, 0x34]
    );
    // A map larger than its buffer (1028 codes > 1024) sends code 1024 through slot 0's cells again.
    let mut big = vec![0u8; 1028];
    big[1025] = 0xFF;
    let out = read(&store, 0, 0, &big);
    assert_eq!(
        (out[0], out[1024], out[1025], out[1026]),
        (0x08, 0x08, 0xFF, 0x80)
    );
    assert_eq!(
        out[7], 0x40,
        "slot 7 bit 6 (column 62) flips inside the big map"
    );
}

#[test]
fn unscaled_rail_never_fails_and_random_flips_combine() {
    let p = tiny_profile();
    let hw = tiny_hw(&[Rail::WeightSram]);
    let store = ActivationFaults::build(&hw, 0.8, Some(&p), 0.0, 1).unwrap();
    assert_eq!(store.map().faulty_cells(), 0);
    assert_eq!(read(&store, 0, 0, &[0, 0xFF, 0x12]), [0, 0xFF, 0x12]);
    // Random flips at P = 1: every code bit inverts; on the profile's cells the flip follows the profile's read.
    let hw = tiny_hw(&[Rail::WeightSram, Rail::ActivationSram]);
    let store = ActivationFaults::build(&hw, 0.8, Some(&p), 1.0, 1).unwrap();
    // Code 0: bit 3 reads 1 then flips -> 0, the others flip: 0xFF ^ 0x08 = 0xF7.
    assert_eq!(read(&store, 0, 0, &[0x00]), [0xF7]);
    // The same random chip for a seed, another for another seed.
    let a = ActivationFaults::build(&hw, 0.8, None, 0.01, 3).unwrap();
    let b = ActivationFaults::build(&hw, 0.8, None, 0.01, 3).unwrap();
    let c = ActivationFaults::build(&hw, 0.8, None, 0.01, 4).unwrap();
    let codes: Vec<u8> = (0..1024u32).map(|i| (i * 37) as u8).collect();
    assert_eq!(
        read(&a, 0, 0, &codes),
        read(&b, 0, 9, &codes),
        "persistent: same for every image"
    );
    assert_ne!(read(&a, 0, 0, &codes), read(&c, 0, 0, &codes));
    assert!(ActivationFaults::build(&hw, 0.8, None, 1.5, 3).is_err());
}

#[test]
fn transient_cells_fail_per_access_with_their_probability() {
    let meta = ProfileMeta {
        name: "t".into(),
        source: "hand-built".into(),
        style: None,
        seed: None,
        arrays: 1,
        rows: 128,
        columns: 64,
        floor_vdd_rel: 0.75,
    };
    let p = FaultProfile::new(meta, vec![cell(0, 0, 0, 0.9, FailureKind::Flips, 0.3)]).unwrap();
    let hw = tiny_hw(&[Rail::WeightSram, Rail::ActivationSram]);
    let store = ActivationFaults::build(&hw, 0.8, Some(&p), 0.0, 11).unwrap();
    let n = 40_000u64;
    let mut fails = 0u64;
    let mut pairs = 0u64; // image i and i+1 both fail
    let mut last = false;
    for image in 0..n {
        let f = read(&store, 0, image, &[0])[0] == 1;
        // Deterministic in (map, codes): the same access twice reads the same.
        if image < 100 {
            assert_eq!(read(&store, 0, image, &[0])[0] == 1, f);
        }
        fails += f as u64;
        pairs += (f && last) as u64;
        last = f;
    }
    let (nf, q) = (n as f64, 0.3);
    let sd = (nf * q * (1.0 - q)).sqrt();
    assert!((fails as f64 - nf * q).abs() < 5.0 * sd, "{fails} of {n}");
    let sd2 = (nf * q * q * (1.0 - q * q)).sqrt();
    assert!(
        (pairs as f64 - nf * q * q).abs() < 5.0 * sd2,
        "pairs {pairs}"
    );
    // Layer 2 reads the same cells (B0) with independent draws.
    let agree = (0..2000u64)
        .filter(|&i| read(&store, 0, i, &[0]) == read(&store, 2, i, &[0]))
        .count() as f64;
    let want = 2000.0 * (q * q + (1.0 - q) * (1.0 - q));
    assert!(
        (agree - want).abs() < 5.0 * (2000.0f64 * 0.58 * 0.42).sqrt(),
        "{agree}"
    );
}

#[test]
fn bernoulli_indices_are_unbiased() {
    assert!(bernoulli_indices(1000, 0.0, 1).is_empty());
    assert_eq!(bernoulli_indices(5, 1.0, 1), vec![0, 1, 2, 3, 4]);
    assert_eq!(
        bernoulli_indices(10_000, 0.1, 5),
        bernoulli_indices(10_000, 0.1, 5)
    );
    for (p, n) in [(0.25, 1u64 << 20), (0.01, 1 << 22), (0.9, 1 << 18)] {
        let idx = bernoulli_indices(n, p, 42);
        assert!(idx.windows(2).all(|w| w[0] < w[1]) && idx.iter().all(|&i| i < n));
        let (nf, k) = (n as f64, idx.len() as f64);
        let sd = (nf * p * (1.0 - p)).sqrt();
        assert!((k - nf * p).abs() < 5.0 * sd, "p {p}: {k} of {n}");
        // Positions: chi-square over 64 residue classes (df 63; 130 is p < 1e-6).
        let mut buckets = [0f64; 64];
        for &i in &idx {
            buckets[(i % 64) as usize] += 1.0;
        }
        let e = k / 64.0;
        let chi2: f64 = buckets.iter().map(|b| (b - e) * (b - e) / e).sum();
        assert!(chi2 < 130.0, "p {p}: chi2 {chi2}");
        // Independence of neighbours: the share of kept indices followed by a kept one is p.
        let set: std::collections::HashSet<u64> = idx.iter().copied().collect();
        let next = idx.iter().filter(|&&i| set.contains(&(i + 1))).count() as f64;
        let sd = (k * p * (1.0 - p)).sqrt();
        assert!(
            (next - k * p).abs() < 5.0 * sd,
            "p {p}: neighbours {next} of {k}"
        );
        // The first index is geometric: P(first = 0) = p over many seeds.
        let zeros = (0..4000u64)
            .filter(|&s| bernoulli_indices(64, p, s).first() == Some(&0))
            .count() as f64;
        assert!(
            (zeros - 4000.0 * p).abs() < 5.0 * (4000.0 * p * (1.0 - p)).sqrt(),
            "p {p}: {zeros}"
        );
    }
}

#[test]
fn measured_ber_matches_random_flip_rate() {
    let hw = tiny_hw(&[Rail::WeightSram]);
    let store = ActivationFaults::build(&hw, 1.15, None, 0.05, 9).unwrap();
    let codes = vec![0x5Au8; 1024];
    let _ = read(&store, 0, 0, &codes);
    let _ = read(&store, 1, 0, &codes);
    let c = store.counts();
    assert_eq!(c.bits_read, 2 * 8192);
    // Every faulty cell of both buffers was read once: flipped bits = faulty cells.
    assert_eq!(c.bits_flipped, store.map().faulty_cells() as u64);
    let sd = (16384.0f64 * 0.05 * 0.95).sqrt() / 16384.0;
    assert!((c.ber() - 0.05).abs() < 5.0 * sd, "{}", c.ber());
    store.reset_counts();
    assert_eq!(store.counts(), ActCounts::default());
}

#[test]
fn shipped_config_works_out_of_the_box() {
    let hw = HwConfig::load_named("14nm_sram")
        .unwrap()
        .with_rails(&[Rail::WeightSram, Rail::ActivationSram])
        .unwrap();
    let chip1 = FaultProfile::load(&FaultProfile::resolve("chip1").unwrap()).unwrap();
    let p = activation_profile(&hw, Some(&chip1)).unwrap();
    assert_eq!((p.meta.arrays, p.meta.rows, p.meta.columns), (32, 512, 64));
    assert_eq!(p.meta.style.as_deref(), Some("chip1"));
    assert_eq!(p.meta.seed, Some(1 ^ ACT_SEED_SALT));
    assert_eq!(
        p,
        activation_profile(&hw, Some(&chip1)).unwrap(),
        "deterministic"
    );
    // Without a weight profile the derived chip is the uniform style.
    let u = activation_profile(&hw, None).unwrap();
    assert_eq!(u.meta.style.as_deref(), Some("uniform"));
    let store = ActivationFaults::build(&hw, 0.8, Some(&p), 0.0, 0).unwrap();
    let codes: Vec<u8> = (0..28 * 28u32).map(|i| (i * 97 + 13) as u8).collect();
    for image in 0..50 {
        let _ = read(&store, 0, image, &codes);
    }
    // Chip-style cells at 0.8: per-access failing cells at the measured BER, of which stuck-at cells agreeing
    // with the stored bit are no error, so the read BER is below the curve but the same order.
    let ber = store.counts().ber();
    let curve = crate::sram::measured_ber(0.8);
    assert!(
        ber > 0.2 * curve && ber < 1.2 * curve,
        "ber {ber} vs curve {curve}"
    );
    // At nominal voltage nothing fails.
    let store = ActivationFaults::build(&hw, 1.15, Some(&p), 0.0, 0).unwrap();
    assert_eq!(store.map().faulty_cells(), 0);
}

#[test]
fn profile_file_geometry_is_checked() {
    let mut hw = tiny_hw(&[Rail::WeightSram, Rail::ActivationSram]);
    hw.activation_sram.fault_profile = Some("chip1".into());
    let e = activation_profile(&hw, None).unwrap_err().to_string();
    assert!(
        e.contains("512x64") && e.contains("128x64") && !e.contains('\n'),
        "{e}"
    );
}

#[test]
fn float_datapath_refuses_scaled_activation_rail() {
    let e = check_rails_datapath(&[Rail::WeightSram, Rail::ActivationSram], false).unwrap_err();
    assert!(
        e.contains("float activations have no stored bits to fail") && !e.contains('\n'),
        "{e}"
    );
    assert!(check_rails_datapath(&[Rail::WeightSram, Rail::ActivationSram], true).is_ok());
    assert!(check_rails_datapath(&[Rail::WeightSram, Rail::Logic], false).is_ok());
    assert!(check_act_ber_datapath(0.01, false).is_err());
    assert!(check_act_ber_datapath(0.0, false).is_ok());
    assert!(check_act_ber_datapath(0.01, true).is_ok());
}

mod reference {
    use super::*;
    use crate::sram::act_mapping::ActBuffer;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Slow, obviously-right reading: for every bit of every code, find its cell with the forward mapping, look
    /// the cell up in the profile (array `a mod P`) and in the random-flip set, and apply the semantics.
    #[allow(clippy::too_many_arguments)]
    fn reference_read(
        m: &ActMapping,
        profile: &FaultProfile,
        vdd_rel: f64,
        flips: &std::collections::HashSet<u64>,
        seed: u64,
        layer: usize,
        image: u64,
        codes: &[u8],
    ) -> (Vec<u8>, u64) {
        let per_array = (profile.meta.rows * profile.meta.columns) as u64;
        let by_cell: HashMap<u32, &FailingCell> =
            profile.cells().iter().map(|c| (c.cell, c)).collect();
        let cap = m.capacity(ActBuffer::of_layer(layer));
        let mut out = codes.to_vec();
        let mut flipped = 0;
        for (e, code) in out.iter_mut().enumerate() {
            let stored = *code;
            for j in 0..8u8 {
                let addr = m.cell_of(layer, e as u64, j).unwrap();
                let idx = m.cell_index(addr);
                let profile_cell =
                    (idx / per_array % profile.meta.arrays as u64) * per_array + idx % per_array;
                let bit = (stored >> j) & 1;
                let mut read = bit;
                if let Some(fc) = by_cell.get(&(profile_cell as u32)) {
                    let tile = e as u64 / cap;
                    if vdd_rel < fc.fail_vdd_rel
                        && (fc.p_access >= 1.0
                            || transient_fails(seed, layer, image, idx as u32, tile, fc.p_access))
                    {
                        read = match fc.kind {
                            FailureKind::ReadsOne => 1,
                            FailureKind::ReadsZero => 0,
                            FailureKind::Flips => 1 - bit,
                        };
                    }
                }
                if flips.contains(&idx) {
                    read ^= 1;
                }
                if read != bit {
                    *code ^= 1 << j;
                    flipped += 1;
                }
            }
        }
        (out, flipped)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn read_back_matches_reference(
            wb in prop_oneof![Just(8u32), Just(16), Just(64)],
            profile_arrays in 1u32..4,
            cells in proptest::collection::vec((0u32..1 << 16, 0.76f64..1.0, 0u8..3, any::<bool>()), 0..60),
            vdd_rel in 0.76f64..1.0,
            act_ber in prop_oneof![Just(0.0), 0.0f64..0.05],
            seed in 0u64..1000,
            layer in 0usize..3,
            image in 0u64..1000,
            n in 1usize..3000,
        ) {
            // 1 KiB buffers of 8192 / (rows · wb) arrays; rows chosen so each buffer is 2 arrays.
            let rows = 8192 / (2 * wb);
            let act = ActivationSramConfig { ifmap_kib: 1, ofmap_kib: 1, word_bits: wb, rows, fault_profile: None, partial_sums: Default::default() };
            let m = ActMapping::new(&act).unwrap();
            let per_array = rows * wb;
            let meta = ProfileMeta {
                name: "p".into(), source: "proptest".into(), style: None, seed: None,
                arrays: profile_arrays, rows, columns: wb, floor_vdd_rel: 0.75,
            };
            let mut seen = std::collections::HashSet::new();
            let fcs: Vec<FailingCell> = cells
                .into_iter()
                .map(|(c, v, k, persistent)| FailingCell {
                    cell: c % (profile_arrays * per_array),
                    fail_vdd_rel: v,
                    kind: [FailureKind::ReadsOne, FailureKind::ReadsZero, FailureKind::Flips][k as usize],
                    p_access: if persistent { 1.0 } else { 0.5 },
                })
                .filter(|c| seen.insert(c.cell))
                .collect();
            let profile = FaultProfile::new(meta, fcs).unwrap();
            let map = ActFaultMap::empty(m.clone())
                .with_profile(&profile, vdd_rel, "test")
                .unwrap()
                .with_random_flips(act_ber, seed)
                .unwrap();
            let store = ActivationFaults::new(map, seed);
            let flips: std::collections::HashSet<u64> =
                bernoulli_indices(m.total_cells(), act_ber, seed).into_iter().collect();
            let codes: Vec<u8> = (0..n).map(|i| (i as u64).wrapping_mul(2654435761).wrapping_add(seed) as u8).collect();
            let (want, want_flipped) = reference_read(&m, &profile, vdd_rel, &flips, seed, layer, image, &codes);
            let mut got = codes.clone();
            store.read_back(&StoredMap { layer, shape: [n, 1, 1], image }, &mut got);
            prop_assert_eq!(got, want);
            prop_assert_eq!(store.counts(), ActCounts { bits_read: 8 * n as u64, bits_flipped: want_flipped });
        }
    }
}

#[test]
fn parallel_reads_equal_sequential_reads() {
    use rayon::prelude::*;
    let hw = tiny_hw(&[Rail::WeightSram, Rail::ActivationSram]);
    let meta = ProfileMeta {
        name: "t".into(),
        source: "hand-built".into(),
        style: None,
        seed: None,
        arrays: 2,
        rows: 128,
        columns: 64,
        floor_vdd_rel: 0.75,
    };
    let cells = (0..200u32)
        .map(|i| cell(i % 2, i / 2, (i * 7) % 64, 0.9, FailureKind::Flips, 0.5))
        .collect();
    let p = FaultProfile::new(meta, cells).unwrap();
    let codes: Vec<u8> = (0..1500u32).map(|i| (i * 31) as u8).collect();
    let seq_store = ActivationFaults::build(&hw, 0.8, Some(&p), 0.01, 2).unwrap();
    let seq: Vec<Vec<u8>> = (0..64u64)
        .map(|i| read(&seq_store, (i % 3) as usize, i, &codes))
        .collect();
    let par_store = ActivationFaults::build(&hw, 0.8, Some(&p), 0.01, 2).unwrap();
    let par: Vec<Vec<u8>> = (0..64u64)
        .into_par_iter()
        .map(|i| read(&par_store, (i % 3) as usize, i, &codes))
        .collect();
    assert_eq!(seq, par);
    assert_eq!(seq_store.counts(), par_store.counts());
    assert!(seq_store.counts().bits_flipped > 0);
}

#[test]
fn profile_file_of_the_right_geometry_is_used_as_is() {
    let dir = std::env::temp_dir().join(format!("accelsim-actprof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.sramprof");
    tiny_profile().save(&path).unwrap();
    let mut hw = tiny_hw(&[Rail::WeightSram, Rail::ActivationSram]);
    hw.activation_sram.fault_profile = Some(path.to_string_lossy().into_owned());
    let p = activation_profile(&hw, None).unwrap();
    assert_eq!(p, tiny_profile());
    let store = ActivationFaults::build(&hw, 0.8, Some(&p), 0.0, 0).unwrap();
    assert_eq!(
        read(&store, 0, 0, &[0x00, 0xFF, 0x12, 0x34]),
        [0x08, 0xDF, 0x92, 0x34]
    );
    // Below the profile's floor: a one-line error naming the profile, never a panic.
    let e = ActivationFaults::build(&hw, 0.7, Some(&p), 0.0, 0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tiny.sramprof") && e.contains("0.75") && !e.contains('\n'),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The hand-built network of the logits tests: input `[4, 1, 1]` with given activation parameters (scale 1/16,
/// uint8), a 1x1 convolution 4 → 2 whose stored codes and range fix the weight step at exactly 1/64, then
/// flatten; output parameters scale 1/32, zero point 128 (uint8).
fn hand_model(dir: &std::path::Path) -> crate::model::Model {
    use crate::model::Model;
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let manifest = r#"format = "accelsim-model"
version = 1
name = "hand"
weights = "hand.safetensors"
[input]
shape = [4, 1, 1]
[quantization]
bits = 8
granularity = "layer"
symmetric = true
signed = true
rounding = true
[[layers]]
name = "conv"
type = "conv2d"
in_channels = 4
out_channels = 2
kernel = [1, 1]
weight = "conv.weight"
[[layers]]
name = "flatten"
type = "flatten"
[[activation_quant]]
value = "input"
scale = 0.0625
zero_point = 0
signed = false
[[activation_quant]]
value = "conv"
scale = 0.03125
zero_point = 128
signed = false
"#;
    // Weights [[1, 1, 0, 0], [0, 0, 0.5, 1]] = codes [[64, 64, 0, 0], [0, 0, 32, 64]] at step 1/64
    // (range ±127/64).
    let codes: [i8; 8] = [64, 64, 0, 0, 0, 0, 32, 64];
    let w: Vec<u8> = codes
        .iter()
        .flat_map(|&c| (c as f32 / 64.0).to_le_bytes())
        .collect();
    let c: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
    let r: Vec<u8> = [-127.0f32 / 64.0, 127.0 / 64.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let views = vec![
        (
            "conv.weight",
            TensorView::new(Dtype::F32, vec![2, 4, 1, 1], &w).unwrap(),
        ),
        (
            "conv.weight:codes",
            TensorView::new(Dtype::I8, vec![2, 4, 1, 1], &c).unwrap(),
        ),
        (
            "conv.weight:range",
            TensorView::new(Dtype::F32, vec![1, 2], &r).unwrap(),
        ),
    ];
    std::fs::write(
        dir.join("hand.safetensors"),
        safetensors::serialize(views, &None).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("hand.toml"), manifest).unwrap();
    Model::load(dir.join("hand.toml")).unwrap()
}

/// The hand-built network ([`hand_model`]) through the hand-built fault map, logits computed by hand.
#[test]
fn hand_computed_logits_through_faulty_activation_buffers() {
    use crate::engine::act_store::Reliable;
    use crate::engine::int8::{Int8Network, Int8Options};
    let d = tempfile::tempdir().unwrap();
    let model = hand_model(d.path());
    // x = [0, 2, 1, 0.25] → input codes [0, 32, 16, 4].
    let x = ndarray::Array4::from_shape_vec((1, 4, 1, 1), vec![0.0f32, 2.0, 1.0, 0.25]).unwrap();
    let net = Int8Network::build(&model, x.view(), Int8Options::default()).unwrap();
    // Clean: acc = [32·64, 16·32 + 4·64] = [2048, 768]; y = acc·(1/16)(1/64) = [2, 0.75];
    // codes round(y·32) + 128 = [192, 152]; logits (q − 128)/32 = [2, 0.75].
    let clean = net.forward(x.view(), &Reliable, 0).unwrap();
    assert_eq!(clean.as_slice().unwrap(), &[2.0, 0.75]);
    // At 0.8 V the map's layer-0 cells turn the codes into [0|8, 32&!32, 16^128, 4] = [8, 0, 144, 4]:
    // acc = [8·64, 144·32 + 4·64] = [512, 4864]; y = [0.5, 4.75]; codes [144, 280 → saturated 255];
    // logits [0.5, 127/32].
    let hw = tiny_hw(&[Rail::WeightSram, Rail::ActivationSram]);
    let store = ActivationFaults::build(&hw, 0.8, Some(&tiny_profile()), 0.0, 7).unwrap();
    let faulty = net.forward(x.view(), &store, 0).unwrap();
    assert_eq!(faulty.as_slice().unwrap(), &[0.5, 127.0 / 32.0]);
    assert_eq!(store.counts().bits_flipped, 3);
}

/// Pseudo-random fold sums in ±2^27 (so fault-free sums of up to 8 folds never saturate).
fn fold_sums(outputs: usize, folds: usize, seed: u64) -> Vec<Vec<i32>> {
    let mut s = seed | 1;
    (0..outputs)
        .map(|_| {
            (0..folds)
                .map(|_| {
                    s = splitmix64(s);
                    ((s >> 36) as i32) - (1 << 27)
                })
                .collect()
        })
        .collect()
}

/// Partial sums through the store equal the definition built on the code path: after every fold but the last,
/// all sums written as little-endian int32 bytes (sum `e` at bytes `4e..4e+3`) into buffer `(L+1) mod 2` and
/// read back with `read_back` (persistent cells only, so both see the same failures), across 3 tiles.
#[test]
fn partial_sums_read_back_as_little_endian_words_through_the_code_mapping() {
    let hw = tiny_hw(&[Rail::WeightSram, Rail::ActivationSram]);
    for layer in [1usize, 2] {
        let (outputs, folds) = (700usize, 4usize); // 2800 bytes: 3 tiles of a 1024-byte buffer
        let parts = fold_sums(outputs, folds, layer as u64);
        let store = ActivationFaults::build(&hw, 0.8, Some(&tiny_profile()), 0.03, 5).unwrap();
        let oracle = ActivationFaults::build(&hw, 0.8, Some(&tiny_profile()), 0.03, 5).unwrap();
        assert_eq!(store.psum_rows(), Some(16));
        // The definition.
        let mut words = vec![0i32; outputs];
        let mut saturated = 0u64;
        for f in 0..folds {
            for (w, p) in words.iter_mut().zip(&parts) {
                let wide = *w as i64 + p[f] as i64;
                *w = wide.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
                saturated += (*w as i64 != wide) as u64;
            }
            if f + 1 < folds {
                let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                let map = StoredMap {
                    layer: layer + 1,
                    shape: [bytes.len(), 1, 1],
                    image: 3,
                };
                oracle.read_back(&map, &mut bytes);
                for (w, b) in words.iter_mut().zip(bytes.chunks_exact(4)) {
                    *w = i32::from_le_bytes(b.try_into().unwrap());
                }
            }
        }
        // The store.
        let mut asked = Vec::new();
        let mut corr = PsumCorrections::default();
        let map = StoredPsums {
            layer,
            outputs,
            folds,
            image: 3,
        };
        store.corrupt_psums(
            &map,
            &mut |e, p: &mut [i32]| {
                asked.push(e);
                p.copy_from_slice(&parts[e]);
            },
            &mut corr,
        );
        let mut changed = 0;
        for e in 0..outputs {
            let clean: i64 = parts[e].iter().map(|&v| v as i64).sum();
            let want = words[e] as i64 - clean;
            let got = corr.deltas.iter().find(|d| d.0 == e).map_or(0, |d| d.1);
            assert_eq!(got, want, "layer {layer} output {e}");
            changed += (want != 0) as usize;
        }
        assert!(changed > 100, "only {changed} sums changed");
        assert_eq!(corr.saturated, saturated);
        // Only outputs with a faulty cell are computed, each once.
        assert!(asked.windows(2).all(|w| w[0] < w[1]));
        assert!(asked.len() < outputs);
        let c = store.counts();
        assert_eq!(c.bits_read, outputs as u64 * 32 * (folds as u64 - 1));
        assert_eq!(c.bits_flipped, oracle.counts().bits_flipped);
    }
}

/// The hand-built network of [`hand_computed_logits_through_faulty_activation_buffers`] on a 2-row array: its
/// depth 4 runs in 2 row folds, so the partial sums after the first fold sit in B1 (the buffer of the step's
/// output), where two cells fail.
#[test]
fn hand_computed_logits_through_faulty_partial_sums() {
    let d = tempfile::tempdir().unwrap();
    let model = hand_model(d.path());
    let x = ndarray::Array4::from_shape_vec((1, 4, 1, 1), vec![0.0f32, 2.0, 1.0, 0.25]).unwrap();
    let net = crate::engine::int8::Int8Network::build(
        &model,
        x.view(),
        crate::engine::int8::Int8Options::default(),
    )
    .unwrap();
    let meta = ProfileMeta {
        name: "psum".into(),
        source: "hand-built".into(),
        style: None,
        seed: None,
        arrays: 2,
        rows: 128,
        columns: 64,
        floor_vdd_rel: 0.75,
    };
    let profile = FaultProfile::new(
        meta,
        vec![
            // B1 slot 1 bit 0 flips: bit 8 of partial sum 0 (bytes 0..3). B1 slot 5 bit 1 reads 1: bit 9 of
            // partial sum 1 (bytes 4..7).
            cell(1, 0, 8, 0.9, FailureKind::Flips, 1.0),
            cell(1, 0, 41, 0.9, FailureKind::ReadsOne, 1.0),
        ],
    )
    .unwrap();
    let mut hw = tiny_hw(&[Rail::WeightSram, Rail::ActivationSram]);
    hw.systolic.rows = 2;
    let store = ActivationFaults::build(&hw, 0.8, Some(&profile), 0.0, 7).unwrap();
    // Input codes [0, 32, 16, 4], weight codes [[64, 64, 0, 0], [0, 0, 32, 64]]; fold 0 = depths 0..1,
    // fold 1 = depths 2..3. Output 0: P_0 = 32·64 = 2048 (bit 8 is 0) reads back 2048 + 256 = 2304, plus fold 1's
    // 0: acc 2304. Output 1: P_0 = 0 reads back 512 (bit 9 forced), plus fold 1's 16·32 + 4·64 = 768: acc 1280.
    // y = acc/(16·64) = [2.25, 1.25]; codes round(y·32) + 128 = [200, 168]; logits [2.25, 1.25]
    // (fault-free [2, 0.75]).
    let faulty = net.forward(x.view(), &store, 0).unwrap();
    assert_eq!(faulty.as_slice().unwrap(), &[2.25, 1.25]);
    let c = store.counts();
    assert_eq!((c.bits_read, c.bits_flipped), (4 * 8 + 2 * 32, 2));
    // Output-stationary: partial sums stay in the PEs, nothing fails.
    hw.systolic.dataflow = crate::systolic::Dataflow::Os;
    let os = ActivationFaults::build(&hw, 0.8, Some(&profile), 0.0, 7).unwrap();
    assert_eq!(os.psum_rows(), None);
    let clean = net.forward(x.view(), &os, 0).unwrap();
    assert_eq!(clean.as_slice().unwrap(), &[2.0, 0.75]);
    // Weight-stationary with the partial sums in accumulators: the same cells lie under no stored partial sum,
    // so the logits are the fault-free ones and only the 4 input codes are read through the buffer.
    hw.systolic.dataflow = crate::systolic::Dataflow::Ws;
    hw.activation_sram.partial_sums = crate::config::PartialSumStore::Accumulators;
    let acc = ActivationFaults::build(&hw, 0.8, Some(&profile), 0.0, 7).unwrap();
    assert_eq!(acc.psum_rows(), None);
    let clean = net.forward(x.view(), &acc, 0).unwrap();
    assert_eq!(clean.as_slice().unwrap(), &[2.0, 0.75]);
    let c = acc.counts();
    assert_eq!((c.bits_read, c.bits_flipped), (4 * 8, 0));
}

/// A transient cell under a partial sum fails on each access independently with its probability (a biased or
/// repeated draw per fold would fail this), and the same image gives the same draws.
#[test]
fn transient_partial_sum_cells_fail_per_access_with_their_probability() {
    let meta = ProfileMeta {
        name: "transient".into(),
        source: "hand-built".into(),
        style: None,
        seed: None,
        arrays: 2,
        rows: 128,
        columns: 64,
        floor_vdd_rel: 0.75,
    };
    let profile =
        FaultProfile::new(meta, vec![cell(1, 0, 2, 0.9, FailureKind::Flips, 0.25)]).unwrap();
    let hw = tiny_hw(&[Rail::WeightSram, Rail::ActivationSram]);
    let run = |image: u64| {
        let store = ActivationFaults::build(&hw, 0.8, Some(&profile), 0.0, 1).unwrap();
        let map = StoredPsums {
            layer: 0,
            outputs: 1,
            folds: 4001,
            image,
        };
        let mut corr = PsumCorrections::default();
        store.corrupt_psums(&map, &mut |_, p: &mut [i32]| p.fill(0), &mut corr);
        (store.counts().bits_flipped, corr.deltas)
    };
    // 4000 reads at p = 0.25: mean 1000, standard deviation 27.4.
    let (flips, deltas) = run(0);
    assert!(
        (890..=1110).contains(&flips),
        "{flips} failing reads of 4000"
    );
    assert_eq!(run(0), (flips, deltas));
    assert_ne!(run(1).0, flips);
}

/// Corrections with their deltas in output order (the forms replay in different orders).
fn sorted(mut c: PsumCorrections) -> PsumCorrections {
    c.deltas.sort_unstable();
    c
}

/// The table forms of the partial-sum replay (strided table, unit-stride table with its dense blocks, several
/// examples side by side) give the callback form's corrections and counts (persistent and transient profile
/// cells plus random flips, 3 tiles, partial last blocks, 2 to 17 folds), and the callback form asks once per
/// hit output in increasing order.
#[test]
fn partial_sum_table_equals_the_callback_form() {
    let hw = tiny_hw(&[Rail::WeightSram, Rail::ActivationSram]);
    let meta = ProfileMeta {
        name: "mixed".into(),
        source: "hand-built".into(),
        style: None,
        seed: None,
        arrays: 2,
        rows: 128,
        columns: 64,
        floor_vdd_rel: 0.75,
    };
    let profile = FaultProfile::new(
        meta,
        vec![
            cell(0, 0, 3, 0.9, FailureKind::ReadsOne, 1.0),
            cell(0, 2, 23, 0.9, FailureKind::Flips, 1.0),
            cell(0, 9, 30, 0.9, FailureKind::Flips, 0.4),
            cell(1, 0, 8, 0.9, FailureKind::Flips, 1.0),
            cell(1, 3, 17, 0.9, FailureKind::Flips, 0.3),
            cell(1, 5, 40, 0.9, FailureKind::ReadsZero, 1.0),
        ],
    )
    .unwrap();
    for (layer, folds, outputs) in [
        (0usize, 2usize, 700usize),
        (1, 3, 301),
        (2, 17, 700),
        (1, 5, 9),
    ] {
        let parts = fold_sums(outputs, folds, 17 + layer as u64);
        let build = || ActivationFaults::build(&hw, 0.8, Some(&profile), 0.02, 9).unwrap();
        let (a, b, c, d) = (build(), build(), build(), build());
        let images = [0u64, 5, 6];
        // `[fold][output][example]` for the 3 images (example `i` at offset `i`, output stride 3), the same fold
        // sums for each; and `[fold][output]` with unit output stride at offset 2.
        let n = images.len();
        let mut strided = vec![i32::MIN; folds * outputs * n];
        let mut dense = vec![i32::MIN; 2 + folds * outputs];
        for (e, p) in parts.iter().enumerate() {
            for (f, &v) in p.iter().enumerate() {
                for i in 0..n {
                    strided[f * outputs * n + e * n + i] = v;
                }
                dense[2 + f * outputs + e] = v;
            }
        }
        let maps: Vec<StoredPsums> = images
            .iter()
            .map(|&image| StoredPsums {
                layer,
                outputs,
                folds,
                image,
            })
            .collect();
        let mut together = vec![PsumCorrections::default(); n];
        let table = FoldTable {
            data: &strided,
            offset: 0,
            fold_stride: outputs * n,
            output_stride: n,
        };
        d.corrupt_psums_examples(&maps, &table, 1, &mut together);
        for (i, map) in maps.iter().enumerate() {
            let mut asked = Vec::new();
            let mut via_callback = PsumCorrections::default();
            a.corrupt_psums(
                map,
                &mut |e, p: &mut [i32]| {
                    asked.push(e);
                    p.copy_from_slice(&parts[e]);
                },
                &mut via_callback,
            );
            assert!(asked.windows(2).all(|w| w[0] < w[1]));
            let mut via_strided = PsumCorrections::default();
            let t = FoldTable { offset: i, ..table };
            b.corrupt_psums_table(map, &t, &mut via_strided);
            assert_eq!(via_strided, via_callback, "layer {layer} image {i}");
            let mut via_dense = PsumCorrections::default();
            let t = FoldTable {
                data: &dense,
                offset: 2,
                fold_stride: outputs,
                output_stride: 1,
            };
            c.corrupt_psums_table(map, &t, &mut via_dense);
            let want = sorted(via_callback);
            assert_eq!(sorted(via_dense), want, "layer {layer} image {i}");
            assert_eq!(sorted(together[i].clone()), want, "layer {layer} image {i}");
            assert_eq!(a.psum_cells(map), b.psum_cells(map));
        }
        assert_eq!(a.counts(), b.counts());
        assert_eq!(a.counts(), c.counts());
        assert_eq!(a.counts(), d.counts());
        assert!(a.counts().bits_flipped > 0);
    }
}
