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

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    #[target_feature(enable = "avx2")]
    pub unsafe fn dequant_row(acc: &[i32], asum: &[i32], unit: f32, cunit: f32, out: &mut [f32]) {
        dequant_row_impl(acc, asum, unit, cunit, out)
    }
    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize(q: QParams, x: &[f32], out: &mut [u8]) {
        quantize_impl(q, x, out)
    }
    #[target_feature(enable = "avx2")]
    pub unsafe fn requant(rq: &Requant, c: usize, acc: &[i32], asum: &[i32], out: &mut [u8]) {
        requant_impl(rq, c, acc, asum, out)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn dequant_row(acc: &[i32], asum: &[i32], unit: f32, cunit: f32, out: &mut [f32]) {
        dequant_row_impl(acc, asum, unit, cunit, out)
    }
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn quantize(q: QParams, x: &[f32], out: &mut [u8]) {
        quantize_impl(q, x, out)
    }
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn requant(rq: &Requant, c: usize, acc: &[i32], asum: &[i32], out: &mut [u8]) {
        requant_impl(rq, c, acc, asum, out)
    }
}

#[inline]
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[p] = f32(acc[p])·unit + f32(asum[p])·cunit` (the second term only when `cunit ≠ 0`).
pub fn dequant_row(acc: &[i32], asum: &[i32], unit: f32, cunit: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: AVX-512 F/BW are available (checked); the function is the portable code compiled with them.
        return unsafe { avx512::dequant_row(acc, asum, unit, cunit, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 is available (checked); the function is the portable code compiled with AVX2.
        return unsafe { avx2::dequant_row(acc, asum, unit, cunit, out) };
    }
    dequant_row_impl(acc, asum, unit, cunit, out)
}

/// [`QParams::quantize`] of every value.
pub fn quantize_slice(q: QParams, x: &[f32], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: as above.
        return unsafe { avx512::quantize(q, x, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: as above.
        return unsafe { avx2::quantize(q, x, out) };
    }
    quantize_impl(q, x, out)
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
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: as above.
        return unsafe { avx512::requant(rq, c, acc, asum, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: as above.
        return unsafe { avx2::requant(rq, c, acc, asum, out) };
    }
    requant_impl(rq, c, acc, asum, out)
}

/// The portable loops, for tests comparing them with the dispatched ones.
#[cfg(test)]
pub fn portable(rq: &Requant, c: usize, acc: &[i32], asum: &[i32], out: &mut [u8]) {
    requant_impl(rq, c, acc, asum, out)
}
