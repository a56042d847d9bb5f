//! Fault patterns as data: which element, which bits flip, which read as 0, which read as 1.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::{low_mask, Code, FaultError};

/// Value of the `format` metadata key of a pattern file.
pub const PATTERN_FORMAT: &str = "accelsim-fault-pattern";
/// Value of the `version` metadata key of a pattern file.
pub const PATTERN_VERSION: &str = "1";

/// The faults of one element: bit masks, LSB = bit 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FaultEntry {
    /// Element index (in the memory order of the codes the pattern was sampled on).
    pub index: u64,
    /// Bits that read inverted.
    pub flip: u32,
    /// Bits stuck at 0.
    pub set0: u32,
    /// Bits stuck at 1.
    pub set1: u32,
}

/// A set of faults over m-bit codes: entries sorted by element index, one per faulty element.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPattern {
    /// m, the stored bits per code the masks refer to.
    pub bits: u8,
    pub entries: Vec<FaultEntry>,
}

/// Checks the provenance keys the simulator writes (docs/faults.md), where present: `p01`, `p10` per-bit
/// probabilities in [0, 1]; `vdd_rel` in (0, 2]; `seed`, `offset_bits` unsigned integers; `elements` an
/// unsigned integer above every entry's index. Other keys are free text.
fn check_provenance(meta: &BTreeMap<String, String>, p: &FaultPattern) -> Result<(), String> {
    let float = |key: &str, ok: &dyn Fn(f64) -> bool, allowed: &str| -> Result<(), String> {
        match meta.get(key) {
            Some(v)
                if !v
                    .trim()
                    .parse::<f64>()
                    .is_ok_and(|x| x.is_finite() && ok(x)) =>
            {
                Err(format!(
                    "metadata {key} = {v:?} is out of range; allowed {allowed}"
                ))
            }
            _ => Ok(()),
        }
    };
    float(
        "p01",
        &|x| (0.0..=1.0).contains(&x),
        "a per-bit probability in [0, 1]",
    )?;
    float(
        "p10",
        &|x| (0.0..=1.0).contains(&x),
        "a per-bit probability in [0, 1]",
    )?;
    float("vdd_rel", &|x| x > 0.0 && x <= 2.0, "(0, 2]")?;
    for key in ["seed", "offset_bits", "elements"] {
        if let Some(v) = meta.get(key) {
            if v.trim().parse::<u64>().is_err() {
                return Err(format!(
                    "metadata {key} = {v:?} is not valid; allowed an unsigned integer"
                ));
            }
        }
    }
    if let (Some(n), Some(last)) = (meta.get("elements"), p.entries.last()) {
        let n: u64 = n.trim().parse().expect("checked above");
        if last.index >= n {
            return Err(format!(
                "index {} is outside metadata elements = {n} (allowed 0..{n})",
                last.index
            ));
        }
    }
    Ok(())
}

impl FaultPattern {
    /// An empty pattern over m-bit codes.
    pub fn new(bits: u8) -> Self {
        FaultPattern {
            bits,
            entries: Vec::new(),
        }
    }

    /// Number of flipped bits (popcount of all flip masks).
    pub fn flip_count(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| e.flip.count_ones() as u64)
            .sum()
    }

    /// Number of faulty bits of any kind.
    pub fn fault_count(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| (e.flip | e.set0 | e.set1).count_ones() as u64)
            .sum()
    }

    /// Checks the pattern against codes of type `C` and length `len`: bits within the word, entries sorted and
    /// unique, indices in range, masks within the m stored bits.
    pub fn validate_for<C: Code>(&self, len: usize) -> Result<(), FaultError> {
        let bits = self.bits as u32;
        if bits == 0 || bits > C::BITS {
            return Err(FaultError::InvalidBits {
                bits,
                ty: C::NAME,
                max: C::BITS,
            });
        }
        self.validate_entries(Some(len))
    }

    fn validate_entries(&self, len: Option<usize>) -> Result<(), FaultError> {
        let m = low_mask(self.bits as u32);
        let mut prev: Option<u64> = None;
        for (position, e) in self.entries.iter().enumerate() {
            if prev.is_some_and(|p| p >= e.index) {
                return Err(FaultError::NotSorted { position });
            }
            prev = Some(e.index);
            if let Some(len) = len {
                if e.index >= len as u64 {
                    return Err(FaultError::IndexOutOfRange {
                        index: e.index,
                        len,
                    });
                }
            }
            let all = e.flip | e.set0 | e.set1;
            if all & !m != 0 {
                return Err(FaultError::MaskOutOfRange {
                    index: e.index,
                    mask: all,
                    bits: self.bits as u32,
                });
            }
        }
        Ok(())
    }

    /// Applies the pattern in place: `v' = ((v ^ flip) & !set0) | set1` (stuck-at overrides flips), touching only
    /// the m stored bits. Validates first; on error nothing is changed.
    pub fn apply<C: Code>(&self, codes: &mut [C]) -> Result<(), FaultError> {
        self.validate_for::<C>(codes.len())?;
        for e in &self.entries {
            let c = &mut codes[e.index as usize];
            let v = c.to_bits();
            *c = C::from_bits(((v ^ e.flip) & !e.set0) | e.set1);
        }
        Ok(())
    }

    /// [`apply`](Self::apply) for `u8` codes.
    pub fn apply_u8(&self, codes: &mut [u8]) -> Result<(), FaultError> {
        self.apply(codes)
    }

    /// Entries shifted by `-offset` restricted to elements `[offset, offset + len)`: the part of a pattern over a
    /// concatenation of tensors that falls into one tensor.
    pub fn slice(&self, offset: u64, len: u64) -> FaultPattern {
        let lo = self.entries.partition_point(|e| e.index < offset);
        let hi = self
            .entries
            .partition_point(|e| e.index < offset.saturating_add(len));
        FaultPattern {
            bits: self.bits,
            entries: self.entries[lo..hi]
                .iter()
                .map(|e| FaultEntry {
                    index: e.index - offset,
                    ..*e
                })
                .collect(),
        }
    }

    /// Writes the pattern as safetensors (docs/faults.md): tensors `index` (I64), `flip`, `set0`, `set1` (U32),
    /// metadata `format`, `version`, `bits`. Atomic, and the same pattern always gives the same bytes (canonical
    /// header).
    pub fn write(&self, path: &Path) -> Result<(), FaultError> {
        self.write_with_metadata(path, &BTreeMap::new())
    }

    /// [`write`](Self::write) plus free provenance strings (seed, p01, p10, source file, ...). The keys
    /// `format`, `version` and `bits` are reserved.
    pub fn write_with_metadata(
        &self,
        path: &Path,
        extra: &BTreeMap<String, String>,
    ) -> Result<(), FaultError> {
        let fmt_err = |msg: String| FaultError::Format {
            path: path.to_path_buf(),
            msg,
        };
        self.validate_entries(None)
            .map_err(|e| fmt_err(e.to_string()))?;
        let n = self.entries.len();
        let mut index = Vec::with_capacity(n * 8);
        let (mut flip, mut set0, mut set1) = (
            Vec::with_capacity(n * 4),
            Vec::with_capacity(n * 4),
            Vec::with_capacity(n * 4),
        );
        for e in &self.entries {
            let i = i64::try_from(e.index)
                .map_err(|_| fmt_err(format!("index {} exceeds i64", e.index)))?;
            index.extend_from_slice(&i.to_le_bytes());
            flip.extend_from_slice(&e.flip.to_le_bytes());
            set0.extend_from_slice(&e.set0.to_le_bytes());
            set1.extend_from_slice(&e.set1.to_le_bytes());
        }
        let mut meta: HashMap<String, String> = extra
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "format" | "version" | "bits"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        meta.insert("format".into(), PATTERN_FORMAT.into());
        meta.insert("version".into(), PATTERN_VERSION.into());
        meta.insert("bits".into(), self.bits.to_string());
        fn view(dtype: Dtype, n: usize, data: &[u8]) -> Result<TensorView<'_>, String> {
            TensorView::new(dtype, vec![n], data).map_err(|e| format!("{e:?}"))
        }
        let view = |dtype, data| view(dtype, n, data).map_err(fmt_err);
        let tensors = vec![
            ("index", view(Dtype::I64, &index)?),
            ("flip", view(Dtype::U32, &flip)?),
            ("set0", view(Dtype::U32, &set0)?),
            ("set1", view(Dtype::U32, &set1)?),
        ];
        let bytes =
            safetensors::serialize(tensors, &Some(meta)).map_err(|e| fmt_err(e.to_string()))?;
        let bytes = crate::fsutil::canonical_safetensors(&bytes).map_err(fmt_err)?;
        crate::fsutil::write_atomic(path, &bytes).map_err(|source| FaultError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a pattern file written by [`write`](Self::write) (or by Python with `safetensors.numpy`).
    pub fn read(path: &Path) -> Result<Self, FaultError> {
        Ok(Self::read_with_metadata(path)?.0)
    }

    /// Reads a pattern file and returns its metadata too (including `format`, `version`, `bits`).
    pub fn read_with_metadata(path: &Path) -> Result<(Self, BTreeMap<String, String>), FaultError> {
        let fmt_err = |msg: String| FaultError::Format {
            path: path.to_path_buf(),
            msg,
        };
        let bytes = crate::limits::read_file(
            path,
            crate::limits::MAX_PATTERN_FILE_BYTES,
            "fault-pattern file",
        )
        .map_err(|e| match e {
            crate::limits::ReadError::Io(source) => FaultError::Io {
                path: path.to_path_buf(),
                source,
            },
            crate::limits::ReadError::TooLarge(msg) => fmt_err(msg),
        })?;
        crate::limits::check_safetensors_layout(&bytes)
            .map_err(|m| fmt_err(format!("not a safetensors file: {m}")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| fmt_err(format!("not a safetensors file ({e:?})")))?;
        let meta: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        match meta.get("format") {
            Some(f) if f == PATTERN_FORMAT => {}
            other => {
                return Err(fmt_err(format!(
                    "metadata format = {other:?}, expected \"{PATTERN_FORMAT}\""
                )))
            }
        }
        match meta.get("version") {
            Some(v) if v == PATTERN_VERSION => {}
            other => {
                return Err(fmt_err(format!(
                    "metadata version = {other:?}, this build reads version \"{PATTERN_VERSION}\""
                )))
            }
        }
        let bits: u8 = meta
            .get("bits")
            .and_then(|b| b.parse().ok())
            .filter(|b| (1..=32).contains(b))
            .ok_or_else(|| {
                fmt_err(format!(
                    "metadata bits = {:?} is not in 1..=32",
                    meta.get("bits")
                ))
            })?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| fmt_err(format!("{e:?}")))?;
        let get = |name: &str, dtype: Dtype, width: usize| -> Result<Vec<[u8; 8]>, FaultError> {
            let t = st
                .tensor(name)
                .map_err(|_| fmt_err(format!("tensor \"{name}\" is missing")))?;
            if t.dtype() != dtype || t.shape().len() != 1 {
                return Err(fmt_err(format!(
                    "tensor \"{name}\" must be 1-d {dtype:?}, found {:?} with shape {:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(t.data()
                .chunks_exact(width)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b[..width].copy_from_slice(c);
                    b
                })
                .collect())
        };
        let index = get("index", Dtype::I64, 8)?;
        let flip = get("flip", Dtype::U32, 4)?;
        let set0 = get("set0", Dtype::U32, 4)?;
        let set1 = get("set1", Dtype::U32, 4)?;
        let n = index.len();
        if flip.len() != n || set0.len() != n || set1.len() != n {
            return Err(fmt_err(format!(
                "tensor lengths differ: index {n}, flip {}, set0 {}, set1 {}",
                flip.len(),
                set0.len(),
                set1.len()
            )));
        }
        let u32_of = |b: &[u8; 8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let mut entries = Vec::with_capacity(n);
        for i in 0..n {
            let idx = i64::from_le_bytes(index[i]);
            if idx < 0 {
                return Err(fmt_err(format!("index[{i}] = {idx} is negative")));
            }
            entries.push(FaultEntry {
                index: idx as u64,
                flip: u32_of(&flip[i]),
                set0: u32_of(&set0[i]),
                set1: u32_of(&set1[i]),
            });
        }
        let p = FaultPattern { bits, entries };
        p.validate_entries(None)
            .map_err(|e| fmt_err(e.to_string()))?;
        check_provenance(&meta, &p).map_err(fmt_err)?;
        Ok((p, meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_floats_and_counts_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.safetensors");
        let p = FaultPattern {
            bits: 8,
            entries: vec![FaultEntry {
                index: 9,
                flip: 1,
                set0: 0,
                set1: 0,
            }],
        };
        let write = |pairs: &[(&str, &str)]| {
            let meta = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            p.write_with_metadata(&path, &meta).unwrap();
            FaultPattern::read(&path).map_err(|e| e.to_string())
        };
        assert!(write(&[("p01", "0.01"), ("elements", "10"), ("vdd_rel", "0.8")]).is_ok());
        for (pairs, needle) in [
            (
                vec![("p01", "nan")],
                "metadata p01 = \"nan\" is out of range; allowed a per-bit probability in [0, 1]",
            ),
            (vec![("p10", "1.5")], "metadata p10"),
            (
                vec![("vdd_rel", "inf")],
                "metadata vdd_rel = \"inf\" is out of range; allowed (0, 2]",
            ),
            (vec![("seed", "-1")], "metadata seed"),
            (
                vec![("elements", "9")],
                "index 9 is outside metadata elements = 9",
            ),
        ] {
            let e = write(&pairs).unwrap_err();
            assert!(e.contains(needle) && e.contains("p.safetensors"), "{e}");
        }
    }
}
