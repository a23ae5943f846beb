//! Reads `config.json` and the JSON headers of `*.safetensors` files (never the tensor data).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::{ModelMetadata, WeightFormat};

/// The `chat_template` of a `tokenizer_config.json` (a string; the list form of several
/// named templates gives its `default`), when there is one.
fn chat_template(tokenizer_config: &Path) -> Option<String> {
    let text = std::fs::read_to_string(tokenizer_config).ok()?;
    let config: Value = serde_json::from_str(&text).ok()?;
    match config.get("chat_template")? {
        Value::String(t) => Some(t.clone()),
        Value::Array(named) => named
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
        _ => None,
    }
}

/// A header larger than this is not a real safetensors header.
const MAX_HEADER: u64 = 100 << 20;

pub fn read(
    format: WeightFormat,
    config: &Path,
    tensors: &[&Path],
) -> Result<ModelMetadata, String> {
    let mut meta = ModelMetadata::empty(format);
    meta.chat_template = chat_template(&config.with_file_name("tokenizer_config.json"));
    let text = std::fs::read_to_string(config)
        .map_err(|e| format!("cannot read {}: {e}", config.display()))?;
    let config: Value =
        serde_json::from_str(&text).map_err(|e| format!("config.json is not JSON: {e}"))?;
    // Multimodal configs keep the language model's numbers under `text_config`.
    let text_config = config.get("text_config").unwrap_or(&config);
    let int = |key: &str| {
        text_config
            .get(key)
            .or_else(|| config.get(key))
            .and_then(Value::as_u64)
    };
    meta.architecture = text_config
        .get("model_type")
        .or_else(|| config.get("model_type"))
        .and_then(Value::as_str)
        .map(str::to_string);
    meta.context_length = int("max_position_embeddings");
    meta.vocab_size = int("vocab_size");
    meta.tied_embeddings = text_config
        .get("tie_word_embeddings")
        .or_else(|| config.get("tie_word_embeddings"))
        .and_then(Value::as_bool);
    meta.layers = int("num_hidden_layers");
    meta.embedding_length = int("hidden_size");
    meta.attention_heads = int("num_attention_heads");
    meta.kv_heads = int("num_key_value_heads").or(meta.attention_heads);
    meta.head_dim = int("head_dim")
        .or_else(|| Some(meta.embedding_length? / meta.attention_heads.filter(|h| *h > 0)?));
    meta.experts = int("num_local_experts")
        .or_else(|| int("num_experts"))
        .or_else(|| int("n_routed_experts"))
        .filter(|n| *n > 0);
    meta.experts_used = int("num_experts_per_tok").filter(|n| *n > 0);
    let mut params = 0u64;
    for path in tensors {
        for (dtype, n, bytes) in tensor_table(path)? {
            *meta.parameters_by_type.entry(dtype).or_default() += n;
            params = params.saturating_add(n);
            meta.tensor_bytes = meta.tensor_bytes.saturating_add(bytes);
        }
    }
    meta.parameter_count = Some(params);
    meta.quantization = config
        .get("quantization_config")
        .and_then(|q| q.get("quant_method"))
        .and_then(Value::as_str)
        .map(str::to_uppercase)
        .or_else(|| {
            meta.parameters_by_type
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(t, _)| t.clone())
        });
    Ok(meta)
}

/// (dtype, elements, bytes) for each tensor in one file.
fn tensor_table(path: &Path) -> Result<Vec<(String, u64, u64)>, String> {
    let bad = |why: String| {
        format!(
            "{} is not a readable safetensors file: {why}",
            path.display()
        )
    };
    let mut file = File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| bad(e.to_string()))?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(bad(format!("header length {len}")));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(e.to_string()))?;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&header).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for (name, tensor) in header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = tensor
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("tensor {name} has no dtype")))?;
        let n = tensor
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("tensor {name} has no shape")))?
            .iter()
            .map(|d| d.as_u64().unwrap_or(0))
            .product::<u64>();
        let bytes = match tensor.get("data_offsets").and_then(Value::as_array) {
            Some(o) if o.len() == 2 => o[1]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(o[0].as_u64().unwrap_or(0)),
            _ => return Err(bad(format!("tensor {name} has no data_offsets"))),
        };
        out.push((dtype.to_string(), n, bytes));
    }
    Ok(out)
}
