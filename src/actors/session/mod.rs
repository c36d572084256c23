//! One WebSocket session: decodes frames into the typed protocol, does what every frame needs
//! (the socket's frame family, the sign-in requirement, the post rate limit) and hands each
//! frame to its own function: [`identity`] (who the socket is), [`seed004`] (seed 004's channel
//! frames) and [`chatnode`] (chatnode's). What a frame changes comes back as a [`Reply`] that
//! the actor applies ([`reply`]).
//!
//! Frames of one socket are handled one after another through its [`pipeline`], so its answers
//! keep their order, while the actor itself stays free for pings, pongs and its heartbeat; live
//! events reach the socket from rooms through the bounded outbox, never through this actor's
//! mailbox.

mod actions;
mod chatnode;
mod identity;
mod pipeline;
mod reply;
mod seed004;

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web;
use actix_ws::{CloseCode, Message as WsMessage, ProtocolError};
use bytestring::ByteString;
use tokio::sync::watch;

use super::hub::{Connect, Disconnect, Identify};
use super::outbox::{Out, Outbox};
use super::{Dialect, SessionId};
use crate::accounts::User;
use crate::app::App;
use crate::error::{Error, Result};
use crate::protocol::outbound::Ready;
use crate::protocol::{self, ErrorAbout, ErrorCode, ErrorFrame, Inbound, Outbound};
use reply::Reply;

/// The session actor.
pub struct Session {
    id: SessionId,
    app: web::Data<App>,
    outbox: Outbox,
    close_rx: watch::Receiver<Option<actix_ws::CloseReason>>,
    user: Option<User>,
    dialect: Dialect,
    /// Seed 004 keeps one joined channel per socket.
    seed004_channel: Option<String>,
    rooms: HashSet<String>,
    last_pong: Instant,
    /// When the last frame handler finished.
    busy_until: Instant,
    /// Frames waiting or being handled, in the order sent.
    pipeline: pipeline::Pipeline,
    peer_addr: String,
    window_start: Instant,
    window_posts: u32,
}

/// What a frame's function knows of the socket that sent it.
struct Caller {
    app: web::Data<App>,
    user: Option<User>,
    peer_addr: String,
}

impl Caller {
    /// The signed-in user (checked before any frame that needs one is handled).
    fn me(&self) -> Result<&User> {
        self.user.as_ref().ok_or(Error::Unauthorized)
    }
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
            dialect: Dialect::Chatnode,
            seed004_channel: None,
            rooms: HashSet::new(),
            last_pong: Instant::now(),
            busy_until: Instant::now(),
            pipeline: pipeline::Pipeline::default(),
            peer_addr,
            window_start: Instant::now(),
            window_posts: 0,
        }
    }

    fn send(&self, frame: Outbound) {
        self.outbox.send(ByteString::from(frame.to_json()));
    }

    /// Answers frame `kind` with the `error` frame of `e`.
    fn send_error(&self, e: &Error, kind: &str, about: Option<ErrorAbout>) {
        self.send(error_frame(e, kind, about));
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
            // Two missed pongs: the peer is gone. Pongs are read while frames are in flight, and
            // time up to the last frame's answer still does not count against the client.
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

    /// What every frame needs before its own function: the socket's frame family, the sign-in
    /// requirement and the post rate limit. False when the frame was answered with an error.
    /// What every frame needs before it is handled: a signed-in socket (but to sign in) and,
    /// for posts, the socket's own rate. The dialect of the frame becomes the socket's.
    fn check(&mut self, frame: &Inbound) -> Result<()> {
        // The last frame family a socket used decides what later deliveries look like.
        if let Some(d) = dialect_of(frame).filter(|d| *d != self.dialect) {
            self.dialect = d;
            self.identify();
        }
        let needs_user = !matches!(
            frame,
            Inbound::SignIn(_) | Inbound::SignUp(_) | Inbound::Auth { .. }
        );
        if needs_user && self.user.is_none() {
            return Err(Error::Unauthorized);
        }
        if (matches!(frame, Inbound::Post { .. } | Inbound::ChannelMessage { .. })
            || actions::is_action(frame))
            && !self.allow_post()
        {
            return Err(Error::RateLimited);
        }
        Ok(())
    }
}

/// The family a frame belongs to; `signOut` belongs to both and changes nothing.
fn dialect_of(frame: &Inbound) -> Option<Dialect> {
    match frame {
        Inbound::SignIn(_)
        | Inbound::SignUp(_)
        | Inbound::ChannelJoin { .. }
        | Inbound::ChannelLeave { .. }
        | Inbound::ChannelMessage { .. }
        | Inbound::Users => Some(Dialect::Seed004),
        Inbound::SignOut => None,
        _ => Some(Dialect::Chatnode),
    }
}

/// Hands a frame to its function.
async fn route(frame: Inbound, cx: Caller) -> Result<Reply> {
    match frame {
        Inbound::SignIn(c) => identity::sign_in(&cx, c).await,
        Inbound::SignUp(c) => identity::sign_up(&cx, c).await,
        Inbound::Auth { token } => identity::auth(&cx, &token).await,
        Inbound::SignOut => identity::sign_out(&cx),
        Inbound::Users => seed004::users(&cx).await,
        Inbound::ChannelJoin { recipient_uuid } => seed004::channel_join(&cx, recipient_uuid).await,
        Inbound::ChannelLeave { recipient_uuid } => {
            seed004::channel_leave(&cx, recipient_uuid).await
        }
        Inbound::ChannelMessage {
            recipient_uuid,
            message,
        } => seed004::channel_message(&cx, &recipient_uuid, &message).await,
        Inbound::Subscribe { channels } => chatnode::subscribe(&cx, channels).await,
        Inbound::Resume { channels } => chatnode::resume(&cx, channels).await,
        Inbound::Unsubscribe { channels } => Ok(chatnode::unsubscribe(channels)),
        Inbound::Post {
            channel,
            text,
            client_id,
            reply_to: None,
        } => chatnode::post(&cx, channel, &text, client_id).await,
        Inbound::Post {
            channel,
            text,
            client_id,
            reply_to: Some(reply_to),
        } => actions::reply(&cx, channel, &text, &reply_to, client_id).await,
        Inbound::Edit {
            channel,
            id,
            text,
            client_id,
        } => actions::edit(&cx, channel, &id, &text, client_id).await,
        Inbound::Delete {
            channel,
            id,
            client_id,
        } => actions::delete(&cx, channel, &id, client_id).await,
        Inbound::React {
            channel,
            id,
            emoji,
            client_id,
            add,
        } => actions::react(&cx, channel, &id, &emoji, add, client_id).await,
        Inbound::Replies {
            channel,
            id,
            before,
            after,
            limit,
        } => actions::replies(&cx, channel, id, before, after, limit).await,
        Inbound::History {
            channel,
            before,
            after,
            limit,
        } => chatnode::history(&cx, channel, before, after, limit).await,
        Inbound::Read { channel, last_id } => chatnode::read(&cx, channel, &last_id).await,
        Inbound::Typing { channel } => chatnode::typing(&cx, channel).await,
    }
}

/// The `error` frame of a failure of frame `kind`: its code and public text, never its internal
/// cause. That cause is logged here, at error level, once per failure, as a `500` over HTTP is
/// (`http::error`): an `internal` answer (or `redis_unavailable`) always leaves its cause in the
/// log.
fn error_frame(e: &Error, kind: &str, about: Option<ErrorAbout>) -> Outbound {
    if matches!(e, Error::Internal(_) | Error::RedisUnavailable(_)) {
        log::error!("`{kind}` frame failed: {e:?}");
    }
    Outbound::Error(ErrorFrame::new(e.code(), e.public_message(), about))
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
        self.send(Outbound::Ready(Ready {
            session_uuid: uuid::Uuid::new_v4().to_string(),
        }));
        if let Some(u) = &self.user {
            self.send(identity::authorized(u, None));
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
                    Ok(frame) => self.admit(frame, ctx),
                    Err(e) => self.answer_in_turn(ErrorFrame::new(e.code, e.message, None), ctx),
                }
            }
            Ok(WsMessage::Binary(_)) | Ok(WsMessage::Continuation(_)) => {
                let frame =
                    ErrorFrame::new(ErrorCode::BinaryUnsupported, "frames are JSON text", None);
                self.answer_in_turn(frame, ctx);
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
