//! A pull's progress: in the log, and as Ollama's `/api/pull` lines.

use std::sync::atomic::{AtomicU64, Ordering};

use porten_proxy::catalog::{PullProgress, PullUpdate};
use porten_storage::{ImportProgress, Manifest};

/// A pull's progress in the log: its size when it starts, then every tenth of the way.
#[derive(Default)]
pub(super) struct PullLog {
    total: AtomicU64,
    done: AtomicU64,
}

impl ImportProgress for PullLog {
    fn phase(&self, _name: &str, total_bytes: u64) {
        self.total.store(total_bytes, Ordering::Relaxed);
        tracing::info!(mib = total_bytes >> 20, "downloading from the mirror");
    }

    fn advance(&self, bytes: u64) {
        let total = self.total.load(Ordering::Relaxed).max(1);
        let before = self.done.fetch_add(bytes, Ordering::Relaxed);
        let (was, now) = (before * 10 / total, (before + bytes) * 10 / total);
        if now > was && now < 10 {
            tracing::info!(percent = now * 10, "downloading from the mirror");
        }
    }
}

/// A pull's progress as Ollama's `pulling <digest>` lines, at most one per percent, beside the
/// log's.
pub(super) struct PullSteps {
    log: PullLog,
    progress: PullProgress,
    digest: String,
    sent_percent: AtomicU64,
}

impl PullSteps {
    pub(super) fn new(progress: PullProgress, manifest: &Manifest) -> Self {
        let digest = manifest
            .files
            .iter()
            .max_by_key(|f| f.size)
            .map(|f| format!("blake3:{}", f.blake3.hex()))
            .unwrap_or_default();
        Self::named(progress, digest)
    }

    /// Progress lines naming the download `digest` (`blake3:...`, `hf:ORG/REPO`).
    pub(super) fn named(progress: PullProgress, digest: String) -> Self {
        Self {
            log: PullLog::default(),
            progress,
            digest,
            sent_percent: AtomicU64::new(u64::MAX),
        }
    }

    fn send(&self) {
        let total = self.log.total.load(Ordering::Relaxed);
        let done = self.log.done.load(Ordering::Relaxed).min(total);
        let percent = done * 100 / total.max(1);
        if self.sent_percent.swap(percent, Ordering::Relaxed) == percent {
            return;
        }
        let short = self.digest.rsplit(':').next().unwrap_or_default();
        let _ = self.progress.send(PullUpdate {
            status: format!("pulling {}", &short[..short.len().min(12)]),
            digest: Some(self.digest.clone()),
            total: Some(total),
            completed: Some(done),
        });
    }
}

impl ImportProgress for PullSteps {
    fn phase(&self, name: &str, total_bytes: u64) {
        self.log.phase(name, total_bytes);
        self.send();
    }

    fn advance(&self, bytes: u64) {
        self.log.advance(bytes);
        self.send();
    }

    fn phase_done(&self) {
        self.send();
    }
}
