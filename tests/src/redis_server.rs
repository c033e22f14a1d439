//! A private `redis-server` on a free loopback port with its own data folder,
//! or a private Redis Cluster of several masters, with replicas when asked
//! (`start_cluster`, `start_cluster_with`). Each node can be killed,
//! frozen (`SIGSTOP`), thawed and restarted on its own, as a failover test
//! needs.

use crate::process::ChildGuard;
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

/// How each write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing on disk: a restart starts empty.
    None,
    /// An append-only file synced every second, as in production.
    AofEverySec,
    /// An append-only file synced before each write is answered.
    AofAlways,
}

impl Persistence {
    fn args(self) -> [&'static str; 4] {
        match self {
            Self::None => ["--appendonly", "no", "--appendfsync", "everysec"],
            Self::AofEverySec => ["--appendonly", "yes", "--appendfsync", "everysec"],
            Self::AofAlways => ["--appendonly", "yes", "--appendfsync", "always"],
        }
    }
}

/// What a cluster node is given besides its port, folder and persistence:
/// as the manifests run it, the masters that still answer serve their slots
/// while another master's are not covered (a failover under way).
const CLUSTER_ARGS: [&str; 6] = [
    "--cluster-enabled",
    "yes",
    "--cluster-node-timeout",
    "2000",
    "--cluster-require-full-coverage",
    "no",
];

/// How long a cluster takes to notice a dead master (`--cluster-node-timeout`).
pub const CLUSTER_NODE_TIMEOUT: Duration = Duration::from_millis(2000);

struct Node {
    port: u16,
    guard: ChildGuard,
}

pub struct RedisServer {
    /// The (first) node's port.
    pub port: u16,
    guard: ChildGuard,
    dir: PathBuf,
    persistence: Persistence,
    /// The other nodes of a cluster (none for a single Redis).
    more: Vec<Node>,
}

/// `redis-server` arguments beyond the port, data folder and persistence.
type ExtraArgs<'a> = &'a [&'a str];

impl RedisServer {
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, false)
    }

    /// With `aof`, every write goes to an append-only file (fsync every
    /// second), as in production, so a restart keeps the state.
    pub fn start_with(dir: &Path, aof: bool) -> Self {
        let persistence = if aof {
            Persistence::AofEverySec
        } else {
            Persistence::None
        };
        Self::start_single(dir, persistence)
    }

    pub fn start_single(dir: &Path, persistence: Persistence) -> Self {
        let port = crate::free_port();
        let server = Self {
            port,
            guard: Self::spawn(dir, port, persistence, &[]),
            dir: dir.to_path_buf(),
            persistence,
            more: Vec::new(),
        };
        server.wait_ready();
        server
    }

    /// A real Redis Cluster of `masters` nodes on loopback (no replicas),
    /// made with `redis-cli --cluster create`, every slot covered.
    pub fn start_cluster(dir: &Path, masters: usize, aof: bool) -> Self {
        let persistence = if aof {
            Persistence::AofEverySec
        } else {
            Persistence::None
        };
        Self::start_cluster_with(dir, masters, 0, persistence)
    }

    /// A real Redis Cluster of `masters` masters with `replicas` replicas
    /// each, every slot covered and every replica in sync, so that a
    /// master's failure is followed by its replica's promotion within about
    /// the node timeout.
    pub fn start_cluster_with(
        dir: &Path,
        masters: usize,
        replicas: usize,
        persistence: Persistence,
    ) -> Self {
        let ports = crate::free_ports(masters.max(3) * (replicas + 1));
        let mut nodes: Vec<Node> = ports
            .iter()
            .map(|&port| Node {
                port,
                guard: Self::spawn(dir, port, persistence, &CLUSTER_ARGS),
            })
            .collect();
        let first = nodes.remove(0);
        let server = Self {
            port: first.port,
            guard: first.guard,
            dir: dir.to_path_buf(),
            persistence,
            more: nodes,
        };
        server.wait_ready();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for p in &ports {
            create.arg(format!("127.0.0.1:{p}"));
        }
        create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        let out = create.output().expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        server.wait_cluster_ok();
        if replicas > 0 {
            server.wait_replicas_in_sync();
        }
        server
    }

    pub fn is_cluster(&self) -> bool {
        !self.more.is_empty()
    }

    /// Every node's port (the first one first).
    pub fn ports(&self) -> Vec<u16> {
        std::iter::once(self.port)
            .chain(self.more.iter().map(|n| n.port))
            .collect()
    }

    fn guard_mut(&mut self, port: u16) -> &mut ChildGuard {
        if port == self.port {
            return &mut self.guard;
        }
        &mut self
            .more
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no Redis node on port {port}"))
            .guard
    }

    fn running_ports(&mut self) -> Vec<u16> {
        let mut up = Vec::new();
        if self.guard.is_running() {
            up.push(self.port);
        }
        for node in &mut self.more {
            if node.guard.is_running() {
                up.push(node.port);
            }
        }
        up
    }

    /// What `CLUSTER NODES` says on `port`, or `None` when it does not answer.
    pub fn cluster_nodes(port: u16) -> Option<String> {
        cluster_says(port, "NODES")
    }

    /// The port of the master serving `slot`, as the cluster sees it now
    /// (asked of every node that answers, highest epoch winning).
    pub fn master_of_slot(&self, slot: u16) -> Option<u16> {
        let views: Vec<_> = self
            .ports()
            .into_iter()
            .filter_map(|p| {
                let text = Self::cluster_nodes(p)?;
                Some(lobby_kit::redis_cluster::topology::parse_nodes(
                    &text,
                    &format!("127.0.0.1:{p}"),
                ))
            })
            .collect();
        let topology = lobby_kit::redis_cluster::topology::Topology::merge(&views);
        let owner = topology.owner(slot)?;
        owner.rsplit_once(':')?.1.parse().ok()
    }

    /// The port of the master holding `account`'s keys.
    pub fn master_of_account(&self, account: &str) -> Option<u16> {
        let tag = lobby_kit::keys::account_tag(account);
        self.master_of_slot(lobby_kit::redis_cluster::key_slot(tag.as_bytes()))
    }

    /// `kill -9` of one node.
    pub fn kill_node(&mut self, port: u16) {
        self.guard_mut(port).kill();
    }

    /// `SIGSTOP` of one node: it keeps its sockets and answers nothing.
    pub fn freeze_node(&mut self, port: u16) {
        self.signal(port, "-STOP");
    }

    /// The process id of the node on `port`.
    pub fn pid_of(&mut self, port: u16) -> u32 {
        self.guard_mut(port).pid().expect("a running node")
    }

    /// `SIGCONT` of a frozen node.
    pub fn thaw_node(&mut self, port: u16) {
        self.signal(port, "-CONT");
    }

    fn signal(&mut self, port: u16, signal: &str) {
        let pid = self.guard_mut(port).pid().expect("a running node");
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Starts a killed node again on its port and folder (a cluster node
    /// finds the cluster again from its nodes.conf, as a replica of the
    /// master that replaced it).
    pub fn restart_node(&mut self, port: u16) {
        let extra: &[&str] = if self.is_cluster() {
            &CLUSTER_ARGS
        } else {
            &[]
        };
        let guard = Self::spawn(&self.dir, port, self.persistence, extra);
        *self.guard_mut(port) = guard;
        wait_pong(port, &self.dir);
    }

    /// Waits until every running node says the cluster is up (all slots served).
    pub fn wait_cluster_ok(&self) {
        self.wait_cluster_ok_within(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits up to `limit` until every node that answers reports
    /// `cluster_state:ok`; how long it took.
    pub fn wait_cluster_ok_within(&self, limit: Duration) -> Result<Duration, String> {
        let began = Instant::now();
        while began.elapsed() < limit {
            let states: Vec<String> = self
                .ports()
                .iter()
                .filter_map(|p| cluster_says(*p, "INFO"))
                .collect();
            if !states.is_empty() && states.iter().all(|i| i.contains("cluster_state:ok")) {
                return Ok(began.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "the Redis cluster did not report cluster_state:ok within {limit:?}"
        ))
    }

    /// Waits until every replica has loaded its master's data and follows it.
    fn wait_replicas_in_sync(&self) {
        for _ in 0..400 {
            let synced = self.ports().iter().all(|p| {
                redis::Client::open(format!("redis://127.0.0.1:{p}"))
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                    .and_then(|mut c| {
                        redis::cmd("INFO")
                            .arg("replication")
                            .query::<String>(&mut c)
                    })
                    .is_ok_and(|info| {
                        info.contains("role:master") || info.contains("master_link_status:up")
                    })
            });
            if synced {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the Redis cluster's replicas never came in sync");
    }

    /// A Redis that is still replaying a large AOF when this returns: `keys`
    /// keys are written and rewritten into the AOF by a first server, then a
    /// second one loads them `load_delay_us` microseconds apart (Redis's own
    /// `key-load-delay`), answering `LOADING` meanwhile, as a production
    /// Redis with a big data set does after a restart.
    pub fn start_loading(dir: &Path, keys: u64, load_delay_us: u32) -> Self {
        let port = crate::free_port();
        let first = Self {
            port,
            guard: Self::spawn(
                dir,
                port,
                Persistence::AofEverySec,
                &["--enable-debug-command", "yes"],
            ),
            dir: dir.to_path_buf(),
            persistence: Persistence::AofEverySec,
            more: Vec::new(),
        };
        first.wait_ready();
        let client = redis::Client::open(first.url()).expect("redis url");
        let mut conn = client.get_connection().expect("redis connection");
        let () = redis::cmd("DEBUG")
            .arg("POPULATE")
            .arg(keys)
            .query(&mut conn)
            .expect("DEBUG POPULATE");
        let _: String = redis::cmd("BGREWRITEAOF")
            .query(&mut conn)
            .expect("BGREWRITEAOF");
        for _ in 0..600 {
            let info: String = redis::cmd("INFO")
                .arg("persistence")
                .query(&mut conn)
                .expect("INFO");
            if info.contains("aof_rewrite_in_progress:0")
                && info.contains("aof_rewrite_scheduled:0")
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _: Result<(), _> = redis::cmd("SHUTDOWN").arg("NOSAVE").query(&mut conn);
        drop(first);
        let delay = load_delay_us.to_string();
        let server = Self {
            port,
            // Events (PING among them) handled every KiB loaded, so a
            // loading Redis answers LOADING at once instead of stalling.
            guard: Self::spawn(
                dir,
                port,
                Persistence::AofEverySec,
                &[
                    "--key-load-delay",
                    &delay,
                    "--loading-process-events-interval-bytes",
                    "1024",
                ],
            ),
            dir: dir.to_path_buf(),
            persistence: Persistence::AofEverySec,
            more: Vec::new(),
        };
        for _ in 0..100 {
            if server
                .answer_to_ping()
                .is_some_and(|a| a.contains("LOADING"))
            {
                return server;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server never reported LOADING: {}",
            server.guard.log_tail()
        );
    }

    /// What `PING` gets right now: `PONG`, a `LOADING …` error, or `None`
    /// when nothing answers. Spoken raw over TCP: a client library's own
    /// connection handshake fails on a loading Redis before PING is sent.
    pub fn answer_to_ping(&self) -> Option<String> {
        ping(self.port)
    }

    fn spawn(dir: &Path, port: u16, persistence: Persistence, extra: ExtraArgs) -> ChildGuard {
        let data = dir.join(format!("redis-{port}"));
        std::fs::create_dir_all(&data).expect("redis dir");
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(persistence.args())
        .arg("--dir")
        .arg(&data)
        .args(extra);
        ChildGuard::spawn(&format!("redis-{port}"), cmd, dir)
    }

    /// What the services are given as LOBBY_REDIS_URL.
    pub fn url(&self) -> String {
        if self.is_cluster() {
            let nodes: Vec<String> = self
                .ports()
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect();
            format!(
                "{}{}",
                lobby_kit::redis_conn::CLUSTER_SCHEME,
                nodes.join(",")
            )
        } else {
            format!("redis://127.0.0.1:{}", self.port)
        }
    }

    /// Waits until `PING` gets `PONG` (not merely a connection) on every node.
    pub fn wait_ready(&self) {
        for port in self.ports() {
            wait_pong(port, &self.dir);
        }
    }

    /// A connection of the kind the services use (so their stores can be
    /// driven directly), to the single Redis or the whole cluster.
    pub async fn connection(&self) -> lobby_kit::redis_conn::RedisConn {
        lobby_kit::redis_conn::connect(&lobby_kit::redis_conn::RedisSettings {
            url: self.url(),
            retry_max: Duration::from_secs(2),
            report_after: Duration::from_secs(30),
            command_timeout: Duration::from_secs(5),
        })
        .expect("redis connection")
    }

    /// Every key, on every node.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for port in self.ports() {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("node connection");
            let mut found: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut conn)
                .await
                .expect("keys");
            keys.append(&mut found);
        }
        keys.sort();
        keys
    }

    /// Every key with its serialised value (DUMP) and TTL: two equal
    /// snapshots mean nothing was written in between.
    pub async fn snapshot(&self) -> std::collections::BTreeMap<String, (Vec<u8>, i64)> {
        let mut conn = self.connection().await;
        let mut all = std::collections::BTreeMap::new();
        for key in self.keys("*").await {
            let dump: Vec<u8> = redis::cmd("DUMP")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("dump");
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("pttl");
            all.insert(key, (dump, ttl));
        }
        all
    }

    /// The keys written, created or deleted between two snapshots. A TTL
    /// counting down is not a write; one set again (higher than before, or
    /// added or removed) is.
    pub fn writes_between(
        before: &std::collections::BTreeMap<String, (Vec<u8>, i64)>,
        after: &std::collections::BTreeMap<String, (Vec<u8>, i64)>,
    ) -> Vec<String> {
        let rewritten = after
            .iter()
            .filter(|(key, (dump, ttl))| match before.get(*key) {
                None => true,
                Some((old_dump, old_ttl)) => {
                    old_dump != dump || (*old_ttl < 0) != (*ttl < 0) || ttl > old_ttl
                }
            });
        let deleted = before.keys().filter(|key| !after.contains_key(*key));
        rewritten
            .map(|(key, _)| key)
            .chain(deleted)
            .cloned()
            .collect()
    }

    /// SIGKILL of every node.
    pub fn stop(&mut self) {
        self.guard.kill();
        for node in &mut self.more {
            node.guard.kill();
        }
    }

    /// SIGKILL, then start again on the same ports and data folders.
    pub fn crash_and_restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts stopped nodes again on the same ports and data folders (a
    /// cluster finds itself again from its nodes.conf).
    pub fn start_again(&mut self) {
        let extra: &[&str] = if self.is_cluster() {
            &CLUSTER_ARGS
        } else {
            &[]
        };
        for port in self.ports() {
            if !self.running_ports().contains(&port) {
                let guard = Self::spawn(&self.dir, port, self.persistence, extra);
                *self.guard_mut(port) = guard;
            }
        }
        self.wait_ready();
        if self.is_cluster() {
            self.wait_cluster_ok();
        }
    }
}

/// What `CLUSTER <what>` answers on `port`, or `None` when the node does not
/// answer within half a second.
fn cluster_says(port: u16, what: &str) -> Option<String> {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
        .and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_millis(500)))?;
            redis::cmd("CLUSTER").arg(what).query::<String>(&mut c)
        })
        .ok()
}

/// Waits until the node on `port` answers `PING` with `PONG`.
fn wait_pong(port: u16, dir: &Path) {
    let ready = (0..1200).any(|_| {
        let pong = ping(port).is_some_and(|a| a == "PONG");
        if !pong {
            std::thread::sleep(Duration::from_millis(50));
        }
        pong
    });
    let log = std::fs::read_to_string(dir.join(format!("redis-{port}.log"))).unwrap_or_default();
    assert!(ready, "redis-server :{port} did not start: {log}");
}

/// `PING` spoken raw over TCP (see [`RedisServer::answer_to_ping`]).
fn ping(port: u16) -> Option<String> {
    use std::io::{BufRead, BufReader, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"PING\r\n").ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    let line = line.trim_end();
    Some(line.strip_prefix(['+', '-']).unwrap_or(line).to_owned())
}
