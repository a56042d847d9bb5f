//! Layer kernels: pure functions over contiguous N, C, H, W (or N, F) float32 slices. They know nothing of models
//! or files; `engine::Network` composes them. Semantics follow PyTorch's inference-mode layers.

/// Geometry of a 2-D sliding window over one C x H x W map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Window {
    /// Values per input example.
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Output pixels per channel.
    pub fn out_hw(&self) -> usize {
        self.oh * self.ow
    }
    /// True when im2col would be the identity (1x1 kernel, stride 1, no padding).
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }
}

/// `dst[m x n] (= or +=) lhs[m x k] · rhs[k x n]` with explicit row/column strides, single-threaded (parallelism
/// is over the batch). `dst` is row-major with row stride `n`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[f32],
    rhs_rs: usize,
    rhs_cs: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= m * n, "matmul: dst too small");
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    assert!(
        lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs,
        "matmul: lhs too small"
    );
    assert!(
        rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs,
        "matmul: rhs too small"
    );
    // SAFETY: the asserts above keep every index the kernel touches inside the three slices; `dst` is exclusively
    // borrowed and does not alias `lhs`/`rhs` (Rust borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// im2col of one image: `cols[(ci·kh + ki)·kw + kj][oy·ow + ox] = x[ci][oy·sh + ki - ph][ox·sw + kj - pw]` (0 outside).
pub fn im2col(x: &[f32], g: &Window, cols: &mut [f32]) {
    let ohw = g.out_hw();
    for ci in 0..g.c {
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = ((ci * g.kh + ki) * g.kw + kj) * ohw;
                let dst = &mut cols[row..row + ohw];
                // Output columns whose input column ix = ox·sw + kj - pw lies in [0, w).
                let ox_lo = (g.pw.saturating_sub(kj)).div_ceil(g.sw).min(g.ow);
                let ox_hi = if g.w + g.pw > kj {
                    ((g.w + g.pw - kj - 1) / g.sw + 1).min(g.ow)
                } else {
                    0
                }
                .max(ox_lo);
                for oy in 0..g.oh {
                    let d = &mut dst[oy * g.ow..(oy + 1) * g.ow];
                    let iy = (oy * g.sh + ki) as isize - g.ph as isize;
                    if iy < 0 || iy >= g.h as isize {
                        d.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    d[..ox_lo].fill(0.0);
                    d[ox_hi..].fill(0.0);
                    let ix0 = ox_lo * g.sw + kj - g.pw;
                    if g.sw == 1 {
                        d[ox_lo..ox_hi].copy_from_slice(&src[ix0..ix0 + (ox_hi - ox_lo)]);
                    } else {
                        for (j, v) in d[ox_lo..ox_hi].iter_mut().enumerate() {
                            *v = src[ix0 + j * g.sw];
                        }
                    }
                }
            }
        }
    }
}

/// Convolution (groups = 1, zero padding) of `batch` images: `weight` is [cout, c·kh·kw] (PyTorch layout),
/// `out` is batch x cout x oh x ow. `cols` is scratch, grown as needed.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &[f32],
    batch: usize,
    g: &Window,
    cout: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    cols: &mut Vec<f32>,
) {
    let k = g.c * g.kh * g.kw;
    let ohw = g.out_hw();
    if !g.is_pointwise() && cols.len() < k * ohw {
        cols.resize(k * ohw, 0.0);
    }
    for b in 0..batch {
        let xi = &x[b * g.in_len()..(b + 1) * g.in_len()];
        let oi = &mut out[b * cout * ohw..(b + 1) * cout * ohw];
        let rhs: &[f32] = if g.is_pointwise() {
            xi
        } else {
            im2col(xi, g, cols);
            &cols[..k * ohw]
        };
        if let Some(bias) = bias {
            for (co, &bv) in bias.iter().enumerate() {
                oi[co * ohw..(co + 1) * ohw].fill(bv);
            }
        }
        matmul(cout, ohw, k, oi, bias.is_some(), weight, k, 1, rhs, ohw, 1);
    }
}

/// Fully connected layer: `out[b][j] = bias[j] + Σ_i x[b][i] · weight[j][i]`, weight [out, in] (PyTorch layout).
pub fn linear(
    x: &[f32],
    batch: usize,
    inf: usize,
    outf: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let out = &mut out[..batch * outf];
    if let Some(bias) = bias {
        for row in out.chunks_exact_mut(outf) {
            row.copy_from_slice(bias);
        }
    }
    matmul(
        batch,
        outf,
        inf,
        out,
        bias.is_some(),
        x,
        inf,
        1,
        weight,
        1,
        inf,
    );
}

/// `max(x, 0)` in place.
pub fn relu(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

/// Max pooling (padding acts as -inf) or average pooling (padding counts as zeros, divisor kh·kw as PyTorch's
/// `count_include_pad=True`). `out` is batch x c x oh x ow.
pub fn pool2d(x: &[f32], batch: usize, g: &Window, max: bool, out: &mut [f32]) {
    if max && g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 {
        return max_pool_2x2(x, batch, g, out);
    }
    let inv = 1.0 / (g.kh * g.kw) as f32;
    for (plane, o) in x[..batch * g.in_len()]
        .chunks_exact(g.h * g.w)
        .zip(out.chunks_exact_mut(g.out_hw()))
    {
        for oy in 0..g.oh {
            let y0 = (oy * g.sh) as isize - g.ph as isize;
            let ys = y0.max(0) as usize..((y0 + g.kh as isize).min(g.h as isize)).max(0) as usize;
            for ox in 0..g.ow {
                let x0 = (ox * g.sw) as isize - g.pw as isize;
                let xs =
                    x0.max(0) as usize..((x0 + g.kw as isize).min(g.w as isize)).max(0) as usize;
                let mut acc = if max { f32::NEG_INFINITY } else { 0.0 };
                for iy in ys.clone() {
                    let row = &plane[iy * g.w..(iy + 1) * g.w];
                    for &v in &row[xs.clone()] {
                        // NaN propagates like PyTorch's max pooling.
                        acc = if max {
                            if v > acc || v.is_nan() {
                                v
                            } else {
                                acc
                            }
                        } else {
                            acc + v
                        };
                    }
                }
                o[oy * g.ow + ox] = if max { acc } else { acc * inv };
            }
        }
    }
}

/// `max` that propagates NaN (as PyTorch's max pooling).
#[inline(always)]
fn nan_max(a: f32, b: f32) -> f32 {
    if a > b || a.is_nan() {
        a
    } else {
        b
    }
}

/// The common 2x2, stride 2, unpadded max pooling (every window lies inside the map).
fn max_pool_2x2(x: &[f32], batch: usize, g: &Window, out: &mut [f32]) {
    for (plane, o) in x[..batch * g.in_len()]
        .chunks_exact(g.h * g.w)
        .zip(out.chunks_exact_mut(g.out_hw()))
    {
        for (oy, orow) in o.chunks_exact_mut(g.ow).enumerate() {
            let r0 = &plane[2 * oy * g.w..2 * oy * g.w + 2 * g.ow];
            let r1 = &plane[(2 * oy + 1) * g.w..(2 * oy + 1) * g.w + 2 * g.ow];
            for ((v, a), b) in orow
                .iter_mut()
                .zip(r0.chunks_exact(2))
                .zip(r1.chunks_exact(2))
            {
                *v = nan_max(nan_max(a[0], a[1]), nan_max(b[0], b[1]));
            }
        }
    }
}

/// Sum and sum of squares in f64, with 8 independent accumulators (vectorizable, deterministic).
#[inline(always)]
fn sum_sumsq(x: &[f32]) -> (f64, f64) {
    let mut s = [0.0f64; 8];
    let mut q = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            let v = c[i] as f64;
            s[i] += v;
            q[i] += v * v;
        }
    }
    for (i, &v) in rest.iter().enumerate() {
        s[i] += v as f64;
        q[i] += v as f64 * v as f64;
    }
    (s.iter().sum(), q.iter().sum())
}

/// Global average pooling: batch x c x hw → batch x c.
pub fn global_avgpool(x: &[f32], batch: usize, c: usize, hw: usize, out: &mut [f32]) {
    let inv = 1.0 / hw as f64;
    for (plane, o) in x[..batch * c * hw].chunks_exact(hw).zip(out.iter_mut()) {
        *o = (plane.iter().map(|&v| v as f64).sum::<f64>() * inv) as f32;
    }
}

/// Elementwise `dst += src`.
pub fn add_assign(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// Group normalization in place (docs/training.md#normalization): per example and group of `c/groups` channels,
/// `y = (x - mean)/sqrt(var + eps) · scale[c] + bias[c]` with the biased variance, and `scale = 1 + weight` when
/// `reparameterized` (else `weight`). Statistics are accumulated in f64.
#[allow(clippy::too_many_arguments)]
pub fn group_norm(
    x: &mut [f32],
    batch: usize,
    c: usize,
    hw: usize,
    groups: usize,
    eps: f32,
    weight: &[f32],
    bias: &[f32],
    reparameterized: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked above). The same operations in the same order run either way
        // (no FMA contraction), so the results are bit-identical to the baseline path.
        unsafe { group_norm_avx2(x, batch, c, hw, groups, eps, weight, bias, reparameterized) };
        return;
    }
    group_norm_impl(x, batch, c, hw, groups, eps, weight, bias, reparameterized);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn group_norm_avx2(
    x: &mut [f32],
    batch: usize,
    c: usize,
    hw: usize,
    groups: usize,
    eps: f32,
    weight: &[f32],
    bias: &[f32],
    reparameterized: bool,
) {
    group_norm_impl(x, batch, c, hw, groups, eps, weight, bias, reparameterized)
}

/// The portable path of [`group_norm`] (for tests comparing it with the SIMD-dispatched one).
#[allow(clippy::too_many_arguments)]
pub fn group_norm_baseline(
    x: &mut [f32],
    batch: usize,
    c: usize,
    hw: usize,
    groups: usize,
    eps: f32,
    weight: &[f32],
    bias: &[f32],
    reparameterized: bool,
) {
    group_norm_impl(x, batch, c, hw, groups, eps, weight, bias, reparameterized)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn group_norm_impl(
    x: &mut [f32],
    batch: usize,
    c: usize,
    hw: usize,
    groups: usize,
    eps: f32,
    weight: &[f32],
    bias: &[f32],
    reparameterized: bool,
) {
    let cg = c / groups;
    let n = (cg * hw) as f64;
    for b in 0..batch {
        for g in 0..groups {
            let start = (b * c + g * cg) * hw;
            let gx = &mut x[start..start + cg * hw];
            // One pass in f64: var = E[x²] - mean² (f64 leaves ~9 more digits than the f32 data, so the
            // subtraction does not cancel what matters).
            let (sum, sumsq) = sum_sumsq(gx);
            let mean = sum / n;
            let var = (sumsq / n - mean * mean).max(0.0);
            let inv_std = 1.0 / (var + eps as f64).sqrt();
            for (j, ch) in gx.chunks_exact_mut(hw).enumerate() {
                let ci = g * cg + j;
                let s = if reparameterized {
                    1.0 + weight[ci] as f64
                } else {
                    weight[ci] as f64
                };
                // Centred form (x - mean)·a + bias: no cancellation when the variance is tiny.
                let a = (s * inv_std) as f32;
                let (m, b0) = (mean as f32, bias[ci]);
                for v in ch {
                    *v = (*v - m) * a + b0;
                }
            }
        }
    }
}

/// Batch normalization with inference statistics, in place:
/// `y = (x - running_mean[c]) / sqrt(running_var[c] + eps) · scale[c] + bias[c]`, `scale = 1 + weight` when
/// `reparameterized` (docs/training.md#normalization).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    x: &mut [f32],
    batch: usize,
    c: usize,
    hw: usize,
    eps: f32,
    weight: &[f32],
    bias: &[f32],
    mean: &[f32],
    var: &[f32],
    reparameterized: bool,
) {
    let scale: Vec<f32> = (0..c)
        .map(|ci| {
            let s = if reparameterized {
                1.0 + weight[ci] as f64
            } else {
                weight[ci] as f64
            };
            (s / (var[ci] as f64 + eps as f64).sqrt()) as f32
        })
        .collect();
    for (i, ch) in x[..batch * c * hw].chunks_exact_mut(hw).enumerate() {
        let ci = i % c;
        let (a, m, b0) = (scale[ci], mean[ci], bias[ci]);
        for v in ch {
            *v = (*v - m) * a + b0;
        }
    }
}
