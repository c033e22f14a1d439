use lobby_kit::{shutdown, telemetry, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init("gateway");
    let config = lobby_gateway::GatewayConfig::from_settings(&Settings::from_env()?)?;
    lobby_gateway::serve(config, shutdown::signal()).await?;
    Ok(())
}
