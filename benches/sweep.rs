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
//!
//! Two more lines (docs/scale-out.md), measured in the same run:
//! - **shards**: one `accelsim sweep` process against 2 shards (`--shard 0/2`, `1/2`, one thread each) running
//!   at the same time, then `sweep merge`; prints the ratio and checks the merged bundle is byte-identical;
//! - **merge**: `sweep::merge::merge` over synthetic state files holding `ACCELSIM_BENCH_MERGE_UNITS` (default
//!   4096) units in 8 shards.
//!
//! `ACCELSIM_BENCH_PARTS` (comma list of `incremental`, `shards`, `merge`; default all) picks the lines.
use std::time::Instant;

use accelsim::config::HwConfig;
use accelsim::sweep::core::{naive_point, SeriesRunner};
use accelsim::sweep::grid::parse_voltage_grid;
use accelsim::sweep::scenario::{self, DataCache, FaultSpec, LoadedModel};

fn main() {
    let parts =
        std::env::var("ACCELSIM_BENCH_PARTS").unwrap_or_else(|_| "incremental,shards,merge".into());
    let parts: Vec<&str> = parts.split(',').map(str::trim).collect();
    if parts.contains(&"incremental") {
        incremental();
    }
    if parts.contains(&"shards") {
        shards();
    }
    if parts.contains(&"merge") {
        merge_many();
    }
}

fn incremental() {
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
    let mut lm = match LoadedModel::load(&model_path, &mut data, Default::default()) {
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

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

/// Starts `accelsim` with `args` (stdout discarded).
fn accelsim(args: &[&str], threads: Option<usize>) -> std::process::Child {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_accelsim"));
    c.current_dir(env!("CARGO_MANIFEST_DIR")).args(args);
    c.stdout(std::process::Stdio::null());
    if let Some(t) = threads {
        c.env("RAYON_NUM_THREADS", t.to_string());
    }
    c.spawn().expect("spawn accelsim")
}

fn wait_ok(c: std::process::Child) {
    let o = c.wait_with_output().expect("wait");
    assert!(o.status.success(), "accelsim failed");
}

/// One process against two shards at the same time (one thread each, as the Slurm script runs them).
fn shards() {
    let images = std::env::var("ACCELSIM_BENCH_SHARD_IMAGES").unwrap_or_else(|_| "2000".into());
    let dir = std::env::temp_dir().join(format!("accelsim-bench-shards-{}", std::process::id()));
    let (whole, sharded) = (dir.join("whole"), dir.join("sharded"));
    let (w, s) = (whole.display().to_string(), sharded.display().to_string());
    let cfg = [
        "--quiet",
        "--models",
        "fmnist-cnn-normal-8b,fmnist-cnn-randbet-8b",
        "--profiles",
        "chip1,uniform",
        "--offsets",
        "2",
        "--limit",
        images.as_str(),
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        std::iter::once("sweep")
            .chain(cfg.iter().copied())
            .chain(extra.iter().copied())
            .map(String::from)
            .collect()
    };
    if !std::path::Path::new("/usr/share/datasets/fashion-mnist").is_dir() {
        println!("shard bench skipped: Fashion-MNIST not installed");
        return;
    }
    let a = with(&["--out", &w]);
    let t0 = Instant::now();
    wait_ok(accelsim(&refs(&a), None));
    let t_one = t0.elapsed().as_secs_f64();
    // The same sweep in one process on one thread: what each shard of a Slurm array gets (one core per task).
    let serial = dir.join("serial");
    let a1 = with(&["--out", &serial.display().to_string()]);
    let t0 = Instant::now();
    wait_ok(accelsim(&refs(&a1), Some(1)));
    let t_one_1 = t0.elapsed().as_secs_f64();
    let s0 = with(&["--out", &s, "--shard", "0/2"]);
    let s1 = with(&["--out", &s, "--shard", "1/2"]);
    let t1 = Instant::now();
    let c0 = accelsim(&refs(&s0), Some(1));
    let c1 = accelsim(&refs(&s1), Some(1));
    wait_ok(c0);
    wait_ok(c1);
    let t_two = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    wait_ok(accelsim(&["sweep", "merge", &s, "--quiet"], None));
    let t_merge = t2.elapsed().as_secs_f64();
    for f in [
        "sweep.csv",
        "report.md",
        "error_vs_voltage.png",
        "tradeoff.svg",
    ] {
        assert_eq!(
            std::fs::read(whole.join(f)).expect("whole bundle"),
            std::fs::read(sharded.join(f)).expect("merged bundle"),
            "{f}: merged differs from unsharded"
        );
    }
    assert_eq!(
        std::fs::read(whole.join("sweep.csv")).expect("whole bundle"),
        std::fs::read(serial.join("sweep.csv")).expect("one-thread bundle"),
        "sweep.csv: one thread differs from the default thread count"
    );
    println!(
        "shards (2 models x chip1,uniform x 12 voltages x 2 offsets = 8 units, {images} images, {} cores): one process \
         {t_one:.2} s (all cores), {t_one_1:.2} s (one thread) | 2 shards in parallel, one thread each, {t_two:.2} s \
         (+ merge {t_merge:.2} s) | ratio {:.2} against the one-thread process, {:.2} against the all-core process \
         (merged bundle identical)",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        t_two / t_one_1.max(1e-9),
        t_two / t_one.max(1e-9)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `merge` over thousands of synthetic units (valid for the plan, fake numbers) in 8 shards.
fn merge_many() {
    use accelsim::sweep::driver::SweepSpec;
    use accelsim::sweep::merge::{merge, ShardStates};
    use accelsim::sweep::plan::Plan;
    use accelsim::sweep::state::{state_file_name, StateFile, UnitResult};
    use accelsim::sweep::unit::Shard;
    let units_wanted: u32 = std::env::var("ACCELSIM_BENCH_MERGE_UNITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let hw_path = HwConfig::resolve("14nm_sram").expect("shipped hw config");
    let hw = HwConfig::load(&hw_path).expect("hw");
    let names: Vec<String> = ["fmnist-cnn-normal-8b", "fmnist-cnn-randbet-8b"]
        .iter()
        .map(|m| m.to_string())
        .collect();
    let models = scenario::resolve_variants(&names, None, "--models").expect("shipped models");
    let faults = vec![
        FaultSpec::MeasuredUniform,
        FaultSpec::resolve("chip1").expect("chip1"),
    ];
    let per_series = units_wanted.div_ceil((models.len() * faults.len()) as u32);
    let spec = SweepSpec {
        hw,
        hw_path,
        models,
        faults,
        grid_v: parse_voltage_grid(accelsim::cli::sweep::DEFAULT_GRID).unwrap(),
        offsets: per_series.min(1024),
        seeds: per_series.div_ceil(1024),
        seed: 0,
        ecc: Vec::new(),
        rails: Vec::new(),
        data_dir: None,
        skip: 0,
        limit: Some(1000),
        act_ber: 0.0,
    };
    let plan = Plan::new(&spec).expect("plan");
    let mut data = spec.data_cache();
    let fp = match plan.fingerprint(&spec, &mut data) {
        Ok(f) => f,
        Err(e) => {
            println!("merge bench skipped: {e}");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("accelsim-bench-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let n = 8;
    let total = fp.expect.units.len();
    for index in 0..n {
        let shard = Shard { index, count: n };
        let units = fp
            .expect
            .shard_units(shard)
            .iter()
            .map(|k| {
                let (name, images, _) = fp.expect.models[&k.model].clone();
                UnitResult {
                    key: k.clone(),
                    model_name: name,
                    faults_name: fp.expect.faults[&k.faults].clone(),
                    clean_error_pct: 8.5,
                    test_images: images,
                    flipped_bits: (0..spec.grid_v.len() as u64)
                        .map(|i| i * 7 + k.sample as u64 % 5)
                        .collect(),
                    error_pct: (0..spec.grid_v.len())
                        .map(|i| 8.5 + i as f64 * 0.25 + (k.sample % 7) as f64 * 0.01)
                        .collect(),
                    ecc_words: Vec::new(),
                    activation_bits: Vec::new(),
                }
            })
            .collect();
        let file = StateFile {
            format: "accelsim-sweep-state".into(),
            version: 2,
            fingerprint: fp.expect.fingerprint.clone(),
            shard,
            invocation: vec![],
            config: fp.config.clone(),
            units,
        };
        std::fs::write(
            dir.join(state_file_name(shard)),
            serde_json::to_vec_pretty(&file).unwrap(),
        )
        .unwrap();
    }
    let t0 = Instant::now();
    let states = ShardStates::read(&dir).expect("read states");
    let t_read = t0.elapsed().as_secs_f64();
    let m = merge(&spec, &states, 1.0).expect("merge");
    let t_all = t0.elapsed().as_secs_f64();
    assert_eq!(m.units, total);
    println!(
        "merge: {total} units in {n} shard files ({} rows): {t_all:.3} s in all ({t_read:.3} s reading the states; \
         the rest checks inputs and data, validates, builds rows and draws the report)",
        m.rows.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
