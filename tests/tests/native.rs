//! The lessons on this machine's own kernel. What must happen is decided
//! from independent evidence (privileges, the kprobe PMU, bpftool's feature
//! probe), and then asserted: events when the kernel can, the catalogue's
//! exact explanation when it cannot.

use std::path::Path;
use std::process::{Command, Output};

use unlink_tests::{binary, check_json_run, WORKLOAD, WORKLOAD_EXIT};
use xtask::workspace::is_root;

fn run_lesson(lesson: &str) -> Output {
    let output = Command::new(binary(lesson))
        .args(["--json", "--", "sh", "-c", WORKLOAD])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {lesson}: {e}"));
    eprintln!(
        "{lesson} stdout:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    eprintln!(
        "{lesson} stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The one error line a failing lesson prints, checked for errno, cause and next step.
fn assert_explained_failure(output: &Output, errno: &str, cause: &str, next: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let error_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(
        error_lines.len(),
        1,
        "exactly one error line expected:\n{stderr}"
    );
    let line = error_lines[0];
    assert!(line.contains(errno), "errno {errno} not named: {line}");
    assert!(line.contains(cause), "cause {cause:?} not given: {line}");
    assert!(line.contains(next), "next step {next:?} not given: {line}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing may be printed as events on failure"
    );
}

fn kernel_has_kprobes() -> bool {
    Path::new("/sys/bus/event_source/devices/kprobe").exists()
        || Path::new("/sys/kernel/tracing/kprobe_events").exists()
        || Path::new("/sys/kernel/debug/tracing/kprobe_events").exists()
}

/// bpftool loads a minimal program of each type: "tracing" is fentry/fexit's type.
fn kernel_refuses_tracing_programs() -> bool {
    let output = Command::new("bpftool")
        .args(["feature", "probe", "kernel"])
        .output()
        .expect("bpftool is needed as an independent witness: `cargo xtask deps` installs it");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("program_type tracing"),
        "unexpected bpftool output:\n{text}"
    );
    text.contains("program_type tracing is NOT available")
}

#[test]
#[ignore = "needs the lesson binaries; run by `cargo xtask test`"]
fn lesson_02_on_this_kernel() {
    let output = run_lesson("lesson-02");
    if !is_root() {
        assert_explained_failure(
            &output,
            "EPERM (-1)",
            "needs root",
            "sudo target/debug/lesson-02",
        );
    } else if !kernel_has_kprobes() {
        assert_explained_failure(
            &output,
            "ENOENT (-2)",
            "without CONFIG_KPROBES",
            "cargo xtask vm -- target/debug/lesson-02",
        );
    } else {
        assert_eq!(output.status.code(), Some(WORKLOAD_EXIT));
        let function = unlink_common_function();
        check_json_run(
            &String::from_utf8_lossy(&output.stdout),
            &function,
            ["kprobe", "kretprobe"],
            None,
        );
    }
}

#[test]
#[ignore = "needs the lesson binaries; run by `cargo xtask test`"]
fn lesson_03_on_this_kernel() {
    let output = run_lesson("lesson-03");
    if !is_root() {
        assert_explained_failure(
            &output,
            "EPERM (-1)",
            "needs root",
            "sudo target/debug/lesson-03",
        );
    } else if kernel_refuses_tracing_programs() {
        assert_explained_failure(
            &output,
            "EPERM (-1)",
            "`ulimit -l` is wrong here",
            "cargo xtask vm -- target/debug/lesson-03",
        );
    } else {
        assert_eq!(output.status.code(), Some(WORKLOAD_EXIT));
        let function = unlink_common_function();
        check_json_run(
            &String::from_utf8_lossy(&output.stdout),
            &function,
            ["fentry", "fexit"],
            None,
        );
    }
}

/// The unlink function of this kernel, from kallsyms (the lessons use BTF: two witnesses).
/// Separate on purpose from unlink_common::kallsyms: an independent witness of its lookup.
fn unlink_common_function() -> String {
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").expect("reading /proc/kallsyms");
    ["do_unlinkat", "filename_unlinkat"]
        .into_iter()
        .find(|name| {
            kallsyms
                .lines()
                .any(|l| l.split_whitespace().nth(2) == Some(name))
        })
        .expect("no unlink function in /proc/kallsyms")
        .to_string()
}

/// Dropping to `nobody` must give the not-privileged explanation, whatever the kernel.
#[test]
#[ignore = "needs the lesson binaries and root (to drop privileges); run by `cargo xtask test`"]
fn lessons_explain_missing_privileges() {
    assert!(is_root(), "this test starts as root and drops to nobody");
    for lesson in ["lesson-02", "lesson-03"] {
        let output = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(binary(lesson))
            .args(["--", "true"])
            .output()
            .expect("setpriv (util-linux) runs the lesson as nobody");
        let next = format!("sudo target/debug/{lesson}");
        assert_explained_failure(
            &output,
            "EPERM (-1)",
            "needs root, or CAP_BPF + CAP_PERFMON",
            &next,
        );
    }
}
