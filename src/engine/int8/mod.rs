//! The integer datapath (docs/datapath.md): int8 weight codes × 8-bit activation codes, int32 accumulation,
//! requantization between layers, as an integer DNN accelerator computes. The float engine ([`super::Network`])
//! stays the paper's "fake quantization" protocol.
//!
//! - Weights: the stored codes of the model's scheme, read from the (possibly faulty) memory image, turned into
//!   signed integers `k = clamp(v - offset, -L, L)` with the real weight `s·k + c` per output channel
//!   ([`weights`]).
//! - Activations: one byte per value, per-tensor scale and zero point ([`quantize::QParams`]) calibrated on
//!   training images ([`Int8Network::build`]).
//! - Conv/linear: u8 × i8 GEMM ([`kernels`]) into int32 accumulators (overflow detected, counted, saturated),
//!   int32 bias, then either integer requantization ([`requant`]; a following BatchNorm is folded into it and a
//!   ReLU/clip is its saturation) or the post-processing unit (PPU: dequantized accumulators through GroupNorm and
//!   other float ops, then quantized).
//! - Every layer's stored input map is read back through an [`ActivationStore`] (faulty activation buffers).
//!
//! [`reference`] holds slow, obviously-right versions of every integer op that the tests compare against.
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::ArrayView4;
use rayon::prelude::*;

use super::act_store::{ActivationStore, StoredMap};
use super::kernels::{self as fk, Activation, Window};
use super::{argmax, EngineError, Network, Op, CHUNK};
use crate::model::{LayerKind, Model, Shape};

#[cfg(target_arch = "x86_64")]
mod gemm_avx2;
pub mod kernels;
mod psums;
pub mod quantize;
pub mod reference;
pub mod requant;
mod simd;
pub mod weights;

use kernels::{PackedWeights, Path};
use quantize::{QParams, Range};
use requant::{Requant, RequantMode};
use weights::WeightCodes;

/// Training images the activation ranges are calibrated on by default (the first ones of the training split).
pub const CALIBRATION_IMAGES: usize = 1000;

/// Options of the integer datapath.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int8Options {
    pub requant: RequantMode,
    /// GEMM implementation (default: the fastest the CPU has; every path gives the same bits).
    pub path: Path,
}

impl Default for Int8Options {
    fn default() -> Self {
        Int8Options {
            requant: RequantMode::Float,
            path: Path::best(),
        }
    }
}

/// A conv or linear layer's integer weights and the constants derived from them.
#[derive(Clone, Debug)]
struct WLayer {
    weight: usize,
    bias: Option<usize>,
    cout: usize,
    groups: usize,
    /// Depth per output (`cin/groups · kh · kw`, or `in_features`).
    k: usize,
    depthwise: bool,
    codes: WeightCodes,
    /// One packed GEMM operand per group (empty for depthwise layers).
    packed: Vec<PackedWeights>,
    /// The weights cut into row folds of `R` depths (`[group][fold]`), for replaying faulty partial sums
    /// (docs/activation-faults.md#partial-sums); built on first use for the array's `R`.
    fold_packed: std::sync::OnceLock<(usize, Vec<PackedWeights>)>,
    /// int32 bias per output channel in accumulator units `s_a · s_c` (BatchNorm shift folded in when fused).
    bias_i32: Vec<i32>,
    /// Input activation parameters.
    qin: QParams,
}

/// What happens to a conv/linear layer's accumulators.
#[derive(Clone, Debug)]
enum Stage {
    /// Integer requantization; `bn`: the fused BatchNorm layer folded into it; `clamp`: a fused ReLU/clip.
    Codes {
        bn: Option<usize>,
        qout: QParams,
        rq: Requant,
    },
    /// Post-processing unit: dequantize, run the float ops of `chain` (layer indices), quantize with `qout`
    /// (`None`: the network output, kept as f32 logits). `relu`: the chain's final ReLU, applied as the
    /// quantizer's lower bound instead (`quantize(max(x, 0)) = max(quantize(x), z)`: quantization is monotonic
    /// and maps 0 to the zero point, so the codes are the same).
    Float {
        chain: Vec<usize>,
        qout: Option<QParams>,
        relu: bool,
    },
}

#[derive(Clone, Debug)]
enum IOp {
    Conv {
        wl: usize,
        g: Window,
        stage: Stage,
    },
    Linear {
        wl: usize,
        stage: Stage,
    },
    MaxPool {
        g: Window,
    },
    /// Average pooling (also global); `rq` has one multiplier per divisor `1..=kh·kw`.
    AvgPool {
        g: Window,
        count_include_pad: bool,
        rq: Requant,
    },
    Add {
        qout: QParams,
    },
    Concat {
        lens: Vec<usize>,
        /// Per input: stored byte → output byte (`QuantizeLinear_out(DequantizeLinear_in(byte))`).
        luts: Vec<Vec<u8>>,
    },
    /// A float op chain on dequantized codes (PPU).
    Ppu {
        chain: Vec<usize>,
        qout: Option<QParams>,
    },
}

#[derive(Clone, Debug)]
struct IStep {
    op: IOp,
    /// The layer reading the stored inputs (the first of a fused chain).
    layer: usize,
    /// Storage ids read, their parameters and per-example shapes.
    inputs: Vec<usize>,
    qin: Vec<QParams>,
    in_shape: Vec<[usize; 3]>,
    /// Storage written, values per example.
    output: usize,
    out_len: usize,
}

/// A compiled network on the integer datapath.
#[derive(Debug)]
pub struct Int8Network {
    /// The float network: op definitions, and the decoded float parameters the PPU uses (GroupNorm, ...).
    fnet: Network,
    opts: Int8Options,
    wl: Vec<WLayer>,
    steps: Vec<IStep>,
    /// Values per example of each storage, and the parameters of each storage's codes.
    store_len: Vec<usize>,
    store_q: Vec<QParams>,
    input_q: QParams,
    output_storage: usize,
    /// True when the last step writes f32 logits directly.
    float_output: bool,
    classes: usize,
    overflows: AtomicU64,
}

impl Clone for Int8Network {
    fn clone(&self) -> Self {
        Int8Network {
            fnet: self.fnet.clone(),
            opts: self.opts,
            wl: self.wl.clone(),
            steps: self.steps.clone(),
            store_len: self.store_len.clone(),
            store_q: self.store_q.clone(),
            input_q: self.input_q,
            output_storage: self.output_storage,
            float_output: self.float_output,
            classes: self.classes,
            overflows: AtomicU64::new(self.overflows.load(Ordering::Relaxed)),
        }
    }
}

/// Per-example shape as `[c, h, w]` (`[f, 1, 1]` for a flat vector).
fn chw(s: Shape) -> [usize; 3] {
    match s {
        Shape::Chw(c, h, w) => [c, h, w],
        Shape::Flat(f) => [f, 1, 1],
    }
}

/// Per-layer output ranges (and the input's) of the float network on `calib`.
fn calibrate(fnet: &Network, calib: ArrayView4<f32>, layers: usize) -> (Range, Vec<Range>) {
    let x = calib.as_standard_layout();
    let x = x.as_slice().expect("standard layout");
    let n = calib.shape()[0];
    let per = x.len() / n.max(1);
    let mut input = Range::default();
    input.observe(x);
    let mut ranges = vec![Range::default(); layers];
    let mut ws = fnet.workspace();
    for c0 in (0..n).step_by(CHUNK) {
        let b = CHUNK.min(n - c0);
        let mut observe = |l: usize, out: &[f32]| ranges[l].observe(out);
        fnet.forward_chunk_observed(&x[c0 * per..(c0 + b) * per], b, &mut ws, Some(&mut observe));
    }
    (input, ranges)
}

/// True for the elementwise layers the PPU (or the integer output stage) can apply after a conv/linear.
fn fusible(kind: &LayerKind) -> bool {
    matches!(
        kind,
        LayerKind::BatchNorm { .. }
            | LayerKind::GroupNorm { .. }
            | LayerKind::ChannelMul { .. }
            | LayerKind::ChannelAdd { .. }
            | LayerKind::Relu
            | LayerKind::Clip { .. }
            | LayerKind::LeakyRelu { .. }
            | LayerKind::Sigmoid
            | LayerKind::HardSigmoid { .. }
            | LayerKind::HardSwish
            | LayerKind::Softmax
    )
}

fn is_alias(kind: &LayerKind) -> bool {
    matches!(
        kind,
        LayerKind::Flatten | LayerKind::Identity | LayerKind::Dropout | LayerKind::Reshape { .. }
    )
}

impl Int8Network {
    /// Compiles `model` for the integer datapath: weight codes from the model's clean memory image, activation
    /// parameters calibrated on `calib` (normalized training images, docs/datapath.md#calibration).
    pub fn build(
        model: &Model,
        calib: ArrayView4<f32>,
        opts: Int8Options,
    ) -> Result<Int8Network, EngineError> {
        if !opts.path.available() {
            return Err(EngineError::Unsupported(format!(
                "the {} GEMM path is not available on this CPU",
                opts.path.name()
            )));
        }
        weights::check_scheme(model.quant_config(), model.bytes_per_value())?;
        let fnet = Network::from_model(model);
        fnet.check_input(&calib)?;
        if calib.shape()[0] == 0 {
            return Err(EngineError::Unsupported(
                "int8 calibration needs at least 1 image".into(),
            ));
        }
        let graph = model.graph();
        let layers = &model.manifest().layers;
        let n = layers.len();
        // Calibrated ranges, computed on first use: a model whose every stored value has given parameters (a
        // QDQ import) never runs the float network on the calibration images.
        let calibrated = std::cell::OnceCell::new();
        let fops: Vec<Option<Op>> = {
            let mut v = vec![None; n];
            for st in &fnet.steps {
                v[st.layer] = Some(st.op.clone());
            }
            v
        };
        // Storage of each value (aliases share their input's) and the number of readers of each value.
        let mut storage: Vec<usize> = (0..=n).collect();
        let mut readers = vec![0usize; n + 1];
        for (i, l) in layers.iter().enumerate() {
            if is_alias(&l.kind) {
                storage[i + 1] = storage[graph.inputs[i][0]];
            }
            for &v in &graph.inputs[i] {
                readers[v] += 1;
            }
        }
        let out_value = n;
        // Parameters the model brings (a QDQ ONNX import) replace calibrated ones, per storage.
        let mut given: Vec<Option<QParams>> = vec![None; n + 1];
        for a in &model.manifest().activation_quant {
            let v = if a.value == "input" {
                0
            } else {
                1 + layers
                    .iter()
                    .position(|l| l.name == a.value)
                    .expect("validated manifest: activation_quant names a layer")
            };
            given[storage[v]] = Some(QParams {
                scale: a.scale,
                zero: a.zero_point,
                signed: a.signed,
            });
        }
        let q_of = |v: usize| -> QParams {
            let s = storage[v];
            given[s].unwrap_or_else(|| {
                let (in_range, ranges) = calibrated.get_or_init(|| calibrate(&fnet, calib, n));
                if s == 0 { *in_range } else { ranges[s - 1] }.qparams()
            })
        };
        // A quantized network output (given parameters): the last layer requantizes to codes like any other, and
        // the logits are their dequantized values (as an ONNX QDQ model's final DequantizeLinear).
        let logits_from_codes = given[storage[out_value]].is_some();
        let input_q = q_of(0);
        let mut store_q: Vec<QParams> = vec![input_q; n + 1];
        let mut store_len: Vec<usize> = vec![0; n + 1];
        store_len[0] = graph.input_shape.numel();
        let mut wl = Vec::new();
        let mut steps = Vec::new();
        let mut float_output = false;
        let cfg = model.quant_config().clone();
        let mut i = 0;
        while i < n {
            let l = &layers[i];
            let ins = &graph.inputs[i];
            if is_alias(&l.kind) {
                i += 1;
                continue;
            }
            let in_st: Vec<usize> = ins.iter().map(|&v| storage[v]).collect();
            let qin: Vec<QParams> = in_st.iter().map(|&s| store_q[s]).collect();
            let in_shape: Vec<[usize; 3]> =
                ins.iter().map(|&v| chw(graph.value_shape(v))).collect();
            // The chain of fusible layers after layer i: each reads only the previous, which nobody else reads.
            let chain_after = |first: usize| -> Vec<usize> {
                let mut chain = Vec::new();
                let mut last = first;
                while last + 1 < n
                    && fusible(&layers[last + 1].kind)
                    && graph.inputs[last + 1] == [last + 1]
                    && readers[last + 1] == 1
                    && last + 1 != out_value
                {
                    last += 1;
                    chain.push(last);
                }
                chain
            };
            let op_of = |j: usize| fops[j].clone().expect("computed layers have ops");
            let (op, last) = match op_of(i) {
                Op::Conv {
                    g,
                    cout,
                    groups,
                    weight,
                    bias,
                } => {
                    let k = g.c / groups * g.kh * g.kw;
                    let chain = chain_after(i);
                    let last = chain.last().copied().unwrap_or(i);
                    let stage = Self::stage(
                        &chain,
                        layers,
                        last + 1 == out_value && !logits_from_codes,
                        q_of(last + 1),
                        &fops,
                    );
                    wl.push(WLayer::new(
                        model,
                        &cfg,
                        weight,
                        bias,
                        cout,
                        groups,
                        k,
                        g.c == groups && groups > 1,
                        qin[0],
                    )?);
                    (
                        IOp::Conv {
                            wl: wl.len() - 1,
                            g,
                            stage,
                        },
                        last,
                    )
                }
                Op::Linear {
                    inf,
                    outf,
                    weight,
                    bias,
                } => {
                    let chain = chain_after(i);
                    let last = chain.last().copied().unwrap_or(i);
                    let stage = Self::stage(
                        &chain,
                        layers,
                        last + 1 == out_value && !logits_from_codes,
                        q_of(last + 1),
                        &fops,
                    );
                    wl.push(WLayer::new(
                        model, &cfg, weight, bias, outf, 1, inf, false, qin[0],
                    )?);
                    (
                        IOp::Linear {
                            wl: wl.len() - 1,
                            stage,
                        },
                        last,
                    )
                }
                Op::Pool { g, max: true, .. } => (IOp::MaxPool { g }, i),
                Op::Pool {
                    g,
                    max: false,
                    count_include_pad,
                } => {
                    let qout = q_of(i + 1);
                    (
                        IOp::AvgPool {
                            g,
                            count_include_pad,
                            rq: pool_requant(opts.requant, qin[0], qout, g.kh * g.kw),
                        },
                        i,
                    )
                }
                Op::GlobalAvgPool { c, hw } => {
                    let [_, h, w] = in_shape[0];
                    debug_assert_eq!(h * w, hw);
                    let g = Window {
                        c,
                        h,
                        w,
                        kh: h,
                        kw: w,
                        sh: 1,
                        sw: 1,
                        ph: 0,
                        pw: 0,
                        dh: 1,
                        dw: 1,
                        oh: 1,
                        ow: 1,
                    };
                    let qout = q_of(i + 1);
                    (
                        IOp::AvgPool {
                            g,
                            count_include_pad: true,
                            rq: pool_requant(opts.requant, qin[0], qout, hw),
                        },
                        i,
                    )
                }
                Op::Add => (IOp::Add { qout: q_of(i + 1) }, i),
                Op::Concat { lens } => {
                    let qout = q_of(i + 1);
                    let luts = qin
                        .iter()
                        .map(|q| {
                            (0..=255u8)
                                .map(|b| qout.quantize(q.dequantize(b)))
                                .collect()
                        })
                        .collect();
                    (IOp::Concat { lens, luts }, i)
                }
                _ => {
                    // A standalone elementwise op (and the fusible ones after it) on the PPU.
                    let mut chain = vec![i];
                    chain.extend(chain_after(i));
                    let last = *chain.last().expect("non-empty");
                    let qout = (last + 1 != out_value || logits_from_codes).then(|| q_of(last + 1));
                    (IOp::Ppu { chain, qout }, last)
                }
            };
            // Parameters of the output storage: max pooling keeps its input's; float logits keep none.
            let out_st = storage[last + 1];
            store_q[out_st] = match &op {
                IOp::MaxPool { .. } => qin[0],
                IOp::Conv {
                    stage: Stage::Codes { qout, .. },
                    ..
                }
                | IOp::Linear {
                    stage: Stage::Codes { qout, .. },
                    ..
                }
                | IOp::Add { qout } => *qout,
                IOp::Conv {
                    stage: Stage::Float { qout: Some(q), .. },
                    ..
                }
                | IOp::Linear {
                    stage: Stage::Float { qout: Some(q), .. },
                    ..
                }
                | IOp::Ppu { qout: Some(q), .. } => *q,
                IOp::AvgPool { rq, .. } => QParams {
                    zero: rq.zero,
                    ..q_of(last + 1)
                },
                IOp::Concat { .. } => q_of(last + 1),
                _ => {
                    float_output = true;
                    q_of(last + 1)
                }
            };
            let out_len = graph.shapes[last].numel();
            store_len[out_st] = out_len;
            steps.push(IStep {
                op,
                layer: i,
                inputs: in_st,
                qin,
                in_shape,
                output: out_st,
                out_len,
            });
            i = last + 1;
        }
        let mut net = Int8Network {
            fnet,
            opts,
            wl,
            steps,
            store_len,
            store_q,
            input_q,
            output_storage: storage[out_value],
            float_output,
            classes: graph.outputs(),
            overflows: AtomicU64::new(0),
        };
        net.refresh(model, model.memory_image())?;
        Ok(net)
    }

    /// The output stage of a conv/linear followed by `chain`.
    fn stage(
        chain: &[usize],
        layers: &[crate::model::manifest::Layer],
        is_output: bool,
        qout: QParams,
        fops: &[Option<Op>],
    ) -> Stage {
        if !is_output {
            // Integer stage: [BatchNorm] [ReLU | clip].
            let mut bn = None;
            let mut clamp = None;
            let mut ok = true;
            for (pos, &j) in chain.iter().enumerate() {
                match (&layers[j].kind, pos, bn.is_some()) {
                    (LayerKind::BatchNorm { .. }, 0, _) => bn = Some(j),
                    (LayerKind::Relu, p, has_bn) if p == has_bn as usize => {
                        clamp = Some(Activation::Relu)
                    }
                    (LayerKind::Clip { min, max }, p, has_bn) if p == has_bn as usize => {
                        clamp = Some(Activation::Clip {
                            min: *min,
                            max: *max,
                        })
                    }
                    _ => ok = false,
                }
            }
            if ok
                && matches!(
                    bn.map(|j| &fops[j]),
                    None | Some(Some(Op::BatchNorm { .. }))
                )
            {
                let (lo, hi) = clamp_codes(qout, clamp);
                return Stage::Codes {
                    bn,
                    qout,
                    rq: Requant::new(RequantMode::Float, &[], &[], qout.zero, lo, hi),
                };
            }
        }
        let mut chain = chain.to_vec();
        let relu = !is_output
            && chain
                .last()
                .is_some_and(|&j| matches!(layers[j].kind, LayerKind::Relu));
        if relu {
            chain.pop();
        }
        Stage::Float {
            chain,
            qout: (!is_output).then_some(qout),
            relu,
        }
    }

    /// Re-derives the integer weights, int32 biases and requantization constants from a memory image.
    fn refresh(&mut self, model: &Model, image: &[u8]) -> Result<(), EngineError> {
        let cfg = model.quant_config().clone();
        let mode = self.opts.requant;
        for w in &mut self.wl {
            w.codes = WeightCodes::from_image(model, &cfg, w.weight, image, w.cout)?;
            w.packed = if w.depthwise {
                Vec::new()
            } else {
                let og = w.cout / w.groups;
                (0..w.groups)
                    .map(|gi| {
                        PackedWeights::new(og, w.k, &w.codes.k[gi * og * w.k..(gi + 1) * og * w.k])
                    })
                    .collect()
            };
            // The row-fold weights of the partial-sum replay are cut from these codes: rebuild them on next use.
            w.fold_packed = Default::default();
        }
        let fnet = &self.fnet;
        let fweights = &fnet.weights;
        for st in &mut self.steps {
            let (wi, stage) = match &mut st.op {
                IOp::Conv { wl, stage, .. } | IOp::Linear { wl, stage } => (*wl, stage),
                _ => continue,
            };
            let w = &mut self.wl[wi];
            let sa = w.qin.scale as f64;
            let bias: Vec<f64> = match w.bias {
                Some(b) => fweights[b].iter().map(|&v| v as f64).collect(),
                None => vec![0.0; w.cout],
            };
            match stage {
                Stage::Float { .. } => {
                    w.bias_i32 = (0..w.cout)
                        .map(|c| bias_code(bias[c], sa * w.codes.s[c], &self.overflows))
                        .collect();
                }
                Stage::Codes { bn, qout, rq, .. } => {
                    // BatchNorm y = a·x + b per channel, folded: M = a·s_a·s_c/s_o, M_c = a·s_a·c_c/s_o,
                    // bias = round((a·bias + b) / (a·s_a·s_c)) (a = 0: the shift goes to the offset).
                    let (a, bsh) = match bn.and_then(|j| bn_affine(fnet, j)) {
                        Some(ab) => ab,
                        None => (vec![1.0; w.cout], vec![0.0; w.cout]),
                    };
                    let so = qout.scale as f64;
                    let mut m = Vec::with_capacity(w.cout);
                    let mut mc = Vec::with_capacity(w.cout);
                    let mut off = Vec::with_capacity(w.cout);
                    let mut b32 = Vec::with_capacity(w.cout);
                    for c in 0..w.cout {
                        let unit = a[c] * sa * w.codes.s[c];
                        m.push(unit / so);
                        mc.push(a[c] * sa * w.codes.c[c] / so);
                        if unit != 0.0 && unit.is_finite() {
                            b32.push(bias_code(a[c] * bias[c] + bsh[c], unit, &self.overflows));
                            off.push(0.0);
                        } else {
                            b32.push(0);
                            off.push((a[c] * bias[c] + bsh[c]) / so);
                        }
                    }
                    let asym = w.codes.c.iter().any(|&v| v != 0.0);
                    *rq = Requant::new(
                        mode,
                        &m,
                        if asym { &mc } else { &[] },
                        rq.zero,
                        rq.lo,
                        rq.hi,
                    )
                    .with_offset(&off);
                    w.bias_i32 = b32;
                }
            }
        }
        Ok(())
    }

    /// Re-reads the weights from a (possibly corrupted) memory image laid out as `model.memory_image()`.
    /// `changed`: tensor ids that differ from the last image (`None`: all); the float parameters are re-decoded
    /// for those, the integer weights and derived constants are rebuilt.
    pub fn set_weights_from_image(
        &mut self,
        model: &Model,
        image: &[u8],
        changed: Option<&[usize]>,
    ) -> Result<(), EngineError> {
        self.fnet.set_weights_from_image(model, image, changed)?;
        self.refresh(model, image)
    }

    /// Float values per example a step's PPU needs (its output length; the input length for a PPU chain).
    fn step_float_len(&self, st: &IStep) -> usize {
        match st.op {
            IOp::Ppu { .. } => self.store_len[st.inputs[0]].max(st.out_len),
            _ => st.out_len,
        }
    }

    pub(crate) fn fnet_check_input(&self, batch: &ArrayView4<f32>) -> Result<(), EngineError> {
        self.fnet.check_input(batch)
    }

    /// Number of logits.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Per-example input shape.
    pub fn input_shape(&self) -> [usize; 3] {
        self.fnet.input_shape()
    }

    /// Accumulators (and int32 biases) that left the int32 range and were saturated, since build.
    pub fn overflow_count(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }

    /// The input's activation parameters.
    pub fn input_qparams(&self) -> QParams {
        self.input_q
    }

    /// The options this network was built with.
    pub fn options(&self) -> Int8Options {
        self.opts
    }

    /// Logits (N x classes) for a batch, activation buffers read through `store`; `first_image` is the index
    /// of the batch's first example in the evaluated split (for the store's per-access randomness).
    pub fn forward(
        &self,
        batch: ArrayView4<f32>,
        store: &dyn ActivationStore,
        first_image: u64,
    ) -> Result<ndarray::Array2<f32>, EngineError> {
        self.fnet.check_input(&batch)?;
        let n = batch.shape()[0];
        let images: Vec<u64> = (0..n as u64).map(|i| first_image + i).collect();
        let x = batch.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let per = x.len() / n.max(1);
        let mut logits = vec![0.0f32; n * self.classes];
        logits
            .par_chunks_mut(CHUNK * self.classes)
            .enumerate()
            .for_each_init(Workspace::default, |ws, (ci, out)| {
                let b = out.len() / self.classes;
                let xs = &x[ci * CHUNK * per..(ci * CHUNK + b) * per];
                self.forward_chunk(xs, b, &images[ci * CHUNK..ci * CHUNK + b], store, ws, out);
            });
        Ok(ndarray::Array2::from_shape_vec((n, self.classes), logits).expect("n x classes"))
    }

    /// Predicted class per example (argmax of the logits, as [`Network::predict_with`]); `images[i]` is example
    /// i's index in the evaluated split (`None`: 0, 1, 2, ...).
    pub fn predict_with_store(
        &self,
        batch: ArrayView4<f32>,
        images: Option<&[u64]>,
        store: &dyn ActivationStore,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<u16>, EngineError> {
        self.fnet.check_input(&batch)?;
        let n = batch.shape()[0];
        let own: Vec<u64>;
        let images = match images {
            Some(v) if v.len() == n => v,
            Some(v) => {
                return Err(EngineError::Length {
                    what: "image indices".into(),
                    expected: n,
                    got: v.len(),
                })
            }
            None => {
                own = (0..n as u64).collect();
                &own
            }
        };
        let x = batch.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let per = x.len() / n.max(1);
        let mut pred = vec![0u16; n];
        pred.par_chunks_mut(CHUNK).enumerate().for_each_init(
            || (Workspace::default(), Vec::new()),
            |(ws, logits), (ci, out)| {
                let b = out.len();
                logits.resize(b * self.classes, 0.0);
                let xs = &x[ci * CHUNK * per..(ci * CHUNK + b) * per];
                self.forward_chunk(
                    xs,
                    b,
                    &images[ci * CHUNK..ci * CHUNK + b],
                    store,
                    ws,
                    logits,
                );
                for (p, row) in out.iter_mut().zip(logits.chunks_exact(self.classes)) {
                    *p = argmax(row);
                }
                progress(b);
            },
        );
        Ok(pred)
    }

    /// One chunk of `b` examples; writes `b x classes` logits.
    fn forward_chunk(
        &self,
        x: &[f32],
        b: usize,
        images: &[u64],
        store: &dyn ActivationStore,
        ws: &mut Workspace,
        logits: &mut [f32],
    ) {
        if ws.vals.len() < self.store_len.len() {
            ws.vals.resize(self.store_len.len(), Vec::new());
        }
        {
            let q = self.input_q;
            let v = &mut ws.vals[0];
            v.resize(x.len(), 0);
            simd::quantize_slice(q, x, v);
        }
        let mut overflow = 0u64;
        // Partial sums of folded reductions go through the buffers when the store says they can fail.
        let psum = match store.is_reliable() {
            true => None,
            false => store.psum_rows().map(|rows| psums::PsumCtx {
                store,
                rows,
                images,
                path: self.opts.path,
            }),
        };
        for st in &self.steps {
            let mut out = std::mem::take(&mut ws.vals[st.output]);
            out.resize(b * st.out_len, 0);
            // Read every stored input map back through the activation buffers.
            let mut reads: Vec<Vec<u8>> = Vec::new();
            if !store.is_reliable() {
                for (j, &s) in st.inputs.iter().enumerate() {
                    let len = self.store_len[s];
                    let mut r = ws.vals[s][..b * len].to_vec();
                    for (e, codes) in r.chunks_exact_mut(len).enumerate() {
                        let map = StoredMap {
                            layer: st.layer,
                            shape: st.in_shape[j],
                            image: images[e],
                        };
                        store.read_back(&map, codes);
                    }
                    reads.push(r);
                }
            }
            let ins: Vec<&[u8]> = if reads.is_empty() {
                st.inputs
                    .iter()
                    .map(|&s| &ws.vals[s][..b * self.store_len[s]])
                    .collect()
            } else {
                reads.iter().map(|r| r.as_slice()).collect()
            };
            let last = std::ptr::eq(st, self.steps.last().expect("steps"));
            if ws.f.len() < b * st.out_len.max(self.step_float_len(st)) {
                ws.f.resize(b * st.out_len.max(self.step_float_len(st)), 0.0);
            }
            let flo: &mut [f32] = if last && self.float_output {
                logits
            } else {
                &mut ws.f
            };
            overflow += self.run_step(st, b, &ins, &mut out, flo, &mut ws.s, psum.as_ref());
            ws.vals[st.output] = out;
        }
        if !self.float_output {
            let q = self.store_q[self.output_storage];
            for (o, &c) in logits
                .iter_mut()
                .zip(&ws.vals[self.output_storage][..b * self.classes])
            {
                *o = q.dequantize(c);
            }
        }
        if overflow > 0 {
            self.overflows.fetch_add(overflow, Ordering::Relaxed);
        }
    }
}

/// Per-channel `(a, b)` of the BatchNorm layer `j`: `a = γ / sqrt(var + eps)` (`γ = 1 + weight` when
/// reparameterized), `b = β - a·mean`, in f64 from the decoded parameters.
fn bn_affine(fnet: &Network, j: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    let st = fnet.steps.iter().find(|s| s.layer == j)?;
    match &st.op {
        Op::BatchNorm {
            c,
            eps,
            reparameterized,
            weight,
            bias,
            mean,
            var,
            ..
        } => {
            let (wv, bv) = (&fnet.weights[*weight], &fnet.weights[*bias]);
            let a: Vec<f64> = (0..*c)
                .map(|i| {
                    let g = if *reparameterized {
                        1.0 + wv[i] as f64
                    } else {
                        wv[i] as f64
                    };
                    g / (var[i] as f64 + *eps as f64).sqrt()
                })
                .collect();
            let b = (0..*c)
                .map(|i| bv[i] as f64 - a[i] * mean[i] as f64)
                .collect();
            Some((a, b))
        }
        _ => None,
    }
}

/// Per-thread buffers.
#[derive(Default)]
struct Workspace {
    vals: Vec<Vec<u8>>,
    f: Vec<f32>,
    s: Scratch,
}

/// Scratch of the integer kernels.
#[derive(Default)]
pub(crate) struct Scratch {
    xu: Vec<u8>,
    k: kernels::KernelScratch,
    acc: Vec<i32>,
    asum: Vec<i32>,
    counts: Vec<u32>,
    /// Partial-sum replay through faulty buffers (one example at a time).
    psum: psums::PsumScratch,
}

/// The int32 bias code `round_half_even(b / unit)`, saturated (and counted) outside i32.
fn bias_code(b: f64, unit: f64, overflows: &AtomicU64) -> i32 {
    if unit == 0.0 || !unit.is_finite() || !b.is_finite() {
        return 0;
    }
    let t = (b / unit).round_ties_even();
    if t > i32::MAX as f64 || t < i32::MIN as f64 {
        overflows.fetch_add(1, Ordering::Relaxed);
    }
    t.clamp(i32::MIN as f64, i32::MAX as f64) as i32
}

/// Saturation bounds of output codes with a fused ReLU (`[q(0), max]`) or clip (`[q(min), q(max)]`).
fn clamp_codes(q: QParams, act: Option<Activation>) -> (i32, i32) {
    let (lo, hi) = q.code_range();
    match act {
        Some(Activation::Relu) => (q.zero.max(lo), hi),
        Some(Activation::Clip { min, max }) => (
            q.code_of(q.quantize(min)).max(lo),
            q.code_of(q.quantize(max)).min(hi),
        ),
        _ => (lo, hi),
    }
}

/// Requantization of average-pool window sums: channel `d - 1` holds `M = s_in / (d · s_out)`.
fn pool_requant(mode: RequantMode, qin: QParams, qout: QParams, max_count: usize) -> Requant {
    let m: Vec<f64> = (1..=max_count)
        .map(|d| qin.scale as f64 / (d as f64 * qout.scale as f64))
        .collect();
    let (lo, hi) = qout.code_range();
    Requant::new(mode, &m, &[], qout.zero, lo, hi)
}

mod exec;

#[cfg(test)]
mod tests;
