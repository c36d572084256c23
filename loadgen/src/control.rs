//! What the coordinator and its worker processes tell each other: one JSON object per line,
//! commands on the worker's stdin, events on its stdout.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::args::Config;
use crate::hist::Sparse;

/// The first line a worker reads.
#[derive(Serialize, Deserialize)]
pub struct Init {
    pub index: usize,
    pub run_id: String,
    /// Unix µs the run started at; progress ticks fall on whole seconds after it.
    pub epoch_us: u64,
    pub config: Config,
}

/// Coordinator → worker.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Cmd {
    /// Start sending (or holding) at this unix µs.
    Go { t0_us: u64 },
    /// Acknowledged posts per room, all workers together: what each member should receive.
    Expect { rooms: Vec<u64> },
    /// Close every socket and exit.
    Stop,
}

/// Worker → coordinator.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    Progress(Progress),
    Ready(ConnectReport),
    Sent(SentReport),
    Final(FinalReport),
    Fatal { error: String },
}

/// Once a second: cumulative counters and the latencies recorded since the last tick.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Progress {
    /// Whole seconds since the epoch of the run.
    pub tick: u64,
    pub users_ready: u64,
    pub attempted: u64,
    pub connected: u64,
    pub failed: u64,
    pub open: u64,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub latency: Sparse,
}

#[derive(Serialize, Deserialize, Debug, Default)]
pub struct ConnectReport {
    pub attempted: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub reasons: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
pub struct SentReport {
    /// Acknowledged posts per room index.
    pub rooms: Vec<u64>,
    pub sent: u64,
    pub acked: u64,
    pub unacked: u64,
    /// `busy` answers: sends the node refused for now.
    #[serde(default)]
    pub busy: u64,
    /// Posts refused at least once.
    #[serde(default)]
    pub refused: u64,
    /// Sends of refused posts (same post, same `client_id`).
    #[serde(default)]
    pub resent: u64,
    /// Posts that waited in the load generator for their socket's window (`--window`).
    #[serde(default)]
    pub held: u64,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
pub struct FinalReport {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Deliveries of posts that were never acknowledged (their sender's socket went away).
    pub unexpected: u64,
    pub latency: Sparse,
    pub ack_latency: Sparse,
    pub answer_latency: Sparse,
    pub disconnects: BTreeMap<String, u64>,
    pub frames_in: u64,
    pub first_delivery_us: u64,
    pub last_delivery_us: u64,
}
