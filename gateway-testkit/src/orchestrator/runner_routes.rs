//! The live-runner routes of the orchestrator double, in one place: go's `startAIServer`
//! registrations (`server/ai_http.go`), Scope's, and `/refresh-payment` (`server/rpc.go`).

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use axum::Router;

use super::byoc::method_not_allowed;
use super::{runner_callbacks, runner_proxy, runner_sessions, runners, scope, LocalOrchestrator};

/// The live-runner routes (go's `startAIServer` registrations, `server/ai_http.go`), Scope's
/// and `/refresh-payment` (`server/rpc.go`) among them.
pub(super) fn routes() -> Router<LocalOrchestrator> {
    Router::new()
        .route(gateway_core::runners::HEARTBEAT_PATH, post(runners::heartbeat).fallback(method_not_allowed))
        .route("/runners/{id}/unregister", post(runners::unregister).fallback(method_not_allowed))
        .route("/apps/{id}/session", post(runner_sessions::reserve).fallback(method_not_allowed))
        .route(
            "/apps/{id}/session/{sid}/payment",
            post(runner_sessions::payment).fallback(method_not_allowed),
        )
        .route("/apps/{id}/session/{sid}/stop", post(runner_sessions::stop).fallback(method_not_allowed))
        // go's reverse proxy relays bodies of any size.
        .route("/apps/{id}/session/{sid}/app", any(runner_proxy::app_redirect))
        .route("/apps/{id}/session/{sid}/app/", any(runner_proxy::session).layer(DefaultBodyLimit::disable()))
        .route(
            "/apps/{id}/session/{sid}/app/{*path}",
            any(runner_proxy::session).layer(DefaultBodyLimit::disable()),
        )
        .route("/apps/{id}/app", any(runner_proxy::app_redirect))
        .route("/apps/{id}/app/", any(runner_proxy::single_shot).layer(DefaultBodyLimit::disable()))
        .route("/apps/{id}/app/{*path}", any(runner_proxy::single_shot).layer(DefaultBodyLimit::disable()))
        // go reads the body with a 1 MB limit of its own.
        .route("/scope", any(scope::start_scope).layer(DefaultBodyLimit::disable()))
        .route("/refresh-payment", post(runner_sessions::refresh_payment).fallback(method_not_allowed))
        .route(
            "/runner/{id}/session/{sid}/channels",
            post(runner_callbacks::create_channels)
                .delete(runner_callbacks::delete_channels)
                .fallback(method_not_allowed),
        )
        .route(
            "/runner/{id}/session/{sid}/proxy",
            post(runner_callbacks::create_proxy).fallback(method_not_allowed),
        )
        .route("/runner/{id}/session/{sid}/stop", post(runner_callbacks::stop).fallback(method_not_allowed))
        .route("/run/{proxy}", any(runner_callbacks::run).layer(DefaultBodyLimit::disable()))
        .route("/run/{proxy}/", any(runner_callbacks::run).layer(DefaultBodyLimit::disable()))
        .route("/run/{proxy}/{*path}", any(runner_callbacks::run).layer(DefaultBodyLimit::disable()))
        .route(gateway_core::runners::DISCOVERY_PATH, get(runners::discovery).fallback(method_not_allowed))
}
