//! The contract between the integer engine and the activation buffers (docs/datapath.md).
//!
//! With the integer datapath every layer's input feature map is held in the accelerator's ifmap/ofmap buffers
//! as integer codes (one byte per value: `uint8`, or `int8` as its two's-complement byte) before the layer
//! reads it. When the activation SRAM is on a scaled rail its cells can fail, so the engine hands each stored
//! map to an [`ActivationStore`], which returns the bytes the layer actually reads back. The store owns the
//! address mapping (which cell holds which bit), the fault map and the per-access randomness; the engine owns
//! the arithmetic. A store without faults ([`Reliable`]) leaves the bytes untouched and costs nothing. The
//! faulty store is [`crate::sram::act_faults::ActivationFaults`] (mapping and semantics: docs/activation-faults.md).

/// What the engine tells the store about one stored feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredMap {
    /// Index of the layer that reads this map (0: the network's first layer, reading the quantized image).
    pub layer: usize,
    /// Shape of one example's map as `[channels, height, width]` (`[features, 1, 1]` for a flat vector).
    pub shape: [usize; 3],
    /// Index of the example within the evaluated test split (after `--skip`): seeds per-access randomness
    /// (transient cells) so that results do not depend on batching, threads or shards.
    pub image: u64,
}

/// What the engine tells the store about one conv/linear step's partial sums (docs/activation-faults.md#partial-sums).
///
/// On a weight- or input-stationary array with `R` rows, a reduction of depth `K` runs in `F = ⌈K/R⌉` row folds;
/// after each fold but the last, every output's int32 partial sum is written to the activation buffers and read
/// back by the next fold. Output `e` (`[c][h][w]` order of one example's output map) holds
/// `P_f(e) = Σ_{k < (f+1)·R} x_k · w_k` after fold `f` (raw products of the stored activation codes and the
/// weight codes; bias, zero points and scales are applied after the last fold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPsums {
    /// Index of the layer computing the sums (its input map is read by layer `layer`).
    pub layer: usize,
    /// Partial sums per example (the step's outputs).
    pub outputs: usize,
    /// Row folds `F` (partial sums are stored `F − 1` times); at least 2 when the store is asked.
    pub folds: usize,
    /// Index of the example within the evaluated split (seeds transient cells, as [`StoredMap::image`]).
    pub image: u64,
}

/// The corrections a store's faulty partial sums make to one example's accumulators: `(output, delta)` with
/// `delta = P'_{F-1} − P_{F-1}` (faulty minus fault-free final sum, before bias and zero points), plus the number
/// of int32 additions onto a corrupted sum that saturated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PsumCorrections {
    pub deltas: Vec<(usize, i64)>,
    pub saturated: u64,
}

/// Every output's fold sums of one example as a strided table (what the engine's fused fold GEMM writes,
/// docs/datapath.md#speed): fold `f` of output `e` is `data[offset + f·fold_stride + e·output_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct FoldTable<'a> {
    pub data: &'a [i32],
    pub offset: usize,
    pub fold_stride: usize,
    pub output_stride: usize,
}

impl FoldTable<'_> {
    /// Fills `part[f]` with output `e`'s fold sums (`part.len()` folds).
    #[inline]
    pub fn fill(&self, e: usize, part: &mut [i32]) {
        let base = self.offset + e * self.output_stride;
        for (f, p) in part.iter_mut().enumerate() {
            *p = self.data[base + f * self.fold_stride];
        }
    }
}

/// Reads stored activation codes back through the buffer's cells.
pub trait ActivationStore: Sync {
    /// `codes` holds one example's map in `[c][h][w]` order (row-major, `shape` of `map`), as stored; on
    /// return it holds what the cells read back. Must be deterministic in `(map, codes)`.
    fn read_back(&self, map: &StoredMap, codes: &mut [u8]);

    /// True when [`ActivationStore::read_back`] never changes a byte (lets the engine skip the call).
    fn is_reliable(&self) -> bool {
        false
    }

    /// Array rows `R` per row fold when the partial sums of folded reductions are stored in these buffers and
    /// can fail (weight- and input-stationary dataflows); `None` when they never leave the PE array
    /// (output-stationary) or the buffers cannot fail.
    fn psum_rows(&self) -> Option<usize> {
        None
    }

    /// How many faulty (cell, tile) places lie under `map`'s stored partial sums (0: [`corrupt_psums`] would
    /// change nothing, so the engine skips it). Lets the engine choose how to compute the fold sums.
    ///
    /// [`corrupt_psums`]: ActivationStore::corrupt_psums
    fn psum_cells(&self, _map: &StoredPsums) -> u64 {
        0
    }

    /// Replays the fold chain of every partial sum of `map` that has a faulty cell, writing the corrections into
    /// `out` (cleared first). `partials(e, p)` fills `p[f]` (`F` values) with output `e`'s fold sums
    /// `P_f(e) − P_{f−1}(e)`; the store calls it only for outputs with a faulty cell. Must be deterministic in
    /// `(map, partials)`.
    fn corrupt_psums(
        &self,
        _map: &StoredPsums,
        _partials: &mut dyn FnMut(usize, &mut [i32]),
        out: &mut PsumCorrections,
    ) {
        out.deltas.clear();
        out.saturated = 0;
    }

    /// [`ActivationStore::corrupt_psums`] with the fold sums of every output given as a table instead of a
    /// callback; must give the same corrections (the default calls it with [`FoldTable::fill`]).
    fn corrupt_psums_table(&self, map: &StoredPsums, table: &FoldTable, out: &mut PsumCorrections) {
        self.corrupt_psums(map, &mut |e, p| table.fill(e, p), out);
    }

    /// The partial sums of several examples of one step at once (a linear step's batch): `maps[i]` is example
    /// `i`'s (the same layer, outputs and folds for all), its fold sums the table at offset `table.offset + i ·
    /// example_stride`; writes `outs[i]`. Must give what [`ActivationStore::corrupt_psums_table`] gives per
    /// example (the default calls it).
    fn corrupt_psums_examples(
        &self,
        maps: &[StoredPsums],
        table: &FoldTable,
        example_stride: usize,
        outs: &mut [PsumCorrections],
    ) {
        corrupt_psums_each_example(self, maps, table, example_stride, outs)
    }
}

/// [`ActivationStore::corrupt_psums_examples`] as one [`ActivationStore::corrupt_psums_table`] call per example
/// (the trait's default, and a store's fallback for the batches its own form does not cover).
pub fn corrupt_psums_each_example<S: ActivationStore + ?Sized>(
    store: &S,
    maps: &[StoredPsums],
    table: &FoldTable,
    example_stride: usize,
    outs: &mut [PsumCorrections],
) {
    for (i, (map, out)) in maps.iter().zip(outs.iter_mut()).enumerate() {
        let t = FoldTable {
            offset: table.offset + i * example_stride,
            ..*table
        };
        store.corrupt_psums_table(map, &t, out);
    }
}

/// Fault-free activation buffers (the activation rail not scaled).
#[derive(Debug, Clone, Copy, Default)]
pub struct Reliable;

impl ActivationStore for Reliable {
    fn read_back(&self, _map: &StoredMap, _codes: &mut [u8]) {}

    fn is_reliable(&self) -> bool {
        true
    }
}
