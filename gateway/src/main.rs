//! `lobby-gateway`: the gateway service as a process of its own.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    lobby_kit::shutdown::run_service(
        "gateway",
        lobby_gateway::GatewayConfig::from_settings,
        |c| c.shutdown,
        lobby_gateway::serve,
    )
    .await
}
