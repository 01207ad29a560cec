//! Fairness between principals (task owners, see [`Owner`](super::Owner)): no principal can
//! starve the others, whatever it queues and whatever priority it asks for.
//!
//! **Shares of the limits** ([`Shares`]):
//! - *Unfinished tasks*: a principal may hold at most `max(1, OPENCLAW_MAX_TASKS / 4)` pending and
//!   running tasks; `OPENCLAW_MAX_TASKS` still caps all principals together. So at least four
//!   principals must be full before anyone meets the global limit: one principal (or two, or
//!   three) can never lock the others out. The share is a fixed fraction, not "the whole limit
//!   while alone": a share that grows while a principal is alone cannot be taken back from the
//!   tasks it already queued, so the next principal would find the table full — the very lock-out
//!   this prevents.
//! - *Running slots*: a principal may run at most `OPENCLAW_TASK_CONCURRENCY - max(1,
//!   OPENCLAW_TASK_CONCURRENCY / 4)` tasks at once in this process (3 of 4, 6 of 8, 48 of 64), so
//!   a quarter of the slots (at least one) is always out of reach of any single principal and
//!   another principal's task starts at once even while one principal's long tasks run. A running
//!   task cannot be taken back without losing its prompt, so a reserve is the only way to bound
//!   that wait. With a concurrency of 1 nothing can be reserved without idling the only slot; the
//!   order below then bounds the wait to one task of each principal served before.
//! - *The local user* (stdio) gets the whole of both: a stdio bridge has exactly one principal by
//!   construction (the person who started it and owns its data directory), so there is nobody to
//!   protect and a share would only take capacity away.
//!
//! **Order** ([`FairQueue`]): each principal has its own queue, ordered by `priority` (higher
//! first) and then age (older first); `priority` never reorders one principal's tasks against
//! another's. When a slot is free, it goes to the principal with pending work that has the fewest
//! tasks running (or being claimed) here and is under its running share; among those, to the one
//! served longest ago, where a principal that had nothing queued or running counts as served when
//! its first task arrives (round-robin: a newcomer goes to the back of the round, so opening new
//! sessions does not jump the line). Fairness counts tasks started, not gateway time.

use std::{
    cmp::Ordering,
    collections::{BinaryHeap, HashMap, HashSet},
};

use super::{owner::LOCAL_KEY, task::TaskRecord};

/// A principal's share of `OPENCLAW_MAX_TASKS` is this fraction of it (at least one task).
pub const QUEUE_SHARE_DIVISOR: usize = 4;
/// This fraction of the running slots (at least one) is kept out of any one principal's reach.
pub const RUNNING_RESERVE_DIVISOR: usize = 4;

/// The per-principal shares of the task limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// `OPENCLAW_MAX_TASKS`: unfinished tasks of all principals together.
    max_tasks: usize,
    /// `OPENCLAW_TASK_CONCURRENCY`: tasks running at once in this process.
    concurrency: usize,
}

impl Shares {
    /// The shares of `max_tasks` unfinished tasks and `concurrency` running slots (each at
    /// least 1).
    pub fn new(max_tasks: usize, concurrency: usize) -> Self {
        Shares {
            max_tasks: max_tasks.max(1),
            concurrency: concurrency.max(1),
        }
    }

    /// Unfinished tasks of all principals together.
    pub fn max_tasks(&self) -> usize {
        self.max_tasks
    }

    /// Running slots of this process.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Most unfinished (pending and running) tasks `owner` (an owner key) may hold.
    pub fn queued(&self, owner: &str) -> usize {
        if owner == LOCAL_KEY {
            self.max_tasks
        } else {
            (self.max_tasks / QUEUE_SHARE_DIVISOR).max(1)
        }
    }

    /// Most tasks `owner` may run at once here.
    pub fn running(&self, owner: &str) -> usize {
        if owner == LOCAL_KEY || self.concurrency == 1 {
            self.concurrency
        } else {
            self.concurrency - (self.concurrency / RUNNING_RESERVE_DIVISOR).max(1)
        }
    }
}

/// A task waiting in its principal's heap.
struct Queued(TaskRecord);

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.0.seq == other.0.seq
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Max-heap order: higher priority first, then the older (smaller `seq`) first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .priority
            .cmp(&other.0.priority)
            .then_with(|| other.0.seq.cmp(&self.0.seq))
    }
}

/// One principal with pending work or slots in use.
struct Principal {
    /// Its pending tasks, in its own priority order.
    pending: BinaryHeap<Queued>,
    /// Its slots in use here (claims in flight and running jobs).
    busy: usize,
    /// When it was last served (or arrived), on the queue's turn counter.
    turn: u64,
}

/// Pending tasks of this process, per principal, handed out in the fair order described in the
/// module docs. It also counts each principal's slots in use, from [`pop`](Self::pop) to
/// [`release`](Self::release).
#[derive(Default)]
pub struct FairQueue {
    /// Principals with pending work or slots in use; dropped when they have neither, so the
    /// memory is bounded by the tasks, not by every principal ever seen.
    principals: HashMap<String, Principal>,
    /// Ids of the queued tasks, so that a rescan of the store adds nothing twice.
    ids: HashSet<String>,
    /// Counts services and arrivals; orders principals by how long ago they were served.
    turn: u64,
}

impl FairQueue {
    /// An empty queue.
    pub fn new() -> Self {
        FairQueue::default()
    }

    /// Queues `task` under its owner; `false` if it was already queued.
    pub fn push(&mut self, task: TaskRecord) -> bool {
        if !self.ids.insert(task.id.clone()) {
            return false;
        }
        let principal = match self.principals.get_mut(&task.owner) {
            Some(principal) => principal,
            None => {
                self.turn += 1;
                self.principals
                    .entry(task.owner.clone())
                    .or_insert(Principal {
                        pending: BinaryHeap::new(),
                        busy: 0,
                        turn: self.turn,
                    })
            }
        };
        principal.pending.push(Queued(task));
        true
    }

    /// Whether the task `id` is queued.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Pending tasks queued, all principals together.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Slots `owner` uses here.
    pub fn busy(&self, owner: &str) -> usize {
        self.principals.get(owner).map_or(0, |p| p.busy)
    }

    /// The next task to start, if any principal with pending work is under its running share;
    /// counts a slot in use for its owner until [`release`](Self::release).
    pub fn pop(&mut self, shares: &Shares) -> Option<TaskRecord> {
        let owner = self
            .principals
            .iter()
            .filter(|(owner, p)| !p.pending.is_empty() && p.busy < shares.running(owner))
            .min_by_key(|(_, p)| (p.busy, p.turn))
            .map(|(owner, _)| owner.clone())?;
        self.turn += 1;
        let principal = self.principals.get_mut(&owner)?;
        let Queued(task) = principal.pending.pop()?;
        principal.busy += 1;
        principal.turn = self.turn;
        self.ids.remove(&task.id);
        Some(task)
    }

    /// Counts a slot in use for `owner` for a task that did not come through the queue (a run
    /// adopted from a bridge that stopped), until [`release`](Self::release).
    pub fn hold(&mut self, owner: &str) {
        let turn = self.turn;
        self.principals
            .entry(owner.to_string())
            .or_insert(Principal {
                pending: BinaryHeap::new(),
                busy: 0,
                turn,
            })
            .busy += 1;
    }

    /// One of `owner`'s slots is free again (its claim failed or its job ended).
    pub fn release(&mut self, owner: &str) {
        if let Some(principal) = self.principals.get_mut(owner) {
            principal.busy = principal.busy.saturating_sub(1);
            if principal.busy == 0 && principal.pending.is_empty() {
                self.principals.remove(owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::task::TaskStatus;

    fn task(owner: &str, name: &str, priority: i64, seq: i64) -> TaskRecord {
        TaskRecord {
            id: format!("task_{name}"),
            owner: owner.into(),
            instance: "default".into(),
            session_id: None,
            agent_id: None,
            message: Some(name.into()),
            images: Vec::new(),
            priority,
            seq,
            status: TaskStatus::Pending,
            created_at: seq,
            started_at: None,
            completed_at: None,
            result: None,
            error: None,
            progress_chars: 0,
            last_activity_at: None,
            run: None,
        }
    }

    /// Pops everything with one slot, releasing each task as soon as it starts (concurrency 1).
    fn run_one_at_a_time(queue: &mut FairQueue, shares: &Shares) -> Vec<String> {
        let mut order = Vec::new();
        while let Some(t) = queue.pop(shares) {
            queue.release(&t.owner);
            order.push(t.message.unwrap_or_default());
        }
        order
    }

    #[test]
    fn shares_are_a_quarter_with_a_floor_and_the_local_user_gets_everything() {
        let s = Shares::new(1000, 4);
        assert_eq!(s.queued("session:a"), 250);
        assert_eq!(s.queued("subject:token:ci"), 250);
        assert_eq!(s.queued("local"), 1000);
        assert_eq!(s.running("session:a"), 3);
        assert_eq!(s.running("local"), 4);
        assert_eq!(Shares::new(3, 1).queued("session:a"), 1, "at least one");
        assert_eq!(Shares::new(8, 2).queued("session:a"), 2);
        assert_eq!(
            Shares::new(8, 1).running("session:a"),
            1,
            "nothing to reserve"
        );
        assert_eq!(Shares::new(8, 2).running("session:a"), 1);
        assert_eq!(Shares::new(8, 8).running("session:a"), 6);
        assert_eq!(Shares::new(8, 64).running("session:a"), 48);
    }

    #[test]
    fn a_newcomer_does_not_wait_behind_all_of_a_busy_principals_tasks() {
        let shares = Shares::new(1000, 1);
        let mut q = FairQueue::new();
        for i in 0..5 {
            q.push(task("session:a", &format!("a{i}"), 9, i));
        }
        q.push(task("session:b", "b0", -5, 10));
        q.push(task("session:b", "b1", -5, 11));
        assert_eq!(
            run_one_at_a_time(&mut q, &shares),
            ["a0", "b0", "a1", "b1", "a2", "a3", "a4"],
            "turns alternate; b's low priority does not matter against a"
        );
        assert!(q.is_empty());
        assert!(q.principals.is_empty(), "idle principals are forgotten");
    }

    #[test]
    fn priority_orders_one_principals_own_tasks() {
        let shares = Shares::new(1000, 1);
        let mut q = FairQueue::new();
        for (name, priority, seq) in [
            ("a", 0, 1),
            ("b", 5, 2),
            ("c", 5, 3),
            ("d", -1, 4),
            ("e", 9, 5),
        ] {
            q.push(task("local", name, priority, seq));
        }
        assert_eq!(
            run_one_at_a_time(&mut q, &shares),
            ["e", "b", "c", "a", "d"]
        );
        let mut q = FairQueue::new();
        q.push(task("session:a", "a-low", 0, 1));
        q.push(task("session:b", "b-low", 0, 2));
        q.push(task("session:a", "a-high", 7, 3));
        q.push(task("session:b", "b-high", 7, 4));
        assert_eq!(
            run_one_at_a_time(&mut q, &shares),
            ["a-high", "b-high", "a-low", "b-low"],
            "each principal's own order is its priority order"
        );
    }

    #[test]
    fn the_principal_with_fewest_running_tasks_goes_first_and_none_passes_its_running_share() {
        let shares = Shares::new(1000, 4);
        let mut q = FairQueue::new();
        for i in 0..6 {
            q.push(task("session:a", &format!("a{i}"), 0, i));
        }
        // a alone: three slots, never the fourth (kept for someone else).
        let started: Vec<_> = std::iter::from_fn(|| q.pop(&shares)).collect();
        assert_eq!(started.len(), 3);
        assert_eq!(q.busy("session:a"), 3);
        q.push(task("session:b", "b0", 0, 10));
        q.push(task("session:b", "b1", 0, 11));
        let b = q.pop(&shares).unwrap();
        assert_eq!(b.owner, "session:b", "the reserved slot serves b at once");
        // a slot of a frees: b (1 running) goes before a (2 running).
        q.release("session:a");
        assert_eq!(q.pop(&shares).unwrap().owner, "session:b");
        assert_eq!(q.pop(&shares).unwrap().owner, "session:a");
        assert!(
            q.pop(&shares).is_none(),
            "a is at its share, b has nothing left"
        );
    }

    #[test]
    fn the_same_task_is_queued_once() {
        let mut q = FairQueue::new();
        assert!(q.push(task("local", "x", 0, 1)));
        assert!(!q.push(task("local", "x", 0, 1)));
        assert_eq!(q.len(), 1);
        assert!(q.contains("task_x"));
    }
}
