//! The admin API of a server run on its own: set and clear faults, read totals and stats over
//! HTTP.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::config::TrickleFault;
use super::http::text_error;
use super::TrickleServer;

/// Path prefix of [`TrickleServer::admin_router`].
pub const ADMIN_PATH: &str = "/admin/trickle/";

impl TrickleServer {
    /// A small admin API for a server run on its own (a benchmark's server process), under
    /// [`ADMIN_PATH`]: `POST {channel}/faults` (a [`TrickleFault`] in JSON; `400` if invalid),
    /// `DELETE {channel}/faults`, `GET {channel}/totals` ([`ChannelTotals`](super::ChannelTotals)) and `GET stats`
    /// ([`TrickleServerStats`](super::TrickleServerStats)). The local network has its own admin API (per orchestrator).
    pub fn admin_router(&self) -> Router {
        Router::new()
            .route(
                &format!("{ADMIN_PATH}{{channel}}/faults"),
                post(admin_set_fault).delete(admin_clear_faults),
            )
            .route(&format!("{ADMIN_PATH}{{channel}}/totals"), get(admin_totals))
            .route(&format!("{ADMIN_PATH}stats"), get(admin_stats))
            .with_state(self.clone())
    }
}

async fn admin_set_fault(
    State(server): State<TrickleServer>,
    Path(channel): Path<String>,
    axum::Json(fault): axum::Json<TrickleFault>,
) -> Response {
    match fault.validate() {
        Ok(()) => {
            server.set_fault(&channel, fault);
            StatusCode::OK.into_response()
        }
        Err(e) => text_error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn admin_clear_faults(State(server): State<TrickleServer>, Path(channel): Path<String>) -> Response {
    server.clear_faults(&channel);
    StatusCode::OK.into_response()
}

async fn admin_totals(State(server): State<TrickleServer>, Path(channel): Path<String>) -> Response {
    axum::Json(server.channel_totals(&channel)).into_response()
}

async fn admin_stats(State(server): State<TrickleServer>) -> Response {
    axum::Json(server.stats()).into_response()
}
