//! The plan of a sweep: its inputs resolved by content, its canonical unit list and its fingerprint.
//!
//! [`Plan::new`] loads every model manifest and fault source once, keys them by content
//! ([`super::unit`]), drops repeated inputs (with a note) and refuses two different inputs that share a display
//! name. [`Plan::units`] is the canonical unit order that shards cut into blocks; [`Plan::fingerprint`] hashes
//! everything a unit's result depends on:
//! - the hardware config file's bytes,
//! - every model's and fault source's content key (names too, since they label the rows),
//! - the grid, `--offsets`, `--seeds`, `--seed`, the ECC schemes (`--ecc`; the other ECC keys are in the config),
//!   the scaled rails when `--rails` overrides the config's,
//! - every test split's **content** ([`crate::data::Dataset::content_sha256`]: shape and the bytes of the images
//!   used after `--skip`/`--limit`) and size, never its folder's path: passing the default folder explicitly
//!   is the same configuration, and replacing the images in a folder is a different one.
//!
//! Not fingerprinted: `--out`, `--tolerance` (only the report), `--fresh`, `--quiet`, `--shard`.
use serde::Serialize;
use std::path::PathBuf;

use super::driver::SweepSpec;
use super::scenario::{self, CostModel, DataCache, FaultSpec, ModelVariant, WeightsSource};
use super::state::{fingerprint, hash_file, Expect};
use super::unit::{dedup_by_content, model_key, ptq_model_key, ContentKey, UnitKey};
use super::SweepError;
use crate::config::EccScheme;
use crate::data::DatasetKind;

/// Version of the fingerprint input (bump when what a unit depends on changes).
const FINGERPRINT_VERSION: u32 = 3;

/// A model of the sweep.
#[derive(Debug, Clone)]
pub struct PlannedModel {
    pub path: PathBuf,
    /// The model at its width: manifest (trained) or float source + width (PTQ).
    pub variant: ModelVariant,
    pub key: String,
    pub name: String,
    pub family: String,
    pub method: String,
    pub bits: u32,
    /// Stored weight elements W.
    pub weights: u64,
    pub dataset: DatasetKind,
    /// Cycles and energy under each ECC scheme of the sweep ([`Plan::ecc`] order).
    pub costs: Vec<CostModel>,
}

/// A fault source of the sweep.
#[derive(Debug, Clone)]
pub struct PlannedFaults {
    pub spec: FaultSpec,
    pub key: String,
    pub name: String,
}

/// Inputs by content, in the order given (repeats removed).
#[derive(Debug, Clone)]
pub struct Plan {
    pub models: Vec<PlannedModel>,
    pub faults: Vec<PlannedFaults>,
    /// ECC schemes swept (`--ecc`, repeats removed; the config's scheme when not given).
    pub ecc: Vec<EccScheme>,
    /// The hardware config under each scheme of [`Plan::ecc`] (validated).
    pub hw: Vec<crate::config::HwConfig>,
    /// Fault samples per (model, fault source): offsets × seeds.
    pub samples: u32,
    /// Notes for stderr (repeated inputs dropped).
    pub notes: Vec<String>,
}

/// A plan's fingerprint and what a valid state of it looks like.
#[derive(Debug, Clone)]
pub struct Fingerprinted {
    /// Human-readable echo of the fingerprinted configuration (stored in the state file).
    pub config: serde_json::Value,
    pub expect: Expect,
}

#[derive(Serialize)]
struct NamedKey<'a> {
    key: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct ModelPrint<'a> {
    key: &'a str,
    name: &'a str,
    bits: u32,
    weights_source: &'static str,
}

#[derive(Serialize)]
struct DataPrint {
    dataset: &'static str,
    sha256: String,
    images: usize,
}

#[derive(Serialize)]
struct FingerprintInput<'a> {
    version: u32,
    hw_sha256: String,
    models: Vec<ModelPrint<'a>>,
    faults: Vec<NamedKey<'a>>,
    grid_v: &'a [f64],
    offsets: u32,
    seeds: u32,
    seed: u32,
    data: Vec<DataPrint>,
    /// ECC schemes; omitted for an unprotected sweep, whose fingerprint is then the same as before the axis.
    #[serde(skip_serializing_if = "only_unprotected")]
    ecc: Vec<&'static str>,
    /// The datapath (docs/datapath.md); omitted for float, whose fingerprint is then the same as before the
    /// int8 datapath existed. int8 results also depend on the calibration images, hashed in `calibration`.
    #[serde(skip_serializing_if = "Option::is_none")]
    datapath: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    calibration: Vec<DataPrint>,
    /// Scaled rails when `--rails` changed them from the config file's (whose bytes are hashed already); omitted
    /// otherwise, so a sweep without `--rails` keeps its fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    rails: Option<Vec<&'static str>>,
    /// `--act-ber` (uniform random activation bit errors); omitted when 0.
    #[serde(skip_serializing_if = "is_zero")]
    act_ber: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// The sweep's scaled rails if they differ from those of the config file it names (`--rails`), else `None`.
fn rails_override(spec: &SweepSpec) -> Option<Vec<&'static str>> {
    let rails = &spec.hw.voltage.scaled_rails;
    let from_file = crate::config::HwConfig::load(&spec.hw_path)
        .map(|h| h.voltage.scaled_rails)
        .ok();
    (from_file.as_ref() != Some(rails)).then(|| rails.iter().map(|r| r.name()).collect())
}

fn only_unprotected(v: &[&'static str]) -> bool {
    v == [EccScheme::None.name()]
}

impl Plan {
    /// Resolves the inputs of `spec` by content (see the module docs). Needs no test data.
    pub fn new(spec: &SweepSpec) -> Result<Plan, SweepError> {
        let mut notes = Vec::new();
        let mut ecc: Vec<EccScheme> = Vec::new();
        for &e in &spec.ecc {
            if !ecc.contains(&e) {
                ecc.push(e);
            }
        }
        if ecc.is_empty() {
            ecc.push(spec.hw.weight_sram.ecc);
        }
        let hw = ecc
            .iter()
            .map(|&e| {
                spec.hw
                    .with_ecc(e)
                    .map_err(|err| SweepError::Input(format!("--ecc {e}: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut models = Vec::new();
        // Each manifest is read once; the widths of one family are quantized from the same float weights.
        let mut sources = std::collections::HashMap::new();
        for variant in &spec.models {
            let path = &variant.path;
            let model = variant.load_model(&mut sources)?;
            let m = model.manifest();
            let file_key = model_key(path, &m.weights)?;
            models.push(PlannedModel {
                path: path.clone(),
                variant: variant.clone(),
                key: match variant.source {
                    WeightsSource::Trained => file_key,
                    WeightsSource::Ptq => ptq_model_key(&file_key, variant.bits),
                },
                name: variant.name.clone(),
                family: variant.family.clone(),
                method: m.training.method.clone(),
                bits: model.bits(),
                weights: model.param_tensors().iter().map(|p| p.len as u64).sum(),
                dataset: scenario::dataset_kind(&model)?,
                costs: hw
                    .iter()
                    .map(|h| CostModel::new(h, &model))
                    .collect::<Result<_, _>>()?,
            });
        }
        let ck = |key: &str, name: &str, origin: String| ContentKey {
            key: key.into(),
            name: name.into(),
            origin,
        };
        let items: Vec<ContentKey> = models
            .iter()
            .map(|m| ck(&m.key, &m.name, m.path.display().to_string()))
            .collect();
        let (kept, n) = dedup_by_content("--models", "model", &items)?;
        notes.extend(n);
        let models: Vec<PlannedModel> = kept.into_iter().map(|i| models[i].clone()).collect();

        let mut faults = Vec::new();
        for f in &spec.faults {
            faults.push(PlannedFaults {
                key: f.content_key()?,
                name: f.name(),
                spec: f.clone(),
            });
        }
        let items: Vec<ContentKey> = faults
            .iter()
            .map(|f| {
                let origin = match &f.spec {
                    FaultSpec::Profile { path, .. } => path.display().to_string(),
                    other => other.name(),
                };
                ck(&f.key, &f.name, origin)
            })
            .collect();
        let (kept, n) = dedup_by_content("--profiles", "fault map", &items)?;
        notes.extend(n);
        let faults = kept.into_iter().map(|i| faults[i].clone()).collect();
        Ok(Plan {
            models,
            faults,
            ecc,
            hw,
            samples: spec.offsets.max(1) * spec.seeds.max(1),
            notes,
        })
    }

    /// Every unit of the sweep in canonical order: models (as given), then fault sources, then samples.
    /// (A new axis is one more loop here and one more field in [`UnitKey`].)
    pub fn units(&self) -> Vec<UnitKey> {
        let mut out = Vec::new();
        for m in &self.models {
            for f in &self.faults {
                for &ecc in &self.ecc {
                    for sample in 0..self.samples {
                        out.push(UnitKey {
                            model: m.key.clone(),
                            bits: m.bits,
                            faults: f.key.clone(),
                            ecc,
                            sample,
                        });
                    }
                }
            }
        }
        out
    }

    /// The configuration fingerprint (see the module docs). Loads (and hashes) the test split of every data set
    /// the models use, through `data`, which keeps them for the evaluation.
    pub fn fingerprint(
        &self,
        spec: &SweepSpec,
        data: &mut DataCache,
    ) -> Result<Fingerprinted, SweepError> {
        let mut kinds: Vec<DatasetKind> = Vec::new();
        for m in &self.models {
            if !kinds.contains(&m.dataset) {
                kinds.push(m.dataset);
            }
        }
        let mut prints = Vec::new();
        for k in kinds {
            let (sha256, images) = data.fingerprint(k)?;
            prints.push(DataPrint {
                dataset: k.name(),
                sha256,
                images,
            });
        }
        let int8 = spec.hw.systolic.datapath == crate::config::systolic::Datapath::Int8;
        let mut calibration = Vec::new();
        if int8 {
            for p in &prints {
                let k = DatasetKind::parse(p.dataset).expect("printed from a kind");
                let ds = data.calibration(k)?;
                calibration.push(DataPrint {
                    dataset: p.dataset,
                    sha256: ds.content_sha256(),
                    images: ds.len(),
                });
            }
        }
        let images_of = |k: DatasetKind| {
            prints
                .iter()
                .find(|p| p.dataset == k.name())
                .map_or(0, |p| p.images as u32)
        };
        let mut expect = Expect {
            fingerprint: String::new(),
            units: self.units(),
            grid_len: spec.grid_v.len(),
            models: self
                .models
                .iter()
                .map(|m| {
                    (
                        m.key.clone(),
                        (
                            m.name.clone(),
                            images_of(m.dataset),
                            m.weights * m.bits as u64,
                        ),
                    )
                })
                .collect(),
            faults: self
                .faults
                .iter()
                .map(|f| (f.key.clone(), f.name.clone()))
                .collect(),
        };
        let input = FingerprintInput {
            version: FINGERPRINT_VERSION,
            hw_sha256: hash_file(&spec.hw_path)?,
            models: self
                .models
                .iter()
                .map(|m| ModelPrint {
                    key: &m.key,
                    name: &m.name,
                    bits: m.bits,
                    weights_source: m.variant.source.name(),
                })
                .collect(),
            faults: self
                .faults
                .iter()
                .map(|f| NamedKey {
                    key: &f.key,
                    name: &f.name,
                })
                .collect(),
            grid_v: &spec.grid_v,
            offsets: spec.offsets,
            seeds: spec.seeds,
            seed: spec.seed,
            data: prints,
            ecc: self.ecc.iter().map(|e| e.name()).collect(),
            datapath: int8.then_some("int8"),
            calibration,
            rails: rails_override(spec),
            act_ber: spec.act_ber,
        };
        expect.fingerprint = fingerprint(&input);
        Ok(Fingerprinted {
            config: serde_json::to_value(&input).unwrap_or(serde_json::Value::Null),
            expect,
        })
    }
}
