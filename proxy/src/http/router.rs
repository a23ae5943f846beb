//! Which handler serves a request: the route table, 404 for unknown paths, 405 with `Allow`
//! for known paths under the wrong method, and API keys in front of `/v1` and `/admin`.

use std::sync::Arc;

use http::{Method, Request, Response};
use hyper::body::Incoming;

use super::respond::Body;
use super::state::ServerState;
use crate::dialects::{anthropic, ollama, openai, responses};
use crate::routes;
use crate::telemetry::Exchange;
use crate::{Error, Result};

/// Serves `req`, which [`route_template`] placed on `route`, or says why not.
pub async fn route(
    state: &Arc<ServerState>,
    req: Request<Incoming>,
    route: &'static str,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if route == UNKNOWN {
        return Err(not_found(&method, &path));
    }
    let allowed = match route {
        "/v1/chat/completions"
        | "/v1/completions"
        | "/v1/embeddings"
        | "/v1/responses"
        | "/v1/messages"
        | "/v1/messages/count_tokens"
        | "/admin/models/{model}/load"
        | "/admin/models/{model}/unload"
        | "/api/chat"
        | "/api/generate"
        | "/api/embed"
        | "/api/embeddings"
        | "/api/show"
        | "/api/pull"
        | "/api/copy"
        | "/api/push"
        | "/api/create"
        | "/tokenize"
        | "/detokenize" => "POST",
        "/api/delete" => "DELETE",
        "/api/blobs/{digest}" => "HEAD, POST",
        "/v1/responses/{response_id}" => "GET, DELETE",
        _ => "GET",
    };
    if !allowed.split(", ").any(|m| m == method.as_str()) {
        return Err(Error::MethodNotAllowed {
            method: method.to_string(),
            path,
            allowed,
        });
    }
    // `/api/version` stays open, as `/health` does: clients probe it before they have a key.
    let open = route == "/api/version";
    if !open
        && (route.starts_with("/v1/")
            || route.starts_with("/admin/")
            || route.starts_with("/api/")
            || route.contains("tokeniz"))
    {
        state.api_keys.check(req.headers())?;
    }
    match route {
        "/health" => Ok(routes::health::health()),
        "/ready" => Ok(routes::health::ready(state)),
        "/metrics" => routes::metrics::metrics(state),
        "/admin/status" => Ok(routes::admin::status(state)),
        "/admin/events" => routes::admin::events(state, req.uri().query()),
        "/admin/models/{model}/load" => routes::admin::load(state, admin_model(&path)).await,
        "/admin/models/{model}/unload" => routes::admin::unload(state, admin_model(&path)).await,
        "/v1/chat/completions" => openai::chat_completions(state, req, exchange).await,
        "/v1/completions" => openai::completions(state, req, exchange).await,
        "/v1/embeddings" => openai::embeddings(state, req, exchange).await,
        "/v1/models" => Ok(openai::list_models(state)),
        "/v1/models/{model}" => openai::get_model(state, &path["/v1/models/".len()..]),
        "/v1/responses" => responses::create(state, req, exchange).await,
        "/v1/responses/{response_id}" if method == Method::DELETE => {
            responses::delete(state, response_id(&path))
        }
        "/v1/responses/{response_id}" => responses::retrieve(state, response_id(&path)),
        "/v1/responses/{response_id}/input_items" => {
            responses::input_items(state, response_id(&path))
        }
        "/v1/messages" => anthropic::messages(state, req, exchange).await,
        "/v1/messages/count_tokens" => anthropic::count_tokens(state, req, exchange).await,
        "/api/version" => Ok(ollama::version()),
        "/api/tags" => Ok(ollama::tags(state)),
        "/api/ps" => Ok(ollama::ps(state)),
        "/api/show" => ollama::show(state, req).await,
        "/api/chat" => ollama::chat(state, req, exchange).await,
        "/api/generate" => ollama::generate(state, req, exchange).await,
        "/api/embed" => ollama::embed(state, req, exchange).await,
        "/api/embeddings" => ollama::embeddings(state, req, exchange).await,
        "/api/pull" => ollama::pull(state, req).await,
        "/api/delete" => ollama::delete(state, req).await,
        "/api/copy" => ollama::copy(state, req).await,
        "/api/push" | "/api/create" | "/api/blobs/{digest}" => Err(ollama::refuse(route)),
        "/tokenizer_info" => openai::tokenizer_info(state, req.uri().query()).await,
        "/tokenize" => openai::tokenize(state, req).await,
        "/detokenize" => openai::detokenize(state, req).await,
        other => unreachable!("route_template made `{other}` without a handler"),
    }
}

/// The template of paths no route serves.
const UNKNOWN: &str = "unknown";

/// The route a path belongs to, as a template: the `http.route` of telemetry, whose values
/// must stay few whatever paths clients send.
pub fn route_template(path: &str) -> &'static str {
    match path {
        "/health" => "/health",
        "/ready" => "/ready",
        "/metrics" => "/metrics",
        "/v1/chat/completions" => "/v1/chat/completions",
        "/v1/completions" => "/v1/completions",
        "/v1/embeddings" => "/v1/embeddings",
        "/v1/models" => "/v1/models",
        p if p.starts_with("/v1/models/") => "/v1/models/{model}",
        "/v1/responses" => "/v1/responses",
        p if p.starts_with("/v1/responses/") => match responses_action(p) {
            Some(ResponsesAction::One) => "/v1/responses/{response_id}",
            Some(ResponsesAction::InputItems) => "/v1/responses/{response_id}/input_items",
            None => UNKNOWN,
        },
        "/v1/messages" => "/v1/messages",
        "/v1/messages/count_tokens" => "/v1/messages/count_tokens",
        "/api/version" => "/api/version",
        "/api/tags" => "/api/tags",
        "/api/ps" => "/api/ps",
        "/api/show" => "/api/show",
        "/api/chat" => "/api/chat",
        "/api/generate" => "/api/generate",
        "/api/embed" => "/api/embed",
        "/api/embeddings" => "/api/embeddings",
        "/api/pull" => "/api/pull",
        "/api/delete" => "/api/delete",
        "/api/copy" => "/api/copy",
        "/api/push" => "/api/push",
        "/api/create" => "/api/create",
        p if p.starts_with("/api/blobs/") && p.len() > "/api/blobs/".len() => "/api/blobs/{digest}",
        "/tokenizer_info" => "/tokenizer_info",
        "/tokenize" => "/tokenize",
        "/detokenize" => "/detokenize",
        p => match admin_action(p) {
            Some(AdminAction::Status) => "/admin/status",
            Some(AdminAction::Events) => "/admin/events",
            Some(AdminAction::Load(_)) => "/admin/models/{model}/load",
            Some(AdminAction::Unload(_)) => "/admin/models/{model}/unload",
            None => UNKNOWN,
        },
    }
}

enum ResponsesAction {
    One,
    InputItems,
}

/// `/v1/responses/{id}` or `/v1/responses/{id}/input_items` (ids hold no `/`).
fn responses_action(path: &str) -> Option<ResponsesAction> {
    let rest = path.strip_prefix("/v1/responses/")?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Some(ResponsesAction::One),
        Some((id, "input_items")) if !id.is_empty() => Some(ResponsesAction::InputItems),
        _ => None,
    }
}

/// The response id of a `/v1/responses/{id}` path.
fn response_id(path: &str) -> &str {
    let rest = &path["/v1/responses/".len()..];
    rest.split('/').next().unwrap_or(rest)
}

enum AdminAction<'a> {
    Status,
    Events,
    Load(&'a str),
    Unload(&'a str),
}

/// The model id of an `/admin/models/{id}/load` or `/unload` path.
fn admin_model(path: &str) -> &str {
    match admin_action(path) {
        Some(AdminAction::Load(id) | AdminAction::Unload(id)) => id,
        _ => unreachable!("only model action routes have a model"),
    }
}

/// `/admin/models/{id}/load` and friends; model ids may themselves hold `/`.
fn admin_action(path: &str) -> Option<AdminAction<'_>> {
    match path {
        "/admin/status" => return Some(AdminAction::Status),
        "/admin/events" => return Some(AdminAction::Events),
        _ => {}
    }
    let rest = path.strip_prefix("/admin/models/")?;
    if let Some(id) = rest.strip_suffix("/load").filter(|id| !id.is_empty()) {
        return Some(AdminAction::Load(id));
    }
    rest.strip_suffix("/unload")
        .filter(|id| !id.is_empty())
        .map(AdminAction::Unload)
}

fn not_found(method: &Method, path: &str) -> Error {
    Error::RouteNotFound {
        method: method.to_string(),
        path: path.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::route_template;

    #[test]
    fn route_templates_hide_ids_and_unknown_paths() {
        assert_eq!(
            route_template("/v1/chat/completions"),
            "/v1/chat/completions"
        );
        assert_eq!(
            route_template("/v1/models/org/model:q4"),
            "/v1/models/{model}"
        );
        assert_eq!(
            route_template("/admin/models/a/b/unload"),
            "/admin/models/{model}/unload"
        );
        assert_eq!(
            route_template("/admin/models/x/load"),
            "/admin/models/{model}/load"
        );
        assert_eq!(route_template("/metrics"), "/metrics");
        assert_eq!(
            route_template("/v1/responses/resp_1"),
            "/v1/responses/{response_id}"
        );
        assert_eq!(
            route_template("/v1/responses/resp_1/input_items"),
            "/v1/responses/{response_id}/input_items"
        );
        assert_eq!(
            route_template("/v1/messages/count_tokens"),
            "/v1/messages/count_tokens"
        );
        assert_eq!(
            route_template("/api/blobs/sha256:abc"),
            "/api/blobs/{digest}"
        );
        for random in [
            "/wp-login.php",
            "/v1/chat",
            "/admin/models/x",
            "/v2/models",
            "/v1/responses/",
            "/v1/responses/a/b",
            "/v1/messages/other",
            "/api",
            "/api/blobs/",
            "/api/tags/x",
        ] {
            assert_eq!(route_template(random), "unknown", "{random}");
        }
    }
}
