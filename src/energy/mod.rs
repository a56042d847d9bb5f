//! Energy per inference from the systolic model's access counts, at a chosen supply voltage
//! (docs/energy.md, which gives the paper's law and the published figures).
//!
//! Components of one inference (`stats` from [`crate::systolic::simulate_network`]):
//! * weight-SRAM dynamic: `(word_reads · E_read + word_writes · E_write) · s(V)`, energies given at `V_min`,
//!   `s(V) = (V/V_min)²` (the paper's Spectre result, docs/energy.md) or a configured table; writes happen only
//!   when weights must be reloaded because the model does not fit;
//! * weight-SRAM leakage: `bits · P_bit(V_min) · exp((V − V_min)/v_e) · latency`, over the arrays that hold
//!   weights (unused arrays assumed power-gated); `v_e = 0.28 V / ln 4.8 ≈ 0.1785 V` reproduces Yang & Murmann's
//!   28 nm measurement of 4.8× lower leakage for −280 mV (docs/energy.md#published-figures);
//! * activation buffers: `(input reads + output writes + partial-sum reads) · act_bytes · E_byte · (V/V_nom)²`
//!   (`E_byte` given at the SRAM nominal voltage `nominal_v`);
//! * MACs: `macs · E_mac(m_w, m_a) · (V/V_logic)²`, with `E_mac = mac_pj · (s · m_w·m_a/64 + 1 − s)` (multiplier
//!   ∝ operand widths, 32-bit accumulator fixed; `s` = `mac_multiplier_share`, docs/energy.md#precision);
//! * DRAM: `bytes · 8 · E_bit` (never voltage-scaled).
//!
//! Only the rails in `[voltage] scaled_rails` follow `vdd_v`; the others stay at their nominal voltage
//! (`nominal_v` for the SRAM rails, `logic_v` for the logic). The baseline that savings are measured against
//! runs every rail at its own nominal voltage, scaled or not. With dense packing 4-bit weights halve the
//! weight-SRAM words, hence both the word reads and the leakage, because the cycle model packs `64 / bits`
//! weights per word (byte packing keeps 8 per word).
//!
//! ```
//! use accelsim::config::HwConfig;
//! use accelsim::energy::EnergyModel;
//! use accelsim::systolic::{simulate_network, BufferParams, Layer};
//! let hw = HwConfig::load_named("14nm_sram").unwrap();
//! let layers = vec![Layer::linear("fc", 1, 1568, 64).unwrap()];
//! let array = hw.systolic.array_params().unwrap();
//! let stats = simulate_network(&layers, &array, &BufferParams::from_hw(&hw).unwrap(), 8).unwrap();
//! let model = EnergyModel::new(&hw).unwrap();
//! let at_vmin = model.energy_per_inference(&stats, hw.voltage.vmin_v).unwrap();
//! let nominal = model.energy_per_inference(&stats, hw.voltage.nominal_v).unwrap();
//! assert!(at_vmin.weight_sram_dynamic_pj < nominal.weight_sram_dynamic_pj);
//! assert!(model.savings_pct(&stats, 0.85).unwrap() > 0.0);
//! //! ```
use crate::config::energy::{EnergyConfig, MacScaling, SramScaling};
use crate::config::systolic::SystolicConfig;
use crate::systolic::{NetworkStats, PSUM_BITS};
use serde::Serialize;

pub use crate::config::Rail;
use crate::config::{HwConfig, PartialSumStore, VoltageConfig};

/// Errors of the energy model. Messages name the parameter and the allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnergyError {
    #[error("{0}")]
    Config(String),
    #[error("vdd_v = {vdd_v} V is out of range (allowed {min_v}..={max_v} V{why})")]
    VoltageOutOfRange {
        vdd_v: f64,
        min_v: f64,
        max_v: f64,
        why: &'static str,
    },
}

/// Energy of one inference by component, pJ, at `vdd_v`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EnergyBreakdown {
    pub vdd_v: f64,
    /// Word reads and writes of the weight SRAM, check bits included.
    pub weight_sram_dynamic_pj: f64,
    /// Leakage of the weight SRAM's powered arrays, check-bit cells included.
    pub weight_sram_leakage_pj: f64,
    /// ECC decoder (per word read) and encoder (per word written) logic; 0 without ECC.
    pub ecc_logic_pj: f64,
    pub act_sram_pj: f64,
    /// The partial sums' accesses when they live in accumulators (`[activation_sram] partial_sums =
    /// "accumulators"`, at `nominal_v`, never scaled); 0 when they live in the ofmap buffer (in `act_sram_pj`).
    pub accumulator_pj: f64,
    pub mac_pj: f64,
    pub dram_pj: f64,
    pub total_pj: f64,
}

impl EnergyBreakdown {
    /// The weight SRAM's share: dynamic + leakage + ECC logic (the quantity the paper's savings figures measure,
    /// plus every ECC cost).
    pub fn weight_sram_total_pj(&self) -> f64 {
        self.weight_sram_dynamic_pj + self.weight_sram_leakage_pj + self.ecc_logic_pj
    }
}

/// One row of the auditable per-run energy table: what a single operation costs at the chosen voltage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnergyTableRow {
    pub component: &'static str,
    /// Per-operation energy (pJ) or leakage power per bit (pW) at `voltage_v`, see `unit`.
    pub value: f64,
    pub unit: &'static str,
    /// Rail voltage (none for DRAM, which is never scaled).
    pub voltage_v: Option<f64>,
    pub scaling: &'static str,
}

/// What ECC on the weight SRAM adds to each access (docs/ecc.md, "Costs").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EccCost {
    /// Bits read or written per word access, check bits included, over the data bits: `n / k`.
    pub access_scale: f64,
    /// Physical cells per array over data cells per array (`n / k`: the check-bit columns leak too).
    pub cell_scale: f64,
    /// Decoder energy per word read at the logic voltage, pJ: `codewords per word · decoder gates · gate energy`.
    pub decode_pj_per_word: f64,
    /// Encoder energy per word written at the logic voltage, pJ: `codewords per word · encoder gates · gate energy`.
    pub encode_pj_per_word: f64,
}

impl EccCost {
    /// The cost of `w`'s ECC (`None` for `ecc = "none"`) with gates of `gate_energy_fj` each.
    pub fn from_config(
        w: &crate::config::WeightSramConfig,
        gate_energy_fj: f64,
    ) -> Option<EccCost> {
        let code = crate::ecc::code_for(w.ecc, w.ecc_data_bits)?;
        let per_word = (w.word_bits / code.k()) as f64;
        let ratio = code.n() as f64 / code.k() as f64;
        Some(EccCost {
            access_scale: ratio,
            cell_scale: ratio,
            decode_pj_per_word: per_word * code.decoder_gates() as f64 * gate_energy_fj * 1e-3,
            encode_pj_per_word: per_word * code.encoder_gates() as f64 * gate_energy_fj * 1e-3,
        })
    }
}

/// Voltage-dependent energy model (see the module docs). Built once per hardware config.
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyModel {
    cfg: EnergyConfig,
    volts: VoltageConfig,
    act_bits: u32,
    weight_array_bits: u64,
    ecc: Option<EccCost>,
    /// Where partial sums live between row folds (docs/energy.md, "Activation rail").
    partial_sums: PartialSumStore,
}

/// Widest supply voltage accepted, V.
pub const MAX_VDD_V: f64 = 5.0;

impl EnergyModel {
    /// Builds the model from a (validated) hardware config.
    pub fn new(hw: &HwConfig) -> Result<Self, EnergyError> {
        Ok(Self::from_parts(
            &hw.energy,
            &hw.systolic,
            &hw.voltage,
            hw.weight_sram.cells_per_array(),
        )?
        .with_ecc(EccCost::from_config(
            &hw.weight_sram,
            hw.energy.ecc_gate_energy_fj,
        ))
        .with_partial_sums(hw.activation_sram.partial_sums))
    }

    /// The same model with the partial sums stored in `store` (default: the ofmap buffer).
    pub fn with_partial_sums(mut self, store: PartialSumStore) -> Self {
        self.partial_sums = store;
        self
    }

    /// The same model with the costs of ECC on the weight SRAM (`None`: unprotected).
    pub fn with_ecc(mut self, ecc: Option<EccCost>) -> Self {
        self.ecc = ecc;
        self
    }

    /// The ECC costs in force, if any.
    pub fn ecc(&self) -> Option<&EccCost> {
        self.ecc.as_ref()
    }

    /// Builds the model from the `[energy]`, `[systolic]` and `[voltage]` sections and the bit cells per
    /// weight-SRAM array (`rows · columns`, 32768 for 512×64).
    pub fn from_parts(
        energy: &EnergyConfig,
        systolic: &SystolicConfig,
        volts: &VoltageConfig,
        weight_array_bits: u64,
    ) -> Result<Self, EnergyError> {
        energy.validate().map_err(EnergyError::Config)?;
        systolic.validate().map_err(EnergyError::Config)?;
        for (key, v) in [
            ("vmin_v", volts.vmin_v),
            ("nominal_v", volts.nominal_v),
            ("logic_v", volts.logic_v),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= MAX_VDD_V) {
                return Err(EnergyError::Config(format!(
                    "[voltage] {key} = {v} is out of range (allowed (0, {MAX_VDD_V}] V)"
                )));
            }
        }
        let model = EnergyModel {
            cfg: energy.clone(),
            volts: volts.clone(),
            act_bits: systolic.act_bits,
            weight_array_bits,
            ecc: None,
            partial_sums: PartialSumStore::Ofmap,
        };
        // The nominal voltage must be inside a configured table, or savings could not be computed.
        model.weight_sram_scale(model.volts.nominal_v)?;
        Ok(model)
    }

    pub fn voltages(&self) -> &VoltageConfig {
        &self.volts
    }

    /// Voltage a rail runs at when the swept supply is `vdd_v`: `vdd_v` if listed in `scaled_rails`, else
    /// `nominal_v` (SRAM rails) or `logic_v` (logic), as `HwConfig::rail_v`.
    pub fn rail_voltage(&self, rail: Rail, vdd_v: f64) -> f64 {
        if self.volts.scaled_rails.contains(&rail) {
            vdd_v
        } else if rail == Rail::Logic {
            self.volts.logic_v
        } else {
            self.volts.nominal_v
        }
    }

    /// Weight-SRAM dynamic energy per access at `v` relative to `V_min`: `(v/V_min)²` or the table.
    pub fn weight_sram_scale(&self, v: f64) -> Result<f64, EnergyError> {
        let x = v / self.volts.vmin_v;
        match self.cfg.weight_sram_scaling {
            SramScaling::Quadratic => Ok(x * x),
            SramScaling::Table => {
                let t = &self.cfg.weight_sram_table;
                let (lo, hi) = (t[0][0], t[t.len() - 1][0]);
                if !(lo..=hi).contains(&x) {
                    return Err(EnergyError::VoltageOutOfRange {
                        vdd_v: v,
                        min_v: lo * self.volts.vmin_v,
                        max_v: hi * self.volts.vmin_v,
                        why: ", the range of [energy] weight_sram_table",
                    });
                }
                let i = t.partition_point(|p| p[0] < x).clamp(1, t.len() - 1);
                let (a, b) = (t[i - 1], t[i]);
                Ok(a[1] + (b[1] - a[1]) * (x - a[0]) / (b[0] - a[0]))
            }
        }
    }

    /// Energy of one MAC at the logic voltage for `weight_bits`-bit weights and the configured activation width:
    /// `mac_pj · (s · m_w·m_a/(8·8) + 1 − s)` (`operand_widths`) or `mac_pj` (`constant`), docs/energy.md#precision.
    pub fn mac_pj_at_width(&self, weight_bits: u32) -> f64 {
        let c = &self.cfg;
        match c.mac_scaling {
            MacScaling::Constant => c.mac_pj,
            MacScaling::OperandWidths => {
                let s = c.mac_multiplier_share;
                let widths = weight_bits as f64 * self.act_bits as f64 / 64.0;
                // s·w + (1 − s), written so that w = 1 (8 × 8 bits) gives mac_pj exactly.
                c.mac_pj * (1.0 + s * (widths - 1.0))
            }
        }
    }

    /// Leakage power relative to `V_min`: `exp((v − V_min) / leakage_v_per_efold)`.
    pub fn leakage_scale(&self, v: f64) -> f64 {
        ((v - self.volts.vmin_v) / self.cfg.leakage_v_per_efold).exp()
    }

    fn check_vdd(vdd_v: f64) -> Result<(), EnergyError> {
        if vdd_v.is_finite() && vdd_v > 0.0 && vdd_v <= MAX_VDD_V {
            Ok(())
        } else {
            Err(EnergyError::VoltageOutOfRange {
                vdd_v,
                min_v: 0.0,
                max_v: MAX_VDD_V,
                why: "",
            })
        }
    }

    /// Energy of one inference (the network in `stats`) with the swept supply at `vdd_v`.
    pub fn energy_per_inference(
        &self,
        stats: &NetworkStats,
        vdd_v: f64,
    ) -> Result<EnergyBreakdown, EnergyError> {
        Self::check_vdd(vdd_v)?;
        let v_w = self.rail_voltage(Rail::WeightSram, vdd_v);
        let v_a = self.rail_voltage(Rail::ActivationSram, vdd_v);
        let v_l = self.rail_voltage(Rail::Logic, vdd_v);
        self.energy_at_rails(stats, vdd_v, v_w, v_a, v_l)
    }

    /// Energy of one inference with the weight SRAM, activation SRAM and logic at `v_w`, `v_a`, `v_l`
    /// (`vdd_v` is only recorded in the breakdown).
    fn energy_at_rails(
        &self,
        stats: &NetworkStats,
        vdd_v: f64,
        v_w: f64,
        v_a: f64,
        v_l: f64,
    ) -> Result<EnergyBreakdown, EnergyError> {
        let c = &self.cfg;
        let act_scale = (v_a / self.volts.nominal_v).powi(2);
        let logic_scale = (v_l / self.volts.logic_v).powi(2);

        let (access_scale, cell_scale) = self
            .ecc
            .map_or((1.0, 1.0), |e| (e.access_scale, e.cell_scale));
        let reads = stats.weight_sram_word_reads as f64;
        let writes = stats.weight_sram_word_writes as f64;
        let weight_sram_dynamic_pj = (reads * c.weight_sram_read_pj
            + writes * c.weight_sram_write_pj)
            * access_scale
            * self.weight_sram_scale(v_w)?;
        let ecc_logic_pj = self.ecc.map_or(0.0, |e| {
            (reads * e.decode_pj_per_word + writes * e.encode_pj_per_word) * logic_scale
        });
        let bits_powered = (stats.weight_arrays_used * self.weight_array_bits) as f64 * cell_scale;
        // pW · s = pJ.
        let weight_sram_leakage_pj = bits_powered
            * c.weight_sram_leakage_pw_per_bit
            * self.leakage_scale(v_w)
            * stats.latency_s;
        // Activations (input reads, final output writes) at `act_bits`; partial sums (every one written once and
        // read back once) at the int32 accumulator width, in the ofmap buffer (activation rail) or in
        // accumulators (same energy per byte, at nominal voltage).
        let psum_accesses = 2 * stats.output_sram_reads;
        let code_accesses =
            stats.input_sram_reads + stats.output_sram_writes - stats.output_sram_reads;
        let code_bytes = code_accesses as f64 * self.act_bits as f64 / 8.0;
        let psum_bytes = psum_accesses as f64 * PSUM_BITS as f64 / 8.0;
        let (act_sram_pj, accumulator_pj) = match self.partial_sums {
            PartialSumStore::Ofmap => (
                (code_bytes + psum_bytes) * c.act_sram_pj_per_byte * act_scale,
                0.0,
            ),
            PartialSumStore::Accumulators => (
                code_bytes * c.act_sram_pj_per_byte * act_scale,
                psum_bytes * c.act_sram_pj_per_byte,
            ),
        };
        let mac_pj = stats.macs as f64 * self.mac_pj_at_width(stats.weight_bits) * logic_scale;
        let dram_pj =
            (stats.dram_reads_bytes + stats.dram_writes_bytes) as f64 * 8.0 * c.dram_pj_per_bit;
        Ok(EnergyBreakdown {
            vdd_v,
            weight_sram_dynamic_pj,
            weight_sram_leakage_pj,
            ecc_logic_pj,
            act_sram_pj,
            accumulator_pj,
            mac_pj,
            dram_pj,
            total_pj: weight_sram_dynamic_pj
                + weight_sram_leakage_pj
                + ecc_logic_pj
                + act_sram_pj
                + accumulator_pj
                + mac_pj
                + dram_pj,
        })
    }

    /// Energy of one inference at the baseline, every rail at its own nominal voltage: the SRAM rails at
    /// `nominal_v`, the logic at `logic_v`, whether or not a rail is in `scaled_rails` (`vdd_v` in the breakdown
    /// is `nominal_v`). Savings are measured against this.
    pub fn nominal_energy(&self, stats: &NetworkStats) -> Result<EnergyBreakdown, EnergyError> {
        let v = &self.volts;
        self.energy_at_rails(stats, v.nominal_v, v.nominal_v, v.nominal_v, v.logic_v)
    }

    /// Total energy saved at `vdd_v` against the baseline ([`nominal_energy`](Self::nominal_energy)), percent:
    /// `(1 − E(vdd)/E(nominal)) · 100`.
    pub fn savings_pct(&self, stats: &NetworkStats, vdd_v: f64) -> Result<f64, EnergyError> {
        let at = self.energy_per_inference(stats, vdd_v)?.total_pj;
        let nominal = self.nominal_energy(stats)?.total_pj;
        Ok(if nominal > 0.0 {
            (1.0 - at / nominal) * 100.0
        } else {
            0.0
        })
    }

    /// Weight-SRAM (dynamic + leakage) energy saved at `vdd_v` against the nominal voltage, percent — the
    /// quantity the paper's "20–30 % savings" refer to (docs/energy.md#paper-energy-model).
    pub fn weight_sram_savings_pct(
        &self,
        stats: &NetworkStats,
        vdd_v: f64,
    ) -> Result<f64, EnergyError> {
        let w = |e: EnergyBreakdown| e.weight_sram_total_pj();
        let at = w(self.energy_per_inference(stats, vdd_v)?);
        let nominal = w(self.nominal_energy(stats)?);
        Ok(if nominal > 0.0 {
            (1.0 - at / nominal) * 100.0
        } else {
            0.0
        })
    }

    /// The energy of one inference split over the layers of `stats`, in layer order: each layer's own accesses,
    /// MACs and DRAM bytes, and the leakage of the network's powered weight arrays during the layer's cycles
    /// (`bits_powered · P_leak · total_cycles / clock`). Every term of [`energy_per_inference`] is linear in
    /// those counts and the latency, so the layers sum to the network's breakdown.
    ///
    /// [`energy_per_inference`]: Self::energy_per_inference
    pub fn per_layer_energy(
        &self,
        stats: &NetworkStats,
        vdd_v: f64,
    ) -> Result<Vec<EnergyBreakdown>, EnergyError> {
        // ECC decoder cycles are charged per fold (the same latency for every fold), so each layer gets the
        // share of its folds and the layers still sum to the network.
        let folds = |l: &crate::systolic::LayerStats| l.row_folds.saturating_mul(l.col_folds);
        let total_folds: u64 = stats.layers.iter().map(folds).fold(0, u64::saturating_add);
        let decoder_cycles_per_fold = stats
            .ecc_decoder_cycles
            .checked_div(total_folds)
            .unwrap_or(0);
        stats
            .layers
            .iter()
            .map(|l| {
                let ecc_decoder_cycles = decoder_cycles_per_fold.saturating_mul(folds(l));
                let total_cycles = l.total_cycles.saturating_add(ecc_decoder_cycles);
                let one = NetworkStats {
                    dataflow: stats.dataflow,
                    rows: stats.rows,
                    cols: stats.cols,
                    clock_mhz: stats.clock_mhz,
                    weight_bits: stats.weight_bits,
                    weight_arrays_used: stats.weight_arrays_used,
                    macs: l.macs,
                    compute_cycles: l.compute_cycles,
                    stall_cycles: l.stall_cycles,
                    total_cycles,
                    latency_s: total_cycles as f64 / (stats.clock_mhz * 1e6),
                    utilization_pct: l.utilization_pct,
                    weight_sram_reads: l.weight_sram_reads,
                    weight_sram_word_reads: l.weight_sram_word_reads,
                    weight_sram_word_writes: l.weight_sram_word_writes,
                    input_sram_reads: l.input_sram_reads,
                    output_sram_writes: l.output_sram_writes,
                    output_sram_reads: l.output_sram_reads,
                    dram_reads_bytes: l.dram_reads_bytes,
                    dram_writes_bytes: l.dram_writes_bytes,
                    weight_words: l.weight_words,
                    per_array_weight_word_reads: Vec::new(),
                    layers: Vec::new(),
                    ecc_decoder_cycles,
                };
                self.energy_per_inference(&one, vdd_v)
            })
            .collect()
    }

    /// The per-operation energies in force at `vdd_v`, one row per component (for reports).
    pub fn table(&self, vdd_v: f64) -> Result<Vec<EnergyTableRow>, EnergyError> {
        Self::check_vdd(vdd_v)?;
        let c = &self.cfg;
        let v_w = self.rail_voltage(Rail::WeightSram, vdd_v);
        let v_a = self.rail_voltage(Rail::ActivationSram, vdd_v);
        let v_l = self.rail_voltage(Rail::Logic, vdd_v);
        let sram_law = match c.weight_sram_scaling {
            SramScaling::Quadratic => "(V/V_min)^2",
            SramScaling::Table => "table",
        };
        let access_scale = self.ecc.map_or(1.0, |e| e.access_scale);
        let mut rows = vec![
            EnergyTableRow {
                component: "weight_sram_read",
                value: c.weight_sram_read_pj * access_scale * self.weight_sram_scale(v_w)?,
                unit: "pJ/word",
                voltage_v: Some(v_w),
                scaling: sram_law,
            },
            EnergyTableRow {
                component: "weight_sram_write",
                value: c.weight_sram_write_pj * access_scale * self.weight_sram_scale(v_w)?,
                unit: "pJ/word",
                voltage_v: Some(v_w),
                scaling: sram_law,
            },
            EnergyTableRow {
                component: "weight_sram_leakage",
                value: c.weight_sram_leakage_pw_per_bit * self.leakage_scale(v_w),
                unit: "pW/bit",
                voltage_v: Some(v_w),
                scaling: "exp((V-V_min)/v_e)",
            },
            EnergyTableRow {
                component: "act_sram_access",
                value: c.act_sram_pj_per_byte * (v_a / self.volts.nominal_v).powi(2),
                unit: "pJ/byte",
                voltage_v: Some(v_a),
                scaling: "(V/V_nominal)^2",
            },
            EnergyTableRow {
                component: "mac (8-bit weights)",
                value: self.mac_pj_at_width(8) * (v_l / self.volts.logic_v).powi(2),
                unit: "pJ/MAC",
                voltage_v: Some(v_l),
                scaling: match c.mac_scaling {
                    MacScaling::OperandWidths => "(V/V_logic)^2, multiplier x m_w*m_a/64",
                    MacScaling::Constant => "(V/V_logic)^2",
                },
            },
            EnergyTableRow {
                component: "dram",
                value: c.dram_pj_per_bit,
                unit: "pJ/bit",
                voltage_v: None,
                scaling: "none",
            },
        ];
        if self.partial_sums == PartialSumStore::Accumulators {
            rows.push(EnergyTableRow {
                component: "accumulator_access (partial sums)",
                value: c.act_sram_pj_per_byte,
                unit: "pJ/byte",
                voltage_v: Some(self.volts.nominal_v),
                scaling: "none (fixed rail at nominal_v)",
            });
        }
        if let Some(e) = &self.ecc {
            let logic = (v_l / self.volts.logic_v).powi(2);
            for (component, value) in [
                ("ecc_decoder", e.decode_pj_per_word),
                ("ecc_encoder", e.encode_pj_per_word),
            ] {
                rows.push(EnergyTableRow {
                    component,
                    value: value * logic,
                    unit: "pJ/word",
                    voltage_v: Some(v_l),
                    scaling: "(V/V_logic)^2",
                });
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests;
