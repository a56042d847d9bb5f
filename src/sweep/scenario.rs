//! The real-world side of `run` and `sweep`: loading models with their test data into an
//! [`ImageEvaluator`](super::core::ImageEvaluator), and the fault sources (profiled SRAM chips through the weight
//! mapping, or uniform random bit errors) as [`FaultSource`](super::core::FaultSource)s.
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::core::ImageEvaluator;
use super::SweepError;
use crate::config::systolic::Datapath;
use crate::data::{self, Dataset, DatasetKind};
use crate::engine::int8::{Int8Network, Int8Options, CALIBRATION_IMAGES};
use crate::engine::{Evaluator, Inference, Network};
use crate::model::Model;

/// Folder of the shipped models.
pub const MODEL_DIR: &str = "models";
/// The model `run` uses when `--model` is not given: the shipped RandBET 8-bit Fashion-MNIST CNN.
pub const DEFAULT_MODEL: &str = "fmnist-cnn-randbet-8b";

/// The default model set of `sweep` (no `--models`): the shipped models whose family starts with this prefix, the
/// small Fashion-MNIST CNN at every recipe and width, trained without activation faults (the default sweep is the
/// weights-only study; `fmnist-cnn-randbet-act-8b`, trained against activation bit errors, belongs to the
/// activation-rail study and is swept when named). The MobileNet- and ResNet-style models (`fmnist-mobilenet-*`,
/// `fmnist-resnet-*`) are swept when named (docs/run-and-sweep.md#architectures), so the default sweep stays quick.
pub const DEFAULT_SWEEP_FAMILY_PREFIX: &str = "fmnist-cnn-";

/// Whether a shipped model of this family is in the default sweep ([`DEFAULT_SWEEP_FAMILY_PREFIX`]).
pub fn in_default_sweep(family: &str) -> bool {
    family.starts_with(DEFAULT_SWEEP_FAMILY_PREFIX)
}

/// Finds a model manifest by the one rule for names and paths ([`crate::locate`]): a path is taken as given, a
/// bare name is looked up in `models/`, and a bare name that is also a different file in the current directory
/// is refused as ambiguous.
pub fn resolve_model(name_or_path: &str) -> Result<PathBuf, SweepError> {
    crate::locate::locate(crate::locate::Shipped::Model, name_or_path)
        .map_err(|e| SweepError::Input(e.to_string()))
}

/// The shipped model manifests (`models/*.toml` in the current directory, else in the source tree), sorted.
pub fn list_shipped_models() -> Vec<PathBuf> {
    crate::locate::list_shipped(crate::locate::Shipped::Model)
}

/// Where the weights of a swept model come from (docs/run-and-sweep.md#precision-axis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightsSource {
    /// A model trained (quantization-aware) at this width, as shipped.
    Trained,
    /// Post-training quantization of the family's float source at this width ([`Model::requantized`]).
    Ptq,
}

impl WeightsSource {
    pub fn name(self) -> &'static str {
        match self {
            WeightsSource::Trained => "trained",
            WeightsSource::Ptq => "ptq",
        }
    }
}

/// One model of a run or sweep: a manifest evaluated at one bit width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVariant {
    /// Name in reports: the manifest's name (trained) or `{source}-ptq{m}b` (PTQ).
    pub name: String,
    /// The family (manifest `family`, else the model's own name).
    pub family: String,
    /// Manifest of the trained model, or of the float source that PTQ quantizes.
    pub path: PathBuf,
    /// Bits per stored weight (m).
    pub bits: u32,
    pub source: WeightsSource,
}

impl ModelVariant {
    /// Loads the model this variant evaluates: the manifest as is (trained, or PTQ at the source's own width
    /// never happens) or its float weights re-quantized at `bits` (PTQ). `sources` caches the loaded manifests,
    /// so the widths of one family read and validate the float weights once.
    pub fn load_model(&self, sources: &mut HashMap<PathBuf, Model>) -> Result<Model, SweepError> {
        if !sources.contains_key(&self.path) {
            let m = Model::load(&self.path).map_err(|e| SweepError::Input(e.to_string()))?;
            sources.insert(self.path.clone(), m);
        }
        let src = &sources[&self.path];
        // A trained variant is the source itself at its own width; requantizing at the same width gives the same
        // codes (quantization is a function of the float weights and the scheme) without copying the floats.
        src.requantized(self.bits, &self.name)
            .map_err(|e| SweepError::Input(format!("{} at --bits {}: {e}", self.family, self.bits)))
    }
}

/// A shipped (or given) model as the family catalog sees it: manifest facts only, no tensors read.
#[derive(Debug, Clone)]
struct CatalogEntry {
    path: PathBuf,
    name: String,
    family: String,
    bits: u32,
    /// `[training] p_act`: > 0 for models trained against activation bit errors.
    p_act: f64,
}

fn catalog_entry(path: &Path) -> Result<CatalogEntry, SweepError> {
    let m = crate::model::manifest::read_manifest(path)
        .map_err(|e| SweepError::Input(e.to_string()))?;
    Ok(CatalogEntry {
        path: path.to_path_buf(),
        family: m.family.clone().unwrap_or_else(|| m.name.clone()),
        name: m.name,
        bits: m.quantization.bits,
        p_act: m.training.p_act,
    })
}

/// Largest number of bit widths `--bits` accepts.
pub const MAX_BITS_LIST: usize = 32;

/// Parses `--bits` values: distinct widths in `1..=32`, sorted descending (the width each scheme accepts is
/// checked when the model is quantized).
pub fn parse_bits(list: &[u32]) -> Result<Vec<u32>, SweepError> {
    let mut out: Vec<u32> = Vec::new();
    for &b in list {
        if !(1..=32).contains(&b) {
            return Err(SweepError::Input(format!(
                "--bits {b} is out of range; allowed 2..=8 for the unsigned schemes (8, 16, 32 signed)"
            )));
        }
        if !out.contains(&b) {
            out.push(b);
        }
    }
    if out.is_empty() || out.len() > MAX_BITS_LIST {
        return Err(SweepError::Input(format!(
            "--bits needs 1..={MAX_BITS_LIST} widths, got {}",
            out.len()
        )));
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    Ok(out)
}

/// The models a run or sweep evaluates (docs/run-and-sweep.md#precision-axis).
///
/// `names`: model names or paths, or family names of the shipped models (empty: every shipped model of the
/// default sweep, [`in_default_sweep`]; every shipped model when none is). A model
/// name stands for itself; a family name for every shipped member of the family. `bits`: `None` evaluates every
/// member at its own width (`trained`); `Some(widths)` evaluates each family (or named model) at each width: the
/// member trained at that width when there is one, else PTQ of the float source (the member with the most bits,
/// the first such manifest by path on a tie; for a named model, the model itself). Order: families in the order
/// given (shipped: sorted by the first member's path), widths descending, then by manifest path; repeats kept
/// (the sweep's plan drops them with a note). `flag` names the option in messages (`--model`, `--models`).
pub fn resolve_variants(
    names: &[String],
    bits: Option<&[u32]>,
    flag: &str,
) -> Result<Vec<ModelVariant>, SweepError> {
    let shipped: Vec<CatalogEntry> = list_shipped_models()
        .iter()
        .map(|p| catalog_entry(p))
        .collect::<Result<_, _>>()?;
    // Groups of members, one per requested name (or per shipped family).
    let mut groups: Vec<(String, Vec<CatalogEntry>)> = Vec::new();
    if names.is_empty() {
        if shipped.is_empty() {
            return Err(SweepError::Input(
                "no shipped models found in models/; pass --models NAME,...".into(),
            ));
        }
        // The default set; a models/ folder without CNN models (a user's own) is swept whole.
        let default: Vec<&CatalogEntry> = shipped
            .iter()
            .filter(|e| in_default_sweep(&e.family) && e.p_act == 0.0)
            .collect();
        let default = if default.is_empty() {
            shipped.iter().collect()
        } else {
            default
        };
        for e in default {
            match groups.iter_mut().find(|(f, _)| *f == e.family) {
                Some((_, members)) => members.push(e.clone()),
                None => groups.push((e.family.clone(), vec![e.clone()])),
            }
        }
    } else {
        for raw in names {
            let name = raw.trim();
            let not_found = match crate::locate::locate(crate::locate::Shipped::Model, name) {
                Ok(path) => {
                    let e = catalog_entry(&path)?;
                    groups.push((e.family.clone(), vec![e]));
                    continue;
                }
                // Only "no such model file" falls through to the family names; an ambiguous name, a directory
                // or a path (a name with `/` is never a family) is reported as such.
                Err(err)
                    if !matches!(err.why, crate::locate::Why::NotFound { .. })
                        || name.contains('/') =>
                {
                    return Err(SweepError::Input(err.flag(flag).to_string()));
                }
                Err(err) => err.flag(flag),
            };
            let members: Vec<CatalogEntry> = shipped
                .iter()
                .filter(|e| e.family == name)
                .cloned()
                .collect();
            if members.is_empty() {
                let mut families: Vec<&str> = shipped.iter().map(|e| e.family.as_str()).collect();
                families.sort_unstable();
                families.dedup();
                return Err(SweepError::Input(format!(
                    "{not_found}; nor is it a family (family = \"...\" of a shipped model): shipped families: {}",
                    families.join(", ")
                )));
            }
            groups.push((name.to_string(), members));
        }
    }
    let mut out: Vec<ModelVariant> = Vec::new();
    for (family, members) in groups {
        let mut chosen: Vec<ModelVariant> = match bits {
            None => members
                .iter()
                .map(|e| ModelVariant {
                    name: e.name.clone(),
                    family: family.clone(),
                    path: e.path.clone(),
                    bits: e.bits,
                    source: WeightsSource::Trained,
                })
                .collect(),
            Some(widths) => {
                let float_source = members
                    .iter()
                    .max_by(|a, b| a.bits.cmp(&b.bits).then(b.path.cmp(&a.path)))
                    .expect("a group has at least one member");
                widths
                    .iter()
                    .map(|&m| match members.iter().find(|e| e.bits == m) {
                        Some(e) => ModelVariant {
                            name: e.name.clone(),
                            family: family.clone(),
                            path: e.path.clone(),
                            bits: m,
                            source: WeightsSource::Trained,
                        },
                        None => ModelVariant {
                            name: format!("{}-ptq{m}b", float_source.name),
                            family: family.clone(),
                            path: float_source.path.clone(),
                            bits: m,
                            source: WeightsSource::Ptq,
                        },
                    })
                    .collect()
            }
        };
        chosen.sort_by(|a, b| b.bits.cmp(&a.bits).then(a.path.cmp(&b.path)));
        // Repeats (the same file at the same width, given twice) are left to the sweep's plan, which sweeps
        // them once with a note and refuses different files that share a name.
        out.extend(chosen);
    }
    Ok(out)
}

/// Test sets shared between models of the same data set (loaded once per kind).
#[derive(Debug, Default)]
pub struct DataCache {
    dir: Option<PathBuf>,
    skip: usize,
    limit: Option<usize>,
    sets: HashMap<DatasetKind, Dataset>,
    /// The int8 datapath's calibration images (first [`CALIBRATION_IMAGES`] of the training split).
    train: HashMap<DatasetKind, Dataset>,
}

impl DataCache {
    /// `dir`: the data folder (`None`: the default for the data set); `limit`: first N test images.
    pub fn new(dir: Option<PathBuf>, limit: Option<usize>) -> Self {
        DataCache {
            dir,
            skip: 0,
            limit,
            sets: HashMap::new(),
            train: HashMap::new(),
        }
    }

    /// Leaves out the first `skip` test images; `limit` then counts from there (e.g. skip 9000, limit 1000:
    /// the last 1000 Fashion-MNIST test images, which the paper's protocol holds out for validation).
    pub fn skipping(mut self, skip: usize) -> Self {
        self.skip = skip;
        self
    }

    /// The test split of `kind` after `--skip` and `--limit` (loaded once).
    pub fn get(&mut self, kind: DatasetKind) -> Result<&Dataset, SweepError> {
        if !self.sets.contains_key(&kind) {
            let load_limit = self.limit.map(|l| l.saturating_add(self.skip));
            let mut ds = data::load_test_split(kind, self.dir.as_deref(), load_limit)
                .map_err(|e| SweepError::Input(e.to_string()))?;
            if self.skip > 0 {
                if self.skip >= ds.len() {
                    let dir = self.dir.as_ref().map_or_else(
                        || data::DEFAULT_FASHION_MNIST_DIR.to_string(),
                        |d| d.display().to_string(),
                    );
                    return Err(SweepError::Input(format!(
                        "--skip {} leaves no test images: the {} test split in {dir} has {}; allowed 0..={}",
                        self.skip,
                        kind.name(),
                        ds.len(),
                        ds.len() - 1
                    )));
                }
                ds = ds.without_first(self.skip);
            }
            self.sets.insert(kind, ds);
        }
        Ok(&self.sets[&kind])
    }

    /// The calibration images of the int8 datapath: the first [`CALIBRATION_IMAGES`] of the training split of
    /// `kind` in the same folder (loaded once; docs/datapath.md#calibration).
    pub fn calibration(&mut self, kind: DatasetKind) -> Result<&Dataset, SweepError> {
        if !self.train.contains_key(&kind) {
            let ds = data::load_train_split(kind, self.dir.as_deref(), Some(CALIBRATION_IMAGES))
                .map_err(|e| {
                    SweepError::Input(format!("int8 datapath calibration (training images): {e}"))
                })?;
            self.train.insert(kind, ds);
        }
        Ok(&self.train[&kind])
    }

    /// Content fingerprint and image count of the split of `kind` that will be evaluated
    /// ([`Dataset::content_sha256`]: the images actually used, independent of the folder's path).
    pub fn fingerprint(&mut self, kind: DatasetKind) -> Result<(String, usize), SweepError> {
        let ds = self.get(kind)?;
        Ok((ds.content_sha256(), ds.len()))
    }
}

/// The data set a model is evaluated on: its manifest's `[input] dataset` (default Fashion-MNIST).
pub fn dataset_kind(model: &Model) -> Result<DatasetKind, SweepError> {
    let ds_name = model
        .manifest()
        .input
        .dataset
        .clone()
        .unwrap_or_else(|| "fashion-mnist".into());
    DatasetKind::parse(&ds_name).ok_or_else(|| {
        SweepError::Input(format!(
            "{}: [input] dataset = \"{ds_name}\" has no test-set reader; allowed: {}",
            model.path().display(),
            DatasetKind::ALL.map(|k| k.name()).join(", ")
        ))
    })
}

/// A model with its network (decoded weights) and the robust-error evaluator on its test set.
pub struct LoadedModel {
    pub model: Model,
    /// The float engine or the integer datapath (`[systolic] datapath`, `--datapath`).
    pub net: Box<dyn Inference>,
    pub eval: Evaluator,
    /// Manifest name.
    pub name: String,
    /// Training method from the manifest.
    pub method: String,
    /// Bits per stored weight.
    pub bits: u32,
    /// Test images evaluated.
    pub test_images: usize,
    /// Failing activation buffers, when the integer datapath stores activations in a scaled or `--act-ber`
    /// SRAM ([`LoadedModel::set_activation_faults`]); `None`: they never fail.
    pub activation_faults: Option<ActivationFaultPlan>,
    /// The store of the current point ([`ImageEvaluator::begin_point`]).
    act_store: Option<crate::sram::act_faults::ActivationFaults>,
}

/// How the activation buffers fail in a run or a sweep series (docs/activation-faults.md): the fault map of the
/// activation SRAM (when its rail is scaled) and uniform random flips at `act_ber`, per fault sample.
#[derive(Debug, Clone)]
pub struct ActivationFaultPlan {
    hw: crate::config::HwConfig,
    profile: Option<std::sync::Arc<crate::sram::FaultProfile>>,
    act_ber: f64,
    seed: u64,
}

impl ActivationFaultPlan {
    /// The plan for `hw` (its datapath and scaled rails final) with weight faults `spec`: `None` when no
    /// activation bit can fail (activation rail not scaled and `act_ber = 0`). Refuses, in one line, failing
    /// activations on the float datapath (float activations have no stored bits). `seed` shifts the random
    /// chips and transient draws (the sweep seed's offset; 0 for `run`).
    pub fn new(
        hw: &crate::config::HwConfig,
        spec: &FaultSpec,
        act_ber: f64,
        seed: u64,
    ) -> Result<Option<ActivationFaultPlan>, SweepError> {
        use crate::config::Rail;
        use crate::sram::act_faults;
        let int8 = hw.systolic.datapath == Datapath::Int8;
        act_faults::check_rails_datapath(&hw.voltage.scaled_rails, int8)
            .map_err(SweepError::Input)?;
        act_faults::check_act_ber_datapath(act_ber, int8).map_err(SweepError::Input)?;
        let scaled = hw.voltage.scaled_rails.contains(&Rail::ActivationSram);
        if !int8 || (!scaled && act_ber <= 0.0) {
            return Ok(None);
        }
        let profile = if scaled {
            let weight_profile = match spec {
                FaultSpec::Profile { profile, .. } => Some(profile.as_ref()),
                _ => None,
            };
            let p = act_faults::activation_profile(hw, weight_profile)
                .map_err(|e| SweepError::Input(format!("{}: {e}", hw.origin)))?;
            Some(std::sync::Arc::new(p))
        } else {
            None
        };
        Ok(Some(ActivationFaultPlan {
            hw: hw.clone(),
            profile,
            act_ber,
            seed,
        }))
    }

    /// The store of fault sample `sample` at `vdd_v` (the same cells fail for every image; transient cells per
    /// access, seeded by the sample and the image).
    pub fn store(
        &self,
        sample: u32,
        vdd_v: f64,
    ) -> Result<crate::sram::act_faults::ActivationFaults, SweepError> {
        crate::sram::act_faults::ActivationFaults::build(
            &self.hw,
            vdd_v,
            self.profile.as_deref(),
            self.act_ber,
            self.seed.wrapping_add(ACTIVATION_SEED_BASE + sample as u64),
        )
        .map_err(|e| SweepError::Input(format!("{}: {e}", self.hw.origin)))
    }
}

/// First seed of the activation faults' random chips (`+ sample`, `+` the sweep seed's offset).
pub const ACTIVATION_SEED_BASE: u64 = 200;

impl LoadedModel {
    /// Loads the manifest at `path` and its test set (data set named by `[input] dataset`, default
    /// Fashion-MNIST), and evaluates the clean network once.
    pub fn load(
        path: &Path,
        data: &mut DataCache,
        datapath: Datapath,
    ) -> Result<LoadedModel, SweepError> {
        let model = Model::load(path).map_err(|e| SweepError::Input(e.to_string()))?;
        Self::from_model(model, data, datapath)
    }

    /// As [`LoadedModel::load`], for a model already in memory (e.g. from [`ModelVariant::load_model`]).
    pub fn from_model(
        model: Model,
        data: &mut DataCache,
        datapath: Datapath,
    ) -> Result<LoadedModel, SweepError> {
        let path = model.path().to_path_buf();
        let path = path.as_path();
        let m = model.manifest();
        let kind = dataset_kind(&model)?;
        if model.bytes_per_value() != 1 {
            return Err(SweepError::Input(format!(
                "{}: [quantization] bits = {} signed: run/sweep support codes of at most 8 bits",
                path.display(),
                model.bits()
            )));
        }
        let net = build_network(&model, data, datapath)?;
        let ds = data.get(kind)?;
        let inputs = ds
            .normalized(&m.input.mean, &m.input.std)
            .map_err(|e| SweepError::Input(format!("{}: {e}", path.display())))?;
        let eval = Evaluator::new(net.as_ref(), inputs.view(), &ds.labels)
            .map_err(|e| SweepError::Input(format!("{}: {e}", path.display())))?;
        Ok(LoadedModel {
            name: m.name.clone(),
            method: m.training.method.clone(),
            bits: model.bits(),
            test_images: ds.len(),
            model,
            net,
            eval,
            activation_faults: None,
            act_store: None,
        })
    }

    /// Lets the activation buffers fail as `plan` says (`None`: never) from the next point on.
    pub fn set_activation_faults(&mut self, plan: Option<ActivationFaultPlan>) {
        self.activation_faults = plan;
        self.act_store = None;
    }

    /// Stored weight elements (W).
    pub fn weights(&self) -> u64 {
        self.model
            .param_tensors()
            .iter()
            .map(|p| p.len as u64)
            .sum()
    }
}

impl ImageEvaluator for LoadedModel {
    fn tensor_ranges(&self) -> Vec<Range<usize>> {
        (0..self.model.param_tensors().len())
            .map(|id| self.model.image_range(id))
            .collect()
    }

    fn clean_error_pct(&mut self) -> Result<f64, SweepError> {
        Ok(self.eval.clean_error_pct())
    }

    fn reset(&mut self, image: &[u8]) -> Result<(), SweepError> {
        self.net
            .set_weights_from_image(&self.model, image, None)
            .map_err(|e| SweepError::Eval(e.to_string()))
    }

    fn images_per_inference(&self) -> u64 {
        // Only the clean-right images are run on the faulty network (docs/run-and-sweep.md#evaluation-protocol).
        (self.eval.clean().images - self.eval.clean().wrong) as u64
    }

    fn evaluate(&mut self, image: &[u8], changed: &[usize]) -> Result<f64, SweepError> {
        self.net
            .set_weights_from_image(&self.model, image, Some(changed))
            .map_err(|e| SweepError::Eval(e.to_string()))?;
        let r = match &self.act_store {
            Some(store) => self.eval.robust_store(self.net.as_ref(), store),
            None => self.eval.robust(self.net.as_ref()),
        }
        .map_err(|e| SweepError::Eval(e.to_string()))?;
        Ok(r.rerr_pct())
    }

    fn begin_point(&mut self, sample: u32, vdd_v: f64) -> Result<bool, SweepError> {
        // A map without a failing cell (e.g. above the activation SRAM's V_min) reads back every bit.
        self.act_store = match &self.activation_faults {
            Some(plan) => Some(plan.store(sample, vdd_v)?).filter(|s| s.map().faulty_cells() > 0),
            None => None,
        };
        Ok(self.act_store.is_some())
    }

    fn activation_counts(&self) -> (u64, u64) {
        self.act_store.as_ref().map_or((0, 0), |s| {
            let c = s.counts();
            (c.bits_read, c.bits_flipped)
        })
    }
}

/// The network of `model` on `datapath`: the float engine, or the integer datapath calibrated on the first
/// [`CALIBRATION_IMAGES`] training images of the model's data set (docs/datapath.md#calibration).
pub fn build_network(
    model: &Model,
    data: &mut DataCache,
    datapath: Datapath,
) -> Result<Box<dyn Inference>, SweepError> {
    match datapath {
        Datapath::Float => Ok(Box::new(Network::from_model(model))),
        Datapath::Int8 => {
            let kind = dataset_kind(model)?;
            let m = model.manifest();
            let calib = data
                .calibration(kind)?
                .normalized(&m.input.mean, &m.input.std)
                .map_err(|e| SweepError::Input(format!("{}: {e}", model.path().display())))?;
            let net =
                Int8Network::build(model, calib.view(), Int8Options::default()).map_err(|e| {
                    SweepError::Input(format!("{}: --datapath int8: {e}", model.path().display()))
                })?;
            Ok(Box::new(net))
        }
    }
}

/// The systolic layers (conv2d and linear, batch 1) of a model, for the cycle and energy models. Other layers
/// (pooling, normalization, activations) are not mapped onto the array; their parameters still live in the
/// weight SRAM and still see faults.
pub fn systolic_layers(model: &Model) -> Result<Vec<crate::systolic::Layer>, SweepError> {
    use crate::model::{LayerKind, Shape};
    use crate::systolic::{Layer, OfmapRounding};
    let graph = model.graph();
    let mut out = Vec::new();
    let err = |name: &str, e: crate::systolic::LayerError| {
        SweepError::Input(format!("{}: layer `{name}`: {e}", model.path().display()))
    };
    for (i, layer) in model.manifest().layers.iter().enumerate() {
        match &layer.kind {
            LayerKind::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                dilation,
                groups,
                ..
            } => {
                let input = graph.inputs[i].first().copied().unwrap_or(0);
                let (h, w) = match graph.value_shape(input) {
                    Shape::Chw(_, h, w) => (h, w),
                    Shape::Flat(_) => (1, 1),
                };
                // A dilated kernel spans d·(k - 1) + 1 input rows/columns but is still the GEMM with
                // K = C·kh·kw: it is given to the array model as a dense kernel on an IFMAP shrunk by the extra
                // span, which yields the real output size (docs/systolic.md).
                let span = |k: usize, d: usize| (k - 1) * d + 1;
                let (sh, sw) = (span(kernel[0], dilation[0]), span(kernel[1], dilation[1]));
                let (ph, pw) = (padding[0] + padding[2], padding[1] + padding[3]);
                // Each group is an independent GEMM on the array (docs/systolic.md, grouped convolutions).
                for gi in 0..*groups {
                    let name = if *groups == 1 {
                        layer.name.clone()
                    } else {
                        format!("{}[g{gi}]", layer.name)
                    };
                    let l = Layer::scalesim_conv(
                        &name,
                        (h + ph + kernel[0]).saturating_sub(sh) as u64,
                        (w + pw + kernel[1]).saturating_sub(sw) as u64,
                        kernel[0] as u64,
                        kernel[1] as u64,
                        (*in_channels / groups) as u64,
                        (*out_channels / groups) as u64,
                        stride[0] as u64,
                        stride[1] as u64,
                        OfmapRounding::Floor,
                    )
                    // Zeros on chip: the padded size above minus the real map (all padding rows and columns,
                    // asymmetric or not, less a dilated kernel's extra span); DRAM carries only the real map.
                    .and_then(|l| {
                        let extra_h = (ph + kernel[0]).saturating_sub(sh) as u64;
                        let extra_w = (pw + kernel[1]).saturating_sub(sw) as u64;
                        l.with_zero_padding_sides([extra_h, extra_w, 0, 0])
                    })
                    .map_err(|e| err(&layer.name, e))?;
                    out.push(l);
                }
            }
            LayerKind::Linear {
                in_features,
                out_features,
                ..
            } => out.push(
                Layer::linear(&layer.name, 1, *in_features as u64, *out_features as u64)
                    .map_err(|e| err(&layer.name, e))?,
            ),
            _ => {}
        }
    }
    Ok(out)
}

/// Cycles and energy of one inference of a model on a hardware config, at any voltage, with the two references
/// savings are quoted against (docs/run-and-sweep.md#energy-references).
#[derive(Debug, Clone)]
pub struct CostModel {
    /// Cycles and accesses, with the ECC decoder's latency when the config has ECC.
    pub stats: crate::systolic::NetworkStats,
    pub energy: crate::energy::EnergyModel,
    /// The reference of every saving against the nominal voltage: the same model (network and width) on the
    /// same accelerator **without ECC** at its nominal voltage, so ECC's costs show up in the savings
    /// (docs/ecc.md).
    pub nominal: crate::energy::EnergyBreakdown,
    /// The same network with 8-bit weights at V_min: the paper's reference for its savings.
    pub reference_8b_vmin: crate::energy::EnergyBreakdown,
}

/// Cost of one inference at one voltage.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PointCost {
    pub cycles: u64,
    pub latency_us: f64,
    pub breakdown: crate::energy::EnergyBreakdown,
    pub energy_pj: f64,
    /// Weight-SRAM dynamic + leakage energy, plus the ECC codec logic.
    pub weight_sram_energy_pj: f64,
    /// Saving of the total energy against the nominal voltage without ECC, percent.
    pub energy_saving_pct: f64,
    /// Saving of the weight-SRAM energy against the nominal voltage without ECC, percent.
    pub weight_sram_saving_pct: f64,
    /// Saving of the total energy against the same network with 8-bit weights at V_min, percent.
    pub energy_saving_vs_vmin_pct: f64,
    /// Saving of the weight-SRAM energy against the same network with 8-bit weights at V_min, percent.
    pub weight_sram_saving_vs_vmin_pct: f64,
}

impl CostModel {
    /// Simulates the model's layers on the config's systolic array once (cycles and accesses do not depend on
    /// the voltage; an ECC decoder adds `ecc_decoder_latency_cycles` per fold; once more at 8 bits for the V_min
    /// reference) and builds the config's energy model (with the ECC costs of `[weight_sram] ecc`).
    pub fn new(hw: &crate::config::HwConfig, model: &Model) -> Result<CostModel, SweepError> {
        use crate::systolic::{simulate_network, BufferParams};
        let origin = &hw.origin;
        let layers = systolic_layers(model)?;
        let array = hw
            .systolic
            .array_params()
            .map_err(|e| SweepError::Input(format!("{origin}: {e}")))?;
        let buffers =
            BufferParams::from_hw(hw).map_err(|e| SweepError::Input(format!("{origin}: {e}")))?;
        let plain = simulate_network(&layers, &array, &buffers, model.bits())
            .map_err(|e| SweepError::Input(format!("{origin}: {e}")))?;
        let ecc = hw.weight_sram.ecc != crate::config::EccScheme::None;
        let stats = if ecc {
            plain
                .clone()
                .with_decoder_latency(hw.weight_sram.ecc_decoder_latency_cycles as u64)
        } else {
            plain.clone()
        };
        let energy = crate::energy::EnergyModel::new(hw)
            .map_err(|e| SweepError::Input(format!("{origin}: {e}")))?;
        let nominal = energy
            .clone()
            .with_ecc(None)
            .nominal_energy(&plain)
            .map_err(|e| SweepError::Input(format!("{origin}: {e}")))?;
        // The paper's reference: 8-bit weights at V_min, without ECC like the nominal reference.
        let stats_8b = if model.bits() == 8 {
            plain.clone()
        } else {
            simulate_network(&layers, &array, &buffers, 8)
                .map_err(|e| SweepError::Input(format!("{origin}: {e}")))?
        };
        let reference_8b_vmin = energy
            .clone()
            .with_ecc(None)
            .energy_per_inference(&stats_8b, hw.voltage.vmin_v)
            .map_err(|e| SweepError::Input(format!("{origin}: {e}")))?;
        Ok(CostModel {
            stats,
            energy,
            nominal,
            reference_8b_vmin,
        })
    }

    /// Cost at supply voltage `vdd_v`.
    pub fn at(&self, vdd_v: f64) -> Result<PointCost, SweepError> {
        let b = self
            .energy
            .energy_per_inference(&self.stats, vdd_v)
            .map_err(|e| SweepError::Input(e.to_string()))?;
        let w = |e: &crate::energy::EnergyBreakdown| e.weight_sram_total_pj();
        let saving = |a: f64, n: f64| if n > 0.0 { (1.0 - a / n) * 100.0 } else { 0.0 };
        Ok(PointCost {
            cycles: self.stats.total_cycles,
            latency_us: self.stats.latency_s * 1e6,
            energy_pj: b.total_pj,
            weight_sram_energy_pj: w(&b),
            energy_saving_pct: saving(b.total_pj, self.nominal.total_pj),
            weight_sram_saving_pct: saving(w(&b), w(&self.nominal)),
            energy_saving_vs_vmin_pct: saving(b.total_pj, self.reference_8b_vmin.total_pj),
            weight_sram_saving_vs_vmin_pct: saving(w(&b), w(&self.reference_8b_vmin)),
            breakdown: b,
        })
    }
}

/// Where the bit errors of a run or sweep come from.
#[derive(Debug, Clone)]
pub enum FaultSpec {
    /// A fault map in `sram_profiles/` (profiled or generated chip), mapped through the weight mapping with
    /// several offsets; transient cells drawn per seed.
    Profile {
        /// Short name shown in reports (`chip1`).
        name: String,
        path: PathBuf,
        profile: std::sync::Arc<crate::sram::FaultProfile>,
    },
    /// Uniform random bit errors at the paper's measured average BER for the voltage (docs/sram-profiles.md#measured-ber).
    MeasuredUniform,
    /// Uniform random bit errors at a fixed per-bit probability `p` (`run --ber`); the voltage then only sets
    /// the energy.
    FixedUniform { p: f64 },
}

impl FaultSpec {
    /// Resolves `name_or_path`: `uniform` (the measured BER curve) or a profile name/path.
    pub fn resolve(name_or_path: &str) -> Result<FaultSpec, SweepError> {
        if name_or_path == "uniform" {
            return Ok(FaultSpec::MeasuredUniform);
        }
        let path = crate::sram::FaultProfile::resolve(name_or_path)
            .map_err(|e| SweepError::Input(e.to_string()))?;
        let profile =
            crate::sram::FaultProfile::load(&path).map_err(|e| SweepError::Input(e.to_string()))?;
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = file
            .strip_suffix(".sramprof.gz")
            .or_else(|| file.strip_suffix(".sramprof"))
            .unwrap_or(&file)
            .to_string();
        Ok(FaultSpec::Profile {
            name,
            path,
            profile: std::sync::Arc::new(profile),
        })
    }

    /// Content key ([`super::unit::UnitKey::faults`]): a hash of the profile file's bytes, or `uniform` /
    /// `uniform_p=<p>` (the rule itself is the content).
    pub fn content_key(&self) -> Result<String, SweepError> {
        match self {
            FaultSpec::Profile { path, .. } => super::unit::file_key("accelsim-profile", path),
            other => Ok(other.name()),
        }
    }

    /// Name in reports: the profile name, `uniform` or `uniform_p=<p>`.
    pub fn name(&self) -> String {
        match self {
            FaultSpec::Profile { name, .. } => name.clone(),
            FaultSpec::MeasuredUniform => "uniform".into(),
            FaultSpec::FixedUniform { p } => format!("uniform_p={p}"),
        }
    }

    /// Checks that the profile covers `vdd_rel` (one-line user error naming the profile and its range).
    pub fn check_vdd_rel(&self, vdd_rel: f64) -> Result<(), SweepError> {
        match self {
            FaultSpec::Profile { profile, .. } => profile
                .check_vdd_rel(vdd_rel)
                .map_err(|e| SweepError::Input(e.to_string())),
            _ => Ok(()),
        }
    }
}

/// Offsets (in bits) of the weight→memory mappings averaged over: `count` evenly spaced starting points in the
/// weight SRAM, each a multiple of `t · word_bits` (`t` the slot width of `bits`-bit codes under the config's
/// packing; hence slot and word aligned), the first one at the config's `offset_bits`.
pub fn mapping_offsets_bits(hw: &crate::config::HwConfig, bits: u32, count: u32) -> Vec<u64> {
    let total = hw.weight_sram.total_bits();
    let quantum = hw.weight_sram.packing.slot_bits(bits) as u64 * hw.weight_sram.word_bits as u64;
    let base = hw.weight_sram.offset_bits;
    (0..count as u64)
        .map(|i| {
            let raw = i * total / count.max(1) as u64;
            (base + raw / quantum * quantum) % total
        })
        .collect()
}

/// Number of bits that differ between two images (the flipped stored bits).
pub fn differing_bits(a: &[u8], b: &[u8]) -> u64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x ^ y).count_ones() as u64)
        .sum()
}

/// Fault source of a profile: `mappings.len()` weight→memory offsets × `seeds` transient seeds.
struct ProfileFaults {
    profile: std::sync::Arc<crate::sram::FaultProfile>,
    mappings: Vec<crate::sram::WeightMapping>,
    seeds: u32,
    vmin_v: f64,
    /// [`seed_offset`] of the sweep seed.
    seed_offset: u64,
}

impl super::core::FaultSource for ProfileFaults {
    fn faulty_image(
        &self,
        sample: u32,
        vdd_v: f64,
        clean: &[u8],
        out: &mut [u8],
    ) -> Result<u64, SweepError> {
        let mapping = &self.mappings[(sample / self.seeds) as usize % self.mappings.len()];
        let seed = TRANSIENT_SEED_BASE + (sample % self.seeds) as u64 + self.seed_offset;
        let pattern =
            crate::sram::fault_pattern_at(&self.profile, mapping, clean, vdd_v / self.vmin_v, seed)
                .map_err(|e| SweepError::Input(e.to_string()))?;
        out.copy_from_slice(clean);
        pattern
            .apply_u8(out)
            .map_err(|e| SweepError::Eval(e.to_string()))?;
        Ok(differing_bits(clean, out))
    }
}

/// Uniform random bit errors, nested across rates for each chip (seed): one [`crate::faults::NestedSampler`] per
/// sample, built when the sample starts and kept while its voltages are evaluated.
struct UniformFaults {
    /// Fixed rate (`--ber`), or `None` for the measured BER curve of the voltage.
    fixed_p: Option<f64>,
    p_max: f64,
    bits: u8,
    vmin_v: f64,
    /// [`seed_offset`] of the sweep seed.
    seed_offset: u64,
    current: std::sync::Mutex<Option<(u32, crate::faults::NestedSampler)>>,
}

impl UniformFaults {
    fn p_at(&self, vdd_v: f64) -> f64 {
        self.fixed_p
            .unwrap_or_else(|| crate::sram::measured_ber(vdd_v / self.vmin_v))
            .clamp(0.0, self.p_max)
    }
}

impl super::core::FaultSource for UniformFaults {
    fn faulty_image(
        &self,
        sample: u32,
        vdd_v: f64,
        clean: &[u8],
        out: &mut [u8],
    ) -> Result<u64, SweepError> {
        out.copy_from_slice(clean);
        let p = self.p_at(vdd_v);
        if p <= 0.0 {
            return Ok(0);
        }
        let mut guard = self
            .current
            .lock()
            .map_err(|_| SweepError::Eval("fault sampler lock poisoned".into()))?;
        if guard.as_ref().is_none_or(|(s, _)| *s != sample) {
            let sampler = crate::faults::NestedSampler::new(
                clean.len() as u64,
                self.bits,
                self.p_max,
                UNIFORM_SEED_BASE + sample as u64 + self.seed_offset,
            )
            .map_err(|e| SweepError::Input(e.to_string()))?;
            *guard = Some((sample, sampler));
        }
        let (_, sampler) = guard.as_ref().expect("sampler set above");
        let pattern = sampler
            .pattern(clean, crate::faults::BitErrorRates::uniform(p))
            .map_err(|e| SweepError::Eval(e.to_string()))?;
        pattern
            .apply_u8(out)
            .map_err(|e| SweepError::Eval(e.to_string()))?;
        Ok(differing_bits(clean, out))
    }
}

/// First seed of the random chips for uniform bit errors (the paper evaluates seeds 100..149, docs/faults.md#paper-model).
pub const UNIFORM_SEED_BASE: u64 = 100;
/// First seed of the transient-cell draws of profiles.
pub const TRANSIENT_SEED_BASE: u64 = 1000;
/// Seeds of one sweep seed are spread over this many values (more than the 1024 × 1024 samples a sweep may
/// have), so two sweep seeds never share a random chip or transient draw.
pub const SEED_STRIDE: u64 = 1 << 20;

/// What the sweep seed `S` adds to every seed of a unit: `S · SEED_STRIDE` (0 for the default `S = 0`, so the
/// default seeds are the paper's 100, 101, ... and `run` draws the same chips). A unit's seeds are thus
/// `base + sample + S · SEED_STRIDE`: functions of the sweep seed and the unit's key only.
pub fn seed_offset(sweep_seed: u32) -> u64 {
    sweep_seed as u64 * SEED_STRIDE
}

/// Builds the fault source of `spec` for `model` on `hw`: `offsets` weight→memory mappings × `seeds` seeds for
/// transient cells (profiles), or `offsets × seeds` random chips (uniform errors, seeds 100, 101, ... as the
/// paper's evaluation, docs/faults.md#paper-model). `min_vdd_v` is the lowest voltage that will be asked for (it bounds
/// the rates the uniform sampler prepares).
pub fn fault_source(
    spec: &FaultSpec,
    hw: &crate::config::HwConfig,
    model: &LoadedModel,
    offsets: u32,
    seeds: u32,
    min_vdd_v: f64,
) -> Result<Box<dyn super::core::FaultSource>, SweepError> {
    fault_source_seeded(spec, hw, model, offsets, seeds, min_vdd_v, 0)
}

/// [`fault_source`] for sweep seed `sweep_seed` (`sweep --seed`; every seed shifted by [`seed_offset`]).
pub fn fault_source_seeded(
    spec: &FaultSpec,
    hw: &crate::config::HwConfig,
    model: &LoadedModel,
    offsets: u32,
    seeds: u32,
    min_vdd_v: f64,
    sweep_seed: u32,
) -> Result<Box<dyn super::core::FaultSource>, SweepError> {
    let seed_offset = seed_offset(sweep_seed);
    let bits = u8::try_from(model.bits)
        .ok()
        .filter(|b| (1..=8).contains(b))
        .ok_or_else(|| {
            SweepError::Input(format!(
                "{}: {}-bit codes do not fit the u8 memory image",
                model.name, model.bits
            ))
        })?;
    let vmin_v = hw.voltage.vmin_v;
    let mappings = || -> Result<Vec<crate::sram::WeightMapping>, SweepError> {
        mapping_offsets_bits(hw, model.bits, offsets.max(1))
            .into_iter()
            .map(|off| crate::sram::WeightMapping::new(&hw.weight_sram, bits, model.weights(), off))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SweepError::Input(format!("{}: {e}", hw.origin)))
    };
    if let Some(layout) = crate::ecc::EccLayout::from_config(&hw.weight_sram) {
        let zero = std::sync::Arc::new(super::ecc_source::zero_codes(&model.model)?);
        let due = hw.weight_sram.due;
        return match spec {
            FaultSpec::Profile { profile, .. } => {
                Ok(Box::new(super::ecc_source::ProfileEccFaults::new(
                    profile.clone(),
                    &layout,
                    &mappings()?,
                    seeds,
                    vmin_v,
                    due,
                    zero,
                    seed_offset,
                )?))
            }
            FaultSpec::MeasuredUniform | FaultSpec::FixedUniform { .. } => {
                let fixed_p = match spec {
                    FaultSpec::FixedUniform { p } => Some(*p),
                    _ => None,
                };
                let p_max = fixed_p
                    .unwrap_or_else(|| crate::sram::measured_ber(min_vdd_v / vmin_v))
                    .clamp(0.0, 1.0);
                let first = mappings()?.swap_remove(0);
                Ok(Box::new(super::ecc_source::UniformEccFaults::new(
                    fixed_p,
                    p_max,
                    &first,
                    &layout,
                    vmin_v,
                    due,
                    zero,
                    seed_offset,
                )?))
            }
        };
    }
    match spec {
        FaultSpec::Profile { profile, .. } => {
            let mappings = mappings()?;
            Ok(Box::new(ProfileFaults {
                profile: profile.clone(),
                mappings,
                seeds: seeds.max(1),
                vmin_v,
                seed_offset,
            }))
        }
        FaultSpec::MeasuredUniform | FaultSpec::FixedUniform { .. } => {
            let fixed_p = match spec {
                FaultSpec::FixedUniform { p } => Some(*p),
                _ => None,
            };
            let p_max = fixed_p
                .unwrap_or_else(|| crate::sram::measured_ber(min_vdd_v / vmin_v))
                .clamp(0.0, 1.0);
            Ok(Box::new(UniformFaults {
                fixed_p,
                p_max,
                bits,
                vmin_v,
                seed_offset,
                current: std::sync::Mutex::new(None),
            }))
        }
    }
}

#[cfg(test)]
mod default_sweep_tests {
    use super::*;

    #[test]
    fn the_default_sweep_is_the_cnn_families_only() {
        for f in [
            "fmnist-cnn-randbet",
            "fmnist-cnn-normal",
            "fmnist-cnn-clipping",
        ] {
            assert!(in_default_sweep(f), "{f}");
        }
        for f in [
            "fmnist-mobilenet-normal",
            "fmnist-resnet-randbet",
            "my-net",
            "fmnist-cnn",
        ] {
            assert!(!in_default_sweep(f), "{f}");
        }
    }

    #[test]
    fn the_shipped_default_sweep_leaves_out_the_other_architectures() {
        let all = resolve_variants(&[], None, "--models").expect("shipped models resolve");
        assert!(!all.is_empty());
        assert!(all.iter().all(|v| in_default_sweep(&v.family)), "{all:?}");
        // Models trained against activation faults belong to the activation-rail study, not the default one.
        assert!(
            all.iter().all(|v| v.family != "fmnist-cnn-randbet-act"),
            "{all:?}"
        );
        // Named, the other architectures' families are found like any other.
        let shipped: Vec<String> = list_shipped_models()
            .iter()
            .map(|p| catalog_entry(p).unwrap().family)
            .filter(|f| !in_default_sweep(f))
            .collect();
        for f in shipped {
            let v = resolve_variants(std::slice::from_ref(&f), None, "--models").unwrap();
            assert!(!v.is_empty() && v.iter().all(|x| x.family == f));
        }
    }
}
