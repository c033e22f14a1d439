//! The OpenAPI 3.1 document of the public contracts, generated from the
//! handlers' annotations and their request and response types, served at
//! `/openapi.json`.
//!
//! It covers seed 000 (connect), seed 001 (agent runs) and seed 002 (link
//! starts) so far; the other seeds and the admin API follow.

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use utoipa::OpenApi;

pub const PATH: &str = "/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lobby",
        description = "Sessions with real-time AI agents: the public REST/JSON contracts.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::contracts::ojin::connect,
        crate::contracts::otas::create,
        crate::contracts::otas::append_event,
        crate::contracts::otas::list_events,
        crate::contracts::otas::append_messages,
        crate::contracts::otas::end,
        crate::contracts::links::start_session,
    ),
    components(schemas(
        crate::contracts::ojin::ConnectRequest,
        crate::contracts::ojin::ConnectResponse,
        crate::error::ErrorBody,
        crate::contracts::links::StartBody,
        crate::contracts::links::StartedSession,
        crate::contracts::links::LinkError,
        crate::contracts::otas::CreateBody,
        crate::contracts::otas::EventBody,
        crate::contracts::otas::MessagesBody,
        crate::contracts::otas::OtasError,
    ))
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    })
}

pub async fn serve() -> Response {
    let mut response = document().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_1_with_its_paths() {
        let doc: serde_json::Value =
            serde_json::from_str(super::document()).expect("the document is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            crate::contracts::ojin::PATH,
            crate::contracts::otas::CREATE_PATH,
            crate::contracts::otas::EVENTS_PATH,
            crate::contracts::otas::MESSAGES_PATH,
            crate::contracts::otas::END_PATH,
            crate::contracts::links::START_PATH,
        ] {
            assert!(doc["paths"][path]["post"].is_object(), "{path}: {doc}");
        }
    }
}
