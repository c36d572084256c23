//! The presence tracker: who is online, seed 004 style (a key with a 60 s expiry), on every node.
//!
//! For each user with a session on this node it keeps `presence:{user:<u>}` alive with SETEX and the
//! user's entry in the online set (score = expiry; spread over `keys::ONLINE_BUCKETS` sorted sets,
//! see `store::online`) current, in pipelines sent at once every tick. Transitions are
//! published so every node tells its clients; each carries the user's channels (public and DMs),
//! so a node tells only the sockets that share one of them (see the hub). Each tick also sweeps
//! the sorted set for users whose keys expired because their node died, and announces them
//! offline (once, whichever node wins).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::{StreamExt, TryStreamExt};

use crate::metrics::Metrics;
use crate::store::{keys, Store};

/// A session of this user opened on this node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Online(pub String);

/// A session of this user closed on this node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Offline(pub String);

/// The node is stopping: its users leave.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Marks a user online from one node, in the user's slot. KEYS: presence key, node hash,
/// memberships. ARGV: node id, ttl secs, now ms. Answers whether the user was online already
/// and their channels (for the announcement, made when they were not).
const ONLINE_LUA: &str = r#"
local was = redis.call('EXISTS', KEYS[1])
local expiry = tonumber(ARGV[3]) + tonumber(ARGV[2]) * 1000
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], expiry)
redis.call('EXPIRE', KEYS[2], ARGV[2])
if was == 1 then return {1, {}} end
return {0, redis.call('SMEMBERS', KEYS[3])}
"#;

/// Removes one node's claim, in the user's slot; the user goes offline when no live node claims
/// them. KEYS/ARGV as ONLINE_LUA. Answers {1, when the presence was last set (ms), channels}
/// when the user went offline, else {0}.
const OFFLINE_LUA: &str = r#"
redis.call('HDEL', KEYS[2], ARGV[1])
local claims = redis.call('HGETALL', KEYS[2])
local now = tonumber(ARGV[3])
for i = 2, #claims, 2 do
  if tonumber(claims[i]) > now then return {0} end
end
local set_at = redis.call('GET', KEYS[1]) or ARGV[3]
redis.call('DEL', KEYS[1], KEYS[2])
return {1, set_at, redis.call('SMEMBERS', KEYS[3])}
"#;

/// A user whose presence key expired (their node died), in the user's slot. KEYS: presence key,
/// node hash, memberships. Answers the user's channels when the presence is gone, else nothing.
const SWEEP_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
redis.call('DEL', KEYS[2])
return redis.call('SMEMBERS', KEYS[3])
"#;

/// Takes a user out of the online set (their bucket's slot) and announces them offline, once:
/// only while their score is not after ARGV[2] (a later claim, from a node where they came back,
/// keeps them). KEYS[1] the user's online bucket; ARGV: 1 username, 2 latest score removed,
/// 3 subject, 4 announcement.
const LEAVE_ONLINE_LUA: &str = r#"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"#;

/// Refresh pipelines of a tick in flight at once.
const REFRESH_IN_FLIGHT: usize = 256;

/// Expired online entries each tick takes out of each bucket (the rest wait for the next tick).
const SWEEP_PER_BUCKET: usize = 100;

/// A presence announcement.
fn announcement(username: &str, uuid: &str, online: bool, channels: &[String]) -> String {
    serde_json::json!({
        "username": username,
        "uuid": uuid,
        "online": online,
        "channels": channels,
    })
    .to_string()
}

/// Runs a user-slot presence script.
fn user_script<'a>(script: &'a redis::Script, username: &str) -> redis::ScriptInvocation<'a> {
    let mut inv = script.prepare_invoke();
    inv.key(keys::presence(username))
        .key(keys::presence_nodes(username))
        .key(keys::memberships(username));
    inv
}

/// Takes a user out of the online set and announces them offline, unless a claim after
/// `latest_score` keeps them.
async fn leave_online(
    conn: &mut crate::store::Conn,
    username: &str,
    uuid: &str,
    latest_score: i64,
    channels: &[String],
) -> redis::RedisResult<i64> {
    redis::Script::new(LEAVE_ONLINE_LUA)
        .key(keys::online(username))
        .arg(username)
        .arg(latest_score)
        .arg(keys::PRESENCE_EVENTS)
        .arg(announcement(username, uuid, false, channels))
        .invoke_async(conn)
        .await
}

/// One node's claim on a user: online (`true`) or gone. Two steps in two slots: the user's
/// presence keys, then the user's online bucket and the announcement.
async fn claim(
    store: &Store,
    node: &str,
    ttl: u64,
    username: &str,
    uuid: &str,
    online: bool,
) -> crate::error::Result<()> {
    let mut conn = store.conn().await?;
    let now = crate::store::users::now_ms();
    if online {
        let (was, channels): (i64, Vec<String>) =
            user_script(&redis::Script::new(ONLINE_LUA), username)
                .arg(node)
                .arg(ttl)
                .arg(now)
                .invoke_async(&mut conn)
                .await?;
        let mut pipe = redis::pipe();
        pipe.zadd(keys::online(username), username, now + ttl as i64 * 1000)
            .ignore();
        if was == 0 {
            pipe.publish(
                keys::PRESENCE_EVENTS,
                announcement(username, uuid, true, &channels),
            )
            .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await?;
    } else {
        let reply: redis::Value = user_script(&redis::Script::new(OFFLINE_LUA), username)
            .arg(node)
            .arg(ttl)
            .arg(now)
            .invoke_async(&mut conn)
            .await?;
        let (gone, set_at, channels): (i64, Option<i64>, Vec<String>) =
            redis::FromRedisValue::from_redis_value(reply).unwrap_or_default();
        if gone == 1 {
            // The last claim's expiry; a node that claims the user since sets a later one.
            let latest = set_at.unwrap_or(now) + ttl as i64 * 1000;
            leave_online(&mut conn, username, uuid, latest, &channels).await?;
        }
    }
    Ok(())
}

/// The presence actor.
pub struct Presence {
    store: Store,
    metrics: Arc<Metrics>,
    node_id: String,
    /// Local sessions per user.
    local: HashMap<String, usize>,
    uuids: HashMap<String, String>,
}

impl Presence {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Presence {
            store,
            metrics,
            node_id: uuid::Uuid::new_v4().to_string(),
            local: HashMap::new(),
            uuids: HashMap::new(),
        }
    }

    fn ttl(&self) -> u64 {
        self.store.settings.presence.ttl_secs
    }

    fn run_script(&self, online: bool, username: String, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let node = self.node_id.clone();
        let ttl = self.ttl();
        let known_uuid = self.uuids.get(&username).cloned();
        ctx.spawn(
            async move {
                let uuid = match known_uuid {
                    Some(u) => u,
                    None => store
                        .uuids(std::slice::from_ref(&username))
                        .await?
                        .remove(&username)
                        .unwrap_or_default(),
                };
                claim(&store, &node, ttl, &username, &uuid, online).await?;
                Ok::<_, crate::error::Error>((username, uuid))
            }
            .into_actor(self)
            .map(|r, act, _| match r {
                Ok((u, id)) => {
                    act.uuids.insert(u, id);
                }
                Err(e) => log::warn!("presence: {e}"),
            }),
        );
    }

    /// One pipelined refresh of every local user, then a sweep for users whose node died.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let node = self.node_id.clone();
        let ttl = self.ttl();
        let users: Vec<String> = self.local.keys().cloned().collect();
        ctx.spawn(
            async move {
                let started = Instant::now();
                let now = crate::store::users::now_ms();
                let expiry = now + ttl as i64 * 1000;
                if !users.is_empty() {
                    // One small pipeline per user (their keys share their slot) and one ZADD per
                    // online bucket, at most REFRESH_IN_FLIGHT at once on the shared connection:
                    // one big pipeline would name keys of many slots, which a cluster can only
                    // take one command at a time.
                    let mut pipes = Vec::with_capacity(users.len() + 32);
                    let mut buckets: HashMap<u16, Vec<&String>> = HashMap::new();
                    for u in &users {
                        let mut pipe = redis::pipe();
                        pipe.cmd("SET")
                            .arg(keys::presence(u))
                            .arg(now)
                            .arg("EX")
                            .arg(ttl)
                            .ignore();
                        pipe.hset(keys::presence_nodes(u), &node, expiry).ignore();
                        pipe.expire(keys::presence_nodes(u), ttl as i64).ignore();
                        pipes.push(pipe);
                        buckets
                            .entry(keys::online_bucket_of(u))
                            .or_default()
                            .push(u);
                    }
                    for (bucket, members) in buckets {
                        let mut pipe = redis::pipe();
                        let add = pipe.cmd("ZADD").arg(keys::online_bucket(bucket));
                        for u in members {
                            add.arg(expiry).arg(u.as_str());
                        }
                        add.ignore();
                        pipes.push(pipe);
                    }
                    futures_util::stream::iter(pipes)
                        .map(|pipe| {
                            let mut conn = store.shared();
                            async move { pipe.query_async::<()>(&mut conn).await }
                        })
                        .buffer_unordered(REFRESH_IN_FLIGHT)
                        .try_collect::<Vec<()>>()
                        .await?;
                }
                // The admin overview's sockets per node.
                let sockets = metrics.ws_connections.load(Relaxed) as u64;
                if let Err(e) = store.report_sockets(&node, sockets).await {
                    log::warn!("sockets report: {e}");
                }
                metrics
                    .presence_refresh_micros
                    .store(started.elapsed().as_micros() as u64, Relaxed);
                metrics.presence_refreshes.fetch_add(1, Relaxed);
                let expired = store.online_expired(now, SWEEP_PER_BUCKET).await?;
                if !expired.is_empty() {
                    let uuids = store.uuids(&expired).await?;
                    let mut conn = store.conn().await?;
                    for u in &expired {
                        let channels: Option<Vec<String>> =
                            user_script(&redis::Script::new(SWEEP_LUA), u)
                                .invoke_async(&mut conn)
                                .await?;
                        if let Some(channels) = channels {
                            let uuid = uuids.get(u).cloned().unwrap_or_default();
                            leave_online(&mut conn, u, &uuid, now, &channels).await?;
                        }
                    }
                }
                Ok::<_, crate::error::Error>(())
            }
            .into_actor(self)
            .map(|r, _, _| {
                if let Err(e) = r {
                    log::warn!("presence refresh: {e}");
                }
            }),
        );
    }
}

impl Actor for Presence {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = Duration::from_secs(self.store.settings.presence.refresh_interval_secs);
        ctx.run_interval(every, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Online> for Presence {
    type Result = ();
    fn handle(&mut self, msg: Online, ctx: &mut Self::Context) {
        let n = self.local.entry(msg.0.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.run_script(true, msg.0, ctx);
        }
    }
}

impl Handler<Offline> for Presence {
    type Result = ();
    fn handle(&mut self, msg: Offline, ctx: &mut Self::Context) {
        let Some(n) = self.local.get_mut(&msg.0) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.local.remove(&msg.0);
            self.run_script(false, msg.0, ctx);
        }
    }
}

impl Handler<Shutdown> for Presence {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        let users: Vec<String> = self.local.drain().map(|(u, _)| u).collect();
        let uuids = self.uuids.clone();
        let store = self.store.clone();
        let node = self.node_id.clone();
        let ttl = self.ttl();
        Box::pin(async move {
            for u in users {
                let uuid = uuids.get(&u).cloned().unwrap_or_default();
                if let Err(e) = claim(&store, &node, ttl, &u, &uuid, false).await {
                    log::warn!("presence: {u} offline at shutdown: {e}");
                }
            }
        })
    }
}
