//! Error-correcting codes on the weight SRAM's words (docs/ecc.md): what a read of a word with bit errors
//! delivers when the word is stored with check bits.
//!
//! * [`Code`]: a systematic linear code with a syndrome-table decoder (encode, syndrome, decode, and the exact
//!   outcome of any error pattern: clean, corrected, detected, silent);
//! * [`parity::parity`]: even parity, `(k+1, k)`;
//! * [`secded::secded`]: Hsiao SEC-DED, `(72,64)`, `(39,32)`, `(22,16)`;
//! * [`EccLayout`]: where each codeword's data and check bits sit in an array row, with bit interleaving.
//!
//! The fault side (which stored bits read wrong, per codeword, from a profile or from uniform errors) is in
//! `sram::ecc_faults`.
pub mod code;
pub mod layout;
pub mod parity;
pub mod secded;

#[cfg(test)]
pub(crate) mod reference;
#[cfg(test)]
mod tests;

pub use code::{Action, Code, Decoded, Outcome};
pub use layout::{code_for, EccLayout};

/// Per-codeword outcome counts of one read of the weights (`run --json`: `ecc_corrected_words`, …). Only
/// codewords holding at least one weight bit are counted; clean codewords are not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EccCounts {
    /// Codewords with read errors whose data the decoder restored.
    pub corrected: u64,
    /// Codewords flagged uncorrectable (the DUE policy applied).
    pub detected: u64,
    /// Codewords delivered with wrong data and no flag (undetected or miscorrected).
    pub silent: u64,
}

impl EccCounts {
    /// Adds one codeword's outcome.
    pub fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Clean => {}
            Outcome::Corrected => self.corrected += 1,
            Outcome::Detected => self.detected += 1,
            Outcome::Silent => self.silent += 1,
        }
    }
}
