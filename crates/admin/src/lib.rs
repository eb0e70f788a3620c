//! An HTTP admin endpoint for a running [`Optimizer`]: what
//! it decided and learned as Prometheus metrics, its runtime
//! configuration to read and change, and its rollouts to inspect, approve,
//! hold, resume and roll back.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the live dashboard: the report's charts drawn from the decision log ([`AdminConfig::dashboard_log`]) and the optimizer's state now, refreshed on reload |
//! | `GET /health` | `{"status": "ok", ...}` (no token needed) |
//! | `GET /metrics` | Prometheus text format (prometheus-client) |
//! | `GET /runtime-config` | the runtime configuration, JSON |
//! | `POST /runtime-config` | replaces it (fields left out take their defaults); 400 naming the bad field |
//! | `GET /rollouts` | every task type's rollout status |
//! | `GET /learned` | per task type, what its learner learned ([`Optimizer::learned`] for the default task description): each arm's outcomes, mean reward and interval, choice probability, and the arm it would choose |
//! | `POST /rollouts/{task}/{approve,hold,resume,rollback}` | body `{"reason": "..."}` or `{"approver": "..."}`, optional |
//!
//! The endpoint listens on 127.0.0.1 by default. With a token, every route
//! but `/health` needs `Authorization: Bearer TOKEN`; an address that is
//! not loopback is refused without one. The dashboard also takes the
//! token as `GET /?token=TOKEN`, for a browser (the address then holds
//! the token: prefer a loopback address, or a proxy that adds the header).
//!
//! ```no_run
//! # async fn run(optimizer: tuneloop::Optimizer) -> Result<(), tuneloop_admin::Error> {
//! use tuneloop_admin::{AdminConfig, serve};
//! let admin = serve(optimizer, AdminConfig::default()).await?;
//! println!("metrics at {}/metrics", admin.url());
//! // ... later:
//! admin.stop().await;
//! # Ok(()) }
//! ```
//!
//! Metrics (prefix `tuneloop_`): `recommendations_total`,
//! `outcomes_total`, `reward_sum_total` (so `rate(reward_sum) /
//! rate(outcomes)` is the mean reward), `expired_total`,
//! `abandoned_total`, `fallbacks_total`, `promotions_total`,
//! `rollbacks_total`, `log_dropped_total`, `log_failed_total`,
//! `gate_exclusions_total{reason}`, `pending_decisions`, with a budget
//! `budget_spent_tokens`, `budget_spent_cost_usd`,
//! `budget_remaining_tokens`, `budget_remaining_cost_usd`, with a runtime
//! configuration `exploration_rate`, and per task type with a rollout
//! `rollout_phase{task_type, phase}` (1 for the current phase),
//! `rollout_held{task_type}`, and the SLO monitor's
//! `slo_observations{task_type, cohort}`, `slo_latency_p99_ms`,
//! `slo_quality_mean`, `slo_error_rate`, and the proof's latest verdict
//! `proof_estimate{task_type, phase, kind}`, `proof_lower_bound`,
//! `proof_threshold`, `proof_rounds`, `proof_passed` and
//! `proof_consecutive` (passing shadow windows in a row).

mod metrics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::encoding::text::encode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use tuneloop::Optimizer;
use tuneloop::core::ErrorKind;
use tuneloop_config::{RuntimeConfig, RuntimeConfigStore};

use crate::metrics::registry;

/// What can go wrong starting the endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is refused: `field` holds `value`, and `expected`
    /// says what it may hold.
    #[error("{field} = {value}: expected {expected}")]
    InvalidConfig {
        /// The field of [`AdminConfig`] (`admin.addr`, `admin.token`).
        field: &'static str,
        /// Its value.
        value: String,
        /// What it may be.
        expected: &'static str,
    },
    /// The endpoint cannot listen on its address.
    #[error("admin endpoint on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// What kind of failure it is: a configuration is
    /// [`BadInput`](ErrorKind::BadInput), an address that cannot be
    /// listened on [`Io`](ErrorKind::Io).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidConfig { .. } => ErrorKind::BadInput,
            Error::Listen { .. } => ErrorKind::Io,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Largest request body accepted, in bytes.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Connections served at once; more are closed as they arrive.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a connection has to send a request's whole header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a request has to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a request has from its header to its response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Accepts connections until `shutdown`, each on its own task, at most
/// [`MAX_CONNECTIONS`] at once, each with [`HEADER_TIMEOUT`] to send its
/// header; then waits for the open ones to finish their request.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    mut shutdown: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // A connection that failed before it was accepted (reset,
                // out of descriptors, say): a pause, then on.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Full: closed at once rather than queued without bound.
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Where the endpoint listens, who may use it and what it serves.
#[derive(Clone)]
pub struct AdminConfig {
    /// The address (default `127.0.0.1:0`: loopback, a free port).
    pub addr: SocketAddr,
    /// The bearer token every route but `/health` needs (default none;
    /// required for an address that is not loopback).
    pub token: Option<String>,
    /// The decision log file the dashboard draws its charts from (the
    /// optimizer's [`JsonlLog`](tuneloop::counterfactual::JsonlLog) path;
    /// default none: the dashboard shows the rollouts and the provenance
    /// chain only). Read whole on every load of the page, after the
    /// optimizer's queued records are written: a page over a log of a
    /// million decisions takes seconds.
    pub dashboard_log: Option<PathBuf>,
    /// The runtime configuration `/runtime-config` reads and changes (the
    /// store the optimizer is [attached](RuntimeConfigStore::attach) to;
    /// default none: those routes answer 404).
    pub runtime_config: Option<Arc<RuntimeConfigStore>>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            dashboard_log: None,
            runtime_config: None,
        }
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("dashboard_log", &self.dashboard_log)
            .field(
                "runtime_config",
                &self.runtime_config.as_ref().map(|r| r.path()),
            )
            .finish()
    }
}

/// A running admin endpoint; [`stop`](Self::stop) it (dropping it leaves
/// it serving until the runtime ends).
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl AdminServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving (requests in flight finish) and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

#[derive(Clone)]
struct Shared {
    optimizer: Optimizer,
    token: Option<String>,
    dashboard_log: Option<Arc<PathBuf>>,
    runtime: Option<Arc<RuntimeConfigStore>>,
}

/// Starts the endpoint on the current tokio runtime.
///
/// # Errors
/// [`Error::InvalidConfig`] for an address that is not loopback without
/// a token, or an empty token; [`Error::Listen`] when the address cannot be
/// bound.
pub async fn serve(optimizer: Optimizer, config: AdminConfig) -> Result<AdminServer> {
    if config.token.as_deref().is_some_and(str::is_empty) {
        return Err(Error::InvalidConfig {
            field: "admin.token",
            value: "\"\"".to_owned(),
            expected: "a non-empty token, or none",
        });
    }
    if !config.addr.ip().is_loopback() && config.token.is_none() {
        return Err(Error::InvalidConfig {
            field: "admin.addr",
            value: config.addr.to_string(),
            expected: "a loopback address, or a token for any other",
        });
    }
    let listen = |source| Error::Listen {
        addr: config.addr,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(listen)?;
    let addr = listener.local_addr().map_err(listen)?;
    let shared = Shared {
        optimizer,
        token: config.token,
        dashboard_log: config.dashboard_log.map(Arc::new),
        runtime: config.runtime_config,
    };
    let protected = Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics))
        .route("/runtime-config", get(get_config).post(post_config))
        .route("/rollouts", get(rollouts))
        .route("/learned", get(learned))
        .route("/rollouts/{task}/{action}", post(rollout_action))
        .route_layer(middleware::from_fn_with_state(shared.clone(), auth));
    let app = Router::new()
        .route("/health", get(health))
        .merge(protected)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            BODY_TIMEOUT,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        // Outermost: an announced body over the limit gets its 413 before
        // anything reads it (or asks for a token).
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .with_state(shared);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(accept_loop(listener, app, rx));
    Ok(AdminServer {
        addr,
        shutdown: Some(tx),
        task,
    })
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The response to a library error, by its kind: bad input is 400, a
/// refusal of the current state 409, a file or thread of the machine 503.
fn failure(kind: ErrorKind, e: &dyn std::error::Error) -> Response {
    let status = match kind {
        ErrorKind::BadInput => StatusCode::BAD_REQUEST,
        ErrorKind::Refused => StatusCode::CONFLICT,
        ErrorKind::Io => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    problem(status, e.to_string())
}

async fn auth(
    State(s): State<Shared>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &s.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // The dashboard, opened in a browser, may carry it in the query.
        let in_query = request.uri().path() == "/"
            && request.uri().query().is_some_and(|q| {
                q.split('&')
                    .any(|kv| kv.strip_prefix("token=") == Some(token))
            });
        if given != Some(token.as_str()) && !in_query {
            return problem(StatusCode::UNAUTHORIZED, "a bearer token is needed");
        }
    }
    next.run(request).await
}

async fn dashboard(State(s): State<Shared>) -> Response {
    let page = tokio::task::spawn_blocking(move || dashboard_page(&s)).await;
    match page {
        Ok(Ok(html)) => Html(html).into_response(),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The dashboard's page: the report over the log, with the rollouts now
/// and the provenance chain (blocking: it reads the log).
fn dashboard_page(s: &Shared) -> std::result::Result<String, String> {
    use tuneloop_report::{LiveRollout, Options};
    let o = &s.optimizer;
    let mut live = Vec::new();
    for t in o.task_types() {
        if let Some(r) = o.rollout_status(t).map_err(|e| e.to_string())? {
            live.push(LiveRollout {
                task_type: t.to_owned(),
                phase: r.phase,
                held: r.held,
                candidate_fraction: r.candidate_fraction,
                baseline_observations: r.baseline.observations,
                candidate_observations: r.candidate.observations,
                last_verdict: r.last_verdict,
            });
        }
    }
    let chain = o.provenance_records();
    let title = s
        .dashboard_log
        .as_ref()
        .map_or_else(|| "no decision log".to_owned(), |p| p.display().to_string());
    let options = Options {
        title,
        seed: 0,
        provenance: &chain,
        live: Some(live),
    };
    let Some(path) = &s.dashboard_log else {
        return tuneloop_report::render_status(
            &options,
            "No decision log is configured (AdminConfig::dashboard_log): the charts need one.",
        )
        .map_err(|e| e.to_string());
    };
    // Every decision recorded so far is in the file before it is read.
    o.flush_log();
    match tuneloop_report::read_log(path, &|_| {}) {
        Ok(log) => tuneloop_report::render(&log, &options, &|_| {})
            .map(|r| r.html)
            .map_err(|e| e.to_string()),
        Err(tuneloop_report::Error::BadInput(why))
            if !path.exists() || why.ends_with("no decision in the log") =>
        {
            tuneloop_report::render_status(&options, &format!("No decision yet: {why}."))
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn health(State(s): State<Shared>) -> Json<Value> {
    let c = s.optimizer.counters();
    Json(json!({
        "status": "ok",
        "task_types": s.optimizer.task_types(),
        "pending": s.optimizer.pending(),
        "recommendations": c.recommendations,
        "outcomes": c.outcomes,
    }))
}

async fn metrics(State(s): State<Shared>) -> Response {
    let mut text = String::new();
    let encoded = registry(&s.optimizer, s.runtime.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|r| encode(&mut text, &r).map_err(|e| e.to_string()));
    match encoded {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn get_config(State(s): State<Shared>) -> Response {
    match &s.runtime {
        Some(store) => Json(store.get()).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "the endpoint was started without a runtime configuration",
        ),
    }
}

async fn post_config(State(s): State<Shared>, body: axum::body::Bytes) -> Response {
    let Some(store) = &s.runtime else {
        return problem(
            StatusCode::NOT_FOUND,
            "the endpoint was started without a runtime configuration",
        );
    };
    let new: RuntimeConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!(
                    "runtime configuration: line {}, column {}: {e}",
                    e.line(),
                    e.column()
                ),
            );
        }
    };
    if let Err(e) = new.validate() {
        return problem(StatusCode::BAD_REQUEST, e.to_string());
    }
    let config = match store.update(|c| *c = new) {
        Ok(c) => c,
        Err(e) => return failure(e.kind(), &e),
    };
    // The caller is told it is saved only once it is: the write is made
    // now (off the runtime's threads), and a failure is a 503 that says
    // the change is in effect but not on disk.
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.flush()).await {
        Ok(Ok(())) => Json(config).into_response(),
        Ok(Err(e)) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the change is in effect but was not saved: {e}"),
        ),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn rollouts(State(s): State<Shared>) -> Response {
    let mut out = serde_json::Map::new();
    for t in s.optimizer.task_types() {
        match s.optimizer.rollout_status(t) {
            Ok(status) => {
                out.insert(t.to_owned(), json!(status));
            }
            Err(e) => return failure(e.kind(), &e),
        }
    }
    Json(Value::Object(out)).into_response()
}

/// Per task type, what its learner learned ([`Optimizer::learned`]) for
/// the default task description.
async fn learned(State(s): State<Shared>) -> Response {
    let mut out = serde_json::Map::new();
    for t in s.optimizer.task_types() {
        match s
            .optimizer
            .learned(t, &tuneloop::core::TaskFeatures::default())
        {
            Ok(l) => {
                out.insert(t.to_owned(), json!(l));
            }
            // An optimizer learning from a context type of its own has no
            // default context to ask about.
            Err(e) => {
                out.insert(t.to_owned(), json!({ "error": e.to_string() }));
            }
        }
    }
    Json(Value::Object(out)).into_response()
}

/// The optional body of a rollout action.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ActionBody {
    reason: Option<String>,
    approver: Option<String>,
}

async fn rollout_action(
    State(s): State<Shared>,
    Path((task, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let b: ActionBody = if body.is_empty() {
        ActionBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return problem(StatusCode::BAD_REQUEST, format!("body: {e}")),
        }
    };
    let o = &s.optimizer;
    let reason = b.reason.as_deref().unwrap_or("admin endpoint");
    let events = match action.as_str() {
        "approve" => o.approve_rollout(&task, b.approver.as_deref().unwrap_or("admin endpoint")),
        "hold" => o.hold_rollout(&task, reason).map(|e| vec![e]),
        "resume" => o.resume_rollout(&task).map(|e| vec![e]),
        "rollback" => o.rollback_rollout(&task, reason).map(|e| vec![e]),
        other => {
            return problem(
                StatusCode::NOT_FOUND,
                format!("unknown action `{other}`: approve, hold, resume or rollback"),
            );
        }
    };
    match events {
        Ok(events) => Json(json!({ "events": events })).into_response(),
        Err(e @ (tuneloop::Error::UnknownTaskType(_) | tuneloop::Error::NoRollout { .. })) => {
            problem(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e) => failure(e.kind(), &e),
    }
}
