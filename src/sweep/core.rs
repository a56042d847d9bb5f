//! Incremental evaluation of one (model, fault source) series over a descending voltage grid.
//!
//! For each fault sample, voltages run from high to low. Faults are nested across voltages (docs/faults.md#paper-model),
//! so consecutive points differ by a few newly failing cells. At each point the runner
//! 1. builds the faulty memory image (one `u8` code per stored weight, memory order, docs/model-format.md);
//! 2. if the image equals the clean image (e.g. at or above V_min), the faulty error **is** the clean error: no
//!    inference;
//! 3. otherwise compares it tensor by tensor with the image currently loaded in the network; if nothing changed
//!    the previous result is reused; else only the changed tensors are re-decoded and inference runs once.
//!
//! The naive baseline ([`naive_point`]) re-decodes every tensor and runs inference at every point; the tests
//! check both give identical results and `benches/sweep.rs` measures the ratio.
use std::ops::Range;

use super::SweepError;
use crate::ecc::EccCounts;

/// What one read of the stored weights produced: the raw bit errors and, with ECC, the codeword outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultRead {
    /// Weight bits that read wrong (before any ECC decoding).
    pub flipped_bits: u64,
    /// Codeword outcomes (all zero without ECC).
    pub ecc: EccCounts,
}

/// Produces the stored codes of one fault sample at a supply voltage.
pub trait FaultSource {
    /// Fills `out` (same length as `clean`) with the codes read back at `vdd_v` for fault sample `sample` and
    /// returns the number of flipped bits (weight bits that read wrong; with ECC, before decoding, so `out` may
    /// differ from `clean` in fewer bits).
    fn faulty_image(
        &self,
        sample: u32,
        vdd_v: f64,
        clean: &[u8],
        out: &mut [u8],
    ) -> Result<u64, SweepError>;

    /// [`faulty_image`](Self::faulty_image) with the ECC outcome counts of the read (unprotected sources: zero).
    fn faulty_read(
        &self,
        sample: u32,
        vdd_v: f64,
        clean: &[u8],
        out: &mut [u8],
    ) -> Result<FaultRead, SweepError> {
        Ok(FaultRead {
            flipped_bits: self.faulty_image(sample, vdd_v, clean, out)?,
            ecc: EccCounts::default(),
        })
    }
}

/// Inference on a memory image of one model.
pub trait ImageEvaluator {
    /// Byte ranges of the parameter tensors in the memory image, in memory order.
    fn tensor_ranges(&self) -> Vec<Range<usize>>;
    /// Clean test error (percent) of the quantized model.
    fn clean_error_pct(&mut self) -> Result<f64, SweepError>;
    /// Loads every tensor of `image` (whatever the previous calls left loaded).
    fn reset(&mut self, image: &[u8]) -> Result<(), SweepError>;
    /// Loads `image`, where only the tensors listed in `changed` (indices into [`Self::tensor_ranges`]) differ
    /// from the image loaded by the previous call (the clean image before the first call), and returns the
    /// faulty test error in percent (clean-or-faulty mistakes, docs/run-and-sweep.md#evaluation-protocol).
    fn evaluate(&mut self, image: &[u8], changed: &[usize]) -> Result<f64, SweepError>;
    /// Images one [`ImageEvaluator::evaluate`] runs the network on (for throughput counters; 0 if unknown).
    fn images_per_inference(&self) -> u64 {
        0
    }
    /// Prepares the activation buffers for fault sample `sample` at `vdd_v` (integer datapath with a scaled
    /// activation rail or `--act-ber`; docs/activation-faults.md). Returns true when they can fail there: the
    /// point must then run inference even if the weights equal the clean or the previous ones. Default: never.
    fn begin_point(&mut self, _sample: u32, _vdd_v: f64) -> Result<bool, SweepError> {
        Ok(false)
    }
    /// (activation bits read, activation bits read back wrong) by the last [`ImageEvaluator::evaluate`] with
    /// failing activation buffers; (0, 0) otherwise.
    fn activation_counts(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// Work counters of a runner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Grid points evaluated (samples × voltages).
    pub points: u64,
    /// Points that ran inference.
    pub inferences: u64,
    /// Points answered by the clean error (image equal to the clean image).
    pub clean_points: u64,
    /// Points that reused the previous result (image equal to the loaded one).
    pub reused_points: u64,
    /// Tensors re-decoded in total.
    pub tensors_decoded: u64,
    /// Images the network was run on: the faulty passes ([`ImageEvaluator::images_per_inference`] each) and,
    /// counted by the driver, the clean pass of every model loaded. For throughput figures (benches/precision.rs).
    pub images_inferred: u64,
}

/// Result of one fault sample over the grid (grid order).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleResult {
    pub flipped_bits: Vec<u64>,
    pub error_pct: Vec<f64>,
    /// ECC codeword outcomes at each voltage (all zero without ECC).
    pub ecc: Vec<EccCounts>,
    /// (activation bits read, read back wrong) at each voltage, over the images run; (0, 0) when the
    /// activation buffers cannot fail.
    pub activation_bits: Vec<(u64, u64)>,
}

/// Runs the fault samples of one model incrementally (see the module docs).
pub struct SeriesRunner<'a, E: ImageEvaluator> {
    eval: &'a mut E,
    clean: &'a [u8],
    ranges: Vec<Range<usize>>,
    loaded: Vec<u8>,
    loaded_error_pct: f64,
    clean_error_pct: f64,
    buf: Vec<u8>,
    pub stats: RunStats,
}

impl<'a, E: ImageEvaluator> SeriesRunner<'a, E> {
    /// Creates a runner over `eval`: loads the clean image into it (an earlier runner may have left faulty
    /// weights behind) and computes the clean error.
    pub fn new(eval: &'a mut E, clean: &'a [u8]) -> Result<Self, SweepError> {
        let ranges = eval.tensor_ranges();
        if let Some(r) = ranges
            .iter()
            .find(|r| r.end > clean.len() || r.start > r.end)
        {
            return Err(SweepError::Eval(format!(
                "tensor range {r:?} lies outside the memory image of {} bytes",
                clean.len()
            )));
        }
        eval.reset(clean)?;
        let clean_error_pct = eval.clean_error_pct()?;
        Ok(SeriesRunner {
            eval,
            clean,
            ranges,
            loaded: clean.to_vec(),
            loaded_error_pct: clean_error_pct,
            clean_error_pct,
            buf: vec![0; clean.len()],
            stats: RunStats::default(),
        })
    }

    pub fn clean_error_pct(&self) -> f64 {
        self.clean_error_pct
    }

    /// Evaluates fault sample `sample` at every voltage of `voltages_v` (expected descending, so faults nest).
    pub fn run_sample(
        &mut self,
        faults: &dyn FaultSource,
        sample: u32,
        voltages_v: &[f64],
        mut on_point: impl FnMut(),
    ) -> Result<SampleResult, SweepError> {
        let mut out = SampleResult {
            flipped_bits: Vec::with_capacity(voltages_v.len()),
            error_pct: Vec::with_capacity(voltages_v.len()),
            ecc: Vec::with_capacity(voltages_v.len()),
            activation_bits: Vec::with_capacity(voltages_v.len()),
        };
        for &vdd_v in voltages_v {
            super::cancel::check()?;
            let read = faults.faulty_read(sample, vdd_v, self.clean, &mut self.buf)?;
            let flipped = read.flipped_bits;
            self.stats.points += 1;
            // Failing activation buffers change the result at every point: always infer.
            let act = self.eval.begin_point(sample, vdd_v)?;
            let err = if !act && self.buf[..] == self.clean[..] {
                self.stats.clean_points += 1;
                self.clean_error_pct
            } else {
                let changed: Vec<usize> = self
                    .ranges
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| self.buf[(*r).clone()] != self.loaded[(*r).clone()])
                    .map(|(i, _)| i)
                    .collect();
                if changed.is_empty() && !act {
                    self.stats.reused_points += 1;
                } else {
                    self.loaded_error_pct = self.eval.evaluate(&self.buf, &changed)?;
                    for &i in &changed {
                        let r = self.ranges[i].clone();
                        self.loaded[r.clone()].copy_from_slice(&self.buf[r]);
                    }
                    self.stats.inferences += 1;
                    self.stats.tensors_decoded += changed.len() as u64;
                    self.stats.images_inferred += self.eval.images_per_inference();
                }
                self.loaded_error_pct
            };
            out.flipped_bits.push(flipped);
            out.error_pct.push(err);
            out.ecc.push(read.ecc);
            out.activation_bits.push(if act {
                self.eval.activation_counts()
            } else {
                (0, 0)
            });
            on_point();
        }
        Ok(out)
    }
}

/// The naive baseline for one point: build the image, re-decode every tensor, run inference. Returns
/// (flipped bits, error %). Leaves the evaluator holding that image.
pub fn naive_point<E: ImageEvaluator>(
    eval: &mut E,
    faults: &dyn FaultSource,
    clean: &[u8],
    sample: u32,
    vdd_v: f64,
) -> Result<(u64, f64), SweepError> {
    let mut buf = vec![0u8; clean.len()];
    let flipped = faults.faulty_image(sample, vdd_v, clean, &mut buf)?;
    let all: Vec<usize> = (0..eval.tensor_ranges().len()).collect();
    Ok((flipped, eval.evaluate(&buf, &all)?))
}

/// Mean and (population-free, n−1) sample standard deviation; std is 0 for fewer than two values.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Synthetic stand-ins used by the sweep tests and the benchmark's self-check.
    use super::*;

    /// SplitMix64: a stateless hash used as a per-(sample, bit) uniform.
    pub fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Nested uniform faults: bit j of byte i of sample s flips iff u(s, i, j) < p(V), with
    /// p(V) = 0 for V ≥ v_min and growing as V drops. The same u for all V makes faults nested.
    pub struct NestedUniform {
        pub v_min: f64,
        pub p_per_volt: f64,
    }

    impl NestedUniform {
        pub fn p(&self, vdd_v: f64) -> f64 {
            ((self.v_min - vdd_v) * self.p_per_volt).clamp(0.0, 1.0)
        }
    }

    impl FaultSource for NestedUniform {
        fn faulty_image(
            &self,
            sample: u32,
            vdd_v: f64,
            clean: &[u8],
            out: &mut [u8],
        ) -> Result<u64, SweepError> {
            let p = self.p(vdd_v);
            let mut flipped = 0u64;
            for (i, (o, &c)) in out.iter_mut().zip(clean).enumerate() {
                let mut mask = 0u8;
                if p > 0.0 {
                    for j in 0..8u64 {
                        let u = (mix(((sample as u64) << 40) ^ ((i as u64) << 3) ^ j) >> 11) as f64
                            / (1u64 << 53) as f64;
                        if u < p {
                            mask |= 1 << j;
                        }
                    }
                }
                flipped += mask.count_ones() as u64;
                *o = c ^ mask;
            }
            Ok(flipped)
        }
    }

    /// A toy "network": tensors are fixed-size chunks of the image; it keeps its own decoded copy, updated only
    /// for the tensors it is told changed, and its "error" is a deterministic function of that copy. A runner
    /// that forgets a changed tensor therefore gets a different answer from the naive path.
    pub struct ToyEval {
        pub chunk: usize,
        pub decoded: Vec<u8>,
        pub evaluations: usize,
    }

    impl ToyEval {
        pub fn new(clean: &[u8], chunk: usize) -> Self {
            ToyEval {
                chunk,
                decoded: clean.to_vec(),
                evaluations: 0,
            }
        }
        fn error_of(bytes: &[u8]) -> f64 {
            let h = bytes
                .iter()
                .enumerate()
                .fold(0u64, |h, (i, &b)| mix(h ^ ((i as u64) << 8) ^ b as u64));
            (h % 10_000) as f64 / 100.0
        }
    }

    impl ImageEvaluator for ToyEval {
        fn tensor_ranges(&self) -> Vec<Range<usize>> {
            (0..self.decoded.len())
                .step_by(self.chunk)
                .map(|s| s..(s + self.chunk).min(self.decoded.len()))
                .collect()
        }
        fn clean_error_pct(&mut self) -> Result<f64, SweepError> {
            Ok(Self::error_of(&self.decoded))
        }
        fn reset(&mut self, image: &[u8]) -> Result<(), SweepError> {
            self.decoded.copy_from_slice(image);
            Ok(())
        }
        fn evaluate(&mut self, image: &[u8], changed: &[usize]) -> Result<f64, SweepError> {
            let ranges = self.tensor_ranges();
            for &i in changed {
                let r = ranges[i].clone();
                self.decoded[r.clone()].copy_from_slice(&image[r]);
            }
            self.evaluations += 1;
            Ok(Self::error_of(&self.decoded))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use proptest::prelude::*;

    fn clean_image(n: usize, seed: u64) -> Vec<u8> {
        (0..n).map(|i| mix(seed ^ i as u64) as u8).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn incremental_equals_naive(n in 1usize..400, chunk in 1usize..64, seed in any::<u64>(),
                                    samples in 1u32..4, p_per_volt in 0.0f64..0.5) {
            let clean = clean_image(n, seed);
            let faults = NestedUniform { v_min: 0.8, p_per_volt };
            let grid = [0.9, 0.85, 0.8, 0.78, 0.75, 0.7, 0.65, 0.6];
            let mut inc = ToyEval::new(&clean, chunk);
            let mut runner = SeriesRunner::new(&mut inc, &clean).unwrap();
            let clean_err = runner.clean_error_pct();
            let mut naive = ToyEval::new(&clean, chunk);
            for s in 0..samples {
                let res = runner.run_sample(&faults, s, &grid, || {}).unwrap();
                for (k, &v) in grid.iter().enumerate() {
                    let (flips, err) = naive_point(&mut naive, &faults, &clean, s, v).unwrap();
                    prop_assert_eq!(res.flipped_bits[k], flips);
                    prop_assert_eq!(res.error_pct[k], err);
                    if v >= 0.8 {
                        // At and above V_min no faults: faulty error equals clean error.
                        prop_assert_eq!(flips, 0);
                        prop_assert_eq!(err, clean_err);
                    }
                }
                // Nested faults: flipped bits never decrease as the voltage drops.
                prop_assert!(res.flipped_bits.windows(2).all(|w| w[0] <= w[1]));
            }
            prop_assert_eq!(runner.stats.points, samples as u64 * grid.len() as u64);
            prop_assert_eq!(
                runner.stats.points,
                runner.stats.inferences + runner.stats.clean_points + runner.stats.reused_points
            );
        }
    }

    #[test]
    fn a_set_cancel_flag_stops_before_the_next_point() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let clean = clean_image(200, 5);
        let faults = NestedUniform {
            v_min: 0.9,
            p_per_volt: 0.1,
        };
        let grid = [0.9, 0.8, 0.7, 0.6];
        let mut eval = ToyEval::new(&clean, 16);
        let mut runner = SeriesRunner::new(&mut eval, &clean).unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let mut points = 0;
        let r = super::super::cancel::with_flag(flag.clone(), || {
            runner.run_sample(&faults, 0, &grid, || {
                points += 1;
                if points == 2 {
                    flag.store(true, Ordering::Relaxed);
                }
            })
        });
        assert!(matches!(r, Err(SweepError::Cancelled)), "{r:?}");
        assert_eq!(points, 2, "stopped before the third point");
        assert_eq!(runner.stats.points, 2);
        // Without a set flag the same runner completes the sample.
        let done = runner.run_sample(&faults, 0, &grid, || {}).unwrap();
        assert_eq!(done.error_pct.len(), grid.len());
    }

    #[test]
    fn consecutive_runners_on_one_evaluator_agree_with_naive() {
        // A second runner (next fault profile of the same model) starts while the evaluator still holds the
        // first runner's last faulty image: it must reload the clean weights.
        let clean = clean_image(300, 3);
        let grid = [0.9, 0.8, 0.7];
        let mut eval = ToyEval::new(&clean, 16);
        let strong = NestedUniform {
            v_min: 0.95,
            p_per_volt: 0.2,
        };
        let weak = NestedUniform {
            v_min: 0.75,
            p_per_volt: 0.05,
        };
        SeriesRunner::new(&mut eval, &clean)
            .unwrap()
            .run_sample(&strong, 0, &grid, || {})
            .unwrap();
        let res = SeriesRunner::new(&mut eval, &clean)
            .unwrap()
            .run_sample(&weak, 1, &grid, || {})
            .unwrap();
        let mut naive = ToyEval::new(&clean, 16);
        for (k, &v) in grid.iter().enumerate() {
            assert_eq!(
                res.error_pct[k],
                naive_point(&mut naive, &weak, &clean, 1, v).unwrap().1,
                "at {v} V"
            );
        }
    }

    #[test]
    fn fault_free_points_and_repeats_skip_inference() {
        let clean = clean_image(256, 7);
        let faults = NestedUniform {
            v_min: 0.8,
            p_per_volt: 0.01,
        };
        let mut eval = ToyEval::new(&clean, 32);
        let grid = [0.9, 0.85, 0.8, 0.7, 0.7 + 1e-12];
        let stats = {
            let mut runner = SeriesRunner::new(&mut eval, &clean).unwrap();
            runner.run_sample(&faults, 0, &grid, || {}).unwrap();
            runner.stats
        };
        assert_eq!(stats.clean_points, 3);
        assert_eq!(stats.inferences, 1);
        assert_eq!(stats.reused_points, 1);
        assert_eq!(eval.evaluations, 1);
        // Only a few of the 8 tensors hold the new faults.
        assert!(stats.tensors_decoded < 8, "{stats:?}");
    }

    #[test]
    fn mean_std_matches_definition() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12);
        assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[3.0]), (3.0, 0.0));
    }
}
