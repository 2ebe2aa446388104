//! The log's HTTP API (axum): `POST /v1/reports` and the queries.
//!
//! Reports are written by one thread in batches: every report that arrives
//! while a commit is on its way joins the next one (group commit), so many
//! hosts reporting at once cost few fsyncs, and each is acknowledged only
//! after its batch is durable.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::dashboard;
use super::metrics::Metrics;
use super::mirror::Mirror;
use super::rollouts::{Action, History};
use super::store::{Incoming, Question, ReportQuery, Store, StoreError, Stored, word};
use super::{OPERATOR_PREFIX, ServeOptions, now_unix, token_hash};
use crate::report::Report;
use crate::rollout::{Admission, AdmitRequest};

/// At most this many reports in one commit.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Stored, String>>;
type AdmitReply = oneshot::Sender<Result<Admission, String>>;

#[derive(Clone)]
struct App {
    store: Arc<dyn Store>,
    writes: mpsc::Sender<(Incoming, Reply)>,
    /// Admissions that write, decided in batches by their own thread.
    admissions: mpsc::Sender<(Question, AdmitReply)>,
    /// The log's copy of the repository: the gate's authority.
    mirror: Option<Arc<Mirror>>,
    metrics: Arc<Metrics>,
    notifier: Option<super::notify::Notifier>,
}

pub async fn serve(store: Arc<dyn Store>, options: &ServeOptions) -> anyhow::Result<()> {
    let (writes, queue) = mpsc::channel(4096);
    let writer_store = Arc::clone(&store);
    let notifier = options
        .notify
        .clone()
        .map(|url| super::notify::Notifier::start(url, options.notify_window));
    let writer_notifier = notifier.clone();
    let writer = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_batches(&*writer_store, queue, writer_notifier.as_ref()))?;
    let mirror = match &options.source {
        Some((url, reference)) => {
            let dir = options.mirror_dir.clone();
            let (url, reference) = (url.clone(), reference.clone());
            let mirror = tokio::task::spawn_blocking(move || Mirror::open(&dir, &url, &reference))
                .await?
                .map_err(anyhow::Error::msg)?;
            Some(Arc::new(mirror))
        }
        None => None,
    };
    let (admissions, admit_queue) = mpsc::channel(4096);
    let admit_store = Arc::clone(&store);
    let admit_mirror = mirror.clone();
    let admitter = std::thread::Builder::new()
        .name("log-admitter".into())
        .spawn(move || {
            if let Some(mirror) = admit_mirror {
                admit_batches(&*admit_store, &*mirror, admit_queue);
            }
        })?;
    if let Some(retain) = options.retain {
        tokio::spawn(prune_forever(Arc::clone(&store), retain));
    }
    if let Some(mirror) = &mirror {
        let mirror = Arc::clone(mirror);
        std::thread::Builder::new()
            .name("log-fetcher".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FETCH_EVERY);
                    if let Err(e) = mirror.fetch() {
                        tracing::warn!(error = %e, "cannot fetch the source");
                    }
                }
            })?;
        tokio::spawn(tick_forever(Arc::clone(&store), notifier.clone()));
    }
    let app = App {
        store,
        writes,
        admissions,
        mirror,
        metrics: Arc::new(Metrics::default()),
        notifier,
    };
    let router = Router::new()
        .route("/", get(dashboard_home))
        .route("/commits/{commit}", get(dashboard_commit))
        .route("/reports/{id}", get(dashboard_report))
        .route("/metrics", get(metrics))
        .route("/v1/reports", post(post_report).get(list_reports))
        .route("/v1/reports/{id}", get(one_report))
        .route("/v1/hosts", get(hosts))
        .route("/v1/commits", get(commits))
        .route("/v1/rollouts", get(list_rollouts))
        .route("/v1/rollouts/admit", post(admit))
        .route("/v1/rollouts/resume", post(resume))
        .route("/v1/rollouts/abort", post(abort))
        .layer(DefaultBodyLimit::max(options.body_limit))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "log server listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await?;
    // The router (and its senders) are gone: the writer drains and ends.
    let _ = writer.join();
    let _ = admitter.join();
    tracing::info!("log server stopped");
    Ok(())
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// What is queued, at least one and at most `MAX_BATCH` (none: the
/// server is stopping).
fn next_batch<T>(queue: &mut mpsc::Receiver<T>) -> Option<Vec<T>> {
    let mut batch = vec![queue.blocking_recv()?];
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// The writer thread: takes what is queued, stores it in one transaction,
/// answers each sender.
fn write_batches(
    store: &dyn Store,
    mut queue: mpsc::Receiver<(Incoming, Reply)>,
    notifier: Option<&super::notify::Notifier>,
) {
    while let Some(batch) = next_batch(&mut queue) {
        let (items, replies): (Vec<Incoming>, Vec<Reply>) = batch.into_iter().unzip();
        match store.insert(&items) {
            Ok(inserted) => {
                for (reply, s) in replies.into_iter().zip(inserted.stored) {
                    let _ = reply.send(Ok(s));
                }
                for halt in &inserted.halts {
                    let text = super::notify::halt_message(halt);
                    tracing::warn!(message = %text, "rollout halted");
                    if let Some(notifier) = notifier {
                        notifier.alert(text);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, reports = items.len(), "could not store reports");
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// How often the mirror fetches by itself (questions about commits it
/// lacks fetch at once).
const FETCH_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// How often time is let decide (deadlines, soaks) with no question or
/// report to do it.
const TICK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Deadlines pass and soaks end with nobody asking: a hung host halts its
/// rollout (and chat hears of it) within seconds of its deadline.
async fn tick_forever(store: Arc<dyn Store>, notifier: Option<super::notify::Notifier>) {
    loop {
        tokio::time::sleep(TICK_EVERY).await;
        let s = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || s.tick(now_unix())).await {
            Ok(Ok(halts)) => {
                for halt in &halts {
                    let text = super::notify::halt_message(halt);
                    tracing::warn!(message = %text, "rollout halted");
                    if let Some(notifier) = &notifier {
                        notifier.alert(text);
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot check the rollouts' deadlines"),
            Err(e) => tracing::warn!(error = %e, "cannot check the rollouts' deadlines"),
        }
    }
}

/// The admitting thread: the questions that came together, decided in
/// one transaction, in the order they came.
fn admit_batches(
    store: &dyn Store,
    history: &dyn History,
    mut queue: mpsc::Receiver<(Question, AdmitReply)>,
) {
    while let Some(batch) = next_batch(&mut queue) {
        let (requests, replies): (Vec<Question>, Vec<AdmitReply>) = batch.into_iter().unzip();
        match store.admit(history, &requests, now_unix()) {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, questions = requests.len(), "could not decide admissions");
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// Runs a store call off the event loop.
async fn blocking<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let store = Arc::clone(&app.store);
    match tokio::task::spawn_blocking(move || f(&*store)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// The host a request's bearer token belongs to.
async fn authenticate(app: &App, headers: &HeaderMap) -> Result<String, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "no token: send `Authorization: Bearer <token>` (`tend log token create HOST` makes one)",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "the Authorization header is not `Bearer <token>`",
        ));
    }
    let hash = token_hash(token);
    match blocking(app, move |s| s.token_host(&hash)).await? {
        Some(host) => Ok(host),
        None => Err(error(StatusCode::UNAUTHORIZED, "unknown or revoked token")),
    }
}

/// The host a request's token belongs to; operators' tokens are refused.
async fn authenticate_host(app: &App, headers: &HeaderMap) -> Result<String, Response> {
    let who = authenticate(app, headers).await?;
    if who.starts_with(OPERATOR_PREFIX) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "this is an operator's token; hosts report and ask with their own",
        ));
    }
    Ok(who)
}

/// What SPEC §5 asks of a report beyond its shape.
pub(super) fn check(report: &Report) -> Result<(), String> {
    if report.id.trim().is_empty() || report.id.len() > 128 {
        return Err("`id` must be 1 to 128 characters".into());
    }
    if report.host.trim().is_empty() {
        return Err("`host` is empty".into());
    }
    if humantime::parse_rfc3339_weak(&report.started_at).is_err() {
        return Err(format!(
            "`started_at` is not an RFC 3339 time: `{}`",
            report.started_at
        ));
    }
    let s = &report.summary;
    let counted = s.changed + s.drift + s.failed + s.unchanged + s.unknown + s.not_reached;
    if counted != s.total {
        return Err(format!(
            "`summary` does not add up: changed + drift + failed + unchanged + unknown = {counted}, total = {}",
            s.total
        ));
    }
    if report.resources.len() > s.total {
        return Err("more `resources` than `summary.total`".into());
    }
    if Report::status_of(s) != report.status {
        return Err(format!(
            "`status` is `{}` but the summary says `{}`",
            word(&report.status),
            word(&Report::status_of(s))
        ));
    }
    Ok(())
}

async fn post_report(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let arrived = std::time::Instant::now();
    let refuse = |response: Response| {
        app.metrics.refused();
        response
    };
    let host = match authenticate_host(&app, &headers).await {
        Ok(host) => host,
        Err(response) => return refuse(response),
    };
    let report: Report = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(error(
                StatusCode::BAD_REQUEST,
                format!("not a run report: {e}"),
            ));
        }
    };
    if report.host != host {
        return refuse(error(
            StatusCode::FORBIDDEN,
            format!(
                "this token is `{host}`'s; it cannot report for `{}`",
                report.host
            ),
        ));
    }
    if let Err(e) = check(&report) {
        return refuse(error(
            StatusCode::BAD_REQUEST,
            format!("not a valid run report: {e}"),
        ));
    }
    let for_metrics = (report.status, report.summary.clone(), report.duration_ms);
    let event = notable(&report);
    let id = report.id.clone();
    let incoming = Incoming {
        report,
        body: String::from_utf8_lossy(&body).into_owned(),
        received_unix: now_unix(),
    };
    let (reply, answer) = oneshot::channel();
    if app.writes.send((incoming, reply)).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the log is shutting down");
    }
    match answer.await {
        Ok(Ok(Stored::New)) => {
            let (status, summary, duration_ms) = &for_metrics;
            app.metrics.stored(
                *status,
                summary,
                *duration_ms,
                arrived.elapsed().as_secs_f64(),
            );
            if let (Some(notifier), Some(event)) = (&app.notifier, event) {
                notifier.tell(event);
            }
            (
                StatusCode::CREATED,
                axum::Json(json!({ "id": id, "stored": "new" })),
            )
                .into_response()
        }
        Ok(Ok(Stored::Duplicate)) => {
            app.metrics.duplicate();
            (
            StatusCode::OK,
            axum::Json(json!({ "id": id, "stored": "duplicate", "note": "this report id was already stored; nothing changed" })),
        )
            .into_response()
        }
        Ok(Err(e)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not stored, try again: {e}"),
        ),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "not stored, try again"),
    }
}

/// A changed, drifted or failed real run, for the chat webhook.
fn notable(report: &Report) -> Option<super::notify::Event> {
    use crate::report::{RunMode, Status};
    if report.mode != RunMode::Apply
        || !matches!(
            report.status,
            Status::Changed | Status::Drift | Status::Failed
        )
    {
        return None;
    }
    Some(super::notify::Event {
        host: report.host.clone(),
        status: word(&report.status),
        commit: report.revision.as_ref().map(|r| r.commit.clone()),
        author: report.revision.as_ref().map(|r| r.author.clone()),
        subject: report.revision.as_ref().map(|r| r.subject.clone()),
        failure: report
            .resources
            .iter()
            .find(|r| r.status == Status::Failed)
            .map(|r| format!("{}: {}", r.id, r.error.as_deref().unwrap_or("failed"))),
    })
}

/// `since=2h` (a duration back from now) or an RFC 3339 time.
fn since(text: &str) -> Result<i64, String> {
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(now_unix() - i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .ok_or_else(|| {
            format!(
                "`since` is neither a duration (2h) nor a time (2026-11-24T10:00:00Z): `{text}`"
            )
        })
}

async fn list_reports(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut query = ReportQuery {
        host: q.get("host").cloned(),
        environment: q.get("env").cloned(),
        status: q.get("status").cloned(),
        commit: q.get("commit").cloned(),
        limit: 100,
        ..ReportQuery::default()
    };
    if let Some(s) = q.get("since") {
        match since(s) {
            Ok(t) => query.since_unix = Some(t),
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        }
    }
    if let Some(l) = q.get("limit") {
        match l.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => query.limit = n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "`limit` is a number from 1 to 1000",
                );
            }
        }
    }
    if let Some(c) = q.get("cursor") {
        match c.parse::<i64>() {
            Ok(n) => query.before = Some(n),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "`cursor` is the `next_cursor` of a previous page",
                );
            }
        }
    }
    match blocking(&app, move |s| s.reports(&query)).await {
        Ok(page) => axum::Json(page).into_response(),
        Err(r) => r,
    }
}

async fn one_report(State(app): State<App>, Path(id): Path<String>) -> Response {
    match blocking(&app, move |s| s.report(&id)).await {
        Ok(Some(body)) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no report with that id"),
        Err(r) => r,
    }
}

async fn hosts(State(app): State<App>) -> Response {
    match blocking(&app, |s| s.hosts(now_unix())).await {
        Ok(rows) => axum::Json(json!({ "hosts": rows })).into_response(),
        Err(r) => r,
    }
}

async fn commits(State(app): State<App>, Query(q): Query<HashMap<String, String>>) -> Response {
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
    let now = now_unix();
    match blocking(&app, move |s| Ok((s.commits(limit)?, s.hosts(now)?))).await {
        Ok((mut rows, hosts)) => {
            super::store::fill_pending(&mut rows, &hosts);
            axum::Json(json!({ "commits": rows })).into_response()
        }
        Err(r) => r,
    }
}

/// Removes reports older than `retain`, at start and then every hour.
async fn prune_forever(store: Arc<dyn Store>, retain: std::time::Duration) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        let before = now_unix() - i64::try_from(retain.as_secs()).unwrap_or(i64::MAX);
        let store = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || store.prune(before)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(removed = n, "old reports pruned"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not prune old reports"),
            Err(e) => tracing::warn!(error = %e, "could not prune old reports"),
        }
    }
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    match blocking(&app, |s| s.hosts(now_unix())).await {
        Ok(hosts) => {
            let silent = hosts.iter().filter(|h| h.silent).count();
            (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                app.metrics.render(hosts.len(), silent),
            )
                .into_response()
        }
        Err(r) => r,
    }
}

async fn dashboard_home(State(app): State<App>) -> Response {
    let now = now_unix();
    match blocking(&app, move |s| {
        Ok((s.commits(50)?, s.hosts(now)?, s.rollouts(None, None, 20)?))
    })
    .await
    {
        Ok((mut commits, hosts, rollouts)) => {
            super::store::fill_pending(&mut commits, &hosts);
            html(dashboard::home(&commits, &hosts, &rollouts))
        }
        Err(r) => r,
    }
}

async fn dashboard_commit(State(app): State<App>, Path(commit): Path<String>) -> Response {
    let query = ReportQuery {
        commit: Some(commit.clone()),
        limit: 1000,
        ..ReportQuery::default()
    };
    let exact = commit.clone();
    match blocking(&app, move |s| {
        let rollouts = s.rollouts(None, Some(&exact), 20)?;
        Ok((s.reports(&query)?, rollouts))
    })
    .await
    {
        Ok((page, rollouts)) if page.reports.is_empty() && rollouts.is_empty() => {
            error(StatusCode::NOT_FOUND, "no report of that commit")
        }
        Ok((page, rollouts)) => html(dashboard::commit(&commit, &page.reports, &rollouts)),
        Err(r) => r,
    }
}

async fn dashboard_report(State(app): State<App>, Path(id): Path<String>) -> Response {
    match blocking(&app, move |s| s.report(&id)).await {
        Ok(Some(body)) => match serde_json::from_str(&body) {
            Ok(value) => html(dashboard::report(&value)),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Ok(None) => error(StatusCode::NOT_FOUND, "no report with that id"),
        Err(r) => r,
    }
}

async fn admit(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let host = match authenticate_host(&app, &headers).await {
        Ok(host) => host,
        Err(response) => return response,
    };
    let request: AdmitRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not an admission request: {e}"),
            );
        }
    };
    if request.host != host {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "this token is `{host}`'s; it cannot ask for `{}`",
                request.host
            ),
        );
    }
    if request.environment.trim().is_empty() || request.commit.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "`environment` and `commit` must not be empty",
        );
    }
    let Some(mirror) = app.mirror.clone() else {
        return error(
            StatusCode::CONFLICT,
            "this log cannot gate rollouts: it has no copy of the repository to read the policy from; start it with `tend log serve --source GIT_URL [--ref main]`",
        );
    };
    let (environment, commit) = (request.environment.clone(), request.commit.clone());
    let looked_up = Arc::clone(&mirror);
    let facts =
        match tokio::task::spawn_blocking(move || looked_up.facts(&environment, &commit)).await {
            Ok(Ok(facts)) => facts,
            // A commit the copy lacks may be one pushed a moment ago: worth
            // asking again soon; anything else waits for the next cycle.
            Ok(Err(unknown @ super::mirror::Unknown::Commit(_))) => {
                return (
                    StatusCode::CONFLICT,
                    axum::Json(json!({ "error": unknown.to_string(), "retry_after_s": 30 })),
                )
                    .into_response();
            }
            Ok(Err(unknown)) => return error(StatusCode::CONFLICT, unknown.to_string()),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    let question = Question { request, facts };
    let asked = question.clone();
    let history = Arc::clone(&mirror);
    match blocking(&app, move |s| s.admit_read(&*history, &asked, now_unix())).await {
        Ok(Some(answer)) => return axum::Json(answer).into_response(),
        Ok(None) => {}
        Err(r) => return r,
    }
    let (reply, answer) = oneshot::channel();
    if app.admissions.send((question, reply)).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the log is shutting down");
    }
    match answer.await {
        Ok(Ok(answer)) => axum::Json(answer).into_response(),
        Ok(Err(e)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no decision, ask again: {e}"),
        ),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "no decision, ask again"),
    }
}

async fn list_rollouts(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let env = q.get("env").cloned();
    let commit = q.get("commit").cloned();
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
    match blocking(&app, move |s| {
        s.rollouts(env.as_deref(), commit.as_deref(), limit)
    })
    .await
    {
        Ok(rows) => axum::Json(json!({ "rollouts": rows })).into_response(),
        Err(r) => r,
    }
}

/// The body of `resume` and `abort`.
#[derive(serde::Deserialize)]
struct Act {
    environment: String,
    #[serde(default)]
    commit: Option<String>,
}

async fn act(app: App, headers: HeaderMap, body: Bytes, action: Action) -> Response {
    let who = match authenticate(&app, &headers).await {
        Ok(who) => who,
        Err(response) => return response,
    };
    let Some(operator) = who.strip_prefix(OPERATOR_PREFIX).map(str::to_owned) else {
        return error(
            StatusCode::FORBIDDEN,
            "only an operator may resume or abort a rollout: use a token made by `tend log token create --operator NAME`",
        );
    };
    let request: Act = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"environment\": …, \"commit\": …}}: {e}"),
            );
        }
    };
    let now = now_unix();
    match blocking(&app, move |s| {
        s.act(
            &request.environment,
            request.commit.as_deref().filter(|c| !c.is_empty()),
            action,
            &operator,
            now,
        )
    })
    .await
    {
        Ok(Ok(row)) => axum::Json(json!({ "rollout": row })).into_response(),
        Ok(Err(why)) => error(StatusCode::CONFLICT, why),
        Err(r) => r,
    }
}

async fn resume(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    act(app, headers, body, Action::Resume).await
}

async fn abort(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    act(app, headers, body, Action::Abort).await
}
