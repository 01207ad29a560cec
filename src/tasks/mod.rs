//! Async chat tasks. This module owns the identity of a task's owner ([`Owner`]); the
//! supervisor, the store and the task records follow in their own files.

mod owner;

pub use owner::Owner;
