//! `porten import --quantize`: a GGUF file requantized to another ggml type (as Ollama's
//! `create --quantize` and llama.cpp's `llama-quantize --allow-requantize` do), written as a
//! new GGUF file for the store to import beside the original.
//!
//! Each weight matrix is dequantized to F32 and quantized again; one-dimensional tensors (norms,
//! biases) stay as they are, as in llama.cpp. A matrix whose rows are not a whole number of the
//! target's blocks (256 values for the K types) takes Q8_0 instead, and one that fits neither
//! stays as it is. The output is deterministic (metadata sorted by key, tensors in the source's
//! order), so quantizing the same file twice stores one blob.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;

/// The ggml types `--quantize` accepts, by the names llama.cpp and Ollama use.
pub const TARGETS: &[(&str, GgmlDType)] = &[
    ("Q8_0", GgmlDType::Q8_0),
    ("Q6_K", GgmlDType::Q6K),
    ("Q5_K", GgmlDType::Q5K),
    ("Q5_0", GgmlDType::Q5_0),
    ("Q5_1", GgmlDType::Q5_1),
    ("Q4_K", GgmlDType::Q4K),
    ("Q4_0", GgmlDType::Q4_0),
    ("Q4_1", GgmlDType::Q4_1),
    ("Q3_K", GgmlDType::Q3K),
    ("Q2_K", GgmlDType::Q2K),
    ("F16", GgmlDType::F16),
];

/// The types whose dot products candle 0.10 computes without SIMD on the CPU: a model in one
/// of these decodes several times slower than in Q8_0 or Q4_0 (docs/benchmarks.md).
pub const WITHOUT_CPU_KERNELS: &[&str] = &["q4_1", "q5_0", "q5_1", "q8_1"];

/// The type named `name` (case and `_M`/`_S` suffixes ignored: `q4_k_m` is Q4_K).
pub fn parse_target(name: &str) -> anyhow::Result<GgmlDType> {
    let upper = name.to_ascii_uppercase();
    let base = upper
        .strip_suffix("_M")
        .or_else(|| upper.strip_suffix("_S"))
        .unwrap_or(&upper);
    TARGETS
        .iter()
        .find(|(n, _)| *n == base)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
            anyhow::anyhow!(
                "unknown quantization `{name}`: choose one of {}",
                names.join(", ")
            )
        })
}

/// `name` without a trailing `.Q4_1`-style quantization (`SmolLM2-135M-Instruct.Q4_1` ->
/// `SmolLM2-135M-Instruct`), for naming its requantized copy.
pub fn without_quantization_suffix(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((base, suffix)) if !base.is_empty() && parse_target(suffix).is_ok() => base,
        _ => name,
    }
}

/// The name a tag takes from a target: `q8_0`.
pub fn tag_of(target: GgmlDType) -> String {
    TARGETS
        .iter()
        .find(|(_, t)| *t == target)
        .map(|(n, _)| n.to_ascii_lowercase())
        .unwrap_or_else(|| format!("{target:?}").to_ascii_lowercase())
}

/// llama.cpp's `general.file_type` for a file mostly in `target`.
fn file_type(target: GgmlDType) -> u32 {
    match target {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q8_0 => 7,
        GgmlDType::Q5_0 => 8,
        GgmlDType::Q5_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 12,
        GgmlDType::Q4K => 15,
        GgmlDType::Q5K => 17,
        GgmlDType::Q6K => 18,
        _ => 7,
    }
}

/// What a requantization did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Tensors written in each type, by type name.
    pub tensors_by_type: BTreeMap<String, usize>,
    /// Matrices that took Q8_0 or stayed as they were because their rows do not fit the
    /// target's blocks.
    pub fallbacks: usize,
}

/// The type one tensor is written in.
fn type_for(dims: &[usize], current: GgmlDType, target: GgmlDType) -> (GgmlDType, bool) {
    if dims.len() < 2 {
        return (current, false);
    }
    let row = *dims.last().unwrap_or(&0);
    if row.is_multiple_of(target.block_size()) {
        (target, false)
    } else if row.is_multiple_of(GgmlDType::Q8_0.block_size()) {
        (GgmlDType::Q8_0, true)
    } else {
        (current, true)
    }
}

/// Writes `source` requantized to `target` at `dest`.
pub fn requantize(source: &Path, dest: &Path, target: GgmlDType) -> anyhow::Result<Report> {
    let mut reader = BufReader::new(
        File::open(source).with_context(|| format!("cannot open {}", source.display()))?,
    );
    let content = gguf_file::Content::read(&mut reader)
        .with_context(|| format!("{} is not a GGUF file candle can read", source.display()))?;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|n| content.tensor_infos[*n].offset);

    let mut report = Report::default();
    let mut tensors: Vec<(&str, QTensor)> = Vec::with_capacity(names.len());
    for name in names {
        let stored = content
            .tensor(&mut reader, name, &Device::Cpu)
            .with_context(|| format!("cannot read tensor {name}"))?;
        let (ty, fallback) = type_for(stored.shape().dims(), stored.dtype(), target);
        report.fallbacks += usize::from(fallback);
        let tensor = if ty == stored.dtype() {
            stored
        } else {
            let values = stored.dequantize(&Device::Cpu)?;
            QTensor::quantize(&values, ty).with_context(|| format!("cannot quantize {name}"))?
        };
        *report.tensors_by_type.entry(format!("{ty:?}")).or_default() += 1;
        tensors.push((name.as_str(), tensor));
    }

    let mut metadata: Vec<(&str, gguf_file::Value)> = content
        .metadata
        .iter()
        // The writer aligns tensor data to 32 bytes, the GGUF default; the file type is new.
        .filter(|(k, _)| !matches!(k.as_str(), "general.alignment" | "general.file_type"))
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    metadata.push((
        "general.file_type",
        gguf_file::Value::U32(file_type(target)),
    ));
    metadata.sort_by(|a, b| a.0.cmp(b.0));

    let mut out = BufWriter::new(
        File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?,
    );
    let metadata_refs: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    gguf_file::write(&mut out, &metadata_refs, &tensor_refs)?;
    out.flush()?;
    out.into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
        .context("cannot write the quantized file")?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_named_as_llama_cpp_names_them() {
        assert_eq!(parse_target("q8_0").unwrap(), GgmlDType::Q8_0);
        assert_eq!(parse_target("Q4_K_M").unwrap(), GgmlDType::Q4K);
        assert_eq!(parse_target("q6_k").unwrap(), GgmlDType::Q6K);
        let error = parse_target("q7").unwrap_err().to_string();
        assert!(error.contains("unknown quantization `q7`"), "{error}");
        assert!(error.contains("Q8_0"), "{error}");
        assert_eq!(tag_of(GgmlDType::Q4K), "q4_k");
        assert_eq!(
            without_quantization_suffix("smollm2-135m-instruct.q4_1"),
            "smollm2-135m-instruct"
        );
        assert_eq!(without_quantization_suffix("model.v2"), "model.v2");
        assert_eq!(without_quantization_suffix(".q8_0"), ".q8_0");
    }

    #[test]
    fn matrices_take_the_target_norms_stay_and_odd_rows_fall_back() {
        let q4k = GgmlDType::Q4K;
        assert_eq!(
            type_for(&[576], GgmlDType::F32, q4k),
            (GgmlDType::F32, false)
        );
        assert_eq!(type_for(&[1536, 512], GgmlDType::Q4_1, q4k), (q4k, false));
        // SmolLM2's hidden size, 576, is 18 blocks of 32 but not a whole number of 256.
        assert_eq!(
            type_for(&[1536, 576], GgmlDType::Q4_1, q4k),
            (GgmlDType::Q8_0, true)
        );
        assert_eq!(
            type_for(&[8, 20], GgmlDType::F32, GgmlDType::Q8_0),
            (GgmlDType::F32, true)
        );
    }
}
