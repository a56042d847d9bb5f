//! Fixed-point quantization of float32 tensors into real integer codes, and back.
//!
//! Follows the paper's schemes (docs/quantization.md#paper-schemes, and #clipping for `w_max`) and the project's normative
//! arithmetic, documented in `docs/quantization.md`. Every scheme is one value of [`QuantConfig`]:
//!
//! * granularity: `global` (fixed range ±q_fixed, q_fixed = w_max or 1), `layer` (one range per tensor) or
//!   `channel` (one range per slice along axis 0, beyond the paper);
//! * symmetric (`Δ = q / (2^(m-1) - 1)`, `q = min(max|w| + ε, w_max)`) or asymmetric (`[min w, max w]` mapped
//!   to `[-1, 1]`, `Δ = (1 + ε) / (2^(m-1) - 1)`), ε = 0.001;
//! * unsigned (offset binary: `v = x/Δ + 2^(m-1)`, codes in `u8`, m = 2..=8, the 8-m high bits never used) or
//!   signed (two's complement in `i8`/`i16`/`i32` for m = 8/16/32);
//! * rounding (half to even, as `torch.round`) or truncation (toward zero).
//!
//! The ranges ("context") come from the clean tensor and are kept in the [`QuantizedTensor`], so corrupted
//! codes decode with the clean ranges ([`QuantizedTensor::dequantize_codes_into`]).
//!
//! Presets: [`QuantConfig::rquant`] (the paper's RQuant) and [`QuantConfig::normal`] (the paper's NORMAL).

mod kernel;
pub mod reference;
mod tensor;
pub mod vectors;

pub use kernel::GroupCodec;

/// Storage range of a scheme's codes: unsigned `[0, 2^m - 1]`, signed `[-2^(m-1), 2^(m-1) - 1]`.
pub fn storage_range_of(cfg: &QuantConfig) -> (i64, i64) {
    kernel::storage_range(cfg)
}
pub use tensor::{quantize, QuantizedTensor};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// ε (docs/quantization.md#paper-schemes): added to the symmetric range and to the asymmetric `1` before dividing by the levels.
pub const EPS: f32 = 0.001;

/// Errors of quantization: invalid configurations and inputs that do not fit them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantError {
    #[error("quantization: bits = {bits} is not allowed for {} codes (allowed: {})", if *.signed { "signed" } else { "unsigned" }, if *.signed { "8, 16 or 32" } else { "2..=8" })]
    InvalidBits { bits: u8, signed: bool },
    #[error("quantization: w_max = {w_max} must be a finite number > 0")]
    InvalidWMax { w_max: f32 },
    #[error("quantization: shape {shape:?} has {expected} elements but {len} values were given")]
    ShapeMismatch {
        shape: Vec<usize>,
        expected: usize,
        len: usize,
    },
    #[error("quantization: input element {index} is {value}; only finite values can be quantized")]
    NonFinite { index: usize, value: f32 },
    #[error("quantization: codes of type {got} and length {got_len} do not match this tensor's {expected} x {expected_len}")]
    CodesMismatch {
        expected: &'static str,
        expected_len: usize,
        got: &'static str,
        got_len: usize,
    },
    #[error("quantization: output buffer has {got} elements, the tensor has {expected}")]
    OutputLength { expected: usize, got: usize },
    #[error("quantization: the u8 fast path needs unsigned codes or signed 8-bit codes, this tensor stores {kind}")]
    NotByteCodes { kind: &'static str },
    #[error("quantization: {0}")]
    InvalidParts(String),
}

/// How many elements share one quantization range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One fixed range for every tensor: ±q_fixed with q_fixed = w_max, or 1 without clipping
    /// (the paper's "global, q_max = 1" row).
    Global,
    /// One range per tensor ("per-layer" in the paper; weights and biases separately).
    Layer,
    /// One range per slice along axis 0 (per output channel).
    Channel,
}

impl Granularity {
    pub fn name(self) -> &'static str {
        match self {
            Granularity::Global => "global",
            Granularity::Layer => "layer",
            Granularity::Channel => "channel",
        }
    }
}

/// Float → integer conversion of the scaled value.
///
/// Serialized as a boolean `rounding` (true = [`Rounding::Nearest`], false = [`Rounding::Truncate`]) as in the
/// model manifest and the shared test vectors; the strings `"nearest"`/`"truncate"` are accepted on input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// Round half to even (`f32::round_ties_even`, as `torch.round`).
    Nearest,
    /// Truncate toward zero (the reference code's `.to(int)`).
    Truncate,
}

impl Serialize for Rounding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(matches!(self, Rounding::Nearest))
    }
}

impl<'de> Deserialize<'de> for Rounding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Bool(bool),
            Name(String),
        }
        match Repr::deserialize(d)? {
            Repr::Bool(true) => Ok(Rounding::Nearest),
            Repr::Bool(false) => Ok(Rounding::Truncate),
            Repr::Name(s) => match s.as_str() {
                "nearest" | "round" | "rounding" => Ok(Rounding::Nearest),
                "truncate" | "truncation" => Ok(Rounding::Truncate),
                other => Err(serde::de::Error::custom(format!(
                    "rounding = \"{other}\" is not allowed (true, false, \"nearest\" or \"truncate\")"
                ))),
            },
        }
    }
}

/// A quantization scheme (docs/quantization.md#paper-schemes). Construct with the presets or literally, then [`validate`](Self::validate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantConfig {
    /// m, the number of stored bits per code: 2..=8 unsigned, 8/16/32 signed.
    pub bits: u8,
    pub granularity: Granularity,
    pub symmetric: bool,
    /// false: offset binary in `u8` (offset 2^(m-1)); true: two's complement in `i8`/`i16`/`i32`.
    pub signed: bool,
    pub rounding: Rounding,
    /// Clipping bound: weights are clamped to [-w_max, w_max] before quantization (docs/quantization.md#clipping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w_max: Option<f32>,
}

impl QuantConfig {
    /// RQuant (docs/quantization.md): per-layer, asymmetric, unsigned, rounding. Add `w_max` for Clipping/RandBET models.
    pub fn rquant(bits: u8) -> Self {
        QuantConfig {
            bits,
            granularity: Granularity::Layer,
            symmetric: false,
            signed: false,
            rounding: Rounding::Nearest,
            w_max: None,
        }
    }

    /// NORMAL (docs/quantization.md): per-layer, symmetric, unsigned, truncation.
    pub fn normal(bits: u8) -> Self {
        QuantConfig {
            bits,
            granularity: Granularity::Layer,
            symmetric: true,
            signed: false,
            rounding: Rounding::Truncate,
            w_max: None,
        }
    }

    /// The same scheme with clipping bound `w_max`.
    pub fn with_w_max(mut self, w_max: f32) -> Self {
        self.w_max = Some(w_max);
        self
    }

    /// The same scheme with another granularity.
    pub fn with_granularity(mut self, granularity: Granularity) -> Self {
        self.granularity = granularity;
        self
    }

    /// Checks `bits` against the signedness (2..=8 unsigned; 8, 16, 32 signed) and `w_max` (finite, > 0).
    pub fn validate(&self) -> Result<(), QuantError> {
        let ok = if self.signed {
            matches!(self.bits, 8 | 16 | 32)
        } else {
            (2..=8).contains(&self.bits)
        };
        if !ok {
            return Err(QuantError::InvalidBits {
                bits: self.bits,
                signed: self.signed,
            });
        }
        if let Some(w) = self.w_max {
            if !(w.is_finite() && w > 0.0) {
                return Err(QuantError::InvalidWMax { w_max: w });
            }
        }
        Ok(())
    }

    /// Bits per code that are stored in weight memory and exposed to bit errors: m. (Unsigned codes sit in
    /// the low m bits of a `u8`; the 8-m high bits are never used and never faulty.)
    pub fn storage_bits(&self) -> u32 {
        self.bits as u32
    }

    /// Width of the container type the codes are held in: 8 (`u8`/`i8`), 16 or 32.
    pub fn container_bits(&self) -> u32 {
        if self.signed {
            self.bits as u32
        } else {
            8
        }
    }

    /// The container type's name: `u8`, `i8`, `i16` or `i32`.
    pub fn code_type(&self) -> &'static str {
        match (self.signed, self.bits) {
            (false, _) => "u8",
            (true, 8) => "i8",
            (true, 16) => "i16",
            _ => "i32",
        }
    }

    /// A short human-readable description, e.g. `8-bit layer asymmetric unsigned rounding w_max=0.1`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{}-bit {} {} {} {}",
            self.bits,
            self.granularity.name(),
            if self.symmetric {
                "symmetric"
            } else {
                "asymmetric"
            },
            if self.signed { "signed" } else { "unsigned" },
            match self.rounding {
                Rounding::Nearest => "rounding",
                Rounding::Truncate => "truncation",
            }
        );
        if let Some(w) = self.w_max {
            s.push_str(&format!(" w_max={w}"));
        }
        s
    }
}

/// Integer codes in their storage type.
#[derive(Clone, Debug, PartialEq)]
pub enum Codes {
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
}

impl Codes {
    pub fn len(&self) -> usize {
        match self {
            Codes::U8(v) => v.len(),
            Codes::I8(v) => v.len(),
            Codes::I16(v) => v.len(),
            Codes::I32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `u8`, `i8`, `i16` or `i32`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Codes::U8(_) => "u8",
            Codes::I8(_) => "i8",
            Codes::I16(_) => "i16",
            Codes::I32(_) => "i32",
        }
    }

    /// The code at `i` as an integer (sign-extended for signed codes).
    pub fn get_i64(&self, i: usize) -> Option<i64> {
        match self {
            Codes::U8(v) => v.get(i).map(|&x| x as i64),
            Codes::I8(v) => v.get(i).map(|&x| x as i64),
            Codes::I16(v) => v.get(i).map(|&x| x as i64),
            Codes::I32(v) => v.get(i).map(|&x| x as i64),
        }
    }

    /// All codes as `i64` (convenience for tests and writers; allocates).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        match self {
            Codes::U8(v) => v.iter().map(|&x| x as i64).collect(),
            Codes::I8(v) => v.iter().map(|&x| x as i64).collect(),
            Codes::I16(v) => v.iter().map(|&x| x as i64).collect(),
            Codes::I32(v) => v.iter().map(|&x| x as i64).collect(),
        }
    }

    /// The codes as raw bytes when they are one byte wide (`u8`, or `i8` reinterpreted), else `None`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Codes::U8(v) => Some(v),
            Codes::I8(v) => Some(i8_as_bytes(v)),
            _ => None,
        }
    }

    /// Mutable raw bytes of one-byte codes (`u8`, or `i8` reinterpreted), else `None`.
    pub fn as_bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self {
            Codes::U8(v) => Some(v),
            Codes::I8(v) => Some(i8_as_bytes_mut(v)),
            _ => None,
        }
    }
}

/// Reinterprets `i8` codes as their two's-complement bytes.
pub fn i8_as_bytes(v: &[i8]) -> &[u8] {
    // SAFETY: i8 and u8 have the same size, alignment and validity (every bit pattern is valid).
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len()) }
}

/// Reinterprets `i8` codes as their two's-complement bytes, mutably.
pub fn i8_as_bytes_mut(v: &mut [i8]) -> &mut [u8] {
    // SAFETY: as in `i8_as_bytes`; the borrow is exclusive.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, v.len()) }
}

/// The range of one quantization group, computed from the clean tensor: symmetric `[-q, q]` (lo = -q, hi = q),
/// asymmetric `[q_min, q_max]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRange {
    pub lo: f32,
    pub hi: f32,
}

#[cfg(test)]
mod tests;
