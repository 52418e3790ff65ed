//! The VM runner itself, booted for real: what the lessons' end-to-end tests
//! rely on. Ignored in a plain `cargo test` (QEMU, kernels); `cargo xtask test` runs them.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use xtask::vm::{kernels, Arch, VmRun, MATRIX};

/// On every kernel: the guest's own release, the kernel interfaces the
/// lessons need, stdout and stderr kept apart, the exit status passed on.
#[test]
#[ignore = "boots QEMU on every kernel; run by `cargo xtask test`"]
fn each_kernel_boots_and_reports() {
    for name in MATRIX {
        let kernel = kernels::fetch(name).unwrap();
        assert!(
            kernel.config.as_ref().is_some_and(|c| c.is_file()),
            "{name}"
        );
        let output = VmRun::new(
            name,
            [
                "/bin/busybox",
                "sh",
                "-c",
                "uname -r; grep -c . /proc/kallsyms; \
                 ls -1d /sys/kernel/tracing/trace_pipe /sys/bus/event_source/devices/kprobe; \
                 echo err >&2; exit 3",
            ],
        )
        .run_captured()
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let stdout = String::from_utf8(output.stdout).unwrap();
        eprintln!("{name}: {:.1} s\n{stdout}", output.elapsed.as_secs_f64());
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines[0], kernel.release, "{name}");
        assert!(
            lines[1].parse::<u32>().unwrap() > 10_000,
            "{name}: {stdout}"
        );
        // ls sorts its arguments
        assert_eq!(
            lines[2..],
            [
                "/sys/bus/event_source/devices/kprobe",
                "/sys/kernel/tracing/trace_pipe"
            ],
            "{name}"
        );
        assert_eq!(output.stderr, b"err\n", "{name}");
        assert_eq!(output.status, 3, "{name}");
        assert!(output.console_log.is_file());
    }
}

/// A host-built, dynamically linked binary runs unchanged; extra files and
/// environment variables arrive; a large output arrives byte for byte.
#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn host_binaries_files_env_and_large_output() {
    let xtask = PathBuf::from(env!("CARGO_BIN_EXE_xtask"));
    // created exclusively, with a random name: never a fixed /tmp name as root
    let mut script = tempfile::NamedTempFile::new().unwrap();
    script
        .write_all(b"echo \"script sees $GREETING\"\nseq 1 50000\n")
        .unwrap();
    let shell = format!(
        "{} --help | head -1; sh /opt/script.sh; echo \"NO_COLOR=$NO_COLOR\" >&2",
        xtask.display()
    );
    let mut run = VmRun::new(kernels::DEFAULT, ["sh", "-c", &shell]);
    run.extra_files.push((xtask.clone(), xtask.clone()));
    run.extra_files
        .push((script.path().to_path_buf(), PathBuf::from("/opt/script.sh")));
    run.env.push(("GREETING".into(), "a b'c".into()));
    let output = run.run_captured().unwrap();

    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("Project tasks: run lessons in VMs, install dependencies, test")
    );
    assert_eq!(lines.next(), Some("script sees a b'c"));
    let numbers: Vec<&str> = lines.collect();
    assert_eq!(numbers.len(), 50_000);
    assert!(numbers
        .iter()
        .enumerate()
        .all(|(i, n)| *n == (i + 1).to_string()));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "NO_COLOR=1\n",
        "captured runs ask for no colour"
    );
    assert_eq!(output.status, 0);
}

/// A guest kernel that oopses and stays up (as after the NULL call on 6.12)
/// ends the run at once, with the oops lines in the error; the run is retried
/// once. Without the console watcher this waited for the whole timeout.
#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn an_oops_that_leaves_the_guest_up_ends_the_run_at_once() {
    oops_ends_the_run(
        Arch::X86_64,
        "BUG: kernel NULL pointer dereference, address: 0000000000000000",
        "RIP: 0010:0x0",
    );
}

/// arm64 reports an oops in its own words ("Internal error:", "pc :").
#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn an_oops_that_leaves_the_guest_up_ends_the_run_at_once_on_arm64() {
    oops_ends_the_run(
        Arch::Arm64,
        "Internal error: Oops: 0000000096000004 [#1] SMP",
        "pc : do_unlinkat+0x30/0x2a0",
    );
}

fn oops_ends_the_run(arch: Arch, oops: &str, context: &str) {
    // Lines at KERN_EMERG on the console, as the kernel prints an oops.
    let mut run = VmRun::new(
        kernels::DEFAULT,
        [
            "sh",
            "-c",
            &format!("echo '<0>{oops}' >/dev/kmsg; echo '<0>{context}' >/dev/kmsg; sleep 600"),
        ],
    );
    run.arch = arch;
    run.timeout = Duration::from_secs(240);
    let started = Instant::now();
    let err = format!("{:#}", run.run_captured().unwrap_err());
    let took = started.elapsed();
    eprintln!("{arch}: {took:?}: {err}");
    assert!(err.contains("the guest kernel oopsed"), "{err}");
    assert!(err.contains(oops), "{err}");
    assert!(err.contains(context), "{err}");
    // two boots, each ended a moment after the oops, far below the timeout
    assert!(took < Duration::from_secs(90), "{took:?}");
}

/// A real crash (sysrq c) ends the run at once with the kernel's last words.
#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn a_kernel_crash_ends_the_run_with_its_lines() {
    kernel_crash_ends_the_run(Arch::X86_64);
}

/// On arm64 the watcher reads the PL011 console, ttyAMA0.
#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn a_kernel_crash_ends_the_run_with_its_lines_on_arm64() {
    kernel_crash_ends_the_run(Arch::Arm64);
}

fn kernel_crash_ends_the_run(arch: Arch) {
    let mut run = VmRun::new(
        kernels::DEFAULT,
        ["sh", "-c", "echo c >/proc/sysrq-trigger; sleep 600"],
    );
    run.arch = arch;
    run.timeout = Duration::from_secs(240);
    let started = Instant::now();
    let err = format!("{:#}", run.run_captured().unwrap_err());
    let took = started.elapsed();
    eprintln!("{arch}: {took:?}: {err}");
    assert!(err.contains("the guest kernel oopsed"), "{err}");
    assert!(
        err.contains("Kernel panic - not syncing: sysrq triggered crash"),
        "{err}"
    );
    assert!(took < Duration::from_secs(90), "{took:?}");
}

/// A guest in which nothing runs any more (every process stopped, so init's
/// heartbeat too) is declared hung after the silence limit, not the timeout.
#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn a_silent_guest_is_declared_hung_early() {
    let mut run = VmRun::new(
        kernels::DEFAULT,
        ["sh", "-c", "kill -STOP -1; exec sleep 600"],
    );
    run.timeout = Duration::from_secs(240);
    run.silence_limit = Duration::from_secs(15);
    let started = Instant::now();
    let err = format!("{:#}", run.run_captured().unwrap_err());
    let took = started.elapsed();
    eprintln!("{took:?}: {err}");
    assert!(err.contains("printed nothing"), "{err}");
    assert!(err.contains("for 15 s: hung"), "{err}");
    // two boots of about 15 s of silence each, far below the timeout
    assert!(took < Duration::from_secs(120), "{took:?}");
}

/// A command that prints nothing for longer than the silence limit is not
/// hung: init's heartbeat keeps the guest's console alive. (The limit also
/// covers the quiet boot, which took up to 15 s on a loaded 2-core host.)
#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn a_quiet_command_is_not_a_hang() {
    quiet_command_is_not_a_hang(Arch::X86_64);
}

/// On arm64 the heartbeat goes to the PL011 console, ttyAMA0.
#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn a_quiet_command_is_not_a_hang_on_arm64() {
    quiet_command_is_not_a_hang(Arch::Arm64);
}

fn quiet_command_is_not_a_hang(arch: Arch) {
    let mut run = VmRun::new(kernels::DEFAULT, ["sleep", "50"]);
    run.arch = arch;
    run.silence_limit = Duration::from_secs(40);
    let output = run.run_captured().unwrap();
    assert_eq!(output.status, 0);
    let console = std::fs::read(&output.console_log).unwrap();
    assert!(
        console.contains(&b'\r'),
        "the heartbeat reached the console"
    );
    assert!(!console.contains(&0), "the kept log stays text for grep");
}
