//! A local stand-in for an OpenTelemetry collector's OTLP/HTTP receiver
//! (JSON encoding): it keeps every span exported to `/v1/traces`, so a
//! test can check which services traced what, and how the spans link.

use axum::{body::Bytes, extract::State, http::StatusCode, routing::post, Router};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// One exported span, as the collector received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedSpan {
    /// The resource's `service.name`.
    pub service: String,
    pub name: String,
    /// Hex, as OTLP/JSON encodes them.
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// String attributes, e.g. `method`, `request_id`.
    pub attributes: Vec<(String, String)>,
}

impl ExportedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

type Spans = Arc<Mutex<Vec<ExportedSpan>>>;

pub struct OtlpCollector {
    /// What `LOBBY_OTLP_ENDPOINT` should name.
    pub url: String,
    spans: Spans,
    task: tokio::task::JoinHandle<()>,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn string_attributes(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let value = a["value"]["stringValue"].as_str()?;
            Some((text(&a["key"]), value.to_owned()))
        })
        .collect()
}

/// Every span of an `ExportTraceServiceRequest` in its JSON encoding.
fn parse(body: &Value) -> Vec<ExportedSpan> {
    let mut out = Vec::new();
    for resource in body["resourceSpans"].as_array().into_iter().flatten() {
        let service = string_attributes(&resource["resource"]["attributes"])
            .into_iter()
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| v)
            .unwrap_or_default();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                out.push(ExportedSpan {
                    service: service.clone(),
                    name: text(&span["name"]),
                    trace_id: text(&span["traceId"]).to_ascii_lowercase(),
                    span_id: text(&span["spanId"]).to_ascii_lowercase(),
                    parent_span_id: text(&span["parentSpanId"]).to_ascii_lowercase(),
                    attributes: string_attributes(&span["attributes"]),
                });
            }
        }
    }
    out
}

async fn traces(State(spans): State<Spans>, body: Bytes) -> (StatusCode, &'static str) {
    match serde_json::from_slice::<Value>(&body) {
        Ok(request) => {
            let parsed = parse(&request);
            if let Ok(mut all) = spans.lock() {
                all.extend(parsed);
            }
            (StatusCode::OK, "{}")
        }
        Err(_) => (StatusCode::BAD_REQUEST, "{}"),
    }
}

impl OtlpCollector {
    pub async fn start() -> Self {
        let spans: Spans = Arc::default();
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, spans, task }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for OtlpCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_spans_and_their_service_from_otlp_json() {
        let body = serde_json::json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "lobby-gateway"}}]},
            "scopeSpans": [{"spans": [{
                "traceId": "0AF7651916CD43DD8448EB211C80319C", "spanId": "B7AD6B7169203331",
                "parentSpanId": "", "name": "request",
                "attributes": [{"key": "request_id", "value": {"stringValue": "r1"}}]
            }]}]
        }]});
        let spans = parse(&body);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].service, "lobby-gateway");
        assert_eq!(spans[0].trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(spans[0].attribute("request_id"), Some("r1"));
    }
}
