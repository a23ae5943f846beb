//! From what the store knows about a model's files to what the memory estimator needs, and
//! the devices and budgets serve and fit use.

use porten_proxy::config::ModelDtype;
use std::sync::Arc;

use porten_proxy::residency::devices::{
    self, DeviceBudget, DeviceMemory, MemoryProbe, ProbeChoice,
};
use porten_proxy::residency::{Device, ModelShape};
use porten_storage::{ModelMetadata, WeightFormat};

use crate::config::Config;

/// The tokenizer and its tables, per vocabulary entry.
const TOKENIZER_BYTES_PER_TOKEN: u64 = 1024;

/// What mistral.rs's GGUF path keeps beyond the tensors: the parsed metadata and the buffers of
/// a process's first GGUF load. With the tokenizer term this covers the ~50 MiB that SmolLM2
/// (49,152 tokens) takes beyond its tensors, embedding copies, KV cache and the fixed overhead,
/// measured by `tests/residency.rs`, with room to spare.
const GGUF_READER_BYTES: u64 = 32 << 20;

/// The estimator's view of a model described by `meta`, loaded in `dtype` on `device`.
pub fn shape_of(meta: &ModelMetadata, dtype: ModelDtype, device: Device) -> ModelShape {
    let parameters = meta.parameter_count.unwrap_or(0);
    let hidden = meta.embedding_length.unwrap_or(0);
    let vocab = meta.vocab_size.unwrap_or(0);
    let tokenizer = vocab * TOKENIZER_BYTES_PER_TOKEN;
    let (weight_bytes, runtime_weight_bytes) = match meta.format {
        // Quantized weights stay as stored. mistral.rs makes an F32 copy of the token-embedding
        // table, and a tied output layer loads the stored table a second time.
        WeightFormat::Gguf => {
            let dequantized_embedding = vocab * hidden * 4;
            let stored_embedding = if meta.tied_embeddings == Some(true) && parameters > 0 {
                (vocab * hidden).saturating_mul(meta.tensor_bytes) / parameters
            } else {
                0
            };
            (
                meta.tensor_bytes,
                dequantized_embedding + stored_embedding + tokenizer + GGUF_READER_BYTES,
            )
        }
        // Safetensors are converted to the compute dtype while loading.
        WeightFormat::Safetensors | WeightFormat::Embedding => {
            let bytes_per_parameter = match (dtype, device) {
                (ModelDtype::F32, _) => 4,
                _ => 2,
            };
            (parameters * bytes_per_parameter, tokenizer)
        }
    };
    let fallback = porten_proxy::residency::estimate::reference_architecture(parameters);
    let known = meta.layers.is_some() && meta.kv_heads.is_some() && meta.head_dim.is_some();
    ModelShape {
        parameters,
        active_parameters: active_parameters(meta),
        weight_bytes,
        runtime_weight_bytes,
        layers: meta.layers.unwrap_or(fallback.0),
        kv_heads: meta.kv_heads.unwrap_or(fallback.1),
        head_dim: meta.head_dim.unwrap_or(fallback.2),
        trained_context: meta.context_length,
        assumed_architecture: !known,
    }
}

/// A note for a GGUF model whose weights are mostly in a type candle has no SIMD kernel for on
/// the CPU, naming the way out; None for any other model.
pub fn slow_on_cpu(meta: &ModelMetadata) -> Option<String> {
    if meta.format != WeightFormat::Gguf {
        return None;
    }
    let (dominant, _) = meta.parameters_by_type.iter().max_by_key(|(_, n)| **n)?;
    let dominant = dominant.to_ascii_lowercase();
    crate::quantize::WITHOUT_CPU_KERNELS
        .contains(&dominant.as_str())
        .then(|| {
            format!(
                "its weights are mostly {}, which has no SIMD kernel on the CPU and decodes \
                 slower than Q8_0 or Q4_0; `porten import FILE --quantize Q8_0` stores a faster copy",
                dominant.to_ascii_uppercase()
            )
        })
}

/// Parameters a token goes through: for a mixture of experts, the expert weights scaled by the
/// share of experts used. Only shown to people; memory always counts every expert.
fn active_parameters(meta: &ModelMetadata) -> u64 {
    let total = meta.parameter_count.unwrap_or(0);
    match (meta.experts, meta.experts_used) {
        (Some(n), Some(used)) if n > used && n > 0 => {
            // Without per-tensor names the expert share is unknown; assume experts are 90% of
            // the weights, as in common MoE designs.
            let experts = total / 10 * 9;
            total - experts + experts / n * used
        }
        _ => total,
    }
}

/// The devices models run on as a probe reads them, each one's budget, and the NVIDIA GPUs a
/// CPU build sees.
pub struct DeviceSetup {
    /// The probe, when one could read the devices.
    pub probe: Option<Arc<dyn MemoryProbe>>,
    /// Each device's budget and why.
    pub budgets: Vec<DeviceBudget>,
    /// GPUs seen but not used (a CPU build on a machine with NVIDIA's driver).
    pub gpus_seen: Vec<DeviceMemory>,
}

impl DeviceSetup {
    /// The budget a whole model can have: the largest device's (a model goes to one device).
    pub fn largest(&self) -> &DeviceBudget {
        self.budgets
            .iter()
            .max_by_key(|b| b.budget_bytes.unwrap_or(u64::MAX))
            .expect("budgets() always names a device")
    }
}

/// Reads the devices models run on with the configured probe (`PORTEN_MEMORY_PROBE`, else the
/// build's own) and gives each its budget: the configured one, else a share of what it has
/// free now (see `porten_proxy::residency::devices::budgets`). `look_for_gpus`: on a CPU
/// build, also open NVML to log the NVIDIA GPUs it sees (or that it sees none, and why).
pub fn detect_devices(config: &Config, device: Device, look_for_gpus: bool) -> DeviceSetup {
    let choice: ProbeChoice = config
        .memory
        .probe
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or_default();
    let (probe, readings) = devices::open_probe(&choice, device).unzip();
    let readings = readings.unwrap_or_default();
    let source = probe
        .as_ref()
        .map_or("no probe".to_string(), |p| p.source());
    let budgets = devices::budgets(config.memory.budget_mb, &readings, &source);
    let gpus_seen = match (device, &choice) {
        (Device::Cpu, ProbeChoice::Auto | ProbeChoice::Cpu) if look_for_gpus => {
            devices::gpus_seen()
        }
        _ => Vec::new(),
    };
    DeviceSetup {
        probe,
        budgets,
        gpus_seen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use porten_proxy::residency::{estimate, LoadSettings};

    fn smollm2_like() -> ModelMetadata {
        serde_json::from_value(serde_json::json!({
            "format": "gguf",
            "parameter_count": 134_515_008u64,
            "context_length": 8192,
            "layers": 30,
            "embedding_length": 576,
            "attention_heads": 9,
            "kv_heads": 3,
            "head_dim": 64,
            "vocab_size": 49152,
            "tied_embeddings": true,
            "tensor_bytes": 85_000_000u64
        }))
        .unwrap()
    }

    #[test]
    fn gguf_counts_the_f32_embedding_copy_and_the_tied_output() {
        let shape = shape_of(&smollm2_like(), ModelDtype::Auto, Device::Cpu);
        assert_eq!(shape.weight_bytes, 85_000_000);
        let f32_table = 49152 * 576 * 4;
        let tied = 49152 * 576 * 85_000_000 / 134_515_008;
        assert_eq!(
            shape.runtime_weight_bytes,
            f32_table + tied + 49152 * TOKENIZER_BYTES_PER_TOKEN + GGUF_READER_BYTES
        );
        assert!(!shape.assumed_architecture);
        let at_4k = estimate(
            &shape,
            &LoadSettings {
                context: 4096,
                sequences: 1,
                device: Device::Cpu,
                prefix_cache_mb: Some(0),
            },
        );
        assert_eq!(at_4k.kv_cache, 2 * 30 * 3 * 64 * 4 * 4096);
    }

    #[test]
    fn safetensors_are_sized_in_the_compute_dtype() {
        let mut meta = smollm2_like();
        meta.format = WeightFormat::Safetensors;
        meta.tensor_bytes = 4 * 134_515_008;
        let f16 = shape_of(&meta, ModelDtype::Auto, Device::Cpu);
        let f32 = shape_of(&meta, ModelDtype::F32, Device::Cpu);
        assert_eq!(f16.weight_bytes * 2, f32.weight_bytes);
        assert_eq!(f16.runtime_weight_bytes, 49152 * TOKENIZER_BYTES_PER_TOKEN);
    }

    #[test]
    fn missing_hyperparameters_are_assumed_from_a_model_of_the_same_size() {
        let mut meta = smollm2_like();
        meta.layers = None;
        let shape = shape_of(&meta, ModelDtype::Auto, Device::Cpu);
        assert!(shape.assumed_architecture);
        assert_eq!(shape.layers, 30);
    }

    #[test]
    fn a_model_mostly_in_a_type_without_cpu_kernels_gets_a_note() {
        let mut meta = smollm2_like();
        meta.parameters_by_type = [("q4_1".to_string(), 100), ("q8_0".to_string(), 10)].into();
        let note = slow_on_cpu(&meta).unwrap();
        assert!(note.contains("mostly Q4_1"), "{note}");
        assert!(note.contains("--quantize Q8_0"), "{note}");
        meta.parameters_by_type = [("q4_1".to_string(), 10), ("q8_0".to_string(), 100)].into();
        assert_eq!(slow_on_cpu(&meta), None);
        meta.format = WeightFormat::Safetensors;
        meta.parameters_by_type = [("q4_1".to_string(), 100)].into();
        assert_eq!(slow_on_cpu(&meta), None);
    }

    #[test]
    fn a_configured_budget_wins_over_detection() {
        let mut config = Config::default();
        config.memory.budget_mb = Some(512);
        let setup = detect_devices(&config, Device::Cpu, false);
        assert_eq!(setup.largest().budget_bytes, Some(512 << 20));
        assert!(setup.probe.is_some(), "system memory is read on the CPU");
        config.memory.budget_mb = None;
        let detected = detect_devices(&config, Device::Cpu, false);
        let system = detected.largest();
        assert_eq!(
            system.budget_bytes,
            system.free_at_start_bytes.map(|f| f / 100 * 90)
        );
        assert!(
            system.source.contains("free at start-up (cpu"),
            "{}",
            system.source
        );
    }

    /// A CUDA build on a machine without NVIDIA's driver: no limit, and the source says why.
    #[test]
    fn without_nvml_a_gpu_build_has_only_the_configured_limit() {
        if std::path::Path::new("/proc/driver/nvidia").exists() {
            return;
        }
        let mut config = Config::default();
        let setup = detect_devices(&config, Device::Cuda, false);
        assert!(setup.probe.is_none());
        assert_eq!(setup.largest().budget_bytes, None);
        assert!(setup.largest().source.contains("no limit"));
        config.memory.budget_mb = Some(1024);
        assert_eq!(
            detect_devices(&config, Device::Cuda, false)
                .largest()
                .budget_bytes,
            Some(1 << 30)
        );
    }
}
