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
    /// Arithmetic of the functional model (docs/datapath.md): `float` (the paper's fake quantization, default)
    /// or `int8` (integer codes, int32 accumulation); `--datapath` overrides it.
    pub datapath: Datapath,
}

/// How the functional model computes (docs/datapath.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Datapath {
    /// float32 on de-quantized weights (docs/quantization.md#fake-quantization).
    #[default]
    Float,
    /// int8 weight codes × 8-bit activation codes, int32 accumulation, requantization (docs/datapath.md).
    Int8,
}

impl Datapath {
    pub const ALL: [Datapath; 2] = [Datapath::Int8, Datapath::Float];

    pub fn name(self) -> &'static str {
        match self {
            Datapath::Float => "float",
            Datapath::Int8 => "int8",
        }
    }

    /// Parses `int8` or `float`.
    pub fn parse(s: &str) -> Option<Datapath> {
        Datapath::ALL.into_iter().find(|d| d.name() == s)
    }
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
            datapath: Datapath::Float,
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
        if self.datapath == Datapath::Int8 && self.act_bits != 8 {
            return Err(format!(
                "[systolic] datapath = \"int8\" stores one byte per activation: act_bits = {} is not allowed with it (allowed 8, or datapath = \"float\")",
                self.act_bits
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
    fn datapath_parses_validates_and_defaults_to_float() {
        assert_eq!(SystolicConfig::default().datapath, Datapath::Float);
        let c: SystolicConfig = toml::from_str("datapath = \"int8\"\n").unwrap();
        assert_eq!(c.datapath, Datapath::Int8);
        c.validate().unwrap();
        let e = toml::from_str::<SystolicConfig>("datapath = \"int4\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("int8") && e.contains("float"), "{e}");
        let c: SystolicConfig = toml::from_str("datapath = \"int8\"\nact_bits = 16\n").unwrap();
        let e = c.validate().unwrap_err();
        assert!(
            e.contains("act_bits = 16") && e.contains("allowed 8"),
            "{e}"
        );
        assert_eq!(Datapath::parse("int8"), Some(Datapath::Int8));
        assert_eq!(Datapath::parse("fp32"), None);
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
