//! `sweep --emit-slurm N`: a Slurm job-array script for a sharded sweep, with its merge job (docs/scale-out.md).
//!
//! The script is an `sbatch` array script (`#SBATCH --array=0-(N-1)`); task `i` runs
//! `accelsim sweep <configuration> --quiet --out OUT --shard i/N`. Run with `bash`, it submits itself as the
//! array and then `accelsim sweep merge OUT` as a job with `--dependency=afterok:<array>`, which Slurm starts
//! only once every task has succeeded. The shard count is written into the script rather than read from
//! `$SLURM_ARRAY_TASK_COUNT`, so resubmitting only some tasks (`sbatch --array=3,5 sweep.sbatch`) still
//! computes shards 3/N and 5/N.
//!
//! Requests are estimated from the plan ([`estimate`]): time from the units per task, the grid, the test images
//! and the model's MACs per inference at a conservative calibrated rate, with a 2× margin; memory from the test
//! split and the weights.
use super::driver::shell_quote;
use super::plan::{Fingerprinted, Plan};

/// MACs per second of one core, counting every grid point as a full inference: the default sweep took 80
/// core-seconds for 30 units × 12 voltages × 10 000 images × 1.1 M MACs (5·10¹⁰ counted MAC/s, about 2.7·10¹⁰
/// at the points that do run inference) on the development machine (docs/scale-out.md); rounded down 2.7× below
/// the latter so that grids where every point is faulty and slower cores still fit.
pub const CALIBRATED_MACS_PER_CORE_S: f64 = 1.0e10;
/// Margin on the time request.
pub const TIME_MARGIN: f64 = 2.0;
/// Fixed start-up time per task (loading models, profiles and data, hashing the data), seconds.
pub const TASK_STARTUP_S: f64 = 60.0;

/// Time and memory requests of the array tasks and of the merge job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Units in the largest shard.
    pub units_per_task: usize,
    pub task_minutes: u64,
    pub task_mem_mb: u64,
    pub merge_minutes: u64,
    pub merge_mem_mb: u64,
}

/// Estimates the requests for `shards` tasks of one CPU each (see the module docs):
/// - time = `margin · (startup + units_per_task · grid · images · max MACs) / rate`, in whole minutes, at least
///   10; every grid point is counted as an inference (fault-free points need none, so this is an upper bound);
/// - memory = 128 MiB + 8 bytes per test-image pixel (raw and normalised images, activations) + 16 bytes per
///   weight of the largest model, times 1.5, in MiB (285 MiB for the shipped models on 10 000 images; the
///   default sweep peaks at 95 MiB); the merge job loads the data once too.
pub fn estimate(plan: &Plan, fp: &Fingerprinted, grid_len: usize, shards: u32) -> Estimate {
    let total = fp.expect.units.len();
    let units_per_task = total.div_ceil(shards.max(1) as usize);
    let max_macs = plan
        .models
        .iter()
        .flat_map(|m| m.costs.iter().map(|c| c.stats.macs))
        .max()
        .unwrap_or(0) as f64;
    let images = fp.expect.models.values().map(|v| v.1).max().unwrap_or(0) as f64;
    let pixels = plan
        .models
        .iter()
        .map(|m| {
            let (c, h, w) = m.dataset.image_shape();
            (c * h * w) as f64
        })
        .fold(0.0, f64::max)
        * images;
    let weights = plan.models.iter().map(|m| m.weights).max().unwrap_or(0) as f64;
    let secs = TIME_MARGIN
        * (TASK_STARTUP_S
            + units_per_task as f64 * grid_len as f64 * images * max_macs
                / CALIBRATED_MACS_PER_CORE_S);
    let mem_mb =
        ((128.0 * 1048576.0 + 8.0 * pixels + 16.0 * weights) * 1.5 / 1048576.0).ceil() as u64;
    Estimate {
        units_per_task,
        task_minutes: ((secs / 60.0).ceil() as u64).max(10),
        task_mem_mb: mem_mb,
        merge_minutes: 10,
        merge_mem_mb: mem_mb,
    }
}

/// `HH:MM:00` for Slurm's `--time`.
fn slurm_time(minutes: u64) -> String {
    format!("{:02}:{:02}:00", minutes / 60, minutes % 60)
}

/// Everything the script names.
#[derive(Debug, Clone)]
pub struct SlurmJob<'a> {
    /// The accelsim binary (absolute).
    pub exe: &'a str,
    /// Working directory of every job (absolute; relative paths of the configuration resolve there).
    pub workdir: &'a str,
    /// Output folder (absolute).
    pub out: &'a str,
    /// Configuration flags (`cli::sweep::invocation`).
    pub invocation: &'a [String],
    pub shards: u32,
    pub estimate: Estimate,
    pub total_units: usize,
}

/// The job-array script (see the module docs).
pub fn script(job: &SlurmJob) -> String {
    let e = job.estimate;
    let n = job.shards;
    let q = |s: &str| shell_quote(s);
    let flags: Vec<String> = job.invocation.iter().map(|a| q(a)).collect();
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str("#SBATCH --job-name=accelsim-sweep\n");
    s.push_str(&format!("#SBATCH --array=0-{}\n", n - 1));
    s.push_str("#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=1\n");
    s.push_str(&format!("#SBATCH --time={}\n", slurm_time(e.task_minutes)));
    s.push_str(&format!("#SBATCH --mem={}M\n", e.task_mem_mb));
    s.push_str(&format!("#SBATCH --chdir={}\n", job.workdir));
    s.push_str(&format!(
        "#SBATCH --output={}/slurm-logs/%x-%A_%a.out\n",
        job.out
    ));
    s.push_str(&format!(
        "#\n# accelsim sweep in {n} shards ({} units, at most {} per task), generated by\n#   {} --emit-slurm {n}\n",
        job.total_units,
        e.units_per_task,
        super::driver::command_line(job.invocation)
    ));
    s.push_str(
        "#\n# bash THIS_FILE     submits the array and a merge job that starts once every task succeeded;\n\
         # sbatch THIS_FILE   submits the array only (then: sbatch --dependency=afterok:JOBID --wrap \"accelsim sweep merge OUT\").\n\
         # A task that is preempted or fails can simply be resubmitted (sbatch --array=3,5 THIS_FILE): it resumes its\n\
         # finished units. The shard count is fixed in this file (not $SLURM_ARRAY_TASK_COUNT) for that reason.\n\
         # Progress: accelsim sweep status OUT. Requests are estimates with a 2x margin (docs/scale-out.md); edit them\n\
         # for slower nodes. Set ACCELSIM to use another binary.\n",
    );
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!("ACCELSIM=\"${{ACCELSIM:-{}}}\"\n", job.exe));
    s.push_str(&format!("OUT={}\nSHARDS={n}\n", q(job.out)));
    s.push_str("if [ -z \"${SLURM_ARRAY_TASK_ID:-}\" ]; then\n");
    s.push_str("  mkdir -p \"$OUT/slurm-logs\"\n");
    s.push_str("  array=$(sbatch --parsable \"$0\")\n  array=${array%%;*}\n");
    s.push_str(&format!(
        "  merge=$(sbatch --parsable --dependency=afterok:\"$array\" --job-name=accelsim-merge --ntasks=1 \\\n    \
         --cpus-per-task=1 --time={} --mem={}M --chdir={} \\\n    \
         --output=\"$OUT/slurm-logs/%x-%j.out\" --wrap=\"\\\"$ACCELSIM\\\" sweep merge \\\"$OUT\\\"\")\n",
        slurm_time(e.merge_minutes),
        e.merge_mem_mb,
        q(job.workdir)
    ));
    s.push_str("  merge=${merge%%;*}\n");
    s.push_str(
        "  echo \"submitted array job $array ($SHARDS shards) and merge job $merge (afterok:$array)\"\n",
    );
    s.push_str("  echo \"progress: $ACCELSIM sweep status $OUT\"\n  exit 0\nfi\n");
    s.push_str("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n");
    s.push_str(&format!(
        "exec \"$ACCELSIM\" sweep{}{} --quiet --out \"$OUT\" --shard \"$SLURM_ARRAY_TASK_ID/$SHARDS\"\n",
        if flags.is_empty() { "" } else { " " },
        flags.join(" ")
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_has_the_array_the_shard_and_the_dependent_merge() {
        let inv = vec![
            "--grid".to_string(),
            "1.15,0.9".to_string(),
            "--models".into(),
            "a b.toml".into(),
        ];
        let e = Estimate {
            units_per_task: 3,
            task_minutes: 75,
            task_mem_mb: 512,
            merge_minutes: 10,
            merge_mem_mb: 512,
        };
        let s = script(&SlurmJob {
            exe: "/opt/accelsim",
            workdir: "/home/u/w",
            out: "/scratch/o",
            invocation: &inv,
            shards: 4,
            estimate: e,
            total_units: 10,
        });
        assert!(s.starts_with("#!/bin/bash\n#SBATCH"));
        for needle in [
            "#SBATCH --array=0-3\n",
            "#SBATCH --time=01:15:00\n",
            "#SBATCH --mem=512M\n",
            "#SBATCH --chdir=/home/u/w\n",
            "--dependency=afterok:\"$array\"",
            "sweep merge",
            "--shard \"$SLURM_ARRAY_TASK_ID/$SHARDS\"",
            "SHARDS=4\n",
            "sweep --grid 1.15,0.9 --models 'a b.toml' --quiet",
        ] {
            assert!(s.contains(needle), "`{needle}` not in:\n{s}");
        }
        assert!(!s.contains("--fresh"), "a resubmitted task must resume");
    }
}
