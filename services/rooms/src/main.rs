use lobby_kit::{
    shutdown::{self, Shutdown},
    telemetry, Settings,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    let _telemetry = telemetry::init(
        "rooms",
        &telemetry::TelemetryConfig::from_settings(&settings)?,
    );
    let config = lobby_rooms::RoomsConfig::from_settings(&settings)?;
    let stop = config.shutdown;
    let shutdown = Shutdown::on(shutdown::staged(shutdown::signal(), stop.drain_delay));
    shutdown::serve_with_grace(
        lobby_rooms::serve(config, shutdown.clone().wait()),
        &shutdown,
        stop.grace,
    )
    .await?;
    Ok(())
}
