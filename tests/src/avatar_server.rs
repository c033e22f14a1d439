//! A loopback HTTP server with the avatar images the tests need: a face (the
//! fixture cropped from rustface's own test picture), a picture without a
//! face, a non-image, an oversized file, a tiny image, a slow response,
//! redirect chains and a 404. It counts the requests for each path, so tests
//! can tell a cache hit from a refetch. It stops when dropped.

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use std::{
    collections::HashMap,
    io::Cursor,
    sync::{Arc, Mutex},
    time::Duration,
};

pub const FACE_JPG: &[u8] = include_bytes!("../data/face.jpg");

#[derive(Clone, Default)]
struct Hits(Arc<Mutex<HashMap<String, u64>>>);

pub struct AvatarServer {
    pub base: String,
    hits: Hits,
    task: tokio::task::JoinHandle<()>,
}

fn png(image: image::DynamicImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

fn no_face_png() -> Vec<u8> {
    png(image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(
        400,
        400,
        |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]),
    )))
}

/// Noise compresses badly: about 1 MB of PNG.
fn big_png() -> Vec<u8> {
    let mut seed: u32 = 7;
    png(image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(
        600,
        600,
        |_, _| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let b = seed.to_be_bytes();
            image::Rgb([b[0], b[1], b[2]])
        },
    )))
}

fn image_response(content_type: &'static str, body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn serve(State(hits): State<Hits>, Path(path): Path<String>) -> Response {
    if let Ok(mut h) = hits.0.lock() {
        *h.entry(path.clone()).or_default() += 1;
    }
    match path.as_str() {
        "face.jpg" | "same-face.jpg" => image_response("image/jpeg", FACE_JPG.to_vec()),
        "face-as-text" => image_response("text/plain", FACE_JPG.to_vec()),
        "noface.png" => image_response("image/png", no_face_png()),
        "text" => image_response("text/plain", b"hello, this is not an image".to_vec()),
        "big.png" => image_response("image/png", big_png()),
        "tiny.png" => image_response("image/png", png(image::DynamicImage::new_rgb8(64, 64))),
        "slow.jpg" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            image_response("image/jpeg", FACE_JPG.to_vec())
        }
        p if p.starts_with("redirect-") => {
            let n: u32 = p["redirect-".len()..].parse().unwrap_or(0);
            let next = if n == 0 {
                "/img/face.jpg".to_owned()
            } else {
                format!("/img/redirect-{}", n - 1)
            };
            (StatusCode::FOUND, [(header::LOCATION, next)]).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

impl AvatarServer {
    pub async fn start() -> Self {
        let hits = Hits::default();
        let app = Router::new()
            .route("/img/{path}", get(serve))
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, hits, task }
    }

    /// The URL of `/img/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/img/{name}", self.base)
    }

    pub fn hits(&self, name: &str) -> u64 {
        self.hits
            .0
            .lock()
            .map(|h| h.get(name).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for AvatarServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
