//! stdio: newline-delimited JSON-RPC on stdin/stdout, for Claude Desktop and Claude Code. Nothing
//! but protocol is written to stdout (logs go to stderr). The bridge exits 0 when stdin closes —
//! also before `initialize` — and on SIGTERM/SIGINT.
//!
//! rmcp's stdio transport is wrapped in [`OneRequestPerId`]: a request whose id is already in
//! flight (a client bug) is answered by us with JSON-RPC `-32600` and never reaches rmcp's
//! service, where it would take over the first call's cancellation token and answer.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, MutexGuard},
};

use rmcp::{
    RoleServer, ServiceExt,
    model::{ClientJsonRpcMessage, ClientNotification, RequestId, ServerJsonRpcMessage},
    service::ServerInitializeError,
    transport::{Transport, async_rw::AsyncRwTransport},
};

use super::streams::duplicate_id_error;
use crate::mcp::server::OpenClawServer;

/// Why the stdio session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// stdin closed (the client went away).
    InputClosed,
    /// SIGTERM or SIGINT.
    Signal,
}

/// A server transport that lets at most one request per id reach the service at a time: a
/// second request with the id of one still in flight is answered `-32600` here. An id is in
/// flight from its request until the service sends its answer, or until the client cancels it
/// (`notifications/cancelled`: rmcp then sends no answer).
pub struct OneRequestPerId<T> {
    /// The transport wrapped.
    inner: T,
    /// The ids of the client's requests in flight (shared with the sending side, which frees an
    /// id with its answer).
    in_flight: Arc<Mutex<HashSet<RequestId>>>,
}

impl<T> OneRequestPerId<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        OneRequestPerId {
            inner,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    fn in_flight(&self) -> MutexGuard<'_, HashSet<RequestId>> {
        // Plain data: a panic elsewhere while holding the lock leaves it usable.
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T: Transport<RoleServer>> Transport<RoleServer> for OneRequestPerId<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let answered = match &item {
            ServerJsonRpcMessage::Response(r) => Some(&r.id),
            ServerJsonRpcMessage::Error(e) => e.id.as_ref(),
            _ => None,
        };
        if let Some(id) = answered {
            self.in_flight().remove(id);
        }
        self.inner.send(item)
    }

    // Cancel-safe as the service needs (it polls this inside a `select!`): the only await is the
    // wrapped transport's own receive.
    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            let message = self.inner.receive().await?;
            match &message {
                ClientJsonRpcMessage::Request(r) => {
                    let fresh = self.in_flight().insert(r.id.clone());
                    if !fresh {
                        tracing::warn!(
                            "a request reused the id of a request in flight; refused with -32600"
                        );
                        let refusal = self.inner.send(duplicate_id_error(&r.id));
                        // Sent on its own so that a cancelled receive cannot lose it.
                        tokio::spawn(async move {
                            if let Err(e) = refusal.await {
                                tracing::warn!(error = %e, "cannot answer a duplicate request id");
                            }
                        });
                        continue;
                    }
                }
                ClientJsonRpcMessage::Notification(n) => {
                    if let ClientNotification::CancelledNotification(c) = &n.notification
                        && let Some(id) = &c.params.request_id
                    {
                        self.in_flight().remove(id);
                    }
                }
                _ => {}
            }
            return Some(message);
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

/// Serves one MCP client on stdin/stdout until stdin closes or a signal arrives.
pub async fn serve(server: OpenClawServer) -> Result<Ended, ServerInitializeError> {
    let (stdin, stdout) = rmcp::transport::stdio_pipes();
    let transport = OneRequestPerId::new(AsyncRwTransport::new_server(stdin, stdout));
    let running = tokio::select! {
        started = server.serve(transport) => match started {
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

#[cfg(test)]
mod tests {
    use rmcp::model::ServerResult;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;

    #[tokio::test]
    async fn a_duplicate_id_is_answered_here_and_freed_by_the_answer_or_a_cancel() {
        let (server_io, client_io) = tokio::io::duplex(1 << 16);
        let (read, write) = tokio::io::split(server_io);
        let mut transport = OneRequestPerId::new(AsyncRwTransport::new_server(read, write));
        let (client_read, mut client_write) = tokio::io::split(client_io);
        let mut lines = BufReader::new(client_read).lines();
        let ping = |id: u32| format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n");
        for line in [ping(1), ping(1), ping(2)] {
            client_write.write_all(line.as_bytes()).await.unwrap();
        }
        // The service sees 1 and 2; the second 1 is answered here.
        for expected in [1, 2] {
            match transport.receive().await.unwrap() {
                ClientJsonRpcMessage::Request(r) => assert_eq!(r.id, RequestId::Number(expected)),
                other => panic!("{other:?}"),
            }
        }
        let refusal: serde_json::Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(refusal["id"], 1);
        assert_eq!(refusal["error"]["code"], -32600);

        // Answered: 1 may be used again. Cancelled: 2 too.
        let answer = ServerJsonRpcMessage::response(ServerResult::empty(()), RequestId::Number(1));
        transport.send(answer).await.unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&lines.next_line().await.unwrap().unwrap())
                .unwrap()["id"],
            1
        );
        let cancel = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":2}}\n";
        for line in [cancel.to_string(), ping(1), ping(2)] {
            client_write.write_all(line.as_bytes()).await.unwrap();
        }
        assert!(matches!(
            transport.receive().await.unwrap(),
            ClientJsonRpcMessage::Notification(_)
        ));
        for expected in [1, 2] {
            match transport.receive().await.unwrap() {
                ClientJsonRpcMessage::Request(r) => assert_eq!(r.id, RequestId::Number(expected)),
                other => panic!("{other:?}"),
            }
        }
    }
}
