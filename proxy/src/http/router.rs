//! Which handler serves a request: the route table, 404 for unknown paths, 405 with `Allow`
//! for known paths under the wrong method, and API keys in front of `/v1`.

use http::{Method, Request, Response};
use hyper::body::Incoming;

use super::respond::Body;
use super::server::ServerState;
use crate::routes;
use crate::telemetry::Exchange;
use crate::{Error, Result};

/// Serves `req`, or says why not.
pub async fn route(
    state: &ServerState,
    req: Request<Incoming>,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let allowed = |allowed: &'static str| Error::MethodNotAllowed {
        method: method.to_string(),
        path: path.clone(),
        allowed,
    };
    match path.as_str() {
        "/health" | "/ready" if method != Method::GET => Err(allowed("GET")),
        "/metrics" if method != Method::GET => Err(allowed("GET")),
        "/health" => Ok(routes::health::health()),
        "/metrics" => routes::metrics::metrics(state),
        "/ready" => Ok(routes::health::ready(state)),
        p if p.starts_with("/admin/") => {
            let action = admin_action(p);
            match (&action, &method) {
                (None, _) => return Err(not_found(&method, &path)),
                (Some(AdminAction::Status | AdminAction::Events), m) if *m != Method::GET => {
                    return Err(allowed("GET"))
                }
                (Some(AdminAction::Load(_) | AdminAction::Unload(_)), m) if *m != Method::POST => {
                    return Err(allowed("POST"))
                }
                _ => {}
            }
            state.api_keys.check(req.headers())?;
            match action.expect("checked above") {
                AdminAction::Status => Ok(routes::admin::status(state)),
                AdminAction::Events => routes::admin::events(state, req.uri().query()),
                AdminAction::Load(id) => routes::admin::load(state, id).await,
                AdminAction::Unload(id) => routes::admin::unload(state, id).await,
            }
        }
        p if p == "/v1" || p.starts_with("/v1/") => {
            let post = |m: &Method| {
                if *m == Method::POST {
                    Ok(())
                } else {
                    Err(allowed("POST"))
                }
            };
            let get = |m: &Method| {
                if *m == Method::GET {
                    Ok(())
                } else {
                    Err(allowed("GET"))
                }
            };
            match p {
                "/v1/chat/completions" => post(&method)?,
                "/v1/completions" | "/v1/embeddings" => post(&method)?,
                "/v1/models" => get(&method)?,
                p if p.starts_with("/v1/models/") => get(&method)?,
                _ => return Err(not_found(&method, &path)),
            }
            state.api_keys.check(req.headers())?;
            match p {
                "/v1/chat/completions" => {
                    routes::chat::chat_completions(state, req, exchange).await
                }
                "/v1/completions" => routes::completions::completions(state, req, exchange).await,
                "/v1/embeddings" => routes::embeddings::embeddings(state, req, exchange).await,
                "/v1/models" => Ok(routes::models::list(state)),
                p => routes::models::get(state, &p["/v1/models/".len()..]),
            }
        }
        _ => Err(not_found(&method, &path)),
    }
}

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
        p => match admin_action(p) {
            Some(AdminAction::Status) => "/admin/status",
            Some(AdminAction::Events) => "/admin/events",
            Some(AdminAction::Load(_)) => "/admin/models/{model}/load",
            Some(AdminAction::Unload(_)) => "/admin/models/{model}/unload",
            None => "unknown",
        },
    }
}

enum AdminAction<'a> {
    Status,
    Events,
    Load(&'a str),
    Unload(&'a str),
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
        for random in ["/wp-login.php", "/v1/chat", "/admin/models/x", "/v2/models"] {
            assert_eq!(route_template(random), "unknown", "{random}");
        }
    }
}
