//! What `porten pull hf://ORG/REPO[@REVISION][:QUANT]` names (also `hf.co/ORG/REPO:QUANT`,
//! Ollama's spelling, and `huggingface.co/...`), and the store name the model gets:
//! `hf.co/ORG/REPO` tagged with the quantization (GGUF) or the revision (`latest` for `main`).

use crate::name::ModelRef;
use crate::{Error, Result};

/// A model on a Hugging Face Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRef {
    /// `ORG/REPO`.
    pub repo: String,
    /// A branch, tag or commit; `main` by default.
    pub revision: String,
    /// The GGUF quantization asked for (`Q4_K_M`), if any.
    pub quant: Option<String>,
}

impl HubRef {
    /// Parses `hf://ORG/REPO[@REVISION][:QUANT]`, `hf.co/...` or `huggingface.co/...`; `None`
    /// for a name that is not a Hub reference.
    pub fn parse(text: &str) -> Option<Result<Self>> {
        let rest = [
            "hf://",
            "hf.co/",
            "huggingface.co/",
            "https://huggingface.co/",
        ]
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix))?;
        Some(Self::parse_rest(text, rest))
    }

    fn parse_rest(text: &str, rest: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidName {
            name: text.to_string(),
            reason,
        };
        let (rest, quant) = match rest.rsplit_once(':') {
            Some((rest, quant)) if !quant.is_empty() => (rest, Some(quant.to_string())),
            _ => (rest, None),
        };
        let (repo, revision) = match rest.split_once('@') {
            Some((repo, revision)) if !revision.is_empty() => (repo, revision.to_string()),
            _ => (rest, "main".to_string()),
        };
        let parts: Vec<&str> = repo.split('/').collect();
        let safe = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if parts.len() != 2 || !parts.iter().all(|p| safe(p)) {
            return Err(invalid(
                "a Hub model is ORG/REPO (letters, digits, `-`, `_`, `.`)",
            ));
        }
        if !safe(&revision.replace('/', "-")) || quant.as_deref().is_some_and(|q| !safe(q)) {
            return Err(invalid(
                "the revision and quantization must be letters, digits, `-`, `_` or `.`",
            ));
        }
        Ok(Self {
            repo: repo.to_string(),
            revision,
            quant,
        })
    }

    /// The store name of the model pulled with `quant` (the one chosen, for GGUF).
    pub fn model_ref(&self, quant: Option<&str>) -> Result<ModelRef> {
        let tag = match (quant, self.revision.as_str()) {
            (Some(quant), _) => quant.to_string(),
            (None, "main") => crate::name::DEFAULT_TAG.to_string(),
            (None, revision) => revision.replace('/', "-"),
        };
        ModelRef::parse(&format!("hf.co/{}:{tag}", self.repo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_names_the_repo_revision_and_quant() {
        let r = HubRef::parse("hf://bartowski/Qwen2.5-Coder-32B-Instruct-GGUF:Q4_K_M")
            .unwrap()
            .unwrap();
        assert_eq!(r.repo, "bartowski/Qwen2.5-Coder-32B-Instruct-GGUF");
        assert_eq!(
            (r.revision.as_str(), r.quant.as_deref()),
            ("main", Some("Q4_K_M"))
        );
        let r = HubRef::parse("hf.co/org/repo@v1.0").unwrap().unwrap();
        assert_eq!((r.revision.as_str(), r.quant.as_deref()), ("v1.0", None));
        assert_eq!(
            r.model_ref(None).unwrap().to_string(),
            "hf.co/org/repo:v1.0"
        );
        assert!(HubRef::parse("smollm2").is_none());
        assert!(HubRef::parse("hf://just-a-name").unwrap().is_err());
        assert!(HubRef::parse("hf://a/b/c").unwrap().is_err());
    }
}
