//! A socket's frames in flight: answered in the order sent, while the actor stays free for
//! pings, pongs, its heartbeat and closes.
//!
//! A frame that arrives while an earlier one is still being handled waits in the socket's queue.
//! Posts sent one after another (`post` frames without `reply_to`) go on their way together, up
//! to `ws.post_pipeline` at once: each is handed to Redis after the one before it (the store's
//! [`PostTurn`]), so they are stored in the order sent, and their answers are applied in that
//! order whatever order they finish in. Any other frame runs alone: it starts when everything
//! before it is answered, and what follows waits for it, so each frame sees what the ones before
//! it changed (an `auth` before a `post`). The work itself runs as its own task, so a socket that
//! closes does not cut a post off halfway: it is stored or not, as if the socket had stayed.
//!
//! The queue is bounded twice: `ws.max_inflight_per_socket` frames per socket, and
//! `ws.max_inflight_per_node` posts per node (a [`PostSlot`] each, shared with REST posts and
//! voice uploads). A frame over either bound is answered at once with `busy` and dropped, and a
//! post still waiting after `ws.post_queue_timeout_ms` is answered `busy` instead of stored, so
//! every post is answered in bounded time and an overloaded node does not hoard frames.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::{route, Caller, Session};
use crate::app::PostSlot;
use crate::error::{Error, Result};
use crate::protocol::{ErrorAbout, ErrorFrame, Inbound, Outbound};
use crate::store::posting::{PostTurn, POST_TURN};

/// The frames a socket has queued, and those being handled.
#[derive(Default)]
pub(super) struct Pipeline {
    queue: VecDeque<Queued>,
    /// Frames started and not answered yet, in the order sent; one that finished waits here
    /// with its result until those before it are answered.
    running: VecDeque<Running>,
    /// Numbers queued frames, so a post's timeout finds it (or finds it gone).
    next_seq: u64,
    /// The turn of the last post started: the next one is handed to Redis after it.
    last_turn: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// A frame started and not answered yet.
struct Running {
    seq: u64,
    kind: &'static str,
    about: Option<ErrorAbout>,
    /// A post that may run beside other posts ([`pipelined`]).
    post: bool,
    /// Its result, once done.
    result: Option<Result<super::Reply>>,
}

struct Queued {
    seq: u64,
    item: Item,
}

enum Item {
    /// A frame still to handle; a post holds its place among the node's posts while it waits.
    Frame {
        frame: Inbound,
        slot: Option<PostSlot>,
    },
    /// An error known on arrival (a frame that did not decode), sent in its turn.
    Answer(ErrorFrame),
}

impl Pipeline {
    /// Frames queued or being handled.
    fn in_flight(&self) -> usize {
        self.queue.len() + self.running.len()
    }

    /// Whether the frame first in the queue may start now.
    fn may_start(&self, item: &Item, depth: usize) -> bool {
        if self.running.is_empty() {
            return true;
        }
        match item {
            Item::Frame { frame, .. } => {
                pipelined(frame)
                    && self.running.len() < depth
                    && self.running.iter().all(|r| r.post)
            }
            Item::Answer(_) => false,
        }
    }

    fn push(&mut self, item: Item) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back(Queued { seq, item });
        seq
    }

    /// Whether a frame is still in the queue, not started yet.
    fn is_waiting(&self, seq: u64) -> bool {
        self.queue.iter().any(|q| q.seq == seq)
    }

    /// Takes a frame out of the queue if it has not started yet.
    fn take(&mut self, seq: u64) -> Option<Item> {
        let at = self.queue.iter().position(|q| q.seq == seq)?;
        self.queue.remove(at).map(|q| q.item)
    }
}

/// Posts that may be on their way beside the socket's other such posts: plain posts, whose
/// order the store keeps ([`PostTurn`]). Replies, edits and the rest run alone.
fn pipelined(frame: &Inbound) -> bool {
    matches!(frame, Inbound::Post { reply_to: None, .. })
}

/// Posts take a place among the node's posts in flight and may wait only so long.
fn is_post(frame: &Inbound) -> bool {
    matches!(frame, Inbound::Post { .. } | Inbound::ChannelMessage { .. })
        || super::actions::is_action(frame)
}

/// What an error answering this frame names: a `post` its channel and `client_id`, so a client
/// knows which one failed.
pub(super) fn about(frame: &Inbound) -> Option<ErrorAbout> {
    match frame {
        Inbound::Post {
            channel, client_id, ..
        } => Some(ErrorAbout::Post {
            channel: channel.clone(),
            client_id: client_id.clone(),
        }),
        _ => super::actions::about(frame),
    }
}

impl Session {
    /// Takes a decoded frame in: queued behind the socket's earlier frames, or refused `busy` at
    /// once when this socket or this node already has as many in flight as it may.
    pub(super) fn admit(&mut self, frame: Inbound, ctx: &mut Context<Self>) {
        let ws = &self.app.settings.ws;
        if self.pipeline.in_flight() >= ws.max_inflight_per_socket {
            if is_post(&frame) {
                self.app.posts_in_flight.note_refused();
            }
            self.refuse(&frame, "too many frames in flight on this socket");
            return;
        }
        let slot = if is_post(&frame) {
            match self.app.posts_in_flight.try_take() {
                Some(slot) => Some(slot),
                None => {
                    self.refuse(&frame, "too many posts in flight on this server");
                    return;
                }
            }
        } else {
            None
        };
        let post = slot.is_some();
        let wait = Duration::from_millis(ws.post_queue_timeout_ms);
        let seq = self.pipeline.push(Item::Frame { frame, slot });
        self.run_next(ctx);
        // A post that started at once cannot wait too long; only one left waiting gets a timer.
        if post && self.pipeline.is_waiting(seq) {
            ctx.run_later(wait, move |act, _| act.expire(seq));
        }
    }

    /// Sends an error known on arrival in its turn, after the answers to earlier frames. When
    /// the queue is full it goes at once rather than growing the queue.
    pub(super) fn answer_in_turn(&mut self, frame: ErrorFrame, ctx: &mut Context<Self>) {
        if self.pipeline.in_flight() >= self.app.settings.ws.max_inflight_per_socket {
            self.send(Outbound::Error(frame));
            return;
        }
        self.pipeline.push(Item::Answer(frame));
        self.run_next(ctx);
    }

    /// A post still waiting when its time is up is answered `busy`, not stored.
    fn expire(&mut self, seq: u64) {
        if let Some(Item::Frame { frame, .. }) = self.pipeline.take(seq) {
            self.app.posts_in_flight.note_refused();
            self.refuse(
                &frame,
                "the post waited too long behind this socket's earlier frames",
            );
        }
    }

    /// Answers `busy` for a frame that is dropped: nothing of it was done.
    fn refuse(&self, frame: &Inbound, why: &str) {
        let retry_after_ms = self
            .app
            .posts_in_flight
            .retry_after_ms(self.app.settings.ws.post_queue_timeout_ms);
        let text = format!("the server is busy ({why}); try again in {retry_after_ms} ms");
        log::debug!("session {}: busy: {why}", self.id);
        self.send(Outbound::Error(ErrorFrame::busy(
            text,
            about(frame),
            retry_after_ms,
        )));
    }

    /// Starts the queued frames that may start now ([`Pipeline::may_start`]); answers known
    /// already go out on the way.
    fn run_next(&mut self, ctx: &mut Context<Self>) {
        let depth = self.app.settings.ws.post_pipeline.max(1);
        while let Some(front) = self.pipeline.queue.front() {
            if !self.pipeline.may_start(&front.item, depth) {
                return;
            }
            let Some(queued) = self.pipeline.queue.pop_front() else {
                return;
            };
            match queued.item {
                Item::Answer(frame) => self.send(Outbound::Error(frame)),
                Item::Frame { frame, slot } => self.start(queued.seq, frame, slot, ctx),
            }
        }
    }

    /// What every frame needs, checked in its turn (an earlier frame may have signed the socket
    /// in), then the frame's own function as a task of its own; its answer is applied when it
    /// and every frame before it are done.
    fn start(&mut self, seq: u64, frame: Inbound, slot: Option<PostSlot>, ctx: &mut Context<Self>) {
        let about = about(&frame);
        let kind = frame.kind();
        let post = pipelined(&frame);
        if let Err(e) = self.check(&frame) {
            // Answered in its turn: after the posts before it, if any are still on their way.
            // Not signed in: nothing of the frame is named.
            let about = about.filter(|_| !matches!(e, Error::Unauthorized));
            self.pipeline.running.push_back(Running {
                seq,
                kind,
                about,
                post,
                result: Some(Err(e)),
            });
            self.answer_done(ctx);
            return;
        }
        let caller = Caller {
            app: self.app.clone(),
            user: self.user.clone(),
            peer_addr: self.peer_addr.clone(),
        };
        let turn = if post {
            let (handed_on, next) = tokio::sync::oneshot::channel();
            let after = self.pipeline.last_turn.replace(next);
            Some(PostTurn { after, handed_on })
        } else {
            self.pipeline.last_turn = None;
            None
        };
        let task = actix_rt::spawn(async move {
            let result = match turn {
                Some(turn) => {
                    POST_TURN
                        .scope(std::cell::RefCell::new(Some(turn)), route(frame, caller))
                        .await
                }
                None => route(frame, caller).await,
            };
            // The post is stored (or failed): its place among the node's posts is free again.
            drop(slot);
            result
        });
        self.pipeline.running.push_back(Running {
            seq,
            kind,
            about,
            post,
            result: None,
        });
        ctx.spawn(
            task.into_actor(self)
                .map(move |joined, act: &mut Session, ctx| {
                    act.busy_until = Instant::now();
                    let result: Result<_> =
                        joined.unwrap_or_else(|e| Err(Error::Internal(format!("frame task: {e}"))));
                    if let Some(r) = act.pipeline.running.iter_mut().find(|r| r.seq == seq) {
                        r.result = Some(result);
                    }
                    act.answer_done(ctx);
                }),
        );
    }

    /// Applies the results of the frames done, in the order sent, up to the first still on its
    /// way; then starts what may start.
    fn answer_done(&mut self, ctx: &mut Context<Self>) {
        while self
            .pipeline
            .running
            .front()
            .is_some_and(|r| r.result.is_some())
        {
            let Some(done) = self.pipeline.running.pop_front() else {
                break;
            };
            match done.result {
                Some(Ok(reply)) => self.apply(reply, ctx),
                Some(Err(e)) => self.send_error(&e, done.kind, done.about),
                None => {}
            }
        }
        self.run_next(ctx);
    }
}
