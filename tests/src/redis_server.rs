//! A private `redis-server` on a free loopback port with its own data folder,
//! or a private Redis Cluster of several masters (`start_cluster`).

use crate::process::ChildGuard;
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

pub struct RedisServer {
    /// The (first) node's port.
    pub port: u16,
    guard: ChildGuard,
    dir: PathBuf,
    aof: bool,
    /// The other masters of a cluster (none for a single Redis).
    more: Vec<(u16, ChildGuard)>,
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
        let port = crate::free_port();
        let server = Self {
            port,
            guard: Self::spawn(dir, port, aof, &[]),
            dir: dir.to_path_buf(),
            aof,
            more: Vec::new(),
        };
        server.wait_ready();
        server
    }

    /// A real Redis Cluster of `masters` nodes on loopback (no replicas),
    /// made with `redis-cli --cluster create`, every slot covered.
    pub fn start_cluster(dir: &Path, masters: usize, aof: bool) -> Self {
        let ports = crate::free_ports(masters.max(3));
        let cluster_args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"];
        let mut nodes: Vec<(u16, ChildGuard)> = ports
            .iter()
            .map(|&p| (p, Self::spawn(dir, p, aof, &cluster_args)))
            .collect();
        let (port, guard) = nodes.remove(0);
        let server = Self {
            port,
            guard,
            dir: dir.to_path_buf(),
            aof,
            more: nodes,
        };
        server.wait_ready();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for p in &ports {
            create.arg(format!("127.0.0.1:{p}"));
        }
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = create.output().expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        server.wait_cluster_ok();
        server
    }

    pub fn is_cluster(&self) -> bool {
        !self.more.is_empty()
    }

    fn ports(&self) -> Vec<u16> {
        std::iter::once(self.port)
            .chain(self.more.iter().map(|(p, _)| *p))
            .collect()
    }

    /// Waits until every node says the cluster is up (all slots served).
    fn wait_cluster_ok(&self) {
        for _ in 0..200 {
            let ok = self.ports().iter().all(|p| {
                redis::Client::open(format!("redis://127.0.0.1:{p}"))
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the Redis cluster never reported cluster_state:ok");
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
            guard: Self::spawn(dir, port, true, &["--enable-debug-command", "yes"]),
            dir: dir.to_path_buf(),
            aof: true,
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
                true,
                &[
                    "--key-load-delay",
                    &delay,
                    "--loading-process-events-interval-bytes",
                    "1024",
                ],
            ),
            dir: dir.to_path_buf(),
            aof: true,
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

    fn spawn(dir: &Path, port: u16, aof: bool, extra: ExtraArgs) -> ChildGuard {
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
        .args([
            "--appendonly",
            if aof { "yes" } else { "no" },
            "--appendfsync",
            "everysec",
        ])
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
            let ready = (0..1200).any(|_| {
                let pong = ping(port).is_some_and(|a| a == "PONG");
                if !pong {
                    std::thread::sleep(Duration::from_millis(50));
                }
                pong
            });
            assert!(
                ready,
                "redis-server :{port} did not start: {}",
                self.guard.log_tail()
            );
        }
    }

    /// A connection of the kind the services use (so their stores can be
    /// driven directly), to the single Redis or the whole cluster.
    pub async fn connection(&self) -> lobby_kit::redis_conn::RedisConn {
        if self.is_cluster() {
            let nodes: Vec<String> = self
                .ports()
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect();
            let client = redis::cluster::ClusterClient::new(nodes).expect("cluster client");
            return lobby_kit::redis_conn::RedisConn::Cluster(
                client
                    .get_async_connection()
                    .await
                    .expect("cluster connection"),
            );
        }
        let client = redis::Client::open(self.url()).expect("redis url");
        lobby_kit::redis_conn::RedisConn::Single(
            redis::aio::ConnectionManager::new(client)
                .await
                .expect("redis connection"),
        )
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
        for (_, node) in &mut self.more {
            node.kill();
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
            &["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]
        } else {
            &[]
        };
        self.guard = Self::spawn(&self.dir, self.port, self.aof, extra);
        for (port, node) in &mut self.more {
            *node = Self::spawn(&self.dir, *port, self.aof, extra);
        }
        self.wait_ready();
        if self.is_cluster() {
            self.wait_cluster_ok();
        }
    }
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
