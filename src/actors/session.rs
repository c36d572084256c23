//! One WebSocket session: decodes frames into the typed protocol, checks who may do what, and
//! talks to the store and the hub. Frames of one socket are handled one after another (the actor
//! waits on each), so its answers keep their order; live events reach the socket from rooms
//! through the bounded outbox, never through this actor's mailbox.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web;
use actix_ws::{CloseCode, Message as WsMessage, ProtocolError};
use bytestring::ByteString;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::hub::{Connect, Disconnect, Identify, JoinRoom, LeaveRoom};
use super::outbox::{Out, Outbox};
use super::room::{Joined, Member, Prelude, Replay};
use super::{Dialect, SessionId};
use crate::accounts::{self, User};
use crate::app::App;
use crate::error::{Error, Result};
use crate::protocol::{
    self, envelope, error_frame, legacy_message, legacy_user, ChatEvent, Inbound,
};
use crate::store::channels::{check_id, GENERAL};
use crate::store::keys;

/// Messages of seed 004's `channelJoin` answer.
const LEGACY_HISTORY: usize = 10;
/// Stream entries read to find them (joins and leaves are skipped).
const LEGACY_HISTORY_SCAN: usize = 100;
/// Channels one `subscribe` or `resume` may name.
const MAX_CHANNELS_PER_FRAME: usize = 200;
/// Users one `users` answer lists.
const MAX_USERS_LISTED: usize = 1000;

/// One join a frame asks for.
struct JoinSpec {
    channel: String,
    replay: Replay,
    peer_uuid: String,
    prelude: Prelude,
}

/// What handling a frame changes, applied back on the actor.
#[derive(Default)]
struct Reply {
    frames: Vec<String>,
    sign_in: Option<User>,
    sign_out: bool,
    joins: Vec<JoinSpec>,
    leaves: Vec<String>,
    /// Seed 004 keeps one joined channel per socket: the new one.
    legacy_channel: Option<String>,
}

impl Reply {
    fn frames(frames: Vec<String>) -> Self {
        Reply {
            frames,
            ..Default::default()
        }
    }
}

/// The session actor.
pub struct Session {
    id: SessionId,
    app: web::Data<App>,
    outbox: Outbox,
    close_rx: watch::Receiver<Option<actix_ws::CloseReason>>,
    user: Option<User>,
    dialect: Dialect,
    legacy_channel: Option<String>,
    rooms: HashSet<String>,
    last_pong: Instant,
    /// When the last frame handler finished.
    busy_until: Instant,
    peer_addr: String,
    window_start: Instant,
    window_posts: u32,
}

impl Session {
    pub fn new(
        id: SessionId,
        app: web::Data<App>,
        outbox: Outbox,
        close_rx: watch::Receiver<Option<actix_ws::CloseReason>>,
        user: Option<User>,
        peer_addr: String,
    ) -> Self {
        Session {
            id,
            app,
            outbox,
            close_rx,
            user,
            dialect: Dialect::Native,
            legacy_channel: None,
            rooms: HashSet::new(),
            last_pong: Instant::now(),
            busy_until: Instant::now(),
            peer_addr,
            window_start: Instant::now(),
            window_posts: 0,
        }
    }

    fn send(&self, frame: String) {
        self.outbox.send(ByteString::from(frame));
    }

    fn send_error(&self, e: &Error, payload: Value) {
        self.send(error_frame(e.code(), &e.public_message(), payload));
    }

    fn identify(&self) {
        self.app.hub.do_send(Identify {
            id: self.id,
            username: self.user.as_ref().map(|u| u.username.clone()),
            token_hash: self.user.as_ref().and_then(|u| u.token_hash.clone()),
            dialect: self.dialect,
        });
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let every = Duration::from_secs(self.app.settings.ws.heartbeat_interval_secs);
        ctx.run_interval(every, move |act, ctx| {
            // Two missed pongs: the peer is gone. Time this node itself spent on the socket's
            // frames does not count against the client, whose pongs wait behind them.
            if act.last_pong.max(act.busy_until).elapsed() > every * 2 + every / 2 {
                act.outbox.close_with(CloseCode::Policy, "no pong");
                ctx.stop();
                return;
            }
            act.outbox.push(Out::Ping);
        });
    }

    /// Counts a post against the per-connection window.
    fn allow_post(&mut self) -> bool {
        let ws = &self.app.settings.ws;
        if self.window_start.elapsed() >= Duration::from_secs(ws.rate_limit_window_secs) {
            self.window_start = Instant::now();
            self.window_posts = 0;
        }
        self.window_posts += 1;
        self.window_posts <= ws.rate_limit_messages
    }

    fn dispatch(&mut self, frame: Inbound, ctx: &mut Context<Self>) {
        // The last frame family a socket used decides what later deliveries look like;
        // `signOut` belongs to both.
        let dialect = match frame {
            Inbound::SignIn(_)
            | Inbound::SignUp(_)
            | Inbound::ChannelJoin { .. }
            | Inbound::ChannelLeave { .. }
            | Inbound::ChannelMessage { .. }
            | Inbound::Users => Some(Dialect::Legacy),
            Inbound::SignOut => None,
            _ => Some(Dialect::Native),
        };
        if let Some(d) = dialect.filter(|d| *d != self.dialect) {
            self.dialect = d;
            self.identify();
        }
        let needs_user = !matches!(
            frame,
            Inbound::SignIn(_) | Inbound::SignUp(_) | Inbound::Auth { .. }
        );
        if needs_user && self.user.is_none() {
            self.send_error(&Error::Unauthorized, Value::Null);
            return;
        }
        // Errors answering a post name it, so a client knows which one failed.
        let error_payload = match &frame {
            Inbound::Post {
                channel, client_id, ..
            } => json!({"channel": channel, "client_id": client_id}),
            _ => Value::Null,
        };
        if matches!(frame, Inbound::Post { .. } | Inbound::ChannelMessage { .. })
            && !self.allow_post()
        {
            self.send_error(&Error::RateLimited, error_payload);
            return;
        }
        let app = self.app.clone();
        let user = self.user.clone();
        let addr = self.peer_addr.clone();
        let fut = async move {
            let me = || user.clone().ok_or(Error::Unauthorized);
            match frame {
                Inbound::SignIn(c) => {
                    let s =
                        accounts::sign_in_or_create(&app.store, &c.username, &c.password, &addr)
                            .await?;
                    Ok(signed_in_reply(s))
                }
                Inbound::SignUp(c) => {
                    let s = accounts::register(
                        &app.store,
                        &c.username,
                        &c.password,
                        Default::default(),
                    )
                    .await?;
                    Ok(signed_in_reply(s))
                }
                Inbound::Auth { token } => {
                    match accounts::authenticate(&app.store, &token).await? {
                        Some(u) => Ok(Reply {
                            frames: vec![envelope(
                                "authorized",
                                json!({"userUUID": u.uuid, "username": u.username}),
                            )],
                            sign_in: Some(u),
                            ..Default::default()
                        }),
                        None => Err(Error::Unauthorized),
                    }
                }
                Inbound::SignOut => {
                    let u = me()?;
                    Ok(Reply {
                        frames: vec![envelope("signOut", json!({"uuid": u.uuid}))],
                        sign_out: true,
                        ..Default::default()
                    })
                }
                Inbound::Users => users_frame(&app).await.map(|f| Reply::frames(vec![f])),
                Inbound::ChannelJoin { recipient_uuid } => {
                    legacy_join(&app, &me()?, recipient_uuid).await
                }
                Inbound::ChannelLeave { recipient_uuid } => {
                    let u = me()?;
                    // Leaving never opens a private chat.
                    let channel = if recipient_uuid.is_empty() {
                        Some(GENERAL.to_string())
                    } else {
                        match app.store.username_by_uuid(&recipient_uuid).await? {
                            Some(other) => app.store.existing_dm(&u.username, &other).await?,
                            None => None,
                        }
                    };
                    Ok(Reply {
                        frames: vec![envelope(
                            "channelLeave",
                            json!({"recipientUUID": recipient_uuid}),
                        )],
                        leaves: channel.into_iter().collect(),
                        ..Default::default()
                    })
                }
                Inbound::ChannelMessage {
                    recipient_uuid,
                    message,
                } => {
                    let u = me()?;
                    let channel = legacy_channel(&app, &u, &recipient_uuid).await?;
                    if channel == GENERAL && !app.store.is_member(&u.username, GENERAL).await? {
                        app.store
                            .join_channel(&u.username, &u.uuid, GENERAL)
                            .await?;
                    }
                    app.store
                        .post_message(&u.username, &u.uuid, &channel, &message)
                        .await?;
                    app.metrics.messages_posted.fetch_add(1, Relaxed);
                    Ok(Reply::default())
                }
                Inbound::Subscribe { channels } => subscribe(&app, &me()?, channels, None).await,
                Inbound::Resume { channels } => {
                    let names = channels.keys().cloned().collect();
                    subscribe(&app, &me()?, names, Some(channels)).await
                }
                Inbound::Unsubscribe { channels } => Ok(Reply {
                    frames: vec![envelope("unsubscribed", json!({"channels": channels}))],
                    leaves: channels,
                    ..Default::default()
                }),
                Inbound::Post {
                    channel,
                    text,
                    client_id,
                } => {
                    let u = me()?;
                    let posted = app
                        .store
                        .post_message_once(
                            &u.username,
                            &u.uuid,
                            &channel,
                            &text,
                            client_id.as_deref(),
                        )
                        .await?;
                    // A client_id seen before: the first post's ack again, nothing stored now.
                    let ev = posted.event;
                    if !posted.duplicate {
                        app.metrics.messages_posted.fetch_add(1, Relaxed);
                    }
                    Ok(Reply::frames(vec![envelope(
                        "posted",
                        json!({"client_id": client_id, "id": ev.id, "channel": channel, "created_at": ev.created_at}),
                    )]))
                }
                Inbound::History {
                    channel,
                    before,
                    after,
                    limit,
                } => {
                    let u = me()?;
                    app.store.require_read(&u.username, &channel).await?;
                    let limit = limit.unwrap_or(app.settings.history.page_size);
                    let page = app
                        .store
                        .history(&channel, before.as_deref(), after.as_deref(), limit)
                        .await?;
                    Ok(Reply::frames(vec![envelope(
                        "history",
                        json!({"channel": channel, "messages": page.messages, "has_more": page.has_more}),
                    )]))
                }
                Inbound::Read { channel, last_id } => {
                    let u = me()?;
                    app.store.require_read(&u.username, &channel).await?;
                    app.store.mark_read(&u.username, &channel, &last_id).await?;
                    let count = app.store.unread(&u.username, &channel).await?;
                    Ok(Reply::frames(vec![envelope(
                        "unread",
                        json!({"channel": channel, "count": count}),
                    )]))
                }
                Inbound::Typing { channel } => {
                    let u = me()?;
                    if !app.store.is_member(&u.username, &channel).await? {
                        return Err(Error::Forbidden("not a member of that channel".into()));
                    }
                    let payload =
                        json!({"ephemeral": "typing", "channel": channel, "username": u.username});
                    app.store
                        .publish(&keys::room_events(&channel), &payload.to_string())
                        .await?;
                    Ok(Reply::default())
                }
            }
        };
        ctx.wait(fut.into_actor(self).map(|result: Result<Reply>, act, ctx| {
            act.busy_until = Instant::now();
            match result {
                Ok(reply) => act.apply(reply, ctx),
                Err(e) => act.send_error(&e, error_payload),
            }
        }));
    }

    fn apply(&mut self, reply: Reply, _ctx: &mut Context<Self>) {
        if reply.sign_out {
            for channel in self.rooms.drain() {
                self.app.hub.do_send(LeaveRoom {
                    channel,
                    id: self.id,
                });
            }
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
            self.legacy_channel = None;
            self.identify();
        }
        if let Some(user) = reply.sign_in {
            // Another user on this socket: nothing of the previous one's stays subscribed.
            if self
                .user
                .as_ref()
                .is_some_and(|u| u.username != user.username)
            {
                for channel in self.rooms.drain() {
                    self.app.hub.do_send(LeaveRoom {
                        channel,
                        id: self.id,
                    });
                }
                self.legacy_channel = None;
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
        if let Some(channel) = reply.legacy_channel {
            if let Some(old) = self.legacy_channel.replace(channel.clone()) {
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
        let Some(user) = &self.user else { return };
        for join in reply.joins {
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

fn signed_in_reply(s: accounts::SignedIn) -> Reply {
    let user = s.user();
    Reply {
        frames: vec![
            envelope(
                "authorized",
                json!({"userUUID": user.uuid, "accessKey": s.token, "username": user.username}),
            ),
            envelope(
                "sys",
                json!({"type": "signIn", "signIn": {"uuid": user.uuid, "username": user.username}}),
            ),
        ],
        sign_in: Some(user),
        ..Default::default()
    }
}

/// The channel a seed 004 frame means: General for an empty recipient, else the DM with them.
async fn legacy_channel(app: &App, me: &User, recipient_uuid: &str) -> Result<String> {
    if recipient_uuid.is_empty() {
        return Ok(GENERAL.to_string());
    }
    let other = app
        .store
        .username_by_uuid(recipient_uuid)
        .await?
        .ok_or(Error::UserNotFound)?;
    app.store.open_dm(&me.username, &other).await
}

/// Users with UUIDs and online state, as seed 004's objects.
async fn legacy_users(app: &App, names: &[String]) -> Result<Vec<Value>> {
    let uuids = app.store.uuids(names).await?;
    let online: HashSet<String> = app.store.online_users().await?.into_iter().collect();
    Ok(names
        .iter()
        .map(|n| {
            legacy_user(
                uuids.get(n).map(String::as_str).unwrap_or(""),
                n,
                online.contains(n),
            )
        })
        .collect())
}

async fn users_frame(app: &App) -> Result<String> {
    let mut names = app.store.all_usernames().await?;
    let total = names.len();
    names.truncate(MAX_USERS_LISTED);
    let users = legacy_users(app, &names).await?;
    Ok(envelope(
        "users",
        json!({"total": total, "received": users.len(), "users": users}),
    ))
}

async fn legacy_join(app: &App, me: &User, recipient_uuid: String) -> Result<Reply> {
    let channel = legacy_channel(app, me, &recipient_uuid).await?;
    if channel == GENERAL {
        app.store
            .join_channel(&me.username, &me.uuid, GENERAL)
            .await?;
    }
    let users = legacy_users(app, &app.store.members(&channel).await?).await?;
    let peer = recipient_uuid.clone();
    let prelude: Prelude = Box::new(move |joined: Joined<'_>| {
        let messages: Vec<&ChatEvent> = joined
            .events
            .iter()
            .filter(|e| e.kind == "message")
            .collect();
        let messages: Vec<Value> = messages[messages.len().saturating_sub(LEGACY_HISTORY)..]
            .iter()
            .map(|e| legacy_message(e, &peer))
            .collect();
        vec![envelope(
            "channelJoin",
            json!({"recipientUUID": peer, "messages": messages, "users": users}),
        )
        .into()]
    });
    Ok(Reply {
        joins: vec![JoinSpec {
            channel: channel.clone(),
            replay: Replay::Last(LEGACY_HISTORY_SCAN),
            peer_uuid: recipient_uuid,
            prelude,
        }],
        legacy_channel: Some(channel),
        ..Default::default()
    })
}

/// `subscribe` (live from now) or `resume` (replay after the given IDs, then live).
async fn subscribe(
    app: &App,
    me: &User,
    channels: Vec<String>,
    since: Option<BTreeMap<String, String>>,
) -> Result<Reply> {
    if channels.len() > MAX_CHANNELS_PER_FRAME {
        return Err(Error::body(format!(
            "at most {MAX_CHANNELS_PER_FRAME} channels per frame"
        )));
    }
    let mut reply = Reply::default();
    for channel in channels {
        let from = since.as_ref().and_then(|m| m.get(&channel)).cloned();
        let checked = match &from {
            Some(id) => check_id(id),
            None => Ok(()),
        };
        if let Err(e) = match checked {
            Ok(()) => app.store.require_read(&me.username, &channel).await,
            Err(e) => Err(e),
        } {
            reply.frames.push(error_frame(
                e.code(),
                &e.public_message(),
                json!({"channel": channel}),
            ));
            continue;
        }
        let name = channel.clone();
        let resumed = from.is_some();
        let prelude: Prelude = Box::new(move |joined: Joined<'_>| {
            let mut frames: Vec<ByteString> = joined
                .events
                .iter()
                .map(|e| envelope("message", json!(e)).into())
                .collect();
            let mut subscribed = json!({
                "channel": name,
                "last_id": joined.last_id,
                "replayed": joined.events.len(),
                "resumed": resumed,
            });
            if let Some(after) = joined.gap_after {
                subscribed["gap"] = json!({"after": after, "until": joined.last_id});
            }
            frames.push(envelope("subscribed", subscribed).into());
            frames
        });
        reply.joins.push(JoinSpec {
            channel,
            replay: from.map(Replay::Since).unwrap_or(Replay::None),
            peer_uuid: String::new(),
            prelude,
        });
    }
    Ok(reply)
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.app.metrics.ws_connections.fetch_add(1, Relaxed);
        self.app.metrics.ws_connections_total.fetch_add(1, Relaxed);
        self.app.hub.do_send(Connect {
            id: self.id,
            outbox: self.outbox.clone(),
        });
        self.send(envelope(
            "ready",
            json!({"sessionUUID": uuid::Uuid::new_v4().to_string()}),
        ));
        if let Some(u) = &self.user {
            self.send(envelope(
                "authorized",
                json!({"userUUID": u.uuid, "username": u.username}),
            ));
            self.identify();
        }
        self.heartbeat(ctx);
        // When the outbox asks for a close (slow client, shutdown, revoked), stop too.
        let mut close_rx = self.close_rx.clone();
        ctx.spawn(
            async move {
                let _ = close_rx.changed().await;
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.app.metrics.ws_connections.fetch_sub(1, Relaxed);
        self.app.hub.do_send(Disconnect { id: self.id });
    }
}

impl StreamHandler<Result<WsMessage, ProtocolError>> for Session {
    fn handle(&mut self, item: Result<WsMessage, ProtocolError>, ctx: &mut Self::Context) {
        match item {
            Ok(WsMessage::Text(text)) => {
                // Any frame shows the peer is alive, as a pong would.
                self.last_pong = Instant::now();
                self.app.metrics.frames_in.fetch_add(1, Relaxed);
                match protocol::decode(&text) {
                    Ok(frame) => self.dispatch(frame, ctx),
                    Err(e) => self.send(error_frame(e.code, &e.message, Value::Null)),
                }
            }
            Ok(WsMessage::Binary(_)) | Ok(WsMessage::Continuation(_)) => {
                self.send(error_frame(
                    "binary_unsupported",
                    "frames are JSON text",
                    Value::Null,
                ));
            }
            Ok(WsMessage::Ping(p)) => {
                self.outbox.push(Out::Pong(p));
            }
            Ok(WsMessage::Pong(_)) => self.last_pong = Instant::now(),
            Ok(WsMessage::Close(_)) => ctx.stop(),
            Ok(WsMessage::Nop) => {}
            Err(ProtocolError::Overflow) => {
                self.outbox.close_with(CloseCode::Size, "frame too large");
                ctx.stop();
            }
            Err(e) => {
                log::debug!("session {}: protocol error: {e}", self.id);
                self.outbox
                    .close_with(CloseCode::Protocol, "protocol error");
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
