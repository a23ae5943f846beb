//! Model files for store tests: a GGUF header written by hand, safetensors directories, and a
//! Hugging Face cache snapshot laid out like `huggingface_hub` leaves it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use porten_storage::{ImportMode, ImportOptions, ModelRef, NoProgress, Store, StoreConfig};
use sha2::Digest;

/// A GGUF v3 file: llama hyperparameters and two tensors (f32 32x8 and q8_0 64x4), plus `extra`
/// bytes of tensor data so the file's content can vary.
pub fn write_gguf(path: &Path, extra: &[u8]) {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&2u64.to_le_bytes()); // tensors
    let kvs: Vec<(&str, u32, Vec<u8>)> = vec![
        ("general.architecture", 8, gguf_str("llama")),
        ("general.file_type", 4, 7u32.to_le_bytes().to_vec()),
        ("llama.context_length", 4, 2048u32.to_le_bytes().to_vec()),
        ("llama.block_count", 4, 2u32.to_le_bytes().to_vec()),
        ("llama.embedding_length", 4, 64u32.to_le_bytes().to_vec()),
        ("llama.attention.head_count", 4, 8u32.to_le_bytes().to_vec()),
        (
            "llama.attention.head_count_kv",
            4,
            2u32.to_le_bytes().to_vec(),
        ),
        ("tokenizer.ggml.tokens", 9, {
            let mut a = 8u32.to_le_bytes().to_vec();
            a.extend_from_slice(&2u64.to_le_bytes());
            a.extend(gguf_str("a"));
            a.extend(gguf_str("b"));
            a
        }),
    ];
    b.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (key, ty, value) in kvs {
        b.extend(gguf_str(key));
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend(value);
    }
    for (name, dims, ty) in [("a.weight", [32u64, 8], 0u32), ("b.weight", [64, 4], 8)] {
        b.extend(gguf_str(name));
        b.extend_from_slice(&2u32.to_le_bytes());
        for d in dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
    }
    b.resize(b.len() + 32 * 8 * 4 + 8 * 34, 0);
    b.extend_from_slice(extra);
    std::fs::write(path, b).unwrap();
}

fn gguf_str(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

/// A safetensors model directory: config.json, one weights file of `weight_bytes` bytes whose
/// content depends on `seed`, and `tokenizer` as tokenizer.json.
pub fn write_safetensors_dir(dir: &Path, seed: u8, weight_bytes: usize, tokenizer: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type":"llama","max_position_embeddings":4096,"num_hidden_layers":2,
            "hidden_size":64,"num_attention_heads":8,"num_key_value_heads":2}"#,
    )
    .unwrap();
    let elements = weight_bytes / 2;
    let header = format!(
        r#"{{"w":{{"dtype":"BF16","shape":[{elements}],"data_offsets":[0,{}]}}}}"#,
        elements * 2
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend((0..elements * 2).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer).unwrap();
}

/// `<cache>/models--org--name/` with blobs named by sha256, a snapshot of symlinks, refs/main.
/// Returns the snapshot directory.
pub fn write_hf_snapshot(cache: &Path, org: &str, name: &str, source_dir: &Path) -> PathBuf {
    let repo = cache.join(format!("models--{org}--{name}"));
    let rev = "0123456789abcdef0123456789abcdef01234567";
    let snapshot = repo.join("snapshots").join(rev);
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), rev).unwrap();
    for entry in std::fs::read_dir(source_dir).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        let sha = format!("{:x}", sha2::Sha256::digest(&bytes));
        std::fs::write(repo.join("blobs").join(&sha), &bytes).unwrap();
        std::os::unix::fs::symlink(
            format!("../../blobs/{sha}"),
            snapshot.join(entry.file_name()),
        )
        .unwrap();
    }
    snapshot
}

/// A store with an optional budget.
pub fn open_store(root: &Path, budget_bytes: Option<u64>) -> Arc<Store> {
    Arc::new(
        Store::open(
            root,
            StoreConfig {
                budget_bytes,
                ..StoreConfig::default()
            },
        )
        .unwrap(),
    )
}

/// Import options for `name` in `mode`.
pub fn options(name: &str, mode: ImportMode) -> ImportOptions {
    ImportOptions {
        model: ModelRef::parse(name).unwrap(),
        mode,
        made_from: None,
    }
}

/// Imports with no progress output.
pub fn import(
    store: &Store,
    path: &Path,
    name: &str,
    mode: ImportMode,
) -> porten_storage::Result<porten_storage::ImportReport> {
    store.import(path, &options(name, mode), &NoProgress)
}

/// Every file under the blob directory.
pub fn blob_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let blobs = root.join("blobs-v1/blake3");
    for fan in std::fs::read_dir(blobs).unwrap().flatten() {
        for blob in std::fs::read_dir(fan.path()).unwrap().flatten() {
            out.push(blob.path());
        }
    }
    out
}

/// Parses a model name in tests.
pub fn model(name: &str) -> ModelRef {
    ModelRef::parse(name).unwrap()
}

/// The names (without tags) of the models in the store, sorted.
pub fn model_names(store: &Store) -> Vec<String> {
    store
        .list()
        .unwrap()
        .iter()
        .map(|m| m.manifest.model.name.clone())
        .collect()
}
