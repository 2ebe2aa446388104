//! What the host (`tend`) and the central log (`tend-log`) both speak: the
//! manifests and environment files, flag and rollout buckets and policies,
//! the run report and the client for the log, and the git runner.

pub mod cli;
pub mod flags;
pub mod manifest;
pub mod report;
pub mod rollout;
pub mod source;

/// Lowercase hex of bytes (digests, in reports, tokens and caches).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}
