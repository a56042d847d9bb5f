//! Sweeps: voltage grid × models × fault profiles → one row per point (see [`crate::report::SweepRow`]).
//!
//! - [`grid`]: voltage grid specs;
//! - [`state`]: the resumable state file (atomic writes, configuration fingerprint);
//! - [`cancel`]: cooperative cancellation for front ends that run sweeps on a worker thread;
//! - [`core`]: the incremental evaluation of one (model, profile) series: voltages from high to low, faults nested
//!   (a cell failing at V fails at every V' < V, docs/sram-profiles.md#paper-chips), so consecutive voltages differ by a few new
//!   faults; tensors whose stored codes did not change are not re-decoded, and a point whose image equals the
//!   previous one reuses its result without running inference.
//!
//! See docs/run-and-sweep.md.
pub mod cancel;
pub mod core;
pub mod driver;
pub mod grid;
pub mod scenario;
pub mod state;

use std::path::PathBuf;

/// Errors of the sweep layer. All but `Eval` are user errors (exit 2 at the CLI; see [`SweepError::is_user`]).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("bad voltage grid `{spec}`: {msg}")]
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
    #[error("{path}: unreadable sweep state: {msg}; delete it or pass --fresh")]
    State { path: PathBuf, msg: String },
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
    /// Stopped on request (see [`cancel`]); finished sweep units are kept in the state file.
    #[error("cancelled; finished work is kept and a rerun resumes it")]
    Cancelled,
}

impl SweepError {
    /// Whether the error is the user's to fix (bad input) rather than an internal failure.
    pub fn is_user(&self) -> bool {
        !matches!(self, SweepError::Eval(_) | SweepError::Cancelled)
    }
}
