//! `unlink-doctor --root FIXTURE --json` on the fixture system roots in
//! tests/fixtures/ (made by tests/fixtures/make-fixtures.sh): each asserts the
//! verdict of both lessons and the decisive catalogue entry.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod support;
use support::{bounded_doctor, item};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Run the doctor, bounded in time and memory; return its exit code and parsed JSON.
fn doctor(args: &[&str]) -> (i32, Value) {
    let (code, stdout, stderr) = bounded_doctor(args);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{stderr}"
    );
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
    (code.expect("exit code"), json)
}

fn at_root(root: &Path, extra: &[&str]) -> (i32, Value) {
    let root = root.to_str().unwrap();
    let mut args = vec!["--root", root, "--json"];
    args.extend(extra);
    doctor(&args)
}

/// (verdict, failure) for one lesson.
fn verdict(json: &Value, lesson: &str) -> (String, Option<String>) {
    let entry = json["lessons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lesson"] == lesson)
        .unwrap();
    assert_eq!(json["verdicts"][lesson], entry["verdict"]);
    assert_eq!(
        entry["basis"], "read_only",
        "--root never runs the live check"
    );
    (
        entry["verdict"].as_str().unwrap().to_string(),
        entry["failure"].as_str().map(str::to_string),
    )
}

type Expected<'a> = (&'a str, Option<&'a str>);

fn check(name: &str, lesson_02: Expected<'_>, lesson_03: Expected<'_>) -> Value {
    let (code, json) = at_root(&fixture(name), &[]);
    let want = |(v, f): Expected<'_>| (v.to_string(), f.map(str::to_string));
    assert_eq!(
        verdict(&json, "lesson-02"),
        want(lesson_02),
        "{name}: lesson-02"
    );
    assert_eq!(
        verdict(&json, "lesson-03"),
        want(lesson_03),
        "{name}: lesson-03"
    );
    let ready = lesson_02.0 == "ready" && lesson_03.0 == "ready";
    assert_eq!(code, if ready { 0 } else { 1 }, "{name}: exit code");
    assert_eq!(json["exit_code"], code);
    assert_eq!(json["schema"], "unlink-doctor/1");
    assert_eq!(item(&json, "live.kprobe")["status"], "skipped");
    json
}

const READY: Expected<'static> = ("ready", None);

#[test]
fn this_machine() {
    let json = check(
        "this-machine",
        ("will_fail", Some("no-kprobes")),
        ("will_fail", Some("tracing-refused")),
    );
    assert_eq!(item(&json, "config.source")["value"], "/proc/config.gz");
    assert_eq!(item(&json, "config.kprobes")["status"], "fail");
    assert_eq!(
        item(&json, "tracing.filter_functions")["failure"],
        "tracing-refused"
    );
    assert!(item(&json, "system.environment")["value"]
        .as_str()
        .unwrap()
        .contains("Firecracker"));
    let lesson_02 = &json["lessons"][0];
    assert_eq!(
        lesson_02["doc"],
        "book/src/en/troubleshooting.md#no-kprobes"
    );
    assert!(lesson_02["alternative"]
        .as_str()
        .unwrap()
        .contains("cargo xtask vm"));
}

#[test]
fn debian_amd64_kernels_are_ready() {
    for (name, function) in [
        ("debian-5.10-amd64", "do_unlinkat"),
        ("debian-6.1-amd64", "do_unlinkat"),
        ("debian-6.12-amd64", "do_unlinkat"),
        ("debian-7.2-amd64", "filename_unlinkat"),
    ] {
        let json = check(name, READY, READY);
        assert_eq!(json["function"], function, "{name}");
        assert_eq!(item(&json, "btf.prototype")["status"], "ok", "{name}");
    }
    let json = check("debian-7.2-amd64", READY, READY);
    assert_eq!(
        item(&json, "config.source")["value"],
        "/usr/lib/modules/7.2.13+deb14-amd64/config"
    );
    let json = check("debian-5.10-amd64", READY, READY);
    assert_eq!(
        item(&json, "btf.function")["value"],
        "long do_unlinkat(int dfd, struct filename *name)"
    );
}

#[test]
fn debian_arm64_before_direct_calls() {
    let json = check(
        "debian-5.10-arm64",
        READY,
        ("will_fail", Some("fentry-not-supported")),
    );
    assert_eq!(
        item(&json, "system.machine")["value"],
        "aarch64 (from the kernel config)"
    );
    assert_eq!(item(&json, "kernel.fentry")["status"], "fail");
    let json = check(
        "debian-6.1-arm64",
        READY,
        ("will_fail", Some("fentry-not-supported")),
    );
    assert!(item(&json, "kernel.fentry")["value"]
        .as_str()
        .unwrap()
        .contains("6.4"));
    assert_eq!(
        item(&json, "config.dynamic_ftrace_with_direct_calls")["failure"],
        "fentry-not-supported"
    );
    let lesson_03 = &json["lessons"][1];
    assert!(
        lesson_03["alternative"]
            .as_str()
            .unwrap()
            .contains("lesson-02 is ready here"),
        "{lesson_03}"
    );
}

#[test]
fn broken_kernels() {
    check(
        "no-btf",
        ("will_fail", Some("no-btf")),
        ("will_fail", Some("no-btf")),
    );
    check("no-kprobes", ("will_fail", Some("no-kprobes")), READY);
}

#[test]
fn tracefs_unmounted_leaves_fentry_unchecked() {
    let json = check("tracefs-unmounted", READY, ("unknown", None));
    assert_eq!(item(&json, "tracing.tracefs")["value"], "not mounted");
    let reason = json["lessons"][1]["reason"].as_str().unwrap();
    assert!(reason.contains("available_filter_functions"), "{reason}");
}

#[test]
fn unprivileged_user_is_told_to_use_sudo() {
    let json = check(
        "unprivileged-user",
        ("unknown", Some("not-privileged")),
        ("unknown", Some("not-privileged")),
    );
    assert!(json["lessons"][0]["next"]
        .as_str()
        .unwrap()
        .contains("sudo unlink-doctor"));
    assert_eq!(item(&json, "tracing.filter_functions")["status"], "skipped");
    assert_eq!(item(&json, "privileges.euid")["value"], "1000 (not root)");
}

#[test]
fn container_without_cap_bpf() {
    let json = check(
        "container-no-cap-bpf",
        ("will_fail", Some("container-restricted")),
        ("will_fail", Some("container-restricted")),
    );
    assert!(item(&json, "system.environment")["value"]
        .as_str()
        .unwrap()
        .contains("/.dockerenv"));
    assert_eq!(
        item(&json, "privileges.capabilities")["failure"],
        "container-restricted"
    );
}

#[test]
fn busybox_guest_without_config_or_os_release() {
    // In the VM the live check decides; from files alone fentry's ftrace options are unknown.
    let json = check("busybox-guest-6.12", READY, ("unknown", None));
    assert_eq!(item(&json, "config.source")["status"], "warn");
    assert_eq!(
        item(&json, "system.distribution")["value"],
        "unknown (no /etc/os-release)"
    );
}

#[test]
fn function_flag_checks_the_name_given() {
    let (code, json) = at_root(&fixture("debian-7.2-amd64"), &["--function", "do_unlinkat"]);
    assert_eq!(code, 1);
    assert_eq!(
        verdict(&json, "lesson-02"),
        ("will_fail".into(), Some("function-not-found".into()))
    );
    assert_eq!(
        verdict(&json, "lesson-03"),
        ("will_fail".into(), Some("function-not-found".into()))
    );
}

#[test]
fn text_output_and_report() {
    let root = fixture("debian-6.1-arm64");
    let output = Command::new(env!("CARGO_BIN_EXE_unlink-doctor"))
        .args(["--root", root.to_str().unwrap(), "--color", "always"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("\u{1b}["), "--color always colors");
    assert!(
        text.contains("lesson-03") && text.contains("will fail"),
        "{text}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_unlink-doctor"))
        .args(["--root", root.to_str().unwrap(), "--report"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.contains("$ uname -a\nLinux ? 6.1.0-50-arm64 #1 SMP PREEMPT_DYNAMIC Debian aarch64"),
        "{report}"
    );
    assert!(
        report.contains("Debian GNU/Linux 12 (bookworm)")
            && report.contains("\"schema\": \"unlink-doctor/1\"")
    );
    assert!(!report.contains("\u{1b}["));
}

#[test]
fn explain_every_form() {
    let explain = |text: &str| {
        let (code, json) = doctor(&[
            "--root",
            fixture("debian-6.1-arm64").to_str().unwrap(),
            "--json",
            "explain",
            text,
        ]);
        (code, json)
    };
    let (code, json) =
        explain("libbpf: prog 'unlink_entry': failed to attach: ERROR: strerror_r(-524)=22");
    assert_eq!(code, 0);
    assert_eq!(json["parsed"]["errno"], 524);
    let failures: Vec<&str> = json["explanations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["failure"].as_str().unwrap())
        .collect();
    assert!(failures.contains(&"fentry-not-supported"), "{failures:?}");
    for text in ["-ENOTSUPP", "fexit: Unknown error 524 (os error 524)"] {
        let (_, json) = explain(text);
        assert_eq!(json["parsed"]["errno"], 524, "{text}");
    }
    let (_, json) = explain("attaching fentry: Unknown error 524 (os error 524)");
    assert_eq!(json["explanations"][0]["failure"], "fentry-not-supported");
    let (_, json) =
        explain("libbpf: failed to add legacy kprobe event for 'do_unlinkat+0x0': -ENOENT");
    assert_eq!(json["explanations"][0]["lesson"], "lesson-02");
    let (_, json) = doctor(&[
        "--root",
        fixture("this-machine").to_str().unwrap(),
        "--json",
        "explain",
        "lesson-03: os error 1",
    ]);
    assert_eq!(json["explanations"][0]["failure"], "tracing-refused");
    let (code, _) = explain("nothing to see");
    assert_eq!(code, 1);
    // A number that is no errno is not recognised, and is shown whole.
    for (text, found) in [
        ("os error 999999999", "os error 999999999"),
        ("strerror_r(-2147483648)=22", "strerror_r(-2147483648)"),
    ] {
        let (code, json) = explain(text);
        assert_eq!(code, 1, "{text}: {json}");
        assert_eq!(json["parsed"]["errno"], Value::Null, "{text}");
        assert_eq!(json["parsed"]["errno_text"], found, "{text}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let status = Command::new(env!("CARGO_BIN_EXE_unlink-doctor"))
        .arg("--bogus")
        .output()
        .unwrap()
        .status;
    assert_eq!(status.code(), Some(2));
    let output = Command::new(env!("CARGO_BIN_EXE_unlink-doctor"))
        .args(["--root", "/nonexistent/dir"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
