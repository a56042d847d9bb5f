//! Command-line front end: parses arguments and calls the library. Each subcommand lives in its own file with
//! an `Args` struct (clap) and a `run` function; nothing here computes anything itself.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::HwConfig;
use crate::locate::{self, Shipped};
use crate::sweep::scenario::FaultSpec;

pub mod clap_error;
pub mod cycles;
pub mod eval;
pub mod import;
pub mod inject;
pub mod model;
pub mod profile;
pub mod quantize;
pub mod run;
pub mod sweep;
pub mod values;

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

/// Finds the input file given with `flag` by the one rule for names and paths ([`crate::locate`]); the error
/// names the flag.
pub fn locate_flag(kind: Shipped, flag: &str, given: &str) -> Result<PathBuf, CliError> {
    locate::locate(kind, given).map_err(|e| CliError::user(e.flag(flag).to_string()))
}

/// Finds and loads the hardware config given with `flag` (usually `--hw`).
pub fn load_hw(flag: &str, given: &str) -> Result<HwConfig, CliError> {
    let path = locate_flag(Shipped::HwConfig, flag, given)?;
    HwConfig::load(&path).map_err(|e| CliError::user(e.to_string()))
}

/// The fault source given with `flag` (`--profile`, `--profiles`): `uniform`, or a profile found by the one rule
/// for names and paths, checked against the weight-SRAM geometry of `hw`.
pub fn fault_spec(flag: &str, given: &str, hw: &HwConfig) -> Result<FaultSpec, CliError> {
    let spec = if given == "uniform" {
        FaultSpec::MeasuredUniform
    } else {
        let path = locate_flag(Shipped::Profile, flag, given)?;
        FaultSpec::resolve(&path.to_string_lossy()).map_err(|e| CliError::user(e.to_string()))?
    };
    check_fits(&spec, hw)?;
    Ok(spec)
}

/// Refuses a profile whose arrays differ from the weight SRAM of `hw`, naming both files.
pub fn check_fits(spec: &FaultSpec, hw: &HwConfig) -> Result<(), CliError> {
    if let FaultSpec::Profile { profile, .. } = spec {
        crate::sram::check_profile_fits(profile, &hw.weight_sram, &hw.origin)
            .map_err(|e| CliError::user(e.to_string()))?;
    }
    Ok(())
}

/// Checks a `--data` folder: a file given where the folder of a test split is expected is one clear line.
pub fn check_data_dir(data: Option<&std::path::Path>) -> Result<(), CliError> {
    match data {
        Some(d) if d.exists() && !d.is_dir() => Err(CliError::user(format!(
            "--data {} is a file, expected the folder holding the test split",
            d.display()
        ))),
        _ => Ok(()),
    }
}

/// Checks that an input file given with `flag` is not a directory (`expected` names the file kind).
pub fn check_input_file(
    flag: &str,
    path: &std::path::Path,
    expected: &str,
) -> Result<(), CliError> {
    locate::not_a_directory(flag, path, expected).map_err(CliError::user)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn walk(cmd: &clap::Command, path: &str, visit: &mut dyn FnMut(&str, &clap::Arg)) {
        for a in cmd.get_arguments() {
            visit(path, a);
        }
        for s in cmd.get_subcommands() {
            walk(s, &format!("{path} {}", s.get_name()), visit);
        }
    }

    /// Every flag and positional argument of every subcommand explains itself in `--help`.
    #[test]
    fn every_argument_has_help() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cmd, "accelsim", &mut |path, a| {
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            if help.trim().is_empty() && a.get_id() != "help" && a.get_id() != "version" {
                missing.push(format!("{path} {}", a.get_id()));
            }
            // A default written into the help text as well as declared would print twice.
            if !a.get_default_values().is_empty() && help.contains("[default:") {
                missing.push(format!(
                    "{path} {}: [default: ...] written by hand",
                    a.get_id()
                ));
            }
        });
        assert!(missing.is_empty(), "{missing:?}");
    }

    /// Numeric flags take negative numbers as values, so their parser (not clap) answers with the range.
    #[test]
    fn numeric_flags_accept_negative_numbers() {
        for args in [
            &["accelsim", "run", "--vdd", "-1"][..],
            &["accelsim", "run", "--vdd", "1", "--offsets", "-1"],
            &["accelsim", "eval", "--model", "m", "--limit", "-5"],
            &["accelsim", "profile", "stats", "chip1", "--vdd-rel", "-1"],
        ] {
            let e = Cli::try_parse_from(args).err();
            if let Some(e) = e {
                assert_ne!(
                    e.kind(),
                    clap::error::ErrorKind::UnknownArgument,
                    "{args:?}"
                );
            }
        }
    }
}
