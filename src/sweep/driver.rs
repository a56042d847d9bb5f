//! The sweep driver: models × fault sources × voltage grid → [`SweepRow`]s, resumable and shardable.
//!
//! Work is organised in units ([`UnitKey`]: model × fault source × sample, keyed by content); each unit evaluates
//! every grid voltage from high to low with the incremental [`SeriesRunner`]. A run
//! 1. resolves the inputs by content and fingerprints the configuration ([`Plan`]);
//! 2. takes the folder's advisory lock ([`FolderLock`]) for the whole run: a second process of the same role or
//!    of another configuration is refused, shards of one sweep share the folder, stale temporaries are removed;
//! 3. refuses state files of other configurations in the folder (unless `fresh`, which removes them), opens and
//!    validates its own state file;
//! 4. computes the pending units of its shard, recording each one atomically as it completes;
//! 5. for a whole sweep, builds the rows from the units and (if asked) writes the report bundle, still under
//!    the lock. [`super::merge`] builds the same rows from the shards' state files.
//!
//! A unit's result depends only on its key and the fingerprinted configuration: every random number is drawn
//! from seeds that are functions of the unit's fault source and sample (docs/run-and-sweep.md, Determinism),
//! so it is the same whichever shard, in whichever order and on whichever machine computes it.
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::core::{mean_std, RunStats, SeriesRunner};
use super::lock::FolderLock;
use super::plan::{Fingerprinted, Plan};
use super::scenario::{self, DataCache, FaultSpec, LoadedModel};
use super::state::{list_state_files, state_file_name, StateFile, SweepState, UnitResult};
use super::unit::{Shard, UnitKey};
use super::SweepError;
use crate::config::HwConfig;
use crate::report::markdown::{ReportContext, Summary};
use crate::report::SweepRow;

/// Everything a sweep needs.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub hw: HwConfig,
    /// Path the hardware config was read from (its bytes are hashed into the fingerprint).
    pub hw_path: PathBuf,
    /// The models, each at one bit width (trained or PTQ, [`scenario::resolve_variants`]; a repeated model is
    /// swept once, [`Plan::new`]).
    pub models: Vec<scenario::ModelVariant>,
    pub faults: Vec<FaultSpec>,
    /// Voltages, descending (see [`super::grid::parse_voltage_grid`]).
    pub grid_v: Vec<f64>,
    pub offsets: u32,
    pub seeds: u32,
    /// ECC schemes to sweep (`--ecc`); empty: the config's `[weight_sram] ecc`.
    pub ecc: Vec<crate::config::EccScheme>,
    /// The rails axis (`--rails` given more than once): each set of scaled rails is swept, its units keyed by
    /// it ([`UnitKey::rails`]) and its rows labelled by it (`rails` column). Empty: the scaled rails of `hw`
    /// only (a single `--rails` set is applied to `hw` instead, as before the axis existed).
    pub rails: Vec<Vec<crate::config::Rail>>,
    /// The sweep seed (`--seed`, default 0): shifts every random seed of every unit
    /// ([`scenario::seed_offset`]).
    pub seed: u32,
    pub data_dir: Option<PathBuf>,
    /// Leave out the first N test images (`--skip`).
    pub skip: usize,
    /// Evaluate only the first N test images after `skip` (`--limit`).
    pub limit: Option<usize>,
    /// Uniform random activation bit errors (`--act-ber`, per-bit probability; 0 = none; integer datapath
    /// only, docs/activation-faults.md).
    pub act_ber: f64,
}

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Discard the state of this shard and any state of another configuration in the folder.
    pub fresh: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    pub shard: Shard,
    /// The configuration flags (stored in the state, quoted by the report; see `cli::sweep::invocation`).
    pub invocation: Vec<String>,
    /// Write `sweep.csv`, the plots and `report.md` (whole sweeps only) with this tolerance (percentage points).
    pub report_tolerance_pts: Option<f64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            fresh: false,
            progress: false,
            shard: Shard::WHOLE,
            invocation: Vec::new(),
            report_tolerance_pts: None,
        }
    }
}

/// Result of a sweep (or of one shard).
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// The rows of a whole sweep (empty for a shard).
    pub rows: Vec<SweepRow>,
    /// The report summary when the bundle was written.
    pub summary: Option<Summary>,
    /// Work counters of the units computed in this run (not of resumed ones).
    pub stats: RunStats,
    pub units_resumed: usize,
    pub units_computed: usize,
    /// Units of this shard (all units for a whole sweep).
    pub shard_units: usize,
    /// Units of the whole sweep.
    pub total_units: usize,
    pub fingerprint: String,
    /// Notes for stderr (repeated inputs dropped, stale temporaries removed).
    pub notes: Vec<String>,
    /// The state file written.
    pub state_path: PathBuf,
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
        if self.limit == Some(0) {
            return Err(SweepError::Input(
                "--limit 0 is out of range; allowed 1.. (or omit it for all images)".into(),
            ));
        }
        for &v in &self.grid_v {
            let rel = self
                .hw
                .check_vdd_flag("--grid", v)
                .map_err(|e| SweepError::Input(e.to_string()))?;
            for f in &self.faults {
                f.check_vdd_rel(rel)?;
            }
        }
        Ok(())
    }

    /// The test-data cache of this sweep (`--data`, `--skip`, `--limit`).
    pub fn data_cache(&self) -> DataCache {
        DataCache::new(self.data_dir.clone(), self.limit).skipping(self.skip)
    }
}

/// The lock role of a shard ([`FolderLock`]): `sweep` for a whole sweep (and a merge), else `shard-K-of-N`.
pub fn lock_role(shard: Shard) -> String {
    if shard.is_whole() {
        "sweep".into()
    } else {
        format!("shard-{}-of-{}", shard.index, shard.count)
    }
}

/// The files a whole sweep or a merge writes into its folder.
pub fn bundle_files() -> Vec<String> {
    let mut v: Vec<String> = [crate::report::CSV_FILE, crate::report::REPORT_FILE]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for stem in [
        "error_vs_voltage",
        "energy_vs_voltage",
        "tradeoff",
        "heatmap_error",
        "heatmap_energy",
    ] {
        for ext in ["png", "svg"] {
            v.push(format!("{stem}.{ext}"));
        }
    }
    v
}

/// Runs (or resumes) a whole sweep writing its state into `out_dir` and returns its rows (the report is left to
/// the caller). `progress`: draw a progress bar on stderr. See [`run_sweep_with`] for shards and reports.
pub fn run_sweep(
    spec: &SweepSpec,
    out_dir: &Path,
    fresh: bool,
    progress: bool,
) -> Result<SweepOutcome, SweepError> {
    run_sweep_with(
        spec,
        out_dir,
        &RunOptions {
            fresh,
            progress,
            ..Default::default()
        },
    )
}

/// Refuses (or with `fresh` removes) state files in `dir` that belong to another configuration; unreadable
/// ones are left to their own shard's run and to `sweep merge`, which refuse them.
fn check_other_states(
    dir: &Path,
    own: &Path,
    fingerprint: &str,
    fresh: bool,
) -> Result<(), SweepError> {
    for (_, path) in list_state_files(dir)? {
        if path == own {
            continue;
        }
        let Some(found) = StateFile::peek_fingerprint(&path) else {
            continue;
        };
        if found != fingerprint {
            if fresh {
                std::fs::remove_file(&path).map_err(|source| SweepError::Io {
                    path: path.clone(),
                    source,
                })?;
            } else {
                return Err(SweepError::Fingerprint {
                    path,
                    found,
                    expected: fingerprint.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Runs (or resumes) one shard of a sweep, or the whole sweep, into `out_dir` (see the module docs).
pub fn run_sweep_with(
    spec: &SweepSpec,
    out_dir: &Path,
    opts: &RunOptions,
) -> Result<SweepOutcome, SweepError> {
    spec.validate()?;
    std::fs::create_dir_all(out_dir).map_err(|source| SweepError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let plan = Plan::new(spec)?;
    let mut data = spec.data_cache();
    let fp = plan.fingerprint(spec, &mut data)?;
    let shard = opts.shard;
    let state_name = state_file_name(shard);
    let mut own = vec![state_name.clone()];
    if shard.is_whole() {
        own.extend(bundle_files());
    }
    let lock = FolderLock::acquire(out_dir, &lock_role(shard), &fp.expect.fingerprint, &own)?;
    let mut notes = plan.notes.clone();
    if lock.removed_temporaries > 0 {
        notes.push(format!(
            "note: removed {} stale temporary file(s) of a killed run from {}",
            lock.removed_temporaries,
            out_dir.display()
        ));
    }
    check_other_states(
        out_dir,
        &out_dir.join(&state_name),
        &fp.expect.fingerprint,
        opts.fresh,
    )?;
    let mut state = SweepState::open(
        out_dir,
        shard,
        &fp.expect,
        fp.config.clone(),
        opts.invocation.clone(),
        opts.fresh,
    )?;
    // The file exists from the start (so `sweep status` sees a started shard) and --fresh takes effect now.
    state.save()?;
    let mine: Vec<UnitKey> = fp.expect.shard_units(shard).to_vec();
    let (stats, units_resumed, units_computed) = compute_units(
        spec,
        &plan,
        &fp,
        &mine,
        &mut data,
        &mut state,
        opts.progress,
    )?;
    let mut out = SweepOutcome {
        rows: Vec::new(),
        summary: None,
        stats,
        units_resumed,
        units_computed,
        shard_units: mine.len(),
        total_units: fp.expect.units.len(),
        fingerprint: fp.expect.fingerprint.clone(),
        notes,
        state_path: state.path().to_path_buf(),
    };
    if shard.is_whole() {
        out.rows = build_rows(spec, &plan, |k| state.get(k))?;
        if let Some(tol) = opts.report_tolerance_pts {
            out.summary = Some(write_report(
                out_dir,
                spec,
                &out.rows,
                &out.fingerprint,
                &opts.invocation,
                tol,
            )?);
        }
    }
    drop(lock);
    Ok(out)
}

/// Computes the units of `mine` that `state` does not hold yet, model by model (a model is loaded only when
/// one of its units is pending). Returns (stats, resumed, computed).
fn compute_units(
    spec: &SweepSpec,
    plan: &Plan,
    fp: &Fingerprinted,
    mine: &[UnitKey],
    data: &mut DataCache,
    state: &mut SweepState,
    progress: bool,
) -> Result<(RunStats, usize, usize), SweepError> {
    let mine: HashSet<&UnitKey> = mine.iter().collect();
    let bar = if progress {
        indicatif::ProgressBar::new((mine.len() * spec.grid_v.len()) as u64)
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
    let mut stats = RunStats::default();
    let (mut resumed, mut computed) = (0, 0);
    // Manifests read once; a family's widths quantize the same float weights (docs/run-and-sweep.md#precision-axis).
    let mut sources = std::collections::HashMap::new();
    for pm in &plan.models {
        let key = |f: &super::plan::PlannedFaults, si: usize, sample: u32| -> UnitKey {
            plan.unit_key(pm, f, si, sample)
        };
        let pending_of = |f: &super::plan::PlannedFaults, si, state: &SweepState| -> Vec<u32> {
            (0..plan.samples)
                .filter(|&s| {
                    let k = key(f, si, s);
                    mine.contains(&k) && state.get(&k).is_none()
                })
                .collect()
        };
        let any_pending = plan
            .faults
            .iter()
            .any(|f| (0..plan.setups.len()).any(|si| !pending_of(f, si, state).is_empty()));
        let mut loaded = if any_pending {
            bar.set_message(format!("loading {}", pm.name));
            let model = pm.variant.load_model(&mut sources)?;
            let lm = LoadedModel::from_model(model, data, spec.hw.systolic.datapath)?;
            stats.images_inferred += lm.test_images as u64; // the clean pass
            Some(lm)
        } else {
            None
        };
        let (_, images, _) = fp.expect.models[&pm.key];
        for (f, si) in plan
            .faults
            .iter()
            .flat_map(|f| (0..plan.setups.len()).map(move |si| (f, si)))
        {
            let setup = &plan.setups[si];
            let ecc = setup.ecc;
            let pending = pending_of(f, si, state);
            let done = (0..plan.samples)
                .filter(|&s| mine.contains(&key(f, si, s)))
                .count()
                - pending.len();
            resumed += done;
            bar.inc((done * spec.grid_v.len()) as u64);
            let (false, Some(lm)) = (pending.is_empty(), loaded.as_mut()) else {
                continue;
            };
            if lm.test_images as u32 != images || lm.name != pm.name {
                return Err(SweepError::Eval(format!(
                    "{}: loaded {} test images for `{}`, planned {images} for `{}`",
                    pm.path.display(),
                    lm.test_images,
                    lm.name,
                    pm.name
                )));
            }
            let mut msg = format!("{} / {}", pm.name, f.name);
            if ecc != crate::config::EccScheme::None {
                msg.push_str(&format!(" / {ecc}"));
            }
            if plan.rails.len() > 1 {
                msg.push_str(&format!(" / {}", plan.rails_of(si).label));
            }
            bar.set_message(msg);
            let source = scenario::fault_source_seeded(
                &f.spec,
                &setup.hw,
                lm,
                spec.offsets,
                spec.seeds,
                min_v,
                spec.seed,
            )?;
            // Activation buffers fail too when the integer datapath stores them on a scaled rail or --act-ber.
            lm.set_activation_faults(scenario::ActivationFaultPlan::new(
                &setup.hw,
                &f.spec,
                spec.act_ber,
                scenario::seed_offset(spec.seed),
            )?);
            let clean = lm.model.memory_image().to_vec();
            let mut runner = SeriesRunner::new(lm, &clean)?;
            for s in pending {
                let r = runner.run_sample(source.as_ref(), s, &spec.grid_v, || bar.inc(1))?;
                let ecc_words = if ecc == crate::config::EccScheme::None {
                    Vec::new()
                } else {
                    r.ecc
                        .iter()
                        .map(|c| [c.corrected, c.detected, c.silent])
                        .collect()
                };
                state.record(UnitResult {
                    key: key(f, si, s),
                    model_name: pm.name.clone(),
                    faults_name: f.name.clone(),
                    clean_error_pct: runner.clean_error_pct(),
                    test_images: images,
                    flipped_bits: r.flipped_bits,
                    error_pct: r.error_pct,
                    ecc_words,
                    activation_bits: if r.activation_bits.iter().any(|&(read, _)| read > 0) {
                        r.activation_bits.iter().map(|&(a, b)| [a, b]).collect()
                    } else {
                        Vec::new()
                    },
                })?;
                computed += 1;
            }
            let st = runner.stats;
            stats.points += st.points;
            stats.inferences += st.inferences;
            stats.clean_points += st.clean_points;
            stats.reused_points += st.reused_points;
            stats.tensors_decoded += st.tensors_decoded;
            stats.images_inferred += st.images_inferred;
        }
    }
    bar.finish_and_clear();
    Ok((stats, resumed, computed))
}

/// The rows of a complete sweep: per model (order given), fault source and voltage, the mean over samples
/// (samples in index order, so every way of producing the units sums in the same order).
pub fn build_rows<'a>(
    spec: &SweepSpec,
    plan: &Plan,
    get: impl Fn(&UnitKey) -> Option<&'a UnitResult>,
) -> Result<Vec<SweepRow>, SweepError> {
    let mut rows = Vec::new();
    for pm in &plan.models {
        for (f, si) in plan
            .faults
            .iter()
            .flat_map(|f| (0..plan.setups.len()).map(move |si| (f, si)))
        {
            let ecc = plan.setups[si].ecc;
            let mut units = Vec::with_capacity(plan.samples as usize);
            for sample in 0..plan.samples {
                let k = plan.unit_key(pm, f, si, sample);
                units.push(get(&k).ok_or_else(|| {
                    SweepError::Eval(format!(
                        "unit {k} ({} / {} / sample {sample}) has no result",
                        pm.name, f.name
                    ))
                })?);
            }
            for (k, &vdd_v) in spec.grid_v.iter().enumerate() {
                let errs: Vec<f64> = units.iter().map(|u| u.error_pct[k]).collect();
                let flips: Vec<f64> = units.iter().map(|u| u.flipped_bits[k] as f64).collect();
                let (mean, std) = mean_std(&errs);
                let flipped = flips.iter().sum::<f64>() / flips.len().max(1) as f64;
                let ecc_mean = |i: usize| {
                    units
                        .iter()
                        .map(|u| u.ecc_words.get(k).map_or(0, |c| c[i]) as f64)
                        .sum::<f64>()
                        / units.len().max(1) as f64
                };
                // Activation rail: bits read back wrong over bits read, pooled over the samples.
                let (act_read, act_wrong) = units.iter().fold((0u64, 0u64), |(r, w), u| {
                    u.activation_bits
                        .get(k)
                        .map_or((r, w), |c| (r + c[0], w + c[1]))
                });
                let at = pm.costs[si].at(vdd_v)?;
                let nominal = &pm.costs[si].nominal;
                rows.push(SweepRow {
                    model: pm.name.clone(),
                    family: pm.family.clone(),
                    method: pm.method.clone(),
                    bits: pm.bits,
                    weights_source: pm.variant.source.name().to_string(),
                    profile: f.name.clone(),
                    ecc: ecc.name().to_string(),
                    vdd_v,
                    vdd_rel: spec.hw.vdd_rel(vdd_v),
                    ber: flipped / (pm.weights as f64 * pm.bits as f64),
                    flipped_bits: flipped,
                    clean_error_pct: units[0].clean_error_pct,
                    faulty_error_pct: mean,
                    faulty_error_std_pct: std,
                    samples: units.len() as u32,
                    test_images: units[0].test_images,
                    cycles: at.cycles,
                    latency_us: at.latency_us,
                    energy_pj: at.energy_pj,
                    weight_sram_energy_pj: at.weight_sram_energy_pj,
                    energy_saving_pct: at.energy_saving_pct,
                    weight_sram_saving_pct: at.weight_sram_saving_pct,
                    ecc_corrected_words: ecc_mean(0),
                    ecc_detected_words: ecc_mean(1),
                    ecc_silent_words: ecc_mean(2),
                    energy_saving_vs_vmin_pct: at.energy_saving_vs_vmin_pct,
                    weight_sram_saving_vs_vmin_pct: at.weight_sram_saving_vs_vmin_pct,
                    activation_ber: if act_read == 0 {
                        0.0
                    } else {
                        act_wrong as f64 / act_read as f64
                    },
                    rails: plan.rails_of(si).label.clone(),
                    activation_sram_energy_pj: at.breakdown.act_sram_pj,
                    activation_sram_saving_pct: if nominal.act_sram_pj > 0.0 {
                        (1.0 - at.breakdown.act_sram_pj / nominal.act_sram_pj) * 100.0
                    } else {
                        0.0
                    },
                    rails_axis: plan.rails.len() > 1,
                });
            }
        }
    }
    Ok(rows)
}

/// The report's line on the weight SRAM's protection.
fn ecc_setup_line(spec: &SweepSpec) -> String {
    let w = &spec.hw.weight_sram;
    let schemes: Vec<crate::config::EccScheme> = if spec.ecc.is_empty() {
        vec![w.ecc]
    } else {
        spec.ecc.clone()
    };
    let codes: Vec<String> = schemes
        .iter()
        .map(|&e| {
            crate::ecc::code_for(e, w.ecc_data_bits)
                .map_or_else(|| "none".to_string(), |c| c.name())
        })
        .collect();
    format!(
        "weight-SRAM ECC: {} (interleave {}, detected-uncorrectable words: {}; docs/ecc.md); energies and \
         savings include every ECC cost, savings against the nominal voltage without ECC",
        codes.join(", "),
        w.interleave,
        w.due.name()
    )
}

/// The report's words for the rails following the swept voltage: the one set (`weight_sram, activation_sram`),
/// or the sets of the rails axis.
fn rails_setup(spec: &SweepSpec) -> String {
    let names = |rails: &[crate::config::Rail]| {
        rails
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut labels: Vec<String> = Vec::new();
    for set in &spec.rails {
        let l = super::plan::rails_label(set);
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    if labels.len() < 2 {
        return names(spec.rails.first().unwrap_or(&spec.hw.voltage.scaled_rails));
    }
    format!(
        "an axis of {} rail sets, {} (the `rails` column; with the int8 datapath a scaled activation rail's \
         buffers fail, docs/activation-faults.md)",
        labels.len(),
        labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Quotes `s` for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:,=+@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `accelsim sweep` followed by the quoted configuration flags.
pub fn command_line(invocation: &[String]) -> String {
    std::iter::once("accelsim sweep".to_string())
        .chain(invocation.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes `sweep.csv`, the plots and `report.md` for the rows of a complete sweep. The report depends only on
/// the configuration (the quoted flags, never the exact command line, `--out` or `--shard`), so a resumed, a
/// merged and an uninterrupted sweep write the same bytes.
pub fn write_report(
    out_dir: &Path,
    spec: &SweepSpec,
    rows: &[SweepRow],
    fingerprint: &str,
    invocation: &[String],
    tolerance_pts: f64,
) -> Result<Summary, SweepError> {
    let faults: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for r in rows {
            if !v.contains(&r.profile) {
                v.push(r.profile.clone());
            }
        }
        v
    };
    let ctx = ReportContext {
        title: format!("accelsim sweep on {}", spec.hw.name),
        command: command_line(invocation),
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
                faults.join(", "),
                spec.offsets,
                spec.seeds
            ),
            ecc_setup_line(spec),
            format!(
                "test images per evaluation: {}{} (error = clean-or-faulty mistakes, docs/run-and-sweep.md#evaluation-protocol)",
                rows.first().map_or(0, |r| r.test_images),
                if spec.skip > 0 {
                    format!(", from test image #{}", spec.skip)
                } else {
                    String::new()
                }
            ),
            format!(
                "weight SRAM: {} packing of the m-bit codes (docs/hw-config.md#packing); rails following the swept \
                 voltage: {}; energy model docs/energy.md",
                spec.hw.weight_sram.packing.name(),
                rails_setup(spec)
            ),
            format!(
                "datapath: {} (docs/datapath.md){}",
                spec.hw.systolic.datapath.name(),
                if spec.act_ber > 0.0 {
                    format!("; random activation bit errors at p = {}", spec.act_ber)
                } else {
                    String::new()
                }
            ),
            format!("configuration fingerprint: `{}`", &fingerprint[..16]),
        ],
        ..Default::default()
    };
    crate::report::write_bundle(out_dir, rows, &ctx, tolerance_pts).map_err(|e| match e {
        crate::report::ReportError::Io { path, source } => SweepError::Io { path, source },
        other => SweepError::Eval(other.to_string()),
    })
}
