//! chatnode-loadgen's parts. The same executable is the coordinator (what an operator runs) and,
//! started by it with `--worker`, each worker process.

pub mod args;
pub mod coord;
pub mod hist;
pub mod http;
pub mod proto;
pub mod svg;
pub mod sys;
pub mod worker;

/// Runs the command line; the process exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return worker::main();
    }
    match args::parse(&args) {
        Ok(Some(cfg)) => coord::main(cfg),
        Ok(None) => {
            print!("{}", args::USAGE);
            0
        }
        Err(e) => {
            eprintln!("chatnode-loadgen: {e}\n\n{}", args::USAGE);
            64
        }
    }
}
