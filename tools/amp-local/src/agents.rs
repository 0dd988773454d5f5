//! The agent processes amp-local runs: one Prometheus in agent mode per ACTIVE scraper. This
//! module is the one place that starts, watches and stops them; [`crate::scrapers`] decides
//! when.
//!
//! Each agent lives in `<data-dir>/scrapers/<scraper-id>/`: `agent.yml` (its configuration,
//! mode 0600 since it holds the signing key), `data/` (its write-ahead log), `agent.log` (its
//! output), and while it runs `agent.pid` and `agent.listen` (`127.0.0.1:PORT`, a free port
//! picked at start). The files are what `scripts/local-stack down` and the next amp-local use
//! to stop an agent whose amp-local was killed: they stop a PID only if its command line
//! still names that agent's configuration file, so a reused PID is left alone.
//!
//! Agents are stopped by PID: TERM, then KILL after [`STOP_GRACE`], on DeleteScraper and when
//! amp-local itself stops (SIGTERM, SIGINT). Each runs in its own process group, so a Ctrl-C
//! meant for amp-local reaches amp-local only, which then stops its agents in order.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::store::write_atomically;

/// How long an agent has after TERM before it is killed. Its final remote-write flush is
/// bounded below this (`--storage.remote.flush-deadline`), and amp-local's own stop must fit
/// in the 10 s `scripts/local-stack down` gives it.
pub const STOP_GRACE: Duration = Duration::from_secs(4);
/// How long a new agent may take to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The agent's flush deadline on shutdown.
const FLUSH_DEADLINE: &str = "3s";

/// An agent that runs (or ran and has not been stopped yet).
struct Running {
    pid: u32,
    listen: SocketAddr,
    /// Set once the process has exited: how it ended.
    exit: watch::Receiver<Option<String>>,
}

impl Running {
    fn exited(&self) -> Option<String> {
        self.exit.borrow().clone()
    }
}

/// What [`Agents::start`] started.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub pid: u32,
    pub listen: SocketAddr,
}

#[derive(Default)]
struct Registry {
    running: BTreeMap<String, Running>,
    /// Set by [`Agents::stop_all`]: nothing starts any more.
    closing: bool,
}

pub struct Agents {
    bin: PathBuf,
    root: PathBuf,
    registry: Mutex<Registry>,
    /// Wakes the scrapers' supervisor: an agent exited, or something changed. Shared with
    /// the task that waits for each agent's exit.
    wake: Arc<Notify>,
}

impl Agents {
    /// Agents run from `bin`, with their files under `root`.
    pub fn new(bin: PathBuf, root: PathBuf) -> Self {
        Agents {
            bin,
            root,
            registry: Mutex::new(Registry::default()),
            wake: Arc::new(Notify::new()),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Prometheus binary agents run.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The directory of a scraper's agent.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn config_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("agent.yml")
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    pub fn closing(&self) -> bool {
        self.registry().closing
    }

    /// Whether the scraper's agent is running now.
    pub fn is_running(&self, id: &str) -> bool {
        self.registry()
            .running
            .get(id)
            .is_some_and(|r| r.exited().is_none())
    }

    /// Whether amp-local holds a process (running or exited, not yet stopped) for `id`.
    pub fn has(&self, id: &str) -> bool {
        self.registry().running.contains_key(id)
    }

    /// The scrapers that have an agent process.
    pub fn ids(&self) -> Vec<String> {
        self.registry().running.keys().cloned().collect()
    }

    /// How the scraper's agent ended, if it ran and exited by itself.
    pub fn exit_of(&self, id: &str) -> Option<String> {
        self.registry().running.get(id).and_then(Running::exited)
    }

    /// Check an agent configuration with `promtool check config --agent` when promtool sits
    /// beside the Prometheus binary (as scripts/setup installs them), so that what
    /// Prometheus would refuse is refused at CreateScraper, as AMP refuses it. Without
    /// promtool the agent's own start is the check (CREATION_FAILED).
    pub async fn check(&self, config: &str) -> Result<(), String> {
        // Beside the path given, or beside the file it links to.
        let resolved = std::fs::canonicalize(&self.bin).ok();
        let Some(promtool) = [Some(self.bin.as_path()), resolved.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(|bin| bin.parent().map(|d| d.join("promtool")))
            .find(|p| p.is_file())
        else {
            return Ok(());
        };
        std::fs::create_dir_all(&self.root)
            .map_err(|e| format!("creating {}: {e}", self.root.display()))?;
        // 0600, like agent.yml: it holds the signing key.
        let mut file = tempfile::Builder::new()
            .prefix(".check-")
            .suffix(".yml")
            .tempfile_in(&self.root)
            .map_err(|e| format!("writing a file to check: {e}"))?;
        std::io::Write::write_all(&mut file, config.as_bytes())
            .map_err(|e| format!("writing a file to check: {e}"))?;
        let path = file.path().to_owned();
        let run = tokio::process::Command::new(&promtool)
            .args(["check", "config", "--agent", "--syntax-only"])
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = match tokio::time::timeout(Duration::from_secs(20), run).await {
            Ok(Ok(output)) => output,
            // A checker that cannot run is no reason to refuse: the agent checks again.
            Ok(Err(e)) => {
                tracing::warn!("could not run {}: {e}", promtool.display());
                return Ok(());
            }
            Err(_) => {
                tracing::warn!("{} did not answer in 20 s", promtool.display());
                return Ok(());
            }
        };
        if output.status.success() {
            return Ok(());
        }
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let shown = path.display().to_string();
        let why: Vec<String> = text
            .lines()
            .map(|l| l.trim().replace(&shown, "the configuration"))
            .filter(|l| !l.is_empty() && !l.starts_with("Checking "))
            .collect();
        Err(why.join("; "))
    }

    /// Start the scraper's agent on `config` and wait until it answers `/-/ready`. An agent
    /// that exits first, or never answers, is an error saying why (the end of its log).
    pub async fn start(&self, id: &str, config: &str) -> Result<Started, String> {
        if self.closing() {
            return Err("amp-local is stopping".to_owned());
        }
        if !self.bin.is_file() {
            return Err(format!(
                "the Prometheus binary {} does not exist, so the scraper's agent cannot run: \
                 install it with scripts/setup, or start amp-local with --prometheus-bin PATH",
                self.bin.display()
            ));
        }
        // A process left from an earlier start (one that exited) is done with.
        let _ = self.stop(id).await;
        let dir = self.dir(id);
        std::fs::create_dir_all(dir.join("data"))
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        write_atomically(&self.config_path(id), config.as_bytes()).map_err(|e| e.to_string())?;
        // The port is found free, then given to Prometheus: another program may take it in
        // between, so a start that fails on its address is tried again on another port.
        let mut last = String::new();
        for _ in 0..3 {
            match self.start_once(id).await {
                Ok(started) => return Ok(started),
                Err((why, port_taken)) => {
                    last = why;
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    async fn start_once(&self, id: &str) -> Result<Started, (String, bool)> {
        let dir = self.dir(id);
        let fail = |why: String| (why, false);
        let listen = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| fail(format!("no free port on 127.0.0.1 for the agent: {e}")))?;
        let log_path = dir.join("agent.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| fail(format!("opening {}: {e}", log_path.display())))?;
        let log_len = log.metadata().map(|m| m.len()).unwrap_or(0);
        let err_log = log
            .try_clone()
            .map_err(|e| fail(format!("opening {}: {e}", log_path.display())))?;
        let mut command = tokio::process::Command::new(&self.bin);
        command
            .arg("--enable-feature=agent")
            .arg(format!("--config.file={}", self.config_path(id).display()))
            .arg(format!(
                "--storage.agent.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .arg(format!("--storage.remote.flush-deadline={FLUSH_DEADLINE}"))
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .kill_on_drop(false);
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", self.bin.display())))?;
        let Some(pid) = child.id() else {
            return Err(fail("the agent exited at once".to_owned()));
        };
        let (tx, rx) = watch::channel(None);
        {
            let mut registry = self.registry();
            if registry.closing {
                // Stopping began while this one was being started: it never joins.
                let _ = child.start_kill();
                return Err(fail("amp-local is stopping".to_owned()));
            }
            registry.running.insert(
                id.to_owned(),
                Running {
                    pid,
                    listen,
                    exit: rx.clone(),
                },
            );
        }
        let _ = std::fs::write(dir.join("agent.pid"), format!("{pid}\n"));
        let _ = std::fs::write(dir.join("agent.listen"), format!("{listen}\n"));
        // The process is waited for (and so reaped) by this task alone; everyone else learns
        // of its end through the watch.
        let wake = Arc::clone(&self.wake);
        tokio::spawn(async move {
            let how = match child.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => format!("lost track of it: {e}"),
            };
            let _ = tx.send(Some(how));
            wake.notify_one();
        });

        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| fail(format!("building an HTTP client: {e}")))?;
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        let mut exit = rx;
        loop {
            let exited = exit.borrow().clone();
            if let Some(how) = exited {
                let tail = log_tail(&log_path, log_len);
                self.registry().running.remove(id);
                self.forget_pid_files(id);
                let taken = tail.contains("address already in use");
                return Err((
                    format!("the scraper's agent exited before it was ready ({how}): {tail}"),
                    taken,
                ));
            }
            let ready = client
                .get(format!("http://{listen}/-/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                tracing::info!(
                    "scraper {id}: agent pid {pid} on {listen} ({})",
                    self.config_path(id).display()
                );
                return Ok(Started { pid, listen });
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = self.stop(id).await;
                return Err(fail(format!(
                    "the scraper's agent did not become ready in {} s; see {}",
                    READY_TIMEOUT.as_secs(),
                    log_path.display()
                )));
            }
            tokio::select! {
                _ = exit.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Stop the scraper's agent by its PID: TERM, then KILL after [`STOP_GRACE`]. Stopping one
    /// that is not running is not an error.
    pub async fn stop(&self, id: &str) -> Result<(), String> {
        let Some(running) = self.registry().running.remove(id) else {
            return Ok(());
        };
        let result = stop_running(id, running).await;
        if result.is_ok() {
            self.forget_pid_files(id);
        }
        result
    }

    /// Stop every agent (amp-local is stopping); nothing starts afterwards.
    pub async fn stop_all(&self) {
        let all: Vec<(String, Running)> = {
            let mut registry = self.registry();
            registry.closing = true;
            std::mem::take(&mut registry.running).into_iter().collect()
        };
        let stops = all.into_iter().map(|(id, running)| async move {
            match stop_running(&id, running).await {
                Ok(()) => self.forget_pid_files(&id),
                Err(e) => tracing::warn!("scraper {id}: {e}"),
            }
        });
        futures_util::future::join_all(stops).await;
    }

    fn forget_pid_files(&self, id: &str) {
        let dir = self.dir(id);
        let _ = std::fs::remove_file(dir.join("agent.pid"));
        let _ = std::fs::remove_file(dir.join("agent.listen"));
    }

    /// Remove a deleted scraper's files (its agent is stopped).
    pub fn remove_files(&self, id: &str) {
        let dir = self.dir(id);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove {}: {e}", dir.display());
        }
    }

    /// At start: stop the agents an earlier amp-local left running (it was killed before it
    /// could stop them), found by their pid files, and remove the files of scrapers that no
    /// longer exist. The supervisor then starts afresh the agents of ACTIVE scrapers.
    pub async fn reap_stale(&self, known: &[String]) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if !entry.path().is_dir() {
                continue;
            }
            if let Some(pid) = self.stale_pid(&id) {
                tracing::info!(
                    "scraper {id}: stopping the agent (pid {pid}) an earlier amp-local left"
                );
                if let Err(e) = stop_foreign(pid).await {
                    tracing::warn!("scraper {id}: {e}");
                }
            }
            self.forget_pid_files(&id);
            if !known.contains(&id) {
                self.remove_files(&id);
            }
        }
    }

    /// The PID in a scraper's pid file, if that process still runs this scraper's agent.
    fn stale_pid(&self, id: &str) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir(id).join("agent.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let marker = format!("--config.file={}", self.config_path(id).display());
        cmdline.contains(&marker).then_some(pid)
    }
}

/// What an agent said of its failure in the log written since `from`, on one line for an
/// error message: the `err` (else `msg`) of its error lines, else its last lines.
fn log_tail(path: &Path, from: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(0).min(text.len());
    let text = String::from_utf8_lossy(&text[start..]);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<String> = lines
        .iter()
        .filter(|l| l.contains("level=error") || l.contains("level=ERROR"))
        .filter_map(|l| logfmt_value(l, "err").or_else(|| logfmt_value(l, "msg")))
        .collect();
    let tail = if errors.is_empty() {
        lines[lines.len().saturating_sub(3)..].join(" | ")
    } else {
        errors.join("; ")
    };
    if tail.is_empty() {
        format!("it wrote nothing to {}", path.display())
    } else {
        tail
    }
}

/// The value of `key=` in a logfmt line (Prometheus's log format), quoted or bare.
fn logfmt_value(line: &str, key: &str) -> Option<String> {
    let at = line
        .match_indices(&format!("{key}="))
        .find(|(i, _)| *i == 0 || line[..*i].ends_with(' '))?
        .0;
    let rest = &line[at + key.len() + 1..];
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => return Some(out),
                c => out.push(c),
            }
        }
        Some(out)
    } else {
        Some(rest.split(' ').next().unwrap_or_default().to_owned())
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::other(format!("{pid} is not a process id")))?;
    rustix::process::kill_process(pid, sig).map_err(std::io::Error::from)
}

/// Whether the process behind `exit` ends within `within`.
async fn exits_within(exit: &watch::Receiver<Option<String>>, within: Duration) -> bool {
    let mut exit = exit.clone();
    tokio::time::timeout(within, exit.wait_for(Option::is_some))
        .await
        .is_ok()
}

/// Stop a child of ours: TERM, wait for its waiter to see it exit, KILL if it will not.
async fn stop_running(id: &str, running: Running) -> Result<(), String> {
    if running.exited().is_some() {
        return Ok(());
    }
    let pid = running.pid;
    let _ = signal(pid, rustix::process::Signal::TERM);
    if exits_within(&running.exit, STOP_GRACE).await {
        tracing::info!(
            "scraper {id}: agent pid {pid} on {} stopped",
            running.listen
        );
        return Ok(());
    }
    tracing::warn!(
        "scraper {id}: agent pid {pid} still runs {} s after TERM: KILL",
        STOP_GRACE.as_secs()
    );
    let _ = signal(pid, rustix::process::Signal::KILL);
    if exits_within(&running.exit, Duration::from_secs(5)).await {
        Ok(())
    } else {
        Err(format!(
            "its agent (pid {pid}) did not exit, even after KILL"
        ))
    }
}

/// Stop a process that is not our child (left by an earlier amp-local): TERM, KILL, and
/// wait for it to be gone from /proc (its parent now reaps it).
async fn stop_foreign(pid: u32) -> Result<(), String> {
    let gone = || !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid);
    let _ = signal(pid, rustix::process::Signal::TERM);
    for step in 0..100 {
        if gone() {
            return Ok(());
        }
        if step == u32::try_from(STOP_GRACE.as_millis() / 100).unwrap_or(40) {
            let _ = signal(pid, rustix::process::Signal::KILL);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("the agent left running (pid {pid}) did not exit"))
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agents_failure_is_told_by_its_error_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("agent.log");
        let old = "ts=1 level=error msg=\"from an earlier start\"\n";
        let new = "ts=2 caller=main.go:198 level=info msg=\"Experimental agent mode enabled.\"\n\
                   ts=3 caller=main.go:527 level=error msg=\"Error loading config\" err=\"parsing YAML file a.yml: unknown relabel action \\\"keeep\\\"\"\n";
        std::fs::write(&log, format!("{old}{new}")).expect("written");
        assert_eq!(
            log_tail(&log, old.len() as u64),
            "parsing YAML file a.yml: unknown relabel action \"keeep\""
        );
        std::fs::write(
            &log,
            "listen tcp 127.0.0.1:1: bind: address already in use\n",
        )
        .expect("written");
        assert!(log_tail(&log, 0).contains("address already in use"));
        std::fs::write(&log, "").expect("written");
        assert!(log_tail(&log, 0).starts_with("it wrote nothing to "));
    }
}
