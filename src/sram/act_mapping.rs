//! Mapping stored activation codes onto the activation SRAM's bit cells (docs/activation-faults.md, "Address
//! mapping").
//!
//! The activation SRAM is two buffers, `B0` (the ifmap buffer, `[activation_sram] ifmap_kib`) and `B1` (the
//! ofmap buffer, `ofmap_kib`). Each is `A_b = bits_b / (rows · word_bits)` arrays of `rows` rows of one
//! `word_bits`-bit word (`bits_b = kib · 8192`); the global array index runs over `B0`'s arrays, then `B1`'s,
//! so a fault profile of `A_0 + A_1` arrays of `rows x word_bits` covers both (array `a` uses profile array
//! `a mod P` when the profile has `P` arrays, as for the weight SRAM).
//!
//! **Ping-pong (double buffering).** Layer `L` reads its input map from buffer `L mod 2` and writes its output
//! into buffer `(L + 1) mod 2`, where layer `L + 1` reads it; the image (layer 0's input) is loaded into `B0`.
//! A layer therefore never overwrites the map it is reading.
//!
//! **Slots.** A word holds `k = floor(word_bits / 8)` one-byte slots; word bits `8k .. word_bits` hold nothing.
//! A buffer holds `cap_b = A_b · rows · k` codes. Code `e` of a map (`[c][h][w]` order, row-major) is in tile
//! `t = e div cap_b`, slot `s = e mod cap_b`; every tile starts at slot 0, so codes `e` and `e + cap_b` of one
//! map share cells (a map larger than its buffer is streamed through it tile after tile). Slot `s` is byte
//! `s mod k` of word `w = s div k`; word `w` is row `w mod rows` of the buffer's array `w div rows`; bit `j`
//! (LSB = 0) of the code is column `8·(s mod k) + j`.
use super::mapping::CellAddr;
use super::SramError;
use crate::config::ActivationSramConfig;

/// Bits per stored activation code (one byte: `uint8`, or `int8` as its two's-complement byte).
pub const CODE_BITS: u64 = 8;

/// One of the two activation buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActBuffer {
    /// `B0`, the ifmap buffer (`ifmap_kib`): holds the image and every even layer's input.
    Ifmap,
    /// `B1`, the ofmap buffer (`ofmap_kib`): holds every odd layer's input (the even layers' outputs).
    Ofmap,
}

impl ActBuffer {
    /// The buffer holding the input map of layer `layer` (`layer mod 2`).
    pub fn of_layer(layer: usize) -> ActBuffer {
        if layer.is_multiple_of(2) {
            ActBuffer::Ifmap
        } else {
            ActBuffer::Ofmap
        }
    }
    /// 0 for `B0` (ifmap), 1 for `B1` (ofmap).
    pub fn index(self) -> usize {
        match self {
            ActBuffer::Ifmap => 0,
            ActBuffer::Ofmap => 1,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ActBuffer::Ifmap => "ifmap",
            ActBuffer::Ofmap => "ofmap",
        }
    }
}

/// Where one stored bit of a buffer lives: slot (byte position in the buffer) and bit of the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotBit {
    pub buffer: ActBuffer,
    /// Slot in the buffer, `0..cap_b`.
    pub slot: u64,
    /// Bit of the code, `0..8` (LSB = 0).
    pub bit: u8,
}

/// The activation SRAM's geometry and address mapping (see the module docs). All queries are O(1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActMapping {
    rows: u64,
    word_bits: u64,
    slots_per_word: u64,
    /// Arrays of B0 and B1.
    arrays: [u64; 2],
}

impl ActMapping {
    /// The mapping of `cfg`. Each buffer must be a whole number of `rows x word_bits` arrays, and the whole SRAM
    /// at most 2^32 − 1 cells (profile cell indices are 32-bit); [`HwConfig::validate`](crate::config::HwConfig::validate)
    /// checks the same when the activation rail is scaled.
    pub fn new(cfg: &ActivationSramConfig) -> Result<ActMapping, SramError> {
        let (rows, word_bits) = (cfg.rows as u64, cfg.word_bits as u64);
        if rows == 0 || word_bits < CODE_BITS {
            return Err(SramError::Invalid(format!(
                "activation_sram.rows = {rows}, word_bits = {word_bits} are out of range; allowed rows >= 1, \
                 word_bits >= 8"
            )));
        }
        let array_bits = rows * word_bits;
        let mut arrays = [0u64; 2];
        for (i, (key, kib)) in [("ifmap_kib", cfg.ifmap_kib), ("ofmap_kib", cfg.ofmap_kib)]
            .into_iter()
            .enumerate()
        {
            let bits = kib as u64 * 8192;
            if bits == 0 || !bits.is_multiple_of(array_bits) {
                return Err(SramError::Invalid(format!(
                    "activation_sram.{key} = {kib} is not a whole number of {rows}x{word_bits} arrays \
                     (rows x word_bits = {} KiB each); allowed positive multiples of that size",
                    array_bits as f64 / 8192.0
                )));
            }
            arrays[i] = bits / array_bits;
        }
        let m = ActMapping {
            rows,
            word_bits,
            slots_per_word: word_bits / CODE_BITS,
            arrays,
        };
        if m.total_cells() > u32::MAX as u64 {
            return Err(SramError::Invalid(format!(
                "activation_sram (ifmap_kib + ofmap_kib) has {} bit cells; allowed at most {}",
                m.total_cells(),
                u32::MAX
            )));
        }
        Ok(m)
    }

    /// Rows per array.
    pub fn rows(&self) -> u32 {
        self.rows as u32
    }
    /// Columns per array (`word_bits`).
    pub fn columns(&self) -> u32 {
        self.word_bits as u32
    }
    /// Codes per word (`k = floor(word_bits / 8)`).
    pub fn slots_per_word(&self) -> u64 {
        self.slots_per_word
    }
    /// Arrays of one buffer.
    pub fn buffer_arrays(&self, b: ActBuffer) -> u64 {
        self.arrays[b.index()]
    }
    /// Arrays of both buffers (`A_0 + A_1`).
    pub fn arrays(&self) -> u64 {
        self.arrays[0] + self.arrays[1]
    }
    /// Cells of both buffers.
    pub fn total_cells(&self) -> u64 {
        self.arrays() * self.rows * self.word_bits
    }
    /// Codes one buffer holds at once (`cap_b = A_b · rows · k`).
    pub fn capacity(&self, b: ActBuffer) -> u64 {
        self.arrays[b.index()] * self.rows * self.slots_per_word
    }
    /// Tiles a map of `n` codes takes in buffer `b` (`ceil(n / cap_b)`, at least 1).
    pub fn tiles(&self, b: ActBuffer, n: u64) -> u64 {
        n.div_ceil(self.capacity(b)).max(1)
    }
    /// First global array of a buffer (0 for B0, `A_0` for B1).
    fn base_array(&self, b: ActBuffer) -> u64 {
        match b {
            ActBuffer::Ifmap => 0,
            ActBuffer::Ofmap => self.arrays[0],
        }
    }

    /// The cell holding bit `bit` of code `element` of the input map of layer `layer`; `None` when `bit >= 8`.
    /// The map's size does not matter: tiles reuse the same cells.
    pub fn cell_of(&self, layer: usize, element: u64, bit: u8) -> Option<CellAddr> {
        if bit as u64 >= CODE_BITS {
            return None;
        }
        let b = ActBuffer::of_layer(layer);
        let s = element % self.capacity(b);
        let w = s / self.slots_per_word;
        Some(CellAddr {
            array: (self.base_array(b) + w / self.rows) as u32,
            row: (w % self.rows) as u32,
            column: ((s % self.slots_per_word) * CODE_BITS + bit as u64) as u32,
        })
    }

    /// Dense cell index `(array · rows + row) · word_bits + column` (the order of fault-profile cells).
    pub fn cell_index(&self, addr: CellAddr) -> u64 {
        (addr.array as u64 * self.rows + addr.row as u64) * self.word_bits + addr.column as u64
    }

    /// Inverse of [`cell_index`](Self::cell_index); `None` when out of range.
    pub fn addr_of_index(&self, index: u64) -> Option<CellAddr> {
        if index >= self.total_cells() {
            return None;
        }
        let r = index / self.word_bits;
        Some(CellAddr {
            array: (r / self.rows) as u32,
            row: (r % self.rows) as u32,
            column: (index % self.word_bits) as u32,
        })
    }

    /// The buffer, slot and code bit stored in cell `addr`; `None` for an unused cell (word bits past `8k`) or an
    /// address outside the SRAM.
    pub fn slot_at(&self, addr: CellAddr) -> Option<SlotBit> {
        let (a, row, col) = (addr.array as u64, addr.row as u64, addr.column as u64);
        if a >= self.arrays() || row >= self.rows || col >= self.slots_per_word * CODE_BITS {
            return None;
        }
        let (buffer, a) = if a < self.arrays[0] {
            (ActBuffer::Ifmap, a)
        } else {
            (ActBuffer::Ofmap, a - self.arrays[0])
        };
        let w = a * self.rows + row;
        Some(SlotBit {
            buffer,
            slot: w * self.slots_per_word + col / CODE_BITS,
            bit: (col % CODE_BITS) as u8,
        })
    }

    /// Every (element, bit) of layer `layer`'s input map of `n` codes stored in `addr`, one per tile, in
    /// increasing element order; empty when the cell is in the other buffer, unused, or past the map.
    pub fn values_at(
        &self,
        addr: CellAddr,
        layer: usize,
        n: u64,
    ) -> impl Iterator<Item = (u64, u8)> + '_ {
        let b = ActBuffer::of_layer(layer);
        let cap = self.capacity(b);
        let hit = self.slot_at(addr).filter(|sb| sb.buffer == b);
        let (first, bit) = match hit {
            Some(sb) => (sb.slot, sb.bit),
            None => (n, 0),
        };
        (0..)
            .map(move |t| first + t * cap)
            .take_while(move |&e| e < n)
            .map(move |e| (e, bit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn cfg(ifmap_kib: u32, ofmap_kib: u32, rows: u32, word_bits: u32) -> ActivationSramConfig {
        ActivationSramConfig {
            ifmap_kib,
            ofmap_kib,
            word_bits,
            rows,
            fault_profile: None,
            partial_sums: Default::default(),
        }
    }

    /// Obviously-right reference: list every cell of the SRAM buffer by buffer, array by array, row by row,
    /// byte by byte, and hand them out to the codes of the map in order, starting again at the buffer's first
    /// cell when it is full.
    fn reference_cells(c: &ActivationSramConfig, layer: usize, n: u64) -> Vec<[CellAddr; 8]> {
        let rows = c.rows as u64;
        let wb = c.word_bits as u64;
        let arrays = |kib: u32| kib as u64 * 8192 / (rows * wb);
        let (a0, a1) = (arrays(c.ifmap_kib), arrays(c.ofmap_kib));
        let (first, count) = if layer.is_multiple_of(2) {
            (0, a0)
        } else {
            (a0, a1)
        };
        let mut slots: Vec<[CellAddr; 8]> = Vec::new();
        for a in first..first + count {
            for r in 0..rows {
                let mut byte = 0;
                while (byte + 1) * 8 <= wb {
                    let mut cells = [CellAddr {
                        array: 0,
                        row: 0,
                        column: 0,
                    }; 8];
                    for (j, cell) in cells.iter_mut().enumerate() {
                        *cell = CellAddr {
                            array: a as u32,
                            row: r as u32,
                            column: (byte * 8 + j as u64) as u32,
                        };
                    }
                    slots.push(cells);
                    byte += 1;
                }
            }
        }
        (0..n)
            .map(|e| slots[(e % slots.len() as u64) as usize])
            .collect()
    }

    #[test]
    fn shipped_geometry_and_ping_pong() {
        // 14nm_sram.toml: 64 KiB + 64 KiB of 64-bit words, 512 rows: 16 + 16 arrays of 512x64, like the weight SRAM.
        let m = ActMapping::new(&cfg(64, 64, 512, 64)).unwrap();
        assert_eq!(m.arrays(), 32);
        assert_eq!(m.capacity(ActBuffer::Ifmap), 65536);
        assert_eq!(m.tiles(ActBuffer::Ifmap, 784), 1);
        assert_eq!(m.tiles(ActBuffer::Ifmap, 65537), 2);
        let at = |array, row, column| Some(CellAddr { array, row, column });
        // Layer 0 (the image) in B0: code 9 is byte 1 of word 1 (row 1 of array 0), bit 3 is column 11.
        assert_eq!(m.cell_of(0, 9, 3), at(0, 1, 11));
        // Layer 1 in B1 (arrays 16..32), layer 2 back in B0.
        assert_eq!(m.cell_of(1, 9, 3), at(16, 1, 11));
        assert_eq!(m.cell_of(2, 9, 3), at(0, 1, 11));
        // Code 4096 = word 512: row 0 of array 1; code 65536 wraps to slot 0 (tile 1).
        assert_eq!(m.cell_of(0, 4096, 0), at(1, 0, 0));
        assert_eq!(m.cell_of(0, 65536, 7), m.cell_of(0, 0, 7));
        assert_eq!(m.cell_of(0, 0, 8), None);
        assert_eq!(
            m.values_at(
                CellAddr {
                    array: 0,
                    row: 0,
                    column: 7
                },
                0,
                140000
            )
            .collect::<Vec<_>>(),
            vec![(0, 7), (65536, 7), (131072, 7)]
        );
        // The same cell holds nothing of an odd layer's map.
        assert_eq!(
            m.values_at(
                CellAddr {
                    array: 0,
                    row: 0,
                    column: 7
                },
                1,
                140000
            )
            .count(),
            0
        );
    }

    #[test]
    fn unused_columns_and_bad_geometry() {
        // 12-bit words: one code per word, columns 8..12 unused.
        let m = ActMapping::new(&cfg(3, 3, 16, 12)).unwrap();
        assert_eq!(m.slots_per_word(), 1);
        for column in 8..12 {
            assert_eq!(
                m.slot_at(CellAddr {
                    array: 0,
                    row: 0,
                    column
                }),
                None
            );
        }
        // 1 KiB is not a whole number of 512x64 arrays (4 KiB).
        let e = ActMapping::new(&cfg(1, 64, 512, 64))
            .unwrap_err()
            .to_string();
        assert!(e.contains("activation_sram.ifmap_kib = 1"), "{e}");
        assert!(ActMapping::new(&cfg(64, 64, 0, 64)).is_err());
    }

    fn arb_case() -> impl Strategy<Value = (ActivationSramConfig, usize, u64)> {
        (
            1u32..4,
            1u32..4,
            prop_oneof![Just(1u32), Just(2), Just(4), Just(8)],
            prop_oneof![Just(8u32), Just(12), Just(16), Just(64)],
            0usize..4,
            0u64..5000,
        )
            .prop_filter_map("not whole arrays", |(ki, ko, per_kib, wb, layer, n)| {
                // rows chosen so that one KiB holds `per_kib` arrays: rows = 8192 / (per_kib * wb) when whole.
                let bits = 8192 / per_kib;
                if bits % wb != 0 {
                    return None;
                }
                Some((cfg(ki, ko, bits / wb, wb), layer, n))
            })
    }

    proptest! {
        #[test]
        fn matches_reference_and_round_trips((c, layer, n) in arb_case()) {
            let m = ActMapping::new(&c).unwrap();
            let reference = reference_cells(&c, layer, n);
            let b = ActBuffer::of_layer(layer);
            let mut forward = BTreeSet::new();
            for (e, cells) in reference.iter().enumerate() {
                for j in 0..8u8 {
                    let cell = m.cell_of(layer, e as u64, j).unwrap();
                    prop_assert_eq!(cell, cells[j as usize]);
                    prop_assert_eq!(m.addr_of_index(m.cell_index(cell)), Some(cell));
                    let sb = m.slot_at(cell).unwrap();
                    prop_assert_eq!(sb, SlotBit { buffer: b, slot: e as u64 % m.capacity(b), bit: j });
                    forward.insert((m.cell_index(cell), e as u64, j));
                }
            }
            // Reverse direction over every cell: each (code, bit) of the map appears exactly once per tile pass,
            // in the cell the forward map gives it.
            let mut reverse = BTreeSet::new();
            let mut count = 0u64;
            for idx in 0..m.total_cells() {
                let cell = m.addr_of_index(idx).unwrap();
                let here: Vec<(u64, u8)> = m.values_at(cell, layer, n).collect();
                let tile_of: Vec<u64> = here.iter().map(|(e, _)| e / m.capacity(b)).collect();
                prop_assert!(tile_of.windows(2).all(|w| w[1] == w[0] + 1), "one value per tile pass");
                for (e, j) in here {
                    count += 1;
                    reverse.insert((idx, e, j));
                }
            }
            prop_assert_eq!(count, n * 8);
            prop_assert_eq!(forward, reverse);
        }
    }
}
