//! `[systolic]` section of the hardware config (owned by the systolic/energy engineer; placeholder).
use serde::{Deserialize, Serialize};

/// Systolic array organisation used by the cycle model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SystolicConfig {}
