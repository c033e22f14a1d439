//! What each setting does, for the generated configuration reference.
//! Names here must be read by some config, and every read setting needs a
//! line here: `settings_reference`'s test checks both ways.

pub const HELP: &[(&str, &str)] = &[
    (
        "LOBBY_ADMIN_TOKEN",
        "Bearer token for the admin API, at least 16 characters; unset refuses every admin call.",
    ),
    (
        "LOBBY_AGENT_JOIN_TIMEOUT_MS",
        "How long the agent has to join the room after a session starts, in ms; a session whose agent has not joined by then ends.",
    ),
    (
        "LOBBY_AGENT_RUN_IDLE_TIMEOUT_SECONDS",
        "How long a seed-001 run may go without an event before it ends (`idle_timeout`) and frees its place, in seconds; between 1 and 2592000 (30 days).",
    ),
    (
        "LOBBY_AGENT_RUN_MAX_OPEN",
        "The most seed-001 runs one agent may have open at once; between 1 and 1000000.",
    ),
    (
        "LOBBY_ARTIFACTS_DIR",
        "Directory artifacts are stored in when `LOBBY_ARTIFACTS_STORE` is `fs`.",
    ),
    (
        "LOBBY_ARTIFACTS_LISTEN",
        "Address (host:port) the artifacts service's gRPC API listens on, with mutual TLS.",
    ),
    (
        "LOBBY_ARTIFACTS_MAX_AUDIO_BYTES",
        "Largest conversation audio (`conversation.wav`) an upload may hold, in bytes.",
    ),
    (
        "LOBBY_ARTIFACTS_METRICS_LISTEN",
        "Address (host:port) where the artifacts service serves Prometheus `/metrics`; unset serves none.",
    ),
    (
        "LOBBY_ARTIFACTS_PREVIOUS_SIGNING_KEYS",
        "Signing keys rotated out, as a comma-separated list of `<key id>:<secret>` (secrets of 16+ characters); they keep verifying the URLs they signed. Unset: none.",
    ),
    (
        "LOBBY_ARTIFACTS_SIGNING_KEY_ID",
        "Key id of the current artifact signing secret; each signed URL names it (`kid`), so keys can rotate.",
    ),
    (
        "LOBBY_ARTIFACTS_SIGNING_SECRET",
        "Secret that signs artifact URLs and upload ids, at least 16 characters; production refuses the development default.",
    ),
    (
        "LOBBY_ARTIFACTS_STORE",
        "Where artifacts are stored: `fs` (a local directory, `LOBBY_ARTIFACTS_DIR`) or `s3` (a bucket, the `LOBBY_S3_*` settings).",
    ),
    (
        "LOBBY_ARTIFACTS_URL",
        "Where the artifacts service answers when it runs in another process; the scheme follows the TLS mode (`https` with mutual TLS, `http` with plaintext).",
    ),
    (
        "LOBBY_AUDIT_RETENTION_DAYS",
        "How long audit log entries are kept, in days; between 1 and 3650.",
    ),
    (
        "LOBBY_AUTH_KEY_PEPPER",
        "Server secret keyed into every stored key hash and session-JWT signing key, at least 16 characters; production refuses the development default.",
    ),
    (
        "LOBBY_AUTH_LISTEN",
        "Address (host:port) the auth service's gRPC API listens on, with mutual TLS.",
    ),
    (
        "LOBBY_AUTH_METRICS_LISTEN",
        "Address (host:port) where the auth service serves Prometheus `/metrics`; unset serves none.",
    ),
    (
        "LOBBY_AUTH_TIMEOUT_MS",
        "How long the rooms service waits for auth, which owns worker keys, when it checks a GPU worker's key, in ms.",
    ),
    (
        "LOBBY_AUTH_URL",
        "Where the auth service answers when it runs in another process; the scheme follows the TLS mode (`https` with mutual TLS, `http` with plaintext).",
    ),
    (
        "LOBBY_AVATAR_AGENT_IDENTITY",
        "LiveKit identity the avatar agent joins link sessions (seed 002) under; must be set and must not start with `user-`, where users' identities live.",
    ),
    (
        "LOBBY_AVATAR_ALLOW_PRIVATE_ADDRESSES",
        "Whether avatar image fetches may reach private and loopback addresses (`true` or `false`); for tests only, production refuses `true`.",
    ),
    (
        "LOBBY_AVATAR_CACHE_SECONDS",
        "How long an avatar URL's verdict is cached, in seconds, so a busy link neither refetches nor re-detects; must be positive.",
    ),
    (
        "LOBBY_AVATAR_DECODE_MAX_BYTES",
        "Memory one avatar image decode may allocate, in bytes, whatever the image's header claims; at least 1 MiB (1048576).",
    ),
    (
        "LOBBY_AVATAR_FETCH_TIMEOUT_MS",
        "Time limit for fetching an avatar image, in ms; an image that takes longer is refused.",
    ),
    (
        "LOBBY_AVATAR_MAX_BYTES",
        "Largest avatar image fetched, in bytes; a larger one is refused. At least 1024.",
    ),
    (
        "LOBBY_AVATAR_MAX_CONCURRENT_DECODES",
        "How many avatar images one process decodes at once; between 1 and 64. With the decode budget, it bounds their memory.",
    ),
    (
        "LOBBY_AVATAR_MAX_REDIRECTS",
        "Most redirects an avatar image fetch follows; past them the image is refused.",
    ),
    (
        "LOBBY_AVATAR_MAX_SIDE",
        "Largest width or height an avatar image may have, in pixels; at most 16384.",
    ),
    (
        "LOBBY_AVATAR_MIN_SIDE",
        "Smallest width or height an avatar image may have, in pixels; at least 24 and at most `LOBBY_AVATAR_MAX_SIDE`.",
    ),
    (
        "LOBBY_CATALOG_CACHE_STALE_MS",
        "How much longer than its TTL auth may serve a cached catalog entry while reloading it fails because Redis is away for a moment (the catalog's master failing over), in ms; at most 3600000, `0` never. An entry a change message named is never served stale.",
    ),
    (
        "LOBBY_CATALOG_CACHE_TTL_MS",
        "How long auth may serve a cached catalog entry whose invalidation message was lost, in ms; between 1 and 600000. Invalidation is otherwise immediate.",
    ),
    (
        "LOBBY_CLOCK_OFFSET_FILE",
        "Tests only: a file holding an offset in ms added to the clock that expiry decisions use; unset uses the real clock.",
    ),
    (
        "LOBBY_DAILY_API_KEY",
        "API key for Daily rooms; unset disables Daily, so agents on Daily cannot start sessions.",
    ),
    ("LOBBY_DAILY_API_URL", "Base URL of Daily's REST API."),
    ("LOBBY_DAILY_REQUEST_TIMEOUT_MS", "Deadline of each call to Daily's API, in ms."),
    (
        "LOBBY_DAILY_WEBHOOK_SECRET",
        "The base64 `hmac` secret Daily signs its webhooks with; unset refuses every Daily webhook.",
    ),
    (
        "LOBBY_DEV_CERTS_DIR",
        "Directory where `lobby-dev` writes this run's throwaway TLS certificates.",
    ),
    (
        "LOBBY_DEV_SEED_DEMO",
        "Whether `lobby-dev` seeds the demo account, project, agent and worker key (`true` or `false`).",
    ),
    (
        "LOBBY_ENDED_SESSION_TTL_SECONDS",
        "How long an ended session's record, its event log and its id lookup are kept, in seconds; must be positive.",
    ),
    (
        "LOBBY_ENV",
        "`development` or `production`; `production` refuses to start while a secret is its development default or a placeholder, or plaintext gRPC or private avatar addresses are on.",
    ),
    (
        "LOBBY_FAILED_SESSION_TTL_SECONDS",
        "How long the record of a session start that failed is kept, in seconds; must be positive.",
    ),
    ("LOBBY_GATEWAY_LISTEN", "Address (host:port) the gateway's public HTTP API listens on."),
    (
        "LOBBY_GATEWAY_METRICS_LISTEN",
        "Address (host:port) of an operator listener for the gateway's `/metrics`; unset serves `/metrics` on the public port.",
    ),
    (
        "LOBBY_GEOIP_DB",
        "Path of a MaxMind-format (`.mmdb`) City database that locates callers by address for region routing; unset does no GeoIP lookup.",
    ),
    (
        "LOBBY_GEO_LATITUDE_HEADER",
        "Name of the trusted edge's header carrying the caller's latitude, for region routing; set together with `LOBBY_GEO_LONGITUDE_HEADER`. Unset: not read.",
    ),
    (
        "LOBBY_GEO_LONGITUDE_HEADER",
        "Name of the trusted edge's header carrying the caller's longitude, for region routing; set together with `LOBBY_GEO_LATITUDE_HEADER`. Unset: not read.",
    ),
    (
        "LOBBY_GRPC_PLAINTEXT",
        "`true` turns off mutual TLS between the services (unauthenticated, unencrypted), for debugging only; production refuses it.",
    ),
    (
        "LOBBY_HEADER_READ_TIMEOUT_MS",
        "How long a client has to send its request headers, in ms; a client trickling them loses the connection. Must be positive.",
    ),
    (
        "LOBBY_LIVEKIT_API_KEY",
        "LiveKit API key: rooms signs join tokens with it and the gateway verifies LiveKit's webhooks with it. Must not be empty; production refuses the development default.",
    ),
    (
        "LOBBY_LIVEKIT_API_SECRET",
        "LiveKit API secret paired with `LOBBY_LIVEKIT_API_KEY`. Must not be empty; production refuses the development default.",
    ),
    (
        "LOBBY_LIVEKIT_API_URL",
        "Where LiveKit's RoomService API answers, an `http://` or `https://` URL; unset derives it from `LOBBY_LIVEKIT_URL`.",
    ),
    (
        "LOBBY_LIVEKIT_EMPTY_TIMEOUT_SECONDS",
        "How long an empty LiveKit room lives before LiveKit closes it, in seconds.",
    ),
    ("LOBBY_LIVEKIT_MAX_PARTICIPANTS", "Most participants a LiveKit room admits."),
    (
        "LOBBY_LIVEKIT_MODE",
        "`server` creates rooms on the LiveKit server; `token_only` mints join tokens without creating rooms, for where no server runs.",
    ),
    (
        "LOBBY_LIVEKIT_REQUEST_TIMEOUT_MS",
        "Deadline of each call to LiveKit's RoomService API, in ms.",
    ),
    (
        "LOBBY_LIVEKIT_ROOMS",
        "`eager` creates the room before the start answers (a refusal fails the start); `lazy` leaves LiveKit to create it on the first join, saving a round trip.",
    ),
    (
        "LOBBY_LIVEKIT_TOKEN_TTL_SECONDS",
        "How long a LiveKit join token is valid, in seconds; between 60 and 86400.",
    ),
    (
        "LOBBY_LIVEKIT_URL",
        "The LiveKit URL clients connect to, returned as `room_url`; a `ws://` or `wss://` URL.",
    ),
    (
        "LOBBY_LOG",
        "Log filter as `EnvFilter` directives; e.g. `info,lobby_kit::metrics=debug` also logs each gRPC call answered.",
    ),
    (
        "LOBBY_LOG_FORMAT",
        "`text` for human-readable logs or `json` for JSON lines, for log pipelines.",
    ),
    (
        "LOBBY_MASTER_KEYS",
        "Keys wrapping the accounts' data keys, as `id:base64key[,id:base64key…]` (32-byte keys, the first current); production refuses the development default.",
    ),
    (
        "LOBBY_MAX_CONNECTIONS",
        "Most open connections per gateway; past it a connection is closed as soon as it is accepted. Must be positive.",
    ),
    (
        "LOBBY_MAX_EVENTS_PER_SESSION",
        "Most events one session's event log holds; further events are refused. Between 1 and 100000.",
    ),
    (
        "LOBBY_MAX_MESSAGES_PER_SESSION",
        "Most messages one session's record holds; between 1 and 1000000.",
    ),
    (
        "LOBBY_OTLP_ENDPOINT",
        "An OpenTelemetry collector's OTLP/HTTP base URL (e.g. `http://otel-collector:4318`): spans are exported to `/v1/traces` as JSON, with the W3C trace context carried across every gRPC hop; unset exports nothing.",
    ),
    (
        "LOBBY_OTLP_SAMPLE_RATIO",
        "The share of new traces exported, between 0 and 1; a caller's sampled `traceparent` is always followed.",
    ),
    (
        "LOBBY_OTLP_TRUST_CALLER_TRACES",
        "Whether the gateway continues a caller's `traceparent`; off, each request starts its own trace, so public callers can neither pick trace ids nor force sampling.",
    ),
    (
        "LOBBY_PEERS",
        "How the services in `lobby-server` reach each other: `in_process` (direct calls) or `grpc` (each service on its own port, over gRPC).",
    ),
    (
        "LOBBY_PROBES_LISTEN",
        "Address (host:port) where a service answers plaintext gRPC health checks and nothing else, for the kubelet; unset serves none.",
    ),
    ("LOBBY_PUBLIC_URL", "The gateway's public base URL, which signed artifact URLs start with."),
    (
        "LOBBY_RATE_LIMIT_AGENT_PER_MINUTE",
        "Session starts allowed per agent per minute, per gateway replica; `0` turns the limit off. Refusals are 429 `rate_limited` with `Retry-After`.",
    ),
    (
        "LOBBY_RATE_LIMIT_IP_PER_MINUTE",
        "Requests allowed per client address per minute on the public routes, per gateway replica; `0` turns the limit off. Refusals are 429 `rate_limited`.",
    ),
    (
        "LOBBY_RECONCILE_GRACE_MS",
        "How long after a start a room missing from the provider's listing still counts as alive, in ms, since a fresh room may not be listed yet.",
    ),
    (
        "LOBBY_RECORDS_LIST_MAX",
        "Most records the records contract's unpaginated list returns; between 1 and 100000.",
    ),
    (
        "LOBBY_REDIS_COMMAND_TIMEOUT_MS",
        "Longest one Redis command may take, every attempt included, in ms: a command to a node that died or froze fails after it with a retryable 503, and a command refused during a failover is sent again within it; between 100 and 60000.",
    ),
    (
        "LOBBY_REDIS_RETRY_MAX_MS",
        "Longest wait between retries of an unreachable Redis, in ms (retries back off exponentially up to it); between 100 and 60000.",
    ),
    (
        "LOBBY_REDIS_UNAVAILABLE_REPORT_MS",
        "How long Redis may be silent before it is logged as an error, again each such period, in ms; at least 1000.",
    ),
    (
        "LOBBY_REDIS_URL",
        "The Redis to use: `redis://host:port`, or a Redis Cluster as `redis+cluster://host1:port1,host2:port2`.",
    ),
    (
        "LOBBY_REGION",
        "Name of the region this process serves: 1-32 of a-z, 0-9 and `-`; when `LOBBY_REGIONS` is set, one of its regions.",
    ),
    (
        "LOBBY_REGIONS",
        "Every region, as a JSON array of `{name, url, latitude, longitude, bias, admission_url}`; unset means one region, with no routing.",
    ),
    (
        "LOBBY_REGION_API_ACTION",
        "What the gateway does with a public API request another region is nearer for: `local`, `redirect` or `proxy`.",
    ),
    (
        "LOBBY_REGION_CALL_TIMEOUT_MS",
        "Deadline of a call to another region's home admission, in ms.",
    ),
    (
        "LOBBY_REGION_DOWN_AFTER",
        "Failed health probes in a row after which the gateway takes another region as down.",
    ),
    (
        "LOBBY_REGION_PROBE_INTERVAL_MS",
        "How often the gateway probes each other region's `/healthz`, in ms.",
    ),
    ("LOBBY_REGION_PROBE_TIMEOUT_MS", "Deadline of one health probe of another region, in ms."),
    (
        "LOBBY_REGION_SECRET",
        "Secret the regions sign their calls and redirected origins with: at least 16 characters, the same in every region. Production with several regions refuses the development default.",
    ),
    (
        "LOBBY_REGION_START_ACTION",
        "What the gateway does with a session start another region is nearer for: `local`, `redirect` or `proxy`.",
    ),
    (
        "LOBBY_REGION_UP_AFTER",
        "Good health probes in a row after which a region that was down is taken as up again.",
    ),
    (
        "LOBBY_REQUEST_TIMEOUT_MS",
        "Deadline of a public request, in ms; past it the gateway answers a JSON 504 `timeout`. Must be positive.",
    ),
    (
        "LOBBY_RETRY_AFTER_MAX_SECONDS",
        "Longest `retry_after` a refused start advises, in seconds; between 1 and 3600.",
    ),
    (
        "LOBBY_ROOMS_LISTEN",
        "Address (host:port) the rooms service's gRPC API listens on, with mutual TLS.",
    ),
    (
        "LOBBY_ROOMS_METRICS_LISTEN",
        "Address (host:port) where the rooms service serves Prometheus `/metrics`; unset serves none.",
    ),
    (
        "LOBBY_ROOMS_TIMEOUT_MS",
        "Deadline of the session service's gRPC calls to rooms, auth and artifacts when they run in another process, in ms.",
    ),
    (
        "LOBBY_ROOMS_URL",
        "Where the rooms service answers when it runs in another process; the scheme follows the TLS mode (`https` with mutual TLS, `http` with plaintext).",
    ),
    (
        "LOBBY_S3_ACCESS_KEY_ID",
        "Access key id for the S3 bucket when `LOBBY_ARTIFACTS_STORE` is `s3`.",
    ),
    (
        "LOBBY_S3_BUCKET",
        "The S3 bucket artifacts are stored in; required when `LOBBY_ARTIFACTS_STORE` is `s3`.",
    ),
    (
        "LOBBY_S3_ENDPOINT",
        "Endpoint of an S3-compatible server, addressed path-style (`http://` allowed); unset uses AWS S3 itself.",
    ),
    ("LOBBY_S3_REGION", "Region of the S3 bucket when `LOBBY_ARTIFACTS_STORE` is `s3`."),
    (
        "LOBBY_S3_SECRET_ACCESS_KEY",
        "Secret access key for the S3 bucket when `LOBBY_ARTIFACTS_STORE` is `s3`.",
    ),
    (
        "LOBBY_SESSION_JWT_TTL_SECONDS",
        "How long a session JWT issued by auth is valid, in seconds; between 60 and 86400.",
    ),
    (
        "LOBBY_SESSION_LEASE_MS",
        "How long a session's slot is held without renewal, in ms: how soon a crashed holder's slot frees. Between 300 and 3600000.",
    ),
    (
        "LOBBY_SESSION_LISTEN",
        "Address (host:port) the session service's gRPC API listens on, with mutual TLS.",
    ),
    (
        "LOBBY_SESSION_METRICS_LISTEN",
        "Address (host:port) where the session service serves Prometheus `/metrics`; unset serves none.",
    ),
    (
        "LOBBY_SESSION_REGIONS_LISTEN",
        "Address (host:port) of the session service's regions' door, where other regions ask for home admission (server TLS); it listens only with several regions.",
    ),
    (
        "LOBBY_SESSION_URL",
        "Where the session service answers when it runs in another process; the scheme follows the TLS mode (`https` with mutual TLS, `http` with plaintext).",
    ),
    (
        "LOBBY_SESSION_WORKERS_LISTEN",
        "Address (host:port) of the session service's door where GPU workers write their sessions' records, with server-side TLS only.",
    ),
    (
        "LOBBY_SHUTDOWN_DRAIN_DELAY_MS",
        "How long a process keeps serving after SIGTERM while it reports itself unready (the gateway's `/healthz` 503 `draining`, gRPC health NOT_SERVING; rooms tells its GPU workers to reconnect), in ms; at most 120000.",
    ),
    (
        "LOBBY_SHUTDOWN_GRACE_MS",
        "How long a process may then take, after the drain delay, to finish what is in flight before it exits anyway, in ms; between 1 and 600000.",
    ),
    (
        "LOBBY_SUMMARIZER",
        "How conversations are summarized: `textrank` (built in) or `openai` (an OpenAI-compatible chat completions API at `LOBBY_SUMMARIZER_URL`).",
    ),
    (
        "LOBBY_SUMMARIZER_API_KEY",
        "Bearer key for the summarizer API when `LOBBY_SUMMARIZER` is `openai`; unset sends no key.",
    ),
    ("LOBBY_SUMMARIZER_MODEL", "Model the `openai` summarizer asks for."),
    ("LOBBY_SUMMARIZER_TIMEOUT_MS", "Deadline of one call to the `openai` summarizer, in ms."),
    (
        "LOBBY_SUMMARIZER_URL",
        "Base URL of the OpenAI-compatible API, e.g. `https://api.openai.com/v1`; required when `LOBBY_SUMMARIZER` is `openai`.",
    ),
    (
        "LOBBY_SUMMARY_CLAIM_IDLE_MS",
        "How long a delivered summary job may sit idle before another consumer claims it, in ms (the retry delay after a failure); with `openai`, longer than `LOBBY_SUMMARIZER_TIMEOUT_MS`.",
    ),
    (
        "LOBBY_SUMMARY_CONSUMER_FORGET_MS",
        "How long a summary consumer idle with nothing pending (a stopped process) stays in the group, in ms; at least `LOBBY_SUMMARY_CLAIM_IDLE_MS`.",
    ),
    (
        "LOBBY_SUMMARY_MAX_ATTEMPTS",
        "Attempts a summary job gets before it is given up; at least 1.",
    ),
    ("LOBBY_SUMMARY_POLL_MS", "How often an idle consumer looks for summary jobs, in ms."),
    (
        "LOBBY_SUMMARY_STATE_TTL_DAYS",
        "How long a session's summary run state is kept after its last change, in days.",
    ),
    (
        "LOBBY_SWEEP_INTERVAL_MS",
        "How often the session sweeper looks for sessions that came due, in ms; between 10 and 60000, and at most a third of `LOBBY_SESSION_LEASE_MS`.",
    ),
    (
        "LOBBY_TLS_CA_FILE",
        "PEM file of the CA every peer's certificate must chain to, for mutual TLS between the services; required unless `LOBBY_GRPC_PLAINTEXT` is `true`.",
    ),
    (
        "LOBBY_TLS_CERT_FILE",
        "PEM file of this process's certificate, for mutual TLS between the services; required unless `LOBBY_GRPC_PLAINTEXT` is `true`.",
    ),
    (
        "LOBBY_TLS_KEY_FILE",
        "PEM file of this process's private key, for mutual TLS between the services; required unless `LOBBY_GRPC_PLAINTEXT` is `true`.",
    ),
    (
        "LOBBY_TRUSTED_PROXY_HOPS",
        "Proxies in front of the gateway whose `X-Forwarded-For` entries are believed, at most 8; `0` takes the TCP peer as the client.",
    ),
    (
        "LOBBY_UPLOAD_TIMEOUT_MS",
        "Deadline of a request to a signed `/artifacts/…` URL, such as a long audio upload, in ms; must be positive.",
    ),
    ("LOBBY_UPSTREAM_TIMEOUT_MS", "Deadline of the gateway's gRPC calls to the services, in ms."),
    (
        "LOBBY_USER_JOIN_TIMEOUT_MS",
        "How long the user has to join the room after a session starts, in ms; a session whose user has not joined by then ends.",
    ),
    (
        "LOBBY_VAULT_CACHE_TTL_MS",
        "How long unwrapped account data keys are held, in ms; a data key rotated on another replica seals this one's writes after at most this.",
    ),
    (
        "LOBBY_WEBHOOK_MAX_AGE_MS",
        "Age past which a provider's webhook event is refused as stale, in ms.",
    ),
    (
        "LOBBY_WORKERS_LISTEN",
        "Address (host:port) of the GPU workers' door on the rooms service: the job stream only, with TLS; each worker authenticates with its own `wkr_` key.",
    ),
    (
        "LOBBY_WORKER_ACCEPT_TIMEOUT_MS",
        "How long a GPU worker has to accept an offered job, in ms; a reject or a timeout moves on to the next worker.",
    ),
    (
        "LOBBY_WORKER_HEARTBEAT_EXPIRY_MS",
        "How long a GPU worker may stay silent, in ms; past it the worker gets no new jobs and its sessions' leases are no longer renewed.",
    ),
    (
        "LOBBY_WORKER_HEARTBEAT_INTERVAL_MS",
        "How often GPU workers are told to send heartbeats, in ms.",
    ),
    (
        "LOBBY_WORKER_KEY_RECHECK_MS",
        "How often an attached GPU worker's key is checked again, in ms (a revoked key's stream closes within it); between 100 and 600000.",
    ),
];
