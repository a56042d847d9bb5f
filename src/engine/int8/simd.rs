//! The element loops after the GEMM (dequantize, quantize, requantize), compiled portable, with AVX2 and with
//! AVX-512 enabled, chosen at run time. All run the same operations in the same order (Rust never contracts
//! to FMA), so the results are bit-identical; the wider builds only vectorize wider.
use super::quantize::QParams;
use super::requant::{Requant, RequantMode};

#[inline(always)]
fn dequant_row_impl(acc: &[i32], asum: &[i32], unit: f32, cunit: f32, out: &mut [f32]) {
    if cunit == 0.0 {
        for (o, &a) in out.iter_mut().zip(acc) {
            *o = a as f32 * unit;
        }
    } else {
        for ((o, &a), &t) in out.iter_mut().zip(acc).zip(asum) {
            *o = a as f32 * unit + t as f32 * cunit;
        }
    }
}

#[inline(always)]
fn quantize_impl(q: QParams, x: &[f32], out: &mut [u8]) {
    // QParams::quantize with the constants hoisted (same operations, same order).
    let (lo, hi) = q.code_range();
    let (s, z) = (q.scale, q.zero);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = super::quantize::quantize_code(v, s, z, lo, hi) as u8;
    }
}

#[inline(always)]
fn requant_impl(rq: &Requant, c: usize, acc: &[i32], asum: &[i32], out: &mut [u8]) {
    match rq.mode {
        RequantMode::Float if rq.mc.is_empty() && rq.off.is_empty() => {
            let m = rq.m[c];
            for (o, &a) in out.iter_mut().zip(acc) {
                let t = super::quantize::round_half_even_clamped(a as f32 * m);
                *o = ((t as i32) + rq.zero).clamp(rq.lo, rq.hi) as u8;
            }
        }
        _ => {
            for (o, (&a, &t)) in out
                .iter_mut()
                .zip(acc.iter().zip(asum.iter().chain(std::iter::repeat(&0))))
            {
                *o = rq.apply(c, a, t) as u8;
            }
        }
    }
}

/// One example's conv accumulators as the PPU dequantizes them: channel `co` holds `f32(acc)·unit_co +
/// f32(asum)·cunit_co` with `unit_co = f32(s_a·s_co)`, `cunit_co = f32(s_a·c_co)` ([`dequant_row`]); `asum` is
/// `[conv group][position]` (empty when no channel has a zero-point term), `og` output channels per conv group.
#[derive(Clone, Copy)]
pub struct Dequant<'a> {
    pub sa: f64,
    pub s: &'a [f64],
    pub c: &'a [f64],
    pub asum: &'a [i32],
    pub og: usize,
}

/// A GroupNorm of the PPU (`crate::engine::kernels::group_norm`'s parameters).
#[derive(Clone, Copy)]
pub struct GroupNormPpu<'a> {
    pub groups: usize,
    pub eps: f32,
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub reparameterized: bool,
}

/// One example's conv accumulators through a GroupNorm PPU chain to output codes ([`group_norm_codes`]):
/// `acc` is `[channel][position]` with `hw` positions, `q` the output codes' parameters, `relu` a final ReLU.
#[derive(Clone, Copy)]
pub struct GroupNormCodes<'a> {
    pub acc: &'a [i32],
    pub hw: usize,
    pub dq: Dequant<'a>,
    pub gn: GroupNormPpu<'a>,
    pub q: QParams,
    pub relu: bool,
}

#[inline(always)]
fn group_norm_codes_impl(job: &GroupNormCodes, tmp: &mut [f32], out: &mut [u8]) {
    let GroupNormCodes {
        acc,
        hw,
        ref dq,
        ref gn,
        q,
        relu,
    } = *job;
    // The same operations in the same order as dequant_row, then engine::kernels::group_norm on one example,
    // then quantize_slice and (relu) floor_codes: bit-identical codes, one group of values at a time in `tmp`.
    let c = acc.len() / hw;
    let cg = c / gn.groups;
    let n = (cg * hw) as f64;
    let (lo, hi) = q.code_range();
    let (qs, qz) = (q.scale, q.zero);
    // The ReLU floor as the clamp's lower bound: clamp(q, z, hi) = max(clamp(q, lo, hi), z) for lo ≤ z ≤ hi.
    let floor = if relu { qz } else { lo };
    for gi in 0..gn.groups {
        let t = &mut tmp[..cg * hw];
        for j in 0..cg {
            let co = gi * cg + j;
            let unit = (dq.sa * dq.s[co]) as f32;
            let cunit = (dq.sa * dq.c[co]) as f32;
            let sums = if dq.asum.is_empty() {
                &[][..]
            } else {
                let k = co / dq.og;
                &dq.asum[k * hw..(k + 1) * hw]
            };
            dequant_row_impl(
                &acc[co * hw..(co + 1) * hw],
                sums,
                unit,
                cunit,
                &mut t[j * hw..(j + 1) * hw],
            );
        }
        let (sum, sumsq) = crate::engine::kernels::sum_sumsq(t);
        let mean = sum / n;
        let var = (sumsq / n - mean * mean).max(0.0);
        let inv_std = 1.0 / (var + gn.eps as f64).sqrt();
        for (j, ch) in t.chunks_exact(hw).enumerate() {
            let ci = gi * cg + j;
            let sc = if gn.reparameterized {
                1.0 + gn.weight[ci] as f64
            } else {
                gn.weight[ci] as f64
            };
            let a = (sc * inv_std) as f32;
            let (m, b0) = (mean as f32, gn.bias[ci]);
            let o = &mut out[ci * hw..(ci + 1) * hw];
            for (o, &v) in o.iter_mut().zip(ch) {
                *o = super::quantize::quantize_code((v - m) * a + b0, qs, qz, floor, hi) as u8;
            }
        }
    }
}

/// One copy of the element loops compiled with `$features` enabled (x86-64 only).
macro_rules! compiled_with {
    ($module:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        mod $module {
            use super::*;
            #[target_feature(enable = $features)]
            pub unsafe fn dequant_row(
                acc: &[i32],
                asum: &[i32],
                unit: f32,
                cunit: f32,
                out: &mut [f32],
            ) {
                dequant_row_impl(acc, asum, unit, cunit, out)
            }
            #[target_feature(enable = $features)]
            pub unsafe fn quantize(q: QParams, x: &[f32], out: &mut [u8]) {
                quantize_impl(q, x, out)
            }
            #[target_feature(enable = $features)]
            pub unsafe fn group_norm_codes(job: &GroupNormCodes, tmp: &mut [f32], out: &mut [u8]) {
                group_norm_codes_impl(job, tmp, out)
            }
            #[target_feature(enable = $features)]
            pub unsafe fn requant(
                rq: &Requant,
                c: usize,
                acc: &[i32],
                asum: &[i32],
                out: &mut [u8],
            ) {
                requant_impl(rq, c, acc, asum, out)
            }
        }
    };
}

compiled_with!(avx2, "avx2");
compiled_with!(avx512, "avx512f,avx512bw");

/// The widest build of the loops this CPU runs.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum Level {
    Avx512,
    Avx2,
    Portable,
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn level() -> Level {
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
        Level::Avx512
    } else if std::is_x86_feature_detected!("avx2") {
        Level::Avx2
    } else {
        Level::Portable
    }
}

/// Runs loop `$f` in the widest build this CPU runs, else the portable `$portable`, on the same arguments.
macro_rules! dispatch {
    ($f:ident, $portable:ident ( $($arg:expr),* )) => {{
        #[cfg(target_arch = "x86_64")]
        match level() {
            // SAFETY: the CPU has the build's features (checked by `level`); each build is the portable code
            // compiled with them.
            Level::Avx512 => return unsafe { avx512::$f($($arg),*) },
            Level::Avx2 => return unsafe { avx2::$f($($arg),*) },
            Level::Portable => {}
        }
        $portable($($arg),*)
    }};
}

/// `out[p] = f32(acc[p])·unit + f32(asum[p])·cunit` (the second term only when `cunit ≠ 0`).
pub fn dequant_row(acc: &[i32], asum: &[i32], unit: f32, cunit: f32, out: &mut [f32]) {
    dispatch!(dequant_row, dequant_row_impl(acc, asum, unit, cunit, out))
}

/// [`QParams::quantize`] of every value.
pub fn quantize_slice(q: QParams, x: &[f32], out: &mut [u8]) {
    dispatch!(quantize, quantize_impl(q, x, out))
}

/// The PPU's GroupNorm on one example's conv accumulators ([`GroupNormCodes`]), straight to output codes: dequantize ([`Dequant`]), group statistics and affine as
/// `crate::engine::kernels::group_norm`, [`QParams::quantize`], and with `relu` the floor at the zero point
/// ([`floor_codes`]). Bit-identical to those four passes in turn (tested); `tmp` holds one group's values
/// (at least `c / groups · hw`). docs/datapath.md#layers.
pub fn group_norm_codes(job: &GroupNormCodes, tmp: &mut [f32], out: &mut [u8]) {
    dispatch!(group_norm_codes, group_norm_codes_impl(job, tmp, out))
}

/// The portable build of [`group_norm_codes`], for tests comparing it with the dispatched one.
#[cfg(test)]
pub fn group_norm_codes_portable(job: &GroupNormCodes, tmp: &mut [f32], out: &mut [u8]) {
    group_norm_codes_impl(job, tmp, out)
}

/// `max(code, z)` of every stored code (a ReLU on codes of parameters `q`; int8 bytes compared as signed).
pub fn floor_codes(q: QParams, out: &mut [u8]) {
    if q.signed {
        let z = q.zero as i8;
        for v in out.iter_mut() {
            *v = (*v as i8).max(z) as u8;
        }
    } else {
        let z = q.zero as u8;
        for v in out.iter_mut() {
            *v = (*v).max(z);
        }
    }
}

/// [`Requant::apply`] of channel `c` over a row (`asum` empty or shorter: zeros).
pub fn requant_row(rq: &Requant, c: usize, acc: &[i32], asum: &[i32], out: &mut [u8]) {
    dispatch!(requant, requant_impl(rq, c, acc, asum, out))
}

/// The portable loops, for tests comparing them with the dispatched ones.
#[cfg(test)]
pub fn portable(rq: &Requant, c: usize, acc: &[i32], asum: &[i32], out: &mut [u8]) {
    requant_impl(rq, c, acc, asum, out)
}
