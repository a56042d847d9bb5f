//! A binary systematic linear block code with a syndrome-table decoder, the common core of [`super::parity`] and
//! [`super::secded`] (docs/ecc.md, "Codes").
//!
//! A codeword has `n = k + r` bits, numbered data bits `0..k` (word bits, LSB first) then check bits `k..n`. The
//! parity-check matrix is `H = [A | I_r]` (r × n): check bit `j` stores `c_j = parity(d & row_j)`, so `H·c = 0`
//! for every stored codeword. A read `c ⊕ e` has syndrome `s = H·(c ⊕ e) = H·e`, which depends only on the error
//! pattern `e`. The decoder looks `s` up in a table of 2^r actions: `s = 0` → accept the word as read; `s` equal
//! to column `i` of H (a correcting code only) → flip bit `i`; any other `s` → detected uncorrectable (DUE).
//! Errors the code cannot handle are decoded exactly as the hardware does: a pattern with `s = 0` is accepted
//! (undetected), a pattern whose syndrome equals some column is "corrected" at the wrong position (miscorrected).
use crate::config::EccScheme;

/// What the decoder does for one syndrome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Syndrome 0: the word is used as read.
    Accept,
    /// The syndrome equals column `i` of H: flip codeword bit `i` (a data bit if `i < k`).
    Flip(u8),
    /// Detected uncorrectable error.
    Detect,
}

/// The outcome of reading one codeword, from the stored data's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// No bit of the codeword read wrong.
    Clean,
    /// Some bits read wrong and the decoder delivered the stored data (a corrected single error, in a data or a
    /// check bit).
    Corrected,
    /// The decoder flagged the word as uncorrectable (the DUE policy applies).
    Detected,
    /// The decoder delivered wrong data without a flag: undetected (syndrome 0) or miscorrected.
    Silent,
}

/// Outcome of one codeword and the data bits still wrong after decoding (`residual`, a mask over the k data bits;
/// for `Detected` the raw data error, which the `keep` policy passes on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub outcome: Outcome,
    pub residual: u64,
}

/// A systematic linear code with `k ≤ 64` data bits and `r ≤ 16` check bits (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    scheme: EccScheme,
    k: u32,
    r: u32,
    /// Row `j` of `A` as a mask over the data bits.
    rows: Vec<u64>,
    /// Column `i` of `H` for the data bits `i < k` (check bit `j` has column `1 << j`).
    data_columns: Vec<u16>,
    /// Decoder action per syndrome (2^r entries).
    table: Vec<Action>,
}

impl Code {
    /// The code whose data bit `i` has H-column `data_columns[i]` (r-bit vectors). With `correct`, every syndrome
    /// equal to a column of H flips that bit (single-error correction); without, every nonzero syndrome is a DUE.
    /// Callers guarantee `k = data_columns.len() ≤ 64`, `1 ≤ r ≤ 16` and columns below `2^r`.
    pub(crate) fn from_columns(
        scheme: EccScheme,
        r: u32,
        data_columns: Vec<u16>,
        correct: bool,
    ) -> Code {
        let k = data_columns.len() as u32;
        assert!(k <= 64 && (1..=16).contains(&r), "code shape k={k}, r={r}");
        let mut rows = vec![0u64; r as usize];
        for (i, &col) in data_columns.iter().enumerate() {
            assert!(
                (col as u32) < (1u32 << r),
                "column {col:#x} exceeds {r} bits"
            );
            for (j, row) in rows.iter_mut().enumerate() {
                if (col >> j) & 1 == 1 {
                    *row |= 1u64 << i;
                }
            }
        }
        let mut table = vec![Action::Detect; 1usize << r];
        table[0] = Action::Accept;
        if correct {
            for (i, &col) in data_columns.iter().enumerate() {
                table[col as usize] = Action::Flip(i as u8);
            }
            for j in 0..r {
                table[1usize << j] = Action::Flip((k + j) as u8);
            }
        }
        Code {
            scheme,
            k,
            r,
            rows,
            data_columns,
            table,
        }
    }

    pub fn scheme(&self) -> EccScheme {
        self.scheme
    }
    /// Data bits per codeword.
    pub fn k(&self) -> u32 {
        self.k
    }
    /// Check bits per codeword.
    pub fn r(&self) -> u32 {
        self.r
    }
    /// Codeword length `k + r`.
    pub fn n(&self) -> u32 {
        self.k + self.r
    }
    /// `scheme(n,k)`, e.g. `secded(72,64)`.
    pub fn name(&self) -> String {
        format!("{}({},{})", self.scheme.name(), self.n(), self.k)
    }

    /// Mask of the `k` data bits.
    pub fn data_mask(&self) -> u64 {
        if self.k == 64 {
            u64::MAX
        } else {
            (1u64 << self.k) - 1
        }
    }

    /// Column `i` of H (`i < n`): an r-bit vector.
    pub fn column(&self, i: u32) -> u16 {
        if i < self.k {
            self.data_columns[i as usize]
        } else {
            1u16 << (i - self.k)
        }
    }

    /// The check bits of `data` (bit `j` = check bit `j`): `c_j = parity(data & row_j)`.
    #[inline]
    pub fn encode(&self, data: u64) -> u16 {
        let mut c = 0u16;
        for (j, &row) in self.rows.iter().enumerate() {
            c |= (((data & row).count_ones() & 1) as u16) << j;
        }
        c
    }

    /// Syndrome of a read word: `encode(data) ⊕ check` (= `H·[data | check]`).
    #[inline]
    pub fn syndrome(&self, data: u64, check: u16) -> u16 {
        self.encode(data & self.data_mask()) ^ check
    }

    /// The decoder's action for a syndrome.
    #[inline]
    pub fn action(&self, syndrome: u16) -> Action {
        self.table[syndrome as usize]
    }

    /// Decodes a read word as the hardware does: returns the delivered data and the action taken.
    pub fn decode(&self, data: u64, check: u16) -> (u64, Action) {
        let data = data & self.data_mask();
        let a = self.action(self.syndrome(data, check));
        match a {
            Action::Flip(i) if (i as u32) < self.k => (data ^ (1u64 << i), a),
            _ => (data, a),
        }
    }

    /// Outcome of a read whose error pattern is `e_data` (data bits) and `e_check` (check bits). Exact for every
    /// pattern, since the syndrome of a linear code depends only on the error: `s = encode(e_data) ⊕ e_check`.
    #[inline]
    pub fn classify(&self, e_data: u64, e_check: u16) -> Decoded {
        let e_data = e_data & self.data_mask();
        if e_data == 0 && e_check == 0 {
            return Decoded {
                outcome: Outcome::Clean,
                residual: 0,
            };
        }
        match self.action(self.syndrome(e_data, e_check)) {
            Action::Detect => Decoded {
                outcome: Outcome::Detected,
                residual: e_data,
            },
            Action::Accept => Decoded {
                outcome: Outcome::Silent,
                residual: e_data,
            },
            Action::Flip(i) => {
                let residual = if (i as u32) < self.k {
                    e_data ^ (1u64 << i)
                } else {
                    e_data
                };
                Decoded {
                    outcome: if residual == 0 {
                        Outcome::Corrected
                    } else {
                        Outcome::Silent
                    },
                    residual,
                }
            }
        }
    }

    /// Two-input gates of the encoder: one XOR tree per check bit over its data bits, `Σ_j (|row_j| − 1)`.
    pub fn encoder_gates(&self) -> u32 {
        self.rows
            .iter()
            .map(|r| r.count_ones().saturating_sub(1))
            .sum()
    }

    /// Two-input gates of the decoder (docs/ecc.md, "Costs"): the syndrome (an XOR tree per check bit over its data
    /// bits and the stored check bit, `Σ_j |row_j|`), the error flags (an OR tree over the syndrome, plus for a
    /// correcting code an XOR tree for its parity), and for a correcting code one r-input AND per data bit
    /// (`k·(r−1)`) and one XOR per data bit to flip it.
    pub fn decoder_gates(&self) -> u32 {
        let syndrome: u32 = self.rows.iter().map(|r| r.count_ones()).sum();
        let flags = self.r - 1;
        let correct = self.table.iter().any(|a| matches!(a, Action::Flip(_)));
        if correct {
            syndrome + 2 * flags + self.k * (self.r - 1) + self.k
        } else {
            syndrome + flags
        }
    }
}
