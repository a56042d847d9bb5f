//! `[energy]` section of the hardware config: energy per operation/access and how the weight SRAM's energy
//! follows its supply voltage (docs/energy.md, with the paper's law and the published figures).
use serde::{Deserialize, Serialize};

/// How the weight SRAM's dynamic energy per access scales with its voltage `V` (relative to `V_min`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SramScaling {
    /// `E(V) = E(V_min) · (V / V_min)²` — the paper's Spectre simulation (docs/energy.md#paper-energy-model).
    #[default]
    Quadratic,
    /// Piecewise-linear interpolation of `weight_sram_table` (`[V/V_min, E(V)/E(V_min)]` points).
    Table,
}

/// How the energy of one MAC follows the operand widths (docs/energy.md#precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MacScaling {
    /// `E = mac_pj · (s · (m_w · m_a)/(8 · 8) + (1 − s))`: an array multiplier's energy grows with the product of
    /// its operand widths (m_w weight bits, m_a = `[systolic] act_bits`), the 32-bit accumulator's does not change
    /// ([Horowitz14]: 8/32-bit multiply 0.2/3.1 pJ ≈ the 16× of (32/8)²); `s` = `mac_multiplier_share`.
    #[default]
    OperandWidths,
    /// `E = mac_pj` whatever the widths.
    Constant,
}

/// Energy parameters (pJ per access/operation at the reference voltage of each rail, leakage, scaling law).
/// Missing keys take the [`Default`] values; unknown keys are rejected. Call [`EnergyConfig::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnergyConfig {
    /// Energy of one MAC (8-bit × 8-bit multiply + 32-bit accumulate) at the logic voltage, pJ, `[0, 1000]`.
    pub mac_pj: f64,
    /// How the MAC energy follows the weight and activation widths.
    pub mac_scaling: MacScaling,
    /// Share of `mac_pj` spent in the 8×8-bit multiplier, `[0, 1]` (the rest is the 32-bit accumulate).
    pub mac_multiplier_share: f64,
    /// Dynamic energy of one weight-SRAM word read at `V_min`, pJ, `[0, 1000]`.
    pub weight_sram_read_pj: f64,
    /// Dynamic energy of one weight-SRAM word write at `V_min`, pJ, `[0, 1000]` (reloads only).
    pub weight_sram_write_pj: f64,
    /// Scaling law of the weight SRAM's dynamic energy against voltage.
    pub weight_sram_scaling: SramScaling,
    /// `[[V/V_min, E/E(V_min)], ...]`, strictly increasing in `V/V_min` (in (0, 2]), energies in (0, 100] and
    /// non-decreasing, at least 2 points; used (and required) with `weight_sram_scaling = "table"`, checked
    /// whenever given.
    pub weight_sram_table: Vec<[f64; 2]>,
    /// Leakage power of one weight-SRAM bit cell at `V_min`, pW, `[0, 1e6]`.
    pub weight_sram_leakage_pw_per_bit: f64,
    /// Leakage falls by a factor `e` for every this many volts of supply reduction, V, `(0, 10]`.
    pub leakage_v_per_efold: f64,
    /// Activation-buffer (IFMAP/OFMAP) energy per byte accessed at the SRAM nominal voltage, pJ, `[0, 1000]`.
    pub act_sram_pj_per_byte: f64,
    /// DRAM energy per bit transferred, pJ, `[0, 10000]`.
    pub dram_pj_per_bit: f64,
    /// Energy of one two-input gate evaluation of the ECC encoder/decoder logic at the logic voltage, fJ,
    /// `[0, 1000]`; multiplied by each code's gate count (docs/ecc.md, "Costs").
    pub ecc_gate_energy_fj: f64,
}

impl Default for EnergyConfig {
    /// The values of `hw_configs/14nm_sram.toml` (sources and derivations there and in docs/energy.md).
    fn default() -> Self {
        EnergyConfig {
            mac_pj: 0.034,
            mac_scaling: MacScaling::OperandWidths,
            mac_multiplier_share: MAC_MULTIPLIER_SHARE,
            weight_sram_read_pj: 1.14,
            weight_sram_write_pj: 1.25,
            weight_sram_scaling: SramScaling::Quadratic,
            weight_sram_table: vec![],
            weight_sram_leakage_pw_per_bit: 10.0,
            leakage_v_per_efold: 0.1785,
            act_sram_pj_per_byte: 0.14,
            dram_pj_per_bit: 8.0,
            ecc_gate_energy_fj: 0.071,
        }
    }
}

/// Multiplier share of an 8-bit MAC with a 32-bit accumulator: 0.2 pJ / (0.2 + 0.1) pJ at 45 nm [Horowitz14]
/// (docs/energy.md#precision).
pub const MAC_MULTIPLIER_SHARE: f64 = 0.2 / 0.3;

/// The paper's normalized SRAM energy points (docs/sram-profiles.md#measured-ber), usable as `weight_sram_table`.
pub const PAPER_SRAM_TABLE: [[f64; 2]; 7] = [
    [0.75, 0.5625],
    [0.792, 0.6267],
    [0.833, 0.6944],
    [0.875, 0.7656],
    [0.917, 0.8403],
    [0.958, 0.9184],
    [1.0, 1.0],
];

fn range_err(key: &str, value: impl std::fmt::Display, allowed: &str) -> String {
    format!("[energy] {key} = {value} is out of range (allowed {allowed})")
}

impl EnergyConfig {
    /// Checks every key; messages name the key and the allowed range, e.g.
    /// `[energy] mac_pj = -1 is out of range (allowed [0, 1000])`.
    pub fn validate(&self) -> Result<(), String> {
        let pj = [
            ("mac_pj", self.mac_pj, 1000.0),
            ("weight_sram_read_pj", self.weight_sram_read_pj, 1000.0),
            ("weight_sram_write_pj", self.weight_sram_write_pj, 1000.0),
            (
                "weight_sram_leakage_pw_per_bit",
                self.weight_sram_leakage_pw_per_bit,
                1e6,
            ),
            ("act_sram_pj_per_byte", self.act_sram_pj_per_byte, 1000.0),
            ("dram_pj_per_bit", self.dram_pj_per_bit, 10000.0),
            ("ecc_gate_energy_fj", self.ecc_gate_energy_fj, 1000.0),
        ];
        for (key, v, max) in pj {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                return Err(range_err(key, v, &format!("[0, {max}]")));
            }
        }
        let share = self.mac_multiplier_share;
        if !(share.is_finite() && (0.0..=1.0).contains(&share)) {
            return Err(range_err("mac_multiplier_share", share, "[0, 1]"));
        }
        let efold = self.leakage_v_per_efold;
        if !(efold.is_finite() && efold > 0.0 && efold <= 10.0) {
            return Err(range_err("leakage_v_per_efold", efold, "(0, 10]"));
        }
        let t = &self.weight_sram_table;
        // A table is checked whenever it is given (the shipped config keeps one next to "quadratic").
        if self.weight_sram_scaling == SramScaling::Table || !t.is_empty() {
            if t.len() < 2 {
                return Err(format!(
                    "[energy] weight_sram_table has {} points; weight_sram_scaling = \"table\" needs at least 2 \
                     [V/V_min, E/E(V_min)] points",
                    t.len()
                ));
            }
            for (i, p) in t.iter().enumerate() {
                let in_range = |v: f64, max: f64| v.is_finite() && v > 0.0 && v <= max;
                if !(in_range(p[0], 2.0) && in_range(p[1], 100.0)) {
                    return Err(format!(
                        "[energy] weight_sram_table[{i}] = [{}, {}] is out of range (allowed V/V_min in (0, 2] and \
                         E/E(V_min) in (0, 100])",
                        p[0], p[1]
                    ));
                }
                if i > 0 && !(p[0] > t[i - 1][0] && p[1] >= t[i - 1][1]) {
                    return Err(format!(
                        "[energy] weight_sram_table[{i}] = [{}, {}]: points must be strictly increasing in V/V_min \
                         with non-decreasing energy",
                        p[0], p[1]
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_valid_and_toml_table_parses() {
        EnergyConfig::default().validate().unwrap();
        let c: EnergyConfig = toml::from_str(
            "weight_sram_scaling = \"table\"\nweight_sram_table = [[0.75, 0.5625], [1.0, 1.0]]\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.weight_sram_table.len(), 2);
    }

    #[test]
    fn rejects_bad_values() {
        let e = toml::from_str::<EnergyConfig>("mac = 1.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mac"), "{e}");
        let c = EnergyConfig {
            mac_pj: -1.0,
            ..Default::default()
        };
        assert_eq!(
            c.validate().unwrap_err(),
            "[energy] mac_pj = -1 is out of range (allowed [0, 1000])"
        );
        let c = EnergyConfig {
            weight_sram_scaling: SramScaling::Table,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("at least 2"));
        let c = EnergyConfig {
            weight_sram_scaling: SramScaling::Table,
            weight_sram_table: vec![[1.0, 1.0], [0.9, 0.8]],
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("weight_sram_table[1]"));
        for bad in [f64::NAN, f64::INFINITY, 0.0, 2.5] {
            let c = EnergyConfig {
                weight_sram_scaling: SramScaling::Table,
                weight_sram_table: vec![[0.8, 0.6], [bad, 1.0]],
                ..Default::default()
            };
            let e = c.validate().unwrap_err();
            assert!(
                e.contains("weight_sram_table[1]") && e.contains("(0, 2]"),
                "{e}"
            );
        }
        let c = EnergyConfig {
            weight_sram_table: vec![[0.8, f64::NAN], [1.0, 1.0]],
            ..Default::default()
        };
        assert!(
            c.validate().unwrap_err().contains("weight_sram_table[0]"),
            "checked even when unused"
        );
        for (i, v) in [f64::NAN, f64::NEG_INFINITY, -0.1, 1e300]
            .into_iter()
            .enumerate()
        {
            let mut c = EnergyConfig::default();
            match i % 3 {
                0 => c.mac_pj = v,
                1 => c.dram_pj_per_bit = v,
                _ => c.leakage_v_per_efold = v,
            }
            assert!(c.validate().is_err(), "{v}");
        }
    }
}
