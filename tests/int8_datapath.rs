//! The integer datapath on the shipped models (docs/datapath.md#accuracy): clean error within 0.5 points of the
//! float engine on a test subset, with activations calibrated on training images.
use std::path::Path;

use accelsim::data::{self, DatasetKind};
use accelsim::engine::int8::{Int8Network, Int8Options, CALIBRATION_IMAGES};
use accelsim::engine::{act_store::Reliable, evaluate, Network};
use accelsim::model::Model;

fn dataset_dir() -> Option<&'static Path> {
    let d = Path::new(data::DEFAULT_FASHION_MNIST_DIR);
    d.is_dir().then_some(d)
}

#[test]
fn shipped_models_int8_error_within_half_a_point_of_float() {
    let Some(dir) = dataset_dir() else {
        eprintln!("Fashion-MNIST not installed; skipped");
        return;
    };
    let n = 2000;
    let test = data::load_test_split(DatasetKind::FashionMnist, Some(dir), Some(n)).unwrap();
    let train = data::load_train_split(
        DatasetKind::FashionMnist,
        Some(dir),
        Some(CALIBRATION_IMAGES),
    )
    .unwrap();
    let mut names: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for path in names {
        let model = Model::load(&path).unwrap();
        let inp = &model.manifest().input;
        let x = test.normalized(&inp.mean, &inp.std).unwrap();
        let c = train.normalized(&inp.mean, &inp.std).unwrap();
        let float = evaluate(&Network::from_model(&model), x.view(), &test.labels).unwrap();
        let net = Int8Network::build(&model, c.view(), Int8Options::default()).unwrap();
        let pred = net
            .predict_with_store(x.view(), None, &Reliable, &|_| {})
            .unwrap();
        let wrong = pred
            .iter()
            .zip(&test.labels)
            .filter(|(p, l)| **p != **l as u16)
            .count();
        let int8 = 100.0 * wrong as f64 / n as f64;
        eprintln!(
            "{}: float {:.2}% int8 {:.2}% overflows {}",
            path.display(),
            float.error_pct(),
            int8,
            net.overflow_count()
        );
        assert!(
            (int8 - float.error_pct()).abs() <= 0.5,
            "{}: int8 {int8:.2}% vs float {:.2}%",
            path.display(),
            float.error_pct()
        );
        assert_eq!(net.overflow_count(), 0);
    }
}

fn accelsim(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_accelsim"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

/// Exit 2 and exactly one stderr line holding every needle.
fn one_line_error(args: &[&str], needles: &[&str]) {
    let o = accelsim(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: expected `{n}` in {err}");
    }
}

#[test]
fn datapath_flag_errors_are_one_line() {
    for cmd in [
        &["eval", "--model", "fmnist-cnn-randbet-8b"][..],
        &["run", "--vdd", "0.85"][..],
        &["sweep"][..],
    ] {
        let mut a = cmd.to_vec();
        a.extend(["--datapath", "int4"]);
        one_line_error(&a, &["--datapath", "int4", "allowed int8, float"]);
    }
    one_line_error(
        &[
            "eval",
            "--model",
            "fmnist-cnn-randbet-8b",
            "--float",
            "--datapath",
            "int8",
        ],
        &["--float", "--datapath"],
    );
}

#[test]
fn run_and_eval_report_the_datapath() {
    if dataset_dir().is_none() {
        eprintln!("Fashion-MNIST not installed; skipped");
        return;
    }
    let o = accelsim(&[
        "run",
        "--vdd",
        "0.85",
        "--datapath",
        "int8",
        "--limit",
        "300",
        "--offsets",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["datapath"], "int8");
    assert!(v["faulty_error_pct"].as_f64().unwrap() >= v["clean_error_pct"].as_f64().unwrap());
    let o = accelsim(&[
        "run",
        "--vdd",
        "0.85",
        "--limit",
        "300",
        "--offsets",
        "1",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["datapath"], "float");
    let o = accelsim(&[
        "eval",
        "--model",
        "fmnist-cnn-rquant-8b",
        "--datapath",
        "int8",
        "--limit",
        "300",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["datapath"], "int8");
}

#[test]
fn sweep_datapaths_never_share_a_state_folder() {
    if dataset_dir().is_none() {
        eprintln!("Fashion-MNIST not installed; skipped");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("sw");
    let out = out.to_str().unwrap();
    let base = [
        "sweep",
        "--models",
        "fmnist-cnn-randbet-8b",
        "--limit",
        "100",
        "--grid",
        "0.9",
        "--offsets",
        "1",
        "--profiles",
        "chip1",
        "--out",
        out,
        "--quiet",
    ];
    let mut int8 = base.to_vec();
    int8.extend(["--datapath", "int8"]);
    let o = accelsim(&int8);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = std::fs::read_to_string(d.path().join("sw/report.md")).unwrap();
    assert!(
        report.contains("--datapath int8"),
        "the report quotes the datapath"
    );
    // The float datapath is another configuration: refused, never resumed into the int8 results.
    one_line_error(&base, &["different configuration", "--fresh"]);
}
