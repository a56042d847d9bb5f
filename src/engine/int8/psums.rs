//! Partial sums of folded reductions through faulty activation buffers (docs/activation-faults.md#partial-sums).
//!
//! On a weight- or input-stationary array of `R` rows a conv/linear output of depth `K` is computed in
//! `F = ⌈K/R⌉` row folds, fold `f` summing the depths `f·R .. min((f+1)·R, K)` in the model's weight order
//! (`k = (ci·kh + ki)·kw + kj` within the output's group; the input feature for a linear layer). Between folds
//! the int32 partial sum `P_f = Σ_{k < (f+1)R} x_k · w_k` sits in the activation buffers, `x_k` the stored
//! activation code's integer (`uint8` 0..=255 or `int8` −128..=127; padding taps hold the zero point) and `w_k`
//! the weight code. The fault-free kernels compute the whole sum at once; for every output whose stored sum has
//! a faulty cell the store ([`ActivationStore::corrupt_psums`]) replays the chain from the fold sums computed
//! here (scalar, only for those outputs) and returns `δ = P'_{F−1} − P_{F−1}`, which is added to the output's
//! accumulator (bias and zero points act after the last fold, so they add the same to both). The result equals
//! a fold-by-fold accumulation (tested against one in `tests.rs`).
use super::quantize::QParams;
use super::WLayer;
use crate::engine::act_store::{ActivationStore, PsumCorrections, StoredPsums};
use crate::engine::kernels::Window;

/// What a conv/linear step needs to store its partial sums: the buffers, the array rows per fold and the
/// examples' indices in the evaluated split.
#[derive(Clone, Copy)]
pub(super) struct PsumCtx<'a> {
    pub store: &'a dyn ActivationStore,
    pub rows: usize,
    pub images: &'a [u64],
}

/// Adds `delta` to each corrected accumulator of one example, saturating to i32; returns the saturations (of the
/// store's chain and of these additions).
fn apply(corr: &PsumCorrections, acc: &mut [i32]) -> u64 {
    let mut saturated = corr.saturated;
    for &(e, d) in &corr.deltas {
        let wide = acc[e] as i64 + d;
        let v = wide.clamp(i32::MIN as i64, i32::MAX as i64);
        saturated += (v != wide) as u64;
        acc[e] = v as i32;
    }
    saturated
}

/// Row folds of a reduction of depth `k` on `rows` array rows.
pub(super) fn folds(k: usize, rows: usize) -> usize {
    k.div_ceil(rows.max(1))
}

/// Partial-sum faults of a convolution: `x` the stored (read-back) input bytes of example `e` of the chunk,
/// `acc` its `cout x oh·ow` accumulators. Returns the saturated additions.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv(
    ctx: &PsumCtx,
    layer: usize,
    e: usize,
    q: QParams,
    g: &Window,
    w: &WLayer,
    x: &[u8],
    acc: &mut [i32],
    corr: &mut PsumCorrections,
) -> u64 {
    let cig = g.c / w.groups;
    let depth = cig * g.kh * g.kw;
    let f = folds(depth, ctx.rows);
    if f < 2 {
        return 0;
    }
    let (ohw, og, taps) = (g.out_hw(), w.cout / w.groups, g.kh * g.kw);
    let map = StoredPsums {
        layer,
        outputs: w.cout * ohw,
        folds: f,
        image: ctx.images[e],
    };
    let mut partials = |o: usize, part: &mut [i32]| {
        part.fill(0);
        let (co, pix) = (o / ohw, o % ohw);
        let (oy, ox) = (pix / g.ow, pix % g.ow);
        let c0 = (co / og) * cig;
        let row = &w.codes.k[co * depth..(co + 1) * depth];
        for (k, &wk) in row.iter().enumerate() {
            let (ci, t) = (c0 + k / taps, k % taps);
            let iy = (oy * g.sh + (t / g.kw) * g.dh) as isize - g.ph as isize;
            let ix = (ox * g.sw + (t % g.kw) * g.dw) as isize - g.pw as isize;
            let inside = iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w;
            let xk = if inside {
                q.code_of(x[(ci * g.h + iy as usize) * g.w + ix as usize])
            } else {
                q.zero
            };
            part[k / ctx.rows] += xk * wk as i32;
        }
    };
    ctx.store.corrupt_psums(&map, &mut partials, corr);
    apply(corr, acc)
}

/// Partial-sum faults of a linear layer: `x` the stored (read-back) input bytes of example `e`, `acc` its
/// `cout` accumulators. Returns the saturated additions.
#[allow(clippy::too_many_arguments)]
pub(super) fn linear(
    ctx: &PsumCtx,
    layer: usize,
    e: usize,
    q: QParams,
    w: &WLayer,
    x: &[u8],
    acc: &mut [i32],
    corr: &mut PsumCorrections,
) -> u64 {
    let f = folds(w.k, ctx.rows);
    if f < 2 {
        return 0;
    }
    let map = StoredPsums {
        layer,
        outputs: w.cout,
        folds: f,
        image: ctx.images[e],
    };
    let mut partials = |co: usize, part: &mut [i32]| {
        part.fill(0);
        let row = &w.codes.k[co * w.k..(co + 1) * w.k];
        for (k, (&wk, &xb)) in row.iter().zip(x).enumerate() {
            part[k / ctx.rows] += q.code_of(xb) * wk as i32;
        }
    };
    ctx.store.corrupt_psums(&map, &mut partials, corr);
    apply(corr, acc)
}
