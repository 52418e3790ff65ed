//! Both lessons on Debian's arm64 kernels, booted in qemu-system-aarch64
//! (TCG), with the static aarch64 programs of `cargo xtask build --arch arm64`:
//! the workload's exact events, or, where fentry cannot work on arm64 (no
//! ftrace direct calls before 6.4), the -524 failure and its explanation.
//!
//! `cargo xtask test` runs arm64 5.10 and 6.12; `cargo xtask test --arm64-all`
//! also runs the `arm64_all` tests (6.1 and 7.2). A missing kernel, QEMU or
//! arm64 build fails a test; it never counts as passed.

use serde_json::Value;
use unlink_common::catalogue::FailureId;
use unlink_tests::{
    binary, binary_for, check_json_run, counts_skips, unlink_function, WORKLOAD, WORKLOAD_EXIT,
};
use xtask::vm::{Arch, VmOutput, VmRun};

fn run_lesson(kernel: &str, lesson: &str, args: &[&str]) -> VmOutput {
    let mut command = vec![binary_for(Arch::Arm64, lesson).display().to_string()];
    command.extend(args.iter().map(|a| a.to_string()));
    command.extend(["--".into(), "sh".into(), "-c".into(), WORKLOAD.to_string()]);
    let mut run = VmRun::new(kernel, command);
    run.arch = Arch::Arm64;
    let output = run
        .run_captured()
        .unwrap_or_else(|e| panic!("{lesson} on arm64 {kernel}: {e:#}"));
    eprintln!(
        "{lesson} {args:?} on arm64 {kernel} ({:.1} s)\nstdout:\n{}\nstderr:\n{}",
        output.elapsed.as_secs_f64(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn probes(lesson: &str) -> [&'static str; 2] {
    match lesson {
        "lesson-02" => ["kprobe", "kretprobe"],
        _ => ["fentry", "fexit"],
    }
}

/// The workload's unlinks, exactly, as on x86_64.
fn shows_events(kernel: &str, lesson: &str) {
    let output = run_lesson(kernel, lesson, &["--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status, WORKLOAD_EXIT, "{stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");
    check_json_run(
        &String::from_utf8_lossy(&output.stdout),
        unlink_function(kernel),
        probes(lesson),
        Some(counts_skips(kernel, lesson)),
    );
}

/// lesson-03 loads, then attaching fentry fails with -524; the lesson says
/// why in one line, libbpf's log has the line a learner pastes, and
/// `unlink-doctor explain` names the catalogue's failure for both.
fn fentry_fails_with_enotsupp(kernel: &str) {
    let output = run_lesson(kernel, "lesson-03", &["--json", "-v"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status, 1, "{stderr}");
    assert!(
        !stdout.contains("WORKLOAD "),
        "the command must not run when attaching fails:\n{stdout}"
    );
    let libbpf = stderr
        .lines()
        .find(|l| l.starts_with("libbpf: ") && l.contains("failed to attach"))
        .unwrap_or_else(|| panic!("no libbpf attach failure in:\n{stderr}"));
    assert!(libbpf.ends_with("failed to attach: -ENOTSUPP"), "{libbpf}");
    let failure = FailureId::FentryNotSupported.failure();
    let error: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(error.len(), 1, "one error line:\n{stderr}");
    assert!(
        error[0].starts_with(&format!(
            "error: attaching fentry on {} failed with ENOTSUPP (-524): {}",
            unlink_function(kernel),
            failure.cause
        )),
        "{}",
        error[0]
    );
    for pasted in [libbpf, error[0]] {
        let explain = std::process::Command::new(binary("unlink-doctor"))
            .args(["explain", "--json", pasted])
            .output()
            .unwrap();
        let json: Value = serde_json::from_slice(&explain.stdout)
            .unwrap_or_else(|e| panic!("explain {pasted:?}: {e}"));
        let ids: Vec<&str> = json["explanations"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["failure"].as_str())
            .collect();
        assert_eq!(ids, [failure.id.as_str()], "explain {pasted:?}: {json}");
    }
}

mod arm64_5_10 {
    #[test]
    #[ignore = "boots QEMU; run by `cargo xtask test`"]
    fn lesson_02_shows_events() {
        super::shows_events("debian-5.10", "lesson-02");
    }

    #[test]
    #[ignore = "boots QEMU; run by `cargo xtask test`"]
    fn lesson_03_fails_with_enotsupp() {
        super::fentry_fails_with_enotsupp("debian-5.10");
    }
}

mod arm64_6_12 {
    #[test]
    #[ignore = "boots QEMU; run by `cargo xtask test`"]
    fn lesson_02_shows_events() {
        super::shows_events("debian-6.12", "lesson-02");
    }

    #[test]
    #[ignore = "boots QEMU; run by `cargo xtask test`"]
    fn lesson_03_shows_events() {
        super::shows_events("debian-6.12", "lesson-03");
    }
}

/// Opt-in (`cargo xtask test --arm64-all`): CI's time budget takes two kernels.
mod arm64_all {
    #[test]
    #[ignore = "boots QEMU; run by `cargo xtask test --arm64-all`"]
    fn lesson_02_shows_events_on_6_1() {
        super::shows_events("debian-6.1", "lesson-02");
    }

    #[test]
    #[ignore = "boots QEMU; run by `cargo xtask test --arm64-all`"]
    fn lesson_03_fails_with_enotsupp_on_6_1() {
        super::fentry_fails_with_enotsupp("debian-6.1");
    }

    #[test]
    #[ignore = "boots QEMU; run by `cargo xtask test --arm64-all`"]
    fn lesson_02_shows_events_on_7_2() {
        super::shows_events("debian-7.2", "lesson-02");
    }

    #[test]
    #[ignore = "boots QEMU; run by `cargo xtask test --arm64-all`"]
    fn lesson_03_shows_events_on_7_2() {
        super::shows_events("debian-7.2", "lesson-03");
    }
}
