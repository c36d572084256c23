//! The bounded outbound queue of one socket, and the writer task that drains it.
//!
//! Rooms and the hub push frames here directly (no actor mailbox in between, so nothing grows
//! without bound). When the queue is full the client is too slow: the socket is closed with 1013
//! (try again later) and the client resumes from its last IDs.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use actix_ws::{CloseCode, CloseReason};
use bytestring::ByteString;
use tokio::sync::{mpsc, watch};

use super::SessionId;
use crate::metrics::Metrics;

/// What the writer sends.
#[derive(Debug)]
pub enum Out {
    Text(ByteString),
    Ping,
    Pong(bytes::Bytes),
}

/// A handle to one socket's queue; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    pub id: SessionId,
    tx: mpsc::Sender<Out>,
    close: Arc<watch::Sender<Option<CloseReason>>>,
    metrics: Arc<Metrics>,
}

impl Outbox {
    /// Queues a text frame; false when the socket is closed or was too slow.
    pub fn send(&self, frame: ByteString) -> bool {
        self.push(Out::Text(frame))
    }

    /// Queues any item; a full queue closes the socket with 1013.
    pub fn push(&self, item: Out) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => {
                self.metrics.frames_out.fetch_add(1, Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.close_with(CloseCode::Again, "too slow: resume from your last IDs") {
                    self.metrics.slow_client_closes.fetch_add(1, Relaxed);
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the writer to close the socket; true the first time.
    pub fn close_with(&self, code: CloseCode, why: &str) -> bool {
        let mut first = false;
        self.close.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(CloseReason {
                    code,
                    description: Some(why.to_string()),
                });
                first = true;
                true
            } else {
                false
            }
        });
        first
    }

    /// How many frames the queue holds at most.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Whether a close was asked for.
    pub fn is_closing(&self) -> bool {
        self.close.borrow().is_some()
    }
}

/// Makes an outbox of `capacity` frames and starts its writer on `session`.
pub fn start(
    id: SessionId,
    capacity: usize,
    session: actix_ws::Session,
    metrics: Arc<Metrics>,
) -> (Outbox, watch::Receiver<Option<CloseReason>>) {
    let (tx, rx) = mpsc::channel(capacity);
    let (close_tx, close_rx) = watch::channel(None);
    actix_rt::spawn(write(session, rx, close_rx.clone()));
    (
        Outbox {
            id,
            tx,
            close: Arc::new(close_tx),
            metrics,
        },
        close_rx,
    )
}

async fn write(
    mut session: actix_ws::Session,
    mut rx: mpsc::Receiver<Out>,
    mut close: watch::Receiver<Option<CloseReason>>,
) {
    loop {
        tokio::select! {
            biased;
            changed = close.changed() => {
                let reason = if changed.is_ok() { close.borrow().clone() } else { None };
                let _ = session.close(reason).await;
                return;
            }
            item = rx.recv() => {
                let sent = match item {
                    Some(Out::Text(t)) => session.text(t).await,
                    Some(Out::Ping) => session.ping(b"").await,
                    Some(Out::Pong(p)) => session.pong(&p).await,
                    None => {
                        let _ = session.close(None).await;
                        return;
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
        }
    }
}
