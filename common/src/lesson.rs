//! Everything a lesson does around its probes that is not the lesson's topic:
//! flags, target, error explanations, the `-- COMMAND` child, printing and the
//! summary. The ring buffer and the poll loop are in each lesson's main.rs.

use std::cell::{Cell, RefCell};
use std::io::{self, BufWriter, Stdout, Write};
use std::mem::offset_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use colored::Colorize;
use libbpf_rs::{libbpf_sys, Link, MapCore, MapFlags, MapMut, ProgramMut};

use crate::classify::{self, Observed};
use crate::cli::LessonArgs;
use crate::command::{exit_code, Command, Running};
use crate::events::{self, Clock, Event, EventWriter, JsonLine};
use crate::facts::Facts;
use crate::libbpf_log;
use crate::printk::{self, TracePipe};
use crate::probe::{Probe, Stage};
use crate::stop::{self, STOP_SIGNALS};
use crate::target::{self, Target};

/// How often the poll loop looks at the clock, the command and Ctrl-C.
pub const TICK: Duration = Duration::from_millis(100);

pub struct Lesson {
    args: LessonArgs,
    probe: Probe,
    target: Target,
    trace_pipe: Option<TracePipe>,
    /// `-- COMMAND`, checked at start, started once the programs are attached.
    command: Option<Command>,
}

impl Lesson {
    /// Set up output, signals and libbpf's log, and find the function to probe.
    pub fn start(args: LessonArgs, probe: Probe) -> Result<Lesson> {
        args.color.apply(&io::stderr());
        libbpf_log::capture(args.verbose);
        stop::install_handlers();
        // A command that cannot run is reported before the slow part, the load.
        let command = match args.command.is_empty() {
            true => None,
            false => Some(Command::new(&args.command, args.as_root)?),
        };
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
            command,
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
        self.command.is_some()
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
        let log = libbpf_log::text();
        let observed = Observed {
            probe: self.probe,
            stage,
            errno: classify::errno_of(&error),
            libbpf_log: &log,
        };
        let what = format!("{what} on {}", self.target.function);
        anyhow!(classify::explain(&what, &observed, &Facts::live()))
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

    /// Where the events go: stdout, as text or JSON, up to `--count`.
    pub fn output(&self) -> Output {
        Output {
            writer: RefCell::new(EventWriter::new(Clock::now(), self.args.json)),
            stdout: RefCell::new(BufWriter::with_capacity(64 * 1024, io::stdout())),
            seen: Cell::new(0),
            limit: self.args.count.unwrap_or(u64::MAX),
            closed: Cell::new(false),
        }
    }

    /// The programs are attached: trace `--pid`, say so, and start `-- COMMAND`.
    pub fn begin(&self, traced_tgids: &MapMut<'_>) -> Result<Watch> {
        if let Some(pid) = self.args.pid {
            trace_pid(traced_tgids, pid)?;
        }
        // Say so before the command starts: under emulation the command may
        // run to its end before the lesson is scheduled again, and its output
        // must not come before this line. A stop signal that already came
        // means the command will not start (start() says why), so no line.
        if self.command.is_none() || STOP_SIGNALS.first().is_none() {
            self.announce();
        }
        let child = match &self.command {
            Some(command) => {
                // Trace ourselves for the instant of the fork: follow_fork then adds the
                // child in the kernel before it runs, so not even its first unlink is missed.
                let lesson_pid = std::process::id();
                trace_pid(traced_tgids, lesson_pid)?;
                let child = command.start(&STOP_SIGNALS);
                untrace_pid(traced_tgids, lesson_pid)?;
                Some(child?)
            }
            None => None,
        };
        Ok(Watch {
            child,
            status: None,
            deadline: self
                .args
                .duration
                .map(|secs| Instant::now() + Duration::from_secs_f64(secs)),
        })
    }

    /// `--printk`: the programs write to trace_pipe instead of the ring
    /// buffer; print the lesson's lines from there (step 1's way, with filters).
    pub fn watch_trace_pipe(
        mut self,
        traced_tgids: &MapMut<'_>,
        lost_events: &AtomicU64,
        probes: [(&ProgramMut<'_>, &Link); 2],
    ) -> Result<ExitCode> {
        let mut pipe = self
            .trace_pipe
            .take()
            .context("--printk without trace_pipe")?;
        let output = self.output();
        let json = self.args.json;
        // One unlink per exit message; other tracers' lines are skipped.
        let print_lines = |lines: Vec<String>| {
            for line in lines.into_iter().filter(|l| printk::is_lesson_line(l)) {
                let counts = printk::is_exit_line(&line);
                output.print_line(
                    counts,
                    &match json {
                        true => JsonLine::Printk { line: &line }.to_line(),
                        false => line,
                    },
                );
            }
        };
        let mut watch = self.begin(traced_tgids)?;
        while watch.keep_going(&output)? {
            pipe.wait(TICK);
            print_lines(pipe.read_lines()?);
            output.flush();
        }
        print_lines(pipe.read_lines()?);
        self.finish(watch, output, lost_events, probes, None)
    }

    /// Print the summary, and wait for or stop the command: the lesson's exit code.
    /// `exits_missed`: unlinks whose entry was parked but whose exit program
    /// never ran (counted by the lesson; `None` in printk mode, which parks nothing).
    pub fn finish(
        &self,
        watch: Watch,
        output: Output,
        lost_events: &AtomicU64,
        probes: [(&ProgramMut<'_>, &Link); 2],
        exits_missed: Option<u64>,
    ) -> Result<ExitCode> {
        let lost = lost_events.load(Ordering::Relaxed);
        let skipped = skipped_by_kernel(self.probe, probes, exits_missed.is_some());
        output.flush(); // the events first, then the summary (on stderr in text mode)
                        // A kretprobe's missed returns are reported as such; a skipped fexit
                        // is the kernel's recursion guard, so it joins the skipped runs.
        let (skipped, returns_missed) = match (self.probe, exits_missed) {
            (Probe::Kprobe, missed) => (skipped, missed),
            (Probe::Fentry, Some(missed)) => (skipped.map(|s| s + missed), None),
            (Probe::Fentry, None) => (skipped, None),
        };
        let counts = Counts {
            seen: output.seen.get(),
            lost,
            skipped,
            returns_missed,
        };
        self.summarise(&counts, &output);
        output.flush();
        if let Some(mut child) = watch.child {
            let status = match watch.status {
                Some(status) => status,
                // After --count or --duration the command still gets to finish;
                // after Ctrl-C it is terminated.
                None => child.finish(&STOP_SIGNALS)?,
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

    fn summarise(&self, counts: &Counts, output: &Output) {
        if self.args.json {
            output.print_line(
                false,
                &JsonLine::Summary {
                    unlinks: counts.seen,
                    lost_events: counts.lost,
                    skipped_by_kernel: counts.skipped,
                    returns_missed: counts.returns_missed,
                }
                .to_line(),
            );
            return;
        }
        eprintln!(
            "{} {}",
            format!("{}:", self.probe.lesson()).green().bold(),
            summary_text(counts, self.probe)
        );
    }
}

/// The watch's state besides the output: the command and the deadline.
pub struct Watch {
    child: Option<Running>,
    status: Option<std::process::ExitStatus>,
    deadline: Option<Instant>,
}

impl Watch {
    /// False once Ctrl-C, the command's end, `--count`, a closed stdout or
    /// `--duration` ends the watch.
    pub fn keep_going(&mut self, output: &Output) -> Result<bool> {
        if let Some(child) = &mut self.child {
            self.status = child.try_wait()?;
        }
        let stop = STOP_SIGNALS.requested()
            || self.status.is_some()
            || output.seen.get() >= output.limit
            || output.closed.get()
            || self.deadline.is_some_and(|d| Instant::now() >= d);
        Ok(!stop)
    }
}

/// Events written straight into a buffered stdout, flushed once per poll: a
/// write(2) per event would cap the event rate. Shared by reference with the
/// ring buffer's callback, hence the cells.
pub struct Output {
    writer: RefCell<EventWriter>,
    stdout: RefCell<BufWriter<Stdout>>,
    seen: Cell<u64>,
    limit: u64,
    closed: Cell<bool>,
}

impl Output {
    /// One event, as text or JSON; nothing after `--count` events.
    pub fn event(&self, event: &Event) {
        if self.seen.get() < self.limit {
            self.seen.set(self.seen.get() + 1);
            let mut writer = self.writer.borrow_mut();
            self.write(|out| writer.write(out, event));
        }
    }

    /// A record that is not a `struct unlink_event`: the BPF and Rust sides disagree.
    pub fn malformed(&self, len: usize) {
        eprintln!("a ring buffer record of {len} bytes is not a struct unlink_event: skipped");
    }

    /// A line of output; `counts` when it stands for an unlink.
    fn print_line(&self, counts: bool, line: &str) {
        if self.seen.get() < self.limit {
            self.seen.set(self.seen.get() + u64::from(counts));
            self.write(|out| writeln!(out, "{line}"));
        }
    }

    fn write(&self, write: impl FnOnce(&mut BufWriter<Stdout>) -> io::Result<()>) {
        if !self.closed.get() && write(&mut self.stdout.borrow_mut()).is_err() {
            self.closed.set(true); // e.g. `| head`: stop quietly
        }
    }

    pub fn flush(&self) {
        if self.stdout.borrow_mut().flush().is_err() {
            self.closed.set(true);
        }
    }
}

/// Whether a poll ended because a signal (Ctrl-C) arrived: not an error.
pub fn interrupted(error: &libbpf_rs::Error) -> bool {
    classify::errno_of(error) == Some(libc::EINTR)
}

/// What the summary reports: printed + lost + skipped + returns missed = unlinks.
struct Counts {
    seen: u64,
    lost: u64,
    skipped: Option<u64>,
    returns_missed: Option<u64>,
}

/// `N unlinks seen, M events lost, K skipped by the kernel[, R returns
/// missed]`; the counts of missing events in red when they are not 0.
fn summary_text(counts: &Counts, probe: Probe) -> String {
    let Counts {
        seen,
        lost,
        skipped,
        returns_missed,
    } = *counts;
    let alarm = |count: u64, text: String| match count {
        0 => text,
        _ => text.red().bold().to_string(),
    };
    let skipped = match skipped {
        Some(skipped) => alarm(skipped, format!("{skipped} skipped by the kernel")),
        None => format!(
            "skipped by the kernel: unknown (counted since Linux {})",
            skips_counted_since(probe)
        ),
    };
    let returns = match returns_missed {
        Some(missed) => format!(", {}", alarm(missed, format!("{missed} returns missed"))),
        None => String::new(),
    };
    format!(
        "{seen} unlinks seen, {}, {skipped}{returns}",
        alarm(lost, format!("{lost} events lost"))
    )
}

/// The first Linux release that counts skipped runs of these probes.
fn skips_counted_since(probe: Probe) -> &'static str {
    match probe {
        Probe::Fentry => "5.12",
        Probe::Kprobe => "6.7",
    }
}

/// Runs of the entry and exit programs the kernel skipped, so events neither
/// sent nor counted lost; `None` when this kernel does not count them.
/// fentry/fexit: the program was already running on that CPU (its run was
/// preempted, or it traced itself): `recursion_misses`, Linux 5.12+.
/// kprobe/kretprobe: also another BPF program or kprobe running on that CPU,
/// and a kretprobe out of instances (`maxactive`): the programs'
/// `recursion_misses` plus the links' `missed`, both counted from Linux 6.7.
/// With `exits_counted`, the lesson counts every missed exit itself (the
/// entries parked for an exit that never ran), so only the entry counts here.
fn skipped_by_kernel(
    probe: Probe,
    probes: [(&ProgramMut<'_>, &Link); 2],
    exits_counted: bool,
) -> Option<u64> {
    let counted = if exits_counted { 1 } else { 2 };
    probes
        .iter()
        .take(counted)
        .map(|(program, link)| {
            let misses = recursion_misses(program.as_fd())?;
            match probe {
                Probe::Fentry => Some(misses),
                Probe::Kprobe => Some(misses + kprobe_missed(link.as_fd())?),
            }
        })
        .sum()
}

/// `bpf_prog_info.recursion_misses`, if this kernel's struct has the field.
fn recursion_misses(program: BorrowedFd<'_>) -> Option<u64> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = size_of_val(&info) as u32;
    // SAFETY: info is a writable bpf_prog_info of len bytes.
    let ret =
        unsafe { libbpf_sys::bpf_prog_get_info_by_fd(program.as_raw_fd(), &mut info, &mut len) };
    // The kernel copies, and reports in len, only as much of the struct as it knows.
    let known = offset_of!(libbpf_sys::bpf_prog_info, recursion_misses) + size_of::<u64>();
    (ret == 0 && len as usize >= known).then_some(info.recursion_misses)
}

/// `bpf_link_info.perf_event.kprobe.missed` (Linux 6.7+): the kprobe's or
/// kretprobe's own misses. `None` for older kernels, whose struct ends before
/// the field, and for kprobes attached without a BPF link (before Linux 5.15).
fn kprobe_missed(link: BorrowedFd<'_>) -> Option<u64> {
    let mut info = libbpf_sys::bpf_link_info::default();
    let mut len = size_of_val(&info) as u32;
    // SAFETY: info is a writable bpf_link_info of len bytes.
    let ret = unsafe { libbpf_sys::bpf_link_get_info_by_fd(link.as_raw_fd(), &mut info, &mut len) };
    let known = offset_of!(
        libbpf_sys::bpf_link_info,
        __bindgen_anon_1.perf_event.__bindgen_anon_1.kprobe.missed
    ) + size_of::<u64>();
    let is_perf_event = info.type_ == libbpf_sys::BPF_LINK_TYPE_PERF_EVENT;
    if ret != 0 || !is_perf_event || (len as usize) < known {
        return None;
    }
    // SAFETY: a perf_event link's info fills the union's perf_event member.
    Some(unsafe {
        info.__bindgen_anon_1
            .perf_event
            .__bindgen_anon_1
            .kprobe
            .missed
    })
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

/// A counter in the memory-mapped .bss, which the BPF side bumps with
/// `__sync_fetch_and_add` at any time: read it as the atomic it is.
pub fn bss_counter(counter: &mut u64) -> &AtomicU64 {
    // SAFETY: the pointer comes from a live &mut u64, so it is valid for the
    // borrow, and aligned for AtomicU64 (same alignment, asserted below); the
    // BPF side changes it only atomically, as this side now reads it.
    unsafe { AtomicU64::from_ptr(counter) }
}

const _: () = assert!(align_of::<u64>() == align_of::<AtomicU64>());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bss_counter_is_the_field_itself() {
        let mut field = 41u64;
        let counter = bss_counter(&mut field);
        counter.fetch_add(1, Ordering::Relaxed); // as the BPF side's __sync_fetch_and_add
        assert_eq!(counter.load(Ordering::Relaxed), 42);
        assert_eq!(field, 42);
    }

    #[test]
    fn the_summary_says_what_the_kernel_skipped_or_that_it_cannot_say() {
        let counts = |seen, lost, skipped, returns_missed| Counts {
            seen,
            lost,
            skipped,
            returns_missed,
        };
        colored::control::set_override(false);
        assert_eq!(
            summary_text(&counts(7, 0, Some(0), None), Probe::Fentry),
            "7 unlinks seen, 0 events lost, 0 skipped by the kernel"
        );
        assert_eq!(
            summary_text(&counts(7, 2, None, Some(5)), Probe::Kprobe),
            "7 unlinks seen, 2 events lost, \
             skipped by the kernel: unknown (counted since Linux 6.7), 5 returns missed"
        );
        colored::control::set_override(true);
        let red = summary_text(&counts(7, 0, Some(3), None), Probe::Fentry);
        let missed = summary_text(&counts(7, 0, Some(0), Some(4)), Probe::Kprobe);
        colored::control::unset_override();
        assert!(red.contains(&"3 skipped by the kernel".red().bold().to_string()));
        assert!(red.contains(", 0 events lost,"), "{red}");
        assert!(missed.contains(&"4 returns missed".red().bold().to_string()));
    }
}
