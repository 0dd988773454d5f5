//! The load engine: workers that each own one connection and send requests on a schedule.
//!
//! Two load models, as in wrk2 and oha:
//! - open (`--rate`): request `i` is due at `start + i / rate`, whichever connection is free
//!   takes the next due slot, and latency is measured from the slot's *intended* time (or
//!   from the send, when the timer's millisecond tick let it go out a little before). A
//!   stalled target therefore shows in the percentiles for every request that should have been
//!   sent during the stall (coordinated-omission correction);
//! - closed (`--concurrency` alone): each worker sends its next request as soon as the previous
//!   one is answered, and latency is measured from the actual send.
//!
//! A worker drives its own HTTP/1.1 connection inside its task (no connection task, no
//! channel hop per request), speaking the protocol itself over pre-rendered requests (see
//! `client`'s `Conn`), which is what keeps its CPU per request at or under wrk's on two cores. Each worker keeps its tallies behind its own mutex, locked once per request and
//! never contended except by the once-a-second progress line and the final merge.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use ampkit::error::{Error, Result};

use crate::client::{Conn, Failure};
pub use crate::client::{Template, UPSTREAM_TIME_HEADER};

/// Highest latency the histograms hold; longer ones are clamped (a request that long has
/// long since hit `--timeout`).
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The resolution of tokio's timer.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// Pause after a failed connect in the closed model, so that an unreachable target is
/// counted, not hammered by a busy loop.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// Constant arrival rate, requests per second.
    Open { rate: f64 },
    /// As fast as each connection allows.
    Closed,
}

/// Everything the engine needs to know, already validated.
#[derive(Debug, Clone)]
pub struct Plan {
    pub model: Model,
    /// Connections, one per worker.
    pub workers: usize,
    /// Measured requests to send (after the warmup).
    pub requests: Option<u64>,
    /// Measured time to run (after the warmup).
    pub duration: Option<Duration>,
    pub warmup: Duration,
    pub timeout: Duration,
    pub http2: bool,
}

/// Error kinds, as the report shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// The TCP (or HTTP/2) connection could not be opened.
    pub connect: u64,
    /// No complete answer within `--timeout`.
    pub timeout: u64,
    /// The connection broke (closed, reset) before the answer was complete.
    pub reset: u64,
    /// Anything else (a malformed answer).
    pub other: u64,
    /// In flight when the run was stopped and the grace period ran out.
    pub cancelled: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.reset + self.other + self.cancelled
    }

    fn add(&mut self, other: &ErrorCounts) {
        self.connect += other.connect;
        self.timeout += other.timeout;
        self.reset += other.reset;
        self.other += other.other;
        self.cancelled += other.cancelled;
    }
}

/// Per-path counts over every request, warmup included: what Envoy saw, for the cross-check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounts {
    pub sent: u64,
    pub completed: u64,
    /// Answers by status class: index 1..=5 for 1xx..5xx, 0 for anything else.
    pub classes: [u64; 6],
    pub errors: ErrorCounts,
}

impl PathCounts {
    /// Requests that reached the target: sent and not refused at connect.
    pub fn reached(&self) -> u64 {
        self.completed
            + self.errors.timeout
            + self.errors.reset
            + self.errors.other
            + self.errors.cancelled
    }

    fn add(&mut self, other: &PathCounts) {
        self.sent += other.sent;
        self.completed += other.completed;
        for (a, b) in self.classes.iter_mut().zip(other.classes) {
            *a += b;
        }
        self.errors.add(&other.errors);
    }
}

/// The warmup's own counts (its requests are excluded from the measured statistics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarmupCounts {
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
}

/// What one worker (or, merged, the whole run) did.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Measured requests whose sending began (connect errors included).
    pub sent: u64,
    pub completed: u64,
    pub errors: ErrorCounts,
    /// Measured answers by status code.
    pub status: std::collections::BTreeMap<u16, u64>,
    /// Latency of measured completed requests, microseconds.
    pub latency_us: Histogram<u64>,
    /// Per path, of measured answers that carried `x-envoy-upstream-service-time`: the time
    /// the upstream took (as Envoy's router reports it, whole milliseconds), microseconds.
    pub upstream_us: Vec<Histogram<u64>>,
    /// Per path, the same answers' round trip (from the actual send) minus the upstream time:
    /// what the proxies on the way cost, microseconds.
    pub proxy_us: Vec<Histogram<u64>>,
    /// When the last measured request finished.
    pub last_done: Option<Instant>,
    pub warmup: WarmupCounts,
    pub paths: Vec<PathCounts>,
    /// The request in flight, if any: (path index, measured).
    in_flight: Option<(usize, bool)>,
}

/// Record microseconds, clamped to what the histograms hold (a proxy share under 1 µs is 1).
fn record(histogram: &mut Histogram<u64>, us: u64) {
    histogram.saturating_record(us.clamp(1, MAX_LATENCY_US));
}

/// One answer: its status, the upstream time Envoy reported, and the round trip from the
/// actual send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub upstream: Option<Duration>,
    pub round_trip: Duration,
}

/// The empty latency histogram every tally starts from (1 µs to 1 h, 3 significant digits).
pub fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .map_err(|e| Error::internal(format!("could not create the latency histogram: {e}")))
}

impl Tally {
    /// An empty tally; `histogram` is an empty one from [`new_histogram`].
    pub fn new(paths: usize, histogram: &Histogram<u64>) -> Self {
        Tally {
            sent: 0,
            completed: 0,
            errors: ErrorCounts::default(),
            status: Default::default(),
            latency_us: histogram.clone(),
            upstream_us: vec![histogram.clone(); paths],
            proxy_us: vec![histogram.clone(); paths],
            last_done: None,
            warmup: WarmupCounts::default(),
            paths: vec![PathCounts::default(); paths],
            in_flight: None,
        }
    }

    /// Fold another tally into this one.
    pub fn merge(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.completed += other.completed;
        self.errors.add(&other.errors);
        for (code, n) in &other.status {
            *self.status.entry(*code).or_default() += n;
        }
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        let empty = Histogram::new_from(&self.latency_us);
        for (mine, theirs) in [
            (&mut self.upstream_us, &other.upstream_us),
            (&mut self.proxy_us, &other.proxy_us),
        ] {
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), empty.clone());
            }
            for (a, b) in mine.iter_mut().zip(theirs) {
                let _ = a.add(b);
            }
        }
        self.last_done = match (self.last_done, other.last_done) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.warmup.sent += other.warmup.sent;
        self.warmup.completed += other.warmup.completed;
        self.warmup.errors += other.warmup.errors;
        if self.paths.len() < other.paths.len() {
            self.paths.resize(other.paths.len(), PathCounts::default());
        }
        for (a, b) in self.paths.iter_mut().zip(&other.paths) {
            a.add(b);
        }
    }

    /// Count the request `other` has in flight as cancelled: its worker was abandoned.
    pub fn cancel_in_flight_of(&mut self, other: &Tally) {
        if let Some((path, measured)) = other.in_flight {
            if measured {
                self.errors.cancelled += 1;
            } else {
                self.warmup.errors += 1;
            }
            if let Some(p) = self.paths.get_mut(path) {
                p.errors.cancelled += 1;
            }
        }
    }

    fn begin(&mut self, path: usize, measured: bool) {
        if measured {
            self.sent += 1;
        } else {
            self.warmup.sent += 1;
        }
        self.paths[path].sent += 1;
        self.in_flight = Some((path, measured));
    }

    fn answered(
        &mut self,
        path: usize,
        measured: bool,
        answer: Answer,
        latency: Duration,
        now: Instant,
    ) {
        self.in_flight = None;
        let status = answer.status;
        if measured && let Some(upstream) = answer.upstream {
            let upstream_us = u64::try_from(upstream.as_micros()).unwrap_or(MAX_LATENCY_US);
            let round_trip_us =
                u64::try_from(answer.round_trip.as_micros()).unwrap_or(MAX_LATENCY_US);
            record(&mut self.upstream_us[path], upstream_us);
            record(
                &mut self.proxy_us[path],
                round_trip_us.saturating_sub(upstream_us),
            );
        }
        let class = match status / 100 {
            c @ 1..=5 => c as usize,
            _ => 0,
        };
        let p = &mut self.paths[path];
        p.completed += 1;
        p.classes[class] += 1;
        if measured {
            self.completed += 1;
            *self.status.entry(status).or_default() += 1;
            let us = u64::try_from(latency.as_micros()).unwrap_or(MAX_LATENCY_US);
            record(&mut self.latency_us, us);
            self.last_done = Some(now);
        } else {
            self.warmup.completed += 1;
        }
    }

    fn failed(&mut self, path: usize, measured: bool, kind: Failure, now: Instant) {
        self.in_flight = None;
        let bump = |e: &mut ErrorCounts| match kind {
            Failure::Connect => e.connect += 1,
            Failure::Timeout => e.timeout += 1,
            Failure::Reset => e.reset += 1,
            Failure::Other => e.other += 1,
        };
        bump(&mut self.paths[path].errors);
        if measured {
            bump(&mut self.errors);
            self.last_done = Some(now);
        } else {
            self.warmup.errors += 1;
        }
    }
}

/// One slot of the schedule.
#[derive(Debug, Clone, Copy)]
struct Slot {
    index: u64,
    /// Open model: when the request is due. Closed model: none (send now).
    intended: Option<Instant>,
    measured: bool,
}

/// The schedule the workers share.
pub struct Shared {
    plan: Plan,
    paths: usize,
    pub start: Instant,
    /// Where measurement begins.
    pub measure_start: Instant,
    /// Open model: slots that fall in the warmup.
    warm_slots: u64,
    deadline: Option<Instant>,
    next: AtomicU64,
    measured_next: AtomicU64,
    stopping: AtomicBool,
    stop_rx: watch::Receiver<bool>,
    /// An empty histogram to start tallies from.
    pub histogram: Histogram<u64>,
    /// HTTP/1.1: each path's request, rendered.
    h1_requests: Vec<Bytes>,
}

impl Shared {
    fn next_slot(&self) -> Option<Slot> {
        if self.stopping.load(Ordering::Relaxed) {
            return None;
        }
        match self.plan.model {
            Model::Open { rate } => {
                let index = self.next.fetch_add(1, Ordering::Relaxed);
                let measured = index >= self.warm_slots;
                if measured
                    && let Some(limit) = self.plan.requests
                    && index - self.warm_slots >= limit
                {
                    return None;
                }
                let intended = self.start + Duration::from_secs_f64(index as f64 / rate);
                if self.deadline.is_some_and(|d| intended >= d) {
                    return None;
                }
                Some(Slot {
                    index,
                    intended: Some(intended),
                    measured,
                })
            }
            Model::Closed => {
                let now = Instant::now();
                let measured = now >= self.measure_start;
                if measured {
                    if self.deadline.is_some_and(|d| now >= d) {
                        return None;
                    }
                    let j = self.measured_next.fetch_add(1, Ordering::Relaxed);
                    if self.plan.requests.is_some_and(|limit| j >= limit) {
                        return None;
                    }
                }
                let index = self.next.fetch_add(1, Ordering::Relaxed);
                Some(Slot {
                    index,
                    intended: None,
                    measured,
                })
            }
        }
    }
}

/// A running load: the workers' tallies and the means to stop it.
pub struct Load {
    pub shared: Arc<Shared>,
    pub tallies: Vec<Arc<Mutex<Tally>>>,
    /// One per engine thread, taken once it reported that it finished.
    done: Vec<Option<oneshot::Receiver<()>>>,
    stop_tx: watch::Sender<bool>,
    abort_tx: watch::Sender<bool>,
}

impl Load {
    /// Start the workers at once, on `threads` engine threads.
    ///
    /// Thread per core, each with its own single-threaded runtime and its share of the
    /// connections, as wrk does: no work stealing and no cross-thread wake-ups per request,
    /// which on a small machine leaves more CPU to the proxy being measured.
    pub fn start(plan: Plan, template: Template, threads: usize) -> Result<Load> {
        let histogram = new_histogram()?;
        let start = Instant::now();
        let measure_start = start + plan.warmup;
        let warm_slots = match plan.model {
            Model::Open { rate } => (plan.warmup.as_secs_f64() * rate).ceil() as u64,
            Model::Closed => 0,
        };
        let deadline = plan.duration.map(|d| measure_start + d);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (abort_tx, abort_rx) = watch::channel(false);
        let paths = template.uris.len();
        let shared = Arc::new(Shared {
            plan: plan.clone(),
            paths,
            start,
            measure_start,
            warm_slots,
            deadline,
            next: AtomicU64::new(0),
            measured_next: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            stop_rx,
            histogram,
            h1_requests: template.h1_requests(),
        });
        let template = Arc::new(template);
        let tallies: Vec<Arc<Mutex<Tally>>> = (0..plan.workers)
            .map(|_| Arc::new(Mutex::new(Tally::new(paths, &shared.histogram))))
            .collect();
        let threads = threads.clamp(1, plan.workers.max(1));
        let mut done = Vec::with_capacity(threads);
        for t in 0..threads {
            // Worker i runs on thread i % threads.
            let mine: Vec<Arc<Mutex<Tally>>> =
                tallies.iter().skip(t).step_by(threads).cloned().collect();
            let (done_tx, done_rx) = oneshot::channel();
            let (shared, template, mut abort_rx) =
                (shared.clone(), template.clone(), abort_rx.clone());
            std::thread::Builder::new()
                .name(format!("load-{t}"))
                .spawn(move || {
                    // I/O and timers only: no signal or process driver polled on every park.
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_io()
                        .enable_time()
                        .build();
                    if let Ok(rt) = rt {
                        rt.block_on(async {
                            // Tasks, not a joined set of futures: a wake-up then polls only
                            // the worker whose socket is ready.
                            let mut handles: Vec<_> = mine
                                .into_iter()
                                .map(|tally| {
                                    tokio::spawn(worker(shared.clone(), template.clone(), tally))
                                })
                                .collect();
                            let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
                            tokio::select! {
                                _ = async {
                                    for h in &mut handles {
                                        let _ = h.await;
                                    }
                                } => {}
                                _ = abort_rx.wait_for(|aborted| *aborted) => {
                                    for a in aborts {
                                        a.abort();
                                    }
                                }
                            }
                        });
                    }
                    let _ = done_tx.send(());
                })
                .map_err(|e| Error::internal(format!("could not start a load thread: {e}")))?;
            done.push(Some(done_rx));
        }
        Ok(Load {
            shared,
            tallies,
            done,
            stop_tx,
            abort_tx,
        })
    }

    /// Stop taking new slots; requests in flight may still finish.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        let _ = self.stop_tx.send(true);
    }

    /// Wait for the workers to finish (cancel-safe: it can be awaited again).
    pub async fn join(&mut self) {
        for slot in &mut self.done {
            if let Some(rx) = slot {
                let _ = rx.await;
                *slot = None;
            }
        }
    }

    /// The merged tally, for the report: a worker still running (abandoned after a stop)
    /// is counted as far as it got, its request in flight as cancelled.
    pub fn snapshot(&self) -> Tally {
        let mut total = Tally::new(self.shared.paths, &self.shared.histogram);
        for tally in &self.tallies {
            let t = tally.lock().unwrap_or_else(PoisonError::into_inner);
            total.merge(&t);
            total.cancel_in_flight_of(&t);
        }
        total
    }

    /// Abandon the requests still in flight (after the grace period of a stop); `join`
    /// returns soon after.
    pub fn abort(&self) {
        self.stop();
        let _ = self.abort_tx.send(true);
    }
}

/// Where a request's latency counts from: the closed model from its send (`now`); the open
/// model from its due time, or from its send when that came first (the timer woke early).
fn latency_start(intended: Option<Instant>, now: Instant) -> Instant {
    intended.map_or(now, |due| due.min(now))
}

fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    tally.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn worker(shared: Arc<Shared>, template: Arc<Template>, tally: Arc<Mutex<Tally>>) {
    let mut stop = shared.stop_rx.clone();
    let mut conn: Option<Conn> = None;
    while let Some(slot) = shared.next_slot() {
        // The timer has millisecond ticks and wakes at the first tick at or after the time
        // asked: asked for the due time itself, every request would leave up to a tick late
        // and that lag, ours not the target's, would count in its latency. So wake a tick
        // early, send, and measure from the due time or, when sent before it, from the send.
        if let Some(due) = slot.intended
            && let Some(wake) = due.checked_sub(TIMER_TICK)
            && wake > Instant::now()
        {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = stop.changed() => break,
            }
        }
        let begun = latency_start(slot.intended, Instant::now());
        let path = (slot.index % shared.paths as u64) as usize;
        lock(&tally).begin(path, slot.measured);
        let timeout = shared.plan.timeout;

        if conn.as_mut().is_none_or(|c| !c.usable()) {
            conn = None;
            match tokio::time::timeout(timeout, Conn::open(&template, shared.plan.http2)).await {
                Ok(Ok(c)) => conn = Some(c),
                Ok(Err(())) | Err(_) => {
                    lock(&tally).failed(path, slot.measured, Failure::Connect, Instant::now());
                    if shared.plan.model == Model::Closed {
                        tokio::time::sleep(CONNECT_BACKOFF).await;
                    }
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let sent_at = Instant::now();
        let outcome =
            tokio::time::timeout(timeout, c.exchange(&template, &shared.h1_requests, path)).await;
        let now = Instant::now();
        match outcome {
            Ok(Ok((status, upstream))) => {
                let answer = Answer {
                    status,
                    upstream,
                    round_trip: now - sent_at,
                };
                lock(&tally).answered(path, slot.measured, answer, now - begun, now);
            }
            Ok(Err(kind)) => {
                conn = None;
                lock(&tally).failed(path, slot.measured, kind, now);
            }
            Err(_) => {
                conn = None;
                lock(&tally).failed(path, slot.measured, Failure::Timeout, now);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::client::upstream_time;

    /// A 200 answer, with the upstream time in ms when given, that took 3 ms on the wire.
    fn ok(upstream_ms: Option<u64>) -> Answer {
        Answer {
            status: 200,
            upstream: upstream_ms.map(Duration::from_millis),
            round_trip: Duration::from_millis(3),
        }
    }

    #[test]
    fn the_upstream_time_and_the_proxy_share_are_recorded_per_path() {
        let mut t = Tally::new(2, &new_histogram().unwrap());
        for upstream in [None, Some(2), Some(2)] {
            t.begin(1, true);
            t.answered(
                1,
                true,
                ok(upstream),
                Duration::from_millis(3),
                Instant::now(),
            );
        }
        // Only answers that carried the header count; the share is the rest of the trip.
        assert_eq!(t.upstream_us[1].len(), 2);
        assert_eq!(t.upstream_us[0].len(), 0);
        assert_eq!(t.upstream_us[1].value_at_quantile(0.5) / 1000, 2);
        assert_eq!(t.proxy_us[1].value_at_quantile(0.5) / 100, 10);
        assert_eq!(upstream_time(b" 17 "), Some(Duration::from_millis(17)));
        assert_eq!(upstream_time(b"x"), None);
        // A warmup answer stays out.
        t.begin(0, false);
        t.answered(
            0,
            false,
            ok(Some(5)),
            Duration::from_millis(3),
            Instant::now(),
        );
        assert_eq!(t.upstream_us[0].len(), 0);
    }

    #[test]
    fn latency_counts_from_the_due_time_or_an_earlier_send() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        // Late (the target held us up): from the due time, coordinated omission corrected.
        assert_eq!(latency_start(Some(now - ms(5)), now), now - ms(5));
        // Early (the timer's tick): from the send, never from a due time still to come.
        assert_eq!(latency_start(Some(now + ms(1)), now), now);
        assert_eq!(latency_start(None, now), now);
    }

    #[test]
    fn merge_counts_an_abandoned_request_as_cancelled() {
        let mut worker = Tally::new(2, &new_histogram().unwrap());
        worker.begin(1, true);
        worker.answered(1, true, ok(None), Duration::from_millis(3), Instant::now());
        worker.begin(0, true);
        let mut total = Tally::new(2, &new_histogram().unwrap());
        total.merge(&worker);
        assert_eq!(
            total.errors.cancelled, 0,
            "in flight is not cancelled by itself"
        );
        total.cancel_in_flight_of(&worker);
        assert_eq!(total.sent, 2);
        assert_eq!(total.completed, 1);
        assert_eq!(total.errors.cancelled, 1);
        assert_eq!(total.paths[0].errors.cancelled, 1);
        assert_eq!(total.paths[1].classes[2], 1);
        assert_eq!(total.status.get(&200), Some(&1));
    }

    #[test]
    fn warmup_requests_stay_out_of_the_measured_numbers() {
        let mut t = Tally::new(1, &new_histogram().unwrap());
        t.begin(0, false);
        t.answered(
            0,
            false,
            ok(Some(1)),
            Duration::from_millis(1),
            Instant::now(),
        );
        t.begin(0, false);
        t.failed(0, false, Failure::Timeout, Instant::now());
        assert_eq!((t.sent, t.completed, t.errors.total()), (0, 0, 0));
        assert_eq!(
            t.warmup,
            WarmupCounts {
                sent: 2,
                completed: 1,
                errors: 1
            }
        );
        assert_eq!(t.latency_us.len(), 0);
        // ...but Envoy saw them, so the per-path counts keep them.
        assert_eq!(t.paths[0].reached(), 2);
    }

    #[tokio::test]
    async fn open_model_schedule_honours_warmup_and_limit() {
        let plan = Plan {
            model: Model::Open { rate: 100.0 },
            workers: 1,
            requests: Some(3),
            duration: None,
            warmup: Duration::from_millis(20),
            timeout: Duration::from_secs(1),
            http2: false,
        };
        let (_tx, stop_rx) = watch::channel(false);
        let start = Instant::now();
        let shared = Shared {
            plan,
            paths: 1,
            start,
            measure_start: start + Duration::from_millis(20),
            warm_slots: 2,
            deadline: None,
            next: AtomicU64::new(0),
            measured_next: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            stop_rx,
            histogram: new_histogram().unwrap(),
            h1_requests: Vec::new(),
        };
        let slots: Vec<Slot> = std::iter::from_fn(|| shared.next_slot()).collect();
        assert_eq!(slots.len(), 5);
        assert_eq!(slots.iter().filter(|s| s.measured).count(), 3);
        assert_eq!(slots[4].intended, Some(start + Duration::from_millis(40)));
    }
}
