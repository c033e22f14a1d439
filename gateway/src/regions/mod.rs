//! Geoproximity region routing. Each region runs the whole stack with its
//! own Redis; its gateway knows every region (name, public URL, latitude,
//! longitude, bias) and which one it is. For a request of a routed class it
//! locates the caller (`locate`), picks the nearest healthy region by
//! biased great-circle distance (`geo`, `health`), and serves it, answers
//! `307` to that region's URL, or proxies it there (`routing`).

pub mod geo;
pub mod health;
pub mod locate;
pub mod routing;

use geo::Point;
use lobby_kit::{ConfigError, Settings};
use std::{path::PathBuf, time::Duration};

pub use lobby_kit::regions::Region;

/// Where a region is.
pub fn point_of(r: &Region) -> Point {
    Point {
        latitude: r.latitude,
        longitude: r.longitude,
    }
}

/// What a gateway does with a request another region is nearer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Local,
    Redirect,
    Proxy,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Local => "local",
            Self::Redirect => "redirect",
            Self::Proxy => "proxy",
        })
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(Self::Local),
            "redirect" => Ok(Self::Redirect),
            "proxy" => Ok(Self::Proxy),
            other => Err(format!("{other:?} is not local, redirect or proxy")),
        }
    }
}

/// The route classes routing acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Session starts: seed 000's connect, seed 002's link start, seed
    /// 001's run creation. Where a session starts, its room opens.
    Start,
    /// The rest of the public API.
    Api,
}

#[derive(Debug, Clone)]
pub struct RegionsConfig {
    /// This region, every region (empty: one region, no routing), and
    /// the secret they sign with.
    pub list: lobby_kit::regions::RegionList,
    /// Names of the trusted edge's latitude and longitude headers.
    pub geo_headers: Option<(String, String)>,
    /// A MaxMind-format (`.mmdb`) City database.
    pub geoip_db: Option<PathBuf>,
    pub start_action: Action,
    pub api_action: Action,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub hysteresis: health::Hysteresis,
}

impl RegionsConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let list = lobby_kit::regions::RegionList::from_settings(s)?;
        let lat = s.string_or("LOBBY_GEO_LATITUDE_HEADER", "");
        let lon = s.string_or("LOBBY_GEO_LONGITUDE_HEADER", "");
        Settings::ensure(
            "LOBBY_GEO_LATITUDE_HEADER",
            lat.is_empty() == lon.is_empty(),
            "and LOBBY_GEO_LONGITUDE_HEADER are set together",
        )?;
        Ok(Self {
            list,
            geo_headers: (!lat.is_empty())
                .then(|| (lat.to_ascii_lowercase(), lon.to_ascii_lowercase())),
            geoip_db: Some(s.string_or("LOBBY_GEOIP_DB", ""))
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            start_action: s.get_or("LOBBY_REGION_START_ACTION", Action::Redirect)?,
            api_action: s.get_or("LOBBY_REGION_API_ACTION", Action::Local)?,
            probe_interval: Duration::from_millis(
                s.get_or("LOBBY_REGION_PROBE_INTERVAL_MS", 2_000)?,
            ),
            probe_timeout: Duration::from_millis(s.get_or("LOBBY_REGION_PROBE_TIMEOUT_MS", 1_000)?),
            hysteresis: health::Hysteresis {
                down_after: s.get_or("LOBBY_REGION_DOWN_AFTER", 3)?,
                up_after: s.get_or("LOBBY_REGION_UP_AFTER", 2)?,
            },
        })
    }
}

/// The regions as this gateway sees them: where the caller is, and which
/// region is nearest and healthy.
pub struct Regions {
    pub config: RegionsConfig,
    pub locator: locate::Locator,
    pub health: health::PeerHealth,
    /// Calls other regions' gateways (proxied requests).
    pub proxy_http: reqwest::Client,
}

/// What routing decided for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub region: Region,
    pub located: locate::Located,
}

/// A region named by an override that is not configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRegion(pub String);

impl Regions {
    /// `timeout`: how long a proxied request may take.
    pub fn new(config: RegionsConfig, timeout: Duration) -> Result<Self, locate::LocatorError> {
        let locator = locate::Locator::new(config.geo_headers.clone(), config.geoip_db.as_deref())?;
        let health = health::PeerHealth::new(
            config
                .list
                .regions
                .iter()
                .filter(|r| r.name != config.list.me)
                .map(|r| r.name.clone()),
        );
        Ok(Self {
            config,
            locator,
            health,
            proxy_http: lobby_kit::https::client(timeout),
        })
    }

    /// Probes the other regions' health until dropped (`None` for one region).
    pub fn spawn_probes(&self) -> Option<tokio::task::JoinHandle<()>> {
        let peers: Vec<(String, String)> = self
            .config
            .list
            .regions
            .iter()
            .filter(|r| r.name != self.config.list.me)
            .map(|r| (r.name.clone(), r.url.clone()))
            .collect();
        (!peers.is_empty()).then(|| {
            tokio::spawn(health::probe_forever(
                self.health.clone(),
                peers,
                self.config.probe_interval,
                self.config.probe_timeout,
                self.config.hysteresis,
            ))
        })
    }

    /// The client's address another region's gateway vouched for, when
    /// it proxied the request here.
    pub fn vouched_client(&self, headers: &axum::http::HeaderMap) -> Option<std::net::IpAddr> {
        if !self.enabled() {
            return None;
        }
        let value = headers
            .get(lobby_kit::regions::PROXIED_CLIENT_HEADER)?
            .to_str()
            .ok()?;
        self.config.list.vouched_client(value)
    }

    pub fn enabled(&self) -> bool {
        self.config.list.regions.len() > 1
    }

    pub fn me(&self) -> &str {
        &self.config.list.me
    }

    /// This region always counts as healthy: it is the one answering.
    pub fn is_healthy(&self, name: &str) -> bool {
        name == self.config.list.me || self.health.is_healthy(name)
    }

    pub fn action(&self, class: RouteClass) -> Action {
        match class {
            RouteClass::Start => self.config.start_action,
            RouteClass::Api => self.config.api_action,
        }
    }

    fn this_region(&self) -> Region {
        self.config
            .list
            .regions
            .iter()
            .find(|r| r.name == self.config.list.me)
            .cloned()
            .unwrap_or_else(|| Region {
                name: self.config.list.me.clone(),
                url: String::new(),
                latitude: 0.0,
                longitude: 0.0,
                bias: 0,
                admission_url: String::new(),
            })
    }

    /// The nearest healthy region to `at` (this one when every peer is down).
    pub fn nearest(&self, at: Point) -> Region {
        let healthy: Vec<&Region> = self
            .config
            .list
            .regions
            .iter()
            .filter(|r| self.is_healthy(&r.name))
            .collect();
        let candidates: Vec<(Point, i32)> = healthy.iter().map(|r| (point_of(r), r.bias)).collect();
        geo::nearest(at, &candidates)
            .map(|i| healthy[i].clone())
            .unwrap_or_else(|| self.this_region())
    }

    /// The region that should serve a request: the override's (if healthy;
    /// otherwise the nearest healthy one to it), the nearest healthy one to
    /// where the caller is, or this one when nothing locates the caller.
    pub fn choose(
        &self,
        headers: &axum::http::HeaderMap,
        query: Option<&str>,
        client: std::net::IpAddr,
    ) -> Result<Choice, UnknownRegion> {
        if let Some(name) = locate::Locator::override_of(headers, query) {
            let named = self
                .config
                .list
                .regions
                .iter()
                .find(|r| r.name == name)
                .ok_or(UnknownRegion(name.clone()))?;
            let region = if self.is_healthy(&named.name) {
                named.clone()
            } else {
                self.nearest(point_of(named))
            };
            return Ok(Choice {
                region,
                located: locate::Located::Named(name),
            });
        }
        let located = self.locator.locate(headers, client);
        let region = match &located {
            locate::Located::At(point, _) => self.nearest(*point),
            _ => self.this_region(),
        };
        Ok(Choice { region, located })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(regions: &str) -> Settings {
        Settings::from_pairs([("LOBBY_REGION", "eu"), ("LOBBY_REGIONS", regions)])
    }

    const THREE: &str = r#"[
        {"name": "us", "url": "http://us.example", "latitude": 39.0, "longitude": -77.5, "admission_url": "https://us.internal"},
        {"name": "eu", "url": "http://eu.example", "latitude": 53.3, "longitude": -6.3, "admission_url": "https://eu.internal"},
        {"name": "ap", "url": "http://ap.example", "latitude": 1.35, "longitude": 103.8, "bias": 10, "admission_url": "https://ap.internal"}
    ]"#;

    #[test]
    fn the_region_list_is_checked_at_start_up() {
        assert!(RegionsConfig::from_settings(&settings(THREE)).is_ok());
        for bad in [
            r#"[{"name": "EU", "url": "http://x", "latitude": 0, "longitude": 0}]"#,
            r#"[{"name": "eu", "url": "ftp://x", "latitude": 0, "longitude": 0}]"#,
            r#"[{"name": "eu", "url": "http://x", "latitude": 95, "longitude": 0}]"#,
            r#"[{"name": "eu", "url": "http://x", "latitude": 0, "longitude": 0, "bias": 100}]"#,
            r#"[{"name": "us", "url": "http://x", "latitude": 0, "longitude": 0}]"#,
            r#"{"name": "eu"}"#,
        ] {
            let err = RegionsConfig::from_settings(&settings(bad)).expect_err(bad);
            assert!(err.to_string().contains("LOBBY_REGION"), "{err}");
        }
    }

    #[test]
    fn the_nearest_healthy_region_serves_and_this_one_when_all_are_down() {
        let regions = Regions::new(
            RegionsConfig::from_settings(&settings(THREE)).unwrap(),
            Duration::from_secs(1),
        )
        .unwrap();
        let paris = Point::new(48.85, 2.35).unwrap();
        let boston = Point::new(42.36, -71.06).unwrap();
        assert_eq!(regions.nearest(paris).name, "eu");
        assert_eq!(regions.nearest(boston).name, "us");
        let h = health::Hysteresis {
            down_after: 1,
            up_after: 1,
        };
        regions.health.record("us", false, h);
        assert_eq!(regions.nearest(boston).name, "eu", "routed around");
        regions.health.record("ap", false, h);
        assert_eq!(
            regions.nearest(boston).name,
            "eu",
            "this one when all peers are down"
        );
        regions.health.record("us", true, h);
        assert_eq!(regions.nearest(boston).name, "us", "and back");
    }
}
