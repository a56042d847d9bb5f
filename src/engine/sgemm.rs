//! Single-precision GEMM of the float engine: `dst[m × n] (= or +=) lhs[m × k] · rhs[k × n]`, single-threaded
//! (the engine parallelizes over fixed-size chunks of the batch), with one result on every machine.
//!
//! **Summation order (the contract every path keeps).** Each output is one chain of fused multiply-adds over
//! `k` in increasing order, started from the output's previous value (`accumulate`) or from `+0.0`:
//!
//! ```text
//! acc = accumulate ? dst[i][j] : 0.0
//! for p in 0..k { acc = fma(lhs[i][p], rhs[p][j], acc) }   // one rounding per step
//! dst[i][j] = acc
//! ```
//!
//! The blocking below never reorders that chain: a block over `k` stores its partial chain to `dst` and the next
//! block continues it from there, which is the same sequence of roundings. So the result does not depend on the
//! block sizes, the instruction set, the thread count or the machine's caches, and every path is bit-identical
//! to [`Path::Portable`] (plain `f32::mul_add` loops).
//!
//! **Paths**, chosen at run time by [`Path::detect`] (`is_x86_feature_detected!`):
//! - [`Path::Avx512`]: an 8 × 32 register tile (16 zmm accumulators; per step of `k`, two 16-wide loads of the
//!   packed `rhs` row and eight broadcasts of the packed `lhs` column), and for a last panel of at most 16
//!   columns a 16 × 16 tile (two row panels; 16 accumulators again) or an 8 × 16 one.
//! - [`Path::Avx2`]: a 6 × 16 tile (12 ymm accumulators); 12 × 8 or 6 × 8 for a last panel of at most 8 columns.
//! - [`Path::Portable`]: the definition above, loop by loop.
//!
//! **Blocking** (SIMD paths; fixed constants, not tuned to the detected caches, although the result would not
//! depend on them anyway): for each block of [`KC`] steps of `k`, `lhs` rows are packed into panels of `MR` rows
//! (`panel[p·MR + i]`, zero rows past `m`) and `rhs` columns, [`NC`] at a time, into panels of `NR` columns
//! (`panel[p·NR + j]`, zero columns past `n`). The micro-kernel runs over every (column panel, row panel) pair,
//! keeps its tile in registers for the whole `KC` block, and writes back only the valid rows and columns (edge
//! tiles go through a small stack buffer). With `KC = 256`, one packed `rhs` panel (256 × 32 floats = 32 KiB)
//! stays in L1 while the `lhs` panels stream past it. Packing makes every stride of `lhs` and `rhs` look the
//! same to the kernel, and the packed buffers are per-thread and reused between calls; the packed `rhs` starts on
//! a cache line ([`cache_line_aligned`]), so that none of the kernel's vector loads splits a line. [`PackedLhs`] packs a left
//! operand once for many right operands ([`sgemm_packed`]; a convolution's weights for a whole batch chunk).
use std::cell::RefCell;

/// Steps of `k` per block: each micro-tile is loaded from / stored to `dst` once per block.
pub const KC: usize = 256;
/// The widest column panel of any path (AVX-512's `NR`): a right operand read through [`OffsetRhs`] with this
/// many floats of slack past its last value is always packed by whole-panel loads.
pub const MAX_NR: usize = 32;
/// Columns of `rhs` packed at a time (a multiple of every path's `NR`).
pub const NC: usize = 512;

/// An implementation of [`sgemm`]; all give bit-identical results (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Scalar `f32::mul_add` loops: the reference the SIMD paths are tested against.
    Portable,
    /// AVX2 + FMA, 6 × 16 tiles.
    Avx2,
    /// AVX-512F, 8 × 32 tiles.
    Avx512,
}

impl Path {
    /// The fastest path this CPU supports.
    pub fn detect() -> Path {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Path::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Path::Avx2;
            }
        }
        Path::Portable
    }

    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        match self {
            Path::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Short name for reports and benches.
    pub fn name(self) -> &'static str {
        match self {
            Path::Portable => "portable",
            Path::Avx2 => "avx2+fma",
            Path::Avx512 => "avx512f",
        }
    }
}

/// A matrix operand: element `(r, c)` is `data[r·rs + c·cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl MatRef<'_> {
    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.rs + c * self.cs]
    }
}

/// A right operand read through two offset tables: element `(p, j)` is `data[row_off[p] + col_off[j]]`. A
/// convolution's im2col matrix without building it: one row offset per tap `(ci, ki, kj)` and one column offset
/// per output position, into a zero-padded copy of the input ([`super::kernels::conv2d_packed`]). The packing
/// step gathers it into the same panels a [`MatRef`] gives, so the products and their order are unchanged.
#[derive(Clone, Copy, Debug)]
pub struct OffsetRhs<'a> {
    pub data: &'a [f32],
    /// One offset per row (`k` of them).
    pub row_off: &'a [usize],
    /// One offset per column (`n` of them).
    pub col_off: &'a [usize],
}

/// A right operand of either form.
#[derive(Clone, Copy, Debug)]
enum Rhs<'a> {
    Mat(MatRef<'a>),
    Offsets(OffsetRhs<'a>),
}

impl Rhs<'_> {
    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> f32 {
        match self {
            Rhs::Mat(m) => m.at(r, c),
            Rhs::Offsets(o) => o.data[o.row_off[r] + o.col_off[c]],
        }
    }
}

/// `dst[m × n] (= or +=) lhs[m × k] · rhs[k × n]` on the fastest path of this CPU ([`Path::detect`]); `dst` is
/// row-major with row stride `n`. Summation order: module docs.
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: MatRef,
    rhs: MatRef,
) {
    sgemm_with(Path::detect(), m, n, k, dst, accumulate, lhs, rhs)
}

/// [`sgemm`] on a given path.
///
/// # Panics
/// If `path` is not [`Path::available`] on this CPU, or if `dst`, `lhs` or `rhs` is too short for the shape.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_with(
    path: Path,
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: MatRef,
    rhs: MatRef,
) {
    let rhs = Rhs::Mat(rhs);
    if !check_shapes(m, n, k, dst, accumulate, rhs) {
        return;
    }
    assert!(
        lhs.data.len() > (m - 1) * lhs.rs + (k - 1) * lhs.cs,
        "sgemm: lhs too small"
    );
    assert!(
        path.available(),
        "sgemm: path {} not supported by this CPU",
        path.name()
    );
    let dst = &mut dst[..m * n];
    match path {
        Path::Portable => portable(m, n, k, dst, accumulate, lhs, rhs),
        _ => blocked_on(path, m, n, k, dst, accumulate, Lhs::Strided(lhs), rhs),
    }
}

/// The checks and trivial cases both entry points share: nothing to do for an empty `dst`, `dst` cleared (or
/// left, when accumulating) for `k = 0`; `true` when the product still has to be computed.
///
/// # Panics
/// If `dst` or `rhs` is too short for the shape.
fn check_shapes(m: usize, n: usize, k: usize, dst: &mut [f32], accumulate: bool, rhs: Rhs) -> bool {
    if m == 0 || n == 0 {
        return false;
    }
    assert!(dst.len() >= m * n, "sgemm: dst too small");
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return false;
    }
    match rhs {
        Rhs::Mat(rhs) => assert!(
            rhs.data.len() > (k - 1) * rhs.rs + (n - 1) * rhs.cs,
            "sgemm: rhs too small"
        ),
        Rhs::Offsets(o) => {
            assert!(
                o.row_off.len() >= k && o.col_off.len() >= n,
                "sgemm: rhs offset tables too short"
            );
            let last = o.row_off[..k].iter().max().copied().unwrap_or(0)
                + o.col_off[..n].iter().max().copied().unwrap_or(0);
            assert!(o.data.len() > last, "sgemm: rhs too small");
        }
    }
    true
}

/// [`blocked`] with the tile shape and micro-kernel of SIMD path `path` (never [`Path::Portable`]).
#[allow(clippy::too_many_arguments)]
fn blocked_on(
    path: Path,
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: Lhs,
    rhs: Rhs,
) {
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports the path's instruction set (checked by `Path::available` before any call).
        Path::Avx2 => unsafe { x86::blocked_avx2(m, n, k, dst, accumulate, lhs, rhs) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Path::Avx512 => unsafe { x86::blocked_avx512(m, n, k, dst, accumulate, lhs, rhs) },
        _ => unreachable!("blocked_on: the portable path is not blocked, other paths are checked by Path::available"),
    }
}

/// Where the blocked driver takes its `lhs` panels from.
#[derive(Clone, Copy)]
enum Lhs<'a> {
    /// Packed block by block on the fly.
    Strided(MatRef<'a>),
    /// Packed beforehand ([`PackedLhs`]): the blocks one after another.
    Packed(&'a [f32]),
}

/// An `m × k` left operand packed once for a given [`Path`], to multiply many right operands without packing it
/// again (a convolution's weights, shared by every image of a batch). [`sgemm_packed`] with it gives the same
/// bits as [`sgemm_with`] with the unpacked operand.
#[derive(Clone, Debug)]
pub struct PackedLhs {
    path: Path,
    m: usize,
    k: usize,
    /// Portable: row-major `m × k`. SIMD paths: for each KC block in order, its `m.div_ceil(MR)` panels of
    /// `kc × MR` (as the blocked driver packs them).
    data: Vec<f32>,
}

impl PackedLhs {
    /// Packs `lhs` (`m × k`) for `path`.
    ///
    /// # Panics
    /// If `path` is not available or `lhs` is too short for the shape.
    pub fn new(path: Path, m: usize, k: usize, lhs: MatRef) -> PackedLhs {
        assert!(
            path.available(),
            "sgemm: path {} not supported by this CPU",
            path.name()
        );
        assert!(
            m == 0 || k == 0 || lhs.data.len() > (m - 1) * lhs.rs + (k - 1) * lhs.cs,
            "sgemm: lhs too small"
        );
        let mut data = Vec::new();
        let mut block = Vec::new();
        match path {
            Path::Portable => {
                data.reserve(m * k);
                for i in 0..m {
                    data.extend((0..k).map(|p| lhs.at(i, p)));
                }
            }
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => {
                for p0 in (0..k).step_by(KC) {
                    let kc = KC.min(k - p0);
                    pack_lhs::<{ x86::AVX2_MR }>(m, p0, kc, lhs, &mut block);
                    data.extend_from_slice(&block[..m.div_ceil(x86::AVX2_MR) * x86::AVX2_MR * kc]);
                }
            }
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => {
                for p0 in (0..k).step_by(KC) {
                    let kc = KC.min(k - p0);
                    pack_lhs::<{ x86::AVX512_MR }>(m, p0, kc, lhs, &mut block);
                    data.extend_from_slice(
                        &block[..m.div_ceil(x86::AVX512_MR) * x86::AVX512_MR * kc],
                    );
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("checked by Path::available"),
        }
        PackedLhs { path, m, k, data }
    }

    /// Rows of the operand.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Columns of the operand (the reduction depth).
    pub fn k(&self) -> usize {
        self.k
    }
}

/// [`sgemm_with`] on `lhs`'s path with a pre-packed left operand: `dst[m × n] (= or +=) lhs · rhs[k × n]`.
///
/// # Panics
/// If `dst` or `rhs` is too short for the shape.
pub fn sgemm_packed(lhs: &PackedLhs, n: usize, dst: &mut [f32], accumulate: bool, rhs: MatRef) {
    packed_on(lhs, n, dst, accumulate, Rhs::Mat(rhs))
}

/// [`sgemm_packed`] with a right operand read through offset tables ([`OffsetRhs`]): the same bits as
/// [`sgemm_packed`] on the matrix those tables describe.
///
/// # Panics
/// If `dst` is too short, the tables hold fewer than `k` row or `n` column offsets, or an offset pair points
/// past `rhs.data`.
pub fn sgemm_packed_offsets(
    lhs: &PackedLhs,
    n: usize,
    dst: &mut [f32],
    accumulate: bool,
    rhs: OffsetRhs,
) {
    packed_on(lhs, n, dst, accumulate, Rhs::Offsets(rhs))
}

fn packed_on(lhs: &PackedLhs, n: usize, dst: &mut [f32], accumulate: bool, rhs: Rhs) {
    let (m, k) = (lhs.m, lhs.k);
    if !check_shapes(m, n, k, dst, accumulate, rhs) {
        return;
    }
    let dst = &mut dst[..m * n];
    let data = &lhs.data;
    match lhs.path {
        Path::Portable => portable(m, n, k, dst, accumulate, MatRef { data, rs: k, cs: 1 }, rhs),
        path => blocked_on(path, m, n, k, dst, accumulate, Lhs::Packed(data), rhs),
    }
}

/// The definition: one `mul_add` chain over `k` per output.
fn portable(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: MatRef,
    rhs: Rhs,
) {
    for i in 0..m {
        for j in 0..n {
            let d = &mut dst[i * n + j];
            let mut acc = if accumulate { *d } else { 0.0 };
            for p in 0..k {
                acc = lhs.at(i, p).mul_add(rhs.at(p, j), acc);
            }
            *d = acc;
        }
    }
}

/// A micro-kernel: continues the chains of one full `MR × NR` tile of `c` (row stride `ldc`) over `kc` steps of
/// `k` from packed panels, starting from `c`'s values when `load` (else from zero), or only over the first
/// `NR / 2` columns when `half`. With `panels = 2` (only with `half`), the tile is `2·MR` rows: the row panel
/// at `a` and the next one at `a + kc·MR`.
///
/// # Safety
/// `a` holds `panels·kc·MR` floats, `b` holds `kc·NR` floats, `c` points at `panels·MR` rows of `ldc` floats
/// with `NR` (or `NR / 2` when `half`) valid columns each, and the CPU supports the kernel's instruction set.
#[allow(clippy::too_many_arguments)]
type TileFn = unsafe fn(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    load: bool,
    half: bool,
    panels: usize,
);

thread_local! {
    /// Packed `lhs` and `rhs` blocks, reused between calls on the same thread.
    static PACKED: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// The first `len` floats of `buf` from its first 64-byte boundary on (`buf` grows as needed). The kernels read
/// the packed `rhs` in 64-byte rows (AVX2's `NR = 16` floats as two ymm loads, AVX-512's 32 as two zmm loads):
/// from a boundary no load straddles two cache lines. The allocator only promises 16-byte alignment, and with
/// split loads the AVX-512 kernel ran 6–17 % slower on in-cache products (docs/onnx.md).
fn cache_line_aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    const LINE_FLOATS: usize = 64 / std::mem::size_of::<f32>();
    if buf.len() < len + LINE_FLOATS {
        buf.resize(len + LINE_FLOATS, 0.0);
    }
    let skip = buf.as_ptr().align_offset(64).min(LINE_FLOATS);
    &mut buf[skip..skip + len]
}

/// Packs `lhs[.., p0..p0 + kc]` into `m.div_ceil(MR)` panels of `kc × MR` (`panel[p·MR + i]`), zero rows past `m`.
/// Every element of `out[..panels·kc·MR]` is written (the buffer is reused without clearing).
fn pack_lhs<const MR: usize>(m: usize, p0: usize, kc: usize, lhs: MatRef, out: &mut Vec<f32>) {
    let panels = m.div_ceil(MR);
    if out.len() < panels * kc * MR {
        out.resize(panels * kc * MR, 0.0);
    }
    for (pi, panel) in out[..panels * kc * MR]
        .chunks_exact_mut(kc * MR)
        .enumerate()
    {
        let rows = (m - pi * MR).min(MR);
        if rows < MR {
            panel.fill(0.0);
        }
        for i in 0..rows {
            let r = pi * MR + i;
            if lhs.cs == 1 {
                let src = &lhs.data[r * lhs.rs + p0..][..kc];
                for (col, &v) in panel.chunks_exact_mut(MR).zip(src) {
                    col[i] = v;
                }
            } else {
                for (p, col) in panel.chunks_exact_mut(MR).enumerate() {
                    col[i] = lhs.at(r, p0 + p);
                }
            }
        }
    }
}

/// Packs `rhs[p0..p0 + kc, j0..j0 + nc]` into `nc.div_ceil(NR)` panels of `kc × NR` (`panel[p·NR + j]`), zero
/// columns past `nc`. Every element of `out[..panels·kc·NR]` is written (the buffer is reused without clearing);
/// `out` holds at least that many floats.
#[inline(always)]
fn pack_rhs<const NR: usize>(
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    rhs: Rhs,
    out: &mut [f32],
) {
    let panels = nc.div_ceil(NR);
    let rhs = match rhs {
        Rhs::Mat(rhs) => rhs,
        Rhs::Offsets(o) => return pack_rhs_offsets::<NR>(p0, kc, j0, nc, o, out),
    };
    for (pj, panel) in out[..panels * kc * NR]
        .chunks_exact_mut(kc * NR)
        .enumerate()
    {
        let c0 = j0 + pj * NR;
        let cols = (nc - pj * NR).min(NR);
        for (p, row) in panel.chunks_exact_mut(NR).enumerate() {
            let row: &mut [f32; NR] = row.try_into().expect("NR columns");
            if rhs.cs == 1 && cols == NR {
                // Fixed-size copy: no call per row.
                *row = rhs.data[(p0 + p) * rhs.rs + c0..][..NR]
                    .try_into()
                    .expect("NR columns");
            } else if rhs.cs == 1 {
                row[..cols].copy_from_slice(&rhs.data[(p0 + p) * rhs.rs + c0..][..cols]);
                row[cols..].fill(0.0);
            } else {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = if j < cols {
                        rhs.at(p0 + p, c0 + j)
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// Most runs of consecutive column offsets a panel of [`OffsetRhs`] is copied by whole-panel loads for (more
/// runs, as strided convolutions give, are gathered value by value).
const MAX_RUNS: usize = 8;

/// [`pack_rhs`] of an [`OffsetRhs`]: the same panels, `panel[p·NR + j] = data[row_off[p0 + p] + col_off[c0 + j]]`.
///
/// A panel's columns fall into runs of consecutive offsets (one output row of a stride-1 convolution; a panel
/// spans several rows when the map is narrower than `NR`). For at most [`MAX_RUNS`] runs, each packed row is
/// built from one fixed-size `NR`-float load per run, each load keeping only its run's columns (a bit mask the
/// compiler vectorizes), instead of a copy of variable length per run. Loads that would reach past `data` (the
/// last values of an unpadded operand) and panels of more runs take the value-by-value gather.
#[inline(always)]
fn pack_rhs_offsets<const NR: usize>(
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    rhs: OffsetRhs,
    out: &mut [f32],
) {
    let rows = &rhs.row_off[p0..p0 + kc];
    let max_row = rows.iter().max().copied().unwrap_or(0);
    for (pj, panel) in out[..nc.div_ceil(NR) * kc * NR]
        .chunks_exact_mut(kc * NR)
        .enumerate()
    {
        let c0 = j0 + pj * NR;
        let cols = (nc - pj * NR).min(NR);
        let co = &rhs.col_off[c0..c0 + cols];
        // Run r covers panel columns starts[r] .. starts[r + 1] and reads data[row + base[r] + j] there.
        let mut starts = [0usize; MAX_RUNS + 1];
        let mut base = [0usize; MAX_RUNS];
        let mut runs = 0;
        let mut whole_loads = true;
        for (j, &o) in co.iter().enumerate() {
            if j > 0 && o == co[j - 1] + 1 {
                continue;
            }
            match o.checked_sub(j) {
                Some(b) if runs < MAX_RUNS && max_row + b + NR <= rhs.data.len() => {
                    starts[runs] = j;
                    base[runs] = b;
                    runs += 1;
                }
                _ => {
                    whole_loads = false;
                    break;
                }
            }
        }
        starts[runs] = cols;
        // masks[r][j]: all ones where column j belongs to run r (none past `cols`: those columns pack as 0).
        let mut masks = [[0u32; NR]; MAX_RUNS];
        for (r, mask) in masks.iter_mut().enumerate().take(runs) {
            mask[starts[r]..starts[r + 1]].fill(u32::MAX);
        }
        for (&ro, row) in rows.iter().zip(panel.chunks_exact_mut(NR)) {
            let row: &mut [f32; NR] = row.try_into().expect("NR columns");
            if whole_loads && runs == 1 && cols == NR {
                *row = rhs.data[ro + base[0]..][..NR]
                    .try_into()
                    .expect("NR values");
                continue;
            }
            if !whole_loads {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = if j < cols { rhs.data[ro + co[j]] } else { 0.0 };
                }
                continue;
            }
            // The runs partition the panel's columns: OR together each load's bits under its run's mask.
            let mut v = [0u32; NR];
            for (&b, mask) in base[..runs].iter().zip(&masks) {
                let src: &[f32; NR] = rhs.data[ro + b..][..NR].try_into().expect("NR values");
                for ((d, &x), &m) in v.iter_mut().zip(src).zip(mask) {
                    *d |= x.to_bits() & m;
                }
            }
            for (d, &bits) in row.iter_mut().zip(&v) {
                *d = f32::from_bits(bits);
            }
        }
    }
}

/// The blocked driver of the SIMD paths (module docs), over a micro-kernel of `MR × NR` tiles.
// `dead_code`: only the x86-64 paths use the blocked driver.
#[allow(clippy::too_many_arguments, dead_code)]
#[inline(always)]
fn blocked<const MR: usize, const NR: usize>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: Lhs,
    rhs: Rhs,
    tile: TileFn,
) {
    debug_assert!(dst.len() == m * n);
    let a_panels = m.div_ceil(MR);
    // The packed buffers are moved out of the thread-local and back, so that the loops below are part of this
    // function (inlined into each instruction set's `blocked_*`, compiled with its features) rather than of a
    // closure, which would be compiled without them (and then neither vectorize the packing nor inline the
    // micro-kernel).
    let (mut ap_buf, mut bp) = PACKED.with(|packed| std::mem::take(&mut *packed.borrow_mut()));
    let (ap_buf, bp) = (&mut ap_buf, &mut bp);
    for p0 in (0..k).step_by(KC) {
        let kc = KC.min(k - p0);
        // The first block starts the chains (from dst or zero); later blocks continue them from dst.
        let load = accumulate || p0 > 0;
        let ap: &[f32] = match lhs {
            Lhs::Strided(lhs) => {
                pack_lhs::<MR>(m, p0, kc, lhs, ap_buf);
                &ap_buf[..a_panels * kc * MR]
            }
            // Blocks before this one are all KC deep: this block starts at a_panels·MR·p0.
            Lhs::Packed(data) => &data[a_panels * MR * p0..][..a_panels * kc * MR],
        };
        for j0 in (0..n).step_by(NC) {
            let nc = NC.min(n - j0);
            let bp = cache_line_aligned(bp, nc.div_ceil(NR) * kc * NR);
            pack_rhs::<NR>(p0, kc, j0, nc, rhs, bp);
            for (pj, bpanel) in bp.chunks_exact(kc * NR).enumerate() {
                let c0 = j0 + pj * NR;
                let cols = (n - c0).min(NR);
                let half = cols <= NR / 2;
                let mut pi = 0;
                while pi < a_panels {
                    let r0 = pi * MR;
                    let rows = (m - r0).min(MR);
                    let apanel = &ap[pi * kc * MR..][..kc * MR];
                    if half && cols == NR / 2 && r0 + 2 * MR <= m {
                        // Two full row panels under one half-width column panel: one 2·MR-row tile, as many
                        // accumulators as a full tile (narrow outputs, e.g. 4 × 4 maps).
                        // SAFETY: panels pi and pi + 1 are contiguous in `ap` (2·kc·MR floats from apanel's
                        // start), the column panel holds kc·NR floats, and rows r0 .. r0 + 2·MR, columns
                        // c0 .. c0 + NR/2 lie inside dst (m × n, row stride n), exclusively borrowed; the
                        // path was checked by `available`.
                        unsafe {
                            tile(
                                kc,
                                apanel.as_ptr(),
                                bpanel.as_ptr(),
                                dst.as_mut_ptr().add(r0 * n + c0),
                                n,
                                load,
                                half,
                                2,
                            )
                        };
                        pi += 2;
                        continue;
                    }
                    if rows == MR && (cols == NR || cols == NR / 2) {
                        // SAFETY: the panels hold kc·MR and kc·NR floats (packed above); the tile's MR rows
                        // r0.. and its NR (or NR/2 when `half`) columns c0.. lie inside dst (m × n, row
                        // stride n), which is exclusively borrowed; the path was checked by `available`.
                        unsafe {
                            tile(
                                kc,
                                apanel.as_ptr(),
                                bpanel.as_ptr(),
                                dst.as_mut_ptr().add(r0 * n + c0),
                                n,
                                load,
                                half,
                                1,
                            )
                        };
                    } else {
                        // Edge tile: run the kernel on a full MR × NR copy, write back the valid part.
                        let mut buf = [[0.0f32; NR]; MR];
                        if load {
                            for (i, row) in buf.iter_mut().enumerate().take(rows) {
                                row[..cols].copy_from_slice(&dst[(r0 + i) * n + c0..][..cols]);
                            }
                        }
                        // SAFETY: as above, with `buf` (MR rows of NR floats, row stride NR) as the tile.
                        unsafe {
                            tile(
                                kc,
                                apanel.as_ptr(),
                                bpanel.as_ptr(),
                                buf.as_mut_ptr().cast(),
                                NR,
                                load,
                                half,
                                1,
                            )
                        };
                        for (i, row) in buf.iter().enumerate().take(rows) {
                            dst[(r0 + i) * n + c0..][..cols].copy_from_slice(&row[..cols]);
                        }
                    }
                    pi += 1;
                }
            }
        }
    }
    PACKED.with(|packed| *packed.borrow_mut() = (std::mem::take(ap_buf), std::mem::take(bp)));
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    pub const AVX512_MR: usize = 8;
    pub const AVX512_NR: usize = 32;
    pub const AVX2_MR: usize = 6;
    pub const AVX2_NR: usize = 16;
    const _: () = assert!(AVX512_NR <= super::MAX_NR && AVX2_NR <= super::MAX_NR);

    /// [`super::blocked`] with the AVX2 tile, compiled for AVX2 so that the packing copies use its vectors too.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn blocked_avx2(
        m: usize,
        n: usize,
        k: usize,
        dst: &mut [f32],
        accumulate: bool,
        lhs: super::Lhs,
        rhs: super::Rhs,
    ) {
        super::blocked::<AVX2_MR, AVX2_NR>(m, n, k, dst, accumulate, lhs, rhs, avx2_tile)
    }

    /// [`super::blocked`] with the AVX-512 tile, compiled for AVX-512F (as [`blocked_avx2`]).
    ///
    /// # Safety
    /// The CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn blocked_avx512(
        m: usize,
        n: usize,
        k: usize,
        dst: &mut [f32],
        accumulate: bool,
        lhs: super::Lhs,
        rhs: super::Rhs,
    ) {
        super::blocked::<AVX512_MR, AVX512_NR>(m, n, k, dst, accumulate, lhs, rhs, avx512_tile)
    }

    /// One instruction set's tile entry point and micro-kernel, from one body: `$tile` is the [`super::TileFn`],
    /// `$kernel::<NV, ROWS>` keeps `ROWS` (MR or 2·MR) rows of `NV` vectors of `$lanes` columns in registers,
    /// row `i` from row panel `i / MR`; the packed `rhs` panel is `NR = 2·$lanes` columns wide either way.
    macro_rules! tile_kernel {
        ($tile:ident, $kernel:ident, $feature:literal, $doc:literal, $mr:ident, $nr:ident, $lanes:literal,
         $zero:ident, $loadu:ident, $storeu:ident, $set1:ident, $fmadd:ident) => {
            #[doc = $doc]
            ///
            /// # Safety
            /// As [`super::TileFn`]; the CPU supports the kernel's instruction set.
            #[allow(clippy::too_many_arguments)]
            #[inline(always)]
            pub unsafe fn $tile(
                kc: usize,
                a: *const f32,
                b: *const f32,
                c: *mut f32,
                ldc: usize,
                load: bool,
                half: bool,
                panels: usize,
            ) {
                // SAFETY: forwarded contract (the caller checked the instruction set and the pointers' extents).
                unsafe {
                    match (half, panels) {
                        (true, 2) => $kernel::<1, { 2 * $mr }>(kc, a, b, c, ldc, load),
                        (true, _) => $kernel::<1, $mr>(kc, a, b, c, ldc, load),
                        _ => $kernel::<2, $mr>(kc, a, b, c, ldc, load),
                    }
                }
            }

            #[target_feature(enable = $feature)]
            #[inline]
            unsafe fn $kernel<const NV: usize, const ROWS: usize>(
                kc: usize,
                a: *const f32,
                b: *const f32,
                c: *mut f32,
                ldc: usize,
                load: bool,
            ) {
                const MR: usize = $mr;
                let mut acc = [[$zero(); NV]; ROWS];
                // SAFETY (whole body): `a` holds (ROWS / MR)·kc·MR floats, `b` kc·NR, and `c` ROWS rows of ldc
                // floats with NV·lanes valid columns each (the caller's contract); every offset below stays
                // inside those extents.
                unsafe {
                    if load {
                        for (i, row) in acc.iter_mut().enumerate() {
                            for (v, r) in row.iter_mut().enumerate() {
                                *r = $loadu(c.add(i * ldc + v * $lanes));
                            }
                        }
                    }
                    for p in 0..kc {
                        let bp = b.add(p * $nr);
                        let mut bv = [$zero(); NV];
                        for (v, x) in bv.iter_mut().enumerate() {
                            *x = $loadu(bp.add(v * $lanes));
                        }
                        let ap = a.add(p * MR);
                        for (i, row) in acc.iter_mut().enumerate() {
                            let av = $set1(*ap.add((i / MR) * kc * MR + i % MR));
                            for (r, &x) in row.iter_mut().zip(&bv) {
                                *r = $fmadd(av, x, *r);
                            }
                        }
                    }
                    for (i, row) in acc.iter().enumerate() {
                        for (v, &r) in row.iter().enumerate() {
                            $storeu(c.add(i * ldc + v * $lanes), r);
                        }
                    }
                }
            }
        };
    }

    tile_kernel!(
        avx512_tile,
        avx512_kernel,
        "avx512f",
        "[`super::TileFn`] for AVX-512F: 8 × 32 (or 8 × 16 when `half`, 16 × 16 with two half panels).",
        AVX512_MR,
        AVX512_NR,
        16,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps
    );
    tile_kernel!(
        avx2_tile,
        avx2_kernel,
        "avx2,fma",
        "[`super::TileFn`] for AVX2 + FMA: 6 × 16 (or 6 × 8 when `half`, 12 × 8 with two half panels).",
        AVX2_MR,
        AVX2_NR,
        8,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    /// Slow, obviously-right reference in f64.
    fn reference(
        m: usize,
        n: usize,
        k: usize,
        init: &[f32],
        accumulate: bool,
        lhs: MatRef,
        rhs: MatRef,
    ) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = if accumulate {
                    init[i * n + j] as f64
                } else {
                    0.0
                };
                for p in 0..k {
                    acc += lhs.at(i, p) as f64 * rhs.at(p, j) as f64;
                }
                out[i * n + j] = acc;
            }
        }
        out
    }

    /// A random operand of `rows × cols` with the given layout: row-major (`rs = cols + pad`), column-major
    /// (`cs = rows + pad`), or a general two-stride layout.
    fn operand(
        rng: &mut rand_pcg::Pcg64,
        rows: usize,
        cols: usize,
        layout: u8,
        pad: usize,
    ) -> (Vec<f32>, usize, usize) {
        let (rs, cs) = match layout % 3 {
            0 => (cols + pad, 1),
            1 => (1, rows + pad),
            _ => ((cols + pad) * 2, 2),
        };
        let len = (rows - 1) * rs + (cols - 1) * cs + 1 + pad;
        (
            (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect(),
            rs,
            cs,
        )
    }

    fn check(
        m: usize,
        n: usize,
        k: usize,
        accumulate: bool,
        layouts: (u8, u8),
        pad: usize,
        seed: u64,
    ) {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let (a, ars, acs) = operand(&mut rng, m, k.max(1), layouts.0, pad);
        let (b, brs, bcs) = operand(&mut rng, k.max(1), n, layouts.1, pad);
        let lhs = MatRef {
            data: &a,
            rs: ars,
            cs: acs,
        };
        let rhs = MatRef {
            data: &b,
            rs: brs,
            cs: bcs,
        };
        let init: Vec<f32> = (0..m * n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let mut want = init.clone();
        sgemm_with(Path::Portable, m, n, k, &mut want, accumulate, lhs, rhs);
        let exact = reference(m, n, k, &init, accumulate, lhs, rhs);
        for (idx, (&w, &e)) in want.iter().zip(&exact).enumerate() {
            // k+1 roundings of terms bounded by 1 in magnitude.
            let tol = (k as f64 + 2.0) * f32::EPSILON as f64 * (k as f64 + 1.0).max(1.0);
            assert!(
                (w as f64 - e).abs() <= tol,
                "portable vs f64 at {idx}: {w} vs {e} (m {m} n {n} k {k})"
            );
        }
        for path in [Path::Portable, Path::Avx2, Path::Avx512] {
            if !path.available() {
                continue;
            }
            let mut got = init.clone();
            sgemm_with(path, m, n, k, &mut got, accumulate, lhs, rhs);
            let mut packed = init.clone();
            sgemm_packed(
                &PackedLhs::new(path, m, k, lhs),
                n,
                &mut packed,
                accumulate,
                rhs,
            );
            for (idx, ((g, p), w)) in got.iter().zip(&packed).zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{} vs portable at {idx} (m {m} n {n} k {k})",
                    path.name()
                );
                assert_eq!(
                    p.to_bits(),
                    w.to_bits(),
                    "{} pre-packed vs portable at {idx} (m {m} n {n} k {k})",
                    path.name()
                );
            }
        }
    }

    #[test]
    fn packed_rhs_buffer_starts_on_a_cache_line_at_every_size() {
        let mut buf = Vec::new();
        // Growing, shrinking and growing again (reallocation moves the buffer; the offset is found again).
        for len in [1usize, 16, 17, 8192, 100, 65_536, 3, 200_000] {
            let ptr = {
                let s = cache_line_aligned(&mut buf, len);
                assert_eq!(s.len(), len);
                s.as_ptr()
            };
            assert_eq!(ptr as usize % 64, 0, "len {len}");
            assert!(buf.len() >= len + 16);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn simd_paths_equal_portable_bit_for_bit(
            m in 1usize..40, n in 1usize..80, k in 0usize..70, accumulate in any::<bool>(),
            la in 0u8..3, lb in 0u8..3, pad in 0usize..3, seed in any::<u64>(),
        ) {
            check(m, n, k, accumulate, (la, lb), pad, seed);
        }
    }

    /// `dst = lhs · rhs` with `rhs` read through offset tables: the bits of the same GEMM on the explicit matrix
    /// `rhs[p][j] = data[row_off[p] + col_off[j]]`, on every path. The column offsets come in runs of
    /// consecutive values of random lengths (1 gives a gather per value, many runs per panel the value-by-value
    /// path), some of them at the very end of `data` (whole-panel loads there would read past it).
    fn check_offsets(
        m: usize,
        n: usize,
        k: usize,
        run_len: usize,
        gap: usize,
        tail: bool,
        seed: u64,
    ) {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let row_off: Vec<usize> = (0..k).map(|_| rng.gen_range(0..50)).collect();
        let mut col_off = Vec::with_capacity(n);
        let mut next = rng.gen_range(0..5);
        while col_off.len() < n {
            for _ in 0..run_len.min(n - col_off.len()) {
                col_off.push(next);
                next += 1;
            }
            next += gap;
        }
        let last = row_off.iter().max().unwrap() + col_off.iter().max().unwrap();
        // `tail`: data ends right after the last value read; else a panel's worth of slack.
        let len = last + 1 + if tail { 0 } else { MAX_NR };
        let data: Vec<f32> = (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let explicit: Vec<f32> = (0..k)
            .flat_map(|p| {
                col_off
                    .iter()
                    .map(|&c| data[row_off[p] + c])
                    .collect::<Vec<_>>()
            })
            .collect();
        let lhs_data: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let lhs = MatRef {
            data: &lhs_data,
            rs: k,
            cs: 1,
        };
        let init: Vec<f32> = (0..m * n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        for path in [Path::Portable, Path::Avx2, Path::Avx512] {
            if !path.available() {
                continue;
            }
            for accumulate in [false, true] {
                let mut want = init.clone();
                let rhs = MatRef {
                    data: &explicit,
                    rs: n,
                    cs: 1,
                };
                sgemm_with(Path::Portable, m, n, k, &mut want, accumulate, lhs, rhs);
                let mut got = init.clone();
                let rhs = OffsetRhs {
                    data: &data,
                    row_off: &row_off,
                    col_off: &col_off,
                };
                sgemm_packed_offsets(
                    &PackedLhs::new(path, m, k, lhs),
                    n,
                    &mut got,
                    accumulate,
                    rhs,
                );
                for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{} offsets vs explicit at {idx} (m {m} n {n} k {k} runs of {run_len})",
                        path.name()
                    );
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn offset_operand_equals_the_explicit_matrix(
            m in 1usize..20, n in 1usize..90, k in 1usize..40, run_len in 1usize..40, gap in 0usize..4,
            tail: bool, seed in any::<u64>(),
        ) {
            check_offsets(m, n, k, run_len, gap, tail, seed);
        }
    }

    #[test]
    fn offset_operand_over_blocks_of_k_and_n() {
        check_offsets(7, NC + 45, KC + 3, 28, 2, true, 1);
        check_offsets(9, 100, 2 * KC + 1, 4, 2, false, 2);
    }

    #[test]
    fn blocks_over_k_and_n_keep_the_chain() {
        // k spans several KC blocks, n several NC blocks and an edge panel; m an edge panel of every MR.
        check(13, NC + 37, 2 * KC + 5, true, (0, 0), 0, 1);
        check(9, 70, KC + 1, false, (1, 1), 1, 2);
        check(1, 1, 3 * KC, false, (0, 0), 0, 3);
        // Half-width column panels under two full row panels (the 2·MR-row tiles), with a row edge after them.
        check(37, 16, KC + 9, true, (0, 0), 0, 4);
        check(29, 8 + 16, 40, false, (0, 1), 0, 5);
    }

    #[test]
    fn degenerate_shapes() {
        let mut d = vec![5.0f32; 6];
        let one = [1.0f32];
        let lhs = MatRef {
            data: &one,
            rs: 0,
            cs: 0,
        };
        sgemm(2, 3, 0, &mut d, true, lhs, lhs);
        assert_eq!(d, vec![5.0; 6]);
        sgemm(2, 3, 0, &mut d, false, lhs, lhs);
        assert_eq!(d, vec![0.0; 6]);
        sgemm(0, 3, 4, &mut d, false, lhs, lhs);
        assert_eq!(d, vec![0.0; 6]);
    }
}
