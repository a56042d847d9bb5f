//! Even parity: one check bit per codeword, `c_0 = d_0 ⊕ … ⊕ d_{k−1}` (H is one row of ones, docs/ecc.md).
//! Every odd number of errors gives syndrome 1 and is detected; every even number (2, 4, …) gives syndrome 0 and
//! passes silently. Nothing is corrected.
use super::code::Code;
use crate::config::EccScheme;

/// The `(k+1, k)` even-parity code, `1 ≤ k ≤ 64`.
pub fn parity(k: u32) -> Code {
    assert!((1..=64).contains(&k), "parity data bits {k}");
    Code::from_columns(EccScheme::Parity, 1, vec![1u16; k as usize], false)
}
