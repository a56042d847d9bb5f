//! Reading the safetensors file of a model and checking it against the manifest: every referenced tensor present,
//! float32, of the expected shape and finite; optional `"<param>:codes"` integer tensors; nothing unreferenced.
use std::collections::{HashMap, HashSet};
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::graph::expected_tensors;
use super::manifest::Manifest;
use super::ModelError;

/// Suffix of the optional integer-code tensors (docs/model-format.md).
pub const CODES_SUFFIX: &str = ":codes";
/// Suffix of the optional per-group range tensors (`[groups, 2]` float32 `lo, hi`) that make stored codes
/// authoritative (a QDQ ONNX import, docs/onnx.md#qdq-models).
pub const RANGE_SUFFIX: &str = ":range";

/// Integer codes stored next to a parameter, widened to i64 for comparison.
#[derive(Debug, Clone)]
pub(crate) struct StoredCodes {
    pub dtype: Dtype,
    pub values: Vec<i64>,
}

pub(crate) struct Loaded {
    /// Parameters in memory order: (name, layer index, shape).
    pub param_order: Vec<(String, usize, Vec<usize>)>,
    /// Float values of each parameter, same order.
    pub params: Vec<Vec<f32>>,
    /// BatchNorm running statistics.
    pub buffers: HashMap<String, Vec<f32>>,
    /// Optional stored codes by parameter name.
    pub codes: HashMap<String, StoredCodes>,
    /// Optional stored group ranges `(lo, hi)` by parameter name (only with codes).
    pub ranges: HashMap<String, Vec<(f32, f32)>>,
}

pub(crate) fn load_tensors(m: &Manifest, path: &Path) -> Result<Loaded, ModelError> {
    let weights_err = |msg: String| ModelError::Weights {
        file: path.to_path_buf(),
        msg,
    };
    let bytes = crate::limits::read_file(
        path,
        crate::limits::MAX_WEIGHTS_FILE_BYTES,
        "model tensors file",
    )
    .map_err(|e| match e {
        crate::limits::ReadError::Io(e) => ModelError::io(path, e),
        crate::limits::ReadError::TooLarge(msg) => weights_err(msg),
    })?;
    crate::limits::check_safetensors_layout(&bytes)
        .map_err(|m| weights_err(format!("not a valid safetensors file: {m}")))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        weights_err(format!(
            "not a valid safetensors file (truncated or corrupted?): {e:?}"
        ))
    })?;
    let available: HashSet<String> = st.names().into_iter().cloned().collect();
    let mut used: HashSet<String> = HashSet::new();
    let mut out = Loaded {
        param_order: vec![],
        params: vec![],
        buffers: HashMap::new(),
        codes: HashMap::new(),
        ranges: HashMap::new(),
    };
    for (li, layer) in m.layers.iter().enumerate() {
        let params: HashSet<&str> = layer.kind.params().into_iter().collect();
        for (name, shape) in expected_tensors(&layer.kind) {
            if !used.insert(name.to_string()) {
                return Err(ModelError::tensor(
                    path,
                    name,
                    format!(
                        "referenced by more than one layer (again by \"{}\")",
                        layer.name
                    ),
                ));
            }
            let values = read_f32(&st, name, &shape, path, &layer.name)?;
            if params.contains(name) {
                let code_name = format!("{name}{CODES_SUFFIX}");
                if available.contains(&code_name) {
                    used.insert(code_name.clone());
                    let codes = read_codes(&st, &code_name, &shape, path)?;
                    out.codes.insert(name.to_string(), codes);
                }
                let range_name = format!("{name}{RANGE_SUFFIX}");
                if available.contains(&range_name) {
                    if !out.codes.contains_key(name) {
                        return Err(ModelError::tensor(
                            path,
                            &range_name,
                            format!("given without \"{name}{CODES_SUFFIX}\" (ranges make stored codes authoritative)"),
                        ));
                    }
                    used.insert(range_name.clone());
                    out.ranges
                        .insert(name.to_string(), read_ranges(&st, &range_name, path)?);
                }
                out.param_order.push((name.to_string(), li, shape));
                out.params.push(values);
            } else {
                if layer.kind.buffers().contains(&name) && name.ends_with("running_var") {
                    if let Some(v) = values.iter().find(|v| **v < 0.0) {
                        return Err(ModelError::tensor(
                            path,
                            name,
                            format!("running variance {v} is negative"),
                        ));
                    }
                }
                out.buffers.insert(name.to_string(), values);
            }
        }
    }
    let mut extra: Vec<&String> = available.iter().filter(|n| !used.contains(*n)).collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(ModelError::tensor(
            path,
            &crate::limits::printable(extra[0]),
            format!(
                "not referenced by the manifest ({} unreferenced tensor(s); a typo in a layer's tensor name?)",
                extra.len()
            ),
        ));
    }
    Ok(out)
}

fn read_f32(
    st: &SafeTensors,
    name: &str,
    shape: &[usize],
    path: &Path,
    layer: &str,
) -> Result<Vec<f32>, ModelError> {
    let t = st.tensor(name).map_err(|_| {
        ModelError::tensor(path, name, format!("missing (needed by layer \"{layer}\")"))
    })?;
    if t.dtype() != Dtype::F32 {
        return Err(ModelError::tensor(
            path,
            name,
            format!("dtype {:?}, expected F32", t.dtype()),
        ));
    }
    if t.shape() != shape {
        return Err(ModelError::tensor(
            path,
            name,
            format!(
                "shape {:?}, expected {:?} (layer \"{layer}\")",
                t.shape(),
                shape
            ),
        ));
    }
    let values: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::tensor(
            path,
            name,
            format!("element {i} is {} (not finite)", values[i]),
        ));
    }
    Ok(values)
}

/// A `[groups, 2]` float32 tensor of finite `lo <= hi` pairs.
fn read_ranges(st: &SafeTensors, name: &str, path: &Path) -> Result<Vec<(f32, f32)>, ModelError> {
    let t = st
        .tensor(name)
        .map_err(|e| ModelError::tensor(path, name, format!("{e:?}")))?;
    if t.dtype() != Dtype::F32 || t.shape().len() != 2 || t.shape()[1] != 2 {
        return Err(ModelError::tensor(
            path,
            name,
            format!(
                "dtype {:?} shape {:?}; expected F32 [groups, 2] (lo, hi per group)",
                t.dtype(),
                t.shape()
            ),
        ));
    }
    let v: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let pairs: Vec<(f32, f32)> = v.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    if let Some(i) = pairs
        .iter()
        .position(|&(lo, hi)| !(lo.is_finite() && hi.is_finite() && lo <= hi))
    {
        return Err(ModelError::tensor(
            path,
            name,
            format!(
                "group {i}: [{}, {}] is not a finite interval lo <= hi",
                pairs[i].0, pairs[i].1
            ),
        ));
    }
    Ok(pairs)
}

fn read_codes(
    st: &SafeTensors,
    name: &str,
    shape: &[usize],
    path: &Path,
) -> Result<StoredCodes, ModelError> {
    let t = st
        .tensor(name)
        .map_err(|e| ModelError::tensor(path, name, format!("{e:?}")))?;
    if t.shape() != shape {
        return Err(ModelError::tensor(
            path,
            name,
            format!(
                "shape {:?}, expected the parameter's shape {:?}",
                t.shape(),
                shape
            ),
        ));
    }
    let d = t.data();
    let values: Vec<i64> = match t.dtype() {
        Dtype::U8 => d.iter().map(|&b| b as i64).collect(),
        Dtype::I8 => d.iter().map(|&b| b as i8 as i64).collect(),
        Dtype::I16 => d
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as i64)
            .collect(),
        Dtype::I32 => d
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
            .collect(),
        other => {
            return Err(ModelError::tensor(
                path,
                name,
                format!("dtype {other:?} is not an integer code type (U8, I8, I16, I32)"),
            ))
        }
    };
    Ok(StoredCodes {
        dtype: t.dtype(),
        values,
    })
}
