//! The `[server]` and `[[models]]` sections of porten's configuration, owned by the proxy that
//! uses them. The binary embeds them in its one config file and applies env and CLI overrides.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::residency::KeepAlive;
use crate::{Error, Result};

mod connections;

pub use connections::ConnectionLimits;

/// How much memory loaded models may take, and how long idle ones stay (`[memory]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// MiB that loaded models may take together on each device (`PORTEN_VRAM_BUDGET_MB`):
    /// GPU memory with CUDA (per GPU), the GPU's share of unified memory on Metal, RAM on
    /// the CPU. Unset: 90% of what each device has free at start-up, as the probe reads it;
    /// no limit when no probe can read the device.
    pub budget_mb: Option<u64>,
    /// How device memory is read (`PORTEN_MEMORY_PROBE`): `auto` (NVML on CUDA builds, macOS
    /// on Metal builds, system memory on the CPU), `cpu`, `nvml`, or `file:PATH` (a JSON list
    /// of devices, read again at every look: for devices porten cannot see, and for tests).
    /// Unset is `auto`.
    pub probe: Option<String>,
    /// How long a model stays loaded after its last request (`PORTEN_KEEP_ALIVE`): seconds or
    /// `"30s"`, `"5m"`, `"1h"`; `-1` keeps models until memory is needed.
    pub keep_alive: KeepAlive,
}

/// How the HTTP server listens and guards its door.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (`PORTEN_LISTEN`). Port 0 picks a free port; the bound address is
    /// printed on stdout as `porten listening on http://ADDR`.
    pub listen: SocketAddr,
    /// API keys accepted as `Authorization: Bearer KEY` (`PORTEN_API_KEYS`, comma-separated).
    /// Empty means no authentication.
    pub api_keys: Vec<String>,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish before the server exits.
    pub shutdown_grace_secs: u64,
    /// Stored responses of the Responses API (`[server.responses]`).
    pub responses: ResponsesConfig,
    /// Connection limits and timeouts (`[server.connections]`).
    pub connections: ConnectionLimits,
}

/// How many Responses API responses are kept for `previous_response_id` and `GET`, and for how
/// long: in memory, so a restart forgets them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponsesConfig {
    /// MiB the stored responses may take together; past it the least useful go first.
    /// 0 keeps none.
    pub store_mb: u64,
    /// Seconds a stored response is kept after it was made.
    pub max_age_secs: u64,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        Self {
            store_mb: 64,
            max_age_secs: 24 * 60 * 60,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_keys: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            shutdown_grace_secs: 30,
            responses: ResponsesConfig::default(),
            connections: ConnectionLimits::default(),
        }
    }
}

impl ServerConfig {
    /// Explains what is wrong with the values, if anything.
    pub fn validate(&self) -> Result<()> {
        if self.max_body_bytes < 1024 {
            return Err(Error::Config(format!(
                "server.max_body_bytes = {} is too small to hold a request; use at least 1024",
                self.max_body_bytes
            )));
        }
        if self.responses.max_age_secs == 0 {
            return Err(Error::Config(
                "server.responses.max_age_secs must be at least 1".into(),
            ));
        }
        if self.api_keys.iter().any(|k| k.trim().is_empty()) {
            return Err(Error::Config(
                "server.api_keys contains an empty key".into(),
            ));
        }
        self.connections.validate()
    }
}

/// What kind of weights a model path holds; `auto` decides from the files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// A `.gguf` file means GGUF; a directory with `modules.json` means an embedding model;
    /// a directory with `config.json` means safetensors.
    #[default]
    Auto,
    /// One GGUF file (tokenizer and chat template inside).
    Gguf,
    /// A Hugging Face style directory: `config.json`, `*.safetensors`, `tokenizer.json`.
    Safetensors,
    /// A sentence-transformers style embedding directory (`modules.json`, `1_Pooling/`).
    Embedding,
}

/// The precision weights are computed in, where the format leaves a choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelDtype {
    /// F32 activations for GGUF models on the CPU; otherwise mistral.rs's choice (F16 on the
    /// CPU, BF16 where the GPU supports it).
    #[default]
    Auto,
    /// 32-bit floats.
    F32,
    /// 16-bit floats.
    F16,
    /// bfloat16.
    Bf16,
}

/// One model served by this process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The name clients put in `"model"`.
    pub id: String,
    /// A `.gguf` file or a model directory on local disk. Never fetched from the network.
    /// Left out (empty), the model is the one named `id` in porten's weight store, which the
    /// binary resolves to a directory before the server starts.
    #[serde(default)]
    pub path: PathBuf,
    /// What the path holds; `auto` looks at the files.
    #[serde(default)]
    pub format: ModelFormat,
    /// Compute precision: the activations of a GGUF model (its weights stay quantized), the
    /// weights and activations of safetensors and embedding models.
    #[serde(default)]
    pub dtype: ModelDtype,
    /// Requests handed to the engine at once; the engine batches them.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Requests allowed to wait for a free slot; past that, 503 with `Retry-After`.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// Tokens of context per sequence its KV cache is sized for in the memory estimate
    /// [default: 4096, or less if the model was trained for less].
    #[serde(default)]
    pub context_length: Option<u64>,
    /// MiB of finished requests' KV cache the engine may keep, so that a prompt starting the
    /// way an earlier one did (an agent's next turn, a shared system prompt) is not read
    /// again; charged to the memory estimate [default: room for one finished sequence at full
    /// context, twice its KV cache as resident memory measured it; 0 turns it off].
    #[serde(default)]
    pub prefix_cache_mb: Option<u64>,
    /// How long it stays loaded after its last request [default: `[memory] keep_alive`].
    #[serde(default)]
    pub keep_alive: Option<KeepAlive>,
    /// Load it at start-up instead of on its first request.
    #[serde(default)]
    pub preload: bool,
    /// Sampling for requests that leave it out (`[models.sampling]`), as an Ollama Modelfile's
    /// `PARAMETER` lines: these win over the model's `generation_config.json`, a request's own
    /// values win over both. Agents such as Codex send no temperature at all.
    #[serde(default)]
    pub sampling: SamplingDefaults,
}

/// A model's default sampling (`[models.sampling]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingDefaults {
    /// Temperature, 0 (greedy) to 2.
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, (0, 1].
    pub top_p: Option<f64>,
    /// Sample from the k most likely tokens.
    pub top_k: Option<usize>,
    /// Min-p sampling, 0 to 1.
    pub min_p: Option<f64>,
    /// Repetition penalty, > 0.
    pub repetition_penalty: Option<f32>,
    /// Most tokens an answer may have when the request says nothing (still capped by the room
    /// left in the context).
    pub max_tokens: Option<usize>,
}

impl SamplingDefaults {
    /// `defaults` (the model's own, from `generation_config.json`) with these on top.
    pub fn over(
        &self,
        defaults: Option<mistralrs::ModelGenerationDefaults>,
    ) -> Option<mistralrs::ModelGenerationDefaults> {
        if *self == Self::default() {
            return defaults;
        }
        let mut merged = defaults.unwrap_or_default();
        match self.temperature {
            // mistral.rs reads a default temperature of 0 as "no temperature"; greedy is
            // what it means.
            Some(0.0) => {
                merged.do_sample = Some(false);
                merged.temperature = None;
            }
            Some(t) => {
                merged.do_sample = Some(true);
                merged.temperature = Some(t);
            }
            None => {}
        }
        merged.top_p = self.top_p.or(merged.top_p);
        merged.top_k = self.top_k.or(merged.top_k);
        merged.min_p = self.min_p.or(merged.min_p);
        merged.repetition_penalty = self.repetition_penalty.or(merged.repetition_penalty);
        merged.max_new_tokens = self.max_tokens.or(merged.max_new_tokens);
        Some(merged)
    }

    fn validate(&self, id: &str) -> Result<()> {
        let bad = |what: &str| {
            Err(Error::Config(format!(
                "model `{id}`: [models.sampling] {what}"
            )))
        };
        if self.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return bad("temperature must be between 0 and 2");
        }
        if self.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
            return bad("top_p must be above 0 and at most 1");
        }
        if self.min_p.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return bad("min_p must be between 0 and 1");
        }
        if self.repetition_penalty.is_some_and(|p| p <= 0.0) {
            return bad("repetition_penalty must be above 0");
        }
        if self.max_tokens == Some(0) {
            return bad("max_tokens must be at least 1");
        }
        Ok(())
    }
}

/// Four sequences at once, as Ollama's `OLLAMA_NUM_PARALLEL`: each one has a KV cache of its
/// own, so the memory estimate grows with this.
fn default_max_concurrency() -> usize {
    4
}

fn default_max_queue() -> usize {
    64
}

impl ModelSpec {
    /// A spec with default limits, as `--model ID=PATH` declares it.
    pub fn new(id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            id: id.into(),
            path: path.into(),
            format: ModelFormat::Auto,
            dtype: ModelDtype::Auto,
            max_concurrency: default_max_concurrency(),
            max_queue: default_max_queue(),
            context_length: None,
            prefix_cache_mb: None,
            keep_alive: None,
            preload: false,
            sampling: SamplingDefaults::default(),
        }
    }

    /// Explains what is wrong with the values, if anything. Does not touch the disk.
    pub fn validate(&self) -> Result<()> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 128
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
        if !id_ok {
            return Err(Error::Config(format!(
                "model id `{}` must be 1-128 characters of letters, digits and - _ . : /",
                self.id
            )));
        }
        if self.context_length == Some(0) {
            return Err(Error::Config(format!(
                "model `{}`: context_length must be at least 1",
                self.id
            )));
        }
        if self.max_concurrency == 0 {
            return Err(Error::Config(format!(
                "model `{}`: max_concurrency must be at least 1",
                self.id
            )));
        }
        self.sampling.validate(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_sampling_wins_over_the_model_s_own_and_zero_means_greedy() {
        let own = mistralrs::ModelGenerationDefaults {
            temperature: Some(0.7),
            top_p: Some(0.9),
            ..Default::default()
        };
        let configured = SamplingDefaults {
            temperature: Some(0.2),
            max_tokens: Some(64),
            ..Default::default()
        };
        let merged = configured.over(Some(own.clone())).unwrap();
        assert_eq!(merged.temperature, Some(0.2));
        assert_eq!(
            merged.top_p,
            Some(0.9),
            "what is not configured stays the model's"
        );
        assert_eq!(merged.max_new_tokens, Some(64));
        let greedy = SamplingDefaults {
            temperature: Some(0.0),
            ..Default::default()
        };
        let params = crate::engine::SamplingRequest::default()
            .into_params(greedy.over(None).as_ref())
            .unwrap();
        assert_eq!((params.temperature, params.top_k), (None, Some(1)));
        assert_eq!(
            SamplingDefaults::default()
                .over(Some(own))
                .unwrap()
                .temperature,
            Some(0.7)
        );
    }

    #[test]
    fn out_of_range_sampling_defaults_name_the_model() {
        let mut spec = ModelSpec::new("m", "/x");
        spec.sampling.temperature = Some(3.0);
        let error = spec.validate().unwrap_err().to_string();
        assert!(
            error.contains("`m`") && error.contains("temperature"),
            "{error}"
        );
    }
}
