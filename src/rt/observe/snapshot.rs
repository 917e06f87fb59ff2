//! The task table and the exact lost-waker check.
//!
//! A snapshot walks the owned-task list shard by shard under its locks, so every task it sees
//! is alive while it is read. Tasks of the blocking pool are not in that list and not shown.
//!
//! # The lost-waker check is a fact, not a heuristic
//!
//! The state word counts every pointer to a task: the owned list's (1), the join handle's (1
//! while `JOIN_INTEREST` is set), a run queue's or the runner's (only while `SCHEDULED` or
//! `RUNNING`) and one per live `Waker`. So a task that is neither scheduled, running nor complete
//! and has exactly `1 + join_interest` references has **no waker anywhere**: nothing can ever
//! poll it again. Between the join handle clearing its interest and dropping its reference the
//! count is one too high, which can only hide a lost task for an instant, never invent one; a
//! report still needs two snapshots that agree (same task, same poll count), so a task caught
//! mid-transition is not reported.

use std::panic::Location;
use std::time::Duration;

use super::task::{WaitsOn, WakeCounts};
use crate::rt::scheduler::Shared;
use crate::rt::task::Header;

/// What a task is doing at the moment of the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    /// Parked: waiting for a wake.
    Idle,
    /// In a run queue.
    Scheduled,
    /// Being polled.
    Running,
}

/// One row of the task table.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    /// Unique in the process, in spawn order (see [`JoinHandle::id`](crate::rt::JoinHandle::id)).
    pub id: u64,
    /// The caller of the spawn entry point.
    pub location: &'static Location<'static>,
    /// Idle, scheduled or running.
    pub status: TaskStatus,
    /// Times the future was polled.
    pub polls: u64,
    /// Wakes received, by source.
    pub wakes: WakeCounts,
    /// The worker that polled it last.
    pub last_worker: Option<usize>,
    /// The task (and its worker, when it ran on one) whose wake came last.
    pub woken_by: Option<(u64, Option<usize>)>,
    /// What its last poll registered its waker with (meaningful while `Idle`).
    pub waits_on: Vec<WaitsOn>,
    /// References in the state word (list + join handle + queue/runner + wakers).
    pub refs: usize,
    /// Idle, and no `Waker` refers to it in this snapshot.
    pub no_waker: bool,
}

impl TaskInfo {
    /// `file:line` of the spawn site.
    pub fn spawned_at(&self) -> String {
        format!("{}:{}", self.location.file(), self.location.line())
    }
}

/// The task table of one runtime at one instant.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every unfinished task, by id.
    pub tasks: Vec<TaskInfo>,
}

impl Snapshot {
    pub(crate) fn take(shared: &Shared) -> Snapshot {
        let mut tasks = Vec::new();
        shared.owned.for_each(|h| tasks.push(info(h)));
        tasks.sort_by_key(|t| t.id);
        Snapshot { tasks }
    }

    /// The row of task `id`.
    pub fn task(&self, id: u64) -> Option<&TaskInfo> {
        self.tasks.iter().find(|t| t.id == id)
    }
}

fn info(header: &Header) -> TaskInfo {
    let state = header.state.load();
    let obs = &header.obs;
    let status = if state.is_running() {
        TaskStatus::Running
    } else if state.is_scheduled() {
        TaskStatus::Scheduled
    } else {
        TaskStatus::Idle
    };
    let refs = state.ref_count();
    let known = 1 + usize::from(state.has_join_interest());
    TaskInfo {
        id: obs.id,
        location: obs.location,
        status,
        polls: obs.polls.load(std::sync::atomic::Ordering::Relaxed),
        wakes: obs.wake_counts(),
        last_worker: obs.last_worker(),
        woken_by: obs.woken_by(),
        waits_on: obs.waits.lock().clone(),
        refs,
        no_waker: status == TaskStatus::Idle && !state.is_complete() && refs == known,
    }
}

/// Tasks that no waker can reach, confirmed by two snapshots `gap` apart.
pub(crate) fn lost_wakers(shared: &Shared, gap: Duration) -> Vec<TaskInfo> {
    let first = Snapshot::take(shared);
    std::thread::sleep(gap);
    let second = Snapshot::take(shared);
    second
        .tasks
        .into_iter()
        .filter(|t| {
            t.no_waker
                && first
                    .task(t.id)
                    .is_some_and(|f| f.no_waker && f.polls == t.polls)
        })
        .collect()
}
