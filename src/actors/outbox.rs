//! The bounded outbound queue of one socket, drained straight into the socket's response body.
//!
//! Rooms and the hub push frames here directly (no actor mailbox in between, so nothing grows
//! without bound). The queue is bounded twice: in frames, and in the bytes of the text frames it
//! holds (one history page of long messages can be megabytes, so a client that stops reading and
//! asks for page after page must not make the node hold them all). A frame is taken while the
//! queue holds fewer frames and fewer bytes than its bounds, so one large frame still goes out,
//! but nothing joins it until the client reads. Past either bound the client is too slow: the
//! socket is closed with 1013 (try again later) and the client resumes from its last IDs.
//!
//! There is no writer task: the queue's receiving end is the WebSocket response body
//! ([`OutboxBody`]), polled by the connection itself. Each poll encodes every frame queued so far
//! into one buffer, so a burst (a replay, a busy room, presence) leaves in one write instead of
//! one write per frame, in queue order.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use actix_ws::{CloseCode, CloseReason};
use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::task::AtomicWaker;
use futures_util::Stream;
use tokio::sync::watch;

use super::SessionId;
use crate::metrics::Metrics;

/// What the socket is sent.
#[derive(Debug)]
pub enum Out {
    Text(ByteString),
    Ping,
    Pong(Bytes),
}

/// A handle to one socket's queue; cheap to clone.
pub struct Outbox {
    pub id: SessionId,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

/// What the handles and the body share: the queue, the close asked for, and the body to wake.
///
/// The queue holds no memory while it is empty: it allocates with its first frame and gives the
/// allocation back once the body has taken every frame, so an idle socket costs no queue slots
/// (a channel would keep its first block of slots for the socket's whole life).
struct Shared {
    queue: Mutex<Queue>,
    capacity: usize,
    capacity_bytes: usize,
    reason: watch::Sender<Option<CloseReason>>,
    body: AtomicWaker,
}

struct Queue {
    frames: VecDeque<Out>,
    /// Bytes of the text frames in `frames`.
    bytes: usize,
    /// Outbox handles alive; when none is left the session has ended.
    handles: usize,
    /// The body was dropped: the connection is gone.
    body_gone: bool,
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.queue.lock().unwrap().handles += 1;
        Outbox {
            id: self.id,
            shared: self.shared.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let last = {
            let mut q = self.shared.queue.lock().unwrap();
            q.handles -= 1;
            q.handles == 0
        };
        if last {
            self.shared.body.wake();
        }
    }
}

impl Outbox {
    /// Queues a text frame; false when the socket is closed or was too slow.
    pub fn send(&self, frame: ByteString) -> bool {
        self.push(Out::Text(frame))
    }

    /// Queues any item; a full queue closes the socket with 1013.
    pub fn push(&self, item: Out) -> bool {
        {
            let mut q = self.shared.queue.lock().unwrap();
            if q.body_gone {
                return false;
            }
            let over_frames = q.frames.len() >= self.shared.capacity;
            if over_frames || q.bytes >= self.shared.capacity_bytes {
                drop(q);
                if self.close_with(CloseCode::Again, "too slow: resume from your last IDs") {
                    self.metrics.slow_client_closes.fetch_add(1, Relaxed);
                    if !over_frames {
                        self.metrics.slow_client_closes_bytes.fetch_add(1, Relaxed);
                    }
                }
                return false;
            }
            if let Out::Text(t) = &item {
                q.bytes += t.len();
            }
            q.frames.push_back(item);
        }
        self.metrics.frames_out.fetch_add(1, Relaxed);
        self.shared.body.wake();
        true
    }

    /// Asks for the socket to be closed; true the first time.
    pub fn close_with(&self, code: CloseCode, why: &str) -> bool {
        let mut first = false;
        self.shared.reason.send_if_modified(|current| {
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
        if first {
            self.shared.body.wake();
        }
        first
    }

    /// How many frames the queue holds at most.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// How many bytes of text frames the queue takes before it counts as full.
    pub fn capacity_bytes(&self) -> usize {
        self.shared.capacity_bytes
    }

    /// Whether a close was asked for.
    pub fn is_closing(&self) -> bool {
        self.shared.reason.borrow().is_some()
    }
}

/// Makes an outbox of `capacity` frames and `capacity_bytes` bytes of text; the body is what the
/// socket's response sends.
pub fn start(
    id: SessionId,
    capacity: usize,
    capacity_bytes: usize,
    metrics: Arc<Metrics>,
) -> (Outbox, OutboxBody, watch::Receiver<Option<CloseReason>>) {
    let (reason, close_rx) = watch::channel(None);
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            frames: VecDeque::new(),
            bytes: 0,
            handles: 1,
            body_gone: false,
        }),
        capacity: capacity.max(1),
        capacity_bytes: capacity_bytes.max(1),
        reason,
        body: AtomicWaker::new(),
    });
    let body = OutboxBody {
        shared: shared.clone(),
        buf: BytesMut::new(),
        done: false,
        metrics: metrics.clone(),
    };
    (
        Outbox {
            id,
            shared,
            metrics,
        },
        body,
        close_rx,
    )
}

/// Encoded bytes handed to the connection per poll at most; the rest waits for the next poll.
const MAX_CHUNK: usize = 64 * 1024;

/// The socket's outgoing byte stream: the queue's frames, encoded, several per chunk.
pub struct OutboxBody {
    shared: Arc<Shared>,
    buf: BytesMut,
    done: bool,
    metrics: Arc<Metrics>,
}

impl Drop for OutboxBody {
    fn drop(&mut self) {
        let mut q = self.shared.queue.lock().unwrap();
        q.body_gone = true;
        q.frames = VecDeque::new();
        q.bytes = 0;
    }
}

impl Stream for OutboxBody {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        // Register before looking, so a close asked for in between still wakes us.
        this.shared.body.register(cx.waker());
        let asked = this.shared.reason.borrow().clone();
        if let Some(reason) = asked {
            // A close goes out at once; frames still queued are dropped (the client resumes).
            close_frame(&mut this.buf, Some(&reason));
            this.done = true;
        } else {
            let mut q = this.shared.queue.lock().unwrap();
            while this.buf.len() < MAX_CHUNK {
                match q.frames.pop_front() {
                    Some(Out::Text(t)) => {
                        q.bytes -= t.len();
                        frame(&mut this.buf, 0x1, t.as_bytes())
                    }
                    Some(Out::Ping) => frame(&mut this.buf, 0x9, b""),
                    Some(Out::Pong(p)) => frame(&mut this.buf, 0xA, &p),
                    None if q.handles == 0 => {
                        // Every handle is gone: the session ended.
                        close_frame(&mut this.buf, None);
                        this.done = true;
                        break;
                    }
                    None => break,
                }
            }
            if q.frames.is_empty() && q.frames.capacity() > 0 {
                q.frames = VecDeque::new();
            }
        }
        if this.buf.is_empty() {
            return if this.done {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        }
        this.metrics.socket_writes.fetch_add(1, Relaxed);
        Poll::Ready(Some(Ok(this.buf.split().freeze())))
    }
}

/// Appends one unmasked, unfragmented server frame (RFC 6455 §5.2) with this opcode.
fn frame(buf: &mut BytesMut, opcode: u8, payload: &[u8]) {
    let len = payload.len();
    buf.reserve(len + 10);
    buf.put_u8(0x80 | opcode);
    if len < 126 {
        buf.put_u8(len as u8);
    } else if len <= u16::MAX as usize {
        buf.put_u8(126);
        buf.put_u16(len as u16);
    } else {
        buf.put_u8(127);
        buf.put_u64(len as u64);
    }
    buf.put_slice(payload);
}

/// Appends a close frame: the code and reason (cut to the 123 bytes a control frame allows).
fn close_frame(buf: &mut BytesMut, reason: Option<&CloseReason>) {
    let Some(reason) = reason else {
        frame(buf, 0x8, b"");
        return;
    };
    let mut payload = Vec::with_capacity(125);
    payload.extend_from_slice(&u16::from(reason.code).to_be_bytes());
    let text = reason.description.as_deref().unwrap_or("");
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&text.as_bytes()[..end]);
    frame(buf, 0x8, &payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(body: &mut OutboxBody) -> Poll<Option<Result<Bytes, actix_web::Error>>> {
        let waker = futures_util::task::noop_waker();
        Pin::new(body).poll_next(&mut Context::from_waker(&waker))
    }

    #[test]
    fn the_queue_holds_no_slots_while_empty_and_ends_with_its_last_handle() {
        let (outbox, mut body, _close) = start(1, 4, 1 << 20, Arc::new(Metrics::default()));
        let slots = |o: &Outbox| o.shared.queue.lock().unwrap().frames.capacity();
        assert_eq!(slots(&outbox), 0);
        assert!(poll(&mut body).is_pending());
        assert!(outbox.send(ByteString::from("a")));
        assert!(outbox.push(Out::Ping));
        assert!(slots(&outbox) > 0);
        let Poll::Ready(Some(Ok(chunk))) = poll(&mut body) else {
            panic!("expected a chunk")
        };
        assert_eq!(&chunk[..], &[0x81, 1, b'a', 0x89, 0][..]);
        assert_eq!(slots(&outbox), 0, "a drained queue gives its slots back");
        // Full: the fifth frame is refused and asks for 1013.
        for _ in 0..4 {
            assert!(outbox.push(Out::Ping));
        }
        assert!(!outbox.push(Out::Ping));
        assert!(outbox.is_closing());
        let (outbox, mut body, _close) = start(2, 4, 1 << 20, Arc::new(Metrics::default()));
        let second = outbox.clone();
        drop(outbox);
        assert!(poll(&mut body).is_pending(), "one handle is still alive");
        drop(second);
        let Poll::Ready(Some(Ok(chunk))) = poll(&mut body) else {
            panic!("expected the close frame")
        };
        assert_eq!(&chunk[..], &[0x88, 0][..]);
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too_but_one_large_frame_goes_out() {
        let metrics = Arc::new(Metrics::default());
        let (outbox, body, _close) = start(3, 100, 1000, metrics.clone());
        let big = ByteString::from("x".repeat(5000));
        assert!(
            outbox.send(big.clone()),
            "one frame larger than the bound is taken"
        );
        assert!(
            !outbox.send(ByteString::from("y")),
            "nothing joins it before it is read"
        );
        assert!(outbox.is_closing());
        assert_eq!(metrics.slow_client_closes.load(Relaxed), 1);
        assert_eq!(metrics.slow_client_closes_bytes.load(Relaxed), 1);
        // A reader keeps the queue under its bound: frames go out as they come.
        let (outbox, mut body2, _close) = start(4, 100, 1000, metrics.clone());
        for _ in 0..20 {
            assert!(outbox.send(ByteString::from("z".repeat(600))));
            let Poll::Ready(Some(Ok(chunk))) = poll(&mut body2) else {
                panic!("expected a chunk")
            };
            assert_eq!(chunk.len(), 604);
            assert_eq!(outbox.shared.queue.lock().unwrap().bytes, 0);
        }
        assert!(!outbox.is_closing());
        drop(body);
    }

    #[test]
    fn frame_lengths_use_the_shortest_form() {
        let mut b = BytesMut::new();
        frame(&mut b, 0x1, &[b'x'; 125]);
        assert_eq!(&b[..2], &[0x81, 125]);
        assert_eq!(b.len(), 127);
        let mut b = BytesMut::new();
        frame(&mut b, 0x1, &[b'x'; 126]);
        assert_eq!(&b[..4], &[0x81, 126, 0, 126]);
        let mut b = BytesMut::new();
        frame(&mut b, 0x1, &vec![b'x'; 70_000]);
        assert_eq!(&b[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(b[2..10].try_into().unwrap()), 70_000);
        assert_eq!(b.len(), 70_010);
    }

    #[test]
    fn close_reasons_are_cut_on_a_character_boundary() {
        let mut b = BytesMut::new();
        let long = "é".repeat(100);
        close_frame(
            &mut b,
            Some(&CloseReason {
                code: CloseCode::Again,
                description: Some(long),
            }),
        );
        assert_eq!(b[0], 0x88);
        let len = b[1] as usize;
        assert!(len <= 125, "{len}");
        assert_eq!(&b[2..4], &1013u16.to_be_bytes());
        assert!(std::str::from_utf8(&b[4..]).is_ok());
        assert_eq!(b.len(), 2 + len);
    }
}
