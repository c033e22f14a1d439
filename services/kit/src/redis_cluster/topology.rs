//! Who serves which slot: the views of `CLUSTER NODES` from several nodes,
//! merged slot by slot in favour of the highest configuration epoch, as the
//! cluster itself settles a conflict. One node's view alone can be stale: a
//! master restarted after a failover still claims its old slots for a moment,
//! and a node that has not heard of a promotion yet names the dead master.

use std::sync::Arc;

/// Hash slots of a Redis Cluster.
pub const SLOTS: usize = 16_384;

/// A node's address as the cluster announces it: `host:port`.
pub type Addr = Arc<str>;

/// The slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag, mod
/// 16384 (the Redis Cluster specification).
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16(tagged) % SLOTS as u16
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One master's claim in one node's view.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub addr: Addr,
    pub epoch: u64,
    pub ranges: Vec<(u16, u16)>,
}

/// What one node's `CLUSTER NODES` says: the masters' claims, and every
/// node it knows of (where to ask next time).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct View {
    pub claims: Vec<Claim>,
    pub nodes: Vec<Addr>,
}

/// Parses `CLUSTER NODES` as answered by the node at `asked` (whose own
/// line may carry no host: it is the one asked).
pub fn parse_nodes(text: &str, asked: &str) -> View {
    let mut view = View::default();
    let asked_host = asked.rsplit_once(':').map_or("", |(h, _)| h);
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            continue;
        }
        let flags = fields[2];
        if flags.split(',').any(|f| f == "noaddr" || f == "handshake") {
            continue;
        }
        // `ip:port@cport[,hostname]`: a node that announces a hostname
        // (`cluster-announce-hostname`, as the manifests do) is reached by
        // it, since its address changes when its pod is replaced.
        let (endpoint, hostname) = match fields[1].split_once(',') {
            Some((endpoint, hostname)) => (endpoint, Some(hostname).filter(|h| !h.is_empty())),
            None => (fields[1], None),
        };
        let endpoint = endpoint.split('@').next().unwrap_or(endpoint);
        let Some((ip, port)) = endpoint.rsplit_once(':') else {
            continue;
        };
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            continue;
        }
        let host = match hostname {
            Some(name) => name,
            None if ip.is_empty() => asked_host,
            None => ip,
        };
        if host.is_empty() {
            continue;
        }
        let addr: Addr = format!("{host}:{port}").into();
        view.nodes.push(addr.clone());
        if !flags.split(',').any(|f| f == "master") {
            continue;
        }
        let epoch = fields[6].parse().unwrap_or(0);
        let ranges: Vec<(u16, u16)> = fields[8..]
            .iter()
            // `[slot->-id]` and `[slot-<-id]` are slots being migrated:
            // their owner is the one that answers MOVED or ASK.
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|one| (one, one)),
            })
            .filter(|(a, b)| a <= b && usize::from(*b) < SLOTS)
            .collect();
        if !ranges.is_empty() {
            view.claims.push(Claim {
                addr,
                epoch,
                ranges,
            });
        }
    }
    view
}

/// Which master serves each slot, and every node known.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Per slot, an index into `masters` (`u16::MAX`: nobody known).
    owner: Vec<u16>,
    masters: Vec<Addr>,
    nodes: Vec<Addr>,
}

const NOBODY: u16 = u16::MAX;

impl Default for Topology {
    fn default() -> Self {
        Self {
            owner: vec![NOBODY; SLOTS],
            masters: Vec::new(),
            nodes: Vec::new(),
        }
    }
}

impl Topology {
    /// Every view merged: each slot goes to the claim with the highest
    /// configuration epoch (the cluster's own rule for a conflict).
    pub fn merge(views: &[View]) -> Self {
        let mut best: Vec<(u64, Option<&Addr>)> = vec![(0, None); SLOTS];
        for claim in views.iter().flat_map(|v| &v.claims) {
            for &(first, last) in &claim.ranges {
                for slot in &mut best[usize::from(first)..=usize::from(last)] {
                    if slot.1.is_none() || claim.epoch > slot.0 {
                        *slot = (claim.epoch, Some(&claim.addr));
                    }
                }
            }
        }
        let mut topology = Self::default();
        for (slot, (_, addr)) in best.iter().enumerate() {
            if let Some(addr) = addr {
                topology.owner[slot] = topology.master_index(addr);
            }
        }
        let mut nodes: Vec<Addr> = views.iter().flat_map(|v| v.nodes.iter().cloned()).collect();
        nodes.sort();
        nodes.dedup();
        topology.nodes = nodes;
        topology
    }

    fn master_index(&mut self, addr: &Addr) -> u16 {
        match self.masters.iter().position(|m| m == addr) {
            Some(i) => i as u16,
            None => {
                self.masters.push(addr.clone());
                (self.masters.len() - 1) as u16
            }
        }
    }

    pub fn owner(&self, slot: u16) -> Option<&Addr> {
        let i = *self.owner.get(usize::from(slot))?;
        self.masters.get(usize::from(i))
    }

    /// The same topology with `slot` at `addr` (what a MOVED says, ahead of
    /// the next refresh).
    pub fn with_owner(&self, slot: u16, addr: &Addr) -> Self {
        let mut next = self.clone();
        if usize::from(slot) < SLOTS {
            next.owner[usize::from(slot)] = next.master_index(addr);
        }
        next
    }

    /// Masters serving at least one slot.
    pub fn masters(&self) -> Vec<Addr> {
        let mut serving: Vec<bool> = vec![false; self.masters.len()];
        for &i in &self.owner {
            if let Some(s) = serving.get_mut(usize::from(i)) {
                *s = true;
            }
        }
        self.masters
            .iter()
            .zip(serving)
            .filter(|(_, s)| *s)
            .map(|(m, _)| m.clone())
            .collect()
    }

    pub fn nodes(&self) -> &[Addr] {
        &self.nodes
    }

    /// Whether some slot has nobody to serve it.
    pub fn has_gaps(&self) -> bool {
        self.owner.contains(&NOBODY)
    }

    /// The slot ranges each master serves, for a log line.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut start = 0usize;
        for slot in 1..=SLOTS {
            if slot == SLOTS || self.owner[slot] != self.owner[start] {
                let who = self
                    .masters
                    .get(usize::from(self.owner[start]))
                    .map_or("nobody", |a| a.as_ref());
                parts.push(format!("{start}-{} {who}", slot - 1));
                start = slot;
            }
        }
        parts.join(", ")
    }

    /// Whether both send every slot to the same master.
    pub fn same_owners(&self, other: &Self) -> bool {
        (0..SLOTS as u16).all(|s| self.owner(s) == other.owner(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_specification_and_hash_tags() {
        // The examples of the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"123456789"), 12_739);
        assert_eq!(key_slot(b"foo"), 12_182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{a17}:acct:slots"), key_slot(b"a17"));
        // An empty tag is no tag: the whole key is hashed.
        assert_eq!(key_slot(b"{}x"), crc16(b"{}x") % 16_384);
    }

    const FAILED_OVER: &str = "\
3c3a0c74 127.0.0.1:7104@17104 master - 0 1796599284369 7 connected 0-5460
7ce4d4b7 127.0.0.1:7105@17105 slave d45b999c 0 1796599284369 3 connected
d45b999c 127.0.0.1:7103@17103 master - 0 1796599284268 3 connected 10923-16383
bbe14aa5 127.0.0.1:7101@17101 master,fail - 1796599279220 1796599278211 1 disconnected
ad0e123e :7102@17102 myself,master - 0 1796599283000 2 connected 5461-10922 [5462->-d45b999c]
";

    #[test]
    fn a_view_names_masters_their_slots_and_every_node() {
        let view = parse_nodes(FAILED_OVER, "127.0.0.1:7102");
        let claim = |addr: &str, epoch, ranges: Vec<(u16, u16)>| Claim {
            addr: addr.into(),
            epoch,
            ranges,
        };
        assert_eq!(
            view.claims,
            vec![
                claim("127.0.0.1:7104", 7, vec![(0, 5460)]),
                claim("127.0.0.1:7103", 3, vec![(10923, 16383)]),
                claim("127.0.0.1:7102", 2, vec![(5461, 10922)]),
            ]
        );
        assert_eq!(view.nodes.len(), 5, "{:?}", view.nodes);
    }

    #[test]
    fn a_node_announcing_a_hostname_is_reached_by_it() {
        let text = "\
a1 10.1.2.3:6379@16379,redis-0.lobby-redis myself,master - 0 0 1 connected 0-8191
b2 10.1.2.4:6379@16379,redis-1.lobby-redis master - 0 0 2 connected 8192-16383
";
        let view = parse_nodes(text, "redis-0.lobby-redis:6379");
        let masters: Vec<&str> = view.claims.iter().map(|c| c.addr.as_ref()).collect();
        assert_eq!(
            masters,
            ["redis-0.lobby-redis:6379", "redis-1.lobby-redis:6379"]
        );
    }

    #[test]
    fn the_highest_epoch_wins_a_slot_whoever_is_asked() {
        // A master restarted after its failover still claims its slots
        // under its old epoch until it hears of the promotion.
        let stale = "bbe14aa5 127.0.0.1:7101@17101 myself,master - 0 0 1 connected 0-5460\n";
        let views = [
            parse_nodes(stale, "127.0.0.1:7101"),
            parse_nodes(FAILED_OVER, "127.0.0.1:7102"),
        ];
        for order in [[0, 1], [1, 0]] {
            let merged = Topology::merge(&[views[order[0]].clone(), views[order[1]].clone()]);
            assert_eq!(merged.owner(0).map(|a| a.as_ref()), Some("127.0.0.1:7104"));
            assert_eq!(
                merged.owner(5460).map(|a| a.as_ref()),
                Some("127.0.0.1:7104")
            );
            assert_eq!(
                merged.owner(5461).map(|a| a.as_ref()),
                Some("127.0.0.1:7102")
            );
            assert!(!merged.has_gaps());
            assert_eq!(merged.masters().len(), 3, "the stale master serves nothing");
        }
    }

    #[test]
    fn a_moved_slot_changes_owner_at_once() {
        let topology = Topology::merge(&[parse_nodes(FAILED_OVER, "127.0.0.1:7102")]);
        let moved = topology.with_owner(42, &Addr::from("127.0.0.1:7999"));
        assert_eq!(moved.owner(42).map(|a| a.as_ref()), Some("127.0.0.1:7999"));
        assert_eq!(moved.owner(43), topology.owner(43));
        assert!(!moved.same_owners(&topology));
        assert!(Topology::default().has_gaps());
    }
}
