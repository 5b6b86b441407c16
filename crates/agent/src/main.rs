//! `emberscope-agent`: receives Datadog-format profile uploads, stores them and serves the UI.

use clap::Parser;
use emberscope_agent::config::Args;
use emberscope_agent::{ApiConfig, Server, StoreOptions};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    if let Err(e) = args.check_exposure() {
        tracing::error!("{e}");
        return std::process::ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let data_dir = args.data_dir();
    let server = Server::start(
        args.listen,
        &data_dir,
        StoreOptions {
            retention: args.retention,
            max_disk: args.max_disk,
        },
        ApiConfig {
            auth_token: args.auth_token.clone(),
            max_body: args.max_body,
            max_decompressed: args.max_decompressed,
            max_parts: args.max_parts,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot start on {}: {e:#}", args.listen))?;
    let ui_host = if server.addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        server.addr.ip().to_string()
    };
    let ui = if server.addr.is_ipv6() {
        format!("http://[{}]:{}/", ui_host, server.addr.port())
    } else {
        format!("http://{}:{}/", ui_host, server.addr.port())
    };
    tracing::info!(
        "emberscope-agent {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        server.addr
    );
    tracing::info!("data directory: {}", data_dir.display());
    tracing::info!(
        "retention: {}, disk cap: {}",
        humantime::format_duration(args.retention),
        args.max_disk
            .map(|b| format!("{b} bytes"))
            .unwrap_or_else(|| "none".into())
    );
    tracing::info!("UI: {ui}");
    tracing::info!(
        "send profiles with DD_PROFILING_ENABLED=true DD_TRACE_AGENT_URL=http://{}:{} ddtrace-run python app.py",
        ui_host,
        server.addr.port()
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
