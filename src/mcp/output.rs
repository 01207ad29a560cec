//! Tool results on the wire, in one place: success text, pretty JSON (2-space, as 1.7.0's
//! `JSON.stringify(data, null, 2)`) with the same value as `structuredContent`, and every failure
//! as `Error: <message>` with `isError: true`, never more than 4 KiB of it. Each module's error
//! type is mapped here once.

use std::borrow::Cow;

use rmcp::model::{CallToolResult, ContentBlock as Content};
use serde::Serialize;

use super::validate::ValidationError;
use crate::gateway::{
    error::{GatewayError, MAX_ERROR_TEXT_BYTES, truncate},
    registry::UnknownInstance,
};

/// Why a tool call failed; every variant becomes an `isError` tool result.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// A bad argument.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// An `instance` that is not configured.
    #[error(transparent)]
    UnknownInstance(#[from] UnknownInstance),
    /// The gateway failed.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// A task-level failure (not found, cannot cancel, limit reached…), already worded.
    #[error("{0}")]
    Task(String),
}

/// A plain-text success, as 1.7.0's `successResponse`.
pub fn text(text: impl Into<String>) -> CallToolResult {
    let mut result = CallToolResult::success(vec![Content::text(text)]);
    result.is_error = None;
    result
}

/// A JSON success: the pretty text of 1.7.0, plus the same value as `structuredContent`.
pub fn json<T: Serialize>(value: &T) -> CallToolResult {
    match serde_json::to_value(value) {
        Ok(structured) => {
            // unwrap-free: a `Value` always pretty-prints.
            let pretty = serde_json::to_string_pretty(&structured).unwrap_or_default();
            let mut result = text(pretty);
            result.structured_content = Some(structured);
            result
        }
        Err(e) => error(format!("could not encode the result: {e}")),
    }
}

/// A tool error: `Error: <message>` with `isError: true`, as 1.7.0's `errorResponse`, at most
/// [`MAX_ERROR_TEXT_BYTES`] long (a longer one is cut, with a note saying so). The gateway's words
/// are cut where they enter an error (`gateway::error::gateway_text`), so that the note gives
/// their whole length; this cap holds for every other error too.
pub fn error(message: impl std::fmt::Display) -> CallToolResult {
    let text = format!("Error: {message}");
    let text = match truncate(&text, MAX_ERROR_TEXT_BYTES) {
        Cow::Borrowed(_) => text,
        Cow::Owned(cut) => cut,
    };
    CallToolResult::error(vec![Content::text(text)])
}

impl From<ToolError> for CallToolResult {
    fn from(err: ToolError) -> Self {
        error(err)
    }
}

/// Collapses a tool outcome into its result.
pub fn finish(outcome: Result<CallToolResult, ToolError>) -> CallToolResult {
    outcome.unwrap_or_else(CallToolResult::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_result_holds_at_most_4_kib() {
        let result = error("w".repeat(100_000));
        let text = &result.content[0].as_text().unwrap().text;
        assert!(text.len() <= MAX_ERROR_TEXT_BYTES);
        assert!(text.starts_with("Error: www"));
        assert!(text.ends_with("www … [truncated: 100007 bytes in all]"));
        assert_eq!(result.is_error, Some(true));
        let short = error("fine");
        assert_eq!(short.content[0].as_text().unwrap().text, "Error: fine");
    }
}
