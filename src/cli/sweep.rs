//! `accelsim sweep`: voltage grid × models × fault profiles → `sweep.csv`, plots (PNG + SVG) and `report.md` in
//! the output folder. Resumable: a killed sweep restarts where it stopped (`sweep-state.json`); a different
//! configuration in the same folder is refused unless `--fresh`. See docs/run-and-sweep.md.
//!
//! Sharded campaigns (docs/scale-out.md): `--shard K/N` computes one shard, `sweep merge OUT` writes the report
//! of all shards, `sweep status OUT` tells what is missing, `--emit-slurm N` prints a Slurm job-array script.
use std::path::{Path, PathBuf};

use super::{CliError, CliResult};
use crate::config::HwConfig;
use crate::locate::Shipped;
use crate::report::markdown::DEFAULT_TOLERANCE_PTS;
use crate::sweep::driver::{command_line, run_sweep_with, shell_quote, RunOptions, SweepSpec};
use crate::sweep::grid::parse_voltage_grid;
use crate::sweep::merge::{self, ShardStates};
use crate::sweep::scenario;
use crate::sweep::unit::{Shard, MAX_SHARDS};
use crate::sweep::SweepError;

/// Default voltage grid: nominal (1.15 V) and two guardband points, then V_min (1.0 V) down to 0.8 V in 25 mV
/// steps (the measured BER range, docs/sram-profiles.md#measured-ber, where the shipped models differ).
pub const DEFAULT_GRID: &str = "1.15,1.1,1.05,1.0:0.8:0.025";
/// Default fault maps.
pub const DEFAULT_PROFILES: &str = "chip1,chip2";

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Work on the shards of a sweep in a folder instead of running one.
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Hardware config: a name in hw_configs/ or a path.
    #[arg(long, value_name = "CFG", default_value = "14nm_sram")]
    pub hw: String,
    /// Arithmetic of the functional model: int8 or float (docs/datapath.md) [default: the config's
    /// `[systolic] datapath`, float for the shipped configs]. Part of the sweep's fingerprint.
    #[arg(long, value_name = "DATAPATH", value_parser = super::values::datapath)]
    pub datapath: Option<crate::config::systolic::Datapath>,
    /// Models: comma-separated names in models/, paths, or family names of the shipped models (every member)
    /// [default: every shipped model of the small CNN, family `fmnist-cnn-*`, trained without activation faults;
    /// name the MobileNet/ResNet-style families or fmnist-cnn-randbet-act to add them].
    #[arg(long, value_name = "MODEL,...", value_delimiter = ',')]
    pub models: Vec<String>,
    /// Bit widths, comma-separated (e.g. 8,6,4,3,2): each family at each width, the model trained at that width
    /// when one is shipped, else post-training quantization of the family's float weights [default: every model
    /// at its own width].
    #[arg(long, value_delimiter = ',', value_name = "M,...")]
    pub bits: Vec<u32>,
    /// Fault maps: comma-separated names in sram_profiles/, paths, or `uniform` (measured BER curve).
    #[arg(long, value_name = "PROFILE,...", value_delimiter = ',', default_value = DEFAULT_PROFILES)]
    pub profiles: Vec<String>,
    /// Voltage grid in volts: comma list of values and START:STOP:STEP ranges.
    #[arg(long, default_value = DEFAULT_GRID)]
    pub grid: String,
    /// Weight-to-memory mapping offsets per profile (random chips for `uniform`), 1..=1024.
    #[arg(long, value_name = "N", default_value_t = 3, allow_negative_numbers = true,
          value_parser = super::values::int_in(1u32, 1024))]
    pub offsets: u32,
    /// Seeds per offset (transient cells; extra random chips for `uniform`), 1..=1024.
    #[arg(long, value_name = "N", default_value_t = 1, allow_negative_numbers = true,
          value_parser = super::values::int_in(1u32, 1024))]
    pub seeds: u32,
    /// ECC schemes to sweep, an axis: comma-separated `none`, `parity`, `secded` (e.g. `none,secded`; docs/ecc.md)
    /// [default: the config's `[weight_sram] ecc`]. Code size, interleaving and DUE policy come from the config.
    #[arg(long, value_name = "SCHEMES", value_delimiter = ',', value_parser = super::run::parse_ecc)]
    pub ecc: Vec<crate::config::EccScheme>,
    /// Scaled rails, overriding the config's `[voltage] scaled_rails`: comma-separated `weight_sram`,
    /// `activation_sram`, `logic` (docs/activation-faults.md). Repeat it for a rails axis (e.g. `--rails
    /// weight_sram --rails weight_sram,activation_sram`): every set is swept, a `rails` column per row, and
    /// report.md compares them.
    #[arg(long, value_name = "RAIL,...", value_parser = super::values::rails)]
    pub rails: Vec<super::values::RailSet>,
    /// Uniform random bit errors in the activation buffers' cells at per-bit probability P (0..=1; int8
    /// datapath only; docs/activation-faults.md#random-bit-errors).
    #[arg(long, value_name = "P", allow_negative_numbers = true, value_parser = super::values::float_where(
        |p| (0.0..=1.0).contains(&p), "0..=1 (a per-bit probability, e.g. 0.01 for 1%, not a percent)"))]
    pub act_ber: Option<f64>,
    /// Data folder of the models' data set [default: /usr/share/datasets/fashion-mnist].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Leave out the first N test images (e.g. `--skip 9000 --limit 1000`: the held-out last 1000
    /// Fashion-MNIST test images).
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true,
          value_parser = super::values::count_from(0))]
    pub skip: usize,
    /// Evaluate only the first N test images (N >= 1) [default: all].
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = super::values::count_from(1))]
    pub limit: Option<usize>,
    /// Output folder for sweep.csv, the plots, report.md and the resumable state.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub out: PathBuf,
    /// Discard a previous sweep's state in --out instead of resuming it.
    #[arg(long)]
    pub fresh: bool,
    /// Error tolerance in percentage points over the normal model at nominal voltage, for the report (0..=100).
    #[arg(long, value_name = "PTS", default_value_t = DEFAULT_TOLERANCE_PTS, allow_negative_numbers = true,
          value_parser = super::values::float_where(|t| (0.0..=100.0).contains(&t), "0..=100 percentage points"))]
    pub tolerance: f64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Sweep seed: shifts every random seed of every unit (uniform chips, transient cells); 0 keeps the
    /// paper's seeds 100, 101, ...
    #[arg(long, value_name = "S", default_value_t = 0, allow_negative_numbers = true,
          value_parser = super::values::int_from(0u32))]
    pub seed: u32,
    /// Compute only shard K (0-based) of N into --out (docs/scale-out.md); `sweep merge OUT` writes the report
    /// once every shard is done.
    #[arg(
        long,
        value_name = "K/N",
        conflicts_with = "emit_slurm",
        allow_hyphen_values = true
    )]
    pub shard: Option<String>,
    /// Print a Slurm job-array script of N shards plus a dependent merge job to stdout instead of running
    /// (`... --emit-slurm 16 > sweep.sbatch; bash sweep.sbatch`).
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = super::values::int_in(1u32, MAX_SHARDS))]
    pub emit_slurm: Option<u32>,
}

/// `sweep merge` and `sweep status`.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Merge the shards' state files in OUT into sweep.csv, the plots and report.md (byte-identical to the
    /// sweep run unsharded).
    Merge {
        /// The shards' --out folder.
        out: PathBuf,
        /// No progress messages.
        #[arg(long)]
        quiet: bool,
    },
    /// Units done and pending per shard in OUT, and the commands that finish the sweep.
    Status {
        /// The shards' --out folder.
        out: PathBuf,
    },
}

/// Parses stored configuration flags back into [`Args`] (for `merge` and `status`).
#[derive(clap::Parser, Debug)]
#[command(name = "accelsim")]
struct Reparse {
    #[command(subcommand)]
    cmd: ReparseCmd,
}

#[derive(clap::Subcommand, Debug)]
enum ReparseCmd {
    Sweep(Args),
}

fn args_from_invocation(invocation: &[String], dir: &Path) -> Result<Args, CliError> {
    use clap::Parser;
    let argv = ["accelsim", "sweep"]
        .into_iter()
        .map(String::from)
        .chain(invocation.iter().cloned());
    match Reparse::try_parse_from(argv) {
        Ok(Reparse {
            cmd: ReparseCmd::Sweep(a),
        }) if a.action.is_none() && a.shard.is_none() && a.emit_slurm.is_none() => Ok(a),
        _ => Err(CliError::user(format!(
            "{}: the state files hold configuration flags this accelsim cannot parse (`{}`); rerun the shards \
             with this version and --fresh",
            dir.display(),
            command_line(invocation)
        ))),
    }
}

fn sweep_err(e: SweepError) -> CliError {
    if e.is_user() {
        CliError::user(e.to_string())
    } else {
        CliError::internal(e.to_string())
    }
}

/// Builds the sweep specification from the arguments (all user errors are one line).
pub fn spec_from_args(args: &Args) -> Result<SweepSpec, CliError> {
    let hw_path = super::locate_flag(Shipped::HwConfig, "--hw", &args.hw)?;
    let mut hw = HwConfig::load(&hw_path).map_err(|e| CliError::user(e.to_string()))?;
    if let Some(d) = args.datapath {
        hw.systolic.datapath = d;
        hw.systolic.validate().map_err(|e| {
            CliError::user(format!(
                "--datapath {}: {}: {e}",
                d.name(),
                hw_path.display()
            ))
        })?;
    }
    // Repeated sets (the same rails in another order too) are swept once.
    let mut sets: Vec<&super::values::RailSet> = Vec::new();
    for set in &args.rails {
        let label = crate::sweep::plan::rails_label(&set.0);
        if !sets
            .iter()
            .any(|s| crate::sweep::plan::rails_label(&s.0) == label)
        {
            sets.push(set);
        }
    }
    let mut rails_axis = Vec::new();
    match sets.as_slice() {
        [] => super::run::check_act_ber(args.act_ber, &hw)?,
        [one] => {
            hw = super::run::apply_rails(&hw, one)?;
            super::run::check_act_ber(args.act_ber, &hw)?;
        }
        many => {
            // The rails axis: every set is checked on its own (a scaled activation rail needs int8).
            for set in many {
                let h = super::run::apply_rails(&hw, set)?;
                let int8 = h.systolic.datapath == crate::config::systolic::Datapath::Int8;
                crate::sram::act_faults::check_rails_datapath(&h.voltage.scaled_rails, int8)
                    .map_err(|e| {
                        let names: Vec<&str> = set.0.iter().map(|r| r.name()).collect();
                        CliError::user(format!("--rails {}: {}: {e}", names.join(","), h.origin))
                    })?;
                super::run::check_act_ber(args.act_ber, &h)?;
                rails_axis.push(set.0.clone());
            }
        }
    }
    let grid_v = parse_voltage_grid(&args.grid).map_err(sweep_err)?;
    for (flag, v) in [("--offsets", args.offsets), ("--seeds", args.seeds)] {
        if v == 0 || v > 1024 {
            return Err(CliError::user(format!(
                "{flag} {v} is out of range; allowed 1..=1024"
            )));
        }
    }
    if args.limit == Some(0) {
        return Err(CliError::user(
            "--limit 0 is out of range; allowed 1.. (or omit it for all images)",
        ));
    }
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        return Err(CliError::user(format!(
            "--tolerance {} is out of range; allowed >= 0 percentage points",
            args.tolerance
        )));
    }
    let bits = if args.bits.is_empty() {
        None
    } else {
        Some(scenario::parse_bits(&args.bits).map_err(sweep_err)?)
    };
    let models =
        scenario::resolve_variants(&args.models, bits.as_deref(), "--models").map_err(sweep_err)?;
    let faults = args
        .profiles
        .iter()
        .map(|p| super::fault_spec("--profiles", p.trim(), &hw))
        .collect::<Result<Vec<_>, _>>()?;
    super::check_data_dir(args.data.as_deref())?;
    Ok(SweepSpec {
        hw,
        hw_path,
        models,
        faults,
        grid_v,
        offsets: args.offsets,
        seeds: args.seeds,
        ecc: args.ecc.clone(),
        rails: rails_axis,
        seed: args.seed,
        data_dir: args.data.clone(),
        skip: args.skip,
        limit: args.limit,
        act_ber: args.act_ber.unwrap_or(0.0),
    })
}

/// The configuration flags of `args` that differ from their defaults, in a fixed order: what the report
/// quotes and the state file stores (`accelsim sweep <these>` rebuilds the sweep). Flags that do not change
/// the results (`--out`, `--fresh`, `--quiet`, `--shard`) are not part of it, so every way of producing one
/// sweep writes the same report.
pub fn invocation(args: &Args) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let mut push = |flag: &str, value: String| {
        v.push(flag.to_string());
        v.push(value);
    };
    if args.hw != "14nm_sram" {
        push("--hw", args.hw.clone());
    }
    if let Some(d) = args.datapath {
        push("--datapath", d.name().to_string());
    }
    if !args.models.is_empty() {
        push("--models", args.models.join(","));
    }
    if !args.bits.is_empty() {
        let b: Vec<String> = args.bits.iter().map(|b| b.to_string()).collect();
        push("--bits", b.join(","));
    }
    if args.profiles.join(",") != DEFAULT_PROFILES {
        push("--profiles", args.profiles.join(","));
    }
    if args.grid != DEFAULT_GRID {
        push("--grid", args.grid.clone());
    }
    if args.offsets != 3 {
        push("--offsets", args.offsets.to_string());
    }
    if args.seeds != 1 {
        push("--seeds", args.seeds.to_string());
    }
    if !args.ecc.is_empty() {
        push(
            "--ecc",
            args.ecc
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    for set in &args.rails {
        let names: Vec<&str> = set.0.iter().map(|r| r.name()).collect();
        push("--rails", names.join(","));
    }
    if let Some(p) = args.act_ber {
        push("--act-ber", p.to_string());
    }
    if let Some(d) = &args.data {
        push("--data", d.display().to_string());
    }
    if args.skip != 0 {
        push("--skip", args.skip.to_string());
    }
    if let Some(l) = args.limit {
        push("--limit", l.to_string());
    }
    if args.tolerance != DEFAULT_TOLERANCE_PTS {
        push("--tolerance", args.tolerance.to_string());
    }
    if args.seed != 0 {
        push("--seed", args.seed.to_string());
    }
    v
}

pub fn run(args: Args) -> CliResult {
    match &args.action {
        Some(Action::Merge { out, quiet }) => return merge_cmd(out, *quiet),
        Some(Action::Status { out }) => return status_cmd(out),
        None => {}
    }
    let shard = match &args.shard {
        Some(s) => Shard::parse(s).map_err(CliError::user)?,
        None => Shard::WHOLE,
    };
    let spec = spec_from_args(&args)?;
    if let Some(n) = args.emit_slurm {
        return emit_slurm(&args, &spec, n);
    }
    let started = std::time::Instant::now();
    let opts = RunOptions {
        fresh: args.fresh,
        progress: !args.quiet,
        shard,
        invocation: invocation(&args),
        report_tolerance_pts: Some(args.tolerance),
    };
    let outcome = run_sweep_with(&spec, &args.out, &opts).map_err(sweep_err)?;
    for n in &outcome.notes {
        eprintln!("{n}");
    }
    if !shard.is_whole() {
        eprintln!(
            "sweep shard {shard}: {} of {} units in {:.1} s; {} units computed, {} resumed; {} of {} points ran \
             inference",
            outcome.shard_units,
            outcome.total_units,
            started.elapsed().as_secs_f64(),
            outcome.units_computed,
            outcome.units_resumed,
            outcome.stats.inferences,
            outcome.stats.points,
        );
        println!(
            "wrote {}; when every shard is done: accelsim sweep merge {}",
            outcome.state_path.display(),
            shell_quote(&args.out.display().to_string())
        );
        return Ok(());
    }
    let summary = outcome
        .summary
        .clone()
        .ok_or_else(|| CliError::internal("the sweep wrote no report"))?;
    let st = outcome.stats;
    eprintln!(
        "sweep: {} rows in {:.1} s; {} units computed, {} resumed; {} of {} points ran inference \
         ({} fault-free, {} reused), {} tensors re-decoded",
        outcome.rows.len(),
        started.elapsed().as_secs_f64(),
        outcome.units_computed,
        outcome.units_resumed,
        st.inferences,
        st.points,
        st.clean_points,
        st.reused_points,
        st.tensors_decoded
    );
    println!(
        "wrote {}/{{sweep.csv, report.md, error_vs_voltage, energy_vs_voltage, tradeoff, heatmap_error, heatmap_energy (.png/.svg)}}",
        args.out.display()
    );
    for p in &summary.points {
        match &p.safe {
            Some(r) => println!(
                "  {:8} {:30} lowest safe {:.3} V, error {:.2}%, energy saved {:.1}% (weight SRAM {:.1}%) vs nominal, \
                 {:.1}% ({:.1}%) vs 8-bit @ V_min",
                p.profile,
                p.model,
                r.vdd_v,
                r.faulty_error_pct,
                r.energy_saving_pct,
                r.weight_sram_saving_pct,
                r.energy_saving_vs_vmin_pct,
                r.weight_sram_saving_vs_vmin_pct
            ),
            None => println!(
                "  {:8} {:30} above tolerance at every voltage",
                p.profile, p.model
            ),
        }
    }
    for b in &summary.best {
        if let Some(r) = &b.row {
            println!(
                "  best on {}: {} ({} bits, {}) at {:.3} V, lowest energy per inference of the safe points, {:.1} nJ; \
                 error {:.2}%, energy saved {:.1}% (weight SRAM {:.1}%) vs 8-bit @ V_min",
                b.profile,
                r.model,
                r.bits,
                r.weights_source,
                r.vdd_v,
                r.energy_pj / 1000.0,
                r.faulty_error_pct,
                r.energy_saving_vs_vmin_pct,
                r.weight_sram_saving_vs_vmin_pct
            );
        }
    }
    Ok(())
}

fn merge_cmd(out: &Path, quiet: bool) -> CliResult {
    let started = std::time::Instant::now();
    let states = ShardStates::read(out).map_err(sweep_err)?;
    let args = args_from_invocation(states.invocation(), out)?;
    let spec = spec_from_args(&args)?;
    let m = merge::merge(&spec, &states, args.tolerance).map_err(sweep_err)?;
    if !quiet {
        eprintln!(
            "sweep merge: {} units from {} state files, {} rows in {:.2} s",
            m.units,
            m.files,
            m.rows.len(),
            started.elapsed().as_secs_f64()
        );
    }
    println!(
        "wrote {}/{{sweep.csv, report.md, error_vs_voltage, energy_vs_voltage, tradeoff (.png/.svg)}}",
        out.display()
    );
    Ok(())
}

fn status_cmd(out: &Path) -> CliResult {
    let states = ShardStates::read(out).map_err(sweep_err)?;
    let args = args_from_invocation(states.invocation(), out)?;
    let spec = spec_from_args(&args)?;
    let st = merge::status(&spec, &states).map_err(sweep_err)?;
    let quoted_out = shell_quote(&out.display().to_string());
    let cmd = command_line(states.invocation());
    println!(
        "{}: `{cmd}` (fingerprint {})",
        out.display(),
        &states.fingerprint()[..16]
    );
    let mut complete = false;
    for n in states.shard_counts() {
        let group: Vec<_> = st.iter().filter(|s| s.shard.count == n).collect();
        let done: usize = group.iter().map(|s| s.done).sum();
        let units: usize = group.iter().map(|s| s.units).sum();
        println!("{n} shard(s): {done} of {units} units done");
        let mut pending_cmds = Vec::new();
        for s in &group {
            let state = if !s.started {
                "not started".to_string()
            } else if s.done == s.units {
                "done".to_string()
            } else {
                format!("{} pending", s.units - s.done)
            };
            println!(
                "  shard {:>11}: {:>6}/{:<6} units  {state}",
                s.shard.to_string(),
                s.done,
                s.units
            );
            if s.done < s.units {
                pending_cmds.push(if s.shard.is_whole() {
                    format!("{cmd} --out {quoted_out}")
                } else {
                    format!("{cmd} --out {quoted_out} --shard {}", s.shard)
                });
            }
        }
        if pending_cmds.is_empty() {
            complete = true;
        } else {
            println!("  to finish, run (in any order, at the same time if you like):");
            for c in &pending_cmds {
                println!("    {c}");
            }
        }
    }
    if complete {
        println!("all units done; write the report with: accelsim sweep merge {quoted_out}");
    } else {
        println!("then: accelsim sweep merge {quoted_out}");
    }
    Ok(())
}

fn emit_slurm(args: &Args, spec: &SweepSpec, shards: u32) -> CliResult {
    use crate::sweep::{plan::Plan, slurm};
    if shards == 0 || shards > MAX_SHARDS {
        return Err(CliError::user(format!(
            "--emit-slurm {shards} is out of range; allowed 1..={MAX_SHARDS} shards"
        )));
    }
    spec.validate().map_err(sweep_err)?;
    let plan = Plan::new(spec).map_err(sweep_err)?;
    let mut data = spec.data_cache();
    let fp = plan.fingerprint(spec, &mut data).map_err(sweep_err)?;
    let abs = |p: &Path| -> Result<String, CliError> {
        std::path::absolute(p)
            .map(|a| a.display().to_string())
            .map_err(|e| CliError::user(format!("{}: {e}", p.display())))
    };
    let exe = std::env::current_exe()
        .map_err(|e| CliError::internal(format!("cannot locate the accelsim binary: {e}")))?;
    let workdir = abs(Path::new("."))?;
    let out = abs(&args.out)?;
    let logs = args.out.join("slurm-logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| CliError::user(format!("{}: {e}", logs.display())))?;
    let inv = invocation(args);
    let text = slurm::script(&slurm::SlurmJob {
        exe: &exe.display().to_string(),
        workdir: workdir.trim_end_matches("/."),
        out: &out,
        invocation: &inv,
        shards,
        estimate: slurm::estimate(&plan, &fp, spec.grid_v.len(), shards),
        total_units: fp.expect.units.len(),
    });
    print!("{text}");
    Ok(())
}
