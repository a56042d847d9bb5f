//! Per-tensor activation quantization (docs/datapath.md#activations): ONNX `QuantizeLinear`/`DequantizeLinear`
//! on one byte per value, and the calibration that picks each tensor's scale and zero point.
//!
//! - `uint8` (a tensor that is never negative on the calibration images, e.g. after ReLU): codes `0..=255`,
//!   `x ≈ s·(q - z)`.
//! - `int8` (otherwise): codes `-128..=127` held as their two's-complement byte, `x ≈ s·(q - z)`.
//!
//! Quantize: `q = saturate(round_half_even(x / s) + z)`; dequantize: `x = (q - z) as f32 · s` (f32 throughout,
//! as ONNX). Inside the kernels every code is handled as its *unsigned view* `u = q + 128` for int8 (the byte
//! with its top bit flipped) and `u = q` for uint8, with zero point `z_u` likewise, so that the u8 × i8 products
//! of `vpdpbusd` apply to both (docs/datapath.md#kernels).

/// `round_half_even(t)` for the quantizers, without a libm call (vectorizes): `t` is first clamped to
/// `±2^22` (any such value saturates every 8-bit code range anyway), where adding and subtracting `1.5·2^23`
/// rounds to the nearest integer, ties to even, in the default rounding mode. NaN stays NaN (`as i32` gives 0).
#[inline(always)]
pub fn round_half_even_clamped(t: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let t = t.clamp(-4_194_304.0, 4_194_304.0);
    (t + MAGIC) - MAGIC
}

/// ONNX `QuantizeLinear` of one value to a code: `clamp(round_half_even(x / s) + z, lo, hi)`, NaN → `z`.
/// Written to vectorize: NaN is replaced by 0 before the division, the quotient is clamped to `±2^22` (which
/// saturates every 8-bit code range anyway) and rounded with [`round_half_even_clamped`]'s constant, so the
/// conversion to an integer is exact.
#[inline(always)]
pub fn quantize_code(x: f32, s: f32, z: i32, lo: i32, hi: i32) -> i32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let x = if x.is_nan() { 0.0 } else { x };
    let t = (x / s).clamp(-4_194_304.0, 4_194_304.0);
    let r = (t + MAGIC) - MAGIC;
    // SAFETY: r is an integer-valued float in [-2^22, 2^22] (x is not NaN and s > 0), representable in i32.
    let q = unsafe { r.to_int_unchecked::<i32>() };
    (q + z).clamp(lo, hi)
}

/// Scale and zero point of one activation tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    /// s > 0, finite.
    pub scale: f32,
    /// Zero point in the code's own type: `0..=255` (uint8) or `-128..=127` (int8).
    pub zero: i32,
    /// int8 codes (two's-complement bytes) when true, uint8 otherwise.
    pub signed: bool,
}

impl QParams {
    /// Smallest and largest code.
    pub fn code_range(&self) -> (i32, i32) {
        if self.signed {
            (-128, 127)
        } else {
            (0, 255)
        }
    }

    /// The zero point in the unsigned view (`z + 128` for int8).
    pub fn zero_u(&self) -> i32 {
        if self.signed {
            self.zero + 128
        } else {
            self.zero
        }
    }

    /// The code of a stored byte (sign-extended for int8).
    #[inline(always)]
    pub fn code_of(&self, byte: u8) -> i32 {
        if self.signed {
            byte as i8 as i32
        } else {
            byte as i32
        }
    }

    /// The stored byte of a code in the code range.
    #[inline(always)]
    pub fn byte_of(&self, code: i32) -> u8 {
        code as u8
    }

    /// The unsigned view `u` of a stored byte (`byte ^ 0x80` for int8).
    #[inline(always)]
    pub fn unsigned_view(&self, byte: u8) -> u8 {
        if self.signed {
            byte ^ 0x80
        } else {
            byte
        }
    }

    /// ONNX `QuantizeLinear`: `saturate(round_half_even(x / s) + z)`, as a stored byte. NaN maps to the zero point.
    #[inline(always)]
    pub fn quantize(&self, x: f32) -> u8 {
        let (lo, hi) = self.code_range();
        self.byte_of(quantize_code(x, self.scale, self.zero, lo, hi))
    }

    /// ONNX `DequantizeLinear`: `(q - z) · s` in f32.
    #[inline(always)]
    pub fn dequantize(&self, byte: u8) -> f32 {
        (self.code_of(byte) - self.zero) as f32 * self.scale
    }

    /// The 256-entry table of [`QParams::dequantize`] indexed by the stored byte.
    pub fn dequant_table(&self) -> [f32; 256] {
        let mut t = [0.0f32; 256];
        for (b, v) in t.iter_mut().enumerate() {
            *v = self.dequantize(b as u8);
        }
        t
    }

    /// Parameters for a tensor observed in `[min, max]` (docs/datapath.md#calibration): uint8 with `z = 0` and
    /// `s = max / 255` when `min ≥ 0`; otherwise int8 over `[min(min, 0), max(max, 0)]` with
    /// `s = (hi - lo) / 255` and `z = round_half_even(-128 - lo / s)` clamped to `-128..=127`, so that real 0 is
    /// exactly representable. A degenerate range (all zero, or not finite) gets `s = 1`.
    pub fn from_range(min: f32, max: f32) -> QParams {
        let finite = min.is_finite() && max.is_finite() && min <= max;
        if finite && min >= 0.0 {
            let s = max / 255.0;
            return QParams {
                scale: if s > 0.0 && s.is_finite() { s } else { 1.0 },
                zero: 0,
                signed: false,
            };
        }
        let (lo, hi) = if finite {
            (min.min(0.0), max.max(0.0))
        } else {
            (-1.0, 1.0)
        };
        let s = (hi - lo) / 255.0;
        let s = if s > 0.0 && s.is_finite() { s } else { 1.0 };
        let z = (-128.0 - lo / s).round_ties_even().clamp(-128.0, 127.0) as i32;
        QParams {
            scale: s,
            zero: z,
            signed: true,
        }
    }
}

/// Running minimum and maximum of one tensor over the calibration images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

impl Default for Range {
    fn default() -> Self {
        Range {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        }
    }
}

impl Range {
    /// Widens the range by every finite value of `x` (NaN and infinities are ignored).
    pub fn observe(&mut self, x: &[f32]) {
        for &v in x {
            if v.is_finite() {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            }
        }
    }

    /// True when no finite value was observed.
    pub fn is_empty(&self) -> bool {
        self.min > self.max
    }

    /// The activation parameters for this range, see [`QParams::from_range`].
    pub fn qparams(&self) -> QParams {
        if self.is_empty() {
            QParams::from_range(0.0, 0.0)
        } else {
            QParams::from_range(self.min, self.max)
        }
    }
}
