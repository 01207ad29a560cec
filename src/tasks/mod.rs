//! Async chat tasks: who owns them ([`Owner`]), what they are ([`task`]), where they are kept
//! ([`store`]: SQLite behind a `SyncArbiter`, behind the `TaskBackend` trait), and the actor that
//! runs them ([`supervisor`]).

pub mod error;
mod owner;
pub mod store;
pub mod supervisor;
pub mod task;

pub use owner::Owner;
pub use supervisor::Tasks;
