//! The worker side of Lobby's `lobby.workers.v1.Workers` stream, for GPU
//! services written in Rust (Python workers use `sdk/worker-python`).
//!
//! ```no_run
//! # async fn run() -> Result<(), lobby_worker::WorkerError> {
//! let config = lobby_worker::WorkerConfig::new("https://workers.lobby.example:50055", "wkr_…", "gpu-1", "eu", 4);
//! let (worker, mut jobs) = lobby_worker::Worker::attach(config).await?;
//! while let Some(job) = jobs.recv().await {
//!     worker.accept(&job.job_id).await?;
//!     // ... join job.room_url with job.agent_token and run the agent ...
//!     worker.session_ended(&job.session_id, "agent finished").await?;
//! }
//! # Ok(()) }
//! ```

pub use lobby_proto::workers::JobAssignment;
use lobby_proto::workers::{
    server_message, worker_artifacts_client::WorkerArtifactsClient, worker_message,
    worker_records_client::WorkerRecordsClient, workers_client::WorkersClient, Heartbeat,
    JobAccepted, JobRejected, Register, SessionEnded, WorkerAudioChunk, WorkerMessage,
    WorkerMessages, WorkerTranscript,
};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot reach the rooms service: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("the rooms service refused the worker: {0}")]
    Refused(#[from] tonic::Status),
    #[error("the rooms service closed the stream before registering the worker")]
    NotRegistered,
    #[error("the stream to the rooms service is closed")]
    Closed,
    #[error("the worker key is not a valid header value")]
    Key,
    #[error("reading the upload failed: {0}")]
    Read(std::io::Error),
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The workers' door, e.g. `https://workers.lobby.example:50055`.
    pub url: String,
    /// The CA that signed the door's certificate (PEM), for a private CA;
    /// `None` trusts the public web PKI. Ignored for an `http://` URL.
    pub ca_pem: Option<String>,
    /// This worker's own key (`wkr_…`, from `POST /admin/v1/workers/{id}/keys`):
    /// it may register only as the worker id it was created for.
    pub key: String,
    pub worker_id: String,
    pub region: String,
    pub capacity: u32,
    pub labels: HashMap<String, String>,
    /// Off only in tests that simulate a worker that went quiet.
    pub heartbeats: bool,
}

impl WorkerConfig {
    pub fn new(url: &str, key: &str, worker_id: &str, region: &str, capacity: u32) -> Self {
        Self {
            url: url.to_owned(),
            ca_pem: None,
            key: key.to_owned(),
            worker_id: worker_id.to_owned(),
            region: region.to_owned(),
            capacity,
            labels: HashMap::new(),
            heartbeats: true,
        }
    }
}

/// A worker's half of the stream. Dropping every clone (and the job
/// receiver) closes the stream, which the rooms service sees as a
/// disconnect: no new jobs come.
#[derive(Clone)]
pub struct Worker {
    outbound: mpsc::Sender<WorkerMessage>,
    load: Arc<AtomicU32>,
    heartbeat: Arc<tokio::task::JoinHandle<()>>,
    reconnects: Arc<AtomicU32>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The last handle stops the heartbeats, so the stream can close.
        if Arc::strong_count(&self.heartbeat) == 1 {
            self.heartbeat.abort();
        }
    }
}

/// A channel to one of Lobby's workers' doors, trusting `ca_pem` (or the
/// public web PKI) for an `https://` URL.
async fn connect(
    url: &str,
    ca_pem: Option<&str>,
) -> Result<tonic::transport::Channel, WorkerError> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())?;
    if url.starts_with("https://") {
        let tls = match ca_pem {
            Some(pem) => tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            None => tonic::transport::ClientTlsConfig::new().with_webpki_roots(),
        };
        endpoint = endpoint.tls_config(tls)?;
    }
    Ok(endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await?)
}

/// What a worker writes into the sessions it runs (their records, and
/// their artifacts: transcript and audio), through the session service's
/// workers' door (`LOBBY_SESSION_WORKERS_URL`), with the same key it
/// attaches with.
#[derive(Clone)]
pub struct RecordsClient {
    client: WorkerRecordsClient<tonic::transport::Channel>,
    artifacts: WorkerArtifactsClient<tonic::transport::Channel>,
    bearer: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

/// The size of the chunks `upload_audio` streams.
pub const AUDIO_CHUNK_BYTES: usize = 1024 * 1024;

impl RecordsClient {
    pub async fn connect(url: &str, ca_pem: Option<&str>, key: &str) -> Result<Self, WorkerError> {
        let channel = connect(url, ca_pem).await?;
        Ok(Self {
            client: WorkerRecordsClient::new(channel.clone()),
            artifacts: WorkerArtifactsClient::new(channel),
            bearer: format!("Bearer {key}")
                .parse()
                .map_err(|_| WorkerError::Key)?,
        })
    }

    fn authorized<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.bearer.clone());
        request
    }

    /// Stores the session's transcript (`conversation.json`): any JSON;
    /// Lobby's summaries read `{"messages": [{"role", "content",
    /// "timestamp_ms"}]}`. Replaces an earlier one whole. Returns its size.
    pub async fn upload_transcript(
        &self,
        session_id: &str,
        transcript: &serde_json::Value,
    ) -> Result<u64, WorkerError> {
        let request = self.authorized(WorkerTranscript {
            session_id: session_id.to_owned(),
            transcript_json: transcript.to_string(),
        });
        let stored = self
            .artifacts
            .clone()
            .upload_transcript(request)
            .await?
            .into_inner();
        Ok(stored.size_bytes)
    }

    /// Stores the session's audio (`conversation.wav`, a WAV file),
    /// streamed in chunks from `wav`; published only once all of it is in
    /// (a read error cancels the call, and nothing is published). Returns
    /// its size.
    pub async fn upload_audio(
        &self,
        session_id: &str,
        mut wav: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    ) -> Result<u64, WorkerError> {
        use tokio::io::AsyncReadExt;
        let (chunks, stream) = mpsc::channel::<WorkerAudioChunk>(4);
        let (failed, read_error) = tokio::sync::oneshot::channel::<std::io::Error>();
        let mut session_id = session_id.to_owned();
        let reader = tokio::spawn(async move {
            loop {
                let mut buf = vec![0u8; AUDIO_CHUNK_BYTES];
                match wav.read(&mut buf).await {
                    Ok(0) => return, // the end: the stream closes cleanly
                    Ok(n) => {
                        buf.truncate(n);
                        let chunk = WorkerAudioChunk {
                            session_id: std::mem::take(&mut session_id),
                            data: buf,
                        };
                        if chunks.send(chunk).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = failed.send(e);
                        // Keep the stream open: closing it would publish
                        // what was sent so far. The call is dropped instead.
                        std::future::pending::<()>().await;
                        return;
                    }
                }
            }
        });
        let mut client = self.artifacts.clone();
        let call = client.upload_audio(self.authorized(ReceiverStream::new(stream)));
        let outcome = tokio::select! {
            stored = call => stored.map(|s| s.into_inner().size_bytes).map_err(WorkerError::from),
            Ok(e) = read_error => Err(WorkerError::Read(e)),
        };
        reader.abort();
        outcome
    }

    /// Adds messages (a JSON array, as text: each is kept as sent) and
    /// token usage to a session this worker accepted; returns the session's
    /// totals (messages, prompt tokens, completion tokens).
    pub async fn append_messages(
        &self,
        session_id: &str,
        messages_json: &str,
        prompt_tokens: u32,
        completion_tokens: u32,
    ) -> Result<(u64, u64, u64), WorkerError> {
        let request = self.authorized(WorkerMessages {
            session_id: session_id.to_owned(),
            messages_json: messages_json.to_owned(),
            prompt_tokens,
            completion_tokens,
        });
        let totals = self
            .client
            .clone()
            .append_messages(request)
            .await?
            .into_inner();
        Ok((
            totals.messages,
            totals.prompt_tokens,
            totals.completion_tokens,
        ))
    }
}

fn message(m: worker_message::Message) -> WorkerMessage {
    WorkerMessage { message: Some(m) }
}

/// One stream to the rooms service: what to send on it, what comes back.
struct Stream {
    tx: mpsc::Sender<WorkerMessage>,
    inbound: tonic::Streaming<lobby_proto::workers::ServerMessage>,
    heartbeat_interval: Duration,
}

/// Opens a stream and registers on it.
async fn open_stream(config: &WorkerConfig) -> Result<Stream, WorkerError> {
    let channel = connect(&config.url, config.ca_pem.as_deref()).await?;
    let (tx, rx) = mpsc::channel(64);
    tx.send(message(worker_message::Message::Register(Register {
        worker_id: config.worker_id.clone(),
        region: config.region.clone(),
        capacity: config.capacity,
        labels: config.labels.clone(),
    })))
    .await
    .map_err(|_| WorkerError::Closed)?;
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    let bearer = format!("Bearer {}", config.key)
        .parse()
        .map_err(|_| WorkerError::Key)?;
    request.metadata_mut().insert("authorization", bearer);
    let mut inbound = WorkersClient::new(channel)
        .attach(request)
        .await?
        .into_inner();
    let heartbeat_interval = match inbound.message().await? {
        Some(lobby_proto::workers::ServerMessage {
            message: Some(server_message::Message::Registered(r)),
        }) => Duration::from_millis(u64::from(r.heartbeat_interval_ms.max(100))),
        _ => return Err(WorkerError::NotRegistered),
    };
    Ok(Stream {
        tx,
        inbound,
        heartbeat_interval,
    })
}

/// Whether the rooms service refused the worker itself (its key, its
/// id), rather than being away: reconnecting would be refused again.
fn refuses_the_worker(e: &WorkerError) -> bool {
    match e {
        WorkerError::Refused(status) => matches!(
            status.code(),
            tonic::Code::Unauthenticated
                | tonic::Code::PermissionDenied
                | tonic::Code::InvalidArgument
        ),
        WorkerError::Key => true,
        _ => false,
    }
}

const RECONNECT_FIRST_WAIT: Duration = Duration::from_millis(200);
/// End reports sent this recently are sent again on a new stream: one
/// still in the old stream's buffers when it died would be lost, and the
/// session would run on. A repeated report is ignored.
const END_REPORTS_REPLAYED: Duration = Duration::from_secs(60);
const END_REPORTS_KEPT: usize = 1024;
const RECONNECT_LONGEST_WAIT: Duration = Duration::from_secs(5);

/// Carries the worker's messages to its current stream and the jobs back,
/// and opens a new stream when the old one ends: at once when the replica
/// said it drains, with a growing wait when it went away. Stops when every
/// handle and the job receiver are dropped, or when the service refuses
/// the worker (a revoked key): the job receiver then ends.
async fn supervise(
    config: WorkerConfig,
    mut stream: Stream,
    mut outbound: mpsc::Receiver<WorkerMessage>,
    jobs: mpsc::Sender<JobAssignment>,
    reconnects: Arc<AtomicU32>,
) {
    let mut recent_ends: std::collections::VecDeque<(tokio::time::Instant, WorkerMessage)> =
        std::collections::VecDeque::new();
    // A message the old stream refused, for the new one.
    let mut unsent: Option<WorkerMessage> = None;
    loop {
        let drained = loop {
            tokio::select! {
                m = outbound.recv() => match m {
                    Some(m) => {
                        if matches!(m.message, Some(worker_message::Message::SessionEnded(_))) {
                            let now = tokio::time::Instant::now();
                            while recent_ends.front().is_some_and(|(at, _)| {
                                now.duration_since(*at) > END_REPORTS_REPLAYED
                            }) || recent_ends.len() >= END_REPORTS_KEPT
                            {
                                recent_ends.pop_front();
                            }
                            recent_ends.push_back((now, m.clone()));
                        }
                        if let Err(refused) = stream.tx.send(m).await {
                            unsent = Some(refused.0);
                            break false;
                        }
                    }
                    None => return,
                },
                read = stream.inbound.message() => match read {
                    Ok(Some(lobby_proto::workers::ServerMessage { message: Some(m) })) => match m {
                        server_message::Message::Job(job) => {
                            if jobs.send(job).await.is_err() {
                                return;
                            }
                        }
                        server_message::Message::Drain(d) => {
                            tracing::info!(reason = %d.reason, "the rooms replica drains");
                            break true;
                        }
                        server_message::Message::Registered(_) => {}
                    },
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break false,
                },
            }
        };
        // Closing our side lets the draining replica close at once.
        drop(stream);
        let mut wait = if drained {
            Duration::ZERO
        } else {
            RECONNECT_FIRST_WAIT
        };
        stream = loop {
            tokio::time::sleep(wait).await;
            if jobs.is_closed() {
                return;
            }
            match open_stream(&config).await {
                Ok(s) => break s,
                Err(e) if refuses_the_worker(&e) => {
                    tracing::warn!(error = %e, "the rooms service refuses this worker; stopping");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "reconnecting to the rooms service");
                    wait = (wait * 2).clamp(RECONNECT_FIRST_WAIT, RECONNECT_LONGEST_WAIT);
                }
            }
        };
        reconnects.fetch_add(1, Ordering::Relaxed);
        tracing::info!(worker_id = %config.worker_id, "attached to the rooms service again");
        let unsent_now = unsent.take();
        let mut replay: Vec<WorkerMessage> = recent_ends
            .iter()
            .map(|(_, m)| m.clone())
            .filter(|m| unsent_now.as_ref() != Some(m))
            .collect();
        replay.extend(unsent_now);
        for m in replay {
            let _ = stream.tx.send(m).await;
        }
    }
}

impl Worker {
    /// Attaches to the rooms service and registers; returns the handle and
    /// the jobs offered to this worker. The handle outlives a stream: when
    /// a rooms replica drains or goes away, it reconnects with the same
    /// worker id, and messages sent meanwhile wait for the new stream.
    pub async fn attach(
        config: WorkerConfig,
    ) -> Result<(Self, mpsc::Receiver<JobAssignment>), WorkerError> {
        let first = open_stream(&config).await?;
        let interval = first.heartbeat_interval;
        let (outbound, outbound_rx) = mpsc::channel(64);
        let load = Arc::new(AtomicU32::new(0));
        let heartbeat = {
            let (outbound, load) = (outbound.clone(), load.clone());
            let enabled = config.heartbeats;
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(interval);
                loop {
                    ticker.tick().await;
                    if !enabled {
                        continue;
                    }
                    let beat = message(worker_message::Message::Heartbeat(Heartbeat {
                        load: load.load(Ordering::Relaxed),
                    }));
                    if outbound.send(beat).await.is_err() {
                        break;
                    }
                }
            })
        };
        let (jobs_tx, jobs) = mpsc::channel(64);
        let reconnects = Arc::new(AtomicU32::new(0));
        tracing::info!(worker_id = %config.worker_id, "attached to the rooms service");
        tokio::spawn(supervise(
            config,
            first,
            outbound_rx,
            jobs_tx,
            reconnects.clone(),
        ));
        Ok((
            Self {
                outbound,
                load,
                heartbeat: Arc::new(heartbeat),
                reconnects,
            },
            jobs,
        ))
    }

    /// How many times the worker attached again after a stream ended.
    pub fn reconnects(&self) -> u32 {
        self.reconnects.load(Ordering::Relaxed)
    }

    async fn send(&self, m: worker_message::Message) -> Result<(), WorkerError> {
        self.outbound
            .send(message(m))
            .await
            .map_err(|_| WorkerError::Closed)
    }

    /// Takes the job: the start it belongs to succeeds.
    pub async fn accept(&self, job_id: &str) -> Result<(), WorkerError> {
        self.load.fetch_add(1, Ordering::Relaxed);
        self.send(worker_message::Message::Accepted(JobAccepted {
            job_id: job_id.to_owned(),
        }))
        .await
    }

    /// Declines the job: the rooms service offers it to another worker.
    pub async fn reject(&self, job_id: &str, reason: &str) -> Result<(), WorkerError> {
        self.send(worker_message::Message::Rejected(JobRejected {
            job_id: job_id.to_owned(),
            reason: reason.to_owned(),
        }))
        .await
    }

    /// Reports that a session this worker ran has ended; Lobby ends it.
    pub async fn session_ended(&self, session_id: &str, reason: &str) -> Result<(), WorkerError> {
        let _ = self
            .load
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1));
        self.send(worker_message::Message::SessionEnded(SessionEnded {
            session_id: session_id.to_owned(),
            reason: reason.to_owned(),
        }))
        .await
    }

    pub fn load(&self) -> u32 {
        self.load.load(Ordering::Relaxed)
    }
}
