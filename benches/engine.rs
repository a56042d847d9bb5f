//! Inference throughput of the engine on the companion's Fashion-MNIST CNN (`cnn-small`, docs/training.md) with
//! random weights, at 1 and 2 rayon threads, next to PyTorch's CPU throughput on the same graph measured by
//! `training/scripts/bench_torch.py` (when `training/.venv` with torch exists).
//!
//! The integer datapath runs on the same model and images, fault-free and with activation bit errors at
//! `--act-ber 1e-2` (every stored activation map read back through the faulty buffers).
//!
//! With the venv's onnxruntime it also runs the networks of `training/scripts/bench_onnx.py`, imported by
//! accelsim, next to onnxruntime's CPU throughput on the same files: the companion's CNN (fp32, and int8 as
//! onnxruntime's `quantize_static` QDQ model, which accelsim imports with its own integer weights and activation
//! parameters), and the MobileNet-style and ResNet-18-size networks (fp32).
//!
//! Run: `cargo bench --bench engine` (env `ENGINE_BENCH_IMAGES`, default 4096; `ENGINE_BENCH_NO_TORCH=1` skips torch
//! and onnxruntime; `ENGINE_BENCH_ONLY=float|int8|int8-faults` times only that engine, for profiling, and
//! `ENGINE_BENCH_ONLY=onnx:PATH` the float engine on an ONNX file, on `ENGINE_BENCH_THREADS` threads).
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use accelsim::config::{HwConfig, Rail};
use accelsim::engine::act_store::{ActivationStore, Reliable};
use accelsim::engine::int8::{Int8Network, Int8Options};
use accelsim::engine::{Inference, Network};
use accelsim::model::{write_f32_safetensors, Model};
use accelsim::sram::act_faults::ActivationFaults;
use ndarray::Array4;
use rand::{Rng, SeedableRng};

const TOML: &str = r#"format = "accelsim-model"
version = 1
name = "cnn-small-random"
weights = "cnn.safetensors"
[input]
shape = [1, 28, 28]
mean = [0.2860]
std = [0.3530]
dataset = "fashion-mnist"
[quantization]
bits = 8
granularity = "layer"
symmetric = false
signed = false
rounding = true
w_max = 0.1
[[layers]]
name = "conv1"
type = "conv2d"
in_channels = 1
out_channels = 16
kernel = [3, 3]
padding = [1, 1]
weight = "conv1.weight"
[[layers]]
name = "gn1"
type = "groupnorm"
groups = 8
channels = 16
weight = "gn1.weight"
bias = "gn1.bias"
[[layers]]
name = "relu1"
type = "relu"
[[layers]]
name = "pool1"
type = "maxpool2d"
kernel = [2, 2]
[[layers]]
name = "conv2"
type = "conv2d"
in_channels = 16
out_channels = 32
kernel = [3, 3]
padding = [1, 1]
weight = "conv2.weight"
[[layers]]
name = "gn2"
type = "groupnorm"
groups = 16
channels = 32
weight = "gn2.weight"
bias = "gn2.bias"
[[layers]]
name = "relu2"
type = "relu"
[[layers]]
name = "pool2"
type = "maxpool2d"
kernel = [2, 2]
[[layers]]
name = "flatten"
type = "flatten"
[[layers]]
name = "fc1"
type = "linear"
in_features = 1568
out_features = 64
weight = "fc1.weight"
bias = "fc1.bias"
[[layers]]
name = "relu3"
type = "relu"
[[layers]]
name = "fc2"
type = "linear"
in_features = 64
out_features = 10
weight = "fc2.weight"
bias = "fc2.bias"
"#;

fn build_model(dir: &Path) -> Model {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
    let shapes: [(&str, Vec<usize>); 8] = [
        ("conv1.weight", vec![16, 1, 3, 3]),
        ("gn1.weight", vec![16]),
        ("gn1.bias", vec![16]),
        ("conv2.weight", vec![32, 16, 3, 3]),
        ("gn2.weight", vec![32]),
        ("gn2.bias", vec![32]),
        ("fc1.weight", vec![64, 1568]),
        ("fc1.bias", vec![64]),
    ];
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = shapes
        .into_iter()
        .map(|(n, s)| {
            let len = s.iter().product();
            let v = (0..len).map(|_| rng.gen_range(-0.1f32..0.1)).collect();
            (n.to_string(), s, v)
        })
        .collect();
    tensors.push((
        "fc2.weight".into(),
        vec![10, 64],
        (0..640).map(|_| rng.gen_range(-0.1f32..0.1)).collect(),
    ));
    tensors.push(("fc2.bias".into(), vec![10], vec![0.0; 10]));
    let refs: Vec<(&str, &[usize], &[f32])> = tensors
        .iter()
        .map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice()))
        .collect();
    write_f32_safetensors(&dir.join("cnn.safetensors"), &refs).expect("write bench weights");
    std::fs::write(dir.join("cnn.toml"), TOML).expect("write bench manifest");
    Model::load(dir.join("cnn.toml")).expect("load bench model")
}

/// Best-of-`reps` images/s of `net`'s predictions on `x` with `threads` rayon threads.
fn throughput(net: &dyn Inference, x: &Array4<f32>, threads: usize, reps: usize) -> f64 {
    throughput_with(net, x, threads, reps, &Reliable)
}

/// Best images/s over `reps` runs with the activation buffers `store`.
fn throughput_with(
    net: &dyn Inference,
    x: &Array4<f32>,
    threads: usize,
    reps: usize,
    store: &dyn ActivationStore,
) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool");
    let n = x.shape()[0] as f64;
    pool.install(|| {
        let predict = || {
            net.predict_images(x.view(), None, store, &|_| {})
                .expect("predict")
        };
        let _ = predict();
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                let p = predict();
                std::hint::black_box(p);
                n / t.elapsed().as_secs_f64()
            })
            .fold(0.0, f64::max)
    })
}

/// 14nm_sram's activation buffers on the scaled rail with random flips at 1e-2 only (no profile fault).
fn act_ber_store() -> ActivationFaults {
    let hw = HwConfig::load_named("14nm_sram")
        .expect("shipped config")
        .with_rails(&[Rail::WeightSram, Rail::ActivationSram])
        .expect("rails");
    ActivationFaults::build(&hw, hw.voltage.nominal_v, None, 1e-2, 1).expect("act faults")
}

/// `ENGINE_BENCH_ONLY=float|int8|int8-faults`: runs only that engine on cnn-small, 1 thread, 20 passes (for `perf
/// record`), and prints its images/s.
fn profile_only(only: &str, model: &Model, net: &Network, x: &Array4<f32>) {
    let calib = x
        .slice(ndarray::s![..x.shape()[0].min(512), .., .., ..])
        .to_owned();
    let int8 =
        Int8Network::build(model, calib.view(), Int8Options::default()).expect("int8 network");
    let r = match only {
        "float" => throughput(net, x, 1, 20),
        "int8" => throughput(&int8, x, 1, 20),
        "int8-faults" => throughput_with(&int8, x, 1, 20, &act_ber_store()),
        other => {
            eprintln!(
                "ENGINE_BENCH_ONLY: unknown engine {other:?} (allowed: float, int8, int8-faults)"
            );
            std::process::exit(2);
        }
    };
    println!("{only}: {r:.0} images/s (1 thread, best of 20)");
}

/// `ENGINE_BENCH_ONLY=onnx:PATH`: imports the ONNX file at PATH (as the ONNX section does) and runs the float
/// engine on random images, 1 thread, best of 7 (for `perf record` on the MobileNet-style or ResNet-18-size
/// networks that `training/scripts/bench_onnx.py --out DIR` writes; `ENGINE_BENCH_IMAGES` images, 256 unless set;
/// `ENGINE_BENCH_THREADS` threads, 1 unless set).
fn profile_onnx(path: &str, images: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = import_onnx(path, "profiled", dir.path());
    let net = Network::from_model(&model);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(2);
    let x = Array4::from_shape_fn((images, 1, 28, 28), |_| rng.gen_range(-0.8f32..2.0));
    let threads: usize = std::env::var("ENGINE_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let r = throughput(&net, &x, threads, 7);
    println!("float on {path}: {r:.1} images/s ({images} images, {threads} thread(s), best of 7)");
}

fn torch_figures(images: usize) -> Option<(f64, f64)> {
    if std::env::var_os("ENGINE_BENCH_NO_TORCH").is_some() {
        return None;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = root.join("training/.venv/bin/python");
    let script = root.join("training/scripts/bench_torch.py");
    if !py.exists() || !script.exists() {
        println!("PyTorch: skipped (no training/.venv or bench_torch.py)");
        return None;
    }
    let out = Command::new(py)
        .arg(script)
        .arg("--images")
        .arg(images.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        println!(
            "PyTorch: skipped ({})",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("failed")
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.lines().last()?).ok()?;
    Some((v["images_per_s_1"].as_f64()?, v["images_per_s_2"].as_f64()?))
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent; keep that fast.
    let quick = !std::env::args().any(|a| a == "--bench");
    let images_env: Option<usize> = std::env::var("ENGINE_BENCH_IMAGES")
        .ok()
        .and_then(|s| s.parse().ok());
    let images = images_env.unwrap_or(if quick { 256 } else { 4096 });
    let dir = tempfile::tempdir().expect("temp dir");
    let model = build_model(dir.path());
    let net = Network::from_model(&model);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
    let x = Array4::from_shape_fn((images, 1, 28, 28), |_| rng.gen_range(-0.8f32..2.0));
    let reps = if quick { 1 } else { 5 };
    if let Ok(only) = std::env::var("ENGINE_BENCH_ONLY") {
        if let Some(path) = only.strip_prefix("onnx:") {
            profile_onnx(path, images_env.unwrap_or(256));
            return;
        }
        profile_only(&only, &model, &net, &x);
        return;
    }
    let r1 = throughput(&net, &x, 1, reps);
    let r2 = throughput(&net, &x, 2, reps);
    println!("engine cnn-small (Fashion-MNIST CNN, {} params, random weights), {images} images, best of {reps}:", model.num_params());
    println!("  accelsim  1 thread : {r1:>10.0} images/s");
    println!(
        "  accelsim  2 threads: {r2:>10.0} images/s  (x{:.2} over 1 thread)",
        r2 / r1
    );
    // The integer datapath (docs/datapath.md) on the same model and images, calibrated on the first 512 images.
    let calib = x
        .slice(ndarray::s![..images.min(512), .., .., ..])
        .to_owned();
    let int8 =
        Int8Network::build(&model, calib.view(), Int8Options::default()).expect("int8 network");
    let i1 = throughput(&int8, &x, 1, reps);
    let i2 = throughput(&int8, &x, 2, reps);
    println!(
        "  int8      1 thread : {i1:>10.0} images/s   int8/float = {:.2} ({} GEMM)",
        i1 / r1,
        int8.options().path.name()
    );
    println!(
        "  int8      2 threads: {i2:>10.0} images/s   int8/float = {:.2}",
        i2 / r2
    );
    // Activation bit errors at 1e-2 on every stored map (14nm_sram's activation buffers, random flips only).
    let store = act_ber_store();
    let f1 = throughput_with(&int8, &x, 1, reps, &store);
    let f2 = throughput_with(&int8, &x, 2, reps, &store);
    println!(
        "  int8, act-ber 1e-2 1 thread : {f1:>7.0} images/s   cost vs fault-free int8 = {:.2}x (measured BER {:.2e})",
        i1 / f1,
        store.counts().ber()
    );
    println!(
        "  int8, act-ber 1e-2 2 threads: {f2:>7.0} images/s   cost vs fault-free int8 = {:.2}x",
        i2 / f2
    );
    if quick {
        return;
    }
    if let Some((t1, t2)) = torch_figures(images) {
        println!(
            "  PyTorch   1 thread : {t1:>10.0} images/s   accelsim/PyTorch = {:.2}",
            r1 / t1
        );
        println!(
            "  PyTorch   2 threads: {t2:>10.0} images/s   accelsim/PyTorch = {:.2}",
            r2 / t2
        );
    }
    onnx_bench();
}

/// The MobileNet-style and ResNet-18-size networks of `training/scripts/bench_onnx.py`: the script exports them
/// and times onnxruntime (fp32, 1 and 2 threads); accelsim imports the same ONNX files (8-bit RQuant, as `accelsim
/// import` does by default) and runs them on the same number of random images.
fn onnx_bench() {
    if std::env::var_os("ENGINE_BENCH_NO_TORCH").is_some() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = root.join("training/.venv/bin/python");
    let script = root.join("training/scripts/bench_onnx.py");
    if !py.exists() {
        println!("ONNX models: skipped (no training/.venv with torch and onnxruntime)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(py)
        .arg(script)
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("run bench_onnx.py");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        println!(
            "ONNX models: skipped ({})",
            err.lines().last().unwrap_or("bench_onnx.py failed")
        );
        return;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(v) = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    else {
        println!("ONNX models: skipped (no JSON from bench_onnx.py)");
        return;
    };
    cnn_vs_onnxruntime(&v["cnn"], dir.path());
    for name in ["mobilenet", "resnet18"] {
        let r = &v[name];
        let (Some(path), Some(n), Some(o1), Some(o2)) = (
            r["onnx"].as_str(),
            r["images"].as_u64(),
            r["ort_1"].as_f64(),
            r["ort_2"].as_f64(),
        ) else {
            continue;
        };
        let model = import_onnx(path, name, dir.path());
        let net = Network::from_model(&model);
        let mut rng = rand_pcg::Pcg64::seed_from_u64(2);
        let x = Array4::from_shape_fn((n as usize, 1, 28, 28), |_| rng.gen_range(-0.8f32..2.0));
        let (a1, a2) = (throughput(&net, &x, 1, 3), throughput(&net, &x, 2, 3));
        println!(
            "engine {name} (ONNX import, {} params, random weights), {n} images, best of 3:",
            model.num_params()
        );
        println!("  accelsim     1 thread : {a1:>8.1} images/s   onnxruntime {o1:>8.1}   accelsim/onnxruntime = {:.2}", a1 / o1);
        println!("  accelsim     2 threads: {a2:>8.1} images/s   onnxruntime {o2:>8.1}   accelsim/onnxruntime = {:.2}", a2 / o2);
    }
}

/// Imports an ONNX file (8-bit RQuant PTQ for a float model; its own scheme for a QDQ model) and loads it.
fn import_onnx(path: &str, name: &str, dir: &Path) -> Model {
    let opts = accelsim::onnx::ImportOptions {
        name: name.into(),
        dataset: None,
        mean: vec![],
        std: vec![],
        quant: accelsim::quant::QuantConfig::rquant(8),
    };
    let imported =
        accelsim::onnx::import_file(Path::new(path), name, &opts).expect("import bench model");
    let manifest =
        accelsim::onnx::write_model(&dir.join(name), &imported).expect("write bench model");
    Model::load(manifest).expect("load bench model")
}

/// The companion's CNN (random weights) through onnxruntime fp32 and int8 (QDQ) and through accelsim's float
/// and int8 datapaths, on the same files and images.
fn cnn_vs_onnxruntime(r: &serde_json::Value, dir: &Path) {
    let (Some(fp), Some(qdq), Some(n)) =
        (r["onnx"].as_str(), r["qdq"].as_str(), r["images"].as_u64())
    else {
        println!("cnn vs onnxruntime: skipped (no cnn entry from bench_onnx.py)");
        return;
    };
    let float_model = import_onnx(fp, "cnn", dir);
    let qdq_model = import_onnx(qdq, "cnn_qdq", dir);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
    let x = Array4::from_shape_fn((n as usize, 1, 28, 28), |_| rng.gen_range(-0.8f32..2.0));
    let calib = x
        .slice(ndarray::s![..(n as usize).min(512), .., .., ..])
        .to_owned();
    let net = Network::from_model(&float_model);
    let int8 =
        Int8Network::build(&qdq_model, calib.view(), Int8Options::default()).expect("int8 network");
    println!("engine cnn-small as ONNX (random weights; int8 = onnxruntime's quantize_static QDQ model), {n} images, best of 3:");
    for t in [1usize, 2] {
        let (a, i) = (throughput(&net, &x, t, 3), throughput(&int8, &x, t, 3));
        let (o, oi) = (
            r[format!("ort_{t}")].as_f64().unwrap_or(f64::NAN),
            r[format!("ort_int8_{t}")].as_f64().unwrap_or(f64::NAN),
        );
        println!(
            "  {t} thread(s): accelsim float {a:>8.0}  int8 {i:>8.0}   onnxruntime fp32 {o:>8.0}  int8 {oi:>8.0} images/s"
        );
        println!(
            "               int8/float = {:.2}   accelsim int8 / onnxruntime fp32 = {:.2}   / onnxruntime int8 = {:.2}   accelsim float / onnxruntime fp32 = {:.2}",
            i / a,
            i / o,
            i / oi,
            a / o
        );
    }
}
