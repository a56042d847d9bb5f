//! A self-made tiny world for tests that drive the binary: small CNNs with deterministic pseudo-random weights,
//! synthetic Fashion-MNIST-format test images and a generated chip1-style fault map, so the tests need neither
//! the shipped models nor the system data set. (Shared by tests/sweep_integrity.rs and tests/sweep_shards.rs.)
#![allow(dead_code)]
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_accelsim"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn gz(path: &Path, bytes: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

/// `n` images of 28x28 whose class is encoded in a bright block position (so a network can be right or wrong);
/// `salt` changes the noise (a different data set with the same headers).
pub fn write_dataset(dir: &Path, n: u32, salt: u64) {
    let mut images = vec![0, 0, 8, 3];
    for d in [n, 28, 28] {
        images.extend_from_slice(&d.to_be_bytes());
    }
    let mut labels = vec![0, 0, 8, 1];
    labels.extend_from_slice(&n.to_be_bytes());
    for i in 0..n as u64 {
        let class = (mix(i) % 10) as u8;
        labels.push(class);
        for p in 0..784u64 {
            let (r, c) = (p / 28, p % 28);
            let block = (r / 10) * 3 + (c / 10);
            let v = if block == class as u64 {
                200
            } else {
                mix(salt ^ (i * 1000 + p)) % 40
            };
            images.push(v as u8);
        }
    }
    gz(&dir.join("t10k-images-idx3-ubyte.gz"), &images);
    gz(&dir.join("t10k-labels-idx1-ubyte.gz"), &labels);
}

/// Writes `FILE_STEM.safetensors` (float32 `tensors`: name, shape, values) and `FILE_STEM.toml` with the tiny
/// world's input (Fashion-MNIST shape and normalization), an 8-or-fewer-bit RQuant scheme at `bits`,
/// `[training] method`, and the `[[layers]]` tables of `layers_toml`; returns the manifest's path.
pub fn write_model_files(
    dir: &Path,
    file_stem: &str,
    name: &str,
    method: &str,
    bits: u32,
    tensors: &[(&str, Vec<usize>, Vec<f32>)],
    layers_toml: &str,
) -> PathBuf {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let st = dir.join(format!("{file_stem}.safetensors"));
    safetensors::serialize_to_file(views, &None, &st).unwrap();
    let manifest = format!(
        r#"format = "accelsim-model"
version = 1
name = "{name}"
weights = "{file_stem}.safetensors"

[input]
shape = [1, 28, 28]
mean = [0.2860]
std = [0.3530]
dataset = "fashion-mnist"

[quantization]
bits = {bits}
granularity = "layer"
symmetric = false
signed = false
rounding = true

[training]
method = "{method}"

{layers_toml}"#
    );
    let path = dir.join(format!("{file_stem}.toml"));
    std::fs::write(&path, manifest).unwrap();
    path
}

/// A tiny conv + linear model `FILE_STEM.toml` in `dir` with manifest `name`; `seed` sets the weights.
pub fn write_model(
    dir: &Path,
    file_stem: &str,
    name: &str,
    method: &str,
    bits: u32,
    seed: u64,
) -> PathBuf {
    let shapes: Vec<(&str, Vec<usize>)> = vec![
        ("conv1.weight", vec![4, 1, 3, 3]),
        ("conv1.bias", vec![4]),
        ("fc.weight", vec![10, 4 * 14 * 14]),
        ("fc.bias", vec![10]),
    ];
    let tensors: Vec<(&str, Vec<usize>, Vec<f32>)> = shapes
        .iter()
        .enumerate()
        .map(|(k, (t, shape))| {
            let n: usize = shape.iter().product();
            let vals = (0..n)
                .map(|i| {
                    ((mix(seed ^ ((k as u64) << 32 | i as u64)) % 2001) as f32 / 1000.0 - 1.0) * 0.1
                })
                .collect();
            (*t, shape.clone(), vals)
        })
        .collect();
    write_model_files(
        dir,
        file_stem,
        name,
        method,
        bits,
        &tensors,
        r#"[[layers]]
name = "conv1"
type = "conv2d"
in_channels = 1
out_channels = 4
kernel = [3, 3]
padding = [1, 1]
weight = "conv1.weight"
bias = "conv1.bias"

[[layers]]
name = "relu1"
type = "relu"

[[layers]]
name = "pool1"
type = "maxpool2d"
kernel = [2, 2]

[[layers]]
name = "flat"
type = "flatten"

[[layers]]
name = "fc"
type = "linear"
in_features = 784
out_features = 10
weight = "fc.weight"
bias = "fc.bias"
"#,
    )
}

/// Generates a chip1-style fault map at `path`.
pub fn write_profile(path: &Path, seed: u32) {
    let out = bin()
        .args([
            "profile", "generate", "--style", "chip1", "--arrays", "4", "--seed",
        ])
        .arg(seed.to_string())
        .arg("--out")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub model: PathBuf,
    pub model4: PathBuf,
    pub profile: PathBuf,
}

impl World {
    /// Two models (8-bit normal, 4-bit randbet), `images` test images, one generated profile `chipx`.
    pub fn new(images: u32) -> World {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), images, 0);
        let model = write_model(
            dir.path(),
            "tiny-normal-8b",
            "tiny-normal-8b",
            "normal",
            8,
            0,
        );
        let model4 = write_model(
            dir.path(),
            "tiny-randbet-4b",
            "tiny-randbet-4b",
            "randbet",
            4,
            0,
        );
        let profile = dir.path().join("chipx.sramprof.gz");
        write_profile(&profile, 7);
        World {
            dir,
            model,
            model4,
            profile,
        }
    }
    pub fn data(&self) -> &Path {
        self.dir.path()
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    /// `accelsim sweep --quiet --data DATA` plus `args`.
    pub fn sweep(&self, args: &[&str]) -> Command {
        let mut c = bin();
        c.args(["sweep", "--quiet", "--data"])
            .arg(self.data())
            .args(args);
        c
    }
    /// The standard small sweep of both models × (chipx, uniform) × 6 voltages × 2 offsets into `out`, plus
    /// `extra` flags.
    pub fn std_sweep(&self, out: &Path, extra: &[&str]) -> Command {
        self.std_sweep_with(self.data(), 2, out, extra)
    }
    /// A sweep that runs for several seconds (41 voltages × 16 offsets; use a world of a few thousand images),
    /// for tests that need a process holding the folder while they try a second one.
    pub fn slow_sweep(&self, out: &Path, offsets: u32, extra: &[&str]) -> Command {
        let models = format!("{},{}", self.model.display(), self.model4.display());
        let profiles = format!("{},uniform", self.profile.display());
        let mut c = bin();
        c.args(["sweep", "--quiet", "--data"]).arg(self.data());
        c.args([
            "--offsets",
            &offsets.to_string(),
            "--grid",
            "1.15,1.0:0.8:0.005",
        ]);
        c.args(["--models", &models, "--profiles", &profiles]);
        c.arg("--out").arg(out).args(extra);
        c
    }
    /// [`World::std_sweep`] with another data folder and number of offsets.
    pub fn std_sweep_with(&self, data: &Path, offsets: u32, out: &Path, extra: &[&str]) -> Command {
        let models = format!("{},{}", self.model.display(), self.model4.display());
        let profiles = format!("{},uniform", self.profile.display());
        let mut c = bin();
        c.args(["sweep", "--quiet", "--data"]).arg(data);
        c.args([
            "--offsets",
            &offsets.to_string(),
            "--grid",
            "1.15,1.0:0.8:0.05",
        ]);
        c.args(["--models", &models, "--profiles", &profiles]);
        c.arg("--out").arg(out).args(extra);
        c
    }
}

/// Runs a command (owned or borrowed) to completion.
pub fn run(mut c: impl std::borrow::BorrowMut<Command>) -> Output {
    c.borrow_mut().output().unwrap()
}

pub fn assert_ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "exit {:?}: {err}", out.status.code());
    err
}

/// Exit 2, one line on stderr starting with `error: `, containing every needle.
pub fn assert_user_error(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
}

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The files of a report bundle.
pub const BUNDLE: [&str; 12] = [
    "sweep.csv",
    "report.md",
    "error_vs_voltage.png",
    "error_vs_voltage.svg",
    "energy_vs_voltage.png",
    "energy_vs_voltage.svg",
    "tradeoff.png",
    "tradeoff.svg",
    "heatmap_error.png",
    "heatmap_error.svg",
    "heatmap_energy.png",
    "heatmap_energy.svg",
];

/// Every bundle file of `a` equals the one of `b`, byte for byte.
pub fn assert_same_bundle(a: &Path, b: &Path) {
    for f in BUNDLE {
        assert!(
            read(&a.join(f)) == read(&b.join(f)),
            "{f} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// Starts the sweep `start()` builds (writing into `out`, which is emptied first) and kills it once its state
/// file lists at least `units` finished units, up to three attempts; panics if every attempt finished before
/// it could be killed (the sweep is too small to test a kill).
pub fn kill_sweep_after_units(start: impl Fn() -> Command, out: &Path, units: usize) {
    for _attempt in 0..3 {
        let _ = std::fs::remove_dir_all(out);
        let mut child = start().stderr(std::process::Stdio::null()).spawn().unwrap();
        let t0 = std::time::Instant::now();
        loop {
            let n = std::fs::read(out.join("sweep-state.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .map_or(0, |v| v["units"].as_array().map_or(0, |a| a.len()));
            if n >= units || t0.elapsed() > std::time::Duration::from_secs(120) {
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            return;
        }
    }
    panic!("the sweep always finished before it could be killed; make it bigger");
}
