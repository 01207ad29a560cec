//! Who a task belongs to. A caller sees only its own tasks; an unknown and a foreign task id get
//! the same answer. The owner is fixed by the transport when a connection starts:
//! - stdio: the local user — one owner, the same after a restart, so a restarted Claude Desktop
//!   still sees its tasks;
//! - HTTP without auth: the MCP session, as in 1.7.0;
//! - HTTP with OAuth: the token's subject, so a client that reconnects with the same grant keeps
//!   its tasks.

use std::fmt;

/// The owner of tasks created through one connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The local user of a stdio bridge.
    Local,
    /// One MCP session (HTTP without auth, legacy SSE stream).
    Session(String),
    /// An authenticated principal (OAuth subject or static token name).
    Subject(String),
}

impl Owner {
    /// The stable key stored with each task.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Local => f.write_str("local"),
            Owner::Session(id) => write!(f, "session:{id}"),
            Owner::Subject(sub) => write!(f, "subject:{sub}"),
        }
    }
}
