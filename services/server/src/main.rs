//! `lobby-server`: every Lobby service in one process (see the library).

use lobby_kit::{shutdown::Shutdown, telemetry, Settings};
use lobby_server::{BoxError, ServerConfig};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let settings = Settings::from_env()?;
    let _telemetry = telemetry::init(
        "server",
        &telemetry::TelemetryConfig::from_settings(&settings)?,
    );
    let config = ServerConfig::from_settings(&settings)?;
    let stop = config.shutdown;
    let shutdown = Shutdown::on(lobby_kit::shutdown::staged(
        lobby_kit::shutdown::signal(),
        stop.drain_delay,
    ));
    let started = lobby_server::start(config, &shutdown).await?;
    tracing::info!(gateway = %started.gateway, "lobby-server running");
    lobby_server::run_until_stopped(started, &shutdown, stop.grace).await
}
