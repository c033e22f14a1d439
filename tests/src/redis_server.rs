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
            guard: Self::spawn(dir, port, aof),
            dir: dir.to_path_buf(),
            aof,
        };
        server.wait_ready();
        server
    }

    fn spawn(dir: &Path, port: u16, aof: bool) -> ChildGuard {
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
        .arg(&data);
        ChildGuard::spawn(&format!("redis-{port}"), cmd, dir)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let client = redis::Client::open(self.url()).expect("redis url");
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_connection() {
                if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start: {}", self.guard.log_tail());
    }

    pub async fn connection(&self) -> redis::aio::ConnectionManager {
        let client = redis::Client::open(self.url()).expect("redis url");
        redis::aio::ConnectionManager::new(client)
            .await
            .expect("redis connection")
    }

    pub fn stop(&mut self) {
        self.guard.kill();
    }

    /// SIGKILL, then start again on the same port and data folder.
    pub fn crash_and_restart(&mut self) {
        self.guard.kill();
        self.guard = Self::spawn(&self.dir, self.port, self.aof);
        self.wait_ready();
    }
}
