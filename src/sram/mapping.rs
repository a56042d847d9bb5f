//! Mapping quantized weight bits to physical SRAM bit cells (docs/hw-config.md, "Weight-to-cell mapping").
//!
//! The weights (all tensors in manifest order, one m-bit code per element) fill **slots** of `t` bits, where
//! `t = m` with dense packing and `t = 8·ceil(m/8)` with byte packing ([`Packing`](crate::config::Packing)); a word of `word_bits` holds
//! `k = floor(word_bits / t)` slots and a weight never straddles two words. Element `e` is in slot
//! `s = (e + offset_slots) mod C` with `C = k * W` slots in a memory of `W` words, so a model larger than the
//! memory wraps around: element `e` and `e + C` share cells (successive tiles reuse the same cells). Slot `s` is
//! slot `s mod k` of word `s div k`, and bit `j` (LSB = 0) of the weight is word bit `(s mod k)*t + j`; word bits
//! `(s mod k)*t + m .. (s mod k + 1)*t` (byte packing) and `k*t .. word_bits` hold no weight bit. Word placement
//! follows [`Mapping`](crate::config::Mapping): linear (array by array, row by row) or bank-interleaved.
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
    /// Bits per slot (`t`): the code width (dense) or its byte container (byte).
    slot_bits: u64,
    slots_per_word: u64,
    capacity_slots: u64,
    offset_slots: u64,
    n_elements: u64,
}

impl WeightMapping {
    /// Builds the mapping of `n_elements` codes of `bits` bits (1..=32) starting `offset_bits` into the memory,
    /// packed as `cfg.packing` says. `offset_bits` must be a multiple of the slot width `t` (`bits` when dense,
    /// `8·ceil(bits/8)` for byte packing), below the memory size (it selects slot `offset_bits / t`).
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
        let slot_bits = cfg.packing.slot_bits(bits as u32) as u64;
        if slot_bits > word_bits {
            return Err(SramError::Mapping(format!(
                "a {bits}-bit code in {}-bit {} slots does not fit a {word_bits}-bit word",
                slot_bits,
                cfg.packing.name()
            )));
        }
        let total_bits = cfg.total_bits();
        if offset_bits >= total_bits || !offset_bits.is_multiple_of(slot_bits) {
            return Err(SramError::Mapping(format!(
                "offset_bits = {offset_bits} is out of range; allowed multiples of the slot width {slot_bits} \
                 ({} packing of {bits}-bit codes) in 0..{total_bits}",
                cfg.packing.name()
            )));
        }
        let words_per_row = (cfg.columns / cfg.word_bits) as u64;
        let words_per_array = words_per_row * cfg.rows as u64;
        let total_words = words_per_array * cfg.arrays();
        let slots_per_word = word_bits / slot_bits;
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
            slot_bits,
            slots_per_word,
            capacity_slots,
            offset_slots: (offset_bits / slot_bits) % capacity_slots,
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
    /// Bits per slot (`t`: m for dense packing, `8·ceil(m/8)` for byte packing).
    pub fn slot_bits(&self) -> u64 {
        self.slot_bits
    }
    /// Weights per word (`floor(word_bits / t)`).
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
        let b = (s % self.slots_per_word) * self.slot_bits + bit as u64;
        let (array, row, wr) = self.word_location(w);
        Some(CellAddr {
            array: array as u32,
            row: row as u32,
            column: (wr * self.word_bits + b) as u32,
        })
    }

    /// Every (element, bit) stored in `addr`, one per tile, in increasing element order. Empty for an unused
    /// cell (word bits beyond `k * t`, the `t − m` upper bits of a byte-packed slot, or slots no element reaches).
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
        let slot_in_word = b / self.slot_bits;
        let bit_in_slot = b % self.slot_bits;
        if slot_in_word >= self.slots_per_word || bit_in_slot >= self.bits as u64 {
            return empty;
        }
        let w = self.word_at(addr.array as u64, addr.row as u64, wr);
        let s = w * self.slots_per_word + slot_in_word;
        let first = (s + self.capacity_slots - self.offset_slots) % self.capacity_slots;
        BitsAt {
            next: first,
            step: self.capacity_slots,
            end: self.n_elements,
            bit: bit_in_slot as u8,
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
    use crate::config::Packing;
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
            packing: Packing::Dense,
            offset_bits: 0,
            ecc: Default::default(),
            ecc_data_bits: 64,
            interleave: 1,
            due: Default::default(),
            ecc_decoder_latency_cycles: 1,
        }
    }

    /// Slot width of the reference, written out per case: m bits dense, whole bytes for byte packing.
    fn reference_slot_bits(packing: Packing, bits: u64) -> u64 {
        match packing {
            Packing::Dense => bits,
            Packing::Byte if bits <= 8 => 8,
            Packing::Byte if bits <= 16 => 16,
            Packing::Byte if bits <= 24 => 24,
            Packing::Byte => 32,
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
        let t = reference_slot_bits(c.packing, bits);
        let k = c.word_bits as u64 / t;
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
            column: (x * c.word_bits as u64 + (s % k) * t + bit) as u32,
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
    fn documented_cells_dense_and_byte() {
        // docs/hw-config.md#weight-to-cell-mapping: 3-bit codes, 64-bit words.
        let dense = cfg(4, 8, 512, 64, 64, Mapping::Linear);
        let byte = WeightSramConfig {
            packing: Packing::Byte,
            ..dense.clone()
        };
        let d3 = WeightMapping::new(&dense, 3, 1000, 0).unwrap();
        let b3 = WeightMapping::new(&byte, 3, 1000, 0).unwrap();
        assert_eq!((d3.slots_per_word(), d3.slot_bits()), (21, 3));
        assert_eq!((b3.slots_per_word(), b3.slot_bits()), (8, 8));
        let at = |row, column| CellAddr {
            array: 0,
            row,
            column,
        };
        // Dense: element 20 fills bits 60..62 of word 0, bit 63 is unused, element 21 starts word 1.
        assert_eq!(d3.cell_of(20, 2), Some(at(0, 62)));
        assert_eq!(d3.bits_at(at(0, 63)).count(), 0);
        assert_eq!(d3.cell_of(21, 0), Some(at(1, 0)));
        // Byte: element 9 is byte 1 of word 1 (bits 8..10); bits 11..15 of that byte hold nothing.
        assert_eq!(b3.cell_of(9, 2), Some(at(1, 10)));
        for column in 11..16 {
            assert_eq!(b3.bits_at(at(1, column)).count(), 0, "column {column}");
        }
        // At 8 bits both packings are the same mapping.
        let d8 = WeightMapping::new(&dense, 8, 1000, 0).unwrap();
        let b8 = WeightMapping::new(&byte, 8, 1000, 0).unwrap();
        for e in [0, 7, 8, 999] {
            assert_eq!(d8.cell_of(e, 5), b8.cell_of(e, 5));
        }
        // Byte packing needs byte-aligned offsets.
        assert!(WeightMapping::new(&byte, 3, 10, 3).is_err());
        assert!(WeightMapping::new(&byte, 3, 10, 64).is_ok());
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
            prop_oneof![Just(8u32), Just(16), Just(12), Just(64)],
            prop_oneof![Just(1u32), Just(2)],
            any::<bool>(),
            any::<bool>(),
            1u8..=12,
            0u64..300,
            0u64..1000,
        )
            .prop_filter_map(
                "word too narrow",
                |(b, a, r, wb, wpr, il, byte, bits, n, off)| {
                    let packing = if byte { Packing::Byte } else { Packing::Dense };
                    let t = reference_slot_bits(packing, bits as u64);
                    if t > wb as u64 {
                        return None;
                    }
                    let mapping = if il {
                        Mapping::BankInterleaved
                    } else {
                        Mapping::Linear
                    };
                    let c = WeightSramConfig {
                        packing,
                        ..cfg(b, a, r, wb * wpr, wb, mapping)
                    };
                    let off_bits = (off % (c.total_bits() / t)) * t;
                    Some((c, bits, n, off_bits))
                },
            )
    }

    proptest! {
        #[test]
        fn matches_reference_and_round_trips((c, bits, n, off) in arb_case()) {
            let m = WeightMapping::new(&c, bits, n, off).unwrap();
            let t = reference_slot_bits(c.packing, bits as u64);
            prop_assert_eq!(m.slot_bits(), t);
            let mut from_forward: BTreeSet<(u64, u64, u8)> = BTreeSet::new();
            for e in 0..n {
                let word_of = |cell: CellAddr| (cell.array, cell.row, cell.column / c.word_bits);
                let first = m.cell_of(e, 0).unwrap();
                for j in 0..bits {
                    let cell = m.cell_of(e, j).unwrap();
                    prop_assert_eq!(cell, reference_cell(&c, bits as u64, e, j as u64, off / t));
                    // No code spans two words; its bits are consecutive columns of one word.
                    prop_assert_eq!(word_of(cell), word_of(first));
                    prop_assert_eq!(cell.column, first.column + j as u32);
                    prop_assert_eq!(m.addr_of_index(m.cell_index(cell)), Some(cell));
                    prop_assert!(m.bits_at(cell).any(|x| x == (e, j)));
                    from_forward.insert((m.cell_index(cell), e, j));
                }
            }
            // Reverse direction over every cell gives exactly the same set of (cell, element, bit).
            let mut from_reverse = BTreeSet::new();
            for idx in 0..m.total_cells() {
                let cell = m.addr_of_index(idx).unwrap();
                // The documented unused cells hold no weight bit: word bits past k*t, and the upper t - m bits of
                // each slot (byte packing).
                let b = cell.column as u64 % c.word_bits as u64;
                if b >= (c.word_bits as u64 / t) * t || b % t >= bits as u64 {
                    prop_assert_eq!(m.bits_at(cell).count(), 0);
                }
                for (e, j) in m.bits_at(cell) {
                    prop_assert_eq!(m.cell_of(e, j), Some(cell));
                    from_reverse.insert((idx, e, j));
                }
            }
            prop_assert_eq!(from_forward, from_reverse);
        }
    }
}
