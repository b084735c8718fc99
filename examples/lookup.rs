//! Looking up an email, a domain and an IP address with the real SpyCloud client: the same
//! pipeline the server runs (rate limit, retries, catalog cache), without a server.
//!
//! ```sh
//! SPYCLOUD_API_KEY=... cargo run --example lookup -- alex@example.com example.com 203.0.113.7
//! ```
//!
//! Each value is typed by its form (an `@` makes an email, an IP literal an `ip` or `ipv6`,
//! anything else a domain here); the bundle is printed as SecureX would read it, and a fatal
//! error is matched by its kind.

use spycloud_relay::domain::{ApiKey, Credentials, Observable, ObservableType};
use spycloud_relay::{Error, Relay};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = std::env::var("SPYCLOUD_API_KEY").map_err(|_| "set SPYCLOUD_API_KEY")?;
    let credentials = Credentials::new(ApiKey::parse(&key)?);
    let observables: Vec<Observable> = std::env::args()
        .skip(1)
        .map(|value| {
            let kind = ObservableType::by_form(&value).unwrap_or(ObservableType::Domain);
            Observable::new(kind.name(), &value)
        })
        .collect();

    let relay = Relay::builder().build()?;
    match relay.lookup(&credentials, &observables).await.into_result() {
        Ok(findings) => {
            // CTIM, as SecureX reads it: one rendering of what SpyCloud said.
            let bundle = findings.to_ctim(&relay.mapping(&credentials));
            println!("{}", serde_json::to_string_pretty(&bundle)?);
        }
        Err(Error::RateLimited) => eprintln!("SpyCloud's rate limit or quota: try again later"),
        Err(Error::Authorization { reason }) => eprintln!("the API key was refused: {reason}"),
        Err(error) => eprintln!("{}: {}", error.code(), error.message()),
    }
    Ok(())
}
