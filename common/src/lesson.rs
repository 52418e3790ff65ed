//! Everything a lesson does around its probes: flags, target, error
//! explanations, the `-- COMMAND` child, the poll loop and the summary.

use std::cell::{Cell, RefCell};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use colored::Colorize;
use libbpf_rs::{Link, MapCore, MapFlags, MapMut, PrintLevel, ProgramMut, RingBufferBuilder};

use crate::cli::LessonArgs;
use crate::command::{exit_code, Command};
use crate::events::{self, Clock, Event, JsonLine};
use crate::failures::{self, Facts, Observed, Probe, Stage};
use crate::printk::{self, TracePipe};
use crate::target::{self, Target};

/// How often the loop looks at the clock, the command and Ctrl-C.
const TICK: Duration = Duration::from_millis(100);

pub struct Lesson {
    args: LessonArgs,
    probe: Probe,
    target: Target,
    trace_pipe: Option<TracePipe>,
}

impl Lesson {
    /// Set up output, signals and libbpf's log, and find the function to probe.
    pub fn start(args: LessonArgs, probe: Probe) -> Result<Lesson> {
        args.color.apply();
        capture_libbpf_log(args.verbose);
        install_stop_handlers();
        let root = Path::new("/");
        let target = target::resolve(args.function.as_deref(), root)?;
        // Open trace_pipe before loading anything, so a missing tracefs fails fast.
        let trace_pipe = if args.printk {
            Some(TracePipe::open(root)?)
        } else {
            None
        };
        Ok(Lesson {
            args,
            probe,
            target,
            trace_pipe,
        })
    }

    /// The kernel function to attach to.
    pub fn function(&self) -> &str {
        &self.target.function
    }

    /// Report only processes in `traced_tgids` (`--pid`, or `-- COMMAND`).
    pub fn filter_by_tgid(&self) -> bool {
        self.args.pid.is_some() || self.follows_command()
    }

    /// `-- COMMAND` was given: load the programs that follow its children.
    pub fn follows_command(&self) -> bool {
        !self.args.command.is_empty()
    }

    /// `--comm` as the BPF side's `char[16]`, all zero when unset.
    pub fn filter_comm(&self) -> [i8; 16] {
        let mut comm = [0i8; 16];
        for (slot, byte) in comm
            .iter_mut()
            .zip(self.args.comm.as_deref().unwrap_or("").bytes())
        {
            *slot = byte as i8;
        }
        comm
    }

    pub fn use_printk(&self) -> bool {
        self.args.printk
    }

    pub fn ring_buffer_bytes(&self) -> u32 {
        self.args.ring_buffer_kib * 1024
    }

    /// Turn a libbpf error into the catalogue's one line: errno, cause, next step.
    pub fn explain(&self, stage: Stage, what: &str, error: libbpf_rs::Error) -> anyhow::Error {
        let log = LIBBPF_LOG.lock().map(|log| log.clone()).unwrap_or_default();
        let observed = Observed {
            probe: self.probe,
            stage,
            errno: failures::errno_of(&error),
            libbpf_log: &log,
        };
        let what = format!("{what} on {}", self.target.function);
        anyhow!(failures::explain(
            &what,
            &observed,
            &Facts::read(Path::new("/"))
        ))
    }

    /// Attach the programs that keep `traced_tgids` equal to the command and its
    /// children; nothing when there is no `-- COMMAND` (they were not loaded).
    pub fn follow_command(
        &self,
        follow_fork: &ProgramMut<'_>,
        forget_exit: &ProgramMut<'_>,
    ) -> Result<Vec<Link>> {
        if !self.follows_command() {
            return Ok(Vec::new());
        }
        [follow_fork, forget_exit]
            .into_iter()
            .map(|program| {
                program.attach().map_err(|e| {
                    self.explain(Stage::Attach, "attaching the fork/exit tracepoints", e)
                })
            })
            .collect()
    }

    /// Say what is attached, then print events until a limit, Ctrl-C, or the command's end.
    pub fn watch(
        mut self,
        events: &MapMut<'_>,
        traced_tgids: &MapMut<'_>,
        lost_events: &u64,
    ) -> Result<ExitCode> {
        if let Some(pid) = self.args.pid {
            trace_pid(traced_tgids, pid)?;
        }
        self.announce();
        let mut child = match self.follows_command() {
            true => {
                // Trace ourselves for the instant of the fork: follow_fork then adds the
                // child in the kernel before it runs, so not even its first unlink is missed.
                let lesson_pid = std::process::id();
                trace_pid(traced_tgids, lesson_pid)?;
                let child = Command::spawn(&self.args.command);
                untrace_pid(traced_tgids, lesson_pid)?;
                Some(child?)
            }
            false => None,
        };

        let seen = Cell::new(0u64);
        let output_closed = Cell::new(false);
        let clock = Clock::now();
        let limit = self.args.count.unwrap_or(u64::MAX);
        // Buffered, flushed once per poll: a write(2) per event would cap the event rate.
        let stdout = RefCell::new(BufWriter::with_capacity(64 * 1024, std::io::stdout()));
        let print = |line: String| {
            if !output_closed.get() && writeln!(stdout.borrow_mut(), "{line}").is_err() {
                output_closed.set(true); // e.g. `| head`: stop quietly
            }
        };
        let flush = || {
            if stdout.borrow_mut().flush().is_err() {
                output_closed.set(true);
            }
        };
        let deadline = self
            .args
            .duration
            .map(|secs| Instant::now() + Duration::from_secs_f64(secs));
        let json = self.args.json;
        let mut on_event = |data: &[u8]| {
            if seen.get() < limit {
                if let Some(event) = Event::parse(data) {
                    seen.set(seen.get() + 1);
                    print(format_event(&event, &clock, json));
                }
            }
            0
        };
        // --printk: one unlink per exit message; other tracers' lines are skipped.
        let print_trace_lines = |lines: Vec<String>| {
            for line in lines.into_iter().filter(|l| printk::is_lesson_line(l)) {
                if seen.get() < limit {
                    seen.set(seen.get() + u64::from(printk::is_exit_line(&line)));
                    print(match json {
                        true => JsonLine::Printk { line: &line }.to_line(),
                        false => line,
                    });
                }
            }
        };
        let mut ring = None;
        if self.trace_pipe.is_none() {
            let mut builder = RingBufferBuilder::new();
            builder
                .add(events, &mut on_event)
                .context("setting up the ring buffer")?;
            ring = Some(builder.build().context("setting up the ring buffer")?);
        }
        let mut status = None;
        loop {
            match (&ring, &mut self.trace_pipe) {
                (Some(ring), _) => {
                    if let Err(err) = ring.poll(TICK) {
                        if failures::errno_of(&err) != Some(libc::EINTR) {
                            return Err(anyhow!("reading the ring buffer: {err}"));
                        }
                    }
                }
                (None, Some(pipe)) => {
                    pipe.wait(TICK.as_millis() as i32);
                    print_trace_lines(pipe.read_lines()?);
                }
                (None, None) => unreachable!("a lesson reads either the ring buffer or trace_pipe"),
            }
            flush();
            if let Some(child) = &mut child {
                status = child.try_wait()?;
            }
            let stop = STOP.load(Ordering::Relaxed)
                || status.is_some()
                || seen.get() >= limit
                || output_closed.get()
                || deadline.is_some_and(|d| Instant::now() >= d);
            if stop {
                break;
            }
        }
        // Events already in the buffer (say, the command's last unlinks) still count.
        if let Some(ring) = &ring {
            let _ = ring.consume();
        }
        drop(ring);
        if let Some(pipe) = &mut self.trace_pipe {
            print_trace_lines(pipe.read_lines()?);
        }
        let lost = read_lost(lost_events);
        flush(); // the events first, then the summary (on stderr in text mode)
        self.summarise(seen.get(), lost, &print);
        flush();
        if let Some(mut child) = child {
            let status = match status {
                Some(status) => status,
                None if STOP.load(Ordering::Relaxed) => child.terminate()?,
                None => child.terminate_after_watch()?,
            };
            return Ok(ExitCode::from(exit_code(status)));
        }
        Ok(ExitCode::SUCCESS)
    }

    fn announce(&self) {
        let [entry, exit] = self.probe.programs();
        let mode = if self.args.printk {
            "printk"
        } else {
            "ring_buffer"
        };
        if self.args.json {
            println!(
                "{}",
                JsonLine::Attached {
                    function: &self.target.function,
                    probes: [entry, exit],
                    mode
                }
                .to_line()
            );
            return;
        }
        eprintln!(
            "{} {entry} + {exit} attached to {} ({}); {}",
            format!("{}:", self.probe.lesson()).green().bold(),
            self.target.function.bold(),
            self.target.found_in,
            match (self.follows_command(), self.args.printk) {
                (true, _) => "running the command".to_string(),
                (false, true) => "printing trace_pipe, Ctrl-C to stop".to_string(),
                (false, false) => "Ctrl-C to stop".to_string(),
            }
        );
        if !self.args.printk {
            println!("{}", events::TEXT_HEADER.bold());
        }
    }

    fn summarise(&self, seen: u64, lost: u64, print: &impl Fn(String)) {
        if self.args.json {
            print(
                JsonLine::Summary {
                    unlinks: seen,
                    lost_events: lost,
                }
                .to_line(),
            );
            return;
        }
        let lost_text = format!("{lost} events lost");
        let lost_text = if lost > 0 {
            lost_text.red().bold().to_string()
        } else {
            lost_text
        };
        eprintln!(
            "{} {seen} unlinks seen, {lost_text}",
            format!("{}:", self.probe.lesson()).green().bold()
        );
    }
}

fn format_event(event: &Event, clock: &Clock, json: bool) -> String {
    if json {
        JsonLine::unlink(event, clock).to_line()
    } else {
        events::format_text(event, clock)
    }
}

fn trace_pid(traced_tgids: &MapMut<'_>, pid: u32) -> Result<()> {
    traced_tgids
        .update(&pid.to_ne_bytes(), &[1u8], MapFlags::ANY)
        .with_context(|| format!("adding pid {pid} to the traced processes"))
}

fn untrace_pid(traced_tgids: &MapMut<'_>, pid: u32) -> Result<()> {
    traced_tgids
        .delete(&pid.to_ne_bytes())
        .with_context(|| format!("removing pid {pid} from the traced processes"))
}

/// The BPF side bumps this counter in shared memory at any time.
fn read_lost(counter: &u64) -> u64 {
    // SAFETY: a valid, aligned u64 in the mmapped .bss; volatile because the kernel writes it.
    unsafe { std::ptr::read_volatile(counter) }
}

impl Command {
    /// `--count`/`--duration` ended the watch: the command still gets to finish.
    fn terminate_after_watch(&mut self) -> Result<std::process::ExitStatus> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if STOP.load(Ordering::Relaxed) {
                return self.terminate();
            }
            std::thread::sleep(TICK);
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Ctrl-C and SIGTERM end the loop, so the summary prints and links detach.
fn install_stop_handlers() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic; no SA_RESTART, so poll() wakes up.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = request_stop as *const () as usize;
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// libbpf's messages: kept to explain failures, shown with -v.
static LIBBPF_LOG: Mutex<String> = Mutex::new(String::new());
static SHOW_LIBBPF_LOG: AtomicBool = AtomicBool::new(false);

fn capture_libbpf_log(verbose: bool) {
    SHOW_LIBBPF_LOG.store(verbose, Ordering::Relaxed);
    let level = if verbose {
        PrintLevel::Debug
    } else {
        PrintLevel::Info
    };
    libbpf_rs::set_print(Some((level, keep_libbpf_message)));
}

fn keep_libbpf_message(_level: PrintLevel, message: String) {
    if SHOW_LIBBPF_LOG.load(Ordering::Relaxed) {
        eprint!("{message}");
    }
    if let Ok(mut log) = LIBBPF_LOG.lock() {
        log.push_str(&message);
    }
}
