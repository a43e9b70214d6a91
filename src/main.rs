//! Thin entry point: parse the command line, run, map failure to an exit code.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = catering_sync::cli::Cli::parse();
    catering_sync::cli::run(cli)
}
