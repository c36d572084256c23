//! What every handler and actor of one node shares: the store, the settings, the figures, and the
//! addresses of the long-lived actors.
//!
//! The node builds it at start-up (`node.rs`); HTTP handlers and WebSocket sessions read it. It
//! depends on what it holds and on nothing that uses it, so it sits below them all.

use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicUsize};
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
    /// Posts of this node waiting or being stored, bounded by `ws.max_inflight_per_node`.
    pub posts_in_flight: PostSlots,
    /// Voice uploads this node is decoding, bounded by `voice.max_concurrent_decodes`.
    pub decodes: PostSlots,
}

/// The node's bound on posts in flight: every WebSocket post, REST post and voice upload holds
/// one [`PostSlot`] from when it is accepted until it is answered, so an overloaded node refuses
/// posts (`busy`) instead of holding ever more of them in memory.
pub struct PostSlots {
    taken: Arc<AtomicUsize>,
    limit: usize,
}

impl PostSlots {
    /// Room for `limit` posts at once.
    pub fn new(limit: usize) -> Self {
        PostSlots {
            taken: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// A slot for one post, or None when `limit` posts are already in flight.
    pub fn try_take(&self) -> Option<PostSlot> {
        let limit = self.limit;
        self.taken
            .fetch_update(AcqRel, Relaxed, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| PostSlot(self.taken.clone()))
    }

    /// Posts in flight now.
    pub fn taken(&self) -> usize {
        self.taken.load(Relaxed)
    }
}

/// One post's place among the node's posts in flight; given back when dropped.
pub struct PostSlot(Arc<AtomicUsize>);

impl Drop for PostSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, AcqRel);
    }
}
