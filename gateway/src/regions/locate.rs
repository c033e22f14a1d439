//! Where a caller is, in order of trust:
//! 1. an explicit override (`region` query parameter or `X-Lobby-Region`
//!    header), which must name a configured region;
//! 2. the trusted edge's geo headers (a CDN's latitude and longitude; their
//!    names are configured, and only a deployment whose edge sets and
//!    strips them should configure them);
//! 3. a GeoIP lookup of the client's address in a MaxMind-format database,
//!    the address being the TCP peer or, behind trusted proxies only, the
//!    `X-Forwarded-For` entry they vouch for (`client_addr`).

use super::geo::Point;
use axum::http::HeaderMap;
use serde::Deserialize;
use std::net::IpAddr;

pub const OVERRIDE_HEADER: &str = "x-lobby-region";
pub const OVERRIDE_PARAM: &str = "region";

/// How the caller was located.
#[derive(Debug, Clone, PartialEq)]
pub enum Located {
    /// A region named by the caller.
    Named(String),
    /// A point, and what gave it (`edge_headers`, `geoip`).
    At(Point, &'static str),
    Unknown,
}

impl Located {
    pub fn source(&self) -> &'static str {
        match self {
            Self::Named(_) => "override",
            Self::At(_, source) => source,
            Self::Unknown => "unknown",
        }
    }
}

/// A City-layout record's location (GeoIP2/GeoLite2 City, DB-IP).
#[derive(Deserialize)]
struct Record {
    location: Option<Location>,
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

pub struct Locator {
    geo_headers: Option<(String, String)>,
    geoip: Option<maxminddb::Reader<Vec<u8>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocatorError {
    #[error("GeoIP database {path}: {source}")]
    GeoIp {
        path: String,
        source: maxminddb::MaxMindDbError,
    },
}

impl Locator {
    pub fn new(
        geo_headers: Option<(String, String)>,
        geoip_db: Option<&std::path::Path>,
    ) -> Result<Self, LocatorError> {
        let geoip = geoip_db
            .map(|path| {
                maxminddb::Reader::open_readfile(path).map_err(|source| LocatorError::GeoIp {
                    path: path.display().to_string(),
                    source,
                })
            })
            .transpose()?;
        Ok(Self { geo_headers, geoip })
    }

    /// The explicit override, if the request carries one (not yet checked
    /// against the configured regions).
    pub fn override_of<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<String> {
        let from_query = query.and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == OVERRIDE_PARAM)
                .map(|(_, v)| v.into_owned())
        });
        from_query
            .or_else(|| {
                headers
                    .get(OVERRIDE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .map(|r| r.trim().to_ascii_lowercase())
            .filter(|r| !r.is_empty())
    }

    /// Where the caller is, without an override.
    pub fn locate(&self, headers: &HeaderMap, client: IpAddr) -> Located {
        if let Some((lat, lon)) = &self.geo_headers {
            let number = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
            };
            if let Some(point) = number(lat)
                .zip(number(lon))
                .and_then(|(a, b)| Point::new(a, b))
            {
                return Located::At(point, "edge_headers");
            }
        }
        if let Some(reader) = &self.geoip {
            let found = reader
                .lookup(client)
                .ok()
                .and_then(|r| r.decode::<Record>().ok().flatten())
                .and_then(|r| r.location)
                .and_then(|l| l.latitude.zip(l.longitude))
                .and_then(|(a, b)| Point::new(a, b));
            if let Some(point) = found {
                return Located::At(point, "geoip");
            }
        }
        Located::Unknown
    }
}
