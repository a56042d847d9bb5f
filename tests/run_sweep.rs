//! Drives `accelsim run` and `accelsim sweep` like a user, on a self-made tiny world: a small CNN with
//! deterministic pseudo-random weights, 64 synthetic Fashion-MNIST-format test images and a generated chip1-style
//! fault map, so the test needs neither the shipped models nor the system data set.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_accelsim"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn gz(path: &Path, bytes: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

/// 64 images of 28x28 whose class is encoded in a bright block position, so a network can be right or wrong.
fn write_dataset(dir: &Path) {
    let n = 64u32;
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
                (mix(i * 1000 + p) % 40) as u8 as u64
            };
            images.push(v as u8);
        }
    }
    gz(&dir.join("t10k-images-idx3-ubyte.gz"), &images);
    gz(&dir.join("t10k-labels-idx1-ubyte.gz"), &labels);
}

fn write_model(dir: &Path, name: &str, method: &str, bits: u32) -> PathBuf {
    let shapes: Vec<(&str, Vec<usize>)> = vec![
        ("conv1.weight", vec![4, 1, 3, 3]),
        ("conv1.bias", vec![4]),
        ("fc.weight", vec![10, 4 * 14 * 14]),
        ("fc.bias", vec![10]),
    ];
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (k, (t, shape)) in shapes.iter().enumerate() {
        let n: usize = shape.iter().product();
        let vals: Vec<f32> = (0..n)
            .map(|i| ((mix((k as u64) << 32 | i as u64) % 2001) as f32 / 1000.0 - 1.0) * 0.1)
            .collect();
        data.push((
            t.to_string(),
            shape.clone(),
            vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let st = dir.join(format!("{name}.safetensors"));
    safetensors::serialize_to_file(views, &None, &st).unwrap();
    let manifest = format!(
        r#"format = "accelsim-model"
version = 1
name = "{name}"
weights = "{name}.safetensors"

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

[[layers]]
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
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, manifest).unwrap();
    path
}

struct World {
    dir: tempfile::TempDir,
    model: PathBuf,
    model4: PathBuf,
    profile: PathBuf,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path());
        let model = write_model(dir.path(), "tiny-normal-8b", "normal", 8);
        let model4 = write_model(dir.path(), "tiny-randbet-4b", "randbet", 4);
        let profile = dir.path().join("chipx.sramprof.gz");
        let out = bin()
            .args([
                "profile", "generate", "--style", "chip1", "--arrays", "4", "--seed", "7", "--out",
            ])
            .arg(&profile)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        World {
            dir,
            model,
            model4,
            profile,
        }
    }
    fn data(&self) -> &Path {
        self.dir.path()
    }
}

fn run_json(w: &World, extra: &[&str]) -> serde_json::Value {
    let out = bin()
        .args([
            "run",
            "--hw",
            "14nm_sram.toml",
            "--json",
            "--offsets",
            "2",
            "--model",
        ])
        .arg(&w.model)
        .arg("--profile")
        .arg(&w.profile)
        .arg("--data")
        .arg(w.data())
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_user_error(out: Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "`{needle}` not in: {err}");
}

#[test]
fn run_reports_faults_accuracy_cycles_energy() {
    let w = World::new();
    let nominal = run_json(&w, &["--vdd", "1.15"]);
    for key in [
        "ber",
        "clean_error_pct",
        "faulty_error_pct",
        "faulty_error_std_pct",
        "cycles",
        "energy_pj",
        "energy_saving_pct",
    ] {
        assert!(
            nominal.get(key).is_some_and(|v| v.is_number()),
            "missing {key}: {nominal}"
        );
    }
    // At the nominal voltage nothing fails: faulty error equals clean error, no savings.
    assert_eq!(nominal["ber"].as_f64().unwrap(), 0.0);
    assert_eq!(nominal["faulty_error_pct"], nominal["clean_error_pct"]);
    assert!(nominal["energy_saving_pct"].as_f64().unwrap().abs() < 1e-9);
    let low = run_json(&w, &["--vdd", "0.8"]);
    assert!(low["ber"].as_f64().unwrap() > 1e-3, "{low}");
    assert!(low["energy_saving_pct"].as_f64().unwrap() > 0.0);
    assert!(low["energy_pj"].as_f64().unwrap() < nominal["energy_pj"].as_f64().unwrap());
    assert_eq!(low["cycles"], nominal["cycles"]);
    // --ber replaces the profile: the measured rate is close to P (W·m ≈ 8k bits, P = 5%).
    let b = run_json(&w, &["--vdd", "1.15", "--ber", "0.05"]);
    let ber = b["ber"].as_f64().unwrap();
    assert!((ber - 0.05).abs() < 0.01, "ber {ber}");
    // --skip leaves out the first images: 64 images = 40 skipped + 24 evaluated.
    let all = run_json(&w, &["--vdd", "1.15"]);
    let tail = run_json(&w, &["--vdd", "1.15", "--skip", "40"]);
    assert_eq!(all["test_images"], 64);
    assert_eq!(tail["test_images"], 24);
    assert_eq!(tail["first_test_image"], 40);
    let head = run_json(&w, &["--vdd", "1.15", "--limit", "40"]);
    // The clean mistakes of the whole set split exactly into those of the first 40 and of the last 24.
    let mistakes = |v: &serde_json::Value| {
        (v["clean_error_pct"].as_f64().unwrap() * v["test_images"].as_f64().unwrap() / 100.0)
            .round()
    };
    assert_eq!(mistakes(&all), mistakes(&head) + mistakes(&tail));
    // Text output works too.
    let out = bin()
        .args(["run", "--hw", "14nm_sram", "--vdd", "0.9", "--model"])
        .arg(&w.model)
        .arg("--profile")
        .arg(&w.profile)
        .arg("--data")
        .arg(w.data())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bit error rate") && text.contains("energy"),
        "{text}"
    );
}

#[test]
fn user_errors_are_one_line_exit_2() {
    let w = World::new();
    let base = |args: &[&str]| {
        let mut c = bin();
        c.arg("run").args(args).arg("--data").arg(w.data());
        c.output().unwrap()
    };
    let model = w.model.to_str().unwrap();
    let bad_cfg = w.dir.path().join("bad.toml");
    std::fs::write(&bad_cfg, "name = \"x\"\nbnaks = 3\n").unwrap();
    assert_user_error(
        base(&[
            "--hw",
            bad_cfg.to_str().unwrap(),
            "--vdd",
            "0.9",
            "--model",
            model,
        ]),
        "bad.toml",
    );
    assert_user_error(
        base(&["--hw", "no_such_hw", "--vdd", "0.9", "--model", model]),
        "no_such_hw",
    );
    // Below the profile's floor (vdd_rel 0.6 < 0.75) and outside the config's range.
    assert_user_error(
        base(&[
            "--vdd",
            "0.6",
            "--model",
            model,
            "--profile",
            w.profile.to_str().unwrap(),
        ]),
        "0.6",
    );
    assert_user_error(base(&["--vdd", "9", "--model", model]), "--vdd");
    assert_user_error(
        base(&["--vdd", "0.9", "--model", "no-such-model"]),
        "no-such-model",
    );
    assert_user_error(
        base(&["--vdd", "0.9", "--model", model, "--ber", "2"]),
        "--ber",
    );
    assert_user_error(
        base(&["--vdd", "0.9", "--model", model, "--skip", "64"]),
        "--skip 64",
    );
    let sweep = bin()
        .args([
            "sweep", "--grid", "0.9:x:1", "--models", model, "--quiet", "--out",
        ])
        .arg(w.dir.path().join("s"))
        .output()
        .unwrap();
    assert_user_error(sweep, "grid");
}

fn sweep(w: &World, out: &Path, grid: &str) -> Output {
    bin()
        .args([
            "sweep",
            "--quiet",
            "--offsets",
            "2",
            "--grid",
            grid,
            "--models",
        ])
        .arg(format!("{},{}", w.model.display(), w.model4.display()))
        .arg("--profiles")
        .arg(format!("{},uniform", w.profile.display()))
        .arg("--data")
        .arg(w.data())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[derive(Debug, serde::Deserialize)]
struct Row {
    model: String,
    profile: String,
    vdd_v: f64,
    ber: f64,
    clean_error_pct: f64,
    faulty_error_pct: f64,
    weight_sram_energy_pj: f64,
    energy_pj: f64,
}

#[test]
fn sweep_is_monotone_resumable_and_fingerprinted() {
    let w = World::new();
    let out = w.dir.path().join("reports");
    let grid = "1.15,1.0:0.8:0.05";
    let o = sweep(&w, &out, grid);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut rdr = csv::Reader::from_path(out.join("sweep.csv")).unwrap();
    let rows: Vec<Row> = rdr.deserialize().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 2 * 2 * 6);
    for model in ["tiny-normal-8b", "tiny-randbet-4b"] {
        for profile in ["chipx", "uniform"] {
            let mut s: Vec<&Row> = rows
                .iter()
                .filter(|r| r.model == model && r.profile == profile)
                .collect();
            assert_eq!(s.len(), 6, "{model}/{profile}");
            s.sort_by(|a, b| b.vdd_v.total_cmp(&a.vdd_v));
            // Nominal: no faults, faulty error = clean error.
            assert_eq!(s[0].ber, 0.0);
            assert_eq!(s[0].faulty_error_pct, s[0].clean_error_pct);
            for p in s.windows(2) {
                assert!(
                    p[1].ber >= p[0].ber,
                    "BER fell as the voltage dropped: {p:?}"
                );
                assert!(
                    p[1].weight_sram_energy_pj <= p[0].weight_sram_energy_pj,
                    "{p:?}"
                );
                assert!(p[1].energy_pj <= p[0].energy_pj, "{p:?}");
            }
            assert!(s.last().unwrap().ber > 0.0);
        }
    }
    for f in [
        "report.md",
        "error_vs_voltage.png",
        "error_vs_voltage.svg",
        "tradeoff.png",
        "energy_vs_voltage.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let csv_before = std::fs::read_to_string(out.join("sweep.csv")).unwrap();

    // The sweep's incremental path gives the same numbers as independent `run`s at single points (the second
    // profile of a model and the second model are the cases where state left over from earlier work could leak).
    for (model, profile, vdd) in [
        (&w.model, "uniform", 0.85),
        (&w.model4, "chipx", 0.8),
        (&w.model4, "uniform", 0.9),
    ] {
        let prof = if profile == "uniform" {
            PathBuf::from("uniform")
        } else {
            w.profile.clone()
        };
        let o = bin()
            .args([
                "run",
                "--json",
                "--offsets",
                "2",
                "--vdd",
                &vdd.to_string(),
                "--model",
            ])
            .arg(model)
            .arg("--profile")
            .arg(&prof)
            .arg("--data")
            .arg(w.data())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let name = model.file_stem().unwrap().to_str().unwrap();
        let row = rows
            .iter()
            .find(|r| r.model == name && r.profile == profile && r.vdd_v == vdd)
            .unwrap();
        assert_eq!(
            j["faulty_error_pct"].as_f64().unwrap(),
            row.faulty_error_pct,
            "{name}/{profile}@{vdd}"
        );
        let ber = j["ber"].as_f64().unwrap();
        assert!(
            (ber - row.ber).abs() <= 1e-12 * row.ber.abs(),
            "{name}/{profile}@{vdd}: {ber} vs {}",
            row.ber
        );
    }

    // Resume: nothing left to compute, identical CSV.
    let again = sweep(&w, &out, grid);
    assert!(again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("0 units computed, 8 resumed"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("sweep.csv")).unwrap(),
        csv_before
    );

    // Kill simulation: drop one unit from the state; the resumed sweep recomputes just that one, same numbers.
    let state_path = out.join("sweep-state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["units"].as_array_mut().unwrap().pop();
    std::fs::write(&state_path, serde_json::to_string(&state).unwrap()).unwrap();
    let resumed = sweep(&w, &out, grid);
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("1 units computed, 7 resumed"));
    assert_eq!(
        std::fs::read_to_string(out.join("sweep.csv")).unwrap(),
        csv_before
    );

    // A different configuration in the same folder fails loudly.
    assert_user_error(sweep(&w, &out, "1.15,0.9"), "--fresh");
}
