//! The sweep driver: models × fault sources × voltage grid → [`SweepRow`]s, resumable (see [`super::state`]).
//!
//! Work is organised in units of (model, fault source, sample); each unit evaluates every grid voltage from
//! high to low with the incremental [`SeriesRunner`]. Completed units are recorded in the state file after each
//! unit, so a killed sweep resumes with the next unit; a resumed sweep with a different configuration fails.
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::core::{mean_std, RunStats, SeriesRunner};
use super::scenario::{self, CostModel, DataCache, FaultSpec, LoadedModel, ModelVariant};
use super::state::{hash_file, SweepState, UnitResult};
use super::SweepError;
use crate::config::HwConfig;
use crate::report::SweepRow;

/// Everything a sweep needs.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub hw: HwConfig,
    /// Path the hardware config was read from (hashed into the fingerprint).
    pub hw_path: PathBuf,
    /// The models, each at one bit width (trained or PTQ, [`scenario::resolve_variants`]).
    pub models: Vec<ModelVariant>,
    pub faults: Vec<FaultSpec>,
    /// Voltages, descending (see [`super::grid::parse_voltage_grid`]).
    pub grid_v: Vec<f64>,
    pub offsets: u32,
    pub seeds: u32,
    pub data_dir: Option<PathBuf>,
    pub limit: Option<usize>,
}

#[derive(Serialize)]
struct FingerprintInput<'a> {
    version: u32,
    hw_sha256: String,
    models: Vec<(String, String)>,
    /// (name, manifest path, bits, weights source) of every swept model.
    variants: Vec<(String, String, u32, &'static str)>,
    faults: Vec<(String, String)>,
    grid_v: &'a [f64],
    offsets: u32,
    seeds: u32,
    data_dir: Option<String>,
    limit: Option<usize>,
}

/// Result of a sweep.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    pub rows: Vec<SweepRow>,
    /// Work counters of the units computed in this run (not of resumed ones).
    pub stats: RunStats,
    pub units_resumed: usize,
    pub units_computed: usize,
    pub fingerprint: String,
}

impl SweepSpec {
    /// Checks every voltage against the hardware config and every fault source (one-line user errors).
    pub fn validate(&self) -> Result<(), SweepError> {
        if self.models.is_empty() {
            return Err(SweepError::Input(
                "no models to sweep (models/ is empty; pass --models)".into(),
            ));
        }
        if self.faults.is_empty() {
            return Err(SweepError::Input(
                "no fault profiles to sweep (pass --profiles)".into(),
            ));
        }
        for &v in &self.grid_v {
            let rel = self
                .hw
                .check_vdd(v)
                .map_err(|e| SweepError::Input(e.to_string()))?;
            for f in &self.faults {
                f.check_vdd_rel(rel)?;
            }
        }
        Ok(())
    }

    fn samples(&self) -> u32 {
        self.offsets.max(1) * self.seeds.max(1)
    }

    /// SHA-256 over the configuration and the contents of every input file.
    pub fn fingerprint_input(&self) -> Result<impl Serialize + '_, SweepError> {
        let mut models: Vec<(String, String)> = Vec::new();
        let mut paths: Vec<&Path> = self.models.iter().map(|v| v.path.as_path()).collect();
        paths.dedup();
        for m in paths {
            if models.iter().any(|(p, _)| *p == m.display().to_string()) {
                continue;
            }
            let mut h = hash_file(m)?;
            // Hash the tensors file the manifest names too, so retrained weights change the fingerprint.
            let weights = std::fs::read_to_string(m)
                .ok()
                .and_then(|t| toml::from_str::<toml::Value>(&t).ok())
                .and_then(|v| v.get("weights").and_then(|w| w.as_str()).map(String::from));
            let st = m
                .parent()
                .unwrap_or(Path::new("."))
                .join(weights.unwrap_or_default());
            if st.is_file() {
                h.push(':');
                h.push_str(&hash_file(&st)?);
            }
            models.push((m.display().to_string(), h));
        }
        let mut faults = Vec::new();
        for f in &self.faults {
            let h = match f {
                FaultSpec::Profile { path, .. } => hash_file(path)?,
                FaultSpec::MeasuredUniform => "measured-ber-curve".into(),
                FaultSpec::FixedUniform { p } => format!("p={p}"),
            };
            faults.push((f.name(), h));
        }
        let variants = self
            .models
            .iter()
            .map(|v| {
                (
                    v.name.clone(),
                    v.path.display().to_string(),
                    v.bits,
                    v.source.name(),
                )
            })
            .collect();
        Ok(FingerprintInput {
            version: 2,
            hw_sha256: hash_file(&self.hw_path)?,
            models,
            variants,
            faults,
            grid_v: &self.grid_v,
            offsets: self.offsets,
            seeds: self.seeds,
            data_dir: self.data_dir.as_ref().map(|d| d.display().to_string()),
            limit: self.limit,
        })
    }
}

/// Runs (or resumes) a sweep writing its state into `out_dir`. `progress`: draw a progress bar on stderr.
pub fn run_sweep(
    spec: &SweepSpec,
    out_dir: &Path,
    fresh: bool,
    progress: bool,
) -> Result<SweepOutcome, SweepError> {
    spec.validate()?;
    std::fs::create_dir_all(out_dir).map_err(|source| SweepError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut state = SweepState::open(out_dir, &spec.fingerprint_input()?, fresh)?;
    let samples = spec.samples();
    let total_points =
        (spec.models.len() * spec.faults.len()) as u64 * samples as u64 * spec.grid_v.len() as u64;
    let bar = if progress {
        indicatif::ProgressBar::new(total_points)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:30} [{bar:30}] {pos}/{len} points, {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let min_v = spec.grid_v.iter().copied().fold(f64::INFINITY, f64::min);
    let mut data = DataCache::new(spec.data_dir.clone(), spec.limit);
    let mut stats = RunStats::default();
    let (mut units_resumed, mut units_computed) = (0, 0);
    let mut rows = Vec::new();
    // Models loaded from disk once; the widths of one family are quantized from the same float weights.
    let mut sources = std::collections::HashMap::new();
    for variant in &spec.models {
        let model = variant.load_model(&mut sources)?;
        let name = variant.name.clone();
        let bits = variant.bits;
        let all_done = spec
            .faults
            .iter()
            .all(|f| (0..samples).all(|s| state.get(&name, bits, &f.name(), s).is_some()));
        let cost = CostModel::new(&spec.hw, &model)?;
        let method = model.manifest().training.method.clone();
        let weights: u64 = model.param_tensors().iter().map(|p| p.len as u64).sum();
        let mut loaded = if all_done {
            None
        } else {
            bar.set_message(format!("loading {name}"));
            Some(LoadedModel::from_model(model, &mut data)?)
        };
        for f in &spec.faults {
            let fname = f.name();
            let pending: Vec<u32> = (0..samples)
                .filter(|&s| state.get(&name, bits, &fname, s).is_none())
                .collect();
            units_resumed += (samples as usize) - pending.len();
            bar.inc((samples as u64 - pending.len() as u64) * spec.grid_v.len() as u64);
            if let (false, Some(lm)) = (pending.is_empty(), loaded.as_mut()) {
                bar.set_message(format!("{name} / {fname}"));
                let source =
                    scenario::fault_source(f, &spec.hw, lm, spec.offsets, spec.seeds, min_v)?;
                let clean = lm.model.memory_image().to_vec();
                let test_images = lm.test_images;
                let mut runner = SeriesRunner::new(lm, &clean)?;
                for s in pending {
                    let r = runner.run_sample(source.as_ref(), s, &spec.grid_v, || bar.inc(1))?;
                    state.record(UnitResult {
                        model: name.clone(),
                        bits,
                        profile: fname.clone(),
                        sample: s,
                        clean_error_pct: runner.clean_error_pct(),
                        test_images: test_images as u32,
                        flipped_bits: r.flipped_bits,
                        error_pct: r.error_pct,
                    })?;
                    units_computed += 1;
                }
                let st = runner.stats;
                stats.points += st.points;
                stats.inferences += st.inferences;
                stats.clean_points += st.clean_points;
                stats.reused_points += st.reused_points;
                stats.tensors_decoded += st.tensors_decoded;
            }
            let units: Vec<&UnitResult> = (0..samples)
                .filter_map(|s| state.get(&name, bits, &fname, s))
                .collect();
            for (k, &vdd_v) in spec.grid_v.iter().enumerate() {
                let errs: Vec<f64> = units.iter().map(|u| u.error_pct[k]).collect();
                let flips: Vec<f64> = units.iter().map(|u| u.flipped_bits[k] as f64).collect();
                let (mean, std) = mean_std(&errs);
                let flipped = flips.iter().sum::<f64>() / flips.len().max(1) as f64;
                let at = cost.at(vdd_v)?;
                rows.push(SweepRow {
                    model: name.clone(),
                    family: variant.family.clone(),
                    method: method.clone(),
                    bits,
                    weights_source: variant.source.name().to_string(),
                    profile: fname.clone(),
                    vdd_v,
                    vdd_rel: spec.hw.vdd_rel(vdd_v),
                    ber: flipped / (weights as f64 * bits as f64),
                    flipped_bits: flipped,
                    clean_error_pct: units.first().map_or(f64::NAN, |u| u.clean_error_pct),
                    faulty_error_pct: mean,
                    faulty_error_std_pct: std,
                    samples: units.len() as u32,
                    test_images: units.first().map_or(0, |u| u.test_images),
                    cycles: at.cycles,
                    latency_us: at.latency_us,
                    energy_pj: at.energy_pj,
                    weight_sram_energy_pj: at.weight_sram_energy_pj,
                    energy_saving_pct: at.energy_saving_pct,
                    weight_sram_saving_pct: at.weight_sram_saving_pct,
                    energy_saving_vs_vmin_pct: at.energy_saving_vs_vmin_pct,
                    weight_sram_saving_vs_vmin_pct: at.weight_sram_saving_vs_vmin_pct,
                });
            }
        }
    }
    bar.finish_and_clear();
    Ok(SweepOutcome {
        rows,
        stats,
        units_resumed,
        units_computed,
        fingerprint: state.fingerprint().to_string(),
    })
}
