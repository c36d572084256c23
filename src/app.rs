//! What every handler and actor of one node shares: the store, the settings, the figures, and the
//! addresses of the long-lived actors.
//!
//! The node builds it at start-up (`node.rs`); HTTP handlers and WebSocket sessions read it. It
//! depends on what it holds and on nothing that uses it, so it sits below them all.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;

use crate::actors::hub::Hub;
use crate::actors::presence::Presence;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::store::Store;

/// What every handler and actor shares on one node.
pub struct App {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub hub: Addr<Hub>,
    pub presence: Addr<Presence>,
    pub started: Instant,
    pub stopping: AtomicBool,
    /// Voice messages: this node's engine state, as /readyz reports it.
    pub voice: Arc<crate::voice::Status>,
}
