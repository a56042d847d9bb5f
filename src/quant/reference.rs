//! A slow, literal, multi-pass implementation of the normative quantization arithmetic (docs/quantization.md).
//!
//! It materialises every intermediate tensor (clip, range, normalise, scale, offset, integerise, clamp; and the
//! same for decoding) exactly as the formulas read, sharing no code with the fast kernels. Property tests check
//! the fast path against it bit for bit, and `benches/quant.rs` uses it as the "straightforward" baseline.

use super::{Granularity, QuantConfig, Rounding};

/// The result of the reference: codes as `i64`, the de-quantized values and the per-group (lo, hi) ranges.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceResult {
    pub codes: Vec<i64>,
    pub dequantized: Vec<f32>,
    pub ranges: Vec<(f32, f32)>,
}

/// Quantizes and de-quantizes `values` with `cfg` (assumed valid, values finite) the slow way.
pub fn quantize_dequantize(values: &[f32], shape: &[usize], cfg: &QuantConfig) -> ReferenceResult {
    let n = values.len();
    let groups = match cfg.granularity {
        Granularity::Channel if !shape.is_empty() => shape[0],
        _ => 1,
    };
    let group_len = n.checked_div(groups).unwrap_or(0);
    let mut codes = Vec::with_capacity(n);
    let mut deq = Vec::with_capacity(n);
    let mut ranges = Vec::new();
    for g in 0..groups {
        let part = &values[g * group_len..(g + 1) * group_len];
        let (c, d, r) = one_group(part, cfg);
        codes.extend(c);
        deq.extend(d);
        ranges.push(r);
    }
    ReferenceResult {
        codes,
        dequantized: deq,
        ranges,
    }
}

/// Decodes `codes` (as i64) with the given per-group ranges, the slow way.
pub fn dequantize_codes(codes: &[i64], ranges: &[(f32, f32)], cfg: &QuantConfig) -> Vec<f32> {
    let group_len = if ranges.is_empty() {
        0
    } else {
        codes.len() / ranges.len()
    };
    let mut out = Vec::with_capacity(codes.len());
    for (g, &(lo, hi)) in ranges.iter().enumerate() {
        out.extend(decode(
            &codes[g * group_len..(g + 1) * group_len],
            lo,
            hi,
            cfg,
        ));
    }
    out
}

fn levels(m: u8) -> f32 {
    (2f64.powi(m as i32 - 1) - 1.0) as f32
}

fn storage(cfg: &QuantConfig) -> (i64, i64) {
    let m = cfg.bits as u32;
    if cfg.signed {
        (-(2i64.pow(m - 1)), 2i64.pow(m - 1) - 1)
    } else {
        (0, 2i64.pow(m) - 1)
    }
}

fn offset(cfg: &QuantConfig) -> f32 {
    if cfg.signed {
        0.0
    } else {
        2f64.powi(cfg.bits as i32 - 1) as f32
    }
}

fn integerize(t: &[f32], cfg: &QuantConfig) -> Vec<i64> {
    let rounded: Vec<f32> = match cfg.rounding {
        Rounding::Nearest => t.iter().map(|x| x.round_ties_even()).collect(),
        Rounding::Truncate => t.iter().map(|x| x.trunc()).collect(),
    };
    let (lo, hi) = storage(cfg);
    rounded
        .iter()
        .map(|&x| {
            let v = x as i64;
            if v < lo {
                lo
            } else if v > hi {
                hi
            } else {
                v
            }
        })
        .collect()
}

fn clampf(x: f32, lo: f32, hi: f32) -> f32 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

fn one_group(w: &[f32], cfg: &QuantConfig) -> (Vec<i64>, Vec<f32>, (f32, f32)) {
    // 0. clip
    let wc: Vec<f32> = match cfg.w_max {
        Some(m) => w.iter().map(|&x| clampf(x, -m, m)).collect(),
        None => w.to_vec(),
    };
    let q_fixed = cfg.w_max.unwrap_or(1.0);
    if cfg.symmetric {
        // Global: the range is ±q_fixed (inputs and decoded values are clamped to it); ε widens only the step.
        let q = if cfg.granularity == Granularity::Global {
            q_fixed
        } else {
            let abs: Vec<f32> = wc.iter().map(|x| x.abs()).collect();
            let mut mx = 0.0f32;
            for &a in &abs {
                if a > mx {
                    mx = a;
                }
            }
            let q = mx + 0.001f32;
            match cfg.w_max {
                Some(m) if m < q => m,
                _ => q,
            }
        };
        let step_q = if cfg.granularity == Granularity::Global {
            (q as f64 + 0.001_f64) as f32
        } else {
            q
        };
        let delta = step_q / levels(cfg.bits);
        let clamped: Vec<f32> = wc.iter().map(|&x| clampf(x, -q, q)).collect();
        let scaled: Vec<f32> = clamped.iter().map(|&x| x / delta).collect();
        let shifted: Vec<f32> = scaled.iter().map(|&x| x + offset(cfg)).collect();
        let codes = integerize(&shifted, cfg);
        let deq = decode(&codes, -q, q, cfg);
        (codes, deq, (-q, q))
    } else {
        let (qmin, qmax) = if cfg.granularity == Granularity::Global {
            (-q_fixed, q_fixed)
        } else if wc.is_empty() {
            (0.0, 0.0)
        } else {
            let mut mn = wc[0];
            let mut mx = wc[0];
            for &x in &wc {
                if x < mn {
                    mn = x;
                }
                if x > mx {
                    mx = x;
                }
            }
            (mn, mx)
        };
        let codes = if qmax == qmin {
            vec![if cfg.signed { 0 } else { offset(cfg) as i64 }; wc.len()]
        } else {
            let delta = ((1.0_f64 + 0.001_f64) / (2f64.powi(cfg.bits as i32 - 1) - 1.0)) as f32;
            let t1: Vec<f32> = wc.iter().map(|&x| x - qmin).collect();
            let t2: Vec<f32> = t1.iter().map(|&x| x * 2.0).collect();
            let t3: Vec<f32> = t2.iter().map(|&x| x / (qmax - qmin)).collect();
            let t4: Vec<f32> = t3.iter().map(|&x| x - 1.0).collect();
            let n: Vec<f32> = t4.iter().map(|&x| clampf(x, -1.0, 1.0)).collect();
            let t5: Vec<f32> = n.iter().map(|&x| x / delta).collect();
            let t6: Vec<f32> = t5.iter().map(|&x| x + offset(cfg)).collect();
            integerize(&t6, cfg)
        };
        let deq = decode(&codes, qmin, qmax, cfg);
        (codes, deq, (qmin, qmax))
    }
}

fn decode(codes: &[i64], lo: f32, hi: f32, cfg: &QuantConfig) -> Vec<f32> {
    let delta = if cfg.symmetric && cfg.granularity == Granularity::Global {
        ((hi as f64 + 0.001_f64) as f32) / levels(cfg.bits)
    } else if cfg.symmetric {
        hi / levels(cfg.bits)
    } else {
        ((1.0_f64 + 0.001_f64) / (2f64.powi(cfg.bits as i32 - 1) - 1.0)) as f32
    };
    let (smin, smax) = storage(cfg);
    let a: Vec<f32> = if cfg.signed {
        codes.iter().map(|&v| v as f32 * delta).collect()
    } else {
        let clamped: Vec<i64> = codes.iter().map(|&v| v.max(smin).min(smax)).collect();
        let centred: Vec<f32> = clamped.iter().map(|&v| v as f32 - offset(cfg)).collect();
        centred.iter().map(|&x| x * delta).collect()
    };
    if cfg.symmetric {
        a.iter().map(|&x| clampf(x, lo, hi)).collect()
    } else {
        let a: Vec<f32> = a.iter().map(|&x| clampf(x, -1.0, 1.0)).collect();
        let b1: Vec<f32> = a.iter().map(|&x| x + 1.0).collect();
        let b2: Vec<f32> = b1.iter().map(|&x| x / 2.0).collect();
        let b3: Vec<f32> = b2.iter().map(|&x| x * (hi - lo)).collect();
        let b4: Vec<f32> = b3.iter().map(|&x| x + lo).collect();
        b4.iter().map(|&x| clampf(x, lo, hi)).collect()
    }
}
