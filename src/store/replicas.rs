//! `redis.ack_replicas`: a post is answered `posted` only once that many replicas hold it.
//!
//! Redis replicates asynchronously, so a master that fails right after storing a post can lose
//! it when its replica is promoted. With `ack_replicas = n > 0` the posting path sends
//! `WAIT n <ack_timeout_ms>` after its script, on the same connection and to the master that took
//! the write (on a cluster the shared connection would send a bare `WAIT` to every master, so it
//! is routed by the channel's key). `WAIT` covers every earlier write of that connection, so the
//! post and its `client_id` record are on the replica when the poster hears `posted`. Fewer
//! replicas in time, or the connection lost while waiting, answer `unknown_outcome`: the client
//! re-sends with the same `client_id` and the post is stored at most once.
//!
//! The cost: `WAIT` holds its connection until the replica answers, so each post waits one
//! replication round trip and posts on one master's connection no longer overlap while it does.

use super::Store;
use crate::error::{Error, Result};

impl Store {
    /// Waits until `redis.ack_replicas` replicas of `key`'s master have every write of the
    /// shared connection so far; nothing to do when the setting is 0.
    pub async fn await_replicas(&self, key: &str) -> Result<()> {
        let wanted = self.settings.redis.ack_replicas;
        if wanted == 0 {
            return Ok(());
        }
        let mut conn = self.shared();
        let acked: i64 = conn
            .query_on_key(
                redis::cmd("WAIT")
                    .arg(wanted)
                    .arg(self.settings.redis.ack_timeout_ms),
                key,
            )
            .await
            .map_err(|_| Error::UnknownOutcome)?;
        if acked < wanted as i64 {
            return Err(Error::UnknownOutcome);
        }
        Ok(())
    }
}
