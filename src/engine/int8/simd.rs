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
