//! The WebSocket protocol, as the `chatnode-protocol` crate (protocol/) defines it: every frame
//! in both directions as types. Re-exported here so the server names it `crate::protocol`.

pub use chatnode_protocol::*;
