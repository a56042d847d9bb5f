//! Command-line front end: parses arguments and calls the library. Each subcommand lives in its own file with
//! an `Args` struct (clap) and a `run` function; nothing here computes anything itself.
use clap::{Parser, Subcommand};

pub mod cycles;
pub mod eval;
pub mod import;
pub mod inject;
pub mod model;
pub mod profile;
pub mod quantize;
pub mod run;
pub mod sweep;

/// Error returned by a subcommand. `User` errors (bad input, missing files, invalid configs) exit with code 2;
/// `Internal` errors (bugs, I/O failures that are not the user's fault) with code 1. The message is one line.
#[derive(Debug)]
pub enum CliError {
    User(String),
    Internal(String),
}

impl CliError {
    pub fn user(msg: impl Into<String>) -> Self {
        CliError::User(msg.into())
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        CliError::Internal(msg.into())
    }
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::User(_) => 2,
            CliError::Internal(_) => 1,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            CliError::User(m) | CliError::Internal(m) => m,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

pub type CliResult = Result<(), CliError>;

#[derive(Parser, Debug)]
#[command(
    name = "accelsim",
    version,
    about = "Cycle-approximate DNN accelerator and SRAM simulator: quantized weights in low-voltage SRAM, bit errors, accuracy and energy"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Quantize a float32 .npy tensor into integer codes and de-quantized floats.
    Quantize(quantize::Args),
    /// Inject random bit errors into a .npy tensor of integer codes.
    Inject(inject::Args),
    /// Inspect model files.
    Model(model::Args),
    /// Measure a model's clean test error with the inference engine.
    Eval(eval::Args),
    /// Import an ONNX model (PyTorch, Keras via tf2onnx, ...) into the accelsim model format.
    Import(import::Args),
    /// Generate, inspect and draw SRAM fault-map profiles.
    Profile(profile::Args),
    /// Cycle-approximate systolic-array model of a layer topology (SCALE-Sim topology CSV).
    Cycles(cycles::Args),
    /// Run one model on the accelerator at one supply voltage: faults, accuracy, cycles and energy.
    Run(run::Args),
    /// Sweep voltages x models x profiles into a CSV, plots and a Markdown report.
    Sweep(sweep::Args),
}

/// Dispatches a parsed command line to its subcommand.
pub fn dispatch(cli: Cli) -> CliResult {
    match cli.command {
        Command::Quantize(a) => quantize::run(a),
        Command::Inject(a) => inject::run(a),
        Command::Model(a) => model::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Import(a) => import::run(a),
        Command::Profile(a) => profile::run(a),
        Command::Cycles(a) => cycles::run(a),
        Command::Run(a) => run::run(a),
        Command::Sweep(a) => sweep::run(a),
    }
}
