//! The book's terminal transcripts, book/src/transcripts/*.txt: captured from
//! real runs by `cargo xtask book transcripts`, re-run and compared by
//! `cargo xtask book check`.
//!
//! A transcript is the command on its first line (`$ ...`), then what it
//! printed, stdout and stderr together as a terminal shows them. The VM
//! runner's echo of the commands it runs (`$ qemu-system-x86_64 ...`) is left
//! out, and cargo's own lines never appear: the capture runs the xtask binary
//! that `cargo xtask` runs.
//!
//! Comparison rule: a fresh run matches a transcript when, after normalising
//! both line by line, the transcript's lines are the run's stdout lines and
//! its stderr lines interleaved, each in its own order (which stream a VM
//! forwards first is timing, not behaviour). Normalising a line:
//! - runs of spaces become one space (column widths follow the values);
//! - a time of day `12:34:56.789012` becomes `<time>`, and the PID and TID
//!   columns after it `<pid>`; `pid = 153` becomes `pid = <pid>`;
//! - a duration (`1.34ms`, `69.6µs`, `1417.0 µs`, `after 4.8s`) becomes `<duration>`;
//! - everything before `bpf_trace_printk:` in a trace_pipe line (task, pid,
//!   CPU, flags, timestamp) becomes `<task>-<pid> [<cpu>] <flags> <timestamp>:`;
//! - a kernel release (`6.12.117+deb13-amd64`) becomes `<release>`, a date
//!   `2026-11-12` `<date>` (Debian updates the VM kernels);
//! - in JSON lines, the values of time, start_ns, latency_ns, pid and tid
//!   become `"<key>"`.
//!
//! VM transcripts are compared when the VM kernel is cached (CI fetches it;
//! the arm64 one needs arm64 debian-5.10 and `cargo xtask build --arch arm64`);
//! native ones only on the kernel they were captured on (recorded in
//! book/src/transcripts/native-kernel), since they show what this machine's
//! kernel refuses.

use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::pipe;
use super::problems::Problems;
use crate::cmd::{self, cargo, shell_quote};
use crate::vm::{kernels, Arch};
use crate::workspace::is_root;
use crate::{build, deps, workspace};

const VM_KERNEL: &str = "debian-6.12";
/// The arm64 kernel of the chapter's -524: fentry without ftrace direct calls.
const ARM64_KERNEL: &str = "debian-5.10";

/// The unlinks every lesson transcript watches: two names that need quoting
/// or UTF-8, and one failure (ENOENT). The VM runs it in a fresh /tmp.
const WORKLOAD: &str =
    r#"touch a "with space" 日本語.txt; rm a "with space" 日本語.txt; unlink missing"#;

#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// `cargo xtask vm --kernel debian-6.12 -- ...`
    Vm,
    /// `cargo xtask vm --arch arm64 --kernel debian-5.10 -- ...`
    VmArm64,
    /// On this machine, as root.
    Native,
}

struct Transcript {
    file: &'static str,
    place: Place,
    /// A binary in target/debug (target/aarch64-unknown-linux-gnu/debug for arm64).
    program: &'static str,
    args: &'static [&'static str],
    /// Followed by `-- sh -c WORKLOAD`.
    workload: bool,
}

const fn transcript(
    file: &'static str,
    place: Place,
    program: &'static str,
    args: &'static [&'static str],
    workload: bool,
) -> Transcript {
    Transcript {
        file,
        place,
        program,
        args,
        workload,
    }
}

const TRANSCRIPTS: [Transcript; 10] = [
    transcript("lesson-02-vm.txt", Place::Vm, "lesson-02", &[], true),
    transcript(
        "lesson-02-vm-printk.txt",
        Place::Vm,
        "lesson-02",
        &["--printk"],
        true,
    ),
    transcript(
        "lesson-02-vm-json.txt",
        Place::Vm,
        "lesson-02",
        &["--json"],
        true,
    ),
    transcript("lesson-03-vm.txt", Place::Vm, "lesson-03", &[], true),
    transcript(
        "lesson-03-vm-printk.txt",
        Place::Vm,
        "lesson-03",
        &["--printk"],
        true,
    ),
    transcript("doctor-vm.txt", Place::Vm, "unlink-doctor", &[], false),
    transcript(
        "lesson-03-vm-arm64-5.10.txt",
        Place::VmArm64,
        "lesson-03",
        &[],
        true,
    ),
    transcript(
        "lesson-02-native.txt",
        Place::Native,
        "lesson-02",
        &[],
        true,
    ),
    transcript(
        "lesson-03-native.txt",
        Place::Native,
        "lesson-03",
        &[],
        true,
    ),
    transcript(
        "doctor-native.txt",
        Place::Native,
        "unlink-doctor",
        &[],
        false,
    ),
];

impl Transcript {
    /// The program's argv, as the reader types it from the workspace root.
    fn argv(&self) -> Vec<String> {
        let dir = match self.place {
            Place::VmArm64 => format!("target/{}/debug", Arch::Arm64.rust_target()),
            Place::Vm | Place::Native => "target/debug".to_string(),
        };
        let mut argv = vec![format!("{dir}/{}", self.program)];
        argv.extend(self.args.iter().map(|a| a.to_string()));
        if self.workload {
            argv.extend(["--", "sh", "-c", WORKLOAD].map(String::from));
        }
        argv
    }

    /// The first line of the file: `$ ` and the command.
    fn command_line(&self) -> String {
        let mut words = Vec::new();
        if self.place != Place::Native {
            words.extend(["cargo", "xtask"].map(String::from));
            words.extend(self.vm_args());
        }
        words.extend(self.argv());
        let quoted: Vec<String> = words.iter().map(|w| shell_quote(w.as_ref())).collect();
        format!("$ {}", quoted.join(" "))
    }

    /// `vm [--arch arm64] --kernel K --`, for VM transcripts.
    fn vm_args(&self) -> Vec<String> {
        let args: &[&str] = match self.place {
            Place::Vm => &["vm", "--kernel", VM_KERNEL, "--"],
            Place::VmArm64 => &["vm", "--arch", "arm64", "--kernel", ARM64_KERNEL, "--"],
            Place::Native => &[],
        };
        args.iter().map(|a| a.to_string()).collect()
    }

    /// The command that really runs: `cargo xtask vm` is this very binary.
    fn command(&self) -> Result<Command> {
        let root = workspace::root();
        let argv = self.argv();
        let mut command = match self.place {
            Place::Vm | Place::VmArm64 => {
                let mut vm = Command::new(xtask_binary()?);
                vm.args(self.vm_args()).args(&argv).current_dir(&root);
                vm
            }
            Place::Native => {
                // A scratch directory, in case this kernel does run the workload.
                let scratch = workspace::target_dir().join("book-check/native-cwd");
                let _ = fs::remove_dir_all(&scratch);
                fs::create_dir_all(&scratch)?;
                let mut native = Command::new(root.join(&argv[0]));
                native.args(&argv[1..]).current_dir(scratch);
                native
            }
        };
        command.env("NO_COLOR", "1").stdin(Stdio::null());
        Ok(command)
    }

    fn path(&self) -> PathBuf {
        dir().join(self.file)
    }
}

/// This binary, or the one a concurrent `cargo build` just put in its place.
fn xtask_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let replaced = exe
        .to_str()
        .and_then(|path| path.strip_suffix(" (deleted)"));
    Ok(replaced.map(PathBuf::from).unwrap_or(exe))
}

fn dir() -> PathBuf {
    workspace::root().join("book/src/transcripts")
}

fn native_kernel_file() -> PathBuf {
    dir().join("native-kernel")
}

fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The binaries the transcripts run, built from the current sources.
fn build_binaries() -> Result<()> {
    cmd::run(cargo().args([
        "build",
        "--package",
        "lesson-02",
        "--package",
        "lesson-03",
        "--package",
        "unlink-doctor",
    ]))
}

/// The arm64 programs of the arm64 transcript.
fn build_arm64() -> Result<()> {
    build::run(&build::Args {
        arch: Arch::Arm64,
        release: false,
    })
    .map(drop)
}

/// `cargo xtask book transcripts`: capture every transcript again.
pub fn capture(files: &[String]) -> Result<()> {
    for file in files {
        if !TRANSCRIPTS.iter().any(|t| t.file == file) {
            bail!("no transcript {file:?} in book/src/transcripts (see TRANSCRIPTS in xtask/src/book/transcripts.rs)");
        }
    }
    let chosen: Vec<&Transcript> = TRANSCRIPTS
        .iter()
        .filter(|t| files.is_empty() || files.iter().any(|f| f == t.file))
        .collect();
    if !is_root() {
        bail!("the native transcripts show a root user's run: run `sudo cargo xtask book transcripts` (or as root)");
    }
    deps::ensure(&[deps::BUILD, deps::VM, deps::VM_ARM64])?;
    build_binaries()?;
    build_arm64()?;
    kernels::fetch(VM_KERNEL)?;
    kernels::fetch_for(Arch::Arm64, ARM64_KERNEL)?;
    fs::create_dir_all(dir())?;
    for transcript in &chosen {
        let mut output = run_merged(transcript.command()?)?;
        if transcript.place != Place::Native && !vm_ran(&output) {
            eprintln!("book: {}: the VM failed; once more", transcript.file);
            output = run_merged(transcript.command()?)?;
            if !vm_ran(&output) {
                bail!("{}: the VM failed twice (see above)", transcript.file);
            }
        }
        let lines: Vec<&str> = output.lines().filter(|l| !is_runner_echo(l)).collect();
        let text = format!("{}\n{}\n", transcript.command_line(), lines.join("\n"));
        fs::write(transcript.path(), text)
            .with_context(|| format!("writing {}", transcript.path().display()))?;
        eprintln!(
            "book: wrote book/src/transcripts/{} ({} lines)",
            transcript.file,
            lines.len()
        );
    }
    if chosen.iter().any(|t| t.place == Place::Native) {
        fs::write(native_kernel_file(), kernel_release() + "\n")?;
        eprintln!(
            "book: native transcripts are from Linux {}",
            kernel_release()
        );
    }
    Ok(())
}

/// Re-run every transcript that can run here and compare (see the module doc).
pub fn check(problems: &mut Problems) -> Result<()> {
    for entry in fs::read_dir(dir()).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".txt") && !TRANSCRIPTS.iter().any(|t| t.file == name) {
            problems.add(format!(
                "book/src/transcripts/{name}: not made by `cargo xtask book transcripts` (every transcript must come from a real run)"
            ));
        }
    }
    let recorded = fs::read_to_string(native_kernel_file()).unwrap_or_default();
    let native = if recorded.trim() != kernel_release() {
        eprintln!(
            "book: skipping the native transcripts: captured on Linux {:?}, this is Linux {}",
            recorded.trim(),
            kernel_release()
        );
        false
    } else if !is_root() {
        eprintln!("book: skipping the native transcripts: they show a root user's run");
        false
    } else {
        true
    };
    let vm = kernels::cache_dir(VM_KERNEL).join("vmlinuz").is_file();
    if !vm {
        eprintln!("book: skipping the VM transcripts: kernel {VM_KERNEL} is not fetched (cargo xtask fetch --kernel {VM_KERNEL})");
    } else {
        deps::ensure(&[deps::VM])?;
    }
    let arm64 = kernels::cache_dir_for(Arch::Arm64, ARM64_KERNEL)
        .join("vmlinuz")
        .is_file();
    if !arm64 {
        eprintln!("book: skipping the arm64 VM transcript: arm64 kernel {ARM64_KERNEL} is not fetched (cargo xtask vm fetch --arch arm64 --kernel {ARM64_KERNEL})");
    } else {
        deps::ensure(&[deps::VM, deps::VM_ARM64])?;
        build_arm64()?;
    }
    build_binaries()?;
    for transcript in &TRANSCRIPTS {
        let shown = format!("book/src/transcripts/{}", transcript.file);
        let Ok(committed) = fs::read_to_string(transcript.path()) else {
            problems.add(format!(
                "{shown}: missing: run `cargo xtask book transcripts`"
            ));
            continue;
        };
        let mut lines = committed.lines();
        let expected = transcript.command_line();
        if lines.next() != Some(expected.as_str()) {
            problems.add(format!(
                "{shown}:1: the first line must be the command: {expected}"
            ));
            continue;
        }
        let runs_here = match transcript.place {
            Place::Vm => vm,
            Place::VmArm64 => arm64,
            Place::Native => native,
        };
        if !runs_here {
            continue;
        }
        let Some(output) = run_split(transcript, &shown)? else {
            problems.add(format!(
                "{shown}: the VM did not run the command twice in a row (see the runner's error above); nothing compared"
            ));
            continue;
        };
        let stream = |bytes: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(bytes)
                .lines()
                .filter(|l| !is_runner_echo(l))
                .map(normalize)
                .collect()
        };
        let committed: Vec<String> = lines.map(normalize).collect();
        match interleave(&committed, &stream(&output.stdout), &stream(&output.stderr)) {
            Ok(()) => eprintln!("book: {shown} matches a fresh run"),
            Err(Mismatch { line: Some((index, text)), expected }) => problems.add(format!(
                "{shown}:{}: {text:?} (normalised) is not what the binary prints now; here it printed one of {expected:?} (re-capture: cargo xtask book transcripts)",
                index + 2
            )),
            Err(Mismatch { line: None, expected }) => problems.add(format!(
                "{shown}: ends before the output does; the binary now also prints {expected:?} (re-capture: cargo xtask book transcripts)"
            )),
        }
    }
    Ok(())
}

/// Run with stdout and stderr apart. A VM that fails to boot (TCG on a busy
/// host sometimes panics in early boot) is retried once; None if it fails again.
fn run_split(transcript: &Transcript, shown: &str) -> Result<Option<Output>> {
    for attempt in 1..=2 {
        let mut command = transcript.command()?;
        cmd::echo(&command);
        let output = command
            .output()
            .context("running the transcript's command")?;
        if transcript.place == Place::Native || vm_ran(&String::from_utf8_lossy(&output.stderr)) {
            return Ok(Some(output));
        }
        let error = String::from_utf8_lossy(&output.stderr);
        let last = error
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        eprintln!("book: {shown}: the VM failed (attempt {attempt} of 2): {last}");
    }
    Ok(None)
}

/// The runner's last line when the VM ran the command; without it the VM
/// itself failed (and said why on the line before).
fn vm_ran(output: &str) -> bool {
    output
        .lines()
        .any(|line| line.starts_with("vm: exit status "))
}

/// The VM runner's echo of the commands it runs (`$ qemu-system-x86_64 ...`,
/// `$ ldd ...`): temporary directories, and not what the reader came for.
fn is_runner_echo(line: &str) -> bool {
    line.starts_with("$ ")
}

/// Run with stdout and stderr on one pipe, in the order the program wrote them.
fn run_merged(mut command: Command) -> Result<String> {
    let (read, write) = pipe()?;
    command
        .stdout(Stdio::from(write.try_clone()?))
        .stderr(Stdio::from(write));
    cmd::echo(&command);
    let mut child = command.spawn().context("starting the capture")?;
    drop(command); // the parent's copies of the write end: EOF when the child is done
    let mut output = Vec::new();
    fs::File::from(read).read_to_end(&mut output)?;
    child.wait()?;
    Ok(String::from_utf8_lossy(&output).into_owned())
}

/// Where a transcript stops matching a run: the 0-based transcript line (None
/// when the transcript ended too early) and what the run printed instead.
#[derive(Debug, PartialEq)]
struct Mismatch {
    line: Option<(usize, String)>,
    expected: Vec<String>,
}

/// Whether `transcript` is `stdout` and `stderr` interleaved, each in order.
fn interleave(transcript: &[String], stdout: &[String], stderr: &[String]) -> Result<(), Mismatch> {
    // Every (lines of stdout, lines of stderr) split that explains the transcript so far.
    let mut states = vec![(0usize, 0usize)];
    let next_lines = |states: &[(usize, usize)]| -> Vec<String> {
        let mut lines: Vec<String> = states
            .iter()
            .flat_map(|&(i, j)| [stdout.get(i), stderr.get(j)])
            .flatten()
            .cloned()
            .collect();
        lines.dedup();
        lines
    };
    for (index, line) in transcript.iter().enumerate() {
        let mut next = Vec::new();
        for &(i, j) in &states {
            if stdout.get(i) == Some(line) {
                next.push((i + 1, j));
            }
            if stderr.get(j) == Some(line) {
                next.push((i, j + 1));
            }
        }
        next.sort();
        next.dedup();
        if next.is_empty() {
            return Err(Mismatch {
                line: Some((index, line.clone())),
                expected: next_lines(&states),
            });
        }
        states = next;
    }
    if states
        .iter()
        .any(|&(i, j)| i == stdout.len() && j == stderr.len())
    {
        Ok(())
    } else {
        Err(Mismatch {
            line: None,
            expected: next_lines(&states),
        })
    }
}

/// One line in the form compared (the rule is in the module doc).
fn normalize(line: &str) -> String {
    if line.trim_start().starts_with('{') {
        if let Ok(mut value) = serde_json::from_str::<Value>(line) {
            for key in ["time", "start_ns", "latency_ns", "pid", "tid"] {
                if let Some(field) = value.get_mut(key) {
                    *field = json!(format!("<{key}>"));
                }
            }
            return value.to_string();
        }
    }
    let line = match line.find("bpf_trace_printk:") {
        Some(at) => format!("<task>-<pid> [<cpu>] <flags> <timestamp>: {}", &line[at..]),
        None => line.to_string(),
    };
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    let mut pid_columns = 0;
    let mut skip = false;
    for (i, token) in tokens.iter().enumerate() {
        if std::mem::take(&mut skip) {
            continue;
        }
        let next_unit = tokens.get(i + 1).and_then(|next| unit_with_suffix(next));
        let word = if is_time_of_day(token) {
            pid_columns = 2;
            "<time>".to_string()
        } else if pid_columns > 0 && token.bytes().all(|b| b.is_ascii_digit()) {
            pid_columns -= 1;
            "<pid>".to_string()
        } else if i >= 2 && tokens[i - 2] == "pid" && tokens[i - 1] == "=" {
            format!(
                "<pid>{}",
                token.trim_start_matches(|c: char| c.is_ascii_digit())
            )
        } else if let (true, Some(suffix)) = (is_number(token), next_unit) {
            skip = true;
            format!("<duration>{suffix}")
        } else if let Some(suffix) =
            split_number(token).and_then(|(_, rest)| unit_with_suffix(rest))
        {
            format!("<duration>{suffix}")
        } else {
            versions_and_dates(token)
        };
        if !is_time_of_day(token) && !word.starts_with("<pid>") {
            pid_columns = 0;
        }
        out.push(word);
    }
    out.join(" ")
}

fn is_time_of_day(token: &str) -> bool {
    let b = token.as_bytes();
    b.len() >= 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
        && (b.len() == 8 || (b[8] == b'.' && b.len() > 9 && b[9..].iter().all(u8::is_ascii_digit)))
}

/// `12` or `1.5`, and the rest of the token after it.
fn split_number(token: &str) -> Option<(&str, &str)> {
    let end = token
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(token.len());
    let number = &token[..end];
    let well_formed = !number.is_empty()
        && number.starts_with(|c: char| c.is_ascii_digit())
        && !number.ends_with('.')
        && number.matches('.').count() <= 1;
    well_formed.then(|| (number, &token[end..]))
}

fn is_number(token: &str) -> bool {
    split_number(token).is_some_and(|(_, rest)| rest.is_empty())
}

/// For `ms` or `µs),`: the punctuation after the unit (`""`, `"),"`).
fn unit_with_suffix(text: &str) -> Option<&str> {
    ["ns", "µs", "us", "ms", "s"].iter().find_map(|unit| {
        let rest = text.strip_prefix(unit)?;
        rest.chars().all(|c| ",;:)".contains(c)).then_some(rest)
    })
}

/// Kernel releases (`6.12.117+deb13-amd64`) and dates (`2026-11-12`) inside a token.
fn versions_and_dates(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        let digits = |from: usize| {
            chars[from..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count()
        };
        if boundary && chars[i].is_ascii_digit() {
            // YYYY-MM-DD
            if digits(i) == 4
                && chars.get(i + 4) == Some(&'-')
                && i + 10 <= chars.len()
                && digits(i + 5) == 2
                && chars[i + 7] == '-'
                && digits(i + 8) == 2
            {
                out.push_str("<date>");
                i += 10;
                continue;
            }
            // N.N.N followed by the release's suffix
            let (mut j, mut parts) = (i, 0);
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += digits(j);
                parts += 1;
                if chars.get(j) == Some(&'.')
                    && chars.get(j + 1).is_some_and(|c| c.is_ascii_digit())
                {
                    j += 1;
                } else {
                    break;
                }
            }
            if parts == 3 {
                while j < chars.len()
                    && (chars[j].is_ascii_alphanumeric() || "+-~_.".contains(chars[j]))
                {
                    j += 1;
                }
                out.push_str("<release>");
                i = j;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn normalizes_the_ring_buffer_table() {
        assert_eq!(
            normalize(
                "00:35:52.748812 153     153     rm               0                   1.34ms a"
            ),
            "<time> <pid> <pid> rm 0 <duration> a"
        );
        assert_eq!(
            normalize("00:37:22.366531 149     149     unlink           -2 ENOENT           80.1µs missing"),
            "<time> <pid> <pid> unlink -2 ENOENT <duration> missing"
        );
        assert_eq!(
            normalize("lesson-02: 4 unlinks seen, 0 events lost"),
            "lesson-02: 4 unlinks seen, 0 events lost"
        );
        assert_eq!(
            normalize("vm: debian-6.12 exited with status 1 after 4.8s"),
            "vm: debian-6.12 exited with status 1 after <duration>"
        );
    }

    #[test]
    fn normalizes_trace_pipe_lines() {
        assert_eq!(
            normalize("           <...>-154     [001] ...21     3.558546: bpf_trace_printk: KPROBE ENTRY pid = 154, filename = a"),
            "<task>-<pid> [<cpu>] <flags> <timestamp>: bpf_trace_printk: KPROBE ENTRY pid = <pid>, filename = a"
        );
        assert_eq!(
            normalize("rm-148 [001] ...11 3.892848: bpf_trace_printk: fexit: pid = 148, filename = 日本語.txt, ret = 0"),
            "<task>-<pid> [<cpu>] <flags> <timestamp>: bpf_trace_printk: fexit: pid = <pid>, filename = 日本語.txt, ret = 0"
        );
    }

    #[test]
    fn normalizes_the_doctor() {
        assert_eq!(
            normalize("  ✔ kprobe + kretprobe on do_unlinkat: loaded, attached, both fired on an unlink (ret 0, 1417.0 µs), detached"),
            "✔ kprobe + kretprobe on do_unlinkat: loaded, attached, both fired on an unlink (ret 0, <duration>), detached"
        );
        assert_eq!(
            normalize("  • kernel (uname -srv): Linux 6.12.117+deb13-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1 (2026-11-12)"),
            "• kernel (uname -srv): Linux <release> #1 SMP PREEMPT_DYNAMIC Debian <release> (<date>)"
        );
        assert_eq!(
            normalize("tried /proc/config.gz, /boot/config-6.12.117+deb13-amd64, /lib/modules/6.1.0-40-amd64/config"),
            "tried /proc/config.gz, /boot/config-<release>, /lib/modules/<release>/config"
        );
        // versions that are not releases stay
        assert_eq!(
            normalize("✔ version: 6.12 (the lessons need >= 5.8)"),
            "✔ version: 6.12 (the lessons need >= 5.8)"
        );
        assert_eq!(
            normalize("RLIMIT_MEMLOCK: 8192 KiB"),
            "RLIMIT_MEMLOCK: 8192 KiB"
        );
    }

    #[test]
    fn normalizes_json_fields() {
        let line = r#"{"type":"unlink","time":"2026-11-23T00:35:52.748812Z","start_ns":123,"pid":153,"tid":153,"comm":"rm","ret":0,"errno":null,"latency_ns":1340,"filename":"a","filename_truncated":false}"#;
        let normalized: Value = serde_json::from_str(&normalize(line)).unwrap();
        assert_eq!(normalized["pid"], "<pid>");
        assert_eq!(normalized["latency_ns"], "<latency_ns>");
        assert_eq!(normalized["filename"], "a");
        assert_eq!(normalized["ret"], 0);
    }

    #[test]
    fn streams_may_interleave_in_any_order_but_keep_their_own() {
        let out = lines("HEADER\nrow a\nrow b");
        let err = lines("attached\nsummary");
        assert_eq!(
            interleave(
                &lines("attached\nHEADER\nrow a\nrow b\nsummary"),
                &out,
                &err
            ),
            Ok(())
        );
        assert_eq!(
            interleave(
                &lines("HEADER\nattached\nrow a\nsummary\nrow b"),
                &out,
                &err
            ),
            Ok(())
        );
        assert_eq!(
            interleave(
                &lines("HEADER\nrow b\nrow a\nattached\nsummary"),
                &out,
                &err
            ),
            Err(Mismatch {
                line: Some((1, "row b".into())),
                expected: lines("row a\nattached")
            })
        );
        assert_eq!(
            interleave(&lines("HEADER\nattached\nrow a\nrow b"), &out, &err),
            Err(Mismatch {
                line: None,
                expected: lines("summary")
            })
        );
    }

    #[test]
    fn the_command_line_is_what_a_reader_types() {
        assert_eq!(
            TRANSCRIPTS[0].command_line(),
            r#"$ cargo xtask vm --kernel debian-6.12 -- target/debug/lesson-02 -- sh -c 'touch a "with space" 日本語.txt; rm a "with space" 日本語.txt; unlink missing'"#
        );
        assert_eq!(
            TRANSCRIPTS[6].command_line(),
            r#"$ cargo xtask vm --arch arm64 --kernel debian-5.10 -- target/aarch64-unknown-linux-gnu/debug/lesson-03 -- sh -c 'touch a "with space" 日本語.txt; rm a "with space" 日本語.txt; unlink missing'"#
        );
        assert_eq!(
            TRANSCRIPTS[9].command_line(),
            "$ target/debug/unlink-doctor"
        );
    }
}
