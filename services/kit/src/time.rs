//! Time for records and expiry checks.

use std::path::PathBuf;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The clock expiry decisions use. Tests move it forward by writing an
/// offset in milliseconds to the file named by `LOBBY_CLOCK_OFFSET_FILE`, so
/// expiry is tested without sleeping; production never sets it.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_file: Option<PathBuf>,
}

impl Clock {
    pub fn from_settings(s: &crate::Settings) -> Self {
        let offset_file = s
            .raw("LOBBY_CLOCK_OFFSET_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        if let Some(f) = &offset_file {
            tracing::warn!(file = %f.display(), "test clock enabled: expiry decisions follow the offset in this file");
        }
        Self { offset_file }
    }

    pub fn now_ms(&self) -> i64 {
        let offset = self
            .offset_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        now_ms() + offset
    }
}
