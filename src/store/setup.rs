//! Index management at start: `idx:users` and `idx:messages` with seed 003's names and schemas
//! (plus chatnode's fields), on RediSearch 1.x (documents added with FT.ADDHASH, and a backfill of
//! hashes not yet indexed) and 2.x and later (ON HASH PREFIX). Without the module: nothing.

use super::posting::ADDHASH_SCRIPT;
use super::{keys, SearchVersion, Store};
use crate::error::Result;

/// Fields of `idx:users`: seed 003's five plus hobbies and location.
const USER_FIELDS: &[(&str, &[&str])] = &[
    ("firstname", &["TEXT"]),
    ("lastname", &["TEXT"]),
    ("city", &["TAG", "SORTABLE"]),
    ("country", &["TAG", "SORTABLE"]),
    ("username", &["TAG", "SORTABLE"]),
    ("hobbies", &["TAG"]),
    ("location", &["GEO"]),
];

/// Fields of `idx:messages`: seed 003's three plus the time.
const MESSAGE_FIELDS: &[(&str, &[&str])] = &[
    ("username", &["TAG", "SORTABLE"]),
    ("channel", &["TAG", "SORTABLE"]),
    ("message", &["TEXT"]),
    ("created_at", &["NUMERIC", "SORTABLE"]),
];

/// Hashes added per backfill batch.
const BACKFILL_BATCH: usize = 500;

/// Prepares Redis for this node: the General channel and the search indexes.
pub async fn prepare(store: &Store) -> Result<()> {
    store
        .ensure_channel(crate::store::channels::GENERAL)
        .await?;
    let Some(version) = store.search else {
        return Ok(());
    };
    for (index, prefix, fields) in [
        (keys::IDX_USERS, keys::USER_PREFIX, USER_FIELDS),
        (keys::messages_index(), keys::MESSAGE_PREFIX, MESSAGE_FIELDS),
    ] {
        ensure_index(store, version, index, prefix, fields).await?;
    }
    Ok(())
}

/// Creates the index when missing, or adds fields an older schema lacks (FT.ALTER).
async fn ensure_index(
    store: &Store,
    version: SearchVersion,
    index: &str,
    prefix: &str,
    fields: &[(&str, &[&str])],
) -> Result<()> {
    if store.is_cluster() {
        // One index per master, each named into one of its master's slots (store::shards).
        let create = |name: &str| {
            let mut cmd = redis::cmd("FT.CREATE");
            cmd.arg(name);
            if !version.needs_addhash() {
                cmd.arg("ON").arg("HASH").arg("PREFIX").arg(1).arg(prefix);
            }
            cmd.arg("SCHEMA");
            for (field, spec) in fields {
                cmd.arg(*field).arg(*spec);
            }
            cmd
        };
        store.create_on_every_master(index, create).await?;
        return Ok(());
    }
    let mut conn = store.conn().await?;
    let info: redis::RedisResult<redis::Value> = redis::cmd("FT.INFO")
        .arg(index)
        .query_async(&mut conn)
        .await;
    match info {
        Err(_) => {
            let mut cmd = redis::cmd("FT.CREATE");
            cmd.arg(index);
            if !version.needs_addhash() {
                cmd.arg("ON").arg("HASH").arg("PREFIX").arg(1).arg(prefix);
            }
            cmd.arg("SCHEMA");
            for (name, spec) in fields {
                cmd.arg(*name).arg(*spec);
            }
            let created: redis::RedisResult<()> = cmd.query_async(&mut conn).await;
            if let Err(e) = created {
                // Another node may have created it between FT.INFO and FT.CREATE.
                if !e.to_string().contains("already exists") {
                    return Err(e.into());
                }
            }
        }
        Ok(info) => {
            let known = field_names(&info);
            for (name, spec) in fields {
                if !known.iter().any(|k| k == name) {
                    let r: redis::RedisResult<()> = redis::cmd("FT.ALTER")
                        .arg(index)
                        .arg("SCHEMA")
                        .arg("ADD")
                        .arg(*name)
                        .arg(*spec)
                        .query_async(&mut conn)
                        .await;
                    if let Err(e) = r {
                        log::warn!("{index}: cannot add field {name}: {e}");
                    }
                }
            }
        }
    }
    Ok(())
}

/// Names of the fields an FT.INFO answer lists (1.x `fields`, 2.x `attributes`).
fn field_names(info: &redis::Value) -> Vec<String> {
    use redis::Value;
    let mut out = Vec::new();
    let Value::Array(items) = info else {
        return out;
    };
    for pair in items.chunks(2) {
        let [k, v] = pair else { continue };
        let key = match k {
            Value::SimpleString(s) => s.clone(),
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            _ => continue,
        };
        if key != "fields" && key != "attributes" {
            continue;
        }
        let Value::Array(fields) = v else { continue };
        for f in fields {
            let Value::Array(parts) = f else { continue };
            // 1.x: [name, type, TAG, …]; 2.x: [identifier, name, attribute, name, …].
            let texts: Vec<String> = parts
                .iter()
                .map(|p| match p {
                    Value::SimpleString(s) => s.clone(),
                    Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    _ => String::new(),
                })
                .collect();
            if let Some(i) = texts.iter().position(|t| t == "attribute") {
                if let Some(n) = texts.get(i + 1) {
                    out.push(n.clone());
                }
            } else if let Some(n) = texts.first() {
                out.push(n.clone());
            }
        }
    }
    out
}

/// Only one node backfills at a time; the lock expires if that node dies.
const BACKFILL_LOCK_SECS: u64 = 600;

/// RediSearch 1.x: adds every `prefix*` hash not yet in the index (a database filled by seed
/// 003's loader relies on ON HASH PREFIX, which 1.x lacks), in batches.
async fn backfill(store: &Store, index: &str, prefix: &str) -> Result<usize> {
    if store.is_cluster() {
        return backfill_masters(store, index, prefix).await;
    }
    let mut conn = store.conn().await?;
    let lock = keys::backfill_lock(index);
    if !super::take_lock(&mut conn, &lock, "1", BACKFILL_LOCK_SECS * 1000).await? {
        // Another node is at it: this one is done when that one is.
        log::info!("{index}: another node is backfilling; waiting for it");
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let held: bool = redis::cmd("EXISTS")
                .arg(&lock)
                .query_async(&mut conn)
                .await?;
            if !held {
                return Ok(0);
            }
        }
    }
    let result = scan_and_add(&mut conn, index, prefix).await;
    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&lock).query_async(&mut conn).await;
    result
}

async fn scan_and_add(conn: &mut super::Conn, index: &str, prefix: &str) -> Result<usize> {
    let mut cursor: u64 = 0;
    let mut added = 0;
    let _: String = ADDHASH_SCRIPT.prepare_invoke().load_async(conn).await?;
    let pattern = format!("{prefix}*");
    loop {
        let (next, batch): (u64, Vec<String>) =
            super::scan_step(cursor, &pattern, BACKFILL_BATCH, "hash")
                .query_async(conn)
                .await?;
        if !batch.is_empty() {
            // One pipelined FT.ADDHASH script per key (keys of many slots: never one script for
            // all; a script, because a plain FT.ADDHASH waits for RediSearch's thread pool, see
            // `ADDHASH_SCRIPT`); documents already indexed are refused by the module and counted
            // out.
            let mut pipe = redis::pipe();
            for key in &batch {
                pipe.cmd("EVALSHA")
                    .arg(ADDHASH_SCRIPT.get_hash())
                    .arg(1)
                    .arg(index)
                    .arg(key);
            }
            let results: Vec<redis::RedisResult<redis::Value>> =
                pipe.ignore_errors().query_async(conn).await?;
            added += results.iter().filter(|r| r.is_ok()).count();
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    Ok(added)
}

/// The backfill on a cluster: each master's hashes (SCAN on that master) go into that master's
/// index, one `FT.ADDHASH` script each (a script may not touch keys of several slots), on the
/// shared connection. The lock is per index, so masters are backfilled by different nodes at once.
async fn backfill_masters(store: &Store, base: &str, prefix: &str) -> Result<usize> {
    let topology = store.topology();
    let conn = store.conn().await?;
    let mut added = 0;
    for (i, master) in topology.masters.iter().enumerate() {
        let index = topology.index_on(base, i);
        let lock = (keys::backfill_lock(&index), BACKFILL_LOCK_SECS);
        let done = each_hash_on_master(store, master, prefix, lock, |key| {
            let mut c = conn.clone();
            let index = &index;
            async move {
                ADDHASH_SCRIPT
                    .key(index)
                    .arg(key)
                    .invoke_async::<redis::Value>(&mut c)
                    .await
                    .is_ok()
            }
        })
        .await?;
        match done {
            Some(n) => added += n,
            None => log::info!("{index}: another node is backfilling it"),
        }
    }
    Ok(added)
}

/// Under `lock` (a key and its seconds, [`super::take_lock`]: `None` when another node holds
/// it), every hash of `prefix` on `master` (`SCAN`, 500 keys a step) given to `each`, the keys of
/// a step at once; answers for how many `each` answered true. The lock is let go at the end,
/// failed or not.
pub(super) async fn each_hash_on_master<F, Fut>(
    store: &Store,
    master: &super::conn::Master,
    prefix: &str,
    (lock, lock_secs): (String, u64),
    each: F,
) -> Result<Option<usize>>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut conn = store.conn().await?;
    if !super::take_lock(&mut conn, &lock, "1", lock_secs * 1000).await? {
        return Ok(None);
    }
    let mut done = 0;
    let mut cursor: u64 = 0;
    let result: Result<()> = async {
        loop {
            let (next, batch): (u64, Vec<String>) = conn
                .query_on_master(
                    &super::scan_step(cursor, &format!("{prefix}*"), BACKFILL_BATCH, "hash"),
                    master,
                )
                .await?;
            done += futures_util::future::join_all(batch.into_iter().map(&each))
                .await
                .into_iter()
                .filter(|ok| *ok)
                .count();
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
        }
    }
    .await;
    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&lock).query_async(&mut conn).await;
    result?;
    Ok(Some(done))
}

/// Starts the RediSearch 1.x backfill in the background, so a node with a large database is
/// listening at once; search finds older hashes as the backfill reaches them.
pub fn spawn_backfill(store: Store) {
    if !store.search.is_some_and(|v| v.needs_addhash()) {
        // Nothing to backfill: no module, or one that indexes by prefix.
        store
            .backfill_done
            .store(true, std::sync::atomic::Ordering::SeqCst);
        return;
    }
    tokio::spawn(async move {
        for (index, prefix) in [
            (keys::IDX_USERS, keys::USER_PREFIX),
            (keys::messages_index(), keys::MESSAGE_PREFIX),
        ] {
            let started = std::time::Instant::now();
            match backfill(&store, index, prefix).await {
                Ok(n) => log::info!(
                    "{index}: backfill added {n} hashes in {:?}",
                    started.elapsed()
                ),
                Err(e) => log::warn!("{index}: backfill failed: {e}"),
            }
        }
        store
            .backfill_done
            .store(true, std::sync::atomic::Ordering::SeqCst);
    });
}
