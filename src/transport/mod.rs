//! Transports only move bytes between MCP clients and the one MCP layer: stdio for Claude
//! Desktop and Claude Code; HTTP for Claude.ai — Streamable HTTP on `/mcp` and the legacy
//! HTTP+SSE pair `/sse` + `/messages` — behind the checks in `guard` (every request) and
//! `route_guard` (attached to the MCP routes), with the sessions' owners in `sessions` and the
//! request streams of Streamable HTTP sessions (resumption, one request per id) in `streams`.

pub mod guard;
pub mod http;
pub mod route_guard;
pub mod sessions;
pub mod sse_legacy;
pub mod stdio;
pub mod streams;
