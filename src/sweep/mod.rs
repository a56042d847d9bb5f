//! Sweeps: voltage grid × models × fault profiles → one row per point (see [`crate::report::SweepRow`]).
//!
//! - [`grid`]: voltage grid specs;
//! - [`unit`]: units of work keyed by content, shards;
//! - [`plan`]: a sweep's inputs by content, its canonical unit list and configuration fingerprint;
//! - [`state`]: the resumable state files (atomic writes, validated on load);
//! - [`lock`]: the advisory lock on the output folder;
//! - [`driver`]: runs a sweep or one shard of it, builds the rows and the report;
//! - [`core`]: the incremental evaluation of one (model, profile) series: voltages from high to low, faults nested
//!   (a cell failing at V fails at every V' < V, docs/sram-profiles.md#paper-chips), so consecutive voltages differ by a few new
//!   faults; tensors whose stored codes did not change are not re-decoded, and a point whose image equals the
//!   previous one reuses its result without running inference.
//!
//! See docs/run-and-sweep.md.
pub mod core;
pub mod driver;
pub mod grid;
pub mod lock;
pub mod plan;
pub mod scenario;
pub mod state;
pub mod unit;

use std::path::PathBuf;

/// Errors of the sweep layer. All but `Eval` are user errors (exit 2 at the CLI; see [`SweepError::is_user`]).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("--grid `{spec}`: {msg}")]
    Grid { spec: String, msg: String },
    #[error(
        "{path}: this folder holds a sweep with a different configuration (fingerprint {found}, this run {expected}); \
         pass --fresh to discard it or choose another --out"
    )]
    Fingerprint {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: invalid sweep state: {msg}; pass --fresh to discard it (or delete the file)")]
    State { path: PathBuf, msg: String },
    /// The output folder is in use by another live process (advisory lock, [`lock`]).
    #[error("{path}: {msg}")]
    Busy { path: PathBuf, msg: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A user input problem (missing model, data or profile, voltage out of range); the message names it.
    #[error("{0}")]
    Input(String),
    /// An internal failure while evaluating (not the user's fault).
    #[error("{0}")]
    Eval(String),
}

impl SweepError {
    /// Whether the error is the user's to fix (bad input) rather than an internal failure.
    pub fn is_user(&self) -> bool {
        !matches!(self, SweepError::Eval(_))
    }
}
