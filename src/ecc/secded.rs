//! Hsiao single-error-correcting, double-error-detecting codes (M. Y. Hsiao, "A class of optimal minimum
//! odd-weight-column SEC-DED codes", IBM J. Res. Dev. 14(4), 1970; docs/ecc.md).
//!
//! Every column of H has odd weight and all columns are distinct: the check bits have the unit columns, data bit
//! `i` the `i`-th r-bit vector of odd weight ≥ 3 in the order (weight, numeric value) — all weight-3 vectors
//! first, then weight 5, …, which minimises the number of ones in H (the encoder's and decoder's XOR gates).
//! Hence:
//! * one error: the syndrome is that bit's column, which is unique → corrected;
//! * two errors: the syndrome is the sum of two odd-weight columns, of even weight and nonzero → detected;
//! * three or more: the syndrome may be 0 (undetected), equal another column (miscorrected) or neither (detected).
//!
//! `r` is the smallest number of check bits with `2^(r−1) − r ≥ k` odd-weight columns to spare: (72,64), (39,32),
//! (22,16).
use super::code::Code;
use crate::config::{ecc::check_bits, EccScheme};

/// The Hsiao `(k+r, k)` code, `4 ≤ k ≤ 64`.
pub fn secded(k: u32) -> Code {
    assert!((4..=64).contains(&k), "SECDED data bits {k}");
    let r = check_bits(EccScheme::Secded, k);
    let mut columns: Vec<u16> = (0u16..(1u16 << r))
        .filter(|c| c.count_ones() >= 3 && c.count_ones() % 2 == 1)
        .collect();
    columns.sort_by_key(|c| (c.count_ones(), *c));
    columns.truncate(k as usize);
    assert_eq!(columns.len(), k as usize, "too few odd-weight columns");
    Code::from_columns(EccScheme::Secded, r, columns, true)
}
