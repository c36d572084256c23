//! The Redis bridge: this node's one pub/sub connection.
//!
//! It subscribes to a room's subject while the node has a room for it, and always to the presence
//! and user-notice subjects, and turns every message into an actor message for the hub. When the
//! connection drops it reconnects with backoff, resubscribes, and has every room catch up from
//! its stream, so nothing published meanwhile is lost.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use redis::aio::PubSubSink;

use super::hub::{Hub, PresencePayload, Resync, RoomPayload, UserPayload};
use crate::metrics::Metrics;
use crate::store::{keys, Store};

/// Subscribe to a room's subject; answers once Redis confirmed (or the bridge is reconnecting,
/// in which case the room catches up after the reconnect).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub String);

/// Unsubscribe from a room's subject.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe(pub String);

/// Wires the hub in after both actors exist.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetHub(pub Addr<Hub>);

/// A connection attempt finished.
#[derive(Message)]
#[rtype(result = "()")]
struct Connected(Result<(PubSubSink, redis::aio::PubSubStream), String>);

/// The bridge actor.
pub struct Bridge {
    store: Store,
    metrics: Arc<Metrics>,
    hub: Option<Addr<Hub>>,
    sink: Option<PubSubSink>,
    rooms: HashSet<String>,
    connected_once: bool,
    backoff: Duration,
    /// Bumped on every connection, so a stale stream's end is ignored.
    generation: u64,
}

impl Bridge {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Bridge {
            store,
            metrics,
            hub: None,
            sink: None,
            rooms: HashSet::new(),
            connected_once: false,
            backoff: Duration::from_millis(100),
            generation: 0,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let client = self.store.client.clone();
        let mut subjects: Vec<String> =
            vec![keys::PRESENCE_EVENTS.into(), keys::USER_EVENTS.into()];
        subjects.extend(self.rooms.iter().map(|r| keys::room_events(r)));
        let addr = ctx.address();
        actix_rt::spawn(async move {
            let result = async {
                let pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
                let (mut sink, stream) = pubsub.split();
                sink.subscribe(&subjects).await.map_err(|e| e.to_string())?;
                Ok((sink, stream))
            }
            .await;
            addr.do_send(Connected(result));
        });
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

impl Handler<SetHub> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: SetHub, _: &mut Self::Context) {
        self.hub = Some(msg.0);
    }
}

impl Handler<Connected> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: Connected, ctx: &mut Self::Context) {
        match msg.0 {
            Ok((sink, stream)) => {
                self.generation += 1;
                let generation = self.generation;
                self.sink = Some(sink);
                self.backoff = Duration::from_millis(100);
                self.metrics
                    .subscriptions
                    .store(self.rooms.len() as i64, Relaxed);
                ctx.add_stream(stream.map(move |m| (generation, Some(m))).chain(
                    futures_util::stream::once(async move { (generation, None) }),
                ));
                if self.connected_once {
                    self.metrics.bridge_reconnects.fetch_add(1, Relaxed);
                    log::info!("bridge: pub/sub reconnected; rooms catch up from their streams");
                    if let Some(hub) = &self.hub {
                        hub.do_send(Resync);
                    }
                }
                self.connected_once = true;
            }
            Err(e) => {
                log::warn!("bridge: pub/sub connection failed: {e}; retrying");
                self.reconnect_later(ctx);
            }
        }
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
        let Some(hub) = &self.hub else { return };
        let subject = msg.get_channel_name();
        let payload: Arc<str> = String::from_utf8_lossy(msg.get_payload_bytes()).into();
        if let Some(channel) = keys::room_from_events(subject) {
            hub.do_send(RoomPayload {
                channel: channel.to_string(),
                payload,
            });
        } else if subject == keys::PRESENCE_EVENTS {
            hub.do_send(PresencePayload(payload));
        } else if subject == keys::USER_EVENTS {
            hub.do_send(UserPayload(payload));
        }
    }

    fn finished(&mut self, _: &mut Self::Context) {
        // The end of a stream is handled as the `None` item; the bridge keeps running.
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
