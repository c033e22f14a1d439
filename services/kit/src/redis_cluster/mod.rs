//! Redis Cluster for Lobby's services: each command goes to the master of
//! its key's slot over that node's own multiplexed connection, so a master
//! failing stalls only the commands for its slots.
//!
//! Why not the `redis` crate's cluster client: under load it stopped
//! sending anything for good once a master was killed. Its recovery holds
//! the topology lock for writing while requests it no longer polls hold it
//! for reading, so it waits forever (redis 1.8.1, 1.8.2 and 2.0.0-rc.2 alike,
//! with 200 requests in flight). `fred` 10 recovers, but stops every shard's
//! commands while it resyncs. docs/operations.md has the measurements.
//!
//! What this client does instead:
//! - Topology comes from `CLUSTER NODES` of every node it knows, merged by
//!   configuration epoch, refreshed in the background: every few seconds,
//!   and at once (at most every 100 ms) when a command meets a dead node,
//!   a timeout, MOVED, CLUSTERDOWN, TRYAGAIN, LOADING or READONLY. No
//!   command ever waits for a refresh, and no lock is held across an await.
//! - A MOVED takes effect for its slot at once.
//! - A command is sent again only when its answer proves it did not run (a
//!   refused connection, a redirect, a refusal), never after a timeout or a
//!   connection lost mid-command: a script that may have run is not run twice.
//! - Every command has one deadline for all its attempts. A dead node is
//!   tried again after a backoff, not by every command meanwhile.

mod route;
pub mod topology;

pub use topology::{key_slot, Addr};

use redis::{
    aio::{ConnectionLike, MultiplexedConnection},
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    Pipeline, RedisError, RedisFuture, RedisResult, Value,
};
use route::{Target, Verdict};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, RwLock, Weak,
    },
    time::{Duration, Instant},
};
use tokio::sync::Notify;
use topology::{parse_nodes, Topology};

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
/// Waits between attempts of a command that did not run.
const RETRY_FIRST: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_millis(250);
/// Waits before a node that could not be reached is tried again.
const RECONNECT_FIRST: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(1);
/// Redirects one command follows before giving up (a topology in motion).
const MAX_REDIRECTS: u32 = 5;

#[derive(Debug, Clone, Copy)]
pub struct ClusterTimeouts {
    /// Connecting to one node (and its handshake).
    pub connect: Duration,
    /// One command, all its attempts included.
    pub command: Duration,
}

/// A client for a whole Redis Cluster. Cheap to clone: clones share the
/// topology and the connections.
#[derive(Clone)]
pub struct ClusterRouter {
    shared: Arc<Shared>,
}

struct Shared {
    /// The first node's settings (credentials, database), for every node.
    template: ConnectionInfo,
    seeds: Vec<Addr>,
    timeouts: ClusterTimeouts,
    topology: RwLock<Arc<Topology>>,
    nodes: Mutex<HashMap<Addr, Arc<Node>>>,
    refresh_wanted: Arc<Notify>,
    /// Beaten each time the task that keeps the topology goes round.
    heartbeat: Arc<crate::liveness::Heartbeat>,
    next_master: AtomicUsize,
}

/// One node: its connection, made on first use and again after it broke,
/// and when it may be tried again after failing.
struct Node {
    info: ConnectionInfo,
    conn: Mutex<Option<MultiplexedConnection>>,
    /// A connection being made, shared by every command waiting for it.
    connecting: Mutex<Option<Connecting>>,
    backoff: Mutex<Option<(Instant, Duration)>>,
}

type Connecting = futures::future::Shared<
    futures::future::BoxFuture<'static, Result<MultiplexedConnection, String>>,
>;

/// How long a command waits for its node's connection to be made before it
/// looks at the topology again: a connection to a live node takes
/// milliseconds, one to a frozen node its whole connect timeout.
const CONNECT_WAIT: Duration = Duration::from_millis(200);

/// What one attempt came to.
enum Outcome<T> {
    Done(T),
    Moved {
        slot: u16,
        addr: Addr,
    },
    Ask {
        addr: Addr,
    },
    /// It did not run; sending it again is safe.
    NotRun(RedisError),
    /// It may have run: the caller must be told.
    Failed(RedisError),
}

/// One request, a command or a pipeline.
#[derive(Clone, Copy)]
enum Request<'a> {
    Cmd(&'a Cmd),
    Pipeline(&'a Pipeline, usize, usize),
}

enum Reply {
    One(Value),
    Many(Vec<Value>),
}

fn unreachable(addr: &str, why: impl std::fmt::Display) -> RedisError {
    RedisError::from((
        ErrorKind::Io,
        "Redis node unreachable",
        format!("{addr}: {why}"),
    ))
}

fn timed_out(addr: &str, after: Duration) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("Redis node {addr} did not answer within {after:?}"),
    ))
}

fn no_owner(slot: u16) -> RedisError {
    RedisError::from((
        ErrorKind::ClusterConnectionNotFound,
        "no master known for slot",
        slot.to_string(),
    ))
}

impl Node {
    fn current(&self) -> Option<MultiplexedConnection> {
        self.conn.lock().ok().and_then(|c| c.clone())
    }

    fn waiting(&self, addr: &str) -> Result<(), RedisError> {
        let backoff = self.backoff.lock().ok().and_then(|b| *b);
        match backoff {
            Some((until, _)) if Instant::now() < until => Err(unreachable(
                addr,
                format!("tried again in {:?}", until - Instant::now()),
            )),
            _ => Ok(()),
        }
    }

    fn is_backing_off(&self) -> bool {
        self.backoff
            .lock()
            .ok()
            .and_then(|b| *b)
            .is_some_and(|(until, _)| Instant::now() < until)
    }

    /// The node failed: drop its connection, wait before the next one.
    fn suspect(&self) {
        if let Ok(mut c) = self.conn.lock() {
            c.take();
        }
        if let Ok(mut b) = self.backoff.lock() {
            let wait = b.map_or(RECONNECT_FIRST, |(_, w)| (w * 2).min(RECONNECT_MAX));
            *b = Some((Instant::now() + wait, wait));
        }
    }

    /// The node's connection. A missing one is made on a task of its own:
    /// a command waits for it at most `wait`, then goes back to the
    /// topology (its slot may have moved) rather than hang on a frozen node.
    async fn connection(
        self: &Arc<Self>,
        addr: &Addr,
        connect_timeout: Duration,
        wait: Duration,
    ) -> Result<MultiplexedConnection, RedisError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        self.waiting(addr)?;
        let pending = {
            let mut slot = self.connecting.lock().unwrap_or_else(|p| p.into_inner());
            match &*slot {
                Some(pending) => pending.clone(),
                None => {
                    let pending = self.clone().connect(addr.clone(), connect_timeout);
                    *slot = Some(pending.clone());
                    pending
                }
            }
        };
        match tokio::time::timeout(wait, pending).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(unreachable(addr, e)),
            Err(_) => Err(unreachable(addr, "still connecting")),
        }
    }

    fn connect(self: Arc<Self>, addr: Addr, timeout: Duration) -> Connecting {
        use futures::FutureExt;
        let task = tokio::spawn(async move {
            let made = async {
                let client = redis::Client::open(self.info.clone()).map_err(|e| e.to_string())?;
                let config = AsyncConnectionConfig::new().set_connection_timeout(Some(timeout));
                tokio::time::timeout(
                    timeout,
                    client.get_multiplexed_async_connection_with_config(&config),
                )
                .await
                .map_err(|_| format!("no connection to {addr} within {timeout:?}"))?
                .map_err(|e| e.to_string())
            }
            .await;
            match &made {
                Ok(conn) => {
                    if let Ok(mut c) = self.conn.lock() {
                        *c = Some(conn.clone());
                    }
                    if let Ok(mut b) = self.backoff.lock() {
                        b.take();
                    }
                }
                Err(_) => self.suspect(),
            }
            if let Ok(mut slot) = self.connecting.lock() {
                slot.take();
            }
            made
        });
        async move { task.await.unwrap_or_else(|e| Err(e.to_string())) }
            .boxed()
            .shared()
    }
}

impl ClusterRouter {
    /// A client for the cluster these nodes belong to (any of them will do
    /// to find the rest). Returns at once: the topology is read in the
    /// background, and commands sent before it is known wait for it within
    /// their deadline. Needs a Tokio runtime.
    pub fn open(nodes: &[String], timeouts: ClusterTimeouts) -> RedisResult<Self> {
        let infos = nodes
            .iter()
            .map(|n| n.as_str().into_connection_info())
            .collect::<RedisResult<Vec<ConnectionInfo>>>()?;
        let template = infos.first().cloned().ok_or_else(|| {
            RedisError::from((ErrorKind::InvalidClientConfig, "no cluster node given"))
        })?;
        let seeds = infos
            .iter()
            .filter_map(|i| match i.addr() {
                ConnectionAddr::Tcp(host, port) => Some(Addr::from(format!("{host}:{port}"))),
                _ => None,
            })
            .collect::<Vec<_>>();
        if seeds.is_empty() {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "cluster nodes must be TCP host:port",
            )));
        }
        let shared = Arc::new(Shared {
            template,
            seeds,
            timeouts,
            topology: RwLock::new(Arc::new(Topology::default())),
            nodes: Mutex::new(HashMap::new()),
            refresh_wanted: Arc::new(Notify::new()),
            // It goes round every few seconds whatever Redis does: silent
            // for long, it is gone, and this client can no longer follow a
            // failover; only a restart mends that.
            heartbeat: crate::liveness::Heartbeat::register(
                "the Redis Cluster topology task",
                Duration::from_secs(30),
            ),
            next_master: AtomicUsize::new(0),
        });
        tokio::spawn(maintain(
            Arc::downgrade(&shared),
            shared.refresh_wanted.clone(),
        ));
        Ok(Self { shared })
    }

    /// Each master serving slots, and whether it answers `PING` now.
    pub async fn ping_masters(&self) -> Vec<(Addr, Result<(), String>)> {
        let masters = self.shared.topology().masters();
        let pings = masters.into_iter().map(|addr| async move {
            let deadline = Instant::now() + self.shared.timeouts.command;
            let answer = match self
                .shared
                .attempt(&addr, Request::Cmd(&redis::cmd("PING")), false, deadline)
                .await
            {
                Outcome::Done(_) => Ok(()),
                Outcome::NotRun(e) | Outcome::Failed(e) => {
                    self.shared.want_refresh();
                    Err(e.to_string())
                }
                Outcome::Moved { .. } | Outcome::Ask { .. } => Err("redirected".to_owned()),
            };
            (addr, answer)
        });
        futures::future::join_all(pings).await
    }

    /// Whether any slot has no master known (the topology is not read yet,
    /// or the cluster has lost a shard for good).
    pub fn has_unserved_slots(&self) -> bool {
        self.shared.topology().has_gaps()
    }

    /// A pub/sub connection to the first node that takes one: a cluster
    /// delivers every PUBLISH to subscribers on every node.
    pub async fn pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        let topology = self.shared.topology();
        let mut candidates: Vec<Addr> = topology.masters();
        candidates.extend(topology.nodes().iter().cloned());
        candidates.extend(self.shared.seeds.iter().cloned());
        let mut last = None;
        for addr in dedup(candidates) {
            let client = redis::Client::open(self.shared.info_for(&addr))?;
            let connect =
                tokio::time::timeout(self.shared.timeouts.connect, client.get_async_pubsub());
            match connect.await {
                Ok(Ok(pubsub)) => return Ok(pubsub),
                Ok(Err(e)) => last = Some(unreachable(&addr, e)),
                Err(_) => last = Some(timed_out(&addr, self.shared.timeouts.connect)),
            }
        }
        Err(last.unwrap_or_else(|| unreachable("cluster", "no node known")))
    }

    async fn route(&self, request: Request<'_>) -> RedisResult<Reply> {
        let target = match request {
            Request::Cmd(cmd) => route::target_of(cmd),
            Request::Pipeline(p, ..) => route::target_of_pipeline(p),
        };
        let deadline = Instant::now() + self.shared.timeouts.command;
        if target == Target::EveryMaster {
            return self.shared.on_every_master(request, deadline).await;
        }
        let mut retry = crate::backoff::Backoff::new(RETRY_FIRST, RETRY_MAX);
        let mut redirects = 0;
        let mut ask: Option<Addr> = None;
        loop {
            let addr = match (&ask, target) {
                (Some(addr), _) => Some(addr.clone()),
                (None, Target::Slot(slot)) => self.shared.topology().owner(slot).cloned(),
                _ => self.shared.any_master(),
            };
            let outcome = match addr {
                None => {
                    self.shared.want_refresh();
                    Outcome::NotRun(match target {
                        Target::Slot(slot) => no_owner(slot),
                        _ => unreachable("cluster", "no master answers"),
                    })
                }
                Some(addr) => {
                    let asking = ask.take().is_some();
                    self.shared.attempt(&addr, request, asking, deadline).await
                }
            };
            let last = match outcome {
                Outcome::Done(reply) => return Ok(reply),
                Outcome::Failed(e) => {
                    self.shared.want_refresh();
                    return Err(e);
                }
                Outcome::Moved { slot, addr } => {
                    self.shared.moved(slot, &addr);
                    redirects += 1;
                    if redirects <= MAX_REDIRECTS {
                        continue;
                    }
                    RedisError::from((
                        ErrorKind::Server(redis::ServerErrorKind::Moved),
                        "too many redirects",
                        format!("{slot} {addr}"),
                    ))
                }
                Outcome::Ask { addr } => {
                    // A slot in migration: its owner will change soon.
                    self.shared.want_refresh();
                    redirects += 1;
                    if redirects <= MAX_REDIRECTS {
                        ask = Some(addr);
                        continue;
                    }
                    RedisError::from((
                        ErrorKind::Server(redis::ServerErrorKind::Ask),
                        "too many redirects",
                        addr.to_string(),
                    ))
                }
                Outcome::NotRun(e) => {
                    self.shared.want_refresh();
                    e
                }
            };
            let wait = retry.next_delay();
            if Instant::now() + wait >= deadline {
                return Err(last);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

fn dedup(addrs: Vec<Addr>) -> Vec<Addr> {
    let mut seen = std::collections::HashSet::new();
    addrs
        .into_iter()
        .filter(|a| seen.insert(a.clone()))
        .collect()
}

impl Shared {
    fn topology(&self) -> Arc<Topology> {
        self.topology
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn set_topology(&self, next: Topology) {
        let mut t = self
            .topology
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *t = Arc::new(next);
    }

    fn want_refresh(&self) {
        self.refresh_wanted.notify_one();
    }

    fn moved(&self, slot: u16, addr: &Addr) {
        let next = self.topology().with_owner(slot, addr);
        self.set_topology(next);
        self.want_refresh();
    }

    fn info_for(&self, addr: &str) -> ConnectionInfo {
        let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
        self.template.clone().set_addr(ConnectionAddr::Tcp(
            host.to_owned(),
            port.parse().unwrap_or(6379),
        ))
    }

    fn node(&self, addr: &Addr) -> Arc<Node> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes
            .entry(addr.clone())
            .or_insert_with(|| {
                Arc::new(Node {
                    info: self.info_for(addr),
                    conn: Mutex::new(None),
                    connecting: Mutex::new(None),
                    backoff: Mutex::new(None),
                })
            })
            .clone()
    }

    /// A master for a command with no key, in turn, passing over those
    /// that failed a moment ago.
    fn any_master(&self) -> Option<Addr> {
        let masters = self.topology().masters();
        if masters.is_empty() {
            return None;
        }
        let first = self.next_master.fetch_add(1, Ordering::Relaxed);
        (0..masters.len())
            .map(|i| &masters[(first + i) % masters.len()])
            .find(|m| !self.node(m).is_backing_off())
            .or_else(|| masters.get(first % masters.len()))
            .cloned()
    }

    async fn attempt(
        &self,
        addr: &Addr,
        request: Request<'_>,
        asking: bool,
        deadline: Instant,
    ) -> Outcome<Reply> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Outcome::NotRun(timed_out(addr, self.timeouts.command));
        }
        let node = self.node(addr);
        let connected = node
            .connection(addr, self.timeouts.connect, CONNECT_WAIT.min(remaining))
            .await;
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(e) => return Outcome::NotRun(e),
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let sent = async {
            match request {
                Request::Cmd(cmd) if asking => {
                    let mut pipe = redis::pipe();
                    pipe.cmd("ASKING").ignore().add_command(cmd.clone());
                    conn.req_packed_commands(&pipe, 1, 1)
                        .await
                        .map(|mut v| Reply::One(v.pop().unwrap_or(Value::Nil)))
                }
                Request::Cmd(cmd) => conn.req_packed_command(cmd).await.map(Reply::One),
                Request::Pipeline(p, offset, count) => conn
                    .req_packed_commands(p, offset, count)
                    .await
                    .map(Reply::Many),
            }
        };
        let reply = match tokio::time::timeout(remaining, sent).await {
            Err(_) => {
                node.suspect();
                return Outcome::Failed(timed_out(addr, self.timeouts.command));
            }
            Ok(Err(e)) => {
                match route::error_verdict(&e, addr) {
                    Some(Verdict::Moved { slot, addr }) => return Outcome::Moved { slot, addr },
                    Some(_) => return Outcome::NotRun(e),
                    None => {}
                }
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    node.suspect();
                }
                return Outcome::Failed(e);
            }
            Ok(Ok(reply)) => reply,
        };
        let verdict = match &reply {
            Reply::One(v) => route::verdict(v, addr),
            Reply::Many(vs) => route::pipeline_verdict(vs, addr),
        };
        match verdict {
            Verdict::Answer => Outcome::Done(reply),
            Verdict::Moved { slot, addr } => Outcome::Moved { slot, addr },
            Verdict::Ask { addr } => Outcome::Ask { addr },
            Verdict::NotRun => Outcome::NotRun(first_error(&reply)),
        }
    }

    /// Sends to every master at once; the first plain answer is the answer.
    async fn on_every_master(&self, request: Request<'_>, deadline: Instant) -> RedisResult<Reply> {
        let mut retry = crate::backoff::Backoff::new(RETRY_FIRST, RETRY_MAX);
        loop {
            let masters = self.topology().masters();
            let attempts = masters
                .iter()
                .map(|m| self.attempt(m, request, false, deadline));
            let mut last = unreachable("cluster", "no master known");
            let mut answer = None;
            for outcome in futures::future::join_all(attempts).await {
                match outcome {
                    Outcome::Done(reply) => {
                        let plain = !matches!(reply, Reply::One(Value::ServerError(_)));
                        if plain || answer.is_none() {
                            answer = Some(reply);
                        }
                    }
                    Outcome::NotRun(e) | Outcome::Failed(e) => last = e,
                    Outcome::Moved { .. } | Outcome::Ask { .. } => {}
                }
            }
            if let Some(reply) = answer {
                return Ok(reply);
            }
            self.want_refresh();
            let wait = retry.next_delay();
            if Instant::now() + wait >= deadline {
                return Err(last);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Reads every known node's view and keeps the merged topology. A node
    /// that froze would hold a refresh up to its timeout: once one view is
    /// in, the others have [`REFRESH_GRACE`] to follow, and a node backing
    /// off after failing is not asked.
    async fn refresh(&self) {
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

    fn beat(&self) {
        self.heartbeat.beat();
    }
}

/// The first refusal in a reply, as an error.
fn first_error(reply: &Reply) -> RedisError {
    let values: &[Value] = match reply {
        Reply::One(v) => std::slice::from_ref(v),
        Reply::Many(vs) => vs,
    };
    values
        .iter()
        .find_map(|v| match v {
            Value::ServerError(e) => Some(RedisError::from(e.clone())),
            _ => None,
        })
        .unwrap_or_else(|| unreachable("cluster", "refused"))
}

/// Keeps the topology while anyone holds the client: at once on request,
/// and every few seconds regardless.
async fn maintain(shared: Weak<Shared>, wanted: Arc<Notify>) {
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

impl ConnectionLike for ClusterRouter {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match self.route(Request::Cmd(cmd)).await? {
                Reply::One(v) => Ok(v),
                Reply::Many(mut vs) => Ok(vs.pop().unwrap_or(Value::Nil)),
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match self
                .route(Request::Pipeline(pipeline, offset, count))
                .await?
            {
                Reply::Many(vs) => Ok(vs),
                Reply::One(v) => Ok(vec![v]),
            }
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
