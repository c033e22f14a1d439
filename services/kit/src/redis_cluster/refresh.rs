//! Keeping the topology: every known node's `CLUSTER NODES`, merged by
//! configuration epoch, read in the background every few seconds and at once
//! when a command asks for it (never while a command waits).

use super::{
    dedup,
    topology::{parse_nodes, Topology},
    Addr, Outcome, Reply, Request, Shared,
};
use redis::Value;
use std::{
    sync::{Arc, Weak},
    time::{Duration, Instant},
};
use tokio::sync::Notify;

/// How often the topology is read when nothing asks for it sooner.
const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// While some slot has no master, how often it is read.
const REFRESH_WHILE_GAPS: Duration = Duration::from_millis(250);
/// The least time between two refreshes: a burst of failing commands asks
/// for one refresh, not hundreds.
const REFRESH_GAP: Duration = Duration::from_millis(100);
/// How long one node has to answer `CLUSTER NODES`.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(1);
/// Once one node has answered, how long the others have.
const REFRESH_GRACE: Duration = Duration::from_millis(100);

impl Shared {
    /// Reads every known node's view and keeps the merged topology. A node
    /// that froze would hold a refresh up to its timeout: once one view is
    /// in, the others have [`REFRESH_GRACE`] to follow, and a node backing
    /// off after failing is not asked.
    pub(super) async fn refresh(&self) {
        use futures::StreamExt;
        let current = self.topology();
        let mut candidates: Vec<Addr> = current.nodes().to_vec();
        candidates.extend(self.seeds.iter().cloned());
        let mut asked: futures::stream::FuturesUnordered<_> = dedup(candidates)
            .into_iter()
            .filter(|addr| !self.node(addr).is_backing_off())
            .map(|addr| async move {
                let deadline = Instant::now() + REFRESH_TIMEOUT;
                let cmd = redis::cmd("CLUSTER").arg("NODES").clone();
                match self
                    .attempt(&addr, Request::Cmd(&cmd), false, deadline)
                    .await
                {
                    Outcome::Done(Reply::One(value)) => {
                        let text = match value {
                            Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
                            Value::VerbatimString { text, .. } => Some(text),
                            _ => None,
                        };
                        text.map(|t| parse_nodes(&t, &addr))
                    }
                    _ => None,
                }
            })
            .collect();
        let mut views = Vec::new();
        let mut until = tokio::time::Instant::now() + REFRESH_TIMEOUT;
        loop {
            match tokio::time::timeout_at(until, asked.next()).await {
                Ok(Some(Some(view))) if !view.claims.is_empty() => {
                    if views.is_empty() {
                        until = until.min(tokio::time::Instant::now() + REFRESH_GRACE);
                    }
                    views.push(view);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        if views.is_empty() {
            tracing::debug!("no Redis Cluster node answered CLUSTER NODES");
            return;
        }
        let next = Topology::merge(&views);
        if !next.same_owners(&current) {
            tracing::info!(slots = %next.describe(), "Redis Cluster topology");
        }
        // Connections to nodes the cluster no longer knows are dropped.
        if let Ok(mut nodes) = self.nodes.lock() {
            nodes.retain(|addr, _| next.nodes().contains(addr) || self.seeds.contains(addr));
        }
        self.set_topology(next);
    }
}

/// Keeps the topology while anyone holds the client: at once on request,
/// and every few seconds regardless.
pub(super) async fn maintain(shared: Weak<Shared>, wanted: Arc<Notify>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        s.refresh().await;
        s.beat();
        let every = if s.topology().has_gaps() {
            REFRESH_WHILE_GAPS
        } else {
            REFRESH_EVERY
        };
        drop(s);
        tokio::select! {
            _ = wanted.notified() => {}
            _ = tokio::time::sleep(every) => {}
        }
        tokio::time::sleep(REFRESH_GAP).await;
    }
}
