//! Gauges read from the model registry when metrics are collected (a scrape of `/metrics` or an
//! OTLP export), so recording costs nothing between collections.

use std::sync::{Arc, Weak};

use opentelemetry::metrics::ObservableGauge;
use opentelemetry::KeyValue;

use crate::models::ModelRegistry;

/// Reads one gauge's values (with their attributes) from the registry.
type ReadGauge = fn(&ModelRegistry, &mut Vec<(u64, Vec<KeyValue>)>);

/// Registers the queue, loaded-model and memory gauges of `models`. Keep the returned handles
/// as long as the registry serves.
pub fn register_model_gauges(models: &Arc<ModelRegistry>) -> Vec<ObservableGauge<u64>> {
    let meter = opentelemetry::global::meter(super::METER_NAME);
    let gauge =
        |name: &'static str, unit: &'static str, description: &'static str, read: ReadGauge| {
            let models: Weak<ModelRegistry> = Arc::downgrade(models);
            meter
                .u64_observable_gauge(name)
                .with_unit(unit)
                .with_description(description)
                .with_callback(move |observer| {
                    let Some(models) = models.upgrade() else {
                        return;
                    };
                    let mut values = Vec::new();
                    read(&models, &mut values);
                    for (value, attrs) in values {
                        observer.observe(value, &attrs);
                    }
                })
                .build()
        };
    vec![
        gauge(
            "porten.model.queue.depth",
            "{request}",
            "Requests waiting for a model: for its load or for a free sequence",
            |models, out| {
                let status = models.status();
                for (slot, residency) in models.slots_with_residency(status) {
                    let depth = (residency.waiting + slot.queued()) as u64;
                    out.push((
                        depth,
                        vec![KeyValue::new("gen_ai.request.model", residency.id)],
                    ));
                }
            },
        ),
        gauge(
            "porten.model.requests.active",
            "{request}",
            "Requests a model is answering now",
            |models, out| {
                for residency in models.status().models {
                    let active = residency.in_flight as u64;
                    out.push((
                        active,
                        vec![KeyValue::new("gen_ai.request.model", residency.id)],
                    ));
                }
            },
        ),
        gauge(
            "porten.models.loaded",
            "{model}",
            "Models loaded and ready to answer",
            |models, out| {
                let status = models.status();
                let loaded = status.models.iter().filter(|m| m.state == "loaded").count();
                out.push((loaded as u64, Vec::new()));
            },
        ),
        gauge(
            "porten.memory.reserved",
            "By",
            "Memory reserved for loading, loaded and unloading models",
            |models, out| out.push((models.status().reserved_bytes, Vec::new())),
        ),
        gauge(
            "porten.memory.budget",
            "By",
            "The memory budget for models (absent when there is no limit)",
            |models, out| {
                if let Some(budget) = models.status().budget_bytes {
                    out.push((budget, Vec::new()));
                }
            },
        ),
    ]
}
