//! The posting budget (`ws.rate_limit_messages` per `ws.rate_limit_window_secs` per user, on
//! every node together), spent from leases. The count lives in Redis (`postrate:{user:<u>}`, in
//! the user's slot, so never inside the channel's posting script); a node that needs budget for
//! a user takes a small lease of it in one step ([`LEASE_LUA`]: the count goes up by the lease,
//! never past the limit) and spends it on that user's next posts without asking Redis again until
//! the lease is used up or its window ends. A post that stored nothing (a repeated `client_id`,
//! a non-member, a muted member) gives its share back to Redis, so that no node sits on a share
//! another node could use.
//!
//! The limit holds across nodes because a leased post counts as spent: a user who posts through
//! two nodes at once may be refused up to one lease per other node early, never allowed more.
//! With a lease of 1 (the automatic size for limits under 16) every post is counted in Redis by
//! itself, as without leases.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Takes up to ARGV[2] posts of the budget KEYS[1] (`postrate:{user:<u>}`) whose limit is ARGV[3]
/// per window of ARGV[1] ms. Answers how many were granted (0 = none left) and the window's
/// remaining ms. The count never passes the limit, so a refused lease costs nothing later.
const LEASE_LUA: &str = r#"
local want = tonumber(ARGV[2])
local n = redis.call('INCRBY', KEYS[1], want)
if n == want or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local granted = want
local over = n - tonumber(ARGV[3])
if over > 0 then
  if over > want then over = want end
  granted = want - over
  redis.call('DECRBY', KEYS[1], over)
end
return {granted, redis.call('PTTL', KEYS[1])}
"#;

pub(crate) static LEASE_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(LEASE_LUA));

/// The automatic lease size for a limit: an eighth of it, from 1 to 16 posts.
pub(crate) fn auto_lease(limit: u32) -> u32 {
    (limit / 8).clamp(1, 16)
}

/// The lease size to use: `ws.post_budget_lease`, or [`auto_lease`] when it is 0; never more
/// than the limit.
pub(crate) fn lease_size(setting: u32, limit: u32) -> u32 {
    let size = if setting == 0 {
        auto_lease(limit)
    } else {
        setting
    };
    size.min(limit).max(1)
}

/// What is left of one user's lease on this node.
#[derive(Clone, Copy, Debug)]
struct Lease {
    left: u32,
    /// When the window it was taken in ends; the lease is void after it.
    until: Instant,
}

/// This node's leases, by the budget's key.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    map: Mutex<LeaseMap>,
    /// One lease request at a time per budget ([`Leases::asking`]), striped by key.
    asking: [tokio::sync::Mutex<()>; ASK_STRIPES],
}

/// Locks the lease requests of budgets are striped over (32: the most `Default` derives).
const ASK_STRIPES: usize = 32;

#[derive(Debug, Default)]
struct LeaseMap {
    leases: HashMap<String, Lease>,
    last_prune: Option<Instant>,
}

/// How many ended leases may pile up before they are dropped (at most once a second).
const PRUNE_ABOVE: usize = 1024;

impl Leases {
    /// Spends one post of the lease of `key`, if one is held and its window has not ended.
    pub(crate) fn take(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.leases.get_mut(key) {
            Some(l) if l.until > now && l.left > 0 => {
                l.left -= 1;
                true
            }
            _ => false,
        }
    }

    /// Waits until no other post of this node is asking Redis for a lease of `key`'s budget,
    /// and holds that turn until the guard is dropped. Posts of one user sent at once then take
    /// one lease and share it, where each would otherwise lease for itself (ten posts at once
    /// with a lease of 16 would hold 160 of the user's budget on this node). Call
    /// [`Leases::take`] again once it is your turn: the post before may have left some.
    pub(crate) async fn asking(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one(key);
        self.asking[(h % ASK_STRIPES as u64) as usize].lock().await
    }

    /// Keeps the unspent part of a lease just granted (`granted` posts, one of them spent by
    /// the caller) for a window ending in `window_left`.
    pub(crate) fn keep(&self, key: &str, granted: u32, window_left: Duration) {
        let now = Instant::now();
        let until = now + window_left;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let spare = granted.saturating_sub(1);
        match map.leases.get_mut(key) {
            // Another post of the same user took a lease meanwhile, in the same window: add up.
            Some(l) if l.until > now => {
                l.left += spare;
                l.until = l.until.max(until);
            }
            _ => {
                map.leases
                    .insert(key.to_string(), Lease { left: spare, until });
            }
        }
        if map.leases.len() > PRUNE_ABOVE
            && map
                .last_prune
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            map.leases.retain(|_, l| l.until > now);
            map.last_prune = Some(now);
        }
    }

    /// Leases held (ended ones not yet dropped included).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap().leases.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(lease_size(0, 30), 3);
        assert_eq!(lease_size(0, 6), 1);
        assert_eq!(lease_size(0, 1_000_000), 16);
        assert_eq!(lease_size(1, 1_000_000), 1);
        assert_eq!(lease_size(50, 20), 20);
        assert_eq!(lease_size(5, 0), 1);
    }

    #[test]
    fn a_lease_is_spent_and_ends_with_its_window() {
        let l = Leases::default();
        assert!(!l.take("k"), "nothing leased yet");
        l.keep("k", 3, Duration::from_secs(10));
        assert!(l.take("k"));
        assert!(l.take("k"));
        assert!(
            !l.take("k"),
            "3 granted, one spent by the caller, two taken"
        );
        l.keep("k", 2, Duration::from_secs(10));
        assert!(l.take("k"));
        assert!(!l.take("k"));
        l.keep("gone", 5, Duration::ZERO);
        assert!(!l.take("gone"), "a lease whose window ended is void");
    }

    #[test]
    fn ended_leases_are_dropped() {
        let l = Leases::default();
        for i in 0..=PRUNE_ABOVE {
            l.keep(&format!("u{i}"), 2, Duration::ZERO);
        }
        l.keep("live", 2, Duration::from_secs(10));
        assert_eq!(l.len(), 1, "only the live lease is left");
        assert!(l.take("live"));
    }
}
