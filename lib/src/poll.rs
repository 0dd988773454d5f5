//! Waiting, the one way: a bounded poll with a deadline, and one progress line on stderr.
//!
//! Several tools wait for something remote (a workspace to turn ACTIVE, an expression to hold)
//! or run for a while (a load). All of them show the same live line while stderr is a
//! terminal, log the same text at info level otherwise (`-v`), and erase the line when done,
//! so that what stays on screen is the result or the error, never a half-drawn status.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// The live status line of one tool.
#[derive(Debug)]
pub struct Progress {
    tool: &'static str,
    live: bool,
    drawn: AtomicBool,
}

impl Progress {
    /// `live`: draw on stderr (a terminal, not `--quiet`: [`crate::cli::LogArgs::progress`]).
    pub fn new(tool: &'static str, live: bool) -> Self {
        Progress {
            tool,
            live,
            drawn: AtomicBool::new(false),
        }
    }

    /// Show `text` in place of the previous line, or log it when stderr is not a terminal.
    pub fn show(&self, text: impl Display) {
        if self.live {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{}: {text}\x1b[K", self.tool);
            let _ = err.flush();
            self.drawn.store(true, Ordering::Relaxed);
        } else {
            tracing::info!("{text}");
        }
    }

    /// Erase the line, if one was drawn.
    pub fn clear(&self) {
        if self.drawn.swap(false, Ordering::Relaxed) {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// What one attempt of a poll found.
pub enum Attempt<T> {
    /// The wait is over.
    Done(T),
    /// Not yet; the text says what was seen (shown in the progress line and the timeout).
    Pending(String),
}

/// How a poll is paced and bounded.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Give up this long after the start.
    pub timeout: Duration,
    /// The first pause between attempts; it doubles up to `max_interval`.
    pub interval: Duration,
    pub max_interval: Duration,
    /// Time kept at the end for the last attempt's own request.
    pub last_attempt: Duration,
}

impl Pace {
    /// A fixed interval.
    pub fn every(interval: Duration, timeout: Duration) -> Self {
        Pace {
            timeout,
            interval,
            max_interval: interval,
            last_attempt: Duration::ZERO,
        }
    }

    /// A first pause that doubles after each attempt up to `max_interval`.
    pub fn doubling(interval: Duration, max_interval: Duration, timeout: Duration) -> Self {
        Pace {
            timeout,
            interval,
            max_interval,
            last_attempt: Duration::ZERO,
        }
    }
}

/// How a poll ended without its condition holding.
#[derive(Debug, Clone)]
pub struct TimedOut {
    pub attempts: u64,
    /// What the last attempt saw.
    pub last: String,
}

/// Try `attempt` until it is done, an attempt fails, or `pace.timeout` passes; the progress
/// line says what is awaited (`what`), for how long, and what was last seen. On time-out the
/// error is made by `timed_out`.
pub async fn until<T, F, Fut>(
    what: &str,
    pace: Pace,
    progress: &Progress,
    mut attempt: F,
    timed_out: impl FnOnce(TimedOut) -> Error,
) -> Result<(T, u64)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Attempt<T>>>,
{
    let started = Instant::now();
    let deadline = started + pace.timeout;
    let mut pause = pace.interval;
    let mut attempts = 0u64;
    let outcome = loop {
        attempts += 1;
        let last = match attempt().await {
            Ok(Attempt::Done(value)) => break Ok((value, attempts)),
            Ok(Attempt::Pending(seen)) => seen,
            Err(e) => break Err(e),
        };
        progress.show(format_args!(
            "waiting for {what}: {}s, attempt {attempts}, last: {last}",
            started.elapsed().as_secs()
        ));
        let left = deadline.saturating_duration_since(Instant::now());
        if left <= pace.last_attempt {
            break Err(timed_out(TimedOut { attempts, last }));
        }
        tokio::time::sleep(pause.min(left - pace.last_attempt)).await;
        pause = (pause * 2).min(pace.max_interval);
    };
    progress.clear();
    outcome
}

/// Run `work` (a wait that cannot report as it goes, such as an SDK waiter) while the progress
/// line counts the seconds.
pub async fn while_showing<T>(what: &str, progress: &Progress, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut work = std::pin::pin!(work);
    let out = loop {
        tokio::select! {
            out = &mut work => break out,
            _ = tick.tick() => progress.show(format_args!(
                "waiting for {what}: {}s",
                started.elapsed().as_secs()
            )),
        }
    };
    progress.clear();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[tokio::test(start_paused = true)]
    async fn polls_until_done_and_counts_attempts() {
        let calls = &AtomicU32::new(0);
        let progress = Progress::new("test", false);
        let (value, attempts) = until(
            "three calls",
            Pace::every(Duration::from_secs(1), Duration::from_secs(60)),
            &progress,
            move || async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(if n == 3 {
                    Attempt::Done(n)
                } else {
                    Attempt::Pending(format!("call {n}"))
                })
            },
            |_| Error::remote("timed out"),
        )
        .await
        .unwrap();
        assert_eq!((value, attempts), (3, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline_with_what_it_last_saw() {
        let progress = Progress::new("test", false);
        let started = Instant::now();
        let err = until(
            "never",
            Pace {
                timeout: Duration::from_secs(10),
                interval: Duration::from_secs(1),
                max_interval: Duration::from_secs(4),
                last_attempt: Duration::ZERO,
            },
            &progress,
            || async { Ok(Attempt::<()>::Pending("still no".into())) },
            |t| Error::remote(format!("{} attempts, last: {}", t.attempts, t.last)),
        )
        .await
        .unwrap_err();
        // 1 + 2 + 4 + 3 (cut to the deadline) seconds: five attempts in ten seconds.
        assert_eq!(err.message, "5 attempts, last: still no");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_attempt_ends_the_poll_at_once() {
        let progress = Progress::new("test", false);
        let err = until(
            "a failure",
            Pace::every(Duration::from_secs(1), Duration::from_secs(60)),
            &progress,
            || async { Err::<Attempt<()>, _>(Error::usage("bad expression")) },
            |_| Error::remote("timed out"),
        )
        .await
        .unwrap_err();
        assert_eq!(err.message, "bad expression");
    }

    #[tokio::test(start_paused = true)]
    async fn while_showing_returns_the_work_result() {
        let progress = Progress::new("test", false);
        let out = while_showing("a sleep", &progress, async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            7
        })
        .await;
        assert_eq!(out, 7);
    }
}
