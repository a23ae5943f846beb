//! Stored responses, for `previous_response_id`, `GET` and `DELETE`: in memory, bounded by
//! size and age (`[server.responses]`), lost when porten restarts. Each holds the response
//! object and the whole conversation up to it, so a continuation needs nothing else.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use serde_json::Value;

use super::wire::ResponseObject;
use crate::generation::Turn;

/// One stored response.
#[derive(Debug, Clone)]
pub struct Stored {
    /// What `GET` returns.
    pub object: ResponseObject,
    /// The conversation up to and including this response's output (without instructions,
    /// which a continuation does not inherit).
    pub conversation: Vec<Turn>,
    /// The items the request sent, for `GET .../input_items`.
    pub input_items: Vec<Value>,
}

impl Stored {
    /// Roughly the bytes it takes in memory, its weight in the store.
    fn weight(&self) -> u32 {
        let turns: usize = self
            .conversation
            .iter()
            .map(|t| {
                t.text.len()
                    + t.tool_calls
                        .iter()
                        .map(|c| c.id.len() + c.name.len() + c.arguments.len())
                        .sum::<usize>()
                    + 64
            })
            .sum();
        let object = serde_json::to_vec(&self.object).map_or(0, |b| b.len());
        let inputs: usize = self.input_items.iter().map(|v| v.to_string().len()).sum();
        u32::try_from(turns + object + inputs).unwrap_or(u32::MAX)
    }
}

/// The bounded store.
#[derive(Clone)]
pub struct ResponseStore {
    cache: Cache<String, Arc<Stored>>,
}

impl ResponseStore {
    /// A store of at most `max_bytes` (roughly), keeping each response at most `max_age`.
    pub fn new(max_bytes: u64, max_age: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, stored: &Arc<Stored>| stored.weight())
                .time_to_live(max_age)
                .build(),
        }
    }

    /// Keeps `stored` under its id.
    pub fn put(&self, stored: Stored) {
        self.cache
            .insert(stored.object.id.clone(), Arc::new(stored));
    }

    /// The response `id`, while it is kept.
    pub fn get(&self, id: &str) -> Option<Arc<Stored>> {
        self.cache.get(id)
    }

    /// Forgets `id`; whether it was there.
    pub fn remove(&self, id: &str) -> bool {
        self.cache.remove(id).is_some()
    }
}
