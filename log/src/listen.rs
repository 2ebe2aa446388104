//! The log's listener: the accept loop under the HTTP API, with TLS
//! (rustls), a connection cap and timeouts, so that no client, slow or
//! many, can hold the server.
//!
//! - TLS: the certificate and key are PEM files, read at start and again
//!   on SIGHUP (a renewed certificate is taken without a restart; open
//!   connections keep the one they began with). A file that does not load
//!   on SIGHUP leaves the old one in place and says so.
//! - At most `max_connections` at once. One more is turned away at once
//!   (plain HTTP: a 503 with Retry-After; TLS: closed, which agents take
//!   as "offline, keep the report") rather than queued.
//! - A TLS handshake and a request's headers must arrive within 10 s (the
//!   same clock runs while a kept-alive connection sits idle); a request
//!   with its body within 60 s (the router's own deadline).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

/// Headers (and a TLS handshake) must arrive within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections still open at shutdown get this long to finish.
const DRAIN: Duration = Duration::from_secs(30);

/// The certificate and key files, and the configuration read from them.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    config: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, String> {
        Ok(Tls {
            config: RwLock::new(Arc::new(server_config(cert, key)?)),
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Reads the files again; on failure the old configuration stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = server_config(&self.cert, &self.key)?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(
            &self.config.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|e| format!("cannot read the certificate `{}`: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "`{}` holds no certificate (PEM, `-----BEGIN CERTIFICATE-----`)",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key `{}`: {e}", key.display()))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, private)
            .map_err(|e| {
                format!(
                    "the certificate `{}` and the key `{}` do not make a TLS identity: {e}",
                    cert.display(),
                    key.display()
                )
            })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Stateless session tickets: a client coming back resumes its session
    // (no certificate signed or checked again), however large the fleet.
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Whether a server without TLS may listen here: loopback only, unless the
/// operator says a TLS-terminating proxy is in front.
pub fn check_plain(listen: SocketAddr, plain_http: bool) -> Result<(), String> {
    if listen.ip().is_loopback() || plain_http {
        return Ok(());
    }
    Err(format!(
        "`--listen {listen}` is not loopback: serve TLS (`--tls-cert FILE --tls-key FILE`), or pass --plain-http if a TLS-terminating proxy is in front"
    ))
}

/// Serves `router` on `listener` until `shutdown`, then lets open
/// connections finish (at most [`DRAIN`]).
pub async fn run(
    listener: TcpListener,
    router: Router,
    watches: super::parked::Handler,
    tls: Option<Arc<Tls>>,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let (stop, stopping) = watch::channel(false);
    if let Some(tls) = &tls {
        tokio::spawn(reload_on_sighup(Arc::clone(tls)));
    }
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: let some close.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tokio::spawn(turn_away(stream, tls.is_some()));
            continue;
        };
        let (router, tls, stopping) = (router.clone(), tls.clone(), stopping.clone());
        let watches = std::sync::Arc::clone(&watches);
        // The task lives as long as the connection (a watch parks it for
        // minutes): what it holds inline is kept small (a plain
        // connection's task is not sized for TLS), the handshake, the TLS
        // state and hyper's boxed apart.
        match tls {
            None => {
                tokio::spawn(async move {
                    let _permit = permit;
                    serve_connection(stream, router, watches, stopping, true).await;
                });
            }
            Some(tls) => {
                tokio::spawn(async move {
                    let _permit = permit;
                    let handshake = Box::pin(tls.acceptor().accept(stream));
                    match tokio::time::timeout(HEADER_TIMEOUT, handshake).await {
                        Ok(Ok(stream)) => {
                            let stream = Box::new(stream);
                            serve_connection(stream, router, watches, stopping, false).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 30 s; stopping anyway");
    }
}

/// One connection, HTTP/1.1, until it closes or the server stops (then
/// the request in flight finishes first).
async fn serve_connection<I>(
    io: I,
    router: Router,
    watches: super::parked::Handler,
    mut stopping: watch::Receiver<bool>,
    vectored: bool,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Watches first, parked without hyper; the rest of the connection is
    // hyper's.
    let Some((io, head_timeout)) =
        super::parked::serve(io, &watches, &mut stopping, HEADER_TIMEOUT).await
    else {
        return;
    };
    Box::pin(serve_with_hyper(
        io,
        router,
        stopping,
        vectored,
        head_timeout,
    ))
    .await;
}

async fn serve_with_hyper<I>(
    io: I,
    router: Router,
    mut stopping: watch::Receiver<bool>,
    vectored: bool,
    head_timeout: Duration,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        // A TLS stream writes no vectors: one buffer makes one record.
        .writev(vectored);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended");
            }
        }
        _ = stopping.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// One connection over the cap: plain HTTP gets a 503 it can read; TLS is
/// closed (a handshake just to refuse would cost what the cap saves).
async fn turn_away(mut stream: TcpStream, tls: bool) {
    if tls {
        return;
    }
    const BODY: &str = "{\"error\":\"the log has too many connections: try again soon\"}";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
        // Read what the client sent, so the close is not a reset that
        // loses the answer.
        let mut sink = [0u8; 4096];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

async fn reload_on_sighup(tls: Arc<Tls>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot handle SIGHUP: the certificate is read at start only");
        return;
    };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!(cert = %tls.cert.display(), "TLS certificate read again"),
            Err(e) => tracing::error!(error = %e, "kept the old TLS certificate"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_beyond_loopback_needs_to_be_asked_for() {
        let loopback: SocketAddr = "127.0.0.1:8140".parse().unwrap();
        let everywhere: SocketAddr = "0.0.0.0:8140".parse().unwrap();
        let v6: SocketAddr = "[::1]:8140".parse().unwrap();
        assert!(check_plain(loopback, false).is_ok());
        assert!(check_plain(v6, false).is_ok());
        let refused = check_plain(everywhere, false).unwrap_err();
        assert!(refused.contains("--tls-cert") && refused.contains("--plain-http"));
        assert!(check_plain(everywhere, true).is_ok());
    }

    #[test]
    fn a_certificate_that_does_not_load_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        fs_err::write(&cert, "not a certificate\n").unwrap();
        fs_err::write(&key, "not a key\n").unwrap();
        let error = Tls::load(&cert, &key).err().unwrap();
        assert!(error.contains("cert.pem"), "{error}");
    }
}
