//! The Redis bridge: this node's pub/sub connections, one per master (on one Redis: one).
//!
//! It subscribes to a room's subject while the node has a room for it, and always to the presence
//! and user-notice subjects, and turns every message into a [`BridgeEvent`] for the recipient it
//! was given when it was built (the hub). On a Redis Cluster a room's subject is a shard channel:
//! it is subscribed with `SSUBSCRIBE` on the master that owns its hash slot, so each master
//! carries the events of its own rooms (never one connection per room or per socket). Presence
//! and user notices stay classic pub/sub on the first master's connection (a cluster forwards
//! them to every node; they are per user transition, not per message).
//!
//! When any connection drops, stops answering its health-check `PING`, or the cluster's slots
//! move (read again every few seconds and on every error), the bridge drops all its connections,
//! reconnects with backoff, resubscribes, and says so with [`BridgeEvent::Resubscribed`], so every
//! room catches up from its stream and nothing published meanwhile is lost. A room followed while
//! a connection is being made is subscribed as soon as it is made, and caught up the same way.
//!
//! The bridge knows nothing of the actors it serves: rooms ask it to subscribe, and its events go
//! to a `Recipient`, so data flows one way (session → hub → room → bridge for requests, bridge →
//! recipient for events) and a test can stand in for the hub.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};

use crate::metrics::Metrics;
use crate::store::{keys, Store, Topology};

/// Subscribe to a room's subject; answers once Redis confirmed (or at once while the bridge is
/// connecting: the subject is then subscribed as soon as the connection is made, and
/// [`BridgeEvent::Resubscribed`] has the room catch up).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub String);

/// Unsubscribe from a room's subject.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe(pub String);

/// What the bridge hears from Redis, as it delivers it.
#[derive(Message, Debug, Clone, PartialEq)]
#[rtype(result = "()")]
pub enum BridgeEvent {
    /// A payload published on a room's subject: a stream entry of that channel, as JSON.
    Room { channel: String, payload: Arc<str> },
    /// A presence transition published by some node: `{"username","uuid","online","channels"}`.
    Presence(Arc<str>),
    /// A per-user notice published by some node: `{"username", "kind", …}`.
    User(Arc<str>),
    /// Rooms were subscribed after a gap (a connection was lost and is back, or a room was
    /// followed while the connection was being made): what was published meanwhile was not
    /// heard, so every room catches up from its stream (and sockets check their sessions again:
    /// a revocation may have been published meanwhile).
    Resubscribed,
}

/// The pub/sub connections of one generation: one per master, in topology order.
struct Links {
    topology: Arc<Topology>,
    conns: Vec<MultiplexedConnection>,
}

/// A connection attempt finished: the connections, and the rooms they subscribed to.
#[derive(Message)]
#[rtype(result = "()")]
struct Connected {
    generation: u64,
    result: Result<(Links, HashSet<String>), String>,
}

/// Something a pub/sub connection of `generation` received outside of a reply.
#[derive(Message)]
#[rtype(result = "()")]
struct Pushed {
    generation: u64,
    info: PushInfo,
}

/// A connection of `generation` failed (health check, error): reconnect.
#[derive(Message)]
#[rtype(result = "()")]
struct Lost {
    generation: u64,
    why: String,
}

/// Hands a connection's pushes to the bridge, tagged with the connection's generation.
struct PushToBridge {
    generation: u64,
    bridge: Addr<Bridge>,
}

impl redis::aio::AsyncPushSender for PushToBridge {
    fn send(&self, info: PushInfo) -> Result<(), redis::aio::SendError> {
        self.bridge.do_send(Pushed {
            generation: self.generation,
            info,
        });
        Ok(())
    }
}

/// The bridge actor.
pub struct Bridge {
    store: Store,
    metrics: Arc<Metrics>,
    events: Recipient<BridgeEvent>,
    links: Option<Links>,
    rooms: HashSet<String>,
    /// Unsubscribe confirmations still to come per subject (so they are not taken for the
    /// server dropping a subscription).
    leaving: HashMap<String, usize>,
    connected_once: bool,
    backoff: Duration,
    /// Bumped on every connection attempt, so a stale connection's pushes are ignored.
    generation: u64,
}

/// Whether room subjects are shard channels (`SSUBSCRIBE`): always, since the posting scripts
/// `SPUBLISH` room events (Redis 7; on one Redis a shard channel is an ordinary channel of its
/// own kind). The store is asked so that a room's master is looked up the same way in both modes.
fn sharded(_store: &Store) -> bool {
    true
}

/// How often each pub/sub connection is asked `PING`, and how long it has to answer.
fn health_interval(store: &Store) -> Duration {
    Duration::from_secs(store.settings.redis.pubsub_health_secs.max(1))
}

impl Bridge {
    /// A bridge that delivers what it hears to `events`. It connects when started.
    pub fn new(store: Store, metrics: Arc<Metrics>, events: Recipient<BridgeEvent>) -> Self {
        Bridge {
            store,
            metrics,
            events,
            links: None,
            rooms: HashSet::new(),
            leaving: HashMap::new(),
            connected_once: false,
            backoff: Duration::from_millis(100),
            generation: 0,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        let generation = self.generation;
        let store = self.store.clone();
        let rooms = self.rooms.clone();
        let addr = ctx.address();
        actix_rt::spawn(async move {
            let result = open_links(&store, generation, &addr, &rooms)
                .await
                .map(|links| (links, rooms));
            addr.do_send(Connected { generation, result });
        });
    }

    /// Drops the connections of this generation and reconnects after the backoff.
    fn lose(&mut self, ctx: &mut Context<Self>, why: &str) {
        if self.links.take().is_some() {
            log::warn!("bridge: {why}; reconnecting");
        }
        self.leaving.clear();
        // Pushes of the dropped connections are ignored from now on.
        self.generation += 1;
        self.reconnect_later(ctx);
    }

    fn reconnect_later(&mut self, ctx: &mut Context<Self>) {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
        ctx.run_later(wait, |bridge, ctx| bridge.connect(ctx));
    }

    /// Every interval: `PING` on each connection (no answer in time: reconnect), and on a
    /// cluster the slots read again (moved: reconnect).
    fn check_health(&mut self, ctx: &mut Context<Self>) {
        let Some(links) = &self.links else {
            return;
        };
        let generation = self.generation;
        let conns = links.conns.clone();
        let store = self.store.clone();
        let wait = health_interval(&self.store);
        let addr = ctx.address();
        actix_rt::spawn(async move {
            let pings = conns.into_iter().map(|mut c| async move {
                let cmd = redis::cmd("PING");
                let ping = cmd.query_async::<Value>(&mut c);
                match tokio::time::timeout(wait, ping).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("health check: {e}")),
                    Err(_) => Err(format!("health check: no answer to PING in {wait:?}")),
                }
            });
            let failed = futures_util::future::join_all(pings)
                .await
                .into_iter()
                .find_map(Result::err);
            let why = match failed {
                Some(why) => Some(why),
                None => match store.refresh_topology().await {
                    Ok(true) => Some("the cluster's slots moved".to_string()),
                    Ok(false) => None,
                    Err(e) => Some(format!("cannot read the cluster's slots: {e}")),
                },
            };
            if let Some(why) = why {
                addr.do_send(Lost { generation, why });
            }
        });
    }

    /// Sets right, on connections that subscribed the rooms in `subscribed`, the rooms followed
    /// or left while they were being made. Answers whether some room was not subscribed (it may
    /// have missed events), and the work to do.
    fn settle_rooms(
        &self,
        subscribed: &HashSet<String>,
    ) -> (bool, impl std::future::Future<Output = Result<(), String>>) {
        let missed: Vec<String> = self.rooms.difference(subscribed).cloned().collect();
        let left: Vec<String> = subscribed.difference(&self.rooms).cloned().collect();
        let missed_some = !missed.is_empty();
        let plan = self
            .links
            .as_ref()
            .map(|l| (l.topology.clone(), l.conns.clone()));
        let shard = sharded(&self.store);
        let work = async move {
            let Some((topology, conns)) = plan else {
                return Ok(());
            };
            for room in &missed {
                subscribe_room(&topology, &conns, shard, room, true).await?;
            }
            for room in &left {
                let _ = subscribe_room(&topology, &conns, shard, room, false).await;
            }
            Ok(())
        };
        (missed_some, work)
    }
}

/// Opens one RESP3 pub/sub connection per master (TCP keepalive on), subscribes the standing
/// subjects on the first and every room on the master of its subject.
async fn open_links(
    store: &Store,
    generation: u64,
    bridge: &Addr<Bridge>,
    rooms: &HashSet<String>,
) -> Result<Links, String> {
    if store.is_cluster() {
        store.refresh_topology().await.map_err(|e| e.to_string())?;
    }
    let topology = store.topology();
    let tcp = crate::store::conn::keepalive_settings();
    let wait = health_interval(store);
    let mut conns = Vec::with_capacity(topology.masters.len());
    for master in &topology.masters {
        let client = store.master_client(master).map_err(|e| e.to_string())?;
        let info = client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let info = info
            .set_redis_settings(settings)
            .set_tcp_settings(tcp.clone());
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(wait))
            .set_response_timeout(Some(wait))
            .set_push_sender(PushToBridge {
                generation,
                bridge: bridge.clone(),
            });
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| format!("{}: {e}", master.address()))?;
        conns.push(conn);
    }
    let Some(first) = conns.first_mut() else {
        return Err("the cluster has no master".into());
    };
    for subject in [keys::PRESENCE_EVENTS, keys::USER_EVENTS] {
        let _: Value = redis::cmd("SUBSCRIBE")
            .arg(subject)
            .query_async(first)
            .await
            .map_err(|e| format!("subscribe {subject}: {e}"))?;
    }
    let shard = sharded(store);
    let subscribes = rooms
        .iter()
        .map(|room| subscribe_room(&topology, &conns, shard, room, true));
    for r in futures_util::future::join_all(subscribes).await {
        r?;
    }
    Ok(Links { topology, conns })
}

/// `(S)SUBSCRIBE` (or unsubscribe) a room's subject on the connection of its master.
async fn subscribe_room(
    topology: &Topology,
    conns: &[MultiplexedConnection],
    shard: bool,
    room: &str,
    on: bool,
) -> Result<(), String> {
    let subject = keys::room_events(room);
    let i = if shard {
        topology
            .master_of_key(&subject)
            .ok_or_else(|| format!("no master serves {subject}"))?
    } else {
        0
    };
    let mut conn = conns
        .get(i)
        .cloned()
        .ok_or_else(|| format!("no connection to master {i}"))?;
    let command = match (shard, on) {
        (true, true) => "SSUBSCRIBE",
        (true, false) => "SUNSUBSCRIBE",
        (false, true) => "SUBSCRIBE",
        (false, false) => "UNSUBSCRIBE",
    };
    let _: Value = redis::cmd(command)
        .arg(&subject)
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("{command} {subject}: {e}"))?;
    Ok(())
}

impl Actor for Bridge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.connect(ctx);
        ctx.run_interval(health_interval(&self.store), |bridge, ctx| {
            bridge.check_health(ctx)
        });
    }
}

// Like Subscribe, this holds the mailbox until the rooms followed or left meanwhile are set right
// on the new connections, so Resubscribed is sent only once every room's subject is subscribed.
impl Handler<Connected> for Bridge {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: Connected, ctx: &mut Self::Context) -> Self::Result {
        if msg.generation != self.generation {
            // An attempt overtaken by a later one.
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        let (links, subscribed) = match msg.result {
            Ok(connection) => connection,
            Err(e) => {
                log::warn!("bridge: pub/sub connection failed: {e}; retrying");
                self.reconnect_later(ctx);
                return AtomicResponse::new(Box::pin(fut::ready(())));
            }
        };
        self.links = Some(links);
        self.metrics
            .subscriptions
            .store(self.rooms.len() as i64, Relaxed);
        let reconnected = std::mem::replace(&mut self.connected_once, true);
        let (missed_some, settle) = self.settle_rooms(&subscribed);
        let catch_up = reconnected || missed_some;
        let generation = self.generation;
        AtomicResponse::new(Box::pin(settle.into_actor(self).map(
            move |settled, bridge, ctx| {
                if let Err(e) = settled {
                    if generation == bridge.generation {
                        bridge.lose(ctx, &e);
                    }
                    return;
                }
                bridge.backoff = Duration::from_millis(100);
                if reconnected {
                    bridge.metrics.bridge_reconnects.fetch_add(1, Relaxed);
                    log::info!("bridge: pub/sub reconnected; rooms catch up from their streams");
                }
                if catch_up {
                    bridge.events.do_send(BridgeEvent::Resubscribed);
                }
            },
        )))
    }
}

impl Handler<Pushed> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: Pushed, ctx: &mut Self::Context) {
        if msg.generation != self.generation || self.links.is_none() {
            return;
        }
        let subject = |data: &[Value]| match data.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => String::new(),
        };
        match msg.info.kind {
            PushKind::Message | PushKind::SMessage => {
                let name = subject(&msg.info.data);
                let payload: Arc<str> = match msg.info.data.get(1) {
                    Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into(),
                    Some(Value::SimpleString(s)) => s.as_str().into(),
                    _ => return,
                };
                if let Some(event) = event_of(&name, payload) {
                    self.events.do_send(event);
                }
            }
            PushKind::Disconnection => self.lose(ctx, "pub/sub connection lost"),
            PushKind::SUnsubscribe | PushKind::Unsubscribe => {
                let name = subject(&msg.info.data);
                if let Some(n) = self.leaving.get_mut(&name) {
                    *n -= 1;
                    if *n == 0 {
                        self.leaving.remove(&name);
                    }
                    return;
                }
                // Not asked for: the server dropped the subscription (its slot moved away).
                let followed = keys::room_from_events(&name)
                    .is_some_and(|room| self.rooms.contains(room))
                    || name == keys::PRESENCE_EVENTS
                    || name == keys::USER_EVENTS;
                if followed {
                    self.lose(ctx, &format!("Redis dropped the subscription of {name}"));
                }
            }
            _ => {}
        }
    }
}

impl Handler<Lost> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: Lost, ctx: &mut Self::Context) {
        if msg.generation == self.generation && self.links.is_some() {
            self.lose(ctx, &msg.why);
        }
    }
}

/// The event a pub/sub message stands for, by its subject (`None` for a subject the bridge does
/// not know).
fn event_of(subject: &str, payload: Arc<str>) -> Option<BridgeEvent> {
    if let Some(channel) = keys::room_from_events(subject) {
        Some(BridgeEvent::Room {
            channel: channel.to_string(),
            payload,
        })
    } else if subject == keys::PRESENCE_EVENTS {
        Some(BridgeEvent::Presence(payload))
    } else if subject == keys::USER_EVENTS {
        Some(BridgeEvent::User(payload))
    } else {
        None
    }
}

// Subscribe and unsubscribe hold the bridge's mailbox until Redis answers, so a room that closes
// and opens again is never left unsubscribed by a late UNSUBSCRIBE.
impl Handler<Subscribe> for Bridge {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) -> Self::Result {
        self.rooms.insert(msg.0.clone());
        self.metrics
            .subscriptions
            .store(self.rooms.len() as i64, Relaxed);
        let plan = self
            .links
            .as_ref()
            .map(|l| (l.topology.clone(), l.conns.clone()));
        let shard = sharded(&self.store);
        let generation = self.generation;
        AtomicResponse::new(Box::pin(
            async move {
                match plan {
                    Some((topology, conns)) => {
                        subscribe_room(&topology, &conns, shard, &msg.0, true).await
                    }
                    None => Ok(()),
                }
            }
            .into_actor(self)
            .map(move |r, bridge, ctx| {
                if let Err(e) = r {
                    // MOVED (the slot changed hands) or a dead connection: start over; the room
                    // catches up with everyone once the new connections are made.
                    if generation == bridge.generation && bridge.links.is_some() {
                        bridge.lose(ctx, &e);
                    }
                }
            }),
        ))
    }
}

impl Handler<Unsubscribe> for Bridge {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: Unsubscribe, _: &mut Self::Context) -> Self::Result {
        self.rooms.remove(&msg.0);
        self.metrics
            .subscriptions
            .store(self.rooms.len() as i64, Relaxed);
        let plan = self
            .links
            .as_ref()
            .map(|l| (l.topology.clone(), l.conns.clone()));
        if plan.is_some() {
            *self.leaving.entry(keys::room_events(&msg.0)).or_default() += 1;
        }
        let shard = sharded(&self.store);
        AtomicResponse::new(Box::pin(
            async move {
                if let Some((topology, conns)) = plan {
                    let _ = subscribe_room(&topology, &conns, shard, &msg.0, false).await;
                }
            }
            .into_actor(self),
        ))
    }
}
