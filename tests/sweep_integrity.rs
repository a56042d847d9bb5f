//! Sweep data integrity, driving the binary (issue #11): units keyed by content, empty test splits, bounded
//! grids, validated state files, data fingerprinted by content, byte-identical resumes (including a real
//! kill), the folder lock against concurrent runs, `--skip`, and reports independent of the exact invocation.
mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

fn csv_rows(out: &Path) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(out.join("sweep.csv")).unwrap();
    r.records().map(|r| r.unwrap()).collect()
}

fn col(out: &Path, name: &str) -> Vec<String> {
    let mut r = csv::Reader::from_path(out.join("sweep.csv")).unwrap();
    let i = r.headers().unwrap().iter().position(|h| h == name).unwrap();
    r.records().map(|rec| rec.unwrap()[i].to_string()).collect()
}

fn state(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&read(&out.join("sweep-state.json"))).unwrap()
}

#[test]
fn same_name_different_content_is_refused_and_repeats_are_swept_once() {
    let w = World::new(64);
    std::fs::create_dir(w.path("other")).unwrap();
    // Same manifest name, different weights, different folder.
    let twin = write_model(
        &w.path("other"),
        "tiny-normal-8b",
        "tiny-normal-8b",
        "normal",
        8,
        99,
    );
    let out = w.path("o1");
    let models = format!("{},{}", w.model.display(), twin.display());
    let o = run(w
        .sweep(&[
            "--grid",
            "1.15,0.9",
            "--offsets",
            "1",
            "--profiles",
            "uniform",
            "--models",
            &models,
            "--out",
        ])
        .arg(&out)
        .arg("--fresh"));
    assert_user_error(
        &o,
        &[
            "--models",
            &w.model.display().to_string(),
            &twin.display().to_string(),
            "same name",
        ],
    );

    // Same profile stem, different content.
    let other_prof = w.path("other/chipx.sramprof.gz");
    write_profile(&other_prof, 8);
    let profiles = format!("{},{}", w.profile.display(), other_prof.display());
    let o = run(w
        .sweep(&[
            "--grid",
            "1.15,0.9",
            "--offsets",
            "1",
            "--models",
            w.model.to_str().unwrap(),
            "--profiles",
            &profiles,
            "--out",
        ])
        .arg(&out));
    assert_user_error(
        &o,
        &["--profiles", &other_prof.display().to_string(), "`chipx`"],
    );

    // The same model twice (same path, and an identical copy elsewhere) and a profile twice: swept once.
    std::fs::create_dir(w.path("copy")).unwrap();
    for ext in ["toml", "safetensors"] {
        std::fs::copy(
            w.path(&format!("tiny-normal-8b.{ext}")),
            w.path(&format!("copy/tiny-normal-8b.{ext}")),
        )
        .unwrap();
    }
    let models = format!(
        "{0},{0},{1}",
        w.model.display(),
        w.path("copy/tiny-normal-8b.toml").display()
    );
    let profiles = format!("{0},uniform,{0}", w.profile.display());
    let o = run(w
        .sweep(&[
            "--grid",
            "1.15,0.9",
            "--offsets",
            "1",
            "--models",
            &models,
            "--profiles",
            &profiles,
            "--out",
        ])
        .arg(&out));
    let err = assert_ok(&o);
    assert_eq!(err.matches("sweeping it once").count(), 3, "{err}");
    assert_eq!(
        csv_rows(&out).len(),
        2 * 2,
        "one model × two profiles × two voltages"
    );

    // --fresh with a different model under the same name: its own numbers, not the old rows (the twin's
    // clean error is what `run` measures for it).
    let o = run(w
        .sweep(&[
            "--grid",
            "1.15,0.9",
            "--offsets",
            "1",
            "--profiles",
            "uniform",
            "--models",
            twin.to_str().unwrap(),
            "--out",
        ])
        .arg(&out)
        .arg("--fresh"));
    assert_ok(&o);
    let j = run({
        let mut c = bin();
        c.args([
            "run",
            "--json",
            "--vdd",
            "1.15",
            "--offsets",
            "1",
            "--profile",
            "uniform",
            "--model",
        ])
        .arg(&twin)
        .arg("--data")
        .arg(w.data());
        c
    });
    assert_ok(&j);
    let j: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    let clean: f64 = col(&out, "clean_error_pct")[0].parse().unwrap();
    assert_eq!(clean, j["clean_error_pct"].as_f64().unwrap());
    let first: f64 = {
        let o2 = w.path("o2");
        assert_ok(&run(w
            .sweep(&[
                "--grid",
                "1.15,0.9",
                "--offsets",
                "1",
                "--profiles",
                "uniform",
                "--models",
                w.model.to_str().unwrap(),
                "--out",
            ])
            .arg(&o2)));
        col(&o2, "clean_error_pct")[0].parse().unwrap()
    };
    assert_ne!(
        clean, first,
        "the twin must have other weights (else this test proves nothing)"
    );
}

#[test]
fn empty_test_splits_are_user_errors() {
    let w = World::new(64);
    let model = w.model.to_str().unwrap();
    let sweep_args = [
        "--grid",
        "1.15,0.9",
        "--offsets",
        "1",
        "--profiles",
        "uniform",
        "--models",
        model,
        "--out",
    ];
    let o = run(w.sweep(&sweep_args).arg(w.path("s")).args(["--skip", "64"]));
    assert_user_error(&o, &["--skip 64", "allowed 0..=63"]);
    let o = run(w
        .sweep(&sweep_args)
        .arg(w.path("s"))
        .args(["--skip", "10000"]));
    assert_user_error(&o, &["--skip 10000", "allowed 0..=63"]);
    let o = run(w.sweep(&sweep_args).arg(w.path("s")).args(["--limit", "0"]));
    assert_user_error(&o, &["--limit", "allowed >= 1"]);
    let run_cmd = |extra: &[&str], data: &Path| {
        let mut c = bin();
        c.args([
            "run",
            "--vdd",
            "1.15",
            "--profile",
            "uniform",
            "--model",
            model,
            "--data",
        ])
        .arg(data)
        .args(extra);
        run(c)
    };
    assert_user_error(
        &run_cmd(&["--skip", "64"], w.data()),
        &["--skip 64", "allowed 0..=63"],
    );
    assert_user_error(
        &run_cmd(&["--limit", "0"], w.data()),
        &["--limit", "allowed >= 1"],
    );
    let eval = |extra: &[&str], data: &Path| {
        let mut c = bin();
        c.args(["eval", "--model", model, "--data"])
            .arg(data)
            .args(extra);
        run(c)
    };
    assert_user_error(&eval(&["--limit", "0"], w.data()), &["--limit"]);
    // A data set whose headers declare 0 images.
    let empty = w.path("empty");
    std::fs::create_dir(&empty).unwrap();
    write_dataset(&empty, 0, 0);
    assert_user_error(&eval(&[], &empty), &["0 images", "empty"]);
    assert_user_error(&run_cmd(&[], &empty), &["0 images"]);
    let mut c = bin();
    c.args(["sweep", "--quiet", "--data"])
        .arg(&empty)
        .args(sweep_args)
        .arg(w.path("s"));
    assert_user_error(&run(c), &["0 images"]);
    assert!(
        !w.path("s").join("sweep.csv").exists(),
        "no report of an empty split"
    );
}

#[test]
fn absurd_grids_are_refused() {
    let w = World::new(16);
    for (grid, needle) in [
        ("1.0,0.95:0.8:1e-300", "allowed 0.000001..=5 V"),
        ("1.0,0.95:0.8:0.0000011", "at most 1000 points"),
        ("0.95:0.8:1e-7", "allowed 0.000001..=5 V"),
        ("0.95:0.8:-0.01", "allowed 0.000001..=5 V"),
        ("0.95:0.8:inf", "allowed"),
        ("0.95:0.8:NaN", "allowed"),
        ("0.001:1.0:0.0005", "at most 1000 points"),
    ] {
        let o = run(w
            .sweep(&[
                "--models",
                w.model.to_str().unwrap(),
                "--grid",
                grid,
                "--out",
            ])
            .arg(w.path("g")));
        assert_user_error(&o, &["--grid", grid, needle]);
    }
}

#[test]
fn edited_or_truncated_state_is_refused_in_one_line() {
    let w = World::new(32);
    let out = w.path("st");
    assert_ok(&run(w.std_sweep(&out, &[])));
    let path = out.join("sweep-state.json");
    let good = read(&path);
    let name = path.display().to_string();
    // Truncated at several points (a copy cut short, a disk full).
    for cut in [0, 1, good.len() / 3, good.len() / 2, good.len() - 2] {
        std::fs::write(&path, &good[..cut]).unwrap();
        assert_user_error(&run(w.std_sweep(&out, &[])), &[&name, "--fresh"]);
    }
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "grid of 6",
            Box::new(|v| {
                v["units"][0]["error_pct"]
                    .as_array_mut()
                    .unwrap()
                    .truncate(3);
            }),
        ),
        (
            "grid of 6",
            Box::new(|v| {
                v["units"][2]["flipped_bits"]
                    .as_array_mut()
                    .unwrap()
                    .push(0.into());
            }),
        ),
        (
            "not part of this sweep",
            Box::new(|v| {
                v["units"][1]["key"]["sample"] = 9.into();
            }),
        ),
        (
            "not part of this sweep",
            Box::new(|v| {
                v["units"][1]["key"]["faults"] = "0000000000000000".into();
            }),
        ),
        (
            "twice",
            Box::new(|v| {
                let u = v["units"][0].clone();
                v["units"].as_array_mut().unwrap().push(u);
            }),
        ),
        (
            "0..=100",
            Box::new(|v| {
                v["units"][3]["error_pct"][5] = 1e300.into();
            }),
        ),
        (
            "test images",
            Box::new(|v| {
                v["units"][0]["test_images"] = 0.into();
            }),
        ),
        (
            "flipped bits",
            Box::new(|v| {
                v["units"][0]["flipped_bits"][5] = u64::MAX.into();
            }),
        ),
    ];
    let good_v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    for (needle, edit) in edits {
        let mut v = good_v.clone();
        edit(&mut v);
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        assert_user_error(&run(w.std_sweep(&out, &[])), &[&name, needle, "--fresh"]);
    }
    // A number JSON cannot hold.
    let text = String::from_utf8(good.clone()).unwrap().replacen(
        "\"clean_error_pct\": ",
        "\"clean_error_pct\": 1e999",
        1,
    );
    std::fs::write(&path, text).unwrap();
    assert_user_error(&run(w.std_sweep(&out, &[])), &[&name, "--fresh"]);
    // --fresh discards it and recomputes the same results.
    let csv_before = read(&out.join("sweep.csv"));
    let err = assert_ok(&run(w.std_sweep(&out, &["--fresh"])));
    assert!(err.contains("8 units computed, 0 resumed"), "{err}");
    assert_eq!(read(&out.join("sweep.csv")), csv_before);
}

#[test]
fn data_is_fingerprinted_by_content_not_path() {
    let w = World::new(48);
    let out = w.path("fp");
    assert_ok(&run(w.std_sweep(&out, &[])));
    // The same images in another folder: the same configuration.
    let copy = w.path("copy");
    std::fs::create_dir(&copy).unwrap();
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(w.data().join(f), copy.join(f)).unwrap();
    }
    let err = assert_ok(&run(w.std_sweep_with(&copy, 2, &out, &[])));
    assert!(err.contains("0 units computed, 8 resumed"), "{err}");
    // A kill after a few units, then the images are replaced (same headers, other pixels): refused.
    let mut v = state(&out);
    v["units"].as_array_mut().unwrap().truncate(3);
    std::fs::write(
        out.join("sweep-state.json"),
        serde_json::to_vec(&v).unwrap(),
    )
    .unwrap();
    write_dataset(w.data(), 48, 1);
    assert_user_error(
        &run(w.std_sweep(&out, &[])),
        &["sweep-state.json", "different configuration", "--fresh"],
    );
    // Fewer images via --limit is a different configuration as well.
    write_dataset(w.data(), 48, 0);
    assert_user_error(
        &run(w.std_sweep(&out, &["--limit", "40"])),
        &["different configuration"],
    );
    assert!(assert_ok(&run(w.std_sweep(&out, &[]))).contains("5 units computed, 3 resumed"));
}

#[test]
fn default_data_folder_given_explicitly_is_the_same_configuration() {
    let fm = Path::new("/usr/share/datasets/fashion-mnist");
    if !fm.join("t10k-images-idx3-ubyte.gz").is_file() {
        // The system data set is optional for the test suite (every other test makes its own data).
        eprintln!("skipped: Fashion-MNIST not installed in {}", fm.display());
        return;
    }
    let w = World::new(8);
    let out = w.path("def");
    let args = |c: &mut std::process::Command| {
        c.args([
            "sweep",
            "--quiet",
            "--grid",
            "1.15,0.9",
            "--offsets",
            "1",
            "--profiles",
            "uniform",
            "--limit",
            "20",
            "--models",
        ])
        .arg(&w.model)
        .arg("--out")
        .arg(&out);
    };
    let mut a = bin();
    args(&mut a);
    assert!(assert_ok(&run(a)).contains("1 units computed, 0 resumed"));
    for d in [
        "/usr/share/datasets/fashion-mnist",
        "/usr/share/datasets/fashion-mnist/",
    ] {
        let mut b = bin();
        args(&mut b);
        b.args(["--data", d]);
        let err = assert_ok(&run(b));
        assert!(err.contains("0 units computed, 1 resumed"), "{d}: {err}");
    }
}

#[test]
fn resumed_runs_are_byte_identical_to_uninterrupted_ones() {
    let w = World::new(64);
    let full = w.path("full");
    assert_ok(&run(w.std_sweep_with(w.data(), 3, &full, &[])));
    // Simulated kills: units removed from the state (the last, the first, all but one).
    let part = w.path("part");
    assert_ok(&run(w.std_sweep_with(w.data(), 3, &part, &[])));
    let total = state(&part)["units"].as_array().unwrap().len();
    assert_eq!(total, 12);
    for keep in [total - 1, 1, 5, 0] {
        let mut v = state(&part);
        let units = v["units"].as_array_mut().unwrap();
        // Drop from the front too, so a resumed unit is not always the last one computed.
        let drop_front = (total - keep) / 2;
        units.drain(..drop_front);
        units.truncate(keep);
        std::fs::write(
            part.join("sweep-state.json"),
            serde_json::to_vec_pretty(&v).unwrap(),
        )
        .unwrap();
        for f in BUNDLE {
            let _ = std::fs::remove_file(part.join(f));
        }
        let err = assert_ok(&run(w.std_sweep_with(w.data(), 3, &part, &[])));
        assert!(
            err.contains(&format!("{} units computed, {keep} resumed", total - keep)),
            "{err}"
        );
        assert_same_bundle(&full, &part);
        assert_eq!(
            read(&full.join("sweep-state.json")),
            read(&part.join("sweep-state.json"))
        );
    }
}

/// A real kill (SIGKILL) of the child mid-sweep, a stale temporary file left by it, then a resume: the result
/// is byte-identical to an uninterrupted sweep.
#[test]
fn killed_sweep_resumes_to_identical_bytes() {
    let w = World::new(1500);
    let full = w.path("full");
    let sweep = |out: &Path| w.std_sweep_with(w.data(), 4, out, &[]);
    assert_ok(&run(sweep(&full)));
    let out = w.path("killed");
    kill_sweep_after_units(|| sweep(&out), &out, 2);
    // A killed atomic write leaves its temporary behind.
    std::fs::write(out.join(".sweep-state.json.tmp999999"), b"{\"torn").unwrap();
    std::fs::write(out.join(".report.md.tmp999998"), b"# torn").unwrap();
    let err = assert_ok(&run(sweep(&out)));
    assert!(
        err.contains("resumed") && !err.contains(" 0 resumed"),
        "{err}"
    );
    assert!(err.contains("stale temporary file"), "{err}");
    assert_same_bundle(&full, &out);
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n != ".accelsim.lock")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_second_run_into_a_busy_folder_is_refused() {
    let w = World::new(4000);
    let out = w.path("busy");
    let mut a = w
        .slow_sweep(&out, 16, &[])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !out.join(".lock.sweep").exists() {
        assert!(
            a.try_wait().unwrap().is_none(),
            "the first sweep ended before the test could start"
        );
        assert!(t0.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = format!("pid {}", a.id());
    let folder = out.display().to_string();
    // The same configuration (it would write the same files) and another configuration: both refused.
    let same = run(w.slow_sweep(&out, 16, &[]));
    let other = run(w.slow_sweep(&out, 2, &[]));
    let still_running = a.try_wait().unwrap().is_none();
    let _ = a.kill();
    let _ = a.wait();
    assert!(
        still_running,
        "the first sweep ended during the test; make it bigger"
    );
    assert_user_error(&same, &[&folder, &pid, "same files"]);
    assert_user_error(&other, &[&folder, &pid, "different configuration"]);
    // The killed holder's lock is stale: the folder is free again (here for a smaller sweep, --fresh).
    let err = assert_ok(&run(w.std_sweep_with(w.data(), 2, &out, &["--fresh"])));
    assert!(err.contains("units computed"), "{err}");
    assert!(!out.join(".lock.sweep").exists());
}

#[test]
fn sweep_skip_evaluates_the_held_out_tail() {
    let w = World::new(64);
    let out = w.path("skip");
    let model = w.model.to_str().unwrap();
    assert_ok(&run(w
        .sweep(&[
            "--grid",
            "1.15,0.9",
            "--offsets",
            "2",
            "--profiles",
            "uniform",
            "--models",
            model,
            "--skip",
            "40",
            "--out",
        ])
        .arg(&out)));
    assert!(col(&out, "test_images").iter().all(|n| n == "24"));
    let j = run({
        let mut c = bin();
        c.args([
            "run",
            "--json",
            "--vdd",
            "1.15",
            "--offsets",
            "2",
            "--profile",
            "uniform",
            "--skip",
            "40",
            "--model",
            model,
            "--data",
        ])
        .arg(w.data());
        c
    });
    assert_ok(&j);
    let j: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    let clean: f64 = col(&out, "clean_error_pct")[0].parse().unwrap();
    assert_eq!(clean, j["clean_error_pct"].as_f64().unwrap());
    let md = String::from_utf8(read(&out.join("report.md"))).unwrap();
    assert!(
        md.contains("--skip 40") && md.contains("from test image #40"),
        "{md}"
    );
    // A different --skip is a different configuration.
    let o = run(w
        .sweep(&[
            "--grid",
            "1.15,0.9",
            "--offsets",
            "2",
            "--profiles",
            "uniform",
            "--models",
            model,
            "--skip",
            "30",
            "--out",
        ])
        .arg(&out));
    assert_user_error(&o, &["different configuration"]);
}

#[test]
fn report_does_not_depend_on_how_the_sweep_was_invoked() {
    let w = World::new(32);
    let a = w.path("a");
    let b = w.path("nested/b");
    assert_ok(&run(w.std_sweep(&a, &[])));
    // Other output folder, --fresh, progress bar on/off, and the flags in another order.
    let models = format!("{},{}", w.model.display(), w.model4.display());
    let profiles = format!("{},uniform", w.profile.display());
    let mut c = bin();
    c.args([
        "sweep",
        "--fresh",
        "--profiles",
        &profiles,
        "--models",
        &models,
        "--grid",
        "1.15,1.0:0.8:0.05",
        "--data",
    ])
    .arg(w.data())
    .args(["--offsets", "2", "--out"])
    .arg(&b);
    assert_ok(&run(c));
    assert_same_bundle(&a, &b);
    let md = String::from_utf8(read(&a.join("report.md"))).unwrap();
    assert!(
        !md.contains("--fresh") && !md.contains("--out") && !md.contains("--quiet"),
        "{md}"
    );
    assert!(md.contains("Produced by `accelsim sweep --models"), "{md}");
}
