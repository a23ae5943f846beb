//! What a model's files say about it, read once at import and kept in the manifest, so that the
//! memory estimator never has to open a 40 GB file again: format, architecture, parameter count,
//! quantization, context length and the hyperparameters of the KV cache.

mod gguf;
mod safetensors;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// How a model's weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightFormat {
    /// One `.gguf` file.
    Gguf,
    /// A Hugging Face directory of `*.safetensors` and `config.json`.
    Safetensors,
    /// A sentence-transformers embedding directory (`modules.json`).
    Embedding,
}

/// Facts about a model. Every field but `format` is optional: the files may not say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// How the weights are stored.
    pub format: WeightFormat,
    /// `llama`, `qwen3`, ... (GGUF `general.architecture`, or config.json `model_type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Parameters, counted from the tensor shapes (all experts included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_count: Option<u64>,
    /// `Q4_K_M`, `Q8_0`, `F16`, `BF16`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// The longest context the model was trained for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    /// Transformer blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<u64>,
    /// Hidden size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_length: Option<u64>,
    /// Attention (query) heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_heads: Option<u64>,
    /// Key/value heads (fewer than query heads with grouped-query attention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_heads: Option<u64>,
    /// Dimension of one head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<u64>,
    /// Experts per MoE layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts: Option<u64>,
    /// Experts active per token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts_used: Option<u64>,
    /// Tokens in the vocabulary (rows of the token-embedding table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<u64>,
    /// The output layer reuses the token-embedding table (no separate `output.weight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tied_embeddings: Option<bool>,
    /// The chat template (Jinja) the model ships, when it ships one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// Bytes of tensor data (weights as stored).
    pub tensor_bytes: u64,
    /// Parameters per tensor type (`q4_K` -> n), for estimates by bits per weight.
    #[serde(default)]
    pub parameters_by_type: BTreeMap<String, u64>,
}

impl ModelMetadata {
    fn empty(format: WeightFormat) -> Self {
        Self {
            format,
            architecture: None,
            parameter_count: None,
            quantization: None,
            context_length: None,
            layers: None,
            embedding_length: None,
            attention_heads: None,
            kv_heads: None,
            head_dim: None,
            experts: None,
            experts_used: None,
            vocab_size: None,
            tied_embeddings: None,
            chat_template: None,
            tensor_bytes: 0,
            parameters_by_type: BTreeMap::new(),
        }
    }
}

/// Reads the metadata of the model at `path` (a `.gguf` file, a model directory or a Hugging
/// Face cache snapshot), as `import` would.
pub fn read_path(path: &Path) -> crate::Result<ModelMetadata> {
    let source = crate::source::scan(path)?;
    let pairs: Vec<(String, &Path)> = source
        .files
        .iter()
        .map(|f| (f.rel.clone(), f.abs.as_path()))
        .collect();
    read(&pairs).map_err(|reason| crate::Error::BadSource {
        path: path.to_path_buf(),
        reason,
    })
}

/// Reads the metadata of a model whose files are `files` (relative path -> absolute path).
pub fn read(files: &[(String, &Path)]) -> Result<ModelMetadata, String> {
    let ggufs: Vec<&Path> = files
        .iter()
        .filter(|(rel, _)| rel.ends_with(".gguf"))
        .map(|(_, p)| *p)
        .collect();
    let find = |name: &str| files.iter().find(|(rel, _)| rel == name).map(|(_, p)| *p);
    if let [gguf] = ggufs.as_slice() {
        if find("config.json").is_none() {
            return gguf::read(gguf);
        }
    }
    // A split GGUF: its parts in order (their names sort so).
    if ggufs.len() > 1 && find("config.json").is_none() {
        let mut parts: Vec<(&String, &Path)> = files
            .iter()
            .filter(|(rel, _)| rel.ends_with(".gguf"))
            .map(|(rel, p)| (rel, *p))
            .collect();
        parts.sort();
        let parts: Vec<&Path> = parts.into_iter().map(|(_, p)| p).collect();
        return gguf::read_split(&parts);
    }
    let config =
        find("config.json").ok_or("expected one .gguf file, or a directory with config.json")?;
    let format = if find("modules.json").is_some() {
        WeightFormat::Embedding
    } else {
        WeightFormat::Safetensors
    };
    let tensors: Vec<&Path> = files
        .iter()
        .filter(|(rel, _)| rel.ends_with(".safetensors"))
        .map(|(_, p)| *p)
        .collect();
    if tensors.is_empty() {
        return Err("the directory has config.json but no .safetensors files".into());
    }
    safetensors::read(format, config, &tensors)
}
