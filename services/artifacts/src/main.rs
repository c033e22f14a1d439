use lobby_kit::{shutdown, telemetry, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    telemetry::init(
        "artifacts",
        &telemetry::TelemetryConfig::from_settings(&settings)?,
    );
    let config = lobby_artifacts::ArtifactsConfig::from_settings(&settings)?;
    lobby_artifacts::serve(config, shutdown::signal()).await?;
    Ok(())
}
