//! One room: the local members of one channel on this node.
//!
//! Every event reaches the room through the bridge (also the ones posted on this node: one path,
//! one order). The room serializes each event once per frame variant and pushes it to each
//! member's outbox. It remembers the last stream ID it delivered; after the bridge reconnects it
//! catches up from the stream, from the oldest position any member still has, and per-member IDs
//! keep replays from doubling anything.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use actix::prelude::*;
use bytestring::ByteString;
use serde_json::Value;

use super::outbox::Outbox;
use super::{Dialect, SessionId};
use crate::metrics::Metrics;
use crate::protocol::outbound::{self, Outbound, Typing};
use crate::protocol::{seed004, ChatEvent};
use crate::store::ids::{after_bound, id_after};
use crate::store::Store;

/// A member as the room knows it.
#[derive(Clone)]
pub struct Member {
    pub session: SessionId,
    pub username: String,
    pub dialect: Dialect,
    pub outbox: Outbox,
    /// For seed 004 DMs: the other party's UUID, which that client files the message under.
    pub peer_uuid: String,
    /// Last stream ID this member has; later events only.
    pub last_id: String,
}

/// What a joining member gets before going live.
pub enum Replay {
    /// Nothing: live from the room's current position.
    None,
    /// Everything after this stream ID.
    Since(String),
    /// The newest `n` events, handed to `prelude`.
    Last(usize),
}

/// What a joining member missed, as the room found it.
pub struct Joined<'a> {
    /// Replayed events, oldest first.
    pub events: &'a [ChatEvent],
    /// The room's position: live events after this follow.
    pub last_id: &'a str,
    /// Set when more was missed than the member's queue may hold at once: nothing is replayed
    /// and the client pages history after this ID up to `last_id` itself.
    pub gap_after: Option<&'a str>,
}

/// Builds the frames a member gets at join.
pub type Prelude = Box<dyn FnOnce(Joined<'_>) -> Vec<ByteString> + Send>;

/// Adds a member (sent by the hub).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub member: Member,
    pub replay: Replay,
    pub prelude: Prelude,
}

/// Removes a member's session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave(pub SessionId);

/// A pub/sub payload for this room, as the bridge received it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomEvent(pub Arc<str>);

/// Catch up from the stream after the last delivered ID (the bridge reconnected).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CatchUp;

/// Takes a user's sessions (or, with `None`, everyone) out of the room once the event that
/// removed them was delivered, sending each of them `frame` (`channel_removed`) last.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Remove {
    pub username: Option<String>,
    pub frame: ByteString,
}

/// Stop: the last local member left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

/// An ephemeral event (typing), published to a channel's rooms on every node but never stored.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Ephemeral {
    pub channel: String,
    /// What it is: `typing`.
    pub ephemeral: String,
    pub username: String,
}

impl Ephemeral {
    /// `username` is typing in `channel`.
    pub fn typing(channel: String, username: String) -> Self {
        Ephemeral {
            channel,
            ephemeral: "typing".into(),
            username,
        }
    }
}

/// The room actor.
pub struct Room {
    channel: String,
    store: Store,
    metrics: Arc<Metrics>,
    bridge: Addr<super::bridge::Bridge>,
    members: HashMap<SessionId, Member>,
    last_id: String,
}

impl Room {
    pub fn new(
        channel: String,
        store: Store,
        metrics: Arc<Metrics>,
        bridge: Addr<super::bridge::Bridge>,
    ) -> Self {
        Room {
            channel,
            store,
            metrics,
            bridge,
            members: HashMap::new(),
            last_id: "0-0".into(),
        }
    }

    /// Pushes one stored event to every member that does not have it yet.
    fn deliver(&mut self, ev: &ChatEvent) {
        if id_after(&ev.id, &self.last_id) {
            self.last_id = ev.id.clone();
        }
        let mut chatnode_frame: Option<ByteString> = None;
        // Seed 004 frames differ by receiver: `RecipientUUID` is their peer in a DM.
        let mut seed004_frames: HashMap<String, ByteString> = HashMap::new();
        let mut delivered = 0u64;
        for m in self.members.values_mut() {
            if !id_after(&ev.id, &m.last_id) {
                continue;
            }
            m.last_id = ev.id.clone();
            let frame = match m.dialect {
                Dialect::Chatnode => chatnode_frame
                    .get_or_insert_with(|| outbound::message_json(ev).into())
                    .clone(),
                Dialect::Seed004 => {
                    if ev.kind != "message" {
                        continue;
                    }
                    seed004_frames
                        .entry(m.peer_uuid.clone())
                        .or_insert_with(|| {
                            let message = seed004::Message::from_event(ev, &m.peer_uuid);
                            Outbound::ChannelMessage(message).to_json().into()
                        })
                        .clone()
                }
            };
            if m.outbox.send(frame) {
                delivered += 1;
            }
        }
        self.metrics.deliveries.fetch_add(delivered, Relaxed);
    }

    /// Where catching up starts: the oldest position any member still has. The room's own
    /// position may be past events some member has not received: a member that joined with a
    /// replay while the bridge was down moved it to the end of its replay, and the others got
    /// none of those events live. Per-member IDs drop what a member already has.
    fn catch_up_from(&self) -> String {
        let mut from = self.last_id.clone();
        for m in self.members.values() {
            if id_after(&from, &m.last_id) {
                from = m.last_id.clone();
            }
        }
        from
    }

    fn deliver_ephemeral(&self, e: Ephemeral) {
        // Typing is the only ephemeral event there is.
        if e.ephemeral != "typing" {
            log::warn!("room {}: unknown ephemeral `{}`", self.channel, e.ephemeral);
            return;
        }
        let frame: ByteString = Outbound::Typing(Typing {
            channel: e.channel,
            username: e.username.clone(),
        })
        .to_json()
        .into();
        for m in self.members.values() {
            if m.dialect == Dialect::Chatnode && m.username != e.username {
                m.outbox.send(frame.clone());
            }
        }
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.metrics.rooms_active.fetch_add(1, Relaxed);
        // Subscribe first, then read the tail: anything published after the read arrives live,
        // anything before it is in the stream. Joins wait in the mailbox until this is done.
        let bridge = self.bridge.clone();
        let store = self.store.clone();
        let channel = self.channel.clone();
        ctx.wait(
            async move {
                let _ = bridge.send(super::bridge::Subscribe(channel.clone())).await;
                store.last_id(&channel).await.ok().flatten()
            }
            .into_actor(self)
            .map(|last, room, _| {
                if let Some(last) = last {
                    room.last_id = last;
                }
            }),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.metrics.rooms_active.fetch_sub(1, Relaxed);
        self.bridge
            .do_send(super::bridge::Unsubscribe(self.channel.clone()));
    }
}

impl Handler<Join> for Room {
    type Result = ();

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) {
        let Join {
            mut member,
            replay,
            prelude,
        } = msg;
        let store = self.store.clone();
        let channel = self.channel.clone();
        // A replay may fill at most half the member's queue, in frames and in bytes; more becomes
        // a gap to page with history (a replay past the bound would close the socket with 1013
        // and the client would resume into the same replay again).
        let cap = (member.outbox.capacity() / 2).max(1);
        let cap_bytes = member.outbox.capacity_bytes() / 2;
        // The read happens while the room holds its mailbox, so no live event slips between the
        // replay and going live; per-member IDs drop what both paths bring.
        let username = member.username.clone();
        ctx.wait(
            async move {
                // Whether the user may still read the channel, checked here, after the room
                // subscribed: a removal written after this check arrives as an event and takes
                // the member out again; one written before it refuses the join.
                if !store.can_read(&username, &channel).await? {
                    return Ok((Vec::new(), Some(REFUSED.to_string())));
                }
                match replay {
                    Replay::None => Ok((Vec::new(), None)),
                    Replay::Last(n) => store.range_rev(&channel, "+", n).await.map(|v| (v, None)),
                    Replay::Since(id) => {
                        // Nothing follows the largest stream ID: nothing to replay.
                        let Some(start) = after_bound(&id)? else {
                            return Ok((Vec::new(), None));
                        };
                        let v = store.range(&channel, &start, "+", cap + 1).await?;
                        Ok(if v.len() > cap || replay_bytes(&v) > cap_bytes {
                            (Vec::new(), Some(id))
                        } else {
                            (v, None)
                        })
                    }
                }
            }
            .into_actor(self)
            .map(move |read: crate::error::Result<_>, room, _| {
                let (events, gap) = read.unwrap_or_else(|e| {
                    log::warn!("room {}: replay failed: {e}", room.channel);
                    (Vec::new(), None)
                });
                if gap.as_deref() == Some(REFUSED) {
                    if member.dialect == Dialect::Chatnode {
                        member
                            .outbox
                            .send(removed_frame(&room.channel, "not_member"));
                    }
                    return;
                }
                if let Some(last) = events.last() {
                    if id_after(&last.id, &room.last_id) {
                        room.last_id = last.id.clone();
                    }
                }
                member.last_id = room.last_id.clone();
                let frames = prelude(Joined {
                    events: &events,
                    last_id: &room.last_id,
                    gap_after: gap.as_deref(),
                });
                for frame in frames {
                    member.outbox.send(frame);
                }
                room.members.insert(member.session, member);
            }),
        );
    }
}

/// Marks a join refused because the user may no longer read the channel.
const REFUSED: &str = "refused";

/// The `channel_removed` frame of a channel.
pub fn removed_frame(channel: &str, reason: &str) -> ByteString {
    Outbound::ChannelRemoved(outbound::ChannelRemoved {
        channel: channel.to_string(),
        reason: reason.to_string(),
    })
    .to_json()
    .into()
}

/// About what `events` take in a socket's queue: each event serialized, as the replay sends it.
fn replay_bytes(events: &[ChatEvent]) -> usize {
    events
        .iter()
        .map(|e| serde_json::to_string(e).map_or(0, |t| t.len()))
        .sum()
}

impl Handler<Leave> for Room {
    type Result = ();
    fn handle(&mut self, msg: Leave, _: &mut Self::Context) {
        self.members.remove(&msg.0);
    }
}

impl Handler<Remove> for Room {
    type Result = ();
    fn handle(&mut self, msg: Remove, _: &mut Self::Context) {
        self.members.retain(|_, m| {
            let hit = msg.username.as_deref().is_none_or(|u| u == m.username);
            if hit && m.dialect == Dialect::Chatnode {
                m.outbox.send(msg.frame.clone());
            }
            !hit
        });
    }
}

impl Handler<Close> for Room {
    type Result = ();
    fn handle(&mut self, _: Close, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<RoomEvent> for Room {
    type Result = ();
    fn handle(&mut self, msg: RoomEvent, ctx: &mut Self::Context) {
        // Nearly every payload is a stored event: read it as one at once; only a payload with
        // an `ephemeral` key (a text's quotes are escaped, so a text cannot look like one) is
        // looked at as a value first.
        if !msg.0.contains("\"ephemeral\":") {
            match serde_json::from_str::<ChatEvent>(&msg.0) {
                Ok(ev) => {
                    self.deliver(&ev);
                    if made_private(&ev) {
                        self.drop_readers(ctx);
                    }
                }
                Err(e) => log::warn!("room {}: unreadable event: {e}", self.channel),
            }
            return;
        }
        let value: Value = match serde_json::from_str(&msg.0) {
            Ok(v) => v,
            Err(e) => {
                log::warn!("room {}: unreadable event: {e}", self.channel);
                return;
            }
        };
        if value.get("ephemeral").is_some() {
            if let Ok(e) = serde_json::from_value::<Ephemeral>(value) {
                self.deliver_ephemeral(e);
            }
            return;
        }
        match serde_json::from_value::<ChatEvent>(value) {
            Ok(ev) => {
                self.deliver(&ev);
                if made_private(&ev) {
                    self.drop_readers(ctx);
                }
            }
            Err(e) => log::warn!("room {}: unreadable event: {e}", self.channel),
        }
    }
}

/// Whether an event made the channel private (`channel_updated` with `{"kind":"private"}`).
fn made_private(ev: &ChatEvent) -> bool {
    ev.kind == "channel_updated"
        && serde_json::from_str::<Value>(&ev.text).is_ok_and(|v| v["kind"] == "private")
}

impl Room {
    /// The channel became private: members of the room who are not members of the channel (they
    /// were reading it as a public one) are taken out, each told `channel_removed`. The room
    /// holds its mailbox until that is known, so no later event reaches them.
    fn drop_readers(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let channel = self.channel.clone();
        let mut users: Vec<String> = self.members.values().map(|m| m.username.clone()).collect();
        users.sort();
        users.dedup();
        ctx.wait(
            async move {
                let mut gone = Vec::new();
                for u in users {
                    // A failed check takes the reader out: the safe side.
                    if !store.can_read(&u, &channel).await.unwrap_or(false) {
                        gone.push(u);
                    }
                }
                gone
            }
            .into_actor(self)
            .map(|gone, room, _| {
                let frame = removed_frame(&room.channel, "not_member");
                room.members.retain(|_, m| {
                    let out = gone.contains(&m.username);
                    if out && m.dialect == Dialect::Chatnode {
                        m.outbox.send(frame.clone());
                    }
                    !out
                });
            }),
        );
    }
}

impl Handler<CatchUp> for Room {
    type Result = ();
    fn handle(&mut self, _: CatchUp, ctx: &mut Self::Context) {
        let store = self.store.clone();
        let channel = self.channel.clone();
        let from = self.catch_up_from();
        ctx.wait(
            async move { store.read_after(&channel, &from).await }
                .into_actor(self)
                .map(|events, room, _| match events {
                    Ok(events) => {
                        for ev in &events {
                            room.deliver(ev);
                        }
                    }
                    Err(e) => log::warn!("room {}: catch-up failed: {e}", room.channel),
                }),
        );
    }
}
