//! Command-line options of the load generator (clap), checked and turned into the [`Config`]
//! every worker gets a copy of.

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use serde::{Deserialize, Serialize};

/// The command line as typed. Flag names, defaults and exit codes are those docs/LOADGEN.md and
/// the bench/ scripts use.
#[derive(Parser, Debug)]
#[command(
    name = "chatnode-loadgen",
    about = "chatnode-loadgen: many WebSocket clients against chatnode nodes, with latency and loss accounting.",
    override_usage = "chatnode-loadgen --url http://127.0.0.1:8080 [OPTIONS]",
    after_help = "Exit status: 0 when the run completed (see `ok` in the summary), 1 when the tool \
                  failed, 2 with --fail-on-loss, 64 for a bad command line. See docs/LOADGEN.md."
)]
struct Cli {
    /// Node base URL(s) (http://host:port); sockets and users are spread round-robin over them.
    /// Repeatable
    #[arg(
        long,
        value_name = "URL[,URL..]",
        default_value = "http://127.0.0.1:8080",
        help_heading = "Target"
    )]
    url: Vec<String>,
    /// Nodes whose /metrics are scraped before, at the plateau and after (default: the --url
    /// list; give the nodes themselves behind a proxy)
    #[arg(long, value_name = "URL[,URL..]", help_heading = "Target")]
    metrics_url: Vec<String>,
    /// A local process (node, redis, haproxy) whose RSS and CPU time are sampled at each phase.
    /// Repeatable
    #[arg(long, value_name = "NAME=PID", value_parser = name_and_pid, help_heading = "Target")]
    pid: Vec<(String, u32)>,

    /// Sockets to open
    #[arg(long, value_name = "N", default_value_t = 100, help_heading = "Load")]
    sockets: usize,
    /// Sockets opened per second, all workers together
    #[arg(long, value_name = "N", default_value_t = 500.0, help_heading = "Load")]
    ramp: f64,
    /// Rooms (channels) to join; 0 = idle authenticated sockets
    #[arg(long, value_name = "M", default_value_t = 0, help_heading = "Load")]
    rooms: usize,
    /// Members per room (default sockets / rooms); socket g is in room g % M while g < M * P,
    /// the others stay idle
    #[arg(long, value_name = "P", help_heading = "Load")]
    members: Option<usize>,
    /// Messages per second in, all senders together. Every room member sends, evenly spaced
    #[arg(long, value_name = "R", default_value_t = 0.0, help_heading = "Load")]
    rate: f64,
    /// Seconds of sending, or of holding idle sockets
    #[arg(long, value_name = "D", default_value_t = 10.0, help_heading = "Load")]
    duration: f64,
    /// At most this many seconds to wait for acks and deliveries
    #[arg(long, value_name = "S", default_value_t = 15.0, help_heading = "Load")]
    drain: f64,
    /// Posts one socket may have sent and not yet had answered (or waiting for their retry
    /// after `busy`), as a client that waits for its answers would; posts due beyond it wait in
    /// the load generator, in order, and their latency counts from when they were due (0 = no
    /// bound: every post goes out when due, whatever the node answers)
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Load")]
    window: usize,
    /// Length of each message text (at least 48)
    #[arg(long, value_name = "B", default_value_t = 64, help_heading = "Load")]
    message_bytes: usize,
    /// Distinct users (default = sockets); sockets share users when fewer
    #[arg(long, value_name = "U", help_heading = "Load")]
    users: Option<usize>,

    /// Usernames are P-<i>; registered, or signed in when taken
    #[arg(
        long,
        value_name = "P",
        default_value = "lg",
        help_heading = "Users and rooms"
    )]
    user_prefix: String,
    /// Their password
    #[arg(
        long,
        value_name = "W",
        default_value = "loadgen-password",
        help_heading = "Users and rooms"
    )]
    password: String,
    /// Rooms are P-<j>; created when missing
    #[arg(
        long,
        value_name = "P",
        default_value = "lg-room",
        help_heading = "Users and rooms"
    )]
    room_prefix: String,
    /// HTTP requests in flight per worker while setting up (keep workers x C below the node's
    /// redis.pool_size, see LOADGEN.md)
    #[arg(
        long,
        value_name = "C",
        default_value_t = 4,
        help_heading = "Users and rooms"
    )]
    setup_concurrency: usize,

    /// Worker processes (default: max(2, sockets / 9000)); each holds at most about 19,000
    /// sockets (file limit 20,000 per process)
    #[arg(long, value_name = "K", help_heading = "Processes and addresses")]
    workers: Option<usize>,
    /// auto (127.0.0.(2+worker) for loopback targets), none, or a comma list of local
    /// addresses, used round-robin by worker
    #[arg(
        long,
        value_name = "LIST",
        default_value = "auto",
        help_heading = "Processes and addresses"
    )]
    source_addrs: String,
    /// Seconds for a socket to connect, authorize and subscribe
    #[arg(
        long,
        value_name = "S",
        default_value_t = 15.0,
        help_heading = "Processes and addresses"
    )]
    connect_timeout: f64,

    /// Also write the JSON summary there (it always goes to stdout)
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    json: Option<String>,
    /// Latency histogram and time series picture
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    svg: Option<String>,
    /// A name for this run, copied into the summary
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "",
        hide_default_value = true,
        help_heading = "Output"
    )]
    label: String,
    /// No progress line on stderr
    #[arg(long, help_heading = "Output")]
    quiet: bool,
    /// Exit 2 when any connect failed or any delivery was lost, duplicated or out of order
    #[arg(long, help_heading = "Output")]
    fail_on_loss: bool,
}

/// Everything a run is configured with; workers get a copy.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    pub urls: Vec<String>,
    pub metrics_urls: Vec<String>,
    pub pids: Vec<(String, u32)>,
    pub sockets: usize,
    pub ramp: f64,
    pub rooms: usize,
    pub members: usize,
    pub rate: f64,
    pub duration: f64,
    pub drain: f64,
    /// Posts a socket may have open at once (0 = no bound).
    #[serde(default)]
    pub window: usize,
    pub message_bytes: usize,
    pub users: usize,
    pub user_prefix: String,
    pub password: String,
    pub room_prefix: String,
    pub setup_concurrency: usize,
    pub workers: usize,
    pub source_addrs: Vec<String>,
    pub connect_timeout: f64,
    pub json: Option<String>,
    pub svg: Option<String>,
    pub label: String,
    pub quiet: bool,
    pub fail_on_loss: bool,
}

impl Config {
    /// Sockets that are members of a room (and send).
    pub fn in_rooms(&self) -> usize {
        (self.rooms * self.members).min(self.sockets)
    }

    /// The room of global socket `g`, if any.
    pub fn room_of(&self, g: usize) -> Option<usize> {
        if self.rooms > 0 && g < self.in_rooms() {
            Some(g % self.rooms)
        } else {
            None
        }
    }

    pub fn room_name(&self, room: usize) -> String {
        format!("{}-{room}", self.room_prefix)
    }

    pub fn username(&self, g: usize) -> String {
        format!("{}-{}", self.user_prefix, g % self.users)
    }

    /// Node URL (no trailing slash) of global socket `g`.
    pub fn url_of(&self, g: usize) -> &str {
        &self.urls[g % self.urls.len()]
    }

    /// Source address of worker `w`, if any.
    pub fn source_of(&self, w: usize) -> Option<&str> {
        if self.source_addrs.is_empty() {
            None
        } else {
            Some(&self.source_addrs[w % self.source_addrs.len()])
        }
    }
}

/// Why the command line gave no run: help was asked for, or it is wrong.
#[derive(Debug)]
pub struct NoRun(clap::Error);

impl NoRun {
    /// Prints help (exit 0) or the error with the usage line (exit 64, as sysexits' EX_USAGE).
    pub fn report(&self) -> i32 {
        let _ = self.0.print();
        if self.0.use_stderr() {
            64
        } else {
            0
        }
    }
}

/// Parses the command line (program name first) into a checked run configuration.
pub fn parse<I, T>(args: I) -> Result<Config, NoRun>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(NoRun)?;
    config(cli).map_err(|e| NoRun(Cli::command().error(ErrorKind::ValueValidation, e)))
}

/// `NAME=PID` of `--pid`.
fn name_and_pid(v: &str) -> Result<(String, u32), String> {
    let (name, pid) = v
        .split_once('=')
        .ok_or_else(|| format!("`{v}` is not NAME=PID"))?;
    let pid = pid
        .parse()
        .map_err(|_| format!("`{pid}` is not a process id"))?;
    Ok((name.to_string(), pid))
}

/// A comma list of URLs or addresses, each trimmed and without a trailing slash.
fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether a URL's host is on the loopback range.
fn loopback(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "localhost" || host.starts_with("127.")
}

/// Checks the options against each other and fills the defaults that depend on others.
fn config(cli: Cli) -> Result<Config, String> {
    let mut urls: Vec<String> = cli.url.iter().flat_map(|u| list(u)).collect();
    if urls.is_empty() {
        urls.push("http://127.0.0.1:8080".into());
    }
    for u in &urls {
        if !u.starts_with("http://") {
            return Err(format!("--url `{u}`: give the node's http:// base URL"));
        }
    }
    let mut metrics_urls: Vec<String> = cli.metrics_url.iter().flat_map(|u| list(u)).collect();
    if metrics_urls.is_empty() {
        metrics_urls = urls.clone();
    }
    let Cli {
        sockets,
        ramp,
        rooms,
        rate,
        duration,
        drain,
        window,
        connect_timeout,
        message_bytes,
        setup_concurrency,
        ..
    } = cli;
    if sockets == 0 {
        return Err("--sockets must be at least 1".into());
    }
    if ramp <= 0.0 {
        return Err("--ramp must be positive".into());
    }
    if rate < 0.0 || duration < 0.0 || drain < 0.0 || connect_timeout <= 0.0 {
        return Err(
            "--rate, --duration, --drain and --connect-timeout must not be negative".into(),
        );
    }
    let members = match cli.members {
        Some(m) => m,
        None if rooms > 0 => sockets.div_ceil(rooms),
        None => 0,
    };
    if rooms > 0 && members == 0 {
        return Err("--members must be at least 1".into());
    }
    if rate > 0.0 && rooms == 0 {
        return Err("--rate needs --rooms: only room members send".into());
    }
    if message_bytes < 48 {
        return Err("--message-bytes must be at least 48".into());
    }
    let users = cli.users.unwrap_or(sockets).clamp(1, sockets);
    let workers = cli
        .workers
        .unwrap_or_else(|| sockets.div_ceil(9000).max(2))
        .clamp(1, sockets);
    if sockets.div_ceil(workers) > 19_000 {
        return Err(format!(
            "{sockets} sockets over {workers} workers is more than 19,000 per process: raise --workers"
        ));
    }
    if setup_concurrency == 0 {
        return Err("--setup-concurrency must be at least 1".into());
    }
    let source_addrs = match cli.source_addrs.as_str() {
        "none" => Vec::new(),
        "auto" if urls.iter().all(|u| loopback(u)) => (0..workers.min(250))
            .map(|w| format!("127.0.0.{}", 2 + w))
            .collect(),
        "auto" => Vec::new(),
        other => list(other),
    };
    for name in [&cli.user_prefix, &cli.room_prefix] {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(format!(
                "prefix `{name}`: use lowercase letters, digits, - and _"
            ));
        }
    }
    Ok(Config {
        urls,
        metrics_urls,
        pids: cli.pid,
        sockets,
        ramp,
        rooms,
        members,
        rate,
        duration,
        drain,
        window,
        message_bytes,
        users,
        user_prefix: cli.user_prefix,
        password: cli.password,
        room_prefix: cli.room_prefix,
        setup_concurrency,
        workers,
        source_addrs,
        connect_timeout,
        json: cli.json,
        svg: cli.svg,
        label: cli.label,
        quiet: cli.quiet,
        fail_on_loss: cli.fail_on_loss,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A checked configuration from a command line written as one string.
    pub(crate) fn parse_ok(s: &str) -> Config {
        parse(std::iter::once("chatnode-loadgen").chain(s.split_whitespace())).unwrap()
    }

    fn parse_err(s: &str) -> NoRun {
        parse(std::iter::once("chatnode-loadgen").chain(s.split_whitespace())).unwrap_err()
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_rooms() {
        let c = parse_ok("--sockets 10 --rooms 3 --rate=5");
        assert_eq!(c.members, 4);
        assert_eq!(c.in_rooms(), 10);
        assert_eq!(c.room_of(4), Some(1));
        assert_eq!(c.workers, 2);
        assert_eq!(c.source_addrs, vec!["127.0.0.2", "127.0.0.3"]);
        let c = parse_ok("--sockets 10 --rooms 2 --members 3");
        assert_eq!(c.room_of(5), Some(1));
        assert_eq!(c.room_of(6), None);
    }

    #[test]
    fn every_default_is_the_documented_one() {
        let c = parse_ok("");
        assert_eq!(c.urls, vec!["http://127.0.0.1:8080"]);
        assert_eq!(c.metrics_urls, c.urls);
        assert_eq!(
            (c.sockets, c.users, c.workers, c.rooms, c.members),
            (100, 100, 2, 0, 0)
        );
        assert_eq!(
            (c.ramp, c.rate, c.duration, c.drain),
            (500.0, 0.0, 10.0, 15.0)
        );
        assert_eq!((c.message_bytes, c.setup_concurrency), (64, 4));
        assert_eq!(c.connect_timeout, 15.0);
        assert_eq!(
            (c.user_prefix.as_str(), c.room_prefix.as_str()),
            ("lg", "lg-room")
        );
        assert_eq!(c.password, "loadgen-password");
        assert_eq!((c.json, c.svg, c.label.as_str()), (None, None, ""));
        assert!(!c.quiet && !c.fail_on_loss);
    }

    #[test]
    fn lists_repeats_and_pids() {
        let c = parse_ok(
            "--url http://a:1/,http://b:2 --url=http://c:3 --metrics-url http://m:9 \
             --pid node=12 --pid redis=34 --source-addrs none --quiet --fail-on-loss",
        );
        assert_eq!(c.urls, vec!["http://a:1", "http://b:2", "http://c:3"]);
        assert_eq!(c.metrics_urls, vec!["http://m:9"]);
        assert_eq!(c.pids, vec![("node".into(), 12), ("redis".into(), 34)]);
        assert!(c.source_addrs.is_empty());
        assert!(c.quiet && c.fail_on_loss);
        let c = parse_ok("--url http://10.0.0.1:80 --source-addrs auto");
        assert!(
            c.source_addrs.is_empty(),
            "no auto addresses for a remote node"
        );
    }

    #[test]
    fn rejects_bad_values_with_exit_64() {
        for bad in [
            "--rate 5",
            "--bogus 1",
            "--sockets x",
            "--sockets 0",
            "--pid node",
            "--url https://a:1",
            "--message-bytes 10",
            "--rooms 1 --members 0",
            "--user-prefix Upper",
            "--sockets",
        ] {
            assert_eq!(parse_err(bad).report(), 64, "{bad}");
        }
    }

    #[test]
    fn help_exits_0_and_names_every_option() {
        let help = parse_err("--help");
        assert!(!help.0.use_stderr());
        let text = help.0.to_string();
        for flag in [
            "--url",
            "--metrics-url",
            "--pid",
            "--sockets",
            "--ramp",
            "--rooms",
            "--members",
            "--rate",
            "--duration",
            "--drain",
            "--message-bytes",
            "--users",
            "--user-prefix",
            "--password",
            "--room-prefix",
            "--setup-concurrency",
            "--workers",
            "--source-addrs",
            "--connect-timeout",
            "--json",
            "--svg",
            "--label",
            "--quiet",
            "--fail-on-loss",
        ] {
            assert!(text.contains(flag), "help lacks {flag}:\n{text}");
        }
        assert!(!parse_err("-h").0.use_stderr());
    }
}
