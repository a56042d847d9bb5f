//! `[energy]` section of the hardware config (owned by the systolic/energy engineer; placeholder).
use serde::{Deserialize, Serialize};

/// Energy parameters (pJ per access/operation at the reference voltage, leakage, voltage scaling law).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EnergyConfig {}
