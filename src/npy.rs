//! Reading and writing NumPy `.npy` files: format versions 1.0, 2.0 and 3.0, little-endian, C order, dtypes
//! float32, float64, uint8, int8, int16, int32 and int64.
//!
//! Reading checks the magic string, the header dictionary (`descr`, `fortran_order`, `shape`), the dtype and
//! the data length, and reports problems as [`NpyError`] naming the file. Writing produces version 1.0 (2.0
//! when the header would not fit), with the header padded to a multiple of 64 bytes as NumPy does.

use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"\x93NUMPY";
/// Most dimensions an array may have (NumPy's own limit).
pub const MAX_NDIM: usize = 64;
/// Longest header dictionary read (NumPy itself refuses headers over 10000 bytes by default).
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// Errors of `.npy` reading and writing; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a valid .npy file: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    #[error("{}: dtype {found} is not supported here (expected {expected})", path.display())]
    Dtype {
        path: PathBuf,
        found: String,
        expected: String,
    },
}

/// The element data of an array, in C order.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl NpyData {
    /// NumPy's name of the dtype (`float32`, `uint8`, ...).
    pub fn dtype_name(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "float32",
            NpyData::F64(_) => "float64",
            NpyData::U8(_) => "uint8",
            NpyData::I8(_) => "int8",
            NpyData::I16(_) => "int16",
            NpyData::I32(_) => "int32",
            NpyData::I64(_) => "int64",
        }
    }

    /// The header `descr` of the dtype (`<f4`, `|u1`, ...).
    pub fn descr(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "<f4",
            NpyData::F64(_) => "<f8",
            NpyData::U8(_) => "|u1",
            NpyData::I8(_) => "|i1",
            NpyData::I16(_) => "<i2",
            NpyData::I32(_) => "<i4",
            NpyData::I64(_) => "<i8",
        }
    }

    pub fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::U8(v) => v.len(),
            NpyData::I8(v) => v.len(),
            NpyData::I16(v) => v.len(),
            NpyData::I32(v) => v.len(),
            NpyData::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn to_le_bytes(&self) -> Vec<u8> {
        fn cat<const N: usize, T: Copy>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
            let mut out = Vec::with_capacity(v.len() * N);
            for &x in v {
                out.extend_from_slice(&f(x));
            }
            out
        }
        match self {
            NpyData::F32(v) => cat(v, f32::to_le_bytes),
            NpyData::F64(v) => cat(v, f64::to_le_bytes),
            NpyData::U8(v) => v.clone(),
            NpyData::I8(v) => cat(v, i8::to_le_bytes),
            NpyData::I16(v) => cat(v, i16::to_le_bytes),
            NpyData::I32(v) => cat(v, i32::to_le_bytes),
            NpyData::I64(v) => cat(v, i64::to_le_bytes),
        }
    }
}

/// An n-dimensional array: its shape (empty for a 0-d scalar) and its data in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

impl NpyArray {
    /// Number of elements implied by the shape.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<NpyArray, NpyError> {
    let bytes = crate::limits::read_file(path, crate::limits::MAX_NPY_FILE_BYTES, ".npy file")
        .map_err(|e| match e {
            crate::limits::ReadError::Io(source) => NpyError::Io {
                path: path.to_path_buf(),
                source,
            },
            crate::limits::ReadError::TooLarge(msg) => NpyError::Format {
                path: path.to_path_buf(),
                msg,
            },
        })?;
    parse(&bytes, path)
}

/// Reads a float32 `.npy` file; any other dtype is an error naming the file and the dtype found.
pub fn read_f32(path: &Path) -> Result<(Vec<f32>, Vec<usize>), NpyError> {
    let a = read(path)?;
    match a.data {
        NpyData::F32(v) => Ok((v, a.shape)),
        other => Err(NpyError::Dtype {
            path: path.to_path_buf(),
            found: format!("{} ({})", other.dtype_name(), other.descr()),
            expected: "float32 ('<f4'); convert with x.astype(np.float32)".into(),
        }),
    }
}

/// Parses the bytes of a `.npy` file; `path` only names the file in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<NpyArray, NpyError> {
    let err = |msg: String| NpyError::Format {
        path: path.to_path_buf(),
        msg: crate::limits::printable(&msg),
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("missing the \\x93NUMPY magic string".into()));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err("truncated header".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => {
            return Err(err(format!(
                "format version {v}.{} is not supported (1.0, 2.0, 3.0)",
                bytes[7]
            )))
        }
    };
    if header_len > MAX_HEADER_BYTES {
        return Err(err(format!(
            "header length {header_len} is out of range; allowed at most {MAX_HEADER_BYTES} bytes"
        )));
    }
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| err(format!("truncated header ({header_len} bytes announced)")))?;
    let header =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| err("header is not text".into()))?;
    let h = parse_header(header).map_err(|m| {
        err(format!(
            "{m} in header {}",
            crate::limits::excerpt(header.trim(), 200)
        ))
    })?;
    let (kind, size) = match h.descr.as_str() {
        "<f4" | "=f4" => ("f4", 4),
        "<f8" | "=f8" => ("f8", 8),
        "|u1" | "<u1" | "=u1" => ("u1", 1),
        "|i1" | "<i1" | "=i1" => ("i1", 1),
        "<i2" | "=i2" => ("i2", 2),
        "<i4" | "=i4" => ("i4", 4),
        "<i8" | "=i8" => ("i8", 8),
        d => {
            let why = if d.starts_with('>') {
                "big-endian data is not supported; save with arr.astype(arr.dtype.newbyteorder('<'))"
            } else {
                "supported: float32, float64, uint8, int8, int16, int32, int64"
            };
            return Err(NpyError::Dtype {
                path: path.to_path_buf(),
                found: format!("'{}'", crate::limits::excerpt(d, 40)),
                expected: why.into(),
            });
        }
    };
    if h.shape.len() > MAX_NDIM {
        return Err(err(format!(
            "shape has {} dimensions; allowed at most {MAX_NDIM}",
            h.shape.len()
        )));
    }
    if h.fortran_order && h.shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(err(
            "fortran_order = True is not supported; save with np.ascontiguousarray(x)".into(),
        ));
    }
    let count = h
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(format!("shape {:?} is too large", h.shape)))?;
    let data = &bytes[end..];
    let need = count
        .checked_mul(size)
        .ok_or_else(|| err(format!("shape {:?} is too large", h.shape)))?;
    if data.len() < need {
        return Err(err(format!(
            "truncated data: shape {:?} of {} needs {need} bytes, the file has {}",
            h.shape,
            h.descr,
            data.len()
        )));
    }
    if data.len() > need {
        return Err(err(format!(
            "{} trailing bytes after the data of shape {:?}",
            data.len() - need,
            h.shape
        )));
    }
    fn conv<const N: usize, T>(d: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        d.chunks_exact(N)
            .map(|c| f(c.try_into().expect("exact chunk")))
            .collect()
    }
    let data = match kind {
        "f4" => NpyData::F32(conv(data, f32::from_le_bytes)),
        "f8" => NpyData::F64(conv(data, f64::from_le_bytes)),
        "u1" => NpyData::U8(data.to_vec()),
        "i1" => NpyData::I8(conv(data, i8::from_le_bytes)),
        "i2" => NpyData::I16(conv(data, i16::from_le_bytes)),
        "i4" => NpyData::I32(conv(data, i32::from_le_bytes)),
        _ => NpyData::I64(conv(data, i64::from_le_bytes)),
    };
    Ok(NpyArray {
        shape: h.shape,
        data,
    })
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the Python dict literal of the header, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header(s: &str) -> Result<Header, String> {
    let mut p = Lexer {
        s: s.as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        match key.as_str() {
            "descr" => descr = Some(p.string()?),
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(format!("unknown key '{other}'")),
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    Ok(Header {
        descr: descr.ok_or("missing 'descr'")?,
        fortran_order: fortran.ok_or("missing 'fortran_order'")?,
        shape: shape.ok_or("missing 'shape'")?,
    })
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> Result<String, String> {
        let q = match self.s.get(self.i) {
            Some(&c @ (b'\'' | b'"')) => c,
            _ => return Err(format!("expected a string at byte {}", self.i)),
        };
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != q {
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return Err("unterminated string".into());
        }
        let out = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        Ok(out)
    }
    fn boolean(&mut self) -> Result<bool, String> {
        if self.s[self.i..].starts_with(b"True") {
            self.i += 4;
            Ok(true)
        } else if self.s[self.i..].starts_with(b"False") {
            self.i += 5;
            Ok(false)
        } else {
            Err(format!("expected True or False at byte {}", self.i))
        }
    }
    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            if start == self.i {
                return Err(format!("expected a dimension at byte {}", self.i));
            }
            let d: usize = std::str::from_utf8(&self.s[start..self.i])
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or("dimension too large")?;
            // Python 2 longs: `3L`.
            self.eat(b'L');
            dims.push(d);
            if dims.len() > MAX_NDIM {
                return Err(format!("more than {MAX_NDIM} dimensions"));
            }
            self.ws();
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

/// The bytes of a `.npy` file holding `arr` (version 1.0, or 2.0 for very large headers).
pub fn to_bytes(arr: &NpyArray) -> Result<Vec<u8>, String> {
    if arr.len() != arr.data.len() {
        return Err(format!(
            "shape {:?} has {} elements but the data has {}",
            arr.shape,
            arr.len(),
            arr.data.len()
        ));
    }
    let shape = match arr.shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", arr.shape[0]),
        _ => format!(
            "({})",
            arr.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        arr.data.descr()
    );
    let (version, prefix) = if dict.len() + 1 + 10 <= u16::MAX as usize {
        (1u8, 10usize)
    } else {
        (2u8, 12usize)
    };
    let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
    let mut header = dict.into_bytes();
    header.resize(total - prefix - 1, b' ');
    header.push(b'\n');
    let mut out = Vec::with_capacity(total + arr.data.len() * 8);
    out.extend_from_slice(MAGIC);
    out.push(version);
    out.push(0);
    if version == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(&header);
    out.extend_from_slice(&arr.data.to_le_bytes());
    Ok(out)
}

/// Writes `arr` to `path` (atomically).
pub fn write(path: &Path, arr: &NpyArray) -> Result<(), NpyError> {
    let bytes = to_bytes(arr).map_err(|msg| NpyError::Format {
        path: path.to_path_buf(),
        msg,
    })?;
    crate::fsutil::write_atomic(path, &bytes).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a float32 array.
pub fn write_f32(path: &Path, data: &[f32], shape: &[usize]) -> Result<(), NpyError> {
    write(
        path,
        &NpyArray {
            shape: shape.to_vec(),
            data: NpyData::F32(data.to_vec()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(a: &NpyArray) -> NpyArray {
        parse(&to_bytes(a).unwrap(), Path::new("x.npy")).unwrap()
    }

    #[test]
    fn known_numpy_bytes() {
        // np.save of np.arange(3, dtype=np.int16): header padded to 64 bytes in total before the data.
        let a = NpyArray {
            shape: vec![3],
            data: NpyData::I16(vec![0, 1, 2]),
        };
        let b = to_bytes(&a).unwrap();
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([b[8], b[9]]), 118);
        let header = std::str::from_utf8(&b[10..128]).unwrap();
        assert!(header.starts_with("{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(&b[128..], &[0, 0, 1, 0, 2, 0]);
    }

    #[test]
    fn all_dtypes_and_shapes_round_trip() {
        for data in [
            NpyData::F32(vec![1.5, -0.0, f32::MAX, 3.0, 4.0, 5.0]),
            NpyData::F64(vec![1.0; 6]),
            NpyData::U8(vec![0, 255, 1, 2, 3, 4]),
            NpyData::I8(vec![-128, 127, 0, 1, 2, 3]),
            NpyData::I16(vec![i16::MIN, 5, 6, 7, 8, 9]),
            NpyData::I32(vec![i32::MIN, 5, 6, 7, 8, 9]),
            NpyData::I64(vec![i64::MAX, 5, 6, 7, 8, 9]),
        ] {
            for shape in [vec![6], vec![2, 3], vec![1, 2, 3, 1]] {
                let a = NpyArray {
                    shape,
                    data: data.clone(),
                };
                assert_eq!(round_trip(&a), a);
            }
        }
        let scalar = NpyArray {
            shape: vec![],
            data: NpyData::F32(vec![2.5]),
        };
        assert_eq!(round_trip(&scalar), scalar);
        let empty = NpyArray {
            shape: vec![0, 4],
            data: NpyData::U8(vec![]),
        };
        assert_eq!(round_trip(&empty), empty);
    }

    fn with_header(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.push(version);
        b.push(0);
        if version == 1 {
            b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        } else {
            b.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        }
        b.extend_from_slice(dict.as_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn reads_version_2_and_3_and_header_variants() {
        for v in [2u8, 3] {
            let b = with_header(
                v,
                "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1,)}\n",
                &1f32.to_le_bytes(),
            );
            let a = parse(&b, Path::new("v.npy")).unwrap();
            assert_eq!(a.data, NpyData::F32(vec![1.0]));
        }
        let b = with_header(
            1,
            "{'shape': (2L, 1), 'fortran_order': True, 'descr': '|u1'}",
            &[7, 8],
        );
        assert_eq!(parse(&b, Path::new("f.npy")).unwrap().shape, vec![2, 1]);
    }

    #[test]
    fn clear_errors() {
        let p = Path::new("bad.npy");
        let msg = |b: &[u8]| parse(b, p).unwrap_err().to_string();
        assert!(msg(b"hello world").contains("magic"));
        let e = msg(&with_header(
            1,
            "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
            &[0; 4],
        ));
        assert!(e.contains("big-endian") && e.contains("bad.npy"), "{e}");
        let e = msg(&with_header(
            1,
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
            &[0; 16],
        ));
        assert!(e.contains("fortran_order"), "{e}");
        let e = msg(&with_header(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            &[0; 8],
        ));
        assert!(e.contains("truncated"), "{e}");
        let e = msg(&with_header(
            1,
            "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
            &[0; 8],
        ));
        assert!(e.contains("'<c8'"), "{e}");
        let e = msg(&with_header(
            1,
            "{'descr': '<f4', 'shape': (1,), }",
            &[0; 4],
        ));
        assert!(e.contains("fortran_order"), "{e}");
        let e = msg(&with_header(9, "{}", &[]));
        assert!(e.contains("version"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("i.npy");
        std::fs::write(
            &f,
            to_bytes(&NpyArray {
                shape: vec![1],
                data: NpyData::I32(vec![1]),
            })
            .unwrap(),
        )
        .unwrap();
        let e = read_f32(&f).unwrap_err().to_string();
        assert!(
            e.contains("int32") && e.contains("float32") && e.contains("i.npy"),
            "{e}"
        );
        assert!(matches!(
            read(&dir.path().join("missing.npy")),
            Err(NpyError::Io { .. })
        ));
    }

    proptest! {
        #[test]
        fn f32_round_trip_any(v in prop::collection::vec(any::<f32>(), 0..100), rows in 1usize..4) {
            let n = v.len() / rows * rows;
            let a = NpyArray { shape: vec![rows, n / rows], data: NpyData::F32(v[..n].to_vec()) };
            let b = round_trip(&a);
            let (NpyData::F32(x), NpyData::F32(y)) = (&a.data, &b.data) else { unreachable!() };
            prop_assert!(x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()));
            prop_assert_eq!(a.shape, b.shape);
        }
    }
}
