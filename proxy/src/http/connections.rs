//! The book of open connections: what each one owes porten (a head it started, an idle
//! keep-alive it holds), the cap on how many are open, and which one gives way to a new one at
//! the cap. Every connection's bytes pass through `Tracked` (`tracked.rs`), which notes when a
//! head starts; every request holds an [`InFlight`] until its response body is gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::ConnectionLimits;
use crate::drain::DrainRate;
use crate::telemetry::instruments;

/// Why porten closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// A request head took longer than `head_timeout_secs`.
    HeadTimeout,
    /// No request for `idle_timeout_secs`.
    IdleTimeout,
    /// A body took longer than `body_timeout_secs` (answered 408, then closed).
    BodyTimeout,
    /// Displaced by a new connection at the cap.
    Displaced,
}

impl CloseReason {
    /// The metric attribute's value.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::HeadTimeout => "head_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::BodyTimeout => "body_timeout",
            CloseReason::Displaced => "displaced",
        }
    }
}

/// What the watchdog should do with a connection now.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Look again at this instant.
    KeepUntil(Instant),
    /// Close it.
    Close(CloseReason),
}

/// Milliseconds since the book opened, plus one, so that 0 can mean "not set".
type Stamp = u64;

/// One connection's state, shared by its bytes, its requests and its watchdog.
#[derive(Debug)]
pub struct Activity {
    id: u64,
    in_flight: AtomicUsize,
    /// When the first byte of a head arrived with no request in flight; 0: none pending.
    head_started: AtomicU64,
    /// When the connection last had no request in flight (its opening, or its last answer).
    idle_since: AtomicU64,
    /// HTTP/2 has no heads between requests: only its idle time counts.
    http2: AtomicBool,
    first_read: AtomicBool,
    /// Set when a new connection displaced this one at the cap.
    displaced: Notify,
    /// Set when a head starts, so the watchdog moves its deadline up from the idle one.
    head_began: Notify,
}

/// The open connections.
#[derive(Debug)]
pub struct Connections {
    /// `head_timeout_secs` and `idle_timeout_secs`, the two the watchdog applies.
    head_timeout: Duration,
    idle_timeout: Duration,
    cap: usize,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    /// Requests finished, for the `Retry-After` of a refused connection: at the cap every
    /// connection has a request in flight, and the next to finish makes room.
    finished: DrainRate,
    refusing: AtomicUsize,
}

/// What a new connection gets from the book.
#[derive(Debug)]
pub enum Admit {
    /// Serve it; dropping the handle takes it off the book.
    Serve(Registered),
    /// At the cap with every connection busy: refuse it.
    Refuse,
}

/// A connection on the book; dropping it takes it off.
#[derive(Debug)]
pub struct Registered {
    pub(super) book: Arc<Connections>,
    /// Its shared state.
    pub activity: Arc<Activity>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.book.open_map().remove(&self.activity.id);
        instruments().connections_open.add(-1, &[]);
    }
}

/// Held by a request until its response body is sent or dropped.
#[derive(Debug)]
pub struct InFlight {
    book: Arc<Connections>,
    activity: Arc<Activity>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.book.now();
        if self.activity.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.activity.idle_since.store(now, Ordering::SeqCst);
            self.activity.head_started.store(0, Ordering::SeqCst);
        }
        self.book.finished.departed();
    }
}

impl Connections {
    /// A book for at most `cap` connections, with `limits`' timeouts.
    pub fn new(limits: &ConnectionLimits, cap: usize) -> Arc<Self> {
        Arc::new(Self {
            head_timeout: Duration::from_secs(limits.head_timeout_secs),
            idle_timeout: Duration::from_secs(limits.idle_timeout_secs),
            cap: cap.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            finished: DrainRate::new(),
            refusing: AtomicUsize::new(0),
        })
    }

    /// The cap in force.
    pub fn cap(&self) -> usize {
        self.cap
    }

    fn open_map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        self.open.lock().expect("never poisoned")
    }

    fn now(&self) -> Stamp {
        self.stamp(Instant::now())
    }

    fn stamp(&self, at: Instant) -> Stamp {
        at.saturating_duration_since(self.epoch).as_millis() as u64 + 1
    }

    fn instant(&self, stamp: Stamp) -> Instant {
        self.epoch + Duration::from_millis(stamp.saturating_sub(1))
    }

    /// Puts a new connection on the book. At the cap, the connection that owes porten the most
    /// gives way: the longest idle, else the one whose head started longest ago. One with a
    /// request in flight never does; when all have one, the new connection is refused.
    pub fn admit(self: &Arc<Self>) -> Admit {
        let now = self.now();
        let mut open = self.open_map();
        if open.len() >= self.cap {
            match victim(open.values()) {
                Some(id) => {
                    let displaced = open.remove(&id).expect("just found");
                    displaced.displaced.notify_one();
                }
                None => return Admit::Refuse,
            }
        }
        let activity = Arc::new(Activity {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicUsize::new(0),
            head_started: AtomicU64::new(0),
            idle_since: AtomicU64::new(now),
            http2: AtomicBool::new(false),
            first_read: AtomicBool::new(true),
            displaced: Notify::new(),
            head_began: Notify::new(),
        });
        open.insert(activity.id, activity.clone());
        drop(open);
        instruments().connections_open.add(1, &[]);
        Admit::Serve(Registered {
            book: self.clone(),
            activity,
        })
    }

    /// A request started on `activity`'s connection.
    pub fn request_started(self: &Arc<Self>, activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        activity.head_started.store(0, Ordering::SeqCst);
        InFlight {
            book: self.clone(),
            activity: activity.clone(),
        }
    }

    /// Counts a refusal in progress while the returned guard lives, or `None` when so many are
    /// in progress that the connection should just be closed.
    pub fn refusing(self: &Arc<Self>) -> Option<Refusing> {
        let limit = (self.cap / 8).clamp(8, 256);
        let before = self.refusing.fetch_add(1, Ordering::SeqCst);
        let guard = Refusing(self.clone());
        (before < limit).then_some(guard)
    }

    /// What to do with `activity`'s connection at `at`.
    pub fn verdict(&self, activity: &Activity, at: Instant) -> Verdict {
        let (head, idle) = (self.head_timeout, self.idle_timeout);
        if activity.in_flight.load(Ordering::SeqCst) > 0 {
            // Nothing is owed while porten answers; look again after a head's time.
            return Verdict::KeepUntil(at + head.min(idle));
        }
        let started = activity.head_started.load(Ordering::SeqCst);
        if started != 0 && !activity.http2.load(Ordering::SeqCst) {
            let deadline = self.instant(started) + head;
            return if at >= deadline {
                Verdict::Close(CloseReason::HeadTimeout)
            } else {
                Verdict::KeepUntil(deadline)
            };
        }
        let deadline = self.instant(activity.idle_since.load(Ordering::SeqCst)) + idle;
        if at >= deadline {
            Verdict::Close(CloseReason::IdleTimeout)
        } else {
            Verdict::KeepUntil(deadline)
        }
    }
}

/// The connection to displace: idle ones first (longest idle), then those mid-head (oldest).
fn victim<'a>(open: impl Iterator<Item = &'a Arc<Activity>>) -> Option<u64> {
    open.filter(|a| a.in_flight.load(Ordering::SeqCst) == 0)
        .min_by_key(|a| {
            let started = a.head_started.load(Ordering::SeqCst);
            let mid_head = started != 0 && !a.http2.load(Ordering::SeqCst);
            let since = if mid_head {
                started
            } else {
                a.idle_since.load(Ordering::SeqCst)
            };
            (mid_head, since)
        })
        .map(|a| a.id)
}

/// A refusal in progress.
#[derive(Debug)]
pub struct Refusing(Arc<Connections>);

impl Refusing {
    /// The cap in force.
    pub fn cap(&self) -> usize {
        self.0.cap
    }

    /// `Retry-After` for this refused connection: until a request has finished for each
    /// refusal ahead of it, and one more for itself.
    pub fn retry_after_secs(&self) -> u64 {
        let others = self.0.refusing.load(Ordering::SeqCst).saturating_sub(1);
        self.0.finished.wait_secs(others, 1.0)
    }
}

impl Drop for Refusing {
    fn drop(&mut self) {
        self.0.refusing.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Activity {
    /// Resolves when a new connection displaced this one.
    pub async fn displaced(&self) {
        self.displaced.notified().await;
    }

    /// Resolves when the first byte of a head arrived since the last look.
    pub async fn head_began(&self) {
        self.head_began.notified().await;
    }

    /// Notes `bytes` just read from the client.
    pub(super) fn read(&self, book: &Connections, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.first_read.swap(false, Ordering::SeqCst) && bytes.starts_with(b"PRI ") {
            self.http2.store(true, Ordering::SeqCst);
        }
        if self.in_flight.load(Ordering::SeqCst) == 0
            && self
                .head_started
                .compare_exchange(0, book.now(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.head_began.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            head_timeout_secs: 10,
            idle_timeout_secs: 60,
            ..ConnectionLimits::default()
        }
    }

    fn served(book: &Arc<Connections>) -> Registered {
        match book.admit() {
            Admit::Serve(registered) => registered,
            Admit::Refuse => panic!("refused below the cap"),
        }
    }

    #[test]
    fn a_head_that_started_is_closed_at_the_head_timeout() {
        let book = Connections::new(&limits(), 4);
        let conn = served(&book);
        let opened = Instant::now();
        conn.activity.read(&book, b"POST / HTTP/1.1\r\n");
        let Verdict::KeepUntil(deadline) = book.verdict(&conn.activity, opened) else {
            panic!("closed at once");
        };
        assert!(deadline <= opened + Duration::from_secs(10) + Duration::from_millis(5));
        let later = opened + Duration::from_secs(11);
        assert_eq!(
            book.verdict(&conn.activity, later),
            Verdict::Close(CloseReason::HeadTimeout)
        );
    }

    #[test]
    fn a_request_in_flight_is_never_timed_out_and_then_idle_time_counts() {
        let book = Connections::new(&limits(), 4);
        let conn = served(&book);
        conn.activity.read(&book, b"GET / HTTP/1.1\r\n\r\n");
        let request = book.request_started(&conn.activity);
        let hours = Instant::now() + Duration::from_secs(7200);
        assert!(matches!(
            book.verdict(&conn.activity, hours),
            Verdict::KeepUntil(_)
        ));
        drop(request);
        let now = Instant::now();
        assert!(matches!(
            book.verdict(&conn.activity, now + Duration::from_secs(30)),
            Verdict::KeepUntil(_)
        ));
        assert_eq!(
            book.verdict(&conn.activity, now + Duration::from_secs(61)),
            Verdict::Close(CloseReason::IdleTimeout)
        );
    }

    #[test]
    fn http2_is_judged_by_idle_time_alone() {
        let book = Connections::new(&limits(), 4);
        let conn = served(&book);
        conn.activity
            .read(&book, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        conn.activity.read(&book, b"ping frames");
        let soon = Instant::now() + Duration::from_secs(30);
        assert!(matches!(
            book.verdict(&conn.activity, soon),
            Verdict::KeepUntil(_)
        ));
    }

    #[test]
    fn at_the_cap_idle_goes_first_then_the_oldest_head_and_busy_ones_never() {
        let book = Connections::new(&limits(), 3);
        let busy = served(&book);
        let _request = book.request_started(&busy.activity);
        let slow_head = served(&book);
        slow_head.activity.read(&book, b"POST / HT");
        let idle = served(&book);
        let fourth = served(&book);
        assert_eq!(book.open_map().len(), 3);
        assert!(
            !book.open_map().contains_key(&idle.activity.id),
            "the idle one gave way"
        );
        let _fourth_request = book.request_started(&fourth.activity);
        let fifth = served(&book);
        assert!(
            !book.open_map().contains_key(&slow_head.activity.id),
            "then the one mid-head"
        );
        let fifth_request = book.request_started(&fifth.activity);
        assert!(matches!(book.admit(), Admit::Refuse), "all three are busy");
        let first = book.refusing().expect("room to refuse");
        assert_eq!(
            first.retry_after_secs(),
            1,
            "nothing ahead: one request's wait"
        );
        let second = book.refusing().expect("room to refuse");
        assert_eq!(second.retry_after_secs(), 2, "one refusal ahead");
        drop((first, second));
        drop(fifth_request);
        assert!(matches!(book.admit(), Admit::Serve(_)));
    }
}
