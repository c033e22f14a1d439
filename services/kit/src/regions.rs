//! The regions of a multi-region deployment, as every service sees them:
//! which one this is, every region's public URL and place, where its home
//! admission answers, and the secret the regions share. The gateway routes
//! callers with it; the session service admits in an account's home region
//! with it.

use crate::{config::Settings, ConfigError};
use hmac::{Hmac, Mac};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Region {
    pub name: String,
    /// Its gateway's public base URL, e.g. `https://eu-west.api.example.com`.
    pub url: String,
    pub latitude: f64,
    pub longitude: f64,
    /// Route 53's geoproximity bias, −99…99 (0: none).
    #[serde(default)]
    pub bias: i32,
    /// Its session service's regions' door (gRPC, TLS), where other regions
    /// ask it to admit the sessions of the accounts it is home to.
    #[serde(default)]
    pub admission_url: String,
}

#[derive(Debug, Clone)]
pub struct RegionList {
    /// This region (`LOBBY_REGION`).
    pub me: String,
    /// Every region, this one included (`LOBBY_REGIONS`, a JSON array);
    /// empty: one region.
    pub regions: Vec<Region>,
    /// What the regions sign with (`LOBBY_REGION_SECRET`): the origin of a
    /// redirected browser request, and every call one region makes to another.
    pub secret: String,
}

/// Used when `LOBBY_REGION_SECRET` is unset; production refuses it once
/// there is more than one region.
const DEV_REGION_SECRET: &str = "dev-region-secret-change-me";

/// A region's name: 1-32 of a-z, 0-9 and '-'.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl RegionList {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let me = crate::shared_settings::this_region(s);
        let raw = s.string_or("LOBBY_REGIONS", "");
        let regions: Vec<Region> = if raw.trim().is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&raw).map_err(|e| ConfigError::Invalid {
                setting: "LOBBY_REGIONS".into(),
                reason: format!(
                    "must be a JSON array of {{name, url, latitude, longitude, bias, admission_url}}: {e}"
                ),
            })?
        };
        for r in &regions {
            let invalid = |reason: &str| ConfigError::Invalid {
                setting: "LOBBY_REGIONS".into(),
                reason: format!("region {:?}: {reason}", r.name),
            };
            if !valid_name(&r.name) {
                return Err(invalid("a name is 1-32 of a-z, 0-9 and '-'"));
            }
            if !(r.url.starts_with("http://") || r.url.starts_with("https://")) {
                return Err(invalid("url must be http(s)://…"));
            }
            if !(-90.0..=90.0).contains(&r.latitude) || !(-180.0..=180.0).contains(&r.longitude) {
                return Err(invalid("latitude must be in −90…90, longitude in −180…180"));
            }
            if !(-99..=99).contains(&r.bias) {
                return Err(invalid("bias must be in −99…99"));
            }
            if regions.iter().filter(|o| o.name == r.name).count() > 1 {
                return Err(invalid("listed twice"));
            }
            // Accounts homed there are admitted there, wherever they start.
            if regions.len() > 1 && !r.admission_url.starts_with("https://") {
                return Err(invalid(
                    "admission_url (its session service's regions' door) must be https://… when there is more than one region",
                ));
            }
        }
        Settings::ensure(
            "LOBBY_REGION",
            valid_name(&me),
            "a region's name is 1-32 of a-z, 0-9 and '-'",
        )?;
        Settings::ensure(
            "LOBBY_REGION",
            regions.is_empty() || regions.iter().any(|r| r.name == me),
            "must be one of the regions in LOBBY_REGIONS",
        )?;
        let secret = s.string_or("LOBBY_REGION_SECRET", DEV_REGION_SECRET);
        Settings::ensure(
            "LOBBY_REGION_SECRET",
            secret.len() >= 16,
            "must be at least 16 characters",
        )?;
        // Only regions share it: a single-region deployment never uses it.
        Settings::ensure(
            "LOBBY_REGION_SECRET",
            regions.len() <= 1
                || secret != DEV_REGION_SECRET
                || !crate::shared_settings::is_production(s)?,
            "is its public development default; set the same secret in every region",
        )?;
        Ok(Self {
            me,
            regions,
            secret,
        })
    }

    /// More than one region: routing and home admission are on.
    pub fn is_multi(&self) -> bool {
        self.regions.len() > 1
    }

    pub fn get(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// An HMAC-SHA256 over `parts` (newline-joined) with the regions' secret.
    pub fn mac(&self, parts: &[&str]) -> Hmac<sha2::Sha256> {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(self.secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(parts.join("\n").as_bytes());
        mac
    }

    /// `payload`, signed by this region for region `to` and `purpose`,
    /// good for `ttl_seconds`: `<from>.<expires>.<hex mac>.<payload>`.
    fn sign_for(&self, purpose: &str, to: &str, payload: &str, ttl_seconds: i64) -> String {
        let expires = crate::time::now_ms() / 1000 + ttl_seconds;
        let mac = self.mac(&[purpose, &self.me, to, &expires.to_string(), payload]);
        format!(
            "{}.{expires}.{}.{payload}",
            self.me,
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// (calling region, payload) of a value another known region signed for
    /// this one and `purpose`, unexpired.
    fn verify_from_peer(&self, purpose: &str, value: &str) -> Option<(String, String)> {
        let mut parts = value.splitn(4, '.');
        let (from, expires, sig, payload) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let expires_at: i64 = expires.parse().ok()?;
        if from == self.me || self.get(from).is_none() || expires_at < crate::time::now_ms() / 1000
        {
            return None;
        }
        self.mac(&[purpose, from, &self.me, expires, payload])
            .verify_slice(&hex::decode(sig).ok()?)
            .ok()?;
        Some((from.to_owned(), payload.to_owned()))
    }

    /// The token this region presents when it calls region `to` to make
    /// `call` (what it does and to what, e.g. `hold:<session>`): good for
    /// that call only, so that a token seen in passing cannot be replayed
    /// to release or renew anything else.
    pub fn call_token(&self, to: &str, call: &str, ttl_seconds: i64) -> String {
        self.sign_for(CALL_PURPOSE, to, call, ttl_seconds)
    }

    /// The calling region a token names, when it is another known region's,
    /// made for this one and for `call`, unexpired and signed with the
    /// shared secret.
    pub fn verify_call_token(&self, token: &str, call: &str) -> Option<String> {
        self.verify_from_peer(CALL_PURPOSE, token)
            .filter(|(_, signed_for)| signed_for == call)
            .map(|(from, _)| from)
    }

    /// The client's address, as a gateway proxying a request to region
    /// `to` vouches for it (the target sees only the proxy's address).
    pub fn vouch_for_client(&self, to: &str, client: std::net::IpAddr) -> String {
        self.sign_for(
            CLIENT_PURPOSE,
            to,
            &client.to_string(),
            PROXIED_CLIENT_TTL_SECONDS,
        )
    }

    /// The client address another region's gateway vouched for.
    pub fn vouched_client(&self, value: &str) -> Option<std::net::IpAddr> {
        self.verify_from_peer(CLIENT_PURPOSE, value)
            .and_then(|(_, ip)| ip.parse().ok())
    }
}

/// What a signed value is for, so that no other signed value of the
/// regions (an origin grant, a vouched address) can pass for another.
const CALL_PURPOSE: &str = "lobby-region-call";
const CLIENT_PURPOSE: &str = "lobby-proxied-client";
/// A proxied request reaches its target at once; a minute covers clock skew.
const PROXIED_CLIENT_TTL_SECONDS: i64 = 60;

/// The metadata a region's call carries its token in.
pub const CALL_TOKEN_HEADER: &str = "x-lobby-region-token";
/// The header a proxying gateway vouches for its client's address in.
pub const PROXIED_CLIENT_HEADER: &str = "x-lobby-proxied-client";

#[cfg(test)]
mod tests {
    use super::*;

    fn list(me: &str) -> RegionList {
        let table = r#"[
            {"name": "us", "url": "http://us.example", "latitude": 39.0, "longitude": -77.5, "admission_url": "https://us.internal:50058"},
            {"name": "eu", "url": "http://eu.example", "latitude": 53.3, "longitude": -6.3, "admission_url": "https://eu.internal:50058"},
            {"name": "ap", "url": "http://ap.example", "latitude": 1.35, "longitude": 103.8, "admission_url": "https://ap.internal:50058"}
        ]"#;
        RegionList::from_settings(&Settings::from_pairs([
            ("LOBBY_REGION", me),
            ("LOBBY_REGIONS", table),
            ("LOBBY_REGION_SECRET", "a-secret-of-the-test-regions"),
        ]))
        .expect("three regions")
    }

    #[test]
    fn a_call_token_is_good_only_from_its_region_to_its_region() {
        let (eu, us, ap) = (list("eu"), list("us"), list("ap"));
        let call = "hold:s-1";
        let token = eu.call_token("us", call, 60);
        assert_eq!(us.verify_call_token(&token, call).as_deref(), Some("eu"));
        assert_eq!(ap.verify_call_token(&token, call), None, "made for us");
        assert_eq!(eu.verify_call_token(&token, call), None, "not from itself");
        let forged = token.replacen("eu.", "ap.", 1);
        assert_eq!(us.verify_call_token(&forged, call), None, "another caller");
        assert_eq!(
            us.verify_call_token(&eu.call_token("us", call, -5), call),
            None,
            "expired"
        );
        let other_secret = RegionList {
            secret: "another-secret-entirely".into(),
            ..eu.clone()
        };
        assert_eq!(
            us.verify_call_token(&other_secret.call_token("us", call, 60), call),
            None
        );
        assert_eq!(us.verify_call_token("garbage", call), None);
        // Good for its call only: not another call, not another session.
        assert_eq!(us.verify_call_token(&token, "release:s-1"), None);
        assert_eq!(us.verify_call_token(&token, "hold:s-2"), None);
        let rewritten = token.replace("hold:s-1", "release:s-1");
        assert_eq!(us.verify_call_token(&rewritten, "release:s-1"), None);
    }

    #[test]
    fn a_vouched_address_is_good_only_unaltered_and_where_it_was_sent() {
        let (eu, us, ap) = (list("eu"), list("us"), list("ap"));
        let tokyo: std::net::IpAddr = "192.0.2.9".parse().unwrap();
        let v6: std::net::IpAddr = "2001:db8::7".parse().unwrap();
        assert_eq!(
            eu.vouched_client(&us.vouch_for_client("eu", tokyo)),
            Some(tokyo)
        );
        assert_eq!(eu.vouched_client(&us.vouch_for_client("eu", v6)), Some(v6));
        assert_eq!(ap.vouched_client(&us.vouch_for_client("eu", tokyo)), None);
        let altered = us
            .vouch_for_client("eu", tokyo)
            .replace("192.0.2.9", "192.0.2.8");
        assert_eq!(eu.vouched_client(&altered), None);
        // A call token is no vouched address, and the other way round.
        assert_eq!(
            eu.vouched_client(&us.call_token("eu", "192.0.2.9", 60)),
            None
        );
        assert_eq!(
            eu.verify_call_token(&us.vouch_for_client("eu", tokyo), "192.0.2.9"),
            None
        );
    }

    #[test]
    fn several_regions_need_each_ones_admission_door() {
        let table = r#"[
            {"name": "us", "url": "http://us.example", "latitude": 39.0, "longitude": -77.5},
            {"name": "eu", "url": "http://eu.example", "latitude": 53.3, "longitude": -6.3}
        ]"#;
        let err = RegionList::from_settings(&Settings::from_pairs([
            ("LOBBY_REGION", "eu"),
            ("LOBBY_REGIONS", table),
        ]))
        .expect_err("no admission_url");
        assert!(err.to_string().contains("admission_url"), "{err}");
    }
}
