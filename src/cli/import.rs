//! `accelsim import MODEL.onnx --out DIR/NAME [--dataset D] [--mean M,..] [--std S,..] [--bits 8]
//! [--scheme rquant|normal] [--granularity layer|channel|global] [--signed] [--w-max W]`: an ONNX model →
//! `DIR/NAME.toml` + `DIR/NAME.safetensors` (docs/onnx.md), then loaded back as a check.
use std::path::PathBuf;

use super::{CliError, CliResult};
use crate::data::DatasetKind;
use crate::model::Model;
use crate::onnx::{self, ImportOptions};
use crate::quant::{Granularity, QuantConfig};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  accelsim import net.onnx --out models/my-net --dataset fashion-mnist --mean 0.2860 --std 0.3530\n  accelsim import net.onnx --out models/my-net-4b --bits 4 --scheme normal"
)]
pub struct Args {
    /// The ONNX model file (external-data files next to it are read as it names them).
    #[arg(value_name = "MODEL.onnx")]
    pub model: PathBuf,
    /// Output stem: writes OUT.toml and OUT.safetensors (the folder must exist).
    #[arg(long, value_name = "DIR/NAME")]
    pub out: PathBuf,
    /// fashion-mnist, mnist, cifar10 or cifar100: recorded as `[input] dataset` (and gives the image shape
    /// when the graph input is a flat [N, F]).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Per-channel means, comma-separated: the model sees (pixel/255 - mean[c]) / std[c]. Default: none.
    #[arg(long, value_name = "M,..", allow_hyphen_values = true)]
    pub mean: Option<String>,
    /// Per-channel standard deviations, comma-separated (with --mean).
    #[arg(long, value_name = "S,..", allow_hyphen_values = true)]
    pub std: Option<String>,
    /// Bits per stored weight: 2..=8 unsigned, or 8, 16, 32 with --signed.
    #[arg(long, default_value_t = 8)]
    pub bits: u8,
    /// Post-training quantization scheme: rquant (per-layer asymmetric, rounding) or normal (per-layer
    /// symmetric, truncation); docs/quantization.md.
    #[arg(long, default_value = "rquant", value_name = "rquant|normal")]
    pub scheme: String,
    /// Range granularity (overrides the scheme's `layer`): layer, channel or global.
    #[arg(long, value_name = "layer|channel|global")]
    pub granularity: Option<String>,
    /// Two's-complement codes (int8/int16/int32) instead of offset binary.
    #[arg(long)]
    pub signed: bool,
    /// Clip weights to [-W, W] before quantizing.
    #[arg(long, value_name = "W", allow_hyphen_values = true)]
    pub w_max: Option<f32>,
    /// The manifest's `name` (default: the file name of --out).
    #[arg(long)]
    pub name: Option<String>,
}

fn floats(flag: &str, s: &str) -> Result<Vec<f32>, CliError> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    CliError::user(format!(
                        "--{flag} `{s}`: `{x}` is not a finite number (give comma-separated values)"
                    ))
                })
        })
        .collect()
}

pub fn run(args: Args) -> CliResult {
    let dataset = match &args.dataset {
        Some(n) => Some(DatasetKind::parse(n).ok_or_else(|| {
            CliError::user(format!(
                "--dataset `{n}` is not one of {}",
                DatasetKind::ALL.map(|k| k.name()).join(", ")
            ))
        })?),
        None => None,
    };
    let mean = args
        .mean
        .as_deref()
        .map(|s| floats("mean", s))
        .transpose()?
        .unwrap_or_default();
    let std = args
        .std
        .as_deref()
        .map(|s| floats("std", s))
        .transpose()?
        .unwrap_or_default();
    if mean.len() != std.len() {
        return Err(CliError::user(format!(
            "--mean has {} values and --std {}: give both with one value (or one per channel) each",
            mean.len(),
            std.len()
        )));
    }
    if let Some(s) = std.iter().find(|s| **s <= 0.0) {
        return Err(CliError::user(format!("--std {s} must be > 0")));
    }
    let mut quant = match args.scheme.as_str() {
        "rquant" => QuantConfig::rquant(args.bits),
        "normal" => QuantConfig::normal(args.bits),
        other => {
            return Err(CliError::user(format!(
                "--scheme `{other}` is not one of rquant, normal"
            )))
        }
    };
    if let Some(g) = &args.granularity {
        quant.granularity = match g.as_str() {
            "layer" => Granularity::Layer,
            "channel" => Granularity::Channel,
            "global" => Granularity::Global,
            other => {
                return Err(CliError::user(format!(
                    "--granularity `{other}` is not one of layer, channel, global"
                )))
            }
        };
    }
    quant.signed = args.signed;
    quant.w_max = args.w_max;
    quant
        .validate()
        .map_err(|e| CliError::user(format!("--bits/--signed/--w-max: {e}")))?;
    let out = match args.out.extension().and_then(|e| e.to_str()) {
        Some("toml") | Some("safetensors") => args.out.with_extension(""),
        _ => args.out.clone(),
    };
    let stem = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            CliError::user(format!(
                "--out `{}` must end in a file name",
                args.out.display()
            ))
        })?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(CliError::user(format!(
                "--out `{}`: folder {} does not exist",
                args.out.display(),
                dir.display()
            )));
        }
    }
    let opts = ImportOptions {
        name: args.name.clone().unwrap_or_else(|| stem.clone()),
        dataset,
        mean,
        std,
        quant,
    };
    let imported =
        onnx::import_file(&args.model, &stem, &opts).map_err(|e| CliError::user(e.to_string()))?;
    let manifest = onnx::write_model(&out, &imported).map_err(|e| CliError::user(e.to_string()))?;
    // Load it back: the same validation every other command applies (shapes, tensors, codes bit for bit).
    let model = Model::load(&manifest).map_err(|e| {
        CliError::internal(format!(
            "the imported model does not load (a bug in the importer): {e}"
        ))
    })?;
    println!(
        "{} -> {}: {} layers, {} parameters ({} bits at {}), opset {}",
        args.model.display(),
        manifest.display(),
        imported.layers,
        imported.params,
        model.memory_bits(),
        model.quant_config().describe(),
        imported.opset
    );
    Ok(())
}
