//! `accelsim profile`: generate, inspect and draw SRAM fault-map profiles (docs/sram-profiles.md).
use super::{CliError, CliResult};
use crate::sram::{self, FaultProfile, GenerateSpec, MapSegment, SramError, Style};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: ProfileCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ProfileCommand {
    /// Generate a synthetic chip calibrated to the measured BER-vs-voltage curve (docs/sram-profiles.md#measured-ber).
    Generate(GenerateArgs),
    /// Print BER, 0→1 / 1→0 and persistent rates and column clustering at given voltages.
    Stats(StatsArgs),
    /// Draw a segment of the map (cells failing at a voltage, coloured by kind) to a PNG.
    Show(ShowArgs),
    /// Write the chip's active faults at a voltage, mapped onto N weights, as a fault-pattern file for replay
    /// (`accelsim inject --replay`).
    Pattern(PatternArgs),
}

#[derive(clap::Args, Debug)]
pub struct PatternArgs {
    /// Profile file, or a name in sram_profiles/ (e.g. chip1).
    pub file: String,
    /// Hardware config (name in hw_configs/ or path): weight SRAM geometry and mapping.
    #[arg(long, default_value = "14nm_sram")]
    pub hw: String,
    /// Bits per stored weight (m).
    #[arg(long)]
    pub bits: u8,
    /// Number of weights (elements in memory order).
    #[arg(long)]
    pub elements: u64,
    /// Voltage relative to V_min.
    #[arg(long)]
    pub vdd_rel: f64,
    /// Start offset in bits (default: the config's weight_sram.offset_bits).
    #[arg(long)]
    pub offset_bits: Option<u64>,
    /// Seed of the transient-fault draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output fault-pattern file (safetensors, docs/faults.md).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// chip1 (uniform, balanced), chip2 / chip3 (column-aligned, 0→1 biased), uniform (flips, persistent).
    #[arg(long)]
    pub style: String,
    /// Arrays in the profile (512x64 each by default).
    #[arg(long, default_value_t = 32)]
    pub arrays: u32,
    #[arg(long, default_value_t = 512)]
    pub rows: u32,
    #[arg(long, default_value_t = 64)]
    pub columns: u32,
    #[arg(long)]
    pub seed: u64,
    /// Cells failing only at or below this vdd_rel are not stored (0.75..1).
    #[arg(long, default_value_t = 0.75)]
    pub floor: f64,
    /// Name written in the header (default: the style).
    #[arg(long)]
    pub name: Option<String>,
    /// Output file (`.gz` ending: gzip-compressed).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Profile file, or a name in sram_profiles/ (e.g. chip1).
    pub file: String,
    /// Comma-separated voltages relative to V_min.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.75,0.792,0.833,0.875,0.917,0.958,1.0"
    )]
    pub vdd_rel: Vec<f64>,
    /// Print a JSON list (rates as fractions) instead of a table (rates in percent).
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// Profile file, or a name in sram_profiles/ (e.g. chip2).
    pub file: String,
    /// Voltage relative to V_min.
    #[arg(long)]
    pub vdd_rel: f64,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
    /// First array of the segment.
    #[arg(long, default_value_t = 0)]
    pub array: u32,
    /// Arrays side by side.
    #[arg(long, default_value_t = 2)]
    pub arrays: u32,
    /// First row.
    #[arg(long, default_value_t = 0)]
    pub row: u32,
    /// Rows.
    #[arg(long, default_value_t = 64)]
    pub rows: u32,
}

/// Most weights `profile pattern --elements` maps: 2^28 = 268435456, a 256 MiB model of 8-bit codes. The
/// pattern holds up to one entry (24 bytes) per weight, a few GiB at the profile's floor voltage
/// (docs/sram-profiles.md).
pub const MAX_PATTERN_ELEMENTS: u64 = 1 << 28;

/// Profile errors are the user's (bad file, bad voltage, bad option): exit code 2.
fn user(e: SramError) -> CliError {
    CliError::user(e.to_string())
}

fn load(name_or_path: &str) -> Result<FaultProfile, CliError> {
    let path = FaultProfile::resolve(name_or_path).map_err(user)?;
    FaultProfile::load(&path).map_err(user)
}

pub fn run(args: Args) -> CliResult {
    match args.command {
        ProfileCommand::Generate(a) => {
            let style: Style = a.style.parse().map_err(user)?;
            let spec = GenerateSpec {
                style,
                arrays: a.arrays,
                rows: a.rows,
                columns: a.columns,
                seed: a.seed,
                floor_vdd_rel: a.floor,
                name: a.name.unwrap_or_else(|| style.name().to_string()),
            };
            let p = sram::generate(&spec).map_err(user)?;
            p.save(&a.out).map_err(user)?;
            eprintln!(
                "wrote {} ({} failing cells above vdd_rel {} of {})",
                a.out.display(),
                p.cells().len(),
                spec.floor_vdd_rel,
                p.meta.total_cells()
            );
            Ok(())
        }
        ProfileCommand::Stats(a) => {
            let p = load(&a.file)?;
            let stats = a
                .vdd_rel
                .iter()
                .map(|&v| p.stats_at(v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(user)?;
            if a.json {
                let s = serde_json::to_string_pretty(&stats)
                    .map_err(|e| CliError::internal(e.to_string()))?;
                println!("{s}");
            } else {
                println!(
                    "{} ({} arrays of {}x{}, floor vdd_rel {})",
                    p.meta.name, p.meta.arrays, p.meta.rows, p.meta.columns, p.meta.floor_vdd_rel
                );
                println!(
                    "{:>8} {:>11} {:>11} {:>11} {:>13} {:>10} {:>12}",
                    "vdd_rel",
                    "ber_pct",
                    "p01_pct",
                    "p10_pct",
                    "persist_pct",
                    "col_clust",
                    "measured_pct"
                );
                for s in &stats {
                    println!(
                        "{:>8.4} {:>11.5} {:>11.5} {:>11.5} {:>13.5} {:>10} {:>12.5}",
                        s.vdd_rel,
                        s.ber * 100.0,
                        s.p01 * 100.0,
                        s.p10 * 100.0,
                        s.persistent * 100.0,
                        s.column_clustering
                            .map_or("-".to_string(), |c| format!("{c:.2}")),
                        sram::measured_ber(s.vdd_rel) * 100.0
                    );
                }
            }
            Ok(())
        }
        ProfileCommand::Pattern(a) => {
            if !(1..=MAX_PATTERN_ELEMENTS).contains(&a.elements) {
                return Err(CliError::user(format!(
                    "--elements {} is out of range; allowed 1..={MAX_PATTERN_ELEMENTS}",
                    a.elements
                )));
            }
            let p = load(&a.file)?;
            let hw = crate::config::HwConfig::load_named(&a.hw)
                .map_err(|e| CliError::user(e.to_string()))?;
            let offset = a.offset_bits.unwrap_or(hw.weight_sram.offset_bits);
            let mapping = sram::WeightMapping::new(&hw.weight_sram, a.bits, a.elements, offset)
                .map_err(user)?;
            let pat = sram::chip_fault_pattern_at(&p, &mapping, a.vdd_rel, a.seed).map_err(user)?;
            let meta: std::collections::BTreeMap<String, String> = [
                ("source", "accelsim profile pattern".to_string()),
                ("profile", p.meta.name.clone()),
                ("hw", hw.name.clone()),
                ("vdd_rel", a.vdd_rel.to_string()),
                ("offset_bits", offset.to_string()),
                ("seed", a.seed.to_string()),
                ("elements", a.elements.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            pat.write_with_metadata(&a.out, &meta)
                .map_err(|e| CliError::user(e.to_string()))?;
            eprintln!(
                "wrote {} ({} faulty bits in {} weights, {} tile(s))",
                a.out.display(),
                pat.fault_count(),
                pat.entries.len(),
                mapping.tiles()
            );
            Ok(())
        }
        ProfileCommand::Show(a) => {
            let p = load(&a.file)?;
            let seg = MapSegment {
                array0: a.array,
                arrays: a.arrays,
                row0: a.row,
                rows: a.rows,
            };
            sram::draw_map_png(&p, a.vdd_rel, seg, &a.out).map_err(user)?;
            eprintln!("wrote {}", a.out.display());
            Ok(())
        }
    }
}
