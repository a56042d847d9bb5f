//! What an input file may make the simulator allocate, and the checks every reader applies before it allocates.
//!
//! The rule for every reader (profiles, fault patterns, safetensors, `.npy`, IDX, CIFAR, TOML): a size declared
//! in a header is a *claim*. It is computed with checked arithmetic, compared with the bytes really left in the
//! file and with a documented maximum, and only then used; a `Vec` is never sized from a header alone. Files are
//! read through [`read_file`] (refuses files over a per-kind limit without reading them) and gzip streams through
//! [`gunzip`] (stops at a limit instead of inflating a bomb). The limits are listed in docs/model-format.md,
//! docs/sram-profiles.md and docs/faults.md.
//!
//! The helpers return messages without the file name; each reader wraps them in its own error type naming the
//! file, so the user sees one line such as
//! `model.safetensors: tensor "fc.weight" needs 4000 bytes at offset 120 but only 96 remain in the file`.
//!
//! ```
//! use accelsim::limits::Cursor;
//! let bytes = [0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9];
//! let mut c = Cursor::new(&bytes);
//! let magic = c.take(4, "magic").unwrap();
//! let n = c.u32_be("dimension 0").unwrap();
//! let payload = c.take_elements(n as u64, 1, "payload").unwrap();
//! assert_eq!((magic[2], payload), (8, &[7u8, 8, 9][..]));
//! assert!(c.take(1, "more").is_err());
//! ```
use std::io::Read;
use std::path::Path;

/// Largest model tensors file (safetensors) read: 4 GiB (about 1 G float32 parameters).
pub const MAX_WEIGHTS_FILE_BYTES: u64 = 4 << 30;
/// Largest fault-pattern file (safetensors) read: 4 GiB (about 200 M faulty elements).
pub const MAX_PATTERN_FILE_BYTES: u64 = 4 << 30;
/// Largest `.npy` file read: 4 GiB.
pub const MAX_NPY_FILE_BYTES: u64 = 4 << 30;
/// Largest TOML file (hardware config, model manifest) read: 4 MiB.
pub const MAX_TOML_FILE_BYTES: u64 = 4 << 20;
/// Largest dataset file (IDX or CIFAR binary), after gzip decompression: 2 GiB.
pub const MAX_DATASET_BYTES: u64 = 2 << 30;

/// Why [`read_file`] failed: the file could not be read, or it is over the limit.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// One-line message without the file name.
    #[error("{0}")]
    TooLarge(String),
}

/// Binary prefix rendering of a byte count for messages (`4 GiB`, `1.5 MiB`, `312 bytes`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            return if n.is_multiple_of(size) {
                format!("{} {unit}", n / size)
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{n} bytes")
}

/// Reads a whole file of at most `max_bytes` bytes. A larger regular file is refused from its metadata without
/// being read; a special file (a pipe, `/dev/zero`) is read up to `max_bytes + 1` bytes and refused there.
/// `what` names the kind of file in the message (`"model tensors file"`).
pub fn read_file(path: &Path, max_bytes: u64, what: &str) -> Result<Vec<u8>, ReadError> {
    let too_large = |size: String| {
        ReadError::TooLarge(format!(
            "{size} exceeds the {} limit for a {what}",
            human_bytes(max_bytes)
        ))
    };
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(ReadError::Io(std::io::Error::other(
            "is a directory, expected a file",
        )));
    }
    if meta.len() > max_bytes {
        return Err(too_large(format!("file size {} bytes", meta.len())));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut out)?;
    if out.len() as u64 > max_bytes {
        return Err(too_large("the file's content".into()));
    }
    Ok(out)
}

/// Decompresses a gzip stream, refusing output beyond `max_out` bytes (a gzip bomb stops there) and corrupt
/// streams (bad header, truncated data, CRC mismatch).
pub fn gunzip(bytes: &[u8], max_out: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(max_out as usize));
    flate2::read::GzDecoder::new(bytes)
        .take(max_out.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt gzip stream: {e}"))?;
    if out.len() as u64 > max_out {
        return Err(format!(
            "decompresses to more than the {} limit",
            human_bytes(max_out)
        ));
    }
    Ok(out)
}

/// The product of header-declared dimensions, `None` on overflow.
pub fn checked_product(dims: impl IntoIterator<Item = u64>) -> Option<u64> {
    dims.into_iter().try_fold(1u64, |a, d| a.checked_mul(d))
}

/// The byte length `count · elem_bytes` that a header claims, checked: no overflow and at most `available` (the
/// bytes really left in the file). Returns it as a `usize`, safe to slice with.
pub fn claimed_bytes(
    count: u64,
    elem_bytes: u64,
    available: u64,
    what: &str,
) -> Result<usize, String> {
    let need = count
        .checked_mul(elem_bytes)
        .ok_or_else(|| format!("{what}: {count} elements of {elem_bytes} bytes overflow"))?;
    if need > available {
        return Err(format!(
            "{what} needs {need} bytes but only {available} remain in the file (truncated or corrupted?)"
        ));
    }
    usize::try_from(need).map_err(|_| format!("{what}: {need} bytes do not fit in memory"))
}

/// A capacity to reserve for `claimed` items of at least `min_item_bytes` bytes each when `available_bytes` are
/// left to read: never more than the bytes could hold, whatever the header says.
pub fn capacity_hint(claimed: u64, available_bytes: u64, min_item_bytes: u64) -> usize {
    let fit = available_bytes / min_item_bytes.max(1);
    claimed.min(fit).min(usize::MAX as u64) as usize
}

/// Reads a byte slice front to back; every read is bounds-checked and fails with a message naming `what` was
/// being read, the offset and the bytes left. For binary headers (IDX, `.npy`, safetensors, ONNX protobuf).
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }
    /// Offset of the next byte.
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    /// The bytes not read yet (without consuming them).
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], String> {
        let left = self.remaining();
        match usize::try_from(n) {
            Ok(n) if n <= left => {
                let s = &self.bytes[self.pos..self.pos + n];
                self.pos += n;
                Ok(s)
            }
            _ => Err(format!(
                "{what} needs {n} bytes at offset {} but only {left} remain in the file (truncated or corrupted?)",
                self.pos
            )),
        }
    }
    /// The next `count · elem_bytes` bytes (a header-declared array), overflow-checked.
    pub fn take_elements(
        &mut self,
        count: u64,
        elem_bytes: u64,
        what: &str,
    ) -> Result<&'a [u8], String> {
        let n = count
            .checked_mul(elem_bytes)
            .ok_or_else(|| format!("{what}: {count} elements of {elem_bytes} bytes overflow"))?;
        self.take(n, what)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        Ok(self.take(N as u64, what)?.try_into().expect("N bytes"))
    }
    pub fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16_le(&mut self, what: &str) -> Result<u16, String> {
        self.array(what).map(u16::from_le_bytes)
    }
    pub fn u32_le(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }
    pub fn u32_be(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_be_bytes)
    }
    pub fn u64_le(&mut self, what: &str) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }
    /// A protobuf base-128 varint (at most 10 bytes).
    pub fn varint(&mut self, what: &str) -> Result<u64, String> {
        let start = self.pos;
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8(what)?;
            if i == 9 && b > 1 {
                break;
            }
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("{what}: malformed varint at offset {start}"))
    }
}

/// `s` with every control character (newline, carriage return, escape, ...) written as a Rust escape (`\n`,
/// `\u{1b}`), so that text quoted from a file keeps an error message on one line.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// [`printable`] cut to at most `max_chars` characters (an ellipsis marks the cut): for quoting file content.
pub fn excerpt(s: &str, max_chars: usize) -> String {
    let p = printable(s);
    if p.chars().count() <= max_chars {
        p
    } else {
        let cut: String = p.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

/// Largest JSON header of a safetensors file, as in the format's reference reader (100 MB).
pub const MAX_SAFETENSORS_HEADER_BYTES: u64 = 100_000_000;

/// Bytes per element of a safetensors dtype name, `None` when unknown.
pub fn safetensors_dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" => 8,
        _ => return None,
    })
}

/// Checks the layout of a safetensors file before it is handed to the `safetensors` crate, with one-line
/// messages naming the tensor: the 8-byte header length against the file, the JSON header, each tensor's dtype,
/// shape (overflow-checked product) and `data_offsets` against the data that follows, and that the tensors tile
/// the data exactly (no gap, no overlap, no trailing bytes).
pub fn check_safetensors_layout(bytes: &[u8]) -> Result<(), String> {
    safetensors_layout(bytes).map_err(|m| printable(&m))
}

fn safetensors_layout(bytes: &[u8]) -> Result<(), String> {
    let mut c = Cursor::new(bytes);
    let n = c.u64_le("the 8-byte header length")?;
    if n > MAX_SAFETENSORS_HEADER_BYTES {
        return Err(format!(
            "header length {n} exceeds the {MAX_SAFETENSORS_HEADER_BYTES}-byte limit of the format (not a \
             safetensors file?)"
        ));
    }
    let header = c.take(n, "the JSON header")?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| format!("header is not a JSON object: {e}"))?;
    let data_len = c.remaining() as u64;
    let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(header.len());
    for (name, v) in &header {
        if name == "__metadata__" {
            let ok = v
                .as_object()
                .is_some_and(|m| m.values().all(|x| x.is_string()));
            if !ok {
                return Err("header `__metadata__` must map names to strings".into());
            }
            continue;
        }
        let bad = |msg: String| format!("tensor \"{name}\": {msg}");
        let obj = v
            .as_object()
            .ok_or_else(|| bad("expected an object with dtype, shape and data_offsets".into()))?;
        let dtype = obj.get("dtype").and_then(|d| d.as_str()).unwrap_or("");
        let size = safetensors_dtype_size(dtype).ok_or_else(|| {
            bad(format!(
                "dtype {:?} is not a safetensors dtype",
                obj.get("dtype")
            ))
        })?;
        let shape: Vec<u64> = obj
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect())
            .ok_or_else(|| bad("shape must be a list of non-negative integers".into()))?;
        let count = checked_product(shape.iter().copied())
            .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
        let offsets: Vec<u64> = obj
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect())
            .filter(|o: &Vec<u64>| o.len() == 2)
            .ok_or_else(|| bad("data_offsets must be two non-negative integers".into()))?;
        let (a, b) = (offsets[0], offsets[1]);
        if a > b || b > data_len {
            return Err(bad(format!(
                "data_offsets [{a}, {b}] lie outside the {data_len} bytes of data (truncated or corrupted file?)"
            )));
        }
        let need = count
            .checked_mul(size)
            .ok_or_else(|| bad(format!("shape {shape:?} of {dtype} overflows")))?;
        if b - a != need {
            return Err(bad(format!(
                "shape {shape:?} of {dtype} needs {need} bytes but data_offsets [{a}, {b}] span {}",
                b - a
            )));
        }
        spans.push((a, b, name));
    }
    spans.sort_unstable();
    let mut end = 0;
    for (a, b, name) in spans {
        if a != end {
            return Err(format!(
                "tensor \"{name}\": data_offsets [{a}, {b}] {} the previous tensor's end {end}",
                if a < end {
                    "overlap"
                } else {
                    "leave a gap after"
                }
            ));
        }
        end = b;
    }
    if end != data_len {
        return Err(format!(
            "the tensors cover {end} of the {data_len} data bytes ({} trailing bytes)",
            data_len - end
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cursor_reads_and_refuses_past_the_end() {
        let b = [1u8, 0, 2, 0, 0, 0, 0, 0, 0, 3];
        let mut c = Cursor::new(&b);
        assert_eq!(c.u16_le("a").unwrap(), 1);
        assert_eq!(c.u32_be("b").unwrap(), 0x0200_0000);
        assert_eq!(c.remaining(), 4);
        let e = c.u64_le("length").unwrap_err();
        assert!(
            e.contains("length needs 8 bytes at offset 6 but only 4 remain"),
            "{e}"
        );
        assert_eq!(c.pos(), 6, "a failed read consumes nothing");
        let e = c.take_elements(u64::MAX, 8, "shape").unwrap_err();
        assert!(e.contains("overflow"), "{e}");
        assert!(c.take(u64::MAX, "x").is_err());
        assert_eq!(c.rest(), &[0, 0, 0, 3]);
    }

    #[test]
    fn printable_and_excerpt_keep_one_line() {
        assert_eq!(printable("a\nb\u{1b}[0m\tc"), "a\\nb\\u{1b}[0m\\tc");
        assert_eq!(printable("plain ü"), "plain ü");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("ab\n", 10), "ab\\n");
    }

    #[test]
    fn varints() {
        let mut c = Cursor::new(&[0x96, 0x01, 0x00]);
        assert_eq!(c.varint("v").unwrap(), 150);
        assert_eq!(c.varint("v").unwrap(), 0);
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Cursor::new(&max).varint("v").unwrap(), u64::MAX);
        assert!(Cursor::new(&[0xff; 11]).varint("v").is_err());
        assert!(Cursor::new(&[0x80]).varint("v").is_err());
    }

    #[test]
    fn claims_are_checked() {
        assert_eq!(claimed_bytes(3, 4, 12, "t").unwrap(), 12);
        assert!(claimed_bytes(3, 4, 11, "t")
            .unwrap_err()
            .contains("only 11 remain"));
        assert!(claimed_bytes(u64::MAX, 2, u64::MAX, "t")
            .unwrap_err()
            .contains("overflow"));
        assert_eq!(checked_product([2, 3, 4]), Some(24));
        assert_eq!(checked_product([1 << 32, 1 << 32]), None);
        assert_eq!(checked_product([]), Some(1));
        assert_eq!(capacity_hint(1 << 40, 400, 14), 28);
        assert_eq!(capacity_hint(3, 400, 14), 3);
    }

    #[test]
    fn gunzip_stops_at_the_limit() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 1 << 20]).unwrap();
        let gz = e.finish().unwrap();
        assert!(gz.len() < 10_000);
        assert_eq!(gunzip(&gz, 1 << 20).unwrap().len(), 1 << 20);
        let err = gunzip(&gz, 1000).unwrap_err();
        assert!(err.contains("more than the 1000 bytes limit"), "{err}");
        assert!(gunzip(&gz[..gz.len() - 3], 1 << 21)
            .unwrap_err()
            .contains("corrupt gzip"));
    }

    #[test]
    fn read_file_refuses_large_and_special_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.bin");
        std::fs::write(&p, [7u8; 100]).unwrap();
        assert_eq!(read_file(&p, 100, "test file").unwrap().len(), 100);
        let e = read_file(&p, 99, "test file").unwrap_err().to_string();
        assert_eq!(
            e,
            "file size 100 bytes exceeds the 99 bytes limit for a test file"
        );
        assert!(matches!(
            read_file(d.path(), 99, "test file"),
            Err(ReadError::Io(_))
        ));
        if Path::new("/dev/zero").exists() {
            let e = read_file(Path::new("/dev/zero"), 1 << 16, "test file").unwrap_err();
            assert!(matches!(e, ReadError::TooLarge(_)), "{e}");
        }
        assert_eq!(human_bytes(4 << 30), "4 GiB");
        assert_eq!(human_bytes(1536 << 10), "1.5 MiB");
    }

    #[test]
    fn safetensors_layout_names_the_tensor() {
        use safetensors::tensor::TensorView;
        let data: Vec<u8> = (0u8..24).collect();
        let a = TensorView::new(safetensors::Dtype::U32, vec![2], &data[..8]).unwrap();
        let b = TensorView::new(safetensors::Dtype::F32, vec![2, 2], &data[8..]).unwrap();
        let good = safetensors::serialize(vec![("a", a), ("b", b)], &None).unwrap();
        check_safetensors_layout(&good).unwrap();
        let e = check_safetensors_layout(&good[..good.len() - 1]).unwrap_err();
        assert!(
            e.contains("tensor \"a\"") && e.contains("outside the 23 bytes"),
            "{e}"
        );
        let mut longer = good.clone();
        longer.push(0);
        assert!(check_safetensors_layout(&longer)
            .unwrap_err()
            .contains("1 trailing bytes"));
        let text = |h: &str| {
            let mut v = (h.len() as u64).to_le_bytes().to_vec();
            v.extend_from_slice(h.as_bytes());
            v.extend_from_slice(&[0; 8]);
            v
        };
        let e = check_safetensors_layout(&text(
            r#"{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
        ))
        .unwrap_err();
        assert!(e.contains("tensor \"x\"") && e.contains("overflow"), "{e}");
        let e = check_safetensors_layout(&text(
            r#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#,
        ))
        .unwrap_err();
        assert!(e.contains("overlap"), "{e}");
        let e = check_safetensors_layout(&text(
            r#"{"x":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}"#,
        ))
        .unwrap_err();
        assert!(e.contains("not a safetensors dtype"), "{e}");
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(check_safetensors_layout(&huge)
            .unwrap_err()
            .contains("limit"));
        let mut short = 100u64.to_le_bytes().to_vec();
        short.extend_from_slice(b"{}");
        let e = check_safetensors_layout(&short).unwrap_err();
        assert!(
            e.contains("the JSON header needs 100 bytes at offset 8 but only 2 remain"),
            "{e}"
        );
    }

    proptest! {
        /// Against a slow reference: the cursor returns exactly the slices of the input, or an error when the
        /// request passes the end, and never panics.
        #[test]
        fn cursor_matches_slicing(bytes in prop::collection::vec(any::<u8>(), 0..64),
                                  reads in prop::collection::vec(0u64..80, 0..8)) {
            let mut c = Cursor::new(&bytes);
            let mut pos = 0usize;
            for n in reads {
                match c.take(n, "x") {
                    Ok(s) => {
                        prop_assert_eq!(s, &bytes[pos..pos + n as usize]);
                        pos += n as usize;
                    }
                    Err(_) => prop_assert!(pos + n as usize > bytes.len()),
                }
                prop_assert_eq!(c.pos(), pos);
            }
        }
    }
}
