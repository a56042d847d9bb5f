//! `accelsim sweep`: voltage grid × models × fault profiles → `sweep.csv`, plots (PNG + SVG) and `report.md` in
//! the output folder. Resumable: a killed sweep restarts where it stopped (`sweep-state.json`); a different
//! configuration in the same folder is refused unless `--fresh`. See docs/run-and-sweep.md.
use std::path::PathBuf;

use super::{CliError, CliResult};
use crate::config::HwConfig;
use crate::report::markdown::{ReportContext, DEFAULT_TOLERANCE_PTS};
use crate::sweep::driver::{run_sweep, SweepSpec};
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
    /// Evaluate only the first N test images [default: all].
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
        return Err(CliError::user("--limit 0 is out of range; allowed 1.."));
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
        limit: args.limit,
    })
}

pub fn run(args: Args) -> CliResult {
    let spec = spec_from_args(&args)?;
    let started = std::time::Instant::now();
    let outcome = run_sweep(&spec, &args.out, args.fresh, !args.quiet).map_err(sweep_err)?;
    let command = std::env::args()
        .enumerate()
        .map(|(i, a)| if i == 0 { "accelsim".to_string() } else { a })
        .collect::<Vec<_>>()
        .join(" ");
    let ctx = ReportContext {
        title: format!("accelsim sweep on {}", spec.hw.name),
        command,
        setup: vec![
            format!(
                "hardware: `{}` ({}), V_min {:.3} V, nominal {:.3} V",
                spec.hw_path.display(),
                spec.hw.name,
                spec.hw.voltage.vmin_v,
                spec.hw.voltage.nominal_v
            ),
            format!(
                "fault sources: {}; {} mapping offsets × {} seeds per point",
                spec.faults
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                spec.offsets,
                spec.seeds
            ),
            format!(
                "test images per evaluation: {} (error = clean-or-faulty mistakes, docs/run-and-sweep.md#evaluation-protocol)",
                outcome.rows.first().map_or(0, |r| r.test_images)
            ),
            format!(
                "configuration fingerprint: `{}`",
                &outcome.fingerprint[..16]
            ),
        ],
        ..Default::default()
    };
    let summary = crate::report::write_bundle(&args.out, &outcome.rows, &ctx, args.tolerance)
        .map_err(|e| CliError::internal(e.to_string()))?;
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
        "wrote {}/{{sweep.csv, report.md, error_vs_voltage, energy_vs_voltage, tradeoff (.png/.svg)}}",
        args.out.display()
    );
    for p in &summary.points {
        match &p.safe {
            Some(r) => println!(
                "  {:8} {:28} lowest safe {:.3} V, error {:.2}%, energy saved {:.1}% (weight SRAM {:.1}%)",
                p.profile, p.model, r.vdd_v, r.faulty_error_pct, r.energy_saving_pct, r.weight_sram_saving_pct
            ),
            None => println!(
                "  {:8} {:28} above tolerance at every voltage",
                p.profile, p.model
            ),
        }
    }
    Ok(())
}
