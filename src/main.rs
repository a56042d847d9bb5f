//! The `accelsim` binary: a thin shell over the library's `cli` module.
use clap::error::ErrorKind;
use clap::Parser;

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
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            // Usage errors: one line on stderr, exit code 2 (the project's rule for user errors).
            _ => {
                let rendered = e.render().to_string();
                let first = rendered
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("invalid arguments")
                    .trim_start_matches("error: ")
                    .to_string();
                eprintln!("error: {first} (see 'accelsim --help')");
                std::process::exit(2);
            }
        },
    };
    if let Err(err) = accelsim::cli::dispatch(cli) {
        eprintln!("error: {}", err.message());
        std::process::exit(err.exit_code());
    }
}
