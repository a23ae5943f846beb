//! Per-model admission: at most `max_concurrency` requests with the engine, at most `max_queue`
//! waiting behind them; anyone past that is told to come back (503 + `Retry-After`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Error, Result};

/// The door of one model.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queue: usize,
}

/// Held while a request is with the engine (for a stream: until its last event is sent).
pub type Slot = OwnedSemaphorePermit;

struct LeaveQueue<'a>(&'a AtomicUsize);

impl Drop for LeaveQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Admission {
    /// A door for `max_concurrency` requests at once and `max_queue` waiting.
    pub fn new(max_concurrency: usize, max_queue: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrency)),
            waiting: AtomicUsize::new(0),
            max_queue,
        }
    }

    /// Requests waiting for a slot right now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Waits for a slot, or fails at once when the queue is full. A caller that gives up
    /// (its future is dropped) leaves the queue.
    pub async fn enter(&self, model: &str) -> Result<Slot> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = LeaveQueue(&self.waiting);
        if ahead >= self.max_queue {
            return Err(Error::Overloaded {
                model: model.to_string(),
                queued: ahead,
                retry_after_secs: 1,
            });
        }
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::ShuttingDown)
    }

    /// Stops admitting: waiting and future requests get [`Error::ShuttingDown`].
    pub fn close(&self) {
        self.slots.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_queue_turns_requests_away_and_frees_up_again() {
        let door = Arc::new(Admission::new(1, 1));
        let first = door.enter("m").await.unwrap();
        let waiter = {
            let door = door.clone();
            tokio::spawn(async move { door.enter("m").await.map(drop) })
        };
        while door.queued() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let refused = door.enter("m").await.unwrap_err();
        assert!(matches!(refused, Error::Overloaded { queued: 1, .. }));
        drop(first);
        waiter.await.unwrap().unwrap();
        assert_eq!(door.queued(), 0);
        let _slot = door.enter("m").await.unwrap();
    }

    #[tokio::test]
    async fn closing_the_door_releases_waiters_with_shutting_down() {
        let door = Arc::new(Admission::new(1, 4));
        let _held = door.enter("m").await.unwrap();
        let waiter = {
            let door = door.clone();
            tokio::spawn(async move { door.enter("m").await.map(drop) })
        };
        while door.queued() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        door.close();
        assert!(matches!(waiter.await.unwrap(), Err(Error::ShuttingDown)));
    }
}
