//! A GPU worker for tests, built on the `lobby-worker` SDK, whose answers the
//! test chooses. It records the jobs it was offered and stops (its stream
//! closes, as a crashed worker's would) when dropped.

use lobby_worker::{JobAssignment, Worker, WorkerConfig};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    Accept,
    Reject,
    /// Never answers: the offer times out.
    Silent,
}

/// Where GPU workers attach: the door's URL and the CA its certificate
/// chains to, and the admin API that issues each worker its key.
#[derive(Debug, Clone)]
pub struct WorkerDoor {
    pub url: String,
    /// The session service's door, for what workers write into records.
    pub records_url: String,
    pub ca_pem: String,
    pub gateway: String,
    pub http: reqwest::Client,
}

impl WorkerDoor {
    /// A new key for worker `id`, created through the admin API with
    /// `scope` (`{"pool": …}` or `{"account_id": …}`).
    pub async fn key_for(&self, id: &str, scope: serde_json::Value) -> String {
        let response = self
            .http
            .post(format!("{}/admin/v1/workers/{id}/keys", self.gateway))
            .bearer_auth(crate::lobby::ADMIN_TOKEN)
            .json(&scope)
            .send()
            .await
            .expect("create worker key");
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(status, 201, "worker key for {id}: {body}");
        body["key"].as_str().expect("key").to_owned()
    }

    /// A worker's settings for this door, with a new key of the shared
    /// pool (it serves every account).
    pub async fn config(&self, id: &str, region: &str, capacity: u32) -> WorkerConfig {
        let key = self
            .key_for(id, serde_json::json!({ "pool": "default" }))
            .await;
        self.config_with_key(id, &key, region, capacity)
    }

    pub fn config_with_key(
        &self,
        id: &str,
        key: &str,
        region: &str,
        capacity: u32,
    ) -> WorkerConfig {
        let mut config = WorkerConfig::new(&self.url, key, id, region, capacity);
        config.ca_pem = Some(self.ca_pem.clone());
        config
    }
}

pub struct TestWorker {
    pub id: String,
    pub handle: Worker,
    offered: Arc<Mutex<Vec<JobAssignment>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestWorker {
    pub async fn start(door: &WorkerDoor, id: &str, capacity: u32, behavior: Behavior) -> Self {
        Self::start_with(door.config(id, "local", capacity).await, behavior).await
    }

    pub async fn start_with(config: WorkerConfig, behavior: Behavior) -> Self {
        let id = config.worker_id.clone();
        // A worker's supervisor retries a failed attach; so does the harness
        // (setup, not the behaviour under test), saying why each time.
        let mut attempt = 0;
        let (handle, mut jobs) = loop {
            match Worker::attach(config.clone()).await {
                Ok(attached) => break attached,
                Err(e) if attempt < 2 => {
                    attempt += 1;
                    eprintln!("worker {id} did not attach ({e}); retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => panic!("worker {id} did not attach: {e}"),
            }
        };
        let offered: Arc<Mutex<Vec<JobAssignment>>> = Arc::default();
        let task = {
            let (handle, offered) = (handle.clone(), offered.clone());
            tokio::spawn(async move {
                while let Some(job) = jobs.recv().await {
                    let job_id = job.job_id.clone();
                    if let Ok(mut o) = offered.lock() {
                        o.push(job);
                    }
                    let answered = match behavior {
                        Behavior::Accept => handle.accept(&job_id).await,
                        Behavior::Reject => handle.reject(&job_id, "busy").await,
                        Behavior::Silent => Ok(()),
                    };
                    if answered.is_err() {
                        break;
                    }
                }
            })
        };
        Self {
            id,
            handle,
            offered,
            task,
        }
    }

    pub fn offered(&self) -> Vec<JobAssignment> {
        self.offered.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
