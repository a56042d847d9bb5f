//! Incremental sweep vs the naive approach, same run, same numbers.
//!
//! Naive: at every (sample, voltage) point build the faulty image, re-decode **every** tensor and run inference.
//! Ours ([`SeriesRunner`]): voltages high → low with nested faults; a fault-free point is answered by the clean
//! error, an unchanged image reuses the previous result, and only tensors whose codes changed are re-decoded.
//! Both paths must give identical errors (checked here); the bench prints both wall times and their ratio.
//!
//! Uses the shipped RandBET model and chip1 (falls back to uniform errors at the measured BER when chip1 is not
//! shipped) on the first `ACCELSIM_BENCH_IMAGES` (default 1000) Fashion-MNIST test images; override the model
//! and profile with `ACCELSIM_BENCH_MODEL` and `ACCELSIM_BENCH_PROFILE`.
use std::time::Instant;

use accelsim::config::HwConfig;
use accelsim::sweep::core::{naive_point, SeriesRunner};
use accelsim::sweep::grid::parse_voltage_grid;
use accelsim::sweep::scenario::{self, DataCache, FaultSpec, LoadedModel};

fn main() {
    let images: usize = std::env::var("ACCELSIM_BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let model_name =
        std::env::var("ACCELSIM_BENCH_MODEL").unwrap_or_else(|_| scenario::DEFAULT_MODEL.into());
    let model_path = match scenario::resolve_model(&model_name) {
        Ok(p) => p,
        Err(e) => {
            println!("sweep bench skipped: {e}");
            return;
        }
    };
    let hw = HwConfig::load_named("14nm_sram").expect("shipped hw config");
    let profile = std::env::var("ACCELSIM_BENCH_PROFILE").unwrap_or_else(|_| "chip1".into());
    let spec = FaultSpec::resolve(&profile).unwrap_or(FaultSpec::MeasuredUniform);
    let grid = parse_voltage_grid(accelsim::cli::sweep::DEFAULT_GRID).unwrap();
    let min_v = grid.iter().copied().fold(f64::INFINITY, f64::min);
    let samples = 2u32;
    let mut data = DataCache::new(None, Some(images));
    let mut lm = match LoadedModel::load(&model_path, &mut data) {
        Ok(m) => m,
        Err(e) => {
            println!("sweep bench skipped: {e}");
            return;
        }
    };
    let source = scenario::fault_source(&spec, &hw, &lm, samples, 1, min_v).expect("fault source");
    let clean = lm.model.memory_image().to_vec();
    println!(
        "sweep bench: {} ({} weights), faults {}, {} voltages x {} samples, {} test images",
        lm.name,
        lm.weights(),
        spec.name(),
        grid.len(),
        samples,
        lm.test_images
    );

    let t0 = Instant::now();
    let mut naive = Vec::new();
    for s in 0..samples {
        for &v in &grid {
            naive.push(
                naive_point(&mut lm, source.as_ref(), &clean, s, v)
                    .expect("naive point")
                    .1,
            );
        }
    }
    let t_naive = t0.elapsed().as_secs_f64();
    // Back to the clean weights before the incremental run.
    let all: Vec<usize> = (0..lm.model.param_tensors().len()).collect();
    lm.net
        .set_weights_from_image(&lm.model, &clean, Some(&all))
        .unwrap();

    let t1 = Instant::now();
    let mut ours = Vec::new();
    let stats = {
        let mut runner = SeriesRunner::new(&mut lm, &clean).expect("runner");
        for s in 0..samples {
            ours.extend(
                runner
                    .run_sample(source.as_ref(), s, &grid, || {})
                    .expect("sample")
                    .error_pct,
            );
        }
        runner.stats
    };
    let t_ours = t1.elapsed().as_secs_f64();
    if naive != ours {
        eprintln!("naive: {naive:?}\nours:  {ours:?}");
        panic!("incremental and naive sweeps disagree");
    }
    println!(
        "naive: {:.3} s ({} inferences) | incremental: {:.3} s ({} inferences, {} fault-free, {} reused, {} tensors re-decoded)",
        t_naive,
        naive.len(),
        t_ours,
        stats.inferences,
        stats.clean_points,
        stats.reused_points,
        stats.tensors_decoded
    );
    println!(
        "speed-up naive/incremental: {:.2}x (identical results)",
        t_naive / t_ours.max(1e-9)
    );
}
