//! What every request handler can see: the configuration, the models, the keys, the metrics.
//! Its own home, so the accept loop and the router both depend on it and not on each other.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::metrics::ObservableGauge;

use super::ApiKeys;
use crate::config::ServerConfig;
use crate::dialects::responses::store::ResponseStore;
use crate::models::ModelRegistry;
use crate::telemetry;

/// What every request handler can see.
pub struct ServerState {
    /// The server section of the configuration.
    pub config: ServerConfig,
    /// The served models.
    pub models: Arc<ModelRegistry>,
    /// Accepted API keys.
    pub api_keys: ApiKeys,
    /// Unix seconds at start-up (the `created` of every model).
    pub started: u64,
    /// Renders `/metrics`; `None` when metrics are off.
    pub metrics: Option<MetricsText>,
    /// Stored Responses API responses.
    pub responses: ResponseStore,
    /// The models' facts and store actions (Ollama's `/api` model management); `None` when the
    /// server runs without a store.
    pub catalog: Option<Arc<dyn crate::catalog::Catalog>>,
    /// The registry's gauges, registered while the server lives.
    _gauges: Vec<ObservableGauge<u64>>,
}

/// Renders every metric as Prometheus text (the binary installs the exporter behind it).
pub type MetricsText = Arc<dyn Fn() -> std::result::Result<String, String> + Send + Sync>;

impl ServerState {
    /// The state of a server starting now, with the registry's gauges registered.
    pub fn new(
        config: ServerConfig,
        models: Arc<ModelRegistry>,
        metrics: Option<MetricsText>,
    ) -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let responses = ResponseStore::new(
            config.responses.store_mb.saturating_mul(1 << 20),
            Duration::from_secs(config.responses.max_age_secs),
        );
        Self {
            api_keys: ApiKeys::new(&config.api_keys),
            responses,
            catalog: None,
            config,
            _gauges: telemetry::register_model_gauges(&models),
            models,
            started,
            metrics,
        }
    }
}
