//! ONNX `TensorProto` → a checked, dense [`Tensor`] (float32 or int64), with its data from the typed fields,
//! `raw_data` or an external-data file (docs/onnx.md).
//!
//! Every size is checked before anything is allocated: the declared dims must multiply (without overflow) to at
//! most [`MAX_ELEMENTS`], and the data present (typed field length, `raw_data` bytes, or the external file's
//! `length`/remaining bytes) must match the declared element count exactly.
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use super::proto::tensor_proto::{DataLocation, DataType};
use super::proto::TensorProto;

/// Largest element count of any one tensor (2^31: 8 GiB of float32, far beyond any CNN this simulator runs).
pub const MAX_ELEMENTS: usize = 1 << 31;

/// A dense constant tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dims: Vec<usize>,
    pub data: Data,
}

/// Element storage: floating-point types widen to f32, integer and boolean types to i64.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Tensor {
    pub fn f32(dims: Vec<usize>, v: Vec<f32>) -> Tensor {
        Tensor {
            dims,
            data: Data::F32(v),
        }
    }
    pub fn i64(dims: Vec<usize>, v: Vec<i64>) -> Tensor {
        Tensor {
            dims,
            data: Data::I64(v),
        }
    }
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The values as f32 (integers converted).
    pub fn as_f32(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    /// The values as i64, or `None` for float data.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(v) => Some(v),
            Data::F32(_) => None,
        }
    }
}

/// Number of elements of `dims`, or `None` when it overflows or exceeds [`MAX_ELEMENTS`].
pub fn checked_numel(dims: &[usize]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
}

/// Element type name for messages.
fn type_name(dt: i32) -> String {
    DataType::try_from(dt)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("data type {dt}"))
}

/// Decodes `t`; external data is resolved relative to `base_dir` (the model file's folder). Errors are one line
/// naming the tensor.
pub fn decode(t: &TensorProto, base_dir: &Path) -> Result<Tensor, String> {
    let name = t.name.as_deref().unwrap_or("");
    let err = |msg: String| format!("tensor \"{name}\": {msg}");
    let mut dims = Vec::with_capacity(t.dims.len().min(16));
    for &d in &t.dims {
        if d < 0 {
            return Err(err(format!("negative dimension {d} in {:?}", t.dims)));
        }
        dims.push(usize::try_from(d).map_err(|_| err(format!("dimension {d} is too large")))?);
    }
    let n = checked_numel(&dims).ok_or_else(|| {
        err(format!(
            "declared shape {:?} has more than {MAX_ELEMENTS} elements",
            t.dims
        ))
    })?;
    let dt = t.data_type.unwrap_or(0);
    let dtype = DataType::try_from(dt).map_err(|_| err(format!("unknown data type {dt}")))?;
    let width = match dtype {
        DataType::Float | DataType::Int32 | DataType::Uint32 => 4,
        DataType::Double | DataType::Int64 | DataType::Uint64 => 8,
        DataType::Float16 | DataType::Bfloat16 | DataType::Int16 | DataType::Uint16 => 2,
        DataType::Int8 | DataType::Uint8 | DataType::Bool => 1,
        _ => {
            return Err(err(format!(
            "{} tensors are not supported (float, double, float16, bfloat16 and integer types are)",
            type_name(dt)
        )))
        }
    };
    let external =
        t.data_location == Some(DataLocation::External as i32) || !t.external_data.is_empty();
    let raw: Option<Vec<u8>> = if external {
        Some(read_external(t, base_dir, n, width).map_err(err)?)
    } else {
        t.raw_data.clone()
    };
    if let Some(raw) = raw {
        let want = n
            .checked_mul(width)
            .ok_or_else(|| err("too large".into()))?;
        if raw.len() != want {
            return Err(err(format!(
                "shape {dims:?} of {} needs {want} bytes of data, the file holds {}",
                type_name(dt),
                raw.len()
            )));
        }
        return Ok(Tensor {
            dims,
            data: from_raw(dtype, &raw),
        });
    }
    // Typed fields.
    let got = match dtype {
        DataType::Float => t.float_data.len(),
        DataType::Double => t.double_data.len(),
        DataType::Int64 => t.int64_data.len(),
        DataType::Uint32 | DataType::Uint64 => t.uint64_data.len(),
        _ => t.int32_data.len(),
    };
    if got != n {
        return Err(err(format!(
            "shape {dims:?} declares {n} elements, the tensor holds {got}"
        )));
    }
    let data = match dtype {
        DataType::Float => Data::F32(t.float_data.clone()),
        DataType::Double => Data::F32(t.double_data.iter().map(|&x| x as f32).collect()),
        DataType::Float16 => {
            Data::F32(t.int32_data.iter().map(|&x| f16_to_f32(x as u16)).collect())
        }
        DataType::Bfloat16 => Data::F32(
            t.int32_data
                .iter()
                .map(|&x| f32::from_bits((x as u32 & 0xffff) << 16))
                .collect(),
        ),
        DataType::Int64 => Data::I64(t.int64_data.clone()),
        DataType::Uint32 | DataType::Uint64 => Data::I64(
            t.uint64_data
                .iter()
                .map(|&x| x.min(i64::MAX as u64) as i64)
                .collect(),
        ),
        _ => Data::I64(t.int32_data.iter().map(|&x| x as i64).collect()),
    };
    Ok(Tensor { dims, data })
}

fn from_raw(dtype: DataType, raw: &[u8]) -> Data {
    let c2 = || raw.chunks_exact(2).map(|b| [b[0], b[1]]);
    let c4 = || raw.chunks_exact(4).map(|b| [b[0], b[1], b[2], b[3]]);
    let c8 = || {
        raw.chunks_exact(8)
            .map(|b| [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    };
    match dtype {
        DataType::Float => Data::F32(c4().map(f32::from_le_bytes).collect()),
        DataType::Double => Data::F32(c8().map(|b| f64::from_le_bytes(b) as f32).collect()),
        DataType::Float16 => Data::F32(c2().map(|b| f16_to_f32(u16::from_le_bytes(b))).collect()),
        DataType::Bfloat16 => Data::F32(
            c2().map(|b| f32::from_bits((u16::from_le_bytes(b) as u32) << 16))
                .collect(),
        ),
        DataType::Int64 => Data::I64(c8().map(i64::from_le_bytes).collect()),
        DataType::Uint64 => Data::I64(
            c8().map(|b| u64::from_le_bytes(b).min(i64::MAX as u64) as i64)
                .collect(),
        ),
        DataType::Int32 => Data::I64(c4().map(|b| i32::from_le_bytes(b) as i64).collect()),
        DataType::Uint32 => Data::I64(c4().map(|b| u32::from_le_bytes(b) as i64).collect()),
        DataType::Int16 => Data::I64(c2().map(|b| i16::from_le_bytes(b) as i64).collect()),
        DataType::Uint16 => Data::I64(c2().map(|b| u16::from_le_bytes(b) as i64).collect()),
        DataType::Int8 => Data::I64(raw.iter().map(|&b| b as i8 as i64).collect()),
        _ => Data::I64(raw.iter().map(|&b| b as i64).collect()),
    }
}

/// IEEE 754 binary16 → f32 (exact: every half value is representable).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: value = f · 2^-24.
            let v = f as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Reads the bytes of an external-data tensor: `location` (relative, inside the model's folder), `offset`
/// (default 0) and `length` (default: the rest of the file), checked against the declared size before reading.
fn read_external(
    t: &TensorProto,
    base_dir: &Path,
    n: usize,
    width: usize,
) -> Result<Vec<u8>, String> {
    let mut location = None;
    let mut offset = 0u64;
    let mut length = None;
    for kv in &t.external_data {
        let v = kv.value.as_deref().unwrap_or("");
        let num = |what: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("external data {what} \"{v}\" is not a non-negative integer"))
        };
        match kv.key.as_deref().unwrap_or("") {
            "location" => location = Some(v.to_string()),
            "offset" => offset = num("offset")?,
            "length" => length = Some(num("length")?),
            _ => {}
        }
    }
    let location = location.ok_or("external data without a \"location\"")?;
    let rel = Path::new(&location);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "external data location \"{location}\" must be a relative path inside the model's folder"
        ));
    }
    let path = base_dir.join(rel);
    let mut f = std::fs::File::open(&path)
        .map_err(|e| format!("cannot open external data {}: {e}", path.display()))?;
    let size = f
        .metadata()
        .map_err(|e| format!("cannot read external data {}: {e}", path.display()))?
        .len();
    let want = (n as u64).saturating_mul(width as u64);
    let length = length.unwrap_or(size.saturating_sub(offset));
    if length != want {
        return Err(format!(
            "external data length {length} bytes, the declared shape needs {want}"
        ));
    }
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(format!(
            "external data {}: bytes {offset}..{} lie beyond the file's {size} bytes (truncated?)",
            path.display(),
            offset.saturating_add(length)
        ));
    }
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("cannot read external data {}: {e}", path.display()))?;
    let mut buf = vec![0u8; length as usize];
    f.read_exact(&mut buf)
        .map_err(|e| format!("cannot read external data {}: {e}", path.display()))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::StringStringEntryProto;

    fn proto(dims: &[i64], dt: DataType) -> TensorProto {
        TensorProto {
            name: Some("t".into()),
            dims: dims.to_vec(),
            data_type: Some(dt as i32),
            ..Default::default()
        }
    }

    #[test]
    fn f16_matches_the_definition_for_every_value() {
        for h in 0..=u16::MAX {
            let (s, e, f) = (
                (h >> 15) as i32,
                ((h >> 10) & 0x1f) as i32,
                (h & 0x3ff) as f64,
            );
            let v = if e == 0 {
                f * 2f64.powi(-24)
            } else if e == 31 {
                if f == 0.0 {
                    f64::INFINITY
                } else {
                    f64::NAN
                }
            } else {
                (1.0 + f / 1024.0) * 2f64.powi(e - 15)
            };
            let v = if s == 1 { -v } else { v };
            let got = f16_to_f32(h) as f64;
            assert!(
                got == v || (got.is_nan() && v.is_nan()),
                "{h:#06x}: {got} vs {v}"
            );
            if v == 0.0 {
                assert_eq!(got.is_sign_negative(), s == 1);
            }
        }
    }

    #[test]
    fn decodes_typed_raw_and_checks_sizes() {
        let mut t = proto(&[2, 2], DataType::Float);
        t.float_data = vec![1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            decode(&t, Path::new(".")).unwrap().as_f32(),
            vec![1.0, 2.0, 3.0, 4.0]
        );
        t.float_data.pop();
        assert!(decode(&t, Path::new("."))
            .unwrap_err()
            .contains("declares 4 elements, the tensor holds 3"));
        let mut t = proto(&[3], DataType::Int64);
        t.raw_data = Some([5i64, -1, 7].iter().flat_map(|x| x.to_le_bytes()).collect());
        assert_eq!(
            decode(&t, Path::new(".")).unwrap().as_i64().unwrap(),
            &[5, -1, 7]
        );
        t.raw_data.as_mut().unwrap().pop();
        assert!(decode(&t, Path::new("."))
            .unwrap_err()
            .contains("needs 24 bytes"));
        // A huge claimed dimension is an error, not an allocation.
        let t = proto(&[1 << 40, 1 << 40], DataType::Float);
        assert!(decode(&t, Path::new("."))
            .unwrap_err()
            .contains("more than"));
        let t = proto(&[-1], DataType::Float);
        assert!(decode(&t, Path::new(".")).unwrap_err().contains("negative"));
        let t = proto(&[1], DataType::String);
        assert!(decode(&t, Path::new(".")).unwrap_err().contains("STRING"));
    }

    #[test]
    fn external_data_is_bounded_and_stays_in_the_folder() {
        let d = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = [0.5f32, 1.5, 2.5]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        std::fs::write(d.path().join("w.bin"), [&[9u8; 4][..], &bytes].concat()).unwrap();
        let ext = |kv: &[(&str, &str)]| {
            let mut t = proto(&[3], DataType::Float);
            t.data_location = Some(DataLocation::External as i32);
            t.external_data = kv
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: Some(k.to_string()),
                    value: Some(v.to_string()),
                })
                .collect();
            decode(&t, d.path())
        };
        let ok = ext(&[("location", "w.bin"), ("offset", "4"), ("length", "12")]).unwrap();
        assert_eq!(ok.as_f32(), vec![0.5, 1.5, 2.5]);
        assert_eq!(ext(&[("location", "w.bin"), ("offset", "4")]).unwrap(), ok);
        assert!(
            ext(&[("location", "w.bin"), ("offset", "8"), ("length", "12")])
                .unwrap_err()
                .contains("beyond the file")
        );
        assert!(ext(&[("location", "w.bin"), ("length", "8")])
            .unwrap_err()
            .contains("needs 12"));
        assert!(ext(&[("location", "../w.bin")])
            .unwrap_err()
            .contains("inside the model's folder"));
        assert!(ext(&[("location", "/etc/passwd")])
            .unwrap_err()
            .contains("relative path"));
        assert!(ext(&[("location", "missing.bin")])
            .unwrap_err()
            .contains("cannot open"));
    }
}
