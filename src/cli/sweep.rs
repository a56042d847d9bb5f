//! `accelsim sweep`: voltage grid × models × fault profiles → `sweep.csv`, plots (PNG + SVG) and `report.md` in
//! the output folder. Resumable: a killed sweep restarts where it stopped (`sweep-state.json`); a different
//! configuration in the same folder is refused unless `--fresh`. See docs/run-and-sweep.md.
use std::path::PathBuf;

use super::{CliError, CliResult};
use crate::config::HwConfig;
use crate::report::markdown::DEFAULT_TOLERANCE_PTS;
use crate::sweep::driver::{run_sweep_with, RunOptions, SweepSpec};
use crate::sweep::grid::parse_voltage_grid;
use crate::sweep::scenario::{self, FaultSpec};
use crate::sweep::SweepError;

/// Default voltage grid: nominal (1.15 V) and two guardband points, then V_min (1.0 V) down to 0.8 V in 25 mV
/// steps (the measured BER range, docs/sram-profiles.md#measured-ber, where the shipped models differ).
pub const DEFAULT_GRID: &str = "1.15,1.1,1.05,1.0:0.8:0.025";
/// Default fault maps.
pub const DEFAULT_PROFILES: &str = "chip1,chip2";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Hardware config: a name in hw_configs/ or a path.
    #[arg(long, default_value = "14nm_sram")]
    pub hw: String,
    /// Models: comma-separated names in models/, paths, or family names of the shipped models (every member)
    /// [default: every shipped model].
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Bit widths, comma-separated (e.g. 8,6,4,3,2): each family at each width, the model trained at that width
    /// when one is shipped, else post-training quantization of the family's float weights [default: every model
    /// at its own width].
    #[arg(long, value_delimiter = ',', value_name = "M,...")]
    pub bits: Vec<u32>,
    /// Fault maps: comma-separated names in sram_profiles/, paths, or `uniform` (measured BER curve).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_PROFILES)]
    pub profiles: Vec<String>,
    /// Voltage grid in volts: comma list of values and START:STOP:STEP ranges.
    #[arg(long, default_value = DEFAULT_GRID)]
    pub grid: String,
    /// Weight-to-memory mapping offsets per profile (random chips for `uniform`).
    #[arg(long, default_value_t = 3)]
    pub offsets: u32,
    /// Seeds per offset (transient cells; extra random chips for `uniform`).
    #[arg(long, default_value_t = 1)]
    pub seeds: u32,
    /// Data folder of the models' data set [default: /usr/share/datasets/fashion-mnist].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Leave out the first N test images (e.g. `--skip 9000 --limit 1000`: the held-out last 1000
    /// Fashion-MNIST test images) [default: 0].
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub skip: usize,
    /// Evaluate only the first N test images (after `--skip`) [default: all].
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Output folder for sweep.csv, the plots, report.md and the resumable state.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Discard a previous sweep's state in --out instead of resuming it.
    #[arg(long)]
    pub fresh: bool,
    /// Error tolerance in percentage points over the normal model at nominal voltage, for the report.
    #[arg(long, default_value_t = DEFAULT_TOLERANCE_PTS)]
    pub tolerance: f64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
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
    let hw_path = HwConfig::resolve(&args.hw).map_err(|e| CliError::user(e.to_string()))?;
    let hw = HwConfig::load(&hw_path).map_err(|e| CliError::user(e.to_string()))?;
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
    let models = scenario::resolve_variants(&args.models, bits.as_deref()).map_err(sweep_err)?;
    let faults = args
        .profiles
        .iter()
        .map(|p| FaultSpec::resolve(p.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(sweep_err)?;
    Ok(SweepSpec {
        hw,
        hw_path,
        models,
        faults,
        grid_v,
        offsets: args.offsets,
        seeds: args.seeds,
        data_dir: args.data.clone(),
        skip: args.skip,
        limit: args.limit,
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
    v
}

pub fn run(args: Args) -> CliResult {
    let spec = spec_from_args(&args)?;
    let started = std::time::Instant::now();
    let opts = RunOptions {
        fresh: args.fresh,
        progress: !args.quiet,
        invocation: invocation(&args),
        report_tolerance_pts: Some(args.tolerance),
        ..Default::default()
    };
    let outcome = run_sweep_with(&spec, &args.out, &opts).map_err(sweep_err)?;
    for n in &outcome.notes {
        eprintln!("{n}");
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
                "  best on {}: {} ({} bits, {}) at {:.3} V, error {:.2}%, energy saved {:.1}% (weight SRAM {:.1}%) vs 8-bit @ V_min",
                b.profile,
                r.model,
                r.bits,
                r.weights_source,
                r.vdd_v,
                r.faulty_error_pct,
                r.energy_saving_vs_vmin_pct,
                r.weight_sram_saving_vs_vmin_pct
            );
        }
    }
    Ok(())
}
