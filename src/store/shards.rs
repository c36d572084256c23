//! Search on a Redis Cluster: one index per master, queries to every master, answers merged.
//!
//! RediSearch indexes only the keys of the Redis it runs in, and Debian's RediSearch 1.2 has no
//! cluster coordinator. So each master holds its own index of every searchable kind, under a name
//! whose hash tag maps to one of that master's slots ([`super::Topology::index_on`]:
//! `idx:messages:{m<k>}`), and every document is added to the index of the master that stores it
//! ([`Store::index_for`]). A search asks every master in parallel for the first `offset + limit`
//! hits of its own index (`WITHSCORES`), the node merges them by score (ties: newer key first),
//! cuts the page and sums the totals, so paging is exact: a hit on page n of one Redis is on page
//! n here. `FT.AGGREGATE … GROUPBY … COUNT` is asked of every master in full and the counts added.
//! Scores are each master's TF-IDF, computed over the documents it holds; with documents spread
//! evenly by hash slot they are close to one index's, and equal for the same text.
//!
//! On one Redis every function here is a single call to the one index of seed 003's name.

use std::collections::HashMap;

use super::search::Docs;
use super::Store;
use crate::error::Result;

impl Store {
    /// The name of the index of kind `base` (`keys::messages_index()`, `keys::IDX_USERS`) a document
    /// stored at `key` is added to: `base` on one Redis, the index of `key`'s master on a
    /// cluster.
    pub fn index_for(&self, base: &str, key: &str) -> String {
        if !self.is_cluster() {
            return base.to_string();
        }
        self.topology().index_for_key(base, key)
    }

    /// Every index of kind `base`, one per master (one Redis: `base`).
    pub fn indexes(&self, base: &str) -> Vec<String> {
        if !self.is_cluster() {
            return vec![base.to_string()];
        }
        self.topology().indexes(base)
    }

    /// `FT.SEARCH` over every master's index of `base`, merged: total summed, hits by score.
    pub(crate) async fn ft_search_sharded(
        &self,
        base: &str,
        query: &str,
        extra: &[&str],
        offset: usize,
        limit: usize,
    ) -> redis::RedisResult<(u64, Docs)> {
        let answers = self
            .ask_every_index(base, |index| {
                let mut cmd = redis::cmd("FT.SEARCH");
                cmd.arg(index)
                    .arg(query)
                    .arg(extra)
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(offset + limit);
                cmd
            })
            .await;
        let mut total = 0;
        let mut hits: Vec<Hit> = Vec::new();
        for answer in answers {
            let (n, docs) = parse_scored(answer?);
            total += n;
            hits.extend(docs);
        }
        Ok((total, merge_page(hits, offset, limit)))
    }

    /// `FT.AGGREGATE index filter GROUPBY 1 @<field> REDUCE COUNT 0 AS count` on every master,
    /// the counts of each group added, largest first (ties by name), the first `limit`.
    pub(crate) async fn count_by_sharded(
        &self,
        base: &str,
        filter: &str,
        field: &str,
        limit: usize,
    ) -> redis::RedisResult<Vec<(String, u64)>> {
        let answers = self
            .ask_every_index(base, |index| {
                let mut cmd = redis::cmd("FT.AGGREGATE");
                cmd.arg(index)
                    .arg(filter)
                    .arg(&["GROUPBY", "1"])
                    .arg(format!("@{field}"))
                    .arg(&["REDUCE", "COUNT", "0", "AS", "count"])
                    // Every group of every master: a group small on each may be large in sum.
                    .arg(&["LIMIT", "0", "1000000"]);
                cmd
            })
            .await;
        let mut counts: HashMap<String, u64> = HashMap::new();
        for answer in answers {
            let items = match answer {
                Ok(redis::Value::Array(items)) => items,
                Ok(_) => continue,
                // RediSearch 1.2 answers an aggregate that matches no document of its index with
                // this error (the filter is built from escaped names, so it is never a real parse
                // failure): that master has no group to add.
                Err(e) if e.to_string().contains("QueryParseCtx") => continue,
                Err(e) => return Err(e),
            };
            for row in items.into_iter().skip(1) {
                let f: HashMap<String, String> = super::flatten_pairs(row).into_iter().collect();
                if let (Some(g), Some(c)) = (f.get(field), f.get("count")) {
                    *counts.entry(g.clone()).or_default() += c.parse::<f64>().unwrap_or(0.0) as u64;
                }
            }
        }
        let mut out: Vec<(String, u64)> = counts.into_iter().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out.truncate(limit);
        Ok(out)
    }

    /// Sends `cmd(index)` for every master's index of `base` in parallel; the answers in the
    /// order of the masters. When a master does not know the index this node named (the slot of
    /// an index's name moved: the master losing it names its index otherwise now), reads the
    /// slots again, makes sure every master has its index, and asks once more. Still unknown
    /// (another node is creating it): a refusal of the cluster, answered `redis_unavailable` —
    /// the client tries again — rather than an internal error.
    async fn ask_every_index(
        &self,
        base: &str,
        cmd: impl Fn(&str) -> redis::Cmd,
    ) -> Vec<redis::RedisResult<redis::Value>> {
        let ask = || {
            let asks = self.indexes(base).into_iter().map(|index| {
                let mut conn = self.shared();
                let cmd = cmd(&index);
                async move { cmd.query_async::<redis::Value>(&mut conn).await }
            });
            futures_util::future::join_all(asks)
        };
        let answers = ask().await;
        let lost = |answers: &[redis::RedisResult<redis::Value>]| {
            answers.iter().any(|a| a.as_ref().is_err_and(unknown_index))
        };
        if !self.is_cluster() || !lost(&answers) {
            return answers;
        }
        log::info!("search: a master has no index of the name asked; reading the slots again");
        if let Err(e) = self.refresh_topology().await {
            log::warn!("search: reading the slots: {e}");
        }
        if let Err(e) = super::setup::prepare(self).await {
            log::warn!("search: creating the indexes: {e}");
        }
        ask()
            .await
            .into_iter()
            .map(|a| match a {
                Err(e) if unknown_index(&e) => Err(redis::RedisError::from((
                    redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain),
                    "a search index is moving between masters",
                    e.to_string(),
                ))),
                other => other,
            })
            .collect()
    }

    /// Creates the index of kind `base` on every master that lacks it (`create` builds the
    /// `FT.CREATE` of one index name), each sent to its own master.
    pub(crate) async fn create_on_every_master(
        &self,
        base: &str,
        create: impl Fn(&str) -> redis::Cmd,
    ) -> Result<Vec<String>> {
        let topology = self.topology();
        let mut conn = self.shared();
        let mut names = Vec::new();
        for i in 0..topology.masters.len() {
            let name = topology.index_on(base, i);
            let exists: redis::RedisResult<redis::Value> = redis::cmd("FT.INFO")
                .arg(&name)
                .query_async(&mut conn)
                .await;
            if exists.is_err() {
                let created: redis::RedisResult<()> =
                    conn.query_on_key(&create(&name), &name).await;
                if let Err(e) = created {
                    if !e.to_string().contains("already exists") {
                        return Err(e.into());
                    }
                }
            }
            names.push(name);
        }
        Ok(names)
    }
}

/// Whether a master answered that it has no index of the name asked (RediSearch 1.x: "Unknown
/// Index name", 2.x: "Unknown index name" or "no such index").
/// The client reads the error's first word as its code, so the text comes as `"Unknown": Index
/// name`: quotes and colons are left out before comparing.
fn unknown_index(e: &redis::RedisError) -> bool {
    let text = e.to_string().to_ascii_lowercase().replace(['"', ':'], "");
    text.contains("unknown index name") || text.contains("no such index")
}

/// One master's hit: score, key, fields.
type Hit = (f64, String, HashMap<String, String>);

/// Parses a `WITHSCORES` search answer: total, then key, score and fields per hit.
fn parse_scored(v: redis::Value) -> (u64, Vec<Hit>) {
    use redis::Value;
    let Value::Array(items) = v else {
        return (0, Vec::new());
    };
    let mut it = items.into_iter();
    let total = match it.next() {
        Some(Value::Int(n)) => n.max(0) as u64,
        _ => 0,
    };
    let text = |v: Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Value::SimpleString(s) => Some(s),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    };
    let mut hits = Vec::new();
    while let (Some(key), Some(score), Some(fields)) = (it.next(), it.next(), it.next()) {
        let (Some(key), Some(score)) = (text(key), text(score)) else {
            continue;
        };
        let fields = match fields {
            v @ Value::Array(_) => super::flatten_pairs(v).into_iter().collect(),
            _ => HashMap::new(),
        };
        hits.push((score.parse().unwrap_or(0.0), key, fields));
    }
    (total, hits)
}

/// Orders the hits of every master (score, then newer key first) and cuts one page.
fn merge_page(mut hits: Vec<Hit>, offset: usize, limit: usize) -> Docs {
    hits.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| b.1.cmp(&a.1))
    });
    hits.into_iter()
        .skip(offset)
        .take(limit)
        .map(|(_, k, f)| (k, f))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cut_after_merging() {
        let hit = |s: f64, k: &str| (s, k.to_string(), HashMap::new());
        let hits = vec![hit(1.0, "a"), hit(3.0, "b"), hit(2.0, "c"), hit(2.0, "d")];
        let keys = |d: Docs| d.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(merge_page(hits.clone(), 0, 2)), ["b", "d"]);
        assert_eq!(keys(merge_page(hits.clone(), 2, 2)), ["c", "a"]);
        assert!(merge_page(hits, 4, 2).is_empty());
    }
}
