//! Command-line options of the load generator (hand-rolled: `--name value` or `--name=value`).

use serde::{Deserialize, Serialize};

pub const USAGE: &str = "\
chatnode-loadgen: many WebSocket clients against chatnode nodes, with latency and loss accounting.

USAGE:
    chatnode-loadgen --url http://127.0.0.1:8080 [OPTIONS]

TARGET
    --url URL[,URL..]        node base URL(s) (http://host:port); sockets and users are spread
                             round-robin over them. Repeatable. Default http://127.0.0.1:8080
    --metrics-url URL[,..]   nodes whose /metrics are scraped before, at the plateau and after
                             (default: the --url list; give the nodes themselves behind a proxy)
    --pid NAME=PID           a local process (node, redis, haproxy) whose RSS and CPU time are
                             sampled at each phase. Repeatable.

LOAD
    --sockets N              sockets to open (default 100)
    --ramp N                 sockets opened per second, all workers together (default 500)
    --rooms M                rooms (channels) to join; 0 = idle authenticated sockets (default 0)
    --members P              members per room (default sockets / rooms); socket g is in room
                             g % M while g < M * P, the others stay idle
    --rate R                 messages per second in, all senders together (default 0). Every
                             room member sends, evenly spaced
    --duration D             seconds of sending, or of holding idle sockets (default 10)
    --drain S                at most this many seconds to wait for acks and deliveries (default 15)
    --message-bytes B        length of each message text (default 64, at least 48)
    --users U                distinct users (default = sockets); sockets share users when fewer

USERS AND ROOMS
    --user-prefix P          usernames are P-<i> (default lg); registered, or signed in when taken
    --password W             their password (default loadgen-password)
    --room-prefix P          rooms are P-<j> (default lg-room); created when missing
    --setup-concurrency C    HTTP requests in flight per worker while setting up (default 4;
                             keep workers x C below the node's redis.pool_size, see LOADGEN.md)

PROCESSES AND ADDRESSES
    --workers K              worker processes (default: max(2, sockets / 9000)); each holds at
                             most about 19,000 sockets (file limit 20,000 per process)
    --source-addrs LIST      auto (127.0.0.(2+worker) for loopback targets), none, or a
                             comma list of local addresses, used round-robin by worker
    --connect-timeout S      seconds for a socket to connect, authorize and subscribe (default 15)

OUTPUT
    --json FILE              also write the JSON summary there (it always goes to stdout)
    --svg FILE               latency histogram and time series picture
    --label TEXT             a name for this run, copied into the summary
    --quiet                  no progress line on stderr
    --fail-on-loss           exit 2 when any connect failed or any delivery was lost,
                             duplicated or out of order
    -h, --help               this text
";

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

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{name}: `{v}` is not a valid number"))
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

/// Parses the command line (without the program name). `Ok(None)` means help was asked for.
pub fn parse(args: &[String]) -> Result<Option<Config>, String> {
    let mut urls = Vec::new();
    let mut metrics_urls = Vec::new();
    let mut pids = Vec::new();
    let mut sockets = 100usize;
    let mut ramp = 500.0;
    let mut rooms = 0usize;
    let mut members: Option<usize> = None;
    let mut rate = 0.0;
    let mut duration = 10.0;
    let mut drain = 15.0;
    let mut message_bytes = 64usize;
    let mut users: Option<usize> = None;
    let mut user_prefix = "lg".to_string();
    let mut password = "loadgen-password".to_string();
    let mut room_prefix = "lg-room".to_string();
    let mut setup_concurrency = 4usize;
    let mut workers: Option<usize> = None;
    let mut source = "auto".to_string();
    let mut connect_timeout = 15.0;
    let mut json = None;
    let mut svg = None;
    let mut label = String::new();
    let mut quiet = false;
    let mut fail_on_loss = false;

    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--quiet" => {
                quiet = true;
                continue;
            }
            "--fail-on-loss" => {
                fail_on_loss = true;
                continue;
            }
            _ => {}
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args
                    .get(i)
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))?;
                i += 1;
                v
            }
        };
        match name.as_str() {
            "--url" => urls.extend(list(&value)),
            "--metrics-url" => metrics_urls.extend(list(&value)),
            "--pid" => {
                let (n, p) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--pid is NAME=PID, not `{value}`"))?;
                pids.push((n.to_string(), num("--pid", p)?));
            }
            "--sockets" => sockets = num(&name, &value)?,
            "--ramp" => ramp = num(&name, &value)?,
            "--rooms" => rooms = num(&name, &value)?,
            "--members" => members = Some(num(&name, &value)?),
            "--rate" => rate = num(&name, &value)?,
            "--duration" => duration = num(&name, &value)?,
            "--drain" => drain = num(&name, &value)?,
            "--message-bytes" => message_bytes = num(&name, &value)?,
            "--users" => users = Some(num(&name, &value)?),
            "--user-prefix" => user_prefix = value,
            "--password" => password = value,
            "--room-prefix" => room_prefix = value,
            "--setup-concurrency" => setup_concurrency = num(&name, &value)?,
            "--workers" => workers = Some(num(&name, &value)?),
            "--source-addrs" => source = value,
            "--connect-timeout" => connect_timeout = num(&name, &value)?,
            "--json" => json = Some(value),
            "--svg" => svg = Some(value),
            "--label" => label = value,
            other => return Err(format!("unknown option `{other}` (see --help)")),
        }
    }
    if urls.is_empty() {
        urls.push("http://127.0.0.1:8080".into());
    }
    for u in &urls {
        if !u.starts_with("http://") {
            return Err(format!("--url `{u}`: give the node's http:// base URL"));
        }
    }
    if metrics_urls.is_empty() {
        metrics_urls = urls.clone();
    }
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
    let members = match members {
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
    let users = users.unwrap_or(sockets).clamp(1, sockets);
    let workers = workers
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
    let source_addrs = match source.as_str() {
        "none" => Vec::new(),
        "auto" => {
            if urls.iter().all(|u| loopback(u)) {
                (0..workers.min(250))
                    .map(|w| format!("127.0.0.{}", 2 + w))
                    .collect()
            } else {
                Vec::new()
            }
        }
        other => list(other),
    };
    for name in [&user_prefix, &room_prefix] {
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
    Ok(Some(Config {
        urls,
        metrics_urls,
        pids,
        sockets,
        ramp,
        rooms,
        members,
        rate,
        duration,
        drain,
        message_bytes,
        users,
        user_prefix,
        password,
        room_prefix,
        setup_concurrency,
        workers,
        source_addrs,
        connect_timeout,
        json,
        svg,
        label,
        quiet,
        fail_on_loss,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(s: &str) -> Config {
        let args: Vec<String> = s.split_whitespace().map(String::from).collect();
        parse(&args).unwrap().unwrap()
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
    fn rejects_bad_values() {
        let args: Vec<String> = ["--rate", "5"].iter().map(|s| s.to_string()).collect();
        assert!(parse(&args).is_err());
        let args: Vec<String> = ["--bogus", "1"].iter().map(|s| s.to_string()).collect();
        assert!(parse(&args).is_err());
    }
}
