//! Long-polls parked outside hyper's connection. A fleet's agents each
//! hold a `GET /v1/watch` open all the time (SPEC §9); through hyper each
//! held request keeps the connection's read and write buffers and its
//! state, about 20 KiB, which for 10,000 hosts is 200 MiB for nothing.
//! Here the request head is read into a small buffer, freed once parsed,
//! and handed to the server's watch handler (which checks the token as
//! the router's guard does and answers with the same headers), past the
//! router's middleware, whose boxed futures would cost as much again;
//! while it waits, only the socket and that handler's future are held.
//! The connection's task stays small: TLS and hyper are boxed apart. The
//! answer is written back as HTTP/1.1 and the connection serves the next
//! watch; any other request, as soon as its first line says so, goes to
//! hyper with the bytes already read.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{self, Method, header};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::sync::watch;

/// What answers a watch taken here.
pub type Handler = std::sync::Arc<
    dyn Fn(http::Request<Body>) -> Pin<Box<dyn Future<Output = http::Response<Body>> + Send>>
        + Send
        + Sync,
>;

/// Requests whose first line starts so are taken here.
const TAKEN: &[u8] = b"GET /v1/watch";
/// The longest head taken here; a longer one goes to hyper.
const MOST_HEAD: usize = 8 * 1024;
/// The longest answer body (a watch answers a line of JSON).
const MOST_BODY: usize = 64 * 1024;

/// Serves the watches a connection begins with. Returns the connection,
/// with what was read of its next request, when that request is another
/// (for hyper; with the time its head may still take), or `None` when the
/// connection is done.
pub async fn serve<I>(
    mut io: I,
    handler: &Handler,
    stopping: &mut watch::Receiver<bool>,
    head_timeout: Duration,
) -> Option<(Rewind<I>, Duration)>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut carried: Vec<u8> = Vec::new();
    loop {
        let started = tokio::time::Instant::now();
        let mut buf = std::mem::take(&mut carried);
        buf.reserve(512);
        let read = tokio::time::timeout(head_timeout, read_head(&mut io, &mut buf)).await;
        let end = match read {
            Ok(Head::Taken(end)) => end,
            Ok(Head::Other) => {
                let left = head_timeout
                    .saturating_sub(started.elapsed())
                    .max(Duration::from_secs(1));
                return Some((Rewind::new(buf, io), left));
            }
            // Too slow, closed, or broken.
            Err(_) | Ok(Head::Closed) => return None,
        };
        let Some((request, close)) = parse(&buf[..end]) else {
            return Some((Rewind::new(buf, io), head_timeout));
        };
        // Pipelined bytes (agents never send them) go with the connection.
        carried = buf.split_off(end);
        drop(buf);
        let answering = handler(request);
        tokio::pin!(answering);
        let mut byte = [0u8; 1];
        let mut listening = carried.is_empty();
        let response = loop {
            tokio::select! {
                response = &mut answering => break response,
                // The agent went away: the watch ends with it.
                n = io.read(&mut byte), if listening => match n {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {
                        carried.push(byte[0]);
                        listening = false;
                    }
                },
                _ = stopping.changed() => return None,
            }
        };
        if write(&mut io, response, close).await.is_err() || close {
            return None;
        }
        if !carried.is_empty() && !carried.starts_with(&TAKEN[..carried.len().min(TAKEN.len())]) {
            return Some((Rewind::new(std::mem::take(&mut carried), io), head_timeout));
        }
    }
}

enum Head {
    /// A watch whose head ends at this offset.
    Taken(usize),
    /// Another request: hyper's.
    Other,
    Closed,
}

async fn read_head<I: AsyncRead + Unpin>(io: &mut I, buf: &mut Vec<u8>) -> Head {
    loop {
        if let Some(head) = judge(buf) {
            return head;
        }
        if buf.len() >= MOST_HEAD {
            return Head::Other;
        }
        if buf.capacity() == buf.len() {
            buf.reserve(buf.len().max(512));
        }
        match io.read_buf(buf).await {
            Ok(0) | Err(_) => return Head::Closed,
            Ok(_) => {}
        }
    }
}

/// What the bytes so far say, if they say enough.
fn judge(buf: &[u8]) -> Option<Head> {
    let known = buf.len().min(TAKEN.len());
    if buf[..known] != TAKEN[..known] {
        return Some(Head::Other);
    }
    if buf.len() > TAKEN.len() && !matches!(buf[TAKEN.len()], b' ' | b'?') {
        // `/v1/watchers`, or anything else that starts alike.
        return Some(Head::Other);
    }
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| Head::Taken(at + 4))
}

/// The request as the router takes it, and whether the client asked to
/// close after it; `None` for what this does not take (hyper answers).
fn parse(head: &[u8]) -> Option<(http::Request<Body>, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(_) = parsed.parse(head).ok()? else {
        return None;
    };
    if parsed.version != Some(1) {
        return None;
    }
    let mut request = http::Request::builder()
        .method(Method::GET)
        .uri(parsed.path?)
        .version(http::Version::HTTP_11);
    let mut close = false;
    for h in parsed.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        // A GET with a body is not a watch.
        if name == "content-length" && h.value != b"0" || name == "transfer-encoding" {
            return None;
        }
        if name == "connection" && h.value.eq_ignore_ascii_case(b"close") {
            close = true;
        }
        request = request.header(h.name, h.value);
    }
    Some((request.body(Body::empty()).ok()?, close))
}

/// Writes the router's answer as HTTP/1.1.
async fn write<I: AsyncWrite + Unpin>(
    io: &mut I,
    response: http::Response<Body>,
    close: bool,
) -> std::io::Result<()> {
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, MOST_BODY)
        .await
        .map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(512 + body.len());
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            parts.status.as_u16(),
            parts.status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    for (name, value) in &parts.headers {
        if [
            header::CONTENT_LENGTH,
            header::CONNECTION,
            header::TRANSFER_ENCODING,
        ]
        .contains(name)
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    io.write_all(&out).await?;
    io.flush().await
}

/// A connection with bytes already read from it put back in front.
pub struct Rewind<I> {
    prefix: Vec<u8>,
    at: usize,
    inner: I,
}

impl<I> Rewind<I> {
    fn new(prefix: Vec<u8>, inner: I) -> Rewind<I> {
        Rewind {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(out.remaining());
            let at = self.at;
            out.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_watch_is_taken_and_anything_else_goes_to_hyper_at_its_first_differing_byte() {
        assert!(matches!(judge(b"POST"), Some(Head::Other)));
        assert!(matches!(judge(b"GET /v1/rep"), Some(Head::Other)));
        assert!(matches!(
            judge(b"GET /v1/watchers HTTP/1.1"),
            Some(Head::Other)
        ));
        assert!(judge(b"GET /v1/wat").is_none());
        assert!(judge(b"GET /v1/watch?after=abc HTTP/1.1\r\nHost: x\r\n").is_none());
        let head = b"GET /v1/watch?after=abc HTTP/1.1\r\nHost: x\r\n\r\nGET";
        assert!(matches!(judge(head), Some(Head::Taken(n)) if n == head.len() - 3));
        let (request, close) = parse(&head[..head.len() - 3]).unwrap();
        assert_eq!(request.uri(), "/v1/watch?after=abc");
        assert!(!close);
        let closing = b"GET /v1/watch HTTP/1.1\r\nConnection: close\r\n\r\n";
        assert!(parse(closing).unwrap().1);
        let with_body = b"GET /v1/watch HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
        assert!(parse(with_body).is_none());
    }
}
