//! Test tools of the official MCP conformance suite (`test_simple_text`, `test_image_content`, …),
//! compiled only with the cargo feature `conformance` and never in a default build. They let
//! `scripts/conformance.sh` run the suite's tool scenarios against the real server, with the
//! answers the suite's reference server (`everything-server.ts`) gives:
//!
//! - 2025 suite (0.1.16): the content tools, `test_tool_with_logging` (three `info` log
//!   notifications 50 ms apart, after `logging/setLevel`), `test_tool_with_progress` (0, 50,
//!   100 of 100 on the caller's progress token), `test_error_handling` (an `isError` result),
//!   `json_schema_2020_12_tool` (a schema using `$schema`, `$defs`, `$anchor`, `$ref`,
//!   `allOf`/`anyOf`, `if`/`then`/`else` and `additionalProperties: false`);
//! - 2026 suite (0.2.x): `test_missing_capability` (needs the client's `sampling` capability
//!   and answers -32021 without it) and `test_logging_tool` (logs only when the request asks
//!   for it with `_meta["io.modelcontextprotocol/logLevel"]`).
//!
//! What a tools-only bridge cannot do (sampling, elicitation, roots, resources, prompts,
//! completion) is left out and listed in the checked-in baselines under `conformance/`.

// Logging is deprecated in 2026-07-28 (SEP-2577), but the 2025 suite tests it.
#![allow(deprecated)]

use std::{sync::Arc, time::Duration};

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        CallToolResult, ClientCapabilities, ContentBlock, JsonObject, LoggingLevel,
        LoggingMessageNotificationParam, ProgressNotificationParam, ProgressToken,
        ResourceContents, Tool,
    },
    service::RequestContext,
};
use serde_json::{Value, json};

/// A 1×1 red PNG (the reference server's).
const TEST_IMAGE_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal WAV file (the reference server's).
const TEST_AUDIO_BASE64: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";
/// Pause between the logging and progress notifications, as the reference server.
const STEP: Duration = Duration::from_millis(50);
/// The JSON Schema dialect the suite checks for.
const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

fn object(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

fn no_arguments() -> Arc<JsonObject> {
    object(json!({"type": "object", "properties": {}}))
}

/// The conformance test tools, listed after the seven real ones.
pub fn definitions() -> Vec<Tool> {
    let simple = |name: &'static str, description: &'static str| {
        Tool::new(name, description, no_arguments())
    };
    vec![
        simple("test_simple_text", "Tests simple text content response"),
        simple("test_image_content", "Tests image content response"),
        simple("test_audio_content", "Tests audio content response"),
        simple(
            "test_embedded_resource",
            "Tests embedded resource content response",
        ),
        simple(
            "test_multiple_content_types",
            "Tests response with multiple content types (text, image, resource)",
        ),
        simple(
            "test_tool_with_logging",
            "Tests tool that emits log messages during execution",
        ),
        simple(
            "test_tool_with_progress",
            "Tests tool that reports progress notifications",
        ),
        simple("test_error_handling", "Tests error response handling"),
        simple(
            "test_missing_capability",
            "Tests that a request needing an undeclared client capability (sampling) is rejected with -32021",
        ),
        simple(
            "test_logging_tool",
            "Tests that log messages are sent only when the request asks for them",
        ),
        Tool::new(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features",
            object(json!({
                "$schema": DIALECT,
                "type": "object",
                "$defs": {
                    "address": {
                        "$anchor": "addressDef",
                        "type": "object",
                        "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
                    }
                },
                "properties": {
                    "name": {"type": "string"},
                    "address": {"$ref": "#/$defs/address"},
                    "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                    "phone": {"type": "string"},
                    "email": {"type": "string"}
                },
                "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
                "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
                "then": {"required": ["phone"]},
                "else": {"required": ["email"]},
                "additionalProperties": false
            })),
        ),
    ]
}

/// Sends an `info` log notification; a closed connection just ends the tool early.
async fn log(context: &RequestContext<RoleServer>, text: &str) {
    let note = LoggingMessageNotificationParam::new(LoggingLevel::Info, json!(text))
        .with_logger("openclaw-mcp-conformance");
    let _ = context.peer.notify_logging_message(note).await;
}

/// Whether the request comes from a 2026-07-28 client (per-request `_meta`).
fn is_modern(context: &RequestContext<RoleServer>) -> bool {
    context.meta.protocol_version().is_some()
}

/// The capabilities the client declared: per request (2026-07-28) or at `initialize`.
fn client_capabilities(context: &RequestContext<RoleServer>) -> ClientCapabilities {
    context
        .meta
        .client_capabilities()
        .or_else(|| {
            context
                .peer
                .peer_info()
                .map(|info| info.capabilities.clone())
        })
        .unwrap_or_default()
}

/// Runs a conformance test tool; `None` when `name` is not one of them.
pub async fn call(
    name: &str,
    _args: Option<&serde_json::Map<String, serde_json::Value>>,
    context: &RequestContext<RoleServer>,
) -> Option<Result<CallToolResult, McpError>> {
    let result = match name {
        "test_simple_text" => CallToolResult::success(vec![ContentBlock::text(
            "This is a simple text response for testing.",
        )]),
        "test_image_content" => {
            CallToolResult::success(vec![ContentBlock::image(TEST_IMAGE_BASE64, "image/png")])
        }
        "test_audio_content" => {
            CallToolResult::success(vec![ContentBlock::audio(TEST_AUDIO_BASE64, "audio/wav")])
        }
        "test_embedded_resource" => {
            CallToolResult::success(vec![ContentBlock::resource(ResourceContents::text(
                "This is an embedded resource content.",
                "test://embedded-resource",
            ))])
        }
        "test_multiple_content_types" => CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(TEST_IMAGE_BASE64, "image/png"),
            ContentBlock::resource(
                ResourceContents::text(
                    json!({"test": "data", "value": 123}).to_string(),
                    "test://mixed-content-resource",
                )
                .with_mime_type("application/json"),
            ),
        ]),
        "test_tool_with_logging" => {
            // 2026-07-28 clients opt in per request; older ones set the level for the session.
            let wanted = !is_modern(context) || context.meta.log_level().is_some();
            for (i, text) in [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            ]
            .into_iter()
            .enumerate()
            {
                if i > 0 {
                    tokio::time::sleep(STEP).await;
                }
                if wanted {
                    log(context, text).await;
                }
            }
            CallToolResult::success(vec![ContentBlock::text(
                "Tool with logging executed successfully",
            )])
        }
        "test_logging_tool" => {
            if context.meta.log_level().is_some() || !is_modern(context) {
                log(context, "test_logging_tool ran").await;
            }
            CallToolResult::success(vec![ContentBlock::text("Logging tool executed")])
        }
        "test_tool_with_progress" => {
            let token = context
                .meta
                .get_progress_token()
                .unwrap_or(ProgressToken(rmcp::model::NumberOrString::Number(0)));
            for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(STEP).await;
                }
                let note = ProgressNotificationParam::new(token.clone(), progress)
                    .with_total(100.0)
                    .with_message(format!("Completed step {progress} of 100"));
                let _ = context.peer.notify_progress(note).await;
            }
            let shown = match &token.0 {
                rmcp::model::NumberOrString::Number(n) => n.to_string(),
                rmcp::model::NumberOrString::String(s) => s.to_string(),
            };
            CallToolResult::success(vec![ContentBlock::text(shown)])
        }
        "test_error_handling" => CallToolResult::error(vec![ContentBlock::text(
            "This tool intentionally returns an error for testing",
        )]),
        "test_missing_capability" => {
            if client_capabilities(context).sampling.is_none() {
                let required: ClientCapabilities =
                    serde_json::from_value(json!({"sampling": {}})).unwrap_or_default();
                return Some(Err(McpError::missing_required_client_capability(required)));
            }
            CallToolResult::success(vec![ContentBlock::text(
                "The client declared the sampling capability",
            )])
        }
        "json_schema_2020_12_tool" => {
            CallToolResult::success(vec![ContentBlock::text("json_schema_2020_12_tool called")])
        }
        _ => return None,
    };
    Some(Ok(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_tool_keeps_every_2020_12_keyword() {
        let tools = definitions();
        let schema = &tools
            .iter()
            .find(|t| t.name == "json_schema_2020_12_tool")
            .unwrap()
            .input_schema;
        for key in [
            "$schema",
            "$defs",
            "allOf",
            "if",
            "then",
            "else",
            "additionalProperties",
        ] {
            assert!(schema.contains_key(key), "{key}");
        }
        assert_eq!(schema["$defs"]["address"]["$anchor"], "addressDef");
        assert!(tools.iter().all(|t| t.description.is_some()));
    }
}
