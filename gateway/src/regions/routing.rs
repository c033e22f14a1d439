//! Acting on the choice: serve here, `307` to the chosen region (same path,
//! method and body; the target serves it, `region=<target>` in the URL
//! says so), or proxy it there. Every response names the region that
//! produced it (`X-Lobby-Region`).
//!
//! A browser that follows a cross-origin `307` sends `Origin: null` to the
//! next region (the Fetch standard's tainted origin). So the redirect
//! carries the origin it started from, signed with the regions' shared
//! secret for the target and five minutes; the target checks the origin it
//! names against the agent's allowlist as usual, and answers the browser's
//! `null` in its CORS headers.

use super::{Action, Region, Regions, RouteClass, UnknownRegion};
use crate::{
    contracts::Contract,
    error::{ApiError, ErrorBody},
    AppState,
};
use axum::{
    body::Body,
    extract::{ConnectInfo, RawQuery, Request, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

pub const REGION_HEADER: HeaderName = HeaderName::from_static("x-lobby-region");
pub const TARGET_HEADER: HeaderName = HeaderName::from_static("x-lobby-region-target");
const GRANT_ORIGIN: &str = "lobby_origin";
const GRANT_EXPIRES: &str = "lobby_origin_expires";
const GRANT_SIG: &str = "lobby_origin_sig";
const GRANT_TTL_SECONDS: i64 = 300;
/// The largest body a proxied request carries (starts are small).
const MAX_PROXIED_BODY: usize = 1024 * 1024;

pub const LIST_PATH: &str = "/v1/regions";
pub const NEAREST_PATH: &str = "/v1/regions/nearest";

/// The class of a route, or `None` for what is always served here:
/// preflights, the regions' own routes, health, metrics, admin, webhooks
/// and signed artifact URLs.
pub fn class_of(method: &Method, path: &str) -> Option<RouteClass> {
    let local = [
        "/v1/regions",
        "/healthz",
        "/livez",
        "/metrics",
        "/admin/",
        "/webhooks/",
        "/artifacts/",
    ];
    if method == Method::OPTIONS || local.iter().any(|p| path.starts_with(p)) {
        return None;
    }
    let start = method == Method::POST
        && matches!(
            path,
            "/v1/public/agents/connect"
                | "/v1/links/start-session"
                | "/api/agent/v1/session/create/"
        );
    Some(if start {
        RouteClass::Start
    } else {
        RouteClass::Api
    })
}

fn grant_mac(regions: &Regions, origin: &str, region: &str, expires: i64) -> Hmac<sha2::Sha256> {
    regions
        .config
        .list
        .mac(&["origin-grant", origin, region, &expires.to_string()])
}

/// The origin a redirect signed for this region, if the query carries a
/// valid, unexpired grant.
fn granted_origin(regions: &Regions, query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query?.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (origin, expires, sig) = (
        get(GRANT_ORIGIN)?,
        get(GRANT_EXPIRES)?.parse::<i64>().ok()?,
        hex::decode(get(GRANT_SIG)?).ok()?,
    );
    if expires < lobby_kit::time::now_ms() / 1000 {
        return None;
    }
    grant_mac(regions, origin, regions.me(), expires)
        .verify_slice(&sig)
        .ok()?;
    Some(origin.to_owned())
}

/// The request's URL at `target`, serving it there, with the origin grant
/// when the request has an origin.
fn target_url(
    regions: &Regions,
    target: &Region,
    path: &str,
    query: Option<&str>,
    origin: Option<&str>,
) -> String {
    let ours = [
        super::locate::OVERRIDE_PARAM,
        GRANT_ORIGIN,
        GRANT_EXPIRES,
        GRANT_SIG,
    ];
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !ours.contains(&k.as_ref()) {
            out.append_pair(&k, &v);
        }
    }
    out.append_pair(super::locate::OVERRIDE_PARAM, &target.name);
    if let Some(origin) = origin.filter(|o| *o != "null") {
        let expires = lobby_kit::time::now_ms() / 1000 + GRANT_TTL_SECONDS;
        let sig = grant_mac(regions, origin, &target.name, expires);
        out.append_pair(GRANT_ORIGIN, origin);
        out.append_pair(GRANT_EXPIRES, &expires.to_string());
        out.append_pair(GRANT_SIG, &hex::encode(sig.finalize().into_bytes()));
    }
    format!(
        "{}{path}?{}",
        target.url.trim_end_matches('/'),
        out.finish()
    )
}

fn origin_of(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
}

/// An override naming no configured region: a 400 in the route's contract.
fn unknown_region(
    regions: &Regions,
    UnknownRegion(name): &UnknownRegion,
    contract: Contract,
) -> Response {
    let known: Vec<&str> = regions
        .config
        .list
        .regions
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    contract.render(ApiError::bad_request(format!(
        "region: {name:?} is not one of this deployment's regions ({})",
        known.join(", ")
    )))
}

/// Routes a request by region (see the module's doc).
pub async fn route(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let regions = st.regions.clone();
    if !regions.enabled() {
        return next.run(req).await;
    }
    // A browser's request redirected here: the origin it started from.
    let mut restored = false;
    if origin_of(req.headers()) == Some("null") {
        if let Some(origin) = granted_origin(&regions, req.uri().query()) {
            if let Ok(v) = HeaderValue::from_str(&origin) {
                req.headers_mut().insert(header::ORIGIN, v);
                restored = true;
            }
        }
    }
    let mut response = match class_of(req.method(), req.uri().path()) {
        None => next.run(req).await,
        Some(class) => {
            let client = st.client_ip(peer.ip(), req.headers());
            match regions.choose(req.headers(), req.uri().query(), client) {
                Err(unknown) => unknown_region(&regions, &unknown, Contract::of(req.uri().path())),
                Ok(choice) if choice.region.name == regions.me() => next.run(req).await,
                Ok(choice) => match regions.action(class) {
                    Action::Local => next.run(req).await,
                    Action::Redirect => redirect(&regions, &choice.region, &req),
                    Action::Proxy => proxy(&st, &choice.region, client, req, next).await,
                },
            }
        }
    };
    let headers = response.headers_mut();
    if restored && headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        // The browser checks the answer against the origin it sent.
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("null"),
        );
    }
    if !headers.contains_key(REGION_HEADER) {
        if let Ok(v) = HeaderValue::from_str(regions.me()) {
            headers.insert(REGION_HEADER, v);
        }
    }
    response
}

/// `307` to the same request at `target`. It carries CORS headers, since a
/// browser follows a redirect of a CORS request only when it may read it
/// (it reveals nothing but the URL).
fn redirect(regions: &Regions, target: &Region, req: &Request) -> Response {
    let origin = origin_of(req.headers());
    let location = target_url(regions, target, req.uri().path(), req.uri().query(), origin);
    let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
    let headers = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&target.name) {
        headers.insert(TARGET_HEADER, v);
    }
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-lobby-region, x-lobby-region-target"),
        );
    }
    r
}

/// The hop-by-hop headers a proxy does not pass on (RFC 9110 §7.6.1), and
/// those it sets itself.
fn passes(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// The request answered by `target`'s gateway. If it cannot be reached the
/// request is served here (its health will follow).
async fn proxy(
    st: &AppState,
    target: &Region,
    client: std::net::IpAddr,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match crate::json_body::read_bytes(body, MAX_PROXIED_BODY).await {
        Ok(b) => b,
        Err(e) => return Contract::of(parts.uri.path()).render(e),
    };
    let url = target_url(
        &st.regions,
        target,
        parts.uri.path(),
        parts.uri.query(),
        None,
    );
    let mut forwarded = st
        .regions
        .proxy_http
        .request(parts.method.clone(), &url)
        .body(bytes.clone());
    for (name, value) in &parts.headers {
        if passes(name) && name != lobby_kit::regions::PROXIED_CLIENT_HEADER {
            forwarded = forwarded.header(name, value);
        }
    }
    // The target sees this gateway's address: it is told the client's,
    // signed, for its per-address limits and its audit log.
    forwarded = forwarded.header(
        lobby_kit::regions::PROXIED_CLIENT_HEADER,
        st.regions
            .config
            .list
            .vouch_for_client(&target.name, client),
    );
    match forwarded.send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if passes(name) {
                    response = response.header(name, value);
                }
            }
            response
                .body(Body::from_stream(answer.bytes_stream()))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => {
            tracing::warn!(region = target.name, error = %e.without_url(), "proxy to region failed; serving here");
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

/// One region of the deployment, as `/v1/regions` lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RegionJson {
    name: String,
    /// Its public base URL (empty with one region).
    url: String,
    latitude: f64,
    longitude: f64,
    /// Geoproximity bias, −99…99 (0: none): a positive bias draws callers
    /// from farther away.
    bias: i32,
    healthy: bool,
    /// Whether this gateway is in it.
    #[serde(rename = "self")]
    is_self: bool,
}

fn region_json(regions: &Regions, r: &Region) -> RegionJson {
    RegionJson {
        name: r.name.clone(),
        url: r.url.clone(),
        latitude: r.latitude,
        longitude: r.longitude,
        bias: r.bias,
        healthy: regions.is_healthy(&r.name),
        is_self: r.name == regions.me(),
    }
}

/// The region that serves the caller, and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallerRegion {
    region: String,
    /// `override` (named by `?region=` or `x-lobby-region`), the source of
    /// a location (`headers`, `geoip`), or `unknown`.
    located_by: String,
    /// The region's public base URL, when there are several.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// Where the caller was located, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    longitude: Option<f64>,
    /// From the caller to the region, rounded to 0.1 km.
    #[serde(skip_serializing_if = "Option::is_none")]
    distance_km: Option<f64>,
}

fn caller_json(
    regions: &Regions,
    headers: &HeaderMap,
    query: Option<&str>,
    client: std::net::IpAddr,
) -> Result<CallerRegion, UnknownRegion> {
    let choice = regions.choose(headers, query, client)?;
    let mut out = CallerRegion {
        region: choice.region.name.clone(),
        located_by: choice.located.source().to_owned(),
        // One region (no LOBBY_REGIONS) has no URL of its own to give.
        url: Some(choice.region.url.clone()).filter(|u| !u.is_empty()),
        latitude: None,
        longitude: None,
        distance_km: None,
    };
    if let super::locate::Located::At(point, _) = &choice.located {
        out.latitude = Some(point.latitude);
        out.longitude = Some(point.longitude);
        out.distance_km = Some(
            (super::geo::distance_km(*point, super::point_of(&choice.region)) * 10.0).round()
                / 10.0,
        );
    }
    Ok(out)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RegionList {
    /// This gateway's region.
    region: String,
    regions: Vec<RegionJson>,
    caller: CallerRegion,
}

/// Names a region, over where the caller is.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RegionOverride {
    /// A region's name (also `x-lobby-region`).
    region: Option<String>,
}

/// What the regions routes answer to an unknown `region`.
#[derive(utoipa::IntoResponses)]
pub enum RegionRefusals {
    #[response(
        status = 400,
        description = "`region` names no region of this deployment"
    )]
    BadRequest(ErrorBody),
    #[response(status = 429, description = "A rate limit; `Retry-After` says when")]
    TooMany(ErrorBody),
}

/// `GET /v1/regions`: every region, its health, and which serves the caller.
#[utoipa::path(
    get,
    operation_id = "regions_list",
    path = LIST_PATH,
    tag = "regions",
    params(RegionOverride),
    responses(
        (status = 200, description = "The regions", body = RegionList),
        RegionRefusals,
    )
)]
pub async fn list(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let regions = &st.regions;
    let client = st.client_ip(peer.ip(), &headers);
    let caller = match caller_json(regions, &headers, query.as_deref(), client) {
        Ok(c) => c,
        Err(unknown) => return unknown_region(regions, &unknown, Contract::Ojin),
    };
    let listed: Vec<_> = regions
        .config
        .list
        .regions
        .iter()
        .map(|r| region_json(regions, r))
        .collect();
    Json(RegionList {
        region: regions.me().to_owned(),
        regions: listed,
        caller,
    })
    .into_response()
}

/// `GET /v1/regions/nearest`: the region that serves the caller.
#[utoipa::path(
    get,
    operation_id = "regions_nearest",
    path = NEAREST_PATH,
    tag = "regions",
    params(RegionOverride),
    responses(
        (status = 200, description = "The caller's region", body = CallerRegion),
        RegionRefusals,
    )
)]
pub async fn nearest(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let client = st.client_ip(peer.ip(), &headers);
    match caller_json(&st.regions, &headers, query.as_deref(), client) {
        Ok(c) => Json(c).into_response(),
        Err(unknown) => unknown_region(&st.regions, &unknown, Contract::Ojin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_routed_and_the_rest_stays_unless_configured() {
        let post = Method::POST;
        assert_eq!(
            class_of(&post, "/v1/public/agents/connect"),
            Some(RouteClass::Start)
        );
        assert_eq!(
            class_of(&post, "/v1/links/start-session"),
            Some(RouteClass::Start)
        );
        assert_eq!(
            class_of(&Method::OPTIONS, "/v1/public/agents/connect"),
            None
        );
        assert_eq!(
            class_of(&Method::GET, "/v1/session/status"),
            Some(RouteClass::Api)
        );
        for local in [
            "/v1/regions",
            "/v1/regions/nearest",
            "/healthz",
            "/admin/v1/agents",
            "/artifacts/x",
        ] {
            assert_eq!(class_of(&Method::GET, local), None, "{local}");
        }
    }
}
