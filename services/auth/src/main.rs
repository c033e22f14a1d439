use lobby_kit::{shutdown, telemetry, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init("auth");
    let config = lobby_auth::AuthConfig::from_settings(&Settings::from_env()?)?;
    lobby_auth::serve(config, shutdown::signal()).await?;
    Ok(())
}
