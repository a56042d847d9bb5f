//! Reading ECC-protected weights from a faulty SRAM (docs/ecc.md, "Simulation").
//!
//! The weights sit in the data bits of codewords exactly as without ECC ([`WeightMapping`]: word `w`, bit `b`);
//! word bits `q·k .. q·k + k` form codeword `q` of the word, stored with `r` check bits in the wider physical row
//! of [`EccLayout`]. A codeword is named by its **unwrapped word** `(element + offset_slots) div slots_per_word`
//! (so the successive tiles of a model larger than the memory are different codewords in the same cells) and `q`.
//! Data bits that hold no weight (the `word_bits − slots·t` top bits of a word, the `t − m` upper bits of a
//! byte-packed slot, slots past the model; `t` the slot width of docs/hw-config.md#packing) store 0; the
//! check bits store the encoder's output on the clean data. All of them sit in cells that fail like any other.
//!
//! Work is sparse: only codewords with at least one bit that reads wrong are built ([`codeword_errors`] visits
//! the failing cells, [`decode_into`] decodes those codewords); every other codeword reads back its clean data.
use std::sync::Arc;

use rayon::slice::ParallelSliceMut;

use super::apply::{access_draw, splitmix64};
use super::generate::{generate, GenerateSpec, Style};
use super::mapping::{CellAddr, WeightMapping};
use super::profile::{FailingCell, FailureKind, FaultProfile};
use super::SramError;
use crate::config::DuePolicy;
use crate::ecc::{Code, EccCounts, EccLayout, Outcome};

/// Seed tag of the transient draws of check bits and weightless data bits (weight bits use the draw of the
/// unprotected memory, so their faults are the same with and without ECC).
const EXTRA_DRAW_TAG: u64 = 0xECC0_5EED_0000_0001;
/// Seed tag of the generated check-bit columns of a profile (see [`extension_profile`]).
const EXTENSION_SEED_TAG: u64 = 0xECC0_C01D_0000_0000;

/// One codeword of the stored model: its unwrapped word and its index `q` inside the word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CodewordId {
    pub word: u64,
    pub q: u32,
}

/// The bits of one codeword that read wrong: `data` over the k data bits, `check` over the r check bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodewordError {
    pub id: CodewordId,
    pub data: u64,
    pub check: u16,
}

/// What one read of the protected weights delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EccReadout {
    /// Weight bits that read wrong before decoding (the raw bit errors of the stored weights, as without ECC).
    pub flipped_bits: u64,
    pub counts: EccCounts,
}

/// Which weight bits share each codeword, for one weight mapping and codeword layout.
#[derive(Debug, Clone)]
pub struct CodewordMap {
    mapping: WeightMapping,
    layout: EccLayout,
    m: u64,
    /// Slot width (`m` dense, `8·ceil(m/8)` byte packing).
    t: u64,
    spw: u64,
    k: u64,
    cpw: u64,
    off: u64,
    n: u64,
    first_word: u64,
    last_word: u64,
}

impl CodewordMap {
    /// The codewords of `mapping`'s weights under `layout` (same word width and data columns).
    pub fn new(mapping: &WeightMapping, layout: &EccLayout) -> Result<CodewordMap, SramError> {
        let k = layout.code().k() as u64;
        if mapping.columns() != layout.data_columns()
            || mapping.word_bits() != k * layout.codewords_per_word() as u64
        {
            return Err(SramError::Invalid(format!(
                "ECC layout of {} data columns and {}-bit words does not match the weight mapping ({} columns, \
                 {}-bit words)",
                layout.data_columns(),
                k * layout.codewords_per_word() as u64,
                mapping.columns(),
                mapping.word_bits()
            )));
        }
        if mapping.n_elements() == 0 {
            return Err(SramError::Invalid("no weights to protect".into()));
        }
        let (spw, off, n) = (
            mapping.slots_per_word(),
            mapping.offset_slots(),
            mapping.n_elements(),
        );
        Ok(CodewordMap {
            mapping: mapping.clone(),
            layout: layout.clone(),
            m: mapping.bits() as u64,
            t: mapping.slot_bits(),
            spw,
            k,
            cpw: layout.codewords_per_word() as u64,
            off,
            n,
            first_word: off / spw,
            last_word: (off + n - 1) / spw,
        })
    }

    pub fn code(&self) -> &Code {
        self.layout.code()
    }
    pub fn layout(&self) -> &EccLayout {
        &self.layout
    }
    pub fn mapping(&self) -> &WeightMapping {
        &self.mapping
    }

    /// The weight bit stored in data bit `i` (`< k`) of codeword `id`: `(element, bit)`, or `None` for a data bit
    /// holding no weight.
    #[inline]
    pub fn owner(&self, id: CodewordId, i: u32) -> Option<(u64, u8)> {
        let b = id.q as u64 * self.k + i as u64;
        let s = b / self.t;
        if s >= self.spw || b % self.t >= self.m {
            return None;
        }
        let slot = id.word * self.spw + s;
        if slot < self.off || slot - self.off >= self.n {
            return None;
        }
        Some((slot - self.off, (b % self.t) as u8))
    }

    /// Whether codeword `id` holds at least one weight bit (only those are stored and counted).
    pub fn holds_weights(&self, id: CodewordId) -> bool {
        if id.word < self.first_word || id.word > self.last_word || id.q as u64 >= self.cpw {
            return false;
        }
        let lo = id.q as u64 * self.k / self.t;
        if lo >= self.spw {
            return false;
        }
        let hi = ((id.q as u64 + 1) * self.k).div_ceil(self.t).min(self.spw);
        let (a, b) = (id.word * self.spw + lo, id.word * self.spw + hi);
        a < self.off + self.n && b > self.off
    }

    /// The codewords holding weights, in ascending order.
    pub fn codewords(&self) -> impl Iterator<Item = CodewordId> + '_ {
        (self.first_word..=self.last_word)
            .flat_map(move |word| (0..self.cpw as u32).map(move |q| CodewordId { word, q }))
            .filter(move |&id| self.holds_weights(id))
    }

    /// Number of codewords holding weights.
    pub fn codeword_count(&self) -> u64 {
        self.codewords().count() as u64
    }

    /// The codeword and data-bit position of bit `bit` of `element`.
    #[inline]
    pub fn locate_weight_bit(&self, element: u64, bit: u8) -> (CodewordId, u32) {
        let u = element + self.off;
        let b = (u % self.spw) * self.t + bit as u64;
        (
            CodewordId {
                word: u / self.spw,
                q: (b / self.k) as u32,
            },
            (b % self.k) as u32,
        )
    }

    /// The clean data bits of codeword `id` gathered from `image` (one code per element).
    pub fn data(&self, image: &[u8], id: CodewordId) -> u64 {
        (0..self.k as u32).fold(0u64, |acc, i| match self.owner(id, i) {
            Some((e, j)) => acc | ((((image[e as usize] >> j) & 1) as u64) << i),
            None => acc,
        })
    }

    /// Bits of codeword `id` that hold no weight: the r check bits and the weightless data bits.
    pub fn extra_bits(&self, id: CodewordId) -> u32 {
        let weightless = (0..self.k as u32)
            .filter(|&i| self.owner(id, i).is_none())
            .count() as u32;
        self.code().r() + weightless
    }

    /// Codeword position (`0..n`, data bits first) of the `x`-th bit counted by [`extra_bits`](Self::extra_bits):
    /// `x < r` is check bit `x` (position `k + x`), the rest are the weightless data bits in ascending order.
    pub fn extra_bit_position(&self, id: CodewordId, x: u32) -> u32 {
        let r = self.code().r();
        if x < r {
            return self.k as u32 + x;
        }
        (0..self.k as u32)
            .filter(|&i| self.owner(id, i).is_none())
            .nth((x - r) as usize)
            .expect("x below extra_bits")
    }

    /// The codewords stored in a physical cell (array, row, physical column): calls `f(id, codeword bit, data
    /// column)` for every tile whose codeword there holds weights; the data column (`q_row·k + i`, the cell's
    /// column without ECC) is meaningful for data bits only.
    fn cell_codewords(
        &self,
        array: u64,
        row: u64,
        column: u32,
        mut f: impl FnMut(CodewordId, u32, u32),
    ) -> Result<(), SramError> {
        let (q_row, i) = self.layout.locate(column).ok_or_else(|| {
            SramError::Invalid(format!(
                "physical column {column} is outside the {}-column ECC row",
                self.layout.physical_columns()
            ))
        })?;
        let word_in_row = q_row as u64 / self.cpw;
        let q = (q_row as u64 % self.cpw) as u32;
        let w_phys = self.mapping.word_index_at(array, row, word_in_row);
        let total = self.mapping.total_words();
        let mut word = w_phys;
        while word <= self.last_word {
            let id = CodewordId { word, q };
            if self.holds_weights(id) {
                f(id, i, q_row * self.k as u32 + i);
            }
            word += total;
        }
        Ok(())
    }
}

/// The physical fault map of an ECC-protected weight SRAM: a profile whose arrays already have the physical
/// width (`[weight_sram] columns` + check columns), or a profile of the data width with the check-bit columns
/// generated from its style and seed ([`extension_profile`]).
#[derive(Debug, Clone)]
pub struct EccFaultMap {
    main: Arc<FaultProfile>,
    extension: Option<FaultProfile>,
    data_columns: u32,
}

impl EccFaultMap {
    /// The map for `layout` on arrays of `rows` rows. One-line errors when the widths do not fit.
    pub fn new(
        profile: Arc<FaultProfile>,
        layout: &EccLayout,
        rows: u32,
    ) -> Result<EccFaultMap, SramError> {
        let m = &profile.meta;
        let (data, phys) = (layout.data_columns(), layout.physical_columns());
        if m.rows != rows {
            return Err(SramError::Invalid(format!(
                "profile `{}` has arrays of {} rows but the weight SRAM has {rows} (weight_sram.rows)",
                m.name, m.rows
            )));
        }
        let extension = if m.columns == phys {
            None
        } else if m.columns == data {
            Some(extension_profile(&profile, phys - data)?)
        } else {
            return Err(SramError::Invalid(format!(
                "profile `{}` has {} columns; {} needs {phys} physical columns ({data} data + {} check) or a \
                 {data}-column profile whose check-bit columns are generated",
                m.name,
                m.columns,
                layout.code().name(),
                phys - data
            )));
        };
        Ok(EccFaultMap {
            main: profile,
            extension,
            data_columns: data,
        })
    }

    pub fn main(&self) -> &FaultProfile {
        &self.main
    }
    /// The generated check-bit columns, when the main profile has only the data width.
    pub fn extension(&self) -> Option<&FaultProfile> {
        self.extension.as_ref()
    }

    /// The profiles with the physical column of their column 0.
    fn parts(&self) -> Vec<(&FaultProfile, u32)> {
        let mut v = vec![(self.main.as_ref(), 0u32)];
        if let Some(e) = &self.extension {
            v.push((e, self.data_columns));
        }
        v
    }
}

/// The check-bit columns of a data-width profile: a profile of `extra_columns` columns (same arrays, rows and
/// floor) generated by the calibrated generator with the profile's `style` and the seed
/// `splitmix64(seed ⊕ 0xECC0C01D00000000 ⊕ extra_columns)` (docs/ecc.md). It has the style's statistics (BER
/// curve, column alignment, fault kinds) in columns of its own, so the data columns keep their faults.
pub fn extension_profile(
    profile: &FaultProfile,
    extra_columns: u32,
) -> Result<FaultProfile, SramError> {
    let m = &profile.meta;
    let missing = || {
        SramError::Invalid(format!(
            "profile `{}` has {} columns and no generator `style`/`seed` to make the {extra_columns} check-bit \
             columns ECC needs; give a profile of {} columns (accelsim profile generate --columns {})",
            m.name,
            m.columns,
            m.columns + extra_columns,
            m.columns + extra_columns
        ))
    };
    let style: Style = m
        .style
        .as_deref()
        .ok_or_else(missing)?
        .parse()
        .map_err(|_| missing())?;
    let seed = m.seed.ok_or_else(missing)?;
    generate(&GenerateSpec {
        style,
        arrays: m.arrays,
        rows: m.rows,
        columns: extra_columns,
        seed: splitmix64(seed ^ EXTENSION_SEED_TAG ^ extra_columns as u64),
        floor_vdd_rel: m.floor_vdd_rel.max(super::curve::LOWEST_MEASURED_VDD_REL),
        name: format!("{}+check{extra_columns}", m.name),
    })
}

/// Sorts codeword errors by codeword and merges entries of the same codeword (OR of the masks).
pub fn merge_errors(mut errors: Vec<CodewordError>) -> Vec<CodewordError> {
    errors.par_sort_unstable_by_key(|e| e.id);
    let mut out: Vec<CodewordError> = Vec::with_capacity(errors.len());
    for e in errors {
        match out.last_mut() {
            Some(last) if last.id == e.id => {
                last.data |= e.data;
                last.check |= e.check;
            }
            _ => out.push(e),
        }
    }
    out
}

/// Every codeword with a bit that reads wrong at `vdd_rel` on the clean weights `image`, sorted. Physical array
/// `a` uses profile array `a mod P` as without ECC; a stuck-at cell is an error only where the stored bit differs
/// (check bits store `encode(clean data)`, weightless data bits 0); a transient cell fires on an access with
/// the same per-(cell, access) draw as [`super::fault_entries`] for weight bits, and a draw of its own for the
/// other bits.
pub fn codeword_errors(
    faults: &EccFaultMap,
    map: &CodewordMap,
    image: &[u8],
    vdd_rel: f64,
    transient_seed: u64,
) -> Result<Vec<CodewordError>, SramError> {
    let mapping = &map.mapping;
    if image.len() as u64 != mapping.n_elements() {
        return Err(SramError::Invalid(format!(
            "memory image has {} codes but the mapping holds {} elements",
            image.len(),
            mapping.n_elements()
        )));
    }
    let code = map.code();
    let k = code.k();
    let phys_cols = map.layout.physical_columns() as u64;
    let rows = mapping.rows() as u64;
    let phys_arrays = mapping.arrays();
    let mut out = Vec::new();
    for (profile, col_base) in faults.parts() {
        let cols = profile.meta.columns as u64;
        let cpa = rows * cols;
        let p_arrays = profile.meta.arrays as u64;
        for fc in profile.failing_at(vdd_rel)? {
            let FailingCell {
                cell,
                kind,
                p_access,
                ..
            } = *fc;
            let (pa, within) = (cell as u64 / cpa, cell as u64 % cpa);
            let (row, column) = (within / cols, col_base + (within % cols) as u32);
            let mut a = pa;
            while a < phys_arrays {
                let wide = (a * rows + row) * phys_cols + column as u64;
                map.cell_codewords(a, row, column, |id, i, data_column| {
                    let (stored, fires) = if i < k {
                        match map.owner(id, i) {
                            Some((e, j)) => {
                                let logical = mapping.cell_index(CellAddr {
                                    array: a as u32,
                                    row: row as u32,
                                    column: data_column,
                                });
                                (
                                    (image[e as usize] >> j) & 1 == 1,
                                    p_access >= 1.0
                                        || access_draw(transient_seed, logical, e) < p_access,
                                )
                            }
                            None => (
                                false,
                                p_access >= 1.0
                                    || access_draw(transient_seed ^ EXTRA_DRAW_TAG, wide, id.word)
                                        < p_access,
                            ),
                        }
                    } else {
                        (
                            (code.encode(map.data(image, id)) >> (i - k)) & 1 == 1,
                            p_access >= 1.0
                                || access_draw(transient_seed ^ EXTRA_DRAW_TAG, wide, id.word)
                                    < p_access,
                        )
                    };
                    let wrong = fires
                        && match kind {
                            FailureKind::Flips => true,
                            FailureKind::ReadsOne => !stored,
                            FailureKind::ReadsZero => stored,
                        };
                    if wrong {
                        out.push(if i < k {
                            CodewordError {
                                id,
                                data: 1u64 << i,
                                check: 0,
                            }
                        } else {
                            CodewordError {
                                id,
                                data: 0,
                                check: 1u16 << (i - k),
                            }
                        });
                    }
                })?;
                a += p_arrays;
            }
        }
    }
    Ok(merge_errors(out))
}

/// Decodes every codeword in `errors` (sorted, from [`codeword_errors`] or the uniform sampler) and writes what
/// the read path delivers into `out`, which must hold the clean codes: corrected codewords stay clean, silent ones
/// carry their residual errors, detected ones are zeroed (`zero_codes[e]`, the code of the value closest to 0.0,
/// for every weight with a bit in the codeword) or keep their raw bits, by `due`.
pub fn decode_into(
    map: &CodewordMap,
    errors: &[CodewordError],
    due: DuePolicy,
    zero_codes: &[u8],
    out: &mut [u8],
) -> EccReadout {
    let code = map.code();
    let mut r = EccReadout::default();
    let mut zeroed: Vec<CodewordId> = Vec::new();
    let xor_bits = |out: &mut [u8], id: CodewordId, mask: u64| {
        let mut m = mask;
        while m != 0 {
            let i = m.trailing_zeros();
            m &= m - 1;
            if let Some((e, j)) = map.owner(id, i) {
                out[e as usize] ^= 1 << j;
            }
        }
    };
    for e in errors {
        let mut m = e.data;
        while m != 0 {
            let i = m.trailing_zeros();
            m &= m - 1;
            r.flipped_bits += map.owner(e.id, i).is_some() as u64;
        }
        let d = code.classify(e.data, e.check);
        r.counts.add(d.outcome);
        match (d.outcome, due) {
            (Outcome::Silent, _) | (Outcome::Detected, DuePolicy::Keep) => {
                xor_bits(out, e.id, d.residual)
            }
            (Outcome::Detected, DuePolicy::Zero) => zeroed.push(e.id),
            _ => {}
        }
    }
    for id in zeroed {
        for i in 0..code.k() {
            if let Some((e, _)) = map.owner(id, i) {
                out[e as usize] = zero_codes[e as usize];
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EccScheme, Mapping, WeightSramConfig};
    use crate::ecc::reference::RefCode;
    use crate::sram::profile::ProfileMeta;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[allow(clippy::too_many_arguments)]
    fn sram(
        banks: u32,
        apb: u32,
        columns: u32,
        word_bits: u32,
        mapping: Mapping,
        ecc: EccScheme,
        k: u32,
        interleave: u32,
    ) -> WeightSramConfig {
        WeightSramConfig {
            banks,
            arrays_per_bank: apb,
            rows: 4,
            columns,
            word_bits,
            mapping,
            packing: crate::config::Packing::Dense,
            offset_bits: 0,
            ecc,
            ecc_data_bits: k,
            interleave,
            due: DuePolicy::Zero,
            ecc_decoder_latency_cycles: 1,
        }
    }

    fn profile(arrays: u32, columns: u32, cells: Vec<(u32, f64, u8, bool)>) -> FaultProfile {
        let cells = cells
            .into_iter()
            .map(|(cell, v, k, transient)| FailingCell {
                cell,
                fail_vdd_rel: v,
                kind: [
                    FailureKind::ReadsOne,
                    FailureKind::ReadsZero,
                    FailureKind::Flips,
                ][k as usize],
                p_access: if transient { 0.5 } else { 1.0 },
            })
            .collect();
        let meta = ProfileMeta {
            name: "prop".into(),
            source: String::new(),
            style: None,
            seed: None,
            arrays,
            rows: 4,
            columns,
            floor_vdd_rel: 0.75,
        };
        FaultProfile::new(meta, cells).unwrap()
    }

    /// Dense reference: every codeword holding weights, bit by bit through `WeightMapping::cell_of`, the physical
    /// cell looked up in the profile, the read word decoded by the explicit-matrix reference code.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        p: &FaultProfile,
        cfg: &WeightSramConfig,
        m: &WeightMapping,
        image: &[u8],
        zero: &[u8],
        vdd: f64,
        seed: u64,
        due: DuePolicy,
    ) -> (Vec<u8>, EccCounts, u64) {
        let layout = EccLayout::from_config(cfg).unwrap();
        let code = layout.code();
        let rc = match cfg.ecc {
            EccScheme::Secded => RefCode::hsiao(cfg.ecc_data_bits as usize),
            _ => RefCode::parity(cfg.ecc_data_bits as usize),
        };
        let (k, n) = (code.k(), code.n());
        let by_cell: HashMap<u32, FailingCell> = p.cells().iter().map(|c| (c.cell, *c)).collect();
        let phys = layout.physical_columns() as u64;
        let cpa = 4 * phys;
        let spw = m.slots_per_word();
        let bits = m.bits() as u64;
        // Slot width written out: m bits dense, one byte per code (m <= 8 here) with byte packing.
        let t = match cfg.packing {
            crate::config::Packing::Dense => bits,
            crate::config::Packing::Byte => 8,
        };
        let off = m.offset_slots();
        let cpw = cfg.word_bits / k;
        let mut out = image.to_vec();
        let mut counts = EccCounts::default();
        let mut flipped = 0u64;
        let mut zeroed = Vec::new();
        let n_el = m.n_elements();
        let words = (off / spw)..=((off + n_el - 1) / spw);
        for word in words {
            for q in 0..cpw {
                // Owners of the codeword's data bits, straight from the slot arithmetic of docs/hw-config.md.
                let owners: Vec<Option<(u64, u64)>> = (0..k as u64)
                    .map(|i| {
                        let b = q as u64 * k as u64 + i;
                        let s = b / t;
                        let slot = word * spw + s;
                        (s < spw && b % t < bits && slot >= off && slot - off < n_el)
                            .then(|| (slot - off, b % t))
                    })
                    .collect();
                let Some(&(e0, j0)) = owners.iter().flatten().next() else {
                    continue;
                };
                let base = m.cell_of(e0, j0 as u8).unwrap();
                let word_in_row = base.column / cfg.word_bits;
                let q_row = word_in_row * cpw + q;
                let data: Vec<u8> = owners
                    .iter()
                    .map(|o| o.map_or(0, |(e, j)| (image[e as usize] >> j) & 1))
                    .collect();
                let stored = rc.encode(&data);
                let mut read = stored.clone();
                for i in 0..n {
                    let col = layout.physical_column(q_row, i) as u64;
                    let pcell = (base.array as u64 % p.meta.arrays as u64) * cpa
                        + base.row as u64 * phys
                        + col;
                    let Some(c) = by_cell.get(&(pcell as u32)) else {
                        continue;
                    };
                    if vdd >= c.fail_vdd_rel {
                        continue;
                    }
                    if c.p_access < 1.0 {
                        let u = match owners.get(i as usize).copied().flatten() {
                            Some((e, _)) => access_draw(
                                seed,
                                m.cell_index(CellAddr {
                                    array: base.array,
                                    row: base.row,
                                    column: q_row * k + i,
                                }),
                                e,
                            ),
                            None => access_draw(
                                seed ^ EXTRA_DRAW_TAG,
                                (base.array as u64 * 4 + base.row as u64) * phys + col,
                                word,
                            ),
                        };
                        if u >= c.p_access {
                            continue;
                        }
                    }
                    read[i as usize] = match c.kind {
                        FailureKind::ReadsOne => 1,
                        FailureKind::ReadsZero => 0,
                        FailureKind::Flips => stored[i as usize] ^ 1,
                    };
                }
                for i in 0..k as usize {
                    if owners[i].is_some() && read[i] != stored[i] {
                        flipped += 1;
                    }
                }
                if read == stored {
                    continue;
                }
                let (delivered, detected) = rc.decode(&read);
                if detected {
                    counts.detected += 1;
                } else if delivered == data {
                    counts.corrected += 1;
                } else {
                    counts.silent += 1;
                }
                if detected && due == DuePolicy::Zero {
                    zeroed.extend(owners.iter().flatten().map(|&(e, _)| e));
                    continue;
                }
                let got = if detected {
                    read[..k as usize].to_vec()
                } else {
                    delivered
                };
                for (i, o) in owners.iter().enumerate() {
                    if let Some((e, j)) = *o {
                        let v = &mut out[e as usize];
                        *v = (*v & !(1 << j)) | (got[i] << j);
                    }
                }
            }
        }
        for e in zeroed {
            out[e as usize] = zero[e as usize];
        }
        (out, counts, flipped)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn sparse_decoding_matches_the_dense_reference(
            shape in 0usize..3, secded in any::<bool>(), il in any::<bool>(),
            banks in 1u32..3, apb in 1u32..3, bank_il in any::<bool>(),
            p_arrays in 1u32..4,
            cells in proptest::collection::vec((any::<u32>(), 0.76f64..1.0, 0u8..3, any::<bool>()), 0..120),
            bits in 1u8..=8, n in 1u64..300, off in 0u64..64,
            vdd in 0.75f64..1.0, seed in any::<u64>(), image_seed in any::<u64>(), keep in any::<bool>(),
            byte in any::<bool>(),
        ) {
            let (k, word_bits, columns) = [(16u32, 32u32, 32u32), (16, 16, 32), (32, 32, 64)][shape];
            let q = columns / k;
            let cfg = sram(
                banks, apb, columns, word_bits,
                if bank_il { Mapping::BankInterleaved } else { Mapping::Linear },
                if secded { EccScheme::Secded } else { EccScheme::Parity },
                k, if il && q >= 2 { 2 } else { 1 },
            );
            let cfg = WeightSramConfig {
                packing: if byte { crate::config::Packing::Byte } else { crate::config::Packing::Dense },
                ..cfg
            };
            let layout = EccLayout::from_config(&cfg).unwrap();
            let phys = layout.physical_columns();
            let total = p_arrays * 4 * phys;
            let mut cells: Vec<_> = cells.into_iter().map(|(c, v, kd, t)| (c % total, v, kd, t)).collect();
            cells.sort_by_key(|c| c.0);
            cells.dedup_by_key(|c| c.0);
            let p = Arc::new(profile(p_arrays, phys, cells));
            let t = cfg.packing.slot_bits(bits as u32) as u64;
            let off_bits = (off % (cfg.total_bits() / t)) * t;
            let m = WeightMapping::new(&cfg, bits, n, off_bits).unwrap();
            let mask = ((1u16 << bits) - 1) as u8;
            let image: Vec<u8> = (0..n).map(|i| (splitmix64(image_seed ^ i) as u8) & mask).collect();
            let zero: Vec<u8> = (0..n).map(|i| (splitmix64(!image_seed ^ i) as u8) & mask).collect();
            let due = if keep { DuePolicy::Keep } else { DuePolicy::Zero };
            let (want, want_counts, want_flipped) = reference(&p, &cfg, &m, &image, &zero, vdd, seed, due);

            let map = CodewordMap::new(&m, &layout).unwrap();
            let faults = EccFaultMap::new(p.clone(), &layout, 4).unwrap();
            let errors = codeword_errors(&faults, &map, &image, vdd, seed).unwrap();
            let mut got = image.clone();
            let r = decode_into(&map, &errors, due, &zero, &mut got);
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(r.counts, want_counts);
            prop_assert_eq!(r.flipped_bits, want_flipped);
            // Sparse: only codewords with an error are listed, each once, all holding weights.
            prop_assert!(errors.windows(2).all(|w| w[0].id < w[1].id));
            prop_assert!(errors.iter().all(|e| (e.data != 0 || e.check != 0) && map.holds_weights(e.id)));
        }
    }

    #[test]
    fn extra_bits_enumerate_exactly_the_weightless_bits() {
        for (bits, n, off_bits, byte) in [
            (8u8, 100u64, 0u64, false),
            (3, 50, 6, false),
            (5, 37, 40, false),
            (4, 200, 32, false),
            (3, 50, 8, true),
            (5, 37, 40, true),
        ] {
            let cfg = WeightSramConfig {
                packing: if byte {
                    crate::config::Packing::Byte
                } else {
                    crate::config::Packing::Dense
                },
                ..sram(1, 2, 64, 64, Mapping::Linear, EccScheme::Secded, 16, 1)
            };
            let layout = EccLayout::from_config(&cfg).unwrap();
            let m = WeightMapping::new(&cfg, bits, n, off_bits).unwrap();
            let map = CodewordMap::new(&m, &layout).unwrap();
            let mut owned = 0u64;
            for id in map.codewords() {
                let k = map.code().k();
                let mut pos: Vec<u32> = (0..map.extra_bits(id))
                    .map(|x| map.extra_bit_position(id, x))
                    .collect();
                let want: Vec<u32> = (0..map.code().n())
                    .filter(|&i| i >= k || map.owner(id, i).is_none())
                    .collect();
                pos.sort();
                assert_eq!(pos, want);
                owned += (0..k).filter(|&i| map.owner(id, i).is_some()).count() as u64;
            }
            // Every weight bit is in exactly one listed codeword, at the place locate_weight_bit says.
            assert_eq!(owned, n * bits as u64);
            for e in 0..n {
                for j in 0..bits {
                    let (id, i) = map.locate_weight_bit(e, j);
                    assert!(map.holds_weights(id));
                    assert_eq!(map.owner(id, i), Some((e, j)));
                }
            }
        }
    }

    #[test]
    fn data_width_profiles_get_generated_check_columns_and_keep_their_data_faults() {
        let spec = GenerateSpec {
            style: Style::Chip1,
            arrays: 2,
            rows: 512,
            columns: 64,
            seed: 7,
            floor_vdd_rel: 0.75,
            name: "c".into(),
        };
        let p = Arc::new(generate(&spec).unwrap());
        let cfg = WeightSramConfig {
            rows: 512,
            ..sram(1, 4, 64, 64, Mapping::Linear, EccScheme::Secded, 64, 1)
        };
        let layout = EccLayout::from_config(&cfg).unwrap();
        let fm = EccFaultMap::new(p.clone(), &layout, 512).unwrap();
        let ext = fm.extension().unwrap();
        assert_eq!((ext.meta.arrays, ext.meta.columns), (2, 8));
        // Deterministic, and with the style's calibrated BER.
        assert_eq!(
            ext,
            EccFaultMap::new(p.clone(), &layout, 512)
                .unwrap()
                .extension()
                .unwrap()
        );
        let (a, b) = (p.stats_at(0.8).unwrap().ber, ext.stats_at(0.8).unwrap().ber);
        assert!((a / b - 1.0).abs() < 0.1, "{a} vs {b}");
        // Without interleaving the weight bits see exactly the unprotected memory's faults.
        let n = 20_000u64;
        let image: Vec<u8> = (0..n).map(|i| splitmix64(i) as u8).collect();
        let m = WeightMapping::new(&cfg, 8, n, 0).unwrap();
        let map = CodewordMap::new(&m, &layout).unwrap();
        for vdd in [0.9, 0.82, 0.78] {
            let errors = codeword_errors(&fm, &map, &image, vdd, 3).unwrap();
            let mut out = image.clone();
            let r = decode_into(&map, &errors, DuePolicy::Keep, &image, &mut out);
            let plain = super::super::fault_pattern_at(&p, &m, &image, vdd, 3).unwrap();
            assert_eq!(r.flipped_bits, plain.fault_count(), "at {vdd}");
            assert!(r.counts.corrected > 0);
        }
        // A data-width profile without a style cannot be extended: one clear line.
        let bare = Arc::new(profile(1, 64, vec![]));
        let cfg4 = sram(1, 1, 64, 64, Mapping::Linear, EccScheme::Secded, 64, 1);
        let e = EccFaultMap::new(bare, &EccLayout::from_config(&cfg4).unwrap(), 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--columns 72") && !e.contains('\n'), "{e}");
    }
}
