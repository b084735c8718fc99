//! `healthcheck`: the container's HEALTHCHECK, `GET /watchdog` of the relay on this machine.

use std::error::Error;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::HealthcheckArgs;

/// The most of an answer `healthcheck` reads: the relay's is a few dozen bytes.
const MAX_HEALTHCHECK_BYTES: usize = 4096;

/// `GET /watchdog` of the relay on this machine, with a `Health-Check` header it must echo:
/// 0 when it does, 1 (and why, on stderr) when not. At most [`MAX_HEALTHCHECK_BYTES`] of the
/// answer are read, whatever listens there.
pub async fn run(args: HealthcheckArgs) -> ExitCode {
    const PROBE: &str = "spycloud-relay-healthcheck";
    let url = format!("http://{}/watchdog", args.target());
    let checked = async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(args.timeout_secs.get()))
            .no_proxy()
            .build()?;
        let mut response = client
            .get(&url)
            .header("Health-Check", PROBE)
            .send()
            .await?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_HEALTHCHECK_BYTES {
                return Err(format!(
                    "{url} answered {status} with an answer larger than {MAX_HEALTHCHECK_BYTES} bytes"
                )
                .into());
            }
            body.extend_from_slice(&chunk);
        }
        let body: serde_json::Value = serde_json::from_slice(&body)?;
        if status.is_success() && body["data"] == PROBE {
            Ok(())
        } else {
            Err(format!(
                "{url} answered {status}: {}",
                super::escaped(&body.to_string())
            )
            .into())
        }
    };
    let result: Result<(), Box<dyn Error>> = checked.await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "spycloud-relay: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}
