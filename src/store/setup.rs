//! Index management at start: `idx:users` and `idx:messages` with seed 003's names and schemas
//! (plus chatnode's fields), on RediSearch 1.x (documents added with FT.ADDHASH, and a backfill of
//! hashes not yet indexed) and 2.x and later (ON HASH PREFIX). Without the module: nothing.

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
        (keys::IDX_MESSAGES, keys::MESSAGE_PREFIX, MESSAGE_FIELDS),
    ] {
        ensure_index(store, version, index, prefix, fields).await?;
        if version.needs_addhash() {
            let started = std::time::Instant::now();
            let n = backfill(store, index, prefix).await?;
            if n > 0 {
                log::info!("{index}: indexed {n} hashes in {:?}", started.elapsed());
            }
        }
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

/// RediSearch 1.x: adds every `prefix*` hash not yet in the index, in pipelined batches.
/// FT.ADDHASH without REPLACE refuses documents already indexed, which is what makes it cheap
/// to run at every start.
async fn backfill(store: &Store, index: &str, prefix: &str) -> Result<usize> {
    let mut conn = store.conn().await?;
    let mut cursor: u64 = 0;
    let mut added = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(BACKFILL_BATCH)
            .arg("TYPE")
            .arg("hash")
            .query_async(&mut conn)
            .await?;
        if !batch.is_empty() {
            let mut pipe = redis::pipe();
            for key in &batch {
                pipe.cmd("FT.ADDHASH").arg(index).arg(key).arg("1.0");
            }
            let results: Vec<redis::RedisResult<redis::Value>> = {
                let replies: redis::RedisResult<Vec<redis::Value>> =
                    pipe.query_async(&mut conn).await;
                match replies {
                    Ok(v) => v.into_iter().map(Ok).collect(),
                    Err(_) => {
                        // A pipeline fails whole when one reply is an error: add one by one.
                        let mut v = Vec::with_capacity(batch.len());
                        for key in &batch {
                            v.push(
                                redis::cmd("FT.ADDHASH")
                                    .arg(index)
                                    .arg(key)
                                    .arg("1.0")
                                    .query_async(&mut conn)
                                    .await,
                            );
                        }
                        v
                    }
                }
            };
            added += results
                .iter()
                .filter(|r| {
                    matches!(
                        r,
                        Ok(redis::Value::Okay) | Ok(redis::Value::SimpleString(_))
                    )
                })
                .count();
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    Ok(added)
}
