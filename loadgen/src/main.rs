//! `chatnode-loadgen`: opens many WebSocket clients against one or more chatnode nodes, joins
//! them to rooms, sends at a fixed rate and measures connects, latency, loss, duplicates and
//! order. See docs/LOADGEN.md.
//!
//! The same executable is the coordinator (what an operator runs) and, started by it with
//! `--worker`, each worker process.

mod args;
mod control;
mod coord;
mod frames;
mod hist;
mod http;
mod outbox;
mod svg;
mod sys;
mod worker;

fn main() {
    std::process::exit(run());
}

/// Runs the command line; the process exit code.
fn run() -> i32 {
    if std::env::args().nth(1).as_deref() == Some("--worker") {
        return worker::main();
    }
    match args::parse(std::env::args_os()) {
        Ok(cfg) => coord::main(cfg),
        Err(exit) => exit.report(),
    }
}
