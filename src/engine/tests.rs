//! Engine tests: kernels against slow, obviously-right f64 references (proptest), and whole networks against a
//! naive graph interpreter that keeps every value (no buffer reuse, no in-place).
use ndarray::{Array4, ArrayView4};
use proptest::prelude::*;

use super::kernels::{self, Window};
use super::*;
use crate::model::tests::{small_tensors, values, write_model, SMALL_TOML};
use crate::model::{LayerKind, Model, Shape};

/// Grouped, dilated convolution straight from the definition (f64 accumulation).
#[allow(clippy::too_many_arguments)]
fn naive_conv(
    x: &[f32],
    b: usize,
    g: &Window,
    cout: usize,
    groups: usize,
    w: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let (cg, og) = (g.c / groups, cout / groups);
    let mut out = vec![0.0; b * cout * g.oh * g.ow];
    for n in 0..b {
        for co in 0..cout {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut acc = bias.map_or(0.0, |bb| bb[co] as f64);
                    for cj in 0..cg {
                        let ci = (co / og) * cg + cj;
                        for ki in 0..g.kh {
                            for kj in 0..g.kw {
                                let iy = (oy * g.sh + ki * g.dh) as isize - g.ph as isize;
                                let ix = (ox * g.sw + kj * g.dw) as isize - g.pw as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let xv =
                                    x[((n * g.c + ci) * g.h + iy as usize) * g.w + ix as usize];
                                let wv = w[((co * cg + cj) * g.kh + ki) * g.kw + kj];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    out[((n * cout + co) * g.oh + oy) * g.ow + ox] = acc as f32;
                }
            }
        }
    }
    out
}

fn naive_pool(x: &[f32], b: usize, g: &Window, max: bool, include_pad: bool) -> Vec<f32> {
    let mut out = vec![0.0; b * g.c * g.oh * g.ow];
    for n in 0..b {
        for c in 0..g.c {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut vals = vec![];
                    for ki in 0..g.kh {
                        for kj in 0..g.kw {
                            let iy = (oy * g.sh + ki) as isize - g.ph as isize;
                            let ix = (ox * g.sw + kj) as isize - g.pw as isize;
                            if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                continue;
                            }
                            vals.push(
                                x[((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize] as f64,
                            );
                        }
                    }
                    out[((n * g.c + c) * g.oh + oy) * g.ow + ox] = if max {
                        vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max) as f32
                    } else {
                        let div = if include_pad { g.kh * g.kw } else { vals.len() };
                        (vals.iter().sum::<f64>() / div as f64) as f32
                    };
                }
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn naive_norm(
    x: &[f32],
    b: usize,
    c: usize,
    hw: usize,
    groups: usize,
    eps: f32,
    w: &[f32],
    bias: &[f32],
    rep: bool,
) -> Vec<f32> {
    let cg = c / groups;
    let mut out = x.to_vec();
    for n in 0..b {
        for g in 0..groups {
            let idx: Vec<usize> = (0..cg * hw).map(|j| (n * c + g * cg) * hw + j).collect();
            let mean = idx.iter().map(|&i| x[i] as f64).sum::<f64>() / idx.len() as f64;
            let var = idx
                .iter()
                .map(|&i| (x[i] as f64 - mean).powi(2))
                .sum::<f64>()
                / idx.len() as f64;
            for &i in &idx {
                let ci = (i / hw) % c;
                let s = if rep {
                    1.0 + w[ci] as f64
                } else {
                    w[ci] as f64
                };
                out[i] =
                    ((x[i] as f64 - mean) / (var + eps as f64).sqrt() * s + bias[ci] as f64) as f32;
            }
        }
    }
    out
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "element {i}: {x} vs {y}"
        );
    }
}

/// A window with dilation 1 and symmetric padding (pooling, dense convolution).
fn window_strategy() -> impl Strategy<Value = (Window, usize, usize)> {
    (
        1usize..4,
        1usize..9,
        1usize..9,
        1usize..4,
        1usize..4,
        1usize..3,
        1usize..3,
        0usize..2,
        0usize..2,
        1usize..5,
        1usize..3,
    )
        .prop_filter_map(
            "window must fit",
            |(c, h, w, kh, kw, sh, sw, ph, pw, cout, b)| {
                let oh = crate::model::graph::window_out(h, kh, sh, ph)?;
                let ow = crate::model::graph::window_out(w, kw, sw, pw)?;
                Some((
                    Window {
                        c,
                        h,
                        w,
                        kh,
                        kw,
                        sh,
                        sw,
                        ph,
                        pw,
                        dh: 1,
                        dw: 1,
                        oh,
                        ow,
                    },
                    cout,
                    b,
                ))
            },
        )
}

/// A grouped convolution: (window with dilation and asymmetric padding, cout, groups, batch).
fn grouped_strategy() -> impl Strategy<Value = (Window, usize, usize, usize)> {
    (
        (1usize..4, 1usize..4, 1usize..3),
        (1usize..10, 1usize..40),
        (1usize..4, 1usize..4),
        (1usize..3, 1usize..3),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3),
        (1usize..3, 1usize..3),
        1usize..3,
    )
        .prop_filter_map(
            "window must fit",
            |((groups, cg, og), (h, w), (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw), b)| {
                let oh = crate::model::graph::window_out_dilated(h, kh, sh, pt, pb, dh)?;
                let ow = crate::model::graph::window_out_dilated(w, kw, sw, pl, pr, dw)?;
                let g = Window {
                    c: groups * cg,
                    h,
                    w,
                    kh,
                    kw,
                    sh,
                    sw,
                    ph: pt,
                    pw: pl,
                    dh,
                    dw,
                    oh,
                    ow,
                };
                Some((g, groups * og, groups, b))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn conv_matches_naive((g, cout, b) in window_strategy(), seed in 0u32..1000, with_bias: bool) {
        let x = values(b * g.in_len(), seed);
        let w = values(cout * g.c * g.kh * g.kw, seed + 1);
        let bias = values(cout, seed + 2);
        let bias = with_bias.then_some(bias.as_slice());
        let mut out = vec![f32::NAN; b * cout * g.out_hw()];
        let mut cols = vec![];
        kernels::conv2d(&x, b, &g, cout, 1, &w, bias, &mut out, &mut cols);
        assert_close(&out, &naive_conv(&x, b, &g, cout, 1, &w, bias), 1e-5);
    }

    /// Grouped and depthwise (one input channel per group, any multiplier) convolutions with dilation and
    /// asymmetric padding against the definition.
    #[test]
    fn grouped_and_depthwise_conv_match_naive((g, cout, groups, b) in grouped_strategy(), seed in 0u32..1000, with_bias: bool) {
        let x = values(b * g.in_len(), seed);
        let w = values(cout * (g.c / groups) * g.kh * g.kw, seed + 1);
        let bias = values(cout, seed + 2);
        let bias = with_bias.then_some(bias.as_slice());
        let mut out = vec![f32::NAN; b * cout * g.out_hw()];
        let mut cols = vec![];
        kernels::conv2d(&x, b, &g, cout, groups, &w, bias, &mut out, &mut cols);
        assert_close(&out, &naive_conv(&x, b, &g, cout, groups, &w, bias), 1e-5);
        // Depthwise of the same geometry (groups = channels).
        let dw_w = values(cout / groups * g.c * g.kh * g.kw, seed + 3);
        let dcout = cout / groups * g.c;
        let dbias = values(dcout, seed + 4);
        let dbias = with_bias.then_some(dbias.as_slice());
        let mut out = vec![f32::NAN; b * dcout * g.out_hw()];
        kernels::conv2d(&x, b, &g, dcout, g.c, &dw_w, dbias, &mut out, &mut cols);
        assert_close(&out, &naive_conv(&x, b, &g, dcout, g.c, &dw_w, dbias), 1e-5);
        // The SIMD-dispatched depthwise kernel gives the portable one's bits.
        let mut base = vec![f32::NAN; b * dcout * g.out_hw()];
        kernels::depthwise_conv2d_baseline(&x, b, &g, dcout, &dw_w, dbias, &mut base);
        let mut fast = vec![f32::NAN; b * dcout * g.out_hw()];
        kernels::depthwise_conv2d(&x, b, &g, dcout, &dw_w, dbias, &mut fast);
        prop_assert_eq!(
            fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            base.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // With the activation fused (ReLU6, as MobileNet's, and a clip narrow enough that both bounds bind):
        // the bits of the activation run after it.
        for act in [
            kernels::Activation::Clip { min: 0.0, max: 6.0 },
            kernels::Activation::Clip { min: -0.05, max: 0.05 },
            kernels::Activation::Relu,
        ] {
            let mut fused = vec![f32::NAN; b * dcout * g.out_hw()];
            kernels::depthwise_conv2d_fused(&x, b, &g, dcout, &dw_w, dbias, Some(act), &mut fused);
            let mut after = fast.clone();
            kernels::activate(&mut after, act);
            prop_assert_eq!(
                fused.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                after.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        // A NaN input reaches the same outputs with the same bits on both paths (and stays NaN through the
        // fused clip, as through `activate`).
        let mut xn = x.clone();
        let at = seed as usize % xn.len();
        xn[at] = f32::NAN;
        let mut base_n = vec![0.0; b * dcout * g.out_hw()];
        kernels::depthwise_conv2d_baseline(&xn, b, &g, dcout, &dw_w, dbias, &mut base_n);
        let act = kernels::Activation::Clip { min: -0.05, max: 0.05 };
        kernels::activate(&mut base_n, act);
        let mut fused_n = vec![0.0; b * dcout * g.out_hw()];
        kernels::depthwise_conv2d_fused(&xn, b, &g, dcout, &dw_w, dbias, Some(act), &mut fused_n);
        prop_assert_eq!(
            fused_n.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            base_n.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    /// Whatever path a dense or grouped convolution takes (one image per GEMM, or several side by side as
    /// small maps with large weights take), each output is the definition's single chain of fused
    /// multiply-adds over `(ci, ki, kj)` in order from the bias: the bits of a portable GEMM on the plain
    /// row-major im2col of each image alone. Batches up to 40 with small maps put up to 40 images side by
    /// side.
    #[test]
    fn conv_paths_keep_the_definition_chain_bit_for_bit(
        (groups, cg, og) in (1usize..3, 1usize..5, 1usize..9),
        (h, w, kh, kw) in (1usize..12, 1usize..40, 1usize..4, 1usize..4),
        (sh, sw, ph, pw, dh, dw) in (1usize..3, 1usize..3, 0usize..3, 0usize..3, 1usize..3, 1usize..3),
        (ph_end, pw_end) in (0usize..3, 0usize..3),
        b in 1usize..40, seed in 0u32..1000, with_bias: bool,
    ) {
        // Padding after the map (ONNX's asymmetric pads) only shows in oh / ow: taps read zeros past the end.
        let oh = crate::model::graph::window_out_dilated(h, kh, sh, ph, ph_end, dh);
        let ow = crate::model::graph::window_out_dilated(w, kw, sw, pw, pw_end, dw);
        let (Some(oh), Some(ow)) = (oh, ow) else { return Ok(()) };
        let g = Window { c: groups * cg, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow };
        prop_assume!(!(cg == 1 && groups > 1));
        let cout = groups * og;
        let x = values(b * g.in_len(), seed);
        let wt = values(cout * cg * kh * kw, seed + 1);
        let bias = values(cout, seed + 2);
        let bias = with_bias.then_some(bias.as_slice());
        let mut out = vec![f32::NAN; b * cout * g.out_hw()];
        let mut cols = vec![];
        kernels::conv2d(&x, b, &g, cout, groups, &wt, bias, &mut out, &mut cols);
        // Side by side (as large weights take it), from scratch left dirty by the call above.
        let mut side = vec![f32::NAN; b * cout * g.out_hw()];
        kernels::FORCE_SIDE_BY_SIDE.set(true);
        kernels::conv2d(&x, b, &g, cout, groups, &wt, bias, &mut side, &mut cols);
        kernels::FORCE_SIDE_BY_SIDE.set(false);
        let sub = Window { c: cg, ..g };
        let (k, ohw) = (cg * kh * kw, g.out_hw());
        let mut want = vec![0.0f32; b * cout * ohw];
        let mut plain = vec![0.0f32; k * ohw];
        for n in 0..b {
            for gi in 0..groups {
                kernels::im2col(&x[n * g.in_len() + gi * sub.in_len()..][..sub.in_len()], &sub, &mut plain);
                let dst = &mut want[(n * cout + gi * og) * ohw..][..og * ohw];
                if let Some(bias) = bias {
                    for (row, &bv) in dst.chunks_exact_mut(ohw).zip(&bias[gi * og..]) {
                        row.fill(bv);
                    }
                }
                crate::engine::sgemm::sgemm_with(
                    crate::engine::sgemm::Path::Portable, og, ohw, k, dst, bias.is_some(),
                    crate::engine::sgemm::MatRef { data: &wt[gi * og * k..], rs: k, cs: 1 },
                    crate::engine::sgemm::MatRef { data: &plain, rs: ohw, cs: 1 },
                );
            }
        }
        prop_assert_eq!(
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        prop_assert_eq!(
            side.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn pools_match_naive((g, _cout, b) in window_strategy(), seed in 0u32..1000, max: bool, include_pad: bool) {
        prop_assume!(g.ph < g.kh && g.pw < g.kw);
        let x = values(b * g.in_len(), seed);
        let mut out = vec![f32::NAN; b * g.c * g.out_hw()];
        kernels::pool2d(&x, b, &g, max, include_pad, &mut out);
        assert_close(&out, &naive_pool(&x, b, &g, max, include_pad), 1e-6);
    }

    #[test]
    fn activations_match_definitions(seed in 0u32..1000, alpha in -1.0f32..1.0, beta in -1.0f32..1.0, lo in -3.0f32..0.0, hi in 0.0f32..3.0) {
        use kernels::Activation as A;
        let x: Vec<f32> = values(257, seed).iter().map(|v| v * 20.0).collect();
        type Reference = fn(f64, f64, f64, f64, f64) -> f64;
        let cases: [(A, Reference); 6] = [
            (A::Relu, |x, _, _, _, _| x.max(0.0)),
            (A::Clip { min: lo, max: hi }, |x, _, _, lo, hi| x.max(lo).min(hi)),
            (A::LeakyRelu { alpha }, |x, a, _, _, _| if x >= 0.0 { x } else { a * x }),
            (A::Sigmoid, |x, _, _, _, _| 1.0 / (1.0 + (-x).exp())),
            (A::HardSigmoid { alpha, beta }, |x, a, b, _, _| (a * x + b).clamp(0.0, 1.0)),
            (A::HardSwish, |x, _, _, _, _| x * ((x + 3.0).clamp(0.0, 6.0) / 6.0)),
        ];
        for (act, f) in cases {
            let mut y = x.clone();
            kernels::activate(&mut y, act);
            // The SIMD-dispatched build gives the portable one's bits.
            let mut base = x.clone();
            kernels::activate_baseline(&mut base, act);
            prop_assert_eq!(
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                base.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            for (&yv, &xv) in y.iter().zip(&x) {
                let r = f(xv as f64, alpha as f64, beta as f64, lo as f64, hi as f64);
                prop_assert!((yv as f64 - r).abs() <= 1e-6 * (1.0 + r.abs()), "{act:?}: f({xv}) = {yv}, expected {r}");
            }
        }
    }

    #[test]
    fn softmax_concat_and_channel_ops_match_definitions(b in 1usize..4, c in 1usize..5, hw in 1usize..7, seed in 0u32..1000) {
        let x: Vec<f32> = values(b * c * hw, seed).iter().map(|v| v * 30.0).collect();
        let mut y = x.clone();
        kernels::softmax(&mut y, c * hw);
        for (row, xr) in y.chunks(c * hw).zip(x.chunks(c * hw)) {
            let den: f64 = xr.iter().map(|&v| (v as f64).exp()).sum();
            for (&p, &v) in row.iter().zip(xr) {
                let r = (v as f64).exp() / den;
                prop_assert!((p as f64 - r).abs() <= 1e-6 * (1.0 + r));
            }
        }
        let k = values(c, seed + 1);
        for add in [false, true] {
            let mut y = x.clone();
            kernels::channel_affine(&mut y, c, hw, &k, add);
            let mut s = x.clone();
            kernels::channel_affine(&mut s, c, hw, &k[..1], add);
            for (i, &xv) in x.iter().enumerate() {
                let kv = k[(i / hw) % c];
                prop_assert_eq!(y[i], if add { xv + kv } else { xv * kv });
                prop_assert_eq!(s[i], if add { xv + k[0] } else { xv * k[0] });
            }
        }
        let other = values(b * 2 * hw, seed + 2);
        let mut out = vec![f32::NAN; b * (c + 2) * hw];
        kernels::concat(&[&x, &other], &[c * hw, 2 * hw], b, &mut out);
        for n in 0..b {
            prop_assert_eq!(&out[n * (c + 2) * hw..][..c * hw], &x[n * c * hw..][..c * hw]);
            prop_assert_eq!(&out[n * (c + 2) * hw + c * hw..][..2 * hw], &other[n * 2 * hw..][..2 * hw]);
        }
    }

    #[test]
    fn linear_matches_naive(b in 1usize..40, inf in 1usize..20, outf in 1usize..12, seed in 0u32..1000, with_bias: bool) {
        let x = values(b * inf, seed);
        let w = values(outf * inf, seed + 7);
        let bias = values(outf, seed + 9);
        let mut out = vec![f32::NAN; b * outf];
        kernels::linear(&x, b, inf, outf, &w, with_bias.then_some(bias.as_slice()), &mut out);
        for n in 0..b {
            for j in 0..outf {
                let r: f64 = (0..inf).map(|i| x[n * inf + i] as f64 * w[j * inf + i] as f64).sum::<f64>()
                    + if with_bias { bias[j] as f64 } else { 0.0 };
                prop_assert!((out[n * outf + j] as f64 - r).abs() < 1e-5 * (1.0 + r.abs()));
            }
        }
    }

    #[test]
    fn group_and_batch_norm_match_naive(b in 1usize..4, cg in 1usize..4, groups in 1usize..4, hw in 1usize..10, seed in 0u32..1000, rep: bool) {
        let c = cg * groups;
        let x: Vec<f32> = values(b * c * hw, seed).iter().map(|v| v * 3.0 + 0.7).collect();
        let w = values(c, seed + 1);
        let bias = values(c, seed + 2);
        let mut y = x.clone();
        kernels::group_norm(&mut y, b, c, hw, groups, 1e-5, &w, &bias, rep);
        assert_close(&y, &naive_norm(&x, b, c, hw, groups, 1e-5, &w, &bias, rep), 1e-5);

        let mean = values(c, seed + 3);
        let var: Vec<f32> = values(c, seed + 4).iter().map(|v| v.abs() + 0.1).collect();
        let mut y = x.clone();
        kernels::batch_norm(&mut y, b, c, hw, 1e-5, &w, &bias, &mean, &var, rep);
        for (i, (&yv, &xv)) in y.iter().zip(&x).enumerate() {
            let ci = (i / hw) % c;
            let s = if rep { 1.0 + w[ci] as f64 } else { w[ci] as f64 };
            let r = (xv as f64 - mean[ci] as f64) / (var[ci] as f64 + 1e-5).sqrt() * s + bias[ci] as f64;
            prop_assert!((yv as f64 - r).abs() < 1e-5 * (1.0 + r.abs()));
        }
    }
}

#[test]
fn argmax_first_max_and_nan() {
    assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
    assert_eq!(argmax(&[f32::NAN, -5.0, f32::NAN]), 1);
    assert_eq!(argmax(&[f32::NAN, f32::NAN]), u16::MAX);
    assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), 0);
}

/// Naive interpreter: every value kept, naive kernels; the network's decoded weights.
fn reference_forward(model: &Model, net: &Network, x: ArrayView4<f32>) -> Vec<f32> {
    let g = model.graph();
    let n = x.shape()[0];
    let mut vals: Vec<Vec<f32>> = vec![x.as_standard_layout().iter().cloned().collect()];
    for (i, l) in model.manifest().layers.iter().enumerate() {
        let xin = &vals[g.inputs[i][0]];
        let s = g.value_shape(g.inputs[i][0]);
        let (c, h, w) = match s {
            Shape::Chw(c, h, w) => (c, h, w),
            Shape::Flat(f) => (f, 1, 1),
        };
        let win = |k: [usize; 2], st: [usize; 2], p: [usize; 4], d: [usize; 2]| {
            let Shape::Chw(_, oh, ow) = g.shapes[i] else {
                unreachable!()
            };
            Window {
                c,
                h,
                w,
                kh: k[0],
                kw: k[1],
                sh: st[0],
                sw: st[1],
                ph: p[0],
                pw: p[1],
                dh: d[0],
                dw: d[1],
                oh,
                ow,
            }
        };
        let wt = |name: &str| net.weights(model.param_id(name).unwrap()).to_vec();
        let y = match &l.kind {
            LayerKind::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                dilation,
                groups,
                weight,
                bias,
                ..
            } => {
                let b = bias.as_deref().map(wt);
                naive_conv(
                    xin,
                    n,
                    &win(*kernel, *stride, *padding, *dilation),
                    *out_channels,
                    *groups,
                    &wt(weight),
                    b.as_deref(),
                )
            }
            LayerKind::Linear {
                in_features,
                out_features,
                weight,
                bias,
            } => {
                let wv = wt(weight);
                let b = bias.as_deref().map(wt);
                (0..n * out_features)
                    .map(|k| {
                        let (r, j) = (k / out_features, k % out_features);
                        let acc: f64 = (0..*in_features)
                            .map(|q| {
                                xin[r * in_features + q] as f64 * wv[j * in_features + q] as f64
                            })
                            .sum();
                        (acc + b.as_ref().map_or(0.0, |b| b[j] as f64)) as f32
                    })
                    .collect()
            }
            LayerKind::Relu => xin.iter().map(|v| v.max(0.0)).collect(),
            LayerKind::MaxPool2d {
                kernel,
                stride,
                padding,
            } => naive_pool(xin, n, &win(*kernel, *stride, *padding, [1, 1]), true, true),
            LayerKind::AvgPool2d {
                kernel,
                stride,
                padding,
                count_include_pad,
            } => naive_pool(
                xin,
                n,
                &win(*kernel, *stride, *padding, [1, 1]),
                false,
                *count_include_pad,
            ),
            LayerKind::Clip { min, max } => xin.iter().map(|v| v.max(*min).min(*max)).collect(),
            LayerKind::LeakyRelu { alpha } => xin
                .iter()
                .map(|&v| if v >= 0.0 { v } else { alpha * v })
                .collect(),
            LayerKind::Sigmoid => xin
                .iter()
                .map(|&v| (1.0 / (1.0 + (-(v as f64)).exp())) as f32)
                .collect(),
            LayerKind::HardSigmoid { alpha, beta } => xin
                .iter()
                .map(|&v| (alpha * v + beta).clamp(0.0, 1.0))
                .collect(),
            LayerKind::HardSwish => xin
                .iter()
                .map(|&v| v * ((v + 3.0).clamp(0.0, 6.0) / 6.0))
                .collect(),
            LayerKind::Softmax => xin
                .chunks(c * h * w)
                .flat_map(|r| {
                    let den: f64 = r.iter().map(|&v| (v as f64).exp()).sum();
                    r.iter()
                        .map(move |&v| ((v as f64).exp() / den) as f32)
                        .collect::<Vec<_>>()
                })
                .collect(),
            LayerKind::Concat { .. } => {
                let lens: Vec<usize> = g.inputs[i]
                    .iter()
                    .map(|&v| g.value_shape(v).numel())
                    .collect();
                let mut out = vec![];
                for e in 0..n {
                    for (&v, &l) in g.inputs[i].iter().zip(&lens) {
                        out.extend_from_slice(&vals[v][e * l..(e + 1) * l]);
                    }
                }
                out
            }
            LayerKind::ChannelMul { weight: t, .. } | LayerKind::ChannelAdd { bias: t, .. } => {
                let k = wt(t);
                let add = matches!(l.kind, LayerKind::ChannelAdd { .. });
                xin.iter()
                    .enumerate()
                    .map(|(j, &v)| {
                        let kv = if k.len() == 1 {
                            k[0]
                        } else {
                            k[(j / (h * w)) % c]
                        };
                        if add {
                            v + kv
                        } else {
                            v * kv
                        }
                    })
                    .collect()
            }
            LayerKind::Reshape { .. } => xin.clone(),
            LayerKind::GlobalAvgPool => xin
                .chunks(h * w)
                .map(|p| p.iter().sum::<f32>() / (h * w) as f32)
                .collect(),
            LayerKind::Flatten | LayerKind::Identity | LayerKind::Dropout => xin.clone(),
            LayerKind::Add { .. } => xin
                .iter()
                .zip(&vals[g.inputs[i][1]])
                .map(|(a, b)| a + b)
                .collect(),
            LayerKind::GroupNorm {
                groups,
                eps,
                reparameterized,
                weight,
                bias,
                ..
            } => naive_norm(
                xin,
                n,
                c,
                h * w,
                *groups,
                *eps,
                &wt(weight),
                &wt(bias),
                *reparameterized,
            ),
            LayerKind::BatchNorm {
                eps,
                reparameterized,
                weight,
                bias,
                running_mean,
                running_var,
                ..
            } => {
                let (wv, bv) = (wt(weight), wt(bias));
                let (m, v) = (
                    model.buffer(running_mean).unwrap(),
                    model.buffer(running_var).unwrap(),
                );
                xin.iter()
                    .enumerate()
                    .map(|(k, &xv)| {
                        let ci = (k / (h * w)) % c;
                        let s = if *reparameterized {
                            1.0 + wv[ci]
                        } else {
                            wv[ci]
                        };
                        (xv - m[ci]) / (v[ci] + eps).sqrt() * s + bv[ci]
                    })
                    .collect()
            }
        };
        vals.push(y);
    }
    vals.pop().unwrap()
}

/// A residual graph exercising every layer type and the buffer allocator (a value read twice, an add of the input
/// chain, in-place layers whose input is still needed).
pub(crate) const RESIDUAL_TOML: &str = r#"
format = "accelsim-model"
version = 1
name = "res"
weights = "small.safetensors"
[input]
shape = [2, 6, 6]
[quantization]
bits = 8
granularity = "layer"
symmetric = false
signed = false
rounding = true
[[layers]]
name = "c1"
type = "conv2d"
in_channels = 2
out_channels = 4
kernel = [3, 3]
padding = [1, 1]
weight = "c1.w"
[[layers]]
name = "bn"
type = "batchnorm"
channels = 4
weight = "bn.w"
bias = "bn.b"
running_mean = "bn.m"
running_var = "bn.v"
[[layers]]
name = "r1"
type = "relu"
[[layers]]
name = "c2"
type = "conv2d"
in_channels = 4
out_channels = 4
kernel = [1, 1]
weight = "c2.w"
bias = "c2.b"
[[layers]]
name = "gn"
type = "groupnorm"
groups = 2
channels = 4
weight = "gn.w"
bias = "gn.b"
[[layers]]
name = "sum"
type = "add"
inputs = ["gn", "r1"]
[[layers]]
name = "twice"
type = "add"
inputs = ["sum", "sum"]
[[layers]]
name = "id"
type = "identity"
[[layers]]
name = "mp"
type = "maxpool2d"
kernel = [3, 3]
stride = [2, 2]
padding = [1, 1]
[[layers]]
name = "ap"
type = "avgpool2d"
kernel = [2, 2]
stride = [1, 1]
[[layers]]
name = "drop"
type = "dropout"
p = 0.5
[[layers]]
name = "side"
type = "global_avgpool"
input = "r1"
[[layers]]
name = "gap"
type = "global_avgpool"
input = "ap"
[[layers]]
name = "both"
type = "add"
inputs = ["gap", "side"]
[[layers]]
name = "fc"
type = "linear"
in_features = 4
out_features = 5
weight = "fc.w"
bias = "fc.b"
"#;

pub(crate) fn residual_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let t = |n: &str, s: Vec<usize>, seed: u32| {
        let len = s.iter().product();
        (n.to_string(), s, values(len, seed))
    };
    let mut v = vec![
        t("c1.w", vec![4, 2, 3, 3], 1),
        t("bn.w", vec![4], 2),
        t("bn.b", vec![4], 3),
        t("bn.m", vec![4], 4),
        t("bn.v", vec![4], 5),
        t("c2.w", vec![4, 4, 1, 1], 6),
        t("c2.b", vec![4], 7),
        t("gn.w", vec![4], 8),
        t("gn.b", vec![4], 9),
        t("fc.w", vec![5, 4], 10),
        t("fc.b", vec![5], 11),
    ];
    for x in &mut v[4].2 {
        *x = x.abs() + 0.2;
    }
    v
}

pub(crate) fn input(n: usize, shape: [usize; 3], seed: u32) -> Array4<f32> {
    Array4::from_shape_vec(
        (n, shape[0], shape[1], shape[2]),
        values(n * shape.iter().product::<usize>(), seed),
    )
    .unwrap()
    .mapv(|v| v * 4.0)
}

#[test]
fn networks_match_naive_interpreter() {
    let d = tempfile::tempdir().unwrap();
    for (toml, tensors) in [
        (SMALL_TOML, small_tensors()),
        (RESIDUAL_TOML, residual_tensors()),
    ] {
        let p = write_model(d.path(), "m", toml, &tensors);
        let model = Model::load(&p).unwrap();
        for net in [
            Network::from_model(&model),
            Network::from_model_float(&model),
        ] {
            // 70 examples: two full chunks and a partial one.
            let x = input(70, net.input_shape(), 3);
            let logits = net.forward(x.view());
            let reference = reference_forward(&model, &net, x.view());
            assert_close(logits.as_slice().unwrap(), &reference, 1e-4);
            // Each example alone gives the same logits (no cross-talk between examples or chunks).
            for i in [0, 33, 69] {
                let one = net.forward(x.slice(ndarray::s![i..i + 1, .., .., ..]));
                assert_eq!(one.row(0), logits.row(i));
            }
        }
    }
}

#[test]
fn quantized_weights_are_decoded_from_the_image() {
    let d = tempfile::tempdir().unwrap();
    let p = write_model(d.path(), "m", SMALL_TOML, &small_tensors());
    let model = Model::load(&p).unwrap();
    let net = Network::from_model(&model);
    let float = Network::from_model_float(&model);
    for id in 0..model.param_tensors().len() {
        let mut want = vec![0.0; model.param_tensors()[id].len];
        model.quantized(id).dequantize_into(&mut want);
        assert_eq!(net.weights(id), want.as_slice());
        // 8-bit RQuant error is at most about one step of the (clipped) range.
        for (q, f) in net.weights(id).iter().zip(float.weights(id)) {
            assert!((q - f.clamp(-0.5, 0.5)).abs() < 0.01, "{q} vs {f}");
        }
    }
}

#[test]
fn set_weights_redecodes_only_changed_tensors_and_matches_rebuild() {
    let d = tempfile::tempdir().unwrap();
    let p = write_model(d.path(), "m", RESIDUAL_TOML, &residual_tensors());
    let model = Model::load(&p).unwrap();
    let mut net = Network::from_model(&model);
    let mut image = model.memory_image().to_vec();
    let fc = model.param_id("fc.w").unwrap();
    let r = model.image_range(fc);
    for b in &mut image[r.clone()] {
        *b ^= 0x80;
    }
    // Declaring only an untouched tensor leaves fc.w stale.
    net.set_weights_from_image(&model, &image, Some(&[0]))
        .unwrap();
    assert_eq!(net.weights(fc), Network::from_model(&model).weights(fc));
    net.set_weights_from_image(&model, &image, Some(&[fc]))
        .unwrap();
    let mut full = Network::from_model(&model);
    full.set_weights_from_image(&model, &image, None).unwrap();
    assert_eq!(net.weights(fc), full.weights(fc));
    assert_ne!(net.weights(fc), Network::from_model(&model).weights(fc));
    let x = input(5, net.input_shape(), 1);
    assert_eq!(net.forward(x.view()), full.forward(x.view()));
    assert!(net
        .set_weights_from_image(&model, &image[1..], None)
        .is_err());
    assert!(net
        .set_weights_from_image(&model, &image, Some(&[99]))
        .is_err());
    // A convolution's weights: the packed GEMM operand is rebuilt with them (the same logits as a network
    // built on the corrupted image from scratch, not those of the stale packing).
    let c2 = model.param_id("c2.w").unwrap();
    for b in &mut image[model.image_range(c2)] {
        *b ^= 0x41;
    }
    net.set_weights_from_image(&model, &image, Some(&[c2]))
        .unwrap();
    let mut fresh = Network::from_model(&model);
    fresh.set_weights_from_image(&model, &image, None).unwrap();
    let before = full.forward(x.view());
    assert_eq!(net.forward(x.view()), fresh.forward(x.view()));
    assert_ne!(
        net.forward(x.view()),
        before,
        "the conv change reaches the logits"
    );
}

#[test]
fn deterministic_across_thread_counts() {
    let d = tempfile::tempdir().unwrap();
    let p = write_model(d.path(), "m", RESIDUAL_TOML, &residual_tensors());
    let model = Model::load(&p).unwrap();
    let net = Network::from_model(&model);
    let x = input(100, net.input_shape(), 9);
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| net.forward(x.view()))
    };
    assert_eq!(run(1), run(3));
}

/// The float engine's chunk size is a speed choice only: the logits (and predictions) are the same bits for any
/// number of images per work item, including chunks that do not divide the batch.
#[test]
fn logits_do_not_depend_on_the_chunk_size() {
    let d = tempfile::tempdir().unwrap();
    let p = write_model(d.path(), "m", RESIDUAL_TOML, &residual_tensors());
    let model = Model::load(&p).unwrap();
    let mut net = Network::from_model(&model);
    let x = input(45, net.input_shape(), 5);
    net.chunk = 32;
    let (want, want_pred) = (net.forward(x.view()), net.predict(x.view()).unwrap());
    for chunk in [1, 7, 8, 64] {
        net.chunk = chunk;
        let got = net.forward(x.view());
        let same = want
            .iter()
            .zip(got.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "chunk {chunk}");
        assert_eq!(net.predict(x.view()).unwrap(), want_pred, "chunk {chunk}");
    }
}

#[test]
fn float_chunk_keeps_a_chunk_of_maps_in_l2_unless_the_weights_do_not_fit_either() {
    // The companion's CNN: 16 x 28 x 28 maps (49 KiB), 0.4 MiB of weights.
    assert_eq!(float_chunk(16 * 28 * 28, 105_914), 32);
    // MobileNet-style: 64 x 28 x 28 maps (196 KiB), 135 k weights: 8 such maps are 1.5 MiB.
    assert_eq!(float_chunk(64 * 28 * 28, 134_730), 8);
    // 100 KiB maps: 16 of them fit.
    assert_eq!(float_chunk(25_000, 1000), 16);
    // ResNet-18-size: the same maps as MobileNet's but 11 M weights (45 MB) streamed once per work item.
    assert_eq!(float_chunk(64 * 28 * 28, 11_168_010), 32);
    // Huge maps never go below 8; tiny ones never above CHUNK.
    assert_eq!(float_chunk(10_000_000, 10), 8);
    assert_eq!(float_chunk(0, 0), CHUNK);
}

#[test]
fn robust_error_follows_the_paper_definition() {
    let d = tempfile::tempdir().unwrap();
    let p = write_model(d.path(), "m", SMALL_TOML, &small_tensors());
    let model = Model::load(&p).unwrap();
    let mut net = Network::from_model(&model);
    let x = input(200, net.input_shape(), 5);
    let clean_pred = net.predict(x.view()).unwrap();
    // Labels: the clean prediction for even examples, another class for odd ones (50% clean error).
    let labels: Vec<u8> = clean_pred
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            if i % 2 == 0 {
                p as u8
            } else {
                (p as u8 + 1) % 3
            }
        })
        .collect();
    let ev = Evaluator::new(&net, x.view(), &labels).unwrap();
    assert_eq!(ev.clean().wrong, 100);
    assert!((ev.clean_error_pct() - 50.0).abs() < 1e-12);
    // No corruption: RErr = Err.
    let mut scratch = model.memory_image().to_vec();
    let r = ev
        .robust_with(&model, &mut net, &mut scratch, |_| Some(vec![]))
        .unwrap();
    assert_eq!((r.wrong, r.flipped), (100, 0));
    // Corrupting the last layer's bias: count independently which clean-right examples change.
    let fcb = model.param_id("fc.bias").unwrap();
    let range = model.image_range(fcb);
    let r = ev
        .robust_with(&model, &mut net, &mut scratch, |img| {
            img[range.start] ^= 0x80;
            img[range.start + 1] ^= 0x7f;
            Some(vec![fcb])
        })
        .unwrap();
    let mut bad = model.memory_image().to_vec();
    bad[range.start] ^= 0x80;
    bad[range.start + 1] ^= 0x7f;
    let mut faulty = Network::from_model(&model);
    faulty.set_weights_from_image(&model, &bad, None).unwrap();
    let fp = faulty.predict(x.view()).unwrap();
    let expected_wrong = (0..200)
        .filter(|&i| clean_pred[i] != labels[i] as u16 || fp[i] != labels[i] as u16)
        .count();
    assert_eq!(r.wrong, expected_wrong);
    assert_eq!(r.flipped, expected_wrong - 100);
    // The scratch image and the network are clean again.
    assert_eq!(scratch, model.memory_image());
    assert_eq!(net.predict(x.view()).unwrap(), clean_pred);
    // Bad labels are refused.
    assert!(Evaluator::new(&net, x.view(), &labels[1..]).is_err());
    let mut l2 = labels.clone();
    l2[0] = 7;
    assert!(Evaluator::new(&net, x.view(), &l2).is_err());
}

#[test]
fn max_pool_2x2_fast_path_matches_naive_and_propagates_nan() {
    for (h, w) in [(4, 4), (5, 7), (2, 3), (28, 28)] {
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
        let mut x = values(2 * g.in_len(), h as u32);
        let mut out = vec![f32::NAN; 2 * g.c * g.out_hw()];
        kernels::pool2d(&x, 2, &g, true, true, &mut out);
        assert_eq!(out, naive_pool(&x, 2, &g, true, true));
        x[w + 1] = f32::NAN;
        kernels::pool2d(&x, 2, &g, true, true, &mut out);
        assert!(out[0].is_nan());
    }
}

#[test]
fn group_norm_simd_dispatch_is_bit_identical_to_baseline() {
    let (b, c, hw, groups) = (3, 8, 37, 4);
    let x: Vec<f32> = values(b * c * hw, 42)
        .iter()
        .map(|v| v * 5.0 - 1.0)
        .collect();
    let (w, bias) = (values(c, 1), values(c, 2));
    let mut fast = x.clone();
    kernels::group_norm(&mut fast, b, c, hw, groups, 1e-5, &w, &bias, true);
    let mut base = x.clone();
    kernels::group_norm_baseline(&mut base, b, c, hw, groups, 1e-5, &w, &bias, true);
    assert_eq!(fast, base);
}

#[test]
fn activation_fused_into_the_convolution_gives_the_unfused_values() {
    fused_activation_case(false);
}

#[test]
fn activation_fused_into_the_depthwise_convolution_gives_the_unfused_values() {
    fused_activation_case(true);
}

/// The residual graph with its BatchNorm made an identity: conv c1 (dense, or depthwise with multiplier 2) is
/// followed directly by its in-place ReLU, which `forward` then applies inside the convolution; the observed
/// pass (no fusion) is the reference.
fn fused_activation_case(depthwise: bool) {
    let mut toml = RESIDUAL_TOML.replace(
        "type = \"batchnorm\"\nchannels = 4\nweight = \"bn.w\"\nbias = \"bn.b\"\nrunning_mean = \"bn.m\"\nrunning_var = \"bn.v\"",
        "type = \"identity\"",
    );
    assert_ne!(toml, RESIDUAL_TOML);
    let mut tensors: Vec<_> = residual_tensors()
        .into_iter()
        .filter(|t| !t.0.starts_with("bn."))
        .collect();
    if depthwise {
        let dense = "padding = [1, 1]\nweight = \"c1.w\"";
        assert!(toml.contains(dense));
        toml = toml.replace(dense, "padding = [1, 1]\ngroups = 2\nweight = \"c1.w\"");
        let c1 = tensors.iter_mut().find(|t| t.0 == "c1.w").unwrap();
        c1.1 = vec![4, 1, 3, 3];
        c1.2.truncate(4 * 9);
    }
    let d = tempfile::tempdir().unwrap();
    let p = write_model(d.path(), "m", &toml, &tensors);
    let model = Model::load(&p).unwrap();
    let net = Network::from_model(&model);
    let c1 = net
        .steps
        .iter()
        .position(|s| matches!(s.op, Op::Conv { .. }))
        .unwrap();
    assert!(
        matches!(net.steps[c1 + 1].op, Op::Act(_)),
        "c1 is followed by its ReLU"
    );
    let x = input(37, net.input_shape(), 3);
    let xs = x.as_standard_layout();
    let xs = xs.as_slice().unwrap();
    let (mut w1, mut w2) = (net.workspace(), net.workspace());
    let fused = net.forward_chunk(xs, 37, &mut w1).to_vec();
    let mut seen = 0;
    let mut count = |_: usize, _: &[f32]| seen += 1;
    let plain = net
        .forward_chunk_observed(xs, 37, &mut w2, Some(&mut count))
        .to_vec();
    assert!(seen > 0);
    assert_eq!(fused, plain);
}

/// The SIMD depthwise kernels (on AVX-512, the row kernel for column strides 1 and 2, whose lane masks depend
/// on the width, the left and right padding and the tap columns) give the portable kernel's bits on every
/// width up to 40 with every small padding, kernel width, dilation and column stride: every position of the
/// 16- and 32-column windows against both map edges, which random cases reach only rarely.
#[test]
fn depthwise_simd_paths_equal_portable_over_every_small_width() {
    let mut cases = 0;
    for w in 1..=40usize {
        for (pl, pr) in [(0, 0), (1, 1), (2, 0), (0, 2), (1, 2)] {
            for kw in 1..=3usize {
                for dw in 1..=2usize {
                    for sw in 1..=3usize {
                        let Some(ow) =
                            crate::model::graph::window_out_dilated(w, kw, sw, pl, pr, dw)
                        else {
                            continue;
                        };
                        let (h, kh) = (3, 3);
                        let g = Window {
                            c: 2,
                            h,
                            w,
                            kh,
                            kw,
                            sh: 1,
                            sw,
                            ph: 1,
                            pw: pl,
                            dh: 1,
                            dw,
                            oh: h,
                            ow,
                        };
                        let (b, cout) = (2, 4);
                        let seed = (w * 31 + kw * 7 + dw * 3 + sw + pl * 11 + pr * 13) as u32;
                        let x = values(b * g.in_len(), seed);
                        let wt = values(cout * kh * kw, seed + 1);
                        let bias = values(cout, seed + 2);
                        let mut base = vec![f32::NAN; b * cout * g.out_hw()];
                        kernels::depthwise_conv2d_baseline(
                            &x,
                            b,
                            &g,
                            cout,
                            &wt,
                            Some(&bias),
                            &mut base,
                        );
                        let mut fast = vec![f32::NAN; b * cout * g.out_hw()];
                        kernels::depthwise_conv2d(&x, b, &g, cout, &wt, Some(&bias), &mut fast);
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits(&fast),
                            bits(&base),
                            "w {w} pads {pl},{pr} kw {kw} dw {dw} sw {sw}"
                        );
                        cases += 1;
                    }
                }
            }
        }
    }
    assert!(cases > 2000, "{cases} cases");
}
