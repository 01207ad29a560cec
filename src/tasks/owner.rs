//! Who a task belongs to: the **principal**. A caller sees only its own tasks (an unknown and a
//! foreign task id get the same answer), and the limits and the order in which tasks run are fair
//! between principals (see [`fair`](super::fair)). The owner is fixed by the transport when a
//! connection starts:
//! - stdio: the local user — one owner, the same after a restart, so a restarted Claude Desktop
//!   still sees its tasks; it is the only principal a stdio bridge ever has;
//! - HTTP without auth: the MCP session, as in 1.7.0 (every 2026-07-28 request without auth
//!   shares one, `session:anonymous`);
//! - HTTP with OAuth: the grant (`subject:grant:<id>`), so a person who reconnects or refreshes
//!   keeps their tasks and two people on one client are two principals;
//! - HTTP with a static bearer token: the token's name (`subject:token:<name>`).

use std::fmt;

/// The stored key of [`Owner::Local`].
pub(crate) const LOCAL_KEY: &str = "local";

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
            Owner::Local => f.write_str(LOCAL_KEY),
            Owner::Session(id) => write!(f, "session:{id}"),
            Owner::Subject(sub) => write!(f, "subject:{sub}"),
        }
    }
}
