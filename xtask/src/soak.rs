//! `cargo xtask vm-soak`: boot kernels again and again and count how often
//! the guest breaks (issue 10). Each run boots the `vm` runner's guest, which
//! defines a tracefs kprobe on the unlink path, enables and disables it 8
//! times while a loop unlinks files, and powers off: the kernel patches its
//! own text while another vCPU runs it, what multi-threaded TCG in QEMU 7.2
//! got wrong. The numbers are in vm/tcg.rs; this reruns them.
//!
//! The runs go through the same `VmRun` as every other VM run, with its
//! console watcher, and without its retry; its `qemu` field picks the QEMU,
//! its firmware, niceness and TCG threads.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cmd;
use crate::deps;
use crate::vm::tcg::Threads;
use crate::vm::{QemuChoice, VmRun};

#[derive(Clone, clap::Args)]
pub struct Args {
    /// Kernels to boot in turn, e.g. debian-6.12,debian-7.2
    #[arg(long, value_delimiter = ',', default_value = "debian-6.12,debian-7.2")]
    pub kernel: Vec<String>,
    /// Runs per kernel
    #[arg(long, default_value_t = 10)]
    pub runs: u32,
    /// TCG threads: auto is what `cargo xtask vm` picks for this QEMU (vm::tcg)
    #[arg(long, value_enum, default_value_t = Threads::Auto)]
    pub thread: Threads,
    /// The QEMU binary, e.g. one unpacked from bookworm-backports
    #[arg(long, default_value = "/usr/bin/qemu-system-x86_64")]
    pub qemu: PathBuf,
    /// A firmware directory for that QEMU, passed as -L (repeatable)
    #[arg(long, value_name = "DIR")]
    pub firmware: Vec<PathBuf>,
    /// Niceness of QEMU, so that a soak does not starve the host
    #[arg(long, default_value_t = 10)]
    pub nice: u8,
}

/// The guest's command: `booted`, `done` (guest uptimes) and `hits` lines on
/// stdout; exit 3 if the kprobe cannot be defined.
const WORKLOAD: &str = r#"T=/sys/kernel/tracing
echo "booted $(cut -d' ' -f1 /proc/uptime)"
F=do_unlinkat; grep -q ' filename_unlinkat$' /proc/kallsyms && F=filename_unlinkat
echo "p:soak $F" > $T/kprobe_events || exit 3
( while :; do touch a b c; rm a b c; done ) &
L=$!
i=0
while [ $i -lt 8 ]; do
  echo 1 > $T/events/kprobes/soak/enable; echo 0 > $T/events/kprobes/soak/enable; i=$((i+1))
done
kill $L
echo "hits $(grep -vc '^#' $T/trace)"
echo "done $(cut -d' ' -f1 /proc/uptime)""#;

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok {
        boot: f64,
        cycles: f64,
        hits: u64,
    },
    /// The first oops line and the first RIP line.
    Oops(String),
    Hung(String),
    /// The guest died without an oops, or the workload failed.
    Other(String),
}

struct Run {
    kernel: String,
    outcome: Outcome,
    wall: f64,
}

pub fn run(args: &Args) -> Result<()> {
    if args.runs == 0 || args.kernel.is_empty() {
        bail!("--runs and --kernel must not be empty: nothing to boot");
    }
    deps::ensure(&[deps::VM])?;
    let version = cmd::output(Command::new(&args.qemu).arg("--version"))
        .with_context(|| format!("--qemu {}: not a QEMU binary", args.qemu.display()))?;
    let version = version.lines().next().unwrap_or_default().to_string();
    let qemu = QemuChoice {
        binary: Some(args.qemu.clone()),
        firmware: args.firmware.clone(),
        threads: args.thread,
        nice: args.nice.into(),
    };

    let mut runs = Vec::new();
    for round in 1..=args.runs {
        for kernel in &args.kernel {
            let mut vm = VmRun::new(kernel.as_str(), ["sh", "-c", WORKLOAD]);
            vm.qemu = qemu.clone();
            let started = Instant::now();
            let outcome = outcome(vm.run(false))?;
            let run = Run {
                kernel: kernel.clone(),
                outcome,
                wall: started.elapsed().as_secs_f64(),
            };
            println!("run {round} {}", line(&run));
            runs.push(run);
        }
    }
    print!("{}", summary(&version, args.thread, &runs));
    Ok(())
}

/// What one run came to. Errors other than a broken guest (no kernel, no
/// QEMU) end the soak: they would fail every run the same way.
fn outcome(result: Result<crate::vm::VmOutput>) -> Result<Outcome> {
    let output = match result {
        Ok(output) => output,
        Err(err) => return classify(&format!("{err:#}")).ok_or(err),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = |key: &str| -> Option<&str> {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
    };
    let parsed = (|| {
        let boot: f64 = value("booted")?.parse().ok()?;
        let done: f64 = value("done")?.parse().ok()?;
        Some(Outcome::Ok {
            boot,
            cycles: done - boot,
            hits: value("hits")?.parse().ok()?,
        })
    })();
    match parsed {
        Some(ok) if output.status == 0 => Ok(ok),
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().last().unwrap_or("no stderr");
            Ok(Outcome::Other(format!(
                "exit status {}: {last}",
                output.status
            )))
        }
    }
}

/// A failed run's message, as vm::watch and VmRun word it.
fn classify(message: &str) -> Option<Outcome> {
    let mut lines = message.lines().map(str::trim);
    let first = lines.next().unwrap_or_default();
    if first.ends_with("the guest kernel oopsed:") {
        let report: Vec<&str> = lines
            .take_while(|l| !l.starts_with("console log:"))
            .collect();
        let oops = report.first().copied().unwrap_or_default();
        let rip = report.iter().find(|l| l.contains("RIP:"));
        let mut text = without_timestamp(oops).to_string();
        if let Some(rip) = rip {
            let _ = write!(text, " ({})", without_timestamp(rip));
        }
        return Some(Outcome::Oops(text));
    }
    if first.ends_with(": hung") || first.contains("did not finish within") {
        return Some(Outcome::Hung(first.to_string()));
    }
    first
        .contains("stopped without reporting")
        .then(|| Outcome::Other(first.to_string()))
}

/// "[    1.339951] Oops: int3" is "Oops: int3".
fn without_timestamp(line: &str) -> &str {
    match line
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    {
        Some((_, rest)) => rest,
        None => line,
    }
}

fn line(run: &Run) -> String {
    let head = format!("{} wall={:.1}", run.kernel, run.wall);
    match &run.outcome {
        Outcome::Ok { boot, cycles, hits } => {
            format!("{head} ok boot={boot:.2} cycles={cycles:.2} hits={hits}")
        }
        Outcome::Oops(text) => format!("{head} oops {text}"),
        Outcome::Hung(text) => format!("{head} hung {text}"),
        Outcome::Other(text) => format!("{head} other {text}"),
    }
}

fn median(mut values: Vec<f64>) -> String {
    if values.is_empty() {
        return "-".to_string();
    }
    values.sort_by(f64::total_cmp);
    format!("{:.1} s", values[values.len() / 2])
}

fn summary(version: &str, thread: Threads, runs: &[Run]) -> String {
    let thread = match thread {
        Threads::Auto => "auto (vm::tcg)",
        Threads::Single => "single",
        Threads::Multi => "multi",
    };
    let mut out = format!("\n{version}, thread={thread}\n");
    out.push_str("kernel        runs  ok  oops  hung  other  median wall  median boot\n");
    let mut kernels: Vec<&str> = runs.iter().map(|r| r.kernel.as_str()).collect();
    kernels.sort();
    kernels.dedup();
    for kernel in kernels {
        let of: Vec<&Run> = runs.iter().filter(|r| r.kernel == kernel).collect();
        let count = |kind: fn(&Outcome) -> bool| of.iter().filter(|r| kind(&r.outcome)).count();
        let boots = of.iter().filter_map(|r| match r.outcome {
            Outcome::Ok { boot, .. } => Some(boot),
            _ => None,
        });
        let _ = writeln!(
            out,
            "{kernel:<12} {:>5} {:>3} {:>5} {:>5} {:>6} {:>12} {:>12}",
            of.len(),
            count(|o| matches!(o, Outcome::Ok { .. })),
            count(|o| matches!(o, Outcome::Oops(_))),
            count(|o| matches!(o, Outcome::Hung(_))),
            count(|o| matches!(o, Outcome::Other(_))),
            median(of.iter().map(|r| r.wall).collect()),
            median(boots.collect()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::watch::Stop;
    use std::time::Duration;

    /// Worded as VmRun words a guest the watcher stopped.
    fn died(stop: Stop) -> String {
        format!("the VM (debian-7.2, Linux 7.2.13) ended after 3.1 s: {stop}\nconsole log: x.log")
    }

    #[test]
    fn failures_are_told_apart_from_errors_of_the_tool() {
        let oops = Stop::Oops(vec![
            "[    1.339951] Oops: int3: 0000 [#1] SMP NOPTI".into(),
            "[    1.340273] CPU: 1 UID: 0 PID: 1 Comm: swapper/0".into(),
            "[    1.340461] RIP: 0010:sched_clock_cpu+0x9/0x230".into(),
        ]);
        assert_eq!(
            classify(&died(oops)),
            Some(Outcome::Oops(
                "Oops: int3: 0000 [#1] SMP NOPTI (RIP: 0010:sched_clock_cpu+0x9/0x230)".into()
            ))
        );
        let silent = classify(&died(Stop::Silent(Duration::from_secs(60))));
        assert!(matches!(silent, Some(Outcome::Hung(_))), "{silent:?}");
        let gone = "the VM (x) stopped without reporting the command's exit status (\"reboot\")";
        assert!(matches!(classify(gone), Some(Outcome::Other(_))));
        // not the guest's fault: the soak stops instead of counting it
        assert_eq!(
            classify("cannot start qemu-system-x86_64: install it"),
            None
        );
    }

    #[test]
    fn the_summary_counts_each_kind_per_kernel() {
        let run = |kernel: &str, outcome, wall| Run {
            kernel: kernel.into(),
            outcome,
            wall,
        };
        let ok = |boot| Outcome::Ok {
            boot,
            cycles: 1.0,
            hits: 9,
        };
        let runs = [
            run("debian-7.2", ok(2.0), 4.0),
            run("debian-6.12", Outcome::Hung("hung".into()), 60.0),
            run("debian-7.2", Outcome::Oops("Oops: int3".into()), 3.0),
            run("debian-7.2", ok(1.0), 5.0),
        ];
        let table = summary("QEMU emulator version 7.2.22", Threads::Multi, &runs);
        let rows: Vec<&str> = table.lines().skip(3).collect();
        assert_eq!(rows.len(), 2, "{table}");
        let words = |row: &str| row.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            words(rows[0])[..6],
            ["debian-6.12", "1", "0", "0", "1", "0"]
        );
        assert_eq!(words(rows[1])[..6], ["debian-7.2", "3", "2", "1", "0", "0"]);
        assert!(rows[1].ends_with("4.0 s        2.0 s"), "{table}");
    }
}
