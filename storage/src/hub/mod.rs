//! Models from a Hugging Face Hub (huggingface.co, or a Hub-protocol mirror such as olah at
//! `HF_ENDPOINT`): list a repository through the Hub API, choose the files of a quantization
//! (GGUF) or the safetensors model, download each one (resuming a partial file, verified
//! against the Hub's sha256), and import them into the store as one model named
//! `hf.co/ORG/REPO:TAG`, within the store's disk budget.

mod download;
mod reference;
mod select;

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use serde::Deserialize;

pub use reference::HubRef;
pub use select::{quant_of, select, HubFile, Selection, DEFAULT_QUANT};

use crate::store::{ImportProgress, Store};
use crate::{Error, ModelRef, Result};

/// Files of one model downloaded at once.
const PARALLEL_FILES: usize = 4;

/// Where the Hub is and who we are there.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// `https://huggingface.co`, or a mirror's URL.
    pub endpoint: String,
    /// A token for private and gated repositories.
    pub token: Option<String>,
    /// The local Hugging Face cache (`$HF_HUB_CACHE`, `$HF_HOME/hub`,
    /// `~/.cache/huggingface/hub`), whose files are linked rather than downloaded again.
    pub cache_dir: Option<PathBuf>,
}

impl HubSettings {
    /// From `HF_ENDPOINT` and `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`, or the token file the
    /// `hf` CLI writes: `$HF_HOME/token`, `~/.cache/huggingface/token`).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Self {
        let endpoint = env("HF_ENDPOINT")
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "https://huggingface.co".into())
            .trim_end_matches('/')
            .to_string();
        let hf_home = env("HF_HOME")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface")));
        let token_file = hf_home.as_ref().map(|dir| dir.join("token"));
        let cache_dir = env("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| hf_home.map(|dir| dir.join("hub")));
        let token = env("HF_TOKEN")
            .or_else(|| env("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| std::fs::read_to_string(token_file?).ok())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Self {
            endpoint,
            token,
            cache_dir,
        }
    }
}

/// A Hub, opened.
#[derive(Debug, Clone)]
pub struct Hub {
    settings: HubSettings,
    http: reqwest::Client,
}

/// What a pull from the Hub did.
#[derive(Debug, Clone)]
pub struct HubPull {
    /// The model as stored.
    pub model: ModelRef,
    /// Bytes downloaded (not counting what a partial file already had, or files linked from
    /// the store or the local Hugging Face cache).
    pub downloaded: u64,
    /// The store had the model with these very files: nothing was done.
    pub up_to_date: bool,
}

#[derive(Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    lfs: Option<Lfs>,
}

#[derive(Deserialize)]
struct Lfs {
    oid: String,
}

impl Hub {
    /// A client for `settings`' Hub.
    pub fn open(settings: HubSettings) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("porten/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| hub_error("", format!("cannot build an HTTP client: {e}")))?;
        Ok(Self { settings, http })
    }

    /// The Hub's URL.
    pub fn endpoint(&self) -> &str {
        &self.settings.endpoint
    }

    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(url);
        match &self.settings.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Every file of the repository at the revision, with sizes and sha256s.
    pub async fn list(&self, hub: &HubRef) -> Result<Vec<HubFile>> {
        let mut url = Some(format!(
            "{}/api/models/{}/tree/{}?recursive=true",
            self.settings.endpoint, hub.repo, hub.revision
        ));
        let mut files = Vec::new();
        while let Some(next) = url.take() {
            let response = self.get(&next).send().await.map_err(|e| {
                hub_error(&hub.repo, format!("cannot reach {}: {e}", self.endpoint()))
            })?;
            let response = checked(response, hub, "").await?;
            // The Hub pages long listings; the next page is in `Link: <...>; rel="next"`.
            url = next_page(response.headers());
            let entries: Vec<TreeEntry> = response.json().await.map_err(|e| {
                hub_error(&hub.repo, format!("the file listing is not the Hub's: {e}"))
            })?;
            files.extend(
                entries
                    .into_iter()
                    .filter(|e| e.kind == "file")
                    .map(|e| HubFile {
                        path: e.path,
                        size: e.size,
                        sha256: e.lfs.map(|l| l.oid),
                    }),
            );
        }
        Ok(files)
    }

    /// Pulls the model `hub` names into `store`: chooses its files, checks the disk budget
    /// before a byte, downloads each (resuming a partial one), verifies, and imports.
    pub async fn pull(
        &self,
        store: &Arc<Store>,
        hub: &HubRef,
        progress: &dyn ImportProgress,
    ) -> Result<HubPull> {
        let files = self.list(hub).await?;
        let selection =
            select(&files, hub.quant.as_deref()).map_err(|reason| hub_error(&hub.repo, reason))?;
        let (quant, chosen) = match selection {
            Selection::Gguf { quant, files } => (Some(quant), files),
            Selection::Safetensors(files) => (None, files),
        };
        let model = hub.model_ref(quant.as_deref())?;
        if up_to_date(store, &model, &chosen) {
            return Ok(HubPull {
                model,
                downloaded: 0,
                up_to_date: true,
            });
        }
        let total: u64 = chosen.iter().map(|f| f.size).sum();
        // Room for every byte before the first, evicting by the store's policy, or NoRoom
        // with the numbers. The import below reserves its blobs again (its hard links take
        // no more disk), so this reservation ends just before it.
        let (reservation, _) = store.reserve(&[], total, true, None)?;
        // Partial files live in the store's own download folder, per repository and revision,
        // so an interrupted pull resumes where it stopped.
        let staging = store.layout().hub_downloads().join(format!(
            "hf-{}",
            blake3::hash(format!("{}@{}", hub.repo, hub.revision).as_bytes()).to_hex()
        ));
        progress.phase("downloading", total);
        let known = known_blobs(store, &self.settings, hub);
        // Several files (safetensors shards, split parts) download side by side, in order.
        let staging_ref = &staging;
        let known_ref = &known;
        let results: Vec<Result<(&HubFile, crate::BlobId, u64)>> =
            futures::stream::iter(chosen.iter())
                .map(|file| async move {
                    let have = file.sha256.as_ref().and_then(|sha| known_ref.get(sha));
                    if let Some(local) = have {
                        if let Ok(blake3) = download::link(local, staging_ref, file) {
                            tracing::info!(file = %file.path, from = %local.display(), "already on disk; linked, not downloaded");
                            progress.advance(file.size);
                            return Ok((file, blake3, 0));
                        }
                    }
                    let fetched = download::fetch(self, hub, file, staging_ref, progress).await?;
                    Ok((file, fetched.blake3, fetched.downloaded))
                })
                .buffered(PARALLEL_FILES)
                .collect()
                .await;
        let mut downloaded = 0;
        let mut staged = Vec::with_capacity(chosen.len());
        for result in results {
            let (file, blake3, bytes) = result?;
            downloaded += bytes;
            staged.push((file, blake3));
        }
        progress.phase_done();
        let manifest = self.install(hub, &model, &staging, &staged, reservation)?;
        let _ = std::fs::remove_dir_all(&staging);
        tracing::info!(model = %manifest.model, files = manifest.files.len(), "model stored from the Hub");
        Ok(HubPull {
            model,
            downloaded,
            up_to_date: false,
        })
    }

    /// Reads the staged files' metadata, moves them into the store as blobs (they are named by
    /// the blake3 computed on the way in: nothing is hashed twice) and writes the manifest. A
    /// single GGUF file is stored under its file name, as `porten import` stores one.
    fn install(
        &self,
        hub: &HubRef,
        model: &ModelRef,
        staging: &std::path::Path,
        staged: &[(&HubFile, crate::BlobId)],
        mut reservation: crate::Reservation<'_>,
    ) -> Result<crate::Manifest> {
        let single_gguf = matches!(staged, [(f, _)] if f.path.ends_with(".gguf"));
        let stored_path = |file: &HubFile| match single_gguf {
            true => file
                .path
                .rsplit('/')
                .next()
                .unwrap_or(&file.path)
                .to_string(),
            false => file.path.clone(),
        };
        let located: Vec<(String, PathBuf)> = staged
            .iter()
            .map(|(f, _)| (stored_path(f), staging.join(&f.path)))
            .collect();
        let listed: Vec<(String, &std::path::Path)> = located
            .iter()
            .map(|(rel, path)| (rel.clone(), path.as_path()))
            .collect();
        let metadata = crate::metadata::read(&listed).map_err(|reason| {
            hub_error(
                &hub.repo,
                format!("its files are not a model porten can read: {reason}"),
            )
        })?;
        let mut files = Vec::with_capacity(staged.len());
        for ((file, blake3), (_, path)) in staged.iter().zip(&located) {
            crate::fsutil::read_only(path);
            reservation.commit_blob(path, *blake3, file.size)?;
            files.push(crate::FileEntry {
                path: stored_path(file),
                size: file.size,
                blake3: *blake3,
                sha256: file.sha256.clone(),
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let now = crate::fsutil::now_ms();
        let manifest = crate::Manifest {
            schema: crate::manifest::SCHEMA,
            model: model.clone(),
            files,
            metadata,
            source: Some(format!(
                "{}/{} at {}",
                self.endpoint(),
                hub.repo,
                hub.revision
            )),
            created_ms: now,
            last_used_ms: now,
            pinned: false,
        };
        reservation.install(manifest)
    }
}

/// Whether the store has `model` with exactly these files (by path, size and sha256).
fn up_to_date(store: &Store, model: &ModelRef, chosen: &[HubFile]) -> bool {
    let Ok(manifest) = store.manifest(model) else {
        return false;
    };
    let stored_name = |f: &HubFile| match chosen {
        // A single GGUF file is stored under its file name, wherever it sat in the repo.
        [_] if f.path.ends_with(".gguf") => {
            f.path.rsplit('/').next().unwrap_or(&f.path).to_string()
        }
        _ => f.path.clone(),
    };
    manifest.files.len() == chosen.len()
        && chosen.iter().all(|f| {
            let path = stored_name(f);
            manifest.files.iter().any(|m| {
                m.path == path && m.size == f.size && (f.sha256.is_none() || m.sha256 == f.sha256)
            })
        })
}

/// Files already on this disk by their sha256: the store's blobs whose manifests name one,
/// and the blobs of the repository in the local Hugging Face cache (named by sha256 there).
fn known_blobs(
    store: &Store,
    settings: &HubSettings,
    hub: &HubRef,
) -> std::collections::HashMap<String, PathBuf> {
    let mut known = std::collections::HashMap::new();
    if let Some(cache) = &settings.cache_dir {
        let blobs = cache
            .join(format!("models--{}", hub.repo.replace('/', "--")))
            .join("blobs");
        for entry in std::fs::read_dir(blobs).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()) {
                known.insert(name, entry.path());
            }
        }
    }
    for manifest in store.manifests().unwrap_or_default().values() {
        for file in &manifest.files {
            if let Some(sha) = &file.sha256 {
                let blob = store.layout().blob(&file.blake3);
                if blob.is_file() {
                    known.insert(sha.clone(), blob);
                }
            }
        }
    }
    known
}

fn next_page(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        rel.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// The response, or the Hub's error in words: 401 private or missing, 403 gated, 404 missing.
async fn checked(
    response: reqwest::Response,
    hub: &HubRef,
    file: &str,
) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let code = response
        .headers()
        .get("x-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let what = if file.is_empty() {
        format!("{}@{}", hub.repo, hub.revision)
    } else {
        format!("{file} in {}@{}", hub.repo, hub.revision)
    };
    let reason = match (status.as_u16(), code.as_str()) {
        (403, _) | (_, "GatedRepo") => format!(
            "{what} is gated: accept its terms on the Hub with your account, then set HF_TOKEN"
        ),
        (401, _) => format!(
            "{what}: the Hub answered 401; the repository is private or does not exist (set \
             HF_TOKEN for a private one)"
        ),
        (404, "RevisionNotFound") => {
            format!("revision `{}` of {} does not exist", hub.revision, hub.repo)
        }
        (404, _) => format!("{what} does not exist on {}", "the Hub"),
        (status, _) => format!("{what}: the Hub answered {status}"),
    };
    Err(hub_error(&hub.repo, reason))
}

fn hub_error(repo: &str, reason: String) -> Error {
    Error::Hub {
        repo: repo.to_string(),
        reason,
    }
}
