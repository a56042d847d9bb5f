//! Functional inference engine: batched float32 forward passes on the CPU over de-quantized weights (the paper's
//! "fake quantization": storage is quantized, arithmetic is float; docs/quantization.md#fake-quantization), and accuracy evaluation.
//!
//! - [`Network`] is compiled once from a [`Model`]: the layer list becomes a list of steps over a few reusable
//!   activation buffers (liveness-based reuse, in-place elementwise layers, zero-copy flatten/identity).
//! - Convolutions are GEMMs over the im2col matrix, read through offset tables from a zero-padded copy of the
//!   input instead of built ([`kernels::conv2d_packed`]; [`sgemm`]: our own packed, cache-blocked SGEMM with AVX-512F / AVX2+FMA
//!   micro-kernels chosen at run time, every output one fused multiply-add chain over `k` in a fixed order, so the
//!   same bits on every machine), depthwise convolutions direct, linear layers one GEMM per chunk; rayon runs over
//!   fixed-size chunks of the batch, so results are bit-identical for any thread count.
//! - Weights are swapped cheaply: [`Network::set_weights_from_image`] re-decodes only the tensors that changed.
//! - [`Evaluator`] computes the clean predictions once and then the robust error of any number of faulty weight
//!   sets, running the faulty network only on the examples the clean network gets right (docs/run-and-sweep.md#evaluation-protocol: an example
//!   counts as wrong if the clean *or* the faulty prediction is wrong).
use ndarray::{Array2, ArrayView4};
use rayon::prelude::*;

use crate::model::{LayerKind, Model, Shape};

pub mod act_store;
pub mod eval;
pub mod int8;
pub mod kernels;
pub mod sgemm;

pub use eval::{evaluate, CleanEval, Evaluator, RobustEval};
use kernels::{Activation, Window};

/// Images per work item of the integer datapath, and the most the float engine puts in one ([`float_chunk`]).
/// Fixed by the model, never derived from the thread count, so that results do not depend on it (they do not
/// depend on the chunk size either: every example is computed on its own).
pub const CHUNK: usize = 32;

/// Bytes one activation slot of a float work item may take before the float engine puts fewer images in it:
/// a chunk's input and output maps then stay in a core's L2 (docs/onnx.md#speed-of-the-float-engine).
pub const CHUNK_SLOT_BYTES: usize = 2 << 20;

/// Images per work item of the float engine: the largest power of two from 8 to [`CHUNK`] whose widest output
/// map (`max_out_len` floats per image) fits in [`CHUNK_SLOT_BYTES`]; but [`CHUNK`] when the weights
/// (`weight_floats`) do not fit in that either, since each work item streams all of them from memory once, and
/// more images per item is then what amortizes that. A MobileNet-style model (200 KiB maps, 0.5 MiB of weights)
/// gets 8; the companion's CNN (50 KiB maps) and a ResNet-18-size model (45 MB of weights) get 32.
pub fn float_chunk(max_out_len: usize, weight_floats: usize) -> usize {
    if weight_floats * std::mem::size_of::<f32>() > CHUNK_SLOT_BYTES {
        return CHUNK;
    }
    let fit = CHUNK_SLOT_BYTES / (max_out_len.max(1) * std::mem::size_of::<f32>());
    let mut chunk = CHUNK;
    while chunk > 8 && chunk > fit {
        chunk /= 2;
    }
    chunk
}

/// Errors of the engine (shape mismatches between a network and the data or weights handed to it).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("input batch has per-example shape {got:?}, the model expects {expected:?}")]
    InputShape {
        expected: [usize; 3],
        got: [usize; 3],
    },
    #[error("{what}: got {got}, expected {expected}")]
    Length {
        what: String,
        expected: usize,
        got: usize,
    },
    /// A model or option the integer datapath cannot run (one line, naming what is allowed).
    #[error("{0}")]
    Unsupported(String),
    #[error("tensor id {id} out of range (the model has {count} parameter tensors)")]
    TensorId { id: usize, count: usize },
    #[error("label {label} of example {index} is out of range for {classes} logits")]
    Label {
        index: usize,
        label: u8,
        classes: usize,
    },
}

#[derive(Clone, Debug)]
enum Op {
    Conv {
        g: Window,
        cout: usize,
        groups: usize,
        weight: usize,
        bias: Option<usize>,
    },
    Linear {
        inf: usize,
        outf: usize,
        weight: usize,
        bias: Option<usize>,
    },
    Act(Activation),
    Softmax {
        len: usize,
    },
    Pool {
        g: Window,
        max: bool,
        count_include_pad: bool,
    },
    Concat {
        lens: Vec<usize>,
    },
    /// Per-channel multiply (`add = false`) or add of a parameter tensor.
    Channel {
        c: usize,
        hw: usize,
        param: usize,
        add: bool,
    },
    GlobalAvgPool {
        c: usize,
        hw: usize,
    },
    Add,
    GroupNorm {
        c: usize,
        hw: usize,
        groups: usize,
        eps: f32,
        reparameterized: bool,
        weight: usize,
        bias: usize,
    },
    BatchNorm {
        c: usize,
        hw: usize,
        eps: f32,
        reparameterized: bool,
        weight: usize,
        bias: usize,
        mean: Vec<f32>,
        var: Vec<f32>,
    },
}

impl Op {
    /// Elementwise ops may write their output over their (first) input.
    fn elementwise(&self) -> bool {
        matches!(
            self,
            Op::Act(_)
                | Op::Softmax { .. }
                | Op::Channel { .. }
                | Op::Add
                | Op::GroupNorm { .. }
                | Op::BatchNorm { .. }
        )
    }
}

#[derive(Clone, Debug)]
struct Step {
    op: Op,
    /// Index of the manifest layer this step computes.
    layer: usize,
    /// Buffer slots read.
    inputs: Vec<usize>,
    /// Buffer slot written (equal to `inputs[0]` for in-place ops).
    output: usize,
    /// Values per example of the output.
    out_len: usize,
}

/// A compiled network holding decoded float32 weights.
#[derive(Clone, Debug)]
pub struct Network {
    steps: Vec<Step>,
    n_slots: usize,
    input_slot: usize,
    output_slot: usize,
    input_shape: [usize; 3],
    classes: usize,
    /// Decoded weights per parameter tensor id.
    weights: Vec<Vec<f32>>,
    /// Per parameter tensor id, the GEMM operands of a dense or grouped convolution's weights (one per group,
    /// [`kernels::pack_conv_weights`]), rebuilt whenever the weights are decoded; empty for other tensors.
    packed: Vec<Vec<sgemm::PackedLhs>>,
    /// Images per work item ([`float_chunk`]).
    chunk: usize,
}

/// What [`Network::forward_chunk_observed`] calls with each computed layer's index and output values.
type Observer<'a> = &'a mut dyn FnMut(usize, &[f32]);

/// Per-thread scratch: activation slots and the convolutions' buffer (padded inputs, side-by-side blocks).
struct Workspace {
    slots: Vec<Vec<f32>>,
    cols: Vec<f32>,
}

impl Network {
    /// Compiles the model's graph and decodes its weights from the model's (clean) memory image.
    pub fn from_model(model: &Model) -> Network {
        let mut net = Network::compile(model);
        for (id, w) in net.weights.iter_mut().enumerate() {
            model.decode_param(id, model.memory_image(), w);
        }
        net.repack(None);
        net
    }

    /// Rebuilds the packed convolution weights of tensors `ids` (`None`: all).
    fn repack(&mut self, ids: Option<&[usize]>) {
        self.packed.resize_with(self.weights.len(), Vec::new);
        for st in &self.steps {
            if let Op::Conv {
                g,
                cout,
                groups,
                weight,
                ..
            } = &st.op
            {
                if ids.is_none_or(|ids| ids.contains(weight)) {
                    self.packed[*weight] =
                        kernels::pack_conv_weights(g, *cout, *groups, &self.weights[*weight]);
                }
            }
        }
    }

    /// Compiles the model's graph with the float master weights as stored in the file (no quantization): the
    /// reference the golden test compares with PyTorch, and a "no quantization" baseline.
    pub fn from_model_float(model: &Model) -> Network {
        let mut net = Network::compile(model);
        for (id, w) in net.weights.iter_mut().enumerate() {
            w.copy_from_slice(model.float_param(id));
        }
        net.repack(None);
        net
    }

    /// Re-decodes weights from a (possibly corrupted) memory image laid out as `model.memory_image()`.
    /// `changed`: the tensor ids to re-decode (`None` = all). Nothing else is rebuilt or copied.
    pub fn set_weights_from_image(
        &mut self,
        model: &Model,
        image: &[u8],
        changed: Option<&[usize]>,
    ) -> Result<(), EngineError> {
        let expected = model.memory_image().len();
        if image.len() != expected {
            return Err(EngineError::Length {
                what: "memory image bytes".into(),
                expected,
                got: image.len(),
            });
        }
        let count = self.weights.len();
        match changed {
            None => {
                for (id, w) in self.weights.iter_mut().enumerate() {
                    model.decode_param(id, image, w);
                }
            }
            Some(ids) => {
                if let Some(&id) = ids.iter().find(|&&id| id >= count) {
                    return Err(EngineError::TensorId { id, count });
                }
                for &id in ids {
                    model.decode_param(id, image, &mut self.weights[id]);
                }
            }
        }
        self.repack(changed);
        Ok(())
    }

    /// The decoded weights of parameter tensor `id` (memory order, see `Model::param_tensors`).
    pub fn weights(&self, id: usize) -> &[f32] {
        &self.weights[id]
    }

    /// Per-example input shape (C, H, W).
    pub fn input_shape(&self) -> [usize; 3] {
        self.input_shape
    }

    /// Number of logits.
    pub fn classes(&self) -> usize {
        self.classes
    }

    fn compile(model: &Model) -> Network {
        let graph = model.graph();
        let layers = &model.manifest().layers;
        let n = layers.len();
        let pid = |name: &str| {
            model
                .param_id(name)
                .expect("loader registered every parameter")
        };
        // Storage of each value: aliases (flatten, identity, dropout) share their input's storage.
        let mut storage: Vec<usize> = vec![0; n + 1];
        for (i, l) in layers.iter().enumerate() {
            storage[i + 1] = match l.kind {
                LayerKind::Flatten
                | LayerKind::Identity
                | LayerKind::Dropout
                | LayerKind::Reshape { .. } => storage[graph.inputs[i][0]],
                _ => i + 1,
            };
        }
        // Last layer reading each storage; the final output lives forever.
        let mut last_use: Vec<usize> = vec![0; n + 1];
        for (i, ins) in graph.inputs.iter().enumerate() {
            for &v in ins {
                last_use[storage[v]] = last_use[storage[v]].max(i);
            }
        }
        last_use[storage[n]] = usize::MAX;
        let mut slot_of: Vec<Option<usize>> = vec![None; n + 1];
        let mut free: Vec<usize> = Vec::new();
        let mut n_slots = 1;
        slot_of[0] = Some(0);
        let mut steps = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let ins = &graph.inputs[i];
            let x = graph.value_shape(ins[0]);
            let out_shape = graph.shapes[i];
            let (c, h, w) = match x {
                Shape::Chw(c, h, w) => (c, h, w),
                Shape::Flat(f) => (f, 1, 1),
            };
            let window = |k: [usize; 2], s: [usize; 2], p: [usize; 4], d: [usize; 2]| {
                let (oh, ow) = match out_shape {
                    Shape::Chw(_, oh, ow) => (oh, ow),
                    Shape::Flat(_) => (1, 1),
                };
                Window {
                    c,
                    h,
                    w,
                    kh: k[0],
                    kw: k[1],
                    sh: s[0],
                    sw: s[1],
                    ph: p[0],
                    pw: p[1],
                    dh: d[0],
                    dw: d[1],
                    oh,
                    ow,
                }
            };
            let op = match &l.kind {
                LayerKind::Flatten
                | LayerKind::Identity
                | LayerKind::Dropout
                | LayerKind::Reshape { .. } => continue,
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
                } => Op::Conv {
                    g: window(*kernel, *stride, *padding, *dilation),
                    cout: *out_channels,
                    groups: *groups,
                    weight: pid(weight),
                    bias: bias.as_deref().map(pid),
                },
                LayerKind::Linear {
                    in_features,
                    out_features,
                    weight,
                    bias,
                } => Op::Linear {
                    inf: *in_features,
                    outf: *out_features,
                    weight: pid(weight),
                    bias: bias.as_deref().map(pid),
                },
                LayerKind::Relu => Op::Act(Activation::Relu),
                LayerKind::Clip { min, max } => Op::Act(Activation::Clip {
                    min: *min,
                    max: *max,
                }),
                LayerKind::LeakyRelu { alpha } => Op::Act(Activation::LeakyRelu { alpha: *alpha }),
                LayerKind::Sigmoid => Op::Act(Activation::Sigmoid),
                LayerKind::HardSigmoid { alpha, beta } => Op::Act(Activation::HardSigmoid {
                    alpha: *alpha,
                    beta: *beta,
                }),
                LayerKind::HardSwish => Op::Act(Activation::HardSwish),
                LayerKind::Softmax => Op::Softmax {
                    len: out_shape.numel(),
                },
                LayerKind::Concat { .. } => Op::Concat {
                    lens: ins.iter().map(|&v| graph.value_shape(v).numel()).collect(),
                },
                LayerKind::ChannelMul { weight, .. } => Op::Channel {
                    c,
                    hw: h * w,
                    param: pid(weight),
                    add: false,
                },
                LayerKind::ChannelAdd { bias, .. } => Op::Channel {
                    c,
                    hw: h * w,
                    param: pid(bias),
                    add: true,
                },
                LayerKind::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                } => Op::Pool {
                    g: window(*kernel, *stride, *padding, [1, 1]),
                    max: true,
                    count_include_pad: true,
                },
                LayerKind::AvgPool2d {
                    kernel,
                    stride,
                    padding,
                    count_include_pad,
                } => Op::Pool {
                    g: window(*kernel, *stride, *padding, [1, 1]),
                    max: false,
                    count_include_pad: *count_include_pad,
                },
                LayerKind::GlobalAvgPool => Op::GlobalAvgPool { c, hw: h * w },
                LayerKind::Add { .. } => Op::Add,
                LayerKind::GroupNorm {
                    groups,
                    eps,
                    reparameterized,
                    weight,
                    bias,
                    ..
                } => Op::GroupNorm {
                    c,
                    hw: h * w,
                    groups: *groups,
                    eps: *eps,
                    reparameterized: *reparameterized,
                    weight: pid(weight),
                    bias: pid(bias),
                },
                LayerKind::BatchNorm {
                    eps,
                    reparameterized,
                    weight,
                    bias,
                    running_mean,
                    running_var,
                    ..
                } => Op::BatchNorm {
                    c,
                    hw: h * w,
                    eps: *eps,
                    reparameterized: *reparameterized,
                    weight: pid(weight),
                    bias: pid(bias),
                    mean: model
                        .buffer(running_mean)
                        .expect("loader read buffers")
                        .to_vec(),
                    var: model
                        .buffer(running_var)
                        .expect("loader read buffers")
                        .to_vec(),
                },
            };
            let in_slots: Vec<usize> = ins
                .iter()
                .map(|&v| slot_of[storage[v]].expect("inputs are computed before use"))
                .collect();
            let first = storage[ins[0]];
            // In place when elementwise and this is the last reader of its first input (and, for add, the two
            // operands are distinct storages).
            let in_place = op.elementwise()
                && last_use[first] == i
                && first != 0
                && !(ins.len() == 2 && storage[ins[1]] == first);
            // A concat may read one storage twice; every operand is released once below.
            let output = if in_place {
                in_slots[0]
            } else {
                free.pop().unwrap_or_else(|| {
                    n_slots += 1;
                    n_slots - 1
                })
            };
            // Release storages whose last reader is this layer (except the one reused in place).
            for &v in ins {
                let s = storage[v];
                if last_use[s] == i {
                    if let Some(sl) = slot_of[s].take() {
                        if sl != output && !free.contains(&sl) {
                            free.push(sl);
                        }
                    }
                }
            }
            slot_of[i + 1] = Some(output);
            steps.push(Step {
                op,
                layer: i,
                inputs: in_slots,
                output,
                out_len: out_shape.numel(),
            });
        }
        let output_slot = slot_of[storage[n]].expect("the output is computed");
        let weights: Vec<Vec<f32>> = model
            .param_tensors()
            .iter()
            .map(|p| vec![0.0; p.len])
            .collect();
        let max_out_len = steps.iter().map(|st| st.out_len).max().unwrap_or(0);
        let weight_floats = weights.iter().map(Vec::len).sum();
        Network {
            steps,
            n_slots,
            input_slot: 0,
            output_slot,
            input_shape: model.manifest().input.shape,
            classes: graph.outputs(),
            weights,
            packed: Vec::new(),
            chunk: float_chunk(max_out_len, weight_floats),
        }
    }

    fn workspace(&self) -> Workspace {
        Workspace {
            slots: vec![Vec::new(); self.n_slots],
            cols: Vec::new(),
        }
    }

    /// Checks that a batch has this network's per-example shape.
    pub fn check_input(&self, batch: &ArrayView4<f32>) -> Result<(), EngineError> {
        let s = batch.shape();
        let got = [s[1], s[2], s[3]];
        if got != self.input_shape {
            return Err(EngineError::InputShape {
                expected: self.input_shape,
                got,
            });
        }
        Ok(())
    }

    /// Runs one chunk of `b` examples (`x` contiguous, b x C x H x W) and returns the logits (b x classes).
    fn forward_chunk<'w>(&self, x: &[f32], b: usize, ws: &'w mut Workspace) -> &'w [f32] {
        self.forward_chunk_observed(x, b, ws, None)
    }

    /// [`Network::forward_chunk`], calling `observe(layer, output)` after each computed layer with its output
    /// values for the chunk (aliases such as flatten are not computed and not observed). Without an observer, a
    /// convolution's in-place activation runs inside the convolution, example by example (the same values).
    fn forward_chunk_observed<'w>(
        &self,
        x: &[f32],
        b: usize,
        ws: &'w mut Workspace,
        mut observe: Option<Observer>,
    ) -> &'w [f32] {
        {
            let s = &mut ws.slots[self.input_slot];
            s.clear();
            s.extend_from_slice(x);
        }
        let mut fused = false;
        for (si, st) in self.steps.iter().enumerate() {
            if std::mem::take(&mut fused) {
                continue; // an activation already applied by the convolution before it
            }
            // The next step's activation, when it runs in place on this step's output and nobody observes.
            let next_act = match self.steps.get(si + 1) {
                Some(Step {
                    op: Op::Act(a),
                    inputs,
                    output,
                    ..
                }) if observe.is_none() && inputs[0] == st.output && *output == st.output => {
                    Some(*a)
                }
                _ => None,
            };
            let mut out = std::mem::take(&mut ws.slots[st.output]);
            let need = b * st.out_len;
            if out.len() < need {
                out.resize(need, 0.0);
            }
            let in_place = st.inputs[0] == st.output;
            let src = |k: usize| -> &[f32] { &ws.slots[st.inputs[k]] };
            match &st.op {
                Op::Conv {
                    g,
                    cout,
                    groups,
                    weight,
                    bias,
                } if self.packed.get(*weight).is_some_and(|p| !p.is_empty()) => {
                    fused = next_act.is_some();
                    kernels::conv2d_packed(
                        src(0),
                        b,
                        g,
                        *cout,
                        *groups,
                        &self.packed[*weight],
                        bias.map(|i| self.weights[i].as_slice()),
                        next_act,
                        &mut out,
                        &mut ws.cols,
                    )
                }
                Op::Conv {
                    g,
                    cout,
                    groups,
                    weight,
                    bias,
                } if g.c == *groups && *groups > 1 => {
                    fused = next_act.is_some();
                    kernels::depthwise_conv2d_fused(
                        src(0),
                        b,
                        g,
                        *cout,
                        &self.weights[*weight],
                        bias.map(|i| self.weights[i].as_slice()),
                        next_act,
                        &mut out,
                    )
                }
                Op::Conv {
                    g,
                    cout,
                    groups,
                    weight,
                    bias,
                } => kernels::conv2d(
                    src(0),
                    b,
                    g,
                    *cout,
                    *groups,
                    &self.weights[*weight],
                    bias.map(|i| self.weights[i].as_slice()),
                    &mut out,
                    &mut ws.cols,
                ),
                Op::Linear {
                    inf,
                    outf,
                    weight,
                    bias,
                } => kernels::linear(
                    src(0),
                    b,
                    *inf,
                    *outf,
                    &self.weights[*weight],
                    bias.map(|i| self.weights[i].as_slice()),
                    &mut out,
                ),
                Op::Pool {
                    g,
                    max,
                    count_include_pad,
                } => kernels::pool2d(src(0), b, g, *max, *count_include_pad, &mut out),
                Op::Concat { lens } => {
                    let parts: Vec<&[f32]> = (0..lens.len()).map(src).collect();
                    kernels::concat(&parts, lens, b, &mut out)
                }
                Op::GlobalAvgPool { c, hw } => {
                    kernels::global_avgpool(src(0), b, *c, *hw, &mut out)
                }
                Op::Add if !in_place => {
                    // One pass instead of a copy of the first input and an addition of the second.
                    kernels::add_into(&mut out[..need], &src(0)[..need], &src(1)[..need])
                }
                elementwise => {
                    if !in_place {
                        out[..need].copy_from_slice(&src(0)[..need]);
                    }
                    let o = &mut out[..need];
                    match elementwise {
                        Op::Act(a) => kernels::activate(o, *a),
                        Op::Softmax { len } => kernels::softmax(o, *len),
                        Op::Channel { c, hw, param, add } => {
                            kernels::channel_affine(o, *c, *hw, &self.weights[*param], *add)
                        }
                        Op::Add => kernels::add_assign(o, &src(1)[..need]),
                        Op::GroupNorm {
                            c,
                            hw,
                            groups,
                            eps,
                            reparameterized,
                            weight,
                            bias,
                        } => kernels::group_norm(
                            o,
                            b,
                            *c,
                            *hw,
                            *groups,
                            *eps,
                            &self.weights[*weight],
                            &self.weights[*bias],
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
                        } => kernels::batch_norm(
                            o,
                            b,
                            *c,
                            *hw,
                            *eps,
                            &self.weights[*weight],
                            &self.weights[*bias],
                            mean,
                            var,
                            *reparameterized,
                        ),
                        _ => unreachable!("non-elementwise ops are handled above"),
                    }
                }
            }
            if let Some(o) = observe.as_mut() {
                o(st.layer, &out[..need]);
            }
            ws.slots[st.output] = out;
        }
        &ws.slots[self.output_slot][..b * self.classes]
    }

    /// Logits for a batch (N x C x H x W, normalized as the model's `[input]` says).
    ///
    /// # Panics
    /// If the per-example shape differs from the model's; call [`Network::check_input`] first on untrusted data.
    pub fn forward(&self, batch: ArrayView4<f32>) -> Array2<f32> {
        if let Err(e) = self.check_input(&batch) {
            panic!("Network::forward: {e}");
        }
        let n = batch.shape()[0];
        let x = batch.as_standard_layout();
        let x = x.as_slice().expect("standard layout is contiguous");
        let per = x.len() / n.max(1);
        let mut logits = vec![0.0f32; n * self.classes];
        logits
            .par_chunks_mut(self.chunk * self.classes)
            .enumerate()
            .for_each_init(
                || self.workspace(),
                |ws, (ci, out)| {
                    let b = out.len() / self.classes;
                    let xs = &x[ci * self.chunk * per..(ci * self.chunk + b) * per];
                    out.copy_from_slice(self.forward_chunk(xs, b, ws));
                },
            );
        Array2::from_shape_vec((n, self.classes), logits).expect("n x classes logits")
    }

    /// Predicted class per example (argmax of the logits; the first maximum on ties; `u16::MAX` when every logit
    /// is NaN, which then never matches a label). `progress` is called with the number of examples finished by
    /// each chunk.
    pub fn predict_with(
        &self,
        batch: ArrayView4<f32>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<u16>, EngineError> {
        self.check_input(&batch)?;
        let n = batch.shape()[0];
        let x = batch.as_standard_layout();
        let x = x.as_slice().expect("standard layout is contiguous");
        let per = x.len() / n.max(1);
        let mut pred = vec![0u16; n];
        pred.par_chunks_mut(self.chunk).enumerate().for_each_init(
            || self.workspace(),
            |ws, (ci, out)| {
                let b = out.len();
                let xs = &x[ci * self.chunk * per..(ci * self.chunk + b) * per];
                let logits = self.forward_chunk(xs, b, ws);
                for (p, row) in out.iter_mut().zip(logits.chunks_exact(self.classes)) {
                    *p = argmax(row);
                }
                progress(b);
            },
        );
        Ok(pred)
    }

    /// Predicted class per example, see [`Network::predict_with`].
    pub fn predict(&self, batch: ArrayView4<f32>) -> Result<Vec<u16>, EngineError> {
        self.predict_with(batch, &|_| {})
    }
}

/// A compiled network that predicts classes: the float engine ([`Network`]) or the integer datapath
/// ([`int8::Int8Network`], docs/datapath.md). [`Evaluator`] and the sweeps run either.
pub trait Inference: Sync + Send {
    /// Checks that a batch has the network's per-example shape.
    fn check_input(&self, batch: &ArrayView4<f32>) -> Result<(), EngineError>;
    /// Number of logits.
    fn classes(&self) -> usize;
    /// Predicted class per example (argmax, first maximum, `u16::MAX` for all-NaN logits). `images[i]`: example
    /// i's index in the evaluated split (`None`: 0, 1, ...); `store`: the activation buffers the integer datapath
    /// reads its stored maps through (the float engine stores no activation codes and ignores it).
    fn predict_images(
        &self,
        batch: ArrayView4<f32>,
        images: Option<&[u64]>,
        store: &dyn act_store::ActivationStore,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<u16>, EngineError>;
    /// Re-reads the weights from a (possibly corrupted) memory image (see [`Network::set_weights_from_image`]).
    fn set_weights_from_image(
        &mut self,
        model: &Model,
        image: &[u8],
        changed: Option<&[usize]>,
    ) -> Result<(), EngineError>;
    /// `float` or `int8`.
    fn datapath(&self) -> &'static str;
}

impl Inference for Network {
    fn check_input(&self, batch: &ArrayView4<f32>) -> Result<(), EngineError> {
        Network::check_input(self, batch)
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn predict_images(
        &self,
        batch: ArrayView4<f32>,
        _images: Option<&[u64]>,
        _store: &dyn act_store::ActivationStore,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<u16>, EngineError> {
        self.predict_with(batch, progress)
    }
    fn set_weights_from_image(
        &mut self,
        model: &Model,
        image: &[u8],
        changed: Option<&[usize]>,
    ) -> Result<(), EngineError> {
        Network::set_weights_from_image(self, model, image, changed)
    }
    fn datapath(&self) -> &'static str {
        "float"
    }
}

impl Inference for int8::Int8Network {
    fn check_input(&self, batch: &ArrayView4<f32>) -> Result<(), EngineError> {
        self.fnet_check_input(batch)
    }
    fn classes(&self) -> usize {
        int8::Int8Network::classes(self)
    }
    fn predict_images(
        &self,
        batch: ArrayView4<f32>,
        images: Option<&[u64]>,
        store: &dyn act_store::ActivationStore,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<u16>, EngineError> {
        self.predict_with_store(batch, images, store, progress)
    }
    fn set_weights_from_image(
        &mut self,
        model: &Model,
        image: &[u8],
        changed: Option<&[usize]>,
    ) -> Result<(), EngineError> {
        int8::Int8Network::set_weights_from_image(self, model, image, changed)
    }
    fn datapath(&self) -> &'static str {
        "int8"
    }
}

/// Index of the first maximal non-NaN value; `u16::MAX` when all are NaN.
pub fn argmax(row: &[f32]) -> u16 {
    let mut best = u16::MAX;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in row.iter().enumerate() {
        if !v.is_nan() && (best == u16::MAX || v > best_v) {
            best = i as u16;
            best_v = v;
        }
    }
    best
}

#[cfg(test)]
mod tests;
