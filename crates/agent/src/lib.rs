//! emberscope-agent: receives Datadog-format profile uploads (ddtrace,
//! emberscope), stores them durably (SQLite catalog + raw files) and serves a
//! query API and a web UI.

pub mod api;
pub mod config;
pub mod decode;
pub mod intake;
pub mod pprof;
pub mod query;
pub mod store;
pub mod synth;
pub mod timeparse;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use api::ApiConfig;
pub use store::{Store, StoreOptions};

/// A running server (used by `main` and by the integration tests).
pub struct Server {
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    handle: tokio::task::JoinHandle<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    /// Binds `listen`, opens the store in `data_dir` and starts serving.
    pub async fn start(
        listen: SocketAddr,
        data_dir: &std::path::Path,
        store_opts: StoreOptions,
        api: ApiConfig,
    ) -> anyhow::Result<Server> {
        let dir = data_dir.to_path_buf();
        let opts = store_opts.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&dir, opts)).await??;
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = api::AppState {
            store: store.clone(),
            cfg: Arc::new(api),
        };
        let app = api::router(state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "server stopped");
            }
        });
        // Retention and disk cap in the background: now, then every minute.
        let bg = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                bg.maintain_later();
            }
        });
        Ok(Server {
            addr,
            store,
            handle,
            shutdown: Some(tx),
        })
    }

    /// Stops accepting connections and waits for in-flight requests.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.handle.await;
    }
}
