//! The one writer thread a store sends its writes to, over a channel, so writes are batched
//! and never wait on reads. Shared by the SQLite and the Redis store.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use super::StoreError;

/// A writer thread and the channel to it; `close` drops the channel so the thread writes
/// what is queued and ends, then joins it.
pub(crate) struct WriterThread<C> {
    /// Names the thread in errors: "the database writer", "the Redis writer".
    what: &'static str,
    sender: Mutex<Option<Sender<C>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<C: Send + 'static> WriterThread<C> {
    /// Starts thread `name` running `run` over the receiving end of a new channel.
    pub(crate) fn spawn(
        name: &str,
        what: &'static str,
        run: impl FnOnce(Receiver<C>) + Send + 'static,
    ) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(rx))?;
        Ok(WriterThread {
            what,
            sender: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `cmd`; fails once the store is closed or the thread has stopped.
    pub(crate) fn send(&self, cmd: C) -> Result<(), StoreError> {
        match &*self.sender.lock() {
            Some(tx) => tx
                .send(cmd)
                .map_err(|_| StoreError(format!("{} has stopped", self.what))),
            None => Err(StoreError("the store is closed".into())),
        }
    }

    /// Sends the command `make` builds around a reply channel and waits for the reply.
    pub(crate) fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> C) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::channel();
        self.send(make(tx))?;
        rx.recv()
            .map_err(|_| StoreError(format!("{} has stopped", self.what)))
    }

    /// Lets the thread finish what is queued and waits for it; later sends fail.
    pub(crate) fn close(&self) {
        self.sender.lock().take();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}
