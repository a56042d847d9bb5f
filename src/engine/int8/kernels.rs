//! Integer kernels of the int8 datapath (docs/datapath.md#kernels): u8 × i8 GEMM with int32 accumulation in three
//! bit-identical paths (AVX-512 VNNI `vpdpbusd`, AVX2 `vpmaddwd` on widened operands, portable), im2col into the
//! GEMM's packed layout, depthwise convolution (direct, never a dense convolution with zeros) and pooling on codes.
//!
//! Operand convention: activations are the *unsigned view* `u ∈ 0..=255` of the stored codes (int8 codes offset
//! by 128, see [`super::quantize`]), weights the integer codes `k ∈ -127..=127` (docs/datapath.md#weights). The
//! GEMM returns the raw sums `Σ u·k`; the caller removes the activation zero point exactly with the weight row
//! sums, `Σ (u - z_u)·k = Σ u·k - z_u · Σ k`. Every path sums the same integers; as long as
//! [`fits_i32`] holds for the depth no partial sum can leave i32, so all paths are bit-identical.

/// Which GEMM implementation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    Portable,
    Avx2,
    Avx512Vnni,
}

impl Path {
    /// The fastest path this CPU supports (checked at run time).
    pub fn best() -> Path {
        if Path::Avx512Vnni.available() {
            Path::Avx512Vnni
        } else if Path::Avx2.available() {
            Path::Avx2
        } else {
            Path::Portable
        }
    }

    /// True when the CPU can run this path.
    pub fn available(self) -> bool {
        match self {
            Path::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => std::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512Vnni => {
                std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Path::Portable => "portable",
            Path::Avx2 => "avx2",
            Path::Avx512Vnni => "avx512-vnni",
        }
    }
}

/// Largest |weight code| the datapath uses.
pub const MAX_W: u64 = 127;

/// True when a dot product of depth `k` of u8 activations and weights of magnitude ≤ 127 cannot leave i32
/// (`k · 255 · 127 ≤ 2^31 - 1`, i.e. k ≤ 66311): then no partial sum overflows in any order.
pub fn fits_i32(k: usize) -> bool {
    (k as u64).saturating_mul(255 * MAX_W) <= i32::MAX as u64
}

/// `k` rounded up to a multiple of 4 (the packed depth).
pub fn padded_depth(k: usize) -> usize {
    k.div_ceil(4) * 4
}

/// Weights of one GEMM: `m` rows of `kp = padded_depth(k)` codes (zero beyond `k`), and their row sums.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackedWeights {
    pub m: usize,
    pub k: usize,
    pub kp: usize,
    pub data: Vec<i8>,
    /// `Σ_k w[r][k]` per row.
    pub rowsum: Vec<i32>,
}

impl PackedWeights {
    /// Packs row-major `m x k` codes.
    pub fn new(m: usize, k: usize, w: &[i8]) -> PackedWeights {
        let kp = padded_depth(k);
        let mut data = vec![0i8; m * kp];
        let mut rowsum = vec![0i32; m];
        for r in 0..m {
            data[r * kp..r * kp + k].copy_from_slice(&w[r * k..(r + 1) * k]);
            rowsum[r] = w[r * k..(r + 1) * k].iter().map(|&v| v as i32).sum();
        }
        PackedWeights {
            m,
            k,
            kp,
            data,
            rowsum,
        }
    }
}

/// Packed-activation index of element `(k, p)` of a `kp x n` operand: quads of 4 consecutive depths per column,
/// `[(k / 4) · n + p] · 4 + k % 4` (the layout `vpdpbusd` reads 16 columns of at once).
#[inline(always)]
pub fn quad_index(k: usize, p: usize, n: usize) -> usize {
    ((k >> 2) * n + p) * 4 + (k & 3)
}

/// im2col of one C x H x W map of unsigned-view codes into the packed layout (`kp x ohw`, depth
/// `k = (ci·kh + ki)·kw + kj`); padding taps hold `pad` (the zero point), depths `k..kp` hold 0. With `csum`,
/// also the column sums `Σ_k u[k][p]` (padding included; what [`column_sums`] gives for `out`).
///
/// Unit column stride (every shipped and imported 3x3 layer): the map is copied once into zero-point-padded
/// planes in `scratch`, and each quad of taps is interleaved straight from four shifted rows of those planes
/// ([`interleave4`]); the column sums come from the channel-summed plane, `kh·kw` adds per position. Other
/// strides build the plain im2col rows in `scratch` first and interleave them.
///
/// With `pitched` and unit strides, the operand's columns are the padded planes' positions
/// ([`ColLayout::pitch`] = the padded width, `(oh − 1)·pitch + ow` columns): each quad is then one long
/// interleave of four contiguous plane spans, and the columns `ox ≥ ow` of each row are don't-care values the
/// caller drops. Otherwise (and always for `csum`) column `oy·ow + ox` is output position `(oy, ox)`.
pub fn im2col_packed(
    x: &[u8],
    g: &crate::engine::kernels::Window,
    pad: u8,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
    csum: Option<&mut Vec<i32>>,
    pitched: bool,
) -> ColLayout {
    if g.sw == 1 {
        im2col_packed_planes(x, g, pad, scratch, out, csum, pitched && g.sh == 1)
    } else {
        im2col_packed_rows(x, g, pad, scratch, out);
        if let Some(c) = csum {
            column_sums_rows(scratch, g.c * g.kh * g.kw, g.out_hw(), c);
        }
        ColLayout {
            n: g.out_hw(),
            pitch: g.ow,
        }
    }
}

/// The columns of a packed convolution operand: `n` of them, output position `(oy, ox)` in column
/// `oy·pitch + ox` (`pitch = ow`: dense).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColLayout {
    pub n: usize,
    pub pitch: usize,
}

/// Unit-column-stride form of [`im2col_packed`] (padded planes, no intermediate rows).
fn im2col_packed_planes(
    x: &[u8],
    g: &crate::engine::kernels::Window,
    pad: u8,
    planes: &mut Vec<u8>,
    out: &mut Vec<u8>,
    csum: Option<&mut Vec<i32>>,
    pitched: bool,
) -> ColLayout {
    debug_assert_eq!(g.sw, 1);
    let k = g.c * g.kh * g.kw;
    let kp = padded_depth(k);
    let n = g.out_hw();
    // Padded plane rows/columns: every input position any tap reads, relative to (-ph, -pw).
    let hp = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    let wp = (g.ow - 1) + (g.kw - 1) * g.dw + 1;
    let plane = hp * wp;
    let layout = if pitched {
        ColLayout {
            n: (g.oh - 1) * wp + g.ow,
            pitch: wp,
        }
    } else {
        ColLayout { n, pitch: g.ow }
    };
    planes.clear();
    planes.resize(g.c * plane + layout.n, pad);
    let zeros = g.c * plane; // Zero bytes after the planes: the rows of depths k..kp.
    planes[zeros..].fill(0);
    for ci in 0..g.c {
        let src = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for yy in 0..hp {
            let iy = yy as isize - g.ph as isize;
            if iy < 0 || iy as usize >= g.h {
                continue;
            }
            // Plane columns xx with input column xx - pw inside [0, w).
            let lo = g.pw.min(wp);
            let hi = (g.pw + g.w).min(wp);
            if hi > lo {
                let row = &src[iy as usize * g.w..][..hi - lo];
                planes[ci * plane + yy * wp + lo..ci * plane + yy * wp + hi].copy_from_slice(row);
            }
        }
    }
    // Every byte of out[..kp·n] is written below (zero-depth quads from the zero row), so no clearing.
    out.resize(kp * layout.n, 0);
    // The plane offset of tap kk's first row (or the zero row).
    let tap = |kk: usize| -> Option<usize> {
        (kk < k).then(|| {
            let (ci, r) = (kk / (g.kh * g.kw), kk % (g.kh * g.kw));
            let (ki, kj) = (r / g.kw, r % g.kw);
            ci * plane + ki * g.dh * wp + kj * g.dw
        })
    };
    for q in 0..kp / 4 {
        let t = [tap(4 * q), tap(4 * q + 1), tap(4 * q + 2), tap(4 * q + 3)];
        if pitched {
            // Unit strides: tap t's values for all positions are one span of the planes.
            let m = layout.n;
            let span = |j: usize| -> &[u8] {
                match t[j] {
                    Some(o) => &planes[o..o + m],
                    None => &planes[zeros..zeros + m],
                }
            };
            let dst = &mut out[q * m * 4..(q + 1) * m * 4];
            interleave4(span(0), span(1), span(2), span(3), dst);
            continue;
        }
        for oy in 0..g.oh {
            let row = |j: usize| -> &[u8] {
                match t[j] {
                    Some(o) => &planes[o + oy * g.sh * wp..][..g.ow],
                    None => &planes[zeros..zeros + g.ow],
                }
            };
            let dst = &mut out[(q * n + oy * g.ow) * 4..(q * n + (oy + 1) * g.ow) * 4];
            interleave4(row(0), row(1), row(2), row(3), dst);
        }
    }
    if let Some(cs) = csum {
        // Σ over channels of the padded planes, then the kh x kw window sums.
        let mut sum = vec![0i32; plane];
        for ci in 0..g.c {
            for (s, &v) in sum.iter_mut().zip(&planes[ci * plane..(ci + 1) * plane]) {
                *s += v as i32;
            }
        }
        cs.clear();
        cs.resize(n, 0);
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                for oy in 0..g.oh {
                    let src = &sum[(oy * g.sh + ki * g.dh) * wp + kj * g.dw..][..g.ow];
                    for (c, &v) in cs[oy * g.ow..(oy + 1) * g.ow].iter_mut().zip(src) {
                        *c += v;
                    }
                }
            }
        }
    }
    layout
}

/// Any-stride form of [`im2col_packed`]: plain im2col rows into `rows`, then quads.
fn im2col_packed_rows(
    x: &[u8],
    g: &crate::engine::kernels::Window,
    pad: u8,
    rows: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    let k = g.c * g.kh * g.kw;
    let kp = padded_depth(k);
    let n = g.out_hw();
    // Pass 1: plain im2col rows (row kk = one tap over all output positions; contiguous copies). Every byte of
    // rows 0..k is written below; rows k..kp are the zero padding.
    rows.resize(kp * n, 0);
    rows[k * n..].fill(0);
    for ci in 0..g.c {
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let kk = (ci * g.kh + ki) * g.kw + kj;
                let dst = &mut rows[kk * n..(kk + 1) * n];
                // Output columns whose input column ox·sw + kj·dw - pw lies inside [0, w).
                let off = kj * g.dw;
                let lo = g.pw.saturating_sub(off).div_ceil(g.sw).min(g.ow);
                let hi = if g.w + g.pw > off {
                    ((g.w + g.pw - off - 1) / g.sw + 1).min(g.ow)
                } else {
                    0
                }
                .max(lo);
                for oy in 0..g.oh {
                    let drow = &mut dst[oy * g.ow..(oy + 1) * g.ow];
                    let iy = (oy * g.sh + ki * g.dh) as isize - g.ph as isize;
                    if iy < 0 || iy as usize >= g.h {
                        drow.fill(pad);
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    drow[..lo].fill(pad);
                    drow[hi..].fill(pad);
                    if hi > lo {
                        let ix0 = lo * g.sw + off - g.pw;
                        if g.sw == 1 {
                            drow[lo..hi].copy_from_slice(&src[ix0..ix0 + (hi - lo)]);
                        } else {
                            for (j, d) in drow[lo..hi].iter_mut().enumerate() {
                                *d = src[ix0 + j * g.sw];
                            }
                        }
                    }
                }
            }
        }
    }
    // Pass 2: interleave 4 rows at a time into quads (every byte of `out[..kp·n]` is written).
    out.resize(kp * n, 0);
    for q in 0..kp / 4 {
        let r = &rows[4 * q * n..4 * (q + 1) * n];
        let (r0, r1, r2, r3) = (&r[..n], &r[n..2 * n], &r[2 * n..3 * n], &r[3 * n..]);
        interleave4(r0, r1, r2, r3, &mut out[q * n * 4..(q + 1) * n * 4]);
    }
}

/// `dst[4p + j] = r_j[p]`: four rows of `n` bytes as `n` quads (the packed operand's layout). SSE2 (part of
/// every x86-64 CPU) does 16 positions per step with two rounds of unpacks; elsewhere, and for the tail,
/// [`interleave4_portable`]. A pure permutation, so both give the same bytes (tested).
pub fn interleave4(r0: &[u8], r1: &[u8], r2: &[u8], r3: &[u8], dst: &mut [u8]) {
    let n = r0.len();
    assert!(r1.len() == n && r2.len() == n && r3.len() == n && dst.len() == 4 * n);
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is in the x86-64 baseline; each step reads its 16, 8 or 4 bytes at `done` from each row
        // (done + width <= n) and writes 4·width bytes at 4·done, inside the slices checked above.
        unsafe {
            use std::arch::x86_64::*;
            while done + 16 <= n {
                let ld = |r: &[u8]| _mm_loadu_si128(r.as_ptr().add(done) as *const __m128i);
                let (a, b, c, d) = (ld(r0), ld(r1), ld(r2), ld(r3));
                let (ab_lo, ab_hi) = (_mm_unpacklo_epi8(a, b), _mm_unpackhi_epi8(a, b));
                let (cd_lo, cd_hi) = (_mm_unpacklo_epi8(c, d), _mm_unpackhi_epi8(c, d));
                let o = dst.as_mut_ptr().add(4 * done) as *mut __m128i;
                _mm_storeu_si128(o, _mm_unpacklo_epi16(ab_lo, cd_lo));
                _mm_storeu_si128(o.add(1), _mm_unpackhi_epi16(ab_lo, cd_lo));
                _mm_storeu_si128(o.add(2), _mm_unpacklo_epi16(ab_hi, cd_hi));
                _mm_storeu_si128(o.add(3), _mm_unpackhi_epi16(ab_hi, cd_hi));
                done += 16;
            }
            // 8 and then 4 positions per step (short rows such as 14 or 28 outputs), from 64- and 32-bit loads.
            if done + 8 <= n {
                let ld = |r: &[u8]| _mm_loadl_epi64(r.as_ptr().add(done) as *const __m128i);
                let ab = _mm_unpacklo_epi8(ld(r0), ld(r1));
                let cd = _mm_unpacklo_epi8(ld(r2), ld(r3));
                let o = dst.as_mut_ptr().add(4 * done) as *mut __m128i;
                _mm_storeu_si128(o, _mm_unpacklo_epi16(ab, cd));
                _mm_storeu_si128(o.add(1), _mm_unpackhi_epi16(ab, cd));
                done += 8;
            }
            if done + 4 <= n {
                let ld = |r: &[u8]| {
                    _mm_cvtsi32_si128((r.as_ptr().add(done) as *const i32).read_unaligned())
                };
                let ab = _mm_unpacklo_epi8(ld(r0), ld(r1));
                let cd = _mm_unpacklo_epi8(ld(r2), ld(r3));
                _mm_storeu_si128(
                    dst.as_mut_ptr().add(4 * done) as *mut __m128i,
                    _mm_unpacklo_epi16(ab, cd),
                );
                done += 4;
            }
        }
    }
    interleave4_portable(
        &r0[done..],
        &r1[done..],
        &r2[done..],
        &r3[done..],
        &mut dst[4 * done..],
    );
}

/// The portable (and reference) form of [`interleave4`].
pub fn interleave4_portable(r0: &[u8], r1: &[u8], r2: &[u8], r3: &[u8], dst: &mut [u8]) {
    for ((d, (&a, &b)), (&c, &e)) in dst
        .chunks_exact_mut(4)
        .zip(r0.iter().zip(r1))
        .zip(r2.iter().zip(r3))
    {
        d.copy_from_slice(&[a, b, c, e]);
    }
}

/// Packs row-major `n x k` activations (one row per example, unsigned view) as the `kp x n` packed operand.
pub fn pack_rows(x: &[u8], n: usize, k: usize, out: &mut Vec<u8>) {
    let kp = padded_depth(k);
    out.clear();
    out.resize(kp * n, 0);
    // Quad q of row p (depths 4q..4q+4) is the 4 bytes at ((q·n + p)·4): whole quads are 4-byte copies; the
    // last partial quad keeps its zero padding.
    for p in 0..n {
        let row = &x[p * k..(p + 1) * k];
        let mut quads = row.chunks_exact(4);
        for (q, quad) in quads.by_ref().enumerate() {
            out[(q * n + p) * 4..(q * n + p) * 4 + 4].copy_from_slice(quad);
        }
        let rest = quads.remainder();
        if !rest.is_empty() {
            let q = k / 4;
            out[(q * n + p) * 4..(q * n + p) * 4 + rest.len()].copy_from_slice(rest);
        }
    }
}

/// Column sums `Σ_k u[k][p]` of a packed operand (depths `k..kp` are zero and add nothing).
pub fn column_sums(b: &[u8], kp: usize, n: usize, out: &mut Vec<i32>) {
    out.clear();
    out.resize(n, 0);
    for q in 0..kp / 4 {
        for (p, o) in out.iter_mut().enumerate() {
            let s = &b[(q * n + p) * 4..(q * n + p) * 4 + 4];
            *o += s[0] as i32 + s[1] as i32 + s[2] as i32 + s[3] as i32;
        }
    }
}

/// Column sums `Σ_k rows[k][p]` of the plain im2col rows (`k` rows of `n` bytes, as [`im2col_packed`] leaves
/// them in its `rows` buffer): the same numbers as [`column_sums`] of the packed operand, summed over contiguous
/// rows (vectorizes: u8 rows widened into u16 partial sums of at most 257 rows, then into i32).
pub fn column_sums_rows(rows: &[u8], k: usize, n: usize, out: &mut Vec<i32>) {
    out.clear();
    out.resize(n, 0);
    let mut part = vec![0u16; n];
    for block in rows[..k * n].chunks(257 * n.max(1)) {
        part.fill(0);
        for row in block.chunks_exact(n.max(1)) {
            for (s, &v) in part.iter_mut().zip(row) {
                *s += v as u16;
            }
        }
        for (o, &s) in out.iter_mut().zip(&part) {
            *o += s as i32;
        }
    }
}

/// `c[r][p] = Σ_k w[r][k] · b[k][p]` (raw sums, row-major `m x n`) on `path`.
///
/// # Panics
/// If the depth does not satisfy [`fits_i32`] (use [`gemm_i64`]), if `path` is not available on this CPU, or if
/// the slices are shorter than the shapes say.
pub fn gemm(path: Path, w: &PackedWeights, b: &[u8], n: usize, c: &mut [i32]) {
    assert!(fits_i32(w.kp), "depth {} may overflow i32", w.kp);
    assert!(b.len() >= w.kp * n && c.len() >= w.m * n);
    assert!(path.available(), "{} is not available", path.name());
    match path {
        Path::Portable => gemm_portable(w, b, n, c),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX2 (asserted above); the slices hold the shapes (asserted above).
        Path::Avx2 => unsafe { super::gemm_avx2::gemm(w, b, n, c, None) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX-512 F/BW/VNNI (asserted above); the slices hold the shapes.
        Path::Avx512Vnni => unsafe { x86::gemm_vnni(w, b, n, c) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable path is available"),
    }
}

fn gemm_portable(w: &PackedWeights, b: &[u8], n: usize, c: &mut [i32]) {
    for r in 0..w.m {
        let wr = &w.data[r * w.kp..(r + 1) * w.kp];
        let cr = &mut c[r * n..(r + 1) * n];
        cr.fill(0);
        for (q, wq) in wr.chunks_exact(4).enumerate() {
            let bq = &b[q * n * 4..(q + 1) * n * 4];
            for (o, bp) in cr.iter_mut().zip(bq.chunks_exact(4)) {
                *o += bp[0] as i32 * wq[0] as i32
                    + bp[1] as i32 * wq[1] as i32
                    + bp[2] as i32 * wq[2] as i32
                    + bp[3] as i32 * wq[3] as i32;
            }
        }
    }
}

/// Where [`gemm_folds`] writes the row folds' sums: fold `f` of row `r`, column `p` at `parts[f·stride + r·n +
/// p]`; a fold is `quads` quads of depth (`4·quads` array rows, docs/activation-faults.md#partial-sums).
pub struct FoldOut<'a> {
    pub quads: usize,
    pub parts: &'a mut [i32],
    pub stride: usize,
}

/// Folds of `quads` quads in a depth of `kp` (a multiple of 4): `⌈kp / (4·quads)⌉`.
pub fn fold_count(kp: usize, quads: usize) -> usize {
    (kp / 4).div_ceil(quads.max(1))
}

/// [`gemm`] that also writes each row fold's sum (docs/datapath.md#speed): `c` gets the same sums as [`gemm`],
/// `folds.parts` the sums over quads `f·quads .. min((f+1)·quads, kp/4)` of each fold `f` ([`FoldOut`]). The
/// sums of a row's folds add up to its `c` exactly (no depth that [`fits_i32`] can overflow).
///
/// # Panics
/// As [`gemm`]; also if `folds.quads` is 0, `folds.stride < m·n` or `folds.parts` is too short.
pub fn gemm_folds(
    path: Path,
    w: &PackedWeights,
    b: &[u8],
    n: usize,
    c: &mut [i32],
    folds: FoldOut,
) {
    assert!(fits_i32(w.kp), "depth {} may overflow i32", w.kp);
    assert!(b.len() >= w.kp * n && c.len() >= w.m * n);
    assert!(path.available(), "{} is not available", path.name());
    let nf = fold_count(w.kp, folds.quads);
    assert!(folds.quads > 0 && folds.stride >= w.m * n);
    assert!(folds.parts.len() >= (nf.max(1) - 1) * folds.stride + w.m * n);
    match path {
        Path::Portable => gemm_folds_portable(w, b, n, c, folds),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX2 (asserted above); the slices hold the shapes (asserted above).
        Path::Avx2 => unsafe { super::gemm_avx2::gemm(w, b, n, c, Some(folds)) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX-512 F/BW/VNNI (asserted above); the slices hold the shapes.
        Path::Avx512Vnni => unsafe { x86::gemm_folds_vnni(w, b, n, c, folds) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable path is available"),
    }
}

fn gemm_folds_portable(w: &PackedWeights, b: &[u8], n: usize, c: &mut [i32], folds: FoldOut) {
    let nq = w.kp / 4;
    for r in 0..w.m {
        let cr = &mut c[r * n..(r + 1) * n];
        cr.fill(0);
        for (f, q0) in (0..nq).step_by(folds.quads).enumerate() {
            let pr = &mut folds.parts[f * folds.stride + r * n..f * folds.stride + (r + 1) * n];
            pr.fill(0);
            for q in q0..(q0 + folds.quads).min(nq) {
                let wq = &w.data[r * w.kp + q * 4..r * w.kp + q * 4 + 4];
                let bq = &b[q * n * 4..(q + 1) * n * 4];
                for (o, bp) in pr.iter_mut().zip(bq.chunks_exact(4)) {
                    *o += bp[0] as i32 * wq[0] as i32
                        + bp[1] as i32 * wq[1] as i32
                        + bp[2] as i32 * wq[2] as i32
                        + bp[3] as i32 * wq[3] as i32;
                }
            }
            for (o, &v) in cr.iter_mut().zip(pr.iter()) {
                *o += v;
            }
        }
    }
}

/// The same sums exactly in i64, for depths where [`fits_i32`] fails (plain loops).
pub fn gemm_i64(w: &PackedWeights, b: &[u8], n: usize, c: &mut [i64]) {
    for r in 0..w.m {
        for p in 0..n {
            let mut s = 0i64;
            for kk in 0..w.kp {
                s += w.data[r * w.kp + kk] as i64 * b[quad_index(kk, p, n)] as i64;
            }
            c[r * n + p] = s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::PackedWeights;
    use std::arch::x86_64::*;

    /// The lane masks of the two 16-column halves of a 32-column block with `left` columns still to go (all
    /// lanes when `left ≥ 32`).
    fn column_masks(left: usize) -> (__mmask16, __mmask16) {
        let half = |n: usize| -> __mmask16 {
            if n >= 16 {
                0xFFFF
            } else {
                ((1u32 << n) - 1) as u16
            }
        };
        (half(left), half(left.saturating_sub(16)))
    }

    /// The VNNI GEMMs' inner loop: for the activation quads `quads` of the 32 columns from `p` (lane masks
    /// `masks` of the two 16-column halves, [`column_masks`]) and weight rows `r .. r + rows`, `a0[i]` / `a1[i]`
    /// gain `vpdpbusd` (u8 × i8, 4 products per i32 lane) of the halves.
    ///
    /// # Safety
    /// AVX-512F/BW/VNNI are available; `b` holds `quads.end · n · 4` bytes, and `w` has rows `r + rows ≤ m`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    #[inline]
    unsafe fn dpbusd_quads_vnni(
        w: &PackedWeights,
        b: &[u8],
        n: usize,
        r: usize,
        rows: usize,
        p: usize,
        quads: std::ops::Range<usize>,
        (m0, m1): (__mmask16, __mmask16),
        a0: &mut [__m512i; 4],
        a1: &mut [__m512i; 4],
    ) {
        // SAFETY: the masked loads touch only the columns below `n`; the caller's contract keeps every other
        // access inside `b` and `w.data`.
        unsafe {
            for q in quads {
                let base = b.as_ptr().add((q * n + p) * 4) as *const i32;
                let v0 = _mm512_maskz_loadu_epi32(m0, base);
                let v1 = _mm512_maskz_loadu_epi32(m1, base.add(16));
                for i in 0..rows {
                    let wp = w.data.as_ptr().add((r + i) * w.kp + q * 4) as *const i32;
                    let wb = _mm512_set1_epi32(wp.read_unaligned());
                    a0[i] = _mm512_dpbusd_epi32(a0[i], v0, wb);
                    a1[i] = _mm512_dpbusd_epi32(a1[i], v1, wb);
                }
            }
        }
    }

    /// 2x2 / stride-2 unpadded max pooling of [`super::max_pool`] on AVX-512BW: per output row, up to 32
    /// outputs per step from two masked 64-byte row loads (`vpmaxub` down, then across each byte pair, `vpmovwb`
    /// to the low bytes).
    ///
    /// # Safety
    /// AVX-512F/BW are available.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn max_pool_2x2_avx512(
        x: &[u8],
        g: &crate::engine::kernels::Window,
        out: &mut [u8],
    ) {
        let (oh, ow) = (g.oh, g.ow);
        assert!(x.len() >= g.c * g.h * g.w && out.len() >= g.c * oh * ow);
        assert!(2 * oh <= g.h && 2 * ow <= g.w);
        for c in 0..g.c {
            for oy in 0..oh {
                let r0 = x.as_ptr().add(c * g.h * g.w + 2 * oy * g.w);
                let r1 = r0.add(g.w);
                let o = out.as_mut_ptr().add((c * oh + oy) * ow);
                let mut ox = 0;
                while ox < ow {
                    let n = (ow - ox).min(32);
                    let m_in: __mmask64 = if n == 32 {
                        u64::MAX
                    } else {
                        (1u64 << (2 * n)) - 1
                    };
                    let m_out: __mmask32 = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
                    // SAFETY: the masked lanes are the row pair's columns 2·ox .. 2·(ox + n) ≤ 2·ow ≤ w and
                    // outputs ox .. ox + n of the row.
                    let a = _mm512_maskz_loadu_epi8(m_in, r0.add(2 * ox) as *const i8);
                    let b = _mm512_maskz_loadu_epi8(m_in, r1.add(2 * ox) as *const i8);
                    let v = _mm512_max_epu8(a, b);
                    let v = _mm512_max_epu8(v, _mm512_srli_epi16::<8>(v));
                    _mm512_mask_cvtepi16_storeu_epi8(o.add(ox) as *mut i8, m_out, v);
                    ox += n;
                }
            }
        }
    }

    /// [`super::unpitch_add`] on AVX-512F.
    ///
    /// # Safety
    /// AVX-512F is available; `src` holds `(rows − 1)·pitch + ow` values for the `rows = dst.len() / ow` rows.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn unpitch_add_avx512(
        src: &[i32],
        pitch: usize,
        ow: usize,
        c: i32,
        dst: &mut [i32],
    ) {
        let cv = _mm512_set1_epi32(c);
        let rows = dst.len() / ow.max(1);
        for oy in 0..rows {
            let mut x = 0;
            while x < ow {
                let m: __mmask16 = if ow - x >= 16 {
                    0xFFFF
                } else {
                    ((1u32 << (ow - x)) - 1) as u16
                };
                // SAFETY: lanes under `m` are columns x.. < ow of row oy, inside both slices.
                let v = _mm512_maskz_loadu_epi32(m, src.as_ptr().add(oy * pitch + x));
                _mm512_mask_storeu_epi32(
                    dst.as_mut_ptr().add(oy * ow + x),
                    m,
                    _mm512_add_epi32(v, cv),
                );
                x += 16;
            }
        }
    }

    /// [`super::unpitch_add`] on AVX2: 8 columns per step, the row's last `ow mod 8` under a `vpmaskmovd`
    /// lane mask (masked lanes are neither read nor written).
    ///
    /// # Safety
    /// AVX2 is available; `src` holds `(rows − 1)·pitch + ow` values for the `rows = dst.len() / ow` rows.
    #[target_feature(enable = "avx2")]
    pub unsafe fn unpitch_add_avx2(src: &[i32], pitch: usize, ow: usize, c: i32, dst: &mut [i32]) {
        let cv = _mm256_set1_epi32(c);
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let rows = dst.len() / ow.max(1);
        for oy in 0..rows {
            let (s, d) = (src.as_ptr().add(oy * pitch), dst.as_mut_ptr().add(oy * ow));
            let mut x = 0;
            while x + 8 <= ow {
                // SAFETY: columns x..x+8 < ow of row oy, inside both slices.
                let v = _mm256_loadu_si256(s.add(x) as *const __m256i);
                _mm256_storeu_si256(d.add(x) as *mut __m256i, _mm256_add_epi32(v, cv));
                x += 8;
            }
            if x < ow {
                let m = _mm256_cmpgt_epi32(_mm256_set1_epi32((ow - x) as i32), lane);
                // SAFETY: only the lanes under `m`, columns x.. < ow of row oy, are touched.
                let v = _mm256_maskload_epi32(s.add(x), m);
                _mm256_maskstore_epi32(d.add(x), m, _mm256_add_epi32(v, cv));
            }
        }
    }

    /// Stores rows `0..rows` of a VNNI tile, row `i` at `dst + i·n`: its two 16-column halves `a0[i]`, `a1[i]`
    /// under the lane masks `(m0, m1)` of [`column_masks`].
    ///
    /// # Safety
    /// AVX-512F is available; the masked lanes of every row lie inside the destination.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store_tile_vnni(
        dst: *mut i32,
        n: usize,
        rows: usize,
        (m0, m1): (__mmask16, __mmask16),
        a0: &[__m512i; 4],
        a1: &[__m512i; 4],
    ) {
        for i in 0..rows {
            let out = dst.add(i * n);
            _mm512_mask_storeu_epi32(out, m0, a0[i]);
            if m1 != 0 {
                _mm512_mask_storeu_epi32(out.add(16), m1, a1[i]);
            }
        }
    }

    /// AVX-512 VNNI: `vpdpbusd` (u8 activations × i8 weights, 4 products per i32 lane), 4 rows x 32 columns,
    /// masked loads/stores for the column tail.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn gemm_vnni(w: &PackedWeights, b: &[u8], n: usize, c: &mut [i32]) {
        let nq = w.kp / 4;
        let mut r = 0;
        while r < w.m {
            let rows = (w.m - r).min(4);
            let mut p = 0;
            while p < n {
                let left = n - p;
                let (m0, m1) = column_masks(left);
                let mut a0 = [_mm512_setzero_si512(); 4];
                let mut a1 = [_mm512_setzero_si512(); 4];
                dpbusd_quads_vnni(w, b, n, r, rows, p, 0..nq, (m0, m1), &mut a0, &mut a1);
                store_tile_vnni(c.as_mut_ptr().add(r * n + p), n, rows, (m0, m1), &a0, &a1);
                p += 32;
            }
            r += rows;
        }
    }

    /// [`super::gemm_folds`] on AVX-512 VNNI: [`gemm_vnni`]'s tiles, each fold's accumulators stored and added
    /// to the tile's total at the fold's end.
    ///
    /// SAFETY (callers): AVX-512 F/BW/VNNI available; the shapes [`super::gemm_folds`] asserts (masked loads and
    /// stores keep the column tail inside the slices).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn gemm_folds_vnni(
        w: &PackedWeights,
        b: &[u8],
        n: usize,
        c: &mut [i32],
        folds: super::FoldOut,
    ) {
        let nq = w.kp / 4;
        let parts = folds.parts.as_mut_ptr();
        let mut r = 0;
        while r < w.m {
            let rows = (w.m - r).min(4);
            let mut p = 0;
            while p < n {
                let left = n - p;
                let (m0, m1) = column_masks(left);
                let mut t0 = [_mm512_setzero_si512(); 4];
                let mut t1 = [_mm512_setzero_si512(); 4];
                let mut q0 = 0;
                let mut f = 0;
                while q0 < nq {
                    let q1 = (q0 + folds.quads).min(nq);
                    let mut a0 = [_mm512_setzero_si512(); 4];
                    let mut a1 = [_mm512_setzero_si512(); 4];
                    dpbusd_quads_vnni(w, b, n, r, rows, p, q0..q1, (m0, m1), &mut a0, &mut a1);
                    let out = parts.add(f * folds.stride + r * n + p);
                    store_tile_vnni(out, n, rows, (m0, m1), &a0, &a1);
                    for i in 0..rows {
                        t0[i] = _mm512_add_epi32(t0[i], a0[i]);
                        t1[i] = _mm512_add_epi32(t1[i], a1[i]);
                    }
                    q0 = q1;
                    f += 1;
                }
                store_tile_vnni(c.as_mut_ptr().add(r * n + p), n, rows, (m0, m1), &t0, &t1);
                p += 32;
            }
            r += rows;
        }
    }
}

/// Depthwise convolution (one input channel per group, `cout = c·mult`) on unsigned-view codes, direct:
/// `acc[co][o] = Σ_taps (u - z_u) · w[co][tap]` over the taps inside the map (padding taps are the zero point
/// and contribute 0). Also returns the window sums `Σ (u - z_u)` per output (the asymmetric weight term).
/// Exact (i64 accumulators).
#[allow(clippy::too_many_arguments)]
pub fn depthwise(
    x: &[u8],
    g: &crate::engine::kernels::Window,
    cout: usize,
    w: &[i8],
    zu: i32,
    acc: &mut [i64],
    asum: &mut [i32],
) {
    let mult = cout / g.c;
    let taps = g.kh * g.kw;
    let ohw = g.out_hw();
    for co in 0..cout {
        let plane = &x[(co / mult) * g.h * g.w..(co / mult + 1) * g.h * g.w];
        let wk = &w[co * taps..(co + 1) * taps];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let mut s = 0i64;
                let mut t = 0i32;
                for ki in 0..g.kh {
                    let iy = (oy * g.sh + ki * g.dh) as isize - g.ph as isize;
                    if iy < 0 || iy as usize >= g.h {
                        continue;
                    }
                    let row = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    for kj in 0..g.kw {
                        let ix = (ox * g.sw + kj * g.dw) as isize - g.pw as isize;
                        if ix < 0 || ix as usize >= g.w {
                            continue;
                        }
                        let v = row[ix as usize] as i32 - zu;
                        s += v as i64 * wk[ki * g.kw + kj] as i64;
                        t += v;
                    }
                }
                acc[co * ohw + oy * g.ow + ox] = s;
                asum[co * ohw + oy * g.ow + ox] = t;
            }
        }
    }
}

/// Max pooling on unsigned-view codes of one C x H x W map (padding taps are ignored, as -inf). Codes order as
/// the values they stand for (the scale is positive), so the output keeps the input's scale and zero point.
/// `out[i] = max(v[2i], v[2i + 1])`; SSE2 (x86-64 baseline) 16 outputs per step, the tail (and other CPUs)
/// scalar. The same bytes either way (tested).
pub fn max_pairs(v: &[u8], out: &mut [u8]) {
    let n = out.len();
    assert!(v.len() >= 2 * n);
    #[allow(unused_mut)]
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is in the x86-64 baseline; each step reads v[2i..2i + 32] and writes out[i..i + 16] with
    // i + 16 <= n and 2n <= v.len().
    unsafe {
        use std::arch::x86_64::*;
        let even = _mm_set1_epi16(0x00FF);
        while i + 16 <= n {
            let a = _mm_loadu_si128(v.as_ptr().add(2 * i) as *const __m128i);
            let b = _mm_loadu_si128(v.as_ptr().add(2 * i + 16) as *const __m128i);
            // Each 16-bit lane's low byte becomes max(low, high); pack the low bytes.
            let ma = _mm_and_si128(_mm_max_epu8(a, _mm_srli_epi16(a, 8)), even);
            let mb = _mm_and_si128(_mm_max_epu8(b, _mm_srli_epi16(b, 8)), even);
            _mm_storeu_si128(
                out.as_mut_ptr().add(i) as *mut __m128i,
                _mm_packus_epi16(ma, mb),
            );
            i += 16;
        }
    }
    for (o, p) in out[i..].iter_mut().zip(v[2 * i..].chunks_exact(2)) {
        *o = p[0].max(p[1]);
    }
}

pub fn max_pool(
    x: &[u8],
    g: &crate::engine::kernels::Window,
    out: &mut [u8],
    sc: &mut KernelScratch,
) {
    if g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
            // SAFETY: AVX-512F/BW are available; `x` holds c·h·w bytes and `out` c·oh·ow (asserted inside).
            unsafe { x86::max_pool_2x2_avx512(x, g, out) };
            return;
        }
    }
    max_pool_portable(x, g, out, sc)
}

/// The portable path of [`max_pool`] (SSE2 on x86-64), for tests comparing it with the dispatched one.
pub fn max_pool_portable(
    x: &[u8],
    g: &crate::engine::kernels::Window,
    out: &mut [u8],
    sc: &mut KernelScratch,
) {
    if g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 {
        // 2x2 / stride 2, unpadded (every window inside the map): the vertical maxima of each row pair's first
        // 2·ow columns, laid out contiguously, hold the horizontal pairs of the whole plane back to back.
        let w2 = 2 * g.ow;
        let v = &mut sc.pool;
        v.resize(g.oh * w2, 0);
        for c in 0..g.c {
            let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
            for (oy, vr) in v.chunks_exact_mut(w2).enumerate() {
                let (r0, r1) = (
                    &plane[2 * oy * g.w..][..w2],
                    &plane[(2 * oy + 1) * g.w..][..w2],
                );
                for ((d, &a), &b) in vr.iter_mut().zip(r0).zip(r1) {
                    *d = a.max(b);
                }
            }
            max_pairs(v, &mut out[c * g.out_hw()..(c + 1) * g.out_hw()]);
        }
        return;
    }
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let mut m = 0u8;
                for ki in 0..g.kh {
                    let iy = (oy * g.sh + ki) as isize - g.ph as isize;
                    if iy < 0 || iy as usize >= g.h {
                        continue;
                    }
                    for kj in 0..g.kw {
                        let ix = (ox * g.sw + kj) as isize - g.pw as isize;
                        if ix >= 0 && (ix as usize) < g.w {
                            m = m.max(plane[iy as usize * g.w + ix as usize]);
                        }
                    }
                }
                out[c * g.out_hw() + oy * g.ow + ox] = m;
            }
        }
    }
}

/// Average-pooling window sums of centred codes `Σ (u - z_u)` and the divisor of each output (`kh·kw` with
/// `count_include_pad`, else the taps inside the map), for one C x H x W map.
pub fn avg_pool_sums(
    x: &[u8],
    g: &crate::engine::kernels::Window,
    zu: i32,
    count_include_pad: bool,
    sums: &mut [i32],
    counts: &mut [u32],
) {
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (mut s, mut n) = (0i32, 0u32);
                for ki in 0..g.kh {
                    let iy = (oy * g.sh + ki) as isize - g.ph as isize;
                    if iy < 0 || iy as usize >= g.h {
                        continue;
                    }
                    for kj in 0..g.kw {
                        let ix = (ox * g.sw + kj) as isize - g.pw as isize;
                        if ix >= 0 && (ix as usize) < g.w {
                            s += plane[iy as usize * g.w + ix as usize] as i32 - zu;
                            n += 1;
                        }
                    }
                }
                let o = c * g.out_hw() + oy * g.ow + ox;
                sums[o] = s;
                counts[o] = if count_include_pad {
                    (g.kh * g.kw) as u32
                } else {
                    n
                };
            }
        }
    }
}

/// A conv/linear layer's weights as the accumulation kernels read them.
#[derive(Clone, Copy, Debug)]
pub struct LayerWeights<'a> {
    pub cout: usize,
    pub groups: usize,
    /// One input channel per group: `codes` is `[cout][kh·kw]`, read directly.
    pub depthwise: bool,
    /// Row-major integer codes `[cout][depth]`.
    pub codes: &'a [i8],
    /// One packed GEMM operand per group (dense and grouped layers).
    pub packed: &'a [PackedWeights],
    /// Whether the window sums are needed (asymmetric weight schemes).
    pub asym: bool,
}

/// Reusable buffers of [`conv_acc`], [`linear_acc`] and [`max_pool`].
#[derive(Default, Debug)]
pub struct KernelScratch {
    rows: Vec<u8>,
    /// Vertical maxima of 2x2 max pooling.
    pool: Vec<u8>,
    cols: Vec<u8>,
    raw: Vec<i32>,
    raw64: Vec<i64>,
    csum: Vec<i32>,
}

/// Raw GEMM sums exactly (i32 kernel on `path` when the depth allows, else the i64 loops) into `scratch.raw64`.
fn gemm_exact(path: Path, w: &PackedWeights, b: &[u8], n: usize, sc: &mut KernelScratch) {
    sc.raw64.resize(w.m * n, 0);
    if fits_i32(w.kp) {
        sc.raw.resize(w.m * n, 0);
        gemm(path, w, b, n, &mut sc.raw);
        for (d, &v) in sc.raw64.iter_mut().zip(&sc.raw) {
            *d = v as i64;
        }
    } else {
        gemm_i64(w, b, n, &mut sc.raw64);
    }
}

/// True when `Σ u·k` of depth `kp` plus `corr` can never leave i32 (then the correction runs in i32, unchecked).
#[inline]
fn fits_with(kp: usize, corr: i64) -> bool {
    (kp as i64)
        .saturating_mul(255 * MAX_W as i64)
        .saturating_add(corr.abs())
        <= i32::MAX as i64
}

/// Convolution accumulators of one example (`x` unsigned view, zero point `zu`): `acc[co][p] = sat_i32(Σ (u -
/// z_u)·k + bias[co])` and, when `w.asym`, the window sums `asum[gi][p] = Σ (u - z_u)` per group `gi` (the same
/// for every output channel of the group; left untouched otherwise). Dense and grouped layers: im2col +
/// [`gemm`] per group, the zero point removed with the row sums (in i32 when no sum can overflow, else exactly
/// in i64 and saturated); depthwise: [`depthwise`]. Returns the number of saturated accumulators.
#[allow(clippy::too_many_arguments)]
pub fn conv_acc(
    path: Path,
    x: &[u8],
    zu: i32,
    g: &crate::engine::kernels::Window,
    w: &LayerWeights,
    bias: &[i32],
    sc: &mut KernelScratch,
    acc: &mut [i32],
    asum: &mut [i32],
) -> u64 {
    conv_acc_folds(path, x, zu, g, w, bias, sc, acc, asum, None).0
}

/// [`conv_acc`] that, with `folds = Some((quads, parts))`, also writes the raw row-fold sums `Σ_fold u·k` of
/// every output (fold `f` of output `o = co·ohw + p` at `parts[f·cout·ohw + o]`, folds of `quads` depth quads,
/// [`gemm_folds`]) when it can: dense and grouped layers whose sums all take the i32 path. Returns the
/// saturations and whether `parts` was written (the accumulators are the same either way).
#[allow(clippy::too_many_arguments)]
pub fn conv_acc_folds(
    path: Path,
    x: &[u8],
    zu: i32,
    g: &crate::engine::kernels::Window,
    w: &LayerWeights,
    bias: &[i32],
    sc: &mut KernelScratch,
    acc: &mut [i32],
    asum: &mut [i32],
    mut folds: Option<(usize, &mut [i32])>,
) -> (u64, bool) {
    let ohw = g.out_hw();
    let mut wrote = folds.is_some();
    let mut overflow = 0u64;
    let mut sat = |v: i64| -> i32 {
        if v > i32::MAX as i64 || v < i32::MIN as i64 {
            overflow += 1;
        }
        v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
    };
    if w.depthwise {
        let mult = w.cout / g.c;
        sc.raw64.resize(w.cout * ohw, 0);
        sc.csum.resize(w.cout * ohw, 0);
        depthwise(x, g, w.cout, w.codes, zu, &mut sc.raw64, &mut sc.csum);
        for co in 0..w.cout {
            for p in 0..ohw {
                acc[co * ohw + p] = sat(sc.raw64[co * ohw + p] + bias[co] as i64);
            }
        }
        if w.asym {
            for gi in 0..w.groups {
                asum[gi * ohw..(gi + 1) * ohw]
                    .copy_from_slice(&sc.csum[gi * mult * ohw..(gi * mult + 1) * ohw]);
            }
        }
        return (overflow, false);
    }
    let cg = g.c / w.groups;
    let og = w.cout / w.groups;
    let sub = crate::engine::kernels::Window { c: cg, ..*g };
    let mut cols = std::mem::take(&mut sc.cols);
    for gi in 0..w.groups {
        let pw = &w.packed[gi];
        let corr: Vec<i64> = (0..og)
            .map(|r| bias[gi * og + r] as i64 - zu as i64 * pw.rowsum[r] as i64)
            .collect();
        let fast = fits_i32(pw.kp) && corr.iter().all(|&c| fits_with(pw.kp, c));
        wrote &= fast;
        // Fold sums want dense columns (output position `oy·ow + ox`), so no pitched operand then.
        let lay = im2col_packed(
            &x[gi * sub.in_len()..(gi + 1) * sub.in_len()],
            &sub,
            zu as u8,
            &mut sc.rows,
            &mut cols,
            w.asym.then_some(&mut sc.csum),
            fast && !wrote,
        );
        if w.asym {
            let kz = pw.k as i32 * zu;
            for (a, &c) in asum[gi * ohw..(gi + 1) * ohw].iter_mut().zip(&sc.csum) {
                *a = c - kz;
            }
        }
        let accg = &mut acc[gi * og * ohw..(gi + 1) * og * ohw];
        if fast && lay.pitch == g.ow {
            match folds.as_mut().filter(|_| wrote) {
                Some((quads, parts)) => {
                    let stride = w.cout * ohw;
                    let fo = FoldOut {
                        quads: *quads,
                        parts: &mut parts[gi * og * ohw..],
                        stride,
                    };
                    gemm_folds(path, pw, &cols, ohw, accg, fo);
                }
                None => gemm(path, pw, &cols, ohw, accg),
            }
            for (row, &c) in accg.chunks_exact_mut(ohw).zip(&corr) {
                let c = c as i32;
                for v in row {
                    *v += c;
                }
            }
        } else if fast {
            // Pitched columns: GEMM over the padded positions, then keep each row's first `ow`.
            sc.raw.resize(og * lay.n, 0);
            gemm(path, pw, &cols, lay.n, &mut sc.raw);
            for ((row, &c), src) in accg
                .chunks_exact_mut(ohw)
                .zip(&corr)
                .zip(sc.raw.chunks_exact(lay.n))
            {
                unpitch_add(src, lay.pitch, g.ow, c as i32, row);
            }
        } else {
            sc.raw64.resize(og * ohw, 0);
            if fits_i32(pw.kp) {
                sc.raw.resize(og * ohw, 0);
                gemm(path, pw, &cols, ohw, &mut sc.raw);
                for (d, &v) in sc.raw64.iter_mut().zip(&sc.raw) {
                    *d = v as i64;
                }
            } else {
                gemm_i64(pw, &cols, ohw, &mut sc.raw64);
            }
            for r in 0..og {
                for p in 0..ohw {
                    accg[r * ohw + p] = sat(sc.raw64[r * ohw + p] + corr[r]);
                }
            }
        }
    }
    sc.cols = cols;
    (overflow, wrote)
}

/// `dst[oy·ow + ox] = src[oy·pitch + ox] + c` for every row `oy` of `dst` (`ow` values each; pitched GEMM columns
/// back to dense positions, the row's constant added; wrapping i32 adds, which the callers' depth bound keeps
/// exact). AVX-512: one masked vector per 16 columns, else AVX2: 8 columns per vector and a masked tail, else
/// portable; the same values every way (tested).
pub fn unpitch_add(src: &[i32], pitch: usize, ow: usize, c: i32, dst: &mut [i32]) {
    let rows = dst.len() / ow.max(1);
    assert!(ow <= pitch && (rows == 0 || src.len() >= (rows - 1) * pitch + ow));
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is available; the masked loads/stores stay inside each row's `ow` values (asserted).
        unsafe { x86::unpitch_add_avx512(src, pitch, ow, c, dst) };
        return;
    }
    if unpitch_add_avx2(src, pitch, ow, c, dst) {
        return;
    }
    unpitch_add_portable(src, pitch, ow, c, dst)
}

/// The AVX2 path of [`unpitch_add`] when this CPU has AVX2 (true); without it nothing is written (false). Tests
/// call it directly, so it is checked on CPUs that dispatch to AVX-512 too.
pub fn unpitch_add_avx2(src: &[i32], pitch: usize, ow: usize, c: i32, dst: &mut [i32]) -> bool {
    let rows = dst.len() / ow.max(1);
    assert!(ow <= pitch && (rows == 0 || src.len() >= (rows - 1) * pitch + ow));
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available; the shapes are asserted above.
        unsafe { x86::unpitch_add_avx2(src, pitch, ow, c, dst) };
        return true;
    }
    false
}

/// The portable path of [`unpitch_add`].
pub fn unpitch_add_portable(src: &[i32], pitch: usize, ow: usize, c: i32, dst: &mut [i32]) {
    for (oy, d) in dst.chunks_exact_mut(ow).enumerate() {
        for (v, &r) in d.iter_mut().zip(&src[oy * pitch..oy * pitch + ow]) {
            *v = r.wrapping_add(c);
        }
    }
}

/// Linear accumulators of `n` examples (`x` row-major `n x in`, unsigned view): `acc[e][j] = sat_i32(Σ_i (u -
/// z_u)·k[j][i] + bias[j])`, `asum[e] = Σ_i (u - z_u)` when `w.asym` (left untouched otherwise). Returns the
/// saturations.
#[allow(clippy::too_many_arguments)]
pub fn linear_acc(
    path: Path,
    x: &[u8],
    n: usize,
    zu: i32,
    w: &LayerWeights,
    bias: &[i32],
    sc: &mut KernelScratch,
    acc: &mut [i32],
    asum: &mut [i32],
) -> u64 {
    linear_acc_folds(path, x, n, zu, w, bias, sc, acc, asum, None).0
}

/// [`linear_acc`] that, with `folds = Some((quads, parts))`, also writes the raw row-fold sums `Σ_fold u·k`
/// (fold `f` of output `j` of example `e` at `parts[(f·cout + j)·n + e]`, folds of `quads` depth quads,
/// [`gemm_folds`]) when the depth takes the i32 path. Returns the saturations and whether `parts` was written.
#[allow(clippy::too_many_arguments)]
pub fn linear_acc_folds(
    path: Path,
    x: &[u8],
    n: usize,
    zu: i32,
    w: &LayerWeights,
    bias: &[i32],
    sc: &mut KernelScratch,
    acc: &mut [i32],
    asum: &mut [i32],
    folds: Option<(usize, &mut [i32])>,
) -> (u64, bool) {
    let pw = &w.packed[0];
    let (inf, outf) = (pw.k, w.cout);
    let mut cols = std::mem::take(&mut sc.cols);
    pack_rows(&x[..n * inf], n, inf, &mut cols);
    let wrote = match folds {
        Some((quads, parts)) if fits_i32(pw.kp) => {
            sc.raw.resize(pw.m * n, 0);
            let fo = FoldOut {
                quads,
                parts,
                stride: pw.m * n,
            };
            gemm_folds(path, pw, &cols, n, &mut sc.raw, fo);
            sc.raw64.resize(pw.m * n, 0);
            for (d, &v) in sc.raw64.iter_mut().zip(&sc.raw) {
                *d = v as i64;
            }
            true
        }
        _ => {
            gemm_exact(path, pw, &cols, n, sc);
            false
        }
    };
    if w.asym {
        column_sums(&cols, pw.kp, n, &mut sc.csum);
    }
    let mut overflow = 0u64;
    for j in 0..outf {
        let corr = zu as i64 * pw.rowsum[j] as i64 - bias[j] as i64;
        for e in 0..n {
            let v = sc.raw64[j * n + e] - corr;
            if v > i32::MAX as i64 || v < i32::MIN as i64 {
                overflow += 1;
            }
            acc[e * outf + j] = v.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        }
    }
    if w.asym {
        for (a, &c) in asum[..n].iter_mut().zip(&sc.csum) {
            *a = c - inf as i32 * zu;
        }
    }
    sc.cols = cols;
    (overflow, wrote)
}
