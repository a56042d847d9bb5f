//! `--ecc` end to end through the binary: a hand-made 512x72 fault map puts 1, 2 and 3 errors into known (72,64)
//! SECDED codewords of a tiny model; the JSON counts and the weights read back (`--image-out`) are checked
//! against what the code must do (docs/ecc.md). Also: shipped-style 64-column chips and uniform errors work
//! with `--ecc secded` and keep the unprotected run's raw bit errors, and bad ECC input is a one-line error.
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
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path());
        let model = write_model(dir.path(), "tiny-normal-8b", "normal", 8);
        World { dir, model }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Hsiao (72,64) H columns of the data bits, from the rule in docs/ecc.md (odd weight ≥ 3, lightest first,
/// numeric order within a weight), written independently of the library.
fn hsiao64_columns() -> Vec<u32> {
    let mut c: Vec<u32> = (0..256u32)
        .filter(|v| v.count_ones() >= 3 && v.count_ones() % 2 == 1)
        .collect();
    c.sort_by_key(|v| (v.count_ones(), *v));
    c.truncate(64);
    c
}

/// The hand-made map (array, row, physical column) of persistent flipping cells failing below vdd_rel 0.9.
/// With the default linear mapping, word w of array 0 is row w and holds elements 8w..8w+8; data bit b of the
/// word is column b (element 8w + b/8, bit b%8); check bit j is column 64 + j.
const CELLS: [(u32, u32); 10] = [
    (0, 3),  // row 0: one data error (element 0 bit 3)                 -> corrected
    (1, 9),  // row 1: element 9 bit 1 ...
    (1, 70), //        ... and check bit 6: two errors                  -> detected
    (2, 0),  // row 2: data bits 0, 1, 4 (element 16 bits 0, 1, 4):
    (2, 1),  //        syndrome 7^11^19 = 31 = column of data bit 56,
    (2, 4),  //        so bit 56 (element 23 bit 0) is "corrected"      -> silent (miscorrected)
    (3, 0),  // row 3: data bits 0, 1, 26 (elements 24 bits 0, 1; 27 bit 2):
    (3, 1),  //        syndrome 7 ^ 11 ^ col(26) = 93: odd, no column  -> detected
    (3, 26),
    (4, 66), // row 4: check bit 2 alone                               -> corrected, data untouched
];

fn write_handmade_profile(path: &Path) {
    let mut s = String::from(
        "format = accelsim-sram-profile\nversion = 1\nname = handmade\nsource = tests/ecc.rs\narrays = 32\n\
         rows = 512\ncolumns = 72\nfloor_vdd_rel = 0.75\n",
    );
    s.push_str(&format!("failing_cells = {}\n", CELLS.len()));
    s.push_str("array,row,column,fail_vdd_rel,kind,p_access\n");
    for (row, col) in CELLS {
        s.push_str(&format!("0,{row},{col},0.9000,f,1\n"));
    }
    std::fs::write(path, s).unwrap();
}

fn run(w: &World, hw: &Path, profile: &Path, vdd: &str, extra: &[&str]) -> Output {
    bin()
        .args(["run", "--json", "--offsets", "1", "--vdd", vdd, "--hw"])
        .arg(hw)
        .arg("--model")
        .arg(&w.model)
        .arg("--profile")
        .arg(profile)
        .arg("--data")
        .arg(w.dir.path())
        .args(extra)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn one_line_user_error(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in: {err}");
    }
}

fn image(path: &Path) -> Vec<u8> {
    match accelsim::npy::read(path).unwrap().data {
        accelsim::npy::NpyData::U8(v) => v,
        other => panic!("{}", other.dtype_name()),
    }
}

/// A copy of the shipped default config with `[weight_sram]` keys set (replacing the file's own lines for them).
fn hw_with(w: &World, name: &str, keys: &str) -> PathBuf {
    let names: Vec<String> = keys
        .lines()
        .filter_map(|l| l.split('=').next())
        .map(|k| format!("{} =", k.trim()))
        .collect();
    let text: String = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("hw_configs/14nm_sram.toml"),
    )
    .unwrap()
    .lines()
    .filter(|l| !names.iter().any(|n| l.starts_with(n.as_str())))
    .map(|l| format!("{l}\n"))
    .collect();
    let text = text.replace("[weight_sram]\n", &format!("[weight_sram]\n{keys}\n"));
    let p = w.path(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn one_two_and_three_errors_per_codeword_decode_as_secded_must() {
    let w = World::new();
    let prof = w.path("handmade.sramprof");
    write_handmade_profile(&prof);
    let cols = hsiao64_columns();
    assert_eq!(cols[0] ^ cols[1] ^ cols[4], cols[56]);
    let s3 = cols[0] ^ cols[1] ^ cols[26];
    assert!(s3.count_ones() % 2 == 1 && !cols.contains(&s3) && !s3.is_power_of_two());

    let zero_hw = hw_with(&w, "zero.toml", "ecc = \"secded\"\ndue = \"zero\"");
    // At V_min nothing fails: the clean image.
    let clean_path = w.path("clean.npy");
    let r = json(&run(
        &w,
        &zero_hw,
        &prof,
        "1.0",
        &["--image-out", clean_path.to_str().unwrap()],
    ));
    assert_eq!(r["ecc_corrected_words"], 0.0);
    let clean = image(&clean_path);

    let out_path = w.path("zero.npy");
    let r = json(&run(
        &w,
        &zero_hw,
        &prof,
        "0.85",
        &["--image-out", out_path.to_str().unwrap()],
    ));
    assert_eq!(r["ecc"], "secded");
    assert_eq!(r["ecc_code"], "secded(72,64)");
    assert_eq!(r["ecc_corrected_words"], 2.0, "{r}");
    assert_eq!(r["ecc_detected_words"], 2.0, "{r}");
    assert_eq!(r["ecc_silent_words"], 1.0, "{r}");
    // Raw weight-bit errors before decoding: 1 + 1 + 3 + 3 (check bits are not weight bits).
    assert_eq!(r["flipped_bits_mean"], 8.0, "{r}");
    let weights = r["weights"].as_u64().unwrap() as usize;
    assert_eq!(
        r["ecc_codewords"].as_u64().unwrap() as usize,
        weights.div_ceil(8)
    );

    // The code nearest 0.0 of conv1.weight (elements 0..36), the value zeroed weights take.
    let model = accelsim::model::Model::load(&w.model).unwrap();
    let q = model.quantized(0);
    let got = image(&out_path);
    let mut want = clean.clone();
    want[16] ^= 0b1_0011;
    want[23] ^= 1;
    let zeroed: Vec<usize> = (8..16).chain(24..32).collect();
    for &e in &zeroed {
        want[e] = got[e];
    }
    assert_eq!(
        got, want,
        "only the silent and the zeroed words differ from the clean weights"
    );
    let z = got[8];
    assert!(zeroed.iter().all(|&e| got[e] == z));
    let mut best = f32::INFINITY;
    for c in 0..=255u8 {
        let mut v = vec![0f32; 36];
        q.dequantize_u8_into(&[c; 36], &mut v).unwrap();
        best = best.min(v[0].abs());
    }
    let mut vz = vec![0f32; 36];
    q.dequantize_u8_into(&[z; 36], &mut vz).unwrap();
    assert_eq!(
        vz[0].abs(),
        best,
        "zeroed weights take the code nearest 0.0"
    );

    // keep: detected words pass their raw bits on.
    let keep_hw = hw_with(&w, "keep.toml", "ecc = \"secded\"\ndue = \"keep\"");
    let keep_path = w.path("keep.npy");
    let r = json(&run(
        &w,
        &keep_hw,
        &prof,
        "0.85",
        &["--image-out", keep_path.to_str().unwrap()],
    ));
    assert_eq!(r["ecc_detected_words"], 2.0);
    let mut want = clean.clone();
    want[9] ^= 0b10;
    want[16] ^= 0b1_0011;
    want[23] ^= 1;
    want[24] ^= 0b11;
    want[27] ^= 0b100;
    assert_eq!(image(&keep_path), want);

    // The 72-column map does not fit the unprotected 64-column arrays, nor (65,64) parity: one-line errors.
    let plain = Path::new(env!("CARGO_MANIFEST_DIR")).join("hw_configs/14nm_sram.toml");
    one_line_user_error(&run(&w, &plain, &prof, "0.85", &[]), &["72", "64"]);
    one_line_user_error(
        &run(&w, &plain, &prof, "0.85", &["--ecc", "parity"]),
        &["parity(65,64)", "72 columns"],
    );
}

#[test]
fn shipped_style_chips_and_uniform_errors_work_with_secded() {
    let w = World::new();
    let chip = w.path("chipx.sramprof.gz");
    let out = bin()
        .args([
            "profile", "generate", "--style", "chip2", "--arrays", "4", "--seed", "7", "--out",
        ])
        .arg(&chip)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hw = Path::new(env!("CARGO_MANIFEST_DIR")).join("hw_configs/14nm_sram.toml");
    // A 64-column chip gets generated check-bit columns; the weight bits keep the unprotected run's faults.
    let none = json(&run(&w, &hw, &chip, "0.8", &["--seeds", "2"]));
    let sec = json(&run(
        &w,
        &hw,
        &chip,
        "0.8",
        &["--seeds", "2", "--ecc", "secded"],
    ));
    assert_eq!(none["flipped_bits_mean"], sec["flipped_bits_mean"]);
    assert!(none["flipped_bits_mean"].as_f64().unwrap() > 10.0, "{none}");
    assert!(sec["ecc_corrected_words"].as_f64().unwrap() > 0.0, "{sec}");
    assert_eq!(none["ecc_corrected_words"], 0.0);
    assert!(sec["energy_pj"].as_f64().unwrap() > none["energy_pj"].as_f64().unwrap());
    assert!(sec["cycles"].as_u64().unwrap() > none["cycles"].as_u64().unwrap());
    assert_eq!(
        sec["nominal_energy_pj"], none["nominal_energy_pj"],
        "savings are against the unprotected chip"
    );

    // Uniform errors at p = 1%: same raw errors, and SECDED corrects single errors and detects double ones.
    let u = Path::new("uniform");
    let none = json(&run(&w, &hw, u, "1.0", &["--ber", "0.01", "--seeds", "3"]));
    let sec = json(&run(
        &w,
        &hw,
        u,
        "1.0",
        &["--ber", "0.01", "--seeds", "3", "--ecc", "secded"],
    ));
    assert_eq!(none["flipped_bits_mean"], sec["flipped_bits_mean"]);
    let words = sec["ecc_codewords"].as_f64().unwrap();
    let (c, d) = (
        sec["ecc_corrected_words"].as_f64().unwrap() / words,
        sec["ecc_detected_words"].as_f64().unwrap() / words,
    );
    // P(1 error in 72 bits) = 35.0%, P(2 errors) = 12.4% at p = 1% (binomial); generous bounds for 987 words.
    assert!((0.29..0.41).contains(&c), "corrected share {c}");
    assert!((0.08..0.17).contains(&d), "detected share {d}");
}

#[test]
fn bad_ecc_input_is_a_one_line_error() {
    let w = World::new();
    let hw = Path::new(env!("CARGO_MANIFEST_DIR")).join("hw_configs/14nm_sram.toml");
    let u = Path::new("uniform");
    let out = run(&w, &hw, u, "0.9", &["--ecc", "hamming"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("none, parity, secded"));
    let bad = hw_with(&w, "bad.toml", "ecc = \"secded\"\ninterleave = 3");
    one_line_user_error(
        &run(&w, &bad, u, "0.9", &[]),
        &["weight_sram.interleave", "bad.toml", "1"],
    );
    let bad = hw_with(&w, "bad2.toml", "ecc_data_bits = 48");
    one_line_user_error(
        &run(&w, &bad, u, "0.9", &[]),
        &["weight_sram.ecc_data_bits", "16, 32 or 64"],
    );
    // interleave 2 does not fit one (72,64) codeword per row, but does fit (39,32): checked when --ecc selects it.
    let il = hw_with(&w, "il.toml", "interleave = 2");
    one_line_user_error(
        &run(&w, &il, u, "0.9", &["--ecc", "secded"]),
        &["--ecc secded", "weight_sram.interleave"],
    );
    let il32 = hw_with(&w, "il32.toml", "interleave = 2\necc_data_bits = 32");
    let r = json(&run(&w, &il32, u, "0.8", &["--ecc", "secded"]));
    assert_eq!(r["ecc_code"], "secded(39,32)");
    assert_eq!(r["ecc_interleave"], 2);
}

fn sweep(w: &World, profile: &Path, out: &Path, extra: &[&str]) -> Output {
    bin()
        .args([
            "sweep",
            "--quiet",
            "--grid",
            "1.0,0.85,0.8",
            "--offsets",
            "2",
            "--profiles",
        ])
        .arg(profile)
        .arg("--models")
        .arg(&w.model)
        .arg("--data")
        .arg(w.dir.path())
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn csv_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            header
                .iter()
                .cloned()
                .zip(rec.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}

#[test]
fn sweep_has_an_ecc_axis_with_counts_per_point() {
    let w = World::new();
    let chip = w.path("chipx.sramprof.gz");
    let out = bin()
        .args([
            "profile", "generate", "--style", "chip1", "--arrays", "4", "--seed", "9", "--out",
        ])
        .arg(&chip)
        .output()
        .unwrap();
    assert!(out.status.success());
    let (plain_dir, ecc_dir) = (w.path("plain"), w.path("ecc"));
    let o = sweep(&w, &chip, &plain_dir, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = sweep(&w, &chip, &ecc_dir, &["--ecc", "none,secded"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plain = csv_rows(&plain_dir.join("sweep.csv"));
    let rows = csv_rows(&ecc_dir.join("sweep.csv"));
    assert_eq!(plain.len(), 3);
    assert_eq!(rows.len(), 6);
    assert!(plain.iter().all(|r| r["ecc"] == "none"));
    let (none, sec): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r["ecc"] == "none");
    assert_eq!(sec.len(), 3);
    assert!(sec.iter().all(|r| r["ecc"] == "secded"));
    // The unprotected rows are the plain sweep's, and the raw bit errors are the same under SECDED.
    for ((a, b), s) in plain.iter().zip(&none).zip(&sec) {
        assert_eq!(a, *b);
        assert_eq!(a["flipped_bits"], s["flipped_bits"]);
    }
    let num = |r: &std::collections::HashMap<String, String>, k: &str| r[k].parse::<f64>().unwrap();
    // At 1.0 V nothing fails; below, SECDED corrects words and every point carries its counts.
    assert_eq!(num(sec[0], "ecc_corrected_words"), 0.0);
    assert!(num(sec[2], "ecc_corrected_words") > 0.0);
    assert!(num(none[2], "ecc_corrected_words") == 0.0);
    assert!(num(sec[1], "energy_pj") > num(none[1], "energy_pj"));
    let report = std::fs::read_to_string(ecc_dir.join("report.md")).unwrap();
    assert!(report.contains("tiny-normal-8b + secded"), "{report}");
    assert!(report.contains("secded(72,64)"), "{report}");
    // Resuming computes nothing, and the unprotected sweep's state is written as before the axis existed.
    let o = sweep(&w, &chip, &ecc_dir, &["--ecc", "none,secded"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 units computed"));
    let state = std::fs::read_to_string(plain_dir.join("sweep-state.json")).unwrap();
    assert!(!state.contains("\"ecc"), "{state}");
}
