//! The WebSocket backend: OpenClaw's gateway control protocol v4 (`reference/openclaw-ws.md`),
//! spoken on the gateway's own port. One long-lived connection per instance ([`client`]), its
//! frames ([`frames`]), the transport and handshake ([`conn`]), the device identity that signs
//! the challenge and is paired with a remote gateway ([`identity`]), and the operations the
//! tools need ([`ops`]: a turn with streamed progress, abort, adoption of a run after a
//! reconnect or a restart, sessions, history, agents).

pub mod client;
pub mod conn;
pub mod devices;
pub mod error;
pub mod frames;
pub mod identity;
pub mod ops;

pub use client::{AuthUsed, Options, Phase, Session, WsClient};
pub use error::WsError;
