//! Ollama's model routes: `GET /api/version`, `GET /api/tags`, `POST /api/show`, `GET /api/ps`,
//! `POST /api/pull` (from the team mirror, with NDJSON progress), `DELETE /api/delete`,
//! `POST /api/copy`, and clear refusals for what porten does not do (`/api/push`,
//! `/api/create`, `/api/blobs`). Ollama names models `name:tag` and reads a bare name as
//! `name:latest`; porten's ids leave `:latest` out, so both spellings find the same model.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Map};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::error::error_line;
use super::time::{rfc3339, rfc3339_ms};
use super::wire::{CopyRequest, Details, ModelRequest, PullLine, RunningModel, TagModel};
use crate::catalog::{Catalog, ModelFacts, PullUpdate};
use crate::engine::ModelKind;
use crate::http::respond::{json, Body};
use crate::http::{read_json, sse, ServerState};
use crate::models::{ModelSlot, NewModel};
use crate::residency::{Device, ModelResidency};
use crate::{Error, Result};

/// The Ollama version whose API this one follows, for clients that check it.
pub const OLLAMA_VERSION: &str = "0.12.6";

/// The served model a client's name means: the id itself, or the id without `:latest`. A
/// Hugging Face name (`hf://ORG/REPO[:QUANT]`, `huggingface.co/...`) means the model pulled
/// from it, `hf.co/ORG/REPO:QUANT` (without a quant: the one pulled, when there is one).
pub fn resolve(state: &ServerState, name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::invalid("model", "`model` is required"));
    }
    let hub_name = ["hf://", "huggingface.co/", "https://huggingface.co/"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
        .map(|rest| format!("hf.co/{rest}"));
    let wanted = hub_name.as_deref().unwrap_or(name);
    if state.models.get(wanted).is_ok() {
        return Ok(wanted.to_string());
    }
    if let Some(bare) = wanted.strip_suffix(":latest") {
        if state.models.get(bare).is_ok() {
            return Ok(bare.to_string());
        }
    }
    if wanted.starts_with("hf.co/") && !wanted.contains(':') {
        let pulled: Vec<String> = state
            .models
            .all()
            .iter()
            .map(|slot| slot.spec.id.clone())
            .filter(|id| {
                id.strip_prefix(wanted)
                    .is_some_and(|tag| tag.starts_with(':'))
            })
            .collect();
        if let [one] = pulled.as_slice() {
            return Ok(one.clone());
        }
    }
    Err(Error::ModelNotFound(name.to_string()))
}

/// [`resolve`], and with auto-pull on, a model the server lacks is pulled first: for the
/// routes that answer with a model (chat, generate, embed), not those that manage them.
pub async fn resolve_or_pull(state: &ServerState, name: &str) -> Result<String> {
    match resolve(state, name) {
        Err(Error::ModelNotFound(_)) => Ok(state.models.find(name).await?.spec.id.clone()),
        resolved => resolved,
    }
}

/// The name Ollama's clients see: `name:tag`, `latest` when the id has no tag.
fn ollama_name(id: &str) -> String {
    if id.contains(':') {
        id.to_string()
    } else {
        format!("{id}:latest")
    }
}

/// `GET /api/version`.
pub fn version() -> Response<Body> {
    json(StatusCode::OK, &json!({ "version": OLLAMA_VERSION }))
}

fn facts_of(state: &ServerState, slot: &ModelSlot) -> ModelFacts {
    let known = state.catalog.as_ref().and_then(|c| c.facts(&slot.spec.id));
    known.unwrap_or_else(|| ModelFacts {
        format: match slot.spec.path.extension().and_then(|e| e.to_str()) {
            Some("gguf") => "gguf".into(),
            _ => "safetensors".into(),
        },
        parameter_count: Some(slot.shape.parameters).filter(|p| *p > 0),
        size_bytes: slot.shape.weight_bytes,
        context_length: slot.shape.trained_context,
        block_count: Some(slot.shape.layers),
        head_count_kv: Some(slot.shape.kv_heads),
        modified_ms: state.started * 1000,
        ..ModelFacts::default()
    })
}

fn details(facts: &ModelFacts) -> Details {
    let family = facts.family.clone().unwrap_or_default();
    Details {
        parent_model: String::new(),
        format: facts.format.clone(),
        families: (!family.is_empty()).then(|| vec![family.clone()]),
        family,
        parameter_size: facts
            .parameter_count
            .map(parameter_size)
            .unwrap_or_default(),
        quantization_level: facts.quantization.clone().unwrap_or_default(),
    }
}

/// `134515008` -> `134.52M`, `7615616512` -> `7.6B`, as Ollama writes them.
fn parameter_size(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else {
        format!("{:.2}K", n / 1e3)
    }
}

/// `GET /api/tags`: every model porten can serve.
pub fn tags(state: &ServerState) -> Response<Body> {
    let models: Vec<TagModel> = state
        .models
        .all()
        .iter()
        .map(|slot| {
            let facts = facts_of(state, slot);
            let name = ollama_name(&slot.spec.id);
            TagModel {
                model: name.clone(),
                name,
                modified_at: rfc3339_ms(facts.modified_ms),
                size: facts.size_bytes,
                digest: facts.digest.clone(),
                details: details(&facts),
            }
        })
        .collect();
    json(StatusCode::OK, &json!({ "models": models }))
}

fn requested_model(request: &ModelRequest) -> Result<&str> {
    request
        .model
        .as_deref()
        .or(request.name.as_deref())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| Error::invalid("model", "`model` is required"))
}

/// `POST /api/show`.
pub async fn show(state: &ServerState, req: Request<Incoming>) -> Result<Response<Body>> {
    let request: ModelRequest = read_json(req, &state.config).await?;
    let id = resolve(state, requested_model(&request)?)?;
    let slot = state.models.get(&id)?;
    let facts = facts_of(state, &slot);
    let arch = facts.family.clone().unwrap_or_else(|| "unknown".into());
    let mut info = Map::new();
    info.insert("general.architecture".into(), json!(arch));
    let mut put = |key: &str, value: Option<u64>| {
        if let Some(v) = value {
            info.insert(key.to_string(), json!(v));
        }
    };
    put("general.parameter_count", facts.parameter_count);
    put(&format!("{arch}.context_length"), facts.context_length);
    put(&format!("{arch}.embedding_length"), facts.embedding_length);
    put(&format!("{arch}.block_count"), facts.block_count);
    put(&format!("{arch}.attention.head_count"), facts.head_count);
    put(
        &format!("{arch}.attention.head_count_kv"),
        facts.head_count_kv,
    );
    put(&format!("{arch}.vocab_size"), facts.vocab_size);
    let capabilities: &[&str] = match slot.kind() {
        ModelKind::Chat => &["completion", "tools"],
        ModelKind::Embedding => &["embedding"],
    };
    let sampling = &slot.spec.sampling;
    let parameters: Vec<String> = [
        ("temperature", sampling.temperature.map(|v| v.to_string())),
        ("top_p", sampling.top_p.map(|v| v.to_string())),
        ("top_k", sampling.top_k.map(|v| v.to_string())),
        ("min_p", sampling.min_p.map(|v| v.to_string())),
        (
            "repeat_penalty",
            sampling.repetition_penalty.map(|v| v.to_string()),
        ),
        ("num_predict", sampling.max_tokens.map(|v| v.to_string())),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some(format!("{name} {}", value?)))
    .collect();
    let template = facts.chat_template.clone().unwrap_or_default();
    let modelfile = format!(
        "# Served by porten; this model is declared in porten's configuration or store, not by a \
         Modelfile.\nFROM {}\n{}",
        slot.spec.path.display(),
        parameters
            .iter()
            .map(|p| format!("PARAMETER {p}\n"))
            .collect::<String>()
    );
    Ok(json(
        StatusCode::OK,
        &json!({
            "modelfile": modelfile,
            "parameters": parameters.join("\n"),
            "template": template,
            "details": details(&facts),
            "model_info": info,
            "capabilities": capabilities,
            "modified_at": rfc3339_ms(facts.modified_ms),
        }),
    ))
}

/// `GET /api/ps`: the loaded models.
pub fn ps(state: &ServerState) -> Response<Body> {
    let models: Vec<RunningModel> = state
        .models
        .slots_with_residency(state.models.status())
        .into_iter()
        .filter(|(_, residency)| residency.state == "loaded")
        .map(|(slot, residency)| running(state, &slot, &residency))
        .collect();
    json(StatusCode::OK, &json!({ "models": models }))
}

fn running(state: &ServerState, slot: &ModelSlot, residency: &ModelResidency) -> RunningModel {
    let facts = facts_of(state, slot);
    let size = residency
        .estimated_bytes
        .max(residency.measured_bytes.unwrap_or(0));
    // While it serves (or forever), Ollama shows a time far ahead; porten says a year.
    let left = residency
        .expires_in_ms
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(365 * 86_400));
    let name = ollama_name(&slot.spec.id);
    RunningModel {
        model: name.clone(),
        name,
        size,
        digest: facts.digest.clone(),
        details: details(&facts),
        expires_at: rfc3339(SystemTime::now() + left),
        size_vram: if slot.load_settings.device == Device::Cpu {
            0
        } else {
            size
        },
        context_length: slot.load_settings.context,
    }
}

fn catalog(state: &ServerState) -> Result<Arc<dyn Catalog>> {
    state.catalog.clone().ok_or_else(|| {
        Error::Unsupported(
            "this server runs without a model store; models come from its configuration".into(),
        )
    })
}

/// `POST /api/pull`: brings a model from the team mirror into the store and serves it.
pub async fn pull(state: &Arc<ServerState>, req: Request<Incoming>) -> Result<Response<Body>> {
    let request: ModelRequest = read_json(req, &state.config).await?;
    let name = requested_model(&request)?.to_string();
    let catalog = catalog(state)?;
    // A model served already is pulled under its id (`smollm2:latest` is `smollm2`).
    let id = resolve(state, &name)
        .unwrap_or_else(|_| name.strip_suffix(":latest").unwrap_or(&name).to_string());
    let (progress, mut updates) = mpsc::unbounded_channel();
    let pulling = catalog.pull(&id, progress);
    let state = state.clone();
    let finish = async move {
        let model = pulling.await?;
        if state.models.get(&model.spec.id).is_err() {
            state.models.add(model)?;
        }
        Ok::<_, Error>(())
    };
    if !request.stream.unwrap_or(true) {
        finish.await?;
        return Ok(json(StatusCode::OK, &json!({"status": "success"})));
    }
    let (events, response) = sse::ndjson_channel();
    let span = tracing::Span::current();
    tokio::spawn(
        async move {
            let mut finish = std::pin::pin!(finish);
            let outcome = loop {
                tokio::select! {
                    outcome = &mut finish => break outcome,
                    Some(update) = updates.recv() => {
                        if events.send_named("", &pull_line(update)).await.is_err() {
                            // The pull goes on without its watcher, as Ollama's does.
                            break finish.await;
                        }
                    }
                }
            };
            while let Ok(update) = updates.try_recv() {
                let _ = events.send_named("", &pull_line(update)).await;
            }
            let _ = match outcome {
                Ok(()) => events.send_named("", &json!({"status": "success"})).await,
                Err(error) => {
                    tracing::warn!(error = %error, model = %name, "pull failed");
                    events.send_named("", &error_line(&error)).await
                }
            };
        }
        .instrument(span),
    );
    Ok(response)
}

fn pull_line(update: PullUpdate) -> PullLine {
    PullLine {
        status: update.status,
        digest: update.digest,
        total: update.total,
        completed: update.completed,
    }
}

/// `DELETE /api/delete`: removes a model from the store. Refused while it is loaded (or
/// loading, or serving) and for a pinned model, with the reason.
pub async fn delete(state: &ServerState, req: Request<Incoming>) -> Result<Response<Body>> {
    let request: ModelRequest = read_json(req, &state.config).await?;
    let id = resolve(state, requested_model(&request)?)?;
    let catalog = catalog(state)?;
    let slot = state.models.get(&id)?;
    state.models.remove(&id)?;
    let deleting = id.clone();
    let deleted = tokio::task::spawn_blocking(move || catalog.delete(&deleting))
        .await
        .unwrap_or_else(|e| Err(Error::Store(format!("deleting panicked: {e}"))));
    if let Err(error) = deleted {
        // Still on disk: serve it again.
        let back = NewModel {
            spec: slot.spec.clone(),
            shape: Some(slot.shape.clone()),
        };
        if let Err(e) = state.models.add(back) {
            tracing::error!(model = %id, error = %e, "cannot serve a model whose deletion failed");
        }
        return Err(error);
    }
    Ok(json(StatusCode::OK, &json!({})))
}

/// `POST /api/copy`: the model under a second name (the store shares its blobs).
pub async fn copy(state: &ServerState, req: Request<Incoming>) -> Result<Response<Body>> {
    let request: CopyRequest = read_json(req, &state.config).await?;
    let id = resolve(state, &request.source)?;
    let destination = request.destination.trim();
    let destination = destination.strip_suffix(":latest").unwrap_or(destination);
    if destination.is_empty() {
        return Err(Error::invalid("destination", "`destination` is required"));
    }
    if resolve(state, destination).is_ok() {
        return Err(Error::ModelBusy(format!(
            "model `{destination}` already exists; delete it first"
        )));
    }
    let catalog = catalog(state)?;
    let spec = state.models.get(&id)?.spec.clone();
    let to = destination.to_string();
    let model = tokio::task::spawn_blocking(move || catalog.copy(&spec, &to))
        .await
        .unwrap_or_else(|e| Err(Error::Store(format!("copying panicked: {e}"))))?;
    state.models.add(model)?;
    Ok(json(StatusCode::OK, &json!({})))
}

/// `/api/push`, `/api/create`, `/api/blobs/...`: what to use instead.
pub fn refuse(route: &str) -> Error {
    Error::Unsupported(match route {
        "/api/push" => "porten does not push to ollama.com; share models through the team mirror \
                        with `porten push MODEL`"
            .into(),
        "/api/create" | "/api/blobs/{digest}" => "porten does not create models from a \
             Modelfile; import weights with `porten import FILE --name NAME` (with --quantize \
             TYPE to requantize), and set sampling defaults under [models.sampling]"
            .into(),
        other => format!("{other} is not supported"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_ollama_s_default_tag_and_sizes_its_units() {
        assert_eq!(ollama_name("smollm2"), "smollm2:latest");
        assert_eq!(ollama_name("smollm2:q8_0"), "smollm2:q8_0");
        assert_eq!(parameter_size(134_515_008), "134.52M");
        assert_eq!(parameter_size(7_615_616_512), "7.6B");
    }
}
