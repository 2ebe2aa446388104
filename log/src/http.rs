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
use axum::extract::{DefaultBodyLimit, Extension, Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::dashboard;
use super::identity::{self, Identity, Kind};
use super::metrics::Metrics;
use super::mirror::Mirror;
use super::rollouts::{Action, History};
use super::sql::StoreError;
use super::store::{Incoming, Question, ReportQuery, Store, Stored, word};
use super::{ServeOptions, now_unix, store};
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
    /// When each token was last used, written to the store now and then.
    last_use: Arc<std::sync::Mutex<HashMap<i64, i64>>>,
    /// `/metrics` without a token.
    public_metrics: bool,
    /// Served over TLS: session cookies are `Secure`.
    secure_cookies: bool,
    /// The hosts' watches held here.
    watches: Arc<super::watches::Watches>,
    /// Wakes for the watches held here and on the other servers.
    fanout: Arc<super::fanout::Fanout>,
}

pub async fn serve(store: Arc<dyn Store>, options: &ServeOptions) -> anyhow::Result<()> {
    let tls = match &options.tls {
        Some((cert, key)) => Some(Arc::new(
            super::listen::Tls::load(cert, key).map_err(anyhow::Error::msg)?,
        )),
        None => {
            super::listen::check_plain(options.listen, options.plain_http)
                .map_err(anyhow::Error::msg)?;
            if !options.listen.ip().is_loopback() {
                tracing::warn!(listen = %options.listen, "serving plain HTTP beyond loopback (--plain-http): tokens and reports cross the network in clear unless a TLS proxy is in front");
            }
            None
        }
    };
    let (writes, queue) = mpsc::channel(options.max_waiting);
    let writer_store = Arc::clone(&store);
    let notifier = options
        .notify
        .clone()
        .map(|url| super::notify::Notifier::start(url, options.notify_window));
    let writer_notifier = notifier.clone();
    let counters = Arc::new(Metrics::default());
    let writer_metrics = Arc::clone(&counters);
    let writer = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            write_batches(
                &*writer_store,
                queue,
                writer_notifier.as_ref(),
                &writer_metrics,
            )
        })?;
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
    let (admissions, admit_queue) = mpsc::channel(options.max_waiting);
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
        let poll = options.source_poll.max(std::time::Duration::from_secs(1));
        std::thread::Builder::new()
            .name("log-fetcher".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(poll);
                    if let Err(e) = mirror.fetch() {
                        tracing::warn!(error = %e, "cannot fetch the source");
                    }
                }
            })?;
        tokio::spawn(tick_forever(Arc::clone(&store), notifier.clone()));
    }
    let watches: Arc<super::watches::Watches> = Arc::default();
    let fanout =
        super::fanout::Fanout::start(Arc::clone(&store), Arc::clone(&watches), mirror.clone())?;
    let app = App {
        store,
        writes,
        admissions,
        mirror,
        metrics: counters,
        notifier,
        last_use: Arc::default(),
        public_metrics: options.public_metrics,
        secure_cookies: options.tls.is_some(),
        watches,
        fanout,
    };
    tokio::spawn(record_use_forever(
        Arc::clone(&app.store),
        Arc::clone(&app.last_use),
    ));
    let router = Router::new()
        .route("/", get(dashboard_home))
        .route("/commits/{commit}", get(dashboard_commit))
        .route("/commits/{commit}/runs", get(dashboard_commit_runs))
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
        .route("/v1/source", get(source_head))
        .route("/v1/watch", get(watch))
        .route("/v1/wake", post(wake))
        .route("/v1/source/notify", post(source_notify))
        .route("/hosts/{host}", get(dashboard_host))
        .route("/grafana", get(grafana_health))
        .route("/grafana/annotations", post(grafana_annotations))
        .route("/grafana/search", post(grafana_search))
        .route("/grafana/query", post(grafana_query))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route(
            "/v1/enroll",
            post(enroll).layer(DefaultBodyLimit::max(ENROLL_BODY_LIMIT)),
        )
        .layer(DefaultBodyLimit::max(options.body_limit))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .layer(middleware::from_fn(deadline))
        .layer(middleware::from_fn(security_headers))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, tls = tls.is_some(), "log server listening");
    let watches = parked_watches(app);
    super::listen::run(
        listener,
        router,
        watches,
        tls,
        options.max_connections,
        shutdown(),
    )
    .await;
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
    metrics: &Metrics,
) {
    while let Some(batch) = next_batch(&mut queue) {
        let (items, replies): (Vec<Incoming>, Vec<Reply>) = batch.into_iter().unzip();
        match store.insert(&items) {
            Ok(inserted) => {
                for lead in &inserted.reached {
                    metrics.reached(*lead);
                }
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
/// How often time is let decide (deadlines, soaks) with no question or
/// report to do it.
const TICK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

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

/// Seconds a sender is told to wait when a queue is full.
const RETRY_AFTER_S: u64 = 5;

/// A 503 with Retry-After: the store failed this time (a database
/// restarting, a lock held too long).
fn try_again(message: String) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
    response
}

/// A full queue (or a stopping server): 503 with Retry-After, so that
/// waiting senders never pile up in memory.
fn busy<T>(why: &mpsc::error::TrySendError<T>) -> Response {
    let message = match why {
        mpsc::error::TrySendError::Full(_) => "the log is busy: try again shortly",
        mpsc::error::TrySendError::Closed(_) => "the log is shutting down",
    };
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
    response
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

/// What a route needs of whoever asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Signing in, and enrolling (which carries a join token of its own).
    Anyone,
    /// A host's token: its own reports and rollout questions.
    Host,
    /// A viewer's or an operator's token, or a browser session.
    Reader,
    /// An operator's token: resume, abort.
    Operator,
}

fn access(method: &Method, path: &str, public_metrics: bool) -> Access {
    match (method.as_str(), path) {
        ("POST", "/v1/reports" | "/v1/rollouts/admit") | ("GET", "/v1/watch") => Access::Host,
        (
            "POST",
            "/v1/rollouts/resume" | "/v1/rollouts/abort" | "/v1/source/notify" | "/v1/wake",
        ) => Access::Operator,
        ("GET" | "POST", "/login") | ("POST", "/logout" | "/v1/enroll") => Access::Anyone,
        ("GET", "/metrics") if public_metrics => Access::Anyone,
        _ => Access::Reader,
    }
}

/// The dashboard's pages (a browser without a session is sent to sign in),
/// as against the API (which answers 401).
fn is_page(path: &str) -> bool {
    !path.starts_with("/v1/") && path != "/metrics" && !path.starts_with("/grafana")
}

/// The session cookie's name.
const COOKIE: &str = "tend_session";

/// Bodies of `POST /v1/enroll` are small.
const ENROLL_BODY_LIMIT: usize = 4096;

/// The bearer token of a request: `None` without the header, an error when
/// the header is not `Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<Result<String, Response>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    Some(if token.is_empty() {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "the Authorization header is not `Bearer <token>`",
        ))
    } else {
        Ok(token.to_owned())
    })
}

/// The session cookie's secret, if the request carries one.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Who sent a request: by its bearer token, else (for reading pages and
/// signing out: never for a write) by its session cookie.
async fn identify(
    app: &App,
    bearer: Option<Result<String, Response>>,
    cookie: Option<String>,
) -> Result<Option<Identity>, Response> {
    let now = now_unix();
    if let Some(token) = bearer {
        let token = token?;
        let found = blocking(app, move |s| {
            store::read(s, |sql| identity::authenticate(sql, &token, now))
        })
        .await?;
        return match found {
            Ok(who) => Ok(Some(who)),
            Err(denied) => Err(error(StatusCode::UNAUTHORIZED, denied.to_string())),
        };
    }
    match cookie {
        Some(secret) => {
            blocking(app, move |s| {
                store::read(s, |sql| identity::session(sql, &secret, now))
            })
            .await
        }
        None => Ok(None),
    }
}

/// Every request passes here before its body is read: who sent it, and
/// may they do this? A refusal costs a header's worth of reading, never a
/// body's.
async fn guard(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let need = access(request.method(), &path, app.public_metrics);
    if need == Access::Anyone {
        return next.run(request).await;
    }
    let by_cookie = request.method() == Method::GET || path == "/logout";
    let cookie = session_cookie(request.headers()).filter(|_| by_cookie);
    let who = match identify(&app, bearer(request.headers()), cookie).await {
        Ok(Some(who)) => who,
        Ok(None) if is_page(&path) && request.method() == Method::GET => {
            let next_page = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            return see_other(&format!("/login?next={}", percent_encode(&next_page)));
        }
        Ok(None) => {
            app.metrics.refused();
            return error(StatusCode::UNAUTHORIZED, no_token(need));
        }
        Err(response) => {
            app.metrics.refused();
            return response;
        }
    };
    if let Some(refused) = permit(&app, need, &who) {
        return refused;
    }
    request.extensions_mut().insert(who);
    next.run(request).await
}

/// The 403 saying why `who` may not do what needs `need`; none when it
/// may (its token's use is noted).
fn permit(app: &App, need: Access, who: &Identity) -> Option<Response> {
    if let Some(why) = refusal(need, who) {
        app.metrics.refused();
        return Some(error(StatusCode::FORBIDDEN, why));
    }
    app.last_use
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(who.id, now_unix());
    None
}

/// Why a request without a token is refused.
fn no_token(need: Access) -> &'static str {
    match need {
        Access::Host => {
            "no token: send `Authorization: Bearer <token>` (`tend log token create HOST --env ENV` or `tend log enroll create` makes one)"
        }
        _ => {
            "no token: send `Authorization: Bearer <token>` with a viewer's or operator's token (`tend log token create --viewer NAME`), or sign in at /login"
        }
    }
}

/// Why `who` may not do what needs `need`, if so.
fn refusal(need: Access, who: &Identity) -> Option<String> {
    match need {
        Access::Host if who.kind != Kind::Host => Some(format!(
            "this is {}'s token ({}); hosts report and ask with their own",
            who.name,
            who.kind.word()
        )),
        Access::Reader if !who.reads() => Some(format!(
            "this is the host token of `{}`: it reports and asks the gate, and reads nothing; read with a viewer's token (`tend log token create --viewer NAME`)",
            who.name
        )),
        Access::Operator if who.kind != Kind::Operator => Some(
            "only an operator may resume or abort a rollout: use a token made by `tend log token create --operator NAME`".to_owned(),
        ),
        _ => None,
    }
}

/// A host's write is about itself, in its own environment; else why not
/// (a 403).
fn bound(who: &Identity, host: &str, environment: &str, doing: &str) -> Result<(), String> {
    if who.name != host {
        return Err(format!(
            "this token is `{}`'s; it cannot {doing} for `{host}`",
            who.name
        ));
    }
    match &who.environment {
        None => Err(format!(
            "the token of `{host}` is bound to no environment (it was made before tokens were); make a new one: `tend log token create {host} --env ENV --replace`"
        )),
        Some(bound) if bound != environment => Err(format!(
            "the token of `{host}` is for the environment `{bound}`; it cannot {doing} for `{environment}`"
        )),
        Some(_) => Ok(()),
    }
}

/// Writes down, every 30 s, which tokens were used and when (not on
/// every request: that would be a write per report).
/// (It holds the store and the map, not the app: the app's queues must
/// close at shutdown for the writer to finish.)
async fn record_use_forever(
    store: Arc<dyn Store>,
    last_use: Arc<std::sync::Mutex<HashMap<i64, i64>>>,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
    loop {
        every.tick().await;
        let used: Vec<(i64, i64)> =
            std::mem::take(&mut *last_use.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .collect();
        if used.is_empty() {
            continue;
        }
        let store = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || {
            store::write(&*store, |sql| identity::touch(sql, &used))
        })
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot record when tokens were used"),
            Err(e) => tracing::warn!(error = %e, "cannot record when tokens were used"),
        }
    }
}

/// The headers every answer carries: no scripts, no framing, no sniffing.
async fn security_headers(request: Request, next: Next) -> Response {
    with_security_headers(next.run(request).await)
}

fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// How long one request may take, its body included.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A request that takes longer than [`REQUEST_TIMEOUT`] (a body sent a
/// byte at a time) is answered 408 and its connection closed.
async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = error(
                StatusCode::REQUEST_TIMEOUT,
                "the request took longer than 60 s",
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response()
}

/// Percent-encodes everything but unreserved characters and `/`.
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where to go after signing in: a path on this server, never another site.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_owned(),
        _ => "/".to_owned(),
    }
}

async fn login_page(Query(q): Query<HashMap<String, String>>) -> Response {
    html(dashboard::login(
        None,
        &local_path(q.get("next").map(String::as_str)),
    ))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// Signs a browser in with a viewer's or operator's token: a session
/// cookie (HttpOnly, SameSite=Strict, Secure under TLS) kept in the store,
/// so that any log server on the same database knows it.
async fn login(State(app): State<App>, Form(form): Form<LoginForm>) -> Response {
    let next = local_path(form.next.as_deref());
    let token = form.token.trim().to_owned();
    let now = now_unix();
    let refused = |status: StatusCode, why: String| {
        app.metrics.refused();
        (status, html(dashboard::login(Some(&why), &next))).into_response()
    };
    if token.is_empty() {
        return refused(StatusCode::UNAUTHORIZED, "no token given".into());
    }
    let opened = blocking(&app, move |s| {
        store::write(s, |sql| {
            Ok(match identity::authenticate(sql, &token, now)? {
                Ok(who) if who.reads() => Ok(identity::open_session(sql, &who, now)?),
                Ok(who) => Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "that is the host token of `{}`; sign in with a viewer's or operator's",
                        who.name
                    ),
                )),
                Err(denied) => Err((StatusCode::UNAUTHORIZED, denied.to_string())),
            })
        })
    })
    .await;
    match opened {
        Ok(Ok(secret)) => {
            let secure = if app.secure_cookies { "; Secure" } else { "" };
            let mut response = see_other(&next);
            if let Ok(value) = HeaderValue::from_str(&format!(
                "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                identity::SESSION_SECONDS
            )) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Ok(Err((status, why))) => refused(status, why),
        Err(response) => response,
    }
}

/// Ends the browser's session.
async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(secret) = session_cookie(&headers)
        && let Err(response) = blocking(&app, move |s| {
            store::write(s, |sql| identity::close_session(sql, &secret))
        })
        .await
    {
        return response;
    }
    let mut response = see_other("/login");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("tend_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// The body of `POST /v1/enroll`.
#[derive(serde::Deserialize)]
struct Enroll {
    host: String,
    environment: String,
}

/// A host exchanges a join token (its bearer) for a host token of its own.
async fn enroll(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let join_token = match bearer(&headers) {
        Some(Ok(token)) => token,
        Some(Err(response)) => return response,
        None => {
            return error(
                StatusCode::UNAUTHORIZED,
                "no join token: send `Authorization: Bearer <join token>` (`tend log enroll create` makes one)",
            );
        }
    };
    let request: Enroll = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"host\": …, \"environment\": …}}: {e}"),
            );
        }
    };
    let now = now_unix();
    let (host, environment) = (request.host.clone(), request.environment.clone());
    match blocking(&app, move |s| {
        store::write(s, |sql| {
            identity::enroll(sql, &join_token, &host, &environment, now)
        })
    })
    .await
    {
        Ok(Ok(enrolled)) => {
            tracing::info!(host = %request.host, environment = %request.environment, rebuilt = enrolled.rebuilt, "host enrolled");
            (
                StatusCode::CREATED,
                axum::Json(json!({
                    "host": request.host,
                    "environment": request.environment,
                    "token": enrolled.token,
                    "rebuilt": enrolled.rebuilt,
                })),
            )
                .into_response()
        }
        Ok(Err(why)) => {
            app.metrics.refused();
            tracing::warn!(host = %request.host, environment = %request.environment, reason = %why, "enrollment refused");
            error(StatusCode::FORBIDDEN, why)
        }
        Err(response) => response,
    }
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

async fn post_report(
    State(app): State<App>,
    Extension(who): Extension<Identity>,
    body: Bytes,
) -> Response {
    let arrived = std::time::Instant::now();
    let refuse = |response: Response| {
        app.metrics.refused();
        response
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
    if let Err(why) = bound(&who, &report.host, &report.environment, "report") {
        return refuse(error(StatusCode::FORBIDDEN, why));
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
    if let Err(full) = app.writes.try_send((incoming, reply)) {
        return busy(&full);
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
        Ok(Err(e)) => try_again(format!("not stored, try again: {e}")),
        Err(_) => try_again("not stored, try again".to_owned()),
    }
}

/// A changed, drifted, failed or refusing real run, for the chat webhook.
fn notable(report: &Report) -> Option<super::notify::Event> {
    use crate::report::{RunMode, Status};
    if report.mode == RunMode::Apply
        && let Some(rejected) = &report.rejected
    {
        let rev = &rejected.revision;
        return Some(super::notify::Event {
            host: report.host.clone(),
            status: "refused".to_owned(),
            commit: Some(rev.commit.clone()),
            author: Some(rev.author.clone()),
            subject: Some(rev.subject.clone()),
            failure: Some(
                rejected
                    .errors
                    .first()
                    .cloned()
                    .unwrap_or_else(|| rejected.reason.clone()),
            ),
        });
    }
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

/// The hosts, each with when it last enrolled again as a rebuilt host.
fn hosts_with_enrollments(
    store: &dyn Store,
    now: i64,
) -> Result<Vec<super::store::HostRow>, StoreError> {
    let mut hosts = store.hosts(now)?;
    let again: HashMap<String, i64> = store::read(store, identity::re_enrolled)?
        .into_iter()
        .collect();
    for h in &mut hosts {
        h.re_enrolled_unix = again.get(&h.host).copied();
    }
    Ok(hosts)
}

/// `{"<key>": [rows]}`, serialised straight from the rows (not through a
/// JSON tree: for a thousand hosts that was most of the answer's time).
fn listed<T: serde::Serialize>(key: &'static str, rows: &[T]) -> Response {
    struct Listed<'a, T>(&'static str, &'a [T]);
    impl<T: serde::Serialize> serde::Serialize for Listed<'_, T> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap as _;
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry(self.0, self.1)?;
            map.end()
        }
    }
    axum::Json(Listed(key, rows)).into_response()
}

async fn hosts(State(app): State<App>) -> Response {
    match blocking(&app, |s| hosts_with_enrollments(s, now_unix())).await {
        Ok(rows) => listed("hosts", &rows),
        Err(r) => r,
    }
}

async fn commits(State(app): State<App>, Query(q): Query<HashMap<String, String>>) -> Response {
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
    let now = now_unix();
    match blocking(&app, move |s| Ok((s.commits(limit, None)?, s.hosts(now)?))).await {
        Ok((mut rows, hosts)) => {
            super::store::fill_pending(&mut rows, &hosts);
            if let Err(r) = with_source(&app, &mut rows).await {
                return r;
            }
            listed("commits", &rows)
        }
        Err(r) => r,
    }
}

/// Overlays the source's word on commits (see [`store::from_source`]).
async fn with_source(app: &App, rows: &mut [store::CommitRow]) -> Result<(), Response> {
    let Some(mirror) = app.mirror.clone() else {
        return Ok(());
    };
    let wanted: Vec<String> = rows.iter().map(|c| c.commit.clone()).collect();
    let revisions = tokio::task::spawn_blocking(move || {
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        mirror.revisions(&wanted)
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    store::from_source(rows, &revisions);
    Ok(())
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
        Ok((
            s.commits(50, None)?,
            hosts_with_enrollments(s, now)?,
            s.rollouts(None, None, 20)?,
            store::read(s, |db| super::hourly::since(db, now.div_euclid(3600) - 167))?,
        ))
    })
    .await
    {
        Ok((mut commits, hosts, rollouts, hours)) => {
            super::store::fill_pending(&mut commits, &hosts);
            if let Err(r) = with_source(&app, &mut commits).await {
                return r;
            }
            html(dashboard::home(&commits, &hosts, &rollouts, &hours, now))
        }
        Err(r) => r,
    }
}

/// How many runs of a commit its page reads, and how many hosts' first
/// changing runs it groups (each a report body to parse).
const COMMIT_PAGE_RUNS: usize = 1000;
const COMMIT_PAGE_BODIES: usize = 200;

/// What a commit's page is made of, read in one blocking task.
struct CommitData {
    runs: Vec<store::ReportRow>,
    more_runs: bool,
    rollouts: Vec<super::rollouts::RolloutRow>,
    waves: HashMap<String, u32>,
    refusal: Option<serde_json::Value>,
    first_changes: Vec<crate::report::Report>,
    changed_hosts: usize,
    latest: Vec<crate::report::Report>,
    pending: Vec<String>,
    /// Its row of the deploy log: who made it and when, as its hosts said.
    row: Option<store::CommitRow>,
}

fn commit_data(s: &dyn Store, commit: &str) -> Result<CommitData, StoreError> {
    let query = ReportQuery {
        commit: Some(commit.to_owned()),
        limit: COMMIT_PAGE_RUNS,
        ..ReportQuery::default()
    };
    let page = s.reports(&query)?;
    let more_runs = page.next_cursor.is_some();
    let runs = page.reports;
    let rollouts = s.rollouts(None, Some(commit), 20)?;
    let mut waves = HashMap::new();
    for r in rollouts.iter().filter(|r| r.commit == commit) {
        waves.extend(store::read(s, |db| super::rollouts::waves(db, r.id))?);
    }
    let body = |id: &str| -> Result<Option<crate::report::Report>, StoreError> {
        Ok(s.report(id)?
            .and_then(|b| serde_json::from_str::<crate::report::Report>(&b).ok()))
    };
    let refusal = match runs
        .iter()
        .find(|r| r.refused_commit.as_deref() == Some(commit))
    {
        Some(r) => body(&r.id)?
            .and_then(|report| report.rejected)
            .and_then(|rejected| serde_json::to_value(rejected).ok()),
        None => None,
    };
    // What the commit did on each host: its earliest run of the commit
    // that changed something (runs come newest first). The runs read
    // already hold them unless the commit has more.
    let eventful;
    let changing_runs = if more_runs {
        eventful = s.reports(&ReportQuery {
            eventful: true,
            ..query.clone()
        })?;
        &eventful.reports
    } else {
        &runs
    };
    let mut first_changing: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in changing_runs.iter().rev() {
        if r.changed > 0 && r.commit.as_deref() == Some(commit) && seen.insert(r.host.as_str()) {
            first_changing.push(&r.id);
        }
    }
    let changed_hosts = first_changing.len();
    first_changing.truncate(COMMIT_PAGE_BODIES);
    // Failures standing: each host's latest run, when it failed.
    let mut latest_seen = std::collections::HashSet::new();
    let mut failing: Vec<&str> = Vec::new();
    for r in &runs {
        if latest_seen.insert(r.host.as_str()) && r.failed > 0 {
            failing.push(&r.id);
        }
    }
    failing.truncate(COMMIT_PAGE_BODIES);
    let parse = |bodies: Vec<String>| -> Vec<crate::report::Report> {
        bodies
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect()
    };
    let first_changes = parse(store::read(s, |db| store::bodies(db, &first_changing))?);
    let latest = parse(store::read(s, |db| store::bodies(db, &failing))?);
    // Pending: when this is the newest commit its environments' hosts run,
    // the hosts of those environments on another one (and not refusing it).
    let environments: std::collections::HashSet<&str> =
        runs.iter().map(|r| r.environment.as_str()).collect();
    let hosts = s.hosts(now_unix())?;
    let commits = s.commits(50, None)?;
    let order: HashMap<&str, usize> = commits
        .iter()
        .enumerate()
        .map(|(i, c)| (c.commit.as_str(), i))
        .collect();
    let mut pending = Vec::new();
    for env in environments {
        let in_env: Vec<&store::HostRow> = hosts.iter().filter(|h| h.environment == env).collect();
        let newest = in_env
            .iter()
            .filter_map(|h| h.commit.as_deref())
            .min_by_key(|c| order.get(c).copied().unwrap_or(usize::MAX));
        if newest == Some(commit) {
            pending.extend(
                in_env
                    .iter()
                    .filter(|h| h.commit.as_deref() != Some(commit) && h.status != "refused")
                    .map(|h| h.host.clone()),
            );
        }
    }
    pending.sort();
    let row = match commits.iter().find(|c| c.commit == commit) {
        Some(c) => Some(c.clone()),
        None => s.commits(1, Some(commit))?.pop(),
    };
    Ok(CommitData {
        row,
        runs,
        more_runs,
        rollouts,
        waves,
        refusal,
        first_changes,
        changed_hosts,
        latest,
        pending,
    })
}

async fn dashboard_commit(State(app): State<App>, Path(commit): Path<String>) -> Response {
    let exact = commit.clone();
    let data = match blocking(&app, move |s| commit_data(s, &exact)).await {
        Ok(d) if d.runs.is_empty() && d.rollouts.is_empty() => {
            return error(StatusCode::NOT_FOUND, "no report of that commit");
        }
        Ok(d) => d,
        Err(r) => return r,
    };
    // The source is the authority on the commit; a host's word is shown
    // (and said to be) only when the log has no copy of it.
    let mut row = data.row.clone();
    let change = match app.mirror.clone() {
        Some(mirror) => {
            let c = commit.clone();
            let read = tokio::task::spawn_blocking(move || {
                // The change first: it fetches a commit the mirror lacks.
                let change = mirror.change(&c).map_err(|e| e.to_string());
                (mirror.revisions(&[c.as_str()]), change)
            })
            .await;
            match read {
                Ok((revisions, change)) => {
                    if let Some(r) = row.as_mut() {
                        store::from_source(std::slice::from_mut(r), &revisions);
                    }
                    Some(change)
                }
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        None => None,
    };
    let effects = super::effect::group(&data.first_changes);
    let failures = super::effect::failures(&data.latest);
    html(dashboard::commit(&dashboard::CommitView {
        commit: &commit,
        row: row.as_ref(),
        change,
        runs: &data.runs,
        more_runs: data.more_runs,
        effects: &effects,
        effects_read: data.first_changes.len(),
        effects_of: data.changed_hosts,
        failures: &failures,
        rollouts: &data.rollouts,
        waves: &data.waves,
        refusal: data.refusal.as_ref(),
        pending: &data.pending,
    }))
}

async fn dashboard_commit_runs(State(app): State<App>, Path(commit): Path<String>) -> Response {
    let query = ReportQuery {
        commit: Some(commit.clone()),
        limit: COMMIT_PAGE_RUNS,
        ..ReportQuery::default()
    };
    match blocking(&app, move |s| s.reports(&query)).await {
        Ok(page) if page.reports.is_empty() => {
            error(StatusCode::NOT_FOUND, "no report of that commit")
        }
        Ok(page) => html(dashboard::commit_runs(
            &commit,
            &page.reports,
            page.next_cursor.is_some(),
        )),
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

async fn admit(
    State(app): State<App>,
    Extension(who): Extension<Identity>,
    body: Bytes,
) -> Response {
    let request: AdmitRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not an admission request: {e}"),
            );
        }
    };
    if let Err(why) = bound(&who, &request.host, &request.environment, "ask") {
        app.metrics.refused();
        return error(StatusCode::FORBIDDEN, why);
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
    if let Err(full) = app.admissions.try_send((question, reply)) {
        return busy(&full);
    }
    match answer.await {
        Ok(Ok(answer)) => axum::Json(answer).into_response(),
        Ok(Err(e)) => try_again(format!("no decision, ask again: {e}")),
        Err(_) => try_again("no decision, ask again".to_owned()),
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
        Ok(rows) => listed("rollouts", &rows),
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

async fn act(app: App, who: Identity, body: Bytes, action: Action) -> Response {
    let operator = who.name;
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

/// `GET /v1/source`: the ref the log follows, its commit as last fetched
/// and when.
async fn source_head(State(app): State<App>) -> Response {
    let Some(mirror) = &app.mirror else {
        return error(
            StatusCode::NOT_FOUND,
            "this log follows no source (--source)",
        );
    };
    axum::Json(head_json(mirror)).into_response()
}

fn head_json(mirror: &Mirror) -> serde_json::Value {
    let (reference, commit, fetched_at) = mirror.head();
    serde_json::json!({
        "ref": reference,
        "commit": commit,
        "fetched_at": fetched_at.map(super::clock::rfc3339),
    })
}

#[derive(serde::Deserialize)]
struct WatchQuery {
    /// The commit the host has: the watch answers when the ref is elsewhere.
    after: Option<String>,
    /// Seconds to hold the request before answering "nothing yet".
    timeout: Option<u64>,
}

/// Longest a watch is held (the request deadline is 60 s): the agent asks
/// again at once, so a connection a proxy cut is noticed within this.
const WATCH_HOLD: u64 = 50;

/// `GET /v1/watch?after=COMMIT` (a host's token): answers as soon as the
/// ref the log follows is at another commit than `after` (at once if it
/// already is: `"why": "source"`), or an operator wakes the host (`"why":
/// "wake"`), or after `timeout` seconds with `"moved": false`. A held
/// watch costs a connection and a parked task, no thread.
async fn watch(
    State(app): State<App>,
    Extension(who): Extension<Identity>,
    Query(q): Query<WatchQuery>,
) -> Response {
    watch_answer(app, who, q).await
}

/// The watches the listener parks outside the router (see `parked`): the
/// guard's checks for a host's request, then the same answer with the
/// same headers.
fn parked_watches(app: App) -> super::parked::Handler {
    Arc::new(move |request: Request| {
        let app = app.clone();
        Box::pin(async move { with_security_headers(parked_watch(app, request).await) })
    })
}

async fn parked_watch(app: App, request: Request) -> Response {
    let who = match identify(&app, bearer(request.headers()), None).await {
        Ok(Some(who)) => who,
        Ok(None) => {
            app.metrics.refused();
            return error(StatusCode::UNAUTHORIZED, no_token(Access::Host));
        }
        Err(response) => {
            app.metrics.refused();
            return response;
        }
    };
    if let Some(refused) = permit(&app, Access::Host, &who) {
        return refused;
    }
    match Query::<WatchQuery>::try_from_uri(request.uri()) {
        Ok(Query(q)) => {
            drop(request);
            watch_answer(app, who, q).await
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn watch_answer(app: App, who: Identity, q: WatchQuery) -> Response {
    let Some(mirror) = &app.mirror else {
        return error(
            StatusCode::NOT_FOUND,
            "this log follows no source (--source)",
        );
    };
    let environment = who.environment.clone().unwrap_or_default();
    let mut held = app.watches.hold(&who.name, &environment);
    let mut heads = mirror.subscribe();
    let hold = std::time::Duration::from_secs(q.timeout.unwrap_or(WATCH_HOLD).clamp(1, WATCH_HOLD));
    let after = q.after.filter(|a| !a.is_empty());
    let answered = tokio::time::timeout(hold, async {
        loop {
            let head = heads.borrow_and_update().clone();
            if let Some(head) = head.as_ref().filter(|h| Some(*h) != after.as_ref()) {
                return ("source", Some(head.clone()));
            }
            tokio::select! {
                changed = heads.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                wake = held.wakes.recv() => match wake {
                    Ok(wake) if wake.includes(&who.name, &environment) => {
                        return (wake.why.as_str(), head);
                    }
                    // Wakes came faster than this watch read them: one of
                    // them may have been for it, and a cycle for nothing
                    // costs less than a wake lost.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        return (super::watches::Why::Rollout.as_str(), head);
                    }
                    _ => {}
                },
            }
        }
    })
    .await;
    match answered {
        Ok((why, commit)) => {
            axum::Json(json!({ "moved": true, "commit": commit, "why": why })).into_response()
        }
        Err(_) => axum::Json(json!({ "moved": false, "commit": after })).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct WakeRequest {
    environment: String,
    #[serde(rename = "match")]
    pattern: Option<String>,
}

/// `POST /v1/wake` (an operator's token): the hosts of an environment
/// (whose names match `match`) that hold a watch on this server run a
/// cycle now, each after its jitter. Answers how many were woken.
async fn wake(State(app): State<App>, body: Bytes) -> Response {
    let request: WakeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not {{\"environment\": …, \"match\": …}}: {e}"),
            );
        }
    };
    let pattern = match request
        .pattern
        .as_deref()
        .map(glob::Pattern::new)
        .transpose()
    {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`match` is not a glob: {e}"),
            );
        }
    };
    // Off the event loop: telling the other servers is a database call.
    let (fanout, environment) = (Arc::clone(&app.fanout), request.environment.clone());
    let woken = match tokio::task::spawn_blocking(move || {
        fanout.wake(
            &environment,
            super::watches::Who::Matching(pattern),
            super::watches::Why::Wake,
        )
    })
    .await
    {
        Ok(woken) => woken,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    tracing::info!(environment = %request.environment, woken, "hosts woken");
    axum::Json(json!({ "environment": request.environment, "woken": woken })).into_response()
}

/// `POST /v1/source/notify` (an operator's token): the ref moved, fetch it
/// now rather than at the next poll. For a git server's post-receive hook
/// or a forge's push webhook; the body is ignored, since the log believes
/// its own fetch, not the caller. Answers once fetched, with the commit.
async fn source_notify(State(app): State<App>) -> Response {
    let Some(mirror) = app.mirror.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "this log follows no source (--source)",
        );
    };
    let fetching = Arc::clone(&mirror);
    match tokio::task::spawn_blocking(move || fetching.fetch()).await {
        Ok(Ok(_)) => axum::Json(head_json(&mirror)).into_response(),
        Ok(Err(e)) => error(
            StatusCode::BAD_GATEWAY,
            format!("cannot fetch the source: {e}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn resume(
    State(app): State<App>,
    Extension(who): Extension<Identity>,
    body: Bytes,
) -> Response {
    act(app, who, body, Action::Resume).await
}

async fn abort(
    State(app): State<App>,
    Extension(who): Extension<Identity>,
    body: Bytes,
) -> Response {
    act(app, who, body, Action::Abort).await
}

async fn dashboard_host(State(app): State<App>, Path(host): Path<String>) -> Response {
    let query = ReportQuery {
        host: Some(host.clone()),
        limit: 200,
        ..ReportQuery::default()
    };
    let now = now_unix();
    let name = host.clone();
    match blocking(&app, move |s| {
        let page = s.reports(&query)?;
        let row = hosts_with_enrollments(s, now)?
            .into_iter()
            .find(|h| h.host == name);
        Ok((page, row))
    })
    .await
    {
        Ok((page, None)) if page.reports.is_empty() => {
            error(StatusCode::NOT_FOUND, "no report of that host")
        }
        Ok((page, row)) => html(dashboard::host(&host, row.as_ref(), &page.reports)),
        Err(r) => r,
    }
}

// --- Grafana ------------------------------------------------------------
//
// Deploy marks on any Grafana graph, through Grafana's JSON data source
// (the simpod-json-datasource plugin, and the older SimpleJSON): its URL
// is `https://LOG/grafana`, with the header `Authorization: Bearer
// <viewer token>`. `GET /grafana` answers its connection test,
// `POST /grafana/annotations` the commits applied in the dashboard's
// time range, each a region from its first host to its last.

async fn grafana_health() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// The part of Grafana's annotation request that is read.
#[derive(serde::Deserialize)]
struct AnnotationRequest {
    range: GrafanaRange,
    #[serde(default)]
    annotation: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct GrafanaRange {
    from: String,
    to: String,
}

async fn grafana_annotations(State(app): State<App>, body: Bytes) -> Response {
    let request: AnnotationRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a Grafana annotation request: {e}"),
            );
        }
    };
    let (from, to) = (
        super::clock::unix(&request.range.from),
        super::clock::unix(&request.range.to),
    );
    if from == 0 || to == 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "`range.from` and `range.to` must be RFC 3339 times",
        );
    }
    match blocking(&app, |s| s.commits(1000, None)).await {
        Ok(mut commits) => {
            commits.retain(|c| {
                let first = super::clock::unix(&c.first_applied);
                let last = super::clock::unix(&c.last_applied).max(first);
                last >= from && first <= to
            });
            if let Err(r) = with_source(&app, &mut commits).await {
                return r;
            }
            let marks: Vec<serde_json::Value> = commits
                .iter()
                .map(|c| {
                    let first = super::clock::unix(&c.first_applied);
                    let last = super::clock::unix(&c.last_applied).max(first);
                    grafana_mark(c, first, last, &request.annotation)
                })
                .collect();
            axum::Json(marks).into_response()
        }
        Err(r) => r,
    }
}

/// One commit as a Grafana annotation: a region from its first host to its
/// last, titled with the commit and its author, the subject and the hosts
/// in the text.
fn grafana_mark(
    c: &super::store::CommitRow,
    first: i64,
    last: i64,
    annotation: &serde_json::Value,
) -> serde_json::Value {
    let author = c.author.as_deref().unwrap_or("?");
    let mut text = format!(
        "{}: {} hosts, {} changed, {} failed",
        c.subject.as_deref().unwrap_or(""),
        c.hosts,
        c.hosts_changed,
        c.hosts_failed
    );
    if c.hosts_refused > 0 {
        text.push_str(&format!(
            ", does not compile: refused by {} hosts",
            c.hosts_refused
        ));
    }
    json!({
        "annotation": annotation,
        "time": first * 1000,
        "timeEnd": last * 1000,
        "isRegion": last > first,
        "title": format!("commit {} by {author}", c.commit.get(..10).unwrap_or(&c.commit)),
        "text": text,
        "tags": ["tend", format!("commit:{}", c.commit), format!("author:{author}")],
    })
}

async fn grafana_search() -> Response {
    axum::Json(json!(["deploys"])).into_response()
}

/// No series of its own: the data source is for the marks.
async fn grafana_query() -> Response {
    axum::Json(json!([])).into_response()
}
