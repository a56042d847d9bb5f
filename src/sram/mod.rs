//! The banked weight SRAM: weight-to-cell mapping, profiled-chip fault maps across voltage, the calibrated
//! synthetic chip generator, and applying a fault map to a model's stored codes. See docs/hw-config.md and
//! docs/sram-profiles.md; the paper's chips and measured curve are summarized there too.
pub mod act_faults;
pub mod act_mapping;
pub mod apply;
pub mod curve;
pub mod ecc_faults;
pub mod generate;
pub mod mapping;
pub mod plot;
pub mod profile;

pub use apply::{check_profile_fits, chip_fault_pattern_at, fault_entries, fault_pattern_at};
pub use curve::{measured_ber, vdd_rel_at_ber, MEASURED_BER};
pub use generate::{generate, GenerateSpec, Style, StyleParams};
pub use mapping::{BitsAt, CellAddr, WeightMapping};
pub use plot::{draw_map_png, MapSegment};
pub use profile::{FailingCell, FailureKind, FaultProfile, ProfileMeta, ProfileStats};

fn line_suffix(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}

/// Errors of the SRAM layer (mapping, profile files, fault application). Messages are one line.
#[derive(Debug, thiserror::Error)]
pub enum SramError {
    #[error("weight mapping: {0}")]
    Mapping(String),
    #[error("{origin}{}: {msg}", line_suffix(*line))]
    Profile {
        origin: String,
        line: usize,
        msg: String,
    },
    #[error("{path}: cannot read or write SRAM profile: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: vdd_rel = {vdd_rel} is out of range; allowed {floor}..=2 (the profile stores no cells failing only below floor_vdd_rel = {floor})")]
    VddRel {
        origin: String,
        vdd_rel: f64,
        floor: f64,
    },
    /// The name or path does not lead to one profile file (docs/run-and-sweep.md, "Names and paths").
    #[error(transparent)]
    Locate(#[from] crate::locate::LocateError),
    #[error("{0}")]
    Invalid(String),
}
