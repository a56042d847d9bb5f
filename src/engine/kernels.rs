//! Layer kernels: pure functions over contiguous N, C, H, W (or N, F) float32 slices. They know nothing of models
//! or files; `engine::Network` composes them. Semantics follow PyTorch's inference-mode layers.

use super::sgemm::{self, MatRef};

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
    /// Padding before the first row / column (the padding after the last only shows in `oh`/`ow`).
    pub ph: usize,
    pub pw: usize,
    /// Dilation: kernel taps `dh` rows / `dw` columns apart (1 = dense).
    pub dh: usize,
    pub dw: usize,
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
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.ph == 0
            && self.pw == 0
            && self.oh == self.h
            && self.ow == self.w
    }

    /// The output columns `ox` whose input column `ox·sw + off - pw` lies in `[0, w)`, for a tap at column
    /// offset `off` (= kj·dw).
    #[inline]
    fn valid_ox(&self, off: usize) -> (usize, usize) {
        let lo = (self.pw.saturating_sub(off)).div_ceil(self.sw).min(self.ow);
        let hi = if self.w + self.pw > off {
            ((self.w + self.pw - off - 1) / self.sw + 1).min(self.ow)
        } else {
            0
        }
        .max(lo);
        (lo, hi)
    }
}

/// `dst[m x n] (= or +=) lhs[m x k] · rhs[k x n]` with explicit row/column strides, single-threaded (parallelism
/// is over the batch). `dst` is row-major with row stride `n`. Runs [`super::sgemm::sgemm`]: each output is one
/// fused multiply-add chain over `k` in order, starting from `dst` when `accumulate`, identical on every machine.
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
    super::sgemm::sgemm(
        m,
        n,
        k,
        dst,
        accumulate,
        MatRef {
            data: lhs,
            rs: lhs_rs,
            cs: lhs_cs,
        },
        MatRef {
            data: rhs,
            rs: rhs_rs,
            cs: rhs_cs,
        },
    );
}

/// im2col of one image: `cols[(ci·kh + ki)·kw + kj][oy·ow + ox] = x[ci][oy·sh + ki·dh - ph][ox·sw + kj·dw - pw]`
/// (0 outside). The matrix [`conv2d_packed`] multiplies without building it; tests build it to check that.
pub fn im2col(x: &[f32], g: &Window, cols: &mut [f32]) {
    let ohw = g.out_hw();
    if g.is_pointwise() {
        // Each row is an input plane: one copy per channel instead of one per output row.
        for (ci, plane) in x[..g.c * ohw].chunks_exact(ohw).enumerate() {
            cols[ci * ohw..][..ohw].copy_from_slice(plane);
        }
        return;
    }
    for ci in 0..g.c {
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = ((ci * g.kh + ki) * g.kw + kj) * ohw;
                let dst = &mut cols[row..row + ohw];
                let off = kj * g.dw;
                let (ox_lo, ox_hi) = g.valid_ox(off);
                for oy in 0..g.oh {
                    let d = &mut dst[oy * g.ow..(oy + 1) * g.ow];
                    let iy = (oy * g.sh + ki * g.dh) as isize - g.ph as isize;
                    if iy < 0 || iy >= g.h as isize {
                        d.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    d[..ox_lo].fill(0.0);
                    d[ox_hi..].fill(0.0);
                    if ox_lo == ox_hi {
                        // The tap lies in the padding for every output column (dilated kernels).
                        continue;
                    }
                    let ix0 = ox_lo * g.sw + off - g.pw;
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

/// Convolution (zero padding) of `batch` images in `groups` groups: `weight` is [cout, (c/groups)·kh·kw]
/// (PyTorch layout), `out` is batch x cout x oh x ow. Output channel `co` of group `gi = co / (cout/groups)` sees
/// input channels `gi·c/groups .. (gi+1)·c/groups`.
///
/// Dense and grouped convolutions are one GEMM per group over the (never built) im2col matrix (each group's
/// weights packed once per call, for every image of the batch; [`conv2d_packed`]); depthwise ones (one input
/// channel per group) run [`depthwise_conv2d`] directly, never a dense convolution with zeros. `cols` is scratch, grown as needed.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &[f32],
    batch: usize,
    g: &Window,
    cout: usize,
    groups: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    cols: &mut Vec<f32>,
) {
    let cg = g.c / groups;
    if cg == 1 && groups > 1 {
        return depthwise_conv2d(x, batch, g, cout, weight, bias, out);
    }
    // Each group's weights packed once for the whole batch.
    let packed = pack_conv_weights(g, cout, groups, weight);
    conv2d_packed(x, batch, g, cout, groups, &packed, bias, None, out, cols)
}

/// The GEMM operands of a dense or grouped convolution's weights (`[cout][c/groups · kh · kw]`), one per group,
/// for [`conv2d_packed`]; empty for a depthwise layer (which reads its weights directly).
pub fn pack_conv_weights(
    g: &Window,
    cout: usize,
    groups: usize,
    weight: &[f32],
) -> Vec<sgemm::PackedLhs> {
    let cg = g.c / groups;
    if cg == 1 && groups > 1 {
        return Vec::new();
    }
    let og = cout / groups;
    let k = cg * g.kh * g.kw;
    let path = sgemm::Path::detect();
    (0..groups)
        .map(|gi| {
            let w = &weight[gi * og * k..(gi + 1) * og * k];
            sgemm::PackedLhs::new(
                path,
                og,
                k,
                MatRef {
                    data: w,
                    rs: k,
                    cs: 1,
                },
            )
        })
        .collect()
}

/// [`conv2d`] of a dense or grouped layer with its weights already packed ([`pack_conv_weights`]): the same
/// values. With `act`, [`activate`] runs on the outputs of each GEMM's images right after it, while they are in
/// cache (the same values as a separate pass over the batch: the activation is elementwise).
///
/// **The im2col matrix is never built.** Its element for tap `(ci, ki, kj)` and output `(oy, ox)` is the input
/// value at row `oy·sh + ki·dh - ph`, column `ox·sw + kj·dw - pw` (zero outside), which in a zero-padded copy
/// of the input (`hp × wp` per channel, the span the taps cover) sits at `row_off[tap] + col_off[output]`:
///
/// ```text
/// row_off[(ci·kh + ki)·kw + kj] = ci·hp·wp + ki·dh·wp + kj·dw
/// col_off[b·oh·ow + oy·ow + ox] = b·(c·hp·wp) + oy·sh·wp + ox·sw
/// ```
///
/// The GEMM packs its panels straight from that copy ([`sgemm::OffsetRhs`]): the same operand values in the
/// same order, so the same bits as im2col + GEMM, while the padded copy is one pass over the input instead of
/// `kh·kw` passes of writes and reads (docs/onnx.md#speed-of-the-float-engine). A layer no tap of which reads padding uses the
/// input itself (`hp × wp` then stand for `h × w`).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_packed(
    x: &[f32],
    batch: usize,
    g: &Window,
    cout: usize,
    groups: usize,
    packed: &[sgemm::PackedLhs],
    bias: Option<&[f32]>,
    act: Option<Activation>,
    out: &mut [f32],
    cols: &mut Vec<f32>,
) {
    let cg = g.c / groups;
    let og = cout / groups;
    let sub = Window { c: cg, ..*g };
    let k = cg * g.kh * g.kw;
    let ohw = g.out_hw();
    assert_eq!(packed.len(), groups, "one packed operand per group");
    if ohw == 0 || batch == 0 {
        return;
    }
    // One image per GEMM, straight into the output; or `per` images' columns side by side in one
    // `k × per·oh·ow` operand and a scratch `og × per·oh·ow` block (started from the bias as the output is),
    // copied to each image's output after the GEMM. Each output is the same fused multiply-add chain over `k`
    // either way (the GEMM's contract does not depend on `n`): the same bits.
    let per = images_per_gemm(ohw, og * k, batch);
    let direct_rhs = per == 1 && g.is_pointwise();
    let taps = TapGeometry::new(&sub);
    let pad_len = if taps.padded {
        per * cg * taps.plane + sgemm::MAX_NR
    } else {
        0
    };
    let block_len = if per == 1 { 0 } else { og * per * ohw };
    if cols.len() < pad_len + block_len {
        cols.resize(pad_len + block_len, 0.0);
    }
    let (pad_buf, block_buf) = cols.split_at_mut(pad_len);
    // The offset tables, for a full group of `per` images (a last, smaller group uses their prefix).
    let img_stride = if taps.padded {
        cg * taps.plane
    } else {
        g.in_len()
    };
    let (row_off, col_off) = if direct_rhs {
        (Vec::new(), Vec::new())
    } else {
        taps.offsets(&sub, per, img_stride)
    };
    for b0 in (0..batch).step_by(per) {
        let nb = per.min(batch - b0);
        let n = nb * ohw;
        for gi in 0..groups {
            let first = b0 * g.in_len() + gi * sub.in_len();
            let dst: &mut [f32] = if per == 1 {
                &mut out[(b0 * cout + gi * og) * ohw..][..og * ohw]
            } else {
                &mut block_buf[..og * n]
            };
            if let Some(bias) = bias {
                for (row, &bv) in dst.chunks_exact_mut(n).zip(&bias[gi * og..(gi + 1) * og]) {
                    row.fill(bv);
                }
            }
            if direct_rhs {
                let rhs = MatRef {
                    data: &x[first..][..sub.in_len()],
                    rs: n,
                    cs: 1,
                };
                sgemm::sgemm_packed(&packed[gi], n, dst, bias.is_some(), rhs);
            } else {
                let data: &[f32] = if taps.padded {
                    for bi in 0..nb {
                        let image = &x[first + bi * g.in_len()..][..sub.in_len()];
                        taps.pad_into(&sub, image, &mut pad_buf[bi * img_stride..][..img_stride]);
                    }
                    pad_buf
                } else {
                    &x[first..]
                };
                let rhs = sgemm::OffsetRhs {
                    data,
                    row_off: &row_off,
                    col_off: &col_off[..n],
                };
                sgemm::sgemm_packed_offsets(&packed[gi], n, dst, bias.is_some(), rhs);
            }
            if per > 1 {
                for bi in 0..nb {
                    let oi = &mut out[(b0 + bi) * cout * ohw..][..cout * ohw];
                    for (o, row) in block_buf[..og * n].chunks_exact(n).enumerate() {
                        oi[(gi * og + o) * ohw..][..ohw].copy_from_slice(&row[bi * ohw..][..ohw]);
                    }
                }
            }
        }
        if let Some(a) = act {
            activate(&mut out[b0 * cout * ohw..(b0 + nb) * cout * ohw], a);
        }
    }
}

/// Where a convolution's taps read (see [`conv2d_packed`]): the `hp × wp` span of (padded) input rows and
/// columns they cover, and whether that span needs a zero-padded copy.
struct TapGeometry {
    /// Rows and columns of the span: `(oh - 1)·sh + (kh - 1)·dh + 1` and `(ow - 1)·sw + (kw - 1)·dw + 1`.
    hp: usize,
    wp: usize,
    /// Whether some tap reads padding (before the map, or past its end): then the taps read a padded copy of
    /// `hp × wp` per channel; else the input itself, `h × w` per channel.
    padded: bool,
    /// Floats per channel plane of what the taps read.
    plane: usize,
    /// Row stride of what the taps read.
    rs: usize,
}

impl TapGeometry {
    fn new(g: &Window) -> TapGeometry {
        let hp = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1;
        let wp = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1;
        let padded = g.ph > 0 || g.pw > 0 || hp > g.h || wp > g.w;
        let (plane, rs) = if padded {
            (hp * wp, wp)
        } else {
            (g.h * g.w, g.w)
        };
        TapGeometry {
            hp,
            wp,
            padded,
            plane,
            rs,
        }
    }

    /// The row offsets (one per tap, `(ci, ki, kj)` order) and column offsets (one per output of `images`
    /// images `img_stride` floats apart) of [`conv2d_packed`].
    fn offsets(&self, g: &Window, images: usize, img_stride: usize) -> (Vec<usize>, Vec<usize>) {
        let mut row_off = Vec::with_capacity(g.c * g.kh * g.kw);
        for ci in 0..g.c {
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    row_off.push(ci * self.plane + ki * g.dh * self.rs + kj * g.dw);
                }
            }
        }
        let mut col_off = Vec::with_capacity(images * g.out_hw());
        for b in 0..images {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    col_off.push(b * img_stride + oy * g.sh * self.rs + ox * g.sw);
                }
            }
        }
        (row_off, col_off)
    }

    /// Writes the zero-padded `c × hp × wp` copy of one image (`padded[ci][y][x] = image[ci][y - ph][x - pw]`,
    /// zero outside the image) into `dst`, every value of it.
    fn pad_into(&self, g: &Window, image: &[f32], dst: &mut [f32]) {
        let (hp, wp) = (self.hp, self.wp);
        // Padded columns pw .. pw + w hold the image's columns, as far as the span reaches.
        let x_lo = g.pw.min(wp);
        let x_hi = (g.pw + g.w).min(wp).max(x_lo);
        for (plane, dplane) in image
            .chunks_exact(g.h * g.w)
            .zip(dst.chunks_exact_mut(hp * wp))
        {
            for (y, drow) in dplane.chunks_exact_mut(wp).enumerate() {
                match y.checked_sub(g.ph).filter(|&iy| iy < g.h) {
                    Some(iy) => {
                        drow[..x_lo].fill(0.0);
                        drow[x_lo..x_hi].copy_from_slice(&plane[iy * g.w..][..x_hi - x_lo]);
                        drow[x_hi..].fill(0.0);
                    }
                    None => drow.fill(0.0),
                }
            }
        }
    }
}

/// GEMM columns a convolution with small output maps and large weights is given at least, by putting several
/// images' columns side by side: one image's 4 × 4 map would stream a (megabytes) weight operand from memory
/// for 16 columns; 16 images reuse each weight panel 256 times while it is in cache.
pub const MIN_GEMM_COLS: usize = 256;

/// Weight operands (floats per group) from which small maps go side by side: 64 Ki floats (256 KiB), a tenth of
/// a core's L2. Smaller ones stay in cache anyway, and the copies out of the side-by-side block would cost more
/// than they save (the companion's CNN).
pub const SIDE_BY_SIDE_MIN_WEIGHTS: usize = 64 * 1024;

#[cfg(test)]
thread_local! {
    /// Tests: put small maps side by side whatever the weights' size (as large weights take them).
    pub(crate) static FORCE_SIDE_BY_SIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Images per GEMM for output maps of `ohw` pixels, `weights` floats per group and a batch of `batch`.
fn images_per_gemm(ohw: usize, weights: usize, batch: usize) -> usize {
    #[cfg(test)]
    let weights = if FORCE_SIDE_BY_SIDE.get() {
        usize::MAX
    } else {
        weights
    };
    if ohw == 0 || ohw >= MIN_GEMM_COLS || weights < SIDE_BY_SIDE_MIN_WEIGHTS {
        1
    } else {
        MIN_GEMM_COLS.div_ceil(ohw).min(batch).max(1)
    }
}

/// Depthwise convolution (groups = c, `cout = c·mult`): output channel `co` reads input channel `co / mult`
/// with its own kh x kw filter `weight[co]`. Each output is `bias + Σ w·x` over the taps in (ki, kj) order,
/// one f32 multiply and one add per tap (taps in the padding add `w·0`), on every machine.
///
/// Direct, never im2col or a dense convolution with zeros. Each input channel is first split into `sh·sw`
/// zero-padded *phase planes* (`phase[a][b][y][x] = x_padded[y·sh + a][x·sw + b]`), so that every tap, whatever
/// the stride and dilation, reads one phase plane at a fixed offset. The output map, laid out as `oh` rows of
/// the phase width (the few extra columns per row are computed and dropped), is then one contiguous range:
/// 64 outputs at a time stay in registers while every tap adds its shifted slice of the phase plane. Those
/// loops vectorize; the AVX-512 / AVX2 builds of the same code are chosen at run time and give the same bits
/// (no FMA contraction). On AVX-512, column strides 1 and 2 (every MobileNet layer) take
/// `depthwise_rows_avx512` instead, which reads the input rows in place under lane masks: the same operations
/// per output in the same order, so the same bits again.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d(
    x: &[f32],
    batch: usize,
    g: &Window,
    cout: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    depthwise_conv2d_fused(x, batch, g, cout, weight, bias, None, out)
}

/// [`depthwise_conv2d`] followed by [`activate`] with `act`, run on each output channel right after it is
/// written, while it is in cache (the same values as a separate pass: the activation is elementwise).
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d_fused(
    x: &[f32],
    batch: usize,
    g: &Window,
    cout: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Option<Activation>,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above); the bodies are safe code but for intrinsics
            // whose contracts they check.
            unsafe {
                match g.sw {
                    1 => depthwise_rows_avx512::<1>(x, batch, g, cout, weight, bias, act, out),
                    2 => depthwise_rows_avx512::<2>(x, batch, g, cout, weight, bias, act, out),
                    _ => depthwise_conv2d_avx512(x, batch, g, cout, weight, bias, act, out),
                }
            };
            return;
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked above); the body is safe code.
            unsafe { depthwise_conv2d_avx2(x, batch, g, cout, weight, bias, act, out) };
            return;
        }
    }
    depthwise_conv2d_impl(x, batch, g, cout, weight, bias, act, out, dw_taps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn depthwise_conv2d_avx512(
    x: &[f32],
    batch: usize,
    g: &Window,
    cout: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Option<Activation>,
    out: &mut [f32],
) {
    depthwise_conv2d_impl(
        x,
        batch,
        g,
        cout,
        weight,
        bias,
        act,
        out,
        |b0, w, off, src, o| dw_taps_avx512(b0, w, off, src, o),
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn depthwise_conv2d_avx2(
    x: &[f32],
    batch: usize,
    g: &Window,
    cout: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Option<Activation>,
    out: &mut [f32],
) {
    depthwise_conv2d_impl(x, batch, g, cout, weight, bias, act, out, dw_taps)
}

/// Output rows of a depthwise map (column stride 1 or 2) computed together by [`depthwise_rows_avx512`].
const DW_ROWS: usize = 8;

/// [`depthwise_conv2d_fused`] for column stride `SW` = 1 or 2 on AVX-512, without phase planes: each output row
/// is read straight from the input rows its taps cover, 16 columns per zmm register (for stride 2, the even
/// lanes of two 16-column loads, `vpermt2ps`), [`DW_ROWS`] rows at a time (eight independent add chains; the
/// last `oh mod 8` rows as one block of that many). A tap's 16 input columns are one masked load, the mask
/// dropping the columns that fall in the padding (loaded as 0, so the tap adds `w·0` there as the definition
/// does) or past the row; a tap row in the padding reads a zero row. The outputs are stored under a mask
/// straight into `out`. Per output: the bias, then one multiply and one add per tap in (ki, kj) order, the
/// portable path's operations, so the same bits (the proptest compares them); no plane copies, no row copies.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
fn depthwise_rows_avx512<const SW: usize>(
    x: &[f32],
    batch: usize,
    g: &Window,
    cout: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Option<Activation>,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    assert_eq!(g.sw, SW);
    assert!(SW == 1 || SW == 2);
    let mult = cout / g.c;
    let (hw, ohw, taps) = (g.h * g.w, g.out_hw(), g.kh * g.kw);
    assert!(
        x.len() >= batch * g.c * hw
            && out.len() >= batch * cout * ohw
            && weight.len() >= cout * taps
    );
    if ohw == 0 {
        return;
    }
    // Per (column block, kj): the first input column the block's loads read (may be negative; 16·SW columns
    // from there) and the lane masks of its one or two 16-column loads, the lanes whose input column lies
    // inside [0, w). The same for every row and channel.
    let blocks = g.ow.div_ceil(16);
    let mut loads: Vec<DwLoad> = Vec::with_capacity(blocks * g.kw);
    let lanes = |first: isize| -> __mmask16 {
        let lo = (-first).clamp(0, 16);
        let hi = (g.w as isize - first).clamp(0, 16);
        if hi > lo {
            (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as __mmask16
        } else {
            0
        }
    };
    for bi in 0..blocks {
        for kj in 0..g.kw {
            let first = (bi * 16 * SW + kj * g.dw) as isize - g.pw as isize;
            loads.push(DwLoad {
                first,
                masks: [lanes(first), lanes(first + 16)],
            });
        }
    }
    // What a tap row in the padding reads (under the same column masks as a row of the map).
    let zero_row = vec![0.0f32; g.w];
    // A Clip activation runs on the sums in registers; any other after each channel.
    let clip = match act {
        Some(Activation::Clip { min, max }) => Some((min, max)),
        _ => None,
    };
    let store_mask = |bi: usize| -> __mmask16 {
        let n = (g.ow - bi * 16).min(16);
        ((1u32 << n) - 1) as __mmask16
    };
    for b in 0..batch {
        for ci in 0..g.c {
            let plane = &x[(b * g.c + ci) * hw..][..hw];
            for co in ci * mult..(ci + 1) * mult {
                let b0 = _mm512_set1_ps(bias.map_or(0.0, |bv| bv[co]));
                let wk = &weight[co * taps..(co + 1) * taps];
                let o = &mut out[(b * cout + co) * ohw..][..ohw];
                let full = g.oh / DW_ROWS * DW_ROWS;
                for bi in 0..blocks {
                    let m = store_mask(bi);
                    for oy0 in (0..full).step_by(DW_ROWS) {
                        // SAFETY: rows oy0 .. oy0 + DW_ROWS < oh and column block bi < ceil(ow / 16).
                        unsafe {
                            dw_rows_block::<DW_ROWS, SW>(
                                plane, &zero_row, g, wk, b0, &loads, oy0, bi, m, clip, o,
                            )
                        };
                    }
                    // The last oh mod DW_ROWS rows as one block too (as many independent chains as rows).
                    // SAFETY: rows full .. oh, column block bi < ceil(ow / 16).
                    unsafe {
                        match g.oh - full {
                            0 => {}
                            1 => dw_rows_block::<1, SW>(
                                plane, &zero_row, g, wk, b0, &loads, full, bi, m, clip, o,
                            ),
                            2 => dw_rows_block::<2, SW>(
                                plane, &zero_row, g, wk, b0, &loads, full, bi, m, clip, o,
                            ),
                            3 => dw_rows_block::<3, SW>(
                                plane, &zero_row, g, wk, b0, &loads, full, bi, m, clip, o,
                            ),
                            4 => dw_rows_block::<4, SW>(
                                plane, &zero_row, g, wk, b0, &loads, full, bi, m, clip, o,
                            ),
                            5 => dw_rows_block::<5, SW>(
                                plane, &zero_row, g, wk, b0, &loads, full, bi, m, clip, o,
                            ),
                            6 => dw_rows_block::<6, SW>(
                                plane, &zero_row, g, wk, b0, &loads, full, bi, m, clip, o,
                            ),
                            _ => dw_rows_block::<7, SW>(
                                plane, &zero_row, g, wk, b0, &loads, full, bi, m, clip, o,
                            ),
                        }
                    }
                }
                if let (Some(a), None) = (act, clip) {
                    activate_impl(o, a);
                }
            }
        }
    }
}

/// Where the taps of one column block and kernel column read ([`depthwise_rows_avx512`]).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct DwLoad {
    /// First input column of the (16 or 32 columns wide) window; negative in the left padding.
    first: isize,
    /// Lanes of the window's first and second 16 columns inside `[0, w)`.
    masks: [std::arch::x86_64::__mmask16; 2],
}

/// `R` output rows from `oy0` of column block `bi` of one depthwise channel ([`depthwise_rows_avx512`]): the
/// `R` sums in registers over every tap, then (with `clip`) clipped to `[min, max]` as [`activate`] does, and
/// stored under `store` (the block's columns below `ow`). A tap row in the padding reads `zero_row` under the
/// same column mask, so the tap loop has no branches.
///
/// # Safety
/// AVX-512F is available (only called from [`depthwise_rows_avx512`], into which it is inlined);
/// `oy0 + R <= oh`, `bi·16 < ow`, `plane` holds the `h × w` input channel, `zero_row` `w` zeros and `o` the
/// `oh × ow` output.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn dw_rows_block<const R: usize, const SW: usize>(
    plane: &[f32],
    zero_row: &[f32],
    g: &Window,
    wk: &[f32],
    b0: std::arch::x86_64::__m512,
    loads: &[DwLoad],
    oy0: usize,
    bi: usize,
    store: std::arch::x86_64::__mmask16,
    clip: Option<(f32, f32)>,
    o: &mut [f32],
) {
    use std::arch::x86_64::*;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let mut acc = [b0; R];
    for ki in 0..g.kh {
        // Row r's input row, or the zero row where it lies in the padding.
        let mut row = [zero_row.as_ptr(); R];
        for (r, p) in row.iter_mut().enumerate() {
            let iy = ((oy0 + r) * g.sh + ki * g.dh) as isize - g.ph as isize;
            if iy >= 0 && iy < g.h as isize {
                *p = plane[iy as usize * g.w..][..g.w].as_ptr();
            }
        }
        for kj in 0..g.kw {
            let wv = _mm512_set1_ps(wk[ki * g.kw + kj]);
            let DwLoad { first, masks } = loads[bi * g.kw + kj];
            for (a, &p) in acc.iter_mut().zip(&row) {
                // SAFETY: `p` starts a row of w floats (of `plane`, or `zero_row`), and each mask keeps only the
                // lanes l of its 16 columns with 0 <= first (+ 16) + l < w; masked-off lanes are not accessed
                // (masked loads do not fault), and the pointers are only formed with wrapping arithmetic.
                let v = unsafe {
                    let lo = _mm512_maskz_loadu_ps(masks[0], p.wrapping_offset(first));
                    if SW == 1 {
                        lo
                    } else {
                        // Stride 2: output lane l reads input column first + 2·l, the even lanes of 32.
                        let hi = _mm512_maskz_loadu_ps(masks[1], p.wrapping_offset(first + 16));
                        _mm512_permutex2var_ps(lo, even, hi)
                    }
                };
                *a = _mm512_add_ps(*a, _mm512_mul_ps(wv, v));
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        // A Clip activation in the registers: `if v < min { min } else if v > max { max } else { v }` per lane
        // (ordered comparisons: NaN stays NaN), as `activate` does.
        let a = match clip {
            Some((lo, hi)) => {
                let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
                let above = _mm512_mask_mov_ps(*a, _mm512_cmp_ps_mask::<_CMP_GT_OQ>(*a, hi), hi);
                _mm512_mask_mov_ps(above, _mm512_cmp_ps_mask::<_CMP_LT_OQ>(*a, lo), lo)
            }
            None => *a,
        };
        // SAFETY: the mask keeps columns bi·16 .. min(bi·16 + 16, ow) of output row oy0 + r < oh, inside `o`.
        unsafe { _mm512_mask_storeu_ps(o.as_mut_ptr().add((oy0 + r) * g.ow + bi * 16), store, a) };
    }
}

/// The portable path of [`depthwise_conv2d`] (for tests comparing it with the SIMD-dispatched one).
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d_baseline(
    x: &[f32],
    batch: usize,
    g: &Window,
    cout: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    depthwise_conv2d_impl(x, batch, g, cout, weight, bias, None, out, dw_taps)
}

/// Outputs of a depthwise map accumulated together (in registers on the SIMD paths) over all taps.
const DW_LANES: usize = 64;

/// `out[l] = b0 + Σ_t w[t]·src[off[t] + l]` for `l < DW_LANES`, the taps `t` in order, one f32 multiply and one
/// add each (the portable form of [`dw_taps_avx512`]).
#[inline(always)]
fn dw_taps(b0: f32, w: &[f32], off: &[usize], src: &[f32], out: &mut [f32; DW_LANES]) {
    let mut sum = [b0; DW_LANES];
    for (&wv, &o) in w.iter().zip(off) {
        for (d, &v) in sum.iter_mut().zip(&src[o..o + DW_LANES]) {
            *d += wv * v;
        }
    }
    *out = sum;
}

/// [`dw_taps`] with the 64 sums in four zmm registers (same operations in the same order: same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn dw_taps_avx512(b0: f32, w: &[f32], off: &[usize], src: &[f32], out: &mut [f32; DW_LANES]) {
    use std::arch::x86_64::*;
    assert!(w.len() == off.len() && off.iter().all(|&o| o + DW_LANES <= src.len()));
    let mut sum = [_mm512_set1_ps(b0); DW_LANES / 16];
    for (&wv, &o) in w.iter().zip(off) {
        let wv = _mm512_set1_ps(wv);
        // SAFETY: `o + DW_LANES <= src.len()` (asserted above), so the four 16-float loads lie inside `src`.
        unsafe {
            let p = src.as_ptr().add(o);
            for (v, s) in sum.iter_mut().enumerate() {
                *s = _mm512_add_ps(*s, _mm512_mul_ps(wv, _mm512_loadu_ps(p.add(16 * v))));
            }
        }
    }
    for (v, s) in sum.iter().enumerate() {
        // SAFETY: `out` holds DW_LANES = 64 floats; store `v` writes floats 16·v .. 16·v + 16.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(16 * v), *s) };
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn depthwise_conv2d_impl(
    x: &[f32],
    batch: usize,
    g: &Window,
    cout: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Option<Activation>,
    out: &mut [f32],
    taps_fn: impl Fn(f32, &[f32], &[usize], &[f32], &mut [f32; DW_LANES]),
) {
    let mult = cout / g.c;
    let (hw, ohw, taps) = (g.h * g.w, g.out_hw(), g.kh * g.kw);
    if ohw == 0 {
        return;
    }
    let (sh, sw) = (g.sh, g.sw);
    // Phase planes: wide and tall enough for the farthest tap's offset.
    let pw_ = g.ow + (g.kw - 1) * g.dw / sw;
    let ph_ = g.oh + (g.kh - 1) * g.dh / sh;
    let plane_len = ph_ * pw_;
    // The output map as `oh` rows of the phase width, rounded up to whole groups of LANES.
    let span = (g.oh * pw_).div_ceil(DW_LANES) * DW_LANES;
    // Slack: the dropped columns (and the rounding of `span`) read up to `span - ow` values past a plane's
    // valid outputs; they read zeros here or the next plane's values, and their sums are never used. Only the
    // inside of the input is written below: the padding stays zero from here on.
    let mut phases = vec![0.0f32; sh * sw * plane_len + span];
    let mut acc = vec![0.0f32; span];
    // (phase plane, offset) of each tap, in (ki, kj) order.
    let tap_src: Vec<usize> = (0..g.kh)
        .flat_map(|ki| (0..g.kw).map(move |kj| (ki, kj)))
        .map(|(ki, kj)| {
            let (a, ry) = ((ki * g.dh) % sh, (ki * g.dh) / sh);
            let (b, rx) = ((kj * g.dw) % sw, (kj * g.dw) / sw);
            (a * sw + b) * plane_len + ry * pw_ + rx
        })
        .collect();
    // Columns x of phase column offset b with input column x·sw + b - pw inside [0, w).
    let valid_cols = |b: usize| {
        let lo = g.pw.saturating_sub(b).div_ceil(sw).min(pw_);
        let hi = if g.w + g.pw > b {
            ((g.w + g.pw - b - 1) / sw + 1).min(pw_)
        } else {
            0
        }
        .max(lo);
        (lo, hi)
    };
    // Per phase (a, b): its row offset a, column offset b and valid columns (lo, hi), the same for every channel.
    let phase_geom: Vec<(usize, usize, usize, usize)> = (0..sh * sw)
        .map(|p| {
            let (a, bb) = (p / sw, p % sw);
            let (lo, hi) = valid_cols(bb);
            (a, bb, lo, hi)
        })
        .collect();
    for b in 0..batch {
        for ci in 0..g.c {
            let plane = &x[(b * g.c + ci) * hw..][..hw];
            for (phase, &(a, bb, lo, hi)) in phases[..sh * sw * plane_len]
                .chunks_exact_mut(plane_len)
                .zip(&phase_geom)
            {
                for (y, prow) in phase.chunks_exact_mut(pw_).enumerate() {
                    let iy = (y * sh + a) as isize - g.ph as isize;
                    if iy < 0 || iy >= g.h as isize || lo == hi {
                        // Padding: zero since `phases` was allocated, the same for every channel.
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..][..g.w];
                    let ix0 = lo * sw + bb - g.pw;
                    if sw == 1 {
                        prow[lo..hi].copy_from_slice(&src[ix0..ix0 + (hi - lo)]);
                    } else if sw == 2 {
                        // Pairs (vectorizes as a deinterleave), then a last value without its pair.
                        let n = hi - lo;
                        let pairs = n.min((g.w - ix0) / 2);
                        let dst = &mut prow[lo..hi];
                        for (v, pair) in dst
                            .iter_mut()
                            .zip(src[ix0..ix0 + 2 * pairs].chunks_exact(2))
                        {
                            *v = pair[0];
                        }
                        for (j, v) in dst.iter_mut().enumerate().skip(pairs) {
                            *v = src[ix0 + 2 * j];
                        }
                    } else {
                        for (j, v) in prow[lo..hi].iter_mut().enumerate() {
                            *v = src[ix0 + j * sw];
                        }
                    }
                }
            }
            for co in ci * mult..(ci + 1) * mult {
                let b0 = bias.map_or(0.0, |bv| bv[co]);
                let wk = &weight[co * taps..(co + 1) * taps];
                for (q0, group) in acc.chunks_exact_mut(DW_LANES).enumerate() {
                    let group: &mut [f32; DW_LANES] = group.try_into().expect("DW_LANES");
                    taps_fn(b0, wk, &tap_src, &phases[q0 * DW_LANES..], group);
                }
                let o = &mut out[(b * cout + co) * ohw..][..ohw];
                for (orow, arow) in o.chunks_exact_mut(g.ow).zip(acc.chunks_exact(pw_)) {
                    orow.copy_from_slice(&arow[..g.ow]);
                }
                if let Some(a) = act {
                    activate(o, a);
                }
            }
        }
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
#[inline(always)]
pub fn relu(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

/// Elementwise activations (ONNX / PyTorch inference semantics).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, min), max)`.
    Clip { min: f32, max: f32 },
    /// `x` for x ≥ 0, else `alpha·x`.
    LeakyRelu { alpha: f32 },
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `max(0, min(1, alpha·x + beta))`.
    HardSigmoid { alpha: f32, beta: f32 },
    /// `x · max(0, min(1, x/6 + 1/2))` (ONNX HardSwish; equal to PyTorch's `x·relu6(x + 3)/6` up to rounding).
    HardSwish,
}

/// Applies `act` in place (an AVX-512 or AVX2 build of the same code where the CPU has it: same operations, same
/// bits).
pub fn activate(x: &mut [f32], act: Activation) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above); the body is safe code.
            unsafe { activate_avx512(x, act) };
            return;
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked above); the body is safe code.
            unsafe { activate_avx2(x, act) };
            return;
        }
    }
    activate_impl(x, act)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn activate_avx512(x: &mut [f32], act: Activation) {
    activate_impl(x, act)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn activate_avx2(x: &mut [f32], act: Activation) {
    activate_impl(x, act)
}

/// The portable path of [`activate`] (for tests comparing it with the SIMD-dispatched one).
pub fn activate_baseline(x: &mut [f32], act: Activation) {
    activate_impl(x, act)
}

#[inline(always)]
fn activate_impl(x: &mut [f32], act: Activation) {
    match act {
        Activation::Relu => relu(x),
        Activation::Clip { min, max } => {
            for v in x {
                // NaN stays NaN (as torch.clamp).
                *v = if *v < min {
                    min
                } else if *v > max {
                    max
                } else {
                    *v
                };
            }
        }
        Activation::LeakyRelu { alpha } => {
            for v in x {
                if *v < 0.0 {
                    *v *= alpha;
                }
            }
        }
        Activation::Sigmoid => {
            for v in x {
                *v = 1.0 / (1.0 + (-*v).exp());
            }
        }
        Activation::HardSigmoid { alpha, beta } => {
            for v in x {
                *v = (alpha * *v + beta).clamp(0.0, 1.0);
            }
        }
        Activation::HardSwish => {
            const SIXTH: f32 = 1.0 / 6.0;
            for v in x {
                *v *= (*v * SIXTH + 0.5).clamp(0.0, 1.0);
            }
        }
    }
}

/// Softmax of each row of `len` values in place: `exp(x - max) / Σ exp(x - max)` (sum in f64).
pub fn softmax(x: &mut [f32], len: usize) {
    for row in x.chunks_exact_mut(len) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f64;
        for v in row.iter_mut() {
            *v = (*v - m).exp();
            sum += *v as f64;
        }
        let inv = (1.0 / sum) as f32;
        for v in row {
            *v *= inv;
        }
    }
}

/// Per-channel multiply (`add = false`) or add in place on batch x c x hw values; `k.len()` is `c` or 1
/// (scalar broadcast).
pub fn channel_affine(x: &mut [f32], c: usize, hw: usize, k: &[f32], add: bool) {
    for (i, plane) in x.chunks_exact_mut(hw).enumerate() {
        let kv = if k.len() == 1 { k[0] } else { k[i % c] };
        if add {
            plane.iter_mut().for_each(|v| *v += kv);
        } else {
            plane.iter_mut().for_each(|v| *v *= kv);
        }
    }
}

/// Concatenation along the channels (or features): each example's output is its operands' values one after
/// another. `parts[i]` holds `batch` examples of `lens[i]` values.
pub fn concat(parts: &[&[f32]], lens: &[usize], batch: usize, out: &mut [f32]) {
    let total: usize = lens.iter().sum();
    for b in 0..batch {
        let mut o = b * total;
        for (p, &l) in parts.iter().zip(lens) {
            out[o..o + l].copy_from_slice(&p[b * l..(b + 1) * l]);
            o += l;
        }
    }
}

/// Max pooling (padding acts as -inf) or average pooling. Average pooling divides by kh·kw when
/// `count_include_pad` (padding counts as zeros, PyTorch's default) and by the number of input elements in the
/// window otherwise (ONNX's default). `out` is batch x c x oh x ow.
pub fn pool2d(
    x: &[f32],
    batch: usize,
    g: &Window,
    max: bool,
    count_include_pad: bool,
    out: &mut [f32],
) {
    if max && g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 {
        return max_pool_2x2(x, batch, g, out);
    }
    if !max && g.kh == g.h && g.kw == g.w && g.ph == 0 && g.pw == 0 && g.oh == 1 && g.ow == 1 {
        return global_avgpool(x, batch, g.c, g.h * g.w, out);
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
                o[oy * g.ow + ox] = if max {
                    acc
                } else if count_include_pad {
                    acc * inv
                } else {
                    acc / (ys.len() * xs.len()) as f32
                };
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

/// `(Σ x, Σ x²)` in f64 over eight fixed lanes (element `i` in lane `i mod 8`), then the lanes in order: the
/// statistics of [`group_norm`] (and of the int8 datapath's fused GroupNorm, which must match it bit for bit).
#[inline(always)]
pub(crate) fn sum_sumsq(x: &[f32]) -> (f64, f64) {
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

/// Elementwise `dst = a + b` (what copying `a` into `dst` and then [`add_assign`] of `b` gives, in one pass).
pub fn add_into(dst: &mut [f32], a: &[f32], b: &[f32]) {
    for ((d, x), y) in dst.iter_mut().zip(a).zip(b) {
        *d = x + y;
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
