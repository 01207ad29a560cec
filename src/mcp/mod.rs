//! The MCP layer: rmcp's `ServerHandler` for the seven tools (`server`), their definitions and
//! handlers (`tools`), 1.7.0's argument rules (`validate`) and the mapping of every outcome to a
//! tool result (`output`).

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod output;
pub mod server;
pub mod tools;
pub mod validate;
