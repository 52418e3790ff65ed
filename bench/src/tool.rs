//! The programs measured (the lessons, bpftrace), run as children whose stdout
//! is read line by line as it comes: when they attached, their first event,
//! how many events, and the lessons' closing summary.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A lesson with `--json`: `attached`, `unlink` and `summary` lines.
    Lesson,
    /// `bpftrace -e '... { printf("hit\n"); }'`: `Attaching 1 probe...`, then `hit` per event.
    Bpftrace,
}

pub struct Tool {
    pub name: &'static str,
    pub path: PathBuf,
    /// What it attaches, for the report: "kprobe+kretprobe".
    pub probes: &'static str,
    pub kind: Kind,
}

/// What the lesson's `summary` line says.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct Summary {
    pub unlinks: u64,
    pub lost_events: u64,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LessonLine {
    Attached {
        function: String,
    },
    Summary(Summary),
    #[serde(other)]
    Other,
}

enum Milestone {
    Attached(Instant, Option<String>),
    FirstEvent(Instant),
}

pub struct Attached {
    pub after: Duration,
    /// The kernel function, as the lesson names it.
    pub function: Option<String>,
}

pub struct Running {
    name: &'static str,
    child: Child,
    started: Instant,
    milestones: Receiver<Milestone>,
    events: Arc<AtomicU64>,
    stdout: JoinHandle<Result<Option<Summary>>>,
    stderr: Option<JoinHandle<String>>,
}

/// How a run ended.
pub struct Stopped {
    /// Events the harness read from the tool's stdout.
    pub events: u64,
    pub summary: Option<Summary>,
    /// Runs of its BPF programs the kernel skipped because one was already
    /// running on that CPU (`recursion_misses`, Linux 5.12+): events neither
    /// sent nor counted lost.
    pub recursion_misses: u64,
}

impl Tool {
    /// `bpftrace --version`: also shows that it runs here at all.
    pub fn version(&self) -> Result<String> {
        let output = Command::new(&self.path)
            .arg("--version")
            .output()
            .with_context(|| format!("starting {}", self.path.display()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!(
                "{} --version ({}): {}",
                self.name,
                output.status,
                reason(&stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Start the tool; the clock of its start-up starts here.
    pub fn start(&self, args: &[&str]) -> Result<Running> {
        let mut command = Command::new(&self.path);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", self.path.display()))?;
        let (send, milestones) = mpsc::channel();
        let events = Arc::new(AtomicU64::new(0));
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let kind = self.kind;
        let counter = events.clone();
        Ok(Running {
            name: self.name,
            child,
            started,
            milestones,
            events,
            stdout: std::thread::spawn(move || read_stdout(stdout, kind, &send, &counter)),
            stderr: Some(std::thread::spawn(move || read_all(stderr))),
        })
    }
}

fn read_stdout(
    stdout: ChildStdout,
    kind: Kind,
    send: &Sender<Milestone>,
    events: &AtomicU64,
) -> Result<Option<Summary>> {
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut line = Vec::new();
    let mut summary = None;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(summary);
        }
        let now = Instant::now();
        let is_event = match kind {
            Kind::Lesson => line.starts_with(br#"{"type":"unlink""#),
            Kind::Bpftrace => line.starts_with(b"hit"),
        };
        if is_event {
            if events.fetch_add(1, Ordering::Relaxed) == 0 {
                let _ = send.send(Milestone::FirstEvent(now));
            }
            continue;
        }
        match kind {
            Kind::Lesson => match serde_json::from_slice(&line) {
                Ok(LessonLine::Attached { function }) => {
                    let _ = send.send(Milestone::Attached(now, Some(function)));
                }
                Ok(LessonLine::Summary(s)) => summary = Some(s),
                Ok(LessonLine::Other) => {}
                Err(e) => bail!("unexpected line {:?}: {e}", String::from_utf8_lossy(&line)),
            },
            Kind::Bpftrace if line.starts_with(b"Attaching ") => {
                let _ = send.send(Milestone::Attached(now, None));
            }
            Kind::Bpftrace => {}
        }
    }
}

fn read_all(mut stderr: ChildStderr) -> String {
    let mut bytes = Vec::new();
    let _ = stderr.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The line that says why a tool failed: its last error line, or its last line.
fn reason(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .rev()
        .find(|l| l.to_lowercase().starts_with("error"))
        .or(lines.last())
        .map_or_else(|| "no output".to_string(), |l| l.to_string())
}

impl Running {
    pub fn wait_attached(&mut self, timeout: Duration) -> Result<Attached> {
        loop {
            match self.next_milestone(timeout)? {
                Milestone::Attached(at, function) => {
                    return Ok(Attached {
                        after: at - self.started,
                        function,
                    })
                }
                Milestone::FirstEvent(_) => continue,
            }
        }
    }

    /// From start to the first event read from the tool's output.
    pub fn wait_first_event(&mut self, timeout: Duration) -> Result<Duration> {
        loop {
            if let Milestone::FirstEvent(at) = self.next_milestone(timeout)? {
                return Ok(at - self.started);
            }
        }
    }

    fn next_milestone(&mut self, timeout: Duration) -> Result<Milestone> {
        match self.milestones.recv_timeout(timeout) {
            Ok(milestone) => Ok(milestone),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                Err(anyhow!("{}: nothing within {timeout:?}", self.name))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait()?;
                let stderr = self.stderr_text();
                Err(anyhow!(
                    "{} exited before it was ready ({status}): {}",
                    self.name,
                    reason(&stderr)
                ))
            }
        }
    }

    /// Everything on stderr; call after the tool exited.
    fn stderr_text(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default()
    }

    /// Events read so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// The peak resident set so far (VmHWM), in KiB.
    pub fn peak_memory_kib(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmHWM in {path}"))
    }

    /// The sum of `recursion_misses` over the tool's BPF program descriptors.
    fn recursion_misses(&self) -> u64 {
        let fdinfo = format!("/proc/{}/fdinfo", self.child.id());
        std::fs::read_dir(fdinfo)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            .flat_map(|info| {
                info.lines()
                    .filter_map(|l| l.strip_prefix("recursion_misses:")?.trim().parse().ok())
                    .collect::<Vec<u64>>()
            })
            .sum()
    }

    /// SIGTERM, then everything the tool printed until it exited.
    pub fn stop(mut self) -> Result<Stopped> {
        let recursion_misses = self.recursion_misses();
        // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait()?;
        let stderr = self.stderr_text();
        let summary = self
            .stdout
            .join()
            .map_err(|_| anyhow!("{}: the stdout reader panicked", self.name))??;
        if !status.success() {
            bail!("{} exited with {status}: {}", self.name, reason(&stderr));
        }
        Ok(Stopped {
            events: self.events.load(Ordering::Relaxed),
            summary,
            recursion_misses,
        })
    }
}
