//! Shape inference over a manifest's layers: resolves each layer's inputs and checks every shape, so that the engine
//! can trust the graph. Value ids: 0 is the network input, `i + 1` is the output of layer `i`.
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::manifest::{Layer, LayerKind, Manifest};
use super::ModelError;

/// Per-example shape of a value flowing through the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Feature maps: channels, height, width.
    Chw(usize, usize, usize),
    /// A feature vector (after `flatten`, `global_avgpool` or `linear`).
    Flat(usize),
}

impl Shape {
    /// Number of values per example.
    pub fn numel(self) -> usize {
        match self {
            Shape::Chw(c, h, w) => c * h * w,
            Shape::Flat(f) => f,
        }
    }

    /// Channels (for a flat vector: its length, as PyTorch's normalization layers on (N, C) inputs).
    pub fn channels(self) -> usize {
        match self {
            Shape::Chw(c, _, _) => c,
            Shape::Flat(f) => f,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Chw(c, h, w) => write!(f, "{c}x{h}x{w}"),
            Shape::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// The resolved graph: for each layer, its input value ids and its output shape.
#[derive(Clone, Debug)]
pub struct Graph {
    pub input_shape: Shape,
    /// Input value ids of layer `i` (0 = network input, `j + 1` = output of layer `j`).
    pub inputs: Vec<Vec<usize>>,
    /// Output shape of layer `i`.
    pub shapes: Vec<Shape>,
}

impl Graph {
    /// Shape of value `v` (0 = network input).
    pub fn value_shape(&self, v: usize) -> Shape {
        if v == 0 {
            self.input_shape
        } else {
            self.shapes[v - 1]
        }
    }

    /// Number of logits the network produces.
    pub fn outputs(&self) -> usize {
        self.shapes.last().map_or(0, |s| s.numel())
    }
}

/// Output size of a sliding window: `floor((n + 2·pad - k) / stride) + 1`, `None` when the window does not fit.
pub fn window_out(n: usize, k: usize, stride: usize, pad: usize) -> Option<usize> {
    window_out_dilated(n, k, stride, pad, pad, 1)
}

/// Output size of a dilated window with padding `pad_begin`/`pad_end`:
/// `floor((n + pad_begin + pad_end - (dilation·(k - 1) + 1)) / stride) + 1`, `None` when the window does not fit.
pub fn window_out_dilated(
    n: usize,
    k: usize,
    stride: usize,
    pad_begin: usize,
    pad_end: usize,
    dilation: usize,
) -> Option<usize> {
    let span = k.checked_sub(1)?.checked_mul(dilation)?.checked_add(1)?;
    let padded = n.checked_add(pad_begin)?.checked_add(pad_end)?;
    padded.checked_sub(span).map(|r| r / stride.max(1) + 1)
}

/// Largest number of values per example any layer may produce (guards against absurd manifests).
pub const MAX_VALUES_PER_EXAMPLE: usize = 1 << 28;

/// Expected tensor shapes of a layer: (tensor name, shape).
pub fn expected_tensors(kind: &LayerKind) -> Vec<(&str, Vec<usize>)> {
    match kind {
        LayerKind::Conv2d {
            in_channels,
            out_channels,
            kernel,
            groups,
            weight,
            bias,
            ..
        } => {
            let mut v = vec![(
                weight.as_str(),
                vec![*out_channels, *in_channels / groups, kernel[0], kernel[1]],
            )];
            v.extend(bias.as_deref().map(|b| (b, vec![*out_channels])));
            v
        }
        LayerKind::Linear {
            in_features,
            out_features,
            weight,
            bias,
        } => {
            let mut v = vec![(weight.as_str(), vec![*out_features, *in_features])];
            v.extend(bias.as_deref().map(|b| (b, vec![*out_features])));
            v
        }
        LayerKind::GroupNorm {
            channels,
            weight,
            bias,
            ..
        } => vec![
            (weight.as_str(), vec![*channels]),
            (bias.as_str(), vec![*channels]),
        ],
        LayerKind::BatchNorm {
            channels,
            weight,
            bias,
            running_mean,
            running_var,
            ..
        } => [weight, bias, running_mean, running_var]
            .into_iter()
            .map(|n| (n.as_str(), vec![*channels]))
            .collect(),
        LayerKind::ChannelMul { channels, weight } => vec![(weight.as_str(), vec![*channels])],
        LayerKind::ChannelAdd { channels, bias } => vec![(bias.as_str(), vec![*channels])],
        _ => vec![],
    }
}

/// Resolves inputs and infers every shape; errors name the manifest file and the layer.
pub fn build_graph(m: &Manifest, path: &Path) -> Result<Graph, ModelError> {
    let [c, h, w] = m.input.shape;
    let input_shape = Shape::Chw(c, h, w);
    let mut ids: HashMap<&str, usize> = HashMap::new();
    ids.insert("input", 0);
    let mut g = Graph {
        input_shape,
        inputs: Vec::with_capacity(m.layers.len()),
        shapes: Vec::with_capacity(m.layers.len()),
    };
    for (i, layer) in m.layers.iter().enumerate() {
        let ctx = format!(
            "layers[{i}] (\"{}\", {})",
            layer.name,
            layer.kind.type_name()
        );
        let err = |msg: String| ModelError::manifest(path, &ctx, msg);
        let resolve = |name: &str| -> Result<usize, ModelError> {
            ids.get(name).copied().ok_or_else(|| {
                err(format!(
                    "input \"{name}\" is not the network input or an earlier layer"
                ))
            })
        };
        let inputs: Vec<usize> = match &layer.kind {
            LayerKind::Add { inputs } => vec![resolve(&inputs[0])?, resolve(&inputs[1])?],
            LayerKind::Concat { inputs } => inputs
                .iter()
                .map(|n| resolve(n))
                .collect::<Result<_, _>>()?,
            _ => vec![match &layer.input {
                Some(n) => resolve(n)?,
                None => i,
            }],
        };
        let x = g.value_shape(inputs[0]);
        if matches!(layer.kind, LayerKind::Softmax) && i + 1 != m.layers.len() {
            return Err(err("softmax is supported only as the last layer".into()));
        }
        let out = infer(layer, x, &inputs, &g).map_err(err)?;
        let dims = match out {
            Shape::Chw(c, h, w) => vec![c, h, w],
            Shape::Flat(f) => vec![f],
        };
        if dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .is_none_or(|n| n > MAX_VALUES_PER_EXAMPLE)
        {
            return Err(err(format!(
                "output {dims:?} exceeds {MAX_VALUES_PER_EXAMPLE} values per example"
            )));
        }
        g.inputs.push(inputs);
        g.shapes.push(out);
        ids.insert(layer.name.as_str(), i + 1);
    }
    let last = *g.shapes.last().expect("manifest has at least one layer");
    match last {
        Shape::Flat(n) => {
            let classes = m.input.classes.len();
            if classes != 0 && classes != n {
                return Err(ModelError::manifest(
                    path,
                    "input.classes",
                    format!("lists {classes} classes but the last layer produces {n} logits"),
                ));
            }
        }
        s => {
            return Err(ModelError::manifest(
                path,
                "layers",
                format!("the last layer must produce a flat logit vector, it produces {s} (add flatten/linear)"),
            ))
        }
    }
    Ok(g)
}

fn infer(layer: &Layer, x: Shape, inputs: &[usize], g: &Graph) -> Result<Shape, String> {
    let need_chw = |what: &str| -> Result<(usize, usize, usize), String> {
        match x {
            Shape::Chw(c, h, w) => Ok((c, h, w)),
            s => Err(format!(
                "{what} needs C x H x W feature maps, its input is a flat vector of {s}"
            )),
        }
    };
    let window = |h: usize,
                  w: usize,
                  k: [usize; 2],
                  s: [usize; 2],
                  p: [usize; 4],
                  d: [usize; 2]|
     -> Result<(usize, usize), String> {
        match (
            window_out_dilated(h, k[0], s[0], p[0], p[2], d[0]),
            window_out_dilated(w, k[1], s[1], p[1], p[3], d[1]),
        ) {
            (Some(oh), Some(ow)) => Ok((oh, ow)),
            _ => Err(format!(
                "kernel {k:?} (dilation {d:?}) with padding {p:?} does not fit the {h}x{w} input"
            )),
        }
    };
    Ok(match &layer.kind {
        LayerKind::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            dilation,
            ..
        } => {
            let (c, h, w) = need_chw("conv2d")?;
            if c != *in_channels {
                return Err(format!(
                    "in_channels = {in_channels} but its input has {c} channels ({x})"
                ));
            }
            let (oh, ow) = window(h, w, *kernel, *stride, *padding, *dilation)?;
            Shape::Chw(*out_channels, oh, ow)
        }
        LayerKind::Linear {
            in_features,
            out_features,
            ..
        } => match x {
            Shape::Flat(f) if f == *in_features => Shape::Flat(*out_features),
            Shape::Flat(f) => {
                return Err(format!(
                    "in_features = {in_features} but its input has {f} features"
                ))
            }
            s => {
                return Err(format!(
                    "linear needs a flat input, its input is {s} (add a flatten layer)"
                ))
            }
        },
        LayerKind::MaxPool2d {
            kernel,
            stride,
            padding,
        }
        | LayerKind::AvgPool2d {
            kernel,
            stride,
            padding,
            ..
        } => {
            let (c, h, w) = need_chw("pooling")?;
            let (oh, ow) = window(h, w, *kernel, *stride, *padding, [1, 1])?;
            Shape::Chw(c, oh, ow)
        }
        LayerKind::GlobalAvgPool => {
            let (c, _, _) = need_chw("global_avgpool")?;
            Shape::Flat(c)
        }
        LayerKind::Flatten => Shape::Flat(x.numel()),
        LayerKind::Add { .. } => {
            let y = g.value_shape(inputs[1]);
            if x != y {
                return Err(format!("adds outputs of different shapes {x} and {y}"));
            }
            x
        }
        LayerKind::GroupNorm { channels, .. } | LayerKind::BatchNorm { channels, .. } => {
            if x.channels() != *channels {
                return Err(format!(
                    "channels = {channels} but its input has {} channels ({x})",
                    x.channels()
                ));
            }
            x
        }
        LayerKind::Relu
        | LayerKind::Identity
        | LayerKind::Dropout
        | LayerKind::Clip { .. }
        | LayerKind::LeakyRelu { .. }
        | LayerKind::Sigmoid
        | LayerKind::HardSigmoid { .. }
        | LayerKind::HardSwish => x,
        LayerKind::Softmax => match x {
            Shape::Flat(_) => x,
            s => {
                return Err(format!(
                    "softmax needs the flat logit vector, its input is {s}"
                ))
            }
        },
        LayerKind::Concat { .. } => {
            let shapes: Vec<Shape> = inputs.iter().map(|&v| g.value_shape(v)).collect();
            match x {
                Shape::Chw(_, h, w) => {
                    let mut c = 0usize;
                    for s in &shapes {
                        match *s {
                            Shape::Chw(ci, hi, wi) if (hi, wi) == (h, w) => {
                                c = c.checked_add(ci).ok_or("too many channels")?
                            }
                            _ => {
                                return Err(format!(
                                    "concatenates along the channels; operand shapes {} differ in H x W or rank",
                                    shapes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
                                ))
                            }
                        }
                    }
                    Shape::Chw(c, h, w)
                }
                Shape::Flat(_) => {
                    let mut f = 0usize;
                    for s in &shapes {
                        match *s {
                            Shape::Flat(fi) => f = f.checked_add(fi).ok_or("too many features")?,
                            _ => {
                                return Err(
                                    "concatenates flat vectors with feature maps; reshape first"
                                        .into(),
                                )
                            }
                        }
                    }
                    Shape::Flat(f)
                }
            }
        }
        LayerKind::ChannelMul { channels, .. } | LayerKind::ChannelAdd { channels, .. } => {
            if *channels != 1 && *channels != x.channels() {
                return Err(format!(
                    "channels = {channels} but its input has {} channels ({x}); give the input's channels or 1",
                    x.channels()
                ));
            }
            x
        }
        LayerKind::Reshape { shape } => {
            let out = match shape.as_slice() {
                [c, h, w] => Shape::Chw(*c, *h, *w),
                [f] => Shape::Flat(*f),
                _ => unreachable!("checked at parse"),
            };
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if n != Some(x.numel()) {
                return Err(format!(
                    "shape {shape:?} does not hold the {} values of its input ({x})",
                    x.numel()
                ));
            }
            out
        }
    })
}
