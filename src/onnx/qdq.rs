//! QDQ models (docs/onnx.md#qdq-models): `QuantizeLinear`/`DequantizeLinear` pairs as onnxruntime's
//! `quantize_static` and PyTorch's quantization export write them.
//!
//! - **Weights**: `DequantizeLinear(codes, scale, zero_point)` of a constant is folded to its float value (so the
//!   rest of the importer sees an ordinary float model), and the integer codes, scales and zero points are kept
//!   ([`DqConst`]). A Conv/Gemm/MatMul weight with such an origin is stored with its own codes and ranges.
//! - **Activations**: a `QuantizeLinear → DequantizeLinear` pair on an activation is the identity in the float
//!   graph; its scale and zero point ([`ActQ`]) are recorded for the value and used by the int8 datapath.
//!
//! The arithmetic is ONNX's: `DequantizeLinear(q) = (q − z)·s` and `QuantizeLinear(x) = saturate(round_half_even(x / s) + z)`,
//! both in f32, per tensor or along one axis.
use super::proto::tensor_proto::DataType;
use super::tensor::Tensor;

type R<T> = Result<T, String>;

/// Integer element types of Q/DQ codes the importer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QType {
    Int8,
    Uint8,
    Int32,
}

impl QType {
    /// The type of an ONNX data type code, if Q/DQ codes of it are supported.
    pub fn from_onnx(dt: i32) -> Option<QType> {
        match DataType::try_from(dt).ok()? {
            DataType::Int8 => Some(QType::Int8),
            DataType::Uint8 => Some(QType::Uint8),
            DataType::Int32 => Some(QType::Int32),
            _ => None,
        }
    }
    pub fn onnx(self) -> i32 {
        match self {
            QType::Int8 => DataType::Int8 as i32,
            QType::Uint8 => DataType::Uint8 as i32,
            QType::Int32 => DataType::Int32 as i32,
        }
    }
    pub fn range(self) -> (i64, i64) {
        match self {
            QType::Int8 => (-128, 127),
            QType::Uint8 => (0, 255),
            QType::Int32 => (i32::MIN as i64, i32::MAX as i64),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            QType::Int8 => "int8",
            QType::Uint8 => "uint8",
            QType::Int32 => "int32",
        }
    }
}

/// A constant that `DequantizeLinear` produced: its integer codes and quantization parameters.
#[derive(Clone, Debug)]
pub struct DqConst {
    pub dims: Vec<usize>,
    pub codes: Vec<i64>,
    pub qtype: QType,
    /// One scale and zero point per slice along `axis`, or one for the whole tensor (`axis = None`).
    pub scale: Vec<f32>,
    pub zero: Vec<i64>,
    pub axis: Option<usize>,
}

/// The quantization parameters of one activation (a `QuantizeLinear` on a non-constant value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActQ {
    pub scale: f32,
    pub zero: i64,
    pub qtype: QType,
}

/// Scale and zero point inputs of a Q/DQ node: per tensor (`axis = None`) or per slice along `axis` of `dims`.
pub struct Params {
    pub scale: Vec<f32>,
    pub zero: Vec<i64>,
    pub qtype: QType,
    pub axis: Option<usize>,
}

/// Reads the scale (input 1) and optional zero point (input 2) of a Q/DQ node on a tensor of rank `rank`
/// (`dims`, when constant). `zero_type`: the zero point's ONNX type (`None` without a zero point: uint8 for
/// QuantizeLinear, as ONNX says; `default`).
pub fn params(
    scale: &Tensor,
    zero: Option<(&Tensor, i32)>,
    default: QType,
    axis_attr: i64,
    block_size: i64,
    dims: Option<&[usize]>,
    rank: usize,
) -> R<Params> {
    if block_size != 0 {
        return Err(format!(
            "block_size = {block_size}: blocked quantization is not supported"
        ));
    }
    let s = scale.as_f32();
    if let Some(i) = s.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(format!(
            "scale element {i} is {}; allowed a finite value > 0",
            s[i]
        ));
    }
    let qtype = match zero {
        Some((_, dt)) => QType::from_onnx(dt).ok_or_else(|| {
            format!("zero point of ONNX type {dt}: only int8, uint8 and int32 codes are supported")
        })?,
        None => default,
    };
    let z: Vec<i64> = match zero {
        Some((t, _)) => t
            .as_i64()
            .ok_or("the zero point must be an integer tensor")?
            .to_vec(),
        None => vec![0; s.len()],
    };
    if z.len() != s.len() {
        return Err(format!("{} scales but {} zero points", s.len(), z.len()));
    }
    let (lo, hi) = qtype.range();
    if let Some(v) = z.iter().find(|v| !(lo..=hi).contains(*v)) {
        return Err(format!(
            "zero point {v} is outside the {} range",
            qtype.name()
        ));
    }
    let axis = if s.len() == 1 && scale.dims.iter().all(|&d| d == 1) {
        None
    } else {
        let ax = super::fold::axis(axis_attr, rank)?;
        match dims {
            Some(d) if d[ax] != s.len() => {
                return Err(format!(
                    "{} scales along axis {ax} of a tensor of shape {d:?}",
                    s.len()
                ))
            }
            _ => {}
        }
        Some(ax)
    };
    Ok(Params {
        scale: s,
        zero: z,
        qtype,
        axis,
    })
}

/// Index into the per-axis parameters of each element of a tensor of shape `dims`.
fn group_of(dims: &[usize], axis: Option<usize>) -> impl Fn(usize) -> usize + '_ {
    let inner: usize = axis.map_or(1, |a| dims[a + 1..].iter().product());
    let len = axis.map_or(1, |a| dims[a]);
    move |i| if axis.is_some() { (i / inner) % len } else { 0 }
}

/// ONNX `DequantizeLinear` of constant codes: `(q − z)·s` in f32.
pub fn dequantize(codes: &[i64], dims: &[usize], p: &Params) -> Vec<f32> {
    let g = group_of(dims, p.axis);
    codes
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let k = g(i);
            (q - p.zero[k]) as f32 * p.scale[k]
        })
        .collect()
}

/// ONNX `QuantizeLinear` of constant floats: `saturate(round_half_even(x / s) + z)`.
pub fn quantize(x: &[f32], dims: &[usize], p: &Params) -> Vec<i64> {
    let g = group_of(dims, p.axis);
    let (lo, hi) = p.qtype.range();
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let k = g(i);
            let t = (v / p.scale[k]).round_ties_even();
            let t = if t.is_nan() { 0.0 } else { t };
            ((t as i64).saturating_add(p.zero[k])).clamp(lo, hi)
        })
        .collect()
}

/// How a QDQ weight is stored in accelsim's symmetric 8-bit channel scheme (docs/onnx.md#qdq-models).
#[derive(Clone, Debug)]
pub struct StoredWeight {
    /// Codes in the scheme's storage type as i64: int8 as is (signed), uint8 as is (offset binary, z = 128).
    pub codes: Vec<i64>,
    /// The scale of each output channel (row of the `[out, ...]` weight).
    pub scale: Vec<f32>,
    pub signed: bool,
}

/// The symmetric range `hi` whose step `hi / 127` is exactly `s` in f32, so that accelsim's decoder
/// (`v·Δ`, Δ = hi/127) reproduces ONNX's `(q − z)·s` bit for bit. `None` if no float within 8 ulps works.
pub fn exact_symmetric_hi(s: f32) -> Option<f32> {
    let start = s * 127.0;
    let mut lo = start;
    let mut hi = start;
    for _ in 0..=8 {
        for h in [lo, hi] {
            if h.is_finite() && h / 127.0 == s && (127.0f32 * (h / 127.0)) <= h {
                return Some(h);
            }
        }
        lo = lo.next_down();
        hi = hi.next_up();
    }
    None
}

/// The weight of a Conv (`[out, ...]`, `per_out_axis = 0`) or of a Gemm/MatMul (`[k, n]` with
/// `per_out_axis = 1`, transposed to `[n, k]` here when `transpose`) as stored codes, or a one-line reason why
/// its quantization is not supported.
pub fn stored_weight(
    dq: &DqConst,
    out: usize,
    per_out_axis: usize,
    transpose: bool,
) -> R<StoredWeight> {
    let signed = match dq.qtype {
        QType::Int8 => true,
        QType::Uint8 => false,
        QType::Int32 => return Err("int32 weight codes are not supported (int8 or uint8)".into()),
    };
    let symmetric_zero = if signed { 0 } else { 128 };
    if let Some(z) = dq.zero.iter().find(|&&z| z != symmetric_zero) {
        return Err(format!(
            "weight zero point {z}: only symmetric {} weights (zero point {symmetric_zero}) are supported, as onnxruntime's default QInt8 weights",
            dq.qtype.name()
        ));
    }
    let min_code = if signed { -127 } else { 1 };
    if let Some(v) = dq.codes.iter().find(|&&v| v < min_code) {
        return Err(format!(
            "weight code {v}: accelsim's symmetric 8-bit range is ±127 around the zero point (quantize weights symmetrically to [-127, 127])"
        ));
    }
    let scale: Vec<f32> = match dq.axis {
        None => vec![dq.scale[0]; out],
        Some(a) if a == per_out_axis => dq.scale.clone(),
        Some(a) => {
            return Err(format!(
                "weights quantized along axis {a}: only per tensor or per output channel (axis {per_out_axis})"
            ))
        }
    };
    let codes = if transpose {
        let [k, n] = dq.dims[..] else {
            return Err(format!("weight shape {:?}: expected a matrix", dq.dims));
        };
        let mut t = vec![0; n * k];
        for i in 0..k {
            for j in 0..n {
                t[j * k + i] = dq.codes[i * n + j];
            }
        }
        t
    } else {
        dq.codes.clone()
    };
    Ok(StoredWeight {
        codes,
        scale,
        signed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_hi_reproduces_the_scale() {
        let mut x = 1.0e-4f32;
        while x < 10.0 {
            let h = exact_symmetric_hi(x).expect("some hi");
            assert_eq!(h / 127.0, x);
            for v in -127i32..=127 {
                assert_eq!((v as f32 * (h / 127.0)).to_bits(), (v as f32 * x).to_bits());
            }
            x *= 1.37;
        }
    }

    #[test]
    fn quantize_linear_rounds_half_to_even_and_saturates() {
        let p = Params {
            scale: vec![0.5],
            zero: vec![10],
            qtype: QType::Uint8,
            axis: None,
        };
        // 1.25/0.5 = 2.5 -> 2; 1.75/0.5 = 3.5 -> 4; -100 saturates at 0; 1000 at 255.
        assert_eq!(
            quantize(&[1.25, 1.75, -100.0, 1000.0], &[4], &p),
            vec![12, 14, 0, 255]
        );
        assert_eq!(dequantize(&[12, 14, 0], &[3], &p), vec![1.0, 2.0, -5.0]);
    }

    #[test]
    fn per_axis_parameters_follow_the_axis() {
        let p = Params {
            scale: vec![1.0, 2.0],
            zero: vec![0, 1],
            qtype: QType::Int8,
            axis: Some(1),
        };
        // dims [2, 2]: elements (0,0) (0,1) (1,0) (1,1) use groups 0 1 0 1.
        assert_eq!(
            dequantize(&[1, 1, 2, 2], &[2, 2], &p),
            vec![1.0, 0.0, 2.0, 2.0]
        );
    }
}
