//! `accelsim quantize`: float32 `.npy` → integer codes `.npy` (storage dtype) and de-quantized float32 `.npy`.
//!
//! Values are parsed here rather than by clap so that every bad input ends as one line and exit code 2.
use std::path::PathBuf;

use super::{CliError, CliResult};
use crate::npy::{self, NpyArray, NpyData};
use crate::quant::{quantize, Codes, Granularity, QuantConfig, Rounding};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  accelsim quantize --bits 8 --scheme rquant --w-max 0.1 --input w.npy --codes c.npy --dequantized d.npy\n  accelsim quantize --bits 4 --granularity channel --symmetric --unsigned --rounding --input w.npy --codes c.npy"
)]
pub struct Args {
    /// Bits per code m: 2..=8 with --unsigned (codes in uint8), 8, 16 or 32 with --signed (int8/int16/int32).
    #[arg(long, value_name = "M", allow_hyphen_values = true)]
    pub bits: Option<String>,
    /// Range granularity: layer (one range per tensor), global (fixed ±w_max, default ±1) or channel (per slice
    /// along axis 0).
    #[arg(long, value_name = "layer|global|channel")]
    pub granularity: Option<String>,
    /// Symmetric range [-q, q] with q = max|w| + 0.001 (capped at w_max).
    #[arg(long)]
    pub symmetric: bool,
    /// Asymmetric range [min w, max w] mapped to [-1, 1].
    #[arg(long)]
    pub asymmetric: bool,
    /// Offset-binary codes (offset 2^(m-1)) in uint8.
    #[arg(long)]
    pub unsigned: bool,
    /// Two's-complement codes in int8/int16/int32.
    #[arg(long)]
    pub signed: bool,
    /// Round half to even (as torch.round).
    #[arg(long)]
    pub rounding: bool,
    /// Truncate toward zero.
    #[arg(long)]
    pub truncation: bool,
    /// Clipping bound: weights are clamped to [-W, W] first (W > 0).
    #[arg(long, value_name = "W", allow_hyphen_values = true)]
    pub w_max: Option<String>,
    /// Preset supplying the choices not given as flags: rquant (layer, asymmetric, unsigned, rounding) or normal
    /// (layer, symmetric, unsigned, truncation). A flag contradicting the preset is an error.
    #[arg(long, value_name = "rquant|normal")]
    pub scheme: Option<String>,
    /// Input tensor: float32 .npy, C order.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Output: the integer codes (.npy in the storage dtype: uint8, int8, int16 or int32), same shape.
    #[arg(long, value_name = "FILE")]
    pub codes: Option<PathBuf>,
    /// Output: the de-quantized values (float32 .npy), same shape.
    #[arg(long, value_name = "FILE")]
    pub dequantized: Option<PathBuf>,
}

/// One binary choice given by a pair of flags, possibly defaulted by the preset.
fn choice(
    name_true: &str,
    name_false: &str,
    flag_true: bool,
    flag_false: bool,
    preset: Option<(&str, bool)>,
) -> Result<bool, CliError> {
    if flag_true && flag_false {
        return Err(CliError::user(format!(
            "--{name_true} and --{name_false} conflict: give one of them"
        )));
    }
    let given = if flag_true {
        Some(true)
    } else if flag_false {
        Some(false)
    } else {
        None
    };
    match (given, preset) {
        (Some(g), Some((scheme, p))) if g != p => Err(CliError::user(format!(
            "--{} conflicts with --scheme {scheme}, which is {}",
            if g { name_true } else { name_false },
            if p { name_true } else { name_false }
        ))),
        (Some(g), _) => Ok(g),
        (None, Some((_, p))) => Ok(p),
        (None, None) => Err(CliError::user(format!(
            "give --{name_true} or --{name_false} (or --scheme rquant|normal)"
        ))),
    }
}

/// Builds and validates the scheme from the flags.
pub fn config_from_args(a: &Args) -> Result<QuantConfig, CliError> {
    let bits_s = a
        .bits
        .as_deref()
        .ok_or_else(|| CliError::user("--bits is required (2..=8 unsigned; 8, 16 or 32 signed)"))?;
    let bits: u8 = bits_s.trim().parse().map_err(|_| {
        CliError::user(format!(
            "--bits {bits_s} is not an integer (allowed: 2..=8 unsigned; 8, 16 or 32 signed)"
        ))
    })?;
    let preset = match a.scheme.as_deref() {
        None => None,
        Some("rquant") => Some(("rquant", QuantConfig::rquant(bits))),
        Some("normal") => Some(("normal", QuantConfig::normal(bits))),
        Some(other) => {
            return Err(CliError::user(format!(
                "--scheme {other} is not known (allowed: rquant, normal)"
            )))
        }
    };
    let granularity = match (a.granularity.as_deref(), &preset) {
        (Some(g), p) => {
            let g = match g {
                "layer" => Granularity::Layer,
                "global" => Granularity::Global,
                "channel" => Granularity::Channel,
                other => {
                    return Err(CliError::user(format!(
                        "--granularity {other} is not allowed (layer, global or channel)"
                    )))
                }
            };
            if let Some((name, c)) = p {
                if c.granularity != g {
                    return Err(CliError::user(format!(
                        "--granularity {} conflicts with --scheme {name}, which is {}",
                        g.name(),
                        c.granularity.name()
                    )));
                }
            }
            g
        }
        (None, Some((_, c))) => c.granularity,
        (None, None) => {
            return Err(CliError::user(
                "give --granularity layer|global|channel (or --scheme rquant|normal)",
            ))
        }
    };
    let p = |f: fn(&QuantConfig) -> bool| preset.as_ref().map(|(n, c)| (*n, f(c)));
    let symmetric = choice(
        "symmetric",
        "asymmetric",
        a.symmetric,
        a.asymmetric,
        p(|c| c.symmetric),
    )?;
    let signed = choice("signed", "unsigned", a.signed, a.unsigned, p(|c| c.signed))?;
    let nearest = choice(
        "rounding",
        "truncation",
        a.rounding,
        a.truncation,
        p(|c| c.rounding == Rounding::Nearest),
    )?;
    let w_max = match a.w_max.as_deref() {
        None => None,
        Some(s) => {
            let w: f32 = s.trim().parse().map_err(|_| {
                CliError::user(format!("--w-max {s} is not a number (must be > 0)"))
            })?;
            if !(w.is_finite() && w > 0.0) {
                return Err(CliError::user(format!(
                    "--w-max {s} must be a finite number > 0"
                )));
            }
            Some(w)
        }
    };
    let cfg = QuantConfig {
        bits,
        granularity,
        symmetric,
        signed,
        rounding: if nearest {
            Rounding::Nearest
        } else {
            Rounding::Truncate
        },
        w_max,
    };
    cfg.validate().map_err(|_| {
        CliError::user(format!(
            "--bits {bits} is not allowed with --{} (allowed: {})",
            if signed { "signed" } else { "unsigned" },
            if signed { "8, 16 or 32" } else { "2..=8" }
        ))
    })?;
    Ok(cfg)
}

pub fn run(args: Args) -> CliResult {
    let cfg = config_from_args(&args)?;
    let input = args
        .input
        .as_ref()
        .ok_or_else(|| CliError::user("--input FILE (float32 .npy) is required"))?;
    if args.codes.is_none() && args.dequantized.is_none() {
        return Err(CliError::user(
            "nothing to write: give --codes FILE and/or --dequantized FILE",
        ));
    }
    super::check_input_file("--input", input, "a float32 .npy file")?;
    let (values, shape) = npy::read_f32(input).map_err(|e| CliError::user(e.to_string()))?;
    let q = quantize(&values, &shape, &cfg)
        .map_err(|e| CliError::user(format!("{}: {e}", input.display())))?;
    if let Some(path) = &args.codes {
        let data = match q.codes() {
            Codes::U8(v) => NpyData::U8(v.clone()),
            Codes::I8(v) => NpyData::I8(v.clone()),
            Codes::I16(v) => NpyData::I16(v.clone()),
            Codes::I32(v) => NpyData::I32(v.clone()),
        };
        npy::write(
            path,
            &NpyArray {
                shape: shape.clone(),
                data,
            },
        )
        .map_err(|e| CliError::user(e.to_string()))?;
    }
    let deq = q.dequantize();
    if let Some(path) = &args.dequantized {
        npy::write_f32(path, &deq, &shape).map_err(|e| CliError::user(e.to_string()))?;
    }
    // Quantization error against the clipped input (clipping itself is a chosen projection, reported apart).
    let clip = |w: f32| cfg.w_max.map_or(w, |m| w.clamp(-m, m));
    let max_err = values
        .iter()
        .zip(&deq)
        .map(|(&a, b)| (clip(a) - b).abs())
        .fold(0.0f32, f32::max);
    let clipped = values.iter().filter(|&&w| clip(w) != w).count();
    let ranges = q.ranges();
    let range_txt = match ranges.as_slice() {
        [] => "no groups".to_string(),
        [r] => format!("range [{}, {}]", r.lo, r.hi),
        rs => format!(
            "{} channel ranges, first [{}, {}]",
            rs.len(),
            rs[0].lo,
            rs[0].hi
        ),
    };
    println!(
        "quantized {} (shape {:?}, {} values, {clipped} clipped) as {} ({} codes): {range_txt}, max |clip(w) - deq(w)| = {max_err}",
        input.display(),
        shape,
        values.len(),
        cfg.describe(),
        cfg.code_type()
    );
    if let Some(p) = &args.codes {
        println!("codes       -> {}", p.display());
    }
    if let Some(p) = &args.dequantized {
        println!("dequantized -> {}", p.display());
    }
    Ok(())
}
