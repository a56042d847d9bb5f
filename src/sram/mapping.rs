//! Mapping quantized weight bits to physical SRAM bit cells (docs/hw-config.md, "Weight-to-cell mapping").
//!
//! The weights (all tensors in manifest order, one m-bit code per element) fill **slots** of m bits; a word of
//! `word_bits` holds `k = floor(word_bits / m)` slots and a weight never straddles two words. Element `e` is in
//! slot `s = (e + offset_slots) mod C` with `C = k * W` slots in a memory of `W` words, so a model larger than the
//! memory wraps around: element `e` and `e + C` share cells (successive tiles reuse the same cells). Slot `s` is
//! slot `s mod k` of word `s div k`, and bit `j` (LSB = 0) of the weight is word bit `(s mod k)*m + j`. Word
//! placement follows [`Mapping`](crate::config::Mapping): linear (array by array, row by row) or bank-interleaved.
use super::SramError;
use crate::config::{Mapping, WeightSramConfig};

/// Physical address of one bit cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellAddr {
    /// Global array index (`bank * arrays_per_bank + array_in_bank`).
    pub array: u32,
    pub row: u32,
    pub column: u32,
}

/// Where a model's weight bits live in the weight SRAM. Cheap to copy; all queries are O(1) (plus the tiles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightMapping {
    banks: u64,
    arrays_per_bank: u64,
    rows: u64,
    columns: u64,
    word_bits: u64,
    words_per_row: u64,
    words_per_array: u64,
    total_words: u64,
    policy: Mapping,
    bits: u8,
    slots_per_word: u64,
    capacity_slots: u64,
    offset_slots: u64,
    n_elements: u64,
}

impl WeightMapping {
    /// Builds the mapping of `n_elements` codes of `bits` bits (1..=32) starting `offset_bits` into the memory.
    /// `offset_bits` must be a multiple of `bits`, below the memory size (it selects slot `offset_bits / bits`).
    pub fn new(
        cfg: &WeightSramConfig,
        bits: u8,
        n_elements: u64,
        offset_bits: u64,
    ) -> Result<WeightMapping, SramError> {
        let word_bits = cfg.word_bits as u64;
        if bits == 0 || bits > 32 || bits as u64 > word_bits {
            return Err(SramError::Mapping(format!(
                "weight width {bits} bits is out of range; allowed 1..={} (32 and the word width)",
                word_bits.min(32)
            )));
        }
        if cfg.word_bits == 0
            || !cfg.columns.is_multiple_of(cfg.word_bits)
            || cfg.rows == 0
            || cfg.banks == 0
        {
            return Err(SramError::Mapping(
                "invalid weight_sram geometry (validate the hardware config first)".into(),
            ));
        }
        let total_bits = cfg.total_bits();
        if offset_bits >= total_bits || !offset_bits.is_multiple_of(bits as u64) {
            return Err(SramError::Mapping(format!(
                "offset_bits = {offset_bits} is out of range; allowed multiples of the weight width {bits} \
                 in 0..{total_bits}"
            )));
        }
        let words_per_row = (cfg.columns / cfg.word_bits) as u64;
        let words_per_array = words_per_row * cfg.rows as u64;
        let total_words = words_per_array * cfg.arrays();
        let slots_per_word = word_bits / bits as u64;
        let capacity_slots = slots_per_word * total_words;
        Ok(WeightMapping {
            banks: cfg.banks as u64,
            arrays_per_bank: cfg.arrays_per_bank as u64,
            rows: cfg.rows as u64,
            columns: cfg.columns as u64,
            word_bits,
            words_per_row,
            words_per_array,
            total_words,
            policy: cfg.mapping,
            bits,
            slots_per_word,
            capacity_slots,
            offset_slots: (offset_bits / bits as u64) % capacity_slots,
            n_elements,
        })
    }

    /// Bits per weight (m).
    pub fn bits(&self) -> u8 {
        self.bits
    }
    /// Number of mapped elements.
    pub fn n_elements(&self) -> u64 {
        self.n_elements
    }
    /// Weights per word (`floor(word_bits / m)`).
    pub fn slots_per_word(&self) -> u64 {
        self.slots_per_word
    }
    /// Weights the memory holds at once (`slots_per_word * words`).
    pub fn capacity_elements(&self) -> u64 {
        self.capacity_slots
    }
    /// Number of tiles the model occupies (1 if it fits; successive tiles share cells).
    pub fn tiles(&self) -> u64 {
        (self.n_elements + self.offset_slots)
            .div_ceil(self.capacity_slots)
            .max(1)
    }
    /// Number of arrays.
    pub fn arrays(&self) -> u64 {
        self.banks * self.arrays_per_bank
    }
    /// Rows per array.
    pub fn rows(&self) -> u32 {
        self.rows as u32
    }
    /// Columns per array.
    pub fn columns(&self) -> u32 {
        self.columns as u32
    }
    /// Words in the memory (`W`).
    pub fn total_words(&self) -> u64 {
        self.total_words
    }
    /// Bits per word.
    pub fn word_bits(&self) -> u64 {
        self.word_bits
    }
    /// Words per array row.
    pub fn words_per_row(&self) -> u64 {
        self.words_per_row
    }
    /// Slot of element 0 (`offset_bits / m`, modulo the capacity).
    pub fn offset_slots(&self) -> u64 {
        self.offset_slots
    }
    /// Word index (placement order, `0..W`) stored at word `word_in_row` of `row` of `array`; the inverse of the
    /// placement policy. Arguments must be in range.
    pub fn word_index_at(&self, array: u64, row: u64, word_in_row: u64) -> u64 {
        self.word_at(array, row, word_in_row)
    }
    /// Total cells.
    pub fn total_cells(&self) -> u64 {
        self.arrays() * self.rows * self.columns
    }

    /// Bank of a global array index.
    pub fn bank_of(&self, addr: CellAddr) -> u32 {
        (addr.array as u64 / self.arrays_per_bank) as u32
    }

    /// Dense cell index `(array * rows + row) * columns + column` (the order of fault-profile cells).
    pub fn cell_index(&self, addr: CellAddr) -> u64 {
        (addr.array as u64 * self.rows + addr.row as u64) * self.columns + addr.column as u64
    }

    /// Inverse of [`cell_index`](Self::cell_index); `None` when out of range.
    pub fn addr_of_index(&self, index: u64) -> Option<CellAddr> {
        if index >= self.total_cells() {
            return None;
        }
        let column = index % self.columns;
        let r = index / self.columns;
        Some(CellAddr {
            array: (r / self.rows) as u32,
            row: (r % self.rows) as u32,
            column: column as u32,
        })
    }

    /// Physical (array, row, word-in-row) of word `w` under the placement policy.
    fn word_location(&self, w: u64) -> (u64, u64, u64) {
        let (array, within) = match self.policy {
            Mapping::Linear => (w / self.words_per_array, w % self.words_per_array),
            Mapping::BankInterleaved => {
                let bank = w % self.banks;
                let wb = w / self.banks;
                (
                    bank * self.arrays_per_bank + wb / self.words_per_array,
                    wb % self.words_per_array,
                )
            }
        };
        (
            array,
            within / self.words_per_row,
            within % self.words_per_row,
        )
    }

    /// Inverse of `word_location`.
    fn word_at(&self, array: u64, row: u64, word_in_row: u64) -> u64 {
        let within = row * self.words_per_row + word_in_row;
        match self.policy {
            Mapping::Linear => array * self.words_per_array + within,
            Mapping::BankInterleaved => {
                let bank = array / self.arrays_per_bank;
                let wb = (array % self.arrays_per_bank) * self.words_per_array + within;
                wb * self.banks + bank
            }
        }
    }

    /// The cell holding bit `bit` (LSB = 0) of element `element`; `None` if either is out of range.
    pub fn cell_of(&self, element: u64, bit: u8) -> Option<CellAddr> {
        if element >= self.n_elements || bit >= self.bits {
            return None;
        }
        let s = (element % self.capacity_slots + self.offset_slots) % self.capacity_slots;
        let w = s / self.slots_per_word;
        let b = (s % self.slots_per_word) * self.bits as u64 + bit as u64;
        let (array, row, wr) = self.word_location(w);
        Some(CellAddr {
            array: array as u32,
            row: row as u32,
            column: (wr * self.word_bits + b) as u32,
        })
    }

    /// Every (element, bit) stored in `addr`, one per tile, in increasing element order. Empty for an unused
    /// cell (word bits beyond `k * m`, or slots no element reaches).
    pub fn bits_at(&self, addr: CellAddr) -> BitsAt {
        let empty = BitsAt {
            next: 0,
            step: 1,
            end: 0,
            bit: 0,
        };
        if addr.array as u64 >= self.arrays()
            || addr.row as u64 >= self.rows
            || addr.column as u64 >= self.columns
        {
            return empty;
        }
        let wr = addr.column as u64 / self.word_bits;
        let b = addr.column as u64 % self.word_bits;
        let slot_in_word = b / self.bits as u64;
        if slot_in_word >= self.slots_per_word {
            return empty;
        }
        let w = self.word_at(addr.array as u64, addr.row as u64, wr);
        let s = w * self.slots_per_word + slot_in_word;
        let first = (s + self.capacity_slots - self.offset_slots) % self.capacity_slots;
        BitsAt {
            next: first,
            step: self.capacity_slots,
            end: self.n_elements,
            bit: (b % self.bits as u64) as u8,
        }
    }
}

/// Iterator over the (element, bit) pairs stored in one cell (see [`WeightMapping::bits_at`]).
#[derive(Debug, Clone)]
pub struct BitsAt {
    next: u64,
    step: u64,
    end: u64,
    bit: u8,
}

impl Iterator for BitsAt {
    type Item = (u64, u8);
    fn next(&mut self) -> Option<(u64, u8)> {
        if self.next >= self.end {
            return None;
        }
        let e = self.next;
        self.next = self.next.saturating_add(self.step);
        Some((e, self.bit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn cfg(
        banks: u32,
        apb: u32,
        rows: u32,
        columns: u32,
        word_bits: u32,
        mapping: Mapping,
    ) -> WeightSramConfig {
        WeightSramConfig {
            banks,
            arrays_per_bank: apb,
            rows,
            columns,
            word_bits,
            mapping,
            offset_bits: 0,
            ecc: Default::default(),
            ecc_data_bits: 64,
            interleave: 1,
            due: Default::default(),
            ecc_decoder_latency_cycles: 1,
        }
    }

    /// Obviously-right reference: enumerate the memory word by word in placement order, fill slots in order.
    fn reference_cell(
        c: &WeightSramConfig,
        bits: u64,
        element: u64,
        bit: u64,
        offset_slots: u64,
    ) -> CellAddr {
        let k = c.word_bits as u64 / bits;
        let wpr = (c.columns / c.word_bits) as u64;
        let mut words = Vec::new(); // (array, row, word_in_row) in placement order
        match c.mapping {
            Mapping::Linear => {
                for a in 0..c.arrays() {
                    for r in 0..c.rows as u64 {
                        for x in 0..wpr {
                            words.push((a, r, x));
                        }
                    }
                }
            }
            Mapping::BankInterleaved => {
                let per_bank = c.arrays_per_bank as u64 * c.rows as u64 * wpr;
                for i in 0..per_bank {
                    for bank in 0..c.banks as u64 {
                        let a = bank * c.arrays_per_bank as u64 + i / (c.rows as u64 * wpr);
                        let r = (i / wpr) % c.rows as u64;
                        words.push((a, r, i % wpr));
                    }
                }
            }
        }
        let cap = k * words.len() as u64;
        let s = (element + offset_slots) % cap;
        let (a, r, x) = words[(s / k) as usize];
        CellAddr {
            array: a as u32,
            row: r as u32,
            column: (x * c.word_bits as u64 + (s % k) * bits + bit) as u32,
        }
    }

    #[test]
    fn paper_chip_packing() {
        let c = cfg(4, 8, 512, 64, 64, Mapping::Linear);
        let m8 = WeightMapping::new(&c, 8, 100, 0).unwrap();
        assert_eq!(m8.slots_per_word(), 8);
        assert_eq!(m8.capacity_elements(), 32 * 512 * 8);
        let m4 = WeightMapping::new(&c, 4, 100, 0).unwrap();
        assert_eq!(m4.slots_per_word(), 16);
        // Element 9, bit 3 of 8-bit weights: word 1 (row 1 of array 0), slot 1 -> column 11.
        assert_eq!(
            m8.cell_of(9, 3),
            Some(CellAddr {
                array: 0,
                row: 1,
                column: 11
            })
        );
        assert_eq!(m8.cell_of(100, 0), None);
        assert_eq!(m8.cell_of(0, 8), None);
        let m3 = WeightMapping::new(&c, 3, 100, 0).unwrap();
        assert_eq!(m3.slots_per_word(), 21);
        assert_eq!(
            m3.bits_at(CellAddr {
                array: 0,
                row: 0,
                column: 63
            })
            .count(),
            0
        );
        assert!(WeightMapping::new(&c, 8, 1, 4).is_err());
        assert!(WeightMapping::new(&c, 0, 1, 0).is_err());
    }

    #[test]
    fn large_model_wraps_onto_same_cells() {
        let c = cfg(1, 2, 4, 16, 8, Mapping::Linear);
        let m = WeightMapping::new(&c, 8, 40, 0).unwrap();
        assert_eq!(m.capacity_elements(), 16);
        assert_eq!(m.tiles(), 3);
        let cell = m.cell_of(3, 5).unwrap();
        assert_eq!(m.cell_of(19, 5), Some(cell));
        assert_eq!(m.cell_of(35, 5), Some(cell));
        assert_eq!(
            m.bits_at(cell).collect::<Vec<_>>(),
            vec![(3, 5), (19, 5), (35, 5)]
        );
    }

    fn arb_case() -> impl Strategy<Value = (WeightSramConfig, u8, u64, u64)> {
        (
            1u32..4,
            1u32..4,
            1u32..5,
            prop_oneof![Just(8u32), Just(16), Just(12)],
            prop_oneof![Just(1u32), Just(2)],
            any::<bool>(),
            1u8..=8,
            0u64..300,
            0u64..1000,
        )
            .prop_filter_map("word too narrow", |(b, a, r, wb, wpr, il, bits, n, off)| {
                if bits as u32 > wb {
                    return None;
                }
                let mapping = if il {
                    Mapping::BankInterleaved
                } else {
                    Mapping::Linear
                };
                let c = cfg(b, a, r, wb * wpr, wb, mapping);
                let off_bits = (off % (c.total_bits() / bits as u64)) * bits as u64;
                Some((c, bits, n, off_bits))
            })
    }

    proptest! {
        #[test]
        fn matches_reference_and_round_trips((c, bits, n, off) in arb_case()) {
            let m = WeightMapping::new(&c, bits, n, off).unwrap();
            let mut from_forward: BTreeSet<(u64, u64, u8)> = BTreeSet::new();
            for e in 0..n {
                for j in 0..bits {
                    let cell = m.cell_of(e, j).unwrap();
                    prop_assert_eq!(cell, reference_cell(&c, bits as u64, e, j as u64, off / bits as u64));
                    prop_assert_eq!(m.addr_of_index(m.cell_index(cell)), Some(cell));
                    prop_assert!(m.bits_at(cell).any(|x| x == (e, j)));
                    from_forward.insert((m.cell_index(cell), e, j));
                }
            }
            // Reverse direction over every cell gives exactly the same set of (cell, element, bit).
            let mut from_reverse = BTreeSet::new();
            for idx in 0..m.total_cells() {
                let cell = m.addr_of_index(idx).unwrap();
                for (e, j) in m.bits_at(cell) {
                    prop_assert_eq!(m.cell_of(e, j), Some(cell));
                    from_reverse.insert((idx, e, j));
                }
            }
            prop_assert_eq!(from_forward, from_reverse);
        }
    }
}
