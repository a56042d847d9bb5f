//! One sweep point per CSV row. Every numeric column carries its unit in the header (`_v`, `_pj`, `_pct`,
//! `_us`); `ber` and `vdd_rel` are plain ratios (per-bit probability, V/V_min).
use serde::{Deserialize, Serialize};
use std::path::Path;

use super::ReportError;

/// One point of a sweep: a model stored in one SRAM profile at one supply voltage, averaged over the weight
/// mapping offsets and transient seeds ("samples").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRow {
    /// Model name: the manifest's, or `{source}-ptq{m}b` for post-training quantization.
    pub model: String,
    /// Model family (manifest `family`, else the model's name), docs/model-format.md#families.
    pub family: String,
    /// Training method from the manifest (`normal`, `rquant`, `clipping`, `randbet`, ...).
    pub method: String,
    /// Bits per stored weight (m).
    pub bits: u32,
    /// `trained` (a model trained at `bits`) or `ptq` (the family's float weights quantized at `bits`).
    pub weights_source: String,
    /// Fault source: an SRAM profile name (`chip1`) or `uniform` for `--ber`-style random bit errors.
    pub profile: String,
    /// Protection of the weight SRAM's words: `none`, `parity` or `secded` (docs/ecc.md).
    #[serde(default = "unprotected")]
    pub ecc: String,
    /// Weight-SRAM supply voltage in volts.
    pub vdd_v: f64,
    /// Supply voltage relative to the profile's V_min (1.0 = lowest voltage without failures).
    pub vdd_rel: f64,
    /// Measured bit error rate of the stored weights: flipped bits / (W·m), mean over samples.
    pub ber: f64,
    /// Mean number of flipped weight bits per sample.
    pub flipped_bits: f64,
    /// Clean test error of the quantized model (percent).
    pub clean_error_pct: f64,
    /// Test error with faulty weights (percent; clean-or-faulty mistake counts, docs/run-and-sweep.md#evaluation-protocol), mean over samples.
    pub faulty_error_pct: f64,
    /// Standard deviation of the faulty error over samples (percent points).
    pub faulty_error_std_pct: f64,
    /// Number of samples (offsets × seeds) averaged.
    pub samples: u32,
    /// Number of test images evaluated per sample.
    pub test_images: u32,
    /// Cycles per inference (one image) on the systolic array.
    pub cycles: u64,
    /// Latency per inference in microseconds at the configured clock.
    pub latency_us: f64,
    /// Total energy per inference in picojoules.
    pub energy_pj: f64,
    /// Weight-SRAM energy per inference (dynamic + leakage) in picojoules.
    pub weight_sram_energy_pj: f64,
    /// Saving of the total energy per inference against the nominal voltage (percent).
    pub energy_saving_pct: f64,
    /// Saving of the weight-SRAM energy per inference against the nominal voltage (percent): the quantity the
    /// paper's savings figures refer to (docs/energy.md#paper-energy-model).
    pub weight_sram_saving_pct: f64,
    /// ECC codewords holding weights whose errors were corrected, mean over samples (0 without ECC).
    #[serde(default)]
    pub ecc_corrected_words: f64,
    /// ECC codewords detected uncorrectable (the DUE policy applied), mean over samples.
    #[serde(default)]
    pub ecc_detected_words: f64,
    /// ECC codewords delivered wrong without a flag (undetected or miscorrected), mean over samples.
    #[serde(default)]
    pub ecc_silent_words: f64,
    /// Saving of the total energy against the same network with 8-bit weights at V_min (percent).
    pub energy_saving_vs_vmin_pct: f64,
    /// Saving of the weight-SRAM energy against the same network with 8-bit weights at V_min (percent): the
    /// paper's reference point (docs/run-and-sweep.md#energy-references).
    pub weight_sram_saving_vs_vmin_pct: f64,
    /// Bit error rate of the activation buffers (bits read back wrong / bits read over the images run, all
    /// samples pooled); 0 when they cannot fail (float datapath, rail not scaled, no `--act-ber`),
    /// docs/activation-faults.md.
    #[serde(default)]
    pub activation_ber: f64,
    /// The rails following the swept voltage, names joined by `+` in the config's order (`weight_sram`,
    /// `weight_sram+activation_sram`): the sweep's rail set, or the row's set of the rails axis (`sweep --rails`
    /// given more than once, docs/run-and-sweep.md#rails-axis).
    #[serde(default)]
    pub rails: String,
    /// Activation-buffer (ifmap + ofmap SRAM) energy per inference in picojoules.
    #[serde(default)]
    pub activation_sram_energy_pj: f64,
    /// Saving of the activation-buffer energy against the nominal voltage (every rail at its nominal voltage),
    /// percent: 0 unless `activation_sram` is among the row's rails.
    #[serde(default)]
    pub activation_sram_saving_pct: f64,
    /// Whether the rows of the sweep span more than one rail set: the row's curve ([`SweepRow::series`]) then
    /// names its rails. Not a CSV column ([`read_csv`] sets it from the `rails` column).
    #[serde(skip)]
    pub rails_axis: bool,
}

/// Writes rows to `path` as CSV (header from the field names) atomically: a temporary file in the same folder
/// is written and then renamed over `path`.
pub fn write_csv(path: &Path, rows: &[SweepRow]) -> Result<(), ReportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(|e| ReportError::Csv {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    }
    let bytes = w.into_inner().map_err(|e| ReportError::Csv {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    super::write_atomic(path, &bytes)
}

/// Reads rows written by [`write_csv`].
pub fn read_csv(path: &Path) -> Result<Vec<SweepRow>, ReportError> {
    let mut r = csv::Reader::from_path(path).map_err(|e| ReportError::Csv {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let mut rows: Vec<SweepRow> = r
        .deserialize()
        .map(|row| {
            row.map_err(|e| ReportError::Csv {
                path: path.to_path_buf(),
                msg: e.to_string(),
            })
        })
        .collect::<Result<_, _>>()?;
    mark_rails_axis(&mut rows);
    Ok(rows)
}

/// Sets [`SweepRow::rails_axis`] on every row when the rows span more than one rail set.
pub fn mark_rails_axis(rows: &mut [SweepRow]) {
    let axis = rows.iter().any(|r| r.rails != rows[0].rails);
    for r in rows.iter_mut() {
        r.rails_axis = axis;
    }
}

fn unprotected() -> String {
    "none".into()
}

impl SweepRow {
    /// The curve the row belongs to in the plots and the report: the model name, followed by ` + <ecc>` when
    /// its weights are ECC-protected, and by ` @ <rails>` when the sweep has a rails axis
    /// ([`SweepRow::rails_axis`]).
    pub fn series(&self) -> String {
        let s = self.series_without_rails();
        if self.rails_axis {
            format!("{s} @ {}", self.rails)
        } else {
            s
        }
    }

    /// [`SweepRow::series`] without the rails: the (model, ECC) the rails axis compares.
    pub fn series_without_rails(&self) -> String {
        if self.is_unprotected() {
            self.model.clone()
        } else {
            format!("{} + {}", self.model, self.ecc)
        }
    }

    /// The family as the plots group it: the family, followed by ` + <ecc>` when its weights are ECC-protected and
    /// by ` @ <rails>` when the sweep has a rails axis, so that a heat-map cell (bits, voltage) is never shared by
    /// two ECC schemes or two rail sets.
    pub fn family_curve(&self) -> String {
        let f = if self.is_unprotected() {
            self.family.clone()
        } else {
            format!("{} + {}", self.family, self.ecc)
        };
        if self.rails_axis {
            format!("{f} @ {}", self.rails)
        } else {
            f
        }
    }

    /// Whether the weights are stored without ECC.
    pub fn is_unprotected(&self) -> bool {
        self.ecc.is_empty() || self.ecc == "none"
    }
}

#[cfg(test)]
pub(crate) mod synthetic {
    use super::SweepRow;

    /// Synthetic rows for tests: error rises as the voltage drops, faster for less robust models; energy ∝ V².
    pub fn rows() -> Vec<SweepRow> {
        let models = [
            ("fmnist-normal-8b", "normal", 8, 3.0),
            ("fmnist-clip-8b", "clipping", 8, 1.0),
            ("fmnist-randbet-8b", "randbet", 8, 0.3),
            ("fmnist-randbet-4b", "randbet", 4, 0.4),
        ];
        let mut out = Vec::new();
        for profile in ["chip1", "chip2"] {
            for (name, method, bits, fragility) in models {
                let clean =
                    8.0 + 0.3 * (8 - bits) as f64 + if method == "normal" { 0.0 } else { 0.4 };
                for i in 0..=10 {
                    let vdd_v = 0.90 - 0.02 * i as f64;
                    let vdd_rel = vdd_v / 0.90;
                    let ber = if i == 0 { 0.0 } else { 1e-4 * 2f64.powi(i) };
                    let faulty = (clean + fragility * ber * 4000.0).min(90.0);
                    let e_nom = 1.0e6 * bits as f64 / 8.0;
                    let energy = 0.5 * e_nom + 0.5 * e_nom * vdd_rel * vdd_rel;
                    out.push(SweepRow {
                        model: name.into(),
                        family: name
                            .trim_end_matches(|c: char| c != '-')
                            .trim_end_matches('-')
                            .into(),
                        method: method.into(),
                        bits,
                        weights_source: "trained".into(),
                        profile: profile.into(),
                        ecc: "none".into(),
                        vdd_v,
                        vdd_rel,
                        ber,
                        flipped_bits: ber * 1e5,
                        clean_error_pct: clean,
                        faulty_error_pct: faulty,
                        faulty_error_std_pct: 0.1 * (faulty - clean),
                        samples: 4,
                        test_images: 1000,
                        cycles: 12345,
                        latency_us: 12.345,
                        energy_pj: energy,
                        weight_sram_energy_pj: 0.5 * e_nom * vdd_rel * vdd_rel,
                        energy_saving_pct: 100.0 * (1.0 - energy / e_nom),
                        weight_sram_saving_pct: 100.0 * (1.0 - vdd_rel * vdd_rel),
                        ecc_corrected_words: 0.0,
                        ecc_detected_words: 0.0,
                        ecc_silent_words: 0.0,
                        energy_saving_vs_vmin_pct: 100.0 * (1.0 - energy / 1.0e6),
                        weight_sram_saving_vs_vmin_pct: 100.0
                            * (1.0 - bits as f64 / 8.0 * vdd_rel * vdd_rel),
                        activation_ber: 0.0,
                        rails: "weight_sram".into(),
                        activation_sram_energy_pj: 0.1 * e_nom,
                        activation_sram_saving_pct: 0.0,
                        rails_axis: false,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_with_unit_headers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sweep.csv");
        let rows = synthetic::rows();
        write_csv(&path, &rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let header = text.lines().next().unwrap();
        for col in [
            "vdd_v",
            "ber",
            "faulty_error_pct",
            "energy_pj",
            "energy_saving_pct",
        ] {
            assert!(
                header.split(',').any(|h| h == col),
                "{col} missing in {header}"
            );
        }
        let back = read_csv(&path).unwrap();
        assert_eq!(back.len(), rows.len());
        for (a, b) in back.iter().zip(&rows) {
            assert_eq!(a.model, b.model);
            assert!((a.energy_pj - b.energy_pj).abs() <= 1e-9 * b.energy_pj.abs());
        }
    }
    /// A heat-map cell is (family curve, profile, bits, voltage): rows of two ECC schemes or two rail sets of the
    /// same family must land on different curves, or one cell would silently show either row.
    #[test]
    fn family_curves_separate_ecc_schemes_and_rail_sets() {
        let base = synthetic::rows().remove(0);
        let mut secded = base.clone();
        secded.ecc = "secded".into();
        assert_eq!(base.family_curve(), "fmnist-normal");
        assert_eq!(secded.family_curve(), "fmnist-normal + secded");
        let mut rows = vec![base.clone(), secded];
        let mut both = base.clone();
        both.rails = "weight_sram+activation_sram".into();
        rows.push(both);
        mark_rails_axis(&mut rows);
        let curves: Vec<String> = rows.iter().map(|r| r.family_curve()).collect();
        assert_eq!(
            curves,
            [
                "fmnist-normal @ weight_sram",
                "fmnist-normal + secded @ weight_sram",
                "fmnist-normal @ weight_sram+activation_sram",
            ]
        );
    }
}
