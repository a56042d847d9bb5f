//! Model files (docs/model-format.md): a TOML manifest plus a safetensors file of float32 parameters.
//!
//! [`Model::load`] validates both files (one-line errors naming the file and the key or tensor), quantizes every
//! parameter tensor with the manifest's scheme (docs/quantization.md#paper-schemes) in **memory order** (layers in manifest order,
//! weight then bias, elements row-major) and keeps the flat memory image of all codes: the bytes the SRAM holds and
//! the fault models corrupt. Nothing in a model file is ever executed.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::quant::{self, Codes, Granularity, QuantConfig, QuantizedTensor, Rounding};

pub mod graph;
pub mod manifest;
mod tensors;

pub use graph::{Graph, Shape};
pub use manifest::{InputSpec, Layer, LayerKind, Manifest, QuantSpec, TrainingFacts};

/// Errors of model loading; each displays as one line naming the file and the key or tensor.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {msg}", file.display())]
    Manifest { file: PathBuf, msg: String },
    #[error("{}: tensor \"{tensor}\": {msg}", file.display())]
    Tensor {
        file: PathBuf,
        tensor: String,
        msg: String,
    },
    #[error("{}: {msg}", file.display())]
    Weights { file: PathBuf, msg: String },
}

impl ModelError {
    pub(crate) fn io(file: &Path, source: std::io::Error) -> Self {
        ModelError::Io {
            file: file.to_path_buf(),
            source,
        }
    }
    /// `FILE: key `KEY`: MSG` (or `FILE: MSG` without a key); text quoted from the file is escaped to one line.
    pub(crate) fn manifest(file: &Path, key: &str, msg: String) -> Self {
        let msg = if key.is_empty() {
            msg
        } else {
            format!("key `{key}`: {msg}")
        };
        ModelError::Manifest {
            file: file.to_path_buf(),
            msg: crate::limits::printable(&msg),
        }
    }
    pub(crate) fn tensor(file: &Path, tensor: &str, msg: String) -> Self {
        ModelError::Tensor {
            file: file.to_path_buf(),
            tensor: tensor.to_string(),
            msg,
        }
    }
}

/// One parameter tensor in the weight memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamTensor {
    /// Tensor name in the safetensors file.
    pub name: String,
    /// Index of the layer that owns it.
    pub layer: usize,
    /// PyTorch shape.
    pub shape: Vec<usize>,
    /// Index of its first element in the global memory order (= byte offset in the image for m ≤ 8).
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
}

/// A loaded, validated model.
#[derive(Debug)]
pub struct Model {
    path: PathBuf,
    manifest: Manifest,
    graph: Graph,
    params: Vec<ParamTensor>,
    by_name: HashMap<String, usize>,
    /// Float master weights as stored in the file, one per parameter tensor (shared with the models
    /// [`Model::requantized`] derives from this one).
    float_params: Arc<Vec<Vec<f32>>>,
    /// BatchNorm running statistics (float, never quantized).
    buffers: Arc<HashMap<String, Vec<f32>>>,
    quant_config: QuantConfig,
    /// Quantized parameter tensors (codes + clean ranges), one per parameter, memory order.
    quantized: Vec<QuantizedTensor>,
    /// All codes concatenated in memory order; `bytes_per_value` bytes per element (little-endian when > 1).
    image: Vec<u8>,
    bytes_per_value: usize,
}

impl Model {
    /// Loads and validates `NAME.toml` and the tensors file it names.
    pub fn load(manifest_path: impl AsRef<Path>) -> Result<Model, ModelError> {
        let path = manifest_path.as_ref();
        let manifest = manifest::read_manifest(path)?;
        let graph = graph::build_graph(&manifest, path)?;
        let weights_path = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&manifest.weights);
        let loaded = tensors::load_tensors(&manifest, &weights_path)?;
        let mut params = Vec::new();
        let mut by_name = HashMap::new();
        let mut offset = 0;
        for (name, layer, shape) in &loaded.param_order {
            let len = shape.iter().product();
            by_name.insert(name.clone(), params.len());
            params.push(ParamTensor {
                name: name.clone(),
                layer: *layer,
                shape: shape.clone(),
                offset,
                len,
            });
            offset += len;
        }
        let quant_config = quant_config(&manifest.quantization, path)?;
        let (quantized, image) = quantize_all(
            &params,
            &loaded.params,
            &quant_config,
            &weights_path,
            Some(&loaded),
        )?;
        Ok(Model {
            path: path.to_path_buf(),
            manifest,
            graph,
            params,
            by_name,
            float_params: Arc::new(loaded.params),
            buffers: Arc::new(loaded.buffers),
            bytes_per_value: (quant_config.container_bits() / 8) as usize,
            quant_config,
            quantized,
            image,
        })
    }

    /// Post-training quantization (docs/model-format.md#families): this model's float master weights quantized
    /// with the same scheme (granularity, symmetry, sign, rounding, `w_max`) at `bits` bits, as a model named
    /// `name`. The float weights and buffers are shared, not copied; only the codes are new. The manifest's
    /// `[training]` facts stay (they describe how the float weights were trained) except `clean_error_pct`,
    /// which was measured at the source's width. An invalid width for the scheme (unsigned 2..=8; signed 8, 16,
    /// 32) is an error naming the manifest's `quantization`.
    pub fn requantized(&self, bits: u32, name: &str) -> Result<Model, ModelError> {
        let mut manifest = self.manifest.clone();
        if bits != manifest.quantization.bits {
            manifest.quantization.bits = bits;
            manifest.training.clean_error_pct = None;
            manifest.training.test_images = None;
        }
        manifest.name = name.to_string();
        let quant_config = quant_config(&manifest.quantization, &self.path)?;
        let (quantized, image) = quantize_all(
            &self.params,
            &self.float_params,
            &quant_config,
            &self.path,
            None,
        )?;
        Ok(Model {
            path: self.path.clone(),
            manifest,
            graph: self.graph.clone(),
            params: self.params.clone(),
            by_name: self.by_name.clone(),
            float_params: Arc::clone(&self.float_params),
            buffers: Arc::clone(&self.buffers),
            bytes_per_value: (quant_config.container_bits() / 8) as usize,
            quant_config,
            quantized,
            image,
        })
    }

    /// The flat memory image: every parameter's codes concatenated in memory order. One byte per weight for
    /// unsigned m ≤ 8 codes (the low m bits are used) and signed 8-bit codes (their two's-complement byte);
    /// 2 or 4 little-endian bytes for signed 16/32-bit codes. Tensor `id` occupies bytes
    /// `offset·bytes_per_value .. (offset + len)·bytes_per_value`.
    pub fn memory_image(&self) -> &[u8] {
        &self.image
    }

    /// Bytes per weight in [`Model::memory_image`]: 1, or 2/4 for signed 16/32-bit codes.
    pub fn bytes_per_value(&self) -> usize {
        self.bytes_per_value
    }

    /// The quantization scheme of the manifest.
    pub fn quant_config(&self) -> &QuantConfig {
        &self.quant_config
    }

    /// The quantized parameter tensor `id` (clean codes and the ranges that decode them).
    pub fn quantized(&self, id: usize) -> &QuantizedTensor {
        &self.quantized[id]
    }

    /// Byte range of tensor `id` in the memory image.
    pub fn image_range(&self, id: usize) -> std::ops::Range<usize> {
        let p = &self.params[id];
        p.offset * self.bytes_per_value..(p.offset + p.len) * self.bytes_per_value
    }

    /// De-quantizes tensor `id` from `image` (laid out as [`Model::memory_image`], possibly corrupted) into `out`,
    /// with the clean ranges (contexts come from the clean weights and are reused, docs/quantization.md#paper-schemes).
    ///
    /// # Panics
    /// If `image` is shorter than the memory image or `out.len()` differs from the tensor's length.
    pub fn decode_param(&self, id: usize, image: &[u8], out: &mut [f32]) {
        let bytes = &image[self.image_range(id)];
        let qt = &self.quantized[id];
        let r = match self.bytes_per_value {
            1 => qt.dequantize_u8_into(bytes, out),
            2 => {
                let c = bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
                qt.dequantize_codes_into(&Codes::I16(c), out)
            }
            _ => {
                let c = bytes
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                qt.dequantize_codes_into(&Codes::I32(c), out)
            }
        };
        r.expect("image slice and output match the tensor by construction");
    }

    /// Path of the manifest this model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Bits per stored weight (m).
    pub fn bits(&self) -> u32 {
        self.manifest.quantization.bits
    }

    /// Parameter tensors in memory order; the index in this slice is the tensor id.
    pub fn param_tensors(&self) -> &[ParamTensor] {
        &self.params
    }

    /// Tensor id of a parameter by name.
    pub fn param_id(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Total number of quantized parameters (weights and biases in the weight memory).
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.len).sum()
    }

    /// Memory bits needed at the model's precision: `num_params · bits`.
    pub fn memory_bits(&self) -> u64 {
        self.num_params() as u64 * self.bits() as u64
    }

    /// Float master weights of tensor `id` as stored in the file (before quantization).
    pub fn float_param(&self, id: usize) -> &[f32] {
        &self.float_params[id]
    }

    /// A float buffer (BatchNorm running statistic) by name.
    pub fn buffer(&self, name: &str) -> Option<&[f32]> {
        self.buffers.get(name).map(|v| v.as_slice())
    }

    /// Ids of the tensors that contain any of the given global element indices (sorted, unique).
    pub fn tensors_containing(&self, elements: &[usize]) -> Vec<usize> {
        let mut ids: Vec<usize> = elements
            .iter()
            .filter_map(|&e| {
                let i = self.params.partition_point(|p| p.offset + p.len <= e);
                (i < self.params.len()).then_some(i)
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// The manifest's `[quantization]` table as a [`QuantConfig`] (validated).
fn quant_config(q: &QuantSpec, path: &Path) -> Result<QuantConfig, ModelError> {
    let granularity = match q.granularity.as_str() {
        "global" => Granularity::Global,
        "layer" => Granularity::Layer,
        _ => Granularity::Channel,
    };
    let cfg = QuantConfig {
        bits: u8::try_from(q.bits).unwrap_or(u8::MAX),
        granularity,
        symmetric: q.symmetric,
        signed: q.signed,
        rounding: if q.rounding {
            Rounding::Nearest
        } else {
            Rounding::Truncate
        },
        w_max: q.w_max,
    };
    cfg.validate()
        .map_err(|e| ModelError::manifest(path, "quantization", e.to_string()))?;
    Ok(cfg)
}

/// Every parameter tensor with `cfg`, in memory order: the quantized tensors and the memory image. With the
/// tensors file's `stored` codes: a parameter with codes and ranges is rebuilt from them ([`from_stored`]); one
/// with codes only is quantized and its codes are checked against ours bit for bit ([`verify_codes`]).
fn quantize_all(
    params: &[ParamTensor],
    floats: &[Vec<f32>],
    cfg: &QuantConfig,
    weights_path: &Path,
    stored: Option<&tensors::Loaded>,
) -> Result<(Vec<QuantizedTensor>, Vec<u8>), ModelError> {
    let total: usize = params.iter().map(|p| p.len).sum();
    let mut quantized = Vec::with_capacity(params.len());
    let mut image = Vec::with_capacity(total * (cfg.container_bits() / 8) as usize);
    for (p, values) in params.iter().zip(floats) {
        let codes = stored.and_then(|s| s.codes.get(&p.name));
        let ranges = stored.and_then(|s| s.ranges.get(&p.name));
        let qt = match (codes, ranges) {
            (Some(c), Some(r)) => from_stored(cfg, p, c, r, values, weights_path)?,
            _ => {
                let qt = quant::quantize(values, &p.shape, cfg)
                    .map_err(|e| ModelError::tensor(weights_path, &p.name, e.to_string()))?;
                if let Some(c) = codes {
                    verify_codes(&qt, c, &p.name, weights_path)?;
                }
                qt
            }
        };
        append_codes(&mut image, qt.codes());
        quantized.push(qt);
    }
    Ok((quantized, image))
}

fn append_codes(image: &mut Vec<u8>, codes: &Codes) {
    match codes {
        Codes::U8(v) => image.extend_from_slice(v),
        Codes::I8(v) => image.extend_from_slice(quant::i8_as_bytes(v)),
        Codes::I16(v) => image.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        Codes::I32(v) => image.extend(v.iter().flat_map(|x| x.to_le_bytes())),
    }
}

/// A parameter whose codes and group ranges are stored (`"<param>:codes"` + `"<param>:range"`): the tensor is
/// rebuilt from them, and its float32 values must equal the decoded codes (the importer writes them so), so the
/// float master weights and the stored codes cannot disagree.
fn from_stored(
    cfg: &QuantConfig,
    p: &ParamTensor,
    stored: &tensors::StoredCodes,
    ranges: &[(f32, f32)],
    floats: &[f32],
    path: &Path,
) -> Result<QuantizedTensor, ModelError> {
    check_codes_dtype(cfg, stored, &p.name, path)?;
    let tname = format!("{}{}", p.name, tensors::CODES_SUFFIX);
    let (lo, hi) = crate::quant::storage_range_of(cfg);
    if let Some(i) = stored.values.iter().position(|&v| v < lo || v > hi) {
        return Err(ModelError::tensor(
            path,
            &tname,
            format!(
                "element {i} = {} is outside the scheme's code range [{lo}, {hi}]",
                stored.values[i]
            ),
        ));
    }
    let codes = match cfg.code_type() {
        "u8" => Codes::U8(stored.values.iter().map(|&v| v as u8).collect()),
        "i8" => Codes::I8(stored.values.iter().map(|&v| v as i8).collect()),
        "i16" => Codes::I16(stored.values.iter().map(|&v| v as i16).collect()),
        _ => Codes::I32(stored.values.iter().map(|&v| v as i32).collect()),
    };
    let ranges: Vec<quant::GroupRange> = ranges
        .iter()
        .map(|&(lo, hi)| quant::GroupRange { lo, hi })
        .collect();
    let qt =
        QuantizedTensor::from_parts(cfg.clone(), p.shape.clone(), codes, &ranges).map_err(|e| {
            ModelError::tensor(
                path,
                &format!("{}{}", p.name, tensors::RANGE_SUFFIX),
                e.to_string(),
            )
        })?;
    let decoded = qt.dequantize();
    if let Some(i) = (0..decoded.len()).find(|&i| decoded[i].to_bits() != floats[i].to_bits()) {
        return Err(ModelError::tensor(
            path,
            &p.name,
            format!(
                "element {i} is {}, but its stored code decodes to {}; the float values must be the decoded codes",
                floats[i], decoded[i]
            ),
        ));
    }
    Ok(qt)
}

/// The stored codes' dtype must be the scheme's code type (`U8`, `I8`, `I16` or `I32`).
fn check_codes_dtype(
    cfg: &QuantConfig,
    stored: &tensors::StoredCodes,
    name: &str,
    path: &Path,
) -> Result<(), ModelError> {
    let want = match cfg.code_type() {
        "u8" => safetensors::Dtype::U8,
        "i8" => safetensors::Dtype::I8,
        "i16" => safetensors::Dtype::I16,
        _ => safetensors::Dtype::I32,
    };
    if stored.dtype != want {
        return Err(ModelError::tensor(
            path,
            &format!("{name}{}", tensors::CODES_SUFFIX),
            format!(
                "dtype {:?}, the manifest's scheme stores {want:?}",
                stored.dtype
            ),
        ));
    }
    Ok(())
}

/// Checks optional stored `"<param>:codes"` against our own quantization, bit for bit.
fn verify_codes(
    qt: &QuantizedTensor,
    stored: &tensors::StoredCodes,
    name: &str,
    path: &Path,
) -> Result<(), ModelError> {
    check_codes_dtype(qt.config(), stored, name, path)?;
    let ours = qt.codes();
    let tname = format!("{name}{}", tensors::CODES_SUFFIX);
    let mismatches = (0..ours.len())
        .filter(|&i| ours.get_i64(i) != Some(stored.values[i]))
        .count();
    if let Some(i) = (0..ours.len()).find(|&i| ours.get_i64(i) != Some(stored.values[i])) {
        return Err(ModelError::tensor(
            path,
            &tname,
            format!(
                "{mismatches} code(s) differ from accelsim's quantization of \"{name}\" (first at element {i}: stored {}, accelsim {}); trainer and simulator disagree on the scheme",
                stored.values[i],
                ours.get_i64(i).unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

/// Writes float32 tensors `(name, shape, values)` to a safetensors file (for tests, benches and tools; models
/// meant for users are written by `training/accelsim_train/export.py`).
pub fn write_f32_safetensors(
    path: &Path,
    tensors: &[(&str, &[usize], &[f32])],
) -> Result<(), ModelError> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, shape, _), b) in tensors.iter().zip(&bytes) {
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), b)
            .map_err(|e| ModelError::tensor(path, name, format!("{e:?}")))?;
        views.push((name.to_string(), view));
    }
    let cannot_write = |msg: String| ModelError::Weights {
        file: path.to_path_buf(),
        msg: format!("cannot write: {msg}"),
    };
    let bytes = safetensors::serialize(views, &None).map_err(|e| cannot_write(format!("{e:?}")))?;
    crate::fsutil::write_atomic(path, &bytes).map_err(|e| cannot_write(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests;
