//! The mirror subcommands: pull, push, search and `ls --remote`.

use std::sync::Arc;

use anyhow::Context;
use porten_storage::hub::{Hub, HubRef, HubSettings};
use porten_storage::mirror::ManifestOutcome;
use porten_storage::{Mirror, ModelRef, Store};

use crate::config::Config;
use crate::progress::{human_bytes, Progress};

/// Opens the configured mirror, or says how to configure one.
pub fn open_mirror(config: &Config) -> anyhow::Result<Mirror> {
    let settings = config.mirror.settings().context(
        "no mirror configured: set PORTEN_MIRROR (s3://bucket/prefix, file:///path, ...), \
         pass --mirror, or add [mirror] url to porten.toml",
    )?;
    Ok(Mirror::open(settings)?)
}

/// `porten pull NAME[:TAG]`.
pub async fn pull(store: &Arc<Store>, mirror: &Mirror, name: &str) -> anyhow::Result<()> {
    let model = ModelRef::parse(name)?;
    let report = mirror.pull(store, &model, &Progress::new()).await?;
    if report.up_to_date {
        println!("{model} is up to date");
    } else {
        println!(
            "pulled {model} ({}, {} files: {} blobs downloaded ({}), {} already stored{})",
            human_bytes(report.manifest.size()),
            report.manifest.files.len(),
            report.blobs_fetched,
            human_bytes(report.bytes_fetched),
            report.blobs_present,
            if report.bytes_resumed > 0 {
                format!(", {} resumed", human_bytes(report.bytes_resumed))
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// `porten pull hf://ORG/REPO[@REVISION][:QUANT]`: from the Hugging Face Hub at
/// `HF_ENDPOINT` (huggingface.co by default), with `HF_TOKEN` for private and gated repos.
pub async fn pull_from_hub(store: &Arc<Store>, hub: &HubRef) -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).ok();
    let client = Hub::open(HubSettings::from_env(env))?;
    let pulled = client.pull(store, hub, &Progress::new()).await?;
    if pulled.up_to_date {
        println!("{} is up to date", pulled.model);
        return Ok(());
    }
    let size = store.manifest(&pulled.model).map(|m| m.size()).unwrap_or(0);
    println!(
        "pulled {} from {} ({}, {} downloaded)",
        pulled.model,
        client.endpoint(),
        human_bytes(size),
        human_bytes(pulled.downloaded)
    );
    Ok(())
}

/// `porten push NAME[:TAG]`.
pub async fn push(store: &Store, mirror: &Mirror, name: &str) -> anyhow::Result<()> {
    let model = ModelRef::parse(name)?;
    let report = mirror.push(store, &model, &Progress::new()).await?;
    let manifest = match report.manifest {
        ManifestOutcome::Created => "manifest created",
        ManifestOutcome::Replaced => "manifest replaced",
        ManifestOutcome::Unchanged => "manifest unchanged",
    };
    println!(
        "pushed {model} to {}: {} blobs uploaded ({}), {} already there, {manifest}",
        mirror.url(),
        report.blobs_uploaded,
        human_bytes(report.bytes_uploaded),
        report.blobs_present,
    );
    Ok(())
}

/// `porten search [QUERY]` and `porten ls --remote`: the mirror's models, and whether the local
/// store has each.
pub async fn list(store: &Store, mirror: &Mirror, query: Option<&str>) -> anyhow::Result<()> {
    let query = query.map(str::to_lowercase).unwrap_or_default();
    let models = mirror.list().await?;
    println!(
        "{:<32} {:>10} {:<12} {:<10} {:<6}",
        "NAME", "SIZE", "FORMAT", "QUANT", "LOCAL"
    );
    for manifest in models
        .iter()
        .filter(|m| m.model.to_string().to_lowercase().contains(&query))
    {
        let local = store
            .manifest(&manifest.model)
            .is_ok_and(|m| m.files == manifest.files);
        println!(
            "{:<32} {:>10} {:<12} {:<10} {:<6}",
            manifest.model.to_string(),
            human_bytes(manifest.size()),
            format!("{:?}", manifest.metadata.format).to_lowercase(),
            manifest.metadata.quantization.as_deref().unwrap_or("-"),
            if local { "yes" } else { "no" },
        );
    }
    Ok(())
}
