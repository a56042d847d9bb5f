//! Integer weights of the datapath from stored codes (docs/datapath.md#weights).
//!
//! A stored code `v` of any ≤ 8-bit scheme becomes the signed integer `k = clamp(v' - o, -L, L)` with
//! `L = 2^(m-1) - 1`, `o` the offset-binary offset (`2^(m-1)` unsigned, 0 signed) and `v'` the code clamped to
//! its storage range (as the float decoder does). The real weight the datapath uses is affine in `k` per output
//! channel: `w = s·k + c` with
//!
//! - symmetric schemes: `s = Δ`, `c = 0` (the zero point is the offset, removed exactly in integers);
//! - asymmetric schemes: `s = Δ·(hi - lo)/2`, `c = (lo + hi)/2` (the range `[lo, hi]` is mapped onto `[-1, 1]`);
//!   `c` is a real-valued weight zero point, applied exactly through the activation window sums
//!   (`Σ w·x = s·Σ k·x + c·Σ x`, docs/datapath.md#weights).
//!
//! This equals the float decoder `Q⁻¹(v)` except for its final clamp to the clean range, which only moves the two
//! extreme codes of asymmetric and global schemes by `ε/(1+ε)` of a half range (docs/datapath.md#weights).
use crate::engine::EngineError;
use crate::model::Model;
use crate::quant::QuantConfig;

/// Refuses schemes the 8-bit datapath cannot hold (codes wider than one byte).
pub fn check_scheme(cfg: &QuantConfig, bytes_per_value: usize) -> Result<(), EngineError> {
    if bytes_per_value != 1 || cfg.bits > 8 {
        return Err(EngineError::Unsupported(format!(
            "the int8 datapath needs weight codes of at most 8 bits; this model stores {}-bit {} codes (allowed: bits 2..=8 unsigned or 8 signed)",
            cfg.bits,
            cfg.code_type()
        )));
    }
    Ok(())
}

/// The signed integer of one stored byte: `clamp(v' - o, -L, L)`.
#[inline(always)]
pub fn code_to_k(cfg: &QuantConfig, byte: u8) -> i8 {
    let l = (1i32 << (cfg.bits - 1)) - 1;
    let k = if cfg.signed {
        byte as i8 as i32
    } else {
        let vmax = (1i32 << cfg.bits) - 1;
        (byte as i32).min(vmax) - (1i32 << (cfg.bits - 1))
    };
    k.clamp(-l, l) as i8
}

/// Integer weights of one conv/linear tensor (`rows` output channels, row-major) and their per-row scale and
/// weight zero point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeightCodes {
    pub k: Vec<i8>,
    /// `s` per output channel.
    pub s: Vec<f64>,
    /// `c` per output channel (all 0 for symmetric schemes).
    pub c: Vec<f64>,
}

impl WeightCodes {
    /// Reads tensor `id` from `image` (laid out as `model.memory_image()`, possibly corrupted); scales and zero
    /// points come from the clean ranges (docs/quantization.md#paper-schemes).
    pub fn from_image(
        model: &Model,
        cfg: &QuantConfig,
        id: usize,
        image: &[u8],
        rows: usize,
    ) -> Result<WeightCodes, EngineError> {
        check_scheme(cfg, model.bytes_per_value())?;
        let bytes = &image[model.image_range(id)];
        let qt = model.quantized(id);
        Ok(Self::from_codes(
            cfg,
            qt.codecs(),
            qt.group_len(),
            bytes,
            rows,
        ))
    }

    /// The same from raw code bytes and the tensor's group codecs.
    pub fn from_codes(
        cfg: &QuantConfig,
        codecs: &[crate::quant::GroupCodec],
        group_len: usize,
        bytes: &[u8],
        rows: usize,
    ) -> WeightCodes {
        let len = bytes.len();
        let per = len / rows.max(1);
        let mut s = Vec::with_capacity(rows);
        let mut c = Vec::with_capacity(rows);
        for r in 0..rows {
            let gi = ((r * per) / group_len.max(1)).min(codecs.len() - 1);
            let codec = &codecs[gi];
            let d = codec.delta() as f64;
            if cfg.symmetric {
                s.push(d);
                c.push(0.0);
            } else {
                let rg = codec.range();
                s.push(d * (rg.hi as f64 - rg.lo as f64) / 2.0);
                c.push((rg.lo as f64 + rg.hi as f64) / 2.0);
            }
        }
        let mut k: Vec<i8> = bytes.iter().map(|&b| code_to_k(cfg, b)).collect();
        // A channel with s = 0 (constant asymmetric group) decodes every code to c: its integers carry nothing.
        for r in 0..rows {
            if s[r] == 0.0 {
                k[r * per..(r + 1) * per].fill(0);
            }
        }
        WeightCodes { k, s, c }
    }
}
