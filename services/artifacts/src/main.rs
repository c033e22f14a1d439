use lobby_kit::{shutdown, telemetry, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init("artifacts");
    let config = lobby_artifacts::ArtifactsConfig::from_settings(&Settings::from_env()?)?;
    lobby_artifacts::serve(config, shutdown::signal()).await?;
    Ok(())
}
