//! stdio: newline-delimited JSON-RPC on stdin/stdout, for Claude Desktop and Claude Code. Nothing
//! but protocol is written to stdout (logs go to stderr). The bridge exits 0 when stdin closes —
//! also before `initialize` — and on SIGTERM/SIGINT.

use rmcp::{ServiceExt, service::ServerInitializeError};

use crate::mcp::server::OpenClawServer;

/// Why the stdio session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// stdin closed (the client went away).
    InputClosed,
    /// SIGTERM or SIGINT.
    Signal,
}

/// Serves one MCP client on stdin/stdout until stdin closes or a signal arrives.
pub async fn serve(server: OpenClawServer) -> Result<Ended, ServerInitializeError> {
    let running = tokio::select! {
        started = server.serve(rmcp::transport::stdio_pipes()) => match started {
            Ok(running) => running,
            // stdin closed before the handshake: a normal end (a client probing the command).
            Err(ServerInitializeError::ConnectionClosed(_)) => return Ok(Ended::InputClosed),
            Err(e) => return Err(e),
        },
        _ = crate::util::shutdown_signal() => return Ok(Ended::Signal),
    };
    let token = running.cancellation_token();
    tokio::select! {
        quit = running.waiting() => {
            tracing::debug!(reason = ?quit, "stdio session ended");
            Ok(Ended::InputClosed)
        }
        _ = crate::util::shutdown_signal() => {
            token.cancel();
            Ok(Ended::Signal)
        }
    }
}
