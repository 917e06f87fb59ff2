//! When a link is due.
//!
//! * A link is due when its last check is older than `every` (`0s`: always due, but a link is
//!   never checked twice in the same millisecond), and it has never been checked, or
//! * in continuous mode, additionally, once its *phase slot* has come: each link has a fixed
//!   phase in `[0, every)` from a hash of its URL, and is checked at the first
//!   `phase + k·every` that is at least `every` after its last check. After the first window
//!   the checks of 50,000 links are spread evenly over the window instead of arriving in a
//!   burst at its start (the gap between two checks is `every`, once, up to `2·every` while a
//!   link moves onto its slot). `--once` ignores phases: it checks everything due *now*.
//! * A link that keeps failing backs off: after `n` consecutive failures the next check waits
//!   `every·2^(n-1)` (at least 1 s), capped at one day (or `every` if that is longer).
//!
//! The SQLite store evaluates the same rules in SQL; `sql_and_rust_agree_on_what_is_due` in `store/sqlite.rs`
//! keeps the two in step.

use std::time::Duration;

/// One day, the longest backoff (unless `every` itself is longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(86_400);

/// A link's phase: a stable 31-bit hash of its URL (FNV-1a; stable across builds and versions,
/// unlike `std`'s hasher, because it is stored).
pub fn phase_of(url: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ((h >> 33) ^ (h & 0x7fff_ffff)) as i64 & 0x7fff_ffff
}

/// The first time `t' >= t` with `t' ≡ phase (mod every)`.
pub fn slot_at_or_after(t: i64, every_ms: i64, phase: i64) -> i64 {
    if every_ms <= 0 {
        return t;
    }
    let offset = (phase.rem_euclid(every_ms) - t.rem_euclid(every_ms)).rem_euclid(every_ms);
    t + offset
}

/// When a link checked last at `last_checked_ms` (None: never) is next due.
pub fn due_at(last_checked_ms: Option<i64>, every_ms: i64, phase: i64, spread: bool) -> i64 {
    match last_checked_ms {
        None => i64::MIN,
        Some(last) => {
            // `+ 1`: never twice in the same millisecond, so `0s` cannot spin on one link.
            let earliest = (last + every_ms).max(last + 1);
            if spread {
                slot_at_or_after(earliest, every_ms, phase)
            } else {
                earliest
            }
        }
    }
}

/// How long after a failure the link waits before its next check, given the number of
/// consecutive failures including this one.
///
/// ```
/// use std::time::Duration;
/// use scraipe::monitor::schedule::backoff;
/// let every = Duration::from_secs(300);
/// assert_eq!(backoff(every, 1), every);
/// assert_eq!(backoff(every, 3), every * 4);
/// assert_eq!(backoff(every, 40), Duration::from_secs(86_400));
/// ```
pub fn backoff(every: Duration, failures: u32) -> Duration {
    let base = every.max(Duration::from_secs(1));
    let cap = MAX_BACKOFF.max(every);
    let shift = failures.saturating_sub(1).min(30);
    base.checked_mul(1u32 << shift).unwrap_or(cap).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_spread_evenly_over_the_window() {
        let every = 60_000;
        let mut buckets = [0usize; 10];
        for i in 0..10_000 {
            let p = phase_of(&format!("https://shop-{i}.example/product/{}", i % 7));
            buckets[(p % every * 10 / every) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "uneven phases: {buckets:?}");
        }
    }

    #[test]
    fn due_respects_every_and_moves_onto_the_slot() {
        let every = 1000;
        assert_eq!(due_at(None, every, 5, true), i64::MIN);
        assert_eq!(due_at(Some(10_000), every, 250, false), 11_000);
        // First slot at or after 11_000 with phase 250: 11_250.
        assert_eq!(due_at(Some(10_000), every, 250, true), 11_250);
        // Once on the slot, exactly `every` apart.
        assert_eq!(due_at(Some(11_250), every, 250, true), 12_250);
        // `0s`: due the next millisecond.
        assert_eq!(due_at(Some(7), 0, 3, true), 8);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let every = Duration::from_secs(10);
        assert_eq!(backoff(every, 0), every);
        assert_eq!(backoff(every, 2), Duration::from_secs(20));
        assert_eq!(backoff(Duration::ZERO, 1), Duration::from_secs(1));
        assert_eq!(backoff(every, 1000), MAX_BACKOFF);
        let week = Duration::from_secs(7 * 86_400);
        assert_eq!(backoff(week, 5), week);
    }
}
