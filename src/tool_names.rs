//! The tool names, in one place: which tools exist, in listing order, and which of them change
//! nothing (the ones `--read-only` keeps). The configuration (`OPENCLAW_MCP_DISABLED_TOOLS`,
//! `--read-only`) and the MCP layer both read them here, so `config` does not depend on `mcp`
//! (which depends on `config`) for them.

/// Sends a message to an agent and answers with its reply (1.7.0).
pub const CHAT: &str = "openclaw_chat";
/// Probes a gateway and reports its health (1.7.0).
pub const STATUS: &str = "openclaw_status";
/// Queues a chat as a background task (1.7.0).
pub const CHAT_ASYNC: &str = "openclaw_chat_async";
/// One background task's state and result (1.7.0).
pub const TASK_STATUS: &str = "openclaw_task_status";
/// The caller's background tasks (1.7.0).
pub const TASK_LIST: &str = "openclaw_task_list";
/// Cancels a background task (1.7.0).
pub const TASK_CANCEL: &str = "openclaw_task_cancel";
/// The configured instances (1.7.0).
pub const INSTANCES: &str = "openclaw_instances";
/// An instance's agents (from `GET /v1/models`).
pub const AGENTS: &str = "openclaw_agents";
/// An instance's sessions (`sessions_list` through `/tools/invoke`).
pub const SESSIONS: &str = "openclaw_sessions";
/// A session's recent turns (`sessions_history` through `/tools/invoke`).
pub const SESSION_HISTORY: &str = "openclaw_session_history";

/// Every tool, in listing order: 1.7.0's seven, then this bridge's.
pub const ALL_TOOLS: [&str; 10] = [
    CHAT,
    STATUS,
    CHAT_ASYNC,
    TASK_STATUS,
    TASK_LIST,
    TASK_CANCEL,
    INSTANCES,
    AGENTS,
    SESSIONS,
    SESSION_HISTORY,
];

/// The tools that change nothing, kept by `--read-only`.
pub const READ_ONLY_TOOLS: [&str; 7] = [
    STATUS,
    INSTANCES,
    AGENTS,
    SESSIONS,
    SESSION_HISTORY,
    TASK_STATUS,
    TASK_LIST,
];

/// Whether `name` is one of this server's tools.
pub fn is_tool(name: &str) -> bool {
    ALL_TOOLS.contains(&name)
}

/// Whether `name` is a tool that changes nothing.
pub fn is_read_only(name: &str) -> bool {
    READ_ONLY_TOOLS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_only_tools_are_tools_and_the_names_are_unique() {
        assert!(READ_ONLY_TOOLS.iter().all(|t| is_tool(t)));
        let mut names = ALL_TOOLS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL_TOOLS.len());
        assert!(!is_read_only(CHAT) && !is_read_only(CHAT_ASYNC) && !is_read_only(TASK_CANCEL));
    }
}
