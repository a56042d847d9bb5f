//! Sharded sweeps, driving the binary (issue #16): `--shard K/N` in any order or all at once, `sweep merge`
//! byte-identical to the unsharded run, `sweep status`, merge refusals (missing, duplicated, conflicting
//! units), preempted shards resuming, `--seed`, and the `--emit-slurm` script run through a stand-in `sbatch`.
//! The real-Slurm check is `make test-slurm` (tests/slurm/run.sh).
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

fn shard(w: &World, out: &Path, k: u32, n: u32, extra: &[&str]) -> std::process::Command {
    let s = format!("{k}/{n}");
    let mut args = vec!["--shard", s.as_str()];
    args.extend_from_slice(extra);
    let mut c = w.std_sweep_with(w.data(), 3, out, &args);
    c.stdout(Stdio::piped());
    c
}

fn merge(out: &Path) -> std::process::Output {
    let mut c = bin();
    c.args(["sweep", "merge"]).arg(out);
    run(c)
}

fn status(out: &Path) -> String {
    let mut c = bin();
    c.args(["sweep", "status"]).arg(out);
    let o = run(c);
    assert_ok(&o);
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn shards_in_any_order_merge_to_the_unsharded_bytes() {
    let w = World::new(64);
    let whole = w.path("whole");
    assert_ok(&run(w.std_sweep_with(w.data(), 3, &whole, &[])));
    let out = w.path("sharded");
    // 12 units in 5 shards (sizes 2 or 3), out of order.
    for k in [3, 0, 4] {
        let err = assert_ok(&run(shard(&w, &out, k, 5, &[])));
        assert!(err.contains(&format!("sweep shard {k}/5")), "{err}");
    }
    let st = status(&out);
    assert!(
        st.contains("not started") && st.contains("--shard 1/5") && st.contains("--shard 2/5"),
        "{st}"
    );
    assert!(!st.contains("--shard 0/5"), "{st}");
    let m = merge(&out);
    assert_user_error(&m, &["units missing", "1/5", "2/5", "--shard K/5"]);
    for k in [2, 1] {
        assert_ok(&run(shard(&w, &out, k, 5, &[])));
    }
    assert!(status(&out).contains("all units done"));
    assert!(!out.join("sweep.csv").exists(), "shards write no report");
    assert_ok(&merge(&out));
    assert_same_bundle(&whole, &out);
}

#[test]
fn concurrent_shards_share_the_folder() {
    let w = World::new(600);
    let whole = w.path("whole");
    assert_ok(&run(w.std_sweep_with(w.data(), 3, &whole, &[])));
    let out = w.path("par");
    let children: Vec<_> = (0..3)
        .map(|k| {
            shard(&w, &out, k, 3, &[])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_ok(&o);
    }
    assert_ok(&merge(&out));
    assert_same_bundle(&whole, &out);
}

#[test]
fn another_configuration_is_refused_while_a_shard_runs() {
    let w = World::new(4000);
    let out = w.path("busy");
    let mut a = w
        .slow_sweep(&out, 16, &["--shard", "0/2"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !out.join(".lock.shard-0-of-2").exists() {
        assert!(
            a.try_wait().unwrap().is_none(),
            "the shard ended before the test could start"
        );
        assert!(t0.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(5));
    }
    // Freeze the holder: a stopped process keeps its lock and cannot finish, so what follows does not depend on
    // how fast the machine is.
    signal(&a, "STOP");
    let other = run(w.slow_sweep(&out, 2, &["--shard", "1/2"]));
    let same_shard = run(w.slow_sweep(&out, 16, &["--shard", "0/2"]));
    // The sibling shard of the same sweep gets its own lock while the first one still holds its.
    let mut sibling = w
        .slow_sweep(&out, 16, &["--shard", "1/2"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t1 = Instant::now();
    while !out.join(".lock.shard-1-of-2").exists() {
        assert!(
            sibling.try_wait().unwrap().is_none(),
            "the sibling shard was refused"
        );
        assert!(t1.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(5));
    }
    let running = a.try_wait().unwrap().is_none();
    for c in [&mut a, &mut sibling] {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(running, "the stopped shard ended during the test");
    let pid = format!("pid {}", a.id());
    assert_user_error(
        &other,
        &[&out.display().to_string(), &pid, "different configuration"],
    );
    assert_user_error(&same_shard, &[&pid, "same files"]);
}

#[test]
fn preempted_shard_resumes_and_merge_refuses_bad_sets() {
    let w = World::new(64);
    let whole = w.path("whole");
    assert_ok(&run(w.std_sweep_with(w.data(), 3, &whole, &[])));
    let out = w.path("s");
    for k in 0..2 {
        assert_ok(&run(shard(&w, &out, k, 2, &[])));
    }
    // Preemption: a unit lost from shard 1's file; its rerun computes just that one.
    let p1 = out.join("sweep-state.shard-1-of-2.json");
    let mut v: serde_json::Value = serde_json::from_slice(&read(&p1)).unwrap();
    v["units"].as_array_mut().unwrap().pop();
    std::fs::write(&p1, serde_json::to_vec(&v).unwrap()).unwrap();
    assert_user_error(&merge(&out), &["1 of 12 units missing", "1/2"]);
    let err = assert_ok(&run(shard(&w, &out, 1, 2, &[])));
    assert!(err.contains("1 units computed, 5 resumed"), "{err}");
    assert_ok(&merge(&out));
    assert_same_bundle(&whole, &out);

    // A unit in two files: the whole-sweep state next to the shards'.
    std::fs::copy(whole.join("sweep-state.json"), out.join("sweep-state.json")).unwrap();
    assert_user_error(
        &merge(&out),
        &["in both", "sweep-state.json", "exactly one"],
    );
    std::fs::remove_file(out.join("sweep-state.json")).unwrap();

    // A shard of another configuration in the folder: refused by a shard run and by merge.
    let other = w.path("other");
    assert_ok(&run(w.std_sweep_with(
        w.data(),
        2,
        &other,
        &["--shard", "0/2"],
    )));
    std::fs::copy(
        other.join("sweep-state.shard-0-of-2.json"),
        out.join("sweep-state.shard-0-of-4.json"),
    )
    .unwrap();
    assert_user_error(
        &merge(&out),
        &["different configurations", "sweep-state.shard-0-of-4.json"],
    );
    assert_user_error(
        &run(shard(&w, &out, 0, 2, &[])),
        &[
            "sweep-state.shard-0-of-4.json",
            "different configuration",
            "--fresh",
        ],
    );
    // --fresh on a shard removes states of other configurations (its siblings of this one stay).
    assert_ok(&run(shard(&w, &out, 0, 2, &["--fresh"])));
    assert!(!out.join("sweep-state.shard-0-of-4.json").exists());
    assert!(out.join("sweep-state.shard-1-of-2.json").exists());
    assert_ok(&merge(&out));
    assert_same_bundle(&whole, &out);

    // The inputs changed after the shards ran (a model retrained): merge refuses.
    write_model(
        w.data(),
        "tiny-randbet-4b",
        "tiny-randbet-4b",
        "randbet",
        4,
        5,
    );
    assert_user_error(&merge(&out), &["inputs now give", "--fresh"]);

    // Nothing to merge.
    let empty = w.path("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_user_error(&merge(&empty), &["no sweep state files"]);
    assert_user_error(&merge(&w.path("nope")), &["not a folder"]);
}

#[test]
fn bad_shard_specs_are_user_errors() {
    let w = World::new(8);
    for bad in ["2/2", "1", "-1/2", "a/b", "0/0", "0/100001"] {
        let o = run(w.std_sweep_with(w.data(), 1, &w.path("x"), &["--shard", bad]));
        assert_user_error(&o, &["--shard", "0 <= K < N"]);
    }
    let o = run(w.std_sweep_with(w.data(), 1, &w.path("x"), &["--emit-slurm", "0"]));
    assert_user_error(&o, &["--emit-slurm 0", "allowed 1..=100000"]);
    // A subcommand does not take sweep flags.
    let mut c = bin();
    c.args(["sweep", "--grid", "1.15", "merge", "x"]);
    assert_eq!(run(c).status.code(), Some(2));
}

#[test]
fn seed_changes_the_chips_and_shards_keep_it() {
    let w = World::new(64);
    let s0 = w.path("s0");
    let s1 = w.path("s1");
    let s1b = w.path("s1b");
    assert_ok(&run(w.std_sweep(&s0, &[])));
    assert_ok(&run(w.std_sweep(&s1, &["--seed", "1"])));
    for k in 0..2 {
        assert_ok(&run(
            w.std_sweep(&s1b, &["--seed", "1", "--shard", &format!("{k}/2")])
        ));
    }
    assert_ok(&merge(&s1b));
    assert_same_bundle(&s1, &s1b);
    assert_ne!(
        read(&s0.join("sweep.csv")),
        read(&s1.join("sweep.csv")),
        "--seed 1 must draw other chips"
    );
    let md = String::from_utf8(read(&s1.join("report.md"))).unwrap();
    assert!(md.contains("--seed 1"), "{md}");
}

/// The `--emit-slurm` script, run by `bash` with a stand-in `sbatch` that executes each array task and then
/// the merge job in order (the real Slurm run is `make test-slurm`).
#[test]
fn emitted_slurm_script_runs_the_array_and_the_merge() {
    let w = World::new(64);
    let whole = w.path("whole");
    assert_ok(&run(w.std_sweep_with(w.data(), 3, &whole, &[])));
    let out = w.path("slurm-out");
    let o = run(w.std_sweep_with(w.data(), 3, &out, &["--emit-slurm", "4"]));
    assert_ok(&o);
    let script = String::from_utf8(o.stdout).unwrap();
    assert!(script.contains("#SBATCH --array=0-3\n"), "{script}");
    assert!(script.contains("--dependency=afterok:"), "{script}");
    assert!(!out.join("sweep.csv").exists(), "--emit-slurm runs nothing");
    let path = w.path("sweep.sbatch");
    std::fs::write(&path, &script).unwrap();
    let fake = w.path("fakebin");
    std::fs::create_dir(&fake).unwrap();
    let sbatch = fake.join("sbatch");
    std::fs::write(
        &sbatch,
        r#"#!/bin/bash
# Stand-in for sbatch: runs the job now (array tasks one after the other), prints a job id.
set -euo pipefail
echo "$*" >> "$FAKE_SBATCH_LOG"
wrap=""; script=""; dep=""
for a in "$@"; do
  case "$a" in
    --wrap=*) wrap="${a#--wrap=}";;
    --dependency=*) dep="${a#--dependency=}";;
    --*) ;;
    *) script="$a";;
  esac
done
if [ -n "$wrap" ]; then
  [ "$dep" = "afterok:100" ] || { echo "merge not after the array: $dep" >&2; exit 1; }
  (cd "$(sed -n 's/^#SBATCH --chdir=//p' "$FAKE_SBATCH_SCRIPT")" && bash -c "$wrap") >> "$FAKE_SBATCH_OUT" 2>&1
  echo 101
else
  last=$(sed -n 's/^#SBATCH --array=0-//p' "$script")
  dir=$(sed -n 's/^#SBATCH --chdir=//p' "$script")
  for i in $(seq 0 "$last"); do
    (cd "$dir" && SLURM_ARRAY_TASK_ID=$i bash "$script") >> "$FAKE_SBATCH_OUT" 2>&1
  done
  echo "100;cluster"
fi
"#,
    )
    .unwrap();
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = std::process::Command::new("bash");
    c.arg(&path)
        .current_dir(w.dir.path())
        .env(
            "PATH",
            format!("{}:{}", fake.display(), std::env::var("PATH").unwrap()),
        )
        .env("FAKE_SBATCH_LOG", w.path("sbatch.log"))
        .env("FAKE_SBATCH_OUT", w.path("jobs.out"))
        .env("FAKE_SBATCH_SCRIPT", &path);
    let o = run(c);
    let jobs = std::fs::read_to_string(w.path("jobs.out")).unwrap_or_default();
    assert!(
        o.status.success(),
        "{}\n{jobs}",
        String::from_utf8_lossy(&o.stderr)
    );
    let said = String::from_utf8(o.stdout).unwrap();
    assert!(
        said.contains("array job 100 (4 shards) and merge job 101"),
        "{said}"
    );
    for k in 0..4 {
        assert!(
            out.join(format!("sweep-state.shard-{k}-of-4.json"))
                .is_file(),
            "{jobs}"
        );
    }
    assert_same_bundle(&whole, &out);
}

/// Sends `SIGname` to a child (`kill -STOP pid`).
fn signal(c: &std::process::Child, name: &str) {
    let ok = std::process::Command::new("kill")
        .args([format!("-{name}"), c.id().to_string()])
        .status()
        .expect("run kill");
    assert!(ok.success(), "kill -{name} {}", c.id());
}
