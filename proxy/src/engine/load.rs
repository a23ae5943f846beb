//! Finding a model's files on local disk and loading them with mistral.rs, never touching the
//! network: a path that does not exist would otherwise be taken for a Hugging Face id.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mistralrs::{
    DeviceMapSetting, EmbeddingModelBuilder, ModelCategory, ModelDType, TextModelBuilder,
    TokenSource,
};

use super::{LoadedModel, ModelKind};
use crate::config::{ModelDtype, ModelFormat, ModelSpec};
use crate::{Error, Result};

/// Where and in which format a model's weights are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// One GGUF file.
    Gguf {
        /// Its directory.
        dir: PathBuf,
        /// Its file name.
        file: String,
    },
    /// A safetensors model directory.
    Safetensors(PathBuf),
    /// A sentence-transformers embedding directory.
    Embedding(PathBuf),
}

/// Checks the disk and decides how to load `spec`; the error says what is missing.
pub fn resolve_source(spec: &ModelSpec) -> Result<ModelSource> {
    let path = &spec.path;
    let fail = |reason: String| Error::ModelLoad {
        id: spec.id.clone(),
        path: path.display().to_string(),
        reason,
    };
    if !path.exists() {
        return Err(fail("no such file or directory".into()));
    }
    // The directory is resolved, not a file's own link: a store model's files are links to
    // blobs named by hash, and a split GGUF's parts are found by their names.
    let path = match (path.is_file(), path.parent(), path.file_name()) {
        (true, Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            dir.canonicalize().map(|dir| dir.join(name))
        }
        _ => path.canonicalize(),
    }
    .map_err(|e| fail(format!("cannot resolve the path: {e}")))?;
    let format = match spec.format {
        ModelFormat::Auto => detect_format(&path).map_err(fail)?,
        explicit => explicit,
    };
    match format {
        ModelFormat::Gguf => gguf_source(&path).map_err(fail),
        ModelFormat::Safetensors => {
            require_files(&path, &["config.json", "tokenizer.json"]).map_err(fail)?;
            Ok(ModelSource::Safetensors(path))
        }
        ModelFormat::Embedding => {
            require_files(&path, &["config.json", "tokenizer.json", "modules.json"])
                .map_err(fail)?;
            Ok(ModelSource::Embedding(path))
        }
        ModelFormat::Auto => unreachable!("detect_format never answers auto"),
    }
}

/// The source `spec` will have once its files are there, for a model fetched on first use:
/// nothing is checked on disk, so the spec must name its format (and a GGUF spec its file).
pub fn expected_source(spec: &ModelSpec) -> Result<ModelSource> {
    let path = spec.path.clone();
    match spec.format {
        ModelFormat::Gguf => {
            let (Some(dir), Some(file)) =
                (path.parent(), path.file_name().and_then(|f| f.to_str()))
            else {
                return Err(Error::Config(format!(
                    "model `{}`: a GGUF model fetched on first use needs its file's path",
                    spec.id
                )));
            };
            Ok(ModelSource::Gguf {
                dir: dir.to_path_buf(),
                file: file.to_string(),
            })
        }
        ModelFormat::Safetensors => Ok(ModelSource::Safetensors(path)),
        ModelFormat::Embedding => Ok(ModelSource::Embedding(path)),
        ModelFormat::Auto => Err(Error::Config(format!(
            "model `{}`: a model fetched on first use needs an explicit format",
            spec.id
        ))),
    }
}

fn detect_format(path: &Path) -> std::result::Result<ModelFormat, String> {
    if path.is_file() {
        return Ok(ModelFormat::Gguf);
    }
    if path.join("modules.json").is_file() {
        return Ok(ModelFormat::Embedding);
    }
    if path.join("config.json").is_file() {
        return Ok(ModelFormat::Safetensors);
    }
    if single_gguf_in(path)?.is_some() {
        return Ok(ModelFormat::Gguf);
    }
    Err(
        "expected a .gguf file, or a directory with config.json (safetensors) or modules.json \
         (embeddings)"
            .into(),
    )
}

fn gguf_source(path: &Path) -> std::result::Result<ModelSource, String> {
    let file = if path.is_file() {
        path.to_path_buf()
    } else {
        single_gguf_in(path)?.ok_or("the directory holds no .gguf file")?
    };
    let dir = file
        .parent()
        .ok_or("a GGUF file needs a parent directory")?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the GGUF file name is not valid UTF-8")?;
    Ok(ModelSource::Gguf {
        dir: dir.to_path_buf(),
        file: name.to_string(),
    })
}

fn single_gguf_in(dir: &Path) -> std::result::Result<Option<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read the directory: {e}"))?;
    let ggufs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    match ggufs.len() {
        0 => Ok(None),
        1 => Ok(ggufs.into_iter().next()),
        n => Err(format!(
            "the directory holds {n} .gguf files; name one file as the path"
        )),
    }
}

fn require_files(dir: &Path, names: &[&str]) -> std::result::Result<(), String> {
    if !dir.is_dir() {
        return Err("expected a model directory".into());
    }
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !dir.join(n).is_file())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {}", missing.join(", ")))
    }
}

/// The dtype safetensors weights are converted to and computed in; `auto` is mistral.rs's
/// choice (F16 on the CPU, which halves their memory against F32).
fn dtype(d: ModelDtype) -> ModelDType {
    match d {
        ModelDtype::Auto => ModelDType::Auto,
        ModelDtype::F32 => ModelDType::F32,
        ModelDtype::F16 => ModelDType::F16,
        ModelDtype::Bf16 => ModelDType::BF16,
    }
}

/// The dtype a GGUF model's activations are computed in (its weights stay quantized). `auto`
/// is F32 on a CPU build: candle's quantized kernels take F32 input, and F16 costs a conversion
/// at every norm, rotary embedding and attention step (measured in docs/benchmarks.md). GPU
/// builds leave it to mistral.rs (BF16 or F16 where the device has them).
fn gguf_activation_dtype(d: ModelDtype) -> ModelDType {
    match d {
        ModelDtype::Auto if cfg!(any(feature = "cuda", feature = "metal")) => ModelDType::Auto,
        ModelDtype::Auto => ModelDType::F32,
        explicit => dtype(explicit),
    }
}

/// The prefix cache a model is loaded with: at most `bound` bytes of finished sequences' KV
/// caches, `bytes_per_token` each; a `bound` of 0 turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixCacheSettings {
    /// What the memory estimate charged for it.
    pub bound: u64,
    /// KV-cache bytes of one token in the engine's dtype.
    pub bytes_per_token: u64,
}

/// Loads a resolved model with mistral.rs (seconds to minutes: weights are read and prepared),
/// with mistral.rs's prefix cache on when `prefix_cache` gives it room: porten's books keep it
/// within that (see [`super::prefix_cache`]). Embedding models have none. `gpu` puts the
/// whole model on that CUDA device: mistral.rs's automatic mapping would split its layers
/// over every GPU by their free memory, which porten's per-device books could not follow.
pub async fn load_model(
    spec: &ModelSpec,
    source: &ModelSource,
    prefix_cache: PrefixCacheSettings,
    gpu: Option<usize>,
) -> Result<LoadedModel> {
    let cached = prefix_cache.bound > 0 && !matches!(source, ModelSource::Embedding(_));
    let load_error = |reason: String| Error::ModelLoad {
        id: spec.id.clone(),
        path: spec.path.display().to_string(),
        reason,
    };
    let on_gpu = gpu
        .map(|ordinal| mistralrs::Device::new_cuda(ordinal).map(|d| (d, DeviceMapSetting::dummy())))
        .transpose()
        .map_err(|e| load_error(format!("CUDA device {}: {e}", gpu.unwrap_or(0))))?;
    let built = match source {
        ModelSource::Gguf { dir, file } => {
            super::gguf::load(super::gguf::GgufLoad {
                dir: &dir.display().to_string(),
                file,
                max_sequences: spec.max_concurrency,
                dtype: gguf_activation_dtype(spec.dtype),
                prefix_cache: cached,
                gpu,
            })
            .await
        }
        ModelSource::Safetensors(dir) => {
            let mut builder = TextModelBuilder::new(dir.display().to_string())
                .with_token_source(TokenSource::None)
                .with_dtype(dtype(spec.dtype))
                .with_max_num_seqs(spec.max_concurrency)
                // On a GPU mistral.rs keeps this many; on the CPU, porten's books bound it.
                .with_prefix_cache_n(cached.then_some(16));
            if let Some((device, mapping)) = on_gpu {
                builder = builder.with_device(device).with_device_mapping(mapping);
            }
            builder.build().await
        }
        ModelSource::Embedding(dir) => {
            let mut builder = EmbeddingModelBuilder::new(dir.display().to_string())
                .with_token_source(TokenSource::None)
                .with_dtype(dtype(spec.dtype))
                .with_max_num_seqs(spec.max_concurrency);
            if let Some((device, mapping)) = on_gpu {
                builder = builder.with_device(device).with_device_mapping(mapping);
            }
            builder.build().await
        }
    };
    let model = built.map_err(|e| load_error(format!("{e:#}")))?;
    let config = model.config().map_err(|e| load_error(e.to_string()))?;
    let kind = match config.category {
        ModelCategory::Embedding => ModelKind::Embedding,
        _ => ModelKind::Chat,
    };
    let grammar_stops = match kind {
        ModelKind::Chat => super::grammar_stops(&model).await,
        ModelKind::Embedding => Vec::new(),
    };
    let end_of_text = super::end_of_text(&model).await;
    Ok(LoadedModel {
        kind,
        generation_defaults: spec.sampling.over(config.generation_defaults),
        grammar_stops,
        end_of_text,
        prefix_cache: cached.then(|| {
            Arc::new(super::prefix_cache::PrefixCache::new(
                prefix_cache.bound,
                prefix_cache.bytes_per_token,
            ))
        }),
        model: Arc::new(model),
    })
}
