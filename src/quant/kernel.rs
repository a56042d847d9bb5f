//! Scalar encode/decode of one quantization group, with every constant precomputed once per group.
//!
//! The operations and their order follow the normative arithmetic of `docs/quantization.md` exactly (all f32,
//! no reciprocal multiplications, no fused operations), so results are bit-identical to the slow reference in
//! [`super::reference`] and to the PyTorch companion.

use super::{GroupRange, QuantConfig, Rounding, EPS};

/// Encoder/decoder for one group of one tensor: the scheme's constants and the group's clean range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupCodec {
    /// Clipping bound (docs/quantization.md#clipping), applied to the input before encoding.
    w_max: Option<f32>,
    symmetric: bool,
    signed: bool,
    nearest: bool,
    /// The group's range: symmetric [-q, q]; asymmetric [q_min, q_max].
    lo: f32,
    hi: f32,
    /// hi - lo (asymmetric span).
    span: f32,
    /// Δ: symmetric q / levels (global: q = f32(q_fixed + ε) in f64); asymmetric f32((1 + ε) / levels) in f64.
    delta: f32,
    /// Offset of offset-binary codes, 2^(m-1) (0 for signed codes).
    offset: f32,
    offset_i: i64,
    /// Storage range of codes.
    vmin: i64,
    vmax: i64,
}

/// levels = 2^(m-1) - 1 as f32 (for m = 32 this rounds to 2^31, as the normative arithmetic says).
#[inline]
pub(crate) fn levels_f32(bits: u8) -> f32 {
    ((1u64 << (bits - 1)) - 1) as f32
}

/// Δ of the asymmetric schemes: f32((1 + ε) / levels), computed in f64 and cast once.
#[inline]
pub(crate) fn asymmetric_delta(bits: u8) -> f32 {
    ((1.0_f64 + 0.001_f64) / ((1u64 << (bits - 1)) - 1) as f64) as f32
}

/// The fixed q of the global granularity: w_max, or 1 without clipping.
#[inline]
pub(crate) fn global_q_fixed(cfg: &QuantConfig) -> f32 {
    cfg.w_max.unwrap_or(1.0)
}

/// The q that sets the symmetric step Δ = q / levels for a group whose range is [-hi, hi]: the range itself for
/// per-layer/per-channel ranges (which already include ε), but f32(f64(q_fixed) + ε) for the fixed global range,
/// whose inputs and decoded values stay clamped to ±q_fixed as in the 2021 reference quantizer
/// (docs/quantization.md#paper-schemes).
#[inline]
pub(crate) fn range_step_q(cfg: &QuantConfig, hi: f32) -> f32 {
    match cfg.granularity {
        super::Granularity::Global => (hi as f64 + 0.001_f64) as f32,
        _ => hi,
    }
}

/// Storage range of codes: unsigned [0, 2^m - 1], signed [-2^(m-1), 2^(m-1) - 1].
#[inline]
pub(crate) fn storage_range(cfg: &QuantConfig) -> (i64, i64) {
    if cfg.signed {
        (-(1i64 << (cfg.bits - 1)), (1i64 << (cfg.bits - 1)) - 1)
    } else {
        (0, (1i64 << cfg.bits) - 1)
    }
}

impl GroupCodec {
    /// Codec for `cfg` (assumed valid) and a group whose clipped values have maximum |w| `max_abs` (symmetric)
    /// or minimum/maximum `min`/`max` (asymmetric). For global granularity the arguments are ignored.
    pub(crate) fn from_stats(cfg: &QuantConfig, min: f32, max: f32, max_abs: f32) -> Self {
        let (lo, hi) = if cfg.symmetric {
            let q = match cfg.granularity {
                // The range is ±q_fixed itself; ε enters only the step (see `from_range`).
                super::Granularity::Global => global_q_fixed(cfg),
                _ => {
                    let q = max_abs + EPS;
                    match cfg.w_max {
                        Some(w) => q.min(w),
                        None => q,
                    }
                }
            };
            (-q, q)
        } else {
            match cfg.granularity {
                super::Granularity::Global => {
                    let q = global_q_fixed(cfg);
                    (-q, q)
                }
                _ => (min, max),
            }
        };
        Self::from_range(cfg, GroupRange { lo, hi })
    }

    /// Codec for `cfg` (assumed valid) and a known group range.
    pub fn from_range(cfg: &QuantConfig, range: GroupRange) -> Self {
        let (vmin, vmax) = storage_range(cfg);
        let delta = if cfg.symmetric {
            range_step_q(cfg, range.hi) / levels_f32(cfg.bits)
        } else {
            asymmetric_delta(cfg.bits)
        };
        let offset_i = if cfg.signed {
            0
        } else {
            1i64 << (cfg.bits - 1)
        };
        GroupCodec {
            w_max: cfg.w_max,
            symmetric: cfg.symmetric,
            signed: cfg.signed,
            nearest: cfg.rounding == Rounding::Nearest,
            lo: range.lo,
            hi: range.hi,
            span: range.hi - range.lo,
            delta,
            offset: offset_i as f32,
            offset_i,
            vmin,
            vmax,
        }
    }

    /// The group's clean range.
    pub fn range(&self) -> GroupRange {
        GroupRange {
            lo: self.lo,
            hi: self.hi,
        }
    }

    /// Δ, the value of one code step (before the asymmetric rescaling).
    pub fn delta(&self) -> f32 {
        self.delta
    }

    /// Encodes one float into a code in the storage range (docs/quantization.md#normative-arithmetic).
    #[inline(always)]
    pub fn encode(&self, w: f32) -> i64 {
        let wc = match self.w_max {
            Some(m) => w.clamp(-m, m),
            None => w,
        };
        let t = if self.symmetric {
            wc.clamp(self.lo, self.hi) / self.delta
        } else {
            if self.hi == self.lo {
                // Constant group: the reference divides 0 by 0; we map it to the zero code instead of NaN.
                return self.offset_i;
            }
            let mut t = wc - self.lo;
            t *= 2.0;
            t /= self.span;
            t -= 1.0;
            t.clamp(-1.0, 1.0) / self.delta
        };
        let t = if self.signed { t } else { t + self.offset };
        let v = if self.nearest {
            t.round_ties_even()
        } else {
            t.trunc()
        };
        (v as i64).clamp(self.vmin, self.vmax)
    }

    /// Decodes one (possibly corrupted) code with this group's clean range.
    #[inline(always)]
    pub fn decode(&self, v: i64) -> f32 {
        let a = if self.signed {
            v as f32 * self.delta
        } else {
            (v.clamp(self.vmin, self.vmax) as f32 - self.offset) * self.delta
        };
        if self.symmetric {
            a.clamp(self.lo, self.hi)
        } else {
            let a = a.clamp(-1.0, 1.0);
            let mut b = a + 1.0;
            b /= 2.0;
            b *= self.span;
            b += self.lo;
            b.clamp(self.lo, self.hi)
        }
    }

    /// Table of the decoded value of every byte code (unsigned: the byte as is; signed 8-bit: the byte read as
    /// two's complement). Bit-identical to [`decode`](Self::decode).
    pub fn byte_table(&self) -> [f32; 256] {
        let mut t = [0.0f32; 256];
        for (b, slot) in t.iter_mut().enumerate() {
            let v = if self.signed {
                b as u8 as i8 as i64
            } else {
                b as i64
            };
            *slot = self.decode(v);
        }
        t
    }
}
