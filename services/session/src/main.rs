use lobby_kit::{shutdown, telemetry, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    telemetry::init(
        "session",
        &telemetry::TelemetryConfig::from_settings(&settings)?,
    );
    let config = lobby_session::SessionConfig::from_settings(&settings)?;
    lobby_session::serve(config, shutdown::signal()).await?;
    Ok(())
}
