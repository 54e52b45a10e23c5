//! A bare broker for experiments: anonymous access, no persistence.
//!
//! `cargo run -p mytracks-broker --example anonymous_broker -- 1883`

use mytracks_broker::{Broker, BrokerConfig, NoHooks};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(1883);
    let config = BrokerConfig {
        allow_anonymous: true,
        ..BrokerConfig::default()
    };
    let broker = Broker::builder(config).hooks(NoHooks).build().await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    tokio::select! {
        result = broker.serve(listener, "mqtt") => result?,
        _ = tokio::signal::ctrl_c() => broker.shutdown().await,
    }
    Ok(())
}
