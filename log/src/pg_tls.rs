//! TLS to PostgreSQL with rustls (no OpenSSL in the build), honouring the
//! URL's `sslmode` as libpq does:
//!
//! - `disable`: plain; `prefer` (the default): TLS when the server offers
//!   it, the certificate not checked; `require`: TLS or no connection,
//!   the certificate not checked;
//! - `verify-full`: TLS, the certificate checked against the system's
//!   roots (or `sslrootcert=FILE`) and the server's name.
//!
//! `verify-ca` (the chain but not the name) is refused: use `verify-full`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The system's trusted roots on Debian (the ca-certificates package).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The URL the client library takes (`verify-full` becomes `require`, the
/// checking being ours; `sslrootcert` is ours) and the connector for it.
pub fn connector(url: &str) -> Result<(String, MakeRustls), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = "prefer".to_owned();
    let mut root_file = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => mode = value.to_owned(),
            Some(("sslrootcert", value)) => root_file = Some(value.to_owned()),
            _ => kept.push(pair.to_owned()),
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let (client_mode, config) = match mode.as_str() {
        "disable" | "prefer" | "require" => (
            mode.clone(),
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
        ),
        "verify-full" => {
            let mut roots = RootCertStore::empty();
            let files: Vec<&str> = match &root_file {
                Some(file) => vec![file.as_str()],
                None => vec![SYSTEM_ROOTS],
            };
            for file in files {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
                    .and_then(Iterator::collect)
                    .map_err(|e| format!("cannot read the CA certificates `{file}`: {e}"))?;
                roots.add_parsable_certificates(certs);
            }
            if roots.is_empty() {
                return Err("sslmode=verify-full: no CA certificate to check the server against (give sslrootcert=FILE)".into());
            }
            (
                "require".to_owned(),
                builder.with_root_certificates(roots).with_no_client_auth(),
            )
        }
        "verify-ca" => {
            return Err(
                "sslmode=verify-ca is not supported: use sslmode=verify-full (the server's name checked too)"
                    .into(),
            );
        }
        other => {
            return Err(format!(
                "sslmode=`{other}` is none of disable, prefer, require, verify-full"
            ));
        }
    };
    kept.push(format!("sslmode={client_mode}"));
    Ok((
        format!("{base}?{}", kept.join("&")),
        MakeRustls(Arc::new(config)),
    ))
}

/// `require` and `prefer` encrypt without checking whom to: what libpq
/// does, and what those modes promise.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[derive(Clone)]
pub struct MakeRustls(Arc<ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnect {
            name,
            connector: tokio_rustls::TlsConnector::from(Arc::clone(&self.0)),
        })
    }
}

pub struct RustlsConnect {
    name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            self.connector
                .connect(self.name, stream)
                .await
                .map(|s| RustlsStream(Box::new(s)))
        })
    }
}

pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_read_from_the_url() {
        let (url, _) = connector("postgres://u@db:5432/tend?sslmode=require").unwrap();
        assert_eq!(url, "postgres://u@db:5432/tend?sslmode=require");
        let (url, _) = connector("postgres://u@db/tend").unwrap();
        assert_eq!(url, "postgres://u@db/tend?sslmode=prefer");
        assert!(connector("postgres://u@db/tend?sslmode=verify-ca").is_err());
        assert!(connector("postgres://u@db/tend?sslmode=sometimes").is_err());
        assert!(
            connector("postgres://u@db/tend?sslmode=verify-full&sslrootcert=/nonexistent").is_err()
        );
    }
}
