//! # openclaw-mcp
//!
//! A Model Context Protocol (MCP) server that lets AI clients talk to one or more OpenClaw
//! gateways: Claude Desktop and Claude Code start it over stdio; Claude.ai reaches it over HTTP.
//! It is a drop-in successor of the TypeScript `openclaw-mcp` 1.7.0: same seven tools, arguments,
//! environment variables and flags.
//!
//! ## The picture in words
//!
//! An MCP client speaks to the **MCP layer** ([`mcp`]), built on the official Rust SDK `rmcp`,
//! through a **transport** ([`transport`]) that only moves bytes. The MCP layer validates each
//! tool call with 1.7.0's rules and turns it into one message to an actor. Inside the actix
//! system, the **InstanceRegistry** ([`gateway::registry`]) maps each configured instance name to
//! the address of its **GatewayActor** ([`gateway::actor`]), started under an `actix::Supervisor`:
//! the actor owns that gateway's HTTP client, settings and health state, probes health in the
//! background, and is restarted if a handler fails. Configuration ([`config`], [`cli`]) is layered
//! with figment and validated once; logging ([`telemetry`]) goes to stderr and never carries a
//! secret. [`app`] wires it together.

#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod mcp;
pub mod metrics;
pub mod net;
pub mod outbound;
pub mod pair;
pub mod pg;
pub mod sqlite;
pub mod tasks;
pub mod telemetry;
pub mod tool_names;
pub mod transport;
pub mod util;
