//! Model names: `name[:tag]`, where a name may have `/`-separated namespaces (`org/model`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The tag a name without one gets, as in Docker and Ollama.
pub const DEFAULT_TAG: &str = "latest";

/// A model's name and tag. Both are safe to use as path components.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ModelRef {
    /// `smollm2` or `org/model`.
    pub name: String,
    /// `latest` unless given.
    pub tag: String,
}

impl ModelRef {
    /// Parses `name[:tag]`.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidName {
            name: text.to_string(),
            reason,
        };
        let (name, tag) = match text.rsplit_once(':') {
            Some((name, tag)) => (name, tag),
            None => (text, DEFAULT_TAG),
        };
        if name.is_empty() || name.len() > 128 {
            return Err(invalid("the name must be 1-128 characters"));
        }
        for segment in name.split('/') {
            if !is_safe_segment(segment) {
                return Err(invalid(
                    "each `/`-separated part must be letters, digits, `-`, `_` or `.`, and not `.` or `..`",
                ));
            }
        }
        if tag.len() > 64 || !is_safe_segment(tag) {
            return Err(invalid(
                "the tag must be 1-64 letters, digits, `-`, `_` or `.`",
            ));
        }
        Ok(Self {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }
}

fn is_safe_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

impl From<ModelRef> for String {
    fn from(m: ModelRef) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for ModelRef {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        ModelRef::parse(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_gets_the_latest_tag() {
        let r = ModelRef::parse("smollm2").unwrap();
        assert_eq!((r.name.as_str(), r.tag.as_str()), ("smollm2", "latest"));
        let r = ModelRef::parse("org/qwen3-0.6b:q4").unwrap();
        assert_eq!((r.name.as_str(), r.tag.as_str()), ("org/qwen3-0.6b", "q4"));
        assert_eq!(r.to_string(), "org/qwen3-0.6b:q4");
    }

    #[test]
    fn names_that_could_escape_the_store_are_refused() {
        for bad in [
            "", "../x", "a/../b", "/abs", "a//b", "x:", "x:../y", "sp ace", "a\\b",
        ] {
            assert!(ModelRef::parse(bad).is_err(), "`{bad}` was accepted");
        }
    }
}
