//! The precision axis: a sweep of one family at several bit widths against the engine's own throughput on the
//! same images (docs/run-and-sweep.md#precision-axis, "Speed").
//!
//! 1. **Sweep**: `accelsim sweep --models fmnist-cnn-clipping --bits 8,6,4,3,2 --profiles chip1` (trained at 8,
//!    4 and 2 bits, PTQ at 6 and 3) on the default grid, 2 mapping offsets, the first `ACCELSIM_BENCH_IMAGES`
//!    (default 1000) test images, into a temporary folder (state files, fingerprint, fault maps, PTQ and clean passes included; no report). Its throughput is
//!    the images the network ran on (clean passes + faulty passes on the clean-right images, counted by the
//!    sweep) per second of wall time.
//! 2. **Engine**: `Network::predict` on the same test images (the 8-bit member), repeated, images per second.
//! 3. **PTQ**: the time to quantize the family's float weights at each width (once per width in the sweep).
//!
//! Prints `sweep/engine throughput ratio` (target ≥ 0.8: the sweep adds little on top of inference). Override
//! the family with `ACCELSIM_BENCH_FAMILY`.
use std::collections::HashMap;
use std::time::Instant;

use accelsim::config::HwConfig;
use accelsim::data::{self, DatasetKind};
use accelsim::engine::Network;
use accelsim::sweep::driver::{run_sweep, SweepSpec};
use accelsim::sweep::grid::parse_voltage_grid;
use accelsim::sweep::scenario::{self, FaultSpec};

fn main() {
    let images: usize = std::env::var("ACCELSIM_BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let family =
        std::env::var("ACCELSIM_BENCH_FAMILY").unwrap_or_else(|_| "fmnist-cnn-clipping".into());
    let widths = [8u32, 6, 4, 3, 2];
    let variants = match scenario::resolve_variants(
        std::slice::from_ref(&family),
        Some(&widths),
        "--models",
    ) {
        Ok(v) => v,
        Err(e) => {
            println!("precision bench skipped: {e}");
            return;
        }
    };
    let hw_path = HwConfig::resolve("14nm_sram").expect("shipped hw config");
    let hw = HwConfig::load(&hw_path).expect("shipped hw config");
    let faults = vec![FaultSpec::resolve("chip1").unwrap_or(FaultSpec::MeasuredUniform)];
    let spec = SweepSpec {
        hw,
        hw_path,
        models: variants.clone(),
        faults,
        grid_v: parse_voltage_grid(accelsim::cli::sweep::DEFAULT_GRID).unwrap(),
        offsets: 2,
        seeds: 1,
        ecc: Vec::new(),
        rails: Vec::new(),
        seed: 0,
        data_dir: None,
        skip: 0,
        limit: Some(images),
        act_ber: 0.0,
    };
    // The data set must exist (the sweep would fail with a clear message; skip instead).
    let ds = match data::load_test_split(DatasetKind::FashionMnist, None, Some(images)) {
        Ok(d) => d,
        Err(e) => {
            println!("precision bench skipped: {e}");
            return;
        }
    };

    // PTQ cost per width, from the float weights loaded once.
    let mut sources = HashMap::new();
    let t = Instant::now();
    let first = variants[0].load_model(&mut sources).expect("model");
    let t_load = t.elapsed().as_secs_f64();
    let mut ptq = Vec::new();
    for v in &variants {
        let t = Instant::now();
        let m = v.load_model(&mut sources).expect("model");
        ptq.push((
            v.bits,
            v.source.name(),
            t.elapsed().as_secs_f64(),
            m.num_params(),
        ));
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let t0 = Instant::now();
    let outcome = run_sweep(&spec, dir.path(), true, false).expect("sweep");
    let t_sweep = t0.elapsed().as_secs_f64();
    let st = outcome.stats;
    let sweep_ips = st.images_inferred as f64 / t_sweep;

    // The engine alone on the same images (8-bit member), enough repeats for a stable time.
    let m = first.manifest();
    let inputs = ds.normalized(&m.input.mean, &m.input.std).expect("inputs");
    let net = Network::from_model(&first);
    let _ = net.predict(inputs.view()).expect("warm-up");
    let target_s = (t_sweep / 2.0).clamp(1.0, 20.0);
    let (mut reps, t1) = (0u64, Instant::now());
    while reps == 0 || t1.elapsed().as_secs_f64() < target_s {
        let _ = net.predict(inputs.view()).expect("predict");
        reps += 1;
    }
    let engine_ips = (reps as usize * ds.len()) as f64 / t1.elapsed().as_secs_f64();

    println!(
        "precision bench: family {family} at {:?} bits ({} models), chip1, {} voltages x {} samples, {} test images",
        widths,
        variants.len(),
        spec.grid_v.len(),
        spec.offsets,
        ds.len()
    );
    println!("float weights read and validated once: {:.3} s", t_load);
    for (bits, source, s, n) in &ptq {
        println!(
            "  {bits}-bit ({source}): quantized {n} weights in {:.2} ms",
            s * 1e3
        );
    }
    println!(
        "sweep: {:.2} s, {} of {} points ran inference ({} fault-free, {} reused), {} images inferred -> {:.0} images/s",
        t_sweep, st.inferences, st.points, st.clean_points, st.reused_points, st.images_inferred, sweep_ips
    );
    println!(
        "engine: {reps} x {} images in {:.2} s -> {:.0} images/s",
        ds.len(),
        t1.elapsed().as_secs_f64(),
        engine_ips
    );
    println!(
        "sweep/engine throughput ratio: {:.2} (target >= 0.8)",
        sweep_ips / engine_ips
    );
}
