//! Watching a running guest: a kernel oops on the console, or a guest that
//! has gone silent, ends the run long before the overall timeout.
//!
//! The guest's init writes a carriage return to the console every
//! [`HEARTBEAT_SECS`] seconds while the command runs (see initramfs), so
//! silence means the guest is stuck, not that the command is quiet. (A
//! carriage return, not a NUL: grep still reads the kept log as text.)

use std::time::{Duration, Instant};

/// How often the guest's init proves it is alive.
pub const HEARTBEAT_SECS: u32 = 5;

/// Console lines that mean the guest kernel is broken, whatever it does next.
/// `int3:` is the x86_64 TCG code-patching oops (`Oops: int3: 0000 [#1]`);
/// `Internal error:` begins every arm64 die() report (an oops, a BRK from
/// BUG(), an undefined instruction).
const OOPS_MARKERS: &[&str] = &[
    "Oops:",
    "BUG:",
    "Kernel panic",
    "general protection fault",
    "int3:",
    "Internal error:",
];

/// Lines of a report worth showing besides the marker lines: where it
/// happened (x86_64's `RIP:`, arm64's `pc :`) and in which task.
const CONTEXT_MARKERS: &[&str] = &["RIP:", "pc :", "Comm:"];

/// After the first oops line, the kernel goes on printing the registers and
/// the call trace; the run ends at the trace's end or after this long.
const REPORT_GRACE: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The console lines that say what broke.
    Oops(Vec<String>),
    /// Nothing on any port for this long.
    Silent(Duration),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Oops(lines) => write!(f, "the guest kernel oopsed:\n  {}", lines.join("\n  ")),
            Stop::Silent(silence) => write!(
                f,
                "the guest printed nothing (not even init's heartbeat) for {} s: hung",
                silence.as_secs()
            ),
        }
    }
}

pub struct Watch {
    silence_limit: Duration,
    last_output: Instant,
    /// An incomplete console line, kept until its newline arrives.
    partial: Vec<u8>,
    report: Vec<String>,
    first_oops: Option<Instant>,
    report_ended: bool,
}

impl Watch {
    pub fn new(silence_limit: Duration, now: Instant) -> Watch {
        Watch {
            silence_limit,
            last_output: now,
            partial: Vec::new(),
            report: Vec::new(),
            first_oops: None,
            report_ended: false,
        }
    }

    /// New bytes from any serial port: any output at all proves life; the
    /// console's lines are checked for oopses.
    pub fn output(&mut self, console: bool, bytes: &[u8], now: Instant) {
        self.last_output = now;
        if !console {
            return;
        }
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.line(&String::from_utf8_lossy(&line), now);
        }
    }

    fn line(&mut self, line: &str, now: Instant) {
        let line = line.trim();
        if OOPS_MARKERS.iter().any(|m| line.contains(m)) {
            self.first_oops.get_or_insert(now);
            self.report.push(line.to_string());
        } else if self.first_oops.is_some() {
            if CONTEXT_MARKERS.iter().any(|m| line.contains(m)) {
                self.report.push(line.to_string());
            }
            self.report_ended |= line.contains("---[ end trace");
        }
    }

    /// The oops lines seen so far, for a guest that ended by itself.
    pub fn oops(&self) -> Option<Stop> {
        (!self.report.is_empty()).then(|| Stop::Oops(self.report.clone()))
    }

    /// Whether the run must end now, and why.
    pub fn verdict(&self, now: Instant) -> Option<Stop> {
        if let Some(first) = self.first_oops {
            if self.report_ended || now.duration_since(first) >= REPORT_GRACE {
                return Some(Stop::Oops(self.report.clone()));
            }
            return None;
        }
        let silence = now.duration_since(self.last_output);
        (silence >= self.silence_limit).then_some(Stop::Silent(silence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cut from a real console (debian-7.2 under QEMU 7.2, 2 vCPUs, MTTCG).
    const INT3_OOPS: &str = "\
[    1.339951] Oops: int3: 0000 [#1] SMP NOPTI
[    1.340273] CPU: 1 UID: 0 PID: 1 Comm: swapper/0 Not tainted 7.2.13+deb14-amd64 #1 PREEMPT(lazy)  Debian 7.2.13-1
[    1.340353] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[    1.340461] RIP: 0010:sched_clock_cpu+0x9/0x230
[    1.340800] RSP: 0018:ff83f225c00f0ec0 EFLAGS: 00000086
[    1.341039] Call Trace:
[    1.341683]  hrtick+0x58/0xb0
";

    const NULL_CALL: &str = "\
[   41.207331] BUG: kernel NULL pointer dereference, address: 0000000000000000
[   41.207502] #PF: supervisor instruction fetch in kernel mode
[   41.207812] RIP: 0010:0x0
[   41.208120]  __x64_sys_unlink+0x23/0x30
[   41.208900] ---[ end trace 0000000000000000 ]---
";

    fn fed(text: &str, chunk: usize) -> (Watch, Instant) {
        let start = Instant::now();
        let mut watch = Watch::new(Duration::from_secs(60), start);
        for piece in text.as_bytes().chunks(chunk) {
            watch.output(true, piece, start);
        }
        (watch, start)
    }

    #[test]
    fn an_oops_ends_the_run_with_its_lines() {
        // fed in odd-sized pieces: lines arrive split across reads
        let (watch, start) = fed(INT3_OOPS, 7);
        assert_eq!(watch.verdict(start), None, "the report is still coming");
        assert!(watch.oops().is_some(), "but a guest that ends now shows it");
        let Some(Stop::Oops(lines)) = watch.verdict(start + REPORT_GRACE) else {
            panic!("no oops seen");
        };
        assert_eq!(
            lines,
            [
                "[    1.339951] Oops: int3: 0000 [#1] SMP NOPTI",
                "[    1.340273] CPU: 1 UID: 0 PID: 1 Comm: swapper/0 Not tainted 7.2.13+deb14-amd64 #1 PREEMPT(lazy)  Debian 7.2.13-1",
                "[    1.340461] RIP: 0010:sched_clock_cpu+0x9/0x230",
            ]
        );
    }

    #[test]
    fn the_end_of_the_trace_ends_the_run_at_once() {
        let (watch, start) = fed(NULL_CALL, 4096);
        let stop = watch.verdict(start).expect("stopped at the end marker");
        let text = stop.to_string();
        assert!(
            text.contains("BUG: kernel NULL pointer dereference"),
            "{text}"
        );
        assert!(text.contains("RIP: 0010:0x0"), "{text}");
    }

    /// The shape of arm64's die() report (arch/arm64/kernel/traps.c and
    /// __show_regs): the marker, the task, the pc.
    #[test]
    fn an_arm64_oops_shows_its_task_and_pc() {
        let report = "\
[    2.1] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000
[    2.1] Internal error: Oops: 0000000096000004 [#1] SMP
[    2.1] CPU: 1 PID: 1 Comm: sh Not tainted 6.1.0-40-arm64 #1  Debian 6.1.153-1
[    2.1] pc : do_unlinkat+0x30/0x2a0
[    2.1] lr : __arm64_sys_unlinkat+0x48/0x80
[    2.1] ---[ end trace 0000000000000000 ]---
";
        let (watch, start) = fed(report, 13);
        let Some(Stop::Oops(lines)) = watch.verdict(start) else {
            panic!("no oops seen");
        };
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("Internal error: Oops:"), "{lines:?}");
        assert!(lines[1].contains("Comm: sh"), "{lines:?}");
        assert!(lines[2].contains("pc : do_unlinkat"), "{lines:?}");
    }

    #[test]
    fn every_marker_is_caught() {
        for line in [
            "[ 3.1] Kernel panic - not syncing: Attempted to kill init!",
            "[ 3.1] general protection fault, probably for non-canonical address",
            "[ 3.1] BUG: unable to handle page fault for address: ffff",
            "[ 3.1] Oops: 0002 [#1] PREEMPT SMP NOPTI",
            "[ 3.1] int3: 0000 [#1] SMP",
            "[ 3.1] Internal error: BRK handler: 00000000f2000800 [#1] SMP",
        ] {
            let (watch, start) = fed(&format!("{line}\n"), 4096);
            assert!(
                matches!(watch.verdict(start + REPORT_GRACE), Some(Stop::Oops(_))),
                "{line}"
            );
        }
    }

    #[test]
    fn ordinary_output_and_quiet_commands_go_on() {
        let start = Instant::now();
        let mut watch = Watch::new(Duration::from_secs(60), start);
        watch.output(true, b"[ 0.9] Run /init as init process\n", start);
        // a command's own output mentioning a bug is not the kernel's
        watch.output(false, b"BUG: in my program\n", start);
        // the heartbeat: a carriage return every few seconds
        let mut now = start;
        for _ in 0..100 {
            now += Duration::from_secs(HEARTBEAT_SECS.into());
            watch.output(true, b"\r", now);
            assert_eq!(watch.verdict(now), None);
        }
        assert_eq!(watch.oops(), None);
    }

    #[test]
    fn silence_is_a_hang() {
        let start = Instant::now();
        let mut watch = Watch::new(Duration::from_secs(60), start);
        watch.output(false, b"partial line without newline", start);
        assert_eq!(watch.verdict(start + Duration::from_secs(59)), None);
        assert_eq!(
            watch.verdict(start + Duration::from_secs(61)),
            Some(Stop::Silent(Duration::from_secs(61)))
        );
    }
}
