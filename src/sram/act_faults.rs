//! Faulty activation buffers: the activation SRAM's fault map at a voltage and the [`ActivationStore`] that
//! reads every stored activation bit back through its cell (docs/activation-faults.md).
//!
//! * **Profile faults** (only when `activation_sram` is a scaled rail): the cells of the activation fault
//!   profile failing at the rail's `vdd_rel` (docs/sram-profiles.md). A reads-as-1 / reads-as-0 cell forces its
//!   value, a flipping cell inverts it; a persistent cell (`p_access = 1`) fails on every access, a transient
//!   one on each access with probability `p_access` ([`transient_fails`]: a hash of
//!   `(seed, layer, image, cell, tile)` below `⌊p_access · 2^64⌋`)
//!   — the same cells are faulty for every image, which values they corrupt depends on the image.
//! * **Random bit errors** (`--act-ber P`): every cell of the SRAM is, independently with probability `P`, a
//!   persistent flipping cell of the chip drawn for `seed` (the paper's random bit error model applied to the
//!   activation buffers' cells, like `--ber` for the weights). Drawn sparsely by geometric skipping: exact
//!   Bernoulli per cell, work proportional to the faulty cells. On a cell that is also a profile fault, the
//!   profile's read comes first and the random flip inverts its result.
//!
//! Work per stored map is proportional to the faulty cells of its buffer below the map's size (times its tiles);
//! a fault-free store costs one binary search per map.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use super::act_mapping::{ActBuffer, ActMapping, CODE_BITS};
use super::generate::{generate, GenerateSpec, Style, MAX_GENERATED_CELLS};
use super::profile::{FailureKind, FaultProfile};
use super::SramError;
use crate::config::{HwConfig, Rail};
use crate::engine::act_store::{
    ActivationStore, FoldTable, PsumCorrections, StoredMap, StoredPsums,
};
use crate::systolic::Dataflow;

/// XORed into the weight profile's seed to seed the derived activation chip (the ASCII bytes of `act_sram`), so
/// the two SRAMs of one config are different chips of the same style (docs/activation-faults.md#fault-map).
pub const ACT_SEED_SALT: u64 = 0x6163_745f_7372_616d;
/// Lowest `vdd_rel` a derived activation profile covers (the generator's default floor: the lowest measured
/// point of the BER curve).
pub const DERIVED_FLOOR_VDD_REL: f64 = 0.75;
/// Most faulty cells one activation fault map may hold (about 400 MB); `--act-ber` whose expected count
/// exceeds it is refused.
pub const MAX_ACT_FAULT_CELLS: u64 = 1 << 24;

/// The `[activation_sram] fault_profile` value meaning "generate one" (also the default when the key is absent).
pub const DERIVED: &str = "derived";

/// The activation SRAM's fault profile for `hw`: the config's `[activation_sram] fault_profile` (a name in
/// `sram_profiles/` or a path, arrays of `rows x word_bits`), or, for `"derived"` / no key,
/// [`derived_profile`] from `weight_profile` (the weight SRAM's profile of the run; `None` when the weights
/// get uniform random errors).
pub fn activation_profile(
    hw: &HwConfig,
    weight_profile: Option<&FaultProfile>,
) -> Result<FaultProfile, SramError> {
    let mapping = ActMapping::new(&hw.activation_sram)?;
    match hw.activation_sram.fault_profile.as_deref() {
        None | Some(DERIVED) => derived_profile(&mapping, weight_profile),
        Some(name) => {
            let p = FaultProfile::load(&FaultProfile::resolve(name)?)?;
            check_fits(&p, &mapping, &hw.origin)?;
            Ok(p)
        }
    }
}

/// Refuses a profile whose arrays are not `rows x word_bits` of the activation SRAM.
pub fn check_fits(
    p: &FaultProfile,
    mapping: &ActMapping,
    hw_origin: &str,
) -> Result<(), SramError> {
    if p.meta.rows != mapping.rows() || p.meta.columns != mapping.columns() {
        return Err(SramError::Invalid(format!(
            "activation profile {} has arrays of {}x{} cells but hardware config {hw_origin} has \
             activation_sram.rows x word_bits = {}x{}; generate one with accelsim profile generate --rows {} \
             --columns {} --arrays {}",
            p.origin(),
            p.meta.rows,
            p.meta.columns,
            mapping.rows(),
            mapping.columns(),
            mapping.rows(),
            mapping.columns(),
            mapping.arrays()
        )));
    }
    Ok(())
}

/// The generator spec of the derived activation chip: style of the weight profile's `style` header (`chip1`
/// when it names none; `uniform` when the weights have no profile), seed `weight seed XOR` [`ACT_SEED_SALT`]
/// (weight seed 0 when the header has none), `A_0 + A_1` arrays of `rows x word_bits`, floor 0.75.
pub fn derived_spec(mapping: &ActMapping, weight_profile: Option<&FaultProfile>) -> GenerateSpec {
    let style = match weight_profile {
        None => Style::Uniform,
        Some(p) => p
            .meta
            .style
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(Style::Chip1),
    };
    let seed = weight_profile.and_then(|p| p.meta.seed).unwrap_or(0) ^ ACT_SEED_SALT;
    GenerateSpec {
        style,
        arrays: mapping.arrays() as u32,
        rows: mapping.rows(),
        columns: mapping.columns(),
        seed,
        floor_vdd_rel: DERIVED_FLOOR_VDD_REL,
        name: format!("activation-sram-derived-{}", style.name()),
    }
}

/// Generates the derived activation chip ([`derived_spec`]); deterministic.
pub fn derived_profile(
    mapping: &ActMapping,
    weight_profile: Option<&FaultProfile>,
) -> Result<FaultProfile, SramError> {
    if mapping.total_cells() > MAX_GENERATED_CELLS {
        return Err(SramError::Invalid(format!(
            "activation_sram has {} cells, more than the {MAX_GENERATED_CELLS} a derived profile can have; \
             allowed ifmap_kib + ofmap_kib <= 1024, or set [activation_sram] fault_profile to a profile file",
            mapping.total_cells()
        )));
    }
    generate(&derived_spec(mapping, weight_profile))
}

/// One faulty cell as the store applies it (branch-free form of the profile's failure).
#[derive(Debug, Clone, Copy, PartialEq)]
struct ActCell {
    /// Slot of the cell in its buffer.
    slot: u64,
    /// Global cell index (seeds transient draws).
    cell: u32,
    bit: u8,
    /// 1 when the profile lists the cell as failing at this voltage.
    faulty: u8,
    /// 1 for a persistent failure (every access), 0 for a transient one (or no profile fault).
    always: u8,
    /// The failing read is `(stored & keep) ^ set`: reads-as-1 (0, 1), reads-as-0 (0, 0), flips (1, 1).
    keep: u8,
    set: u8,
    /// 1 for a random persistent flip (`--act-ber`) on top.
    flip: u8,
    /// A transient access fails when its draw is below this ([`transient_threshold`]).
    threshold: u64,
}

impl ActCell {
    fn set_fault(&mut self, kind: FailureKind, p_access: f64) {
        self.faulty = 1;
        self.always = (p_access >= 1.0) as u8;
        (self.keep, self.set) = match kind {
            FailureKind::ReadsOne => (0, 1),
            FailureKind::ReadsZero => (0, 0),
            FailureKind::Flips => (1, 1),
        };
        self.threshold = transient_threshold(p_access);
    }
}

/// `⌊p · 2^64⌋` (saturating): a transient access with draw `h` ([`access_draw`]) fails when `h < threshold`, so
/// it fails with probability `p` to within 2^-64.
pub fn transient_threshold(p_access: f64) -> u64 {
    if p_access >= 1.0 {
        u64::MAX
    } else if p_access > 0.0 {
        (p_access * 18_446_744_073_709_551_616.0) as u64
    } else {
        0
    }
}

/// The faulty cells of both activation buffers at one voltage, per buffer sorted by slot.
#[derive(Debug, Clone)]
pub struct ActFaultMap {
    mapping: ActMapping,
    cells: [Vec<ActCell>; 2],
}

impl ActFaultMap {
    /// No faulty cell.
    pub fn empty(mapping: ActMapping) -> ActFaultMap {
        ActFaultMap {
            mapping,
            cells: [Vec::new(), Vec::new()],
        }
    }

    /// The mapping the map is laid out for.
    pub fn mapping(&self) -> &ActMapping {
        &self.mapping
    }

    /// Faulty cells holding code bits (unused columns dropped), both buffers.
    pub fn faulty_cells(&self) -> usize {
        self.cells[0].len() + self.cells[1].len()
    }

    /// Adds the cells of `profile` failing at `vdd_rel` (array `a` of the SRAM uses profile array `a mod P`).
    /// Errors on a geometry mismatch or a voltage below the profile's floor.
    pub fn with_profile(
        mut self,
        profile: &FaultProfile,
        vdd_rel: f64,
        hw_origin: &str,
    ) -> Result<ActFaultMap, SramError> {
        check_fits(profile, &self.mapping, hw_origin)?;
        let per_array = profile.meta.rows as u64 * profile.meta.columns as u64;
        let p_arrays = profile.meta.arrays as u64;
        for fc in profile.failing_at(vdd_rel)? {
            let (pa, within) = (fc.cell as u64 / per_array, fc.cell as u64 % per_array);
            let mut a = pa;
            while a < self.mapping.arrays() {
                let idx = a * per_array + within;
                self.insert(idx, |c| c.set_fault(fc.kind, fc.p_access));
                a += p_arrays;
            }
        }
        self.sort();
        Ok(self)
    }

    /// Adds random persistent flips: each cell independently with probability `p` (0..=1), drawn for `seed`.
    pub fn with_random_flips(mut self, p: f64, seed: u64) -> Result<ActFaultMap, SramError> {
        let total = self.mapping.total_cells();
        if !(0.0..=1.0).contains(&p) {
            return Err(SramError::Invalid(format!(
                "--act-ber {p} is out of range; allowed 0..=1 (a per-bit probability)"
            )));
        }
        if p * total as f64 > MAX_ACT_FAULT_CELLS as f64 {
            return Err(SramError::Invalid(format!(
                "--act-ber {p} over the {total} activation SRAM cells would make about {:.0} faulty cells; \
                 allowed at most {MAX_ACT_FAULT_CELLS} (P <= {:.3e})",
                p * total as f64,
                MAX_ACT_FAULT_CELLS as f64 / total as f64
            )));
        }
        for idx in bernoulli_indices(total, p, seed) {
            self.insert(idx, |c| c.flip = 1);
        }
        self.sort();
        Ok(self)
    }

    fn insert(&mut self, idx: u64, set: impl Fn(&mut ActCell)) {
        let Some(addr) = self.mapping.addr_of_index(idx) else {
            return;
        };
        let Some(sb) = self.mapping.slot_at(addr) else {
            return; // an unused column holds no code bit
        };
        let list = &mut self.cells[sb.buffer.index()];
        let mut c = ActCell {
            slot: sb.slot,
            cell: idx as u32,
            bit: sb.bit,
            faulty: 0,
            always: 0,
            keep: 0,
            set: 0,
            flip: 0,
            threshold: 0,
        };
        set(&mut c);
        list.push(c);
    }

    /// Sorts by (slot, bit) and merges the entries of one cell (a profile fault and a random flip).
    fn sort(&mut self) {
        for list in &mut self.cells {
            list.sort_by_key(|c| (c.slot, c.bit));
            list.dedup_by(|later, first| {
                if (later.slot, later.bit) != (first.slot, first.bit) {
                    return false;
                }
                if first.faulty == 0 && later.faulty == 1 {
                    let flip = first.flip;
                    *first = *later;
                    first.flip |= flip;
                } else {
                    first.flip |= later.flip;
                }
                true
            });
        }
    }
}

/// Indices in `0..n` each kept independently with probability `p`, by geometric skipping (the gap before the
/// next kept index is `floor(ln U / ln(1 − p))`, U uniform in (0, 1]): exact Bernoulli, O(kept) work.
pub fn bernoulli_indices(n: u64, p: f64, seed: u64) -> Vec<u64> {
    if p <= 0.0 || n == 0 {
        return Vec::new();
    }
    if p >= 1.0 {
        return (0..n).collect();
    }
    let mut rng = Pcg64::seed_from_u64(seed ^ 0x6163_745f_6265_7221); // "act_ber!"
    let ln_q = (-p).ln_1p();
    let mut out = Vec::with_capacity(((n as f64 * p * 1.1) as usize).min(1 << 24) + 16);
    let mut i = 0u64;
    loop {
        let u: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
        let gap = (u.ln() / ln_q).floor();
        if gap >= (n - i) as f64 {
            return out;
        }
        i += gap as u64;
        out.push(i);
        i += 1;
        if i >= n {
            return out;
        }
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The per-map part of a transient cell's draw: `splitmix64` chained over `(seed, layer, image)`.
pub fn access_key(seed: u64, layer: usize, image: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(seed) ^ layer as u64) ^ image)
}

/// The per-access draw of cell `cell` on tile pass `tile` of a map with key [`access_key`]:
/// `splitmix64(key ^ (tile << 32 | cell))`, uniform on `u64`.
pub fn access_draw(key: u64, cell: u32, tile: u64) -> u64 {
    splitmix64(key ^ (tile << 32 | cell as u64))
}

/// Whether a transient cell with per-access probability `p_access` fails on this access:
/// `access_draw(access_key(seed, layer, image), cell, tile) < ⌊p·2^64⌋`.
pub fn transient_fails(
    seed: u64,
    layer: usize,
    image: u64,
    cell: u32,
    tile: u64,
    p_access: f64,
) -> bool {
    access_draw(access_key(seed, layer, image), cell, tile) < transient_threshold(p_access)
}

/// Bits the store has read and got wrong (the activation rail's bit errors), summed over every map read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ActCounts {
    /// Stored activation bits read (8 per code).
    pub bits_read: u64,
    /// Bits read back different from what was stored.
    pub bits_flipped: u64,
}

impl ActCounts {
    /// Measured bit error rate `bits_flipped / bits_read` (0 when nothing was read).
    pub fn ber(&self) -> f64 {
        if self.bits_read == 0 {
            0.0
        } else {
            self.bits_flipped as f64 / self.bits_read as f64
        }
    }
}

/// Activation buffers with faulty cells: an [`ActivationStore`] for the integer engine.
#[derive(Debug)]
pub struct ActivationFaults {
    map: ActFaultMap,
    /// Per buffer, the map's cells in the form the code reads apply them ([`CodeReads`]).
    code_reads: [CodeReads; 2],
    seed: u64,
    /// Array rows per row fold when folded reductions store their partial sums in these buffers
    /// (docs/activation-faults.md#partial-sums); `None`: they never leave the PE array.
    psum_rows: Option<usize>,
    /// The partial-sum replay plans built so far, by `(layer, outputs)` ([`PsumPlan`]).
    plans: Mutex<Vec<PlanEntry>>,
    bits_read: AtomicU64,
    bits_flipped: AtomicU64,
}

/// One buffer's faulty cells as [`ActivationStore::read_back`] applies them: the persistent part of every byte
/// slot with a cell that fails the same way on every access (stuck-at and flipping profile cells, random flips)
/// as one byte read `((stored & and) | or) ^ xor`, and the cells with a transient failure one by one. Each cell
/// changes only its own bit, so the two parts together read exactly what the cells read one at a time.
#[derive(Debug, Clone, Default)]
struct CodeReads {
    /// By increasing slot.
    bytes: Vec<ByteRead>,
    /// Cells with a transient failure (their random flip included), by (slot, bit).
    transient: Vec<ActCell>,
}

#[derive(Debug, Clone, Copy)]
struct ByteRead {
    slot: u64,
    and: u8,
    or: u8,
    xor: u8,
}

impl CodeReads {
    /// From a buffer's cells (sorted by slot, one entry per cell): a persistent failing cell reads
    /// `((stored & keep) ^ set) ^ flip`, a healthy one with a random flip `stored ^ flip`.
    fn of(cells: &[ActCell]) -> CodeReads {
        let mut r = CodeReads::default();
        for c in cells {
            if c.faulty == 1 && c.always == 0 {
                r.transient.push(*c);
                continue;
            }
            if r.bytes.last().is_none_or(|b| b.slot != c.slot) {
                r.bytes.push(ByteRead {
                    slot: c.slot,
                    and: u8::MAX,
                    or: 0,
                    xor: 0,
                });
            }
            let b = r.bytes.last_mut().expect("just pushed");
            let bit = 1u8 << c.bit;
            if c.faulty == 1 {
                if c.keep == 0 {
                    b.and &= !bit;
                    b.or |= c.set << c.bit;
                } else {
                    b.xor ^= c.set << c.bit;
                }
            }
            b.xor ^= c.flip << c.bit;
        }
        r
    }
}

/// A cached replay plan and its `(layer, outputs)`.
type PlanEntry = ((usize, usize), Arc<PsumPlan>);

/// XORed into the store's seed for the transient draws of partial-sum accesses (the ASCII bytes of `psum`), so
/// they are independent of the code reads' draws.
pub const PSUM_SEED_SALT: u64 = 0x7073_756d;

/// Bits of one stored partial sum (the int32 accumulator word), little-endian over 4 consecutive byte slots.
const PSUM_WORD_BITS: u64 = crate::systolic::PSUM_BITS as u64;

/// The array rows per row fold of `hw`'s dataflow when partial sums are stored between folds in the activation
/// buffers' cells: `rows` for the weight- and input-stationary dataflows (the reduction `K` is mapped onto the
/// rows, docs/systolic.md); `None` for output-stationary (each PE accumulates its output over the whole `K`) and
/// when `[activation_sram] partial_sums = "accumulators"` keeps them in a memory that never fails.
pub fn psum_fold_rows(hw: &HwConfig) -> Option<usize> {
    if hw.activation_sram.partial_sums == crate::config::PartialSumStore::Accumulators {
        return None;
    }
    match hw.systolic.dataflow {
        Dataflow::Ws | Dataflow::Is => Some(hw.systolic.rows as usize),
        Dataflow::Os => None,
    }
}

/// One faulty cell under a layer's partial sums: which sum, which of its 32 bits, on which tile pass, and the
/// cell (index into the region's cells).
#[derive(Debug, Clone, Copy)]
struct PsumHit {
    output: u32,
    bit: u8,
    tile: u32,
    cell: u32,
}

/// `a + p` in int32, saturating; counts a saturation.
#[inline(always)]
fn add_sat(a: i32, p: i32, saturated: &mut u64) -> i32 {
    let wide = a as i64 + p as i64;
    let v = wide.clamp(i32::MIN as i64, i32::MAX as i64);
    *saturated += (v != wide) as u64;
    v as i32
}

/// The read of a partial-sum word whose faulty cells all fail on every access (stuck-at and flipping profile
/// cells, random flips): `read(w) = ((w & and) | or) ^ xor`, the same on every fold.
#[derive(Debug, Clone, Copy)]
struct PersistentRead {
    and: u32,
    or: u32,
    xor: u32,
}

impl PersistentRead {
    /// Per hit: a failing cell reads `(stored & keep) ^ set` (keep = 0: forced to `set`; keep = 1: inverted),
    /// then a random flip inverts.
    fn of(group: &[PsumHit], cells: &[ActCell]) -> PersistentRead {
        let mut m = PersistentRead {
            and: u32::MAX,
            or: 0,
            xor: 0,
        };
        for h in group {
            let c = &cells[h.cell as usize];
            let bit = 1u32 << h.bit;
            if c.faulty == 1 {
                if c.keep == 0 {
                    m.and &= !bit;
                    m.or |= (c.set as u32) << h.bit;
                } else {
                    m.xor ^= bit;
                }
            }
            m.xor ^= (c.flip as u32) << h.bit;
        }
        m
    }
}

/// The partial sums of one output with a faulty cell: its hits `hits[start..end]` (in bit order) and, when none
/// is transient, its persistent read.
#[derive(Debug, Clone, Copy)]
struct PsumGroup {
    output: u32,
    start: u32,
    end: u32,
    /// `None`: a transient cell among the hits (replayed alone, drawing per access).
    persistent: Option<PersistentRead>,
}

/// The image-independent part of the partial-sum replay of one `(layer, outputs)` region: the faulty cells under
/// it never change, only the transient cells' draws and the sums do. Built once per store and region.
#[derive(Debug)]
struct PsumPlan {
    /// Faulty (cell, tile) places under the region ([`ActivationStore::psum_cells`]).
    places: u64,
    /// The region's cells ([`ActivationFaults::psum_region`]), which `hits` index.
    buffer: usize,
    hits: Vec<PsumHit>,
    /// The outputs with a faulty cell, increasing.
    groups: Vec<PsumGroup>,
    /// The persistent-only sums by blocks of consecutive outputs (the table form's dense replay), increasing.
    blocks: Vec<PsumBlock>,
    /// Indices into `groups` of the sums with a transient cell.
    transient: Vec<u32>,
}

/// The chain of one partial sum with a transient cell among its hits: each hit's read per access, transient
/// cells drawing per (fold, tile) with key `splitmix64(key ^ fold)`.
fn replay_with_draws(
    group: &[PsumHit],
    cells: &[ActCell],
    key: u64,
    part: &[i32],
    saturated: &mut u64,
    flipped: &mut u64,
) -> i32 {
    let (last, rest) = part.split_last().expect("at least two folds");
    let mut sum = 0i32;
    for (f, &p) in rest.iter().enumerate() {
        let mut word = add_sat(sum, p, saturated) as u32;
        let fold_key = splitmix64(key ^ f as u64);
        for h in group {
            let c = &cells[h.cell as usize];
            let stored = ((word >> h.bit) & 1) as u8;
            let fails = c.faulty
                & (c.always | (access_draw(fold_key, c.cell, h.tile as u64) < c.threshold) as u8);
            let failing_read = (stored & c.keep) ^ c.set;
            let read = (stored ^ (fails & (stored ^ failing_read))) ^ c.flip;
            let diff = read ^ stored;
            word ^= (diff as u32) << h.bit;
            *flipped += diff as u64;
        }
        sum = word as i32;
    }
    add_sat(sum, *last, saturated)
}

impl ActivationFaults {
    /// A store over `map`; `seed` fixes the transient cells' per-access draws.
    pub fn new(map: ActFaultMap, seed: u64) -> ActivationFaults {
        ActivationFaults {
            code_reads: [CodeReads::of(&map.cells[0]), CodeReads::of(&map.cells[1])],
            map,
            seed,
            psum_rows: None,
            plans: Mutex::new(Vec::new()),
            bits_read: AtomicU64::new(0),
            bits_flipped: AtomicU64::new(0),
        }
    }

    /// The same store with partial sums of folded reductions stored in its buffers, `rows` array rows per fold
    /// (`None`: partial sums never leave the PE array).
    pub fn with_psum_rows(mut self, rows: Option<usize>) -> ActivationFaults {
        self.psum_rows = rows.filter(|&r| r > 0);
        self
    }

    /// The store of one run sample at `vdd_v`: the cells of `profile` (from [`activation_profile`]) failing at
    /// the activation rail's `vdd_rel` when `activation_sram` is in `hw`'s scaled rails (else no profile fault:
    /// an unscaled rail stays at `nominal_v` and never fails), plus random flips at `act_ber` (0 = none). `seed`
    /// (e.g. the sample index of the run) fixes the random chip and the transient draws.
    pub fn build(
        hw: &HwConfig,
        vdd_v: f64,
        profile: Option<&FaultProfile>,
        act_ber: f64,
        seed: u64,
    ) -> Result<ActivationFaults, SramError> {
        let mapping = ActMapping::new(&hw.activation_sram)?;
        let mut map = ActFaultMap::empty(mapping);
        if hw.voltage.scaled_rails.contains(&Rail::ActivationSram) {
            if let Some(p) = profile {
                let vdd_rel = hw.vdd_rel(hw.rail_v(Rail::ActivationSram, vdd_v));
                map = map.with_profile(p, vdd_rel, &hw.origin)?;
            }
        }
        if act_ber > 0.0 {
            map = map.with_random_flips(act_ber, seed)?;
        }
        Ok(ActivationFaults::new(map, seed).with_psum_rows(psum_fold_rows(hw)))
    }

    /// The fault map.
    pub fn map(&self) -> &ActFaultMap {
        &self.map
    }

    /// Counters so far.
    pub fn counts(&self) -> ActCounts {
        ActCounts {
            bits_read: self.bits_read.load(Ordering::Relaxed),
            bits_flipped: self.bits_flipped.load(Ordering::Relaxed),
        }
    }

    /// Resets the counters (e.g. between run samples).
    pub fn reset_counts(&self) {
        self.bits_read.store(0, Ordering::Relaxed);
        self.bits_flipped.store(0, Ordering::Relaxed);
    }
}

/// Persistent-only sums waiting for [`replay::replay_block`]: fold sums fold-major (`parts[f·LANES + j]`), each
/// lane's read and output.
struct LaneBatch {
    folds: usize,
    parts: Vec<i32>,
    masks: replay::LaneMasks,
    outputs: [usize; replay::LANES],
    used: usize,
}

impl LaneBatch {
    fn new(folds: usize) -> LaneBatch {
        LaneBatch {
            folds,
            parts: vec![0; replay::LANES * folds],
            masks: replay::LaneMasks::default(),
            outputs: [0; replay::LANES],
            used: 0,
        }
    }

    /// Adds output `e` (fold sums `part`, read `read`); true when the batch is full.
    fn push(&mut self, e: usize, read: PersistentRead, part: &[i32]) -> bool {
        let j = self.used;
        for (fi, &v) in part.iter().enumerate() {
            self.parts[fi * replay::LANES + j] = v;
        }
        (self.masks.and[j], self.masks.or[j], self.masks.xor[j]) = (read.and, read.or, read.xor);
        self.outputs[j] = e;
        self.used += 1;
        self.used == replay::LANES
    }

    /// Replays the batch's sums, pushing each `(output, final − clean)` into `out`, and empties it. Unused lanes
    /// hold no fold sums and read what was stored (no flip, no saturation).
    fn flush(&mut self, out: &mut PsumCorrections, flipped: &mut u64) {
        let used = self.used;
        if used == 0 {
            return;
        }
        for j in used..replay::LANES {
            for fi in 0..self.folds {
                self.parts[fi * replay::LANES + j] = 0;
            }
        }
        self.masks.and[used..].fill(u32::MAX);
        self.masks.or[used..].fill(0);
        self.masks.xor[used..].fill(0);
        let r = replay::replay_block(&self.parts, replay::LANES, self.folds, &self.masks);
        for (j, &e) in self.outputs[..used].iter().enumerate() {
            out.deltas.push((e, r.sums[j] as i64 - r.clean[j]));
            out.saturated += r.saturated[j] as u64;
        }
        *flipped += r.flipped;
        self.used = 0;
    }
}

/// [`replay::LANES`] consecutive outputs `first ..` of a region with at least one persistent-only sum among them:
/// their reads (neutral for the other outputs) and which lanes are such sums (bit `j`: output `first + j`).
#[derive(Debug, Clone)]
struct PsumBlock {
    first: u32,
    masks: replay::LaneMasks,
    lanes: u32,
}

impl ActivationFaults {
    /// The faulty cells under `map`'s partial sums (buffer `(L + 1) mod 2`, slots below the region's bytes), the
    /// buffer's capacity and the region's bytes (`4 · outputs`).
    fn psum_region(&self, map: &StoredPsums) -> (&[ActCell], u64, u64) {
        let b = ActBuffer::of_layer(map.layer + 1);
        let cap = self.map.mapping.capacity(b);
        let bytes = map.outputs as u64 * (PSUM_WORD_BITS / 8);
        let cells = &self.map.cells[b.index()];
        let end = cells.partition_point(|c| c.slot < bytes.min(cap));
        (&cells[..end], cap, bytes)
    }

    /// The replay plan of `map`'s region, built on first use and cached (it does not depend on the image or the
    /// folds).
    fn psum_plan(&self, map: &StoredPsums) -> Arc<PsumPlan> {
        let key = (map.layer, map.outputs);
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, p)) = plans.iter().find(|(k, _)| *k == key) {
            return Arc::clone(p);
        }
        let plan = Arc::new(self.build_psum_plan(map));
        plans.push((key, Arc::clone(&plan)));
        plan
    }

    /// Every (cell, tile) place under the region as a hit on (output, bit), grouped by output: sum `e` is bytes
    /// `4e .. 4e + 3`, byte `y` in tile `y div cap`, slot `y mod cap`, byte `j` holding bits `8j .. 8j + 7`.
    fn build_psum_plan(&self, map: &StoredPsums) -> PsumPlan {
        let (cells, cap, bytes) = self.psum_region(map);
        let places = cells.iter().map(|c| (bytes - c.slot).div_ceil(cap)).sum();
        let mut hits: Vec<PsumHit> = Vec::new();
        for (i, c) in cells.iter().enumerate() {
            let (mut y, mut tile) = (c.slot, 0u32);
            while y < bytes {
                hits.push(PsumHit {
                    output: (y / 4) as u32,
                    bit: (8 * (y % 4)) as u8 + c.bit,
                    tile,
                    cell: i as u32,
                });
                y += cap;
                tile += 1;
            }
        }
        // Cells are sorted by (slot, bit), so one tile's hits are already in (output, bit) order.
        if bytes > cap {
            hits.sort_unstable_by_key(|h| (h.output, h.bit));
        }
        let mut groups = Vec::new();
        let mut start = 0usize;
        for group in hits.chunk_by(|a, b| a.output == b.output) {
            let transient = group.iter().any(|h| {
                let c = &cells[h.cell as usize];
                c.faulty == 1 && c.always == 0
            });
            groups.push(PsumGroup {
                output: group[0].output,
                start: start as u32,
                end: (start + group.len()) as u32,
                persistent: (!transient).then(|| PersistentRead::of(group, cells)),
            });
            start += group.len();
        }
        let mut blocks: Vec<PsumBlock> = Vec::new();
        let mut transient = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            let Some(read) = g.persistent else {
                transient.push(i as u32);
                continue;
            };
            let first = g.output / replay::LANES as u32 * replay::LANES as u32;
            if blocks.last().is_none_or(|b| b.first != first) {
                blocks.push(PsumBlock {
                    first,
                    masks: replay::LaneMasks::default(),
                    lanes: 0,
                });
            }
            let b = blocks.last_mut().expect("just pushed");
            let j = (g.output - first) as usize;
            (b.masks.and[j], b.masks.or[j], b.masks.xor[j]) = (read.and, read.or, read.xor);
            b.lanes |= 1 << j;
        }
        PsumPlan {
            places,
            buffer: ActBuffer::of_layer(map.layer + 1).index(),
            hits,
            groups,
            blocks,
            transient,
        }
    }

    /// [`ActivationStore::corrupt_psums`] with the fold sums from `partials` (called once per output with a
    /// faulty cell, in increasing output order). Persistent-only sums are gathered [`replay::LANES`] at a time
    /// (fold-major) and replayed in lockstep ([`replay::replay_block`]); a sum with a transient cell is replayed
    /// alone, drawing per access.
    fn replay_psums(
        &self,
        map: &StoredPsums,
        mut partials: impl FnMut(usize, &mut [i32]),
        out: &mut PsumCorrections,
    ) {
        out.deltas.clear();
        out.saturated = 0;
        if map.folds < 2 || map.outputs == 0 {
            return;
        }
        let plan = self.psum_plan(map);
        let cells = &self.map.cells[plan.buffer];
        let key = access_key(self.seed ^ PSUM_SEED_SALT, map.layer, map.image);
        let f = map.folds;
        let mut part = vec![0i32; f];
        let mut flipped = 0u64;
        let mut batch = LaneBatch::new(f);
        for g in &plan.groups {
            let e = g.output as usize;
            partials(e, &mut part);
            let Some(read) = g.persistent else {
                let clean: i64 = part.iter().map(|&v| v as i64).sum();
                let group = &plan.hits[g.start as usize..g.end as usize];
                let sum =
                    replay_with_draws(group, cells, key, &part, &mut out.saturated, &mut flipped);
                out.deltas.push((e, sum as i64 - clean));
                continue;
            };
            if batch.push(e, read, &part) {
                batch.flush(out, &mut flipped);
            }
        }
        batch.flush(out, &mut flipped);
        let read = map.outputs as u64 * PSUM_WORD_BITS * (map.folds as u64 - 1);
        self.bits_read.fetch_add(read, Ordering::Relaxed);
        if flipped > 0 {
            self.bits_flipped.fetch_add(flipped, Ordering::Relaxed);
        }
    }
}

impl ActivationFaults {
    /// The table form with unit output stride: every block of [`replay::LANES`] consecutive outputs holding a
    /// persistent-only sum is replayed straight from the table (one vector load per fold; the block's other
    /// lanes read as stored and are ignored), then the sums with a transient cell one by one. Same corrections as
    /// [`ActivationFaults::replay_psums`] (in another order) and the same counts.
    fn replay_psums_dense(&self, map: &StoredPsums, table: &FoldTable, out: &mut PsumCorrections) {
        use replay::LANES;
        out.deltas.clear();
        out.saturated = 0;
        if map.folds < 2 || map.outputs == 0 {
            return;
        }
        let plan = self.psum_plan(map);
        let f = map.folds;
        let mut flipped = 0u64;
        let mut padded: Vec<i32> = Vec::new();
        let mut rs = [replay::BlockOut::EMPTY; replay::BLOCKS];
        let mut push = |b: &PsumBlock, r: &replay::BlockOut, out: &mut PsumCorrections| {
            let first = b.first as usize;
            let mut lanes = b.lanes;
            while lanes != 0 {
                let j = lanes.trailing_zeros() as usize;
                lanes &= lanes - 1;
                out.deltas.push((first + j, r.sums[j] as i64 - r.clean[j]));
                out.saturated += r.saturated[j] as u64;
            }
            flipped += r.flipped;
        };
        let fs = table.fold_stride;
        // A block read straight from the table: all its lanes inside it.
        let direct = |b: &PsumBlock| {
            let count = LANES.min(map.outputs - b.first as usize);
            block_in_table(table, table.offset + b.first as usize, count, f)
        };
        let mut i = 0;
        while i < plan.blocks.len() {
            let group = &plan.blocks[i..(i + replay::BLOCKS).min(plan.blocks.len())];
            if group.len() == replay::BLOCKS && group.iter().all(direct) {
                // BLOCKS blocks side by side (their chains overlap), results in block order.
                let parts =
                    std::array::from_fn(|k| &table.data[table.offset + group[k].first as usize..]);
                let masks = std::array::from_fn(|k| &group[k].masks);
                replay::replay_blocks(parts, fs, f, masks, &mut rs);
                for (b, r) in group.iter().zip(&rs) {
                    push(b, r, out);
                }
                i += replay::BLOCKS;
                continue;
            }
            let b = &plan.blocks[i];
            let first = b.first as usize;
            let count = LANES.min(map.outputs - first);
            let r = replay_lanes(table, table.offset + first, count, f, &b.masks, &mut padded);
            push(b, &r, out);
            i += 1;
        }
        let mut part = vec![0i32; f];
        self.replay_transients(&plan, map, table, &mut part, out, &mut flipped);
        let read = map.outputs as u64 * PSUM_WORD_BITS * (map.folds as u64 - 1);
        self.bits_read.fetch_add(read, Ordering::Relaxed);
        if flipped > 0 {
            self.bits_flipped.fetch_add(flipped, Ordering::Relaxed);
        }
    }
}

/// Whether the [`replay::LANES`] lanes from `start` of `table` (`count` of them real) can be replayed straight
/// from it: all lanes real and every fold's lanes inside the table.
fn block_in_table(table: &FoldTable, start: usize, count: usize, folds: usize) -> bool {
    use replay::LANES;
    let fs = table.fold_stride;
    count == LANES && fs >= LANES && start + (folds - 1) * fs + LANES <= table.data.len()
}

/// Replays [`replay::LANES`] lanes of fold sums starting at `start` of `table` (lane `j` = position `start + j`,
/// fold `fi` at `+ fi · fold_stride`), `count` of them real: straight from the table when the whole block lies
/// inside it, else from a zero-padded copy in `padded` (the extra lanes are neutral and ignored by the caller).
fn replay_lanes(
    table: &FoldTable,
    start: usize,
    count: usize,
    folds: usize,
    masks: &replay::LaneMasks,
    padded: &mut Vec<i32>,
) -> replay::BlockOut {
    use replay::LANES;
    let fs = table.fold_stride;
    if block_in_table(table, start, count, folds) {
        return replay::replay_block(&table.data[start..], fs, folds, masks);
    }
    padded.clear();
    padded.resize(folds * LANES, 0);
    for j in 0..count {
        for fi in 0..folds {
            padded[fi * LANES + j] = table.data[start + fi * fs + j];
        }
    }
    replay::replay_block(padded, LANES, folds, masks)
}

impl ActivationFaults {
    /// The sums of `plan` with a transient cell, one by one with their per-access draws (keyed by `map`'s layer
    /// and image), fold sums from `table`: their corrections go to `out`, the wrong bits to `flipped`. `part`
    /// is scratch of `map.folds` values.
    fn replay_transients(
        &self,
        plan: &PsumPlan,
        map: &StoredPsums,
        table: &FoldTable,
        part: &mut [i32],
        out: &mut PsumCorrections,
        flipped: &mut u64,
    ) {
        let cells = &self.map.cells[plan.buffer];
        let key = access_key(self.seed ^ PSUM_SEED_SALT, map.layer, map.image);
        for &i in &plan.transient {
            let g = &plan.groups[i as usize];
            let e = g.output as usize;
            table.fill(e, part);
            let clean: i64 = part.iter().map(|&v| v as i64).sum();
            let group = &plan.hits[g.start as usize..g.end as usize];
            let sum = replay_with_draws(group, cells, key, part, &mut out.saturated, flipped);
            out.deltas.push((e, sum as i64 - clean));
        }
    }

    /// [`ActivationStore::corrupt_psums_examples`] with the examples contiguous in the table (`example_stride` 1,
    /// as a linear step's `[fold][output][example]`): each persistent-only sum is replayed for
    /// [`replay::LANES`] examples side by side (its read is the same for every example), the sums with a
    /// transient cell per example. Same corrections (in another order) and counts as per-example calls.
    fn replay_psums_examples(
        &self,
        maps: &[StoredPsums],
        table: &FoldTable,
        outs: &mut [PsumCorrections],
    ) {
        use replay::LANES;
        for out in outs.iter_mut() {
            out.deltas.clear();
            out.saturated = 0;
        }
        let Some(map) = maps.first() else {
            return;
        };
        if map.folds < 2 || map.outputs == 0 {
            return;
        }
        let (n, f) = (maps.len(), map.folds);
        let plan = self.psum_plan(map);
        let mut flipped = 0u64;
        let mut padded: Vec<i32> = Vec::new();
        for g in &plan.groups {
            let Some(read) = g.persistent else {
                continue;
            };
            let e = g.output as usize;
            let base = table.offset + e * table.output_stride;
            for i0 in (0..n).step_by(LANES) {
                let count = LANES.min(n - i0);
                let mut masks = replay::LaneMasks::default();
                masks.and[..count].fill(read.and);
                masks.or[..count].fill(read.or);
                masks.xor[..count].fill(read.xor);
                let r = replay_lanes(table, base + i0, count, f, &masks, &mut padded);
                for j in 0..count {
                    let out = &mut outs[i0 + j];
                    out.deltas.push((e, r.sums[j] as i64 - r.clean[j]));
                    out.saturated += r.saturated[j] as u64;
                }
                flipped += r.flipped;
            }
        }
        let mut part = vec![0i32; f];
        for (i, (m, out)) in maps.iter().zip(outs.iter_mut()).enumerate() {
            debug_assert_eq!((m.layer, m.outputs, m.folds), (map.layer, map.outputs, f));
            let t = FoldTable {
                offset: table.offset + i,
                ..*table
            };
            self.replay_transients(&plan, m, &t, &mut part, out, &mut flipped);
        }
        let read = map.outputs as u64 * PSUM_WORD_BITS * (f as u64 - 1) * n as u64;
        self.bits_read.fetch_add(read, Ordering::Relaxed);
        if flipped > 0 {
            self.bits_flipped.fetch_add(flipped, Ordering::Relaxed);
        }
    }
}

impl ActivationStore for ActivationFaults {
    fn read_back(&self, map: &StoredMap, codes: &mut [u8]) {
        let b = ActBuffer::of_layer(map.layer);
        let cap = self.map.mapping.capacity(b);
        let n = codes.len() as u64;
        let reads = &self.code_reads[b.index()];
        let mut flipped = 0u64;
        let end = reads.bytes.partition_point(|r| r.slot < n.min(cap));
        for r in &reads.bytes[..end] {
            let mut e = r.slot;
            while e < n {
                let code = &mut codes[e as usize];
                let read = ((*code & r.and) | r.or) ^ r.xor;
                flipped += (read ^ *code).count_ones() as u64;
                *code = read;
                e += cap;
            }
        }
        let cells = &reads.transient;
        let end = cells.partition_point(|c| c.slot < n.min(cap));
        let key = access_key(self.seed, map.layer, map.image);
        for c in &cells[..end] {
            let (mut e, mut tile) = (c.slot, 0u64);
            while e < n {
                // Branch-free: the failing read, whether this access fails, the random flip on top.
                let code = &mut codes[e as usize];
                let stored = (*code >> c.bit) & 1;
                let fails =
                    c.faulty & (c.always | (access_draw(key, c.cell, tile) < c.threshold) as u8);
                let failing_read = (stored & c.keep) ^ c.set;
                let read = (stored ^ (fails & (stored ^ failing_read))) ^ c.flip;
                let diff = read ^ stored;
                *code ^= diff << c.bit;
                flipped += diff as u64;
                e += cap;
                tile += 1;
            }
        }
        self.bits_read.fetch_add(n * CODE_BITS, Ordering::Relaxed);
        if flipped > 0 {
            self.bits_flipped.fetch_add(flipped, Ordering::Relaxed);
        }
    }

    fn psum_rows(&self) -> Option<usize> {
        self.psum_rows
    }

    fn psum_cells(&self, map: &StoredPsums) -> u64 {
        if map.folds < 2 {
            return 0;
        }
        self.psum_plan(map).places
    }

    /// Partial sums of the step whose first layer is `L` live in buffer `(L + 1) mod 2` (the one its input is
    /// not read from): sum `e` is bytes `4e .. 4e + 3` of that buffer's region, tiled by its capacity like a code
    /// map (byte `y` in tile `y div cap`, slot `y mod cap`), byte `j` holding bits `8j .. 8j + 7`. The store
    /// after fold `f` is read by fold `f + 1` through the cells: failing reads as for codes, transient draws
    /// keyed by `(seed ^ PSUM_SEED_SALT, layer, image)` and fold `f`. Each addition is int32, saturating.
    fn corrupt_psums(
        &self,
        map: &StoredPsums,
        partials: &mut dyn FnMut(usize, &mut [i32]),
        out: &mut PsumCorrections,
    ) {
        self.replay_psums(map, partials, out);
    }

    fn corrupt_psums_table(&self, map: &StoredPsums, table: &FoldTable, out: &mut PsumCorrections) {
        if table.output_stride == 1 {
            self.replay_psums_dense(map, table, out);
        } else {
            self.replay_psums(map, |e, p| table.fill(e, p), out);
        }
    }

    fn corrupt_psums_examples(
        &self,
        maps: &[StoredPsums],
        table: &FoldTable,
        example_stride: usize,
        outs: &mut [PsumCorrections],
    ) {
        let same = maps.iter().all(|m| {
            let m0 = &maps[0];
            (m.layer, m.outputs, m.folds) == (m0.layer, m0.outputs, m0.folds)
        });
        if example_stride == 1 && same && outs.len() == maps.len() {
            self.replay_psums_examples(maps, table, outs);
            return;
        }
        crate::engine::act_store::corrupt_psums_each_example(
            self,
            maps,
            table,
            example_stride,
            outs,
        );
    }
}

/// Refuses a scaled activation rail without the integer datapath: `rails` are the scaled rails (config
/// `voltage.scaled_rails` or `--rails`), `int8` whether the datapath is `int8`. The message is one line.
pub fn check_rails_datapath(rails: &[Rail], int8: bool) -> Result<(), String> {
    if !int8 && rails.contains(&Rail::ActivationSram) {
        return Err("activation_sram is a scaled rail (voltage.scaled_rails or --rails) with the float \
                    datapath: float activations have no stored bits to fail; allowed --datapath int8, or \
                    scaled rails without activation_sram"
            .into());
    }
    Ok(())
}

/// Refuses `--act-ber P > 0` without the integer datapath (float activations have no stored bits).
pub fn check_act_ber_datapath(act_ber: f64, int8: bool) -> Result<(), String> {
    if !int8 && act_ber > 0.0 {
        return Err(format!(
            "--act-ber {act_ber} with the float datapath: float activations have no stored bits to fail; \
             allowed --datapath int8, or --act-ber 0"
        ));
    }
    Ok(())
}

mod replay;

#[cfg(test)]
mod tests;
