//! The `chatnode` command: `serve` (the default), `check-config`, `healthcheck`, `load-demo`,
//! `migrate` (converts keys of the older layout), `transcriber` (only transcribes voice
//! messages, for the Redis in `redis.url`).

use std::process::ExitCode;

use chatnode::Settings;

const USAGE: &str =
    "usage: chatnode [serve | check-config | healthcheck | load-demo | migrate | transcriber]";

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chatnode: invalid settings: {e}");
            return ExitCode::from(2);
        }
    };
    // The audio decoders log every flaw of a bad upload (which is answered 415 anyway) at warn
    // and error: kept out of the node's log unless RUST_LOG names them.
    let level = format!("{},symphonia=off", settings.log.level);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    match command.as_str() {
        "serve" => match chatnode::run(settings) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chatnode: {e}");
                ExitCode::FAILURE
            }
        },
        "check-config" => {
            println!("{}", settings.to_pretty_json());
            eprintln!("{}", chatnode::cli::describe_redis(&settings));
            ExitCode::SUCCESS
        }
        "healthcheck" => chatnode::cli::healthcheck(&settings),
        "load-demo" => chatnode::cli::load_demo(settings),
        "migrate" => chatnode::cli::migrate(settings),
        "transcriber" => chatnode::voice::transcriber::run_command(settings),
        other => {
            eprintln!("chatnode: unknown command `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
