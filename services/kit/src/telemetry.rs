//! Structured logs with `tracing` (human-readable by default, JSON lines
//! with `LOBBY_LOG_FORMAT=json`, what a log pipeline in a cluster wants),
//! and, when `LOBBY_OTLP_ENDPOINT` names a collector, the same spans
//! exported as OpenTelemetry traces (OTLP over HTTP), with the W3C trace
//! context carried across every gRPC hop.

use crate::{ConfigError, Settings};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::{filter::LevelFilter, layer::SubscriberExt as _, EnvFilter, Layer};

const DEFAULT_FILTER: &str = "info,h2=warn,hyper=warn,tower=warn";

/// How a process logs and traces, read with the rest of its settings.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// An `EnvFilter` directive list, e.g. `info,lobby_kit::metrics=debug`.
    pub filter: String,
    pub json: bool,
    /// Where traces go: an OTLP/HTTP collector's base URL (spans are POSTed
    /// to `<endpoint>/v1/traces`); `None` exports nothing.
    pub otlp_endpoint: Option<String>,
    /// The share of new traces kept (a trusted caller's sampled trace is
    /// always followed).
    pub otlp_sample_ratio: f64,
    /// Whether the gateway continues a public caller's `traceparent`. Off,
    /// a caller can neither choose trace ids nor force every request to be
    /// sampled; each request starts its own trace.
    pub otlp_trust_callers: bool,
}

impl TelemetryConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let filter = s.string_or("LOBBY_LOG", DEFAULT_FILTER);
        if let Err(e) = EnvFilter::try_new(&filter) {
            return Err(ConfigError::Invalid {
                setting: "LOBBY_LOG".into(),
                reason: e.to_string(),
            });
        }
        let json = match s.string_or("LOBBY_LOG_FORMAT", "text").as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(ConfigError::Invalid {
                    setting: "LOBBY_LOG_FORMAT".into(),
                    reason: format!("{other:?} is not text or json"),
                })
            }
        };
        let otlp_endpoint = s
            .raw("LOBBY_OTLP_ENDPOINT")
            .map(|e| e.trim().trim_end_matches('/').to_owned())
            .filter(|e| !e.is_empty());
        if let Some(endpoint) = &otlp_endpoint {
            Settings::ensure(
                "LOBBY_OTLP_ENDPOINT",
                endpoint.starts_with("http://") || endpoint.starts_with("https://"),
                "must be an http:// or https:// URL (a collector's OTLP/HTTP port, e.g. http://otel-collector:4318)",
            )?;
        }
        let otlp_sample_ratio: f64 = s.get_or("LOBBY_OTLP_SAMPLE_RATIO", 1.0)?;
        Settings::ensure(
            "LOBBY_OTLP_SAMPLE_RATIO",
            (0.0..=1.0).contains(&otlp_sample_ratio),
            "must be between 0 and 1",
        )?;
        Ok(Self {
            filter,
            json,
            otlp_endpoint,
            otlp_sample_ratio,
            otlp_trust_callers: s.get_or("LOBBY_OTLP_TRUST_CALLER_TRACES", false)?,
        })
    }
}

/// Whether spans are exported: only then is the trace context worth
/// carrying on every call.
static EXPORTING: AtomicBool = AtomicBool::new(false);
static TRUST_CALLERS: AtomicBool = AtomicBool::new(false);

pub fn is_exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Keeps the trace exporter running; dropping it sends what is left.
#[must_use = "dropping the guard stops the trace export"]
pub struct TelemetryGuard(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("trace export did not flush: {e}");
            }
        }
    }
}

/// Sets up logging (and trace export) for the process named `service`.
/// A second call (the dev binary runs every service in one process) keeps
/// the first set-up.
pub fn init(service: &str, config: &TelemetryConfig) -> TelemetryGuard {
    let filter =
        EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let logs = if config.json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_target(true)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_target(true)
            .with_filter(filter)
            .boxed()
    };
    let (traces, provider) = match &config.otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            // The exporter's HTTP client is built now, and needs it.
            crate::grpc_tls::install_crypto_provider();
            match tracer_provider(service, endpoint, config.otlp_sample_ratio) {
                Ok(provider) => {
                    let tracer = provider.tracer("lobby");
                    // Lobby's own spans at info, whatever the log filter says.
                    let layer = tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_filter(LevelFilter::INFO)
                        .boxed();
                    (Some(layer), Some(provider))
                }
                Err(e) => {
                    eprintln!("LOBBY_OTLP_ENDPOINT {endpoint}: no trace export: {e}");
                    (None, None)
                }
            }
        }
    };
    let exporting = provider.is_some();
    let subscriber = tracing_subscriber::registry().with(logs).with(traces);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        if exporting {
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            EXPORTING.store(true, Ordering::Relaxed);
            TRUST_CALLERS.store(config.otlp_trust_callers, Ordering::Relaxed);
        }
        tracing::info!(service, traces = exporting, "telemetry ready");
        TelemetryGuard(provider)
    } else {
        TelemetryGuard(None)
    }
}

fn tracer_provider(
    service: &str,
    endpoint: &str,
    sample_ratio: f64,
) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build()?;
    let sampler = opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
        opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(sample_ratio),
    ));
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(format!("lobby-{service}"))
                .build(),
        )
        .build())
}

/// Writes a tracing context into gRPC metadata or HTTP headers.
struct Injector<'a>(&'a mut http::HeaderMap);

impl opentelemetry::propagation::Injector for Injector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct Extractor<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for Extractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Puts the current span's trace context (`traceparent`) on an outgoing
/// call's headers, when traces are exported.
pub fn inject_current(headers: &mut http::HeaderMap) {
    if !is_exporting() {
        return;
    }
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut Injector(headers));
    });
}

/// Makes `span` a child of the trace context a public caller's request
/// carries, when traces are exported and callers are trusted
/// (`LOBBY_OTLP_TRUST_CALLER_TRACES`).
pub fn continue_callers_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if TRUST_CALLERS.load(Ordering::Relaxed) {
        continue_trace(span, headers);
    }
}

/// Makes `span` a child of the trace context an incoming call from another
/// Lobby process carries, when traces are exported.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !is_exporting() {
        return;
    }
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Extractor(headers)));
    let _ = span.set_parent(parent);
}
