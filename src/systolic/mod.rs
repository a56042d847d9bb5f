//! Cycle-approximate model of a weight-fed systolic array (SCALE-Sim conventions, closed form per layer).
//!
//! Every conv/linear layer becomes a GEMM `M × K · K × N` ([`Layer::gemm_dims`]), is folded onto an `R × C` PE
//! array under one of three dataflows ([`Dataflow`]), and yields compute cycles (fill, stream, drain per fold),
//! utilization, buffer reads/writes, weight-SRAM word reads per 512×64 array, DRAM traffic and stalls
//! ([`LayerStats`]). Nothing is simulated cycle by cycle: each quantity is a product of fold counts, so a whole
//! ResNet-20 costs microseconds. Formulas, the buffer/DRAM model and the differences from SCALE-Sim are in
//! `docs/systolic.md`.
//!
//! # API for callers (`accelsim run` / `sweep`)
//! ```
//! use accelsim::systolic::{simulate_network, ArrayParams, BufferParams, Dataflow, Layer, WeightLayout};
//! // The shipped Fashion-MNIST CNN (pooling/normalization layers do no MACs on the array).
//! let layers = vec![
//!     Layer::conv2d("conv1", 1, 1, 28, 28, 16, 3, 3, 1, 1).unwrap(),
//!     Layer::conv2d("conv2", 1, 16, 14, 14, 32, 3, 3, 1, 1).unwrap(),
//!     Layer::linear("fc1", 1, 1568, 64).unwrap(),
//!     Layer::linear("fc2", 1, 64, 10).unwrap(),
//! ];
//! let array = ArrayParams::new(16, 16, Dataflow::Ws, 1000.0).unwrap();
//! // The default chip: 64 KiB IFMAP/OFMAP buffers, 8-bit activations, 12.8 B/cycle DRAM, and a weight SRAM of
//! // 4 banks x 8 arrays of 512 words x 64 bits with the linear mapping and no offset.
//! let weights = WeightLayout::new(64, 512, 4, 8, false, 0).unwrap();
//! let buffers = BufferParams::new(65536, 65536, 8, 12.8, weights).unwrap();
//! let net = simulate_network(&layers, &array, &buffers, 8).unwrap();
//! assert_eq!(net.layers.len(), 4);
//! assert!(net.total_cycles >= net.compute_cycles);
//! // 4-bit weights: half the weight-SRAM words, half the word reads.
//! let net4 = simulate_network(&layers, &array, &buffers, 4).unwrap();
//! assert!(net4.weight_sram_word_reads * 2 <= net.weight_sram_word_reads + 4);
//! ```
//! With a hardware config: `hw.systolic.array_params()` and [`BufferParams::from_hw`]`(&hw)`. Model layers: [`Layer::conv2d`] (N, C, H, W, K, R, S, stride, padding),
//! [`Layer::linear`] (batch, in, out) or [`Layer::gemm`] (M, N, K). Topology files: [`read_topology`].
pub mod layer;
pub mod sim;
pub mod topology;

#[cfg(test)]
mod reference;

pub use layer::{GemmDims, Layer, LayerError, LayerShape, OfmapRounding};
pub use sim::{
    fold_cycles, simulate_layer, simulate_layer_io, simulate_network, spatio_temporal, ArrayParams,
    ArrayReads, BufferParams, Dataflow, LayerIo, LayerStats, NetworkStats, SimError, WeightLayout,
    PSUM_BITS,
};
pub use topology::{
    looks_depthwise, parse_topology, read_topology, to_scalesim_csv, TopologyError,
};
