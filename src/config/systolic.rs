//! `[systolic]` section of the hardware config: the PE array, the activation element width and the DRAM link
//! (docs/systolic.md). SCALE-Sim's config keys are given next to each field for users coming from it. The
//! buffer sizes live in `[activation_sram]` (SCALE-Sim `IfmapSramSzkB`/`OfmapSramSzkB`) and the weight memory
//! in `[weight_sram]` (replacing SCALE-Sim's `FilterSramSzkB`); `BufferParams::from_hw` joins them.
use crate::systolic::{ArrayParams, Dataflow};
use serde::{Deserialize, Serialize};

/// Systolic array organisation used by the cycle model. Missing keys take the [`Default`] values; unknown keys
/// are rejected. Call [`SystolicConfig::validate`] once after loading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SystolicConfig {
    /// PE rows (SCALE-Sim `ArrayHeight`), `1..=65536`.
    pub rows: u64,
    /// PE columns (SCALE-Sim `ArrayWidth`), `1..=65536`.
    pub cols: u64,
    /// `ws`, `os` or `is` (SCALE-Sim `Dataflow`).
    pub dataflow: Dataflow,
    /// Array clock in MHz, `(0, 100000]`; sets latency and, with leakage power, leakage energy.
    pub clock_mhz: f64,
    /// Activation (and partial-sum) width in the IFMAP/OFMAP buffers, `1..=32` (SCALE-Sim fixes 8).
    pub act_bits: u32,
    /// DRAM bandwidth in bytes per array clock cycle, `(0, 1e6]`.
    pub dram_bytes_per_cycle: f64,
}

impl Default for SystolicConfig {
    /// The values of `hw_configs/14nm_sram.toml` (sources there).
    fn default() -> Self {
        SystolicConfig {
            rows: 16,
            cols: 16,
            dataflow: Dataflow::Ws,
            clock_mhz: 1000.0,
            act_bits: 8,
            dram_bytes_per_cycle: 12.8,
        }
    }
}

fn range_err(key: &str, value: impl std::fmt::Display, allowed: &str) -> String {
    format!("[systolic] {key} = {value} is out of range (allowed {allowed})")
}

impl SystolicConfig {
    /// Checks every key; the message names the key, its value and the allowed range, e.g.
    /// `[systolic] rows = 0 is out of range (allowed 1..=65536)`. The config loader prefixes the file name.
    pub fn validate(&self) -> Result<(), String> {
        let side = 1..=crate::systolic::sim::MAX_ARRAY_SIDE;
        if !side.contains(&self.rows) {
            return Err(range_err("rows", self.rows, "1..=65536"));
        }
        if !side.contains(&self.cols) {
            return Err(range_err("cols", self.cols, "1..=65536"));
        }
        if !(self.clock_mhz.is_finite() && self.clock_mhz > 0.0 && self.clock_mhz <= 1e5) {
            return Err(range_err("clock_mhz", self.clock_mhz, "(0, 100000]"));
        }
        if !(1..=32).contains(&self.act_bits) {
            return Err(range_err("act_bits", self.act_bits, "1..=32"));
        }
        if !(self.dram_bytes_per_cycle.is_finite()
            && self.dram_bytes_per_cycle > 0.0
            && self.dram_bytes_per_cycle <= 1e6)
        {
            return Err(range_err(
                "dram_bytes_per_cycle",
                self.dram_bytes_per_cycle,
                "(0, 1000000]",
            ));
        }
        Ok(())
    }

    /// The PE array for the cycle model (errors as [`SystolicConfig::validate`]: already prefixed with
    /// `[systolic]`).
    pub fn array_params(&self) -> Result<ArrayParams, String> {
        self.validate()?;
        ArrayParams::new(self.rows, self.cols, self.dataflow, self.clock_mhz)
            .map_err(|e| format!("[systolic] {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_parses_from_toml() {
        SystolicConfig::default().validate().unwrap();
        let c: SystolicConfig = toml::from_str("rows = 32\ncols = 8\ndataflow = \"os\"\n").unwrap();
        assert_eq!((c.rows, c.cols, c.dataflow), (32, 8, Dataflow::Os));
        assert_eq!(c.act_bits, 8);
        assert_eq!(c.array_params().unwrap().rows(), 32);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let e = toml::from_str::<SystolicConfig>("rowz = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rowz"), "{e}");
        let e = toml::from_str::<SystolicConfig>("dataflow = \"xs\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("xs") || e.contains("variant"), "{e}");
        let c = SystolicConfig {
            rows: 0,
            ..Default::default()
        };
        assert_eq!(
            c.validate().unwrap_err(),
            "[systolic] rows = 0 is out of range (allowed 1..=65536)"
        );
        let c = SystolicConfig {
            dram_bytes_per_cycle: f64::NAN,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("dram_bytes_per_cycle"));
        let c = SystolicConfig {
            act_bits: 33,
            ..Default::default()
        };
        assert!(c.array_params().unwrap_err().contains("act_bits"));
    }
}
