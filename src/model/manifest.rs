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
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
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
        padding: [usize; 2],
    },
    AvgPool2d {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
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
pub const LAYER_TYPES: [&str; 12] = [
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
    padding: [usize; 2],
    weight: String,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    groups: Option<usize>,
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
    padding: [usize; 2],
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
    #[allow(dead_code)]
    #[serde(default)]
    p: f64,
}

fn ones() -> [usize; 2] {
    [1, 1]
}
fn yes() -> bool {
    true
}
fn default_eps() -> f32 {
    1e-5
}

/// Reads and validates a manifest file.
pub fn read_manifest(path: &Path) -> Result<Manifest, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    parse_manifest(&text, path)
}

/// Parses and validates manifest text; `path` names the file in errors.
pub fn parse_manifest(text: &str, path: &Path) -> Result<Manifest, ModelError> {
    let merr = |key: &str, msg: String| ModelError::manifest(path, key, msg);
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| merr("", format!("not valid TOML: {}", one_line(&e.to_string()))))?;
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
    let raw: RawManifest = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| merr("", one_line(e.message())))?;

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
                "{} is not a per-bit probability in [0, 1]",
                training.p_train
            ),
        ));
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
    Ok(Manifest {
        name: raw.name,
        family: raw.family,
        weights: raw.weights,
        input: raw.input,
        quantization: raw.quantization,
        training,
        layers,
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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
    if let Some(s) = input.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(ModelError::manifest(
            path,
            "input.std",
            format!("{s} is not finite and > 0"),
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
        if !(w.is_finite() && w > 0.0) {
            return Err(ModelError::manifest(
                path,
                "quantization.w_max",
                format!("{w} must be finite and > 0"),
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
                format!("must be a string, found {v}"),
            )),
        }
    };
    let name = take_str(&mut t, "name")?
        .ok_or_else(|| ModelError::manifest(path, &key("name"), "missing".into()))?;
    let ty = take_str(&mut t, "type")?.ok_or_else(|| {
        ModelError::manifest(path, &key("type"), format!("missing (layer \"{name}\")"))
    })?;
    let input = take_str(&mut t, "input")?;
    let ctx = format!("layers[{i}] (\"{name}\", {ty})");
    check_value_kinds(&t, path, &ctx)?;
    fn de<T: serde::de::DeserializeOwned>(
        t: toml::Table,
        path: &Path,
        ctx: &str,
    ) -> Result<T, ModelError> {
        toml::Value::Table(t)
            .try_into()
            .map_err(|e: toml::de::Error| ModelError::manifest(path, ctx, one_line(e.message())))
    }
    let positive = |vals: &[(&str, usize)]| -> Result<(), ModelError> {
        for (k, v) in vals {
            if *v == 0 {
                return Err(ModelError::manifest(
                    path,
                    &format!("{ctx}.{k}"),
                    "must be > 0".into(),
                ));
            }
        }
        Ok(())
    };
    let kind = match ty.as_str() {
        "conv2d" => {
            let r: ConvRaw = de(t, path, &ctx)?;
            if r.groups.is_some_and(|g| g != 1) {
                return Err(ModelError::manifest(
                    path,
                    &format!("{ctx}.groups"),
                    "only groups = 1 is supported".into(),
                ));
            }
            positive(&[
                ("in_channels", r.in_channels),
                ("out_channels", r.out_channels),
                ("kernel", r.kernel[0].min(r.kernel[1])),
                ("stride", r.stride[0].min(r.stride[1])),
            ])?;
            LayerKind::Conv2d {
                in_channels: r.in_channels,
                out_channels: r.out_channels,
                kernel: r.kernel,
                stride: r.stride,
                padding: r.padding,
                weight: r.weight,
                bias: r.bias,
            }
        }
        "linear" => {
            let r: LinearRaw = de(t, path, &ctx)?;
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
            let r: PoolRaw = de(t, path, &ctx)?;
            let stride = r.stride.unwrap_or(r.kernel);
            positive(&[
                ("kernel", r.kernel[0].min(r.kernel[1])),
                ("stride", stride[0].min(stride[1])),
            ])?;
            if r.padding[0] * 2 > r.kernel[0] || r.padding[1] * 2 > r.kernel[1] {
                return Err(ModelError::manifest(
                    path,
                    &format!("{ctx}.padding"),
                    format!(
                        "{:?} must be at most half the kernel {:?}",
                        r.padding, r.kernel
                    ),
                ));
            }
            let (kernel, padding) = (r.kernel, r.padding);
            if ty == "maxpool2d" {
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
                }
            }
        }
        "add" => {
            let r: AddRaw = de(t, path, &ctx)?;
            LayerKind::Add { inputs: r.inputs }
        }
        "groupnorm" => {
            let r: GroupNormRaw = de(t, path, &ctx)?;
            positive(&[("groups", r.groups), ("channels", r.channels)])?;
            if !r.channels.is_multiple_of(r.groups) {
                return Err(ModelError::manifest(
                    path,
                    &format!("{ctx}.groups"),
                    format!("{} does not divide channels = {}", r.groups, r.channels),
                ));
            }
            check_eps(r.eps, path, &ctx)?;
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
            let r: BatchNormRaw = de(t, path, &ctx)?;
            positive(&[("channels", r.channels)])?;
            check_eps(r.eps, path, &ctx)?;
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
            let _: NoKeys = de(t, path, &ctx)?;
            match ty.as_str() {
                "relu" => LayerKind::Relu,
                "global_avgpool" => LayerKind::GlobalAvgPool,
                "flatten" => LayerKind::Flatten,
                _ => LayerKind::Identity,
            }
        }
        "dropout" => {
            let _: DropoutRaw = de(t, path, &ctx)?;
            LayerKind::Dropout
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
    if matches!(kind, LayerKind::Add { .. }) && input.is_some() {
        return Err(ModelError::manifest(
            path,
            &format!("{ctx}.input"),
            "an add layer names its two operands in `inputs`, not `input`".into(),
        ));
    }
    Ok(Layer { name, input, kind })
}

/// Checks the kind of every known layer key before serde sees it, so that a wrong value names its key
/// (`layers[3] ("conv2", conv2d).padding: expected two non-negative integers, found [-1, 1]`).
fn check_value_kinds(t: &toml::Table, path: &Path, ctx: &str) -> Result<(), ModelError> {
    use toml::Value;
    let uint = |v: &Value| matches!(v, Value::Integer(i) if *i >= 0);
    for (k, v) in t {
        let (ok, want) = match k.as_str() {
            "in_channels" | "out_channels" | "in_features" | "out_features" | "groups"
            | "channels" => (uint(v), "a non-negative integer"),
            "kernel" | "stride" | "padding" => (
                matches!(v, Value::Array(a) if a.len() == 2 && a.iter().all(uint)),
                "two non-negative integers",
            ),
            "eps" | "p" => (matches!(v, Value::Float(_) | Value::Integer(_)), "a number"),
            "reparameterized" => (matches!(v, Value::Boolean(_)), "true or false"),
            "weight" | "bias" | "running_mean" | "running_var" => {
                (matches!(v, Value::String(_)), "a tensor name")
            }
            "inputs" => (
                matches!(v, Value::Array(a) if a.len() == 2 && a.iter().all(|x| x.is_str())),
                "two layer names",
            ),
            _ => (true, ""),
        };
        if !ok {
            return Err(ModelError::manifest(
                path,
                &format!("{ctx}.{k}"),
                format!("expected {want}, found {v}"),
            ));
        }
    }
    Ok(())
}

fn check_eps(eps: f32, path: &Path, ctx: &str) -> Result<(), ModelError> {
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(ModelError::manifest(
            path,
            &format!("{ctx}.eps"),
            format!("{eps} must be finite and >= 0"),
        ));
    }
    Ok(())
}
