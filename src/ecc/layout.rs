//! Where the bits of each codeword sit in a physical array row (docs/ecc.md, "Layout and interleaving").
//!
//! A data row of `C` columns (`[weight_sram] columns`, as the weight mapping sees it) holds `Q = C / k` codewords:
//! codeword `q` protects data columns `q·k .. q·k + k` (word `q·k / word_bits` of the row). The physical array is
//! wider: `C + Q·r` columns, the data region (columns `0..Q·k`) followed by the check region (`Q·k..Q·(k+r)`).
//! With interleaving degree `d` (`interleave`, 1 = none), codewords form groups of `d` consecutive ones
//! (`g = q div d`, lane `l = q mod d`) whose bits alternate column by column:
//!
//! * data bit `i` of codeword `q` → physical column `g·d·k + i·d + l`;
//! * check bit `j` of codeword `q` → physical column `Q·k + g·d·r + j·d + l`.
//!
//! So any `d` adjacent columns of a group belong to `d` different codewords, and with `d = 1` every data bit stays
//! in its unprotected column (`q·k + i`): a profile's data cells hit the same weight bits with and without ECC.
use super::code::Code;
use super::{parity, secded};
use crate::config::{EccScheme, WeightSramConfig};

/// The code of `scheme` with `k` data bits (`None` for no ECC).
pub fn code_for(scheme: EccScheme, k: u32) -> Option<Code> {
    match scheme {
        EccScheme::None => None,
        EccScheme::Parity => Some(parity::parity(k)),
        EccScheme::Secded => Some(secded::secded(k)),
    }
}

/// The codeword layout of one array row (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EccLayout {
    code: Code,
    word_bits: u32,
    data_columns: u32,
    codewords_per_row: u32,
    interleave: u32,
}

impl EccLayout {
    /// The layout of a validated `[weight_sram]` section; `None` when `ecc = "none"`.
    pub fn from_config(cfg: &WeightSramConfig) -> Option<EccLayout> {
        let code = code_for(cfg.ecc, cfg.ecc_data_bits)?;
        Some(EccLayout::new(
            code,
            cfg.word_bits,
            cfg.columns,
            cfg.interleave,
        ))
    }

    /// `data_columns` a multiple of `code.k()`, `code.k()` a divisor of `word_bits`, `interleave` a divisor of the
    /// codewords per row (the config validator's rules; panics otherwise).
    pub fn new(code: Code, word_bits: u32, data_columns: u32, interleave: u32) -> EccLayout {
        let k = code.k();
        assert!(
            word_bits.is_multiple_of(k) && data_columns.is_multiple_of(word_bits),
            "layout: k={k}, word_bits={word_bits}, columns={data_columns}"
        );
        let q = data_columns / k;
        assert!(
            interleave >= 1 && q.is_multiple_of(interleave),
            "interleave {interleave} for {q} codewords"
        );
        EccLayout {
            code,
            word_bits,
            data_columns,
            codewords_per_row: q,
            interleave,
        }
    }

    pub fn code(&self) -> &Code {
        &self.code
    }
    /// Codewords per data row (`Q`).
    pub fn codewords_per_row(&self) -> u32 {
        self.codewords_per_row
    }
    /// Codewords per word (`word_bits / k`).
    pub fn codewords_per_word(&self) -> u32 {
        self.word_bits / self.code.k()
    }
    pub fn interleave(&self) -> u32 {
        self.interleave
    }
    /// Data columns of a row (`Q·k`).
    pub fn data_columns(&self) -> u32 {
        self.data_columns
    }
    /// Physical columns of a row (`Q·(k + r)`).
    pub fn physical_columns(&self) -> u32 {
        self.codewords_per_row * self.code.n()
    }

    /// Physical column of codeword bit `i` (`0..n`; data bits first) of codeword `q` (`0..Q`) of a row.
    pub fn physical_column(&self, q: u32, i: u32) -> u32 {
        let (k, r, d) = (self.code.k(), self.code.r(), self.interleave);
        let (g, l) = (q / d, q % d);
        if i < k {
            g * d * k + i * d + l
        } else {
            self.data_columns + g * d * r + (i - k) * d + l
        }
    }

    /// Inverse of [`physical_column`](Self::physical_column): `(q, i)` of a physical column, `None` past the row.
    pub fn locate(&self, column: u32) -> Option<(u32, u32)> {
        let (k, r, d) = (self.code.k(), self.code.r(), self.interleave);
        if column < self.data_columns {
            let (g, rem) = (column / (d * k), column % (d * k));
            Some((g * d + rem % d, rem / d))
        } else if column < self.physical_columns() {
            let c = column - self.data_columns;
            let (g, rem) = (c / (d * r), c % (d * r));
            Some((g * d + rem % d, k + rem / d))
        } else {
            None
        }
    }
}
