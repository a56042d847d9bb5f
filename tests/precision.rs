//! The precision axis end to end, driving the binary (issue #13): `sweep --bits` and `run --bits` on a tiny
//! model of its own family (trained at 8 bits, post-training quantized at the others) and on a shipped family
//! name; the energy of the weight SRAM falls with the width at equal voltage (dense packing) and the savings
//! against 8-bit weights at V_min are consistent with the rows.
mod support;

use std::path::Path;

use support::*;

#[derive(Debug, serde::Deserialize)]
struct Row {
    model: String,
    family: String,
    bits: u32,
    weights_source: String,
    profile: String,
    vdd_v: f64,
    clean_error_pct: f64,
    faulty_error_pct: f64,
    weight_sram_energy_pj: f64,
    energy_pj: f64,
    energy_saving_pct: f64,
    energy_saving_vs_vmin_pct: f64,
    weight_sram_saving_vs_vmin_pct: f64,
}

fn rows(out: &Path) -> Vec<Row> {
    let mut r = csv::Reader::from_path(out.join("sweep.csv")).unwrap();
    r.deserialize().map(|x| x.unwrap()).collect()
}

#[test]
fn sweep_bits_quantizes_one_family_at_every_width() {
    let w = World::new(64);
    let out = w.path("prec");
    let grid = "1.15,1.0,0.9,0.8";
    let o = run(w
        .sweep(&["--offsets", "2", "--grid", grid, "--bits", "8,4,3,2"])
        .args(["--models", &w.model.display().to_string()])
        .args(["--profiles", &w.profile.display().to_string()])
        .arg("--out")
        .arg(&out));
    assert_ok(&o);
    let rows = rows(&out);
    assert_eq!(rows.len(), 4 * 4, "4 widths x 4 voltages");
    for (bits, name, source) in [
        (8, "tiny-normal-8b", "trained"),
        (4, "tiny-normal-8b-ptq4b", "ptq"),
        (3, "tiny-normal-8b-ptq3b", "ptq"),
        (2, "tiny-normal-8b-ptq2b", "ptq"),
    ] {
        let s: Vec<&Row> = rows.iter().filter(|r| r.bits == bits).collect();
        assert_eq!(s.len(), 4, "{bits}");
        for r in &s {
            assert_eq!(
                (r.model.as_str(), r.weights_source.as_str()),
                (name, source)
            );
            // No family key in the manifest: the model is a family of its own.
            assert_eq!(r.family, "tiny-normal-8b");
            assert_eq!(r.profile, "chipx");
        }
        // At nominal the faults are off: faulty = clean, and the saving vs its own nominal is 0.
        let top = s.iter().find(|r| r.vdd_v == 1.15).unwrap();
        assert_eq!(top.faulty_error_pct, top.clean_error_pct);
        assert_eq!(top.energy_saving_pct, 0.0);
    }
    for &v in &[1.15, 1.0, 0.9, 0.8] {
        let at = |b: u32| rows.iter().find(|r| r.bits == b && r.vdd_v == v).unwrap();
        // Dense packing: fewer bits, fewer words and arrays: less weight-SRAM and total energy at equal voltage.
        for (hi, lo) in [(8, 4), (4, 3), (3, 2)] {
            assert!(
                at(lo).weight_sram_energy_pj < at(hi).weight_sram_energy_pj,
                "{v} V: {lo} vs {hi} bits"
            );
            assert!(
                at(lo).energy_pj < at(hi).energy_pj,
                "{v} V: {lo} vs {hi} bits"
            );
        }
        // Both references: the 8-bit model at V_min (1.0 V) is the paper's reference itself.
        let e8_vmin = rows.iter().find(|r| r.bits == 8 && r.vdd_v == 1.0).unwrap();
        for b in [8, 4, 3, 2] {
            let r = at(b);
            let want = (1.0 - r.weight_sram_energy_pj / e8_vmin.weight_sram_energy_pj) * 100.0;
            assert!(
                (r.weight_sram_saving_vs_vmin_pct - want).abs() < 1e-6,
                "{b} bits {v} V"
            );
            let want = (1.0 - r.energy_pj / e8_vmin.energy_pj) * 100.0;
            assert!(
                (r.energy_saving_vs_vmin_pct - want).abs() < 1e-6,
                "{b} bits {v} V"
            );
            if b == 8 && v == 1.0 {
                assert_eq!(r.energy_saving_vs_vmin_pct, 0.0);
            }
        }
    }
    let report = String::from_utf8(read(&out.join("report.md"))).unwrap();
    for needle in [
        "## Best operating point",
        "≤ 4-bit check",
        "Energy scope",
        "vs 8-bit @ V_min",
        "| ptq |",
        "heatmap_error.png",
        "heatmap_energy.png",
    ] {
        assert!(report.contains(needle), "{needle} not in report.md");
    }
    for f in BUNDLE {
        assert!(out.join(f).is_file(), "{f}");
    }
    // Resuming the same command computes nothing; another --bits is another configuration.
    let again = run(w
        .sweep(&["--offsets", "2", "--grid", grid, "--bits", "8,4,3,2"])
        .args(["--models", &w.model.display().to_string()])
        .args(["--profiles", &w.profile.display().to_string()])
        .arg("--out")
        .arg(&out));
    let err = assert_ok(&again);
    assert!(err.contains("0 units computed"), "{err}");
    let other = run(w
        .sweep(&["--offsets", "2", "--grid", grid, "--bits", "8,4"])
        .args(["--models", &w.model.display().to_string()])
        .args(["--profiles", &w.profile.display().to_string()])
        .arg("--out")
        .arg(&out));
    assert_user_error(&other, &["--fresh"]);
}

#[test]
fn run_bits_and_family_names() {
    let w = World::new(64);
    let run_json = |extra: &[&str]| -> serde_json::Value {
        let o = run(bin()
            .args(["run", "--json", "--vdd", "0.9", "--offsets", "1", "--data"])
            .arg(w.data())
            .args(["--profile", &w.profile.display().to_string()])
            .args(extra));
        assert_ok(&o);
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let m = w.model.display().to_string();
    let j = run_json(&["--model", &m, "--bits", "3"]);
    assert_eq!(j["bits"], 3);
    assert_eq!(j["weights_source"], "ptq");
    assert_eq!(j["model"], "tiny-normal-8b-ptq3b");
    assert!(j["weight_sram_saving_vs_vmin_pct"].as_f64().unwrap() > 50.0);
    let j8 = run_json(&["--model", &m]);
    assert_eq!(
        (j8["bits"].clone(), j8["weights_source"].clone()),
        (8.into(), "trained".into())
    );
    // 0.9 V against 1.0 V at the same width: the dynamic part scales by 0.81, leakage by less.
    let s = j8["weight_sram_saving_vs_vmin_pct"].as_f64().unwrap();
    assert!(s > 19.0 && s < 25.0, "{s}");
    // A shipped family by name (its models run on the synthetic images here): the trained 4-bit member,
    // and PTQ of the 8-bit member at 3 bits.
    let j = run_json(&["--model", "fmnist-cnn-clipping", "--bits", "4"]);
    assert_eq!(
        (j["model"].clone(), j["weights_source"].clone()),
        ("fmnist-cnn-clipping-4b".into(), "trained".into())
    );
    let j = run_json(&["--model", "fmnist-cnn-clipping", "--bits", "3"]);
    assert_eq!(
        (
            j["model"].clone(),
            j["weights_source"].clone(),
            j["family"].clone()
        ),
        (
            "fmnist-cnn-clipping-8b-ptq3b".into(),
            "ptq".into(),
            "fmnist-cnn-clipping".into()
        )
    );
    // A family needs --bits; a bad width or name is one line, exit 2.
    let o = run(bin()
        .args([
            "run",
            "--vdd",
            "0.9",
            "--model",
            "fmnist-cnn-clipping",
            "--data",
        ])
        .arg(w.data()));
    assert_user_error(&o, &["family", "--bits"]);
    let o = run(bin()
        .args([
            "run", "--vdd", "0.9", "--bits", "9", "--model", &m, "--data",
        ])
        .arg(w.data()));
    assert_user_error(&o, &["--bits 9", "2..=8"]);
    let o = run(bin()
        .args([
            "sweep",
            "--quiet",
            "--models",
            "no-such-family",
            "--bits",
            "4",
            "--data",
        ])
        .arg(w.data())
        .arg("--out")
        .arg(w.path("x")));
    assert_user_error(&o, &["no-such-family", "shipped families"]);
}
