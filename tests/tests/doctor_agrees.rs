//! unlink-doctor's verdicts against what the lessons then really do: on this
//! machine and on every kernel of the VM matrix, x86_64 and arm64 (5.10 and
//! 6.12 in CI; 6.1 and 7.2 with `cargo xtask test --arm64-all`). A "ready"
//! lesson must show the unlink; a "will fail" lesson must fail with the
//! doctor's reason.

use serde_json::Value;
use unlink_common::catalogue::FailureId;
use unlink_tests::{binary, binary_for};
use xtask::vm::{Arch, VmRun};

/// Runs the doctor, then each lesson on one unlink, printing marked lines.
const SCRIPT: &str = r#"
"$BIN/unlink-doctor" --json --color=never > /tmp/doctor.json 2> /tmp/doctor.err
echo "DOCTOR-EXIT $?"
echo DOCTOR-JSON-BEGIN; cat /tmp/doctor.json; echo; echo DOCTOR-JSON-END
for lesson in lesson-02 lesson-03; do
    "$BIN/$lesson" --json -- sh -c 'cd /tmp && touch doctor-probe && unlink doctor-probe' > /tmp/$lesson.out 2> /tmp/$lesson.err
    echo "LESSON $lesson EXIT $?"
    grep '^error: ' /tmp/$lesson.err | sed "s/^/LESSON $lesson /"
    echo "LESSON $lesson UNLINKS $(grep -c '"filename":"doctor-probe"' /tmp/$lesson.out)"
done
"#;

fn check_agreement(where_: &str, stdout: &str) {
    let doctor_exit: i32 = field(stdout, "DOCTOR-EXIT ").parse().unwrap();
    let json_text = stdout
        .split("DOCTOR-JSON-BEGIN")
        .nth(1)
        .and_then(|rest| rest.split("DOCTOR-JSON-END").next())
        .unwrap();
    let doctor: Value = serde_json::from_str(json_text.trim())
        .unwrap_or_else(|e| panic!("{where_}: doctor JSON: {e}\n{stdout}"));
    let mut all_ready = true;
    for lesson in ["lesson-02", "lesson-03"] {
        let verdict = doctor["lessons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["lesson"] == lesson)
            .unwrap();
        let exit: i32 = field(stdout, &format!("LESSON {lesson} EXIT "))
            .parse()
            .unwrap();
        let unlinks: u32 = field(stdout, &format!("LESSON {lesson} UNLINKS "))
            .parse()
            .unwrap();
        let context = format!("{where_}: doctor says {verdict}, {lesson} exited {exit}:\n{stdout}");
        match verdict["verdict"].as_str().unwrap() {
            "ready" => assert_eq!((exit, unlinks), (0, 1), "{context}"),
            "will_fail" => {
                all_ready = false;
                assert_eq!((exit, unlinks), (1, 0), "{context}");
                let id: FailureId = verdict["failure"].as_str().unwrap().parse().unwrap();
                let failure = id.failure();
                let error = field(stdout, &format!("LESSON {lesson} error: "));
                assert!(error.contains(failure.cause), "{lesson} failed for another reason than {}: {context}", failure.id);
            }
            other => panic!("running as root with live checks, the doctor must decide, not say {other}: {context}"),
        }
    }
    assert_eq!(
        doctor_exit,
        if all_ready { 0 } else { 1 },
        "{where_}: doctor exit code\n{stdout}"
    );
}

fn field<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{stdout}"))
        .trim()
}

fn script_for(bin: &str) -> String {
    format!("BIN={bin}\n{SCRIPT}")
}

#[test]
#[ignore = "needs the binaries and root; run by `cargo xtask test`"]
fn on_this_machine() {
    let bin = binary("unlink-doctor")
        .parent()
        .unwrap()
        .display()
        .to_string();
    let output = std::process::Command::new("sh")
        .args(["-c", &script_for(&bin)])
        .output()
        .unwrap();
    check_agreement("this machine", &String::from_utf8_lossy(&output.stdout));
}

fn in_vm(kernel: &str) {
    in_vm_for(Arch::X86_64, kernel);
}

fn in_vm_for(arch: Arch, kernel: &str) -> String {
    let bin_dir = binary_for(arch, "unlink-doctor")
        .parent()
        .unwrap()
        .to_path_buf();
    let mut run = VmRun::new(
        kernel,
        ["sh", "-c", &script_for(&bin_dir.display().to_string())],
    );
    run.arch = arch;
    for name in ["unlink-doctor", "lesson-02", "lesson-03"] {
        let path = binary_for(arch, name);
        run.extra_files.push((path.clone(), path));
    }
    let output = run
        .run_captured()
        .unwrap_or_else(|e| panic!("{arch} {kernel}: {e:#}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!(
        "{arch} {kernel}:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    check_agreement(&format!("{arch} {kernel}"), &stdout);
    stdout
}

/// The doctor's verdict and failure id for each lesson, from a run's output.
fn verdicts(stdout: &str) -> Vec<(String, String)> {
    let json_text = stdout
        .split("DOCTOR-JSON-BEGIN")
        .nth(1)
        .and_then(|rest| rest.split("DOCTOR-JSON-END").next())
        .unwrap();
    let doctor: Value = serde_json::from_str(json_text.trim()).unwrap();
    ["lesson-02", "lesson-03"]
        .iter()
        .map(|lesson| {
            let verdict = doctor["lessons"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["lesson"] == *lesson)
                .unwrap();
            (
                verdict["verdict"].as_str().unwrap_or_default().to_string(),
                verdict["failure"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// arm64 before 6.4: kprobes ready, fentry will fail at attach with -524.
fn arm64_without_fentry(kernel: &str) {
    let stdout = in_vm_for(Arch::Arm64, kernel);
    assert_eq!(
        verdicts(&stdout),
        [
            ("ready".into(), String::new()),
            ("will_fail".into(), "fentry-not-supported".into())
        ],
        "{stdout}"
    );
}

/// arm64 from 6.4 on: both lessons ready.
fn arm64_with_fentry(kernel: &str) {
    let stdout = in_vm_for(Arch::Arm64, kernel);
    assert_eq!(
        verdicts(&stdout),
        [
            ("ready".into(), String::new()),
            ("ready".into(), String::new())
        ],
        "{stdout}"
    );
}

#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn on_arm64_debian_5_10() {
    arm64_without_fentry("debian-5.10");
}

#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn on_arm64_debian_6_12() {
    arm64_with_fentry("debian-6.12");
}

/// Opt-in (`cargo xtask test --arm64-all`): CI's time budget takes two arm64 kernels.
mod arm64_all {
    #[test]
    #[ignore = "boots QEMU; run by `cargo xtask test --arm64-all`"]
    fn on_arm64_debian_6_1() {
        super::arm64_without_fentry("debian-6.1");
    }

    #[test]
    #[ignore = "boots QEMU; run by `cargo xtask test --arm64-all`"]
    fn on_arm64_debian_7_2() {
        super::arm64_with_fentry("debian-7.2");
    }
}

#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn on_debian_5_10() {
    in_vm("debian-5.10");
}

#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn on_debian_6_1() {
    in_vm("debian-6.1");
}

#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn on_debian_6_12() {
    in_vm("debian-6.12");
}

#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn on_debian_7_2() {
    in_vm("debian-7.2");
}
