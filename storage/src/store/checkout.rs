//! Handing a model to an engine: lease it (so it is not evicted while loaded), verify its blobs,
//! and materialize a directory of links into the blob store, so that mistral.rs sees an ordinary
//! model directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::maintenance::BlobState;
use super::Store;
use crate::error::IoContext;
use crate::manifest::Manifest;
use crate::name::ModelRef;
use crate::session::decrement;
use crate::{Error, Result};

/// The marker file in a materialized directory; it holds the file list it was built from.
pub(crate) const MARKER: &str = ".porten-model";

/// A model checked out for loading. While it lives, the model counts as loaded and is never
/// evicted or removed.
#[derive(Debug)]
pub struct Checkout {
    store: Arc<Store>,
    model: ModelRef,
    dir: PathBuf,
    manifest: Arc<Manifest>,
}

impl Checkout {
    /// The directory to load from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let model = self.model.clone();
        let released = self.store.locked(|locked| {
            decrement(&mut locked.own.leases, &model);
            Ok(())
        });
        if let Err(e) = released {
            tracing::error!(error = %e, model = %self.model, "could not release a model lease");
        }
    }
}

impl Checkout {
    /// Rehashes every blob (once per process while unchanged); a corrupt one is quarantined and
    /// reported, so it is never served.
    pub fn verify(&self) -> Result<()> {
        for file in &self.manifest.files {
            let (model, path, blake3) =
                (self.model.to_string(), file.path.clone(), file.blake3.hex());
            match self.store.check_blob(&file.blake3)? {
                BlobState::Whole(_) => {}
                BlobState::Corrupt(_) => {
                    return Err(Error::Corrupt {
                        model,
                        file: path,
                        blake3,
                    })
                }
                BlobState::Missing => {
                    return Err(Error::MissingBlob {
                        model,
                        file: path,
                        blake3,
                    })
                }
            }
        }
        Ok(())
    }
}

impl Store {
    /// Leases `model`, verifies every blob (a corrupt one is quarantined and the checkout fails),
    /// and returns the directory to load it from.
    pub fn checkout(self: &Arc<Self>, model: &ModelRef) -> Result<Checkout> {
        let checkout = self.prepare(model)?;
        checkout.verify()?;
        Ok(checkout)
    }

    /// Leases `model` and materializes its directory without hashing anything: for a caller that
    /// verifies later (the server verifies while it loads, not before it binds).
    pub fn prepare(self: &Arc<Self>, model: &ModelRef) -> Result<Checkout> {
        let manifest = self.locked(|locked| {
            let manifest = self.manifest(model)?;
            *locked.own.leases.entry(model.clone()).or_default() += 1;
            Ok(manifest)
        })?;
        // From here the lease is held; dropping the checkout releases it on every error path.
        let checkout = Checkout {
            store: self.clone(),
            model: model.clone(),
            dir: self.layout.materialized(model),
            manifest: manifest.clone(),
        };
        self.locked(|locked| {
            locked.touch(model)?;
            self.materialize(&manifest)
        })?;
        Ok(checkout)
    }

    /// Builds `models-v1/<name>/<tag>/` as symlinks into the blobs, unless it is already built
    /// from the same file list. Built aside and renamed into place.
    fn materialize(&self, manifest: &Manifest) -> Result<()> {
        let dir = self.layout.materialized(&manifest.model);
        let marker = serde_json::to_vec(&manifest.files).expect("file lists serialize");
        if std::fs::read(dir.join(MARKER)).ok().as_deref() == Some(&marker[..]) {
            return Ok(());
        }
        let staging = self.tmp_path("materialize");
        for file in &manifest.files {
            let link = staging.join(&file.path);
            let parent = link.parent().expect("inside staging");
            std::fs::create_dir_all(parent).io("cannot create", parent)?;
            std::os::unix::fs::symlink(self.layout.blob(&file.blake3), &link)
                .io("cannot link", &link)?;
        }
        std::fs::write(staging.join(MARKER), &marker).io("cannot write", &staging)?;
        crate::fsutil::remove_dir_if_present(&dir)?;
        let parent = dir.parent().expect("materialized dirs have parents");
        std::fs::create_dir_all(parent).io("cannot create", parent)?;
        std::fs::rename(&staging, &dir).io("cannot move into place", &dir)
    }
}
