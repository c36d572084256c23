//! chatnode's WebSocket protocol: every frame in both directions as plain serde types, no I/O.
//!
//! Frames share one envelope, `{"type": T, T: payload}` ([`envelope`]). Two families live side
//! by side: seed 004's (`signIn`, `channelJoin`, `channelMessage`, …), kept exactly as that
//! document and its React client use them ([`seed004`]), and chatnode's own (`subscribe`, `post`,
//! `resume`, …). [`Inbound`] is what a client sends, [`Outbound`] what the server sends;
//! [`ChatEvent`] is one stored event of a channel; [`ErrorCode`] lists every code an `error`
//! frame can carry. docs/PROTOCOL.md describes each frame with examples, and this crate's tests
//! parse every one of them.
//!
//! Outbound frames serialize with their keys in byte order (`{"message":…,"type":"message"}`),
//! as chatnode has always sent them; payload fields are declared in that order for this reason.

pub mod envelope;
pub mod error;
pub mod event;
pub mod inbound;
pub mod outbound;
pub mod seed004;

pub use error::{ErrorAbout, ErrorCode, ErrorFrame};
pub use event::{ChatEvent, ReactionChange, ReactionCount, ReplyRef, VoiceInfo};
pub use inbound::{decode, Credentials, DecodeError, Inbound};
pub use outbound::Outbound;
pub use seed004::rfc3339;
