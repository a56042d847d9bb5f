//! The resumable sweep state (`sweep-state.json` in the output folder).
//!
//! After every completed unit of work (one model × profile × fault sample, all voltages) the whole state is
//! rewritten atomically (temporary file + rename), so a killed sweep loses at most the unit in progress and never
//! leaves a torn file. The state carries a SHA-256 fingerprint of the sweep configuration (grid, samples, data
//! limit, and the contents of the hardware config, model and profile files); resuming with a different
//! configuration fails with [`SweepError::Fingerprint`] instead of silently mixing results.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use super::SweepError;

/// File name of the state inside the output folder.
pub const STATE_FILE: &str = "sweep-state.json";
const FORMAT: &str = "accelsim-sweep-state";
const VERSION: u32 = 2;

/// Results of one unit: one (model, bits, profile, sample) at every voltage of the grid (grid order, descending).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitResult {
    pub model: String,
    /// Bits per stored weight of the model evaluated (the precision axis).
    pub bits: u32,
    pub profile: String,
    pub sample: u32,
    pub clean_error_pct: f64,
    /// Test images evaluated.
    pub test_images: u32,
    /// Flipped stored bits at each voltage.
    pub flipped_bits: Vec<u64>,
    /// Faulty (clean-or-faulty) test error at each voltage, percent.
    pub error_pct: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: String,
    version: u32,
    fingerprint: String,
    /// Human-readable echo of the configuration that was fingerprinted.
    config: serde_json::Value,
    units: Vec<UnitResult>,
}

/// SHA-256 (hex) of the canonical JSON of `config`.
pub fn fingerprint<T: Serialize>(config: &T) -> String {
    let bytes = serde_json::to_vec(config).unwrap_or_default();
    hex(&Sha256::digest(&bytes))
}

/// SHA-256 (hex) of a file's contents, for fingerprints that must change when an input file changes.
pub fn hash_file(path: &Path) -> Result<String, SweepError> {
    let bytes = std::fs::read(path).map_err(|source| SweepError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(hex(&Sha256::digest(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The state of a sweep in an output folder.
#[derive(Debug)]
pub struct SweepState {
    path: PathBuf,
    fingerprint: String,
    config: serde_json::Value,
    units: Vec<UnitResult>,
}

impl SweepState {
    /// Opens the state in `dir` for a sweep with configuration `config`: resumes when a state with the same
    /// fingerprint exists, starts empty when none exists (or `fresh` is set), and fails when the existing state
    /// belongs to another configuration.
    pub fn open<T: Serialize>(dir: &Path, config: &T, fresh: bool) -> Result<Self, SweepError> {
        let path = dir.join(STATE_FILE);
        let fp = fingerprint(config);
        let config = serde_json::to_value(config).unwrap_or(serde_json::Value::Null);
        let mut state = SweepState {
            path: path.clone(),
            fingerprint: fp.clone(),
            config,
            units: Vec::new(),
        };
        if fresh || !path.exists() {
            return Ok(state);
        }
        let text = std::fs::read_to_string(&path).map_err(|source| SweepError::Io {
            path: path.clone(),
            source,
        })?;
        let file: StateFile = serde_json::from_str(&text).map_err(|e| SweepError::State {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        if file.format != FORMAT || file.version != VERSION {
            return Err(SweepError::State {
                path,
                msg: format!(
                    "format `{}` version {} (expected `{FORMAT}` version {VERSION})",
                    file.format, file.version
                ),
            });
        }
        if file.fingerprint != fp {
            return Err(SweepError::Fingerprint {
                path,
                found: file.fingerprint,
                expected: fp,
            });
        }
        state.units = file.units;
        Ok(state)
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Units completed so far.
    pub fn units(&self) -> &[UnitResult] {
        &self.units
    }

    /// The completed unit for (model, bits, profile, sample), if any.
    pub fn get(&self, model: &str, bits: u32, profile: &str, sample: u32) -> Option<&UnitResult> {
        self.units.iter().find(|u| {
            u.model == model && u.bits == bits && u.profile == profile && u.sample == sample
        })
    }

    /// Records a completed unit and rewrites the state file atomically.
    pub fn record(&mut self, unit: UnitResult) -> Result<(), SweepError> {
        self.units.retain(|u| {
            !(u.model == unit.model
                && u.bits == unit.bits
                && u.profile == unit.profile
                && u.sample == unit.sample)
        });
        self.units.push(unit);
        self.save()
    }

    /// Writes the state file atomically.
    pub fn save(&self) -> Result<(), SweepError> {
        let file = StateFile {
            format: FORMAT.into(),
            version: VERSION,
            fingerprint: self.fingerprint.clone(),
            config: self.config.clone(),
            units: self.units.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| SweepError::State {
            path: self.path.clone(),
            msg: e.to_string(),
        })?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| SweepError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        crate::report::write_atomic(&self.path, &bytes).map_err(|e| match e {
            crate::report::ReportError::Io { path, source } => SweepError::Io { path, source },
            other => SweepError::Eval(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Cfg {
        grid: Vec<f64>,
        samples: u32,
    }

    fn unit(sample: u32) -> UnitResult {
        UnitResult {
            model: "m".into(),
            bits: 8,
            profile: "chip1".into(),
            sample,
            clean_error_pct: 9.0,
            test_images: 100,
            flipped_bits: vec![0, 3],
            error_pct: vec![9.0, 9.5],
        }
    }

    #[test]
    fn resume_same_config_and_refuse_other() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Cfg {
            grid: vec![0.9, 0.8],
            samples: 2,
        };
        let mut s = SweepState::open(dir.path(), &cfg, false).unwrap();
        assert!(s.units().is_empty());
        s.record(unit(0)).unwrap();
        s.record(unit(0)).unwrap(); // re-recording replaces
        let s2 = SweepState::open(dir.path(), &cfg, false).unwrap();
        assert_eq!(s2.units(), &[unit(0)]);
        assert!(
            s2.get("m", 8, "chip1", 0).is_some()
                && s2.get("m", 8, "chip1", 1).is_none()
                && s2.get("m", 4, "chip1", 0).is_none()
        );

        let other = Cfg {
            grid: vec![0.9, 0.8],
            samples: 3,
        };
        let err = SweepState::open(dir.path(), &other, false).unwrap_err();
        assert!(matches!(err, SweepError::Fingerprint { .. }), "{err}");
        assert!(err.to_string().contains("--fresh"));
        // --fresh starts over, and saving then replaces the old state.
        let mut s3 = SweepState::open(dir.path(), &other, true).unwrap();
        assert!(s3.units().is_empty());
        s3.record(unit(1)).unwrap();
        assert_eq!(
            SweepState::open(dir.path(), &other, false).unwrap().units(),
            &[unit(1)]
        );
    }

    #[test]
    fn torn_or_foreign_state_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(STATE_FILE),
            "{\"format\": \"accelsim-sweep-st",
        )
        .unwrap();
        let err = SweepState::open(dir.path(), &1u32, false).unwrap_err();
        assert!(matches!(err, SweepError::State { .. }), "{err}");
        assert!(SweepState::open(dir.path(), &1u32, true).is_ok());
    }

    #[test]
    fn fingerprint_depends_on_every_field() {
        let a = fingerprint(&Cfg {
            grid: vec![0.9],
            samples: 1,
        });
        assert_eq!(
            a,
            fingerprint(&Cfg {
                grid: vec![0.9],
                samples: 1
            })
        );
        assert_ne!(
            a,
            fingerprint(&Cfg {
                grid: vec![0.91],
                samples: 1
            })
        );
        assert_ne!(
            a,
            fingerprint(&Cfg {
                grid: vec![0.9],
                samples: 2
            })
        );
        assert_eq!(a.len(), 64);
    }
}
