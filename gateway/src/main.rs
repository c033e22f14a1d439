use lobby_kit::{shutdown, telemetry, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    telemetry::init(
        "gateway",
        &telemetry::TelemetryConfig::from_settings(&settings)?,
    );
    let config = lobby_gateway::GatewayConfig::from_settings(&settings)?;
    lobby_gateway::serve(config, shutdown::signal()).await?;
    Ok(())
}
