//! `redis.ack_replicas`: a post is answered `posted` only once that many replicas hold it.
//!
//! Redis replicates asynchronously, so a master that fails right after storing a post can lose
//! it when its replica is promoted. With `ack_replicas = n > 0` the posting path waits for
//! `WAIT n <ack_timeout_ms>` after its script, on the same connection and on the master that took
//! the write (on a cluster the shared connection would send a bare `WAIT` to every master, so it
//! is routed by the channel's key). `WAIT` covers every earlier write of its connection, so the
//! post and its `client_id` record are on the replica when the poster hears `posted`. Fewer
//! replicas in time, or the connection lost while waiting, answer `unknown_outcome`: the client
//! re-sends with the same `client_id` and the post is stored at most once.
//!
//! Group commit: `WAIT` holds its connection until the replicas answer, so one `WAIT` per post
//! would let posts through one replication round trip at a time. Since one `WAIT` covers every
//! write made before it on the connection, posts that finish while a `WAIT` is in flight share
//! the next one: per master at most one `WAIT` is in flight, and each serves every post stored
//! before it was sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::Store;
use crate::error::{Error, Result};

/// The `WAIT`s of one master.
struct Group {
    state: Mutex<GroupState>,
    /// (the last `WAIT` answered, whether it found enough replicas).
    done: watch::Sender<(u64, bool)>,
}

#[derive(Default)]
struct GroupState {
    /// `WAIT`s sent so far.
    sent: u64,
    in_flight: bool,
    /// A post finished while a `WAIT` was in flight: another must follow.
    pending: bool,
}

/// Every master's group, by master address (one Redis: one group).
#[derive(Default)]
pub struct AckGroups {
    groups: Mutex<HashMap<String, Arc<Group>>>,
}

impl AckGroups {
    fn group(&self, master: &str) -> Arc<Group> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups
            .entry(master.to_string())
            .or_insert_with(|| {
                Arc::new(Group {
                    state: Mutex::new(GroupState::default()),
                    done: watch::channel((0, true)).0,
                })
            })
            .clone()
    }
}

impl Store {
    /// Waits until `redis.ack_replicas` replicas of `key`'s master have every write of the
    /// shared connection made so far; nothing to do when the setting is 0.
    pub async fn await_replicas(&self, key: &str) -> Result<()> {
        let wanted = self.settings.redis.ack_replicas;
        if wanted == 0 {
            return Ok(());
        }
        let topology = self.topology();
        let master = topology
            .master_of_key(key)
            .map(|i| topology.masters[i].address())
            .unwrap_or_default();
        let group = self.ack_groups.group(&master);
        let mut answers = group.done.subscribe();
        let need = {
            let mut st = group.state.lock().unwrap_or_else(|e| e.into_inner());
            let need = st.sent + 1;
            if st.in_flight {
                st.pending = true;
            } else {
                st.in_flight = true;
                st.sent += 1;
                let (store, group, key) = (self.clone(), group.clone(), key.to_string());
                tokio::spawn(async move { store.wait_loop(&group, &key, wanted).await });
            }
            need
        };
        let answered = answers
            .wait_for(|(epoch, _)| *epoch >= need)
            .await
            .map_err(|_| Error::UnknownOutcome)?;
        if answered.1 {
            Ok(())
        } else {
            Err(Error::UnknownOutcome)
        }
    }

    /// Sends `WAIT`s for a master while posts keep asking for one; one in flight at a time.
    async fn wait_loop(&self, group: &Group, key: &str, wanted: u32) {
        loop {
            let epoch = group.state.lock().unwrap_or_else(|e| e.into_inner()).sent;
            let mut conn = self.shared();
            let acked: redis::RedisResult<i64> = conn
                .query_on_key(
                    redis::cmd("WAIT")
                        .arg(wanted)
                        .arg(self.settings.redis.ack_timeout_ms),
                    key,
                )
                .await;
            let ok = matches!(acked, Ok(n) if n >= wanted as i64);
            group.done.send_replace((epoch, ok));
            let mut st = group.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.pending {
                st.pending = false;
                st.sent += 1;
            } else {
                st.in_flight = false;
                return;
            }
        }
    }
}
