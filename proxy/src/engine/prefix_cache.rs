//! mistral.rs's prefix cache, bounded by porten. The engine keeps every finished sequence's KV
//! cache, keyed by its tokens, and a new prompt that starts the same way (an agent's next turn,
//! a shared system prompt) is read from the longest match on instead of from its first token.
//! mistral.rs 0.8.1 never evicts those caches on the CPU (its `evict_caches` counts only caches
//! on a GPU), and offers no call to drop them, but it drops all of them when a step fails. So
//! porten keeps the books (each finished sequence adds its KV cache's bytes, in the engine's
//! 512-token blocks) and, when they pass the bound the memory estimate charged, has the engine
//! run a one-token prompt that no model can read (a token id past every vocabulary), alone, so
//! that its step fails and the caches go. The request that finds the books full is read from
//! its start; the ones after it find the cache again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use mistralrs::{RequestMessage, Response};
use tokio::sync::mpsc;

use super::{EngineJob, LoadedModel};
use crate::{Error, Result};

/// The engine's KV cache grows in blocks of this many tokens (mistral.rs's
/// `NormalCache::CACHE_GROW_SIZE`): a finished sequence's cache holds whole blocks.
const BLOCK_TOKENS: u64 = 512;

/// Resident memory grew by 1.8x a finished sequence's KV-cache bytes when the cache kept it
/// (`cargo bench --bench prefix_cache`: 41 MiB a request against 22.5 MiB of blocks); the
/// books count twice the blocks, so that they err high.
const MEASURED_GROWTH: u64 = 2;

/// A token id no vocabulary reaches: the engine's embedding lookup fails on it.
const UNREADABLE_TOKEN: u32 = u32::MAX - 7;

/// The books of one loaded model's prefix cache.
pub struct PrefixCache {
    bound: u64,
    bytes_per_token: u64,
    held: Mutex<u64>,
    flushes: AtomicU64,
}

/// What the books say, for `/admin/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PrefixCacheStatus {
    /// Bytes the cache may hold: what the memory estimate charged.
    pub bound_bytes: u64,
    /// Bytes it holds by the books (an upper bound: the engine may hold less).
    pub held_bytes: u64,
    /// Prompts the engine started from a cached prefix since the model loaded.
    pub hits: u64,
    /// Times the books were full and the cache was dropped.
    pub flushes: u64,
}

impl PrefixCache {
    /// Books for a cache of at most `bound` bytes, of `bytes_per_token` each (keys and values,
    /// every layer, in the engine's dtype).
    pub fn new(bound: u64, bytes_per_token: u64) -> Self {
        Self {
            bound,
            bytes_per_token,
            held: Mutex::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    /// What a finished sequence of `tokens` tokens adds to the cache, by the books.
    pub fn entry_bytes(&self, tokens: u64) -> u64 {
        tokens
            .div_ceil(BLOCK_TOKENS)
            .saturating_mul(BLOCK_TOKENS)
            .saturating_mul(self.bytes_per_token)
            .saturating_mul(MEASURED_GROWTH)
    }

    /// A sequence of `tokens` tokens finished: the engine keeps its KV cache.
    pub fn finished(&self, tokens: u64) {
        let mut held = self.lock();
        *held = held.saturating_add(self.entry_bytes(tokens));
        crate::residency::memory::note_activity();
    }

    /// Whether the books are past the bound, so the cache must go before the next prompt.
    pub fn is_full(&self) -> bool {
        *self.lock() > self.bound
    }

    /// Whether the books hold anything.
    pub fn holds_any(&self) -> bool {
        *self.lock() > 0
    }

    /// The engine dropped every cached prefix: the books start again from nothing.
    fn dropped(&self) {
        *self.lock() = 0;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        crate::residency::memory::note_activity();
    }

    /// The books, with the engine's count of prompts that started from the cache.
    pub fn status(&self, hits: u64) -> PrefixCacheStatus {
        PrefixCacheStatus {
            bound_bytes: self.bound,
            held_bytes: *self.lock(),
            hits,
            flushes: self.flushes.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl LoadedModel {
    /// Whether the prefix cache's books are past their bound: the cache must be dropped, with
    /// the model held alone, before the next prompt.
    pub fn prefix_cache_is_full(&self) -> bool {
        self.prefix_cache.as_ref().is_some_and(|c| c.is_full())
    }

    /// Drops the engine's prefix cache if its books hold anything (`only_if_full`: if they are
    /// past their bound), with a prompt whose step fails. The caller must hold the model
    /// alone, or the failing step could take another request's prompt with it.
    pub async fn drop_prefix_cache(&self, only_if_full: bool) -> Result<()> {
        let Some(cache) = &self.prefix_cache else {
            return Ok(());
        };
        let needed = if only_if_full {
            cache.is_full()
        } else {
            cache.holds_any()
        };
        if !needed {
            return Ok(());
        }
        // A sequence whose answer is over may still be in the engine for one step (see
        // `watch`); a round trip through the engine's loop lets that step go first, so the
        // failing prompt below is alone in the engine.
        self.tokenize_text(String::new(), false).await?;
        tracing::info!(
            held_mib = *cache.lock() >> 20,
            bound_mib = cache.bound >> 20,
            "dropping the engine's prefix cache; mistral.rs logs the step it fails for that as \
             an error (index-select invalid index {UNREADABLE_TOKEN})"
        );
        let (tx, mut rx) = mpsc::channel(1);
        let unreadable = RequestMessage::CompletionTokens(vec![UNREADABLE_TOKEN]);
        self.send(EngineJob::deterministic(unreadable).into_request(tx, false))
            .await?;
        match rx.recv().await {
            // The step failed, as it was meant to: the engine dropped its cache on the way.
            Some(Response::CompletionModelError(..) | Response::ModelError(..)) => {
                cache.dropped();
                Ok(())
            }
            Some(_) => Err(Error::Engine(
                "the engine read a token past its vocabulary; its prefix cache was not dropped"
                    .into(),
            )),
            None => Err(Error::Engine("the engine dropped the request".into())),
        }
    }

    /// A sequence of `tokens` tokens that did not go through [`Self::submit`] finished, and
    /// the engine cached it.
    pub(crate) fn prefix_cache_finished(&self, tokens: usize) {
        if let Some(cache) = &self.prefix_cache {
            cache.finished(tokens as u64);
        }
    }

    /// The prefix cache's books and the engine's count of prompts it served from the cache.
    pub fn prefix_cache_status(&self) -> Option<PrefixCacheStatus> {
        let cache = self.prefix_cache.as_ref()?;
        let hits = self
            .model
            .inner()
            .get_logger(None)
            .map(|logger| logger.prefix_cache_stats().0 as u64)
            .unwrap_or_default();
        Some(cache.status(hits))
    }
}

/// Passes the engine's answers on to `out`, counting the tokens of the sequence so the books
/// know what the cache keeps when it ends. A consumer that goes away ends the watch: the
/// engine then cancels the sequence, which it still caches as far as it got.
pub async fn watch(
    cache: std::sync::Arc<PrefixCache>,
    prompt_tokens: usize,
    mut answers: mpsc::Receiver<Response>,
    out: mpsc::Sender<Response>,
) {
    let mut tokens = prompt_tokens as u64;
    let mut counted_by_engine = None;
    loop {
        // The consumer leaving ends the watch at once, so the engine's next send fails as it
        // would without the watch: that is how the engine stops a sequence (and one that ended
        // at its first token still runs a step on).
        let answer = tokio::select! {
            answer = answers.recv() => match answer {
                Some(answer) => answer,
                None => break,
            },
            () = out.closed() => {
                tokens += 1;
                break;
            }
        };
        match &answer {
            Response::Chunk(chunk) => {
                tokens += 1;
                if let Some(usage) = &chunk.usage {
                    counted_by_engine = Some(usage.total_tokens as u64);
                }
            }
            Response::CompletionChunk(_) => tokens += 1,
            Response::Done(done) => counted_by_engine = Some(done.usage.total_tokens as u64),
            Response::CompletionDone(done) => {
                counted_by_engine = Some(done.usage.total_tokens as u64)
            }
            _ => {}
        }
        if out.send(answer).await.is_err() {
            // Cancelled: the engine still caches what it read and wrote, a token more at most.
            tokens += 1;
            break;
        }
    }
    drop(answers);
    // The larger count, so the books err high.
    cache.finished(counted_by_engine.map_or(tokens, |n| n.max(tokens)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_books_count_whole_blocks_twice_and_fill_past_the_bound() {
        let cache = PrefixCache::new(4 * 512 * 100, 100);
        assert_eq!(cache.entry_bytes(1), 2 * 512 * 100);
        assert_eq!(cache.entry_bytes(512), 2 * 512 * 100);
        assert_eq!(cache.entry_bytes(513), 4 * 512 * 100);
        assert!(!cache.holds_any());
        cache.finished(300);
        cache.finished(500);
        assert!(cache.holds_any());
        assert!(
            !cache.is_full(),
            "two blocks' worth each, four in all: at the bound"
        );
        cache.finished(10);
        assert!(cache.is_full());
        assert_eq!(cache.status(3).held_bytes, 6 * 512 * 100);
        assert_eq!(cache.status(3).hits, 3);
    }
}
