//! `lobby-session`: the session service as a process of its own.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    lobby_kit::shutdown::run_service(
        "session",
        lobby_session::SessionConfig::from_settings,
        |c| c.shutdown,
        lobby_session::serve,
    )
    .await
}
