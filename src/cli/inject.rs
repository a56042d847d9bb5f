//! `accelsim inject` (placeholder until its issue lands).
use super::{CliError, CliResult};

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CliResult {
    Err(CliError::internal("`accelsim inject` is not implemented yet"))
}
