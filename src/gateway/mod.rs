//! Everything about OpenClaw gateways: the HTTP conversation (`client`), the WebSocket control
//! protocol (`ws`), which of the two serves an instance (`backend`), health verdicts (`health`),
//! one supervised actor per instance (`actor`), the name → actor map (`registry`) and the errors
//! (`error`).

pub mod actor;
pub mod backend;
pub mod client;
pub mod error;
pub mod health;
pub mod registry;
pub mod ws;
