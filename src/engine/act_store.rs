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

/// Reads stored activation codes back through the buffer's cells.
pub trait ActivationStore: Sync {
    /// `codes` holds one example's map in `[c][h][w]` order (row-major, `shape` of `map`), as stored; on
    /// return it holds what the cells read back. Must be deterministic in `(map, codes)`.
    fn read_back(&self, map: &StoredMap, codes: &mut [u8]);

    /// True when [`ActivationStore::read_back`] never changes a byte (lets the engine skip the call).
    fn is_reliable(&self) -> bool {
        false
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
