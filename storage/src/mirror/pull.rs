//! `porten pull`: read the model's manifest from the mirror, reserve room for the blobs the store
//! lacks (evicting through the store's policy, or failing before a byte is downloaded), fetch
//! them, and write the manifest last.

use std::sync::Arc;

use tracing::Instrument;

use super::Mirror;
use crate::fsutil::now_ms;
use crate::manifest::Manifest;
use crate::name::ModelRef;
use crate::store::ImportProgress;
use crate::telemetry::instruments;
use crate::{Result, Store};

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The manifest now in the store.
    pub manifest: Manifest,
    /// Blobs downloaded.
    pub blobs_fetched: usize,
    /// Blobs the store already held (shared with other models, or an earlier pull).
    pub blobs_present: usize,
    /// Bytes downloaded.
    pub bytes_fetched: u64,
    /// Bytes kept from interrupted downloads.
    pub bytes_resumed: u64,
    /// The store already had this exact model; nothing was transferred.
    pub up_to_date: bool,
}

impl Mirror {
    /// Pulls `model` into `store`.
    pub async fn pull(
        &self,
        store: &Arc<Store>,
        model: &ModelRef,
        progress: &dyn ImportProgress,
    ) -> Result<PullReport> {
        let span = tracing::info_span!("store.pull", model = %model, mirror = %self.url(), bytes = tracing::field::Empty);
        let result = self
            .pull_inner(store, model, progress)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(report) => {
                span.record("bytes", report.bytes_fetched as i64);
                instruments().pulled(
                    if report.up_to_date {
                        "up_to_date"
                    } else {
                        "ok"
                    },
                    report.bytes_fetched,
                );
            }
            Err(e) => {
                let _entered = span.enter();
                tracing::warn!(error = %e, "pull failed");
                instruments().pulled("error", 0);
            }
        }
        result
    }

    async fn pull_inner(
        &self,
        store: &Arc<Store>,
        model: &ModelRef,
        progress: &dyn ImportProgress,
    ) -> Result<PullReport> {
        let remote = self.manifest(model).await?;
        let blobs: Vec<_> = remote.blobs().into_iter().collect();
        if let Ok(local) = store.manifest(model) {
            let all_there = blobs
                .iter()
                .all(|(id, _)| store.layout().blob(id).is_file());
            if local.files == remote.files && all_there {
                return Ok(PullReport {
                    manifest: (*local).clone(),
                    blobs_fetched: 0,
                    blobs_present: blobs.len(),
                    bytes_fetched: 0,
                    bytes_resumed: 0,
                    up_to_date: true,
                });
            }
        }
        let (mut reservation, present) = store.reserve_download(&blobs, model)?;
        let missing: Vec<_> = blobs
            .iter()
            .filter(|(id, _)| !present.contains(id))
            .copied()
            .collect();
        progress.phase("downloading", missing.iter().map(|(_, s)| s).sum());
        let mut report = PullReport {
            manifest: remote.clone(),
            blobs_fetched: 0,
            blobs_present: present.len(),
            bytes_fetched: 0,
            bytes_resumed: 0,
            up_to_date: false,
        };
        for (id, size) in missing {
            let partial = store.layout().partial(&id);
            let fetched = self
                .fetch_blob(&mut reservation, partial, id, size, progress)
                .await?;
            if fetched.downloaded + fetched.resumed == 0 {
                report.blobs_present += 1;
            } else {
                report.blobs_fetched += 1;
            }
            report.bytes_fetched += fetched.downloaded;
            report.bytes_resumed += fetched.resumed;
        }
        progress.phase_done();
        let now = now_ms();
        let manifest = Manifest {
            source: Some(self.url().to_string()),
            created_ms: now,
            last_used_ms: now,
            pinned: false,
            ..remote
        };
        report.manifest = reservation.install(manifest)?;
        tracing::info!(
            files = report.manifest.files.len(),
            fetched_bytes = report.bytes_fetched,
            resumed_bytes = report.bytes_resumed,
            "pulled"
        );
        Ok(report)
    }
}
