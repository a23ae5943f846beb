//! vLLM's tokenizer routes, which evaluation harnesses use to count a prompt's tokens the way
//! the server does (lm-evaluation-harness's `local-completions` finds them by itself):
//! `GET /tokenizer_info`, `POST /tokenize`, `POST /detokenize`. vLLM serves one model; porten
//! takes `model` in the body (or `?model=`), else its only chat model.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use crate::engine::ModelKind;
use crate::http::respond::{json, Body};
use crate::http::{read_json, ServerState};
use crate::{Error, Result};

#[derive(Deserialize)]
struct TokenizeRequest {
    #[serde(default)]
    model: Option<String>,
    prompt: String,
    #[serde(default)]
    add_special_tokens: Option<bool>,
}

#[derive(Deserialize)]
struct DetokenizeRequest {
    #[serde(default)]
    model: Option<String>,
    tokens: Vec<u32>,
}

/// The model a tokenizer request means: the one it names, else the only chat model served.
fn model_for(state: &ServerState, named: Option<&str>) -> Result<String> {
    if let Some(id) = named.filter(|m| !m.is_empty()) {
        state.models.get(id)?;
        return Ok(id.to_string());
    }
    let chat: Vec<String> = state
        .models
        .all()
        .iter()
        .filter(|s| s.kind() == ModelKind::Chat)
        .map(|s| s.spec.id.clone())
        .collect();
    match <[String; 1]>::try_from(chat) {
        Ok([only]) => Ok(only),
        Err(many) => Err(Error::invalid(
            "model",
            format!(
                "this server serves {} chat models ({}); name one with `model`",
                many.len(),
                many.join(", ")
            ),
        )),
    }
}

/// `GET /tokenizer_info[?model=ID]`.
pub async fn tokenizer_info(state: &ServerState, query: Option<&str>) -> Result<Response<Body>> {
    let named = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("model=")));
    let id = model_for(state, named)?;
    let slot = state.models.get(&id)?;
    let template = state
        .catalog
        .as_ref()
        .and_then(|c| c.facts(&id))
        .and_then(|f| f.chat_template);
    // The special tokens' texts are not read from the model files yet: null, which clients
    // treat as unknown.
    Ok(json(
        StatusCode::OK,
        &json!({
            "model": id,
            "eos_token": null,
            "bos_token": null,
            "pad_token": null,
            "chat_template": template,
            "max_model_len": slot.load_settings.context,
            "tokenizer_class": "mistral.rs",
        }),
    ))
}

/// `POST /tokenize`: `{"prompt", "add_special_tokens"}` -> `{"tokens", "count", "max_model_len"}`.
pub async fn tokenize(state: &ServerState, req: Request<Incoming>) -> Result<Response<Body>> {
    let request: TokenizeRequest = read_json(req, &state.config).await?;
    let id = model_for(state, request.model.as_deref())?;
    let model = state.models.admit(&id, None).await?;
    let tokens = model
        .tokenize_text(request.prompt, request.add_special_tokens.unwrap_or(true))
        .await?;
    Ok(json(
        StatusCode::OK,
        &json!({"count": tokens.len(), "max_model_len": model.context_length, "tokens": tokens}),
    ))
}

/// `POST /detokenize`: `{"tokens"}` -> `{"prompt"}`.
pub async fn detokenize(state: &ServerState, req: Request<Incoming>) -> Result<Response<Body>> {
    let request: DetokenizeRequest = read_json(req, &state.config).await?;
    let id = model_for(state, request.model.as_deref())?;
    let model = state.models.admit(&id, None).await?;
    let prompt = model.detokenize(request.tokens).await?;
    Ok(json(StatusCode::OK, &json!({ "prompt": prompt })))
}
