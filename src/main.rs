//! The `accelsim` binary: a thin shell over the library's `cli` module.
use accelsim::error::escape_control;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

/// Restores the default SIGPIPE action so that `accelsim ... | head` ends quietly like other Unix tools instead of
/// panicking on a closed stdout (Rust ignores SIGPIPE by default).
#[cfg(unix)]
fn reset_sigpipe() {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: called once at start-up before any other thread exists; installs the default disposition.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

#[cfg(not(unix))]
fn reset_sigpipe() {}

fn main() {
    reset_sigpipe();
    let cli = match accelsim::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            // Help and version go to stdout with exit code 0, as clap does.
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => e.exit(),
            // Usage errors: one line on stderr naming the flag, the value and the allowed range, exit code 2
            // (the project's rule for user errors).
            _ => {
                let args: Vec<String> = std::env::args_os()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                let line =
                    accelsim::cli::clap_error::one_line(&e, &accelsim::cli::Cli::command(), &args);
                eprintln!("error: {}", escape_control(&line));
                std::process::exit(2);
            }
        },
    };
    if let Err(err) = accelsim::cli::dispatch(cli) {
        eprintln!("error: {}", escape_control(err.message()));
        std::process::exit(err.exit_code());
    }
}
