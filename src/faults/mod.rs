//! Bit-level fault primitives on integer codes (docs/faults.md#paper-model).
//!
//! * [`bitops`]: flip by mask, set bits to 0/1, xor, Hamming distance, unpack/pack bits (LSB first), on
//!   `u8`/`i8`/`i16`/`i32` slices and ndarray arrays.
//! * [`FaultPattern`]: faults as data, one entry per faulty element with flip / stuck-at-0 / stuck-at-1 bit
//!   masks; applied as `v' = ((v ^ flip) & !set0) | set1` within the m stored bits; saved to and read from a
//!   documented safetensors file.
//! * [`sample_bit_errors`] / [`inject_bit_errors`] / [`NestedSampler`]: random bit errors at per-bit
//!   probabilities `p01` (a stored 0 reads as 1) and `p10` (1 reads as 0) over only the m stored bits of each
//!   code; exact Bernoulli per bit, nested across rates for one seed, sparse (work O(stored bits × p)),
//!   deterministic for a seed on any number of threads.

pub mod bitops;
mod code;
mod pattern;
mod sampler;

pub use code::{low_mask, Code};
pub use pattern::{FaultEntry, FaultPattern, PATTERN_FORMAT, PATTERN_VERSION};
pub use sampler::{
    inject_bit_errors, inject_bit_errors_u8, ladder_threshold, sample_bit_errors,
    sample_bit_errors_u8, try_inject_bit_errors, try_inject_bit_errors_into, try_sample_bit_errors,
    Candidate, NestedSampler, CHUNK_ELEMENTS, LADDER_LEVELS,
};

use std::path::PathBuf;

/// Errors of the fault primitives.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("{name} = {value} is not a per-bit probability in [0, 1]")]
    InvalidRate { name: &'static str, value: f64 },
    #[error("bits = {bits} is not allowed for {ty} codes (allowed: 1..={max})")]
    InvalidBits {
        bits: u32,
        ty: &'static str,
        max: u32,
    },
    #[error("fault entry for element {index} is out of range: the codes have {len} elements")]
    IndexOutOfRange { index: u64, len: usize },
    #[error("fault entry for element {index} has mask {mask:#x} outside the {bits} stored bits")]
    MaskOutOfRange { index: u64, mask: u32, bits: u32 },
    #[error("fault entries must be sorted by element index and unique (entry {position})")]
    NotSorted { position: usize },
    #[error("length mismatch: {left} vs {right} elements")]
    LengthMismatch { left: usize, right: usize },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
}

/// Per-bit error probabilities: `p01` = P(a stored 0 reads as 1), `p10` = P(a stored 1 reads as 0).
/// Probabilities, never percent (the paper's `p` = both rates equal, docs/faults.md#paper-model).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BitErrorRates {
    pub p01: f64,
    pub p10: f64,
}

impl BitErrorRates {
    /// Both directions at rate `p` (the paper's uniform random bit errors).
    pub fn uniform(p: f64) -> Self {
        BitErrorRates { p01: p, p10: p }
    }

    /// Checked constructor.
    pub fn new(p01: f64, p10: f64) -> Result<Self, FaultError> {
        let r = BitErrorRates { p01, p10 };
        r.validate()?;
        Ok(r)
    }

    /// Both rates must be finite probabilities in [0, 1].
    pub fn validate(&self) -> Result<(), FaultError> {
        for (name, value) in [("p01", self.p01), ("p10", self.p10)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultError::InvalidRate { name, value });
            }
        }
        Ok(())
    }

    /// The larger of the two rates.
    pub fn max(&self) -> f64 {
        self.p01.max(self.p10)
    }

    /// Rates clamped into [0, 1], NaN as 0 (the non-panicking fallback of the unchecked entry points).
    pub(crate) fn saturated(&self) -> Self {
        let f = |p: f64| if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        BitErrorRates {
            p01: f(self.p01),
            p10: f(self.p10),
        }
    }
}

#[cfg(test)]
mod tests;
