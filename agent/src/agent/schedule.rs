//! When a host runs: every interval, at an offset inside the splay derived
//! from its name, so a fleet spreads its fetches evenly and each host runs
//! at predictable times.

use std::time::Duration;

use sha2::{Digest as _, Sha256};

/// The host's offset inside `splay`: sha256 of the name, as a fraction of
/// the splay. Stable across restarts, evenly spread across names.
pub fn offset(host: &str, splay: Duration) -> Duration {
    let digest = Sha256::digest(host.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    let nanos = splay.as_nanos();
    if nanos == 0 {
        return Duration::ZERO;
    }
    // n / 2^64 of the splay, in integers.
    let scaled = (u128::from(n) * nanos) >> 64;
    Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
}

/// The next time to run after `now` (seconds since the epoch, as a
/// duration): the first slot `k × interval + offset` that is later.
pub fn next_run(now: Duration, interval: Duration, offset: Duration) -> Duration {
    let interval = interval.max(Duration::from_secs(1));
    if now < offset {
        return offset;
    }
    let since = now.saturating_sub(offset).as_nanos();
    let slots = since / interval.as_nanos() + 1;
    let at = slots * interval.as_nanos() + offset.as_nanos();
    Duration::from_nanos(u64::try_from(at).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offsets_are_stable_and_spread_evenly_over_ten_thousand_names() {
        let splay = Duration::from_secs(300);
        let mut buckets = [0usize; 10];
        for i in 0..10_000 {
            let name = format!("web-{i}.prod.example.com");
            let o = offset(&name, splay);
            assert!(o < splay);
            assert_eq!(o, offset(&name, splay), "stable");
            buckets[(o.as_secs() / 30) as usize] += 1;
        }
        // Each tenth of the splay holds 1,000 ± 15% of the hosts.
        for (i, n) in buckets.iter().enumerate() {
            assert!((850..=1150).contains(n), "bucket {i} has {n}: {buckets:?}");
        }
    }

    proptest! {
        #[test]
        fn any_name_lands_inside_the_splay(name in ".{0,64}", splay in 0u64..100_000) {
            let splay = Duration::from_millis(splay);
            let o = offset(&name, splay);
            prop_assert!(o < splay || splay.is_zero());
        }

        #[test]
        fn the_next_run_is_later_and_on_the_hosts_slot(now in 0u64..10_000_000, interval in 1u64..100_000, off in 0u64..100_000) {
            let (now, interval) = (Duration::from_secs(now), Duration::from_secs(interval));
            let offset = Duration::from_secs(off % interval.as_secs());
            let next = next_run(now, interval, offset);
            prop_assert!(next > now);
            prop_assert!(next - now <= interval + offset);
            prop_assert_eq!((next - offset).as_secs() % interval.as_secs(), 0);
        }
    }
}
