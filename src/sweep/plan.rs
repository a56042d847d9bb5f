//! The plan of a sweep: its inputs resolved by content, its canonical unit list and its fingerprint.
//!
//! [`Plan::new`] loads every model manifest and fault source once, keys them by content
//! ([`super::unit`]), drops repeated inputs (with a note) and refuses two different inputs that share a display
//! name. [`Plan::units`] is the canonical unit order that shards cut into blocks; [`Plan::fingerprint`] hashes
//! everything a unit's result depends on:
//! - the hardware config file's bytes,
//! - every model's and fault source's content key (names too, since they label the rows),
//! - the grid, `--offsets`, `--seeds`, `--seed`, the ECC schemes (`--ecc`; the other ECC keys are in the config),
//!   the scaled rails when `--rails` overrides the config's, and the rail sets of the rails axis (`--rails`
//!   given more than once),
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
use crate::config::{EccScheme, Rail};
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
    /// Cycles and energy under each setup (rail set × ECC scheme) of the sweep ([`Plan::setups`] order).
    pub costs: Vec<CostModel>,
}

/// A fault source of the sweep.
#[derive(Debug, Clone)]
pub struct PlannedFaults {
    pub spec: FaultSpec,
    pub key: String,
    pub name: String,
}

/// One rail set of the sweep (the rails axis, docs/run-and-sweep.md#rails-axis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRails {
    /// The rails following the swept voltage.
    pub rails: Vec<Rail>,
    /// Their names joined by `+` in the config's order (`weight_sram+activation_sram`): the CSV's `rails` column.
    pub label: String,
    /// The units' key part ([`UnitKey::rails`]): empty for the sweep's base rails (those of
    /// [`SweepSpec::hw`]), else [`PlannedRails::label`].
    pub key: String,
}

/// The `rails` label of a rail set: the names in the config's order ([`Rail::ALL`]), joined by `+`.
pub fn rails_label(rails: &[Rail]) -> String {
    Rail::ALL
        .into_iter()
        .filter(|r| rails.contains(r))
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join("+")
}

/// One hardware setup of the sweep: a rail set and an ECC scheme, with the config under both.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Index into [`Plan::rails`].
    pub rails: usize,
    pub ecc: EccScheme,
    /// The hardware config with these rails and this scheme (validated).
    pub hw: crate::config::HwConfig,
}

/// Inputs by content, in the order given (repeats removed).
#[derive(Debug, Clone)]
pub struct Plan {
    pub models: Vec<PlannedModel>,
    pub faults: Vec<PlannedFaults>,
    /// Rail sets swept (`--rails` given more than once, repeats removed; else the one set of `spec.hw`).
    pub rails: Vec<PlannedRails>,
    /// ECC schemes swept (`--ecc`, repeats removed; the config's scheme when not given).
    pub ecc: Vec<EccScheme>,
    /// Every (rail set, ECC scheme), rail sets outer: the order of the units and rows.
    pub setups: Vec<Setup>,
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
    /// The rail sets of the rails axis (`--rails` given more than once, labels in sweep order); omitted
    /// without the axis, so a sweep with one rail set keeps its fingerprint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rails_axis: Vec<String>,
    /// `--act-ber` (uniform random activation bit errors); omitted when 0.
    #[serde(skip_serializing_if = "is_zero")]
    act_ber: f64,
    /// Version of the activation fault model (2: partial sums of folded reductions fail too,
    /// docs/activation-faults.md#partial-sums) when any unit can have activation faults (int8 with a scaled
    /// activation rail or `--act-ber`); omitted otherwise, so no other sweep's fingerprint changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    act_fault_model: Option<u32>,
}

/// Version of the activation fault model in fingerprints (see `FingerprintInput::act_fault_model`).
const ACT_FAULT_MODEL: u32 = 2;

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
        let base = &spec.hw.voltage.scaled_rails;
        let mut rails: Vec<PlannedRails> = Vec::new();
        for set in &spec.rails {
            let label = rails_label(set);
            if !rails.iter().any(|r| r.label == label) {
                rails.push(PlannedRails {
                    rails: set.clone(),
                    key: if rails_label(base) == label {
                        String::new()
                    } else {
                        label.clone()
                    },
                    label,
                });
            }
        }
        if rails.is_empty() {
            rails.push(PlannedRails {
                rails: base.clone(),
                label: rails_label(base),
                key: String::new(),
            });
        }
        let mut setups = Vec::new();
        for (ri, r) in rails.iter().enumerate() {
            let names = || {
                r.rails
                    .iter()
                    .map(|x| x.name())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let with_rails = if r.key.is_empty() {
                spec.hw.clone()
            } else {
                spec.hw
                    .with_rails(&r.rails)
                    .map_err(|err| SweepError::Input(format!("--rails {}: {err}", names())))?
            };
            // Failing activations need stored integer activations (docs/activation-faults.md): refused per set.
            let int8 = with_rails.systolic.datapath == crate::config::systolic::Datapath::Int8;
            crate::sram::act_faults::check_rails_datapath(&with_rails.voltage.scaled_rails, int8)
                .map_err(|err| {
                SweepError::Input(format!("--rails {}: {}: {err}", names(), spec.hw.origin))
            })?;
            for &e in &ecc {
                setups.push(Setup {
                    rails: ri,
                    ecc: e,
                    hw: with_rails
                        .with_ecc(e)
                        .map_err(|err| SweepError::Input(format!("--ecc {e}: {err}")))?,
                });
            }
        }
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
                costs: setups
                    .iter()
                    .map(|s| CostModel::new(&s.hw, &model))
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
            rails,
            ecc,
            setups,
            samples: spec.offsets.max(1) * spec.seeds.max(1),
            notes,
        })
    }

    /// Every unit of the sweep in canonical order: models (as given), then fault sources, then setups (rail
    /// sets, then ECC schemes), then samples. (A new axis is one more loop here and one more field in
    /// [`UnitKey`].)
    pub fn units(&self) -> Vec<UnitKey> {
        let mut out = Vec::new();
        for m in &self.models {
            for f in &self.faults {
                for si in 0..self.setups.len() {
                    for sample in 0..self.samples {
                        out.push(self.unit_key(m, f, si, sample));
                    }
                }
            }
        }
        out
    }

    /// The key of the unit (model, fault source, setup `si`, sample).
    pub fn unit_key(&self, m: &PlannedModel, f: &PlannedFaults, si: usize, sample: u32) -> UnitKey {
        let s = &self.setups[si];
        UnitKey {
            model: m.key.clone(),
            bits: m.bits,
            faults: f.key.clone(),
            ecc: s.ecc,
            rails: self.rails[s.rails].key.clone(),
            sample,
        }
    }

    /// The rail set of setup `si`.
    pub fn rails_of(&self, si: usize) -> &PlannedRails {
        &self.rails[self.setups[si].rails]
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
            rails_axis: if spec.rails.is_empty() {
                Vec::new()
            } else {
                self.rails.iter().map(|r| r.label.clone()).collect()
            },
            act_ber: spec.act_ber,
            act_fault_model: (int8
                && (spec.act_ber > 0.0
                    || spec.hw.voltage.scaled_rails.contains(&Rail::ActivationSram)
                    || self
                        .rails
                        .iter()
                        .any(|r| r.rails.contains(&Rail::ActivationSram))))
            .then_some(ACT_FAULT_MODEL),
        };
        expect.fingerprint = fingerprint(&input);
        Ok(Fingerprinted {
            config: serde_json::to_value(&input).unwrap_or(serde_json::Value::Null),
            expect,
        })
    }
}
