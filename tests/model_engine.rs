//! Model files, datasets and the inference engine, driven like a user: the PyTorch golden fixture, the CLI
//! (`accelsim model show`, `accelsim eval`) on tiny files in a temp dir, and the real Fashion-MNIST when installed.
use std::path::{Path, PathBuf};
use std::process::Command;

use accelsim::data::{self, DatasetKind};
use accelsim::engine::Network;
use accelsim::model::Model;
use ndarray::Array4;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

fn read_f32(st: &safetensors::SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap();
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), v)
}

/// The engine reproduces PyTorch's logits on the fixture's float weights within 1e-4 relative (relative to the
/// largest logit magnitude of each example), and the quantized network stays close to them.
#[test]
fn golden_logits_match_pytorch() {
    let model = Model::load(golden_dir().join("golden_cnn.toml")).unwrap();
    let bytes = std::fs::read(golden_dir().join("golden_io.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (xs, x) = read_f32(&st, "inputs");
    let (ls, want) = read_f32(&st, "logits");
    let x = Array4::from_shape_vec((xs[0], xs[1], xs[2], xs[3]), x).unwrap();
    let got = Network::from_model_float(&model).forward(x.view());
    assert_eq!(got.shape(), &ls[..]);
    let mut worst = 0.0f32;
    for (g, w) in got.rows().into_iter().zip(want.chunks_exact(ls[1])) {
        let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (a, b) in g.iter().zip(w) {
            worst = worst.max((a - b).abs() / scale);
        }
    }
    assert!(worst <= 1e-4, "max relative logit difference {worst:e}");
    // 8-bit quantized weights: same predictions on most examples (a loose sanity bound, not exactness).
    let q = Network::from_model(&model).forward(x.view());
    let diff = (&q - &got).mapv(f32::abs).fold(0.0f32, |m, v| m.max(*v));
    let scale = got.mapv(f32::abs).fold(0.0f32, |m, v| m.max(*v));
    assert!(
        diff < 0.1 * scale,
        "quantized logits drift {diff} vs scale {scale}"
    );
}

fn accelsim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_accelsim"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn model_show_text_and_json() {
    let f = golden_dir().join("golden_cnn.toml");
    let f = f.to_str().unwrap();
    let (code, out, err) = accelsim(&["model", "show", f]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("golden-cnn") && out.contains("groupnorm") && out.contains("weight memory"),
        "{out}"
    );
    let (code, out, err) = accelsim(&["model", "show", f, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let model = Model::load(f).unwrap();
    assert_eq!(v["name"], "golden-cnn");
    assert_eq!(v["method"], "other");
    assert_eq!(v["bits"], 8);
    assert_eq!(v["params"], model.num_params());
    assert_eq!(v["memory_bits"], model.num_params() as u64 * 8);
    for key in ["w_max", "p_train", "clean_error_pct"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    // Errors: one line, exit 2.
    let (code, _, err) = accelsim(&["model", "show", "/nonexistent/m.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: ") && err.trim_end().lines().count() == 1,
        "{err}"
    );
}

fn idx(dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

/// A 1x28x28 model whose prediction is "class 1 if the image mean is above 0.5 else 0" and a tiny IDX test
/// split with known labels: `accelsim eval` must report exactly the planted error.
#[test]
fn eval_cli_on_tiny_dataset() {
    let d = tempfile::tempdir().unwrap();
    let toml = r#"format = "accelsim-model"
version = 1
name = "mean-threshold"
weights = "m.safetensors"
[input]
shape = [1, 28, 28]
dataset = "mnist"
[quantization]
bits = 8
granularity = "layer"
symmetric = false
signed = false
rounding = true
[training]
method = "normal"
clean_error_pct = 20.0
test_images = 10
[[layers]]
name = "gap"
type = "global_avgpool"
[[layers]]
name = "fc"
type = "linear"
in_features = 1
out_features = 10
weight = "fc.weight"
bias = "fc.bias"
"#;
    std::fs::write(d.path().join("m.toml"), toml).unwrap();
    // logit0 = 0, logit1 = x - 0.5 (x = mean pixel / 255), others very negative.
    let mut w = vec![0.0f32; 10];
    w[1] = 1.0;
    let mut b = vec![-10.0f32; 10];
    b[0] = 0.0;
    b[1] = -0.5;
    accelsim::model::write_f32_safetensors(
        &d.path().join("m.safetensors"),
        &[("fc.weight", &[10, 1], &w), ("fc.bias", &[10], &b)],
    )
    .unwrap();
    let n = 10u32;
    let mut pix = vec![];
    let mut labels = vec![];
    for i in 0..n {
        let bright = i % 2 == 0;
        pix.extend(std::iter::repeat_n(if bright { 230u8 } else { 20 }, 784));
        // Two planted mistakes (i = 0 and i = 1 carry the other label).
        let truth = if bright { 1u8 } else { 0 };
        labels.push(if i < 2 { 1 - truth } else { truth });
    }
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("t10k-images-idx3-ubyte"), idx(&[n, 28, 28], &pix)).unwrap();
    std::fs::write(data.join("t10k-labels-idx1-ubyte"), idx(&[n], &labels)).unwrap();
    let m = d.path().join("m.toml");
    let (m, data) = (m.to_str().unwrap(), data.to_str().unwrap());
    let (code, out, err) = accelsim(&["eval", "--model", m, "--data", data, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["images"], 10);
    assert_eq!(v["wrong"], 2);
    assert!((v["clean_error_pct"].as_f64().unwrap() - 20.0).abs() < 1e-9);
    let (code, out, _) = accelsim(&["eval", "--model", m, "--data", data, "--limit", "4"]);
    assert_eq!(code, 0);
    assert!(out.contains("50.00%") && out.contains("of 4"), "{out}");
    // Wrong dataset shape and missing data: one-line user errors.
    let (code, _, err) = accelsim(&["eval", "--model", m, "--data", data, "--dataset", "cifar10"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = accelsim(&[
        "eval",
        "--model",
        m,
        "--data",
        "/nonexistent",
        "--dataset",
        "fashion-mnist",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("apt-get install dataset-fashion-mnist"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// Uses the real Fashion-MNIST test split when installed (Debian package `dataset-fashion-mnist`).
#[test]
fn real_fashion_mnist_when_present() {
    let dir = Path::new(data::DEFAULT_FASHION_MNIST_DIR);
    if !dir.join("t10k-images-idx3-ubyte.gz").exists()
        && !dir.join("t10k-images-idx3-ubyte").exists()
    {
        eprintln!(
            "SKIPPED real_fashion_mnist_when_present: {} not installed",
            dir.display()
        );
        return;
    }
    let ds = data::load_test_split(DatasetKind::FashionMnist, None, None).unwrap();
    assert_eq!(ds.images.shape(), &[10000, 1, 28, 28]);
    // The test split is balanced: 1000 images per class.
    let mut counts = [0usize; 10];
    for &l in &ds.labels {
        counts[l as usize] += 1;
    }
    assert_eq!(counts, [1000; 10]);
    let first = data::load_test_split(
        DatasetKind::FashionMnist,
        None,
        Some(data::PAPER_TEST_IMAGES),
    )
    .unwrap();
    assert_eq!(first.len(), 9000);
    assert_eq!(first.labels[..], ds.labels[..9000]);
    let mean = ds.images.iter().map(|&p| p as f64).sum::<f64>() / ds.images.len() as f64 / 255.0;
    assert!((mean - 0.286).abs() < 0.01, "mean pixel {mean}");
}
