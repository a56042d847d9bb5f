//! `accelsim run`: one model on the accelerator at one supply voltage — faults in the stored weights, clean and
//! faulty test error, cycles, energy per inference and savings against the nominal voltage.
//!
//! Defaults (the bare `accelsim run --hw 14nm_sram.toml --vdd 0.85` works): the shipped RandBET 8-bit
//! Fashion-MNIST model, the config's `fault_profile` (chip1 for 14nm_sram), Fashion-MNIST from
//! /usr/share/datasets/fashion-mnist, 4 mapping offsets × 1 seed, all 10000 test images. See docs/run-and-sweep.md.
use std::path::PathBuf;

use serde::Serialize;

use super::{values, CliError, CliResult};
use crate::config::{EccScheme, HwConfig};
use crate::locate::Shipped;
use crate::sweep::core::{mean_std, SeriesRunner};
use crate::sweep::scenario::{self, CostModel, DataCache, FaultSpec, LoadedModel, PointCost};
use crate::sweep::SweepError;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Hardware config: a name in hw_configs/ (`14nm_sram` or `14nm_sram.toml`) or a path.
    #[arg(long, value_name = "CFG", default_value = "14nm_sram")]
    pub hw: String,
    /// Supply voltage of the scaled rails (the weight SRAM by default), volts; allowed 0.5·vmin_v..=1.5·nominal_v
    /// of the hardware config.
    #[arg(long, value_name = "V", required_unless_present = "list_hw", allow_negative_numbers = true,
          value_parser = values::finite("volts, e.g. 0.85"))]
    pub vdd: Option<f64>,
    /// Model manifest: a name in models/, a path, or a family name of the shipped models (with --bits)
    /// [default: fmnist-cnn-randbet-8b].
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Bits per weight: a family's member trained at M bits if shipped, else post-training quantization of its
    /// float weights at M bits; for a model name, that model's float weights at M bits [default: as stored].
    #[arg(long, value_name = "M")]
    pub bits: Option<u32>,
    /// Fault map: a name in sram_profiles/ (`chip1`), a path, or `uniform` (random bit errors at the measured
    /// BER of the voltage) [default: the config's fault_profile].
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Replace the profile (given or default) by uniform random bit errors at per-bit probability P
    /// (0..=1, e.g. 0.01 = 1%); the voltage then only sets the energy.
    #[arg(long, value_name = "P", allow_negative_numbers = true, value_parser = values::float_where(
        |p| (0.0..=1.0).contains(&p), "0..=1 (a per-bit probability, e.g. 0.01 for 1%, not a percent)"))]
    pub ber: Option<f64>,
    /// Weight-to-memory mapping offsets averaged over (profiles) or random chips (uniform errors), 1..=1024.
    #[arg(long, value_name = "N", default_value_t = 4, allow_negative_numbers = true,
          value_parser = values::int_in(1u32, 1024))]
    pub offsets: u32,
    /// Seeds per offset for transient cells (profiles) or extra random chips (uniform errors), 1..=1024.
    #[arg(long, value_name = "N", default_value_t = 1, allow_negative_numbers = true,
          value_parser = values::int_in(1u32, 1024))]
    pub seeds: u32,
    /// Data folder of the model's data set [default: /usr/share/datasets/fashion-mnist for Fashion-MNIST].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Leave out the first N test images (e.g. `--skip 9000 --limit 1000`: the last 1000 Fashion-MNIST test
    /// images, the paper's held-out validation images).
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true,
          value_parser = values::count_from(0))]
    pub skip: usize,
    /// Evaluate only the first N test images (after `--skip`; N >= 1) [default: all].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = values::count_from(1))]
    pub limit: Option<usize>,
    /// Protection of the weight SRAM's words: none, parity or secded (docs/ecc.md) [default: the config's
    /// `[weight_sram] ecc`, none for the shipped configs]. The code size, interleaving and DUE policy come from
    /// the config.
    #[arg(long, value_name = "SCHEME", value_parser = parse_ecc)]
    pub ecc: Option<EccScheme>,
    /// Arithmetic of the functional model: int8 (integer codes, int32 accumulation) or float (the paper's fake
    /// quantization) (docs/datapath.md) [default: the config's `[systolic] datapath`, float for the shipped
    /// configs].
    #[arg(long, value_name = "DATAPATH", value_parser = values::datapath)]
    pub datapath: Option<crate::config::systolic::Datapath>,
    /// Scaled rails, overriding the config's `[voltage] scaled_rails`: comma-separated `weight_sram`,
    /// `activation_sram`, `logic` (e.g. `weight_sram,activation_sram`; docs/activation-faults.md). A scaled rail
    /// runs at --vdd; with the int8 datapath a scaled activation rail also fails.
    #[arg(long, value_name = "RAIL,...", value_parser = values::rails)]
    pub rails: Option<values::RailSet>,
    /// Uniform random bit errors in the activation buffers' cells at per-bit probability P (0..=1; int8
    /// datapath only; docs/activation-faults.md#random-bit-errors).
    #[arg(long, value_name = "P", allow_negative_numbers = true, value_parser = values::float_where(
        |p| (0.0..=1.0).contains(&p), "0..=1 (a per-bit probability, e.g. 0.01 for 1%, not a percent)"))]
    pub act_ber: Option<f64>,
    /// Also write the weight codes as the accelerator reads them at this voltage (first sample; after ECC
    /// decoding and the DUE policy) to PATH: a uint8 .npy in memory order, one code per weight.
    #[arg(long, value_name = "PATH")]
    pub image_out: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// List the shipped hardware configs and exit.
    #[arg(long)]
    pub list_hw: bool,
}

/// What `run` reports (also its `--json` form; units in the key names).
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub hw: String,
    /// `int8` or `float` (docs/datapath.md).
    pub datapath: String,
    pub model: String,
    pub family: String,
    pub method: String,
    pub bits: u32,
    /// `trained` or `ptq` (docs/run-and-sweep.md#precision-axis).
    pub weights_source: String,
    pub weights: u64,
    pub faults: String,
    pub vdd_v: f64,
    pub vdd_rel: f64,
    pub nominal_v: f64,
    pub samples: u32,
    pub test_images: usize,
    /// Index of the first evaluated test image (`--skip`).
    pub first_test_image: usize,
    /// Measured bit error rate of the stored weights (flipped bits / (W·m)), mean over samples.
    pub ber: f64,
    pub flipped_bits_mean: f64,
    pub clean_error_pct: f64,
    pub faulty_error_pct: f64,
    pub faulty_error_std_pct: f64,
    pub faulty_error_per_sample_pct: Vec<f64>,
    pub cycles: u64,
    pub latency_us: f64,
    pub utilization_pct: f64,
    pub energy_pj: f64,
    pub energy_breakdown_pj: crate::energy::EnergyBreakdown,
    pub nominal_energy_pj: f64,
    pub energy_saving_pct: f64,
    pub weight_sram_energy_pj: f64,
    pub weight_sram_saving_pct: f64,
    /// Energy per inference of the same network with 8-bit weights at V_min (the paper's reference).
    pub reference_8b_vmin_energy_pj: f64,
    pub reference_8b_vmin_weight_sram_energy_pj: f64,
    pub energy_saving_vs_vmin_pct: f64,
    pub weight_sram_saving_vs_vmin_pct: f64,
    /// Protection of the weight SRAM: `none`, `parity` or `secded`.
    pub ecc: String,
    /// The code, e.g. `secded(72,64)` (`none` without ECC).
    pub ecc_code: String,
    /// Codewords bit-interleaved per row group (1 = none).
    pub ecc_interleave: u32,
    /// Policy for detected-uncorrectable words: `zero` or `keep`.
    pub ecc_due: String,
    /// Codewords holding weights (at the first mapping offset; 0 without ECC).
    pub ecc_codewords: u64,
    /// Codewords whose errors the decoder corrected, mean over samples.
    pub ecc_corrected_words: f64,
    /// Codewords flagged uncorrectable (DUE), mean over samples.
    pub ecc_detected_words: f64,
    /// Codewords delivered wrong without a flag (undetected or miscorrected), mean over samples.
    pub ecc_silent_words: f64,
    /// Cycles the ECC decoder adds per inference (included in `cycles`).
    pub ecc_decoder_cycles: u64,
    /// Rails at `vdd_v` (the others at their nominal voltage), e.g. `["weight_sram"]`.
    pub scaled_rails: Vec<String>,
    /// Activation bits read back wrong / activation bits read, over the images run on the faulty network and
    /// all samples (0 when the activation buffers cannot fail: float datapath, or rail not scaled and no
    /// `--act-ber`); docs/activation-faults.md.
    pub activation_ber: f64,
    /// Activation bits read back wrong per sample (mean), over the images run on the faulty network.
    pub activation_flipped_bits_mean: f64,
    /// `--act-ber`: uniform random activation bit errors (per-bit probability; 0 = none).
    pub act_ber: f64,
}

/// Parses `--ecc` (one scheme).
pub fn parse_ecc(s: &str) -> Result<EccScheme, values::ValueError> {
    EccScheme::parse(s.trim()).ok_or_else(|| {
        values::ValueError(format!(
            "is not an ECC scheme; allowed {}",
            EccScheme::ALL.map(|e| e.name()).join(", ")
        ))
    })
}

/// `hw` with the scaled rails of `--rails` (validated again: a scaled activation rail needs whole activation
/// arrays, docs/activation-faults.md).
pub fn apply_rails(hw: &HwConfig, rails: &values::RailSet) -> Result<HwConfig, CliError> {
    hw.with_rails(&rails.0).map_err(|e| {
        let names: Vec<&str> = rails.0.iter().map(|r| r.name()).collect();
        CliError::user(format!("--rails {}: {e}", names.join(",")))
    })
}

/// Checks `--act-ber` (also range-checked by its value parser, repeated for callers that build `Args`
/// themselves) and the rails against the datapath of `hw` (final: `--datapath` and `--rails` applied).
/// Activation bit errors need stored integer activations, so the float datapath refuses a scaled activation
/// rail and any P > 0 (docs/activation-faults.md).
pub fn check_act_ber(act_ber: Option<f64>, hw: &HwConfig) -> Result<(), CliError> {
    let int8 = hw.systolic.datapath == crate::config::systolic::Datapath::Int8;
    crate::sram::act_faults::check_rails_datapath(&hw.voltage.scaled_rails, int8)
        .map_err(|e| CliError::user(format!("{}: {e}", hw.origin)))?;
    let Some(p) = act_ber else { return Ok(()) };
    if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
        return Err(CliError::user(format!(
            "--act-ber {p} is out of range; allowed 0..=1 (a per-bit probability, e.g. 0.01 for 1%)"
        )));
    }
    crate::sram::act_faults::check_act_ber_datapath(p, int8).map_err(CliError::user)
}

fn user(e: impl std::fmt::Display) -> CliError {
    CliError::user(e.to_string())
}

fn sweep_err(e: SweepError) -> CliError {
    if e.is_user() {
        CliError::user(e.to_string())
    } else {
        CliError::internal(e.to_string())
    }
}

pub fn run(args: Args) -> CliResult {
    if args.list_hw {
        for p in HwConfig::list_shipped() {
            let name = p
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            match HwConfig::load(&p) {
                Ok(hw) => println!("{name}\t{}", hw.name),
                Err(e) => println!("{name}\t(invalid: {e})"),
            }
        }
        return Ok(());
    }
    if args.json {
        let text = serde_json::to_string_pretty(&run_json(&args)?)
            .map_err(|e| CliError::internal(e.to_string()))?;
        println!("{text}");
    } else {
        print_text(&compute(&args)?);
    }
    Ok(())
}

/// The `--json` object of `accelsim run` for `args` (keys in [`RunReport`]'s field order); the Python binding's
/// `accelsim.run` returns exactly this value.
pub fn run_json(args: &Args) -> Result<serde_json::Value, CliError> {
    serde_json::to_value(compute(args)?).map_err(|e| CliError::internal(e.to_string()))
}

/// Runs the whole pipeline for `args` (library-level so tests can call it without parsing output).
pub fn compute(args: &Args) -> Result<RunReport, CliError> {
    let vdd_v = args
        .vdd
        .ok_or_else(|| CliError::user("--vdd is required"))?;
    let mut hw = super::load_hw("--hw", &args.hw)?;
    if let Some(ecc) = args.ecc {
        hw = hw
            .with_ecc(ecc)
            .map_err(|e| CliError::user(format!("--ecc {ecc}: {e}")))?;
    }
    if let Some(d) = args.datapath {
        hw.systolic.datapath = d;
        hw.systolic
            .validate()
            .map_err(|e| CliError::user(format!("--datapath {}: {}: {e}", d.name(), hw.origin)))?;
    }
    if let Some(rails) = &args.rails {
        hw = apply_rails(&hw, rails)?;
    }
    check_act_ber(args.act_ber, &hw)?;
    let vdd_rel = hw.check_vdd(vdd_v).map_err(user)?;
    super::check_data_dir(args.data.as_deref())?;
    // Also checked by the flags' value parsers; repeated for callers that build `Args` themselves.
    for (flag, v) in [("--offsets", args.offsets), ("--seeds", args.seeds)] {
        if !(1..=1024).contains(&v) {
            return Err(CliError::user(format!(
                "{flag} {v} is out of range; allowed 1..=1024"
            )));
        }
    }
    if args.limit == Some(0) {
        return Err(CliError::user(
            "--limit 0 is out of range; allowed >= 1 (or omit it for all images)",
        ));
    }
    let model_name = args.model.as_deref().unwrap_or(scenario::DEFAULT_MODEL);
    let bits = args
        .bits
        .map(|b| scenario::parse_bits(&[b]))
        .transpose()
        .map_err(sweep_err)?;
    let variants =
        scenario::resolve_variants(&[model_name.to_string()], bits.as_deref(), "--model")
            .map_err(sweep_err)?;
    let variant = match variants.as_slice() {
        [v] => v.clone(),
        many => {
            return Err(CliError::user(format!(
            "--model {model_name} is a family of {} models ({}); pass --bits M to pick one width",
            many.len(),
            many.iter()
                .map(|v| format!("{} bits", v.bits))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        }
    };
    let spec = match (args.ber, &args.profile, &hw.fault_profile) {
        (Some(p), _, _) => {
            if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
                return Err(CliError::user(format!(
                    "--ber {p} is out of range; allowed 0..=1 (a per-bit probability, e.g. 0.01 for 1%)"
                )));
            }
            FaultSpec::FixedUniform { p }
        }
        (None, Some(name), _) => super::fault_spec("--profile", name, &hw)?,
        (None, None, Some(name)) => {
            // The config's default profile: a lookup failure names the config file and its key.
            let given = if name == "uniform" {
                name.clone()
            } else {
                super::locate_flag(Shipped::Profile, "fault_profile =", name)
                    .map_err(|e| CliError::user(format!("{}: {}", hw.origin, e.message())))?
                    .to_string_lossy()
                    .into_owned()
            };
            super::fault_spec("fault_profile =", &given, &hw)?
        }
        (None, None, None) => FaultSpec::MeasuredUniform,
    };
    spec.check_vdd_rel(vdd_rel).map_err(sweep_err)?;
    let mut data = DataCache::new(args.data.clone(), args.limit).skipping(args.skip);
    let model = variant
        .load_model(&mut std::collections::HashMap::new())
        .map_err(sweep_err)?;
    let mut loaded =
        LoadedModel::from_model(model, &mut data, hw.systolic.datapath).map_err(sweep_err)?;
    let act_plan = scenario::ActivationFaultPlan::new(&hw, &spec, args.act_ber.unwrap_or(0.0), 0)
        .map_err(sweep_err)?;
    loaded.set_activation_faults(act_plan);
    let cost = CostModel::new(&hw, &loaded.model).map_err(sweep_err)?;
    let at: PointCost = cost.at(vdd_v).map_err(sweep_err)?;
    let faults = scenario::fault_source(&spec, &hw, &loaded, args.offsets, args.seeds, vdd_v)
        .map_err(sweep_err)?;
    let samples = args.offsets * args.seeds;
    let clean: Vec<u8> = loaded.model.memory_image().to_vec();
    let (name, method, bits, weights, test_images) = (
        loaded.name.clone(),
        loaded.method.clone(),
        loaded.bits,
        loaded.weights(),
        loaded.test_images,
    );
    let mut runner = SeriesRunner::new(&mut loaded, &clean).map_err(sweep_err)?;
    let mut errors = Vec::new();
    let mut flips = Vec::new();
    let mut ecc_sum = [0u64; 3];
    let (mut act_read, mut act_wrong) = (0u64, 0u64);
    for s in 0..samples {
        let r = runner
            .run_sample(faults.as_ref(), s, &[vdd_v], || {})
            .map_err(sweep_err)?;
        errors.push(r.error_pct[0]);
        flips.push(r.flipped_bits[0] as f64);
        act_read += r.activation_bits[0].0;
        act_wrong += r.activation_bits[0].1;
        let c = r.ecc[0];
        for (acc, v) in ecc_sum.iter_mut().zip([c.corrected, c.detected, c.silent]) {
            *acc += v;
        }
    }
    let ecc_mean = |i: usize| ecc_sum[i] as f64 / samples as f64;
    if let Some(path) = &args.image_out {
        let mut img = vec![0u8; clean.len()];
        faults
            .faulty_read(0, vdd_v, &clean, &mut img)
            .map_err(sweep_err)?;
        let arr = crate::npy::NpyArray {
            shape: vec![img.len()],
            data: crate::npy::NpyData::U8(img),
        };
        crate::npy::write(path, &arr).map_err(|e| CliError::user(format!("--image-out: {e}")))?;
    }
    let w = &hw.weight_sram;
    let layout = crate::ecc::EccLayout::from_config(w);
    let ecc_codewords = match &layout {
        Some(l) => {
            let off = scenario::mapping_offsets_bits(&hw, bits, 1)[0];
            let m = crate::sram::WeightMapping::new(w, bits as u8, weights, off)
                .map_err(|e| CliError::user(format!("{}: {e}", hw.origin)))?;
            crate::sram::ecc_faults::CodewordMap::new(&m, l)
                .map_err(|e| CliError::internal(e.to_string()))?
                .codeword_count()
        }
        None => 0,
    };
    let (faulty_error_pct, faulty_error_std_pct) = mean_std(&errors);
    let flipped_bits_mean = flips.iter().sum::<f64>() / flips.len() as f64;
    Ok(RunReport {
        hw: hw.name.clone(),
        datapath: hw.systolic.datapath.name().to_string(),
        model: name,
        family: variant.family.clone(),
        method,
        bits,
        weights_source: variant.source.name().to_string(),
        weights,
        faults: spec.name(),
        vdd_v,
        vdd_rel,
        nominal_v: hw.voltage.nominal_v,
        samples,
        test_images,
        first_test_image: args.skip,
        ber: flipped_bits_mean / (weights as f64 * bits as f64),
        flipped_bits_mean,
        clean_error_pct: runner.clean_error_pct(),
        faulty_error_pct,
        faulty_error_std_pct,
        faulty_error_per_sample_pct: errors,
        cycles: at.cycles,
        latency_us: at.latency_us,
        utilization_pct: cost.stats.utilization_pct,
        energy_pj: at.energy_pj,
        energy_breakdown_pj: at.breakdown,
        nominal_energy_pj: cost.nominal.total_pj,
        energy_saving_pct: at.energy_saving_pct,
        weight_sram_energy_pj: at.weight_sram_energy_pj,
        weight_sram_saving_pct: at.weight_sram_saving_pct,
        ecc: w.ecc.name().into(),
        ecc_code: layout
            .as_ref()
            .map_or_else(|| "none".into(), |l| l.code().name()),
        ecc_interleave: if layout.is_some() { w.interleave } else { 1 },
        ecc_due: w.due.name().into(),
        ecc_codewords,
        ecc_corrected_words: ecc_mean(0),
        ecc_detected_words: ecc_mean(1),
        ecc_silent_words: ecc_mean(2),
        ecc_decoder_cycles: cost.stats.ecc_decoder_cycles,
        scaled_rails: hw
            .voltage
            .scaled_rails
            .iter()
            .map(|r| r.name().to_string())
            .collect(),
        activation_ber: if act_read == 0 {
            0.0
        } else {
            act_wrong as f64 / act_read as f64
        },
        activation_flipped_bits_mean: act_wrong as f64 / samples as f64,
        act_ber: args.act_ber.unwrap_or(0.0),
        reference_8b_vmin_energy_pj: cost.reference_8b_vmin.total_pj,
        reference_8b_vmin_weight_sram_energy_pj: cost.reference_8b_vmin.weight_sram_dynamic_pj
            + cost.reference_8b_vmin.weight_sram_leakage_pj,
        energy_saving_vs_vmin_pct: at.energy_saving_vs_vmin_pct,
        weight_sram_saving_vs_vmin_pct: at.weight_sram_saving_vs_vmin_pct,
    })
}

fn pj(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.3} µJ", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.2} nJ", x / 1e3)
    } else {
        format!("{x:.1} pJ")
    }
}

fn print_text(r: &RunReport) {
    let b = &r.energy_breakdown_pj;
    let source = if r.weights_source == "ptq" {
        ", post-training quantized"
    } else {
        ""
    };
    println!(
        "accelsim run: {} ({}, {}-bit{source}, {} weights) on {} at {:.3} V (V/V_min = {:.3}, nominal {:.3} V), {} datapath",
        r.model, r.method, r.bits, r.weights, r.hw, r.vdd_v, r.vdd_rel, r.nominal_v, r.datapath
    );
    println!(
        "  faults           {} ({} samples: mapping offsets x seeds)",
        r.faults, r.samples
    );
    println!(
        "  bit error rate   {:.3e} of stored weight bits ({:.1} flipped bits on average)",
        r.ber, r.flipped_bits_mean
    );
    if r.scaled_rails.iter().any(|x| x == "activation_sram") || r.act_ber > 0.0 {
        println!(
            "                   {:.3e} of activation bits read (activation SRAM, {:.0} read back wrong per sample)",
            r.activation_ber, r.activation_flipped_bits_mean
        );
    }
    let from = if r.first_test_image > 0 {
        format!(" from #{}", r.first_test_image)
    } else {
        String::new()
    };
    println!(
        "  clean error      {:.2}% ({} test images{from})",
        r.clean_error_pct, r.test_images
    );
    if r.ecc != "none" {
        println!(
            "  ECC              {} on {} codewords (interleave {}, detected words: {}): corrected {:.1}, \
             detected {:.1}, silent {:.1} words (mean per sample)",
            r.ecc_code,
            r.ecc_codewords,
            r.ecc_interleave,
            r.ecc_due,
            r.ecc_corrected_words,
            r.ecc_detected_words,
            r.ecc_silent_words
        );
    }
    println!(
        "  faulty error     {:.2}% ± {:.2} (mean ± std over {} samples; clean-or-faulty mistakes)",
        r.faulty_error_pct, r.faulty_error_std_pct, r.samples
    );
    println!(
        "  cycles           {} per inference, latency {:.2} µs, array utilization {:.1}%",
        r.cycles, r.latency_us, r.utilization_pct
    );
    println!("  energy           {} per inference", pj(r.energy_pj));
    if r.ecc == "none" {
        println!(
            "    weight SRAM    {} dynamic + {} leakage",
            pj(b.weight_sram_dynamic_pj),
            pj(b.weight_sram_leakage_pj)
        );
    } else {
        println!(
            "    weight SRAM    {} dynamic + {} leakage (check bits included) + {} ECC codec",
            pj(b.weight_sram_dynamic_pj),
            pj(b.weight_sram_leakage_pj),
            pj(b.ecc_logic_pj)
        );
    }
    println!("    act. buffers   {}", pj(b.act_sram_pj));
    if b.accumulator_pj > 0.0 {
        println!(
            "    accumulators   {} (partial sums, fixed rail at nominal)",
            pj(b.accumulator_pj)
        );
    }
    println!("    MACs           {}", pj(b.mac_pj));
    println!("    DRAM           {}", pj(b.dram_pj));
    println!(
        "  savings          {:.1}% of total energy, {:.1}% of weight-SRAM energy vs this model at nominal {:.3} V{} ({} per inference)",
        r.energy_saving_pct,
        r.weight_sram_saving_pct,
        r.nominal_v,
        if r.ecc == "none" { "" } else { " without ECC" },
        pj(r.nominal_energy_pj)
    );
    println!(
        "                   {:.1}% of total energy, {:.1}% of weight-SRAM energy vs 8-bit weights at V_min {:.3} V ({} per inference; the paper's reference)",
        r.energy_saving_vs_vmin_pct,
        r.weight_sram_saving_vs_vmin_pct,
        r.vdd_v / r.vdd_rel,
        pj(r.reference_8b_vmin_energy_pj)
    );
}
