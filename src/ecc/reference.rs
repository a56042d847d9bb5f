//! Slow, obviously-right reference codes for the tests: the parity-check matrix H written out bit by bit
//! (`h[j][i]` = row j, column i), encoding and decoding by literal GF(2) matrix arithmetic, built from the
//! definitions in the scheme modules' docs without any of the bit-packed code paths.

/// An explicit `r × n` parity-check matrix in systematic form `[A | I]`, and whether it corrects.
pub struct RefCode {
    pub k: usize,
    pub r: usize,
    pub h: Vec<Vec<u8>>,
    pub correct: bool,
}

fn bits_of(v: usize, r: usize) -> Vec<u8> {
    (0..r).map(|j| ((v >> j) & 1) as u8).collect()
}

impl RefCode {
    /// Hsiao: data columns = the odd-weight (≥ 3) r-bit vectors, lightest first, numeric order within a weight;
    /// r = the smallest with enough of them (2^(r−1) − r ≥ k); then the r unit columns of the check bits.
    pub fn hsiao(k: usize) -> RefCode {
        let mut r = 2;
        loop {
            let odd3 = (0..1usize << r)
                .filter(|&v| {
                    let w: u8 = bits_of(v, r).iter().sum();
                    w >= 3 && w % 2 == 1
                })
                .count();
            if odd3 >= k {
                break;
            }
            r += 1;
        }
        let mut cols: Vec<Vec<u8>> = Vec::new();
        for weight in (3..=r).step_by(2) {
            for v in 0..1usize << r {
                let b = bits_of(v, r);
                if b.iter().map(|&x| x as usize).sum::<usize>() == weight {
                    cols.push(b);
                }
            }
        }
        cols.truncate(k);
        Self::with_data_columns(k, r, cols, true)
    }

    /// Even parity: one row of n ones.
    pub fn parity(k: usize) -> RefCode {
        Self::with_data_columns(k, 1, vec![vec![1]; k], false)
    }

    fn with_data_columns(k: usize, r: usize, cols: Vec<Vec<u8>>, correct: bool) -> RefCode {
        assert_eq!(cols.len(), k);
        let mut h = vec![vec![0u8; k + r]; r];
        for (i, c) in cols.iter().enumerate() {
            for j in 0..r {
                h[j][i] = c[j];
            }
        }
        for j in 0..r {
            h[j][k + j] = 1;
        }
        RefCode { k, r, h, correct }
    }

    pub fn n(&self) -> usize {
        self.k + self.r
    }

    pub fn column(&self, i: usize) -> Vec<u8> {
        (0..self.r).map(|j| self.h[j][i]).collect()
    }

    /// The codeword of `data` (k bits): data bits, then check bit j = Σ_i h[j][i]·d_i mod 2.
    pub fn encode(&self, data: &[u8]) -> Vec<u8> {
        let mut c = data.to_vec();
        for j in 0..self.r {
            let mut s = 0u8;
            for i in 0..self.k {
                s ^= self.h[j][i] & data[i];
            }
            c.push(s);
        }
        c
    }

    /// H·c over GF(2).
    pub fn syndrome(&self, word: &[u8]) -> Vec<u8> {
        (0..self.r)
            .map(|j| (0..self.n()).fold(0u8, |s, i| s ^ (self.h[j][i] & word[i])))
            .collect()
    }

    /// Decodes a read word: `(delivered data bits, detected)`. Syndrome zero: as read; equal to column i of a
    /// correcting code: bit i flipped; otherwise detected (data as read).
    pub fn decode(&self, word: &[u8]) -> (Vec<u8>, bool) {
        let s = self.syndrome(word);
        let mut w = word.to_vec();
        if s.iter().all(|&b| b == 0) {
            return (w[..self.k].to_vec(), false);
        }
        if self.correct {
            if let Some(i) = (0..self.n()).find(|&i| self.column(i) == s) {
                w[i] ^= 1;
                return (w[..self.k].to_vec(), false);
            }
        }
        (w[..self.k].to_vec(), true)
    }
}

/// Bits 0..k of `v`, LSB first.
pub fn to_bits(v: u64, k: usize) -> Vec<u8> {
    (0..k).map(|i| ((v >> i) & 1) as u8).collect()
}

/// The integer of LSB-first bits.
pub fn from_bits(b: &[u8]) -> u64 {
    b.iter()
        .enumerate()
        .fold(0u64, |acc, (i, &x)| acc | ((x as u64) << i))
}
