//! The programs measured (the lessons, bpftrace), run as children whose stdout
//! is read line by line (as it comes from a pipe, or from a file once they
//! stopped): when they attached, their first event, how many events, and the
//! lessons' closing summary.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustix::process::{kill_process, Pid, Signal};
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
    /// Runs of its probes the kernel skipped (events neither sent nor counted
    /// lost); null where the kernel does not count them.
    pub skipped_by_kernel: Option<u64>,
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

/// Where a tool's stdout goes.
pub enum Output {
    /// A pipe a thread of the harness reads as it comes: milestones have times.
    Pipe,
    /// A file (on tmpfs), as a user's `> FILE`: nothing of the harness competes
    /// with the tool for the CPUs while it runs; its lines are checked after it stopped.
    File(PathBuf),
}

pub struct Running {
    name: &'static str,
    kind: Kind,
    child: Child,
    started: Instant,
    stdout: Stdout,
    stderr: Option<JoinHandle<String>>,
}

enum Stdout {
    Pipe {
        milestones: Receiver<Milestone>,
        events: Arc<AtomicU64>,
        reader: JoinHandle<Result<Option<Summary>>>,
    },
    File {
        path: PathBuf,
        /// Bytes of the file looked at so far, and the line ends in them.
        looked_at: u64,
        lines: u64,
    },
}

/// How a run ended.
pub struct Stopped {
    /// Events the harness read from the tool's stdout.
    pub events: u64,
    pub summary: Option<Summary>,
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
    pub fn start(&self, args: &[&str], output: Output) -> Result<Running> {
        let mut command = Command::new(&self.path);
        command
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        match &output {
            Output::Pipe => command.stdout(Stdio::piped()),
            Output::File(path) => command.stdout(
                File::create(path).with_context(|| format!("creating {}", path.display()))?,
            ),
        };
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", self.path.display()))?;
        let kind = self.kind;
        let stdout = match output {
            Output::Pipe => {
                let (send, milestones) = mpsc::channel();
                let events = Arc::new(AtomicU64::new(0));
                let counter = events.clone();
                let pipe = child.stdout.take().expect("piped");
                let reader = std::thread::spawn(move || read_lines(pipe, kind, &send, &counter));
                Stdout::Pipe {
                    milestones,
                    events,
                    reader,
                }
            }
            Output::File(path) => Stdout::File {
                path,
                looked_at: 0,
                lines: 0,
            },
        };
        let stderr = child.stderr.take().expect("piped");
        Ok(Running {
            name: self.name,
            kind,
            child,
            started,
            stdout,
            stderr: Some(std::thread::spawn(move || read_all(stderr))),
        })
    }
}

/// Count the events in a tool's output and note its milestones; the lesson's
/// summary line, if any. Any other line is an error.
fn read_lines(
    output: impl Read,
    kind: Kind,
    send: &Sender<Milestone>,
    events: &AtomicU64,
) -> Result<Option<Summary>> {
    let mut reader = BufReader::with_capacity(1 << 16, output);
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

    /// From start to the first event read from the tool's output (a pipe).
    pub fn wait_first_event(&mut self, timeout: Duration) -> Result<Duration> {
        if matches!(self.stdout, Stdout::File { .. }) {
            bail!(
                "{}: the first event is timed through a pipe only",
                self.name
            );
        }
        loop {
            if let Milestone::FirstEvent(at) = self.next_milestone(timeout)? {
                return Ok(at - self.started);
            }
        }
    }

    fn next_milestone(&mut self, timeout: Duration) -> Result<Milestone> {
        let next = match &self.stdout {
            Stdout::Pipe { milestones, .. } => milestones.recv_timeout(timeout),
            Stdout::File { path, .. } => {
                first_line_milestone(path, self.kind, &mut self.child, timeout)?
            }
        };
        match next {
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

    /// Events output so far: read from the pipe, or the lines after the
    /// announcing one in the file (only the lines added since the last call are read).
    pub fn events(&mut self) -> Result<u64> {
        match &mut self.stdout {
            Stdout::Pipe { events, .. } => Ok(events.load(Ordering::Relaxed)),
            Stdout::File {
                path,
                looked_at,
                lines,
            } => {
                let mut file =
                    File::open(&*path).with_context(|| format!("reading {}", path.display()))?;
                file.seek(SeekFrom::Start(*looked_at))?;
                let mut added = Vec::new();
                *looked_at += file.read_to_end(&mut added)? as u64;
                *lines += added.iter().filter(|&&b| b == b'\n').count() as u64;
                Ok(lines.saturating_sub(1))
            }
        }
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

    /// SIGTERM, then everything the tool printed until it exited.
    pub fn stop(mut self) -> Result<Stopped> {
        // The child is not reaped yet, so its pid is still its own.
        let _ = kill_process(Pid::from_child(&self.child), Signal::TERM);
        let status = self.child.wait()?;
        let stderr = self.stderr_text();
        let (events, summary) = match self.stdout {
            Stdout::Pipe { events, reader, .. } => {
                let summary = reader
                    .join()
                    .map_err(|_| anyhow!("{}: the stdout reader panicked", self.name))??;
                (events.load(Ordering::Relaxed), summary)
            }
            Stdout::File { path, .. } => {
                let file =
                    File::open(&path).with_context(|| format!("reading {}", path.display()))?;
                let events = AtomicU64::new(0);
                let summary = read_lines(file, self.kind, &mpsc::channel().0, &events);
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
                (events.into_inner(), summary?)
            }
        };
        if !status.success() {
            bail!("{} exited with {status}: {}", self.name, reason(&stderr));
        }
        Ok(Stopped { events, summary })
    }
}

/// Wait for the first whole line in `path` and what it announces (nothing if it
/// announces nothing), while `child` runs; as a channel would say it.
fn first_line_milestone(
    path: &Path,
    kind: Kind,
    child: &mut Child,
    timeout: Duration,
) -> Result<Result<Milestone, RecvTimeoutError>> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if let Some(end) = text.iter().position(|&b| b == b'\n') {
            let (send, milestones) = mpsc::channel();
            read_lines(&text[..=end], kind, &send, &AtomicU64::new(0))?;
            return Ok(milestones
                .try_recv()
                .map_err(|_| RecvTimeoutError::Disconnected));
        }
        if child.try_wait()?.is_some() {
            return Ok(Err(RecvTimeoutError::Disconnected));
        }
        if Instant::now() >= deadline {
            return Ok(Err(RecvTimeoutError::Timeout));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
