//! Slow, obviously-right versions of every integer op of the datapath (docs/datapath.md): plain loops, i64
//! arithmetic, codes as signed integers (no unsigned views, no packing, no row sums). The tests compare the fast
//! kernels and the compiled network's steps with these.
use super::quantize::QParams;
use crate::engine::kernels::Window;

/// The code of a stored byte.
fn code(q: QParams, b: u8) -> i64 {
    q.code_of(b) as i64
}

/// Convolution accumulators `acc[co][oy][ox] = Σ (q - z) · k` over the group's input channels and the taps inside
/// the map (padding is real 0, i.e. `q = z`), and the window sums `Σ (q - z)`; one C x H x W example, weights
/// `[cout][cin/groups][kh][kw]`.
pub fn conv_acc(
    x: &[u8],
    q: QParams,
    g: &Window,
    cout: usize,
    groups: usize,
    k: &[i8],
) -> (Vec<i64>, Vec<i64>) {
    let cg = g.c / groups;
    let og = cout / groups;
    let mut acc = vec![0i64; cout * g.oh * g.ow];
    let mut asum = vec![0i64; cout * g.oh * g.ow];
    for co in 0..cout {
        let gi = co / og;
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (mut s, mut t) = (0i64, 0i64);
                for ci in 0..cg {
                    let c = gi * cg + ci;
                    for ki in 0..g.kh {
                        for kj in 0..g.kw {
                            let iy = (oy * g.sh + ki * g.dh) as i64 - g.ph as i64;
                            let ix = (ox * g.sw + kj * g.dw) as i64 - g.pw as i64;
                            if iy < 0 || ix < 0 || iy >= g.h as i64 || ix >= g.w as i64 {
                                continue;
                            }
                            let v = code(q, x[(c * g.h + iy as usize) * g.w + ix as usize])
                                - q.zero as i64;
                            s += v * k[((co * cg + ci) * g.kh + ki) * g.kw + kj] as i64;
                            t += v;
                        }
                    }
                }
                acc[(co * g.oh + oy) * g.ow + ox] = s;
                asum[(co * g.oh + oy) * g.ow + ox] = t;
            }
        }
    }
    (acc, asum)
}

/// Linear accumulators of one example: `acc[j] = Σ_i (q_i - z) · k[j][i]`, and `Σ_i (q_i - z)`.
pub fn linear_acc(x: &[u8], q: QParams, outf: usize, k: &[i8]) -> (Vec<i64>, i64) {
    let inf = x.len();
    let t: i64 = x.iter().map(|&b| code(q, b) - q.zero as i64).sum();
    let acc = (0..outf)
        .map(|j| {
            (0..inf)
                .map(|i| (code(q, x[i]) - q.zero as i64) * k[j * inf + i] as i64)
                .sum()
        })
        .collect();
    (acc, t)
}

/// The int32 accumulator with bias: `acc + bias` saturated to i32, and whether it saturated.
pub fn saturate_i32(v: i64) -> (i32, bool) {
    if v > i32::MAX as i64 {
        (i32::MAX, true)
    } else if v < i32::MIN as i64 {
        (i32::MIN, true)
    } else {
        (v as i32, false)
    }
}

/// Float requantization, by definition: `clamp(round_half_even(f32(acc)·M + f32(asum)·M_c) + z, lo, hi)`.
pub fn requant_float(acc: i32, asum: i32, m: f32, mc: f32, zero: i32, lo: i32, hi: i32) -> i32 {
    let t = acc as f32 * m + asum as f32 * mc;
    let r = t.round_ties_even();
    let r = if r.is_nan() { 0.0 } else { r as f64 };
    (r + zero as f64).clamp(lo as f64, hi as f64) as i32
}

/// Fixed-point requantization, by definition: `floor(x·m0 / 2^n + 1/2)` (round half up) computed as an exact
/// rational floor `floor((2·x·m0 + 2^n) / 2^(n+1))` in i128, plus the zero point, clamped.
pub fn requant_fixed(x: i128, m0: i64, shift: u32, zero: i32, lo: i32, hi: i32) -> i32 {
    let num = 2 * x * m0 as i128 + (1i128 << shift);
    let den = 1i128 << (shift + 1);
    let r = num.div_euclid(den);
    (r + zero as i128).clamp(lo as i128, hi as i128) as i32
}

/// Max pooling on codes (padding ignored), one C x H x W example; the output has the input's parameters.
pub fn max_pool(x: &[u8], q: QParams, g: &Window) -> Vec<u8> {
    let mut out = Vec::new();
    for c in 0..g.c {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let mut best: Option<i64> = None;
                for ki in 0..g.kh {
                    for kj in 0..g.kw {
                        let iy = (oy * g.sh + ki) as i64 - g.ph as i64;
                        let ix = (ox * g.sw + kj) as i64 - g.pw as i64;
                        if iy >= 0 && ix >= 0 && iy < g.h as i64 && ix < g.w as i64 {
                            let v = code(q, x[(c * g.h + iy as usize) * g.w + ix as usize]);
                            best = Some(best.map_or(v, |b| b.max(v)));
                        }
                    }
                }
                out.push(q.byte_of(best.unwrap_or(q.zero as i64) as i32));
            }
        }
    }
    out
}

/// Average pooling: `QuantizeLinear_out(s_in · Σ (q - z) / d)` written as the requantization of the integer
/// window sum with `M = s_in / (d · s_out)` (f64 then f32), `d` the divisor.
pub fn avg_pool(x: &[u8], q: QParams, qo: QParams, g: &Window, count_include_pad: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for c in 0..g.c {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (mut s, mut n) = (0i64, 0i64);
                for ki in 0..g.kh {
                    for kj in 0..g.kw {
                        let iy = (oy * g.sh + ki) as i64 - g.ph as i64;
                        let ix = (ox * g.sw + kj) as i64 - g.pw as i64;
                        if iy >= 0 && ix >= 0 && iy < g.h as i64 && ix < g.w as i64 {
                            s += code(q, x[(c * g.h + iy as usize) * g.w + ix as usize])
                                - q.zero as i64;
                            n += 1;
                        }
                    }
                }
                let d = if count_include_pad {
                    (g.kh * g.kw) as i64
                } else {
                    n.max(1)
                };
                let m = (q.scale as f64 / (d as f64 * qo.scale as f64)) as f32;
                let (lo, hi) = qo.code_range();
                out.push(qo.byte_of(requant_float(s as i32, 0, m, 0.0, qo.zero, lo, hi)));
            }
        }
    }
    out
}

/// Residual add: `QuantizeLinear_out(DequantizeLinear_a(a) + DequantizeLinear_b(b))`.
pub fn add(a: &[u8], qa: QParams, b: &[u8], qb: QParams, qo: QParams) -> Vec<u8> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let v = (code(qa, x) - qa.zero as i64) as f32 * qa.scale
                + (code(qb, y) - qb.zero as i64) as f32 * qb.scale;
            qo.quantize(v)
        })
        .collect()
}
