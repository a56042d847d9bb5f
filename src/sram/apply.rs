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

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Uniform draw in [0, 1) for one (seed, physical cell, element) access.
fn access_draw(seed: u64, phys_cell: u64, element: u64) -> f64 {
    let h = splitmix64(splitmix64(splitmix64(seed) ^ phys_cell) ^ element);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn check_geometry(profile: &FaultProfile, mapping: &WeightMapping) -> Result<(), SramError> {
    let m = &profile.meta;
    if m.rows != mapping.rows() || m.columns != mapping.columns() {
        return Err(SramError::Invalid(format!(
            "profile `{}` has arrays of {}x{} cells but the weight SRAM has {}x{} (weight_sram.rows x columns)",
            m.name,
            m.rows,
            m.columns,
            mapping.rows(),
            mapping.columns()
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
    out.sort_unstable_by_key(|e| e.index);
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
