//! `POST /hub/nodes/{name}`: a node's report, checked for the join token and answered with
//! the hub's proof that it holds the token too.

use std::net::SocketAddr;
use std::time::Instant;

use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use porten_proxy::http::respond::json;
use porten_proxy::http::Body;

use super::hub::Hub;
use super::join::Report;
use super::token;

/// The largest report read: a node with thousands of models stays far below it.
const MAX_REPORT_BYTES: usize = 16 << 20;

/// `POST /hub/nodes/{name}`: a node's report.
pub async fn report(
    hub: &Hub,
    req: Request<Incoming>,
    peer: SocketAddr,
    name: &str,
) -> Response<Body> {
    let refuse =
        |status: StatusCode, message: String| json(status, &serde_json::json!({"error": message}));
    if let Some(expected) = &hub.settings().token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !token::authorized(expected, given) {
            tracing::warn!(node = name, %peer, "refused a node: wrong or missing join token");
            return refuse(
                StatusCode::UNAUTHORIZED,
                "wrong or missing join token".into(),
            );
        }
    }
    let body = match Limited::new(req.into_body(), MAX_REPORT_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("cannot read the report: {e}"),
            )
        }
    };
    let report: Report = match serde_json::from_slice(&body) {
        Ok(report) => report,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("not a report: {e}")),
    };
    if report.facts.name != name {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "the report names `{}`, the path `{name}`",
                report.facts.name
            ),
        );
    }
    let address = report
        .address
        .unwrap_or_else(|| SocketAddr::new(peer.ip(), report.port).to_string());
    hub.reported(report.facts, address, Instant::now());
    let mut answer = json(StatusCode::OK, &serde_json::json!({"accepted": true}));
    if let Some(token) = &hub.settings().token {
        if let Ok(proof) = token::proof(token, name).parse() {
            answer.headers_mut().insert(token::PROOF_HEADER, proof);
        }
    }
    answer
}
