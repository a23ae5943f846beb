//! `porten serve`: resolve models, bind, announce the address, load, serve until a signal.

use std::sync::Arc;

use std::collections::HashMap;

use anyhow::{bail, Context};
use opentelemetry::metrics::ObservableGauge;
use porten_proxy::config::ModelSpec;
use porten_proxy::http::MetricsText;
use porten_proxy::models::{ModelRegistry, Preflight, Residency};
use porten_proxy::residency::{Device, ModelShape};
use porten_proxy::BoundServer;
use porten_storage::{Checkout, DiskUsage, ModelRef, Store, DEFAULT_TAG};

use crate::config::Config;
use crate::sizing::{memory_budget, shape_of};

/// Runs the server until SIGINT or SIGTERM.
/// `metrics` renders `/metrics` (none: metrics are off).
pub async fn serve(mut config: Config, metrics: Option<MetricsText>) -> anyhow::Result<()> {
    let store = crate::store_cmd::open_store(&config)?;
    let _store_gauges = store_gauges(&store);
    let checkouts = tokio::task::block_in_place(|| checkout_store_models(&store, &mut config))?;
    let device = Device::of_this_build();
    let (budget, budget_source) = memory_budget(&config, device);
    tracing::info!(
        budget_mib = budget.map(|b| b >> 20),
        source = %budget_source,
        keep_alive = %config.memory.keep_alive,
        device = device.as_str(),
        "memory budget"
    );
    let residency = Residency {
        budget,
        keep_alive: config.memory.keep_alive,
        device,
        shapes: shapes_of(&config.models, &checkouts, device),
        preflight: Some(verify_before_load(checkouts)),
        ..Residency::default()
    };
    // Every model path is checked before the port is taken: a typo is a start-up error.
    let models = Arc::new(ModelRegistry::new(&config.models, residency)?);
    for slot in models.iter() {
        let e = &slot.estimate;
        tracing::info!(
            model = %slot.spec.id,
            total_mib = e.total >> 20,
            weights_mib = e.weights >> 20,
            kv_cache_mib = e.kv_cache >> 20,
            overhead_mib = e.overhead >> 20,
            context = slot.load_settings.context,
            sequences = slot.load_settings.sequences,
            "memory estimate"
        );
    }
    let server = BoundServer::bind(config.server.clone(), models.clone(), metrics)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = server.local_addr()?;
    // A stable line on stdout, for scripts and tests that asked for port 0.
    println!("porten listening on http://{addr}");
    tracing::info!(%addr, models = config.models.len(), "listening");
    let result = server.run(shutdown_signal()).await;
    store.end_session();
    result?;
    Ok(())
}

/// `porten.store.used` and `porten.store.budget`, read from the store at each collection.
fn store_gauges(store: &Arc<Store>) -> Vec<ObservableGauge<u64>> {
    let meter = opentelemetry::global::meter(porten_proxy::telemetry::METER_NAME);
    let gauge =
        |name: &'static str, description: &'static str, read: fn(&DiskUsage) -> Option<u64>| {
            let store = Arc::downgrade(store);
            meter
                .u64_observable_gauge(name)
                .with_unit("By")
                .with_description(description)
                .with_callback(move |observer| {
                    let usage = store.upgrade().map(|s| s.disk_usage());
                    if let Some(value) = usage.and_then(|u| u.ok()).as_ref().and_then(read) {
                        observer.observe(value, &[]);
                    }
                })
                .build()
        };
    vec![
        gauge(
            "porten.store.used",
            "Bytes of weights in the store, with writes in flight",
            |u| Some(u.used + u.reserved),
        ),
        gauge(
            "porten.store.budget",
            "The store's disk budget (absent when there is no limit)",
            |u| u.budget,
        ),
    ]
}

/// Points every store model (a spec without a path) at its materialized directory, leasing it for
/// the life of the process so that nothing evicts it. With no models configured at all, every
/// model in the store is served, under its name (`smollm2`, or `name:tag` for tags other than
/// `latest`).
fn checkout_store_models(
    store: &Arc<Store>,
    config: &mut Config,
) -> anyhow::Result<HashMap<String, Checkout>> {
    if config.models.is_empty() {
        for summary in store.list()? {
            let model = &summary.manifest.model;
            let id = if model.tag == DEFAULT_TAG {
                model.name.clone()
            } else {
                model.to_string()
            };
            config.models.push(ModelSpec::new(id, ""));
        }
        if config.models.is_empty() {
            bail!(
                "no models to serve: import one (`porten import FILE --name NAME`), add [[models]] \
                 to the configuration file, or pass --model ID=PATH"
            );
        }
    }
    let mut checkouts = HashMap::new();
    for spec in config
        .models
        .iter_mut()
        .filter(|s| s.path.as_os_str().is_empty())
    {
        let model = ModelRef::parse(&spec.id)?;
        let checkout = store
            .prepare(&model)
            .with_context(|| format!("model `{}`", spec.id))?;
        spec.path = checkout.dir().to_path_buf();
        checkouts.insert(spec.id.clone(), checkout);
    }
    Ok(checkouts)
}

/// Each model's shape from its metadata: the manifest's for store models, the files' for the
/// others. A model whose files cannot be read this way is sized from its file sizes instead.
fn shapes_of(
    specs: &[ModelSpec],
    checkouts: &HashMap<String, Checkout>,
    device: Device,
) -> HashMap<String, ModelShape> {
    let mut shapes = HashMap::new();
    for spec in specs {
        let metadata = match checkouts.get(&spec.id) {
            Some(checkout) => Ok(checkout.manifest().metadata.clone()),
            None => porten_storage::metadata::read_path(&spec.path),
        };
        match metadata {
            Ok(meta) => {
                shapes.insert(spec.id.clone(), shape_of(&meta, spec.dtype, device));
            }
            Err(e) => tracing::warn!(
                model = %spec.id,
                error = %e,
                "cannot read the model's metadata; sizing it from its files"
            ),
        }
    }
    shapes
}

/// Rehashes a store model's blobs just before it loads: a corrupt blob fails that model (and is
/// quarantined), never the server.
fn verify_before_load(checkouts: HashMap<String, Checkout>) -> Preflight {
    Arc::new(move |spec: &ModelSpec| match checkouts.get(&spec.id) {
        Some(checkout) => checkout.verify().map_err(|e| e.to_string()),
        None => Ok(()),
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
