use lobby_kit::{shutdown, telemetry, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    telemetry::init(
        "auth",
        &telemetry::TelemetryConfig::from_settings(&settings)?,
    );
    let config = lobby_auth::AuthConfig::from_settings(&settings)?;
    lobby_auth::serve(config, shutdown::signal()).await?;
    Ok(())
}
