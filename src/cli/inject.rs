//! `accelsim inject`: random bit errors (or a saved fault pattern) on a `.npy` tensor of integer codes.
//!
//! Values are parsed here rather than by clap so that every bad input ends as one line and exit code 2.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{CliError, CliResult};
use crate::faults::{self, low_mask, BitErrorRates, Code, FaultPattern};
use crate::npy::{self, NpyArray, NpyData};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  accelsim inject --input c.npy --bits 8 --p 0.01 --seed 100 --output c_faulty.npy --pattern chip100.safetensors\n  accelsim inject --input c.npy --bits 8 --p01 0.008 --p10 0.002 --seed 7 --output c_faulty.npy\n  accelsim inject --input other.npy --bits 8 --replay chip100.safetensors --output other_faulty.npy"
)]
pub struct Args {
    /// Integer codes: .npy of uint8 (unsigned m = 2..=8, only the low m bits are stored), int8, int16 or int32.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// m, the stored bits per code: 2..=8 for uint8; 8, 16, 32 for int8, int16, int32.
    #[arg(long, value_name = "M", allow_hyphen_values = true)]
    pub bits: Option<String>,
    /// Per-bit error probability for both directions (a probability in [0, 1], not a percent).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub p: Option<String>,
    /// Probability that a stored 0 reads as 1 (overrides --p for that direction).
    #[arg(long, value_name = "A", allow_hyphen_values = true)]
    pub p01: Option<String>,
    /// Probability that a stored 1 reads as 0 (overrides --p for that direction).
    #[arg(long, value_name = "B", allow_hyphen_values = true)]
    pub p10: Option<String>,
    /// Seed of the simulated chip: the same seed gives the same flips on every run and thread count, and the
    /// flips at a lower p are a subset of those at a higher p.
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    pub seed: Option<String>,
    /// Output: the corrupted codes (same dtype and shape).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also save the sampled flips as a fault-pattern file (safetensors, see docs/faults.md).
    #[arg(long, value_name = "FILE")]
    pub pattern: Option<PathBuf>,
    /// Apply a saved fault-pattern file instead of sampling (no --p/--p01/--p10/--seed).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
}

fn parse_prob(flag: &str, s: &str) -> Result<f64, CliError> {
    let p: f64 = s.trim().parse().map_err(|_| {
        CliError::user(format!(
            "--{flag} {s} is not a number (a per-bit probability in [0, 1])"
        ))
    })?;
    if !(0.0..=1.0).contains(&p) {
        return Err(CliError::user(format!(
            "--{flag} {s} is outside [0, 1]: it is a per-bit probability, not a percent"
        )));
    }
    Ok(p)
}

/// The codes of the input file in one of the supported storage types.
enum Input {
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
}

/// Allowed m for each storage dtype (the quantizer's rules: unsigned 2..=8 in uint8, signed = the word width).
fn check_bits_for(input: &Path, dtype: &str, bits: u8) -> Result<(), CliError> {
    let ok = match dtype {
        "uint8" => (2..=8).contains(&bits),
        "int8" => bits == 8,
        "int16" => bits == 16,
        "int32" => bits == 32,
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let allowed = match dtype {
        "uint8" => "2..=8",
        "int8" => "8",
        "int16" => "16",
        _ => "32",
    };
    Err(CliError::user(format!(
        "--bits {bits} is not allowed for {dtype} codes in {} (allowed: {allowed})",
        input.display()
    )))
}

fn check_high_bits<C: Code>(input: &Path, codes: &[C], bits: u8) -> Result<(), CliError> {
    let m = low_mask(bits as u32);
    if let Some((i, c)) = codes
        .iter()
        .enumerate()
        .find(|(_, c)| c.to_bits() & !m != 0)
    {
        return Err(CliError::user(format!(
            "{}: element {i} = {c:?} uses bits above the {bits} stored bits (wrong --bits?)",
            input.display()
        )));
    }
    Ok(())
}

/// Samples (or replays) and applies the faults; returns (flipped bits, pattern).
fn corrupt<C: Code>(
    codes: &mut [C],
    bits: u8,
    mode: &Mode,
    want_pattern: bool,
) -> Result<(u64, Option<FaultPattern>), CliError> {
    match mode {
        Mode::Replay(path, pattern) => {
            if pattern.bits != bits {
                return Err(CliError::user(format!(
                    "{}: the pattern is for {} stored bits, --bits is {bits}",
                    path.display(),
                    pattern.bits
                )));
            }
            pattern
                .apply(codes)
                .map_err(|e| CliError::user(format!("{}: {e}", path.display())))?;
            Ok((pattern.fault_count(), None))
        }
        Mode::Sample { rates, seed } => {
            if want_pattern {
                let p = faults::try_sample_bit_errors(codes, bits, *rates, *seed)
                    .map_err(|e| CliError::user(e.to_string()))?;
                p.apply(codes)
                    .map_err(|e| CliError::internal(e.to_string()))?;
                Ok((p.flip_count(), Some(p)))
            } else {
                let n = faults::try_inject_bit_errors(codes, bits, *rates, *seed)
                    .map_err(|e| CliError::user(e.to_string()))?;
                Ok((n as u64, None))
            }
        }
    }
}

/// Where the flips come from: sampled from rates and a seed, or replayed from a pattern file.
pub enum Mode {
    Sample { rates: BitErrorRates, seed: u64 },
    Replay(PathBuf, FaultPattern),
}

/// Checks `bits` against the storage type and the codes against `bits`, then samples (or replays) and applies the
/// faults in place; returns (flipped bits, the sampled pattern when `want_pattern`). `input` names the codes in
/// messages. The CLI and the Python binding's `accelsim.inject` both call this.
pub fn apply<C: Code>(
    input: &Path,
    codes: &mut [C],
    bits: u8,
    mode: &Mode,
    want_pattern: bool,
) -> Result<(u64, Option<FaultPattern>), CliError> {
    let dtype = match C::NAME {
        "u8" => "uint8",
        "i8" => "int8",
        "i16" => "int16",
        _ => "int32",
    };
    check_bits_for(input, dtype, bits)?;
    check_high_bits(input, codes, bits)?;
    corrupt(codes, bits, mode, want_pattern)
}

/// The stored bits per code and the fault mode from the flags (one-line user errors naming the flag).
pub fn parse(args: &Args) -> Result<(u8, Mode), CliError> {
    let bits_s = args.bits.as_deref().ok_or_else(|| {
        CliError::user("--bits M is required (2..=8 for uint8; 8, 16, 32 for int8/int16/int32)")
    })?;
    let bits: u8 = bits_s
        .trim()
        .parse()
        .map_err(|_| CliError::user(format!("--bits {bits_s} is not an integer")))?;
    let mode = if let Some(replay) = &args.replay {
        for (flag, given) in [
            ("p", args.p.is_some()),
            ("p01", args.p01.is_some()),
            ("p10", args.p10.is_some()),
            ("seed", args.seed.is_some()),
            ("pattern", args.pattern.is_some()),
        ] {
            if given {
                return Err(CliError::user(format!(
                    "--replay and --{flag} conflict: a replayed pattern is not sampled"
                )));
            }
        }
        super::check_input_file("--replay", replay, "a fault-pattern (.safetensors) file")?;
        let p = FaultPattern::read(replay).map_err(|e| CliError::user(e.to_string()))?;
        Mode::Replay(replay.clone(), p)
    } else {
        let p = args.p.as_deref().map(|s| parse_prob("p", s)).transpose()?;
        let p01 = args
            .p01
            .as_deref()
            .map(|s| parse_prob("p01", s))
            .transpose()?;
        let p10 = args
            .p10
            .as_deref()
            .map(|s| parse_prob("p10", s))
            .transpose()?;
        let (p01, p10) = match (p01.or(p), p10.or(p)) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                return Err(CliError::user(
                    "give --p P, or both --p01 A and --p10 B (per-bit probabilities in [0, 1])",
                ))
            }
        };
        let seed_s = args
            .seed
            .as_deref()
            .ok_or_else(|| CliError::user("--seed S is required (a non-negative integer)"))?;
        let seed: u64 = seed_s.trim().parse().map_err(|_| {
            CliError::user(format!(
                "--seed {seed_s} is not a non-negative integer below 2^64"
            ))
        })?;
        Mode::Sample {
            rates: BitErrorRates { p01, p10 },
            seed,
        }
    };
    Ok((bits, mode))
}

/// Saves a sampled pattern with the metadata that describes how it was drawn (docs/faults.md).
pub fn write_pattern(
    path: &Path,
    pattern: &FaultPattern,
    rates: &BitErrorRates,
    seed: u64,
    elements: usize,
    source: &str,
) -> Result<(), CliError> {
    let mut meta = BTreeMap::new();
    meta.insert("seed".to_string(), seed.to_string());
    meta.insert("p01".to_string(), rates.p01.to_string());
    meta.insert("p10".to_string(), rates.p10.to_string());
    meta.insert("elements".to_string(), elements.to_string());
    meta.insert("source".to_string(), source.to_string());
    meta.insert(
        "sampler".to_string(),
        "accelsim nested ladder v1".to_string(),
    );
    pattern
        .write_with_metadata(path, &meta)
        .map_err(|e| CliError::user(e.to_string()))
}

pub fn run(args: Args) -> CliResult {
    let input = args
        .input
        .as_ref()
        .ok_or_else(|| CliError::user("--input FILE (.npy of integer codes) is required"))?;
    let output = args
        .output
        .as_ref()
        .ok_or_else(|| CliError::user("--output FILE is required"))?;
    super::check_input_file("--input", input, "a .npy file of integer codes")?;
    let (bits, mode) = parse(&args)?;
    let arr = npy::read(input).map_err(|e| CliError::user(e.to_string()))?;
    let dtype = arr.data.dtype_name();
    let mut codes = match arr.data {
        NpyData::U8(v) => Input::U8(v),
        NpyData::I8(v) => Input::I8(v),
        NpyData::I16(v) => Input::I16(v),
        NpyData::I32(v) => Input::I32(v),
        other => {
            return Err(CliError::user(format!(
                "{}: dtype {} is not an integer code type (uint8, int8, int16 or int32)",
                input.display(),
                other.dtype_name()
            )))
        }
    };
    let want_pattern = args.pattern.is_some();
    let (flips, pattern, n, data) = match &mut codes {
        Input::U8(v) => {
            let (f, p) = apply(input, v, bits, &mode, want_pattern)?;
            (f, p, v.len(), NpyData::U8(std::mem::take(v)))
        }
        Input::I8(v) => {
            let (f, p) = apply(input, v, bits, &mode, want_pattern)?;
            (f, p, v.len(), NpyData::I8(std::mem::take(v)))
        }
        Input::I16(v) => {
            let (f, p) = apply(input, v, bits, &mode, want_pattern)?;
            (f, p, v.len(), NpyData::I16(std::mem::take(v)))
        }
        Input::I32(v) => {
            let (f, p) = apply(input, v, bits, &mode, want_pattern)?;
            (f, p, v.len(), NpyData::I32(std::mem::take(v)))
        }
    };
    npy::write(
        output,
        &NpyArray {
            shape: arr.shape.clone(),
            data,
        },
    )
    .map_err(|e| CliError::user(e.to_string()))?;
    let stored = n as u64 * bits as u64;
    match &mode {
        Mode::Sample { rates, seed } => {
            if let (Some(path), Some(p)) = (&args.pattern, &pattern) {
                write_pattern(path, p, rates, *seed, n, &input.display().to_string())?;
            }
            println!(
                "flipped {flips} of {stored} stored bits ({:.3e}; p01 = {}, p10 = {}, seed {seed}) in {} {dtype} codes of {bits} bits -> {}",
                if stored > 0 { flips as f64 / stored as f64 } else { 0.0 },
                rates.p01,
                rates.p10,
                n,
                output.display()
            );
            if let Some(path) = &args.pattern {
                println!("pattern -> {}", path.display());
            }
        }
        Mode::Replay(path, p) => println!(
            "replayed {} faulty bits in {} elements from {} onto {n} {dtype} codes of {bits} bits -> {}",
            flips,
            p.entries.len(),
            path.display(),
            output.display()
        ),
    }
    Ok(())
}
