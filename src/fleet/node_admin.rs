//! The hub's calls to a node's admin routes: unloading idle models to make room, and loading
//! a hot model's second copy. The client's credentials go along: a node's API keys guard
//! its admin routes too.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt, Full};

use super::hub::Hub;

/// How long a node may take to load a model the hub asked for.
const LOAD_WITHIN: Duration = Duration::from_secs(300);

/// Asks the node at `address` to unload `model` (the client's credentials go along: the
/// node's API keys guard its admin routes too).
pub async fn unload(hub: &Hub, address: &str, model: &str, headers: &http::HeaderMap) {
    if let Err(e) = admin(hub, address, model, "unload", headers).await {
        tracing::warn!(address, model, error = %e, "cannot unload a model to make room");
    }
}

/// Loads another copy of a hot model.
pub async fn load_copy(
    hub: Arc<Hub>,
    node: String,
    address: String,
    model: String,
    evict: Vec<String>,
    headers: http::HeaderMap,
) {
    tracing::info!(node = %node, model = %model, "placing a second copy of a busy model");
    for victim in &evict {
        unload(&hub, &address, victim, &headers).await;
    }
    if let Err(e) = admin(&hub, &address, &model, "load", &headers).await {
        tracing::warn!(node = %node, model = %model, error = %e, "the second copy did not load");
        hub.fleet().refused(&node, &model);
    }
}

async fn admin(
    hub: &Hub,
    address: &str,
    model: &str,
    action: &str,
    headers: &http::HeaderMap,
) -> Result<(), String> {
    let mut request = Request::post(format!("http://{address}/admin/models/{model}/{action}"))
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, auth.clone());
    }
    let answer = tokio::time::timeout(LOAD_WITHIN, hub.client().request(request))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let status = answer.status();
    let _ = answer.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the node answered {status}"))
    }
}
