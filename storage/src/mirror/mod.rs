//! The weight mirror: a bucket (or any `object_store` location) that a team's porten nodes pull
//! models from and push models to. Its layout mirrors the store's, so both sides move only the
//! blobs the other lacks:
//!
//! ```text
//! <prefix>/porten-v1/blobs/<blake3>                 content, named by its blake3 hash
//! <prefix>/porten-v1/manifests/<name>/<tag>.json    a model: files -> blobs, metadata
//! ```
//!
//! A blob is uploaded whole (a single put, or a multipart upload that becomes visible only when
//! it completes) before any manifest names it, so a manifest in the mirror never points at a
//! blob that is not fully there.

mod aws_profile;
mod download;
mod pull;
mod push;
mod settings;

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::hash::BlobId;
use crate::manifest::{Manifest, SCHEMA};
use crate::name::ModelRef;
use crate::{Error, Result};

pub use pull::PullReport;
pub use push::{ManifestOutcome, PushReport};
pub use settings::MirrorSettings;

/// A mirror, opened. Cheap to share; every operation is async (tokio).
#[derive(Debug, Clone)]
pub struct Mirror {
    objects: Arc<dyn ObjectStore>,
    root: Path,
    read_only: bool,
    settings: MirrorSettings,
}

impl Mirror {
    /// Opens the mirror the settings name. Nothing is contacted yet.
    pub fn open(settings: MirrorSettings) -> Result<Self> {
        if settings.concurrency == 0 || settings.part_size < 1 << 20 {
            return Err(Error::MirrorConfig(
                "concurrency must be at least 1 and the part size at least 1 MiB".into(),
            ));
        }
        let opened = settings::open_store(&settings)?;
        Ok(Self {
            objects: opened.objects,
            root: opened.prefix.join("porten-v1"),
            read_only: opened.read_only,
            settings,
        })
    }

    /// The mirror's URL, as configured.
    pub fn url(&self) -> &str {
        &self.settings.url
    }

    /// How it transfers.
    pub fn settings(&self) -> &MirrorSettings {
        &self.settings
    }

    fn blob_key(&self, id: &BlobId) -> Path {
        self.root.clone().join("blobs").join(id.hex())
    }

    fn manifests_root(&self) -> Path {
        self.root.clone().join("manifests")
    }

    fn manifest_key(&self, model: &ModelRef) -> Path {
        let mut key = self.manifests_root();
        for part in model.name.split('/') {
            key = key.join(part);
        }
        key.join(format!("{}.json", model.tag))
    }

    /// An `object_store` error as a store error, naming the mirror, the action and the object.
    fn error(&self, action: &'static str, key: &Path, e: object_store::Error) -> Error {
        Error::Mirror {
            mirror: self.settings.url.clone(),
            action,
            key: key.to_string(),
            reason: e.to_string(),
        }
    }

    /// The manifest of `model` in the mirror, checked before anything trusts it.
    pub async fn manifest(&self, model: &ModelRef) -> Result<Manifest> {
        let key = self.manifest_key(model);
        let bytes = match self.objects.get(&key).await {
            Ok(found) => found.bytes().await,
            Err(e) => Err(e),
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::NotInMirror {
                    model: model.to_string(),
                    mirror: self.settings.url.clone(),
                })
            }
            Err(e) => return Err(self.error("read", &key, e)),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::BadMirrorManifest {
                model: model.to_string(),
                reason: e.to_string(),
            })?;
        check_remote_manifest(&manifest, model)?;
        Ok(manifest)
    }

    /// Every model in the mirror, by name. A manifest that cannot be read is skipped with a
    /// warning, so one bad upload does not hide the rest.
    pub async fn list(&self) -> Result<Vec<Manifest>> {
        let root = self.manifests_root();
        let objects: Vec<_> = self
            .objects
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(|e| self.error("list", &root, e))?;
        let mut models = BTreeSet::new();
        for object in objects {
            let Some(rel) = object.location.prefix_match(&root) else {
                continue;
            };
            let parts: Vec<String> = rel.map(|p| p.as_ref().to_string()).collect();
            let Some((file, name)) = parts.split_last() else {
                continue;
            };
            let Some(tag) = file.strip_suffix(".json") else {
                continue;
            };
            match ModelRef::parse(&format!("{}:{tag}", name.join("/"))) {
                Ok(model) => {
                    models.insert(model);
                }
                Err(_) => {
                    tracing::warn!(key = %object.location, "skipping a mirror manifest with an invalid name")
                }
            }
        }
        let mut out = Vec::with_capacity(models.len());
        for model in models {
            match self.manifest(&model).await {
                Ok(manifest) => out.push(manifest),
                Err(e) => tracing::warn!(model = %model, error = %e, "skipping a mirror manifest"),
            }
        }
        Ok(out)
    }
}

/// A manifest from the mirror is input from the network: its name must be the one asked for,
/// and its file paths must stay inside the model's directory when materialized.
fn check_remote_manifest(manifest: &Manifest, model: &ModelRef) -> Result<()> {
    let bad = |reason: String| {
        Err(Error::BadMirrorManifest {
            model: model.to_string(),
            reason,
        })
    };
    if manifest.schema != SCHEMA {
        return bad(format!(
            "schema {} (this porten reads {SCHEMA})",
            manifest.schema
        ));
    }
    if &manifest.model != model {
        return bad(format!("it names the model `{}`", manifest.model));
    }
    if manifest.files.is_empty() {
        return bad("it lists no files".into());
    }
    let mut seen = BTreeSet::new();
    for file in &manifest.files {
        let safe = !file.path.starts_with('/')
            && file
                .path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'));
        if !safe {
            return bad(format!(
                "the file path `{}` leaves the model directory",
                file.path
            ));
        }
        if !seen.insert(file.path.as_str()) {
            return bad(format!("the file `{}` is listed twice", file.path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::FileEntry;
    use crate::metadata::{ModelMetadata, WeightFormat};

    fn manifest(model: &str, paths: &[&str]) -> Manifest {
        let metadata: ModelMetadata = serde_json::from_value(serde_json::json!({
            "format": WeightFormat::Gguf, "tensor_bytes": 1
        }))
        .unwrap();
        Manifest {
            schema: SCHEMA,
            model: ModelRef::parse(model).unwrap(),
            files: paths
                .iter()
                .map(|p| FileEntry {
                    path: p.to_string(),
                    size: 1,
                    blake3: blake3::hash(p.as_bytes()).into(),
                    sha256: None,
                })
                .collect(),
            metadata,
            source: None,
            created_ms: 0,
            last_used_ms: 0,
            pinned: false,
        }
    }

    #[test]
    fn remote_manifests_must_name_the_model_and_keep_their_files_inside_it() {
        let m = ModelRef::parse("org/m:q4").unwrap();
        assert!(
            check_remote_manifest(&manifest("org/m:q4", &["a.gguf", "sub/x.json"]), &m).is_ok()
        );
        for paths in [
            &["../../etc/passwd"][..],
            &["/abs"],
            &["a//b"],
            &["./a"],
            &["a", "a"],
            &[],
        ] {
            assert!(
                check_remote_manifest(&manifest("org/m:q4", paths), &m).is_err(),
                "{paths:?}"
            );
        }
        let error = check_remote_manifest(&manifest("other:q4", &["a"]), &m).unwrap_err();
        assert!(
            error.to_string().contains("names the model `other:q4`"),
            "{error}"
        );
    }

    #[test]
    fn keys_follow_the_mirror_layout() {
        let mirror = Mirror::open(MirrorSettings::new("file:///srv/m")).unwrap();
        let id: BlobId = "ab".repeat(32).parse().unwrap();
        assert_eq!(
            mirror.blob_key(&id).to_string(),
            format!("srv/m/porten-v1/blobs/{}", "ab".repeat(32))
        );
        assert_eq!(
            mirror
                .manifest_key(&ModelRef::parse("org/m:q4").unwrap())
                .to_string(),
            "srv/m/porten-v1/manifests/org/m/q4.json"
        );
    }
}
