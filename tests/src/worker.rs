//! A GPU worker for tests, built on the `lobby-worker` SDK, whose answers the
//! test chooses. It records the jobs it was offered and stops (its stream
//! closes, as a crashed worker's would) when dropped.

use lobby_worker::{JobAssignment, Worker, WorkerConfig};
use std::sync::{Arc, Mutex};

pub const WORKER_TOKEN: &str = "test-worker-token-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    Accept,
    Reject,
    /// Never answers: the offer times out.
    Silent,
}

/// Where GPU workers attach: the door's URL and the CA its certificate
/// chains to.
#[derive(Debug, Clone)]
pub struct WorkerDoor {
    pub url: String,
    pub ca_pem: String,
}

impl WorkerDoor {
    /// A worker's settings for this door, with the shared test token.
    pub fn config(&self, id: &str, region: &str, capacity: u32) -> WorkerConfig {
        let mut config = WorkerConfig::new(&self.url, WORKER_TOKEN, id, region, capacity);
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
        Self::start_with(door.config(id, "local", capacity), behavior).await
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
