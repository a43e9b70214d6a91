//! Thin entry point: parse the command line, run, map failure to an exit code.
#![forbid(unsafe_code)]

use clap::Parser;

/// mimalloc: thread-local free lists instead of glibc's arenas. Allocations made on one thread and
/// freed on another (records, bodies, futures moving between tokio workers and librdkafka
/// threads) made glibc malloc about a tenth of the service's CPU per post.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = catering_sync::cli::Cli::parse();
    catering_sync::cli::run(cli)
}
