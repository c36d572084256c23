//! The Redis bridge on its own: built against a real redis-server with a stand-in for the hub, it
//! turns what is published on its subjects into typed events, follows the rooms it is asked to,
//! and says so when it had to reconnect.
//!
//! `PUBLISH` answers how many subscribers received a message, so each test knows whether the
//! bridge listened at that moment without waiting for something not to arrive; a marker on the
//! user subject shows that nothing else came before it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chatnode::actors::bridge::{Bridge, BridgeEvent, Subscribe, Unsubscribe};
use chatnode::metrics::Metrics;
use chatnode::store::{keys, Store};
use chatnode::Settings;
use common::proxy::FreezableProxy;
use common::{kill_pubsub_clients, TestRedis};
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;

/// Stands in for the hub: hands every event it receives to the test.
struct Listener(mpsc::UnboundedSender<BridgeEvent>);

impl Actor for Listener {
    type Context = Context<Self>;
}

impl Handler<BridgeEvent> for Listener {
    type Result = ();
    fn handle(&mut self, event: BridgeEvent, _: &mut Self::Context) {
        let _ = self.0.send(event);
    }
}

/// A bridge on `redis` whose events come out of the returned receiver.
async fn bridge_on(redis: &TestRedis) -> (Addr<Bridge>, mpsc::UnboundedReceiver<BridgeEvent>) {
    bridge_at(&redis.url(), Settings::defaults()).await
}

/// A bridge on the Redis at `url`, with `settings`.
async fn bridge_at(
    url: &str,
    settings: Settings,
) -> (Addr<Bridge>, mpsc::UnboundedReceiver<BridgeEvent>) {
    let store = Store::connect(url, Arc::new(settings))
        .await
        .expect("the store connects");
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = Listener(tx).start();
    let bridge = Bridge::new(store, Arc::new(Metrics::default()), listener.recipient()).start();
    (bridge, rx)
}

/// Publishes `payload` on `subject`; answers how many subscribers received it.
async fn publish(conn: &mut MultiplexedConnection, subject: &str, payload: &str) -> i64 {
    // Room subjects are shard channels, as the posting scripts publish them.
    let command = if keys::room_from_events(subject).is_some() {
        "SPUBLISH"
    } else {
        "PUBLISH"
    };
    redis::cmd(command)
        .arg(subject)
        .arg(payload)
        .query_async(conn)
        .await
        .expect("PUBLISH")
}

/// The next event the listener received.
async fn next_event(events: &mut mpsc::UnboundedReceiver<BridgeEvent>) -> BridgeEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event within 10 s")
        .expect("the listener is alive")
}

/// A per-user notice carrying `text`, which the bridge always listens to.
fn marker(text: &str) -> BridgeEvent {
    BridgeEvent::User(text.into())
}

/// Waits until the bridge listens on its standing subjects (its first connection is made when it
/// starts), takes the notice that showed it, and answers the events that came before it.
async fn until_listening(
    conn: &mut MultiplexedConnection,
    events: &mut mpsc::UnboundedReceiver<BridgeEvent>,
) -> Vec<BridgeEvent> {
    for _ in 0..500 {
        if publish(conn, keys::USER_EVENTS, "listening").await == 1 {
            let mut before = Vec::new();
            loop {
                match next_event(events).await {
                    e if e == marker("listening") => return before,
                    e => before.push(e),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the bridge did not subscribe within 10 s");
}

#[actix_rt::test]
async fn published_payloads_arrive_as_typed_events_for_followed_rooms_only() {
    let redis = TestRedis::start_plain().await;
    let mut conn = redis.conn().await;
    let (bridge, mut events) = bridge_on(&redis).await;
    assert_eq!(until_listening(&mut conn, &mut events).await, []);

    bridge.send(Subscribe("general".into())).await.unwrap();
    let room_payload = r#"{"id":"1-0","type":"message","message":"hi"}"#;
    assert_eq!(
        publish(&mut conn, &keys::room_events("general"), room_payload).await,
        1,
        "a subscribed room's subject is heard as soon as Subscribe answered"
    );
    assert_eq!(
        publish(&mut conn, &keys::room_events("elsewhere"), "{}").await,
        0,
        "a room nobody asked for is not subscribed"
    );
    let presence_payload = r#"{"username":"alice","uuid":"u-1","online":true,"channels":[]}"#;
    assert_eq!(
        publish(&mut conn, keys::PRESENCE_EVENTS, presence_payload).await,
        1
    );
    assert_eq!(publish(&mut conn, keys::USER_EVENTS, "after").await, 1);

    assert_eq!(
        next_event(&mut events).await,
        BridgeEvent::Room {
            channel: "general".into(),
            payload: room_payload.into(),
        }
    );
    assert_eq!(
        next_event(&mut events).await,
        BridgeEvent::Presence(presence_payload.into())
    );
    assert_eq!(next_event(&mut events).await, marker("after"));

    bridge.send(Unsubscribe("general".into())).await.unwrap();
    assert_eq!(
        publish(&mut conn, &keys::room_events("general"), room_payload).await,
        0,
        "a room left is unsubscribed as soon as Unsubscribe answered"
    );
    assert_eq!(publish(&mut conn, keys::USER_EVENTS, "left").await, 1);
    assert_eq!(next_event(&mut events).await, marker("left"));
}

#[actix_rt::test]
async fn after_a_lost_connection_the_bridge_resubscribes_then_says_so() {
    let redis = TestRedis::start_plain().await;
    let mut conn = redis.conn().await;
    let (bridge, mut events) = bridge_on(&redis).await;
    assert_eq!(until_listening(&mut conn, &mut events).await, []);
    bridge.send(Subscribe("general".into())).await.unwrap();

    let killed = kill_pubsub_clients(&mut conn).await;
    assert_eq!(killed, 1, "the bridge holds one pub/sub connection");

    assert_eq!(next_event(&mut events).await, BridgeEvent::Resubscribed);
    // Resubscribed comes after the new connection subscribed to everything again.
    assert_eq!(
        publish(&mut conn, &keys::room_events("general"), "again").await,
        1
    );
    assert_eq!(publish(&mut conn, keys::PRESENCE_EVENTS, "p").await, 1);
    assert_eq!(
        next_event(&mut events).await,
        BridgeEvent::Room {
            channel: "general".into(),
            payload: "again".into(),
        }
    );
    assert_eq!(
        next_event(&mut events).await,
        BridgeEvent::Presence("p".into())
    );
}

#[actix_rt::test]
async fn a_room_followed_while_the_bridge_connects_is_subscribed_once_it_is_connected() {
    let redis = TestRedis::start_plain().await;
    let mut conn = redis.conn().await;
    let (bridge, mut events) = bridge_on(&redis).await;
    // Asked at once: the bridge's first connection is still being made.
    bridge.send(Subscribe("early".into())).await.unwrap();
    let mut got = until_listening(&mut conn, &mut events).await;

    assert_eq!(
        publish(&mut conn, &keys::room_events("early"), "live").await,
        1,
        "the room's subject is subscribed on the connection made meanwhile"
    );
    // The room may have missed something before its subject was subscribed: it catches up.
    while got.len() < 2 {
        got.push(next_event(&mut events).await);
    }
    got.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        got,
        [
            BridgeEvent::Resubscribed,
            BridgeEvent::Room {
                channel: "early".into(),
                payload: "live".into(),
            }
        ]
    );
    assert_eq!(publish(&mut conn, keys::USER_EVENTS, "end").await, 1);
    assert_eq!(next_event(&mut events).await, marker("end"));
}

/// A pub/sub connection that goes silent without closing (half-open TCP: Redis still counts the
/// bridge as a subscriber, nothing reaches it) is found by the health-check PING within about
/// two intervals; the bridge reconnects and has every room catch up, and live events flow again.
#[actix_rt::test]
async fn a_silently_dead_connection_is_found_by_the_health_check_and_replaced() {
    let redis = TestRedis::start_plain().await;
    let proxy = FreezableProxy::start(redis.process.port()).await;
    let mut conn = redis.conn().await;
    let mut settings = Settings::defaults();
    settings.redis.pubsub_health_secs = 1;
    let (bridge, mut events) = bridge_at(&proxy.url(), settings).await;
    assert_eq!(until_listening(&mut conn, &mut events).await, []);
    bridge.send(Subscribe("general".into())).await.unwrap();

    proxy.freeze_open_connections();
    // Redis still delivers to the frozen connection: the event is lost on the way.
    assert_eq!(
        publish(&mut conn, &keys::room_events("general"), "unheard").await,
        1
    );
    let started = std::time::Instant::now();
    assert_eq!(
        next_event(&mut events).await,
        BridgeEvent::Resubscribed,
        "the lost event never arrives; the bridge reconnects and rooms catch up instead"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "found within about two health-check intervals, took {:?}",
        started.elapsed()
    );
    // The old connection is still subscribed as far as Redis knows; the new one hears too.
    assert_eq!(
        publish(&mut conn, &keys::room_events("general"), "heard").await,
        2
    );
    assert_eq!(
        next_event(&mut events).await,
        BridgeEvent::Room {
            channel: "general".into(),
            payload: "heard".into(),
        }
    );
}
