//! Execution of one compiled integer step over a chunk of examples (docs/datapath.md#layers).
use super::kernels::{self, PackedWeights};
use super::psums::{self, PsumCtx};
use super::quantize::QParams;
use super::simd;
use super::weights::WeightCodes;
use super::{fk, IOp, IStep, Int8Network, Scratch, Stage, WLayer};
use crate::engine::{EngineError, Op};
use crate::model::Model;
use crate::quant::QuantConfig;

impl WLayer {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        model: &Model,
        cfg: &QuantConfig,
        weight: usize,
        bias: Option<usize>,
        cout: usize,
        groups: usize,
        k: usize,
        depthwise: bool,
        qin: QParams,
    ) -> Result<WLayer, EngineError> {
        let codes = WeightCodes::from_image(model, cfg, weight, model.memory_image(), cout)?;
        Ok(WLayer {
            weight,
            bias,
            cout,
            groups,
            k,
            depthwise,
            codes,
            packed: Vec::<PackedWeights>::new(),
            fold_packed: Default::default(),
            bias_i32: vec![0; cout],
            qin,
        })
    }
}

impl WLayer {
    /// The kernels' view of this layer's weights.
    fn gemm_weights(&self) -> kernels::LayerWeights<'_> {
        kernels::LayerWeights {
            cout: self.cout,
            groups: self.groups,
            depthwise: self.depthwise,
            codes: &self.codes.k,
            packed: &self.packed,
            asym: self.codes.c.iter().any(|&c| c != 0.0),
        }
    }
}

/// The unsigned view of stored bytes (int8 codes: top bit flipped), into `buf` when a copy is needed.
fn unsigned_view<'a>(q: QParams, x: &'a [u8], buf: &'a mut Vec<u8>) -> &'a [u8] {
    if q.signed {
        buf.clear();
        buf.extend(x.iter().map(|&v| v ^ 0x80));
        buf
    } else {
        x
    }
}

/// Applies one float op of the PPU to a chunk of `b` examples.
fn apply_float(op: &Op, x: &mut [f32], b: usize, w: &[Vec<f32>]) {
    match op {
        Op::Act(a) => fk::activate(x, *a),
        Op::Softmax { len } => fk::softmax(x, *len),
        Op::Channel { c, hw, param, add } => fk::channel_affine(x, *c, *hw, &w[*param], *add),
        Op::GroupNorm {
            c,
            hw,
            groups,
            eps,
            reparameterized,
            weight,
            bias,
        } => fk::group_norm(
            x,
            b,
            *c,
            *hw,
            *groups,
            *eps,
            &w[*weight],
            &w[*bias],
            *reparameterized,
        ),
        Op::BatchNorm {
            c,
            hw,
            eps,
            reparameterized,
            weight,
            bias,
            mean,
            var,
        } => fk::batch_norm(
            x,
            b,
            *c,
            *hw,
            *eps,
            &w[*weight],
            &w[*bias],
            mean,
            var,
            *reparameterized,
        ),
        other => unreachable!("not a PPU op: {other:?}"),
    }
}

impl Int8Network {
    fn float_op(&self, layer: usize) -> &Op {
        &self
            .fnet
            .steps
            .iter()
            .find(|s| s.layer == layer)
            .expect("every computed layer has a float step")
            .op
    }

    fn run_chain(&self, chain: &[usize], x: &mut [f32], b: usize) {
        for &j in chain {
            apply_float(self.float_op(j), x, b, &self.fnet.weights);
        }
    }

    /// Runs step `st` on `b` examples: `ins` the stored (read-back) inputs, `out` the output codes
    /// (`b · out_len`), `flo` a float buffer of at least `b · out_len` values (the logits when the step ends the
    /// network on the PPU), `psum` the buffers the partial sums of folded reductions go through (`None`: they
    /// cannot fail). Returns the number of saturated accumulators.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_step(
        &self,
        st: &IStep,
        b: usize,
        ins: &[&[u8]],
        out: &mut [u8],
        flo: &mut [f32],
        s: &mut Scratch,
        psum: Option<&PsumCtx>,
    ) -> u64 {
        let mut overflow = 0u64;
        match &st.op {
            IOp::Conv { wl, g, stage } => {
                let w = &self.wl[*wl];
                let q = st.qin[0];
                let per_in = g.in_len();
                let per_out = w.cout * g.out_hw();
                let per_sum = w.groups * g.out_hw();
                // One example at a time from the GEMM to the output codes: its accumulators stay in cache.
                s.acc.resize(per_out, 0);
                s.asum.resize(per_sum, 0);
                let mut xu = std::mem::take(&mut s.xu);
                for e in 0..b {
                    let x = unsigned_view(q, &ins[0][e * per_in..(e + 1) * per_in], &mut xu);
                    let acc = &mut s.acc[..];
                    let asum = &mut s.asum[..];
                    let lw = w.gemm_weights();
                    overflow += match psum {
                        Some(ctx) => psums::conv_step(
                            ctx,
                            st.layer,
                            e,
                            q,
                            g,
                            w,
                            &lw,
                            x,
                            &mut s.k,
                            acc,
                            asum,
                            &mut s.psum,
                        ),
                        None => kernels::conv_acc(
                            self.opts.path,
                            x,
                            q.zero_u(),
                            g,
                            &lw,
                            &w.bias_i32,
                            &mut s.k,
                            acc,
                            asum,
                        ),
                    };
                    let r = e * per_out..(e + 1) * per_out;
                    self.finish(
                        stage,
                        w,
                        1,
                        g.out_hw(),
                        &s.acc,
                        &s.asum,
                        &mut out[r.clone()],
                        &mut flo[r],
                    );
                }
                s.xu = xu;
            }
            IOp::Linear { wl, stage } => {
                let w = &self.wl[*wl];
                let q = st.qin[0];
                let mut xu = std::mem::take(&mut s.xu);
                let x = unsigned_view(q, &ins[0][..b * w.k], &mut xu);
                s.acc.resize(b * w.cout, 0);
                s.asum.resize(b, 0);
                let lw = w.gemm_weights();
                overflow += match psum {
                    Some(ctx) => psums::linear_step(
                        ctx,
                        st.layer,
                        q,
                        w,
                        &lw,
                        x,
                        b,
                        &mut s.k,
                        &mut s.acc,
                        &mut s.asum,
                        &mut s.psum,
                    ),
                    None => kernels::linear_acc(
                        self.opts.path,
                        x,
                        b,
                        q.zero_u(),
                        &lw,
                        &w.bias_i32,
                        &mut s.k,
                        &mut s.acc,
                        &mut s.asum,
                    ),
                };
                s.xu = xu;
                self.finish(stage, w, b, 1, &s.acc, &s.asum, out, flo);
            }
            IOp::MaxPool { g } => {
                let q = st.qin[0];
                let flip = if q.signed { 0x80 } else { 0 };
                let ohw = g.c * g.out_hw();
                let mut xu = std::mem::take(&mut s.xu);
                for e in 0..b {
                    let x =
                        unsigned_view(q, &ins[0][e * g.in_len()..(e + 1) * g.in_len()], &mut xu);
                    let o = &mut out[e * ohw..(e + 1) * ohw];
                    kernels::max_pool(x, g, o, &mut s.k);
                    o.iter_mut().for_each(|v| *v ^= flip);
                }
                s.xu = xu;
            }
            IOp::AvgPool {
                g,
                count_include_pad,
                rq,
            } => {
                let q = st.qin[0];
                let n_out = g.c * g.out_hw();
                s.asum.resize(n_out, 0);
                s.counts.resize(n_out, 0);
                let mut xu = std::mem::take(&mut s.xu);
                for e in 0..b {
                    let x =
                        unsigned_view(q, &ins[0][e * g.in_len()..(e + 1) * g.in_len()], &mut xu);
                    kernels::avg_pool_sums(
                        x,
                        g,
                        q.zero_u(),
                        *count_include_pad,
                        &mut s.asum,
                        &mut s.counts,
                    );
                    for (o, (&sum, &d)) in out[e * n_out..(e + 1) * n_out]
                        .iter_mut()
                        .zip(s.asum.iter().zip(&s.counts))
                    {
                        *o = rq.apply(d.max(1) as usize - 1, sum, 0) as u8;
                    }
                }
                s.xu = xu;
            }
            IOp::Add { qout } => {
                let (qa, qb) = (st.qin[0], st.qin[1]);
                for ((o, &a), &c) in out.iter_mut().zip(ins[0]).zip(ins[1]) {
                    *o = qout.quantize(qa.dequantize(a) + qb.dequantize(c));
                }
            }
            IOp::Concat { lens, luts } => {
                let total: usize = lens.iter().sum();
                for e in 0..b {
                    let mut at = e * total;
                    for ((part, &len), lut) in ins.iter().zip(lens).zip(luts) {
                        for (o, &v) in out[at..at + len]
                            .iter_mut()
                            .zip(&part[e * len..(e + 1) * len])
                        {
                            *o = lut[v as usize];
                        }
                        at += len;
                    }
                }
            }
            IOp::Ppu { chain, qout } => {
                let q = st.qin[0];
                let n = b * st.out_len;
                let t = q.dequant_table();
                for (f, &v) in flo[..n].iter_mut().zip(ins[0]) {
                    *f = t[v as usize];
                }
                self.run_chain(chain, &mut flo[..n], b);
                if let Some(qo) = qout {
                    simd::quantize_slice(*qo, &flo[..n], &mut out[..n]);
                }
            }
        }
        overflow
    }

    /// Output stage of a conv/linear: `acc` laid out `[example][channel][position]`, `asum` (asymmetric weights
    /// only) `[example][group][position]`.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        stage: &Stage,
        w: &WLayer,
        b: usize,
        hw: usize,
        acc: &[i32],
        asum: &[i32],
        out: &mut [u8],
        flo: &mut [f32],
    ) {
        let per = w.cout * hw;
        let og = w.cout / w.groups;
        let asym = w.codes.c.iter().any(|&c| c != 0.0);
        // Without zero-point terms the loops read no window sums (dequant_row: cunit = 0; requant_row: an empty
        // slice counts as zeros).
        let sums = |e: usize, co: usize| -> &[i32] {
            if asym {
                let gi = co / og;
                &asum[(e * w.groups + gi) * hw..(e * w.groups + gi + 1) * hw]
            } else {
                &[]
            }
        };
        match stage {
            Stage::Codes { rq, .. } => {
                for e in 0..b {
                    for co in 0..w.cout {
                        let r = e * per + co * hw..e * per + (co + 1) * hw;
                        simd::requant_row(rq, co, &acc[r.clone()], sums(e, co), &mut out[r]);
                    }
                }
            }
            Stage::Float { chain, qout, relu } => {
                let sa = w.qin.scale as f64;
                if let (Some(qo), &[j]) = (qout, chain.as_slice()) {
                    if let Op::GroupNorm {
                        c,
                        hw: ghw,
                        groups,
                        eps,
                        reparameterized,
                        weight,
                        bias,
                    } = self.float_op(j)
                    {
                        if *c == w.cout && *ghw == hw {
                            // Dequantize, normalize and quantize in one pass per group (bit-identical).
                            let gn = simd::GroupNormPpu {
                                groups: *groups,
                                eps: *eps,
                                weight: &self.fnet.weights[*weight],
                                bias: &self.fnet.weights[*bias],
                                reparameterized: *reparameterized,
                            };
                            let ps = w.groups * hw;
                            for e in 0..b {
                                let dq = simd::Dequant {
                                    sa,
                                    s: &w.codes.s,
                                    c: &w.codes.c,
                                    asum: if asym {
                                        &asum[e * ps..(e + 1) * ps]
                                    } else {
                                        &[]
                                    },
                                    og,
                                };
                                let r = e * per..(e + 1) * per;
                                let job = simd::GroupNormCodes {
                                    acc: &acc[r.clone()],
                                    hw,
                                    dq,
                                    gn,
                                    q: *qo,
                                    relu: *relu,
                                };
                                simd::group_norm_codes(&job, &mut flo[..per], &mut out[r]);
                            }
                            return;
                        }
                    }
                }
                for e in 0..b {
                    for co in 0..w.cout {
                        let r = e * per + co * hw..e * per + (co + 1) * hw;
                        let unit = (sa * w.codes.s[co]) as f32;
                        let cunit = (sa * w.codes.c[co]) as f32;
                        simd::dequant_row(&acc[r.clone()], sums(e, co), unit, cunit, &mut flo[r]);
                    }
                }
                let n = b * per;
                self.run_chain(chain, &mut flo[..n], b);
                if let Some(qo) = qout {
                    simd::quantize_slice(*qo, &flo[..n], &mut out[..n]);
                    if *relu {
                        simd::floor_codes(*qo, &mut out[..n]);
                    }
                }
            }
        }
    }
}
