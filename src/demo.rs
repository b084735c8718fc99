//! The offline demo: the real relay over a bundled sample dataset, with a ready token.

use crate::config::DemoArgs;

/// Serves the demo until SIGTERM/SIGINT.
///
/// # Errors
/// When the listener cannot be bound.
pub async fn run(_args: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    Err("the demo is not built yet".into())
}
