//! Which of a Hub repository's files make the model: for a GGUF repository, the file (or the
//! parts of a split file, `-00001-of-0000N`) of one quantization, Q4_K_M unless asked; for a
//! safetensors repository, the weights and the JSON, tokenizer and template files beside them
//! (not PyTorch, ONNX or other formats' copies of the weights).

/// One file of a repository, as its listing gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFile {
    /// Path in the repository.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// The Hub's sha256 of its content (LFS files), when it gives one.
    pub sha256: Option<String>,
}

/// What to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// GGUF file(s) of one quantization.
    Gguf {
        /// The quantization, as the file names spell it, upper-cased.
        quant: String,
        /// The file, or the parts of a split file in order.
        files: Vec<HubFile>,
    },
    /// A safetensors model.
    Safetensors(Vec<HubFile>),
}

/// The quantization pulled when none is named.
pub const DEFAULT_QUANT: &str = "Q4_K_M";

/// ggml's quantization names, longest first, so `Q4_K_M` is found before `Q4_K`.
const QUANTS: [&str; 40] = [
    "IQ2_XXS", "IQ3_XXS", "Q3_K_XL", "Q4_K_XL", "Q5_K_XL", "Q6_K_XL", "Q8_K_XL", "IQ1_S", "IQ1_M",
    "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ4_XS", "IQ4_NL", "Q2_K_L", "Q2_K_S",
    "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q4_K_L", "Q5_K_S", "Q5_K_M", "Q5_K_L",
    "Q6_K_L", "MXFP4", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
    "Q8_0",
];
/// Float types, after the quantizations (a name can hold both, `...-F16-Q8_0`).
const FLOATS: [&str; 3] = ["BF16", "F16", "F32"];

/// The quantization a GGUF file's path names.
pub fn quant_of(path: &str) -> Option<&'static str> {
    let upper = path.to_ascii_uppercase();
    let bounded = |q: &str| {
        upper.match_indices(q).any(|(at, _)| {
            let before = upper[..at].chars().next_back();
            let after = upper[at + q.len()..].chars().next();
            before.is_none_or(|c| "-._/".contains(c)) && after.is_none_or(|c| "-./".contains(c))
        })
    };
    QUANTS
        .iter()
        .chain(FLOATS.iter())
        .find(|q| bounded(q))
        .copied()
}

/// A split GGUF's part: the path without `-0000K-of-0000N.gguf`, K and N.
fn split_part(path: &str) -> Option<(&str, u32, u32)> {
    let stem = path.strip_suffix(".gguf")?;
    let (rest, total) = stem.rsplit_once("-of-")?;
    let (base, index) = rest.rsplit_once('-')?;
    Some((base, index.parse().ok()?, total.parse().ok()?))
}

/// Chooses the files of `quant` (GGUF) or the model's files (safetensors). The error says what
/// the repository has instead.
pub fn select(files: &[HubFile], quant: Option<&str>) -> Result<Selection, String> {
    let ggufs: Vec<&HubFile> = files
        .iter()
        .filter(|f| f.path.to_ascii_lowercase().ends_with(".gguf"))
        // Vision projectors ride along in GGUF repositories; they are not the model.
        .filter(|f| !f.path.to_ascii_lowercase().contains("mmproj"))
        .collect();
    if ggufs.is_empty() {
        return safetensors(files, quant);
    }
    let mut available: Vec<&str> = ggufs.iter().filter_map(|f| quant_of(&f.path)).collect();
    available.sort_unstable();
    available.dedup();
    let wanted = match quant {
        Some(q) => q.to_ascii_uppercase(),
        None if available.contains(&DEFAULT_QUANT) => DEFAULT_QUANT.to_string(),
        None if available.len() == 1 => available[0].to_string(),
        None if ggufs.len() == 1 && available.is_empty() => {
            return Ok(Selection::Gguf {
                quant: "GGUF".into(),
                files: vec![ggufs[0].clone()],
            })
        }
        None => {
            return Err(format!(
                "the repository has no {DEFAULT_QUANT} file; name one of its quantizations: {}",
                available.join(", ")
            ))
        }
    };
    let mut chosen: Vec<&HubFile> = ggufs
        .iter()
        .copied()
        .filter(|f| quant_of(&f.path) == Some(wanted.as_str()))
        .collect();
    if chosen.is_empty() {
        return Err(format!(
            "no {wanted} file in the repository; it has: {}",
            if available.is_empty() {
                "no quantization names".to_string()
            } else {
                available.join(", ")
            }
        ));
    }
    // Several candidates: a split file's parts, or single files (take the shortest name,
    // the plain model rather than a variant).
    chosen.sort_by(|a, b| a.path.cmp(&b.path));
    let files = match split_part(&chosen[0].path) {
        Some((base, _, total)) => {
            let parts: Vec<HubFile> = chosen
                .iter()
                .filter(|f| split_part(&f.path).is_some_and(|(b, _, t)| b == base && t == total))
                .map(|f| (*f).clone())
                .collect();
            if parts.len() != total as usize {
                return Err(format!(
                    "{base} is split in {total} parts but the repository lists {}",
                    parts.len()
                ));
            }
            parts
        }
        None => {
            let single = chosen
                .iter()
                .filter(|f| split_part(&f.path).is_none())
                .min_by_key(|f| f.path.len())
                .unwrap_or(&chosen[0]);
            vec![(*single).clone()]
        }
    };
    Ok(Selection::Gguf {
        quant: wanted,
        files,
    })
}

fn safetensors(files: &[HubFile], quant: Option<&str>) -> Result<Selection, String> {
    if let Some(quant) = quant {
        return Err(format!(
            "the repository has no GGUF files, so no {quant}; pull it without `:{quant}` for its \
             safetensors weights"
        ));
    }
    if !files.iter().any(|f| f.path == "config.json") {
        return Err(
            "the repository has neither GGUF files nor a safetensors model (config.json)".into(),
        );
    }
    if !files.iter().any(|f| f.path.ends_with(".safetensors")) {
        return Err("the repository has a config.json but no .safetensors weights (porten does not load PyTorch .bin files)".into());
    }
    let wanted = |path: &str| {
        let skipped_dir = ["onnx/", "openvino/", "coreml/", "original/"]
            .iter()
            .any(|d| path.starts_with(d));
        let extension = path.rsplit('.').next().unwrap_or_default();
        !skipped_dir
            && ["safetensors", "json", "txt", "model", "jinja", "tiktoken"].contains(&extension)
    };
    Ok(Selection::Safetensors(
        files.iter().filter(|f| wanted(&f.path)).cloned().collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(paths: &[&str]) -> Vec<HubFile> {
        paths
            .iter()
            .map(|p| HubFile {
                path: p.to_string(),
                size: 1,
                sha256: None,
            })
            .collect()
    }

    #[test]
    fn quantizations_are_read_from_names_longest_first() {
        assert_eq!(
            quant_of("Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf"),
            Some("Q4_K_M")
        );
        assert_eq!(
            quant_of("qwen2.5-coder-7b-instruct-q8_0.gguf"),
            Some("Q8_0")
        );
        assert_eq!(
            quant_of("Q4_K_M/model-Q4_K_M-00001-of-00002.gguf"),
            Some("Q4_K_M")
        );
        assert_eq!(quant_of("model.BF16.gguf"), Some("BF16"));
        assert_eq!(quant_of("modelq4_k_m.gguf"), None);
    }

    #[test]
    fn the_default_quant_is_taken_and_a_missing_one_lists_what_exists() {
        let repo = files(&["m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-Q4_K_S.gguf", "README.md"]);
        let Ok(Selection::Gguf { quant, files }) = select(&repo, None) else {
            panic!()
        };
        assert_eq!(
            (quant.as_str(), files[0].path.as_str()),
            ("Q4_K_M", "m-Q4_K_M.gguf")
        );
        let error = select(&repo, Some("q6_k")).unwrap_err();
        assert_eq!(
            error,
            "no Q6_K file in the repository; it has: Q4_K_M, Q4_K_S, Q8_0"
        );
    }

    #[test]
    fn a_split_file_is_all_its_parts_in_order() {
        let repo = files(&[
            "Q4_K_M/m-Q4_K_M-00002-of-00002.gguf",
            "Q4_K_M/m-Q4_K_M-00001-of-00002.gguf",
            "m-Q8_0.gguf",
            "mmproj-m-f16.gguf",
        ]);
        let Ok(Selection::Gguf { files, .. }) = select(&repo, Some("Q4_K_M")) else {
            panic!()
        };
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Q4_K_M/m-Q4_K_M-00001-of-00002.gguf",
                "Q4_K_M/m-Q4_K_M-00002-of-00002.gguf"
            ]
        );
        let missing = files_without(&repo, "00002-of");
        assert!(select(&missing, Some("Q4_K_M"))
            .unwrap_err()
            .contains("split in 2"));
    }

    fn files_without(repo: &[HubFile], needle: &str) -> Vec<HubFile> {
        repo.iter()
            .filter(|f| !f.path.contains(needle))
            .cloned()
            .collect()
    }

    #[test]
    fn a_safetensors_repo_brings_weights_config_and_tokenizer_only() {
        let repo = files(&[
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
            "pytorch_model.bin",
            "onnx/model.onnx",
            "README.md",
            "1_Pooling/config.json",
        ]);
        let Ok(Selection::Safetensors(files)) = select(&repo, None) else {
            panic!()
        };
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json",
                "generation_config.json",
                "1_Pooling/config.json"
            ]
        );
        assert!(select(&repo, Some("Q4_K_M"))
            .unwrap_err()
            .contains("no GGUF"));
        assert!(select(&files_without(&repo, "safetensors"), None)
            .unwrap_err()
            .contains(".bin"));
    }
}
