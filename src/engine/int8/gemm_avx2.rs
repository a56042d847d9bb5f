//! The u8 × i8 GEMM of [`super::kernels::gemm`] and [`super::kernels::gemm_folds`] on AVX2 (no VNNI), exact.
//!
//! AVX2 has no u8 × i8 dot product that cannot saturate (`vpmaddubsw` sums two products of up to 255 · 127 in
//! i16), so both operands are widened to i16 and multiplied with `vpmaddwd`: 16 exact products summed in pairs
//! into 8 i32 lanes per instruction, then one `vpaddd` into the accumulator. That pair is the whole inner loop;
//! everything else is kept out of it:
//!
//! - the weights of a block of [`ROWS`] rows are widened to i16 once per GEMM and laid out quad by quad
//!   (`[quad][row][4]`), so each row's four weights of a quad are one 8-byte broadcast;
//! - a tile is [`ROWS`] rows × 8 columns: per quad two 16-byte activation loads widened to i16 (4 columns × 4
//!   depths each) serve every row of the tile; the accumulators hold the pair sums of columns `p..p+4` and
//!   `p+4..p+8`, added pairwise and put back in column order once per tile;
//! - the last `n mod 8` columns are copied into a zero-padded 8-column operand and run through the same tile,
//!   so no column takes a scalar path.
//!
//! Every sum is an exact i32 sum of exact products (the callers' depth bound keeps it inside i32), so the
//! order does not matter and the results equal the portable loops bit for bit (tested in `super::tests`).
//! docs/datapath.md#speed.
use std::arch::x86_64::*;

use super::kernels::{FoldOut, PackedWeights};

/// Weight rows per tile: 4 rows × 2 accumulators, the weight broadcast, two activation vectors and a product
/// fit AVX2's 16 vector registers with room to spare.
const ROWS: usize = 4;

/// Columns per tile.
const COLS: usize = 8;

// One quad of a row block is 16 weights: one `vpmovsxbw` in [`widen_rows`].
const _: () = assert!(ROWS * 4 == 16);

/// Rows `r..r + rows` of `w` widened to i16 as `[quad][row][4]`, rows `rows..ROWS` zero: per quad, the rows'
/// 4 bytes side by side, sign-extended in one instruction.
#[target_feature(enable = "avx2")]
fn widen_rows(w: &PackedWeights, r: usize, rows: usize, out: &mut Vec<i16>) {
    let nq = w.kp / 4;
    out.clear();
    out.resize(nq * ROWS * 4, 0);
    for q in 0..nq {
        let mut quad = [0i8; ROWS * 4];
        for i in 0..rows {
            let at = (r + i) * w.kp + q * 4;
            quad[i * 4..i * 4 + 4].copy_from_slice(&w.data[at..at + 4]);
        }
        let dst = &mut out[q * ROWS * 4..(q + 1) * ROWS * 4];
        // SAFETY: `quad` holds 16 bytes and `dst` 16 values.
        unsafe {
            let v = _mm256_cvtepi8_epi16(_mm_loadu_si128(quad.as_ptr() as *const __m128i));
            _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, v);
        }
    }
}

/// One tile over quads `q0..q1`: row `i`'s sums of columns `p..p+8` (in column order) for the activation
/// columns at `b` (quad `q` of column `p` at `b + q·stride`) and the widened weights `w16` ([`widen_rows`]).
///
/// # Safety
/// AVX2 is available; `b + q·stride` holds 32 readable bytes for every `q` in `q0..q1`, and `w16` holds
/// `q1 · ROWS · 4` values.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn tile(w16: &[i16], b: *const u8, stride: usize, q0: usize, q1: usize) -> [__m256i; ROWS] {
    // SAFETY: the caller's contract keeps every load inside `b`'s quads and `w16`.
    unsafe {
        let mut lo = [_mm256_setzero_si256(); ROWS];
        let mut hi = [_mm256_setzero_si256(); ROWS];
        let wp = w16.as_ptr();
        for q in q0..q1 {
            let src = b.add(q * stride);
            // Columns p..p+4 and p+4..p+8, each as 4 columns × 4 depths of i16.
            let v0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(src as *const __m128i));
            let v1 = _mm256_cvtepu8_epi16(_mm_loadu_si128(src.add(16) as *const __m128i));
            for i in 0..ROWS {
                // The row's 4 weights of this quad, repeated in every 64-bit lane.
                let wq = (wp.add((q * ROWS + i) * 4) as *const i64).read_unaligned();
                let wb = _mm256_set1_epi64x(wq);
                lo[i] = _mm256_add_epi32(lo[i], _mm256_madd_epi16(v0, wb));
                hi[i] = _mm256_add_epi32(hi[i], _mm256_madd_epi16(v1, wb));
            }
        }
        // Lane pairs (depths 0-1, 2-3) of one column added; hadd interleaves the halves' 128-bit lanes, the
        // permute restores columns p..p+8.
        let mut out = [_mm256_setzero_si256(); ROWS];
        for i in 0..ROWS {
            out[i] = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(lo[i], hi[i]));
        }
        out
    }
}

/// `c[r][p] = Σ_k w[r][k]·b[k][p]` and, with `folds`, each row fold's sums (the contracts of
/// [`super::kernels::gemm`] and [`super::kernels::gemm_folds`]).
///
/// # Safety
/// AVX2 is available; `b` holds `kp·n` bytes, `c` holds `m·n` values and `folds.parts` the folds' rows (what
/// the callers assert).
#[target_feature(enable = "avx2")]
pub unsafe fn gemm(
    w: &PackedWeights,
    b: &[u8],
    n: usize,
    c: &mut [i32],
    mut folds: Option<FoldOut>,
) {
    let nq = w.kp / 4;
    let quads = folds.as_ref().map_or(nq.max(1), |f| f.quads);
    let full = n / COLS * COLS;
    let mut w16 = Vec::new();
    // The column tail as an 8-column operand (zero columns beyond n), built once.
    let mut tail = Vec::new();
    if full < n {
        tail.resize(nq * COLS * 4, 0u8);
        for q in 0..nq {
            let src = &b[(q * n + full) * 4..(q * n + n) * 4];
            tail[q * COLS * 4..q * COLS * 4 + src.len()].copy_from_slice(src);
        }
    }
    let mut r = 0;
    while r < w.m {
        let rows = (w.m - r).min(ROWS);
        widen_rows(w, r, rows, &mut w16);
        let mut p = 0;
        while p < n {
            let (src, stride, cols) = if p < full {
                (b.as_ptr().add(p * 4), n * 4, COLS)
            } else {
                (tail.as_ptr(), COLS * 4, n - full)
            };
            let mut total = [_mm256_setzero_si256(); ROWS];
            let mut q0 = 0;
            let mut f = 0;
            loop {
                let q1 = (q0 + quads).min(nq);
                let sums = tile(&w16, src, stride, q0, q1);
                if let Some(fo) = folds.as_mut() {
                    let at = f * fo.stride + r * n + p;
                    store_tile(&sums, rows, cols, &mut fo.parts[at..], n);
                }
                for (t, s) in total.iter_mut().zip(&sums) {
                    *t = _mm256_add_epi32(*t, *s);
                }
                f += 1;
                q0 = q1;
                if q0 >= nq {
                    break;
                }
            }
            store_tile(&total, rows, cols, &mut c[r * n + p..], n);
            p += COLS;
        }
        r += rows;
    }
}

/// Rows `0..rows` of a tile, `cols` (at most 8) columns each, into `dst` (row `i` at `dst[i·n..]`): a full
/// tile is four plain stores after one bounds check, a partial one goes lane by lane.
#[target_feature(enable = "avx2")]
#[inline]
fn store_tile(t: &[__m256i; ROWS], rows: usize, cols: usize, dst: &mut [i32], n: usize) {
    if rows == ROWS && cols == COLS {
        assert!(dst.len() >= (ROWS - 1) * n + COLS);
        for (i, v) in t.iter().enumerate() {
            // SAFETY: row i's 8 values lie inside `dst` (asserted above).
            unsafe { _mm256_storeu_si256(dst.as_mut_ptr().add(i * n) as *mut __m256i, *v) };
        }
        return;
    }
    for (i, v) in t.iter().enumerate().take(rows) {
        let mut lanes = [0i32; COLS];
        // SAFETY: `lanes` holds 8 values.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, *v) };
        dst[i * n..i * n + cols].copy_from_slice(&lanes[..cols]);
    }
}
