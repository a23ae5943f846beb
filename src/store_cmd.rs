//! The store subcommands: import, ls, show, rm, pin, unpin, gc, verify, du.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use porten_storage::{
    FileOutcome, ImportMode, ImportOptions, ModelRef, Problem, Store, StoreConfig,
};

use crate::config::Config;
use crate::progress::{human_bytes, Progress};

/// Opens the store the configuration names.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<Store>> {
    open_store_with(config, crate::plugins::eviction_plugin(config)?)
}

/// Opens the store with `eviction` (a plugin) choosing victims, or the built-in policy.
pub fn open_store_with(
    config: &Config,
    eviction: Option<Arc<porten_plugins::ReloadingEviction>>,
) -> anyhow::Result<Arc<Store>> {
    let path = config.store_path();
    let mut store_config = StoreConfig {
        budget_bytes: config.store_budget_bytes(),
        ..StoreConfig::default()
    };
    if let Some(plugin) = eviction {
        store_config.policy = plugin;
    }
    let store = Store::open(&path, store_config)
        .with_context(|| format!("cannot open the store at {}", path.display()))?;
    Ok(Arc::new(store))
}

/// `porten import`, with `quantize` a GGUF file requantized first.
pub fn import(
    store: &Store,
    path: &Path,
    name: Option<&str>,
    copy: bool,
    quantize: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(target) = quantize {
        return import_quantized(store, path, name, target);
    }
    let name = match name {
        Some(n) => n.to_string(),
        None => porten_storage::source::scan(path)?.suggested_name,
    };
    let mode = if copy {
        ImportMode::Copy
    } else {
        ImportMode::Link
    };
    import_as(store, path, &name, mode, None)
}

fn import_as(
    store: &Store,
    path: &Path,
    name: &str,
    mode: ImportMode,
    made_from: Option<String>,
) -> anyhow::Result<()> {
    let options = ImportOptions {
        model: ModelRef::parse(name)?,
        mode,
        made_from,
    };
    let report = store.import(path, &options, &Progress::new())?;
    let count = |o: FileOutcome| report.files.iter().filter(|(_, x)| *x == o).count();
    println!(
        "imported {} ({}, {} files: {} already stored, {} linked, {} copied)",
        report.manifest.model,
        human_bytes(report.manifest.size()),
        report.files.len(),
        count(FileOutcome::AlreadyStored),
        count(FileOutcome::HardLinked) + count(FileOutcome::Reflinked),
        count(FileOutcome::Copied),
    );
    if let Some(slow) = crate::sizing::slow_on_cpu(&report.manifest.metadata) {
        println!("note: {slow}");
    }
    Ok(())
}

/// Requantizes a GGUF file into a scratch directory inside the store (so that the import
/// links rather than copies it) and imports that, under `name` or the source's name tagged
/// with the type.
fn import_quantized(
    store: &Store,
    path: &Path,
    name: Option<&str>,
    target: &str,
) -> anyhow::Result<()> {
    let target = crate::quantize::parse_target(target)?;
    if !path.is_file() {
        bail!(
            "--quantize takes a .gguf file: {} is not a file",
            path.display()
        );
    }
    let name = match name {
        Some(n) => n.to_string(),
        None => {
            let suggested = ModelRef::parse(&porten_storage::source::scan(path)?.suggested_name)?;
            let base = crate::quantize::without_quantization_suffix(&suggested.name);
            format!("{base}:{}", crate::quantize::tag_of(target))
        }
    };
    let scratch = tempfile::Builder::new()
        .prefix(".quantize-")
        .tempdir_in(store.layout().root())
        .context("cannot make a scratch directory in the store")?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model.gguf");
    let stem = crate::quantize::without_quantization_suffix(
        file_name.strip_suffix(".gguf").unwrap_or(file_name),
    );
    let out = scratch.path().join(format!(
        "{stem}.{}.gguf",
        crate::quantize::tag_of(target).to_ascii_uppercase()
    ));
    let report = crate::quantize::requantize(path, &out, target)?;
    let types: Vec<String> = report
        .tensors_by_type
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    println!(
        "quantized {} to {:?}: tensors {}{}",
        path.display(),
        target,
        types.join(", "),
        match report.fallbacks {
            0 => String::new(),
            n => format!(" ({n} whose rows do not fit its blocks kept Q8_0 or their type)"),
        }
    );
    let made_from = format!("{} (requantized to {target:?})", path.display());
    import_as(store, &out, &name, ImportMode::Link, Some(made_from))
}

/// `porten ls`.
pub fn ls(store: &Store, as_json: bool) -> anyhow::Result<()> {
    let models = store.list()?;
    if as_json {
        let rows: Vec<serde_json::Value> = models
            .iter()
            .map(|m| {
                let manifest = &m.manifest;
                serde_json::json!({
                    "name": manifest.model.to_string(),
                    "size_bytes": manifest.size(),
                    "format": format!("{:?}", manifest.metadata.format).to_lowercase(),
                    "quantization": manifest.metadata.quantization,
                    "last_used_ms": manifest.last_used_ms,
                    "pinned": manifest.pinned,
                    "loaded": m.loaded,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "models": rows }))?
        );
        return Ok(());
    }
    println!(
        "{:<32} {:>10} {:<12} {:<10} {:<17} {:<6} {:<6}",
        "NAME", "SIZE", "FORMAT", "QUANT", "LAST USED", "PINNED", "LOADED"
    );
    for m in models {
        let manifest = &m.manifest;
        println!(
            "{:<32} {:>10} {:<12} {:<10} {:<17} {:<6} {:<6}",
            manifest.model.to_string(),
            human_bytes(manifest.size()),
            format!("{:?}", manifest.metadata.format).to_lowercase(),
            manifest.metadata.quantization.as_deref().unwrap_or("-"),
            ago(manifest.last_used_ms),
            if manifest.pinned { "yes" } else { "no" },
            if m.loaded { "yes" } else { "no" },
        );
    }
    Ok(())
}

/// `porten show`: the manifest as JSON, for people and scripts alike.
pub fn show(store: &Store, name: &str) -> anyhow::Result<()> {
    let manifest = store.manifest(&ModelRef::parse(name)?)?;
    println!("{}", serde_json::to_string_pretty(&*manifest)?);
    Ok(())
}

/// `porten rm`.
pub fn rm(store: &Store, name: &str, force: bool) -> anyhow::Result<()> {
    let model = ModelRef::parse(name)?;
    let freed = store.remove(&model, force)?;
    println!("removed {model}, freed {}", human_bytes(freed));
    Ok(())
}

/// `porten pin` / `porten unpin`.
pub fn pin(store: &Store, name: &str, pinned: bool) -> anyhow::Result<()> {
    let model = ModelRef::parse(name)?;
    store.set_pinned(&model, pinned)?;
    println!("{} {model}", if pinned { "pinned" } else { "unpinned" });
    Ok(())
}

/// `porten gc`.
pub fn gc(store: &Store) -> anyhow::Result<()> {
    let report = store.gc()?;
    println!(
        "removed {} unreferenced blobs ({}) and {} stale model directories",
        report.blobs_removed,
        human_bytes(report.bytes_freed),
        report.stale_links_removed
    );
    Ok(())
}

/// `porten verify`: exit status 1 when anything is wrong.
pub fn verify(store: &Store, name: Option<&str>) -> anyhow::Result<()> {
    let model = name.map(ModelRef::parse).transpose()?;
    let report = store.verify(model.as_ref())?;
    for problem in &report.problems {
        match problem {
            Problem::Corrupt { blob, models } => println!(
                "CORRUPT {blob} (used by {}): quarantined; re-import to repair",
                list(models)
            ),
            Problem::Missing { blob, models } => {
                println!(
                    "MISSING {blob} (used by {}): re-import to repair",
                    list(models)
                )
            }
        }
    }
    println!(
        "checked {} blobs ({}): {} problems",
        report.blobs_checked,
        human_bytes(report.bytes_checked),
        report.problems.len()
    );
    if !report.problems.is_empty() {
        bail!("the store has {} damaged blobs", report.problems.len());
    }
    Ok(())
}

/// `porten du`.
pub fn du(store: &Store) -> anyhow::Result<()> {
    let usage = store.disk_usage()?;
    let budget = usage.budget.map_or("no limit".to_string(), human_bytes);
    println!("budget       {budget}");
    println!("used         {}", human_bytes(usage.used));
    println!("reserved     {}", human_bytes(usage.reserved));
    println!(
        "reclaimable  {} (of which unreferenced: {})",
        human_bytes(usage.reclaimable),
        human_bytes(usage.garbage)
    );
    println!("models       {}", usage.models);
    Ok(())
}

fn list(models: &[String]) -> String {
    if models.is_empty() {
        "no model".into()
    } else {
        models.join(", ")
    }
}

fn ago(ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let secs = now.saturating_sub(ms) / 1000;
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}
