//! Node figures in Prometheus text format, kept in atomics so the hot path pays one add.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Counters and gauges of one node.
#[derive(Default)]
pub struct Metrics {
    pub http_requests: [AtomicU64; 5],
    pub ws_connections: AtomicI64,
    pub ws_connections_total: AtomicU64,
    pub rooms_active: AtomicI64,
    pub subscriptions: AtomicI64,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub socket_writes: AtomicU64,
    pub messages_posted: AtomicU64,
    pub deliveries: AtomicU64,
    pub slow_client_closes: AtomicU64,
    /// Of those, the ones whose queue was past its byte bound (not its frame bound).
    pub slow_client_closes_bytes: AtomicU64,
    pub bridge_reconnects: AtomicU64,
    pub presence_refresh_micros: AtomicU64,
    pub presence_refreshes: AtomicU64,
    pub logins_failed: AtomicU64,
}

impl Metrics {
    /// Counts an HTTP answer by status class.
    pub fn http(&self, status: u16) {
        let class = ((status / 100).clamp(1, 5) - 1) as usize;
        self.http_requests[class].fetch_add(1, Relaxed);
    }

    /// The Prometheus exposition text.
    pub fn render(&self, started: Instant) -> String {
        let mut out = String::with_capacity(2048);
        let (rss, fds) = process_figures();
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "process_resident_memory_bytes",
            "Resident memory.",
            rss as f64,
        );
        gauge(
            &mut out,
            "process_open_fds",
            "Open file descriptors.",
            fds as f64,
        );
        gauge(
            &mut out,
            "chatnode_uptime_seconds",
            "Seconds since the node started.",
            started.elapsed().as_secs_f64(),
        );
        let _ = writeln!(
            out,
            "# HELP chatnode_http_requests_total HTTP answers by status class.\n# TYPE chatnode_http_requests_total counter"
        );
        for (i, c) in self.http_requests.iter().enumerate() {
            let _ = writeln!(
                out,
                "chatnode_http_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.load(Relaxed)
            );
        }
        gauge(
            &mut out,
            "chatnode_ws_connections",
            "Connected sockets.",
            self.ws_connections.load(Relaxed) as f64,
        );
        counter(
            &mut out,
            "chatnode_ws_connections_total",
            "Sockets accepted.",
            self.ws_connections_total.load(Relaxed),
        );
        gauge(
            &mut out,
            "chatnode_rooms_active",
            "Rooms with local members.",
            self.rooms_active.load(Relaxed) as f64,
        );
        gauge(
            &mut out,
            "chatnode_subscriptions",
            "Pub/sub subscriptions of the bridge.",
            self.subscriptions.load(Relaxed) as f64,
        );
        counter(
            &mut out,
            "chatnode_frames_in_total",
            "Frames received from sockets.",
            self.frames_in.load(Relaxed),
        );
        counter(
            &mut out,
            "chatnode_frames_out_total",
            "Frames queued to sockets.",
            self.frames_out.load(Relaxed),
        );
        counter(
            &mut out,
            "chatnode_socket_writes_total",
            "Chunks of queued frames handed to sockets (one write each; a burst shares one).",
            self.socket_writes.load(Relaxed),
        );
        counter(
            &mut out,
            "chatnode_messages_posted_total",
            "Messages posted through this node.",
            self.messages_posted.load(Relaxed),
        );
        counter(
            &mut out,
            "chatnode_deliveries_total",
            "Message deliveries to local sockets.",
            self.deliveries.load(Relaxed),
        );
        counter(
            &mut out,
            "chatnode_slow_client_closes_total",
            "Sockets closed with 1013 for not reading.",
            self.slow_client_closes.load(Relaxed),
        );
        counter(
            &mut out,
            "chatnode_slow_client_closes_bytes_total",
            "Of the sockets closed with 1013, those whose queue was past ws.outbound_queue_bytes.",
            self.slow_client_closes_bytes.load(Relaxed),
        );
        counter(
            &mut out,
            "chatnode_bridge_reconnects_total",
            "Pub/sub reconnections of the bridge.",
            self.bridge_reconnects.load(Relaxed),
        );
        counter(
            &mut out,
            "chatnode_presence_refreshes_total",
            "Presence refresh batches.",
            self.presence_refreshes.load(Relaxed),
        );
        gauge(
            &mut out,
            "chatnode_presence_refresh_seconds",
            "Duration of the last presence refresh batch.",
            self.presence_refresh_micros.load(Relaxed) as f64 / 1e6,
        );
        counter(
            &mut out,
            "chatnode_logins_failed_total",
            "Failed sign-ins.",
            self.logins_failed.load(Relaxed),
        );
        out
    }
}

/// Resident bytes and open descriptors of this process, from /proc.
fn process_figures() -> (u64, u64) {
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    (rss, fds)
}
