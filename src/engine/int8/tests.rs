//! Integer datapath tests: every fast kernel against the slow reference (proptest, every GEMM path run
//! explicitly), requantization rounding and saturation cases, overflow counting, and whole networks (float
//! agreement, path/thread/requant-mode invariance, activation read-back, weight faults).
use std::sync::Mutex;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};

use super::kernels::{self, KernelScratch, LayerWeights, PackedWeights, Path};
use super::quantize::QParams;
use super::reference;
use super::requant::{FixedMultiplier, Requant, RequantMode};
use super::weights::{code_to_k, WeightCodes};
use super::*;
use crate::engine::act_store::Reliable;
use crate::engine::kernels::Window;
use crate::engine::tests::{input, residual_tensors, RESIDUAL_TOML};
use crate::model::tests::{small_tensors, write_model, SMALL_TOML};
use crate::quant::QuantConfig;

const PATHS: [Path; 3] = [Path::Portable, Path::Avx2, Path::Avx512Vnni];

fn available_paths() -> Vec<Path> {
    PATHS.into_iter().filter(|p| p.available()).collect()
}

fn qparams() -> impl Strategy<Value = QParams> {
    (any::<bool>(), 0i32..256, 1e-3f32..1.0).prop_map(|(signed, z, scale)| QParams {
        scale,
        zero: if signed { z - 128 } else { z },
        signed,
    })
}

fn window() -> impl Strategy<Value = (Window, usize, usize)> {
    (
        (1usize..4, 1usize..4, 1usize..4),
        (1usize..9, 1usize..9),
        (1usize..4, 1usize..4),
        (1usize..3, 1usize..3),
        (0usize..2, 0usize..2),
        (1usize..3, 1usize..3),
    )
        .prop_filter_map(
            "window must fit",
            |((groups, cg, og), (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))| {
                let oh = crate::model::graph::window_out_dilated(h, kh, sh, ph, ph, dh)?;
                let ow = crate::model::graph::window_out_dilated(w, kw, sw, pw, pw, dw)?;
                Some((
                    Window {
                        c: groups * cg,
                        h,
                        w,
                        kh,
                        kw,
                        sh,
                        sw,
                        ph,
                        pw,
                        dh,
                        dw,
                        oh,
                        ow,
                    },
                    groups * og,
                    groups,
                ))
            },
        )
}

fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn codes(n: usize, seed: u64) -> Vec<i8> {
    bytes(n, seed)
        .into_iter()
        .map(|b| (b as i8).max(-127))
        .collect()
}

fn layer<'a>(
    cout: usize,
    groups: usize,
    depthwise: bool,
    k: &'a [i8],
    packed: &'a [PackedWeights],
) -> LayerWeights<'a> {
    LayerWeights {
        cout,
        groups,
        depthwise,
        codes: k,
        packed,
        asym: true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn gemm_paths_equal_the_definition(m in 1usize..10, k in 1usize..80, n in 1usize..70, seed in any::<u64>()) {
        let w = codes(m * k, seed);
        let x = bytes(n * k, seed ^ 1);
        let pw = PackedWeights::new(m, k, &w);
        let mut b = Vec::new();
        kernels::pack_rows(&x, n, k, &mut b);
        let expect: Vec<i32> = (0..m * n)
            .map(|i| {
                let (r, p) = (i / n, i % n);
                (0..k).map(|kk| w[r * k + kk] as i32 * x[p * k + kk] as i32).sum()
            })
            .collect();
        for path in available_paths() {
            let mut c = vec![0i32; m * n];
            kernels::gemm(path, &pw, &b, n, &mut c);
            prop_assert_eq!(&c, &expect, "{}", path.name());
        }
        let mut c64 = vec![0i64; m * n];
        kernels::gemm_i64(&pw, &b, n, &mut c64);
        prop_assert!(c64.iter().zip(&expect).all(|(a, b)| *a == *b as i64));
        prop_assert!(pw.rowsum.iter().enumerate().all(|(r, &s)| s == w[r * k..(r + 1) * k].iter().map(|&v| v as i32).sum::<i32>()));
    }

    #[test]
    fn conv_accumulators_equal_the_reference((g, cout, groups) in window(), q in qparams(), seed in any::<u64>(), depthwise in any::<bool>()) {
        // Depthwise: one input channel per group.
        let (g, cout, groups) = if depthwise {
            let g = Window { c: groups, ..g };
            (g, groups * (cout / groups), groups)
        } else {
            (g, cout, groups)
        };
        let dw = groups > 1 && g.c == groups;
        let k = g.c / groups * g.kh * g.kw;
        let wk = codes(cout * k, seed);
        let x = bytes(g.in_len(), seed ^ 7);
        let bias: Vec<i32> = codes(cout, seed ^ 3).iter().map(|&v| v as i32 * 1000).collect();
        let og = cout / groups;
        let packed: Vec<PackedWeights> = if dw {
            vec![]
        } else {
            (0..groups).map(|gi| PackedWeights::new(og, k, &wk[gi * og * k..(gi + 1) * og * k])).collect()
        };
        let (racc, rsum) = reference::conv_acc(&x, q, &g, cout, groups, &wk);
        let xu: Vec<u8> = x.iter().map(|&b| q.unsigned_view(b)).collect();
        for path in available_paths() {
            let n = cout * g.out_hw();
            let (mut acc, mut asum) = (vec![0i32; n], vec![0i32; groups * g.out_hw()]);
            let mut sc = KernelScratch::default();
            let ov = kernels::conv_acc(path, &xu, q.zero_u(), &g, &layer(cout, groups, dw, &wk, &packed), &bias, &mut sc, &mut acc, &mut asum);
            prop_assert_eq!(ov, 0);
            for i in 0..n {
                prop_assert_eq!(acc[i] as i64, racc[i] + bias[i / g.out_hw()] as i64, "{} at {}", path.name(), i);
                let (co, p) = (i / g.out_hw(), i % g.out_hw());
                prop_assert_eq!(asum[(co / og) * g.out_hw() + p] as i64, rsum[i]);
            }
        }
    }

    #[test]
    fn linear_accumulators_equal_the_reference(n in 1usize..40, inf in 1usize..100, outf in 1usize..12, q in qparams(), seed in any::<u64>()) {
        let wk = codes(outf * inf, seed);
        let x = bytes(n * inf, seed ^ 5);
        let bias: Vec<i32> = codes(outf, seed ^ 9).iter().map(|&v| v as i32 * 77).collect();
        let packed = vec![PackedWeights::new(outf, inf, &wk)];
        let xu: Vec<u8> = x.iter().map(|&b| q.unsigned_view(b)).collect();
        for path in available_paths() {
            let (mut acc, mut asum) = (vec![0i32; n * outf], vec![0i32; n]);
            let mut sc = KernelScratch::default();
            kernels::linear_acc(path, &xu, n, q.zero_u(), &layer(outf, 1, false, &wk, &packed), &bias, &mut sc, &mut acc, &mut asum);
            for e in 0..n {
                let (r, t) = reference::linear_acc(&x[e * inf..(e + 1) * inf], q, outf, &wk);
                for j in 0..outf {
                    prop_assert_eq!(acc[e * outf + j] as i64, r[j] + bias[j] as i64);
                    prop_assert_eq!(asum[e] as i64, t);
                }
            }
        }
    }

    #[test]
    fn requant_rows_dispatched_equal_portable(accs in proptest::collection::vec(any::<i32>(), 1..40), m in -2.0f64..2.0, z in -128i32..128, fixed in any::<bool>()) {
        let mode = if fixed { RequantMode::FixedPoint } else { RequantMode::Float };
        let rq = Requant::new(mode, &[m], &[], z, -128, 127);
        let (mut a, mut b) = (vec![0u8; accs.len()], vec![0u8; accs.len()]);
        super::simd::requant_row(&rq, 0, &accs, &[], &mut a);
        super::simd::portable(&rq, 0, &accs, &[], &mut b);
        prop_assert_eq!(&a, &b);
        let direct: Vec<u8> = accs.iter().map(|&v| rq.apply(0, v, 0) as u8).collect();
        prop_assert_eq!(a, direct);
    }

    #[test]
    fn unpitch_add_equals_the_portable_form(rows in 0usize..6, ow in 1usize..40, extra in 0usize..5, c in any::<i32>(), seed in any::<u64>()) {
        let pitch = ow + extra;
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        // Exactly the values the rows read: the last row ends at the slice's end.
        let len = if rows == 0 { 0 } else { (rows - 1) * pitch + ow };
        let src: Vec<i32> = (0..len).map(|_| rng.gen()).collect();
        let (mut a, mut b) = (vec![0i32; rows * ow], vec![0i32; rows * ow]);
        super::kernels::unpitch_add(&src, pitch, ow, c, &mut a);
        super::kernels::unpitch_add_portable(&src, pitch, ow, c, &mut b);
        prop_assert_eq!(&a, &b);
        let mut v = vec![0i32; rows * ow];
        if super::kernels::unpitch_add_avx2(&src, pitch, ow, c, &mut v) {
            prop_assert_eq!(&v, &b, "avx2");
        }
        for (i, &v) in b.iter().enumerate() {
            prop_assert_eq!(v, src[(i / ow) * pitch + i % ow].wrapping_add(c));
        }
    }

    #[test]
    fn fused_group_norm_codes_equal_the_four_passes(
        gn_groups in 1usize..9, cg in 1usize..4, conv_groups_pow in 0u32..2, hw in 1usize..40, asym in any::<bool>(),
        relu in any::<bool>(), reparameterized in any::<bool>(), q in qparams(), seed in any::<u64>(),
    ) {
        use super::simd::{self, Dequant, GroupNormPpu};
        let c = gn_groups * cg;
        let conv_groups = if c % 2 == 0 { 1usize << conv_groups_pow } else { 1 };
        let og = c / conv_groups;
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let acc: Vec<i32> = (0..c * hw).map(|_| rng.gen_range(-300_000..300_000)).collect();
        let asum: Vec<i32> = if asym { (0..conv_groups * hw).map(|_| rng.gen_range(-5000..5000)).collect() } else { vec![] };
        let sa = rng.gen_range(0.001f64..0.1);
        let sw: Vec<f64> = (0..c).map(|_| rng.gen_range(1e-4f64..1e-2)).collect();
        let cw: Vec<f64> = (0..c).map(|i| if asym && i % 3 != 1 { rng.gen_range(-1e-2f64..1e-2) } else { 0.0 }).collect();
        let weight: Vec<f32> = (0..c).map(|_| rng.gen_range(-0.5f32..1.5)).collect();
        let bias: Vec<f32> = (0..c).map(|_| rng.gen_range(-1f32..1.0)).collect();
        let eps = 1e-5f32;
        // The four passes: dequant_row per channel, engine::kernels::group_norm, quantize_slice, floor_codes.
        let mut f = vec![0f32; c * hw];
        for co in 0..c {
            let sums = if asym { &asum[(co / og) * hw..(co / og + 1) * hw] } else { &[][..] };
            let unit = (sa * sw[co]) as f32;
            let cunit = (sa * cw[co]) as f32;
            simd::dequant_row(&acc[co * hw..(co + 1) * hw], sums, unit, cunit, &mut f[co * hw..(co + 1) * hw]);
        }
        crate::engine::kernels::group_norm(&mut f, 1, c, hw, gn_groups, eps, &weight, &bias, reparameterized);
        let mut want = vec![0u8; c * hw];
        simd::quantize_slice(q, &f, &mut want);
        if relu {
            simd::floor_codes(q, &mut want);
        }
        let dq = Dequant { sa, s: &sw, c: &cw, asum: &asum, og };
        let gn = GroupNormPpu { groups: gn_groups, eps, weight: &weight, bias: &bias, reparameterized };
        let (mut got, mut tmp) = (vec![0u8; c * hw], vec![0f32; c * hw]);
        let job = simd::GroupNormCodes { acc: &acc, hw, dq, gn, q, relu };
        simd::group_norm_codes(&job, &mut tmp, &mut got);
        prop_assert_eq!(&got, &want);
        let mut port = vec![0u8; c * hw];
        simd::group_norm_codes_portable(&job, &mut tmp, &mut port);
        prop_assert_eq!(&port, &want);
    }

    #[test]
    fn quantize_slice_equals_quantize(x in proptest::collection::vec(-1e6f32..1e6, 1..70), q in qparams()) {
        let mut a = vec![0u8; x.len()];
        super::simd::quantize_slice(q, &x, &mut a);
        let direct: Vec<u8> = x.iter().map(|&v| q.quantize(v)).collect();
        prop_assert_eq!(a, direct);
    }

    #[test]
    fn float_requant_equals_the_definition(acc in any::<i32>(), asum in -100_000i32..100_000, m in -2.0f64..2.0, mc in -0.01f64..0.01, z in -128i32..128) {
        let rq = Requant::new(RequantMode::Float, &[m], &[mc], z, -128, 127);
        prop_assert_eq!(rq.apply(0, acc, asum), reference::requant_float(acc, asum, m as f32, mc as f32, z, -128, 127));
    }

    #[test]
    fn fixed_requant_equals_the_rational_definition(acc in any::<i32>(), m in 1e-9f64..4.0, neg in any::<bool>(), z in 0i32..256) {
        let m = if neg { -m } else { m };
        let rq = Requant::new(RequantMode::FixedPoint, &[m], &[], z, 0, 255);
        let f = rq.fx[0];
        prop_assert!((1i64 << 30..1i64 << 31).contains(&f.m0.abs()), "m0 {}", f.m0);
        // The multiplier is within half a unit of its last place.
        let approx = f.m0 as f64 / 2f64.powi(f.shift as i32);
        prop_assert!((approx - m).abs() <= 0.5 / 2f64.powi(f.shift as i32) + 1e-300);
        prop_assert_eq!(rq.apply(0, acc, 0), reference::requant_fixed(acc as i128, f.m0, f.shift, z, 0, 255));
        // Fixed and float agree within one output step where the float product is exact enough.
        let fl = Requant::new(RequantMode::Float, &[m], &[], z, 0, 255).apply(0, acc, 0);
        prop_assert!((fl - rq.apply(0, acc, 0)).abs() <= 1);
    }

    #[test]
    fn max_pool_on_codes_equals_the_reference((g, _, _) in window(), q in qparams(), seed in any::<u64>()) {
        let g = Window { dh: 1, dw: 1, ..g };
        let Some(oh) = crate::model::graph::window_out(g.h, g.kh, g.sh, g.ph) else { return Ok(()) };
        let Some(ow) = crate::model::graph::window_out(g.w, g.kw, g.sw, g.pw) else { return Ok(()) };
        // PyTorch requires padding ≤ kernel/2, so every window holds at least one input tap.
        prop_assume!(2 * g.ph <= g.kh && 2 * g.pw <= g.kw);
        let g = Window { oh, ow, ..g };
        let x = bytes(g.in_len(), seed);
        let xu: Vec<u8> = x.iter().map(|&b| q.unsigned_view(b)).collect();
        let mut out = vec![0u8; g.c * g.out_hw()];
        kernels::max_pool(&xu, &g, &mut out, &mut Default::default());
        let back: Vec<u8> = out.iter().map(|&b| if q.signed { b ^ 0x80 } else { b }).collect();
        prop_assert_eq!(back, reference::max_pool(&x, q, &g));
    }

    #[test]
    fn avg_pool_equals_the_reference((g, _, _) in window(), q in qparams(), qo in qparams(), seed in any::<u64>(), cip in any::<bool>()) {
        let g = Window { dh: 1, dw: 1, ..g };
        let Some(oh) = crate::model::graph::window_out(g.h, g.kh, g.sh, g.ph) else { return Ok(()) };
        let Some(ow) = crate::model::graph::window_out(g.w, g.kw, g.sw, g.pw) else { return Ok(()) };
        prop_assume!(2 * g.ph <= g.kh && 2 * g.pw <= g.kw);
        let g = Window { oh, ow, ..g };
        let x = bytes(g.in_len(), seed);
        let xu: Vec<u8> = x.iter().map(|&b| q.unsigned_view(b)).collect();
        let n = g.c * g.out_hw();
        let (mut sums, mut counts) = (vec![0i32; n], vec![0u32; n]);
        kernels::avg_pool_sums(&xu, &g, q.zero_u(), cip, &mut sums, &mut counts);
        let rq = pool_requant(RequantMode::Float, q, qo, g.kh * g.kw);
        let got: Vec<u8> = sums.iter().zip(&counts).map(|(&s, &d)| rq.apply(d as usize - 1, s, 0) as u8).collect();
        prop_assert_eq!(got, reference::avg_pool(&x, q, qo, &g, cip));
    }

    #[test]
    fn add_equals_the_reference(a in proptest::collection::vec(any::<u8>(), 1..50), qa in qparams(), qb in qparams(), qo in qparams()) {
        let b: Vec<u8> = a.iter().rev().cloned().collect();
        let expect = reference::add(&a, qa, &b, qb, qo);
        let got: Vec<u8> = a.iter().zip(&b).map(|(&x, &y)| qo.quantize(qa.dequantize(x) + qb.dequantize(y))).collect();
        prop_assert_eq!(got, expect);
    }

    #[test]
    fn quantize_saturates_and_zero_is_exact(min in -10.0f32..10.0, span in 0.0f32..20.0, x in -100.0f32..100.0) {
        let q = QParams::from_range(min, min + span);
        prop_assert_eq!(q.dequantize(q.quantize(0.0)), 0.0);
        let (lo, hi) = q.code_range();
        let c = q.code_of(q.quantize(x));
        prop_assert!((lo..=hi).contains(&c));
        prop_assert_eq!(q.signed, min < 0.0);
        // Inside the calibrated range the round trip is within half a step.
        if x >= min && x <= min + span {
            prop_assert!((q.dequantize(q.quantize(x)) - x).abs() <= q.scale * 0.5 + 1e-4 * x.abs().max(1.0));
        }
    }
}

#[test]
fn requantization_rounding_and_saturation_cases() {
    // Float mode: half to even; saturation at both ends; the fused ReLU bound.
    let rq = Requant::new(RequantMode::Float, &[0.5], &[], 0, -128, 127);
    let got: Vec<i32> = [5, 7, -5, -7, 1, -1, 3]
        .iter()
        .map(|&a| rq.apply(0, a, 0))
        .collect();
    assert_eq!(got, vec![2, 4, -2, -4, 0, 0, 2]);
    assert_eq!(rq.apply(0, i32::MAX, 0), 127);
    assert_eq!(rq.apply(0, i32::MIN, 0), -128);
    let relu = Requant::new(RequantMode::Float, &[1.0], &[], 10, 10, 255);
    assert_eq!(relu.apply(0, -3, 0), 10);
    assert_eq!(relu.apply(0, 300, 0), 255);
    // Fixed point: M = 0.5 is m0 = 2^30 with shift 31; ties round up (TFLite single rounding).
    let fx = Requant::new(RequantMode::FixedPoint, &[0.5], &[], 0, -128, 127);
    assert_eq!(
        fx.fx[0],
        FixedMultiplier {
            m0: 1 << 30,
            shift: 31
        }
    );
    let got: Vec<i32> = [5, 7, -5, -7, 1, -1]
        .iter()
        .map(|&a| fx.apply(0, a, 0))
        .collect();
    assert_eq!(got, vec![3, 4, -2, -3, 1, 0]);
    assert_eq!(fx.apply(0, i32::MAX, 0), 127);
    // ONNX QuantizeLinear ties: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2; NaN -> zero point.
    let q = QParams {
        scale: 1.0,
        zero: 0,
        signed: true,
    };
    assert_eq!(
        [2.5f32, 3.5, -2.5, 1e9, -1e9, f32::NAN].map(|x| q.code_of(q.quantize(x))),
        [2, 4, -2, 127, -128, 0]
    );
}

#[test]
fn accumulator_overflow_is_counted_and_saturated() {
    // k = 66311 is the deepest i32-safe dot product: 66311·255·127 = 2 147 481 735 ≤ 2^31 - 1; a bias pushes it over.
    let k = 66311;
    assert!(kernels::fits_i32(k) && !kernels::fits_i32(k + 1));
    let w = vec![127i8; k];
    let x = vec![255u8; k];
    for path in available_paths() {
        let packed = vec![PackedWeights::new(1, k, &w)];
        let lw = LayerWeights {
            cout: 1,
            groups: 1,
            depthwise: false,
            codes: &w,
            packed: &packed,
            asym: false,
        };
        let (mut acc, mut asum) = (vec![0i32; 1], vec![0i32; 1]);
        let mut sc = KernelScratch::default();
        let ov = kernels::linear_acc(path, &x, 1, 0, &lw, &[0], &mut sc, &mut acc, &mut asum);
        assert_eq!((ov, acc[0]), (0, 2_147_481_735));
        let ov = kernels::linear_acc(path, &x, 1, 0, &lw, &[10_000], &mut sc, &mut acc, &mut asum);
        assert_eq!((ov, acc[0]), (1, i32::MAX));
    }
    // Deeper than i32-safe: the exact i64 path, saturated and counted.
    let k = 70_000;
    let w = vec![-127i8; k];
    let x = vec![255u8; k];
    let packed = vec![PackedWeights::new(1, k, &w)];
    let lw = LayerWeights {
        cout: 1,
        groups: 1,
        depthwise: false,
        codes: &w,
        packed: &packed,
        asym: false,
    };
    let (mut acc, mut asum) = (vec![0i32; 1], vec![0i32; 1]);
    let mut sc = KernelScratch::default();
    let ov = kernels::linear_acc(
        Path::best(),
        &x,
        1,
        0,
        &lw,
        &[0],
        &mut sc,
        &mut acc,
        &mut asum,
    );
    assert_eq!((ov, acc[0]), (1, i32::MIN));
}

#[test]
fn weight_integers_reproduce_the_float_decoder() {
    for cfg in [
        QuantConfig::rquant(8),
        QuantConfig::rquant(4),
        QuantConfig::rquant(2),
        QuantConfig::normal(8),
        QuantConfig::normal(3),
        QuantConfig::rquant(8).with_w_max(0.1),
        QuantConfig {
            signed: true,
            ..QuantConfig::normal(8)
        },
        QuantConfig::normal(8).with_granularity(crate::quant::Granularity::Global),
    ] {
        let w: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 64) as f32 - 20.0) / 200.0)
            .collect();
        let qt = crate::quant::quantize(&w, &[4, 16], &cfg).unwrap();
        let l = (1i32 << (cfg.bits - 1)) - 1;
        let all: Vec<u8> = (0..=255u8).collect();
        for codec in qt.codecs() {
            let wc = WeightCodes::from_codes(&cfg, std::slice::from_ref(codec), 256, &all, 1);
            let (lo, hi) = (codec.range().lo as f64, codec.range().hi as f64);
            for b in 0..=255u8 {
                let v = if cfg.signed { b as i8 as i64 } else { b as i64 };
                let k = code_to_k(&cfg, b) as i64;
                assert!(k.abs() <= l as i64);
                let int_w = wc.s[0] * k as f64 + wc.c[0];
                let dec = codec.decode(v) as f64;
                // Identical up to f32 rounding, except the decoder's clamp of the extreme codes (ε/(1+ε) of a
                // half range, docs/datapath.md#weights).
                let tol = if k.abs() == l as i64 {
                    0.0006 * (hi - lo).abs() + 1e-6
                } else {
                    1e-5 * (hi - lo).abs() + 1e-7
                };
                assert!(
                    (int_w - dec).abs() <= tol,
                    "{}: byte {b} k {k}: {int_w} vs {dec}",
                    cfg.describe()
                );
            }
        }
    }
}

/// Models of the engine tests with the quantization block replaced.
fn models(dir: &std::path::Path) -> Vec<Model> {
    let schemes = [
        None,
        Some("bits = 8\ngranularity = \"channel\"\nsymmetric = true\nsigned = true\nrounding = true\n"),
        Some("bits = 4\ngranularity = \"layer\"\nsymmetric = true\nsigned = false\nrounding = false\n"),
    ];
    let mut out = Vec::new();
    for (i, (toml, tensors)) in [
        (SMALL_TOML, small_tensors()),
        (RESIDUAL_TOML, residual_tensors()),
    ]
    .into_iter()
    .enumerate()
    {
        for (j, s) in schemes.iter().enumerate() {
            let t = match s {
                None => toml.to_string(),
                Some(s) => {
                    let a = toml.find("[quantization]\n").unwrap() + "[quantization]\n".len();
                    let e = a + toml[a..].find("\n[").unwrap() + 1;
                    format!("{}{}{}", &toml[..a], s, &toml[e..])
                }
            };
            let p = write_model(dir, &format!("m{i}{j}"), &t, &tensors);
            out.push(Model::load(&p).unwrap());
        }
    }
    out
}

fn logits(net: &Int8Network, x: &ndarray::Array4<f32>, store: &dyn ActivationStore) -> Vec<f32> {
    net.forward(x.view(), store, 0)
        .unwrap()
        .into_raw_vec_and_offset()
        .0
}

#[test]
fn networks_agree_with_float_and_across_paths_threads_and_modes() {
    let d = tempfile::tempdir().unwrap();
    for model in models(d.path()) {
        let fnet = Network::from_model(&model);
        let calib = input(200, fnet.input_shape(), 11);
        let x = input(70, fnet.input_shape(), 3);
        let f = fnet.forward(x.view()).into_raw_vec_and_offset().0;
        let base = Int8Network::build(
            &model,
            calib.view(),
            Int8Options {
                requant: RequantMode::Float,
                path: Path::Portable,
            },
        )
        .unwrap();
        let l0 = logits(&base, &x, &Reliable);
        // Close to the float engine (8-bit activations: a few percent of the logit range).
        let range = f.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
        let err = f
            .iter()
            .zip(&l0)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            err <= 0.1 * range,
            "{}: int8 differs from float by {err} (range {range})",
            model.manifest().name
        );
        for path in available_paths() {
            let net = Int8Network::build(
                &model,
                calib.view(),
                Int8Options {
                    requant: RequantMode::Float,
                    path,
                },
            )
            .unwrap();
            assert_eq!(logits(&net, &x, &Reliable), l0, "{}", path.name());
        }
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            assert_eq!(pool.install(|| logits(&base, &x, &Reliable)), l0);
        }
        // Examples alone give the same logits as in a batch.
        let one = logits(
            &base,
            &x.slice(ndarray::s![33..34, .., .., ..]).to_owned(),
            &Reliable,
        );
        assert_eq!(one, l0[33 * base.classes()..34 * base.classes()]);
        let fx = Int8Network::build(
            &model,
            calib.view(),
            Int8Options {
                requant: RequantMode::FixedPoint,
                path: Path::best(),
            },
        )
        .unwrap();
        let lf = logits(&fx, &x, &Reliable);
        let err = lf
            .iter()
            .zip(&l0)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err <= 0.1 * range, "fixed point differs by {err}");
        assert_eq!(base.overflow_count(), 0);
    }
}

/// Records every read-back call; optionally flips bit 0 of every byte of one layer's map.
struct Recorder {
    calls: Mutex<Vec<StoredMap>>,
    flip_layer: Option<usize>,
}

impl ActivationStore for Recorder {
    fn read_back(&self, map: &StoredMap, codes: &mut [u8]) {
        assert_eq!(codes.len(), map.shape.iter().product::<usize>());
        self.calls.lock().unwrap().push(*map);
        if Some(map.layer) == self.flip_layer {
            codes.iter_mut().for_each(|c| *c ^= 1);
        }
    }
}

#[test]
fn every_stored_input_map_is_read_back() {
    let d = tempfile::tempdir().unwrap();
    let model = &models(d.path())[3]; // the residual network
    let fnet = Network::from_model(model);
    let calib = input(100, fnet.input_shape(), 1);
    let x = input(40, fnet.input_shape(), 2);
    let net = Int8Network::build(model, calib.view(), Int8Options::default()).unwrap();
    let clean = logits(&net, &x, &Reliable);
    let rec = Recorder {
        calls: Mutex::new(Vec::new()),
        flip_layer: None,
    };
    // A store that changes nothing but is not marked reliable: the same logits through the copy path.
    let first = 5u64;
    let got = net
        .forward(x.view(), &rec, first)
        .unwrap()
        .into_raw_vec_and_offset()
        .0;
    assert_eq!(got, clean);
    let calls = rec.calls.into_inner().unwrap();
    let g = model.graph();
    // Every step reads each of its inputs once per example, with the layer's input shape and the image index.
    for st in &net.steps {
        for (j, &v) in g.inputs[st.layer].iter().enumerate() {
            let shape = super::chw(g.value_shape(v));
            for e in 0..40u64 {
                let n = calls
                    .iter()
                    .filter(|m| m.layer == st.layer && m.shape == shape && m.image == first + e)
                    .count();
                let same = g.inputs[st.layer]
                    .iter()
                    .filter(|&&u| g.value_shape(u) == g.value_shape(v))
                    .count();
                assert_eq!(n, same, "layer {} input {j} image {e}", st.layer);
            }
        }
    }
    assert_eq!(calls.iter().filter(|m| m.layer == 0).count(), 40);
    // Corrupting the first layer's stored input changes the logits.
    let flip = Recorder {
        calls: Mutex::new(Vec::new()),
        flip_layer: Some(0),
    };
    assert_ne!(logits(&net, &x, &flip), clean);
}

#[test]
fn faulty_weight_codes_reach_the_integer_engine() {
    let d = tempfile::tempdir().unwrap();
    for model in models(d.path()) {
        let fnet = Network::from_model(&model);
        let calib = input(100, fnet.input_shape(), 1);
        let x = input(40, fnet.input_shape(), 2);
        let mut net = Int8Network::build(&model, calib.view(), Int8Options::default()).unwrap();
        let clean = logits(&net, &x, &Reliable);
        // Flip the top stored bit of every code of the last weight tensor.
        let last = net.wl.last().unwrap().weight;
        let mut image = model.memory_image().to_vec();
        let bit = 1u8 << (model.quant_config().storage_bits() - 1);
        for b in &mut image[model.image_range(last)] {
            *b ^= bit;
        }
        net.set_weights_from_image(&model, &image, Some(&[last]))
            .unwrap();
        let cfg = model.quant_config();
        let wl = net.wl.last().unwrap();
        for (k, &b) in wl.codes.k.iter().zip(&image[model.image_range(last)]) {
            assert_eq!(*k, code_to_k(cfg, b));
        }
        assert_ne!(logits(&net, &x, &Reliable), clean);
        net.set_weights_from_image(&model, model.memory_image(), None)
            .unwrap();
        assert_eq!(logits(&net, &x, &Reliable), clean);
    }
}

#[test]
fn wide_codes_are_refused() {
    let cfg = QuantConfig {
        bits: 16,
        signed: true,
        ..QuantConfig::normal(8)
    };
    let e = weights::check_scheme(&cfg, 2).unwrap_err().to_string();
    assert!(e.contains("at most 8 bits") && e.contains("allowed"), "{e}");
}

#[test]
fn interleave4_simd_equals_portable_for_every_length() {
    use super::kernels::{interleave4, interleave4_portable};
    let mut state = 7u32;
    let mut byte = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 24) as u8
    };
    for n in 0..70 {
        let rows: Vec<Vec<u8>> = (0..4).map(|_| (0..n).map(|_| byte()).collect()).collect();
        let (mut a, mut b) = (vec![0u8; 4 * n], vec![1u8; 4 * n]);
        interleave4(&rows[0], &rows[1], &rows[2], &rows[3], &mut a);
        interleave4_portable(&rows[0], &rows[1], &rows[2], &rows[3], &mut b);
        assert_eq!(a, b, "n = {n}");
        for p in 0..n {
            for j in 0..4 {
                assert_eq!(a[4 * p + j], rows[j][p]);
            }
        }
    }
}

#[test]
fn im2col_forms_and_their_column_sums_equal_the_definition() {
    use super::kernels::{column_sums, im2col_packed, padded_depth, quad_index};
    use crate::engine::kernels::Window;
    // 30 channels x 3 x 3 = 270 depths > 257 (the u16 partial sums of the strided form); all bytes 255 at the
    // extreme; unit and non-unit strides, padding, dilation.
    for fill in [None, Some(255u8)] {
        for (sh, sw, dh, dw) in [(1, 1, 1, 1), (2, 1, 1, 2), (1, 2, 2, 1), (2, 2, 1, 1)] {
            let (c, h, w, kh, kw, ph, pw) = (30, 7, 6, 3, 3, 1, 2);
            let oh = (h + 2 * ph - (dh * (kh - 1) + 1)) / sh + 1;
            let ow = (w + 2 * pw - (dw * (kw - 1) + 1)) / sw + 1;
            let g = Window {
                c,
                h,
                w,
                kh,
                kw,
                sh,
                sw,
                ph,
                pw,
                dh,
                dw,
                oh,
                ow,
            };
            let x: Vec<u8> = (0..c * h * w)
                .map(|i| fill.unwrap_or((i * 37 % 251) as u8))
                .collect();
            let (mut scratch, mut cols, mut cs) = (Vec::new(), Vec::new(), Vec::new());
            let lay = im2col_packed(&x, &g, 7, &mut scratch, &mut cols, Some(&mut cs), false);
            assert_eq!((lay.n, lay.pitch), (oh * ow, ow));
            let k = c * kh * kw;
            let n = oh * ow;
            for kk in 0..padded_depth(k) {
                for p in 0..n {
                    let want = if kk >= k {
                        0
                    } else {
                        let (ci, ki, kj) = (kk / (kh * kw), kk / kw % kh, kk % kw);
                        let (oy, ox) = (p / ow, p % ow);
                        let iy = (oy * sh + ki * dh) as isize - ph as isize;
                        let ix = (ox * sw + kj * dw) as isize - pw as isize;
                        if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                            7
                        } else {
                            x[ci * h * w + iy as usize * w + ix as usize]
                        }
                    };
                    assert_eq!(
                        cols[quad_index(kk, p, n)],
                        want,
                        "{sh} {sw} {dh} {dw}: k {kk} p {p}"
                    );
                }
            }
            let mut want = Vec::new();
            column_sums(&cols, padded_depth(k), n, &mut want);
            assert_eq!(cs, want, "{sh} {sw} {dh} {dw}");
            // The pitched form (unit strides only) holds the same values at column oy·pitch + ox.
            let (mut s2, mut c2) = (Vec::new(), Vec::new());
            let lay = im2col_packed(&x, &g, 7, &mut s2, &mut c2, None, true);
            if sh == 1 && sw == 1 {
                assert!(lay.pitch > ow && lay.n == (oh - 1) * lay.pitch + ow);
            } else {
                assert_eq!((lay.n, lay.pitch), (oh * ow, ow));
            }
            for kk in 0..padded_depth(k) {
                for p in 0..n {
                    let (oy, ox) = (p / ow, p % ow);
                    assert_eq!(
                        c2[quad_index(kk, oy * lay.pitch + ox, lay.n)],
                        cols[quad_index(kk, p, n)]
                    );
                }
            }
        }
    }
}

#[test]
fn max_pairs_and_pooling_forms_equal_the_definition() {
    use super::kernels::{max_pairs, max_pool, max_pool_portable};
    use crate::engine::kernels::Window;
    for n in 0..50 {
        let v = bytes(2 * n, n as u64);
        let mut o = vec![0u8; n];
        max_pairs(&v, &mut o);
        assert!(o
            .iter()
            .enumerate()
            .all(|(i, &m)| m == v[2 * i].max(v[2 * i + 1])));
    }
    // Even and odd widths and heights, against the definition.
    // Rows wider than one 64-byte step (130: two full steps and a tail) for the AVX-512 path.
    for (h, w) in [
        (28, 28),
        (14, 14),
        (7, 7),
        (5, 9),
        (6, 10),
        (4, 70),
        (3, 130),
    ] {
        let g = Window {
            c: 3,
            h,
            w,
            kh: 2,
            kw: 2,
            sh: 2,
            sw: 2,
            ph: 0,
            pw: 0,
            dh: 1,
            dw: 1,
            oh: h / 2,
            ow: w / 2,
        };
        let x = bytes(3 * h * w, (h * w) as u64);
        let mut o = vec![0u8; 3 * g.out_hw()];
        max_pool(&x, &g, &mut o, &mut Default::default());
        let mut op = vec![0u8; 3 * g.out_hw()];
        max_pool_portable(&x, &g, &mut op, &mut Default::default());
        assert_eq!(
            o, op,
            "dispatched and portable max pooling differ at {h}x{w}"
        );
        for c in 0..3 {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let at = |y: usize, xx: usize| x[c * h * w + y * w + xx];
                    let m = at(2 * oy, 2 * ox)
                        .max(at(2 * oy, 2 * ox + 1))
                        .max(at(2 * oy + 1, 2 * ox))
                        .max(at(2 * oy + 1, 2 * ox + 1));
                    assert_eq!(o[c * g.out_hw() + oy * g.ow + ox], m, "{h}x{w}");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The dispatched (AVX-512 / AVX2) quantize and dequantize loops equal the scalar definitions bit for bit,
    /// including NaN, infinities, ties and values far outside the code range.
    #[test]
    fn quantize_and_dequantize_dispatched_equal_the_definition(
        xs in proptest::collection::vec(prop_oneof![any::<f32>(), -300.0f32..300.0, Just(f32::NAN), Just(2.5f32)], 0..90),
        acc in proptest::collection::vec(any::<i32>(), 90),
        sums in proptest::collection::vec(-100_000i32..100_000, 90),
        q in qparams(),
        unit in 1e-6f32..1.0,
        cunit in prop_oneof![Just(0.0f32), -1e-3f32..1e-3],
    ) {
        let mut out = vec![0u8; xs.len()];
        super::simd::quantize_slice(q, &xs, &mut out);
        for (i, &x) in xs.iter().enumerate() {
            prop_assert_eq!(out[i], q.quantize(x), "x = {}", x);
        }
        let n = xs.len();
        let mut f = vec![0.0f32; n];
        super::simd::dequant_row(&acc[..n], &sums[..n], unit, cunit, &mut f);
        for i in 0..n {
            let want = if cunit == 0.0 { acc[i] as f32 * unit } else { acc[i] as f32 * unit + sums[i] as f32 * cunit };
            prop_assert_eq!(f[i].to_bits(), want.to_bits());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The identity the PPU relies on to fold a final ReLU into the quantizer: `quantize(max(x, 0))` equals
    /// `max(quantize(x), z)` for every value (NaN included) and both code types.
    #[test]
    fn relu_then_quantize_equals_floored_codes(
        xs in proptest::collection::vec(prop_oneof![any::<f32>(), -50.0f32..50.0, Just(f32::NAN), Just(-0.0f32)], 0..64),
        q in qparams(),
    ) {
        let mut relu = xs.clone();
        crate::engine::kernels::relu(&mut relu);
        let mut a = vec![0u8; xs.len()];
        super::simd::quantize_slice(q, &relu, &mut a);
        let mut b = vec![0u8; xs.len()];
        super::simd::quantize_slice(q, &xs, &mut b);
        super::simd::floor_codes(q, &mut b);
        prop_assert_eq!(a, b);
    }
}

/// A store whose partial sums "fail" by a known rule, checking the fold sums the engine hands it: every
/// output's `partials` must equal `expect[output]` (the definition's fold sums); the returned correction of
/// output `e` is `delta(e)`.
struct PsumOracle {
    rows: usize,
    folds: usize,
    /// What `psum_cells` answers (1: the direct form; all outputs: the GEMM form when `rows % 4 == 0`).
    hits: u64,
    expect: Vec<Vec<i64>>,
    delta: fn(usize) -> i64,
    checked: Mutex<usize>,
}

impl ActivationStore for PsumOracle {
    fn read_back(&self, _map: &StoredMap, _codes: &mut [u8]) {}
    fn psum_rows(&self) -> Option<usize> {
        Some(self.rows)
    }
    fn psum_cells(&self, _map: &crate::engine::act_store::StoredPsums) -> u64 {
        self.hits
    }
    fn corrupt_psums(
        &self,
        map: &crate::engine::act_store::StoredPsums,
        partials: &mut dyn FnMut(usize, &mut [i32]),
        out: &mut crate::engine::act_store::PsumCorrections,
    ) {
        assert_eq!((map.folds, map.outputs), (self.folds, self.expect.len()));
        out.deltas.clear();
        out.saturated = 0;
        let mut part = vec![0i32; map.folds];
        for (e, want) in self.expect.iter().enumerate() {
            partials(e, &mut part);
            let got: Vec<i64> = part.iter().map(|&v| v as i64).collect();
            assert_eq!(&got, want, "fold sums of output {e}");
            out.deltas.push((e, (self.delta)(e)));
        }
        *self.checked.lock().unwrap() += 1;
    }
}

/// Fold sums of the definition: output `(co, oy, ox)`, depth `k = (ci·kh + ki)·kw + kj` of its group, fold
/// `k div rows`; the stored code's integer times the weight code, padding taps holding the zero point.
fn fold_sums_conv(
    x: &[u8],
    q: QParams,
    g: &Window,
    cout: usize,
    groups: usize,
    k: &[i8],
    rows: usize,
) -> Vec<Vec<i64>> {
    let (cg, og) = (g.c / groups, cout / groups);
    let depth = cg * g.kh * g.kw;
    let mut out = Vec::new();
    for co in 0..cout {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let mut f = vec![0i64; depth.div_ceil(rows)];
                for ci in 0..cg {
                    for ki in 0..g.kh {
                        for kj in 0..g.kw {
                            let d = (ci * g.kh + ki) * g.kw + kj;
                            let iy = (oy * g.sh + ki * g.dh) as i64 - g.ph as i64;
                            let ix = (ox * g.sw + kj * g.dw) as i64 - g.pw as i64;
                            let c = (co / og) * cg + ci;
                            let xv = if iy < 0 || ix < 0 || iy >= g.h as i64 || ix >= g.w as i64 {
                                q.zero as i64
                            } else {
                                q.code_of(x[(c * g.h + iy as usize) * g.w + ix as usize]) as i64
                            };
                            f[d / rows] += xv * k[co * depth + d] as i64;
                        }
                    }
                }
                out.push(f);
            }
        }
    }
    out
}

fn wlayer(cout: usize, groups: usize, k: usize, codes: Vec<i8>, q: QParams) -> WLayer {
    WLayer {
        weight: 0,
        bias: None,
        cout,
        groups,
        k,
        depthwise: false,
        codes: WeightCodes {
            k: codes,
            s: vec![1.0; cout],
            c: vec![0.0; cout],
        },
        packed: Vec::new(),
        fold_packed: Default::default(),
        bias_i32: vec![0; cout],
        qin: q,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The engine hands the store each output's fold sums of the definition (groups, padding, strides,
    /// dilation, signed and unsigned codes) and adds the store's corrections to the accumulators, saturating.
    #[test]
    fn partial_sum_folds_equal_the_definition(
        (g, cout, groups) in window(), q in qparams(), rows in 1usize..9, many in any::<bool>(),
        seed in any::<u64>()
    ) {
        let depth = g.c / groups * g.kh * g.kw;
        prop_assume!(depth.div_ceil(rows) >= 2);
        let x = bytes(g.in_len(), seed);
        let xu: Vec<u8> = x.iter().map(|&b| if q.signed { b ^ 0x80 } else { b }).collect();
        let k = codes(cout * depth, seed ^ 7);
        let w = wlayer(cout, groups, depth, k.clone(), q);
        let n = cout * g.out_hw();
        for path in available_paths() {
            let oracle = PsumOracle {
                rows,
                folds: depth.div_ceil(rows),
                hits: if many { n as u64 } else { 1 },
                expect: fold_sums_conv(&x, q, &g, cout, groups, &k, rows),
                delta: |e| if e % 3 == 0 { i64::MAX / 2 } else { e as i64 - 5 },
                checked: Mutex::new(0),
            };
            let images = [9u64];
            let ctx = psums::PsumCtx { store: &oracle, rows, images: &images, path };
            let acc0: Vec<i32> = (0..n as i32).map(|v| v * 1000 - 77).collect();
            let mut acc = acc0.clone();
            let mut sc = Default::default();
            let sat = psums::conv(&ctx, 4, 0, q, &g, &w, &xu, &mut acc, &mut sc);
            prop_assert_eq!(*oracle.checked.lock().unwrap(), 1);
            for e in 0..n {
                let want = if e % 3 == 0 { i32::MAX } else { acc0[e] + e as i32 - 5 };
                prop_assert_eq!(acc[e], want);
            }
            prop_assert_eq!(sat, n.div_ceil(3) as u64);
        }
    }

    /// The same for a linear layer (depth = input features).
    #[test]
    fn linear_partial_sum_folds_equal_the_definition(
        cout in 1usize..6, kin in 2usize..40, q in qparams(), rows in 1usize..9, many in any::<bool>(),
        seed in any::<u64>()
    ) {
        prop_assume!(kin.div_ceil(rows) >= 2);
        let x = bytes(kin, seed);
        let xu: Vec<u8> = x.iter().map(|&b| if q.signed { b ^ 0x80 } else { b }).collect();
        let k = codes(cout * kin, seed ^ 3);
        let w = wlayer(cout, 1, kin, k.clone(), q);
        let expect: Vec<Vec<i64>> = (0..cout)
            .map(|co| {
                let mut f = vec![0i64; kin.div_ceil(rows)];
                for d in 0..kin {
                    f[d / rows] += q.code_of(x[d]) as i64 * k[co * kin + d] as i64;
                }
                f
            })
            .collect();
        for path in available_paths() {
            let oracle = PsumOracle {
                rows,
                folds: kin.div_ceil(rows),
                hits: if many { cout as u64 } else { 1 },
                expect: expect.clone(),
                delta: |e| -(e as i64) - 1,
                checked: Mutex::new(0),
            };
            let images = [0u64];
            let ctx = psums::PsumCtx { store: &oracle, rows, images: &images, path };
            let mut acc = vec![0i32; cout];
            let mut sc = Default::default();
            let sat = psums::linear(&ctx, 2, 0, q, &w, &xu, &mut acc, &mut sc);
            prop_assert_eq!(sat, 0);
            prop_assert_eq!(acc, (0..cout as i32).map(|e| -e - 1).collect::<Vec<_>>());
        }
    }
}

/// A reduction that fits one fold never stores partial sums, and a store with no faulty cell under them is not
/// asked: the accumulators stay as they are.
#[test]
fn single_fold_or_fault_free_reductions_are_left_alone() {
    let q = QParams {
        scale: 0.1,
        zero: 3,
        signed: false,
    };
    let w = wlayer(2, 1, 16, vec![1; 32], q);
    for (folds, hits) in [(1usize, 2u64), (2, 0)] {
        let rows = 16 / folds;
        let oracle = PsumOracle {
            rows,
            folds,
            hits,
            expect: Vec::new(),
            delta: |_| 1,
            checked: Mutex::new(0),
        };
        let images = [0u64];
        let ctx = psums::PsumCtx {
            store: &oracle,
            rows,
            images: &images,
            path: Path::Portable,
        };
        let mut acc = vec![5i32; 2];
        let mut sc = Default::default();
        assert_eq!(
            psums::linear(&ctx, 0, 0, q, &w, &[1u8; 16], &mut acc, &mut sc),
            0
        );
        assert_eq!((acc, *oracle.checked.lock().unwrap()), (vec![5, 5], 0));
    }
}

/// A store whose partial sums "fail" by a known rule and that records every fold sum it is handed, per image:
/// `(image, output, fold sums)`; the correction of output `e` of image `i` is `(e + 3·i) − 40`.
struct PsumRecorder {
    rows: usize,
    hits: u64,
    seen: Mutex<Vec<(u64, usize, Vec<i64>)>>,
}

impl ActivationStore for PsumRecorder {
    fn read_back(&self, _map: &StoredMap, _codes: &mut [u8]) {}
    fn psum_rows(&self) -> Option<usize> {
        Some(self.rows)
    }
    fn psum_cells(&self, _map: &crate::engine::act_store::StoredPsums) -> u64 {
        self.hits
    }
    fn corrupt_psums(
        &self,
        map: &crate::engine::act_store::StoredPsums,
        partials: &mut dyn FnMut(usize, &mut [i32]),
        out: &mut crate::engine::act_store::PsumCorrections,
    ) {
        out.deltas.clear();
        out.saturated = 0;
        let mut part = vec![0i32; map.folds];
        let mut seen = self.seen.lock().unwrap();
        for e in 0..map.outputs {
            partials(e, &mut part);
            seen.push((map.image, e, part.iter().map(|&v| v as i64).collect()));
            out.deltas.push((e, (e as i64 + 3 * map.image as i64) - 40));
        }
    }
}

/// `v` plus the recorder's correction, saturated, and whether it saturated.
fn corrected(v: i32, e: usize, image: u64) -> (i32, bool) {
    reference::saturate_i32(v as i64 + (e as i64 + 3 * image as i64) - 40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The fold-writing GEMM gives `gemm`'s sums, and fold sums of the definition (depths `4·quads·f ..`), on
    /// every path, for edge shapes (one row, one column, column tails, one fold, a short last fold).
    #[test]
    fn gemm_folds_equal_gemm_and_the_fold_definition(
        m in 1usize..10, k in 1usize..70, n in 1usize..70, quads in 1usize..6, extra in 0usize..3,
        seed in any::<u64>()
    ) {
        let w = codes(m * k, seed);
        let x = bytes(n * k, seed ^ 11);
        let pw = PackedWeights::new(m, k, &w);
        let mut b = Vec::new();
        kernels::pack_rows(&x, n, k, &mut b);
        let nf = kernels::fold_count(pw.kp, quads);
        prop_assert_eq!(nf, k.div_ceil(4 * quads));
        let stride = m * n + extra;
        let mut want = vec![0i64; nf * stride];
        for f in 0..nf {
            for r in 0..m {
                for p in 0..n {
                    want[f * stride + r * n + p] = (4 * quads * f..(4 * quads * (f + 1)).min(k))
                        .map(|d| w[r * k + d] as i64 * x[p * k + d] as i64)
                        .sum();
                }
            }
        }
        let mut whole = vec![0i32; m * n];
        kernels::gemm(Path::Portable, &pw, &b, n, &mut whole);
        for path in available_paths() {
            let mut c = vec![7i32; m * n];
            let mut parts = vec![0i32; nf * stride];
            for f in 0..nf {
                parts[f * stride + m * n..(f + 1) * stride].fill(-3);
            }
            let fo = kernels::FoldOut { quads, parts: &mut parts, stride };
            kernels::gemm_folds(path, &pw, &b, n, &mut c, fo);
            prop_assert_eq!(&c, &whole, "{:?}", path);
            for f in 0..nf {
                for i in 0..stride {
                    let got = parts[f * stride + i] as i64;
                    let exp = if i < m * n { want[f * stride + i] } else { -3 };
                    prop_assert_eq!(got, exp, "{:?} fold {} at {}", path, f, i);
                }
            }
        }
    }

    /// A conv step with partial-sum faults on the fused form (fold sums written by the accumulation GEMM) gives
    /// the accumulators of the plain kernels plus the store's corrections, and hands the store the fold sums of
    /// the definition; the same with few outputs hit (fold sums computed apart).
    #[test]
    fn fused_conv_partial_sums_equal_the_definition(
        (g, cout, groups) in window(), q in qparams(), quads in 1usize..3, many in any::<bool>(),
        big_bias in any::<bool>(), seed in any::<u64>()
    ) {
        let rows = 4 * quads;
        let depth = g.c / groups * g.kh * g.kw;
        prop_assume!(depth.div_ceil(rows) >= 2);
        let x = bytes(g.in_len(), seed);
        let xu: Vec<u8> = x.iter().map(|&b| if q.signed { b ^ 0x80 } else { b }).collect();
        let k = codes(cout * depth, seed ^ 7);
        let og = cout / groups;
        let mut w = wlayer(cout, groups, depth, k.clone(), q);
        w.packed = (0..groups)
            .map(|gi| PackedWeights::new(og, depth, &k[gi * og * depth..(gi + 1) * og * depth]))
            .collect();
        // A huge bias makes the kernels take their exact i64 path (no fold sums from the GEMM).
        w.bias_i32 = (0..cout as i32).map(|c| if big_bias { i32::MAX - c } else { c * 13 - 40 }).collect();
        let n = cout * g.out_hw();
        let want_folds = fold_sums_conv(&x, q, &g, cout, groups, &k, rows);
        for path in available_paths() {
            let rec = PsumRecorder { rows, hits: if many { n as u64 } else { 1 }, seen: Mutex::new(Vec::new()) };
            let images = [4u64, 9];
            let ctx = psums::PsumCtx { store: &rec, rows, images: &images, path };
            let lw = LayerWeights { cout, groups, depthwise: false, codes: &k, packed: &w.packed, asym: false };
            let mut ks = KernelScratch::default();
            let (mut acc0, mut asum0) = (vec![0i32; n], vec![0i32; groups * g.out_hw()]);
            let ov0 = kernels::conv_acc(path, &xu, q.zero_u(), &g, &lw, &w.bias_i32, &mut ks, &mut acc0, &mut asum0);
            let (mut acc, mut asum) = (vec![0i32; n], vec![0i32; groups * g.out_hw()]);
            let mut sc = Default::default();
            let ov = psums::conv_step(&ctx, 4, 1, q, &g, &w, &lw, &xu, &mut ks, &mut acc, &mut asum, &mut sc);
            let mut sat = ov0;
            for e in 0..n {
                let (v, s) = corrected(acc0[e], e, 9);
                prop_assert_eq!(acc[e], v, "{:?} output {}", path, e);
                sat += s as u64;
            }
            prop_assert_eq!(ov, sat);
            let seen = rec.seen.into_inner().unwrap();
            prop_assert_eq!(seen.len(), n);
            for (image, e, f) in seen {
                prop_assert_eq!(image, 9);
                prop_assert_eq!(&f, &want_folds[e], "{:?} fold sums of output {}", path, e);
            }
        }
    }

    /// The same for a linear step over several examples (each example's table at its own offset).
    #[test]
    fn fused_linear_partial_sums_equal_the_definition(
        cout in 1usize..7, kin in 2usize..60, b in 1usize..5, q in qparams(), quads in 1usize..3,
        many in any::<bool>(), seed in any::<u64>()
    ) {
        let rows = 4 * quads;
        prop_assume!(kin.div_ceil(rows) >= 2);
        let x = bytes(b * kin, seed);
        let xu: Vec<u8> = x.iter().map(|&v| if q.signed { v ^ 0x80 } else { v }).collect();
        let k = codes(cout * kin, seed ^ 3);
        let mut w = wlayer(cout, 1, kin, k.clone(), q);
        w.packed = vec![PackedWeights::new(cout, kin, &k)];
        w.bias_i32 = (0..cout as i32).map(|c| c * 5 - 9).collect();
        for path in available_paths() {
            let rec = PsumRecorder { rows, hits: if many { cout as u64 } else { 1 }, seen: Mutex::new(Vec::new()) };
            let images: Vec<u64> = (0..b as u64).map(|e| 20 + e).collect();
            let ctx = psums::PsumCtx { store: &rec, rows, images: &images, path };
            let lw = LayerWeights { cout, groups: 1, depthwise: false, codes: &k, packed: &w.packed, asym: false };
            let mut ks = KernelScratch::default();
            let (mut acc0, mut asum0) = (vec![0i32; b * cout], vec![0i32; b]);
            let ov0 = kernels::linear_acc(path, &xu, b, q.zero_u(), &lw, &w.bias_i32, &mut ks, &mut acc0, &mut asum0);
            let (mut acc, mut asum) = (vec![0i32; b * cout], vec![0i32; b]);
            let mut sc = Default::default();
            let ov = psums::linear_step(&ctx, 2, q, &w, &lw, &xu, b, &mut ks, &mut acc, &mut asum, &mut sc);
            let mut sat = ov0;
            for e in 0..b {
                for j in 0..cout {
                    let (v, s) = corrected(acc0[e * cout + j], j, images[e]);
                    prop_assert_eq!(acc[e * cout + j], v);
                    sat += s as u64;
                }
            }
            prop_assert_eq!(ov, sat);
            let seen = rec.seen.into_inner().unwrap();
            prop_assert_eq!(seen.len(), b * cout);
            for (image, j, f) in seen {
                let e = (image - 20) as usize;
                let want: Vec<i64> = (0..kin.div_ceil(rows))
                    .map(|fi| {
                        (fi * rows..((fi + 1) * rows).min(kin))
                            .map(|d| q.code_of(x[e * kin + d]) as i64 * k[j * kin + d] as i64)
                            .sum()
                    })
                    .collect();
                prop_assert_eq!(f, want, "{:?} example {} output {}", path, e, j);
            }
        }
    }
}

/// A store whose every partial sum "fails" by a rule of its fold sums (`Σ_f (f + 1)·P_f mod 997`), so that fold
/// sums from stale weights would change the logits.
struct FoldHash;

impl ActivationStore for FoldHash {
    fn read_back(&self, _map: &StoredMap, _codes: &mut [u8]) {}
    fn psum_rows(&self) -> Option<usize> {
        Some(4)
    }
    fn psum_cells(&self, map: &crate::engine::act_store::StoredPsums) -> u64 {
        map.outputs as u64
    }
    fn corrupt_psums(
        &self,
        map: &crate::engine::act_store::StoredPsums,
        partials: &mut dyn FnMut(usize, &mut [i32]),
        out: &mut crate::engine::act_store::PsumCorrections,
    ) {
        out.deltas.clear();
        out.saturated = 0;
        let mut part = vec![0i32; map.folds];
        for e in 0..map.outputs {
            partials(e, &mut part);
            let h: i64 = part
                .iter()
                .enumerate()
                .map(|(f, &p)| (f as i64 + 1) * p as i64)
                .sum();
            out.deltas.push((e, h.rem_euclid(997)));
        }
    }
}

/// Weights re-read from a memory image reach the partial-sum fold sums too: a network that ran with faulty
/// partial sums before its weights changed gives what a network that only saw the new weights gives.
#[test]
fn new_weights_reach_the_partial_sum_folds() {
    let d = tempfile::tempdir().unwrap();
    for model in models(d.path()) {
        let fnet = Network::from_model(&model);
        let calib = input(100, fnet.input_shape(), 1);
        let x = input(20, fnet.input_shape(), 2);
        let mut image = model.memory_image().to_vec();
        let bit = 1u8 << (model.quant_config().storage_bits() - 1);
        for b in image.iter_mut().step_by(3) {
            *b ^= bit;
        }
        let mut ran = Int8Network::build(&model, calib.view(), Int8Options::default()).unwrap();
        let before = logits(&ran, &x, &FoldHash);
        ran.set_weights_from_image(&model, &image, None).unwrap();
        let mut fresh = Int8Network::build(&model, calib.view(), Int8Options::default()).unwrap();
        fresh.set_weights_from_image(&model, &image, None).unwrap();
        let after = logits(&ran, &x, &FoldHash);
        assert_eq!(after, logits(&fresh, &x, &FoldHash));
        assert_ne!(after, before);
    }
}
