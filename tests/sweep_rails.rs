//! The rails axis of `accelsim sweep` (issue 14): `--rails` given more than once sweeps every rail set, one
//! `rails` column per row, units keyed by their set (a killed run resumes without mixing them, shards merge to
//! the same bytes), and report.md compares "weights only" against "weights and activations". On the tiny world
//! of tests/support with the int8 datapath (a scaled activation rail fails there; float refuses it).
mod support;

use std::path::{Path, PathBuf};
use std::time::Instant;

use support::*;

const WEIGHTS_ONLY: &str = "weight_sram";
const BOTH: &str = "weight_sram+activation_sram";
/// A grid long enough to kill a sweep in the middle.
const SLOW_GRID: &str = "1.15,1.0:0.8:0.005";

/// A linear classifier `STEM.toml` in `dir` that reads the class off the tiny data set's bright block (class
/// `c < 9`: block `c` of the 3 × 3 grid of 10 × 10 pixels; class 9: no block), so that most images are right
/// and faults in its weights or in the stored image cost accuracy (the random-weight models of
/// tests/support get every image wrong, and a wrong image is never run with faults).
fn write_block_model(dir: &Path, stem: &str, method: &str, bits: u32) -> PathBuf {
    let mut w = vec![0f32; 10 * 784];
    for c in 0..9usize {
        for p in 0..784usize {
            let (r, col) = (p / 28, p % 28);
            if (r / 10) * 3 + col / 10 == c {
                w[c * 784 + p] = 0.01;
            }
        }
    }
    let mut b = vec![0f32; 10];
    b[9] = 0.5;
    write_model_files(
        dir,
        stem,
        stem,
        method,
        bits,
        &[("fc.weight", vec![10, 784], w), ("fc.bias", vec![10], b)],
        r#"[[layers]]
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

/// The tiny world of tests/support (data set, chip `chipx`), with its test images also as the training split
/// (the int8 datapath calibrates on it), and two block models (8-bit normal, 4-bit randbet): `--models`.
fn world(images: u32) -> (World, String) {
    let w = World::new(images);
    for (t10k, train) in [
        ("t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"),
        ("t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    ] {
        std::fs::copy(w.path(t10k), w.path(train)).unwrap();
    }
    let a = write_block_model(w.data(), "block-normal-8b", "normal", 8);
    let b = write_block_model(w.data(), "block-randbet-4b", "randbet", 4);
    let models = format!("{},{}", a.display(), b.display());
    (w, models)
}

/// Both models × chipx × 6 voltages × `offsets`, int8, the two rail sets, plus `extra`.
fn rails_sweep(
    world: &(World, String),
    offsets: u32,
    out: &Path,
    extra: &[&str],
) -> std::process::Command {
    rails_sweep_on(world, "1.15,1.0:0.8:0.05", offsets, out, extra)
}

/// [`rails_sweep`] on another grid.
fn rails_sweep_on(
    (w, models): &(World, String),
    grid: &str,
    offsets: u32,
    out: &Path,
    extra: &[&str],
) -> std::process::Command {
    let mut c = bin();
    c.args(["sweep", "--quiet", "--data"]).arg(w.data());
    c.args([
        "--offsets",
        &offsets.to_string(),
        "--grid",
        grid,
        "--datapath",
        "int8",
        "--rails",
        "weight_sram",
        "--rails",
        "weight_sram,activation_sram",
    ]);
    c.args(["--models", models, "--profiles"]).arg(&w.profile);
    c.arg("--out").arg(out).args(extra);
    c
}

struct Csv {
    head: csv::StringRecord,
    rows: Vec<csv::StringRecord>,
}

impl Csv {
    fn read(out: &Path) -> Csv {
        let mut r = csv::Reader::from_path(out.join("sweep.csv")).unwrap();
        Csv {
            head: r.headers().unwrap().clone(),
            rows: r.records().map(|r| r.unwrap()).collect(),
        }
    }
    fn col(&self, name: &str) -> usize {
        self.head
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.head))
    }
    fn get<'a>(&self, r: &'a csv::StringRecord, name: &str) -> &'a str {
        &r[self.col(name)]
    }
    fn num(&self, r: &csv::StringRecord, name: &str) -> f64 {
        self.get(r, name).parse().unwrap()
    }
    /// The row of (model, rails, vdd).
    fn at(&self, model: &str, rails: &str, vdd: f64) -> &csv::StringRecord {
        self.rows
            .iter()
            .find(|r| {
                self.get(r, "model") == model
                    && self.get(r, "rails") == rails
                    && self.num(r, "vdd_v") == vdd
            })
            .unwrap_or_else(|| panic!("no row {model} / {rails} / {vdd}"))
    }
}

fn state(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&read(&out.join("sweep-state.json"))).unwrap()
}

#[test]
fn two_rail_sets_are_two_rows_per_point_and_the_report_compares_them() {
    let world = world(300);
    let w = &world.0;
    let out = w.path("rails");
    let err = assert_ok(&run(rails_sweep(&world, 2, &out, &[])));
    assert!(err.contains("8 units computed, 0 resumed"), "{err}");
    let csv = Csv::read(&out);
    // 2 models × 1 profile × 2 rail sets × 6 voltages.
    assert_eq!(csv.rows.len(), 24);
    let mut sets: Vec<&str> = csv.rows.iter().map(|r| csv.get(r, "rails")).collect();
    sets.dedup();
    assert_eq!(sets, [WEIGHTS_ONLY, BOTH, WEIGHTS_ONLY, BOTH]);
    for model in ["block-normal-8b", "block-randbet-4b"] {
        for vdd in [1.15, 1.0, 0.95, 0.9, 0.85, 0.8] {
            let (a, b) = (csv.at(model, WEIGHTS_ONLY, vdd), csv.at(model, BOTH, vdd));
            // The same weight faults (chips and offsets) for both sets.
            assert_eq!(csv.get(a, "ber"), csv.get(b, "ber"), "{model} {vdd}");
            assert_eq!(csv.num(a, "activation_ber"), 0.0);
            assert_eq!(csv.num(a, "activation_sram_saving_pct"), 0.0);
            // Energy follows each row's own rails: the scaled buffers cost less below nominal.
            if vdd < 1.15 {
                assert!(csv.num(b, "activation_sram_saving_pct") > 0.0);
                assert!(csv.num(b, "energy_pj") < csv.num(a, "energy_pj"));
                assert!(
                    csv.num(b, "activation_sram_energy_pj")
                        < csv.num(a, "activation_sram_energy_pj")
                );
            }
            assert_eq!(
                csv.get(a, "weight_sram_energy_pj"),
                csv.get(b, "weight_sram_energy_pj")
            );
        }
        // And faults follow them: the scaled activation rail fails at 0.8 V, the unscaled one never.
        let b = csv.at(model, BOTH, 0.8);
        assert!(csv.num(b, "activation_ber") > 1e-4, "{model}: {b:?}");
        assert_eq!(csv.num(csv.at(model, BOTH, 1.0), "activation_ber"), 0.0);
    }
    // Units of the weights-only set are keyed as without the axis (this config's rails); the other carries
    // its rails.
    let st = state(&out);
    let keys: Vec<&serde_json::Value> = st["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["key"])
        .collect();
    assert_eq!(keys.len(), 8);
    assert_eq!(keys.iter().filter(|k| k.get("rails").is_none()).count(), 4);
    assert_eq!(keys.iter().filter(|k| k["rails"] == BOTH).count(), 4);
    // The report's comparison section: each model, both sets, with samples and images per point.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let (_, section) = md
        .split_once("## Weights only vs weights and activations")
        .unwrap_or_else(|| panic!("no rails section in:\n{md}"));
    let section = section.split("\n## ").next().unwrap();
    for needle in [
        "nominal voltage",
        "activation SRAM",
        "whole accelerator",
        "**2 fault sample(s)**",
        "**300 test images**",
        "`weight_sram` (weights only)",
        "`weight_sram+activation_sram`",
        "energy vs `weight_sram` (%)",
    ] {
        assert!(section.contains(needle), "`{needle}` not in:\n{section}");
    }
    let table: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("| chipx"))
        .collect();
    assert_eq!(table.len(), 4, "{section}");
    assert!(
        table.iter().all(|l| l.ends_with("| 2 × 300 |")),
        "{section}"
    );
    assert!(md.contains("--rails weight_sram --rails weight_sram,activation_sram"));
    assert!(md.contains("block-normal-8b @ weight_sram+activation_sram"));
    // The same sweep again resumes every unit and writes the same bytes.
    let before: Vec<Vec<u8>> = BUNDLE.iter().map(|f| read(&out.join(f))).collect();
    let err = assert_ok(&run(rails_sweep(&world, 2, &out, &[])));
    assert!(err.contains("0 units computed, 8 resumed"), "{err}");
    let after: Vec<Vec<u8>> = BUNDLE.iter().map(|f| read(&out.join(f))).collect();
    assert!(before == after);

    // One rail set: no section, no rails in the keys, the column still says which rails scaled.
    let one = w.path("one");
    let mut c = bin();
    c.args(["sweep", "--quiet", "--data"]).arg(w.data());
    c.args(["--offsets", "2", "--grid", "1.15,1.0:0.8:0.05"]);
    c.args(["--datapath", "int8", "--models", &world.1, "--profiles"])
        .arg(&w.profile)
        .arg("--out")
        .arg(&one);
    assert_ok(&run(c));
    let single = Csv::read(&one);
    assert!(single
        .rows
        .iter()
        .all(|r| single.get(r, "rails") == WEIGHTS_ONLY));
    let md = std::fs::read_to_string(one.join("report.md")).unwrap();
    assert!(!md.contains("Weights only vs weights and activations"));
    assert!(!md.contains(" @ weight_sram"));
    assert!(!String::from_utf8(read(&one.join("sweep-state.json")))
        .unwrap()
        .contains("\"rails\""));
    // Its weights-only rows are the axis sweep's, number for number.
    for r in &single.rows {
        let a = csv.at(single.get(r, "model"), WEIGHTS_ONLY, single.num(r, "vdd_v"));
        assert_eq!(
            r.iter().collect::<Vec<_>>(),
            a.iter().collect::<Vec<_>>(),
            "the weights-only rows equal the sweep without the axis"
        );
    }
    // Two runs never mix: the axis sweep and the one-set sweep are different configurations.
    assert_user_error(
        &run(rails_sweep(&world, 2, &one, &[])),
        &["different configuration", "--fresh"],
    );
}

/// A SIGKILL mid-sweep, then a resume: identical bytes to the uninterrupted run, every unit once. Shards of the
/// same sweep merge to the same bytes too, and `status` and `--emit-slurm` carry both sets.
#[test]
fn killed_and_sharded_rails_sweeps_give_the_same_bytes() {
    let world = world(1500);
    let w = &world.0;
    let sweep = |out: &Path, extra: &[&str]| rails_sweep_on(&world, SLOW_GRID, 3, out, extra);
    let full = w.path("full");
    let t0 = Instant::now();
    assert_ok(&run(sweep(&full, &[])));
    eprintln!("uninterrupted: {:.2} s", t0.elapsed().as_secs_f64());
    let out = w.path("killed");
    kill_sweep_after_units(|| sweep(&out, &[]), &out, 4);
    let err = assert_ok(&run(sweep(&out, &[])));
    assert!(
        err.contains("resumed") && !err.contains(" 0 resumed"),
        "{err}"
    );
    assert_same_bundle(&full, &out);
    let units = state(&out)["units"].as_array().unwrap().len();
    assert_eq!(units, 12);

    // Three shards into one folder, then merge: the same bundle.
    let sharded = w.path("sharded");
    for k in 0..3 {
        assert_ok(&run(sweep(&sharded, &["--shard", &format!("{k}/3")])));
    }
    let mut status = bin();
    status.args(["sweep", "status"]).arg(&sharded);
    let o = run(status);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{text}");
    assert!(text.contains("12 of 12 units done"), "{text}");
    assert!(
        text.contains("--rails weight_sram --rails weight_sram,activation_sram"),
        "{text}"
    );
    let mut merge = bin();
    merge.args(["sweep", "merge", "--quiet"]).arg(&sharded);
    assert_ok(&run(merge));
    assert_same_bundle(&full, &sharded);

    // The Slurm script runs the same configuration (both sets) in every task.
    let o = run(sweep(&w.path("slurm"), &["--emit-slurm", "2"]));
    let script = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        script.contains("--rails weight_sram --rails weight_sram,activation_sram"),
        "{script}"
    );
}

#[test]
fn float_datapath_refuses_a_scaled_activation_rail_in_any_set() {
    let (w, models) = world(20);
    let mut c = bin();
    c.args(["sweep", "--quiet", "--data"]).arg(w.data());
    c.args([
        "--models",
        &models,
        "--profiles",
        "uniform",
        "--grid",
        "1.0,0.9",
    ]);
    c.args([
        "--rails",
        "weight_sram",
        "--rails",
        "weight_sram,activation_sram",
    ]);
    c.arg("--out").arg(w.path("float"));
    assert_user_error(
        &run(c),
        &[
            "--rails weight_sram,activation_sram",
            "float activations have no stored bits to fail",
            "--datapath int8",
        ],
    );
    assert!(!w.path("float").join("sweep-state.json").exists());
    // The same rails given twice (in another order too) are one set: no axis.
    let one = w.path("same");
    let mut c = bin();
    c.args(["sweep", "--quiet", "--data"]).arg(w.data());
    c.args([
        "--models",
        &models,
        "--profiles",
        "uniform",
        "--grid",
        "1.0,0.9",
    ]);
    c.args([
        "--datapath",
        "int8",
        "--rails",
        "activation_sram,weight_sram",
        "--rails",
        "weight_sram,activation_sram",
    ]);
    c.arg("--out").arg(&one);
    assert_ok(&run(c));
    let csv = Csv::read(&one);
    assert_eq!(csv.rows.len(), 4);
    assert!(csv.rows.iter().all(|r| csv.get(r, "rails") == BOTH));
    let md = std::fs::read_to_string(one.join("report.md")).unwrap();
    assert!(!md.contains("Weights only vs weights and activations"));
}

/// The rails axis next to the ECC axis: every (rail set, scheme) is its own series.
#[test]
fn rails_and_ecc_axes_multiply() {
    let (w, models) = world(100);
    let out = w.path("rails-ecc");
    let mut c = bin();
    c.args(["sweep", "--quiet", "--data"]).arg(w.data());
    c.args([
        "--models",
        models.split(',').next().unwrap(),
        "--profiles",
        "uniform",
        "--grid",
        "1.0,0.8",
        "--offsets",
        "1",
        "--datapath",
        "int8",
        "--ecc",
        "none,secded",
        "--rails",
        "weight_sram",
        "--rails",
        "weight_sram,activation_sram",
    ]);
    c.arg("--out").arg(&out);
    assert_ok(&run(c));
    let csv = Csv::read(&out);
    let combos: Vec<(String, String)> = csv
        .rows
        .iter()
        .map(|r| {
            (
                csv.get(r, "rails").to_string(),
                csv.get(r, "ecc").to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        (WEIGHTS_ONLY, "none"),
        (WEIGHTS_ONLY, "secded"),
        (BOTH, "none"),
        (BOTH, "secded"),
    ]
    .iter()
    .flat_map(|(r, e)| vec![(r.to_string(), e.to_string()); 2])
    .collect();
    assert_eq!(combos, want);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("block-normal-8b + secded @ weight_sram+activation_sram"),
        "{md}"
    );
    let section = md
        .split_once("## Weights only vs weights and activations")
        .unwrap()
        .1;
    let section = section.split("\n## ").next().unwrap();
    // One comparison per (model, scheme), each with both sets.
    assert_eq!(
        section
            .lines()
            .filter(|l| l.starts_with("| uniform"))
            .count(),
        4
    );
    assert!(
        section.contains("| block-normal-8b + secded |"),
        "{section}"
    );
}
