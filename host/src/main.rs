//! The `agenthost` binary: argument parsing and error reporting only; the
//! work happens in the library.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let exporter = match init_tracing() {
        Ok(exporter) => exporter,
        Err(message) => {
            eprintln!("error: {message}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = run();
    // The last requests' spans go out before the process ends.
    if let Some(exporter) = exporter {
        exporter.flush(std::time::Duration::from_secs(5));
    }
    code
}

/// Logs to stderr (text, or JSON lines on request) filtered by
/// `AGENTHOST_LOG`; and, when an OTLP endpoint is configured, the host's
/// spans at INFO and above to it, whatever the log filter says.
fn init_tracing() -> Result<Option<agenthost::otlp::Exporter>, String> {
    use tracing_subscriber::prelude::*;

    let filter = tracing_subscriber::EnvFilter::try_from_env("AGENTHOST_LOG")
        .unwrap_or_else(|_| "warn".into());
    let logs = match std::env::var("AGENTHOST_LOG_FORMAT").as_deref() {
        // One JSON object per line for log collectors.
        Ok("json") => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
        Ok("text") | Err(std::env::VarError::NotPresent) => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        Ok(other) => {
            return Err(format!(
                "AGENTHOST_LOG_FORMAT is `{other}`: use `text` (the default) or `json`"
            ))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err("AGENTHOST_LOG_FORMAT is not UTF-8: use `text` or `json`".into())
        }
    };
    let (traces, exporter) = match agenthost::otlp::OtlpConfig::from_env() {
        Ok(Some(config)) => {
            let (layer, exporter) = agenthost::otlp::start(config)
                .map_err(|e| format!("cannot start the OTLP exporter: {e}"))?;
            let spans = tracing_subscriber::filter::Targets::new()
                .with_target("agenthost", tracing::Level::INFO);
            (Some(layer.with_filter(spans)), Some(exporter))
        }
        Ok(None) => (None, None),
        Err(e) => return Err(e.to_string()),
    };
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .init();
    Ok(exporter)
}

fn run() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
