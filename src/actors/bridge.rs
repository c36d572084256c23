//! The Redis bridge: this node's one pub/sub connection.
//!
//! It subscribes to a room's subject while the node has a room for it, and always to the presence
//! and user-notice subjects, and turns every message into a [`BridgeEvent`] for the recipient it
//! was given when it was built (the hub). When the connection drops it reconnects with backoff,
//! resubscribes, and says so with [`BridgeEvent::Resubscribed`], so every room catches up from its
//! stream and nothing published meanwhile is lost. A room followed while a connection is being
//! made is subscribed as soon as it is made, and caught up the same way.
//!
//! The bridge knows nothing of the actors it serves: rooms ask it to subscribe, and its events go
//! to a `Recipient`, so data flows one way (session → hub → room → bridge for requests, bridge →
//! recipient for events) and a test can stand in for the hub.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use redis::aio::PubSubSink;

use crate::metrics::Metrics;
use crate::store::{keys, Store};

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
    /// Rooms were subscribed after a gap (the connection was lost and is back, or a room was
    /// followed while the connection was being made): what was published meanwhile was not
    /// heard, so every room catches up from its stream.
    Resubscribed,
}

/// A connection attempt finished: the connection, and the rooms it subscribed to.
#[derive(Message)]
#[rtype(result = "()")]
struct Connected(Result<(PubSubSink, redis::aio::PubSubStream, HashSet<String>), String>);

/// The bridge actor.
pub struct Bridge {
    store: Store,
    metrics: Arc<Metrics>,
    events: Recipient<BridgeEvent>,
    sink: Option<PubSubSink>,
    rooms: HashSet<String>,
    connected_once: bool,
    backoff: Duration,
    /// Bumped on every connection, so a stale stream's end is ignored.
    generation: u64,
}

impl Bridge {
    /// A bridge that delivers what it hears to `events`. It connects when started.
    pub fn new(store: Store, metrics: Arc<Metrics>, events: Recipient<BridgeEvent>) -> Self {
        Bridge {
            store,
            metrics,
            events,
            sink: None,
            rooms: HashSet::new(),
            connected_once: false,
            backoff: Duration::from_millis(100),
            generation: 0,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let client = self.store.client.clone();
        let rooms = self.rooms.clone();
        let mut subjects: Vec<String> =
            vec![keys::PRESENCE_EVENTS.into(), keys::USER_EVENTS.into()];
        subjects.extend(rooms.iter().map(|r| keys::room_events(r)));
        let addr = ctx.address();
        actix_rt::spawn(async move {
            let result = async {
                let pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
                let (mut sink, stream) = pubsub.split();
                sink.subscribe(&subjects).await.map_err(|e| e.to_string())?;
                Ok((sink, stream, rooms))
            }
            .await;
            addr.do_send(Connected(result));
        });
    }

    /// Sets right, on a connection that subscribed the rooms in `subscribed`, the rooms followed
    /// or left while it was being made. Answers whether some room was not subscribed (it may
    /// have missed events), and the work to do.
    fn settle_rooms(
        &self,
        subscribed: &HashSet<String>,
        mut sink: PubSubSink,
    ) -> (bool, impl std::future::Future<Output = ()>) {
        let subjects = |rooms: HashSet<&String>| -> Vec<String> {
            rooms.into_iter().map(|r| keys::room_events(r)).collect()
        };
        let missed = subjects(self.rooms.difference(subscribed).collect());
        let left = subjects(subscribed.difference(&self.rooms).collect());
        let missed_some = !missed.is_empty();
        let work = async move {
            if !missed.is_empty() {
                if let Err(e) = sink.subscribe(&missed).await {
                    log::warn!("bridge: subscribe {missed:?}: {e}");
                }
            }
            if !left.is_empty() {
                let _ = sink.unsubscribe(&left).await;
            }
        };
        (missed_some, work)
    }

    fn reconnect_later(&mut self, ctx: &mut Context<Self>) {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
        ctx.run_later(wait, |bridge, ctx| bridge.connect(ctx));
    }
}

impl Actor for Bridge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.connect(ctx);
    }
}

// Like Subscribe, this holds the mailbox until the rooms followed or left meanwhile are set right
// on the new connection, so Resubscribed is sent only once every room's subject is subscribed.
impl Handler<Connected> for Bridge {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: Connected, ctx: &mut Self::Context) -> Self::Result {
        let (sink, stream, subscribed) = match msg.0 {
            Ok(connection) => connection,
            Err(e) => {
                log::warn!("bridge: pub/sub connection failed: {e}; retrying");
                self.reconnect_later(ctx);
                return AtomicResponse::new(Box::pin(fut::ready(())));
            }
        };
        self.generation += 1;
        let generation = self.generation;
        self.sink = Some(sink.clone());
        self.backoff = Duration::from_millis(100);
        self.metrics
            .subscriptions
            .store(self.rooms.len() as i64, Relaxed);
        ctx.add_stream(stream.map(move |m| (generation, Some(m))).chain(
            futures_util::stream::once(async move { (generation, None) }),
        ));
        let reconnected = std::mem::replace(&mut self.connected_once, true);
        let (missed_some, settle) = self.settle_rooms(&subscribed, sink);
        let catch_up = reconnected || missed_some;
        AtomicResponse::new(Box::pin(settle.into_actor(self).map(
            move |(), bridge, _| {
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

impl StreamHandler<(u64, Option<redis::Msg>)> for Bridge {
    fn handle(&mut self, (generation, msg): (u64, Option<redis::Msg>), ctx: &mut Self::Context) {
        let Some(msg) = msg else {
            if generation == self.generation {
                log::warn!("bridge: pub/sub connection lost; reconnecting");
                self.sink = None;
                self.reconnect_later(ctx);
            }
            return;
        };
        if let Some(event) = event_of(&msg) {
            self.events.do_send(event);
        }
    }

    fn finished(&mut self, _: &mut Self::Context) {
        // The end of a stream is handled as the `None` item; the bridge keeps running.
    }
}

/// The event a pub/sub message stands for, by its subject (`None` for a subject the bridge does
/// not know).
fn event_of(msg: &redis::Msg) -> Option<BridgeEvent> {
    let subject = msg.get_channel_name();
    let payload: Arc<str> = String::from_utf8_lossy(msg.get_payload_bytes()).into();
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
        let sink = self.sink.clone();
        AtomicResponse::new(Box::pin(
            async move {
                if let Some(mut sink) = sink {
                    if let Err(e) = sink.subscribe(keys::room_events(&msg.0)).await {
                        log::warn!("bridge: subscribe {}: {e}", msg.0);
                    }
                }
            }
            .into_actor(self),
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
        let sink = self.sink.clone();
        AtomicResponse::new(Box::pin(
            async move {
                if let Some(mut sink) = sink {
                    let _ = sink.unsubscribe(keys::room_events(&msg.0)).await;
                }
            }
            .into_actor(self),
        ))
    }
}
