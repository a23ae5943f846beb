//! What the catalog says of each model: from the store's manifest, or from the files of a
//! model configured by path.

use std::path::{Path, PathBuf};

use porten_proxy::catalog::ModelFacts;
use porten_storage::{Manifest, ModelMetadata, WeightFormat};

/// A store model's facts: its manifest's, with the chat template read from its files when they
/// are on disk (manifests written before porten kept the template lack it).
pub(super) fn store_facts(manifest: &Manifest, dir: Option<&Path>) -> ModelFacts {
    let mut facts = facts_of(&manifest.metadata);
    facts.size_bytes = manifest.size();
    facts.modified_ms = manifest.created_ms;
    facts.digest = manifest
        .files
        .iter()
        .max_by_key(|f| f.size)
        .map(|f| f.blake3.hex())
        .unwrap_or_default();
    if facts.chat_template.is_none() {
        if let Some(dir) = dir {
            let file = match manifest.metadata.format {
                WeightFormat::Gguf => manifest
                    .files
                    .iter()
                    .find(|f| f.path.ends_with(".gguf"))
                    .map(|f| dir.join(&f.path)),
                _ => Some(dir.to_path_buf()),
            };
            facts.chat_template = file
                .and_then(|f| porten_storage::metadata::read_path(&f).ok())
                .and_then(|m| m.chat_template);
        }
    }
    facts
}

/// A model configured by path: its metadata read from its files; its digest hashes its path,
/// size and modification time (hashing the weights would take seconds per gigabyte).
pub(super) fn path_facts(path: &Path) -> Option<ModelFacts> {
    let meta = porten_storage::metadata::read_path(path).ok()?;
    let mut facts = facts_of(&meta);
    let (size, modified) = files_size_and_mtime(path);
    facts.size_bytes = size;
    facts.modified_ms = modified;
    facts.digest = blake3::hash(format!("{}:{size}:{modified}", path.display()).as_bytes())
        .to_hex()
        .to_string();
    Some(facts)
}

fn files_size_and_mtime(path: &Path) -> (u64, u64) {
    let files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    } else {
        vec![path.to_path_buf()]
    };
    let mut size = 0;
    let mut modified = 0;
    for file in files {
        if let Ok(meta) = std::fs::metadata(&file) {
            size += meta.len();
            let ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            modified = modified.max(ms);
        }
    }
    (size, modified)
}

fn facts_of(meta: &ModelMetadata) -> ModelFacts {
    ModelFacts {
        format: match meta.format {
            WeightFormat::Gguf => "gguf".into(),
            _ => "safetensors".into(),
        },
        family: meta.architecture.clone(),
        parameter_count: meta.parameter_count,
        quantization: meta.quantization.clone(),
        size_bytes: meta.tensor_bytes,
        context_length: meta.context_length,
        embedding_length: meta.embedding_length,
        block_count: meta.layers,
        head_count: meta.attention_heads,
        head_count_kv: meta.kv_heads,
        vocab_size: meta.vocab_size,
        chat_template: meta.chat_template.clone(),
        ..ModelFacts::default()
    }
}
