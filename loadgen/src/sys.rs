//! Figures about processes and nodes: RSS and CPU time from /proc, counters from /metrics.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Unix time in microseconds (one clock for every worker process on this machine).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// RSS and CPU seconds (user + system) of one process.
#[derive(Clone, Debug, Serialize)]
pub struct ProcSample {
    pub rss_bytes: u64,
    pub cpu_secs: f64,
}

pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ProcSample {
        rss_bytes: rss_kb * 1024,
        cpu_secs: ticks as f64 / hz,
    })
}

/// CPU seconds all cores of this machine spent busy since boot (from /proc/stat).
pub fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let busy = f.iter().take(8).sum::<u64>() - f.get(3)? - f.get(4)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(busy as f64 / hz)
}

/// CPU seconds used by this process's waited-for children (the workers).
pub fn children_cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) != 0 {
            return 0.0;
        }
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(ru.ru_utime) + t(ru.ru_stime)
    }
}

/// The node counters the summary keeps, by their Prometheus names.
pub const NODE_METRICS: &[&str] = &[
    "process_resident_memory_bytes",
    "process_open_fds",
    "chatnode_ws_connections",
    "chatnode_frames_in_total",
    "chatnode_frames_out_total",
    "chatnode_socket_writes_total",
    "chatnode_messages_posted_total",
    "chatnode_deliveries_total",
    "chatnode_slow_client_closes_total",
    "chatnode_bridge_reconnects_total",
    "chatnode_rooms_active",
];

/// Scrapes a node's /metrics; the unlabelled samples of [`NODE_METRICS`].
pub fn scrape(base: &str) -> Result<BTreeMap<String, f64>, String> {
    let (status, body) =
        crate::http::call_blocking(base, reqwest::Method::GET, "/metrics", None, None)?;
    if status != 200 {
        return Err(format!("{base}/metrics: http {status}"));
    }
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, v) = l.split_once(' ')?;
            NODE_METRICS
                .contains(&name)
                .then(|| Some((name.to_string(), v.trim().parse().ok()?)))?
        })
        .collect())
}

/// RFC 3339 UTC time of unix seconds, with milliseconds as the node writes its dates.
pub fn rfc3339(secs: u64) -> String {
    chatnode_protocol::rfc3339((secs as i64).saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn samples_this_process() {
        let s = super::proc_sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0);
    }
}
