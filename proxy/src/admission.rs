//! Per-model admission: at most `max_concurrency` requests with the engine, at most `max_queue`
//! waiting behind them; anyone past that is told to come back (503 + `Retry-After`), with the
//! wait estimated from how fast the model has been finishing requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::drain::DrainRate;
use crate::{Error, Result};

/// Seconds per request ahead when the model has finished none lately (it may be loading):
/// a small model's answer on a CPU.
const FALLBACK_SECS_PER_REQUEST: f64 = 2.0;

/// The door of one model.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queue: usize,
    max_concurrency: usize,
    finished: Arc<DrainRate>,
}

/// Held while a request is with the engine (for a stream: until its last event is sent).
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    finished: Arc<DrainRate>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.finished.departed();
    }
}

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
            max_concurrency: max_concurrency.max(1),
            finished: Arc::new(DrainRate::new()),
        }
    }

    fn slot(&self, permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            _permit: permit,
            finished: self.finished.clone(),
        }
    }

    /// Requests waiting for a slot right now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Waits for a slot, or fails at once when the queue is full. A caller that gives up
    /// (its future is dropped) leaves the queue.
    pub async fn enter(&self, model: &str) -> Result<Slot> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(self.slot(permit));
        }
        let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = LeaveQueue(&self.waiting);
        if ahead >= self.max_queue {
            // Room comes when everything queued ahead has gone through the engine.
            let fallback = FALLBACK_SECS_PER_REQUEST / self.max_concurrency as f64;
            return Err(Error::Overloaded {
                model: model.to_string(),
                queued: ahead,
                retry_after_secs: self.finished.wait_secs(ahead, fallback),
            });
        }
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::ShuttingDown)?;
        Ok(self.slot(permit))
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
    async fn retry_after_grows_with_the_queue_and_its_drain_rate() {
        let door = Arc::new(Admission::new(1, 3));
        // Finish a few requests back to back: the model drains fast.
        for _ in 0..4 {
            drop(door.enter("m").await.unwrap());
        }
        let _held = door.enter("m").await.unwrap();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let door = door.clone();
                tokio::spawn(async move { door.enter("m").await.map(drop) })
            })
            .collect();
        while door.queued() < 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let Error::Overloaded {
            retry_after_secs, ..
        } = door.enter("m").await.unwrap_err()
        else {
            panic!("expected an overload");
        };
        assert_eq!(retry_after_secs, 1, "four finished within milliseconds");
        // A slow model: nothing finished lately reads as the fallback, 2 s a request ahead.
        let slow = Admission::new(1, 0);
        let _busy = slow.enter("m").await.unwrap();
        let Error::Overloaded {
            retry_after_secs, ..
        } = slow.enter("m").await.unwrap_err()
        else {
            panic!("expected an overload");
        };
        assert_eq!(retry_after_secs, 2);
        drop(waiters);
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
