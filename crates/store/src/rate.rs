//! Token buckets: the arithmetic shared by the in-memory buckets (one process's limits, and
//! the embedded store's shared ones) and the PostgreSQL store's rows.

use std::collections::HashMap;

use crate::meta::TokenTake;

/// Above this many buckets, [`TokenBuckets`] forgets the full ones on its next take.
const PRUNE_ABOVE: usize = 100_000;

/// The tokens of a bucket that held `tokens` at `last_ms`, refilled up to `now_ms` (a clock
/// that went back refills nothing).
pub(crate) fn refilled(take: &TokenTake, tokens: f64, last_ms: i64, now_ms: i64) -> f64 {
    let elapsed = (now_ms - last_ms).max(0) as f64 / 1000.0;
    (tokens + elapsed * take.per_sec).min(burst(take))
}

/// A bucket holds at least one token, so a burst below 1 still lets the rate through.
pub(crate) fn burst(take: &TokenTake) -> f64 {
    take.burst.max(1.0)
}

/// A rate of 0 (or less) is no limit.
pub(crate) fn unlimited(take: &TokenTake) -> bool {
    take.per_sec <= 0.0
}

/// Token buckets by key, in this process's memory.
#[derive(Default)]
pub struct TokenBuckets {
    /// Tokens, when they were counted (ms), and when the bucket will be full again (ms).
    map: parking_lot::Mutex<HashMap<String, (f64, i64, i64)>>,
}

impl TokenBuckets {
    /// Takes one token from each bucket, or none when any of them has less than one.
    pub fn take_all(&self, takes: &[TokenTake], now_ms: i64) -> bool {
        let mut map = self.map.lock();
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, (_, _, full_at)| *full_at > now_ms);
        }
        let current = |map: &HashMap<String, (f64, i64, i64)>, t: &TokenTake| match map.get(&t.key) {
            Some((tokens, last, _)) => refilled(t, *tokens, *last, now_ms),
            None => burst(t),
        };
        if !takes.iter().all(|t| unlimited(t) || current(&map, t) >= 1.0) {
            return false;
        }
        for t in takes.iter().filter(|t| !unlimited(t)) {
            let left = current(&map, t) - 1.0;
            let full_at = now_ms + ((burst(t) - left) / t.per_sec * 1000.0).ceil() as i64;
            map.insert(t.key.clone(), (left, now_ms, full_at));
        }
        true
    }

    /// Forgets buckets untouched since `cutoff_ms`; returns how many.
    pub fn purge(&self, cutoff_ms: i64) -> u64 {
        let mut map = self.map.lock();
        let before = map.len();
        map.retain(|_, (_, last, _)| *last >= cutoff_ms);
        (before - map.len()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(key: &str, burst: f64, per_sec: f64) -> TokenTake {
        TokenTake { key: key.into(), burst, per_sec }
    }

    #[test]
    fn a_key_gets_its_burst_then_the_rate() {
        let b = TokenBuckets::default();
        let t = [take("a", 3.0, 1.0)];
        assert!((0..3).all(|_| b.take_all(&t, 1_000)));
        assert!(!b.take_all(&t, 1_000));
        assert!(!b.take_all(&t, 1_999), "less than one token refilled");
        assert!(b.take_all(&t, 2_000), "one token a second");
        assert!(b.take_all(&[take("b", 3.0, 1.0)], 2_000), "another key has its own bucket");
        assert!((0..100).all(|_| b.take_all(&[take("c", 1.0, 0.0)], 0)), "a rate of 0 is no limit");
    }

    #[test]
    fn several_buckets_are_charged_together_or_not_at_all() {
        let b = TokenBuckets::default();
        let pair = |t: &str, a: &str| [take(t, 2.0, 0.001), take(a, 2.0, 0.001)];
        assert!(b.take_all(&pair("t", "x"), 0));
        assert!(b.take_all(&pair("t", "x"), 0));
        assert!(!b.take_all(&pair("t", "y"), 0), "t is empty");
        assert!(b.take_all(&pair("u", "y"), 0), "y was not charged by the refused take");
        assert!(b.take_all(&pair("u", "y"), 0));
        assert!(!b.take_all(&pair("v", "y"), 0), "y is empty, whatever the other bucket");
    }

    #[test]
    fn purged_buckets_are_full_again() {
        let b = TokenBuckets::default();
        assert!(b.take_all(&[take("a", 1.0, 0.001)], 0));
        assert!(!b.take_all(&[take("a", 1.0, 0.001)], 10));
        assert_eq!(b.purge(0), 0, "last taken at 0 (a refused take changes nothing)");
        assert_eq!(b.purge(1), 1);
        assert!(b.take_all(&[take("a", 1.0, 0.001)], 12));
    }
}
