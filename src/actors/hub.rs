//! The hub: this node's registry of sessions and rooms.
//!
//! It starts a room with its first local member and closes it with its last (the room then asks
//! the bridge to unsubscribe), routes the bridge's events to rooms, tells local sessions of the
//! presence changes they care about, delivers per-user notices, and closes every socket with 1001
//! at shutdown.
//!
//! Who hears of a user's presence: that user's own sockets, chatnode-family sockets of users who
//! share a channel with them (public or DM), and every signed-in seed 004 socket (that protocol
//! announces sign-ins to all connected users). A transition carries the user's channels; the hub
//! knows the channels of each user signed in here (their memberships when they signed in, plus
//! channels they joined or DMs opened with them since), indexed by channel, so telling the
//! interested sockets costs what they are, not what the node holds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use actix_ws::CloseCode;
use bytestring::ByteString;
use serde_json::Value;

use super::bridge::{Bridge, BridgeEvent};
use super::outbox::Outbox;
use super::presence::Presence;
use super::room::{self, Member, Prelude, Replay, Room};
use super::{Dialect, SessionId};
use crate::metrics::Metrics;
use crate::protocol::outbound::{self, ChannelAdded, Outbound};
use crate::protocol::seed004::{self, Sys};
use crate::protocol::ChatEvent;
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

/// Close every socket with 1001 (the node is stopping).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseAll;

struct SessionEntry {
    outbox: Outbox,
    username: Option<String>,
    token_hash: Option<String>,
    dialect: Dialect,
    rooms: HashSet<String>,
    /// The presence tracker was told this session's user is online here.
    announced: bool,
}

/// A user signed in on this node: their sockets here and their channels.
#[derive(Default)]
struct LocalUser {
    sessions: HashSet<SessionId>,
    channels: HashSet<String>,
    /// Their memberships were read. Until then their sockets are not announced online, so once a
    /// socket sees its own presence it hears all it should. (Transitions meanwhile are not sent
    /// to them: telling every user still being read of everyone made the cost quadratic again
    /// whenever sign-ins outran Redis.)
    loaded: bool,
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
    presence: Addr<Presence>,
    sessions: HashMap<SessionId, SessionEntry>,
    rooms: HashMap<String, RoomEntry>,
    /// Signed-in users of this node.
    users: HashMap<String, LocalUser>,
    /// Channel → signed-in users of this node who belong to it.
    channel_users: HashMap<String, HashSet<String>>,
    /// Signed-in seed 004 sockets: they hear of everyone.
    seed004_sockets: HashSet<SessionId>,
}

impl Hub {
    /// A hub whose rooms subscribe through `bridge` and whose users are announced to `presence`.
    /// The bridge's events come back to the hub as [`BridgeEvent`]s: build the bridge with the
    /// address of the hub's context before the hub runs (as `node.rs` does).
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        bridge: Addr<Bridge>,
        presence: Addr<Presence>,
    ) -> Self {
        Hub {
            store,
            metrics,
            bridge,
            presence,
            sessions: HashMap::new(),
            rooms: HashMap::new(),
            users: HashMap::new(),
            channel_users: HashMap::new(),
            seed004_sockets: HashSet::new(),
        }
    }

    /// Records that a signed-in user of this node belongs to these channels.
    fn add_channels(&mut self, username: &str, channels: impl IntoIterator<Item = String>) {
        let Some(user) = self.users.get_mut(username) else {
            return;
        };
        for c in channels {
            if user.channels.insert(c.clone()) {
                self.channel_users
                    .entry(c)
                    .or_default()
                    .insert(username.to_string());
            }
        }
    }

    /// Forgets a user with no signed-in socket left here.
    fn drop_user(&mut self, username: &str) {
        let Some(user) = self.users.remove(username) else {
            return;
        };
        for c in user.channels {
            if let Some(set) = self.channel_users.get_mut(&c) {
                set.remove(username);
                if set.is_empty() {
                    self.channel_users.remove(&c);
                }
            }
        }
    }

    /// Keeps `seed004_sockets` in step with a session's user and dialect.
    fn index_dialect(&mut self, id: SessionId) {
        match self.sessions.get(&id) {
            Some(s) if s.username.is_some() && s.dialect == Dialect::Seed004 => {
                self.seed004_sockets.insert(id);
            }
            _ => {
                self.seed004_sockets.remove(&id);
            }
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

    fn set_user(&mut self, id: SessionId, username: Option<String>, ctx: &mut Context<Self>) {
        let Some(entry) = self.sessions.get_mut(&id) else {
            return;
        };
        if entry.username == username {
            return;
        }
        let old = entry.username.take();
        entry.username = username.clone();
        let announced = std::mem::take(&mut entry.announced);
        if let Some(old) = old {
            if announced {
                self.presence.do_send(super::presence::Offline(old.clone()));
            }
            let last = self.users.get_mut(&old).is_some_and(|u| {
                u.sessions.remove(&id);
                u.sessions.is_empty()
            });
            if last {
                self.drop_user(&old);
            }
        }
        if let Some(new) = username {
            let user = self.users.entry(new.clone()).or_default();
            let first = user.sessions.is_empty();
            user.sessions.insert(id);
            if user.loaded {
                self.announce(id);
            } else if first {
                // The user's channels first, then their presence.
                let store = self.store.clone();
                ctx.spawn(
                    async move {
                        let channels = store.memberships(&new).await;
                        (new, channels)
                    }
                    .into_actor(self)
                    .map(|(username, channels), act, _| act.loaded(&username, channels)),
                );
            }
        }
        self.index_dialect(id);
    }

    /// A user's memberships were read: index them and announce the user's sockets.
    fn loaded(&mut self, username: &str, channels: crate::error::Result<Vec<String>>) {
        let Some(user) = self.users.get_mut(username) else {
            return;
        };
        user.loaded = true;
        let sessions: Vec<SessionId> = user.sessions.iter().copied().collect();
        match channels {
            Ok(channels) => self.add_channels(username, channels),
            Err(e) => log::warn!("hub: channels of {username}: {e}"),
        }
        for id in sessions {
            self.announce(id);
        }
    }

    /// Tells the presence tracker a session's user is online here (once per sign-in).
    fn announce(&mut self, id: SessionId) {
        let Some(entry) = self.sessions.get_mut(&id) else {
            return;
        };
        if let (false, Some(username)) = (entry.announced, &entry.username) {
            self.presence
                .do_send(super::presence::Online(username.clone()));
            entry.announced = true;
        }
    }

    /// Sends a frame to every chatnode-family socket of a signed-in user of this node (seed 004
    /// sockets hear of everyone anyway).
    fn to_chatnode_sockets(&self, username: &str, frame: &ByteString) {
        let Some(user) = self.users.get(username) else {
            return;
        };
        for id in &user.sessions {
            if let Some(s) = self.sessions.get(id) {
                if s.dialect == Dialect::Chatnode {
                    s.outbox.send(frame.clone());
                }
            }
        }
    }
}

impl Actor for Hub {
    type Context = Context<Self>;
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
                dialect: Dialect::Chatnode,
                rooms: HashSet::new(),
                announced: false,
            },
        );
    }
}

impl Handler<Identify> for Hub {
    type Result = ();
    fn handle(&mut self, msg: Identify, ctx: &mut Self::Context) {
        if let Some(entry) = self.sessions.get_mut(&msg.id) {
            entry.token_hash = msg.token_hash;
            entry.dialect = msg.dialect;
        }
        self.set_user(msg.id, msg.username, ctx);
        self.index_dialect(msg.id);
    }
}

impl Handler<Disconnect> for Hub {
    type Result = ();
    fn handle(&mut self, msg: Disconnect, ctx: &mut Self::Context) {
        self.set_user(msg.id, None, ctx);
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
        // Joining takes membership: from now on the user hears of the channel's people.
        let username = msg.member.username.clone();
        let known = session.username.as_deref() == Some(username.as_str());
        if !session.rooms.insert(msg.channel.clone()) {
            // Already a member here: leave first so the new replay and prelude apply cleanly.
            if let Some(entry) = self.rooms.get(&msg.channel) {
                entry.addr.do_send(room::Leave(id));
            }
        }
        if known {
            self.add_channels(&username, [msg.channel.clone()]);
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

impl Handler<BridgeEvent> for Hub {
    type Result = ();
    fn handle(&mut self, event: BridgeEvent, ctx: &mut Self::Context) {
        match event {
            BridgeEvent::Room { channel, payload } => {
                // A removal (a member's, or everyone's when the channel is deleted) is read
                // here; the cheap text test spares parsing every other event.
                let removal = (payload.contains("member_removed")
                    || payload.contains("channel_removed"))
                .then(|| removal_of(&payload))
                .flatten();
                let is_event = !matches!(removal, Some((None, _)));
                if let Some(entry) = self.rooms.get(&channel) {
                    if is_event {
                        entry.addr.do_send(room::RoomEvent(payload));
                    }
                }
                if let Some((username, reason)) = removal {
                    self.remove_from_channel(&channel, username.as_deref(), &reason);
                }
            }
            BridgeEvent::Presence(payload) => self.presence_changed(&payload),
            BridgeEvent::User(payload) => self.user_notice(&payload),
            BridgeEvent::Resubscribed => {
                for entry in self.rooms.values() {
                    entry.addr.do_send(room::CatchUp);
                }
                self.recheck_sessions(ctx);
            }
        }
    }
}

/// Who a room payload removes from its channel: `Some((Some(user), reason))` for a
/// `member_removed` event, `Some((None, reason))` for a deleted channel, `None` otherwise.
fn removal_of(payload: &str) -> Option<(Option<String>, String)> {
    let v: Value = serde_json::from_str(payload).ok()?;
    if v["type"] == "member_removed" {
        let user = v["username"].as_str()?.to_string();
        return Some((
            Some(user),
            v["text"].as_str().unwrap_or_default().to_string(),
        ));
    }
    v["channel_removed"].as_str()?;
    Some((None, v["reason"].as_str().unwrap_or_default().to_string()))
}

/// Taking users out of channels they lost.
impl Hub {
    /// `username` (or, with `None`, everyone) lost `channel`: their sockets subscribed to it here
    /// leave its room after the event that removed them (the room sends them `channel_removed`
    /// last); their other chatnode sockets get `channel_removed` at once; and they no longer hear
    /// of the channel's people.
    fn remove_from_channel(&mut self, channel: &str, username: Option<&str>, reason: &str) {
        let frame = room::removed_frame(channel, reason);
        let users: Vec<String> = match username {
            Some(u) => vec![u.to_string()],
            None => self
                .channel_users
                .get(channel)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
        };
        let mut in_room: HashSet<SessionId> = HashSet::new();
        if let Some(entry) = self.rooms.get_mut(channel) {
            for id in entry.members.iter() {
                let hit = self
                    .sessions
                    .get(id)
                    .is_some_and(|s| username.is_none() || s.username.as_deref() == username);
                if hit {
                    in_room.insert(*id);
                }
            }
            entry.addr.do_send(room::Remove {
                username: username.map(str::to_string),
                frame: frame.clone(),
            });
            entry.members.retain(|id| !in_room.contains(id));
            if entry.members.is_empty() {
                entry.addr.do_send(room::Close);
                self.rooms.remove(channel);
            }
        }
        for id in &in_room {
            if let Some(s) = self.sessions.get_mut(id) {
                s.rooms.remove(channel);
            }
        }
        for u in &users {
            if let Some(user) = self.users.get(u.as_str()) {
                for id in &user.sessions {
                    if in_room.contains(id) {
                        continue;
                    }
                    if let Some(s) = self.sessions.get(id) {
                        if s.dialect == Dialect::Chatnode {
                            s.outbox.send(frame.clone());
                        }
                    }
                }
            }
            self.drop_channel(u, channel);
        }
    }

    /// A signed-in user of this node no longer belongs to `channel`.
    fn drop_channel(&mut self, username: &str, channel: &str) {
        if let Some(user) = self.users.get_mut(username) {
            user.channels.remove(channel);
        }
        if let Some(set) = self.channel_users.get_mut(channel) {
            set.remove(username);
            if set.is_empty() {
                self.channel_users.remove(channel);
            }
        }
    }
}

impl Hub {
    /// After a gap in the bridge's subscriptions a revocation may have been published unheard:
    /// every signed-in socket's session is looked up again, and the sockets of sessions that
    /// ended are closed as a revocation would have closed them.
    fn recheck_sessions(&self, ctx: &mut Context<Self>) {
        let signed_in: Vec<(SessionId, String, String)> = self
            .sessions
            .iter()
            .filter_map(|(id, s)| Some((*id, s.username.clone()?, s.token_hash.clone()?)))
            .collect();
        if signed_in.is_empty() {
            return;
        }
        let store = self.store.clone();
        let check = async move {
            let mut ended = Vec::new();
            let mut left = signed_in.into_iter().peekable();
            // Redis may still be hard to reach just after the bridge is back (the command
            // connection replaced after timeouts): the sessions not yet checked are tried again.
            for attempt in 0..10 {
                while let Some((id, username, hash)) = left.peek() {
                    match store.session_alive(username, hash).await {
                        Ok(alive) => {
                            if !alive {
                                ended.push(*id);
                            }
                            left.next();
                        }
                        Err(e) => {
                            log::warn!(
                                "hub: cannot check sessions after reconnect ({attempt}): {e}"
                            );
                            break;
                        }
                    }
                }
                if left.peek().is_none() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            ended
        };
        ctx.spawn(check.into_actor(self).map(|ended, hub, _| {
            for id in ended {
                if let Some(s) = hub.sessions.get(&id) {
                    s.outbox.close_with(CloseCode::Policy, "signed out");
                }
            }
        }));
    }
}

/// What the hub does with the bridge's presence and user events.
impl Hub {
    /// Tells the sockets that should hear of it of a presence transition published by some node.
    fn presence_changed(&self, payload: &str) {
        let Ok(v) = serde_json::from_str::<Value>(payload) else {
            return;
        };
        let username = v["username"].as_str().unwrap_or_default();
        let uuid = v["uuid"].as_str().unwrap_or_default();
        let online = v["online"].as_bool().unwrap_or(false);
        // Redis' cjson writes an empty list as `{}`; no field at all is an older node's payload.
        let channels: Option<Vec<&str>> = match &v["channels"] {
            Value::Array(a) => Some(a.iter().filter_map(Value::as_str).collect()),
            Value::Object(o) if o.is_empty() => Some(Vec::new()),
            _ => None,
        };
        let chatnode_frame: ByteString = Outbound::Presence(outbound::Presence {
            online,
            username: username.into(),
        })
        .to_json()
        .into();
        let user = seed004::User::new(uuid, username, online);
        let sys = if online {
            Sys::Online(user)
        } else {
            Sys::Offline(user)
        };
        let seed004_frame: ByteString = Outbound::Sys(sys).to_json().into();
        let Some(channels) = channels else {
            for s in self.sessions.values() {
                if s.username.is_some() {
                    s.outbox.send(match s.dialect {
                        Dialect::Chatnode => chatnode_frame.clone(),
                        Dialect::Seed004 => seed004_frame.clone(),
                    });
                }
            }
            return;
        };
        for id in &self.seed004_sockets {
            if let Some(s) = self.sessions.get(id) {
                s.outbox.send(seed004_frame.clone());
            }
        }
        // The user's own sockets and those of everyone sharing a channel, each user once.
        let mut told: HashSet<&str> = HashSet::new();
        told.insert(username);
        self.to_chatnode_sockets(username, &chatnode_frame);
        for c in channels {
            for u in self.channel_users.get(c).into_iter().flatten() {
                if told.insert(u.as_str()) {
                    self.to_chatnode_sockets(u, &chatnode_frame);
                }
            }
        }
    }

    /// Delivers a per-user notice published by some node to that user's sockets here.
    fn user_notice(&mut self, payload: &str) {
        let Ok(v) = serde_json::from_str::<Value>(payload) else {
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
                        let why = v["reason"].as_str().unwrap_or("signed out");
                        s.outbox.close_with(CloseCode::Policy, why);
                    }
                }
            }
            // A channel lost while this node has no room of it (with a room, its
            // `member_removed` event did all this already, in stream order).
            "channel_removed" => {
                let Some(channel) = v["payload"]["channel"].as_str() else {
                    return;
                };
                // Handled already through the room, or not a channel this node knows them in.
                let known = self
                    .users
                    .get(username)
                    .is_some_and(|u| !u.loaded || u.channels.contains(channel));
                if self.rooms.contains_key(channel) || !known {
                    return;
                }
                let reason = v["payload"]["reason"].as_str().unwrap_or_default();
                let (channel, username) = (channel.to_string(), username.to_string());
                self.remove_from_channel(&channel, Some(&username), reason);
            }
            _ => {
                if kind == "channel_added" {
                    // A DM opened with this user: they hear of its other person from now on.
                    if let Some(c) = v["payload"]["channel"].as_str() {
                        let (c, u) = (c.to_string(), username.to_string());
                        self.add_channels(&u, [c]);
                    }
                }
                let targets = self
                    .sessions
                    .values()
                    .filter(|s| s.username.as_deref() == Some(username));
                let Some(frame) = notice_frame(kind, v["payload"].clone()) else {
                    return;
                };
                let frame: ByteString = frame.to_json().into();
                for s in targets {
                    if s.dialect == Dialect::Chatnode {
                        s.outbox.send(frame.clone());
                    }
                }
            }
        }
    }
}

/// The frame a per-user notice becomes (`mention`, `channel_added`).
fn notice_frame(kind: &str, payload: Value) -> Option<Outbound> {
    let frame = match kind {
        "mention" => serde_json::from_value::<ChatEvent>(payload).map(Outbound::Mention),
        "channel_added" => {
            serde_json::from_value::<ChannelAdded>(payload).map(Outbound::ChannelAdded)
        }
        other => {
            log::warn!("hub: unknown user notice `{other}`");
            return None;
        }
    };
    frame
        .map_err(|e| log::warn!("hub: unreadable `{kind}` notice: {e}"))
        .ok()
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
