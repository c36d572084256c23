//! The hub: this node's registry of sessions and rooms.
//!
//! It starts a room with its first local member and closes it with its last (the room then asks
//! the bridge to unsubscribe), routes the bridge's events to rooms, tells every local session of
//! presence changes, delivers per-user notices, and closes every socket with 1001 at shutdown.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use actix_ws::CloseCode;
use bytestring::ByteString;
use serde_json::{json, Value};

use super::bridge::Bridge;
use super::outbox::Outbox;
use super::presence::Presence;
use super::room::{self, Member, Prelude, Replay, Room};
use super::{Dialect, SessionId};
use crate::metrics::Metrics;
use crate::protocol::{envelope, legacy_user};
use crate::store::Store;

/// A socket opened.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub id: SessionId,
    pub outbox: Outbox,
}

/// A session signed in (or out, with `None`), and the frames it speaks.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Identify {
    pub id: SessionId,
    pub username: Option<String>,
    /// Session token hash, so a logout elsewhere can close this socket.
    pub token_hash: Option<String>,
    pub dialect: Dialect,
}

/// A socket closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub id: SessionId,
}

/// Join a session to a channel's room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JoinRoom {
    pub channel: String,
    pub member: Member,
    pub replay: Replay,
    pub prelude: Prelude,
}

/// Remove a session from a channel's room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeaveRoom {
    pub channel: String,
    pub id: SessionId,
}

/// A pub/sub payload for a room (from the bridge).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomPayload {
    pub channel: String,
    pub payload: Arc<str>,
}

/// A presence transition published by some node: `{"username","uuid","online"}`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PresencePayload(pub Arc<str>);

/// A per-user notice published by some node: `{"username", "kind", …}`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UserPayload(pub Arc<str>);

/// The bridge reconnected: every room catches up from its stream.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resync;

/// Close every socket with 1001 (the node is stopping).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseAll;

/// Wires the presence tracker in after both actors exist.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPresence(pub Addr<Presence>);

struct SessionEntry {
    outbox: Outbox,
    username: Option<String>,
    token_hash: Option<String>,
    dialect: Dialect,
    rooms: HashSet<String>,
}

struct RoomEntry {
    addr: Addr<Room>,
    members: HashSet<SessionId>,
}

/// The hub actor.
pub struct Hub {
    store: Store,
    metrics: Arc<Metrics>,
    bridge: Addr<Bridge>,
    presence: Option<Addr<Presence>>,
    sessions: HashMap<SessionId, SessionEntry>,
    rooms: HashMap<String, RoomEntry>,
}

impl Hub {
    pub fn new(store: Store, metrics: Arc<Metrics>, bridge: Addr<Bridge>) -> Self {
        Hub {
            store,
            metrics,
            bridge,
            presence: None,
            sessions: HashMap::new(),
            rooms: HashMap::new(),
        }
    }

    fn leave(&mut self, channel: &str, id: SessionId) {
        if let Some(entry) = self.rooms.get_mut(channel) {
            entry.members.remove(&id);
            if entry.members.is_empty() {
                entry.addr.do_send(room::Close);
                self.rooms.remove(channel);
            } else {
                entry.addr.do_send(room::Leave(id));
            }
        }
    }

    fn set_user(&mut self, id: SessionId, username: Option<String>) {
        let Some(entry) = self.sessions.get_mut(&id) else {
            return;
        };
        if entry.username == username {
            return;
        }
        if let (Some(old), Some(p)) = (entry.username.take(), &self.presence) {
            p.do_send(super::presence::Offline(old));
        }
        if let (Some(new), Some(p)) = (&username, &self.presence) {
            p.do_send(super::presence::Online(new.clone()));
        }
        entry.username = username;
    }
}

impl Actor for Hub {
    type Context = Context<Self>;
}

impl Handler<SetPresence> for Hub {
    type Result = ();
    fn handle(&mut self, msg: SetPresence, _: &mut Self::Context) {
        self.presence = Some(msg.0);
    }
}

impl Handler<Connect> for Hub {
    type Result = ();
    fn handle(&mut self, msg: Connect, _: &mut Self::Context) {
        self.sessions.insert(
            msg.id,
            SessionEntry {
                outbox: msg.outbox,
                username: None,
                token_hash: None,
                dialect: Dialect::Native,
                rooms: HashSet::new(),
            },
        );
    }
}

impl Handler<Identify> for Hub {
    type Result = ();
    fn handle(&mut self, msg: Identify, _: &mut Self::Context) {
        self.set_user(msg.id, msg.username);
        if let Some(entry) = self.sessions.get_mut(&msg.id) {
            entry.token_hash = msg.token_hash;
            entry.dialect = msg.dialect;
        }
    }
}

impl Handler<Disconnect> for Hub {
    type Result = ();
    fn handle(&mut self, msg: Disconnect, _: &mut Self::Context) {
        self.set_user(msg.id, None);
        if let Some(entry) = self.sessions.remove(&msg.id) {
            for channel in entry.rooms {
                self.leave(&channel, msg.id);
            }
        }
    }
}

impl Handler<JoinRoom> for Hub {
    type Result = ();
    fn handle(&mut self, msg: JoinRoom, _: &mut Self::Context) {
        let id = msg.member.session;
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if !session.rooms.insert(msg.channel.clone()) {
            // Already a member here: leave first so the new replay and prelude apply cleanly.
            if let Some(entry) = self.rooms.get(&msg.channel) {
                entry.addr.do_send(room::Leave(id));
            }
        }
        let entry = self
            .rooms
            .entry(msg.channel.clone())
            .or_insert_with(|| RoomEntry {
                addr: Room::new(
                    msg.channel.clone(),
                    self.store.clone(),
                    self.metrics.clone(),
                    self.bridge.clone(),
                )
                .start(),
                members: HashSet::new(),
            });
        entry.members.insert(id);
        entry.addr.do_send(room::Join {
            member: msg.member,
            replay: msg.replay,
            prelude: msg.prelude,
        });
    }
}

impl Handler<LeaveRoom> for Hub {
    type Result = ();
    fn handle(&mut self, msg: LeaveRoom, _: &mut Self::Context) {
        if let Some(s) = self.sessions.get_mut(&msg.id) {
            s.rooms.remove(&msg.channel);
        }
        self.leave(&msg.channel, msg.id);
    }
}

impl Handler<RoomPayload> for Hub {
    type Result = ();
    fn handle(&mut self, msg: RoomPayload, _: &mut Self::Context) {
        if let Some(entry) = self.rooms.get(&msg.channel) {
            entry.addr.do_send(room::RoomEvent(msg.payload));
        }
    }
}

impl Handler<Resync> for Hub {
    type Result = ();
    fn handle(&mut self, _: Resync, _: &mut Self::Context) {
        for entry in self.rooms.values() {
            entry.addr.do_send(room::CatchUp);
        }
    }
}

impl Handler<PresencePayload> for Hub {
    type Result = ();
    fn handle(&mut self, msg: PresencePayload, _: &mut Self::Context) {
        let Ok(v) = serde_json::from_str::<Value>(&msg.0) else {
            return;
        };
        let username = v["username"].as_str().unwrap_or_default();
        let uuid = v["uuid"].as_str().unwrap_or_default();
        let online = v["online"].as_bool().unwrap_or(false);
        let native: ByteString =
            envelope("presence", json!({"username": username, "online": online})).into();
        let kind = if online { "online" } else { "offline" };
        let legacy: ByteString = envelope(
            "sys",
            json!({"type": kind, kind: legacy_user(uuid, username, online)}),
        )
        .into();
        for s in self.sessions.values() {
            if s.username.is_none() {
                continue;
            }
            s.outbox.send(match s.dialect {
                Dialect::Native => native.clone(),
                Dialect::Legacy => legacy.clone(),
            });
        }
    }
}

impl Handler<UserPayload> for Hub {
    type Result = ();
    fn handle(&mut self, msg: UserPayload, _: &mut Self::Context) {
        let Ok(v) = serde_json::from_str::<Value>(&msg.0) else {
            return;
        };
        let Some(username) = v["username"].as_str() else {
            return;
        };
        let kind = v["kind"].as_str().unwrap_or_default();
        let targets = self
            .sessions
            .values()
            .filter(|s| s.username.as_deref() == Some(username));
        match kind {
            // Sessions ended elsewhere (logout, password change): close their sockets.
            "revoked" => {
                let all = v["all_except"].as_str();
                let one = v["token_hash"].as_str();
                for s in targets {
                    let hit = match (one, all) {
                        (Some(h), _) => s.token_hash.as_deref() == Some(h),
                        (None, Some(keep)) => s.token_hash.as_deref() != Some(keep),
                        (None, None) => true,
                    };
                    if hit {
                        s.outbox.close_with(CloseCode::Policy, "signed out");
                    }
                }
            }
            _ => {
                let frame: ByteString = envelope(kind, v["payload"].clone()).into();
                for s in targets {
                    if s.dialect == Dialect::Native {
                        s.outbox.send(frame.clone());
                    }
                }
            }
        }
    }
}

impl Handler<CloseAll> for Hub {
    type Result = ();
    fn handle(&mut self, _: CloseAll, _: &mut Self::Context) {
        for s in self.sessions.values() {
            s.outbox.close_with(
                CloseCode::Away,
                "server is restarting: reconnect and resume",
            );
        }
    }
}
