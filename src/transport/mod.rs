//! Transports only move bytes between MCP clients and the one MCP layer: stdio for Claude
//! Desktop and Claude Code.

pub mod stdio;
