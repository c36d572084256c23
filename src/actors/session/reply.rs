//! What handling a frame changes ([`Reply`]), and how the session applies it: frames to send,
//! a sign-in or sign-out, rooms to join and leave.

use actix::prelude::*;
use bytestring::ByteString;

use super::Session;
use crate::accounts::{self, User};
use crate::actors::hub::{JoinRoom, LeaveRoom};
use crate::actors::room::{Member, Prelude, Replay};
use crate::protocol::Outbound;

/// One join a frame asks for.
pub(super) struct JoinSpec {
    pub channel: String,
    pub replay: Replay,
    /// For seed 004 DMs: the other party's UUID, which that client files messages under.
    pub peer_uuid: String,
    pub prelude: Prelude,
}

/// What handling a frame changes, applied back on the actor.
#[derive(Default)]
pub(super) struct Reply {
    pub frames: Vec<Outbound>,
    pub sign_in: Option<User>,
    pub sign_out: bool,
    pub joins: Vec<JoinSpec>,
    pub leaves: Vec<String>,
    /// Seed 004 keeps one joined channel per socket: the new one.
    pub seed004_channel: Option<String>,
}

impl Reply {
    /// Frames to send, nothing else.
    pub fn frames(frames: Vec<Outbound>) -> Self {
        Reply {
            frames,
            ..Default::default()
        }
    }
}

impl Session {
    pub(super) fn apply(&mut self, reply: Reply, _ctx: &mut Context<Self>) {
        if reply.sign_out {
            self.sign_out();
        }
        if let Some(user) = reply.sign_in {
            // Another user on this socket: nothing of the previous one's stays subscribed.
            if self
                .user
                .as_ref()
                .is_some_and(|u| u.username != user.username)
            {
                self.leave_all();
                self.seed004_channel = None;
            }
            self.user = Some(user);
            self.identify();
        }
        for channel in reply.leaves {
            if self.rooms.remove(&channel) {
                self.app.hub.do_send(LeaveRoom {
                    channel,
                    id: self.id,
                });
            }
        }
        if let Some(channel) = reply.seed004_channel {
            if let Some(old) = self.seed004_channel.replace(channel.clone()) {
                if old != channel && self.rooms.remove(&old) {
                    self.app.hub.do_send(LeaveRoom {
                        channel: old,
                        id: self.id,
                    });
                }
            }
        }
        for frame in reply.frames {
            self.send(frame);
        }
        self.join(reply.joins);
    }

    /// Leaves every room, ends the session token everywhere, and forgets the user.
    fn sign_out(&mut self) {
        self.leave_all();
        if let Some(u) = self.user.take() {
            if u.token_hash.is_some() {
                // Ends the session everywhere: other sockets signed in with it close too.
                let store = self.app.store.clone();
                actix_rt::spawn(async move {
                    if let Err(e) = accounts::end_session(&store, &u).await {
                        log::warn!("sign-out of {}: {e}", u.username);
                    }
                });
            }
        }
        self.seed004_channel = None;
        self.identify();
    }

    fn leave_all(&mut self) {
        for channel in self.rooms.drain() {
            self.app.hub.do_send(LeaveRoom {
                channel,
                id: self.id,
            });
        }
    }

    fn join(&mut self, joins: Vec<JoinSpec>) {
        let Some(user) = &self.user else { return };
        for join in joins {
            self.rooms.insert(join.channel.clone());
            self.app.hub.do_send(JoinRoom {
                channel: join.channel,
                member: Member {
                    session: self.id,
                    username: user.username.clone(),
                    dialect: self.dialect,
                    outbox: self.outbox.clone(),
                    peer_uuid: join.peer_uuid,
                    last_id: String::new(),
                },
                replay: join.replay,
                prelude: join.prelude,
            });
        }
    }
}

/// Frames a prelude hands the room, serialized once.
pub(super) fn encoded(frames: impl IntoIterator<Item = Outbound>) -> Vec<ByteString> {
    frames.into_iter().map(|f| f.to_json().into()).collect()
}
