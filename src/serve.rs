//! `porten serve`: resolve models, bind, announce the address, load, serve until a signal.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use opentelemetry::metrics::ObservableGauge;
use porten_proxy::config::ModelSpec;
use porten_proxy::http::MetricsText;
use porten_proxy::models::{ModelRegistry, Residency};
use porten_proxy::residency::{Device, ModelShape};
use porten_proxy::BoundServer;
use porten_storage::{Checkout, DiskUsage, Manifest, Mirror, ModelRef, Store, DEFAULT_TAG};

use crate::config::Config;
use crate::sizing::{detect_devices, shape_of};

/// Runs the server until SIGINT or SIGTERM.
/// `metrics` renders `/metrics` (none: metrics are off).
pub async fn serve(config: Config, metrics: Option<MetricsText>) -> anyhow::Result<()> {
    let fleet = config.fleet.clone();
    let (server, store, models) = bind(config, metrics).await?;
    let addr = server.local_addr()?;
    // A stable line on stdout, for scripts and tests that asked for port 0.
    println!("porten listening on http://{addr}");
    tracing::info!(%addr, "listening");
    crate::fleet::join::spawn(&fleet, models, store.clone(), addr.port());
    let result = server.run(shutdown_signal()).await;
    store.end_session();
    result?;
    Ok(())
}

/// A server for `porten run` when none answers: on a free port of 127.0.0.1, serving in this
/// process until it exits. Its address.
pub async fn spawn_local(mut config: Config) -> anyhow::Result<std::net::SocketAddr> {
    config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let (server, store, _) = bind(config, None).await?;
    let addr = server.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = server.run(std::future::pending()).await {
            tracing::error!(error = %e, "the in-process server stopped");
        }
        store.end_session();
    });
    Ok(addr)
}

/// Resolves the models, opens the store and the mirror, and binds: everything before serving.
async fn bind(
    mut config: Config,
    metrics: Option<MetricsText>,
) -> anyhow::Result<(BoundServer, Arc<Store>, Arc<ModelRegistry>)> {
    raise_file_limit();
    tracing::info!(kernels = %crate::cpu::kernels(), "cpu");
    let plugins = crate::plugins::Plugins::load(&config)?;
    plugins.watch();
    let store = crate::store_cmd::open_store_with(&config, plugins.eviction.clone())?;
    let _store_gauges = store_gauges(&store);
    let mirror = config.mirror.settings().map(Mirror::open).transpose()?;
    let remote = choose_models(&store, mirror.as_ref(), &mut config).await?;
    let checkouts = tokio::task::block_in_place(|| checkout_store_models(&store, &mut config))?;
    let device = Device::of_this_build();
    let devices = detect_devices(&config, device, true);
    for budget in &devices.budgets {
        tracing::info!(
            device = budget.index,
            name = %budget.name,
            budget_mib = budget.budget_bytes.map(|b| b >> 20),
            source = %budget.source,
            keep_alive = %config.memory.keep_alive,
            runs_on = device.as_str(),
            "memory budget"
        );
    }
    let shapes = shapes_of(&config.models, &checkouts, &remote, device);
    let fetched_on_load = remote.keys().cloned().collect();
    let catalog = crate::catalog::StoreCatalog::new(
        store.clone(),
        mirror,
        device,
        remote,
        checkouts,
        &config.models,
    );
    let residency = Residency {
        devices: devices.budgets,
        probe: devices.probe,
        gpus_seen: devices.gpus_seen,
        keep_alive: config.memory.keep_alive,
        device,
        shapes,
        fetched_on_load,
        preflight: Some(catalog.preflight()),
        auto_pull: config.hub.auto_pull.then(|| catalog.auto_pull()),
        ..Residency::default()
    };
    let residency = match &plugins.placement {
        Some(plugin) => Residency {
            policy: plugin.clone(),
            ..residency
        },
        None => residency,
    };
    tokio::spawn(reload_on_sighup(Arc::new(plugins)));
    // Every model path is checked before the port is taken: a typo is a start-up error.
    let models = Arc::new(ModelRegistry::new(&config.models, residency)?);
    for slot in models.all() {
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
        .with_context(|| format!("cannot listen on {}", config.server.listen))?
        .with_catalog(catalog);
    tracing::info!(models = config.models.len(), "models resolved");
    Ok((server, store, models))
}

/// Every connection is a file: the soft limit goes up to the hard one before anything opens.
fn raise_file_limit() {
    match porten_proxy::http::file_limit::raise_to_hard() {
        Ok(limit) if limit.soft > limit.was => tracing::info!(
            limit = limit.soft,
            raised_from = limit.was,
            "open-file limit"
        ),
        Ok(limit) => tracing::info!(limit = limit.soft, hard = limit.hard, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
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

/// Settles which models are served. With none configured: every model in the store, under its
/// name (`smollm2`, or `name:tag` for tags other than `latest`), and every model in the mirror
/// that the store lacks. A configured store model that is not in the store must be in the
/// mirror. Returns the mirror's manifests of the models to pull on first use, by id, with their
/// specs pointed at where the pull will put them.
async fn choose_models(
    store: &Arc<Store>,
    mirror: Option<&Mirror>,
    config: &mut Config,
) -> anyhow::Result<HashMap<String, Manifest>> {
    let id_of = |model: &ModelRef| {
        if model.tag == DEFAULT_TAG {
            model.name.clone()
        } else {
            model.to_string()
        }
    };
    let mut remote = HashMap::new();
    if config.models.is_empty() {
        let local = tokio::task::block_in_place(|| store.list())?;
        for summary in &local {
            config
                .models
                .push(ModelSpec::new(id_of(&summary.manifest.model), ""));
        }
        if let Some(mirror) = mirror {
            match mirror.list().await {
                Ok(models) => {
                    for manifest in models {
                        if !local.iter().any(|l| l.manifest.model == manifest.model) {
                            remote.insert(id_of(&manifest.model), manifest);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the mirror; serving the store's models only")
                }
            }
        }
        if config.models.is_empty() && remote.is_empty() {
            // As Ollama starts empty: models can arrive by /api/pull or `porten run hf://...`.
            tracing::warn!(
                "no models yet: import one (`porten import FILE --name NAME`), pull one \
                 (`porten pull hf://ORG/REPO:QUANT`, or POST /api/pull while serving), add \
                 [[models]] to the configuration file, or pass --model ID=PATH"
            );
        }
        for id in remote.keys() {
            config.models.push(ModelSpec::new(id.clone(), ""));
        }
    } else if let Some(mirror) = mirror {
        for spec in config
            .models
            .iter()
            .filter(|s| s.path.as_os_str().is_empty())
        {
            let model = ModelRef::parse(&spec.id)?;
            if matches!(
                store.manifest(&model),
                Err(porten_storage::Error::ModelNotFound(_))
            ) {
                let manifest = mirror
                    .manifest(&model)
                    .await
                    .with_context(|| format!("model `{}` is not in the store", spec.id))?;
                remote.insert(spec.id.clone(), manifest);
            }
        }
    }
    for spec in config.models.iter_mut() {
        if let Some(manifest) = remote.get(&spec.id) {
            let dir = store.layout().materialized(&manifest.model);
            crate::catalog::point_at(spec, &dir, manifest)
                .with_context(|| format!("the mirror's `{}`", spec.id))?;
        }
    }
    Ok(remote)
}

/// Points every store model (a spec without a path) at its materialized directory (its GGUF
/// file there), leasing it for the life of the process so that nothing evicts it.
fn checkout_store_models(
    store: &Arc<Store>,
    config: &mut Config,
) -> anyhow::Result<HashMap<String, Checkout>> {
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
        // A GGUF model by its file (the first part of a split one), wherever it sits inside.
        crate::catalog::point_at(spec, checkout.dir(), checkout.manifest())
            .with_context(|| format!("model `{}`", spec.id))?;
        checkouts.insert(spec.id.clone(), checkout);
    }
    Ok(checkouts)
}

/// Each model's shape from its metadata: the manifest's for store models, the files' for the
/// others. A model whose files cannot be read this way is sized from its file sizes instead.
fn shapes_of(
    specs: &[ModelSpec],
    checkouts: &HashMap<String, Checkout>,
    remote: &HashMap<String, Manifest>,
    device: Device,
) -> HashMap<String, ModelShape> {
    let mut shapes = HashMap::new();
    for spec in specs {
        let metadata = match (checkouts.get(&spec.id), remote.get(&spec.id)) {
            (Some(checkout), _) => Ok(checkout.manifest().metadata.clone()),
            (None, Some(manifest)) => Ok(manifest.metadata.clone()),
            (None, None) => porten_storage::metadata::read_path(&spec.path),
        };
        match metadata {
            Ok(meta) => {
                if device == Device::Cpu {
                    if let Some(slow) = crate::sizing::slow_on_cpu(&meta) {
                        tracing::warn!(model = %spec.id, "{slow}");
                    }
                }
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

/// SIGHUP reloads the policy plugins (they also reload when their files change).
async fn reload_on_sighup(plugins: Arc<crate::plugins::Plugins>) {
    #[cfg(unix)]
    if let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the policy plugins");
            let plugins = plugins.clone();
            let _ = tokio::task::spawn_blocking(move || plugins.reload()).await;
        }
    }
}

pub(crate) async fn shutdown_signal() {
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
