//! The TOML manifest of a model (docs/model-format.md, format version 1): parsing and validation into types that
//! cannot hold invalid values. Shapes against the tensors are checked in [`super::graph`] and the loader.
use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use super::ModelError;

/// The only manifest format version this reader knows.
pub const FORMAT_VERSION: i64 = 1;
/// The required value of the manifest's `format` key.
pub const FORMAT_NAME: &str = "accelsim-model";
/// Allowed `[input] mean` values (of `pixel/255`, so normally in [0, 1]).
pub const MEAN_RANGE: (f32, f32) = (-1000.0, 1000.0);
/// Allowed `[input] std` values: a smaller std would turn 8-bit pixels into infinities.
pub const STD_RANGE: (f32, f32) = (1e-6, 1000.0);
/// Largest `[quantization] w_max`.
pub const MAX_W_MAX: f32 = 1e6;

/// A validated manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub name: String,
    /// The model family (`family = "..."`, optional): models of one network and training recipe at different
    /// bit widths (docs/model-format.md#families). `None`: the model is a family of its own.
    pub family: Option<String>,
    /// Path of the tensors file, relative to the manifest.
    pub weights: String,
    pub input: InputSpec,
    pub quantization: QuantSpec,
    pub training: TrainingFacts,
    pub layers: Vec<Layer>,
    /// `[[activation_quant]]`: activation quantization parameters the model brings (a QDQ ONNX import), used by
    /// the int8 datapath instead of calibrated ones (docs/datapath.md#activations). Empty for most models.
    pub activation_quant: Vec<ActQuantSpec>,
}

/// One `[[activation_quant]]` entry: the ONNX `QuantizeLinear` parameters of one stored value.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActQuantSpec {
    /// The value: `"input"` (the normalized network input) or a layer's name (its output).
    pub value: String,
    /// s > 0, finite.
    pub scale: f32,
    /// In the code's range: 0..=255 (uint8) or -128..=127 (int8).
    pub zero_point: i32,
    /// int8 codes when true, uint8 when false.
    pub signed: bool,
}

/// `[input]`: the shape of one example and its normalization `x = (pixel/255 - mean[c]) / std[c]`.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// C, H, W of one example.
    pub shape: [usize; 3],
    #[serde(default)]
    pub mean: Vec<f32>,
    #[serde(default)]
    pub std: Vec<f32>,
    #[serde(default)]
    pub dataset: Option<String>,
    #[serde(default)]
    pub classes: Vec<String>,
}

/// `[quantization]`: how every parameter tensor is stored in the weight SRAM (docs/quantization.md#paper-schemes).
/// Maps one to one onto `quant::QuantConfig` (`rounding = true` means round half to even).
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuantSpec {
    /// m, bits per stored weight: 2..=8 unsigned; 8, 16 or 32 signed.
    pub bits: u32,
    /// `global`, `layer` or `channel`.
    pub granularity: String,
    pub symmetric: bool,
    pub signed: bool,
    /// true: round half to even; false: truncation ("integer conversion").
    pub rounding: bool,
    /// Clipping bound (global granularity: the fixed q_max, default 1); `None` = no clipping.
    #[serde(default)]
    pub w_max: Option<f32>,
}

/// `[training]`: facts recorded at export, shown by `accelsim model show`. All optional.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingFacts {
    #[serde(default = "default_method")]
    pub method: String,
    /// Per-bit probability used in RandBET training (0 when not RandBET).
    #[serde(default)]
    pub p_train: f64,
    /// Per-bit probability of the activation bit errors used in training (`--p-act`; 0 when none).
    #[serde(default)]
    pub p_act: f64,
    /// Clean test error (percent) of the quantized model measured at export.
    #[serde(default)]
    pub clean_error_pct: Option<f64>,
    #[serde(default)]
    pub test_images: Option<u64>,
    #[serde(default)]
    pub epochs: Option<u64>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub framework: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

fn default_method() -> String {
    "other".into()
}

/// Training methods the manifest may name (docs/model-format.md).
pub const METHODS: [&str; 6] = [
    "normal",
    "rquant",
    "clipping",
    "randbet",
    "plclipping",
    "other",
];

/// One layer of the graph, in execution order.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Unique name; `"input"` is reserved for the network input.
    pub name: String,
    /// Name of the layer whose output this layer reads (`"input"` = the network input); `None` = the previous layer.
    pub input: Option<String>,
    pub kind: LayerKind,
}

/// What a layer computes, with its hyper-parameters and tensor names.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerKind {
    /// 2-D convolution; `groups` = 1 dense, = in_channels depthwise (weight [out, in/groups, kh, kw]).
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        /// Zero padding [top, left, bottom, right].
        padding: [usize; 4],
        dilation: [usize; 2],
        groups: usize,
        weight: String,
        bias: Option<String>,
    },
    Linear {
        in_features: usize,
        out_features: usize,
        weight: String,
        bias: Option<String>,
    },
    Relu,
    MaxPool2d {
        kernel: [usize; 2],
        stride: [usize; 2],
        /// [top, left, bottom, right]; padding acts as -inf.
        padding: [usize; 4],
    },
    AvgPool2d {
        kernel: [usize; 2],
        stride: [usize; 2],
        /// [top, left, bottom, right].
        padding: [usize; 4],
        /// true: the divisor is kh·kw (padding counts as zeros, PyTorch's default); false: the number of
        /// non-padding elements in the window (ONNX's default).
        count_include_pad: bool,
    },
    GlobalAvgPool,
    Flatten,
    /// Residual add of the outputs of two earlier layers.
    Add {
        inputs: [String; 2],
    },
    GroupNorm {
        groups: usize,
        channels: usize,
        eps: f32,
        /// Scale applied is `1 + weight` (docs/training.md#normalization).
        reparameterized: bool,
        weight: String,
        bias: String,
    },
    BatchNorm {
        channels: usize,
        eps: f32,
        reparameterized: bool,
        weight: String,
        bias: String,
        running_mean: String,
        running_var: String,
    },
    Identity,
    Dropout,
    /// `min(max(x, min), max)` (ReLU6: min 0, max 6).
    Clip {
        min: f32,
        max: f32,
    },
    /// `x` for x ≥ 0, else `alpha·x`.
    LeakyRelu {
        alpha: f32,
    },
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `max(0, min(1, alpha·x + beta))`.
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// `x · max(0, min(1, x/6 + 1/2))`.
    HardSwish,
    /// Softmax over the logits; only as the last layer.
    Softmax,
    /// Concatenation of earlier outputs along the channels (feature maps of equal H, W; or flat vectors).
    Concat {
        inputs: Vec<String>,
    },
    /// Per-channel (or, with `channels = 1`, scalar) multiplication: `y[c] = x[c] · weight[c]`.
    ChannelMul {
        channels: usize,
        weight: String,
    },
    /// Per-channel (or scalar) addition: `y[c] = x[c] + bias[c]`.
    ChannelAdd {
        channels: usize,
        bias: String,
    },
    /// A zero-copy view with another per-example shape of the same number of values (`[c, h, w]` or `[f]`).
    Reshape {
        shape: Vec<usize>,
    },
}

impl LayerKind {
    /// The manifest `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            LayerKind::Conv2d { .. } => "conv2d",
            LayerKind::Linear { .. } => "linear",
            LayerKind::Relu => "relu",
            LayerKind::MaxPool2d { .. } => "maxpool2d",
            LayerKind::AvgPool2d { .. } => "avgpool2d",
            LayerKind::GlobalAvgPool => "global_avgpool",
            LayerKind::Flatten => "flatten",
            LayerKind::Add { .. } => "add",
            LayerKind::GroupNorm { .. } => "groupnorm",
            LayerKind::BatchNorm { .. } => "batchnorm",
            LayerKind::Identity => "identity",
            LayerKind::Dropout => "dropout",
            LayerKind::Clip { .. } => "clip",
            LayerKind::LeakyRelu { .. } => "leaky_relu",
            LayerKind::Sigmoid => "sigmoid",
            LayerKind::HardSigmoid { .. } => "hard_sigmoid",
            LayerKind::HardSwish => "hard_swish",
            LayerKind::Softmax => "softmax",
            LayerKind::Concat { .. } => "concat",
            LayerKind::ChannelMul { .. } => "channel_mul",
            LayerKind::ChannelAdd { .. } => "channel_add",
            LayerKind::Reshape { .. } => "reshape",
        }
    }

    /// Names of the parameter tensors (quantized, in the weight SRAM), in memory order: weight, then bias.
    pub fn params(&self) -> Vec<&str> {
        match self {
            LayerKind::Conv2d { weight, bias, .. } | LayerKind::Linear { weight, bias, .. } => {
                std::iter::once(weight.as_str())
                    .chain(bias.as_deref())
                    .collect()
            }
            LayerKind::GroupNorm { weight, bias, .. }
            | LayerKind::BatchNorm { weight, bias, .. } => {
                vec![weight.as_str(), bias.as_str()]
            }
            LayerKind::ChannelMul { weight, .. } => vec![weight.as_str()],
            LayerKind::ChannelAdd { bias, .. } => vec![bias.as_str()],
            _ => vec![],
        }
    }

    /// Names of float buffers (never quantized, never faulty): BatchNorm running statistics.
    pub fn buffers(&self) -> Vec<&str> {
        match self {
            LayerKind::BatchNorm {
                running_mean,
                running_var,
                ..
            } => vec![running_mean.as_str(), running_var.as_str()],
            _ => vec![],
        }
    }
}

/// Layer types the reader knows.
pub const LAYER_TYPES: [&str; 22] = [
    "conv2d",
    "linear",
    "relu",
    "maxpool2d",
    "avgpool2d",
    "global_avgpool",
    "flatten",
    "add",
    "groupnorm",
    "batchnorm",
    "identity",
    "dropout",
    "clip",
    "leaky_relu",
    "sigmoid",
    "hard_sigmoid",
    "hard_swish",
    "softmax",
    "concat",
    "channel_mul",
    "channel_add",
    "reshape",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[allow(dead_code)]
    format: String,
    #[allow(dead_code)]
    version: i64,
    name: String,
    #[serde(default)]
    family: Option<String>,
    weights: String,
    input: InputSpec,
    quantization: QuantSpec,
    #[serde(default)]
    training: Option<TrainingFacts>,
    layers: Vec<toml::Table>,
    #[serde(default)]
    activation_quant: Vec<ActQuantSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConvRaw {
    in_channels: usize,
    out_channels: usize,
    kernel: [usize; 2],
    #[serde(default = "ones")]
    stride: [usize; 2],
    #[serde(default)]
    padding: Padding,
    #[serde(default = "ones")]
    dilation: [usize; 2],
    weight: String,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default = "one")]
    groups: usize,
}

/// `padding = [ph, pw]` (both sides) or `[top, left, bottom, right]`.
#[derive(Deserialize, Default)]
#[serde(transparent)]
struct Padding(Vec<usize>);

impl Padding {
    fn sides(&self) -> [usize; 4] {
        match self.0.as_slice() {
            [] => [0; 4],
            [h, w] => [*h, *w, *h, *w],
            [t, l, b, r] => [*t, *l, *b, *r],
            _ => unreachable!("checked by check_value_kinds"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinearRaw {
    in_features: usize,
    out_features: usize,
    weight: String,
    #[serde(default)]
    bias: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolRaw {
    kernel: [usize; 2],
    #[serde(default)]
    stride: Option<[usize; 2]>,
    #[serde(default)]
    padding: Padding,
    #[serde(default)]
    count_include_pad: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClipRaw {
    #[serde(default)]
    min: Option<f32>,
    #[serde(default)]
    max: Option<f32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeakyReluRaw {
    #[serde(default = "default_leaky_alpha")]
    alpha: f32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HardSigmoidRaw {
    #[serde(default = "default_hs_alpha")]
    alpha: f32,
    #[serde(default = "default_hs_beta")]
    beta: f32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConcatRaw {
    inputs: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelMulRaw {
    channels: usize,
    weight: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelAddRaw {
    channels: usize,
    bias: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReshapeRaw {
    shape: Vec<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRaw {
    inputs: [String; 2],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupNormRaw {
    groups: usize,
    channels: usize,
    #[serde(default = "default_eps")]
    eps: f32,
    #[serde(default = "yes")]
    reparameterized: bool,
    weight: String,
    bias: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchNormRaw {
    channels: usize,
    #[serde(default = "default_eps")]
    eps: f32,
    #[serde(default)]
    reparameterized: bool,
    weight: String,
    bias: String,
    running_mean: String,
    running_var: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoKeys {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DropoutRaw {
    /// Only range-checked: dropout is the identity at inference.
    #[serde(default)]
    p: f64,
}

fn ones() -> [usize; 2] {
    [1, 1]
}
fn one() -> usize {
    1
}
fn default_leaky_alpha() -> f32 {
    0.01
}
fn default_hs_alpha() -> f32 {
    0.2
}
fn default_hs_beta() -> f32 {
    0.5
}
fn yes() -> bool {
    true
}
fn default_eps() -> f32 {
    1e-5
}

/// Reads and validates a manifest file.
pub fn read_manifest(path: &Path) -> Result<Manifest, ModelError> {
    let bytes =
        crate::limits::read_file(path, crate::limits::MAX_TOML_FILE_BYTES, "model manifest")
            .map_err(|e| match e {
                crate::limits::ReadError::Io(e) => ModelError::io(path, e),
                crate::limits::ReadError::TooLarge(m) => ModelError::manifest(path, "", m),
            })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ModelError::manifest(path, "", "not UTF-8 text".into()))?;
    parse_manifest(&text, path)
}

/// Parses and validates manifest text; `path` names the file in errors.
pub fn parse_manifest(text: &str, path: &Path) -> Result<Manifest, ModelError> {
    let merr = |key: &str, msg: String| ModelError::manifest(path, key, msg);
    let table: toml::Table =
        crate::config::toml_error::from_toml_str(text).map_err(|p| merr("", p.to_string()))?;
    // Format and version first, so that a future version gets a clear message rather than a field error.
    match table.get("format") {
        Some(toml::Value::String(s)) if s == FORMAT_NAME => {}
        Some(v) => {
            return Err(merr(
                "format",
                format!("must be \"{FORMAT_NAME}\", found {v}"),
            ));
        }
        None => {
            return Err(merr(
                "format",
                format!("missing (must be \"{FORMAT_NAME}\")"),
            ))
        }
    }
    match table.get("version") {
        Some(toml::Value::Integer(v)) if *v == FORMAT_VERSION => {}
        Some(v) => {
            return Err(merr(
                "version",
                format!("unsupported model format version {v} (this accelsim reads version {FORMAT_VERSION})"),
            ))
        }
        None => return Err(merr("version", "missing".into())),
    }
    if let Some(v) = table.get("family").filter(|v| !v.is_str()) {
        return Err(merr("family", format!("must be a string, found {v}")));
    }
    let raw: RawManifest =
        crate::config::toml_error::from_toml_str(text).map_err(|p| merr("", p.to_string()))?;

    validate_input(&raw.input, path)?;
    validate_quant(&raw.quantization, path)?;
    let training = raw.training.unwrap_or_else(|| TrainingFacts {
        method: default_method(),
        ..Default::default()
    });
    if !METHODS.contains(&training.method.as_str()) {
        return Err(merr(
            "training.method",
            format!(
                "unknown method \"{}\" (expected one of {})",
                training.method,
                METHODS.join(", ")
            ),
        ));
    }
    if !(0.0..=1.0).contains(&training.p_train) {
        return Err(merr(
            "training.p_train",
            format!(
                "{} is out of range; allowed a per-bit probability in [0, 1]",
                training.p_train
            ),
        ));
    }
    if !(0.0..=1.0).contains(&training.p_act) {
        return Err(merr(
            "training.p_act",
            format!(
                "{} is out of range; allowed a per-bit probability in [0, 1]",
                training.p_act
            ),
        ));
    }
    if let Some(e) = training.clean_error_pct {
        if !(e.is_finite() && (0.0..=100.0).contains(&e)) {
            return Err(merr(
                "training.clean_error_pct",
                format!("{e} is out of range; allowed a percentage in [0, 100]"),
            ));
        }
    }
    if let Some(f) = &raw.family {
        if f.is_empty()
            || !f
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(merr(
                "family",
                format!("\"{f}\" is not allowed (letters, digits, '-', '_', '.'; at least one)"),
            ));
        }
    }
    if raw.weights.trim().is_empty() {
        return Err(merr("weights", "must name the .safetensors file".into()));
    }
    if raw.layers.is_empty() {
        return Err(merr("layers", "the model has no layers".into()));
    }
    let mut layers = Vec::with_capacity(raw.layers.len());
    let mut names: HashSet<String> = HashSet::new();
    for (i, t) in raw.layers.into_iter().enumerate() {
        let layer = parse_layer(t, i, path)?;
        if layer.name == "input" || !names.insert(layer.name.clone()) {
            return Err(merr(
                &format!("layers[{i}].name"),
                format!("\"{}\" is reserved or used by an earlier layer", layer.name),
            ));
        }
        layers.push(layer);
    }
    let mut quantized_values: HashSet<&str> = HashSet::new();
    for (i, a) in raw.activation_quant.iter().enumerate() {
        let key = |k: &str| format!("activation_quant[{i}].{k}");
        if a.value != "input" && !names.contains(&a.value) {
            return Err(merr(
                &key("value"),
                format!("\"{}\" is not \"input\" or a layer's name", a.value),
            ));
        }
        if !quantized_values.insert(a.value.as_str()) {
            return Err(merr(
                &key("value"),
                format!("\"{}\" is given more than once", a.value),
            ));
        }
        if !(a.scale.is_finite() && a.scale > 0.0 && a.scale <= 1e6) {
            return Err(merr(
                &key("scale"),
                format!("{} is out of range; allowed (0, 1e6]", a.scale),
            ));
        }
        let (lo, hi) = if a.signed { (-128, 127) } else { (0, 255) };
        if !(lo..=hi).contains(&a.zero_point) {
            return Err(merr(
                &key("zero_point"),
                format!(
                    "{} is out of range; allowed [{lo}, {hi}] for {} codes",
                    a.zero_point,
                    if a.signed { "int8" } else { "uint8" }
                ),
            ));
        }
    }
    Ok(Manifest {
        name: raw.name,
        family: raw.family,
        weights: raw.weights,
        input: raw.input,
        quantization: raw.quantization,
        training,
        layers,
        activation_quant: raw.activation_quant,
    })
}

fn validate_input(input: &InputSpec, path: &Path) -> Result<(), ModelError> {
    let [c, h, w] = input.shape;
    let too_big = [c, h, w]
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .is_none_or(|n| n > super::graph::MAX_VALUES_PER_EXAMPLE);
    if too_big {
        return Err(ModelError::manifest(
            path,
            "input.shape",
            format!("{:?} is too large", input.shape),
        ));
    }
    if c == 0 || h == 0 || w == 0 {
        return Err(ModelError::manifest(
            path,
            "input.shape",
            format!("{:?} has a zero dimension", input.shape),
        ));
    }
    for (key, v) in [("input.mean", &input.mean), ("input.std", &input.std)] {
        if !(v.is_empty() || v.len() == 1 || v.len() == c) {
            return Err(ModelError::manifest(
                path,
                key,
                format!("has {} values; give 1 or one per channel ({c})", v.len()),
            ));
        }
    }
    if input.mean.is_empty() != input.std.is_empty() {
        return Err(ModelError::manifest(
            path,
            "input.std",
            "give both mean and std, or neither".into(),
        ));
    }
    let (lo, hi) = MEAN_RANGE;
    if let Some(m) = input
        .mean
        .iter()
        .find(|m| !(m.is_finite() && (lo..=hi).contains(*m)))
    {
        return Err(ModelError::manifest(
            path,
            "input.mean",
            format!("{m} is out of range; allowed [{lo}, {hi}]"),
        ));
    }
    let (lo, hi) = STD_RANGE;
    if let Some(s) = input
        .std
        .iter()
        .find(|s| !(s.is_finite() && (lo..=hi).contains(*s)))
    {
        return Err(ModelError::manifest(
            path,
            "input.std",
            format!("{s} is out of range; allowed [{lo:e}, {hi}]"),
        ));
    }
    Ok(())
}

fn validate_quant(q: &QuantSpec, path: &Path) -> Result<(), ModelError> {
    let ok_bits = if q.signed {
        matches!(q.bits, 8 | 16 | 32)
    } else {
        (2..=8).contains(&q.bits)
    };
    if !ok_bits {
        return Err(ModelError::manifest(
            path,
            "quantization.bits",
            format!(
                "{} is not supported with signed = {} (allowed: 2..=8 unsigned; 8, 16 or 32 signed)",
                q.bits, q.signed
            ),
        ));
    }
    if !matches!(q.granularity.as_str(), "global" | "layer" | "channel") {
        return Err(ModelError::manifest(
            path,
            "quantization.granularity",
            format!("\"{}\" is not one of global, layer, channel", q.granularity),
        ));
    }
    if let Some(w) = q.w_max {
        if !(w.is_finite() && w > 0.0 && w <= MAX_W_MAX) {
            return Err(ModelError::manifest(
                path,
                "quantization.w_max",
                format!("{w} is out of range; allowed (0, {MAX_W_MAX:e}]"),
            ));
        }
    }
    Ok(())
}

fn parse_layer(mut t: toml::Table, i: usize, path: &Path) -> Result<Layer, ModelError> {
    let key = |k: &str| format!("layers[{i}].{k}");
    let take_str = |t: &mut toml::Table, k: &str| -> Result<Option<String>, ModelError> {
        match t.remove(k) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(ModelError::manifest(
                path,
                &key(k),
                format!(
                    "expected a string, found {}",
                    crate::limits::excerpt(&v.to_string(), 80)
                ),
            )),
        }
    };
    let name = take_str(&mut t, "name")?
        .ok_or_else(|| ModelError::manifest(path, &key("name"), "missing".into()))?;
    let ty = take_str(&mut t, "type")?.ok_or_else(|| {
        ModelError::manifest(path, &key("type"), format!("missing (layer \"{name}\")"))
    })?;
    let input = take_str(&mut t, "input")?;
    let ctx = format!("layers[{i}]");
    // Every layer error names the layer after the message: `key `layers[3].padding`: ... (layer "conv2", conv2d)`.
    let about = format!(
        " (layer \"{}\", {})",
        crate::limits::printable(&name),
        crate::limits::printable(&ty)
    );
    let lerr = |k: &str, msg: String| {
        ModelError::manifest(path, &format!("{ctx}.{k}"), format!("{msg}{about}"))
    };
    check_value_kinds(&t, &lerr)?;
    fn de<T: serde::de::DeserializeOwned>(
        t: toml::Table,
        path: &Path,
        ctx: &str,
        about: &str,
    ) -> Result<T, ModelError> {
        crate::config::toml_error::from_toml_table(t, ctx).map_err(|p| ModelError::Manifest {
            file: path.to_path_buf(),
            msg: format!("{p}{about}"),
        })
    }
    let positive = |vals: &[(&str, usize)]| -> Result<(), ModelError> {
        for (k, v) in vals {
            if *v == 0 {
                return Err(lerr(k, "must be > 0".into()));
            }
        }
        Ok(())
    };
    let kind = match ty.as_str() {
        "conv2d" => {
            let r: ConvRaw = de(t, path, &ctx, &about)?;
            positive(&[
                ("in_channels", r.in_channels),
                ("out_channels", r.out_channels),
                ("kernel", r.kernel[0].min(r.kernel[1])),
                ("stride", r.stride[0].min(r.stride[1])),
                ("dilation", r.dilation[0].min(r.dilation[1])),
                ("groups", r.groups),
            ])?;
            if !(r.in_channels.is_multiple_of(r.groups) && r.out_channels.is_multiple_of(r.groups))
            {
                return Err(lerr(
                    "groups",
                    format!(
                        "{} does not divide in_channels = {} and out_channels = {}",
                        r.groups, r.in_channels, r.out_channels
                    ),
                ));
            }
            LayerKind::Conv2d {
                in_channels: r.in_channels,
                out_channels: r.out_channels,
                kernel: r.kernel,
                stride: r.stride,
                padding: r.padding.sides(),
                dilation: r.dilation,
                groups: r.groups,
                weight: r.weight,
                bias: r.bias,
            }
        }
        "linear" => {
            let r: LinearRaw = de(t, path, &ctx, &about)?;
            positive(&[
                ("in_features", r.in_features),
                ("out_features", r.out_features),
            ])?;
            LayerKind::Linear {
                in_features: r.in_features,
                out_features: r.out_features,
                weight: r.weight,
                bias: r.bias,
            }
        }
        "maxpool2d" | "avgpool2d" => {
            let r: PoolRaw = de(t, path, &ctx, &about)?;
            let stride = r.stride.unwrap_or(r.kernel);
            positive(&[
                ("kernel", r.kernel[0].min(r.kernel[1])),
                ("stride", stride[0].min(stride[1])),
            ])?;
            let padding = r.padding.sides();
            // Every window then holds at least one input element (the ONNX rule `pad < kernel`).
            if padding[0].max(padding[2]) >= r.kernel[0]
                || padding[1].max(padding[3]) >= r.kernel[1]
            {
                return Err(lerr(
                    "padding",
                    format!(
                        "{:?} must be smaller than the kernel {:?} on every side",
                        r.padding.0, r.kernel
                    ),
                ));
            }
            let kernel = r.kernel;
            if ty == "maxpool2d" {
                if r.count_include_pad.is_some() {
                    return Err(lerr(
                        "count_include_pad",
                        "applies to avgpool2d only".into(),
                    ));
                }
                LayerKind::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                }
            } else {
                LayerKind::AvgPool2d {
                    kernel,
                    stride,
                    padding,
                    count_include_pad: r.count_include_pad.unwrap_or(true),
                }
            }
        }
        "add" => {
            let r: AddRaw = de(t, path, &ctx, &about)?;
            LayerKind::Add { inputs: r.inputs }
        }
        "groupnorm" => {
            let r: GroupNormRaw = de(t, path, &ctx, &about)?;
            positive(&[("groups", r.groups), ("channels", r.channels)])?;
            if !r.channels.is_multiple_of(r.groups) {
                return Err(lerr(
                    "groups",
                    format!("{} does not divide channels = {}", r.groups, r.channels),
                ));
            }
            check_eps(r.eps, &lerr)?;
            LayerKind::GroupNorm {
                groups: r.groups,
                channels: r.channels,
                eps: r.eps,
                reparameterized: r.reparameterized,
                weight: r.weight,
                bias: r.bias,
            }
        }
        "batchnorm" => {
            let r: BatchNormRaw = de(t, path, &ctx, &about)?;
            positive(&[("channels", r.channels)])?;
            check_eps(r.eps, &lerr)?;
            LayerKind::BatchNorm {
                channels: r.channels,
                eps: r.eps,
                reparameterized: r.reparameterized,
                weight: r.weight,
                bias: r.bias,
                running_mean: r.running_mean,
                running_var: r.running_var,
            }
        }
        "relu" | "global_avgpool" | "flatten" | "identity" => {
            let _: NoKeys = de(t, path, &ctx, &about)?;
            match ty.as_str() {
                "relu" => LayerKind::Relu,
                "global_avgpool" => LayerKind::GlobalAvgPool,
                "flatten" => LayerKind::Flatten,
                _ => LayerKind::Identity,
            }
        }
        "dropout" => {
            let r: DropoutRaw = de(t, path, &ctx, &about)?;
            if !(r.p.is_finite() && (0.0..1.0).contains(&r.p)) {
                return Err(lerr(
                    "p",
                    format!("{} is out of range; allowed [0, 1)", r.p),
                ));
            }
            LayerKind::Dropout
        }
        "sigmoid" | "hard_swish" | "softmax" => {
            let _: NoKeys = de(t, path, &ctx, &about)?;
            match ty.as_str() {
                "sigmoid" => LayerKind::Sigmoid,
                "hard_swish" => LayerKind::HardSwish,
                _ => LayerKind::Softmax,
            }
        }
        "clip" => {
            let r: ClipRaw = de(t, path, &ctx, &about)?;
            let (min, max) = (
                r.min.unwrap_or(f32::NEG_INFINITY),
                r.max.unwrap_or(f32::INFINITY),
            );
            if min.is_nan() || max.is_nan() || min > max {
                return Err(lerr("min", format!("min = {min} must be <= max = {max}")));
            }
            LayerKind::Clip { min, max }
        }
        "leaky_relu" => {
            let r: LeakyReluRaw = de(t, path, &ctx, &about)?;
            check_finite(&[("alpha", r.alpha)], &lerr)?;
            LayerKind::LeakyRelu { alpha: r.alpha }
        }
        "hard_sigmoid" => {
            let r: HardSigmoidRaw = de(t, path, &ctx, &about)?;
            check_finite(&[("alpha", r.alpha), ("beta", r.beta)], &lerr)?;
            LayerKind::HardSigmoid {
                alpha: r.alpha,
                beta: r.beta,
            }
        }
        "concat" => {
            let r: ConcatRaw = de(t, path, &ctx, &about)?;
            if r.inputs.len() < 2 {
                return Err(lerr(
                    "inputs",
                    format!(
                        "names {} layer(s); a concat needs at least 2",
                        r.inputs.len()
                    ),
                ));
            }
            LayerKind::Concat { inputs: r.inputs }
        }
        "channel_mul" => {
            let r: ChannelMulRaw = de(t, path, &ctx, &about)?;
            positive(&[("channels", r.channels)])?;
            LayerKind::ChannelMul {
                channels: r.channels,
                weight: r.weight,
            }
        }
        "channel_add" => {
            let r: ChannelAddRaw = de(t, path, &ctx, &about)?;
            positive(&[("channels", r.channels)])?;
            LayerKind::ChannelAdd {
                channels: r.channels,
                bias: r.bias,
            }
        }
        "reshape" => {
            let r: ReshapeRaw = de(t, path, &ctx, &about)?;
            if !(r.shape.len() == 1 || r.shape.len() == 3) || r.shape.contains(&0) {
                return Err(lerr(
                    "shape",
                    format!(
                        "{:?} must be [c, h, w] or [f] with every entry > 0",
                        r.shape
                    ),
                ));
            }
            LayerKind::Reshape { shape: r.shape }
        }
        other => {
            return Err(ModelError::manifest(
                path,
                &key("type"),
                format!(
                    "unknown layer type \"{other}\" (layer \"{name}\"; known: {})",
                    LAYER_TYPES.join(", ")
                ),
            ))
        }
    };
    if matches!(kind, LayerKind::Add { .. } | LayerKind::Concat { .. }) && input.is_some() {
        return Err(lerr(
            "input",
            format!("an {ty} layer names its operands in `inputs`, not `input`"),
        ));
    }
    Ok(Layer { name, input, kind })
}

/// Checks the kind of every known layer key before serde sees it, so that a wrong value names its key
/// (`key `layers[3].padding`: expected two non-negative integers, found [-1, 1] (layer "conv2", conv2d)`).
fn check_value_kinds(
    t: &toml::Table,
    lerr: &dyn Fn(&str, String) -> ModelError,
) -> Result<(), ModelError> {
    use toml::Value;
    let uint = |v: &Value| matches!(v, Value::Integer(i) if *i >= 0);
    for (k, v) in t {
        let (ok, want) = match k.as_str() {
            "in_channels" | "out_channels" | "in_features" | "out_features" | "groups"
            | "channels" => (uint(v), "a non-negative integer"),
            "kernel" | "stride" | "dilation" => (
                matches!(v, Value::Array(a) if a.len() == 2 && a.iter().all(uint)),
                "two non-negative integers",
            ),
            "padding" => (
                matches!(v, Value::Array(a) if (a.len() == 2 || a.len() == 4) && a.iter().all(uint)),
                "two ([h, w]) or four ([top, left, bottom, right]) non-negative integers",
            ),
            "shape" => (
                matches!(v, Value::Array(a) if a.iter().all(uint)),
                "a list of non-negative integers",
            ),
            "eps" | "p" | "min" | "max" | "alpha" | "beta" => {
                (matches!(v, Value::Float(_) | Value::Integer(_)), "a number")
            }
            "reparameterized" | "count_include_pad" => {
                (matches!(v, Value::Boolean(_)), "true or false")
            }
            "weight" | "bias" | "running_mean" | "running_var" => {
                (matches!(v, Value::String(_)), "a tensor name")
            }
            "inputs" => (
                matches!(v, Value::Array(a) if a.iter().all(|x| x.is_str())),
                "a list of layer names",
            ),
            _ => (true, ""),
        };
        if !ok {
            return Err(lerr(
                k,
                format!(
                    "expected {want}, found {}",
                    crate::limits::excerpt(&v.to_string(), 80)
                ),
            ));
        }
    }
    Ok(())
}

/// Every value finite (activation slopes and offsets).
fn check_finite(
    vals: &[(&str, f32)],
    lerr: &dyn Fn(&str, String) -> ModelError,
) -> Result<(), ModelError> {
    for (k, v) in vals {
        if !v.is_finite() {
            return Err(lerr(k, format!("{v} must be finite")));
        }
    }
    Ok(())
}

/// Normalization epsilon: finite, in [0, 1].
fn check_eps(eps: f32, lerr: &dyn Fn(&str, String) -> ModelError) -> Result<(), ModelError> {
    if !(eps.is_finite() && (0.0..=1.0).contains(&eps)) {
        return Err(lerr(
            "eps",
            format!("{eps} is out of range; allowed [0, 1]"),
        ));
    }
    Ok(())
}
