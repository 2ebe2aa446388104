//! A stand-in for the central log's `POST /v1/reports` on loopback, for
//! tests that run before (or without) the real server: it records every
//! request and answers with the status the test sets.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub authorization: String,
    pub body: serde_json::Value,
}

pub struct Receiver {
    pub url: String,
    status: Arc<AtomicU16>,
    received: Arc<Mutex<Vec<Received>>>,
    seen: Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    /// Listens on a free 127.0.0.1 port; answers 200 until told otherwise.
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let status = Arc::new(AtomicU16::new(200));
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, r, n) = (
            Arc::clone(&status),
            Arc::clone(&received),
            Arc::clone(&seen),
        );
        // The thread ends with the test process; it holds nothing else.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let (mut length, mut authorization) = (0, String::new());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap_or_default();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        "authorization" => authorization = value.trim().to_owned(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                // An agent's watch (`GET /v1/watch`) is not what this stands
                // in for: a log without it, as the agent must bear.
                if request_line.starts_with("GET ") {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 404 X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
                    );
                    continue;
                }
                n.fetch_add(1, Ordering::SeqCst);
                let code = s.load(Ordering::SeqCst);
                if code == 0 {
                    // Hang: keep the connection open, never answer.
                    std::thread::spawn(move || {
                        std::thread::sleep(std::time::Duration::from_secs(120));
                        drop(stream);
                    });
                    continue;
                }
                if code == 200 {
                    r.lock().unwrap().push(Received {
                        path,
                        authorization,
                        body: serde_json::from_slice(&body).unwrap_or_default(),
                    });
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
                );
            }
        });
        Receiver {
            url,
            status,
            received,
            seen,
        }
    }

    /// How many requests arrived, whatever the answer.
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// Answers every request from now on with `code` (and keeps only what
    /// it answered 200); 0: never answers.
    pub fn answer(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The ids of the reports received, in order.
    pub fn ids(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r.body["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// A loopback URL nothing listens on.
pub fn nobody_listening() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}
