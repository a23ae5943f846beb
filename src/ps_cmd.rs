//! `porten ps` (the running server's loaded models) and `porten stop MODEL` (unload one), over
//! its admin API.

use serde_json::{json, Value};

use crate::client::Server;
use crate::progress::human_bytes;

/// The columns of `porten ps`, in order. Stable: scripts may read them.
pub const PS_COLUMNS: [&str; 8] = [
    "NAME",
    "STATE",
    "SIZE",
    "ESTIMATED",
    "MEASURED",
    "CONTEXT",
    "UNTIL",
    "REQUESTS",
];

/// The models the server holds (loading, loaded, unloading, failed), as `/admin/status` has
/// them.
pub async fn held(server: &Server) -> anyhow::Result<Vec<Value>> {
    let status = server.get("/admin/status").await?;
    Ok(status["models"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["state"] != "available")
        .cloned()
        .collect())
}

/// `porten ps [--json]`.
pub async fn ps(server: &Server, as_json: bool) -> anyhow::Result<()> {
    let models = held(server).await?;
    if as_json {
        let rows: Vec<Value> = models.iter().map(json_row).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "models": rows }))?
        );
        return Ok(());
    }
    let line = |cells: [String; 8]| {
        println!(
            "{:<28} {:<10} {:>10} {:>10} {:>10} {:>8} {:<16} {:<10}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7]
        )
    };
    line(PS_COLUMNS.map(str::to_string));
    for m in &models {
        let row = json_row(m);
        let bytes = |key: &str| {
            row[key]
                .as_u64()
                .map(human_bytes)
                .unwrap_or_else(|| "-".into())
        };
        line([
            row["name"].as_str().unwrap_or_default().to_string(),
            row["state"].as_str().unwrap_or_default().to_string(),
            bytes("size_bytes"),
            bytes("estimated_bytes"),
            bytes("measured_bytes"),
            row["context_length"].to_string(),
            until(&row),
            format!("{} + {} queued", row["in_flight"], row["queued"]),
        ]);
    }
    Ok(())
}

/// One model as `ps --json` prints it (the documented, stable fields).
fn json_row(m: &Value) -> Value {
    let estimated = m["estimated_bytes"].as_u64().unwrap_or(0);
    let measured = m["measured_bytes"].as_u64();
    json!({
        "name": m["id"],
        "state": m["state"],
        "size_bytes": estimated.max(measured.unwrap_or(0)),
        "estimated_bytes": estimated,
        "measured_bytes": measured,
        "context_length": m["context_length"],
        "keep_alive": m["keep_alive"],
        "expires_in_ms": m["expires_in_ms"],
        "in_flight": m["in_flight"],
        "queued": m["queued"],
        "error": m["error"],
    })
}

/// When an idle model will be unloaded: `4 minutes from now`, `forever`, or `serving`.
fn until(row: &Value) -> String {
    if row["keep_alive"] == "-1" {
        return "forever".into();
    }
    match row["expires_in_ms"].as_u64() {
        None => "serving".into(),
        Some(ms) if ms < 60_000 => format!("{} s from now", ms / 1000),
        Some(ms) => format!("{} min from now", ms / 60_000),
    }
}

/// `porten stop MODEL`.
pub async fn stop(server: &Server, model: &str) -> anyhow::Result<()> {
    let id = model.strip_suffix(":latest").unwrap_or(model);
    let answer = server
        .post(&format!("/admin/models/{id}/unload"), &json!({}))
        .await?;
    match answer["state"].as_str() {
        Some("unloaded") => println!("stopped {id}"),
        _ => println!("{id} will stop once its requests are answered"),
    }
    Ok(())
}
