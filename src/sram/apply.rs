//! Applying a fault map to a model's mapped codes (docs/sram-profiles.md, "Applying a profile").
//!
//! Physical array `a` of the weight SRAM uses array `a mod P` of a profile with `P` arrays (a small profile
//! tiles a large memory). At `vdd_rel`, each failing profile cell is visited once per physical array that uses
//! it and once per tile of weights stored there (see [`WeightMapping::bits_at`]): work is proportional to the
//! faulty cells, not to the memory. Reads-as-1 → `set1`, reads-as-0 → `set0`, flips → `flip`. A transient cell
//! fires on an access iff `hash(seed, physical cell, element) < p_access`: deterministic for a seed, independent
//! per tile, and nested across voltage (the same draw decides at every voltage).
use super::mapping::WeightMapping;
use super::profile::{FailingCell, FailureKind, FaultProfile};
use super::SramError;
use crate::faults::{FaultEntry, FaultPattern};
use rayon::slice::ParallelSliceMut;

pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Uniform draw in [0, 1) for one (seed, physical cell, element) access.
pub(crate) fn access_draw(seed: u64, phys_cell: u64, element: u64) -> f64 {
    let h = splitmix64(splitmix64(splitmix64(seed) ^ phys_cell) ^ element);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn check_geometry(profile: &FaultProfile, mapping: &WeightMapping) -> Result<(), SramError> {
    let m = &profile.meta;
    if m.rows != mapping.rows() || m.columns != mapping.columns() {
        return Err(SramError::Invalid(format!(
            "profile {} has arrays of {}x{} cells but the weight SRAM has {}x{} (weight_sram.rows x columns)",
            profile.origin(),
            m.rows,
            m.columns,
            mapping.rows(),
            mapping.columns()
        )));
    }
    Ok(())
}

/// Checks that `profile`'s arrays have the geometry of the weight SRAM in `cfg` (read from hardware config
/// `hw_origin`), naming both files when they differ. Run before mapping so the user learns which two files
/// disagree.
pub fn check_profile_fits(
    profile: &FaultProfile,
    cfg: &crate::config::WeightSramConfig,
    hw_origin: &str,
) -> Result<(), SramError> {
    let m = &profile.meta;
    // With ECC the arrays are wider (check-bit columns) and the ECC layout checks the columns itself, naming
    // the code (a profile of the physical width, or of the data width whose check-bit columns it generates,
    // docs/ecc.md); here only the rows are compared then.
    let ecc_checks_columns = cfg.physical_columns() != cfg.columns;
    if m.rows != cfg.rows || (!ecc_checks_columns && m.columns != cfg.columns) {
        return Err(SramError::Invalid(format!(
            "profile {} has arrays of {}x{} cells but hardware config {hw_origin} has weight_sram.rows x columns \
             = {}x{}; generate a profile with --rows {} --columns {} or use a config with that geometry",
            profile.origin(),
            m.rows,
            m.columns,
            cfg.rows,
            cfg.columns,
            cfg.rows,
            cfg.physical_columns()
        )));
    }
    Ok(())
}

/// Fault entries caused by `cells` (a slice of `profile.cells()`, e.g. from `failing_at` or `newly_failing`).
/// With `image` (the stored codes, one per element), bits whose stuck-at value equals the stored bit are
/// dropped, so every remaining bit is a real error on that image. Entries are sorted by element and merged.
pub fn fault_entries(
    profile: &FaultProfile,
    mapping: &WeightMapping,
    cells: &[FailingCell],
    image: Option<&[u8]>,
    transient_seed: u64,
) -> Result<Vec<FaultEntry>, SramError> {
    check_geometry(profile, mapping)?;
    if let Some(img) = image {
        if img.len() as u64 != mapping.n_elements() {
            return Err(SramError::Invalid(format!(
                "memory image has {} codes but the mapping holds {} elements",
                img.len(),
                mapping.n_elements()
            )));
        }
        if mapping.bits() > 8 {
            return Err(SramError::Invalid(format!(
                "a u8 memory image cannot hold {}-bit codes",
                mapping.bits()
            )));
        }
    }
    let cells_per_array = profile.meta.rows as u64 * profile.meta.columns as u64;
    let profile_arrays = profile.meta.arrays as u64;
    let phys_arrays = mapping.arrays();
    let mut out: Vec<FaultEntry> = Vec::new();
    for fc in cells {
        let pa = fc.cell as u64 / cells_per_array;
        let within = fc.cell as u64 % cells_per_array;
        let mut a = pa;
        while a < phys_arrays {
            let phys = a * cells_per_array + within;
            if let Some(addr) = mapping.addr_of_index(phys) {
                for (e, bit) in mapping.bits_at(addr) {
                    if !fc.is_persistent() && access_draw(transient_seed, phys, e) >= fc.p_access {
                        continue;
                    }
                    let mask = 1u32 << bit;
                    let stored_one = image.map(|img| (img[e as usize] >> bit) & 1 == 1);
                    let mut entry = FaultEntry {
                        index: e,
                        ..Default::default()
                    };
                    match (fc.kind, stored_one) {
                        (FailureKind::ReadsOne, Some(true))
                        | (FailureKind::ReadsZero, Some(false)) => continue,
                        (FailureKind::ReadsOne, _) => entry.set1 = mask,
                        (FailureKind::ReadsZero, _) => entry.set0 = mask,
                        (FailureKind::Flips, _) => entry.flip = mask,
                    }
                    out.push(entry);
                }
            }
            a += profile_arrays;
        }
    }
    // Entries of one element come from different bits, so merging them with OR is order-independent: the
    // (parallel, unstable) sort keeps the result deterministic.
    out.par_sort_unstable_by_key(|e| e.index);
    let mut merged: Vec<FaultEntry> = Vec::with_capacity(out.len());
    for e in out {
        match merged.last_mut() {
            Some(last) if last.index == e.index => {
                last.flip |= e.flip;
                last.set0 |= e.set0;
                last.set1 |= e.set1;
            }
            _ => merged.push(e),
        }
    }
    Ok(merged)
}

/// The bit errors a profile causes at `vdd_rel` on `memory_image` (the stored codes in memory order) under
/// `mapping`: only bits that change the stored value are kept, so `fault_count()` is the number of wrong bits.
/// Work is proportional to the failing cells. Errors below the profile's floor or on a geometry mismatch.
pub fn fault_pattern_at(
    profile: &FaultProfile,
    mapping: &WeightMapping,
    memory_image: &[u8],
    vdd_rel: f64,
    transient_seed: u64,
) -> Result<FaultPattern, SramError> {
    let cells = profile.failing_at(vdd_rel)?;
    Ok(FaultPattern {
        bits: mapping.bits(),
        entries: fault_entries(profile, mapping, cells, Some(memory_image), transient_seed)?,
    })
}

/// The chip's active faults at `vdd_rel` under `mapping`, independent of the stored values (stuck-at bits are
/// kept even where they agree with the data): replayable on any model with the same mapping.
pub fn chip_fault_pattern_at(
    profile: &FaultProfile,
    mapping: &WeightMapping,
    vdd_rel: f64,
    transient_seed: u64,
) -> Result<FaultPattern, SramError> {
    let cells = profile.failing_at(vdd_rel)?;
    Ok(FaultPattern {
        bits: mapping.bits(),
        entries: fault_entries(profile, mapping, cells, None, transient_seed)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Mapping, Packing, WeightSramConfig};
    use crate::sram::profile::ProfileMeta;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn sram(banks: u32, apb: u32, mapping: Mapping) -> WeightSramConfig {
        WeightSramConfig {
            banks,
            arrays_per_bank: apb,
            rows: 4,
            columns: 16,
            word_bits: 16,
            mapping,
            packing: Packing::Dense,
            offset_bits: 0,
            ecc: Default::default(),
            ecc_data_bits: 64,
            interleave: 1,
            due: Default::default(),
            ecc_decoder_latency_cycles: 1,
        }
    }

    /// Obviously-right reference: walk every element bit, find its physical cell, look the profile cell up.
    fn reference(
        p: &FaultProfile,
        m: &WeightMapping,
        image: &[u8],
        vdd_rel: f64,
        seed: u64,
    ) -> Vec<u8> {
        let by_cell: HashMap<u32, FailingCell> = p.cells().iter().map(|c| (c.cell, *c)).collect();
        let cpa = (p.meta.rows * p.meta.columns) as u64;
        let mut out = image.to_vec();
        for (e, v) in out.iter_mut().enumerate() {
            for bit in 0..m.bits() {
                let addr = m.cell_of(e as u64, bit).unwrap();
                let phys = m.cell_index(addr);
                let prof_cell =
                    ((addr.array as u64 % p.meta.arrays as u64) * cpa + phys % cpa) as u32;
                let Some(c) = by_cell.get(&prof_cell) else {
                    continue;
                };
                if vdd_rel >= c.fail_vdd_rel {
                    continue;
                }
                if c.p_access < 1.0 && access_draw(seed, phys, e as u64) >= c.p_access {
                    continue;
                }
                match c.kind {
                    FailureKind::ReadsOne => *v |= 1 << bit,
                    FailureKind::ReadsZero => *v &= !(1 << bit),
                    FailureKind::Flips => *v ^= 1 << bit,
                }
            }
        }
        out
    }

    fn arb_profile(arrays: u32) -> impl Strategy<Value = FaultProfile> {
        let cells = arrays as usize * 64;
        proptest::collection::btree_map(
            0..cells as u32,
            (0.76f64..1.0, 0u8..3, prop_oneof![Just(1.0), Just(0.5)]),
            0..40,
        )
        .prop_map(move |m| {
            let cells = m
                .into_iter()
                .map(|(cell, (v, k, p))| FailingCell {
                    cell,
                    fail_vdd_rel: v,
                    kind: [
                        FailureKind::ReadsOne,
                        FailureKind::ReadsZero,
                        FailureKind::Flips,
                    ][k as usize],
                    p_access: p,
                })
                .collect();
            let meta = ProfileMeta {
                name: "prop".into(),
                source: String::new(),
                style: None,
                seed: None,
                arrays,
                rows: 4,
                columns: 16,
                floor_vdd_rel: 0.75,
            };
            FaultProfile::new(meta, cells).unwrap()
        })
    }

    proptest! {
        #[test]
        fn matches_dense_reference(
            profile in arb_profile(3),
            banks in 1u32..3,
            apb in 1u32..4,
            il in any::<bool>(),
            byte in any::<bool>(),
            bits in 1u8..=8,
            n in 1u64..200,
            off in 0u64..40,
            vdd in 0.75f64..1.0,
            seed in any::<u64>(),
            image_seed in any::<u64>(),
        ) {
            let cfg = WeightSramConfig {
                packing: if byte { Packing::Byte } else { Packing::Dense },
                ..sram(banks, apb, if il { Mapping::BankInterleaved } else { Mapping::Linear })
            };
            let t = cfg.packing.slot_bits(bits as u32) as u64;
            let off_bits = (off % (cfg.total_bits() / t)) * t;
            let m = WeightMapping::new(&cfg, bits, n, off_bits).unwrap();
            let mask = ((1u16 << bits) - 1) as u8;
            let image: Vec<u8> = (0..n).map(|i| (splitmix64(image_seed ^ i) as u8) & mask).collect();
            let want = reference(&profile, &m, &image, vdd, seed);

            let pat = fault_pattern_at(&profile, &m, &image, vdd, seed).unwrap();
            let mut got = image.clone();
            pat.apply_u8(&mut got).unwrap();
            prop_assert_eq!(&got, &want);
            // Only real errors are kept: the fault count equals the differing bits.
            let diff: u32 = image.iter().zip(&want).map(|(a, b)| (a ^ b).count_ones()).sum();
            prop_assert_eq!(pat.fault_count(), diff as u64);

            let chip = chip_fault_pattern_at(&profile, &m, vdd, seed).unwrap();
            let mut got2 = image.clone();
            chip.apply_u8(&mut got2).unwrap();
            prop_assert_eq!(&got2, &want);

            // Incremental: faults at a higher voltage plus the newly failing cells give the same result.
            let hi = (vdd + 0.1).min(1.0);
            let mut inc = fault_entries(&profile, &m, profile.failing_at(hi).unwrap(), None, seed).unwrap();
            inc.extend(fault_entries(&profile, &m, profile.newly_failing(hi, vdd).unwrap(), None, seed).unwrap());
            let mut got3 = image.clone();
            for e in inc {
                let v = &mut got3[e.index as usize];
                *v = ((*v ^ e.flip as u8) & !(e.set0 as u8)) | e.set1 as u8;
            }
            prop_assert_eq!(&got3, &want);
        }
    }

    #[test]
    fn faults_hit_exactly_the_stored_bits_under_both_packings() {
        // Every cell of the memory flips: each 3-bit code gets exactly its 3 stored bits flipped, whatever the
        // packing; the unused cells (upper 5 bits of each byte, the last bit of a dense word) change nothing.
        let meta = ProfileMeta {
            name: "all".into(),
            source: String::new(),
            style: None,
            seed: None,
            arrays: 1,
            rows: 4,
            columns: 16,
            floor_vdd_rel: 0.75,
        };
        let cells = (0..64)
            .map(|cell| FailingCell {
                cell,
                fail_vdd_rel: 0.9,
                kind: FailureKind::Flips,
                p_access: 1.0,
            })
            .collect();
        let p = FaultProfile::new(meta, cells).unwrap();
        for (packing, capacity) in [(Packing::Dense, 4 * 5), (Packing::Byte, 4 * 2)] {
            let cfg = WeightSramConfig {
                packing,
                ..sram(1, 1, Mapping::Linear)
            };
            let image: Vec<u8> = (0..capacity as u8).map(|i| i % 8).collect();
            let m = WeightMapping::new(&cfg, 3, image.len() as u64, 0).unwrap();
            assert_eq!(m.capacity_elements(), capacity);
            let pat = fault_pattern_at(&p, &m, &image, 0.8, 0).unwrap();
            assert_eq!(pat.fault_count(), 3 * capacity, "{packing:?}");
            let mut got = image.clone();
            pat.apply_u8(&mut got).unwrap();
            for (a, b) in image.iter().zip(&got) {
                assert_eq!(a ^ b, 0b111, "{packing:?}");
            }
        }
    }

    #[test]
    fn transient_faults_follow_their_probability_and_seed() {
        // One transient cell (p_access = 0.5) in a 1-array profile tiled under a long model: each tile is an
        // independent access, so about half of the tiles see the fault.
        let meta = ProfileMeta {
            name: "t".into(),
            source: String::new(),
            style: None,
            seed: None,
            arrays: 1,
            rows: 4,
            columns: 16,
            floor_vdd_rel: 0.75,
        };
        let cell = FailingCell {
            cell: 0,
            fail_vdd_rel: 0.9,
            kind: FailureKind::Flips,
            p_access: 0.5,
        };
        let p = FaultProfile::new(meta, vec![cell]).unwrap();
        let cfg = sram(1, 1, Mapping::Linear);
        let m = WeightMapping::new(&cfg, 8, 8 * 20_000, 0).unwrap();
        let a = chip_fault_pattern_at(&p, &m, 0.8, 1).unwrap();
        let b = chip_fault_pattern_at(&p, &m, 0.8, 1).unwrap();
        let c = chip_fault_pattern_at(&p, &m, 0.8, 2).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let k = a.entries.len() as f64;
        assert!((k - 10_000.0).abs() < 5.0 * 50.0, "{k} of 20000 tiles");
        assert!(chip_fault_pattern_at(&p, &m, 0.95, 1)
            .unwrap()
            .entries
            .is_empty());
    }

    #[test]
    fn geometry_and_image_checked() {
        let meta = ProfileMeta {
            name: "t".into(),
            source: String::new(),
            style: None,
            seed: None,
            arrays: 1,
            rows: 8,
            columns: 16,
            floor_vdd_rel: 0.75,
        };
        let p = FaultProfile::new(meta, vec![]).unwrap();
        let m = WeightMapping::new(&sram(1, 1, Mapping::Linear), 8, 4, 0).unwrap();
        assert!(fault_pattern_at(&p, &m, &[0; 4], 0.8, 0)
            .unwrap_err()
            .to_string()
            .contains("4x16"));
        let m2 = WeightMapping::new(
            &WeightSramConfig {
                rows: 8,
                ..sram(1, 1, Mapping::Linear)
            },
            8,
            4,
            0,
        )
        .unwrap();
        assert!(fault_pattern_at(&p, &m2, &[0; 3], 0.8, 0).is_err());
        assert!(fault_pattern_at(&p, &m2, &[0; 4], 0.5, 0).is_err());
        assert!(fault_pattern_at(&p, &m2, &[0; 4], 0.8, 0)
            .unwrap()
            .entries
            .is_empty());
    }
}
