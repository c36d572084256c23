//! What every handler and actor of one node shares: the store, the settings, the figures, and the
//! addresses of the long-lived actors.
//!
//! The node builds it at start-up (`node.rs`); HTTP handlers and WebSocket sessions read it. It
//! depends on what it holds and on nothing that uses it, so it sits below them all.

use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
///
/// It also says how long a refused client should wait ([`PostSlots::retry_after_ms`]): a node
/// far over its bound refuses many tries for each one it takes, and every refused try costs it a
/// frame in and a frame out, so the wait it names grows with the share of tries it refused in the
/// last second, and is spread (±25 %) so that the clients refused together do not come back
/// together.
pub struct PostSlots {
    taken: Arc<AtomicUsize>,
    limit: usize,
    pressure: Mutex<Pressure>,
}

/// Posts taken and refused, per second.
struct Pressure {
    window_start: Instant,
    accepted: u64,
    refused: u64,
    /// Tries per accepted post in the last complete second (1 = nothing refused).
    tries_per_post: f64,
}

/// The longest wait a `busy` names, as a multiple of the base wait.
const MAX_BACKOFF: f64 = 20.0;

impl PostSlots {
    /// Room for `limit` posts at once.
    pub fn new(limit: usize) -> Self {
        PostSlots {
            taken: Arc::new(AtomicUsize::new(0)),
            limit,
            pressure: Mutex::new(Pressure {
                window_start: Instant::now(),
                accepted: 0,
                refused: 0,
                tries_per_post: 1.0,
            }),
        }
    }

    /// A slot for one post, or None when `limit` posts are already in flight.
    pub fn try_take(&self) -> Option<PostSlot> {
        let limit = self.limit;
        let slot = self
            .taken
            .fetch_update(AcqRel, Relaxed, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| PostSlot(self.taken.clone()));
        self.count(slot.is_some());
        slot
    }

    /// A post refused for another reason than this bound (its socket's own bound, or a wait
    /// behind its socket's earlier frames): it counts towards the pressure all the same.
    pub fn note_refused(&self) {
        self.count(false);
    }

    fn count(&self, accepted: bool) {
        self.count_at(accepted, Instant::now());
    }

    fn count_at(&self, accepted: bool, now: Instant) {
        let mut p = self.pressure.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(p.window_start);
        if elapsed >= Duration::from_secs(1) {
            // A window with nothing accepted but refusals is as far over as the bound allows.
            p.tries_per_post = if p.accepted == 0 {
                if p.refused == 0 {
                    1.0
                } else {
                    MAX_BACKOFF
                }
            } else {
                ((p.accepted + p.refused) as f64 / p.accepted as f64).min(MAX_BACKOFF)
            };
            // Two seconds or more without a post: the earlier pressure is gone.
            if elapsed >= Duration::from_secs(2) {
                p.tries_per_post = 1.0;
            }
            p.window_start = now;
            p.accepted = 0;
            p.refused = 0;
        }
        if accepted {
            p.accepted += 1;
        } else {
            p.refused += 1;
        }
    }

    /// How long a refused client should wait, from `base_ms`: `base_ms` times the tries per
    /// accepted post in the last second (at most 20×), spread by ±25 %.
    pub fn retry_after_ms(&self, base_ms: u64) -> u64 {
        let factor = self
            .pressure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tries_per_post;
        let spread = 0.75 + rand::random::<f64>() * 0.5;
        ((base_ms.max(1) as f64) * factor * spread).round().max(1.0) as u64
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_a_busy_names_grows_with_the_share_refused_and_falls_back() {
        let slots = PostSlots::new(4);
        let t0 = slots.pressure.lock().unwrap().window_start;
        let ms = |s: f64| t0 + Duration::from_secs_f64(s);
        // Nothing refused yet: the base wait, spread.
        assert!((75..=125).contains(&slots.retry_after_ms(100)));
        // One second with 1 accepted and 9 refused tries: ten tries per post.
        slots.count_at(true, ms(0.1));
        for _ in 0..9 {
            slots.count_at(false, ms(0.5));
        }
        slots.count_at(true, ms(1.2));
        for _ in 0..50 {
            let w = slots.retry_after_ms(100);
            assert!((750..=1250).contains(&w), "{w}");
        }
        // Only refusals in a second: the longest wait.
        for _ in 0..5 {
            slots.count_at(false, ms(1.5));
        }
        // (the window that began at 1.2 s held 1 accepted + 5 refused: six tries per post)
        slots.count_at(false, ms(2.3));
        let w = slots.retry_after_ms(100);
        assert!((450..=750).contains(&w), "{w}");
        slots.count_at(false, ms(3.4));
        let w = slots.retry_after_ms(100);
        assert!((1500..=2500).contains(&w), "{w}");
        // Quiet for two seconds and more: back to the base wait.
        slots.count_at(true, ms(6.0));
        assert!((75..=125).contains(&slots.retry_after_ms(100)));
        // The bound itself still holds.
        let held: Vec<_> = (0..4).filter_map(|_| slots.try_take()).collect();
        assert_eq!(held.len(), 4);
        assert!(slots.try_take().is_none());
        drop(held);
        assert_eq!(slots.taken(), 0);
    }
}
