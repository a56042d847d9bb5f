//! Activation-SRAM command-line plumbing driven through the binary (docs/activation-faults.md): `--rails` and
//! `--act-ber` on `run` and `sweep`, each bad value a one-line error with exit code 2, a scaled activation
//! rail lowering the activation buffers' energy, and (integer datapath) activation buffers that really fail.
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_accelsim"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args(args)
        .output()
        .unwrap()
}

fn user_error(args: &[&str], needles: &[&str]) {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1 && !err.contains("panicked"),
        "{args:?}: {err:?}"
    );
    assert!(o.stdout.is_empty(), "{args:?}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: expected `{n}` in {err}");
    }
}

#[test]
fn bad_rails_and_act_ber_are_one_line_errors() {
    for cmd in ["run", "sweep"] {
        let out =
            std::env::temp_dir().join(format!("accelsim-actfault-{cmd}-{}", std::process::id()));
        let out = out.to_string_lossy().into_owned();
        let base = |extra: &[&'static str]| -> Vec<String> {
            let mut v = vec![cmd.to_string(), "--limit".into(), "10".into()];
            if cmd == "run" {
                v.extend(["--vdd".into(), "0.85".into()]);
            } else {
                v.extend(["--out".into(), out.clone(), "--grid".into(), "0.9".into()]);
            }
            v.extend(extra.iter().map(|s| s.to_string()));
            v
        };
        let check = |extra: &[&'static str], needles: &[&str]| {
            let v = base(extra);
            let args: Vec<&str> = v.iter().map(String::as_str).collect();
            user_error(&args, needles);
        };
        check(
            &["--rails", "weight_sram,dram"],
            &["--rails weight_sram,dram", "unknown rail `dram`", "allowed"],
        );
        check(&["--rails", "logic,logic"], &["twice", "allowed"]);
        check(&["--act-ber", "1.5"], &["--act-ber 1.5", "0..=1"]);
        check(&["--act-ber", "-0.1"], &["--act-ber -0.1", "0..=1"]);
        check(&["--act-ber", "abc"], &["--act-ber abc", "not a number"]);
        // Until the integer datapath is selected, activation bit errors are refused, never ignored.
        check(
            &["--act-ber", "0.01"],
            &["float activations have no stored bits to fail"],
        );
        let _ = std::fs::remove_dir_all(&out);
    }
    // `sweep --rails` given twice is a rails axis (tests/sweep_rails.rs); each set is checked on its own.
    user_error(
        &[
            "sweep",
            "--rails",
            "weight_sram",
            "--rails",
            "weight_sram,activation_sram",
            "--out",
            "/nonexistent/x",
        ],
        &[
            "--rails weight_sram,activation_sram",
            "float activations have no stored bits to fail",
        ],
    );
    assert!(!std::path::Path::new("/nonexistent/x").exists());
}

#[test]
fn scaled_activation_rail_refuses_partial_arrays() {
    let dir = std::env::temp_dir().join(format!("accelsim-actfault-hw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("hw_configs/14nm_sram.toml"),
    )
    .unwrap()
    .replace("ifmap_kib = 64", "ifmap_kib = 6");
    let path = dir.join("odd.toml");
    std::fs::write(&path, text).unwrap();
    let p = path.to_string_lossy().into_owned();
    user_error(
        &[
            "run",
            "--hw",
            &p,
            "--vdd",
            "0.85",
            "--rails",
            "weight_sram,activation_sram",
            "--limit",
            "10",
        ],
        &[
            "--rails weight_sram,activation_sram",
            "odd.toml",
            "activation_sram.ifmap_kib = 6",
            "512x64",
        ],
    );
    // Unscaled, the same config runs (the buffers' geometry only matters once their cells can fail).
    let o = run(&[
        "run",
        "--hw",
        &p,
        "--vdd",
        "0.85",
        "--limit",
        "10",
        "--offsets",
        "1",
        "--json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `run --vdd 0.8 --limit 20 --offsets 1 --json` plus `extra`.
fn run_08_json(extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "run",
        "--vdd",
        "0.8",
        "--limit",
        "20",
        "--offsets",
        "1",
        "--json",
    ];
    args.extend_from_slice(extra);
    run_json(&args)
}

fn act_sram_pj(extra: &[&str]) -> f64 {
    run_08_json(extra)["energy_breakdown_pj"]["act_sram_pj"]
        .as_f64()
        .unwrap()
}

/// `partial_sums = "accumulators"` moves the partial sums out of the scaled buffers: the buffers' energy loses
/// them, `accumulator_pj` holds them at nominal voltage, no partial-sum bit is read through a failing cell, and at
/// nominal voltage the total is the ofmap configuration's.
#[test]
fn accumulators_hold_the_partial_sums_on_a_fixed_rail() {
    let both = [
        "--datapath",
        "int8",
        "--rails",
        "weight_sram,activation_sram",
    ];
    let ofmap = run_08_json(&both);
    let acc = run_08_json(&[&both[..], &["--hw", "14nm_sram_accumulators"]].concat());
    let e = |v: &serde_json::Value, k: &str| v["energy_breakdown_pj"][k].as_f64().unwrap();
    assert_eq!(e(&ofmap, "accumulator_pj"), 0.0);
    assert!(e(&acc, "accumulator_pj") > 0.0);
    assert!(e(&acc, "act_sram_pj") < 0.2 * e(&ofmap, "act_sram_pj"));
    // The partial sums' share of the ofmap configuration's buffers, scaled by (0.8/1.15)^2, is exactly what the
    // accumulators charge unscaled.
    let scale = (0.8f64 / 1.15).powi(2);
    let psum_at_vdd = e(&ofmap, "act_sram_pj") - e(&acc, "act_sram_pj");
    let want = e(&acc, "accumulator_pj") * scale;
    assert!(
        (psum_at_vdd - want).abs() < 1e-6 * want,
        "{psum_at_vdd} vs {want}"
    );
    let n = |v: &serde_json::Value| v["nominal_energy_pj"].as_f64().unwrap();
    assert!((n(&ofmap) - n(&acc)).abs() < 1e-6 * n(&ofmap));
    // Only the stored feature maps read back through the failing cells: far fewer wrong bits per sample (at
    // 0.8 V the partial sums are most of what the buffers hold and read).
    let flipped = |v: &serde_json::Value| v["activation_flipped_bits_mean"].as_f64().unwrap();
    assert!(flipped(&acc) > 0.0);
    assert!(
        flipped(&acc) < 0.5 * flipped(&ofmap),
        "{} vs {}",
        flipped(&acc),
        flipped(&ofmap)
    );
}

#[test]
fn rails_flag_scales_the_activation_buffers() {
    let nominal = act_sram_pj(&["--datapath", "int8"]);
    let scaled = act_sram_pj(&[
        "--datapath",
        "int8",
        "--rails",
        "weight_sram,activation_sram",
    ]);
    // act_sram_pj scales with (V_a / nominal_v)^2 (docs/energy.md): (0.8 / 1.15)^2.
    let want = nominal * (0.8f64 / 1.15).powi(2);
    assert!((scaled - want).abs() < 1e-6 * want, "{scaled} vs {want}");
}

#[test]
fn sweep_with_other_rails_never_resumes_into_the_same_folder() {
    let out = std::env::temp_dir().join(format!("accelsim-actfault-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = out.to_string_lossy().into_owned();
    let base = [
        "sweep",
        "--models",
        "fmnist-cnn-randbet-8b",
        "--profiles",
        "uniform",
        "--grid",
        "0.9",
        "--offsets",
        "1",
        "--limit",
        "20",
        "--datapath",
        "int8",
        "--quiet",
        "--out",
        &o,
    ];
    let first = run(&base);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // The same sweep resumes (nothing to do); with other scaled rails it is another configuration.
    let again = run(&base);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let mut other = base.to_vec();
    other.extend(["--rails", "weight_sram,activation_sram"]);
    user_error(&other, &["--fresh"]);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        !report.contains("--rails"),
        "the first sweep's report stays"
    );
    let mut fresh = other.clone();
    fresh.push("--fresh");
    let o2 = run(&fresh);
    assert_eq!(
        o2.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o2.stderr)
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("--rails weight_sram,activation_sram"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

fn run_json(args: &[&str]) -> serde_json::Value {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn f(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[test]
fn failing_activation_buffers_cost_accuracy_and_report_their_ber() {
    let base = [
        "run",
        "--datapath",
        "int8",
        "--limit",
        "300",
        "--offsets",
        "2",
        "--json",
        "--vdd",
    ];
    let with = |vdd: &str, extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.push(vdd);
        a.extend_from_slice(extra);
        run_json(&a)
    };
    let both = ["--rails", "weight_sram,activation_sram"];
    // At V_min no cell of either SRAM fails: the faulty error is the clean one and no activation bit flips.
    let at_vmin = with("1.0", &both);
    assert_eq!(f(&at_vmin, "activation_ber"), 0.0);
    assert_eq!(
        f(&at_vmin, "faulty_error_pct"),
        f(&at_vmin, "clean_error_pct")
    );
    // At 0.8 V the activation buffers fail too: a BER of their own, and more errors than the weights alone.
    let weights_only = with("0.8", &[]);
    let all = with("0.8", &both);
    assert_eq!(f(&weights_only, "activation_ber"), 0.0);
    assert!(f(&all, "activation_ber") > 1e-4, "{all}");
    assert!(f(&all, "activation_flipped_bits_mean") > 0.0);
    assert_eq!(
        f(&all, "ber"),
        f(&weights_only, "ber"),
        "the weight faults are the same"
    );
    assert!(
        f(&all, "faulty_error_pct") > f(&weights_only, "faulty_error_pct"),
        "{} vs {}",
        all["faulty_error_pct"],
        weights_only["faulty_error_pct"]
    );
    // Deterministic: the same run gives the same numbers.
    assert_eq!(with("0.8", &both), all);
    // Uniform random activation errors at 1%: the measured rate is 1% within a few standard errors
    // (about 10^6 bits read: sd ~1e-4), and they cost accuracy at a voltage without any weight fault.
    let random = with("1.0", &["--act-ber", "0.01"]);
    let ber = f(&random, "activation_ber");
    assert!((0.0095..=0.0105).contains(&ber), "activation BER {ber}");
    assert!(f(&random, "faulty_error_pct") > f(&random, "clean_error_pct"));
    // The float datapath refuses a scaled activation rail instead of ignoring it.
    user_error(
        &[
            "run",
            "--vdd",
            "0.8",
            "--rails",
            "weight_sram,activation_sram",
            "--limit",
            "10",
        ],
        &[
            "float activations have no stored bits to fail",
            "--datapath int8",
        ],
    );
}

#[test]
fn sweep_reports_the_activation_rails_ber_per_point() {
    let out = std::env::temp_dir().join(format!("accelsim-actfault-csv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = out.to_string_lossy().into_owned();
    let args = [
        "sweep",
        "--models",
        "fmnist-cnn-randbet-8b",
        "--profiles",
        "chip1",
        "--grid",
        "1.0,0.8",
        "--offsets",
        "1",
        "--limit",
        "200",
        "--datapath",
        "int8",
        "--rails",
        "weight_sram,activation_sram",
        "--quiet",
        "--out",
        &o,
    ];
    let r = run(&args);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let mut csv = csv::Reader::from_path(out.join("sweep.csv")).unwrap();
    let head = csv.headers().unwrap().clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let (v, ber, err) = (col("vdd_v"), col("activation_ber"), col("faulty_error_pct"));
    let rows: Vec<(f64, f64, f64)> = csv
        .records()
        .map(|r| {
            let r = r.unwrap();
            let f = |i: usize| r[i].parse::<f64>().unwrap();
            (f(v), f(ber), f(err))
        })
        .collect();
    assert_eq!(rows.len(), 2);
    let at = |vdd: f64| *rows.iter().find(|r| r.0 == vdd).unwrap();
    assert_eq!(at(1.0).1, 0.0, "no activation cell fails at V_min");
    assert!(at(0.8).1 > 1e-4, "activation BER at 0.8 V: {}", at(0.8).1);
    assert!(at(0.8).2 > at(1.0).2);
    // Resuming the finished sweep rewrites the same CSV (the counts live in the state file).
    let before = std::fs::read(out.join("sweep.csv")).unwrap();
    let again = run(&args);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(std::fs::read(out.join("sweep.csv")).unwrap(), before);
    let _ = std::fs::remove_dir_all(&out);
}
