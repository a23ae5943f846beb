//! A request's hold on a model: [`Lease`] while it is served, and the count of requests waiting
//! for it to load, each given back when dropped.

use std::sync::Arc;
use std::time::Instant;

use super::super::keep_alive::KeepAlive;
use super::books::Books;
use super::Inner;

/// A request's hold on a loaded model: while any lease exists the model is not unloaded.
/// Dropping the last one starts the model's keep-alive.
pub struct Lease<M: Send + Sync + 'static> {
    // Field order matters: the model is dropped before the scheduler hears the lease is gone,
    // so an unload never races a request still holding the model.
    pub(super) model: Arc<M>,
    pub(super) _in_use: InUse<M>,
}

impl<M: Send + Sync + 'static> std::ops::Deref for Lease<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.model
    }
}

pub(super) struct InUse<M: Send + Sync + 'static> {
    pub(super) inner: Arc<Inner<M>>,
    pub(super) id: String,
    pub(super) keep_alive: KeepAlive,
}

impl<M: Send + Sync + 'static> Drop for InUse<M> {
    fn drop(&mut self) {
        let mut books = self.inner.lock();
        if let Some(entry) = books.models.get_mut(&self.id) {
            entry.in_flight -= 1;
            let now = Instant::now();
            entry.last_used = now;
            if entry.in_flight == 0 {
                // The last request to finish sets the model's time to live, as in Ollama.
                entry.expires = self.keep_alive.duration().map(|d| now + d);
            }
        }
        drop(books);
        self.inner.bump();
    }
}

/// Counts a request waiting for a model, and takes the count back if the request gives up.
pub(super) struct Waiting<M: Send + Sync + 'static> {
    pub(super) inner: Arc<Inner<M>>,
    pub(super) id: String,
}

impl<M: Send + Sync + 'static> Drop for Waiting<M> {
    fn drop(&mut self) {
        let mut books = self.inner.lock();
        let Books {
            models, room_queue, ..
        } = &mut *books;
        if let Some(entry) = models.get_mut(&self.id) {
            entry.waiting -= 1;
            if entry.waiting == 0 {
                // Nobody wants it any more: it must not hold up the models queued behind it.
                room_queue.retain(|m| m != &self.id);
            }
        }
        drop(books);
        self.inner.bump();
    }
}
