//! The task table and the exact lost-waker check.
//!
//! A snapshot walks the owned-task list shard by shard under its locks, so every task it sees
//! is alive while it is read; then the blocking pool's list of its jobs (queued or running).
//!
//! # "Waits on" is found where the wakers are
//!
//! Before the walk, the snapshot scans every worker's reactor — each registration's reader and
//! writer waiter lists — and every worker's timer queue (pending entries), and indexes the wakers
//! it finds by their data pointer ([`Waker::data`]). A task's waker points at its header, so a
//! task waits on exactly the sockets and timers whose lists hold a waker with its header's
//! address: what it really waits on, whoever registered the waker and whenever. Channels keep
//! their wakers inside the channel, which nothing lists, so they are noted instead by the poll
//! that registers with one (`note_channel_wait`, cleared at each poll start).
//! The scan costs the snapshot, never the hot path.
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

use std::collections::HashMap;
use std::panic::Location;
use std::task::Waker;
use std::time::Duration;

use super::task::{TaskObs, WaitsOn, WakeCounts};
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
    /// Idle, scheduled or running. For a blocking-pool job: `Scheduled` while queued for a pool
    /// thread, `Running` while its closure runs.
    pub status: TaskStatus,
    /// A [`spawn_blocking`](crate::rt::spawn_blocking) job of the blocking pool, not a task of
    /// the workers. Listed from its spawn until its closure returns.
    pub blocking: bool,
    /// Times the future was polled.
    pub polls: u64,
    /// Wakes received, by source.
    pub wakes: WakeCounts,
    /// The worker that polled it last.
    pub last_worker: Option<usize>,
    /// The task (and its worker, when it ran on one) whose wake came last.
    pub woken_by: Option<(u64, Option<usize>)>,
    /// What holds its waker: sockets and timers found in the reactors' waiter lists and the
    /// timer queues, then channels its last poll registered with (meaningful while `Idle`).
    pub waits_on: Vec<WaitsOn>,
    /// References in the state word (list + join handle + queue/runner + wakers).
    pub refs: usize,
    /// Idle, and no `Waker` refers to it in this snapshot. One snapshot can catch a task in
    /// transition; [`Handle::lost_wakers`](crate::rt::Handle::lost_wakers) (and the live view)
    /// report a task only when two snapshots agree.
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
        let mut waits = waiters(shared);
        let mut tasks = Vec::new();
        shared
            .owned
            .for_each(|h| tasks.push(info(h, false, &mut waits)));
        shared
            .blocking
            .for_each_task(|h| tasks.push(info(h, true, &mut waits)));
        tasks.sort_by_key(|t| t.id);
        Snapshot { tasks }
    }

    /// The row of task `id`.
    pub fn task(&self, id: u64) -> Option<&TaskInfo> {
        self.tasks.iter().find(|t| t.id == id)
    }
}

/// Every socket and timer waiter of every worker, by the waker's data pointer (a task's waker
/// points at its header).
fn waiters(shared: &Shared) -> HashMap<usize, Vec<WaitsOn>> {
    let mut by_task: HashMap<usize, Vec<WaitsOn>> = HashMap::new();
    let mut add = |waker: &Waker, what: WaitsOn| {
        let list = by_task.entry(waker.data() as usize).or_default();
        if !list.contains(&what) {
            list.push(what);
        }
    };
    for (worker, remote) in shared.remotes.iter().enumerate() {
        remote.driver.io.for_each_waiter(|token, direction, waker| {
            add(
                waker,
                WaitsOn::Socket {
                    worker,
                    token,
                    direction,
                },
            )
        });
        remote
            .driver
            .timers
            .for_each_waiter(|deadline, waker| add(waker, WaitsOn::Timer { worker, deadline }));
    }
    by_task
}

fn info(header: &Header, blocking: bool, waits: &mut HashMap<usize, Vec<WaitsOn>>) -> TaskInfo {
    let state = header.state.load();
    let obs = &header.obs;
    let status = if state.is_running() {
        TaskStatus::Running
    } else if state.is_scheduled() {
        TaskStatus::Scheduled
    } else {
        TaskStatus::Idle
    };
    let (polls, wakes) = obs.polls_and_wakes(&header.state);
    let refs = state.ref_count();
    let known = 1 + usize::from(state.has_join_interest());
    let mut waits_on = waits
        .remove(&(header as *const Header as usize))
        .unwrap_or_default();
    waits_on.extend(TaskObs::channel_waits(state));
    TaskInfo {
        id: obs.id(),
        location: obs.location(),
        status,
        blocking,
        polls,
        wakes,
        last_worker: TaskObs::last_worker(state),
        woken_by: obs.woken_by(),
        waits_on,
        refs,
        no_waker: !blocking && status == TaskStatus::Idle && !state.is_complete() && refs == known,
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
