//! The models this process serves: each one's spec, load state and admission door.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::admission::{Admission, Slot};
use crate::config::ModelSpec;
use crate::engine::{load_model, resolve_source, LoadedModel, ModelKind, ModelSource};
use crate::{Error, Result};

/// Where a model is in its life.
#[derive(Clone)]
pub enum LoadState {
    /// mistral.rs is reading the weights; requests wait.
    Loading,
    /// Serving.
    Ready(Arc<LoadedModel>),
    /// Loading failed; requests fail with the reason.
    Failed(String),
}

impl LoadState {
    /// `loading`, `loaded` or `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            LoadState::Loading => "loading",
            LoadState::Ready(_) => "loaded",
            LoadState::Failed(_) => "failed",
        }
    }
}

/// A check run just before a model loads, off the async threads (the server uses it to verify
/// store blobs); an error fails that model's load with the message.
pub type Preflight = Arc<dyn Fn(&ModelSpec) -> std::result::Result<(), String> + Send + Sync>;

/// One served model.
pub struct ModelSlot {
    /// How it was declared.
    pub spec: ModelSpec,
    source: ModelSource,
    state: watch::Sender<LoadState>,
    admission: Admission,
}

impl ModelSlot {
    /// What it serves, known from its files before it is loaded.
    pub fn kind(&self) -> ModelKind {
        match self.source {
            ModelSource::Embedding(_) => ModelKind::Embedding,
            _ => ModelKind::Chat,
        }
    }

    /// Its current state.
    pub fn state(&self) -> LoadState {
        self.state.borrow().clone()
    }

    /// Takes a place in the model's queue, then waits until the model is loaded.
    pub async fn admit(&self) -> Result<(Slot, Arc<LoadedModel>)> {
        let slot = self.admission.enter(&self.spec.id).await?;
        let mut state = self.state.subscribe();
        let ready = state
            .wait_for(|s| !matches!(s, LoadState::Loading))
            .await
            .map_err(|_| Error::ShuttingDown)?
            .clone();
        match ready {
            LoadState::Ready(model) => Ok((slot, model)),
            LoadState::Failed(reason) => Err(Error::ModelUnavailable {
                model: self.spec.id.clone(),
                reason,
            }),
            LoadState::Loading => unreachable!("waited until not loading"),
        }
    }

    async fn load(&self, preflight: Option<Preflight>) {
        if let Some(check) = preflight {
            let spec = self.spec.clone();
            let checked = tokio::task::spawn_blocking(move || check(&spec))
                .await
                .unwrap_or_else(|e| Err(format!("preflight panicked: {e}")));
            if let Err(reason) = checked {
                tracing::error!(model = %self.spec.id, error = %reason, "model failed its preflight check");
                self.state.send_replace(LoadState::Failed(reason));
                return;
            }
        }
        let state = match load_model(&self.spec, &self.source).await {
            Ok(model) => {
                tracing::info!(model = %self.spec.id, kind = model.kind.as_str(), "model loaded");
                LoadState::Ready(Arc::new(model))
            }
            Err(e) => {
                tracing::error!(model = %self.spec.id, error = %e, "model failed to load");
                LoadState::Failed(e.to_string())
            }
        };
        self.state.send_replace(state);
    }
}

/// All served models, by id.
pub struct ModelRegistry {
    slots: BTreeMap<String, Arc<ModelSlot>>,
    preflight: Option<Preflight>,
}

impl ModelRegistry {
    /// Checks every spec against the disk (no loading yet); the first problem is the error.
    pub fn resolve(specs: &[ModelSpec]) -> Result<Self> {
        let mut slots = BTreeMap::new();
        for spec in specs {
            spec.validate()?;
            let source = resolve_source(spec)?;
            let slot = ModelSlot {
                spec: spec.clone(),
                source,
                state: watch::Sender::new(LoadState::Loading),
                admission: Admission::new(spec.max_concurrency, spec.max_queue),
            };
            if slots.insert(spec.id.clone(), Arc::new(slot)).is_some() {
                return Err(Error::Config(format!(
                    "model id `{}` is declared twice",
                    spec.id
                )));
            }
        }
        Ok(Self {
            slots,
            preflight: None,
        })
    }

    /// Runs `check` before each model loads.
    pub fn with_preflight(mut self, check: Preflight) -> Self {
        self.preflight = Some(check);
        self
    }

    /// Loads every model, one after the other (two loads at once would only fight for memory
    /// bandwidth). Failures are recorded in the model's state.
    pub async fn load_all(&self) {
        for slot in self.slots.values() {
            slot.load(self.preflight.clone()).await;
        }
    }

    /// The model called `id`.
    pub fn get(&self, id: &str) -> Result<&Arc<ModelSlot>> {
        self.slots
            .get(id)
            .ok_or_else(|| Error::ModelNotFound(id.to_string()))
    }

    /// Every model, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ModelSlot>> {
        self.slots.values()
    }

    /// Stops admitting requests to every model.
    pub fn close(&self) {
        for slot in self.slots.values() {
            slot.admission.close();
        }
    }
}
