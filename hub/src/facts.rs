//! What each node reports about itself: its memory budget, what is reserved, the models it
//! has loaded or is loading, and the models whose weights are in its store.

use serde::{Deserialize, Serialize};

/// Whether a node's model can serve yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelState {
    /// Loaded: requests are served.
    Loaded,
    /// Loading: requests queue on the node until it is loaded.
    Loading,
}

/// One model a node holds in memory (or is loading).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFacts {
    /// Its name.
    pub model: String,
    /// Loaded or loading.
    pub state: ModelState,
    /// Bytes the node charges it.
    pub bytes: u64,
    /// Requests it is serving now.
    pub in_flight: u32,
    /// Requests waiting on the node for it.
    pub queued: u32,
    /// Milliseconds since its last request finished (0 while busy).
    pub idle_ms: u64,
    /// Milliseconds since it finished loading.
    pub loaded_ms: u64,
}

impl ModelFacts {
    /// Serving or with requests waiting: never unloaded to make room.
    pub fn busy(&self) -> bool {
        self.in_flight > 0 || self.queued > 0
    }
}

/// One node's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// Its name (`--node-name`).
    pub name: String,
    /// Bytes its loaded models may take together.
    pub budget_bytes: u64,
    /// Bytes reserved now for loading, loaded and unloading models.
    pub reserved_bytes: u64,
    /// Models loaded or loading.
    pub models: Vec<ModelFacts>,
    /// Models whose weights are in its store (a load needs no pull).
    pub store: Vec<String>,
    /// Models it can load (from its store or its mirror), with the bytes it estimates each
    /// needs there.
    #[serde(default)]
    pub catalog: Vec<Offer>,
}

/// A model a node can load, and the bytes it would charge it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Its name.
    pub model: String,
    /// The node's estimate of its memory, in bytes.
    pub bytes: u64,
}

impl NodeFacts {
    /// Bytes a load can reserve without unloading anything.
    pub fn free_bytes(&self) -> u64 {
        self.budget_bytes.saturating_sub(self.reserved_bytes)
    }

    /// Its facts about `model`, when it holds it.
    pub fn model(&self, model: &str) -> Option<&ModelFacts> {
        self.models.iter().find(|m| m.model == model)
    }

    /// Its estimate for `model`, when it can load it.
    pub fn offer(&self, model: &str) -> Option<u64> {
        self.catalog
            .iter()
            .find(|o| o.model == model)
            .map(|o| o.bytes)
    }

    /// Whether its store has `model`'s weights.
    pub fn has_weights(&self, model: &str) -> bool {
        self.store.iter().any(|m| m == model)
    }
}
