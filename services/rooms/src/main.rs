use lobby_kit::{shutdown, telemetry, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    telemetry::init(
        "rooms",
        &telemetry::TelemetryConfig::from_settings(&settings)?,
    );
    let config = lobby_rooms::RoomsConfig::from_settings(&settings)?;
    lobby_rooms::serve(config, shutdown::signal()).await?;
    Ok(())
}
