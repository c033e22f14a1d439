//! `lobby-auth`: the auth service as a process of its own.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    lobby_kit::shutdown::run_service(
        "auth",
        lobby_auth::AuthConfig::from_settings,
        |c| c.shutdown,
        lobby_auth::serve,
    )
    .await
}
