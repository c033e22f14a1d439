//! The hostname allowlist of seed 000: which browser Origins may start a
//! session with an agent.
//!
//! Rules (DESIGN.md, Security): an allowed entry is `*`, or
//! `[scheme://]host[:port]` where host may be `*.domain` for subdomains only.
//! The Origin header is parsed as a URL and must be in the canonical form a
//! browser sends (`null`, upper case, a path or an explicit default port are
//! refused). Never a substring match.

use url::Url;

/// One normalised allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigin {
    Any,
    Host {
        /// `None` allows both http and https.
        scheme: Option<Scheme>,
        host: HostPattern,
        /// `None` means the default port of the request's scheme.
        port: Option<u16>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            _ => None,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// `*.example.com`: holds `example.com`; matches strict subdomains only.
    Subdomains(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("allowed hostname {entry:?}: {reason}")]
pub struct InvalidEntry {
    pub entry: String,
    pub reason: &'static str,
}

impl AllowedOrigin {
    /// Parses and normalises an operator-supplied entry.
    pub fn parse(entry: &str) -> Result<Self, InvalidEntry> {
        let invalid = |reason| InvalidEntry {
            entry: entry.to_owned(),
            reason,
        };
        let trimmed = entry.trim();
        if trimmed == "*" {
            return Ok(Self::Any);
        }
        if trimmed.is_empty() {
            return Err(invalid("is empty"));
        }
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((s, rest)) => (
                Some(
                    Scheme::parse(&s.to_ascii_lowercase())
                        .ok_or_else(|| invalid("scheme must be http or https"))?,
                ),
                rest,
            ),
            None => (None, trimmed),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(invalid(
                "must be a host, with an optional scheme and port, and no path",
            ));
        }
        let (wildcard, host_port) = match rest.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if host_port.contains('*') {
            return Err(invalid("a wildcard is allowed only as a leading `*.`"));
        }
        // Let the URL parser normalise the host (case, IDNA, IP forms) and port.
        let probe = format!("{}://{host_port}", scheme.unwrap_or(Scheme::Https).as_str());
        let url = Url::parse(&probe).map_err(|_| invalid("is not a valid host"))?;
        let host = url
            .host_str()
            .ok_or_else(|| invalid("has no host"))?
            .to_owned();
        if wildcard && !host.contains('.') {
            return Err(invalid(
                "a wildcard needs a domain with at least two labels",
            ));
        }
        // `Url` drops a port equal to the scheme default; keep what was written.
        let port = url.port().or_else(|| written_port(host_port));
        let host = if wildcard {
            HostPattern::Subdomains(host)
        } else {
            HostPattern::Exact(host)
        };
        Ok(Self::Host { scheme, host, port })
    }

    /// The canonical text stored and shown for this entry.
    pub fn canonical(&self) -> String {
        match self {
            Self::Any => "*".to_owned(),
            Self::Host { scheme, host, port } => {
                let mut s = String::new();
                if let Some(scheme) = scheme {
                    s.push_str(scheme.as_str());
                    s.push_str("://");
                }
                match host {
                    HostPattern::Exact(h) => s.push_str(h),
                    HostPattern::Subdomains(h) => {
                        s.push_str("*.");
                        s.push_str(h);
                    }
                }
                if let Some(port) = port {
                    s.push_str(&format!(":{port}"));
                }
                s
            }
        }
    }

    fn allows(&self, origin: &RequestOrigin) -> bool {
        match self {
            Self::Any => true,
            Self::Host { scheme, host, port } => {
                if scheme.is_some_and(|s| s != origin.scheme) {
                    return false;
                }
                let want_port =
                    port.unwrap_or_else(|| scheme.unwrap_or(origin.scheme).default_port());
                if want_port != origin.port {
                    return false;
                }
                match host {
                    HostPattern::Exact(h) => *h == origin.host,
                    HostPattern::Subdomains(domain) => origin
                        .host
                        .strip_suffix(domain.as_str())
                        .and_then(|prefix| prefix.strip_suffix('.'))
                        .is_some_and(|label| !label.is_empty()),
                }
            }
        }
    }
}

/// The port text after the host, if any (`[::1]:80`, `a.com:443`).
fn written_port(host_port: &str) -> Option<u16> {
    let port = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.1.strip_prefix(':')?,
        None => host_port.split_once(':')?.1,
    };
    port.parse().ok()
}

/// A parsed, canonical browser Origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOrigin {
    scheme: Scheme,
    host: String,
    port: u16,
}

impl RequestOrigin {
    /// Accepts only the exact serialisation a browser produces, so that
    /// `null`, `https://EXAMPLE.com`, `https://a.com/` or `https://a.com:443`
    /// never reach the matcher.
    pub fn parse(header: &str) -> Option<Self> {
        let url = Url::parse(header).ok()?;
        let scheme = Scheme::parse(url.scheme())?;
        if url.origin().ascii_serialization() != header {
            return None;
        }
        Some(Self {
            scheme,
            host: url.host_str()?.to_owned(),
            port: url.port_or_known_default()?,
        })
    }
}

/// The allowlist of one agent.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    entries: Vec<AllowedOrigin>,
}

impl OriginPolicy {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, InvalidEntry> {
        let mut parsed: Vec<AllowedOrigin> = Vec::new();
        for entry in entries {
            let e = AllowedOrigin::parse(entry.as_ref())?;
            if !parsed.contains(&e) {
                parsed.push(e);
            }
        }
        Ok(Self { entries: parsed })
    }

    pub fn from_entries(entries: Vec<AllowedOrigin>) -> Self {
        Self { entries }
    }

    pub fn canonical_entries(&self) -> Vec<String> {
        self.entries.iter().map(AllowedOrigin::canonical).collect()
    }

    pub fn allows_any(&self) -> bool {
        self.entries.contains(&AllowedOrigin::Any)
    }

    /// `origin` is the raw header, `None` when the request had none. An empty
    /// list rejects everything; a missing Origin passes only for `*`.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        if self.allows_any() {
            return true;
        }
        let Some(origin) = origin.and_then(RequestOrigin::parse) else {
            return false;
        };
        self.entries.iter().any(|e| e.allows(&origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OriginPolicy {
        OriginPolicy::parse(entries).unwrap()
    }

    #[test]
    fn exact_host_allows_both_schemes_on_default_ports() {
        let p = policy(&["example.com"]);
        assert!(p.allows(Some("https://example.com")));
        assert!(p.allows(Some("http://example.com")));
        assert!(!p.allows(Some("https://example.com:8443")));
        assert!(!p.allows(Some("https://www.example.com")));
    }

    #[test]
    fn spoofed_origins_are_refused() {
        let p = policy(&["https://example.com"]);
        assert!(p.allows(Some("https://example.com")));
        for spoof in [
            "https://example.com.evil.net",
            "https://evilexample.com",
            "null",
            "https://EXAMPLE.COM",
            "https://example.com:444",
            "http://example.com",
            "https://example.com/",
            "https://example.com:443",
            "https://user@example.com",
            "",
        ] {
            assert!(!p.allows(Some(spoof)), "{spoof} must be refused");
        }
        assert!(!p.allows(None));
    }

    #[test]
    fn wildcard_matches_strict_subdomains_only() {
        let p = policy(&["*.example.com"]);
        assert!(p.allows(Some("https://a.example.com")));
        assert!(p.allows(Some("https://a.b.example.com")));
        assert!(!p.allows(Some("https://example.com")));
        assert!(!p.allows(Some("https://evilexample.com")));
        assert!(!p.allows(Some("https://a.example.com.evil.net")));
    }

    #[test]
    fn star_allows_everything_including_no_origin() {
        let p = policy(&["*"]);
        assert!(p.allows(None));
        assert!(p.allows(Some("https://anything.test")));
    }

    #[test]
    fn empty_list_rejects_all() {
        let p = policy(&[]);
        assert!(!p.allows(None));
        assert!(!p.allows(Some("https://example.com")));
    }

    #[test]
    fn explicit_ports_and_localhost() {
        let p = policy(&["http://localhost:3000", "Example.COM:8443"]);
        assert!(p.allows(Some("http://localhost:3000")));
        assert!(!p.allows(Some("http://localhost:3001")));
        assert!(!p.allows(Some("https://localhost:3000")));
        assert!(p.allows(Some("https://example.com:8443")));
        assert_eq!(
            p.canonical_entries(),
            vec!["http://localhost:3000", "example.com:8443"]
        );
    }

    #[test]
    fn explicit_default_port_is_kept() {
        let p = policy(&["https://example.com:443"]);
        assert!(p.allows(Some("https://example.com")));
    }

    #[test]
    fn invalid_entries_are_refused() {
        for bad in [
            "",
            "ftp://example.com",
            "example.com/path",
            "*.com",
            "exa*mple.com",
            "a b",
        ] {
            assert!(
                AllowedOrigin::parse(bad).is_err(),
                "{bad:?} must be invalid"
            );
        }
    }
}
