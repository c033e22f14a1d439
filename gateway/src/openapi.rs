//! The OpenAPI 3.1 document of every public and admin route, generated from
//! the handlers' annotations and their request and response types, served
//! at `/openapi.json`.
//!
//! Each operation names the statuses it answers and, for each, the body in
//! its contract's own envelope (`contracts::Contract`). What the edge and
//! the region router may answer on any route (a rate limit, the deadline, a
//! redirect to another region) is added here from the same functions they
//! decide with. `make test` checks the document with a validator, answers
//! against it, and runs a fuzzer driven by it against a running Lobby
//! (`tests/tests/openapi.rs`, `tests/tests/api_fuzz.rs`).

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

pub const PATH: &str = "/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lobby",
        description = "Sessions with real-time AI agents: the public REST/JSON contracts and the admin API.",
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
        crate::contracts::links::create_link,
        crate::contracts::links::list_links,
        crate::contracts::links::get_link,
        crate::contracts::links::delete_link,
        crate::contracts::links::deactivate_link,
        crate::contracts::artifacts::status,
        crate::contracts::artifacts::transcript,
        crate::contracts::artifacts::audio,
        crate::contracts::artifacts::summary,
        crate::contracts::artifacts::regenerate,
        crate::artifact_urls::download,
        crate::artifact_urls::upload,
        crate::contracts::records::create,
        crate::contracts::records::no_id,
        crate::contracts::records::list,
        crate::contracts::records::delete_without_id,
        crate::contracts::records::no_id_slash,
        crate::contracts::records::delete_without_id_slash,
        crate::contracts::records::query,
        crate::contracts::records::delete,
        crate::regions::routing::list,
        crate::regions::routing::nearest,
        crate::webhooks::livekit::receive,
        crate::webhooks::daily::receive,
        crate::health::healthz,
        crate::health::livez,
        crate::contracts::ojin::preflight,
        crate::artifact_urls::head,
        crate::metrics::render,
        serve,
    ),
    nest((path = "/admin/v1", api = crate::admin::AdminDoc)),
    // The error envelopes: the refusal lists (`IntoResponses`) name them but
    // do not register them.
    components(schemas(
        crate::error::ErrorBody,
        crate::contracts::otas::OtasError,
        crate::contracts::links::LinkError,
        crate::contracts::records::RecordsMessage,
        crate::contracts::artifacts::ArtifactsError,
    )),
    modifiers(&Credentials, &EdgeAnswers),
)]
pub struct ApiDoc;

/// The credentials operations name in their `security`.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        let header = |name: &str, what: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, what)))
        };
        components.add_security_scheme(
            "admin_token",
            bearer("The bootstrap admin token (LOBBY_ADMIN_TOKEN)"),
        );
        components.add_security_scheme(
            "api_key",
            header(
                "x-api-key",
                "An account API key (`lby_…`) with the route's scope; `Authorization: Bearer` works too",
            ),
        );
        components.add_security_scheme(
            "records_key",
            bearer("An account API key (`lby_…`) with `sessions:read` or `sessions:write`"),
        );
        components.add_security_scheme(
            "database_id_hash",
            header("database-id-hash", "The key's account's `database_id_hash`"),
        );
    }
}

/// What the edge and the region router answer on the routes they guard,
/// added to each operation that does not list it already.
struct EdgeAnswers;

impl Modify for EdgeAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use axum::http::Method;
        for (path, item) in doc.paths.paths.iter_mut() {
            let contract = crate::contracts::Contract::of(path);
            for (method, operation) in [
                (Method::GET, &mut item.get),
                (Method::POST, &mut item.post),
                (Method::PUT, &mut item.put),
                (Method::PATCH, &mut item.patch),
                (Method::DELETE, &mut item.delete),
                (Method::HEAD, &mut item.head),
                (Method::OPTIONS, &mut item.options),
            ] {
                let Some(operation) = operation else {
                    continue;
                };
                // A HEAD answer has no body, whatever its status.
                let body = (method != Method::HEAD).then_some(contract);
                // The request deadline; seed 004 says its server errors as 499.
                let deadline = if contract == crate::contracts::Contract::Records {
                    "499"
                } else {
                    "504"
                };
                add(
                    operation,
                    deadline,
                    "No answer within the request deadline (`timeout`)",
                    body,
                );
                if !crate::edge::unlimited(path) {
                    add(
                        operation,
                        "429",
                        "Too many requests from this address; `Retry-After` says when",
                        body,
                    );
                }
                if crate::regions::routing::class_of(&method, path).is_some() {
                    add(operation, "307", "Another region serves it (deployments with several regions): `Location` is its URL, `x-lobby-region-target` its name", None);
                    add(
                        operation,
                        "400",
                        "`region` or `x-lobby-region` names no region of this deployment",
                        body,
                    );
                    region_parameters(operation);
                }
            }
        }
    }
}

/// Adds `status` to `operation` unless it lists it, with the contract's
/// envelope as its body (none for a redirect or a HEAD).
fn add(
    operation: &mut utoipa::openapi::path::Operation,
    status: &str,
    description: &str,
    body: Option<crate::contracts::Contract>,
) {
    use utoipa::openapi::{schema::Ref, ContentBuilder, ResponseBuilder};
    if operation.responses.responses.contains_key(status) {
        return;
    }
    let mut response = ResponseBuilder::new().description(description);
    if let Some(contract) = body {
        response = response.content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(contract.error_schema())))
                .build(),
        );
    }
    operation
        .responses
        .responses
        .insert(status.to_owned(), response.build().into());
}

/// `?region=` and `x-lobby-region`: the caller names the region to serve it.
fn region_parameters(operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::{
        path::{ParameterBuilder, ParameterIn},
        schema::{ObjectBuilder, Type},
        RefOr, Required,
    };
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    for (name, place) in [
        (crate::regions::locate::OVERRIDE_PARAM, ParameterIn::Query),
        (crate::regions::locate::OVERRIDE_HEADER, ParameterIn::Header),
    ] {
        if parameters
            .iter()
            .any(|p| matches!(p, RefOr::T(p) if p.name == name))
        {
            continue;
        }
        parameters.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(place)
                .required(Required::False)
                .description(Some(
                    "A region to serve this request, over the one nearest the caller",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build()
                .into(),
        );
    }
}

/// Raw bytes as sent (an audio file, a JSON artifact): `string`, `binary`.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for Binary {}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    })
}

/// This document.
#[utoipa::path(
    get,
    operation_id = "openapi_document",
    path = PATH,
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
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
    fn the_document_is_openapi_3_1_with_every_route() {
        let doc: serde_json::Value =
            serde_json::from_str(super::document()).expect("the document is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        for (method, path) in [
            ("post", crate::contracts::ojin::PATH),
            ("post", crate::contracts::otas::CREATE_PATH),
            ("post", crate::contracts::links::START_PATH),
            ("get", crate::contracts::artifacts::STATUS_PATH),
            ("get", crate::contracts::records::AGENT_PATH),
            ("get", crate::regions::routing::LIST_PATH),
            ("get", "/admin/v1/accounts/{id}/usage"),
            ("post", "/admin/v1/sessions/{id}/end"),
            ("patch", "/admin/v1/keys/{prefix}"),
        ] {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }
        let operations: usize = doc["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|p| p.as_object().map_or(0, |m| m.len()))
            .sum();
        assert_eq!(operations, 69, "every routed operation is documented");
    }
}
