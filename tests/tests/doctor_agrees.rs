//! unlink-doctor's verdicts against what the lessons then really do: on this
//! machine and on every kernel of the VM matrix. A "ready" lesson must show
//! the unlink; a "will fail" lesson must fail with the doctor's reason.

use serde_json::Value;
use unlink_common::catalogue::FailureId;
use unlink_tests::binary;
use xtask::vm::VmRun;

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
    let bin_dir = binary("unlink-doctor").parent().unwrap().to_path_buf();
    let mut run = VmRun::new(
        kernel,
        ["sh", "-c", &script_for(&bin_dir.display().to_string())],
    );
    for name in ["unlink-doctor", "lesson-02", "lesson-03"] {
        let path = binary(name);
        run.extra_files.push((path.clone(), path));
    }
    let output = run
        .run_captured()
        .unwrap_or_else(|e| panic!("{kernel}: {e:#}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!(
        "{kernel}:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    check_agreement(kernel, &stdout);
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
