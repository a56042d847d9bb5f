//! The fold chains of persistent-only partial sums, [`LANES`] sums at a time (docs/activation-faults.md#partial-sums,
//! docs/datapath.md#speed).
//!
//! A partial sum whose faulty cells all fail on every access reads back as `((w & and) | or) ^ xor` after every
//! fold but the last. The chains of different sums are independent, so they are replayed in lockstep, one sum
//! per SIMD lane: one fold's int32 saturating additions, masked reads and flipped-bit counts of [`LANES`] sums
//! are a handful of vector instructions (AVX2: two vectors of 8 lanes; AVX-512 F/BW/VL/VPOPCNTDQ: one of 16),
//! chosen at run time, next to a portable scalar version; all compute the same integers (tested bit for bit
//! below, against each other and a definition with exact i64 sums).

/// Sums replayed together by [`replay_block`].
pub const LANES: usize = 16;

/// The persistent reads of [`LANES`] sums: lane `j` reads `((w & and[j]) | or[j]) ^ xor[j]`. An unused lane is
/// `and = !0, or = xor = 0` (reads what was stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneMasks {
    pub and: [u32; LANES],
    pub or: [u32; LANES],
    pub xor: [u32; LANES],
}

impl BlockOut {
    /// All zero (a buffer to replay into).
    pub const EMPTY: BlockOut = BlockOut {
        sums: [0; LANES],
        clean: [0; LANES],
        saturated: [0; LANES],
        flipped: 0,
    };
}

impl Default for LaneMasks {
    fn default() -> LaneMasks {
        LaneMasks {
            and: [u32::MAX; LANES],
            or: [0; LANES],
            xor: [0; LANES],
        }
    }
}

/// What [`replay_block`] returns: each lane's final sum, fault-free sum (exact) and saturated additions, and the
/// bits read back wrong over all lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockOut {
    pub sums: [i32; LANES],
    pub clean: [i64; LANES],
    pub saturated: [u32; LANES],
    pub flipped: u64,
}

/// The implementations of [`replay_block`] (all give the same result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayPath {
    Portable,
    Avx2,
    Avx512,
}

impl ReplayPath {
    /// The fastest implementation this CPU runs.
    pub fn best() -> ReplayPath {
        #[cfg(target_arch = "x86_64")]
        {
            if ReplayPath::Avx512.available() {
                return ReplayPath::Avx512;
            }
            if ReplayPath::Avx2.available() {
                return ReplayPath::Avx2;
            }
        }
        ReplayPath::Portable
    }

    /// Whether this CPU runs `self`.
    pub fn available(self) -> bool {
        match self {
            ReplayPath::Portable => true,
            #[cfg(target_arch = "x86_64")]
            ReplayPath::Avx2 => is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            ReplayPath::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vpopcntdq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// `a + p` in int32, saturating, and whether it saturated (the wrapped sum overflowed: both operands have the
/// sign the exact sum leaves the range on). Equal to clamping the exact i64 sum.
#[inline(always)]
fn add_sat(a: i32, p: i32) -> (i32, bool) {
    let (s, o) = a.overflowing_add(p);
    let bound = if a < 0 { i32::MIN } else { i32::MAX };
    (if o { bound } else { s }, o)
}

/// The chains of [`LANES`] sums: `parts[f·stride + j]` is fold `f`'s sum of lane `j` (`folds ≥ 2` folds). For
/// every fold but the last the running sum is added to (saturating), stored and read back through the lane's
/// masks; the last fold's sum is added to what was read.
#[inline(always)]
fn replay_generic(parts: &[i32], stride: usize, folds: usize, m: &LaneMasks) -> BlockOut {
    check(parts, stride, folds);
    let mut sum = [0i32; LANES];
    let mut clean = [0i64; LANES];
    let mut changed = [0u32; LANES];
    let mut sat = [0u32; LANES];
    for f in 0..folds {
        let p: &[i32; LANES] = parts[f * stride..f * stride + LANES]
            .try_into()
            .expect("one fold of lanes");
        for j in 0..LANES {
            clean[j] += p[j] as i64;
            let (word, o) = add_sat(sum[j], p[j]);
            sat[j] += o as u32;
            if f + 1 == folds {
                sum[j] = word;
                continue;
            }
            let word = word as u32;
            let read = ((word & m.and[j]) | m.or[j]) ^ m.xor[j];
            changed[j] += (read ^ word).count_ones();
            sum[j] = read as i32;
        }
    }
    BlockOut {
        sums: sum,
        clean,
        saturated: sat,
        flipped: changed.iter().map(|&c| c as u64).sum(),
    }
}

/// The chains of [`LANES`] sums ([`replay_generic`]) on the fastest available implementation.
pub fn replay_block(parts: &[i32], stride: usize, folds: usize, m: &LaneMasks) -> BlockOut {
    replay_block_on(best(), parts, stride, folds, m)
}

/// [`ReplayPath::best`], detected once.
fn best() -> ReplayPath {
    static BEST: std::sync::OnceLock<ReplayPath> = std::sync::OnceLock::new();
    *BEST.get_or_init(ReplayPath::best)
}

/// [`replay_block`] on `path`.
///
/// # Panics
/// If `path` is not available on this CPU, `folds < 2`, `stride < LANES` or `parts` holds fewer than
/// `(folds − 1) · stride + LANES` sums.
pub fn replay_block_on(
    path: ReplayPath,
    parts: &[i32],
    stride: usize,
    folds: usize,
    m: &LaneMasks,
) -> BlockOut {
    assert!(path.available(), "{path:?} is not available");
    match path {
        ReplayPath::Portable => replay_generic(parts, stride, folds, m),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX2 (asserted above); it checks the shapes before reading.
        ReplayPath::Avx2 => unsafe { replay_avx2(parts, stride, folds, m) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX-512 F/BW/VL/VPOPCNTDQ (asserted above); it checks the shapes first.
        ReplayPath::Avx512 => unsafe { replay_avx512(parts, stride, folds, m) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable path is available"),
    }
}

/// [`replay_generic`] on AVX2: two vectors of 8 lanes; the overflow of `a + p` is the sign of
/// `(a ^ s) & (p ^ s)`, the saturation bound `(a >> 31) ^ i32::MAX`, the flipped bits a nibble-table popcount.
///
/// SAFETY (callers): AVX2 available. The shapes are checked on entry ([`check`]): every load below reads lanes
/// `f·stride .. f·stride + LANES` of `parts` for `f < folds`, inside it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn replay_avx2(parts: &[i32], stride: usize, folds: usize, m: &LaneMasks) -> BlockOut {
    let mut r = BlockOut::EMPTY;
    replay_avx2_into(parts, stride, folds, m, &mut r);
    r
}

/// [`replay_avx2`] into `r`.
///
/// SAFETY (callers): as [`replay_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn replay_avx2_into(
    parts: &[i32],
    stride: usize,
    folds: usize,
    m: &LaneMasks,
    r: &mut BlockOut,
) {
    use std::arch::x86_64::*;
    check(parts, stride, folds);
    let ld =
        |v: &[u32; LANES], h: usize| _mm256_loadu_si256(v.as_ptr().add(8 * h) as *const __m256i);
    let (and, or, xor) = (
        [ld(&m.and, 0), ld(&m.and, 1)],
        [ld(&m.or, 0), ld(&m.or, 1)],
        [ld(&m.xor, 0), ld(&m.xor, 1)],
    );
    let max = _mm256_set1_epi32(i32::MAX);
    let nibbles = _mm256_set1_epi8(0x0f);
    let table = _mm256_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3,
        3, 4,
    );
    let (ones8, ones16) = (_mm256_set1_epi8(1), _mm256_set1_epi16(1));
    let mut sum = [_mm256_setzero_si256(); 2];
    let mut changed = [_mm256_setzero_si256(); 2];
    let mut sat = [_mm256_setzero_si256(); 2];
    let mut clean = [_mm256_setzero_si256(); 4];
    // `a + p` saturating; `sat` counts the lanes that saturated (an all-ones overflow mask is −1).
    let add = |a: __m256i, p: __m256i, sat: &mut __m256i| -> __m256i {
        let s = _mm256_add_epi32(a, p);
        let ovf = _mm256_srai_epi32::<31>(_mm256_and_si256(
            _mm256_xor_si256(a, s),
            _mm256_xor_si256(p, s),
        ));
        let bound = _mm256_xor_si256(_mm256_srai_epi32::<31>(a), max);
        *sat = _mm256_sub_epi32(*sat, ovf);
        _mm256_blendv_epi8(s, bound, ovf)
    };
    let popcount = |v: __m256i| -> __m256i {
        let lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, nibbles));
        let hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibbles));
        let bytes = _mm256_add_epi8(lo, hi);
        _mm256_madd_epi16(_mm256_maddubs_epi16(bytes, ones8), ones16)
    };
    for f in 0..folds {
        for h in 0..2 {
            let p = _mm256_loadu_si256(parts.as_ptr().add(f * stride + 8 * h) as *const __m256i);
            let lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(p));
            let hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(p));
            clean[2 * h] = _mm256_add_epi64(clean[2 * h], lo);
            clean[2 * h + 1] = _mm256_add_epi64(clean[2 * h + 1], hi);
            let word = add(sum[h], p, &mut sat[h]);
            if f + 1 == folds {
                sum[h] = word;
                continue;
            }
            let read = _mm256_xor_si256(
                _mm256_or_si256(_mm256_and_si256(word, and[h]), or[h]),
                xor[h],
            );
            changed[h] = _mm256_add_epi32(changed[h], popcount(_mm256_xor_si256(read, word)));
            sum[h] = read;
        }
    }
    // Stored straight into the result's fields (no intermediate arrays to copy).
    let mut flips = [0u32; LANES];
    for h in 0..2 {
        _mm256_storeu_si256(r.sums.as_mut_ptr().add(8 * h) as *mut __m256i, sum[h]);
        _mm256_storeu_si256(flips.as_mut_ptr().add(8 * h) as *mut __m256i, changed[h]);
        _mm256_storeu_si256(r.saturated.as_mut_ptr().add(8 * h) as *mut __m256i, sat[h]);
    }
    for (q, c) in clean.iter().enumerate() {
        _mm256_storeu_si256(r.clean.as_mut_ptr().add(4 * q) as *mut __m256i, *c);
    }
    r.flipped = flips.iter().map(|&c| c as u64).sum();
}

/// [`replay_generic`] on AVX-512: one vector of 16 lanes, overflow as a mask register, `vpopcntd` for the
/// flipped bits.
///
/// SAFETY (callers): AVX-512 F/VPOPCNTDQ available; `parts` as for [`replay_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vpopcntdq")]
unsafe fn replay_avx512(parts: &[i32], stride: usize, folds: usize, m: &LaneMasks) -> BlockOut {
    let [out] = replay_n_avx512::<1>([parts], stride, folds, [m]);
    out
}

/// The AVX-512 replays' registers (final sums, flipped-bit and saturation counts, fault-free sums as two i64
/// halves) as a [`BlockOut`].
///
/// SAFETY (callers): AVX-512F available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_out_avx512(
    sum: std::arch::x86_64::__m512i,
    changed: std::arch::x86_64::__m512i,
    sat: std::arch::x86_64::__m512i,
    clean_lo: std::arch::x86_64::__m512i,
    clean_hi: std::arch::x86_64::__m512i,
) -> BlockOut {
    use std::arch::x86_64::*;
    let mut out = [[0i32; LANES]; 3];
    _mm512_storeu_si512(out[0].as_mut_ptr() as *mut _, sum);
    _mm512_storeu_si512(out[1].as_mut_ptr() as *mut _, changed);
    _mm512_storeu_si512(out[2].as_mut_ptr() as *mut _, sat);
    let mut wide = [0i64; LANES];
    _mm512_storeu_si512(wide.as_mut_ptr() as *mut _, clean_lo);
    _mm512_storeu_si512(wide.as_mut_ptr().add(8) as *mut _, clean_hi);
    block_out(out, wide)
}

/// Blocks [`replay_blocks`] replays side by side.
pub const BLOCKS: usize = 2;

/// [`BLOCKS`] independent [`replay_block`]s at once (block `i`: fold sums from `parts[i]`, reads `masks[i]`, the
/// same `stride` and `folds`): on AVX-512 their chains advance together, so one block's dependent additions and
/// reads overlap the others' instead of waiting on each other; elsewhere one after the other. The same results
/// as [`BLOCKS`] calls of [`replay_block`] (tested).
pub fn replay_blocks(
    parts: [&[i32]; BLOCKS],
    stride: usize,
    folds: usize,
    masks: [&LaneMasks; BLOCKS],
    out: &mut [BlockOut; BLOCKS],
) {
    replay_blocks_on(best(), parts, stride, folds, masks, out)
}

/// [`replay_blocks`] on `path` (panics as [`replay_block_on`]).
pub fn replay_blocks_on(
    path: ReplayPath,
    parts: [&[i32]; BLOCKS],
    stride: usize,
    folds: usize,
    masks: [&LaneMasks; BLOCKS],
    out: &mut [BlockOut; BLOCKS],
) {
    assert!(path.available(), "{path:?} is not available");
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX-512 F/BW/VL/VPOPCNTDQ (asserted above); it checks the shapes first.
        ReplayPath::Avx512 => *out = unsafe { replay_n_avx512(parts, stride, folds, masks) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX2 (asserted above); each replay checks its shapes first.
        ReplayPath::Avx2 => unsafe { replay_n_avx2(parts, stride, folds, masks, out) },
        _ => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = replay_block_on(path, parts[i], stride, folds, masks[i]);
            }
        }
    }
}

/// `N` [`replay_avx2`]s one after the other, each written straight into `out[i]` (no block's result is
/// copied through a call boundary).
///
/// SAFETY (callers): AVX2 available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn replay_n_avx2<const N: usize>(
    parts: [&[i32]; N],
    stride: usize,
    folds: usize,
    masks: [&LaneMasks; N],
    out: &mut [BlockOut; N],
) {
    for i in 0..N {
        // SAFETY: AVX2 is available (this function's contract); replay_avx2_into checks the shapes.
        unsafe { replay_avx2_into(parts[i], stride, folds, masks[i], &mut out[i]) };
    }
}

/// The AVX-512 replay of `N` blocks in lockstep (the same operations per block; [`replay_avx512`] is `N = 1`).
///
/// SAFETY (callers): AVX-512 F/VPOPCNTDQ available; each `parts[i]` as for [`replay_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vpopcntdq")]
unsafe fn replay_n_avx512<const N: usize>(
    parts: [&[i32]; N],
    stride: usize,
    folds: usize,
    masks: [&LaneMasks; N],
) -> [BlockOut; N] {
    use std::arch::x86_64::*;
    for p in parts {
        check(p, stride, folds);
    }
    let ld = |v: &[u32; LANES]| _mm512_loadu_si512(v.as_ptr() as *const _);
    let and: [__m512i; N] = std::array::from_fn(|i| ld(&masks[i].and));
    let or: [__m512i; N] = std::array::from_fn(|i| ld(&masks[i].or));
    let xor: [__m512i; N] = std::array::from_fn(|i| ld(&masks[i].xor));
    let (max, zero, one) = (
        _mm512_set1_epi32(i32::MAX),
        _mm512_setzero_si512(),
        _mm512_set1_epi32(1),
    );
    let (mut sum, mut changed, mut sat) = ([zero; N], [zero; N], [zero; N]);
    let (mut clean_lo, mut clean_hi) = ([zero; N], [zero; N]);
    for f in 0..folds {
        for i in 0..N {
            let p = _mm512_loadu_si512(parts[i].as_ptr().add(f * stride) as *const _);
            clean_lo[i] = _mm512_add_epi64(
                clean_lo[i],
                _mm512_cvtepi32_epi64(_mm512_castsi512_si256(p)),
            );
            clean_hi[i] = _mm512_add_epi64(
                clean_hi[i],
                _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(p)),
            );
            let s = _mm512_add_epi32(sum[i], p);
            let ovf = _mm512_cmplt_epi32_mask(
                _mm512_and_si512(_mm512_xor_si512(sum[i], s), _mm512_xor_si512(p, s)),
                zero,
            );
            let bound = _mm512_xor_si512(_mm512_srai_epi32::<31>(sum[i]), max);
            sat[i] = _mm512_mask_add_epi32(sat[i], ovf, sat[i], one);
            let word = _mm512_mask_mov_epi32(s, ovf, bound);
            if f + 1 == folds {
                sum[i] = word;
                continue;
            }
            let read = _mm512_xor_si512(
                _mm512_or_si512(_mm512_and_si512(word, and[i]), or[i]),
                xor[i],
            );
            changed[i] = _mm512_add_epi32(
                changed[i],
                _mm512_popcnt_epi32(_mm512_xor_si512(read, word)),
            );
            sum[i] = read;
        }
    }
    std::array::from_fn(|i| block_out_avx512(sum[i], changed[i], sat[i], clean_lo[i], clean_hi[i]))
}

/// The shapes every implementation needs (the SIMD ones read through raw pointers): lane `j` of fold `f` at
/// `parts[f·stride + j]`.
fn check(parts: &[i32], stride: usize, folds: usize) {
    assert!(folds >= 2 && stride >= LANES && parts.len() >= (folds - 1) * stride + LANES);
}

/// Final sums, per-lane flipped bits and saturations (u32 lanes) and fault-free sums into a [`BlockOut`].
#[cfg(target_arch = "x86_64")]
fn block_out([sums, changed, sat]: [[i32; LANES]; 3], clean: [i64; LANES]) -> BlockOut {
    BlockOut {
        sums,
        clean,
        saturated: sat.map(|c| c as u32),
        flipped: changed.iter().map(|&c| c as u32 as u64).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One lane's chain by the definition: exact i64 sums clamped to i32, the masked read after every fold but
    /// the last; returns (final, flipped bits, saturations).
    fn chain(parts: &[i32], and: u32, or: u32, xor: u32) -> (i32, u64, u64) {
        let (mut sum, mut flipped, mut sat) = (0i32, 0u64, 0u64);
        for (f, &p) in parts.iter().enumerate() {
            let wide = sum as i64 + p as i64;
            let v = wide.clamp(i32::MIN as i64, i32::MAX as i64);
            sat += (v != wide) as u64;
            sum = v as i32;
            if f + 1 < parts.len() {
                let read = ((sum as u32 & and) | or) ^ xor;
                flipped += (read ^ sum as u32).count_ones() as u64;
                sum = read as i32;
            }
        }
        (sum, flipped, sat)
    }

    /// Fold sums that often saturate: extremes, large and small values.
    fn part() -> impl Strategy<Value = i32> {
        prop_oneof![
            Just(i32::MAX),
            Just(i32::MIN),
            any::<i32>(),
            -3000i32..3000,
            (i32::MAX - 5)..=i32::MAX,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every available implementation equals the portable one and the definition, lane by lane.
        #[test]
        fn replay_paths_equal_the_definition(
            folds in 2usize..12,
            parts in proptest::collection::vec(part(), 11 * (LANES + 5)),
            and in proptest::array::uniform16(any::<u32>()),
            or in proptest::array::uniform16(any::<u32>()),
            xor in proptest::array::uniform16(any::<u32>()),
            sparse in any::<bool>(),
        ) {
            // Sparse masks (a few bits, as real faults) or dense random ones.
            let pick = |v: [u32; LANES], neutral: u32| -> [u32; LANES] {
                if sparse { v.map(|x| if x % 3 == 0 { x } else { neutral }) } else { v }
            };
            let m = LaneMasks { and: pick(and, u32::MAX), or: pick(or, 0), xor: pick(xor, 0) };
            // Lanes `stride` apart (fold-major batches use `LANES`; tables a wider stride).
            let stride = if sparse { LANES } else { LANES + 5 };
            let parts = &parts[..(folds - 1) * stride + LANES];
            let want = replay_block_on(ReplayPath::Portable, parts, stride, folds, &m);
            let mut flipped = 0;
            for j in 0..LANES {
                let lane: Vec<i32> = (0..folds).map(|f| parts[f * stride + j]).collect();
                let (v, fl, s) = chain(&lane, m.and[j], m.or[j], m.xor[j]);
                prop_assert_eq!(want.sums[j], v, "lane {}", j);
                prop_assert_eq!(want.clean[j], lane.iter().map(|&p| p as i64).sum::<i64>());
                prop_assert_eq!(want.saturated[j] as u64, s);
                flipped += fl;
            }
            prop_assert_eq!(want.flipped, flipped);
            for path in [ReplayPath::Avx2, ReplayPath::Avx512] {
                if path.available() {
                    prop_assert_eq!(replay_block_on(path, parts, stride, folds, &m), want, "{:?}", path);
                }
            }
            // BLOCKS blocks side by side (each its own masks and lanes) equal BLOCKS single replays.
            let ms: [LaneMasks; BLOCKS] = std::array::from_fn(|i| LaneMasks {
                and: m.and.map(|x| x.rotate_left(i as u32)),
                or: m.or.map(|x| x.rotate_left(3 * i as u32)),
                xor: m.xor.map(|x| x.rotate_right(i as u32)),
            });
            let shifted: Vec<Vec<i32>> = (0..BLOCKS)
                .map(|i| parts.iter().map(|&v| v.rotate_left(i as u32)).collect())
                .collect();
            let ps: [&[i32]; BLOCKS] = std::array::from_fn(|i| shifted[i].as_slice());
            let mrefs: [&LaneMasks; BLOCKS] = std::array::from_fn(|i| &ms[i]);
            let singles: [BlockOut; BLOCKS] =
                std::array::from_fn(|i| replay_block_on(ReplayPath::Portable, ps[i], stride, folds, &ms[i]));
            for path in [ReplayPath::Portable, ReplayPath::Avx2, ReplayPath::Avx512] {
                if path.available() {
                    let mut got = [BlockOut::EMPTY; BLOCKS];
                    replay_blocks_on(path, ps, stride, folds, mrefs, &mut got);
                    prop_assert_eq!(got, singles, "{:?} x{}", path, BLOCKS);
                }
            }
        }
    }
}
