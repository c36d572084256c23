//! The presence tracker: who is online, seed 004 style (a key with a 60 s expiry), on every node.
//!
//! For each user with a session on this node it keeps `presence:<u>` alive with SETEX and the
//! `online` sorted set (score = expiry) current, in one pipelined batch per tick. Transitions are
//! published so every node tells its clients; each carries the user's channels (public and DMs),
//! so a node tells only the sockets that share one of them (see the hub). Each tick also sweeps
//! the sorted set for users whose keys expired because their node died, and announces them
//! offline (once, whichever node wins).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

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

/// Marks a user online from one node. KEYS: presence key, node hash, online zset, events,
/// memberships. ARGV: node id, ttl secs, now ms, username, uuid. Publishes only on the
/// offline→online change, with the user's channels.
const ONLINE_LUA: &str = r#"
local was = redis.call('EXISTS', KEYS[1])
local expiry = tonumber(ARGV[3]) + tonumber(ARGV[2]) * 1000
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], expiry)
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], expiry, ARGV[4])
if was == 0 then
  redis.call('PUBLISH', KEYS[4], cjson.encode({username = ARGV[4], uuid = ARGV[5], online = true,
    channels = redis.call('SMEMBERS', KEYS[5])}))
end
return was
"#;

/// Removes one node's claim; the user goes offline when no live node claims them.
/// KEYS/ARGV as ONLINE_LUA.
const OFFLINE_LUA: &str = r#"
redis.call('HDEL', KEYS[2], ARGV[1])
local claims = redis.call('HGETALL', KEYS[2])
local now = tonumber(ARGV[3])
for i = 2, #claims, 2 do
  if tonumber(claims[i]) > now then return 0 end
end
redis.call('DEL', KEYS[1], KEYS[2])
if redis.call('ZREM', KEYS[3], ARGV[4]) == 1 then
  redis.call('PUBLISH', KEYS[4], cjson.encode({username = ARGV[4], uuid = ARGV[5], online = false,
    channels = redis.call('SMEMBERS', KEYS[5])}))
end
return 1
"#;

/// Announces a user offline whose presence key expired (their node died). KEYS: presence key,
/// node hash, online zset, events, memberships; ARGV: username, uuid.
const SWEEP_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
if redis.call('ZREM', KEYS[3], ARGV[1]) == 1 then
  redis.call('PUBLISH', KEYS[4], cjson.encode({username = ARGV[1], uuid = ARGV[2], online = false,
    channels = redis.call('SMEMBERS', KEYS[5])}))
  return 1
end
return 0
"#;

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

    fn run_script(&self, script: &'static str, username: String, ctx: &mut Context<Self>) {
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
                let mut conn = store.conn().await?;
                let _: i64 = redis::Script::new(script)
                    .key(keys::presence(&username))
                    .key(presence_nodes(&username))
                    .key(keys::ONLINE)
                    .key(keys::PRESENCE_EVENTS)
                    .key(keys::memberships(&username))
                    .arg(&node)
                    .arg(ttl)
                    .arg(crate::store::users::now_ms())
                    .arg(&username)
                    .arg(&uuid)
                    .invoke_async(&mut conn)
                    .await?;
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
                let mut conn = store.conn().await?;
                if !users.is_empty() {
                    let mut pipe = redis::pipe();
                    for u in &users {
                        pipe.cmd("SET")
                            .arg(keys::presence(u))
                            .arg(now)
                            .arg("EX")
                            .arg(ttl)
                            .ignore();
                        pipe.hset(presence_nodes(u), &node, expiry).ignore();
                        pipe.expire(presence_nodes(u), ttl as i64).ignore();
                        pipe.zadd(keys::ONLINE, u, expiry).ignore();
                    }
                    let _: () = pipe.query_async(&mut conn).await?;
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
                let expired: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                    .arg(keys::ONLINE)
                    .arg("-inf")
                    .arg(now)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(1000)
                    .query_async(&mut conn)
                    .await?;
                drop(conn);
                if !expired.is_empty() {
                    let uuids = store.uuids(&expired).await?;
                    let mut conn = store.conn().await?;
                    for u in &expired {
                        let _: i64 = redis::Script::new(SWEEP_LUA)
                            .key(keys::presence(u))
                            .key(presence_nodes(u))
                            .key(keys::ONLINE)
                            .key(keys::PRESENCE_EVENTS)
                            .key(keys::memberships(u))
                            .arg(u)
                            .arg(uuids.get(u).cloned().unwrap_or_default())
                            .invoke_async(&mut conn)
                            .await?;
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

/// `presence:nodes:<u>`: which nodes claim the user online, with their claim's expiry.
fn presence_nodes(username: &str) -> String {
    format!("{}:nodes", keys::presence(username))
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
            self.run_script(ONLINE_LUA, msg.0, ctx);
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
            self.run_script(OFFLINE_LUA, msg.0, ctx);
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
        Box::pin(async move {
            let Ok(mut conn) = store.conn().await else {
                return;
            };
            for u in users {
                let _: redis::RedisResult<i64> = redis::Script::new(OFFLINE_LUA)
                    .key(keys::presence(&u))
                    .key(presence_nodes(&u))
                    .key(keys::ONLINE)
                    .key(keys::PRESENCE_EVENTS)
                    .key(keys::memberships(&u))
                    .arg(&node)
                    .arg(0)
                    .arg(crate::store::users::now_ms())
                    .arg(&u)
                    .arg(uuids.get(&u).cloned().unwrap_or_default())
                    .invoke_async(&mut conn)
                    .await;
            }
        })
    }
}

impl Store {
    /// Usernames whose presence has not expired.
    pub async fn online_users(&self) -> crate::error::Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let now = crate::store::users::now_ms();
        let users: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(keys::ONLINE)
            .arg(now)
            .arg("+inf")
            .query_async(&mut conn)
            .await?;
        Ok(users)
    }
}
