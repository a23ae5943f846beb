//! Tiny random models written from code, so fast tests need no download: a Llama-shaped chat
//! model and a Qwen3-Embedding-shaped embedding model, both with a byte-level BPE tokenizer.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const VOCAB: usize = 256 + SPECIALS.len();
const HIDDEN: usize = 64;
const INTERMEDIATE: usize = 128;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = HIDDEN / HEADS;

const CHAT_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// GPT-2's byte-to-character table, which byte-level BPE vocabularies are written in.
fn byte_chars() -> Vec<char> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut extra = 0;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap()
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap()
            }
        })
        .collect()
}

fn tokenizer_json() -> Value {
    let mut vocab = serde_json::Map::new();
    for (id, c) in byte_chars().into_iter().enumerate() {
        vocab.insert(c.to_string(), json!(id));
    }
    let added: Vec<Value> = SPECIALS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            vocab.insert(s.to_string(), json!(256 + i));
            json!({"id": 256 + i, "content": s, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": []}
    })
}

/// A deterministic xorshift generator: the same fixture bytes on every run.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
    }
}

/// Writes f32 tensors as a `.safetensors` file: an 8-byte header length, a JSON header, data.
fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape, data) in tensors {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "{name}");
        let end = offset + data.len() * 4;
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut header = serde_json::to_vec(&Value::Object(header)).unwrap();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    for (_, _, data) in tensors {
        for v in data {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}

fn decoder_tensors(
    prefix: &str,
    qk_norm: bool,
    noise: &mut Noise,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut random = |shape: Vec<usize>| {
        let n = shape.iter().product();
        let data = (0..n).map(|_| noise.next()).collect();
        (shape, data)
    };
    let ones = |n: usize| (vec![n], vec![1.0f32; n]);
    let mut out = Vec::new();
    let mut add =
        |name: String, (shape, data): (Vec<usize>, Vec<f32>)| out.push((name, shape, data));
    add(
        format!("{prefix}embed_tokens.weight"),
        random(vec![VOCAB, HIDDEN]),
    );
    for l in 0..LAYERS {
        let p = format!("{prefix}layers.{l}.");
        add(
            format!("{p}self_attn.q_proj.weight"),
            random(vec![HEADS * HEAD_DIM, HIDDEN]),
        );
        add(
            format!("{p}self_attn.k_proj.weight"),
            random(vec![KV_HEADS * HEAD_DIM, HIDDEN]),
        );
        add(
            format!("{p}self_attn.v_proj.weight"),
            random(vec![KV_HEADS * HEAD_DIM, HIDDEN]),
        );
        add(
            format!("{p}self_attn.o_proj.weight"),
            random(vec![HIDDEN, HEADS * HEAD_DIM]),
        );
        if qk_norm {
            add(format!("{p}self_attn.q_norm.weight"), ones(HEAD_DIM));
            add(format!("{p}self_attn.k_norm.weight"), ones(HEAD_DIM));
        }
        add(
            format!("{p}mlp.gate_proj.weight"),
            random(vec![INTERMEDIATE, HIDDEN]),
        );
        add(
            format!("{p}mlp.up_proj.weight"),
            random(vec![INTERMEDIATE, HIDDEN]),
        );
        add(
            format!("{p}mlp.down_proj.weight"),
            random(vec![HIDDEN, INTERMEDIATE]),
        );
        add(format!("{p}input_layernorm.weight"), ones(HIDDEN));
        add(format!("{p}post_attention_layernorm.weight"), ones(HIDDEN));
    }
    add(format!("{prefix}norm.weight"), ones(HIDDEN));
    out
}

fn write_json(path: PathBuf, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

fn write_tokenizer(dir: &Path) {
    write_json(dir.join("tokenizer.json"), &tokenizer_json());
    write_json(
        dir.join("tokenizer_config.json"),
        &json!({"add_bos_token": false, "bos_token": null, "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>", "unk_token": null, "model_max_length": 2048,
                "chat_template": CHAT_TEMPLATE}),
    );
}

/// A Llama-shaped random chat model (safetensors) in `dir`.
pub fn write_tiny_chat_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut tensors = decoder_tensors("model.", false, &mut noise);
    let lm_head = (0..VOCAB * HIDDEN).map(|_| noise.next()).collect();
    tensors.push(("lm_head.weight".into(), vec![VOCAB, HIDDEN], lm_head));
    write_safetensors(&dir.join("model.safetensors"), &tensors);
    write_json(
        dir.join("config.json"),
        &json!({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE,
                "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB,
                "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                "hidden_act": "silu", "tie_word_embeddings": false,
                "bos_token_id": 256, "eos_token_id": 258, "torch_dtype": "float32"}),
    );
    write_tokenizer(dir);
}

/// A Qwen3-Embedding-shaped random embedding model (sentence-transformers layout) in `dir`.
pub fn write_tiny_embedding_model(dir: &Path) {
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    let mut noise = Noise(0xD1B5_4A32_D192_ED03);
    write_safetensors(
        &dir.join("model.safetensors"),
        &decoder_tensors("", true, &mut noise),
    );
    write_json(
        dir.join("config.json"),
        &json!({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
                "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE,
                "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "vocab_size": VOCAB,
                "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
                "hidden_act": "silu", "tie_word_embeddings": true, "sliding_window": null,
                "use_sliding_window": false, "max_window_layers": LAYERS,
                "bos_token_id": 256, "eos_token_id": 256, "torch_dtype": "float32"}),
    );
    write_json(
        dir.join("modules.json"),
        &json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        ]),
    );
    write_json(
        dir.join("1_Pooling/config.json"),
        &json!({"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": false,
                "pooling_mode_mean_tokens": false, "pooling_mode_max_tokens": false,
                "pooling_mode_mean_sqrt_len_tokens": false, "pooling_mode_weightedmean_tokens": false,
                "pooling_mode_lasttoken": true, "include_prompt": true}),
    );
    write_tokenizer(dir);
}

/// The width of the tiny embedding model's vectors.
pub const EMBEDDING_DIM: usize = HIDDEN;

/// A GGUF file as big as a test needs: a valid header, then `mib` MiB of noise drawn from `seed`
/// (two seeds, two different files).
pub fn big_gguf(path: &Path, mib: usize, seed: u64) {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"GGUF");
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    let key = b"general.architecture";
    bytes.extend_from_slice(&(key.len() as u64).to_le_bytes());
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&8u32.to_le_bytes());
    bytes.extend_from_slice(&5u64.to_le_bytes());
    bytes.extend_from_slice(b"llama");
    let mut x = 0x2545_F491_4F6C_DD1Du64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    bytes.extend((0..mib << 20).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    std::fs::write(path, bytes).unwrap();
}

/// Flips one bit of a file (a blob in the store is read-only: made writable first).
pub fn flip_a_byte(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}
