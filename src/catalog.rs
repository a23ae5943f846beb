//! The server's [`Catalog`] over porten's weight store and team mirror: every served model's
//! facts (for Ollama's `/api/tags` and `/api/show`), the check before each load (a mirror model
//! is pulled on first use, a store model's blobs are rehashed), and Ollama's pull, delete and
//! copy. It holds the store leases of the models it serves, so that nothing evicts them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures::future::BoxFuture;
use futures::FutureExt;
use porten_proxy::catalog::{Catalog, ModelFacts, PullProgress, PullUpdate};
use porten_proxy::config::{ModelFormat, ModelSpec};
use porten_proxy::models::{NewModel, Preflight};
use porten_proxy::residency::Device;
use porten_proxy::Error;
use porten_storage::{
    Checkout, ImportProgress, Manifest, Mirror, ModelMetadata, ModelRef, Store, WeightFormat,
};

use crate::sizing::shape_of;

/// The store, the mirror, and what this server holds of them.
pub struct StoreCatalog {
    /// Itself, for the pulls that outlive a call.
    me: std::sync::Weak<StoreCatalog>,
    store: Arc<Store>,
    mirror: Option<Mirror>,
    device: Device,
    books: Mutex<Books>,
}

#[derive(Default)]
struct Books {
    /// Mirror models not in the store yet, by id.
    remote: HashMap<String, Manifest>,
    /// Store models this server serves, leased.
    checkouts: HashMap<String, Checkout>,
    /// Every served model's facts.
    facts: HashMap<String, ModelFacts>,
}

impl StoreCatalog {
    /// The catalog of `specs`: store models (`checkouts`), mirror models (`remote`) and
    /// models configured by path.
    pub fn new(
        store: Arc<Store>,
        mirror: Option<Mirror>,
        device: Device,
        remote: HashMap<String, Manifest>,
        checkouts: HashMap<String, Checkout>,
        specs: &[ModelSpec],
    ) -> Arc<Self> {
        let mut facts = HashMap::new();
        for spec in specs {
            let known = match (checkouts.get(&spec.id), remote.get(&spec.id)) {
                (Some(checkout), _) => Some(store_facts(checkout.manifest(), Some(checkout.dir()))),
                (None, Some(manifest)) => Some(store_facts(manifest, None)),
                (None, None) => path_facts(&spec.path),
            };
            if let Some(known) = known {
                facts.insert(spec.id.clone(), known);
            }
        }
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            store,
            mirror,
            device,
            books: Mutex::new(Books {
                remote,
                checkouts,
                facts,
            }),
        })
    }

    fn arc(&self) -> Arc<Self> {
        self.me
            .upgrade()
            .expect("the catalog is alive while it is called")
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Just before a model loads: pulls it from the mirror if it is not in the store yet (the
    /// request that caused the load waits; the scheduler runs one load per model at a time, so
    /// concurrent requests share the pull), then rehashes its blobs, so that a corrupt blob
    /// fails that model (and is quarantined), never the server.
    pub fn preflight(self: &Arc<Self>) -> Preflight {
        let catalog = self.clone();
        Arc::new(move |spec: &ModelSpec| {
            let remote = catalog.books().remote.get(&spec.id).cloned();
            if let (Some(manifest), Some(mirror)) = (remote, &catalog.mirror) {
                let model = &manifest.model;
                tokio::runtime::Handle::current()
                    .block_on(mirror.pull(&catalog.store, model, &PullLog::default()))
                    .map_err(|e| format!("cannot pull `{model}` from the mirror: {e}"))?;
                catalog.hold(&spec.id, model).map_err(|e| e.to_string())?;
            }
            let books = catalog.books();
            match books.checkouts.get(&spec.id) {
                Some(checkout) => checkout.verify().map_err(|e| e.to_string()),
                None => Ok(()),
            }
        })
    }

    /// Leases `model` (now in the store) as the served model `id`.
    fn hold(&self, id: &str, model: &ModelRef) -> porten_storage::Result<Checkout> {
        let checkout = self.store.prepare(model)?;
        let facts = store_facts(checkout.manifest(), Some(checkout.dir()));
        let mut books = self.books();
        books.remote.remove(id);
        books.facts.insert(id.to_string(), facts);
        books
            .checkouts
            .insert(id.to_string(), self.store.prepare(model)?);
        Ok(checkout)
    }

    fn new_model(&self, spec: ModelSpec, checkout: &Checkout) -> anyhow::Result<NewModel> {
        let mut spec = spec;
        point_at(&mut spec, checkout.dir(), checkout.manifest())?;
        let shape = shape_of(&checkout.manifest().metadata, spec.dtype, self.device);
        Ok(NewModel {
            spec,
            shape: Some(shape),
        })
    }

    fn pull_blocking(&self, id: &str, progress: &PullProgress) -> Result<NewModel, Error> {
        let send = |update: PullUpdate| {
            let _ = progress.send(update);
        };
        send(PullUpdate::status("pulling manifest"));
        let model = ModelRef::parse(id).map_err(|e| Error::invalid("model", e.to_string()))?;
        let held = self
            .books()
            .checkouts
            .get(id)
            .map(|c| self.store.prepare(&c.manifest().model));
        let checkout = match held {
            Some(checkout) => checkout.map_err(store_error)?,
            None => {
                let Some(mirror) = &self.mirror else {
                    return Err(Error::ModelNotFound(id.to_string()));
                };
                let handle = tokio::runtime::Handle::current();
                let manifest = handle
                    .block_on(mirror.manifest(&model))
                    .map_err(|e| match e {
                        porten_storage::Error::NotInMirror { .. } => {
                            Error::ModelNotFound(id.to_string())
                        }
                        other => store_error(other),
                    })?;
                let log = PullSteps::new(progress.clone(), &manifest);
                handle
                    .block_on(mirror.pull(&self.store, &model, &log))
                    .map_err(store_error)?;
                self.hold(id, &model).map_err(store_error)?
            }
        };
        send(PullUpdate::status("verifying sha256 digest"));
        checkout.verify().map_err(store_error)?;
        send(PullUpdate::status("writing manifest"));
        self.new_model(ModelSpec::new(id, ""), &checkout)
            .map_err(|e| Error::Store(format!("{e:#}")))
    }
}

impl Catalog for StoreCatalog {
    fn facts(&self, id: &str) -> Option<ModelFacts> {
        self.books().facts.get(id).cloned()
    }

    fn pull(
        &self,
        id: &str,
        progress: PullProgress,
    ) -> BoxFuture<'static, porten_proxy::Result<NewModel>> {
        let id = id.to_string();
        let catalog = self.arc();
        async move {
            tokio::task::spawn_blocking(move || catalog.pull_blocking(&id, &progress))
                .await
                .unwrap_or_else(|e| Err(Error::Store(format!("the pull panicked: {e}"))))
        }
        .boxed()
    }

    fn delete(&self, id: &str) -> porten_proxy::Result<()> {
        let checkout = self.books().checkouts.remove(id);
        let Some(checkout) = checkout else {
            if self.books().remote.contains_key(id) {
                return Err(Error::Unsupported(format!(
                    "`{id}` is in the team mirror, not in this store; porten does not delete \
                     from the mirror"
                )));
            }
            return Err(Error::Unsupported(format!(
                "`{id}` is served from a path named in the configuration; remove it there"
            )));
        };
        let model = checkout.manifest().model.clone();
        if checkout.manifest().pinned {
            self.books().checkouts.insert(id.to_string(), checkout);
            return Err(Error::ModelBusy(format!(
                "model `{id}` is pinned; `porten unpin {model}` first"
            )));
        }
        drop(checkout);
        match self.store.remove(&model, false) {
            Ok(_) => {
                self.books().facts.remove(id);
                tracing::info!(model = %id, "model deleted from the store");
                Ok(())
            }
            Err(e) => {
                if let Ok(again) = self.store.prepare(&model) {
                    self.books().checkouts.insert(id.to_string(), again);
                }
                Err(store_error(e))
            }
        }
    }

    fn copy(&self, spec: &ModelSpec, to: &str) -> porten_proxy::Result<NewModel> {
        let from = match self.books().checkouts.get(&spec.id) {
            Some(checkout) => checkout.manifest().model.clone(),
            None => {
                return Err(Error::Unsupported(format!(
                    "only models in porten's store can be copied; `{}` is not in it",
                    spec.id
                )))
            }
        };
        let target =
            ModelRef::parse(to).map_err(|e| Error::invalid("destination", e.to_string()))?;
        self.store.copy(&from, &target).map_err(store_error)?;
        let checkout = self.hold(to, &target).map_err(store_error)?;
        let copy = ModelSpec {
            id: to.to_string(),
            ..spec.clone()
        };
        self.new_model(copy, &checkout)
            .map_err(|e| Error::Store(format!("{e:#}")))
    }
}

fn store_error(e: porten_storage::Error) -> Error {
    match e {
        porten_storage::Error::ModelBusy { .. } => Error::ModelBusy(e.to_string()),
        porten_storage::Error::ModelNotFound(model) => Error::ModelNotFound(model),
        other => Error::Store(other.to_string()),
    }
}

/// Points `spec` at the model's materialized directory (its `.gguf` file, for GGUF).
pub fn point_at(spec: &mut ModelSpec, dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    (spec.path, spec.format) = match manifest.metadata.format {
        WeightFormat::Gguf => {
            let gguf = manifest
                .files
                .iter()
                .find(|f| f.path.ends_with(".gguf"))
                .with_context(|| format!("`{}` lists no .gguf file", manifest.model))?;
            (dir.join(&gguf.path), ModelFormat::Gguf)
        }
        WeightFormat::Safetensors => (dir.to_path_buf(), ModelFormat::Safetensors),
        WeightFormat::Embedding => (dir.to_path_buf(), ModelFormat::Embedding),
    };
    Ok(())
}

/// A store model's facts: its manifest's, with the chat template read from its files when they
/// are on disk (manifests written before porten kept the template lack it).
fn store_facts(manifest: &Manifest, dir: Option<&Path>) -> ModelFacts {
    let mut facts = facts_of(&manifest.metadata);
    facts.size_bytes = manifest.size();
    facts.modified_ms = manifest.created_ms;
    facts.digest = manifest
        .files
        .iter()
        .max_by_key(|f| f.size)
        .map(|f| f.blake3.hex())
        .unwrap_or_default();
    if facts.chat_template.is_none() {
        if let Some(dir) = dir {
            let file = match manifest.metadata.format {
                WeightFormat::Gguf => manifest
                    .files
                    .iter()
                    .find(|f| f.path.ends_with(".gguf"))
                    .map(|f| dir.join(&f.path)),
                _ => Some(dir.to_path_buf()),
            };
            facts.chat_template = file
                .and_then(|f| porten_storage::metadata::read_path(&f).ok())
                .and_then(|m| m.chat_template);
        }
    }
    facts
}

/// A model configured by path: its metadata read from its files; its digest hashes its path,
/// size and modification time (hashing the weights would take seconds per gigabyte).
fn path_facts(path: &Path) -> Option<ModelFacts> {
    let meta = porten_storage::metadata::read_path(path).ok()?;
    let mut facts = facts_of(&meta);
    let (size, modified) = files_size_and_mtime(path);
    facts.size_bytes = size;
    facts.modified_ms = modified;
    facts.digest = blake3::hash(format!("{}:{size}:{modified}", path.display()).as_bytes())
        .to_hex()
        .to_string();
    Some(facts)
}

fn files_size_and_mtime(path: &Path) -> (u64, u64) {
    let files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    } else {
        vec![path.to_path_buf()]
    };
    let mut size = 0;
    let mut modified = 0;
    for file in files {
        if let Ok(meta) = std::fs::metadata(&file) {
            size += meta.len();
            let ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            modified = modified.max(ms);
        }
    }
    (size, modified)
}

fn facts_of(meta: &ModelMetadata) -> ModelFacts {
    ModelFacts {
        format: match meta.format {
            WeightFormat::Gguf => "gguf".into(),
            _ => "safetensors".into(),
        },
        family: meta.architecture.clone(),
        parameter_count: meta.parameter_count,
        quantization: meta.quantization.clone(),
        size_bytes: meta.tensor_bytes,
        context_length: meta.context_length,
        embedding_length: meta.embedding_length,
        block_count: meta.layers,
        head_count: meta.attention_heads,
        head_count_kv: meta.kv_heads,
        vocab_size: meta.vocab_size,
        chat_template: meta.chat_template.clone(),
        ..ModelFacts::default()
    }
}

/// A pull's progress in the log: its size when it starts, then every tenth of the way.
#[derive(Default)]
struct PullLog {
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
struct PullSteps {
    log: PullLog,
    progress: PullProgress,
    digest: String,
    sent_percent: AtomicU64,
}

impl PullSteps {
    fn new(progress: PullProgress, manifest: &Manifest) -> Self {
        let digest = manifest
            .files
            .iter()
            .max_by_key(|f| f.size)
            .map(|f| f.blake3.hex())
            .unwrap_or_default();
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
        let _ = self.progress.send(PullUpdate {
            status: format!("pulling {}", &self.digest[..self.digest.len().min(12)]),
            digest: Some(format!("blake3:{}", self.digest)),
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
