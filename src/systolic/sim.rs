//! Closed-form cycle and access model of an `R × C` systolic array (formulas in docs/systolic.md).
//!
//! Each dataflow keeps one operand in the PEs and maps two GEMM dimensions onto the array (`S_R` rows, `S_C`
//! columns), streaming the third (`T`) through it, as in SCALE-Sim (Samajdar et al.):
//!
//! | dataflow | S_R | S_C | T | stationary |
//! |---|---|---|---|---|
//! | output-stationary `os` | M | N | K | partial sums |
//! | weight-stationary `ws` | K | N | M | weights |
//! | input-stationary `is` | K | M | N | inputs |
//!
//! The work is cut into `⌈S_R/R⌉ · ⌈S_C/C⌉` folds run one after another. Per fold (fill + stream + drain):
//! `ws`/`is`: `2R + C + T − 2` cycles (R cycles to load the stationary operand, `R + C − 2` skew, `T` streaming);
//! `os`: `R + C + T − 2`. These are SCALE-Sim v2's per-fold demand-matrix lengths, so compute cycles agree with
//! it exactly; a partly used fold costs as much as a full one (its unused rows/columns idle).
use super::layer::{GemmDims, Layer};
use serde::{Deserialize, Serialize};

/// Bits of one stored partial sum: the int32 accumulator word. Partial sums between row folds are written to
/// and read from the OFMAP buffer (and DRAM, when they do not fit) at this width, whatever `act_bits` is
/// (docs/systolic.md, "Buffers, DRAM and stalls"; their faults: docs/activation-faults.md#partial-sums).
pub const PSUM_BITS: u32 = 32;

/// Which operand stays in the PEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataflow {
    /// Weight-stationary.
    Ws,
    /// Output-stationary.
    Os,
    /// Input-stationary.
    Is,
}

impl Dataflow {
    pub const ALL: [Dataflow; 3] = [Dataflow::Ws, Dataflow::Os, Dataflow::Is];

    pub fn as_str(self) -> &'static str {
        match self {
            Dataflow::Ws => "ws",
            Dataflow::Os => "os",
            Dataflow::Is => "is",
        }
    }
}

impl std::fmt::Display for Dataflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Dataflow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ws" => Ok(Dataflow::Ws),
            "os" => Ok(Dataflow::Os),
            "is" => Ok(Dataflow::Is),
            other => Err(format!("unknown dataflow `{other}` (allowed: ws, os, is)")),
        }
    }
}

/// Largest accepted array side (rows or columns).
pub const MAX_ARRAY_SIDE: u64 = 1 << 16;

/// Errors from the simulator's parameter constructors. Messages name the parameter and the allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("{name} = {value} is out of range (allowed {allowed})")]
    OutOfRange {
        name: &'static str,
        value: String,
        allowed: &'static str,
    },
    /// A hardware config section failed its own validation (the message names the key and range).
    #[error("{0}")]
    Config(String),
}

fn out_of_range(name: &'static str, value: impl ToString, allowed: &'static str) -> SimError {
    SimError::OutOfRange {
        name,
        value: value.to_string(),
        allowed,
    }
}

/// The PE array: `rows × cols` MAC units, a dataflow and a clock. Fields are validated by [`ArrayParams::new`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ArrayParams {
    rows: u64,
    cols: u64,
    dataflow: Dataflow,
    clock_mhz: f64,
}

impl ArrayParams {
    /// `rows`, `cols` in `1..=65536`; `clock_mhz` finite and in `(0, 100000]`.
    pub fn new(rows: u64, cols: u64, dataflow: Dataflow, clock_mhz: f64) -> Result<Self, SimError> {
        if !(1..=MAX_ARRAY_SIDE).contains(&rows) {
            return Err(out_of_range("array rows", rows, "1..=65536"));
        }
        if !(1..=MAX_ARRAY_SIDE).contains(&cols) {
            return Err(out_of_range("array cols", cols, "1..=65536"));
        }
        if !(clock_mhz.is_finite() && clock_mhz > 0.0 && clock_mhz <= 1e5) {
            return Err(out_of_range("clock_mhz", clock_mhz, "(0, 100000]"));
        }
        Ok(ArrayParams {
            rows,
            cols,
            dataflow,
            clock_mhz,
        })
    }
    pub fn rows(&self) -> u64 {
        self.rows
    }
    pub fn cols(&self) -> u64 {
        self.cols
    }
    pub fn dataflow(&self) -> Dataflow {
        self.dataflow
    }
    pub fn clock_mhz(&self) -> f64 {
        self.clock_mhz
    }
    /// The same array with another dataflow.
    pub fn with_dataflow(self, dataflow: Dataflow) -> Self {
        ArrayParams { dataflow, ..self }
    }
}

/// How weights sit in the banked weight SRAM: `banks × arrays_per_bank` arrays of `words_per_array` words of
/// `word_bits` bits, filled with weight slots of `t` bits as docs/hw-config.md describes (`t = m` for dense
/// packing, `8·⌈m/8⌉` for byte packing; `⌊word_bits/t⌋` slots per word, a weight never straddles two words; slot
/// `s` is in word `(s div k) mod W`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WeightLayout {
    word_bits: u32,
    words_per_array: u64,
    banks: u64,
    arrays_per_bank: u64,
    interleaved: bool,
    offset_bits: u64,
    packing: crate::config::Packing,
}

impl WeightLayout {
    /// `word_bits` in `8..=4096`; `words_per_array`, `banks`, `arrays_per_bank` ≥ 1 with at most 2^40 words in
    /// all; `interleaved` selects the `bank_interleaved` placement (word `w` in bank `w mod banks`).
    pub fn new(
        word_bits: u32,
        words_per_array: u64,
        banks: u64,
        arrays_per_bank: u64,
        interleaved: bool,
        offset_bits: u64,
    ) -> Result<Self, SimError> {
        if !(8..=4096).contains(&word_bits) {
            return Err(out_of_range("weight word_bits", word_bits, "8..=4096"));
        }
        let total = words_per_array
            .checked_mul(banks)
            .and_then(|x| x.checked_mul(arrays_per_bank));
        if words_per_array == 0
            || banks == 0
            || arrays_per_bank == 0
            || total.is_none_or(|t| t > 1 << 40)
        {
            return Err(out_of_range(
                "weight SRAM words (words_per_array · banks · arrays_per_bank)",
                format!("{words_per_array}·{banks}·{arrays_per_bank}"),
                "each ≥ 1, at most 2^40 in all",
            ));
        }
        Ok(WeightLayout {
            word_bits,
            words_per_array,
            banks,
            arrays_per_bank,
            interleaved,
            offset_bits,
            packing: crate::config::Packing::Dense,
        })
    }

    /// The same layout with another packing of the codes into words (dense by default).
    pub fn with_packing(self, packing: crate::config::Packing) -> Self {
        WeightLayout { packing, ..self }
    }

    pub fn packing(&self) -> crate::config::Packing {
        self.packing
    }

    /// The layout of a hardware config's `[weight_sram]` section.
    pub fn from_config(w: &crate::config::WeightSramConfig) -> Result<Self, SimError> {
        let words_per_array = w.rows as u64 * w.words_per_row();
        Self::new(
            w.word_bits,
            words_per_array,
            w.banks as u64,
            w.arrays_per_bank as u64,
            w.mapping == crate::config::Mapping::BankInterleaved,
            w.offset_bits,
        )
        .map(|l| l.with_packing(w.packing))
    }

    pub fn word_bits(&self) -> u32 {
        self.word_bits
    }
    pub fn words_per_array(&self) -> u64 {
        self.words_per_array
    }
    /// Arrays in the memory (`banks · arrays_per_bank`).
    pub fn arrays(&self) -> u64 {
        self.banks * self.arrays_per_bank
    }
    /// Words in the memory (`W`).
    pub fn total_words(&self) -> u64 {
        self.arrays() * self.words_per_array
    }
    /// Bits one `bits`-bit weight occupies: `bits` (dense) or `8·⌈bits/8⌉` (byte packing).
    pub fn slot_bits(&self, bits: u32) -> u32 {
        self.packing.slot_bits(bits.max(1))
    }
    /// Weight slots per word for `bits`-bit weights: `⌊word_bits / t⌋` (≥ 1 since `t ≤ 32 < 8·…`).
    pub fn slots_per_word(&self, bits: u32) -> u64 {
        (self.word_bits / self.slot_bits(bits)).max(1) as u64
    }
    /// First slot used by the weights: `offset_bits / t`.
    pub fn first_slot(&self, bits: u32) -> u64 {
        self.offset_bits / self.slot_bits(bits) as u64
    }

    /// Array holding word `w` (`w` taken modulo the memory size, as the fault mapping wraps).
    pub fn array_of_word(&self, w: u64) -> u64 {
        let w = w % self.total_words();
        if self.interleaved {
            let bank = w % self.banks;
            bank * self.arrays_per_bank + (w / self.banks) / self.words_per_array
        } else {
            w / self.words_per_array
        }
    }

    /// Adds `passes` reads of every word in `[start, end)` (unwrapped word indices) to `per_array`, in time
    /// proportional to the number of arrays touched (not the number of words).
    fn add_reads(&self, start: u64, end: u64, passes: u64, per_array: &mut [u64]) {
        let total = self.total_words();
        // Whole wraps of the memory read every word of every array once.
        let full = (end - start) / total;
        if full > 0 {
            for n in per_array.iter_mut() {
                *n = n.saturating_add(full * self.words_per_array * passes);
            }
        }
        let mut w = start + full * total;
        while w < end {
            // Stay within one wrap of the memory.
            let wrap_end = (w / total + 1) * total;
            let chunk_end = end.min(wrap_end);
            let (a, b) = (w % total, chunk_end - (w / total) * total);
            if self.interleaved {
                // Bank j holds the words ≡ j (mod banks); inside a bank they are contiguous.
                for bank in 0..self.banks {
                    let lo = if a <= bank {
                        0
                    } else {
                        (a - bank).div_ceil(self.banks)
                    };
                    let hi = if b <= bank {
                        0
                    } else {
                        (b - bank).div_ceil(self.banks)
                    };
                    let mut i = lo;
                    while i < hi {
                        let arr = i / self.words_per_array;
                        let stop = ((arr + 1) * self.words_per_array).min(hi);
                        per_array[(bank * self.arrays_per_bank + arr) as usize] +=
                            (stop - i) * passes;
                        i = stop;
                    }
                }
            } else {
                let mut i = a;
                while i < b {
                    let arr = i / self.words_per_array;
                    let stop = ((arr + 1) * self.words_per_array).min(b);
                    per_array[arr as usize] += (stop - i) * passes;
                    i = stop;
                }
            }
            w = chunk_end;
        }
    }
}

/// On-chip buffers, the weight SRAM and the DRAM link (model in docs/systolic.md, "Buffers, DRAM and stalls").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BufferParams {
    ifmap_bytes: u64,
    ofmap_bytes: u64,
    act_bits: u32,
    dram_bytes_per_cycle: f64,
    weights: WeightLayout,
}

impl BufferParams {
    /// * `ifmap_bytes`, `ofmap_bytes`: activation buffer capacities (0 = everything goes through DRAM);
    /// * `act_bits`: activation / partial-sum element width in the activation buffers, `1..=32`;
    /// * `dram_bytes_per_cycle`: DRAM bandwidth, finite and `> 0`;
    /// * `weights`: the banked weight SRAM.
    pub fn new(
        ifmap_bytes: u64,
        ofmap_bytes: u64,
        act_bits: u32,
        dram_bytes_per_cycle: f64,
        weights: WeightLayout,
    ) -> Result<Self, SimError> {
        if !(1..=32).contains(&act_bits) {
            return Err(out_of_range("act_bits", act_bits, "1..=32"));
        }
        if !(dram_bytes_per_cycle.is_finite() && dram_bytes_per_cycle > 0.0) {
            return Err(out_of_range(
                "dram_bytes_per_cycle",
                dram_bytes_per_cycle,
                "> 0",
            ));
        }
        Ok(BufferParams {
            ifmap_bytes,
            ofmap_bytes,
            act_bits,
            dram_bytes_per_cycle,
            weights,
        })
    }

    /// The buffers of a hardware config: `[activation_sram]` capacities, `[weight_sram]` layout and
    /// `[systolic] act_bits`, `dram_bytes_per_cycle`.
    pub fn from_hw(hw: &crate::config::HwConfig) -> Result<Self, SimError> {
        hw.systolic.validate().map_err(SimError::Config)?;
        Self::new(
            hw.activation_sram.ifmap_kib as u64 * 1024,
            hw.activation_sram.ofmap_kib as u64 * 1024,
            hw.systolic.act_bits,
            hw.systolic.dram_bytes_per_cycle,
            WeightLayout::from_config(&hw.weight_sram)?,
        )
    }

    pub fn weights(&self) -> &WeightLayout {
        &self.weights
    }
    pub fn act_bits(&self) -> u32 {
        self.act_bits
    }
}

/// Where a layer's activations come from and go to, and where its weights sit in the weight SRAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerIo {
    /// The input feature map arrives from DRAM (first layer, or the producer spilled it).
    pub input_from_dram: bool,
    /// The output feature map must end up in DRAM (last layer, or the consumer's buffer is too small).
    pub output_to_dram: bool,
    /// The weights stay in the weight SRAM between inferences; otherwise they are reloaded from DRAM.
    pub weights_resident: bool,
    /// Slot (weight index in the weight memory, before wrapping) of the layer's first weight.
    pub weight_base_slot: u64,
}

/// Weight-SRAM word reads that hit one array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ArrayReads {
    /// Array index (bank-major: array `a` is in bank `a div arrays_per_bank`, as in docs/hw-config.md).
    pub array: u64,
    pub word_reads: u64,
}

/// Per-layer results. Access counts are per inference (batch as given by the layer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerStats {
    pub layer: String,
    pub dataflow: Dataflow,
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub macs: u64,
    /// Folds along the array rows / columns.
    pub row_folds: u64,
    pub col_folds: u64,
    /// Cycles of the array with operands always available (fill + stream + drain of every fold).
    pub compute_cycles: u64,
    /// Extra cycles waiting for DRAM (double-buffered; see docs/systolic.md).
    pub stall_cycles: u64,
    /// `compute_cycles + stall_cycles`.
    pub total_cycles: u64,
    /// `macs / (compute_cycles · R · C) · 100`.
    pub utilization_pct: f64,
    /// Mean fraction of PEs mapped per fold, `S_R·S_C / (folds·R·C) · 100`.
    pub mapping_efficiency_pct: f64,
    /// Weight elements read from the weight SRAM (SCALE-Sim's "filter SRAM reads").
    pub weight_sram_reads: u64,
    /// The same reads in weight-SRAM words: `weight_words · weight_passes`.
    pub weight_sram_word_reads: u64,
    /// Weight-SRAM words written per inference (reloads when the model does not fit; 0 when resident).
    pub weight_sram_word_writes: u64,
    /// Input elements read from the IFMAP buffer (im2col reads, as SCALE-Sim counts them).
    pub input_sram_reads: u64,
    /// Output elements (final or partial sums) written to the OFMAP buffer (SCALE-Sim's count); the partial
    /// sums among them are `output_sram_reads` (every one is read back once), the rest the final outputs.
    pub output_sram_writes: u64,
    /// Partial sums read back for accumulation across row folds (SCALE-Sim does not count these).
    pub output_sram_reads: u64,
    pub dram_reads_bytes: u64,
    pub dram_writes_bytes: u64,
    /// Weights of this layer (`K·N`), their width, and the weight-SRAM words they touch.
    pub weights: u64,
    pub weight_bits: u32,
    pub weight_words: u64,
    /// Times the whole weight matrix is read per inference (1 for ws, ⌈M/R⌉ for os, ⌈M/C⌉ for is).
    pub weight_passes: u64,
    /// Whether the weights stay in the weight SRAM between inferences.
    pub weights_resident: bool,
    /// Weight-SRAM word reads per array (arrays with no reads omitted).
    pub weight_array_reads: Vec<ArrayReads>,
}

/// Network totals plus the per-layer rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkStats {
    pub dataflow: Dataflow,
    pub rows: u64,
    pub cols: u64,
    pub clock_mhz: f64,
    pub weight_bits: u32,
    pub macs: u64,
    pub compute_cycles: u64,
    pub stall_cycles: u64,
    pub total_cycles: u64,
    /// `total_cycles / clock`.
    pub latency_s: f64,
    /// `macs / (compute_cycles · R · C) · 100` over the whole network.
    pub utilization_pct: f64,
    pub weight_sram_reads: u64,
    pub weight_sram_word_reads: u64,
    pub weight_sram_word_writes: u64,
    pub input_sram_reads: u64,
    pub output_sram_writes: u64,
    pub output_sram_reads: u64,
    pub dram_reads_bytes: u64,
    pub dram_writes_bytes: u64,
    /// Weight-SRAM words touched by the layers' weights (summed over layers).
    pub weight_words: u64,
    /// Arrays holding at least one of the layers' weights (the leaking ones; unused arrays assumed power-gated).
    pub weight_arrays_used: u64,
    /// Word reads per weight-SRAM array (index = array, bank-major), summed over layers.
    pub per_array_weight_word_reads: Vec<u64>,
    /// Cycles a pipelined ECC decoder on the weight path adds (in `total_cycles`; 0 without ECC), see
    /// [`NetworkStats::with_decoder_latency`].
    pub ecc_decoder_cycles: u64,
    pub layers: Vec<LayerStats>,
}

impl NetworkStats {
    /// The network with a pipelined ECC decoder of `cycles` stages between the weight SRAM and the array
    /// (docs/ecc.md, "Costs"): each fold's weight fill waits `cycles` more for its first decoded word, so the
    /// network takes `cycles · Σ_layers row_folds · col_folds` more cycles (in `total_cycles`, `latency_s` and
    /// `ecc_decoder_cycles`; the per-layer rows and the utilization over compute cycles are unchanged).
    pub fn with_decoder_latency(mut self, cycles: u64) -> NetworkStats {
        let folds: u64 = self
            .layers
            .iter()
            .map(|l| l.row_folds.saturating_mul(l.col_folds))
            .fold(0u64, u64::saturating_add);
        let extra = folds.saturating_mul(cycles);
        self.ecc_decoder_cycles = self.ecc_decoder_cycles.saturating_add(extra);
        self.total_cycles = self.total_cycles.saturating_add(extra);
        self.latency_s = self.total_cycles as f64 / (self.clock_mhz * 1e6);
        self
    }
}

/// Spatial rows, spatial columns and temporal extent of `d` under `dataflow` (table in the module docs).
pub fn spatio_temporal(dataflow: Dataflow, d: GemmDims) -> (u64, u64, u64) {
    match dataflow {
        Dataflow::Os => (d.m, d.n, d.k),
        Dataflow::Ws => (d.k, d.n, d.m),
        Dataflow::Is => (d.k, d.m, d.n),
    }
}

/// Cycles of one fold: `2R + C + T − 2` (ws, is) or `R + C + T − 2` (os).
pub fn fold_cycles(dataflow: Dataflow, rows: u64, cols: u64, t: u64) -> u64 {
    match dataflow {
        Dataflow::Ws | Dataflow::Is => 2 * rows + cols + t - 2,
        Dataflow::Os => rows + cols + t - 2,
    }
}

fn bits_to_bytes(elems: u64, bits: u32) -> u64 {
    // Layer validation keeps elems far below 2^58, so the product fits; u128 keeps it exact regardless.
    (elems as u128 * bits as u128).div_ceil(8) as u64
}

fn check_weight_bits(weight_bits: u32) -> Result<(), SimError> {
    if (1..=32).contains(&weight_bits) {
        Ok(())
    } else {
        Err(out_of_range("weight_bits", weight_bits, "1..=32"))
    }
}

/// Simulates one layer on its own: input read from DRAM, output written to DRAM, weights placed from the
/// configured offset and resident when they fit in the weight SRAM. `weight_bits` in `1..=32` (4 or 8 in
/// practice).
pub fn simulate_layer(
    layer: &Layer,
    array: &ArrayParams,
    buffers: &BufferParams,
    weight_bits: u32,
) -> Result<LayerStats, SimError> {
    check_weight_bits(weight_bits)?;
    let w = &buffers.weights;
    let base = layer
        .weight_base_slot
        .unwrap_or_else(|| w.first_slot(weight_bits));
    let k = w.slots_per_word(weight_bits);
    let words = base.saturating_add(layer.weight_count()).div_ceil(k) - base / k;
    let io = LayerIo {
        input_from_dram: true,
        output_to_dram: true,
        weights_resident: words <= w.total_words(),
        weight_base_slot: base,
    };
    Ok(simulate_layer_io(layer, array, buffers, weight_bits, io))
}

/// Simulates one layer with explicit I/O placement (used by [`simulate_network`]). `weight_bits` must be in
/// `1..=32` (checked by the public entry points; other values are clamped into that range).
pub fn simulate_layer_io(
    layer: &Layer,
    array: &ArrayParams,
    buffers: &BufferParams,
    weight_bits: u32,
    io: LayerIo,
) -> LayerStats {
    let weight_bits = weight_bits.clamp(1, 32);
    let (r, c) = (array.rows, array.cols);
    let d = layer.gemm_dims();
    let (sr, sc, t) = spatio_temporal(array.dataflow, d);
    let row_folds = sr.div_ceil(r);
    let col_folds = sc.div_ceil(c);
    let folds = row_folds * col_folds;
    let compute_cycles = folds * fold_cycles(array.dataflow, r, c, t);
    let macs = layer.macs();
    let pes = (r * c) as f64;
    let utilization_pct = macs as f64 / (compute_cycles as f64 * pes) * 100.0;
    let mapping_efficiency_pct = (sr * sc) as f64 / (folds as f64 * pes) * 100.0;

    // How often each operand is streamed in full (see docs/systolic.md, "SRAM accesses").
    let (weight_passes, ifmap_passes, psum_passes) = match array.dataflow {
        Dataflow::Ws => (1, col_folds, row_folds),
        Dataflow::Os => (row_folds, col_folds, 1),
        Dataflow::Is => (col_folds, 1, row_folds),
    };
    let weights = d.k * d.n;
    let weight_sram_reads = weights * weight_passes;
    let wl = &buffers.weights;
    let slots = wl.slots_per_word(weight_bits);
    let first_word = io.weight_base_slot / slots;
    let end_word = io.weight_base_slot.saturating_add(weights).div_ceil(slots);
    let weight_words = end_word - first_word;
    let weight_sram_word_reads = weight_words * weight_passes;
    let input_sram_reads = d.m * d.k * ifmap_passes;
    let output_sram_writes = d.m * d.n * psum_passes;
    let output_sram_reads = d.m * d.n * (psum_passes - 1);

    // DRAM traffic. The IFMAP buffer holds the padded map (what the array streams), but DRAM carries only the
    // unpadded one: the zero padding is produced on chip (docs/energy.md, "DRAM traffic").
    let ifmap_bytes = bits_to_bytes(layer.ifmap_elems(), buffers.act_bits);
    let ifmap_dram_bytes = bits_to_bytes(layer.dram_ifmap_elems(), buffers.act_bits);
    let ofmap_bytes = bits_to_bytes(layer.ofmap_elems(), buffers.act_bits);
    // Weights travel from DRAM in their storage format (byte packing: one byte per code).
    let weight_bytes = bits_to_bytes(weights, wl.slot_bits(weight_bits));
    let dram_ifmap = if ifmap_bytes > buffers.ifmap_bytes {
        ifmap_dram_bytes * ifmap_passes
    } else if io.input_from_dram {
        ifmap_dram_bytes
    } else {
        0
    };
    // The final output goes to DRAM when it does not fit (or is the network's output); the int32 partial sums
    // between row folds spill when they do not fit the OFMAP buffer: `P − 1` writes and reads of them.
    let psum_bytes = bits_to_bytes(layer.ofmap_elems(), PSUM_BITS);
    let final_w = if ofmap_bytes > buffers.ofmap_bytes || io.output_to_dram {
        ofmap_bytes
    } else {
        0
    };
    let psum_spill = if psum_passes > 1 && psum_bytes > buffers.ofmap_bytes {
        psum_bytes * (psum_passes - 1)
    } else {
        0
    };
    let (dram_ofmap_w, dram_ofmap_r) = (final_w + psum_spill, psum_spill);
    // Weights: resident -> no traffic; else reloaded once per inference, or once per pass when the layer alone
    // is larger than the whole weight SRAM.
    let (dram_weights, weight_sram_word_writes) = if io.weights_resident {
        (0, 0)
    } else if weight_words <= wl.total_words() {
        (weight_bytes, weight_words)
    } else {
        (weight_bytes * weight_passes, weight_words * weight_passes)
    };
    let dram_reads_bytes = dram_ifmap + dram_ofmap_r + dram_weights;
    let dram_writes_bytes = dram_ofmap_w;
    let dram_cycles =
        ((dram_reads_bytes + dram_writes_bytes) as f64 / buffers.dram_bytes_per_cycle).ceil();
    let stall_cycles = (dram_cycles - compute_cycles as f64).max(0.0) as u64;

    let mut per_array = vec![0u64; wl.arrays() as usize];
    wl.add_reads(first_word, end_word, weight_passes, &mut per_array);
    let weight_array_reads = per_array
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(a, &n)| ArrayReads {
            array: a as u64,
            word_reads: n,
        })
        .collect();

    LayerStats {
        layer: layer.name.clone(),
        dataflow: array.dataflow,
        m: d.m,
        n: d.n,
        k: d.k,
        macs,
        row_folds,
        col_folds,
        compute_cycles,
        stall_cycles,
        total_cycles: compute_cycles + stall_cycles,
        utilization_pct,
        mapping_efficiency_pct,
        weight_sram_reads,
        weight_sram_word_reads,
        weight_sram_word_writes,
        input_sram_reads,
        output_sram_writes,
        output_sram_reads,
        dram_reads_bytes,
        dram_writes_bytes,
        weights,
        weight_bits,
        weight_words,
        weight_passes,
        weights_resident: io.weights_resident,
        weight_array_reads,
    }
}

/// Simulates a sequential network (each layer consumes the previous layer's output).
///
/// Placement: a layer's weights start at its [`Layer::weight_base_slot`] if set (callers that know the full
/// memory order, biases and normalization parameters included, set it), else right after the previous layer's
/// weights, the first layer at `offset_bits / weight_bits`. Weights are resident if they end within one
/// memory size of the first weight; otherwise they are reloaded from DRAM every inference.
/// The first layer's input comes from DRAM and the last layer's output goes to DRAM; an intermediate
/// activation goes through DRAM only if it does not fit in the producer's OFMAP buffer or the consumer's IFMAP
/// buffer.
pub fn simulate_network(
    layers: &[Layer],
    array: &ArrayParams,
    buffers: &BufferParams,
    weight_bits: u32,
) -> Result<NetworkStats, SimError> {
    check_weight_bits(weight_bits)?;
    let wl = &buffers.weights;
    let slots = wl.slots_per_word(weight_bits);
    let ifmap_fits =
        |l: &Layer| bits_to_bytes(l.ifmap_elems(), buffers.act_bits) <= buffers.ifmap_bytes;
    let ofmap_fits =
        |l: &Layer| bits_to_bytes(l.ofmap_elems(), buffers.act_bits) <= buffers.ofmap_bytes;

    let origin = layers
        .first()
        .and_then(|l| l.weight_base_slot)
        .unwrap_or_else(|| wl.first_slot(weight_bits));
    let origin_word = origin / slots;
    let mut stats = Vec::with_capacity(layers.len());
    let mut next = origin;
    let mut prev_spilled = true;
    for (i, layer) in layers.iter().enumerate() {
        let base = layer.weight_base_slot.unwrap_or(next);
        let end = base.saturating_add(layer.weight_count());
        let last = i + 1 == layers.len();
        let output_to_dram = last || !ofmap_fits(layer) || !ifmap_fits(&layers[i + 1]);
        let io = LayerIo {
            input_from_dram: prev_spilled,
            output_to_dram,
            weights_resident: end.div_ceil(slots).saturating_sub(origin_word) <= wl.total_words()
                && base >= origin,
            weight_base_slot: base,
        };
        stats.push(simulate_layer_io(layer, array, buffers, weight_bits, io));
        prev_spilled = output_to_dram;
        next = end;
    }
    Ok(network_totals(stats, array, buffers, weight_bits))
}

fn network_totals(
    layers: Vec<LayerStats>,
    array: &ArrayParams,
    buffers: &BufferParams,
    weight_bits: u32,
) -> NetworkStats {
    let sum = |f: fn(&LayerStats) -> u64| layers.iter().map(f).fold(0u64, u64::saturating_add);
    let macs = sum(|l| l.macs);
    let compute_cycles = sum(|l| l.compute_cycles);
    let stall_cycles = sum(|l| l.stall_cycles);
    let total_cycles = compute_cycles.saturating_add(stall_cycles);
    let mut per_array = vec![0u64; buffers.weights.arrays() as usize];
    for l in &layers {
        for a in &l.weight_array_reads {
            per_array[a.array as usize] = per_array[a.array as usize].saturating_add(a.word_reads);
        }
    }
    let pes = (array.rows * array.cols) as f64;
    NetworkStats {
        dataflow: array.dataflow,
        rows: array.rows,
        cols: array.cols,
        clock_mhz: array.clock_mhz,
        weight_bits,
        macs,
        compute_cycles,
        stall_cycles,
        total_cycles,
        latency_s: total_cycles as f64 / (array.clock_mhz * 1e6),
        utilization_pct: if compute_cycles == 0 {
            0.0
        } else {
            macs as f64 / (compute_cycles as f64 * pes) * 100.0
        },
        weight_sram_reads: sum(|l| l.weight_sram_reads),
        weight_sram_word_reads: sum(|l| l.weight_sram_word_reads),
        weight_sram_word_writes: sum(|l| l.weight_sram_word_writes),
        input_sram_reads: sum(|l| l.input_sram_reads),
        output_sram_writes: sum(|l| l.output_sram_writes),
        output_sram_reads: sum(|l| l.output_sram_reads),
        dram_reads_bytes: sum(|l| l.dram_reads_bytes),
        dram_writes_bytes: sum(|l| l.dram_writes_bytes),
        weight_words: sum(|l| l.weight_words),
        weight_arrays_used: per_array.iter().filter(|&&n| n > 0).count() as u64,
        per_array_weight_word_reads: per_array,
        ecc_decoder_cycles: 0,
        layers,
    }
}
