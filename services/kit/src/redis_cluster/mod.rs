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

mod node;
mod refresh;
mod route;
pub mod topology;

pub use route::refused_by_the_cluster;
pub use topology::{key_slot, Addr};

use node::{timed_out, unreachable, Node, CONNECT_WAIT};
use redis::{
    aio::ConnectionLike, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    Pipeline, RedisError, RedisFuture, RedisResult, Value,
};
use route::{Target, Verdict};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, RwLock,
    },
    time::{Duration, Instant},
};
use tokio::sync::Notify;
use topology::Topology;

/// Waits between attempts of a command that did not run.
const RETRY_FIRST: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_millis(250);
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

fn no_owner(slot: u16) -> RedisError {
    RedisError::from((
        ErrorKind::ClusterConnectionNotFound,
        "no master known for slot",
        slot.to_string(),
    ))
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
        tokio::spawn(refresh::maintain(
            Arc::downgrade(&shared),
            shared.refresh_wanted.clone(),
        ));
        Ok(Self { shared })
    }

    /// Each master serving slots, and whether it answers `PING` within
    /// `within` (each on its own: a frozen master delays no other's answer).
    pub async fn ping_masters(&self, within: Duration) -> Vec<(Addr, Result<(), String>)> {
        let masters = self.shared.topology().masters();
        let pings = masters.into_iter().map(|addr| async move {
            let deadline = Instant::now() + within.min(self.shared.timeouts.command);
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
            .or_insert_with(|| Arc::new(Node::new(self.info_for(addr))))
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
