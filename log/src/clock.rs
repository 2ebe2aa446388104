//! Times as the log stores them (seconds since the epoch) and as reports
//! and pages write them (RFC 3339).

/// Seconds since the epoch of an RFC 3339 time (0 when it is not one).
pub fn unix(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An RFC 3339 time (UTC, seconds) of seconds since the epoch.
pub fn rfc3339(unix: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}
