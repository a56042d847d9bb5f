//! Hardware configuration (`hw_configs/*.toml`): schema, validation, lookup. See docs/hw-config.md.
pub mod energy;
pub mod systolic;
