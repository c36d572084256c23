//! chatnode: a real-time, multi-user chat server that keeps everything in Redis.
//!
//! Each WebSocket session, each room and the presence tracker are actix actors; one Redis bridge
//! actor per node turns pub/sub messages and stream entries into actor messages. Nodes keep no
//! state that matters, so any number of them serve the same Redis behind a load balancer.

pub mod accounts;
pub mod actors;
pub mod app;
pub mod cli;
pub mod demo;
pub mod error;
pub mod http;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod redis_server;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod voice;

pub use node::{run, spawn, NodeHandle};
pub use settings::Settings;
