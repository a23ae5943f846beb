//! The server's [`Catalog`] over porten's weight store and team mirror: every served model's
//! facts (for Ollama's `/api/tags` and `/api/show`), the check before each load (a mirror model
//! is pulled on first use, a store model's blobs are rehashed), and Ollama's pull, delete and
//! copy. It holds the store leases of the models it serves, so that nothing evicts them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures::future::BoxFuture;
use futures::FutureExt;
use porten_proxy::catalog::{Catalog, ModelFacts, PullProgress, PullUpdate};
use porten_proxy::config::{ModelFormat, ModelSpec};
use porten_proxy::models::{NewModel, Preflight};
use porten_proxy::residency::Device;
use porten_proxy::Error;
use porten_storage::hub::{Hub, HubRef, HubSettings};
use porten_storage::{Checkout, Manifest, Mirror, ModelRef, Store, WeightFormat};

use crate::sizing::shape_of;
use facts::{path_facts, store_facts};
use progress::{PullLog, PullSteps};

mod facts;
mod progress;

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
    /// Store models this server serves, leased (shared, so a rehash runs outside the lock).
    checkouts: HashMap<String, Arc<Checkout>>,
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
                checkouts: checkouts
                    .into_iter()
                    .map(|(id, checkout)| (id, Arc::new(checkout)))
                    .collect(),
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
            // Rehashing takes seconds: not under the lock that listings wait on.
            let held = catalog.books().checkouts.get(&spec.id).cloned();
            match held {
                Some(checkout) => checkout.verify().map_err(|e| e.to_string()),
                None => Ok(()),
            }
        })
    }

    /// What the registry calls to pull a model a request names (`[hub] auto_pull`): the pull
    /// of `/api/pull`, its progress in the log and in `/admin/status`.
    pub fn auto_pull(self: &Arc<Self>) -> porten_proxy::models::AutoPull {
        let catalog = self.clone();
        Arc::new(move |name: &str, progress| catalog.pull(name, progress))
    }

    /// Leases `model` (now in the store) as the served model `id`.
    fn hold(&self, id: &str, model: &ModelRef) -> porten_storage::Result<Arc<Checkout>> {
        let checkout = Arc::new(self.store.prepare(model)?);
        let facts = store_facts(checkout.manifest(), Some(checkout.dir()));
        let mut books = self.books();
        books.remote.remove(id);
        books.facts.insert(id.to_string(), facts);
        books.checkouts.insert(id.to_string(), checkout.clone());
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
        if let Some(hub) = HubRef::parse(id) {
            let hub = hub.map_err(|e| Error::invalid("model", e.to_string()))?;
            return self.pull_from_hub(&hub, progress);
        }
        let model = ModelRef::parse(id).map_err(|e| Error::invalid("model", e.to_string()))?;
        let held = self.books().checkouts.get(id).cloned();
        let checkout = match held {
            Some(checkout) => checkout,
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

impl StoreCatalog {
    /// A model from the Hugging Face Hub (`HF_ENDPOINT`, `HF_TOKEN`), served under its store
    /// name (`hf.co/ORG/REPO:QUANT`).
    fn pull_from_hub(&self, hub: &HubRef, progress: &PullProgress) -> Result<NewModel, Error> {
        let client = Hub::open(HubSettings::from_env(|name| std::env::var(name).ok()))
            .map_err(store_error)?;
        let steps = PullSteps::named(progress.clone(), format!("hf:{}", hub.repo));
        let pulled = tokio::runtime::Handle::current()
            .block_on(client.pull(&self.store, hub, &steps))
            .map_err(|e| match e {
                porten_storage::Error::Hub { reason, .. } => Error::invalid("model", reason),
                other => store_error(other),
            })?;
        tracing::info!(model = %pulled.model, endpoint = %client.endpoint(), downloaded = pulled.downloaded, "pulled from the Hub");
        let served = match pulled.model.tag.as_str() {
            porten_storage::DEFAULT_TAG => pulled.model.name.clone(),
            _ => pulled.model.to_string(),
        };
        let checkout = self.hold(&served, &pulled.model).map_err(store_error)?;
        let _ = progress.send(PullUpdate::status("verifying sha256 digest"));
        checkout.verify().map_err(store_error)?;
        let _ = progress.send(PullUpdate::status("writing manifest"));
        self.new_model(ModelSpec::new(served, ""), &checkout)
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
                    self.books()
                        .checkouts
                        .insert(id.to_string(), Arc::new(again));
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
