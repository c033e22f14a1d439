//! A real S3-compatible server for the artifacts service's S3 store: moto
//! in server mode (PyPI `moto[server]`, in the project venv), on loopback.
//! It speaks the S3 REST API (path-style) and takes any credentials.

use crate::process::ChildGuard;
use std::{path::Path, process::Command, time::Duration};

pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    _process: ChildGuard,
}

impl S3Server {
    /// Starts `moto_server` and creates `bucket` in it.
    pub async fn start(dir: &Path, bucket: &str) -> Self {
        let python = crate::livekit::python();
        let moto = Path::new(&python)
            .parent()
            .expect("the venv's bin folder")
            .join("moto_server");
        let port = crate::free_port();
        let mut cmd = Command::new(&moto);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let process = ChildGuard::spawn("moto", cmd, dir);
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = crate::http_client(Duration::from_secs(5));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            // PUT /<bucket> creates it (moto needs no signature).
            let created = http.put(format!("{endpoint}/{bucket}")).send().await;
            if created.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not come up at {endpoint}: {}",
                process.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self {
            endpoint,
            bucket: bucket.to_owned(),
            _process: process,
        }
    }

    /// The artifacts service's settings for this server.
    pub fn settings(&self) -> Vec<(String, String)> {
        [
            ("LOBBY_ARTIFACTS_STORE", "s3"),
            ("LOBBY_S3_BUCKET", self.bucket.as_str()),
            ("LOBBY_S3_ENDPOINT", self.endpoint.as_str()),
            ("LOBBY_S3_REGION", "us-east-1"),
            ("LOBBY_S3_ACCESS_KEY_ID", "test"),
            ("LOBBY_S3_SECRET_ACCESS_KEY", "test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Every key in the bucket under `prefix` (ListObjectsV2).
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let http = crate::http_client(Duration::from_secs(5));
        let listing = http
            .get(format!(
                "{}/{}?list-type=2&prefix={prefix}",
                self.endpoint, self.bucket
            ))
            .send()
            .await
            .expect("list objects")
            .text()
            .await
            .expect("listing");
        listing
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}
