//! Slow, obviously-right fold-by-fold reference for the closed-form counts in `sim` (tests only).
//!
//! It walks every fold like SCALE-Sim builds its demand matrices, with the partly used last row/column folds
//! sliced explicitly, and counts each operand tile it touches.
use super::layer::Layer;
use super::sim::{fold_cycles, spatio_temporal, ArrayParams, Dataflow};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RefCounts {
    pub compute_cycles: u64,
    pub macs: u64,
    pub weight_reads: u64,
    pub ifmap_reads: u64,
    pub ofmap_writes: u64,
    pub used_pe_folds: u64,
}

pub fn fold_walk(layer: &Layer, array: &ArrayParams) -> RefCounts {
    let (r, c, df) = (array.rows(), array.cols(), array.dataflow());
    let (sr, sc, t) = spatio_temporal(df, layer.gemm_dims());
    let mut out = RefCounts::default();
    let mut row_start = 0;
    while row_start < sr {
        let rows_used = (sr - row_start).min(r);
        let mut col_start = 0;
        while col_start < sc {
            let cols_used = (sc - col_start).min(c);
            out.compute_cycles += fold_cycles(df, r, c, t);
            out.macs += rows_used * cols_used * t;
            out.used_pe_folds += rows_used * cols_used;
            let tile = rows_used * cols_used;
            match df {
                // Rows hold K, columns N: the weight tile is loaded once, M input rows stream through, each
                // fold emits an M × cols_used block of (partial) outputs.
                Dataflow::Ws => {
                    out.weight_reads += tile;
                    out.ifmap_reads += t * rows_used;
                    out.ofmap_writes += t * cols_used;
                }
                // Rows hold M, columns N, K streams: inputs K × rows_used, weights K × cols_used, outputs once.
                Dataflow::Os => {
                    out.ifmap_reads += t * rows_used;
                    out.weight_reads += t * cols_used;
                    out.ofmap_writes += tile;
                }
                // Rows hold K, columns M, N streams: inputs loaded once, weights N × rows_used.
                Dataflow::Is => {
                    out.ifmap_reads += tile;
                    out.weight_reads += t * rows_used;
                    out.ofmap_writes += t * cols_used;
                }
            }
            col_start += c;
        }
        row_start += r;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systolic::{simulate_layer, simulate_network, BufferParams, Layer, WeightLayout};
    use proptest::prelude::*;

    fn big_buffers() -> BufferParams {
        let weights = WeightLayout::new(64, 1 << 20, 1, 1 << 10, false, 0).unwrap();
        BufferParams::new(1 << 40, 1 << 40, 8, 16.0, weights).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn closed_form_matches_fold_walk(
            m in 1u64..300, n in 1u64..100, k in 1u64..300,
            r in 1u64..40, c in 1u64..40, df in 0usize..3,
        ) {
            let layer = Layer::gemm("g", m, n, k).unwrap();
            let array = ArrayParams::new(r, c, Dataflow::ALL[df], 1000.0).unwrap();
            let s = simulate_layer(&layer, &array, &big_buffers(), 8).unwrap();
            let w = fold_walk(&layer, &array);
            prop_assert_eq!(s.compute_cycles, w.compute_cycles);
            prop_assert_eq!(s.macs, w.macs);
            prop_assert_eq!(w.macs, m * n * k);
            prop_assert_eq!(s.weight_sram_reads, w.weight_reads);
            prop_assert_eq!(s.input_sram_reads, w.ifmap_reads);
            prop_assert_eq!(s.output_sram_writes, w.ofmap_writes);
            let folds = s.row_folds * s.col_folds;
            let mapping = w.used_pe_folds as f64 / (folds * r * c) as f64 * 100.0;
            prop_assert!((s.mapping_efficiency_pct - mapping).abs() < 1e-9);
            prop_assert!(s.utilization_pct > 0.0 && s.utilization_pct <= 100.0);
            prop_assert_eq!(s.total_cycles, s.compute_cycles + s.stall_cycles);
        }

        #[test]
        fn per_array_reads_match_word_by_word_tally(
            sizes in proptest::collection::vec((1u64..60, 1u64..30), 1..5),
            bits in prop_oneof![Just(3u32), Just(4u32), Just(8u32)],
            df in 0usize..3,
            banks in 1u64..4, apb in 1u64..3, wpa in 1u64..6, interleaved: bool, offset_slots in 0u64..40,
            byte: bool,
        ) {
            let layers: Vec<Layer> = sizes
                .iter()
                .enumerate()
                .map(|(i, &(i_f, o_f))| Layer::linear(&format!("fc{i}"), 3, i_f, o_f).unwrap())
                .collect();
            let array = ArrayParams::new(8, 8, Dataflow::ALL[df], 1000.0).unwrap();
            // Slot width: m bits (dense) or one byte per code (byte packing, m <= 8 here).
            let (packing, t) = if byte { (crate::config::Packing::Byte, 8) } else { (crate::config::Packing::Dense, bits) };
            let layout = WeightLayout::new(64, wpa, banks, apb, interleaved, offset_slots * t as u64)
                .unwrap()
                .with_packing(packing);
            let buffers = BufferParams::new(1 << 20, 1 << 20, 8, 8.0, layout).unwrap();
            let net = simulate_network(&layers, &array, &buffers, bits).unwrap();
            // Slot by slot: collect the distinct words each layer touches, map each word on its own.
            let k = (64 / t) as u64;
            let total = banks * apb * wpa;
            let mut tally = vec![0u64; (banks * apb) as usize];
            let mut slot = offset_slots;
            for l in &net.layers {
                let mut words: Vec<u64> = (slot..slot + l.weights).map(|s| s / k).collect();
                words.dedup();
                prop_assert_eq!(words.len() as u64, l.weight_words);
                for w in words {
                    let w = w % total;
                    let a = if interleaved { (w % banks) * apb + (w / banks) / wpa } else { w / wpa };
                    tally[a as usize] += l.weight_passes;
                }
                slot += l.weights;
            }
            prop_assert_eq!(&tally, &net.per_array_weight_word_reads);
            prop_assert_eq!(tally.iter().sum::<u64>(), net.weight_sram_word_reads);
            prop_assert_eq!(tally.iter().filter(|&&n| n > 0).count() as u64, net.weight_arrays_used);
        }

        /// Any dimensions, array, layout and placement: either a typed error or numbers, never a panic
        /// (overflow included, debug arithmetic checks on).
        #[test]
        fn never_panics_on_extreme_inputs(
            dims in proptest::collection::vec(
                prop_oneof![
                    1 => Just(0u64),
                    4 => 1u64..4,
                    1 => Just(1 << 24),
                    1 => Just((1 << 24) + 1),
                    4 => 1u64..100_000,
                ],
                9,
            ),
            r in prop_oneof![1u64..4, Just(65536u64)], c in prop_oneof![1u64..4, Just(65536u64)],
            df in 0usize..3, bits in 1u32..=32, base in prop_oneof![Just(None), any::<u64>().prop_map(Some), Just(Some(u64::MAX)), Just(Some(u64::MAX - 100))],
            interleaved: bool,
        ) {
            let conv = Layer::scalesim_conv(
                "c", dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6], dims[7],
                crate::systolic::OfmapRounding::ScaleSim,
            );
            let gemm = Layer::gemm("g", dims[0], dims[5], dims[8]);
            let array = ArrayParams::new(r, c, Dataflow::ALL[df], 1000.0).unwrap();
            let layout = WeightLayout::new(64, 512, 4, 8, interleaved, 7).unwrap();
            let buffers = BufferParams::new(65536, 65536, 8, 12.8, layout).unwrap();
            for layer in [conv, gemm].into_iter().flatten() {
                let layer = match base { Some(b) => layer.with_weight_base_slot(b), None => layer };
                let net = simulate_network(&[layer.clone(), layer], &array, &buffers, bits).unwrap();
                prop_assert!(net.total_cycles >= net.compute_cycles);
                prop_assert!(net.macs > 0);
            }
        }
    }
}
