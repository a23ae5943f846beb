//! How long until a queue has room for one more: the work ahead over the queue's recent drain
//! rate. This is what `Retry-After` says, for a model's full queue and for the connection cap,
//! so that refused clients come back when there is a chance of being served rather than all at
//! once a second later.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Departures remembered: enough for a steady rate, few enough to follow a change quickly.
const REMEMBERED: usize = 32;
/// Departures older than this say nothing about the present.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// The longest `Retry-After` porten gives: past it the estimate is a guess anyway.
pub const MAX_WAIT_SECS: u64 = 600;

/// The recent departures from one queue.
#[derive(Debug, Default)]
pub struct DrainRate {
    departures: Mutex<VecDeque<Instant>>,
}

impl DrainRate {
    /// A queue nothing has left yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// One item left the queue now.
    pub fn departed(&self) {
        self.departed_at(Instant::now());
    }

    fn departed_at(&self, at: Instant) {
        let mut departures = self.departures.lock().expect("never poisoned");
        if departures.len() == REMEMBERED {
            departures.pop_front();
        }
        departures.push_back(at);
    }

    /// Departures per second lately, or `None` when nothing left within the last ten minutes.
    /// Measured up to now, so a queue that has stopped draining reads slower and slower.
    fn per_second_at(&self, now: Instant) -> Option<f64> {
        let mut departures = self.departures.lock().expect("never poisoned");
        while departures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > FORGET_AFTER)
        {
            departures.pop_front();
        }
        let oldest = *departures.front()?;
        let span = now
            .saturating_duration_since(oldest)
            .as_secs_f64()
            .max(1e-3);
        Some(departures.len() as f64 / span)
    }

    /// Whole seconds until `ahead` more departures have made room for one more, between 1 and
    /// [`MAX_WAIT_SECS`]. With no recent departure to go by, `fallback_per_item` seconds each.
    pub fn wait_secs(&self, ahead: usize, fallback_per_item: f64) -> u64 {
        self.wait_secs_at(Instant::now(), ahead, fallback_per_item)
    }

    fn wait_secs_at(&self, now: Instant, ahead: usize, fallback_per_item: f64) -> u64 {
        let items = (ahead + 1) as f64;
        let secs = match self.per_second_at(now) {
            Some(rate) => items / rate,
            None => items * fallback_per_item,
        };
        (secs.ceil() as u64).clamp(1, MAX_WAIT_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(rate: &DrainRate, start: Instant, gap: Duration, count: u32) -> Instant {
        for i in 0..count {
            rate.departed_at(start + gap * i);
        }
        start + gap * count
    }

    #[test]
    fn a_queue_that_drains_one_a_second_asks_for_a_second_per_item_ahead() {
        let rate = DrainRate::new();
        let now = every(&rate, Instant::now(), Duration::from_secs(1), 10);
        assert_eq!(rate.wait_secs_at(now, 0, 99.0), 1);
        assert_eq!(rate.wait_secs_at(now, 63, 99.0), 64);
    }

    #[test]
    fn a_fast_queue_still_asks_for_at_least_a_second() {
        let rate = DrainRate::new();
        let now = every(&rate, Instant::now(), Duration::from_millis(10), 32);
        assert_eq!(rate.wait_secs_at(now, 5, 99.0), 1);
    }

    #[test]
    fn a_stalled_queue_reads_slower_as_time_passes() {
        let rate = DrainRate::new();
        let last = every(&rate, Instant::now(), Duration::from_secs(1), 4);
        let soon = rate.wait_secs_at(last, 9, 1.0);
        let later = rate.wait_secs_at(last + Duration::from_secs(60), 9, 1.0);
        assert!(later > soon, "{later} > {soon}");
    }

    #[test]
    fn without_departures_the_fallback_counts_and_the_cap_holds() {
        let rate = DrainRate::new();
        assert_eq!(rate.wait_secs_at(Instant::now(), 2, 1.5), 5);
        assert_eq!(
            rate.wait_secs_at(Instant::now(), 10_000, 1.0),
            MAX_WAIT_SECS
        );
        let start = Instant::now();
        rate.departed_at(start);
        let much_later = start + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(
            rate.wait_secs_at(much_later, 2, 2.0),
            6,
            "old departures are forgotten"
        );
    }
}
