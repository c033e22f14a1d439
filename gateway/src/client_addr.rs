//! Who the client is, as an address: the TCP peer, or behind trusted
//! reverse proxies (an Ingress, a load balancer) the address the outermost
//! of them saw, from `X-Forwarded-For`.
//!
//! Each proxy appends the address it received the request from, so with
//! `hops` trusted proxies in front of the gateway the last `hops` entries
//! are theirs and anything left of them is whatever the client sent. The
//! client is therefore the entry `hops` from the right; entries further
//! left are never read, so a spoofed header buys nothing.

use axum::http::{header::HeaderName, HeaderMap};
use std::net::IpAddr;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address. `trusted_hops` 0 (no proxy in front): the peer,
/// whatever the headers say. An entry that is not an address falls back to
/// the peer, which is then the proxy: one bucket for a misconfigured chain
/// rather than one per made-up value.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_hops: usize) -> IpAddr {
    if trusted_hops == 0 {
        return peer;
    }
    // Several headers count as one list, in order (RFC 9110 §5.3).
    let entries: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    // Fewer entries than proxies: every entry was written by a trusted
    // proxy, and the leftmost is the furthest out.
    let Some(entry) = entries
        .len()
        .checked_sub(trusted_hops)
        .map_or(entries.first(), |i| entries.get(i))
    else {
        return peer;
    };
    parse_entry(entry).unwrap_or(peer)
}

/// An address as proxies write it: bare, or with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Ok(sock) = entry.parse::<std::net::SocketAddr>() {
        return Some(sock.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(&X_FORWARDED_FOR, v.parse().expect("header value"));
        }
        h
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9));

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        assert_eq!(client_ip(PEER, &with(&["203.0.113.7"]), 0), PEER);
    }

    #[test]
    fn the_client_is_the_entry_as_many_hops_from_the_right() {
        let spoofed_then_real = with(&["6.6.6.6, 203.0.113.7"]);
        assert_eq!(client_ip(PEER, &spoofed_then_real, 1), ip("203.0.113.7"));
        let two_proxies = with(&["6.6.6.6", "203.0.113.7, 10.0.0.2"]);
        assert_eq!(client_ip(PEER, &two_proxies, 2), ip("203.0.113.7"));
    }

    #[test]
    fn a_short_list_gives_its_leftmost_entry() {
        assert_eq!(
            client_ip(PEER, &with(&["203.0.113.7"]), 3),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn ports_and_brackets_are_read_and_garbage_falls_back_to_the_peer() {
        assert_eq!(
            client_ip(PEER, &with(&["203.0.113.7:5555"]), 1),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_ip(PEER, &with(&["[2001:db8::1]:443"]), 1),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(PEER, &with(&["[2001:db8::1]"]), 1),
            ip("2001:db8::1")
        );
        assert_eq!(client_ip(PEER, &with(&["unknown"]), 1), PEER);
        assert_eq!(client_ip(PEER, &HeaderMap::new(), 1), PEER);
    }
}
