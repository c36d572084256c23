//! The online set, spread over [`keys::ONLINE_BUCKETS`] sorted sets (`online:{online:<k>}`, score
//! = presence expiry, unix ms), each in a slot of its own, so that a large fleet's presence
//! refreshes are no single hot key on one master of a cluster.
//!
//! A user's entry is written to their own bucket ([`keys::online`]) only; whoever reads the set
//! reads every bucket, each bucket one single-key command, all sent at once on the shared
//! connection (on one Redis they travel pipelined on its one connection, on a cluster each goes
//! to its master in parallel), and merges the answers. One code path for both.

use std::collections::HashMap;

use futures_util::future::join_all;

use super::{keys, Store};
use crate::error::Result;

impl Store {
    /// Usernames whose presence has not expired, sorted.
    pub async fn online_users(&self) -> Result<Vec<String>> {
        let now = super::users::now_ms();
        let mut users = self.online_by_score(&now.to_string(), "+inf", None).await?;
        users.sort();
        Ok(users)
    }

    /// Users whose online entry expired by `now` (their node died without taking them out): up
    /// to `per_bucket` of each bucket.
    pub(crate) async fn online_expired(&self, now: i64, per_bucket: usize) -> Result<Vec<String>> {
        self.online_by_score("-inf", &now.to_string(), Some(per_bucket))
            .await
    }

    /// `ZRANGEBYSCORE <bucket> min max [LIMIT 0 n]` on every bucket at once, merged.
    async fn online_by_score(
        &self,
        min: &str,
        max: &str,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        let asks = keys::online_buckets().into_iter().map(|bucket| {
            let mut conn = self.shared();
            let mut cmd = redis::cmd("ZRANGEBYSCORE");
            cmd.arg(bucket).arg(min).arg(max);
            if let Some(n) = limit {
                cmd.arg("LIMIT").arg(0).arg(n);
            }
            async move { cmd.query_async::<Vec<String>>(&mut conn).await }
        });
        let mut users = Vec::new();
        for answer in join_all(asks).await {
            users.extend(answer?);
        }
        Ok(users)
    }

    /// The online expiry (unix ms) of each of `names`, in order (`None`: not in the set): one
    /// `ZMSCORE` per bucket that holds any of them, all at once.
    pub(crate) async fn online_expiries(&self, names: &[String]) -> Result<Vec<Option<f64>>> {
        let mut by_bucket: HashMap<u16, Vec<usize>> = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            by_bucket
                .entry(keys::online_bucket_of(n))
                .or_default()
                .push(i);
        }
        let asks = by_bucket.into_iter().map(|(bucket, at)| {
            let mut conn = self.shared();
            let mut cmd = redis::cmd("ZMSCORE");
            cmd.arg(keys::online_bucket(bucket));
            for &i in &at {
                cmd.arg(&names[i]);
            }
            async move {
                let scores = cmd.query_async::<Vec<Option<f64>>>(&mut conn).await;
                (at, scores)
            }
        });
        let mut out = vec![None; names.len()];
        for (at, scores) in join_all(asks).await {
            for (i, score) in at.into_iter().zip(scores?) {
                out[i] = score;
            }
        }
        Ok(out)
    }

    /// `chatnode migrate`'s step for the single `online` set of the older layout: each entry
    /// into its user's bucket (`ZADD GT`: a later expiry already there is kept), then the old
    /// key deleted. Answers how many entries were moved; a second run finds no key and moves
    /// none.
    pub(crate) async fn migrate_online(&self) -> Result<u64> {
        let mut conn = self.conn().await?;
        let old: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(keys::legacy::ONLINE)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        let mut by_bucket: HashMap<u16, Vec<(f64, String)>> = HashMap::new();
        for (user, score) in old.iter().cloned() {
            by_bucket
                .entry(keys::online_bucket_of(&user))
                .or_default()
                .push((score, user));
        }
        for (bucket, entries) in by_bucket {
            let mut add = redis::cmd("ZADD");
            add.arg(keys::online_bucket(bucket)).arg("GT");
            for (score, user) in entries {
                add.arg(score).arg(user);
            }
            let _: i64 = add.query_async(&mut conn).await?;
        }
        let _: i64 = redis::cmd("DEL")
            .arg(keys::legacy::ONLINE)
            .query_async(&mut conn)
            .await?;
        Ok(old.len() as u64)
    }
}
