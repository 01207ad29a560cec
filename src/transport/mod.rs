//! Transports only move bytes between MCP clients and the one MCP layer: stdio for Claude
//! Desktop and Claude Code; HTTP for Claude.ai — Streamable HTTP on `/mcp` and the legacy
//! HTTP+SSE pair `/sse` + `/messages` — behind the checks in `guard`.

pub mod guard;
pub mod http;
pub mod sse_legacy;
pub mod stdio;
