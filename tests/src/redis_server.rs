//! A private `redis-server` on a free loopback port with its own data folder.

use crate::process::ChildGuard;
use std::{path::Path, process::Command, time::Duration};

pub struct RedisServer {
    pub port: u16,
    guard: ChildGuard,
}

impl RedisServer {
    pub fn start(dir: &Path) -> Self {
        let port = crate::free_port();
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
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&data);
        let guard = ChildGuard::spawn(&format!("redis-{port}"), cmd, dir);
        let server = Self { port, guard };
        server.wait_ready();
        server
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
}
