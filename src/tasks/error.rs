//! Task failures as the task tools report them, with 1.7.0's texts where it had them.

use super::{store::StoreError, task::TaskStatus};

/// Why a task operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TaskError {
    /// Unknown id, or another caller's task (the same answer, on purpose).
    #[error("Task not found: {0}")]
    NotFound(String),
    /// The task has already finished.
    #[error(
        "Cannot cancel task with status: {}. Only pending or running tasks can be cancelled.",
        .0.as_str()
    )]
    NotCancellable(TaskStatus),
    /// Too many unfinished tasks (`OPENCLAW_MAX_TASKS`, all callers together).
    #[error("Task limit reached ({0}). Wait for tasks to complete or cancel pending ones.")]
    LimitReached(usize),
    /// This caller holds its share of the unfinished tasks (see `tasks::fair`); others are not
    /// affected.
    #[error(
        "Task limit reached for this caller ({share}, its share of {max}). Wait for tasks to \
         complete or cancel pending ones."
    )]
    ShareReached {
        /// The caller's share.
        share: usize,
        /// `OPENCLAW_MAX_TASKS`.
        max: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The supervisor could not be reached.
    #[error("The task supervisor is not answering ({0}); please retry")]
    Unavailable(String),
}
