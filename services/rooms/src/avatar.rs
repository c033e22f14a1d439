//! Avatar validation for link starts (seed 002): fetch the agent's image with
//! a size cap, a time limit and a redirect limit, refusing private and
//! loopback addresses unless allowed; decode it (JPEG, PNG, WebP) within
//! dimension limits; and require a face, found by the SeetaFace detector
//! (`rustface`) whose model is compiled into this binary.
//!
//! Verdicts are cached in Redis per URL (briefly, so a busy link neither
//! refetches nor re-detects) and per content hash (longer: the same bytes
//! behind a new URL skip detection). Only deterministic verdicts are cached;
//! an unreachable or slow server is asked again next time.

use lobby_kit::ErrorCode;

use lobby_kit::redis_conn::RedisConn;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::{
    io::Cursor,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

const MODEL: &[u8] = include_bytes!("../assets/seeta_fd_frontal_v1.0.bin");
/// Images are scaled down to this side before detection: faces in an avatar
/// are large, and detection time grows with the pixel count.
const DETECTION_SIDE: u32 = 640;
const CONTENT_CACHE_SECONDS: u64 = 24 * 3600;

#[derive(Debug, Clone)]
pub struct AvatarConfig {
    pub max_bytes: usize,
    pub fetch_timeout: Duration,
    pub max_redirects: u8,
    pub allow_private_addresses: bool,
    pub min_side: u32,
    pub max_side: u32,
    pub url_cache_seconds: u64,
    /// Memory one decode may allocate, whatever its header claims.
    pub decode_max_bytes: u64,
    /// Decodes at once per process: with the budget, bounds their memory.
    pub max_concurrent_decodes: usize,
}

/// Why an avatar was refused. Each has its own machine code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AvatarRejection {
    #[error("avatar_image_url is not an http(s) URL with a host")]
    InvalidUrl,
    #[error("avatar_image_url points at a private or loopback address")]
    AddressRefused,
    #[error("avatar image could not be fetched: {0}")]
    Unreachable(String),
    #[error("avatar image took longer than the fetch time limit")]
    Timeout,
    #[error("avatar image is larger than {0} bytes")]
    TooLarge(usize),
    #[error("avatar image is not a JPEG, PNG or WebP image")]
    UnsupportedFormat,
    #[error("avatar image is {width}x{height}; each side must be between {min} and {max} pixels")]
    BadDimensions {
        width: u32,
        height: u32,
        min: u32,
        max: u32,
    },
    #[error("no face was detected in the avatar image")]
    NoFace,
}

impl AvatarRejection {
    pub fn machine_code(&self) -> ErrorCode {
        match self {
            Self::InvalidUrl => ErrorCode::AvatarInvalidUrl,
            Self::AddressRefused => ErrorCode::AvatarAddressRefused,
            Self::Unreachable(_) => ErrorCode::AvatarUnreachable,
            Self::Timeout => ErrorCode::AvatarTimeout,
            Self::TooLarge(_) => ErrorCode::AvatarTooLarge,
            Self::UnsupportedFormat => ErrorCode::AvatarUnsupportedFormat,
            Self::BadDimensions { .. } => ErrorCode::AvatarBadDimensions,
            Self::NoFace => ErrorCode::AvatarNoFace,
        }
    }

    /// Whether the same bytes (or URL, briefly) always give this verdict.
    fn cacheable(&self) -> bool {
        matches!(
            self,
            Self::TooLarge(_) | Self::UnsupportedFormat | Self::BadDimensions { .. } | Self::NoFace
        )
    }
}

/// An accepted avatar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Avatar {
    pub content_sha256: String,
    pub width: u32,
    pub height: u32,
    pub faces: u32,
}

type Verdict = Result<Avatar, AvatarRejection>;

/// One validation in flight, shared by every caller asking about its URL.
type InFlight = Arc<tokio::sync::OnceCell<Result<Verdict, (redis::ErrorKind, String)>>>;

#[derive(Clone)]
pub struct AvatarValidator {
    config: AvatarConfig,
    /// Decodes running now are bounded by this, each by `decode_max_bytes`.
    decodes: Arc<tokio::sync::Semaphore>,
    tls: Arc<rustls::ClientConfig>,
    model: Arc<rustface::Model>,
    redis: RedisConn,
    in_flight: Arc<std::sync::Mutex<std::collections::HashMap<String, InFlight>>>,
}

/// Addresses a server-side fetch must never reach on its own say-so.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // Forms that carry an IPv4 address, which a gateway on the way
            // may turn into that address (private or not): refused whole.
            let embeds_ipv4 = (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 64:ff9b::/96, 64:ff9b:1::/48
                || s[0] == 0x2002 // 6to4
                || (s[0] == 0x2001 && s[1] == 0) // Teredo 2001::/32
                || s[..6].iter().all(|&x| x == 0); // IPv4-compatible ::/96 (and ::, ::1)
            !(embeds_ipv4
                || v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated, still routed by some)
                || (s[0] == 0x0100 && s[1..4].iter().all(|&x| x == 0)) // discard 100::/64
                || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl AvatarValidator {
    pub fn new(config: AvatarConfig, redis: RedisConn) -> Result<Self, std::io::Error> {
        let model = rustface::read_model(Cursor::new(MODEL))?;
        let tls = lobby_kit::https::client_config().map_err(std::io::Error::other)?;
        Ok(Self {
            decodes: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_decodes)),
            config,
            tls,
            model: Arc::new(model),
            redis,
            in_flight: Arc::default(),
        })
    }

    /// Validates the image at `url`, from cache when it can. Concurrent
    /// checks of one URL share a single fetch and inspection: a burst of
    /// starts through one link costs one decode, not one each.
    pub async fn validate(&self, url: &str) -> Result<Verdict, redis::RedisError> {
        let cell: InFlight = match self.in_flight.lock() {
            Ok(mut map) => map.entry(url.to_owned()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let shared = cell
            .get_or_init(|| async {
                self.validate_once(url)
                    .await
                    .map_err(|e| (e.kind(), e.to_string()))
            })
            .await
            .clone();
        if let Ok(mut map) = self.in_flight.lock() {
            if map.get(url).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                map.remove(url);
            }
        }
        shared.map_err(|(kind, message)| {
            redis::RedisError::from((kind, "avatar verdict cache", message))
        })
    }

    async fn validate_once(&self, url: &str) -> Result<Verdict, redis::RedisError> {
        let url_key = format!("avatar:url:{}", sha256_hex(url.as_bytes()));
        let mut conn = self.redis.clone();
        let cached: Option<String> = conn.get(&url_key).await?;
        if let Some(verdict) = cached.and_then(|c| serde_json::from_str::<Verdict>(&c).ok()) {
            return Ok(verdict);
        }
        let bytes = match tokio::time::timeout(self.config.fetch_timeout, self.fetch(url)).await {
            Err(_) => return Ok(Err(AvatarRejection::Timeout)),
            Ok(Err(rejection)) => {
                if rejection.cacheable() {
                    self.remember(
                        &url_key,
                        &Err(rejection.clone()),
                        self.config.url_cache_seconds,
                    )
                    .await?;
                }
                return Ok(Err(rejection));
            }
            Ok(Ok(bytes)) => bytes,
        };
        let content_hash = sha256_hex(&bytes);
        let content_key = format!("avatar:content:{content_hash}");
        let cached: Option<String> = conn.get(&content_key).await?;
        let verdict = match cached.and_then(|c| serde_json::from_str::<Verdict>(&c).ok()) {
            Some(v) => v,
            None => {
                let (config, model) = (self.config.clone(), self.model.clone());
                let hash = content_hash.clone();
                // Closed only if the validator is gone, and then no one waits.
                let _turn = self.decodes.acquire().await;
                let verdict =
                    tokio::task::spawn_blocking(move || inspect(&bytes, &config, &model, hash))
                        .await
                        .unwrap_or_else(|e| {
                            Err(AvatarRejection::Unreachable(format!(
                                "inspection failed: {e}"
                            )))
                        });
                if verdict
                    .as_ref()
                    .err()
                    .is_none_or(AvatarRejection::cacheable)
                {
                    self.remember(&content_key, &verdict, CONTENT_CACHE_SECONDS)
                        .await?;
                }
                verdict
            }
        };
        self.remember(&url_key, &verdict, self.config.url_cache_seconds)
            .await?;
        Ok(verdict)
    }

    async fn remember(
        &self,
        key: &str,
        verdict: &Verdict,
        seconds: u64,
    ) -> Result<(), redis::RedisError> {
        if let Ok(json) = serde_json::to_string(verdict) {
            let mut conn = self.redis.clone();
            let () = conn.set_ex(key, json, seconds).await?;
        }
        Ok(())
    }

    /// GETs `url`, following at most `max_redirects` redirects, checking
    /// every hop's addresses and stopping at `max_bytes`.
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, AvatarRejection> {
        let mut current = url::Url::parse(url).map_err(|_| AvatarRejection::InvalidUrl)?;
        for _ in 0..=self.config.max_redirects {
            if !matches!(current.scheme(), "http" | "https") {
                return Err(AvatarRejection::InvalidUrl);
            }
            let host = current
                .host_str()
                .ok_or(AvatarRejection::InvalidUrl)?
                .to_owned();
            let port = current
                .port_or_known_default()
                .ok_or(AvatarRejection::InvalidUrl)?;
            let addr = self.resolve(&host, port).await?;
            // Connect to the address that was checked, so a second DNS answer
            // cannot swap in a private one (DNS rebinding).
            // No proxy from the environment: a proxy would connect to the
            // name itself, past the address just checked.
            let client = reqwest::Client::builder()
                .no_proxy()
                .tls_backend_preconfigured((*self.tls).clone())
                .redirect(reqwest::redirect::Policy::none())
                .resolve(host.trim_start_matches('[').trim_end_matches(']'), addr)
                .build()
                .map_err(|e| AvatarRejection::Unreachable(e.to_string()))?;
            let mut response = client
                .get(current.clone())
                .send()
                .await
                .map_err(|e| AvatarRejection::Unreachable(e.without_url().to_string()))?;
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        AvatarRejection::Unreachable("redirect without a Location".into())
                    })?;
                current = current.join(location).map_err(|_| {
                    AvatarRejection::Unreachable("redirect to an invalid URL".into())
                })?;
                continue;
            }
            if !response.status().is_success() {
                return Err(AvatarRejection::Unreachable(format!(
                    "HTTP {}",
                    response.status().as_u16()
                )));
            }
            let max = self.config.max_bytes;
            if response
                .content_length()
                .is_some_and(|len| len > max as u64)
            {
                return Err(AvatarRejection::TooLarge(max));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| AvatarRejection::Unreachable(e.without_url().to_string()))?
            {
                if body.len() + chunk.len() > max {
                    return Err(AvatarRejection::TooLarge(max));
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(body);
        }
        Err(AvatarRejection::Unreachable(format!(
            "more than {} redirects",
            self.config.max_redirects
        )))
    }

    async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, AvatarRejection> {
        let addrs: Vec<SocketAddr> =
            tokio::net::lookup_host((host.trim_start_matches('[').trim_end_matches(']'), port))
                .await
                .map_err(|e| AvatarRejection::Unreachable(format!("cannot resolve {host}: {e}")))?
                .collect();
        if addrs.is_empty() {
            return Err(AvatarRejection::Unreachable(format!(
                "cannot resolve {host}"
            )));
        }
        // Every answer must be public: otherwise the choice between them is
        // the attacker's.
        if !self.config.allow_private_addresses && addrs.iter().any(|a| !is_public(a.ip())) {
            return Err(AvatarRejection::AddressRefused);
        }
        Ok(addrs[0])
    }
}

/// Decodes within limits and looks for a face. CPU-bound: runs on a blocking thread.
fn inspect(
    bytes: &[u8],
    config: &AvatarConfig,
    model: &rustface::Model,
    content_sha256: String,
) -> Verdict {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| AvatarRejection::UnsupportedFormat)?;
    if !matches!(
        reader.format(),
        Some(image::ImageFormat::Jpeg | image::ImageFormat::Png | image::ImageFormat::WebP)
    ) {
        return Err(AvatarRejection::UnsupportedFormat);
    }
    let (width, height) = image::ImageReader::with_format(
        Cursor::new(bytes),
        reader.format().unwrap_or(image::ImageFormat::Png),
    )
    .into_dimensions()
    .map_err(|_| AvatarRejection::UnsupportedFormat)?;
    let sides = config.min_side..=config.max_side;
    if !sides.contains(&width) || !sides.contains(&height) {
        return Err(AvatarRejection::BadDimensions {
            width,
            height,
            min: config.min_side,
            max: config.max_side,
        });
    }
    // The dimension check above already bounds memory; the limits guard
    // against a header that lies about them.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(config.max_side);
    limits.max_image_height = Some(config.max_side);
    limits.max_alloc = Some(config.decode_max_bytes);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|_| AvatarRejection::UnsupportedFormat)?;
    let image = if width.max(height) > DETECTION_SIDE {
        image.resize(
            DETECTION_SIDE,
            DETECTION_SIDE,
            image::imageops::FilterType::Triangle,
        )
    } else {
        image
    };
    let gray = image.to_luma8();
    let mut detector = rustface::create_detector_with_model(model.clone());
    detector.set_min_face_size(24);
    detector.set_score_thresh(2.0);
    detector.set_pyramid_scale_factor(0.8);
    detector.set_slide_window_step(4, 4);
    let faces = detector.detect(&rustface::ImageData::new(
        gray.as_raw(),
        gray.width(),
        gray.height(),
    ));
    if faces.is_empty() {
        return Err(AvatarRejection::NoFace);
    }
    Ok(Avatar {
        content_sha256,
        width,
        height,
        faces: u32::try_from(faces.len()).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "64:ff9b::a00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::a00:1",
            "2002:a00:1::1",
            "2001:0:4136:e378:8000:63bf:f5ff:fffe",
            "::10.0.0.1",
            "::8.8.8.8",
            "fec0::1",
            "100::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    fn config() -> AvatarConfig {
        AvatarConfig {
            max_bytes: 5 << 20,
            fetch_timeout: Duration::from_secs(5),
            max_redirects: 3,
            allow_private_addresses: false,
            min_side: 128,
            max_side: 4096,
            url_cache_seconds: 60,
            decode_max_bytes: 64 << 20,
            max_concurrent_decodes: 2,
        }
    }

    #[test]
    fn a_decode_past_its_memory_budget_is_refused() {
        let model = rustface::read_model(Cursor::new(MODEL)).unwrap();
        let big = encode(
            image::DynamicImage::new_rgb8(1024, 1024),
            image::ImageFormat::Png,
        );
        let tight = AvatarConfig {
            decode_max_bytes: 1 << 20,
            ..config()
        };
        assert_eq!(
            inspect(&big, &tight, &model, "h".into()),
            Err(AvatarRejection::UnsupportedFormat),
            "3 MiB of pixels within a 1 MiB budget"
        );
        assert_eq!(
            inspect(&big, &config(), &model, "h".into()),
            Err(AvatarRejection::NoFace),
            "the same image decodes within the default budget"
        );
    }

    fn encode(image: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn the_face_fixture_has_a_face_and_a_plain_image_has_none() {
        let model = rustface::read_model(Cursor::new(MODEL)).unwrap();
        let face = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/face.jpg"
        ))
        .unwrap();
        let verdict = inspect(&face, &config(), &model, "h".into()).unwrap();
        assert!(verdict.faces >= 1);
        let plain = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(300, 300, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }));
        let png = encode(plain, image::ImageFormat::Png);
        assert_eq!(
            inspect(&png, &config(), &model, "h".into()),
            Err(AvatarRejection::NoFace)
        );
    }

    #[test]
    fn formats_and_dimensions_are_checked_before_detection() {
        let model = rustface::read_model(Cursor::new(MODEL)).unwrap();
        assert_eq!(
            inspect(b"hello, not an image", &config(), &model, "h".into()),
            Err(AvatarRejection::UnsupportedFormat)
        );
        let gif_header = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
        assert_eq!(
            inspect(gif_header, &config(), &model, "h".into()),
            Err(AvatarRejection::UnsupportedFormat)
        );
        let tiny = encode(
            image::DynamicImage::new_rgb8(64, 64),
            image::ImageFormat::Png,
        );
        assert!(matches!(
            inspect(&tiny, &config(), &model, "h".into()),
            Err(AvatarRejection::BadDimensions {
                width: 64,
                height: 64,
                ..
            })
        ));
    }
}
