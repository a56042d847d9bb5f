//! ECC keys of the `[weight_sram]` section: which code protects each stored word, how its codewords are laid out
//! in the arrays, and what happens to a word whose errors the code detects but cannot correct (docs/ecc.md).
use serde::{Deserialize, Serialize};

/// Protection scheme of the weight SRAM's words (`[weight_sram] ecc`, `--ecc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EccScheme {
    /// No check bits: every read error reaches the weights (the paper's setting).
    #[default]
    None,
    /// One even-parity bit per codeword: detects any odd number of errors, corrects nothing.
    Parity,
    /// Hsiao single-error-correcting, double-error-detecting code: (72,64), (39,32) or (22,16).
    Secded,
}

impl EccScheme {
    /// Every scheme, in the order of the help text.
    pub const ALL: [EccScheme; 3] = [EccScheme::None, EccScheme::Parity, EccScheme::Secded];

    /// The name used in configs, on the command line and in `sweep.csv`.
    pub fn name(self) -> &'static str {
        match self {
            EccScheme::None => "none",
            EccScheme::Parity => "parity",
            EccScheme::Secded => "secded",
        }
    }

    /// Parses `none`, `parity` or `secded`.
    pub fn parse(s: &str) -> Option<EccScheme> {
        EccScheme::ALL.into_iter().find(|e| e.name() == s)
    }
}

impl std::fmt::Display for EccScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the read path does with a detected-but-uncorrectable word (`[weight_sram] due`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DuePolicy {
    /// Every weight with a bit in the word is replaced by the code whose value is closest to 0.0 (a zeroed weight
    /// contributes nothing to the MACs; Minerva's masking of detected faulty reads, docs/ecc.md).
    #[default]
    Zero,
    /// The raw (erroneous) bits are used as read.
    Keep,
}

impl DuePolicy {
    pub fn name(self) -> &'static str {
        match self {
            DuePolicy::Zero => "zero",
            DuePolicy::Keep => "keep",
        }
    }
}

/// Data bits per codeword the config accepts (`[weight_sram] ecc_data_bits`).
pub const ECC_DATA_BITS: [u32; 3] = [16, 32, 64];
/// Largest decoder latency accepted, cycles.
pub const MAX_ECC_LATENCY_CYCLES: u32 = 64;

pub(crate) fn default_ecc_data_bits() -> u32 {
    64
}
pub(crate) fn default_interleave() -> u32 {
    1
}
pub(crate) fn default_ecc_latency() -> u32 {
    1
}

/// Check bits per codeword of `scheme` with `data_bits` data bits: parity 1; SECDED the smallest `r` with
/// `2^(r-1) - r >= data_bits` (Hsiao's bound: as many odd-weight columns of weight ≥ 3 as data bits), i.e. 8 for
/// 64, 7 for 32, 6 for 16 data bits; none 0.
pub fn check_bits(scheme: EccScheme, data_bits: u32) -> u32 {
    match scheme {
        EccScheme::None => 0,
        EccScheme::Parity => 1,
        EccScheme::Secded => {
            let mut r = 2u32;
            while (1u64 << (r - 1)) - (r as u64) < data_bits as u64 {
                r += 1;
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_bit_counts_are_the_textbook_ones() {
        assert_eq!(check_bits(EccScheme::Secded, 64), 8);
        assert_eq!(check_bits(EccScheme::Secded, 32), 7);
        assert_eq!(check_bits(EccScheme::Secded, 16), 6);
        assert_eq!(check_bits(EccScheme::Secded, 8), 5);
        assert_eq!(check_bits(EccScheme::Parity, 64), 1);
        assert_eq!(check_bits(EccScheme::None, 64), 0);
        for s in EccScheme::ALL {
            assert_eq!(EccScheme::parse(s.name()), Some(s));
        }
        assert_eq!(EccScheme::parse("hamming"), None);
    }
}
