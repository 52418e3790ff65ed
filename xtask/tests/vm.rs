//! The VM runner itself, booted for real: what the lessons' end-to-end tests
//! rely on. Ignored in a plain `cargo test` (QEMU, kernels); `cargo xtask test` runs them.

use std::path::PathBuf;

use xtask::vm::{kernels, VmRun, MATRIX};

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
    let script = std::env::temp_dir().join(format!("xtask-vm-test-{}.sh", std::process::id()));
    std::fs::write(&script, "echo \"script sees $GREETING\"\nseq 1 50000\n").unwrap();
    let shell = format!(
        "{} --help | head -1; sh /opt/script.sh; echo \"NO_COLOR=$NO_COLOR\" >&2",
        xtask.display()
    );
    let mut run = VmRun::new(kernels::DEFAULT, ["sh", "-c", &shell]);
    run.extra_files.push((xtask.clone(), xtask.clone()));
    run.extra_files
        .push((script.clone(), PathBuf::from("/opt/script.sh")));
    run.env.push(("GREETING".into(), "a b'c".into()));
    let output = run.run_captured().unwrap();
    std::fs::remove_file(&script).unwrap();

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
