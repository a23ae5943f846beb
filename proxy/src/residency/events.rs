//! The scheduler's own record of what it did and what was reserved after each step, kept in a
//! bounded ring: `/admin/events` shows it, and tests check the budget from it.

use std::collections::VecDeque;

use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// Memory was reserved and loading began.
    LoadStarted {
        /// Bytes reserved for it.
        reserved_for_model: u64,
    },
    /// Loading finished.
    Loaded {
        /// What the load measurably took, where it can be measured.
        measured: Option<u64>,
    },
    /// Loading failed; its reservation was released.
    LoadFailed {
        /// Why.
        reason: String,
    },
    /// A model was measured above its estimate; it is charged the measurement from now on.
    Underestimated {
        /// The estimate.
        estimate: u64,
        /// The measurement.
        measured: u64,
    },
    /// Unloading began.
    UnloadStarted {
        /// `idle` (keep-alive ran out), `evicted` (to make room), `requested` (admin) or
        /// `over_budget` (a measurement came in above the estimate) or `budget_shrunk`
        /// (other processes took memory on its device).
        reason: &'static str,
    },
    /// Unloading finished and the memory was released.
    Unloaded {
        /// As in `UnloadStarted`.
        reason: &'static str,
    },
    /// What loads may reserve on a device changed: other processes took memory porten had
    /// counted on (the limit drops below the budget) or gave it back. `model` is empty.
    LimitChanged {
        /// The limit before; `None` is no limit.
        from: Option<u64>,
        /// The limit now.
        to: Option<u64>,
    },
    /// A model larger than what any device may hold was asked for.
    Refused {
        /// What it needs.
        need: u64,
    },
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Position in the log since start-up.
    pub seq: u64,
    /// Milliseconds since the scheduler started.
    pub at_ms: u64,
    /// The model concerned.
    pub model: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
    /// The device concerned (0 with one device).
    pub device: usize,
    /// Bytes reserved on that device for loading, loaded and unloading models just after
    /// this event.
    pub reserved_bytes: u64,
}

/// The most recent events.
#[derive(Debug)]
pub struct EventLog {
    events: VecDeque<Event>,
    capacity: usize,
    next_seq: u64,
}

impl EventLog {
    /// Keeps the last `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self {
            events: VecDeque::new(),
            capacity,
            next_seq: 0,
        }
    }

    /// Appends an event.
    pub fn push(
        &mut self,
        at_ms: u64,
        model: &str,
        device: usize,
        kind: EventKind,
        reserved_bytes: u64,
    ) {
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(Event {
            seq: self.next_seq,
            at_ms,
            model: model.to_string(),
            kind,
            device,
            reserved_bytes,
        });
        self.next_seq += 1;
    }

    /// Events from `since` (a `seq`) on, oldest first.
    pub fn since(&self, since: u64) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.seq >= since)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recent_events_with_increasing_numbers() {
        let mut log = EventLog::new(2);
        for i in 0..3 {
            log.push(i, "m", 0, EventKind::Refused { need: i }, 0);
        }
        let kept = log.since(0);
        assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(log.since(2).len(), 1);
        let json = serde_json::to_value(&kept[0]).unwrap();
        assert_eq!(json["event"], "refused");
        assert_eq!(json["need"], 1);
    }
}
