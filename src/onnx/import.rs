//! ONNX graph → accelsim layers (docs/onnx.md).
//!
//! Nodes are visited in the file's (topological) order. Every ONNX value is either a constant (folded at import,
//! [`super::fold`]) or an activation: a view with ONNX per-example dims over the output of an accelsim layer.
//! Views make `Flatten`/`Reshape`/`Squeeze`/`Unsqueeze`/`Identity`/`Dropout` free; a `reshape` layer is emitted
//! only where a consumer needs another accelsim shape than the producer's.
//!
//! Fusions (exact up to float rounding): `BatchNormalization` after a convolution or linear layer, and `Mul`/
//! `Add`/`Sub`/`Div` by a per-channel constant after a convolution, linear or normalization layer, fold into
//! its weights and bias when nothing else reads the intermediate value. `MatMul` + `Add` becomes one linear
//! layer this way, and PyTorch's `GroupNorm` export (`Reshape → InstanceNormalization → Reshape → Mul → Add`)
//! one `groupnorm` layer.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::fold::{self, BATCH};
use super::proto::{self, AttributeProto, GraphProto, NodeProto};
use super::qdq::{self, ActQ, DqConst, QType, StoredWeight};
use super::tensor::{self, checked_numel, Data, Tensor};
use crate::model::graph::{window_out_dilated, MAX_VALUES_PER_EXAMPLE};
use crate::model::{Layer, LayerKind, Shape};

/// The default-domain opsets the importer reads.
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;

/// Operators the importer maps onto layers or folds (docs/onnx.md).
pub const SUPPORTED_OPS: [&str; 40] = [
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "DequantizeLinear",
    "Div",
    "Dropout",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "GroupNormalization",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "InstanceNormalization",
    "LeakyRelu",
    "MatMul",
    "MaxPool",
    "Mul",
    "Neg",
    "QuantizeLinear",
    "Reciprocal",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Transpose",
    "Unsqueeze",
];

/// What the importer made of a graph.
#[derive(Debug)]
pub struct Converted {
    pub layers: Vec<Layer>,
    /// Parameter and buffer tensors by name: (shape, values).
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// C, H, W of one input example.
    pub input_shape: [usize; 3],
    pub classes: usize,
    pub opset: i64,
    /// QDQ models: the activation parameters of each quantized value (value name: `"input"` or a layer's).
    pub act_quant: Vec<(String, ActQ)>,
    /// QDQ models: the stored codes and per-output-channel scales of each weight dequantized from integers.
    pub qdq_weights: BTreeMap<String, StoredWeight>,
}

impl Converted {
    /// Whether the graph was a QDQ model: some weight dequantized from integers or some quantized activation
    /// (docs/onnx.md#qdq-models).
    pub fn is_qdq(&self) -> bool {
        !self.qdq_weights.is_empty() || !self.act_quant.is_empty()
    }
}

/// An activation: ONNX per-example `dims` viewing the output (`base` shape) of value `src`
/// (0 = network input, `i + 1` = layer `i`).
#[derive(Clone, Debug)]
struct Dyn {
    src: usize,
    base: Shape,
    dims: Vec<usize>,
}

#[derive(Clone, Debug)]
enum Val {
    Const(Tensor),
    Dyn(Dyn),
}

type R<T> = Result<T, String>;

/// The accelsim shape of ONNX per-example dims: `[f]` flat, `[c, h, w]` maps, `[c, l]` as `c x l x 1`.
fn canonical(dims: &[usize]) -> R<Shape> {
    Ok(match dims {
        [] => Shape::Flat(1),
        [f] => Shape::Flat(*f),
        [c, l] => Shape::Chw(*c, *l, 1),
        [c, h, w] => Shape::Chw(*c, *h, *w),
        _ => {
            return Err(format!(
                "activations of rank {} (per-example dims {dims:?}) are not supported (rank 2 or 4 only)",
                dims.len() + 1
            ))
        }
    })
}

fn shape_dims(s: Shape) -> Vec<usize> {
    match s {
        Shape::Chw(c, h, w) => vec![c, h, w],
        Shape::Flat(f) => vec![f],
    }
}

/// Attribute access with ONNX defaults.
struct Attrs<'a>(&'a [AttributeProto]);

impl Attrs<'_> {
    fn get(&self, name: &str) -> Option<&AttributeProto> {
        self.0.iter().find(|a| a.name.as_deref() == Some(name))
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).and_then(|a| a.i).unwrap_or(default)
    }
    fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).and_then(|a| a.f).unwrap_or(default)
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }
    fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .and_then(|a| a.s.as_ref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }
}

struct Converter<'a> {
    opset: i64,
    base_dir: &'a Path,
    vals: HashMap<String, Val>,
    /// Remaining readers of each ONNX value (live nodes' inputs, +1 for the graph output).
    consumers: HashMap<String, usize>,
    layers: Vec<Layer>,
    shapes: Vec<Shape>,
    /// Outstanding ONNX reads of each value id's storage.
    refs: Vec<usize>,
    /// Whether a layer reads each value id.
    used: Vec<bool>,
    /// Whether each value id is never negative by construction (after ReLU, pooling of such values, ...).
    nonneg: Vec<bool>,
    names: HashSet<String>,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// Declared batch dimension of the graph input, when fixed.
    batch_decl: Option<i64>,
    /// ONNX data type of integer constants that Q/DQ nodes read (initializers, Constant nodes, folded Q).
    const_types: HashMap<String, i32>,
    /// Constants that DequantizeLinear folded, with their codes and parameters.
    dq: HashMap<String, DqConst>,
    /// Outputs of QuantizeLinear on activations (integer values only DequantizeLinear may read).
    int_vals: HashMap<String, ActQ>,
    /// Activation parameters by value id.
    act_quant: BTreeMap<usize, ActQ>,
    qdq_weights: BTreeMap<String, StoredWeight>,
}

/// Converts a decoded model. `image_shape`: C, H, W for graphs whose input is already flat (`[N, F]`).
pub fn convert(
    model: &proto::ModelProto,
    base_dir: &Path,
    image_shape: Option<[usize; 3]>,
) -> R<Converted> {
    let mut opset = None;
    for o in &model.opset_import {
        if matches!(o.domain.as_deref().unwrap_or(""), "" | "ai.onnx") {
            opset = o.version;
        }
    }
    let opset = opset.ok_or("the model imports no default-domain (ai.onnx) opset")?;
    if !OPSETS.contains(&opset) {
        return Err(format!(
            "opset {opset} is not supported (opsets {}..={}; re-export with e.g. torch.onnx.export(..., opset_version=17))",
            OPSETS.start(),
            OPSETS.end()
        ));
    }
    let graph = model.graph.as_ref().ok_or("the model has no graph")?;
    let mut c = Converter {
        opset,
        base_dir,
        vals: HashMap::new(),
        consumers: HashMap::new(),
        layers: vec![],
        shapes: vec![],
        refs: vec![0],
        used: vec![false],
        nonneg: vec![false],
        names: HashSet::new(),
        tensors: BTreeMap::new(),
        batch_decl: None,
        const_types: HashMap::new(),
        dq: HashMap::new(),
        int_vals: HashMap::new(),
        act_quant: BTreeMap::new(),
        qdq_weights: BTreeMap::new(),
    };
    c.run(graph, image_shape)
}

impl Converter<'_> {
    fn run(&mut self, g: &GraphProto, image_shape: Option<[usize; 3]>) -> R<Converted> {
        for t in &g.initializer {
            let name = t.name.clone().unwrap_or_default();
            self.const_types
                .insert(name.clone(), t.data_type.unwrap_or(0));
            self.vals
                .insert(name, Val::Const(tensor::decode(t, self.base_dir)?));
        }
        if !g.sparse_initializer.is_empty() {
            return Err("sparse initializers are not supported".into());
        }
        let inputs: Vec<&proto::ValueInfoProto> = g
            .input
            .iter()
            .filter(|i| !self.vals.contains_key(i.name.as_deref().unwrap_or("")))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(format!(
                "the graph has {} non-constant inputs; accelsim models take exactly one image batch",
                inputs.len()
            ));
        };
        let [output] = g.output.as_slice() else {
            return Err(format!(
                "the graph has {} outputs; accelsim models produce exactly one logit matrix",
                g.output.len()
            ));
        };
        let out_name = output.name.clone().unwrap_or_default();
        let (input_shape, dims) = self.input(input, image_shape)?;
        self.vals.insert(
            input.name.clone().unwrap_or_default(),
            Val::Dyn(Dyn {
                src: 0,
                base: Shape::Chw(input_shape[0], input_shape[1], input_shape[2]),
                dims,
            }),
        );
        // Live nodes: those the output depends on.
        let producer: HashMap<&str, usize> = g
            .node
            .iter()
            .enumerate()
            .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
            .collect();
        let mut live = vec![false; g.node.len()];
        let mut stack: Vec<&str> = vec![out_name.as_str()];
        while let Some(v) = stack.pop() {
            if let Some(&i) = producer.get(v) {
                if !std::mem::replace(&mut live[i], true) {
                    stack.extend(
                        g.node[i]
                            .input
                            .iter()
                            .map(|s| s.as_str())
                            .filter(|s| !s.is_empty()),
                    );
                }
            }
        }
        for (i, n) in g.node.iter().enumerate() {
            if live[i] {
                for inp in n.input.iter().filter(|s| !s.is_empty()) {
                    *self.consumers.entry(inp.clone()).or_default() += 1;
                }
            }
        }
        *self.consumers.entry(out_name.clone()).or_default() += 1;
        if let Some(Val::Dyn(d)) = self.vals.get(input.name.as_deref().unwrap_or("")) {
            let k = self
                .consumers
                .get(input.name.as_deref().unwrap_or(""))
                .copied()
                .unwrap_or(0);
            let src = d.src;
            self.refs[src] += k;
        }
        for (i, node) in g.node.iter().enumerate() {
            if !live[i] {
                continue;
            }
            let op = node.op_type.as_deref().unwrap_or("");
            let domain = node.domain.as_deref().unwrap_or("");
            let opset = self.opset;
            let ctx = |msg: String| {
                format!(
                    "node \"{}\" ({}{op}, opset {}): {msg}",
                    node.name.as_deref().unwrap_or(""),
                    if domain.is_empty() || domain == "ai.onnx" {
                        String::new()
                    } else {
                        format!("{domain}.")
                    },
                    opset
                )
            };
            if !(domain.is_empty() || domain == "ai.onnx") {
                return Err(ctx(format!(
                    "operators of domain \"{domain}\" are not supported; see docs/onnx.md for the supported list"
                )));
            }
            self.node(node, i).map_err(ctx)?;
        }
        let out =
            self.vals.get(&out_name).cloned().ok_or_else(|| {
                format!("graph output \"{out_name}\" is not computed by any node")
            })?;
        let Val::Dyn(d) = out else {
            return Err("the graph output is a constant".into());
        };
        if self.int_vals.contains_key(&out_name) {
            return Err("the graph output is the integer output of a QuantizeLinear; end the graph with DequantizeLinear".into());
        }
        let classes: usize = d.dims.iter().product();
        if d.dims.iter().filter(|&&x| x != 1).count() > 1 {
            return Err(format!(
                "the graph output has per-example dims {:?}; accelsim needs [N, classes] logits",
                d.dims
            ));
        }
        let id = self.materialize(&d, Shape::Flat(classes), "output")?;
        if id == 0 {
            return Err("the graph computes nothing from its input".into());
        }
        if id != self.layers.len() {
            return Err("internal: the output is not the last layer".into());
        }
        if let Some(i) = self
            .layers
            .iter()
            .position(|l| matches!(l.kind, LayerKind::Softmax))
        {
            if i + 1 != self.layers.len() {
                return Err(format!(
                    "Softmax (layer \"{}\") is supported only as the last operator",
                    self.layers[i].name
                ));
            }
        }
        self.check_one_weight_code_type()?;
        let act_quant = self
            .act_quant
            .iter()
            .map(|(&id, &q)| (self.value_name(id), q))
            .collect();
        Ok(Converted {
            layers: std::mem::take(&mut self.layers),
            tensors: std::mem::take(&mut self.tensors),
            input_shape,
            classes,
            opset: self.opset,
            act_quant,
            qdq_weights: std::mem::take(&mut self.qdq_weights),
        })
    }

    /// The graph input: `[N, C, H, W]` (or `[N, F]` with `image_shape`), float, batch dynamic or fixed.
    fn input(
        &mut self,
        v: &proto::ValueInfoProto,
        image_shape: Option<[usize; 3]>,
    ) -> R<([usize; 3], Vec<usize>)> {
        use proto::tensor_shape_proto::dimension::Value as D;
        let name = v.name.as_deref().unwrap_or("");
        let t = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(proto::type_proto::Value::TensorType(t)) => t,
            _ => return Err(format!("graph input \"{name}\" is not a tensor")),
        };
        if t.elem_type != Some(proto::tensor_proto::DataType::Float as i32) {
            return Err(format!("graph input \"{name}\" must be float32"));
        }
        let dims = &t
            .shape
            .as_ref()
            .ok_or(format!("graph input \"{name}\" has no shape"))?
            .dim;
        let mut fixed = vec![];
        for (i, d) in dims.iter().enumerate() {
            match (&d.value, i) {
                (Some(D::DimValue(v)), 0) => self.batch_decl = Some(*v),
                (_, 0) => {}
                (Some(D::DimValue(v)), _) if *v > 0 && (*v as usize) <= MAX_VALUES_PER_EXAMPLE => {
                    fixed.push(*v as usize)
                }
                (Some(D::DimValue(v)), _) => {
                    return Err(format!("graph input \"{name}\": dimension {i} = {v} is out of range"))
                }
                _ => {
                    return Err(format!(
                        "graph input \"{name}\": dimension {i} is dynamic; only the batch (dimension 0) may be"
                    ))
                }
            }
        }
        match fixed.as_slice() {
            [c, h, w] => {
                checked_numel(&fixed)
                    .filter(|&n| n <= MAX_VALUES_PER_EXAMPLE)
                    .ok_or(format!("graph input \"{name}\" is too large"))?;
                Ok(([*c, *h, *w], fixed))
            }
            [f] => match image_shape {
                Some(s) if s.iter().product::<usize>() == *f => Ok((s, fixed)),
                Some(s) => Err(format!(
                    "graph input \"{name}\" has {f} features per example, the dataset's images are {s:?}"
                )),
                None => Err(format!(
                    "graph input \"{name}\" is [N, {f}]; give --dataset so that the image shape is known"
                )),
            },
            _ => Err(format!(
                "graph input \"{name}\" has rank {}; accelsim reads [N, C, H, W] images (or [N, F] with --dataset)",
                dims.len()
            )),
        }
    }

    fn consumers_of(&self, name: &str) -> usize {
        self.consumers.get(name).copied().unwrap_or(0)
    }

    fn set(&mut self, name: &str, v: Val) {
        if let Val::Dyn(d) = &v {
            let k = self.consumers_of(name);
            self.refs[d.src] += k;
        }
        self.vals.insert(name.to_string(), v);
    }

    fn unique_name(&mut self, hint: &str) -> String {
        let base: String = hint.trim_matches('/').replace('/', ".");
        let base = if base.is_empty() {
            "layer".to_string()
        } else {
            base
        };
        let mut name = base.clone();
        let mut k = 1;
        while name == "input" || self.names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.names.insert(name.clone());
        name
    }

    /// Appends a layer reading value ids `inputs`; returns its value id.
    fn push(
        &mut self,
        name: String,
        inputs: Vec<usize>,
        kind: LayerKind,
        shape: Shape,
    ) -> R<usize> {
        if checked_numel(&shape_dims(shape)).is_none_or(|n| n > MAX_VALUES_PER_EXAMPLE) {
            return Err(format!(
                "output {shape} exceeds {MAX_VALUES_PER_EXAMPLE} values per example"
            ));
        }
        for &i in &inputs {
            self.used[i] = true;
        }
        let input = match kind {
            LayerKind::Add { .. } | LayerKind::Concat { .. } => None,
            _ if inputs[0] == self.layers.len() => None,
            _ => Some(self.value_name(inputs[0])),
        };
        self.layers.push(Layer { name, input, kind });
        self.shapes.push(shape);
        self.refs.push(0);
        self.used.push(false);
        let all_nonneg = inputs.iter().all(|&i| self.nonneg[i]);
        self.nonneg
            .push(match &self.layers.last().expect("pushed").kind {
                LayerKind::Relu | LayerKind::Sigmoid | LayerKind::HardSigmoid { .. } => true,
                LayerKind::Clip { min, .. } => *min >= 0.0 || all_nonneg,
                LayerKind::MaxPool2d { .. }
                | LayerKind::AvgPool2d { .. }
                | LayerKind::GlobalAvgPool
                | LayerKind::Flatten
                | LayerKind::Reshape { .. }
                | LayerKind::Identity
                | LayerKind::Dropout
                | LayerKind::Concat { .. }
                | LayerKind::Add { .. } => all_nonneg,
                _ => false,
            });
        Ok(self.layers.len())
    }

    fn value_name(&self, id: usize) -> String {
        if id == 0 {
            "input".into()
        } else {
            self.layers[id - 1].name.clone()
        }
    }

    fn add_tensor(&mut self, name: String, dims: Vec<usize>, v: Vec<f32>) -> R<String> {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(format!(
                "tensor \"{name}\" element {i} is {} (not finite)",
                v[i]
            ));
        }
        self.tensors.insert(name.clone(), (dims, v));
        Ok(name)
    }

    /// The value id holding `d` in the accelsim shape `want` (a zero-copy `reshape` layer when needed).
    fn materialize(&mut self, d: &Dyn, want: Shape, hint: &str) -> R<usize> {
        if d.base == want {
            return Ok(d.src);
        }
        if d.base.numel() != want.numel() {
            return Err(format!("cannot view {} as {want}", d.base));
        }
        let name = self.unique_name(&format!("{hint}.reshape"));
        self.push(
            name,
            vec![d.src],
            LayerKind::Reshape {
                shape: shape_dims(want),
            },
            want,
        )
    }

    /// Whether the layer producing value `id` may absorb the current node (nothing else reads its output).
    fn fusable(&self, d: &Dyn) -> bool {
        d.src > 0
            && self.refs[d.src] == 0
            && !self.used[d.src]
            && canonical(&d.dims).ok() == Some(d.base)
    }

    fn get(&self, name: &str) -> R<&Val> {
        self.vals
            .get(name)
            .ok_or_else(|| format!("input \"{name}\" is not computed before this node"))
    }

    fn konst(&self, name: &str) -> R<&Tensor> {
        match self.get(name)? {
            Val::Const(t) => Ok(t),
            Val::Dyn(_) => Err(format!(
                "input \"{name}\" must be a constant (an initializer)"
            )),
        }
    }

    fn opt_const(&self, node: &NodeProto, i: usize) -> R<Option<&Tensor>> {
        match node.input.get(i).filter(|s| !s.is_empty()) {
            Some(n) => self.konst(n).map(Some),
            None => Ok(None),
        }
    }

    fn node(&mut self, node: &NodeProto, index: usize) -> R<()> {
        let op = node.op_type.as_deref().unwrap_or("");
        let a = Attrs(&node.attribute);
        let ins: Vec<&str> = node.input.iter().map(|s| s.as_str()).collect();
        let hint = match node.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!("{}_{index}", op.to_lowercase()),
        };
        // Every output other than the first must be unused (Dropout's mask, MaxPool's indices, BN's statistics).
        for extra in node.output.iter().skip(1) {
            if !extra.is_empty() && self.consumers_of(extra) > 0 {
                return Err(format!(
                    "output \"{extra}\" is used; only the first output of {op} is supported"
                ));
            }
        }
        let out = node.output.first().cloned().unwrap_or_default();
        // Constant nodes and folding of all-constant inputs.
        if op == "Constant" {
            if let Some(dt) = a
                .get("value")
                .and_then(|x| x.t.as_ref())
                .and_then(|t| t.data_type)
            {
                self.const_types.insert(out.clone(), dt);
            }
            let t = self.constant_attr(&a)?;
            self.set(&out, Val::Const(t));
            return Ok(());
        }
        // Only DequantizeLinear may read the integer output of a QuantizeLinear on an activation.
        if op != "DequantizeLinear" {
            if let Some(n) = ins.iter().find(|n| self.int_vals.contains_key(**n)) {
                return Err(format!(
                    "input \"{n}\" is the integer output of a QuantizeLinear; only DequantizeLinear may read it (QOperator-format models with QLinearConv etc. are not supported: export QDQ)"
                ));
            }
        }
        if op == "QuantizeLinear" || op == "DequantizeLinear" {
            return self.qdq_node(op, node, &a, &out);
        }
        let present: Vec<&str> = ins.iter().copied().filter(|s| !s.is_empty()).collect();
        let all_const = present
            .iter()
            .all(|n| matches!(self.vals.get(*n), Some(Val::Const(_))));
        if all_const && op != "Shape" {
            let t = self.fold(op, node, &a)?;
            self.set(&out, Val::Const(t));
            return Ok(());
        }
        // This node reads its activation inputs now.
        for n in &present {
            if let Some(Val::Dyn(d)) = self.vals.get(*n) {
                let s = d.src;
                self.refs[s] = self.refs[s].saturating_sub(1);
            }
        }
        let x = match self.get(ins.first().copied().unwrap_or(""))? {
            Val::Dyn(d) => Some(d.clone()),
            Val::Const(_) => None,
        };
        let need_x = || {
            x.clone()
                .ok_or("the first input must be an activation (not a constant)".to_string())
        };
        let result: Val = match op {
            "Shape" => {
                let dims: Vec<i64> = match self.get(ins[0])? {
                    Val::Dyn(d) => std::iter::once(BATCH)
                        .chain(d.dims.iter().map(|&v| v as i64))
                        .collect(),
                    Val::Const(t) => t.dims.iter().map(|&v| v as i64).collect(),
                };
                let r = dims.len() as i64;
                let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let s = clampi(a.int("start", 0));
                let e = clampi(a.int("end", r));
                let v = dims[s..e.max(s)].to_vec();
                Val::Const(Tensor::i64(vec![v.len()], v))
            }
            "Identity" | "Dropout" => Val::Dyn(need_x()?),
            "Flatten" => {
                let d = need_x()?;
                let ax = fold::axis(a.int("axis", 1), d.dims.len() + 1)?;
                if ax != 1 {
                    return Err(format!("axis = {ax}: only flattening everything but the batch (axis 1) is supported"));
                }
                Val::Dyn(Dyn {
                    dims: vec![d.dims.iter().product()],
                    ..d
                })
            }
            "Reshape" => {
                let d = need_x()?;
                let target = self.konst(ins.get(1).copied().unwrap_or(""))?;
                let t = target.as_i64().ok_or("the shape must be int64")?.to_vec();
                let dims = self.reshape_dyn(&d.dims, &t, a.int("allowzero", 0) != 0)?;
                Val::Dyn(Dyn { dims, ..d })
            }
            "Squeeze" | "Unsqueeze" => {
                let d = need_x()?;
                let axes = match self.opt_const(node, 1)? {
                    Some(t) => Some(t.as_i64().ok_or("axes must be int64")?.to_vec()),
                    None => a.ints("axes"),
                };
                let mut full: Vec<usize> =
                    std::iter::once(1).chain(d.dims.iter().copied()).collect();
                if op == "Squeeze" {
                    let axes: Vec<usize> = match axes {
                        Some(ax) => ax
                            .iter()
                            .map(|&v| fold::axis(v, full.len()))
                            .collect::<R<_>>()?,
                        None => (1..full.len()).filter(|&i| full[i] == 1).collect(),
                    };
                    if axes.contains(&0) {
                        return Err("squeezing the batch axis is not supported".into());
                    }
                    if let Some(&i) = axes.iter().find(|&&i| full[i] != 1) {
                        return Err(format!("axis {i} has size {}, not 1", full[i]));
                    }
                    full = full
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !axes.contains(i))
                        .map(|(_, &v)| v)
                        .collect();
                } else {
                    let ax = axes.ok_or("Unsqueeze without axes")?;
                    let r = full.len() + ax.len();
                    let mut axs: Vec<usize> =
                        ax.iter().map(|&v| fold::axis(v, r)).collect::<R<_>>()?;
                    axs.sort_unstable();
                    if axs.first() == Some(&0) {
                        return Err("unsqueezing before the batch axis is not supported".into());
                    }
                    for &i in &axs {
                        full.insert(i, 1);
                    }
                }
                Val::Dyn(Dyn {
                    dims: full[1..].to_vec(),
                    ..d
                })
            }
            "Conv" => self.conv(node, &a, need_x()?, &hint)?,
            "Gemm" | "MatMul" => self.gemm(op, node, &a, need_x()?, &hint)?,
            "BatchNormalization" => self.batchnorm(node, &a, need_x()?, &hint)?,
            "InstanceNormalization" | "GroupNormalization" => {
                self.norm(op, node, &a, need_x()?, &hint)?
            }
            "Relu" | "Sigmoid" | "HardSwish" | "LeakyRelu" | "HardSigmoid" | "Clip" => {
                let d = need_x()?;
                let kind = match op {
                    "Relu" => LayerKind::Relu,
                    "Sigmoid" => LayerKind::Sigmoid,
                    "HardSwish" => LayerKind::HardSwish,
                    "LeakyRelu" => LayerKind::LeakyRelu {
                        alpha: a.float("alpha", 0.01),
                    },
                    "HardSigmoid" => LayerKind::HardSigmoid {
                        alpha: a.float("alpha", 0.2),
                        beta: a.float("beta", 0.5),
                    },
                    _ => {
                        let scalar = |i: usize| -> R<Option<f32>> {
                            match self.opt_const(node, i)? {
                                Some(t) if t.len() == 1 => Ok(Some(t.as_f32()[0])),
                                Some(_) => Err("min and max must be scalars".into()),
                                None => Ok(None),
                            }
                        };
                        let (min, max) = (scalar(1)?, scalar(2)?);
                        LayerKind::Clip {
                            min: min.unwrap_or(f32::NEG_INFINITY),
                            max: max.unwrap_or(f32::INFINITY),
                        }
                    }
                };
                let name = self.unique_name(&hint);
                let id = self.push(name, vec![d.src], kind, d.base)?;
                Val::Dyn(Dyn { src: id, ..d })
            }
            "Softmax" => {
                let d = need_x()?;
                let r = d.dims.len() + 1;
                let ax = fold::axis(a.int("axis", -1), r)?;
                if r != 2 || ax != 1 {
                    return Err(format!(
                        "softmax over axis {ax} of a rank-{r} tensor: only over the logits of [N, classes]"
                    ));
                }
                let id = self.materialize(&d, Shape::Flat(d.dims[0]), &hint)?;
                let name = self.unique_name(&hint);
                let id = self.push(name, vec![id], LayerKind::Softmax, Shape::Flat(d.dims[0]))?;
                Val::Dyn(Dyn {
                    src: id,
                    base: Shape::Flat(d.dims[0]),
                    dims: d.dims,
                })
            }
            "MaxPool" | "AveragePool" | "GlobalAveragePool" | "GlobalMaxPool" => {
                self.pool(op, &a, need_x()?, &hint)?
            }
            "Concat" => {
                let mut parts = vec![];
                for n in &present {
                    match self.get(n)? {
                        Val::Dyn(d) => parts.push(d.clone()),
                        Val::Const(_) => {
                            return Err(
                                "concatenating a constant with activations is not supported".into(),
                            )
                        }
                    }
                }
                let r = parts[0].dims.len() + 1;
                let ax = fold::axis(a.int("axis", 1), r)?;
                if ax != 1 {
                    return Err(format!(
                        "concat along axis {ax}: only along the channels (axis 1)"
                    ));
                }
                let mut ids = vec![];
                let mut dims = parts[0].dims.clone();
                dims[0] = 0;
                for p in &parts {
                    if p.dims.len() != parts[0].dims.len() || p.dims[1..] != parts[0].dims[1..] {
                        return Err(format!(
                            "operand dims {:?} and {:?} differ beyond the channels",
                            p.dims, parts[0].dims
                        ));
                    }
                    dims[0] += p.dims[0];
                    let s = canonical(&p.dims)?;
                    ids.push(self.materialize(p, s, &hint)?);
                }
                let shape = canonical(&dims)?;
                let name = self.unique_name(&hint);
                let inputs: Vec<String> = ids.iter().map(|&i| self.value_name(i)).collect();
                let id = self.push(name, ids, LayerKind::Concat { inputs }, shape)?;
                Val::Dyn(Dyn {
                    src: id,
                    base: shape,
                    dims,
                })
            }
            "Add" | "Sub" | "Mul" | "Div" => self.binary(op, node, &hint)?,
            _ => {
                return Err(format!(
                    "operator {op} is not supported; see docs/onnx.md for the supported list"
                ))
            }
        };
        self.set(&out, result);
        Ok(())
    }

    /// A QuantizeLinear or DequantizeLinear node (docs/onnx.md#qdq-models): folded on constants (keeping the
    /// codes of dequantized weights), a recorded identity on activations.
    fn qdq_node(&mut self, op: &str, node: &NodeProto, a: &Attrs, out: &str) -> R<()> {
        let input = |i: usize| {
            node.input
                .get(i)
                .map(|s| s.as_str())
                .filter(|s| !s.is_empty())
        };
        let x_name = input(0).ok_or("the input is missing")?;
        let scale = self.konst(input(1).ok_or("the scale is missing")?)?.clone();
        let zero = match input(2) {
            Some(n) => Some((
                self.konst(n)?.clone(),
                self.const_types.get(n).copied().unwrap_or(0),
            )),
            None => None,
        };
        let zero_ref = zero.as_ref().map(|(t, dt)| (t, *dt));
        let (axis, block) = (a.int("axis", 1), a.int("block_size", 0));
        match self.get(x_name)?.clone() {
            Val::Const(t) => {
                if op == "QuantizeLinear" {
                    let p = qdq::params(
                        &scale,
                        zero_ref,
                        QType::Uint8,
                        axis,
                        block,
                        Some(&t.dims),
                        t.dims.len(),
                    )?;
                    let codes = qdq::quantize(&t.as_f32(), &t.dims, &p);
                    self.const_types.insert(out.to_string(), p.qtype.onnx());
                    self.set(out, Val::Const(Tensor::i64(t.dims.clone(), codes)));
                    return Ok(());
                }
                let dt = self.const_types.get(x_name).copied().unwrap_or(0);
                let qtype = QType::from_onnx(dt).ok_or(
                    "the input must be an int8, uint8 or int32 constant (or a QuantizeLinear)",
                )?;
                let p = qdq::params(
                    &scale,
                    zero_ref,
                    qtype,
                    axis,
                    block,
                    Some(&t.dims),
                    t.dims.len(),
                )?;
                if p.qtype != qtype {
                    return Err(format!(
                        "the zero point is {} but the codes are {}",
                        p.qtype.name(),
                        qtype.name()
                    ));
                }
                let codes = t.as_i64().ok_or("the codes must be integers")?.to_vec();
                let values = qdq::dequantize(&codes, &t.dims, &p);
                self.dq.insert(
                    out.to_string(),
                    DqConst {
                        dims: t.dims.clone(),
                        codes,
                        qtype,
                        scale: p.scale,
                        zero: p.zero,
                        axis: p.axis,
                    },
                );
                self.set(out, Val::Const(Tensor::f32(t.dims, values)));
                Ok(())
            }
            Val::Dyn(d) => {
                self.refs[d.src] = self.refs[d.src].saturating_sub(1);
                let given = match op {
                    "QuantizeLinear" => None,
                    _ => Some(*self.int_vals.get(x_name).ok_or(
                        "DequantizeLinear of an activation that no QuantizeLinear produced",
                    )?),
                };
                let default = given.map_or(QType::Uint8, |g| g.qtype);
                let p = qdq::params(
                    &scale,
                    zero_ref,
                    default,
                    axis,
                    block,
                    None,
                    d.dims.len() + 1,
                )?;
                if p.axis.is_some() {
                    return Err("per-axis quantization of an activation: only per tensor (one scale and zero point)".into());
                }
                if p.qtype == QType::Int32 {
                    return Err("int32 activation codes: only int8 and uint8".into());
                }
                let q = ActQ {
                    scale: p.scale[0],
                    zero: p.zero[0],
                    qtype: p.qtype,
                };
                match given {
                    None => {
                        self.int_vals.insert(out.to_string(), q);
                    }
                    Some(g) if g != q => {
                        return Err(format!(
                            "scale {} / zero point {} ({}) differ from its QuantizeLinear's {} / {} ({}); requantizing between Q and DQ is not supported",
                            q.scale, q.zero, q.qtype.name(), g.scale, g.zero, g.qtype.name()
                        ))
                    }
                    Some(_) => {}
                }
                let mut d = d;
                if given.is_some() && q.zero == q.qtype.range().0 && !self.nonneg[d.src] {
                    // Zero point at the lowest code: the pair clamps at 0, a ReLU that the quantizer may have
                    // removed from the float graph (onnxruntime does). Make it explicit so that the float
                    // datapath computes it too; the int8 datapath fuses it into the producer's saturation.
                    let name = self.unique_name(&format!("{}.relu", self.value_name(d.src)));
                    let id = self.push(name, vec![d.src], LayerKind::Relu, d.base)?;
                    d = Dyn { src: id, ..d };
                }
                if given.is_some() {
                    match self.act_quant.get(&d.src) {
                        Some(old) if *old != q => {
                            return Err(format!(
                                "value \"{}\" is quantized twice with different parameters ({} / {} and {} / {})",
                                self.value_name(d.src), old.scale, old.zero, q.scale, q.zero
                            ))
                        }
                        _ => {
                            self.act_quant.insert(d.src, q);
                        }
                    }
                }
                self.set(out, Val::Dyn(d));
                Ok(())
            }
        }
    }

    /// A QDQ model's weights share one code type (int8 or uint8), the model's scheme.
    fn check_one_weight_code_type(&self) -> R<()> {
        let mut types = self.qdq_weights.values().map(|w| w.signed);
        if let Some(first) = types.next() {
            if types.any(|t| t != first) {
                return Err("the QDQ model mixes int8 and uint8 weights; accelsim stores one code type per model".into());
            }
        }
        Ok(())
    }

    fn constant_attr(&self, a: &Attrs) -> R<Tensor> {
        if let Some(t) = a.get("value").and_then(|x| x.t.as_ref()) {
            return tensor::decode(t, self.base_dir);
        }
        if let Some(x) = a.get("value_float").and_then(|x| x.f) {
            return Ok(Tensor::f32(vec![], vec![x]));
        }
        if let Some(x) = a.get("value_int").and_then(|x| x.i) {
            return Ok(Tensor::i64(vec![], vec![x]));
        }
        if let Some(x) = a.get("value_floats") {
            return Ok(Tensor::f32(vec![x.floats.len()], x.floats.clone()));
        }
        if let Some(x) = a.get("value_ints") {
            return Ok(Tensor::i64(vec![x.ints.len()], x.ints.clone()));
        }
        Err("Constant without a supported value attribute".into())
    }

    /// Folds an operator whose inputs are all constants.
    fn fold(&self, op: &str, node: &NodeProto, a: &Attrs) -> R<Tensor> {
        let c = |i: usize| -> R<&Tensor> {
            self.konst(node.input.get(i).map(|s| s.as_str()).unwrap_or(""))
        };
        let ints = |i: usize| -> R<Option<Vec<i64>>> {
            match self.opt_const(node, i)? {
                Some(t) => Ok(Some(t.as_i64().ok_or("expected an int64 tensor")?.to_vec())),
                None => Ok(None),
            }
        };
        Ok(match op {
            "Identity" | "Dropout" => c(0)?.clone(),
            "Cast" => fold::cast(c(0)?, a.int("to", 1))?,
            "Add" | "Sub" | "Mul" | "Div" => fold::binary(op, c(0)?, c(1)?)?,
            "Sqrt" | "Neg" | "Reciprocal" => fold::unary(op, c(0)?)?,
            "Transpose" => fold::transpose(c(0)?, a.ints("perm").as_deref())?,
            "Gather" => fold::gather(c(0)?, c(1)?, a.int("axis", 0))?,
            "Concat" => {
                let parts: Vec<&Tensor> = node
                    .input
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| self.konst(s))
                    .collect::<R<_>>()?;
                fold::concat(&parts, a.int("axis", 0))?
            }
            "Slice" => {
                let starts = ints(1)?.ok_or("Slice without starts")?;
                let ends = ints(2)?.ok_or("Slice without ends")?;
                fold::slice(c(0)?, &starts, &ends, ints(3)?.as_deref(), ints(4)?.as_deref())?
            }
            "Reshape" => {
                let t = c(0)?;
                let target = ints(1)?.ok_or("Reshape without a shape")?;
                let dims = fold::reshape_dims(&t.dims, &target, a.int("allowzero", 0) != 0)?;
                Tensor { dims, data: t.data.clone() }
            }
            "Flatten" => {
                let t = c(0)?;
                let ax = fold::axis(a.int("axis", 1), t.dims.len() + 1)?;
                let outer: usize = t.dims[..ax].iter().product();
                Tensor { dims: vec![outer, t.len() / outer.max(1)], data: t.data.clone() }
            }
            "Squeeze" | "Unsqueeze" => {
                let t = c(0)?;
                let axes = match ints(1)? {
                    Some(x) => Some(x),
                    None => a.ints("axes"),
                };
                let mut dims = t.dims.clone();
                if op == "Squeeze" {
                    let axes: Vec<usize> = match axes {
                        Some(x) => x.iter().map(|&v| fold::axis(v, dims.len())).collect::<R<_>>()?,
                        None => (0..dims.len()).filter(|&i| dims[i] == 1).collect(),
                    };
                    dims = dims.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &v)| v).collect();
                } else {
                    let x = axes.ok_or("Unsqueeze without axes")?;
                    let r = dims.len() + x.len();
                    let mut axs: Vec<usize> = x.iter().map(|&v| fold::axis(v, r)).collect::<R<_>>()?;
                    axs.sort_unstable();
                    for i in axs {
                        dims.insert(i, 1);
                    }
                }
                Tensor { dims, data: t.data.clone() }
            }
            "Shape" => {
                let t = c(0)?;
                let v: Vec<i64> = t.dims.iter().map(|&d| d as i64).collect();
                Tensor::i64(vec![v.len()], v)
            }
            "ConstantOfShape" => {
                let shape = ints(0)?.ok_or("ConstantOfShape without a shape")?;
                if shape.iter().any(|&d| d < 0 || d == BATCH) {
                    return Err("ConstantOfShape of a dynamic or negative shape".into());
                }
                let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
                let n = checked_numel(&dims).ok_or("ConstantOfShape result is too large")?;
                let value = match a.get("value").and_then(|x| x.t.as_ref()) {
                    Some(t) => tensor::decode(t, self.base_dir)?,
                    None => Tensor::f32(vec![1], vec![0.0]),
                };
                match value.data {
                    Data::F32(v) => Tensor::f32(dims, vec![*v.first().unwrap_or(&0.0); n]),
                    Data::I64(v) => Tensor::i64(dims, vec![*v.first().unwrap_or(&0); n]),
                }
            }
            _ => {
                return Err(format!(
                    "operator {op} on constants cannot be folded; see docs/onnx.md for the supported list"
                ))
            }
        })
    }

    /// ONNX Reshape of an activation (`[N, dims...]`) to `target`: the first entry is the batch (the folded
    /// batch size, 0, -1 or the declared batch).
    fn reshape_dyn(&self, dims: &[usize], target: &[i64], allowzero: bool) -> R<Vec<usize>> {
        let n: usize = dims.iter().product();
        let first = *target.first().ok_or("Reshape to a scalar")?;
        let batch_ok = first == BATCH
            || (first == 0 && !allowzero)
            || (first == -1 && !target[1..].contains(&-1))
            || Some(first) == self.batch_decl;
        if !batch_ok {
            return Err(format!(
                "Reshape to {:?} changes the batch dimension; only reshapes that keep it are supported",
                target.iter().map(|&t| if t == BATCH { "N".to_string() } else { t.to_string() }).collect::<Vec<_>>()
            ));
        }
        let mut out = vec![];
        let mut infer = None;
        for (i, &t) in target.iter().enumerate().skip(1) {
            match t {
                -1 if infer.is_none() => {
                    infer = Some(out.len());
                    out.push(1);
                }
                0 if !allowzero => {
                    out.push(*dims.get(i - 1).ok_or("Reshape 0 beyond the input rank")?)
                }
                t if t > 0 => out.push(t as usize),
                _ => return Err(format!("Reshape target entry {t} is not supported")),
            }
        }
        let known = checked_numel(&out).ok_or("Reshape target is too large")?;
        if let Some(i) = infer {
            if known == 0 || !n.is_multiple_of(known) {
                return Err(format!(
                    "cannot reshape per-example dims {dims:?} to {target:?}"
                ));
            }
            out[i] = n / known;
        } else if known != n {
            return Err(format!(
                "cannot reshape per-example dims {dims:?} ({n} values) to {out:?} (the batch must stay first)"
            ));
        }
        Ok(out)
    }

    fn conv(&mut self, node: &NodeProto, a: &Attrs, d: Dyn, hint: &str) -> R<Val> {
        let [c, h, w] = d.dims[..] else {
            return Err(format!(
                "Conv on per-example dims {:?}: only 2-D convolutions on [N, C, H, W]",
                d.dims
            ));
        };
        let wt = self
            .konst(node.input.get(1).map(|s| s.as_str()).unwrap_or(""))?
            .clone();
        let [m, cg, kh, kw] = wt.dims[..] else {
            return Err(format!("weight shape {:?}: only 2-D convolutions", wt.dims));
        };
        let groups = a.int("group", 1);
        if groups < 1
            || (groups as usize) > c
            || m % groups as usize != 0
            || c != cg * groups as usize
        {
            return Err(format!(
                "group = {groups} does not fit {c} input channels and weight {:?}",
                wt.dims
            ));
        }
        let groups = groups as usize;
        if let Some(k) = a.ints("kernel_shape") {
            if k != [kh as i64, kw as i64] {
                return Err(format!(
                    "kernel_shape {k:?} differs from the weight's {:?}",
                    [kh, kw]
                ));
            }
        }
        let (stride, dilation) = (self.pair(a, "strides")?, self.pair(a, "dilations")?);
        let padding = self.pads(a, [h, w], [kh, kw], stride, dilation)?;
        let oh = window_out_dilated(h, kh, stride[0], padding[0], padding[2], dilation[0]);
        let ow = window_out_dilated(w, kw, stride[1], padding[1], padding[3], dilation[1]);
        let (Some(oh), Some(ow)) = (oh, ow) else {
            return Err(format!(
                "kernel {:?} does not fit the {h}x{w} input",
                [kh, kw]
            ));
        };
        let bias = match self.opt_const(node, 2)? {
            Some(b) if b.len() == m => Some(b.as_f32()),
            Some(b) => return Err(format!("bias shape {:?}, expected [{m}]", b.dims)),
            None => None,
        };
        let stored = match self
            .dq
            .get(node.input.get(1).map(|s| s.as_str()).unwrap_or(""))
        {
            Some(dq) => Some(qdq::stored_weight(dq, m, 0, false)?),
            None => None,
        };
        let x = self.materialize(&d, Shape::Chw(c, h, w), hint)?;
        let name = self.unique_name(hint);
        let weight = self.add_tensor(format!("{name}.weight"), wt.dims.clone(), wt.as_f32())?;
        if let Some(sw) = stored {
            self.qdq_weights.insert(weight.clone(), sw);
        }
        let bias = match bias {
            Some(b) => Some(self.add_tensor(format!("{name}.bias"), vec![m], b)?),
            None => None,
        };
        let shape = Shape::Chw(m, oh, ow);
        let kind = LayerKind::Conv2d {
            in_channels: c,
            out_channels: m,
            kernel: [kh, kw],
            stride,
            padding,
            dilation,
            groups,
            weight,
            bias,
        };
        let id = self.push(name, vec![x], kind, shape)?;
        Ok(Val::Dyn(Dyn {
            src: id,
            base: shape,
            dims: vec![m, oh, ow],
        }))
    }

    fn pair(&self, a: &Attrs, name: &str) -> R<[usize; 2]> {
        match a.ints(name) {
            None => Ok([1, 1]),
            Some(v) => match v[..] {
                [x, y] if (1..=1 << 16).contains(&x) && (1..=1 << 16).contains(&y) => {
                    Ok([x as usize, y as usize])
                }
                _ => Err(format!("{name} = {v:?}: expected two values in 1..=65536")),
            },
        }
    }

    /// Explicit `pads` ([top, left, bottom, right]) or `auto_pad` (SAME_UPPER/SAME_LOWER/VALID).
    fn pads(
        &self,
        a: &Attrs,
        hw: [usize; 2],
        k: [usize; 2],
        s: [usize; 2],
        d: [usize; 2],
    ) -> R<[usize; 4]> {
        let auto = a.string("auto_pad").unwrap_or_else(|| "NOTSET".into());
        match auto.as_str() {
            "NOTSET" => match a.ints("pads") {
                None => Ok([0; 4]),
                Some(p) => match p[..] {
                    [t, l, b, r] if [t, l, b, r].iter().all(|&x| (0..=1 << 16).contains(&x)) => {
                        Ok([t as usize, l as usize, b as usize, r as usize])
                    }
                    _ => Err(format!("pads = {p:?}: expected four values in 0..=65536")),
                },
            },
            "VALID" => Ok([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut out = [0; 4];
                for i in 0..2 {
                    let o = hw[i].div_ceil(s[i]);
                    let span = (k[i] - 1) * d[i] + 1;
                    let total = ((o - 1) * s[i] + span).saturating_sub(hw[i]);
                    let small = total / 2;
                    let (b, e) = if auto == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    out[i] = b;
                    out[i + 2] = e;
                }
                Ok(out)
            }
            other => Err(format!("auto_pad = \"{other}\" is not supported")),
        }
    }

    fn gemm(&mut self, op: &str, node: &NodeProto, a: &Attrs, d: Dyn, hint: &str) -> R<Val> {
        let [k] = d.dims[..] else {
            return Err(format!(
                "{op} on per-example dims {:?}: only on [N, features] (flatten first)",
                d.dims
            ));
        };
        let b = self
            .konst(node.input.get(1).map(|s| s.as_str()).unwrap_or(""))?
            .clone();
        let (trans_b, alpha, beta) = if op == "Gemm" {
            if a.int("transA", 0) != 0 {
                return Err("transA = 1 is not supported (the activation must be [N, K])".into());
            }
            (
                a.int("transB", 0) != 0,
                a.float("alpha", 1.0),
                a.float("beta", 1.0),
            )
        } else {
            (false, 1.0, 1.0)
        };
        let [b0, b1] = b.dims[..] else {
            return Err(format!("weight shape {:?}: expected a matrix", b.dims));
        };
        let (kk, n) = if trans_b { (b1, b0) } else { (b0, b1) };
        if kk != k {
            return Err(format!(
                "weight {:?} does not match {k} input features",
                b.dims
            ));
        }
        let bv = b.as_f32();
        // accelsim's linear weight is [out, in] (PyTorch layout), scaled by alpha.
        let weight: Vec<f32> = if trans_b {
            bv.iter().map(|&x| alpha * x).collect()
        } else {
            let mut w = vec![0.0; n * k];
            for i in 0..k {
                for j in 0..n {
                    w[j * k + i] = alpha * bv[i * n + j];
                }
            }
            w
        };
        let bias = match self.opt_const(node, 2)? {
            None => None,
            Some(t) => {
                let v = t.as_f32();
                let ok = t.dims.iter().rev().skip(1).all(|&x| x == 1);
                let full = match (v.len(), ok) {
                    (1, _) => vec![v[0]; n],
                    (l, true) if l == n => v,
                    _ => {
                        return Err(format!(
                            "bias C of shape {:?} must broadcast per output ([{n}])",
                            t.dims
                        ))
                    }
                };
                Some(full.iter().map(|&x| beta * x).collect::<Vec<f32>>())
            }
        };
        let stored = match self.dq.get(node.input.get(1).map(|s| s.as_str()).unwrap_or("")) {
            Some(_) if alpha != 1.0 => {
                return Err(format!("alpha = {alpha} with integer (DequantizeLinear) weights: only alpha = 1 keeps their codes"))
            }
            Some(dq) => Some(qdq::stored_weight(dq, n, if trans_b { 0 } else { 1 }, !trans_b)?),
            None => None,
        };
        let x = self.materialize(&d, Shape::Flat(k), hint)?;
        let name = self.unique_name(hint);
        let weight = self.add_tensor(format!("{name}.weight"), vec![n, k], weight)?;
        if let Some(sw) = stored {
            self.qdq_weights.insert(weight.clone(), sw);
        }
        let bias = match bias {
            Some(b) => Some(self.add_tensor(format!("{name}.bias"), vec![n], b)?),
            None => None,
        };
        let kind = LayerKind::Linear {
            in_features: k,
            out_features: n,
            weight,
            bias,
        };
        let id = self.push(name, vec![x], kind, Shape::Flat(n))?;
        Ok(Val::Dyn(Dyn {
            src: id,
            base: Shape::Flat(n),
            dims: vec![n],
        }))
    }

    fn batchnorm(&mut self, node: &NodeProto, a: &Attrs, d: Dyn, hint: &str) -> R<Val> {
        if a.int("training_mode", 0) != 0 {
            return Err("training_mode = 1 is not supported (export in eval mode)".into());
        }
        let shape = canonical(&d.dims)?;
        let c = shape.channels();
        let mut p = vec![];
        for i in 1..5 {
            let t = self.konst(node.input.get(i).map(|s| s.as_str()).unwrap_or(""))?;
            if t.len() != c {
                return Err(format!(
                    "parameter {i} has {} values, the input has {c} channels",
                    t.len()
                ));
            }
            p.push(t.as_f32());
        }
        let eps = a.float("epsilon", 1e-5);
        if !(eps.is_finite() && eps >= 0.0) || p[3].iter().any(|&v| v < 0.0) {
            return Err("epsilon and the running variance must be >= 0".into());
        }
        // y = (x - mean) / sqrt(var + eps) · scale + B = x · s + (B - mean · s).
        let s: Vec<f64> = (0..c)
            .map(|i| p[0][i] as f64 / (p[3][i] as f64 + eps as f64).sqrt())
            .collect();
        let shift: Vec<f64> = (0..c)
            .map(|i| p[1][i] as f64 - p[2][i] as f64 * s[i])
            .collect();
        if self.fusable(&d) && self.fold_affine(d.src, &s, &shift)? {
            return Ok(Val::Dyn(d));
        }
        let x = self.materialize(&d, shape, hint)?;
        let name = self.unique_name(hint);
        let mut names = vec![];
        for (suffix, v) in ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .zip(p)
        {
            names.push(self.add_tensor(format!("{name}.{suffix}"), vec![c], v)?);
        }
        let kind = LayerKind::BatchNorm {
            channels: c,
            eps,
            reparameterized: false,
            weight: names[0].clone(),
            bias: names[1].clone(),
            running_mean: names[2].clone(),
            running_var: names[3].clone(),
        };
        let id = self.push(name, vec![x], kind, shape)?;
        Ok(Val::Dyn(Dyn {
            src: id,
            base: shape,
            dims: d.dims,
        }))
    }

    /// Folds `y = x·s[c] + shift[c]` (per output channel, or scalar when one value) into the layer producing
    /// value `id`; false when that layer cannot absorb it.
    fn fold_affine(&mut self, id: usize, s: &[f64], shift: &[f64]) -> R<bool> {
        let li = id - 1;
        let name = self.layers[li].name.clone();
        let (out_ch, weight, bias) = match &self.layers[li].kind {
            LayerKind::Conv2d {
                out_channels,
                weight,
                bias,
                ..
            } => (*out_channels, weight.clone(), bias.clone()),
            LayerKind::Linear {
                out_features,
                weight,
                bias,
                ..
            } => (*out_features, weight.clone(), bias.clone()),
            LayerKind::GroupNorm {
                channels,
                reparameterized: false,
                weight,
                bias,
                ..
            }
            | LayerKind::BatchNorm {
                channels,
                reparameterized: false,
                weight,
                bias,
                ..
            } => (*channels, weight.clone(), Some(bias.clone())),
            _ => return Ok(false),
        };
        let at = |v: &[f64], c: usize| if v.len() == 1 { v[0] } else { v[c] };
        if !(s.len() == 1 || s.len() == out_ch) || !(shift.len() == 1 || shift.len() == out_ch) {
            return Ok(false);
        }
        // Integer weights of a QDQ model keep their codes: only a pure bias shift may fold into them.
        if self.qdq_weights.contains_key(&weight) && s.iter().any(|&x| x != 1.0) {
            return Ok(false);
        }
        let w = &mut self
            .tensors
            .get_mut(&weight)
            .expect("layer weight registered")
            .1;
        let per = w.len() / out_ch;
        for (c, row) in w.chunks_exact_mut(per).enumerate() {
            let sc = at(s, c);
            for v in row {
                *v = (*v as f64 * sc) as f32;
            }
        }
        let bias_name = match bias {
            Some(b) => b,
            None => {
                let b = format!("{name}.bias");
                self.tensors
                    .insert(b.clone(), (vec![out_ch], vec![0.0; out_ch]));
                match &mut self.layers[li].kind {
                    LayerKind::Conv2d { bias, .. } | LayerKind::Linear { bias, .. } => {
                        *bias = Some(b.clone())
                    }
                    _ => unreachable!("norm layers always have a bias"),
                }
                b
            }
        };
        let b = &mut self.tensors.get_mut(&bias_name).expect("bias registered").1;
        for (c, v) in b.iter_mut().enumerate() {
            *v = (*v as f64 * at(s, c) + at(shift, c)) as f32;
        }
        let (b, w) = (&self.tensors[&bias_name].1, &self.tensors[&weight].1);
        if let Some(i) = b.iter().chain(w.iter()).position(|v| !v.is_finite()) {
            return Err(format!(
                "folding into layer \"{name}\" gives a non-finite value (element {i})"
            ));
        }
        Ok(true)
    }

    fn norm(&mut self, op: &str, node: &NodeProto, a: &Attrs, d: Dyn, hint: &str) -> R<Val> {
        let scale = self
            .konst(node.input.get(1).map(|s| s.as_str()).unwrap_or(""))?
            .as_f32();
        let bias = self
            .konst(node.input.get(2).map(|s| s.as_str()).unwrap_or(""))?
            .as_f32();
        let eps = a.float("epsilon", 1e-5);
        // The accelsim layer normalizes the producer's output: channels C with `hw` values each.
        let (c, numel) = (d.base.channels(), d.base.numel());
        let groups = if op == "InstanceNormalization" {
            // Over the view's spatial dims per view channel: a group norm over the base when view channels
            // cover whole base channels (PyTorch's GroupNorm export reshapes [N, C, H, W] to [N, G, -1]).
            let g = *d
                .dims
                .first()
                .ok_or("InstanceNormalization on a rank-1 input")?;
            if d.dims.len() < 2 || d.dims.iter().product::<usize>() != numel || c % g != 0 {
                return Err(format!(
                    "InstanceNormalization on dims {:?} of a {} tensor is not a group normalization",
                    d.dims, d.base
                ));
            }
            g
        } else {
            let g = a.int("num_groups", 0);
            if d.dims.len() != 3 || g < 1 || (d.dims[0] as i64) % g != 0 {
                return Err(format!(
                    "num_groups = {g} does not divide the channels of {:?}",
                    d.dims
                ));
            }
            g as usize
        };
        let per_group = |v: &[f32]| -> Vec<f32> { (0..c).map(|ch| v[ch / (c / groups)]).collect() };
        let expand = |v: Vec<f32>, what: &str| -> R<Vec<f32>> {
            if v.len() == c && (op == "GroupNormalization" || groups == c) {
                Ok(v)
            } else if v.len() == groups {
                Ok(per_group(&v))
            } else {
                Err(format!(
                    "{what} has {} values; expected {c} (per channel) or {groups} (per group)",
                    v.len()
                ))
            }
        };
        let (w, b) = (expand(scale, "scale")?, expand(bias, "bias")?);
        let name = self.unique_name(hint);
        let weight = self.add_tensor(format!("{name}.weight"), vec![c], w)?;
        let bias = self.add_tensor(format!("{name}.bias"), vec![c], b)?;
        let kind = LayerKind::GroupNorm {
            groups,
            channels: c,
            eps,
            reparameterized: false,
            weight,
            bias,
        };
        let id = self.push(name, vec![d.src], kind, d.base)?;
        Ok(Val::Dyn(Dyn { src: id, ..d }))
    }

    fn pool(&mut self, op: &str, a: &Attrs, d: Dyn, hint: &str) -> R<Val> {
        let [c, h, w] = d.dims[..] else {
            return Err(format!(
                "pooling on per-example dims {:?}: only 2-D pooling on [N, C, H, W]",
                d.dims
            ));
        };
        let x = self.materialize(&d, Shape::Chw(c, h, w), hint)?;
        let global = op.starts_with("Global");
        if global && h == 1 && w == 1 {
            return Ok(Val::Dyn(Dyn {
                src: x,
                base: Shape::Chw(c, 1, 1),
                dims: vec![c, 1, 1],
            }));
        }
        let (kernel, stride, padding) = if global {
            ([h, w], [h, w], [0; 4])
        } else {
            let k = match a.ints("kernel_shape").as_deref() {
                Some(&[kh, kw]) if kh > 0 && kw > 0 && kh <= 1 << 16 && kw <= 1 << 16 => {
                    [kh as usize, kw as usize]
                }
                other => {
                    return Err(format!(
                        "kernel_shape {other:?}: expected two positive values"
                    ))
                }
            };
            if a.int("ceil_mode", 0) != 0 {
                return Err("ceil_mode = 1 is not supported".into());
            }
            if self.pair(a, "dilations")? != [1, 1] {
                return Err("dilated pooling is not supported".into());
            }
            if a.int("storage_order", 0) != 0 {
                return Err("storage_order = 1 is not supported".into());
            }
            let s = self.pair(a, "strides")?;
            let p = self.pads(a, [h, w], k, s, [1, 1])?;
            if p[0].max(p[2]) >= k[0] || p[1].max(p[3]) >= k[1] {
                return Err(format!("pads {p:?} must be smaller than the kernel {k:?}"));
            }
            (k, s, p)
        };
        let (Some(oh), Some(ow)) = (
            window_out_dilated(h, kernel[0], stride[0], padding[0], padding[2], 1),
            window_out_dilated(w, kernel[1], stride[1], padding[1], padding[3], 1),
        ) else {
            return Err(format!("kernel {kernel:?} does not fit the {h}x{w} input"));
        };
        let kind = if op.ends_with("MaxPool") {
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
                count_include_pad: a.int("count_include_pad", 0) != 0,
            }
        };
        let shape = Shape::Chw(c, oh, ow);
        let name = self.unique_name(hint);
        let id = self.push(name, vec![x], kind, shape)?;
        Ok(Val::Dyn(Dyn {
            src: id,
            base: shape,
            dims: vec![c, oh, ow],
        }))
    }

    /// The per-channel vector (length C, or 1 for a scalar) of a constant broadcast against activation `d`.
    fn channel_vector(&self, d: &Dyn, t: &Tensor) -> R<Vec<f32>> {
        let full: Vec<usize> = std::iter::once(1).chain(d.dims.iter().copied()).collect();
        if t.dims.len() > full.len() {
            return Err(format!(
                "constant of shape {:?} has a higher rank than the activation",
                t.dims
            ));
        }
        let off = full.len() - t.dims.len();
        let mut per_channel = false;
        for (j, &cd) in t.dims.iter().enumerate() {
            let axis = j + off;
            if cd == 1 {
                continue;
            }
            if axis == 1 && cd == full[1] {
                per_channel = true;
            } else {
                return Err(format!(
                    "constant of shape {:?} against activation [N, {}]: only scalars and per-channel constants are supported",
                    t.dims,
                    d.dims.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let v = t.as_f32();
        Ok(if per_channel { v } else { vec![v[0]] })
    }

    /// Whether `hs` is the output of a HardSigmoid(alpha = 1/6, beta = 1/2) layer that reads `x` and that
    /// nothing else reads (so that it can become the hard_swish `x · hs`).
    fn hard_swish_pattern(&self, x: &Dyn, hs: &Dyn) -> bool {
        if hs.src == 0 || x.dims != hs.dims || self.refs[hs.src] != 0 || self.used[hs.src] {
            return false;
        }
        let l = &self.layers[hs.src - 1];
        let reads_x = match &l.input {
            None => hs.src - 1 == x.src,
            Some(n) => *n == self.value_name(x.src),
        };
        matches!(l.kind, LayerKind::HardSigmoid { alpha, beta }
            if (alpha - 1.0 / 6.0).abs() < 1e-6 && beta == 0.5)
            && reads_x
            && x.base == hs.base
    }

    fn binary(&mut self, op: &str, node: &NodeProto, hint: &str) -> R<Val> {
        let get = |i: usize| -> R<Val> {
            self.get(node.input.get(i).map(|s| s.as_str()).unwrap_or(""))
                .cloned()
        };
        let (x, y) = (get(0)?, get(1)?);
        match (x, y) {
            (Val::Dyn(p), Val::Dyn(q)) => {
                if op == "Mul" {
                    // PyTorch before opset 14 exports hardswish as x · HardSigmoid(x; 1/6, 1/2).
                    for (x, hs) in [(&p, &q), (&q, &p)] {
                        if self.hard_swish_pattern(x, hs) {
                            let li = hs.src - 1;
                            self.layers[li].kind = LayerKind::HardSwish;
                            return Ok(Val::Dyn(hs.clone()));
                        }
                    }
                }
                if op != "Add" {
                    return Err(format!(
                        "{op} of two activations is not supported (only Add, the residual sum)"
                    ));
                }
                if p.dims != q.dims {
                    return Err(format!("Add of activations with dims {:?} and {:?} (broadcasting activations is not supported)", p.dims, q.dims));
                }
                let shape = canonical(&p.dims)?;
                let a = self.materialize(&p, shape, hint)?;
                let b = self.materialize(&q, shape, hint)?;
                let name = self.unique_name(hint);
                let inputs = [self.value_name(a), self.value_name(b)];
                let id = self.push(name, vec![a, b], LayerKind::Add { inputs }, shape)?;
                Ok(Val::Dyn(Dyn {
                    src: id,
                    base: shape,
                    dims: p.dims,
                }))
            }
            (Val::Dyn(d), Val::Const(t)) | (Val::Const(t), Val::Dyn(d)) => {
                let const_first = matches!(get(0)?, Val::Const(_));
                if const_first && matches!(op, "Sub" | "Div") {
                    return Err(format!(
                        "{op} with a constant first operand is not supported"
                    ));
                }
                let v = self.channel_vector(&d, &t)?;
                let (mul, vals): (bool, Vec<f64>) = match op {
                    "Add" => (false, v.iter().map(|&x| x as f64).collect()),
                    "Sub" => (false, v.iter().map(|&x| -(x as f64)).collect()),
                    "Mul" => (true, v.iter().map(|&x| x as f64).collect()),
                    _ => (true, v.iter().map(|&x| 1.0 / x as f64).collect()),
                };
                if vals.iter().any(|x| !x.is_finite()) {
                    return Err(
                        "the constant operand has a non-finite value (or Div by zero)".into(),
                    );
                }
                if self.fusable(&d) {
                    let (s, shift) = if mul {
                        (vals.clone(), vec![0.0])
                    } else {
                        (vec![1.0], vals.clone())
                    };
                    if self.fold_affine(d.src, &s, &shift)? {
                        return Ok(Val::Dyn(d));
                    }
                }
                let shape = canonical(&d.dims)?;
                let x = self.materialize(&d, shape, hint)?;
                let name = self.unique_name(hint);
                let n = vals.len();
                let data: Vec<f32> = vals.iter().map(|&x| x as f32).collect();
                let kind = if mul {
                    let weight = self.add_tensor(format!("{name}.weight"), vec![n], data)?;
                    LayerKind::ChannelMul {
                        channels: n,
                        weight,
                    }
                } else {
                    let bias = self.add_tensor(format!("{name}.bias"), vec![n], data)?;
                    LayerKind::ChannelAdd { channels: n, bias }
                };
                let id = self.push(name, vec![x], kind, shape)?;
                Ok(Val::Dyn(Dyn {
                    src: id,
                    base: shape,
                    dims: d.dims,
                }))
            }
            _ => unreachable!("all-constant nodes are folded"),
        }
    }
}
