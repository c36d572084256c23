//! The posts of one socket that have no final answer yet: sent and waiting for `posted`, or
//! refused as `busy` and waiting to be sent again. A refused post keeps its sequence number,
//! `client_id`, text and first send time, so the node can store it only once and its latency
//! counts from the first try.

use std::collections::VecDeque;

/// One post of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Post {
    pub seq: u64,
    /// When it was first sent (unix µs); also the stamp in its text.
    pub first_sent_us: u64,
    /// When it was last sent (unix µs): the answer to that send (`posted` or `busy`) is timed
    /// from here.
    pub last_sent_us: u64,
    /// Times it was sent so far.
    pub sends: u32,
}

/// What became of the posts a `posted` answered.
#[derive(Debug, PartialEq, Eq)]
pub struct Acked {
    /// The acknowledged post, if it was waiting.
    pub post: Option<Post>,
    /// Earlier posts that got no answer of their own (answers come in order).
    pub unanswered: u64,
}

#[derive(Default)]
pub struct Outbox {
    /// Sent, waiting for an answer, in send order.
    waiting: VecDeque<Post>,
    /// Refused, to be sent again at their time (unix µs), earliest first.
    retries: VecDeque<(u64, Post)>,
}

impl Outbox {
    /// A post was sent (for the first time or again).
    pub fn sent(&mut self, post: Post) {
        self.waiting.push_back(post);
    }

    /// `posted` for the post with this sequence number (`None`: the oldest waiting one).
    pub fn posted(&mut self, seq: Option<u64>) -> Acked {
        let mut unanswered = 0;
        while let Some(p) = self.waiting.pop_front() {
            if seq.is_none() || Some(p.seq) == seq {
                return Acked {
                    post: Some(p),
                    unanswered,
                };
            }
            unanswered += 1;
        }
        Acked {
            post: None,
            unanswered,
        }
    }

    /// `busy` for a post: it waits `retry_after_ms` from `now_us`, then goes out again.
    /// Returns the refused post.
    pub fn refused(&mut self, seq: Option<u64>, now_us: u64, retry_after_ms: u64) -> Option<Post> {
        let post = self.take(seq)?;
        let due = now_us + retry_after_ms * 1000;
        let at = self.retries.partition_point(|(d, _)| *d <= due);
        self.retries.insert(at, (due, post));
        Some(post)
    }

    /// Any other error for a post: it is given up. Returns it.
    pub fn failed(&mut self, seq: Option<u64>) -> Option<Post> {
        self.take(seq)
    }

    /// When the next refused post is due (unix µs).
    pub fn next_retry_us(&self) -> Option<u64> {
        self.retries.front().map(|(due, _)| *due)
    }

    /// The next refused post due by `now_us`, counted as sent once more (the caller sends it and
    /// passes it to [`Outbox::sent`]).
    pub fn due(&mut self, now_us: u64) -> Option<Post> {
        if self.next_retry_us()? > now_us {
            return None;
        }
        let (_, mut post) = self.retries.pop_front()?;
        post.sends += 1;
        post.last_sent_us = now_us;
        Some(post)
    }

    /// Posts without a final answer: waiting for one, or for their retry.
    pub fn open(&self) -> usize {
        self.waiting.len() + self.retries.len()
    }

    /// The waiting post with this sequence number, else the oldest one (answers come in order).
    fn take(&mut self, seq: Option<u64>) -> Option<Post> {
        match seq.and_then(|s| self.waiting.iter().position(|p| p.seq == s)) {
            Some(i) => self.waiting.remove(i),
            None => self.waiting.pop_front(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(seq: u64, at: u64) -> Post {
        Post {
            seq,
            first_sent_us: at,
            last_sent_us: at,
            sends: 1,
        }
    }

    #[test]
    fn acknowledges_in_order_and_counts_the_unanswered() {
        let mut o = Outbox::default();
        for s in 0..3 {
            o.sent(first(s, s * 10));
        }
        let a = o.posted(Some(1));
        assert_eq!(a.post, Some(first(1, 10)));
        assert_eq!(a.unanswered, 1, "post 0 got no answer of its own");
        assert_eq!(o.posted(None).post, Some(first(2, 20)));
        assert_eq!(o.open(), 0);
        assert_eq!(
            o.posted(Some(9)),
            Acked {
                post: None,
                unanswered: 0
            }
        );
    }

    #[test]
    fn a_refused_post_goes_out_again_unchanged_after_its_wait() {
        let mut o = Outbox::default();
        o.sent(first(0, 1_000));
        o.sent(first(1, 2_000));
        // Post 1 is refused (a node may answer out of order when it names the post).
        assert_eq!(o.refused(Some(1), 5_000, 30), Some(first(1, 2_000)));
        assert_eq!(o.open(), 2);
        assert_eq!(o.next_retry_us(), Some(35_000));
        assert_eq!(o.due(34_999), None, "not before its time");
        let again = o.due(35_000).unwrap();
        assert_eq!(
            again,
            Post {
                seq: 1,
                first_sent_us: 2_000,
                last_sent_us: 35_000,
                sends: 2
            },
            "same post, same first send time, its answer timed from the new send"
        );
        o.sent(again);
        assert_eq!(o.posted(Some(0)).post, Some(first(0, 1_000)));
        let a = o.posted(Some(1));
        assert_eq!(a.post.map(|p| (p.first_sent_us, p.sends)), Some((2_000, 2)));
        assert_eq!(a.unanswered, 0);
        assert_eq!(o.open(), 0);
    }

    #[test]
    fn retries_come_due_earliest_first() {
        let mut o = Outbox::default();
        for s in 0..3 {
            o.sent(first(s, 0));
        }
        o.refused(None, 0, 50); // the oldest: post 0
        o.refused(Some(2), 0, 10);
        o.refused(Some(1), 0, 10);
        let order: Vec<u64> = std::iter::from_fn(|| o.due(u64::MAX).map(|p| p.seq)).collect();
        assert_eq!(order, vec![2, 1, 0]);
    }

    #[test]
    fn other_errors_give_the_post_up() {
        let mut o = Outbox::default();
        o.sent(first(0, 0));
        o.sent(first(1, 0));
        assert_eq!(o.failed(Some(1)).map(|p| p.seq), Some(1));
        assert_eq!(o.failed(None).map(|p| p.seq), Some(0));
        assert_eq!(o.failed(None), None);
        assert_eq!(o.open(), 0);
    }
}
