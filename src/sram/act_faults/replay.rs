//! The fold chains of persistent-only partial sums, [`LANES`] sums at a time (docs/activation-faults.md#partial-sums,
//! docs/datapath.md#speed).
//!
//! A partial sum whose faulty cells all fail on every access reads back as `((w & and) | or) ^ xor` after every
//! fold but the last. The chains of different sums are independent, so they are replayed in lockstep, one sum
//! per SIMD lane: one fold's int32 saturating additions, masked reads and flipped-bit counts of [`LANES`] sums
//! are a handful of vector instructions. The same generic body is compiled three times, for the portable target
//! and with AVX2 and AVX-512 (F/BW/VL/VPOPCNTDQ) enabled, and chosen at run time; all three compute the same
//! integers (tested bit for bit in `tests.rs`).

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

impl Default for LaneMasks {
    fn default() -> LaneMasks {
        LaneMasks {
            and: [u32::MAX; LANES],
            or: [0; LANES],
            xor: [0; LANES],
        }
    }
}

/// What [`replay_block`] returns: each lane's final sum, the bits read back wrong and the saturated additions
/// (over all lanes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockOut {
    pub sums: [i32; LANES],
    pub flipped: u64,
    pub saturated: u64,
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

/// The chains of [`LANES`] sums: `parts[f·LANES + j]` is fold `f`'s sum of lane `j` (`folds ≥ 2` folds). For
/// every fold but the last the running sum is added to (saturating), stored and read back through the lane's
/// masks; the last fold's sum is added to what was read.
#[inline(always)]
fn replay_generic(parts: &[i32], folds: usize, m: &LaneMasks) -> BlockOut {
    assert!(folds >= 2 && parts.len() >= folds * LANES);
    let mut sum = [0i32; LANES];
    let mut changed = [0u32; LANES];
    let mut sat = [0u32; LANES];
    for f in 0..folds - 1 {
        let p: &[i32; LANES] = parts[f * LANES..(f + 1) * LANES]
            .try_into()
            .expect("one fold of lanes");
        for j in 0..LANES {
            let (word, o) = add_sat(sum[j], p[j]);
            sat[j] += o as u32;
            let word = word as u32;
            let read = ((word & m.and[j]) | m.or[j]) ^ m.xor[j];
            changed[j] += (read ^ word).count_ones();
            sum[j] = read as i32;
        }
    }
    let p: &[i32; LANES] = parts[(folds - 1) * LANES..folds * LANES]
        .try_into()
        .expect("one fold of lanes");
    for j in 0..LANES {
        let (v, o) = add_sat(sum[j], p[j]);
        sat[j] += o as u32;
        sum[j] = v;
    }
    BlockOut {
        sums: sum,
        flipped: changed.iter().map(|&c| c as u64).sum(),
        saturated: sat.iter().map(|&c| c as u64).sum(),
    }
}

/// The chains of [`LANES`] sums ([`replay_generic`]) on the fastest available implementation.
pub fn replay_block(parts: &[i32], folds: usize, m: &LaneMasks) -> BlockOut {
    replay_block_on(best(), parts, folds, m)
}

/// [`ReplayPath::best`], detected once.
fn best() -> ReplayPath {
    static BEST: std::sync::OnceLock<ReplayPath> = std::sync::OnceLock::new();
    *BEST.get_or_init(ReplayPath::best)
}

/// [`replay_block`] on `path`.
///
/// # Panics
/// If `path` is not available on this CPU, `folds < 2` or `parts` holds fewer than `folds · LANES` sums.
pub fn replay_block_on(path: ReplayPath, parts: &[i32], folds: usize, m: &LaneMasks) -> BlockOut {
    assert!(path.available(), "{path:?} is not available");
    match path {
        ReplayPath::Portable => replay_generic(parts, folds, m),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX2 (asserted above); the body is safe code.
        ReplayPath::Avx2 => unsafe { replay_avx2(parts, folds, m) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX-512 F/BW/VL/VPOPCNTDQ (asserted above); the body is safe code.
        ReplayPath::Avx512 => unsafe { replay_avx512(parts, folds, m) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable path is available"),
    }
}

/// [`replay_generic`] compiled with AVX2 (8 lanes per instruction).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn replay_avx2(parts: &[i32], folds: usize, m: &LaneMasks) -> BlockOut {
    replay_generic(parts, folds, m)
}

/// [`replay_generic`] compiled with AVX-512 (16 lanes per instruction, `vpopcntd` for the flipped bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vpopcntdq")]
unsafe fn replay_avx512(parts: &[i32], folds: usize, m: &LaneMasks) -> BlockOut {
    replay_generic(parts, folds, m)
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
            parts in proptest::collection::vec(part(), 11 * LANES),
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
            let parts = &parts[..folds * LANES];
            let want = replay_block_on(ReplayPath::Portable, parts, folds, &m);
            let (mut flipped, mut sat) = (0, 0);
            for j in 0..LANES {
                let lane: Vec<i32> = (0..folds).map(|f| parts[f * LANES + j]).collect();
                let (v, fl, s) = chain(&lane, m.and[j], m.or[j], m.xor[j]);
                prop_assert_eq!(want.sums[j], v, "lane {}", j);
                flipped += fl;
                sat += s;
            }
            prop_assert_eq!((want.flipped, want.saturated), (flipped, sat));
            for path in [ReplayPath::Avx2, ReplayPath::Avx512] {
                if path.available() {
                    prop_assert_eq!(replay_block_on(path, parts, folds, &m), want, "{:?}", path);
                }
            }
        }
    }
}
