//! The node's actors: one session per socket, one room per channel with local members, the hub
//! that keeps the room registry, the presence tracker, and the Redis bridge.

pub mod bridge;
pub mod hub;
pub mod outbox;
pub mod presence;
pub mod room;
pub mod session;

/// Identifies a session on this node.
pub type SessionId = u64;

/// Which frame family a socket speaks: chatnode's own (`message`) or seed 004's
/// (`channelMessage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    Chatnode,
    Seed004,
}
