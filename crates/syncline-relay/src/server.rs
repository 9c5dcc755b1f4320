//! The HTTP side: routes, WebSocket upgrades, static files, and the
//! lifecycle of the whole relay (start, serve, graceful shutdown).
//!
//! Routes:
//!
//! | route            | what                                                        |
//! |------------------|-------------------------------------------------------------|
//! | `GET /` (upgrade)| the sync WebSocket (`ws://host:port`)                       |
//! | `GET /sync`      | the same WebSocket, at an explicit path                     |
//! | `GET /healthz`   | `200 ok`; `503` while the store cannot commit               |
//! | `GET /metrics`   | Prometheus text (see [`crate::metrics`]): to loopback peers, with `--metrics-token`, or only on `--metrics-listen` |
//! | any other `GET`  | with `--serve DIR`: DIR's files (`/` → `DIR/index.html`)    |
//!
//! Shutdown, in order: stop accepting connections (axum's graceful shutdown,
//! which also lets in-flight plain HTTP requests finish); then tell every
//! WebSocket session to close. A session stops reading at once; one
//! handling a frame finishes it, and pushes it already submitted get their
//! `Ack` once committed; then it closes ("going away", 1001). The relay
//! waits for all of them, at most [`Config::shutdown_grace`].
//! Upgraded WebSockets are no longer tracked by the HTTP server, hence the
//! second step.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{ListenerExt, TapIo};
use syncline_protocol::{DocId, PushDelta};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_http::services::ServeDir;
use tracing::Instrument;

use crate::bus::{Bus, BusError};
use crate::config::Config;
use crate::connection;
use crate::frame_queue::ConnId;
use crate::guard::{Gate, MetricsAccess};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::quota::Quota;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{
    Appended, CommitGroup, Fanout, Publish, Snapshot, SnapshotOutcome, Store, StoreError,
    StoreHealth,
};

/// Why the relay could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The store could not be opened.
    #[error("cannot open the relay's store: {0}")]
    Store(#[from] StoreError),
    /// The bus could not be joined.
    #[error("cannot join the cluster's bus: {0}")]
    Bus(#[from] BusError),
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
    /// The listener failed.
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// State shared by every connection.
pub(crate) struct RelayState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) hub: Hub,
    /// The hub, as the store's commit path sees it (in a cluster, the
    /// bus, which feeds the hub and the other relays).
    publisher: Arc<dyn Publish>,
    /// The cluster's bus, if any.
    bus: Option<Arc<Bus>>,
    pub(crate) config: Config,
    pub(crate) metrics: Arc<Metrics>,
    /// Open connections, in all and per IP.
    gate: Arc<Gate>,
    /// The storage quotas.
    pub(crate) quota: Arc<Quota>,
    shutdown: watch::Sender<bool>,
    next_conn: AtomicU64,
}

impl RelayState {
    /// RelayState state over `store`, with `config` as given (normalize first).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn new(config: Config, store: Arc<dyn Store>) -> RelayState {
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(config.hub_limits(), Arc::clone(&metrics));
        let guard = &config.guard;
        let quota = Quota::with_total(Arc::clone(&store), guard.doc_quota, guard.total_quota, 0);
        RelayState::with_parts(config, store, metrics, hub, None, quota)
    }

    /// RelayState state with its parts made already (a bus needs the hub).
    fn with_parts(
        config: Config,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        hub: Hub,
        bus: Option<Arc<Bus>>,
        quota: Quota,
    ) -> RelayState {
        let (shutdown, _) = watch::channel(false);
        let publisher: Arc<dyn Publish> = match &bus {
            Some(bus) => Arc::clone(bus) as Arc<dyn Publish>,
            None => Arc::new(hub.clone()),
        };
        RelayState {
            store,
            publisher,
            bus,
            hub,
            config,
            metrics,
            gate: Arc::default(),
            quota: Arc::new(quota),
            shutdown,
            next_conn: AtomicU64::new(1),
        }
    }

    /// A receiver that turns `true` when the relay shuts down.
    pub(crate) fn shutdown_receiver(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// A fresh connection id.
    pub(crate) fn next_conn(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Commits a push to `doc`. The push is queued in the store **now**,
    /// before the returned future is first polled, so pushes submitted one
    /// after another are committed in that order. The store publishes what
    /// it stored to the document's other subscribers once durable, in
    /// commit order, together with the rest of its group commit, before
    /// the future resolves — even if nobody awaits it. `tentative` is the
    /// push's stamp from [`Hub::tentative`] (0 if it was not fanned out).
    pub(crate) fn commit(
        &self,
        doc: DocId,
        from: ConnId,
        tentative: u64,
        deltas: Vec<PushDelta>,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send + 'static {
        let publisher = Arc::clone(&self.publisher);
        let metrics = Arc::clone(&self.metrics);
        let quota = Arc::clone(&self.quota);
        let on_commit = Box::new(move |appended: &Appended, group: &mut CommitGroup| {
            metrics.deltas_stored.add(appended.stored.len() as u64);
            let bytes = appended.stored.iter().map(|d| d.bytes.len() as u64);
            quota.committed(doc, bytes.sum());
            if appended.created_doc {
                metrics.documents.inc();
            }
            group.fan_out(
                &publisher,
                Fanout {
                    doc,
                    origin: from,
                    tentative,
                    deltas: Arc::clone(&appended.stored),
                },
            );
        });
        let started = Instant::now();
        let appended = self.store.append(doc, deltas, on_commit);
        let metrics = Arc::clone(&self.metrics);
        async move {
            let appended = appended.await;
            metrics.commit_seconds.observe(started.elapsed());
            if appended.is_err() {
                metrics.store_errors.inc();
            }
            appended
        }
    }

    /// Stores a snapshot of `doc`.
    pub(crate) async fn snapshot(
        &self,
        doc: DocId,
        snapshot: Snapshot,
    ) -> Result<SnapshotOutcome, StoreError> {
        let started = Instant::now();
        let outcome = self.store.snapshot(doc, snapshot).await;
        self.metrics.commit_seconds.observe(started.elapsed());
        match &outcome {
            Ok(SnapshotOutcome::Stored) => {
                self.metrics.snapshots_stored.inc();
                self.quota.snapshot_stored(doc).await;
            }
            Ok(_) => {}
            Err(_) => self.metrics.store_errors.inc(),
        }
        outcome
    }
}

/// A relay ready to serve: its store is open.
pub struct Relay {
    shared: Arc<RelayState>,
    /// Where `/metrics` is served instead of the public listener.
    metrics_listener: Option<TcpListener>,
}

impl Relay {
    /// Opens the store: Postgres at `config.store_url` if set, else SQLite
    /// in `config.data_dir` (off the reactor); then joins the bus at
    /// `config.bus_url`, if set.
    pub async fn open(config: Config) -> Result<Relay, RelayError> {
        if let Some(url) = &config.store_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(RelayError::Config(format!(
                    "--store {url}: only postgres:// URLs are supported (or use --data DIR for SQLite)"
                )));
            }
            let store = PostgresStore::connect(url).await?;
            return Relay::with_store(config, Arc::new(store)).await;
        }
        if config.bus_url.is_some() {
            return Err(RelayError::Config(
                "--bus needs --store postgres://…: the relays of a cluster share one log".into(),
            ));
        }
        let data_dir = config.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&data_dir))
            .await
            .map_err(|_| StoreError::WorkerGone)??;
        Relay::with_store(config, Arc::new(store)).await
    }

    /// A relay over any [`Store`] (joining `config.bus_url`, if set).
    pub async fn with_store(config: Config, store: Arc<dyn Store>) -> Result<Relay, RelayError> {
        let documents = store.document_count().await?;
        let config = config.normalized();
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(config.hub_limits(), Arc::clone(&metrics));
        let bus = match &config.bus_url {
            Some(url) => {
                if !url.starts_with("nats://") {
                    return Err(RelayError::Config(format!(
                        "--bus {url}: use a nats://HOST:PORT URL"
                    )));
                }
                let store = Arc::clone(&store);
                let page = config.page;
                let refresh = config.bus_refresh;
                let metrics = Arc::clone(&metrics);
                Some(Bus::connect(url, hub.clone(), store, metrics, page, refresh).await?)
            }
            None => None,
        };
        let guard = &config.guard;
        let quota = Quota::open(Arc::clone(&store), guard.doc_quota, guard.total_quota).await?;
        let shared = RelayState::with_parts(config, store, metrics, hub, bus, quota);
        shared
            .metrics
            .documents
            .set(i64::try_from(documents).unwrap_or(i64::MAX));
        Ok(Relay {
            shared: Arc::new(shared),
            metrics_listener: None,
        })
    }

    /// Serves `/metrics` on `listener` (when given) rather than on the
    /// public listener (`--metrics-listen`).
    pub fn with_metrics_listener(mut self, listener: Option<TcpListener>) -> Relay {
        self.metrics_listener = listener;
        self
    }

    /// The epoch of the relay's log.
    pub fn epoch(&self) -> [u8; 16] {
        self.shared.store.epoch()
    }

    /// The relay's metrics (also served on `GET /metrics`).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// The relay's routes, ready to be served or nested.
    pub fn router(&self) -> Router {
        let mut router = Router::new()
            .route("/", get(root))
            .route("/sync", get(sync))
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics));
        if let Some(dir) = &self.shared.config.serve_dir {
            router = router.fallback_service(ServeDir::new(dir));
        }
        router.with_state(Arc::clone(&self.shared))
    }

    /// Serves `listener` until `shutdown` resolves, then closes every
    /// connection gracefully.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RelayError> {
        match &self.shared.config.auth {
            None => tracing::warn!(
                "OPEN MODE: no auth secret is set, so ANYONE who can reach this relay can read \
                 and write EVERY document. Set --auth-secret (or SYNCLINE_AUTH_SECRET) to \
                 require signed tokens."
            ),
            Some(_) => {
                tracing::info!("tokens required: connections need a signed token per document")
            }
        }
        let shared = Arc::clone(&self.shared);
        if let Some(listener) = self.metrics_listener.take() {
            let only_metrics = Router::new()
                .route("/metrics", get(metrics_anyone))
                .with_state(Arc::clone(&shared));
            tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, only_metrics).await {
                    tracing::error!(%error, "the /metrics listener failed");
                }
            });
        }
        let app = self.router();
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(without_nagle(listener), app)
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("stopped accepting connections; closing sessions");
        shared.shutdown.send_replace(true);
        // In-flight frames get the grace period, then the close does.
        let grace = shared.config.shutdown_grace * 2;
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

/// `listener`, with `TCP_NODELAY` set on every accepted connection.
/// Nagle's algorithm would hold back a small frame (an `Ack`, a live
/// `Deltas`) while an earlier one is unacknowledged, and the client delays
/// its TCP ACK by up to 40 ms: measured, that was most of the typists'
/// p99 (docs/benchmarks/relay.md).
fn without_nagle(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    fn set_nodelay(stream: &mut TcpStream) {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    }
    listener.tap_io(set_nodelay)
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
    State(shared): State<Arc<RelayState>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: Request,
) -> Response {
    match (ws, &shared.config.serve_dir) {
        (Ok(ws), _) => upgrade(ws, shared, &request),
        (Err(_), Some(dir)) => serve_file(dir, request).await,
        (Err(rejection), None) => rejection.into_response(),
    }
}

/// `GET /sync`: the WebSocket only.
async fn sync(
    State(shared): State<Arc<RelayState>>,
    ws: WebSocketUpgrade,
    request: Request,
) -> Response {
    upgrade(ws, shared, &request)
}

/// `GET /healthz`: `200 ok` while the store commits (with a note if the
/// bus is down: deliveries then come from store polling); `503` with the
/// reason while it cannot (nothing is acknowledged meanwhile).
async fn healthz(State(shared): State<Arc<RelayState>>) -> Response {
    let bus_down = shared.bus.as_ref().is_some_and(|bus| !bus.is_up());
    match shared.store.health() {
        StoreHealth::Down(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store down: {why}\nnot acknowledging pushes until it is back\n"),
        )
            .into_response(),
        StoreHealth::Up if bus_down => {
            "ok\nbus down: other relays' changes arrive by polling the store\n".into_response()
        }
        StoreHealth::Up => "ok".into_response(),
    }
}

/// The peer of a request served with connect info.
fn peer(request: &Request) -> Option<SocketAddr> {
    let info = request.extensions().get::<ConnectInfo<SocketAddr>>();
    info.map(|ConnectInfo(addr)| *addr)
}

/// `GET /metrics` on the public listener: to whom `--metrics-*` allow.
async fn metrics(State(shared): State<Arc<RelayState>>, request: Request) -> Response {
    let access = &shared.config.guard.metrics;
    if !access.allows(peer(&request).map(|p| p.ip()), request.headers()) {
        let why = match access {
            MetricsAccess::Listener(_) => {
                "metrics are served on the relay's --metrics-listen address\n"
            }
            MetricsAccess::Token(_) => "send Authorization: Bearer <the relay's --metrics-token>\n",
            MetricsAccess::Loopback => {
                "metrics are served to loopback only: set --metrics-listen or --metrics-token\n"
            }
        };
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    metrics_anyone(State(shared)).await
}

/// `GET /metrics`: Prometheus text exposition.
async fn metrics_anyone(State(shared): State<Arc<RelayState>>) -> Response {
    let up = shared.store.health() == StoreHealth::Up;
    shared.metrics.store_up.set(i64::from(up));
    let bus_up = shared.bus.as_ref().is_some_and(|bus| bus.is_up());
    shared.metrics.bus_up.set(i64::from(bus_up));
    let body = shared.metrics.render(shared.store.transactions());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The WebSocket layer's read buffer per connection, allocated when the
/// connection opens, and the most it reads per syscall. tungstenite's
/// default (128 KiB) made an idle connection cost ~139 KiB. It grows to
/// hold a larger message. 1 KiB vs 4 KiB: 7.8 vs 10.9 KiB per idle
/// connection, and no measurable change in acked pushes/s (see
/// docs/benchmarks/relay.md).
const READ_BUFFER_BYTES: usize = 1024;

/// How much the WebSocket layer buffers outgoing frames before writing
/// them to the socket (grown on demand, not preallocated).
const WRITE_BUFFER_BYTES: usize = 4 * 1024;

fn upgrade(ws: WebSocketUpgrade, shared: Arc<RelayState>, request: &Request) -> Response {
    if !shared.config.guard.origin_allowed(request.headers()) {
        let message =
            "this relay does not accept WebSockets from this page's origin (--allow-origin)\n";
        return (StatusCode::FORBIDDEN, message).into_response();
    }
    let admitted = shared
        .gate
        .enter(peer(request), &shared.config.guard, &shared.metrics);
    let conn = shared.next_conn();
    // Larger messages are refused by the WebSocket layer before they are
    // buffered; the session turns that into Error{LimitExceeded}.
    let max = shared.config.limits.max_frame_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        // tungstenite allocates its read buffer up front, for every
        // connection, idle or not. A small one grows on demand to hold a
        // larger message (up to `max`); it reads at most this much per
        // syscall, plenty for typical sub-KiB frames.
        .read_buffer_size(READ_BUFFER_BYTES)
        // Frames are batched here before reaching the socket; the writer
        // task flushes after each batch anyway. `max_write_buffer_size`
        // stays unlimited: the buffer only builds up past this when the
        // socket fails, and the queue bounds what is queued.
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            let span = tracing::info_span!("conn", id = conn);
            async move {
                match admitted {
                    Ok(ticket) => connection::run(socket, shared, conn, ticket).await,
                    Err(refused) => connection::refuse(socket, refused).await,
                }
            }
            .instrument(span)
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

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = without_nagle(listener);
        let client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await;
        assert!(
            accepted.nodelay().unwrap(),
            "TCP_NODELAY on the relay's side"
        );
        drop(client);
    }
}
