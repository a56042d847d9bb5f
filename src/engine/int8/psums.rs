//! Partial sums of folded reductions through faulty activation buffers (docs/activation-faults.md#partial-sums).
//!
//! On a weight- or input-stationary array of `R` rows a conv/linear output of depth `K` is computed in
//! `F = ⌈K/R⌉` row folds, fold `f` summing the depths `f·R .. min((f+1)·R, K)` in the model's weight order
//! (`k = (ci·kh + ki)·kw + kj` within the output's group; the input feature for a linear layer). Between folds
//! the int32 partial sum `P_f = Σ_{k < (f+1)R} x_k · w_k` sits in the activation buffers, `x_k` the stored
//! activation code's integer (`uint8` 0..=255 or `int8` −128..=127; padding taps hold the zero point) and `w_k`
//! the weight code. The fault-free kernels compute the whole sum at once; for every output whose stored sum has
//! a faulty cell the store ([`ActivationStore::corrupt_psums`]) replays the chain from the fold sums computed
//! here and returns `δ = P'_{F−1} − P_{F−1}`, which is added to the output's accumulator (bias and zero points
//! act after the last fold, so they add the same to both). The result equals a fold-by-fold accumulation (tested
//! against one in `tests.rs`).
//!
//! Fold sums are computed in the unsigned view `u` of the kernels (`u = x + 128` for int8 codes, padding
//! `u = z_u`) and shifted back, `Σ_f x·w = Σ_f u·w − 128 · Σ_f w`. When many outputs are hit (at least one in
//! [`GEMM_WHEN_ONE_IN`]) and `R` is a multiple of 4, all outputs' fold sums come from the integer GEMM on
//! depth slices of the packed operand (a fold is a run of whole quads); otherwise each hit output's sums are
//! computed directly. Both give the same integers.
use super::kernels::{self, KernelScratch, LayerWeights, PackedWeights, Path};
use super::quantize::QParams;
use super::WLayer;
use crate::engine::act_store::{ActivationStore, FoldTable, PsumCorrections, StoredPsums};
use crate::engine::kernels::Window;

/// The GEMM form computes every output's fold sums when at least one output in this many has a faulty cell.
pub(super) const GEMM_WHEN_ONE_IN: u64 = 32;

/// What a conv/linear step needs to store its partial sums: the buffers, the array rows per fold and the
/// examples' indices in the evaluated split.
#[derive(Clone, Copy)]
pub(super) struct PsumCtx<'a> {
    pub store: &'a dyn ActivationStore,
    pub rows: usize,
    pub images: &'a [u64],
    pub path: Path,
}

/// Buffers of the partial-sum replay (kept across examples).
#[derive(Default)]
pub(crate) struct PsumScratch {
    corr: PsumCorrections,
    /// Fold sums of every output, `[fold][output]` (GEMM form).
    parts: Vec<i32>,
    /// A linear step's corrections per example.
    corrs: Vec<PsumCorrections>,
    cols: Vec<u8>,
    /// im2col's row scratch.
    rows: Vec<u8>,
    /// Fold weights for an `R` other than the cached one.
    own: Vec<PackedWeights>,
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

/// `128` for int8 codes (the unsigned view's offset), 0 for uint8.
fn view_offset(q: QParams) -> i32 {
    if q.signed {
        128
    } else {
        0
    }
}

/// Whether to compute all outputs' fold sums with the GEMM: `R` a multiple of 4 and enough outputs hit.
fn use_gemm(rows: usize, hits: u64, outputs: usize) -> bool {
    rows.is_multiple_of(4) && hits.saturating_mul(GEMM_WHEN_ONE_IN) >= outputs as u64
}

/// The weights of `w` cut into row folds (`[group][fold]`, fold `f` = depths `f·R .. min((f+1)·R, K)` of each
/// of the group's rows), cached in the layer for the first `rows` asked (built into `own` for another).
fn fold_weights<'a>(
    w: &'a WLayer,
    rows: usize,
    own: &'a mut Vec<PackedWeights>,
) -> &'a [PackedWeights] {
    let build = || {
        let (m, depth) = (w.cout / w.groups, w.k);
        let mut out = Vec::new();
        for gi in 0..w.groups {
            let wg = &w.codes.k[gi * m * depth..(gi + 1) * m * depth];
            for f in 0..folds(depth, rows) {
                let (k0, k1) = (f * rows, ((f + 1) * rows).min(depth));
                let slice: Vec<i8> = (0..m)
                    .flat_map(|r| wg[r * depth + k0..r * depth + k1].iter().copied())
                    .collect();
                out.push(PackedWeights::new(m, k1 - k0, &slice));
            }
        }
        out
    };
    let (r, cached) = w.fold_packed.get_or_init(|| (rows, build()));
    if *r == rows {
        cached
    } else {
        *own = build();
        own
    }
}

/// Fold sums of one GEMM: `folds` the group's fold weights (`m` rows each), `b` its packed operand of `n`
/// columns (quads of the unsigned view), written to `parts[f·stride + r·n + p]` and shifted to code integers
/// (`− off · Σ_f w`).
fn gemm_fold_sums(
    path: Path,
    folds: &[PackedWeights],
    b: &[u8],
    n: usize,
    off: i32,
    parts: &mut [i32],
    stride: usize,
) {
    let mut q0 = 0;
    for (f, pw) in folds.iter().enumerate() {
        let out = &mut parts[f * stride..f * stride + pw.m * n];
        kernels::gemm(path, pw, &b[q0..q0 + pw.kp * n], n, out);
        q0 += pw.kp * n;
        if off != 0 {
            for (row, &s) in out.chunks_exact_mut(n).zip(&pw.rowsum) {
                row.iter_mut().for_each(|v| *v -= off * s);
            }
        }
    }
}

/// Partial-sum faults of a convolution: `xu` the unsigned view of example `e`'s stored (read-back) input, `acc`
/// its `cout x oh·ow` accumulators. Returns the saturated additions.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv(
    ctx: &PsumCtx,
    layer: usize,
    e: usize,
    q: QParams,
    g: &Window,
    w: &WLayer,
    xu: &[u8],
    acc: &mut [i32],
    sc: &mut PsumScratch,
) -> u64 {
    let cig = g.c / w.groups;
    let depth = cig * g.kh * g.kw;
    let f = folds(depth, ctx.rows);
    if f < 2 {
        return 0;
    }
    let (ohw, og, taps) = (g.out_hw(), w.cout / w.groups, g.kh * g.kw);
    let outputs = w.cout * ohw;
    let map = StoredPsums {
        layer,
        outputs,
        folds: f,
        image: ctx.images[e],
    };
    let hits = ctx.store.psum_cells(&map);
    if hits == 0 {
        return 0;
    }
    let (zu, off) = (q.zero_u(), view_offset(q));
    let PsumScratch {
        corr,
        parts,
        cols,
        rows,
        own,
        ..
    } = sc;
    if use_gemm(ctx.rows, hits, outputs) {
        parts.resize(f * outputs, 0);
        let fw = fold_weights(w, ctx.rows, own);
        let sub = Window { c: cig, ..*g };
        for gi in 0..w.groups {
            let lay = kernels::im2col_packed(
                &xu[gi * sub.in_len()..(gi + 1) * sub.in_len()],
                &sub,
                zu as u8,
                rows,
                cols,
                None,
                false,
            );
            debug_assert_eq!(lay.n, ohw);
            gemm_fold_sums(
                ctx.path,
                &fw[gi * f..(gi + 1) * f],
                cols,
                ohw,
                off,
                &mut parts[gi * og * ohw..],
                outputs,
            );
        }
        let parts = &*parts;
        let mut from_parts = |o: usize, part: &mut [i32]| {
            for (fi, p) in part.iter_mut().enumerate() {
                *p = parts[fi * outputs + o];
            }
        };
        ctx.store.corrupt_psums(&map, &mut from_parts, corr);
    } else {
        let mut direct = |o: usize, part: &mut [i32]| {
            part.fill(0);
            let (co, pix) = (o / ohw, o % ohw);
            let (oy, ox) = (pix / g.ow, pix % g.ow);
            let c0 = (co / og) * cig;
            let row = &w.codes.k[co * depth..(co + 1) * depth];
            for (kk, &wk) in row.iter().enumerate() {
                let (ci, t) = (c0 + kk / taps, kk % taps);
                let iy = (oy * g.sh + (t / g.kw) * g.dh) as isize - g.ph as isize;
                let ix = (ox * g.sw + (t % g.kw) * g.dw) as isize - g.pw as isize;
                let inside = iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w;
                let u = if inside {
                    xu[(ci * g.h + iy as usize) * g.w + ix as usize] as i32
                } else {
                    zu
                };
                part[kk / ctx.rows] += (u - off) * wk as i32;
            }
        };
        ctx.store.corrupt_psums(&map, &mut direct, corr);
    }
    apply(corr, acc)
}

/// Partial-sum faults of a linear layer: `xu` the unsigned view of example `e`'s stored (read-back) input,
/// `acc` its `cout` accumulators. Returns the saturated additions.
#[allow(clippy::too_many_arguments)]
pub(super) fn linear(
    ctx: &PsumCtx,
    layer: usize,
    e: usize,
    q: QParams,
    w: &WLayer,
    xu: &[u8],
    acc: &mut [i32],
    sc: &mut PsumScratch,
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
    let hits = ctx.store.psum_cells(&map);
    if hits == 0 {
        return 0;
    }
    // One example's fold sums are dot products of contiguous row segments: computed directly for the hit
    // outputs (a GEMM of one column would waste the kernel's width).
    let off = view_offset(q);
    let mut direct = |co: usize, part: &mut [i32]| {
        let row = &w.codes.k[co * w.k..(co + 1) * w.k];
        for (p, (wc, xc)) in part
            .iter_mut()
            .zip(row.chunks(ctx.rows).zip(xu.chunks(ctx.rows)))
        {
            *p = wc
                .iter()
                .zip(xc)
                .map(|(&wk, &u)| (u as i32 - off) * wk as i32)
                .sum();
        }
    };
    ctx.store.corrupt_psums(&map, &mut direct, &mut sc.corr);
    apply(&sc.corr, acc)
}

/// Subtracts `off · Σ_fold w` from raw fold sums `Σ_fold u·w` (the unsigned view back to code integers): row `r`
/// of group `gi`, fold `fi` is the `len` values at `parts[fi·fold_stride + (gi·m + r)·len ..]`.
fn shift_parts(
    w: &WLayer,
    rows: usize,
    off: i32,
    parts: &mut [i32],
    fold_stride: usize,
    len: usize,
    own: &mut Vec<PackedWeights>,
) {
    if off == 0 {
        return;
    }
    let f = folds(w.k, rows);
    let m = w.cout / w.groups;
    let fw = fold_weights(w, rows, own);
    for gi in 0..w.groups {
        for fi in 0..f {
            for (r, &s) in fw[gi * f + fi].rowsum.iter().enumerate() {
                let at = fi * fold_stride + (gi * m + r) * len;
                parts[at..at + len].iter_mut().for_each(|v| *v -= off * s);
            }
        }
    }
}

/// Example `e`'s accumulators of a convolution with its partial-sum faults (the step's entry point; `lw` the
/// kernels' view of `w`, `xu` the unsigned view of the read-back input, `acc`/`asum` as
/// [`kernels::conv_acc`]). When many outputs are hit ([`use_gemm`]) the fold sums are written by the
/// accumulation GEMM itself ([`kernels::conv_acc_folds`], docs/datapath.md#speed) and handed to the store as a
/// table; otherwise (or when the kernels cannot) [`conv`] computes them. Same integers either way. Returns the
/// saturations.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv_step(
    ctx: &PsumCtx,
    layer: usize,
    e: usize,
    q: QParams,
    g: &Window,
    w: &WLayer,
    lw: &LayerWeights,
    xu: &[u8],
    ks: &mut KernelScratch,
    acc: &mut [i32],
    asum: &mut [i32],
    sc: &mut PsumScratch,
) -> u64 {
    let path = ctx.path;
    let zu = q.zero_u();
    let depth = g.c / w.groups * g.kh * g.kw;
    let f = folds(depth, ctx.rows);
    let outputs = w.cout * g.out_hw();
    let map = StoredPsums {
        layer,
        outputs,
        folds: f,
        image: ctx.images[e],
    };
    let hits = if f < 2 { 0 } else { ctx.store.psum_cells(&map) };
    if hits > 0 && !w.depthwise && use_gemm(ctx.rows, hits, outputs) {
        sc.parts.resize(f * outputs, 0);
        let fo = Some((ctx.rows / 4, &mut sc.parts[..]));
        let (ov, wrote) =
            kernels::conv_acc_folds(path, xu, zu, g, lw, &w.bias_i32, ks, acc, asum, fo);
        if wrote {
            let ohw = g.out_hw();
            shift_parts(
                w,
                ctx.rows,
                view_offset(q),
                &mut sc.parts,
                outputs,
                ohw,
                &mut sc.own,
            );
            let table = FoldTable {
                data: &sc.parts,
                offset: 0,
                fold_stride: outputs,
                output_stride: 1,
            };
            ctx.store.corrupt_psums_table(&map, &table, &mut sc.corr);
            return ov + apply(&sc.corr, acc);
        }
        return ov + conv(ctx, layer, e, q, g, w, xu, acc, sc);
    }
    let ov = kernels::conv_acc(path, xu, zu, g, lw, &w.bias_i32, ks, acc, asum);
    if hits == 0 {
        return ov;
    }
    ov + conv(ctx, layer, e, q, g, w, xu, acc, sc)
}

/// The accumulators of `b` examples of a linear layer with their partial-sum faults (the step's entry point; `x`
/// the unsigned views `b x k`, `acc`/`asum` as [`kernels::linear_acc`]). When many outputs of an example are hit
/// ([`use_gemm`]) every example's fold sums are written by the accumulation GEMM ([`kernels::linear_acc_folds`])
/// and handed to the store as tables; otherwise [`linear`] computes them per example. Returns the saturations.
#[allow(clippy::too_many_arguments)]
pub(super) fn linear_step(
    ctx: &PsumCtx,
    layer: usize,
    q: QParams,
    w: &WLayer,
    lw: &LayerWeights,
    x: &[u8],
    b: usize,
    ks: &mut KernelScratch,
    acc: &mut [i32],
    asum: &mut [i32],
    sc: &mut PsumScratch,
) -> u64 {
    let (path, zu) = (ctx.path, q.zero_u());
    let f = folds(w.k, ctx.rows);
    let map = |e: usize| StoredPsums {
        layer,
        outputs: w.cout,
        folds: f,
        image: ctx.images[e],
    };
    let hits: Vec<u64> = (0..b)
        .map(|e| {
            if f < 2 {
                0
            } else {
                ctx.store.psum_cells(&map(e))
            }
        })
        .collect();
    let mut ov = if hits.iter().any(|&h| h > 0 && use_gemm(ctx.rows, h, w.cout)) {
        let stride = w.cout * b;
        sc.parts.resize(f * stride, 0);
        let fo = Some((ctx.rows / 4, &mut sc.parts[..]));
        let (mut ov, wrote) =
            kernels::linear_acc_folds(path, x, b, zu, lw, &w.bias_i32, ks, acc, asum, fo);
        if wrote {
            shift_parts(
                w,
                ctx.rows,
                view_offset(q),
                &mut sc.parts,
                stride,
                b,
                &mut sc.own,
            );
            if hits.iter().all(|&h| h > 0) {
                // All examples at once: the table `[fold][output][example]` holds each output's examples
                // contiguously (the store replays them side by side).
                let maps: Vec<StoredPsums> = (0..b).map(map).collect();
                let table = FoldTable {
                    data: &sc.parts,
                    offset: 0,
                    fold_stride: stride,
                    output_stride: b,
                };
                sc.corrs.resize_with(b, Default::default);
                ctx.store
                    .corrupt_psums_examples(&maps, &table, 1, &mut sc.corrs[..b]);
                for (e, corr) in sc.corrs[..b].iter().enumerate() {
                    ov += apply(corr, &mut acc[e * w.cout..(e + 1) * w.cout]);
                }
                return ov;
            }
            for (e, &h) in hits.iter().enumerate() {
                if h == 0 {
                    continue;
                }
                let table = FoldTable {
                    data: &sc.parts,
                    offset: e,
                    fold_stride: stride,
                    output_stride: b,
                };
                ctx.store.corrupt_psums_table(&map(e), &table, &mut sc.corr);
                ov += apply(&sc.corr, &mut acc[e * w.cout..(e + 1) * w.cout]);
            }
            return ov;
        }
        // The kernel could not write fold sums: the accumulators are done, the hit examples' fold sums come
        // from [`linear`] below.
        ov
    } else {
        kernels::linear_acc(path, x, b, zu, lw, &w.bias_i32, ks, acc, asum)
    };
    for (e, &h) in hits.iter().enumerate() {
        if h > 0 {
            let xe = &x[e * w.k..(e + 1) * w.k];
            ov += linear(
                ctx,
                layer,
                e,
                q,
                w,
                xe,
                &mut acc[e * w.cout..(e + 1) * w.cout],
                sc,
            );
        }
    }
    ov
}
