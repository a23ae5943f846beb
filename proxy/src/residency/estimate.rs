//! How much memory a model takes once loaded, computed before loading it: weights (every expert of
//! a mixture-of-experts model), the KV cache for the context it is loaded with, and the runtime's
//! own overhead. Every rounding goes up: a guess that is too low ends in an out-of-memory crash,
//! one that is too high only leaves memory unused.

use serde::Serialize;

/// Where models run; it decides the runtime's fixed overhead and the KV cache's element size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// System RAM (the default build).
    Cpu,
    /// An NVIDIA GPU (`--features cuda`).
    Cuda,
    /// Apple unified memory (`--features metal`).
    Metal,
}

impl Device {
    /// The device this build runs models on.
    pub fn of_this_build() -> Self {
        if cfg!(feature = "cuda") {
            Device::Cuda
        } else if cfg!(feature = "metal") {
            Device::Metal
        } else {
            Device::Cpu
        }
    }

    /// `cpu`, `cuda` or `metal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::Metal => "metal",
        }
    }

    /// What the runtime takes with a model loaded, whatever the model: on the CPU, mistral.rs's
    /// engine thread, its scheduler and allocator arenas, measured at 3-4 MiB with the tiny
    /// models after a full 512-token context (an earlier 13-14 MiB came from prompts longer
    /// than the context, which porten did not refuse then); on a GPU, the CUDA/Metal context
    /// and kernels.
    fn fixed_overhead(self) -> u64 {
        match self {
            Device::Cpu => 5 * MIB,
            Device::Cuda | Device::Metal => 512 * MIB,
        }
    }

    /// Working buffers (activations, logits, allocator fragmentation) as a percentage of the
    /// weights. 2% covered what was measured with F16 activations; with the F32 activations
    /// porten gives GGUF models on the CPU, SmolLM2 after a full 512-token context took
    /// 333 MiB against the 332 MiB that 2% gave, so the CPU takes 5%.
    fn working_percent(self) -> u64 {
        match self {
            Device::Cpu => 5,
            Device::Cuda | Device::Metal => 2,
        }
    }

    /// Bytes of one KV-cache element: mistral.rs keeps the cache in the activation dtype, F32 on
    /// the CPU for quantized models and F16/BF16 on GPUs.
    pub fn kv_element_bytes(self) -> u64 {
        match self {
            Device::Cpu => 4,
            Device::Cuda | Device::Metal => 2,
        }
    }
}

const MIB: u64 = 1 << 20;

/// The facts about a model that decide its memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelShape {
    /// Parameters, every expert included.
    pub parameters: u64,
    /// Parameters one token goes through (a mixture-of-experts model activates a few experts);
    /// equal to `parameters` for a dense model. Speed tracks this, memory does not.
    pub active_parameters: u64,
    /// Bytes of the weights in memory (quantized weights stay quantized).
    pub weight_bytes: u64,
    /// What the runtime builds from the files beyond the weights: mistral.rs turns a quantized
    /// GGUF token-embedding table into F32 (vocabulary x hidden x 4 bytes), and the tokenizer
    /// has tables of its own.
    pub runtime_weight_bytes: u64,
    /// Transformer blocks.
    pub layers: u64,
    /// Key/value heads per block.
    pub kv_heads: u64,
    /// Dimension of one head.
    pub head_dim: u64,
    /// The longest context the model was trained for, when known.
    pub trained_context: Option<u64>,
    /// True when the layer/head numbers were assumed from a reference model of similar size
    /// rather than read from the model's files.
    pub assumed_architecture: bool,
}

impl ModelShape {
    /// KV-cache bytes for one token of one sequence: keys and values, every layer.
    pub fn kv_bytes_per_token(&self, element_bytes: u64) -> u64 {
        2 * self.layers * self.kv_heads * self.head_dim * element_bytes
    }
}

/// How a model will be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LoadSettings {
    /// Tokens of context per sequence the KV cache is sized for.
    pub context: u64,
    /// Sequences the engine runs at once (each has its own KV cache).
    pub sequences: u64,
    /// Where it runs.
    pub device: Device,
    /// MiB the engine may keep of finished sequences' KV caches for prompts that start the
    /// same way (`prefix_cache_mb`): `None` for the default, room for one finished sequence at
    /// full context as resident memory measured it (twice its KV cache); `Some(0)` turns the
    /// cache off.
    pub prefix_cache_mb: Option<u64>,
}

impl LoadSettings {
    /// Bytes of KV cache a prefix cache so configured may hold: see [`Self::prefix_cache_mb`].
    pub fn prefix_cache_bytes(&self, shape: &ModelShape) -> u64 {
        match self.prefix_cache_mb {
            Some(mb) => mb.saturating_mul(MIB),
            None => shape
                .kv_bytes_per_token(self.device.kv_element_bytes())
                .saturating_mul(self.context)
                .saturating_mul(2),
        }
    }
}

/// A model's memory need, in bytes, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    /// The weights as loaded, all experts included.
    pub weights: u64,
    /// The KV cache at full context for every sequence.
    pub kv_cache: u64,
    /// Finished sequences' KV caches kept for reuse, at most (the prefix cache's bound).
    pub prefix_cache: u64,
    /// The runtime: fixed cost, what it derives from the weights, and working buffers.
    pub overhead: u64,
    /// The sum, which is what the scheduler reserves.
    pub total: u64,
}

/// The memory `shape` needs when loaded with `settings`.
pub fn estimate(shape: &ModelShape, settings: &LoadSettings) -> MemoryEstimate {
    let weights = shape.weight_bytes;
    let kv_cache = shape
        .kv_bytes_per_token(settings.device.kv_element_bytes())
        .saturating_mul(settings.context)
        .saturating_mul(settings.sequences.max(1));
    let working =
        (weights + shape.runtime_weight_bytes).div_ceil(100) * settings.device.working_percent();
    let overhead = settings.device.fixed_overhead() + shape.runtime_weight_bytes + working;
    let prefix_cache = settings.prefix_cache_bytes(shape);
    MemoryEstimate {
        weights,
        kv_cache,
        prefix_cache,
        overhead,
        total: weights
            .saturating_add(kv_cache)
            .saturating_add(prefix_cache)
            .saturating_add(overhead),
    }
}

/// Bits per weight of a quantization, by its usual name (`q4_k_m`, `Q8_0`, `f16`...); `None`
/// for a name it does not know. These are the effective bits of llama.cpp's formats, scales and
/// all: Q4_K_M ~4.5 bits, Q8_0 8.5 bits.
pub fn bits_per_weight(quantization: &str) -> Option<f64> {
    let q = quantization.to_ascii_lowercase().replace('-', "_");
    let bits = match q.as_str() {
        "f32" | "fp32" => 32.0,
        "f16" | "fp16" | "bf16" => 16.0,
        "q8" | "q8_0" | "int8" | "fp8" => 8.5,
        "q6" | "q6_k" => 6.5625,
        "q5" | "q5_k_m" | "q5_k" | "q5_1" => 6.0,
        "q5_k_s" | "q5_0" => 5.5,
        "q4_1" => 5.0,
        "q4" | "q4_k_m" | "q4_k" | "q4_0" | "q4_k_s" | "int4" => 4.5,
        "q3" | "q3_k_m" | "q3_k_s" | "q3_k" | "q3_k_l" => 3.4375,
        "q2" | "q2_k" | "q2_k_s" => 2.5625,
        _ => return None,
    };
    Some(bits)
}

/// The quantization names [`bits_per_weight`] knows, for error messages.
pub const KNOWN_QUANTIZATIONS: &str =
    "f32, f16, bf16, q8_0, q6_k, q5_k_m, q5_0, q4_1, q4_k_m, q4_0, q3_k_m, q2_k";

/// A typical architecture for a model of `parameters`: layers, KV heads and head dimension of
/// the nearest well-known open model, for sizing the KV cache of a model that exists only as
/// `--params 32B`.
pub fn reference_architecture(parameters: u64) -> (u64, u64, u64) {
    // (parameters, layers, kv heads, head dim) of SmolLM2-135M, Qwen2.5-0.5B, Llama-3.2-1B,
    // Llama-3.2-3B, Llama-3.1-8B, Qwen2.5-14B, Qwen2.5-32B, Llama-3.1-70B, Mistral-Large-123B,
    // Llama-3.1-405B.
    const REFERENCES: [(f64, u64, u64, u64); 10] = [
        (0.135e9, 30, 3, 64),
        (0.5e9, 24, 2, 64),
        (1.2e9, 16, 8, 64),
        (3.2e9, 28, 8, 128),
        (8.0e9, 32, 8, 128),
        (14.7e9, 48, 8, 128),
        (32.5e9, 64, 8, 128),
        (70.6e9, 80, 8, 128),
        (123e9, 88, 8, 128),
        (405e9, 126, 8, 128),
    ];
    let target = (parameters.max(1) as f64).ln();
    let nearest = REFERENCES
        .iter()
        .min_by(|a, b| {
            let da = (a.0.ln() - target).abs();
            let db = (b.0.ln() - target).abs();
            da.total_cmp(&db)
        })
        .expect("the table is not empty");
    (nearest.1, nearest.2, nearest.3)
}

/// The shape of a model that exists only as numbers: `parameters` at `bits` per weight, with
/// `active` parameters per token for a mixture of experts.
pub fn hypothetical_shape(parameters: u64, bits: f64, active: Option<u64>) -> ModelShape {
    let (layers, kv_heads, head_dim) = reference_architecture(parameters);
    ModelShape {
        parameters,
        active_parameters: active.unwrap_or(parameters),
        weight_bytes: (parameters as f64 * bits / 8.0).ceil() as u64,
        runtime_weight_bytes: 0,
        layers,
        kv_heads,
        head_dim,
        trained_context: None,
        assumed_architecture: true,
    }
}

/// Reads `7B`, `0.5b`, `135M`, `1.5T` or a plain number as a parameter count.
pub fn parse_parameter_count(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, scale) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let scale = match c.to_ascii_lowercase() {
                'k' => 1e3,
                'm' => 1e6,
                'b' | 'g' => 1e9,
                't' => 1e12,
                _ => return Err(format!("`{text}`: use a number with K, M, B or T, like 7B")),
            };
            (&t[..i], scale)
        }
        _ => (t, 1.0),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a parameter count; write it like 7B or 135M"))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("`{text}`: the parameter count must be positive"));
    }
    Ok((value * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: f64 = 1e9;

    fn gb_per_billion(quant: &str) -> f64 {
        let shape = hypothetical_shape(1_000_000_000, bits_per_weight(quant).unwrap(), None);
        shape.weight_bytes as f64 / GB
    }

    /// The hardware guide's table: GB of weights per billion parameters.
    #[test]
    fn weights_per_billion_parameters_follow_the_table() {
        for (quant, table) in [
            ("f16", 2.0),
            ("q8_0", 1.1),
            ("q4_k_m", 0.55),
            ("q3_k_m", 0.4),
            ("q2_k", 0.3),
        ] {
            let ours = gb_per_billion(quant);
            // Never below the table by more than rounding, at most 10% above it.
            assert!(
                ours >= table * 0.96 && ours <= table * 1.10,
                "{quant}: {ours:.3} GB per billion, the table says ~{table}"
            );
        }
    }

    fn total_gb(params: &str, quant: &str, active: Option<&str>) -> f64 {
        let shape = hypothetical_shape(
            parse_parameter_count(params).unwrap(),
            bits_per_weight(quant).unwrap(),
            active.map(|a| parse_parameter_count(a).unwrap()),
        );
        let settings = LoadSettings {
            context: 0,
            sequences: 1,
            device: Device::Cuda,
            prefix_cache_mb: None,
        };
        estimate(&shape, &settings).total as f64 / GB
    }

    /// At Q4_K_M a 7B needs ~4-5 GB, a 14B ~8-9, a 32B ~18-20, a 70B ~40, an 80B MoE ~50.
    #[test]
    fn whole_models_at_q4_k_m_follow_the_table() {
        for (params, active, low, high) in [
            ("7B", None, 4.0, 5.0),
            ("14B", None, 8.0, 9.0),
            ("32B", None, 18.0, 20.0),
            ("70B", None, 38.0, 42.0),
            ("80B", Some("3B"), 45.0, 55.0),
        ] {
            let gb = total_gb(params, "q4_k_m", active);
            assert!(
                (low..=high).contains(&gb),
                "{params}: {gb:.2} GB, the table says {low}-{high}"
            );
        }
    }

    #[test]
    fn a_mixture_of_experts_holds_every_expert() {
        let moe = total_gb("80B", "q4_k_m", Some("3B"));
        let dense = total_gb("80B", "q4_k_m", None);
        let small = total_gb("3B", "q4_k_m", None);
        assert_eq!(moe, dense, "memory tracks total parameters");
        assert!(moe > 10.0 * small);
    }

    /// The prefix cache is charged on top: twice one sequence's KV cache at full context by
    /// default, what `prefix_cache_mb` says otherwise, nothing when it is 0.
    #[test]
    fn the_prefix_cache_is_charged_to_the_estimate() {
        let shape = hypothetical_shape(8_000_000_000, 4.5, None);
        let at = |prefix_cache_mb| {
            estimate(
                &shape,
                &LoadSettings {
                    context: 4096,
                    sequences: 2,
                    device: Device::Cuda,
                    prefix_cache_mb,
                },
            )
        };
        let (default, off, set) = (at(None), at(Some(0)), at(Some(100)));
        assert_eq!(off.prefix_cache, 0);
        assert_eq!(
            default.prefix_cache, default.kv_cache,
            "two sequences' KV, twice one's"
        );
        assert_eq!(set.prefix_cache, 100 << 20);
        assert_eq!(default.total - off.total, default.prefix_cache);
        assert_eq!(set.total - off.total, 100 << 20);
    }

    /// 2 x layers x context x KV heads x head dim x bytes: Llama-3.1-8B at 32k in F16 is 4 GiB.
    #[test]
    fn the_kv_cache_grows_with_context_and_sequences() {
        let shape = hypothetical_shape(8_000_000_000, 4.5, None);
        let at = |context, sequences| {
            estimate(
                &shape,
                &LoadSettings {
                    context,
                    sequences,
                    device: Device::Cuda,
                    prefix_cache_mb: Some(0),
                },
            )
            .kv_cache
        };
        assert_eq!(at(32768, 1), 2 * 32 * 32768 * 8 * 128 * 2);
        assert_eq!(at(32768, 1), 4 << 30);
        assert_eq!(at(32768, 4), 4 * at(32768, 1));
        assert_eq!(at(131072, 1), 4 * at(32768, 1));
        // At 128k the cache rivals the weights.
        assert!(at(131072, 1) > shape.weight_bytes * 3);
    }

    #[test]
    fn parameter_counts_read_like_people_write_them() {
        assert_eq!(parse_parameter_count("7B").unwrap(), 7_000_000_000);
        assert_eq!(parse_parameter_count("0.5b").unwrap(), 500_000_000);
        assert_eq!(parse_parameter_count("135M").unwrap(), 135_000_000);
        assert_eq!(parse_parameter_count("1000").unwrap(), 1000);
        assert!(parse_parameter_count("seven").is_err());
        assert!(parse_parameter_count("-3B").is_err());
        assert!(parse_parameter_count("3X").is_err());
    }

    #[test]
    fn unknown_quantizations_are_none() {
        assert_eq!(bits_per_weight("Q4_K_M"), Some(4.5));
        assert_eq!(bits_per_weight("q9_z"), None);
    }

    #[test]
    fn reference_architectures_pick_the_nearest_size() {
        assert_eq!(reference_architecture(7_000_000_000), (32, 8, 128));
        assert_eq!(reference_architecture(70_000_000_000), (80, 8, 128));
        assert_eq!(reference_architecture(135_000_000), (30, 3, 64));
    }
}
