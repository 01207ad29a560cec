//! Async chat tasks: who owns them ([`Owner`], the principal), what they are ([`task`]), where
//! they are kept ([`store`]: SQLite behind a `SyncArbiter`, behind the `TaskBackend` trait), how
//! principals share the limits and the slots ([`fair`]), and the actor that runs them
//! ([`supervisor`]).

pub mod error;
pub mod fair;
mod owner;
pub mod pg;
pub mod store;
pub mod supervisor;
pub mod task;

pub use owner::Owner;
pub use supervisor::Tasks;
