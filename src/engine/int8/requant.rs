//! Requantization of int32 accumulators to 8-bit codes (docs/datapath.md#requantization).
//!
//! Both modes compute `y = saturate(R(acc · M + asum · M_c) + z_out)` for one output value, where `acc` is the
//! int32 accumulator including the int32 bias, `asum` the window sum of the centred activations (non-zero only
//! for asymmetric weight schemes, see docs/datapath.md#weights), `M = s_a·s_w/s_out` and `M_c = s_a·c_w/s_out`:
//!
//! - [`RequantMode::Float`] (default, as ONNX `QLinearConv`/`QuantizeLinear` and onnxruntime's kernels):
//!   `M` and `M_c` are f32, the sum `acc as f32 · M + asum as f32 · M_c` is f32, `R` rounds half to even.
//! - [`RequantMode::FixedPoint`] (gemmlowp/TFLite style): `M ≈ m0 · 2^-n` with a 31-bit `m0 ∈ [2^30, 2^31)`
//!   (and `M_c ≈ m_c · 2^-n` with the same `n`); `R(t) = (t·2^n + 2^(n-1)) >> n`, i.e. round half up, computed
//!   exactly in i128 (TFLite's single-rounding `MultiplyByQuantizedMultiplier`).

/// How accumulators are scaled to output codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum RequantMode {
    /// f32 multiplier, round half to even (ONNX).
    #[default]
    Float,
    /// Integer multiplier and right shift, round half up (gemmlowp/TFLite).
    FixedPoint,
}

/// Largest total right shift of a fixed-point multiplier (keeps `x · m0 + 2^(n-1)` inside i128).
pub const MAX_SHIFT: u32 = 90;

/// A real multiplier as `m0 · 2^-shift` (docs/datapath.md#requantization).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedMultiplier {
    /// `|m0| ∈ [2^30, 2^31)` unless the multiplier is 0, tiny (`shift` capped) or ≥ 2^31 (`shift` 0).
    pub m0: i64,
    pub shift: u32,
}

impl FixedMultiplier {
    /// The fixed-point form of `m` (finite): `shift` chosen so that `|m| · 2^shift ∈ [2^30, 2^31)`, capped to
    /// `0..=MAX_SHIFT`; `m0 = round_half_even(m · 2^shift)` computed in f64.
    pub fn from_real(m: f64) -> FixedMultiplier {
        if m == 0.0 || !m.is_finite() {
            return FixedMultiplier { m0: 0, shift: 0 };
        }
        let mut shift: i32 = 0;
        let a = m.abs();
        // frexp: a = f · 2^e, f ∈ [0.5, 1) → a · 2^(31-e) ∈ [2^30, 2^31).
        let e = a.log2().floor() as i32 + 1;
        shift += 31 - e;
        let shift = shift.clamp(0, MAX_SHIFT as i32) as u32;
        let m0 = (m * 2f64.powi(shift as i32)).round_ties_even();
        FixedMultiplier {
            m0: m0.clamp(-(i64::MAX as f64), i64::MAX as f64) as i64,
            shift,
        }
    }

    /// A second multiplier on the same shift (for `M_c` next to `M`).
    pub fn with_shift(m: f64, shift: u32) -> i64 {
        if !m.is_finite() {
            return 0;
        }
        (m * 2f64.powi(shift as i32))
            .round_ties_even()
            .clamp(-(i64::MAX as f64), i64::MAX as f64) as i64
    }
}

/// Per-output-channel requantization constants of one conv/linear/pool output.
#[derive(Clone, Debug, PartialEq)]
pub struct Requant {
    pub mode: RequantMode,
    /// `M` per output channel (f32, float mode).
    pub m: Vec<f32>,
    /// `M_c` per output channel (f32, float mode); empty when no asymmetric weight term exists.
    pub mc: Vec<f32>,
    /// Fixed-point `M` per channel and `M_c` on the same shift (fixed-point mode).
    pub fx: Vec<FixedMultiplier>,
    pub fxc: Vec<i64>,
    /// An additive per-channel term in output-code units (empty: none; only a folded BatchNorm whose scale is
    /// 0 needs it): f32 in float mode, on the channel's shift in fixed-point mode.
    pub off: Vec<f32>,
    pub fxo: Vec<i64>,
    /// Output zero point and the saturation bounds (codes, inclusive; a fused ReLU/clip narrows them).
    pub zero: i32,
    pub lo: i32,
    pub hi: i32,
}

impl Requant {
    /// Constants for real multipliers `m` (and `mc`, possibly empty), computed in f64 and rounded once.
    pub fn new(mode: RequantMode, m: &[f64], mc: &[f64], zero: i32, lo: i32, hi: i32) -> Requant {
        let fx: Vec<FixedMultiplier> = m.iter().map(|&v| FixedMultiplier::from_real(v)).collect();
        let fxc = mc
            .iter()
            .zip(&fx)
            .map(|(&v, f)| FixedMultiplier::with_shift(v, f.shift))
            .collect();
        Requant {
            mode,
            m: m.iter().map(|&v| v as f32).collect(),
            mc: mc.iter().map(|&v| v as f32).collect(),
            fx,
            fxc,
            off: Vec::new(),
            fxo: Vec::new(),
            zero,
            lo,
            hi,
        }
    }

    /// The same constants with the additive term `off` (output-code units per channel; all zero: none).
    pub fn with_offset(mut self, off: &[f64]) -> Requant {
        if off.iter().any(|&v| v != 0.0) {
            self.off = off.iter().map(|&v| v as f32).collect();
            self.fxo = off
                .iter()
                .zip(&self.fx)
                .map(|(&v, f)| FixedMultiplier::with_shift(v, f.shift))
                .collect();
        }
        self
    }

    /// The output code (not yet as a byte) of channel `c` for accumulator `acc` and window sum `asum`.
    #[inline(always)]
    pub fn apply(&self, c: usize, acc: i32, asum: i32) -> i32 {
        let r = match self.mode {
            RequantMode::Float => {
                let mut t = acc as f32 * self.m[c];
                if !self.mc.is_empty() {
                    t += asum as f32 * self.mc[c];
                }
                if !self.off.is_empty() {
                    t += self.off[c];
                }
                // |t| clamped to 2^22 (saturates every code range); NaN maps to 0.
                super::quantize::round_half_even_clamped(t) as i64
            }
            RequantMode::FixedPoint => {
                let f = self.fx[c];
                let mut t = acc as i128 * f.m0 as i128;
                if !self.fxc.is_empty() {
                    t += asum as i128 * self.fxc[c] as i128;
                }
                if !self.fxo.is_empty() {
                    t += self.fxo[c] as i128;
                }
                let r = if f.shift == 0 {
                    t
                } else {
                    (t + (1i128 << (f.shift - 1))) >> f.shift
                };
                r.clamp(i64::MIN as i128, i64::MAX as i128) as i64
            }
        };
        (r.saturating_add(self.zero as i64)).clamp(self.lo as i64, self.hi as i64) as i32
    }
}
