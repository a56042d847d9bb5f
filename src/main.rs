//! The `accelsim` binary: a thin shell over the library's `cli` module.
use clap::Parser;

fn main() {
    let cli = match accelsim::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout with exit 0 and usage errors to stderr with exit 2.
            e.exit();
        }
    };
    if let Err(err) = accelsim::cli::dispatch(cli) {
        eprintln!("error: {}", err.message());
        std::process::exit(err.exit_code());
    }
}
