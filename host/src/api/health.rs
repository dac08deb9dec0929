//! `/healthz` (the process answers) and `/readyz` (it can serve sessions:
//! the store answers, Docker answers, the pool has its warm sandboxes).
//! Anyone learns whether the host is ready; only an operator token gets
//! the details (error texts name databases, sockets and paths).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::auth::MaybeUser;
use super::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
) -> (StatusCode, Json<Value>) {
    let mut ready = true;
    let store = match state.store.ping().await {
        Ok(()) => json!({"ok": true}),
        Err(e) => {
            ready = false;
            json!({"ok": false, "error": e.to_string()})
        }
    };
    let (docker, pool) = match &state.pool {
        None => {
            ready = false;
            (
                json!({"ok": false, "error": "Docker was unreachable at startup; restart the host once it runs"}),
                Value::Null,
            )
        }
        Some(pool) => {
            let docker = match pool.docker().ping().await {
                Ok(()) => json!({"ok": true}),
                Err(e) => {
                    ready = false;
                    json!({"ok": false, "error": e.to_string()})
                }
            };
            let stats = pool.stats();
            let wanted = pool.config().warm;
            let warm = stats.warm >= wanted;
            ready &= warm;
            (
                docker,
                json!({"ok": warm, "warm": stats.warm, "wanted": wanted, "running": stats.running, "booting": stats.booting}),
            )
        }
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !user.is_some_and(|u| u.admin) {
        return (status, Json(json!({"ready": ready})));
    }
    (
        status,
        Json(json!({"ready": ready, "store": store, "docker": docker, "pool": pool})),
    )
}
