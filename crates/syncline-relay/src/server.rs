//! The HTTP side: routes, WebSocket upgrades, static files, and the
//! lifecycle of the whole relay (start, serve, graceful shutdown).
//!
//! Routes:
//!
//! | route            | what                                                        |
//! |------------------|-------------------------------------------------------------|
//! | `GET /` (upgrade)| the sync WebSocket (`ws://host:port`)                       |
//! | `GET /sync`      | the same WebSocket, at an explicit path                     |
//! | `GET /healthz`   | `200 ok`                                                    |
//! | any other `GET`  | with `--serve DIR`: DIR's files (`/` → `DIR/index.html`)    |
//!
//! Shutdown, in order: stop accepting connections (axum's graceful shutdown,
//! which also lets in-flight plain HTTP requests finish); then tell every
//! WebSocket session to close ("going away", 1001) and wait for them, at
//! most [`Config::shutdown_grace`]. Upgraded WebSockets are no longer
//! tracked by the HTTP server, hence the second step.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use syncline_protocol::{DocId, MAX_FRAME_BYTES, PushDelta};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::services::ServeDir;
use tracing::Instrument;

use crate::config::Config;
use crate::connection;
use crate::hub::Hub;
use crate::outbox::ConnId;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// Why the relay could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The store could not be opened.
    #[error("cannot open the relay's store: {0}")]
    Store(#[from] StoreError),
    /// The listener failed.
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) hub: Hub,
    pub(crate) config: Config,
    shutdown: watch::Sender<bool>,
    next_conn: AtomicU64,
}

impl Shared {
    /// A receiver that turns `true` when the relay shuts down.
    pub(crate) fn shutdown_receiver(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Commits a push to `doc` and publishes what it stored to the other
    /// subscribers, as one turn of the document. Returns the ack's `seq`.
    pub(crate) async fn commit(
        &self,
        doc: DocId,
        from: ConnId,
        deltas: Vec<PushDelta>,
    ) -> Result<u64, StoreError> {
        let turn = self.hub.turn(doc).await;
        let appended = self.store.append(doc, deltas).await?;
        let seq = appended.highest_seq();
        self.hub.publish(&turn, from, appended.stored);
        Ok(seq)
    }
}

/// A relay ready to serve: its store is open.
pub struct Relay {
    shared: Arc<Shared>,
}

impl Relay {
    /// Opens the SQLite store in `config.data_dir` (off the reactor).
    pub async fn open(config: Config) -> Result<Relay, RelayError> {
        let data_dir = config.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&data_dir))
            .await
            .map_err(|_| StoreError::WorkerGone)??;
        Ok(Relay::with_store(config, Arc::new(store)))
    }

    /// A relay over any [`Store`].
    pub fn with_store(config: Config, store: Arc<dyn Store>) -> Relay {
        let config = config.normalized();
        let (shutdown, _) = watch::channel(false);
        Relay {
            shared: Arc::new(Shared {
                store,
                hub: Hub::new(config.hub_limits()),
                config,
                shutdown,
                next_conn: AtomicU64::new(1),
            }),
        }
    }

    /// The epoch of the relay's log.
    pub fn epoch(&self) -> [u8; 16] {
        self.shared.store.epoch()
    }

    /// The relay's routes, ready to be served or nested.
    pub fn router(&self) -> Router {
        let mut router = Router::new()
            .route("/", get(root))
            .route("/sync", get(sync))
            .route("/healthz", get(|| async { "ok" }));
        if let Some(dir) = &self.shared.config.serve_dir {
            router = router.fallback_service(ServeDir::new(dir));
        }
        router.with_state(Arc::clone(&self.shared))
    }

    /// Serves `listener` until `shutdown` resolves, then closes every
    /// connection gracefully.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RelayError> {
        let shared = Arc::clone(&self.shared);
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("stopped accepting connections; closing sessions");
        shared.shutdown.send_replace(true);
        let grace = shared.config.shutdown_grace;
        if tokio::time::timeout(grace, shared.shutdown.closed())
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = shared.shutdown.receiver_count(),
                "sessions still open after the grace period"
            );
        }
        tracing::info!("relay stopped");
        Ok(())
    }
}

/// Opens the relay described by `config` and serves `listener` until
/// `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    Relay::open(config).await?.serve(listener, shutdown).await
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are installed when
/// this function is called, so a signal arriving before the returned future
/// is first polled is not lost. Call it inside the tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind| {
            signal(kind)
                .inspect_err(|e| tracing::error!(%e, "cannot install a signal handler"))
                .ok()
        };
        (
            install(SignalKind::terminate()),
            install(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut term, mut int) = signals;
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term.take()) => tracing::info!("SIGTERM received"),
                () = wait(int.take()) => tracing::info!("SIGINT received"),
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            tracing::info!("Ctrl-C received");
        }
    }
}

/// `GET /`: the WebSocket when the request asks for an upgrade, otherwise
/// the static site (when one is served).
async fn root(
    State(shared): State<Arc<Shared>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: Request,
) -> Response {
    match (ws, &shared.config.serve_dir) {
        (Ok(ws), _) => upgrade(ws, shared),
        (Err(_), Some(dir)) => serve_file(dir, request).await,
        (Err(rejection), None) => rejection.into_response(),
    }
}

/// `GET /sync`: the WebSocket only.
async fn sync(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    upgrade(ws, shared)
}

fn upgrade(ws: WebSocketUpgrade, shared: Arc<Shared>) -> Response {
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| {
            connection::run(socket, shared, conn).instrument(tracing::info_span!("conn", id = conn))
        })
}

async fn serve_file(dir: &Path, request: Request) -> Response {
    match ServeDir::new(dir).try_call(request).await {
        Ok(response) => response.map(Body::new),
        Err(error) => {
            tracing::error!(%error, "cannot serve a static file");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
