//! A private `redis-server` on a free loopback port with its own data folder.

use crate::process::ChildGuard;
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

pub struct RedisServer {
    pub port: u16,
    guard: ChildGuard,
    dir: PathBuf,
    aof: bool,
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
        };
        server.wait_ready();
        server
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
        use std::io::{BufRead, BufReader, Write};
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(b"PING\r\n").ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        let line = line.trim_end();
        Some(line.strip_prefix(['+', '-']).unwrap_or(line).to_owned())
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

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Waits until `PING` gets `PONG` (not merely a connection).
    pub fn wait_ready(&self) {
        for _ in 0..1200 {
            if self.answer_to_ping().is_some_and(|a| a == "PONG") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start: {}", self.guard.log_tail());
    }

    /// A connection of the kind the services use (so their stores can be
    /// driven directly).
    pub async fn connection(&self) -> lobby_kit::redis_conn::RedisConn {
        let client = redis::Client::open(self.url()).expect("redis url");
        lobby_kit::redis_conn::RedisConn::Single(
            redis::aio::ConnectionManager::new(client)
                .await
                .expect("redis connection"),
        )
    }

    pub fn stop(&mut self) {
        self.guard.kill();
    }

    /// SIGKILL, then start again on the same port and data folder.
    pub fn crash_and_restart(&mut self) {
        self.guard.kill();
        self.start_again();
    }

    /// Starts a stopped server again on the same port and data folder.
    pub fn start_again(&mut self) {
        self.guard = Self::spawn(&self.dir, self.port, self.aof, &[]);
        self.wait_ready();
    }
}
