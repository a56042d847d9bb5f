//! What SECDED costs a sweep, same run: the incremental sweep of one model over the default voltage grid on a
//! profiled chip, once unprotected and once with (72,64) SECDED (every codeword with a faulty cell decoded, the
//! rest untouched), plus the fault-image building alone (no inference), where the decoding work shows directly.
//! Prints both wall times and their ratios; the target is SECDED / none ≤ 1.2 for the sweep.
//!
//! Defaults: the shipped RandBET 8-bit model on chip2, 2 samples, the first `ACCELSIM_BENCH_IMAGES` (default 1000)
//! Fashion-MNIST test images; `ACCELSIM_BENCH_MODEL` and `ACCELSIM_BENCH_PROFILE` override model and profile.
use std::time::Instant;

use accelsim::config::{EccScheme, HwConfig};
use accelsim::sweep::core::SeriesRunner;
use accelsim::sweep::grid::parse_voltage_grid;
use accelsim::sweep::scenario::{self, DataCache, FaultSpec, LoadedModel};

fn main() {
    let images: usize = std::env::var("ACCELSIM_BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let model_name =
        std::env::var("ACCELSIM_BENCH_MODEL").unwrap_or_else(|_| scenario::DEFAULT_MODEL.into());
    let profile = std::env::var("ACCELSIM_BENCH_PROFILE").unwrap_or_else(|_| "chip2".into());
    let model_path = match scenario::resolve_model(&model_name) {
        Ok(p) => p,
        Err(e) => {
            println!("ecc bench skipped: {e}");
            return;
        }
    };
    let spec = match FaultSpec::resolve(&profile) {
        Ok(s) => s,
        Err(e) => {
            println!("ecc bench skipped: {e}");
            return;
        }
    };
    let hw = HwConfig::load_named("14nm_sram").expect("shipped hw config");
    let hw_ecc = hw.with_ecc(EccScheme::Secded).expect("secded config");
    let grid = parse_voltage_grid(accelsim::cli::sweep::DEFAULT_GRID).unwrap();
    let min_v = grid.iter().copied().fold(f64::INFINITY, f64::min);
    let samples = 2u32;
    let mut data = DataCache::new(None, Some(images));
    let mut lm = match LoadedModel::load(&model_path, &mut data, Default::default()) {
        Ok(m) => m,
        Err(e) => {
            println!("ecc bench skipped: {e}");
            return;
        }
    };
    let clean = lm.model.memory_image().to_vec();
    println!(
        "ecc bench: {} ({} weights), faults {}, {} voltages x {} samples, {} test images",
        lm.name,
        lm.weights(),
        spec.name(),
        grid.len(),
        samples,
        lm.test_images
    );

    let mut results = Vec::new();
    for h in [&hw, &hw_ecc] {
        let source = scenario::fault_source(&spec, h, &lm, samples, 1, min_v).expect("source");
        // Fault images alone, best of 5 passes over every (sample, voltage).
        let mut buf = vec![0u8; clean.len()];
        let mut t_img = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            for s in 0..samples {
                for &v in &grid {
                    std::hint::black_box(source.faulty_read(s, v, &clean, &mut buf).unwrap());
                }
            }
            t_img = t_img.min(t.elapsed().as_secs_f64());
        }
        let t = Instant::now();
        let mut runner = SeriesRunner::new(&mut lm, &clean).expect("runner");
        let mut words = [0u64; 3];
        for s in 0..samples {
            let r = runner
                .run_sample(source.as_ref(), s, &grid, || {})
                .expect("sample");
            for c in &r.ecc {
                words[0] += c.corrected;
                words[1] += c.detected;
                words[2] += c.silent;
            }
        }
        let t_sweep = t.elapsed().as_secs_f64();
        let name = h.weight_sram.ecc.name();
        println!(
            "{name:7}: sweep {t_sweep:.3} s ({} inferences, {} fault-free points); fault images {:.2} ms per \
             pass; words corrected/detected/silent {}/{}/{}",
            runner.stats.inferences,
            runner.stats.clean_points,
            t_img * 1e3,
            words[0],
            words[1],
            words[2]
        );
        results.push((t_sweep, t_img));
    }
    let (none, sec) = (results[0], results[1]);
    println!(
        "sweep with SECDED / without: {:.2}x (target <= 1.2x); fault images with SECDED / without: {:.2}x",
        sec.0 / none.0.max(1e-9),
        sec.1 / none.1.max(1e-12)
    );
}
