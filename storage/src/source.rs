//! What `import` can read: a GGUF file, a model directory, or a Hugging Face cache snapshot
//! (`models--org--name/snapshots/<rev>`, whose files are symlinks into `../../blobs/<sha256>`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One file to import.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path inside the model, `/`-separated.
    pub rel: String,
    /// The real file (symlinks resolved).
    pub abs: PathBuf,
    /// Bytes.
    pub size: u64,
    /// The sha256 the source named it by, if any.
    pub sha256: Option<String>,
    /// Identifies the file's current contents without reading them.
    pub identity: FileIdentity,
}

/// Device, inode, size and modification time: if none changed, neither did the bytes (for files
/// nobody writes in place), so a hash computed once can be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileIdentity {
    /// The identity of the file at `path` now.
    pub fn of(path: &Path) -> std::io::Result<Self> {
        Ok(Self::from_metadata(&std::fs::metadata(path)?))
    }

    /// The identity described by `meta`.
    pub fn from_metadata(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        }
    }
}

/// A scanned source: its files, sorted by path, and a name to suggest when none is given.
#[derive(Debug)]
pub struct Source {
    /// The files.
    pub files: Vec<SourceFile>,
    /// `smollm2-135m-instruct.q4_1` for a GGUF file, `org/name` for a Hugging Face snapshot.
    pub suggested_name: String,
}

/// Lists what importing `path` would store.
pub fn scan(path: &Path) -> Result<Source> {
    let bad = |reason: String| Error::BadSource {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.is_file() {
        let name = file_name(path);
        if !name.ends_with(".gguf") {
            return Err(bad("a single file must be a .gguf file".into()));
        }
        let file = source_file(name.clone(), path).map_err(bad)?;
        return Ok(Source {
            files: vec![file],
            suggested_name: sanitize(name.trim_end_matches(".gguf")),
        });
    }
    let dir = hf_snapshot_of(path).unwrap_or_else(|| path.to_path_buf());
    let mut files = Vec::new();
    walk(&dir, "", &mut files).map_err(bad)?;
    if files.is_empty() {
        return Err(bad("the directory holds no files".into()));
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(Source {
        files,
        suggested_name: suggested_dir_name(&dir),
    })
}

/// A cache root (`models--org--name`) resolves to the snapshot that `refs/main` names.
fn hf_snapshot_of(path: &Path) -> Option<PathBuf> {
    let rev = std::fs::read_to_string(path.join("refs").join("main")).ok()?;
    let snapshot = path.join("snapshots").join(rev.trim());
    snapshot.is_dir().then_some(snapshot)
}

fn suggested_dir_name(dir: &Path) -> String {
    // .../models--org--name/snapshots/<rev> -> org/name
    let repo = dir
        .parent()
        .filter(|p| file_name(p) == "snapshots")
        .and_then(Path::parent)
        .map(file_name)
        .and_then(|n| n.strip_prefix("models--").map(str::to_string));
    match repo {
        Some(repo) => repo.split("--").map(sanitize).collect::<Vec<_>>().join("/"),
        None => sanitize(&file_name(dir)),
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<SourceFile>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| format!("file name {n:?} is not UTF-8"))?;
        // Dot files are tool state (.git, .cache, .gitattributes), not model files.
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let rel = format!("{prefix}{name}");
        let meta = std::fs::metadata(&path).map_err(|e| format!("cannot read {rel}: {e}"))?;
        if meta.is_dir() {
            if out.len() > 100_000 {
                return Err("more than 100000 files; is this really a model?".into());
            }
            walk(&path, &format!("{rel}/"), out)?;
        } else if meta.is_file() {
            out.push(source_file(rel, &path)?);
        }
    }
    Ok(())
}

fn source_file(rel: String, path: &Path) -> Result<SourceFile, String> {
    let abs = path
        .canonicalize()
        .map_err(|e| format!("cannot resolve {rel}: {e}"))?;
    let meta = std::fs::metadata(&abs).map_err(|e| format!("cannot read {rel}: {e}"))?;
    // A Hugging Face cache names LFS blobs by their sha256.
    let target = file_name(&abs);
    let sha256 = (abs.parent().map(file_name).as_deref() == Some("blobs")
        && target.len() == 64
        && target.bytes().all(|b| b.is_ascii_hexdigit()))
    .then(|| target.to_ascii_lowercase());
    Ok(SourceFile {
        rel,
        size: meta.len(),
        identity: FileIdentity::from_metadata(&meta),
        abs,
        sha256,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sanitize(s: &str) -> String {
    let out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() || out == "." || out == ".." {
        "model".into()
    } else {
        out
    }
}
