use lobby_kit::{shutdown, telemetry, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init("session");
    let config = lobby_session::SessionConfig::from_settings(&Settings::from_env()?)?;
    lobby_session::serve(config, shutdown::signal()).await?;
    Ok(())
}
