//! accelsim: a cycle-approximate DNN accelerator and SRAM simulator.
//!
//! The module layout is the data path: `quant` (float → codes) → `sram` (codes → cells, fault maps, voltage) →
//! `faults` (bit-level corruption) → `engine` (inference on decoded weights) → `systolic` (cycles, accesses) →
//! `energy` → `sweep` / `report`; `cli` only parses and calls.
pub mod cli;
pub mod config;
pub mod data;
pub mod ecc;
pub mod energy;
pub mod engine;
pub mod error;
pub mod faults;
pub mod fsutil;
pub mod limits;
pub mod model;
pub mod npy;
pub mod quant;
pub mod report;
pub mod sram;
pub mod sweep;
pub mod systolic;
