//! The owned-task list: every live task of a runtime, so shutdown can drop every future that
//! never finished — including tasks parked on a socket or a timer that no queue refers to.
//!
//! An intrusive doubly-linked list (links live in each task's allocation, so linking
//! allocates nothing), split into shards chosen by the task's address so concurrent spawns and
//! completions on different workers rarely meet on the same lock. Each linked task holds one
//! reference on behalf of the list.

use std::ptr::NonNull;

use crate::rt::loom::Mutex;

use super::raw::{links as links_of, Header, OwnedRef};

pub(crate) struct OwnedTasks {
    shards: Box<[Mutex<Shard>]>,
    mask: usize,
}

struct Shard {
    head: Option<NonNull<Header>>,
    len: usize,
    closed: bool,
}

// SAFETY: the raw pointers are only followed under the shard lock, and they point to tasks,
// which are Send + Sync.
unsafe impl Send for Shard {}

impl OwnedTasks {
    pub(crate) fn new(shards: usize) -> OwnedTasks {
        let n = shards.max(1).next_power_of_two();
        OwnedTasks {
            shards: (0..n)
                .map(|_| {
                    Mutex::new(Shard {
                        head: None,
                        len: 0,
                        closed: false,
                    })
                })
                .collect(),
            mask: n - 1,
        }
    }

    fn shard(&self, task: NonNull<Header>) -> &Mutex<Shard> {
        // Task cells are at least 64-byte sized heap blocks; mix the address so neighbouring
        // allocations spread over shards.
        let addr = task.as_ptr() as usize;
        let h = (addr >> 6).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        &self.shards[h & self.mask]
    }

    /// Links a task, taking over the list's reference. Fails (handing the reference back) once
    /// the list is closed.
    pub(crate) fn bind(&self, task: OwnedRef) -> Result<(), OwnedRef> {
        let ptr = task.as_ptr();
        let mut shard = self.shard(ptr).lock();
        if shard.closed {
            return Err(task);
        }
        std::mem::forget(task);
        // SAFETY: we hold the shard lock, which guards the links of every task in this shard.
        unsafe {
            let links = &mut *links_of(ptr);
            links.prev = None;
            links.next = shard.head;
            if let Some(head) = shard.head {
                (*links_of(head)).prev = Some(ptr);
            }
        }
        shard.head = Some(ptr);
        shard.len += 1;
        Ok(())
    }

    /// Unlinks a completed task. Returns true if it was linked (the caller then drops the
    /// list's reference).
    pub(crate) fn remove(&self, ptr: NonNull<Header>) -> bool {
        let mut shard = self.shard(ptr).lock();
        // SAFETY: we hold the shard lock.
        unsafe { unlink(&mut shard, ptr) }
    }

    /// Closes the list (later `bind`s fail) and takes every linked task out, with its reference.
    pub(crate) fn close_and_take_all(&self) -> Vec<OwnedRef> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.closed = true;
            while let Some(head) = shard.head {
                // SAFETY: we hold the lock; the list's reference moves into the OwnedRef.
                unsafe {
                    unlink(&mut shard, head);
                    out.push(OwnedRef::from_raw(head));
                }
            }
        }
        out
    }

    /// Calls `f` with every linked task, shard by shard under the shard's lock (the task
    /// table of the observatory).
    #[cfg(feature = "observatory")]
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Header)) {
        for shard in self.shards.iter() {
            let shard = shard.lock();
            let mut next = shard.head;
            while let Some(ptr) = next {
                // SAFETY: linked tasks are alive (the list holds a reference) and their links
                // are guarded by the shard lock we hold.
                unsafe {
                    f(ptr.as_ref());
                    next = (*links_of(ptr)).next;
                }
            }
        }
    }
}

/// # Safety
/// The caller holds the lock of the shard `ptr` belongs to.
unsafe fn unlink(shard: &mut Shard, ptr: NonNull<Header>) -> bool {
    // SAFETY: guarded by the shard lock held by the caller.
    unsafe {
        let links = &mut *links_of(ptr);
        // Linked means: somebody points at us (the head has no predecessor).
        if links.prev.is_none() && shard.head != Some(ptr) {
            return false;
        }
        match links.prev {
            Some(prev) => (*links_of(prev)).next = links.next,
            None => shard.head = links.next,
        }
        if let Some(next) = links.next {
            (*links_of(next)).prev = links.prev;
        }
        links.prev = None;
        links.next = None;
    }
    shard.len -= 1;
    true
}
