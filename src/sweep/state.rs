//! The resumable sweep state: `sweep-state.json` for a whole sweep, `sweep-state.shard-K-of-N.json` for shard
//! K of N (docs/scale-out.md), in the output folder.
//!
//! After every completed unit (one model × fault source × fault sample, all voltages; [`UnitKey`]) the whole
//! state is rewritten atomically (temporary file + rename, [`crate::fsutil::write_atomic`]), so a killed sweep
//! loses at most the unit in progress and never leaves a torn file. Floats are written by `serde_json` in their
//! shortest round-trip form and read back with its `float_roundtrip` parser, so a resumed unit has the very
//! bits it was computed with (a test checks random `f64`s).
//!
//! A state carries the SHA-256 fingerprint of the sweep's configuration ([`super::plan::Plan::fingerprint`]);
//! resuming with another configuration fails with [`SweepError::Fingerprint`]. Everything else is checked on
//! load too ([`Expect`]): every unit must belong to the sweep (and to the file's shard), appear once, hold one
//! value per grid voltage, finite error percentages in `0..=100`, the test-split size of its model and at most
//! `W·m` flipped bits. A state that fails any check is refused in one line naming the file ([`SweepError::State`]),
//! never used and never a panic.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::unit::{Shard, UnitKey};
use super::SweepError;

/// File name of the state of a whole (unsharded) sweep inside the output folder.
pub const STATE_FILE: &str = "sweep-state.json";
const FORMAT: &str = "accelsim-sweep-state";
const VERSION: u32 = 2;

/// Results of one unit at every voltage of the grid (grid order, descending).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitResult {
    pub key: UnitKey,
    /// Display names (manifest name, profile name), for people reading the file; checked against the key.
    pub model_name: String,
    pub faults_name: String,
    pub clean_error_pct: f64,
    /// Test images evaluated.
    pub test_images: u32,
    /// Flipped stored bits at each voltage.
    pub flipped_bits: Vec<u64>,
    /// Faulty (clean-or-faulty) test error at each voltage, percent.
    pub error_pct: Vec<f64>,
    /// ECC codeword outcomes at each voltage (corrected, detected, silent words); empty without ECC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ecc_words: Vec<[u64; 3]>,
    /// Activation bits (read, read back wrong) at each voltage over the images run, when the activation
    /// buffers can fail (integer datapath, docs/activation-faults.md); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activation_bits: Vec<[u64; 2]>,
}

/// The on-disk form of a state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    pub format: String,
    pub version: u32,
    pub fingerprint: String,
    pub shard: Shard,
    /// The configuration flags of the sweep (`accelsim sweep <invocation>` rebuilds it; `sweep merge` and
    /// `sweep status` use it).
    pub invocation: Vec<String>,
    /// Human-readable echo of the configuration that was fingerprinted.
    pub config: serde_json::Value,
    pub units: Vec<UnitResult>,
}

/// State file name of `shard`.
pub fn state_file_name(shard: Shard) -> String {
    if shard.is_whole() {
        STATE_FILE.to_string()
    } else {
        format!("sweep-state.shard-{}-of-{}.json", shard.index, shard.count)
    }
}

/// The shard a state file name belongs to (`None` for other files).
pub fn shard_of_file_name(name: &str) -> Option<Shard> {
    if name == STATE_FILE {
        return Some(Shard::WHOLE);
    }
    let rest = name
        .strip_prefix("sweep-state.shard-")?
        .strip_suffix(".json")?;
    let (k, n) = rest.split_once("-of-")?;
    let s = Shard {
        index: k.parse().ok()?,
        count: n.parse().ok()?,
    };
    (s.count > 1 && s.index < s.count && state_file_name(s) == name).then_some(s)
}

/// Every state file in `dir`, sorted by (shard count, shard index).
pub fn list_state_files(dir: &Path) -> Result<Vec<(Shard, PathBuf)>, SweepError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SweepError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(s) = shard_of_file_name(&name) {
            out.push((s, e.path()));
        }
    }
    out.sort_by_key(|(s, _)| (s.count, s.index));
    Ok(out)
}

/// SHA-256 (hex) of the canonical JSON of `config`.
pub fn fingerprint<T: Serialize>(config: &T) -> String {
    let bytes = serde_json::to_vec(config).unwrap_or_default();
    super::unit::hex(&Sha256::digest(&bytes))
}

/// SHA-256 (hex) of a file's contents, for fingerprints that must change when an input file changes.
pub fn hash_file(path: &Path) -> Result<String, SweepError> {
    let bytes = std::fs::read(path).map_err(|source| SweepError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(super::unit::hex(&Sha256::digest(&bytes)))
}

/// What a valid state of one sweep looks like.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub fingerprint: String,
    /// Every unit of the sweep, canonical order.
    pub units: Vec<UnitKey>,
    pub grid_len: usize,
    /// Per model key: display name, test images, most flipped bits (W·m).
    pub models: HashMap<String, (String, u32, u64)>,
    /// Per fault key: display name.
    pub faults: HashMap<String, String>,
}

impl Expect {
    /// The units of `shard`.
    pub fn shard_units(&self, shard: Shard) -> &[UnitKey] {
        &self.units[shard.range(self.units.len())]
    }
}

impl StateFile {
    /// Reads and parses a state file (format and version checked; contents not yet validated).
    pub fn read(path: &Path) -> Result<StateFile, SweepError> {
        let bad = |msg: String| SweepError::State {
            path: path.to_path_buf(),
            msg,
        };
        let text = std::fs::read_to_string(path).map_err(|source| SweepError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let head: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not JSON ({e})")))?;
        let (format, version) = (
            head.get("format").and_then(|v| v.as_str()).unwrap_or(""),
            head.get("version").and_then(|v| v.as_u64()).unwrap_or(0),
        );
        if format != FORMAT || version != VERSION as u64 {
            return Err(bad(format!(
                "format `{format}` version {version}; allowed `{FORMAT}` version {VERSION} (written by another \
                 accelsim version)"
            )));
        }
        drop(head);
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))
    }

    /// The fingerprint of a state file from its first 4 KiB (the field comes third), without reading or parsing
    /// the units: a shard checks its siblings' files with this at start, so N shards read O(N) bytes each, not
    /// O(N · state size). `None` when the file cannot be read or does not start like a state file.
    pub fn peek_fingerprint(path: &Path) -> Option<String> {
        use std::io::Read;
        let mut head = vec![0u8; 4096];
        let mut f = std::fs::File::open(path).ok()?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(_) => return None,
            }
        }
        let text = std::str::from_utf8(&head[..n]).ok().or_else(|| {
            // Cut inside a multi-byte character: keep the valid prefix.
            std::str::from_utf8(&head[..n.saturating_sub(3)]).ok()
        })?;
        if !text.contains(FORMAT) {
            return None;
        }
        let rest = &text[text.find("\"fingerprint\"")? + 13..];
        let rest = rest
            .trim_start()
            .strip_prefix(':')?
            .trim_start()
            .strip_prefix('"')?;
        let fp = &rest[..rest.find('"')?];
        (fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit())).then(|| fp.to_string())
    }

    /// Checks everything but the fingerprint against `expect` (see the module docs). `path` names the file in
    /// the error.
    pub fn validate(&self, path: &Path, expect: &Expect) -> Result<(), SweepError> {
        let bad = |msg: String| SweepError::State {
            path: path.to_path_buf(),
            msg,
        };
        let file_shard = path
            .file_name()
            .and_then(|n| shard_of_file_name(&n.to_string_lossy()));
        if file_shard.is_some_and(|s| s != self.shard) {
            return Err(bad(format!(
                "it says shard {} but its name is that of another shard",
                self.shard
            )));
        }
        let mine: HashSet<&UnitKey> = expect.shard_units(self.shard).iter().collect();
        let mut seen: HashSet<&UnitKey> = HashSet::new();
        let pct_ok = |x: f64| x.is_finite() && (0.0..=100.0).contains(&x);
        for u in &self.units {
            let k = &u.key;
            let who = format!(
                "unit {} ({} / {} / sample {})",
                k, u.model_name, u.faults_name, k.sample
            );
            if !mine.contains(k) {
                return Err(bad(if self.shard.is_whole() {
                    format!("{who} is not part of this sweep")
                } else {
                    format!("{who} is not part of shard {} of this sweep", self.shard)
                }));
            }
            if !seen.insert(k) {
                return Err(bad(format!("{who} appears twice")));
            }
            let Some((mname, images, max_bits)) = expect.models.get(&k.model) else {
                return Err(bad(format!("{who} is not part of this sweep")));
            };
            if &u.model_name != mname || expect.faults.get(&k.faults) != Some(&u.faults_name) {
                return Err(bad(format!(
                    "{who}: names do not match its key (model `{mname}`, faults `{}`)",
                    expect.faults.get(&k.faults).map_or("?", |s| s.as_str())
                )));
            }
            if u.error_pct.len() != expect.grid_len || u.flipped_bits.len() != expect.grid_len {
                return Err(bad(format!(
                    "{who}: {} error and {} flipped-bit values for a grid of {} voltages",
                    u.error_pct.len(),
                    u.flipped_bits.len(),
                    expect.grid_len
                )));
            }
            if !u.activation_bits.is_empty()
                && (u.activation_bits.len() != expect.grid_len
                    || u.activation_bits.iter().any(|[read, wrong]| wrong > read))
            {
                return Err(bad(format!(
                    "{who}: {} activation bit counts for a grid of {} voltages, or more bits wrong than read",
                    u.activation_bits.len(),
                    expect.grid_len
                )));
            }
            let protected = k.ecc != crate::config::EccScheme::None;
            if u.ecc_words.len() != if protected { expect.grid_len } else { 0 } {
                return Err(bad(format!(
                    "{who}: {} ECC count triples for a grid of {} voltages ({})",
                    u.ecc_words.len(),
                    expect.grid_len,
                    if protected {
                        "one per voltage"
                    } else {
                        "none without ECC"
                    }
                )));
            }
            if let Some(x) = std::iter::once(u.clean_error_pct)
                .chain(u.error_pct.iter().copied())
                .find(|&x| !pct_ok(x))
            {
                return Err(bad(format!(
                    "{who}: error {x} % is out of range; allowed 0..=100"
                )));
            }
            if u.test_images != *images {
                return Err(bad(format!(
                    "{who}: {} test images, but this sweep evaluates {images}",
                    u.test_images
                )));
            }
            if let Some(b) = u.flipped_bits.iter().find(|&&b| b > *max_bits) {
                return Err(bad(format!(
                    "{who}: {b} flipped bits; allowed 0..={max_bits} (W·m of the model)"
                )));
            }
        }
        Ok(())
    }
}

/// The state of one shard (or of the whole sweep) being computed.
#[derive(Debug)]
pub struct SweepState {
    path: PathBuf,
    file: StateFile,
    units: BTreeMap<UnitKey, UnitResult>,
}

impl SweepState {
    /// Opens the state of `shard` in `dir`: resumes when a valid state with the same fingerprint exists, starts
    /// empty when none exists (or `fresh` is set), fails when the existing state belongs to another
    /// configuration or does not pass [`StateFile::validate`].
    pub fn open(
        dir: &Path,
        shard: Shard,
        expect: &Expect,
        config: serde_json::Value,
        invocation: Vec<String>,
        fresh: bool,
    ) -> Result<Self, SweepError> {
        let path = dir.join(state_file_name(shard));
        let mut state = SweepState {
            path: path.clone(),
            file: StateFile {
                format: FORMAT.into(),
                version: VERSION,
                fingerprint: expect.fingerprint.clone(),
                shard,
                invocation,
                config,
                units: Vec::new(),
            },
            units: BTreeMap::new(),
        };
        if fresh || !path.exists() {
            return Ok(state);
        }
        let file = StateFile::read(&path)?;
        if file.fingerprint != expect.fingerprint {
            return Err(SweepError::Fingerprint {
                path,
                found: file.fingerprint,
                expected: expect.fingerprint.clone(),
            });
        }
        file.validate(&path, expect)?;
        state.units = file.units.into_iter().map(|u| (u.key.clone(), u)).collect();
        Ok(state)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fingerprint(&self) -> &str {
        &self.file.fingerprint
    }

    /// Units completed so far, in key order.
    pub fn units(&self) -> impl Iterator<Item = &UnitResult> {
        self.units.values()
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// The completed unit `key`, if any.
    pub fn get(&self, key: &UnitKey) -> Option<&UnitResult> {
        self.units.get(key)
    }

    /// Records a completed unit and rewrites the state file atomically.
    pub fn record(&mut self, unit: UnitResult) -> Result<(), SweepError> {
        self.units.insert(unit.key.clone(), unit);
        self.save()
    }

    /// Writes the state file atomically (units in key order, so equal states are equal files).
    pub fn save(&mut self) -> Result<(), SweepError> {
        self.file.units = self.units.values().cloned().collect();
        let bytes = serde_json::to_vec_pretty(&self.file).map_err(|e| SweepError::State {
            path: self.path.clone(),
            msg: e.to_string(),
        });
        self.file.units.clear();
        crate::fsutil::write_atomic(&self.path, &bytes?).map_err(|source| SweepError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(sample: u32) -> UnitKey {
        UnitKey {
            model: "m0".into(),
            bits: 8,
            faults: "f0".into(),
            ecc: Default::default(),
            rails: String::new(),
            sample,
        }
    }

    fn expect(samples: u32, fp: &str) -> Expect {
        Expect {
            fingerprint: fp.into(),
            units: (0..samples).map(key).collect(),
            grid_len: 2,
            models: [("m0".to_string(), ("m".to_string(), 100, 80))].into(),
            faults: [("f0".to_string(), "chip1".to_string())].into(),
        }
    }

    fn unit(sample: u32) -> UnitResult {
        UnitResult {
            key: key(sample),
            model_name: "m".into(),
            faults_name: "chip1".into(),
            clean_error_pct: 9.0,
            test_images: 100,
            flipped_bits: vec![0, 3],
            error_pct: vec![9.0, 9.5],
            ecc_words: vec![],
            activation_bits: Vec::new(),
        }
    }

    #[test]
    fn ecc_units_carry_one_count_triple_per_voltage_and_unprotected_ones_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = expect(1, "fp");
        let mut k = key(0);
        k.ecc = crate::config::EccScheme::Secded;
        e.units.push(k.clone());
        let mut s = open(dir.path(), &e, false).unwrap();
        s.record(unit(0)).unwrap();
        let mut u = unit(0);
        u.key = k;
        u.ecc_words = vec![[0, 0, 0], [3, 1, 0]];
        s.record(u.clone()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        // The unprotected unit is written exactly as before the ECC axis (no `ecc`, no `ecc_words`).
        assert_eq!(text.matches("\"ecc\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"ecc_words\"").count(), 1, "{text}");
        let back = open(dir.path(), &e, false).unwrap();
        assert_eq!(back.get(&u.key), Some(&u));
        // A protected unit without one triple per voltage is refused.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let i = v["units"]
            .as_array()
            .unwrap()
            .iter()
            .position(|x| x["key"].get("ecc").is_some())
            .unwrap();
        v["units"][i]["ecc_words"].as_array_mut().unwrap().pop();
        std::fs::write(dir.path().join(STATE_FILE), v.to_string()).unwrap();
        let err = open(dir.path(), &e, false).unwrap_err().to_string();
        assert!(err.contains("ECC count triples"), "{err}");
    }

    fn open(dir: &Path, e: &Expect, fresh: bool) -> Result<SweepState, SweepError> {
        SweepState::open(dir, Shard::WHOLE, e, serde_json::Value::Null, vec![], fresh)
    }

    #[test]
    fn resume_same_config_and_refuse_other() {
        let dir = tempfile::tempdir().unwrap();
        let e = expect(2, "a");
        let mut s = open(dir.path(), &e, false).unwrap();
        assert!(s.is_empty());
        s.record(unit(0)).unwrap();
        s.record(unit(0)).unwrap(); // re-recording replaces
        let s2 = open(dir.path(), &e, false).unwrap();
        assert_eq!(s2.units().cloned().collect::<Vec<_>>(), vec![unit(0)]);
        assert!(s2.get(&key(0)).is_some() && s2.get(&key(1)).is_none());

        let other = expect(2, "b");
        let err = open(dir.path(), &other, false).unwrap_err();
        assert!(matches!(err, SweepError::Fingerprint { .. }), "{err}");
        assert!(err.to_string().contains("--fresh"));
        // --fresh starts over, and saving then replaces the old state.
        let mut s3 = open(dir.path(), &other, true).unwrap();
        assert!(s3.is_empty());
        s3.record(unit(1)).unwrap();
        assert_eq!(
            open(dir.path(), &other, false)
                .unwrap()
                .units()
                .cloned()
                .collect::<Vec<_>>(),
            vec![unit(1)]
        );
    }

    #[test]
    fn torn_or_foreign_state_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = expect(1, "a");
        for text in [
            "{\"format\": \"accelsim-sweep-st",
            "{\"format\": \"accelsim-sweep-state\", \"version\": 1, \"units\": []}",
            "[]",
        ] {
            std::fs::write(dir.path().join(STATE_FILE), text).unwrap();
            let err = open(dir.path(), &e, false).unwrap_err();
            assert!(matches!(err, SweepError::State { .. }), "{err}");
            assert!(
                err.to_string().contains("--fresh") && err.to_string().contains(STATE_FILE),
                "{err}"
            );
        }
        assert!(open(dir.path(), &e, true).is_ok());
    }

    /// Every kind of edit a user or a torn copy could make is refused with a message naming what is wrong.
    #[test]
    fn edited_states_are_refused_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let e = expect(2, "a");
        let mut s = open(dir.path(), &e, false).unwrap();
        s.record(unit(0)).unwrap();
        s.record(unit(1)).unwrap();
        let path = dir.path().join(STATE_FILE);
        let good: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        type Edit = fn(&mut serde_json::Value);
        let cases: Vec<(Edit, &str)> = vec![
            (
                |v| {
                    v["units"][0]["error_pct"].as_array_mut().unwrap().pop();
                },
                "grid of 2",
            ),
            (
                |v| {
                    v["units"][1]["flipped_bits"] = serde_json::json!([0]);
                },
                "grid of 2",
            ),
            (
                |v| {
                    v["units"][0]["error_pct"][1] = serde_json::json!(100.5);
                },
                "0..=100",
            ),
            (
                |v| {
                    v["units"][0]["clean_error_pct"] = serde_json::json!(-1.0);
                },
                "0..=100",
            ),
            (
                |v| {
                    v["units"][0]["flipped_bits"][1] = serde_json::json!(81);
                },
                "0..=80",
            ),
            (
                |v| {
                    v["units"][0]["test_images"] = serde_json::json!(99);
                },
                "evaluates 100",
            ),
            (
                |v| {
                    v["units"][1]["key"]["sample"] = serde_json::json!(0);
                },
                "twice",
            ),
            (
                |v| {
                    v["units"][1]["key"]["sample"] = serde_json::json!(7);
                },
                "not part of this sweep",
            ),
            (
                |v| {
                    v["units"][1]["key"]["model"] = serde_json::json!("zz");
                },
                "not part of this sweep",
            ),
            (
                |v| {
                    v["units"][1]["model_name"] = serde_json::json!("other");
                },
                "do not match",
            ),
            (
                |v| {
                    v["units"][0]["sample"] = serde_json::json!(3);
                },
                "unknown field",
            ),
            (
                |v| {
                    v["shard"] = serde_json::json!({"index": 1, "count": 2});
                },
                "shard 1/2",
            ),
        ];
        for (edit, needle) in cases {
            let mut v = good.clone();
            edit(&mut v);
            std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
            let err = open(dir.path(), &e, false).unwrap_err().to_string();
            assert!(err.contains(needle), "`{needle}` not in: {err}");
            assert!(err.contains(STATE_FILE) && err.contains("--fresh"), "{err}");
            assert_eq!(err.lines().count(), 1);
        }
        // A NaN cannot even be written as JSON; a string where a number belongs is a parse error.
        let mut v = good.clone();
        v["units"][0]["error_pct"][0] = serde_json::json!("NaN");
        std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
        assert!(matches!(
            open(dir.path(), &e, false),
            Err(SweepError::State { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The state keeps every bit of every float (resumed sweeps must print byte-identical CSVs).
        #[test]
        fn floats_round_trip_exactly(bits in proptest::collection::vec(any::<u64>(), 2)) {
            let dir = tempfile::tempdir().unwrap();
            let e = expect(1, "a");
            let mut u = unit(0);
            u.error_pct = bits.iter().map(|b| (*b >> 11) as f64 / (1u64 << 53) as f64 * 100.0).collect();
            u.clean_error_pct = u.error_pct[0] / 3.0;
            let mut s = open(dir.path(), &e, false).unwrap();
            s.record(u.clone()).unwrap();
            let back = open(dir.path(), &e, false).unwrap();
            let got = back.get(&key(0)).unwrap();
            for (a, b) in got.error_pct.iter().zip(&u.error_pct) {
                prop_assert_eq!(a.to_bits(), b.to_bits());
            }
            prop_assert_eq!(got.clean_error_pct.to_bits(), u.clean_error_pct.to_bits());
        }
    }

    #[test]
    fn fingerprint_is_peeked_from_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let fp = "ab".repeat(32);
        let mut s = open(dir.path(), &expect(3, &fp), false).unwrap();
        for i in 0..3 {
            s.record(unit(i)).unwrap();
        }
        let path = dir.path().join(STATE_FILE);
        assert_eq!(StateFile::peek_fingerprint(&path), Some(fp.clone()));
        assert_eq!(StateFile::read(&path).unwrap().fingerprint, fp);
        std::fs::write(&path, "{\"format\": \"other\", \"fingerprint\": \"x\"}").unwrap();
        assert_eq!(StateFile::peek_fingerprint(&path), None);
        assert_eq!(
            StateFile::peek_fingerprint(&dir.path().join("missing.json")),
            None
        );
    }

    #[test]
    fn shard_file_names_round_trip() {
        for s in [
            Shard::WHOLE,
            Shard { index: 0, count: 2 },
            Shard {
                index: 41,
                count: 100,
            },
        ] {
            assert_eq!(shard_of_file_name(&state_file_name(s)), Some(s));
        }
        for bad in [
            "sweep-state.shard-2-of-2.json",
            "sweep-state.shard-01-of-2.json",
            "sweep.csv",
            "sweep-state.shard-0-of-1.json",
        ] {
            assert_eq!(shard_of_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn fingerprint_depends_on_every_field() {
        #[derive(Serialize)]
        struct Cfg {
            grid: Vec<f64>,
            samples: u32,
        }
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
